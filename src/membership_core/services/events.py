"""Dispatch of recorded events: the library's own handlers, then plugin observers.

Events are written to the outbox in the transaction of the change. Dispatch
runs after commit (and again from ``tick()``): each handler runs in its own
transaction together with a ``HandledEvent`` marker, unique per event and
handler, so a handler takes effect exactly once even when two workers dispatch
the same event at the same moment. Observers (the ``membership_domain_event``
hook) run after every handler succeeded, at least once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import attrs

from ..domain.events import CourseCompleted, DomainEvent, EventRecord, HandledEvent
from ..errors import Conflict
from ..ports.storage import UnitOfWork
from ..serialization import structure
from ._context import Context, Service
from .automated_emails import AutomatedEmails
from .certificates import CertificatesService, verification_url
from .mail import MailService, member_values, portal_values

__all__ = ["EventDispatcher"]

log = logging.getLogger(__name__)

#: Events delivered per round; one transaction marks each round dispatched.
_BATCH = 100

Handler = Callable[[UnitOfWork, Any], None]


class EventDispatcher(Service):
    """Delivers outbox events to handlers and observers."""

    def __init__(
        self, context: Context, certificates: CertificatesService, mail: MailService
    ) -> None:
        super().__init__(context)
        self._certificates = certificates
        self._mail = mail
        self._local = threading.local()
        self._handlers: list[tuple[str, type[DomainEvent], Handler]] = [
            ("course_completed.certificate", CourseCompleted, self._issue_certificate),
            ("course_completed.email", CourseCompleted, self._completion_email),
        ]
        self._automated = AutomatedEmails(context, mail)
        self._handlers.extend(self._automated.handlers())

    def dispatch_pending(self, *, limit: int = 1000) -> int:
        """Deliver undispatched events, oldest first; return how many finished.

        Events recorded by handlers are picked up in the same call. A
        re-entrant call (a handler committing and so triggering dispatch) returns
        at once; the outer loop will see its events.
        """
        if getattr(self._local, "active", False):
            return 0
        self._local.active = True
        try:
            done = 0
            failed: set[str] = set()
            while done < limit:
                with self._ctx.uow(write=False) as uow:
                    batch = [
                        r
                        for r in uow.events.find(
                            {"dispatched_at": None},
                            order_by=["occurred_at"],
                            limit=len(failed) + _BATCH,
                        )
                        if r.id not in failed
                    ]
                if not batch:
                    break
                delivered: list[str] = []
                handled = False
                for record in batch:
                    outcome = self._deliver(record)
                    if outcome is None:
                        failed.add(record.id)
                    else:
                        delivered.append(record.id)
                        handled = handled or outcome
                self._mark_dispatched(delivered)
                done += len(delivered)
                if not handled and len(batch) < _BATCH:
                    break  # nothing ran that could have recorded more events
            return done
        finally:
            self._local.active = False

    def _deliver(self, record: EventRecord) -> bool | None:
        """Run the handlers and observers of one event.

        Returns ``None`` when one failed (the event stays queued), otherwise
        whether a handler ran (a handler may record further events).
        """
        event = structure(record.payload, DomainEvent)
        handled = False
        for name, event_type, handler in self._handlers:
            if isinstance(event, event_type):
                handled = True
                if not self._run(name, handler, event):
                    return None
        try:
            self._ctx.plugins.hook.membership_domain_event(portal=self._ctx.portal, event=event)
        except Exception:
            log.exception("an observer failed on event %s; it stays queued", record.id)
            return None
        return handled

    def _mark_dispatched(self, ids: list[str]) -> None:
        """Mark delivered events dispatched, all in one transaction.

        A crash before this commit delivers them again: handlers are
        idempotent (their markers), and observers are promised at least once.
        """
        if not ids:
            return
        now = self._ctx.now()
        with self._ctx.uow() as uow:
            for current in uow.events.find_in("id", ids):
                if current.dispatched_at is None:
                    uow.events.update(attrs.evolve(current, dispatched_at=now))
            uow.commit()

    def listens_to(self, uow: UnitOfWork, event: DomainEvent) -> bool:
        """Whether a built-in handler or a plugin observer takes ``event`` (recorded in ``uow``).

        An automated email switched off does not listen: its events are stored
        already dispatched, as if nobody listened, and switching it on later
        sends nothing for them.
        """
        if self._ctx.plugins.hook.membership_domain_event.get_hookimpls():
            return True
        if self._automated.sends_for(uow, event):
            return True
        return any(
            isinstance(event, event_type)
            for name, event_type, _ in self._handlers
            if not self._automated.owns(name)
        )

    def _run(self, name: str, handler: Handler, event: DomainEvent) -> bool:
        try:
            with self._ctx.uow() as uow:
                if uow.handled_events.count({"event_id": event.id, "handler": name}):
                    return True
                handler(uow, event)
                uow.handled_events.add(
                    HandledEvent(self._ctx.ids.new("hdl"), event.id, name, self._ctx.now())
                )
                uow.commit()
        except Conflict:
            return True  # another worker handled it at the same moment
        except Exception:
            log.exception("handler %s failed on event %s; will retry", name, event.id)
            return False
        return True

    # built-in automations -------------------------------------------------

    def _issue_certificate(self, uow: UnitOfWork, event: CourseCompleted) -> None:
        self._certificates._issue(uow, event.member_id, event.product_id)

    def _completion_email(self, uow: UnitOfWork, event: CourseCompleted) -> None:
        member = uow.members.get(event.member_id)
        product = uow.products.get(event.product_id)
        if member is None or product is None:
            return
        settings = self._site(uow)
        base = settings.base_url
        certificates = uow.certificates.find(
            {"member_id": member.id, "product_id": product.id}, limit=1
        )
        context: dict[str, Any] = {
            "member": member_values(member),
            "portal": portal_values(settings),
            "course": {"title": product.title, "url": f"{base}/courses/{product.id}"},
        }
        if certificates:
            serial = certificates[0].serial
            context["certificate"] = {
                "serial": serial,
                "verification_url": verification_url(settings, serial),
            }
        self._mail.queue(
            uow,
            kind="course_completed",
            to=member.email,
            context=context,
            idempotency_key=f"course_completed:{member.id}:{product.id}",
            member_id=member.id,
            settings=settings,
        )
