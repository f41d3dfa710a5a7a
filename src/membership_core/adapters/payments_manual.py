"""The ``manual`` gateway: free offers, and paid ones the host marks paid itself."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ..ports.payments import (
    GatewayCapabilities,
    GatewayEvent,
    OffSessionCharge,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    RefundRequest,
    RefundResult,
)

__all__ = ["ManualGateway"]


class ManualGateway:
    """Succeeds at once for a zero amount; leaves any other amount pending.

    A pending manual payment is one the host settles outside the library (a
    bank transfer, an invoice) and then confirms. Its capabilities, honestly:

    - ``one_time`` and ``off_session``: a later installment or renewal is
      "charged" by leaving it pending, i.e. by sending the buyer another
      invoice; there is no real saved method, so ``method_reference`` is
      ``manual_<purchase id>``.
    - no ``refunds``: the host pays money back itself; :meth:`refund` raises
      ``ConfigurationError``.
    - no ``webhooks``: nothing calls back; :meth:`parse_webhook` raises
      ``ConfigurationError``.

    It keeps no state, so the same idempotency key trivially gives the same
    answer and never moves money.
    """

    name = "manual"
    capabilities = GatewayCapabilities(one_time=True, off_session=True)

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        """Succeed for free, otherwise wait for the host's confirmation."""
        method = f"manual_{request.purchase_id}" if request.save_method else None
        status = PaymentStatus.SUCCEEDED if request.amount.amount == 0 else PaymentStatus.PENDING
        return PaymentResult(status, request.amount, reference=None, method_reference=method)

    def charge_saved_method(self, request: OffSessionCharge) -> PaymentResult:
        """Succeed for free; otherwise pending until the host confirms the payment."""
        status = PaymentStatus.SUCCEEDED if request.amount.amount == 0 else PaymentStatus.PENDING
        return PaymentResult(status, request.amount, reference=None)

    def refund(self, request: RefundRequest) -> RefundResult:
        """Not supported: raises ``ConfigurationError`` (``capabilities.refunds`` is False)."""
        self.capabilities.require("refunds", gateway=self.name)
        raise AssertionError("unreachable: manual refunds are not declared")  # pragma: no cover

    def cancel(self, reference: str) -> None:
        """Nothing runs at a manual gateway, so there is nothing to cancel."""

    def parse_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime
    ) -> list[GatewayEvent]:
        """Not supported: raises ``ConfigurationError`` (``capabilities.webhooks`` is False)."""
        self.capabilities.require("webhooks", gateway=self.name)
        raise AssertionError("unreachable: manual webhooks are not declared")  # pragma: no cover
