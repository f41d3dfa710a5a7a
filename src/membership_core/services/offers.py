"""Offers: price one or more products, dress the checkout page, publish for sale."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs

from .. import _validate as v
from ..domain.catalog import Category, Lesson, Product, ProductSort, ordered
from ..domain.coupons import StoredCoupon
from ..domain.offers import (
    CheckoutPage,
    ContactField,
    FieldType,
    Offer,
    OfferProduct,
    OfferStatus,
    ServiceAgreement,
    Upsell,
    UpsellKind,
)
from ..domain.pricing import (
    Coupon,
    Free,
    OneTime,
    PaymentPlan,
    PricingPlan,
    Subscription,
    normalize_code,
)
from ..domain.windows import AccessWindow
from ..errors import Conflict, NotFound, ValidationError
from ..ports.storage import UnitOfWork
from ._context import Service
from ._unset import UNSET, _Unset

__all__ = ["OfferPreview", "OffersService", "ProductPreview"]

_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_SORT_FIELDS = {
    ProductSort.TITLE: "title",
    ProductSort.CREATED: "created_at",
    ProductSort.UPDATED: "updated_at",
}


@attrs.frozen
class ProductPreview:
    """A product of an offer as a buyer sees it before buying: the outline, no bodies."""

    product: Product
    categories: tuple[Category, ...]
    lessons: tuple[Lesson, ...]


@attrs.frozen
class OfferPreview:
    """Everything a host needs to render an offer page, without buying."""

    offer: Offer
    link: str
    products: tuple[ProductPreview, ...]
    upsell: Offer | None


_PLAN_TYPES = (Free, OneTime, Subscription, PaymentPlan)


def _plan(value: object) -> PricingPlan:
    if not isinstance(value, _PLAN_TYPES):
        raise ValidationError(
            "plan", "must be Free(), OneTime(price), Subscription(...) or PaymentPlan(...)"
        )
    return value


def _window(value: object) -> AccessWindow:
    if not isinstance(value, AccessWindow):
        raise ValidationError("access_window", "must be an AccessWindow")
    return value


def _http_url(field: str, value: object) -> str | None:
    url = v.optional_text(field, value, max_length=2000)
    if url is not None and not url.startswith(("https://", "http://")):
        raise ValidationError(field, "must be an http(s) URL")
    return url


def _checkout_page(page: object) -> CheckoutPage:
    if not isinstance(page, CheckoutPage):
        raise ValidationError("page", "must be a CheckoutPage")
    names: set[str] = set()
    fields: list[ContactField] = []
    for index, field in enumerate(page.fields):
        where = f"page.fields[{index}]"
        if not isinstance(field, ContactField):
            raise ValidationError(where, "must be a ContactField")
        if not _FIELD_NAME.match(field.name):
            raise ValidationError(
                f"{where}.name", "must be 1-40 lowercase letters, digits or '_', starting a-z"
            )
        if field.name in names or field.name == "email":
            raise ValidationError(f"{where}.name", f"{field.name!r} is already used")
        names.add(field.name)
        kind = v.choice(f"{where}.type", field.type, FieldType)
        options = tuple(v.text(f"{where}.options", o, max_length=200) for o in field.options)
        if kind is FieldType.SELECT and not options:
            raise ValidationError(f"{where}.options", "a select field needs options")
        if kind is not FieldType.SELECT and options:
            raise ValidationError(f"{where}.options", "only select fields have options")
        fields.append(
            ContactField(
                field.name,
                v.text(f"{where}.label", field.label, max_length=200),
                kind,
                v.boolean(f"{where}.required", field.required),
                options,
            )
        )
    agreement = page.agreement
    if agreement is not None:
        if not isinstance(agreement, ServiceAgreement):
            raise ValidationError("page.agreement", "must be a ServiceAgreement")
        v.text("page.agreement.text", agreement.text, max_length=200_000)
        agreement = ServiceAgreement(
            v.text("page.agreement.title", agreement.title, max_length=200),
            agreement.text,  # kept exactly as written: its hash is what buyers accept
        )
    return CheckoutPage(
        v.text("page.headline", page.headline, max_length=300, allow_empty=True),
        v.text("page.copy", page.copy, max_length=50_000, allow_empty=True),
        _http_url("page.video_url", page.video_url),
        tuple(fields),
        agreement,
    )


class OffersService(Service):
    """Create, dress, publish, find and preview offers. ``portal.offers``."""

    def create_offer(
        self,
        title: str,
        product_ids: Sequence[str],
        *,
        plan: PricingPlan | None = None,
        image_url: str | None = None,
        access_window: AccessWindow | None = None,
    ) -> Offer:
        """Create a draft offer of ``product_ids`` (a bundle when more than one).

        ``plan`` is :class:`Free` (the default), ``OneTime(price)``,
        ``Subscription(...)`` or ``PaymentPlan(...)``;
        ``access_window`` says when the access bought starts and ends
        (lifetime from purchase by default).
        """
        title = v.text("title", title, max_length=200)
        if isinstance(product_ids, str) or not isinstance(product_ids, Sequence):
            raise ValidationError("product_ids", "must be a list of product ids")
        if not product_ids:
            raise ValidationError("product_ids", "must name at least one product")
        ids = tuple(dict.fromkeys(v.identifier("product_ids", p, "prod") for p in product_ids))
        pricing = _plan(Free() if plan is None else plan)
        window = _window(AccessWindow() if access_window is None else access_window)
        image = _http_url("image_url", image_url)
        now = self._ctx.now()
        offer = Offer(
            self._ctx.ids.new("off"),
            title,
            ids,
            pricing,
            OfferStatus.DRAFT,
            now,
            now,
            image_url=image,
            access_window=window,
        )
        with self._ctx.uow() as uow:
            for product_id in ids:
                self._require(uow.products, "product", product_id, "product_ids")
            uow.offers.add(offer)
            for product_id in ids:
                uow.offer_products.add(OfferProduct(self._ctx.ids.new("ofp"), offer.id, product_id))
            uow.commit()
        return offer

    def get(self, offer_id: str) -> Offer:
        """The offer, or ``NotFound``."""
        v.identifier("offer_id", offer_id, "off")
        with self._ctx.uow(write=False) as uow:
            return self._require(uow.offers, "offer", offer_id, "offer_id")

    def update_offer(
        self,
        offer_id: str,
        *,
        title: str | _Unset = UNSET,
        image_url: str | _Unset | None = UNSET,
    ) -> Offer:
        """Change the title or image; the price is changed only through a new offer."""
        changes: dict[str, Any] = {}
        if not isinstance(title, _Unset):
            changes["title"] = v.text("title", title, max_length=200)
        if not isinstance(image_url, _Unset):
            changes["image_url"] = _http_url("image_url", image_url)
        return self._change(offer_id, **changes)

    def set_pricing(self, offer_id: str, plan: PricingPlan) -> Offer:
        """Change the offer's price or plan, from now on.

        Existing buyers keep what they agreed to: every purchase records its
        own amount (and, for recurring plans, its own schedule).
        """
        return self._change(offer_id, plan=_plan(plan))

    def set_access_window(self, offer_id: str, window: AccessWindow) -> Offer:
        """Change when access bought from now on starts and ends."""
        return self._change(offer_id, access_window=_window(window))

    def set_checkout_page(self, offer_id: str, page: CheckoutPage) -> Offer:
        """Replace the checkout page: headline, copy, video, extra fields, agreement.

        Buyers who accepted an earlier agreement keep the hash of the text they
        accepted on their purchase; editing the terms never rewrites it.
        """
        return self._change(offer_id, checkout_page=_checkout_page(page))

    def set_upsell(
        self,
        offer_id: str,
        upsell_offer_id: str | None,
        *,
        kind: UpsellKind | str = UpsellKind.ONE_CLICK,
    ) -> Offer:
        """Name another offer to present after this one is bought (``None`` removes it)."""
        v.identifier("offer_id", offer_id, "off")
        if upsell_offer_id is None:
            return self._change(offer_id, upsell=None)
        v.identifier("upsell_offer_id", upsell_offer_id, "off")
        upsell_kind = v.choice("kind", kind, UpsellKind)
        if upsell_offer_id == offer_id:
            raise ValidationError("upsell_offer_id", "an offer cannot upsell itself")
        with self._ctx.uow(write=False) as uow:
            self._require(uow.offers, "offer", upsell_offer_id, "upsell_offer_id")
        return self._change(offer_id, upsell=Upsell(upsell_offer_id, upsell_kind))

    def _change(self, offer_id: str, **changes: Any) -> Offer:
        v.identifier("offer_id", offer_id, "off")
        with self._ctx.uow() as uow:
            offer = self._require_for_update(uow.offers, "offer", offer_id, "offer_id")
            offer = attrs.evolve(offer, **changes, updated_at=self._ctx.now())
            uow.offers.update(offer)
            uow.commit()
        return offer

    # -- coupons ----------------------------------------------------------------------

    def create_coupon(self, coupon: Coupon) -> StoredCoupon:
        """Make ``coupon`` usable at checkout (``checkout.purchase(..., coupon_code=...)``).

        The offers it names must exist; its code must be new in this portal
        (``Conflict`` on ``code`` otherwise).

        >>> from membership_core import Coupon, PercentOff, Repeating
        >>> from membership_core.testing import make_test_portal
        >>> portal = make_test_portal()
        >>> portal.offers.create_coupon(Coupon("launch", PercentOff(20), Repeating(3))).code
        'LAUNCH'
        """
        if not isinstance(coupon, Coupon):
            raise ValidationError("coupon", f"must be a Coupon, not {type(coupon).__name__}")
        now = self._ctx.now()
        stored = StoredCoupon(self._ctx.ids.new("cpn"), coupon.code, coupon, 0, True, now, now)
        with self._ctx.uow() as uow:
            for offer_id in sorted(coupon.offer_ids or ()):
                self._require(uow.offers, "offer", offer_id, "offer_ids")
            if uow.coupons.count({"code": coupon.code}):
                raise Conflict(f"coupon {coupon.code} already exists", field="code")
            uow.coupons.add(stored)
            uow.commit()
        return stored

    def coupon(self, code: str) -> StoredCoupon:
        """The coupon with ``code`` (any case), with its redemption count; ``NotFound`` if none."""
        code = normalize_code(code)
        with self._ctx.uow(write=False) as uow:
            found = uow.coupons.find({"code": code}, limit=1)
        if not found:
            raise NotFound("coupon", code, field="code")
        return found[0]

    def coupons(self) -> list[StoredCoupon]:
        """Every coupon of the portal, by code."""
        with self._ctx.uow(write=False) as uow:
            return uow.coupons.find(order_by=("code",))

    def set_coupon_active(self, code: str, active: bool) -> StoredCoupon:
        """Stop (or start again) accepting a coupon at checkout; its count is kept."""
        code = normalize_code(code)
        v.boolean("active", active)
        with self._ctx.uow() as uow:
            found = uow.coupons.find({"code": code}, limit=1)
            if not found:
                raise NotFound("coupon", code, field="code")
            stored = attrs.evolve(found[0], active=active, updated_at=self._ctx.now())
            uow.coupons.update(stored)
            uow.commit()
        return stored

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
            offer = attrs.evolve(offer, status=OfferStatus.PUBLISHED, updated_at=self._ctx.now())
            uow.offers.update(offer)
            uow.commit()
        return offer

    def unpublish(self, offer_id: str) -> Offer:
        """Close the offer; existing buyers keep what they bought."""
        return self._change(offer_id, status=OfferStatus.DRAFT)

    def search(
        self,
        query: str = "",
        *,
        sort: ProductSort | str = ProductSort.TITLE,
        descending: bool = False,
        status: OfferStatus | str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Offer]:
        """Offers whose title contains ``query`` (case-insensitive), sorted and paged."""
        if not isinstance(query, str):
            raise ValidationError("query", "must be a string")
        order = v.choice("sort", sort, ProductSort)
        v.boolean("descending", descending)
        where = {} if status is None else {"status": v.choice("status", status, OfferStatus)}
        v.integer("limit", limit, minimum=1)
        if limit > 500:
            raise ValidationError("limit", "must be at most 500")
        v.integer("offset", offset, minimum=0)
        text = query.strip()
        with self._ctx.uow(write=False) as uow:
            return uow.offers.find(
                where,
                contains=("title", text) if text else None,
                order_by=[_SORT_FIELDS[order]],
                descending=descending,
                limit=limit,
                offset=offset,
            )

    def for_product(self, product_id: str) -> list[Offer]:
        """Every offer that includes the product, by title."""
        v.identifier("product_id", product_id, "prod")
        with self._ctx.uow(write=False) as uow:
            self._require(uow.products, "product", product_id, "product_id")
            links = uow.offer_products.find({"product_id": product_id})
            offers = uow.offers.find_in("id", [link.offer_id for link in links])
        return sorted(offers, key=lambda o: (o.title.lower(), o.id))

    def link(self, offer_id: str) -> str:
        """The public checkout URL to share, from the portal's base URL."""
        v.identifier("offer_id", offer_id, "off")
        with self._ctx.uow(write=False) as uow:
            self._require(uow.offers, "offer", offer_id, "offer_id")
            return self._link(uow, offer_id)

    def _link(self, uow: UnitOfWork, offer_id: str) -> str:
        return f"{self._base_url(uow)}/offers/{offer_id}"

    def preview(self, offer_id: str) -> OfferPreview:
        """The offer page's content and each product's outline, for a draft or live offer."""
        v.identifier("offer_id", offer_id, "off")
        with self._ctx.uow(write=False) as uow:
            offer = self._require(uow.offers, "offer", offer_id, "offer_id")
            products = {p.id: p for p in uow.products.find_in("id", list(offer.product_ids))}
            categories = uow.categories.find_in("product_id", list(offer.product_ids))
            lessons = [
                lesson
                for lesson in uow.lessons.find_in("product_id", list(offer.product_ids))
                if lesson.published
            ]
            upsell = uow.offers.get(offer.upsell.offer_id) if offer.upsell else None
            link = self._link(uow, offer_id)
        previews = []
        for product_id in offer.product_ids:
            own_categories = [c for c in categories if c.product_id == product_id]
            own_lessons = [lesson for lesson in lessons if lesson.product_id == product_id]
            previews.append(
                ProductPreview(
                    products[product_id],
                    tuple(sorted(own_categories, key=lambda c: (c.position, c.id))),
                    tuple(ordered(own_categories, own_lessons)),
                )
            )
        return OfferPreview(offer, link, tuple(previews), upsell)
