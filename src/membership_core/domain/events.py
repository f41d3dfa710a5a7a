"""Domain events: every state change records one, in the same transaction as the change.

Events are frozen values. :data:`EVENT_TYPES` maps each event's ``type`` name to
its class, which is how stored and serialized events find their way back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

__all__ = [
    "EVENT_TYPES",
    "AccessGranted",
    "AccessExpired",
    "AccessExpiring",
    "AccessRevoked",
    "AssessmentFailed",
    "AssessmentPassed",
    "CertificateIssued",
    "CertificateRevoked",
    "CourseCompleted",
    "DomainEvent",
    "EventRecord",
    "HandledEvent",
    "LessonCompleted",
    "LessonCompletionUndone",
    "LessonPublished",
    "LessonsUnlocked",
    "MemberCreated",
    "MemberDeleted",
    "MemberReactivated",
    "MemberSuspended",
    "MemberUpdated",
    "OfferPurchased",
    "ProductPublished",
    "ProductUnpublished",
    "SettingsChanged",
]


@attrs.frozen(kw_only=True)
class DomainEvent:
    """Base of all events: a unique ``id`` and the instant it ``occurred_at``."""

    id: str
    occurred_at: datetime

    @property
    def type(self) -> str:
        """The event's type name, which tags it in storage and serialized data."""
        return type(self).__name__


@attrs.frozen(kw_only=True)
class MemberCreated(DomainEvent):
    """A member account was created (by checkout, invite or import)."""

    member_id: str
    source: str


@attrs.frozen(kw_only=True)
class MemberUpdated(DomainEvent):
    """An admin changed a member's details; ``fields`` names which (never their values)."""

    member_id: str
    fields: tuple[str, ...]


@attrs.frozen(kw_only=True)
class MemberSuspended(DomainEvent):
    """A member was suspended: no sign-in, no access, sessions ended."""

    member_id: str
    reason: str


@attrs.frozen(kw_only=True)
class MemberReactivated(DomainEvent):
    """A suspended member was made active again."""

    member_id: str


@attrs.frozen(kw_only=True)
class MemberDeleted(DomainEvent):
    """A member's personal data was removed; their anonymous records stay."""

    member_id: str


@attrs.frozen(kw_only=True)
class ProductPublished(DomainEvent):
    """A product became visible to members."""

    product_id: str


@attrs.frozen(kw_only=True)
class ProductUnpublished(DomainEvent):
    """A product was taken back to draft."""

    product_id: str


@attrs.frozen(kw_only=True)
class LessonPublished(DomainEvent):
    """A lesson became visible in a published product (added published, or published later).

    The "new course materials" email to the product's members hangs off it.
    """

    product_id: str
    lesson_id: str


@attrs.frozen(kw_only=True)
class OfferPurchased(DomainEvent):
    """A member bought (or claimed) an offer and the payment succeeded."""

    purchase_id: str
    offer_id: str
    member_id: str


@attrs.frozen(kw_only=True)
class AccessGranted(DomainEvent):
    """A member was given access to a product."""

    enrollment_id: str
    member_id: str
    product_id: str
    purchase_id: str | None


@attrs.frozen(kw_only=True)
class AccessExpiring(DomainEvent):
    """A member's access to a product ends soon (at ``ends_at``): the reminder's trigger."""

    enrollment_id: str
    member_id: str
    product_id: str
    ends_at: datetime


@attrs.frozen(kw_only=True)
class AccessExpired(DomainEvent):
    """A member's access to a product ended (no other grant keeps it open)."""

    enrollment_id: str
    member_id: str
    product_id: str


@attrs.frozen(kw_only=True)
class AccessRevoked(DomainEvent):
    """An admin took a member's access to a product away; ``reason`` says why."""

    enrollment_id: str
    member_id: str
    product_id: str
    reason: str


@attrs.frozen(kw_only=True)
class LessonCompleted(DomainEvent):
    """A member completed a lesson."""

    member_id: str
    product_id: str
    lesson_id: str


@attrs.frozen(kw_only=True)
class LessonCompletionUndone(DomainEvent):
    """An admin undid a member's lesson completion; ``reason`` says why."""

    member_id: str
    product_id: str
    lesson_id: str
    reason: str


@attrs.frozen(kw_only=True)
class LessonsUnlocked(DomainEvent):
    """Dripped lessons opened for a member: one event for all that opened at once.

    The "new material unlocked" email hangs off it, so a member gets one
    email per batch, not one per lesson.
    """

    member_id: str
    product_id: str
    lesson_ids: tuple[str, ...]


@attrs.frozen(kw_only=True)
class _AssessmentSubmitted(DomainEvent):
    """What both outcomes of a submitted attempt tell."""

    member_id: str
    product_id: str
    lesson_id: str
    assessment_id: str
    attempt_id: str
    percent: int


@attrs.frozen(kw_only=True)
class AssessmentPassed(_AssessmentSubmitted):
    """A member passed an assessment (which completed its lesson)."""


@attrs.frozen(kw_only=True)
class AssessmentFailed(_AssessmentSubmitted):
    """A member submitted an attempt that did not pass (or came too late)."""


@attrs.frozen(kw_only=True)
class CourseCompleted(DomainEvent):
    """A member completed every required lesson of a product; fires once per member and product."""

    member_id: str
    product_id: str


@attrs.frozen(kw_only=True)
class CertificateIssued(DomainEvent):
    """A certificate was issued; ``replaces`` names the certificate a reissue replaced."""

    certificate_id: str
    member_id: str
    product_id: str
    serial: str
    replaces: str | None = None


@attrs.frozen(kw_only=True)
class CertificateRevoked(DomainEvent):
    """A certificate was revoked; ``replaced_by`` names its reissue, when it was reissued."""

    certificate_id: str
    member_id: str
    product_id: str
    serial: str
    reason: str
    replaced_by: str | None = None


@attrs.frozen(kw_only=True)
class SettingsChanged(DomainEvent):
    """Portal settings changed: ``fields`` of ``area`` at ``version``, by ``changed_by``."""

    area: str
    fields: tuple[str, ...]
    version: int = 0
    changed_by: str | None = None


@attrs.frozen
class EventRecord:
    """An event as stored in the outbox, with its delivery state."""

    id: str
    type: str
    payload: dict[str, Any]
    occurred_at: datetime
    dispatched_at: datetime | None


def _register(*classes: type[DomainEvent]) -> dict[str, type[DomainEvent]]:
    registry: dict[str, type[DomainEvent]] = {}
    for cls in classes:
        if cls.__name__ in registry:  # silently overwriting would hide a bug
            raise TypeError(f"duplicate domain event type {cls.__name__!r}")
        registry[cls.__name__] = cls
    return registry


#: Every event class by its ``type`` name.
EVENT_TYPES: dict[str, type[DomainEvent]] = _register(
    MemberCreated,
    MemberUpdated,
    MemberSuspended,
    MemberReactivated,
    MemberDeleted,
    ProductPublished,
    ProductUnpublished,
    LessonPublished,
    OfferPurchased,
    AccessGranted,
    AccessRevoked,
    AccessExpiring,
    AccessExpired,
    LessonCompleted,
    LessonCompletionUndone,
    LessonsUnlocked,
    AssessmentPassed,
    AssessmentFailed,
    CourseCompleted,
    CertificateIssued,
    CertificateRevoked,
    SettingsChanged,
)


@attrs.frozen
class HandledEvent:
    """Marks that ``handler`` has applied ``event_id``; unique, so a handler runs once per event."""

    id: str
    event_id: str
    handler: str
    handled_at: datetime
