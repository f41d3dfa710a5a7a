"""Clocks: the system clock, and a frozen clock that tests move by hand."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from .._validate import aware

__all__ = ["FrozenClock", "SystemClock"]


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)


class FrozenClock:
    """A clock that stands still until told to move; thread-safe.

    >>> clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    >>> clock.advance(days=1).isoformat()
    '2026-01-02T00:00:00+00:00'
    """

    def __init__(self, at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = aware("at", at).astimezone(UTC) if at is not None else datetime.now(UTC)

    def now(self) -> datetime:
        """Return the frozen instant."""
        with self._lock:
            return self._now

    def set(self, at: datetime) -> datetime:
        """Jump to ``at`` (timezone-aware; it may be in the past)."""
        with self._lock:
            self._now = aware("at", at).astimezone(UTC)
            return self._now

    def advance(
        self,
        delta: timedelta | None = None,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
    ) -> datetime:
        """Move forward by ``delta`` and/or the given units; return the new instant."""
        step = (delta or timedelta()) + timedelta(
            days=days, hours=hours, minutes=minutes, seconds=seconds
        )
        with self._lock:
            self._now += step
            return self._now
