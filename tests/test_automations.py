"""Automation rules: triggers, conditions, actions in order, exactly once, retries, the default."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from membership_core import (
    AccessWindow,
    AutomationRule,
    Conditions,
    Conflict,
    DomainEvent,
    EndAfter,
    EnrollmentSource,
    GrantOffer,
    HostAction,
    IssueCertificate,
    MembershipError,
    NotFound,
    SendEmail,
    SequentialIds,
    Trigger,
    ValidationError,
    hookimpl,
    structure,
    unstructure,
)
from membership_core.domain.assessments import Question, QuestionKind
from membership_core.domain.automations import MAX_ACTIONS
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import Course, build_course


class Host:
    """A host plugin carrying out host actions: it records them, and fails on request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []  # (rule name, action name, event type)
        self.failures: Counter[str] = Counter()  # action name -> times still to fail
        self.on_call: Callable[[AutomationRule, HostAction, DomainEvent], None] | None = None

    @hookimpl
    def membership_automation_action(
        self, rule: AutomationRule, action: HostAction, event: DomainEvent
    ) -> None:
        if self.failures[action.name]:
            self.failures[action.name] -= 1
            raise ConnectionError(f"{action.name}: the host's CRM is down")
        if self.on_call is not None:
            self.on_call(rule, action, event)
        self.calls.append((rule.name, action.name, event.type))


def _kinds(portal: TestPortal) -> list[tuple[str, str]]:
    """(kind, to) of every message in the outbox, oldest first."""
    return [(m.kind, m.message.to) for m in portal.mail.outbox(limit=1000)]


def _queued(portal: TestPortal) -> list[str]:
    """The types of the events waiting for dispatch."""
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        return [record.type for record in uow.events.find({"dispatched_at": None})]


def _bonus(portal: TestPortal, title: str = "Bonus") -> Course:
    """A second course, sold by its own free offer."""
    return build_course(portal, lessons=1, title=title)


def _automation_grants(portal: TestPortal, member_id: str, product_id: str) -> list[str]:
    """The reasons of the admin grants of ``product_id`` to the member."""
    return [
        e.reason or ""
        for e in portal.access.enrollments(member_id)
        if e.product_id == product_id and e.source is EnrollmentSource.ADMIN
    ]


# -- triggers -------------------------------------------------------------------------


def test_every_trigger_with_an_event_fires_its_rule(open_portal: PortalFactory) -> None:
    host = Host()
    portal = open_portal(plugins=[host])
    portal.tick()  # sets the expiry notices' mark
    course = build_course(portal, lessons=1)
    ten_days = portal.offers.create_offer(
        "Ten days", [course.product.id], access_window=AccessWindow(end=EndAfter(10))
    )
    portal.offers.publish(ten_days.id)
    for trigger in Trigger:
        portal.automations.create(
            trigger.value, trigger=trigger, actions=[HostAction("record", {})]
        )
    quiz = portal.assessments.create(
        course.lessons[0].id,
        [Question("q", QuestionKind.TRUE_FALSE, "Done?", ("true",))],
        pass_percent=100,
    )
    member = portal.checkout.purchase(ten_days.id, email="ada@example.com").member_id
    failed = portal.assessments.start_attempt(member, quiz.id)
    portal.assessments.submit(member, failed.attempt_id, {"q": False})
    passed = portal.assessments.start_attempt(member, quiz.id)
    portal.assessments.submit(member, passed.attempt_id, {"q": True})  # completes the lesson
    portal.clock.advance(days=4)  # the end is 6 days away: the reminder is due
    portal.tick()
    portal.tick()
    fired = Counter((rule, event) for rule, _, event in host.calls)
    assert fired == {
        ("offer_purchased", "OfferPurchased"): 1,
        ("access_granted", "AccessGranted"): 1,
        ("lesson_completed", "LessonCompleted"): 1,
        ("course_completed", "CourseCompleted"): 1,
        ("certificate_issued", "CertificateIssued"): 1,
        ("access_expiring", "AccessExpiring"): 1,
        ("assessment_failed", "AssessmentFailed"): 1,
        ("assessment_passed", "AssessmentPassed"): 1,
    }
    assert [r.trigger for r in portal.automations.list(trigger="assessment_passed")] == [
        Trigger.ASSESSMENT_PASSED
    ]


def test_conditions_choose_the_products_and_offers(open_portal: PortalFactory) -> None:
    host = Host()
    portal = open_portal(plugins=[host])
    python, rust = build_course(portal, title="Python"), build_course(portal, title="Rust")
    bundle = portal.offers.publish(
        portal.offers.create_offer("Both", [python.product.id, rust.product.id]).id
    )
    record = [HostAction("record", {})]
    create = portal.automations.create
    create(
        "python done",
        trigger="course_completed",
        actions=record,
        conditions=Conditions(product_ids=[python.product.id]),
    )
    create(
        "bundle bought",
        trigger="offer_purchased",
        actions=record,
        conditions=Conditions(offer_ids=[bundle.id]),
    )
    create(
        "rust in an offer",
        trigger="offer_purchased",
        actions=record,
        conditions=Conditions(product_ids=[rust.product.id]),
    )
    create(
        "python bought alone",
        trigger="access_granted",
        actions=record,
        conditions=Conditions(offer_ids=[python.offer.id]),
    )
    create(
        "rust from the bundle",
        trigger="access_granted",
        actions=record,
        conditions=Conditions(product_ids=[rust.product.id], offer_ids=[bundle.id]),
    )

    ada = portal.checkout.purchase(python.offer.id, email="ada@example.com").member_id
    bob = portal.checkout.purchase(bundle.id, email="bob@example.com").member_id
    portal.access.grant(ada, rust.product.id, reason="gift")  # an admin's grant: no offer
    for member, course in ((ada, rust), (bob, python)):
        for lesson in course.lessons:
            portal.progress.complete_lesson(member, lesson.id)
    portal.tick()
    assert Counter(rule for rule, _, _ in host.calls) == {
        "python bought alone": 1,  # ada's purchase; not the bundle's grant of Python to bob
        "bundle bought": 1,
        "rust in an offer": 1,  # the bundle includes Rust; the Python offer does not
        "rust from the bundle": 1,  # bob's; ada's Rust came from an admin
        "python done": 1,  # bob; ada completed Rust only
    }


def test_events_nobody_listens_to_stay_cheap(open_portal: PortalFactory) -> None:
    """An event whose trigger no enabled rule takes is stored already dispatched."""
    portal = open_portal()
    course = build_course(portal, lessons=1)
    other = _bonus(portal, "Other")
    portal.automations.create(
        "Other only",
        trigger="access_granted",
        conditions=Conditions(product_ids=[other.product.id]),
        actions=[SendEmail("welcome")],
    )
    portal._context.after_commit = lambda: None  # keep what waits waiting
    portal.checkout.purchase(course.offer.id, email="ada@example.com")
    assert _queued(portal) == []  # the rule's condition rules these events out
    portal.checkout.purchase(other.offer.id, email="ada@example.com")
    assert _queued(portal) == ["AccessGranted"]


# -- actions --------------------------------------------------------------------------


def test_actions_run_in_order_each_in_its_own_step(open_portal: PortalFactory) -> None:
    host = Host()
    portal = open_portal(plugins=[host])
    course, bonus = build_course(portal, lessons=1), _bonus(portal)
    seen: list[tuple[str, list[str], list[str]]] = []

    def look(_rule: AutomationRule, action: HostAction, event: DomainEvent) -> None:
        member_id = getattr(event, "member_id", "")
        grants = [e.product_id for e in portal.access.enrollments(member_id)]
        seen.append((action.name, grants, [kind for kind, _ in _kinds(portal)]))

    host.on_call = look
    rule = portal.automations.create(
        "Next course",
        trigger="course_completed",
        actions=[
            HostAction("before"),
            GrantOffer(bonus.offer.id),
            SendEmail("welcome"),
            HostAction("after"),
        ],
    )
    member = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    portal.progress.complete_lesson(member, course.lessons[0].id)
    # The default rule (certificate, congratulations) ran before this one: made first.
    assert seen == [
        ("before", [course.product.id], ["course_completed"]),
        ("after", [course.product.id, bonus.product.id], ["course_completed", "welcome"]),
    ]
    assert _automation_grants(portal, member, bonus.product.id) == [
        f"automation {rule.id}: Next course"
    ]
    assert portal.access.can_view(member, bonus.lessons[0].id).allowed


def test_emails_get_the_values_of_their_trigger(open_portal: PortalFactory) -> None:
    portal = open_portal(platform_url="https://learn.example.com")
    course = build_course(portal, lessons=2, title="Knitting")
    done = portal.templates.create(
        "Lesson done",
        kind="drip",
        subject="{{ lessons[0].title }} of {{ course.title }} done",
        html="<p>{{ member.first_name }}</p>",
    )
    portal.automations.create(
        "Lesson done", trigger="lesson_completed", actions=[SendEmail(done.id)]
    )
    portal.automations.create(
        "Thanks", trigger="offer_purchased", actions=[SendEmail("offer_access")]
    )
    member = portal.checkout.purchase(
        course.offer.id, email="ada@example.com", first_name="Ada"
    ).member_id
    portal.progress.complete_lesson(member, course.lessons[0].id)
    subjects = [m.subject for m in portal.mailer.messages_to("ada@example.com")]
    assert subjects == ["You now have access to Knitting (free)", "Lesson 1 of Knitting done"]
    assert f"https://learn.example.com/courses/{course.product.id}" in portal.mailer.sent[0].text


def test_grant_offer_gives_a_member_its_products_once_so_rules_cannot_loop(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal()
    course, bonus = build_course(portal, lessons=1), _bonus(portal)
    thirty_days = portal.offers.create_offer(
        "Bonus for 30 days", [bonus.product.id], access_window=AccessWindow(end=EndAfter(30))
    )
    # Any access granted grants the bonus, whose grant is access granted, ...
    rule = portal.automations.create(
        "Bonus with everything", trigger="access_granted", actions=[GrantOffer(thirty_days.id)]
    )
    member = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    portal.checkout.purchase(course.offer.id, email="ada@example.com")  # again: no more bonus
    portal.tick()
    (grant,) = [e for e in portal.access.enrollments(member) if e.product_id == bonus.product.id]
    assert grant.reason == f"automation {rule.id}: Bonus with everything"
    assert grant.ends_at == grant.starts_at + timedelta(days=30)
    assert _queued(portal) == []


def test_issue_certificate_needs_a_completion(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=2)
    portal.automations.create("Eager", trigger="lesson_completed", actions=[IssueCertificate()])
    member = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    portal.progress.complete_lesson(member, course.lessons[0].id)
    assert portal.certificates.for_member(member) == []
    assert _queued(portal) == []  # nothing to do is done, not a failure
    portal.progress.complete_lesson(member, course.lessons[1].id)
    assert len(portal.certificates.for_member(member)) == 1


# -- exactly once ---------------------------------------------------------------------


def test_each_action_runs_once_across_redelivery_and_concurrent_ticks(
    open_portal: PortalFactory,
) -> None:
    ids = SequentialIds()  # shared, so workers never mint the same id
    portal = open_portal(ids=ids)
    course, bonus = build_course(portal, lessons=1), _bonus(portal)
    portal.automations.create(
        "Next course",
        trigger="course_completed",
        actions=[GrantOffer(bonus.offer.id), SendEmail("welcome")],
    )
    members = [
        portal.checkout.purchase(course.offer.id, email=f"m{n}@example.com").member_id
        for n in range(4)
    ]
    portal._context.after_commit = lambda: None  # as if the process died after each commit
    for member in members:
        portal.progress.complete_lesson(member, course.lessons[0].id)
    assert _queued(portal) == ["CourseCompleted"] * 4
    workers = [open_portal(portal.storage, start=portal.clock.now(), ids=ids) for _ in range(4)]
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def work(worker: TestPortal) -> None:
        barrier.wait()
        try:
            worker.tick()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for _ in range(2):  # redelivery changes nothing
        portal.tick()
    assert _queued(portal) == []
    for member in members:
        assert len(portal.certificates.for_member(member)) == 1
        assert len(_automation_grants(portal, member, bonus.product.id)) == 1
    assert Counter(kind for kind, _ in _kinds(portal)) == {"course_completed": 4, "welcome": 4}


def test_a_failing_action_is_retried_without_repeating_the_ones_before(
    open_portal: PortalFactory,
) -> None:
    host = Host()
    host.failures["tag"] = 2
    portal = open_portal(plugins=[host])
    course, bonus = build_course(portal, lessons=1), _bonus(portal)
    rule = portal.automations.create(
        "Tag and bonus",
        trigger="offer_purchased",
        conditions=Conditions(offer_ids=[course.offer.id]),
        actions=[
            SendEmail("offer_access"),
            HostAction("tag", {"tag": "buyer"}),
            GrantOffer(bonus.offer.id),
        ],
    )
    portal.automations.create("Record", trigger="offer_purchased", actions=[HostAction("record")])
    member = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    # The tag failed: the bonus waits, the event stays queued; the other rule ran.
    assert _kinds(portal) == [("offer_access", "ada@example.com")]
    assert _automation_grants(portal, member, bonus.product.id) == []
    assert "OfferPurchased" in _queued(portal)
    assert host.calls == [("Record", "record", "OfferPurchased")]
    portal.tick()  # fails again
    assert _automation_grants(portal, member, bonus.product.id) == []
    portal.tick()
    assert host.calls[1:] == [("Tag and bonus", "tag", "OfferPurchased")]
    assert _automation_grants(portal, member, bonus.product.id) == [
        f"automation {rule.id}: Tag and bonus"
    ]
    assert _kinds(portal) == [("offer_access", "ada@example.com")]  # not sent again
    portal.tick()
    assert len(host.calls) == 2
    assert _queued(portal) == []


def test_a_host_action_without_a_plugin_waits_for_a_worker_with_one(
    open_portal: PortalFactory,
) -> None:
    host, ids = Host(), SequentialIds()
    portal = open_portal(plugins=[host], ids=ids)
    course = build_course(portal, lessons=1)
    portal.automations.create("Tag", trigger="offer_purchased", actions=[HostAction("tag")])
    bare = open_portal(portal.storage, start=portal.clock.now(), ids=ids)  # a worker without it
    portal._context.after_commit = lambda: None
    portal.checkout.purchase(course.offer.id, email="ada@example.com")
    bare.tick()
    assert _queued(portal) == ["OfferPurchased"]
    portal.tick()
    assert host.calls == [("Tag", "tag", "OfferPurchased")]
    assert _queued(portal) == []


# -- when rules run -------------------------------------------------------------------


def test_rules_are_read_when_the_event_is_dispatched(open_portal: PortalFactory) -> None:
    host = Host()
    portal = open_portal(plugins=[host])
    course = build_course(portal, lessons=1)
    record = [HostAction("record")]
    switched_off = portal.automations.create("Off", trigger="offer_purchased", actions=record)
    removed = portal.automations.create("Removed", trigger="offer_purchased", actions=record)
    renamed = portal.automations.create("Before", trigger="offer_purchased", actions=record)
    toggled = portal.automations.create("Toggled", trigger="offer_purchased", actions=record)
    portal._context.after_commit = lambda: None  # the event waits for the tick
    portal.checkout.purchase(course.offer.id, email="ada@example.com")
    portal.clock.advance(minutes=1)
    portal.automations.disable(switched_off.id)
    portal.automations.delete(removed.id)
    portal.automations.update(renamed.id, name="After")
    portal.automations.disable(toggled.id)
    again = portal.automations.enable(toggled.id)
    assert again.enabled_at == portal.clock.now()
    portal.automations.create("Later", trigger="offer_purchased", actions=record)
    portal.tick()
    # Disabled, deleted: not run. Edited: run as it is now. Switched on again, or
    # made, after the purchase: not run for it.
    assert host.calls == [("After", "record", "OfferPurchased")]


def test_a_disabled_rule_does_not_listen(open_portal: PortalFactory) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    rule = portal.automations.create(
        "Off", trigger="offer_purchased", actions=[SendEmail("offer_access")], enabled=False
    )
    assert (rule.enabled, rule.enabled_at) == (False, None)
    portal.checkout.purchase(course.offer.id, email="ada@example.com")
    portal.automations.enable(rule.id)
    portal.tick()
    assert _kinds(portal) == []  # no backlog
    portal.checkout.purchase(course.offer.id, email="bob@example.com")
    assert _kinds(portal) == [("offer_access", "bob@example.com")]


# -- the default rule -----------------------------------------------------------------


def test_every_portal_has_the_course_completion_rule(open_portal: PortalFactory) -> None:
    portal = open_portal()
    (rule,) = portal.automations.list()
    assert (rule.name, rule.trigger, rule.conditions, rule.enabled) == (
        "Course completion",
        Trigger.COURSE_COMPLETED,
        Conditions(),
        True,
    )
    assert rule.actions == (IssueCertificate(), SendEmail("course_completed"))
    course = build_course(portal, lessons=1)
    member = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    portal.progress.complete_lesson(member, course.lessons[0].id)
    (certificate,) = portal.certificates.for_member(member)
    (sent,) = portal.mailer.sent
    assert certificate.serial in sent.text  # issued first, so the email links it


def test_the_default_rule_can_be_edited_disabled_and_deleted(open_portal: PortalFactory) -> None:
    ids = SequentialIds()
    portal = open_portal(ids=ids)
    (rule,) = portal.automations.list()
    course = build_course(portal, lessons=1)

    def complete(email: str) -> str:
        member = portal.checkout.purchase(course.offer.id, email=email).member_id
        portal.progress.complete_lesson(member, course.lessons[0].id)
        return member

    portal.automations.update(rule.id, actions=[IssueCertificate()])  # no email
    ada = complete("ada@example.com")
    assert len(portal.certificates.for_member(ada)) == 1
    assert portal.mailer.sent == []
    portal.automations.disable(rule.id)
    bob = complete("bob@example.com")
    assert portal.certificates.for_member(bob) == []
    portal.automations.delete(rule.id)
    # Opening the portal again does not bring it back.
    again = open_portal(portal.storage, start=portal.clock.now(), ids=ids)
    assert again.automations.list() == []
    cy = complete("cy@example.com")
    assert portal.certificates.for_member(cy) == []
    assert portal.progress.is_completed(cy, course.product.id)


def test_portals_opened_at_once_get_one_default_rule(open_portal: PortalFactory) -> None:
    first = open_portal()
    storage = first.storage
    with storage.unit_of_work("fresh") as uow:
        assert uow.automation_rules.find() == []
    ids = SequentialIds()
    barrier = threading.Barrier(4)
    opened: list[TestPortal] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            opened.append(open_portal(storage, tenant="fresh", ids=ids))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [r.name for r in opened[0].automations.list()] == ["Course completion"]


# -- validation -----------------------------------------------------------------------


Call = Callable[[TestPortal, dict[str, Any]], object]


def _create(**options: Any) -> Call:
    """``automations.create`` with good defaults, except for ``options``."""

    def call(portal: TestPortal, world: dict[str, Any]) -> object:
        arguments: dict[str, Any] = {
            "trigger": "course_completed",
            "actions": [IssueCertificate()],
        }
        arguments.update({k: v(world) if callable(v) else v for k, v in options.items()})
        name = arguments.pop("name", "A rule")
        return portal.automations.create(name, **arguments)

    return call


INVALID: list[tuple[str, Call, type[MembershipError], str]] = [
    ("empty name", _create(name=" "), ValidationError, "name"),
    ("unknown trigger", _create(trigger="birthday"), ValidationError, "trigger"),
    ("no actions", _create(actions=[]), ValidationError, "actions"),
    ("actions not a list", _create(actions="send"), ValidationError, "actions"),
    (
        "too many actions",
        _create(actions=[HostAction(f"a{n}") for n in range(MAX_ACTIONS + 1)]),
        ValidationError,
        "actions",
    ),
    (
        "not an action",
        _create(actions=[IssueCertificate(), "email"]),
        ValidationError,
        "actions[1]",
    ),
    (
        "an action twice",
        _create(actions=[SendEmail("welcome"), SendEmail("welcome")]),
        ValidationError,
        "actions[1]",
    ),
    ("conditions not Conditions", _create(conditions={"x": 1}), ValidationError, "conditions"),
    (
        "offer condition on lessons",
        _create(
            trigger="lesson_completed", conditions=lambda w: Conditions(offer_ids=[w["offer"]])
        ),
        ValidationError,
        "conditions.offer_ids",
    ),
    (
        "missing product",
        _create(conditions=lambda w: Conditions(product_ids=[w["product"], "prod_gone"])),
        NotFound,
        "conditions.product_ids",
    ),
    (
        "missing offer in a condition",
        _create(
            trigger="offer_purchased",
            actions=[SendEmail("offer_access")],
            conditions=Conditions(offer_ids=["off_gone"]),
        ),
        NotFound,
        "conditions.offer_ids",
    ),
    (
        "missing offer to grant",
        _create(actions=[IssueCertificate(), GrantOffer("off_gone")]),
        NotFound,
        "actions[1].offer_id",
    ),
    (
        "unknown email",
        _create(actions=[SendEmail("birthday")]),
        ValidationError,
        "actions[0].template",
    ),
    (
        "an email the trigger cannot fill",
        _create(actions=[SendEmail("offer_access")]),
        ValidationError,
        "actions[0].template",
    ),
    (
        "a template of an unfit kind",
        _create(trigger="offer_purchased", actions=lambda w: [SendEmail(w["drip_template"])]),
        ValidationError,
        "actions[0].template",
    ),
    ("missing template", _create(actions=[SendEmail("tpl_gone")]), NotFound, "actions[0].template"),
    (
        "a certificate for an offer",
        _create(trigger="offer_purchased", actions=[IssueCertificate()]),
        ValidationError,
        "actions[0]",
    ),
    (
        "a host action without a plugin",
        _create(actions=[HostAction("tag")]),
        ValidationError,
        "actions[0].name",
    ),
    ("enabled not a bool", _create(enabled="yes"), ValidationError, "enabled"),
    (
        "update an unknown rule",
        lambda p, w: p.automations.update("rule_gone", name="x"),
        NotFound,
        "rule_id",
    ),
    ("get a bad id", lambda p, w: p.automations.get("off_1"), ValidationError, "rule_id"),
    (
        "update to a missing offer",
        lambda p, w: p.automations.update(w["rule"], actions=[GrantOffer("off_gone")]),
        NotFound,
        "actions[0].offer_id",
    ),
    (
        "update to an unfit trigger",
        lambda p, w: p.automations.update(w["rule"], trigger="offer_purchased"),
        ValidationError,
        "actions[0]",
    ),
    ("delete an unknown rule", lambda p, w: p.automations.delete("rule_gone"), NotFound, "rule_id"),
]


@pytest.mark.parametrize(("case", "call", "error", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_bad_arguments_name_the_field_and_write_nothing(
    open_portal: PortalFactory,
    case: str,
    call: Call,
    error: type[MembershipError],
    field: str,
) -> None:
    portal = open_portal()
    course = build_course(portal, lessons=1)
    drip = portal.templates.create("Drip", kind="drip", subject="New", html="<p>New</p>")
    (rule,) = portal.automations.list()
    world = {
        "product": course.product.id,
        "offer": course.offer.id,
        "drip_template": drip.id,
        "rule": rule.id,
    }
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        before = (uow.automation_rules.find(), uow.events.count(), uow.email_templates.find())
    with pytest.raises(error) as raised:
        call(portal, world)
    assert raised.value.field == field, case
    with portal.storage.unit_of_work(portal.tenant, write=False) as uow:
        after = (uow.automation_rules.find(), uow.events.count(), uow.email_templates.find())
    assert after == before


def test_actions_and_conditions_check_their_own_fields() -> None:
    for make, field in [
        (lambda: GrantOffer("prod_1"), "offer_id"),
        (lambda: SendEmail(""), "template"),
        (lambda: HostAction(" tag"), "name"),
        (lambda: HostAction("tag", {"tag": 1}), "params.tag"),
        (lambda: HostAction("tag", ["tag"]), "params"),
        (lambda: Conditions(product_ids="prod_1"), "product_ids"),
        (lambda: Conditions(offer_ids=["prod_1"]), "offer_ids"),
    ]:
        with pytest.raises(ValidationError) as raised:
            make()
        assert raised.value.field == field


def test_a_template_a_rule_sends_cannot_be_deleted(open_portal: PortalFactory) -> None:
    portal = open_portal()
    branded = portal.templates.create(
        "Well done",
        kind="course_completed",
        subject="Well done, {{ member.email }}",
        html="<p>{{ course.title }} {% if certificate is defined %}{{ certificate.serial }}"
        "{% endif %}</p>",
    )
    (rule,) = portal.automations.list()
    portal.automations.update(rule.id, actions=[IssueCertificate(), SendEmail(branded.id)])
    with pytest.raises(Conflict) as refused:
        portal.templates.delete(branded.id)
    assert "Course completion" in str(refused.value)
    course = build_course(portal, lessons=1)
    member = portal.checkout.purchase(course.offer.id, email="ada@example.com").member_id
    portal.progress.complete_lesson(member, course.lessons[0].id)
    (certificate,) = portal.certificates.for_member(member)
    assert portal.mailer.last.subject == "Well done, ada@example.com"
    assert certificate.serial in (portal.mailer.last.html or "")
    portal.automations.update(rule.id, actions=[IssueCertificate()])
    portal.templates.delete(branded.id)


def test_rules_serialize_and_come_back(open_portal: PortalFactory) -> None:
    portal = open_portal(plugins=[Host()])
    course = build_course(portal, lessons=1)
    rule = portal.automations.create(
        "Everything",
        trigger="access_granted",
        conditions=Conditions(product_ids=[course.product.id], offer_ids=[course.offer.id]),
        actions=[
            IssueCertificate(),
            SendEmail("welcome"),
            GrantOffer(course.offer.id),
            HostAction("tag", {"tag": "x"}),
        ],
    )
    data = unstructure(rule)
    assert data["actions"][3] == {"kind": "host_action", "name": "tag", "params": {"tag": "x"}}
    assert structure(data, AutomationRule) == rule == portal.automations.get(rule.id)
