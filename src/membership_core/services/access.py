"""Access decisions and the member's course outline."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from .. import _validate as v
from ..domain.access import AccessDecision, AccessReason, decide
from ..domain.billing import BillingStatus
from ..domain.catalog import Lesson, Product
from ..domain.checkpoints import Checkpoint
from ..domain.enrollments import Enrollment, EnrollmentSource, EnrollmentStatus
from ..domain.events import AccessExpired, AccessExpiring, AccessGranted, AccessRevoked
from ..domain.members import MemberStatus
from ..domain.outline import Outline, build_outline
from ..domain.progress import compute_progress
from ..errors import Conflict, NotFound, ValidationError
from ..ports.storage import UnitOfWork
from ._context import Context, Service
from .drip import DripService, by_member_product, ensure_drip_progress

__all__ = ["DEFAULT_EXPIRY_REMINDER", "AccessService"]

#: How long before a grant ends the ``AccessExpiring`` reminder fires.
DEFAULT_EXPIRY_REMINDER = timedelta(days=7)
_NOTICES = "access_notices"


class AccessService(Service):
    """Who may see which lesson, and the outline a member sees. ``portal.access``."""

    def __init__(
        self,
        context: Context,
        drip: DripService,
        expiry_reminder: timedelta | None = DEFAULT_EXPIRY_REMINDER,
    ) -> None:
        super().__init__(context)
        self._drip = drip
        self._reminder = expiry_reminder

    def notify_expiry(self) -> int:
        """Record expiry reminders and expiries since the last call; return how many.

        Run by ``tick()``. ``AccessExpiring`` fires once per grant when its
        end comes within the reminder period (7 days by default; set with
        ``Portal.open(..., expiry_reminder=...)``, ``None`` for none), and
        ``AccessExpired`` once when it has ended and no other grant keeps the
        product open. Running subscriptions are left out: their grants end
        at each renewal. Each call covers the time since the previous one
        (kept in storage), found with indexed range queries, and records its
        events with the new mark in one transaction, so they fire exactly once.
        """
        now = self._ctx.now()
        recorded = 0
        try:
            with self._ctx.uow() as uow:
                mark = uow.checkpoints.get_for_update(_NOTICES)
                if mark is None:
                    # The first run starts from now rather than announcing the past.
                    uow.checkpoints.add(Checkpoint(_NOTICES, 0, now))
                    uow.commit()
                    return 0
                since = mark.updated_at
                if since >= now:
                    return 0
                ending = uow.enrollments.find_due("ends_at", now, after=since)
                soon: list[Enrollment] = []
                if self._reminder is not None:
                    soon = uow.enrollments.find_due(
                        "ends_at", now + self._reminder, after=since + self._reminder
                    )
                renewing = self._renewing(uow, [*ending, *soon])
                # Every grant of the members concerned, in one query, not one per grant.
                members = sorted({e.member_id for e in [*ending, *soon]})
                grants = by_member_product(uow.enrollments.find_in("member_id", members))
                for enrollment in soon:
                    ends_at = enrollment.ends_at
                    if not (self._noticeable(enrollment, renewing) and ends_at and ends_at > now):
                        continue
                    if _kept_open(grants, enrollment, ends_at):
                        continue  # access goes on after this grant ends: nothing to remind of
                    self._record(
                        uow,
                        AccessExpiring,
                        enrollment_id=enrollment.id,
                        member_id=enrollment.member_id,
                        product_id=enrollment.product_id,
                        ends_at=ends_at,
                    )
                    recorded += 1
                for enrollment in ending:
                    if not self._noticeable(enrollment, renewing):
                        continue
                    if _kept_open(grants, enrollment, now):
                        continue  # another grant keeps the product open
                    self._record(
                        uow,
                        AccessExpired,
                        enrollment_id=enrollment.id,
                        member_id=enrollment.member_id,
                        product_id=enrollment.product_id,
                    )
                    recorded += 1
                uow.checkpoints.update(attrs.evolve(mark, updated_at=now))
                uow.commit()
        except Conflict:
            return 0  # another worker wrote the first mark at the same moment
        if recorded:
            self._committed()
        return recorded

    @staticmethod
    def _renewing(uow: UnitOfWork, enrollments: list[Enrollment]) -> frozenset[str]:
        """Purchases among ``enrollments`` whose subscription still renews."""
        ids = sorted({e.purchase_id for e in enrollments if e.purchase_id is not None})
        if not ids:
            return frozenset()
        running = (BillingStatus.TRIALING, BillingStatus.ACTIVE, BillingStatus.PAST_DUE)
        return frozenset(
            b.purchase_id for b in uow.billings.find_in("purchase_id", ids) if b.status in running
        )

    @staticmethod
    def _noticeable(enrollment: Enrollment, renewing: frozenset[str]) -> bool:
        return (
            enrollment.status is EnrollmentStatus.ACTIVE
            and enrollment.ends_at is not None
            and enrollment.purchase_id not in renewing
        )

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

    def can_preview(self, lesson_id: str, at: datetime | None = None) -> AccessDecision:
        """Whether anyone, signed in or not, may see the lesson as a preview.

        For visitors who came through an offer link and have no member
        account yet: a published preview lesson of a published product is
        allowed (``AccessReason.PREVIEW``); any other lesson is refused with
        ``NOT_ENROLLED`` (or ``UNPUBLISHED``). There is no member to decide
        for, so the ``membership_access_decision`` hook is not asked.

        >>> from membership_core.testing import make_test_portal
        >>> portal = make_test_portal()
        >>> course = portal.catalog.create_product("Python 101")
        >>> basics = portal.catalog.add_category(course.id, "Basics")
        >>> intro = portal.catalog.add_lesson(course.id, basics.id, "Intro", preview=True)
        >>> _ = portal.catalog.publish_product(course.id)
        >>> portal.access.can_preview(intro.id).reason.value
        'preview'
        """
        v.identifier("lesson_id", lesson_id, "les")
        when = self._ctx.now() if at is None else v.aware("at", at)
        with self._ctx.uow(write=False) as uow:
            lesson = self._require(uow.lessons, "lesson", lesson_id, "lesson_id")
            product = self._require(uow.products, "product", lesson.product_id, "lesson_id")
        return decide(product, lesson, (), when)

    def _decide(
        self, uow: UnitOfWork, member_id: str, lesson_id: str, at: datetime
    ) -> tuple[AccessDecision, Lesson, Product]:
        facts = uow.access_facts(member_id, lesson_id=lesson_id)
        if facts is None or facts.lesson is None:
            # Something is missing: the separate reads say what, for the error.
            self._require(uow.members, "member", member_id, "member_id")
            missing = self._require(uow.lessons, "lesson", lesson_id, "lesson_id")
            self._require(uow.products, "product", missing.product_id, "lesson_id")
            raise NotFound("lesson", lesson_id, field="lesson_id")  # removed meanwhile
        member, lesson, product = facts.member, facts.lesson, facts.product
        enrollments = list(facts.enrollments)
        active = member.status is MemberStatus.ACTIVE
        drip = None
        if product.drip is not None and not lesson.preview:
            # Drip needs the whole course: prerequisites depend on earlier lessons.
            categories, lessons = self._ctx.structures.load(uow, product)
            schedule = self._drip.availability(
                uow,
                product,
                categories,
                lessons,
                member_id,
                at,
                enrollments=enrollments,
            )
            drip = None if schedule is None else schedule.get(lesson.id)
        decision = decide(product, lesson, enrollments, at, member_active=active, drip=drip)
        if decision.reason is AccessReason.EXPIRED:
            # Only refusals pay for the look at billings that tells "unpaid" from "over".
            unpaid = self._unpaid(uow, enrollments)
            decision = decide(
                product,
                lesson,
                enrollments,
                at,
                member_active=active,
                unpaid_purchases=unpaid,
                drip=drip,
            )
        return self._adjust(member_id, lesson, at, decision), lesson, product

    @staticmethod
    def _unpaid(uow: UnitOfWork, enrollments: list[Enrollment]) -> frozenset[str]:
        """The purchases among ``enrollments`` whose billing is past due or defaulted."""
        ids = sorted({e.purchase_id for e in enrollments if e.purchase_id is not None})
        if not ids:
            return frozenset()
        return frozenset(
            billing.purchase_id
            for billing in uow.billings.find_in("purchase_id", ids)
            if billing.status in (BillingStatus.PAST_DUE, BillingStatus.DEFAULTED)
        )

    def _adjust(
        self, member_id: str, lesson: Lesson, at: datetime, decision: AccessDecision
    ) -> AccessDecision:
        """Let plugins veto or extend the decision (the first answer wins)."""
        hook = self._ctx.plugins.hook.membership_access_decision
        if not hook.get_hookimpls():
            return decision  # the common case, per lesson of an outline: skip the call
        override = hook(
            portal=self._ctx.portal,
            member_id=member_id,
            lesson_id=lesson.id,
            at=at,
            decision=decision,
        )
        return override if isinstance(override, AccessDecision) else decision

    def enrollments(self, member_id: str) -> list[Enrollment]:
        """The member's access history: every grant, active or not, oldest first.

        Each says which product it opens, whether a purchase
        (``purchase_id``) or an admin (``source``, ``reason``) granted it, its
        ``starts_at`` / ``ends_at``, and when and why it was revoked, so a host
        can list "my courses" with their dates or show an admin the history.
        """
        v.identifier("member_id", member_id, "mem")
        with self._ctx.uow(write=False) as uow:
            self._require(uow.members, "member", member_id, "member_id")
            found = uow.enrollments.find({"member_id": member_id})
        return sorted(found, key=lambda enrollment: (enrollment.starts_at, enrollment.id))

    def grant(
        self,
        member_id: str,
        product_id: str,
        *,
        reason: str,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
    ) -> Enrollment:
        """Give a member access to a product by hand, for ``reason`` (an admin's grant).

        The window defaults to from now on, without end. Access is the union
        of grants: this one adds to any the member bought and is revoked on its
        own. Records ``AccessGranted``.
        """
        v.identifier("member_id", member_id, "mem")
        v.identifier("product_id", product_id, "prod")
        reason = v.text("reason", reason, max_length=500)
        now = self._ctx.now()
        start = now if starts_at is None else v.aware("starts_at", starts_at)
        end = None if ends_at is None else v.aware("ends_at", ends_at)
        if end is not None and end <= start:
            raise ValidationError("ends_at", "must be after starts_at")
        with self._ctx.uow() as uow:
            self._require(uow.members, "member", member_id, "member_id")
            self._require(uow.products, "product", product_id, "product_id")
            enrollment = self._grant(uow, member_id, product_id, reason, start, end)
            uow.commit()
        self._committed()
        return enrollment

    def _grant(
        self,
        uow: UnitOfWork,
        member_id: str,
        product_id: str,
        reason: str,
        starts_at: datetime,
        ends_at: datetime | None,
    ) -> Enrollment:
        """Write an admin grant and its ``AccessGranted`` in ``uow`` (checked by the caller)."""
        enrollment = Enrollment(
            self._ctx.ids.new("enr"),
            member_id,
            product_id,
            EnrollmentSource.ADMIN,
            None,
            EnrollmentStatus.ACTIVE,
            starts_at,
            ends_at,
            self._ctx.now(),
            None,
            reason=reason,
        )
        uow.enrollments.add(enrollment)
        ensure_drip_progress(uow, self._ctx.ids.new("dpg"), member_id, product_id, starts_at)
        self._record(
            uow,
            AccessGranted,
            enrollment_id=enrollment.id,
            member_id=member_id,
            product_id=product_id,
            purchase_id=None,
        )
        return enrollment

    def revoke(self, member_id: str, product_id: str, *, reason: str) -> list[Enrollment]:
        """Take a member's access to a product away by hand, whatever granted it.

        Every active grant of the product to the member (bought or given) is
        revoked with ``reason`` and recorded as ``AccessRevoked``; the revoked
        grants are returned (none when there were none). Purchases are not
        refunded: that is ``payments.refund``.
        """
        v.identifier("member_id", member_id, "mem")
        v.identifier("product_id", product_id, "prod")
        reason = v.text("reason", reason, max_length=500)
        now = self._ctx.now()
        revoked = []
        with self._ctx.uow() as uow:
            self._require_for_update(uow.members, "member", member_id, "member_id")
            self._require(uow.products, "product", product_id, "product_id")
            for enrollment in uow.enrollments.find(
                {"member_id": member_id, "product_id": product_id}
            ):
                if enrollment.status is not EnrollmentStatus.ACTIVE:
                    continue
                ended = attrs.evolve(
                    enrollment,
                    status=EnrollmentStatus.REVOKED,
                    revoked_at=now,
                    revoke_reason=reason,
                )
                uow.enrollments.update(ended)
                self._record(
                    uow,
                    AccessRevoked,
                    enrollment_id=ended.id,
                    member_id=member_id,
                    product_id=product_id,
                    reason=reason,
                )
                revoked.append(ended)
            uow.commit()
        self._committed()
        return revoked

    def outline(self, member_id: str, product_id: str, at: datetime | None = None) -> Outline:
        """The product's whole tree with each lesson's state for this member, and progress."""
        v.identifier("member_id", member_id, "mem")
        v.identifier("product_id", product_id, "prod")
        when = self._ctx.now() if at is None else v.aware("at", at)
        with self._ctx.uow(write=False) as uow:
            facts = uow.access_facts(member_id, product_id=product_id)
            if facts is None:
                self._require(uow.members, "member", member_id, "member_id")
                self._require(uow.products, "product", product_id, "product_id")
                raise NotFound("product", product_id, field="product_id")  # removed meanwhile
            member, product = facts.member, facts.product
            enrollments = list(facts.enrollments)
            categories, lessons = self._ctx.structures.load(uow, product)
            where = {"member_id": member_id, "product_id": product_id}
            completions = uow.lesson_completions.find(where)
            completed = uow.course_completions.count(where) > 0
            drip = self._drip.availability(
                uow,
                product,
                categories,
                lessons,
                member_id,
                when,
                enrollments=enrollments,
                completed=frozenset(c.lesson_id for c in completions),
            )
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
            drip=drip,
        )


def _kept_open(
    grants: dict[tuple[str, str], list[Enrollment]], enrollment: Enrollment, at: datetime
) -> bool:
    """Whether another of the member's grants of the product gives access at ``at``."""
    others = grants.get((enrollment.member_id, enrollment.product_id), [])
    return any(other.id != enrollment.id and other.covers(at) for other in others)
