"""The PaymentGateway contract, run against every adapter, then the TestGateway's own features.

Each adapter is described by a :class:`Adapter` harness in :data:`ADAPTERS`; a
plugin gateway joins the contract by adding one entry (how to build it, and,
when it declares webhooks, how its provider encodes and signs an event).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from membership_core.adapters.clock import FrozenClock
from membership_core.adapters.payments_manual import ManualGateway
from membership_core.adapters.webhooks import DEFAULT_SIGNATURE_HEADER, sign
from membership_core.domain.money import Money
from membership_core.errors import ConfigurationError, InvalidToken, ValidationError
from membership_core.ports.payments import (
    CAPABILITY_NAMES,
    GatewayCapabilities,
    GatewayEvent,
    GatewayEventType,
    OffSessionCharge,
    PaymentGateway,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    RefundRequest,
    RefundResult,
    RefundStatus,
)
from membership_core.serialization import structure, unstructure
from membership_core.testing import TestGateway
from membership_core.testing.gateway import (
    ActionRequired,
    Decline,
    Pending,
    Raise,
    SettleLater,
    Succeed,
    WebhookDelivery,
)

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
EUR = "EUR"


def eur(cents: int) -> Money:
    return Money(cents, EUR)


# -- adapters under contract -----------------------------------------------------


@attrs.define
class Adapter:
    """How to drive one gateway through the contract.

    ``encode`` turns an event into the provider's raw webhook body and
    ``sign`` gives the headers for a body signed at ``at`` (with ``secret``,
    or the gateway's own when ``None``); both are needed only when the gateway
    declares webhooks. ``payments_taken`` counts money movements when the
    adapter can tell (for the idempotency check).
    """

    gateway: PaymentGateway
    clock: FrozenClock
    encode: Callable[[GatewayEvent], bytes] | None = None
    sign: Callable[..., dict[str, str]] | None = None
    payments_taken: Callable[[], int] | None = None


def _manual(clock: FrozenClock) -> Adapter:
    return Adapter(ManualGateway(), clock)


def _test(
    name: str, capabilities: GatewayCapabilities | None = None
) -> Callable[[FrozenClock], Adapter]:
    def build(clock: FrozenClock) -> Adapter:
        gateway = TestGateway(name, secret="whsec_contract", clock=clock, capabilities=capabilities)

        def signer(body: bytes, *, at: datetime, secret: str | None = None) -> dict[str, str]:
            return {DEFAULT_SIGNATURE_HEADER: sign(body, secret or "whsec_contract", at)}

        return Adapter(
            gateway,
            clock,
            encode=lambda event: gateway.webhook_for(event).body,
            sign=signer,
            payments_taken=lambda: len(gateway.payments),
        )

    return build


#: Every gateway the contract runs against; add a plugin's harness here.
ADAPTERS: dict[str, Callable[[FrozenClock], Adapter]] = {
    "manual": _manual,
    "test": _test("test"),
    "test-one-time-only": _test("test_one_time", GatewayCapabilities(one_time=True)),
    "test-whole-refunds": _test(
        "test_whole_refunds", GatewayCapabilities(refunds=True, webhooks=True)
    ),
    "test-off-session-only": _test(
        "test_off_session", GatewayCapabilities(one_time=False, off_session=True)
    ),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each contract test against the adapters it applies to, and only those.

    ``@pytest.mark.gateway(needs=(...), lacking=(...))`` limits a test to the
    adapters that declare every capability in ``needs`` and none in
    ``lacking`` (tests using the ``webhook`` fixture need ``webhooks``): a
    test of a feature an adapter does not declare is not collected for it,
    rather than skipped.
    """
    if "adapter" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("gateway")
    needed: tuple[str, ...] = marker.kwargs.get("needs", ()) if marker else ()
    if "webhook" in metafunc.fixturenames:
        needed = (*needed, "webhooks")
    lacking: tuple[str, ...] = marker.kwargs.get("lacking", ()) if marker else ()
    names = []
    for name in sorted(ADAPTERS):
        declared = ADAPTERS[name](FrozenClock(START)).gateway.capabilities
        if all(getattr(declared, c) for c in needed) and not any(
            getattr(declared, c) for c in lacking
        ):
            names.append(name)
    metafunc.parametrize("adapter", names, indirect=True)


@pytest.fixture
def adapter(request: pytest.FixtureRequest) -> Adapter:
    """One gateway adapter with a frozen clock; contract tests run once per adapter."""
    return ADAPTERS[request.param](FrozenClock(START))


def payment_request(
    key: str = "key_1", *, amount: int = 1000, save: bool = False
) -> PaymentRequest:
    return PaymentRequest("pur_1", eur(amount), "A course", "buyer@example.com", key, save)


def first_payment(gateway: PaymentGateway, key: str = "key_1", amount: int = 1000) -> PaymentResult:
    """A payment through whichever entry point the gateway declares."""
    save = not gateway.capabilities.one_time
    return gateway.create_payment(payment_request(key, amount=amount, save=save))


def event_for(reference: str, *, event_id: str = "evt_contract_1") -> GatewayEvent:
    return GatewayEvent(
        id=event_id,
        type=GatewayEventType.PAYMENT_SUCCEEDED,
        payment_reference=reference,
        amount=eur(1000),
        occurred_at=START,
        purchase_id="pur_1",
    )


# -- the contract ----------------------------------------------------------------


def test_name_is_a_non_empty_string(adapter: Adapter) -> None:
    assert isinstance(adapter.gateway.name, str)
    assert adapter.gateway.name.strip()


def test_capabilities_are_declared_and_stable(adapter: Adapter) -> None:
    gateway = adapter.gateway
    before = gateway.capabilities
    assert isinstance(before, GatewayCapabilities)
    if gateway.capabilities.one_time or gateway.capabilities.off_session:
        first_payment(gateway)
    gateway.cancel("nothing_here")
    assert gateway.capabilities == before
    assert gateway.capabilities == gateway.capabilities


def test_create_payment_answers_the_requested_amount(adapter: Adapter) -> None:
    gateway = adapter.gateway
    result = first_payment(gateway, amount=1234)
    assert isinstance(result, PaymentResult)
    assert isinstance(result.status, PaymentStatus)
    assert result.amount == eur(1234)
    if result.status is PaymentStatus.DECLINED:
        assert result.decline_reason
    if result.status is PaymentStatus.ACTION_REQUIRED:
        assert result.action_url


def test_same_idempotency_key_gives_the_same_answer_and_no_second_charge(adapter: Adapter) -> None:
    gateway = adapter.gateway
    first = first_payment(gateway, "same_key")
    taken = adapter.payments_taken() if adapter.payments_taken else None
    again = first_payment(gateway, "same_key")
    assert again == first
    if adapter.payments_taken is not None:
        assert adapter.payments_taken() == taken == 1
    if gateway.capabilities.off_session and first.method_reference:
        charge = OffSessionCharge("pur_1", eur(500), first.method_reference, "Renewal", "renew_1")
        once = gateway.charge_saved_method(charge)
        assert gateway.charge_saved_method(charge) == once
        if adapter.payments_taken is not None:
            assert adapter.payments_taken() == 2


def _undeclared_calls(gateway: PaymentGateway) -> dict[str, list[Callable[[], object]]]:
    """For each capability, calls that need it (and only it, beyond what is declared)."""
    method = "method_ref"
    return {
        "one_time": [lambda: gateway.create_payment(payment_request("k_one_time"))],
        "off_session": [
            lambda: gateway.create_payment(payment_request("k_save", save=True)),
            lambda: gateway.charge_saved_method(
                OffSessionCharge("pur_1", eur(100), method, "Renewal", "k_off")
            ),
        ],
        "refunds": [
            lambda: gateway.refund(RefundRequest("pay_unknown", eur(100), "requested", "k_re"))
        ],
        "webhooks": [
            lambda: gateway.parse_webhook(
                b"{}", {DEFAULT_SIGNATURE_HEADER: "t=1,v1=" + "0" * 64}, now=START
            )
        ],
    }


def test_undeclared_methods_raise_configuration_error(adapter: Adapter) -> None:
    gateway = adapter.gateway
    for capability, calls in _undeclared_calls(gateway).items():
        if gateway.capabilities.supports(capability):  # type: ignore[arg-type]
            continue
        for call in calls:
            with pytest.raises(ConfigurationError, match=capability):
                call()


@pytest.mark.gateway(needs=("refunds",), lacking=("partial_refunds",))
def test_undeclared_partial_refund_raises_configuration_error(adapter: Adapter) -> None:
    gateway = adapter.gateway
    paid = first_payment(gateway)
    assert paid.status is PaymentStatus.SUCCEEDED
    assert paid.reference
    with pytest.raises(ConfigurationError, match="partial_refunds"):
        gateway.refund(RefundRequest(paid.reference, eur(100), "requested", "k_partial"))
    whole = gateway.refund(RefundRequest(paid.reference, eur(1000), "requested", "k_whole"))
    assert whole.status in (RefundStatus.SUCCEEDED, RefundStatus.PENDING)


def test_no_capability_escapes_the_contract() -> None:
    # Every capability that gates a method is exercised above.
    gated = set(_undeclared_calls(ManualGateway())) | {"partial_refunds"}
    assert gated | {"subscriptions_managed_by_gateway"} == set(CAPABILITY_NAMES)


@pytest.mark.gateway(needs=("off_session",))
def test_off_session_charges_a_saved_method(adapter: Adapter) -> None:
    gateway = adapter.gateway
    first = gateway.create_payment(payment_request(save=True))
    assert first.method_reference
    charge = OffSessionCharge("pur_1", eur(700), first.method_reference, "Installment 2", "i_2")
    result = gateway.charge_saved_method(charge)
    assert isinstance(result.status, PaymentStatus)
    assert result.amount == eur(700)


@pytest.mark.gateway(needs=("refunds",))
def test_refunds_whole_payment(adapter: Adapter) -> None:
    gateway = adapter.gateway
    paid = first_payment(gateway)
    assert paid.status is PaymentStatus.SUCCEEDED
    assert paid.reference
    request = RefundRequest(paid.reference, eur(1000), "requested_by_customer", "refund_1")
    result = gateway.refund(request)
    assert isinstance(result, RefundResult)
    assert result.status in (RefundStatus.SUCCEEDED, RefundStatus.PENDING)
    assert result.amount == eur(1000)
    assert gateway.refund(request) == result
    second = gateway.refund(attrs.evolve(request, idempotency_key="refund_2"))
    assert second.status is RefundStatus.FAILED
    assert second.failure_reason


@pytest.mark.gateway(needs=("partial_refunds",))
def test_partial_refunds_up_to_the_payment(adapter: Adapter) -> None:
    gateway = adapter.gateway
    paid = first_payment(gateway)
    assert paid.reference
    parts = [gateway.refund(RefundRequest(paid.reference, eur(400), "r", f"p_{n}")) for n in (1, 2)]
    assert [part.status for part in parts] == [RefundStatus.SUCCEEDED] * 2
    too_much = gateway.refund(RefundRequest(paid.reference, eur(201), "r", "p_3"))
    assert too_much.status is RefundStatus.FAILED
    rest = gateway.refund(RefundRequest(paid.reference, eur(200), "r", "p_4"))
    assert rest.status is RefundStatus.SUCCEEDED


def test_cancel_unknown_or_twice_is_a_no_op(adapter: Adapter) -> None:
    gateway = adapter.gateway
    assert gateway.cancel("never_heard_of_it") is None
    assert gateway.cancel("never_heard_of_it") is None


# -- webhooks contract -------------------------------------------------------------


@pytest.fixture
def webhook(adapter: Adapter) -> tuple[Adapter, bytes]:
    """An adapter declaring webhooks and the raw body of one of its events."""
    assert adapter.encode is not None
    assert adapter.sign is not None
    return adapter, adapter.encode(event_for("pay_1"))


def test_signed_webhook_parses(webhook: tuple[Adapter, bytes]) -> None:
    adapter, body = webhook
    assert adapter.sign is not None
    headers = adapter.sign(body, at=START)
    assert adapter.gateway.parse_webhook(body, headers, now=START) == [event_for("pay_1")]


def test_header_name_is_case_insensitive(webhook: tuple[Adapter, bytes]) -> None:
    adapter, body = webhook
    assert adapter.sign is not None
    headers = {key.lower(): value for key, value in adapter.sign(body, at=START).items()}
    assert adapter.gateway.parse_webhook(body, headers, now=START) == [event_for("pay_1")]


@pytest.mark.parametrize(
    "problem", ["tampered body", "wrong secret", "missing header", "stale", "future"]
)
def test_bad_webhooks_raise_invalid_token(webhook: tuple[Adapter, bytes], problem: str) -> None:
    adapter, body = webhook
    assert adapter.sign is not None
    headers = adapter.sign(body, at=START)
    now = START
    if problem == "tampered body":
        body = body.replace(b"pay_1", b"pay_2")
    elif problem == "wrong secret":
        headers = adapter.sign(body, at=START, secret="whsec_somebody_else")
    elif problem == "missing header":
        headers = {}
    elif problem == "stale":
        now = START + timedelta(seconds=301)
    else:
        now = START - timedelta(seconds=301)
    with pytest.raises(InvalidToken):
        adapter.gateway.parse_webhook(body, headers, now=now)


@pytest.mark.parametrize("offset", [300, -300, 0])
def test_webhook_within_tolerance_is_accepted(webhook: tuple[Adapter, bytes], offset: int) -> None:
    adapter, body = webhook
    assert adapter.sign is not None
    headers = adapter.sign(body, at=START)
    now = START + timedelta(seconds=offset)
    assert adapter.gateway.parse_webhook(body, headers, now=now) == [event_for("pay_1")]


# -- TestGateway -------------------------------------------------------------------


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def gateway(clock: FrozenClock) -> TestGateway:
    return TestGateway(clock=clock)


def saved_method(gateway: TestGateway) -> str:
    result = gateway.create_payment(payment_request("first", save=True))
    assert result.method_reference
    return result.method_reference


def charge(method: str, key: str, amount: int = 1000) -> OffSessionCharge:
    return OffSessionCharge("pur_1", eur(amount), method, "Renewal", key)


def parse_all(gateway: TestGateway, deliveries: list[WebhookDelivery], now: datetime) -> list[Any]:
    return [e for d in deliveries for e in gateway.parse_webhook(d.body, d.headers, now=now)]


def test_defaults(gateway: TestGateway) -> None:
    caps = gateway.capabilities
    assert gateway.name == "test"
    assert (caps.one_time, caps.off_session, caps.refunds, caps.partial_refunds, caps.webhooks) == (
        True,
        True,
        True,
        True,
        True,
    )
    assert not caps.subscriptions_managed_by_gateway
    result = gateway.create_payment(payment_request(save=True))
    assert result == PaymentResult(
        PaymentStatus.SUCCEEDED, eur(1000), reference="test_pay_1", method_reference="test_pm_1"
    )
    assert gateway.create_payment(payment_request("key_2")).reference == "test_pay_2"
    assert TestGateway("acme").create_payment(payment_request()).reference == "acme_pay_1"


def test_pytest_does_not_collect_it() -> None:
    assert TestGateway.__test__ is False


def test_every_scripted_outcome(gateway: TestGateway) -> None:
    gateway.script(
        Decline("card_declined"),
        ActionRequired(),
        ActionRequired("https://bank.example/3ds"),
        Pending(),
        Succeed(),
        Decline(),
    )
    results = [gateway.create_payment(payment_request(f"k{n}")) for n in range(7)]
    assert [r.status for r in results] == [
        PaymentStatus.DECLINED,
        PaymentStatus.ACTION_REQUIRED,
        PaymentStatus.ACTION_REQUIRED,
        PaymentStatus.PENDING,
        PaymentStatus.SUCCEEDED,
        PaymentStatus.DECLINED,
        PaymentStatus.SUCCEEDED,  # the script ran out
    ]
    assert results[0].decline_reason == "card_declined"
    assert results[5].decline_reason == "card_declined"
    assert results[1].action_url == "https://gateway.test/test/authenticate/test_pay_2"
    assert results[2].action_url == "https://bank.example/3ds"
    assert [p.status for p in gateway.payments] == [r.status for r in results]
    assert gateway.charged() == {EUR: eur(2000)}


def test_scripted_decline_saves_no_method(gateway: TestGateway) -> None:
    gateway.script(Decline(), Pending())
    declined = gateway.create_payment(payment_request("a", save=True))
    pending = gateway.create_payment(payment_request("b", save=True))
    assert declined.method_reference is None
    assert pending.method_reference == "test_pm_1"


def test_script_is_shared_by_both_entry_points_and_only_new_keys(gateway: TestGateway) -> None:
    method = saved_method(gateway)
    gateway.script(Pending(), Decline("insufficient_funds"))
    assert gateway.create_payment(payment_request("first", save=True)).status is (
        PaymentStatus.SUCCEEDED
    )  # a replay uses no scripted outcome
    assert gateway.charge_saved_method(charge(method, "r1")).status is PaymentStatus.PENDING
    assert gateway.create_payment(payment_request("p2")).decline_reason == "insufficient_funds"


def test_raise_records_nothing_and_the_retry_gets_the_next_outcome(gateway: TestGateway) -> None:
    gateway.script(Raise(TimeoutError("provider timed out")), Pending())
    with pytest.raises(TimeoutError, match="provider timed out"):
        gateway.create_payment(payment_request("retry_me"))
    assert gateway.payments == ()
    assert gateway.charged() == {}
    retry = gateway.create_payment(payment_request("retry_me"))
    assert retry.status is PaymentStatus.PENDING
    assert retry.reference == "test_pay_1"
    assert gateway.calls["create_payment"] == 2
    assert len(gateway.payments) == 1


def test_raise_accepts_an_exception_class(gateway: TestGateway) -> None:
    gateway.script(Raise(ConnectionError))
    with pytest.raises(ConnectionError):
        gateway.create_payment(payment_request())


def test_raise_on_an_off_session_charge(gateway: TestGateway) -> None:
    method = saved_method(gateway)
    gateway.script(Raise(TimeoutError()))
    with pytest.raises(TimeoutError):
        gateway.charge_saved_method(charge(method, "renew"))
    assert gateway.charge_saved_method(charge(method, "renew")).status is PaymentStatus.SUCCEEDED
    assert len(gateway.payments) == 2


def test_bad_script_entries_are_refused(gateway: TestGateway) -> None:
    with pytest.raises(ValidationError) as error:
        gateway.script("decline")  # type: ignore[arg-type]
    assert error.value.field == "outcomes"
    with pytest.raises(ValidationError):
        gateway.script_refund(ActionRequired())
    with pytest.raises(ValidationError):
        Raise("boom")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Decline("")


def test_key_reused_for_another_request_is_refused(gateway: TestGateway) -> None:
    gateway.create_payment(payment_request("k", amount=1000))
    with pytest.raises(ValidationError, match="amount") as error:
        gateway.create_payment(payment_request("k", amount=2000))
    assert error.value.field == "idempotency_key"
    method = saved_method(gateway)
    with pytest.raises(ValidationError) as error:
        gateway.charge_saved_method(charge(method, "k"))  # a payment's key, another operation
    assert error.value.field == "idempotency_key"
    assert len(gateway.payments) == 2


def test_idempotent_answer_is_the_stored_one(gateway: TestGateway) -> None:
    gateway.script(Pending())
    first = gateway.create_payment(payment_request("k"))
    assert first.reference
    gateway.settle(first.reference)
    assert gateway.create_payment(payment_request("k")) is first
    assert gateway.payment(first.reference).status is PaymentStatus.SUCCEEDED


def test_decline_method_fails_later_renewals(gateway: TestGateway) -> None:
    method = saved_method(gateway)
    assert gateway.charge_saved_method(charge(method, "r1")).status is PaymentStatus.SUCCEEDED
    gateway.script(Pending())
    gateway.decline_method(method)
    declined = gateway.charge_saved_method(charge(method, "r2"))
    assert (declined.status, declined.decline_reason) == (PaymentStatus.DECLINED, "expired_card")
    gateway.decline_method(method, "insufficient_funds")
    assert gateway.charge_saved_method(charge(method, "r3")).decline_reason == "insufficient_funds"
    # The script was left alone for the next payment that reaches the provider.
    assert gateway.create_payment(payment_request("p")).status is PaymentStatus.PENDING
    assert gateway.charged() == {EUR: eur(2000)}


def test_cancelled_and_unknown_methods_are_declined(gateway: TestGateway) -> None:
    method = saved_method(gateway)
    gateway.cancel(method)
    gateway.cancel(method)
    result = gateway.charge_saved_method(charge(method, "r1"))
    assert (result.status, result.decline_reason) == (
        PaymentStatus.DECLINED,
        "payment_method_cancelled",
    )
    unknown = gateway.charge_saved_method(charge("test_pm_999", "r2"))
    assert unknown.decline_reason == "unknown_payment_method"
    assert gateway.cancelled == (method,)
    assert gateway.calls["cancel"] == 2
    gateway.cancel("sub_unknown")
    assert gateway.cancelled == (method, "sub_unknown")


@pytest.mark.parametrize("succeed", [True, False])
def test_settle_queues_a_signed_webhook(
    gateway: TestGateway, clock: FrozenClock, succeed: bool
) -> None:
    gateway.script(ActionRequired())
    result = gateway.create_payment(payment_request())
    assert result.reference
    assert gateway.take_webhooks() == []
    clock.advance(minutes=5)
    event = gateway.settle(result.reference, succeed=succeed, reason=None)
    [delivery] = gateway.take_webhooks()
    assert gateway.take_webhooks() == []
    assert delivery.event_id == event.id == "test_evt_1"
    [parsed] = gateway.parse_webhook(delivery.body, delivery.headers, now=clock.now())
    assert parsed == event
    assert parsed.occurred_at == clock.now()
    assert parsed.purchase_id == "pur_1"
    assert parsed.amount == eur(1000)
    if succeed:
        assert parsed.type is GatewayEventType.PAYMENT_SUCCEEDED
        assert parsed.failure_reason is None
        assert gateway.charged() == {EUR: eur(1000)}
    else:
        assert parsed.type is GatewayEventType.PAYMENT_FAILED
        assert parsed.failure_reason == "payment_failed"
        assert gateway.payment(result.reference).decline_reason == "payment_failed"
        assert gateway.charged() == {}
    with pytest.raises(ValidationError, match="settled"):
        gateway.settle(result.reference)


def test_settle_unknown_payment_is_refused(gateway: TestGateway) -> None:
    with pytest.raises(ValidationError):
        gateway.settle("test_pay_404")


def test_partial_refunds_up_to_the_total_then_failed(gateway: TestGateway) -> None:
    paid = gateway.create_payment(payment_request())
    assert paid.reference
    first = gateway.refund(RefundRequest(paid.reference, eur(300), "r", "re_1"))
    assert first == RefundResult(RefundStatus.SUCCEEDED, eur(300), reference="test_re_1")
    assert gateway.refund(RefundRequest(paid.reference, eur(300), "r", "re_1")) is first
    second = gateway.refund(RefundRequest(paid.reference, eur(700), "r", "re_2"))
    assert second.status is RefundStatus.SUCCEEDED
    third = gateway.refund(RefundRequest(paid.reference, eur(1), "r", "re_3"))
    assert third.status is RefundStatus.FAILED
    assert third.failure_reason
    assert "0.00 EUR" in third.failure_reason
    assert gateway.payment(paid.reference).refunded == eur(1000)
    assert gateway.charged() == {EUR: eur(0)}
    assert [r.reference for r in gateway.refunds] == ["test_re_1", "test_re_2"]
    events = parse_all(gateway, gateway.take_webhooks(), START)
    assert [(e.type, e.amount, e.refund_reference) for e in events] == [
        (GatewayEventType.REFUND_SUCCEEDED, eur(300), "test_re_1"),
        (GatewayEventType.REFUND_SUCCEEDED, eur(700), "test_re_2"),
    ]
    with pytest.raises(ValidationError) as error:
        gateway.refund(RefundRequest(paid.reference, eur(200), "r", "re_1"))
    assert error.value.field == "idempotency_key"


def test_refund_failures(gateway: TestGateway) -> None:
    unknown = gateway.refund(RefundRequest("test_pay_404", eur(100), "r", "u"))
    assert unknown.status is RefundStatus.FAILED
    assert unknown.reference is None
    gateway.script(Pending())
    pending = gateway.create_payment(payment_request("pending"))
    assert pending.reference
    unpaid = gateway.refund(RefundRequest(pending.reference, eur(100), "r", "x"))
    assert unpaid.status is RefundStatus.FAILED
    paid = gateway.create_payment(payment_request("paid"))
    assert paid.reference
    with pytest.raises(ValidationError) as error:
        gateway.refund(RefundRequest(paid.reference, Money(100, "USD"), "r", "usd"))
    assert error.value.field == "amount"
    gateway.script_refund(Decline("insufficient_balance"))
    declined = gateway.refund(RefundRequest(paid.reference, eur(100), "r", "d"))
    assert (declined.status, declined.failure_reason) == (
        RefundStatus.FAILED,
        "insufficient_balance",
    )
    assert gateway.refunds == ()


def test_pending_refund_until_settled(gateway: TestGateway, clock: FrozenClock) -> None:
    paid = gateway.create_payment(payment_request())
    assert paid.reference
    gateway.script_refund(Pending(), Pending())
    result = gateway.refund(RefundRequest(paid.reference, eur(600), "r", "re_1"))
    assert result.status is RefundStatus.PENDING
    assert result.reference
    assert gateway.take_webhooks() == []
    assert gateway.charged() == {EUR: eur(1000)}
    # The pending refund already holds its amount.
    over = gateway.refund(RefundRequest(paid.reference, eur(500), "r", "re_2"))
    assert over.status is RefundStatus.FAILED
    event = gateway.settle_refund(result.reference)
    assert event is not None
    assert event.refund_reference == result.reference
    assert gateway.charged() == {EUR: eur(400)}
    [delivery] = gateway.take_webhooks()
    assert delivery.event_id == event.id
    # A failed pending refund frees its amount and sends nothing.
    other = gateway.refund(RefundRequest(paid.reference, eur(400), "r", "re_3"))
    assert other.reference
    assert gateway.settle_refund(other.reference, succeed=False) is None
    assert gateway.take_webhooks() == []
    assert gateway.refunds[-1].status is RefundStatus.FAILED
    again = gateway.refund(RefundRequest(paid.reference, eur(400), "r", "re_4"))
    assert again.status is RefundStatus.SUCCEEDED
    with pytest.raises(ValidationError):
        gateway.settle_refund(result.reference)


def test_refund_raise_records_nothing(gateway: TestGateway) -> None:
    paid = gateway.create_payment(payment_request())
    assert paid.reference
    gateway.script_refund(Raise(TimeoutError()))
    request = RefundRequest(paid.reference, eur(1000), "r", "re")
    with pytest.raises(TimeoutError):
        gateway.refund(request)
    assert gateway.refunds == ()
    assert gateway.refund(request).status is RefundStatus.SUCCEEDED


def test_disputes_queue_events(gateway: TestGateway) -> None:
    paid = gateway.create_payment(payment_request())
    assert paid.reference
    opened = gateway.open_dispute(paid.reference, "fraudulent")
    lost = gateway.close_dispute(paid.reference, won=False)
    assert (opened.type, opened.failure_reason) == (GatewayEventType.DISPUTE_OPENED, "fraudulent")
    assert (lost.type, lost.failure_reason) == (GatewayEventType.DISPUTE_CLOSED, "dispute_lost")
    assert gateway.payment(paid.reference).dispute == "lost"
    with pytest.raises(ValidationError):
        gateway.close_dispute(paid.reference, won=True)
    gateway.open_dispute(paid.reference, "duplicate")
    won = gateway.close_dispute(paid.reference, won=True)
    assert won.failure_reason is None
    events = parse_all(gateway, gateway.take_webhooks(), START)
    assert [e.id for e in events] == [opened.id, lost.id, "test_evt_3", won.id]


def test_duplicated_and_reordered_deliveries_parse_to_the_same_events(
    gateway: TestGateway, clock: FrozenClock
) -> None:
    gateway.script(Pending(), Pending())
    refs = [gateway.create_payment(payment_request(f"k{n}")).reference for n in range(2)]
    for ref in refs:
        assert ref
        gateway.settle(ref)
    deliveries = gateway.take_webhooks()
    assert len(deliveries) == 2
    replayed = [deliveries[1], deliveries[0], deliveries[1]]
    clock.advance(seconds=299)  # late, but inside the tolerance
    ids = [e.id for e in parse_all(gateway, replayed, clock.now())]
    assert ids == ["test_evt_2", "test_evt_1", "test_evt_2"]
    clock.advance(seconds=2)
    with pytest.raises(InvalidToken, match="tolerance"):
        parse_all(gateway, replayed, clock.now())


def test_batched_delivery_and_webhook_for(gateway: TestGateway) -> None:
    paid = gateway.create_payment(payment_request())
    assert paid.reference
    gateway.open_dispute(paid.reference)
    gateway.close_dispute(paid.reference, won=True)
    [delivery] = gateway.take_webhooks(batch=True)
    assert delivery.event_ids == ("test_evt_1", "test_evt_2")
    with pytest.raises(ValueError, match="2 events"):
        _ = delivery.event_id
    assert parse_all(gateway, [delivery], START) == list(gateway.events)
    made = event_for("anything", event_id="evt_custom")
    delivery = gateway.webhook_for(made)
    assert delivery.event_id == "evt_custom"
    assert gateway.parse_webhook(delivery.body, delivery.headers, now=START) == [made]


def test_body_is_the_converter_json(gateway: TestGateway) -> None:
    import json

    made = event_for("pay_1")
    data = json.loads(gateway.webhook_for(made).body)
    assert data == {"events": [unstructure(made)]}
    assert structure(data["events"][0], GatewayEvent) == made


def test_unknown_event_types_are_skipped_and_bad_json_is_invalid(gateway: TestGateway) -> None:
    import json

    known = unstructure(event_for("pay_1"))
    unknown = {**known, "id": "evt_x", "type": "customer.updated"}
    body = json.dumps({"events": [unknown, known]}).encode()
    headers = {DEFAULT_SIGNATURE_HEADER: sign(body, "whsec_test", START)}
    assert gateway.parse_webhook(body, headers, now=START) == [event_for("pay_1")]
    for bad in [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"events": {}}',
        b'{"events": [1]}',
        json.dumps({"events": [{**known, "amount": "ten"}]}).encode(),
        json.dumps({"events": [{**known, "extra": 1}]}).encode(),
    ]:
        headers = {DEFAULT_SIGNATURE_HEADER: sign(bad, "whsec_test", START)}
        with pytest.raises(InvalidToken, match="signature is valid but"):
            gateway.parse_webhook(bad, headers, now=START)


def test_wrong_gateway_secret_is_refused(clock: FrozenClock) -> None:
    sender = TestGateway(secret="whsec_a", clock=clock)
    receiver = TestGateway(secret="whsec_b", clock=clock)
    delivery = sender.webhook_for(event_for("pay_1"))
    with pytest.raises(InvalidToken, match="does not match"):
        receiver.parse_webhook(delivery.body, delivery.headers, now=clock.now())


def test_no_webhooks_queued_without_the_capability(clock: FrozenClock) -> None:
    gateway = TestGateway(clock=clock, capabilities=GatewayCapabilities(one_time=True))
    gateway.script(Pending())
    ref = gateway.create_payment(payment_request()).reference
    assert ref
    gateway.settle(ref)
    assert gateway.take_webhooks() == []
    assert len(gateway.events) == 1


def test_inspection_and_reset(gateway: TestGateway) -> None:
    method = saved_method(gateway)
    gateway.charge_saved_method(charge(method, "r1", amount=500))
    gateway.create_payment(payment_request("free", amount=0))
    paid = gateway.create_payment(
        PaymentRequest("pur_2", Money(300, "USD"), "x", "a@example.com", "k_usd")
    )
    assert paid.reference
    gateway.refund(RefundRequest(paid.reference, Money(100, "USD"), "r", "re"))
    first, renewal = gateway.payments[:2]
    assert (first.method_reference, first.off_session) == (method, False)
    assert (renewal.method_reference, renewal.off_session, renewal.amount) == (
        method,
        True,
        eur(500),
    )
    assert renewal.refunded_amount == eur(0)
    assert gateway.charged() == {EUR: eur(1500), "USD": Money(200, "USD")}
    assert gateway.calls == {"create_payment": 3, "charge_saved_method": 1, "refund": 1}
    gateway.script(Decline())
    gateway.reset()
    assert (gateway.payments, gateway.refunds, gateway.events, gateway.calls) == ((), (), (), {})
    assert gateway.take_webhooks() == []
    result = gateway.create_payment(payment_request("first", save=True))
    assert (result.status, result.reference) == (PaymentStatus.SUCCEEDED, "test_pay_1")
    assert gateway.charge_saved_method(charge(method, "r1")).status is PaymentStatus.SUCCEEDED


def test_misuse_is_refused() -> None:
    with pytest.raises(ValidationError):
        TestGateway("")
    with pytest.raises(ValidationError):
        TestGateway(secret="")
    with pytest.raises(ValidationError):
        TestGateway(capabilities={"refunds": True})  # type: ignore[arg-type]
    gateway = TestGateway()
    with pytest.raises(ValidationError) as error:
        gateway.create_payment(payment_request(""))
    assert error.value.field == "idempotency_key"
    with pytest.raises(ValidationError):
        gateway.create_payment(payment_request(amount=-1))
    with pytest.raises(ValidationError):
        gateway.payment("nope")


def test_thread_safety_same_key_is_one_payment(gateway: TestGateway) -> None:
    many_threads = 16
    barrier = threading.Barrier(many_threads)
    results: list[PaymentResult] = []
    errors: list[BaseException] = []

    def pay() -> None:
        try:
            barrier.wait()
            for n in range(20):
                results.append(gateway.create_payment(payment_request(f"shared_{n}")))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pay) for _ in range(many_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == many_threads * 20
    assert len(gateway.payments) == 20
    assert len({r.reference for r in results}) == 20
    assert gateway.calls["create_payment"] == many_threads * 20
    assert gateway.charged() == {EUR: eur(20 * 1000)}


# -- scriptable delivery: duplicates, order, settling after a delay -----------------


def _three_settled(gateway: TestGateway) -> list[str]:
    gateway.script(Pending(), Pending(), Pending())
    refs = [gateway.create_payment(payment_request(f"k{n}")).reference for n in range(3)]
    for ref in refs:
        assert ref
        gateway.settle(ref)
    return [ref for ref in refs if ref]


def test_take_webhooks_duplicates_exactly_without_a_generator(gateway: TestGateway) -> None:
    _three_settled(gateway)
    deliveries = gateway.take_webhooks(duplicates=2)
    assert [d.event_id for d in deliveries] == [
        "test_evt_1",
        "test_evt_1",
        "test_evt_2",
        "test_evt_2",
        "test_evt_3",
        "test_evt_3",
    ]
    assert deliveries[0] == deliveries[1]
    assert gateway.take_webhooks(duplicates=3) == []


def test_take_webhooks_shuffles_and_duplicates_by_seed(gateway: TestGateway) -> None:
    import random

    orders = []
    for _ in range(2):
        gateway.reset()
        _three_settled(gateway)
        deliveries = gateway.take_webhooks(duplicates=5, shuffle=random.Random(7))
        orders.append([d.event_id for d in deliveries])
    assert orders[0] == orders[1], "the same seed must replay the same order"
    counts = collections.Counter(orders[0])
    assert set(counts) == {"test_evt_1", "test_evt_2", "test_evt_3"}
    assert all(1 <= n <= 5 for n in counts.values())
    seen = set()
    for seed in range(20):
        gateway.reset()
        _three_settled(gateway)
        seen.add(tuple(d.event_id for d in gateway.take_webhooks(shuffle=random.Random(seed))))
    assert len(seen) > 1, "shuffle never changed the order"
    assert all(sorted(order) == ["test_evt_1", "test_evt_2", "test_evt_3"] for order in seen)


def test_take_webhooks_batch_with_duplicates(gateway: TestGateway) -> None:
    _three_settled(gateway)
    deliveries = gateway.take_webhooks(batch=True, duplicates=2)
    assert [d.event_ids for d in deliveries] == [("test_evt_1", "test_evt_2", "test_evt_3")] * 2


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_take_webhooks_refuses_bad_duplicates(gateway: TestGateway, bad: Any) -> None:
    with pytest.raises(ValidationError, match="duplicates"):
        gateway.take_webhooks(duplicates=bad)


def test_take_webhooks_refuses_a_bad_generator(gateway: TestGateway) -> None:
    with pytest.raises(ValidationError, match="shuffle"):
        gateway.take_webhooks(shuffle=7)  # type: ignore[arg-type]


def test_settle_later_settles_when_the_clock_passes(
    gateway: TestGateway, clock: FrozenClock
) -> None:
    gateway.script(SettleLater(after=timedelta(hours=2)))
    result = gateway.create_payment(payment_request())
    assert result.status is PaymentStatus.PENDING
    assert result.reference
    assert gateway.take_webhooks() == []
    clock.advance(hours=1, minutes=59)
    assert gateway.payment(result.reference).status is PaymentStatus.PENDING
    assert gateway.take_webhooks() == []
    clock.advance(minutes=1)
    (delivery,) = gateway.take_webhooks()
    (event,) = gateway.parse_webhook(delivery.body, delivery.headers, now=clock.now())
    assert event.type is GatewayEventType.PAYMENT_SUCCEEDED
    assert event.payment_reference == result.reference
    assert event.occurred_at == START + timedelta(hours=2)
    assert gateway.payment(result.reference).status is PaymentStatus.SUCCEEDED
    assert gateway.charged() == {EUR: eur(1000)}
    assert gateway.take_webhooks() == [], "settles once"


def test_settle_later_at_an_instant_and_failing(gateway: TestGateway, clock: FrozenClock) -> None:
    method = saved_method(gateway)
    at = START + timedelta(days=3)
    gateway.script(SettleLater(at=at, succeed=False, reason="insufficient_funds"))
    renewal = gateway.charge_saved_method(charge(method, "pur_1:2:1"))
    assert renewal.status is PaymentStatus.PENDING
    assert renewal.reference
    clock.advance(days=5)  # late: settled at the instant, dated then
    (event,) = gateway.settle_due()
    assert (event.type, event.failure_reason) == (
        GatewayEventType.PAYMENT_FAILED,
        "insufficient_funds",
    )
    assert event.occurred_at == at
    assert gateway.payment(renewal.reference).decline_reason == "insufficient_funds"
    assert gateway.settle_due() == []
    assert len(gateway.take_webhooks()) == 1


def test_settle_later_can_still_be_settled_by_hand(
    gateway: TestGateway, clock: FrozenClock
) -> None:
    gateway.script(SettleLater(after=timedelta(days=1)))
    ref = gateway.create_payment(payment_request()).reference
    assert ref
    gateway.settle(ref, succeed=False)
    clock.advance(days=2)
    assert gateway.settle_due() == []
    assert gateway.payment(ref).status is PaymentStatus.DECLINED
    assert len(gateway.take_webhooks()) == 1


def test_settle_later_replays_by_key(gateway: TestGateway) -> None:
    gateway.script(SettleLater(after=timedelta(0)))
    first = gateway.create_payment(payment_request("same"))
    again = gateway.create_payment(payment_request("same"))
    assert again == first
    assert first.status is PaymentStatus.PENDING
    assert len(gateway.payments) == 1
    assert gateway.payments[0].status is PaymentStatus.SUCCEEDED  # due at once, settled on look


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"after": timedelta(hours=1), "at": START},
        {"after": timedelta(seconds=-1)},
        {"after": 60},
        {"at": datetime(2026, 1, 5)},
        {"after": timedelta(1), "reason": " "},
    ],
)
def test_settle_later_validates(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SettleLater(**options)


def test_settle_later_is_not_a_refund_outcome(gateway: TestGateway) -> None:
    with pytest.raises(ValidationError, match="script_refund"):
        gateway.script_refund(SettleLater(after=timedelta(1)))  # type: ignore[arg-type]


def test_deliver_webhooks_to_a_portal_once_in_effect() -> None:
    import random

    from membership_core import Money as PortalMoney
    from membership_core import OneTime, PurchaseStatus
    from membership_core.testing import make_test_portal

    with make_test_portal(default_gateway="test") as portal:
        course = portal.catalog.create_product("Course")
        part = portal.catalog.add_category(course.id, "Part")
        portal.catalog.add_lesson(course.id, part.id, "Lesson")
        portal.catalog.publish_product(course.id)
        offer = portal.offers.create_offer("Paid", [course.id], plan=OneTime(eur(4900)))
        portal.offers.publish(offer.id)
        portal.gateway.script(SettleLater(after=timedelta(days=2)), Pending())
        slow = portal.checkout.purchase(offer.id, email="slow@example.com")
        other = portal.checkout.purchase(offer.id, email="other@example.com")
        assert other.gateway_reference
        portal.gateway.settle(other.gateway_reference)
        receipts = portal.gateway.deliver_webhooks(portal, duplicates=4, shuffle=random.Random(3))
        assert sum(r.received for r in receipts) == 1
        assert sum(r.duplicates for r in receipts) == len(receipts) - 1
        assert portal.checkout.get(other.id).status is PurchaseStatus.PAID
        assert portal.checkout.get(slow.id).status is PurchaseStatus.PENDING
        portal.clock.advance(days=2)
        (receipt,) = portal.gateway.deliver_webhooks(portal)
        assert (receipt.received, receipt.applied) == (1, 1)
        assert portal.checkout.get(slow.id).status is PurchaseStatus.PAID
        assert portal.gateway.charged() == {EUR: PortalMoney.of("98", EUR)}
        assert portal.gateway.deliver_webhooks(portal) == []
