"""Membership products: create, structure, rename, move, reorder, delete, search, publish."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from .. import _validate as v
from ..domain.catalog import (
    Category,
    Lesson,
    LessonKind,
    Product,
    ProductSort,
    ProductStatus,
    check_publishable,
    ordered,
)
from ..domain.events import LessonPublished, ProductPublished, ProductUnpublished
from ..errors import Conflict, ValidationError
from ..ports.storage import UnitOfWork
from ._context import Service
from ._unset import UNSET, _Unset

__all__ = ["CatalogService", "UNSET"]


_SORT_FIELDS = {
    ProductSort.TITLE: "title",
    ProductSort.CREATED: "created_at",
    ProductSort.UPDATED: "updated_at",
}
_MAX_PAGE = 500


def _url(field: str, value: object) -> str | None:
    result = v.optional_text(field, value, max_length=2000)
    if result is not None and not result.startswith(("https://", "http://", "/")):
        raise ValidationError(field, "must be an http(s) URL or a path starting with '/'")
    return result


class CatalogService(Service):
    """Products (courses), their categories and lessons. ``portal.catalog``.

    >>> from membership_core import Portal
    >>> portal = Portal.open("memory://")
    >>> course = portal.catalog.create_product("Python 101")
    >>> module = portal.catalog.add_category(course.id, "Basics")
    >>> lesson = portal.catalog.add_lesson(course.id, module.id, "Variables")
    >>> portal.catalog.publish_product(course.id).status.value
    'published'
    """

    # products ---------------------------------------------------------------

    def create_product(
        self, title: str, *, description: str = "", image_url: str | None = None
    ) -> Product:
        """Create a draft product."""
        title = v.text("title", title, max_length=200)
        description = v.text("description", description, max_length=20_000, allow_empty=True)
        image = _url("image_url", image_url)
        now = self._ctx.now()
        product = Product(
            self._ctx.ids.new("prod"), title, description, image, ProductStatus.DRAFT, now, now
        )
        with self._ctx.uow() as uow:
            uow.products.add(product)
            uow.commit()
        return product

    def get_product(self, product_id: str) -> Product:
        """The product, or ``NotFound``."""
        v.identifier("product_id", product_id, "prod")
        with self._ctx.uow(write=False) as uow:
            return self._require(uow.products, "product", product_id, "product_id")

    def update_product(
        self,
        product_id: str,
        *,
        title: str | _Unset = UNSET,
        description: str | _Unset = UNSET,
        image_url: str | _Unset | None = UNSET,
    ) -> Product:
        """Change some fields of a product; the others stay as they are."""
        v.identifier("product_id", product_id, "prod")
        changes: dict[str, Any] = {}
        if not isinstance(title, _Unset):
            changes["title"] = v.text("title", title, max_length=200)
        if not isinstance(description, _Unset):
            changes["description"] = v.text(
                "description", description, max_length=20_000, allow_empty=True
            )
        if not isinstance(image_url, _Unset):
            changes["image_url"] = _url("image_url", image_url)
        with self._ctx.uow() as uow:
            product = self._require_for_update(uow.products, "product", product_id, "product_id")
            product = attrs.evolve(product, **changes, updated_at=self._ctx.now())
            uow.products.update(product)
            uow.commit()
        return product

    def search_products(
        self,
        query: str = "",
        *,
        sort: ProductSort | str = ProductSort.TITLE,
        descending: bool = False,
        status: ProductStatus | str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Product]:
        """Products whose title contains ``query`` (case-insensitive), sorted and paged."""
        if not isinstance(query, str):
            raise ValidationError("query", "must be a string")
        order = v.choice("sort", sort, ProductSort)
        v.boolean("descending", descending)
        where = {} if status is None else {"status": v.choice("status", status, ProductStatus)}
        v.integer("limit", limit, minimum=1)
        if limit > _MAX_PAGE:
            raise ValidationError("limit", f"must be at most {_MAX_PAGE}")
        v.integer("offset", offset, minimum=0)
        text = query.strip()
        with self._ctx.uow(write=False) as uow:
            return uow.products.find(
                where,
                contains=("title", text) if text else None,
                order_by=[_SORT_FIELDS[order]],
                descending=descending,
                limit=limit,
                offset=offset,
            )

    def publish_product(self, product_id: str) -> Product:
        """Make a product visible; refused while it has no published lesson."""
        v.identifier("product_id", product_id, "prod")
        with self._ctx.uow() as uow:
            product = self._require_for_update(uow.products, "product", product_id, "product_id")
            if product.published:
                return product
            check_publishable(product, uow.lessons.find({"product_id": product_id}))
            product = attrs.evolve(
                product, status=ProductStatus.PUBLISHED, updated_at=self._ctx.now()
            )
            uow.products.update(product)
            self._record(uow, ProductPublished, product_id=product_id)
            uow.commit()
        self._committed()
        return product

    def unpublish_product(self, product_id: str) -> Product:
        """Take a product back to draft; members lose sight of it (not their enrollments)."""
        v.identifier("product_id", product_id, "prod")
        with self._ctx.uow() as uow:
            product = self._require_for_update(uow.products, "product", product_id, "product_id")
            if not product.published:
                return product
            product = attrs.evolve(product, status=ProductStatus.DRAFT, updated_at=self._ctx.now())
            uow.products.update(product)
            self._record(uow, ProductUnpublished, product_id=product_id)
            uow.commit()
        self._committed()
        return product

    # structure --------------------------------------------------------------

    def add_category(
        self, product_id: str, title: str, *, parent_id: str | None = None
    ) -> Category:
        """Add a category (module) at the end of the product, or of ``parent_id``."""
        v.identifier("product_id", product_id, "prod")
        title = v.text("title", title, max_length=200)
        if parent_id is not None:
            v.identifier("parent_id", parent_id, "cat")
        with self._ctx.uow() as uow:
            self._require_for_update(uow.products, "product", product_id, "product_id")
            if parent_id is not None:
                parent = self._category(uow, product_id, parent_id, "parent_id")
                if parent.parent_id is not None:
                    raise ValidationError(
                        "parent_id", "sub-categories cannot have sub-categories of their own"
                    )
            position = uow.categories.count({"product_id": product_id, "parent_id": parent_id})
            category = Category(
                self._ctx.ids.new("cat"), product_id, parent_id, title, position, self._ctx.now()
            )
            uow.categories.add(category)
            self._touch(uow, product_id)
            uow.commit()
        return category

    def add_lesson(
        self,
        product_id: str,
        category_id: str,
        title: str,
        *,
        kind: LessonKind | str = LessonKind.TEXT,
        body: str = "",
        media_url: str | None = None,
        preview: bool = False,
        published: bool = True,
        required: bool = True,
    ) -> Lesson:
        """Add a lesson at the end of a category."""
        v.identifier("product_id", product_id, "prod")
        v.identifier("category_id", category_id, "cat")
        title = v.text("title", title, max_length=200)
        lesson_kind = v.choice("kind", kind, LessonKind)
        body = v.text("body", body, max_length=1_000_000, allow_empty=True)
        media = _url("media_url", media_url)
        for name, flag in (("preview", preview), ("published", published), ("required", required)):
            v.boolean(name, flag)
        now = self._ctx.now()
        with self._ctx.uow() as uow:
            product = self._require_for_update(uow.products, "product", product_id, "product_id")
            self._category(uow, product_id, category_id, "category_id")
            position = uow.lessons.count({"category_id": category_id})
            lesson = Lesson(
                self._ctx.ids.new("les"),
                product_id,
                category_id,
                title,
                lesson_kind,
                body,
                media,
                preview,
                published,
                required,
                position,
                now,
                now,
            )
            uow.lessons.add(lesson)
            self._touch(uow, product_id)
            if published and product.published:
                self._record(uow, LessonPublished, product_id=product_id, lesson_id=lesson.id)
            uow.commit()
        self._committed()
        return lesson

    def get_lesson(self, lesson_id: str) -> Lesson:
        """The lesson, or ``NotFound``."""
        v.identifier("lesson_id", lesson_id, "les")
        with self._ctx.uow(write=False) as uow:
            return self._require(uow.lessons, "lesson", lesson_id, "lesson_id")

    def update_lesson(
        self,
        lesson_id: str,
        *,
        title: str | _Unset = UNSET,
        kind: LessonKind | str | _Unset = UNSET,
        body: str | _Unset = UNSET,
        media_url: str | _Unset | None = UNSET,
        preview: bool | _Unset = UNSET,
        published: bool | _Unset = UNSET,
        required: bool | _Unset = UNSET,
    ) -> Lesson:
        """Change some fields of a lesson (publish it, rename it, ...); the rest stay."""
        v.identifier("lesson_id", lesson_id, "les")
        changes: dict[str, Any] = {}
        if not isinstance(title, _Unset):
            changes["title"] = v.text("title", title, max_length=200)
        if not isinstance(kind, _Unset):
            changes["kind"] = v.choice("kind", kind, LessonKind)
        if not isinstance(body, _Unset):
            changes["body"] = v.text("body", body, max_length=1_000_000, allow_empty=True)
        if not isinstance(media_url, _Unset):
            changes["media_url"] = _url("media_url", media_url)
        for name, flag in (("preview", preview), ("published", published), ("required", required)):
            if not isinstance(flag, _Unset):
                changes[name] = v.boolean(name, flag)
        with self._ctx.uow() as uow:
            before = self._require(uow.lessons, "lesson", lesson_id, "lesson_id")
            product = self._require_for_update(
                uow.products, "product", before.product_id, "lesson_id"
            )
            lesson = attrs.evolve(before, **changes, updated_at=self._ctx.now())
            uow.lessons.update(lesson)
            self._touch(uow, lesson.product_id)
            if lesson.published and not before.published and product.published:
                self._record(
                    uow, LessonPublished, product_id=lesson.product_id, lesson_id=lesson.id
                )
            uow.commit()
        self._committed()
        return lesson

    def delete_lesson(self, lesson_id: str) -> None:
        """Remove a lesson; the lessons after it move up.

        Completions already recorded stay (they are history); a course
        completed before keeps its completion.
        """
        v.identifier("lesson_id", lesson_id, "les")
        with self._ctx.uow() as uow:
            lesson = self._require(uow.lessons, "lesson", lesson_id, "lesson_id")
            self._require_for_update(uow.products, "product", lesson.product_id, "lesson_id")
            uow.lessons.delete(lesson_id)
            rest = uow.lessons.find({"category_id": lesson.category_id}, order_by=["position"])
            self._renumber(uow, rest)
            self._touch(uow, lesson.product_id)
            uow.commit()

    def structure(self, product_id: str) -> tuple[list[Category], list[Lesson]]:
        """The product's categories (by position) and lessons in course order.

        Course order walks the category tree depth-first: a category's lessons,
        then its sub-categories' lessons, then the next category.
        """
        v.identifier("product_id", product_id, "prod")
        with self._ctx.uow(write=False) as uow:
            self._require(uow.products, "product", product_id, "product_id")
            categories = uow.categories.find({"product_id": product_id}, order_by=["position"])
            lessons = uow.lessons.find({"product_id": product_id})
        return categories, ordered(categories, lessons)

    def move_lesson(self, lesson_id: str, category_id: str, position: int) -> Lesson:
        """Move a lesson to ``position`` (0-based) in ``category_id`` of the same product."""
        v.identifier("lesson_id", lesson_id, "les")
        v.identifier("category_id", category_id, "cat")
        v.integer("position", position, minimum=0)
        with self._ctx.uow() as uow:
            lesson = self._require(uow.lessons, "lesson", lesson_id, "lesson_id")
            self._require_for_update(uow.products, "product", lesson.product_id, "lesson_id")
            self._category(uow, lesson.product_id, category_id, "category_id")
            old = [
                x
                for x in uow.lessons.find(
                    {"category_id": lesson.category_id}, order_by=["position"]
                )
                if x.id != lesson_id
            ]
            if category_id == lesson.category_id:
                target = old
            else:
                target = uow.lessons.find({"category_id": category_id}, order_by=["position"])
                self._renumber(uow, old)
            position = min(position, len(target))
            moved = attrs.evolve(lesson, category_id=category_id, updated_at=self._ctx.now())
            target.insert(position, moved)
            self._renumber(uow, target, always=moved.id)
            self._touch(uow, lesson.product_id)
            uow.commit()
            result = uow.lessons.get(lesson_id)
        assert result is not None
        return result

    def reorder_categories(
        self, product_id: str, category_ids: Sequence[str], *, parent_id: str | None = None
    ) -> list[Category]:
        """Put the categories under ``parent_id`` (the top level by default) in exactly
        the order given; the list must hold each of them once."""
        v.identifier("product_id", product_id, "prod")
        if isinstance(category_ids, str) or not isinstance(category_ids, Sequence):
            raise ValidationError("category_ids", "must be a list of category ids")
        for category_id in category_ids:
            v.identifier("category_ids", category_id, "cat")
        if parent_id is not None:
            v.identifier("parent_id", parent_id, "cat")
        with self._ctx.uow() as uow:
            self._require_for_update(uow.products, "product", product_id, "product_id")
            if parent_id is not None:
                self._category(uow, product_id, parent_id, "parent_id")
            current = uow.categories.find({"product_id": product_id, "parent_id": parent_id})
            by_id = {c.id: c for c in current}
            if sorted(category_ids) != sorted(by_id):
                raise ValidationError(
                    "category_ids", "must list every category of that level exactly once"
                )
            ordered = [attrs.evolve(by_id[i], position=n) for n, i in enumerate(category_ids)]
            for category in ordered:
                uow.categories.update(category)
            self._touch(uow, product_id)
            uow.commit()
        return ordered

    def get_category(self, category_id: str) -> Category:
        """The category, or ``NotFound``."""
        v.identifier("category_id", category_id, "cat")
        with self._ctx.uow(write=False) as uow:
            return self._require(uow.categories, "category", category_id, "category_id")

    def update_category(self, category_id: str, *, title: str | _Unset = UNSET) -> Category:
        """Rename a category; an argument left at ``UNSET`` stays as it is.

        Its place in the tree changes with :meth:`move_category` and
        :meth:`reorder_categories`.
        """
        v.identifier("category_id", category_id, "cat")
        changes: dict[str, Any] = {}
        if not isinstance(title, _Unset):
            changes["title"] = v.text("title", title, max_length=200)
        with self._ctx.uow() as uow:
            category = self._locked_category(uow, category_id)
            updated = attrs.evolve(category, **changes)
            if updated == category:
                return category  # nothing changed: cached structures stay current
            uow.categories.update(updated)
            self._touch(uow, category.product_id)
            uow.commit()
        return updated

    def delete_category(self, category_id: str) -> None:
        """Remove an empty category; the categories after it move up.

        Refused with ``Conflict`` while it holds lessons or sub-categories:
        move or delete those first, so no lesson (and no member's progress
        on it) disappears by accident. Drip rules set on the category go with it.
        """
        v.identifier("category_id", category_id, "cat")
        with self._ctx.uow() as uow:
            category = self._locked_category(uow, category_id)
            lessons = uow.lessons.count({"category_id": category_id})
            children = uow.categories.count(
                {"product_id": category.product_id, "parent_id": category_id}
            )
            if lessons or children:
                raise Conflict(
                    f"category {category_id!r} still holds {lessons} lesson(s) and "
                    f"{children} sub-categories; move or delete them first",
                    field="category_id",
                )
            uow.categories.delete(category_id)
            self._renumber_categories(
                uow, self._level(uow, category.product_id, category.parent_id)
            )
            self._touch(uow, category.product_id, forget=category_id)
            uow.commit()

    def move_category(
        self, category_id: str, *, parent_id: str | None = None, position: int | None = None
    ) -> Category:
        """Move a category under ``parent_id`` (``None``: the top level) of the same product.

        ``position`` is 0-based among its new siblings; ``None`` or a position
        past the end puts it last. Its lessons and sub-categories move with
        it. Refused with a ``ValidationError`` naming ``parent_id`` when the
        parent is the category itself or one of its sub-categories, is itself
        a sub-category, or when a category that has sub-categories would
        become one (the tree is two levels deep).
        """
        v.identifier("category_id", category_id, "cat")
        if parent_id is not None:
            v.identifier("parent_id", parent_id, "cat")
        if position is not None:
            v.integer("position", position, minimum=0)
        with self._ctx.uow() as uow:
            category = self._locked_category(uow, category_id)
            product_id = category.product_id
            if parent_id is not None:
                if parent_id == category_id:
                    raise ValidationError("parent_id", "a category cannot be moved under itself")
                parent = self._category(uow, product_id, parent_id, "parent_id")
                if category_id in self._ancestors(uow, parent):
                    raise ValidationError(
                        "parent_id",
                        f"{parent_id!r} is inside {category_id!r}; a category cannot be "
                        "moved under its own sub-category",
                    )
                if parent.parent_id is not None:
                    raise ValidationError(
                        "parent_id", "sub-categories cannot have sub-categories of their own"
                    )
                if uow.categories.count({"product_id": product_id, "parent_id": category_id}):
                    raise ValidationError(
                        "parent_id",
                        f"category {category_id!r} has sub-categories, so it cannot become one",
                    )
            target = [c for c in self._level(uow, product_id, parent_id) if c.id != category_id]
            if parent_id != category.parent_id:
                old = self._level(uow, product_id, category.parent_id)
                self._renumber_categories(uow, [c for c in old if c.id != category_id])
            index = len(target) if position is None else min(position, len(target))
            moved = attrs.evolve(category, parent_id=parent_id)
            target.insert(index, moved)
            self._renumber_categories(uow, target, always=category_id)
            self._touch(uow, product_id)
            uow.commit()
            result = uow.categories.get(category_id)
        assert result is not None
        return result

    # helpers ----------------------------------------------------------------

    def _category(self, uow: UnitOfWork, product_id: str, category_id: str, field: str) -> Category:
        category = self._require(uow.categories, "category", category_id, field)
        if category.product_id != product_id:
            raise ValidationError(field, f"category {category_id!r} belongs to another product")
        return category

    def _touch(self, uow: UnitOfWork, product_id: str, *, forget: str | None = None) -> None:
        """Record a structural change: readers' cached structures are now stale.

        ``forget`` names a deleted category or lesson whose drip rules go too.
        """
        product = uow.products.get(product_id)
        if product is not None:
            rules = product.drip_rules
            if forget is not None and forget in rules:
                rules = {key: value for key, value in rules.items() if key != forget}
            uow.products.update(
                attrs.evolve(
                    product,
                    updated_at=self._ctx.now(),
                    structure_version=product.structure_version + 1,
                    drip_rules=rules,
                )
            )

    def _locked_category(self, uow: UnitOfWork, category_id: str) -> Category:
        """The category, read again once its product is locked for this change."""
        category = self._require(uow.categories, "category", category_id, "category_id")
        self._require_for_update(uow.products, "product", category.product_id, "category_id")
        # Read after the lock: a change committed meanwhile is not overwritten.
        return self._require(uow.categories, "category", category_id, "category_id")

    @staticmethod
    def _level(uow: UnitOfWork, product_id: str, parent_id: str | None) -> list[Category]:
        """The categories directly under ``parent_id`` (or the top level), by position."""
        found = uow.categories.find({"product_id": product_id, "parent_id": parent_id})
        return sorted(found, key=lambda c: (c.position, c.id))

    @staticmethod
    def _ancestors(uow: UnitOfWork, category: Category) -> list[str]:
        """Ids of ``category`` and the categories above it, nearest first."""
        chain = [category.id]
        current = category.parent_id
        while current is not None and current not in chain:  # never loop on bad data
            chain.append(current)
            above = uow.categories.get(current)
            current = above.parent_id if above is not None else None
        return chain

    @staticmethod
    def _renumber_categories(
        uow: UnitOfWork, categories: list[Category], *, always: str | None = None
    ) -> None:
        for index, category in enumerate(categories):
            if category.position != index or category.id == always:
                uow.categories.update(attrs.evolve(category, position=index))

    @staticmethod
    def _renumber(uow: UnitOfWork, lessons: list[Lesson], *, always: str | None = None) -> None:
        for index, lesson in enumerate(lessons):
            if lesson.position != index or lesson.id == always:
                uow.lessons.update(attrs.evolve(lesson, position=index))
