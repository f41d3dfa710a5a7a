"""Bad input to the billing and payments calls: a named field, and nothing written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from membership_core import (
    BillingPeriod,
    Conflict,
    Interval,
    MembershipError,
    Money,
    NotFound,
    OneTime,
    Subscription,
    ValidationError,
)
from membership_core.ports.payments import PaymentResult, PaymentStatus
from membership_core.testing import TestPortal, make_test_portal

from .helpers import build_course


@pytest.fixture
def shop() -> TestPortal:
    portal = make_test_portal(default_gateway="test")
    course = build_course(portal, lessons=1)
    monthly = Subscription(Money.of("20", "EUR"), BillingPeriod(Interval.MONTH))
    for title, plan in (("Monthly", monthly), ("Once", OneTime(Money.of("5", "EUR")))):
        offer = portal.offers.create_offer(title, [course.product.id], plan=plan)
        portal.offers.publish(offer.id)
    return portal


def _snapshot(portal: TestPortal) -> dict[str, int]:
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        names = ("purchases", "payments", "billings", "refunds", "webhook_events", "enrollments")
        return {name: getattr(uow, name).count() for name in names}


CALLS: list[tuple[str, Callable[[TestPortal], Any], type[MembershipError], str | None]] = [
    ("billing.get bad id", lambda p: p.billing.get("sub_1"), ValidationError, "purchase_id"),
    ("billing.get unknown", lambda p: p.billing.get("pur_404"), NotFound, "purchase_id"),
    (
        "billing.cancel mode",
        lambda p: p.billing.cancel("pur_1", at_period_end="yes"),
        ValidationError,
        "at_period_end",
    ),
    (
        "billing.charge_due size",
        lambda p: p.billing.charge_due(batch_size=0),
        ValidationError,
        "batch_size",
    ),
    ("billing.payments id", lambda p: p.billing.payments(""), ValidationError, "purchase_id"),
    (
        "billing.apply_result sequence",
        lambda p: p.billing.apply_result(
            "pur_1", 0, PaymentResult(PaymentStatus.SUCCEEDED, Money.of("1", "EUR"))
        ),
        ValidationError,
        "sequence",
    ),
    (
        "handle_webhook unknown gateway",
        lambda p: p.payments.handle_webhook("stripe", b"{}", {}),
        NotFound,
        "gateway",
    ),
    (
        "handle_webhook blank gateway",
        lambda p: p.payments.handle_webhook("", b"{}", {}),
        ValidationError,
        "gateway",
    ),
    ("reconcile repair", lambda p: p.payments.reconcile(repair=1), ValidationError, "repair"),
    (
        "reconcile_step size",
        lambda p: p.payments.reconcile_step(batch_size=-1),
        ValidationError,
        "batch_size",
    ),
    (
        "webhook_events limit",
        lambda p: p.payments.webhook_events(limit=0),
        ValidationError,
        "limit",
    ),
    ("refunds id", lambda p: p.payments.refunds("ref_1"), ValidationError, "purchase_id"),
    (
        "upsell_for id",
        lambda p: p.checkout.upsell_for("off_1"),
        ValidationError,
        "purchase_id",
    ),
    (
        "accept_upsell key",
        lambda p: p.checkout.accept_upsell("pur_1", "off_1", idempotency_key=5),
        ValidationError,
        "idempotency_key",
    ),
    (
        "purchase coupon",
        lambda p: p.checkout.purchase(
            p.offers.search("Once")[0].id, email="a@example.com", coupon_code="!!"
        ),
        ValidationError,
        "coupon_code",
    ),
    (
        "coupon admin",
        lambda p: p.offers.set_coupon_active("NOPE", True),
        NotFound,
        "code",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "field"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS]
)
def test_bad_input_names_the_field_and_writes_nothing(
    shop: TestPortal, call: Callable[[TestPortal], Any], error: type[MembershipError], field: str
) -> None:
    before = _snapshot(shop)
    with pytest.raises(error) as info:
        call(shop)
    assert info.value.field == field
    assert _snapshot(shop) == before


def test_billing_calls_on_a_one_time_purchase_are_conflicts(shop: TestPortal) -> None:
    once = shop.offers.search("Once")[0]
    purchase = shop.checkout.purchase(once.id, email="a@example.com")
    before = _snapshot(shop)
    for call in (
        lambda: shop.billing.get(purchase.id),
        lambda: shop.billing.cancel(purchase.id),
    ):
        with pytest.raises(Conflict) as info:
            call()
        assert info.value.field == "purchase_id"
    assert _snapshot(shop) == before
