"""A crash at any step of queue, send and acknowledge loses no message.

The process "dies" (raises :class:`Crash`) at one step of a message's life: in the
transaction that queues it together with the change that causes it, while claiming it,
while sending it to a real SMTP server (aiosmtpd on loopback), after the server accepted
it, or while acknowledging it. A fresh portal on the same database then does what the
caller would do (repeat the call that raised) and runs ``tick()``, the frozen clock moving
past the claim lease, until nothing is left to send. The server must have received every
message exactly once, except when the crash fell between the server's acceptance and our
commit: that message arrives twice, identical and under the same ``Message-ID``, never
three times.

Each step is a row of :data:`STEPS`; what queues the mail (a welcome email, a course
completion, a password-reset request answered by a tick, a tick retrying several
messages) is a row of :data:`CAUSES`.
"""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import smtplib
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from typing import Any, Literal, NamedTuple

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from membership_core import MailStatus, Portal
from membership_core.adapters.clock import FrozenClock
from membership_core.adapters.ids import RandomIds
from membership_core.adapters.mail_smtp import SmtpMailer
from membership_core.adapters.sql import SqlStorage
from membership_core.domain.mail import EmailMessage, OutboxMessage
from membership_core.ports.mail import Mailer
from membership_core.ports.storage import COLLECTIONS
from membership_core.services.mail import CLAIM_SECONDS

from .helpers import build_course

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_COLLECTIONS = frozenset(collection.name for collection in COLLECTIONS)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQL back ends only: a crash must leave what a real database keeps."""
    return str(request.param)


class Crash(BaseException):
    """The process dying.

    A ``BaseException``, like ``SystemExit``, so no ``except Exception`` in the library
    can handle it: the database keeps exactly what was committed before it (open
    transactions roll back, as they do when a dead process's connection drops).
    """


# -- a real SMTP server ----------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler keeping every message that arrived; it can answer 451."""

    def __init__(self) -> None:
        self.arrived: list[MimeMessage] = []
        #: How many of the next messages get "451 try again later".
        self.refusals = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refusals:
            self.refusals -= 1
            return "451 4.3.0 Try again later"
        assert isinstance(envelope.original_content, bytes)
        parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(
            envelope.original_content
        )
        assert isinstance(parsed, MimeMessage)
        self.arrived.append(parsed)
        return "250 Message accepted for delivery"

    def copies(self) -> Counter[str]:
        """How many times each ``Message-ID`` arrived."""
        return Counter(str(message["Message-ID"]) for message in self.arrived)


class Server(NamedTuple):
    port: int
    inbox: Inbox


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[Server]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield Server(controller.port, inbox)
    finally:
        controller.stop()


@pytest.fixture
def server(smtp_server: Server) -> Server:
    """The module's SMTP server with an empty inbox."""
    smtp_server.inbox.arrived.clear()
    smtp_server.inbox.refusals = 0
    return smtp_server


def _smtp(server: Server) -> SmtpMailer:
    return SmtpMailer(
        "127.0.0.1", server.port, security="none", timeout=5, local_hostname="test.local"
    )


# -- crash injection ---------------------------------------------------------------------

Moment = Literal["write", "commit", "committed"]


@dataclasses.dataclass(frozen=True)
class AtWrite:
    """Crash at a write to ``collection`` (``add`` or ``update``) of a record that ``matches``.

    ``moment`` is ``"write"`` (instead of the write), ``"commit"`` (when its transaction
    commits, before the database has it) or ``"committed"`` (just after that commit).
    """

    collection: str
    operation: Literal["add", "update"]
    moment: Moment
    matches: Callable[[Any], bool] = lambda _record: True


class CrashingStorage:
    """A storage that crashes at the ``nth`` write matching an :class:`AtWrite` (once)."""

    def __init__(self, inner: SqlStorage) -> None:
        self.inner = inner
        self._at: AtWrite | None = None
        self._nth = 0
        self._seen = 0

    def arm(self, at: AtWrite, nth: int) -> None:
        self._at, self._nth, self._seen = at, nth, 0

    def unit_of_work(self, tenant: str, *, write: bool = True) -> Any:
        return _CrashingUnitOfWork(self, self.inner.unit_of_work(tenant, write=write))

    def close(self) -> None:
        self.inner.close()

    def wrote(self, uow: _CrashingUnitOfWork, collection: str, operation: str, record: Any) -> None:
        at = self._at
        if at is None or (at.collection, at.operation) != (collection, operation):
            return
        if not at.matches(record):
            return
        self._seen += 1
        if self._seen < self._nth:
            return
        self._at = None
        if at.moment == "write":
            raise Crash(f"at {collection}.{operation}")
        uow.doomed = at.moment


class _CrashingUnitOfWork:
    def __init__(self, storage: CrashingStorage, inner: Any) -> None:
        self._storage = storage
        self._inner = inner
        #: Set when this transaction made the chosen write: crash at or after its commit.
        self.doomed: Moment | None = None

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name in _COLLECTIONS:
            return _CrashingRepository(self, name, value)
        return value

    def __enter__(self) -> _CrashingUnitOfWork:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._inner.__exit__(*exc_info)

    def commit(self) -> None:
        doomed, self.doomed = self.doomed, None
        if doomed == "commit":
            raise Crash("before the commit")
        self._inner.commit()
        if doomed == "committed":
            raise Crash("just after the commit")


class _CrashingRepository:
    def __init__(self, uow: _CrashingUnitOfWork, name: str, inner: Any) -> None:
        self._uow = uow
        self._name = name
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def add(self, record: Any) -> None:
        self._uow._storage.wrote(self._uow, self._name, "add", record)
        self._inner.add(record)

    def update(self, record: Any) -> None:
        self._uow._storage.wrote(self._uow, self._name, "update", record)
        self._inner.update(record)


MailerMoment = Literal["before_send", "after_accepted"]


class CrashingMailer:
    """Wraps a mailer: crash on the ``nth`` send, before it or after the server accepted."""

    def __init__(self, inner: Mailer) -> None:
        self.inner = inner
        self._moment: MailerMoment | None = None
        self._nth = 0
        self._calls = 0

    def arm(self, moment: MailerMoment, nth: int) -> None:
        self._moment, self._nth, self._calls = moment, nth, 0

    def send(self, message: EmailMessage) -> None:
        moment = self._moment
        if moment is not None:
            self._calls += 1
            if self._calls == self._nth:
                self._moment = None
            else:
                moment = None
        if moment == "before_send":
            raise Crash("before connecting to the server")
        self.inner.send(message)
        if moment == "after_accepted":
            raise Crash("after the server accepted the message")


def _crash_in_smtp_transaction(monkeypatch: pytest.MonkeyPatch, nth: int) -> None:
    """Crash on the ``nth`` DATA command: after MAIL FROM and RCPT TO, before the message."""
    original = smtplib.SMTP.data
    calls = 0

    def data(self: smtplib.SMTP, msg: Any) -> tuple[int, bytes]:
        nonlocal calls
        calls += 1
        if calls == nth:
            raise Crash("in the SMTP transaction, before DATA")
        return original(self, msg)

    monkeypatch.setattr(smtplib.SMTP, "data", data)


# -- the steps ---------------------------------------------------------------------------

InMailer = Literal["before_send", "in_smtp_transaction", "after_accepted"]


def _claimed(message: OutboxMessage) -> bool:
    return message.status is MailStatus.SENDING


def _sent(message: OutboxMessage) -> bool:
    return message.status is MailStatus.SENT


def _failed_attempt(message: OutboxMessage) -> bool:
    return message.status is not MailStatus.SENDING and message.last_error is not None


@dataclasses.dataclass(frozen=True)
class Step:
    """Where the crash falls, and how many duplicates it may cause (0 or 1)."""

    name: str
    #: Which causes have this step (``Cause.stages``): a new step with a new stage needs
    #: a cause that lists it.
    stage: Literal["link", "completion", "queue", "deliver"]
    at: AtWrite | InMailer
    duplicates: int = 0
    #: The server answers 451 this time, so the crash hits recording the failure.
    refused: bool = False


STEPS: tuple[Step, ...] = (
    # The one-time link an email carries (login, password reset) is minted in the
    # transaction that queues the email.
    Step("link.insert", "link", AtWrite("account_tokens", "add", "write")),
    # The change that causes the course-completed email; the email is queued later, by
    # the CourseCompleted event's handler.
    Step("completion.commit", "completion", AtWrite("course_completions", "add", "commit")),
    Step("completion.committed", "completion", AtWrite("course_completions", "add", "committed")),
    # After the handlers ran (the email queued by one of them), the events are marked
    # dispatched: a crash before that commit runs the handlers again.
    Step("dispatched.commit", "completion", AtWrite("events", "update", "commit")),
    # Queue: the message is written in the transaction of its cause.
    Step("queue.insert", "queue", AtWrite("mail", "add", "write")),
    Step("queue.commit", "queue", AtWrite("mail", "add", "commit")),
    Step("queue.committed", "queue", AtWrite("mail", "add", "committed")),
    # Claim: status sending, attempts + 1, leased for CLAIM_SECONDS.
    Step("claim.update", "deliver", AtWrite("mail", "update", "write", _claimed)),
    Step("claim.commit", "deliver", AtWrite("mail", "update", "commit", _claimed)),
    Step("claim.committed", "deliver", AtWrite("mail", "update", "committed", _claimed)),
    # Send, with no transaction open.
    Step("send.before_connecting", "deliver", "before_send"),
    Step("send.before_data", "deliver", "in_smtp_transaction"),
    Step("send.accepted", "deliver", "after_accepted", duplicates=1),
    # Acknowledge: status sent. Until this commits, the server's acceptance is not ours.
    Step("ack.update", "deliver", AtWrite("mail", "update", "write", _sent), duplicates=1),
    Step("ack.commit", "deliver", AtWrite("mail", "update", "commit", _sent), duplicates=1),
    Step("ack.committed", "deliver", AtWrite("mail", "update", "committed", _sent)),
    # A refused attempt: recording the failure (and its backoff).
    Step(
        "failure.commit",
        "deliver",
        AtWrite("mail", "update", "commit", _failed_attempt),
        refused=True,
    ),
)


# -- the causes --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scenario:
    #: The call that crashes; a caller that saw it raise repeats it on the fresh portal.
    act: Callable[[Portal], object]
    #: What must hold once the outbox is quiet, besides the mail itself.
    check: Callable[[Portal], None]


@dataclasses.dataclass(frozen=True)
class Cause:
    name: str
    stages: frozenset[str]
    #: How many messages it sends in all.
    messages: int
    #: The crash hits the nth matching write or send after the call starts.
    nth: int
    prepare: Callable[[Portal, FrozenClock, Inbox], Scenario]


def _tokens(portal: Portal, member_id: str) -> int:
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        return uow.account_tokens.count({"member_id": member_id})


def _welcome(portal: Portal, clock: FrozenClock, inbox: Inbox) -> Scenario:
    member = portal.members.invite("ada@example.com", first_name="Ada")

    def act(on: Portal) -> object:
        return on.mail.send(member.id, "welcome", idempotency_key=f"welcome:{member.id}")

    def check(on: Portal) -> None:
        # The login link and the message that carries it go together or not at all.
        assert _tokens(on, member.id) == 1
        assert "/sign-in/link?token=" in on.mail.outbox()[0].message.text

    return Scenario(act, check)


def _course_completion(portal: Portal, clock: FrozenClock, inbox: Inbox) -> Scenario:
    course = build_course(portal, lessons=1, title="Pottery")
    member_id = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id

    def act(on: Portal) -> object:
        return on.progress.complete_lesson(member_id, course.lessons[0].id)

    def check(on: Portal) -> None:
        assert on.progress.is_completed(member_id, course.product.id)
        (message,) = on.mail.outbox()
        assert message.kind == "course_completed"

    return Scenario(act, check)


def _password_reset(portal: Portal, clock: FrozenClock, inbox: Inbox) -> Scenario:
    """A reset request is stored; the tick answers it, queuing the email with its link."""
    member = portal.members.invite("ada@example.com")
    portal.accounts.request_password_reset("ada@example.com")

    def check(on: Portal) -> None:
        assert _tokens(on, member.id) == 1
        (message,) = on.mail.outbox()
        assert message.kind == "password_reset"
        with on.storage.unit_of_work(on.tenant, write=False) as uow:
            assert uow.account_requests.count() == 0

    return Scenario(lambda on: on.tick(), check)


def _tick_retrying_three(portal: Portal, clock: FrozenClock, inbox: Inbox) -> Scenario:
    """Three welcome emails refused once (451); the tick retrying them crashes on the second."""
    members = [portal.members.invite(f"m{n}@example.com") for n in range(3)]
    inbox.refusals = 3
    for member in members:
        portal.mail.send(member.id, "welcome", idempotency_key=f"welcome:{member.id}")
    assert [m.status for m in portal.mail.outbox()] == [MailStatus.QUEUED] * 3
    clock.advance(minutes=1)  # the first backoff

    def check(on: Portal) -> None:
        assert {m["To"] for m in inbox.arrived} == {member.email for member in members}

    return Scenario(lambda on: on.tick(), check)


CAUSES: tuple[Cause, ...] = (
    Cause("welcome", frozenset({"link", "queue", "deliver"}), 1, 1, _welcome),
    Cause("course_completion", frozenset({"completion", "queue"}), 1, 1, _course_completion),
    Cause("password_reset", frozenset({"link", "queue"}), 1, 1, _password_reset),
    Cause("tick", frozenset({"deliver"}), 3, 2, _tick_retrying_three),
)

PAIRS = [(cause, step) for cause in CAUSES for step in STEPS if step.stage in cause.stages]
CASES = [pytest.param(cause, step, id=f"{cause.name}-{step.name}") for cause, step in PAIRS]


def test_every_step_is_crashed_for_some_cause() -> None:
    assert {step.name for _, step in PAIRS} == {step.name for step in STEPS}


# -- the test ----------------------------------------------------------------------------


def _open(storage: str | CrashingStorage, clock: FrozenClock, mailer: Mailer) -> Portal:
    return Portal.open(
        storage,
        clock=clock,
        ids=RandomIds(),  # the fresh portal must not count ids from 1 again
        mailer=mailer,
        load_entrypoints=False,
    )


def _arm(
    step: Step,
    nth: int,
    storage: CrashingStorage,
    mailer: CrashingMailer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if isinstance(step.at, AtWrite):
        storage.arm(step.at, nth)
    elif step.at == "in_smtp_transaction":
        _crash_in_smtp_transaction(monkeypatch, nth)
    else:
        mailer.arm(step.at, nth)


def _tick_until_quiet(portal: Portal, clock: FrozenClock) -> None:
    for _ in range(10):
        report = portal.tick()
        pending = [
            m for m in portal.mail.outbox() if m.status in (MailStatus.QUEUED, MailStatus.SENDING)
        ]
        if not pending and report.mail_sent == report.mail_failed == 0:
            return
        clock.advance(seconds=CLAIM_SECONDS + 1)  # past any claim lease and backoff so far
    raise AssertionError(f"the outbox never became quiet: {portal.mail.outbox()}")


def _text(message: MimeMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert isinstance(part, MimeMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


@pytest.mark.parametrize(("cause", "step"), CASES)
def test_a_crash_loses_no_message_and_duplicates_at_most_one(
    storage_url: str,
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
    cause: Cause,
    step: Step,
) -> None:
    clock = FrozenClock(START)
    storage = CrashingStorage(SqlStorage(storage_url))
    mailer = CrashingMailer(_smtp(server))
    portal = _open(storage, clock, mailer)
    try:
        scenario = cause.prepare(portal, clock, server.inbox)
        if step.refused:
            server.inbox.refusals = cause.messages
        _arm(step, cause.nth, storage, mailer, monkeypatch)
        with pytest.raises(Crash):
            scenario.act(portal)
    finally:
        portal.close()
        storage.close()
    monkeypatch.undo()
    server.inbox.refusals = 0

    with _open(storage_url, clock, _smtp(server)) as fresh:
        scenario.act(fresh)
        _tick_until_quiet(fresh, clock)

        outbox = fresh.mail.outbox()
        assert len(outbox) == cause.messages
        assert all(m.status is MailStatus.SENT for m in outbox), outbox
        copies = server.inbox.copies()
        assert set(copies) == {f"<{m.message.message_id}@membership-core>" for m in outbox}
        # Every message once; the one crashed between acceptance and commit twice.
        assert Counter(copies.values()) == +Counter(
            {1: cause.messages - step.duplicates, 2: step.duplicates}
        )
        for message_id, count in copies.items():
            if count > 1:
                first, second = (m for m in server.inbox.arrived if m["Message-ID"] == message_id)
                assert (first["Subject"], _text(first)) == (second["Subject"], _text(second))
        scenario.check(fresh)

        clock.advance(days=1)
        assert fresh.tick().mail_sent == 0
    assert len(server.inbox.arrived) == cause.messages + step.duplicates
