"""Drip schedules through the portal: decisions, the outline, tick, rule changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from membership_core import AccessDenied, AccessReason, LessonState, NotFound, ValidationError
from membership_core.domain.drip import (
    AfterDelay,
    AfterLesson,
    DripSettings,
    FromAccessGrant,
    FromFirstVisit,
    OnDate,
)
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import Course, build_course

BERLIN = ZoneInfo("Europe/Berlin")


def _unlocked_events(portal: TestPortal) -> list[tuple[str, ...]]:
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        return [
            tuple(r.payload["lesson_ids"]) for r in uow.events.find({"type": "LessonsUnlocked"})
        ]


def _dripped_course(portal: TestPortal) -> Course:
    """Lesson 1 at once, lesson 2 on day 7 at 09:00 Berlin time, lesson 3 after lesson 2."""
    course = build_course(portal, lessons=3)
    portal.drip.configure(course.product.id, DripSettings(FromAccessGrant(), "Europe/Berlin"))
    second, third = course.lessons[1].id, course.lessons[2].id
    portal.drip.set_rules(course.product.id, second, [AfterDelay(days=7, at=time(9, 0))])
    portal.drip.set_rules(course.product.id, third, [AfterLesson()])
    return course


def test_a_dripped_lesson_opens_on_time_and_is_announced_once(open_portal: PortalFactory) -> None:
    # 20 March 2026, 08:00 UTC: day 7 is 27 March, and 29 March is the DST change.
    portal = open_portal(start=datetime(2026, 3, 24, 8, 0, tzinfo=UTC))
    course = _dripped_course(portal)
    member = portal.checkout.purchase(course.offer.id, email="a@example.com").member_id
    first, second, third = (lesson.id for lesson in course.lessons)
    opens = datetime(2026, 3, 31, 9, 0, tzinfo=BERLIN)  # day 7, after the change
    assert opens.utcoffset() == timedelta(hours=2)

    assert portal.access.can_view(member, first).allowed
    decision = portal.access.can_view(member, second)
    assert (decision.reason, decision.available_at) == (AccessReason.DRIPPED, opens)
    assert portal.access.can_view(member, third).reason is AccessReason.LOCKED
    states = {
        lesson.id: lesson.state
        for lesson in portal.access.outline(member, course.product.id).lessons()
    }
    assert states == {
        first: LessonState.AVAILABLE,
        second: LessonState.DRIPPED,
        third: LessonState.LOCKED,
    }
    with pytest.raises(AccessDenied):
        portal.progress.complete_lesson(member, second)

    assert portal.tick().lessons_unlocked == 0  # the first look opens lesson 1 silently
    portal.clock.set(opens - timedelta(microseconds=1))
    assert portal.tick().lessons_unlocked == 0
    assert not portal.access.can_view(member, second).allowed
    portal.clock.set(opens)
    assert portal.tick().lessons_unlocked == 1
    assert portal.tick().lessons_unlocked == 0
    assert _unlocked_events(portal) == [(second,)]
    assert portal.access.can_view(member, second).allowed

    portal.progress.complete_lesson(member, second)
    assert portal.access.can_view(member, third).allowed


def test_a_rule_moved_later_never_closes_an_open_lesson(open_portal: PortalFactory) -> None:
    portal = open_portal(start=datetime(2026, 6, 1, 8, 0, tzinfo=UTC))
    course = _dripped_course(portal)
    early = portal.checkout.purchase(course.offer.id, email="early@example.com").member_id
    second = course.lessons[1].id
    portal.clock.advance(days=8)
    late = portal.checkout.purchase(course.offer.id, email="late@example.com").member_id
    portal.tick()
    assert portal.access.can_view(early, second).allowed

    later = [AfterDelay(days=30)]
    changes = portal.drip.preview_rule_change(course.product.id, second, later)
    assert [(c.member_id, c.lesson_id, c.earlier) for c in changes] == [(late, second, False)]
    assert changes[0].after.opens_at == portal.clock.now() + timedelta(days=30)
    portal.drip.set_rules(course.product.id, second, later)
    assert portal.access.can_view(early, second).allowed  # stays open
    decision = portal.access.can_view(late, second)
    assert decision.reason is AccessReason.DRIPPED
    assert decision.available_at == portal.clock.now() + timedelta(days=30)


def test_late_joiners_of_a_fixed_date_schedule_see_what_has_passed(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(start=datetime(2026, 9, 1, 8, 0, tzinfo=UTC))
    course = build_course(portal, lessons=2)
    product = course.product.id
    portal.drip.configure(product, DripSettings(FromAccessGrant(), "Europe/Berlin"))
    module = portal.catalog.structure(product)[0][0].id
    portal.drip.set_rules(product, module, [OnDate(datetime(2026, 9, 10, 18, 0))])
    member = portal.checkout.purchase(course.offer.id, email="a@example.com").member_id
    assert portal.access.can_view(member, course.lessons[0].id).reason is AccessReason.DRIPPED
    portal.clock.set(datetime(2026, 9, 20, tzinfo=UTC))
    joiner = portal.checkout.purchase(course.offer.id, email="b@example.com").member_id
    assert all(portal.access.can_view(joiner, lesson.id).allowed for lesson in course.lessons)
    assert portal.drip.schedule(joiner, product)[course.lessons[0].id].available


@pytest.mark.parametrize(
    ("item", "rules", "field"),
    [
        ("off_1", [], "item_id"),
        (None, "after a week", "rules"),
        (None, [AfterDelay(days=1), "soon"], "rules[1]"),
    ],
)
def test_rule_changes_are_validated_and_write_nothing(
    open_portal: PortalFactory, item: str | None, rules: object, field: str
) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    before = portal.catalog.get_product(course.product.id)
    target = course.lessons[0].id if item is None else item
    with pytest.raises(ValidationError) as info:
        portal.drip.set_rules(course.product.id, target, rules)  # type: ignore[arg-type]
    assert info.value.field == field
    assert portal.catalog.get_product(course.product.id) == before


def test_a_lesson_of_another_product_is_refused(open_portal: PortalFactory) -> None:
    portal = open_portal()
    one = build_course(portal, lessons=1, title="One")
    two = build_course(portal, lessons=1, title="Two")
    with pytest.raises(ValidationError) as info:
        portal.drip.set_rules(one.product.id, two.lessons[0].id, [AfterDelay(days=1)])
    assert info.value.field == "item_id"
    with pytest.raises(NotFound) as missing:
        portal.drip.set_rules(one.product.id, "les_999999", [])
    assert missing.value.field == "item_id"


def test_only_lessons_opened_by_time_are_announced(open_portal: PortalFactory) -> None:
    portal = open_portal(start=datetime(2026, 6, 1, 8, 0, tzinfo=UTC))
    course = build_course(portal, lessons=3)
    product = course.product.id
    first, second, third = (lesson.id for lesson in course.lessons)
    portal.drip.configure(product, DripSettings(FromAccessGrant(), "UTC"))
    portal.drip.set_rules(product, second, [AfterLesson()])
    portal.drip.set_rules(product, third, [AfterDelay(days=3)])
    member = portal.checkout.purchase(course.offer.id, email="a@example.com").member_id
    portal.tick()
    portal.clock.advance(days=1)
    portal.progress.complete_lesson(member, first)  # opens the second lesson at once
    assert portal.access.can_view(member, second).allowed
    portal.clock.advance(days=2)
    assert portal.tick().lessons_unlocked == 1
    assert _unlocked_events(portal) == [(third,)]  # the second lesson is not news


def test_turning_drip_on_for_a_live_course_takes_nothing_away(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=2)
    product = course.product.id
    member = portal.checkout.purchase(course.offer.id, email="old@example.com").member_id
    portal.drip.set_rules(product, course.lessons[1].id, [AfterDelay(days=7)])
    portal.drip.configure(product, DripSettings(FromAccessGrant(), "UTC"))
    newcomer = portal.checkout.purchase(course.offer.id, email="new@example.com").member_id
    assert portal.access.can_view(member, course.lessons[1].id).allowed
    decision = portal.access.can_view(newcomer, course.lessons[1].id)
    assert decision.reason is AccessReason.DRIPPED


def test_a_first_visit_clock_announces_its_lessons_on_time(open_portal: PortalFactory) -> None:
    portal = open_portal(start=datetime(2026, 6, 1, 8, tzinfo=UTC))
    course = build_course(portal, lessons=2)
    portal.drip.configure(course.product.id, DripSettings(FromFirstVisit(), "UTC"))
    second = course.lessons[1].id
    portal.drip.set_rules(course.product.id, second, [AfterDelay(days=2)])
    member = portal.checkout.purchase(course.offer.id, email="a@example.com").member_id
    portal.tick()
    portal.clock.advance(days=1)
    portal.progress.record_visit(member, course.product.id)
    opens = portal.clock.now() + timedelta(days=2)
    assert portal.access.can_view(member, second).available_at == opens
    assert portal.tick().lessons_unlocked == 0
    portal.clock.set(opens)
    assert portal.tick().lessons_unlocked == 1
    assert _unlocked_events(portal) == [(second,)]


def test_a_lesson_waiting_for_a_completion_and_a_date_is_announced_at_the_date(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(start=datetime(2026, 6, 1, 8, tzinfo=UTC))
    course = build_course(portal, lessons=2)
    portal.drip.configure(course.product.id, DripSettings(FromAccessGrant(), "UTC"))
    first, second = (lesson.id for lesson in course.lessons)
    portal.drip.set_rules(course.product.id, second, [AfterLesson(), AfterDelay(days=5)])
    member = portal.checkout.purchase(course.offer.id, email="a@example.com").member_id
    start = portal.clock.now()
    portal.tick()
    portal.clock.advance(days=1)
    portal.progress.complete_lesson(member, first)
    decision = portal.access.can_view(member, second)
    assert (decision.reason, decision.available_at) == (
        AccessReason.DRIPPED,
        start + timedelta(days=5),
    )
    assert portal.tick().lessons_unlocked == 0
    portal.clock.set(start + timedelta(days=5))
    assert portal.tick().lessons_unlocked == 1
    assert _unlocked_events(portal) == [(second,)]


def test_a_completion_that_opens_a_lesson_by_itself_is_not_announced(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=2)
    portal.drip.configure(course.product.id, DripSettings(FromAccessGrant(), "UTC"))
    first, second = (lesson.id for lesson in course.lessons)
    portal.drip.set_rules(course.product.id, second, [AfterLesson()])
    member = portal.checkout.purchase(course.offer.id, email="a@example.com").member_id
    portal.tick()
    portal.progress.complete_lesson(member, first)
    assert portal.access.can_view(member, second).allowed
    portal.clock.advance(hours=1)
    assert portal.tick().lessons_unlocked == 0
    assert _unlocked_events(portal) == []
