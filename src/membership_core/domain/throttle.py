"""Failed-attempt throttling: how long someone must wait after failing to sign in. Pure.

Failures are counted per key (an email, a host-supplied client key such as an
IP address) in a fixed window that starts with the first failure. The first
few failures cost nothing; each one after that doubles the wait before the
next attempt, up to a ceiling; and a hard limit per window stops everything
until the window ends. With the defaults a guesser gets about 20 tries an hour,
well under the 100 failures per hour that OWASP ASVS allows at most.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import attrs

from ..errors import ValidationError

__all__ = ["AttemptCounter", "ThrottlePolicy", "counter_id"]


def _positive(_instance: object, attribute: attrs.Attribute[timedelta], value: timedelta) -> None:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ValidationError(attribute.name, "must be a positive timedelta")


@attrs.frozen
class ThrottlePolicy:
    """How failures are counted and how long they block.

    >>> policy = ThrottlePolicy()
    >>> [policy.delay_after(n).total_seconds() for n in (5, 6, 7, 8)]
    [0.0, 1.0, 2.0, 4.0]
    >>> policy.delay_after(30) == policy.max_delay
    True
    """

    #: Failures allowed in a row before any wait.
    free_failures: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    #: The wait after the first failure past ``free_failures``; it doubles each time.
    first_delay: timedelta = attrs.field(default=timedelta(seconds=1), validator=_positive)
    max_delay: timedelta = attrs.field(default=timedelta(minutes=15), validator=_positive)
    #: At this many failures in one window, nothing more is tried until it ends.
    max_failures: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    window: timedelta = attrs.field(default=timedelta(hours=1), validator=_positive)

    def delay_after(self, failures: int) -> timedelta:
        """The wait after the ``failures``-th failure of a window."""
        excess = failures - self.free_failures
        if excess <= 0:
            return timedelta(0)
        # Past ~40 doublings any delay is over the ceiling; avoid huge integers.
        if excess > 40:
            return self.max_delay
        delay: timedelta = self.first_delay * (2 ** (excess - 1))
        return min(delay, self.max_delay)


def counter_id(key: str) -> str:
    """The stored id of the counter for ``key``: a hash, so no email is kept in clear.

    >>> counter_id("email:ada@example.com").startswith("att_")
    True
    """
    return "att_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


@attrs.frozen
class AttemptCounter:
    """The failures of one key in its current window."""

    id: str
    failures: int
    window_started_at: datetime
    last_failure_at: datetime

    def blocked_until(self, policy: ThrottlePolicy, now: datetime) -> datetime | None:
        """When the next attempt may be made, or ``None`` when it may be made now."""
        window_end = self.window_started_at + policy.window
        if now >= window_end:
            return None
        until = self.last_failure_at + policy.delay_after(self.failures)
        if self.failures >= policy.max_failures:
            until = max(until, window_end)
        return until if until > now else None

    def after_failure(self, policy: ThrottlePolicy, now: datetime) -> AttemptCounter:
        """The counter once one more failure happened at ``now``."""
        if now >= self.window_started_at + policy.window:
            return AttemptCounter(self.id, 1, now, now)
        return attrs.evolve(self, failures=self.failures + 1, last_failure_at=now)

    @classmethod
    def first(cls, key: str, now: datetime) -> AttemptCounter:
        """The counter of a key's first failure."""
        return cls(counter_id(key), 1, now, now)
