"""A failed call leaves storage exactly as it was (checked on SQL storage)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from membership_core import MembershipError, Portal
from membership_core.adapters.sql.schema import tables
from membership_core.testing import make_test_portal

from .helpers import Course, build_course


def _snapshot(portal: Portal) -> dict[str, list[Any]]:
    """Every row of every table, as tuples, in a stable order."""
    import sqlalchemy as sa

    engine = portal.storage.engine  # type: ignore[attr-defined]
    with engine.connect() as connection:
        return {
            name: sorted(tuple(map(repr, row)) for row in connection.execute(sa.select(table)))
            for name, table in tables.items()
        }


class World(NamedTuple):
    portal: Portal
    course: Course
    empty_product_id: str
    empty_category_id: str


FAILING_CALLS: list[tuple[str, Callable[[World], object]]] = [
    ("empty title", lambda w: w.portal.catalog.create_product("")),
    (
        "lesson in a missing category",
        lambda w: w.portal.catalog.add_lesson(w.course.product.id, "cat_999999", "x"),
    ),
    (
        "publish a product without lessons",
        lambda w: w.portal.catalog.publish_product(w.empty_product_id),
    ),
    (
        "bad email at checkout",
        lambda w: w.portal.checkout.purchase(w.course.offer.id, email="nope"),
    ),
    ("missing offer", lambda w: w.portal.checkout.purchase("off_999999", email="a@example.com")),
    (
        "complete as a missing member",
        lambda w: w.portal.progress.complete_lesson("mem_999999", w.course.lessons[0].id),
    ),
    ("bad timezone", lambda w: w.portal.settings.update_site(timezone="Mars/Olympus")),
    (
        "bad currency among good fields",
        lambda w: w.portal.settings.update_site(title="New title", currency="ABC"),
    ),
    ("duplicate invite", lambda w: w.portal.members.invite("ADA@example.com")),
    (
        "reorder leaving a category out",
        lambda w: w.portal.catalog.reorder_categories(w.course.product.id, []),
    ),
    (
        "move into another product's category",
        lambda w: w.portal.catalog.move_lesson(w.course.lessons[0].id, w.empty_category_id, 0),
    ),
]


@pytest.mark.parametrize(("name", "call"), FAILING_CALLS, ids=[n for n, _ in FAILING_CALLS])
def test_failed_call_changes_nothing(
    sqlite_url: str, name: str, call: Callable[[World], object]
) -> None:
    portal = make_test_portal(sqlite_url)
    try:
        course = build_course(portal, lessons=2)
        empty = portal.catalog.create_product("Empty")
        category = portal.catalog.add_category(empty.id, "Only a category")
        portal.members.invite("ada@example.com")
        before = _snapshot(portal)
        with pytest.raises(MembershipError):
            call(World(portal, course, empty.id, category.id))
        assert _snapshot(portal) == before
    finally:
        portal.close()
