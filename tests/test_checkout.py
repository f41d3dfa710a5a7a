"""Offers and checkout as far as the foundation goes: free claims and manual payments."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from membership_core import (
    AccessReason,
    AccessWindow,
    BillingPeriod,
    Conflict,
    EndAfter,
    EndOn,
    Interval,
    Money,
    NotFound,
    PaymentDeclined,
    PurchaseStatus,
    StartOn,
    Subscription,
    ValidationError,
)
from membership_core.domain.pricing import OneTime
from membership_core.ports.payments import (
    GatewayCapabilities,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
)

from .conftest import PortalFactory
from .helpers import build_course


def test_offer_needs_a_published_product(open_portal: PortalFactory) -> None:
    portal = open_portal()
    product = portal.catalog.create_product("Draft course")
    offer = portal.offers.create_offer("Free", [product.id])
    with pytest.raises(Conflict):
        portal.offers.publish(offer.id)
    with pytest.raises(Conflict):
        portal.checkout.purchase(offer.id, email="a@example.com")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"title": "", "product_ids": ["prod_1"]}, "title"),
        ({"title": "T", "product_ids": []}, "product_ids"),
        ({"title": "T", "product_ids": "prod_1"}, "product_ids"),
        ({"title": "T", "product_ids": ["les_1"]}, "product_ids"),
        ({"title": "T", "product_ids": ["prod_1"], "plan": "one_time"}, "plan"),
        ({"title": "T", "product_ids": ["prod_1"], "access_window": "forever"}, "access_window"),
    ],
)
def test_create_offer_validates(
    open_portal: PortalFactory, kwargs: dict[str, object], field: str
) -> None:
    portal = open_portal()
    with pytest.raises(ValidationError) as info:
        portal.offers.create_offer(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_plans_validate_their_prices() -> None:
    with pytest.raises(ValidationError) as info:
        OneTime(Money(0, "USD"))
    assert info.value.field == "price"


def test_create_offer_checks_products_exist(open_portal: PortalFactory) -> None:
    with pytest.raises(NotFound) as info:
        open_portal().offers.create_offer("T", ["prod_missing"])
    assert info.value.field == "product_ids"


def test_bundle_grants_every_product(open_portal: PortalFactory) -> None:
    portal = open_portal()
    one = build_course(portal, lessons=1, title="One")
    two = build_course(portal, lessons=1, title="Two")
    bundle = portal.offers.create_offer("Both", [one.product.id, two.product.id, one.product.id])
    assert bundle.product_ids == (one.product.id, two.product.id)
    portal.offers.publish(bundle.id)
    member_id = portal.checkout.purchase(bundle.id, email="a@example.com").member_id
    for course in (one, two):
        assert portal.access.can_view(member_id, course.lessons[0].id).allowed


def test_idempotency_key_returns_the_same_purchase(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    first = portal.checkout.purchase(course.offer.id, email="a@example.com", idempotency_key="k1")
    again = portal.checkout.purchase(course.offer.id, email="A@example.com", idempotency_key="k1")
    assert again == first
    with pytest.raises(Conflict) as info:
        portal.checkout.purchase(course.offer.id, email="b@example.com", idempotency_key="k1")
    assert info.value.field == "idempotency_key"
    assert len(portal.members.list()) == 1


def test_same_key_from_many_threads_yields_one_purchase(sqlite_url: str) -> None:
    from membership_core.testing import make_test_portal

    portal = make_test_portal(sqlite_url)
    try:
        course = build_course(portal, lessons=1)
        results: list[str] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(6)

        def buy() -> None:
            barrier.wait()
            try:
                purchase = portal.checkout.purchase(
                    course.offer.id, email="a@example.com", idempotency_key="same"
                )
                results.append(purchase.id)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=buy) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(set(results)) == 1
        with portal.storage.unit_of_work(portal.tenant) as uow:
            assert uow.purchases.count() == 1
            assert uow.enrollments.count() == 1
    finally:
        portal.close()


def test_manual_payment_stays_pending_until_confirmed(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    paid = portal.offers.create_offer(
        "Paid", [course.product.id], plan=OneTime(Money.of("49.00", "EUR"))
    )
    portal.offers.publish(paid.id)
    purchase = portal.checkout.purchase(paid.id, email="a@example.com")
    assert purchase.status is PurchaseStatus.PENDING
    assert purchase.amount == Money(4900, "EUR")
    lesson = course.lessons[0].id
    assert portal.access.can_view(purchase.member_id, lesson).reason is AccessReason.NOT_ENROLLED
    confirmed = portal.checkout.confirm_payment(purchase.id, reference="bank-123")
    assert confirmed.status is PurchaseStatus.PAID
    assert confirmed.gateway_reference == "bank-123"
    assert portal.access.can_view(purchase.member_id, lesson).allowed
    assert portal.checkout.confirm_payment(purchase.id) == confirmed  # once only


def test_declined_payment_writes_nothing(open_portal: PortalFactory) -> None:
    class Declining:
        name = "declining"
        capabilities = GatewayCapabilities()

        def create_payment(self, request: PaymentRequest) -> PaymentResult:
            return PaymentResult(PaymentStatus.DECLINED, request.amount, decline_reason="no funds")

    portal = open_portal(gateways={"declining": Declining()}, default_gateway="declining")
    course = build_course(portal, lessons=1)
    paid = portal.offers.create_offer("Paid", [course.product.id], plan=OneTime(Money(100, "USD")))
    portal.offers.publish(paid.id)
    with pytest.raises(PaymentDeclined, match="no funds"):
        portal.checkout.purchase(paid.id, email="a@example.com")
    assert portal.members.list() == []
    with portal.storage.unit_of_work(portal.tenant) as uow:
        assert uow.purchases.count() == 0


@pytest.mark.parametrize("database", ["sqlite_url", "postgres_url"])
def test_concurrent_first_purchases_by_one_new_buyer_share_the_member(
    database: str, request: pytest.FixtureRequest
) -> None:
    from membership_core.testing import make_test_portal

    # memory storage serializes whole units of work, so the race needs a database
    portal = make_test_portal(request.getfixturevalue(database))
    try:
        one = build_course(portal, lessons=1, title="One")
        two = build_course(portal, lessons=1, title="Two")
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def buy(offer_id: str) -> None:
            barrier.wait()
            try:
                portal.checkout.purchase(offer_id, email="new@example.com")
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=buy, args=(c.offer.id,)) for c in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        (member,) = portal.members.list()
        for course in (one, two):
            assert portal.access.can_view(member.id, course.lessons[0].id).allowed
    finally:
        portal.close()


def test_access_window_bounds_the_enrollments_checkout_grants(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    lesson = course.lessons[0].id
    now = portal.clock.now()
    cohort = AccessWindow(StartOn(now + timedelta(days=10)), EndAfter(30))
    offer = portal.offers.create_offer("Cohort", [course.product.id], access_window=cohort)
    portal.offers.publish(offer.id)
    member_id = portal.checkout.purchase(offer.id, email="a@example.com").member_id
    (enrollment,) = portal.access.enrollments(member_id)
    assert enrollment.starts_at == now + timedelta(days=10)
    assert enrollment.ends_at == now + timedelta(days=40)
    assert portal.access.can_view(member_id, lesson).reason is AccessReason.NOT_STARTED
    portal.clock.advance(days=10)
    assert portal.access.can_view(member_id, lesson).allowed
    portal.clock.advance(days=30)
    assert portal.access.can_view(member_id, lesson).reason is AccessReason.EXPIRED


def test_a_window_that_already_ended_refuses_checkout(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    ended = AccessWindow(end=EndOn(portal.clock.now() + timedelta(days=1)))
    offer = portal.offers.create_offer("Short", [course.product.id], access_window=ended)
    portal.offers.publish(offer.id)
    portal.clock.advance(days=2)
    with pytest.raises(ValidationError) as info:
        portal.checkout.purchase(offer.id, email="a@example.com")
    assert info.value.field == "access_window"
    assert portal.members.list() == []


def test_repricing_changes_new_purchases_only(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    offer = portal.offers.create_offer(
        "Paid", [course.product.id], plan=OneTime(Money.of("10", "EUR"))
    )
    portal.offers.publish(offer.id)
    early = portal.checkout.purchase(offer.id, email="early@example.com")
    portal.offers.set_pricing(offer.id, OneTime(Money.of("25", "EUR")))
    late = portal.checkout.purchase(offer.id, email="late@example.com")
    assert late.amount == Money.of("25", "EUR")
    assert portal.checkout.get(early.id).amount == Money.of("10", "EUR")
    with pytest.raises(ValidationError) as info:
        portal.offers.set_pricing(offer.id, "free")  # type: ignore[arg-type]
    assert info.value.field == "plan"
    assert portal.offers.get(offer.id).price == Money.of("25", "EUR")


def test_a_trial_without_setup_fee_records_zero_in_the_plan_currency(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal(default_gateway="test")
    assert portal.settings.site().currency == "USD"
    course = build_course(portal, lessons=1, title="Trial")
    plan = Subscription(Money.of("20", "EUR"), BillingPeriod(Interval.MONTH), trial_days=14)
    offer = portal.offers.create_offer("Trial", [course.product.id], plan=plan)
    portal.offers.publish(offer.id)
    purchase = portal.checkout.purchase(offer.id, email="a@example.com")
    assert purchase.status is PurchaseStatus.PAID
    assert purchase.amount == Money.zero("EUR")
    assert portal.checkout.get(purchase.id).amount == Money.zero("EUR")
