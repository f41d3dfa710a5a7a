"""Certificate renderers are plugins: the built-in html and pdf, and a host's own format."""

from __future__ import annotations

from typing import Any

import pytest

from membership_core import ConfigurationError, NotFound, ValidationError, hookimpl
from membership_core.plugins.registry import AdapterRegistry
from membership_core.ports.certificates import CertificateDocument, CertificateRenderer
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import build_course


class TextRenderer:
    """A plain-text certificate: the kind of renderer a plugin adds."""

    media_type = "text/plain; charset=utf-8"

    def render(self, document: CertificateDocument) -> bytes:
        facts = document.values
        return (
            f"{facts['recipient_name']} completed {facts['course_title']} "
            f"on {facts['completed_on']}. Verify: {document.verification_url}"
        ).encode()


class TextPlugin:
    @hookimpl
    def membership_register_adapters(self, registry: AdapterRegistry) -> None:
        registry.add_certificate_renderer("txt", TextRenderer())


def _certificate(portal: TestPortal) -> str:
    course = build_course(portal, lessons=1, title="Knitting")
    member = portal.checkout.purchase(
        course.offer.id, email="ada@example.com", first_name="Ada", last_name="Lovelace"
    ).member_id
    portal.progress.complete_lesson(member, course.lessons[0].id)
    (certificate,) = portal.certificates.for_member(member)
    return certificate.id


def test_a_plugin_adds_a_format(open_portal: PortalFactory) -> None:
    portal = open_portal(plugins=[TextPlugin()])
    certificate = _certificate(portal)
    assert isinstance(TextRenderer(), CertificateRenderer)
    assert portal.certificates.formats() == ("html", "pdf", "txt")
    text = portal.certificates.render(certificate, "txt").decode()
    assert text.startswith("Ada Lovelace completed Knitting on ")
    assert text.endswith(portal.certificates.verification_url(certificate))
    assert portal.certificates.media_type("txt") == "text/plain; charset=utf-8"


def test_the_built_in_formats_are_the_html_and_pdf_renderings(open_portal: PortalFactory) -> None:
    portal = open_portal()
    certificate = _certificate(portal)
    assert portal.certificates.render(certificate).decode() == portal.certificates.render_html(
        certificate
    )
    assert portal.certificates.render(certificate, "pdf") == portal.certificates.render_pdf(
        certificate
    )
    assert portal.certificates.media_type("pdf") == "application/pdf"


def test_unknown_formats_and_certificates_are_refused(open_portal: PortalFactory) -> None:
    portal = open_portal()
    certificate = _certificate(portal)
    with pytest.raises(ConfigurationError) as unknown:
        portal.certificates.render(certificate, "png")
    assert unknown.value.field == "format"
    assert "html, pdf" in str(unknown.value)
    with pytest.raises(ValidationError) as bad:
        portal.certificates.render(certificate, "")
    assert bad.value.field == "format"
    with pytest.raises(NotFound):
        portal.certificates.render("cert_missing", "html")


def test_a_format_is_registered_once() -> None:
    registry = AdapterRegistry()
    registry.add_certificate_renderer("txt", TextRenderer())
    with pytest.raises(ConfigurationError) as clash:
        registry.add_certificate_renderer("txt", TextRenderer())
    assert "already registered" in str(clash.value)
    not_a_renderer: Any = object()
    with pytest.raises(ConfigurationError) as wrong:
        registry.add_certificate_renderer("bin", not_a_renderer)
    assert wrong.value.field == "renderer"
