"""Certificates: immutable records of what a member completed, and how they are checked.

A :class:`Certificate` copies its facts (who, what, when, by whom) when it is
issued and never changes them. Its *verification code* is an HMAC-SHA256 of
those facts under the portal's secret (:class:`PortalKey`): printing the
serial is enough to look a certificate up, and the code proves that the
facts shown are the ones the portal issued. Codes are computed, never
stored. Everything here is pure: the services pass the key and the time in.

>>> from datetime import UTC, datetime
>>> when = datetime(2026, 3, 1, tzinfo=UTC)
>>> key = PortalKey("certificates", "A" * 43, when)
>>> cert = Certificate(
...     "cert_1", "mem_1", "prod_1", "MC-2345-6789-ABCD", "Ada Lovelace", "Knitting",
...     "Acme Academy", when, when, None, None,
... )
>>> code = verification_code(key, cert)
>>> parse_reference(code.lower()) == ("MC-2345-6789-ABCD", code)
True
>>> parse_reference(" mc-2345-6789-abcd ") == ("MC-2345-6789-ABCD", None)
True
>>> parse_reference("not a certificate") is None
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime

import attrs

__all__ = [
    "SERIAL_ALPHABET",
    "Certificate",
    "CertificateDesign",
    "CertificateTemplate",
    "PortalKey",
    "design_id",
    "format_serial",
    "parse_reference",
    "verification_code",
]

#: The characters of serials and codes: no ``0``/``O`` or ``1``/``I``, so they read aloud safely.
SERIAL_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_SERIAL_PREFIX = "MC"
_SERIAL_CHARS = 12  # 60 random bits, in three groups of four
_CODE_CHARS = 16  # 80 bits of HMAC-SHA256, in four more groups
_GROUP = 4
_CODE_CONTEXT = b"membership_core certificate verification code v1\n"
_CLEAN = re.compile(r"[\s\-_.]")
_VALID_CHARS = frozenset(SERIAL_ALPHABET)


@attrs.frozen
class Certificate:
    """A certificate of completion. Its facts are copied at issue time and never change.

    ``design_id`` names the snapshot of the template it was issued with
    (:class:`CertificateDesign`), so editing the template later does not
    change what an issued certificate says. A reissue is a new certificate
    (``generation`` one higher, ``replaces`` the old one's id); the old one
    is revoked and points to it with ``replaced_by``, so the history stays.
    ``status_list`` and ``status_index`` are its bit in the portal's
    revocation status lists (the Open Badges export).
    """

    id: str
    member_id: str
    product_id: str
    serial: str
    recipient_name: str
    course_title: str
    issuer_name: str
    completed_at: datetime
    issued_at: datetime
    revoked_at: datetime | None
    revocation_reason: str | None
    course_description: str = ""
    design_id: str | None = None
    generation: int = 1
    replaces: str | None = None
    replaced_by: str | None = None
    status_list: int = 1
    status_index: int = 0

    @property
    def revoked(self) -> bool:
        """True once the certificate was revoked (or replaced by a reissue)."""
        return self.revoked_at is not None


@attrs.frozen
class PortalKey:
    """The portal's secret: 32 random bytes (base64url in ``secret``), made once per portal.

    Verification codes are HMACs under a key derived from it, and the Open
    Badges signing key (Ed25519) is derived from it too. It never leaves
    storage through the library: no service returns it, and its ``repr``
    hides it. ``id`` is always ``"certificates"``.
    """

    id: str
    secret: str = attrs.field(repr=False)
    created_at: datetime

    def derive(self, purpose: bytes) -> bytes:
        """A 32-byte key for one ``purpose``, independent of every other purpose's."""
        raw = base64.urlsafe_b64decode(self.secret + "=" * (-len(self.secret) % 4))
        return hmac.new(raw, b"membership_core key derivation\n" + purpose, hashlib.sha256).digest()


@attrs.frozen
class CertificateTemplate:
    """A certificate template an admin wrote: Jinja2 HTML, checked when saved.

    A product uses it once selected for it
    (:meth:`~membership_core.services.certificates.CertificatesService.use_template`);
    ``design_id`` is the snapshot of its current ``html``.
    """

    id: str
    name: str
    html: str
    design_id: str
    created_at: datetime
    updated_at: datetime


@attrs.frozen
class CertificateDesign:
    """An immutable snapshot of a certificate template's source, named by its hash.

    Certificates point at the design they were issued with; saving a template
    adds a design and never changes one.
    """

    id: str
    html: str
    created_at: datetime


def design_id(html: str) -> str:
    """The id of the design with this source: ``cdsn_`` and 40 hex digits of its SHA-256."""
    return "cdsn_" + hashlib.sha256(html.encode("utf-8")).hexdigest()[:40]


def format_serial(characters: str) -> str:
    """``MC-XXXX-XXXX-XXXX`` from twelve characters of :data:`SERIAL_ALPHABET`."""
    return "-".join([_SERIAL_PREFIX, *_groups(characters)])


def _groups(characters: str) -> list[str]:
    return [characters[i : i + _GROUP] for i in range(0, len(characters), _GROUP)]


def _facts(certificate: Certificate) -> bytes:
    """Everything a certificate says, in a fixed, unambiguous form."""
    return json.dumps(
        [
            certificate.id,
            certificate.serial,
            certificate.member_id,
            certificate.product_id,
            certificate.recipient_name,
            certificate.course_title,
            certificate.course_description,
            certificate.issuer_name,
            certificate.completed_at.astimezone(UTC).isoformat(),
            certificate.issued_at.astimezone(UTC).isoformat(),
            certificate.generation,
        ],
        ensure_ascii=True,
        separators=(",", ":"),
    ).encode("ascii")


def verification_code(key: PortalKey, certificate: Certificate) -> str:
    """The certificate's verification code: its serial and four groups of HMAC.

    ``MC-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX``: the serial, then 80 bits of
    HMAC-SHA256 over every fact it certifies, under a key derived from the
    portal's secret. Without the secret nobody can make a code that checks,
    and a code stops checking if any fact is changed.
    """
    mac = hmac.new(
        key.derive(b"verification code"), _CODE_CONTEXT + _facts(certificate), hashlib.sha256
    ).digest()
    number = int.from_bytes(mac[:10], "big")  # 80 bits: 16 characters of 5 bits
    characters = "".join(
        SERIAL_ALPHABET[(number >> (5 * (_CODE_CHARS - 1 - i))) & 31] for i in range(_CODE_CHARS)
    )
    return "-".join([certificate.serial, *_groups(characters)])


def parse_reference(text: str) -> tuple[str, str | None] | None:
    """What a member of the public typed or scanned: ``(serial, code or None)``, or ``None``.

    Spaces, dashes and letter case do not matter. ``None`` when ``text`` is
    neither a serial nor a code.
    """
    cleaned = _CLEAN.sub("", text[:200]).upper()
    if not cleaned.startswith(_SERIAL_PREFIX):
        return None
    body = cleaned[len(_SERIAL_PREFIX) :]
    if len(body) not in (_SERIAL_CHARS, _SERIAL_CHARS + _CODE_CHARS) or not set(body) <= (
        _VALID_CHARS
    ):
        return None
    serial = format_serial(body[:_SERIAL_CHARS])
    if len(body) == _SERIAL_CHARS:
        return serial, None
    return serial, "-".join([serial, *_groups(body[_SERIAL_CHARS:])])
