"""Every extension point of membership_core: the plugin author's reference.

Implement hooks in a module or class, mark them with
:data:`membership_core.hookimpl`, and pass the plugin to
``Portal.open(..., plugins=[...])`` or publish it under the ``membership_core``
entry-point group. An implementation may accept fewer arguments than the spec
lists; new arguments can be added to a spec without breaking plugins.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ..domain.access import AccessDecision
    from ..domain.automations import AutomationRule, HostAction
    from ..domain.events import DomainEvent
    from ..portal import Portal
    from .registry import AdapterRegistry

PROJECT_NAME = "membership_core"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]


@hookspec
def membership_register_adapters(registry: AdapterRegistry) -> None:
    """Offer adapters: storage back ends, payment gateways, mailers, media stores, certificate
    renderers.

    Called once per portal while it opens. Register with the registry's
    methods; registering a name that is already taken raises
    ``ConfigurationError``::

        @hookimpl
        def membership_register_adapters(registry):
            registry.add_gateway("stripe", lambda: StripeGateway(api_key=...))
            registry.add_mailer("ses", SesMailer.from_url)
            registry.add_storage("dynamodb", DynamoStorage)
            registry.add_media_store("s3", S3MediaStore.from_url)
            registry.add_certificate_renderer("png", PngCertificateRenderer())

    Storage factories take the portal URL (``scheme://...``), mailer factories
    the mailer URL, media store factories the media store URL (they build a
    :class:`~membership_core.ports.media.MediaStore`), gateway factories
    nothing; a certificate renderer is an object
    (:class:`~membership_core.ports.certificates.CertificateRenderer`) used by
    ``portal.certificates.render(certificate_id, format)``.
    """


@hookspec
def membership_domain_event(portal: Portal, event: DomainEvent) -> None:
    """Observe a domain event after it was committed.

    Called once per event and plugin, in the order events occurred, after
    the library's own handlers (automation rules, automated emails) have run. Delivery is
    at least once: after a crash, ``portal.tick()`` re-delivers events whose
    dispatch did not finish, so make observers idempotent (the event ``id`` is
    stable). An exception in an observer is logged and the event stays queued
    for the next tick.
    """


@hookspec
def membership_template_context(
    portal: Portal, kind: str, context: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """Add values to the context of an email template of ``kind``.

    ``kind`` is e.g. ``"course_completed"``; ``context`` is the context built so
    far (read-only). Return a mapping of extra top-level variables, or
    ``None``. Values must be plain data (str, numbers, lists, dicts): templates
    are written by portal admins and render in a sandbox.
    """


@hookspec(firstresult=True)
def membership_access_decision(
    portal: Portal, member_id: str, lesson_id: str, at: datetime, decision: AccessDecision
) -> AccessDecision | None:
    """Veto or extend an access decision.

    ``decision`` is what the library decided. Return a different
    :class:`~membership_core.AccessDecision` to override it, or ``None`` to
    keep it. The first plugin that returns a value wins.
    """


@hookspec
def membership_automation_action(
    portal: Portal, rule: AutomationRule, action: HostAction, event: DomainEvent
) -> None:
    """Carry out a host action of an automation rule (tag the contact in the CRM, ...).

    Called when ``rule`` runs for ``event`` and reaches ``action``, a
    :class:`~membership_core.HostAction` with the ``name`` and ``params`` the
    admin chose; every plugin implementing the hook is called. Act on the
    names you know and ignore the others (another plugin may know them).

    Raising means the action failed: it is logged, the rule's later actions
    wait, the event stays queued, and the next ``portal.tick()`` calls the
    hook again for this action (the actions before it are not repeated).
    Returning means it is done: it is not called again for this event and
    rule. The hook runs outside any transaction of the library (calling the
    portal from it is fine); a crash between its return and the library
    noting it done calls it once more, so make it idempotent: ``event.id``,
    ``rule.id`` and ``action.name`` are stable. A rule with a host action
    can only be saved while a plugin implements this hook; when a worker
    without one reaches the action, it fails and waits for one that has it.
    """
