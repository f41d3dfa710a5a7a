"""Enrollments (access grants) and purchases."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime

import attrs

from .money import Money
from .pricing import PricingPlan

__all__ = [
    "Enrollment",
    "EnrollmentSource",
    "EnrollmentStatus",
    "Purchase",
    "PurchaseStatus",
    "active_at",
]


class EnrollmentSource(enum.Enum):
    """What granted an enrollment."""

    PURCHASE = "purchase"
    ADMIN = "admin"


class EnrollmentStatus(enum.Enum):
    """An enrollment is active until revoked; its window says when it applies."""

    ACTIVE = "active"
    REVOKED = "revoked"


@attrs.frozen
class Enrollment:
    """A grant of access to one product for one member, over a window.

    A member's access to a product is the union of their enrollments in it.
    """

    id: str
    member_id: str
    product_id: str
    source: EnrollmentSource
    purchase_id: str | None
    status: EnrollmentStatus
    starts_at: datetime
    ends_at: datetime | None
    granted_at: datetime
    revoked_at: datetime | None
    #: Why an admin granted it (``None`` for a purchase).
    reason: str | None = None
    #: Why it was revoked, when it was.
    revoke_reason: str | None = None

    def covers(self, at: datetime) -> bool:
        """True when this grant gives access at the instant ``at`` (end exclusive)."""
        return (
            self.status is EnrollmentStatus.ACTIVE
            and self.starts_at <= at
            and (self.ends_at is None or at < self.ends_at)
        )


def active_at(enrollments: Iterable[Enrollment], at: datetime) -> list[Enrollment]:
    """The enrollments that give access at ``at``."""
    return [enrollment for enrollment in enrollments if enrollment.covers(at)]


class PurchaseStatus(enum.Enum):
    """Lifecycle of a purchase."""

    PENDING = "pending"
    PAID = "paid"
    #: The first payment was refused after checkout (an asynchronous method failed).
    FAILED = "failed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


@attrs.frozen
class Purchase:
    """One buyer's purchase of one offer.

    ``amount`` is what the buyer paid at checkout (for a subscription or
    payment plan, the first charge); ``plan`` is the pricing plan they agreed
    to, kept here so that later price changes never touch it.
    ``method_reference`` is the payment method the gateway saved for later
    charges (installments, renewals, a one-click upsell).
    """

    id: str
    offer_id: str
    member_id: str
    status: PurchaseStatus
    amount: Money
    gateway: str
    gateway_reference: str | None
    idempotency_key: str | None
    created_at: datetime
    paid_at: datetime | None
    #: When the buyer accepted the offer's service agreement, and a hash of its exact text.
    terms_accepted_at: datetime | None = None
    terms_hash: str | None = None
    #: Answers to the checkout page's extra contact fields, by field name.
    contact: dict[str, str] = attrs.field(factory=dict)
    plan: PricingPlan | None = None
    method_reference: str | None = None
    #: The purchase whose upsell this purchase is (one-click upsells and downsells).
    upsell_of: str | None = None
    #: The products the offer sold at the time of purchase: what it entitles to.
    product_ids: tuple[str, ...] = ()
    #: The coupon the buyer used, if any.
    coupon_code: str | None = None
    #: A hash of the checkout request made with ``idempotency_key`` (offer, buyer,
    #: names, contact answers, terms, coupon, gateway): a retry with the same key
    #: must send the same request. ``None`` for purchases recorded before it existed.
    request_fingerprint: str | None = None
