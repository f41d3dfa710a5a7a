"""A mailer that delivers through an SMTP server, with the standard library only.

Each :meth:`SmtpMailer.send` opens its own connection, optionally secures it,
logs in, sends one message and says goodbye. That costs a handshake per
message but makes the mailer trivially thread-safe and immune to servers that
drop idle connections; the outbox sends in small batches, so this is rarely
the bottleneck.

Failures are sorted for the outbox's retry logic: anything that might succeed
later (the server is unreachable, timed out, hung up, or answered 4xx) raises
:class:`~membership_core.errors.MailDeliveryError` with ``temporary=True``;
anything that will not fix itself (a 5xx answer, a refused recipient, bad
credentials, a server lacking STARTTLS) raises it with ``temporary=False``.
"""

from __future__ import annotations

import email.message
import math
import smtplib
import ssl
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from ..domain.mail import EmailMessage
from ..errors import MailDeliveryError, ValidationError
from ._mime import envelope, to_mime

__all__ = ["SECURITY_MODES", "Security", "SmtpMailer"]

Security = Literal["starttls", "tls", "none"]
SECURITY_MODES: tuple[Security, ...] = ("starttls", "tls", "none")
_DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}


class SmtpMailer:
    """A :class:`~membership_core.ports.mail.Mailer` speaking SMTP.

    ``security`` chooses how the connection is protected:

    - ``"starttls"`` (default, port 587): connect in the clear, then upgrade
      with STARTTLS; a server that does not offer STARTTLS is refused rather
      than sent credentials and mail in the clear.
    - ``"tls"`` (port 465): TLS from the first byte ("implicit TLS", SMTPS).
    - ``"none"``: no encryption. Only for a relay on localhost or a trusted
      network, such as a development mail catcher.

    Certificates are verified against the system's trust store unless
    ``ssl_context`` says otherwise (the standard library's own default for
    SMTP does *not* verify them, which is why this mailer always passes one).
    ``username`` and ``password`` go together; without them no AUTH is
    attempted. ``timeout`` (seconds) bounds every network wait.
    ``local_hostname`` is the name sent in EHLO; when ``None`` the machine's
    fully qualified name is looked up, which can be slow on a badly configured
    host, so set it in production.

    >>> SmtpMailer("smtp.example.com", username="school", password="s3cret")
    SmtpMailer('smtp.example.com', 587, security='starttls', username='school')
    """

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if not isinstance(host, str) or not host.strip():
            raise ValidationError("host", "must be a non-empty string")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValidationError("port", f"must be an integer from 1 to 65535, not {port!r}")
        if security not in SECURITY_MODES:
            raise ValidationError(
                "security", f"must be one of {', '.join(SECURITY_MODES)}, not {security!r}"
            )
        for field, value in (("username", username), ("password", password)):
            if value is not None and not isinstance(value, str):
                raise ValidationError(field, f"must be a string, not {type(value).__name__}")
            # smtplib encodes AUTH exchanges as ASCII and would fail mid-send.
            if isinstance(value, str) and not value.isascii():
                raise ValidationError(field, "must be ASCII (the SMTP client cannot send others)")
        if (username is None) != (password is None):
            missing = "password" if password is None else "username"
            raise ValidationError(missing, "username and password must be given together")
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ValidationError(
                "timeout", f"must be a positive number of seconds, not {timeout!r}"
            )
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise ValidationError("ssl_context", "must be an ssl.SSLContext")
        if ssl_context is not None and security == "none":
            raise ValidationError("ssl_context", "has no effect with security='none'")
        if local_hostname is not None and (
            not isinstance(local_hostname, str) or not local_hostname.strip()
        ):
            raise ValidationError("local_hostname", "must be a non-empty string")

        self._host = host.strip()
        self._port = port
        self._security: Security = security
        self._username = username
        self._password = password
        self._timeout = float(timeout)
        self._local_hostname = local_hostname
        # Built once: loading the trust store is not free, and an SSLContext may
        # be shared by concurrent connections.
        self._ssl_context = (
            None
            if security == "none"
            else ssl_context
            if ssl_context is not None
            else ssl.create_default_context()
        )

    @classmethod
    def from_url(cls, url: str) -> SmtpMailer:
        """Build a mailer from ``smtp://user:password@host:port?security=starttls``.

        User name and password are percent-decoded, so ``p%40ss`` means
        ``p@ss``. Without a port, the default for the security mode is used:
        587 for ``starttls`` (the default), 465 for ``tls``, 25 for ``none``.
        ``smtps://`` is accepted as a synonym for ``security=tls``. The query
        may also set ``timeout`` (seconds) and ``local_hostname``; anything
        else is refused, so a typo does not silently weaken the connection.

        >>> SmtpMailer.from_url("smtp://mail%40school.test:pw@smtp.example.com?security=tls")
        SmtpMailer('smtp.example.com', 465, security='tls', username='mail@school.test')
        """
        if not isinstance(url, str):
            raise ValidationError("url", f"must be a string, not {type(url).__name__}")
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise ValidationError("url", f"is not a valid SMTP URL: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in ("smtp", "smtps"):
            raise ValidationError("url", f"scheme must be smtp or smtps, not {parts.scheme!r}")
        if not parts.hostname:
            raise ValidationError("url", "has no host")
        if parts.path not in ("", "/"):
            raise ValidationError("url", f"must not have a path, found {parts.path!r}")

        options: dict[str, str] = {}
        try:
            pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError as exc:
            raise ValidationError("url", f"has a malformed query: {exc}") from exc
        for key, value in pairs:
            if key not in ("security", "timeout", "local_hostname"):
                raise ValidationError("url", f"unknown option {key!r}")
            if key in options:
                raise ValidationError("url", f"option {key!r} is given twice")
            options[key] = value

        security = options.get("security", "tls" if scheme == "smtps" else "starttls")
        if scheme == "smtps" and security != "tls":
            raise ValidationError("security", f"smtps:// implies security=tls, not {security!r}")
        if security not in SECURITY_MODES:
            raise ValidationError(
                "security", f"must be one of {', '.join(SECURITY_MODES)}, not {security!r}"
            )
        timeout = 10.0
        if "timeout" in options:
            try:
                timeout = float(options["timeout"])
            except ValueError:
                raise ValidationError(
                    "timeout", f"must be a number of seconds, not {options['timeout']!r}"
                ) from None

        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(
            parts.hostname,
            port if port is not None else _DEFAULT_PORTS[security],
            security=security,
            username=username,
            password=password,
            timeout=timeout,
            local_hostname=options.get("local_hostname"),
        )

    @property
    def host(self) -> str:
        """The SMTP server's host name or address."""
        return self._host

    @property
    def port(self) -> int:
        """The SMTP server's port."""
        return self._port

    @property
    def security(self) -> Security:
        """How the connection is protected: ``"starttls"``, ``"tls"`` or ``"none"``."""
        return self._security

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to the server, or raise :class:`MailDeliveryError`.

        Returning means the server accepted the message for every recipient
        (``EmailMessage.to`` holds one address in practice; should a list of
        several be partly refused, the accepted ones got it and the call still
        returns, because retrying would send them a duplicate).
        """
        try:
            mime = to_mime(message)
            sender, recipients = envelope(message)
        except ValidationError as exc:
            raise MailDeliveryError(
                f"message {message.message_id!r} cannot be sent: {exc}", temporary=False
            ) from exc
        self._deliver(mime, sender, recipients)

    def _deliver(
        self, mime: email.message.EmailMessage, sender: str, recipients: list[str]
    ) -> None:
        where = f"SMTP {self._host}:{self._port}"
        stage = "connecting"
        try:
            smtp = self._connect()
            try:
                if self._security == "starttls":
                    stage = "starting TLS"
                    smtp.starttls(context=self._ssl_context)
                if self._username is not None and self._password is not None:
                    stage = "logging in"
                    smtp.login(self._username, self._password)
                stage = "sending"
                smtp.send_message(mime, from_addr=sender, to_addrs=recipients)
            finally:
                _close(smtp)
        except smtplib.SMTPRecipientsRefused as exc:
            answers = ", ".join(
                f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in exc.recipients.items()
            )
            temporary = all(_is_temporary(code) for code, _ in exc.recipients.values())
            raise MailDeliveryError(
                f"{where}: recipient refused ({answers})", temporary=temporary
            ) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise MailDeliveryError(
                f"{where}: authentication failed for user {self._username!r}; check the "
                f"username and password (server said {exc.smtp_code} {_text(exc.smtp_error)})",
                # A 4xx here is the server's own trouble ("454 temporary authentication
                # failure"); wrong credentials come back as 5xx.
                temporary=_is_temporary(exc.smtp_code),
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            if stage == "starting TLS":
                detail = (
                    "the server does not offer STARTTLS; refusing to send in the clear "
                    "(use security='tls' for port 465, or security='none' for a trusted relay)"
                )
            else:
                detail = f"the server does not support what {stage} needs: {exc}"
            raise MailDeliveryError(f"{where}: {detail}", temporary=False) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise MailDeliveryError(
                f"{where}: server disconnected while {stage}: {exc}", temporary=True
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise MailDeliveryError(
                f"{where}: server answered {exc.smtp_code} {_text(exc.smtp_error)} while {stage}",
                temporary=_is_temporary(exc.smtp_code),
            ) from exc
        except smtplib.SMTPException as exc:
            raise MailDeliveryError(f"{where}: {stage} failed: {exc}", temporary=False) from exc
        except ssl.SSLCertVerificationError as exc:
            # A certificate that does not verify will not start verifying by itself.
            raise MailDeliveryError(
                f"{where}: the server's TLS certificate was rejected: {exc.verify_message}",
                temporary=False,
            ) from exc
        except OSError as exc:
            # Connection refused, unreachable host, DNS failure, timeout, TLS
            # handshake cut short: the network, not the message, is the problem.
            reason = str(exc) or type(exc).__name__
            raise MailDeliveryError(f"{where}: {stage} failed: {reason}", temporary=True) from exc

    def _connect(self) -> smtplib.SMTP:
        if self._security == "tls":
            return smtplib.SMTP_SSL(
                self._host,
                self._port,
                local_hostname=self._local_hostname,
                timeout=self._timeout,
                context=self._ssl_context,
            )
        return smtplib.SMTP(
            self._host, self._port, local_hostname=self._local_hostname, timeout=self._timeout
        )

    def __repr__(self) -> str:
        # The password stays out of reprs, which end up in logs and tracebacks.
        user = f", username={self._username!r}" if self._username is not None else ""
        return f"SmtpMailer({self._host!r}, {self._port}, security={self._security!r}{user})"


def _close(smtp: smtplib.SMTP) -> None:
    # The message is already accepted (or already failed) by the time we say
    # QUIT; a server that fumbles the goodbye must not turn a delivered
    # message into an error that makes the outbox send it again.
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _is_temporary(code: int) -> bool:
    # Only 5xx is a definite "no"; 4xx means "later", and anything odd (smtplib
    # uses -1 for an unreadable reply) is given the benefit of the doubt.
    return not 500 <= code <= 599


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return reply
