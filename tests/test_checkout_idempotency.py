"""One idempotency key, one checkout request: a retry returns it, anything else is a Conflict."""

from __future__ import annotations

from typing import Any

import pytest

from membership_core import (
    Conflict,
    Coupon,
    Money,
    OneTime,
    PercentOff,
    PurchaseStatus,
)
from membership_core.adapters.memory_storage import MemoryStorage
from membership_core.domain.offers import (
    CheckoutPage,
    ContactField,
    FieldType,
    ServiceAgreement,
)
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import build_course

PRICE = Money.of("40", "EUR")

#: The first request; each case below changes one thing.
BASE: dict[str, Any] = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "contact": {"company": "Analytical", "newsletter": True},
    "accept_terms": True,
    "coupon_code": None,
}


def _offer(portal: TestPortal, title: str = "Paid") -> str:
    course = build_course(portal, lessons=1, title=title)
    offer = portal.offers.create_offer(title, [course.product.id], plan=OneTime(PRICE))
    page = CheckoutPage(
        fields=(
            ContactField("company", "Company", FieldType.TEXT),
            ContactField("newsletter", "Newsletter", FieldType.CHECKBOX),
        ),
    )
    portal.offers.set_checkout_page(offer.id, page)
    return portal.offers.publish(offer.id).id


def _paid(portal: TestPortal) -> int:
    return sum(1 for p in portal.gateway.payments if p.status.value == "succeeded")


@pytest.mark.parametrize(
    "change",
    [
        {"coupon_code": "HALF"},
        {"contact": {"company": "Difference Engine", "newsletter": True}},
        {"contact": {"company": "Analytical", "newsletter": False}},
        {"contact": {"newsletter": True}},
        {"first_name": "Augusta"},
        {"last_name": "Byron"},
        {"accept_terms": False},
        {"email": "someone@example.com"},
    ],
    ids=lambda change: "-".join(f"{k}" for k in change),
)
def test_same_key_with_a_different_parameter_is_a_conflict(
    open_portal: PortalFactory, change: dict[str, Any]
) -> None:
    portal = open_portal(default_gateway="test")
    offer_id = _offer(portal)
    portal.offers.create_coupon(Coupon("HALF", PercentOff(50)))
    first = portal.checkout.purchase(offer_id, idempotency_key="cart-1", **BASE)
    with pytest.raises(Conflict) as info:
        portal.checkout.purchase(offer_id, idempotency_key="cart-1", **(BASE | change))
    assert info.value.field == "idempotency_key"
    assert "idempotency_key" in str(info.value)
    assert _paid(portal) == 1
    assert portal.gateway.charged() == {"EUR": PRICE}
    assert portal.checkout.get(first.id) == first
    # A refused retry counts no coupon use.
    assert portal.offers.coupon("HALF").redemptions == 0


def test_same_key_for_another_offer_is_a_conflict(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    offer_id = _offer(portal)
    other_id = _offer(portal, "Other")
    portal.checkout.purchase(offer_id, idempotency_key="cart-1", **BASE)
    with pytest.raises(Conflict) as info:
        portal.checkout.purchase(other_id, idempotency_key="cart-1", **BASE)
    assert info.value.field == "idempotency_key"
    assert _paid(portal) == 1


def test_the_same_request_again_returns_the_purchase_and_charges_once(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(default_gateway="test")
    offer_id = _offer(portal)
    portal.offers.create_coupon(Coupon("HALF", PercentOff(50)))
    request = BASE | {"coupon_code": "HALF"}
    first = portal.checkout.purchase(offer_id, idempotency_key="cart-1", **request)
    assert first.request_fingerprint is not None
    # Spelled differently, the same request: case and blanks do not count.
    again = portal.checkout.purchase(
        offer_id,
        idempotency_key="cart-1",
        **(
            request
            | {
                "email": " ADA@example.com ",
                "first_name": " Ada ",
                "coupon_code": " half ",
                "contact": {"newsletter": True, "company": " Analytical "},
            }
        ),
    )
    assert again == first
    assert portal.checkout.purchase(offer_id, idempotency_key="cart-1", **request) == first
    assert _paid(portal) == 1
    assert portal.gateway.charged() == {"EUR": Money.of("20", "EUR")}
    assert portal.offers.coupon("HALF").redemptions == 1
    assert len(portal.members.list()) == 1


def test_accepting_the_terms_is_part_of_the_request(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    course = build_course(portal, lessons=1, title="Terms")
    offer = portal.offers.create_offer("Terms", [course.product.id], plan=OneTime(PRICE))
    agreement = ServiceAgreement("Terms of service", "Be nice.")
    portal.offers.set_checkout_page(offer.id, CheckoutPage(agreement=agreement))
    portal.offers.publish(offer.id)
    first = portal.checkout.purchase(
        offer.id, email="a@example.com", accept_terms=True, idempotency_key="k"
    )
    assert first.status is PurchaseStatus.PAID
    with pytest.raises(Conflict) as info:
        portal.checkout.purchase(offer.id, email="a@example.com", idempotency_key="k")
    assert info.value.field == "idempotency_key"
    assert _paid(portal) == 1


def test_same_key_through_another_gateway_is_a_conflict(
    open_portal: PortalFactory, backend: str, storage_url: str
) -> None:
    # Two processes of one portal that disagree on the gateway share one database.
    shared: str | MemoryStorage = MemoryStorage() if backend == "memory" else storage_url
    card = open_portal(shared, default_gateway="test")
    offer_id = _offer(card)
    bought = card.checkout.purchase(offer_id, idempotency_key="cart-1", **BASE)
    manual = open_portal(shared)
    with pytest.raises(Conflict) as info:
        manual.checkout.purchase(offer_id, idempotency_key="cart-1", **BASE)
    assert info.value.field == "idempotency_key"
    assert card.checkout.purchase(offer_id, idempotency_key="cart-1", **BASE) == bought
    assert _paid(card) == 1


def test_an_upsell_key_cannot_be_reused_for_another_parent(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    main_id = _offer(portal, "Main")
    upsell_id = _offer(portal, "Upsell")
    portal.offers.set_upsell(main_id, upsell_id, kind="one_click")
    one = portal.checkout.purchase(main_id, email="a@example.com")
    two = portal.checkout.purchase(main_id, email="a@example.com")
    bought = portal.checkout.accept_upsell(one.id, upsell_id, idempotency_key="up-1")
    assert portal.checkout.accept_upsell(one.id, upsell_id, idempotency_key="up-1") == bought
    with pytest.raises(Conflict) as info:
        portal.checkout.accept_upsell(two.id, upsell_id, idempotency_key="up-1")
    assert info.value.field == "idempotency_key"
