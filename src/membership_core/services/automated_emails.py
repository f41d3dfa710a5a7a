"""The automated emails, sent from the events that cause them (Settings → Email Settings).

Each is a built-in event handler run by the dispatcher (exactly once per
event, see :mod:`membership_core.services.events`): it asks the portal's
email settings whether the email is on for an event at that instant and
which template to use, and queues it in the handler's transaction. The
idempotency keys make a redelivered event send nothing twice.

============================  =====================  ==============================
Email (setting)               Event                  Sent to
============================  =====================  ==============================
``welcome`` (Sign-up)         ``MemberCreated``      the new member, with a login link
``offer_access``              ``OfferPurchased``     the buyer
``drip``                      ``LessonsUnlocked``    the member whose lessons opened
``new_materials``             ``LessonPublished``    every member with access then
``new_comment``               (the host's own)       ``portal.mail.send_automated``
============================  =====================  ==============================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..domain.catalog import Lesson, Product
from ..domain.email_settings import AutomatedEmail
from ..domain.enrollments import EnrollmentStatus
from ..domain.events import (
    DomainEvent,
    LessonPublished,
    LessonsUnlocked,
    MemberCreated,
    OfferPurchased,
)
from ..domain.offers import Offer
from ..ports.storage import UnitOfWork
from ._context import Context, Service
from .mail import MailService

__all__ = ["AutomatedEmails"]

Handler = Callable[[UnitOfWork, Any], None]


def course_values(base: str, product: Product) -> dict[str, str]:
    """The ``course`` template value."""
    return {"title": product.title, "url": f"{base}/courses/{product.id}"}


def lesson_values(base: str, lesson: Lesson) -> dict[str, str]:
    """One item of the ``lessons`` template value."""
    return {
        "title": lesson.title,
        "url": f"{base}/courses/{lesson.product_id}/lessons/{lesson.id}",
    }


def offer_values(base: str, offer: Offer) -> dict[str, str]:
    """The ``offer`` template value: one course links straight to it, a bundle to the library."""
    url = f"{base}/courses/{offer.product_ids[0]}" if len(offer.product_ids) == 1 else base
    return {"title": offer.title, "url": url}


#: The automated email each event causes.
_EMAIL_OF: dict[type[DomainEvent], AutomatedEmail] = {
    MemberCreated: AutomatedEmail.WELCOME,
    OfferPurchased: AutomatedEmail.OFFER_ACCESS,
    LessonsUnlocked: AutomatedEmail.DRIP,
    LessonPublished: AutomatedEmail.NEW_MATERIALS,
}


class AutomatedEmails(Service):
    """The handlers that send the automated emails (registered by the dispatcher)."""

    def __init__(self, context: Context, mail: MailService) -> None:
        super().__init__(context)
        self._mail = mail

    def handlers(self) -> list[tuple[str, type[DomainEvent], Handler]]:
        """``(name, event type, handler)`` for the dispatcher; names are stable markers."""
        return [
            ("email.welcome", MemberCreated, self._welcome),
            ("email.offer_access", OfferPurchased, self._offer_access),
            ("email.drip", LessonsUnlocked, self._drip),
            ("email.new_materials", LessonPublished, self._new_materials),
        ]

    @staticmethod
    def owns(handler_name: str) -> bool:
        """Whether ``handler_name`` is one of these handlers."""
        return handler_name.startswith("email.")

    def sends_for(self, uow: UnitOfWork, event: DomainEvent) -> bool:
        """Whether ``event`` causes an automated email that is switched on."""
        email = _EMAIL_OF.get(type(event))
        if email is None:
            return False
        return self._settings(uow).email.choice(email).sends_for(event.occurred_at)

    def _base(self, uow: UnitOfWork) -> str:
        return self._base_url(uow)

    def _welcome(self, uow: UnitOfWork, event: MemberCreated) -> None:
        member = uow.members.get(event.member_id)
        if member is None:
            return
        self._mail.queue_automated(
            uow, AutomatedEmail.WELCOME, member, {}, f"welcome:{member.id}", event.occurred_at
        )

    def _offer_access(self, uow: UnitOfWork, event: OfferPurchased) -> None:
        member = uow.members.get(event.member_id)
        offer = uow.offers.get(event.offer_id)
        if member is None or offer is None:
            return
        self._mail.queue_automated(
            uow,
            AutomatedEmail.OFFER_ACCESS,
            member,
            {"offer": offer_values(self._base(uow), offer)},
            f"offer_access:{event.purchase_id}",
            event.occurred_at,
        )

    def _drip(self, uow: UnitOfWork, event: LessonsUnlocked) -> None:
        member = uow.members.get(event.member_id)
        product = uow.products.get(event.product_id)
        if member is None or product is None:
            return
        lessons = sorted(
            uow.lessons.find_in("id", list(event.lesson_ids)),
            key=lambda lesson: event.lesson_ids.index(lesson.id),
        )
        if not lessons:
            return
        base = self._base(uow)
        self._mail.queue_automated(
            uow,
            AutomatedEmail.DRIP,
            member,
            {
                "course": course_values(base, product),
                "lessons": [lesson_values(base, lesson) for lesson in lessons],
            },
            f"drip:{event.id}",
            event.occurred_at,
        )

    def _new_materials(self, uow: UnitOfWork, event: LessonPublished) -> None:
        settings = self._settings(uow).email
        if not settings.choice(AutomatedEmail.NEW_MATERIALS).sends_for(event.occurred_at):
            return  # before reading every enrollment of the product
        product = uow.products.get(event.product_id)
        lesson = uow.lessons.get(event.lesson_id)
        if product is None or lesson is None or not lesson.published:
            return
        holders = {
            enrollment.member_id
            for enrollment in uow.enrollments.find({"product_id": product.id})
            if enrollment.status is EnrollmentStatus.ACTIVE
            and enrollment.starts_at <= event.occurred_at
            and (enrollment.ends_at is None or event.occurred_at < enrollment.ends_at)
        }
        if not holders:
            return
        base = self._base(uow)
        values = {
            "course": course_values(base, product),
            "lessons": [lesson_values(base, lesson)],
        }
        for member in uow.members.find_in("id", sorted(holders)):
            self._mail.queue_automated(
                uow,
                AutomatedEmail.NEW_MATERIALS,
                member,
                values,
                f"new_materials:{event.id}:{member.id}",
                event.occurred_at,
            )
