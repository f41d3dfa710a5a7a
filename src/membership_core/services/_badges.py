"""Open Badges 3.0 credentials and their revocation status lists, signed as VC-JWT (EdDSA).

An ``OpenBadgeCredential`` (a W3C Verifiable Credential, data model 2.0) is
encoded as a compact JWS: the JOSE header is ``{"alg": "EdDSA", "typ":
"JWT", "jwk": <the public key>}`` and the payload is the credential itself
plus the claims ``iss``, ``jti``, ``nbf`` and ``sub`` the Open Badges
specification asks for. The Ed25519 key is derived from the portal's secret,
so it never has to be stored (nor can it leak) on its own; only the public
key is ever written out. Revocation uses a W3C Bitstring Status List: a
signed ``BitstringStatusListCredential`` whose bit at the certificate's
``statusListIndex`` is 1 once it is revoked.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import importlib
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from .._optional import load
from ..domain.certificates import Certificate, PortalKey

__all__ = [
    "OB_CONTEXT",
    "VC_CONTEXT",
    "credential",
    "public_jwk",
    "encoded_list",
    "sign",
    "status_list_credential",
    "status_list_url",
]

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
_SCHEMA = (
    "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
)
_PURPOSE = b"open badges ed25519 signing key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _crypto(module: str) -> Any:
    load("cryptography", "Open Badges signatures")  # names the extra when it is missing
    return importlib.import_module(f"cryptography.hazmat.primitives.{module}")


def _signing_key(key: PortalKey) -> Any:
    ed25519 = _crypto("asymmetric.ed25519")
    return ed25519.Ed25519PrivateKey.from_private_bytes(key.derive(_PURPOSE))


def public_jwk(key: PortalKey) -> dict[str, str]:
    """The portal's Ed25519 public key as a JWK (never with ``d``, the private part)."""
    serialization = _crypto("serialization")
    raw = (
        _signing_key(key)
        .public_key()
        .public_bytes(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)
    )
    x = _b64(raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "use": "sig", "kid": x[:16]}


def sign(key: PortalKey, payload: Mapping[str, Any]) -> str:
    """``payload`` as a compact JWS signed with the portal's Ed25519 key (EdDSA)."""
    header = {"alg": "EdDSA", "typ": "JWT", "jwk": public_jwk(key)}

    def encode(value: Mapping[str, Any]) -> str:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return _b64(text.encode("utf-8"))

    signing_input = f"{encode(header)}.{encode(payload)}"
    signature = _signing_key(key).sign(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64(signature)}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _urn(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, '/'.join(parts))}"


def status_list_url(base: str, number: int) -> str:
    """Where the host serves status list ``number``."""
    return f"{base}/certificates/status/{number}"


def credential(
    key: PortalKey, certificate: Certificate, *, base: str, email: str
) -> dict[str, Any]:
    """The certificate as an ``OpenBadgeCredential`` with its JWT claims (unsigned).

    The recipient is named as the standard allows: an opaque ``urn:uuid`` id,
    their name, and their email address as a salted SHA-256 hash, which the
    holder can prove and nobody can read off.
    """
    issuer_id = base
    subject_id = _urn(base, "members", certificate.member_id)
    salt = hmac.new(
        key.derive(b"open badges identity salt"), certificate.id.encode(), hashlib.sha256
    ).hexdigest()[:16]
    email_hash = hashlib.sha256((email.strip().lower() + salt).encode("utf-8")).hexdigest()
    list_url = status_list_url(base, certificate.status_list)
    valid_from = certificate.issued_at.astimezone(UTC).replace(microsecond=0)
    description = certificate.course_description or (
        f"Completion of the course {certificate.course_title}."
    )
    body: dict[str, Any] = {
        "@context": [VC_CONTEXT, OB_CONTEXT],
        "id": _urn(base, "certificates", certificate.id),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": certificate.course_title,
        "issuer": {
            "id": issuer_id,
            "type": ["Profile"],
            "name": certificate.issuer_name,
            "url": base,
        },
        "validFrom": _iso(valid_from),
        "credentialSubject": {
            "id": subject_id,
            "type": ["AchievementSubject"],
            "activityEndDate": _iso(certificate.completed_at),
            "identifier": [
                {
                    "type": "IdentityObject",
                    "identityType": "name",
                    "hashed": False,
                    "identityHash": certificate.recipient_name,
                },
                {
                    "type": "IdentityObject",
                    "identityType": "emailAddress",
                    "hashed": True,
                    "identityHash": f"sha256${email_hash}",
                    "salt": salt,
                },
            ],
            "achievement": {
                "id": f"{base}/courses/{certificate.product_id}",
                "type": ["Achievement"],
                "achievementType": "Certificate",
                "name": certificate.course_title,
                "description": description,
                "criteria": {
                    "narrative": (
                        f"Completed every required lesson of the course "
                        f"{certificate.course_title}, offered by {certificate.issuer_name}."
                    )
                },
            },
        },
        "credentialStatus": {
            "id": f"{list_url}#{certificate.status_index}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(certificate.status_index),
            "statusListCredential": list_url,
        },
        "credentialSchema": [{"id": _SCHEMA, "type": "1EdTechJsonSchemaValidator2019"}],
    }
    claims = {
        "iss": issuer_id,
        "jti": body["id"],
        "sub": subject_id,
        "nbf": int(valid_from.timestamp()),
    }
    return body | claims


def encoded_list(size: int, revoked: Iterable[int]) -> str:
    """A Bitstring Status List's ``encodedList``: multibase base64url of the gzipped bits.

    Bit 0 is the left-most bit of the first byte.
    """
    bits = bytearray(size // 8)
    for index in revoked:
        bits[index // 8] |= 0x80 >> (index % 8)
    return "u" + _b64(gzip.compress(bytes(bits), mtime=0))


def status_list_credential(
    *, base: str, issuer_name: str, number: int, size: int, revoked: Iterable[int], now: datetime
) -> dict[str, Any]:
    """Status list ``number`` as a ``BitstringStatusListCredential`` with its JWT claims."""
    url = status_list_url(base, number)
    valid_from = now.astimezone(UTC).replace(microsecond=0)
    body: dict[str, Any] = {
        "@context": [VC_CONTEXT],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": {"id": base, "type": ["Profile"], "name": issuer_name, "url": base},
        "validFrom": _iso(valid_from),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": encoded_list(size, revoked),
        },
    }
    return body | {
        "iss": base,
        "jti": url,
        "sub": f"{url}#list",
        "nbf": int(valid_from.timestamp()),
    }
