"""Automations: rules that act when something happens to a member. ``portal.automations``.

A rule names a trigger, optional conditions and actions in order (see
:mod:`membership_core.domain.automations`). :class:`AutomationsService` keeps
the rules; :class:`AutomationRunner` runs them from the events, as a handler
source of the dispatcher (:mod:`membership_core.services.events`):

- Every action of a rule runs in its own transaction with its own
  ``HandledEvent`` marker (``automation:<rule id>:<action key>``), so it takes
  effect once per event and rule, even when workers dispatch at the same time.
- An action that fails (raises) ends the rule's run for this event: the event
  stays queued, and the next ``tick()`` retries from that action, without
  repeating the ones before it. Other rules of the same event go on.
- Rules are read when an event is dispatched. An event still queued runs a
  rule as it is then: one disabled or deleted meanwhile does not run, an
  edited one runs as edited (an action it already ran is never repeated:
  markers follow the action, not its position). A rule runs only for events
  that occurred while it was enabled (since ``enabled_at``): creating or
  switching on a rule never works through a backlog.

Every portal gets the built-in rules of :data:`~membership_core.domain.
automations.DEFAULT_RULES` once, when it is first opened: "Course completion"
(course completed → issue the certificate, then send the congratulations
email, which links to it). An admin sees, edits, disables or deletes it like
any rule; it is never given again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .. import _validate as v
from ..domain.automations import (
    DEFAULT_RULES,
    Action,
    AutomationRule,
    Conditions,
    EventFacts,
    GrantOffer,
    HostAction,
    IssueCertificate,
    SendEmail,
    Trigger,
    check_rule,
)
from ..domain.checkpoints import Checkpoint
from ..domain.email_settings import StoredTemplate
from ..domain.enrollments import EnrollmentSource
from ..domain.events import (
    AccessExpiring,
    AccessGranted,
    CertificateIssued,
    CourseCompleted,
    DomainEvent,
    LessonCompleted,
    OfferPurchased,
)
from ..domain.members import MemberStatus
from ..domain.windows import resolve
from ..errors import ConfigurationError, Conflict, Contention, NotFound, ValidationError
from ..ports.storage import UnitOfWork
from ..templating import DEFAULT_TEMPLATE_VARIABLES, DEFAULT_TEMPLATES
from ._context import Context, Service
from ._unset import UNSET, _Unset
from .access import AccessService
from .automated_emails import course_values, lesson_values, offer_values
from .certificates import CertificatesService
from .events import Step
from .mail import MailService

__all__ = ["AutomationRunner", "AutomationsService"]

log = logging.getLogger(__name__)

#: The checkpoint counting the built-in rules a portal has been given.
_DEFAULTS = "automation_defaults"
#: Values every email to a member has: member, portal and a sign-in link minted on demand.
_ALWAYS = frozenset({"member", "portal", "login_url", "login_code"})


def _actions(value: object) -> tuple[Action, ...]:
    """``actions`` as a tuple; its items are checked by :func:`check_rule`."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError("actions", f"must be a list of actions, not {type(value).__name__}")
    return tuple(value)


def _conditions(value: object) -> Conditions:
    if value is None:
        return Conditions()
    if not isinstance(value, Conditions):
        raise ValidationError(
            "conditions", f"must be Conditions or None, not {type(value).__name__}"
        )
    return value


def _grant_reason(rule: AutomationRule) -> str:
    """The reason of a rule's grants; it starts with :func:`_grant_prefix`."""
    return f"{_grant_prefix(rule)} {rule.name}"


def _grant_prefix(rule: AutomationRule) -> str:
    return f"automation {rule.id}:"


class AutomationsService(Service):
    """Create, read, change and delete the portal's automation rules."""

    def create(
        self,
        name: str,
        *,
        trigger: Trigger | str,
        actions: Iterable[Action],
        conditions: Conditions | None = None,
        enabled: bool = True,
    ) -> AutomationRule:
        """Save a new rule; it runs for events from now on (when ``enabled``).

        Every argument is checked first, with a ``ValidationError`` naming it
        (``trigger``, ``conditions.offer_ids``, ``actions[1]``,
        ``actions[0].template``, ...); offers, products and templates the rule
        names must exist in this portal (``NotFound`` naming the field, such
        as ``actions[1].offer_id``). A failed call writes nothing.

        >>> from membership_core import Portal, SendEmail
        >>> portal = Portal.open("memory://")
        >>> rule = portal.automations.create(
        ...     "Well done", trigger="lesson_completed", actions=[SendEmail("welcome")]
        ... )
        >>> rule.trigger.value, rule.enabled
        ('lesson_completed', True)
        """
        name = v.text("name", name, max_length=200)
        chosen = v.choice("trigger", trigger, Trigger)
        rule_conditions = _conditions(conditions)
        rule_actions = _actions(actions)
        enabled = v.boolean("enabled", enabled)
        check_rule(chosen, rule_conditions, rule_actions)
        with self._ctx.uow() as uow:
            self._check_references(uow, chosen, rule_conditions, rule_actions)
            now = self._ctx.now()
            rule = AutomationRule(
                self._ctx.ids.new("rule"),
                name,
                chosen,
                rule_conditions,
                rule_actions,
                enabled,
                now,
                now,
                now if enabled else None,
            )
            uow.automation_rules.add(rule)
            uow.commit()
        return rule

    def get(self, rule_id: str) -> AutomationRule:
        """The rule, or ``NotFound``."""
        v.identifier("rule_id", rule_id, "rule")
        with self._ctx.uow(write=False) as uow:
            return self._require(uow.automation_rules, "automation rule", rule_id, "rule_id")

    def list(self, *, trigger: Trigger | str | None = None) -> list[AutomationRule]:
        """The portal's rules (of one ``trigger``), oldest first: the order they run in."""
        where = {} if trigger is None else {"trigger": v.choice("trigger", trigger, Trigger)}
        with self._ctx.uow(write=False) as uow:
            return uow.automation_rules.find(where, order_by=["created_at"])

    def update(
        self,
        rule_id: str,
        *,
        name: str | _Unset = UNSET,
        trigger: Trigger | str | _Unset = UNSET,
        conditions: Conditions | _Unset | None = UNSET,
        actions: Iterable[Action] | _Unset = UNSET,
        enabled: bool | _Unset = UNSET,
    ) -> AutomationRule:
        """Change some parts of a rule; the new whole is checked as :meth:`create` checks.

        ``conditions=None`` removes the conditions. Switching a rule on again
        (``enabled=True``) makes it run for events from then on, never for
        those that occurred while it was off.
        """
        v.identifier("rule_id", rule_id, "rule")
        new_name = UNSET if isinstance(name, _Unset) else v.text("name", name, max_length=200)
        new_trigger = (
            UNSET if isinstance(trigger, _Unset) else v.choice("trigger", trigger, Trigger)
        )
        new_conditions = UNSET if isinstance(conditions, _Unset) else _conditions(conditions)
        new_actions = UNSET if isinstance(actions, _Unset) else _actions(actions)
        new_enabled = UNSET if isinstance(enabled, _Unset) else v.boolean("enabled", enabled)
        with self._ctx.uow() as uow:
            current = self._require_for_update(
                uow.automation_rules, "automation rule", rule_id, "rule_id"
            )
            rule_trigger = current.trigger if isinstance(new_trigger, _Unset) else new_trigger
            rule_conditions = (
                current.conditions if isinstance(new_conditions, _Unset) else new_conditions
            )
            rule_actions = current.actions if isinstance(new_actions, _Unset) else new_actions
            check_rule(rule_trigger, rule_conditions, rule_actions)
            self._check_references(uow, rule_trigger, rule_conditions, rule_actions)
            now = self._ctx.now()
            on = current.enabled if isinstance(new_enabled, _Unset) else new_enabled
            enabled_at = (current.enabled_at or now) if current.enabled else now
            changed = attrs.evolve(
                current,
                name=current.name if isinstance(new_name, _Unset) else new_name,
                trigger=rule_trigger,
                conditions=rule_conditions,
                actions=rule_actions,
                enabled=on,
                enabled_at=enabled_at if on else None,
            )
            if changed == current:
                return current
            updated = attrs.evolve(changed, updated_at=now)
            uow.automation_rules.update(updated)
            uow.commit()
        return updated

    def enable(self, rule_id: str) -> AutomationRule:
        """Switch the rule on: it runs for events from now on (``update(enabled=True)``)."""
        return self.update(rule_id, enabled=True)

    def disable(self, rule_id: str) -> AutomationRule:
        """Switch the rule off: it runs no more, not even for events still queued."""
        return self.update(rule_id, enabled=False)

    def delete(self, rule_id: str) -> None:
        """Delete the rule; events still queued no longer run it (what it did stays)."""
        v.identifier("rule_id", rule_id, "rule")
        with self._ctx.uow() as uow:
            self._require_for_update(uow.automation_rules, "automation rule", rule_id, "rule_id")
            uow.automation_rules.delete(rule_id)
            uow.commit()

    def _seed_defaults(self) -> None:
        """Give the portal the built-in rules it has not been given yet (each once, ever).

        Called when a portal is opened. One read when there is nothing to do;
        a rule an admin deleted is not given again, because the checkpoint
        counts what was given, not what is left.
        """
        with self._ctx.uow(write=False) as uow:
            mark = uow.checkpoints.get(_DEFAULTS)
        if mark is not None and mark.position >= len(DEFAULT_RULES):
            return
        try:
            with self._ctx.uow() as uow:
                mark = uow.checkpoints.get_for_update(_DEFAULTS)
                given = 0 if mark is None else mark.position
                if given >= len(DEFAULT_RULES):
                    return  # given by another server since the look above
                now = self._ctx.now()
                for default in DEFAULT_RULES[given:]:
                    uow.automation_rules.add(
                        AutomationRule(
                            self._ctx.ids.new("rule"),
                            default.name,
                            default.trigger,
                            Conditions(),
                            default.actions,
                            True,
                            now,
                            now,
                            now,
                        )
                    )
                checkpoint = Checkpoint(_DEFAULTS, len(DEFAULT_RULES), now)
                if mark is None:
                    uow.checkpoints.add(checkpoint)
                else:
                    uow.checkpoints.update(checkpoint)
                uow.commit()
        except (Conflict, Contention):
            pass  # another server opening the portal at this moment gave them

    def _check_references(
        self,
        uow: UnitOfWork,
        trigger: Trigger,
        conditions: Conditions,
        actions: tuple[Action, ...],
    ) -> None:
        """Raise unless what the rule names exists in this portal and its emails fit."""
        for field, repository, kind, ids in (
            ("conditions.product_ids", uow.products, "product", conditions.product_ids),
            ("conditions.offer_ids", uow.offers, "offer", conditions.offer_ids),
        ):
            found = {item.id for item in repository.find_in("id", list(ids))} if ids else set()
            for missing in (item for item in ids if item not in found):
                raise NotFound(kind, missing, field=field)
        for index, action in enumerate(actions):
            if isinstance(action, SendEmail):
                self._check_email(uow, trigger, f"actions[{index}].template", action.template)
            elif isinstance(action, GrantOffer):
                self._require(uow.offers, "offer", action.offer_id, f"actions[{index}].offer_id")
            elif (
                isinstance(action, HostAction)
                and not self._ctx.plugins.hook.membership_automation_action.get_hookimpls()
            ):
                raise ValidationError(
                    f"actions[{index}].name",
                    "no plugin carries out host actions: register one implementing "
                    "membership_automation_action first",
                )

    @staticmethod
    def _check_email(uow: UnitOfWork, trigger: Trigger, field: str, template: str) -> None:
        if template.startswith("tpl_"):
            v.identifier(field, template, "tpl")
            # Locked, so a template being deleted right now cannot be chosen meanwhile.
            stored = uow.email_templates.get_for_update(template)
            if stored is None:
                raise NotFound("template", template, field=field)
            kind = stored.kind
        elif template in DEFAULT_TEMPLATES:
            kind = template
        else:
            raise ValidationError(
                field,
                f"must be a default email ({', '.join(DEFAULT_TEMPLATES)}) or a tpl_... "
                f"template id, not {template!r}",
            )
        missing = [name for name in DEFAULT_TEMPLATE_VARIABLES[kind] if name not in trigger.values]
        if missing:
            raise ValidationError(
                field,
                f"a {kind!r} email needs {', '.join(missing)}, which {trigger.value} "
                "events do not give",
            )


def _nothing(_uow: UnitOfWork, _event: DomainEvent) -> None:
    """The in-transaction part of a host action: only its marker is written."""


class AutomationRunner(Service):
    """Runs the rules from the events: the dispatcher's :class:`~.events.HandlerSource`."""

    def __init__(
        self,
        context: Context,
        certificates: CertificatesService,
        mail: MailService,
        access: AccessService,
    ) -> None:
        super().__init__(context)
        self._certificates = certificates
        self._mail = mail
        self._access = access

    def listens(self, uow: UnitOfWork, event: DomainEvent) -> bool:
        """Whether an enabled rule may run for ``event``: one indexed read, no more.

        Conditions the event alone cannot decide (the products of a
        purchased offer, the offer behind a grant) count as met here; the
        dispatch decides them.
        """
        trigger = Trigger.of(event)
        if trigger is None:
            return False
        rules = uow.automation_rules.find({"trigger": trigger, "enabled": True})
        facts = _recorded_facts(event)
        return any(rule.runs_for(event) and rule.conditions.matches(facts) for rule in rules)

    def chains(self, event: DomainEvent) -> list[list[Step]]:
        """One chain per rule that runs for ``event``, in the order the rules were made."""
        trigger = Trigger.of(event)
        if trigger is None:
            return []
        with self._ctx.uow(write=False) as uow:
            rules = [
                rule
                for rule in uow.automation_rules.find(
                    {"trigger": trigger, "enabled": True}, order_by=["created_at"]
                )
                if rule.runs_for(event)
            ]
            if not rules:
                return []
            facts = _facts(uow, event)
        return [
            [self._step(rule, action) for action in rule.actions]
            for rule in rules
            if rule.conditions.matches(facts)
        ]

    def _step(self, rule: AutomationRule, action: Action) -> Step:
        name = f"automation:{rule.id}:{action.key}"
        if isinstance(action, SendEmail):
            return Step(name, functools.partial(self._send_email, rule, action))
        if isinstance(action, IssueCertificate):
            return Step(name, self._issue_certificate)
        if isinstance(action, GrantOffer):
            return Step(name, functools.partial(self._grant_offer, rule, action))
        return Step(name, _nothing, outside=functools.partial(self._host_action, rule, action))

    # the actions ---------------------------------------------------------------

    def _send_email(
        self, rule: AutomationRule, action: SendEmail, uow: UnitOfWork, event: DomainEvent
    ) -> None:
        member = uow.members.get(_member_id(event))
        if member is None:
            return
        kind = action.template
        stored: StoredTemplate | None = None
        if kind.startswith("tpl_"):
            stored = uow.email_templates.get(kind)
            if stored is None:  # deleting a template in use is refused; a race left this
                log.warning("rule %s: template %s is gone; no email sent", rule.id, kind)
                return
            kind = stored.kind
        values = self._values(uow, event)
        missing = [
            n for n in DEFAULT_TEMPLATE_VARIABLES[kind] if n not in values and n not in _ALWAYS
        ]
        if missing:
            # The records the email is about are gone; retrying would not bring them back.
            log.warning("rule %s: no %s for event %s; no email sent", rule.id, missing, event.id)
            return
        self._mail._queue_for_member(
            uow, kind, member, values, f"automation:{rule.id}:{action.key}:{event.id}", stored
        )

    def _issue_certificate(self, uow: UnitOfWork, event: DomainEvent) -> None:
        member_id, product_id = _member_id(event), getattr(event, "product_id", None)
        if not isinstance(product_id, str):
            return
        where = {"member_id": member_id, "product_id": product_id}
        if not uow.course_completions.count(where):
            return  # never a certificate without a completion
        if uow.members.get(member_id) is None or uow.products.get(product_id) is None:
            return
        self._certificates._issue(uow, member_id, product_id)

    def _grant_offer(
        self, rule: AutomationRule, action: GrantOffer, uow: UnitOfWork, event: DomainEvent
    ) -> None:
        # Locked: two events of one member granting at once cannot both miss the other.
        member = uow.members.get_for_update(_member_id(event))
        if member is None or member.status is MemberStatus.DELETED:
            return
        offer = uow.offers.get(action.offer_id)
        if offer is None:
            log.warning("rule %s: offer %s is gone; nothing granted", rule.id, action.offer_id)
            return
        starts_at, ends_at = resolve(offer.access_window, self._ctx.now())
        prefix = _grant_prefix(rule)
        for product_id in offer.product_ids:
            if uow.products.get(product_id) is None:
                continue
            grants = uow.enrollments.find({"member_id": member.id, "product_id": product_id})
            if any(
                grant.source is EnrollmentSource.ADMIN and (grant.reason or "").startswith(prefix)
                for grant in grants
            ):
                continue  # this rule gave it already: once per member, so rules cannot loop
            self._access._grant(uow, member.id, product_id, _grant_reason(rule), starts_at, ends_at)

    def _host_action(self, rule: AutomationRule, action: HostAction, event: DomainEvent) -> None:
        hook = self._ctx.plugins.hook.membership_automation_action
        if not hook.get_hookimpls():
            # Failing keeps it queued until a worker with the host's plugin runs it.
            raise ConfigurationError(
                f"no plugin carries out host action {action.name!r} of rule {rule.id}"
            )
        hook(portal=self._ctx.portal, rule=rule, action=action, event=event)

    # template values -------------------------------------------------------------

    def _values(self, uow: UnitOfWork, event: DomainEvent) -> dict[str, Any]:
        """The template values ``event`` gives, from the records it names that still exist."""
        base = self._base_url(uow)
        values: dict[str, Any] = {}
        product_id = getattr(event, "product_id", None)
        product = uow.products.get(product_id) if isinstance(product_id, str) else None
        if product is not None:
            values["course"] = course_values(base, product)
        if isinstance(event, OfferPurchased):
            offer = uow.offers.get(event.offer_id)
            if offer is not None:
                values["offer"] = offer_values(base, offer)
        if isinstance(event, LessonCompleted):
            lesson = uow.lessons.get(event.lesson_id)
            if lesson is not None:
                values["lessons"] = [lesson_values(base, lesson)]
        certificate = None
        if isinstance(event, CertificateIssued):
            certificate = uow.certificates.get(event.certificate_id)
        elif isinstance(event, CourseCompleted):
            # Issued by an earlier action of this rule or another rule: the email links it.
            certificate = self._certificates._latest(uow, event.member_id, event.product_id)
        if certificate is not None:
            values["certificate"] = self._certificates._email_values(uow, certificate)
        return values


def _member_id(event: DomainEvent) -> str:
    """The member every trigger's event is about."""
    member_id = getattr(event, "member_id", None)
    if not isinstance(member_id, str):
        raise TypeError(f"{event.type} names no member")
    return member_id


def _recorded_facts(event: DomainEvent) -> EventFacts:
    """What ``event`` itself says about its products and offers (no reads)."""
    product_id = getattr(event, "product_id", None)
    products = frozenset({product_id}) if isinstance(product_id, str) else None
    offers: frozenset[str] | None = None
    if isinstance(event, OfferPurchased):
        offers = frozenset({event.offer_id})
    elif isinstance(event, AccessGranted) and event.purchase_id is None:
        offers = frozenset()  # an admin's grant: no offer behind it
    return EventFacts(products, offers)


def _facts(uow: UnitOfWork, event: DomainEvent) -> EventFacts:
    """The products and offers ``event`` is about, reading what it points to."""
    if isinstance(event, OfferPurchased):
        offer = uow.offers.get(event.offer_id)
        products = frozenset(offer.product_ids) if offer is not None else frozenset()
        return EventFacts(products, frozenset({event.offer_id}))
    product_id = getattr(event, "product_id", None)
    products = frozenset({product_id}) if isinstance(product_id, str) else frozenset()
    purchase_id: str | None = None
    if isinstance(event, AccessGranted):
        purchase_id = event.purchase_id
    elif isinstance(event, AccessExpiring):
        enrollment = uow.enrollments.get(event.enrollment_id)
        purchase_id = enrollment.purchase_id if enrollment is not None else None
    purchase = uow.purchases.get(purchase_id) if purchase_id is not None else None
    return EventFacts(products, frozenset({purchase.offer_id}) if purchase else frozenset())
