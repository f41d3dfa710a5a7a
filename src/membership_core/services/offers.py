"""Offers: price one or more products and publish them for sale."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .. import _validate as v
from ..domain.money import Money
from ..domain.offers import Offer, OfferStatus, PaymentType
from ..errors import Conflict, ValidationError
from ._context import Service

__all__ = ["OffersService"]


def _validate_price(payment_type: PaymentType, price: object) -> Money | None:
    if payment_type is PaymentType.FREE:
        if price is not None and not (isinstance(price, Money) and price.amount == 0):
            raise ValidationError("price", "a free offer has no price")
        return None
    if not isinstance(price, Money):
        raise ValidationError("price", f"a {payment_type.value} offer needs a Money price")
    if price.amount <= 0:
        raise ValidationError("price", "must be more than zero")
    return price


class OffersService(Service):
    """Create and publish offers. ``portal.offers``."""

    def create_offer(
        self,
        title: str,
        product_ids: Sequence[str],
        *,
        payment_type: PaymentType | str = PaymentType.FREE,
        price: Money | None = None,
    ) -> Offer:
        """Create a draft offer of ``product_ids`` (a bundle when more than one)."""
        title = v.text("title", title, max_length=200)
        if isinstance(product_ids, str) or not isinstance(product_ids, Sequence):
            raise ValidationError("product_ids", "must be a list of product ids")
        if not product_ids:
            raise ValidationError("product_ids", "must name at least one product")
        ids = tuple(dict.fromkeys(v.identifier("product_ids", p, "prod") for p in product_ids))
        kind = v.choice("payment_type", payment_type, PaymentType)
        if kind not in (PaymentType.FREE, PaymentType.ONE_TIME):
            raise ValidationError(
                "payment_type", f"{kind.value} offers are not supported yet (free, one_time)"
            )
        amount = _validate_price(kind, price)
        now = self._ctx.now()
        offer = Offer(
            self._ctx.ids.new("off"), title, ids, kind, amount, OfferStatus.DRAFT, now, now
        )
        with self._ctx.uow() as uow:
            for product_id in ids:
                self._require(uow.products, "product", product_id, "product_ids")
            uow.offers.add(offer)
            uow.commit()
        return offer

    def get(self, offer_id: str) -> Offer:
        """The offer, or ``NotFound``."""
        v.identifier("offer_id", offer_id, "off")
        with self._ctx.uow(write=False) as uow:
            return self._require(uow.offers, "offer", offer_id, "offer_id")

    def publish(self, offer_id: str) -> Offer:
        """Open the offer for sale; it needs at least one published product."""
        v.identifier("offer_id", offer_id, "off")
        with self._ctx.uow() as uow:
            offer = self._require_for_update(uow.offers, "offer", offer_id, "offer_id")
            products = uow.products.find_in("id", list(offer.product_ids))
            if not any(p.published for p in products):
                raise Conflict(
                    f"offer {offer_id!r} has no published product; publish one first",
                    field="offer_id",
                )
            _validate_price(offer.payment_type, offer.price)
            offer = attrs.evolve(offer, status=OfferStatus.PUBLISHED, updated_at=self._ctx.now())
            uow.offers.update(offer)
            uow.commit()
        return offer

    def unpublish(self, offer_id: str) -> Offer:
        """Close the offer; existing buyers keep what they bought."""
        v.identifier("offer_id", offer_id, "off")
        with self._ctx.uow() as uow:
            offer = self._require_for_update(uow.offers, "offer", offer_id, "offer_id")
            offer = attrs.evolve(offer, status=OfferStatus.DRAFT, updated_at=self._ctx.now())
            uow.offers.update(offer)
            uow.commit()
        return offer
