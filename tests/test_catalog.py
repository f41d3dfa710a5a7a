"""Catalog: products, categories, lessons, ordering, moving, deleting, search, publishing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import NamedTuple

import attrs
import pytest

from membership_core import (
    UNSET,
    Conflict,
    LessonKind,
    MembershipError,
    NotFound,
    Portal,
    ProductSort,
    ProductStatus,
    ValidationError,
)
from membership_core.adapters.mail_memory import MemoryMailer
from membership_core.domain.catalog import ordered
from membership_core.domain.drip import AfterDelay

from .conftest import PortalFactory
from .helpers import build_course, snapshot


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


def test_search_sorts_by_last_update(open_portal: PortalFactory) -> None:
    portal = open_portal()
    made = []
    for title in ["Alpha", "Bravo", "Charlie"]:
        made.append(portal.catalog.create_product(title))
        portal.clock.advance(minutes=1)
    portal.catalog.update_product(made[0].id, description="edited last")  # Alpha: newest
    portal.clock.advance(minutes=1)
    category = portal.catalog.add_category(made[1].id, "M")  # a structural change updates too
    assert [p.title for p in portal.catalog.search_products(sort="updated")] == [
        "Charlie",
        "Alpha",
        "Bravo",
    ]
    newest = portal.catalog.search_products(sort=ProductSort.UPDATED, descending=True, limit=2)
    assert [p.title for p in newest] == ["Bravo", "Alpha"]
    assert newest[0].updated_at == category.created_at
    # created order is unchanged by the updates
    created = portal.catalog.search_products(sort=ProductSort.CREATED)
    assert [p.title for p in created] == ["Alpha", "Bravo", "Charlie"]


# -- categories: rename, delete, move --------------------------------------------


def _version(portal: Portal, product_id: str) -> int:
    return portal.catalog.get_product(product_id).structure_version


def _tree(portal: Portal, product_id: str) -> list[tuple[str, str | None, int]]:
    """(title, parent title, position) of every category, parents first."""
    categories, _ = portal.catalog.structure(product_id)
    titles = {c.id: c.title for c in categories}
    return sorted(
        ((c.title, titles.get(c.parent_id or ""), c.position) for c in categories),
        key=lambda row: (row[1] is not None, row[1] or "", row[2]),
    )


def test_rename_a_category(open_portal: PortalFactory) -> None:
    portal = open_portal()
    product = portal.catalog.create_product("Course")
    category = portal.catalog.add_category(product.id, "Basics")
    version = _version(portal, product.id)
    renamed = portal.catalog.update_category(category.id, title="  Foundations ")
    assert renamed == attrs.evolve(category, title="Foundations")
    assert portal.catalog.get_category(category.id) == renamed
    assert _version(portal, product.id) == version + 1
    # nothing to change: no write, so cached structures stay valid
    assert portal.catalog.update_category(category.id) == renamed
    assert portal.catalog.update_category(category.id, title=UNSET) == renamed
    assert portal.catalog.update_category(category.id, title="Foundations") == renamed
    assert _version(portal, product.id) == version + 1


def test_delete_a_category_only_when_empty(open_portal: PortalFactory) -> None:
    portal = open_portal()
    product = portal.catalog.create_product("Course")
    first = portal.catalog.add_category(product.id, "One")
    second = portal.catalog.add_category(product.id, "Two")
    third = portal.catalog.add_category(product.id, "Three")
    sub = portal.catalog.add_category(product.id, "Two.a", parent_id=second.id)
    lesson = portal.catalog.add_lesson(product.id, third.id, "L")
    portal.drip.set_rules(product.id, first.id, [AfterDelay(days=3)])

    with pytest.raises(Conflict) as info:
        portal.catalog.delete_category(second.id)  # has a sub-category
    assert info.value.field == "category_id"
    with pytest.raises(Conflict) as info:
        portal.catalog.delete_category(third.id)  # has a lesson
    assert "lesson" in str(info.value)

    version = _version(portal, product.id)
    portal.catalog.delete_category(first.id)
    assert _version(portal, product.id) == version + 1
    assert first.id not in portal.catalog.get_product(product.id).drip_rules
    with pytest.raises(NotFound) as missing:
        portal.catalog.get_category(first.id)
    assert missing.value.field == "category_id"
    assert _tree(portal, product.id) == [("Two", None, 0), ("Three", None, 1), ("Two.a", "Two", 0)]

    portal.catalog.delete_category(sub.id)
    portal.catalog.delete_category(second.id)
    portal.catalog.delete_lesson(lesson.id)
    portal.catalog.delete_category(third.id)
    assert portal.catalog.structure(product.id) == ([], [])
    with pytest.raises(NotFound):
        portal.catalog.delete_category(third.id)


def test_move_categories_between_parents(open_portal: PortalFactory) -> None:
    portal = open_portal()
    product = portal.catalog.create_product("Course")
    one = portal.catalog.add_category(product.id, "One")
    two = portal.catalog.add_category(product.id, "Two")
    three = portal.catalog.add_category(product.id, "Three")
    one_a = portal.catalog.add_category(product.id, "One.a", parent_id=one.id)
    portal.catalog.add_category(product.id, "One.b", parent_id=one.id)
    lessons = {
        name: portal.catalog.add_lesson(product.id, where.id, name)
        for name, where in [("in One", one), ("in One.a", one_a), ("in Three", three)]
    }

    # a sub-category to the top level, at position 1
    version = _version(portal, product.id)
    moved = portal.catalog.move_category(one_a.id, position=1)
    assert (moved.parent_id, moved.position) == (None, 1)
    assert _version(portal, product.id) == version + 1
    assert _tree(portal, product.id) == [
        ("One", None, 0),
        ("One.a", None, 1),
        ("Two", None, 2),
        ("Three", None, 3),
        ("One.b", "One", 0),
    ]
    # a childless top-level category under another, first; its lessons come along
    moved = portal.catalog.move_category(three.id, parent_id=two.id, position=0)
    assert (moved.parent_id, moved.position) == (two.id, 0)
    # within one level, past the end means last
    portal.catalog.move_category(one.id, position=99)
    assert _tree(portal, product.id) == [
        ("One.a", None, 0),
        ("Two", None, 1),
        ("One", None, 2),
        ("One.b", "One", 0),
        ("Three", "Two", 0),
    ]
    # back under One, at the end (position=None)
    moved = portal.catalog.move_category(one_a.id, parent_id=one.id)
    assert (moved.parent_id, moved.position) == (one.id, 1)
    categories, stored = portal.catalog.structure(product.id)
    assert [lesson.title for lesson in ordered(categories, stored)] == [
        "in Three",  # Two > Three
        "in One",  # One
        "in One.a",  # One > One.a
    ]
    assert portal.catalog.get_lesson(lessons["in Three"].id).category_id == three.id


def test_moves_that_would_break_the_tree_are_refused(open_portal: PortalFactory) -> None:
    portal = open_portal()
    product = portal.catalog.create_product("Course")
    other = portal.catalog.create_product("Other")
    top = portal.catalog.add_category(product.id, "Top")
    sub = portal.catalog.add_category(product.id, "Sub", parent_id=top.id)
    lone = portal.catalog.add_category(product.id, "Lone")
    elsewhere = portal.catalog.add_category(other.id, "Elsewhere")
    refused = [
        (top.id, top.id, "itself"),
        (top.id, sub.id, "own sub-category"),
        (lone.id, sub.id, "sub-categories cannot have"),
        (top.id, lone.id, "has sub-categories"),
        (lone.id, elsewhere.id, "another product"),
    ]
    version = _version(portal, product.id)
    for category_id, parent_id, message in refused:
        with pytest.raises(ValidationError) as info:
            portal.catalog.move_category(category_id, parent_id=parent_id)
        assert info.value.field == "parent_id"
        assert message in str(info.value)
    with pytest.raises(NotFound) as missing:
        portal.catalog.move_category(lone.id, parent_id="cat_missing")
    assert missing.value.field == "parent_id"
    assert _version(portal, product.id) == version
    assert _tree(portal, product.id) == [("Top", None, 0), ("Lone", None, 1), ("Sub", "Top", 0)]


def test_reorder_sub_categories_and_check_the_parent(open_portal: PortalFactory) -> None:
    portal = open_portal()
    product = portal.catalog.create_product("Course")
    top = portal.catalog.add_category(product.id, "Top")
    a = portal.catalog.add_category(product.id, "A", parent_id=top.id)
    b = portal.catalog.add_category(product.id, "B", parent_id=top.id)
    version = _version(portal, product.id)
    reordered = portal.catalog.reorder_categories(product.id, [b.id, a.id], parent_id=top.id)
    assert [(c.title, c.position) for c in reordered] == [("B", 0), ("A", 1)]
    assert _version(portal, product.id) == version + 1
    with pytest.raises(NotFound) as missing:
        portal.catalog.reorder_categories(product.id, [], parent_id="cat_missing")
    assert missing.value.field == "parent_id"
    other = portal.catalog.create_product("Other")
    with pytest.raises(ValidationError) as info:
        portal.catalog.reorder_categories(other.id, [a.id, b.id], parent_id=top.id)
    assert info.value.field == "parent_id"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda p: p.catalog.reorder_categories("prod_x", [], parent_id=5), "parent_id"),
        (lambda p: p.catalog.reorder_categories("prod_x", [], parent_id="les_1"), "parent_id"),
        (lambda p: p.catalog.reorder_categories("prod_x", [1, "cat_x"]), "category_ids"),
        (lambda p: p.catalog.reorder_categories("prod_x", "cat_x"), "category_ids"),
        (lambda p: p.catalog.get_category("prod_x"), "category_id"),
        (lambda p: p.catalog.update_category(None, title="x"), "category_id"),
        (lambda p: p.catalog.update_category("cat_x", title=""), "title"),
        (lambda p: p.catalog.update_category("cat_x", title=7), "title"),
        (lambda p: p.catalog.update_category("cat_x", title="x" * 201), "title"),
        (lambda p: p.catalog.delete_category("les_x"), "category_id"),
        (lambda p: p.catalog.move_category(5), "category_id"),
        (lambda p: p.catalog.move_category("cat_x", parent_id="prod_1"), "parent_id"),
        (lambda p: p.catalog.move_category("cat_x", position=-1), "position"),
        (lambda p: p.catalog.move_category("cat_x", position="1"), "position"),
        (lambda p: p.catalog.move_category("cat_x", position=True), "position"),
    ],
)
def test_bad_category_input_names_the_field(
    open_portal: PortalFactory, call: object, field: str
) -> None:
    portal = open_portal()
    with pytest.raises(ValidationError) as info:
        call(portal)  # type: ignore[operator]
    assert info.value.field == field


def test_missing_categories_are_not_found(open_portal: PortalFactory) -> None:
    portal = open_portal()
    for call in (
        lambda: portal.catalog.update_category("cat_missing", title="x"),
        lambda: portal.catalog.delete_category("cat_missing"),
        lambda: portal.catalog.move_category("cat_missing"),
    ):
        with pytest.raises(NotFound) as info:
            call()
        assert info.value.field == "category_id"


# -- a failed call leaves storage as it was ---------------------------------------


class Catalog(NamedTuple):
    product: str
    other: str
    top: str
    sub: str
    lone: str
    foreign: str


FAILING_CATALOG_CALLS: list[tuple[str, Callable[[Portal, Catalog], object]]] = [
    ("rename to blank", lambda p, c: p.catalog.update_category(c.top, title=" ")),
    ("delete with lessons", lambda p, c: p.catalog.delete_category(c.lone)),
    ("delete with sub-categories", lambda p, c: p.catalog.delete_category(c.top)),
    ("delete missing", lambda p, c: p.catalog.delete_category("cat_999999")),
    ("move under itself", lambda p, c: p.catalog.move_category(c.top, parent_id=c.top)),
    ("move under its child", lambda p, c: p.catalog.move_category(c.top, parent_id=c.sub)),
    ("move too deep", lambda p, c: p.catalog.move_category(c.lone, parent_id=c.sub)),
    ("move a parent under", lambda p, c: p.catalog.move_category(c.top, parent_id=c.lone)),
    ("move across products", lambda p, c: p.catalog.move_category(c.lone, parent_id=c.foreign)),
    ("move under missing", lambda p, c: p.catalog.move_category(c.lone, parent_id="cat_9")),
    ("move to bad position", lambda p, c: p.catalog.move_category(c.sub, position=-1)),
    (
        "reorder under a missing parent",
        lambda p, c: p.catalog.reorder_categories(c.product, [], parent_id="cat_9"),
    ),
    (
        "reorder under another product's category",
        lambda p, c: p.catalog.reorder_categories(c.other, [], parent_id=c.top),
    ),
    ("reorder a partial list", lambda p, c: p.catalog.reorder_categories(c.product, [c.top])),
]


@pytest.mark.parametrize(
    ("name", "call"), FAILING_CATALOG_CALLS, ids=[n for n, _ in FAILING_CATALOG_CALLS]
)
def test_a_failed_category_call_changes_nothing(
    open_portal: PortalFactory, name: str, call: Callable[[Portal, Catalog], object]
) -> None:
    portal = open_portal()
    product = portal.catalog.create_product("Course")
    other = portal.catalog.create_product("Other")
    top = portal.catalog.add_category(product.id, "Top")
    sub = portal.catalog.add_category(product.id, "Sub", parent_id=top.id)
    lone = portal.catalog.add_category(product.id, "Lone")
    portal.catalog.add_lesson(product.id, lone.id, "L")
    foreign = portal.catalog.add_category(other.id, "Foreign")
    world = Catalog(product.id, other.id, top.id, sub.id, lone.id, foreign.id)
    portal.clock.advance(minutes=1)  # a stray touch would show in updated_at
    before = snapshot(portal)
    with pytest.raises(MembershipError):
        call(portal, world)
    assert snapshot(portal) == before


# -- cached course structures follow every category change -----------------------


def test_category_changes_by_another_portal_show_in_the_next_outline(sqlite_url: str) -> None:
    reader = Portal.open(sqlite_url, mailer=MemoryMailer(), load_entrypoints=False)
    writer = Portal.open(sqlite_url, mailer=MemoryMailer(), load_entrypoints=False)
    try:
        course = build_course(reader, lessons=4)  # Module 1 (L1, L2), Module 2 (L3, L4)
        member = reader.checkout.purchase(course.offer.id, email="a@example.com").member_id
        product = course.product.id

        def tree() -> list[tuple[str, list[str], list[str]]]:
            outline = reader.access.outline(member, product)
            return [
                (c.title, [lesson.title for lesson in c.lessons], [x.title for x in c.children])
                for c in outline.categories
            ]

        assert tree() == [
            ("Module 1", ["Lesson 1", "Lesson 2"], []),
            ("Module 2", ["Lesson 3", "Lesson 4"], []),
        ]
        first, second = (lesson.category_id for lesson in course.lessons[::2])
        writer.catalog.update_category(first, title="Start here")
        assert tree()[0][0] == "Start here"
        writer.catalog.move_category(second, parent_id=first)
        assert tree() == [("Start here", ["Lesson 1", "Lesson 2"], ["Module 2"])]
        extra = writer.catalog.add_category(product, "Extra")
        writer.catalog.move_category(extra.id, position=0)
        assert [title for title, _, _ in tree()] == ["Extra", "Start here"]
        writer.catalog.reorder_categories(product, [first, extra.id])
        assert [title for title, _, _ in tree()] == ["Start here", "Extra"]
        writer.catalog.delete_category(extra.id)
        assert [title for title, _, _ in tree()] == ["Start here"]
    finally:
        reader.close()
        writer.close()
