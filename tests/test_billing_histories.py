"""Randomized billing histories, checked against the gateway's ledger of money.

Two kinds of test live here:

- :class:`BillingHistories`, a Hypothesis state machine at the service level
  (memory back end): buy subscriptions and payment plans, move the clock,
  tick, script the gateway, settle pending payments, deliver webhooks twice and
  out of order, cancel, refund; after every step the invariants compare what
  the portal says with what the :class:`TestGateway` recorded (the independent
  record of money).
- :func:`test_concurrent_billing_histories`, Jepsen-style histories on SQLite
  and PostgreSQL: thousands of small randomized histories (one buyer and one
  checkout key each; 150 side by side per tenant, the database and its worker
  portals reused by every tenant). The same checkout is submitted from 1-3
  workers at once; then rounds of clock jumps, concurrent ticks, banks settling
  (also by themselves, ``SettleLater``), disputes opened and won or lost,
  webhooks delivered 1-5 times in a seeded random order by several workers
  while the host refunds (whole, partly, one line of the bundle) and cancels.
  The checker finds no purchase granted twice (``OfferPurchased``,
  ``AccessGranted`` and enrollments per purchase and product), no charge made
  twice (per checkout key and per billing period), no access to an unpaid,
  refunded or lost period, no charge after billing stopped (a whole refund, a
  lost dispute, a cancel), amounts within the plan, and every payment on the
  books once.

``MC_HISTORIES`` (both databases), ``MC_HISTORIES_SQLITE``,
``MC_HISTORIES_POSTGRES``, ``MC_HISTORIES_PER_TENANT`` and ``MC_ROUNDS`` size
the Jepsen-style run; the defaults fit about 2.5 minutes on two cores.
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

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from membership_core import (
    BillingPeriod,
    Conflict,
    Interval,
    Money,
    NotFound,
    OneTime,
    PaymentDeclined,
    PaymentPlan,
    Portal,
    PurchaseStatus,
    RefundFailed,
    SequentialIds,
    Subscription,
    ValidationError,
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
    SettleLater,
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

#: Randomized histories per database in all: each is one buyer with a checkout key of
#: its own, so many of them share a tenant (and its worker portals) side by side.
#: PostgreSQL round trips cost more, so it runs fewer in the same time; MC_HISTORIES
#: sets both (e.g. 20000 for a soak).
HISTORIES = {
    "sqlite_url": int(
        os.environ.get("MC_HISTORIES", os.environ.get("MC_HISTORIES_SQLITE", "1600"))
    ),
    "postgres_url": int(
        os.environ.get("MC_HISTORIES", os.environ.get("MC_HISTORIES_POSTGRES", "800"))
    ),
}
#: Histories sharing one tenant, one gateway and one set of worker portals.
PER_TENANT = int(os.environ.get("MC_HISTORIES_PER_TENANT", "150"))
#: Rounds (advance time, tick, provider moves, deliver + host actions) per tenant.
ROUNDS = int(os.environ.get("MC_ROUNDS", "6"))
WORKERS = 3

#: What a history buys: the recurring plans above, and a one-time sale. Every offer is a
#: bundle of two products, so grants are counted per purchase *and* product.
HISTORY_PLANS: dict[str, Subscription | PaymentPlan | OneTime] = {
    **PLANS,
    "one_time": OneTime(Money.of("30", EUR)),
}

#: Billing states that still charge.
LIVE = (BillingStatus.TRIALING, BillingStatus.ACTIVE, BillingStatus.PAST_DUE)


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
        lines = [f"history seed={self.seed}"] + [repr(op)[:400] for op in self.ops[-60:]]
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


@dataclass
class Story:
    """One randomized history: a buyer, a checkout key submitted 1-3 times at once, and
    what the host and the provider did to that purchase afterwards."""

    index: int
    plan_name: str
    key: str
    email: str
    workers: list[int]
    results: list[str] = field(default_factory=list)
    purchase_id: str | None = None
    member_id: str | None = None
    #: Gateway payment references of this purchase with a dispute opened / lost.
    disputed: str | None = None
    lost_dispute: bool = False
    #: Set once billing has stopped for good (full refund, lost dispute, cancel, ...):
    #: why, and how many gateway payments the purchase had then (no new one may follow).
    stopped: str | None = None
    attempts_when_stopped: int = 0
    line_refund_done: bool = False


def _story_payments(ledger: tuple[RecordedPayment, ...], story: Story) -> list[RecordedPayment]:
    return [p for p in ledger if p.purchase_id == story.purchase_id]


def _checkouts(
    history: History,
    rng: random.Random,
    portals: list[Portal],
    offers: dict[str, str],
    stories: list[Story],
) -> None:
    """Every story's checkout, submitted from 1-3 workers at once with the same key."""
    order = stories[:]
    rng.shuffle(order)
    lock = threading.Lock()

    def lane(worker: int) -> Callable[[], Any]:
        def run() -> Any:
            portal = portals[worker]
            for story in order:
                if worker not in story.workers:
                    continue
                try:
                    purchase = portal.checkout.purchase(
                        offers[story.plan_name], email=story.email, idempotency_key=story.key
                    )
                except PaymentDeclined:
                    continue
                except TimeoutError:
                    continue  # scripted Raise: the buyer sees an error and may retry
                with lock:
                    story.results.append(purchase.id)
            return len(order)

        return run

    _concurrently(history, [(f"checkout@{w}", lane(w)) for w in range(len(portals))])
    for story in stories:
        if not story.results:  # the buyer retries once, same key
            with contextlib.suppress(PaymentDeclined, TimeoutError):
                story.results.append(
                    portals[0]
                    .checkout.purchase(
                        offers[story.plan_name], email=story.email, idempotency_key=story.key
                    )
                    .id
                )
        if story.results:
            assert len(set(story.results)) == 1, (
                f"{history}\none key {story.key} gave several purchases: {story.results}"
            )
            story.purchase_id = story.results[0]
            story.member_id = portals[0].checkout.get(story.purchase_id).member_id
        history.record("checkout", story.key, story.plan_name, story.results)


def _provider_moves(
    history: History, rng: random.Random, gateway: TestGateway, stories: list[Story]
) -> None:
    """The provider's side: banks settle, buyers open disputes, disputes close."""
    for payment in gateway.payments:
        waiting = payment.status in (PaymentStatus.PENDING, PaymentStatus.ACTION_REQUIRED)
        if waiting and rng.random() < 0.6:
            succeed = rng.random() < 0.7
            gateway.settle(payment.reference, succeed=succeed, reason="bank_refused")
            history.record("settle", payment.reference, payment.purchase_id, succeed)
    by_purchase: dict[str, list[RecordedPayment]] = collections.defaultdict(list)
    for payment in gateway.payments:
        by_purchase[payment.purchase_id].append(payment)
    for story in stories:
        if story.purchase_id is None:
            continue
        if story.disputed is None and rng.random() < 0.04:
            paid = [
                p for p in by_purchase[story.purchase_id] if p.status is PaymentStatus.SUCCEEDED
            ]
            if paid:
                story.disputed = rng.choice(paid).reference
                gateway.open_dispute(story.disputed)
                history.record("dispute", story.purchase_id, story.disputed)
        elif (
            story.disputed is not None
            and gateway.payment(story.disputed).dispute == "open"
            and rng.random() < 0.5
        ):
            won = rng.random() < 0.4
            gateway.close_dispute(story.disputed, won=won)
            story.lost_dispute = not won
            history.record("dispute closed", story.purchase_id, "won" if won else "lost")


def _host_action(
    rng: random.Random, story: Story, products: tuple[str, str]
) -> Callable[[Portal], Any] | None:
    """Maybe one thing the host does to the story's purchase this round."""
    pid = story.purchase_id
    if pid is None:
        return None
    roll = rng.random()
    if roll < 0.03:
        return lambda portal: ("refund", portal.payments.refund(pid).status.value)
    if roll < 0.05:
        part = Money.of(rng.choice(["1", "2.50", "4"]), EUR)
        return lambda portal: ("partial refund", portal.payments.refund(pid, part).status.value)
    if roll < 0.07:
        line = Money.of("1", EUR)

        def line_refund(portal: Portal) -> Any:
            refunded = portal.payments.refund(pid, line, product_ids=[products[1]])
            story.line_refund_done = True
            return ("line refund", refunded.status.value)

        return line_refund
    if roll < 0.10:
        at_period_end = rng.random() < 0.7
        return lambda portal: (
            "cancel",
            portal.billing.cancel(pid, at_period_end=at_period_end).status.value,
        )
    return None


def _deliver_and_act(
    history: History,
    rng: random.Random,
    gateway: TestGateway,
    portals: list[Portal],
    stories: list[Story],
    products: tuple[str, str],
) -> None:
    """Deliver the queued webhooks (each 1-5 times, shuffled, by the gateway itself) from
    several workers, while the host refunds and cancels and one more worker ticks."""
    deliveries = gateway.take_webhooks(duplicates=5, shuffle=rng)
    work: list[Callable[[Portal], Any]] = []
    for delivery in deliveries:
        work.append(
            lambda portal, d=delivery: (
                d.event_ids,
                attrs.astuple(portal.payments.handle_webhook("test", d.body, d.headers)),
            )
        )
    for story in stories:
        action = _host_action(rng, story, products)
        if action is not None:
            work.append(action)
    rng.shuffle(work)
    lanes: list[list[Callable[[Portal], Any]]] = [[] for _ in portals]
    for item in work:
        lanes[rng.randrange(len(lanes))].append(item)

    def lane(portal: Portal, batch: list[Callable[[Portal], Any]]) -> Callable[[], Any]:
        def run() -> Any:
            done = []
            for item in batch:
                # Conflict: nothing left to refund, not paid yet, already cancelled, ...
                try:
                    done.append(item(portal))
                except (Conflict, NotFound, RefundFailed) as refused:
                    done.append(("refused", type(refused).__name__))
                except ValidationError as refused:
                    # A partial refund of more than is left, after another lane's.
                    if refused.field != "amount":
                        raise
                    done.append(("refused", str(refused)))
            return done

        return run

    jobs = [(f"lane@{i}", lane(p, b)) for i, (p, b) in enumerate(zip(portals, lanes, strict=True))]
    jobs.append(("tick-during-delivery", portals[0].tick))
    _concurrently(history, jobs)


def _billing_or_none(portal: Portal, purchase_id: str) -> Billing | None:
    try:
        return portal.billing.get(purchase_id)
    except (Conflict, NotFound):
        return None


def _note_stops(portal: Portal, gateway: TestGateway, stories: list[Story]) -> None:
    """Remember when each purchase stopped billing for good, and its charges then."""
    ledger = gateway.payments
    for story in stories:
        if story.purchase_id is None or story.stopped is not None:
            continue
        purchase = portal.checkout.get(story.purchase_id)
        billing = _billing_or_none(portal, story.purchase_id)
        why = None
        if purchase.status is PurchaseStatus.REFUNDED:
            why = "refunded" if not story.lost_dispute else "dispute lost"
        elif billing is not None and billing.status not in LIVE:
            why = f"billing {billing.status.value}"
        if why is not None:
            story.stopped = why
            story.attempts_when_stopped = len(_story_payments(ledger, story))


def _check_world(
    history: History,
    portal: Portal,
    gateway: TestGateway,
    stories: list[Story],
    lessons: tuple[str, str],
    *,
    final: bool,
) -> None:
    """The checker: every story's books against the gateway's ledger of money."""
    assert not history.errors, f"{history}\nescaped: {history.errors}"
    now = portal.clock.now()
    ledger = gateway.payments
    for story in stories:
        if story.purchase_id is None:
            continue
        purchase_id = story.purchase_id
        member_id = story.member_id
        assert member_id is not None
        purchase = portal.checkout.get(purchase_id)
        billing = _billing_or_none(portal, purchase_id)
        mine = _story_payments(ledger, story)
        where = f"{history}\n{purchase_id} ({story.plan_name}, {purchase.status.value})"
        # No charge made twice: one gateway payment per checkout key, and per
        # (purchase, sequence) at most one that succeeded (check_ledger).
        checkout_keys = collections.Counter(
            p.idempotency_key for p in mine if _key_prefix(p).startswith("checkout:")
        )
        assert all(n == 1 for n in checkout_keys.values()), f"{where}: {checkout_keys}"
        plan = HISTORY_PLANS[story.plan_name]
        if isinstance(plan, OneTime):
            ok = _succeeded(ledger, purchase_id)
            assert len(ok) <= 1, f"{where}: one-time sale charged {len(ok)} times"
            assert _total(ok) <= plan.price, f"{where}: took {_total(ok)} of {plan.price}"
        else:
            check_ledger(ledger, purchase_id, billing, purchase.amount, now)
        # Nothing charged after billing stopped for good (refund, lost dispute, cancel).
        if story.stopped is not None:
            assert len(mine) == story.attempts_when_stopped, (
                f"{where}: {len(mine) - story.attempts_when_stopped} new charge(s) after "
                f"billing stopped ({story.stopped}): {mine[story.attempts_when_stopped :]}"
            )
        # A lost dispute takes the money back for good: no access, no more billing.
        allowed = portal.access.can_view(member_id, lessons[0]).allowed
        if story.lost_dispute and purchase.status is not PurchaseStatus.DISPUTED:
            assert not allowed, f"{where}: access after a lost dispute"
            if billing is not None:
                assert billing.status not in LIVE, (
                    f"{where}: the dispute was lost but the billing is still "
                    f"{billing.status.value} and keeps charging: {billing}"
                )
        if purchase.status in (
            PurchaseStatus.PENDING,
            PurchaseStatus.FAILED,
            PurchaseStatus.REFUNDED,
        ):
            assert not allowed, f"{where}: access without money kept"
        if story.line_refund_done:  # a refund of product B's line ends B's access only
            assert not portal.access.can_view(member_id, lessons[1]).allowed, (
                f"{where}: access to a refunded line of the bundle"
            )
        if billing is None:
            if not isinstance(plan, OneTime):
                assert not allowed, f"{where}: access without a paid first charge"
            continue
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
                f"{where}: access at {now}, but the money taken "
                f"({taken}) and dunning only cover until {bound}: {billing}"
            )
        if isinstance(plan, PaymentPlan) and billing.status is BillingStatus.DEFAULTED:
            assert not allowed, f"{where}: defaulted plan still grants access"
    if final:
        _check_grants_and_books(history, portal, gateway, stories)


def _check_grants_and_books(
    history: History, portal: Portal, gateway: TestGateway, stories: list[Story]
) -> None:
    """No purchase granted twice, declines left nothing, every payment booked once."""
    bought = {s.purchase_id: s for s in stories if s.purchase_id is not None}
    with portal.storage.unit_of_work(portal.tenant) as uow:
        purchased = collections.Counter(
            e.payload["purchase_id"] for e in uow.events.find({"type": "OfferPurchased"})
        )
        granted = collections.Counter(
            (e.payload["purchase_id"], e.payload["product_id"])
            for e in uow.events.find({"type": "AccessGranted"})
        )
        enrolled = collections.Counter(
            (e.purchase_id, e.product_id) for e in uow.enrollments.find()
        )
        purchases = uow.purchases.find()
        emails = {member.email.lower() for member in uow.members.find()}
    twice = {k: n for k, n in purchased.items() if n > 1}
    assert not twice, f"{history}\nOfferPurchased more than once: {twice}"
    twice_granted = {k: n for k, n in granted.items() if n > 1}
    assert not twice_granted, f"{history}\nAccessGranted more than once: {twice_granted}"
    twice_enrolled = {k: n for k, n in enrolled.items() if n > 1}
    assert not twice_enrolled, f"{history}\nenrolled more than once: {twice_enrolled}"
    by_key = collections.Counter(p.idempotency_key for p in purchases)
    for story in stories:
        assert by_key[story.key] <= 1, f"{history}\n{story.key}: {by_key[story.key]} purchases"
        if story.purchase_id is None:
            assert by_key[story.key] == 0, f"{history}\n{story.key}: purchase nobody was told"
            assert story.email not in emails, (
                f"{history}\n{story.key}: declined checkout left its member behind"
            )
    # Every succeeded gateway payment is on the books as SUCCEEDED exactly once, and no
    # payment is on the books as SUCCEEDED without money taken at the gateway.
    by_reference: dict[str, list[Any]] = collections.defaultdict(list)
    for purchase_id in bought:
        assert purchase_id is not None
        for row in portal.billing.payments(purchase_id):
            if row.state is PaymentState.SUCCEEDED:
                by_reference[str(row.gateway_reference)].append(row)
    succeeded = {
        p.reference: p
        for p in gateway.payments
        if p.status is PaymentStatus.SUCCEEDED and p.purchase_id in bought
    }
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


def _checkout_outcomes(rng: random.Random, count: int) -> list[Outcome]:
    choices: list[Outcome] = [
        Succeed(),
        Succeed(),
        Succeed(),
        Decline("card_declined"),
        Pending(),
        SettleLater(after=timedelta(hours=rng.randint(1, 72))),
        Raise(TimeoutError("provider timed out")),
    ]
    return [rng.choice(choices) for _ in range(count)]


def _renewal_outcomes(rng: random.Random, count: int) -> list[Outcome]:
    choices: list[Outcome] = [
        Succeed(),
        Succeed(),
        Decline("card_declined"),
        Decline("insufficient_funds"),
        Pending(),
        ActionRequired(),
        SettleLater(after=timedelta(hours=rng.randint(1, 240)), succeed=rng.random() < 0.7),
        Raise(TimeoutError("provider timed out")),
    ]
    return [rng.choice(choices) for _ in range(count)]


def _run_tenant(storages: list[Any], seed: int, size: int) -> int:
    """``size`` histories side by side on one fresh tenant; returns how many bought."""
    rng = random.Random(seed)
    history = History(seed)
    clock = FrozenClock(datetime.fromisoformat("2026-01-05T09:00:00+00:00"))
    ids = SequentialIds()  # shared: the portals write to one tenant
    gateway = TestGateway(clock=clock)
    portals = [
        Portal.open(
            storage,
            tenant=f"h{seed}",
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
        first = build_course(seeder, lessons=1, title="Course A")
        second = build_course(seeder, lessons=1, title="Course B")
        products = (first.product.id, second.product.id)
        lessons = (first.lessons[0].id, second.lessons[0].id)
        offers = {}
        for name, plan in HISTORY_PLANS.items():
            offer = seeder.offers.create_offer(name, list(products), plan=plan)
            offers[name] = seeder.offers.publish(offer.id).id
        stories = [
            Story(
                index=i,
                plan_name=rng.choice(sorted(HISTORY_PLANS)),
                key=f"h{seed}-{i}",
                email=f"b{i}@example.com",
                workers=rng.sample(range(len(portals)), rng.randint(1, 3)),
            )
            for i in range(size)
        ]
        gateway.script(*_checkout_outcomes(rng, size))
        _checkouts(history, rng, portals, offers, stories)
        _check_world(history, seeder, gateway, stories, lessons, final=False)
        for round_ in range(ROUNDS):
            clock.advance(timedelta(minutes=rng.randint(60, 20 * 24 * 60)))
            outcomes = _renewal_outcomes(rng, rng.randint(0, size // 3))
            gateway.script(*outcomes)
            history.record("round", round_, clock.now(), len(outcomes))
            _concurrently(history, [(f"tick@{i}", p.tick) for i, p in enumerate(portals)])
            _provider_moves(history, rng, gateway, stories)
            _deliver_and_act(history, rng, gateway, portals, stories, products)
            _note_stops(seeder, gateway, stories)
            _check_world(history, seeder, gateway, stories, lessons, final=False)
        # Quiesce: every payment settled, every webhook delivered, the inbox drained.
        clock.advance(days=11)  # past every SettleLater
        for _ in range(3):
            for payment in gateway.payments:
                if payment.status in (PaymentStatus.PENDING, PaymentStatus.ACTION_REQUIRED):
                    gateway.settle(payment.reference, succeed=rng.random() < 0.7)
            gateway.deliver_webhooks(seeder, duplicates=2, shuffle=rng)
            seeder.tick()
        _check_world(history, seeder, gateway, stories, lessons, final=True)
        return sum(1 for s in stories if s.purchase_id is not None)
    finally:
        for portal in portals:
            portal.close()


@pytest.mark.parametrize("database", ["sqlite_url", "postgres_url"])
def test_concurrent_billing_histories(database: str, request: pytest.FixtureRequest) -> None:
    from membership_core.adapters.sql import SqlStorage

    url = str(request.getfixturevalue(database))
    # One storage (connection pool) per worker, as separate processes would have;
    # reused by every tenant, so the database and its server are set up once.
    storages = [SqlStorage(url) for _ in range(WORKERS)]
    started = time.monotonic()
    total = HISTORIES[database]
    done = bought = 0
    try:
        for seed in itertools.count():
            if done >= total:
                break
            size = min(PER_TENANT, total - done)
            bought += _run_tenant(storages, seed, size)
            done += size
    finally:
        for storage in storages:
            storage.close()
    print(
        f"{done} histories ({bought} bought) on {database}, {PER_TENANT} per tenant, "
        f"{ROUNDS} rounds, in {time.monotonic() - started:.1f}s"
    )


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
