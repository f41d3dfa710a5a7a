"""Dispatch of recorded events: the library's own handlers, then plugin observers.

Events are written to the outbox in the transaction of the change. Dispatch
runs after commit (and again from ``tick()``): each handler runs in its own
transaction together with a ``HandledEvent`` marker, unique per event and
handler, so a handler takes effect exactly once even when two workers dispatch
the same event at the same moment. Observers (the ``membership_domain_event``
hook) run after every handler succeeded, at least once.

Handlers come in chains: a built-in handler is a chain of one, and a
:class:`HandlerSource` (the automation rules) gives chains per event, read
when the event is dispatched. A step that fails ends its chain for this
round; the event stays queued, and the next round skips the steps whose
markers exist and retries from the failed one. Other chains go on: one
failing rule does not hold back another.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs

from ..domain.events import DomainEvent, EventRecord, HandledEvent
from ..errors import Conflict
from ..ports.storage import UnitOfWork
from ..serialization import structure
from ._context import Context, Service
from .automated_emails import AutomatedEmails
from .mail import MailService

__all__ = ["EventDispatcher", "HandlerSource", "Step"]

log = logging.getLogger(__name__)

#: Events delivered per round; one transaction marks each round dispatched.
_BATCH = 100

Handler = Callable[[UnitOfWork, Any], None]


@attrs.frozen
class Step:
    """One step of a chain of handlers, done once per event under its marker ``name``.

    ``handler`` runs in the step's transaction, with the marker. ``outside``,
    when given, runs first with no transaction open (a call to another
    system, which must not hold the database meanwhile); raising there fails
    the step. A crash between the two runs ``outside`` again: at least once.
    """

    name: str
    handler: Handler
    outside: Callable[[Any], None] | None = None


class HandlerSource(Protocol):
    """Handlers that depend on stored state (automation rules), asked per event."""

    def listens(self, uow: UnitOfWork, event: DomainEvent) -> bool:
        """Whether :meth:`chains` may give a step for ``event``, recorded in ``uow``.

        Called in the transaction that records the event: it must be cheap
        (an indexed read at most) and may answer ``True`` when unsure.
        """
        ...

    def chains(self, event: DomainEvent) -> list[list[Step]]:
        """The chains to run for ``event`` now: each in order, each step once."""
        ...


class EventDispatcher(Service):
    """Delivers outbox events to handlers and observers."""

    def __init__(
        self, context: Context, mail: MailService, sources: Sequence[HandlerSource] = ()
    ) -> None:
        super().__init__(context)
        self._local = threading.local()
        self._automated = AutomatedEmails(context, mail)
        self._handlers: list[tuple[str, type[DomainEvent], Handler]] = self._automated.handlers()
        self._sources = tuple(sources)

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
        chains = [
            [Step(name, handler)]
            for name, event_type, handler in self._handlers
            if isinstance(event, event_type)
        ]
        for source in self._sources:
            try:
                chains.extend(source.chains(event))
            except Exception:
                log.exception("reading the rules for event %s failed; it stays queued", record.id)
                return None
        failed = False
        for chain in chains:
            for step in chain:
                if not self._run(step, event):
                    failed = True
                    break  # the chain's later steps wait for this one
        if failed:
            return None
        try:
            self._ctx.plugins.hook.membership_domain_event(portal=self._ctx.portal, event=event)
        except Exception:
            log.exception("an observer failed on event %s; it stays queued", record.id)
            return None
        return bool(chains)

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
        """Whether a handler, a rule or a plugin observer takes ``event`` (recorded in ``uow``).

        An automated email switched off, like a rule switched off, does not
        listen: its events are stored already dispatched, as if nobody
        listened, and switching it on later does nothing for them.
        """
        if self._ctx.plugins.hook.membership_domain_event.get_hookimpls():
            return True
        if self._automated.sends_for(uow, event):
            return True
        if any(source.listens(uow, event) for source in self._sources):
            return True
        return any(
            isinstance(event, event_type)
            for name, event_type, _ in self._handlers
            if not self._automated.owns(name)
        )

    def _run(self, step: Step, event: DomainEvent) -> bool:
        name = step.name
        try:
            if step.outside is not None:
                with self._ctx.uow(write=False) as uow:
                    if self._done(uow, event, name):
                        return True
                step.outside(event)
            with self._ctx.uow() as uow:
                if self._done(uow, event, name):
                    return True
                step.handler(uow, event)
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

    @staticmethod
    def _done(uow: UnitOfWork, event: DomainEvent, name: str) -> bool:
        return uow.handled_events.count({"event_id": event.id, "handler": name}) > 0
