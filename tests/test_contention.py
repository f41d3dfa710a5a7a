"""A deadlock on PostgreSQL surfaces as Contention, and leaves nothing behind."""

from __future__ import annotations

import threading

from membership_core import Contention, StorageError
from membership_core.adapters.sql import SqlStorage

from . import factories as f


def test_a_deadlock_is_reported_as_contention(postgres_url: str) -> None:
    storage = SqlStorage(postgres_url)
    try:
        first, second = f.product(title="A"), f.product(title="B")
        with storage.unit_of_work("t1") as uow:
            uow.products.add(first)
            uow.products.add(second)
            uow.commit()
        both_locked_one = threading.Barrier(2)
        errors: list[BaseException] = []

        def lock(order: tuple[str, str]) -> None:
            try:
                with storage.unit_of_work("t1") as uow:
                    uow.products.get_for_update(order[0])
                    both_locked_one.wait()
                    uow.products.get_for_update(order[1])  # one of the two must lose
                    uow.commit()
            except StorageError as error:
                errors.append(error)

        threads = [
            threading.Thread(target=lock, args=((first.id, second.id),)),
            threading.Thread(target=lock, args=((second.id, first.id),)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(errors) == 1
        assert isinstance(errors[0], Contention)
        with storage.unit_of_work("t1", write=False) as uow:  # the loser left nothing open
            assert uow.products.get(first.id) == first
    finally:
        storage.close()
