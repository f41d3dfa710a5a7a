"""Plugins: every hook is documented and exercised; registries refuse duplicates."""

from __future__ import annotations

import inspect
import sys
import textwrap
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from membership_core import (
    AccessDecision,
    AccessReason,
    AdapterRegistry,
    AutomationRule,
    ConfigurationError,
    DomainEvent,
    EmailMessage,
    HostAction,
    LessonState,
    Portal,
    hookimpl,
)
from membership_core.adapters.mail_memory import MemoryMailer
from membership_core.adapters.memory_storage import MemoryStorage
from membership_core.plugins import hookspecs
from membership_core.ports.payments import (
    GatewayCapabilities,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
)

from .conftest import PortalFactory
from .helpers import build_course

HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("membership_"))


def test_every_hook_has_a_docstring_and_a_test() -> None:
    source = Path(__file__).read_text()
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc, f"{name} has no docstring"
        assert len(doc) > 80, f"{name}'s docstring is too thin to be a reference"
        assert f"def test_{name}" in source, f"{name} has no test here"


class _Gateway:
    name = "fake"
    capabilities = GatewayCapabilities()

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        return PaymentResult(PaymentStatus.SUCCEEDED, request.amount, reference="fake_1")


class _Mailer(MemoryMailer):
    pass


def test_membership_register_adapters_offers_storage_mail_and_gateways() -> None:
    made: dict[str, Any] = {}

    class Adapters:
        @hookimpl
        def membership_register_adapters(self, registry: AdapterRegistry) -> None:
            registry.add_storage("custom", lambda url: made.setdefault("storage", MemoryStorage()))
            registry.add_mailer("capture", lambda url: made.setdefault("mailer", _Mailer()))
            registry.add_gateway("fake", _Gateway)

    portal = Portal.open(
        "custom://anything",
        plugins=[Adapters()],
        mailer="capture://",
        default_gateway="fake",
        load_entrypoints=False,
    )
    assert portal.storage is made["storage"]
    assert portal.mailer is made["mailer"]
    course = build_course(portal, lessons=1)
    assert portal.checkout.purchase(course.offer.id, email="a@example.com").gateway == "manual"


def test_registry_refuses_duplicates_and_unknown_names() -> None:
    registry = AdapterRegistry()
    registry.add_gateway("fake", _Gateway)
    with pytest.raises(ConfigurationError) as duplicate:
        registry.add_gateway("fake", _Gateway)
    assert "already registered" in str(duplicate.value)
    with pytest.raises(ConfigurationError) as info:
        registry.gateway("stripe")
    assert "fake" in str(info.value)

    class Clash:
        @hookimpl
        def membership_register_adapters(self, registry: AdapterRegistry) -> None:
            registry.add_storage("memory", lambda url: MemoryStorage())

    with pytest.raises(ConfigurationError):
        Portal.open("memory://", plugins=[Clash()], load_entrypoints=False)


def test_unknown_scheme_and_misspelled_hook_fail_loudly() -> None:
    with pytest.raises(ConfigurationError) as info:
        Portal.open("mysql://x", load_entrypoints=False)
    assert info.value.field == "url"

    class Typo:
        @hookimpl
        def membership_domain_events(self, event: object) -> None: ...

    with pytest.raises(ConfigurationError) as info:
        Portal.open("memory://", plugins=[Typo()], load_entrypoints=False)
    assert info.value.field == "plugins"


def test_membership_domain_event_observes_committed_events(open_portal: PortalFactory) -> None:
    seen: list[tuple[Portal, str]] = []

    class Observer:
        @hookimpl
        def membership_domain_event(self, portal: Portal, event: Any) -> None:
            seen.append((portal, event.type))

    portal = open_portal(plugins=[Observer()])
    build_course(portal, lessons=1)
    assert seen == [(portal, "ProductPublished")]


def test_membership_template_context_adds_host_values(open_portal: PortalFactory) -> None:
    calls: list[tuple[str, Mapping[str, Any]]] = []

    class Context:
        @hookimpl
        def membership_template_context(
            self, kind: str, context: Mapping[str, Any]
        ) -> dict[str, Any]:
            calls.append((kind, context))
            return {"course": {**context["course"], "title": "Renamed by the host"}}

    portal = open_portal(plugins=[Context()])
    course = build_course(portal, lessons=1)
    member_id = portal.checkout.purchase(course.offer.id, email="a@example.com").member_id
    portal.progress.complete_lesson(member_id, course.lessons[0].id)
    assert [kind for kind, _ in calls] == ["course_completed"]
    assert calls[0][1]["member"]["email"] == "a@example.com"
    message: EmailMessage = portal.mailer.last
    assert "Renamed by the host" in message.subject


def test_membership_automation_action_carries_out_host_actions(open_portal: PortalFactory) -> None:
    calls: list[tuple[object, str, str, dict[str, str], str]] = []

    class Crm:
        @hookimpl
        def membership_automation_action(
            self, portal: Portal, rule: AutomationRule, action: HostAction, event: DomainEvent
        ) -> None:
            calls.append((portal, rule.id, action.name, dict(action.params), event.type))

    portal = open_portal(plugins=[Crm()])
    course = build_course(portal, lessons=1)
    rule = portal.automations.create(
        "Tag buyers", trigger="offer_purchased", actions=[HostAction("tag", {"tag": "buyer"})]
    )
    portal.checkout.purchase(course.offer.id, email="a@example.com")
    portal.tick()
    assert calls == [(portal, rule.id, "tag", {"tag": "buyer"}, "OfferPurchased")]


def test_membership_access_decision_can_veto_and_extend(open_portal: PortalFactory) -> None:
    class Policy:
        @hookimpl
        def membership_access_decision(
            self, member_id: str, lesson_id: str, at: datetime, decision: AccessDecision
        ) -> AccessDecision | None:
            if lesson_id == vetoed:
                return AccessDecision(False, AccessReason.POLICY)
            if not decision.allowed:
                return AccessDecision(True, AccessReason.POLICY)
            return None

    portal = open_portal(plugins=[Policy()])
    course = build_course(portal, lessons=2)
    vetoed = course.lessons[0].id
    outsider = portal.members.invite("outsider@example.com")
    assert portal.access.can_view(outsider.id, course.lessons[1].id).allowed
    member_id = portal.checkout.purchase(course.offer.id, email="a@example.com").member_id
    decision = portal.access.can_view(member_id, vetoed)
    assert (decision.allowed, decision.reason) == (False, AccessReason.POLICY)
    # the outline asks the same plugin, so it never disagrees with can_view
    states = {
        lesson.id: lesson.state
        for lesson in portal.access.outline(member_id, course.product.id).lessons()
    }
    assert states[vetoed] is LessonState.NO_ACCESS
    assert states[course.lessons[1].id] is LessonState.AVAILABLE
    outsider_outline = portal.access.outline(outsider.id, course.product.id)
    assert [x.state for x in outsider_outline.lessons()] == [
        LessonState.NO_ACCESS,
        LessonState.AVAILABLE,
    ]


@pytest.fixture
def entry_point_plugin(tmp_path: Path) -> Iterator[list[str]]:
    """Install a plugin distribution (dist-info with an entry point) on sys.path."""
    module = tmp_path / "mc_test_entry_plugin.py"
    module.write_text(
        textwrap.dedent(
            """
            from membership_core import hookimpl
            CALLS = []

            @hookimpl
            def membership_register_adapters(registry):
                CALLS.append("registered")
            """
        )
    )
    dist = tmp_path / "mc_test_entry_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mc-test-entry-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text("[membership_core]\nentry_test = mc_test_entry_plugin\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import mc_test_entry_plugin  # type: ignore[import-not-found]

        yield mc_test_entry_plugin.CALLS
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mc_test_entry_plugin", None)


def test_entry_point_plugins_are_discovered_and_can_be_left_out(
    entry_point_plugin: list[str],
) -> None:
    Portal.open("memory://", load_entrypoints=False)
    assert entry_point_plugin == []
    portal = Portal.open("memory://")
    assert entry_point_plugin == ["registered"]
    assert portal.plugins.manager.get_plugin("entry_test") is not None


def test_events_nobody_listens_to_are_recorded_already_dispatched() -> None:
    from membership_core.testing import TestPortal, make_test_portal

    def publish(portal: TestPortal, title: str) -> None:
        product = portal.catalog.create_product(title)
        module = portal.catalog.add_category(product.id, "One")
        portal.catalog.add_lesson(product.id, module.id, "Lesson")
        portal.catalog.publish_product(product.id)

    quiet = make_test_portal()
    publish(quiet, "Unobserved")
    with quiet.storage.unit_of_work(quiet.tenant) as uow:
        records = uow.events.find()
    assert [r.type for r in records] == ["ProductPublished"]  # still kept as a record
    assert records[0].dispatched_at == records[0].occurred_at
    assert quiet.tick().events_dispatched == 0

    class Observer:
        def __init__(self) -> None:
            self.seen: list[str] = []

        @hookimpl
        def membership_domain_event(self, portal: object, event: DomainEvent) -> None:
            self.seen.append(event.type)

    observer = Observer()
    watched = make_test_portal(plugins=[observer])
    publish(watched, "Observed")
    assert observer.seen == ["ProductPublished"]
    with watched.storage.unit_of_work(watched.tenant) as uow:
        assert all(r.dispatched_at is not None for r in uow.events.find())
