"""Certificates as PDF (membership_core[pdf]): the facts, the link, the same bytes each time."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from membership_core import ConfigurationError, NotFound, ValidationError
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import build_course


def _certificate(portal: TestPortal, *, first_name: str = "Zoë", last_name: str = "Ørsted") -> str:
    portal.settings.update_site(title="Acme Academy")
    portal.use_domain("learn.acme.com")
    course = build_course(portal, lessons=1, title="Knitting Socks")
    member = portal.checkout.purchase(
        course.offer.id, email="z@example.com", first_name=first_name, last_name=last_name
    ).member_id
    portal.progress.complete_lesson(member, course.lessons[0].id)
    (certificate,) = portal.certificates.for_member(member)
    return certificate.id


def test_a_pdf_with_the_facts_and_the_verification_link(open_portal: PortalFactory) -> None:
    portal = open_portal()
    certificate_id = _certificate(portal)
    certificate = portal.certificates.get(certificate_id)
    pdf = portal.certificates.render_pdf(certificate_id)
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert f"Certificate {certificate.serial}".encode() in pdf  # the document's title
    assert b"Acme Academy" in pdf  # its author
    url = portal.certificates.verification_url(certificate_id)
    assert f"/URI ({url})".encode() in pdf  # the QR code and the printed link go there
    assert portal.certificates.render_pdf(certificate_id) == pdf  # deterministic


def test_issued_pdfs_do_not_change(open_portal: PortalFactory) -> None:
    portal = open_portal()
    certificate_id = _certificate(portal)
    pdf = portal.certificates.render_pdf(certificate_id)
    certificate = portal.certificates.get(certificate_id)
    portal.catalog.update_product(certificate.product_id, title="Crochet")
    portal.settings.update_site(title="Globex")
    assert portal.certificates.render_pdf(certificate_id) == pdf


def test_a_name_the_font_cannot_print_is_refused_clearly(open_portal: PortalFactory) -> None:
    portal = open_portal()
    certificate_id = _certificate(portal, first_name="Łucja", last_name="Wąsowska")
    with pytest.raises(ConfigurationError, match=r"no glyph for '.*ą.*recipient_name") as caught:
        portal.certificates.render_pdf(certificate_id)
    assert caught.value.field == "font"


def test_the_font_argument(open_portal: PortalFactory, tmp_path: Path) -> None:
    portal = open_portal()
    certificate_id = _certificate(portal)
    with pytest.raises(ConfigurationError, match="no font file") as caught:
        portal.certificates.render_pdf(certificate_id, font=tmp_path / "missing.ttf")
    assert caught.value.field == "font"
    (tmp_path / "bad.ttf").write_bytes(b"not a font")
    with pytest.raises(ConfigurationError, match="TrueType") as caught:
        portal.certificates.render_pdf(certificate_id, font=tmp_path / "bad.ttf")
    assert caught.value.field == "font"
    with pytest.raises(ValidationError) as invalid:
        portal.certificates.render_pdf(certificate_id, font=cast(Any, 12))
    assert invalid.value.field == "font"
    reportlab = importlib.import_module("reportlab")
    vera = Path(reportlab.__file__).parent / "fonts" / "VeraBd.ttf"
    assert portal.certificates.render_pdf(certificate_id, font=vera).startswith(b"%PDF-")
    with pytest.raises(NotFound):
        portal.certificates.render_pdf("cert_nope")


def test_without_the_extra_the_error_names_it(
    open_portal: PortalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    portal = open_portal()
    certificate_id = _certificate(portal)
    monkeypatch.setitem(sys.modules, "reportlab", None)  # as if it were not installed
    with pytest.raises(ConfigurationError, match=r"membership_core\[pdf\]"):
        portal.certificates.render_pdf(certificate_id)
    assert "<svg" in portal.certificates.render_html(certificate_id)  # HTML needs no PDF library
