"""What every service shares: the portal's tenant, ports, plugins, and event recording."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ..adapters.dns_stdlib import StdlibResolver
from ..adapters.media_memory import MemoryMediaStore
from ..domain.events import DomainEvent, EventRecord
from ..domain.settings import PortalSettings
from ..errors import NotFound
from ..ports.clock import Clock
from ..ports.dns import DnsResolver
from ..ports.ids import Ids
from ..ports.mail import Mailer
from ..ports.media import MediaStore
from ..ports.payments import PaymentGateway
from ..ports.storage import Repository, Storage, UnitOfWork
from ..serialization import unstructure
from ._settings_cache import SettingsCache
from ._structure import StructureCache

if TYPE_CHECKING:
    from ..plugins.manager import Plugins
    from ..portal import Portal

E = TypeVar("E", bound=DomainEvent)
T = TypeVar("T")


@attrs.define
class Context:
    """The wiring of one portal, shared by its services."""

    tenant: str
    storage: Storage
    clock: Clock
    ids: Ids
    plugins: Plugins
    mailer: Mailer
    gateways: dict[str, PaymentGateway]
    after_commit: Callable[[], None] = lambda: None
    portal: Portal | None = None
    #: Whether anything (a built-in handler, a rule, a plugin observer) listens to an event;
    #: set by the portal. Events nobody listens to are recorded already dispatched.
    listened: Callable[[UnitOfWork, DomainEvent], bool] = lambda _uow, _event: True
    #: Course structures read recently, shared by the portal's services.
    structures: StructureCache = attrs.field(factory=StructureCache)
    #: Where portals live: a portal's URL is this with its sub-domain in front
    #: of the host, unless it has a verified custom domain.
    platform_url: str = "https://members.example.com"
    #: Where uploaded images are kept.
    media: MediaStore = attrs.field(factory=MemoryMediaStore)
    #: Looks up the DNS records of custom domains.
    resolver: DnsResolver = attrs.field(factory=StdlibResolver)
    settings_cache: SettingsCache = attrs.field(factory=SettingsCache)
    _local: threading.local = attrs.field(factory=threading.local)

    def mark_recorded(self) -> None:
        """Note that this thread recorded an event that needs dispatching."""
        self._local.recorded = True

    def take_recorded(self) -> bool:
        """Whether this thread recorded such an event since it last asked."""
        recorded = getattr(self._local, "recorded", False)
        self._local.recorded = False
        return bool(recorded)

    def uow(self, *, write: bool = True) -> UnitOfWork:
        """Open a unit of work in this portal."""
        return self.storage.unit_of_work(self.tenant, write=write)

    def now(self) -> datetime:
        """The current instant from the clock port."""
        return self.clock.now()

    def settings(self, uow: UnitOfWork) -> PortalSettings:
        """The portal's settings as committed (cached; one small query to check)."""
        return self.settings_cache.read(uow)

    def base_url(self, uow: UnitOfWork) -> str:
        """The URL members use: the verified custom domain, else the sub-domain."""
        return self.settings(uow).domain.base_url(self.platform_url)


class Service:
    """Base of the area services: helpers for time, ids, lookups and events."""

    def __init__(self, context: Context) -> None:
        self._ctx = context

    def _record(self, uow: UnitOfWork, event_type: type[E], **fields: Any) -> E:
        """Build an event and write it to the outbox in ``uow``'s transaction."""
        event = event_type(id=self._ctx.ids.new("evt"), occurred_at=self._ctx.now(), **fields)
        payload = unstructure(event)
        # Kept in the outbox either way (a record of what happened); only events
        # someone listens to wait for dispatch.
        listened = self._ctx.listened(uow, event)
        dispatched_at = None if listened else event.occurred_at
        uow.events.add(EventRecord(event.id, event.type, payload, event.occurred_at, dispatched_at))
        if listened:
            self._ctx.mark_recorded()
        return event

    @staticmethod
    def _require(repository: Repository[T], kind: str, id: str, field: str) -> T:
        item = repository.get(id)
        if item is None:
            raise NotFound(kind, id, field=field)
        return item

    @staticmethod
    def _require_for_update(repository: Repository[T], kind: str, id: str, field: str) -> T:
        item = repository.get_for_update(id)
        if item is None:
            raise NotFound(kind, id, field=field)
        return item

    def _settings(self, uow: UnitOfWork) -> PortalSettings:
        """The portal's settings, or the defaults until an admin saves them."""
        return self._ctx.settings(uow)

    def _base_url(self, uow: UnitOfWork) -> str:
        """The URL members use (see :meth:`Context.base_url`), without a trailing ``/``."""
        return self._ctx.base_url(uow)

    def _committed(self) -> None:
        """Call after a commit that may have recorded events: dispatch them now."""
        self._ctx.after_commit()
