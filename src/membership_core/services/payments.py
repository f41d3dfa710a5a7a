"""Money after checkout: gateway webhooks and refunds. ``portal.payments``.

Webhooks go through an inbox. :meth:`PaymentsService.handle_webhook` has the
gateway verify the request, then stores each event under its gateway's event
id (a unique key, so a second delivery is recognised and dropped) and commits,
and only then applies it in a transaction of its own. An event stored but not
applied (the process died, or applying it failed) is applied by the next
:meth:`Portal.tick`. Events are applied by what they say, not by their order:
a payment already settled ignores a late or repeated outcome.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from .. import _validate as v
from ..domain import billing as rules
from ..domain.billing import Billing
from ..domain.checkpoints import Checkpoint
from ..domain.enrollments import (
    Enrollment,
    EnrollmentStatus,
    Purchase,
    PurchaseStatus,
)
from ..domain.money import Money
from ..domain.offers import Offer
from ..domain.payments import Payment, PaymentState, Refund, RefundState, WebhookEvent
from ..domain.pricing import PaymentPlan, Subscription
from ..domain.windows import resolve
from ..errors import Conflict, Contention, NotFound, RefundFailed, ValidationError
from ..ports.payments import (
    GatewayEvent,
    GatewayEventType,
    PaymentGateway,
    PaymentResult,
    PaymentStatus,
    RefundRequest,
    RefundStatus,
    require_capability,
)
from ..ports.storage import UnitOfWork
from ._context import Context
from ._grants import GrantingService
from .billing import PENDING_RECHECK, BillingService
from .checkout import CheckoutService

__all__ = ["EntitlementGap", "PaymentsService", "WebhookReceipt"]

#: How long handled webhook events are kept (longer than any gateway retries them).
WEBHOOK_RETENTION = timedelta(days=30)
#: Purchases that entitle their member to access.
_ENTITLED = (PurchaseStatus.PAID, PurchaseStatus.PARTIALLY_REFUNDED)
#: Purchases whose money moved, so a dispute of it can be opened.
_SETTLED = (*_ENTITLED, PurchaseStatus.REFUNDED)
_BATCH = 500


@attrs.frozen
class WebhookReceipt:
    """What one :meth:`PaymentsService.handle_webhook` call did with a request."""

    #: Events new to the inbox.
    received: int
    #: Events seen before (a gateway's retry, or a replay), dropped.
    duplicates: int
    #: Of the new events, those applied now (the rest are retried by ``tick``).
    applied: int


@attrs.frozen
class EntitlementGap:
    """A paid purchase whose access to one product is missing or ends too early.

    ``problem`` is ``"missing"`` (no grant at all) or ``"short"`` (the grant
    ends at ``ends_at`` though the billing has paid to ``should_end_at``).
    ``repaired`` says whether :meth:`PaymentsService.reconcile` fixed it.
    """

    purchase_id: str
    member_id: str
    product_id: str
    problem: str
    ends_at: datetime | None
    should_end_at: datetime | None
    repaired: bool


class PaymentsService(GrantingService):
    """Webhooks, refunds and disputes. ``portal.payments``.

    A dispute (chargeback) the gateway reports is applied like a refund the
    bank made: while it is open the purchase is ``DISPUTED`` and nothing else
    changes; won, the purchase returns to the status it had before (``PAID``
    or ``PARTIALLY_REFUNDED``); lost, the money is gone as with a whole
    refund: the purchase is ``REFUNDED``, its subscription or payment plan
    stops at once (nothing more is charged), and the access it granted ends,
    unless ``keep_access_on_dispute`` is set, the dispute counterpart of
    ``refund(..., keep_access=True)``.
    """

    def __init__(
        self,
        context: Context,
        checkout: CheckoutService,
        billing: BillingService,
        *,
        keep_access_on_dispute: bool = False,
        keep_access_on_refund: bool = False,
    ) -> None:
        super().__init__(context)
        self._checkout = checkout
        self._billing = billing
        self._keep_access_on_dispute = v.boolean("keep_access_on_dispute", keep_access_on_dispute)
        self._keep_access_on_refund = v.boolean("keep_access_on_refund", keep_access_on_refund)

    @property
    def keep_access_on_refund(self) -> bool:
        """What ``refund`` does with access when its call does not say (``False``: ends it)."""
        return self._keep_access_on_refund

    @keep_access_on_refund.setter
    def keep_access_on_refund(self, value: bool) -> None:
        self._keep_access_on_refund = v.boolean("keep_access_on_refund", value)

    @property
    def keep_access_on_dispute(self) -> bool:
        """Whether a lost dispute leaves the access it paid for (``False``: it ends it)."""
        return self._keep_access_on_dispute

    @keep_access_on_dispute.setter
    def keep_access_on_dispute(self, value: bool) -> None:
        self._keep_access_on_dispute = v.boolean("keep_access_on_dispute", value)

    # -- webhooks -------------------------------------------------------------------

    def handle_webhook(
        self, gateway: str, body: bytes, headers: Mapping[str, str]
    ) -> WebhookReceipt:
        """Verify and take in a gateway's webhook request; answer it 200 when this returns.

        ``body`` is the raw request body, ``headers`` the request's headers.
        A request that fails verification raises
        :class:`~membership_core.errors.InvalidToken` (answer it 400) and
        stores nothing.
        """
        adapter = self._gateway(gateway)
        require_capability(adapter, "webhooks")
        events = adapter.parse_webhook(body, headers, now=self._ctx.now())
        received = duplicates = applied = 0
        for event in events:
            stored = self._store(gateway, event)
            if stored is None:
                duplicates += 1
                continue
            received += 1
            if self._apply_stored(stored.id):
                applied += 1
        return WebhookReceipt(received, duplicates, applied)

    def apply_pending_webhooks(self, *, limit: int = 100) -> int:
        """Apply stored events not applied yet (run by ``tick``); return how many were."""
        v.integer("limit", limit, minimum=1)
        with self._ctx.uow(write=False) as uow:
            waiting = uow.webhook_events.find(
                {"applied_at": None}, order_by=("received_at",), limit=limit
            )
        return sum(1 for record in waiting if self._apply_stored(record.id))

    def prune_webhooks(self) -> int:
        """Forget applied events older than 30 days; return how many were removed."""
        cutoff = self._ctx.now() - WEBHOOK_RETENTION
        with self._ctx.uow() as uow:
            # Claimed, so concurrent ticks each delete different rows.
            old = uow.webhook_events.find_due("received_at", cutoff, limit=1000, claim=True)
            removed = 0
            for record in old:
                if record.applied_at is not None:
                    with contextlib.suppress(NotFound):
                        uow.webhook_events.delete(record.id)
                        removed += 1
            uow.commit()
        return removed

    def webhook_events(self, *, limit: int = 100) -> list[WebhookEvent]:
        """The most recently received events, newest first (for reconciliation screens)."""
        v.integer("limit", limit, minimum=1)
        with self._ctx.uow(write=False) as uow:
            return uow.webhook_events.find(order_by=("received_at",), descending=True, limit=limit)

    def _store(self, gateway: str, event: GatewayEvent) -> WebhookEvent | None:
        record = WebhookEvent(
            self._ctx.ids.new("whe"),
            gateway,
            event.id,
            event.type.value,
            event.payment_reference,
            event.amount,
            event.occurred_at,
            self._ctx.now(),
            purchase_id=event.purchase_id,
            failure_reason=event.failure_reason,
            refund_reference=event.refund_reference,
        )
        try:
            with self._ctx.uow() as uow:
                uow.webhook_events.add(record)
                uow.commit()
        except Conflict:
            return None
        return record

    def _apply_stored(self, record_id: str) -> bool:
        """Apply one stored event in its own transaction; False if it failed (retried later)."""
        try:
            with self._ctx.uow() as uow:
                record = uow.webhook_events.get_for_update(record_id)
                if record is None or record.applied_at is not None:
                    return False
                outcome = self._apply(uow, record)
                uow.webhook_events.update(
                    attrs.evolve(record, applied_at=self._ctx.now(), outcome=outcome)
                )
                uow.commit()
        except (Conflict, Contention):
            return False  # a concurrent change won; the next tick tries again
        self._committed()
        return True

    def _apply(self, uow: UnitOfWork, record: WebhookEvent) -> str:
        kind = GatewayEventType(record.type)
        if kind in (GatewayEventType.REFUND_SUCCEEDED,):
            return self._refund_settled(uow, record)
        payments = uow.payments.find(
            {"gateway": record.gateway, "gateway_reference": record.payment_reference}
        )
        purchase = self._purchase_of(uow, record, payments)
        if purchase is None:
            return "ignored: no purchase has this payment reference"
        if kind is GatewayEventType.DISPUTE_OPENED:
            return self._dispute_opened(uow, record, purchase)
        if kind is GatewayEventType.DISPUTE_CLOSED:
            return self._dispute_closed(uow, record, purchase)
        succeeded = kind is GatewayEventType.PAYMENT_SUCCEEDED
        if purchase.status is PurchaseStatus.PENDING:
            if succeeded:
                self._checkout._settle(uow, purchase, record.payment_reference)
                return "applied: purchase paid"
            if kind is GatewayEventType.PAYMENT_FAILED:
                uow.purchases.update(attrs.evolve(purchase, status=PurchaseStatus.FAILED))
                for payment in payments:
                    uow.payments.update(
                        attrs.evolve(
                            payment,
                            state=PaymentState.FAILED,
                            failure_reason=record.failure_reason or "failed",
                            updated_at=self._ctx.now(),
                        )
                    )
                return "applied: purchase failed"
            return "ignored: the buyer still has to act"
        if not payments and self._charge_in_flight(uow, purchase.id, record):
            # The gateway told us before the worker that charged recorded its answer
            # (and the reference this event names): try again on the next tick.
            raise Conflict(
                f"charge of {purchase.id!r} with reference {record.payment_reference!r} "
                "is not recorded yet",
                field="payment_reference",
            )
        later = [p for p in payments if p.sequence > 1 or purchase.status is PurchaseStatus.PAID]
        for payment in later:
            if payment.state is PaymentState.SUCCEEDED:
                continue
            status = PaymentStatus.SUCCEEDED if succeeded else PaymentStatus.DECLINED
            if kind is GatewayEventType.PAYMENT_ACTION_REQUIRED:
                status = PaymentStatus.ACTION_REQUIRED
            result = PaymentResult(
                status,
                payment.amount,
                reference=record.payment_reference,
                decline_reason=record.failure_reason,
            )
            self._billing._apply(uow, purchase.id, payment.sequence, result)
            return f"applied: charge {payment.sequence} {status.value}"
        return "ignored: already settled"

    def _charge_in_flight(self, uow: UnitOfWork, purchase_id: str, record: WebhookEvent) -> bool:
        """Whether a renewal or installment of the purchase waits for its gateway answer.

        Only for a day after the event arrived: an answer that never comes is
        asked for again by the billing's own recheck, with the same key.
        """
        if record.received_at + PENDING_RECHECK < self._ctx.now():
            return False
        return any(
            payment.state is PaymentState.PENDING and payment.gateway_reference is None
            for payment in uow.payments.find({"purchase_id": purchase_id})
            if payment.sequence > 1
        )

    def _dispute_opened(self, uow: UnitOfWork, record: WebhookEvent, purchase: Purchase) -> str:
        if purchase.status is PurchaseStatus.DISPUTED:
            return "ignored: already disputed"
        if purchase.status not in _SETTLED:
            return f"ignored: purchase is {purchase.status.value}"
        closed = uow.webhook_events.find(
            {
                "gateway": record.gateway,
                "payment_reference": record.payment_reference,
                "type": GatewayEventType.DISPUTE_CLOSED.value,
            }
        )
        if any(event.applied_at is not None for event in closed):
            return "ignored: the dispute was already closed"  # delivered out of order
        uow.purchases.update(attrs.evolve(purchase, status=PurchaseStatus.DISPUTED))
        return "applied: purchase disputed"

    def _dispute_closed(self, uow: UnitOfWork, record: WebhookEvent, purchase: Purchase) -> str:
        if purchase.status is not PurchaseStatus.DISPUTED and purchase.status not in _SETTLED:
            return f"ignored: purchase is {purchase.status.value}"
        if record.failure_reason is None:
            # Won: the purchase is what its money says, as before the dispute.
            status = self._money_status(uow, purchase.id)
            if purchase.status is not status:
                uow.purchases.update(attrs.evolve(purchase, status=status))
            return f"applied: dispute won, purchase {status.value}"
        # Lost: the bank gave the money back, as a whole refund would have.
        self._stop_billing(uow, purchase)
        if purchase.status is not PurchaseStatus.REFUNDED:
            uow.purchases.update(attrs.evolve(purchase, status=PurchaseStatus.REFUNDED))
        if self._keep_access_on_dispute:
            return "applied: dispute lost, billing stopped, access kept"
        self._revoke(uow, purchase)
        return "applied: dispute lost, billing stopped, access revoked"

    @staticmethod
    def _money_status(uow: UnitOfWork, purchase_id: str) -> PurchaseStatus:
        """What a settled purchase's payments and refunds make it, disputes aside."""
        payments = uow.payments.find({"purchase_id": purchase_id})
        if not any(p.refunded is not None and p.refunded.amount > 0 for p in payments):
            return PurchaseStatus.PAID
        left = sum(p.refundable.amount for p in payments)
        return PurchaseStatus.REFUNDED if left == 0 else PurchaseStatus.PARTIALLY_REFUNDED

    @staticmethod
    def _purchase_of(
        uow: UnitOfWork, record: WebhookEvent, payments: list[Payment]
    ) -> Purchase | None:
        if payments:
            return uow.purchases.get_for_update(payments[0].purchase_id)
        # The first payment of a pending purchase may not have a reference stored
        # yet (the gateway answered before giving one); the event names the purchase.
        if record.purchase_id is not None:
            purchase = uow.purchases.get_for_update(record.purchase_id)
            if purchase is not None and purchase.gateway == record.gateway:
                return purchase
        found = uow.purchases.find(
            {"gateway": record.gateway, "gateway_reference": record.payment_reference}, limit=1
        )
        return uow.purchases.get_for_update(found[0].id) if found else None

    # -- refunds --------------------------------------------------------------------

    def refund(
        self,
        purchase_id: str,
        amount: Money | None = None,
        *,
        product_ids: Sequence[str] | None = None,
        reason: str = "requested_by_customer",
        keep_access: bool | None = None,
    ) -> Purchase:
        """Give back ``amount`` of a purchase (all of what is left when ``None``).

        Refunds the purchase's most recent payments first. Access acts per line:
        ``product_ids`` names the products of a bundle the refund is for, and only their
        access from *this* purchase ends; without it, a refund of the whole purchase (or
        of everything still left, lines named or not) ends all the access it granted and
        a partial one ends none. A whole refund also stops the purchase's subscription
        or payment plan. ``keep_access=True`` ends no access at all (``None``: the
        portal's :attr:`keep_access_on_refund`, ``False`` unless set). Access the member
        holds through other purchases (an upsell, another order of the same course) is
        never touched. A refund the gateway refuses raises
        :class:`~membership_core.errors.RefundFailed` and ends no access.
        """
        v.identifier("purchase_id", purchase_id, "pur")
        reason = v.text("reason", reason, max_length=200)
        keep_access = v.boolean(
            "keep_access", self._keep_access_on_refund if keep_access is None else keep_access
        )
        lines = None
        if product_ids is not None:
            if isinstance(product_ids, str) or not isinstance(product_ids, Sequence):
                raise ValidationError("product_ids", "must be a list of product ids")
            if not product_ids:
                raise ValidationError("product_ids", "must name at least one product")
            lines = {v.identifier("product_ids", p, "prod") for p in product_ids}
        if amount is not None and (not isinstance(amount, Money) or amount.amount <= 0):
            raise ValidationError("amount", "must be Money above zero, or None for everything")
        now = self._ctx.now()
        with self._ctx.uow() as uow:
            purchase = self._require_for_update(
                uow.purchases, "purchase", purchase_id, "purchase_id"
            )
            if purchase.status not in (PurchaseStatus.PAID, PurchaseStatus.PARTIALLY_REFUNDED):
                raise Conflict(
                    f"purchase {purchase_id!r} is {purchase.status.value}; only paid "
                    "purchases are refunded",
                    field="purchase_id",
                )
            if lines is not None:
                granted = {e.product_id for e in uow.enrollments.find({"purchase_id": purchase.id})}
                stray = sorted(lines - granted)
                if stray:
                    raise ValidationError(
                        "product_ids", f"{', '.join(stray)} not granted by this purchase"
                    )
            gateway = self._gateway(purchase.gateway)
            plan, whole = self._refund_plan(uow, purchase, amount)
            for payment, share in plan:
                require_capability(gateway, "refunds")
                if share != payment.amount:
                    require_capability(gateway, "partial_refunds")
            refunds = [
                Refund(
                    self._ctx.ids.new("ref"),
                    purchase.id,
                    payment.id,
                    share,
                    RefundState.PENDING,
                    reason,
                    purchase.gateway,
                    None,
                    now,
                    now,
                )
                for payment, share in plan
            ]
            for refund in refunds:
                uow.refunds.add(refund)
            uow.commit()
        # Recorded as pending first, so a crash here leaves a trace to reconcile.
        failure: str | None = None
        for (payment, _), refund in zip(plan, refunds, strict=True):
            result = gateway.refund(
                RefundRequest(
                    payment_reference=payment.gateway_reference or purchase.gateway_reference or "",
                    amount=refund.amount,
                    reason=reason,
                    idempotency_key=refund.id,
                )
            )
            state = {
                RefundStatus.SUCCEEDED: RefundState.SUCCEEDED,
                RefundStatus.PENDING: RefundState.PENDING,
                RefundStatus.FAILED: RefundState.FAILED,
            }[result.status]
            with self._ctx.uow() as uow:
                self._refund_result(uow, refund, state, result.reference, result.failure_reason)
                uow.commit()
            if state is RefundState.FAILED:
                failure = result.failure_reason or "refused by the gateway"
        with self._ctx.uow() as uow:
            purchase = self._require_for_update(
                uow.purchases, "purchase", purchase_id, "purchase_id"
            )
            if failure is None:
                if not keep_access and (whole or lines is not None):
                    # Everything left given back ends all access, whatever lines it named.
                    self._revoke(uow, purchase, None if whole else lines)
                if whole:
                    self._stop_billing(uow, purchase)
            uow.commit()
        self._committed()
        if failure is not None:
            raise RefundFailed(failure)
        return self._checkout.get(purchase_id)

    def refunds(self, purchase_id: str) -> list[Refund]:
        """Every refund of the purchase, oldest first."""
        v.identifier("purchase_id", purchase_id, "pur")
        with self._ctx.uow(write=False) as uow:
            self._require(uow.purchases, "purchase", purchase_id, "purchase_id")
            return uow.refunds.find({"purchase_id": purchase_id}, order_by=("created_at",))

    def _refundable(self, uow: UnitOfWork, purchase_id: str) -> list[tuple[Payment, int]]:
        """Succeeded payments with money left to give back (minor units), newest first.

        Money promised by a pending refund is not left: two refunds at once
        can never give back more than was paid.
        """
        pending: dict[str, int] = {}
        for refund in uow.refunds.find({"purchase_id": purchase_id}):
            if refund.state is RefundState.PENDING:
                pending[refund.payment_id] = (
                    pending.get(refund.payment_id, 0) + refund.amount.amount
                )
        payments = uow.payments.find({"purchase_id": purchase_id}, order_by=("sequence",))
        left = [(p, p.refundable.amount - pending.get(p.id, 0)) for p in reversed(payments)]
        return [(payment, remaining) for payment, remaining in left if remaining > 0]

    def _refund_plan(
        self, uow: UnitOfWork, purchase: Purchase, amount: Money | None
    ) -> tuple[list[tuple[Payment, Money]], bool]:
        """Which payments give back how much, and whether that is everything left."""
        refundable = self._refundable(uow, purchase.id)
        if not refundable:
            raise Conflict(f"purchase {purchase.id!r} has nothing left to refund", field="amount")
        currency = refundable[0][0].amount.currency
        if amount is not None and amount.currency != currency:
            raise ValidationError("amount", f"must be in {currency}, the purchase's currency")
        available = sum(remaining for _, remaining in refundable)
        wanted = available if amount is None else amount.amount
        if wanted > available:
            raise ValidationError(
                "amount", f"is more than the {Money(available, currency)} left to refund"
            )
        plan: list[tuple[Payment, Money]] = []
        rest = wanted
        for payment, remaining in refundable:
            if rest == 0:
                break
            share = min(rest, remaining)
            plan.append((payment, Money(share, currency)))
            rest -= share
        return plan, wanted == available

    def _refund_result(
        self,
        uow: UnitOfWork,
        refund: Refund,
        state: RefundState,
        reference: str | None,
        failure: str | None,
    ) -> None:
        """Record a refund's outcome; money given back counts on the payment and purchase."""
        current = uow.refunds.get_for_update(refund.id)
        if current is None or current.state is not RefundState.PENDING:
            return
        now = self._ctx.now()
        uow.refunds.update(
            attrs.evolve(
                current,
                state=state,
                gateway_reference=reference or current.gateway_reference,
                failure_reason=failure,
                updated_at=now,
            )
        )
        if state is not RefundState.SUCCEEDED:
            return
        payment = uow.payments.get_for_update(current.payment_id)
        if payment is None:
            return
        refunded = current.amount if payment.refunded is None else payment.refunded + current.amount
        uow.payments.update(attrs.evolve(payment, refunded=refunded, updated_at=now))
        purchase = uow.purchases.get_for_update(current.purchase_id)
        if purchase is None or purchase.status not in _ENTITLED:
            # Disputed: a won dispute restores the status from the money. Refunded
            # (everything given back, or a lost dispute): it stays refunded.
            return
        left = sum(p.refundable.amount for p in uow.payments.find({"purchase_id": purchase.id}))
        status = PurchaseStatus.REFUNDED if left == 0 else PurchaseStatus.PARTIALLY_REFUNDED
        uow.purchases.update(attrs.evolve(purchase, status=status))

    def _refund_settled(self, uow: UnitOfWork, record: WebhookEvent) -> str:
        if record.refund_reference is None:
            return "ignored: no refund reference"
        found = uow.refunds.find(
            {"gateway": record.gateway, "gateway_reference": record.refund_reference}, limit=1
        )
        if not found:
            return "ignored: unknown refund"
        self._refund_result(uow, found[0], RefundState.SUCCEEDED, None, None)
        return "applied: refund succeeded"

    # -- reconciliation ---------------------------------------------------------------

    def reconcile(self, *, repair: bool = True) -> list[EntitlementGap]:
        """Every paid purchase whose access is missing or short ("paid but not entitled").

        A paid purchase entitles its member to each product it sold, from its
        access window, and a subscription to the end of the period paid. A
        grant that was never written (a crash, a bug, a hand edit) is
        *missing*; one that ends before the billing says is *short*. With
        ``repair`` (the default) each gap is fixed: the grant written or
        extended, with its ``AccessGranted`` event. Access revoked on purpose
        (a refund) is not a gap. ``tick()`` runs this a batch at a time.
        """
        v.boolean("repair", repair)
        gaps: list[EntitlementGap] = []
        for status in _ENTITLED:
            offset = 0
            while True:
                found, batch_gaps = self._reconcile_batch(status, offset, _BATCH, repair)
                gaps.extend(batch_gaps)
                if found < _BATCH:
                    break
                offset += _BATCH
        return gaps

    def reconcile_step(self, *, batch_size: int = 200) -> list[EntitlementGap]:
        """Reconcile the next ``batch_size`` paid purchases, wrapping around; run by ``tick``.

        Where the previous step stopped is kept in storage (one checkpoint per
        purchase status), so successive ticks cover every purchase without any
        one of them scanning them all.
        """
        v.integer("batch_size", batch_size, minimum=1)
        gaps: list[EntitlementGap] = []
        for status in _ENTITLED:
            name = f"reconcile:{status.value}"
            with self._ctx.uow(write=False) as uow:
                mark = uow.checkpoints.get(name)
            offset = 0 if mark is None else mark.position
            found, batch_gaps = self._reconcile_batch(status, offset, batch_size, repair=True)
            gaps.extend(batch_gaps)
            checkpoint = Checkpoint(
                name, 0 if found < batch_size else offset + found, self._ctx.now()
            )
            # Two workers may both find no checkpoint yet; the second one's add then
            # clashes, and its position is as good as the first one's.
            with contextlib.suppress(Conflict), self._ctx.uow() as uow:
                if uow.checkpoints.get_for_update(name) is None:
                    uow.checkpoints.add(checkpoint)
                else:
                    uow.checkpoints.update(checkpoint)
                uow.commit()
        return gaps

    def _reconcile_batch(
        self, status: PurchaseStatus, offset: int, limit: int, repair: bool
    ) -> tuple[int, list[EntitlementGap]]:
        now = self._ctx.now()
        gaps: list[EntitlementGap] = []
        with self._ctx.uow() as uow:
            purchases = uow.purchases.find(
                {"status": status}, order_by=("paid_at",), limit=limit, offset=offset
            )
            ids = [purchase.id for purchase in purchases]
            enrollments = uow.enrollments.find_in("purchase_id", ids) if ids else []
            billings = uow.billings.find_in("purchase_id", ids) if ids else []
            by_purchase: dict[str, list[Enrollment]] = {}
            for enrollment in enrollments:
                by_purchase.setdefault(enrollment.purchase_id or "", []).append(enrollment)
            billing_of = {billing.purchase_id: billing for billing in billings}
            for purchase in purchases:
                gaps.extend(
                    self._gaps(
                        uow,
                        purchase,
                        by_purchase.get(purchase.id, []),
                        billing_of.get(purchase.id),
                        now,
                        repair,
                    )
                )
            if repair and gaps:
                uow.commit()
        if repair and gaps:
            self._committed()
        return len(purchases), gaps

    def _gaps(
        self,
        uow: UnitOfWork,
        purchase: Purchase,
        enrollments: list[Enrollment],
        billing: Billing | None,
        now: datetime,
        repair: bool,
    ) -> list[EntitlementGap]:
        products = purchase.product_ids
        offer = None
        if not products:
            offer = uow.offers.get(purchase.offer_id)
            products = offer.product_ids if offer is not None else ()
        should_end = rules.access_ends_at(billing) if billing is not None else None
        recurring = isinstance(purchase.plan, Subscription | PaymentPlan)
        gaps = []
        for product_id in products:
            held = [e for e in enrollments if e.product_id == product_id]
            if not held:
                if recurring and billing is None:
                    continue  # bought, but its billing never started: nothing to grant from
                window = self._entitled_window(uow, purchase, should_end, offer)
                if window is None or (window[1] is not None and window[1] <= now):
                    continue  # whatever was paid for is over
                gap = EntitlementGap(
                    purchase.id, purchase.member_id, product_id, "missing", None, window[1], repair
                )
                if repair:
                    self._grant_product(uow, purchase, product_id, *window)
                gaps.append(gap)
                continue
            active = [e for e in held if e.status is EnrollmentStatus.ACTIVE]
            if not active or should_end is None or billing is None:
                continue
            if not isinstance(billing.plan, Subscription):
                continue
            latest = max(active, key=lambda e: (e.ends_at is None, e.ends_at or now))
            if latest.ends_at is not None and latest.ends_at < should_end:
                gaps.append(
                    EntitlementGap(
                        purchase.id,
                        purchase.member_id,
                        product_id,
                        "short",
                        latest.ends_at,
                        should_end,
                        repair,
                    )
                )
                if repair:
                    uow.enrollments.update(attrs.evolve(latest, ends_at=should_end))
        return gaps

    @staticmethod
    def _entitled_window(
        uow: UnitOfWork, purchase: Purchase, should_end: datetime | None, offer: Offer | None
    ) -> tuple[datetime, datetime | None] | None:
        """When a paid purchase's access runs: its billing's end, or its offer's window.

        ``None`` when it never could (the offer is gone, or its window had
        already closed when the purchase was paid).
        """
        paid_at = purchase.paid_at or purchase.created_at
        if should_end is not None:
            return paid_at, should_end
        offer = offer or uow.offers.get(purchase.offer_id)
        if offer is None:
            return None
        try:
            return resolve(offer.access_window, paid_at)
        except ValidationError:
            return None

    def _revoke(
        self, uow: UnitOfWork, purchase: Purchase, product_ids: set[str] | None = None
    ) -> None:
        """End the access this purchase (and only this one) granted, to all or some products."""
        now = self._ctx.now()
        for enrollment in uow.enrollments.find({"purchase_id": purchase.id}):
            if product_ids is not None and enrollment.product_id not in product_ids:
                continue
            if enrollment.status is EnrollmentStatus.ACTIVE:
                uow.enrollments.update(
                    attrs.evolve(enrollment, status=EnrollmentStatus.REVOKED, revoked_at=now)
                )

    def _stop_billing(self, uow: UnitOfWork, purchase: Purchase) -> None:
        if not isinstance(purchase.plan, Subscription | PaymentPlan):
            return
        for billing in uow.billings.find({"purchase_id": purchase.id}):
            with contextlib.suppress(Conflict):  # already over
                uow.billings.update(rules.cancel(billing, self._ctx.now(), at_period_end=False))

    def _gateway(self, name: str) -> PaymentGateway:
        name = v.text("gateway", name, max_length=100)
        gateway = self._ctx.gateways.get(name)
        if gateway is None:
            raise NotFound("gateway", name, field="gateway")
        return gateway
