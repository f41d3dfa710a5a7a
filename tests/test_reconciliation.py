"""Reconciliation finds paid purchases whose access is missing or short, and repairs them."""

from __future__ import annotations

from datetime import timedelta

import attrs

from membership_core import BillingPeriod, Interval, Money, OneTime, Subscription
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import build_course

MONTHLY = Subscription(Money.of("10", "EUR"), BillingPeriod(Interval.MONTH))


def _delete_grants(portal: TestPortal, purchase_id: str) -> None:
    """Simulate a lost write: the purchase is paid, its grants are gone."""
    with portal.storage.unit_of_work(portal.tenant) as uow:
        for enrollment in uow.enrollments.find({"purchase_id": purchase_id}):
            uow.enrollments.delete(enrollment.id)
        uow.commit()


def test_missing_grants_are_listed_and_repaired(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course = build_course(portal, lessons=1)
    offer = portal.offers.create_offer(
        "Paid", [course.product.id], plan=OneTime(Money.of("9", "EUR"))
    )
    portal.offers.publish(offer.id)
    purchase = portal.checkout.purchase(offer.id, email="a@example.com")
    lesson = course.lessons[0].id
    _delete_grants(portal, purchase.id)
    assert not portal.access.can_view(purchase.member_id, lesson).allowed

    (listed,) = portal.payments.reconcile(repair=False)
    assert (listed.purchase_id, listed.product_id, listed.problem) == (
        purchase.id,
        course.product.id,
        "missing",
    )
    assert not listed.repaired
    assert not portal.access.can_view(purchase.member_id, lesson).allowed

    (repaired,) = portal.payments.reconcile()
    assert repaired.repaired
    assert portal.access.can_view(purchase.member_id, lesson).allowed
    assert portal.payments.reconcile() == []


def test_short_subscription_access_is_extended(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course = build_course(portal, lessons=1)
    offer = portal.offers.create_offer("Monthly", [course.product.id], plan=MONTHLY)
    portal.offers.publish(offer.id)
    purchase = portal.checkout.purchase(offer.id, email="a@example.com")
    paid_through = portal.billing.get(purchase.id).paid_through
    assert paid_through is not None
    with portal.storage.unit_of_work(portal.tenant) as uow:
        (enrollment,) = uow.enrollments.find({"purchase_id": purchase.id})
        uow.enrollments.update(attrs.evolve(enrollment, ends_at=portal.clock.now()))
        uow.commit()
    (gap,) = portal.payments.reconcile()
    assert gap.problem == "short"
    assert gap.should_end_at == paid_through
    (enrollment,) = portal.access.enrollments(purchase.member_id)
    assert enrollment.ends_at == paid_through


def test_refunded_access_is_not_a_gap(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course = build_course(portal, lessons=1)
    offer = portal.offers.create_offer(
        "Paid", [course.product.id], plan=OneTime(Money.of("9", "EUR"))
    )
    portal.offers.publish(offer.id)
    purchase = portal.checkout.purchase(offer.id, email="a@example.com")
    portal.payments.refund(purchase.id, Money.of("1", "EUR"), product_ids=[course.product.id])
    assert portal.payments.reconcile() == []


def test_tick_reconciles_every_purchase_a_batch_at_a_time(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course = build_course(portal, lessons=1)
    offer = portal.offers.create_offer(
        "Paid", [course.product.id], plan=OneTime(Money.of("9", "EUR"))
    )
    portal.offers.publish(offer.id)
    purchases = []
    for number in range(7):
        purchases.append(portal.checkout.purchase(offer.id, email=f"m{number}@example.com"))
        portal.clock.advance(minutes=1)
    for purchase in purchases[::2]:
        _delete_grants(portal, purchase.id)
    found = []
    for _ in range(4):  # 3 batches of 3 cover 7 purchases, then it wraps around
        found += [gap.purchase_id for gap in portal.payments.reconcile_step(batch_size=3)]
    assert sorted(found) == sorted(p.id for p in purchases[::2])
    _delete_grants(portal, purchases[1].id)
    portal.clock.advance(timedelta(minutes=1))
    # The last step stopped mid-way; the sweep reaches the gap within two ticks.
    assert portal.tick().access_repaired + portal.tick().access_repaired == 1
    assert portal.payments.reconcile() == []
