"""Access decisions as a table: every reason, and window edges at the exact instant."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membership_core import AccessReason, EnrollmentStatus, ProductStatus
from membership_core.domain.access import decide

from . import factories as f

T0 = f.T0
HOUR = timedelta(hours=1)
PUBLISHED = f.product(status=ProductStatus.PUBLISHED)
LESSON = f.lesson()


def grant(start: datetime = T0, end: datetime | None = None, revoked: bool = False) -> object:
    status = EnrollmentStatus.REVOKED if revoked else EnrollmentStatus.ACTIVE
    return f.enrollment(starts_at=start, ends_at=end, status=status)


@pytest.mark.parametrize(
    ("grants", "at", "allowed", "reason", "available_at"),
    [
        ([], T0, False, AccessReason.NOT_ENROLLED, None),
        ([grant()], T0, True, AccessReason.ENROLLED, None),  # start is inclusive
        ([grant()], T0 - timedelta(microseconds=1), False, AccessReason.NOT_STARTED, T0),
        (
            [grant(end=T0 + HOUR)],
            T0 + HOUR - timedelta(microseconds=1),
            True,
            AccessReason.ENROLLED,
            None,
        ),
        ([grant(end=T0 + HOUR)], T0 + HOUR, False, AccessReason.EXPIRED, None),  # end exclusive
        ([grant(revoked=True)], T0, False, AccessReason.REVOKED, None),
        (
            [grant(revoked=True), grant(end=T0 + HOUR)],
            T0 + 2 * HOUR,
            False,
            AccessReason.EXPIRED,
            None,
        ),
        # union: an expired grant and a live one keep access alive
        (
            [grant(end=T0 + HOUR), grant(start=T0 + HOUR)],
            T0 + HOUR,
            True,
            AccessReason.ENROLLED,
            None,
        ),
        # a revoked grant does not take away what another grant gives
        ([grant(revoked=True), grant()], T0, True, AccessReason.ENROLLED, None),
        # the earliest future start is when access opens
        (
            [grant(start=T0 + 3 * HOUR), grant(start=T0 + HOUR)],
            T0,
            False,
            AccessReason.NOT_STARTED,
            T0 + HOUR,
        ),
    ],
)
def test_decision_table(
    grants: list[object],
    at: datetime,
    allowed: bool,
    reason: AccessReason,
    available_at: datetime | None,
) -> None:
    decision = decide(PUBLISHED, LESSON, grants, at)  # type: ignore[arg-type]
    assert (decision.allowed, decision.reason, decision.available_at) == (
        allowed,
        reason,
        available_at,
    )
    assert bool(decision) is allowed


def test_unpublished_content_and_inactive_members_come_first() -> None:
    draft = f.product(status=ProductStatus.DRAFT)
    assert decide(draft, LESSON, [grant()], T0).reason is AccessReason.UNPUBLISHED
    hidden = f.lesson(published=False)
    assert decide(PUBLISHED, hidden, [grant()], T0).reason is AccessReason.UNPUBLISHED
    decision = decide(PUBLISHED, LESSON, [grant()], T0, member_active=False)
    assert decision.reason is AccessReason.MEMBER_INACTIVE


def test_preview_lessons_are_open_without_a_grant() -> None:
    preview = f.lesson(preview=True)
    assert decide(PUBLISHED, preview, [], T0).reason is AccessReason.PREVIEW
    assert decide(PUBLISHED, preview, [grant()], T0).reason is AccessReason.ENROLLED


offsets = st.integers(min_value=-1000, max_value=1000).map(lambda m: T0 + timedelta(minutes=m))
windows = st.tuples(offsets, st.one_of(st.none(), st.integers(1, 2000)), st.booleans())


@given(st.lists(windows, max_size=5), offsets)
def test_allowed_exactly_when_some_live_grant_covers_the_instant(
    raw: list[tuple[datetime, int | None, bool]], at: datetime
) -> None:
    grants = [
        grant(start, None if length is None else start + timedelta(minutes=length), revoked)
        for start, length, revoked in raw
    ]
    decision = decide(PUBLISHED, LESSON, grants, at)  # type: ignore[arg-type]
    covered = any(
        not revoked and start <= at and (length is None or at < start + timedelta(minutes=length))
        for start, length, revoked in raw
    )
    assert decision.allowed is covered
    if decision.available_at is not None:
        assert decision.available_at > at


def test_drip_applies_only_to_members_with_access() -> None:
    from membership_core.domain.drip import DripState, LessonAvailability

    later = T0 + 3 * HOUR
    dripped = LessonAvailability(LESSON.id, DripState.DRIPPED, later)
    locked = LessonAvailability(LESSON.id, DripState.LOCKED, waiting_for=("les_prev",))
    decision = decide(PUBLISHED, LESSON, [grant()], T0, drip=dripped)
    assert (decision.reason, decision.available_at) == (AccessReason.DRIPPED, later)
    assert decide(PUBLISHED, LESSON, [grant()], T0, drip=locked).reason is AccessReason.LOCKED
    # Without access the schedule does not matter: the member is not enrolled.
    assert decide(PUBLISHED, LESSON, [], T0, drip=dripped).reason is AccessReason.NOT_ENROLLED
    # Preview lessons ignore the schedule.
    preview = f.lesson(preview=True)
    assert decide(PUBLISHED, preview, [grant()], T0, drip=locked).allowed


def test_unpaid_purchases_explain_an_ended_grant() -> None:
    ended = f.enrollment(starts_at=T0, ends_at=T0 + HOUR, purchase_id="pur_sub")
    decision = decide(PUBLISHED, LESSON, [ended], T0 + HOUR, unpaid_purchases={"pur_sub"})
    assert decision.reason is AccessReason.PAYMENT_PAST_DUE
    assert decide(PUBLISHED, LESSON, [ended], T0 + HOUR).reason is AccessReason.EXPIRED


@pytest.mark.parametrize(
    ("start", "days", "end"),
    [
        (datetime(2024, 2, 28, 12, tzinfo=f.UTC), 1, datetime(2024, 2, 29, 12, tzinfo=f.UTC)),
        (datetime(2024, 2, 29, 12, tzinfo=f.UTC), 365, datetime(2025, 2, 28, 12, tzinfo=f.UTC)),
        (datetime(2023, 2, 28, 12, tzinfo=f.UTC), 1, datetime(2023, 3, 1, 12, tzinfo=f.UTC)),
    ],
)
def test_windows_over_leap_days_end_at_the_exact_instant(
    start: datetime, days: int, end: datetime
) -> None:
    from membership_core import AccessWindow, EndAfter, StartOn
    from membership_core.domain.windows import resolve

    starts_at, ends_at = resolve(AccessWindow(StartOn(start), EndAfter(days)), start)
    assert (starts_at, ends_at) == (start, end)
    window = f.enrollment(starts_at=starts_at, ends_at=ends_at)
    assert decide(PUBLISHED, LESSON, [window], end - timedelta(microseconds=1)).allowed
    assert decide(PUBLISHED, LESSON, [window], end).reason is AccessReason.EXPIRED
