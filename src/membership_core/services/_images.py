"""Checking uploaded images and making icons from them, with Pillow (the ``images`` extra).

An upload is judged by its bytes only: the format is what Pillow finds in the
file (a ``.png`` name on GIF bytes is a GIF), the dimensions are read from the
file, and the whole image is decoded once, so a truncated or corrupt file is
refused at upload time rather than shown broken on every page.

The checks run cheapest first and never decode more than they must: the byte
count before Pillow sees the data, the format and the pixel count from the
header before any pixel is decoded.

``ImageFile.LOAD_TRUNCATED_IMAGES`` is left as it is (``False`` unless the
host changed it): with it set, Pillow fills a truncated image with grey
instead of failing, and truncated uploads would be accepted.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from .._optional import load
from ..errors import ValidationError

if TYPE_CHECKING:
    from PIL import Image as _Image

__all__ = [
    "FAVICON_FORMATS",
    "ICON_FORMATS",
    "LOGO_FORMATS",
    "MASKABLE_SAFE_ZONE",
    "MAX_ICON_SIZE",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "ProbedImage",
    "maskable_png",
    "probe",
    "square_png",
]

#: Formats a logo may have: what every browser shows in an ``<img>`` and an email.
LOGO_FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP"})
#: Formats a favicon may have: ICO (several sizes in one file) and what browsers accept besides.
FAVICON_FORMATS = frozenset({"ICO", "PNG", "GIF", "JPEG"})
#: Formats the app icon the PWA icons are made from may have.
ICON_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})

#: The largest upload accepted, in bytes (5 MiB): far above any sensible logo or icon,
#: small enough to hold in memory and store without a second thought.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
#: The most pixels an image may have: 25 megapixels (5000x5000). Decoded as RGBA that is
#: 100 MB of memory, the most one upload should cost; every camera photo up to 24 MP fits,
#: and a logo needs a tiny fraction of it. Checked from the header, before decoding, so a
#: "decompression bomb" (a few KB that decode to gigabytes) is refused without being decoded.
MAX_IMAGE_PIXELS = 25_000_000

#: The largest icon :func:`square_png` and :func:`maskable_png` make, in pixels.
MAX_ICON_SIZE = 4096
#: The share of a maskable icon's width the picture fills (the rest is background).
MASKABLE_SAFE_ZONE = 0.8

# Media type and file extension (no dot) of the formats we expect to see.
_TYPES: dict[str, tuple[str, str]] = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "GIF": ("image/gif", "gif"),
    "WEBP": ("image/webp", "webp"),
    "ICO": ("image/x-icon", "ico"),
    "BMP": ("image/bmp", "bmp"),
    "TIFF": ("image/tiff", "tiff"),
}
# The order formats are listed in messages; any other format follows, alphabetically.
_ORDER = ("PNG", "JPEG", "GIF", "WEBP", "ICO")
# EXIF orientations that turn the picture a quarter: width and height swap when shown.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
_ORIENTATION_TAG = 0x0112
_DAMAGED = "is truncated or corrupt: it cannot be decoded"
_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")


@attrs.frozen
class ProbedImage:
    """What :func:`probe` found in an upload.

    ``format`` is Pillow's name for it (``"PNG"``, ``"JPEG"``, ``"GIF"``,
    ``"WEBP"``, ``"ICO"``, ...), with ``media_type`` (``"image/png"``) and
    ``extension`` (``"png"``, no dot) to store and serve it with. ``width`` and
    ``height`` are in pixels as the image is shown (a JPEG's EXIF rotation
    applied), of the first frame of an animation and of the largest picture in
    an ICO; ``size`` is the file's length in bytes. ``sizes`` lists every
    picture an ICO holds, largest first (just ``(width, height)`` for other
    formats).
    """

    format: str
    media_type: str
    extension: str
    width: int
    height: int
    size: int
    sizes: tuple[tuple[int, int], ...] = ()


def probe(
    field: str, data: object, *, formats: frozenset[str], max_bytes: int, max_pixels: int
) -> ProbedImage:
    """Check that ``data`` is a whole image of one of ``formats`` and describe it.

    Raises ``ValidationError(field, ...)`` saying what is wrong: not bytes,
    empty, more than ``max_bytes``, not an image, a format not in
    ``formats``, more than ``max_pixels``, or truncated or corrupt. Raises
    ``ConfigurationError`` naming the ``images`` extra when Pillow is missing.

    Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``)
    applies as well; an image over it is refused the same way.
    """
    _pillow()
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValidationError(field, f"must be the file's bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ValidationError(field, "is empty")
    if len(data) > max_bytes:
        raise ValidationError(
            field, f"is {_human_bytes(len(data))}; the limit is {_human_bytes(max_bytes)}"
        )
    too_many = f"has too many pixels; at most {max_pixels:,} are accepted"
    try:
        with Image.open(io.BytesIO(data)) as image:
            found = _format_of(image)
            if found not in formats:
                raise ValidationError(
                    field, f"is a {found} image; accepted formats: {_listing(formats)}"
                )
            sizes = _sizes_of(image)
            width, height = sizes[0]
            if width * height > max_pixels:
                raise ValidationError(
                    field, f"is {width}x{height} pixels; at most {max_pixels:,} are accepted"
                )
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError(field, too_many) from None
    except UnidentifiedImageError as error:
        raise ValidationError(field, f"is not an image ({_listing(formats)})") from error
    except Exception as error:
        # A format recognised its signature, then failed on the rest (WebP
        # decodes the whole file while opening it): a damaged file.
        raise ValidationError(field, _DAMAGED) from error
    try:
        # verify() checks what the format can check without decoding (PNG chunk
        # checksums); it leaves the image unusable, so decode from a fresh open.
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            orientation = image.getexif().get(_ORIENTATION_TAG)
            sizes = _sizes_of(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError(field, too_many) from None
    except Exception as error:
        # Pillow reports damage as OSError, SyntaxError, ValueError, EOFError,
        # struct.error, ...; for an upload they all mean the same.
        raise ValidationError(field, _DAMAGED) from error
    if orientation in _QUARTER_TURNS:
        sizes = tuple((h, w) for w, h in sizes)
    width, height = sizes[0]
    media_type, extension = _TYPES.get(
        found, (Image.MIME.get(found, "application/octet-stream"), found.lower())
    )
    return ProbedImage(
        format=found,
        media_type=media_type,
        extension=extension,
        width=width,
        height=height,
        size=len(data),
        sizes=sizes,
    )


def square_png(data: bytes, size: int) -> bytes:
    """A ``size`` x ``size`` RGBA PNG of the image in ``data``, for PWA and touch icons.

    The image (its first frame, EXIF rotation applied) is scaled with
    Lanczos to fit inside the square, keeping its proportions, and centred on
    a transparent background. ``data`` should have passed :func:`probe`; bytes
    Pillow cannot decode raise ``ValidationError("image", ...)``.
    """
    _pillow()
    from PIL import Image

    size = _icon_size(size)
    picture = _fitted(data, size)
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    canvas.paste(picture, _centred(picture, size))
    return _png(canvas)


def maskable_png(data: bytes, size: int, background: str) -> bytes:
    """A ``size`` x ``size`` opaque RGB PNG for ``"purpose": "maskable"`` in a web manifest.

    The image is scaled to fit the central :data:`MASKABLE_SAFE_ZONE` (80%)
    of the square, centred, and laid over ``background`` (``"#rrggbb"``), which
    also fills the rest, so the platform's mask (a circle, a squircle) cuts
    only background. ``ValidationError`` as for :func:`square_png`, and with
    field ``background`` for a colour that is not ``#rrggbb``.
    """
    _pillow()
    from PIL import Image

    size = _icon_size(size)
    if not isinstance(background, str) or not _COLOUR.fullmatch(background):
        raise ValidationError("background", f"must be a colour like '#1f2933', not {background!r}")
    inner = max(1, round(size * MASKABLE_SAFE_ZONE))
    picture = _fitted(data, inner)
    canvas = Image.new("RGBA", (size, size), background)
    canvas.alpha_composite(picture, _centred(picture, size))
    return _png(canvas.convert("RGB"))


# -- helpers -------------------------------------------------------------------


def _pillow() -> None:
    load("PIL", "reading and resizing images")


def _format_of(image: _Image.Image) -> str:
    found = image.format or "unknown"
    # Phone cameras write MPO: a JPEG with extra pictures after the first, which
    # is all a browser (and Pillow's decoder) ever shows. It is a JPEG to us.
    return "JPEG" if found == "MPO" else found


def _sizes_of(image: _Image.Image) -> tuple[tuple[int, int], ...]:
    """Every picture's size, largest first: an ICO's list, or the image's own size."""
    listed = image.info.get("sizes") if image.format == "ICO" else None
    if not listed:
        return (image.size,)
    return tuple(sorted(set(listed) | {image.size}, key=lambda s: (s[0] * s[1], s), reverse=True))


def _listing(formats: Iterable[str]) -> str:
    """``"PNG, JPEG, GIF or WEBP"``: the formats in the usual order."""
    names = sorted(formats, key=lambda name: (_ORDER.index(name) if name in _ORDER else 99, name))
    if len(names) < 2:
        return "".join(names)
    return ", ".join(names[:-1]) + " or " + names[-1]


def _human_bytes(count: int) -> str:
    """``5 MiB``, ``1.5 KiB``, ``300 bytes``: rounded up, so a file over a limit never
    reads as equal to it."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= scale:
            tenths = math.ceil(count * 10 / scale)
            return f"{tenths / 10:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} bytes"


def _icon_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        raise ValidationError("size", f"must be an integer, not {type(size).__name__}")
    if not 1 <= size <= MAX_ICON_SIZE:
        raise ValidationError("size", f"must be between 1 and {MAX_ICON_SIZE} pixels")
    return size


def _fitted(data: bytes, box: int) -> _Image.Image:
    """The first frame of ``data`` as RGBA, rotated as shown, scaled to fit ``box`` x ``box``."""
    _pillow()
    from PIL import Image, ImageOps

    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValidationError("image", f"must be the file's bytes, not {type(data).__name__}")
    try:
        with Image.open(io.BytesIO(bytes(data))) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            rgba = upright.convert("RGBA")
    except Exception as error:
        raise ValidationError("image", "cannot be decoded; probe() it first") from error
    return ImageOps.contain(rgba, (box, box), Image.Resampling.LANCZOS)


def _centred(picture: _Image.Image, size: int) -> tuple[int, int]:
    return ((size - picture.width) // 2, (size - picture.height) // 2)


def _png(image: _Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()
