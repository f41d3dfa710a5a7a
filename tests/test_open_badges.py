"""The Open Badges 3.0 export: a VC-JWT signed with the portal's Ed25519 key, revocable
through a Bitstring Status List."""

from __future__ import annotations

import base64
import gzip
import json
import sys
from typing import Any, cast

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from membership_core import ConfigurationError, NotFound, ValidationError
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import build_course


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _verified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and payload of a compact JWS whose EdDSA signature checks with its jwk."""
    header_part, payload_part, signature_part = token.split(".")
    header = json.loads(_b64decode(header_part))
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "JWT"
    assert set(header) == {"alg", "typ", "jwk"}  # no other JOSE headers (OB 3.0)
    jwk = header["jwk"]
    assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
    assert "d" not in jwk
    public = Ed25519PublicKey.from_public_bytes(_b64decode(jwk["x"]))
    public.verify(_b64decode(signature_part), f"{header_part}.{payload_part}".encode())
    return header, json.loads(_b64decode(payload_part))


def _issued(portal: TestPortal) -> str:
    portal.settings.update_site(title="Acme Academy")
    portal.use_domain("learn.acme.com")
    course = build_course(portal, lessons=1, title="Knitting Socks")
    portal.catalog.update_product(course.product.id, description="Heels and toes.")
    member = portal.checkout.purchase(
        course.offer.id, email="Ada@Example.com", first_name="Ada", last_name="Lovelace"
    ).member_id
    portal.progress.complete_lesson(member, course.lessons[0].id)
    (certificate,) = portal.certificates.for_member(member)
    return certificate.id


def test_the_credential_is_a_signed_open_badge(open_portal: PortalFactory) -> None:
    portal = open_portal()
    certificate_id = _issued(portal)
    certificate = portal.certificates.get(certificate_id)
    token = portal.certificates.open_badge(certificate_id)
    header, vc = _verified(token)
    assert header["jwk"] == portal.certificates.public_key()
    assert vc["@context"] == [
        "https://www.w3.org/ns/credentials/v2",
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
    ]
    assert vc["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert vc["id"].startswith("urn:uuid:")
    assert vc["issuer"] == {
        "id": "https://learn.acme.com",
        "type": ["Profile"],
        "name": "Acme Academy",
        "url": "https://learn.acme.com",
    }
    subject = vc["credentialSubject"]
    assert subject["type"] == ["AchievementSubject"]
    achievement = subject["achievement"]
    assert achievement["id"] == f"https://learn.acme.com/courses/{certificate.product_id}"
    assert achievement["type"] == ["Achievement"]
    assert achievement["name"] == "Knitting Socks"
    assert achievement["description"] == "Heels and toes."
    assert "Knitting Socks" in achievement["criteria"]["narrative"]
    name, email = subject["identifier"]
    assert (name["identityType"], name["identityHash"], name["hashed"]) == (
        "name",
        "Ada Lovelace",
        False,
    )
    assert (email["identityType"], email["hashed"]) == ("emailAddress", True)
    import hashlib

    expected = hashlib.sha256(("ada@example.com" + email["salt"]).encode()).hexdigest()
    assert email["identityHash"] == f"sha256${expected}"
    assert "ada@example.com" not in token.lower()
    # the JWT claims mirror the credential (OB 3.0, JWT payload format)
    assert vc["iss"] == vc["issuer"]["id"]
    assert vc["jti"] == vc["id"]
    assert vc["sub"] == subject["id"]
    assert vc["nbf"] == int(certificate.issued_at.timestamp())
    assert vc["validFrom"] == certificate.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    status = vc["credentialStatus"]
    assert status["type"] == "BitstringStatusListEntry"
    assert status["statusPurpose"] == "revocation"
    assert status["statusListIndex"] == str(certificate.status_index)
    assert status["statusListCredential"] == "https://learn.acme.com/certificates/status/1"
    # the same certificate exports the same credential
    assert portal.certificates.open_badge(certificate_id) == token


def test_a_tampered_credential_does_not_verify(open_portal: PortalFactory) -> None:
    portal = open_portal()
    token = portal.certificates.open_badge(_issued(portal))
    header, payload, signature = token.split(".")
    vc = json.loads(_b64decode(payload))
    vc["credentialSubject"]["identifier"][0]["identityHash"] = "Mallory"
    forged_payload = base64.urlsafe_b64encode(json.dumps(vc).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidSignature):
        _verified(f"{header}.{forged_payload}.{signature}")
    # nor does one signed by another portal's key claim this portal's
    other = open_portal(tenant="other")
    assert other.certificates.public_key() != portal.certificates.public_key()


def _bit(status_list_token: str, index: int) -> int:
    _header, vc = _verified(status_list_token)
    encoded = vc["credentialSubject"]["encodedList"]
    assert encoded.startswith("u")  # multibase base64url
    bits = gzip.decompress(_b64decode(encoded[1:]))
    assert len(bits) >= 16 * 1024
    return (bits[index // 8] >> (7 - index % 8)) & 1


def test_revocation_shows_in_the_status_list(open_portal: PortalFactory) -> None:
    portal = open_portal()
    certificate_id = _issued(portal)
    certificate = portal.certificates.get(certificate_id)
    listed = portal.certificates.status_list()
    _header, vc = _verified(listed)
    assert vc["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert vc["id"] == "https://learn.acme.com/certificates/status/1"
    assert vc["credentialSubject"]["type"] == "BitstringStatusList"
    assert vc["credentialSubject"]["statusPurpose"] == "revocation"
    assert (vc["iss"], vc["jti"]) == ("https://learn.acme.com", vc["id"])
    assert _bit(listed, certificate.status_index) == 0
    portal.clock.advance(minutes=1)
    portal.certificates.revoke(certificate_id, reason="plagiarism")
    assert _bit(portal.certificates.status_list(), certificate.status_index) == 1
    # a reissue revokes the old one and lists the new one as valid
    replacement = portal.certificates.reissue(certificate_id, reason="fixed")
    listed = portal.certificates.status_list(replacement.status_list)
    assert _bit(listed, certificate.status_index) == 1
    assert _bit(listed, replacement.status_index) == 0
    # an empty list further on is still a valid list
    assert _bit(portal.certificates.status_list(2), 0) == 0
    for bad in (0, -1, "1", 1.0, True):
        with pytest.raises(ValidationError) as caught:
            portal.certificates.status_list(cast(Any, bad))
        assert caught.value.field == "number"


def test_the_private_key_never_appears(open_portal: PortalFactory) -> None:
    portal = open_portal()
    certificate_id = _issued(portal)
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        key = uow.portal_keys.get("certificates")
    assert key is not None
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(
        key.derive(b"open badges ed25519 signing key")
    ).private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    secrets = {
        key.secret,
        base64.urlsafe_b64encode(private).rstrip(b"=").decode(),
        private.hex(),
    }
    outputs = [
        portal.certificates.open_badge(certificate_id),
        portal.certificates.status_list(),
        json.dumps(portal.certificates.public_key()),
    ]
    for output in outputs:
        decoded = output + "".join(
            _b64decode(part).decode("latin-1") for part in output.split(".") if "{" not in part
        )
        assert not [s for s in secrets if s in decoded]


def test_errors(open_portal: PortalFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    portal = open_portal()
    certificate_id = _issued(portal)
    with pytest.raises(NotFound):
        portal.certificates.open_badge("cert_nope")
    with pytest.raises(ValidationError):
        portal.certificates.open_badge("mem_x")
    monkeypatch.setitem(sys.modules, "cryptography", None)  # as if it were not installed
    for call in (
        lambda: portal.certificates.open_badge(certificate_id),
        lambda: portal.certificates.status_list(),
        portal.certificates.public_key,
    ):
        with pytest.raises(ConfigurationError, match=r"membership_core\[badges\]"):
            call()
