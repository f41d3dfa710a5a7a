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
from ..adapters.passwords_argon2 import Argon2Hasher
from ..domain.billing import DunningPolicy
from ..domain.credentials import AccountPolicy
from ..portal import Portal
from ..ports.ids import Ids
from ..ports.passwords import PasswordHasher
from ..ports.payments import PaymentGateway
from ..ports.storage import Storage
from .gateway import TestGateway

__all__ = [
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
) -> TestPortal:
    """A portal on ``url`` with a :class:`FrozenClock`, sequential ids and a memory mailer.

    A :class:`TestGateway` on the same clock is registered as ``"test"``
    (``portal.gateway``), besides the built-in ``manual`` one and any
    ``gateways`` given; ``default_gateway="test"`` sends checkout through it.
    ``ids`` replaces the sequential ids (two test portals in one database
    otherwise both count from 1).
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
    )
    portal.__class__ = TestPortal
    return portal  # type: ignore[return-value]
