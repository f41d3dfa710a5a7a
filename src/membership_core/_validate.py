"""Small argument checks shared by the services; each raises ValidationError naming the field."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TypeVar

from .errors import ValidationError

_E = TypeVar("_E")

# Deliberately simple: one "@", no spaces, a dot in the domain. Real validation is delivery.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def text(field: str, value: object, *, max_length: int = 500, allow_empty: bool = False) -> str:
    """Return ``value`` stripped, or raise if it is not a string of acceptable length."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    stripped = value.strip()
    if not stripped and not allow_empty:
        raise ValidationError(field, "must not be empty")
    if len(stripped) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters")
    return stripped


def optional_text(field: str, value: object, *, max_length: int = 500) -> str | None:
    """Like :func:`text`, but ``None`` (or a blank string) means "not set"."""
    if value is None:
        return None
    result = text(field, value, max_length=max_length, allow_empty=True)
    return result or None


def email(field: str, value: object) -> str:
    """Return the email trimmed (case kept), or raise if it does not look like one."""
    result = text(field, value, max_length=254)
    if not _EMAIL.match(result):
        raise ValidationError(field, f"{result!r} is not a valid email address")
    return result


def integer(field: str, value: object, *, minimum: int | None = None) -> int:
    """Return ``value`` if it is an int (not a bool) at or above ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, not {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValidationError(field, f"must be at least {minimum}")
    return value


def boolean(field: str, value: object) -> bool:
    """Return ``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise ValidationError(field, f"must be true or false, not {type(value).__name__}")
    return value


def aware(field: str, value: object) -> datetime:
    """Return ``value`` if it is a timezone-aware datetime."""
    if not isinstance(value, datetime):
        raise ValidationError(field, f"must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(field, "must be timezone-aware")
    return value


def choice(field: str, value: object, enum: type[_E]) -> _E:
    """Return the member of ``enum`` named by ``value`` (the member itself or its value)."""
    if isinstance(value, enum):
        return value
    try:
        return enum(value)  # type: ignore[call-arg]
    except (ValueError, TypeError):
        options = ", ".join(repr(m.value) for m in enum)  # type: ignore[attr-defined]
        raise ValidationError(field, f"must be one of {options}, not {value!r}") from None


def identifier(field: str, value: object, prefix: str) -> str:
    """Return ``value`` if it is an id string of the expected type prefix."""
    if not isinstance(value, str) or not value.startswith(prefix + "_") or len(value) > 64:
        raise ValidationError(field, f"must be a {prefix}_... id, not {value!r}")
    return value
