"""Access windows of an offer: when a buyer's access starts and ends. Pure.

A window has a start (at purchase, or on a fixed date) and an end (never,
some days after the start, or on a fixed date). :func:`resolve` turns it into
the concrete ``(starts_at, ends_at)`` of one purchase.

>>> from datetime import UTC, datetime
>>> bought = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
>>> resolve(AccessWindow(end=EndAfter(30)), bought)
(datetime.datetime(2024, 3, 10, 12, 0, tzinfo=datetime.timezone.utc), \
datetime.datetime(2024, 4, 9, 12, 0, tzinfo=datetime.timezone.utc))

Like the pricing plans, every variant carries a ``kind`` literal so its
serialized form says which variant it is. Ends are exclusive: access lasts
until, not including, ``ends_at``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeAlias

import attrs

from .. import _validate
from ..errors import ValidationError
from ._fields import aware as _aware
from ._fields import kind as _kind
from ._fields import one_of as _one_of

__all__ = [
    "AccessWindow",
    "EndAfter",
    "EndNever",
    "EndOn",
    "MAX_WINDOW_DAYS",
    "StartAtPurchase",
    "StartOn",
    "WindowEnd",
    "WindowStart",
    "resolve",
]

#: The longest relative window: 100 years, so every end stays a valid datetime.
MAX_WINDOW_DAYS = 36525


@attrs.frozen
class StartAtPurchase:
    """Access starts the moment the offer is bought."""

    kind: Literal["at_purchase"] = _kind("at_purchase")


@attrs.frozen
class StartOn:
    """Access starts on a fixed instant ``at`` (a cohort's first day).

    Buying after ``at`` starts access at the purchase: access never starts
    before it was bought.
    """

    at: datetime = attrs.field(validator=_aware("at"))
    kind: Literal["on"] = _kind("on")


@attrs.frozen
class EndNever:
    """Access does not end (lifetime access)."""

    kind: Literal["never"] = _kind("never")


@attrs.frozen
class EndAfter:
    """Access ends ``days`` days (of exactly 24 hours) after it started."""

    days: int = attrs.field()
    kind: Literal["after"] = _kind("after")

    @days.validator
    def _check_days(self, _attribute: Any, value: object) -> None:
        days = _validate.integer("days", value, minimum=1)
        if days > MAX_WINDOW_DAYS:
            raise ValidationError("days", f"must be at most {MAX_WINDOW_DAYS}, not {days}")


@attrs.frozen
class EndOn:
    """Access ends at a fixed instant ``at`` (exclusive)."""

    at: datetime = attrs.field(validator=_aware("at"))
    kind: Literal["on"] = _kind("on")


#: When access starts.
WindowStart: TypeAlias = StartAtPurchase | StartOn
#: When access ends.
WindowEnd: TypeAlias = EndNever | EndAfter | EndOn


@attrs.frozen
class AccessWindow:
    """When the access an offer grants starts and ends; lifetime from purchase by default.

    When both ends are fixed dates, the end must come after the start.

    >>> from datetime import UTC, datetime
    >>> march, february = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    >>> AccessWindow(StartOn(march), EndOn(february))
    Traceback (most recent call last):
    ...
    membership_core.errors.ValidationError: end: must be after the start (2024-03-01T00:00:00+00:00)
    """

    start: WindowStart = attrs.field(
        default=StartAtPurchase(), validator=_one_of("start", StartAtPurchase, StartOn)
    )
    end: WindowEnd = attrs.field(
        default=EndNever(), validator=_one_of("end", EndNever, EndAfter, EndOn)
    )

    def __attrs_post_init__(self) -> None:
        if (
            isinstance(self.start, StartOn)
            and isinstance(self.end, EndOn)
            and self.end.at <= self.start.at
        ):
            raise ValidationError("end", f"must be after the start ({self.start.at.isoformat()})")


def resolve(window: AccessWindow, purchased_at: datetime) -> tuple[datetime, datetime | None]:
    """The ``(starts_at, ends_at)`` of access bought at ``purchased_at``, in UTC.

    - Start: at the purchase, or on the fixed date; a fixed date already past
      at purchase time starts access at the purchase (no retroactive access).
    - End: ``None`` for never; ``starts_at + days`` for :class:`EndAfter`, so a
      late buyer of a cohort still gets the full ``days``; the fixed date for
      :class:`EndOn`, which must still be ahead of the purchase, otherwise
      ``ValidationError("access_window", ...)`` says the window has already ended.

    ``starts_at`` is always strictly before ``ends_at``.
    """
    if not isinstance(window, AccessWindow):
        raise ValidationError(
            "access_window", f"must be an AccessWindow, not {type(window).__name__}"
        )
    bought = _validate.aware("purchased_at", purchased_at).astimezone(UTC)
    starts_at = bought
    if isinstance(window.start, StartOn):
        starts_at = max(bought, window.start.at.astimezone(UTC))
    end = window.end
    if isinstance(end, EndNever):
        return starts_at, None
    if isinstance(end, EndAfter):
        return starts_at, starts_at + timedelta(days=end.days)
    ends_at = end.at.astimezone(UTC)
    if ends_at <= bought:
        raise ValidationError(
            "access_window", f"has already ended (at {ends_at.isoformat()}), it cannot be bought"
        )
    return starts_at, ends_at
