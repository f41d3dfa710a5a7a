"""Settings as JSON-safe data for another portal, and that data read back, checked.

An import runs every value through the same checks as the update calls
(:mod:`._settings_rules`), so nothing arrives that an update would refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from ..domain.domains import normalize_custom_domain
from ..domain.email_settings import AutomatedEmail, EmailChoice, EmailSettings
from ..domain.settings import (
    AREAS,
    AdvancedSettings,
    AppSettings,
    BrandingSettings,
    BuilderSettings,
    DomainSettings,
    PortalSettings,
    SiteSettings,
)
from ..errors import ValidationError
from ..ports.storage import UnitOfWork
from ..serialization import structure, unstructure
from . import _settings_rules as rules

__all__ = [
    "EXPORT_FORMAT",
    "SECRET_FIELDS",
    "check_templates",
    "export_data",
    "keep_enabled_at",
    "read_import",
]

#: The ``format`` of exported settings.
EXPORT_FORMAT = "membership_core.settings/1"

#: Hidden in the history: the proof of domain ownership belongs to this portal alone.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {"domain": ("verification_token",)}
# Facts of this portal, not configuration: never exported.
_NOT_EXPORTED: dict[str, tuple[str, ...]] = {"domain": ("verification_token", "verified_at")}

_TYPES: dict[str, type] = {
    "site": SiteSettings,
    "advanced": AdvancedSettings,
    "branding": BrandingSettings,
    "builder": BuilderSettings,
    "domain": DomainSettings,
    "email": EmailSettings,
    "app": AppSettings,
}
_CLEAN: dict[str, Callable[[Any], Any]] = {
    "site": rules.clean_site,
    "advanced": rules.clean_advanced,
    "branding": rules.clean_branding,
    "builder": rules.clean_builder,
    "email": rules.clean_email,
    "app": rules.clean_app,
}


def export_data(settings: PortalSettings) -> dict[str, Any]:
    """Every area of ``settings`` as JSON-safe data (see ``SettingsService.export``)."""
    data: dict[str, Any] = {}
    for area in AREAS:
        values = unstructure(getattr(settings, area))
        for name in _NOT_EXPORTED.get(area, ()):
            values.pop(name, None)
        if area == "email":
            for kind in AutomatedEmail:
                values[kind.value].pop("enabled_at", None)
        data[area] = values
    return {"format": EXPORT_FORMAT, "settings": data}


def read_import(
    data: object, areas: tuple[str, ...] | None, *, platform_host: str, now: datetime
) -> dict[str, Any]:
    """The areas chosen from exported ``data``, each a checked value.

    A domain comes back as its names only (unverified, no token); emails that
    are on count from ``now``. Errors name ``area.field``.
    """
    if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
        raise ValidationError("data", f"is not settings exported as {EXPORT_FORMAT!r}")
    given = data.get("settings")
    if not isinstance(given, Mapping):
        raise ValidationError("data", "has no 'settings' mapping")
    chosen = tuple(area for area in AREAS if area in given) if areas is None else areas
    for area in chosen:
        if area not in AREAS:
            raise ValidationError("areas", f"unknown area {area!r}; expected some of {AREAS}")
        if area not in given:
            raise ValidationError("areas", f"{area!r} is not in the data")
    return {area: _read_area(area, given[area], platform_host, now) for area in chosen}


def _read_area(area: str, raw: object, platform_host: str, now: datetime) -> Any:
    try:
        value: Any = structure(raw, _TYPES[area])
    except ValidationError as error:
        # "SiteSettings.title" names the class; the caller knows the area.
        _, _, inner = (error.field or "").partition(".")
        raise ValidationError(f"{area}.{inner}" if inner else area, error.problem) from None
    try:
        if area == "domain":
            host = value.custom_domain
            return DomainSettings(
                rules.clean_subdomain(value.subdomain),
                None
                if host is None
                else normalize_custom_domain(host, platform_host=platform_host),
            )
        cleaned = _CLEAN[area](value)
        return _enabled_from(cleaned, now) if area == "email" else cleaned
    except ValidationError as error:
        raise ValidationError(f"{area}.{error.field}", error.problem) from None


def _enabled_from(email: EmailSettings, now: datetime) -> EmailSettings:
    """Imported emails that are on count from ``now``: no backlog for the past."""
    for kind in AutomatedEmail:
        choice = email.choice(kind)
        at = now if choice.enabled else None
        email = email.with_choice(kind, EmailChoice(choice.enabled, choice.template_id, at))
    return email


def keep_enabled_at(current: EmailSettings, imported: EmailSettings) -> EmailSettings:
    """An email that was on and stays on keeps when it was switched on."""
    for kind in AutomatedEmail:
        old, new = current.choice(kind), imported.choice(kind)
        if old.enabled and new.enabled:
            imported = imported.with_choice(kind, attrs.evolve(new, enabled_at=old.enabled_at))
    return imported


def check_templates(uow: UnitOfWork, email: EmailSettings) -> None:
    """Refuse imported template choices that name no template of this portal."""
    for kind in AutomatedEmail:
        template_id = email.choice(kind).template_id
        if template_id is not None and uow.email_templates.get(template_id) is None:
            raise ValidationError(
                f"email.{kind.value}.template_id",
                f"names template {template_id!r}, which this portal does not have",
            )
