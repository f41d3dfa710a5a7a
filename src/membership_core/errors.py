"""The exception hierarchy: every error the library raises is a :class:`MembershipError`.

Each error carries a ``field`` (the argument or attribute that was wrong, when
there is one) so a host can point at the bad input in its own forms::

    try:
        portal.catalog.create_product(title="")
    except ValidationError as exc:
        form.add_error(exc.field, str(exc))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "AccessDenied",
    "ConfigurationError",
    "Conflict",
    "Contention",
    "InvalidToken",
    "MailDeliveryError",
    "MembershipError",
    "NotFound",
    "PaymentDeclined",
    "RefundFailed",
    "StorageError",
    "TooManyAttempts",
    "ValidationError",
]


class MembershipError(Exception):
    """Base class of every error raised by membership_core.

    ``field`` names the offending argument or attribute, or is ``None`` when
    the error is not about one input.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(MembershipError, ValueError):
    """An argument was malformed or broke a rule; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", field=field)
        self.problem = problem


class NotFound(MembershipError, LookupError):
    """The named record does not exist in this portal (or belongs to another one)."""

    def __init__(self, kind: str, identifier: str, *, field: str | None = None) -> None:
        super().__init__(f"{kind} {identifier!r} not found", field=field)
        self.kind = kind
        self.identifier = identifier


class Conflict(MembershipError):
    """The change contradicts the current state (a duplicate, a stale version, ...)."""


class PaymentDeclined(MembershipError):
    """The payment gateway refused the payment; nothing was granted or recorded."""

    def __init__(self, reason: str, *, code: str = "declined") -> None:
        super().__init__(f"payment declined: {reason}", field=None)
        self.reason = reason
        self.code = code


class RefundFailed(MembershipError):
    """The gateway refused a refund; nothing was given back, and access is unchanged."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"refund failed: {reason}", field=None)
        self.reason = reason


class InvalidToken(MembershipError):
    """A token or code is unknown, expired, already used, or tampered with."""


class TooManyAttempts(MembershipError):
    """Too many failed sign-in attempts for this account or client: wait until ``retry_at``.

    Raised before the password, token or code is even looked at, and the
    same way for an email that has no account, so it tells nothing either.
    """

    def __init__(self, retry_at: datetime) -> None:
        super().__init__(f"too many failed attempts; try again after {retry_at.isoformat()}")
        self.retry_at = retry_at


class AccessDenied(MembershipError, PermissionError):
    """The member may not do or see this."""


class ConfigurationError(MembershipError):
    """The portal was opened or wired incorrectly (unknown URL scheme, missing extra, ...)."""


class StorageError(MembershipError):
    """The storage back end failed in a way the library cannot recover from."""


class Contention(StorageError):
    """Another transaction held what this one needed (a deadlock, a serialization failure).

    The database rolled this transaction back; nothing of it was kept, and
    running the same call again is safe. Scheduled work and webhook
    application retry it by themselves (the next ``tick()``).
    """


class MailDeliveryError(MembershipError):
    """A mailer could not deliver a message.

    ``temporary`` tells the outbox what to do next: ``True`` means try again
    later (the server was unreachable, timed out, or answered with a 4xx
    code); ``False`` means the message will never go through as it is (a 5xx
    answer, a refused recipient, bad credentials), so retrying is pointless.
    """

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message, field=None)
        self.temporary = temporary
