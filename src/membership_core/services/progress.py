"""Lesson completion, progress and course completion."""

from __future__ import annotations

from .. import _validate as v
from ..domain.access import AccessReason
from ..domain.events import CourseCompleted, LessonCompleted
from ..domain.progress import CourseCompletion, LessonCompletion, Progress, compute_progress
from ..errors import AccessDenied
from ._context import Context, Service
from .access import AccessService

__all__ = ["ProgressService"]


class ProgressService(Service):
    """Complete lessons and follow progress. ``portal.progress``."""

    def __init__(self, context: Context, access: AccessService) -> None:
        super().__init__(context)
        self._access = access

    def complete_lesson(self, member_id: str, lesson_id: str) -> Progress:
        """Mark the lesson completed for the member; idempotent.

        The member must be allowed to view the lesson (``AccessDenied`` names
        the reason otherwise). Completing the last required lesson records
        ``CourseCompleted`` exactly once per member and product; adding lessons
        to a completed course later does not take the completion away.
        """
        v.identifier("member_id", member_id, "mem")
        v.identifier("lesson_id", lesson_id, "les")
        now = self._ctx.now()
        with self._ctx.uow() as uow:
            # Locking the member serializes their completions, so two lessons
            # finished at once cannot both miss that the course is complete.
            self._require_for_update(uow.members, "member", member_id, "member_id")
            decision, _lesson, product = self._access._decide(uow, member_id, lesson_id, now)
            # A preview is open to anyone; only members with access make progress,
            # or a course of preview lessons would hand out free certificates.
            if not decision.allowed or decision.reason is AccessReason.PREVIEW:
                reason = "preview only" if decision.allowed else decision.reason.value
                raise AccessDenied(
                    f"member may not complete lesson {lesson_id!r}: {reason}",
                    field="lesson_id",
                )
            where = {"member_id": member_id, "product_id": product.id}
            completions = uow.lesson_completions.find(where)
            if not any(c.lesson_id == lesson_id for c in completions):
                completion = LessonCompletion(
                    self._ctx.ids.new("lcm"), member_id, product.id, lesson_id, now
                )
                uow.lesson_completions.add(completion)
                completions.append(completion)
                self._record(
                    uow,
                    LessonCompleted,
                    member_id=member_id,
                    product_id=product.id,
                    lesson_id=lesson_id,
                )
            lessons = uow.lessons.find({"product_id": product.id})
            progress = compute_progress(member_id, product.id, lessons, completions)
            if progress.finished and uow.course_completions.count(where) == 0:
                uow.course_completions.add(
                    CourseCompletion(self._ctx.ids.new("ccm"), member_id, product.id, now)
                )
                self._record(uow, CourseCompleted, member_id=member_id, product_id=product.id)
            uow.commit()
        self._committed()
        return progress

    def progress(self, member_id: str, product_id: str) -> Progress:
        """How far the member is through the product's required lessons."""
        v.identifier("member_id", member_id, "mem")
        v.identifier("product_id", product_id, "prod")
        with self._ctx.uow(write=False) as uow:
            self._require(uow.members, "member", member_id, "member_id")
            self._require(uow.products, "product", product_id, "product_id")
            lessons = uow.lessons.find({"product_id": product_id})
            completions = uow.lesson_completions.find(
                {"member_id": member_id, "product_id": product_id}
            )
        return compute_progress(member_id, product_id, lessons, completions)

    def is_completed(self, member_id: str, product_id: str) -> bool:
        """True once the member has completed the product (never taken back)."""
        v.identifier("member_id", member_id, "mem")
        v.identifier("product_id", product_id, "prod")
        with self._ctx.uow(write=False) as uow:
            where = {"member_id": member_id, "product_id": product_id}
            return uow.course_completions.count(where) > 0
