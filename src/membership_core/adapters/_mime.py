"""Turn an :class:`~membership_core.domain.mail.EmailMessage` into an RFC 5322 message.

Shared by the outbox-folder and SMTP mailers, so a message written to a folder
is byte-for-byte what would have gone over the wire (except for the Date).
"""

from __future__ import annotations

import email.message
import email.policy
import email.utils
import re
from datetime import UTC, datetime

from ..domain.mail import EmailMessage
from ..errors import ValidationError

__all__ = ["MESSAGE_ID_DOMAIN", "envelope", "message_id_header", "to_mime"]

MESSAGE_ID_DOMAIN = "membership-core"

# The characters RFC 5322 allows in a dot-atom. A message id outside this set
# would make a Message-ID header that mail clients reject or thread wrongly, so
# it is refused rather than silently altered (altering could merge two ids).
_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_LINE_BREAK = re.compile(r"[\r\n]")


def message_id_header(message_id: str) -> str:
    """Return the ``Message-ID`` header value for ``message_id``.

    An id without ``@`` becomes ``<id@membership-core>``; one with ``@`` is
    only wrapped in angle brackets (if it is not already).

    >>> message_id_header("msg_01")
    '<msg_01@membership-core>'
    >>> message_id_header("<abc@example.com>")
    '<abc@example.com>'
    """
    value = message_id.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    left, at, right = value.partition("@")
    if not at:
        right = MESSAGE_ID_DOMAIN
    if not left or not _ATOM.match(left) or not right or not _ATOM.match(right):
        raise ValidationError("message_id", f"{message_id!r} cannot be used in a Message-ID header")
    return f"<{left}@{right}>"


def envelope(message: EmailMessage) -> tuple[str, list[str]]:
    """Return the SMTP envelope (sender address, recipient addresses) of ``message``.

    Display names are dropped: ``"School <school@example.com>"`` gives
    ``"school@example.com"``.
    """
    sender = email.utils.parseaddr(message.sender)[1]
    if not sender or "@" not in sender:
        raise ValidationError("sender", f"{message.sender!r} is not an email address")
    recipients = [address for _, address in email.utils.getaddresses([message.to]) if address]
    if not recipients or any("@" not in address for address in recipients):
        raise ValidationError("to", f"{message.to!r} is not an email address")
    return sender, recipients


def to_mime(message: EmailMessage, *, date: datetime | None = None) -> email.message.EmailMessage:
    """Build the MIME message for ``message``.

    Plain text only when ``message.html`` is ``None`` or empty; otherwise
    ``multipart/alternative`` with the text part first and the HTML part last
    (mail clients show the last part they understand). ``date`` defaults to
    now, in UTC. Raises :class:`~membership_core.errors.ValidationError` naming
    the field when a header value is unusable (a line break in the subject, an
    address that does not parse, a message id that cannot be a Message-ID).
    """
    for field in ("sender", "to", "subject", "reply_to"):
        value = getattr(message, field)
        # A line break in a header is how header injection starts; refuse it here
        # rather than rely on each transport to notice.
        if value is not None and _LINE_BREAK.search(value):
            raise ValidationError(field, "must not contain line breaks")
    envelope(message)
    when = date if date is not None else datetime.now(UTC)
    if when.tzinfo is None:
        raise ValidationError("date", "must be timezone-aware")

    mime = email.message.EmailMessage(policy=email.policy.SMTP)
    mime["Message-ID"] = message_id_header(message.message_id)
    mime["Date"] = email.utils.format_datetime(when)
    mime["From"] = message.sender
    mime["To"] = message.to
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    mime["Subject"] = message.subject
    # RFC 3834: tells vacation responders not to answer automated mail.
    mime["Auto-Submitted"] = "auto-generated"
    mime.set_content(message.text, subtype="plain", charset="utf-8")
    if message.html:
        mime.add_alternative(message.html, subtype="html", charset="utf-8")
    return mime
