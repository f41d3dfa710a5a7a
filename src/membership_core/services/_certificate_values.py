"""What certificate templates show: the ``certificate`` value, its QR code, sample facts.

Plain data formatted from a certificate's facts; the only markup is the QR
code's SVG, drawn by segno from the verification URL.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from .._optional import load
from ..domain.certificates import Certificate

__all__ = [
    "CERTIFICATE_VARIABLES",
    "certificate_values",
    "default_certificate_template",
    "sample_values",
    "verification_url",
]

#: What a certificate template may use: ``certificate``, a dict with these keys.
CERTIFICATE_VARIABLES: tuple[str, ...] = (
    "serial",
    "recipient_name",
    "course_title",
    "course_description",
    "issuer_name",
    "completed_on",
    "completed_on_long",
    "issued_on",
    "issued_on_long",
    "verification_code",
    "verification_url",
    "qr_svg",
    "qr_data_uri",
)

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


@functools.cache
def default_certificate_template() -> str:
    """The source of the shipped certificate template (``templates/certificate/default.html``)."""
    return (
        resources.files("membership_core")
        .joinpath("templates/certificate/default.html")
        .read_text(encoding="utf-8")
    )


def verification_url(base_url: str, code: str) -> str:
    """The public page that verifies ``code``, under the portal's ``base_url``.

    >>> verification_url("https://learn.acme.com", "MC-AAAA")
    'https://learn.acme.com/certificates/verify?code=MC-AAAA'
    """
    return f"{base_url}/certificates/verify?code={code}"


def _long_date(moment: datetime) -> str:
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


class _Svg(str):
    """SVG the library drew itself: plain data (a ``str``) that autoescaping leaves as it is.

    Jinja inserts a value with ``__html__`` unescaped. Only :func:`_qr` makes
    one, from segno's output: paths computed from the URL and a fixed title,
    with no text of anyone's in it.
    """

    __slots__ = ()

    def __html__(self) -> str:
        return str(self)


def _qr(url: str) -> tuple[_Svg, str]:
    """The QR code of ``url``: inline SVG markup and a ``data:`` URI of the same SVG."""
    segno = load("segno", "the certificate's QR code")
    code = segno.make(url, error="m")
    options: dict[str, Any] = {"scale": 4, "border": 2, "dark": "#1f2933", "omitsize": True}
    svg = code.svg_inline(title="Scan to verify this certificate", **options)
    return _Svg(svg), str(code.svg_data_uri(**options))


def certificate_values(certificate: Certificate, code: str, url: str) -> dict[str, Any]:
    """The ``certificate`` value of certificate templates: the facts, formatted (plain data)."""
    svg, data_uri = _qr(url)
    return {
        "serial": certificate.serial,
        "recipient_name": certificate.recipient_name,
        "course_title": certificate.course_title,
        "course_description": certificate.course_description,
        "issuer_name": certificate.issuer_name,
        "completed_on": certificate.completed_at.date().isoformat(),
        "completed_on_long": _long_date(certificate.completed_at),
        "issued_on": certificate.issued_at.date().isoformat(),
        "issued_on_long": _long_date(certificate.issued_at),
        "verification_code": code,
        "verification_url": url,
        "qr_svg": svg,
        "qr_data_uri": data_uri,
    }


def sample_values(base: str) -> dict[str, Any]:
    """Made-up facts for checking and previewing a template."""
    when = datetime(2026, 3, 14, 15, 9, tzinfo=UTC)
    sample = Certificate(
        "cert_sample",
        "mem_sample",
        "prod_sample",
        "MC-SAMP-LE23-4567",
        "Ada Lovelace",
        "Sample course",
        "Sample Academy",
        when,
        when,
        None,
        None,
        course_description="What the course is about, in a sentence or two.",
    )
    code = "MC-SAMP-LE23-4567-ABCD-EFGH-JKLM-NPQR"
    return {"certificate": certificate_values(sample, code, verification_url(base, code))}
