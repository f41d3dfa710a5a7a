"""Membership products (courses), their categories (modules) and lessons. Pure values."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import datetime

import attrs

from ..errors import Conflict
from .drip import DripRule, DripSettings

__all__ = [
    "Category",
    "Lesson",
    "LessonKind",
    "Product",
    "ProductSort",
    "ProductStatus",
    "check_publishable",
    "ordered",
]


class ProductStatus(enum.Enum):
    """Whether members can see a product at all."""

    DRAFT = "draft"
    PUBLISHED = "published"


class LessonKind(enum.Enum):
    """What a lesson holds."""

    VIDEO = "video"
    TEXT = "text"
    FILE = "file"
    ASSESSMENT = "assessment"


class ProductSort(enum.Enum):
    """Orders for :meth:`CatalogService.search_products`."""

    TITLE = "title"
    CREATED = "created"
    UPDATED = "updated"


@attrs.frozen
class Product:
    """A membership product (a course): the thing offers sell access to.

    ``drip`` turns drip scheduling on (its start clock and timezone);
    ``drip_rules`` maps lesson and category ids to their rules. Without
    ``drip`` every lesson opens with access and the rules are kept but unused.
    """

    id: str
    title: str
    description: str
    image_url: str | None
    status: ProductStatus
    created_at: datetime
    updated_at: datetime
    drip: DripSettings | None = None
    drip_rules: dict[str, tuple[DripRule, ...]] = attrs.field(factory=dict)
    #: Incremented by every change to the product's categories and lessons, so
    #: readers can tell a cached structure is still current.
    structure_version: int = 0
    #: The certificate template its certificates are issued with (``None``: the default).
    certificate_template_id: str | None = None

    @property
    def published(self) -> bool:
        """True when members can see the product."""
        return self.status is ProductStatus.PUBLISHED


@attrs.frozen
class Category:
    """A module of a product; ``parent_id`` set makes it a sub-category (one level deep)."""

    id: str
    product_id: str
    parent_id: str | None
    title: str
    position: int
    created_at: datetime


@attrs.frozen
class Lesson:
    """One lesson of a product, inside a category.

    ``preview`` lessons can be seen without buying; ``required`` lessons count
    towards completion.
    """

    id: str
    product_id: str
    category_id: str
    title: str
    kind: LessonKind
    body: str
    media_url: str | None
    preview: bool
    published: bool
    required: bool
    position: int
    created_at: datetime
    updated_at: datetime


def ordered(categories: Iterable[Category], lessons: Iterable[Lesson]) -> list[Lesson]:
    """Return ``lessons`` in course order: category tree depth-first, then position."""
    by_parent: dict[str | None, list[Category]] = {}
    for category in categories:
        by_parent.setdefault(category.parent_id, []).append(category)
    by_category: dict[str, list[Lesson]] = {}
    for lesson in lessons:
        by_category.setdefault(lesson.category_id, []).append(lesson)
    result: list[Lesson] = []

    def walk(parent: str | None) -> None:
        for category in sorted(by_parent.get(parent, []), key=lambda c: (c.position, c.id)):
            result.extend(
                sorted(by_category.get(category.id, []), key=lambda lsn: (lsn.position, lsn.id))
            )
            walk(category.id)

    walk(None)
    return result


def check_publishable(product: Product, lessons: Sequence[Lesson]) -> None:
    """Raise :class:`Conflict` unless ``product`` has at least one published lesson."""
    if not any(lesson.published for lesson in lessons):
        raise Conflict(
            f"product {product.id!r} has no published lessons; add one before publishing",
            field="product_id",
        )
