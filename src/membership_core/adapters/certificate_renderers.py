"""The built-in certificate renderers: ``html`` and ``pdf``."""

from __future__ import annotations

import os

from .._optional import load
from ..ports.certificates import CertificateDocument
from .certificate_pdf import render_certificate_pdf

__all__ = ["HtmlCertificateRenderer", "PdfCertificateRenderer"]


class HtmlCertificateRenderer:
    """The page of the certificate's design, as UTF-8."""

    media_type = "text/html; charset=utf-8"

    def render(self, document: CertificateDocument) -> bytes:
        """``document.html``, encoded."""
        return document.html.encode()


class PdfCertificateRenderer:
    """An A4 landscape PDF in the default layout (ReportLab, ``membership_core[pdf]``).

    ``font`` is a TrueType file for names and titles in scripts the shipped
    Bitstream Vera lacks.
    """

    media_type = "application/pdf"

    def __init__(self, font: str | os.PathLike[str] | None = None) -> None:
        self._font = font

    def render(self, document: CertificateDocument) -> bytes:
        """The PDF of ``document``'s facts, with the QR code of its verification link."""
        segno = load("segno", "the certificate's QR code")
        matrix = segno.make(document.verification_url, error="m").matrix
        return render_certificate_pdf(document.values, matrix, font=self._font)
