"""The public testing kit for host test suites: a frozen clock, deterministic ids,
a captured mailbox, a scriptable payment gateway (:class:`TestGateway`), and a
portal wired with them.

>>> from membership_core.testing import make_test_portal
>>> portal = make_test_portal()
>>> portal.clock.advance(days=1) > portal.clock.now() - portal.clock.now().resolution
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from ..adapters.clock import FrozenClock
from ..adapters.ids import SequentialIds
from ..adapters.mail_memory import MemoryMailer
from ..adapters.media_memory import MemoryMediaStore
from ..adapters.passwords_argon2 import Argon2Hasher
from ..domain.billing import DunningPolicy
from ..domain.credentials import AccountPolicy
from ..portal import Portal
from ..ports.dns import DnsResolver
from ..ports.ids import Ids
from ..ports.media import MediaStore
from ..ports.passwords import PasswordHasher
from ..ports.payments import PaymentGateway
from ..ports.storage import Storage
from .dns import FakeResolver
from .gateway import TestGateway

__all__ = [
    "FakeResolver",
    "FrozenClock",
    "MemoryMailer",
    "SequentialIds",
    "TestGateway",
    "TestPortal",
    "make_test_portal",
]

#: Where test portals' clocks start unless told otherwise.
DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class TestPortal(Portal):
    """A portal whose clock and mailer are the test doubles (typed for convenience)."""

    __test__ = False  # not a pytest test class

    @property
    def clock(self) -> FrozenClock:
        """The frozen clock: ``portal.clock.advance(days=7)``."""
        clock = self._context.clock
        assert isinstance(clock, FrozenClock)
        return clock

    @property
    def gateway(self) -> TestGateway:
        """The scriptable gateway registered as ``"test"``: ``portal.gateway.script(...)``."""
        gateway = self._context.gateways.get("test")
        assert isinstance(gateway, TestGateway), "this portal's 'test' gateway was replaced"
        return gateway

    @property
    def mailer(self) -> MemoryMailer:
        """The captured mailbox: ``portal.mailer.sent``."""
        mailer = self._context.mailer
        assert isinstance(mailer, MemoryMailer)
        return mailer

    @property
    def resolver(self) -> FakeResolver:
        """The fake DNS: ``portal.resolver.set("learn.acme.com", "CNAME", ...)``."""
        resolver = self._context.resolver
        assert isinstance(resolver, FakeResolver), "this portal's resolver was replaced"
        return resolver

    def use_domain(self, host: str) -> str:
        """Give the portal ``host`` as its verified custom domain; return its new base URL.

        Sets the custom domain, publishes the records it asks for in the fake
        DNS, and verifies them, as an admin would with a real DNS provider.
        """
        self.settings.update_domain(custom_domain=host)
        verification = self.settings.domain_verification()
        assert verification is not None
        for record in verification.records:
            self.resolver.set(record.name, record.type, record.value)
        if not self.settings.verify_domain().verified:
            raise AssertionError(f"{host} did not verify against the fake DNS")
        return self.settings.base_url()


def make_test_portal(
    url: str | Storage = "memory://",
    *,
    tenant: str = "default",
    start: datetime = DEFAULT_START,
    plugins: Sequence[object] = (),
    gateways: Mapping[str, PaymentGateway] | None = None,
    default_gateway: str = "manual",
    dunning: DunningPolicy | None = None,
    expiry_reminder: timedelta | None = timedelta(days=7),
    passwords: PasswordHasher | None = None,
    accounts: AccountPolicy | None = None,
    ids: Ids | None = None,
    platform_url: str = "https://members.example.com",
    media: str | MediaStore | None = None,
    resolver: DnsResolver | None = None,
) -> TestPortal:
    """A portal on ``url`` with a :class:`FrozenClock`, sequential ids and a memory mailer.

    A :class:`TestGateway` on the same clock is registered as ``"test"``
    (``portal.gateway``), besides the built-in ``manual`` one and any
    ``gateways`` given; ``default_gateway="test"`` sends checkout through it.
    ``ids`` replaces the sequential ids (two test portals in one database
    otherwise both count from 1). ``resolver`` defaults to a
    :class:`FakeResolver` (``portal.resolver``), ``media`` to memory.
    """
    clock = FrozenClock(start)
    gateways = {"test": TestGateway(clock=clock), **(gateways or {})}
    portal = Portal.open(
        url,
        tenant=tenant,
        clock=clock,
        ids=ids or SequentialIds(),
        mailer=MemoryMailer(),
        plugins=plugins,
        gateways=gateways,
        default_gateway=default_gateway,
        load_entrypoints=False,
        dunning=dunning,
        expiry_reminder=expiry_reminder,
        # OWASP's floor rather than the production profile: fast enough for test suites.
        passwords=passwords or Argon2Hasher(time_cost=2, memory_kib=19456, parallelism=1),
        accounts=accounts,
        platform_url=platform_url,
        media=media or MemoryMediaStore(),
        resolver=resolver if resolver is not None else FakeResolver(),
    )
    portal.__class__ = TestPortal
    return portal  # type: ignore[return-value]
