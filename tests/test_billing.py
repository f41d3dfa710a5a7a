"""Recurring billing after checkout: renewals, installments, dunning, cancellation."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from membership_core import Money
from membership_core.domain.billing import (
    RETRY_GRACE,
    Billing,
    BillingStatus,
    DunningPolicy,
    access_ends_at,
    cancel,
    charge_for,
    due,
    record_failure,
    record_success,
    start,
)
from membership_core.domain.pricing import (
    AmountOff,
    BillingPeriod,
    Charge,
    ChargeKind,
    Coupon,
    CouponDuration,
    Discount,
    Forever,
    Interval,
    Once,
    PaymentPlan,
    PercentOff,
    Repeating,
    Subscription,
    schedule,
    total_price,
)
from membership_core.errors import Conflict, ValidationError

USD = "USD"
T0 = datetime(2024, 1, 31, 9, 30, tzinfo=UTC)
MONTHLY = BillingPeriod(Interval.MONTH)
SUB = Subscription(Money(900, USD), MONTHLY)
SUB_FEE_TRIAL = Subscription(Money(900, USD), MONTHLY, trial_days=14, setup_fee=Money(500, USD))
PLAN = PaymentPlan(Money(10000, USD), 3, MONTHLY)
IDS: dict[str, str] = {"purchase_id": "pur_1", "member_id": "mem_1", "offer_id": "off_1"}


def begin(
    plan: Subscription | PaymentPlan, coupon: Coupon | None = None, now: datetime = T0
) -> Billing:
    """The billing of a purchase of ``plan`` at ``now`` (initial charges paid)."""
    billing, _ = start("bil_1", plan=plan, coupon=coupon, now=now, **IDS)
    return billing


def day(n: int) -> datetime:
    """``n`` days after T0."""
    return T0 + timedelta(days=n)


# ----------------------------------------------------------------------- strategies

offsets = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-14 * 60, 14 * 60)
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
)
periods = st.builds(BillingPeriod, st.sampled_from(list(Interval)), st.integers(1, 6))
subscriptions = st.builds(
    Subscription,
    st.integers(1, 10**6).map(lambda amount: Money(amount, USD)),
    periods,
    st.sampled_from([0, 0, 1, 7, 30]),
    st.none() | st.integers(1, 10**4).map(lambda amount: Money(amount, USD)),
)
payment_plans = st.integers(2, 12).flatmap(
    lambda n: st.builds(
        PaymentPlan,
        st.integers(n, 10**6).map(lambda amount: Money(amount, USD)),
        st.just(n),
        periods,
    )
)
# Few installments, so that random runs often pay a plan off.
short_plans = st.integers(2, 5).flatmap(
    lambda n: st.builds(
        PaymentPlan,
        st.integers(n, 10**6).map(lambda amount: Money(amount, USD)),
        st.just(n),
        periods,
    )
)
discounts: st.SearchStrategy[Discount] = st.builds(PercentOff, st.integers(1, 100)) | st.builds(
    AmountOff, st.integers(1, 10**5).map(lambda amount: Money(amount, USD))
)
durations: st.SearchStrategy[CouponDuration] = (
    st.builds(Once) | st.builds(Forever) | st.builds(Repeating, st.integers(1, 6))
)
coupons = st.none() | st.builds(Coupon, st.just("SAVE"), discounts, durations)
policies = st.builds(
    DunningPolicy,
    st.integers(1, 5),
    st.integers(1, 20 * 24).map(lambda hours: timedelta(hours=hours)),
)


# ----------------------------------------------------------------------- start


def test_start_subscription_without_trial_charges_the_first_period_now() -> None:
    billing, charges = start("bil_1", plan=SUB, coupon=None, now=T0, **IDS)
    assert [(c.sequence, c.kind, c.amount) for c in charges] == [
        (1, ChargeKind.FIRST_PERIOD, Money(900, USD))
    ]
    assert billing.status is BillingStatus.ACTIVE
    assert billing.paid_through == datetime(2024, 2, 29, 9, 30, tzinfo=UTC)
    assert billing.next_sequence == 2
    assert billing.next_charge_at == billing.paid_through
    assert (billing.failed_attempts, billing.first_failed_at) == (0, None)
    assert (billing.canceled_at, billing.ended_at) == (None, None)
    assert billing.started_at == billing.updated_at == T0


def test_start_subscription_with_fee_and_no_trial_charges_both() -> None:
    plan = attrs.evolve(SUB_FEE_TRIAL, trial_days=0)
    billing, charges = start("bil_1", plan=plan, coupon=None, now=T0, **IDS)
    assert [c.kind for c in charges] == [ChargeKind.SETUP_FEE, ChargeKind.FIRST_PERIOD]
    assert billing.next_sequence == 3
    assert charge_for(billing, 3).kind is ChargeKind.RENEWAL


def test_start_subscription_with_trial_charges_only_the_fee() -> None:
    billing, charges = start("bil_1", plan=SUB_FEE_TRIAL, coupon=None, now=T0, **IDS)
    assert [(c.kind, c.amount) for c in charges] == [(ChargeKind.SETUP_FEE, Money(500, USD))]
    assert billing.status is BillingStatus.TRIALING
    assert billing.paid_through == billing.next_charge_at == day(14)
    assert billing.next_sequence == 2
    assert charge_for(billing, 2).kind is ChargeKind.FIRST_PERIOD


def test_start_trial_without_fee_charges_nothing() -> None:
    billing, charges = start(
        "bil_1", plan=attrs.evolve(SUB_FEE_TRIAL, setup_fee=None), coupon=None, now=T0, **IDS
    )
    assert charges == []
    assert billing.next_sequence == 1


def test_start_payment_plan_charges_the_first_installment() -> None:
    billing, charges = start("bil_1", plan=PLAN, coupon=None, now=T0, **IDS)
    assert [(c.sequence, c.amount) for c in charges] == [(1, Money(3334, USD))]
    assert billing.status is BillingStatus.ACTIVE
    assert billing.paid_through is None
    assert billing.next_sequence == 2
    assert billing.next_charge_at == datetime(2024, 2, 29, 9, 30, tzinfo=UTC)


def test_start_applies_the_coupon_and_stores_utc() -> None:
    coupon = Coupon("HALF", PercentOff(50))
    local = T0.astimezone(timezone(timedelta(hours=-5)))
    billing, charges = start("bil_1", plan=SUB, coupon=coupon, now=local, **IDS)
    assert charges[0].amount == Money(450, USD)
    assert billing.started_at.tzinfo is UTC
    assert billing.started_at == T0
    # Once: the first renewal is full price.
    assert charge_for(billing, 2).amount == Money(900, USD)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"plan": Money(900, USD)}, "plan"),
        ({"coupon": "SAVE"}, "coupon"),
        ({"now": datetime(2024, 1, 1)}, "now"),
        ({"id": "pur_1"}, "id"),
        ({"purchase_id": "bil_1"}, "purchase_id"),
        ({"member_id": ""}, "member_id"),
        ({"offer_id": None}, "offer_id"),
    ],
)
def test_start_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"id": "bil_1", "plan": SUB, "coupon": None, "now": T0, **IDS}
    arguments.update(change)
    with pytest.raises(ValidationError) as info:
        start(**arguments)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "active"}, "status"),
        ({"next_sequence": 0}, "next_sequence"),
        ({"failed_attempts": -1}, "failed_attempts"),
        ({"failed_attempts": True}, "failed_attempts"),
        ({"paid_through": datetime(2024, 1, 1)}, "paid_through"),
        ({"started_at": None}, "started_at"),
        ({"updated_at": datetime(2024, 1, 1)}, "updated_at"),
        ({"ended_at": "soon"}, "ended_at"),
    ],
)
def test_billing_field_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        attrs.evolve(begin(SUB), **change)
    assert info.value.field == field


def test_a_payment_plan_has_no_paid_through_and_no_trial() -> None:
    with pytest.raises(ValidationError) as info:
        attrs.evolve(begin(PLAN), paid_through=T0)
    assert info.value.field == "paid_through"
    with pytest.raises(ValidationError) as info:
        attrs.evolve(begin(PLAN), status=BillingStatus.TRIALING)
    assert info.value.field == "status"


# ----------------------------------------------------------------------- charge_for


def test_charge_for_far_renewals_without_building_the_schedule() -> None:
    billing = begin(SUB_FEE_TRIAL)
    charge = charge_for(billing, 1001)
    assert charge.kind is ChargeKind.RENEWAL
    assert charge.period_index == 999
    assert charge.due_at == MONTHLY.advance(day(14), 999)
    assert charge_for(billing, 1) == schedule(SUB_FEE_TRIAL, T0)[0]


def test_charge_for_payment_plan_installments_and_errors() -> None:
    billing = begin(PLAN)
    assert [charge_for(billing, n).amount.amount for n in (1, 2, 3)] == [3334, 3333, 3333]
    with pytest.raises(ValidationError) as info:
        charge_for(billing, 4)
    assert info.value.field == "sequence"
    with pytest.raises(ValidationError) as info:
        charge_for(billing, 0)
    assert info.value.field == "sequence"


def test_charge_for_past_the_year_9999_names_the_sequence() -> None:
    billing = begin(Subscription(Money(900, USD), BillingPeriod(Interval.YEAR, 1000)))
    with pytest.raises(ValidationError) as info:
        charge_for(billing, 10)
    assert info.value.field == "sequence"


@given(st.one_of(subscriptions, payment_plans), coupons, instants, st.integers(1, 300))
def test_charge_for_equals_the_schedule_entry(
    plan: Subscription | PaymentPlan, coupon: Coupon | None, now: datetime, sequence: int
) -> None:
    billing = begin(plan, coupon, now)
    if isinstance(plan, PaymentPlan):
        sequence = min(sequence, plan.installments)
    try:
        expected = schedule(plan, billing.started_at, coupon=coupon, periods=sequence)
    except ValidationError:
        # The schedule would run past the year 9999: so would the charge.
        with pytest.raises(ValidationError) as info:
            charge_for(billing, sequence)
        assert info.value.field == "sequence"
        return
    assert charge_for(billing, sequence) == expected[sequence - 1]


# ----------------------------------------------------------------------- due


def test_due_only_when_the_next_charge_has_come() -> None:
    billing = begin(SUB)
    assert due(billing, day(28)) is None
    charge = due(billing, datetime(2024, 2, 29, 9, 30, tzinfo=UTC))
    assert charge is not None
    assert (charge.sequence, charge.kind) == (2, ChargeKind.RENEWAL)


def test_nothing_is_due_once_canceled_or_completed() -> None:
    assert due(cancel(begin(SUB), day(1)), day(400)) is None
    billing = begin(PLAN)
    billing = record_success(billing, 2, day(30))
    billing = record_success(billing, 3, day(60))
    assert billing.status is BillingStatus.COMPLETED
    assert due(billing, day(400)) is None


def test_a_past_due_retry_is_the_same_charge() -> None:
    billing = begin(SUB)
    billing = record_failure(billing, 2, day(29))
    assert billing.next_charge_at is not None
    assert due(billing, billing.next_charge_at - timedelta(seconds=1)) is None
    charge = due(billing, billing.next_charge_at)
    assert charge is not None
    assert charge.sequence == 2
    assert charge.due_at == datetime(2024, 2, 29, 9, 30, tzinfo=UTC)


# ----------------------------------------------------------------------- record_success


def test_success_renews_anchored_to_the_schedule_not_the_payment_time() -> None:
    billing = begin(SUB)
    # Paid 5 days late: the next period still ends on the 31st of March.
    billing = record_success(billing, 2, datetime(2024, 3, 5, tzinfo=UTC))
    assert billing.paid_through == datetime(2024, 3, 31, 9, 30, tzinfo=UTC)
    assert billing.next_charge_at == billing.paid_through
    assert billing.next_sequence == 3
    assert billing.updated_at == datetime(2024, 3, 5, tzinfo=UTC)


def test_success_after_the_trial_activates() -> None:
    billing = begin(SUB_FEE_TRIAL)
    billing = record_success(billing, 2, day(14))
    assert billing.status is BillingStatus.ACTIVE
    assert billing.paid_through == MONTHLY.advance(day(14))
    assert billing.next_sequence == 3


def test_success_while_past_due_resets_dunning() -> None:
    billing = record_failure(begin(SUB), 2, day(29))
    billing = record_failure(billing, 2, day(31))
    assert (billing.status, billing.failed_attempts) == (BillingStatus.PAST_DUE, 2)
    billing = record_success(billing, 2, day(32))
    assert billing.status is BillingStatus.ACTIVE
    assert (billing.failed_attempts, billing.first_failed_at) == (0, None)
    assert billing.paid_through == datetime(2024, 3, 31, 9, 30, tzinfo=UTC)


def test_payment_plan_completes_after_the_last_installment() -> None:
    billing = record_success(begin(PLAN), 2, day(29))
    assert billing.status is BillingStatus.ACTIVE
    assert billing.next_charge_at == datetime(2024, 3, 31, 9, 30, tzinfo=UTC)
    billing = record_success(billing, 3, day(60))
    assert billing.status is BillingStatus.COMPLETED
    assert billing.next_charge_at is None
    assert billing.next_sequence == 4
    assert billing.paid_through is None


def test_success_of_another_charge_is_a_conflict() -> None:
    with pytest.raises(Conflict, match="not the next charge"):
        record_success(begin(SUB), 3, day(29))
    with pytest.raises(Conflict):
        record_failure(begin(SUB), 1, day(29))


@pytest.mark.parametrize(
    "ended",
    [
        lambda: cancel(begin(SUB), day(1)),
        lambda: cancel(begin(PLAN), day(1)),
        lambda: record_failure(begin(SUB), 2, day(29), DunningPolicy(max_attempts=1)),
        lambda: record_success(record_success(begin(PLAN), 2, day(29)), 3, day(60)),
    ],
)
def test_no_outcome_can_be_recorded_once_ended(ended: Any) -> None:
    billing: Billing = ended()
    with pytest.raises(Conflict, match=billing.status.value):
        record_success(billing, billing.next_sequence, day(90))
    with pytest.raises(Conflict):
        record_failure(billing, billing.next_sequence, day(90))


def test_outcome_arguments_are_validated() -> None:
    with pytest.raises(ValidationError) as info:
        record_success(begin(SUB), "2", day(29))  # type: ignore[arg-type]
    assert info.value.field == "sequence"
    with pytest.raises(ValidationError) as info:
        record_failure(begin(SUB), 2, datetime(2024, 3, 1))
    assert info.value.field == "now"
    with pytest.raises(ValidationError) as info:
        record_failure(begin(SUB), 2, day(29), policy=None)  # type: ignore[arg-type]
    assert info.value.field == "policy"


# ----------------------------------------------------------------------- record_failure


def test_failures_follow_the_dunning_policy_then_default() -> None:
    policy = DunningPolicy(max_attempts=3, within=timedelta(days=10))
    billing = begin(SUB)
    first = datetime(2024, 2, 29, 10, tzinfo=UTC)
    billing = record_failure(billing, 2, first, policy)
    assert billing.status is BillingStatus.PAST_DUE
    assert (billing.failed_attempts, billing.first_failed_at) == (1, first)
    assert billing.next_charge_at == first + timedelta(days=5)
    # Past due keeps access while retries are scheduled: to a grace after the next one.
    assert access_ends_at(billing) == first + timedelta(days=5) + RETRY_GRACE
    billing = record_failure(billing, 2, first + timedelta(days=5, hours=1), policy)
    assert billing.first_failed_at == first
    assert billing.next_charge_at == first + timedelta(days=10)
    last = first + timedelta(days=10, minutes=3)
    billing = record_failure(billing, 2, last, policy)
    assert billing.status is BillingStatus.DEFAULTED
    assert billing.failed_attempts == 3
    assert billing.next_charge_at is None
    # Access is suspended once the last retry failed, not before.
    assert billing.ended_at == last
    assert access_ends_at(billing) == last


def test_a_payment_plan_default_ends_access_now() -> None:
    billing = record_failure(begin(PLAN), 2, day(30), DunningPolicy(max_attempts=1))
    assert billing.status is BillingStatus.DEFAULTED
    assert billing.ended_at == day(30)
    assert access_ends_at(billing) == day(30)


def test_a_failed_trial_conversion_is_past_due() -> None:
    billing = record_failure(begin(SUB_FEE_TRIAL), 2, day(14))
    assert billing.status is BillingStatus.PAST_DUE
    assert billing.next_charge_at == day(16)
    assert access_ends_at(billing) == day(16) + RETRY_GRACE


def test_a_default_recorded_early_keeps_the_paid_period() -> None:
    billing = record_failure(begin(SUB), 2, day(3), DunningPolicy(max_attempts=1))
    assert billing.status is BillingStatus.DEFAULTED
    assert billing.ended_at == billing.paid_through


# ----------------------------------------------------------------------- DunningPolicy


def test_default_policy_spreads_seven_retries_over_fourteen_days() -> None:
    policy = DunningPolicy()
    retries = [policy.retry_at(T0, n) for n in range(1, 8)]
    assert retries == [T0 + timedelta(days=2 * n) for n in range(1, 8)]
    assert policy.retry_at(T0, 8) is None


def test_a_single_attempt_policy_never_retries() -> None:
    assert DunningPolicy(max_attempts=1).retry_at(T0, 1) is None


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: DunningPolicy(max_attempts=0), "max_attempts"),
        (lambda: DunningPolicy(max_attempts=51), "max_attempts"),
        (lambda: DunningPolicy(max_attempts=True), "max_attempts"),
        (lambda: DunningPolicy(within=timedelta(0)), "within"),
        (lambda: DunningPolicy(within=timedelta(days=-1)), "within"),
        (lambda: DunningPolicy(within=14), "within"),
        (lambda: DunningPolicy().retry_at(T0, 0), "failed_attempts"),
        (lambda: DunningPolicy().retry_at(datetime(2024, 1, 1), 1), "first_failed_at"),
    ],
)
def test_dunning_policy_errors_name_the_field(build: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.field == field


@given(
    st.integers(1, 50),
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=365)),
    instants,
)
def test_retries_increase_and_the_last_is_exactly_within(
    max_attempts: int, within: timedelta, first: datetime
) -> None:
    policy = DunningPolicy(max_attempts, within)
    retries = []
    failures = 1
    while (retry := policy.retry_at(first, failures)) is not None:
        retries.append(retry)
        failures += 1
    assert len(retries) == max_attempts - 1
    assert all(earlier < later for earlier, later in itertools.pairwise([first, *retries]))
    if retries:
        assert retries[-1] == first + within


# ----------------------------------------------------------------------- cancel


def test_cancel_at_period_end_keeps_paid_access() -> None:
    billing = cancel(begin(SUB), day(3))
    assert billing.status is BillingStatus.CANCELED
    assert billing.canceled_at == day(3)
    assert billing.ended_at == billing.paid_through == datetime(2024, 2, 29, 9, 30, tzinfo=UTC)
    assert billing.next_charge_at is None
    assert access_ends_at(billing) == billing.ended_at


def test_cancel_a_trial_at_period_end_runs_to_the_trial_end() -> None:
    billing = cancel(begin(SUB_FEE_TRIAL), day(3))
    assert billing.ended_at == day(14)


def test_cancel_immediately_ends_access_now() -> None:
    billing = cancel(begin(SUB), day(3), at_period_end=False)
    assert billing.ended_at == day(3)
    assert access_ends_at(billing) == day(3)


def test_cancel_immediately_while_past_due_never_extends_access() -> None:
    billing = record_failure(begin(SUB), 2, day(29))
    billing = cancel(billing, day(35), at_period_end=False)
    assert billing.ended_at == billing.paid_through


@pytest.mark.parametrize("at_period_end", [True, False])
def test_cancel_a_payment_plan_ends_access_now(at_period_end: bool) -> None:
    billing = cancel(begin(PLAN), day(10), at_period_end=at_period_end)
    assert billing.status is BillingStatus.CANCELED
    assert billing.ended_at == day(10)
    assert access_ends_at(billing) == day(10)
    # Either mode means the same for a plan, so repeating in either is harmless.
    assert cancel(billing, day(11), at_period_end=not at_period_end) is billing


@pytest.mark.parametrize("at_period_end", [True, False])
def test_cancel_again_in_the_same_mode_is_idempotent(at_period_end: bool) -> None:
    billing = cancel(begin(SUB), day(3), at_period_end=at_period_end)
    assert cancel(billing, day(5), at_period_end=at_period_end) is billing
    with pytest.raises(Conflict, match="already canceled"):
        cancel(billing, day(5), at_period_end=not at_period_end)


@pytest.mark.parametrize(
    "ended",
    [
        lambda: record_failure(begin(SUB), 2, day(29), DunningPolicy(max_attempts=1)),
        lambda: record_success(record_success(begin(PLAN), 2, day(29)), 3, day(60)),
    ],
)
def test_cancel_after_the_end_is_a_conflict(ended: Any) -> None:
    billing: Billing = ended()
    with pytest.raises(Conflict, match=billing.status.value):
        cancel(billing, day(90))


def test_cancel_arguments_are_validated() -> None:
    with pytest.raises(ValidationError) as info:
        cancel(begin(SUB), day(1), at_period_end=None)  # type: ignore[arg-type]
    assert info.value.field == "at_period_end"
    with pytest.raises(ValidationError) as info:
        cancel(begin(SUB), datetime(2024, 2, 1))
    assert info.value.field == "now"


# ----------------------------------------------------------------------- access


def test_access_of_a_running_or_completed_payment_plan_is_unbounded() -> None:
    billing = begin(PLAN)
    assert access_ends_at(billing) is None
    assert access_ends_at(record_failure(billing, 2, day(29))) is None
    completed = record_success(record_success(billing, 2, day(29)), 3, day(60))
    assert access_ends_at(completed) is None


def test_access_of_a_running_subscription_is_paid_through() -> None:
    billing = begin(SUB)
    assert access_ends_at(billing) == billing.paid_through
    assert access_ends_at(begin(SUB_FEE_TRIAL)) == day(14)


# ----------------------------------------------------------------------- state machine

STEPS = [
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=3),
    timedelta(days=10),
    timedelta(days=31),
]


class BillingMachine(RuleBasedStateMachine):
    """Random lives of one billing: time passes, charges succeed or fail, members cancel."""

    def __init__(self) -> None:
        super().__init__()
        self.billing: Billing
        self.now: datetime
        self.policy: DunningPolicy
        self.paid: list[Money] = []
        self.successes = 0
        self.first_next_sequence = 0
        self.last_paid_through: datetime | None = None

    @initialize(plan=st.one_of(subscriptions, short_plans), coupon=coupons, policy=policies)
    def begin(
        self, plan: Subscription | PaymentPlan, coupon: Coupon | None, policy: DunningPolicy
    ) -> None:
        self.now = T0
        self.policy = policy
        self.billing, charges = start("bil_1", plan=plan, coupon=coupon, now=T0, **IDS)
        self.paid = [charge.amount for charge in charges if charge.kind is not ChargeKind.SETUP_FEE]
        self.first_next_sequence = self.billing.next_sequence
        self.last_paid_through = self.billing.paid_through

    def update(self, billing: Billing) -> None:
        """Adopt ``billing``, checking that paid_through never went back."""
        if self.last_paid_through is not None:
            assert billing.paid_through is not None
            assert billing.paid_through >= self.last_paid_through
        self.last_paid_through = billing.paid_through
        self.billing = billing

    @property
    def is_running(self) -> bool:
        return self.billing.status in (
            BillingStatus.TRIALING,
            BillingStatus.ACTIVE,
            BillingStatus.PAST_DUE,
        )

    @rule(step=st.sampled_from(STEPS))
    def wait(self, step: timedelta) -> None:
        self.now += step

    def attempt(self) -> Charge:
        """Move time to the next attempt (unless already past it); the charge now due."""
        assert self.billing.next_charge_at is not None
        self.now = max(self.now, self.billing.next_charge_at)
        charge = due(self.billing, self.now)
        assert charge is not None
        assert charge.sequence == self.billing.next_sequence
        return charge

    @precondition(lambda self: self.is_running)
    @rule()
    def pay(self) -> None:
        charge = self.attempt()
        before = self.billing
        self.update(record_success(self.billing, charge.sequence, self.now))
        self.paid.append(charge.amount)
        self.successes += 1
        assert self.billing.next_sequence == before.next_sequence + 1
        assert self.billing.failed_attempts == 0

    @precondition(lambda self: self.is_running)
    @rule()
    def fail(self) -> None:
        charge = self.attempt()
        before = self.billing
        self.update(record_failure(self.billing, charge.sequence, self.now, self.policy))
        assert self.billing.failed_attempts == before.failed_attempts + 1
        assert self.billing.next_sequence == before.next_sequence
        if self.billing.status is BillingStatus.DEFAULTED:
            assert self.billing.failed_attempts == self.policy.max_attempts
            assert self.billing.ended_at is not None
        else:
            assert self.billing.status is BillingStatus.PAST_DUE
            # Anchored to the first failure: a late attempt may leave the next one due already.
            first_failed_at = self.billing.first_failed_at
            assert first_failed_at is not None
            assert first_failed_at <= self.now
            assert self.billing.next_charge_at == self.policy.retry_at(
                first_failed_at, self.billing.failed_attempts
            )

    @rule(at_period_end=st.booleans())
    def member_cancels(self, at_period_end: bool) -> None:
        before = self.billing
        if before.status in (BillingStatus.COMPLETED, BillingStatus.DEFAULTED):
            with pytest.raises(Conflict):
                cancel(before, self.now, at_period_end=at_period_end)
            return
        try:
            after = cancel(before, self.now, at_period_end=at_period_end)
        except Conflict:
            # Only a cancel in the other mode of an already canceled billing.
            assert before.status is BillingStatus.CANCELED
            return
        if before.status is BillingStatus.CANCELED:
            assert after is before
        assert after.status is BillingStatus.CANCELED
        assert after.next_charge_at is None
        self.update(after)

    @precondition(lambda self: not self.is_running)
    @rule(succeed=st.booleans())
    def late_outcome(self, succeed: bool) -> None:
        record = record_success if succeed else record_failure
        with pytest.raises(Conflict):
            record(self.billing, self.billing.next_sequence, self.now)

    @invariant()
    def nothing_is_due_once_ended(self) -> None:
        # Shown by --hypothesis-show-statistics: every status should be reached.
        event(f"{self.billing.plan.kind} {self.billing.status.value}")
        if not self.is_running:
            assert due(self.billing, self.now + timedelta(days=10000)) is None
            assert self.billing.next_charge_at is None

    @invariant()
    def next_sequence_grows_by_one_per_success(self) -> None:
        assert self.billing.next_sequence == self.first_next_sequence + self.successes

    @invariant()
    def failures_stay_under_the_limit_unless_defaulted(self) -> None:
        if self.billing.status is not BillingStatus.DEFAULTED:
            assert self.billing.failed_attempts < self.policy.max_attempts

    @invariant()
    def a_payment_plan_never_collects_more_than_its_total(self) -> None:
        plan = self.billing.plan
        if not isinstance(plan, PaymentPlan):
            return
        total = total_price(plan, self.billing.coupon)
        assert total is not None
        collected = sum(self.paid, Money.zero(plan.total.currency))
        assert collected <= total
        completed = self.billing.status is BillingStatus.COMPLETED
        assert completed == (len(self.paid) == plan.installments)
        if completed:
            assert collected == total
        else:
            # The total can only be reached early when a coupon makes the rest free.
            assert collected < total or self.rest_is_free()

    def rest_is_free(self) -> bool:
        """Whether every installment not yet paid is free (a 100 % coupon covers it)."""
        plan = self.billing.plan
        assert isinstance(plan, PaymentPlan)
        return all(
            charge_for(self.billing, n).amount.amount == 0
            for n in range(len(self.paid) + 1, plan.installments + 1)
        )

    @invariant()
    def a_subscription_grants_the_paid_period_and_dunning_only(self) -> None:
        billing = self.billing
        if not isinstance(billing.plan, Subscription):
            return
        assert billing.paid_through is not None
        ends = access_ends_at(billing)
        assert ends is not None
        if billing.status is BillingStatus.PAST_DUE:
            # Retries still scheduled: access to a grace after the next one, at least.
            assert billing.next_charge_at is not None
            assert ends == max(billing.paid_through, billing.next_charge_at + RETRY_GRACE)
        elif billing.status is BillingStatus.DEFAULTED:
            # Suspended when the last retry failed, never inside the paid period.
            assert ends >= billing.paid_through
            assert billing.first_failed_at is not None
            assert ends <= max(billing.paid_through, billing.updated_at)
        else:
            assert ends <= billing.paid_through


# Steps are capped so the file stays fast; max_examples comes from the loaded profile (ci/dev).
BillingMachine.TestCase.settings = settings(stateful_step_count=30)
TestBillingLife = BillingMachine.TestCase
