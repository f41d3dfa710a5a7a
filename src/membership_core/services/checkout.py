"""Checkout: turn an offer and a buyer into a purchase and access, exactly once."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from .. import _validate as v
from ..domain import billing as billing_rules
from ..domain.billing import Billing
from ..domain.enrollments import (
    Purchase,
    PurchaseStatus,
)
from ..domain.events import OfferPurchased
from ..domain.members import email_key
from ..domain.money import Money
from ..domain.offers import (
    CheckoutPage,
    FieldType,
    Offer,
    OfferStatus,
    UpsellKind,
    terms_hash,
)
from ..domain.payments import Payment, PaymentState
from ..domain.pricing import (
    Charge,
    Coupon,
    Free,
    PaymentPlan,
    Subscription,
    check_coupon,
    normalize_code,
    schedule,
)
from ..domain.windows import resolve
from ..errors import ConfigurationError, Conflict, PaymentDeclined, ValidationError
from ..ports.payments import (
    OffSessionCharge,
    PaymentGateway,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    require_capability,
)
from ..ports.storage import UnitOfWork
from ._context import Context
from ._grants import GrantingService
from .members import MembersService

__all__ = ["CheckoutService"]


@attrs.frozen
class _Sale:
    """What one buyer is about to pay for one offer, worked out before charging."""

    offer: Offer
    purchase_id: str
    initial: list[Charge]
    amount: Money
    billing: Billing | None
    coupon: Coupon | None
    starts_at: datetime
    ends_at: datetime | None
    free: bool


def _sum(charges: list[Charge], currency: str) -> Money:
    """What the charges due now add up to (zero in ``currency`` when there are none)."""
    if not charges:
        return Money.zero(currency)
    return sum((charge.amount for charge in charges[1:]), charges[0].amount)


def _fingerprint(**fields: object) -> str:
    """A stable hash of a request's normalized parameters (see ``Purchase.request_fingerprint``)."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=repr)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _normalized_contact(contact: object) -> object:
    """Contact answers as compared between retries: blanks trimmed, unanswered fields dropped."""
    if contact is None:
        return {}
    if not isinstance(contact, Mapping):
        return repr(contact)  # refused by validation anyway
    answers: dict[str, object] = {}
    for name, raw in contact.items():
        value = raw.strip() if isinstance(raw, str) else raw
        if value is None or value == "":
            continue
        answers[str(name)] = value
    return answers


def _normalized_code(code: str | None) -> str | None:
    if code is None:
        return None
    try:
        return normalize_code(code)
    except ValidationError:
        return code  # refused when the coupon is reserved


# Digits with the usual separators and an optional leading +; real checks are the host's.
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{5,30}$")


def _contact_answers(
    page: CheckoutPage, contact: Mapping[str, str | bool] | None
) -> dict[str, str]:
    """Check the buyer's answers against the page's fields; return them as strings."""
    if contact is None:
        contact = {}
    if not isinstance(contact, Mapping):
        raise ValidationError("contact", "must be a mapping of field name to answer")
    fields = {field.name: field for field in page.fields}
    for name in contact:
        if name not in fields:
            raise ValidationError(f"contact.{name}", "is not a field of this checkout page")
    answers: dict[str, str] = {}
    for name, field in fields.items():
        where = f"contact.{name}"
        raw = contact.get(name)
        if field.type is FieldType.CHECKBOX:
            checked = v.boolean(where, raw) if raw is not None else False
            if field.required and not checked:
                raise ValidationError(where, f"{field.label!r} must be checked")
            answers[name] = "true" if checked else "false"
            continue
        value = v.optional_text(where, raw, max_length=500)
        if value is None:
            if field.required:
                raise ValidationError(where, f"{field.label!r} is required")
            continue
        if field.type is FieldType.EMAIL:
            value = v.email(where, value)
        elif field.type is FieldType.PHONE and not _PHONE.match(value):
            raise ValidationError(where, f"{value!r} is not a phone number")
        elif field.type is FieldType.SELECT and value not in field.options:
            raise ValidationError(where, f"must be one of {', '.join(field.options)}")
        answers[name] = value
    return answers


class CheckoutService(GrantingService):
    """Buy or claim offers. ``portal.checkout``."""

    def __init__(self, context: Context, members: MembersService, default_gateway: str) -> None:
        super().__init__(context)
        self._members = members
        self._default_gateway = default_gateway

    def purchase(
        self,
        offer_id: str,
        *,
        email: str,
        first_name: str = "",
        last_name: str = "",
        idempotency_key: str | None = None,
        contact: Mapping[str, str | bool] | None = None,
        accept_terms: bool = False,
        coupon_code: str | None = None,
    ) -> Purchase:
        """Buy (or, for a free offer, claim) an offer for the buyer with ``email``.

        Creates the member if the email is new in this portal. On success every
        product of the offer is granted and ``OfferPurchased`` /
        ``AccessGranted`` are recorded. A free offer goes through the ``manual``
        gateway and succeeds at once; a pending payment (e.g. a manual bank
        transfer) records a pending purchase that :meth:`confirm_payment` settles.

        ``contact`` answers the checkout page's extra fields by name (required
        ones must be there; ``select`` answers must be one of the options). When
        the page has a service agreement, ``accept_terms`` must be true; the
        purchase records when it was accepted and a hash of the exact text.

        ``coupon_code`` applies a coupon made with ``offers.create_coupon``: it
        must be active, valid for this offer, not expired and under its
        redemption limit (a ``ValidationError`` on ``coupon_code`` otherwise).
        The purchase records the code; a subscription keeps the discount for
        the periods the coupon covers.

        Retrying with the same ``idempotency_key`` returns the first purchase
        and charges once. As at Stripe, the key stands for one request: the
        same key with any different parameter (offer, email, names, contact
        answers, ``accept_terms``, coupon code, or the portal's gateway) is a
        ``Conflict`` on ``idempotency_key``, and nothing is charged. A declined
        payment raises ``PaymentDeclined`` and writes nothing.
        """
        v.identifier("offer_id", offer_id, "off")
        email = v.email("email", email)
        first = v.text("first_name", first_name, max_length=100, allow_empty=True)
        last = v.text("last_name", last_name, max_length=100, allow_empty=True)
        key = v.optional_text("idempotency_key", idempotency_key, max_length=200)
        v.boolean("accept_terms", accept_terms)
        coupon_code = v.optional_text("coupon_code", coupon_code, max_length=40)
        fingerprint = _fingerprint(
            kind="checkout",
            offer_id=offer_id,
            email=email_key(email),
            first_name=first,
            last_name=last,
            contact=_normalized_contact(contact),
            accept_terms=accept_terms,
            coupon_code=_normalized_code(coupon_code),
            gateway=self._default_gateway,
        )

        with self._ctx.uow(write=False) as uow:
            if key is not None:
                existing = self._by_key(uow, key, offer_id, email, fingerprint)
                if existing is not None:
                    return existing
            offer = self._require(uow.offers, "offer", offer_id, "offer_id")
            if offer.status is not OfferStatus.PUBLISHED:
                raise Conflict(f"offer {offer_id!r} is not published", field="offer_id")
            answers = _contact_answers(offer.checkout_page, contact)
            agreement = offer.checkout_page.agreement
            if agreement is not None and not accept_terms:
                raise ValidationError(
                    "accept_terms", f"the buyer must accept {agreement.title!r} to buy"
                )
            currency = self._settings(uow).site.currency
        now = self._ctx.now()
        coupon = self._reserve_coupon(coupon_code, offer, currency, now) if coupon_code else None
        try:
            sale = self._price(offer, currency, coupon, now, key)
            gateway_name = "manual" if sale.free else self._default_gateway
            gateway = self._ctx.gateways[gateway_name]
            if sale.billing is not None:
                # Later charges need a saved method: refuse before any money moves.
                require_capability(gateway, "off_session")
            result = gateway.create_payment(
                PaymentRequest(
                    purchase_id=sale.purchase_id,
                    amount=sale.amount,
                    description=offer.title,
                    customer_email=email,
                    idempotency_key=key or sale.purchase_id,
                    save_method=sale.billing is not None
                    or self._wants_saved_method(offer, gateway),
                )
            )
            if result.status is PaymentStatus.DECLINED:
                raise PaymentDeclined(result.decline_reason or "the payment was declined")
        except BaseException:
            if coupon is not None:
                self._release_coupon(coupon.code)
            raise
        # The money has moved; only the bookkeeping may need a second go. A
        # Conflict means a concurrent request won a race: the same idempotency
        # key (return its purchase) or the same new email (the member exists
        # now, so the next attempt finds it).
        for attempt in range(3):
            try:
                with self._ctx.uow() as uow:
                    member = self._members._find_or_create(
                        uow, email, first, last, source="checkout"
                    )
                    purchase = self._write(
                        uow,
                        sale,
                        member.id,
                        gateway_name,
                        result,
                        key,
                        now,
                        terms_accepted_at=now if agreement is not None else None,
                        terms_hash=terms_hash(agreement) if agreement is not None else None,
                        contact=answers,
                        request_fingerprint=fingerprint,
                    )
                    uow.commit()
                break
            except Conflict:
                if key is not None:
                    try:
                        with self._ctx.uow(write=False) as uow:
                            existing = self._by_key(uow, key, offer_id, email, fingerprint)
                    except Conflict:
                        # A concurrent request with the same key but other parameters won.
                        if coupon is not None:
                            self._release_coupon(coupon.code)
                        raise
                    if existing is not None:
                        if coupon is not None:
                            self._release_coupon(coupon.code)  # the winner redeemed it
                        return existing
                if attempt == 2:
                    raise
        self._committed()
        return purchase

    def _purchase_id(self, key: str | None) -> str:
        """A new purchase id; the same one for every attempt with the same key.

        Concurrent retries of one checkout then send the gateway the very same
        request, which it answers once, instead of one it must refuse as the
        same key reused for a different purchase.
        """
        if key is None:
            return self._ctx.ids.new("pur")
        digest = hashlib.sha256(f"{self._ctx.tenant}\x00{key}".encode()).digest()
        return "pur_" + base64.b32encode(digest).decode("ascii")[:26].lower()

    def _price(
        self,
        offer: Offer,
        currency: str,
        coupon: Coupon | None,
        now: datetime,
        key: str | None = None,
    ) -> _Sale:
        """What buying ``offer`` now costs: the charges due at once, and the billing after."""
        starts_at, ends_at = resolve(offer.access_window, now)
        plan = offer.plan
        purchase_id = self._purchase_id(key)
        billing: Billing | None = None
        if isinstance(plan, Subscription | PaymentPlan):
            billing, initial = billing_rules.start(
                self._ctx.ids.new("bil"),
                purchase_id=purchase_id,
                member_id="mem_pending",  # set when written, once the member is known
                offer_id=offer.id,
                plan=plan,
                coupon=coupon,
                now=now,
                access_until=ends_at,
            )
        else:
            initial = schedule(plan, now, coupon=coupon)
        # The plan's currency, not the site's: a trial with no setup fee charges
        # nothing now, but that nothing is in the currency of what was bought.
        price = offer.price
        amount = _sum(initial, price.currency if price is not None else currency)
        # A one-time price a coupon took to zero needs no gateway, like a free offer.
        free = billing is None and amount.amount == 0
        return _Sale(offer, purchase_id, initial, amount, billing, coupon, starts_at, ends_at, free)

    def _write(
        self,
        uow: UnitOfWork,
        sale: _Sale,
        member_id: str,
        gateway_name: str,
        result: PaymentResult,
        key: str | None,
        now: datetime,
        **extra: Any,
    ) -> Purchase:
        """Record a sale the gateway answered; grant access when it was paid."""
        paid = result.status is PaymentStatus.SUCCEEDED
        purchase = Purchase(
            sale.purchase_id,
            sale.offer.id,
            member_id,
            PurchaseStatus.PAID if paid else PurchaseStatus.PENDING,
            sale.amount,
            gateway_name,
            result.reference,
            key,
            now,
            now if paid else None,
            plan=sale.offer.plan,
            method_reference=result.method_reference,
            product_ids=sale.offer.product_ids,
            coupon_code=sale.coupon.code if sale.coupon is not None else None,
            **extra,
        )
        uow.purchases.add(purchase)
        for charge in sale.initial:
            uow.payments.add(self._payment(purchase, charge, paid, result.reference, now))
        if paid:
            started = None
            if sale.billing is not None:
                started = attrs.evolve(sale.billing, member_id=member_id)
                uow.billings.add(started)
            self._grant(uow, sale.offer, purchase, sale.starts_at, sale.ends_at, started)
        return purchase

    # -- upsells ----------------------------------------------------------------------

    def upsell_for(self, purchase_id: str) -> Offer | None:
        """The offer to present after ``purchase_id`` succeeded, or ``None``.

        ``None`` too while the purchase is not paid: an upsell never runs
        before the initial payment succeeded.
        """
        v.identifier("purchase_id", purchase_id, "pur")
        with self._ctx.uow(write=False) as uow:
            parent = self._require(uow.purchases, "purchase", purchase_id, "purchase_id")
            if parent.status is not PurchaseStatus.PAID:
                return None
            chain = self._upsell_chain(uow, parent)
        return chain[0] if chain else None

    def decline_upsell(self, purchase_id: str, offer_id: str) -> Offer | None:
        """The buyer said no to ``offer_id``: the downsell to present instead, or ``None``.

        A downsell is the declined offer's own upsell of kind ``downsell``.
        Declining writes nothing.
        """
        v.identifier("purchase_id", purchase_id, "pur")
        v.identifier("offer_id", offer_id, "off")
        with self._ctx.uow(write=False) as uow:
            parent = self._require(uow.purchases, "purchase", purchase_id, "purchase_id")
            chain = self._upsell_chain(uow, parent)
        ids = [offer.id for offer in chain]
        if offer_id not in ids:
            raise ValidationError("offer_id", "is not an upsell of this purchase")
        following = ids.index(offer_id) + 1
        return chain[following] if following < len(chain) else None

    def accept_upsell(
        self, purchase_id: str, offer_id: str, *, idempotency_key: str | None = None
    ) -> Purchase:
        """Buy the upsell (or downsell) ``offer_id`` of a paid purchase with one click.

        It is charged off-session to the payment method saved at the first
        checkout, by the same gateway, and becomes a purchase of its own
        (``upsell_of`` names the first), so it is refunded and cancelled on its
        own line. Accepting twice returns the same purchase and charges once;
        so does retrying with the same ``idempotency_key``. Refused with
        ``Conflict`` before the first purchase is paid, and with
        ``PaymentDeclined`` (nothing written) when the gateway says no.
        """
        v.identifier("purchase_id", purchase_id, "pur")
        v.identifier("offer_id", offer_id, "off")
        key = v.optional_text("idempotency_key", idempotency_key, max_length=200)
        key = key or f"upsell:{purchase_id}:{offer_id}"
        fingerprint = _fingerprint(kind="upsell", offer_id=offer_id, upsell_of=purchase_id)
        with self._ctx.uow(write=False) as uow:
            parent = self._require(uow.purchases, "purchase", purchase_id, "purchase_id")
            member = self._require(uow.members, "member", parent.member_id, "purchase_id")
            existing = self._by_key(uow, key, offer_id, member.email, fingerprint)
            if existing is not None:
                return existing
            if parent.status is not PurchaseStatus.PAID:
                raise Conflict(
                    f"purchase {purchase_id!r} is {parent.status.value}: an upsell runs "
                    "only after the first payment succeeded",
                    field="purchase_id",
                )
            chain = self._upsell_chain(uow, parent)
            offer = next((o for o in chain if o.id == offer_id), None)
            if offer is None:
                raise ValidationError("offer_id", "is not an upsell of this purchase")
            currency = self._settings(uow).site.currency
        now = self._ctx.now()
        sale = self._price(offer, currency, None, now, key)
        gateway_name = "manual" if sale.free else parent.gateway
        result = self._charge_again(parent, sale, gateway_name, key)
        try:
            with self._ctx.uow() as uow:
                purchase = self._write(
                    uow,
                    sale,
                    parent.member_id,
                    gateway_name,
                    result,
                    key,
                    now,
                    upsell_of=parent.id,
                    request_fingerprint=fingerprint,
                )
                uow.commit()
        except Conflict:
            with self._ctx.uow(write=False) as uow:
                existing = self._by_key(uow, key, offer_id, member.email, fingerprint)
            if existing is None:
                raise
            return existing
        self._committed()
        return purchase

    def _charge_again(
        self, parent: Purchase, sale: _Sale, gateway_name: str, key: str
    ) -> PaymentResult:
        """Charge an upsell to the method the first purchase saved."""
        gateway = self._ctx.gateways.get(gateway_name)
        if gateway is None:
            raise ConfigurationError(f"gateway {gateway_name!r} is not configured")
        if sale.free:
            return gateway.create_payment(
                PaymentRequest(sale.purchase_id, sale.amount, sale.offer.title, "", key)
            )
        require_capability(gateway, "off_session")
        if parent.method_reference is None:
            raise Conflict(
                f"purchase {parent.id!r} saved no payment method to charge with one click",
                field="purchase_id",
            )
        result = gateway.charge_saved_method(
            OffSessionCharge(
                purchase_id=sale.purchase_id,
                amount=sale.amount,
                method_reference=parent.method_reference,
                description=sale.offer.title,
                idempotency_key=key,
            )
        )
        if result.status is PaymentStatus.DECLINED:
            raise PaymentDeclined(result.decline_reason or "the payment was declined")
        # Later charges of a recurring upsell go to the same saved method.
        return attrs.evolve(result, method_reference=parent.method_reference)

    def _upsell_chain(self, uow: UnitOfWork, parent: Purchase) -> list[Offer]:
        """The published upsell of the purchase's offer, then its downsell, if any."""
        chain: list[Offer] = []
        offer = uow.offers.get(parent.offer_id)
        upsell = offer.upsell if offer is not None else None
        while upsell is not None and len(chain) < 2:
            if chain and upsell.kind is not UpsellKind.DOWNSELL:
                break
            following = uow.offers.get(upsell.offer_id)
            if following is None or following.status is not OfferStatus.PUBLISHED:
                break
            chain.append(following)
            upsell = following.upsell
        return chain

    # -- coupons ----------------------------------------------------------------------

    def _reserve_coupon(self, code: str, offer: Offer, currency: str, now: datetime) -> Coupon:
        """Count one redemption of ``code`` for ``offer`` before any money moves.

        Counting first means two buyers racing for the last use cannot both
        get it; a checkout that then fails gives its use back.
        """
        if isinstance(offer.plan, Free):
            raise ValidationError("coupon_code", "a free offer has nothing to discount")
        price = offer.price
        try:
            code = normalize_code(code)
        except ValidationError as error:
            raise ValidationError("coupon_code", error.problem) from None
        with self._ctx.uow() as uow:
            found = uow.coupons.find({"code": code}, limit=1)
            if not found or not found[0].active:
                raise ValidationError("coupon_code", f"{code!r} is not a valid coupon")
            stored = uow.coupons.get_for_update(found[0].id)
            assert stored is not None  # found a moment ago in this transaction
            try:
                check_coupon(
                    stored.coupon,
                    offer.id,
                    now,
                    stored.redemptions,
                    currency=price.currency if price is not None else currency,
                )
            except ValidationError as error:
                raise ValidationError("coupon_code", error.problem) from None
            # Only the count moves: updated_at is when an admin last changed the coupon.
            uow.coupons.update(attrs.evolve(stored, redemptions=stored.redemptions + 1))
            uow.commit()
        return stored.coupon

    def _release_coupon(self, code: str) -> None:
        with self._ctx.uow() as uow:
            found = uow.coupons.find({"code": code}, limit=1)
            stored = uow.coupons.get_for_update(found[0].id) if found else None
            if stored is not None and stored.redemptions > 0:
                uow.coupons.update(attrs.evolve(stored, redemptions=stored.redemptions - 1))
                uow.commit()

    def confirm_payment(self, purchase_id: str, *, reference: str | None = None) -> Purchase:
        """Mark a pending purchase paid (e.g. a bank transfer arrived) and grant access.

        Confirming an already paid purchase changes nothing and returns it. For
        a subscription or payment plan, billing starts now: later charges are
        due counting from the confirmation.
        """
        v.identifier("purchase_id", purchase_id, "pur")
        ref = v.optional_text("reference", reference, max_length=200)
        with self._ctx.uow() as uow:
            purchase = self._require_for_update(
                uow.purchases, "purchase", purchase_id, "purchase_id"
            )
            if purchase.status is PurchaseStatus.PAID:
                return purchase
            if purchase.status is not PurchaseStatus.PENDING:
                raise Conflict(
                    f"purchase {purchase_id!r} is {purchase.status.value}, not pending",
                    field="purchase_id",
                )
            purchase = self._settle(uow, purchase, ref)
            uow.commit()
        self._committed()
        return purchase

    def _settle(self, uow: UnitOfWork, purchase: Purchase, reference: str | None) -> Purchase:
        """The first payment of a pending purchase succeeded: mark it paid and grant access."""
        now = self._ctx.now()
        offer = self._require(uow.offers, "offer", purchase.offer_id, "purchase_id")
        purchase = attrs.evolve(
            purchase,
            status=PurchaseStatus.PAID,
            paid_at=now,
            gateway_reference=reference or purchase.gateway_reference,
        )
        uow.purchases.update(purchase)
        for payment in uow.payments.find({"purchase_id": purchase.id}):
            if payment.state is PaymentState.PENDING:
                uow.payments.update(
                    attrs.evolve(
                        payment,
                        state=PaymentState.SUCCEEDED,
                        gateway_reference=purchase.gateway_reference,
                        paid_at=now,
                        updated_at=now,
                    )
                )
        # The window counts from the payment: that is when access was bought.
        starts_at, ends_at = resolve(offer.access_window, now)
        billing = None
        if isinstance(purchase.plan, Subscription | PaymentPlan):
            billing, _ = billing_rules.start(
                self._ctx.ids.new("bil"),
                purchase_id=purchase.id,
                member_id=purchase.member_id,
                offer_id=purchase.offer_id,
                plan=purchase.plan,
                # The coupon the buyer used applies as if the payment had succeeded at once.
                coupon=self._used_coupon(uow, purchase.coupon_code),
                now=now,
                access_until=ends_at,
            )
            uow.billings.add(billing)
        self._grant(uow, offer, purchase, starts_at, ends_at, billing)
        return purchase

    @staticmethod
    def _used_coupon(uow: UnitOfWork, code: str | None) -> Coupon | None:
        """The coupon a purchase was made with (coupons are never edited, only deactivated).

        Its use was counted at checkout, so neither its expiry nor its being
        deactivated since changes what the buyer was promised.
        """
        if code is None:
            return None
        found = uow.coupons.find({"code": code}, limit=1)
        return found[0].coupon if found else None

    def _payment(
        self,
        purchase: Purchase,
        charge: Charge,
        paid: bool,
        reference: str | None,
        now: datetime,
    ) -> Payment:
        return Payment(
            self._ctx.ids.new("pay"),
            purchase.id,
            charge.sequence,
            charge.kind,
            charge.amount,
            PaymentState.SUCCEEDED if paid else PaymentState.PENDING,
            1,
            purchase.gateway,
            reference,
            charge.due_at,
            now,
            now,
            paid_at=now if paid else None,
        )

    @staticmethod
    def _wants_saved_method(offer: Offer, gateway: PaymentGateway) -> bool:
        """Save the method when a one-click upsell may charge it right after."""
        upsell = offer.upsell
        return (
            upsell is not None
            and upsell.kind is UpsellKind.ONE_CLICK
            and gateway.capabilities.off_session
        )

    def get(self, purchase_id: str) -> Purchase:
        """The purchase, or ``NotFound``."""
        v.identifier("purchase_id", purchase_id, "pur")
        with self._ctx.uow(write=False) as uow:
            return self._require(uow.purchases, "purchase", purchase_id, "purchase_id")

    def _by_key(
        self, uow: UnitOfWork, key: str, offer_id: str, email: str, fingerprint: str
    ) -> Purchase | None:
        """The purchase made with ``key``, if any; ``Conflict`` if it was another request."""
        found = uow.purchases.find({"idempotency_key": key}, limit=1)
        if not found:
            return None
        purchase = found[0]
        member = uow.members.get(purchase.member_id)
        if purchase.offer_id != offer_id or member is None or member.email_key != email_key(email):
            raise Conflict(
                f"idempotency_key {key!r} was already used for a different offer or buyer",
                field="idempotency_key",
            )
        # Purchases recorded before fingerprints were kept are compared on the above alone.
        if purchase.request_fingerprint is not None and purchase.request_fingerprint != fingerprint:
            raise Conflict(
                f"idempotency_key {key!r} was already used with different parameters",
                field="idempotency_key",
            )
        return purchase

    def _grant(
        self,
        uow: UnitOfWork,
        offer: Offer,
        purchase: Purchase,
        starts_at: datetime,
        ends_at: datetime | None,
        billing: Billing | None = None,
    ) -> None:
        if billing is not None:
            ends_at = billing_rules.earliest_end(ends_at, billing_rules.access_ends_at(billing))
        self._record(
            uow,
            OfferPurchased,
            purchase_id=purchase.id,
            offer_id=offer.id,
            member_id=purchase.member_id,
        )
        for product_id in purchase.product_ids or offer.product_ids:
            self._grant_product(uow, purchase, product_id, starts_at, ends_at)
