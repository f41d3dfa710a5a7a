"""Lesson completion, progress and course completion."""

from __future__ import annotations

from datetime import datetime

import attrs

from .. import _validate as v
from ..domain.access import AccessReason
from ..domain.events import CourseCompleted, LessonCompleted, LessonCompletionUndone
from ..domain.progress import (
    CourseCompletion,
    LessonActivity,
    LessonCompletion,
    ProductActivity,
    Progress,
    compute_progress,
)
from ..errors import AccessDenied, ValidationError
from ..ports.storage import UnitOfWork
from ._context import Context, Service
from .access import AccessService
from .drip import look_again

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
            progress = self._complete_in(uow, member_id, lesson_id, now)
            uow.commit()
        self._committed()
        return progress

    def _complete_in(
        self, uow: UnitOfWork, member_id: str, lesson_id: str, now: datetime
    ) -> Progress:
        """:meth:`complete_lesson` inside the caller's unit of work, member already locked."""
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
            if product.drip is not None:
                look_again(uow, member_id, product.id, now)
        self._touch(uow, member_id, product.id, now)
        lessons = uow.lessons.find({"product_id": product.id})
        progress = compute_progress(member_id, product.id, lessons, completions)
        if progress.finished and uow.course_completions.count(where) == 0:
            uow.course_completions.add(
                CourseCompletion(self._ctx.ids.new("ccm"), member_id, product.id, now)
            )
            self._record(uow, CourseCompleted, member_id=member_id, product_id=product.id)
        return progress

    def undo_completion(self, member_id: str, lesson_id: str, *, reason: str) -> Progress:
        """Take back a member's completion of a lesson (an admin's correction).

        Records ``LessonCompletionUndone``. A course completion, once reached,
        stays: certificates and emails it triggered are not taken back.
        Undoing a lesson that was not completed changes nothing.
        """
        v.identifier("member_id", member_id, "mem")
        v.identifier("lesson_id", lesson_id, "les")
        reason = v.text("reason", reason, max_length=500)
        with self._ctx.uow() as uow:
            self._require_for_update(uow.members, "member", member_id, "member_id")
            lesson = self._require(uow.lessons, "lesson", lesson_id, "lesson_id")
            where = {"member_id": member_id, "product_id": lesson.product_id}
            completions = uow.lesson_completions.find(where)
            for completion in completions:
                if completion.lesson_id == lesson_id:
                    uow.lesson_completions.delete(completion.id)
                    self._record(
                        uow,
                        LessonCompletionUndone,
                        member_id=member_id,
                        product_id=lesson.product_id,
                        lesson_id=lesson_id,
                        reason=reason,
                    )
            remaining = [c for c in completions if c.lesson_id != lesson_id]
            lessons = uow.lessons.find({"product_id": lesson.product_id})
            uow.commit()
        self._committed()
        return compute_progress(member_id, lesson.product_id, lessons, remaining)

    def record_video_progress(self, member_id: str, lesson_id: str, percent: int) -> int:
        """Note how far (0-100 %) the member watched the lesson's video; return the best so far.

        Only the highest figure is kept (seeking back does not lose progress).
        Counts as activity in the product. Completing the lesson stays an
        explicit :meth:`complete_lesson`, so the host decides at what percent.
        """
        v.identifier("member_id", member_id, "mem")
        v.identifier("lesson_id", lesson_id, "les")
        percent = v.integer("percent", percent, minimum=0)
        if percent > 100:
            raise ValidationError("percent", f"must be at most 100, not {percent}")
        now = self._ctx.now()
        with self._ctx.uow() as uow:
            self._require_for_update(uow.members, "member", member_id, "member_id")
            lesson = self._require(uow.lessons, "lesson", lesson_id, "lesson_id")
            found = uow.lesson_activity.find(
                {"member_id": member_id, "lesson_id": lesson_id}, limit=1
            )
            if found:
                best = max(found[0].video_percent, percent)
                uow.lesson_activity.update(
                    attrs.evolve(found[0], video_percent=best, updated_at=now)
                )
            else:
                best = percent
                uow.lesson_activity.add(
                    LessonActivity(
                        self._ctx.ids.new("lac"), member_id, lesson.product_id, lesson_id, best, now
                    )
                )
            self._touch(uow, member_id, lesson.product_id, now)
            uow.commit()
        return best

    def record_visit(self, member_id: str, product_id: str) -> ProductActivity:
        """Note that the member opened the product now (their first visit anchors drip).

        Hosts call it when a member opens a course page; completing lessons
        and watching videos count as activity too.
        """
        v.identifier("member_id", member_id, "mem")
        v.identifier("product_id", product_id, "prod")
        now = self._ctx.now()
        with self._ctx.uow() as uow:
            self._require_for_update(uow.members, "member", member_id, "member_id")
            self._require(uow.products, "product", product_id, "product_id")
            activity = self._touch(uow, member_id, product_id, now)
            uow.commit()
        return activity

    def activity(self, member_id: str, product_id: str) -> ProductActivity | None:
        """When the member first visited and was last active in the product (``None``: never)."""
        v.identifier("member_id", member_id, "mem")
        v.identifier("product_id", product_id, "prod")
        with self._ctx.uow(write=False) as uow:
            self._require(uow.members, "member", member_id, "member_id")
            found = uow.product_activity.find(
                {"member_id": member_id, "product_id": product_id}, limit=1
            )
        return found[0] if found else None

    def _touch(
        self, uow: UnitOfWork, member_id: str, product_id: str, now: datetime
    ) -> ProductActivity:
        """Record activity; the caller holds the member's lock, so no two threads race here."""
        found = uow.product_activity.find(
            {"member_id": member_id, "product_id": product_id}, limit=1
        )
        if found:
            activity = attrs.evolve(found[0], last_activity_at=max(now, found[0].last_activity_at))
            uow.product_activity.update(activity)
            return activity
        activity = ProductActivity(self._ctx.ids.new("pac"), member_id, product_id, now, now)
        uow.product_activity.add(activity)
        look_again(uow, member_id, product_id, now)  # a first visit may start the drip clock
        return activity

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
