"""Offers: what sells one or more products, at a price and payment type."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from .money import Money

__all__ = ["Offer", "OfferStatus", "PaymentType"]


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


@attrs.frozen
class Offer:
    """An offer of one or more products (a bundle) for a price."""

    id: str
    title: str
    product_ids: tuple[str, ...]
    payment_type: PaymentType
    price: Money | None
    status: OfferStatus
    created_at: datetime
    updated_at: datetime
