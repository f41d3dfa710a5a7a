"""One cattrs converter for every public value: JSON-safe data out, typed values back.

Hosts use it to put library values into APIs and queues::

    data = membership_core.unstructure(outline)      # dicts, lists, str, int, bool, None
    same = membership_core.structure(data, Outline)

Datetimes become ISO 8601 strings, enums their values, domain events a dict
tagged with their ``type``. The converter is private to the library (never the
global cattrs one) and forbids unknown keys, so a typo in stored data is an
error rather than silently dropped.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import cattrs
from cattrs.preconf.json import make_converter
from cattrs.v import format_exception

from .domain.events import EVENT_TYPES, DomainEvent
from .errors import ValidationError

__all__ = ["structure", "unstructure"]

T = TypeVar("T")


def _make() -> cattrs.Converter:
    converter = make_converter(forbid_extra_keys=True)

    # Only aware datetimes exist inside the library; refuse naive ones at the edge.
    def structure_datetime(value: object, _: type) -> datetime:
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, str):
            parsed = datetime.fromisoformat(value)
        else:
            raise ValueError(f"expected an ISO 8601 string, got {type(value).__name__}")
        if parsed.tzinfo is None:
            raise ValueError("datetime must carry a timezone")
        return parsed

    converter.register_structure_hook(datetime, structure_datetime)

    # Durations are seconds: a whole number when they are whole, exact to the microsecond.
    def unstructure_timedelta(value: timedelta) -> int | float:
        seconds = value.total_seconds()
        return int(seconds) if seconds.is_integer() else seconds

    def structure_timedelta(value: object, _: type) -> timedelta:
        if isinstance(value, timedelta):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected seconds as a number, got {type(value).__name__}")
        return timedelta(seconds=value)

    converter.register_unstructure_hook(timedelta, unstructure_timedelta)
    converter.register_structure_hook(timedelta, structure_timedelta)

    # cattrs would coerce "1" to 1 and 5 to "5"; stored and received data must
    # already have the right type, so a mix-up is reported, not papered over.
    def strict(kind: type) -> Any:
        def check(value: object, _: type) -> object:
            if type(value) is not kind and not (kind is float and type(value) is int):
                raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
            return value

        return check

    for kind in (int, str, bool, float):
        converter.register_structure_hook(kind, strict(kind))

    # Sets become sorted lists, so the same value always gives the same JSON.
    def is_set(cls: Any) -> bool:
        return typing.get_origin(cls) in (frozenset, set) or cls in (frozenset, set)

    converter.register_unstructure_hook_func(
        is_set, lambda value: sorted(converter.unstructure(item) for item in value)
    )

    def is_event(cls: Any) -> bool:
        return isinstance(cls, type) and issubclass(cls, DomainEvent)

    base_unstructure = converter.unstructure

    # Generating an unstructure function compiles code: do it once per event class.
    unstructurers: dict[type[DomainEvent], Callable[[Any], dict[str, Any]]] = {}

    def unstructure_event(event: DomainEvent) -> dict[str, Any]:
        kind = type(event)
        function = unstructurers.get(kind)
        if function is None:
            function = unstructurers[kind] = converter.gen_unstructure_attrs_fromdict(kind)
        fields = function(event)
        return {"type": event.type, **fields}

    def structure_event(data: Any, cls: type[DomainEvent]) -> DomainEvent:
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise ValueError("an event must be a mapping with a 'type'")
        target = EVENT_TYPES.get(data["type"])
        if target is None or (cls is not DomainEvent and target is not cls):
            raise ValueError(f"unknown event type {data['type']!r} for {cls.__name__}")
        rest = {key: value for key, value in data.items() if key != "type"}
        return converter.structure_attrs_fromdict(rest, target)

    converter.register_unstructure_hook_func(is_event, unstructure_event)
    converter.register_structure_hook_func(is_event, structure_event)
    del base_unstructure
    return converter


_converter = _make()


def _first_validation_error(exc: BaseException) -> ValidationError | None:
    if isinstance(exc, ValidationError):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _first_validation_error(inner)
        if found is not None:
            return found
    return None


def _describe(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, ValidationError):
        return exc.message
    return format_exception(exc, type_)


def unstructure(value: object) -> Any:
    """Turn a library value (or a list/dict of them) into JSON-safe data."""
    return _converter.unstructure(value)


def _type_name(cls: object) -> str:
    """A class's name; for a union alias such as ``PricingPlan``, its members' names."""
    name = getattr(cls, "__name__", None)
    if isinstance(name, str):
        return name
    members = typing.get_args(cls)
    return "|".join(getattr(m, "__name__", repr(m)) for m in members) or repr(cls)


@typing.overload
def structure(data: object, cls: type[T]) -> T: ...


@typing.overload
def structure(data: object, cls: object) -> Any: ...


def structure(data: object, cls: Any) -> Any:
    """Build a ``cls`` value from JSON-safe data; raise ValidationError naming the bad path.

    ``cls`` is a class or a union of classes (such as ``PricingPlan``).
    """
    name = _type_name(cls)
    try:
        return _converter.structure(data, cls)
    except ValidationError:
        raise
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            messages = cattrs.transform_error(exc, path=name, format_exception=_describe)
            # "bad value @ Money.amount": the path after "@" is the field at fault;
            # a validator's own ValidationError knows its field more precisely.
            problem, _, field = messages[0].rpartition(" @ ") if messages else ("", "", "")
            inner = _first_validation_error(exc)
            if inner is not None and inner.field and not field.endswith("." + inner.field):
                field, problem = f"{field}.{inner.field}", inner.problem
            if len(messages) > 1:
                problem = "; ".join(messages)
            raise ValidationError(field or name, problem) from exc
        raise ValidationError(name, str(exc)) from exc
