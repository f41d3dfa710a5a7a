"""Cached course structures are never stale: any change, by any portal, is seen at once."""

from __future__ import annotations

from membership_core import Portal
from membership_core.adapters.mail_memory import MemoryMailer

from .helpers import build_course


def test_a_change_made_by_another_portal_shows_in_the_next_outline(sqlite_url: str) -> None:
    reader = Portal.open(sqlite_url, mailer=MemoryMailer(), load_entrypoints=False)
    writer = Portal.open(sqlite_url, mailer=MemoryMailer(), load_entrypoints=False)
    try:
        course = build_course(reader, lessons=2)
        member = reader.checkout.purchase(course.offer.id, email="a@example.com").member_id
        product = course.product.id
        first = [lesson.title for lesson in reader.access.outline(member, product).lessons()]
        assert first == ["Lesson 1", "Lesson 2"]
        assert reader.access.outline(member, product) == reader.access.outline(member, product)

        module = course.lessons[0].category_id
        added = writer.catalog.add_lesson(product, module, "Lesson 3")
        writer.catalog.move_lesson(added.id, module, 0)
        writer.catalog.update_lesson(course.lessons[1].id, title="Renamed")
        titles = [lesson.title for lesson in reader.access.outline(member, product).lessons()]
        assert titles == ["Lesson 3", "Lesson 1", "Renamed"]
        writer.catalog.delete_lesson(added.id)
        titles = [lesson.title for lesson in reader.access.outline(member, product).lessons()]
        assert titles == ["Lesson 1", "Renamed"]
    finally:
        reader.close()
        writer.close()
