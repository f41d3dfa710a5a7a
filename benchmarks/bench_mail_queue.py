"""mail_queue: render and queue 10,000 drip emails, against rendering them with no queue.

Ours is ``portal.mail.queue(uow, kind="drip", ...)``, the call every email of the library
goes through (``mail.send``, the course-completed handler, the tick's reset and sign-in
emails), on a test portal over an SQLite file: 10,000 emails (500 with ``--quick``), 100
per unit of work, as a tick queues them (``accounts.send_requested`` answers up to 100
requests in one transaction; ``drip.unlock_due`` advances 200 members in one). Like
those callers, a batch reads the site settings once, builds each email's values from
them (``member_values``, ``portal_values``) and passes them to ``queue``; each email
then costs the idempotency-key look-up, the render, and the insert, and each batch one
commit. Delivery is not timed (``deliver_now=False``: the next tick sends them).

Every email has its own member (seeded in bulk with the adapter's ``RowMapper``), the
portal's real settings, a real published course, and one to three of its lessons, so the
text, HTML and subject all vary. The baseline renders the same ``drip`` template with the
same values, one after the other, with the library's sandboxed ``TemplateRenderer`` and
nothing else: the ratio is what queuing adds to rendering. The two sides run interleaved,
chunk by chunk (500 emails; 100 with ``--quick``), and the benchmark fails unless every
email was queued once and the queued subject, text and HTML equal the baseline's render.
``value`` and ``baseline`` are milliseconds per email (the median over chunks).
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from _registry import Result, benchmark
from _timing import interleaved, summary, timed
from membership_core import MailStatus, Member, MemberStatus
from membership_core.adapters.sql import SqlStorage
from membership_core.adapters.sql.schema import mappers, tables
from membership_core.domain.members import email_key
from membership_core.services.mail import member_values, portal_values
from membership_core.templating import RenderedEmail, TemplateRenderer, load_default
from membership_core.testing import TestPortal, make_test_portal

NAME = "mail_queue"
TARGET_RATIO = 3.0
FULL_EMAILS = 10_000
QUICK_EMAILS = 500
#: Emails per unit of work, as a tick batch queues them.
BATCH = 100
#: Emails per timed sample (each side).
FULL_CHUNK = 500
QUICK_CHUNK = 100
WARM_UP = BATCH
WEEKS = 4
LESSONS_PER_WEEK = 3
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "O'Neil")

Email = tuple[str, str, str, dict[str, Any]]  # member id, address, idempotency key, values


def _engine(portal: TestPortal) -> sa.Engine:
    storage = portal.storage
    if not isinstance(storage, SqlStorage):
        raise TypeError(f"{NAME} needs an SQL storage, not {storage!r}")
    return storage.engine


def _course(portal: TestPortal) -> tuple[str, str, list[list[tuple[str, str]]]]:
    """A published course of weekly categories: its id, title and (id, title) per week."""
    title = "Jazz Piano: Voicings & Comping"
    product = portal.catalog.create_product(title)
    weeks = []
    for week in range(1, WEEKS + 1):
        category = portal.catalog.add_category(product.id, f"Week {week}")
        weeks.append(
            [
                (lesson.id, lesson.title)
                for lesson in (
                    portal.catalog.add_lesson(
                        product.id, category.id, f"Week {week}: shell voicings, part {n}"
                    )
                    for n in range(1, LESSONS_PER_WEEK + 1)
                )
            ]
        )
    portal.catalog.publish_product(product.id)
    return product.id, title, weeks


def _members(portal: TestPortal, count: int) -> list[Member]:
    """``count`` active members, inserted in one transaction (not timed)."""
    now = portal.clock.now()
    members = []
    for number in range(count):
        first = FIRST_NAMES[number % len(FIRST_NAMES)]
        last = LAST_NAMES[number // len(FIRST_NAMES) % len(LAST_NAMES)]
        email = f"{(first or 'member').lower()}.{number}@example.com"
        members.append(
            Member(
                id=f"mem_seed_{number:06d}",
                email=email,
                email_key=email_key(email),
                first_name=first,
                last_name=last,
                status=MemberStatus.ACTIVE,
                created_at=now - timedelta(days=7 + number % 30),
                last_login_at=None,
                external_ref=None,
            )
        )
    rows = [{"tenant": portal.tenant, **mappers["members"].to_row(m)} for m in members]
    with _engine(portal).begin() as connection:
        connection.execute(tables["members"].insert(), rows)
    return members


def _emails(portal: TestPortal, count: int) -> list[Email]:
    """Each member's drip email: its address, idempotency key and template values."""
    settings = portal.settings.get()
    base = portal.settings.base_url()
    product_id, title, weeks = _course(portal)
    course = {"title": title, "url": f"{base}/courses/{product_id}"}
    emails = []
    for member in _members(portal, count):
        number = int(member.id.rsplit("_", 1)[1])
        # The week that just opened (2 to 4: week 1 is open from the start), and one to
        # three of its lessons, so that subjects and bodies vary from email to email.
        week = 2 + number % (WEEKS - 1)
        lessons = [
            {"title": lesson_title, "url": f"{base}/courses/{product_id}/lessons/{lesson_id}"}
            for lesson_id, lesson_title in weeks[week - 1][: 1 + number % LESSONS_PER_WEEK]
        ]
        values = {
            "member": member_values(member),
            "portal": portal_values(settings, base),
            "course": course,
            "lessons": lessons,
        }
        key = f"drip:{member.id}:{product_id}:week{week}"
        emails.append((member.id, member.email, key, values))
    return emails


def _queue(portal: TestPortal, emails: list[Email]) -> None:
    """Queue ``emails`` as a tick would: ``BATCH`` per unit of work, settings read once each."""
    storage, mail = portal.storage, portal.mail
    for start in range(0, len(emails), BATCH):
        with storage.unit_of_work(portal.tenant) as uow:
            settings = portal._context.settings(uow)
            for member_id, address, key, values in emails[start : start + BATCH]:
                mail.queue(
                    uow,
                    kind="drip",
                    to=address,
                    context=values,
                    idempotency_key=key,
                    member_id=member_id,
                    deliver_now=False,
                    settings=settings,
                )
            uow.commit()


def _chunks(emails: list[Email], size: int) -> Iterator[list[Email]]:
    for start in range(0, len(emails), size):
        yield emails[start : start + size]


def _check(portal: TestPortal, emails: list[Email], rendered: dict[str, RenderedEmail]) -> None:
    """Every email queued once, exactly as the baseline rendered it."""
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        queued = uow.mail.find({"kind": "drip"})
    by_key = {message.idempotency_key: message for message in queued}
    if len(queued) != len(emails) or set(by_key) != {key for _, _, key, _ in emails}:
        raise RuntimeError(f"{NAME}: {len(queued)} emails queued for {len(emails)}")
    for _, address, key, _ in emails:
        message = by_key[key]
        if message.status is not MailStatus.QUEUED or message.message.to != address:
            raise RuntimeError(f"{NAME}: {key} is {message.status.value}, to {message.message.to}")
        if key in rendered:
            ours = (message.message.subject, message.message.text, message.message.html)
            theirs = (rendered[key].subject, rendered[key].text, rendered[key].html)
            if ours != theirs:
                raise RuntimeError(f"{NAME}: {key} differs from the baseline's render")


def _statements(portal: TestPortal, work: Callable[[], None]) -> int:
    count = 0

    def counted(*_: Any) -> None:
        nonlocal count
        count += 1

    event.listen(_engine(portal), "before_cursor_execute", counted)
    try:
        work()
    finally:
        event.remove(_engine(portal), "before_cursor_execute", counted)
    return count


@benchmark(NAME)
def mail_queue(quick: bool) -> Result:
    """Render and queue 10,000 drip emails, 100 per unit of work, vs rendering them only."""
    count = QUICK_EMAILS if quick else FULL_EMAILS
    chunk = QUICK_CHUNK if quick else FULL_CHUNK
    template = load_default("drip")
    renderer = TemplateRenderer()
    with tempfile.TemporaryDirectory(prefix="mc-bench-") as folder:
        portal = make_test_portal(
            f"sqlite:///{Path(folder) / 'mail.db'}",
            platform_url="https://learn.bluenote-piano.example",
        )
        try:
            portal.settings.update_site(title="Blue Note Piano School")
            portal.settings.update_sender(
                sender_name="Blue Note Piano", sender_email="lessons@bluenote-piano.example"
            )
            emails: list[Email] = []
            seed_seconds = timed(lambda: emails.extend(_emails(portal, WARM_UP + count)))
            warm_up, timed_emails = emails[:WARM_UP], emails[WARM_UP:]
            statements = _statements(portal, lambda: _queue(portal, warm_up))
            for _, _, _, values in warm_up:
                renderer.render(template, values)

            rendered: dict[str, RenderedEmail] = {}
            ours_chunks, base_chunks = _chunks(timed_emails, chunk), _chunks(timed_emails, chunk)

            def ours() -> None:
                _queue(portal, next(ours_chunks))

            def baseline() -> None:
                for _, _, key, values in next(base_chunks):
                    rendered[key] = renderer.render(template, values)

            samples = interleaved({"queue": (ours, baseline)}, count // chunk)
            _check(portal, emails, rendered)
        finally:
            portal.close()
    ours_s, base_s = samples["queue"]
    per_email = 1000.0 / chunk
    return Result(
        name=NAME,
        value=round(statistics.median(ours_s) * per_email, 4),
        unit="ms/email",
        baseline=round(statistics.median(base_s) * per_email, 4),
        target=TARGET_RATIO,
        details={
            "quick": quick,
            "emails": count,
            "emails_per_unit_of_work": BATCH,
            "emails_per_sample": chunk,
            "template": "drip",
            "ours": "portal.mail.queue(uow, kind='drip', ..., settings=...) per email",
            "baseline_call": "TemplateRenderer().render(load_default('drip'), values) per email",
            "queue_ms_per_email": summary(ours_s, per_email),
            "render_ms_per_email": summary(base_s, per_email),
            "queue_total_seconds": round(sum(ours_s), 3),
            "render_total_seconds": round(sum(base_s), 3),
            "emails_per_second": round(count / sum(ours_s)),
            "statements_per_email": round(statements / WARM_UP, 2),
            "seed_seconds": round(seed_seconds, 2),
            "backend": f"sqlite {sqlite3.sqlite_version}, WAL, file in a temp dir",
        },
    )
