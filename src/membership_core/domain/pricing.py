"""Pricing plans of an offer, the charges they imply, and coupons. Pure.

A plan is one of four variants (the tagged union :data:`PricingPlan`):
:class:`Free`, :class:`OneTime`, :class:`Subscription` and :class:`PaymentPlan`.
:func:`schedule` turns a plan and a start instant into the list of
:class:`Charge` values it implies; a :class:`Coupon` lowers some of them.

>>> from datetime import UTC, datetime
>>> plan = PaymentPlan(Money(10000, "USD"), 3, BillingPeriod(Interval.MONTH))
>>> for charge in schedule(plan, datetime(2024, 1, 31, tzinfo=UTC)):
...     print(charge.sequence, charge.due_at.date(), charge.amount)
1 2024-01-31 33.34 USD
2 2024-02-29 33.33 USD
3 2024-03-31 33.33 USD

Every variant carries a ``kind`` literal (``"free"``, ``"one_time"``, ...; the
same strings as :class:`~membership_core.domain.offers.PaymentType`), so its
serialized form says which variant it is and the library's cattrs converter can
structure the union without a custom hook. ``kind`` is keyword-only and has a
default: nobody needs to pass it.
"""

from __future__ import annotations

import calendar
import enum
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeAlias

import attrs

from .. import _validate
from ..errors import ValidationError
from ._fields import aware as _aware
from ._fields import kind as _kind
from ._fields import one_of as _instance_of
from .money import Money

__all__ = [
    "AmountOff",
    "BillingPeriod",
    "Charge",
    "ChargeKind",
    "Coupon",
    "CouponDuration",
    "Discount",
    "Forever",
    "Free",
    "Interval",
    "MAX_INSTALLMENTS",
    "MAX_SCHEDULE_PERIODS",
    "MIN_INSTALLMENTS",
    "OneTime",
    "Once",
    "PaymentPlan",
    "PercentOff",
    "PricingPlan",
    "Repeating",
    "Subscription",
    "check_coupon",
    "discount_for",
    "normalize_code",
    "schedule",
    "total_price",
]

#: Installments a payment plan may have: at least 2 (one is a one-time price), at most 120.
MIN_INSTALLMENTS = 2
MAX_INSTALLMENTS = 120
#: The longest subscription schedule :func:`schedule` will build (100 years of months).
MAX_SCHEDULE_PERIODS = 1200
# Generous bounds that still keep every computed date far from datetime's year 9999.
_MAX_PERIOD_COUNT = 1000
_MAX_TRIAL_DAYS = 3650
_CODE = re.compile(r"[A-Z0-9_-]{3,40}")


# --------------------------------------------------------------------------- helpers


def _int_between(field: str, low: int, high: int | None = None) -> Any:
    """An attrs validator: an int (never a bool) in ``low..high``, naming ``field``."""

    def check(_instance: Any, _attribute: Any, value: object) -> None:
        number = _validate.integer(field, value, minimum=low)
        if high is not None and number > high:
            raise ValidationError(field, f"must be at most {high}, not {number}")

    return check


def _positive_money(field: str) -> Any:
    """An attrs validator: a :class:`Money` above zero, naming ``field``."""

    def check(_instance: Any, _attribute: Any, value: object) -> None:
        if not isinstance(value, Money):
            raise ValidationError(field, f"must be Money, not {type(value).__name__}")
        if value.amount <= 0:
            raise ValidationError(field, f"must be more than zero, not {value}")

    return check


def _add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus ``months`` calendar months, the day clamped to the month's last day."""
    year, month_index = divmod(moment.month - 1 + months, 12)
    year += moment.year
    if not 1 <= year <= 9999:
        raise ValidationError("n", "the date would be outside the years 1 to 9999")
    month = month_index + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


# --------------------------------------------------------------------------- periods


class Interval(enum.Enum):
    """The unit of a billing period."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


@attrs.frozen
class BillingPeriod:
    """``count`` units of ``unit``: every month, every 2 weeks, every year ...

    >>> from datetime import UTC, datetime
    >>> monthly = BillingPeriod(Interval.MONTH)
    >>> start = datetime(2023, 1, 31, 9, 30, tzinfo=UTC)
    >>> [monthly.advance(start, n).date().isoformat() for n in range(4)]
    ['2023-01-31', '2023-02-28', '2023-03-31', '2023-04-30']
    """

    unit: Interval = attrs.field(validator=_instance_of("unit", Interval))
    count: int = attrs.field(default=1, validator=_int_between("count", 1, _MAX_PERIOD_COUNT))

    def advance(self, start: datetime, n: int = 1) -> datetime:
        """The instant ``n`` periods after ``start``, in UTC.

        Months and years are calendar months anchored to ``start``: the k-th
        date is always ``start + k * period`` computed from ``start`` itself,
        never by adding one period to the previous date, so a day clamped in a
        short month does not stick (31 Jan, 28/29 Feb, 31 Mar, 30 Apr, ...).
        A day that does not exist in the target month becomes its last day.
        Days and weeks are exact multiples of 24 hours.

        The arithmetic is done in UTC, so a start late in the evening west of
        UTC is anchored to the next UTC day. A service that wants periods on the
        portal's local calendar converts ``start`` to the portal's timezone,
        adds the periods there, and converts back; the domain keeps to UTC.
        """
        _validate.aware("start", start)
        _validate.integer("n", n, minimum=0)
        moment = start.astimezone(UTC)
        steps = self.count * n
        try:
            if self.unit is Interval.DAY:
                return moment + timedelta(days=steps)
            if self.unit is Interval.WEEK:
                return moment + timedelta(weeks=steps)
            if self.unit is Interval.MONTH:
                return _add_months(moment, steps)
            return _add_months(moment, 12 * steps)
        except OverflowError:
            raise ValidationError("n", "the date would be outside the years 1 to 9999") from None


# --------------------------------------------------------------------------- plans


@attrs.frozen
class Free:
    """Nothing to pay: the buyer gets access by signing up."""

    kind: Literal["free"] = _kind("free")


@attrs.frozen
class OneTime:
    """One payment of ``price`` at purchase."""

    price: Money = attrs.field(validator=_positive_money("price"))
    kind: Literal["one_time"] = _kind("one_time")


@attrs.frozen
class Subscription:
    """``price`` every ``period`` until cancelled, after an optional free trial.

    A ``setup_fee`` (same currency, never discounted by a coupon) is charged at
    purchase, even when the first period is deferred by a trial.
    """

    price: Money = attrs.field(validator=_positive_money("price"))
    period: BillingPeriod = attrs.field(validator=_instance_of("period", BillingPeriod))
    trial_days: int = attrs.field(
        default=0, validator=_int_between("trial_days", 0, _MAX_TRIAL_DAYS)
    )
    setup_fee: Money | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_positive_money("setup_fee")),
    )
    kind: Literal["subscription"] = _kind("subscription")

    def __attrs_post_init__(self) -> None:
        # attrs has run the per-field validators, so both are positive Money here.
        if self.setup_fee is not None and self.setup_fee.currency != self.price.currency:
            raise ValidationError(
                "setup_fee",
                f"must be in {self.price.currency} like the price, not {self.setup_fee.currency}",
            )


@attrs.frozen
class PaymentPlan:
    """``total`` paid in ``installments`` near-equal parts, one every ``period``.

    The parts add up exactly to the total (larger parts first), so the total
    must be at least one minor unit per installment.
    """

    total: Money = attrs.field(validator=_positive_money("total"))
    installments: int = attrs.field(
        validator=_int_between("installments", MIN_INSTALLMENTS, MAX_INSTALLMENTS)
    )
    period: BillingPeriod = attrs.field(validator=_instance_of("period", BillingPeriod))
    kind: Literal["payment_plan"] = _kind("payment_plan")

    def __attrs_post_init__(self) -> None:
        # A zero installment would be a charge for nothing; refuse the plan instead.
        if self.total.amount < self.installments:
            raise ValidationError(
                "total",
                f"{self.total} cannot be split into {self.installments} installments "
                f"of at least one minor unit each",
            )


#: The pricing plan of an offer: one of the four variants, told apart by ``kind``.
PricingPlan: TypeAlias = Free | OneTime | Subscription | PaymentPlan
_PLANS = (Free, OneTime, Subscription, PaymentPlan)


# --------------------------------------------------------------------------- coupons


@attrs.frozen
class PercentOff:
    """``percent`` % off each discounted charge (1 to 100)."""

    percent: int = attrs.field(validator=_int_between("percent", 1, 100))
    kind: Literal["percent_off"] = _kind("percent_off")


@attrs.frozen
class AmountOff:
    """A fixed ``amount`` off each discounted charge, never taking a charge below zero."""

    amount: Money = attrs.field(validator=_positive_money("amount"))
    kind: Literal["amount_off"] = _kind("amount_off")


@attrs.frozen
class Once:
    """The discount applies to the first charge only (the first billing period)."""

    kind: Literal["once"] = _kind("once")


@attrs.frozen
class Forever:
    """The discount applies to every charge."""

    kind: Literal["forever"] = _kind("forever")


@attrs.frozen
class Repeating:
    """The discount applies to the first ``periods`` billing periods (or installments)."""

    periods: int = attrs.field(validator=_int_between("periods", 1, MAX_SCHEDULE_PERIODS))
    kind: Literal["repeating"] = _kind("repeating")


#: How much a coupon takes off.
Discount: TypeAlias = PercentOff | AmountOff
#: For how many billing periods a coupon takes it off.
CouponDuration: TypeAlias = Once | Forever | Repeating


def normalize_code(value: object) -> str:
    """Coupon codes are case-insensitive and typed by humans: strip and upper-case them.

    >>> normalize_code(" spring-24 ")
    'SPRING-24'
    """
    if not isinstance(value, str):
        raise ValidationError("code", f"must be a string, not {type(value).__name__}")
    code = value.strip().upper()
    if not _CODE.fullmatch(code):
        raise ValidationError(
            "code", f"{code!r} must be 3 to 40 characters of A-Z, 0-9, '_' and '-'"
        )
    return code


def _normalize_offer_ids(value: Iterable[str] | None) -> frozenset[str] | None:
    """Any iterable of offer ids becomes a frozenset; ``None`` means every offer."""
    if value is None:
        return None
    if isinstance(value, str):
        # A lone string would otherwise become a set of its characters.
        raise ValidationError("offer_ids", "must be a collection of offer ids, not a string")
    try:
        ids = frozenset(value)
    except TypeError:
        raise ValidationError("offer_ids", "must be a collection of offer ids") from None
    for offer_id in ids:
        _validate.identifier("offer_ids", offer_id, "off")
    if not ids:
        raise ValidationError("offer_ids", "must name at least one offer (or be None for all)")
    return ids


@attrs.frozen
class Coupon:
    """A discount code buyers enter at checkout.

    - ``code`` is normalized: surrounding blanks removed, upper-cased; then it
      must be 3 to 40 characters of ``A-Z 0-9 _ -``.
    - ``expires_at`` is exclusive: the coupon works strictly *before* that
      instant and not at it, like every other end instant in the library.
    - ``max_redemptions`` caps the number of purchases that used it;
      ``None`` means no cap.
    - ``offer_ids`` restricts it to some offers; ``None`` means every offer.

    >>> Coupon(" spring-24 ", PercentOff(20), Repeating(3)).code
    'SPRING-24'
    """

    code: str = attrs.field(converter=normalize_code)
    discount: Discount = attrs.field(validator=_instance_of("discount", PercentOff, AmountOff))
    duration: CouponDuration = attrs.field(
        default=Once(), validator=_instance_of("duration", Once, Forever, Repeating)
    )
    expires_at: datetime | None = attrs.field(
        default=None, validator=attrs.validators.optional(_aware("expires_at"))
    )
    max_redemptions: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_int_between("max_redemptions", 1))
    )
    offer_ids: frozenset[str] | None = attrs.field(default=None, converter=_normalize_offer_ids)

    @property
    def currency(self) -> str | None:
        """The only currency it can discount (an amount off), or ``None`` for a percentage."""
        return self.discount.amount.currency if isinstance(self.discount, AmountOff) else None

    def applies_to(
        self,
        offer_id: str,
        at: datetime,
        redemptions_so_far: int,
        *,
        currency: str | None = None,
    ) -> bool:
        """Whether the coupon may be redeemed on ``offer_id`` at ``at``.

        See :func:`check_coupon` for the rules and for the reason when it may not.
        """
        try:
            check_coupon(self, offer_id, at, redemptions_so_far, currency=currency)
        except ValidationError as exc:
            if exc.field != "coupon":
                raise  # a malformed argument is a bug in the caller, not a "no"
            return False
        return True


def check_coupon(
    coupon: Coupon,
    offer_id: str,
    at: datetime,
    redemptions_so_far: int,
    *,
    currency: str | None = None,
) -> None:
    """Raise ``ValidationError("coupon", why)`` unless ``coupon`` may be redeemed now.

    It may not when it is not valid for ``offer_id``, when ``at`` is at or
    after ``expires_at`` (exclusive), when ``redemptions_so_far`` has reached
    ``max_redemptions``, or when it takes a fixed amount off in a currency
    other than the price's ``currency`` (checked only when given).
    Malformed arguments raise a ValidationError naming that argument instead.

    >>> from datetime import UTC, datetime
    >>> coupon = Coupon("LAUNCH", PercentOff(50), max_redemptions=100)
    >>> check_coupon(coupon, "off_1", datetime(2024, 1, 1, tzinfo=UTC), 100)
    Traceback (most recent call last):
    ...
    membership_core.errors.ValidationError: coupon: LAUNCH has reached its limit of 100 uses
    """
    _instance_of("coupon", Coupon)(None, None, coupon)
    _validate.text("offer_id", offer_id)
    _validate.aware("at", at)
    _validate.integer("redemptions_so_far", redemptions_so_far, minimum=0)
    if currency is not None:
        _validate.text("currency", currency)
    code = coupon.code
    if coupon.offer_ids is not None and offer_id not in coupon.offer_ids:
        raise ValidationError("coupon", f"{code} is not valid for this offer")
    if coupon.expires_at is not None and at >= coupon.expires_at:
        raise ValidationError("coupon", f"{code} expired at {coupon.expires_at.isoformat()}")
    if coupon.max_redemptions is not None and redemptions_so_far >= coupon.max_redemptions:
        raise ValidationError(
            "coupon", f"{code} has reached its limit of {coupon.max_redemptions} uses"
        )
    _check_currency(coupon, currency)


def _check_currency(coupon: Coupon, currency: str | None) -> None:
    if currency is not None and coupon.currency is not None and coupon.currency != currency:
        raise ValidationError(
            "coupon", f"{coupon.code} takes {coupon.currency} off, but the price is in {currency}"
        )


def _covers(duration: CouponDuration, period_index: int) -> bool:
    """Whether a coupon of ``duration`` discounts billing period ``period_index`` (0-based)."""
    if isinstance(duration, Forever):
        return True
    if isinstance(duration, Repeating):
        return period_index < duration.periods
    return period_index == 0


def discount_for(coupon: Coupon, amount: Money, period_index: int) -> Money:
    """What ``coupon`` takes off ``amount``, charged for billing period ``period_index``.

    ``period_index`` is 0-based: the first period (or installment, or the one
    payment of a one-time price) is 0. Outside the coupon's duration the
    discount is zero. The discount never exceeds ``amount``, so a charge never
    goes below zero.

    Rounding: a percentage is rounded *down* to a whole minor unit, so the
    seller never gives away more than the advertised percentage and the buyer
    pays less than one minor unit above the exact discounted price. 100 % off
    is always the whole amount.

    >>> discount_for(Coupon("TENOFF", PercentOff(10)), Money(999, "USD"), 0)
    Money(amount=99, currency='USD')
    >>> discount_for(Coupon("TENOFF", PercentOff(10)), Money(999, "USD"), 1)
    Money(amount=0, currency='USD')
    """
    _instance_of("coupon", Coupon)(None, None, coupon)
    _instance_of("amount", Money)(None, None, amount)
    if amount.amount < 0:
        raise ValidationError("amount", f"must not be negative, not {amount}")
    _validate.integer("period_index", period_index, minimum=0)
    _check_currency(coupon, amount.currency)
    if not _covers(coupon.duration, period_index):
        return Money.zero(amount.currency)
    if isinstance(coupon.discount, PercentOff):
        return Money(amount.amount * coupon.discount.percent // 100, amount.currency)
    return Money(min(amount.amount, coupon.discount.amount.amount), amount.currency)


# --------------------------------------------------------------------------- charges


class ChargeKind(enum.Enum):
    """What a scheduled charge is for."""

    #: The single payment of a one-time price.
    ONE_TIME = "one_time"
    #: A subscription's setup fee, at purchase, never discounted.
    SETUP_FEE = "setup_fee"
    #: One part of a payment plan.
    INSTALLMENT = "installment"
    #: A subscription's first period (at purchase, or when the trial ends).
    FIRST_PERIOD = "first_period"
    #: Every later subscription period.
    RENEWAL = "renewal"


@attrs.frozen
class Charge:
    """One payment a plan implies: ``amount`` of ``kind``, due at ``due_at``.

    ``sequence`` numbers the charges of a schedule from 1. ``period_index`` is
    the 0-based billing period (or installment) the charge pays for, ``None``
    for a setup fee. ``discount`` is what a coupon took off, already
    subtracted from ``amount``, or ``None`` when no coupon lowered this charge.
    ``amount`` is never negative; a 100 % coupon makes it zero.
    """

    sequence: int = attrs.field(validator=_int_between("sequence", 1))
    due_at: datetime = attrs.field(validator=_aware("due_at"))
    amount: Money = attrs.field(validator=_instance_of("amount", Money))
    kind: ChargeKind = attrs.field(validator=_instance_of("kind", ChargeKind))
    period_index: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_int_between("period_index", 0))
    )
    discount: Money | None = attrs.field(
        default=None, validator=attrs.validators.optional(_instance_of("discount", Money))
    )

    def __attrs_post_init__(self) -> None:
        if self.amount.amount < 0:
            raise ValidationError("amount", f"must not be negative, not {self.amount}")


def _check_plan(plan: object) -> None:
    if not isinstance(plan, _PLANS):
        raise ValidationError(
            "plan", f"must be Free, OneTime, Subscription or PaymentPlan, not {type(plan).__name__}"
        )


def _priced(
    plan: PricingPlan, coupon: Coupon | None, periods: int
) -> list[tuple[ChargeKind, int | None, Money, Money | None]]:
    """The charges' (kind, period index, amount after discount, discount), in order."""
    parts: list[tuple[ChargeKind, int | None, Money]] = []
    if isinstance(plan, OneTime):
        parts.append((ChargeKind.ONE_TIME, 0, plan.price))
    elif isinstance(plan, PaymentPlan):
        for number, part in enumerate(plan.total.split(plan.installments)):
            parts.append((ChargeKind.INSTALLMENT, number, part))
    elif isinstance(plan, Subscription):
        if plan.setup_fee is not None:
            parts.append((ChargeKind.SETUP_FEE, None, plan.setup_fee))
        parts.append((ChargeKind.FIRST_PERIOD, 0, plan.price))
        parts.extend((ChargeKind.RENEWAL, number, plan.price) for number in range(1, periods))
    priced: list[tuple[ChargeKind, int | None, Money, Money | None]] = []
    for kind, index, amount in parts:
        off: Money | None = None
        # The setup fee has no period index: coupons discount periods, never the fee.
        if coupon is not None and index is not None:
            off = discount_for(coupon, amount, index)
        if off is not None and off.amount > 0:
            priced.append((kind, index, amount - off, off))
        else:
            priced.append((kind, index, amount, None))
    return priced


def schedule(
    plan: PricingPlan,
    start: datetime,
    *,
    coupon: Coupon | None = None,
    periods: int = 12,
) -> list[Charge]:
    """The charges ``plan`` implies for a purchase at ``start``, in due order.

    - :class:`Free`: none.
    - :class:`OneTime`: one charge at ``start``.
    - :class:`PaymentPlan`: exactly ``installments`` charges splitting the
      total exactly (larger parts first), the k-th due ``k`` periods after
      ``start``.
    - :class:`Subscription`: the setup fee (if any) at ``start``; the first
      period at ``start`` or, with a trial, ``trial_days`` days (of 24 hours)
      later; then renewals every period, anchored to the first period's date.
      ``periods`` counts the period charges (first period plus renewals);
      a subscription runs until cancelled, so this is only how far to look.
      ``periods`` is ignored by the other plans.

    A ``coupon`` is applied per charge with :func:`discount_for` (setup fees
    excluded); its expiry, limit and offers are *not* checked here — call
    :func:`check_coupon` first. Due dates are in UTC (see
    :meth:`BillingPeriod.advance`).
    """
    _check_plan(plan)
    _validate.aware("start", start)
    _validate.integer("periods", periods, minimum=1)
    if periods > MAX_SCHEDULE_PERIODS:
        raise ValidationError("periods", f"must be at most {MAX_SCHEDULE_PERIODS}")
    if coupon is not None:
        _instance_of("coupon", Coupon)(None, None, coupon)
    start = start.astimezone(UTC)
    try:
        return [
            Charge(sequence, _due_at(plan, start, index), amount, kind, index, off)
            for sequence, (kind, index, amount, off) in enumerate(_priced(plan, coupon, periods), 1)
        ]
    except ValidationError as exc:
        if exc.field != "n":
            raise
        # advance() names its own argument; here the caller chose ``periods`` (and the plan).
        raise ValidationError("periods", "the schedule would run past the year 9999") from None


def _due_at(plan: PricingPlan, start: datetime, index: int | None) -> datetime:
    """When the charge for period ``index`` (``None``: the setup fee) of ``plan`` is due."""
    if isinstance(plan, PaymentPlan):
        return plan.period.advance(start, index or 0)
    if isinstance(plan, Subscription) and index is not None:
        # Renewals are anchored to the first period, which a trial pushes back.
        first = start + timedelta(days=plan.trial_days)
        return plan.period.advance(first, index)
    # A one-time price, and a setup fee (due at purchase even during a trial).
    return start


def total_price(plan: PricingPlan, coupon: Coupon | None = None) -> Money | None:
    """What the buyer pays in all, after ``coupon``, or ``None`` when there is no total.

    ``None`` means no finite price exists: :class:`Free` (nothing to pay, and
    no currency to say zero in) and :class:`Subscription` (it renews until
    cancelled; use :func:`schedule` for its charges). As in :func:`schedule`,
    the coupon's expiry and limits are not checked here.

    >>> total_price(PaymentPlan(Money(10000, "USD"), 4, BillingPeriod(Interval.MONTH)),
    ...             Coupon("FIRST", AmountOff(Money(500, "USD"))))
    Money(amount=9500, currency='USD')
    """
    _check_plan(plan)
    if coupon is not None:
        _instance_of("coupon", Coupon)(None, None, coupon)
    if isinstance(plan, (Free, Subscription)):
        return None
    amounts = [amount for _, _, amount, _ in _priced(plan, coupon, 1)]
    return sum(amounts[1:], amounts[0])
