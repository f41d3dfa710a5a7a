"""Certificates of completion: issued once, immutable, verifiable."""

from __future__ import annotations

import enum
import secrets
from importlib import resources

import attrs

from .. import _validate as v
from ..domain.certificates import Certificate
from ..domain.events import CertificateIssued
from ..domain.settings import SiteSettings
from ..errors import Conflict, ValidationError
from ..ports.storage import UnitOfWork
from ..templating import render_string
from ._context import Service

__all__ = ["CertificateStatus", "CertificatesService", "Verification", "verification_url"]

_SERIAL_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud safely


class CertificateStatus(enum.Enum):
    """The answer of a public verification."""

    VALID = "valid"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@attrs.frozen
class Verification:
    """What a public verification shows: the status and, when known, the facts."""

    status: CertificateStatus
    certificate: Certificate | None


def verification_url(settings: SiteSettings, serial: str) -> str:
    """The public link that verifies the certificate with ``serial``."""
    return f"{settings.base_url}/certificates/verify?serial={serial}"


def _serial() -> str:
    groups = ("".join(secrets.choice(_SERIAL_ALPHABET) for _ in range(4)) for _ in range(3))
    return "MC-" + "-".join(groups)


class CertificatesService(Service):
    """Issue, read, verify and render certificates. ``portal.certificates``."""

    def issue(self, member_id: str, product_id: str) -> Certificate:
        """Issue the member's certificate for a completed product; exactly once.

        Calling it again returns the certificate already issued. The member
        must have completed the product (``Conflict`` otherwise).
        """
        v.identifier("member_id", member_id, "mem")
        v.identifier("product_id", product_id, "prod")
        try:
            with self._ctx.uow() as uow:
                certificate, created = self._issue(uow, member_id, product_id)
                uow.commit()
        except Conflict:
            # A concurrent issue won the unique (member, product) race: return theirs.
            with self._ctx.uow(write=False) as uow:
                found = uow.certificates.find({"member_id": member_id, "product_id": product_id})
            if not found:
                raise
            return found[0]
        if created:
            self._committed()
        return certificate

    def _issue(self, uow: UnitOfWork, member_id: str, product_id: str) -> tuple[Certificate, bool]:
        existing = uow.certificates.find({"member_id": member_id, "product_id": product_id})
        if existing:
            return existing[0], False
        member = self._require(uow.members, "member", member_id, "member_id")
        product = self._require(uow.products, "product", product_id, "product_id")
        completion = uow.course_completions.find({"member_id": member_id, "product_id": product_id})
        if not completion:
            raise Conflict(
                f"member {member_id!r} has not completed product {product_id!r}",
                field="product_id",
            )
        settings = self._site(uow)
        certificate = Certificate(
            self._ctx.ids.new("cert"),
            member_id,
            product_id,
            _serial(),
            member.display_name,
            product.title,
            settings.title,
            completion[0].completed_at,
            self._ctx.now(),
            None,
            None,
        )
        uow.certificates.add(certificate)
        self._record(
            uow,
            CertificateIssued,
            certificate_id=certificate.id,
            member_id=member_id,
            product_id=product_id,
            serial=certificate.serial,
        )
        return certificate, True

    def get(self, certificate_id: str) -> Certificate:
        """The certificate, or ``NotFound``."""
        v.identifier("certificate_id", certificate_id, "cert")
        with self._ctx.uow(write=False) as uow:
            return self._require(uow.certificates, "certificate", certificate_id, "certificate_id")

    def for_member(self, member_id: str) -> list[Certificate]:
        """Every certificate of the member, oldest first."""
        v.identifier("member_id", member_id, "mem")
        with self._ctx.uow(write=False) as uow:
            return uow.certificates.find({"member_id": member_id}, order_by=["issued_at"])

    def verify(self, serial: str) -> Verification:
        """The public check anyone may call: valid, revoked or unknown, with the facts."""
        if not isinstance(serial, str):
            raise ValidationError("serial", "must be a string")
        cleaned = serial.strip().upper()
        with self._ctx.uow(write=False) as uow:
            found = uow.certificates.find({"serial": cleaned}, limit=1) if cleaned else []
        if not found:
            return Verification(CertificateStatus.UNKNOWN, None)
        certificate = found[0]
        if certificate.revoked_at is not None:
            return Verification(CertificateStatus.REVOKED, certificate)
        return Verification(CertificateStatus.VALID, certificate)

    def verification_url(self, certificate: Certificate) -> str:
        """The public link that verifies this certificate."""
        with self._ctx.uow(write=False) as uow:
            return verification_url(self._site(uow), certificate.serial)

    def render_html(self, certificate_id: str) -> str:
        """The certificate as a standalone HTML page, from its stored facts only."""
        certificate = self.get(certificate_id)
        source = (
            resources.files("membership_core")
            .joinpath("templates/certificate/default.html")
            .read_text(encoding="utf-8")
        )
        context = {
            "certificate": {
                "serial": certificate.serial,
                "recipient_name": certificate.recipient_name,
                "course_title": certificate.course_title,
                "issuer_name": certificate.issuer_name,
                "completed_on": certificate.completed_at.date().isoformat(),
                "verification_url": self.verification_url(certificate),
            }
        }
        return render_string(source, context, html=True)
