"""Automated emails fire on their events, honour their switch and template, and never twice."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest

from membership_core import Conflict, Money, NotFound, OneTime, SequentialIds, ValidationError
from membership_core.domain.drip import AfterDelay, DripSettings, FromAccessGrant
from membership_core.domain.email_settings import AutomatedEmail, EmailChoice
from membership_core.templating import TemplateError
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import Course, build_course

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _kinds(portal: TestPortal) -> list[tuple[str, str]]:
    """(kind, to) of every message in the outbox, oldest first."""
    return [(m.kind, m.message.to) for m in portal.mail.outbox(limit=1000)]


def _on(portal: TestPortal, *emails: str) -> None:
    for email in emails:
        portal.settings.update_email(email, enabled=True)


def test_every_automated_email_is_off_until_switched_on(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    assert all(not portal.settings.email().choice(e).enabled for e in AutomatedEmail)
    course = build_course(portal, lessons=1)
    portal.checkout.purchase(course.offer.id, email="ada@example.com")
    portal.members.invite("bob@example.com")
    portal.tick()
    assert _kinds(portal) == []


def test_welcome_carries_a_login_link_for_each_new_member(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test")
    _on(portal, "welcome")
    course = build_course(portal, lessons=1)
    bought = portal.checkout.purchase(course.offer.id, email="ada@example.com")
    portal.members.invite("bob@example.com")
    portal.members.import_members([{"email": "cy@example.com"}])
    portal.checkout.purchase(course.offer.id, email="ada@example.com")  # not new: no welcome
    portal.tick()
    assert _kinds(portal) == [
        ("welcome", "ada@example.com"),
        ("welcome", "bob@example.com"),
        ("welcome", "cy@example.com"),
    ]
    text = portal.mailer.messages_to("ada@example.com")[0].text
    found = re.search(r"\?token=(\S+)", text)
    assert found is not None
    assert portal.accounts.redeem(found.group(1)).id == bought.member_id


def test_offer_access_names_the_offer_and_links_its_course(open_portal: PortalFactory) -> None:
    portal = open_portal(default_gateway="test", platform_url="https://learn.example.com")
    _on(portal, "offer_access")
    course = build_course(portal, lessons=1, title="Python 101")
    paid = portal.offers.create_offer(
        "Python 101 Pro", [course.product.id], plan=OneTime(Money.of("20", "EUR"))
    )
    portal.offers.publish(paid.id)
    portal.checkout.purchase(paid.id, email="ada@example.com")
    portal.tick()
    (sent,) = portal.mailer.messages_to("ada@example.com")
    assert "Python 101 Pro" in sent.subject + sent.text
    assert f"https://learn.example.com/courses/{course.product.id}" in sent.text


def _dripped(portal: TestPortal) -> Course:
    course = build_course(portal, lessons=2)
    portal.drip.configure(course.product.id, DripSettings(FromAccessGrant(), "UTC"))
    portal.drip.set_rules(course.product.id, course.lessons[1].id, [AfterDelay(days=7)])
    return course


def test_drip_message_when_lessons_open_once_even_with_concurrent_ticks(
    open_portal: PortalFactory,
) -> None:
    ids = SequentialIds()  # shared, so workers never mint the same id
    portal = open_portal(start=START, ids=ids)
    _on(portal, "drip")
    course = _dripped(portal)
    portal.checkout.purchase(course.offer.id, email="ada@example.com")
    portal.tick()
    portal.clock.set(START + timedelta(days=7))
    workers = [open_portal(portal.storage, start=portal.clock.now(), ids=ids) for _ in range(3)]
    threads = [threading.Thread(target=w.tick) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    portal.tick()
    assert _kinds(portal) == [("drip", "ada@example.com")]
    (message,) = portal.mail.outbox()
    assert course.lessons[1].title in message.message.subject
    assert f"/lessons/{course.lessons[1].id}" in message.message.text


def test_new_materials_go_to_members_with_access_only(open_portal: PortalFactory) -> None:
    portal = open_portal()
    _on(portal, "new_materials")
    course = build_course(portal, lessons=1)
    ada = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    bob = portal.checkout.purchase(course.offer.id, email="bob@example.com").member_id
    portal.members.invite("cy@example.com")  # no access
    portal.access.revoke(bob, course.product.id, reason="left")
    category = course.lessons[0].category_id
    portal.catalog.add_lesson(course.product.id, category, "Draft", published=False)
    lesson = portal.catalog.add_lesson(course.product.id, category, "Bonus lesson")
    portal.tick()
    assert _kinds(portal) == [("new_materials", "ada@example.com")]
    assert "Bonus lesson" in portal.mailer.messages_to("ada@example.com")[0].text
    # Publishing the draft later is new material too; editing a published lesson is not.
    draft = [x for x in portal.catalog.structure(course.product.id)[1] if not x.published]
    portal.catalog.update_lesson(draft[0].id, published=True)
    portal.catalog.update_lesson(lesson.id, title="Bonus lesson (updated)")
    portal.tick()
    assert _kinds(portal) == [("new_materials", "ada@example.com")] * 2
    assert ada != bob


def test_switching_on_later_sends_no_backlog(open_portal: PortalFactory) -> None:
    portal = open_portal(start=START)
    course = _dripped(portal)
    portal.checkout.purchase(course.offer.id, email="ada@example.com")
    portal.clock.set(START + timedelta(days=7))
    portal.tick()  # the lesson opens while the drip message is off
    _on(portal, "welcome", "drip")
    portal.tick()
    assert _kinds(portal) == []
    portal.members.invite("bob@example.com")  # after: sent
    assert _kinds(portal) == [("welcome", "bob@example.com")]


def test_switched_off_sends_nothing_and_on_again_starts_afresh(open_portal: PortalFactory) -> None:
    portal = open_portal()
    _on(portal, "welcome")
    switched_on = portal.settings.email().welcome.enabled_at
    assert switched_on == portal.clock.now()
    portal.settings.update_email("welcome", enabled=False)
    portal.members.invite("ada@example.com")
    portal.clock.advance(minutes=1)
    again = portal.settings.update_email("welcome", enabled=True)
    assert again.welcome == EmailChoice(enabled=True, enabled_at=portal.clock.now())
    portal.members.invite("bob@example.com")
    portal.tick()
    assert _kinds(portal) == [("welcome", "bob@example.com")]


def test_a_chosen_template_replaces_the_default(open_portal: PortalFactory) -> None:
    portal = open_portal()
    portal.settings.update_site(title="Acme Academy")
    branded = portal.templates.create(
        "Branded welcome",
        kind="welcome",
        subject="Welcome aboard, {{ member.first_name }}!",
        html='<img src="https://acme.example/logo.png"> <a href="{{ login_url }}">Log in</a>',
    )
    portal.settings.update_email("welcome", enabled=True, template_id=branded.id)
    portal.members.invite("ada@example.com", first_name="Ada")
    portal.tick()
    (sent,) = portal.mailer.sent
    assert sent.subject == "Welcome aboard, Ada!"
    assert 'src="https://acme.example/logo.png"' in (sent.html or "")
    assert "/sign-in/link?token=" in (sent.html or "")
    # Back to the default template.
    portal.settings.update_email("welcome", template_id=None)
    portal.members.invite("bob@example.com", first_name="Bob")
    portal.tick()
    assert "Acme Academy" in portal.mailer.last.subject


def test_a_template_that_fails_at_send_time_falls_back_to_the_default(
    open_portal: PortalFactory, caplog: pytest.LogCaptureFixture
) -> None:
    portal = open_portal()
    risky = portal.templates.create(
        "Risky", kind="welcome", subject="Hi {{ member.nickname }}", html="<p>Hi</p>"
    )
    portal.settings.update_email("welcome", enabled=True, template_id=risky.id)
    portal.members.invite("ada@example.com")
    portal.tick()
    (sent,) = portal.mailer.sent
    assert "Welcome to" in sent.subject  # the default
    assert risky.id in caplog.text


def test_the_host_sends_comment_emails_through_the_settings(open_portal: PortalFactory) -> None:
    portal = open_portal()
    ada = portal.members.invite("ada@example.com")
    comment = {"author": "Grace", "body": "<b>Nice</b>", "url": "https://x/c/1"}
    assert portal.mail.send_automated("new_comment", ada.id, values={"comment": comment}) is None
    _on(portal, "new_comment")
    sent = portal.mail.send_automated(
        AutomatedEmail.NEW_COMMENT, ada.id, values={"comment": comment}, idempotency_key="c1"
    )
    assert sent is not None
    assert "&lt;b&gt;Nice&lt;/b&gt;" in (sent.message.html or "")
    again = portal.mail.send_automated(
        "new_comment", ada.id, values={"comment": comment}, idempotency_key="c1"
    )
    assert again is None
    with pytest.raises(ValidationError) as info:
        portal.mail.send_automated("birthday", ada.id)
    assert info.value.field == "email"
    with pytest.raises(NotFound):
        portal.mail.send_automated("new_comment", "mem_nobody")


def test_email_settings_validate_and_write_nothing_on_failure(open_portal: PortalFactory) -> None:
    portal = open_portal()
    drip = portal.templates.create("Drip", kind="drip", subject="New", html="<p>New</p>")
    before = portal.settings.email()
    for call, field, error in [
        (lambda: portal.settings.update_email("sms", enabled=True), "email", ValidationError),
        (lambda: portal.settings.update_email("welcome", enabled="y"), "enabled", ValidationError),
        (
            lambda: portal.settings.update_email("welcome", template_id=drip.id),
            "template_id",
            ValidationError,
        ),
        (
            lambda: portal.settings.update_email("welcome", template_id="tpl_gone"),
            "template_id",
            NotFound,
        ),
        (
            lambda: portal.settings.update_email("welcome", enabled=True, template_id="x"),
            "template_id",
            ValidationError,
        ),
    ]:
        with pytest.raises(error) as info:
            call()
        assert info.value.field == field
    assert portal.settings.email() == before
    portal.settings.update_email("drip", template_id=drip.id)
    with pytest.raises(Conflict) as conflict:
        portal.templates.delete(drip.id)
    assert "drip" in str(conflict.value)
    assert portal.templates.get(drip.id) == drip


def test_templates_are_checked_when_saved(open_portal: PortalFactory) -> None:
    portal = open_portal()
    with pytest.raises(TemplateError) as info:
        portal.templates.create(
            "Typo", kind="welcome", subject="Hi", html="<p>Hi</p>\n<p>{{ login_ulr }}</p>"
        )
    assert info.value.field == "template.html"
    assert "login_ulr" in str(info.value)
    assert "login_url" in str(info.value)  # the suggestion
    assert "line 2" in str(info.value)
    with pytest.raises(TemplateError):
        portal.templates.create("Unsafe", kind="drip", subject="{{ ''.__class__ }}", html="x")
    with pytest.raises(ValidationError) as kind:
        portal.templates.create("Kind", kind="sms", subject="Hi", html="x")
    assert kind.value.field == "kind"
    made = portal.templates.create("Ok", kind="drip", subject="{{ course.title }}", html="x")
    with pytest.raises(Conflict):
        portal.templates.create("Ok", kind="drip", subject="Hi", html="x")
    with pytest.raises(TemplateError):
        portal.templates.update(made.id, html="{{ reset_url }}")  # not a drip variable
    assert portal.templates.list() == [made]
    assert portal.templates.list(kind="welcome") == []


def test_templates_update_preview_and_delete(open_portal: PortalFactory) -> None:
    portal = open_portal()
    made = portal.templates.create(
        "Drip", kind="drip", subject="{{ lessons|length }} new", html="<p>{{ course.title }}</p>"
    )
    portal.clock.advance(minutes=5)
    renamed = portal.templates.update(made.id, name="Drip (new)", text="Plain {{ course.title }}")
    assert (renamed.name, renamed.text, renamed.updated_at) == (
        "Drip (new)",
        "Plain {{ course.title }}",
        portal.clock.now(),
    )
    preview = portal.templates.preview(made.id)
    assert (preview.subject, preview.text) == ("2 new", "Plain Sample course")
    portal.templates.delete(made.id)
    with pytest.raises(NotFound):
        portal.templates.get(made.id)
