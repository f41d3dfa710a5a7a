"""The payment gateway port.

A gateway moves money; the library owns every state transition. A gateway
answers a request with a result value (:class:`PaymentResult`,
:class:`RefundResult`, a list of :class:`GatewayEvent`) and never touches the
library's storage. Gateways declare what they can do in
:class:`GatewayCapabilities`, and the library checks a capability *before*
calling the method that needs it, so a missing feature is a clear
:class:`~membership_core.errors.ConfigurationError` at wiring or checkout time
instead of a ``NotImplementedError`` discovered at refund time.

>>> caps = GatewayCapabilities(refunds=True)
>>> caps.supports("refunds"), caps.supports("partial_refunds")
(True, False)
>>> caps.require("partial_refunds", gateway="toy")
Traceback (most recent call last):
...
membership_core.errors.ConfigurationError: gateway 'toy' does not support partial refunds ...
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Protocol, get_args

import attrs

from ..domain.money import Money
from ..errors import ConfigurationError, ValidationError

__all__ = [
    "CAPABILITY_NAMES",
    "Capability",
    "GatewayCapabilities",
    "GatewayEvent",
    "GatewayEventType",
    "OffSessionCharge",
    "PaymentGateway",
    "PaymentRequest",
    "PaymentResult",
    "PaymentStatus",
    "RefundRequest",
    "RefundResult",
    "RefundStatus",
    "require_capability",
]


class PaymentStatus(enum.Enum):
    """The outcome of asking a gateway to take a payment."""

    SUCCEEDED = "succeeded"
    PENDING = "pending"
    ACTION_REQUIRED = "action_required"
    DECLINED = "declined"


class RefundStatus(enum.Enum):
    """The outcome of asking a gateway to refund (part of) a payment."""

    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"


class GatewayEventType(enum.Enum):
    """What a verified gateway event reports."""

    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_ACTION_REQUIRED = "payment_action_required"
    REFUND_SUCCEEDED = "refund_succeeded"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_CLOSED = "dispute_closed"


# -- field checks (raise ValidationError naming the field) --------------------


def _boolean(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValidationError(attribute.name, f"must be true or false, not {value!r}")


def _text(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(attribute.name, f"must be a non-empty string, not {value!r}")


def _optional_text(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        _text(instance, attribute, value)


def _money(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, Money):
        raise ValidationError(attribute.name, f"must be Money, not {type(value).__name__}")


def _not_negative(instance: Any, attribute: Any, value: Any) -> None:
    _money(instance, attribute, value)
    if value.amount < 0:
        raise ValidationError(attribute.name, f"must not be negative, got {value}")


def _positive(instance: Any, attribute: Any, value: Any) -> None:
    _money(instance, attribute, value)
    if value.amount <= 0:
        raise ValidationError(attribute.name, f"must be more than zero, got {value}")


def _optional_money(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        _money(instance, attribute, value)


def _aware(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, datetime):
        raise ValidationError(attribute.name, f"must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(attribute.name, "must be timezone-aware")


def _event_type(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, GatewayEventType):
        options = ", ".join(member.name for member in GatewayEventType)
        raise ValidationError(attribute.name, f"must be a GatewayEventType ({options})")


# -- capabilities --------------------------------------------------------------

#: The name of one :class:`GatewayCapabilities` flag.
Capability = Literal[
    "one_time",
    "off_session",
    "refunds",
    "partial_refunds",
    "webhooks",
    "subscriptions_managed_by_gateway",
]

#: Every capability name, in declaration order.
CAPABILITY_NAMES: tuple[Capability, ...] = get_args(Capability)

_DESCRIPTIONS: dict[str, str] = {
    "one_time": "one-time payments",
    "off_session": "saving a payment method and charging it off-session "
    "(charge_saved_method, PaymentRequest.save_method)",
    "refunds": "refunds (refund)",
    "partial_refunds": "partial refunds (refunding less than the whole payment)",
    "webhooks": "webhooks (parse_webhook)",
    "subscriptions_managed_by_gateway": "subscriptions that the gateway itself renews",
}


@attrs.frozen
class GatewayCapabilities:
    """What a gateway supports; the library checks these before asking.

    - ``one_time``: takes a payment with :meth:`PaymentGateway.create_payment`
      and no later charges.
    - ``off_session``: saves the payment method when
      ``PaymentRequest.save_method`` is true and charges it later with
      :meth:`PaymentGateway.charge_saved_method` (installments, renewals,
      one-click upsells).
    - ``refunds``: :meth:`PaymentGateway.refund` of a whole payment.
    - ``partial_refunds``: refunds of less than the whole payment, several per
      payment up to its amount. Needs ``refunds``.
    - ``webhooks``: :meth:`PaymentGateway.parse_webhook` turns the gateway's
      signed requests into events; asynchronous outcomes (``PENDING``,
      ``ACTION_REQUIRED``) are settled by them.
    - ``subscriptions_managed_by_gateway``: the gateway renews subscriptions
      itself and reports each renewal by webhook (the library then does not
      charge renewals with ``charge_saved_method``, and calls
      :meth:`PaymentGateway.cancel` to stop one). Needs ``webhooks``.

    A flag that is false means the library never calls the method that needs
    it; a gateway that is called anyway raises
    :class:`~membership_core.errors.ConfigurationError` (see :meth:`require`).
    """

    one_time: bool = attrs.field(default=True, validator=_boolean)
    off_session: bool = attrs.field(default=False, validator=_boolean)
    refunds: bool = attrs.field(default=False, validator=_boolean)
    partial_refunds: bool = attrs.field(default=False, validator=_boolean)
    webhooks: bool = attrs.field(default=False, validator=_boolean)
    subscriptions_managed_by_gateway: bool = attrs.field(default=False, validator=_boolean)

    def __attrs_post_init__(self) -> None:
        if self.partial_refunds and not self.refunds:
            raise ValidationError("partial_refunds", "needs refunds=True")
        if self.subscriptions_managed_by_gateway and not self.webhooks:
            raise ValidationError(
                "subscriptions_managed_by_gateway",
                "needs webhooks=True (renewals are reported by webhook)",
            )

    def supports(self, capability: Capability) -> bool:
        """Whether the flag named ``capability`` is set (an unknown name is a ValidationError)."""
        if capability not in CAPABILITY_NAMES:
            raise ValidationError(
                "capability",
                f"{capability!r} is not a gateway capability; one of {', '.join(CAPABILITY_NAMES)}",
            )
        return bool(getattr(self, capability))

    def require(self, capability: Capability, *, gateway: str | None = None) -> None:
        """Raise :class:`~membership_core.errors.ConfigurationError` unless ``capability`` is set.

        ``gateway`` (the gateway's name) goes into the message. The library
        calls this before it relies on a feature; a gateway calls it at the top
        of a method it does not support, so a wrong call fails loudly and
        clearly instead of with ``NotImplementedError``.
        """
        if self.supports(capability):
            return
        who = f"gateway {gateway!r}" if gateway is not None else "this gateway"
        raise ConfigurationError(
            f"{who} does not support {_DESCRIPTIONS[capability]}: "
            f"GatewayCapabilities.{capability} is False. "
            "Check gateway.capabilities before calling, or choose another gateway."
        )


# -- requests and results ------------------------------------------------------


@attrs.frozen
class PaymentRequest:
    """Ask for ``amount`` for ``purchase_id``; ``idempotency_key`` makes retries safe.

    Used for a one-time payment, a first installment and a first subscription
    period. With ``save_method=True`` the gateway also saves the buyer's
    payment method for later off-session charges and returns its
    ``method_reference`` (only asked of gateways with ``off_session``).
    """

    purchase_id: str
    amount: Money
    description: str
    customer_email: str
    idempotency_key: str
    save_method: bool = False


@attrs.frozen
class PaymentResult:
    """A gateway's answer. ``reference`` is the gateway's id for reconciliation.

    - ``SUCCEEDED``: the money was taken.
    - ``PENDING``: it may still be; a webhook (or the host, for ``manual``)
      settles it later.
    - ``ACTION_REQUIRED``: the buyer must act (3-D Secure, a bank redirect) at
      ``action_url``; a webhook reports the outcome.
    - ``DECLINED``: refused, with a ``decline_reason`` fit to show the buyer.

    ``method_reference`` names the saved payment method when the request asked
    to save it (``save_method=True``); pass it to
    :meth:`PaymentGateway.charge_saved_method` later.
    """

    status: PaymentStatus
    amount: Money
    reference: str | None = None
    decline_reason: str | None = None
    action_url: str | None = None
    method_reference: str | None = None


@attrs.frozen
class OffSessionCharge:
    """Charge a saved payment method without the buyer present.

    For installments, subscription renewals and one-click upsells.
    ``method_reference`` comes from an earlier :class:`PaymentResult`;
    ``idempotency_key`` must be unique per intended charge (e.g. the purchase
    and installment number), so a retry after a timeout never charges twice.
    """

    purchase_id: str = attrs.field(validator=_text)
    amount: Money = attrs.field(validator=_not_negative)
    method_reference: str = attrs.field(validator=_text)
    description: str = attrs.field(validator=attrs.validators.instance_of(str))
    idempotency_key: str = attrs.field(validator=_text)


@attrs.frozen
class RefundRequest:
    """Give back ``amount`` (more than zero) of the payment ``payment_reference``.

    ``amount`` less than the payment's amount is a partial refund (only asked
    of gateways with ``partial_refunds``). ``reason`` is free text for the
    gateway's records (``"requested_by_customer"``, ...).
    """

    payment_reference: str = attrs.field(validator=_text)
    amount: Money = attrs.field(validator=_positive)
    reason: str = attrs.field(validator=attrs.validators.instance_of(str))
    idempotency_key: str = attrs.field(validator=_text)


@attrs.frozen
class RefundResult:
    """A gateway's answer to a refund.

    ``SUCCEEDED``: the money is on its way back. ``PENDING``: a
    ``refund_succeeded`` webhook will confirm it. ``FAILED``: nothing was
    refunded; ``failure_reason`` says why.
    """

    status: RefundStatus
    amount: Money
    reference: str | None = None
    failure_reason: str | None = None


@attrs.frozen
class GatewayEvent:
    """One verified fact a gateway reported by webhook.

    ``id`` is the gateway's event id: the same event can be delivered more
    than once and out of order, so the library deduplicates by it.
    ``payment_reference`` is the :attr:`PaymentResult.reference` of the payment
    concerned (for refunds and disputes too). ``amount`` is what the event is
    about (the amount paid, refunded or disputed) when the gateway says so.
    ``purchase_id`` echoes :attr:`PaymentRequest.purchase_id` when the gateway
    carries it. ``failure_reason`` explains ``payment_failed``; for
    ``dispute_opened`` it is the dispute's reason, and for ``dispute_closed``
    it is ``None`` when the merchant won and why it was lost otherwise.
    ``refund_reference`` is the :attr:`RefundResult.reference` of a
    ``refund_succeeded`` event.
    """

    id: str = attrs.field(validator=_text)
    type: GatewayEventType = attrs.field(validator=_event_type)
    payment_reference: str = attrs.field(validator=_text)
    amount: Money | None = attrs.field(validator=_optional_money)
    occurred_at: datetime = attrs.field(validator=_aware)
    purchase_id: str | None = attrs.field(default=None, validator=_optional_text)
    failure_reason: str | None = attrs.field(default=None, validator=_optional_text)
    refund_reference: str | None = attrs.field(default=None, validator=_optional_text)


# -- the port ------------------------------------------------------------------


class PaymentGateway(Protocol):
    """A payment service provider, such as ``manual``, ``test`` or a plugin's Stripe adapter.

    Rules for every method:

    - **No storage.** A gateway talks to its provider and answers with a
      value; it never reads or writes the library's storage, and never
      decides a purchase's state. The library owns every state transition.
    - **Results, not exceptions, for outcomes.** A declined card is a
      ``DECLINED`` result, a failed refund a ``FAILED`` one. Raise only for
      misuse (:class:`~membership_core.errors.ConfigurationError` for a
      capability the gateway lacks, ``ValidationError`` for a request it
      cannot understand) and for failures whose outcome is unknown (a
      timeout, the provider down): the library then retries later with the
      *same* idempotency key.
    - **Idempotency.** The same ``idempotency_key`` must never move money
      twice: pass it on to the provider, or remember it.
    - **Capabilities.** The library calls a method only when
      :attr:`capabilities` declares it; an unsupported method raises
      ``ConfigurationError`` (``self.capabilities.require(...)``), never
      ``NotImplementedError``.
    """

    @property
    def name(self) -> str:
        """The gateway's registry name, e.g. ``"manual"``."""
        ...

    @property
    def capabilities(self) -> GatewayCapabilities:
        """What this gateway can do; must not change while the portal is open."""
        ...

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        """Take (or start taking) a payment: one-time, first installment, first period.

        Answer ``SUCCEEDED``, ``PENDING``, ``ACTION_REQUIRED`` (with
        ``action_url``) or ``DECLINED`` (with ``decline_reason``), and the
        provider's ``reference``. When ``request.save_method`` is true (only
        asked of gateways with ``off_session``), also save the payment method
        and return it as ``method_reference``. The same idempotency key must
        return the same answer without charging again. Must not write the
        library's storage.
        """
        ...

    def charge_saved_method(self, request: OffSessionCharge) -> PaymentResult:
        """Charge a saved payment method with the buyer absent (needs ``off_session``).

        Installments, renewals and one-click upsells. Answers like
        :meth:`create_payment`; a card that now needs authentication answers
        ``ACTION_REQUIRED`` and a refused one ``DECLINED``, and the library
        starts dunning. The same idempotency key must never charge twice.
        """
        ...

    def refund(self, request: RefundRequest) -> RefundResult:
        """Refund ``request.amount`` of a payment (needs ``refunds``).

        Less than the payment's amount needs ``partial_refunds``. Answer
        ``SUCCEEDED``, ``PENDING`` (a ``refund_succeeded`` webhook follows) or
        ``FAILED`` with ``failure_reason``. The same idempotency key must
        never refund twice.
        """
        ...

    def cancel(self, reference: str) -> None:
        """Stop what the gateway keeps running for ``reference``, if anything.

        ``reference`` is a subscription or mandate reference, or a saved
        payment method's ``method_reference``: after this the gateway takes no
        more money for it. Cancelling something unknown or already cancelled
        does nothing (the library may call this more than once).
        """
        ...

    def parse_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime
    ) -> list[GatewayEvent]:
        """Verify a webhook request, then turn it into events (needs ``webhooks``).

        ``body`` is the raw request body exactly as received (before any JSON
        parsing) and ``headers`` its headers; look names up
        case-insensitively. First verify the signature on the raw body,
        comparing in constant time, and that its timestamp is within the
        tolerance of ``now`` (the library's clock); on any problem raise
        :class:`~membership_core.errors.InvalidToken` naming it (missing
        header, bad signature, timestamp outside tolerance). Only then parse.

        Return the events in the order the body lists them; return ``[]`` for
        provider events the port has no type for (the host still answers
        200). Do not deduplicate or act on them: the library deduplicates by
        :attr:`GatewayEvent.id` and owns the state changes.
        """
        ...


def require_capability(gateway: PaymentGateway, capability: Capability) -> None:
    """Raise ``ConfigurationError`` unless ``gateway`` declares ``capability``.

    The library's check before it relies on a feature, e.g. before offering
    installments through a gateway::

        require_capability(gateway, "off_session")
    """
    gateway.capabilities.require(capability, gateway=gateway.name)
