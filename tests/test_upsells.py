"""The upsell flow: after a paid checkout, a one-click upsell, then a downsell if declined."""

from __future__ import annotations

import pytest

from membership_core import (
    BillingPeriod,
    Conflict,
    Interval,
    Money,
    NotFound,
    OneTime,
    PaymentDeclined,
    PurchaseStatus,
    Subscription,
    ValidationError,
)
from membership_core.testing import TestPortal
from membership_core.testing.gateway import Decline, Pending

from .conftest import PortalFactory
from .helpers import Course, build_course


def _funnel(
    portal: TestPortal, upsell_plan: OneTime | Subscription | None = None
) -> tuple[list[Course], list[str]]:
    """Main offer -> one-click upsell -> downsell, each selling its own course."""
    courses = [build_course(portal, lessons=1, title=t) for t in ("Main", "Upsell", "Downsell")]
    plans = [
        OneTime(Money.of("50", "EUR")),
        upsell_plan or OneTime(Money.of("30", "EUR")),
        OneTime(Money.of("10", "EUR")),
    ]
    ids = []
    for course, plan in zip(courses, plans, strict=True):
        offer = portal.offers.create_offer(course.product.title, [course.product.id], plan=plan)
        ids.append(portal.offers.publish(offer.id).id)
    portal.offers.set_upsell(ids[0], ids[1], kind="one_click")
    portal.offers.set_upsell(ids[1], ids[2], kind="downsell")
    return courses, ids


def _can_view(portal: TestPortal, member_id: str, course: Course) -> bool:
    return portal.access.can_view(member_id, course.lessons[0].id).allowed


def test_one_click_upsell_charges_the_saved_method_once(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    courses, (main, upsell, _) = _funnel(portal)
    first = portal.checkout.purchase(main, email="a@example.com")
    assert first.method_reference is not None  # saved because the offer has an upsell
    presented = portal.checkout.upsell_for(first.id)
    assert presented is not None
    assert presented.id == upsell
    bought = portal.checkout.accept_upsell(first.id, upsell)
    assert bought.upsell_of == first.id
    assert bought.member_id == first.member_id
    assert bought.amount == Money.of("30", "EUR")
    assert portal.checkout.accept_upsell(first.id, upsell) == bought  # a double click
    assert portal.gateway.charged() == {"EUR": Money.of("80", "EUR")}
    (charge,) = [p for p in portal.gateway.payments if p.off_session]
    assert charge.method_reference == first.method_reference
    assert _can_view(portal, first.member_id, courses[1])
    # Its own line: refunding the upsell leaves the first purchase's access alone.
    portal.payments.refund(bought.id)
    assert not _can_view(portal, first.member_id, courses[1])
    assert _can_view(portal, first.member_id, courses[0])


def test_declining_presents_the_downsell(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    courses, (main, upsell, downsell) = _funnel(portal)
    first = portal.checkout.purchase(main, email="a@example.com")
    offered = portal.checkout.decline_upsell(first.id, upsell)
    assert offered is not None
    assert offered.id == downsell
    assert portal.checkout.decline_upsell(first.id, downsell) is None
    bought = portal.checkout.accept_upsell(first.id, downsell)
    assert bought.amount == Money.of("10", "EUR")
    assert _can_view(portal, first.member_id, courses[2])
    assert not _can_view(portal, first.member_id, courses[1])


def test_no_upsell_before_the_first_payment_succeeded(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    _, (main, upsell, _) = _funnel(portal)
    portal.gateway.script(Pending())
    first = portal.checkout.purchase(main, email="a@example.com")
    assert first.status is PurchaseStatus.PENDING
    assert portal.checkout.upsell_for(first.id) is None
    with pytest.raises(Conflict, match="first payment"):
        portal.checkout.accept_upsell(first.id, upsell)
    assert len(portal.gateway.payments) == 1


def test_a_declined_upsell_writes_nothing(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    _, (main, upsell, _) = _funnel(portal)
    first = portal.checkout.purchase(main, email="a@example.com")
    portal.gateway.script(Decline("insufficient_funds"))
    with pytest.raises(PaymentDeclined, match="insufficient_funds"):
        portal.checkout.accept_upsell(first.id, upsell, idempotency_key="try-1")
    with portal.storage.unit_of_work(portal.tenant) as uow:
        assert uow.purchases.count() == 1
    # The buyer may try again (a new attempt, a new key).
    assert portal.checkout.accept_upsell(first.id, upsell, idempotency_key="try-2").amount


def test_only_offers_of_the_funnel_can_be_accepted(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    _, (main, upsell, _) = _funnel(portal)
    first = portal.checkout.purchase(main, email="a@example.com")
    with pytest.raises(ValidationError) as info:
        portal.checkout.accept_upsell(first.id, main)
    assert info.value.field == "offer_id"
    with pytest.raises(ValidationError) as info:
        portal.checkout.decline_upsell(first.id, main)
    assert info.value.field == "offer_id"
    with pytest.raises(NotFound) as missing:
        portal.checkout.accept_upsell("pur_x", upsell)
    assert missing.value.field == "purchase_id"
    with pytest.raises(ValidationError) as info:
        portal.checkout.accept_upsell(first.id, "bogus")
    assert info.value.field == "offer_id"


def test_a_subscription_upsell_renews_on_the_same_method(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    monthly = Subscription(Money.of("15", "EUR"), BillingPeriod(Interval.MONTH))
    _, (main, upsell, _) = _funnel(portal, monthly)
    start = portal.clock.now()
    first = portal.checkout.purchase(main, email="a@example.com")
    bought = portal.checkout.accept_upsell(first.id, upsell)
    assert bought.method_reference == first.method_reference
    portal.clock.set(monthly.period.advance(start))
    assert portal.tick().charges_succeeded == 1
    assert portal.gateway.charged() == {"EUR": Money.of("80", "EUR")}
