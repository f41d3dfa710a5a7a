"""renewals_tick: one ``portal.tick()`` over 100,000 monthly subscriptions, 1 % due today.

The subscriptions are seeded in bulk (checking out 100,000 buyers would take minutes):
members, purchases (with their ``plan`` and saved ``method_reference``), first
payments, enrollments and billings are built as domain values, turned into rows by
the SQL adapter's own ``RowMapper``s and inserted with SQLAlchemy Core into the
``mc_*`` tables of a test portal's SQLite file. Every subscription's first payment
goes through the portal's ``TestGateway`` with ``save_method=True``, so the gateway
knows every saved method, as it would after real checkouts. One in a hundred was
bought a month ago and is due now; the others fall due over the next four weeks.

``value`` is the seconds one ``portal.tick()`` takes; it must charge exactly the due
subscriptions, once each (checked in the tick's report, the gateway's ledger and the
billings), so the benchmark cannot pass by doing nothing. There is no baseline in the
``ratio`` sense: the target bounds the tick's seconds. For scale, ``details`` holds the
time of the library's due-billings SELECT (``find_due``, run raw on the same file) and
the tick's multiple of it, and ``uses_index`` says whether SQLite's ``EXPLAIN QUERY
PLAN`` of the tick's claim query uses the ``next_charge_at`` index.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from _registry import Result, benchmark
from _timing import summary, timed
from membership_core import (
    BillingPeriod,
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    Interval,
    Member,
    MemberStatus,
    Money,
    Purchase,
    PurchaseStatus,
    Subscription,
)
from membership_core.adapters.sql.schema import mappers, tables
from membership_core.domain import billing as billing_rules
from membership_core.domain.payments import Payment, PaymentState
from membership_core.ports.payments import PaymentRequest, PaymentStatus
from membership_core.testing import TestPortal, make_test_portal

NAME = "renewals_tick"
TARGET_SECONDS = 5.0
DUE_EVERY = 100  # 1 % of the subscriptions renew today

FULL_SUBSCRIPTIONS = 100_000
QUICK_SUBSCRIPTIONS = 2_000
BASELINE_REPETITIONS = 5
INSERT_CHUNK = 10_000

PRICE = Money.of("20", "EUR")
PLAN = Subscription(PRICE, BillingPeriod(Interval.MONTH))


def _sell(portal: TestPortal) -> tuple[str, str]:
    """A published product and a published monthly subscription offer for it."""
    product = portal.catalog.create_product("Sketching Club")
    module = portal.catalog.add_category(product.id, "Warm-ups")
    portal.catalog.add_lesson(product.id, module.id, "Gesture drawing")
    portal.catalog.publish_product(product.id)
    offer = portal.offers.create_offer("Sketching Club monthly", [product.id], plan=PLAN)
    return product.id, portal.offers.publish(offer.id).id


def _month_ago(now: datetime) -> datetime:
    """An instant whose first renewal is due at or before ``now``, about a month back."""
    moment = now - (PLAN.period.advance(now) - now)
    while PLAN.period.advance(moment) > now:
        moment -= timedelta(hours=1)
    return moment


def _started_at(number: int, month_ago: datetime) -> datetime:
    """When subscription ``number`` was bought: a month ago if it is due now, else later."""
    if number % DUE_EVERY == 0:
        return month_ago - timedelta(minutes=number // DUE_EVERY % 360)
    return month_ago + timedelta(days=1 + number % 28, minutes=number % 600)


def _subscription_rows(
    number: int, month_ago: datetime, product_id: str, offer_id: str, portal: TestPortal
) -> dict[str, dict[str, Any]]:
    """The rows of one subscription bought at checkout, through the library's mappers."""
    started = _started_at(number, month_ago)
    suffix = f"seed_{number:07d}"
    member_id, purchase_id = f"mem_{suffix}", f"pur_{suffix}"
    email = f"subscriber{number}@example.com"
    first = portal.gateway.create_payment(
        PaymentRequest(
            purchase_id=purchase_id,
            amount=PRICE,
            description="Sketching Club monthly",
            customer_email=email,
            idempotency_key=purchase_id,
            save_method=True,
        )
    )
    if first.status is not PaymentStatus.SUCCEEDED or first.method_reference is None:
        raise RuntimeError(f"{NAME}: the test gateway did not save a method: {first}")
    billing, (charge,) = billing_rules.start(
        f"bil_{suffix}",
        purchase_id=purchase_id,
        member_id=member_id,
        offer_id=offer_id,
        plan=PLAN,
        coupon=None,
        now=started,
    )
    values = {
        "members": Member(
            member_id, email, email, "", "", MemberStatus.ACTIVE, started, None, None
        ),
        "purchases": Purchase(
            purchase_id,
            offer_id,
            member_id,
            PurchaseStatus.PAID,
            PRICE,
            "test",
            first.reference,
            None,
            started,
            started,
            plan=PLAN,
            method_reference=first.method_reference,
        ),
        "payments": Payment(
            f"pay_{suffix}",
            purchase_id,
            charge.sequence,
            charge.kind,
            charge.amount,
            PaymentState.SUCCEEDED,
            1,
            "test",
            first.reference,
            charge.due_at,
            started,
            started,
            paid_at=started,
        ),
        "enrollments": Enrollment(
            f"enr_{suffix}",
            member_id,
            product_id,
            EnrollmentSource.PURCHASE,
            purchase_id,
            EnrollmentStatus.ACTIVE,
            started,
            billing_rules.access_ends_at(billing),
            started,
            None,
        ),
        "billings": billing,
    }
    return {name: mappers[name].to_row(value) for name, value in values.items()}


def _chunks(count: int) -> Iterator[range]:
    for start in range(0, count, INSERT_CHUNK):
        yield range(start, min(start + INSERT_CHUNK, count))


def _seed(
    portal: TestPortal, engine: sa.Engine, count: int, product_id: str, offer_id: str
) -> set[str]:
    """Insert ``count`` subscriptions; return the purchase ids due now."""
    now = portal.clock.now()
    month_ago = _month_ago(now)
    due: set[str] = set()
    for numbers in _chunks(count):
        batch: dict[str, list[dict[str, Any]]] = {
            name: [] for name in ("members", "purchases", "payments", "enrollments", "billings")
        }
        for number in numbers:
            rows = _subscription_rows(number, month_ago, product_id, offer_id, portal)
            for name, row in rows.items():
                batch[name].append({"tenant": portal.tenant, **row})
            if rows["billings"]["next_charge_at"] <= now:
                due.add(rows["purchases"]["id"])
        with engine.begin() as connection:
            for name, rows_of_table in batch.items():
                connection.execute(tables[name].insert(), rows_of_table)
    return due


def _captured_find_due(
    portal: TestPortal, engine: sa.Engine, **options: Any
) -> tuple[list[Any], str, tuple[Any, ...]]:
    """Run the library's ``billings.find_due`` once; return its rows, SQL and parameters."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "mc_billings" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with portal.storage.unit_of_work(portal.tenant) as uow:
            found = uow.billings.find_due("next_charge_at", portal.clock.now(), **options)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    if len(seen) != 1:
        raise RuntimeError(f"{NAME}: expected one SELECT from find_due, saw {len(seen)}")
    statement, parameters = seen[0]
    return found, statement, tuple(parameters)


def _query_plan(path: Path, statement: str, parameters: tuple[Any, ...]) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
    finally:
        connection.close()
    return [str(row[-1]) for row in rows]


def _uses_index(plan: list[str]) -> bool:
    """Whether the plan reaches ``mc_billings`` through its ``next_charge_at`` index only."""
    on_billings = [line for line in plan if "mc_billings" in line]
    return bool(on_billings) and all(
        "INDEX ix_mc_billings_next_charge_at" in line for line in on_billings
    )


def _raw_select_seconds(
    path: Path, statement: str, parameters: tuple[Any, ...], expected: int
) -> list[float]:
    """The due-billings SELECT on a raw sqlite3 connection, timed ``BASELINE_REPETITIONS`` times."""
    connection = sqlite3.connect(path)
    try:
        rows: list[Any] = []

        def select() -> None:
            rows[:] = connection.execute(statement, parameters).fetchall()

        select()  # warm-up
        samples = []
        for _ in range(BASELINE_REPETITIONS):
            samples.append(timed(select))
            if len(rows) != expected:
                raise RuntimeError(
                    f"{NAME}: the raw SELECT found {len(rows)} due billings, not {expected}"
                )
    finally:
        connection.close()
    return samples


def _check_charged(portal: TestPortal, engine: sa.Engine, report: Any, due: set[str]) -> None:
    """Exactly the due subscriptions were charged, once each, and nothing is due any more."""
    problems = []
    if (report.charges_succeeded, report.charges_failed, report.charges_pending) != (
        len(due),
        0,
        0,
    ):
        problems.append(f"tick report {report}")
    renewals = [payment for payment in portal.gateway.payments if payment.off_session]
    charged = [payment.purchase_id for payment in renewals]
    if len(charged) != len(due) or set(charged) != due:
        problems.append(
            f"the gateway charged {len(charged)} renewals ({len(set(charged) & due)} of them due)"
        )
    if any(
        payment.status is not PaymentStatus.SUCCEEDED or payment.amount != PRICE
        for payment in renewals
    ):
        problems.append("a renewal was not a succeeded charge of the price")
    billings = tables["billings"]
    with engine.connect() as connection:
        renewed = set(
            connection.execute(
                sa.select(billings.c.purchase_id).where(billings.c.next_sequence == 3)
            ).scalars()
        )
    if renewed != due:
        problems.append(
            f"{len(renewed)} billings moved to their third charge, {len(renewed & due)} of them due"
        )
    left, _, _ = _captured_find_due(portal, engine)
    if left:
        problems.append(f"{len(left)} billings are still due after the tick")
    if problems:
        raise RuntimeError(
            f"{NAME}: the tick did not charge exactly the due subscriptions: " + "; ".join(problems)
        )


@benchmark(NAME)
def renewals_tick(quick: bool) -> Result:
    """One portal.tick() charging the 1 % due of 100,000 monthly subscriptions on SQLite."""
    count = QUICK_SUBSCRIPTIONS if quick else FULL_SUBSCRIPTIONS
    with tempfile.TemporaryDirectory(prefix="mc-bench-") as folder:
        path = Path(folder) / "renewals.db"
        portal = make_test_portal(f"sqlite:///{path}", default_gateway="test")
        try:
            engine: sa.Engine = portal.storage.engine  # type: ignore[attr-defined]
            product_id, offer_id = _sell(portal)
            due: set[str] = set()
            seed_seconds = timed(
                lambda: due.update(_seed(portal, engine, count, product_id, offer_id))
            )
            found, statement, parameters = _captured_find_due(portal, engine)
            if {billing.purchase_id for billing in found} != due or not due:
                raise RuntimeError(
                    f"{NAME}: find_due sees {len(found)} due billings, seeded {len(due)}"
                )
            _, claim_statement, claim_parameters = _captured_find_due(
                portal, engine, limit=100, claim=True
            )
            plan = _query_plan(path, claim_statement, claim_parameters)
            select_s = _raw_select_seconds(path, statement, parameters, len(due))

            report = None

            def tick() -> None:
                nonlocal report
                report = portal.tick()

            tick_s = timed(tick)
            _check_charged(portal, engine, report, due)
        finally:
            portal.close()

    select_median = statistics.median(select_s)
    return Result(
        name=NAME,
        value=round(tick_s, 4),
        unit="s/tick",
        baseline=None,
        target=TARGET_SECONDS,
        details={
            "quick": quick,
            "subscriptions": count,
            "due": len(due),
            "charges_succeeded": report.charges_succeeded if report else 0,
            "ms_per_charge": round(tick_s / len(due) * 1000.0, 4),
            "uses_index": _uses_index(plan),
            "claim_query_plan": plan,
            "find_due_select_ms": summary(select_s, 1000.0),
            "tick_over_find_due_select": round(tick_s / select_median, 1),
            "seed_seconds": round(seed_seconds, 2),
            "backend": f"sqlite {sqlite3.sqlite_version}, WAL, file in a temp dir",
        },
    )
