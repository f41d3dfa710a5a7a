"""Members of a portal: people who buy and learn. They are not the host's users."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

__all__ = ["Member", "MemberStatus", "email_key"]


class MemberStatus(enum.Enum):
    """Lifecycle of a member account."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


def email_key(email: str) -> str:
    """The form an email is compared in: trimmed and case-folded."""
    return email.strip().casefold()


@attrs.frozen
class Member:
    """A member account; ``email`` is kept as given, ``email_key`` is what is unique."""

    id: str
    email: str
    email_key: str
    first_name: str
    last_name: str
    status: MemberStatus
    created_at: datetime
    last_login_at: datetime | None
    external_ref: str | None

    @property
    def display_name(self) -> str:
        """First and last name, or the email when both are empty."""
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email
