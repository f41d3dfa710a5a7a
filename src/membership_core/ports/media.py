"""The media store port: keep uploaded files (logos, favicons, app icons) and give their URLs.

Portal settings reference images by URL; the bytes live in a media store. The
library ships a folder store (the embedded default) and an in-memory one for
tests; a host plugs in S3, a CDN or its own asset service by registering a
factory in ``membership_register_adapters``::

    @hookimpl
    def membership_register_adapters(registry):
        registry.add_media_store("s3", S3MediaStore.from_url)

Keys are relative paths such as ``default/branding/logo-3f2a9c.png``; see
:func:`check_key` for the rules every adapter enforces.
"""

from __future__ import annotations

import re
from typing import Protocol

from ..errors import ValidationError

__all__ = ["MAX_KEY_LENGTH", "MediaStore", "check_key"]

#: The longest key a store accepts (S3 allows 1024 bytes; folders need room for the root).
MAX_KEY_LENGTH = 500

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def check_key(key: object) -> str:
    """Return ``key`` if it is a valid media key, else raise ``ValidationError("key", ...)``.

    A key is one or more segments of letters, digits, ``.``, ``_`` and ``-``
    joined by ``/``: no leading or trailing ``/``, no empty, ``.`` or ``..``
    segment, at most :data:`MAX_KEY_LENGTH` characters. Such a key is safe as a
    file path under a folder and as a URL path, without any quoting.

    >>> check_key("default/branding/logo-3f2a9c.png")
    'default/branding/logo-3f2a9c.png'
    >>> check_key("../etc/passwd")
    Traceback (most recent call last):
    ...
    membership_core.errors.ValidationError: key: '../etc/passwd' has a '..' segment
    """
    if not isinstance(key, str):
        raise ValidationError("key", f"must be a string, not {type(key).__name__}")
    if not key:
        raise ValidationError("key", "must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationError("key", f"must be at most {MAX_KEY_LENGTH} characters")
    if key.startswith("/"):
        raise ValidationError("key", f"{key!r} must be relative (no leading '/')")
    for segment in key.split("/"):
        if not segment:
            raise ValidationError("key", f"{key!r} has an empty segment")
        if segment in (".", ".."):
            raise ValidationError("key", f"{key!r} has a {segment!r} segment")
        if not _SEGMENT.fullmatch(segment):
            raise ValidationError(
                "key", f"{key!r}: segments may only use letters, digits, '.', '_' and '-'"
            )
    return key


class MediaStore(Protocol):
    """Stores public files by key and tells their URL.

    Every method checks its key with :func:`check_key` and raises
    ``ValidationError("key", ...)`` for a bad one. Implementations must be
    safe to call from several threads at once. What is stored is public: the
    URL is meant to be put in pages and emails.
    """

    def put(self, key: str, data: bytes, media_type: str) -> str:
        """Store ``data`` under ``key`` and return its public URL (:meth:`url` of ``key``).

        An existing file under ``key`` is replaced; putting the same bytes
        under the same key again changes nothing. A reader never sees a
        half-written file. ``media_type`` (``"image/png"``, ...) is the type
        to serve it with, for stores that keep one.
        """
        ...

    def get(self, key: str) -> bytes | None:
        """The bytes stored under ``key``, or ``None`` when there are none."""
        ...

    def delete(self, key: str) -> None:
        """Remove what is stored under ``key``; a key with nothing stored is not an error."""
        ...

    def url(self, key: str) -> str:
        """The public URL of ``key`` (whether or not anything is stored under it yet)."""
        ...
