"""The failed-attempt throttle port: who must wait before trying to sign in again.

The library asks it before checking a password, a reset token or a sign-in
code, and tells it about each failure and success. Keys are strings the
library builds (``"email:<normalized email>"``, ``"client:<host key>"``),
already scoped to the portal. The default adapter keeps counters in the
portal's own storage (:class:`~membership_core.adapters.throttle_storage.StorageThrottle`);
a host with a shared cache (Redis, memcached) plugs in its own with
``Portal.open(..., throttle=...)``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

__all__ = ["AttemptThrottle"]


class AttemptThrottle(Protocol):
    """Counts failed attempts per key and says when the next one may be made."""

    def blocked_until(self, key: str, now: datetime) -> datetime | None:
        """When ``key`` may try again, or ``None`` when it may try now."""
        ...

    def record_failure(self, key: str, now: datetime) -> None:
        """Count one failed attempt of ``key`` at ``now``; must persist even though the
        caller is about to raise."""
        ...

    def record_success(self, key: str) -> None:
        """Forget ``key``'s failures (it proved who it is)."""
        ...
