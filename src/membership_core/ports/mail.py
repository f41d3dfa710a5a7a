"""The Mailer port: hand one rendered message to whatever delivers mail.

A mailer does not queue, retry or render; the transactional outbox does the
queueing and retrying, the templating module does the rendering. A mailer only
tries once and says, through :class:`~membership_core.errors.MailDeliveryError`,
whether trying again later could help.
"""

from __future__ import annotations

from typing import Protocol

from ..domain.mail import EmailMessage

__all__ = ["Mailer"]


class Mailer(Protocol):
    """Delivers rendered email messages.

    Implementations must be safe to call from several threads at once and
    should treat ``message.message_id`` as the identity of the message: sending
    the same id twice (after a crash between delivery and bookkeeping) should,
    where the transport allows it, not produce two different messages.
    """

    def send(self, message: EmailMessage) -> None:
        """Deliver one message or raise :class:`~membership_core.errors.MailDeliveryError`.

        Returning normally means the message was accepted by the transport (an
        SMTP server, a folder, a list). ``MailDeliveryError.temporary`` tells
        the caller whether a later retry may succeed.
        """
        ...
