"""Recurring billing: renewals, installments, dunning and cancellation. ``portal.billing``.

A subscription or payment plan bought at checkout gets a :class:`Billing`
that says which charge is next and when. :meth:`BillingService.charge_due`
(run by :meth:`Portal.tick`) collects due charges through the purchase's
gateway, off-session, with the method saved at checkout; each outcome moves
the billing's state machine (:mod:`membership_core.domain.billing`) and the
purchase's access with it, in one transaction.

Exactly once: a worker first *claims* a due billing (the row is locked with
``SKIP LOCKED`` and its next attempt moved past a lease) and records the
attempt's idempotency key, then calls the gateway outside any transaction,
then applies the answer. A worker that dies mid-way leaves the claim to
expire; the next one retries with the same key, which the gateway answers
without charging twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from .. import _validate as v
from ..domain import billing as rules
from ..domain.billing import Billing, BillingStatus, DunningPolicy
from ..domain.enrollments import EnrollmentStatus, Purchase, PurchaseStatus
from ..domain.payments import Payment, PaymentState
from ..domain.pricing import Charge, Subscription
from ..errors import ConfigurationError, Conflict
from ..ports.payments import OffSessionCharge, PaymentResult, PaymentStatus
from ..ports.storage import UnitOfWork
from ._context import Context, Service

__all__ = ["BillingRun", "BillingService"]

#: How long a claimed charge is left to its worker before another may retry it.
CLAIM_LEASE = timedelta(minutes=15)
#: How long to wait for a webhook before asking again about a pending charge.
PENDING_RECHECK = timedelta(days=1)
#: Billings that still collect charges.
_CHARGING = (BillingStatus.TRIALING, BillingStatus.ACTIVE, BillingStatus.PAST_DUE)


@attrs.frozen
class BillingRun:
    """What one :meth:`BillingService.charge_due` did."""

    #: Charges the gateway took.
    succeeded: int = 0
    #: Charges the gateway refused (dunning retries them).
    failed: int = 0
    #: Charges waiting for the buyer or a webhook.
    pending: int = 0
    #: Gateway calls that raised; retried with the same key after the lease.
    errors: int = 0


def _paid(payment: Payment, reference: str | None, now: datetime) -> Payment:
    """``payment`` taken by the gateway at ``now``."""
    return attrs.evolve(
        payment,
        state=PaymentState.SUCCEEDED,
        gateway_reference=reference,
        paid_at=now,
        failure_reason=None,
        updated_at=now,
    )


@attrs.frozen
class _Claim:
    billing: Billing
    purchase: Purchase
    payment: Payment


class BillingService(Service):
    """Subscriptions and payment plans after checkout. ``portal.billing``."""

    def __init__(self, context: Context, dunning: DunningPolicy | None = None) -> None:
        super().__init__(context)
        self._dunning = dunning or DunningPolicy()

    @property
    def dunning(self) -> DunningPolicy:
        """How failed charges are retried (8 attempts within 14 days by default)."""
        return self._dunning

    def get(self, purchase_id: str) -> Billing:
        """The billing of a subscription or payment-plan purchase, or ``NotFound``."""
        v.identifier("purchase_id", purchase_id, "pur")
        with self._ctx.uow(write=False) as uow:
            return self._billing(uow, purchase_id)

    def payments(self, purchase_id: str) -> list[Payment]:
        """Every charge of the purchase so far, in schedule order."""
        v.identifier("purchase_id", purchase_id, "pur")
        with self._ctx.uow(write=False) as uow:
            self._require(uow.purchases, "purchase", purchase_id, "purchase_id")
            return uow.payments.find({"purchase_id": purchase_id}, order_by=("sequence",))

    def cancel(self, purchase_id: str, *, at_period_end: bool = True) -> Billing:
        """Stop charging. A subscription keeps access to the end of the paid period.

        With ``at_period_end=False`` access ends now. Cancelling again the same
        way changes nothing. A gateway that renews subscriptions itself is told
        to stop too.
        """
        v.identifier("purchase_id", purchase_id, "pur")
        v.boolean("at_period_end", at_period_end)
        now = self._ctx.now()
        with self._ctx.uow() as uow:
            purchase = self._require_for_update(
                uow.purchases, "purchase", purchase_id, "purchase_id"
            )
            billing = self._billing(uow, purchase_id, for_update=True)
            canceled = rules.cancel(billing, now, at_period_end=at_period_end)
            if canceled == billing:
                return billing
            uow.billings.update(canceled)
            self._bound_access(uow, purchase, canceled)
            uow.commit()
        gateway = self._ctx.gateways.get(purchase.gateway)
        if gateway is not None and purchase.method_reference is not None:
            gateway.cancel(purchase.method_reference)
        self._committed()
        return canceled

    # -- scheduled work -------------------------------------------------------------

    def charge_due(self, *, batch_size: int = 100) -> BillingRun:
        """Collect every due renewal and installment, ``batch_size`` at a time.

        Run by :meth:`Portal.tick`; safe to run from several workers at once
        (each claims its own batch). Returns what happened.
        """
        v.integer("batch_size", batch_size, minimum=1)
        counts = {"succeeded": 0, "failed": 0, "pending": 0, "errors": 0}
        while True:
            found, claims = self._claim(batch_size)
            for claim in claims:
                result = self._call_gateway(claim)
                if result is None:
                    counts["errors"] += 1
                    continue
                with self._ctx.uow() as uow:
                    self._apply(uow, claim.purchase.id, claim.payment.sequence, result)
                    uow.commit()
                if result.status is PaymentStatus.SUCCEEDED:
                    counts["succeeded"] += 1
                elif result.status is PaymentStatus.DECLINED:
                    counts["failed"] += 1
                else:
                    counts["pending"] += 1
            if found < batch_size:
                if any(counts.values()):
                    # One dispatch for the whole run rather than one per charge.
                    self._committed()
                return BillingRun(**counts)

    def _claim(self, limit: int) -> tuple[int, list[_Claim]]:
        """Lock due billings, record each attempt, and lease them to this worker.

        Returns how many due rows were found and the claims made of them.
        """
        now = self._ctx.now()
        claims: list[_Claim] = []
        with self._ctx.uow() as uow:
            due = uow.billings.find_due("next_charge_at", now, limit=limit, claim=True)
            for billing in due:
                charge = rules.due(billing, now)
                if charge is None:
                    # Nothing to charge in this state; never look at it again.
                    uow.billings.update(attrs.evolve(billing, next_charge_at=None))
                    continue
                purchase = self._require(uow.purchases, "purchase", billing.purchase_id, "id")
                payment = self._attempt(uow, purchase, charge, now)
                uow.billings.update(attrs.evolve(billing, next_charge_at=now + CLAIM_LEASE))
                claims.append(_Claim(billing, purchase, payment))
            uow.commit()
        return len(due), claims

    def _attempt(
        self, uow: UnitOfWork, purchase: Purchase, charge: Charge, now: datetime
    ) -> Payment:
        """The payment row of ``charge`` with the attempt about to be made."""
        found = uow.payments.find({"purchase_id": purchase.id, "sequence": charge.sequence})
        if not found:
            payment = Payment(
                self._ctx.ids.new("pay"),
                purchase.id,
                charge.sequence,
                charge.kind,
                charge.amount,
                PaymentState.PENDING,
                1,
                purchase.gateway,
                None,
                charge.due_at,
                now,
                now,
            )
            uow.payments.add(payment)
            return payment
        payment = found[0]
        if payment.state is PaymentState.FAILED:
            # A refused attempt is final at the gateway: the retry is a new attempt, a
            # new payment there, whose reference the answer will bring.
            payment = attrs.evolve(
                payment,
                state=PaymentState.PENDING,
                attempts=payment.attempts + 1,
                gateway_reference=None,
                updated_at=now,
            )
            uow.payments.update(payment)
        # PENDING: an earlier attempt's outcome is unknown; ask again with its key.
        return payment

    def _call_gateway(self, claim: _Claim) -> PaymentResult | None:
        payment, purchase = claim.payment, claim.purchase
        if payment.amount.amount == 0:
            # A 100 % coupon: nothing to collect, and no reason to bother the gateway.
            return PaymentResult(PaymentStatus.SUCCEEDED, payment.amount)
        gateway = self._ctx.gateways.get(purchase.gateway)
        if gateway is None or purchase.method_reference is None:
            return PaymentResult(
                PaymentStatus.DECLINED,
                payment.amount,
                decline_reason="no saved payment method"
                if gateway is not None
                else f"gateway {purchase.gateway!r} is not configured",
            )
        try:
            return gateway.charge_saved_method(
                OffSessionCharge(
                    purchase_id=purchase.id,
                    amount=payment.amount,
                    method_reference=purchase.method_reference,
                    description=f"{payment.kind.value.replace('_', ' ')} {payment.sequence}",
                    idempotency_key=payment.idempotency_key,
                )
            )
        except ConfigurationError:
            raise
        except Exception:
            # The outcome is unknown; the lease expires and the same key is retried.
            return None

    def apply_result(self, purchase_id: str, sequence: int, result: PaymentResult) -> Billing:
        """Apply a gateway's answer for charge ``sequence`` of a recurring purchase.

        Used for the answers :meth:`charge_due` gets, and for outcomes that
        arrive later by webhook. An answer for a charge already settled
        changes nothing (webhooks arrive twice and out of order).
        """
        v.identifier("purchase_id", purchase_id, "pur")
        v.integer("sequence", sequence, minimum=1)
        with self._ctx.uow() as uow:
            updated = self._apply(uow, purchase_id, sequence, result)
            uow.commit()
        self._committed()
        return updated

    def _apply(
        self, uow: UnitOfWork, purchase_id: str, sequence: int, result: PaymentResult
    ) -> Billing:
        """:meth:`apply_result` inside the caller's unit of work (which commits)."""
        now = self._ctx.now()
        # Purchase before billing, in every writer (webhooks, refunds, cancel), so two
        # of them never wait on each other in opposite order.
        purchase = self._require_for_update(uow.purchases, "purchase", purchase_id, "purchase_id")
        billing = self._billing(uow, purchase_id, for_update=True)
        found = uow.payments.find({"purchase_id": purchase_id, "sequence": sequence})
        if not found:
            raise Conflict(
                f"charge {sequence} of {purchase_id!r} was never attempted", field="sequence"
            )
        payment = found[0]
        if payment.state is PaymentState.SUCCEEDED:
            return billing
        reference = result.reference or payment.gateway_reference
        if billing.status not in _CHARGING or sequence != billing.next_sequence:
            # The billing moved on (cancelled, refunded) while this charge was out.
            # Money the gateway took is still money taken: record it, so it shows
            # in payments() and can be refunded, without reopening the billing.
            if result.status is PaymentStatus.SUCCEEDED:
                uow.payments.update(_paid(payment, reference, now))
                if purchase.status is PurchaseStatus.REFUNDED:
                    # Given back in full before this charge landed: part of the
                    # money is kept again, and the books say so.
                    uow.purchases.update(
                        attrs.evolve(purchase, status=PurchaseStatus.PARTIALLY_REFUNDED)
                    )
            elif reference != payment.gateway_reference:
                # Still pending: its webhook must find the payment by reference.
                uow.payments.update(
                    attrs.evolve(payment, gateway_reference=reference, updated_at=now)
                )
            return billing
        if result.status is PaymentStatus.SUCCEEDED:
            payment = _paid(payment, reference, now)
            updated = rules.record_success(billing, sequence, now)
        elif result.status is PaymentStatus.DECLINED:
            payment = attrs.evolve(
                payment,
                state=PaymentState.FAILED,
                gateway_reference=reference,
                failure_reason=result.decline_reason or "declined",
                updated_at=now,
            )
            updated = rules.record_failure(billing, sequence, now, self._dunning)
        else:
            payment = attrs.evolve(payment, gateway_reference=reference, updated_at=now)
            # Wait for the webhook, but not forever: then ask again with the same key.
            updated = attrs.evolve(billing, next_charge_at=now + PENDING_RECHECK)
        uow.payments.update(payment)
        uow.billings.update(updated)
        self._bound_access(uow, purchase, updated)
        return updated

    def _bound_access(self, uow: UnitOfWork, purchase: Purchase, billing: Billing) -> None:
        """Make the purchase's enrollments end where the billing says access ends.

        A subscription's access follows its paid period, both ways (a renewal
        extends it, an immediate cancellation cuts it), but never past the end
        of the access window it was sold with (``Billing.access_until``; the
        billing completes instead of charging a period past it). A payment
        plan keeps the window it was sold with until it is cancelled or defaults.
        """
        ends_at = rules.access_ends_at(billing)
        if ends_at is None:
            return
        subscription = isinstance(billing.plan, Subscription)
        for enrollment in uow.enrollments.find({"purchase_id": purchase.id}):
            if enrollment.status is not EnrollmentStatus.ACTIVE:
                continue
            new_end = ends_at
            if not subscription and enrollment.ends_at is not None:
                new_end = min(enrollment.ends_at, ends_at)
            if enrollment.ends_at != new_end:
                uow.enrollments.update(attrs.evolve(enrollment, ends_at=new_end))

    def _billing(self, uow: UnitOfWork, purchase_id: str, *, for_update: bool = False) -> Billing:
        found = uow.billings.find({"purchase_id": purchase_id}, limit=1)
        if not found:
            self._require(uow.purchases, "purchase", purchase_id, "purchase_id")
            raise Conflict(
                f"purchase {purchase_id!r} has no recurring billing (it is not a "
                "subscription or payment plan, or its first payment is pending)",
                field="purchase_id",
            )
        billing = found[0]
        if for_update:
            locked = uow.billings.get_for_update(billing.id)
            assert locked is not None  # found a moment ago in this transaction
            billing = locked
        return billing
