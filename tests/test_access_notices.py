"""tick() records AccessExpiring reminders and AccessExpired events, each exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from membership_core import (
    AccessWindow,
    BillingPeriod,
    EndAfter,
    Interval,
    Money,
    Subscription,
    ValidationError,
)
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import build_course


def _notices(portal: TestPortal) -> list[str]:
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        return [
            r.type
            for r in uow.events.find(order_by=("occurred_at",))
            if r.type in ("AccessExpiring", "AccessExpired")
        ]


def _month_offer(portal: TestPortal) -> tuple[str, str]:
    course = build_course(portal, lessons=1)
    offer = portal.offers.create_offer(
        "30 days", [course.product.id], access_window=AccessWindow(end=EndAfter(30))
    )
    return portal.offers.publish(offer.id).id, course.product.id


def test_a_reminder_then_the_expiry_each_once(open_portal: PortalFactory) -> None:
    portal = open_portal()
    portal.tick()  # the first run only sets the mark
    offer_id, _ = _month_offer(portal)
    start = portal.clock.now()
    portal.checkout.purchase(offer_id, email="a@example.com")
    portal.clock.set(start + timedelta(days=23) - timedelta(seconds=1))
    assert portal.tick().access_notices == 0
    portal.clock.set(start + timedelta(days=23))
    assert portal.tick().access_notices == 1
    assert portal.tick().access_notices == 0
    portal.clock.set(start + timedelta(days=45))  # a tick that ran late still sees the end
    assert portal.tick().access_notices == 1
    assert portal.tick().access_notices == 0
    assert _notices(portal) == ["AccessExpiring", "AccessExpired"]


def test_no_reminder_or_expiry_while_another_grant_keeps_the_product_open(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal()
    portal.tick()
    offer_id, product_id = _month_offer(portal)
    member = portal.checkout.purchase(offer_id, email="a@example.com").member_id
    portal.access.grant(member, product_id, reason="lifetime seat")
    portal.clock.advance(days=31)
    assert portal.tick().access_notices == 0
    assert _notices(portal) == []


def test_renewing_subscriptions_get_no_reminders_until_cancelled(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(default_gateway="test")
    portal.tick()
    course = build_course(portal, lessons=1)
    monthly = Subscription(Money.of("9", "EUR"), BillingPeriod(Interval.MONTH))
    offer = portal.offers.publish(
        portal.offers.create_offer("Monthly", [course.product.id], plan=monthly).id
    )
    start = portal.clock.now()
    purchase = portal.checkout.purchase(offer.id, email="a@example.com")
    for month in (1, 2):
        portal.clock.set(monthly.period.advance(start, month))
        portal.tick()
    assert _notices(portal) == []
    portal.billing.cancel(purchase.id)
    for days in range(1, 40):
        portal.clock.set(monthly.period.advance(start, 2) + timedelta(days=days))
        portal.tick()
    assert _notices(portal) == ["AccessExpiring", "AccessExpired"]


@pytest.mark.parametrize("reminder", [timedelta(0), timedelta(days=-1), 7])
def test_the_reminder_period_is_validated(open_portal: PortalFactory, reminder: object) -> None:
    with pytest.raises(ValidationError) as info:
        open_portal(expiry_reminder=reminder)
    assert info.value.field == "expiry_reminder"


def test_a_reminder_when_the_other_grant_ends_first(open_portal: PortalFactory) -> None:
    portal = open_portal()
    portal.tick()
    offer_id, product_id = _month_offer(portal)
    start = portal.clock.now()
    member = portal.checkout.purchase(offer_id, email="a@example.com").member_id
    portal.access.grant(member, product_id, reason="trial week", ends_at=start + timedelta(days=7))
    portal.clock.set(start + timedelta(days=23))  # the admin week is long over
    assert portal.tick().access_notices == 1
    assert _notices(portal) == ["AccessExpiring"]
