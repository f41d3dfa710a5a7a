"""Email templates an admin writes for the automated emails. ``portal.templates``.

A template is made for one kind of email (``"welcome"``, ``"drip"``, ...),
and may use the variables that email receives. Saving checks the sources
(syntax, known variables, nothing unsafe) with a clear error naming the part,
the line and the variable; rendering is sandboxed (see
:mod:`membership_core.templating`). Select a template for an automated email
with :meth:`SettingsService.update_email
<membership_core.services.settings.SettingsService.update_email>`.
"""

from __future__ import annotations

from typing import Any

import attrs

from .. import _validate as v
from ..domain.automations import SendEmail
from ..domain.email_settings import AutomatedEmail, StoredTemplate
from ..errors import Conflict, ValidationError
from ..ports.storage import UnitOfWork
from ..templating import (
    DEFAULT_TEMPLATE_VARIABLES,
    DEFAULT_TEMPLATES,
    EmailTemplate,
    RenderedEmail,
    TemplateRenderer,
)
from ._context import Context, Service
from ._unset import UNSET, _Unset
from .mail import portal_values

__all__ = ["EmailTemplatesService", "template_variables"]

#: Variables some emails get only when they apply, on top of their required ones.
_OPTIONAL: dict[str, tuple[str, ...]] = {
    "new_comment": ("course",),
    "course_completed": ("certificate",),
}
#: Every email for a member may carry a one-time login link (minted when used).
_LOGIN = ("login_url", "login_code")

_MAX_SOURCE = 100_000


def template_variables(kind: str) -> tuple[str, ...]:
    """The variables a template for ``kind`` may use.

    >>> template_variables("welcome")
    ('member', 'portal', 'login_url', 'login_code')
    """
    names = [*DEFAULT_TEMPLATE_VARIABLES[kind], *_OPTIONAL.get(kind, ()), *_LOGIN]
    return tuple(dict.fromkeys(names))


def _kind(value: object) -> str:
    if not isinstance(value, str) or value not in DEFAULT_TEMPLATES:
        raise ValidationError("kind", f"must be one of {', '.join(DEFAULT_TEMPLATES)}")
    return value


def _source(field: str, value: object) -> str:
    return v.text(field, value, max_length=_MAX_SOURCE)


def _sample_values(kind: str, portal: dict[str, str | None]) -> dict[str, Any]:
    """Made-up values for a preview: every variable the kind may use."""
    base = portal["url"] or ""
    course = {"title": "Sample course", "url": f"{base}/courses/sample"}
    values: dict[str, Any] = {
        "member": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "display_name": "Ada Lovelace",
        },
        "portal": portal,
        "course": course,
        "lessons": [
            {"title": "Sample lesson", "url": f"{course['url']}/lessons/1"},
            {"title": "Another lesson", "url": f"{course['url']}/lessons/2"},
        ],
        "offer": {"title": "Sample offer", "url": course["url"]},
        "comment": {"author": "Grace", "body": "Great lesson!", "url": course["url"]},
        "certificate": {"serial": "SAMPLE-0001", "verification_url": f"{base}/certificates"},
        "login_url": f"{base}/sign-in/link?token=preview",
        "login_code": "ABCD-2345",
        "reset_url": f"{base}/reset-password?token=preview",
    }
    return {name: values[name] for name in template_variables(kind) if name in values}


class EmailTemplatesService(Service):
    """Create, check, preview and delete the portal's own email templates."""

    def __init__(self, context: Context, renderer: TemplateRenderer | None = None) -> None:
        super().__init__(context)
        self._renderer = renderer or TemplateRenderer()

    def create(
        self, name: str, *, kind: str, subject: str, html: str, text: str | None = None
    ) -> StoredTemplate:
        """Save a new template for ``kind`` emails, after checking it.

        Raises :class:`~membership_core.templating.TemplateError` (a
        ``ValidationError``) naming the part, line and variable of the first
        problem, and :class:`~membership_core.errors.Conflict` when another
        template has this ``name``.

        >>> from membership_core import Portal
        >>> portal = Portal.open("memory://")
        >>> branded = portal.templates.create(
        ...     "Branded welcome",
        ...     kind="welcome",
        ...     subject="Welcome to {{ portal.title }}",
        ...     html='<img src="https://acme.example/logo.png"> {{ login_url }}',
        ... )
        >>> branded.kind
        'welcome'
        """
        name = v.text("name", name, max_length=200)
        kind = _kind(kind)
        with self._ctx.uow() as uow:
            template = self._checked(uow, kind, subject, html, text)
            self._name_free(uow, name, None)
            now = self._ctx.now()
            stored = StoredTemplate(
                self._ctx.ids.new("tpl"),
                name,
                kind,
                template.subject,
                template.html,
                template.text,
                now,
                now,
            )
            uow.email_templates.add(stored)
            uow.commit()
        return stored

    def get(self, template_id: str) -> StoredTemplate:
        """The template, or ``NotFound``."""
        v.identifier("template_id", template_id, "tpl")
        with self._ctx.uow(write=False) as uow:
            return self._require(uow.email_templates, "template", template_id, "template_id")

    def list(self, *, kind: str | None = None) -> list[StoredTemplate]:
        """The portal's templates (for one ``kind`` of email), by name."""
        where = {} if kind is None else {"kind": _kind(kind)}
        with self._ctx.uow(write=False) as uow:
            return uow.email_templates.find(where, order_by=("name",))

    def update(
        self,
        template_id: str,
        *,
        name: str | _Unset = UNSET,
        subject: str | _Unset = UNSET,
        html: str | _Unset = UNSET,
        text: str | _Unset | None = UNSET,
    ) -> StoredTemplate:
        """Change some parts of a template; the new whole is checked before it is saved."""
        v.identifier("template_id", template_id, "tpl")
        clean_name = None if isinstance(name, _Unset) else v.text("name", name, max_length=200)
        with self._ctx.uow() as uow:
            current = self._require_for_update(
                uow.email_templates, "template", template_id, "template_id"
            )
            template = self._checked(
                uow,
                current.kind,
                current.subject if isinstance(subject, _Unset) else subject,
                current.html if isinstance(html, _Unset) else html,
                current.text if isinstance(text, _Unset) else text,
            )
            if clean_name is not None:
                self._name_free(uow, clean_name, current.id)
            updated = attrs.evolve(
                current,
                name=clean_name or current.name,
                subject=template.subject,
                html=template.html,
                text=template.text,
                updated_at=self._ctx.now(),
            )
            if updated != current:
                uow.email_templates.update(updated)
                uow.commit()
        return updated

    def delete(self, template_id: str) -> None:
        """Delete a template; refused (``Conflict``) while an automated email or a rule uses it."""
        v.identifier("template_id", template_id, "tpl")
        with self._ctx.uow() as uow:
            self._require_for_update(uow.email_templates, "template", template_id, "template_id")
            settings = self._settings(uow).email
            users = [
                email.value
                for email in AutomatedEmail
                if settings.choice(email).template_id == template_id
            ]
            if users:
                raise Conflict(
                    f"template {template_id!r} is selected for the {', '.join(users)} "
                    "email; select another one first",
                    field="template_id",
                )
            rules = [
                rule.name
                for rule in uow.automation_rules.find(order_by=["created_at"])
                if any(
                    isinstance(action, SendEmail) and action.template == template_id
                    for action in rule.actions
                )
            ]
            if rules:
                raise Conflict(
                    f"template {template_id!r} is sent by the automation rule "
                    f"{', '.join(map(repr, rules))}; change the rule first",
                    field="template_id",
                )
            uow.email_templates.delete(template_id)
            uow.commit()

    def preview(self, template_id: str) -> RenderedEmail:
        """The template rendered with made-up values, as the admin's edit screen shows it."""
        template = self.get(template_id)
        with self._ctx.uow(write=False) as uow:
            portal = portal_values(self._settings(uow), self._base_url(uow))
        return self._renderer.render(
            EmailTemplate(template.subject, template.html, template.text),
            _sample_values(template.kind, portal),
        )

    def _checked(
        self, uow: UnitOfWork, kind: str, subject: object, html: object, text: object
    ) -> EmailTemplate:
        template = EmailTemplate(
            _source("subject", subject),
            _source("html", html),
            None if text is None else _source("text", text),
        )
        allowed = set(template_variables(kind))
        sample = _sample_values(kind, portal_values(self._settings(uow), self._base_url(uow)))
        for extra in self._ctx.plugins.hook.membership_template_context(
            portal=self._ctx.portal, kind=kind, context=sample
        ):
            allowed.update(extra or {})  # names the host's plugins add to every such email
        self._renderer.check(template, allowed)
        return template

    @staticmethod
    def _name_free(uow: UnitOfWork, name: str, own_id: str | None) -> None:
        clash = uow.email_templates.find({"name": name}, limit=1)
        if clash and clash[0].id != own_id:
            raise Conflict(f"a template is already named {name!r}", field="name")
