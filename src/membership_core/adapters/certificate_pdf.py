"""Certificates as PDF, drawn with ReportLab (``membership_core[pdf]``).

Why ReportLab: it is the long-standing PDF toolkit of Python (BSD licensed,
maintained by ReportLab Inc. since 2000), and since 4.0 it installs as a
pure-Python wheel with Pillow as its only compiled dependency: no Cairo,
Pango or other system libraries, unlike HTML-to-PDF engines such as
WeasyPrint. It ships TrueType fonts (Bitstream Vera), which are embedded in
every PDF, so a certificate looks the same on every machine. Output is
deterministic (``invariant``): the same certificate gives the same bytes.

The page is drawn from the certificate's stored facts with a fixed A4
landscape layout that matches the default HTML template (ReportLab does not
render HTML, so a custom template shapes the HTML page, not the PDF). The
QR code is drawn as vector squares and, like the printed link, links to the
verification page.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._optional import load
from ..errors import ConfigurationError

__all__ = ["render_certificate_pdf"]

_GOLD = (0x8A / 255, 0x6D / 255, 0x3B / 255)
_PALE_GOLD = (0xC9 / 255, 0xB5 / 255, 0x8B / 255)
_INK = (0x1F / 255, 0x29 / 255, 0x33 / 255)
_GREY = (0x52 / 255, 0x60 / 255, 0x6D / 255)
_PAPER = (0xFF / 255, 0xFD / 255, 0xF8 / 255)
_MM = 72 / 25.4
#: The facts checked against the font: a glyph it lacks would print as a box.
_TEXT_FIELDS = ("recipient_name", "course_title", "course_description", "issuer_name")


def _fonts(reportlab: Any, font: str | os.PathLike[str] | None) -> dict[str, str]:
    """Register the fonts once per process; return the names for each style."""
    pdfmetrics = importlib.import_module("reportlab.pdfbase.pdfmetrics")
    ttfonts = importlib.import_module("reportlab.pdfbase.ttfonts")
    if font is None:
        folder = Path(reportlab.__file__).parent / "fonts"
        files = {
            "regular": folder / "Vera.ttf",
            "bold": folder / "VeraBd.ttf",
            "italic": folder / "VeraIt.ttf",
        }
    else:
        path = Path(font)
        if not path.is_file():
            raise ConfigurationError(f"no font file at {path}", field="font")
        files = {"regular": path, "bold": path, "italic": path}
    names = {}
    for style, file in files.items():
        # Named after the file, the same in every process: the name is written into the PDF.
        name = "mc-" + hashlib.sha256(str(file).encode()).hexdigest()[:12]
        if name not in pdfmetrics.getRegisteredFontNames():
            try:
                pdfmetrics.registerFont(ttfonts.TTFont(name, str(file)))
            except Exception as error:  # ReportLab raises its own TTFError and plain ones
                raise ConfigurationError(
                    f"{file} is not a TrueType font ReportLab can embed: {error}", field="font"
                ) from error
        names[style] = name
    return names


def _check_glyphs(pdfmetrics: Any, font: str, values: Mapping[str, Any]) -> None:
    face = pdfmetrics.getFont(font).face
    for field in _TEXT_FIELDS:
        missing = sorted({c for c in str(values[field]) if not c.isspace()} - _covered(face))
        if missing:
            raise ConfigurationError(
                f"the PDF font has no glyph for {''.join(missing)!r} in the certificate's "
                f"{field}; pass font= a TrueType font that covers it (DejaVu or Noto, say)",
                field="font",
            )


def _covered(face: Any) -> set[str]:
    return {chr(code) for code in face.charToGlyph}


def _fit(pdfmetrics: Any, text: str, font: str, size: float, width: float, least: float) -> float:
    """The largest font size up to ``size`` (down to ``least``) at which ``text`` fits ``width``."""
    while size > least and pdfmetrics.stringWidth(text, font, size) > width:
        size -= 0.5
    return size


def _chunks(text: str, pdfmetrics: Any, font: str, size: float, width: float) -> list[str]:
    """``text`` (a URL: no spaces to break at) cut into lines no wider than ``width``."""
    lines = [""]
    for character in text:
        if lines[-1] and pdfmetrics.stringWidth(lines[-1] + character, font, size) > width:
            lines.append("")
        lines[-1] += character
    return lines


def _lines(simple_split: Any, text: str, font: str, size: float, width: float) -> list[str]:
    return list(simple_split(text, font, size, width))


def render_certificate_pdf(
    values: Mapping[str, Any],
    qr_matrix: Sequence[Sequence[int]],
    *,
    font: str | os.PathLike[str] | None = None,
) -> bytes:
    """Draw one certificate: ``values`` are the template values of its facts.

    ``qr_matrix`` is the QR code of its verification link (rows of 0 and 1).
    ``font`` is a TrueType file to use instead of the shipped Bitstream Vera,
    for names and titles in scripts Vera lacks. Raises ``ConfigurationError``
    when ReportLab is missing (naming the extra) or the font lacks a glyph.
    """
    reportlab = load("reportlab", "PDF certificates")
    canvas_module = importlib.import_module("reportlab.pdfgen.canvas")
    pagesizes = importlib.import_module("reportlab.lib.pagesizes")
    utils = importlib.import_module("reportlab.lib.utils")
    pdfmetrics = importlib.import_module("reportlab.pdfbase.pdfmetrics")
    fonts = _fonts(reportlab, font)
    _check_glyphs(pdfmetrics, fonts["regular"], values)

    width, height = pagesizes.landscape(pagesizes.A4)
    buffer = io.BytesIO()
    pdf = canvas_module.Canvas(buffer, pagesize=(width, height), invariant=True, pageCompression=1)
    pdf.setTitle(f"Certificate {values['serial']}: {values['course_title']}")
    pdf.setAuthor(str(values["issuer_name"]))
    pdf.setSubject(f"{values['recipient_name']} completed {values['course_title']}")
    pdf.setCreator("membership_core")

    # paper and frame
    pdf.setFillColorRGB(*_PAPER)
    pdf.rect(0, 0, width, height, stroke=0, fill=1)
    margin = 10 * _MM
    pdf.setStrokeColorRGB(*_GOLD)
    pdf.setLineWidth(1.2 * _MM)
    pdf.rect(margin, margin, width - 2 * margin, height - 2 * margin, stroke=1, fill=0)
    inset = margin + 3 * _MM
    pdf.setStrokeColorRGB(*_PALE_GOLD)
    pdf.setLineWidth(0.4 * _MM)
    pdf.rect(inset, inset, width - 2 * inset, height - 2 * inset, stroke=1, fill=0)

    centre = width / 2
    text_width = width - 2 * inset - 40 * _MM

    def centred(text: str, y: float, style: str, size: float, colour: tuple[float, ...]) -> None:
        pdf.setFillColorRGB(*colour)
        pdf.setFont(fonts[style], size)
        pdf.drawCentredString(centre, y, text)

    issuer = " ".join(str(values["issuer_name"]).upper())  # letter-spaced, as on the page
    centred(
        issuer,
        height - 40 * _MM,
        "regular",
        _fit(pdfmetrics, issuer, fonts["regular"], 11, text_width, 6),
        _GOLD,
    )
    centred("Certificate of Completion", height - 60 * _MM, "regular", 34, _INK)
    pdf.setStrokeColorRGB(*_PALE_GOLD)
    pdf.setLineWidth(0.4 * _MM)
    pdf.line(centre - 30 * _MM, height - 66 * _MM, centre + 30 * _MM, height - 66 * _MM)
    centred("This certifies that", height - 78 * _MM, "italic", 12.5, _GREY)
    name = str(values["recipient_name"])
    name_size = _fit(pdfmetrics, name, fonts["regular"], 30, text_width, 12)
    centred(name, height - 94 * _MM, "regular", name_size, _INK)
    pdf.line(centre - 55 * _MM, height - 98 * _MM, centre + 55 * _MM, height - 98 * _MM)
    centred("has successfully completed the course", height - 109 * _MM, "italic", 12.5, _GREY)
    title = str(values["course_title"])
    title_size = _fit(pdfmetrics, title, fonts["regular"], 20, text_width, 11)
    y = height - 122 * _MM
    for line in _lines(utils.simpleSplit, title, fonts["regular"], title_size, text_width)[:2]:
        centred(line, y, "regular", title_size, _INK)
        y -= title_size * 1.25
    description = str(values["course_description"])
    if description:
        lines = _lines(utils.simpleSplit, description, fonts["regular"], 10, text_width * 0.85)
        for line in lines[:2]:
            centred(line, y - 2 * _MM, "regular", 10, _GREY)
            y -= 13

    # the facts along the bottom
    left, bottom = inset + 14 * _MM, inset + 12 * _MM

    def fact(x: float, y: float, label: str, value: str) -> None:
        pdf.setFillColorRGB(*_GOLD)
        pdf.setFont(fonts["regular"], 7)
        pdf.drawString(x, y + 14, label.upper())
        pdf.setFillColorRGB(*_INK)
        pdf.setFont(fonts["regular"], 12)
        pdf.drawString(x, y, value)

    fact(left, bottom + 16 * _MM, "Completed on", str(values["completed_on_long"]))
    fact(left, bottom, "Serial number", str(values["serial"]))

    pdf.setStrokeColorRGB(*_GREY)
    pdf.setLineWidth(0.3 * _MM)
    pdf.line(centre - 25 * _MM, bottom + 11 * _MM, centre + 25 * _MM, bottom + 11 * _MM)
    signer = str(values["issuer_name"])
    centred(
        signer,
        bottom + 5 * _MM,
        "regular",
        _fit(pdfmetrics, signer, fonts["regular"], 12, 50 * _MM, 7),
        _INK,
    )
    centred(f"ISSUED ON {str(values['issued_on_long']).upper()}", bottom, "regular", 7, _GOLD)

    # the QR code and the link it carries
    size = 27 * _MM
    qr_x, qr_y = width - inset - 14 * _MM - size, bottom - 2 * _MM
    modules = len(qr_matrix)
    cell = size / modules
    pdf.setFillColorRGB(*_INK)
    for row, cells in enumerate(qr_matrix):
        for column, dark in enumerate(cells):
            if dark:
                pdf.rect(
                    qr_x + column * cell,
                    qr_y + size - (row + 1) * cell,
                    cell,
                    cell,
                    stroke=0,
                    fill=1,
                )
    url = str(values["verification_url"])
    pdf.linkURL(url, (qr_x, qr_y, qr_x + size, qr_y + size), relative=0)
    right = qr_x - 4 * _MM
    pdf.setFillColorRGB(*_GOLD)
    pdf.setFont(fonts["regular"], 7)
    pdf.drawRightString(right, bottom + 16 * _MM, "VERIFY THIS CERTIFICATE")
    pdf.setFillColorRGB(*_INK)
    pdf.setFont("Courier", 7)
    pdf.drawRightString(right, bottom + 12 * _MM, str(values["verification_code"]))
    pdf.setFillColorRGB(*_GREY)
    pdf.setFont(fonts["regular"], 7)
    url_lines = _chunks(url, pdfmetrics, fonts["regular"], 7, 55 * _MM)
    y = bottom + 8 * _MM
    for line in url_lines[:3]:
        pdf.drawRightString(right, y, line)
        y -= 9
    pdf.linkURL(url, (right - 55 * _MM, y, right, bottom + 11 * _MM), relative=0)

    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
