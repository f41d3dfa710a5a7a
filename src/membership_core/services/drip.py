"""Drip schedules: set them up, see a member's, preview a change, open lessons on time.

``portal.drip``. The schedule itself is pure (:mod:`membership_core.domain.drip`);
this service loads what it needs, remembers per member and product which
lessons already opened (:class:`~membership_core.domain.progress.DripProgress`,
so a rule moved later never closes a lesson a member could already see), and
``tick()`` opens lessons on time through one indexed query over
``next_unlock_at``, recording one ``LessonsUnlocked`` per member and batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TypeVar

import attrs

from .. import _validate as v
from ..domain import drip as schedule
from ..domain.catalog import Category, Lesson, Product, ordered
from ..domain.drip import (
    DripRule,
    DripSettings,
    FromAccessGrant,
    FromFirstVisit,
    LessonAvailability,
)
from ..domain.enrollments import Enrollment, EnrollmentSource, EnrollmentStatus
from ..domain.events import LessonsUnlocked
from ..domain.progress import DripProgress, LessonCompletion
from ..errors import Conflict, ValidationError
from ..ports.storage import UnitOfWork
from ._context import Service

__all__ = ["DripService", "RuleChange", "by_member_product", "ensure_drip_progress", "look_again"]

_RULE_TYPES = (
    schedule.Immediately,
    schedule.AfterDelay,
    schedule.OnDate,
    schedule.AfterLesson,
    schedule.AfterAssessment,
)


@attrs.frozen
class RuleChange:
    """How a proposed rule change would move one lesson for one member."""

    member_id: str
    lesson_id: str
    before: LessonAvailability
    after: LessonAvailability

    @property
    def earlier(self) -> bool:
        """True when the lesson would open sooner (or now) under the new rules."""
        return _rank(self.after) < _rank(self.before)


def _rank(availability: LessonAvailability) -> tuple[int, datetime]:
    """Order availabilities from open to furthest away (an unknown time is last)."""
    if availability.available:
        return (0, datetime.min)
    if availability.opens_at is None:
        return (2, datetime.max)
    return (1, availability.opens_at.replace(tzinfo=None))


def ensure_drip_progress(
    uow: UnitOfWork, new_id: str, member_id: str, product_id: str, at: datetime
) -> None:
    """Make sure a member's drip progress in a product exists, due for a first look at ``at``."""
    if uow.drip_progress.count({"member_id": member_id, "product_id": product_id}):
        return
    # A concurrent grant may have written it a moment ago: that one is as good.
    with contextlib.suppress(Conflict):
        uow.drip_progress.add(DripProgress(new_id, member_id, product_id, frozenset(), at, None))


def passed_assessments(
    uow: UnitOfWork, member_id: str, rules: Mapping[str, Sequence[DripRule]]
) -> frozenset[str]:
    """The assessments ``rules`` wait for that the member has passed (no read without any)."""
    wanted = {
        rule.assessment_id
        for item_rules in rules.values()
        for rule in item_rules
        if isinstance(rule, schedule.AfterAssessment)
    }
    if not wanted:
        return frozenset()
    attempts = uow.assessment_attempts.find({"member_id": member_id})
    return frozenset(a.assessment_id for a in attempts if a.assessment_id in wanted and a.passed)


def look_again(uow: UnitOfWork, member_id: str, product_id: str, at: datetime) -> None:
    """Have the next tick re-evaluate a member's schedule from ``at``.

    Called when something other than time changed what the schedule will do:
    a first visit (it starts a ``FromFirstVisit`` clock) or a completion (it
    meets an ``AfterLesson`` rule, so a lesson that also waits for a date now
    has one). The tick then finds the next opening and announces it on time.
    """
    found = uow.drip_progress.find({"member_id": member_id, "product_id": product_id}, limit=1)
    if not found:
        return
    progress = found[0]
    if progress.next_unlock_at is None or progress.next_unlock_at > at:
        uow.drip_progress.update(attrs.evolve(progress, next_unlock_at=at))


@attrs.frozen
class _Course:
    """A product's structure, loaded once and shared by every member evaluated."""

    product: Product
    categories: tuple[Category, ...]
    lessons: tuple[Lesson, ...]


class DripService(Service):
    """Drip schedules. ``portal.drip``."""

    # -- setup ----------------------------------------------------------------------

    def configure(self, product_id: str, settings: DripSettings | None) -> Product:
        """Turn drip on for a product with its start clock and timezone (``None``: off).

        From then on, every member's lessons follow the product's rules.
        """
        v.identifier("product_id", product_id, "prod")
        if settings is not None and not isinstance(settings, DripSettings):
            raise ValidationError("settings", "must be DripSettings or None")
        now = self._ctx.now()
        with self._ctx.uow() as uow:
            product = self._require_for_update(uow.products, "product", product_id, "product_id")
            # What members see under the old settings stays open under the new ones.
            self._remember_open(uow, product, now)
            product = attrs.evolve(product, drip=settings, updated_at=now)
            uow.products.update(product)
            uow.commit()
        return product

    def set_rules(self, product_id: str, item_id: str, rules: Sequence[DripRule]) -> Product:
        """Set the drip rules of a lesson or category (``[]`` clears them).

        The change applies to every member from now on, without touching
        their enrollments; a lesson a member could already open stays open.
        See :meth:`preview_rule_change` for its effect before saving it.
        """
        v.identifier("product_id", product_id, "prod")
        checked = _rules(rules)
        now = self._ctx.now()
        with self._ctx.uow() as uow:
            product = self._require_for_update(uow.products, "product", product_id, "product_id")
            self._require_item(uow, product_id, item_id)
            self._remember_open(uow, product, now)
            drip_rules = dict(product.drip_rules)
            if checked:
                drip_rules[item_id] = checked
            else:
                drip_rules.pop(item_id, None)
            product = attrs.evolve(product, drip_rules=drip_rules, updated_at=now)
            uow.products.update(product)
            uow.commit()
        return product

    def preview_rule_change(
        self, product_id: str, item_id: str, rules: Sequence[DripRule]
    ) -> list[RuleChange]:
        """Which members would see which lessons open earlier or later under ``rules``.

        Nothing is saved. Lessons a member already opened stay open, so they
        never appear; only lessons whose state or opening time changes do.
        """
        v.identifier("product_id", product_id, "prod")
        checked = _rules(rules)
        now = self._ctx.now()
        with self._ctx.uow(write=False) as uow:
            product = self._require(uow.products, "product", product_id, "product_id")
            self._require_item(uow, product_id, item_id)
            course = self._course(uow, product)
            proposed = dict(product.drip_rules)
            if checked:
                proposed[item_id] = checked
            else:
                proposed.pop(item_id, None)
            changes: list[RuleChange] = []
            for progress in uow.drip_progress.find({"product_id": product_id}):
                before = self._evaluate(uow, course, progress, now)
                after = self._evaluate(uow, course, progress, now, rules=proposed)
                for lesson_id, old in before.items():
                    new = after[lesson_id]
                    if new != old:
                        changes.append(RuleChange(progress.member_id, lesson_id, old, new))
        return changes

    def schedule(self, member_id: str, product_id: str) -> dict[str, LessonAvailability]:
        """Each published lesson's availability for the member now, by the drip schedule.

        Without drip on the product, every lesson is available (access itself
        is ``access.can_view``'s business).
        """
        v.identifier("member_id", member_id, "mem")
        v.identifier("product_id", product_id, "prod")
        now = self._ctx.now()
        with self._ctx.uow(write=False) as uow:
            self._require(uow.members, "member", member_id, "member_id")
            product = self._require(uow.products, "product", product_id, "product_id")
            course = self._course(uow, product)
            found = uow.drip_progress.find(
                {"member_id": member_id, "product_id": product_id}, limit=1
            )
            progress = found[0] if found else None
            return self.availability(
                uow,
                course.product,
                course.categories,
                course.lessons,
                member_id,
                now,
                unlocked=progress.unlocked_lesson_ids if progress else frozenset(),
            ) or {
                lesson.id: LessonAvailability(lesson.id, schedule.DripState.AVAILABLE)
                for lesson in course.lessons
            }

    # -- evaluation shared with access decisions --------------------------------------

    def availability(
        self,
        uow: UnitOfWork,
        product: Product,
        categories: Sequence[Category],
        lessons: Sequence[Lesson],
        member_id: str,
        at: datetime,
        *,
        enrollments: Sequence[Enrollment] | None = None,
        completed: frozenset[str] | None = None,
        unlocked: frozenset[str] | None = None,
        rules: Mapping[str, Sequence[DripRule]] | None = None,
    ) -> dict[str, LessonAvailability] | None:
        """The member's drip schedule at ``at``, or ``None`` when the product has no drip.

        Loads what the caller did not pass (enrollments, completions, the
        lessons already opened, the first visit when the clock needs it).
        """
        settings = product.drip
        if settings is None:
            return None
        where = {"member_id": member_id, "product_id": product.id}
        if enrollments is None:
            enrollments = uow.enrollments.find(where)
        if completed is None:
            completed = frozenset(c.lesson_id for c in uow.lesson_completions.find(where))
        if unlocked is None:
            found = uow.drip_progress.find(where, limit=1)
            unlocked = found[0].unlocked_lesson_ids if found else frozenset()
        first_visit = None
        if isinstance(settings.start, FromFirstVisit):
            activity = uow.product_activity.find(where, limit=1)
            first_visit = activity[0].first_visit_at if activity else None
        live = [e for e in enrollments if e.status is EnrollmentStatus.ACTIVE]
        bought = [e.granted_at for e in live if e.source is EnrollmentSource.PURCHASE]
        start = schedule.anchor(
            settings.start,
            purchased_at=min(bought) if bought else None,
            granted_at=min((e.starts_at for e in live), default=None),
            first_visit_at=first_visit,
        )
        visible = [lesson for lesson in ordered(categories, lessons) if lesson.published]
        rules = product.drip_rules if rules is None else rules
        return schedule.evaluate(
            visible,
            categories,
            rules,
            settings=settings,
            start=start,
            now=at,
            completed=completed,
            passed_assessments=passed_assessments(uow, member_id, rules),
            unlocked=unlocked,
        )

    # -- scheduled work -------------------------------------------------------------

    def unlock_due(self, *, batch_size: int = 200) -> int:
        """Open the lessons whose time has come; return how many members got new ones.

        Run by ``tick()``. Each due member's schedule is evaluated; lessons
        newly open are remembered and announced with one ``LessonsUnlocked``
        event, in the same transaction, so a crash or a second worker never
        announces them twice. The first look after a grant opens the initial
        lessons silently (the access email covers them).
        """
        v.integer("batch_size", batch_size, minimum=1)
        announced = 0
        while True:
            now = self._ctx.now()
            courses: dict[str, _Course | None] = {}
            with self._ctx.uow() as uow:
                due = uow.drip_progress.find_due(
                    "next_unlock_at", now, limit=batch_size, claim=True
                )
                # The batch's grants and completions in two queries, not two per member.
                members = sorted({progress.member_id for progress in due})
                grants = by_member_product(uow.enrollments.find_in("member_id", members))
                done = by_member_product(uow.lesson_completions.find_in("member_id", members))
                for progress in due:
                    if progress.product_id not in courses:
                        product = uow.products.get(progress.product_id)
                        courses[progress.product_id] = (
                            self._course(uow, product) if product is not None else None
                        )
                    key = (progress.member_id, progress.product_id)
                    announced += self._advance(
                        uow,
                        courses[progress.product_id],
                        progress,
                        now,
                        grants.get(key, []),
                        frozenset(c.lesson_id for c in done.get(key, [])),
                    )
                uow.commit()
            if announced:
                self._committed()
            if len(due) < batch_size:
                return announced

    def _advance(
        self,
        uow: UnitOfWork,
        course: _Course | None,
        progress: DripProgress,
        now: datetime,
        enrollments: list[Enrollment],
        completed: frozenset[str],
    ) -> int:
        """Move one member's schedule on to ``now``; 1 if lessons were announced."""
        if course is None or course.product.drip is None:
            uow.drip_progress.update(attrs.evolve(progress, next_unlock_at=None))
            return 0
        if not any(e.covers(now) for e in enrollments):
            # No access now: look again when some grant starts, if one will.
            starts = [
                e.starts_at
                for e in enrollments
                if e.status is EnrollmentStatus.ACTIVE and e.starts_at > now
            ]
            uow.drip_progress.update(
                attrs.evolve(progress, next_unlock_at=min(starts, default=None))
            )
            return 0

        def schedule_at(at: datetime) -> dict[str, LessonAvailability]:
            assert course is not None
            result = self.availability(
                uow,
                course.product,
                course.categories,
                course.lessons,
                progress.member_id,
                at,
                enrollments=enrollments,
                completed=completed,
                unlocked=progress.unlocked_lesson_ids,
            )
            assert result is not None  # drip is on: checked above
            return result

        availability = schedule_at(now)
        open_now = frozenset(i for i, a in availability.items() if a.available)
        new = [i for i in availability if i in open_now - progress.unlocked_lesson_ids]
        if new and progress.evaluated_at is not None:
            # Announce what *time* opened since the last look: a lesson that was
            # already due then and only waited for a completion (or opened by a
            # rule change) is not news to the member.
            before = schedule_at(progress.evaluated_at)
            new = [i for i in new if not before[i].available]
        announce = bool(new) and progress.evaluated_at is not None
        if announce:
            self._record(
                uow,
                LessonsUnlocked,
                member_id=progress.member_id,
                product_id=progress.product_id,
                lesson_ids=tuple(new),
            )
        uow.drip_progress.update(
            attrs.evolve(
                progress,
                unlocked_lesson_ids=progress.unlocked_lesson_ids | open_now,
                next_unlock_at=schedule.next_opening(availability),
                evaluated_at=now,
            )
        )
        return 1 if announce else 0

    # -- helpers --------------------------------------------------------------------

    def _remember_open(self, uow: UnitOfWork, product: Product, now: datetime) -> None:
        """Before a change: keep every lesson open that is open now, and look again now.

        Without drip every published lesson is open, so turning drip on for a
        live course takes nothing away from its members; it shapes what
        members who join from then on see.
        """
        course = self._course(uow, product)
        everything = frozenset(lesson.id for lesson in course.lessons if lesson.published)
        for progress in uow.drip_progress.find({"product_id": product.id}):
            opened = progress.unlocked_lesson_ids
            if product.drip is None:
                opened = opened | everything
            else:
                availability = self._evaluate(uow, course, progress, now)
                opened = opened | {i for i, a in availability.items() if a.available}
            uow.drip_progress.update(
                attrs.evolve(progress, unlocked_lesson_ids=opened, next_unlock_at=now)
            )

    def _evaluate(
        self,
        uow: UnitOfWork,
        course: _Course,
        progress: DripProgress,
        now: datetime,
        *,
        rules: Mapping[str, Sequence[DripRule]] | None = None,
    ) -> dict[str, LessonAvailability]:
        product = course.product
        if product.drip is None:
            product = attrs.evolve(product, drip=DripSettings(FromAccessGrant()))
        result = self.availability(
            uow,
            product,
            course.categories,
            course.lessons,
            progress.member_id,
            now,
            unlocked=progress.unlocked_lesson_ids,
            rules=rules,
        )
        assert result is not None
        return result

    def _course(self, uow: UnitOfWork, product: Product) -> _Course:
        categories, lessons = self._ctx.structures.load(uow, product)
        return _Course(product, categories, lessons)

    def _require_item(self, uow: UnitOfWork, product_id: str, item_id: object) -> None:
        item: Category | Lesson
        if isinstance(item_id, str) and item_id.startswith("cat_"):
            item = self._require(uow.categories, "category", item_id, "item_id")
        elif isinstance(item_id, str) and item_id.startswith("les_"):
            item = self._require(uow.lessons, "lesson", item_id, "item_id")
        else:
            raise ValidationError("item_id", f"must be a les_... or cat_... id, not {item_id!r}")
        if item.product_id != product_id:
            raise ValidationError("item_id", f"{item_id} is not part of product {product_id}")


_Row = TypeVar("_Row", Enrollment, LessonCompletion)


def by_member_product(rows: list[_Row]) -> dict[tuple[str, str], list[_Row]]:
    """Rows grouped by (member, product): one query for a batch instead of one per member."""
    grouped: dict[tuple[str, str], list[_Row]] = {}
    for row in rows:
        grouped.setdefault((row.member_id, row.product_id), []).append(row)
    return grouped


def _rules(rules: object) -> tuple[DripRule, ...]:
    if isinstance(rules, str) or not isinstance(rules, Sequence):
        raise ValidationError("rules", "must be a list of drip rules")
    for index, rule in enumerate(rules):
        if not isinstance(rule, _RULE_TYPES):
            raise ValidationError(f"rules[{index}]", f"is not a drip rule: {rule!r}")
    return tuple(rules)
