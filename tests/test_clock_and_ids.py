"""Clock and id generators."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from membership_core import FrozenClock, RandomIds, SequentialIds, SystemClock, ValidationError


def test_frozen_clock_stands_still_and_moves_on_request() -> None:
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    clock = FrozenClock(start)
    assert clock.now() == clock.now() == start
    assert clock.advance(days=1, hours=2) == start + timedelta(days=1, hours=2)
    assert clock.advance(timedelta(minutes=1)) == start + timedelta(days=1, hours=2, minutes=1)
    other_zone = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert clock.set(other_zone) == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_clocks_refuse_naive_datetimes() -> None:
    with pytest.raises(ValidationError):
        FrozenClock(datetime(2026, 1, 1))
    assert SystemClock().now().tzinfo is UTC


def test_random_ids_are_prefixed_unique_and_time_sortable() -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    ids = RandomIds(lambda: now[0])
    made = [ids.new("prod") for _ in range(1000)]  # all in the same millisecond
    now[0] += timedelta(milliseconds=1)
    made += [ids.new("prod") for _ in range(10)]
    assert all(i.startswith("prod_") and len(i) == 31 for i in made)
    assert len(set(made)) == len(made)
    assert made == sorted(made)


def test_random_ids_are_unique_across_threads() -> None:
    ids = RandomIds()
    made: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        batch = [ids.new("mem") for _ in range(2000)]
        with lock:
            made.extend(batch)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 8000


def test_sequential_ids_count_per_prefix() -> None:
    ids = SequentialIds()
    assert [ids.new("a"), ids.new("a"), ids.new("b")] == ["a_000001", "a_000002", "b_000001"]
