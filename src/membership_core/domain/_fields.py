"""attrs field helpers shared by the domain's tagged unions and validated values."""

from __future__ import annotations

from typing import Any

import attrs

from .. import _validate
from ..errors import ValidationError

__all__ = ["aware", "kind", "one_of"]


def kind(value: str) -> Any:
    """The ``kind`` field of a union variant: keyword-only, defaulted, and checked.

    Every variant carries it, so serialized data says which variant it is and
    the converter can structure the union. It is left out of ``repr``: the
    class name already says it.
    """

    def check(_instance: Any, _attribute: Any, given: object) -> None:
        if given != value:
            raise ValidationError("kind", f"must be {value!r}, not {given!r}")

    return attrs.field(default=value, kw_only=True, repr=False, validator=check)


def aware(field: str) -> Any:
    """An attrs validator: a timezone-aware datetime, naming ``field``."""

    def check(_instance: Any, _attribute: Any, value: object) -> None:
        _validate.aware(field, value)

    return check


def one_of(field: str, *types: type) -> Any:
    """An attrs validator: one of ``types``, naming ``field`` and the accepted types."""

    def check(_instance: Any, _attribute: Any, value: object) -> None:
        if not isinstance(value, types):
            names = " or ".join(kind.__name__ for kind in types)
            raise ValidationError(field, f"must be {names}, not {type(value).__name__}")

    return check
