"""The certificate renderer port: turn an issued certificate into a file of one format.

The library ships ``html`` (the page of the product's template) and ``pdf``
(ReportLab, the ``pdf`` extra). A plugin adds a format by registering a
renderer in ``membership_register_adapters``::

    @hookimpl
    def membership_register_adapters(registry):
        registry.add_certificate_renderer("png", MyPngRenderer())

and hosts call ``portal.certificates.render(certificate_id, "png")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from ..domain.certificates import Certificate

__all__ = ["CertificateDocument", "CertificateRenderer"]


@attrs.frozen
class CertificateDocument:
    """Everything a renderer may use, all from the certificate's stored facts.

    ``values`` are the formatted facts certificate templates get (serial,
    recipient_name, course_title, completed_on_long, verification_code,
    verification_url, qr_svg, ...: plain data); ``html`` is the page
    rendered from the design the certificate was issued with.
    """

    certificate: Certificate
    verification_code: str
    verification_url: str
    values: Mapping[str, Any]
    html: str


@runtime_checkable
class CertificateRenderer(Protocol):
    """Renders certificates to one format."""

    @property
    def media_type(self) -> str:
        """The MIME type of what :meth:`render` returns, e.g. ``"application/pdf"``."""
        ...

    def render(self, document: CertificateDocument) -> bytes:
        """The file of ``document``; raise ``ConfigurationError`` if something is missing."""
        ...
