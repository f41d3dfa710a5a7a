"""Portal settings: site info and email settings (more areas arrive with their issues)."""

from __future__ import annotations

import zoneinfo
from typing import Any

import attrs

from .. import _validate as v
from ..domain.email_settings import AutomatedEmail, EmailSettings
from ..domain.events import SettingsChanged
from ..domain.money import CURRENCY_EXPONENTS
from ..domain.settings import SiteSettings
from ..errors import ValidationError
from ._context import Service
from ._unset import UNSET, _Unset

__all__ = ["SettingsService"]


def _base_url(value: object) -> str:
    url = v.text("base_url", value, max_length=2000)
    if not url.startswith(("https://", "http://")) or url[-3:] == "://":
        raise ValidationError("base_url", "must be an absolute http(s) URL")
    return url.rstrip("/")


def _timezone(value: object) -> str:
    name = v.text("timezone", value, max_length=100)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError("timezone", f"{name!r} is not an IANA time zone") from None
    return name


def _currency(value: object) -> str:
    code = v.text("currency", value, max_length=3)
    if code not in CURRENCY_EXPONENTS:
        raise ValidationError("currency", f"{code!r} is not an ISO 4217 currency code")
    return code


class SettingsService(Service):
    """Read and change portal settings. ``portal.settings``."""

    def site(self) -> SiteSettings:
        """The site info (defaults until changed)."""
        with self._ctx.uow(write=False) as uow:
            return self._site(uow)

    def update_site(
        self,
        *,
        title: str | _Unset = UNSET,
        base_url: str | _Unset = UNSET,
        timezone: str | _Unset = UNSET,
        currency: str | _Unset = UNSET,
        support_email: str | _Unset | None = UNSET,
        sender_name: str | _Unset | None = UNSET,
        sender_email: str | _Unset = UNSET,
    ) -> SiteSettings:
        """Change some site fields; the ones not given stay as they are.

        >>> from membership_core import Portal
        >>> portal = Portal.open("memory://")
        >>> portal.settings.update_site(title="Acme Academy").title
        'Acme Academy'
        """
        clean: dict[str, Any] = {}
        if not isinstance(title, _Unset):
            clean["title"] = v.text("title", title, max_length=200)
        if not isinstance(base_url, _Unset):
            clean["base_url"] = _base_url(base_url)
        if not isinstance(timezone, _Unset):
            clean["timezone"] = _timezone(timezone)
        if not isinstance(currency, _Unset):
            clean["currency"] = _currency(currency)
        if not isinstance(support_email, _Unset):
            clean["support_email"] = (
                None if support_email is None else v.email("support_email", support_email)
            )
        if not isinstance(sender_name, _Unset):
            clean["sender_name"] = v.optional_text("sender_name", sender_name, max_length=200)
        if not isinstance(sender_email, _Unset):
            clean["sender_email"] = v.email("sender_email", sender_email)
        with self._ctx.uow() as uow:
            current = uow.settings.get_for_update("site")
            updated = attrs.evolve(current or SiteSettings(), **clean)
            if current is None:
                uow.settings.add(updated)
            elif updated != current:
                uow.settings.update(updated)
            before = current or SiteSettings()
            changed = tuple(n for n in clean if getattr(updated, n) != getattr(before, n))
            if changed:
                self._record(uow, SettingsChanged, area="site", fields=changed)
            uow.commit()
        self._committed()
        return updated

    # -- email settings -----------------------------------------------------------------

    def email(self) -> EmailSettings:
        """Which automated emails are sent, and with which template (all on, defaults)."""
        with self._ctx.uow(write=False) as uow:
            return uow.email_settings.get("email") or EmailSettings()

    def update_email(
        self,
        email: AutomatedEmail | str,
        *,
        enabled: bool | _Unset = UNSET,
        template_id: str | _Unset | None = UNSET,
    ) -> EmailSettings:
        """Switch one automated email on or off, or choose its template.

        ``template_id`` names a template made with ``portal.templates.create``
        for the same kind of email (``None``: back to the default). Switching
        an email on sends it for what happens from now on, never for what
        happened while it was off.

        >>> from membership_core import Portal
        >>> portal = Portal.open("memory://")
        >>> portal.settings.update_email("drip", enabled=False).drip.enabled
        False
        """
        kind = v.choice("email", email, AutomatedEmail)
        if not isinstance(enabled, _Unset):
            v.boolean("enabled", enabled)
        if not isinstance(template_id, _Unset) and template_id is not None:
            v.identifier("template_id", template_id, "tpl")
        with self._ctx.uow() as uow:
            current = uow.email_settings.get_for_update("email")
            before = current or EmailSettings()
            choice = before.choice(kind)
            new = choice
            if not isinstance(template_id, _Unset):
                if template_id is not None:
                    template = self._require(
                        uow.email_templates, "template", template_id, "template_id"
                    )
                    if template.kind != kind.value:
                        raise ValidationError(
                            "template_id",
                            f"is a template for {template.kind!r} emails, not {kind.value!r} ones",
                        )
                new = attrs.evolve(new, template_id=template_id)
            if not isinstance(enabled, _Unset) and enabled != choice.enabled:
                new = attrs.evolve(
                    new, enabled=enabled, enabled_at=self._ctx.now() if enabled else None
                )
            updated = before.with_choice(kind, new)
            if updated != before:
                if current is None:
                    uow.email_settings.add(updated)
                else:
                    uow.email_settings.update(updated)
                changed = tuple(
                    f"{kind.value}.{name}"
                    for name in ("enabled", "template_id")
                    if getattr(new, name) != getattr(choice, name)
                )
                self._record(uow, SettingsChanged, area="email", fields=changed)
                uow.commit()
        self._committed()
        return updated
