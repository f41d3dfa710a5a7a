"""An in-memory mailer for tests: it keeps what it "sent" and fails on demand.

This is part of the public testing kit. A host's test suite wires it in place
of the real mailer and then asserts on :attr:`MemoryMailer.sent`:

>>> from membership_core.domain.mail import EmailMessage
>>> mailer = MemoryMailer()
>>> mailer.send(EmailMessage("msg_1", "school@example.com", "ada@example.com", "Hi", "Hello"))
>>> [m.subject for m in mailer.messages_to("ada@example.com")]
['Hi']

To exercise retry paths, script failures before the code under test runs:

>>> mailer.fail_next(2)  # the next two sends raise, temporary
>>> mailer.fail_next(temporary=False)  # ...and the one after is refused for good
>>> mailer.pending_failures
3
"""

from __future__ import annotations

import threading
from collections import deque

from .. import _validate
from ..domain.mail import EmailMessage
from ..errors import MailDeliveryError

__all__ = ["MemoryMailer"]


class MemoryMailer:
    """A :class:`~membership_core.ports.mail.Mailer` that appends to a list.

    ``sent`` holds every successfully sent message, oldest first. It is a plain
    list so tests can index, slice and compare it; the mailer appends under a
    lock, so concurrent senders (several workers running ``tick()``) never lose
    a message. ``attempts`` counts every call to :meth:`send`, failed or not.

    Scripted failures (:meth:`fail_next`) are consumed in the order they were
    added, one per call to :meth:`send`; a failed send does not reach ``sent``.
    """

    # Deliberately no __len__: an empty mailer must stay truthy, or wiring code
    # such as ``mailer or OutboxFolderMailer(...)`` would silently replace it.

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent: list[EmailMessage] = []
        self.attempts = 0
        # One entry per scripted failure: the value of MailDeliveryError.temporary.
        self._failures: deque[bool] = deque()

    def send(self, message: EmailMessage) -> None:
        """Record ``message`` as sent, or raise the next scripted failure."""
        if not isinstance(message, EmailMessage):
            raise TypeError(f"expected an EmailMessage, not {type(message).__name__}")
        with self._lock:
            self.attempts += 1
            if self._failures:
                temporary = self._failures.popleft()
                kind = "temporary" if temporary else "permanent"
                raise MailDeliveryError(
                    f"scripted {kind} failure sending {message.message_id!r} to {message.to}",
                    temporary=temporary,
                )
            self.sent.append(message)

    def fail_next(self, count: int = 1, *, temporary: bool = True) -> None:
        """Make the next ``count`` sends raise :class:`MailDeliveryError`.

        ``temporary`` sets the error's ``temporary`` flag: ``True`` imitates an
        unreachable server (the outbox should retry), ``False`` a refused
        recipient (the outbox should give up). Calls add up: ``fail_next(2)``
        then ``fail_next(temporary=False)`` scripts three failures in that order.
        ``count=0`` adds none.
        """
        count = _validate.integer("count", count, minimum=0)
        temporary = _validate.boolean("temporary", temporary)
        with self._lock:
            self._failures.extend([temporary] * count)

    @property
    def pending_failures(self) -> int:
        """How many scripted failures have not been used yet."""
        with self._lock:
            return len(self._failures)

    @property
    def last(self) -> EmailMessage:
        """The most recently sent message; ``LookupError`` if nothing was sent."""
        with self._lock:
            if not self.sent:
                raise LookupError("no message has been sent")
            return self.sent[-1]

    def messages_to(self, address: str) -> list[EmailMessage]:
        """Return the sent messages whose ``to`` contains ``address`` (case-insensitive).

        Matching on containment means ``"ada@example.com"`` finds a message
        addressed to ``"Ada Lovelace <ada@example.com>"``.
        """
        needle = address.strip().casefold()
        with self._lock:
            return [m for m in self.sent if needle in m.to.casefold()]

    def clear(self) -> None:
        """Forget every sent message, the attempt count and any scripted failures."""
        with self._lock:
            # Cleared in place so references a test already holds see the reset.
            self.sent.clear()
            self.attempts = 0
            self._failures.clear()

    def __repr__(self) -> str:
        with self._lock:
            return f"MemoryMailer(sent={len(self.sent)}, pending_failures={len(self._failures)})"
