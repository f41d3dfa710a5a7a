"""A subscription sold with an access window: access ends by the window, and so does charging.

Access ends at the earlier of the window's end and the end of the paid period.
The period that contains the window's end is charged (in full: access is
given for part of it); no period that would start at or after it is, and the
billing is then ``COMPLETED``. A payment plan is charged in full whatever its
window, but gives no access past it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from membership_core import (
    AccessWindow,
    BillingPeriod,
    EndAfter,
    EndOn,
    Interval,
    Money,
    PaymentPlan,
    PurchaseStatus,
    Subscription,
)
from membership_core.domain import billing as rules
from membership_core.domain.billing import BillingStatus
from membership_core.testing import TestPortal
from membership_core.testing.gateway import ActionRequired

from .conftest import PortalFactory
from .helpers import Course, build_course

MONTHLY = Subscription(Money.of("20", "EUR"), BillingPeriod(Interval.MONTH))


def _sell(
    portal: TestPortal, plan: Subscription | PaymentPlan, window: AccessWindow
) -> tuple[Course, str]:
    course = build_course(portal, lessons=1)
    offer = portal.offers.create_offer(
        "Windowed", [course.product.id], plan=plan, access_window=window
    )
    portal.offers.publish(offer.id)
    return course, offer.id


def _can_view_at(portal: TestPortal, member_id: str, course: Course, at: datetime) -> bool:
    portal.clock.set(at)
    return portal.access.can_view(member_id, course.lessons[0].id).allowed


def _ends(portal: TestPortal, member_id: str) -> list[datetime | None]:
    return [e.ends_at for e in portal.access.enrollments(member_id)]


def test_a_40_day_window_on_a_monthly_subscription_gives_40_days(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, MONTHLY, AccessWindow(end=EndAfter(40)))
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    month = MONTHLY.period.advance(start, 1)
    assert _ends(portal, purchase.member_id) == [month]  # paid to the end of the period
    for months in (1, 2, 3):
        portal.clock.set(MONTHLY.period.advance(start, months))
        portal.tick()
    # The second period (it holds day 40) was charged; nothing after it.
    amounts = [p.amount for p in portal.billing.payments(purchase.id)]
    assert amounts == [Money.of("20", "EUR")] * 2
    assert portal.gateway.charged() == {"EUR": Money.of("40", "EUR")}
    assert _ends(portal, purchase.member_id) == [start + timedelta(days=40)]
    billing = portal.billing.get(purchase.id)
    assert billing.status is BillingStatus.COMPLETED
    assert billing.next_charge_at is None
    assert billing.access_until == start + timedelta(days=40)
    assert rules.access_ends_at(billing) == start + timedelta(days=40)
    assert portal.payments.reconcile() == []  # the window is not a "short" grant
    assert _ends(portal, purchase.member_id) == [start + timedelta(days=40)]
    assert _can_view_at(portal, purchase.member_id, course, start + timedelta(days=39))
    assert not _can_view_at(portal, purchase.member_id, course, start + timedelta(days=40))
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.PAID


def test_a_window_shorter_than_the_first_period_charges_no_renewal(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(default_gateway="test")
    course, offer_id = _sell(portal, MONTHLY, AccessWindow(end=EndAfter(10)))
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert portal.billing.get(purchase.id).status is BillingStatus.COMPLETED
    assert _ends(portal, purchase.member_id) == [start + timedelta(days=10)]
    portal.clock.set(MONTHLY.period.advance(start, 1))
    assert portal.tick().charges_succeeded == 0
    assert len(portal.billing.payments(purchase.id)) == 1
    assert not _can_view_at(portal, purchase.member_id, course, start + timedelta(days=10))


def test_a_window_ending_in_the_trial_charges_nothing(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    trial = Subscription(Money.of("20", "EUR"), BillingPeriod(Interval.MONTH), trial_days=14)
    course, offer_id = _sell(portal, trial, AccessWindow(end=EndAfter(7)))
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    portal.clock.set(start + timedelta(days=14))
    portal.tick()
    portal.clock.set(MONTHLY.period.advance(start + timedelta(days=14), 1))
    portal.tick()
    assert portal.billing.payments(purchase.id) == []
    assert portal.gateway.charged().get("EUR", Money.zero("EUR")) == Money.zero("EUR")
    assert _ends(portal, purchase.member_id) == [start + timedelta(days=7)]
    assert not _can_view_at(portal, purchase.member_id, course, start + timedelta(days=7))


def test_a_fixed_end_date_holds_when_the_first_payment_settles_later(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(default_gateway="test")
    start = portal.clock.now()
    end = start + timedelta(days=45)
    _, offer_id = _sell(portal, MONTHLY, AccessWindow(end=EndOn(end)))
    portal.gateway.script(ActionRequired())
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    assert purchase.gateway_reference is not None
    portal.clock.set(start + timedelta(days=2))
    paid_at = portal.clock.now()
    portal.gateway.settle(purchase.gateway_reference)
    for delivery in portal.gateway.take_webhooks():
        portal.payments.handle_webhook("test", delivery.body, delivery.headers)
    for months in (1, 2, 3):
        portal.clock.set(MONTHLY.period.advance(paid_at, months))
        portal.tick()
    assert len(portal.billing.payments(purchase.id)) == 2
    assert _ends(portal, purchase.member_id) == [end]
    assert portal.billing.get(purchase.id).status is BillingStatus.COMPLETED


def test_a_payment_plan_collects_every_installment_but_gives_no_access_past_its_window(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(default_gateway="test")
    plan = PaymentPlan(Money.of("90", "EUR"), 3, BillingPeriod(Interval.MONTH))
    _, offer_id = _sell(portal, plan, AccessWindow(end=EndAfter(40)))
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    for months in (1, 2, 3):
        portal.clock.set(plan.period.advance(start, months))
        portal.tick()
    assert portal.gateway.charged() == {"EUR": Money.of("90", "EUR")}
    assert portal.billing.get(purchase.id).status is BillingStatus.COMPLETED
    assert _ends(portal, purchase.member_id) == [start + timedelta(days=40)]


def test_a_subscription_without_window_still_renews(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    _, offer_id = _sell(portal, MONTHLY, AccessWindow())
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com")
    for months in (1, 2, 3):
        portal.clock.set(MONTHLY.period.advance(start, months))
        portal.tick()
    assert len(portal.billing.payments(purchase.id)) == 4
    assert portal.billing.get(purchase.id).access_until is None
    assert _ends(portal, purchase.member_id) == [MONTHLY.period.advance(start, 4)]


def test_domain_start_and_renewal_complete_at_the_window() -> None:
    bought = datetime(2024, 1, 31, 9, 30, tzinfo=UTC)
    until = bought + timedelta(days=40)
    billing, charges = rules.start(
        "bil_1",
        purchase_id="pur_1",
        member_id="mem_1",
        offer_id="off_1",
        plan=MONTHLY,
        coupon=None,
        now=bought,
        access_until=until,
    )
    assert len(charges) == 1
    assert billing.status is BillingStatus.ACTIVE
    renewal = rules.due(billing, MONTHLY.period.advance(bought, 1))
    assert renewal is not None
    renewed = rules.record_success(billing, renewal.sequence, renewal.due_at)
    assert renewed.status is BillingStatus.COMPLETED
    assert renewed.next_charge_at is None
    assert renewed.ended_at == until
    assert rules.due(renewed, MONTHLY.period.advance(bought, 2)) is None
    assert rules.access_ends_at(renewed) == until
