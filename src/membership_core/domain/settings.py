"""Portal settings: one typed value per area of the admin's settings pages.

Pure values and rules. The settings service validates input, stores a whole
:class:`PortalSettings` per portal (one version at a time, with a history of
changes) and caches it; this module only says what the values are, what they
mean for the pages a host renders, and which combinations are refused.
"""

from __future__ import annotations

import enum
import html
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from .domains import DnsRecord, RecordCheck
from .email_settings import EmailSettings

__all__ = [
    "AREAS",
    "FAVICON_SIZE",
    "LOGO_SIZE",
    "MIN_APP_ICON_SIZE",
    "AdvancedSettings",
    "AppIcon",
    "AppSettings",
    "BrandingSettings",
    "BuilderSettings",
    "DomainClaim",
    "DomainSettings",
    "DomainVerification",
    "PageSnippet",
    "Placement",
    "PortalSettings",
    "SettingsChange",
    "SettingsStamp",
    "SiteSettings",
    "StoredImage",
    "image_warning",
    "page_snippets",
    "web_manifest",
]

#: The recommended logo size (square, pixels); other sizes are accepted with a warning.
LOGO_SIZE = 640
#: The recommended favicon size.
FAVICON_SIZE = 32
#: The smallest app icon browsers install a PWA with (and the largest icon we generate).
MIN_APP_ICON_SIZE = 512
#: Browsers show at most about 12 characters of a short name under a home-screen icon.
SHORT_NAME_LIMIT = 12
#: Lighthouse and app stores truncate longer app names; 45 is refused.
APP_NAME_LIMIT = 45


@attrs.frozen
class SiteSettings:
    """Site info: the portal's title (the company name, for the whole portal),
    timezone, default currency and support address.

    The URL members use is not stored here: it follows the domain settings
    (:meth:`DomainSettings.base_url`).
    """

    title: str = "Membership Portal"
    timezone: str = "UTC"
    currency: str = "USD"
    support_email: str | None = None


class Placement(enum.Enum):
    """Where in every portal page a host puts a :class:`PageSnippet`."""

    #: Inside ``<head>``, after the host's own stylesheets (so custom CSS wins).
    HEAD = "head"
    #: Just before ``</body>`` (scripts run once the page is parsed).
    BODY_END = "body_end"


@attrs.frozen
class PageSnippet:
    """A piece of the admin's own code and where it belongs in the page."""

    field: str
    placement: Placement
    html: str


@attrs.frozen
class AdvancedSettings:
    """The admin's custom CSS, custom JavaScript and tracking code.

    They are the admin's code, so they are stored exactly as given (never
    rendered as templates: ``{{ member.email }}`` stays literal text, so no
    member-supplied value can end up in them). :meth:`snippets` says where
    each belongs.

    >>> AdvancedSettings(custom_css="body { color: teal }").snippets()[0].html
    '<style>body { color: teal }</style>'
    """

    #: Raw CSS (without ``<style>``); goes in the head.
    custom_css: str = ""
    #: Raw JavaScript (without ``<script>``); runs at the end of the body.
    custom_js: str = ""
    #: HTML for the head, as given (analytics and tag-manager snippets).
    head_code: str = ""
    #: HTML for the end of the body, as given (``<noscript>`` pixels and the like).
    body_code: str = ""

    def snippets(self) -> tuple[PageSnippet, ...]:
        """The non-empty fields as HTML, in page order, each with its placement."""
        pieces = (
            ("custom_css", Placement.HEAD, f"<style>{self.custom_css}</style>", self.custom_css),
            ("head_code", Placement.HEAD, self.head_code, self.head_code),
            ("custom_js", Placement.BODY_END, f"<script>{self.custom_js}</script>", self.custom_js),
            ("body_code", Placement.BODY_END, self.body_code, self.body_code),
        )
        return tuple(PageSnippet(field, where, html) for field, where, html, raw in pieces if raw)


@attrs.frozen
class StoredImage:
    """An uploaded image as stored in the media store, with what was read from its bytes."""

    url: str
    key: str
    media_type: str
    width: int
    height: int
    size: int
    sha256: str
    #: Every size an ICO file holds (largest first); empty for other formats.
    sizes: tuple[tuple[int, int], ...] = ()


def image_warning(what: str, image: StoredImage, recommended: int) -> str | None:
    """A note for the admin when ``image`` is not ``recommended`` x ``recommended`` pixels.

    An ICO that holds the recommended size among others needs no note.

    >>> image = StoredImage("u", "k", "image/png", 300, 200, 1, "0")
    >>> image_warning("logo", image, 640)
    'logo is 300x200 pixels, not square; 640x640 is recommended'
    """
    wanted = (recommended, recommended)
    if (image.width, image.height) == wanted or wanted in image.sizes:
        return None
    shape = "" if image.width == image.height else ", not square"
    return (
        f"{what} is {image.width}x{image.height} pixels{shape}; "
        f"{recommended}x{recommended} is recommended"
    )


@attrs.frozen
class BrandingSettings:
    """The portal's logo and favicon (``None``: none uploaded)."""

    logo: StoredImage | None = None
    favicon: StoredImage | None = None

    def warnings(self) -> tuple[str, ...]:
        """What the admin should know about the uploaded images (sizes that are not the
        recommended 640x640 logo and 32x32 favicon)."""
        found = (
            self.logo and image_warning("logo", self.logo, LOGO_SIZE),
            self.favicon and image_warning("favicon", self.favicon, FAVICON_SIZE),
        )
        return tuple(warning for warning in found if warning)


@attrs.frozen
class BuilderSettings:
    """Per-portal switches a host reads when it renders lessons."""

    #: Members may download a lesson's original video file.
    allow_video_download: bool = False
    #: Lessons show their comment thread (comments live in the host).
    allow_comments: bool = True
    #: Course pages show the member's progress (per cent of lessons completed).
    show_progress: bool = True
    #: The next lesson's video starts when one ends.
    autoplay_next_lesson: bool = False


@attrs.frozen
class DomainSettings:
    """The portal's sub-domain and custom domain.

    ``verification_token`` is the value the admin publishes in a TXT record to
    prove the custom domain is theirs; it is not exported. The portal's URLs
    use the custom domain once ``verified_at`` is set, the sub-domain before.
    """

    subdomain: str | None = None
    custom_domain: str | None = None
    verification_token: str | None = None
    verified_at: datetime | None = None

    @property
    def verified(self) -> bool:
        """Whether the custom domain passed verification."""
        return self.custom_domain is not None and self.verified_at is not None

    def base_url(self, platform_url: str) -> str:
        """The URL members use: ``https://<custom domain>`` once verified, else
        ``platform_url`` with the sub-domain in front of its host, else ``platform_url``.

        >>> DomainSettings(subdomain="acme").base_url("https://members.example.com")
        'https://acme.members.example.com'
        >>> DomainSettings().base_url("http://localhost:8000/portal")
        'http://localhost:8000/portal'
        """
        if self.verified:
            return f"https://{self.custom_domain}"
        base = platform_url.rstrip("/")
        if self.subdomain is None:
            return base
        parts = urlsplit(base)
        return urlunsplit(parts._replace(netloc=f"{self.subdomain}.{parts.netloc}"))


@attrs.frozen
class DomainVerification:
    """The DNS records a custom domain needs, and what a check found for each.

    ``checks`` is empty until ``portal.settings.verify_domain()`` looked;
    ``verified_at`` is set once a check passed.
    """

    domain: str
    records: tuple[DnsRecord, ...]
    verified_at: datetime | None
    checks: tuple[RecordCheck, ...]

    @property
    def verified(self) -> bool:
        """Whether the domain is verified."""
        return self.verified_at is not None


@attrs.frozen
class DomainClaim:
    """A portal's hold on a host name, unique across the portals of one database.

    ``id`` is the kind (``"subdomain"`` or ``"custom_domain"``): a portal holds
    at most one of each. A custom domain is claimed when it is verified, so
    nobody can block another portal's domain by typing it first.
    """

    id: str
    name: str
    claimed_at: datetime


@attrs.frozen
class AppIcon:
    """One icon of the web app manifest, generated from the uploaded app icon."""

    image: StoredImage
    purpose: str


@attrs.frozen
class AppSettings:
    """The portal as an installable Progressive Web App.

    ``icon`` is the uploaded icon (square, at least 512x512); ``icons`` the
    192, 512 and maskable PNGs made from it for the manifest.
    """

    enabled: bool = False
    name: str | None = None
    short_name: str | None = None
    description: str = ""
    theme_color: str = "#ffffff"
    background_color: str = "#ffffff"
    icon: StoredImage | None = None
    icons: tuple[AppIcon, ...] = ()

    def warnings(self) -> tuple[str, ...]:
        """What the admin should know: a short name longer than home screens show."""
        if self.short_name is not None and len(self.short_name) > SHORT_NAME_LIMIT:
            return (
                f"short_name has {len(self.short_name)} characters; home screens show "
                f"about {SHORT_NAME_LIMIT}, so it may be cut",
            )
        return ()


#: The settings areas, in the order of the admin's settings pages.
AREAS = ("site", "advanced", "branding", "builder", "domain", "email", "app")


@attrs.frozen
class PortalSettings:
    """Every settings area of one portal, at one ``version`` (0: never changed).

    >>> PortalSettings().site.title
    'Membership Portal'
    """

    id: str = "portal"
    version: int = 0
    site: SiteSettings = SiteSettings()
    advanced: AdvancedSettings = AdvancedSettings()
    branding: BrandingSettings = BrandingSettings()
    builder: BuilderSettings = BuilderSettings()
    domain: DomainSettings = DomainSettings()
    email: EmailSettings = attrs.field(factory=EmailSettings)
    app: AppSettings = AppSettings()
    changed_at: datetime | None = None


@attrs.frozen
class SettingsStamp:
    """The version of a portal's settings, read before the cached copy is trusted."""

    id: str
    version: int


@attrs.frozen
class SettingsChange:
    """One change of the settings history: who changed what in which area, and when.

    ``before`` and ``after`` hold the changed fields only, JSON-safe, with
    secrets left out.
    """

    id: str
    version: int
    area: str
    fields: tuple[str, ...]
    before: dict[str, Any]
    after: dict[str, Any]
    changed_by: str | None
    changed_at: datetime


def web_manifest(settings: PortalSettings, base_url: str) -> dict[str, Any] | None:
    """The Web App Manifest of ``settings`` served at ``base_url``, or ``None`` when
    the app is off.

    >>> web_manifest(PortalSettings(), "https://acme.example.com") is None
    True
    """
    app = settings.app
    if not app.enabled:
        return None
    start = f"{base_url.rstrip('/')}/"
    manifest: dict[str, Any] = {
        "id": start,
        "name": app.name,
        "short_name": app.short_name or app.name,
        "description": app.description,
        "start_url": start,
        "scope": start,
        "display": "standalone",
        "theme_color": app.theme_color,
        "background_color": app.background_color,
        "icons": [
            {
                "src": icon.image.url,
                "sizes": f"{icon.image.width}x{icon.image.height}",
                "type": icon.image.media_type,
                "purpose": icon.purpose,
            }
            for icon in app.icons
        ],
    }
    if not app.description:
        del manifest["description"]
    return manifest


def page_snippets(settings: PortalSettings, *, manifest_url: str | None) -> tuple[PageSnippet, ...]:
    """Everything the settings put in every portal page, in page order, each with its place.

    In the head: the favicon, and while the app is enabled the manifest link
    (``manifest_url``, where the host serves :func:`web_manifest`), the theme
    colour and the home-screen icon; then the admin's CSS and head code. At
    the end of the body: the admin's JavaScript and body code. Attribute
    values are escaped; the admin's own code is placed as given.

    >>> page_snippets(PortalSettings(), manifest_url="/manifest.webmanifest")
    ()
    """
    head: list[PageSnippet] = []
    favicon = settings.branding.favicon
    if favicon is not None:
        head.append(_link("favicon", "icon", favicon.url, favicon.media_type))
    app = settings.app
    if app.enabled and manifest_url is not None:
        head.append(_link("app", "manifest", manifest_url))
        head.append(
            PageSnippet(
                "app",
                Placement.HEAD,
                f'<meta name="theme-color" content="{_attr(app.theme_color)}">',
            )
        )
        touch = next((icon.image for icon in app.icons if icon.purpose == "any"), None)
        if touch is not None:
            head.append(_link("app", "apple-touch-icon", touch.url))
    return (*head, *settings.advanced.snippets())


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def _link(field: str, rel: str, href: str, media_type: str | None = None) -> PageSnippet:
    kind = "" if media_type is None else f' type="{_attr(media_type)}"'
    return PageSnippet(field, Placement.HEAD, f'<link rel="{rel}" href="{_attr(href)}"{kind}>')
