"""Members of a portal: people who buy and learn. They are not the host's users."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

__all__ = [
    "DELETED_EMAIL_DOMAIN",
    "Member",
    "MemberProfile",
    "MemberStatus",
    "anonymized",
    "email_key",
]

#: Where the placeholder addresses of deleted members point: ``.invalid`` is
#: reserved (RFC 2606), so no mail can ever reach it.
DELETED_EMAIL_DOMAIN = "deleted.invalid"


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
    """A member account, as the host (the portal's admin) sees it.

    ``email`` is kept as given; ``email_key`` (trimmed, case-folded) is what is
    unique in the portal. ``external_ref`` links the member to a contact in the
    host's CRM: an opaque string the member never sees (see
    :class:`MemberProfile` for what a member may see of themselves).
    """

    id: str
    email: str
    email_key: str
    first_name: str
    last_name: str
    status: MemberStatus
    created_at: datetime
    last_login_at: datetime | None
    external_ref: str | None
    #: Bumped when the member's password changes, is reset, or the member is
    #: suspended: a host compares it with the one in a session to end the others.
    credential_version: int = 0
    phone: str | None = None

    @property
    def profile(self) -> MemberProfile:
        """What the member's own profile page may show (no host-only fields)."""
        return MemberProfile(
            self.id,
            self.email,
            self.first_name,
            self.last_name,
            self.phone,
            self.created_at,
            self.last_login_at,
        )

    @property
    def display_name(self) -> str:
        """First and last name, or the email when both are empty."""
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email


@attrs.frozen
class MemberProfile:
    """A member as the member may see themselves: no CRM link, status or credential data.

    A separate value, not a filtered :class:`Member`, so a host that hands it
    to a member-facing page cannot leak a host-only field by accident.
    """

    id: str
    email: str
    first_name: str
    last_name: str
    phone: str | None
    created_at: datetime
    last_login_at: datetime | None

    @property
    def display_name(self) -> str:
        """First and last name, or the email when both are empty."""
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email


def anonymized(member: Member) -> Member:
    """``member`` with its personal data removed, as kept after a deletion.

    The id stays, so purchases, enrollments and completions still add up in
    revenue and analytics; the email becomes a placeholder unique to the id.

    >>> from datetime import UTC, datetime
    >>> m = Member("mem_1", "ada@example.com", "ada@example.com", "Ada", "L",
    ...            MemberStatus.ACTIVE, datetime(2026, 1, 1, tzinfo=UTC), None, "crm-1")
    >>> gone = anonymized(m)
    >>> gone.email, gone.first_name, gone.external_ref, gone.status.value
    ('mem_1@deleted.invalid', '', None, 'deleted')
    """
    placeholder = f"{member.id}@{DELETED_EMAIL_DOMAIN}"
    return attrs.evolve(
        member,
        email=placeholder,
        email_key=email_key(placeholder),
        first_name="",
        last_name="",
        phone=None,
        external_ref=None,
        status=MemberStatus.DELETED,
        credential_version=member.credential_version + 1,
    )
