"""Drip schedules: which lessons are open for a member, and when the others open."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from membership_core import ValidationError, structure, unstructure
from membership_core.domain.catalog import Category, Lesson, ordered
from membership_core.domain.drip import (
    MAX_DELAY_DAYS,
    MAX_DELAY_HOURS,
    AfterAssessment,
    AfterDelay,
    AfterLesson,
    DripRule,
    DripSettings,
    DripStart,
    DripState,
    FromAccessGrant,
    FromCohortStart,
    FromFirstVisit,
    FromPurchase,
    Immediately,
    LessonAvailability,
    OnDate,
    anchor,
    evaluate,
    local_instant,
    next_opening,
    opened_between,
    opens_at,
)

from . import factories

MICRO = timedelta(microseconds=1)
T0 = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # a 30-minute daylight saving change
APIA = ZoneInfo("Pacific/Apia")  # skipped 30 December 2011 entirely
NOTHING: frozenset[str] = frozenset()

Rules = Mapping[str, Sequence[DripRule]]


def cat(id_: str, parent: str | None = None, position: int = 0) -> Category:
    return factories.category(id=id_, parent_id=parent, position=position)


def les(id_: str, category: str = "cat_a", position: int = 0) -> Lesson:
    return factories.lesson(id=id_, category_id=category, position=position)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    """An instant given in UTC."""
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def in_zone(
    zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0
) -> datetime:
    """An instant given on ``zone``'s wall clock (first occurrence), in UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(UTC)


def run(
    lessons: Sequence[Lesson],
    rules: Rules,
    *,
    categories: Sequence[Category] = (cat("cat_a"),),
    now: datetime,
    start: datetime | None = T0,
    zone: str = "UTC",
    completed: AbstractSet[str] = NOTHING,
    passed: AbstractSet[str] = NOTHING,
    unlocked: AbstractSet[str] = NOTHING,
) -> dict[str, LessonAvailability]:
    return evaluate(
        lessons,
        categories,
        rules,
        settings=DripSettings(FromPurchase(), zone),
        start=start,
        now=now,
        completed=completed,
        passed_assessments=passed,
        unlocked=unlocked,
    )


def states(result: Mapping[str, LessonAvailability]) -> dict[str, str]:
    return {key: value.state.value for key, value in result.items()}


# ----------------------------------------------------------------------- rule kinds


def test_no_rules_and_immediately_are_available_even_without_an_anchor() -> None:
    lessons = [les("les_1"), les("les_2")]
    result = run(lessons, {"les_2": [Immediately()]}, now=T0, start=None)
    assert result == {
        "les_1": LessonAvailability("les_1", DripState.AVAILABLE),
        "les_2": LessonAvailability("les_2", DripState.AVAILABLE),
    }
    assert list(result) == ["les_1", "les_2"]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (AfterDelay(), T0),
        (AfterDelay(days=3), utc(2024, 1, 4, 10)),
        (AfterDelay(hours=5), utc(2024, 1, 1, 15)),
        (AfterDelay(days=1, hours=30), utc(2024, 1, 3, 16)),
        (AfterDelay(days=2, at=time(9, 15)), utc(2024, 1, 3, 9, 15)),
        # Day 0 at 09:00 is before a 10:00 start: open from the start.
        (AfterDelay(at=time(9)), utc(2024, 1, 1, 9)),
        (OnDate(datetime(2024, 2, 1, 8, 30)), utc(2024, 2, 1, 8, 30)),
    ],
)
def test_a_time_rule_opens_exactly_at_its_instant(
    rule: AfterDelay | OnDate, expected: datetime
) -> None:
    assert opens_at(rule, start=T0, timezone=UTC_ZONE) == expected
    lessons = [les("les_1")]
    rules = {"les_1": [rule]}
    if expected > T0:
        before = run(lessons, rules, now=expected - MICRO)["les_1"]
        assert before == LessonAvailability("les_1", DripState.DRIPPED, expected)
    assert run(lessons, rules, now=expected)["les_1"].available
    assert run(lessons, rules, now=max(expected, T0) + timedelta(days=999))["les_1"].available


def test_on_date_is_read_in_the_portal_timezone_and_late_joiners_see_it() -> None:
    rule = OnDate(datetime(2024, 6, 1, 9, 0))
    assert opens_at(rule, start=None, timezone=BERLIN) == utc(2024, 6, 1, 7)
    assert opens_at(rule, start=None, timezone=NEW_YORK) == utc(2024, 6, 1, 13)
    lessons, rules = [les("les_1")], {"les_1": [rule]}
    late = utc(2024, 9, 1)
    # Joined months after the date, or never visited (no anchor): open at once.
    assert run(lessons, rules, zone="Europe/Berlin", start=late, now=late)["les_1"].available
    assert run(lessons, rules, zone="Europe/Berlin", start=None, now=late)["les_1"].available
    early = run(lessons, rules, zone="Europe/Berlin", now=utc(2024, 6, 1, 6, 59))["les_1"]
    assert early == LessonAvailability("les_1", DripState.DRIPPED, utc(2024, 6, 1, 7))


def test_after_the_previous_lesson_in_course_order() -> None:
    lessons = [les("les_1"), les("les_2"), les("les_3")]
    chain: Rules = {lesson.id: [AfterLesson()] for lesson in lessons}
    result = run(lessons, chain, now=T0)
    # The first lesson has nothing before it.
    assert result["les_1"].available
    assert result["les_2"] == LessonAvailability("les_2", DripState.LOCKED, None, ("les_1",))
    assert result["les_3"] == LessonAvailability("les_3", DripState.LOCKED, None, ("les_2",))
    done = run(lessons, chain, now=T0, completed={"les_1"})
    assert states(done) == {"les_1": "available", "les_2": "available", "les_3": "locked"}
    # Only the previous lesson counts, not the ones before it.
    skipped = run(lessons, chain, now=T0, completed={"les_2"})
    assert states(skipped) == {"les_1": "available", "les_2": "available", "les_3": "available"}


def test_after_a_named_lesson_and_after_an_assessment() -> None:
    lessons = [les("les_1"), les("les_2"), les("les_3")]
    rules: Rules = {
        "les_1": [AfterLesson("les_3")],
        "les_2": [AfterAssessment("asm_quiz")],
        "les_3": [AfterAssessment("asm_quiz"), AfterLesson("les_2"), AfterAssessment("asm_quiz")],
    }
    result = run(lessons, rules, now=T0)
    assert result["les_1"].waiting_for == ("les_3",)
    assert result["les_2"].waiting_for == ("asm_quiz",)
    # In rule order, each id once.
    assert result["les_3"].waiting_for == ("asm_quiz", "les_2")
    assert all(value.state is DripState.LOCKED for value in result.values())
    passed = run(lessons, rules, now=T0, passed={"asm_quiz"})
    assert states(passed) == {"les_1": "locked", "les_2": "available", "les_3": "locked"}
    assert passed["les_3"].waiting_for == ("les_2",)
    both = run(lessons, rules, now=T0, passed={"asm_quiz"}, completed={"les_2", "les_3"})
    assert states(both) == {"les_1": "available", "les_2": "available", "les_3": "available"}


def test_a_locked_lesson_also_shows_a_pending_time() -> None:
    lessons = [les("les_1"), les("les_2")]
    opening = T0 + timedelta(days=2)
    rules: Rules = {"les_2": [AfterDelay(days=2), AfterLesson()]}
    assert run(lessons, rules, now=T0)["les_2"] == LessonAvailability(
        "les_2", DripState.LOCKED, opening, ("les_1",)
    )
    assert run(lessons, rules, now=opening)["les_2"] == LessonAvailability(
        "les_2", DripState.LOCKED, None, ("les_1",)
    )
    # The prerequisite done first: waiting for time only.
    assert run(lessons, rules, now=T0, completed={"les_1"})["les_2"] == LessonAvailability(
        "les_2", DripState.DRIPPED, opening
    )


# ----------------------------------------------------------------------- categories


def test_category_rules_pass_down_to_nested_lessons_and_the_latest_time_wins() -> None:
    categories = [cat("cat_root"), cat("cat_sub", "cat_root"), cat("cat_deep", "cat_sub")]
    lessons = [les("les_root", "cat_root"), les("les_sub", "cat_sub"), les("les_deep", "cat_deep")]
    rules: Rules = {
        "cat_root": [OnDate(datetime(2024, 1, 5))],
        "cat_sub": [AfterDelay(days=10)],
        "cat_deep": [AfterDelay(days=3), AfterAssessment("asm_1")],
        "les_deep": [AfterDelay(days=1)],
    }
    result = run(lessons, rules, categories=categories, now=T0)
    assert result["les_root"] == LessonAvailability("les_root", DripState.DRIPPED, utc(2024, 1, 5))
    assert result["les_sub"].opens_at == utc(2024, 1, 11, 10)
    assert result["les_deep"] == LessonAvailability(
        "les_deep", DripState.LOCKED, utc(2024, 1, 11, 10), ("asm_1",)
    )
    # An earlier own rule does not override the category's later one.
    at_jan_5 = run(lessons, rules, categories=categories, now=utc(2024, 1, 5), passed={"asm_1"})
    assert states(at_jan_5) == {
        "les_root": "available",
        "les_sub": "dripped",
        "les_deep": "dripped",
    }
    # A later own rule wins over the category's.
    later: Rules = {**rules, "les_deep": [AfterDelay(days=20)]}
    deep = run(lessons, later, categories=categories, now=T0, passed={"asm_1"})["les_deep"]
    assert deep.opens_at == utc(2024, 1, 21, 10)
    # Immediately on the lesson does not lift its category's rules.
    lifted: Rules = {**rules, "les_sub": [Immediately()]}
    assert run(lessons, lifted, categories=categories, now=T0)["les_sub"].opens_at == utc(
        2024, 1, 11, 10
    )


def test_a_category_after_lesson_rule_makes_each_lesson_wait_for_the_one_before() -> None:
    categories = [cat("cat_a"), cat("cat_b", position=1)]
    lessons = ordered(
        categories,
        [les("les_a1", "cat_a"), les("les_b1", "cat_b"), les("les_b2", "cat_b", 1)],
    )
    assert [lesson.id for lesson in lessons] == ["les_a1", "les_b1", "les_b2"]
    rules: Rules = {"cat_b": [AfterLesson()]}
    result = run(lessons, rules, categories=categories, now=T0)
    assert result["les_b1"].waiting_for == ("les_a1",)
    assert result["les_b2"].waiting_for == ("les_b1",)
    assert result["les_a1"].available


def test_rules_of_unknown_ids_are_ignored_but_unknown_categories_are_an_error() -> None:
    lessons = [les("les_1")]
    assert run(lessons, {"les_gone": [AfterDelay(days=9)]}, now=T0)["les_1"].available
    with pytest.raises(ValidationError, match="unknown category 'cat_missing'") as info:
        run([les("les_1", "cat_missing")], {}, now=T0)
    assert info.value.field == "categories"
    with pytest.raises(ValidationError, match="unknown category 'cat_gone'"):
        run(lessons, {}, categories=[cat("cat_a", "cat_gone")], now=T0)
    with pytest.raises(ValidationError, match="its own ancestor"):
        run(lessons, {}, categories=[cat("cat_a", "cat_b"), cat("cat_b", "cat_a")], now=T0)


# ----------------------------------------------------------------------- stay open


def test_unlocked_and_completed_lessons_stay_available() -> None:
    lessons = [les("les_1"), les("les_2"), les("les_3")]
    # The admin moved les_2 a year later, and les_3 behind an assessment.
    rules: Rules = {
        "les_2": [AfterDelay(days=365)],
        "les_3": [AfterAssessment("asm_1"), AfterDelay(days=365)],
    }
    result = run(lessons, rules, now=T0, unlocked={"les_2"}, completed={"les_3"})
    assert states(result) == {"les_1": "available", "les_2": "available", "les_3": "available"}
    assert all(value.opens_at is None and not value.waiting_for for value in result.values())
    for kind in ("unlocked", "completed"):
        args: dict[str, Any] = {kind: {"les_2", "les_3"}}
        since, until = T0, T0 + timedelta(days=999)
        assert (
            opened_between(
                lessons,
                [cat("cat_a")],
                rules,
                settings=DripSettings(FromPurchase()),
                start=T0,
                since=since,
                until=until,
                passed_assessments={"asm_1"},
                **({"completed": NOTHING} | args),
            )
            == []
        )


# ----------------------------------------------------------------------- anchors


def test_anchor_picks_the_settings_clock() -> None:
    bought, granted, visited = utc(2024, 1, 1), utc(2024, 1, 2), utc(2024, 1, 3)
    known = {"purchased_at": bought, "granted_at": granted, "first_visit_at": visited}
    assert anchor(FromPurchase(), **known) == bought
    assert anchor(FromAccessGrant(), **known) == granted
    assert anchor(FromFirstVisit(), **known) == visited
    cohort = datetime(2024, 2, 29, 9, tzinfo=BERLIN)
    assert anchor(FromCohortStart(cohort), **known) == utc(2024, 2, 29, 8)
    assert anchor(FromFirstVisit(), purchased_at=bought) is None
    assert anchor(FromPurchase()) is None
    # Any offset in, UTC out.
    plus_two = datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert anchor(FromPurchase(), purchased_at=plus_two) == utc(2024, 1, 1)
    assert anchor(FromPurchase(), purchased_at=plus_two).tzinfo is UTC  # type: ignore[union-attr]
    with pytest.raises(ValidationError) as info:
        anchor(FromPurchase(), purchased_at=datetime(2024, 1, 1))
    assert info.value.field == "purchased_at"
    with pytest.raises(ValidationError) as info:
        anchor("purchase")  # type: ignore[arg-type]
    assert info.value.field == "start"


def test_a_missing_anchor_keeps_relative_rules_closed_without_a_time() -> None:
    lessons = [les("les_1"), les("les_2"), les("les_3"), les("les_4")]
    rules: Rules = {
        "les_1": [AfterDelay(days=1)],
        "les_2": [AfterDelay(days=1), OnDate(datetime(2024, 1, 5))],
        "les_3": [AfterDelay(), AfterLesson()],
        "les_4": [OnDate(datetime(2024, 1, 5))],
    }
    never = utc(2099, 1, 1)
    result = run(lessons, rules, now=never, start=None)
    assert result == {
        "les_1": LessonAvailability("les_1", DripState.DRIPPED),
        "les_2": LessonAvailability("les_2", DripState.DRIPPED),
        "les_3": LessonAvailability("les_3", DripState.LOCKED, None, ("les_2",)),
        "les_4": LessonAvailability("les_4", DripState.AVAILABLE),
    }
    assert next_opening(result) is None
    # Once the member visits, the same rules have times.
    visited = run(lessons, rules, now=T0, start=T0)
    assert visited["les_1"].opens_at == T0 + timedelta(days=1)
    assert visited["les_2"].opens_at == utc(2024, 1, 5)


# ----------------------------------------------------------------------- DST


# "Day 7 at 09:00" from an evening start a few days before each change.
@pytest.mark.parametrize(
    ("zone", "start_wall", "opening_wall"),
    [
        (BERLIN, datetime(2024, 3, 25, 19), datetime(2024, 4, 1, 9)),  # spring forward 31 Mar
        (BERLIN, datetime(2024, 10, 21, 19), datetime(2024, 10, 28, 9)),  # fall back 27 Oct
        (NEW_YORK, datetime(2024, 3, 5, 19), datetime(2024, 3, 12, 9)),  # spring forward 10 Mar
        (NEW_YORK, datetime(2024, 10, 30, 19), datetime(2024, 11, 6, 9)),  # fall back 3 Nov
    ],
)
def test_day_seven_at_nine_opens_at_nine_local_across_a_change(
    zone: ZoneInfo, start_wall: datetime, opening_wall: datetime
) -> None:
    start = start_wall.replace(tzinfo=zone).astimezone(UTC)
    at_nine = opens_at(AfterDelay(days=7, at=time(9)), start=start, timezone=zone)
    assert at_nine is not None
    assert at_nine.astimezone(zone).replace(tzinfo=None) == opening_wall
    # Offsets differ across the change, so the gap is not a whole number of days.
    assert (at_nine - start) % timedelta(days=1) != timedelta(hours=14)
    # Plain days keep the start's wall-clock time; hours are exact on top of that.
    week = opens_at(AfterDelay(days=7), start=start, timezone=zone)
    assert week is not None
    assert week.astimezone(zone).replace(tzinfo=None) == start_wall + timedelta(days=7)
    assert opens_at(AfterDelay(days=7, hours=3), start=start, timezone=zone) == week + timedelta(
        hours=3
    )
    # And a member sees it open exactly then.
    lessons, rules = [les("les_1")], {"les_1": [AfterDelay(days=7, at=time(9))]}
    assert not run(lessons, rules, zone=zone.key, start=start, now=at_nine - MICRO)[
        "les_1"
    ].available
    assert run(lessons, rules, zone=zone.key, start=start, now=at_nine)["les_1"].available


def test_exact_utc_openings_across_the_changes() -> None:
    rule = AfterDelay(days=7, at=time(9))
    assert opens_at(rule, start=utc(2024, 3, 25, 18), timezone=BERLIN) == utc(2024, 4, 1, 7)
    assert opens_at(rule, start=utc(2024, 10, 21, 17), timezone=BERLIN) == utc(2024, 10, 28, 8)
    assert opens_at(rule, start=utc(2024, 3, 6, 0), timezone=NEW_YORK) == utc(2024, 3, 12, 13)
    assert opens_at(rule, start=utc(2024, 10, 30, 23), timezone=NEW_YORK) == utc(2024, 11, 6, 14)


@pytest.mark.parametrize(
    ("zone", "wall", "expected"),
    [
        # Berlin jumps from 02:00 CET to 03:00 CEST (01:00 UTC) on 31 March 2024.
        (BERLIN, datetime(2024, 3, 31, 1, 59, 59, 999999), utc(2024, 3, 31, 0, 59, 59, 999999)),
        (BERLIN, datetime(2024, 3, 31, 2, 0), utc(2024, 3, 31, 1)),
        (BERLIN, datetime(2024, 3, 31, 2, 30), utc(2024, 3, 31, 1)),
        (BERLIN, datetime(2024, 3, 31, 2, 59, 59, 999999), utc(2024, 3, 31, 1)),
        (BERLIN, datetime(2024, 3, 31, 3, 0), utc(2024, 3, 31, 1)),
        (BERLIN, datetime(2024, 3, 31, 3, 0, 0, 1), utc(2024, 3, 31, 1, 0, 0, 1)),
        # New York jumps from 02:00 EST to 03:00 EDT (07:00 UTC) on 10 March 2024.
        (NEW_YORK, datetime(2024, 3, 10, 2, 30), utc(2024, 3, 10, 7)),
        # Lord Howe jumps from 02:00 to 02:30 (+10:30 to +11:00) on 6 October 2024.
        (LORD_HOWE, datetime(2024, 10, 6, 2, 15), utc(2024, 10, 5, 15, 30)),
        # Samoa skipped 30 December 2011: the whole day opens at 31 December 00:00.
        (APIA, datetime(2011, 12, 30, 12), utc(2011, 12, 30, 10)),
    ],
)
def test_a_local_time_in_the_gap_opens_when_the_clocks_jump(
    zone: ZoneInfo, wall: datetime, expected: datetime
) -> None:
    assert local_instant(wall, zone) == expected
    assert opens_at(OnDate(wall), start=None, timezone=zone) == expected


def test_the_gap_opening_in_local_terms() -> None:
    assert local_instant(datetime(2024, 3, 31, 2, 30), BERLIN).astimezone(BERLIN).replace(
        tzinfo=None
    ) == datetime(2024, 3, 31, 3, 0)
    assert local_instant(datetime(2011, 12, 30, 12), APIA).astimezone(APIA).replace(
        tzinfo=None
    ) == datetime(2011, 12, 31, 0, 0)
    # A relative rule landing in the gap: 02:30 the day before, plus one day.
    start = in_zone(BERLIN, 2024, 3, 30, 2, 30)
    assert opens_at(AfterDelay(days=1), start=start, timezone=BERLIN) == utc(2024, 3, 31, 1)
    afternoon = utc(2024, 3, 30, 14)
    at_half_past_two = AfterDelay(days=1, at=time(2, 30))
    assert opens_at(at_half_past_two, start=afternoon, timezone=BERLIN) == utc(2024, 3, 31, 1)
    # Hours are exact, added after the day lands: 1 day 1 hour after 02:30 is 04:00 CEST.
    assert opens_at(AfterDelay(days=1, hours=1), start=start, timezone=BERLIN) == utc(
        2024, 3, 31, 2
    )


@pytest.mark.parametrize(
    ("zone", "wall", "first", "second"),
    [
        (BERLIN, datetime(2024, 10, 27, 2, 30), utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1, 30)),
        (NEW_YORK, datetime(2024, 11, 3, 1, 30), utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 6, 30)),
        (LORD_HOWE, datetime(2024, 4, 7, 1, 45), utc(2024, 4, 6, 14, 45), utc(2024, 4, 6, 15, 15)),
    ],
)
def test_an_ambiguous_local_time_opens_at_its_first_occurrence(
    zone: ZoneInfo, wall: datetime, first: datetime, second: datetime
) -> None:
    # Both instants do show that wall time.
    for moment in (first, second):
        assert moment.astimezone(zone).replace(tzinfo=None) == wall
    assert local_instant(wall, zone) == first
    assert local_instant(wall.replace(fold=1), zone) == first
    assert opens_at(OnDate(wall), start=None, timezone=zone) == first
    start = (wall - timedelta(days=1)).replace(tzinfo=zone).astimezone(UTC)
    assert opens_at(AfterDelay(days=1), start=start, timezone=zone) == first
    assert opens_at(AfterDelay(days=1, at=wall.time()), start=start, timezone=zone) == first


def test_a_start_in_the_repeated_hour_counts_days_on_its_wall_clock() -> None:
    second = utc(2024, 10, 27, 1, 30)  # 02:30 CET, the second 02:30 in Berlin
    assert opens_at(AfterDelay(), start=second, timezone=BERLIN) == second
    assert opens_at(AfterDelay(hours=2), start=second, timezone=BERLIN) == second + timedelta(
        hours=2
    )
    assert opens_at(AfterDelay(days=7), start=second, timezone=BERLIN) == utc(2024, 11, 3, 1, 30)


# ----------------------------------------------------------------------- leap days


def test_leap_days() -> None:
    cohort = DripSettings(FromCohortStart(in_zone(BERLIN, 2024, 2, 29, 9)), "Europe/Berlin")
    start = anchor(cohort.start)
    assert opens_at(AfterDelay(days=365), start=start, timezone=cohort.zone) == in_zone(
        BERLIN, 2025, 2, 28, 9
    )
    assert opens_at(AfterDelay(days=366), start=start, timezone=cohort.zone) == in_zone(
        BERLIN, 2025, 3, 1, 9
    )
    # 4 * 365 + 1 days later is the next leap day.
    assert opens_at(AfterDelay(days=1461, at=time(7)), start=start, timezone=cohort.zone) == (
        in_zone(BERLIN, 2028, 2, 29, 7)
    )
    leap = OnDate(datetime(2028, 2, 29, 9))
    assert opens_at(leap, start=None, timezone=BERLIN) == utc(2028, 2, 29, 8)
    lessons, rules = [les("les_1")], {"les_1": [leap]}
    result = evaluate(
        lessons,
        [cat("cat_a")],
        rules,
        settings=cohort,
        start=start,
        now=utc(2028, 2, 29, 8) - MICRO,
        completed=NOTHING,
    )
    assert result["les_1"].opens_at == utc(2028, 2, 29, 8)


# ----------------------------------------------------------------------- scheduling helpers


def test_next_opening_is_the_earliest_dripped_time() -> None:
    lessons = [les(f"les_{n}") for n in range(5)]
    rules: Rules = {
        "les_0": [AfterDelay(days=1)],
        "les_1": [AfterDelay(days=5)],
        "les_2": [AfterDelay(hours=1), AfterAssessment("asm_1")],  # locked: not a tick's job
        "les_3": [AfterDelay(hours=2)],
    }
    assert next_opening(run(lessons, rules, now=T0)) == T0 + timedelta(hours=2)
    assert next_opening(run(lessons, rules, now=T0 + timedelta(hours=2))) == T0 + timedelta(days=1)
    assert next_opening(run(lessons, rules, now=T0 + timedelta(days=5))) is None
    assert next_opening({}) is None


def test_opened_between_is_half_open() -> None:
    lessons = [les(f"les_{n}") for n in range(4)]
    rules: Rules = {
        "les_1": [AfterDelay(days=1)],
        "les_2": [AfterDelay(days=2)],
        "les_3": [AfterDelay(days=2), AfterLesson("les_0")],
    }

    def between(since: datetime, until: datetime, **kw: Any) -> list[str]:
        return opened_between(
            lessons,
            [cat("cat_a")],
            rules,
            settings=DripSettings(FromPurchase()),
            start=T0,
            since=since,
            until=until,
            **({"completed": NOTHING} | kw),
        )

    day1, day2 = T0 + timedelta(days=1), T0 + timedelta(days=2)
    # les_0 (no rules) was open from the start: nothing opened it in a window.
    assert between(T0 - timedelta(days=1), T0 + timedelta(days=3)) == ["les_1", "les_2"]
    assert between(T0, day1) == ["les_1"]
    assert between(day1, day2) == ["les_2"]
    assert between(day1 - MICRO, day1) == ["les_1"]
    assert between(day1, day1 + MICRO) == []
    assert between(day1, day1) == []
    assert between(day1, day2, completed={"les_0"}) == ["les_2", "les_3"]
    with pytest.raises(ValidationError) as info:
        between(day2, day1)
    assert info.value.field == "until"


# ----------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: AfterDelay(days=-1), "days"),
        (lambda: AfterDelay(days=MAX_DELAY_DAYS + 1), "days"),
        (lambda: AfterDelay(days=True), "days"),
        (lambda: AfterDelay(days=1.0), "days"),  # type: ignore[arg-type]
        (lambda: AfterDelay(hours=-1), "hours"),
        (lambda: AfterDelay(hours=MAX_DELAY_HOURS + 1), "hours"),
        (lambda: AfterDelay(days=1, hours=1, at=time(9)), "hours"),
        (lambda: AfterDelay(at=time(9, tzinfo=UTC)), "at"),
        (lambda: AfterDelay(at="nine"), "at"),
        (lambda: AfterDelay(at=9), "at"),  # type: ignore[arg-type]
        (lambda: OnDate(datetime(2024, 1, 1, tzinfo=UTC)), "at"),
        (lambda: OnDate("2024-01-01T00:00:00+00:00"), "at"),
        (lambda: OnDate("soon"), "at"),
        (lambda: OnDate(time(9)), "at"),  # type: ignore[arg-type]
        (lambda: AfterLesson(""), "lesson_id"),
        (lambda: AfterLesson(" les_1"), "lesson_id"),
        (lambda: AfterLesson("x" * 201), "lesson_id"),
        (lambda: AfterAssessment(None), "assessment_id"),  # type: ignore[arg-type]
        (lambda: Immediately(kind="after_delay"), "kind"),  # type: ignore[arg-type]
        (lambda: FromCohortStart(datetime(2024, 1, 1)), "at"),
        (lambda: DripSettings("purchase"), "start"),  # type: ignore[arg-type]
        (lambda: DripSettings(FromPurchase(), "Mars/Olympus"), "timezone"),
        (lambda: DripSettings(FromPurchase(), "../../etc/passwd"), "timezone"),
        (lambda: DripSettings(FromPurchase(), ""), "timezone"),
        (lambda: DripSettings(FromPurchase(), 1), "timezone"),  # type: ignore[arg-type]
        (lambda: LessonAvailability("", DripState.AVAILABLE), "lesson_id"),
        (lambda: LessonAvailability("les_1", "available"), "state"),  # type: ignore[arg-type]
        (lambda: LessonAvailability("les_1", DripState.LOCKED), "waiting_for"),
        (lambda: LessonAvailability("les_1", DripState.DRIPPED, None, ("les_0",)), "waiting_for"),
        (lambda: LessonAvailability("les_1", DripState.AVAILABLE, T0), "opens_at"),
        (lambda: LessonAvailability("les_1", DripState.DRIPPED, datetime(2024, 1, 1)), "opens_at"),
        (lambda: opens_at(AfterLesson(), start=T0, timezone=UTC_ZONE), "rule"),  # type: ignore[arg-type]
        (lambda: opens_at(AfterDelay(), start=T0, timezone="UTC"), "timezone"),  # type: ignore[arg-type]
        (lambda: opens_at(AfterDelay(), start=datetime(2024, 1, 1), timezone=UTC_ZONE), "start"),
        (
            lambda: opens_at(
                AfterDelay(days=MAX_DELAY_DAYS), start=utc(9990, 1, 1), timezone=BERLIN
            ),
            "rule",
        ),
        (lambda: local_instant(T0, BERLIN), "wall"),
    ],
)
def test_bad_values_name_the_field(build: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.field == field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"now": datetime(2024, 1, 1)}, "now"),
        ({"start": datetime(2024, 1, 1)}, "start"),
        ({"settings": "UTC"}, "settings"),
        ({"completed": ["les_1"]}, "completed"),
        ({"passed_assessments": "asm_1"}, "passed_assessments"),
        ({"unlocked": None}, "unlocked"),
        ({"rules": {"les_1": AfterDelay()}}, "rules"),
        ({"rules": {"cat_a": ["after_delay"]}}, "rules"),
        ({"lessons_in_course_order": [les("les_1"), les("les_1")]}, "lessons"),
        ({"lessons_in_course_order": [les("")]}, "lessons"),
    ],
)
def test_bad_evaluate_arguments_name_the_field(change: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {
        "lessons_in_course_order": [les("les_1")],
        "categories": [cat("cat_a")],
        "rules": {},
        "settings": DripSettings(FromPurchase()),
        "start": T0,
        "now": T0,
        "completed": NOTHING,
    }
    with pytest.raises(ValidationError) as info:
        evaluate(**(arguments | change))
    assert info.value.field == field


def test_local_times_are_normalised_and_typed() -> None:
    assert AfterDelay(at="09:00") == AfterDelay(at=time(9))
    assert AfterDelay(at=time(9, 30, 0, 5)).time_of_day == time(9, 30, 0, 5)
    assert AfterDelay().time_of_day is None
    assert OnDate("2028-02-29T09:00") == OnDate(datetime(2028, 2, 29, 9))
    assert OnDate(datetime(2024, 10, 27, 2, 30, fold=1)) == OnDate(datetime(2024, 10, 27, 2, 30))
    assert OnDate(datetime(2028, 2, 29, 9)).local == datetime(2028, 2, 29, 9)
    assert DripSettings(FromPurchase()).zone == ZoneInfo("UTC")


# ----------------------------------------------------------------------- serialization

EVERY_RULE: list[DripRule] = [
    Immediately(),
    AfterDelay(),
    AfterDelay(days=3, hours=4),
    AfterDelay(days=7, at=time(9, 30)),
    OnDate(datetime(2028, 2, 29, 9)),
    AfterLesson(),
    AfterLesson("les_1"),
    AfterAssessment("asm_1"),
]
EVERY_SETTINGS = [
    DripSettings(FromPurchase()),
    DripSettings(FromAccessGrant(), "America/New_York"),
    DripSettings(FromFirstVisit(), "Europe/Berlin"),
    DripSettings(FromCohortStart(utc(2024, 2, 29, 8)), "Australia/Lord_Howe"),
]


def _round_trip(value: object, cls: Any) -> object:
    return structure(json.loads(json.dumps(unstructure(value))), cls)


@pytest.mark.parametrize("rule", EVERY_RULE, ids=repr)
def test_rules_round_trip_as_themselves_and_as_the_union(rule: DripRule) -> None:
    assert _round_trip(rule, type(rule)) == rule
    assert _round_trip(rule, DripRule) == rule
    assert _round_trip([rule, rule], list[DripRule]) == [rule, rule]
    assert _round_trip({"les_1": [rule]}, dict[str, list[DripRule]]) == {"les_1": [rule]}


@pytest.mark.parametrize("settings", EVERY_SETTINGS, ids=repr)
def test_settings_round_trip(settings: DripSettings) -> None:
    assert _round_trip(settings, DripSettings) == settings
    start: Any = DripStart
    assert _round_trip(settings.start, start) == settings.start


def test_availability_round_trips() -> None:
    for value in (
        LessonAvailability("les_1", DripState.AVAILABLE),
        LessonAvailability("les_1", DripState.DRIPPED, T0),
        LessonAvailability("les_1", DripState.LOCKED, None, ("les_0", "asm_1")),
    ):
        assert _round_trip(value, LessonAvailability) == value


def test_serialized_forms_are_self_describing() -> None:
    assert unstructure(AfterDelay(days=7, at=time(9))) == {
        "kind": "after_delay",
        "days": 7,
        "hours": 0,
        "at": "09:00:00",
    }
    assert unstructure(OnDate(datetime(2028, 2, 29, 9))) == {
        "kind": "on_date",
        "at": "2028-02-29T09:00:00",
    }
    assert unstructure(DripSettings(FromCohortStart(T0), "Europe/Berlin")) == {
        "start": {"kind": "cohort_start", "at": "2024-01-01T10:00:00+00:00"},
        "timezone": "Europe/Berlin",
    }
    assert unstructure(LessonAvailability("les_1", DripState.LOCKED, None, ("les_0",))) == {
        "lesson_id": "les_1",
        "state": "locked",
        "opens_at": None,
        "waiting_for": ["les_0"],
    }


@pytest.mark.parametrize(
    ("data", "cls", "field"),
    [
        (
            {"kind": "after_delay", "days": -1, "hours": 0, "at": None},
            AfterDelay,
            "AfterDelay.days",
        ),
        ({"kind": "on_date", "at": "2024-01-01T09:00:00+01:00"}, OnDate, "OnDate.at"),
        (
            {"start": {"kind": "purchase"}, "timezone": "Nope/Nope"},
            DripSettings,
            "DripSettings.timezone",
        ),
        ({"start": {"kind": "purchase"}, "timezone": "UTC", "tz": 1}, DripSettings, "DripSettings"),
    ],
)
def test_structuring_bad_data_names_the_field(data: object, cls: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        structure(data, cls)
    assert info.value.field == field


# ----------------------------------------------------------------------- properties

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/St_Johns",
    "Pacific/Apia",
]
ASSESSMENTS = ["asm_a", "asm_b"]
# Wall times on the nights clocks change, where mistakes would hide.
TRICKY_WALLS = [
    datetime(2024, 3, 31, 2, 30),
    datetime(2024, 10, 27, 2, 30),
    datetime(2024, 3, 10, 2, 30),
    datetime(2024, 11, 3, 1, 30),
    datetime(2024, 10, 6, 2, 15),
    datetime(2024, 4, 7, 1, 45),
    datetime(2024, 2, 29, 0, 0),
]
walls = st.datetimes(datetime(2023, 10, 1), datetime(2025, 12, 31)) | st.sampled_from(TRICKY_WALLS)
times_of_day = st.times() | st.sampled_from([time(2, 30), time(2), time(1, 30), time(9)])
instants = st.datetimes(datetime(2023, 10, 1), datetime(2026, 6, 1), timezones=st.just(UTC)) | (
    st.sampled_from(TRICKY_WALLS).map(lambda wall: wall.replace(tzinfo=UTC))
)


@attrs.frozen
class Schedule:
    """A random course: categories, lessons in course order and their rules."""

    categories: list[Category]
    lessons: list[Lesson]
    rules: dict[str, list[DripRule]]
    zone: str


def rules_for(lesson_ids: list[str]) -> st.SearchStrategy[DripRule]:
    return st.one_of(
        st.just(Immediately()),
        st.builds(AfterDelay, days=st.integers(0, 400), hours=st.integers(0, 50)),
        st.builds(AfterDelay, days=st.integers(0, 400), at=times_of_day),
        st.builds(OnDate, walls),
        st.builds(AfterLesson, st.none() | st.sampled_from([*lesson_ids, "les_elsewhere"])),
        st.builds(AfterAssessment, st.sampled_from(ASSESSMENTS)),
    )


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    categories: list[Category] = []
    for number in range(draw(st.integers(1, 5))):
        parents = [None, *(c.id for c in categories)]
        parent = draw(st.sampled_from(parents))
        categories.append(cat(f"cat_{number}", parent, draw(st.integers(0, 3))))
    lessons = [
        les(f"les_{n}", draw(st.sampled_from([c.id for c in categories])), draw(st.integers(0, 3)))
        for n in range(draw(st.integers(1, 8)))
    ]
    ids = [lesson.id for lesson in lessons]
    owners = ids + [c.id for c in categories]
    rules = draw(
        st.dictionaries(st.sampled_from(owners), st.lists(rules_for(ids), max_size=3), max_size=8)
    )
    return Schedule(categories, ordered(categories, lessons), rules, draw(st.sampled_from(ZONES)))


@attrs.frozen
class Member:
    """One member's anchor and progress in a schedule."""

    start: datetime | None
    completed: frozenset[str]
    passed: frozenset[str]
    unlocked: frozenset[str]


@st.composite
def members(draw: st.DrawFn, schedule: Schedule) -> Member:
    ids = [lesson.id for lesson in schedule.lessons]
    subsets = st.frozensets(st.sampled_from(ids))
    return Member(
        draw(st.none() | instants),
        draw(st.frozensets(st.sampled_from(ids)) | st.just(NOTHING)),
        draw(st.frozensets(st.sampled_from(ASSESSMENTS))),
        draw(subsets | st.just(NOTHING)),
    )


@st.composite
def situations(draw: st.DrawFn) -> tuple[Schedule, Member]:
    schedule = draw(schedules())
    return schedule, draw(members(schedule))


def check(schedule: Schedule, member: Member, now: datetime) -> dict[str, LessonAvailability]:
    return evaluate(
        schedule.lessons,
        schedule.categories,
        schedule.rules,
        settings=DripSettings(FromFirstVisit(), schedule.zone),
        start=member.start,
        now=now,
        completed=member.completed,
        passed_assessments=member.passed,
        unlocked=member.unlocked,
    )


def opened(schedule: Schedule, member: Member, since: datetime, until: datetime) -> list[str]:
    return opened_between(
        schedule.lessons,
        schedule.categories,
        schedule.rules,
        settings=DripSettings(FromFirstVisit(), schedule.zone),
        start=member.start,
        since=since,
        until=until,
        completed=member.completed,
        passed_assessments=member.passed,
        unlocked=member.unlocked,
    )


# The oracle: the rules read literally, computed another way.


def oracle_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The earliest instant whose wall clock reads ``wall`` or later, by brute force."""

    def shown(moment: datetime) -> datetime:
        return moment.astimezone(zone).replace(tzinfo=None)

    offsets = {
        zone.utcoffset(wall.replace(fold=fold) + shift)
        for fold in (0, 1)
        for shift in (timedelta(days=-2), timedelta(0), timedelta(days=2))
    }
    candidates = [(wall - offset).replace(tzinfo=UTC) for offset in offsets if offset is not None]
    exact = [moment for moment in candidates if shown(moment) == wall]
    if exact:
        return min(exact)
    # In a gap: walk minute by minute (clocks change on whole minutes) to the jump.
    moment = max(moment for moment in candidates if shown(moment) < wall)
    moment = moment.replace(second=0, microsecond=0)
    while shown(moment) < wall:
        moment += timedelta(minutes=1)
    return moment


def oracle_opening(rule: AfterDelay | OnDate, start: datetime | None, zone: ZoneInfo) -> Any:
    """The rule's instant; ``None`` when the anchor is missing."""
    if isinstance(rule, OnDate):
        return oracle_instant(datetime.fromisoformat(rule.at), zone)
    if start is None:
        return None
    if rule.days == 0 and rule.at is None:
        return start + timedelta(hours=rule.hours)
    local = start.astimezone(zone)
    day = local.date() + timedelta(days=rule.days)
    at = local.time() if rule.at is None else time.fromisoformat(rule.at)
    return oracle_instant(datetime.combine(day, at), zone) + timedelta(hours=rule.hours)


def oracle(
    schedule: Schedule, member: Member, now: datetime
) -> dict[str, tuple[bool, set[str], bool, datetime | None]]:
    """Per lesson: (available, missing prerequisites, time met, latest opening if known)."""
    zone = ZoneInfo(schedule.zone)
    parent = {c.id: c.parent_id for c in schedule.categories}
    answer = {}
    for index, lesson in enumerate(schedule.lessons):
        owners: list[str] = [lesson.id]
        current: str | None = lesson.category_id
        while current is not None:
            owners.append(current)
            current = parent[current]
        rules = [rule for owner in owners for rule in schedule.rules.get(owner, [])]
        missing: set[str] = set()
        openings = []
        for rule in rules:
            if isinstance(rule, AfterAssessment) and rule.assessment_id not in member.passed:
                missing.add(rule.assessment_id)
            if isinstance(rule, AfterLesson):
                needed = rule.lesson_id
                if needed is None and index > 0:
                    needed = schedule.lessons[index - 1].id
                if needed is not None and needed not in member.completed:
                    missing.add(needed)
            if isinstance(rule, (AfterDelay, OnDate)):
                openings.append(oracle_opening(rule, member.start, zone))
        known = None not in openings
        latest = max(openings) if openings and known else None
        time_met = known and (latest is None or now >= latest)
        forced = lesson.id in member.completed or lesson.id in member.unlocked
        answer[lesson.id] = (forced or (time_met and not missing), missing, time_met, latest)
    return answer


def available(result: Mapping[str, LessonAvailability]) -> set[str]:
    return {key for key, value in result.items() if value.available}


@given(situations(), instants)
def test_available_iff_every_rule_is_met(situation: tuple[Schedule, Member], now: datetime) -> None:
    schedule, member = situation
    result = check(schedule, member, now)
    expected = oracle(schedule, member, now)
    assert list(result) == [lesson.id for lesson in schedule.lessons]
    for lesson_id, value in result.items():
        is_open, missing, time_met, latest = expected[lesson_id]
        assert value.available == is_open, lesson_id
        if is_open:
            continue
        assert set(value.waiting_for) == missing
        assert value.state is (DripState.LOCKED if missing else DripState.DRIPPED)
        assert value.opens_at == (None if time_met else latest)


@given(situations(), instants, st.timedeltas(timedelta(0), timedelta(days=800)))
def test_open_lessons_stay_open_as_time_passes(
    situation: tuple[Schedule, Member], now: datetime, later: timedelta
) -> None:
    schedule, member = situation
    assert available(check(schedule, member, now)) <= available(
        check(schedule, member, now + later)
    )


@given(situations(), instants)
def test_opens_at_is_the_exact_boundary(situation: tuple[Schedule, Member], now: datetime) -> None:
    schedule, member = situation
    for lesson_id, value in check(schedule, member, now).items():
        if value.opens_at is None:
            continue
        assert value.opens_at > now
        before = check(schedule, member, value.opens_at - MICRO)[lesson_id]
        assert before == value
        at = check(schedule, member, value.opens_at)[lesson_id]
        if value.state is DripState.DRIPPED:
            assert at == LessonAvailability(lesson_id, DripState.AVAILABLE)
        else:
            assert at == LessonAvailability(lesson_id, DripState.LOCKED, None, value.waiting_for)


@given(situations(), st.lists(instants, min_size=3, max_size=3, unique=True))
def test_opened_between_splits_exactly(
    situation: tuple[Schedule, Member], moments: list[datetime]
) -> None:
    schedule, member = situation
    since, middle, until = sorted(moments)
    whole = opened(schedule, member, since, until)
    first, second = opened(schedule, member, since, middle), opened(schedule, member, middle, until)
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(whole)
    assert len(set(whole)) == len(whole)
    # The same lessons evaluate() sees open at ``until`` and not at ``since``.
    newly = available(check(schedule, member, until)) - available(check(schedule, member, since))
    assert set(whole) == newly
    # And next_opening names the first of them, if it falls in the window.
    soonest = next_opening(check(schedule, member, since))
    if whole:
        assert soonest is not None
        assert since < soonest <= until


@given(situations(), instants)
def test_completed_and_unlocked_lessons_are_always_available(
    situation: tuple[Schedule, Member], now: datetime
) -> None:
    schedule, member = situation
    assume(member.completed or member.unlocked)
    result = check(schedule, member, now)
    for lesson_id in member.completed | member.unlocked:
        assert result[lesson_id] == LessonAvailability(lesson_id, DripState.AVAILABLE)


@given(instants, st.sampled_from(ZONES), st.integers(0, 800), times_of_day | st.none())
def test_after_delay_matches_the_oracle(
    start: datetime, zone_name: str, days: int, at: time | None
) -> None:
    zone = ZoneInfo(zone_name)
    rule = AfterDelay(days=days, at=at)
    opening = opens_at(rule, start=start, timezone=zone)
    assert opening == oracle_opening(rule, start, zone)
    assert opening is not None
    assert opening.tzinfo is UTC


@given(walls, st.sampled_from(ZONES))
def test_local_instant_is_the_first_instant_showing_that_time(wall: datetime, name: str) -> None:
    zone = ZoneInfo(name)
    moment = local_instant(wall, zone)
    assert moment == oracle_instant(wall, zone)
    assert moment.astimezone(zone).replace(tzinfo=None) >= wall
    assert (moment - MICRO).astimezone(zone).replace(tzinfo=None) < wall
