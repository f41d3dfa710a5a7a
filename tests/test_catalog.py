"""Catalog: products, categories, lessons, ordering, search, publishing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from membership_core import (
    UNSET,
    Conflict,
    LessonKind,
    NotFound,
    ProductSort,
    ProductStatus,
    ValidationError,
)

from .conftest import PortalFactory


def test_create_and_update_product(open_portal: PortalFactory) -> None:
    portal = open_portal()
    product = portal.catalog.create_product(
        "  Python 101 ", description="Intro", image_url="https://cdn.example.com/p.png"
    )
    assert product.title == "Python 101"
    assert product.status is ProductStatus.DRAFT
    portal.clock.advance(minutes=5)
    updated = portal.catalog.update_product(product.id, title="Python 102")
    assert updated.title == "Python 102"
    assert updated.description == "Intro"
    assert updated.updated_at == product.created_at + timedelta(minutes=5)
    cleared = portal.catalog.update_product(product.id, image_url=None, description=UNSET)
    assert cleared.image_url is None
    assert cleared.description == "Intro"
    assert portal.catalog.get_product(product.id) == cleared


def test_structure_positions_and_subcategories(open_portal: PortalFactory) -> None:
    portal = open_portal()
    product = portal.catalog.create_product("Course")
    first = portal.catalog.add_category(product.id, "One")
    second = portal.catalog.add_category(product.id, "Two")
    sub = portal.catalog.add_category(product.id, "One.a", parent_id=first.id)
    assert (first.position, second.position, sub.position) == (0, 1, 0)
    with pytest.raises(ValidationError) as info:
        portal.catalog.add_category(product.id, "too deep", parent_id=sub.id)
    assert info.value.field == "parent_id"
    lessons = [
        portal.catalog.add_lesson(product.id, first.id, f"L{i}", kind=kind)
        for i, kind in enumerate(["video", LessonKind.TEXT, "file"])
    ]
    assert [lesson.position for lesson in lessons] == [0, 1, 2]
    assert lessons[0].kind is LessonKind.VIDEO

    portal.catalog.move_lesson(lessons[2].id, first.id, 0)
    _, stored = portal.catalog.structure(product.id)
    in_first = sorted((x for x in stored if x.category_id == first.id), key=lambda x: x.position)
    assert [x.title for x in in_first] == ["L2", "L0", "L1"]

    moved = portal.catalog.move_lesson(lessons[0].id, second.id, 99)
    assert (moved.category_id, moved.position) == (second.id, 0)
    _, stored = portal.catalog.structure(product.id)
    in_first = sorted((x for x in stored if x.category_id == first.id), key=lambda x: x.position)
    assert [(x.title, x.position) for x in in_first] == [("L2", 0), ("L1", 1)]

    reordered = portal.catalog.reorder_categories(product.id, [second.id, first.id])
    assert [(c.id, c.position) for c in reordered] == [(second.id, 0), (first.id, 1)]
    with pytest.raises(ValidationError) as info:
        portal.catalog.reorder_categories(product.id, [second.id])
    assert info.value.field == "category_ids"


def test_lessons_cannot_cross_products(open_portal: PortalFactory) -> None:
    portal = open_portal()
    a = portal.catalog.create_product("A")
    b = portal.catalog.create_product("B")
    category_b = portal.catalog.add_category(b.id, "B1")
    with pytest.raises(ValidationError) as info:
        portal.catalog.add_lesson(a.id, category_b.id, "wrong")
    assert info.value.field == "category_id"


def test_publish_requires_a_published_lesson(open_portal: PortalFactory) -> None:
    portal = open_portal()
    product = portal.catalog.create_product("Empty")
    with pytest.raises(Conflict):
        portal.catalog.publish_product(product.id)
    category = portal.catalog.add_category(product.id, "M")
    portal.catalog.add_lesson(product.id, category.id, "draft", published=False)
    with pytest.raises(Conflict):
        portal.catalog.publish_product(product.id)
    portal.catalog.add_lesson(product.id, category.id, "ready")
    assert portal.catalog.publish_product(product.id).published
    assert portal.catalog.publish_product(product.id).published  # idempotent
    assert portal.catalog.unpublish_product(product.id).status is ProductStatus.DRAFT


def test_search_is_partial_case_insensitive_sorted_and_paged(open_portal: PortalFactory) -> None:
    portal = open_portal()
    for title in ["Advanced Python", "python basics", "Go in Practice", "PYTHON for Data"]:
        portal.catalog.create_product(title)
        portal.clock.advance(minutes=1)
    found = portal.catalog.search_products("python")
    assert [p.title for p in found] == ["Advanced Python", "python basics", "PYTHON for Data"]
    newest = portal.catalog.search_products("", sort="created", descending=True, limit=2)
    assert [p.title for p in newest] == ["PYTHON for Data", "Go in Practice"]
    page = portal.catalog.search_products("python", sort=ProductSort.TITLE, limit=1, offset=1)
    assert [p.title for p in page] == ["python basics"]
    assert portal.catalog.search_products("rust") == []
    assert portal.catalog.search_products("", status="published") == []


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda p: p.catalog.create_product(""), "title"),
        (lambda p: p.catalog.create_product("x" * 201), "title"),
        (lambda p: p.catalog.create_product(42), "title"),
        (lambda p: p.catalog.create_product("ok", image_url="ftp://x"), "image_url"),
        (lambda p: p.catalog.get_product("off_123"), "product_id"),
        (lambda p: p.catalog.search_products(sort="price"), "sort"),
        (lambda p: p.catalog.search_products(limit=0), "limit"),
        (lambda p: p.catalog.search_products(limit=10_000), "limit"),
        (lambda p: p.catalog.search_products(offset=-1), "offset"),
        (lambda p: p.catalog.add_category("prod_x", ""), "title"),
        (lambda p: p.catalog.add_lesson("prod_x", "cat_x", "t", kind="podcast"), "kind"),
        (lambda p: p.catalog.add_lesson("prod_x", "cat_x", "t", preview="yes"), "preview"),
        (lambda p: p.catalog.move_lesson("les_x", "cat_x", -1), "position"),
    ],
)
def test_bad_input_names_the_field(open_portal: PortalFactory, call: object, field: str) -> None:
    portal = open_portal()
    with pytest.raises(ValidationError) as info:
        call(portal)  # type: ignore[operator]
    assert info.value.field == field
    assert field in str(info.value)


def test_missing_records_are_not_found(open_portal: PortalFactory) -> None:
    portal = open_portal()
    with pytest.raises(NotFound) as info:
        portal.catalog.get_product("prod_missing")
    assert info.value.field == "product_id"
    with pytest.raises(NotFound):
        portal.catalog.add_category("prod_missing", "M")
    with pytest.raises(NotFound):
        portal.catalog.add_lesson("prod_missing", "cat_missing", "L")
