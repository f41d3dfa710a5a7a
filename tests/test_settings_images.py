"""Branding and app settings: real images judged by their bytes, stored in the media store;
the web app manifest and the installability rules browsers apply to it."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from membership_core import ConfigurationError, ValidationError
from membership_core.adapters.media_folder import FolderMediaStore
from membership_core.adapters.media_memory import MemoryMediaStore
from membership_core.ports.media import MediaStore
from membership_core.testing import TestPortal

from .conftest import PortalFactory
from .helpers import snapshot


def image(size: tuple[int, int], format: str = "PNG", colour: str = "#224488") -> bytes:
    """A real image file of ``format`` (RGBA where the format keeps it)."""
    mode = "RGB" if format in ("JPEG", "BMP") else "RGBA"
    picture = Image.new(mode, size, colour)
    out = io.BytesIO()
    options: dict[str, Any] = {"sizes": [(16, 16), (32, 32), (48, 48)]} if format == "ICO" else {}
    picture.save(out, format, **options)
    return out.getvalue()


def _media(portal: TestPortal) -> MemoryMediaStore:
    media = portal.media
    assert isinstance(media, MemoryMediaStore)
    return media


# -- branding ---------------------------------------------------------------------------


@pytest.mark.parametrize("format", ["PNG", "JPEG", "GIF", "WEBP"])
def test_a_logo_of_each_format_is_probed_stored_and_referenced(
    open_portal: PortalFactory, format: str
) -> None:
    portal = open_portal()
    data = image((640, 640), format)
    branding = portal.settings.update_branding(logo=data)
    logo = branding.logo
    assert logo is not None
    assert (logo.width, logo.height, logo.size) == (640, 640, len(data))
    assert logo.media_type == Image.MIME[format]
    assert logo.key.startswith("default/branding/logo-")
    assert _media(portal).get(logo.key) == data
    assert logo.url == _media(portal).url(logo.key)
    assert branding.warnings() == ()
    assert portal.settings.branding() == branding


def test_the_format_comes_from_the_bytes_not_a_name(open_portal: PortalFactory) -> None:
    portal = open_portal()
    logo = portal.settings.update_branding(logo=image((640, 640), "GIF")).logo
    assert logo is not None
    assert logo.media_type == "image/gif"
    assert logo.key.endswith(".gif")


@pytest.mark.parametrize(
    ("size", "warning"),
    [
        ((300, 200), "logo is 300x200 pixels, not square; 640x640 is recommended"),
        ((1280, 1280), "logo is 1280x1280 pixels; 640x640 is recommended"),
    ],
)
def test_other_logo_sizes_are_accepted_with_a_warning(
    open_portal: PortalFactory, size: tuple[int, int], warning: str
) -> None:
    portal = open_portal()
    branding = portal.settings.update_branding(logo=image(size))
    assert branding.warnings() == (warning,)
    assert portal.settings.branding().warnings() == (warning,)


def test_favicons(open_portal: PortalFactory) -> None:
    portal = open_portal()
    branding = portal.settings.update_branding(favicon=image((48, 48), "ICO"))
    favicon = branding.favicon
    assert favicon is not None
    assert favicon.media_type == "image/x-icon"
    assert (32, 32) in favicon.sizes
    assert branding.warnings() == ()  # the ICO holds 32x32
    branding = portal.settings.update_branding(favicon=image((64, 64)))
    assert branding.warnings() == ("favicon is 64x64 pixels; 32x32 is recommended",)
    assert portal.settings.update_branding(favicon=image((32, 32))).warnings() == ()


BAD_IMAGES: list[tuple[str, object, str]] = [
    ("text", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image"),
    ("random bytes", bytes(range(256)) * 4, "not an image"),
    ("empty", b"", "empty"),
    ("a string", "logo.png", "bytes"),
    ("a BMP", image((640, 640), "BMP"), "BMP"),
    ("truncated", image((640, 640), "JPEG")[:400], "truncated"),
    ("too many bytes", b"\x89PNG" + b"\0" * (5 * 1024 * 1024 + 1), "5 MiB"),
]


@pytest.mark.parametrize(("name", "data", "phrase"), BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
def test_what_is_not_a_usable_image_is_refused_and_nothing_is_kept(
    open_portal: PortalFactory, name: str, data: object, phrase: str
) -> None:
    portal = open_portal()
    portal.settings.update_branding(favicon=image((32, 32)))
    before, keys = snapshot(portal), set(_media(portal).keys)
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_branding(logo=data)  # type: ignore[arg-type]
    assert caught.value.field == "logo"
    assert phrase in str(caught.value)
    assert snapshot(portal) == before
    assert set(_media(portal).keys) == keys


def test_a_decompression_bomb_is_refused_before_decoding(open_portal: PortalFactory) -> None:
    portal = open_portal()
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, "PNG")  # tiny file, 400 megapixels
    assert len(bomb.getvalue()) < 200_000
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_branding(logo=bomb.getvalue())
    assert "pixels" in str(caught.value)
    assert portal.settings.branding().logo is None


def test_a_failed_update_takes_back_the_files_it_stored(open_portal: PortalFactory) -> None:
    portal = open_portal()
    good = image((640, 640))
    before = set(_media(portal).keys)
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_branding(logo=good, favicon=b"not an icon")
    assert caught.value.field == "favicon"
    assert set(_media(portal).keys) == before
    assert portal.settings.get().version == 0


def test_a_removed_logo_is_none_and_older_files_stay_for_the_history(
    open_portal: PortalFactory,
) -> None:
    portal = open_portal()
    first = portal.settings.update_branding(logo=image((640, 640))).logo
    assert first is not None
    assert portal.settings.update_branding(logo=None).logo is None
    assert _media(portal).get(first.key) is not None
    (removed, added) = portal.settings.history(area="branding")
    assert removed.after == {"logo": None}
    assert added.after["logo"]["url"] == first.url


def test_the_logo_url_reaches_email_templates(open_portal: PortalFactory) -> None:
    portal = open_portal()
    logo = portal.settings.update_branding(logo=image((640, 640))).logo
    assert logo is not None
    template = portal.templates.create(
        "Branded",
        kind="welcome",
        subject="Welcome",
        html='<img src="{{ portal.logo_url }}" alt=""> {{ login_url }}',
    )
    portal.settings.update_email("welcome", enabled=True, template_id=template.id)
    portal.members.invite("ada@example.com")
    assert f'<img src="{logo.url}"' in (portal.mailer.last.html or "")


def test_images_land_in_a_folder_store_with_its_urls(
    open_portal: PortalFactory, tmp_path: Any
) -> None:
    store = FolderMediaStore(tmp_path / "media", base_url="https://cdn.acme.test/media")
    portal = open_portal(media=store)
    logo = portal.settings.update_branding(logo=image((640, 640))).logo
    assert logo is not None
    assert logo.url == f"https://cdn.acme.test/media/{logo.key}"
    assert (tmp_path / "media" / logo.key).read_bytes() == store.get(logo.key)


def test_without_pillow_an_image_setting_names_the_extra(
    open_portal: PortalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    portal = open_portal()
    logo = image((640, 640))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ConfigurationError, match=r"membership_core\[images\]"):
        portal.settings.update_branding(logo=logo)
    assert portal.settings.get().version == 0


# -- the app and its manifest -------------------------------------------------------------


def installability_problems(manifest: dict[str, Any], media: MediaStore) -> list[str]:
    """What keeps a browser from offering to install the app (Chromium's criteria,
    with the size limits the settings promise), checking the icon files themselves."""
    problems = []
    if not manifest.get("name") and not manifest.get("short_name"):
        problems.append("no name or short_name")
    if len(manifest.get("name") or "") >= 45:
        problems.append("name of 45 characters or more")
    if manifest.get("display") not in ("fullscreen", "standalone", "minimal-ui"):
        problems.append("display is not fullscreen, standalone or minimal-ui")
    start = manifest.get("start_url", "")
    if not start.startswith("https://"):
        problems.append("start_url is not https")
    if not start.startswith(manifest.get("scope", "")):
        problems.append("start_url outside the scope")
    found: dict[str, set[int]] = {"any": set(), "maskable": set()}
    for icon in manifest.get("icons", []):
        key = icon["src"].removeprefix("memory://media/")  # the memory store's URLs
        data = media.get(key)
        if data is None:
            problems.append(f"icon {icon['src']} cannot be fetched")
            continue
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
            file_format = picture.format
        if f"{width}x{height}" != icon["sizes"] or icon["type"] != "image/png":
            problems.append(f"icon {icon['src']} is not what it says ({icon['sizes']})")
        if file_format != "PNG" or width != height:
            problems.append(f"icon {icon['src']} is not a square PNG")
        found[icon["purpose"]].add(width)
    if not {192, 512} <= found["any"]:
        problems.append("no 192 and 512 pixel icons")
    if not found["maskable"]:
        problems.append("no maskable icon")
    return problems


def _enabled_app(portal: TestPortal, **fields: Any) -> None:
    values: dict[str, Any] = {
        "name": "Acme Academy",
        "short_name": "Acme",
        "description": "Courses in your pocket",
        "theme_color": "#1A2B3C",
        "background_color": "#fff",
        "icon": image((1024, 1024)),
    }
    portal.settings.update_app(**(values | fields))
    portal.settings.update_app(enabled=True)


def test_the_manifest_passes_the_installability_rules(open_portal: PortalFactory) -> None:
    portal = open_portal(platform_url="https://members.example.net")
    portal.settings.update_domain(subdomain="acme")
    assert portal.settings.web_manifest() is None
    _enabled_app(portal)
    manifest = portal.settings.web_manifest()
    assert manifest is not None
    assert installability_problems(manifest, portal.media) == []
    assert manifest["start_url"] == manifest["scope"] == "https://acme.members.example.net/"
    assert (manifest["name"], manifest["short_name"]) == ("Acme Academy", "Acme")
    assert (manifest["theme_color"], manifest["background_color"]) == ("#1a2b3c", "#ffffff")
    assert [(i["sizes"], i["purpose"]) for i in manifest["icons"]] == [
        ("192x192", "any"),
        ("512x512", "any"),
        ("512x512", "maskable"),
    ]
    portal.settings.update_app(enabled=False)
    assert portal.settings.web_manifest() is None


def test_the_maskable_icon_sits_on_the_background_colour(open_portal: PortalFactory) -> None:
    portal = open_portal()
    _enabled_app(portal, background_color="#ff0000", icon=image((512, 512), colour="#0000ff"))

    def maskable_pixels() -> tuple[Any, Any]:
        app = portal.settings.app()
        (icon,) = [i for i in app.icons if i.purpose == "maskable"]
        data = portal.media.get(icon.image.key)
        assert data is not None
        with Image.open(io.BytesIO(data)) as picture:
            rgb = picture.convert("RGB")
            return rgb.getpixel((2, 2)), rgb.getpixel((256, 256))

    assert maskable_pixels() == ((255, 0, 0), (0, 0, 255))
    # A new background colour remakes the maskable icon from the stored original.
    portal.settings.update_app(background_color="#00ff00")
    assert maskable_pixels() == ((0, 255, 0), (0, 0, 255))


@pytest.mark.parametrize(
    ("fields", "field", "phrase"),
    [
        ({"icon": image((256, 256))}, "icon", "at least 512x512"),
        ({"icon": image((800, 600))}, "icon", "square"),
        ({"icon": image((512, 512), "GIF")}, "icon", "GIF"),
        ({"name": "A" * 45}, "name", "under 45"),
        ({"theme_color": "teal"}, "theme_color", "hex colour"),
        ({"background_color": "#12345"}, "background_color", "hex colour"),
        ({"enabled": "yes"}, "enabled", "true or false"),
    ],
)
def test_bad_app_settings_are_refused(
    open_portal: PortalFactory, fields: dict[str, Any], field: str, phrase: str
) -> None:
    portal = open_portal()
    portal.settings.update_app(name="Acme")
    before, keys = snapshot(portal), set(_media(portal).keys)
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_app(**fields)
    assert caught.value.field == field
    assert phrase in str(caught.value)
    assert snapshot(portal) == before
    assert set(_media(portal).keys) == keys


def test_the_app_is_enabled_only_once_it_can_be_installed(open_portal: PortalFactory) -> None:
    portal = open_portal()
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_app(enabled=True)
    assert caught.value.field == "name"
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_app(enabled=True, name="Acme")
    assert caught.value.field == "icon"
    assert portal.settings.get().version == 0
    _enabled_app(portal)
    with pytest.raises(ValidationError) as caught:
        portal.settings.update_app(icon=None)  # an enabled app keeps its icon
    assert caught.value.field == "icon"
    assert portal.settings.app().enabled


def test_a_long_short_name_is_accepted_with_a_warning(open_portal: PortalFactory) -> None:
    portal = open_portal()
    app = portal.settings.update_app(short_name="Acme Academy Online")
    assert app.short_name == "Acme Academy Online"
    assert app.warnings() == (
        "short_name has 19 characters; home screens show about 12, so it may be cut",
    )
    assert portal.settings.update_app(short_name="Acme").warnings() == ()


def test_the_default_media_store_is_a_folder_beside_the_database(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    from membership_core import Portal

    with Portal.open(f"sqlite:///{tmp_path / 'academy.db'}", load_entrypoints=False) as portal:
        assert isinstance(portal.media, FolderMediaStore)
        assert portal.media.root == tmp_path / "academy-media"
        assert not portal.media.root.exists()  # no clutter for a host without images
    with Portal.open("memory://", load_entrypoints=False) as portal:
        assert isinstance(portal.media, MemoryMediaStore)
    monkeypatch.chdir(tmp_path)
    with Portal.open(postgres_url, load_entrypoints=False) as portal:
        assert isinstance(portal.media, FolderMediaStore)
        assert portal.media.root == tmp_path / "membership-media"
        assert not portal.media.root.exists()  # made with the first image, not at open
        logo = portal.settings.update_branding(logo=image((640, 640))).logo
        assert logo is not None
        assert (tmp_path / "membership-media" / logo.key).is_file()
        assert logo.url.startswith("file://")


def test_page_snippets_put_the_favicon_the_app_and_the_admins_code_in_place(
    open_portal: PortalFactory,
) -> None:
    from membership_core.domain.settings import Placement

    portal = open_portal()
    assert portal.settings.page_snippets() == ()
    favicon = portal.settings.update_branding(favicon=image((32, 32))).favicon
    assert favicon is not None
    portal.settings.update_advanced(custom_css="h1{}", custom_js="go()")
    assert [(s.field, s.placement) for s in portal.settings.page_snippets()] == [
        ("favicon", Placement.HEAD),
        ("custom_css", Placement.HEAD),
        ("custom_js", Placement.BODY_END),
    ]
    assert portal.settings.page_snippets()[0].html == (
        f'<link rel="icon" href="{favicon.url}" type="image/png">'
    )
    _enabled_app(portal, theme_color="#123456")
    app = portal.settings.app()
    touch = next(icon.image for icon in app.icons if icon.purpose == "any")
    head = [s.html for s in portal.settings.page_snippets(manifest_url="/app.webmanifest?v=2&x")]
    assert head[1:4] == [
        '<link rel="manifest" href="/app.webmanifest?v=2&amp;x">',
        '<meta name="theme-color" content="#123456">',
        f'<link rel="apple-touch-icon" href="{touch.url}">',
    ]
    assert len(portal.settings.page_snippets(manifest_url=None)) == 3  # no app links
