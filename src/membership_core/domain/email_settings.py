"""Which automated emails a portal sends, and with which template (Settings → Email Settings).

Pure values: the mail service reads them when an event would send an email.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs

__all__ = ["AutomatedEmail", "EmailChoice", "EmailSettings", "StoredTemplate"]


class AutomatedEmail(enum.Enum):
    """The automated emails an admin switches on and off, each named after its default template.

    ``WELCOME`` is "Send Welcome Message" (at sign-up), ``DRIP`` "Send Drip
    Message" (dripped lessons opened), ``OFFER_ACCESS`` "Send Offer Access
    Email" (an offer bought or claimed), ``NEW_COMMENT`` "New Comments In
    Courses" (sent by the host, which owns comments, through
    ``portal.mail.send_automated``), ``NEW_MATERIALS`` "New Course Materials
    Unlocked" (a lesson published in a course the member has).
    """

    WELCOME = "welcome"
    DRIP = "drip"
    OFFER_ACCESS = "offer_access"
    NEW_COMMENT = "new_comment"
    NEW_MATERIALS = "new_materials"


@attrs.frozen
class EmailChoice:
    """One automated email's switch and template.

    ``template_id`` names a template the admin made (``None``: the default
    one). ``enabled_at`` is when it was last switched on (``None``: on since
    the portal began); events before it send nothing, so switching an email
    on never sends a backlog.
    """

    enabled: bool = False
    template_id: str | None = None
    enabled_at: datetime | None = None

    def sends_for(self, occurred_at: datetime) -> bool:
        """Whether an event at ``occurred_at`` sends this email."""
        return self.enabled and (self.enabled_at is None or occurred_at >= self.enabled_at)


@attrs.frozen
class EmailSettings:
    """Who emails come from, and every automated email's :class:`EmailChoice`.

    ``sender_name`` ``None`` means the site title. All automated emails are
    off until an admin switches them on: a host embedding the library may send
    its own, and a library that emails people unasked surprises.

    >>> EmailSettings().choice(AutomatedEmail.WELCOME).enabled
    False
    """

    sender_name: str | None = None
    sender_email: str = "no-reply@members.example.com"
    reply_to: str | None = None
    welcome: EmailChoice = EmailChoice()
    drip: EmailChoice = EmailChoice()
    offer_access: EmailChoice = EmailChoice()
    new_comment: EmailChoice = EmailChoice()
    new_materials: EmailChoice = EmailChoice()

    def choice(self, email: AutomatedEmail) -> EmailChoice:
        """The switch and template of ``email``."""
        choice: EmailChoice = getattr(self, email.value)
        return choice

    def with_choice(self, email: AutomatedEmail, choice: EmailChoice) -> EmailSettings:
        """These settings with ``email``'s choice replaced."""
        changes: dict[str, Any] = {email.value: choice}
        return attrs.evolve(self, **changes)


@attrs.frozen
class StoredTemplate:
    """An email template an admin wrote, for one kind of email (its variables).

    ``kind`` is a default template name (``"welcome"``, ``"drip"``, ...): the
    template may use the variables that email receives. Sources are Jinja2,
    rendered sandboxed; ``text`` ``None`` means generated from the HTML.
    """

    id: str
    name: str
    kind: str
    subject: str
    html: str
    text: str | None
    created_at: datetime
    updated_at: datetime
