"""The library's own adapters, registered through the same hook as any plugin."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..adapters.certificate_renderers import HtmlCertificateRenderer, PdfCertificateRenderer
from ..adapters.mail_memory import MemoryMailer
from ..adapters.mail_outbox import OutboxFolderMailer
from ..adapters.mail_smtp import SmtpMailer
from ..adapters.memory_storage import MemoryStorage
from ..adapters.payments_manual import ManualGateway
from ..errors import ConfigurationError
from ..ports.mail import Mailer
from ..ports.storage import Storage
from .hookspecs import hookimpl
from .registry import AdapterRegistry


def _memory_storage(url: str) -> Storage:
    return MemoryStorage()


def _sql_storage(url: str) -> Storage:
    from ..adapters.sql import SqlStorage

    return SqlStorage(url)


def _outbox_mailer(url: str) -> Mailer:
    # outbox:///abs/path or outbox://./relative/path
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise ConfigurationError("outbox mailer URL needs a folder path", field="mailer")
    return OutboxFolderMailer(Path(path))


def _memory_mailer(url: str) -> Mailer:
    return MemoryMailer()


@hookimpl
def membership_register_adapters(registry: AdapterRegistry) -> None:
    """Register memory/SQLite/PostgreSQL storage, outbox/SMTP/memory mail, manual payments,
    and the html and pdf certificate renderers."""
    registry.add_storage("memory", _memory_storage)
    registry.add_storage("sqlite", _sql_storage)
    registry.add_storage("postgresql", _sql_storage)
    registry.add_mailer("outbox", _outbox_mailer)
    registry.add_mailer("memory", _memory_mailer)
    registry.add_mailer("smtp", SmtpMailer.from_url)
    registry.add_mailer("smtps", SmtpMailer.from_url)
    registry.add_gateway("manual", ManualGateway)
    registry.add_certificate_renderer("html", HtmlCertificateRenderer())
    registry.add_certificate_renderer("pdf", PdfCertificateRenderer())
