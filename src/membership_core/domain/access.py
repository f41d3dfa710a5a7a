"""Access decisions: who may see which lesson, why not, and when it opens. Pure."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime

import attrs

from .catalog import Lesson, Product
from .drip import DripState, LessonAvailability
from .enrollments import Enrollment, EnrollmentStatus

__all__ = ["AccessDecision", "AccessReason", "decide"]


class AccessReason(enum.Enum):
    """Why access was refused (or, for ``PREVIEW`` and ``ENROLLED``, why it was given)."""

    ENROLLED = "enrolled"
    PREVIEW = "preview"
    NOT_ENROLLED = "not_enrolled"
    NOT_STARTED = "not_started"
    EXPIRED = "expired"
    REVOKED = "revoked"
    UNPUBLISHED = "unpublished"
    MEMBER_INACTIVE = "member_inactive"
    #: The grant ended because a subscription or payment plan went unpaid.
    PAYMENT_PAST_DUE = "payment_past_due"
    #: The member has access, but the drip schedule opens the lesson later
    #: (``available_at``, when known).
    DRIPPED = "dripped"
    #: The member has access, but the lesson waits for an earlier lesson or an
    #: assessment to be completed first.
    LOCKED = "locked"
    #: A host plugin decided (``membership_access_decision``), for reasons of its own.
    POLICY = "policy"


@attrs.frozen
class AccessDecision:
    """The answer to "may this member see this lesson now?".

    ``available_at`` is set when access will open by itself later (a window not
    yet started), so a host can render "unlocks on 3 March".
    """

    allowed: bool
    reason: AccessReason
    available_at: datetime | None = None

    def __bool__(self) -> bool:
        return self.allowed


def decide(
    product: Product,
    lesson: Lesson,
    enrollments: Sequence[Enrollment],
    at: datetime,
    *,
    member_active: bool = True,
    unpaid_purchases: AbstractSet[str] = frozenset(),
    drip: LessonAvailability | None = None,
) -> AccessDecision:
    """Decide access to ``lesson`` of ``product`` from the member's ``enrollments`` at ``at``.

    Order of checks: published content, member status, preview lessons, then
    the union of enrollment windows. ``unpaid_purchases`` names purchases
    whose billing is past due or defaulted: access that ended with one of them
    is refused as ``PAYMENT_PAST_DUE`` rather than ``EXPIRED``. ``drip`` is
    the lesson's availability in the member's drip schedule: a member with
    access still waits for a ``DRIPPED`` or ``LOCKED`` lesson.
    """
    if not product.published or not lesson.published:
        return AccessDecision(False, AccessReason.UNPUBLISHED)
    if not member_active:
        return AccessDecision(False, AccessReason.MEMBER_INACTIVE)
    if any(e.covers(at) for e in enrollments):
        if drip is None or drip.available or lesson.preview:
            return AccessDecision(True, AccessReason.ENROLLED)
        if drip.state is DripState.DRIPPED:
            return AccessDecision(False, AccessReason.DRIPPED, drip.opens_at)
        return AccessDecision(False, AccessReason.LOCKED, drip.opens_at)
    if lesson.preview:
        return AccessDecision(True, AccessReason.PREVIEW)
    live = [e for e in enrollments if e.status is EnrollmentStatus.ACTIVE]
    if not enrollments:
        return AccessDecision(False, AccessReason.NOT_ENROLLED)
    if not live:
        return AccessDecision(False, AccessReason.REVOKED)
    upcoming = [e.starts_at for e in live if e.starts_at > at]
    if upcoming:
        return AccessDecision(False, AccessReason.NOT_STARTED, min(upcoming))
    last = max(live, key=lambda e: (e.ends_at or at, e.id))
    if last.purchase_id is not None and last.purchase_id in unpaid_purchases:
        return AccessDecision(False, AccessReason.PAYMENT_PAST_DUE)
    return AccessDecision(False, AccessReason.EXPIRED)
