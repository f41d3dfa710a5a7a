"""One member's whole journey, free offer to certificate, on every storage back end."""

from __future__ import annotations

import email.policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from membership_core import (
    AccessReason,
    CertificateStatus,
    CourseCompleted,
    DomainEvent,
    LessonState,
    MailStatus,
    hookimpl,
)

from .conftest import PortalFactory
from .helpers import build_course


class Recorder:
    """A plugin that keeps every event it observes."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    @hookimpl
    def membership_domain_event(self, event: DomainEvent) -> None:
        self.events.append(event)


def test_member_goes_from_free_offer_to_certificate(open_portal: PortalFactory) -> None:
    recorder = Recorder()
    portal = open_portal(plugins=[recorder], platform_url="https://learn.example.com")
    portal.settings.update_site(title="Acme Academy")
    course = build_course(portal, lessons=3)

    purchase = portal.checkout.purchase(
        course.offer.id, email="Ada@Example.com", first_name="Ada", last_name="Lovelace"
    )
    member = portal.members.get(purchase.member_id)
    assert member.email == "Ada@Example.com"
    assert portal.members.find_by_email(" ada@example.COM ").id == member.id

    first = course.lessons[0]
    assert portal.access.can_view(member.id, first.id).reason is AccessReason.ENROLLED
    outline = portal.access.outline(member.id, course.product.id)
    assert [lesson.state for lesson in outline.lessons()] == [LessonState.AVAILABLE] * 3

    for lesson in course.lessons:
        progress = portal.progress.complete_lesson(member.id, lesson.id)
    assert progress.percent == 100
    assert portal.progress.is_completed(member.id, course.product.id)

    outline = portal.access.outline(member.id, course.product.id)
    assert [lesson.state for lesson in outline.lessons()] == [LessonState.COMPLETED] * 3

    # the certificate and the email are produced exactly once, even when ticks repeat
    for _ in range(3):
        portal.tick()
    (certificate,) = portal.certificates.for_member(member.id)
    assert certificate.recipient_name == "Ada Lovelace"
    assert certificate.course_title == "Python 101"
    assert certificate.issuer_name == "Acme Academy"
    verification = portal.certificates.verify(certificate.serial.lower())
    assert verification.status is CertificateStatus.VALID
    assert verification.certificate == certificate

    (sent,) = portal.mailer.sent
    assert sent.to == "Ada@Example.com"
    assert "Python 101" in sent.subject
    assert certificate.serial in sent.text
    assert "https://learn.example.com/certificates/verify" in (sent.html or "")
    assert [m.status for m in portal.mail.outbox()] == [MailStatus.SENT]

    completed = [e for e in recorder.events if isinstance(e, CourseCompleted)]
    assert len(completed) == 1
    assert completed[0].member_id == member.id
    types = [e.type for e in recorder.events]
    for expected in ("OfferPurchased", "AccessGranted", "LessonCompleted", "CertificateIssued"):
        assert expected in types


def test_completing_a_lesson_twice_is_idempotent(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=2)
    member_id = portal.checkout.purchase(course.offer.id, email="a@example.com").member_id
    lesson = course.lessons[0]
    assert portal.progress.complete_lesson(member_id, lesson.id).completed == 1
    assert portal.progress.complete_lesson(member_id, lesson.id).completed == 1
    portal.progress.complete_lesson(member_id, course.lessons[1].id)
    portal.progress.complete_lesson(member_id, course.lessons[1].id)
    portal.tick()
    assert len(portal.certificates.for_member(member_id)) == 1
    assert len(portal.mailer.sent) == 1


def test_sqlite_default_writes_eml_files_to_the_outbox_folder(tmp_path: Path) -> None:
    from membership_core import Portal

    database = tmp_path / "portal.db"
    with Portal.open(f"sqlite:///{database}", load_entrypoints=False) as portal:
        course = build_course(portal, lessons=1)
        member_id = portal.checkout.purchase(course.offer.id, email="b@example.com").member_id
        portal.progress.complete_lesson(member_id, course.lessons[0].id)
    files = list((tmp_path / "portal-outbox").glob("*.eml"))
    assert len(files) == 1
    with files[0].open("rb") as handle:
        parsed = BytesParser(policy=email.policy.default).parse(handle)
    assert parsed["To"] == "b@example.com"
    assert "Python 101" in parsed["Subject"]


def test_events_left_undispatched_by_a_crash_are_delivered_by_tick(
    open_portal: PortalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    portal = open_portal(plugins=[recorder])
    course = build_course(portal, lessons=1)
    # Simulate a crash between commit and dispatch: nothing runs after commit.
    monkeypatch.setattr(portal._context, "after_commit", lambda: None)
    member_id = portal.checkout.purchase(course.offer.id, email="c@example.com").member_id
    portal.progress.complete_lesson(member_id, course.lessons[0].id)
    assert [e.type for e in recorder.events] == ["ProductPublished"]
    assert portal.certificates.for_member(member_id) == []

    report = portal.tick()
    assert report.events_dispatched >= 4
    assert report.mail_sent == 1
    assert len(portal.certificates.for_member(member_id)) == 1
    assert sum(isinstance(e, CourseCompleted) for e in recorder.events) == 1
    assert portal.tick().events_dispatched == 0


def test_a_failing_observer_keeps_the_event_queued_without_repeating_handlers(
    open_portal: PortalFactory,
) -> None:
    class Flaky:
        def __init__(self) -> None:
            self.failures = 1
            self.seen: list[str] = []

        @hookimpl
        def membership_domain_event(self, event: DomainEvent) -> None:
            if isinstance(event, CourseCompleted) and self.failures:
                self.failures -= 1
                raise RuntimeError("observer down")
            self.seen.append(event.type)

    flaky = Flaky()
    portal = open_portal(plugins=[flaky])
    course = build_course(portal, lessons=1)
    member_id = portal.checkout.purchase(course.offer.id, email="d@example.com").member_id
    portal.progress.complete_lesson(member_id, course.lessons[0].id)
    assert "CourseCompleted" not in flaky.seen
    portal.tick()
    assert flaky.seen.count("CourseCompleted") == 1
    assert len(portal.certificates.for_member(member_id)) == 1
    assert len(portal.mailer.sent) == 1
