"""The library's own adapters, registered through the same hook as any plugin."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from ..adapters.certificate_renderers import HtmlCertificateRenderer, PdfCertificateRenderer
from ..adapters.mail_memory import MemoryMailer
from ..adapters.mail_outbox import OutboxFolderMailer
from ..adapters.mail_smtp import SmtpMailer
from ..adapters.media_folder import FolderMediaStore
from ..adapters.media_memory import MemoryMediaStore
from ..adapters.memory_storage import MemoryStorage
from ..adapters.payments_manual import ManualGateway
from ..errors import ConfigurationError
from ..ports.mail import Mailer
from ..ports.media import MediaStore
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


def _media_base_url(url: str) -> str | None:
    """The ``?url=`` of a media store URL (the public address of its files), if any."""
    query = urlsplit(url).query
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigurationError(f"media store URL {url!r}: bad query", field="media") from None
    names = [name for name, _ in pairs]
    unknown = sorted(set(names) - {"url"})
    if unknown:
        raise ConfigurationError(
            f"media store URL {url!r}: unknown option {unknown[0]!r} (known: url)", field="media"
        )
    if names.count("url") > 1:
        raise ConfigurationError(f"media store URL {url!r}: url given twice", field="media")
    base_url = dict(pairs).get("url")
    if base_url is not None and not base_url.strip():
        raise ConfigurationError(f"media store URL {url!r}: url is empty", field="media")
    return base_url


def _folder_media(url: str) -> MediaStore:
    # folder:///abs/path or folder://./relative/path, optionally ?url=https://cdn.example/media
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise ConfigurationError("folder media store URL needs a folder path", field="media")
    return FolderMediaStore(Path(path), base_url=_media_base_url(url))


def _memory_media(url: str) -> MediaStore:
    base_url = _media_base_url(url)
    return MemoryMediaStore() if base_url is None else MemoryMediaStore(base_url)


@hookimpl
def membership_register_adapters(registry: AdapterRegistry) -> None:
    """Register memory/SQLite/PostgreSQL storage, outbox/SMTP/memory mail, folder/memory
    media stores, manual payments, and the html and pdf certificate renderers."""
    registry.add_storage("memory", _memory_storage)
    registry.add_storage("sqlite", _sql_storage)
    registry.add_storage("postgresql", _sql_storage)
    registry.add_mailer("outbox", _outbox_mailer)
    registry.add_mailer("memory", _memory_mailer)
    registry.add_mailer("smtp", SmtpMailer.from_url)
    registry.add_mailer("smtps", SmtpMailer.from_url)
    registry.add_media_store("folder", _folder_media)
    registry.add_media_store("memory", _memory_media)
    registry.add_gateway("manual", ManualGateway)
    registry.add_certificate_renderer("html", HtmlCertificateRenderer())
    registry.add_certificate_renderer("pdf", PdfCertificateRenderer())
