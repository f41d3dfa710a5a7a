"""Portal settings: site, advanced code, branding, builder, domain, email and app.

Every area is a typed value of :class:`~membership_core.domain.settings.PortalSettings`.
An update changes the fields it is given, checks the whole result, and
writes a new version with an entry in the history and a ``SettingsChanged``
event, all in one transaction. Reads are served from a per-portal cache that
one small query keeps honest across processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from .. import _validate as v
from ..domain.domains import normalize_custom_domain
from ..domain.email_settings import AutomatedEmail, EmailSettings
from ..domain.events import SettingsChanged
from ..domain.settings import (
    AREAS,
    AdvancedSettings,
    AppSettings,
    BrandingSettings,
    BuilderSettings,
    DomainSettings,
    DomainVerification,
    PageSnippet,
    PortalSettings,
    SettingsChange,
    SettingsStamp,
    SiteSettings,
    StoredImage,
    page_snippets,
    web_manifest,
)
from ..errors import Conflict, MembershipError, ValidationError
from ..ports.storage import UnitOfWork
from ..serialization import unstructure
from . import _domain_claims as claims
from . import _images
from . import _settings_rules as rules
from . import _settings_transfer as transfer
from ._context import Service
from ._media_uploads import MediaUploads, media_keys
from ._settings_transfer import EXPORT_FORMAT
from ._unset import UNSET, _Unset

__all__ = ["EXPORT_FORMAT", "SettingsService"]

_REDACTED = "(hidden)"

_Change = Callable[[UnitOfWork, PortalSettings], PortalSettings]


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

    def page_snippets(
        self, *, manifest_url: str | None = "/manifest.webmanifest"
    ) -> tuple[PageSnippet, ...]:
        """What the settings put in every portal page: the favicon, the app's manifest
        link, theme colour and home-screen icon (while it is enabled), then the admin's
        CSS and code, each with where it belongs (``Placement.HEAD`` or ``BODY_END``).

        ``manifest_url`` is where the host serves :meth:`web_manifest`.
        """
        if manifest_url is not None:
            manifest_url = v.text("manifest_url", manifest_url, max_length=2000)
        return page_snippets(self.get(), manifest_url=manifest_url)

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
        """Change the admin's own code: stored as given, at most 100,000 characters each.

        Refused, as it would break every page: CSS with ``</style>``; JavaScript
        with ``</script>`` or ``<!--``; head or body code that leaves an element
        open, closes one it never opened, ends inside a comment, or has
        ``<!--`` in a script.
        """
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
        images: dict[str, StoredImage | None] = {}
        with self._uploads() as uploads:
            for field, data, formats in (
                ("logo", logo, _images.LOGO_FORMATS),
                ("favicon", favicon, _images.FAVICON_FORMATS),
            ):
                if data is None or isinstance(data, _Unset):
                    if data is None:
                        images[field] = None
                    continue
                images[field] = uploads.probe_and_store(f"branding/{field}", field, data, formats)

            def change(_uow: UnitOfWork, current: PortalSettings) -> PortalSettings:
                branding = attrs.evolve(current.branding, **images)
                return attrs.evolve(current, branding=rules.clean_branding(branding))

            return self._change("branding", change, by).branding

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
        with self._uploads() as uploads:
            with self._ctx.uow(write=False) as uow:
                current_app = self._settings(uow).app
            app = rules.clean_app(attrs.evolve(current_app, **fields))
            source: bytes | None = None
            if icon is not None and not isinstance(icon, _Unset):
                image = uploads.probe_and_store("app/icon", "icon", icon, _images.ICON_FORMATS)
                app = rules.clean_app(attrs.evolve(app, icon=image))
                source = bytes(icon)
            elif icon is None:
                app = attrs.evolve(app, icon=None, icons=())
            elif app.icon is not None and app.background_color != current_app.background_color:
                source = self._ctx.media.get(app.icon.key)  # the maskable icon shows it
            if source is not None and app.icon is not None:
                app = attrs.evolve(app, icons=uploads.app_icons(source, app.background_color))

            def change(_uow: UnitOfWork, current: PortalSettings) -> PortalSettings:
                merged = attrs.evolve(current.app, **fields)
                if not isinstance(icon, _Unset) or source is not None:
                    merged = attrs.evolve(merged, icon=app.icon, icons=app.icons)
                return attrs.evolve(current, app=rules.clean_app(merged))

            return self._change("app", change, by).app

    @contextlib.contextmanager
    def _uploads(self) -> Iterator[MediaUploads]:
        """Images stored for one update; if it fails, the ones no setting uses go again."""
        uploads = MediaUploads(self._ctx)
        try:
            yield uploads
        except BaseException:
            if uploads.keys:
                with self._ctx.uow(write=False) as uow:
                    used = media_keys(self._settings(uow))
                uploads.take_back(used)
            raise

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
            domain, now = current.domain, self._ctx.now()
            if not isinstance(label, _Unset):
                domain = claims.with_subdomain(uow, domain, label, field="subdomain", now=now)
            if not isinstance(host, _Unset):
                domain = claims.with_custom_domain(
                    uow, domain, host, field="custom_domain", now=now
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
        records = claims.records(domain, self._ctx.platform_url)
        return DomainVerification(domain.custom_domain, records, domain.verified_at, ())

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
        records = claims.records(domain, self._ctx.platform_url)
        # Looked up outside any transaction: DNS may take seconds.
        checks = tuple(claims.check(self._ctx.resolver, record) for record in records)
        verified_at = domain.verified_at
        if all(check.ok for check in checks) and verified_at is None:
            now = self._ctx.now()

            def change(uow: UnitOfWork, current: PortalSettings) -> PortalSettings:
                if current.domain.verification_token != domain.verification_token:
                    raise Conflict("the custom domain changed while it was checked; check again")
                host = domain.custom_domain or ""
                claims.claim(uow, "custom_domain", host, field="custom_domain", now=now)
                return attrs.evolve(current, domain=attrs.evolve(current.domain, verified_at=now))

            self._change("domain", change, by)
            verified_at = now
        return DomainVerification(domain.custom_domain, records, verified_at, checks)

    def _platform_host(self) -> str:
        return urlsplit(self._ctx.platform_url).hostname or ""

    # -- export and import ---------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """Every area as JSON-safe data, for :meth:`import_settings` in another portal.

        Left out: the version, the domain's verification token and state, and
        when each email was switched on (facts of this portal, not settings).
        Images are exported as references (URL and key in the media store).
        """
        return transfer.export_data(self.get())

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
        imported = transfer.read_import(
            data, areas, platform_host=self._platform_host(), now=self._ctx.now()
        )

        def change(uow: UnitOfWork, current: PortalSettings) -> PortalSettings:
            updated, now = current, self._ctx.now()
            for area, value in imported.items():
                if area == "domain":
                    domain = claims.with_subdomain(
                        uow, current.domain, value.subdomain, field="domain.subdomain", now=now
                    )
                    value = claims.with_custom_domain(
                        uow, domain, value.custom_domain, field="domain.custom_domain", now=now
                    )
                elif area == "email":
                    transfer.check_templates(uow, value)
                    value = transfer.keep_enabled_at(current.email, value)
                updated = attrs.evolve(updated, **{area: value})
            return updated

        return self._change(tuple(imported), change, by)

    # -- the one write path -------------------------------------------------------------

    def _update_area(
        self,
        area: str,
        fields: dict[str, Any],
        clean: Callable[[Any], Any],
        changed_by: object,
    ) -> PortalSettings:
        by = _changed_by(changed_by)

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
    private = transfer.SECRET_FIELDS.get(area, ())

    def shown(values: dict[str, Any]) -> dict[str, Any]:
        return {
            name: _REDACTED if name in private and values[name] is not None else values[name]
            for name in fields
        }

    return fields, shown(old), shown(new)
