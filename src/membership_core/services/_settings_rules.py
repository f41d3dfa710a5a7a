"""Checks of every settings area, shared by the update calls and by import.

Each ``clean_*`` takes a whole area value (built from the stored one and the
fields a caller changed, or from imported data) and returns it normalized, or
raises ``ValidationError`` naming the field. An import runs the very same
checks as the update calls, so no setting can arrive unchecked.
"""

from __future__ import annotations

import re
import zoneinfo
from html.parser import HTMLParser
from typing import Any

import attrs

from .. import _validate as v
from ..domain.domains import normalize_subdomain
from ..domain.email_settings import AutomatedEmail, EmailChoice, EmailSettings
from ..domain.money import CURRENCY_EXPONENTS
from ..domain.settings import (
    APP_NAME_LIMIT,
    MIN_APP_ICON_SIZE,
    AdvancedSettings,
    AppIcon,
    AppSettings,
    BrandingSettings,
    BuilderSettings,
    PortalSettings,
    SiteSettings,
    StoredImage,
)
from ..errors import ValidationError

__all__ = [
    "MAX_CODE_LENGTH",
    "check_whole",
    "clean_advanced",
    "clean_app",
    "clean_branding",
    "clean_builder",
    "clean_email",
    "clean_site",
    "colour",
]

#: The most characters of each advanced code field (100,000: far beyond any
#: stylesheet or tag snippet written by hand, well short of a page that stalls).
MAX_CODE_LENGTH = 100_000

_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
# A closing tag inside the wrapper would end it early and spill the rest into the page;
# "<!--" in a script can make browsers skip its closing tag (the "double-escaped" state).
_BREAKERS = {
    "custom_css": ((re.compile(r"</style", re.I), "</style>"),),
    "custom_js": (
        (re.compile(r"</script", re.I), "</script>"),
        (re.compile(r"<!--"), "<!--"),
    ),
}
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"}
    | {"param", "source", "track", "wbr"}
)
# Elements whose end tag HTML lets the browser supply.
_OPTIONAL_END = frozenset(
    {"p", "li", "dt", "dd", "option", "optgroup", "rt", "rp", "caption", "colgroup"}
    | {"thead", "tbody", "tfoot", "tr", "td", "th"}
)


class _Snippet(HTMLParser):
    """Reads an HTML snippet the way a page would, noting what would break the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """``<br/>``, ``<img .../>``: nothing stays open."""

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.open:
            self.problem = self.problem or (
                f"closes <{tag}>, which it never opened: it would close the page's own element"
            )
            return
        while self.open.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self.open[-1:] == ["script"] and "<!--" in data:
            self.problem = self.problem or "has <!-- inside a <script>, which can hide its end"


def _page_breaker(code: str) -> str | None:
    """Why ``code`` placed in a page would break it, or ``None``."""
    snippet = _Snippet()
    snippet.feed(code)
    # The parser holds back what may still continue: a tag or comment (a problem),
    # or a bare "&" that could start a character reference (plain text).
    unfinished = snippet.rawdata.strip() if snippet.rawdata.lstrip().startswith("<") else ""
    if snippet.problem:
        return snippet.problem
    if unfinished and not snippet.open:
        return f"ends inside a comment or a tag ({unfinished[:20]!r}...)"
    still_open = [tag for tag in snippet.open if tag not in _OPTIONAL_END]
    if still_open:
        return (
            f"leaves <{still_open[-1]}> open, which would swallow the rest of every page; close it"
        )
    return None


def clean_site(site: SiteSettings) -> SiteSettings:
    """The site info, checked: title, IANA timezone, ISO 4217 currency, support address."""
    zone = v.text("timezone", site.timezone, max_length=100)
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError("timezone", f"{zone!r} is not an IANA time zone") from None
    currency = v.text("currency", site.currency, max_length=3)
    if currency not in CURRENCY_EXPONENTS:
        raise ValidationError("currency", f"{currency!r} is not an ISO 4217 currency code")
    support = site.support_email
    return SiteSettings(
        title=v.text("title", site.title, max_length=200),
        timezone=zone,
        currency=currency,
        support_email=None if support is None else v.email("support_email", support),
    )


def clean_advanced(advanced: AdvancedSettings) -> AdvancedSettings:
    """The admin's code fields, kept as given but bounded, each a string."""
    values: dict[str, str] = {}
    for field in attrs.fields(AdvancedSettings):
        code = getattr(advanced, field.name)
        if not isinstance(code, str):
            raise ValidationError(field.name, f"must be a string, not {type(code).__name__}")
        if len(code) > MAX_CODE_LENGTH:
            raise ValidationError(
                field.name, f"has {len(code):,} characters; at most {MAX_CODE_LENGTH:,} are allowed"
            )
        for pattern, text in _BREAKERS.get(field.name, ()):
            if pattern.search(code):
                raise ValidationError(
                    field.name,
                    f"contains {text}, which would end or hide the end of the element it is "
                    "placed in and break every page; give the code without the tags",
                )
        if field.name in ("head_code", "body_code"):
            problem = _page_breaker(code)
            if problem:
                raise ValidationError(field.name, problem)
        values[field.name] = code
    return AdvancedSettings(**values)


def clean_builder(builder: BuilderSettings) -> BuilderSettings:
    """The lesson switches, each a boolean."""
    values = {
        f.name: v.boolean(f.name, getattr(builder, f.name)) for f in attrs.fields(type(builder))
    }
    return BuilderSettings(**values)


def clean_email(email: EmailSettings) -> EmailSettings:
    """Sender name, sender address, reply-to, and each automated email's switch."""
    choices: dict[str, Any] = {}
    for kind in AutomatedEmail:
        choice = email.choice(kind)
        if not isinstance(choice, EmailChoice):
            raise ValidationError(kind.value, "must be an EmailChoice")
        v.boolean(f"{kind.value}.enabled", choice.enabled)
        if choice.template_id is not None:
            v.identifier(f"{kind.value}.template_id", choice.template_id, "tpl")
        choices[kind.value] = choice
    reply_to = email.reply_to
    return EmailSettings(
        sender_name=v.optional_text("sender_name", email.sender_name, max_length=200),
        sender_email=v.email("sender_email", email.sender_email),
        reply_to=None if reply_to is None else v.email("reply_to", reply_to),
        **choices,
    )


def _image(field: str, image: object) -> StoredImage | None:
    if image is None:
        return None
    if not isinstance(image, StoredImage):
        raise ValidationError(field, "must be uploaded as image bytes")
    return image


def clean_branding(branding: BrandingSettings) -> BrandingSettings:
    """The logo and favicon references (their bytes were checked at upload)."""
    return BrandingSettings(_image("logo", branding.logo), _image("favicon", branding.favicon))


def colour(field: str, value: object) -> str:
    """A CSS hex colour, normalized to lowercase ``#rrggbb``.

    >>> colour("theme_color", "#0AF")
    '#00aaff'
    """
    text = v.text(field, value, max_length=7)
    if not _COLOUR.fullmatch(text):
        raise ValidationError(field, f"{text!r} is not a hex colour like #1a2b3c")
    text = text.lower()
    if len(text) == 4:
        text = "#" + "".join(c * 2 for c in text[1:])
    return text


def clean_app(app: AppSettings) -> AppSettings:
    """The PWA settings: names within what browsers show, colours, a large square icon."""
    name = v.optional_text("name", app.name, max_length=200)
    if name is not None and len(name) >= APP_NAME_LIMIT:
        raise ValidationError(
            "name", f"has {len(name)} characters; app names must stay under {APP_NAME_LIMIT}"
        )
    icon = _image("icon", app.icon)
    if icon is not None and (icon.width != icon.height or icon.width < MIN_APP_ICON_SIZE):
        raise ValidationError(
            "icon",
            f"is {icon.width}x{icon.height} pixels; the app icon must be square and at "
            f"least {MIN_APP_ICON_SIZE}x{MIN_APP_ICON_SIZE}",
        )
    icons = tuple(app.icons)
    if not all(isinstance(generated, AppIcon) for generated in icons):
        raise ValidationError("icons", "must be the icons generated from the uploaded icon")
    return AppSettings(
        enabled=v.boolean("enabled", app.enabled),
        name=name,
        short_name=v.optional_text("short_name", app.short_name, max_length=100),
        description=v.text("description", app.description, max_length=1000, allow_empty=True),
        theme_color=colour("theme_color", app.theme_color),
        background_color=colour("background_color", app.background_color),
        icon=icon,
        icons=icons if icon is not None else (),
    )


def clean_subdomain(value: object) -> str | None:
    """A sub-domain label, or ``None``."""
    return None if value is None else normalize_subdomain(value)


def check_whole(settings: PortalSettings) -> None:
    """The rules between fields: an app is only switched on once it can be installed."""
    app = settings.app
    if app.enabled:
        if app.name is None:
            raise ValidationError("name", "is required before the app is enabled")
        if app.icon is None:
            raise ValidationError(
                "icon",
                f"is required before the app is enabled (square, at least "
                f"{MIN_APP_ICON_SIZE}x{MIN_APP_ICON_SIZE})",
            )
