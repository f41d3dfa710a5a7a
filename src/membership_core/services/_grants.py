"""Writing a grant of access: the enrollment and its ``AccessGranted`` event, together."""

from __future__ import annotations

from datetime import datetime

from ..domain.enrollments import Enrollment, EnrollmentSource, EnrollmentStatus, Purchase
from ..domain.events import AccessGranted
from ..ports.storage import UnitOfWork
from ._context import Service
from .drip import ensure_drip_progress

__all__ = ["GrantingService"]


class GrantingService(Service):
    """A service that grants access bought by a purchase (checkout, reconciliation)."""

    def _grant_product(
        self,
        uow: UnitOfWork,
        purchase: Purchase,
        product_id: str,
        starts_at: datetime,
        ends_at: datetime | None,
    ) -> Enrollment:
        """Grant ``product_id`` to the purchase's member over the window, in ``uow``."""
        enrollment = Enrollment(
            self._ctx.ids.new("enr"),
            purchase.member_id,
            product_id,
            EnrollmentSource.PURCHASE,
            purchase.id,
            EnrollmentStatus.ACTIVE,
            starts_at,
            ends_at,
            self._ctx.now(),
            None,
        )
        uow.enrollments.add(enrollment)
        ensure_drip_progress(
            uow, self._ctx.ids.new("dpg"), purchase.member_id, product_id, starts_at
        )
        self._record(
            uow,
            AccessGranted,
            enrollment_id=enrollment.id,
            member_id=purchase.member_id,
            product_id=product_id,
            purchase_id=purchase.id,
        )
        return enrollment
