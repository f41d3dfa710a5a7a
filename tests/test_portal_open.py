"""Portal.open checks every argument first: a ValidationError naming it, and nothing created."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from membership_core import ConfigurationError, Portal, ValidationError
from membership_core.adapters.mail_memory import MemoryMailer
from membership_core.ports.payments import (
    GatewayCapabilities,
    GatewayEvent,
    OffSessionCharge,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    RefundRequest,
    RefundResult,
)
from membership_core.testing import FrozenClock, SequentialIds, TestGateway

START = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


class OneTimeGateway:
    """The least a gateway needs: a name, capabilities and create_payment."""

    name = "onetime"
    capabilities = GatewayCapabilities()

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        return PaymentResult(PaymentStatus.SUCCEEDED, request.amount, reference="ch_1")


class ClaimsRefunds(OneTimeGateway):
    """Declares refunds but has no refund(): the library would fail at refund time."""

    capabilities = GatewayCapabilities(refunds=True)


class ClaimsOffSession(OneTimeGateway):
    """Declares off-session charges but has neither charge_saved_method() nor cancel()."""

    capabilities = GatewayCapabilities(off_session=True)


class FullGateway(OneTimeGateway):
    """Everything the port has, so every capability may be declared."""

    capabilities = GatewayCapabilities(
        off_session=True, refunds=True, partial_refunds=True, webhooks=True
    )

    def charge_saved_method(self, request: OffSessionCharge) -> PaymentResult:
        return PaymentResult(PaymentStatus.SUCCEEDED, request.amount, reference="ch_2")

    def refund(self, request: RefundRequest) -> RefundResult:
        raise NotImplementedError

    def cancel(self, reference: str) -> None:
        return None

    def parse_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime
    ) -> list[GatewayEvent]:
        return []


class Nameless(OneTimeGateway):
    name = ""


class CapabilitiesAsDict(OneTimeGateway):
    capabilities = ("refunds",)  # type: ignore[assignment]


class NowIsNotCallable:
    now = "2030-01-01"


BAD_ARGUMENTS: list[tuple[str, dict[str, Any], str]] = [
    ("plugins None", {"plugins": None}, "plugins"),
    ("plugins a string", {"plugins": "my_plugin"}, "plugins"),
    ("plugin None", {"plugins": [None]}, "plugins"),
    ("plugin a name", {"plugins": ["my_plugin"]}, "plugins"),
    ("blocked None", {"blocked_plugins": None}, "blocked_plugins"),
    ("blocked a string", {"blocked_plugins": "stripe"}, "blocked_plugins"),
    ("blocked empty name", {"blocked_plugins": [""]}, "blocked_plugins"),
    ("blocked a number", {"blocked_plugins": [3]}, "blocked_plugins"),
    ("clock a string", {"clock": "x"}, "clock"),
    ("clock without callable now", {"clock": NowIsNotCallable()}, "clock"),
    ("ids a number", {"ids": 5}, "ids"),
    ("ids a clock", {"ids": FrozenClock()}, "ids"),
    ("mailer a number", {"mailer": 5}, "mailer"),
    ("mailer without send", {"mailer": object()}, "mailer"),
    ("gateways a list", {"gateways": [OneTimeGateway()]}, "gateways"),
    ("gateway a number", {"gateways": {"x": 1}}, "gateways"),
    ("gateway name empty", {"gateways": {"": OneTimeGateway()}}, "gateways"),
    ("gateway name not a string", {"gateways": {1: OneTimeGateway()}}, "gateways"),
    ("gateway without its own name", {"gateways": {"x": Nameless()}}, "gateways"),
    ("gateway capabilities a dict", {"gateways": {"x": CapabilitiesAsDict()}}, "gateways"),
    ("refunds without refund()", {"gateways": {"x": ClaimsRefunds()}}, "gateways"),
    ("off-session without its methods", {"gateways": {"x": ClaimsOffSession()}}, "gateways"),
    ("load_entrypoints a string", {"load_entrypoints": "no"}, "load_entrypoints"),
    ("load_entrypoints a number", {"load_entrypoints": 0}, "load_entrypoints"),
    ("default_gateway None", {"default_gateway": None}, "default_gateway"),
    ("default_gateway empty", {"default_gateway": " "}, "default_gateway"),
    ("tenant", {"tenant": "Has Spaces"}, "tenant"),
    ("dunning", {"dunning": 3}, "dunning"),
    ("expiry_reminder", {"expiry_reminder": 7}, "expiry_reminder"),
    ("keep_access_on_refund", {"keep_access_on_refund": "yes"}, "keep_access_on_refund"),
    ("keep_access_on_dispute", {"keep_access_on_dispute": 1}, "keep_access_on_dispute"),
]


@pytest.mark.parametrize(
    ("options", "field"),
    [(options, field) for _, options, field in BAD_ARGUMENTS],
    ids=[name for name, _, _ in BAD_ARGUMENTS],
)
def test_a_bad_argument_is_a_validation_error_naming_it_and_creates_nothing(
    tmp_path: Path, options: dict[str, Any], field: str
) -> None:
    database = tmp_path / "portal.db"
    with pytest.raises(ValidationError) as info:
        Portal.open(f"sqlite:///{database}", **options)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    # Checked before storage and mail are built: no database, no outbox folder.
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", [None, 5, object()])
def test_url_must_be_a_string_or_a_storage(url: object) -> None:
    with pytest.raises(ValidationError) as info:
        Portal.open(url, load_entrypoints=False)  # type: ignore[arg-type]
    assert info.value.field == "url"


def test_unknown_default_gateway_fails_before_the_database_exists(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        Portal.open(f"sqlite:///{tmp_path}/portal.db", default_gateway="nope")
    assert info.value.field == "default_gateway"
    assert list(tmp_path.iterdir()) == []


def test_unknown_mailer_scheme_fails_before_the_database_exists(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        Portal.open(f"sqlite:///{tmp_path}/portal.db", mailer="pigeon://coop")
    assert info.value.field == "mailer"
    assert list(tmp_path.iterdir()) == []


def test_a_shared_storage_is_not_closed_by_a_failed_open(storage_url: str) -> None:
    with Portal.open(storage_url, mailer=MemoryMailer(), load_entrypoints=False) as first:
        with pytest.raises(ValidationError):
            Portal.open(first.storage, tenant="other", clock="x")  # type: ignore[arg-type]
        # still usable
        assert first.catalog.create_product("Still open").title == "Still open"


def test_well_formed_arguments_open(storage_url: str) -> None:
    # Duck-typed adapters are welcome: the checks are structural, not isinstance.
    class Clock:
        def now(self) -> datetime:
            return START

    gateways = {
        "onetime": OneTimeGateway(),
        "full": FullGateway(),
        "test": TestGateway(),
    }
    with Portal.open(
        storage_url,
        tenant="acme",
        plugins=(),
        blocked_plugins=["some-plugin"],
        clock=Clock(),
        ids=SequentialIds(),
        mailer=MemoryMailer(),
        gateways=gateways,
        default_gateway="onetime",
        load_entrypoints=False,
    ) as portal:
        assert portal.catalog.create_product("Course").id == "prod_000001"
        assert portal.catalog.get_product("prod_000001").created_at == START
