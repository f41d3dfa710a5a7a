"""Lesson completions, course completions and the progress figure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import attrs

from .catalog import Lesson

__all__ = [
    "CourseCompletion",
    "DripProgress",
    "LessonActivity",
    "LessonCompletion",
    "ProductActivity",
    "Progress",
    "compute_progress",
]


@attrs.frozen
class LessonCompletion:
    """A member completed a lesson (one record per member and lesson)."""

    id: str
    member_id: str
    product_id: str
    lesson_id: str
    completed_at: datetime


@attrs.frozen
class CourseCompletion:
    """A member completed a course; at most one per member and product, never taken back."""

    id: str
    member_id: str
    product_id: str
    completed_at: datetime


@attrs.frozen
class ProductActivity:
    """When a member first and last did something in a product (one per member and product).

    ``first_visit_at`` is the anchor of drip schedules that count from the
    member's first visit; ``last_activity_at`` feeds analytics.
    """

    id: str
    member_id: str
    product_id: str
    first_visit_at: datetime
    last_activity_at: datetime


@attrs.frozen
class DripProgress:
    """Where a member's drip schedule in a product stands (one per member and product).

    ``unlocked_lesson_ids`` are the lessons already opened for the member:
    they stay open even if a rule later moves their date. ``next_unlock_at``
    is when the schedule must next be looked at (``None``: nothing more opens
    by time); ``tick()`` finds due rows by it with one indexed query.
    ``evaluated_at`` is ``None`` until the first look, which opens the
    initial lessons without announcing them.
    """

    id: str
    member_id: str
    product_id: str
    unlocked_lesson_ids: frozenset[str]
    next_unlock_at: datetime | None
    evaluated_at: datetime | None


@attrs.frozen
class LessonActivity:
    """How far a member got in a lesson's video (the highest percent seen)."""

    id: str
    member_id: str
    product_id: str
    lesson_id: str
    video_percent: int
    updated_at: datetime


@attrs.frozen
class Progress:
    """How far a member is through a product's required lessons."""

    product_id: str
    member_id: str
    completed: int
    required: int
    percent: int
    completed_lesson_ids: frozenset[str]

    @property
    def finished(self) -> bool:
        """True when every required lesson is completed (and there is at least one)."""
        return self.required > 0 and self.completed >= self.required


def compute_progress(
    member_id: str,
    product_id: str,
    lessons: Sequence[Lesson],
    completions: Iterable[LessonCompletion],
) -> Progress:
    """Progress over the published required lessons; percent is rounded down."""
    required = {lesson.id for lesson in lessons if lesson.required and lesson.published}
    done = frozenset(c.lesson_id for c in completions)
    completed = len(required & done)
    percent = (100 * completed // len(required)) if required else 0
    return Progress(product_id, member_id, completed, len(required), percent, done)
