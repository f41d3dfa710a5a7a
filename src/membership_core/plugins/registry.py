"""The adapter registry plugins fill through ``membership_register_adapters``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError
from ..ports.certificates import CertificateRenderer
from ..ports.mail import Mailer
from ..ports.media import MediaStore
from ..ports.payments import PaymentGateway
from ..ports.storage import Storage

__all__ = ["AdapterRegistry"]

StorageFactory = Callable[[str], Storage]
MailerFactory = Callable[[str], Mailer]
MediaStoreFactory = Callable[[str], MediaStore]
GatewayFactory = Callable[[], PaymentGateway]


class AdapterRegistry:
    """Adapters offered by plugins, by URL scheme (storage, mail, media) or name (gateways,
    certificate formats)."""

    def __init__(self) -> None:
        self._storage: dict[str, StorageFactory] = {}
        self._mailers: dict[str, MailerFactory] = {}
        self._media_stores: dict[str, MediaStoreFactory] = {}
        self._gateways: dict[str, GatewayFactory] = {}
        self._renderers: dict[str, CertificateRenderer] = {}

    @staticmethod
    def _check_key(kind: str, table: dict[str, Any], key: str) -> None:
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"{kind} name must be a non-empty string", field="name")
        if key in table:  # silently replacing an adapter would hide a plugin clash
            raise ConfigurationError(
                f"{kind} {key!r} is already registered by another plugin", field="name"
            )

    @classmethod
    def _add(cls, kind: str, table: dict[str, Any], key: str, factory: Any) -> None:
        cls._check_key(kind, table, key)
        if not callable(factory):
            raise ConfigurationError(f"{kind} {key!r}: factory is not callable", field="factory")
        table[key] = factory

    def add_storage(self, scheme: str, factory: StorageFactory) -> None:
        """Offer storage for URLs starting ``scheme://``; ``factory(url)`` builds it."""
        self._add("storage scheme", self._storage, scheme, factory)

    def add_mailer(self, scheme: str, factory: MailerFactory) -> None:
        """Offer a mailer for URLs starting ``scheme://``; ``factory(url)`` builds it."""
        self._add("mailer scheme", self._mailers, scheme, factory)

    def add_media_store(self, scheme: str, factory: MediaStoreFactory) -> None:
        """Offer a media store (logos, icons) for URLs ``scheme://``; ``factory(url)`` builds it."""
        self._add("media store scheme", self._media_stores, scheme, factory)

    def add_gateway(self, name: str, factory: GatewayFactory) -> None:
        """Offer a payment gateway called ``name``; ``factory()`` builds it."""
        self._add("gateway", self._gateways, name, factory)

    def add_certificate_renderer(self, format: str, renderer: CertificateRenderer) -> None:
        """Offer certificates in ``format`` (``"pdf"``, ``"png"``, ...) through ``renderer``."""
        if not isinstance(renderer, CertificateRenderer):
            raise ConfigurationError(
                f"certificate format {format!r}: the renderer needs media_type and render()",
                field="renderer",
            )
        self._check_key("certificate format", self._renderers, format)
        self._renderers[format] = renderer

    def certificate_renderer(self, format: str) -> CertificateRenderer:
        """The renderer of ``format``; ``ConfigurationError`` naming the known ones otherwise."""
        if format not in self._renderers:
            known = ", ".join(sorted(self._renderers))
            raise ConfigurationError(
                f"no certificate renderer for {format!r} (known: {known})", field="format"
            )
        return self._renderers[format]

    @property
    def certificate_formats(self) -> tuple[str, ...]:
        """Every format a certificate can be rendered to."""
        return tuple(sorted(self._renderers))

    @staticmethod
    def _scheme(url: str, field: str) -> str:
        if not isinstance(url, str) or "://" not in url:
            raise ConfigurationError(f"{url!r} is not a URL (scheme://...)", field=field)
        return url.split("://", 1)[0].split("+", 1)[0].lower()

    def storage(self, url: str) -> Storage:
        """Build the storage for ``url``."""
        scheme = self._scheme(url, "url")
        if scheme not in self._storage:
            known = ", ".join(sorted(self._storage))
            raise ConfigurationError(
                f"no storage for scheme {scheme!r} (known: {known})", field="url"
            )
        return self._storage[scheme](url)

    def mailer(self, url: str) -> Mailer:
        """Build the mailer for ``url``."""
        scheme = self._scheme(url, "mailer")
        if scheme not in self._mailers:
            known = ", ".join(sorted(self._mailers))
            raise ConfigurationError(
                f"no mailer for scheme {scheme!r} (known: {known})", field="mailer"
            )
        return self._mailers[scheme](url)

    def media_store(self, url: str) -> MediaStore:
        """Build the media store for ``url``."""
        scheme = self._scheme(url, "media")
        if scheme not in self._media_stores:
            known = ", ".join(sorted(self._media_stores))
            raise ConfigurationError(
                f"no media store for scheme {scheme!r} (known: {known})", field="media"
            )
        return self._media_stores[scheme](url)

    def gateway(self, name: str) -> PaymentGateway:
        """Build the gateway called ``name``."""
        if name not in self._gateways:
            known = ", ".join(sorted(self._gateways))
            raise ConfigurationError(
                f"no payment gateway {name!r} (known: {known})", field="gateway"
            )
        return self._gateways[name]()

    @property
    def gateway_names(self) -> tuple[str, ...]:
        """Names of every registered gateway."""
        return tuple(sorted(self._gateways))
