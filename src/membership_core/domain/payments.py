"""What the library remembers of money it asked gateways to move. Pure values.

A :class:`Payment` is one charge of a purchase's schedule (the one-time price,
an installment, a subscription period) as collected through a gateway: there
is exactly one per purchase and sequence number, however many attempts it
took. A :class:`Refund` gives back (part of) a payment. A
:class:`WebhookEvent` is a verified gateway event in the inbox, stored before
it is applied so a duplicate delivery is recognised and a crash between
storing and applying loses nothing.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from .money import Money
from .pricing import ChargeKind

__all__ = [
    "Payment",
    "PaymentState",
    "Refund",
    "RefundState",
    "WebhookEvent",
    "attempt_key",
]


class PaymentState(enum.Enum):
    """Where one scheduled charge stands."""

    #: Asked for; the gateway has not answered for good yet (pending, action required,
    #: or a call whose outcome is unknown).
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    #: The last attempt was refused; dunning may try again with a new attempt.
    FAILED = "failed"


@attrs.frozen
class Payment:
    """One charge of ``purchase_id``'s schedule: ``sequence`` as in :func:`~.pricing.schedule`.

    ``attempts`` counts the gateway calls made for it; each attempt has its own
    idempotency key (:func:`attempt_key`), so a retry after an unknown outcome
    reuses the key and a retry after a refusal does not. ``refunded`` is how
    much of it was given back so far.
    """

    id: str
    purchase_id: str
    sequence: int
    kind: ChargeKind
    amount: Money
    state: PaymentState
    attempts: int
    gateway: str
    gateway_reference: str | None
    due_at: datetime
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None = None
    failure_reason: str | None = None
    refunded: Money | None = None

    @property
    def idempotency_key(self) -> str:
        """The key of the current attempt."""
        return attempt_key(self.purchase_id, self.sequence, self.attempts)

    @property
    def refundable(self) -> Money:
        """What may still be refunded: nothing unless it succeeded."""
        if self.state is not PaymentState.SUCCEEDED:
            return Money.zero(self.amount.currency)
        return self.amount - self.refunded if self.refunded is not None else self.amount


def attempt_key(purchase_id: str, sequence: int, attempt: int) -> str:
    """The idempotency key of one attempt at one charge, stable across retries.

    >>> attempt_key("pur_1", 3, 2)
    'pur_1:3:2'
    """
    return f"{purchase_id}:{sequence}:{attempt}"


class RefundState(enum.Enum):
    """Where a refund stands."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@attrs.frozen
class Refund:
    """Money given back from one :class:`Payment`."""

    id: str
    purchase_id: str
    payment_id: str
    amount: Money
    state: RefundState
    reason: str
    gateway: str
    gateway_reference: str | None
    created_at: datetime
    updated_at: datetime
    failure_reason: str | None = None


@attrs.frozen
class WebhookEvent:
    """A verified gateway event in the inbox (the fields of the port's ``GatewayEvent``).

    Unique per ``(gateway, event_id)``: a second delivery of the same event is
    recognised and ignored. ``applied_at`` is set once the event's effect was
    committed; ``outcome`` says what it did (``"applied"``, ``"ignored: ..."``)
    for reconciliation.
    """

    id: str
    gateway: str
    event_id: str
    type: str
    payment_reference: str
    amount: Money | None
    occurred_at: datetime
    received_at: datetime
    purchase_id: str | None = None
    failure_reason: str | None = None
    refund_reference: str | None = None
    applied_at: datetime | None = None
    outcome: str | None = None
