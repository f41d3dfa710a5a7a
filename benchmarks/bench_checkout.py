"""checkout_throughput: one-time checkouts on SQLite, against the raw inserts they amount to.

Ours is ``portal.checkout.purchase(offer_id, email=..., idempotency_key=...)`` of a
published one-time offer (``OneTime(Money.of("49", "EUR"))``, one product) on a test
portal over a fresh SQLite file, paid through the scriptable ``TestGateway``; every
checkout has a new buyer and a new idempotency key, so each one creates a member.

The baseline is what those checkouts leave in the database, written by hand: a warm-up
checkout is diffed table by table (the rows it added: member, purchase, payment,
enrollment, event records, ...), and the baseline inserts the same rows (fresh ids,
emails and keys) with SQLAlchemy Core into another fresh SQLite file with the same
schema and connection settings, one transaction per checkout as the library commits
one. Both sides must add the same number of rows to every table, which is checked.

Checkouts run in batches, ours and the baseline's interleaved batch by batch. ``value``
is milliseconds per checkout (lower is better, so ``ratio`` is library time over raw
time); ``details.checkouts_per_second`` gives the throughput.
"""

from __future__ import annotations

import itertools
import sqlite3
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from _registry import Result, benchmark
from _timing import interleaved, summary
from membership_core import Money, OneTime
from membership_core.adapters.sql.schema import tables
from membership_core.adapters.sql.storage import SqlStorage
from membership_core.testing import TestPortal, make_test_portal

NAME = "checkout_throughput"
TARGET_RATIO = 4.0

FULL_CHECKOUTS = 2_000
FULL_BATCH = 100
QUICK_CHECKOUTS = 100
QUICK_BATCH = 20

PRICE = Money.of("49", "EUR")

#: Table name -> the rows one checkout adds (as SQLAlchemy returns them).
Written = dict[str, list[dict[str, Any]]]


def _keys(engine: sa.Engine) -> dict[str, set[tuple[str, str]]]:
    """Every table's (tenant, id) keys."""
    with engine.connect() as connection:
        return {
            name: set(connection.execute(sa.select(table.c.tenant, table.c.id)).tuples())
            for name, table in tables.items()
        }


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            name: int(
                connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            )
            for name, table in tables.items()
        }


def _sell(portal: TestPortal) -> str:
    """A published product with one lesson and a published one-time offer for it."""
    product = portal.catalog.create_product("Watercolour for Beginners")
    module = portal.catalog.add_category(product.id, "Basics")
    portal.catalog.add_lesson(product.id, module.id, "Wet on wet")
    portal.catalog.publish_product(product.id)
    offer = portal.offers.create_offer("Watercolour course", [product.id], plan=OneTime(PRICE))
    return portal.offers.publish(offer.id).id


def _written(engine: sa.Engine, before: dict[str, set[tuple[str, str]]]) -> Written:
    """The rows added since ``before``, per table (only tables that got rows)."""
    after = _keys(engine)
    written: Written = {}
    with engine.connect() as connection:
        for name, table in tables.items():
            new = after[name] - before[name]
            if not new:
                continue
            ids = sorted(key[1] for key in new)
            rows = connection.execute(sa.select(table).where(table.c.id.in_(ids))).mappings()
            written[name] = [dict(row) for row in rows]
    return written


def _substitute(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, dict):
        return {key: _substitute(item, mapping) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, mapping) for item in value]
    return value


def _raw_rows(template: Written, originals: list[str], number: int) -> Written:
    """The template's rows with every id, the email and the keys made unique for ``number``."""
    mapping = {old: f"{old}-raw{number}" for old in originals}
    return {
        name: [{key: _substitute(value, mapping) for key, value in row.items()} for row in rows]
        for name, rows in template.items()
    }


def _originals(template: Written, email: str, key: str) -> list[str]:
    """The strings unique to one checkout: row ids, the buyer's email and the keys."""
    strings = {email, email.lower(), key}
    for rows in template.values():
        for row in rows:
            strings.add(row["id"])
            for column in ("gateway_reference", "idempotency_key"):
                if isinstance(row.get(column), str):
                    strings.add(row[column])
    return sorted(strings)


def _baseline_writer(engine: sa.Engine) -> Callable[[Written], None]:
    statements = {name: tables[name].insert() for name in tables}

    def write(rows: Written) -> None:
        # engine.begin() issues BEGIN IMMEDIATE through SqlStorage's listener, like a unit of work.
        with engine.begin() as connection:
            for name, table_rows in rows.items():
                connection.execute(statements[name], table_rows)

    return write


@benchmark(NAME)
def checkout_throughput(quick: bool) -> Result:
    """One-time checkouts per second on SQLite (portal.checkout.purchase vs raw inserts)."""
    total = QUICK_CHECKOUTS if quick else FULL_CHECKOUTS
    batch = QUICK_BATCH if quick else FULL_BATCH
    repetitions = total // batch
    with tempfile.TemporaryDirectory(prefix="mc-bench-") as folder:
        portal = make_test_portal(f"sqlite:///{Path(folder) / 'ours.db'}", default_gateway="test")
        raw = SqlStorage(f"sqlite:///{Path(folder) / 'raw.db'}")  # same schema and pragmas
        try:
            engine: sa.Engine = portal.storage.engine  # type: ignore[attr-defined]
            offer_id = _sell(portal)
            counts_before = _counts(engine)

            # Warm-up on our side, diffed into the rows one checkout writes.
            keys_before = _keys(engine)
            email, key = "warm-up@example.com", "bench-checkout-warm-up"
            portal.checkout.purchase(offer_id, email=email, idempotency_key=key)
            template = _written(engine, keys_before)
            originals = _originals(template, email, key)
            write = _baseline_writer(raw.engine)
            write(_raw_rows(template, originals, 0))  # the baseline's warm-up
            raw_batches = iter(
                [
                    [
                        _raw_rows(template, originals, n)
                        for n in range(1 + b * batch, 1 + (b + 1) * batch)
                    ]
                    for b in range(repetitions)
                ]
            )
            numbers = itertools.count(1)

            def ours() -> None:
                for _ in range(batch):
                    n = next(numbers)
                    portal.checkout.purchase(
                        offer_id,
                        email=f"buyer{n}@example.com",
                        idempotency_key=f"bench-checkout-{n}",
                    )

            def baseline() -> None:
                for rows in next(raw_batches):
                    write(rows)

            samples = interleaved({"checkout": (ours, baseline)}, repetitions)
            ours_added = {
                name: count - counts_before[name] for name, count in _counts(engine).items()
            }
            raw_added = _counts(raw.engine)
            charged = len(portal.gateway.payments)
        finally:
            raw.close()
            portal.close()

    checkouts = repetitions * batch + 1  # with the warm-up
    per_checkout = {name: len(rows) for name, rows in template.items()}
    expected = {name: per_checkout.get(name, 0) * checkouts for name in tables}
    if ours_added != expected or raw_added != expected:
        raise RuntimeError(
            f"{NAME}: the two sides wrote different rows: ours {ours_added}, "
            f"raw {raw_added}, expected {expected}"
        )
    if charged != checkouts:
        raise RuntimeError(f"{NAME}: the gateway took {charged} payments for {checkouts} checkouts")

    ours_s, base_s = samples["checkout"]
    ms = 1000.0 / batch
    value = statistics.median(ours_s) * ms
    return Result(
        name=NAME,
        value=round(value, 4),
        unit="ms/checkout",
        baseline=round(statistics.median(base_s) * ms, 4),
        target=TARGET_RATIO,
        details={
            "quick": quick,
            "checkouts": repetitions * batch,
            "batch": batch,
            "repetitions": repetitions,
            "checkouts_per_second": round(1000.0 / value, 1),
            "baseline_checkouts_per_second": round(1000.0 / (statistics.median(base_s) * ms), 1),
            "rows_per_checkout": per_checkout,
            "backend": f"sqlite {sqlite3.sqlite_version}, WAL, files in a temp dir",
            "ours_ms_per_checkout": summary(ours_s, ms),
            "baseline_ms_per_checkout": summary(base_s, ms),
        },
    )
