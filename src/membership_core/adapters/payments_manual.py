"""The ``manual`` gateway: free offers, and paid ones the host marks paid itself."""

from __future__ import annotations

from ..ports.payments import GatewayCapabilities, PaymentRequest, PaymentResult, PaymentStatus

__all__ = ["ManualGateway"]


class ManualGateway:
    """Succeeds at once for a zero amount; leaves any other amount pending.

    A pending manual payment is one the host settles outside the library (a
    bank transfer, an invoice) and then confirms.
    """

    name = "manual"
    capabilities = GatewayCapabilities()

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        """Succeed for free, otherwise wait for the host's confirmation."""
        if request.amount.amount == 0:
            return PaymentResult(PaymentStatus.SUCCEEDED, request.amount, reference=None)
        return PaymentResult(PaymentStatus.PENDING, request.amount, reference=None)
