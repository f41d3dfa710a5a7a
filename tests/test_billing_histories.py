"""Randomized billing histories, checked against the gateway's ledger of money.

Two kinds of test live here:

- :class:`BillingHistories`, a Hypothesis state machine at the service level
  (memory back end): buy subscriptions and payment plans, move the clock,
  tick, script the gateway, settle pending payments, deliver webhooks twice and
  out of order, cancel, refund; after every step the invariants compare what
  the portal says with what the :class:`TestGateway` recorded (the independent
  record of money).
- :func:`test_concurrent_billing_histories`, a Jepsen-style history on SQLite
  and PostgreSQL: several portals (one per worker) on one database tick and
  take webhooks from several threads at once; a checker then compares the
  whole history with the gateway ledger.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from membership_core import (
    BillingPeriod,
    Conflict,
    Interval,
    Money,
    PaymentDeclined,
    PaymentPlan,
    Portal,
    PurchaseStatus,
    SequentialIds,
    Subscription,
)
from membership_core.domain.billing import (
    RETRY_GRACE,
    Billing,
    BillingStatus,
    access_ends_at,
    charge_for,
)
from membership_core.domain.payments import PaymentState
from membership_core.ports.payments import GatewayEvent, PaymentStatus
from membership_core.testing import FrozenClock, MemoryMailer, TestGateway, make_test_portal
from membership_core.testing.gateway import (
    ActionRequired,
    Decline,
    Outcome,
    Pending,
    Raise,
    RecordedPayment,
    Succeed,
)

from .helpers import build_course

EUR = "EUR"

#: What the state machine and the histories sell (one offer each).
PLANS: dict[str, Subscription | PaymentPlan] = {
    "monthly": Subscription(Money.of("20", EUR), BillingPeriod(Interval.MONTH)),
    "weekly_trial_fee": Subscription(
        Money.of("10", EUR),
        BillingPeriod(Interval.WEEK),
        trial_days=7,
        setup_fee=Money.of("5", EUR),
    ),
    "monthly_fee": Subscription(
        Money.of("15", EUR), BillingPeriod(Interval.MONTH), setup_fee=Money.of("3", EUR)
    ),
    "plan_3_monthly": PaymentPlan(Money.of("100", EUR), 3, BillingPeriod(Interval.MONTH)),
    "plan_4_weekly": PaymentPlan(Money.of("50", EUR), 4, BillingPeriod(Interval.WEEK)),
}

#: Applied webhook events are kept this long; a redelivery within it must be a duplicate.
INBOX_RETENTION = timedelta(days=30)


# --------------------------------------------------------------------------- ledger helpers


def _key_prefix(payment: RecordedPayment) -> str:
    """``pur:seq`` of an off-session attempt key ``pur:seq:attempt``; checkout's key as is.

    Checkout pays with the buyer's idempotency key (or the purchase id); every
    later charge with ``attempt_key(purchase, sequence, attempt)``.
    """
    parts = payment.idempotency_key.split(":")
    if len(parts) == 3 and parts[0] == payment.purchase_id:
        return f"{parts[0]}:{parts[1]}"
    return f"checkout:{payment.idempotency_key}"


def _succeeded(
    payments: Iterator[RecordedPayment] | tuple[RecordedPayment, ...], pid: str
) -> list[RecordedPayment]:
    return [p for p in payments if p.purchase_id == pid and p.status is PaymentStatus.SUCCEEDED]


def _total(payments: list[RecordedPayment]) -> Money:
    return sum((p.amount for p in payments), Money.zero(EUR))


def _due_charges(billing: Billing, now: datetime) -> tuple[int, Money]:
    """How many charges of the billing's schedule fell due by ``now``, and their sum."""
    count, total = 0, Money.zero(EUR)
    plan = billing.plan
    for sequence in itertools.count(1):
        if isinstance(plan, PaymentPlan) and sequence > plan.installments:
            break
        charge = charge_for(billing, sequence)
        if charge.due_at > now:
            break
        count += 1
        total += charge.amount
    return count, total


def _period_end(billing: Billing, periods: int) -> datetime:
    """The end of the ``periods``-th period of a subscription (the trial end for 0)."""
    plan = billing.plan
    assert isinstance(plan, Subscription)
    offset = 1 if plan.setup_fee is not None else 0
    # Period index k is due (and period k - 1 ends) at charge_for(offset + k + 1).due_at.
    return charge_for(billing, offset + periods + 1).due_at


def _periods_paid(plan: Subscription, paid: Money) -> int:
    """Whole periods the money taken at the gateway pays for (after the setup fee)."""
    fee = plan.setup_fee.amount if plan.setup_fee is not None else 0
    return max(0, paid.amount - fee) // plan.price.amount


def check_ledger(
    gateway_payments: tuple[RecordedPayment, ...],
    purchase_id: str,
    billing: Billing | None,
    purchase_amount: Money,
    now: datetime,
) -> None:
    """Money rules for one purchase, from the gateway's ledger alone (and the billing's plan).

    - no (purchase, sequence) succeeded twice: succeeded attempts have distinct key prefixes;
    - never more succeeded payments than charges due so far, nor more money;
    - a payment plan never collects more than its total, and exactly it when COMPLETED;
    - a subscription is never paid through further than the money taken pays for.
    """
    ok = _succeeded(gateway_payments, purchase_id)
    prefixes = collections.Counter(_key_prefix(p) for p in ok)
    twice = {prefix: n for prefix, n in prefixes.items() if n > 1}
    assert not twice, f"{purchase_id}: charged more than once for {twice}"
    taken = _total(ok)
    if billing is None:
        # No billing yet: at most the checkout payment, pending or settled but not applied.
        assert len(ok) <= 1, f"{purchase_id}: {len(ok)} payments before its billing started"
        assert taken <= purchase_amount
        return
    due_count, due_total = _due_charges(billing, now)
    assert len(ok) <= due_count, (
        f"{purchase_id}: {len(ok)} succeeded payments but only {due_count} charges due by {now}"
    )
    assert taken <= due_total, f"{purchase_id}: took {taken}, only {due_total} due by {now}"
    plan = billing.plan
    if isinstance(plan, PaymentPlan):
        assert taken <= plan.total, f"{purchase_id}: plan collected {taken} of {plan.total}"
        if billing.status is BillingStatus.COMPLETED:
            assert taken == plan.total, f"{purchase_id}: COMPLETED after collecting {taken}"
    else:
        assert billing.paid_through is not None
        bound = _period_end(billing, _periods_paid(plan, taken))
        assert billing.paid_through <= bound, (
            f"{purchase_id}: paid through {billing.paid_through}, "
            f"but the gateway took {taken}, which pays through {bound}"
        )


# --------------------------------------------------------------------------- a) state machine


@dataclass
class Bought:
    purchase_id: str
    member_id: str
    plan_name: str


class BillingHistories(RuleBasedStateMachine):
    """Random histories of one portal's recurring billing, checked after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.portal = make_test_portal(default_gateway="test")
        self.gateway = self.portal.gateway
        course = build_course(self.portal, lessons=1)
        self.lesson_id = course.lessons[0].id
        self.offers = {}
        for name, plan in PLANS.items():
            offer = self.portal.offers.create_offer(name, [course.product.id], plan=plan)
            self.offers[name] = self.portal.offers.publish(offer.id).id
        self.bought: list[Bought] = []
        self.emails = itertools.count(1)
        #: Every event delivered so far, with when it was first delivered.
        self.delivered: dict[str, tuple[GatewayEvent, datetime]] = {}
        #: References of payments whose success reached the portal (answer or webhook).
        self.success_told: set[str] = set()

    def teardown(self) -> None:
        self.portal.close()

    # -- rules -----------------------------------------------------------------------

    @rule(plan_name=st.sampled_from(sorted(PLANS)))
    def buy(self, plan_name: str) -> None:
        email = f"buyer{next(self.emails)}@example.com"
        try:
            purchase = self.portal.checkout.purchase(self.offers[plan_name], email=email)
        except PaymentDeclined:
            return
        except TimeoutError:
            return  # scripted Raise: the outcome is unknown, nothing was taken
        self.bought.append(Bought(purchase.id, purchase.member_id, plan_name))
        if purchase.status is PurchaseStatus.PAID and purchase.gateway_reference:
            self.success_told.add(purchase.gateway_reference)

    @rule(seconds=st.one_of(st.integers(60, 6 * 3600), st.integers(6 * 3600, 40 * 86400)))
    def advance(self, seconds: int) -> None:
        self.portal.clock.advance(timedelta(seconds=seconds))

    @rule()
    def tick(self) -> None:
        self.portal.tick()
        self._note_answered_successes()

    @rule(
        outcome=st.sampled_from(
            [
                Decline("card_declined"),
                Pending(),
                ActionRequired(),
                Raise(TimeoutError("provider timed out")),
                Succeed(),
            ]
        )
    )
    def script(self, outcome: Outcome) -> None:
        self.gateway.script(outcome)

    @precondition(lambda self: self._unsettled())
    @rule(data=st.data(), succeed=st.booleans())
    def settle(self, data: st.DataObject, succeed: bool) -> None:
        payment = data.draw(st.sampled_from(self._unsettled()), label="payment")
        self.gateway.settle(payment.reference, succeed=succeed, reason="bank_refused")

    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        deliveries = self.gateway.take_webhooks()
        copies = [d for d in deliveries for _ in range(data.draw(st.integers(1, 3), label="n"))]
        now = self.portal.clock.now()
        for delivery in data.draw(st.permutations(copies), label="order"):
            self.portal.payments.handle_webhook("test", delivery.body, delivery.headers)
        events = {event.id: event for event in self.gateway.events}
        for delivery in deliveries:
            for event_id in delivery.event_ids:
                self.delivered.setdefault(event_id, (events[event_id], now))

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def redeliver_late(self, data: st.DataObject) -> None:
        """A gateway retries an event it already delivered, maybe days later."""
        event_id = data.draw(st.sampled_from(sorted(self.delivered)), label="event")
        event, first = self.delivered[event_id]
        late = self.gateway.webhook_for(event)
        receipt = self.portal.payments.handle_webhook("test", late.body, late.headers)
        if self.portal.clock.now() - first < INBOX_RETENTION:
            assert receipt.duplicates == 1, f"a redelivery of {event_id} was not a duplicate"

    @precondition(lambda self: self.bought)
    @rule(data=st.data(), at_period_end=st.booleans())
    def cancel(self, data: st.DataObject, at_period_end: bool) -> None:
        bought = data.draw(st.sampled_from(self.bought), label="purchase")
        # Conflict: pending (no billing yet), already over, or cancelled the other way.
        with contextlib.suppress(Conflict):
            self.portal.billing.cancel(bought.purchase_id, at_period_end=at_period_end)

    @precondition(lambda self: self.bought)
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        bought = data.draw(st.sampled_from(self.bought), label="purchase")
        with contextlib.suppress(Conflict):  # not paid, or nothing left to refund
            self.portal.payments.refund(bought.purchase_id)

    # -- helpers ---------------------------------------------------------------------

    def _unsettled(self) -> list[RecordedPayment]:
        waiting = (PaymentStatus.PENDING, PaymentStatus.ACTION_REQUIRED)
        return [p for p in self.gateway.payments if p.status in waiting]

    def _note_answered_successes(self) -> None:
        # An off-session charge that succeeded at once was answered to tick() directly.
        for payment in self.gateway.payments:
            if payment.off_session and payment.status is PaymentStatus.SUCCEEDED:
                events = [
                    e for e in self.gateway.events if e.payment_reference == payment.reference
                ]
                if not events:
                    self.success_told.add(payment.reference)

    def _billing(self, purchase_id: str) -> Billing | None:
        try:
            return self.portal.billing.get(purchase_id)
        except Conflict:
            return None

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def money_follows_the_schedule(self) -> None:
        now = self.portal.clock.now()
        ledger = self.gateway.payments
        for bought in self.bought:
            purchase = self.portal.checkout.get(bought.purchase_id)
            billing = self._billing(bought.purchase_id)
            check_ledger(ledger, bought.purchase_id, billing, purchase.amount, now)

    @invariant()
    def no_success_told_to_the_portal_is_lost(self) -> None:
        """A payment the portal was told succeeded is on its books as SUCCEEDED."""
        delivered_successes = {
            event.payment_reference
            for event, _ in self.delivered.values()
            if event.type.value == "payment_succeeded"
        }
        told = self.success_told | delivered_successes
        for bought in self.bought:
            payments = self.portal.billing.payments(bought.purchase_id)
            recorded = {p.gateway_reference for p in payments if p.state is PaymentState.SUCCEEDED}
            for payment in _succeeded(self.gateway.payments, bought.purchase_id):
                if payment.reference in told:
                    assert payment.reference in recorded, (
                        f"{bought.purchase_id}: the portal was told {payment.reference} "
                        f"({payment.amount}) succeeded, but its payments say "
                        f"{[(p.sequence, p.state.value, p.gateway_reference) for p in payments]}"
                    )

    @invariant()
    def access_matches_billing(self) -> None:
        """Who can see the lesson is exactly what the billing says.

        The rule, from ``checkout._grant``, ``billing._bound_access``,
        ``payments._revoke`` and ``domain.billing.access_ends_at``:

        - a purchase that is PENDING or FAILED (first payment not through) grants
          nothing, and a wholly REFUNDED one had its access revoked;
        - otherwise (PAID) its billing decides: access runs up to
          ``access_ends_at(billing)`` (exclusive), ``None`` meaning no end. That is
          ``paid_through`` for a trialing or active subscription; for a past-due
          one ``max(paid_through, next retry + RETRY_GRACE)`` (kept while retries
          are scheduled, never less than the paid period); ``ended_at`` once
          cancelled or defaulted (never inside a paid period unless cancelled
          immediately); a payment plan has no end while it runs or once
          completed, and ``ended_at`` after a cancel or a default.

        Every buyer here has exactly one purchase, so the lesson's access is that
        purchase's.
        """
        now = self.portal.clock.now()
        for bought in self.bought:
            purchase = self.portal.checkout.get(bought.purchase_id)
            billing = self._billing(bought.purchase_id)
            if purchase.status in (
                PurchaseStatus.PENDING,
                PurchaseStatus.FAILED,
                PurchaseStatus.REFUNDED,
            ):
                expected = False
                why = f"purchase {purchase.status.value}"
            else:
                assert purchase.status is PurchaseStatus.PAID, purchase.status
                assert billing is not None, f"{bought.purchase_id} is paid but has no billing"
                ends = access_ends_at(billing)
                expected = ends is None or now < ends
                why = f"billing {billing}, access ends {ends}"
            decision = self.portal.access.can_view(bought.member_id, self.lesson_id)
            assert decision.allowed is expected, (
                f"{bought.purchase_id} ({bought.plan_name}) at {now}: can_view says "
                f"{decision}, expected {expected} ({why})"
            )
            if (
                billing is not None
                and purchase.status is PurchaseStatus.PAID
                and billing.paid_through is not None
                and billing.status is not BillingStatus.CANCELED
                and now < billing.paid_through
            ):
                assert decision.allowed, f"{bought.purchase_id}: locked out inside a paid period"


BillingHistories.TestCase.settings = settings(stateful_step_count=25)
TestBillingHistories = BillingHistories.TestCase


# --------------------------------------------------------------------------- b) Jepsen-style

#: Histories per database (each on its own tenant); raise it for a longer soak.
HISTORIES = int(os.environ.get("MC_HISTORIES", "3"))
#: Rounds (advance time, tick, settle, deliver) per history.
ROUNDS = int(os.environ.get("MC_ROUNDS", "8"))
WORKERS = 3


@dataclass
class History:
    """What happened, in order, for the checker (and for reading a failure)."""

    seed: int
    ops: list[tuple[Any, ...]] = field(default_factory=list)
    errors: list[tuple[str, BaseException]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, *op: Any) -> None:
        with self.lock:
            self.ops.append(op)

    def failed(self, where: str, error: BaseException) -> None:
        with self.lock:
            self.errors.append((where, error))

    def __str__(self) -> str:
        lines = [f"history seed={self.seed}"] + [repr(op) for op in self.ops[-60:]]
        return "\n".join(lines)


def _concurrently(history: History, jobs: list[tuple[str, Callable[[], Any]]]) -> None:
    """Run the jobs at the same moment, one thread each; record results and errors."""
    barrier = threading.Barrier(len(jobs))

    def run(name: str, job: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            history.record(name, job())
        except BaseException as error:  # the checker reports every escaped exception
            history.failed(name, error)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _deliver_all(
    history: History, rng: random.Random, gateway: TestGateway, portals: list[Portal]
) -> None:
    """Take the queued webhooks and deliver each 1-5 times, shuffled, from several threads."""
    deliveries = gateway.take_webhooks()
    copies = [d for d in deliveries for _ in range(rng.randint(1, 5))]
    rng.shuffle(copies)
    lanes: list[list[Any]] = [[] for _ in portals]
    for delivery in copies:
        lanes[rng.randrange(len(lanes))].append(delivery)

    def lane(portal: Portal, batch: list[Any]) -> Callable[[], Any]:
        def deliver() -> Any:
            return [
                (d.event_ids, portal.payments.handle_webhook("test", d.body, d.headers))
                for d in batch
            ]

        return deliver

    jobs = [
        (f"deliver@{i}", lane(p, batch))
        for i, (p, batch) in enumerate(zip(portals, lanes, strict=True))
    ]
    # One more worker ticks while the webhooks arrive: the inbox and the scheduler race.
    jobs.append(("tick-during-delivery", portals[0].tick))
    _concurrently(history, jobs)


def _settle_some(history: History, rng: random.Random, gateway: TestGateway, share: float) -> None:
    for payment in gateway.payments:
        waiting = payment.status in (PaymentStatus.PENDING, PaymentStatus.ACTION_REQUIRED)
        if waiting and rng.random() < share:
            succeed = rng.random() < 0.7
            gateway.settle(payment.reference, succeed=succeed, reason="bank_refused")
            history.record("settle", payment.reference, payment.purchase_id, succeed)


def _random_outcomes(rng: random.Random) -> list[Outcome]:
    choices: list[Outcome] = [
        Succeed(),
        Succeed(),
        Decline("card_declined"),
        Decline("insufficient_funds"),
        Pending(),
        ActionRequired(),
        Raise(TimeoutError("provider timed out")),
    ]
    return [rng.choice(choices) for _ in range(rng.randint(0, 4))]


def _check_history(
    history: History,
    portal: Portal,
    gateway: TestGateway,
    bought: list[tuple[str, str]],
    lesson_id: str,
    *,
    final: bool,
) -> None:
    """The checker: the portal's books against the gateway's ledger of money."""
    assert not history.errors, f"{history}\nescaped: {history.errors}"
    now = portal.clock.now()
    ledger = gateway.payments
    for purchase_id, member_id in bought:
        purchase = portal.checkout.get(purchase_id)
        try:
            billing: Billing | None = portal.billing.get(purchase_id)
        except Conflict:
            billing = None
        check_ledger(ledger, purchase_id, billing, purchase.amount, now)
        # Access never runs past what was paid, plus the documented dunning grace.
        allowed = portal.access.can_view(member_id, lesson_id).allowed
        if billing is None:
            assert not allowed, f"{history}\n{purchase_id}: access without a paid first charge"
            continue
        plan = billing.plan
        rows = portal.billing.payments(purchase_id)
        awaiting = any(
            p.sequence == billing.next_sequence and p.state is PaymentState.PENDING for p in rows
        )
        if isinstance(plan, Subscription) and allowed and not awaiting:
            taken = _total(_succeeded(ledger, purchase_id))
            bound = _period_end(billing, _periods_paid(plan, taken))
            if billing.first_failed_at is not None:
                grace = billing.first_failed_at + PolicyWindow.within + RETRY_GRACE
                bound = max(bound, grace)
            assert now < bound, (
                f"{history}\n{purchase_id}: access at {now}, but the money taken "
                f"({taken}) and dunning only cover until {bound}: {billing}"
            )
        if isinstance(plan, PaymentPlan) and billing.status is BillingStatus.DEFAULTED:
            assert not allowed, f"{history}\n{purchase_id}: defaulted plan still grants access"
    if not final:
        return
    # Every succeeded gateway payment is on the books as SUCCEEDED exactly once, and no
    # payment is on the books as SUCCEEDED without money taken at the gateway.
    by_reference: dict[str, list[Any]] = collections.defaultdict(list)
    for purchase_id, _ in bought:
        for row in portal.billing.payments(purchase_id):
            if row.state is PaymentState.SUCCEEDED:
                by_reference[str(row.gateway_reference)].append(row)
    succeeded = {p.reference: p for p in ledger if p.status is PaymentStatus.SUCCEEDED}
    for reference, payment in succeeded.items():
        rows = by_reference.get(reference, [])
        assert rows, f"{history}\ngateway payment {payment} is not recorded as SUCCEEDED"
        assert sum((r.amount for r in rows), Money.zero(EUR)) == payment.amount, (
            f"{history}\ngateway payment {payment} is recorded as {rows}"
        )
        if _key_prefix(payment).startswith("checkout:"):
            assert {r.sequence for r in rows} <= {1, 2}
        else:
            (row,) = rows
            assert f"{row.purchase_id}:{row.sequence}" == _key_prefix(payment), (row, payment)
    for reference, rows in by_reference.items():
        if any(r.amount.amount > 0 for r in rows):
            assert reference in succeeded, f"{history}\nrecorded as paid, never taken: {rows}"


class PolicyWindow:
    """The default dunning window (8 attempts within 14 days)."""

    within = timedelta(days=14)


def _run_history(storages: list[Any], seed: int) -> History:
    rng = random.Random(seed)
    history = History(seed)
    clock = FrozenClock(datetime.fromisoformat("2026-01-05T09:00:00+00:00"))
    ids = SequentialIds()  # shared: the portals write to one tenant
    gateway = TestGateway(clock=clock)
    tenant = f"h{seed}"
    portals = [
        Portal.open(
            storage,
            tenant=tenant,
            clock=clock,
            ids=ids,
            mailer=MemoryMailer(),
            gateways={"test": gateway},
            default_gateway="test",
            load_entrypoints=False,
        )
        for storage in storages
    ]
    try:
        seeder = portals[0]
        course = build_course(seeder, lessons=1)
        offers = {}
        for name, plan in PLANS.items():
            offer = seeder.offers.create_offer(name, [course.product.id], plan=plan)
            offers[name] = seeder.offers.publish(offer.id).id
        bought: list[tuple[str, str]] = []
        for index, name in enumerate(sorted(PLANS) * 2):
            if rng.random() < 0.25:
                gateway.script(Pending())
            purchase = seeder.checkout.purchase(offers[name], email=f"b{index}@example.com")
            bought.append((purchase.id, purchase.member_id))
            history.record("buy", purchase.id, name, purchase.status.value)
        for round_ in range(ROUNDS):
            clock.advance(timedelta(minutes=rng.randint(30, 20 * 24 * 60)))
            outcomes = _random_outcomes(rng)
            gateway.script(*outcomes)
            history.record("round", round_, clock.now(), outcomes)
            _concurrently(
                history,
                [(f"tick@{i}", portal.tick) for i, portal in enumerate(portals)],
            )
            _settle_some(history, rng, gateway, share=0.8)
            _deliver_all(history, rng, gateway, portals)
            _check_history(history, seeder, gateway, bought, course.lessons[0].id, final=False)
        # Quiesce: every payment settled, every webhook delivered, the inbox drained.
        for _ in range(3):
            _settle_some(history, rng, gateway, share=1.0)
            _deliver_all(history, rng, gateway, portals)
            seeder.tick()
        _check_history(history, seeder, gateway, bought, course.lessons[0].id, final=True)
        return history
    finally:
        for portal in portals:
            portal.close()


@pytest.mark.parametrize("database", ["sqlite_url", "postgres_url"])
def test_concurrent_billing_histories(database: str, request: pytest.FixtureRequest) -> None:
    from membership_core.adapters.sql import SqlStorage

    url = str(request.getfixturevalue(database))
    # One storage (connection pool) per worker, as separate processes would have.
    storages = [SqlStorage(url) for _ in range(WORKERS)]
    started = time.monotonic()
    try:
        for seed in range(HISTORIES):
            _run_history(storages, seed)
    finally:
        for storage in storages:
            storage.close()
    print(f"{HISTORIES} histories x {ROUNDS} rounds in {time.monotonic() - started:.1f}s")


# --------------------------------------------------------------------------- minimal reproductions
# Shrunk from failures of the tests above; each fails for exactly one reason.


def _monthly_shop(portal: Portal) -> tuple[str, str]:
    course = build_course(portal, lessons=1)
    offer = portal.offers.create_offer("Monthly", [course.product.id], plan=PLANS["monthly"])
    return portal.offers.publish(offer.id).id, course.lessons[0].id


def test_a_renewal_that_succeeds_after_a_cancel_is_still_on_the_books() -> None:
    """Money the gateway took is recorded, even when the subscription was cancelled meanwhile."""
    with make_test_portal(default_gateway="test") as portal:
        offer_id, _ = _monthly_shop(portal)
        purchase = portal.checkout.purchase(offer_id, email="ada@example.com")
        portal.clock.set(portal.billing.get(purchase.id).paid_through)  # type: ignore[arg-type]
        portal.gateway.script(Pending())
        assert portal.tick().charges_pending == 1
        portal.billing.cancel(purchase.id)  # while renewal 2 is pending at the bank
        (renewal,) = [p for p in portal.billing.payments(purchase.id) if p.sequence == 2]
        assert renewal.gateway_reference is not None
        portal.gateway.settle(renewal.gateway_reference)  # the bank takes the money
        (delivery,) = portal.gateway.take_webhooks()
        portal.payments.handle_webhook("test", delivery.body, delivery.headers)
        portal.tick()
        assert portal.gateway.charged() == {EUR: Money.of("40", EUR)}
        (renewal,) = [p for p in portal.billing.payments(purchase.id) if p.sequence == 2]
        assert renewal.state is PaymentState.SUCCEEDED, (
            "the gateway took 20 EUR for renewal 2 but the portal never records it "
            f"(payment {renewal.state.value}, webhook outcome "
            f"{portal.payments.webhook_events()[0].outcome!r})"
        )


def _open_workers(url: str, tenant: str, clock: FrozenClock, count: int) -> list[Portal]:
    gateway = TestGateway(clock=clock)
    ids = SequentialIds()
    return [
        Portal.open(
            url,
            tenant=tenant,
            clock=clock,
            ids=ids,
            mailer=MemoryMailer(),
            gateways={"test": gateway},
            default_gateway="test",
            load_entrypoints=False,
        )
        for _ in range(count)
    ]


def _tick_at_once(portals: list[Portal]) -> list[BaseException]:
    history = History(seed=0)
    _concurrently(history, [(f"tick@{i}", p.tick) for i, p in enumerate(portals)])
    return [error for _, error in history.errors]


def test_the_first_ticks_of_several_workers_do_not_collide(postgres_url: str) -> None:
    """Concurrent first ticks on a fresh tenant: no worker's tick may fail."""
    for attempt in range(5):  # a race: a few tries make it show reliably
        clock = FrozenClock(datetime.fromisoformat("2026-01-05T09:00:00+00:00"))
        portals = _open_workers(postgres_url, f"first{attempt}", clock, 4)
        try:
            errors = _tick_at_once(portals)
        finally:
            for portal in portals:
                portal.close()
        assert errors == [], f"attempt {attempt}: concurrent first ticks raised {errors!r}"


def test_concurrent_ticks_prune_old_webhooks_without_failing(postgres_url: str) -> None:
    """Concurrent ticks that both find a webhook event old enough to prune."""
    for attempt in range(5):
        clock = FrozenClock(datetime.fromisoformat("2026-01-05T09:00:00+00:00"))
        portals = _open_workers(postgres_url, f"prune{attempt}", clock, 4)
        try:
            seller = portals[0]
            offer_id, _ = _monthly_shop(seller)
            gateway = seller._context.gateways["test"]
            assert isinstance(gateway, TestGateway)
            gateway.script(Pending())
            purchase = seller.checkout.purchase(offer_id, email="ada@example.com")
            assert purchase.gateway_reference is not None
            gateway.settle(purchase.gateway_reference)
            (delivery,) = gateway.take_webhooks()
            seller.payments.handle_webhook("test", delivery.body, delivery.headers)
            seller.tick()  # every worker's checkpoints exist: only pruning races below
            clock.advance(days=31)
            errors = _tick_at_once(portals)
        finally:
            for portal in portals:
                portal.close()
        assert errors == [], f"attempt {attempt}: concurrent pruning raised {errors!r}"
