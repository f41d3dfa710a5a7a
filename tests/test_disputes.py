"""Disputes (chargebacks) reported by webhook: opened, won, lost, out of order."""

from __future__ import annotations

import pytest

from membership_core import (
    BillingPeriod,
    Interval,
    Money,
    OneTime,
    PaymentPlan,
    PurchaseStatus,
    Subscription,
    ValidationError,
)
from membership_core.domain.billing import BillingStatus
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import Course, build_course

MONTHLY = Subscription(Money.of("20", "EUR"), BillingPeriod(Interval.MONTH))
PLAN = PaymentPlan(Money.of("90", "EUR"), 3, BillingPeriod(Interval.MONTH))
ONCE = OneTime(Money.of("50", "EUR"))


def _sell(portal: TestPortal, plan: OneTime | Subscription | PaymentPlan) -> tuple[Course, str]:
    course = build_course(portal, lessons=1)
    offer = portal.offers.create_offer("Disputable", [course.product.id], plan=plan)
    portal.offers.publish(offer.id)
    return course, offer.id


def _deliver(portal: TestPortal) -> list[str]:
    """Deliver the queued webhooks; return what each stored event's outcome was."""
    for delivery in portal.gateway.take_webhooks():
        portal.payments.handle_webhook("test", delivery.body, delivery.headers)
    return [event.outcome or "" for event in portal.payments.webhook_events()]


def _can_view(portal: TestPortal, member_id: str, course: Course) -> bool:
    return portal.access.can_view(member_id, course.lessons[0].id).allowed


def _charges(portal: TestPortal) -> int:
    return len([p for p in portal.gateway.payments if p.status.value == "succeeded"])


def test_lost_dispute_ends_a_subscription_and_nothing_more_is_charged(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, MONTHLY)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.gateway_reference is not None
    portal.gateway.open_dispute(purchase.gateway_reference)
    _deliver(portal)
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.DISPUTED
    assert _can_view(portal, purchase.member_id, course)  # nothing decided yet
    portal.gateway.close_dispute(purchase.gateway_reference, won=False)
    _deliver(portal)
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.REFUNDED
    assert portal.billing.get(purchase.id).status is BillingStatus.CANCELED
    assert portal.billing.get(purchase.id).next_charge_at is None
    assert not _can_view(portal, purchase.member_id, course)
    charged = _charges(portal)
    for month in (1, 2):
        portal.clock.set(MONTHLY.period.advance(start, month))
        run = portal.tick()
        assert run.charges_succeeded == 0
    assert _charges(portal) == charged
    assert [p.sequence for p in portal.billing.payments(purchase.id)] == [1]
    assert not _can_view(portal, purchase.member_id, course)
    # Reconciliation does not hand the access back either.
    assert portal.payments.reconcile() == []


def test_lost_dispute_of_a_renewal_stops_the_subscription(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, MONTHLY)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    portal.clock.set(MONTHLY.period.advance(start, 1))
    portal.tick()
    (renewal,) = [p for p in portal.billing.payments(purchase.id) if p.sequence == 2]
    assert renewal.gateway_reference is not None
    portal.gateway.open_dispute(renewal.gateway_reference)
    portal.gateway.close_dispute(renewal.gateway_reference, won=False)
    _deliver(portal)
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.REFUNDED
    assert portal.billing.get(purchase.id).status is BillingStatus.CANCELED
    portal.clock.set(MONTHLY.period.advance(start, 2))
    portal.tick()
    assert [p.sequence for p in portal.billing.payments(purchase.id)] == [1, 2]
    assert not _can_view(portal, purchase.member_id, course)


def test_lost_dispute_ends_a_payment_plan(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, PLAN)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.gateway_reference is not None
    portal.gateway.open_dispute(purchase.gateway_reference)
    portal.gateway.close_dispute(purchase.gateway_reference, won=False)
    _deliver(portal)
    assert portal.billing.get(purchase.id).status is BillingStatus.CANCELED
    for month in (1, 2, 3):
        portal.clock.set(PLAN.period.advance(start, month))
        portal.tick()
    assert [p.sequence for p in portal.billing.payments(purchase.id)] == [1]
    assert portal.gateway.charged() == {"EUR": Money.of("30", "EUR")}
    assert not _can_view(portal, purchase.member_id, course)


def test_lost_dispute_keeps_access_when_the_portal_says_so(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    portal.payments.keep_access_on_dispute = True
    assert portal.payments.keep_access_on_dispute is True
    course, offer_id = _sell(portal, MONTHLY)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.gateway_reference is not None
    portal.gateway.open_dispute(purchase.gateway_reference)
    portal.gateway.close_dispute(purchase.gateway_reference, won=False)
    outcomes = _deliver(portal)
    assert "applied: dispute lost, billing stopped, access kept" in outcomes
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.REFUNDED
    # As refund(keep_access=True): the access stays, the billing stops all the same.
    assert _can_view(portal, purchase.member_id, course)
    assert portal.billing.get(purchase.id).status is BillingStatus.CANCELED
    portal.clock.set(MONTHLY.period.advance(start, 1))
    portal.tick()
    assert [p.sequence for p in portal.billing.payments(purchase.id)] == [1]


def test_keep_access_on_dispute_must_be_a_bool(open_portal: PortalFactory) -> None:
    portal = open_portal()
    with pytest.raises(ValidationError) as info:
        portal.payments.keep_access_on_dispute = "yes"  # type: ignore[assignment]
    assert info.value.field == "keep_access_on_dispute"
    assert portal.payments.keep_access_on_dispute is False


def test_won_dispute_restores_a_paid_purchase(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, MONTHLY)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.gateway_reference is not None
    portal.gateway.open_dispute(purchase.gateway_reference)
    portal.gateway.close_dispute(purchase.gateway_reference, won=True)
    _deliver(portal)
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.PAID
    assert _can_view(portal, purchase.member_id, course)
    portal.clock.set(MONTHLY.period.advance(start, 1))
    portal.tick()
    assert [p.sequence for p in portal.billing.payments(purchase.id)] == [1, 2]


def test_won_dispute_restores_a_partially_refunded_purchase(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, ONCE)
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.gateway_reference is not None
    portal.payments.refund(purchase.id, Money.of("10", "EUR"))
    _deliver(portal)
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.PARTIALLY_REFUNDED
    portal.gateway.open_dispute(purchase.gateway_reference)
    _deliver(portal)
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.DISPUTED
    portal.gateway.close_dispute(purchase.gateway_reference, won=True)
    _deliver(portal)
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.PARTIALLY_REFUNDED
    assert _can_view(portal, purchase.member_id, course)
    # Still refundable, as it was before the dispute.
    assert portal.payments.refund(purchase.id).status is PurchaseStatus.REFUNDED
    assert portal.payments.reconcile(repair=False) == []


def test_lost_dispute_delivered_before_its_opening_stays_lost(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, MONTHLY)
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.gateway_reference is not None
    portal.gateway.open_dispute(purchase.gateway_reference)
    portal.gateway.close_dispute(purchase.gateway_reference, won=False)
    opened, closed = portal.gateway.take_webhooks()
    for delivery in (closed, opened, closed, opened):
        portal.payments.handle_webhook("test", delivery.body, delivery.headers)
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.REFUNDED
    assert portal.billing.get(purchase.id).status is BillingStatus.CANCELED
    assert not _can_view(portal, purchase.member_id, course)
    outcomes = [event.outcome for event in portal.payments.webhook_events()]
    assert "ignored: the dispute was already closed" in outcomes


def test_won_dispute_delivered_before_its_opening_leaves_the_purchase_paid(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, ONCE)
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.gateway_reference is not None
    portal.gateway.open_dispute(purchase.gateway_reference)
    portal.gateway.close_dispute(purchase.gateway_reference, won=True)
    opened, closed = portal.gateway.take_webhooks()
    for delivery in (closed, opened):
        portal.payments.handle_webhook("test", delivery.body, delivery.headers)
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.PAID
    assert _can_view(portal, purchase.member_id, course)
