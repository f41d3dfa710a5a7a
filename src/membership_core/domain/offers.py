"""Offers: what sells one or more products, at a price and payment type."""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime

import attrs

from .money import Money
from .pricing import OneTime, PaymentPlan, PricingPlan, Subscription
from .windows import AccessWindow

__all__ = [
    "CheckoutPage",
    "ContactField",
    "FieldType",
    "Offer",
    "OfferProduct",
    "OfferStatus",
    "PaymentType",
    "ServiceAgreement",
    "Upsell",
    "UpsellKind",
    "terms_hash",
]


class PaymentType(enum.Enum):
    """How an offer is paid for."""

    FREE = "free"
    ONE_TIME = "one_time"
    SUBSCRIPTION = "subscription"
    PAYMENT_PLAN = "payment_plan"


class OfferStatus(enum.Enum):
    """Whether buyers can reach the offer."""

    DRAFT = "draft"
    PUBLISHED = "published"


class FieldType(enum.Enum):
    """Kinds of extra contact fields a checkout page can ask for."""

    TEXT = "text"
    EMAIL = "email"
    PHONE = "phone"
    SELECT = "select"
    CHECKBOX = "checkbox"


@attrs.frozen
class ContactField:
    """An extra question on the checkout page; ``options`` only for ``select``."""

    name: str
    label: str
    type: FieldType
    required: bool = False
    options: tuple[str, ...] = ()


@attrs.frozen
class ServiceAgreement:
    """Terms and conditions the buyer must accept before paying."""

    title: str
    text: str


@attrs.frozen
class CheckoutPage:
    """What the host renders on the offer's checkout page."""

    headline: str = ""
    copy: str = ""
    video_url: str | None = None
    fields: tuple[ContactField, ...] = ()
    agreement: ServiceAgreement | None = None


class UpsellKind(enum.Enum):
    """How an upsell is offered after the initial purchase succeeded."""

    #: Charged to the payment method just used, with one click.
    ONE_CLICK = "one_click"
    #: Shown when the buyer declined the one-click upsell.
    DOWNSELL = "downsell"


@attrs.frozen
class Upsell:
    """Another offer presented after this one is bought."""

    offer_id: str
    kind: UpsellKind


@attrs.frozen
class Offer:
    """An offer of one or more products (a bundle) for a price."""

    id: str
    title: str
    product_ids: tuple[str, ...]
    plan: PricingPlan
    status: OfferStatus
    created_at: datetime
    updated_at: datetime
    image_url: str | None = None
    checkout_page: CheckoutPage = attrs.field(factory=CheckoutPage)
    upsell: Upsell | None = None
    access_window: AccessWindow = attrs.field(factory=AccessWindow)

    @property
    def payment_type(self) -> PaymentType:
        """Free, one-time, subscription or payment plan: the kind of ``plan``."""
        return PaymentType(self.plan.kind)

    @property
    def price(self) -> Money | None:
        """The headline price: the one-time price, the price per period, or the plan total."""
        plan = self.plan
        if isinstance(plan, OneTime | Subscription):
            return plan.price
        if isinstance(plan, PaymentPlan):
            return plan.total
        return None


@attrs.frozen
class OfferProduct:
    """One product of one offer: the index behind "offers that include this product"."""

    id: str
    offer_id: str
    product_id: str


def terms_hash(agreement: ServiceAgreement) -> str:
    """SHA-256 of the exact title and text a buyer accepted, recorded with the purchase."""
    exact = f"{agreement.title}\n\n{agreement.text}".encode()
    return "sha256:" + hashlib.sha256(exact).hexdigest()
