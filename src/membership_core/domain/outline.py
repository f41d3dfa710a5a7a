"""The course outline a member sees: every category and lesson with its state."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import attrs

from .access import AccessDecision, AccessReason, decide
from .catalog import Category, Lesson, Product
from .drip import LessonAvailability
from .enrollments import Enrollment
from .progress import Progress

__all__ = ["LessonState", "Outline", "OutlineCategory", "OutlineLesson", "build_outline"]


class LessonState(enum.Enum):
    """A lesson's state in a member's outline."""

    COMPLETED = "completed"
    AVAILABLE = "available"
    #: Opens later by the drip schedule; ``available_at`` says when (if known).
    DRIPPED = "dripped"
    #: Waits: for an earlier lesson or assessment, or for access to start.
    LOCKED = "locked"
    NO_ACCESS = "no_access"


@attrs.frozen
class OutlineLesson:
    """One lesson as a member sees it."""

    id: str
    title: str
    kind: str
    state: LessonState
    reason: AccessReason
    available_at: datetime | None


@attrs.frozen
class OutlineCategory:
    """A category with its lessons and sub-categories, in order."""

    id: str
    title: str
    lessons: tuple[OutlineLesson, ...]
    children: tuple[OutlineCategory, ...]


@attrs.frozen
class Outline:
    """A product's whole tree for one member, with their progress."""

    product_id: str
    title: str
    categories: tuple[OutlineCategory, ...]
    progress: Progress
    #: True once the member completed the course, even if lessons were added since.
    completed: bool

    def lessons(self) -> list[OutlineLesson]:
        """Every lesson in course order."""
        found: list[OutlineLesson] = []

        def walk(categories: Sequence[OutlineCategory]) -> None:
            for category in categories:
                found.extend(category.lessons)
                walk(category.children)

        walk(self.categories)
        return found


def _state(decision: AccessDecision, completed: bool) -> LessonState:
    if completed:
        return LessonState.COMPLETED
    if decision.allowed:
        return LessonState.AVAILABLE
    if decision.reason is AccessReason.DRIPPED:
        return LessonState.DRIPPED
    if decision.reason is AccessReason.LOCKED or decision.available_at is not None:
        return LessonState.LOCKED
    return LessonState.NO_ACCESS


def build_outline(
    product: Product,
    categories: Sequence[Category],
    lessons: Sequence[Lesson],
    enrollments: Sequence[Enrollment],
    progress: Progress,
    at: datetime,
    *,
    member_active: bool = True,
    completed: bool = False,
    adjust: Callable[[Lesson, AccessDecision], AccessDecision] | None = None,
    drip: Mapping[str, LessonAvailability] | None = None,
) -> Outline:
    """Build the outline from already-loaded records; no storage access.

    ``adjust`` may replace each lesson's decision (the service passes the
    host's ``membership_access_decision`` hook through it). ``drip`` is each
    lesson's availability in the member's drip schedule, by lesson id.
    """
    by_category: dict[str, list[Lesson]] = {}
    for lesson in lessons:
        if lesson.published:
            by_category.setdefault(lesson.category_id, []).append(lesson)
    children: dict[str | None, list[Category]] = {}
    for category in categories:
        children.setdefault(category.parent_id, []).append(category)

    def lesson_view(lesson: Lesson) -> OutlineLesson:
        decision = decide(
            product,
            lesson,
            enrollments,
            at,
            member_active=member_active,
            drip=None if drip is None else drip.get(lesson.id),
        )
        if adjust is not None:
            decision = adjust(lesson, decision)
        state = _state(decision, lesson.id in progress.completed_lesson_ids)
        return OutlineLesson(
            lesson.id,
            lesson.title,
            lesson.kind.value,
            state,
            decision.reason,
            decision.available_at,
        )

    def tree(parent: str | None) -> tuple[OutlineCategory, ...]:
        return tuple(
            OutlineCategory(
                category.id,
                category.title,
                tuple(
                    lesson_view(lesson)
                    for lesson in sorted(
                        by_category.get(category.id, []), key=lambda x: (x.position, x.id)
                    )
                ),
                tree(category.id),
            )
            for category in sorted(children.get(parent, []), key=lambda c: (c.position, c.id))
        )

    return Outline(product.id, product.title, tree(None), progress, completed)
