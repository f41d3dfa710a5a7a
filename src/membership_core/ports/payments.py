"""The payment gateway port.

A gateway moves money; the library owns every state transition. A gateway
answers a request with a :class:`PaymentResult` value and never touches
storage. Gateways declare what they can do in :class:`GatewayCapabilities`
instead of raising ``NotImplementedError`` at refund time.
"""

from __future__ import annotations

import enum
from typing import Protocol

import attrs

from ..domain.money import Money

__all__ = [
    "GatewayCapabilities",
    "PaymentGateway",
    "PaymentRequest",
    "PaymentResult",
    "PaymentStatus",
]


class PaymentStatus(enum.Enum):
    """The outcome of asking a gateway to take a payment."""

    SUCCEEDED = "succeeded"
    PENDING = "pending"
    ACTION_REQUIRED = "action_required"
    DECLINED = "declined"


@attrs.frozen
class GatewayCapabilities:
    """What a gateway supports; the library checks these before asking."""

    one_time: bool = True
    off_session: bool = False
    refunds: bool = False
    partial_refunds: bool = False
    webhooks: bool = False


@attrs.frozen
class PaymentRequest:
    """Ask for ``amount`` for ``purchase_id``; ``idempotency_key`` makes retries safe."""

    purchase_id: str
    amount: Money
    description: str
    customer_email: str
    idempotency_key: str


@attrs.frozen
class PaymentResult:
    """A gateway's answer. ``reference`` is the gateway's id for reconciliation."""

    status: PaymentStatus
    amount: Money
    reference: str | None = None
    decline_reason: str | None = None
    action_url: str | None = None


class PaymentGateway(Protocol):
    """A payment service provider, such as ``manual`` or a plugin's Stripe adapter."""

    @property
    def name(self) -> str:
        """The gateway's registry name, e.g. ``"manual"``."""
        ...

    @property
    def capabilities(self) -> GatewayCapabilities:
        """What this gateway can do."""
        ...

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        """Take (or start taking) a payment. Must not write the library's storage."""
        ...
