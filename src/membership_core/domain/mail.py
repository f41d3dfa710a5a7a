"""Email messages and their outbox records."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

__all__ = ["EmailMessage", "MailStatus", "OutboxMessage"]


@attrs.frozen
class EmailMessage:
    """A rendered email, ready for a :class:`~membership_core.ports.mail.Mailer`."""

    message_id: str
    sender: str
    to: str
    subject: str
    text: str
    html: str | None = None
    reply_to: str | None = None


class MailStatus(enum.Enum):
    """Delivery state of a queued message."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


@attrs.frozen
class OutboxMessage:
    """A message in the transactional outbox.

    ``idempotency_key`` is unique per portal, so the same cause never queues
    the same message twice.
    """

    id: str
    idempotency_key: str
    kind: str
    message: EmailMessage
    status: MailStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    #: The member the message is for, when it is for one (so deleting them removes it).
    member_id: str | None = None
