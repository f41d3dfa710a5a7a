"""Access decisions and the member's course outline."""

from __future__ import annotations

from datetime import datetime

from .. import _validate as v
from ..domain.access import AccessDecision, decide
from ..domain.catalog import Lesson, Product
from ..domain.enrollments import Enrollment
from ..domain.members import MemberStatus
from ..domain.outline import Outline, build_outline
from ..domain.progress import compute_progress
from ..ports.storage import UnitOfWork
from ._context import Service

__all__ = ["AccessService"]


class AccessService(Service):
    """Who may see which lesson, and the outline a member sees. ``portal.access``."""

    def can_view(
        self, member_id: str, lesson_id: str, at: datetime | None = None
    ) -> AccessDecision:
        """Decide whether the member may see the lesson at ``at`` (default: now).

        Plugins may override the decision through ``membership_access_decision``.
        """
        v.identifier("member_id", member_id, "mem")
        v.identifier("lesson_id", lesson_id, "les")
        when = self._ctx.now() if at is None else v.aware("at", at)
        with self._ctx.uow(write=False) as uow:
            return self._decide(uow, member_id, lesson_id, when)[0]

    def _decide(
        self, uow: UnitOfWork, member_id: str, lesson_id: str, at: datetime
    ) -> tuple[AccessDecision, Lesson, Product]:
        member = self._require(uow.members, "member", member_id, "member_id")
        lesson = self._require(uow.lessons, "lesson", lesson_id, "lesson_id")
        product = self._require(uow.products, "product", lesson.product_id, "lesson_id")
        enrollments = uow.enrollments.find({"member_id": member_id, "product_id": product.id})
        decision = decide(
            product, lesson, enrollments, at, member_active=member.status is MemberStatus.ACTIVE
        )
        return self._adjust(member_id, lesson, at, decision), lesson, product

    def _adjust(
        self, member_id: str, lesson: Lesson, at: datetime, decision: AccessDecision
    ) -> AccessDecision:
        """Let plugins veto or extend the decision (the first answer wins)."""
        override = self._ctx.plugins.hook.membership_access_decision(
            portal=self._ctx.portal,
            member_id=member_id,
            lesson_id=lesson.id,
            at=at,
            decision=decision,
        )
        return override if isinstance(override, AccessDecision) else decision

    def enrollments(self, member_id: str) -> list[Enrollment]:
        """Every enrollment of the member, active or not, oldest first.

        Each says which product it opens and its ``starts_at`` / ``ends_at``,
        so a host can list "my courses" with their access dates.
        """
        v.identifier("member_id", member_id, "mem")
        with self._ctx.uow(write=False) as uow:
            self._require(uow.members, "member", member_id, "member_id")
            found = uow.enrollments.find({"member_id": member_id})
        return sorted(found, key=lambda enrollment: (enrollment.starts_at, enrollment.id))

    def outline(self, member_id: str, product_id: str, at: datetime | None = None) -> Outline:
        """The product's whole tree with each lesson's state for this member, and progress."""
        v.identifier("member_id", member_id, "mem")
        v.identifier("product_id", product_id, "prod")
        when = self._ctx.now() if at is None else v.aware("at", at)
        with self._ctx.uow(write=False) as uow:
            member = self._require(uow.members, "member", member_id, "member_id")
            product = self._require(uow.products, "product", product_id, "product_id")
            categories = uow.categories.find({"product_id": product_id})
            lessons = uow.lessons.find({"product_id": product_id})
            enrollments = uow.enrollments.find({"member_id": member_id, "product_id": product_id})
            where = {"member_id": member_id, "product_id": product_id}
            completions = uow.lesson_completions.find(where)
            completed = uow.course_completions.count(where) > 0
        progress = compute_progress(member_id, product_id, lessons, completions)
        return build_outline(
            product,
            categories,
            lessons,
            enrollments,
            progress,
            when,
            member_active=member.status is MemberStatus.ACTIVE,
            completed=completed,
            adjust=lambda lesson, decision: self._adjust(member_id, lesson, when, decision),
        )
