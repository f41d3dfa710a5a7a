"""The transactional mail outbox: queue with the change, deliver after, retry with backoff."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from email.utils import formataddr
from typing import Any

import attrs

from .. import _validate as v
from ..domain.credentials import AccountPolicy, MagicLink, TokenPurpose
from ..domain.email_settings import AutomatedEmail, StoredTemplate
from ..domain.mail import EmailMessage, MailStatus, OutboxMessage
from ..domain.members import Member, MemberStatus
from ..domain.settings import PortalSettings
from ..errors import Conflict, MailDeliveryError, ValidationError
from ..ports.storage import UnitOfWork
from ..templating import (
    DEFAULT_TEMPLATES,
    EmailTemplate,
    RenderedEmail,
    TemplateError,
    TemplateRenderer,
    load_default,
)
from ._context import Context, Service
from ._tokens import mint_token

__all__ = ["MailService", "member_values", "portal_values"]

log = logging.getLogger(__name__)

#: After this many failed attempts a message is marked failed (the dead-letter state).
#: With the backoff below that is about 20 hours of retrying: a mail server may
#: be down overnight without a message being lost.
MAX_ATTEMPTS = 12
#: How long a claimed message stays claimed before another worker may retry it.
CLAIM_SECONDS = 300


def backoff(attempts: int) -> timedelta:
    """Wait before attempt ``attempts + 1``: 1, 2, 4 ... minutes, at most 6 hours."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 360))


def member_values(member: Member) -> dict[str, str]:
    """The ``member`` template value: plain data, never the record itself."""
    return {
        "first_name": member.first_name,
        "last_name": member.last_name,
        "email": member.email,
        "display_name": member.display_name,
    }


def portal_values(settings: PortalSettings, base_url: str) -> dict[str, str | None]:
    """The ``portal`` template value: title, URL and the branding logo's URL."""
    logo = settings.branding.logo
    return {
        "title": settings.site.title,
        "url": base_url,
        "logo_url": None if logo is None else logo.url,
    }


#: Stands in for the login link while a chosen template is tried (minting one is a write).
_LINK_PLACEHOLDER = {"login_url": "https://example.invalid/sign-in", "login_code": "XXXX-XXXX"}


def _plain_values(values: object) -> dict[str, Any]:
    """``values`` of :meth:`MailService.send`: a mapping with string keys (or ``None``)."""
    if values is None:
        return {}
    if not isinstance(values, Mapping) or not all(isinstance(k, str) for k in values):
        raise ValidationError("values", "must be a mapping of names to plain data")
    return dict(values)


class MailService(Service):
    """Queued and sent email of the portal. ``portal.mail``."""

    def __init__(self, context: Context, accounts: AccountPolicy | None = None) -> None:
        super().__init__(context)
        self._accounts = accounts or AccountPolicy()
        self._renderer = TemplateRenderer()
        # Set by the thread that queued a message, so its after-commit step
        # sends without every other commit paying for a look at the outbox.
        self._local = threading.local()

    def queue(
        self,
        uow: UnitOfWork,
        *,
        kind: str,
        to: str,
        context: Mapping[str, Any],
        idempotency_key: str,
        member_id: str | None = None,
        deliver_now: bool = True,
        template: EmailTemplate | None = None,
        settings: PortalSettings | None = None,
    ) -> OutboxMessage | None:
        """Render the ``kind`` template (or ``template``) and queue it in ``uow``'s transaction.

        Returns ``None`` when a message with this ``idempotency_key`` was
        already queued: the same cause never sends the same email twice.
        ``deliver_now=False`` leaves it to the next ``tick()`` rather than
        sending right after the commit (for requests whose timing must not
        depend on whether an email was sent). ``settings`` are the site
        settings the caller already read in ``uow`` (for the sender and the
        sign-in link); without them they are read again, a query per message.
        """
        if uow.mail.count({"idempotency_key": idempotency_key}):
            return None
        if settings is None:
            settings = self._settings(uow)
        template = template or load_default(kind)
        values = self._with_login_link(uow, template, context, member_id, settings)
        rendered = self.render(kind, values, template=template)
        sender = formataddr(
            (settings.email.sender_name or settings.site.title, settings.email.sender_email)
        )
        message_id = self._ctx.ids.new("msg")
        now = self._ctx.now()
        message = OutboxMessage(
            message_id,
            idempotency_key,
            kind,
            EmailMessage(
                message_id,
                sender,
                to,
                rendered.subject,
                rendered.text,
                rendered.html,
                reply_to=settings.email.reply_to,
            ),
            MailStatus.QUEUED,
            0,
            now,
            now,
            None,
            None,
            member_id,
        )
        uow.mail.add(message)
        if deliver_now:
            self._local.queued = True
        return message

    def send(
        self,
        member_id: str,
        kind: str,
        *,
        values: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> OutboxMessage | None:
        """Queue the ``kind`` email to a member, delivered after this call.

        The template gets ``member`` and ``portal`` and the given ``values``
        (plain data). When it uses ``login_url`` (or ``login_code``), a fresh
        single-use magic link is minted for the member, as
        :meth:`AccountsService.create_magic_link
        <membership_core.services.accounts.AccountsService.create_magic_link>`
        would; a member who cannot sign in (suspended) gets the plain sign-in
        page instead. With an ``idempotency_key``, a second call with the
        same key sends nothing and returns ``None``.

        >>> from membership_core.testing import make_test_portal
        >>> portal = make_test_portal()
        >>> ada = portal.members.invite("ada@example.com", first_name="Ada")
        >>> message = portal.mail.send(ada.id, "welcome")
        >>> "/sign-in/link?token=" in message.message.text
        True
        """
        v.identifier("member_id", member_id, "mem")
        if kind not in DEFAULT_TEMPLATES:
            raise ValidationError(
                "kind", f"unknown email {kind!r}; expected one of {', '.join(DEFAULT_TEMPLATES)}"
            )
        extra = _plain_values(values)
        if idempotency_key is not None:
            idempotency_key = v.text("idempotency_key", idempotency_key, max_length=200)
        with self._ctx.uow() as uow:
            member = self._require(uow.members, "member", member_id, "member_id")
            settings = self._settings(uow)
            context = {
                **extra,
                "member": member_values(member),
                "portal": portal_values(settings, self._base_url(uow)),
            }
            message = self.queue(
                uow,
                kind=kind,
                to=member.email,
                context=context,
                idempotency_key=idempotency_key or f"send:{self._ctx.ids.new('msg')}",
                member_id=member.id,
                settings=settings,
            )
            uow.commit()
        self._committed()
        return message

    def send_automated(
        self,
        email: AutomatedEmail | str,
        member_id: str,
        *,
        values: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> OutboxMessage | None:
        """Send an automated email the way the portal's email settings say, or not at all.

        For the emails the host triggers itself (``"new_comment"``: comments
        live in the host). Returns ``None`` when the email is switched off (or
        the ``idempotency_key`` was used); otherwise the message, rendered with
        the template chosen in ``portal.settings.email()``.
        """
        kind = v.choice("email", email, AutomatedEmail)
        v.identifier("member_id", member_id, "mem")
        extra = _plain_values(values)
        if idempotency_key is not None:
            idempotency_key = v.text("idempotency_key", idempotency_key, max_length=200)
        with self._ctx.uow() as uow:
            member = self._require(uow.members, "member", member_id, "member_id")
            message = self.queue_automated(
                uow,
                kind,
                member,
                extra,
                idempotency_key or f"{kind.value}:{self._ctx.ids.new('msg')}",
                self._ctx.now(),
            )
            uow.commit()
        self._committed()
        return message

    def queue_automated(
        self,
        uow: UnitOfWork,
        email: AutomatedEmail,
        member: Member,
        values: Mapping[str, Any],
        idempotency_key: str,
        occurred_at: datetime,
    ) -> OutboxMessage | None:
        """Queue ``email`` for ``member`` in ``uow`` if it is on for an event at ``occurred_at``.

        The template is the one chosen in the email settings; one that no
        longer renders (an admin's mistake the save-time check could not see)
        falls back to the default, logged, so the member still gets the email.
        ``values`` are added to ``member`` and ``portal``.
        """
        choice = self._settings(uow).email.choice(email)
        if not choice.sends_for(occurred_at):
            return None
        stored = uow.email_templates.get(choice.template_id) if choice.template_id else None
        return self._queue_for_member(uow, email.value, member, values, idempotency_key, stored)

    def _queue_for_member(
        self,
        uow: UnitOfWork,
        kind: str,
        member: Member,
        values: Mapping[str, Any],
        idempotency_key: str,
        stored: StoredTemplate | None,
    ) -> OutboxMessage | None:
        """Queue the ``kind`` email to an active ``member``, with an admin's template if given.

        A ``stored`` template that no longer renders falls back to the
        default of its kind, logged. A member who is not active (suspended,
        deleted) gets nothing.
        """
        if member.status is not MemberStatus.ACTIVE:
            return None
        settings = self._settings(uow)
        context = {
            **values,
            "member": member_values(member),
            "portal": portal_values(settings, self._base_url(uow)),
        }
        chosen = None
        if stored is not None:
            chosen = EmailTemplate(stored.subject, stored.html, stored.text)
            try:
                self.render(kind, {**context, **_LINK_PLACEHOLDER}, template=chosen)
            except TemplateError:
                log.exception("template %s failed; the default %s is sent", stored.id, kind)
                chosen = None
        return self.queue(
            uow,
            kind=kind,
            to=member.email,
            context=context,
            idempotency_key=idempotency_key,
            member_id=member.id,
            template=chosen,
            settings=settings,
        )

    def _with_login_link(
        self,
        uow: UnitOfWork,
        template: EmailTemplate,
        context: Mapping[str, Any],
        member_id: str | None,
        settings: PortalSettings,
    ) -> Mapping[str, Any]:
        """``context`` with a one-time ``login_url`` and ``login_code`` if the email uses them."""
        if "login_url" in context or member_id is None:
            return context
        used = self._renderer.variables(template)
        if not used & {"login_url", "login_code"}:
            return context
        member = uow.members.get(member_id)
        if member is None or member.status is not MemberStatus.ACTIVE:
            base = settings.domain.base_url(self._ctx.platform_url)
            plain = f"{base}{self._accounts.sign_in_path}"
            return {**context, "login_url": plain, "login_code": ""}
        link = mint_token(self._ctx, uow, member, TokenPurpose.MAGIC_LINK, self._accounts)
        assert isinstance(link, MagicLink)
        return {**context, "login_url": link.url, "login_code": link.code}

    def render(
        self, kind: str, context: Mapping[str, Any], *, template: EmailTemplate | None = None
    ) -> RenderedEmail:
        """Render the ``kind`` email (its default template, or ``template``) with
        ``context`` and the plugins' extra values."""
        values = dict(context)
        for extra in self._ctx.plugins.hook.membership_template_context(
            portal=self._ctx.portal, kind=kind, context=dict(values)
        ):
            if extra:
                values.update(extra)
        return self._renderer.render(template or load_default(kind), values)

    def outbox(
        self, *, status: MailStatus | str | None = None, limit: int = 100
    ) -> list[OutboxMessage]:
        """Queued, sent or failed messages, oldest first."""
        where = {} if status is None else {"status": v.choice("status", status, MailStatus)}
        v.integer("limit", limit, minimum=1)
        with self._ctx.uow(write=False) as uow:
            return uow.mail.find(where, order_by=["created_at"], limit=limit)

    def resend(self, message_id: str) -> OutboxMessage:
        """Put a failed (or sent) message back in the queue, due now."""
        v.identifier("message_id", message_id, "msg")
        with self._ctx.uow() as uow:
            message = self._require_for_update(uow.mail, "message", message_id, "message_id")
            message = attrs.evolve(
                message,
                status=MailStatus.QUEUED,
                attempts=0,
                next_attempt_at=self._ctx.now(),
                last_error=None,
            )
            uow.mail.update(message)
            uow.commit()
        return message

    def deliver_queued(self) -> tuple[int, int]:
        """Send due mail if this thread queued any since it last looked (after a commit)."""
        if not getattr(self._local, "queued", False):
            return 0, 0
        self._local.queued = False
        return self.deliver_due()

    def deliver_due(self, *, limit: int = 100) -> tuple[int, int]:
        """Send what is due; return (sent, failed attempts).

        Each message is first claimed in its own short transaction, sent with no
        transaction open, then acknowledged. A crash after the server accepted
        a message and before the acknowledgement sends it once more when the
        claim expires: at most one duplicate, never a loss.
        """
        now = self._ctx.now()
        with self._ctx.uow(write=False) as uow:
            # queued messages whose time has come, and claims whose worker died
            due = uow.mail.find_due(
                "next_attempt_at", now, {"status": MailStatus.QUEUED}, limit=limit
            ) + uow.mail.find_due(
                "next_attempt_at", now, {"status": MailStatus.SENDING}, limit=limit
            )
        sent = failed = 0
        for candidate in due:
            message = self._claim(candidate.id)
            if message is None:
                continue
            try:
                self._ctx.mailer.send(message.message)
            except MailDeliveryError as error:
                failed += 1
                self._fail(message, error)
                continue
            except Exception as error:
                # A third-party mailer may raise anything; treat it as temporary
                # rather than leaving the message claimed until the claim expires.
                failed += 1
                log.exception("mailer raised a non-MailDeliveryError for %s", message.id)
                self._fail(message, MailDeliveryError(repr(error), temporary=True))
                continue
            sent += 1
            with self._ctx.uow() as uow:
                current = uow.mail.get_for_update(message.id)
                if current is not None:
                    uow.mail.update(
                        attrs.evolve(
                            current,
                            status=MailStatus.SENT,
                            sent_at=self._ctx.now(),
                            attempts=current.attempts,
                            last_error=None,
                        )
                    )
                    uow.commit()
        return sent, failed

    def _claim(self, message_id: str) -> OutboxMessage | None:
        now = self._ctx.now()
        try:
            with self._ctx.uow() as uow:
                message = uow.mail.get_for_update(message_id)
                if message is None or message.next_attempt_at > now:
                    return None
                if message.status not in (MailStatus.QUEUED, MailStatus.SENDING):
                    return None
                if message.status is MailStatus.SENDING and message.attempts >= MAX_ATTEMPTS:
                    # Every worker that took it died before reporting back (a message
                    # that crashes the sender): stop, or it would be tried forever.
                    uow.mail.update(
                        attrs.evolve(
                            message,
                            status=MailStatus.FAILED,
                            last_error=(
                                f"no outcome after {message.attempts} attempts: "
                                "the sending worker stopped each time"
                            ),
                        )
                    )
                    uow.commit()
                    return None
                claimed = attrs.evolve(
                    message,
                    status=MailStatus.SENDING,
                    attempts=message.attempts + 1,
                    next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS),
                )
                uow.mail.update(claimed)
                uow.commit()
                return claimed
        except Conflict:
            return None

    def _fail(self, message: OutboxMessage, error: MailDeliveryError) -> None:
        give_up = not error.temporary or message.attempts >= MAX_ATTEMPTS
        log.warning("mail %s attempt %d failed: %s", message.id, message.attempts, error)
        with self._ctx.uow() as uow:
            current = uow.mail.get_for_update(message.id)
            if current is None or current.status is not MailStatus.SENDING:
                return
            uow.mail.update(
                attrs.evolve(
                    current,
                    status=MailStatus.FAILED if give_up else MailStatus.QUEUED,
                    next_attempt_at=self._ctx.now() + backoff(current.attempts),
                    last_error=str(error),
                )
            )
            uow.commit()
