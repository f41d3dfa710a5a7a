"""Drip schedules: when each lesson of a product opens for one member. Pure.

A product has :class:`DripSettings`: the clock its relative rules count from
(:data:`DripStart`: the purchase, the access grant, the member's first visit,
or a cohort's start) and the portal timezone its calendar rules are read in.
Lessons and categories carry rules (the tagged union :data:`DripRule`);
:func:`evaluate` turns them, one member's anchor instant, completions and
passed assessments, and ``now`` into a :class:`LessonAvailability` per lesson.

>>> from datetime import UTC, datetime, time
>>> from zoneinfo import ZoneInfo
>>> bought = datetime(2024, 3, 25, 18, 0, tzinfo=UTC)  # 19:00 in Berlin, winter time
>>> opens_at(AfterDelay(days=7, at=time(9)), start=bought, timezone=ZoneInfo("Europe/Berlin"))
datetime.datetime(2024, 4, 1, 7, 0, tzinfo=datetime.timezone.utc)

(09:00 Berlin summer time is 07:00 UTC: the wall clock is kept across the
change to daylight saving time on 31 March.)

Rules of a category apply to all its lessons and sub-categories; a lesson
opens when *all* its rules and all its ancestors' rules are met: the latest
time wins, and every prerequisite must be satisfied.

Local times, and the two hours a year when they are odd:

- A local time that does not exist (it falls in the spring-forward gap)
  opens at the first instant after the gap: 02:30 on the night Berlin jumps
  from 02:00 to 03:00 opens at 03:00 local. (Shifting by the gap, to 03:30,
  would open a 02:59 lesson after a 03:00 one.)
- A local time that happens twice (the fall-back hour) opens at its first
  occurrence (``fold=0``).

Both are the same rule: a local time ``w`` opens at the first instant at
which the portal's wall clock shows ``w`` or later (:func:`local_instant`).

Every variant carries a ``kind`` literal so the library's cattrs converter
can structure the unions. Local (naive) times are held as ISO 8601 strings
(``"09:00:00"``, ``"2028-02-29T09:00:00"``), since the converter only deals in
timezone-aware datetimes; the constructors also take :class:`datetime.time`
and naive :class:`datetime.datetime` values, and :attr:`AfterDelay.time_of_day`
and :attr:`OnDate.local` give them back typed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal, Protocol, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from .. import _validate
from ..errors import ValidationError
from ._fields import aware as _aware
from ._fields import kind as _kind
from ._fields import one_of as _one_of

__all__ = [
    "AfterAssessment",
    "AfterDelay",
    "AfterLesson",
    "CourseCategory",
    "CourseLesson",
    "DripRule",
    "DripSettings",
    "DripStart",
    "DripState",
    "FromAccessGrant",
    "FromCohortStart",
    "FromFirstVisit",
    "FromPurchase",
    "Immediately",
    "LessonAvailability",
    "MAX_DELAY_DAYS",
    "MAX_DELAY_HOURS",
    "OnDate",
    "TimeRule",
    "anchor",
    "evaluate",
    "local_instant",
    "next_opening",
    "opened_between",
    "opens_at",
]

#: The longest delay in days: 100 years.
MAX_DELAY_DAYS = 36500
#: The longest delay in hours (one leap year of hours); more is a matter of days.
MAX_DELAY_HOURS = 24 * 366
_MAX_ID_LENGTH = 200


# --------------------------------------------------------------------------- helpers


def _int_between(field: str, low: int, high: int) -> Any:
    """An attrs validator: an int (never a bool) in ``low..high``, naming ``field``."""

    def check(_instance: Any, _attribute: Any, value: object) -> None:
        number = _validate.integer(field, value, minimum=low)
        if number > high:
            raise ValidationError(field, f"must be at most {high}, not {number}")

    return check


def _check_id(field: str, value: object) -> str:
    """An id: a non-empty string without surrounding spaces, at most 200 characters."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    if not value or value != value.strip():
        raise ValidationError(field, f"must be a non-empty id without spaces around, not {value!r}")
    if len(value) > _MAX_ID_LENGTH:
        raise ValidationError(field, f"must be at most {_MAX_ID_LENGTH} characters")
    return value


def _id_field(field: str) -> Any:
    """An attrs validator for :func:`_check_id`."""

    def check(_instance: Any, _attribute: Any, value: object) -> None:
        _check_id(field, value)

    return check


def _time_of_day(value: time | str | None) -> str | None:
    """Canonical ISO text of a naive local time of day (``"09:00:00"``), or ``None``."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = time.fromisoformat(value)
        except ValueError:
            raise ValidationError("at", f"{value!r} is not an ISO 8601 time of day") from None
    if not isinstance(value, time):
        raise ValidationError("at", f"must be a time of day, not {type(value).__name__}")
    if value.tzinfo is not None:
        raise ValidationError("at", "must be a local time without a timezone (the portal's)")
    return value.replace(fold=0).isoformat()


def _local_datetime(value: datetime | str) -> str:
    """Canonical ISO text of a naive local date and time (``"2028-02-29T09:00:00"``)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError("at", f"{value!r} is not an ISO 8601 date and time") from None
    if not isinstance(value, datetime):
        raise ValidationError("at", f"must be a datetime, not {type(value).__name__}")
    if value.tzinfo is not None:
        raise ValidationError(
            "at", "must be a naive local date and time (it is read in the portal's timezone)"
        )
    return value.replace(fold=0).isoformat()


def _zone(name: object) -> ZoneInfo:
    if not isinstance(name, str):
        raise ValidationError("timezone", f"must be a string, not {type(name).__name__}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError("timezone", f"{name!r} is not a known IANA timezone") from None


# --------------------------------------------------------------------------- settings


@attrs.frozen
class FromPurchase:
    """Relative rules count from the member's purchase."""

    kind: Literal["purchase"] = _kind("purchase")


@attrs.frozen
class FromAccessGrant:
    """Relative rules count from the moment access was granted (a late grant starts late)."""

    kind: Literal["access_grant"] = _kind("access_grant")


@attrs.frozen
class FromFirstVisit:
    """Relative rules count from the member's first visit; until then they cannot open."""

    kind: Literal["first_visit"] = _kind("first_visit")


@attrs.frozen
class FromCohortStart:
    """Relative rules count from a cohort's start ``at``, the same for every member.

    Late joiners see everything whose time has come, as for :class:`OnDate`.
    """

    at: datetime = attrs.field(validator=_aware("at"))
    kind: Literal["cohort_start"] = _kind("cohort_start")


#: The clock a product's relative rules count from.
DripStart: TypeAlias = FromPurchase | FromAccessGrant | FromFirstVisit | FromCohortStart


def _check_timezone(_instance: Any, _attribute: Any, value: object) -> None:
    _zone(value)


@attrs.frozen
class DripSettings:
    """A product's drip clock: what ``start`` counts from, and the portal ``timezone``.

    ``timezone`` is an IANA name; calendar days, times of day and fixed dates
    are read on its wall clock.

    >>> DripSettings(FromFirstVisit(), "Europe/Berlin").zone
    zoneinfo.ZoneInfo(key='Europe/Berlin')
    >>> DripSettings(FromPurchase(), "Mars/Olympus")
    Traceback (most recent call last):
    ...
    membership_core.errors.ValidationError: timezone: 'Mars/Olympus' is not a known IANA timezone
    """

    start: DripStart = attrs.field(
        validator=_one_of("start", FromPurchase, FromAccessGrant, FromFirstVisit, FromCohortStart)
    )
    timezone: str = attrs.field(default="UTC", validator=_check_timezone)

    @property
    def zone(self) -> ZoneInfo:
        """The portal timezone (``ZoneInfo`` caches them: this is cheap)."""
        return _zone(self.timezone)


def anchor(
    start: DripStart,
    *,
    purchased_at: datetime | None = None,
    granted_at: datetime | None = None,
    first_visit_at: datetime | None = None,
) -> datetime | None:
    """The instant a member's relative rules count from, in UTC, or ``None`` if unknown yet.

    The service passes the member's instants it knows; ``None`` (for
    example, no first visit yet) gives ``None``, and :func:`evaluate` then
    keeps every relative rule closed without an opening time.

    >>> from datetime import UTC, datetime
    >>> anchor(FromFirstVisit(), purchased_at=datetime(2024, 1, 1, tzinfo=UTC)) is None
    True
    >>> anchor(FromCohortStart(datetime(2024, 2, 29, tzinfo=UTC)))
    datetime.datetime(2024, 2, 29, 0, 0, tzinfo=datetime.timezone.utc)
    """
    _one_of("start", FromPurchase, FromAccessGrant, FromFirstVisit, FromCohortStart)(
        None, None, start
    )
    given: datetime | None
    if isinstance(start, FromPurchase):
        given, field = purchased_at, "purchased_at"
    elif isinstance(start, FromAccessGrant):
        given, field = granted_at, "granted_at"
    elif isinstance(start, FromFirstVisit):
        given, field = first_visit_at, "first_visit_at"
    else:
        given, field = start.at, "start"
    if given is None:
        return None
    return _validate.aware(field, given).astimezone(UTC)


# --------------------------------------------------------------------------- rules


@attrs.frozen
class Immediately:
    """No condition: open as soon as the member has access.

    It adds nothing to the other rules (all rules must be met), so it does not
    override a rule of the lesson's category.
    """

    kind: Literal["immediately"] = _kind("immediately")


@attrs.frozen
class AfterDelay:
    """Open ``days`` calendar days and then ``hours`` exact hours after the start.

    Days are counted on the portal's wall clock, so "7 days" opens at the same
    local time a week later, even across a change to or from daylight saving
    time; ``hours`` are then added as exact hours (60 minutes each).

    With ``at`` (a local time of day), the lesson opens at ``at`` on the local
    date ``days`` after the start's local date, and ``hours`` must be 0. With
    ``days=0`` that time may be before the start: the lesson is then open from
    the start. ``days=0, hours=0`` is the start itself.

    >>> AfterDelay(days=7, at=time(9))
    AfterDelay(days=7, hours=0, at='09:00:00')
    >>> AfterDelay(days=7, at=time(9)).time_of_day
    datetime.time(9, 0)
    """

    days: int = attrs.field(default=0, validator=_int_between("days", 0, MAX_DELAY_DAYS))
    hours: int = attrs.field(default=0, validator=_int_between("hours", 0, MAX_DELAY_HOURS))
    at: str | None = attrs.field(default=None, converter=_time_of_day)
    kind: Literal["after_delay"] = _kind("after_delay")

    def __attrs_post_init__(self) -> None:
        if self.at is not None and self.hours:
            raise ValidationError("hours", f"must be 0 when a time of day is set, not {self.hours}")

    @property
    def time_of_day(self) -> time | None:
        """``at`` as a :class:`datetime.time`, or ``None``."""
        return None if self.at is None else time.fromisoformat(self.at)


@attrs.frozen
class OnDate:
    """Open at a fixed local date and time ``at``, read in the portal's timezone.

    The date is absolute, not relative to the member: someone who joins after
    it sees the lesson at once.

    >>> OnDate(datetime(2028, 2, 29, 9, 0)).at
    '2028-02-29T09:00:00'
    """

    at: str = attrs.field(converter=_local_datetime)
    kind: Literal["on_date"] = _kind("on_date")

    @property
    def local(self) -> datetime:
        """``at`` as a naive :class:`datetime.datetime` (portal wall clock)."""
        return datetime.fromisoformat(self.at)


@attrs.frozen
class AfterLesson:
    """Open only once a lesson is completed: ``lesson_id``, or the previous one in course order.

    ``lesson_id=None`` means the lesson right before this one in the course
    order given to :func:`evaluate`; on a category it applies to each of the
    category's lessons in turn (each waits for the one before it), and the
    first lesson of the course has nothing before it, so it is not held back.
    """

    lesson_id: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(_id_field("lesson_id"))
    )
    kind: Literal["after_lesson"] = _kind("after_lesson")


@attrs.frozen
class AfterAssessment:
    """Open only once the member has passed assessment ``assessment_id``."""

    assessment_id: str = attrs.field(validator=_id_field("assessment_id"))
    kind: Literal["after_assessment"] = _kind("after_assessment")


#: A drip rule of a lesson or a category.
DripRule: TypeAlias = Immediately | AfterDelay | OnDate | AfterLesson | AfterAssessment
#: The rules that open at a point in time (see :func:`opens_at`).
TimeRule: TypeAlias = AfterDelay | OnDate

_RULES = (Immediately, AfterDelay, OnDate, AfterLesson, AfterAssessment)


# --------------------------------------------------------------------------- time


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def local_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which ``zone``'s wall clock shows ``wall`` or later.

    - an ordinary local time: that instant;
    - an ambiguous one (the fall-back hour): its first occurrence (``fold=0``);
    - one that does not exist (the spring-forward gap): the first instant
      after the gap, the moment the clocks jump (02:30 -> 03:00 local).

    >>> from zoneinfo import ZoneInfo
    >>> berlin = ZoneInfo("Europe/Berlin")
    >>> local_instant(datetime(2024, 3, 31, 2, 30), berlin)  # gap: opens at 03:00 CEST
    datetime.datetime(2024, 3, 31, 1, 0, tzinfo=datetime.timezone.utc)
    >>> local_instant(datetime(2024, 10, 27, 2, 30), berlin)  # twice: the first, CEST
    datetime.datetime(2024, 10, 27, 0, 30, tzinfo=datetime.timezone.utc)
    """
    if not isinstance(wall, datetime) or wall.tzinfo is not None:
        raise ValidationError("wall", "must be a naive local datetime")
    wall = wall.replace(fold=0)
    first = wall.replace(tzinfo=zone).astimezone(UTC)
    if _wall(first, zone) == wall:
        return first
    # In a gap, fold=0 reads ``wall`` with the offset before the jump (an instant
    # after the gap) and fold=1 with the offset after it (an instant before the
    # gap). Find the jump between them, to the microsecond, by bisection.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(first, other), max(first, other)  # wall(low) < wall <= wall(high)
    while high - low > timedelta(microseconds=1):
        middle = low + (high - low) // 2
        if _wall(middle, zone) >= wall:
            high = middle
        else:
            low = middle
    return high


def opens_at(rule: TimeRule, *, start: datetime | None, timezone: ZoneInfo) -> datetime | None:
    """When a time rule opens (UTC), or ``None`` when it cannot be known yet.

    ``start`` is the member's anchor (see :func:`anchor`); an :class:`AfterDelay`
    without one returns ``None``. An :class:`OnDate` ignores ``start``.
    Prerequisite rules (:class:`AfterLesson`, :class:`AfterAssessment`) and
    :class:`Immediately` have no time: passing them is a ``ValidationError``.

    >>> from zoneinfo import ZoneInfo
    >>> new_york = ZoneInfo("America/New_York")
    >>> visited = datetime(2024, 3, 5, 14, 0, tzinfo=UTC)  # 09:00 EST
    >>> opens_at(AfterDelay(days=7), start=visited, timezone=new_york)  # 09:00 EDT
    datetime.datetime(2024, 3, 12, 13, 0, tzinfo=datetime.timezone.utc)
    >>> opens_at(AfterDelay(days=7), start=None, timezone=new_york) is None
    True
    """
    if not isinstance(rule, (AfterDelay, OnDate)):
        raise ValidationError(
            "rule", f"must be AfterDelay or OnDate (a time rule), not {type(rule).__name__}"
        )
    if not isinstance(timezone, ZoneInfo):
        raise ValidationError("timezone", f"must be a ZoneInfo, not {type(timezone).__name__}")
    try:
        if isinstance(rule, OnDate):
            return local_instant(rule.local, timezone)
        if start is None:
            return None
        start = _validate.aware("start", start).astimezone(UTC)
        if rule.days == 0 and rule.at is None:
            return start + timedelta(hours=rule.hours)
        local = _wall(start, timezone)
        at = rule.time_of_day
        day = local + timedelta(days=rule.days)
        wall = day if at is None else datetime.combine(day.date(), at)
        return local_instant(wall, timezone) + timedelta(hours=rule.hours)
    except OverflowError:
        raise ValidationError("rule", "it would open outside the years 1 to 9999") from None


# --------------------------------------------------------------------------- evaluation


class CourseLesson(Protocol):
    """What :func:`evaluate` reads of a lesson (a :class:`~.catalog.Lesson` has it)."""

    @property
    def id(self) -> str: ...

    @property
    def category_id(self) -> str: ...


class CourseCategory(Protocol):
    """What :func:`evaluate` reads of a category (a :class:`~.catalog.Category` has it)."""

    @property
    def id(self) -> str: ...

    @property
    def parent_id(self) -> str | None: ...


class DripState(enum.Enum):
    """Where a lesson stands for one member."""

    #: The member may open it.
    AVAILABLE = "available"
    #: Waiting for its time; ``opens_at`` says when, if it is known yet.
    DRIPPED = "dripped"
    #: Waiting for a prerequisite (``waiting_for``): a lesson to complete or
    #: an assessment to pass. Time may also be pending (``opens_at``).
    LOCKED = "locked"


def _optional_aware(field: str) -> Any:
    def check(_instance: Any, _attribute: Any, value: object) -> None:
        if value is not None:
            _validate.aware(field, value)

    return check


def _ids(values: object) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ValidationError("waiting_for", "must be a sequence of ids")
    return tuple(values)


@attrs.frozen
class LessonAvailability:
    """Whether lesson ``lesson_id`` is open for a member, and if not, what it waits for.

    - :attr:`DripState.AVAILABLE`: open; ``opens_at`` is ``None`` and
      ``waiting_for`` empty.
    - :attr:`DripState.DRIPPED`: only time is missing; ``opens_at`` is the
      exact instant it opens (``None`` while the anchor, such as a first
      visit, is unknown).
    - :attr:`DripState.LOCKED`: ``waiting_for`` lists the lesson and assessment
      ids still missing, in rule order; ``opens_at``, when set, is the time
      that must also come (it opens at that time at the earliest).
    """

    lesson_id: str = attrs.field(validator=_id_field("lesson_id"))
    state: DripState = attrs.field(validator=_one_of("state", DripState))
    opens_at: datetime | None = attrs.field(default=None, validator=_optional_aware("opens_at"))
    waiting_for: tuple[str, ...] = attrs.field(default=(), converter=_ids)

    def __attrs_post_init__(self) -> None:
        for missing in self.waiting_for:
            _check_id("waiting_for", missing)
        if self.state is DripState.LOCKED:
            if not self.waiting_for:
                raise ValidationError("waiting_for", "a locked lesson waits for something")
        elif self.waiting_for:
            raise ValidationError("waiting_for", f"must be empty when {self.state.value}")
        if self.state is DripState.AVAILABLE and self.opens_at is not None:
            raise ValidationError("opens_at", "must be None when available")

    @property
    def available(self) -> bool:
        """True when the member may open the lesson."""
        return self.state is DripState.AVAILABLE


@attrs.frozen
class _Time:
    """The combined time condition of some rules: ``known`` False means an anchor is missing."""

    known: bool = True
    at: datetime | None = None  # None (and known): no time condition

    def then(self, other: _Time) -> _Time:
        """Both conditions: the later time wins; unknown stays unknown."""
        if not (self.known and other.known):
            return _UNKNOWN
        if self.at is None or (other.at is not None and other.at > self.at):
            return other
        return self


_NO_TIME = _Time()
_UNKNOWN = _Time(known=False)


@attrs.frozen
class _Plan:
    """A lesson's conditions, independent of ``now``."""

    lesson_id: str
    forced: bool  # completed, or unlocked before: always available
    time: _Time
    missing: tuple[str, ...]


def _rules_of(rules: Mapping[str, Sequence[DripRule]], key: str) -> Sequence[DripRule]:
    found = rules.get(key, ())
    if isinstance(found, str) or not isinstance(found, Sequence):
        raise ValidationError("rules", f"rules of {key!r} must be a sequence of drip rules")
    for rule in found:
        if not isinstance(rule, _RULES):
            raise ValidationError(
                "rules", f"rules of {key!r} hold a {type(rule).__name__}, not a drip rule"
            )
    return found


def _time_of(
    rules: Sequence[DripRule], start: datetime | None, zone: ZoneInfo, base: _Time
) -> _Time:
    combined = base
    for rule in rules:
        if isinstance(rule, (AfterDelay, OnDate)):
            at = opens_at(rule, start=start, timezone=zone)
            combined = combined.then(_UNKNOWN if at is None else _Time(at=at))
    return combined


def _plans(
    lessons: Sequence[CourseLesson],
    categories: Sequence[CourseCategory],
    rules: Mapping[str, Sequence[DripRule]],
    settings: DripSettings,
    start: datetime | None,
    completed: AbstractSet[str],
    passed_assessments: AbstractSet[str],
    unlocked: AbstractSet[str],
) -> list[_Plan]:
    """Each lesson's conditions, in course order: O(lessons + categories + rules)."""
    _one_of("settings", DripSettings)(None, None, settings)
    if start is not None:
        start = _validate.aware("start", start).astimezone(UTC)
    for field, ids in (
        ("completed", completed),
        ("passed_assessments", passed_assessments),
        ("unlocked", unlocked),
    ):
        if not isinstance(ids, AbstractSet):
            raise ValidationError(field, f"must be a set of ids, not {type(ids).__name__}")
    zone = settings.zone
    by_id = {category.id: category for category in categories}
    # Per category: its and its ancestors' time condition and prerequisite rules.
    inherited: dict[str, tuple[_Time, tuple[DripRule, ...]]] = {}

    def inherit(category_id: str) -> tuple[_Time, tuple[DripRule, ...]]:
        chain: list[str] = []
        current: str | None = category_id
        while current is not None and current not in inherited:
            if current in chain:
                raise ValidationError("categories", f"category {current!r} is its own ancestor")
            category = by_id.get(current)
            if category is None:
                raise ValidationError("categories", f"unknown category {current!r}")
            chain.append(current)
            current = category.parent_id
        time_, waits = inherited[current] if current is not None else (_NO_TIME, ())
        for link in reversed(chain):  # the root first
            own = _rules_of(rules, link)
            time_ = _time_of(own, start, zone, time_)
            waits += tuple(r for r in own if isinstance(r, (AfterLesson, AfterAssessment)))
            inherited[link] = (time_, waits)
        return inherited[category_id]

    plans: list[_Plan] = []
    seen: set[str] = set()
    previous: str | None = None
    for lesson in lessons:
        lesson_id = _check_id("lessons", lesson.id)
        if lesson_id in seen:
            raise ValidationError("lessons", f"lesson {lesson_id!r} is listed twice")
        seen.add(lesson_id)
        category_time, category_waits = inherit(lesson.category_id)
        own = _rules_of(rules, lesson_id)
        time_ = _time_of(own, start, zone, category_time)
        missing: list[str] = []
        for rule in (*category_waits, *own):
            if isinstance(rule, AfterAssessment):
                needed = rule.assessment_id
                met = needed in passed_assessments
            elif isinstance(rule, AfterLesson):
                needed = rule.lesson_id or previous or ""
                met = not needed or needed in completed
            else:
                continue
            if not met and needed not in missing:
                missing.append(needed)
        forced = lesson_id in completed or lesson_id in unlocked
        plans.append(_Plan(lesson_id, forced, time_, tuple(missing)))
        previous = lesson_id
    return plans


def _availability(plan: _Plan, now: datetime) -> LessonAvailability:
    if plan.forced:
        return LessonAvailability(plan.lesson_id, DripState.AVAILABLE)
    time_ = plan.time
    pending = not time_.known or (time_.at is not None and now < time_.at)
    opens = time_.at if pending else None
    if plan.missing:
        return LessonAvailability(plan.lesson_id, DripState.LOCKED, opens, plan.missing)
    if pending:
        return LessonAvailability(plan.lesson_id, DripState.DRIPPED, opens)
    return LessonAvailability(plan.lesson_id, DripState.AVAILABLE)


def evaluate(
    lessons_in_course_order: Sequence[CourseLesson],
    categories: Sequence[CourseCategory],
    rules: Mapping[str, Sequence[DripRule]],
    *,
    settings: DripSettings,
    start: datetime | None,
    now: datetime,
    completed: AbstractSet[str],
    passed_assessments: AbstractSet[str] = frozenset(),
    unlocked: AbstractSet[str] = frozenset(),
) -> dict[str, LessonAvailability]:
    """Each lesson's availability for one member at ``now``, keyed by id, in course order.

    - ``rules`` maps a lesson id or a category id to its rules; a lesson must
      meet its own rules and those of its category and every ancestor
      category (all of them: the latest time, every prerequisite).
      ``categories`` must hold every category the lessons are in, with their
      ancestors; otherwise it is a ``ValidationError("categories", ...)``.
    - ``start`` is the member's anchor (:func:`anchor`); ``None`` keeps every
      lesson with a relative rule closed, with no ``opens_at``.
    - A lesson opens exactly at its ``opens_at``: at ``now == opens_at`` it is
      available, a microsecond before it is not.
    - ``completed`` lessons, and ``unlocked`` ones (opened for this member
      before and remembered by the service), are always available, even if a
      rule was since moved later.
    - :class:`AfterLesson` without an id waits for the lesson before it in
      ``lessons_in_course_order`` (pass only the lessons members see).

    It runs in time linear in the lessons, categories and rules. Completions
    change prerequisites, so the service evaluates again after each one.

    >>> from types import SimpleNamespace as Item  # or catalog Lessons and Categories
    >>> module = Item(id="cat_1", parent_id=None)
    >>> intro, week1 = Item(id="les_1", category_id="cat_1"), Item(id="les_2", category_id="cat_1")
    >>> result = evaluate([intro, week1], [module], {"les_2": [AfterDelay(days=7)]},
    ...     settings=DripSettings(FromPurchase()), start=datetime(2024, 1, 1, tzinfo=UTC),
    ...     now=datetime(2024, 1, 3, tzinfo=UTC), completed=frozenset())
    >>> [(a.lesson_id, a.state.value, a.opens_at) for a in result.values()]
    [('les_1', 'available', None), ('les_2', 'dripped', datetime.datetime(2024, 1, 8, 0, 0, \
tzinfo=datetime.timezone.utc))]
    """
    now = _validate.aware("now", now)
    plans = _plans(
        lessons_in_course_order,
        categories,
        rules,
        settings,
        start,
        completed,
        passed_assessments,
        unlocked,
    )
    return {plan.lesson_id: _availability(plan, now) for plan in plans}


def next_opening(availabilities: Mapping[str, LessonAvailability]) -> datetime | None:
    """The earliest ``opens_at`` of the DRIPPED lessons in an :func:`evaluate` result.

    It is after the ``now`` of that evaluation (a DRIPPED lesson's time has not
    come), so a service schedules its next drip tick for this member then.
    ``None``: no lesson is waiting for a known time. Locked lessons are left
    out: they open when a prerequisite is met, an action the service sees
    (and evaluates again after) rather than a time it must wake up for.

    >>> waiting = LessonAvailability("les_2", DripState.DRIPPED, datetime(2024, 1, 8, tzinfo=UTC))
    >>> next_opening({"les_2": waiting, "les_3": LessonAvailability("les_3", DripState.DRIPPED)})
    datetime.datetime(2024, 1, 8, 0, 0, tzinfo=datetime.timezone.utc)
    """
    times = [
        availability.opens_at
        for availability in availabilities.values()
        if availability.state is DripState.DRIPPED and availability.opens_at is not None
    ]
    return min(times, default=None)


def opened_between(
    lessons_in_course_order: Sequence[CourseLesson],
    categories: Sequence[CourseCategory],
    rules: Mapping[str, Sequence[DripRule]],
    *,
    settings: DripSettings,
    start: datetime | None,
    since: datetime,
    until: datetime,
    completed: AbstractSet[str],
    passed_assessments: AbstractSet[str] = frozenset(),
    unlocked: AbstractSet[str] = frozenset(),
) -> list[str]:
    """The ids of the lessons that time opened in ``(since, until]``, in course order.

    Exactly the lessons available at ``until`` but not at ``since`` under
    :func:`evaluate` with the same arguments: their prerequisites are met and
    their opening time is after ``since`` and at or before ``until``.
    Completed and ``unlocked`` lessons are never listed (they were open
    already). Consecutive windows ``(a, b]``, ``(b, c]`` split ``(a, c]``
    exactly, so a tick that remembers the ``until`` it ran to emits one
    "LessonUnlocked" batch per member per run and never reports a lesson twice
    or misses one. Lessons opened by a completion are the completing
    service's business, not the tick's.

    >>> from types import SimpleNamespace as Item  # or catalog Lessons and Categories
    >>> lessons = [Item(id=f"les_{n}", category_id="cat_1") for n in range(3)]
    >>> rules = {f"les_{n}": [AfterDelay(days=n)] for n in range(3)}
    >>> opened_between(lessons, [Item(id="cat_1", parent_id=None)], rules,
    ...     settings=DripSettings(FromPurchase()), start=datetime(2024, 1, 1, tzinfo=UTC),
    ...     since=datetime(2024, 1, 1, tzinfo=UTC), until=datetime(2024, 1, 2, tzinfo=UTC),
    ...     completed=frozenset())
    ['les_1']
    """
    since = _validate.aware("since", since)
    until = _validate.aware("until", until)
    if until < since:
        raise ValidationError("until", "must not be before since")
    plans = _plans(
        lessons_in_course_order,
        categories,
        rules,
        settings,
        start,
        completed,
        passed_assessments,
        unlocked,
    )
    return [
        plan.lesson_id
        for plan in plans
        if not plan.forced
        and not plan.missing
        and plan.time.known
        and plan.time.at is not None
        and since < plan.time.at <= until
    ]
