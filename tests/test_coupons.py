"""Coupons at checkout: discounts, limits, expiry, offers, and redemption counts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from membership_core import (
    AmountOff,
    BillingPeriod,
    Conflict,
    Coupon,
    Forever,
    Interval,
    Money,
    NotFound,
    OneTime,
    PaymentDeclined,
    PaymentPlan,
    PercentOff,
    PurchaseStatus,
    Repeating,
    Subscription,
    ValidationError,
)
from membership_core.testing import TestPortal
from membership_core.testing.gateway import ActionRequired, Decline, Pending

from .conftest import PortalFactory
from .helpers import build_course

PRICE = Money.of("40", "EUR")
ONE_TIME = OneTime(PRICE)


def _offer(portal: TestPortal, plan: OneTime | Subscription = ONE_TIME) -> str:
    course = build_course(portal, lessons=1, title=f"Course {len(portal.offers.search(''))}")
    offer = portal.offers.create_offer("Paid", [course.product.id], plan=plan)
    return portal.offers.publish(offer.id).id


def test_percent_coupon_lowers_a_one_time_price(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    offer_id = _offer(portal)
    portal.offers.create_coupon(Coupon("quarter", PercentOff(25)))
    purchase = portal.checkout.purchase(offer_id, email="a@example.com", coupon_code=" Quarter ")
    assert purchase.amount == Money.of("30", "EUR")
    assert purchase.coupon_code == "QUARTER"
    assert portal.gateway.charged() == {"EUR": Money.of("30", "EUR")}
    assert portal.offers.coupon("quarter").redemptions == 1


def test_a_full_discount_needs_no_gateway(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    offer_id = _offer(portal)
    portal.offers.create_coupon(Coupon("FREEBIE", PercentOff(100)))
    purchase = portal.checkout.purchase(offer_id, email="a@example.com", coupon_code="FREEBIE")
    assert purchase.status is PurchaseStatus.PAID
    assert purchase.gateway == "manual"
    assert portal.gateway.payments == ()


def test_repeating_coupon_discounts_the_first_periods_of_a_subscription(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(default_gateway="test")
    monthly = Subscription(Money.of("20", "EUR"), BillingPeriod(Interval.MONTH))
    offer_id = _offer(portal, monthly)
    portal.offers.create_coupon(Coupon("TWOHALF", PercentOff(50), Repeating(2)))
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer_id, email="a@example.com", coupon_code="twohalf")
    for month in (1, 2):
        portal.clock.set(monthly.period.advance(start, month))
        portal.tick()
    amounts = [p.amount for p in portal.billing.payments(purchase.id)]
    assert amounts == [Money.of(x, "EUR") for x in ("10", "10", "20")]


@pytest.mark.parametrize(
    ("coupon", "problem"),
    [
        (Coupon("LIMITED", AmountOff(Money.of("5", "EUR")), max_redemptions=1), "limit"),
        (Coupon("DOLLARS", AmountOff(Money.of("5", "USD"))), "USD"),
        (Coupon("OTHER", PercentOff(10), offer_ids=["off_999999"]), "not valid"),
    ],
)
def test_coupons_that_do_not_apply_are_refused_and_charge_nothing(
    open_portal: PortalFactory, coupon: Coupon, problem: str
) -> None:
    portal = open_portal(default_gateway="test")
    offer_id = _offer(portal)
    if coupon.offer_ids is not None:
        other = _offer(portal)
        coupon = Coupon(coupon.code, coupon.discount, offer_ids=[other])
    portal.offers.create_coupon(coupon)
    if coupon.max_redemptions is not None:
        portal.checkout.purchase(offer_id, email="first@example.com", coupon_code=coupon.code)
    charged_before = portal.gateway.charged()
    with pytest.raises(ValidationError, match=problem) as info:
        portal.checkout.purchase(offer_id, email="a@example.com", coupon_code=coupon.code)
    assert info.value.field == "coupon_code"
    assert portal.gateway.charged() == charged_before
    with pytest.raises(NotFound):
        portal.members.find_by_email("a@example.com")


def test_expired_inactive_and_unknown_coupons(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    offer_id = _offer(portal)
    until = portal.clock.now() + timedelta(days=1)
    portal.offers.create_coupon(Coupon("SOON", PercentOff(10), Forever(), expires_at=until))
    portal.offers.create_coupon(Coupon("PAUSED", PercentOff(10)))
    portal.offers.set_coupon_active("paused", False)
    portal.clock.set(until)
    for code in ("SOON", "PAUSED", "NOSUCH", "x"):
        with pytest.raises(ValidationError) as info:
            portal.checkout.purchase(offer_id, email="a@example.com", coupon_code=code)
        assert info.value.field == "coupon_code"
    assert portal.gateway.payments == ()


def test_a_declined_payment_gives_the_use_back(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    offer_id = _offer(portal)
    portal.offers.create_coupon(Coupon("ONCE", PercentOff(10), max_redemptions=1))
    portal.gateway.script(Decline("card_declined"))
    with pytest.raises(PaymentDeclined):
        portal.checkout.purchase(offer_id, email="a@example.com", coupon_code="ONCE")
    assert portal.offers.coupon("ONCE").redemptions == 0
    portal.checkout.purchase(offer_id, email="a@example.com", coupon_code="ONCE")
    assert portal.offers.coupon("ONCE").redemptions == 1


def test_coupon_admin_validation(open_portal: PortalFactory) -> None:
    portal = open_portal()
    portal.offers.create_coupon(Coupon("SAME", PercentOff(10)))
    with pytest.raises(Conflict) as conflict:
        portal.offers.create_coupon(Coupon("same", PercentOff(20)))
    assert conflict.value.field == "code"
    with pytest.raises(NotFound) as missing:
        portal.offers.create_coupon(Coupon("GHOST", PercentOff(10), offer_ids=["off_424242"]))
    assert missing.value.field == "offer_ids"
    with pytest.raises(ValidationError) as bad:
        portal.offers.create_coupon("SAME")  # type: ignore[arg-type]
    assert bad.value.field == "coupon"
    with pytest.raises(NotFound):
        portal.offers.coupon("NOPE")
    assert [c.code for c in portal.offers.coupons()] == ["SAME"]


def test_the_last_use_goes_to_one_buyer_only(sqlite_url: str) -> None:
    from membership_core.testing import make_test_portal

    portal = make_test_portal(sqlite_url, default_gateway="test")
    try:
        offer_id = _offer(portal)
        portal.offers.create_coupon(Coupon("LAST", PercentOff(50), max_redemptions=1))
        barrier = threading.Barrier(6)
        outcomes: list[str] = []

        def buy(number: int) -> None:
            barrier.wait()
            try:
                portal.checkout.purchase(
                    offer_id, email=f"b{number}@example.com", coupon_code="LAST"
                )
                outcomes.append("bought")
            except ValidationError as error:
                outcomes.append(error.field or "")

        threads = [threading.Thread(target=buy, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["bought"] + ["coupon_code"] * 5
        assert portal.offers.coupon("LAST").redemptions == 1
    finally:
        portal.close()


def _settle_by_webhook(portal: TestPortal, purchase_id: str) -> None:
    reference = portal.checkout.get(purchase_id).gateway_reference
    assert reference is not None
    portal.gateway.settle(reference)
    for delivery in portal.gateway.take_webhooks():
        portal.payments.handle_webhook("test", delivery.body, delivery.headers)


def _settle_by_confirmation(portal: TestPortal, purchase_id: str) -> None:
    portal.checkout.confirm_payment(purchase_id)


@pytest.mark.parametrize("settle", [_settle_by_webhook, _settle_by_confirmation])
@pytest.mark.parametrize("later", [ActionRequired, Pending])
def test_a_forever_coupon_survives_a_first_payment_settled_later(
    open_portal: PortalFactory,
    settle: Callable[[TestPortal, str], None],
    later: type[ActionRequired] | type[Pending],
) -> None:
    portal = open_portal(default_gateway="test")
    monthly = Subscription(Money.of("20", "EUR"), BillingPeriod(Interval.MONTH))
    offer_id = _offer(portal, monthly)
    half = Coupon("HALF", PercentOff(50), Forever())
    portal.offers.create_coupon(half)
    portal.gateway.script(later())
    purchase = portal.checkout.purchase(offer_id, email="a@example.com", coupon_code="half")
    assert purchase.status is PurchaseStatus.PENDING
    assert purchase.amount == Money.of("10", "EUR")
    portal.clock.advance(timedelta(hours=1))
    settled_at = portal.clock.now()
    settle(portal, purchase.id)
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.PAID
    assert portal.billing.get(purchase.id).coupon == half
    for month in (1, 2):
        portal.clock.set(monthly.period.advance(settled_at, month))
        portal.tick()
    amounts = [p.amount for p in portal.billing.payments(purchase.id)]
    assert amounts == [Money.of("10", "EUR")] * 3
    assert portal.offers.coupon("HALF").redemptions == 1


@pytest.mark.parametrize("settle", [_settle_by_webhook, _settle_by_confirmation])
def test_a_repeating_coupon_counts_its_periods_when_the_first_payment_settles_later(
    open_portal: PortalFactory, settle: Callable[[TestPortal, str], None]
) -> None:
    portal = open_portal(default_gateway="test")
    monthly = Subscription(Money.of("20", "EUR"), BillingPeriod(Interval.MONTH))
    offer_id = _offer(portal, monthly)
    portal.offers.create_coupon(Coupon("TWOHALF", PercentOff(50), Repeating(2)))
    portal.gateway.script(Pending())
    purchase = portal.checkout.purchase(offer_id, email="a@example.com", coupon_code="twohalf")
    # Neither expiring nor being switched off since checkout takes the promise back.
    portal.offers.set_coupon_active("TWOHALF", False)
    start = portal.clock.now()
    settle(portal, purchase.id)
    for month in (1, 2, 3):
        portal.clock.set(monthly.period.advance(start, month))
        portal.tick()
    amounts = [p.amount for p in portal.billing.payments(purchase.id)]
    assert amounts == [Money.of(x, "EUR") for x in ("10", "10", "20", "20")]


def test_a_payment_plan_settled_later_keeps_its_coupon(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    plan = PaymentPlan(Money.of("90", "EUR"), 3, BillingPeriod(Interval.MONTH))
    course = build_course(portal, lessons=1, title="Plan")
    offer = portal.offers.create_offer("Plan", [course.product.id], plan=plan)
    portal.offers.publish(offer.id)
    portal.offers.create_coupon(Coupon("TENOFF", AmountOff(Money.of("10", "EUR")), Forever()))
    portal.gateway.script(ActionRequired())
    purchase = portal.checkout.purchase(offer.id, email="a@example.com", coupon_code="tenoff")
    start = portal.clock.now()
    _settle_by_webhook(portal, purchase.id)
    for month in (1, 2):
        portal.clock.set(plan.period.advance(start, month))
        portal.tick()
    amounts = [p.amount for p in portal.billing.payments(purchase.id)]
    assert amounts == [Money.of("20", "EUR")] * 3
