"""Subscriptions and payment plans end to end: checkout, tick, dunning, cancel, webhooks."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from membership_core import (
    AccessReason,
    BillingPeriod,
    ConfigurationError,
    Interval,
    InvalidToken,
    Money,
    PaymentPlan,
    PurchaseStatus,
    Subscription,
    ValidationError,
)
from membership_core.domain.billing import BillingStatus, DunningPolicy
from membership_core.domain.payments import PaymentState
from membership_core.ports.payments import GatewayCapabilities, GatewayEventType
from membership_core.testing import TestGateway, TestPortal
from membership_core.testing.gateway import ActionRequired, Decline, Pending, Raise

from .conftest import PortalFactory
from .helpers import Course, build_course

MONTHLY = Subscription(Money.of("20", "EUR"), BillingPeriod(Interval.MONTH))


def _sell(portal: TestPortal, plan: Subscription | PaymentPlan) -> tuple[Course, str]:
    course = build_course(portal, lessons=1)
    offer = portal.offers.create_offer("Recurring", [course.product.id], plan=plan)
    portal.offers.publish(offer.id)
    return course, offer.id


def _charged(gateway: TestGateway) -> Money:
    return gateway.charged().get("EUR", Money.zero("EUR"))


def test_subscription_renews_each_period_and_extends_access(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, MONTHLY)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.status is PurchaseStatus.PAID
    assert purchase.amount == Money.of("20", "EUR")
    billing = portal.billing.get(purchase.id)
    assert billing.status is BillingStatus.ACTIVE
    assert billing.paid_through == MONTHLY.period.advance(start)
    (enrollment,) = portal.access.enrollments(purchase.member_id)
    assert enrollment.ends_at == billing.paid_through

    lesson = course.lessons[0].id
    for month in (1, 2, 3):
        portal.clock.set(MONTHLY.period.advance(start, month))
        report = portal.tick()
        assert report.charges_succeeded == 1
        assert portal.access.can_view(purchase.member_id, lesson).allowed
    assert _charged(portal.gateway) == Money.of("80", "EUR")
    assert portal.tick().charges_succeeded == 0  # nothing due twice
    payments = portal.billing.payments(purchase.id)
    assert [p.sequence for p in payments] == [1, 2, 3, 4]
    assert all(p.state is PaymentState.SUCCEEDED for p in payments)
    (enrollment,) = portal.access.enrollments(purchase.member_id)
    assert enrollment.ends_at == MONTHLY.period.advance(start, 4)


def test_trial_and_setup_fee(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    plan = Subscription(
        Money.of("20", "EUR"),
        BillingPeriod(Interval.MONTH),
        trial_days=14,
        setup_fee=Money.of("5", "EUR"),
    )
    course, offer_id = _sell(portal, plan)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.amount == Money.of("5", "EUR")  # the fee now, the first period later
    billing = portal.billing.get(purchase.id)
    assert billing.status is BillingStatus.TRIALING
    assert billing.paid_through == start + timedelta(days=14)
    assert portal.access.can_view(purchase.member_id, course.lessons[0].id).allowed
    portal.clock.set(start + timedelta(days=14))
    assert portal.tick().charges_succeeded == 1
    assert portal.billing.get(purchase.id).status is BillingStatus.ACTIVE
    assert _charged(portal.gateway) == Money.of("25", "EUR")


def test_payment_plan_collects_the_exact_total_then_stops(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    plan = PaymentPlan(Money.of("100", "EUR"), 3, BillingPeriod(Interval.MONTH))
    course, offer_id = _sell(portal, plan)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.amount == Money.of("33.34", "EUR")
    for month in range(1, 6):
        portal.clock.set(plan.period.advance(start, month))
        portal.tick()
    assert _charged(portal.gateway) == Money.of("100", "EUR")
    assert portal.billing.get(purchase.id).status is BillingStatus.COMPLETED
    amounts = [p.amount for p in portal.billing.payments(purchase.id)]
    assert amounts == [Money.of(x, "EUR") for x in ("33.34", "33.33", "33.33")]
    (enrollment,) = portal.access.enrollments(purchase.member_id)
    assert enrollment.ends_at is None  # paid off: lifetime, as the window says
    assert portal.access.can_view(purchase.member_id, course.lessons[0].id).allowed


def test_dunning_retries_then_defaults_and_ends_access(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, MONTHLY)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.method_reference is not None
    portal.gateway.decline_method(purchase.method_reference, "expired_card")
    portal.clock.set(MONTHLY.period.advance(start))
    attempts = 0
    lesson = course.lessons[0].id
    for day in range(40):  # daily ticks for 40 days: far past the 14-day dunning window
        attempts += portal.tick().charges_failed
        # Past due keeps access while retries are scheduled, and not after.
        assert portal.access.can_view(purchase.member_id, lesson).allowed is (day < 14)
        portal.clock.advance(days=1)
    assert attempts == portal.billing.dunning.max_attempts == 8
    billing = portal.billing.get(purchase.id)
    assert billing.status is BillingStatus.DEFAULTED
    assert billing.next_charge_at is None
    (payment,) = [p for p in portal.billing.payments(purchase.id) if p.sequence == 2]
    assert payment.state is PaymentState.FAILED
    assert payment.attempts == 8
    assert payment.failure_reason == "expired_card"
    reason = portal.access.can_view(purchase.member_id, lesson).reason
    assert reason is AccessReason.PAYMENT_PAST_DUE
    assert _charged(portal.gateway) == Money.of("20", "EUR")


def test_a_paid_retry_restores_access(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, MONTHLY)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    portal.gateway.script(*[Decline("insufficient_funds")] * 7)
    portal.clock.set(MONTHLY.period.advance(start))
    lesson = course.lessons[0].id
    for _ in range(7):
        portal.tick()
        assert portal.access.can_view(purchase.member_id, lesson).allowed
        portal.clock.set(portal.billing.get(purchase.id).next_charge_at)  # type: ignore[arg-type]
    assert portal.tick().charges_succeeded == 1  # the 8th and last attempt
    billing = portal.billing.get(purchase.id)
    assert billing.status is BillingStatus.ACTIVE
    (enrollment,) = portal.access.enrollments(purchase.member_id)
    assert enrollment.ends_at == billing.paid_through == MONTHLY.period.advance(start, 2)


def test_a_retry_that_succeeds_keeps_the_calendar(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    _, offer_id = _sell(portal, MONTHLY)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    portal.gateway.script(Decline("insufficient_funds"))
    portal.clock.set(MONTHLY.period.advance(start))
    assert portal.tick().charges_failed == 1
    assert portal.billing.get(purchase.id).status is BillingStatus.PAST_DUE
    portal.clock.advance(days=3)
    assert portal.tick().charges_succeeded == 1
    billing = portal.billing.get(purchase.id)
    assert billing.status is BillingStatus.ACTIVE
    assert billing.failed_attempts == 0
    assert billing.paid_through == MONTHLY.period.advance(start, 2)  # not moved by 3 days


def test_cancel_at_period_end_keeps_paid_access(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, MONTHLY)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    canceled = portal.billing.cancel(purchase.id)
    assert canceled.status is BillingStatus.CANCELED
    assert portal.billing.cancel(purchase.id) == canceled  # idempotent
    assert purchase.method_reference in portal.gateway.cancelled
    lesson = course.lessons[0].id
    portal.clock.set(MONTHLY.period.advance(start) - timedelta(seconds=1))
    assert portal.access.can_view(purchase.member_id, lesson).allowed
    portal.clock.advance(days=2)
    assert portal.tick().charges_succeeded == 0
    assert portal.access.can_view(purchase.member_id, lesson).reason is AccessReason.EXPIRED
    assert _charged(portal.gateway) == Money.of("20", "EUR")


def test_cancel_now_ends_access_now(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, MONTHLY)
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    portal.billing.cancel(purchase.id, at_period_end=False)
    reason = portal.access.can_view(purchase.member_id, course.lessons[0].id).reason
    assert reason is AccessReason.EXPIRED


def test_recurring_plans_need_a_gateway_that_charges_off_session(
    open_portal: PortalFactory,
) -> None:
    one_time_only = TestGateway("oneshot", capabilities=GatewayCapabilities())
    portal = open_portal(gateways={"oneshot": one_time_only}, default_gateway="oneshot")
    _, offer_id = _sell(portal, MONTHLY)
    with pytest.raises(ConfigurationError, match="off-session"):
        portal.checkout.purchase(offer_id, email="a@example.com")
    assert one_time_only.payments == ()
    assert portal.members.list() == []


def test_repricing_leaves_existing_subscribers_on_their_price(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    _, offer_id = _sell(portal, MONTHLY)
    start = portal.clock.now()
    portal.checkout.purchase(offer_id, email="a@example.com")
    dearer = Subscription(Money.of("30", "EUR"), BillingPeriod(Interval.MONTH))
    portal.offers.set_pricing(offer_id, dearer)
    portal.clock.set(MONTHLY.period.advance(start))
    portal.tick()
    assert _charged(portal.gateway) == Money.of("40", "EUR")
    newcomer = portal.checkout.purchase(offer_id, email="b@example.com")
    assert newcomer.amount == Money.of("30", "EUR")


def test_gateway_error_is_retried_with_the_same_key_and_charges_once(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(default_gateway="test")
    _, offer_id = _sell(portal, MONTHLY)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    portal.gateway.script(Raise(TimeoutError("provider timed out")))
    portal.clock.set(MONTHLY.period.advance(start))
    report = portal.tick()
    assert (report.charges_succeeded, report.charges_failed) == (0, 0)
    assert portal.tick().charges_succeeded == 0  # leased to the worker that failed
    portal.clock.advance(minutes=16)
    assert portal.tick().charges_succeeded == 1
    (renewal,) = [p for p in portal.billing.payments(purchase.id) if p.sequence == 2]
    assert renewal.attempts == 1  # same attempt, same key
    assert _charged(portal.gateway) == Money.of("40", "EUR")


def test_pending_renewal_is_settled_by_webhook_once(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    _, offer_id = _sell(portal, MONTHLY)
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    portal.gateway.script(Pending())
    portal.clock.set(MONTHLY.period.advance(start))
    assert portal.tick().charges_pending == 1
    (renewal,) = [p for p in portal.billing.payments(purchase.id) if p.sequence == 2]
    assert renewal.state is PaymentState.PENDING
    assert renewal.gateway_reference is not None
    portal.gateway.settle(renewal.gateway_reference)
    (delivery,) = portal.gateway.take_webhooks()
    first = portal.payments.handle_webhook("test", delivery.body, delivery.headers)
    again = portal.payments.handle_webhook("test", delivery.body, delivery.headers)
    assert (first.received, first.applied, again.duplicates) == (1, 1, 1)
    billing = portal.billing.get(purchase.id)
    assert billing.status is BillingStatus.ACTIVE
    assert billing.paid_through == MONTHLY.period.advance(start, 2)
    # A late, contradicting event for the settled charge changes nothing.
    contradiction = attrs.evolve(
        portal.gateway.events[-1],
        id="evt_late_failure",
        type=GatewayEventType.PAYMENT_FAILED,
        failure_reason="card_declined",
    )
    late = portal.gateway.webhook_for(contradiction)
    portal.payments.handle_webhook("test", late.body, late.headers)
    assert portal.billing.get(purchase.id) == billing


def test_first_payment_needing_action_is_granted_by_webhook(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, MONTHLY)
    portal.gateway.script(ActionRequired())
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.status is PurchaseStatus.PENDING
    lesson = course.lessons[0].id
    assert not portal.access.can_view(purchase.member_id, lesson).allowed
    assert purchase.gateway_reference is not None
    portal.gateway.settle(purchase.gateway_reference)
    (delivery,) = portal.gateway.take_webhooks()
    portal.payments.handle_webhook("test", delivery.body, delivery.headers)
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.PAID
    assert portal.billing.get(purchase.id).status is BillingStatus.ACTIVE
    assert portal.access.can_view(purchase.member_id, lesson).allowed


def test_failed_first_payment_marks_the_purchase_failed(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    _, offer_id = _sell(portal, MONTHLY)
    portal.gateway.script(Pending())
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.gateway_reference is not None
    portal.gateway.settle(purchase.gateway_reference, succeed=False, reason="bank_refused")
    (delivery,) = portal.gateway.take_webhooks()
    portal.payments.handle_webhook("test", delivery.body, delivery.headers)
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.FAILED
    assert portal.access.enrollments(purchase.member_id) == []


def test_unverified_webhooks_store_nothing(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    _, offer_id = _sell(portal, MONTHLY)
    portal.gateway.script(Pending())
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.gateway_reference is not None
    portal.gateway.settle(purchase.gateway_reference)
    (delivery,) = portal.gateway.take_webhooks()
    with pytest.raises(InvalidToken):
        portal.payments.handle_webhook("test", delivery.body + b" ", delivery.headers)
    portal.clock.advance(seconds=301)
    with pytest.raises(InvalidToken):
        portal.payments.handle_webhook("test", delivery.body, delivery.headers)
    assert portal.payments.webhook_events() == []
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.PENDING


def test_the_dunning_policy_is_the_hosts_choice(open_portal: PortalFactory) -> None:
    portal = open_portal(
        default_gateway="test", dunning=DunningPolicy(max_attempts=3, within=timedelta(days=4))
    )
    _, offer_id = _sell(portal, MONTHLY)
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.method_reference is not None
    portal.gateway.decline_method(purchase.method_reference)
    portal.clock.set(portal.billing.get(purchase.id).paid_through)  # type: ignore[arg-type]
    failures = 0
    for _ in range(10):
        failures += portal.tick().charges_failed
        portal.clock.advance(days=1)
    assert failures == 3
    assert portal.billing.get(purchase.id).status is BillingStatus.DEFAULTED
    with pytest.raises(ValidationError) as info:
        open_portal(dunning=8)
    assert info.value.field == "dunning"
