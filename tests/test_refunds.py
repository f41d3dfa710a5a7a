"""Refunds act per purchase and per line, through the gateway, and never give back too much."""

from __future__ import annotations

import pytest

from membership_core import (
    ConfigurationError,
    Conflict,
    Money,
    OneTime,
    Portal,
    PurchaseStatus,
    RefundFailed,
    SequentialIds,
    ValidationError,
)
from membership_core.domain.payments import RefundState
from membership_core.ports.payments import GatewayCapabilities
from membership_core.testing import FrozenClock, MemoryMailer, TestGateway
from membership_core.testing.gateway import Decline, Pending

from .conftest import PortalFactory
from .helpers import Course, build_course

PRICE = Money.of("30", "EUR")


def _bundle(portal: Portal) -> tuple[Course, Course, str]:
    one = build_course(portal, lessons=1, title="One")
    two = build_course(portal, lessons=1, title="Two")
    offer = portal.offers.create_offer(
        "Both", [one.product.id, two.product.id], plan=OneTime(PRICE)
    )
    portal.offers.publish(offer.id)
    return one, two, offer.id


def _can_view(portal: Portal, member_id: str, course: Course) -> bool:
    return portal.access.can_view(member_id, course.lessons[0].id).allowed


def test_whole_refund_revokes_this_purchase_only(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    one, two, bundle = _bundle(portal)
    single = portal.offers.create_offer("One alone", [one.product.id], plan=OneTime(PRICE))
    portal.offers.publish(single.id)
    first = portal.checkout.purchase(bundle, email="a@example.com")
    second = portal.checkout.purchase(single.id, email="a@example.com")
    refunded = portal.payments.refund(first.id)
    assert refunded.status is PurchaseStatus.REFUNDED
    member = first.member_id
    assert _can_view(portal, member, one)  # order B still grants it
    assert not _can_view(portal, member, two)
    assert portal.checkout.get(second.id).status is PurchaseStatus.PAID
    assert portal.gateway.charged() == {"EUR": PRICE}
    with pytest.raises(Conflict):
        portal.payments.refund(first.id)


def test_partial_refund_keeps_access_unless_lines_are_named(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    one, two, bundle = _bundle(portal)
    purchase = portal.checkout.purchase(bundle, email="a@example.com")
    member = purchase.member_id
    partly = portal.payments.refund(purchase.id, Money.of("5", "EUR"))
    assert partly.status is PurchaseStatus.PARTIALLY_REFUNDED
    assert _can_view(portal, member, one)
    assert _can_view(portal, member, two)
    portal.payments.refund(purchase.id, Money.of("15", "EUR"), product_ids=[two.product.id])
    assert _can_view(portal, member, one)
    assert not _can_view(portal, member, two)
    assert [r.amount for r in portal.payments.refunds(purchase.id)] == [
        Money.of("5", "EUR"),
        Money.of("15", "EUR"),
    ]
    with pytest.raises(ValidationError) as info:
        portal.payments.refund(purchase.id, Money.of("10.01", "EUR"))
    assert info.value.field == "amount"


def test_keep_access(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    one, _, bundle = _bundle(portal)
    purchase = portal.checkout.purchase(bundle, email="a@example.com")
    portal.payments.refund(purchase.id, keep_access=True)
    assert _can_view(portal, purchase.member_id, one)


def test_keep_access_on_refund_is_the_portals_default(storage_url: str) -> None:
    portal = Portal.open(
        storage_url,
        clock=FrozenClock(),
        ids=SequentialIds(),
        mailer=MemoryMailer(),
        gateways={"test": TestGateway()},
        default_gateway="test",
        load_entrypoints=False,
        keep_access_on_refund=True,
    )
    try:
        assert portal.payments.keep_access_on_refund is True
        one, two, bundle = _bundle(portal)
        kept = portal.checkout.purchase(bundle, email="a@example.com")
        portal.payments.refund(kept.id)
        assert _can_view(portal, kept.member_id, one)
        assert _can_view(portal, kept.member_id, two)
        ended = portal.checkout.purchase(bundle, email="b@example.com")
        portal.payments.refund(ended.id, keep_access=False)  # the call still decides
        assert not _can_view(portal, ended.member_id, one)
        portal.payments.keep_access_on_refund = False
        later = portal.checkout.purchase(bundle, email="c@example.com")
        portal.payments.refund(later.id)
        assert not _can_view(portal, later.member_id, two)
    finally:
        portal.close()


def test_refused_refund_changes_no_access(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    one, _, bundle = _bundle(portal)
    purchase = portal.checkout.purchase(bundle, email="a@example.com")
    portal.gateway.script_refund(Decline("charge_too_old"))
    with pytest.raises(RefundFailed, match="charge_too_old"):
        portal.payments.refund(purchase.id)
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.PAID
    assert _can_view(portal, purchase.member_id, one)
    (refund,) = portal.payments.refunds(purchase.id)
    assert refund.state is RefundState.FAILED
    # The amount is free again: a later refund can give it back.
    assert portal.payments.refund(purchase.id).status is PurchaseStatus.REFUNDED


def test_pending_refund_is_settled_by_webhook(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    _, _, bundle = _bundle(portal)
    purchase = portal.checkout.purchase(bundle, email="a@example.com")
    portal.gateway.script_refund(Pending())
    portal.payments.refund(purchase.id, Money.of("10", "EUR"))
    (refund,) = portal.payments.refunds(purchase.id)
    assert refund.state is RefundState.PENDING
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.PAID
    # Money promised by the pending refund cannot be promised twice.
    with pytest.raises(ValidationError):
        portal.payments.refund(purchase.id, Money.of("20.01", "EUR"))
    assert refund.gateway_reference is not None
    portal.gateway.settle_refund(refund.gateway_reference)
    for delivery in portal.gateway.take_webhooks() * 2:  # delivered twice
        portal.payments.handle_webhook("test", delivery.body, delivery.headers)
    (refund,) = portal.payments.refunds(purchase.id)
    assert refund.state is RefundState.SUCCEEDED
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.PARTIALLY_REFUNDED
    assert portal.gateway.charged() == {"EUR": Money.of("20", "EUR")}


def test_gateways_without_refunds_are_refused_before_anything_is_written(
    open_portal: PortalFactory,
) -> None:
    no_refunds = TestGateway("norefunds", capabilities=GatewayCapabilities())
    portal = open_portal(gateways={"norefunds": no_refunds}, default_gateway="norefunds")
    _, _, bundle = _bundle(portal)
    purchase = portal.checkout.purchase(bundle, email="a@example.com")
    with pytest.raises(ConfigurationError, match="refunds"):
        portal.payments.refund(purchase.id)
    assert portal.payments.refunds(purchase.id) == []


def test_whole_refunds_only_need_whole_refunds(open_portal: PortalFactory) -> None:
    whole_only = TestGateway("whole", capabilities=GatewayCapabilities(refunds=True))
    portal = open_portal(gateways={"whole": whole_only}, default_gateway="whole")
    _, _, bundle = _bundle(portal)
    purchase = portal.checkout.purchase(bundle, email="a@example.com")
    with pytest.raises(ConfigurationError, match="partial"):
        portal.payments.refund(purchase.id, Money.of("1", "EUR"))
    assert portal.payments.refund(purchase.id).status is PurchaseStatus.REFUNDED


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"purchase_id": "nope"}, "purchase_id"),
        ({"amount": Money.of("0", "EUR")}, "amount"),
        ({"amount": 5}, "amount"),
        ({"amount": Money.of("1", "USD")}, "amount"),
        ({"product_ids": "prod_1"}, "product_ids"),
        ({"product_ids": []}, "product_ids"),
        ({"product_ids": ["prod_999999"]}, "product_ids"),
        ({"reason": ""}, "reason"),
        ({"keep_access": "yes"}, "keep_access"),
    ],
)
def test_refund_validates_its_arguments_and_writes_nothing(
    open_portal: PortalFactory, kwargs: dict[str, object], field: str
) -> None:
    portal = open_portal(default_gateway="test")
    _, _, bundle = _bundle(portal)
    purchase = portal.checkout.purchase(bundle, email="a@example.com")
    arguments: dict[str, object] = {"purchase_id": purchase.id} | kwargs
    with pytest.raises(ValidationError) as info:
        portal.payments.refund(**arguments)  # type: ignore[arg-type]
    assert info.value.field == field
    assert portal.payments.refunds(purchase.id) == []
    assert portal.gateway.refunds == ()
    assert portal.checkout.get(purchase.id).status is PurchaseStatus.PAID


def test_a_line_refund_of_everything_left_ends_all_access(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    one, two, bundle = _bundle(portal)
    purchase = portal.checkout.purchase(bundle, email="a@example.com")
    portal.payments.refund(purchase.id, Money.of("29", "EUR"))
    # Named for line two, but it gives back the last euro: no money is kept for line one.
    last = portal.payments.refund(purchase.id, Money.of("1", "EUR"), product_ids=[two.product.id])
    assert last.status is PurchaseStatus.REFUNDED
    assert not _can_view(portal, purchase.member_id, one)
    assert not _can_view(portal, purchase.member_id, two)
