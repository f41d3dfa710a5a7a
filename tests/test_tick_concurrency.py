"""Several workers ticking at once announce each drip batch and each expiry notice once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from membership_core import (
    AccessWindow,
    EndAfter,
    FrozenClock,
    Portal,
    SequentialIds,
)
from membership_core.adapters.mail_memory import MemoryMailer
from membership_core.adapters.sql import SqlStorage
from membership_core.domain.drip import AfterDelay, DripSettings, FromAccessGrant

from .helpers import build_course

WORKERS = 4
MEMBERS = 12


@pytest.mark.parametrize("database", ["sqlite_url", "postgres_url"])
def test_concurrent_ticks_record_each_notice_once(
    database: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(database))
    clock = FrozenClock(datetime(2026, 5, 4, 8, 0, tzinfo=UTC))
    ids = SequentialIds()  # shared, so workers never mint the same id
    storages = [SqlStorage(url) for _ in range(WORKERS)]
    portals = [
        Portal.open(storage, clock=clock, ids=ids, mailer=MemoryMailer(), load_entrypoints=False)
        for storage in storages
    ]
    try:
        seeder = portals[0]
        seeder.tick()  # sets the expiry mark
        course = build_course(seeder, lessons=2)
        product = course.product.id
        seeder.drip.configure(product, DripSettings(FromAccessGrant(), "Europe/Paris"))
        seeder.drip.set_rules(product, course.lessons[1].id, [AfterDelay(days=3)])
        offer = seeder.offers.create_offer(
            "Ten days", [product], access_window=AccessWindow(end=EndAfter(10))
        )
        seeder.offers.publish(offer.id)
        for number in range(MEMBERS):
            seeder.checkout.purchase(offer.id, email=f"m{number}@example.com")
        seeder.tick()  # the first look at each schedule, silently
        for days in (3, 4, 10, 11):  # drip opens, reminders come, access ends
            clock.set(datetime(2026, 5, 4, 8, 0, tzinfo=UTC) + timedelta(days=days))
            barrier = threading.Barrier(WORKERS)
            errors: list[BaseException] = []

            def work(
                portal: Portal, barrier: threading.Barrier, errors: list[BaseException]
            ) -> None:
                barrier.wait()
                try:
                    portal.tick()
                except BaseException as error:
                    errors.append(error)

            threads = [threading.Thread(target=work, args=(p, barrier, errors)) for p in portals]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
        with seeder.storage.unit_of_work(seeder.tenant, write=False) as uow:
            counts = {
                kind: uow.events.count({"type": kind})
                for kind in ("LessonsUnlocked", "AccessExpiring", "AccessExpired")
            }
        assert counts == {
            "LessonsUnlocked": MEMBERS,
            "AccessExpiring": MEMBERS,
            "AccessExpired": MEMBERS,
        }
    finally:
        for portal in portals:
            portal.close()
        for storage in storages:
            storage.close()
