"""The transactional outbox: queued with the change, delivered after, retried, dead-lettered."""

from __future__ import annotations

from datetime import timedelta

from membership_core import MailStatus
from membership_core.services.mail import CLAIM_SECONDS, MAX_ATTEMPTS, backoff

from .conftest import PortalFactory
from .helpers import build_course


def _complete_course(portal: object) -> str:
    from membership_core import Portal

    assert isinstance(portal, Portal)
    course = build_course(portal, lessons=1)
    member_id = portal.checkout.purchase(course.offer.id, email="a@example.com").member_id
    portal.progress.complete_lesson(member_id, course.lessons[0].id)
    return member_id


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (1, 2, 4)]
    assert backoff(50) == timedelta(hours=6)


def test_temporary_failures_retry_with_backoff_then_deliver(open_portal: PortalFactory) -> None:
    portal = open_portal()
    portal.mailer.fail_next(2, temporary=True)
    _complete_course(portal)
    (message,) = portal.mail.outbox()
    assert message.status is MailStatus.QUEUED
    assert message.attempts == 1
    assert portal.mailer.sent == []

    assert portal.tick().mail_sent == 0  # not due yet
    portal.clock.advance(minutes=1)
    assert portal.tick().mail_failed == 1
    portal.clock.advance(minutes=1)
    assert portal.tick().mail_sent == 0  # second backoff is 2 minutes
    portal.clock.advance(minutes=1)
    assert portal.tick().mail_sent == 1
    (message,) = portal.mail.outbox()
    assert message.status is MailStatus.SENT
    assert message.attempts == 3
    assert len(portal.mailer.sent) == 1
    assert portal.tick().mail_sent == 0


def test_permanent_failure_goes_to_the_dead_letter_state_and_can_be_resent(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal()
    portal.mailer.fail_next(1, temporary=False)
    _complete_course(portal)
    (failed,) = portal.mail.outbox(status="failed")
    assert failed.last_error
    portal.clock.advance(days=1)
    assert portal.tick().mail_sent == 0
    portal.mail.resend(failed.id)
    assert portal.tick().mail_sent == 1
    assert portal.mail.outbox(status=MailStatus.FAILED) == []


def test_gives_up_after_the_attempt_limit(open_portal: PortalFactory) -> None:
    portal = open_portal()
    portal.mailer.fail_next(MAX_ATTEMPTS + 5, temporary=True)
    _complete_course(portal)
    for _ in range(MAX_ATTEMPTS + 2):
        portal.clock.advance(hours=7)
        portal.tick()
    (message,) = portal.mail.outbox()
    assert message.status is MailStatus.FAILED
    assert message.attempts == MAX_ATTEMPTS


def test_a_mailer_raising_anything_else_is_retried(open_portal: PortalFactory) -> None:
    class Broken:
        def __init__(self) -> None:
            self.calls = 0

        def send(self, message: object) -> None:
            self.calls += 1
            if self.calls == 1:
                raise OSError("disk full")

    broken = Broken()
    portal = open_portal()
    portal._context.mailer = broken
    _complete_course(portal)
    (message,) = portal.mail.outbox()
    assert message.status is MailStatus.QUEUED
    portal.clock.advance(minutes=1)
    assert portal.tick().mail_sent == 1


def test_a_crash_after_claiming_resends_once_the_claim_expires(open_portal: PortalFactory) -> None:
    portal = open_portal()
    portal._context.after_commit = lambda: None  # queue only; deliver by hand
    _complete_course(portal)
    portal._events.dispatch_pending()
    (queued,) = portal.mail.outbox()
    claimed = portal.mail._claim(queued.id)  # a worker claims it, then dies
    assert claimed is not None
    assert portal.tick().mail_sent == 0
    portal.clock.advance(minutes=6)
    assert portal.tick().mail_sent == 1
    assert len(portal.mailer.sent) == 1


def test_a_message_whose_worker_dies_every_time_ends_failed(open_portal: PortalFactory) -> None:
    portal = open_portal()
    portal._context.after_commit = lambda: None  # queue only; deliver by hand
    _complete_course(portal)
    portal._events.dispatch_pending()
    (queued,) = portal.mail.outbox()
    for _ in range(MAX_ATTEMPTS):  # each worker claims it, then dies while sending
        assert portal.mail._claim(queued.id) is not None
        portal.clock.advance(seconds=CLAIM_SECONDS)
    assert portal.mail._claim(queued.id) is None
    (dead,) = portal.mail.outbox(status="failed")
    assert dead.attempts == MAX_ATTEMPTS
    assert "stopped each time" in (dead.last_error or "")
    assert portal.tick().mail_sent == 0
    assert portal.mailer.sent == []
    portal.mail.resend(dead.id)  # the host can still try again by hand
    assert portal.tick().mail_sent == 1
