"""Checkout under concurrency: the same order from many threads or processes, and the
buyer's return racing the gateway's webhook, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import pytest

from membership_core import (
    BillingPeriod,
    Interval,
    Money,
    Portal,
    PurchaseStatus,
    RandomIds,
    Subscription,
)
from membership_core.domain.pricing import OneTime
from membership_core.testing import FrozenClock, MemoryMailer, TestPortal, make_test_portal
from membership_core.testing.gateway import Pending

from .helpers import build_course

DATABASES = ["sqlite_url", "postgres_url"]
PLANS: dict[str, OneTime | Subscription] = {
    "one_time": OneTime(Money.of("49", "EUR")),
    "subscription": Subscription(Money.of("20", "EUR"), BillingPeriod(Interval.MONTH)),
}


def _shop(url: str, plan: OneTime | Subscription) -> tuple[TestPortal, str, str]:
    """A portal selling ``plan`` through the test gateway: (portal, offer id, lesson id)."""
    portal = make_test_portal(url, default_gateway="test")
    course = build_course(portal, lessons=1)
    offer = portal.offers.create_offer("Paid", [course.product.id], plan=plan)
    portal.offers.publish(offer.id)
    return portal, offer.id, course.lessons[0].id


def _at_once(count: int, job: Callable[[], Any]) -> tuple[list[Any], list[BaseException]]:
    barrier = threading.Barrier(count)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            result = job()
        except BaseException as error:
            with lock:
                errors.append(error)
        else:
            with lock:
                results.append(result)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def _counts(portal: Portal) -> dict[str, int]:
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        return {
            "purchases": uow.purchases.count(),
            "members": uow.members.count(),
            "enrollments": uow.enrollments.count(),
            "payments": uow.payments.count(),
            "billings": uow.billings.count(),
        }


@pytest.mark.parametrize("plan_name", sorted(PLANS))
@pytest.mark.parametrize("database", DATABASES)
def test_the_same_checkout_from_eight_threads_buys_once(
    database: str, plan_name: str, request: pytest.FixtureRequest
) -> None:
    portal, offer_id, lesson_id = _shop(request.getfixturevalue(database), PLANS[plan_name])
    try:

        def buy() -> str:
            purchase = portal.checkout.purchase(
                offer_id, email="ada@example.com", idempotency_key="order-1"
            )
            return purchase.id

        results, errors = _at_once(8, buy)
        # A retried order is answered with the first purchase, never refused.
        assert errors == []
        assert len(set(results)) == 1
        charges = [p for p in portal.gateway.payments if p.status.value == "succeeded"]
        assert len(charges) == 1, portal.gateway.payments  # one charge at the gateway
        recurring = plan_name == "subscription"
        assert _counts(portal) == {
            "purchases": 1,
            "members": 1,
            "enrollments": 1,
            "payments": 1,
            "billings": 1 if recurring else 0,
        }
        purchase = portal.checkout.get(results[0])
        assert purchase.status is PurchaseStatus.PAID
        assert charges[0].purchase_id == purchase.id
        assert portal.access.can_view(purchase.member_id, lesson_id).allowed
    finally:
        portal.close()


def _buy_in_a_process(url: str, offer_id: str, start: str, barrier: Any, queue: Any) -> None:
    """Open an own portal on ``url`` (own gateway, ids, clock) and buy once."""
    from datetime import datetime

    from membership_core.testing import TestGateway

    clock = FrozenClock(datetime.fromisoformat(start))
    portal = Portal.open(
        url,
        clock=clock,
        ids=RandomIds(),  # as production: processes share nothing but the database
        mailer=MemoryMailer(),
        gateways={"test": TestGateway(clock=clock)},
        default_gateway="test",
        load_entrypoints=False,
    )
    try:
        barrier.wait(timeout=60)
        purchase = portal.checkout.purchase(
            offer_id, email="ada@example.com", idempotency_key="order-1"
        )
        queue.put(("ok", purchase.id))
    except BaseException as error:
        queue.put(("error", repr(error)))
    finally:
        portal.close()


@pytest.mark.parametrize("plan_name", sorted(PLANS))
@pytest.mark.parametrize("database", DATABASES)
def test_the_same_checkout_from_three_processes_is_stored_once(
    database: str, plan_name: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(database)
    portal, offer_id, _ = _shop(url, PLANS[plan_name])
    try:
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(3)
        queue = context.Queue()
        start = portal.clock.now().isoformat()
        processes = [
            context.Process(target=_buy_in_a_process, args=(url, offer_id, start, barrier, queue))
            for _ in range(3)
        ]
        for process in processes:
            process.start()
        answers = [queue.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        assert [kind for kind, _ in answers] == ["ok"] * 3, answers
        assert len({purchase_id for _, purchase_id in answers}) == 1, answers
        # Each process has its own TestGateway, so the ledger cannot be checked here:
        # whether three processes charged the card once is up to the real provider,
        # which sees one idempotency key. Only a gateway shared by all callers (the
        # threaded test above) can show "one charge". The database is shared, so it
        # must hold exactly one order.
        recurring = plan_name == "subscription"
        assert _counts(portal) == {
            "purchases": 1,
            "members": 1,
            "enrollments": 1,
            "payments": 1,
            "billings": 1 if recurring else 0,
        }
    finally:
        portal.close()


@pytest.mark.parametrize("plan_name", sorted(PLANS))
@pytest.mark.parametrize("database", DATABASES)
def test_buyer_return_and_webhook_at_once_grant_once(
    database: str, plan_name: str, request: pytest.FixtureRequest
) -> None:
    portal, offer_id, lesson_id = _shop(request.getfixturevalue(database), PLANS[plan_name])
    try:
        portal.gateway.script(Pending())
        pending = portal.checkout.purchase(offer_id, email="ada@example.com")
        assert pending.status is PurchaseStatus.PENDING
        reference = pending.gateway_reference
        assert reference is not None
        portal.gateway.settle(reference)
        (delivery,) = portal.gateway.take_webhooks()

        jobs: list[Callable[[], Any]] = [
            lambda: portal.checkout.confirm_payment(pending.id, reference=reference),
            lambda: portal.payments.handle_webhook("test", delivery.body, delivery.headers),
        ]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(job: Callable[[], Any]) -> None:
            barrier.wait()
            try:
                job()
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        portal.tick()  # an event the race left unapplied is applied now

        purchase = portal.checkout.get(pending.id)
        assert purchase.status is PurchaseStatus.PAID
        (enrollment,) = portal.access.enrollments(purchase.member_id)
        assert enrollment.purchase_id == purchase.id
        assert portal.access.can_view(purchase.member_id, lesson_id).allowed
        with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
            bought = uow.events.find({"type": "OfferPurchased"})
            granted = uow.events.find({"type": "AccessGranted"})
            billings = uow.billings.find({"purchase_id": purchase.id})
            payments = uow.payments.find({"purchase_id": purchase.id})
        assert [e.payload["purchase_id"] for e in bought] == [purchase.id]
        assert [e.payload["purchase_id"] for e in granted] == [purchase.id]
        assert len(billings) == (1 if plan_name == "subscription" else 0)
        assert [p.state.value for p in payments] == ["succeeded"]
        assert [p.status.value for p in portal.gateway.payments] == ["succeeded"]
    finally:
        portal.close()
