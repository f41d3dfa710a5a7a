"""A scriptable fake payment gateway for tests: :class:`TestGateway`.

It implements the :class:`~membership_core.ports.payments.PaymentGateway` port
in memory, moves no real money, and lets a test decide what happens next:

- :meth:`TestGateway.script` queues the outcomes of the next new payments
  (:class:`Succeed`, :class:`Decline`, :class:`ActionRequired`,
  :class:`Pending`, :class:`Raise`); without a script every payment succeeds.
- :meth:`TestGateway.decline_method` makes later off-session charges of a saved
  method fail ("the card expired before the renewal").
- :meth:`TestGateway.settle`, :meth:`TestGateway.settle_refund`,
  :meth:`TestGateway.open_dispute` and :meth:`TestGateway.close_dispute` play
  the provider's side later and queue signed webhooks.
- :class:`SettleLater` makes a payment ``PENDING`` that settles by itself once
  the gateway's clock (the portal's frozen clock) reaches a given instant.
- :meth:`TestGateway.take_webhooks` hands the queued webhooks to the test,
  which delivers them (once, twice, reordered, late) to the code under test;
  ``duplicates=`` and ``shuffle=`` make the gateway itself repeat and reorder
  them, and :meth:`TestGateway.deliver_webhooks` delivers them to a portal.
- :attr:`TestGateway.payments`, :attr:`TestGateway.refunds`,
  :attr:`TestGateway.calls` and :meth:`TestGateway.charged` are for assertions.

>>> from membership_core.domain.money import Money
>>> from membership_core.ports.payments import PaymentRequest
>>> gateway = TestGateway()
>>> gateway.script(Decline("insufficient_funds"))
>>> request = PaymentRequest("pur_1", Money(1000, "EUR"), "Course", "a@example.com", "key_1")
>>> gateway.create_payment(request).decline_reason
'insufficient_funds'
"""

from __future__ import annotations

import collections
import json
import random
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from ..adapters.clock import SystemClock
from ..adapters.webhooks import DEFAULT_SIGNATURE_HEADER, WebhookVerifier, sign
from ..domain.money import Money
from ..errors import InvalidToken, ValidationError
from ..ports.clock import Clock
from ..ports.payments import (
    GatewayCapabilities,
    GatewayEvent,
    GatewayEventType,
    OffSessionCharge,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    RefundRequest,
    RefundResult,
    RefundStatus,
)
from ..serialization import structure, unstructure

if TYPE_CHECKING:
    from ..portal import Portal
    from ..services.payments import WebhookReceipt

__all__ = [
    "ActionRequired",
    "Decline",
    "Outcome",
    "Pending",
    "Raise",
    "RecordedPayment",
    "RecordedRefund",
    "SettleLater",
    "Succeed",
    "TestGateway",
    "WebhookDelivery",
]


def _non_empty(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(attribute.name, f"must be a non-empty string, not {value!r}")


def _optional_non_empty(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        _non_empty(instance, attribute, value)


def _exception(_instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, BaseException):
        return
    if isinstance(value, type) and issubclass(value, BaseException):
        return
    raise ValidationError(attribute.name, f"must be an exception or exception class, not {value!r}")


# -- scripted outcomes -----------------------------------------------------------


@attrs.frozen
class Succeed:
    """The next payment (or refund) succeeds at once."""


@attrs.frozen
class Decline:
    """The next payment is ``DECLINED`` with ``reason`` (a refund ``FAILED`` with it)."""

    reason: str = attrs.field(default="card_declined", validator=_non_empty)


@attrs.frozen
class ActionRequired:
    """The next payment needs the buyer at ``url`` (a made-up URL when ``None``).

    The payment stays ``ACTION_REQUIRED`` until :meth:`TestGateway.settle`.
    """

    url: str | None = attrs.field(default=None, validator=_optional_non_empty)


@attrs.frozen
class Pending:
    """The next payment (or refund) is ``PENDING`` until the test settles it.

    Settle a payment with :meth:`TestGateway.settle` (success or failure) and
    a refund with :meth:`TestGateway.settle_refund`.
    """


@attrs.frozen
class Raise:
    """The next call raises ``exception``: an outcome the caller cannot know.

    Models a timeout or the provider being down. Nothing is recorded (no
    payment, no idempotency key), so a retry with the same key is a new call
    and gets the next scripted outcome.
    """

    exception: BaseException | type[BaseException] = attrs.field(validator=_exception)


def _delay(_instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if attribute.name == "after" and (not isinstance(value, timedelta) or value < timedelta(0)):
        raise ValidationError("after", f"must be a non-negative timedelta, not {value!r}")
    if attribute.name == "at" and (not isinstance(value, datetime) or value.tzinfo is None):
        raise ValidationError("at", f"must be a timezone-aware datetime, not {value!r}")


@attrs.frozen
class SettleLater:
    """The next payment is ``PENDING`` and settles by itself later, on the gateway's clock.

    Give ``after`` (a ``timedelta`` from the payment) or ``at`` (an aware
    datetime), not both. Once the gateway's clock (the portal's frozen clock
    in a test portal) has reached that instant, the next call to the gateway
    (:meth:`TestGateway.take_webhooks`, :meth:`TestGateway.deliver_webhooks`,
    :meth:`TestGateway.settle_due`, a port method or an inspection) settles
    it: ``SUCCEEDED``, or ``DECLINED`` with ``reason`` when ``succeed`` is
    false, and queues its webhook dated at the settling instant. Until then
    :meth:`TestGateway.settle` can still settle it by hand.
    """

    after: timedelta | None = attrs.field(default=None, validator=_delay)
    at: datetime | None = attrs.field(default=None, validator=_delay)
    succeed: bool = True
    reason: str | None = attrs.field(default=None, validator=_optional_non_empty)

    def __attrs_post_init__(self) -> None:
        if (self.after is None) == (self.at is None):
            raise ValidationError("after", "give exactly one of after= or at=")


#: Anything :meth:`TestGateway.script` accepts.
Outcome: TypeAlias = Succeed | Decline | ActionRequired | Pending | Raise | SettleLater

_PAYMENT_OUTCOMES = (Succeed, Decline, ActionRequired, Pending, Raise, SettleLater)
_REFUND_OUTCOMES = (Succeed, Decline, Pending, Raise)

#: The reason given when a cancelled payment method is charged.
CANCELLED_REASON = "payment_method_cancelled"

#: The reason given when a payment method this gateway never saved is charged.
UNKNOWN_METHOD_REASON = "unknown_payment_method"


# -- records for assertions ------------------------------------------------------


@attrs.frozen
class RecordedPayment:
    """A payment as the test gateway holds it (a snapshot; later changes make a new one).

    ``off_session`` tells :meth:`~TestGateway.charge_saved_method` charges from
    :meth:`~TestGateway.create_payment` ones. ``method_reference`` is the
    method saved by (or charged in) this payment. ``refunded`` is the total
    of its succeeded refunds. ``dispute`` is ``None``, ``"open"``, ``"won"``
    or ``"lost"``.
    """

    reference: str
    idempotency_key: str
    purchase_id: str
    amount: Money
    status: PaymentStatus
    off_session: bool = False
    method_reference: str | None = None
    decline_reason: str | None = None
    action_url: str | None = None
    refunded: Money | None = None
    dispute: str | None = None

    @property
    def refunded_amount(self) -> Money:
        """The refunded total, zero in the payment's currency when nothing was."""
        return self.refunded if self.refunded is not None else Money.zero(self.amount.currency)


@attrs.frozen
class RecordedRefund:
    """A refund the test gateway accepted (``SUCCEEDED``, ``PENDING``, or ``FAILED`` later)."""

    reference: str
    idempotency_key: str
    payment_reference: str
    amount: Money
    status: RefundStatus
    reason: str
    failure_reason: str | None = None


@attrs.frozen
class WebhookDelivery:
    """One signed webhook request, as the provider would send it.

    Hand ``body`` and ``headers`` to the code that receives webhooks (they go
    to :meth:`TestGateway.parse_webhook` unchanged). ``event_ids`` lists the
    events in the body; :attr:`event_id` is the only one for a single-event
    delivery.
    """

    body: bytes
    headers: dict[str, str] = attrs.field(eq=True, hash=False)
    event_ids: tuple[str, ...]

    @property
    def event_id(self) -> str:
        """The id of the delivery's event (``ValueError`` if it carries several)."""
        if len(self.event_ids) != 1:
            raise ValueError(f"this delivery carries {len(self.event_ids)} events; use event_ids")
        return self.event_ids[0]


# -- the gateway -----------------------------------------------------------------

_DEFAULT_CAPABILITIES = GatewayCapabilities(
    one_time=True, off_session=True, refunds=True, partial_refunds=True, webhooks=True
)


@attrs.frozen
class _Stored:
    """What an idempotency key was used for, and the answer it got."""

    fingerprint: tuple[tuple[str, object], ...]
    result: Any


class TestGateway:
    """An in-memory, scriptable :class:`~membership_core.ports.payments.PaymentGateway`.

    ``name`` prefixes every reference (``test_pay_1``, ``test_pm_1``,
    ``test_re_1``, ``test_evt_1``). ``secret`` signs its webhooks (checked by
    :meth:`parse_webhook`). ``clock`` (anything with ``now()``; the system
    clock by default) dates events and signatures: pass the portal's frozen
    clock so webhooks stay inside the 300 s tolerance. ``capabilities``
    default to one-time, off-session, refunds, partial refunds and webhooks;
    a method outside them raises
    :class:`~membership_core.errors.ConfigurationError`.

    Behaviour:

    - Payments succeed unless :meth:`script` says otherwise. Scripted outcomes
      are used one per *new* idempotency key, in call order, by
      :meth:`create_payment` and :meth:`charge_saved_method` alike.
    - The same idempotency key returns the very same result and never moves
      money again; reusing it for a different request (another amount,
      purchase or method) raises ``ValidationError("idempotency_key", ...)``.
    - An off-session charge of a method that was cancelled (:meth:`cancel`),
      declined (:meth:`decline_method`) or never saved here is ``DECLINED``
      without using a scripted outcome.
    - Webhooks are queued only when ``capabilities.webhooks`` is set.

    All methods are thread-safe (one lock guards the state).

    >>> from datetime import UTC, datetime
    >>> from membership_core.adapters.clock import FrozenClock
    >>> from membership_core.domain.money import Money
    >>> from membership_core.ports.payments import OffSessionCharge, PaymentRequest
    >>> clock = FrozenClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    >>> gateway = TestGateway(clock=clock)
    >>> first = gateway.create_payment(PaymentRequest(
    ...     "pur_1", Money(1000, "EUR"), "Course", "a@example.com", "pur_1:1", save_method=True))
    >>> first.status.value, first.reference, first.method_reference
    ('succeeded', 'test_pay_1', 'test_pm_1')
    >>> gateway.script(Pending())
    >>> renewal = gateway.charge_saved_method(OffSessionCharge(
    ...     "pur_1", Money(1000, "EUR"), "test_pm_1", "Renewal", "pur_1:2"))
    >>> renewal.status.value
    'pending'
    >>> _ = gateway.settle("test_pay_2", succeed=False, reason="insufficient_funds")
    >>> [delivery] = gateway.take_webhooks()
    >>> [event] = gateway.parse_webhook(delivery.body, delivery.headers, now=clock.now())
    >>> event.type.value, event.payment_reference, event.failure_reason
    ('payment_failed', 'test_pay_2', 'insufficient_funds')
    >>> gateway.charged()
    {'EUR': Money(amount=1000, currency='EUR')}
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self,
        name: str = "test",
        *,
        secret: str = "whsec_test",  # noqa: S107 (a test secret, not a credential)
        clock: Clock | None = None,
        capabilities: GatewayCapabilities | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("name", f"must be a non-empty string, not {name!r}")
        if capabilities is not None and not isinstance(capabilities, GatewayCapabilities):
            raise ValidationError(
                "capabilities",
                f"must be GatewayCapabilities, not {type(capabilities).__name__}",
            )
        self._name = name.strip()
        self._secret = secret
        self._verifier = WebhookVerifier(secret)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._capabilities = capabilities if capabilities is not None else _DEFAULT_CAPABILITIES
        self._lock = threading.RLock()
        self._reset_state()

    def _reset_state(self) -> None:
        self._payments: dict[str, RecordedPayment] = {}
        self._refunds: dict[str, RecordedRefund] = {}
        self._payment_keys: dict[str, _Stored] = {}
        self._refund_keys: dict[str, _Stored] = {}
        self._script: collections.deque[Outcome] = collections.deque()
        self._refund_script: collections.deque[Outcome] = collections.deque()
        self._methods: set[str] = set()
        self._declined_methods: dict[str, str] = {}
        self._cancelled: list[str] = []
        self._events: list[GatewayEvent] = []
        self._queue: list[GatewayEvent] = []
        #: Payments scripted with SettleLater: reference -> (when, outcome).
        self._later: dict[str, tuple[datetime, SettleLater]] = {}
        self._calls: collections.Counter[str] = collections.Counter()
        self._counters: collections.Counter[str] = collections.Counter()

    # -- the port ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The gateway's name (``"test"`` unless given), also the prefix of its references."""
        return self._name

    @property
    def capabilities(self) -> GatewayCapabilities:
        """What this gateway declares; fixed for its lifetime."""
        return self._capabilities

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        """Take a payment; the outcome is the next scripted one, or success.

        With ``request.save_method`` (needs ``off_session``) a method is saved
        and returned as ``method_reference``, unless the payment is declined.
        """
        with self._lock:
            self._calls["create_payment"] += 1
            self._settle_due()
            if not isinstance(request, PaymentRequest):
                raise ValidationError("request", "must be a PaymentRequest")
            if request.save_method:
                self._capabilities.require("off_session", gateway=self._name)
            else:
                self._capabilities.require("one_time", gateway=self._name)
            _check_amount(request.amount)
            _check_key(request.idempotency_key)
            fingerprint = (
                ("operation", "create_payment"),
                ("purchase_id", request.purchase_id),
                ("amount", request.amount),
                ("save_method", request.save_method),
            )
            replay = self._replay(self._payment_keys, request.idempotency_key, fingerprint)
            if replay is not None:
                result: PaymentResult = replay
                return result
            outcome = self._next(self._script)
            result = self._take(
                request.idempotency_key,
                request.purchase_id,
                request.amount,
                outcome,
                save_method=request.save_method,
            )
            self._payment_keys[request.idempotency_key] = _Stored(fingerprint, result)
            return result

    def charge_saved_method(self, request: OffSessionCharge) -> PaymentResult:
        """Charge a saved method (needs ``off_session``); scripted outcome, or success.

        A cancelled method is declined with ``"payment_method_cancelled"``, one
        given to :meth:`decline_method` with its reason, and one this gateway
        never saved with ``"unknown_payment_method"``.
        """
        with self._lock:
            self._calls["charge_saved_method"] += 1
            self._settle_due()
            self._capabilities.require("off_session", gateway=self._name)
            if not isinstance(request, OffSessionCharge):
                raise ValidationError("request", "must be an OffSessionCharge")
            fingerprint = (
                ("operation", "charge_saved_method"),
                ("purchase_id", request.purchase_id),
                ("amount", request.amount),
                ("method_reference", request.method_reference),
            )
            replay = self._replay(self._payment_keys, request.idempotency_key, fingerprint)
            if replay is not None:
                result: PaymentResult = replay
                return result
            method = request.method_reference
            outcome: Outcome
            if method in self._cancelled:
                outcome = Decline(CANCELLED_REASON)
            elif method in self._declined_methods:
                outcome = Decline(self._declined_methods[method])
            elif method not in self._methods:
                outcome = Decline(UNKNOWN_METHOD_REASON)
            else:
                outcome = self._next(self._script)
            result = self._take(
                request.idempotency_key,
                request.purchase_id,
                request.amount,
                outcome,
                charged_method=method,
            )
            self._payment_keys[request.idempotency_key] = _Stored(fingerprint, result)
            return result

    def refund(self, request: RefundRequest) -> RefundResult:
        """Refund (part of) a succeeded payment (needs ``refunds``; less needs ``partial_refunds``).

        At most the payment's remaining refundable amount (its amount minus
        succeeded and pending refunds) is refunded; more, or an unknown or
        unpaid payment, is a ``FAILED`` result. The next outcome from
        :meth:`script_refund` applies (success by default); a succeeded refund
        queues a ``refund_succeeded`` webhook.
        """
        with self._lock:
            self._calls["refund"] += 1
            self._settle_due()
            self._capabilities.require("refunds", gateway=self._name)
            if not isinstance(request, RefundRequest):
                raise ValidationError("request", "must be a RefundRequest")
            fingerprint = (
                ("payment_reference", request.payment_reference),
                ("amount", request.amount),
            )
            replay = self._replay(self._refund_keys, request.idempotency_key, fingerprint)
            if replay is not None:
                answer: RefundResult = replay
                return answer
            answer = self._refund(request)
            self._refund_keys[request.idempotency_key] = _Stored(fingerprint, answer)
            return answer

    def cancel(self, reference: str) -> None:
        """Stop charging ``reference`` (a saved method or subscription reference).

        Later off-session charges of it are declined with
        ``"payment_method_cancelled"``. Cancelling something unknown, or
        twice, changes nothing; every reference is listed in
        :attr:`cancelled` so a test can assert the call happened.
        """
        with self._lock:
            self._calls["cancel"] += 1
            if reference not in self._cancelled:
                self._cancelled.append(reference)

    def parse_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime
    ) -> list[GatewayEvent]:
        """Verify a webhook signed with this gateway's secret, then return its events.

        Raises :class:`~membership_core.errors.InvalidToken` for a missing,
        malformed or wrong signature, a timestamp more than 300 s from
        ``now``, or a validly signed body that is not this gateway's JSON.
        Events of a type the port does not know are skipped.
        """
        with self._lock:
            self._calls["parse_webhook"] += 1
            self._settle_due()
        self._capabilities.require("webhooks", gateway=self._name)
        self._verifier.verify(body, headers, now=now)
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidToken(
                f"webhook signature is valid but the body is not JSON: {exc}"
            ) from None
        items = data.get("events") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise InvalidToken(
                'webhook signature is valid but the body is malformed: expected {"events": [...]}'
            )
        known = {member.value for member in GatewayEventType}
        events = []
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidToken(
                    f"webhook signature is valid but the body is malformed: "
                    f"event {position} is not an object"
                )
            if item.get("type") not in known:
                continue
            try:
                events.append(structure(item, GatewayEvent))
            except ValidationError as exc:
                raise InvalidToken(
                    f"webhook signature is valid but the body is malformed: event {position}: {exc}"
                ) from None
        return events

    # -- scripting -----------------------------------------------------------------

    def script(self, *outcomes: Outcome) -> None:
        """Queue what the next new payments do, in call order (both payment methods).

        ``gateway.script(Decline("card_declined"), ActionRequired(), Pending(),
        Succeed(), Raise(TimeoutError("provider timed out")),
        SettleLater(after=timedelta(days=2)))``. Once the queue is empty,
        payments succeed again.
        """
        checked = _outcomes(outcomes, _PAYMENT_OUTCOMES, "script")
        with self._lock:
            self._script.extend(checked)

    def script_refund(self, *outcomes: Outcome) -> None:
        """Queue what the next new refunds do: :class:`Succeed`, :class:`Pending`,
        :class:`Decline` (a ``FAILED`` refund with its reason) or :class:`Raise`."""
        checked = _outcomes(outcomes, _REFUND_OUTCOMES, "script_refund")
        with self._lock:
            self._refund_script.extend(checked)

    def decline_method(self, method_reference: str, reason: str = "expired_card") -> None:
        """Decline every later off-session charge of ``method_reference`` with ``reason``."""
        if not isinstance(reason, str) or not reason.strip():
            raise ValidationError("reason", f"must be a non-empty string, not {reason!r}")
        with self._lock:
            self._declined_methods[method_reference] = reason

    # -- the provider's side, played by the test -----------------------------------

    def settle(
        self, reference: str, *, succeed: bool = True, reason: str | None = None
    ) -> GatewayEvent:
        """Settle a ``PENDING`` or ``ACTION_REQUIRED`` payment; queue its webhook.

        Success makes it ``SUCCEEDED`` and queues ``payment_succeeded``;
        failure makes it ``DECLINED`` with ``reason`` (``"payment_failed"`` by
        default) and queues ``payment_failed``. Returns the event.
        """
        with self._lock:
            self._settle_due()
            payment = self._payment(reference)
            if payment.status not in (PaymentStatus.PENDING, PaymentStatus.ACTION_REQUIRED):
                raise ValidationError(
                    "reference",
                    f"payment {reference!r} is {payment.status.value}; only pending or "
                    "action-required payments can be settled",
                )
            return self._settled(payment, succeed, reason)

    def settle_due(self) -> list[GatewayEvent]:
        """Settle every :class:`SettleLater` payment whose instant the clock has reached.

        Returns their events (queued as webhooks), oldest instant first. Every
        other entry point calls it first, so a test rarely needs it.
        """
        with self._lock:
            return self._settle_due()

    def settle_refund(
        self, reference: str, *, succeed: bool = True, reason: str | None = None
    ) -> GatewayEvent | None:
        """Settle a ``PENDING`` refund.

        Success makes it ``SUCCEEDED``, counts it as refunded and queues
        ``refund_succeeded`` (returned). Failure makes it ``FAILED`` and frees
        its amount again; the port has no event for that, so nothing is
        queued and ``None`` is returned.
        """
        with self._lock:
            refund = self._refunds.get(reference)
            if refund is None:
                raise ValidationError("reference", f"no refund {reference!r} at this gateway")
            if refund.status is not RefundStatus.PENDING:
                raise ValidationError(
                    "reference", f"refund {reference!r} is {refund.status.value}, not pending"
                )
            if not succeed:
                why = reason if reason is not None else "refund_failed"
                self._refunds[reference] = attrs.evolve(
                    refund, status=RefundStatus.FAILED, failure_reason=why
                )
                return None
            self._refunds[reference] = attrs.evolve(refund, status=RefundStatus.SUCCEEDED)
            return self._refunded(self._refunds[reference])

    def open_dispute(self, payment_reference: str, reason: str = "fraudulent") -> GatewayEvent:
        """The buyer disputes a payment: queue ``dispute_opened`` (``failure_reason=reason``)."""
        with self._lock:
            payment = self._payment(payment_reference)
            self._payments[payment_reference] = attrs.evolve(payment, dispute="open")
            return self._event(
                GatewayEventType.DISPUTE_OPENED,
                payment.reference,
                payment.amount,
                purchase_id=payment.purchase_id,
                failure_reason=reason,
            )

    def close_dispute(
        self, payment_reference: str, won: bool, reason: str | None = None
    ) -> GatewayEvent:
        """Close a payment's dispute: queue ``dispute_closed``.

        ``failure_reason`` is ``None`` when the merchant ``won``, otherwise
        ``reason`` (``"dispute_lost"`` by default). :meth:`charged` does not
        change: it counts succeeded payments minus refunds only.
        """
        with self._lock:
            payment = self._payment(payment_reference)
            if payment.dispute != "open":
                raise ValidationError(
                    "payment_reference", f"payment {payment_reference!r} has no open dispute"
                )
            outcome = "won" if won else "lost"
            self._payments[payment_reference] = attrs.evolve(payment, dispute=outcome)
            return self._event(
                GatewayEventType.DISPUTE_CLOSED,
                payment.reference,
                payment.amount,
                purchase_id=payment.purchase_id,
                failure_reason=None if won else (reason or "dispute_lost"),
            )

    # -- webhooks ------------------------------------------------------------------

    def take_webhooks(
        self,
        *,
        batch: bool = False,
        duplicates: int = 1,
        shuffle: random.Random | None = None,
    ) -> list[WebhookDelivery]:
        """Return the queued webhooks, signed now, and empty the queue.

        One event per delivery, in the order they happened; ``batch=True``
        puts them all in one delivery instead (``[]`` when nothing is queued).
        :class:`SettleLater` payments that are due settle first.

        The provider's bad habits, on request:

        - ``duplicates=n`` repeats each delivery: exactly ``n`` times, or,
          with ``shuffle``, a random 1 to ``n`` times each;
        - ``shuffle=random.Random(seed)`` returns the deliveries (copies
          included) in a random order drawn from that generator, so a seed
          replays the same order.
        """
        if isinstance(duplicates, bool) or not isinstance(duplicates, int) or duplicates < 1:
            raise ValidationError("duplicates", f"must be an int >= 1, not {duplicates!r}")
        if shuffle is not None and not isinstance(shuffle, random.Random):
            raise ValidationError("shuffle", f"must be a random.Random, not {shuffle!r}")
        with self._lock:
            self._settle_due()
            queued, self._queue = self._queue, []
            if not queued:
                return []
            if batch:
                deliveries = [self._deliver(queued)]
            else:
                deliveries = [self._deliver([event]) for event in queued]
        copies = [
            delivery
            for delivery in deliveries
            for _ in range(duplicates if shuffle is None else shuffle.randint(1, duplicates))
        ]
        if shuffle is not None:
            shuffle.shuffle(copies)
        return copies

    def deliver_webhooks(
        self,
        portal: Portal,
        *,
        batch: bool = False,
        duplicates: int = 1,
        shuffle: random.Random | None = None,
    ) -> list[WebhookReceipt]:
        """Take the queued webhooks (as :meth:`take_webhooks`) and deliver them to ``portal``.

        Each delivery goes to ``portal.payments.handle_webhook`` under this
        gateway's name, as the host's webhook endpoint would pass it; the
        receipts come back in delivery order. A redelivered event shows as a
        duplicate in its receipt.
        """
        return [
            portal.payments.handle_webhook(self._name, delivery.body, delivery.headers)
            for delivery in self.take_webhooks(batch=batch, duplicates=duplicates, shuffle=shuffle)
        ]

    def webhook_for(self, *events: GatewayEvent) -> WebhookDelivery:
        """Sign any event(s) as one delivery, e.g. a hand-made or redelivered event."""
        if not events or not all(isinstance(event, GatewayEvent) for event in events):
            raise ValidationError("events", "give at least one GatewayEvent")
        with self._lock:
            return self._deliver(list(events))

    # -- inspection ----------------------------------------------------------------

    @property
    def payments(self) -> tuple[RecordedPayment, ...]:
        """Every payment taken (including declined ones), oldest first."""
        with self._lock:
            self._settle_due()
            return tuple(self._payments.values())

    @property
    def refunds(self) -> tuple[RecordedRefund, ...]:
        """Every refund accepted (succeeded, pending or failed after pending), oldest first."""
        with self._lock:
            return tuple(self._refunds.values())

    @property
    def events(self) -> tuple[GatewayEvent, ...]:
        """Every event this gateway has emitted, delivered or not, oldest first."""
        with self._lock:
            self._settle_due()
            return tuple(self._events)

    @property
    def cancelled(self) -> tuple[str, ...]:
        """Every reference passed to :meth:`cancel`, once each, in call order."""
        with self._lock:
            return tuple(self._cancelled)

    @property
    def calls(self) -> collections.Counter[str]:
        """How often each port method was called (replays and raised calls included)."""
        with self._lock:
            return collections.Counter(self._calls)

    def payment(self, reference: str) -> RecordedPayment:
        """The payment ``reference`` (``ValidationError`` if there is none)."""
        with self._lock:
            self._settle_due()
            return self._payment(reference)

    def charged(self) -> dict[str, Money]:
        """Money kept per currency: succeeded payments minus their succeeded refunds."""
        with self._lock:
            self._settle_due()
            totals: dict[str, Money] = {}
            for payment in self._payments.values():
                if payment.status is PaymentStatus.SUCCEEDED:
                    currency = payment.amount.currency
                    kept = payment.amount - payment.refunded_amount
                    totals[currency] = totals.get(currency, Money.zero(currency)) + kept
            return totals

    def reset(self) -> None:
        """Forget every payment, refund, key, script, method, event and count."""
        with self._lock:
            self._reset_state()

    # -- internals (called with the lock held) ---------------------------------------

    def _next_id(self, kind: str) -> str:
        self._counters[kind] += 1
        return f"{self._name}_{kind}_{self._counters[kind]}"

    @staticmethod
    def _next(queue: collections.deque[Outcome]) -> Outcome:
        outcome = queue.popleft() if queue else Succeed()
        if isinstance(outcome, Raise):
            raise outcome.exception
        return outcome

    @staticmethod
    def _replay(
        store: dict[str, _Stored], key: str, fingerprint: tuple[tuple[str, object], ...]
    ) -> Any:
        _check_key(key)
        stored = store.get(key)
        if stored is None:
            return None
        if stored.fingerprint != fingerprint:
            before, now = dict(stored.fingerprint), dict(fingerprint)
            changes = ", ".join(
                f"{field} {before.get(field)!s} then {now.get(field)!s}"
                for field in sorted(set(before) | set(now))
                if before.get(field) != now.get(field)
            )
            raise ValidationError(
                "idempotency_key",
                f"{key!r} was already used for a different request ({changes})",
            )
        return stored.result

    def _take(
        self,
        key: str,
        purchase_id: str,
        amount: Money,
        outcome: Outcome,
        *,
        save_method: bool = False,
        charged_method: str | None = None,
    ) -> PaymentResult:
        reference = self._next_id("pay")
        status = PaymentStatus.SUCCEEDED
        decline_reason = action_url = None
        if isinstance(outcome, Decline):
            status, decline_reason = PaymentStatus.DECLINED, outcome.reason
        elif isinstance(outcome, ActionRequired):
            status = PaymentStatus.ACTION_REQUIRED
            action_url = (
                outcome.url or f"https://gateway.test/{self._name}/authenticate/{reference}"
            )
        elif isinstance(outcome, Pending):
            status = PaymentStatus.PENDING
        elif isinstance(outcome, SettleLater):
            status = PaymentStatus.PENDING
            if outcome.at is not None:
                due = outcome.at
            else:
                assert outcome.after is not None  # SettleLater checks one is given
                due = self._clock.now() + outcome.after
            self._later[reference] = (due, outcome)
        saved = None
        if save_method and status is not PaymentStatus.DECLINED:
            saved = self._next_id("pm")
            self._methods.add(saved)
        self._payments[reference] = RecordedPayment(
            reference=reference,
            idempotency_key=key,
            purchase_id=purchase_id,
            amount=amount,
            status=status,
            off_session=charged_method is not None,
            method_reference=saved if charged_method is None else charged_method,
            decline_reason=decline_reason,
            action_url=action_url,
        )
        return PaymentResult(
            status,
            amount,
            reference=reference,
            decline_reason=decline_reason,
            action_url=action_url,
            method_reference=saved,
        )

    def _refund(self, request: RefundRequest) -> RefundResult:
        amount = request.amount
        payment = self._payments.get(request.payment_reference)
        if payment is None:
            return RefundResult(
                RefundStatus.FAILED,
                amount,
                failure_reason=f"no payment {request.payment_reference!r} at this gateway",
            )
        if amount.currency != payment.amount.currency:
            raise ValidationError(
                "amount",
                f"is in {amount.currency} but payment {payment.reference!r} "
                f"was in {payment.amount.currency}",
            )
        if amount < payment.amount:
            self._capabilities.require("partial_refunds", gateway=self._name)
        if payment.status is not PaymentStatus.SUCCEEDED:
            return RefundResult(
                RefundStatus.FAILED,
                amount,
                failure_reason=f"payment {payment.reference!r} is {payment.status.value}, "
                "only succeeded payments can be refunded",
            )
        reserved = sum(
            (
                refund.amount
                for refund in self._refunds.values()
                if refund.payment_reference == payment.reference
                and refund.status is not RefundStatus.FAILED
            ),
            Money.zero(amount.currency),
        )
        remaining = payment.amount - reserved
        if amount > remaining:
            return RefundResult(
                RefundStatus.FAILED,
                amount,
                failure_reason=f"amount {amount} is more than the {remaining} "
                f"still refundable on payment {payment.reference!r}",
            )
        outcome = self._next(self._refund_script)
        if isinstance(outcome, Decline):
            return RefundResult(RefundStatus.FAILED, amount, failure_reason=outcome.reason)
        reference = self._next_id("re")
        status = RefundStatus.PENDING if isinstance(outcome, Pending) else RefundStatus.SUCCEEDED
        refund = RecordedRefund(
            reference=reference,
            idempotency_key=request.idempotency_key,
            payment_reference=payment.reference,
            amount=amount,
            status=status,
            reason=request.reason,
        )
        self._refunds[reference] = refund
        if status is RefundStatus.SUCCEEDED:
            self._refunded(refund)
        return RefundResult(status, amount, reference=reference)

    def _refunded(self, refund: RecordedRefund) -> GatewayEvent:
        """Count a succeeded refund against its payment and queue its event."""
        payment = self._payments[refund.payment_reference]
        self._payments[payment.reference] = attrs.evolve(
            payment, refunded=payment.refunded_amount + refund.amount
        )
        return self._event(
            GatewayEventType.REFUND_SUCCEEDED,
            payment.reference,
            refund.amount,
            purchase_id=payment.purchase_id,
            refund_reference=refund.reference,
        )

    def _settled(
        self,
        payment: RecordedPayment,
        succeed: bool,
        reason: str | None,
        occurred_at: datetime | None = None,
    ) -> GatewayEvent:
        """Settle a waiting payment one way or the other and queue its event."""
        self._later.pop(payment.reference, None)
        if succeed:
            payment = attrs.evolve(payment, status=PaymentStatus.SUCCEEDED)
            event = self._event(
                GatewayEventType.PAYMENT_SUCCEEDED,
                payment.reference,
                payment.amount,
                purchase_id=payment.purchase_id,
                occurred_at=occurred_at,
            )
        else:
            why = reason if reason is not None else "payment_failed"
            payment = attrs.evolve(payment, status=PaymentStatus.DECLINED, decline_reason=why)
            event = self._event(
                GatewayEventType.PAYMENT_FAILED,
                payment.reference,
                payment.amount,
                purchase_id=payment.purchase_id,
                failure_reason=why,
                occurred_at=occurred_at,
            )
        self._payments[payment.reference] = payment
        return event

    def _settle_due(self) -> list[GatewayEvent]:
        if not self._later:
            return []
        now = self._clock.now()
        due = sorted(
            ((at, reference, later) for reference, (at, later) in self._later.items() if at <= now),
            key=lambda item: (item[0], item[1]),
        )
        return [
            self._settled(self._payments[reference], later.succeed, later.reason, at)
            for at, reference, later in due
        ]

    def _payment(self, reference: str) -> RecordedPayment:
        payment = self._payments.get(reference)
        if payment is None:
            raise ValidationError("reference", f"no payment {reference!r} at this gateway")
        return payment

    def _event(
        self,
        type_: GatewayEventType,
        payment_reference: str,
        amount: Money | None,
        *,
        purchase_id: str | None = None,
        failure_reason: str | None = None,
        refund_reference: str | None = None,
        occurred_at: datetime | None = None,
    ) -> GatewayEvent:
        event = GatewayEvent(
            id=self._next_id("evt"),
            type=type_,
            payment_reference=payment_reference,
            amount=amount,
            occurred_at=occurred_at if occurred_at is not None else self._clock.now(),
            purchase_id=purchase_id,
            failure_reason=failure_reason,
            refund_reference=refund_reference,
        )
        self._events.append(event)
        if self._capabilities.webhooks:
            self._queue.append(event)
        return event

    def _deliver(self, events: list[GatewayEvent]) -> WebhookDelivery:
        body = json.dumps({"events": unstructure(events)}, sort_keys=True).encode("utf-8")
        header = sign(body, self._secret, self._clock.now())
        return WebhookDelivery(
            body=body,
            headers={DEFAULT_SIGNATURE_HEADER: header, "Content-Type": "application/json"},
            event_ids=tuple(event.id for event in events),
        )


def _check_amount(amount: object) -> None:
    if not isinstance(amount, Money):
        raise ValidationError("amount", f"must be Money, not {type(amount).__name__}")
    if amount.amount < 0:
        raise ValidationError("amount", f"must not be negative, got {amount}")


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key.strip():
        raise ValidationError("idempotency_key", f"must be a non-empty string, not {key!r}")


def _outcomes(
    outcomes: tuple[Outcome, ...], allowed: tuple[type[Any], ...], method: str
) -> list[Outcome]:
    for outcome in outcomes:
        if not isinstance(outcome, allowed):
            names = ", ".join(kind.__name__ + "()" for kind in allowed)
            raise ValidationError("outcomes", f"{method} takes {names}; got {outcome!r}")
    return list(outcomes)
