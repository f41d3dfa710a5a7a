"""Admin grants and revocations, the access history, and progress corrections and activity."""

from __future__ import annotations

from datetime import timedelta

import pytest

from membership_core import (
    AccessReason,
    EnrollmentSource,
    EnrollmentStatus,
    NotFound,
    ValidationError,
)
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import Course, build_course


def _member(portal: TestPortal, course: Course, email: str = "a@example.com") -> str:
    return portal.checkout.purchase(course.offer.id, email=email).member_id


def _events(portal: TestPortal, kind: str) -> list[dict[str, object]]:
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        return [r.payload for r in uow.events.find({"type": kind})]


def test_admin_grant_with_a_window_and_a_reason(open_portal: PortalFactory) -> None:
    portal = open_portal()
    free = build_course(portal, lessons=1, title="Free")
    paid = build_course(portal, lessons=1, title="Bonus")
    member = _member(portal, free)
    lesson = paid.lessons[0].id
    assert portal.access.can_view(member, lesson).reason is AccessReason.NOT_ENROLLED
    start = portal.clock.now() + timedelta(days=1)
    grant = portal.access.grant(
        member,
        paid.product.id,
        reason="conference speaker",
        starts_at=start,
        ends_at=start + timedelta(days=30),
    )
    assert grant.source is EnrollmentSource.ADMIN
    assert grant.reason == "conference speaker"
    decision = portal.access.can_view(member, lesson)
    assert (decision.reason, decision.available_at) == (AccessReason.NOT_STARTED, start)
    portal.clock.set(start)
    assert portal.access.can_view(member, lesson).allowed
    portal.clock.advance(days=30)
    assert portal.access.can_view(member, lesson).reason is AccessReason.EXPIRED
    assert [e["enrollment_id"] for e in _events(portal, "AccessGranted")][-1] == grant.id


def test_revoke_ends_every_grant_and_records_why(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    member = _member(portal, course)
    portal.access.grant(member, course.product.id, reason="extra seat")
    revoked = portal.access.revoke(member, course.product.id, reason="chargeback")
    assert len(revoked) == 2  # the purchase's grant and the admin's
    assert all(e.status is EnrollmentStatus.REVOKED for e in revoked)
    assert all(e.revoke_reason == "chargeback" for e in revoked)
    assert portal.access.can_view(member, course.lessons[0].id).reason is AccessReason.REVOKED
    assert portal.access.revoke(member, course.product.id, reason="again") == []
    assert len(_events(portal, "AccessRevoked")) == 2
    history = portal.access.enrollments(member)
    assert [e.source for e in history] == [EnrollmentSource.PURCHASE, EnrollmentSource.ADMIN]
    assert history[0].purchase_id is not None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"reason": ""}, "reason"),
        ({"reason": "x", "starts_at": "tomorrow"}, "starts_at"),
        ({"reason": "x", "ends_at": "never"}, "ends_at"),
        ({"reason": "x", "ends_at": "PAST"}, "ends_at"),
        ({"reason": "x", "product_id": "les_1"}, "product_id"),
    ],
)
def test_grant_validates_and_writes_nothing(
    open_portal: PortalFactory, kwargs: dict[str, object], field: str
) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    member = _member(portal, course)
    if kwargs.get("ends_at") == "PAST":
        kwargs = kwargs | {"ends_at": portal.clock.now() - timedelta(seconds=1)}
    arguments: dict[str, object] = {"product_id": course.product.id} | kwargs
    with pytest.raises(ValidationError) as info:
        portal.access.grant(member, **arguments)  # type: ignore[arg-type]
    assert info.value.field == field
    assert len(portal.access.enrollments(member)) == 1
    with pytest.raises(NotFound):
        portal.access.grant("mem_404", course.product.id, reason="x")


def test_undo_completion_keeps_the_course_completion(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=2)
    member = _member(portal, course)
    for lesson in course.lessons:
        portal.progress.complete_lesson(member, lesson.id)
    assert portal.progress.is_completed(member, course.product.id)
    progress = portal.progress.undo_completion(member, course.lessons[1].id, reason="cheated")
    assert (progress.completed, progress.required, progress.percent) == (1, 2, 50)
    assert portal.progress.is_completed(member, course.product.id)  # never taken back
    assert _events(portal, "LessonCompletionUndone")[0]["reason"] == "cheated"
    again = portal.progress.undo_completion(member, course.lessons[1].id, reason="twice")
    assert again == progress
    assert len(_events(portal, "LessonCompletionUndone")) == 1


def test_video_progress_keeps_the_best_and_activity_is_recorded(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    member = _member(portal, course)
    lesson = course.lessons[0].id
    assert portal.progress.activity(member, course.product.id) is None
    first = portal.clock.now()
    assert portal.progress.record_video_progress(member, lesson, 40) == 40
    portal.clock.advance(hours=2)
    assert portal.progress.record_video_progress(member, lesson, 10) == 40
    assert portal.progress.record_video_progress(member, lesson, 100) == 100
    portal.clock.advance(days=1)
    portal.progress.record_visit(member, course.product.id)
    activity = portal.progress.activity(member, course.product.id)
    assert activity is not None
    assert activity.first_visit_at == first
    assert activity.last_activity_at == portal.clock.now()
    for bad in (-1, 101, 50.5, "50"):
        with pytest.raises(ValidationError) as info:
            portal.progress.record_video_progress(member, lesson, bad)  # type: ignore[arg-type]
        assert info.value.field == "percent"
