"""Uploaded images: every rule of probe(), the size warnings, and the PWA icons made from them.

Every image here is drawn with Pillow in the test itself; none is checked in.
"""

from __future__ import annotations

import io
import struct
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFile

from membership_core.domain.settings import StoredImage, image_warning
from membership_core.errors import ConfigurationError, ValidationError
from membership_core.services import _images
from membership_core.services._images import (
    FAVICON_FORMATS,
    ICON_FORMATS,
    LOGO_FORMATS,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    ProbedImage,
    maskable_png,
    probe,
    square_png,
)

RED = (255, 0, 0)
BACKGROUND = "#112233"
BACKGROUND_RGB = (0x11, 0x22, 0x33)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(width: int, height: int) -> Image.Image:
    """A picture that compresses badly, so cutting the file cuts into the pixel data."""
    return Image.effect_noise((width, height), 64).convert("RGB")


def logo(data: object, **limits: Any) -> ProbedImage:
    return probe(
        "logo",
        data,
        formats=limits.get("formats", LOGO_FORMATS),
        max_bytes=limits.get("max_bytes", MAX_IMAGE_BYTES),
        max_pixels=limits.get("max_pixels", MAX_IMAGE_PIXELS),
    )


def favicon(data: bytes) -> ProbedImage:
    return probe(
        "favicon",
        data,
        formats=FAVICON_FORMATS,
        max_bytes=MAX_IMAGE_BYTES,
        max_pixels=MAX_IMAGE_PIXELS,
    )


def refused(data: object, **limits: Any) -> str:
    """The problem probe() reports for a logo upload of ``data``."""
    with pytest.raises(ValidationError) as caught:
        logo(data, **limits)
    assert caught.value.field == "logo"
    return caught.value.problem


def pixel(image: Image.Image, xy: tuple[int, int]) -> Any:
    """The pixel at ``xy``: a tuple of band values in RGB and RGBA images."""
    return image.getpixel(xy)


def pixels(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- what probe() finds ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode", "media_type", "extension"),
    [
        ("PNG", "RGBA", "image/png", "png"),
        ("JPEG", "RGB", "image/jpeg", "jpg"),
        ("GIF", "P", "image/gif", "gif"),
        ("WEBP", "RGB", "image/webp", "webp"),
    ],
)
def test_probe_describes_each_logo_format(
    fmt: str, mode: str, media_type: str, extension: str
) -> None:
    data = encode(Image.new(mode, (640, 480)), fmt)
    assert logo(data) == ProbedImage(
        format=fmt,
        media_type=media_type,
        extension=extension,
        width=640,
        height=480,
        size=len(data),
        sizes=((640, 480),),
    )


def test_the_format_comes_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    upload = tmp_path / "logo.png"
    upload.write_bytes(encode(Image.new("P", (120, 80)), "GIF"))
    found = logo(upload.read_bytes())
    assert (found.format, found.media_type, found.extension) == ("GIF", "image/gif", "gif")
    assert (found.width, found.height) == (120, 80)


def test_bytearray_and_memoryview_are_bytes_too() -> None:
    data = encode(Image.new("RGB", (10, 20)), "PNG")
    assert logo(bytearray(data)).height == 20
    assert logo(memoryview(data)).width == 10


def test_an_ico_favicon_reports_its_largest_size_and_lists_all() -> None:
    data = encode(Image.new("RGBA", (48, 48), "blue"), "ICO", sizes=[(16, 16), (32, 32), (48, 48)])
    found = favicon(data)
    assert (found.format, found.media_type, found.extension) == ("ICO", "image/x-icon", "ico")
    assert (found.width, found.height) == (48, 48)
    assert found.sizes == ((48, 48), (32, 32), (16, 16))


def test_animated_gif_and_webp_are_accepted_with_the_first_frames_size() -> None:
    frames = [Image.new("RGB", (50, 40), colour) for colour in ("red", "green", "blue")]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(gif)).n_frames == 3
    assert (logo(gif).format, logo(gif).width, logo(gif).height) == ("GIF", 50, 40)
    pictures = [Image.new("RGB", (60, 30), colour) for colour in ("red", "green")]
    webp = encode(pictures[0], "WEBP", save_all=True, append_images=pictures[1:], duration=100)
    assert Image.open(io.BytesIO(webp)).n_frames == 2
    assert (logo(webp).format, logo(webp).width, logo(webp).height) == ("WEBP", 60, 30)


def test_a_phone_cameras_mpo_is_a_jpeg() -> None:
    first, second = Image.new("RGB", (64, 48), "red"), Image.new("RGB", (64, 48), "blue")
    data = encode(first, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    found = logo(data)
    assert (found.format, found.media_type, found.width) == ("JPEG", "image/jpeg", 64)


def test_an_exif_rotated_jpeg_reports_the_size_it_is_shown_at() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° when shown
    data = encode(Image.new("RGB", (300, 100)), "JPEG", exif=exif)
    found = logo(data)
    assert (found.width, found.height) == (100, 300)
    assert found.sizes == ((100, 300),)


# -- what probe() refuses --------------------------------------------------------


@pytest.mark.parametrize("data", ["a string", None, 42, Path("logo.png"), [1, 2]])
def test_probe_refuses_what_is_not_bytes(data: object) -> None:
    assert refused(data) == f"must be the file's bytes, not {type(data).__name__}"


def test_probe_refuses_an_empty_file() -> None:
    assert refused(b"") == "is empty"


def test_probe_refuses_more_bytes_than_the_limit_and_says_the_limit() -> None:
    data = encode(noise(64, 64), "PNG")
    assert len(data) > 2048
    problem = refused(data, max_bytes=2048)
    assert problem.startswith("is ")
    assert problem.endswith(" KiB; the limit is 2 KiB")
    assert logo(data, max_bytes=len(data)).size == len(data)


def test_the_default_byte_limit_is_5_mib_and_checked_before_decoding() -> None:
    assert MAX_IMAGE_BYTES == 5 * 1024 * 1024
    too_big = b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES)
    assert refused(too_big) == "is 5.1 MiB; the limit is 5 MiB"  # rounded up, never "5 MiB"
    assert refused(bytes(MAX_IMAGE_BYTES + 1024**2)) == "is 6 MiB; the limit is 5 MiB"


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is a text file\n" * 20,
        bytes(range(256)) * 8,
        b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,  # a PNG signature and nothing of a PNG after it
    ],
    ids=["text", "random", "svg", "pdf", "png-signature-only"],
)
def test_probe_refuses_what_is_not_an_image(data: bytes) -> None:
    assert refused(data) == "is not an image (PNG, JPEG, GIF or WEBP)"


@pytest.mark.parametrize(("fmt", "mode"), [("BMP", "RGB"), ("TIFF", "RGB"), ("ICO", "RGBA")])
def test_probe_refuses_a_format_not_accepted_and_names_both(fmt: str, mode: str) -> None:
    data = encode(Image.new(mode, (64, 64)), fmt)
    assert refused(data) == f"is a {fmt} image; accepted formats: PNG, JPEG, GIF or WEBP"


def test_each_kind_accepts_its_own_formats() -> None:
    ico = encode(Image.new("RGBA", (32, 32)), "ICO", sizes=[(32, 32)])
    webp = encode(Image.new("RGB", (512, 512)), "WEBP")
    gif = encode(Image.new("P", (512, 512)), "GIF")
    assert favicon(ico).format == "ICO"
    with pytest.raises(
        ValidationError, match="is a WEBP image; accepted formats: PNG, JPEG, GIF or ICO"
    ):
        favicon(webp)
    assert logo(webp, formats=ICON_FORMATS).format == "WEBP"
    assert (
        refused(gif, formats=ICON_FORMATS) == "is a GIF image; accepted formats: PNG, JPEG or WEBP"
    )


def test_a_decompression_bomb_is_refused_without_being_decoded() -> None:
    # 400 million pixels of one bit compress to a few dozen kilobytes.
    bomb = encode(Image.new("1", (20000, 20000)), "PNG")
    assert len(bomb) < 100_000
    assert refused(bomb) == "has too many pixels; at most 25,000,000 are accepted"


def test_over_the_pixel_limit_is_refused_from_the_header_alone() -> None:
    data = encode(Image.new("1", (6000, 5000)), "PNG")  # 30 megapixels
    assert refused(data) == "is 6000x5000 pixels; at most 25,000,000 are accepted"
    # Only the header is left: had probe() decoded first, this would be "truncated".
    assert refused(data[:64]) == "is 6000x5000 pixels; at most 25,000,000 are accepted"


def test_the_pixel_limit_is_the_callers() -> None:
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    assert refused(data, max_pixels=9_999) == "is 100x100 pixels; at most 9,999 are accepted"
    assert logo(data, max_pixels=10_000).width == 100


def test_pillows_own_bomb_limit_refuses_even_when_its_warning_is_ignored() -> None:
    data = encode(Image.new("1", (10000, 10000)), "PNG")  # over Pillow's warning threshold
    assert (
        refused(data, max_pixels=10**9) == "has too many pixels; at most 1,000,000,000 are accepted"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        assert refused(data) == "is 10000x10000 pixels; at most 25,000,000 are accepted"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_image_is_refused(fmt: str, keep: float) -> None:
    data = encode(noise(200, 150), fmt)
    cut = data[: int(len(data) * keep)]
    assert refused(cut) == "is truncated or corrupt: it cannot be decoded"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_a_png_with_a_damaged_chunk_is_refused() -> None:
    data = bytearray(encode(noise(100, 100), "PNG"))
    at = data.index(b"IDAT") + 200
    data[at] ^= 0xFF  # the checksum no longer matches
    assert refused(bytes(data)) == "is truncated or corrupt: it cannot be decoded"


def test_a_png_whose_damage_only_verify_sees_is_refused() -> None:
    # A chunk after the pixel data with a wrong checksum: decoding alone never reads it.
    data = encode(Image.new("RGB", (50, 50), RED), "PNG")
    body = b"Comment\x00hello"
    checksum = zlib.crc32(b"tEXt" + body) ^ 1
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", checksum)
    end = data.rindex(b"IEND") - 4
    damaged = data[:end] + chunk + data[end:]
    pixels(damaged)  # Pillow decodes it without complaint...
    assert (
        refused(damaged) == "is truncated or corrupt: it cannot be decoded"
    )  # ...probe() does not


def test_a_truncated_ico_is_refused() -> None:
    data = encode(noise(64, 64).convert("RGBA"), "ICO", sizes=[(16, 16), (64, 64)])
    with pytest.raises(ValidationError, match=r"favicon: is truncated or corrupt"):
        favicon(data[: len(data) // 2])


# -- the size warnings -------------------------------------------------------------


def probed(width: int, height: int, sizes: tuple[tuple[int, int], ...] = ()) -> ProbedImage:
    return ProbedImage("PNG", "image/png", "png", width, height, 1000, sizes or ((width, height),))


def stored(image: ProbedImage) -> StoredImage:
    """The image as the settings keep it (what the warning is computed from)."""
    return StoredImage("u", "k", image.media_type, image.width, image.height, 1, "0", image.sizes)


@pytest.mark.parametrize(
    ("kind", "width", "height", "recommended", "warning"),
    [
        ("logo", 640, 640, 640, None),
        ("logo", 300, 200, 640, "logo is 300x200 pixels, not square; 640x640 is recommended"),
        ("logo", 640, 641, 640, "logo is 640x641 pixels, not square; 640x640 is recommended"),
        ("logo", 1280, 1280, 640, "logo is 1280x1280 pixels; 640x640 is recommended"),
        ("favicon", 64, 64, 32, "favicon is 64x64 pixels; 32x32 is recommended"),
        ("favicon", 32, 32, 32, None),
        ("favicon", 16, 32, 32, "favicon is 16x32 pixels, not square; 32x32 is recommended"),
    ],
)
def test_size_warning(
    kind: str, width: int, height: int, recommended: int, warning: str | None
) -> None:
    assert image_warning(kind, stored(probed(width, height)), recommended) == warning


def test_an_ico_holding_the_recommended_size_needs_no_warning() -> None:
    with_32 = favicon(
        encode(Image.new("RGBA", (48, 48)), "ICO", sizes=[(16, 16), (32, 32), (48, 48)])
    )
    assert image_warning("favicon", stored(with_32), 32) is None
    without_32 = favicon(encode(Image.new("RGBA", (64, 64)), "ICO", sizes=[(16, 16), (64, 64)]))
    assert (
        image_warning("favicon", stored(without_32), 32)
        == "favicon is 64x64 pixels; 32x32 is recommended"
    )


# -- the icons ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [192, 512])
def test_square_png_of_a_square_icon_fills_the_square(size: int) -> None:
    source = encode(Image.new("RGB", (1024, 1024), RED), "JPEG", quality=95)
    icon = square_png(source, size)
    found = probe(
        "icon",
        icon,
        formats=frozenset({"PNG"}),
        max_bytes=MAX_IMAGE_BYTES,
        max_pixels=MAX_IMAGE_PIXELS,
    )
    assert (found.format, found.width, found.height) == ("PNG", size, size)
    image = pixels(icon)
    assert image.mode == "RGBA"
    for corner in [(0, 0), (size - 1, 0), (0, size - 1), (size - 1, size - 1)]:
        red, green, blue, alpha = pixel(image, corner)
        assert (alpha, red > 240, green < 15, blue < 15) == (255, True, True, True)


def test_square_png_keeps_the_proportions_and_centres_on_transparency() -> None:
    source = encode(Image.new("RGB", (600, 300), RED), "PNG")
    image = pixels(square_png(source, 192))
    assert (image.size, image.mode) == ((192, 192), "RGBA")
    # 600x300 fitted into 192x192 is 192x96, rows 48 to 143.
    assert image.getpixel((96, 96)) == (*RED, 255)
    assert image.getpixel((0, 50)) == (*RED, 255)
    assert image.getpixel((96, 20)) == (0, 0, 0, 0)
    assert image.getpixel((96, 170)) == (0, 0, 0, 0)
    assert image.getbbox() == (0, 48, 192, 144)


def test_square_png_keeps_transparency_and_enlarges_a_small_image() -> None:
    source = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    source.paste((0, 0, 255, 255), (16, 16, 48, 48))
    image = pixels(square_png(encode(source, "PNG"), 512))
    assert image.size == (512, 512)
    assert image.getpixel((256, 256)) == (0, 0, 255, 255)
    assert pixel(image, (10, 10))[3] == 0


def test_square_png_uses_the_first_frame_and_any_colour_mode() -> None:
    frames = [Image.new("RGB", (40, 40), colour) for colour in ("red", "blue")]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert pixels(square_png(gif, 32)).size == (32, 32)
    cmyk = encode(Image.new("CMYK", (100, 100), (0, 255, 255, 0)), "JPEG")
    red, green, blue, alpha = pixel(pixels(square_png(cmyk, 48)), (24, 24))
    assert (alpha, red > 200, green < 60, blue < 60) == (255, True, True, True)


@pytest.mark.parametrize("size", [192, 512])
def test_maskable_png_is_opaque_with_the_icon_in_the_safe_zone(size: int) -> None:
    source = encode(Image.new("RGB", (1024, 1024), RED), "PNG")
    icon = maskable_png(source, size, BACKGROUND)
    found = probe(
        "icon",
        icon,
        formats=frozenset({"PNG"}),
        max_bytes=MAX_IMAGE_BYTES,
        max_pixels=MAX_IMAGE_PIXELS,
    )
    assert (found.width, found.height) == (size, size)
    image = pixels(icon)
    assert image.mode == "RGB"  # opaque by construction
    for corner in [(0, 0), (size - 1, 0), (0, size - 1), (size - 1, size - 1)]:
        assert image.getpixel(corner) == BACKGROUND_RGB
    assert image.getpixel((size // 2, size // 2)) == RED
    margin = round(size * 0.1)  # the icon fills the central 80%
    assert image.getpixel((margin - 2, size // 2)) == BACKGROUND_RGB
    assert image.getpixel((margin + 2, size // 2)) == RED
    assert image.getpixel((size - margin + 1, size // 2)) == BACKGROUND_RGB
    assert image.getpixel((size - margin - 3, size // 2)) == RED


def test_maskable_png_shows_the_background_through_transparency() -> None:
    source = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    source.paste((*RED, 255), (192, 192, 320, 320))
    image = pixels(maskable_png(encode(source, "PNG"), 512, BACKGROUND))
    assert image.getpixel((256, 256)) == RED
    assert image.getpixel((200, 200)) == BACKGROUND_RGB  # transparent in the source
    assert image.getextrema() == ((0x11, 255), (0, 0x22), (0, 0x33))


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda png: square_png(png, 0), "size"),
        (lambda png: square_png(png, 4097), "size"),
        (lambda png: square_png(png, True), "size"),
        (lambda png: square_png(png, 19.5), "size"),
        (lambda png: square_png(b"not an image", 192), "image"),
        (lambda png: square_png(png[:40], 192), "image"),
        (lambda png: square_png("text", 192), "image"),
        (lambda png: maskable_png(png, 192, "red"), "background"),
        (lambda png: maskable_png(png, 192, "#12345"), "background"),
        (lambda png: maskable_png(png, 192, None), "background"),
        (lambda png: maskable_png(b"", 192, BACKGROUND), "image"),
    ],
)
def test_icon_arguments_are_checked(call: Any, field: str) -> None:
    png = encode(Image.new("RGB", (512, 512)), "PNG")
    with pytest.raises(ValidationError) as caught:
        call(png)
    assert caught.value.field == field


# -- without Pillow -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda png: logo(png),
        lambda png: square_png(png, 192),
        lambda png: maskable_png(png, 192, BACKGROUND),
    ],
    ids=["probe", "square_png", "maskable_png"],
)
def test_without_pillow_image_calls_name_the_extra(
    call: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    png = encode(Image.new("RGB", (64, 64)), "PNG")
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if it were not installed
    with pytest.raises(ConfigurationError, match=r"install membership_core\[images\]"):
        call(png)


def test_the_limits_are_what_the_docs_say() -> None:
    assert MAX_IMAGE_PIXELS == 25_000_000
    assert {"PNG", "JPEG", "GIF", "WEBP"} == LOGO_FORMATS
    assert "ICO" in FAVICON_FORMATS
    assert {"PNG", "JPEG", "WEBP"} == ICON_FORMATS
    assert _images.MASKABLE_SAFE_ZONE == 0.8
