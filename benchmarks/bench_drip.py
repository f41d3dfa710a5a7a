"""drip_tick: one ``portal.tick()`` opening today's dripped lessons among 1,000,000 enrollments.

Four products with drip on (``FromAccessGrant``, UTC) have four weekly categories of five
lessons; week ``k`` opens ``AfterDelay(days=7 * k)``. 250,000 members are enrolled in all
four (1,000,000 enrollments; 20,000 with ``--quick``), and each enrollment has its
``mc_drip_progress`` row, evaluated before (``evaluated_at`` set, so new lessons are
announced). For one member in 25 (10,000; 200 with ``--quick``), one product's week 1 came
due earlier today: its ``next_unlock_at`` is today, before now; every other row's is later
(tomorrow to six days on, some already in week 1 waiting for week 2). Everything is
seeded in bulk: domain values turned into rows by the SQL adapter's ``RowMapper``s and
inserted with SQLAlchemy Core ``executemany``; the drip settings and rules go through
``portal.drip`` first.

``value`` is the seconds one ``portal.tick()`` takes (one run: a tick changes the data).
The benchmark fails unless the tick announced exactly the due members, once each: the
tick's ``lessons_unlocked``, the ``LessonsUnlocked`` records in ``mc_events`` (counted by
type, their members and lesson ids checked) and the due query afterwards (nothing left
due) must agree. There is no baseline: the target bounds the seconds. ``details`` holds
the ``EXPLAIN QUERY PLAN`` of the tick's due query (``find_due`` on ``next_unlock_at``,
captured and replayed on a raw ``sqlite3`` connection) with ``uses_index``, that query's
time, and the SQL statements the tick issued, by kind.
"""

from __future__ import annotations

import json
import re
import sqlite3
import statistics
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from _registry import Result, benchmark
from _timing import summary, timed
from membership_core import (
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    Member,
    MemberStatus,
)
from membership_core.adapters.sql.schema import mappers, tables
from membership_core.domain.drip import AfterDelay, DripSettings, FromAccessGrant
from membership_core.domain.progress import DripProgress
from membership_core.testing import TestPortal, make_test_portal

NAME = "drip_tick"
TARGET_SECONDS = 10.0
PRODUCTS = 4
WEEKS = 4
LESSONS_PER_WEEK = 5
DUE_EVERY = 25  # one member in 25 has one product due today

FULL_MEMBERS = 250_000  # x 4 products = 1,000,000 enrollments
QUICK_MEMBERS = 5_000  # 20,000 enrollments
INSERT_CHUNK = 25_000  # members per transaction
BASELINE_REPETITIONS = 5
BATCH = 200  # unlock_due's default batch size, for the captured query

_SELECT_LIST = re.compile(r"^SELECT .+? FROM ", re.S)


def _engine(portal: TestPortal) -> sa.Engine:
    return portal.storage.engine  # type: ignore[attr-defined, no-any-return]


def _kind(statement: str) -> str:
    """A statement's verb and table, e.g. ``SELECT mc_enrollments``."""
    text = " ".join(statement.split())
    verb = text.split(" ", 1)[0].upper()
    table = re.search(r"\b(mc_[a-z_]+)", _SELECT_LIST.sub("SELECT FROM ", text))
    return f"{verb} {table.group(1)}" if table else verb


def _courses(portal: TestPortal) -> list[tuple[str, list[list[str]]]]:
    """Products with drip on and weekly rules; each with its lesson ids per week."""
    courses = []
    for number in range(PRODUCTS):
        product = portal.catalog.create_product(f"Cohort course {number}")
        weeks: list[list[str]] = []
        categories = []
        for week in range(WEEKS):
            category = portal.catalog.add_category(product.id, f"Week {week}")
            categories.append(category.id)
            weeks.append(
                [
                    portal.catalog.add_lesson(product.id, category.id, f"W{week} L{n}").id
                    for n in range(LESSONS_PER_WEEK)
                ]
            )
        portal.catalog.publish_product(product.id)
        portal.drip.configure(product.id, DripSettings(FromAccessGrant()))
        for week, category_id in enumerate(categories):
            if week:
                portal.drip.set_rules(product.id, category_id, [AfterDelay(days=7 * week)])
        courses.append((product.id, weeks))
    return courses


def _rows(
    number: int, courses: list[tuple[str, list[list[str]]]], now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """Member ``number``'s rows: member, enrollments, drip progress; and the due product."""
    member_id = f"mem_seed_{number:07d}"
    email = f"member{number}@example.com"
    joined = now - timedelta(days=30)
    member = Member(member_id, email, email, "", "", MemberStatus.ACTIVE, joined, None, None)
    enrollments, progress = [], []
    due_product = None
    for index, (product_id, weeks) in enumerate(courses):
        if number % DUE_EVERY == 0 and number // DUE_EVERY % PRODUCTS == index:
            # Week 1 opened earlier today: next_unlock_at is today, before now.
            start = now - timedelta(days=7, minutes=1 + number % 480)
            opened, next_at = weeks[0], start + timedelta(days=7)
            due_product = product_id
        elif (number + index) % 2:
            # Week 1 opens in one to six days.
            start = now - timedelta(days=7) + timedelta(days=1 + (number + index) % 6, minutes=1)
            opened, next_at = weeks[0], start + timedelta(days=7)
        else:
            # Week 1 is open; week 2 opens in one to six days.
            start = now - timedelta(days=14) + timedelta(days=1 + (number + index) % 6, minutes=1)
            opened, next_at = weeks[0] + weeks[1], start + timedelta(days=14)
        suffix = f"seed_{number:07d}_{index}"
        enrollments.append(
            mappers["enrollments"].to_row(
                Enrollment(
                    f"enr_{suffix}",
                    member_id,
                    product_id,
                    EnrollmentSource.ADMIN,
                    None,
                    EnrollmentStatus.ACTIVE,
                    start,
                    None,
                    start,
                    None,
                    reason="cohort",
                )
            )
        )
        progress.append(
            mappers["drip_progress"].to_row(
                DripProgress(
                    f"dpg_{suffix}",
                    member_id,
                    product_id,
                    frozenset(opened),
                    next_at,
                    next_at - timedelta(days=7) + timedelta(minutes=5),
                )
            )
        )
    return mappers["members"].to_row(member), enrollments, progress, due_product


def _chunks(count: int) -> Iterator[range]:
    for start in range(0, count, INSERT_CHUNK):
        yield range(start, min(start + INSERT_CHUNK, count))


def _seed(
    portal: TestPortal, members: int, courses: list[tuple[str, list[list[str]]]]
) -> dict[str, str]:
    """Insert the members, enrollments and drip progress; return due member -> product."""
    engine, tenant, now = _engine(portal), portal.tenant, portal.clock.now()
    due: dict[str, str] = {}
    for numbers in _chunks(members):
        batch: dict[str, list[dict[str, Any]]] = {
            "members": [],
            "enrollments": [],
            "drip_progress": [],
        }
        for number in numbers:
            member, enrollments, progress, due_product = _rows(number, courses, now)
            batch["members"].append({"tenant": tenant, **member})
            batch["enrollments"].extend({"tenant": tenant, **row} for row in enrollments)
            batch["drip_progress"].extend({"tenant": tenant, **row} for row in progress)
            if due_product is not None:
                due[member["id"]] = due_product
        with engine.begin() as connection:
            for name, rows in batch.items():
                connection.execute(tables[name].insert(), rows)
    return due


def _captured_find_due(
    portal: TestPortal, **options: Any
) -> tuple[list[DripProgress], str, tuple[Any, ...]]:
    """Run the tick's due query (``drip_progress.find_due``) once; its rows, SQL, parameters."""
    engine = _engine(portal)
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "mc_drip_progress" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with portal.storage.unit_of_work(portal.tenant) as uow:
            found = uow.drip_progress.find_due("next_unlock_at", portal.clock.now(), **options)
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
    """Whether the plan reaches ``mc_drip_progress`` only through its ``next_unlock_at`` index."""
    on_table = [line for line in plan if "mc_drip_progress" in line]
    return bool(on_table) and all(
        "INDEX ix_mc_drip_progress_next_unlock_at" in line for line in on_table
    )


def _raw_select_seconds(
    path: Path, statement: str, parameters: tuple[Any, ...], expected: int
) -> list[float]:
    """The due query on a raw sqlite3 connection, timed ``BASELINE_REPETITIONS`` times."""
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
                raise RuntimeError(f"{NAME}: the raw due query found {len(rows)}, not {expected}")
    finally:
        connection.close()
    return samples


def _check_unlocked(
    portal: TestPortal,
    report: Any,
    due: dict[str, str],
    courses: list[tuple[str, list[list[str]]]],
) -> dict[str, int]:
    """Exactly the due members got one ``LessonsUnlocked`` (their week 1); none is left due."""
    week1 = {product_id: sorted(weeks[1]) for product_id, weeks in courses}
    events = tables["events"]
    with _engine(portal).connect() as connection:
        by_type: dict[str, int] = {
            kind: int(n)
            for kind, n in connection.execute(
                sa.select(events.c.type, sa.func.count()).group_by(events.c.type)
            ).tuples()
        }
        payloads = [
            row if isinstance(row, dict) else json.loads(row)
            for row in connection.execute(
                sa.select(events.c.payload).where(events.c.type == "LessonsUnlocked")
            ).scalars()
        ]
    problems = []
    if report.lessons_unlocked != len(due):
        problems.append(f"the tick reported {report.lessons_unlocked} members")
    if by_type.get("LessonsUnlocked", 0) != len(due):
        problems.append(f"mc_events holds {by_type.get('LessonsUnlocked', 0)} LessonsUnlocked")
    announced = Counter(payload["member_id"] for payload in payloads)
    if set(announced) != set(due) or any(n != 1 for n in announced.values()):
        problems.append(
            f"{len(announced)} members announced, {len(set(announced) & set(due))} of them due"
        )
    wrong = [
        p
        for p in payloads
        if p["member_id"] in due
        and (
            p["product_id"] != due[p["member_id"]]
            or sorted(p["lesson_ids"]) != week1[p["product_id"]]
        )
    ]
    if wrong:
        problems.append(f"{len(wrong)} events name the wrong product or lessons, e.g. {wrong[0]}")
    left, _, _ = _captured_find_due(portal)
    if left:
        problems.append(f"{len(left)} drip progress rows are still due after the tick")
    if problems:
        raise RuntimeError(
            f"{NAME}: the tick did not announce exactly the due members: " + "; ".join(problems)
        )
    return by_type


@benchmark(NAME)
def drip_tick(quick: bool) -> Result:
    """One portal.tick() opening today's lessons for 10,000 of 1,000,000 drip enrollments."""
    members = QUICK_MEMBERS if quick else FULL_MEMBERS
    with tempfile.TemporaryDirectory(prefix="mc-bench-") as folder:
        path = Path(folder) / "drip.db"
        portal = make_test_portal(f"sqlite:///{path}")
        try:
            engine = _engine(portal)
            courses = _courses(portal)
            due: dict[str, str] = {}
            seed_seconds = timed(lambda: due.update(_seed(portal, members, courses)))
            found, statement, parameters = _captured_find_due(portal)
            if {p.member_id for p in found} != set(due) or len(found) != len(due) or not due:
                raise RuntimeError(
                    f"{NAME}: find_due sees {len(found)} due rows, seeded {len(due)}"
                )
            _, claim_statement, claim_parameters = _captured_find_due(
                portal, limit=BATCH, claim=True
            )
            plan = _query_plan(path, claim_statement, claim_parameters)
            select_s = _raw_select_seconds(path, statement, parameters, len(due))

            statements: Counter[str] = Counter()

            def count(_conn: Any, _cursor: Any, text: str, *_: Any) -> None:
                statements[_kind(text)] += 1

            report = None

            def tick() -> None:
                nonlocal report
                report = portal.tick()

            event.listen(engine, "before_cursor_execute", count)
            try:
                tick_s = timed(tick)
            finally:
                event.remove(engine, "before_cursor_execute", count)
            events_by_type = _check_unlocked(portal, report, due, courses)
        finally:
            portal.close()

    select_median = statistics.median(select_s)
    total_statements = sum(statements.values())
    return Result(
        name=NAME,
        value=round(tick_s, 4),
        unit="s/tick",
        baseline=None,
        target=TARGET_SECONDS,
        details={
            "quick": quick,
            "enrollments": members * PRODUCTS,
            "drip_progress_rows": members * PRODUCTS,
            "members": members,
            "products": PRODUCTS,
            "lessons_per_product": WEEKS * LESSONS_PER_WEEK,
            "due": len(due),
            "lessons_unlocked": report.lessons_unlocked if report else 0,
            "events_by_type": events_by_type,
            "ms_per_due_member": round(tick_s / len(due) * 1000.0, 4),
            "uses_index": _uses_index(plan),
            "due_query": " ".join(claim_statement.split()),
            "due_query_plan": plan,
            "due_select_all_ms": summary(select_s, 1000.0),
            "tick_over_due_select": round(tick_s / select_median, 1),
            "statements_in_tick": total_statements,
            "statements_per_due_member": round(total_statements / len(due), 2),
            "statements_by_kind": dict(statements.most_common()),
            "note": "a before_cursor_execute listener counted the statements during the tick",
            "seed_seconds": round(seed_seconds, 2),
            "backend": f"sqlite {sqlite3.sqlite_version}, WAL, file in a temp dir",
        },
    )
