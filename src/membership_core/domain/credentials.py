"""Passwords and single-use account tokens: the rules, and what is stored. Pure."""

from __future__ import annotations

import enum
import functools
import hashlib
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import attrs

from ..errors import ValidationError
from .throttle import ThrottlePolicy

__all__ = [
    "CODE_ALPHABET",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "AccountPolicy",
    "AccountRequest",
    "AccountToken",
    "Credential",
    "MagicLink",
    "TokenInfo",
    "TokenPurpose",
    "hash_code",
    "hash_token",
    "normalize_code",
    "password_problem",
]

#: Shorter passwords are refused (NIST SP 800-63B asks for at least 8; we ask 10).
MIN_PASSWORD_LENGTH = 10
#: Longer ones too: hashing a megabyte on every login attempt is a denial of service.
MAX_PASSWORD_LENGTH = 256


@attrs.frozen
class Credential:
    """A member's password, as its hash only (one per member)."""

    id: str
    member_id: str
    password_hash: str
    changed_at: datetime


class TokenPurpose(enum.Enum):
    """What a single-use account token is for."""

    PASSWORD_RESET = "password_reset"  # noqa: S105 (a purpose, not a password)
    MAGIC_LINK = "magic_link"


@attrs.frozen
class AccountToken:
    """A single-use token, stored as the SHA-256 of its secret, never the secret itself.

    ``used_at`` is set when it is redeemed (or revoked); ``expires_at`` is
    exclusive: at that instant the token no longer works.
    """

    id: str
    member_id: str
    purpose: TokenPurpose
    token_hash: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    #: A magic link's short sign-in code, as :func:`hash_code` of it.
    code_hash: str | None = None

    def usable(self, at: datetime) -> bool:
        """True while neither used nor expired."""
        return self.used_at is None and at < self.expires_at


@attrs.frozen
class AccountRequest:
    """A reset or sign-in email asked for ``email``, answered by the next tick.

    Every request is stored the same way, whether or not the email has an
    account, so the request itself takes the same time for both; the tick
    looks the account up, applies the per-account limit, mints the token and
    queues the email, then deletes the request.
    """

    id: str
    purpose: TokenPurpose
    email: str
    requested_at: datetime


def hash_token(secret: str) -> str:
    """How a token's secret is stored and looked up: its SHA-256, hex.

    Tokens carry 256 random bits, so a fast hash is enough: there is nothing
    to guess, unlike a password.

    >>> len(hash_token("abc"))
    64
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@functools.cache
def _common() -> frozenset[str]:
    text = resources.files("membership_core.data").joinpath("common_passwords.txt").read_text()
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def password_problem(password: str) -> str | None:
    """What is wrong with ``password`` as a new password, or ``None`` when it will do.

    >>> password_problem("short")
    'must be at least 10 characters'
    >>> password_problem("Password123")
    'is one of the most common passwords'
    >>> password_problem("correct horse battery") is None
    True
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    if password.lower() in _common():
        return "is one of the most common passwords"
    if len(set(password)) < 3:
        return "must not repeat one or two characters"
    return None


#: Sign-in codes use letters and digits that cannot be misread (no 0/O, 1/I/L).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


def normalize_code(code: str) -> str:
    """A sign-in code as typed (any case, spaces, dashes) in the form it was issued.

    >>> normalize_code(" abcd-efgh ")
    'ABCDEFGH'
    """
    return "".join(ch for ch in code.upper() if ch not in " -")


def hash_code(token_id: str, code: str) -> str:
    """How a sign-in code is stored: the SHA-256 of the token's id and the normalized code.

    A code has only about 40 bits, so this hash alone would not keep it
    secret from someone who reads the database; what protects it is that it
    works once, for 15 minutes, behind the failed-attempt throttle.
    """
    return hashlib.sha256(f"{token_id}:{normalize_code(code)}".encode()).hexdigest()


@attrs.frozen
class MagicLink:
    """A sign-in link just made: the only time its secret and code exist in clear.

    ``url`` carries the token; ``code`` is the short code to type on a device
    where the link cannot be opened. Neither is stored.
    """

    url: str
    token: str = attrs.field(repr=False)
    code: str = attrs.field(repr=False)
    expires_at: datetime


@attrs.frozen
class TokenInfo:
    """What :meth:`AccountsService.inspect` tells about a token without using it."""

    purpose: TokenPurpose
    member_id: str
    email: str
    expires_at: datetime


def _lifetime(limit: timedelta) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[timedelta], value: object) -> None:
        if not isinstance(value, timedelta) or not timedelta(0) < value <= limit:
            raise ValidationError(attribute.name, f"must be more than 0 and at most {limit}")

    return check


@attrs.frozen
class AccountPolicy:
    """How long account links work, how often they are sent, where they point.

    Pass it as ``Portal.open(..., accounts=AccountPolicy(...))``. Paths are
    appended to the portal's base URL (never to a request's
    Host header) and name the host's own pages.

    >>> AccountPolicy().reset_lifetime
    datetime.timedelta(seconds=1800)
    >>> AccountPolicy(reset_lifetime=timedelta(hours=2))
    Traceback (most recent call last):
    ...
    membership_core.errors.ValidationError: reset_lifetime: must be more than 0 and at most 1:00:00
    """

    reset_lifetime: timedelta = attrs.field(
        default=timedelta(minutes=30), validator=_lifetime(timedelta(hours=1))
    )
    magic_link_lifetime: timedelta = attrs.field(
        default=timedelta(minutes=15), validator=_lifetime(timedelta(hours=24))
    )
    #: At most this many reset (or sign-in) emails per account in ``mail_window``.
    mail_limit: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    mail_window: timedelta = attrs.field(
        default=timedelta(minutes=10), validator=_lifetime(timedelta(days=1))
    )
    reset_path: str = "/reset-password"
    magic_link_path: str = "/sign-in/link"
    #: The host's plain sign-in page: ``login_url`` for a member who cannot get a magic link.
    sign_in_path: str = "/sign-in"
    throttle: ThrottlePolicy = attrs.field(factory=ThrottlePolicy)
