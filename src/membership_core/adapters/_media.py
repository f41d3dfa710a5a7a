"""Argument checks shared by the built-in media stores."""

from __future__ import annotations

import re

from ..errors import ValidationError
from ..ports.media import check_key

# type "/" subtype, RFC 6838 characters; parameters (";charset=...") are not needed for files.
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)


def check_put(key: object, data: object, media_type: object) -> tuple[str, bytes, str]:
    """The arguments of ``MediaStore.put``, checked: ``ValidationError`` naming the bad one."""
    key = check_key(key)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValidationError("data", f"must be bytes, not {type(data).__name__}")
    if not isinstance(media_type, str) or not _MEDIA_TYPE.fullmatch(media_type):
        raise ValidationError(
            "media_type", f"must be a media type like 'image/png', not {media_type!r}"
        )
    return key, bytes(data), media_type.lower()


def check_base_url(base_url: object) -> str:
    """``base_url`` without its trailing ``/``, if it is a non-empty string."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValidationError("base_url", f"must be a non-empty URL, not {base_url!r}")
    return base_url.strip().rstrip("/")
