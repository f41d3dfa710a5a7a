"""Certificates of completion: issued once, immutable, verifiable. ``portal.certificates``.

Issuing copies the facts (who, what, when, by whom) into the certificate and
gives it a random serial; its *verification code* is an HMAC of those facts
under the portal's secret key (see :mod:`membership_core.domain.certificates`),
so a code nobody issued, or one for facts that were changed, never checks.

The key is 32 bytes from :mod:`secrets`, made once per portal when it is
first opened and kept in the portal's own storage (``portal_keys``). The
storage is the trust boundary: whoever can write the portal's tables can
issue certificates through the library anyway, so the key is as safe as the
records it vouches for. No service returns it, no value the library exports
contains it, and its ``repr`` is hidden.
"""

from __future__ import annotations

import base64
import enum
import hmac
import os
import secrets
from datetime import datetime

import attrs

from .. import _validate as v
from ..adapters.certificate_renderers import PdfCertificateRenderer
from ..domain.certificates import (
    SERIAL_ALPHABET,
    Certificate,
    PortalKey,
    design_id,
    format_serial,
    parse_reference,
    verification_code,
)
from ..domain.events import CertificateIssued, CertificateRevoked
from ..domain.members import MemberStatus
from ..errors import ConfigurationError, Conflict, ValidationError
from ..ports.certificates import CertificateDocument
from ..ports.storage import UnitOfWork
from ..templating import TemplateRenderer
from . import _badges
from ._certificate_templates import CertificateTemplates
from ._certificate_values import (
    CERTIFICATE_VARIABLES,
    certificate_values,
    default_certificate_template,
    verification_url,
)
from ._context import Context

__all__ = [
    "STATUS_LIST_SIZE",
    "CERTIFICATE_VARIABLES",
    "CertificateFacts",
    "CertificateStatus",
    "CertificatesService",
    "Verification",
    "default_certificate_template",
]

_KEY_ID = "certificates"
#: Bits in one revocation status list: 16 KiB, the least the Bitstring Status List allows.
STATUS_LIST_SIZE = 131_072
#: Random probes of a status list that may hit taken slots before the next list is used.
_STATUS_PROBES = 16
#: How often an issue is tried again after losing a race for a serial or a status slot.
_ISSUE_TRIES = 3


class CertificateStatus(enum.Enum):
    """The answer of a public verification.

    ``VALID``: issued and not revoked. ``REVOKED``: issued, then revoked or
    replaced by a reissue (the facts say when, why, and by which serial).
    ``FORGED``: a verification code whose serial exists but whose signature
    does not check: someone made it up or altered it. ``UNKNOWN``: no such
    serial in this portal (or not a serial or code at all).
    """

    VALID = "valid"
    REVOKED = "revoked"
    FORGED = "forged"
    UNKNOWN = "unknown"


@attrs.frozen
class CertificateFacts:
    """What a certificate certifies, as a public verification page shows it.

    Who (``recipient_name``), what (``course_title``, ``course_description``),
    when (``completed_at``, ``issued_at``) and by whom (``issuer_name``),
    plus its revocation (``revoked_at``, ``revocation_reason``) and the
    ``replaced_by`` serial of its reissue. Compare them with the document
    in hand: an edited PDF shows other facts than these.
    """

    serial: str
    recipient_name: str
    course_title: str
    course_description: str
    issuer_name: str
    completed_at: datetime
    issued_at: datetime
    revoked_at: datetime | None
    revocation_reason: str | None
    replaced_by: str | None


@attrs.frozen
class Verification:
    """What a public verification answers: the status and, for a known certificate, the facts.

    ``facts`` is what to show the public; ``certificate`` is the full record
    (with the member's and product's ids) for the host's own use. Both are
    ``None`` for ``UNKNOWN`` and ``FORGED``. ``code_checked`` is true when a
    verification code (not only a serial) was given and its signature checked.
    """

    status: CertificateStatus
    certificate: Certificate | None
    facts: CertificateFacts | None = None
    code_checked: bool = False


def _new_key(now: datetime) -> PortalKey:
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    return PortalKey(_KEY_ID, secret, now)


def _serial() -> str:
    return format_serial("".join(secrets.choice(SERIAL_ALPHABET) for _ in range(12)))


class CertificatesService(CertificateTemplates):
    """Issue, read, verify, revoke, reissue and render certificates; keep their templates."""

    def __init__(self, context: Context, renderer: TemplateRenderer | None = None) -> None:
        super().__init__(context)
        self._renderer = renderer or TemplateRenderer()

    # -- the portal's key and default design ---------------------------------------

    def _seed(self) -> None:
        """Give a newly opened portal its key and the default template's design, once.

        One read when both exist. Two servers opening a new portal at once
        may both try; the one that loses keeps the winner's key.
        """
        default = default_certificate_template()
        with self._ctx.uow(write=False) as uow:
            ready = uow.portal_keys.get(_KEY_ID) is not None and (
                uow.certificate_designs.get(design_id(default)) is not None
            )
        if ready:
            return
        try:
            with self._ctx.uow() as uow:
                if uow.portal_keys.get_for_update(_KEY_ID) is None:
                    uow.portal_keys.add(_new_key(self._ctx.now()))
                self._design(uow, default)
                uow.commit()
        except Conflict:
            pass  # made by another server meanwhile

    def _key(self, uow: UnitOfWork, *, create: bool = False) -> PortalKey:
        """The portal's key; made in ``uow`` with ``create`` if it is missing."""
        key = uow.portal_keys.get(_KEY_ID)
        if key is None:
            if not create:
                # Made when the portal is opened; only a storage emptied behind its back lacks it.
                raise ConfigurationError(
                    "this portal has no certificate key; open the portal again to make one"
                )
            key = _new_key(self._ctx.now())
            uow.portal_keys.add(key)
        return key

    # -- issuing -------------------------------------------------------------------

    def issue(self, member_id: str, product_id: str) -> Certificate:
        """Issue the member's certificate for a completed product; exactly once.

        Calling it again returns the certificate already issued (the latest
        reissue, once reissued; a revoked one stays revoked: see
        :meth:`reissue`). The member must have completed the product
        (``Conflict`` otherwise).
        """
        v.identifier("member_id", member_id, "mem")
        v.identifier("product_id", product_id, "prod")
        for attempt in range(_ISSUE_TRIES):
            try:
                with self._ctx.uow() as uow:
                    certificate, created = self._issue(uow, member_id, product_id)
                    uow.commit()
            except Conflict as error:
                if error.field == "product_id":
                    raise  # not completed
                # A concurrent issue won the unique (member, product) race: return theirs.
                # Otherwise a serial or status slot was taken meanwhile: try again.
                with self._ctx.uow(write=False) as uow:
                    found = self._latest(uow, member_id, product_id)
                if found is not None:
                    return found
                if attempt == _ISSUE_TRIES - 1:
                    raise
                continue
            if created:
                self._committed()
            return certificate
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _latest(uow: UnitOfWork, member_id: str, product_id: str) -> Certificate | None:
        found = uow.certificates.find(
            {"member_id": member_id, "product_id": product_id},
            order_by=["generation"],
            descending=True,
            limit=1,
        )
        return found[0] if found else None

    def _issue(self, uow: UnitOfWork, member_id: str, product_id: str) -> tuple[Certificate, bool]:
        existing = self._latest(uow, member_id, product_id)
        if existing is not None:
            return existing, False
        return self._new_certificate(uow, member_id, product_id, None), True

    def _new_certificate(
        self, uow: UnitOfWork, member_id: str, product_id: str, previous: Certificate | None
    ) -> Certificate:
        """Issue generation 1 (``previous`` ``None``) or the reissue of ``previous``."""
        member = self._require(uow.members, "member", member_id, "member_id")
        product = self._require(uow.products, "product", product_id, "product_id")
        completion = uow.course_completions.find({"member_id": member_id, "product_id": product_id})
        if not completion:
            raise Conflict(
                f"member {member_id!r} has not completed product {product_id!r}",
                field="product_id",
            )
        self._key(uow, create=True)
        status_list, status_index = self._status_slot(uow)
        certificate = Certificate(
            self._ctx.ids.new("cert"),
            member_id,
            product_id,
            self._free_serial(uow),
            member.display_name,
            product.title,
            self._settings(uow).site.title,
            completion[0].completed_at,
            self._ctx.now(),
            None,
            None,
            course_description=product.description,
            design_id=self._design_for(uow, product),
            generation=1 if previous is None else previous.generation + 1,
            replaces=None if previous is None else previous.id,
            status_list=status_list,
            status_index=status_index,
        )
        uow.certificates.add(certificate)
        self._record(
            uow,
            CertificateIssued,
            certificate_id=certificate.id,
            member_id=member_id,
            product_id=product_id,
            serial=certificate.serial,
            replaces=certificate.replaces,
        )
        return certificate

    @staticmethod
    def _free_serial(uow: UnitOfWork) -> str:
        while True:  # 60 random bits: a clash is all but impossible, and then tried again
            serial = _serial()
            if not uow.certificates.count({"serial": serial}):
                return serial

    @staticmethod
    def _status_slot(uow: UnitOfWork) -> tuple[int, int]:
        """A random free bit of a status list, for herd privacy; the next list once one fills.

        A list counts as full when :data:`_STATUS_PROBES` random probes in a
        row find taken bits (so lists fill to about three quarters).
        """
        number = 1
        while True:
            for _ in range(_STATUS_PROBES):
                index = secrets.randbelow(STATUS_LIST_SIZE)
                if not uow.certificates.count({"status_list": number, "status_index": index}):
                    return number, index
            number += 1

    # -- revoking and reissuing ------------------------------------------------------

    def revoke(self, certificate_id: str, *, reason: str) -> Certificate:
        """Revoke a certificate: verification answers ``REVOKED`` with the date and ``reason``.

        Records ``CertificateRevoked``. A certificate already revoked is a
        ``Conflict``. Revoking keeps the certificate (and its facts); to
        correct one, :meth:`reissue` it instead.
        """
        v.identifier("certificate_id", certificate_id, "cert")
        reason = v.text("reason", reason, max_length=500)
        with self._ctx.uow() as uow:
            current = self._require_for_update(
                uow.certificates, "certificate", certificate_id, "certificate_id"
            )
            if current.revoked_at is not None:
                raise Conflict(
                    f"certificate {certificate_id!r} was already revoked on "
                    f"{current.revoked_at.date().isoformat()}",
                    field="certificate_id",
                )
            revoked = attrs.evolve(current, revoked_at=self._ctx.now(), revocation_reason=reason)
            self._store_revocation(uow, current, revoked)
            uow.commit()
        self._committed()
        return revoked

    def reissue(self, certificate_id: str, *, reason: str) -> Certificate:
        """Replace a certificate with a new one; return the new one. The history stays.

        The new certificate has a new serial and code and today's facts (the
        member's name, the course's title and description, the site's title,
        the product's template now), the same completion date, ``generation``
        one higher and ``replaces`` the old one. The old one is revoked with
        ``reason`` (a revoked one keeps its own revocation) and points to the
        new one with ``replaced_by``; its verification says so. Records
        ``CertificateRevoked`` (when it was not revoked yet) and
        ``CertificateIssued``. Only the latest certificate of a member and
        product can be reissued (``Conflict``), and not once the member was
        deleted (``Conflict``).
        """
        v.identifier("certificate_id", certificate_id, "cert")
        reason = v.text("reason", reason, max_length=500)
        for attempt in range(_ISSUE_TRIES):
            try:
                return self._reissue(certificate_id, reason)
            except Conflict as error:
                if error.field == "certificate_id" or attempt == _ISSUE_TRIES - 1:
                    raise
                # A serial or status slot was taken meanwhile: try again.
        raise AssertionError("unreachable")  # pragma: no cover

    def _reissue(self, certificate_id: str, reason: str) -> Certificate:
        with self._ctx.uow() as uow:
            current = self._require_for_update(
                uow.certificates, "certificate", certificate_id, "certificate_id"
            )
            if current.replaced_by is not None:
                raise Conflict(
                    f"certificate {certificate_id!r} was already reissued as "
                    f"{current.replaced_by!r}; reissue that one",
                    field="certificate_id",
                )
            member = uow.members.get(current.member_id)
            if member is None or member.status is MemberStatus.DELETED:
                raise Conflict(
                    f"the member of certificate {certificate_id!r} was deleted",
                    field="certificate_id",
                )
            replacement = self._new_certificate(uow, current.member_id, current.product_id, current)
            revoked = attrs.evolve(
                current,
                revoked_at=current.revoked_at or self._ctx.now(),
                revocation_reason=current.revocation_reason or f"reissued: {reason}",
                replaced_by=replacement.id,
            )
            self._store_revocation(uow, current, revoked)
            uow.commit()
        self._committed()
        return replacement

    def _store_revocation(self, uow: UnitOfWork, before: Certificate, after: Certificate) -> None:
        """Save ``after``; record ``CertificateRevoked`` if ``before`` was not revoked yet."""
        uow.certificates.update(after)
        if before.revoked_at is None:
            self._record(
                uow,
                CertificateRevoked,
                certificate_id=after.id,
                member_id=after.member_id,
                product_id=after.product_id,
                serial=after.serial,
                reason=after.revocation_reason or "",
                replaced_by=after.replaced_by,
            )

    # -- reading -------------------------------------------------------------------

    def get(self, certificate_id: str) -> Certificate:
        """The certificate, or ``NotFound``."""
        v.identifier("certificate_id", certificate_id, "cert")
        with self._ctx.uow(write=False) as uow:
            return self._require(uow.certificates, "certificate", certificate_id, "certificate_id")

    def for_member(self, member_id: str) -> list[Certificate]:
        """Every certificate of the member, revoked and replaced ones too, oldest first."""
        v.identifier("member_id", member_id, "mem")
        with self._ctx.uow(write=False) as uow:
            return uow.certificates.find({"member_id": member_id}, order_by=["issued_at"])

    def verification_code(self, certificate_id: str) -> str:
        """The certificate's verification code (``MC-XXXX-...``, seven groups), to print or link.

        Computed from the facts and the portal's key each time; never stored.
        """
        v.identifier("certificate_id", certificate_id, "cert")
        with self._ctx.uow(write=False) as uow:
            certificate = self._require(
                uow.certificates, "certificate", certificate_id, "certificate_id"
            )
            return verification_code(self._key(uow), certificate)

    def verification_url(self, certificate_id: str) -> str:
        """The public link that verifies the certificate: its code filled in.

        ``{base_url}/certificates/verify?code=MC-...``; the host serves that
        page and calls :meth:`verify` with the ``code`` parameter. Built from
        the portal's base URL as it is now, so links follow a move.
        """
        v.identifier("certificate_id", certificate_id, "cert")
        with self._ctx.uow(write=False) as uow:
            certificate = self._require(
                uow.certificates, "certificate", certificate_id, "certificate_id"
            )
            return verification_url(
                self._base_url(uow), verification_code(self._key(uow), certificate)
            )

    def _email_values(self, uow: UnitOfWork, certificate: Certificate) -> dict[str, str]:
        """The ``certificate`` value of emails: its serial and verification link."""
        code = verification_code(self._key(uow), certificate)
        return {
            "serial": certificate.serial,
            "verification_url": verification_url(self._base_url(uow), code),
        }

    # -- verifying -------------------------------------------------------------------

    def verify(self, serial_or_code: str) -> Verification:
        """The public check anyone may call, with a serial or a verification code.

        Spaces, dashes and letter case do not matter. A serial answers
        ``VALID`` or ``REVOKED`` with the facts, or ``UNKNOWN``. A code is
        checked against the portal's key too: one that does not check is
        ``FORGED``, without facts. Anything else (a typo, a stranger's text)
        is ``UNKNOWN``. Reads only; a non-string is a ``ValidationError``.
        """
        if not isinstance(serial_or_code, str):
            raise ValidationError(
                "serial_or_code", f"must be a string, not {type(serial_or_code).__name__}"
            )
        reference = parse_reference(serial_or_code)
        if reference is None:
            return Verification(CertificateStatus.UNKNOWN, None)
        serial, code = reference
        with self._ctx.uow(write=False) as uow:
            found = uow.certificates.find({"serial": serial}, limit=1)
            if not found:
                return Verification(CertificateStatus.UNKNOWN, None)
            certificate = found[0]
            if code is not None and not hmac.compare_digest(
                verification_code(self._key(uow), certificate).encode("ascii"),
                code.encode("ascii"),
            ):
                return Verification(CertificateStatus.FORGED, None, code_checked=True)
            replacement = (
                uow.certificates.get(certificate.replaced_by)
                if certificate.replaced_by is not None
                else None
            )
        facts = CertificateFacts(
            certificate.serial,
            certificate.recipient_name,
            certificate.course_title,
            certificate.course_description,
            certificate.issuer_name,
            certificate.completed_at,
            certificate.issued_at,
            certificate.revoked_at,
            certificate.revocation_reason,
            replacement.serial if replacement is not None else None,
        )
        status = CertificateStatus.REVOKED if certificate.revoked else CertificateStatus.VALID
        return Verification(status, certificate, facts, code_checked=code is not None)

    # -- rendering -------------------------------------------------------------------

    def render_html(self, certificate_id: str) -> str:
        """The certificate as a standalone HTML page, from its stored facts and design only.

        The design is the template as it was when the certificate was issued;
        the QR code (inline SVG) and the link carry its verification code.
        Needs ``membership_core[certificates]`` (segno, for the QR code).
        """
        v.identifier("certificate_id", certificate_id, "cert")
        with self._ctx.uow(write=False) as uow:
            certificate = self._require(
                uow.certificates, "certificate", certificate_id, "certificate_id"
            )
            source = self._source(uow, certificate)
            code = verification_code(self._key(uow), certificate)
            base = self._base_url(uow)
        values = certificate_values(certificate, code, verification_url(base, code))
        return self._renderer.render_string(source, {"certificate": values}, html=True)

    def render(self, certificate_id: str, format: str = "html") -> bytes:
        """The certificate as a file of ``format``, by the renderer a plugin registered for it.

        ``html`` and ``pdf`` are built in (see :meth:`render_html`,
        :meth:`render_pdf`); plugins add more through
        ``registry.add_certificate_renderer`` in ``membership_register_adapters``
        (:mod:`membership_core.ports.certificates`). An unknown format is a
        ``ConfigurationError`` naming the known ones.
        """
        v.identifier("certificate_id", certificate_id, "cert")
        format = v.text("format", format, max_length=50)
        renderer = self._ctx.plugins.adapters.certificate_renderer(format)
        with self._ctx.uow(write=False) as uow:
            certificate = self._require(
                uow.certificates, "certificate", certificate_id, "certificate_id"
            )
            source = self._source(uow, certificate)
            code = verification_code(self._key(uow), certificate)
            base = self._base_url(uow)
        url = verification_url(base, code)
        values = certificate_values(certificate, code, url)
        html = self._renderer.render_string(source, {"certificate": values}, html=True)
        return renderer.render(CertificateDocument(certificate, code, url, values, html))

    def formats(self) -> tuple[str, ...]:
        """The formats :meth:`render` knows, sorted."""
        return self._ctx.plugins.adapters.certificate_formats

    def media_type(self, format: str) -> str:
        """The MIME type of ``format``'s files (for the host's download response)."""
        format = v.text("format", format, max_length=50)
        return self._ctx.plugins.adapters.certificate_renderer(format).media_type

    def render_pdf(
        self, certificate_id: str, *, font: str | os.PathLike[str] | None = None
    ) -> bytes:
        """The certificate as an A4 landscape PDF, from its stored facts only.

        Drawn with ReportLab (``membership_core[pdf]``; a ``ConfigurationError``
        names the extra when it is missing) in a fixed layout matching the
        default template, with the QR code and a link to the verification
        page. ``font`` is a TrueType file for names and titles in scripts the
        shipped Bitstream Vera lacks (a ``ConfigurationError`` on ``font``
        says which character it could not print). The same certificate gives
        the same bytes every time.
        """
        v.identifier("certificate_id", certificate_id, "cert")
        if font is not None and not isinstance(font, str | os.PathLike):
            raise ValidationError("font", f"must be a path to a font file, not {font!r}")
        with self._ctx.uow(write=False) as uow:
            certificate = self._require(
                uow.certificates, "certificate", certificate_id, "certificate_id"
            )
            code = verification_code(self._key(uow), certificate)
            base = self._base_url(uow)
        url = verification_url(base, code)
        values = certificate_values(certificate, code, url)
        document = CertificateDocument(certificate, code, url, values, "")
        return PdfCertificateRenderer(font).render(document)

    # -- Open Badges -----------------------------------------------------------------

    def open_badge(self, certificate_id: str) -> str:
        """The certificate as a signed Open Badges 3.0 ``OpenBadgeCredential`` (a VC-JWT).

        A compact JWS (EdDSA, Ed25519) whose payload is the credential: the
        issuer (the site's title and the portal's base URL), the achievement (id, type,
        name, description and criteria of the course), the recipient (an
        opaque id, their name and their salted, hashed email) and a
        ``credentialStatus`` pointing at its bit of :meth:`status_list`. The
        header carries the public key (:meth:`public_key`). Needs
        ``membership_core[badges]``.
        """
        v.identifier("certificate_id", certificate_id, "cert")
        with self._ctx.uow(write=False) as uow:
            certificate = self._require(
                uow.certificates, "certificate", certificate_id, "certificate_id"
            )
            member = uow.members.get(certificate.member_id)
            key = self._key(uow)
            base = self._base_url(uow)
        email = member.email if member is not None else ""
        return _badges.sign(key, _badges.credential(key, certificate, base=base, email=email))

    def status_list(self, number: int = 1) -> str:
        """Revocation status list ``number`` as a signed ``BitstringStatusListCredential``.

        The host serves it at ``{base_url}/certificates/status/{number}`` (the
        URL every exported credential names); its bit at a certificate's
        ``status_index`` is 1 once that certificate is revoked or reissued.
        Signed like :meth:`open_badge`; ``validFrom`` is now, so serve a
        fresh one (or cache it briefly). Needs ``membership_core[badges]``.
        """
        number = v.integer("number", number, minimum=1)
        now = self._ctx.now()
        with self._ctx.uow(write=False) as uow:
            revoked = uow.certificates.find_due("revoked_at", now, {"status_list": number})
            key = self._key(uow)
            base = self._base_url(uow)
            title = self._settings(uow).site.title
        payload = _badges.status_list_credential(
            base=base,
            issuer_name=title,
            number=number,
            size=STATUS_LIST_SIZE,
            revoked=(certificate.status_index for certificate in revoked),
            now=now,
        )
        return _badges.sign(key, payload)

    def public_key(self) -> dict[str, str]:
        """The portal's public signing key as a JWK, for the host to publish.

        Only the public part (``kty``, ``crv``, ``x``, ...), never the private
        one. Needs ``membership_core[badges]``.
        """
        with self._ctx.uow(write=False) as uow:
            key = self._key(uow)
        return _badges.public_jwk(key)

    @staticmethod
    def _source(uow: UnitOfWork, certificate: Certificate) -> str:
        design = (
            uow.certificate_designs.get(certificate.design_id)
            if certificate.design_id is not None
            else None
        )
        return design.html if design is not None else default_certificate_template()
