"""Automation rules: when something happens to a member, do these things, in order. Pure.

A rule has a :class:`Trigger` (the kind of event it reacts to), optional
:class:`Conditions` (which products or offers the event must be about) and
one to twenty actions, run in order: :class:`SendEmail`,
:class:`IssueCertificate`, :class:`GrantOffer` and :class:`HostAction` (the
tagged union :data:`Action`).

>>> rule_actions = (IssueCertificate(), SendEmail("course_completed"))
>>> check_rule(Trigger.COURSE_COMPLETED, Conditions(), rule_actions)
>>> check_rule(Trigger.LESSON_COMPLETED, Conditions(offer_ids=["off_1"]), rule_actions)
Traceback (most recent call last):
...
membership_core.errors.ValidationError: conditions.offer_ids: lesson_completed events are ...

Every action carries a ``kind`` literal, so its serialized form says which
action it is and the library's cattrs converter can structure the union, as
for pricing plans. Each action also has a :attr:`~SendEmail.key`, stable
across edits of the rule: the dispatcher marks an action done for an event
under it, so a retry never repeats an action that already ran, even when the
rule was edited (its actions reordered) in between. Two equal actions in one
rule would share a key, and are refused.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import attrs

from .. import _validate
from ..errors import ValidationError
from ._fields import aware as _aware
from ._fields import kind as _kind
from .events import EVENT_TYPES, DomainEvent

__all__ = [
    "ACTION_TYPES",
    "DEFAULT_RULES",
    "MAX_ACTIONS",
    "MAX_CONDITION_IDS",
    "Action",
    "AutomationRule",
    "Conditions",
    "DefaultRule",
    "EventFacts",
    "GrantOffer",
    "HostAction",
    "IssueCertificate",
    "SendEmail",
    "Trigger",
    "check_rule",
]

#: How many actions a rule may have.
MAX_ACTIONS = 20
#: How many products (and, separately, offers) a condition may name.
MAX_CONDITION_IDS = 100
_MAX_NAME = 200
_MAX_TEMPLATE = 64
_MAX_ACTION_NAME = 100
_MAX_PARAMS = 50
_MAX_PARAM_KEY = 100
_MAX_PARAM_VALUE = 2000
#: Template values an email for any member can use: a sign-in link is minted on demand.
_ALWAYS = frozenset({"member", "portal", "login_url", "login_code"})


class Trigger(enum.Enum):
    """What a rule reacts to: one kind of domain event.

    ``offer_purchased`` (``OfferPurchased``: an offer bought or claimed),
    ``access_granted`` (``AccessGranted``: by a purchase or an admin),
    ``lesson_completed`` (``LessonCompleted``), ``course_completed``
    (``CourseCompleted``: every required lesson done), ``certificate_issued``
    (``CertificateIssued``), ``access_expiring`` (``AccessExpiring``: the
    reminder before a grant ends). ``assessment_passed`` and
    ``assessment_failed`` react to ``AssessmentPassed`` and
    ``AssessmentFailed`` (each submitted attempt of an assessment).
    """

    OFFER_PURCHASED = "offer_purchased"
    ACCESS_GRANTED = "access_granted"
    LESSON_COMPLETED = "lesson_completed"
    COURSE_COMPLETED = "course_completed"
    ASSESSMENT_PASSED = "assessment_passed"
    ASSESSMENT_FAILED = "assessment_failed"
    CERTIFICATE_ISSUED = "certificate_issued"
    ACCESS_EXPIRING = "access_expiring"

    @property
    def event_name(self) -> str:
        """The ``type`` of the events this trigger reacts to (``"CourseCompleted"``)."""
        return _EVENT_NAMES[self]

    @property
    def event_type(self) -> type[DomainEvent] | None:
        """The event class, or ``None`` while this release has no such event."""
        return EVENT_TYPES.get(self.event_name)

    @property
    def about_one_product(self) -> bool:
        """Whether its events are about one product (a purchase is about an offer's products)."""
        return self is not Trigger.OFFER_PURCHASED

    @property
    def condition_fields(self) -> frozenset[str]:
        """The :class:`Conditions` fields its events can satisfy."""
        if self in _ABOUT_AN_OFFER:
            return frozenset({"product_ids", "offer_ids"})
        return frozenset({"product_ids"})

    @property
    def values(self) -> frozenset[str]:
        """The email template values its events give (``member``, ``portal``, a login link: all)."""
        return _ALWAYS | _VALUES[self]

    @classmethod
    def of(cls, event: DomainEvent) -> Trigger | None:
        """The trigger ``event`` fires, or ``None``."""
        return _TRIGGER_OF.get(event.type)


_EVENT_NAMES: dict[Trigger, str] = {
    Trigger.OFFER_PURCHASED: "OfferPurchased",
    Trigger.ACCESS_GRANTED: "AccessGranted",
    Trigger.LESSON_COMPLETED: "LessonCompleted",
    Trigger.COURSE_COMPLETED: "CourseCompleted",
    Trigger.ASSESSMENT_PASSED: "AssessmentPassed",
    Trigger.ASSESSMENT_FAILED: "AssessmentFailed",
    Trigger.CERTIFICATE_ISSUED: "CertificateIssued",
    Trigger.ACCESS_EXPIRING: "AccessExpiring",
}
_TRIGGER_OF: dict[str, Trigger] = {name: trigger for trigger, name in _EVENT_NAMES.items()}
#: Triggers whose events can be traced to an offer (a grant through its purchase).
_ABOUT_AN_OFFER = frozenset(
    {Trigger.OFFER_PURCHASED, Trigger.ACCESS_GRANTED, Trigger.ACCESS_EXPIRING}
)
_VALUES: dict[Trigger, frozenset[str]] = {
    Trigger.OFFER_PURCHASED: frozenset({"offer"}),
    Trigger.ACCESS_GRANTED: frozenset({"course"}),
    Trigger.LESSON_COMPLETED: frozenset({"course", "lessons"}),
    Trigger.COURSE_COMPLETED: frozenset({"course", "certificate"}),
    Trigger.ASSESSMENT_PASSED: frozenset({"course"}),
    Trigger.ASSESSMENT_FAILED: frozenset({"course"}),
    Trigger.CERTIFICATE_ISSUED: frozenset({"course", "certificate"}),
    Trigger.ACCESS_EXPIRING: frozenset({"course"}),
}


# --------------------------------------------------------------------------- conditions


def _id_tuple(field: str, prefix: str, value: object) -> tuple[str, ...]:
    """A list or tuple of ``prefix_...`` ids, as a tuple without repeats."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValidationError(field, f"must be a list of {prefix}_... ids, not {value!r}")
    ids = tuple(dict.fromkeys(_validate.identifier(field, item, prefix) for item in value))
    if len(ids) > MAX_CONDITION_IDS:
        raise ValidationError(field, f"may name at most {MAX_CONDITION_IDS} ids")
    return ids


def _product_ids(value: object) -> tuple[str, ...]:
    return _id_tuple("product_ids", "prod", value)


def _offer_ids(value: object) -> tuple[str, ...]:
    return _id_tuple("offer_ids", "off", value)


@attrs.frozen
class EventFacts:
    """What conditions are checked against: the products and offers an event is about.

    ``None`` means not known (yet): when an event is recorded, the library
    only looks at what the event itself says, and a condition it cannot
    decide then may still match.
    """

    product_ids: frozenset[str] | None
    offer_ids: frozenset[str] | None


@attrs.frozen
class Conditions:
    """Which events of its trigger a rule runs for; an empty tuple means any.

    ``product_ids``: the event is about one of these products (for
    ``offer_purchased``: the offer includes one of them). ``offer_ids``: the
    event is about one of these offers (``offer_purchased``, and
    ``access_granted`` and ``access_expiring`` for grants made by buying one).
    Both given: both must hold.

    >>> facts = EventFacts(frozenset({"prod_1"}), frozenset())
    >>> Conditions().matches(facts), Conditions(product_ids=["prod_2"]).matches(facts)
    (True, False)
    """

    product_ids: tuple[str, ...] = attrs.field(default=(), converter=_product_ids)
    offer_ids: tuple[str, ...] = attrs.field(default=(), converter=_offer_ids)

    def matches(self, facts: EventFacts) -> bool:
        """Whether an event with these facts meets the conditions (unknown facts may)."""
        for wanted, known in (
            (self.product_ids, facts.product_ids),
            (self.offer_ids, facts.offer_ids),
        ):
            if wanted and known is not None and known.isdisjoint(wanted):
                return False
        return True


# --------------------------------------------------------------------------- actions


def _text_field(field: str, max_length: int) -> Any:
    """An attrs validator: a non-empty string without spaces around, at most ``max_length``."""

    def check(_instance: Any, _attribute: Any, value: object) -> None:
        if not isinstance(value, str):
            raise ValidationError(field, f"must be a string, not {type(value).__name__}")
        if not value.strip() or value != value.strip():
            raise ValidationError(field, f"must be non-empty, without spaces around: {value!r}")
        if len(value) > max_length:
            raise ValidationError(field, f"must be at most {max_length} characters")

    return check


@attrs.frozen
class SendEmail:
    """Email the member: a default template by name, or an admin's template by id.

    ``template`` is the name of a shipped email (``"course_completed"``,
    ``"offer_access"``, ``"welcome"``, ...) or the id of a template made with
    ``portal.templates`` (``"tpl_..."``). Its kind must fit the trigger: the
    values the email needs (``course``, ``offer``, ...) must be ones the
    trigger's events give (see :attr:`Trigger.values`). Sent whatever the
    email settings say: the rule is the switch.
    """

    template: str = attrs.field(validator=_text_field("template", _MAX_TEMPLATE))
    kind: Literal["send_email"] = _kind("send_email")

    @property
    def key(self) -> str:
        """This action's name among the rule's actions (see the module docstring)."""
        return f"send_email:{self.template}"


@attrs.frozen
class IssueCertificate:
    """Issue the member's certificate for the event's product, if they have completed it.

    Never a certificate without a completion: for an event about a product
    the member has not completed (a lesson done, access granted), the action
    does nothing. Issued once per member and product, whichever rule asks.
    """

    kind: Literal["issue_certificate"] = _kind("issue_certificate")

    @property
    def key(self) -> str:
        """This action's name among the rule's actions (see the module docstring)."""
        return "issue_certificate"


def _offer_id(_instance: Any, _attribute: Any, value: Any) -> None:
    _validate.identifier("offer_id", value, "off")


@attrs.frozen
class GrantOffer:
    """Give the member the products of another offer: an admin grant naming the rule.

    The grants follow the offer's access window, counted from when the
    action runs, and record ``AccessGranted``. A rule grants an offer's
    product to a member at most once, however often it fires for them (a
    second purchase, rules granting each other's offers): so no chain of
    rules can grant in a loop.
    """

    offer_id: str = attrs.field(validator=_offer_id)
    kind: Literal["grant_offer"] = _kind("grant_offer")

    @property
    def key(self) -> str:
        """This action's name among the rule's actions (see the module docstring)."""
        return f"grant_offer:{self.offer_id}"


def _params(value: object) -> Mapping[str, str]:
    """A read-only copy of a mapping of short strings to strings, sorted by key."""
    if not isinstance(value, Mapping):
        raise ValidationError("params", f"must be a mapping of strings, not {type(value).__name__}")
    if len(value) > _MAX_PARAMS:
        raise ValidationError("params", f"may hold at most {_MAX_PARAMS} entries")
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > _MAX_PARAM_KEY:
            raise ValidationError(
                "params", f"keys must be strings of 1-{_MAX_PARAM_KEY} characters, not {key!r}"
            )
        if not isinstance(item, str) or len(item) > _MAX_PARAM_VALUE:
            raise ValidationError(
                f"params.{key}", f"must be a string of at most {_MAX_PARAM_VALUE} characters"
            )
    return MappingProxyType(dict(sorted(value.items())))


@attrs.frozen
class HostAction:
    """Something the host application does, by ``name`` with ``params`` (tag the contact, ...).

    Carried out by the host's plugins through the
    ``membership_automation_action`` hook, outside any transaction of the
    library. A plugin raising means the action failed: it is retried on the
    next tick. A crash just after the plugin returned runs it once more, so
    plugins make it idempotent (the event's ``id`` and the rule's are stable).
    """

    name: str = attrs.field(validator=_text_field("name", _MAX_ACTION_NAME))
    params: Mapping[str, str] = attrs.field(
        factory=dict, converter=_params, hash=False, repr=lambda value: repr(dict(value))
    )
    kind: Literal["host_action"] = _kind("host_action")

    @property
    def key(self) -> str:
        """This action's name among the rule's actions (see the module docstring)."""
        digest = hashlib.sha256(json.dumps(dict(self.params)).encode()).hexdigest()[:12]
        return f"host_action:{self.name}:{digest}"


#: One action of a rule.
Action: TypeAlias = SendEmail | IssueCertificate | GrantOffer | HostAction
#: The action classes, for ``isinstance`` checks and messages.
ACTION_TYPES: tuple[type[Action], ...] = (SendEmail, IssueCertificate, GrantOffer, HostAction)


# --------------------------------------------------------------------------- rules


def check_rule(trigger: Trigger, conditions: Conditions, actions: tuple[object, ...]) -> None:
    """Raise ``ValidationError`` naming the part of a rule that cannot work.

    Conditions the trigger's events cannot satisfy (``conditions.offer_ids``
    on ``lesson_completed``), no action or more than :data:`MAX_ACTIONS`,
    something that is not an action (``actions[2]``), an action repeated,
    and :class:`IssueCertificate` on a trigger that is not about one product.
    What needs storage (do the offers and templates exist? does the email fit
    the trigger?) is the service's check.
    """
    if not isinstance(trigger, Trigger):
        raise ValidationError("trigger", f"must be a Trigger, not {type(trigger).__name__}")
    if not isinstance(conditions, Conditions):
        raise ValidationError(
            "conditions", f"must be Conditions or None, not {type(conditions).__name__}"
        )
    for field in ("product_ids", "offer_ids"):
        if getattr(conditions, field) and field not in trigger.condition_fields:
            what = "a product" if field == "product_ids" else "an offer"
            raise ValidationError(
                f"conditions.{field}", f"{trigger.value} events are not about {what}"
            )
    if not 1 <= len(actions) <= MAX_ACTIONS:
        raise ValidationError(
            "actions", f"must hold 1 to {MAX_ACTIONS} actions, not {len(actions)}"
        )
    seen: dict[str, int] = {}
    names = ", ".join(kind.__name__ for kind in ACTION_TYPES)
    for index, action in enumerate(actions):
        if not isinstance(action, ACTION_TYPES):
            raise ValidationError(
                f"actions[{index}]", f"must be one of {names}, not {type(action).__name__}"
            )
        if action.key in seen:
            raise ValidationError(f"actions[{index}]", f"repeats actions[{seen[action.key]}]")
        seen[action.key] = index
        if isinstance(action, IssueCertificate) and not trigger.about_one_product:
            raise ValidationError(
                f"actions[{index}]",
                f"a certificate is for one product; {trigger.value} events are about an offer",
            )


def _check_name(_instance: Any, _attribute: Any, value: Any) -> None:
    if _validate.text("name", value, max_length=_MAX_NAME) != value:
        raise ValidationError("name", "must not have spaces around it")


def _actions(value: object) -> tuple[object, ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError("actions", f"must be a list of actions, not {type(value).__name__}")
    return tuple(value)


@attrs.frozen
class AutomationRule:
    """A rule: on ``trigger``, for events meeting ``conditions``, run ``actions`` in order.

    ``enabled_at`` is when the rule was last switched on (``None`` while it
    is off): it runs only for events that occurred since, so neither creating
    nor switching on a rule ever works through a backlog.
    """

    id: str
    name: str = attrs.field(validator=_check_name)
    trigger: Trigger
    conditions: Conditions
    actions: tuple[Action, ...] = attrs.field(converter=_actions)
    enabled: bool
    created_at: datetime = attrs.field(validator=_aware("created_at"))
    updated_at: datetime = attrs.field(validator=_aware("updated_at"))
    enabled_at: datetime | None = None

    def __attrs_post_init__(self) -> None:
        check_rule(self.trigger, self.conditions, self.actions)
        if self.enabled and self.enabled_at is None:
            raise ValidationError("enabled_at", "must be set while the rule is enabled")

    def runs_for(self, event: DomainEvent) -> bool:
        """Whether this rule, as it is now, runs for ``event`` (trigger, switch and time).

        Conditions are checked apart: they may need facts the event does not carry.
        """
        return (
            self.enabled
            and self.enabled_at is not None
            and self.enabled_at <= event.occurred_at
            and Trigger.of(event) is self.trigger
        )


@attrs.frozen
class DefaultRule:
    """A rule every portal starts with; an admin may edit, disable or delete it."""

    name: str
    trigger: Trigger
    actions: tuple[Action, ...]


#: The built-in rules, in the order they were introduced (a portal gets each once).
#: The certificate comes first: the congratulations email links to it.
DEFAULT_RULES: tuple[DefaultRule, ...] = (
    DefaultRule(
        "Course completion",
        Trigger.COURSE_COMPLETED,
        (IssueCertificate(), SendEmail("course_completed")),
    ),
)
