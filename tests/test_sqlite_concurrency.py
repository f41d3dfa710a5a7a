"""SQLite under concurrent writers: WAL, BEGIN IMMEDIATE and a busy timeout mean no SQLITE_BUSY."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from membership_core import Portal
from membership_core.adapters.sql import SqlStorage

WRITERS = 8
SECONDS = 3.0


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_url: str) -> None:
    storage = SqlStorage(sqlite_url)
    try:
        with storage.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    finally:
        storage.close()


def test_eight_threads_writing_at_once_never_see_sqlite_busy(sqlite_url: str) -> None:
    # Each thread has its own Portal and engine, as separate processes would.
    errors: list[BaseException] = []
    written = [0] * WRITERS
    start = threading.Barrier(WRITERS)
    deadline = time.monotonic() + SECONDS
    Portal.open(sqlite_url, load_entrypoints=False).close()  # migrate once up front

    def writer(index: int) -> None:
        portal = Portal.open(sqlite_url, load_entrypoints=False, mailer="memory://")
        try:
            start.wait()
            while time.monotonic() < deadline:
                # read-then-write in one transaction: the pattern that deadlocks
                # into SQLITE_BUSY when transactions start deferred
                product = portal.catalog.create_product(f"writer {index}")
                portal.catalog.update_product(product.id, title=f"writer {index} #{written[index]}")
                written[index] += 1
        except BaseException as error:  # every failure counts, whatever its type
            errors.append(error)
        finally:
            portal.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert all(count > 0 for count in written), written
    storage = SqlStorage(sqlite_url)
    try:
        with storage.engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT count(*) FROM mc_products")).scalar()
    finally:
        storage.close()
    assert rows == sum(written)
