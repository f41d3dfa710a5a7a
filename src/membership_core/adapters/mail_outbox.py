"""A mailer that writes each message as an ``.eml`` file in a folder.

This is the embedded default: nothing leaves the machine, and every message a
portal would have sent can be opened in a mail client, attached to a support
ticket, or picked up by another process that does the real delivery. Each
file is a complete RFC 5322 message (CRLF line endings), named after the
message id, and replaced atomically, so re-sending a message after a crash
overwrites the earlier copy instead of adding a second one, and a reader never
sees a half-written file.
"""

from __future__ import annotations

import email.message
import email.policy
import hashlib
import os
import re
from pathlib import Path

from ..domain.mail import EmailMessage
from ..errors import MailDeliveryError, ValidationError
from ..ports.clock import Clock
from ._files import folder, write_atomically
from ._mime import to_mime

__all__ = ["OutboxFolderMailer", "to_mime"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# Leaves room for the hash suffix and ".eml" within the common 255-byte limit.
_MAX_STEM = 100


class OutboxFolderMailer:
    """A :class:`~membership_core.ports.mail.Mailer` that writes ``.eml`` files.

    ``directory`` is created (with its parents) if missing. Files are created
    readable by the owner only, because messages can carry password-reset and
    login links. ``clock``, when given, supplies the ``Date`` header, so tests
    with a frozen clock get reproducible files.

    Safe to share between threads and processes without a lock: each send
    writes its own temporary file and renames it into place.
    """

    def __init__(self, directory: str | os.PathLike[str], *, clock: Clock | None = None) -> None:
        self._directory = folder("directory", directory, "mail outbox")
        self._clock = clock

    @property
    def directory(self) -> Path:
        """The folder messages are written to."""
        return self._directory

    def path_for(self, message_id: str) -> Path:
        """Return the file a message with ``message_id`` is (or would be) written to.

        Ids made only of letters, digits, ``.``, ``_`` and ``-`` (and not
        starting with a dot) are used as they are; any other id is made safe and
        given a short hash suffix, so two different ids never share a file and
        no id can point outside the folder.
        """
        if not isinstance(message_id, str) or not message_id:
            raise ValidationError("message_id", "must be a non-empty string")
        stem = message_id
        if _UNSAFE.search(stem) or stem.startswith(".") or len(stem) > _MAX_STEM:
            digest = hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:12]
            safe = _UNSAFE.sub("_", message_id).lstrip(".")[:_MAX_STEM]
            stem = f"{safe}-{digest}" if safe else digest
        return self._directory / f"{stem}.eml"

    def send(self, message: EmailMessage) -> None:
        """Write ``message`` to :meth:`path_for` its id, replacing any earlier copy.

        Raises :class:`~membership_core.errors.MailDeliveryError`: permanent if
        the message itself is unusable (say, a line break in the subject),
        temporary if the file cannot be written (disk full, folder removed and
        not re-creatable, ...).
        """
        try:
            date = self._clock.now() if self._clock is not None else None
            mime = to_mime(message, date=date)
            target = self.path_for(message.message_id)
        except ValidationError as exc:
            raise MailDeliveryError(
                f"message {message.message_id!r} cannot be written: {exc}", temporary=False
            ) from exc
        data = _serialize(mime)
        try:
            self._write_atomically(target, data)
        except OSError as exc:
            raise MailDeliveryError(f"cannot write {str(target)!r}: {exc}", temporary=True) from exc

    def _write_atomically(self, target: Path, data: bytes) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        write_atomically(target, data)
        self._sync_directory()

    def _sync_directory(self) -> None:
        # Makes the rename itself durable across a power loss. Windows cannot
        # open a directory, and there the rename is as durable as it gets.
        if os.name != "posix":
            return
        try:
            dir_fd = os.open(self._directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def __repr__(self) -> str:
        return f"OutboxFolderMailer({str(self._directory)!r})"


def _serialize(mime: email.message.EmailMessage) -> bytes:
    # SMTP policy: CRLF line endings, as RFC 5322 requires of a message on disk too.
    return mime.as_bytes(policy=email.policy.SMTP)
