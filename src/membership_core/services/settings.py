"""Portal settings: site, advanced code, branding, builder, domain, email and app.

Every area is a typed value of :class:`~membership_core.domain.settings.PortalSettings`.
An update changes the fields it is given, checks the whole result, and
writes a new version with an entry in the history and a ``SettingsChanged``
event, all in one transaction. Reads are served from a per-portal cache that
one small query keeps honest across processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import attrs

from .. import _validate as v
from ..domain.domains import (
    DnsRecord,
    RecordCheck,
    check_record,
    normalize_custom_domain,
    verification_records,
)
from ..domain.email_settings import AutomatedEmail, EmailChoice, EmailSettings
from ..domain.events import SettingsChanged
from ..domain.settings import (
    AREAS,
    AdvancedSettings,
    AppIcon,
    AppSettings,
    BrandingSettings,
    BuilderSettings,
    DomainClaim,
    DomainSettings,
    DomainVerification,
    PortalSettings,
    SettingsChange,
    SettingsStamp,
    SiteSettings,
    StoredImage,
    web_manifest,
)
from ..errors import Conflict, MembershipError, ValidationError
from ..ports.dns import LookupFailed, LookupUnsupported
from ..ports.storage import UnitOfWork
from ..serialization import structure, unstructure
from . import _images
from . import _settings_rules as rules
from ._context import Service
from ._unset import UNSET, _Unset

__all__ = ["EXPORT_FORMAT", "SettingsService"]

log = logging.getLogger(__name__)

#: The ``format`` of :meth:`SettingsService.export` data.
EXPORT_FORMAT = "membership_core.settings/1"

# Left out of exports and history: a proof of domain ownership belongs to one
# portal, and the state fields are facts of this portal, not configuration.
_PRIVATE = {"domain": ("verification_token", "verified_at")}
_REDACTED = "(hidden)"

_Change = Callable[[UnitOfWork, PortalSettings], PortalSettings]

_AREA_TYPES: dict[str, type] = {
    "site": SiteSettings,
    "advanced": AdvancedSettings,
    "branding": BrandingSettings,
    "builder": BuilderSettings,
    "domain": DomainSettings,
    "email": EmailSettings,
    "app": AppSettings,
}


def _given(**values: object) -> dict[str, Any]:
    return {name: value for name, value in values.items() if not isinstance(value, _Unset)}


def _changed_by(value: object) -> str | None:
    return v.optional_text("changed_by", value, max_length=200)


class SettingsService(Service):
    """Read and change the portal's settings. ``portal.settings``.

    >>> from membership_core.testing import make_test_portal
    >>> portal = make_test_portal()
    >>> portal.settings.update_site(title="Acme Academy", changed_by="ada").title
    'Acme Academy'
    >>> [(c.version, c.area, c.fields, c.changed_by) for c in portal.settings.history()]
    [(1, 'site', ('title',), 'ada')]
    """

    # -- reading ----------------------------------------------------------------------

    def get(self) -> PortalSettings:
        """Every area at the current version (defaults until changed)."""
        with self._ctx.uow(write=False) as uow:
            return self._settings(uow)

    def site(self) -> SiteSettings:
        """The site info: title, timezone, default currency, support address."""
        return self.get().site

    def base_url(self) -> str:
        """The URL members use: ``https://`` the verified custom domain, else the
        platform URL with the sub-domain, else the platform URL (``Portal.open(platform_url=)``)."""
        with self._ctx.uow(write=False) as uow:
            return self._base_url(uow)

    def advanced(self) -> AdvancedSettings:
        """Custom CSS, custom JavaScript, head and body code (see ``snippets()``)."""
        return self.get().advanced

    def branding(self) -> BrandingSettings:
        """Logo and favicon; ``warnings()`` says what is off the recommended sizes."""
        return self.get().branding

    def builder(self) -> BuilderSettings:
        """The switches a host reads when it renders lessons."""
        return self.get().builder

    def domain(self) -> DomainSettings:
        """Sub-domain and custom domain, with whether the latter is verified."""
        return self.get().domain

    def email(self) -> EmailSettings:
        """Sender, reply-to, and which automated emails are sent with which template."""
        return self.get().email

    def app(self) -> AppSettings:
        """The Progressive Web App settings."""
        return self.get().app

    def web_manifest(self) -> dict[str, Any] | None:
        """The Web App Manifest to serve as ``manifest.webmanifest``, or ``None`` while
        the app is disabled."""
        with self._ctx.uow(write=False) as uow:
            return web_manifest(self._settings(uow), self._base_url(uow))

    def history(self, *, area: str | None = None, limit: int = 50) -> list[SettingsChange]:
        """The latest changes, newest first (``area`` keeps one area's)."""
        if area is not None and area not in AREAS:
            raise ValidationError("area", f"unknown area {area!r}; expected one of {AREAS}")
        limit = v.integer("limit", limit, minimum=1)
        where = None if area is None else {"area": area}
        with self._ctx.uow(write=False) as uow:
            return uow.settings_changes.find(
                where, order_by=("version",), descending=True, limit=limit
            )

    # -- site, advanced, builder, email ----------------------------------------------

    def update_site(
        self,
        *,
        title: str | _Unset = UNSET,
        timezone: str | _Unset = UNSET,
        currency: str | _Unset = UNSET,
        support_email: str | _Unset | None = UNSET,
        changed_by: str | None = None,
    ) -> SiteSettings:
        """Change some site fields; the ones not given stay as they are."""
        fields = _given(
            title=title, timezone=timezone, currency=currency, support_email=support_email
        )
        return self._update_area("site", fields, rules.clean_site, changed_by).site

    def update_advanced(
        self,
        *,
        custom_css: str | _Unset = UNSET,
        custom_js: str | _Unset = UNSET,
        head_code: str | _Unset = UNSET,
        body_code: str | _Unset = UNSET,
        changed_by: str | None = None,
    ) -> AdvancedSettings:
        """Change the admin's own code: stored as given, at most
        100,000 characters each; CSS without ``</style>``, JS without ``</script>``."""
        fields = _given(
            custom_css=custom_css, custom_js=custom_js, head_code=head_code, body_code=body_code
        )
        return self._update_area("advanced", fields, rules.clean_advanced, changed_by).advanced

    def update_builder(
        self,
        *,
        allow_video_download: bool | _Unset = UNSET,
        allow_comments: bool | _Unset = UNSET,
        show_progress: bool | _Unset = UNSET,
        autoplay_next_lesson: bool | _Unset = UNSET,
        changed_by: str | None = None,
    ) -> BuilderSettings:
        """Change the lesson switches."""
        fields = _given(
            allow_video_download=allow_video_download,
            allow_comments=allow_comments,
            show_progress=show_progress,
            autoplay_next_lesson=autoplay_next_lesson,
        )
        return self._update_area("builder", fields, rules.clean_builder, changed_by).builder

    def update_sender(
        self,
        *,
        sender_name: str | _Unset | None = UNSET,
        sender_email: str | _Unset = UNSET,
        reply_to: str | _Unset | None = UNSET,
        changed_by: str | None = None,
    ) -> EmailSettings:
        """Change who emails come from (``sender_name`` ``None``: the site title) and
        where replies go (``reply_to`` ``None``: to the sender)."""
        fields = _given(sender_name=sender_name, sender_email=sender_email, reply_to=reply_to)
        return self._update_area("email", fields, rules.clean_email, changed_by).email

    def update_email(
        self,
        email: AutomatedEmail | str,
        *,
        enabled: bool | _Unset = UNSET,
        template_id: str | _Unset | None = UNSET,
        changed_by: str | None = None,
    ) -> EmailSettings:
        """Switch one automated email on or off, or choose its template.

        ``template_id`` names a template made with ``portal.templates.create``
        for the same kind of email (``None``: back to the default). Switching
        an email on sends it for what happens from now on, never for what
        happened while it was off.
        """
        kind = v.choice("email", email, AutomatedEmail)
        if not isinstance(enabled, _Unset):
            v.boolean("enabled", enabled)
        if not isinstance(template_id, _Unset) and template_id is not None:
            v.identifier("template_id", template_id, "tpl")

        def change(uow: UnitOfWork, current: PortalSettings) -> PortalSettings:
            choice = current.email.choice(kind)
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
            return attrs.evolve(current, email=current.email.with_choice(kind, new))

        return self._change("email", change, _changed_by(changed_by)).email

    # -- branding and app (images) -----------------------------------------------------

    def update_branding(
        self,
        *,
        logo: bytes | _Unset | None = UNSET,
        favicon: bytes | _Unset | None = UNSET,
        changed_by: str | None = None,
    ) -> BrandingSettings:
        """Upload (bytes) or remove (``None``) the logo and the favicon.

        The format and size are read from the bytes (Pillow, extra ``images``):
        logo PNG, JPEG, GIF or WebP; favicon also ICO; at most 5 MiB and 25
        megapixels. Another size than the recommended 640x640 logo and 32x32
        favicon is accepted; ``branding.warnings()`` says so for the admin.
        """
        by = _changed_by(changed_by)
        uploads: dict[str, StoredImage | None] = {}
        stored: list[str] = []
        try:
            for field, data, formats in (
                ("logo", logo, _images.LOGO_FORMATS),
                ("favicon", favicon, _images.FAVICON_FORMATS),
            ):
                if isinstance(data, _Unset):
                    continue
                if data is None:
                    uploads[field] = None
                    continue
                probed = _images.probe(
                    field,
                    data,
                    formats=formats,
                    max_bytes=_images.MAX_IMAGE_BYTES,
                    max_pixels=_images.MAX_IMAGE_PIXELS,
                )
                uploads[field] = self._store_image(f"branding/{field}", data, probed, stored)

            def change(_uow: UnitOfWork, current: PortalSettings) -> PortalSettings:
                branding = attrs.evolve(current.branding, **uploads)
                return attrs.evolve(current, branding=rules.clean_branding(branding))

            return self._change("branding", change, by).branding
        except BaseException:
            self._forget_media(stored)
            raise

    def update_app(
        self,
        *,
        enabled: bool | _Unset = UNSET,
        name: str | _Unset | None = UNSET,
        short_name: str | _Unset | None = UNSET,
        description: str | _Unset = UNSET,
        theme_color: str | _Unset = UNSET,
        background_color: str | _Unset = UNSET,
        icon: bytes | _Unset | None = UNSET,
        changed_by: str | None = None,
    ) -> AppSettings:
        """Change the PWA settings; ``icon`` uploads the app icon (bytes: PNG, JPEG or
        WebP, square, at least 512x512) or removes it (``None``).

        The manifest's 192 and 512 pixel icons and a maskable one (the icon in
        the central 80% of a square of the background colour) are made from
        it. The app can be enabled once it has a name and an icon. A short
        name over 12 characters is accepted with a warning (``app.warnings()``);
        a name of 45 characters or more is refused.
        """
        by = _changed_by(changed_by)
        fields = _given(
            enabled=enabled,
            name=name,
            short_name=short_name,
            description=description,
            theme_color=theme_color,
            background_color=background_color,
        )
        stored: list[str] = []
        try:
            with self._ctx.uow(write=False) as uow:
                current_app = self._settings(uow).app
            app = rules.clean_app(attrs.evolve(current_app, **fields))
            source: bytes | None = None
            if isinstance(icon, bytes | bytearray):
                source = bytes(icon)
                probed = _images.probe(
                    "icon",
                    source,
                    formats=_images.ICON_FORMATS,
                    max_bytes=_images.MAX_IMAGE_BYTES,
                    max_pixels=_images.MAX_IMAGE_PIXELS,
                )
                image = self._store_image("app/icon", source, probed, stored)
                app = rules.clean_app(attrs.evolve(app, icon=image))
            elif icon is None:
                app = attrs.evolve(app, icon=None, icons=())
            elif not isinstance(icon, _Unset):
                raise ValidationError("icon", f"must be image bytes, not {type(icon).__name__}")
            elif app.icon is not None and app.background_color != current_app.background_color:
                source = self._ctx.media.get(app.icon.key)  # the maskable icon shows it
            if source is not None and app.icon is not None:
                app = attrs.evolve(app, icons=self._app_icons(source, app, stored))

            def change(_uow: UnitOfWork, current: PortalSettings) -> PortalSettings:
                merged = attrs.evolve(current.app, **fields)
                if not isinstance(icon, _Unset) or source is not None:
                    merged = attrs.evolve(merged, icon=app.icon, icons=app.icons)
                return attrs.evolve(current, app=rules.clean_app(merged))

            return self._change("app", change, by).app
        except BaseException:
            self._forget_media(stored)
            raise

    def _app_icons(self, source: bytes, app: AppSettings, stored: list[str]) -> tuple[AppIcon, ...]:
        made = (
            ("app/icon-192", _images.square_png(source, 192), "any"),
            ("app/icon-512", _images.square_png(source, 512), "any"),
            (
                "app/icon-maskable",
                _images.maskable_png(source, 512, app.background_color),
                "maskable",
            ),
        )
        icons = []
        for name, data, purpose in made:
            probed = _images.probe(
                "icon",
                data,
                formats=frozenset({"PNG"}),
                max_bytes=_images.MAX_IMAGE_BYTES,
                max_pixels=_images.MAX_IMAGE_PIXELS,
            )
            icons.append(AppIcon(self._store_image(name, data, probed, stored), purpose))
        return tuple(icons)

    def _store_image(
        self, name: str, data: bytes, probed: _images.ProbedImage, stored: list[str]
    ) -> StoredImage:
        """Put ``data`` in the media store under a name of its content; note the key."""
        digest = hashlib.sha256(data).hexdigest()
        key = f"{self._ctx.tenant}/{name}-{digest[:16]}.{probed.extension}"
        url = self._ctx.media.put(key, data, probed.media_type)
        stored.append(key)
        sizes = probed.sizes if probed.format == "ICO" else ()
        return StoredImage(
            url, key, probed.media_type, probed.width, probed.height, len(data), digest, sizes
        )

    def _forget_media(self, keys: list[str]) -> None:
        """Delete what a failed update stored, unless the settings use it (same content)."""
        if not keys:
            return
        with self._ctx.uow(write=False) as uow:
            used = _media_keys(self._settings(uow))
        for key in keys:
            if key not in used:
                try:
                    self._ctx.media.delete(key)
                except Exception:
                    log.exception("could not delete %s after a failed settings update", key)

    # -- domain -------------------------------------------------------------------------

    def update_domain(
        self,
        *,
        subdomain: str | _Unset | None = UNSET,
        custom_domain: str | _Unset | None = UNSET,
        changed_by: str | None = None,
    ) -> DomainSettings:
        """Change the sub-domain (a DNS label, not reserved, free in this database)
        or the custom domain (a public host name; it starts unverified).

        A new custom domain gets a fresh verification token; until
        :meth:`verify_domain` passes, the portal's URLs use the sub-domain.
        """
        by = _changed_by(changed_by)
        label = UNSET if isinstance(subdomain, _Unset) else rules.clean_subdomain(subdomain)
        host: str | _Unset | None = UNSET
        if not isinstance(custom_domain, _Unset) and custom_domain is not None:
            host = normalize_custom_domain(custom_domain, platform_host=self._platform_host())
        elif custom_domain is None:
            host = None

        def change(uow: UnitOfWork, current: PortalSettings) -> PortalSettings:
            domain = current.domain
            if not isinstance(label, _Unset) and label != domain.subdomain:
                self._claim(uow, "subdomain", label, "subdomain")
                domain = attrs.evolve(domain, subdomain=label)
            if not isinstance(host, _Unset) and host != domain.custom_domain:
                self._release(uow, "custom_domain")
                if host is not None:
                    self._check_unclaimed(uow, host)
                token = None if host is None else secrets.token_hex(16)
                domain = attrs.evolve(
                    domain, custom_domain=host, verification_token=token, verified_at=None
                )
            return attrs.evolve(current, domain=domain)

        return self._change("domain", change, by).domain

    def domain_verification(self) -> DomainVerification | None:
        """The DNS records the admin must create for the custom domain (``None``: none set).

        A CNAME from the custom domain to the portal's platform host, and a TXT
        record ``_membership-verification.<domain>`` holding this portal's token.
        """
        domain = self.domain()
        if domain.custom_domain is None or domain.verification_token is None:
            return None
        return DomainVerification(
            domain.custom_domain, self._records(domain), domain.verified_at, ()
        )

    def verify_domain(self, *, changed_by: str | None = None) -> DomainVerification:
        """Look the records up through the resolver port; mark the domain verified if
        both are right. Returns what was found for each record.

        A check that fails leaves a domain verified before as it is. With the
        default standard-library resolver the TXT record cannot be read (its
        check says "unchecked"); pass ``Portal.open(resolver=...)`` a resolver that
        can, such as ``DnspythonResolver`` (extra ``dns``).
        """
        by = _changed_by(changed_by)
        domain = self.domain()
        if domain.custom_domain is None or domain.verification_token is None:
            raise ValidationError("custom_domain", "is not set; set one with update_domain first")
        records = self._records(domain)
        checks = tuple(self._check(record) for record in records)  # outside any transaction
        verified_at = domain.verified_at
        if all(check.ok for check in checks) and verified_at is None:
            now = self._ctx.now()

            def change(uow: UnitOfWork, current: PortalSettings) -> PortalSettings:
                if current.domain.verification_token != domain.verification_token:
                    raise Conflict("the custom domain changed while it was checked; check again")
                self._claim(uow, "custom_domain", domain.custom_domain or "", "custom_domain")
                return attrs.evolve(current, domain=attrs.evolve(current.domain, verified_at=now))

            self._change("domain", change, by)
            verified_at = now
        return DomainVerification(domain.custom_domain, records, verified_at, checks)

    def _records(self, domain: DomainSettings) -> tuple[DnsRecord, ...]:
        target = urlsplit(
            DomainSettings(subdomain=domain.subdomain).base_url(self._ctx.platform_url)
        ).hostname
        return verification_records(
            domain.custom_domain or "",
            cname_target=target or "",
            token=domain.verification_token or "",
        )

    def _check(self, record: DnsRecord) -> RecordCheck:
        try:
            found = self._ctx.resolver.lookup(record.name, record.type)
        except LookupUnsupported as error:
            return check_record(record, None, unchecked=str(error))
        except LookupFailed as error:
            return check_record(record, None, error=str(error))
        return check_record(record, found)

    def _platform_host(self) -> str:
        return urlsplit(self._ctx.platform_url).hostname or ""

    def _claim(self, uow: UnitOfWork, kind: str, name: str | None, field: str) -> None:
        """Hold ``name`` for this portal (releasing the old one); refuse one another holds."""
        self._release(uow, kind)
        if name is None:
            return
        try:
            uow.domain_claims.add(DomainClaim(kind, name, self._ctx.now()))
        except Conflict:
            raise Conflict(f"{field}: {name!r} is taken by another portal", field=field) from None

    @staticmethod
    def _release(uow: UnitOfWork, kind: str) -> None:
        if uow.domain_claims.get_for_update(kind) is not None:
            uow.domain_claims.delete(kind)

    def _check_unclaimed(self, uow: UnitOfWork, host: str) -> None:
        """Refuse a custom domain another portal has verified: claim it, then let go.

        Call with this portal's own custom-domain claim released.
        """
        self._claim(uow, "custom_domain", host, "custom_domain")
        self._release(uow, "custom_domain")

    # -- export and import ---------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """Every area as JSON-safe data, for :meth:`import_settings` in another portal.

        Left out: the version, the domain's verification token and state, and
        when each email was switched on (facts of this portal, not settings).
        Images are exported as references (URL and key in the media store).
        """
        settings = self.get()
        data: dict[str, Any] = {}
        for area in AREAS:
            values = unstructure(getattr(settings, area))
            for private in _PRIVATE.get(area, ()):
                values.pop(private, None)
            if area == "email":
                for kind in AutomatedEmail:
                    values[kind.value].pop("enabled_at", None)
            data[area] = values
        return {"format": EXPORT_FORMAT, "settings": data}

    def import_settings(
        self,
        data: Mapping[str, Any],
        *,
        areas: tuple[str, ...] | None = None,
        changed_by: str | None = None,
    ) -> PortalSettings:
        """Replace the given ``areas`` (default: all in ``data``) with exported ones.

        Everything is checked as an update would check it, and all of it lands
        in one transaction or none does. A custom domain arrives unverified,
        with a token of this portal; a sub-domain another portal holds is a
        ``Conflict``. Emails switched on are on from now (no backlog).
        """
        by = _changed_by(changed_by)
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
        now = self._ctx.now()
        imported = {area: self._imported(area, given[area], now) for area in chosen}

        def change(uow: UnitOfWork, current: PortalSettings) -> PortalSettings:
            updated = current
            for area, value in imported.items():
                if area == "domain":
                    value = self._imported_domain(uow, current.domain, value)
                if area == "email":
                    value = _keep_enabled_at(current.email, value)
                    for kind in AutomatedEmail:
                        template_id = value.choice(kind).template_id
                        if template_id is not None and uow.email_templates.get(template_id) is None:
                            raise ValidationError(
                                f"email.{kind.value}.template_id",
                                f"names template {template_id!r}, which this portal does not have",
                            )
                updated = attrs.evolve(updated, **{area: value})
            return updated

        return self._change(chosen, change, by)

    def _imported(self, area: str, raw: object, now: datetime) -> Any:
        try:
            value: Any = structure(raw, _AREA_TYPES[area])
        except ValidationError as error:
            # "SiteSettings.title" names the class; the caller knows the area.
            _, _, inner = (error.field or "").partition(".")
            raise ValidationError(f"{area}.{inner}" if inner else area, error.problem) from None
        cleaners: dict[str, Callable[[Any], Any]] = {
            "site": rules.clean_site,
            "advanced": rules.clean_advanced,
            "branding": rules.clean_branding,
            "builder": rules.clean_builder,
            "email": rules.clean_email,
            "app": rules.clean_app,
        }
        try:
            if area == "domain":
                host = value.custom_domain
                return DomainSettings(
                    rules.clean_subdomain(value.subdomain),
                    None
                    if host is None
                    else normalize_custom_domain(host, platform_host=self._platform_host()),
                )
            cleaned = cleaners[area](value)
            if area == "email":
                cleaned = _enable_from(cleaned, now)
            return cleaned
        except ValidationError as error:
            raise ValidationError(f"{area}.{error.field}", error.problem) from None

    def _imported_domain(
        self, uow: UnitOfWork, current: DomainSettings, value: DomainSettings
    ) -> DomainSettings:
        domain = current
        if value.subdomain != current.subdomain:
            self._claim(uow, "subdomain", value.subdomain, "domain.subdomain")
            domain = attrs.evolve(domain, subdomain=value.subdomain)
        if value.custom_domain != current.custom_domain:
            self._release(uow, "custom_domain")
            if value.custom_domain is not None:
                self._check_unclaimed(uow, value.custom_domain)
            token = None if value.custom_domain is None else secrets.token_hex(16)
            domain = attrs.evolve(
                domain,
                custom_domain=value.custom_domain,
                verification_token=token,
                verified_at=None,
            )
        return domain

    # -- the one write path -------------------------------------------------------------

    def _update_area(
        self,
        area: str,
        fields: dict[str, Any],
        clean: Callable[[Any], Any],
        changed_by: object,
    ) -> PortalSettings:
        by = _changed_by(changed_by)
        # Checked before the transaction too, so bad input costs no lock.
        with self._ctx.uow(write=False) as uow:
            clean(attrs.evolve(getattr(self._settings(uow), area), **fields))

        def change(_uow: UnitOfWork, current: PortalSettings) -> PortalSettings:
            value = clean(attrs.evolve(getattr(current, area), **fields))
            return attrs.evolve(current, **{area: value})

        return self._change(area, change, by)

    def _change(
        self, areas: str | tuple[str, ...], change: _Change, changed_by: str | None
    ) -> PortalSettings:
        """Apply ``change`` to the current settings under the settings lock; if anything
        differs, write the next version, its history entries and events, and commit."""
        areas = (areas,) if isinstance(areas, str) else areas
        with self._ctx.uow() as uow:
            stamp = self._lock_stamp(uow)
            current = uow.portal_settings.get("portal") or PortalSettings()
            updated = change(uow, current)
            rules.check_whole(updated)
            diffs = [(area, *_diff(area, current, updated)) for area in areas]
            diffs = [diff for diff in diffs if diff[1]]
            if not diffs:
                return current
            now = self._ctx.now()
            version = max(current.version, stamp.version) + 1
            new = attrs.evolve(updated, version=version, changed_at=now)
            if uow.portal_settings.get("portal") is None:
                uow.portal_settings.add(new)
            else:
                uow.portal_settings.update(new)
            uow.settings_stamps.update(SettingsStamp("portal", version))
            for area, fields, before, after in diffs:
                uow.settings_changes.add(
                    SettingsChange(
                        self._ctx.ids.new("chg"),
                        version,
                        area,
                        fields,
                        before,
                        after,
                        changed_by,
                        now,
                    )
                )
                self._record(
                    uow,
                    SettingsChanged,
                    area=area,
                    fields=fields,
                    version=version,
                    changed_by=changed_by,
                )
            uow.commit()
        self._ctx.settings_cache.put(new)
        self._committed()
        return new

    @staticmethod
    def _lock_stamp(uow: UnitOfWork) -> SettingsStamp:
        """Lock the stamp row: settings writers of one portal go one at a time."""
        stamp = uow.settings_stamps.get_for_update("portal")
        if stamp is None:
            with contextlib.suppress(Conflict):  # another writer made it first: lock theirs
                uow.settings_stamps.add(SettingsStamp("portal", 0))
            stamp = uow.settings_stamps.get_for_update("portal")
        if stamp is None:
            raise MembershipError("the settings stamp vanished while it was locked")
        return stamp


def _diff(
    area: str, before: PortalSettings, after: PortalSettings
) -> tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]:
    """The fields of ``area`` that differ, with their old and new JSON-safe values."""
    old = unstructure(getattr(before, area))
    new = unstructure(getattr(after, area))
    fields = tuple(name for name in new if new[name] != old.get(name))
    private = _PRIVATE.get(area, ())

    def shown(values: dict[str, Any]) -> dict[str, Any]:
        return {
            name: _REDACTED if name in private and values[name] is not None else values[name]
            for name in fields
        }

    return fields, shown(old), shown(new)


def _media_keys(settings: PortalSettings) -> set[str]:
    images = [settings.branding.logo, settings.branding.favicon, settings.app.icon]
    images += [icon.image for icon in settings.app.icons]
    return {image.key for image in images if image is not None}


def _enable_from(email: EmailSettings, now: datetime) -> EmailSettings:
    """Imported emails that are on count from ``now``: no backlog for the past."""
    for kind in AutomatedEmail:
        choice = email.choice(kind)
        at = now if choice.enabled else None
        email = email.with_choice(kind, EmailChoice(choice.enabled, choice.template_id, at))
    return email


def _keep_enabled_at(current: EmailSettings, imported: EmailSettings) -> EmailSettings:
    """An email that was on and stays on keeps when it was switched on."""
    for kind in AutomatedEmail:
        old, new = current.choice(kind), imported.choice(kind)
        if old.enabled and new.enabled:
            imported = imported.with_choice(kind, attrs.evolve(new, enabled_at=old.enabled_at))
    return imported
