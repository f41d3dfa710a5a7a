"""The composition root: ``Portal.open(url, ...)`` wires adapters and services."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import attrs
from sqlalchemy.engine import make_url

from . import _validate as v
from .adapters.clock import SystemClock
from .adapters.dns_stdlib import StdlibResolver
from .adapters.ids import RandomIds
from .adapters.media_folder import FolderMediaStore
from .adapters.passwords_argon2 import Argon2Hasher
from .adapters.throttle_storage import StorageThrottle
from .domain.billing import DunningPolicy
from .domain.credentials import AccountPolicy
from .errors import ConfigurationError, ValidationError
from .plugins.manager import Plugins
from .plugins.registry import AdapterRegistry
from .ports.clock import Clock
from .ports.dns import DnsResolver
from .ports.ids import Ids
from .ports.mail import Mailer
from .ports.media import MediaStore
from .ports.passwords import PasswordHasher
from .ports.payments import GatewayCapabilities, PaymentGateway
from .ports.storage import Storage
from .ports.throttle import AttemptThrottle
from .services._context import Context
from .services.access import DEFAULT_EXPIRY_REMINDER, AccessService
from .services.accounts import AccountsService
from .services.assessments import AssessmentsService
from .services.automations import AutomationRunner, AutomationsService
from .services.billing import BillingService
from .services.catalog import CatalogService
from .services.certificates import CertificatesService
from .services.checkout import CheckoutService
from .services.drip import DripService
from .services.email_templates import EmailTemplatesService
from .services.events import EventDispatcher
from .services.mail import MailService
from .services.members import MembersService
from .services.offers import OffersService
from .services.payments import PaymentsService
from .services.progress import ProgressService
from .services.settings import SettingsService

__all__ = ["Portal", "TickReport"]

_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@attrs.frozen
class TickReport:
    """What one :meth:`Portal.tick` did."""

    events_dispatched: int
    mail_sent: int
    mail_failed: int
    #: Renewals and installments collected, refused (dunning retries them), and
    #: left waiting for the buyer or a webhook.
    charges_succeeded: int = 0
    charges_failed: int = 0
    charges_pending: int = 0
    #: Stored webhook events applied late (their first application failed).
    webhooks_applied: int = 0
    #: Paid-but-not-entitled grants repaired by reconciliation.
    access_repaired: int = 0
    #: Members whose dripped lessons opened (one ``LessonsUnlocked`` each).
    lessons_unlocked: int = 0
    #: ``AccessExpiring`` reminders and ``AccessExpired`` events recorded.
    access_notices: int = 0
    #: Password reset and sign-in emails queued for the requests waiting.
    account_emails: int = 0


# What a gateway must have, whatever it declares: the library calls these for
# every paid order (``name`` goes into messages, ``capabilities`` is read first).
_GATEWAY_METHODS: tuple[str, ...] = ("create_payment",)
# The methods a capability makes the library call (see GatewayCapabilities):
# a gateway without the capability never sees them, so it need not have them.
_CAPABILITY_METHODS: dict[str, tuple[str, ...]] = {
    "off_session": ("charge_saved_method", "cancel"),
    "refunds": ("refund",),
    "webhooks": ("parse_webhook",),
    "subscriptions_managed_by_gateway": ("cancel",),
}


def _has_method(value: object, name: str) -> bool:
    return callable(getattr(value, name, None))


def _check_object(field: str, value: object, method: str, port: str) -> None:
    """Raise unless ``value`` has a callable ``method``, as ``port`` (its name) needs.

    Checked by attribute rather than ``isinstance`` so a duck-typed adapter
    (the protocols are not runtime-checkable on purpose) is welcome, and a
    wrong object fails here, naming the argument, instead of far away later.
    """
    if not _has_method(value, method):
        raise ValidationError(
            field, f"must be {port} (an object with a {method}() method), not {value!r}"
        )


def _sequence(field: str, value: object, *, what: str) -> Sequence[object]:
    """Return ``value`` if it is a list or tuple (not a string); ``what`` says of what."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValidationError(
            field, f"must be a list or tuple of {what}, not {type(value).__name__}"
        )
    return value


def _check_plugins(plugins: object) -> None:
    for index, plugin in enumerate(_sequence("plugins", plugins, what="plugin objects")):
        # pluggy takes any object (and silently registers a hook-less one), so
        # catch the likely slips: nothing, a name instead of the plugin, a number.
        if plugin is None or isinstance(plugin, str | bytes | int | float | complex):
            raise ValidationError(
                "plugins",
                f"item {index} must be a plugin (a module, class or object with "
                f"hook implementations), not {plugin!r}",
            )


def _check_blocked(blocked: object) -> None:
    for index, name in enumerate(_sequence("blocked_plugins", blocked, what="entry-point names")):
        if not isinstance(name, str) or not name.strip():
            raise ValidationError(
                "blocked_plugins", f"item {index} must be a non-empty name, not {name!r}"
            )


def _check_gateway(name: object, gateway: object) -> None:
    """Raise unless ``gateway`` looks like the PaymentGateway port for what it declares."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("gateways", f"names must be non-empty strings, not {name!r}")
    label = getattr(gateway, "name", None)
    if not isinstance(label, str) or not label.strip():
        raise ValidationError(
            "gateways",
            f"{name!r} must be a payment gateway with a non-empty name, not {gateway!r}",
        )
    capabilities = getattr(gateway, "capabilities", None)
    if not isinstance(capabilities, GatewayCapabilities):
        raise ValidationError(
            "gateways", f"{name!r}: capabilities must be GatewayCapabilities, not {capabilities!r}"
        )
    needed = list(_GATEWAY_METHODS)
    for capability, methods in _CAPABILITY_METHODS.items():
        if getattr(capabilities, capability):
            needed.extend(m for m in methods if m not in needed)
    missing = [method for method in needed if not _has_method(gateway, method)]
    if missing:
        raise ValidationError(
            "gateways",
            f"{name!r} lacks {', '.join(m + '()' for m in missing)}, which its "
            "capabilities say the library may call",
        )


def _check_gateways(gateways: object) -> None:
    if gateways is None:
        return
    if not isinstance(gateways, Mapping):
        raise ValidationError(
            "gateways", f"must be a mapping of name to gateway, not {type(gateways).__name__}"
        )
    for name, gateway in gateways.items():
        _check_gateway(name, gateway)


def _default_hasher() -> PasswordHasher | None:
    """argon2id when the security extra is installed; otherwise passwords are unavailable."""
    try:
        return Argon2Hasher()
    except ConfigurationError:  # pragma: no cover - the extra is installed in CI
        return None


def _storage_kind(storage: Storage) -> str:
    """The URL of a storage object's database (``memory://`` when it has none)."""
    engine = getattr(storage, "engine", None)
    url = getattr(engine, "url", None)
    return "memory://" if url is None else url.render_as_string(hide_password=True)


def _default_media(url: str, adapters: AdapterRegistry) -> MediaStore:
    """Where uploaded images go unless the host says: a folder, beside an SQLite file
    (``academy.db`` -> ``academy-media/``) or ``./membership-media`` for another
    database, made when the first image is stored; memory for throwaway storage."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            folder = Path(database).resolve()
            return FolderMediaStore(folder.with_name(folder.stem + "-media"), create=False)
        return adapters.media_store("memory://")
    if url.startswith("memory"):
        return adapters.media_store("memory://")
    return FolderMediaStore(Path("membership-media").resolve(), create=False)


def _platform_url(value: object) -> str:
    url = v.text("platform_url", value, max_length=500).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("platform_url", "must be an absolute http(s) URL with a host")
    if parts.query or parts.fragment:
        raise ValidationError("platform_url", "must have no query or fragment")
    return url


def _default_mailer_url(url: str) -> str:
    """Emails land next to an SQLite file by default; elsewhere in memory."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            path = Path(database)
            return f"outbox://{path.with_name(path.stem + '-outbox').resolve()}"
    return "memory://"


class Portal:
    """One membership portal (tenant): the library's public entry point.

    Open it with :meth:`open`; use its services (``portal.catalog``,
    ``portal.offers``, ``portal.checkout``, ``portal.access``,
    ``portal.progress``, ``portal.members``, ``portal.certificates``,
    ``portal.mail``, ``portal.settings``, ``portal.templates``,
    ``portal.automations``) and call :meth:`tick` from a scheduler.

    >>> portal = Portal.open("memory://")
    >>> portal.tenant
    'default'
    """

    def __init__(
        self,
        context: Context,
        *,
        owns_storage: bool,
        default_gateway: str,
        dunning: DunningPolicy | None = None,
        expiry_reminder: timedelta | None = DEFAULT_EXPIRY_REMINDER,
        passwords: PasswordHasher | None = None,
        accounts: AccountPolicy | None = None,
        throttle: AttemptThrottle | None = None,
        keep_access_on_refund: bool = False,
        keep_access_on_dispute: bool = False,
    ) -> None:
        self._context = context
        self._owns_storage = owns_storage
        context.portal = self
        self.members = MembersService(context)
        self.catalog = CatalogService(context)
        self.offers = OffersService(context)
        self.checkout = CheckoutService(context, self.members, default_gateway)
        self.billing = BillingService(context, dunning)
        self.payments = PaymentsService(
            context,
            self.checkout,
            self.billing,
            keep_access_on_refund=keep_access_on_refund,
            keep_access_on_dispute=keep_access_on_dispute,
        )
        self.drip = DripService(context)
        self.access = AccessService(context, self.drip, expiry_reminder)
        self.progress = ProgressService(context, self.access)
        self.assessments = AssessmentsService(context, self.access, self.progress)
        self.certificates = CertificatesService(context)
        policy = accounts or AccountPolicy()
        self.mail = MailService(context, policy)
        self.accounts = AccountsService(
            context,
            self.mail,
            passwords,
            throttle or StorageThrottle(context.storage, context.tenant, policy.throttle),
            policy,
        )
        self.settings = SettingsService(context)
        self.templates = EmailTemplatesService(context)
        self.automations = AutomationsService(context)
        runner = AutomationRunner(context, self.certificates, self.mail, self.access)
        self._events = EventDispatcher(context, self.mail, sources=[runner])
        context.after_commit = self._after_commit
        context.listened = self._events.listens_to
        self.automations._seed_defaults()
        self.certificates._seed()

    @classmethod
    def open(
        cls,
        url: str | Storage = "sqlite:///membership.db",
        *,
        tenant: str = "default",
        plugins: Sequence[object] = (),
        clock: Clock | None = None,
        ids: Ids | None = None,
        mailer: str | Mailer | None = None,
        gateways: Mapping[str, PaymentGateway] | None = None,
        default_gateway: str = "manual",
        load_entrypoints: bool = True,
        blocked_plugins: Sequence[str] = (),
        dunning: DunningPolicy | None = None,
        expiry_reminder: timedelta | None = DEFAULT_EXPIRY_REMINDER,
        passwords: PasswordHasher | None = None,
        accounts: AccountPolicy | None = None,
        throttle: AttemptThrottle | None = None,
        keep_access_on_refund: bool = False,
        keep_access_on_dispute: bool = False,
        platform_url: str = "https://members.example.com",
        media: str | MediaStore | None = None,
        resolver: DnsResolver | None = None,
    ) -> Portal:
        """Open the portal ``tenant`` in the database at ``url``.

        ``url`` is ``memory://``, ``sqlite:///path/to/file.db`` (the embedded
        default) or ``postgresql://user:pass@host/db``, or a ready
        :class:`~membership_core.ports.storage.Storage` object shared between
        portals. Several tenants live side by side in one database and never
        see each other's records.

        ``mailer`` is a URL (``outbox:///folder``, ``smtp://host:587``,
        ``memory://``) or a mailer object; by default emails are written as
        ``.eml`` files beside an SQLite database. ``gateways`` adds gateway
        objects by name to those plugins register; ``default_gateway`` takes
        paid orders. Plugins passed in ``plugins`` come after built-in and
        entry-point ones (``load_entrypoints=False`` skips the latter;
        ``blocked_plugins`` leaves out the entry points with those names).
        ``dunning`` says how failed renewals and installments are retried
        (``DunningPolicy(max_attempts=8, within=timedelta(days=14))`` by default).
        ``expiry_reminder`` is how long before a grant ends ``tick()`` records
        the ``AccessExpiring`` reminder event (7 days; ``None`` for none).
        ``passwords`` hashes member passwords (argon2id from
        ``membership_core[security]`` by default). ``accounts`` sets the
        lifetimes, limits and paths of reset and sign-in links
        (:class:`~membership_core.domain.credentials.AccountPolicy`), and
        ``throttle`` where failed sign-in attempts are counted (the portal's
        storage by default). ``keep_access_on_refund`` and
        ``keep_access_on_dispute`` leave the access a refund or a lost
        dispute would end (both ``False``: it ends; also settable later on
        ``portal.payments``).

        ``platform_url`` is where the host serves portals: a portal's URL (in
        emails, offer and certificate links) is it, with the portal's
        sub-domain in front of its host, or ``https://`` the portal's verified
        custom domain (see ``portal.settings``). ``media`` stores uploaded
        images (a URL: ``folder:///path?url=https://cdn.example/media``,
        ``memory://``, or a :class:`~membership_core.ports.media.MediaStore`;
        by default a folder beside an SQLite file). ``resolver`` looks up DNS
        records when a custom domain is verified (the standard library's by
        default, which cannot read TXT records; see docs/domains.md).

        The first time a portal is opened it is given the built-in automation
        rule "Course completion" (certificate, then congratulations email; see
        :mod:`membership_core.services.automations`), once: an admin may edit,
        disable or delete it.

        Every argument is checked before any storage is opened: a malformed
        one raises :class:`~membership_core.errors.ValidationError` naming it
        (a ``clock`` needs a ``now()`` method, ``ids`` a ``new()`` method, a
        mailer object ``send()``, each gateway a ``name``,
        :class:`~membership_core.ports.payments.GatewayCapabilities` and the
        methods its capabilities say the library calls). An unknown URL
        scheme, mailer scheme or ``default_gateway`` is a
        :class:`~membership_core.errors.ConfigurationError`.
        """
        # Every argument is checked before anything is built, so a mistake
        # raises ValidationError naming it and leaves no database behind.
        if expiry_reminder is not None and (
            not isinstance(expiry_reminder, timedelta) or expiry_reminder <= timedelta(0)
        ):
            raise ValidationError("expiry_reminder", "must be a positive timedelta or None")
        if dunning is not None and not isinstance(dunning, DunningPolicy):
            raise ValidationError(
                "dunning", f"must be a DunningPolicy, not {type(dunning).__name__}"
            )
        if not isinstance(tenant, str) or not _TENANT.match(tenant):
            raise ValidationError(
                "tenant", "must be 1-63 lowercase letters, digits, '-' or '_', starting alnum"
            )
        if not isinstance(url, str):
            _check_object("url", url, "unit_of_work", "a URL string or a Storage")
        _check_plugins(plugins)
        _check_blocked(blocked_plugins)
        v.boolean("load_entrypoints", load_entrypoints)
        if clock is not None:
            _check_object("clock", clock, "now", "a Clock")
        if ids is not None:
            _check_object("ids", ids, "new", "an Ids")
        if mailer is not None and not isinstance(mailer, str):
            _check_object("mailer", mailer, "send", "a mailer URL or a Mailer")
        _check_gateways(gateways)
        if passwords is not None:
            _check_object("passwords", passwords, "verify", "a PasswordHasher")
        if accounts is not None and not isinstance(accounts, AccountPolicy):
            raise ValidationError(
                "accounts", f"must be an AccountPolicy, not {type(accounts).__name__}"
            )
        if throttle is not None:
            _check_object("throttle", throttle, "record_failure", "an AttemptThrottle")
        v.text("default_gateway", default_gateway, max_length=200)
        v.boolean("keep_access_on_refund", keep_access_on_refund)
        v.boolean("keep_access_on_dispute", keep_access_on_dispute)
        platform = _platform_url(platform_url)
        if media is not None and not isinstance(media, str):
            _check_object("media", media, "put", "a media URL or a MediaStore")
        if resolver is not None:
            _check_object("resolver", resolver, "lookup", "a DnsResolver")

        manager = Plugins(plugins, load_entrypoints=load_entrypoints, blocked=blocked_plugins)
        available = {
            name: manager.adapters.gateway(name) for name in manager.adapters.gateway_names
        }
        available.update(gateways or {})
        if default_gateway not in available:
            raise ConfigurationError(
                f"no payment gateway {default_gateway!r}", field="default_gateway"
            )
        # A mailer URL given is built before the storage, so a bad one leaves
        # no database behind.
        chosen_mailer = manager.adapters.mailer(mailer) if isinstance(mailer, str) else mailer
        chosen_media = manager.adapters.media_store(media) if isinstance(media, str) else media
        owns = isinstance(url, str)
        storage = manager.adapters.storage(url) if isinstance(url, str) else url
        try:
            if chosen_mailer is None:
                # The default outbox folder sits beside an SQLite file: made only
                # once the database opened, so a database that cannot be opened
                # gets no folder (nor its missing parent) created for it.
                default = _default_mailer_url(url if isinstance(url, str) else "memory://")
                chosen_mailer = manager.adapters.mailer(default)
            if chosen_media is None:
                # A Storage object passed in is treated like a database of its own kind.
                kind = url if isinstance(url, str) else _storage_kind(storage)
                chosen_media = _default_media(kind, manager.adapters)
            context = Context(
                tenant=tenant,
                storage=storage,
                clock=clock or SystemClock(),
                ids=ids or RandomIds(),
                plugins=manager,
                mailer=chosen_mailer,
                gateways=available,
                platform_url=platform,
                media=chosen_media,
                resolver=resolver or StdlibResolver(),
            )
            return cls(
                context,
                owns_storage=owns,
                default_gateway=default_gateway,
                dunning=dunning,
                expiry_reminder=expiry_reminder,
                passwords=passwords if passwords is not None else _default_hasher(),
                accounts=accounts,
                throttle=throttle,
                keep_access_on_refund=keep_access_on_refund,
                keep_access_on_dispute=keep_access_on_dispute,
            )
        except BaseException:
            if owns:  # a storage the caller passed in stays theirs to close
                storage.close()
            raise

    @property
    def tenant(self) -> str:
        """This portal's name in its database."""
        return self._context.tenant

    @property
    def storage(self) -> Storage:
        """The storage back end (shareable with other tenants' portals)."""
        return self._context.storage

    @property
    def mailer(self) -> Mailer:
        """The mailer this portal delivers through."""
        return self._context.mailer

    @property
    def media(self) -> MediaStore:
        """Where this portal's uploaded images are kept."""
        return self._context.media

    @property
    def resolver(self) -> DnsResolver:
        """The DNS resolver custom domains are verified with."""
        return self._context.resolver

    @property
    def clock(self) -> Clock:
        """The clock every service reads."""
        return self._context.clock

    @property
    def plugins(self) -> Plugins:
        """This portal's plugin manager."""
        return self._context.plugins

    def _after_commit(self) -> None:
        # Only the thread's own new events and mail: tick() covers the rest.
        if self._context.take_recorded():
            self._events.dispatch_pending()
        self.mail.deliver_queued()

    def tick(self) -> TickReport:
        """Run scheduled work: apply webhook events left unapplied, collect due
        renewals and installments, reconcile a batch of paid purchases with
        their access, re-deliver pending events, answer reset and sign-in
        requests, send due mail.

        Safe to run from cron or any scheduler, repeatedly and from several
        workers at once: each effect happens once.
        """
        webhooks = self.payments.apply_pending_webhooks()
        self.payments.prune_webhooks()
        run = self.billing.charge_due()
        repaired = self.payments.reconcile_step()
        unlocked = self.drip.unlock_due()
        notices = self.access.notify_expiry()
        dispatched = self._events.dispatch_pending()
        account_emails = self.accounts.send_requested()
        sent, failed = self.mail.deliver_due()
        return TickReport(
            dispatched,
            sent,
            failed,
            charges_succeeded=run.succeeded,
            charges_failed=run.failed,
            charges_pending=run.pending,
            webhooks_applied=webhooks,
            access_repaired=len(repaired),
            lessons_unlocked=unlocked,
            access_notices=notices,
            account_emails=account_emails,
        )

    def close(self) -> None:
        """Release the storage (when this portal opened it)."""
        if self._owns_storage:
            self._context.storage.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
