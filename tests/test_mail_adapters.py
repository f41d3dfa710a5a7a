"""The mail adapters: in-memory, outbox folder (.eml files) and SMTP against a real server."""

from __future__ import annotations

import email.parser
import email.policy
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from membership_core.adapters.clock import FrozenClock
from membership_core.adapters.mail_memory import MemoryMailer
from membership_core.adapters.mail_outbox import OutboxFolderMailer, to_mime
from membership_core.adapters.mail_smtp import SmtpMailer
from membership_core.domain.mail import EmailMessage
from membership_core.errors import ConfigurationError, MailDeliveryError, ValidationError
from membership_core.ports.mail import Mailer


def make_message(message_id: str = "msg_01", **changes: Any) -> EmailMessage:
    values: dict[str, Any] = {
        "message_id": message_id,
        "sender": "Piano School <school@example.com>",
        "to": "Ada Lovelace <ada@example.com>",
        "subject": "Welcome to Piano School · ünïcode",
        "text": "Hello Ada,\n\nLog in: https://piano.test/login\n",
        "html": '<p>Hello Ada,</p><p><a href="https://piano.test/login">Log in</a></p>',
        "reply_to": "help@example.com",
    }
    values.update(changes)
    return EmailMessage(**values)


def parse(data: bytes) -> MimeMessage:
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(parsed, MimeMessage)
    return parsed


def body_of(message: MimeMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    assert isinstance(part, MimeMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


# -- MemoryMailer ---------------------------------------------------------------


def test_memory_mailer_keeps_sent_messages_in_order() -> None:
    memory = MemoryMailer()
    mailer: Mailer = memory
    first, second = make_message("msg_1"), make_message("msg_2", to="bob@example.com")

    mailer.send(first)
    mailer.send(second)

    assert memory.sent == [first, second]
    assert memory.last is second
    assert memory.messages_to("ADA@example.com") == [first]
    assert memory.attempts == 2


def test_memory_mailer_scripted_failures_are_used_in_order() -> None:
    mailer = MemoryMailer()
    mailer.fail_next(2)
    mailer.fail_next(temporary=False)
    assert mailer.pending_failures == 3

    outcomes: list[bool | str] = []
    for index in range(4):
        try:
            mailer.send(make_message(f"msg_{index}"))
        except MailDeliveryError as error:
            outcomes.append(error.temporary)
        else:
            outcomes.append("sent")

    assert outcomes == [True, True, False, "sent"]
    assert [m.message_id for m in mailer.sent] == ["msg_3"]
    assert mailer.attempts == 4
    assert mailer.pending_failures == 0


def test_memory_mailer_clear_resets_everything_in_place() -> None:
    mailer = MemoryMailer()
    sent = mailer.sent
    mailer.send(make_message())
    mailer.fail_next(3)

    mailer.clear()

    assert sent == []
    assert mailer.sent is sent
    assert mailer.attempts == 0
    assert mailer.pending_failures == 0
    with pytest.raises(LookupError):
        _ = mailer.last
    mailer.send(make_message())
    assert len(mailer.sent) == 1


def test_memory_mailer_is_truthy_when_empty() -> None:
    # Wiring code like ``mailer or default`` must not drop an empty mailer.
    mailer: object = MemoryMailer()
    assert bool(mailer) is True


def test_memory_mailer_validates_fail_next() -> None:
    mailer = MemoryMailer()
    with pytest.raises(ValidationError) as info:
        mailer.fail_next(-1)
    assert info.value.field == "count"
    with pytest.raises(ValidationError):
        mailer.fail_next(True)  # a bool is not a count
    mailer.fail_next(0)
    assert mailer.pending_failures == 0


def test_memory_mailer_loses_nothing_under_concurrent_sends() -> None:
    mailer = MemoryMailer()
    mailer.fail_next(50)
    failures: list[MailDeliveryError] = []
    lock = threading.Lock()

    def worker(number: int) -> None:
        for index in range(200):
            try:
                mailer.send(make_message(f"msg_{number}_{index}"))
            except MailDeliveryError as error:
                with lock:
                    failures.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(failures) == 50
    assert len(mailer.sent) == 8 * 200 - 50
    assert len({m.message_id for m in mailer.sent}) == len(mailer.sent)
    assert mailer.attempts == 8 * 200


# -- MIME building ----------------------------------------------------------------


def test_to_mime_builds_alternative_with_text_then_html() -> None:
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    mime = to_mime(make_message(), date=when)

    assert mime.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in mime.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert mime["Message-ID"] == "<msg_01@membership-core>"
    assert mime["Date"] == "Sun, 01 Mar 2026 09:30:00 +0000"


def test_to_mime_without_html_is_plain_text() -> None:
    mime = to_mime(make_message(html=None, reply_to=None))

    assert mime.get_content_type() == "text/plain"
    assert mime["Reply-To"] is None


def test_to_mime_keeps_a_full_message_id() -> None:
    assert to_mime(make_message("abc@mail.example.com"))["Message-ID"] == "<abc@mail.example.com>"
    assert to_mime(make_message("<abc@mail.example.com>"))["Message-ID"] == (
        "<abc@mail.example.com>"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Hello\r\nBcc: victim@example.com"),
        ("to", "ada@example.com\nBcc: victim@example.com"),
        ("to", "not an address"),
        ("sender", ""),
        ("message_id", "has space"),
    ],
)
def test_to_mime_refuses_unusable_headers(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        to_mime(make_message(**{field: value}))
    assert info.value.field == field


# -- OutboxFolderMailer ---------------------------------------------------------


def test_outbox_folder_writes_a_parseable_eml(tmp_path: Path) -> None:
    clock = FrozenClock(datetime(2026, 3, 1, 9, 30, tzinfo=UTC))
    outbox = OutboxFolderMailer(tmp_path / "outbox", clock=clock)
    mailer: Mailer = outbox

    mailer.send(make_message())

    path = outbox.path_for("msg_01")
    assert path == tmp_path / "outbox" / "msg_01.eml"
    assert outbox.directory == tmp_path / "outbox"
    raw = path.read_bytes()
    assert b"\r\n" in raw  # RFC 5322 line endings
    parsed = parse(raw)
    assert parsed["Message-ID"] == "<msg_01@membership-core>"
    assert parsed["From"] == "Piano School <school@example.com>"
    assert parsed["To"] == "Ada Lovelace <ada@example.com>"
    assert parsed["Reply-To"] == "help@example.com"
    assert parsed["Subject"] == "Welcome to Piano School · ünïcode"
    assert parsed["Date"].datetime == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert parsed.get_content_type() == "multipart/alternative"
    # The file keeps RFC 5322's CRLF line endings, and the parser keeps them too.
    plain = body_of(parsed, "plain").replace("\r\n", "\n")
    assert plain == "Hello Ada,\n\nLog in: https://piano.test/login\n"
    assert 'href="https://piano.test/login"' in body_of(parsed, "html")


def test_outbox_folder_resending_overwrites_instead_of_duplicating(tmp_path: Path) -> None:
    mailer = OutboxFolderMailer(tmp_path)

    mailer.send(make_message(subject="First try"))
    mailer.send(make_message(subject="Second try"))

    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["msg_01.eml"]  # and no temporary files left behind
    assert parse(mailer.path_for("msg_01").read_bytes())["Subject"] == "Second try"


def test_outbox_folder_creates_missing_directories(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "outbox"
    mailer = OutboxFolderMailer(str(target))
    assert target.is_dir()

    target.rmdir()  # someone cleans up the folder while the portal runs
    mailer.send(make_message())

    assert mailer.path_for("msg_01").is_file()


def test_outbox_folder_file_names_are_safe_and_distinct(tmp_path: Path) -> None:
    mailer = OutboxFolderMailer(tmp_path)

    awkward = ["../../etc/passwd", "a/b", "a_b", ".hidden", "x" * 300, "ünï"]
    paths = [mailer.path_for(message_id) for message_id in awkward]

    assert len(set(paths)) == len(paths)
    for path in paths:
        assert path.parent == tmp_path
        assert not path.name.startswith(".")
        assert path.suffix == ".eml"
        assert len(path.name) < 200
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in path.name)


def test_outbox_folder_reports_bad_messages_as_permanent(tmp_path: Path) -> None:
    mailer = OutboxFolderMailer(tmp_path)

    with pytest.raises(MailDeliveryError) as info:
        mailer.send(make_message(subject="Injected\nBcc: someone@example.com"))

    assert info.value.temporary is False
    assert list(tmp_path.iterdir()) == []


def test_outbox_folder_reports_unwritable_folder_as_temporary(tmp_path: Path) -> None:
    blocker = tmp_path / "outbox"
    mailer = OutboxFolderMailer(blocker)
    blocker.rmdir()
    blocker.write_text("a file where the folder should be")

    with pytest.raises(MailDeliveryError) as info:
        mailer.send(make_message())

    assert info.value.temporary is True


def test_outbox_folder_that_cannot_be_created_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")

    with pytest.raises(ConfigurationError) as info:
        OutboxFolderMailer(blocker / "outbox")

    assert info.value.field == "directory"


# -- SmtpMailer against a real SMTP server ----------------------------------------


class RecordingHandler:
    """An aiosmtpd handler that keeps envelopes and can be told to refuse."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.fail_data: list[str] = []
        self.refuse_recipients: dict[str, str] = {}

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse_recipients:
            return self.refuse_recipients[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.fail_data:
            return self.fail_data.pop(0)
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


def start_server(handler: RecordingHandler, **kwargs: Any) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


@pytest.fixture
def smtp_server(handler: RecordingHandler) -> Iterator[Controller]:
    controller = start_server(handler)
    try:
        yield controller
    finally:
        controller.stop()


def plain_mailer(controller: Controller, **kwargs: Any) -> SmtpMailer:
    return SmtpMailer(
        "127.0.0.1",
        controller.port,
        security="none",
        timeout=5,
        local_hostname="test.local",
        **kwargs,
    )


def test_smtp_delivers_to_a_real_server(smtp_server: Controller, handler: RecordingHandler) -> None:
    mailer: Mailer = plain_mailer(smtp_server)

    mailer.send(make_message())

    [envelope] = handler.envelopes
    assert envelope.mail_from == "school@example.com"
    assert envelope.rcpt_tos == ["ada@example.com"]
    assert isinstance(envelope.original_content, bytes)
    arrived = parse(envelope.original_content)
    assert arrived["Message-ID"] == "<msg_01@membership-core>"
    assert arrived["Subject"] == "Welcome to Piano School · ünïcode"
    assert arrived["To"] == "Ada Lovelace <ada@example.com>"
    assert arrived["Reply-To"] == "help@example.com"
    assert body_of(arrived, "plain").startswith("Hello Ada,")
    assert "piano.test/login" in body_of(arrived, "html")


def test_smtp_starttls_refuses_a_server_without_it(smtp_server: Controller) -> None:
    mailer = SmtpMailer(
        "127.0.0.1", smtp_server.port, security="starttls", timeout=5, local_hostname="t.local"
    )

    with pytest.raises(MailDeliveryError) as info:
        mailer.send(make_message())

    assert info.value.temporary is False
    assert "STARTTLS" in str(info.value)


def test_smtp_temporary_server_failure_then_recovery(
    smtp_server: Controller, handler: RecordingHandler
) -> None:
    handler.fail_data = ["451 4.3.0 try later", "451 4.3.0 try later"]
    mailer = plain_mailer(smtp_server)

    for _ in range(2):
        with pytest.raises(MailDeliveryError) as info:
            mailer.send(make_message())
        assert info.value.temporary is True
        assert "451" in str(info.value)
    mailer.send(make_message())

    assert len(handler.envelopes) == 1


def test_smtp_permanent_data_failure(smtp_server: Controller, handler: RecordingHandler) -> None:
    handler.fail_data = ["554 5.6.0 message rejected"]

    with pytest.raises(MailDeliveryError) as info:
        plain_mailer(smtp_server).send(make_message())

    assert info.value.temporary is False


def test_smtp_refused_recipient_is_permanent(
    smtp_server: Controller, handler: RecordingHandler
) -> None:
    handler.refuse_recipients["ada@example.com"] = "550 5.1.1 no such user"

    with pytest.raises(MailDeliveryError) as info:
        plain_mailer(smtp_server).send(make_message())

    assert info.value.temporary is False
    assert "ada@example.com" in str(info.value)
    assert handler.envelopes == []


def test_smtp_greylisted_recipient_is_temporary(
    smtp_server: Controller, handler: RecordingHandler
) -> None:
    handler.refuse_recipients["ada@example.com"] = "450 4.2.0 greylisted, come back later"

    with pytest.raises(MailDeliveryError) as info:
        plain_mailer(smtp_server).send(make_message())

    assert info.value.temporary is True


def test_smtp_connection_refused_is_temporary() -> None:
    mailer = SmtpMailer("127.0.0.1", free_port(), security="none", timeout=5)

    with pytest.raises(MailDeliveryError) as info:
        mailer.send(make_message())

    assert info.value.temporary is True


def test_smtp_silent_server_times_out_as_temporary() -> None:
    # A socket that listens but never greets: the connection is accepted by the
    # kernel and then nothing arrives, exactly like a hung server.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        mailer = SmtpMailer("127.0.0.1", port, security="none", timeout=0.2)

        with pytest.raises(MailDeliveryError) as info:
            mailer.send(make_message())

    assert info.value.temporary is True


class Credentials:
    """An aiosmtpd authenticator accepting one user name and password."""

    def __call__(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            _text(auth_data.login) == "school" and _text(auth_data.password) == "p@ss word"
        )
        # handled=False: let the server send the standard 535 on failure.
        return AuthResult(success=ok, handled=False)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.fixture
def auth_server(handler: RecordingHandler) -> Iterator[Controller]:
    controller = start_server(handler, authenticator=Credentials(), auth_require_tls=False)
    try:
        yield controller
    finally:
        controller.stop()


def test_smtp_logs_in_with_credentials(auth_server: Controller, handler: RecordingHandler) -> None:
    plain_mailer(auth_server, username="school", password="p@ss word").send(make_message())

    assert len(handler.envelopes) == 1


def test_smtp_bad_credentials_fail_permanently_with_a_clear_message(
    auth_server: Controller, handler: RecordingHandler
) -> None:
    mailer = plain_mailer(auth_server, username="school", password="wrong")

    with pytest.raises(MailDeliveryError) as info:
        mailer.send(make_message())

    assert info.value.temporary is False
    assert "authentication failed" in str(info.value)
    assert "wrong" not in str(info.value)
    assert handler.envelopes == []


def test_smtp_invalid_message_is_permanent_without_connecting() -> None:
    # Nothing listens on the port; had it tried to connect, the error would be temporary.
    mailer = SmtpMailer("127.0.0.1", free_port(), security="none")

    with pytest.raises(MailDeliveryError) as info:
        mailer.send(make_message(to="nobody"))

    assert info.value.temporary is False


# -- SmtpMailer configuration -----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"host": ""}, "host"),
        ({"host": 42}, "host"),
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"port": "25"}, "port"),
        ({"port": True}, "port"),
        ({"security": "ssl"}, "security"),
        ({"username": "school"}, "password"),
        ({"password": "secret"}, "username"),
        ({"username": "school", "password": "pässword"}, "password"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"security": "none", "ssl_context": ssl.create_default_context()}, "ssl_context"),
    ],
)
def test_smtp_validates_its_arguments(kwargs: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"host": "smtp.example.com", **kwargs}
    with pytest.raises(ValidationError) as info:
        SmtpMailer(**arguments)
    assert info.value.field == field


def test_smtp_repr_hides_the_password() -> None:
    mailer = SmtpMailer("smtp.example.com", username="school", password="hunter2")
    assert "hunter2" not in repr(mailer)


def test_from_url_decodes_credentials_and_options() -> None:
    mailer = SmtpMailer.from_url("smtp://mail%40school.test:p%40ss%3Aword@smtp.example.com:2525")

    assert (mailer.host, mailer.port, mailer.security) == ("smtp.example.com", 2525, "starttls")
    assert mailer._username == "mail@school.test"
    assert mailer._password == "p@ss:word"


@pytest.mark.parametrize(
    ("url", "port", "security"),
    [
        ("smtp://smtp.example.com", 587, "starttls"),
        ("smtp://smtp.example.com?security=starttls", 587, "starttls"),
        ("smtp://smtp.example.com?security=tls", 465, "tls"),
        ("smtp://localhost?security=none", 25, "none"),
        ("smtps://smtp.example.com", 465, "tls"),
        ("smtp://localhost:1025?security=none&timeout=3", 1025, "none"),
    ],
)
def test_from_url_default_ports(url: str, port: int, security: str) -> None:
    mailer = SmtpMailer.from_url(url)
    assert (mailer.port, mailer.security) == (port, security)
    assert mailer._username is None


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("http://smtp.example.com", "url"),
        ("smtp://", "url"),
        ("smtp://smtp.example.com:99999", "url"),
        ("smtp://smtp.example.com?secure=tls", "url"),
        ("smtp://smtp.example.com?security=tls&security=none", "url"),
        ("smtp://smtp.example.com?security=ssl", "security"),
        ("smtps://smtp.example.com?security=none", "security"),
        ("smtp://smtp.example.com?timeout=soon", "timeout"),
        ("smtp://user@smtp.example.com", "password"),
    ],
)
def test_from_url_refuses_bad_urls(url: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SmtpMailer.from_url(url)
    assert info.value.field == field


def test_from_url_mailer_delivers(smtp_server: Controller, handler: RecordingHandler) -> None:
    mailer = SmtpMailer.from_url(
        f"smtp://127.0.0.1:{smtp_server.port}?security=none&local_hostname=test.local"
    )

    mailer.send(make_message())

    assert len(handler.envelopes) == 1
