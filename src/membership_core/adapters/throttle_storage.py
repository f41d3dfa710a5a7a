"""The default attempt throttle: counters in the portal's own storage."""

from __future__ import annotations

import contextlib
from datetime import datetime

from ..domain.throttle import AttemptCounter, ThrottlePolicy, counter_id
from ..errors import Conflict
from ..ports.storage import Storage

__all__ = ["StorageThrottle"]


class StorageThrottle:
    """Keeps one :class:`AttemptCounter` per key in the ``attempt_counters`` collection.

    Each failure is counted in a short transaction of its own, so it is kept
    even though the sign-in that failed raises; counters are stored under a
    hash of their key, so no email address is kept in clear.
    """

    def __init__(self, storage: Storage, tenant: str, policy: ThrottlePolicy) -> None:
        self._storage = storage
        self._tenant = tenant
        self.policy = policy

    def blocked_until(self, key: str, now: datetime) -> datetime | None:
        """When ``key`` may try again (``None``: now)."""
        with self._storage.unit_of_work(self._tenant, write=False) as uow:
            counter = uow.attempt_counters.get(counter_id(key))
        return None if counter is None else counter.blocked_until(self.policy, now)

    def record_failure(self, key: str, now: datetime) -> None:
        """Count a failure of ``key`` at ``now``."""
        for _ in range(3):  # two first failures at once: the loser counts on the winner's row
            with contextlib.suppress(Conflict), self._storage.unit_of_work(self._tenant) as uow:
                counter = uow.attempt_counters.get_for_update(counter_id(key))
                if counter is None:
                    uow.attempt_counters.add(AttemptCounter.first(key, now))
                else:
                    uow.attempt_counters.update(counter.after_failure(self.policy, now))
                uow.commit()
                return

    def record_success(self, key: str) -> None:
        """Forget ``key``'s failures."""
        with self._storage.unit_of_work(self._tenant) as uow:
            if uow.attempt_counters.get_for_update(counter_id(key)) is not None:
                uow.attempt_counters.delete(counter_id(key))
                uow.commit()
