"""Coupons as the portal keeps them: the rules, and how often they were used. Pure value."""

from __future__ import annotations

from datetime import datetime

import attrs

from .pricing import Coupon

__all__ = ["StoredCoupon"]


@attrs.frozen
class StoredCoupon:
    """A :class:`~.pricing.Coupon` an admin created, with its redemption count.

    ``code`` repeats ``coupon.code`` so storage can keep it unique per
    portal. ``redemptions`` counts checkouts that used it (a use is counted
    before the payment and given back if the payment fails, so the limit is
    never exceeded). An inactive coupon is refused at checkout.
    """

    id: str
    code: str
    coupon: Coupon
    redemptions: int
    active: bool
    created_at: datetime
    #: When an admin last changed the coupon (redemptions counting up or down do not).
    updated_at: datetime
