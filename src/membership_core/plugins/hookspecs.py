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
    from ..domain.events import DomainEvent
    from ..portal import Portal
    from .registry import AdapterRegistry

PROJECT_NAME = "membership_core"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]


@hookspec
def membership_register_adapters(registry: AdapterRegistry) -> None:
    """Offer adapters: storage back ends, payment gateways and mailers.

    Called once per portal while it opens. Register with the registry's
    methods; registering a name that is already taken raises
    ``ConfigurationError``::

        @hookimpl
        def membership_register_adapters(registry):
            registry.add_gateway("stripe", lambda: StripeGateway(api_key=...))
            registry.add_mailer("ses", SesMailer.from_url)
            registry.add_storage("dynamodb", DynamoStorage)

    Storage factories take the portal URL (``scheme://...``), mailer factories
    the mailer URL, gateway factories nothing.
    """


@hookspec
def membership_domain_event(portal: Portal, event: DomainEvent) -> None:
    """Observe a domain event after it was committed.

    Called once per event and plugin, in the order events occurred, after
    the library's own handlers (certificates, emails) have run. Delivery is
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
