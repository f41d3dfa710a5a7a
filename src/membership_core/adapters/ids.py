"""Id generators: time-sortable random ids, and a deterministic sequence for tests."""

from __future__ import annotations

import secrets
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

__all__ = ["RandomIds", "SequentialIds"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))


class RandomIds:
    """ULID-style ids: 48 bits of milliseconds then 80 random bits, Crockford base32.

    Ids made in the same millisecond by one generator still sort in creation
    order: the random part is incremented instead of drawn again (as the ULID
    spec's monotonic mode does).
    """

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0

    def new(self, prefix: str) -> str:
        """Return ``f"{prefix}_"`` followed by 26 sortable characters."""
        if self._now is not None:
            millis = int(self._now().timestamp() * 1000)
        else:
            import time

            millis = time.time_ns() // 1_000_000
        with self._lock:
            if millis <= self._last_ms:
                millis = self._last_ms
                self._last_rand += 1
            else:
                self._last_rand = secrets.randbits(79)
            self._last_ms = millis
            rand = self._last_rand
        return f"{prefix}_{_base32(millis, 10)}{_base32(rand, 16)}"


class SequentialIds:
    """Deterministic ids for tests: ``prod_000001``, ``prod_000002``, ... per prefix."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: defaultdict[str, int] = defaultdict(int)

    def new(self, prefix: str) -> str:
        """Return the next id for ``prefix``."""
        with self._lock:
            self._counters[prefix] += 1
            return f"{prefix}_{self._counters[prefix]:06d}"
