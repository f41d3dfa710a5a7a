"""The images one settings update stores in the media store, taken back if it fails.

Files are named after their content (a SHA-256 prefix), so storing the same
image twice is one file, and a failed update deletes only what no saved
setting refers to.
"""

from __future__ import annotations

import hashlib
import logging

from ..domain.settings import AppIcon, PortalSettings, StoredImage
from ..errors import ValidationError
from . import _images
from ._context import Context

__all__ = ["MediaUploads", "media_keys"]

log = logging.getLogger(__name__)

#: The icons of the web app manifest, made from the uploaded app icon.
_APP_ICONS = (
    ("icon-192", 192, "any"),
    ("icon-512", 512, "any"),
    ("icon-maskable", 512, "maskable"),
)


def media_keys(settings: PortalSettings) -> set[str]:
    """The media keys ``settings`` refer to."""
    images = [settings.branding.logo, settings.branding.favicon, settings.app.icon]
    images += [icon.image for icon in settings.app.icons]
    return {image.key for image in images if image is not None}


class MediaUploads:
    """Stores images for one update and remembers their keys."""

    def __init__(self, context: Context) -> None:
        self._ctx = context
        self.keys: list[str] = []

    def probe_and_store(
        self, name: str, field: str, data: object, formats: frozenset[str]
    ) -> StoredImage:
        """Check ``data`` is an image of ``formats`` (by its bytes) and store it as ``name``."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValidationError(field, f"must be the file's bytes, not {type(data).__name__}")
        payload = bytes(data)
        probed = _images.probe(
            field,
            payload,
            formats=formats,
            max_bytes=_images.MAX_IMAGE_BYTES,
            max_pixels=_images.MAX_IMAGE_PIXELS,
        )
        return self._store(name, payload, probed)

    def app_icons(self, source: bytes, background: str) -> tuple[AppIcon, ...]:
        """The manifest's 192 and 512 pixel icons and the maskable one, stored."""
        icons = []
        for name, size, purpose in _APP_ICONS:
            if purpose == "maskable":
                data = _images.maskable_png(source, size, background)
            else:
                data = _images.square_png(source, size)
            image = self.probe_and_store(f"app/{name}", "icon", data, frozenset({"PNG"}))
            icons.append(AppIcon(image, purpose))
        return tuple(icons)

    def _store(self, name: str, data: bytes, probed: _images.ProbedImage) -> StoredImage:
        digest = hashlib.sha256(data).hexdigest()
        key = f"{self._ctx.tenant}/{name}-{digest[:16]}.{probed.extension}"
        url = self._ctx.media.put(key, data, probed.media_type)
        self.keys.append(key)
        sizes = probed.sizes if probed.format == "ICO" else ()
        return StoredImage(
            url, key, probed.media_type, probed.width, probed.height, len(data), digest, sizes
        )

    def take_back(self, used: set[str]) -> None:
        """Delete the stored files ``used`` does not name (best effort, logged)."""
        for key in self.keys:
            if key in used:
                continue
            try:
                self._ctx.media.delete(key)
            except Exception:
                log.exception("could not delete %s after a failed settings update", key)
