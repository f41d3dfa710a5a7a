"""What happens when the host or the gateway acts while a renewal charge is out.

A worker charges outside any transaction (see ``services/billing.py``), so a
cancel, a refund or the gateway's own webhook can land between the gateway
taking the money and our books recording its answer. Each test opens that
window on purpose and checks that no money goes unrecorded and no access
outlives the money.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from membership_core import BillingPeriod, Interval, Money, PurchaseStatus, Subscription
from membership_core.domain.billing import BillingStatus
from membership_core.domain.payments import Payment, PaymentState
from membership_core.ports.payments import OffSessionCharge, PaymentResult
from membership_core.testing import TestGateway, TestPortal
from membership_core.testing.gateway import Pending

from .conftest import PortalFactory
from .helpers import Course, build_course

MONTHLY = Subscription(Money.of("20", "EUR"), BillingPeriod(Interval.MONTH))


def _subscribe(portal: TestPortal) -> tuple[Course, str, str]:
    course = build_course(portal, lessons=1)
    offer = portal.offers.create_offer("Monthly", [course.product.id], plan=MONTHLY)
    portal.offers.publish(offer.id)
    purchase = portal.checkout.purchase(offer.id, email="a@example.com")
    portal.clock.set(MONTHLY.period.advance(portal.clock.now()))  # the renewal is due
    return course, purchase.id, purchase.member_id


def _while_out(
    monkeypatch: pytest.MonkeyPatch, gateway: TestGateway, action: Callable[[], object]
) -> None:
    """Run ``action`` once, after the gateway answered the next off-session charge and
    before the worker that asked has recorded the answer."""
    charge = gateway.charge_saved_method

    def interrupted(request: OffSessionCharge) -> PaymentResult:
        result = charge(request)
        monkeypatch.setattr(gateway, "charge_saved_method", charge)
        action()
        return result

    monkeypatch.setattr(gateway, "charge_saved_method", interrupted)


def _renewal(portal: TestPortal, purchase_id: str) -> Payment:
    (renewal,) = [p for p in portal.billing.payments(purchase_id) if p.sequence == 2]
    return renewal


def test_a_pending_renewal_cancelled_while_out_is_still_recorded_when_it_settles(
    open_portal: PortalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    portal = open_portal(default_gateway="test")
    course, purchase_id, member_id = _subscribe(portal)
    portal.gateway.script(Pending())
    _while_out(
        monkeypatch,
        portal.gateway,
        lambda: portal.billing.cancel(purchase_id, at_period_end=False),
    )
    portal.tick()
    renewal = _renewal(portal, purchase_id)
    assert renewal.state is PaymentState.PENDING
    assert renewal.gateway_reference is not None  # so its webhook can find it
    portal.gateway.settle(renewal.gateway_reference)
    portal.gateway.deliver_webhooks(portal)
    assert _renewal(portal, purchase_id).state is PaymentState.SUCCEEDED
    assert portal.billing.get(purchase_id).status is BillingStatus.CANCELED
    assert not portal.access.can_view(member_id, course.lessons[0].id).allowed
    # Taken after the cancellation, so the host can see and give it back.
    assert portal.payments.refund(purchase_id, Money.of("20", "EUR")).status in (
        PurchaseStatus.PARTIALLY_REFUNDED,
        PurchaseStatus.REFUNDED,
    )


def test_a_webhook_faster_than_the_worker_waits_for_its_answer(
    open_portal: PortalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    portal = open_portal(default_gateway="test")
    _, purchase_id, _ = _subscribe(portal)
    portal.gateway.script(Pending())
    receipts = []

    def settle_and_deliver() -> None:
        portal.gateway.settle(portal.gateway.payments[-1].reference)
        receipts.extend(portal.gateway.deliver_webhooks(portal))

    _while_out(monkeypatch, portal.gateway, settle_and_deliver)
    portal.tick()
    (receipt,) = receipts
    assert (receipt.received, receipt.applied) == (1, 0)  # kept, not dropped
    assert _renewal(portal, purchase_id).state is PaymentState.PENDING
    portal.tick()  # applies the waiting event now that the answer is recorded
    assert _renewal(portal, purchase_id).state is PaymentState.SUCCEEDED
    billing = portal.billing.get(purchase_id)
    assert billing.status is BillingStatus.ACTIVE
    assert billing.next_sequence == 3


def test_a_renewal_taken_during_a_whole_refund_is_kept_on_the_books(
    open_portal: PortalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    portal = open_portal(default_gateway="test")
    course, purchase_id, member_id = _subscribe(portal)
    refunded = []
    _while_out(
        monkeypatch,
        portal.gateway,
        lambda: refunded.append(portal.payments.refund(purchase_id)),
    )
    portal.tick()
    assert refunded[0].status is PurchaseStatus.REFUNDED  # all that had been paid then
    assert _renewal(portal, purchase_id).state is PaymentState.SUCCEEDED
    # The renewal's money is kept, so the purchase is not "refunded" any more...
    assert portal.checkout.get(purchase_id).status is PurchaseStatus.PARTIALLY_REFUNDED
    # ...but the refund ended the billing and the access for good.
    assert portal.billing.get(purchase_id).status is BillingStatus.CANCELED
    assert not portal.access.can_view(member_id, course.lessons[0].id).allowed
    assert portal.payments.refund(purchase_id).status is PurchaseStatus.REFUNDED
    assert len(portal.gateway.payments) == 2
    assert portal.gateway.charged() == {"EUR": Money.zero("EUR")}  # all 40 EUR given back
