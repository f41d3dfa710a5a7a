"""Access windows: when a purchase's access starts and ends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from membership_core import ValidationError, structure, unstructure
from membership_core.domain.windows import (
    MAX_WINDOW_DAYS,
    AccessWindow,
    EndAfter,
    EndNever,
    EndOn,
    StartAtPurchase,
    StartOn,
    WindowEnd,
    WindowStart,
    resolve,
)

BOUGHT = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
MICRO = timedelta(microseconds=1)

offsets = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-14 * 60, 14 * 60)
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
)
days = st.integers(1, MAX_WINDOW_DAYS)


@st.composite
def windows(draw: st.DrawFn) -> AccessWindow:
    """Any valid window."""
    start: WindowStart = draw(st.just(StartAtPurchase()) | st.builds(StartOn, instants))
    end: WindowEnd = draw(
        st.just(EndNever()) | st.builds(EndAfter, days) | st.builds(EndOn, instants)
    )
    if isinstance(start, StartOn) and isinstance(end, EndOn):
        assume(end.at > start.at)
    return AccessWindow(start, end)


def test_default_is_lifetime_access_from_purchase() -> None:
    assert AccessWindow() == AccessWindow(StartAtPurchase(), EndNever())
    assert resolve(AccessWindow(), BOUGHT) == (BOUGHT, None)


def test_end_after_days_counts_from_the_start() -> None:
    assert resolve(AccessWindow(end=EndAfter(30)), BOUGHT) == (BOUGHT, BOUGHT + timedelta(30))
    cohort = datetime(2024, 4, 1, tzinfo=UTC)
    assert resolve(AccessWindow(StartOn(cohort), EndAfter(7)), BOUGHT) == (
        cohort,
        cohort + timedelta(days=7),
    )


def test_a_fixed_start_already_past_starts_at_the_purchase() -> None:
    window = AccessWindow(StartOn(datetime(2024, 3, 1, tzinfo=UTC)), EndAfter(30))
    # A late buyer still gets the full 30 days, counted from the purchase.
    assert resolve(window, BOUGHT) == (BOUGHT, BOUGHT + timedelta(days=30))
    # The start at the exact purchase instant is the same either way.
    assert resolve(AccessWindow(StartOn(BOUGHT)), BOUGHT) == (BOUGHT, None)


def test_fixed_end_is_respected_and_must_still_be_ahead() -> None:
    end = datetime(2024, 6, 30, tzinfo=UTC)
    assert resolve(AccessWindow(end=EndOn(end)), BOUGHT) == (BOUGHT, end)
    assert resolve(AccessWindow(end=EndOn(BOUGHT + MICRO)), BOUGHT) == (BOUGHT, BOUGHT + MICRO)
    for too_late in (BOUGHT, BOUGHT + timedelta(days=1)):
        with pytest.raises(ValidationError, match="has already ended") as info:
            resolve(AccessWindow(end=EndOn(BOUGHT)), too_late)
        assert info.value.field == "access_window"


def test_results_are_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    starts_at, ends_at = resolve(
        AccessWindow(end=EndOn(datetime(2024, 4, 1, tzinfo=paris))),
        datetime(2024, 3, 10, 13, 0, tzinfo=paris),
    )
    assert starts_at == BOUGHT
    assert ends_at == datetime(2024, 3, 31, 23, 0, tzinfo=UTC)
    assert starts_at.tzinfo is UTC
    assert ends_at.tzinfo is UTC


def test_both_fixed_requires_the_end_after_the_start() -> None:
    march = datetime(2024, 3, 1, tzinfo=UTC)
    assert AccessWindow(StartOn(march), EndOn(march + MICRO)).end == EndOn(march + MICRO)
    for end in (march, march - timedelta(days=1)):
        with pytest.raises(ValidationError, match="must be after the start") as info:
            AccessWindow(StartOn(march), EndOn(end))
        assert info.value.field == "end"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: EndAfter(0), "days"),
        (lambda: EndAfter(MAX_WINDOW_DAYS + 1), "days"),
        (lambda: EndAfter(True), "days"),
        (lambda: EndAfter(1.5), "days"),  # type: ignore[arg-type]
        (lambda: StartOn(datetime(2024, 1, 1)), "at"),
        (lambda: StartOn("2024-01-01T00:00:00+00:00"), "at"),  # type: ignore[arg-type]
        (lambda: EndOn(datetime(2024, 1, 1)), "at"),
        (lambda: EndOn(BOUGHT, kind="never"), "kind"),  # type: ignore[arg-type]
        (lambda: AccessWindow(EndNever()), "start"),  # type: ignore[arg-type]
        (lambda: AccessWindow(end=StartAtPurchase()), "end"),  # type: ignore[arg-type]
        (lambda: AccessWindow(end=30), "end"),  # type: ignore[arg-type]
        (lambda: resolve(AccessWindow(), datetime(2024, 1, 1)), "purchased_at"),
        (lambda: resolve(EndAfter(3), BOUGHT), "access_window"),  # type: ignore[arg-type]
    ],
)
def test_errors_name_the_field(build: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.field == field


@given(windows(), instants)
def test_resolved_windows_start_before_they_end_and_never_before_purchase(
    window: AccessWindow, bought: datetime
) -> None:
    assume(not isinstance(window.end, EndOn) or window.end.at > bought)
    starts_at, ends_at = resolve(window, bought)
    assert starts_at >= bought
    assert ends_at is None or starts_at < ends_at
    assert starts_at.tzinfo is UTC
    assert ends_at is None or ends_at.tzinfo is UTC


@given(days, instants, st.none() | instants)
def test_end_after_gives_exactly_that_many_days(
    count: int, bought: datetime, fixed_start: datetime | None
) -> None:
    start: WindowStart = StartAtPurchase() if fixed_start is None else StartOn(fixed_start)
    starts_at, ends_at = resolve(AccessWindow(start, EndAfter(count)), bought)
    assert ends_at is not None
    assert ends_at - starts_at == timedelta(days=count)


@given(instants, instants, st.none() | instants)
def test_fixed_dates_are_respected(
    bought: datetime, fixed_start: datetime, fixed_end: datetime | None
) -> None:
    end: WindowEnd = EndNever() if fixed_end is None else EndOn(fixed_end)
    assume(fixed_end is None or fixed_end > fixed_start)
    window = AccessWindow(StartOn(fixed_start), end)
    if fixed_end is not None and fixed_end <= bought:
        with pytest.raises(ValidationError) as info:
            resolve(window, bought)
        assert info.value.field == "access_window"
        return
    starts_at, ends_at = resolve(window, bought)
    assert starts_at == max(fixed_start, bought)
    assert ends_at == fixed_end


@given(windows())
def test_windows_round_trip(window: AccessWindow) -> None:
    data = json.loads(json.dumps(unstructure(window)))
    assert structure(data, AccessWindow) == window
    start: Any = WindowStart
    end: Any = WindowEnd
    assert structure(data["start"], start) == window.start
    assert structure(data["end"], end) == window.end


def test_serialized_windows_are_self_describing() -> None:
    window = AccessWindow(StartOn(BOUGHT), EndAfter(30))
    assert unstructure(window) == {
        "start": {"kind": "on", "at": "2024-03-10T12:00:00+00:00"},
        "end": {"kind": "after", "days": 30},
    }
    assert unstructure(AccessWindow()) == {
        "start": {"kind": "at_purchase"},
        "end": {"kind": "never"},
    }


def test_structuring_bad_data_names_the_field() -> None:
    bad = {"start": {"kind": "at_purchase"}, "end": {"kind": "after", "days": 0}}
    with pytest.raises(ValidationError) as info:
        structure(bad, AccessWindow)
    assert info.value.field == "AccessWindow.end.days"
