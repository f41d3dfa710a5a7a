"""Certificates: immutable records of what a member completed."""

from __future__ import annotations

from datetime import datetime

import attrs

__all__ = ["Certificate"]


@attrs.frozen
class Certificate:
    """A certificate of completion. Its facts are copied at issue time and never change."""

    id: str
    member_id: str
    product_id: str
    serial: str
    recipient_name: str
    course_title: str
    issuer_name: str
    completed_at: datetime
    issued_at: datetime
    revoked_at: datetime | None
    revocation_reason: str | None
