"""Signed webhooks: a small signer and verifier that gateway adapters can reuse.

The scheme is Stripe's, so it is familiar and easy to reproduce: the sender
computes HMAC-SHA256 with a shared secret over ``f"{timestamp}.".encode() +
body`` (the *raw* body bytes) and sends a header such as::

    Membership-Signature: t=1767603600,v1=5257a869e7ec...

``t`` is the Unix time of signing; there may be several ``v1`` values (one per
secret while a secret is being rotated), and schemes other than ``v1`` are
ignored. The receiver accepts the request when one ``v1`` matches one of its
secrets (compared in constant time) *and* ``t`` is within ``tolerance`` of its
own clock, in either direction. A timestamp exactly ``tolerance`` away is still
accepted; one second more is not.

>>> body = b'{"id": "evt_1"}'
>>> header = sign(body, "whsec_demo", 1767603600)
>>> header.startswith("t=1767603600,v1=")
True
>>> from datetime import UTC, datetime
>>> verifier = WebhookVerifier("whsec_demo")
>>> verifier.verify(body, {"membership-signature": header},
...                 now=datetime.fromtimestamp(1767603660, UTC))
1767603600
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from .._validate import aware
from ..errors import InvalidToken, ValidationError

__all__ = [
    "DEFAULT_SIGNATURE_HEADER",
    "DEFAULT_TOLERANCE",
    "SIGNATURE_SCHEME",
    "WebhookVerifier",
    "sign",
]

#: The header the built-in gateways put the signature in (looked up case-insensitively).
DEFAULT_SIGNATURE_HEADER = "Membership-Signature"

#: How far a signature's timestamp may be from the receiver's clock, either way.
DEFAULT_TOLERANCE = timedelta(seconds=300)

#: The signature scheme's name in the header (``v1=<hex>``).
SIGNATURE_SCHEME = "v1"

# Longer headers are refused before any work is done on them.
_MAX_HEADER_LENGTH = 4096
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")

SecretsLike = str | bytes | Sequence[str | bytes]


def _secrets(value: object) -> tuple[bytes, ...]:
    """One secret or several, as bytes; each must be non-empty."""
    if isinstance(value, (str, bytes)):
        items: list[object] = [value]
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise ValidationError(
            "secret", f"must be str, bytes or a sequence of them, not {type(value).__name__}"
        )
    if not items:
        raise ValidationError("secret", "at least one secret is needed")
    result = []
    for item in items:
        if isinstance(item, str):
            item = item.encode("utf-8")
        if not isinstance(item, bytes):
            raise ValidationError("secret", f"must be str or bytes, not {type(item).__name__}")
        if not item:
            raise ValidationError("secret", "must not be empty")
        result.append(item)
    return tuple(result)


def _body(body: object) -> bytes:
    if isinstance(body, bytearray):
        return bytes(body)
    if not isinstance(body, bytes):
        raise ValidationError(
            "body", f"must be the raw request body as bytes, not {type(body).__name__}"
        )
    return body


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: SecretsLike, timestamp: int | datetime) -> str:
    """The signature header value for ``body``: ``t=<unix>,v1=<hex>[,v1=<hex>...]``.

    ``secret`` may be a sequence of secrets, giving one ``v1`` per secret (how
    a sender signs while a secret is rotated). ``timestamp`` is Unix seconds
    or an aware datetime (truncated to whole seconds).
    """
    payload = _body(body)
    keys = _secrets(secret)
    if isinstance(timestamp, datetime):
        seconds = int(aware("timestamp", timestamp).timestamp())
    elif isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValidationError("timestamp", f"must be Unix seconds or a datetime, not {timestamp!r}")
    else:
        seconds = timestamp
    parts = [f"t={seconds}"]
    parts += [f"{SIGNATURE_SCHEME}={_digest(key, seconds, payload)}" for key in keys]
    return ",".join(parts)


def _tolerance(value: object) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, (int, timedelta)):
        raise ValidationError(
            "tolerance", f"must be seconds (int) or a timedelta, not {type(value).__name__}"
        )
    tolerance = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if tolerance <= timedelta(0):
        raise ValidationError(
            "tolerance",
            "must be more than zero: without a window every webhook would be refused "
            "(and an unbounded one would accept replays forever)",
        )
    return tolerance


class WebhookVerifier:
    """Checks signed webhook requests against one or more secrets.

    ``secrets`` is the current secret, or several while rotating (a request
    signed with any of them is accepted). ``header`` names the signature
    header. ``tolerance`` (seconds or a timedelta, more than zero; 300 s by
    default) bounds how far the signed timestamp may be from ``now``, in the
    past or the future; exactly ``tolerance`` away is accepted.

    The verifier holds no mutable state, so one instance serves all threads.
    It does not deduplicate: a replay inside the tolerance verifies again, and
    the library deduplicates events by id.
    """

    def __init__(
        self,
        secrets: SecretsLike,
        *,
        header: str = DEFAULT_SIGNATURE_HEADER,
        tolerance: int | timedelta = DEFAULT_TOLERANCE,
    ) -> None:
        self._secrets = _secrets(secrets)
        if not isinstance(header, str) or not header.strip():
            raise ValidationError("header", "must be a non-empty header name")
        self._header = header.strip()
        self._tolerance = _tolerance(tolerance)

    @property
    def header(self) -> str:
        """The signature header's name."""
        return self._header

    @property
    def tolerance(self) -> timedelta:
        """How far the signed timestamp may be from ``now``, either way (inclusive)."""
        return self._tolerance

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: datetime) -> int:
        """Verify a request; return its signed Unix timestamp or raise ``InvalidToken``.

        ``headers`` may be any mapping (a dict, a framework's header object);
        the signature header is found case-insensitively.
        """
        payload = _body(body)
        if not isinstance(headers, Mapping):
            raise ValidationError("headers", f"must be a mapping, not {type(headers).__name__}")
        wanted = self._header.lower()
        values = [value for key, value in headers.items() if str(key).lower() == wanted]
        if not values:
            raise InvalidToken(f"webhook signature header {self._header!r} is missing")
        if len(values) > 1:
            raise InvalidToken(f"webhook signature header {self._header!r} appears more than once")
        return self.verify_signature(payload, values[0], now=now)

    def verify_signature(self, body: bytes, signature: str, *, now: datetime) -> int:
        """Verify ``body`` against a signature header *value*; return its timestamp.

        The signature is checked before the timestamp, so an unsigned
        timestamp is never reported on.
        """
        payload = _body(body)
        current = aware("now", now)
        timestamp, candidates = self._parse(signature)
        expected = [_digest(key, timestamp, payload) for key in self._secrets]
        # Every pair is compared, in constant time, so timing reveals nothing.
        matched = False
        for candidate in candidates:
            for digest in expected:
                matched |= hmac.compare_digest(candidate.lower(), digest)
        if not matched:
            raise InvalidToken(
                "webhook signature does not match the body "
                "(tampered body, wrong secret, or a body re-encoded before verifying)"
            )
        offset = current.timestamp() - timestamp
        limit = self._tolerance.total_seconds()
        if offset > limit:
            raise InvalidToken(
                f"webhook timestamp is outside the tolerance: signed {offset:.0f} s ago, "
                f"more than {limit:.0f} s (a replay, or a delivery that waited too long)"
            )
        if -offset > limit:
            raise InvalidToken(
                f"webhook timestamp is outside the tolerance: {-offset:.0f} s in the future, "
                f"more than {limit:.0f} s (check the clocks)"
            )
        return timestamp

    def _parse(self, signature: object) -> tuple[int, list[str]]:
        name = self._header
        if not isinstance(signature, str):
            raise InvalidToken(f"webhook signature header {name!r} is not text")
        if len(signature) > _MAX_HEADER_LENGTH:
            raise InvalidToken(f"webhook signature header {name!r} is too long")
        timestamps: list[str] = []
        candidates: list[str] = []
        for item in signature.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise InvalidToken(
                    f"webhook signature header {name!r} is malformed: "
                    f"{item[:20]!r} is not key=value"
                )
            key, value = key.strip(), value.strip()
            if key == "t":
                timestamps.append(value)
            elif key == SIGNATURE_SCHEME:
                if not _HEX_DIGEST.match(value):
                    raise InvalidToken(
                        f"webhook signature header {name!r} is malformed: "
                        f"{SIGNATURE_SCHEME} must be 64 hex digits"
                    )
                candidates.append(value)
        if len(timestamps) != 1 or not _TIMESTAMP.match(timestamps[0]):
            raise InvalidToken(
                f"webhook signature header {name!r} is malformed: it needs exactly one "
                "t=<unix seconds>"
            )
        if not candidates:
            raise InvalidToken(
                f"webhook signature header {name!r} is malformed: no {SIGNATURE_SCHEME}= signature"
            )
        return int(timestamps[0]), candidates
