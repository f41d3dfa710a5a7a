"""Pricing plans, their charge schedules and coupons: exact money, anchored dates."""

from __future__ import annotations

import calendar
import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membership_core import Money, ValidationError, structure, unstructure
from membership_core.domain.pricing import (
    MAX_INSTALLMENTS,
    MAX_SCHEDULE_PERIODS,
    AmountOff,
    BillingPeriod,
    Charge,
    ChargeKind,
    Coupon,
    CouponDuration,
    Discount,
    Forever,
    Free,
    Interval,
    Once,
    OneTime,
    PaymentPlan,
    PercentOff,
    PricingPlan,
    Repeating,
    Subscription,
    check_coupon,
    discount_for,
    schedule,
    total_price,
)

USD = "USD"
T0 = datetime(2024, 1, 31, 9, 30, tzinfo=UTC)
MONTHLY = BillingPeriod(Interval.MONTH)

# ----------------------------------------------------------------------- strategies

currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD"])
offsets = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-14 * 60, 14 * 60)
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
)
periods = st.builds(BillingPeriod, st.sampled_from(list(Interval)), st.integers(1, 24))


@st.composite
def plans(draw: st.DrawFn, currency: str | None = None) -> PricingPlan:
    """Any valid plan, optionally in one currency, priced at 1 minor unit or more."""
    code = currency or draw(currencies)
    price = Money(draw(st.integers(1, 10**9)), code)
    kind = draw(st.sampled_from(["free", "one_time", "subscription", "payment_plan"]))
    if kind == "free":
        return Free()
    if kind == "one_time":
        return OneTime(price)
    if kind == "subscription":
        fee = draw(st.none() | st.integers(1, 10**6).map(lambda amount: Money(amount, code)))
        return Subscription(price, draw(periods), draw(st.integers(0, 400)), fee)
    installments = draw(st.integers(2, MAX_INSTALLMENTS))
    total = Money(draw(st.integers(installments, 10**9)), code)
    return PaymentPlan(total, installments, draw(periods))


discounts: st.SearchStrategy[Discount] = st.builds(PercentOff, st.integers(1, 100)) | st.builds(
    AmountOff, st.builds(Money, st.integers(1, 10**6), currencies)
)
durations: st.SearchStrategy[CouponDuration] = (
    st.builds(Once) | st.builds(Forever) | st.builds(Repeating, st.integers(1, 30))
)
coupons = st.builds(
    Coupon,
    code=st.from_regex(r"[A-Za-z0-9_-]{3,40}", fullmatch=True),
    discount=discounts,
    duration=durations,
    expires_at=st.none() | instants,
    max_redemptions=st.none() | st.integers(1, 10**6),
    offer_ids=st.none()
    | st.frozensets(st.from_regex(r"off_[a-z0-9]{1,20}", fullmatch=True), min_size=1),
)


def field_of(info: pytest.ExceptionInfo[ValidationError]) -> str | None:
    return info.value.field


# ----------------------------------------------------------------------- billing periods


def test_months_are_anchored_to_the_start_day_not_added_repeatedly() -> None:
    days = [MONTHLY.advance(T0, n).date().isoformat() for n in range(5)]
    assert days == ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31"]
    # Repeated addition would drift to the 29th for good; anchoring never does.
    assert MONTHLY.advance(MONTHLY.advance(T0)).day == 29
    assert MONTHLY.advance(T0, 2).day == 31
    assert MONTHLY.advance(datetime(2023, 1, 31, tzinfo=UTC)).date().isoformat() == "2023-02-28"


def test_leap_day_plus_years_clamps_then_returns_to_the_29th() -> None:
    leap = datetime(2024, 2, 29, 8, 0, tzinfo=UTC)
    yearly = BillingPeriod(Interval.YEAR)
    assert yearly.advance(leap) == datetime(2025, 2, 28, 8, 0, tzinfo=UTC)
    assert yearly.advance(leap, 4) == datetime(2028, 2, 29, 8, 0, tzinfo=UTC)
    assert BillingPeriod(Interval.MONTH, 12).advance(leap) == datetime(2025, 2, 28, 8, tzinfo=UTC)
    assert yearly.advance(leap, 100) == datetime(2124, 2, 29, 8, 0, tzinfo=UTC)


def test_days_and_weeks_are_exact_and_n_zero_is_the_start() -> None:
    assert BillingPeriod(Interval.DAY, 3).advance(T0, 2) == T0 + timedelta(days=6)
    assert BillingPeriod(Interval.WEEK, 2).advance(T0) == T0 + timedelta(weeks=2)
    assert MONTHLY.advance(T0, 0) == T0


def test_advance_computes_in_utc() -> None:
    # 31 Jan 20:00 in New York (winter, UTC-5) is 1 Feb 01:00 UTC: anchored to the 1st.
    new_york = timezone(timedelta(hours=-5))
    start = datetime(2024, 1, 31, 20, 0, tzinfo=new_york)
    assert MONTHLY.advance(start) == datetime(2024, 3, 1, 1, 0, tzinfo=UTC)
    assert MONTHLY.advance(start).tzinfo is UTC


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: BillingPeriod(Interval.MONTH, 0), "count"),
        (lambda: BillingPeriod(Interval.MONTH, 1001), "count"),
        (lambda: BillingPeriod(Interval.MONTH, True), "count"),
        (lambda: BillingPeriod("month", 1), "unit"),  # type: ignore[arg-type]
        (lambda: MONTHLY.advance(datetime(2024, 1, 1)), "start"),
        (lambda: MONTHLY.advance(T0, -1), "n"),
        (lambda: BillingPeriod(Interval.YEAR, 1000).advance(T0, 9), "n"),
        (lambda: BillingPeriod(Interval.DAY, 1000).advance(T0, 10**6), "n"),
    ],
)
def test_billing_period_errors_name_the_field(build: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert field_of(info) == field


@given(instants, st.integers(0, 240), st.integers(1, 24))
def test_monthly_dates_never_drift_from_the_start_day(start: datetime, k: int, count: int) -> None:
    utc = start.astimezone(UTC)
    due = BillingPeriod(Interval.MONTH, count).advance(start, k)
    year, month = divmod(utc.year * 12 + utc.month - 1 + k * count, 12)
    assert (due.year, due.month) == (year, month + 1)
    assert due.day == min(utc.day, calendar.monthrange(year, month + 1)[1])
    assert due.timetz() == utc.timetz()


@given(instants, st.integers(0, 100))
def test_yearly_dates_never_drift_from_the_start_day(start: datetime, k: int) -> None:
    utc = start.astimezone(UTC)
    due = BillingPeriod(Interval.YEAR).advance(start, k)
    assert (due.year, due.month) == (utc.year + k, utc.month)
    assert due.day == min(utc.day, calendar.monthrange(utc.year + k, utc.month)[1])


# ----------------------------------------------------------------------- plans


def test_valid_plans_at_their_edges() -> None:
    assert PaymentPlan(Money(2, USD), 2, MONTHLY).total == Money(2, USD)
    assert PaymentPlan(Money(120, USD), MAX_INSTALLMENTS, MONTHLY).installments == 120
    plan = Subscription(Money(900, USD), MONTHLY, trial_days=14, setup_fee=Money(500, USD))
    assert plan.kind == "subscription"
    assert "kind" not in repr(plan)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: OneTime(Money(0, USD)), "price"),
        (lambda: OneTime(Money(-100, USD)), "price"),
        (lambda: OneTime(100), "price"),  # type: ignore[arg-type]
        (lambda: OneTime(Money(100, USD), kind="free"), "kind"),  # type: ignore[arg-type]
        (lambda: Subscription(Money(0, USD), MONTHLY), "price"),
        (lambda: Subscription(Money(100, USD), Interval.MONTH), "period"),  # type: ignore[arg-type]
        (lambda: Subscription(Money(100, USD), MONTHLY, trial_days=-1), "trial_days"),
        (lambda: Subscription(Money(100, USD), MONTHLY, trial_days=3651), "trial_days"),
        (lambda: Subscription(Money(100, USD), MONTHLY, setup_fee=Money(0, USD)), "setup_fee"),
        (lambda: Subscription(Money(100, USD), MONTHLY, setup_fee=Money(5, "EUR")), "setup_fee"),
        (lambda: PaymentPlan(Money(0, USD), 3, MONTHLY), "total"),
        (lambda: PaymentPlan(Money(5, USD), 6, MONTHLY), "total"),
        (lambda: PaymentPlan(Money(500, USD), 1, MONTHLY), "installments"),
        (lambda: PaymentPlan(Money(500, USD), 121, MONTHLY), "installments"),
        (lambda: PaymentPlan(Money(500, USD), 2.0, MONTHLY), "installments"),  # type: ignore[arg-type]
        (lambda: PaymentPlan(Money(500, USD), 2, None), "period"),  # type: ignore[arg-type]
    ],
)
def test_plan_errors_name_the_field(build: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert field_of(info) == field


# ----------------------------------------------------------------------- schedules


def test_free_has_no_charges_and_one_time_has_one() -> None:
    assert schedule(Free(), T0) == []
    assert schedule(OneTime(Money(4900, USD)), T0) == [
        Charge(1, T0, Money(4900, USD), ChargeKind.ONE_TIME, 0)
    ]


def test_payment_plan_splits_exactly_larger_parts_first_one_per_period() -> None:
    charges = schedule(PaymentPlan(Money(10000, USD), 3, MONTHLY), T0)
    assert [(c.sequence, c.due_at.date().isoformat(), c.amount.amount) for c in charges] == [
        (1, "2024-01-31", 3334),
        (2, "2024-02-29", 3333),
        (3, "2024-03-31", 3333),
    ]
    assert {c.kind for c in charges} == {ChargeKind.INSTALLMENT}
    # ``periods`` only bounds open-ended subscriptions.
    assert schedule(PaymentPlan(Money(10000, USD), 3, MONTHLY), T0, periods=1) == charges


def test_subscription_setup_fee_and_first_period_at_start_then_renewals() -> None:
    plan = Subscription(Money(900, USD), MONTHLY, setup_fee=Money(500, USD))
    charges = schedule(plan, T0, periods=3)
    assert [(c.sequence, c.kind, c.due_at, c.amount.amount, c.period_index) for c in charges] == [
        (1, ChargeKind.SETUP_FEE, T0, 500, None),
        (2, ChargeKind.FIRST_PERIOD, T0, 900, 0),
        (3, ChargeKind.RENEWAL, datetime(2024, 2, 29, 9, 30, tzinfo=UTC), 900, 1),
        (4, ChargeKind.RENEWAL, datetime(2024, 3, 31, 9, 30, tzinfo=UTC), 900, 2),
    ]
    assert len(schedule(plan, T0)) == 1 + 12


def test_trial_defers_the_first_period_and_anchors_renewals_to_its_end() -> None:
    plan = Subscription(Money(900, USD), MONTHLY, trial_days=14, setup_fee=Money(500, USD))
    charges = schedule(plan, datetime(2024, 1, 17, tzinfo=UTC), periods=3)
    assert [(c.kind, c.due_at.date().isoformat()) for c in charges] == [
        (ChargeKind.SETUP_FEE, "2024-01-17"),  # the fee is not deferred by the trial
        (ChargeKind.FIRST_PERIOD, "2024-01-31"),
        (ChargeKind.RENEWAL, "2024-02-29"),
        (ChargeKind.RENEWAL, "2024-03-31"),
    ]


def test_schedule_due_dates_are_in_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    charges = schedule(OneTime(Money(100, USD)), datetime(2024, 1, 1, 8, 0, tzinfo=tokyo))
    assert charges[0].due_at == datetime(2023, 12, 31, 23, 0, tzinfo=UTC)
    assert charges[0].due_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: schedule(OneTime(Money(1, USD)), T0, periods=0), "periods"),
        (lambda: schedule(OneTime(Money(1, USD)), T0, periods=MAX_SCHEDULE_PERIODS + 1), "periods"),
        (lambda: schedule(OneTime(Money(1, USD)), datetime(2024, 1, 1)), "start"),
        (lambda: schedule(Money(1, USD), T0), "plan"),  # type: ignore[arg-type]
        (lambda: schedule(Free(), T0, coupon="SAVE10"), "coupon"),  # type: ignore[arg-type]
        (lambda: total_price(None), "plan"),  # type: ignore[arg-type]
        (
            lambda: schedule(
                OneTime(Money(1, USD)), T0, coupon=Coupon("X10", AmountOff(Money(1, "EUR")))
            ),
            "coupon",
        ),
        (
            lambda: schedule(Subscription(Money(1, USD), BillingPeriod(Interval.YEAR, 1000)), T0),
            "periods",
        ),
        (lambda: Charge(0, T0, Money(1, USD), ChargeKind.ONE_TIME), "sequence"),
        (lambda: Charge(1, T0, Money(-1, USD), ChargeKind.ONE_TIME), "amount"),
        (lambda: Charge(1, T0, Money(1, USD), "one_time"), "kind"),  # type: ignore[arg-type]
    ],
)
def test_schedule_errors_name_the_field(call: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        call()
    assert field_of(info) == field


@given(currencies, st.integers(2, MAX_INSTALLMENTS), st.integers(0, 10**12), periods, instants)
def test_installments_sum_exactly_to_the_total_and_differ_by_at_most_one(
    currency: str, installments: int, extra: int, period: BillingPeriod, start: datetime
) -> None:
    total = Money(installments + extra, currency)
    charges = schedule(PaymentPlan(total, installments, period), start)
    amounts = [c.amount.amount for c in charges]
    assert len(charges) == installments
    assert sum(amounts) == total.amount
    assert max(amounts) - min(amounts) <= 1
    assert amounts == sorted(amounts, reverse=True)
    assert min(amounts) >= 1
    assert all(c.amount.currency == currency for c in charges)


@given(plans(), instants, st.integers(1, 60))
def test_due_dates_strictly_increase_and_sequences_count_from_one(
    plan: PricingPlan, start: datetime, count: int
) -> None:
    charges = schedule(plan, start, periods=count)
    assert [c.sequence for c in charges] == list(range(1, len(charges) + 1))
    periodic = [c.due_at for c in charges if c.kind is not ChargeKind.SETUP_FEE]
    assert all(a < b for a, b in itertools.pairwise(periodic))
    assert all(c.due_at >= start for c in charges)
    if isinstance(plan, Subscription):
        assert len(periodic) == count
        assert periodic[0] == start + timedelta(days=plan.trial_days)
        if plan.setup_fee is not None:
            assert (charges[0].kind, charges[0].due_at) == (ChargeKind.SETUP_FEE, start)


@given(instants, st.integers(1, 6), st.integers(0, 60), st.integers(1, 48))
def test_monthly_subscription_charges_fall_on_the_anchored_day(
    start: datetime, count: int, trial: int, k: int
) -> None:
    plan = Subscription(Money(1000, USD), BillingPeriod(Interval.MONTH, count), trial_days=trial)
    charges = schedule(plan, start, periods=k)
    anchor = start.astimezone(UTC) + timedelta(days=trial)
    for index, charge in enumerate(charges):
        year, month = divmod(anchor.year * 12 + anchor.month - 1 + index * count, 12)
        assert charge.period_index == index
        assert (charge.due_at.year, charge.due_at.month) == (year, month + 1)
        assert charge.due_at.day == min(anchor.day, calendar.monthrange(year, month + 1)[1])


# ----------------------------------------------------------------------- coupons


def test_coupon_code_is_normalized() -> None:
    assert Coupon("  save_10-x ", PercentOff(10)).code == "SAVE_10-X"
    assert Coupon("a" * 40, PercentOff(10)).code == "A" * 40
    assert Coupon("abc", PercentOff(10)).duration == Once()


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Coupon("ab", PercentOff(10)), "code"),
        (lambda: Coupon("a" * 41, PercentOff(10)), "code"),
        (lambda: Coupon("save 10", PercentOff(10)), "code"),
        (lambda: Coupon("SPAR€", PercentOff(10)), "code"),
        (lambda: Coupon(1234, PercentOff(10)), "code"),  # the converter takes any object
        (lambda: Coupon("SAVE", 10), "discount"),  # type: ignore[arg-type]
        (lambda: Coupon("SAVE", PercentOff(10), 3), "duration"),  # type: ignore[arg-type]
        (lambda: Coupon("SAVE", PercentOff(10), expires_at=datetime(2024, 1, 1)), "expires_at"),
        (lambda: Coupon("SAVE", PercentOff(10), max_redemptions=0), "max_redemptions"),
        (lambda: Coupon("SAVE", PercentOff(10), offer_ids=[]), "offer_ids"),
        (lambda: Coupon("SAVE", PercentOff(10), offer_ids="off_1"), "offer_ids"),
        (lambda: Coupon("SAVE", PercentOff(10), offer_ids=["prod_1"]), "offer_ids"),
        (lambda: Coupon("SAVE", PercentOff(10), offer_ids=5), "offer_ids"),  # type: ignore[arg-type]
        (lambda: PercentOff(0), "percent"),
        (lambda: PercentOff(101), "percent"),
        (lambda: AmountOff(Money(0, USD)), "amount"),
        (lambda: Repeating(0), "periods"),
        (lambda: Once(kind="forever"), "kind"),  # type: ignore[arg-type]
    ],
)
def test_coupon_errors_name_the_field(build: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert field_of(info) == field


def test_offer_ids_become_a_frozenset() -> None:
    coupon = Coupon("SAVE", PercentOff(10), offer_ids=["off_1", "off_2", "off_1"])
    assert coupon.offer_ids == frozenset({"off_1", "off_2"})


def test_expiry_is_exclusive() -> None:
    expires = datetime(2024, 6, 1, tzinfo=UTC)
    coupon = Coupon("SUMMER", PercentOff(10), expires_at=expires)
    assert coupon.applies_to("off_1", expires - timedelta(microseconds=1), 0)
    assert not coupon.applies_to("off_1", expires, 0)
    # The same instant in another zone is still the same instant.
    assert not coupon.applies_to("off_1", expires.astimezone(timezone(timedelta(hours=2))), 0)
    with pytest.raises(ValidationError, match="SUMMER expired at 2024-06-01") as info:
        check_coupon(coupon, "off_1", expires, 0)
    assert field_of(info) == "coupon"


def test_max_redemptions_reached_exactly() -> None:
    coupon = Coupon("FIRST5", PercentOff(10), max_redemptions=5)
    assert coupon.applies_to("off_1", T0, 4)
    assert not coupon.applies_to("off_1", T0, 5)
    with pytest.raises(ValidationError, match="limit of 5") as info:
        check_coupon(coupon, "off_1", T0, 5)
    assert field_of(info) == "coupon"


def test_coupon_restricted_to_offers() -> None:
    coupon = Coupon("VIP", PercentOff(10), offer_ids={"off_1"})
    assert coupon.applies_to("off_1", T0, 0)
    assert Coupon("ANY", PercentOff(10)).applies_to("off_2", T0, 0)
    with pytest.raises(ValidationError, match="not valid for this offer") as info:
        check_coupon(coupon, "off_2", T0, 0)
    assert field_of(info) == "coupon"


def test_amount_off_only_applies_in_its_currency() -> None:
    coupon = Coupon("TENUSD", AmountOff(Money(1000, USD)))
    assert coupon.currency == USD
    assert coupon.applies_to("off_1", T0, 0, currency=USD)
    assert not coupon.applies_to("off_1", T0, 0, currency="EUR")
    assert Coupon("TENPC", PercentOff(10)).applies_to("off_1", T0, 0, currency="EUR")
    with pytest.raises(ValidationError, match="takes USD off, but the price is in EUR") as info:
        check_coupon(coupon, "off_1", T0, 0, currency="EUR")
    assert field_of(info) == "coupon"
    with pytest.raises(ValidationError) as info:
        discount_for(coupon, Money(5000, "EUR"), 0)
    assert field_of(info) == "coupon"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.applies_to("off_1", datetime(2024, 1, 1), 0), "at"),
        (lambda c: c.applies_to("off_1", T0, -1), "redemptions_so_far"),
        (lambda c: c.applies_to("", T0, 0), "offer_id"),
        (lambda c: check_coupon("SAVE", "off_1", T0, 0), "coupon"),  # type: ignore[arg-type]
        (lambda c: discount_for(c, Money(-1, USD), 0), "amount"),
        (lambda c: discount_for(c, 100, 0), "amount"),  # type: ignore[arg-type]
        (lambda c: discount_for(c, Money(100, USD), -1), "period_index"),
    ],
)
def test_malformed_arguments_are_errors_not_a_no(call: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        call(Coupon("SAVE", PercentOff(10)))
    assert field_of(info) == field


def test_percent_discount_is_rounded_down_in_the_sellers_favour() -> None:
    ten = Coupon("TEN", PercentOff(10))
    assert discount_for(ten, Money(999, USD), 0) == Money(99, USD)  # exactly 99.9
    assert discount_for(ten, Money(9, USD), 0) == Money(0, USD)  # exactly 0.9
    assert discount_for(Coupon("ALL", PercentOff(100)), Money(999, USD), 0) == Money(999, USD)
    assert discount_for(ten, Money(0, USD), 0) == Money(0, USD)


def test_amount_off_is_capped_at_the_amount() -> None:
    coupon = Coupon("BIG", AmountOff(Money(5000, USD)), Forever())
    assert discount_for(coupon, Money(1200, USD), 3) == Money(1200, USD)
    assert discount_for(coupon, Money(9000, USD), 0) == Money(5000, USD)


def test_duration_decides_which_periods_are_discounted() -> None:
    amount = Money(1000, USD)
    once, forever = Coupon("ONCE", PercentOff(50)), Coupon("EVER", PercentOff(50), Forever())
    three = Coupon("THREE", PercentOff(50), Repeating(3))
    assert [discount_for(once, amount, i).amount for i in range(4)] == [500, 0, 0, 0]
    assert [discount_for(three, amount, i).amount for i in range(4)] == [500, 500, 500, 0]
    assert [discount_for(forever, amount, i).amount for i in range(4)] == [500] * 4


def test_setup_fee_is_never_discounted() -> None:
    plan = Subscription(Money(900, USD), MONTHLY, setup_fee=Money(500, USD))
    coupon = Coupon("FREE", PercentOff(100), Forever())
    charges = schedule(plan, T0, coupon=coupon, periods=3)
    assert [(c.kind, c.amount.amount, c.discount) for c in charges] == [
        (ChargeKind.SETUP_FEE, 500, None),
        (ChargeKind.FIRST_PERIOD, 0, Money(900, USD)),
        (ChargeKind.RENEWAL, 0, Money(900, USD)),
        (ChargeKind.RENEWAL, 0, Money(900, USD)),
    ]


def test_coupon_on_a_payment_plan_and_a_one_time_price() -> None:
    plan = PaymentPlan(Money(30000, USD), 3, MONTHLY)
    once = Coupon("ONCE", AmountOff(Money(5000, USD)))
    assert [c.amount.amount for c in schedule(plan, T0, coupon=once)] == [5000, 10000, 10000]
    two = Coupon("TWO", PercentOff(10), Repeating(2))
    assert [c.amount.amount for c in schedule(plan, T0, coupon=two)] == [9000, 9000, 10000]
    assert total_price(plan, two) == Money(28000, USD)
    single = schedule(OneTime(Money(4900, USD)), T0, coupon=Coupon("HALF", PercentOff(50)))
    assert [(c.amount.amount, c.discount) for c in single] == [(2450, Money(2450, USD))]


def test_total_price() -> None:
    assert total_price(Free()) is None
    assert total_price(Subscription(Money(900, USD), MONTHLY)) is None  # open-ended
    assert total_price(OneTime(Money(4900, USD))) == Money(4900, USD)
    assert total_price(OneTime(Money(4900, USD)), Coupon("ALL", PercentOff(100))) == Money(0, USD)
    # Each installment's discount is rounded down on its own: 3334*10% -> 333, 3333 -> 333.
    plan = PaymentPlan(Money(10000, USD), 3, MONTHLY)
    assert total_price(plan) == Money(10000, USD)
    assert total_price(plan, Coupon("TEN", PercentOff(10), Forever())) == Money(9001, USD)


@given(coupons, st.integers(0, 10**12), st.integers(0, 50))
def test_discounts_never_exceed_the_amount(coupon: Coupon, amount: int, index: int) -> None:
    currency = coupon.currency or "EUR"
    off = discount_for(coupon, Money(amount, currency), index)
    assert 0 <= off.amount <= amount
    assert (Money(amount, currency) - off).amount >= 0


@given(st.integers(1, 100), st.integers(0, 10**12), currencies)
def test_percent_discount_is_within_one_minor_unit_below_the_exact_value(
    percent: int, amount: int, currency: str
) -> None:
    off = discount_for(Coupon("PCT", PercentOff(percent)), Money(amount, currency), 0).amount
    exact_times_100 = amount * percent
    # off <= exact < off + 1, without leaving integers.
    assert off * 100 <= exact_times_100 < (off + 1) * 100


@given(plans(), coupons, instants, st.integers(1, 40))
def test_schedule_with_a_coupon_never_charges_below_zero_and_loses_nothing(
    plan: PricingPlan, coupon: Coupon, start: datetime, count: int
) -> None:
    if coupon.currency is not None and not isinstance(plan, Free):
        plan = _in_currency(plan, coupon.currency)
    plain = schedule(plan, start, periods=count)
    charges = schedule(plan, start, coupon=coupon, periods=count)
    assert len(charges) == len(plain)
    for before, after in zip(plain, charges, strict=True):
        assert after.amount.amount >= 0
        off = after.discount.amount if after.discount is not None else 0
        assert off > 0 or after.discount is None
        assert after.amount.amount + off == before.amount.amount
        assert (after.due_at, after.kind, after.sequence) == (
            before.due_at,
            before.kind,
            before.sequence,
        )
    total = total_price(plan, coupon)
    if isinstance(plan, (OneTime, PaymentPlan)):
        assert total is not None
        assert total.amount == sum(c.amount.amount for c in charges)
    else:
        assert total is None


def _in_currency(plan: PricingPlan, currency: str) -> PricingPlan:
    if isinstance(plan, OneTime):
        return OneTime(Money(plan.price.amount, currency))
    if isinstance(plan, Subscription):
        fee = None if plan.setup_fee is None else Money(plan.setup_fee.amount, currency)
        return Subscription(Money(plan.price.amount, currency), plan.period, plan.trial_days, fee)
    if isinstance(plan, PaymentPlan):
        return PaymentPlan(Money(plan.total.amount, currency), plan.installments, plan.period)
    return plan


def _expected_discounted(duration: CouponDuration, charged_periods: int) -> int:
    if isinstance(duration, Once):
        return 1
    if isinstance(duration, Repeating):
        return min(duration.periods, charged_periods)
    return charged_periods


@given(
    durations,
    st.integers(1, 100),
    st.integers(100, 10**6),
    st.integers(1, 60),
    st.booleans(),
    instants,
)
def test_discounted_subscription_periods_follow_the_duration(
    duration: CouponDuration, percent: int, price: int, count: int, fee: bool, start: datetime
) -> None:
    # 100 minor units or more: 1 % of it is at least one unit, so every covered
    # period shows a discount.
    plan = Subscription(Money(price, USD), MONTHLY, setup_fee=Money(100, USD) if fee else None)
    charges = schedule(
        plan, start, coupon=Coupon("DUR", PercentOff(percent), duration), periods=count
    )
    discounted = [c.period_index for c in charges if c.discount is not None]
    assert discounted == list(range(_expected_discounted(duration, count)))


@given(durations, st.integers(1, 100), st.integers(2, MAX_INSTALLMENTS), st.integers(0, 10**6))
def test_discounted_installments_follow_the_duration(
    duration: CouponDuration, percent: int, installments: int, extra: int
) -> None:
    plan = PaymentPlan(Money(100 * installments + extra, USD), installments, MONTHLY)
    charges = schedule(plan, T0, coupon=Coupon("DUR", PercentOff(percent), duration))
    discounted = [c.period_index for c in charges if c.discount is not None]
    assert discounted == list(range(_expected_discounted(duration, installments)))


# ----------------------------------------------------------------------- serialization


def _round_trip(value: object, cls: Any) -> object:
    return structure(json.loads(json.dumps(unstructure(value))), cls)


@given(plans())
def test_plans_round_trip_as_themselves_and_as_the_union(plan: PricingPlan) -> None:
    assert _round_trip(plan, type(plan)) == plan
    assert _round_trip(plan, PricingPlan) == plan
    kinds = {Free: "free", OneTime: "one_time", Subscription: "subscription"}
    assert unstructure(plan)["kind"] == kinds.get(type(plan), "payment_plan")


@given(coupons)
def test_coupons_round_trip(coupon: Coupon) -> None:
    assert _round_trip(coupon, Coupon) == coupon
    assert _round_trip(coupon.discount, Discount) == coupon.discount
    assert _round_trip(coupon.duration, CouponDuration) == coupon.duration


@given(plans(currency=USD), instants)
def test_charges_round_trip(plan: PricingPlan, start: datetime) -> None:
    coupon = Coupon("RT30", PercentOff(30), Repeating(2))
    charges = schedule(plan, start, coupon=coupon, periods=3)
    assert _round_trip(charges, list[Charge]) == charges


def test_serialized_forms_are_self_describing() -> None:
    coupon = Coupon("rt10", AmountOff(Money(1000, USD)), Repeating(3), offer_ids={"off_b", "off_a"})
    assert unstructure(coupon) == {
        "code": "RT10",
        "discount": {"kind": "amount_off", "amount": {"amount": 1000, "currency": USD}},
        "duration": {"kind": "repeating", "periods": 3},
        "expires_at": None,
        "max_redemptions": None,
        "offer_ids": ["off_a", "off_b"],
    }
    assert unstructure(PaymentPlan(Money(100, USD), 2, BillingPeriod(Interval.WEEK, 2))) == {
        "kind": "payment_plan",
        "total": {"amount": 100, "currency": USD},
        "installments": 2,
        "period": {"unit": "week", "count": 2},
    }


def test_structuring_bad_data_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        structure({"code": "ab", "discount": {"kind": "percent_off", "percent": 10}}, Coupon)
    assert info.value.field == "Coupon.code"
    data = {"price": {"amount": 0, "currency": USD}, "kind": "one_time"}
    with pytest.raises(ValidationError) as info:
        structure(data, OneTime)
    assert info.value.field == "OneTime.price"
