"""The life of a recurring purchase after checkout: renewals, installments, dunning. Pure.

A :class:`Billing` follows one :class:`~.pricing.Subscription` or
:class:`~.pricing.PaymentPlan` purchase. :func:`start` builds it at checkout
(with the charges checkout must collect), :func:`due` says which charge to try
at an instant, :func:`record_success` and :func:`record_failure` record the
outcome (failures retry on a :class:`DunningPolicy`), and :func:`cancel` stops
it. Every function takes ``now`` and returns a new value; nothing here does I/O.

>>> from datetime import UTC, datetime
>>> from membership_core.domain.money import Money
>>> from membership_core.domain.pricing import BillingPeriod, Interval, Subscription
>>> plan = Subscription(Money(900, "USD"), BillingPeriod(Interval.MONTH))
>>> bought = datetime(2024, 1, 31, 9, 30, tzinfo=UTC)
>>> billing, at_checkout = start(
...     "bil_1", purchase_id="pur_1", member_id="mem_1", offer_id="off_1",
...     plan=plan, coupon=None, now=bought,
... )
>>> [(charge.kind.value, str(charge.amount)) for charge in at_checkout]
[('first_period', '9.00 USD')]
>>> billing.status.value, billing.paid_through.date().isoformat()
('active', '2024-02-29')
>>> renewal = due(billing, datetime(2024, 2, 29, 12, tzinfo=UTC))
>>> renewal.sequence, renewal.kind.value, renewal.due_at.date().isoformat()
(2, 'renewal', '2024-02-29')
>>> billing = record_success(billing, renewal.sequence, datetime(2024, 3, 2, tzinfo=UTC))
>>> billing.paid_through.date().isoformat(), billing.next_sequence
('2024-03-31', 3)
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from .. import _validate
from ..errors import Conflict, ValidationError
from .money import Money
from .pricing import (
    Charge,
    ChargeKind,
    Coupon,
    PaymentPlan,
    Subscription,
    discount_for,
    schedule,
)

__all__ = [
    "Billing",
    "BillingStatus",
    "DunningPolicy",
    "MAX_DUNNING_ATTEMPTS",
    "RETRY_GRACE",
    "access_ends_at",
    "cancel",
    "charge_for",
    "due",
    "earliest_end",
    "record_failure",
    "record_success",
    "start",
]

#: The most attempts a :class:`DunningPolicy` may make on one charge.
MAX_DUNNING_ATTEMPTS = 50

#: How long past the next scheduled retry a past-due subscription keeps access.
RETRY_GRACE = timedelta(days=1)
# A window under a second could not space 49 retries a microsecond apart, and one over a
# year is no longer dunning; both bounds also keep retry instants far from datetime's limits.
_MIN_DUNNING_WINDOW = timedelta(seconds=1)
_MAX_DUNNING_WINDOW = timedelta(days=365)


class BillingStatus(enum.Enum):
    """Where a billing is in its life."""

    #: A subscription in its free trial: nothing charged for periods yet.
    TRIALING = "trialing"
    #: In good standing.
    ACTIVE = "active"
    #: A due charge failed and is being retried (dunning).
    PAST_DUE = "past_due"
    #: No more charges; access runs to ``ended_at``.
    CANCELED = "canceled"
    #: Nothing more to charge: a payment plan whose every installment is paid, or a
    #: subscription whose access window ends before its next period would start
    #: (access then runs to ``ended_at``, never past the window).
    COMPLETED = "completed"
    #: Dunning gave up: no more charges, access ended.
    DEFAULTED = "defaulted"


_RUNNING = (BillingStatus.TRIALING, BillingStatus.ACTIVE, BillingStatus.PAST_DUE)


# --------------------------------------------------------------------------- validators


def _aware(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _validate.aware(attribute.name, value)


def _optional_aware(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _validate.aware(attribute.name, value)


def _count(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _validate.integer(attribute.name, value, minimum=0)


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _validate.integer(attribute.name, value, minimum=1)


def _id(prefix: str) -> Any:
    """An attrs validator: an id string with ``prefix`` (``"bil"`` -> ``bil_...``)."""

    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        _validate.identifier(attribute.name, value, prefix)

    return check


def _check_plan(_instance: object, _attribute: object, value: Any) -> None:
    if not isinstance(value, (Subscription, PaymentPlan)):
        raise ValidationError(
            "plan", f"must be Subscription or PaymentPlan, not {type(value).__name__}"
        )


def _check_coupon(_instance: object, _attribute: object, value: Any) -> None:
    if value is not None and not isinstance(value, Coupon):
        raise ValidationError("coupon", f"must be Coupon or None, not {type(value).__name__}")


def _check_status(_instance: object, _attribute: object, value: Any) -> None:
    if not isinstance(value, BillingStatus):
        raise ValidationError("status", f"must be BillingStatus, not {type(value).__name__}")


def _check_attempts(_instance: object, _attribute: object, value: object) -> None:
    number = _validate.integer("max_attempts", value, minimum=1)
    if number > MAX_DUNNING_ATTEMPTS:
        raise ValidationError(
            "max_attempts", f"must be at most {MAX_DUNNING_ATTEMPTS}, not {number}"
        )


def _check_window(_instance: object, _attribute: object, value: object) -> None:
    if not isinstance(value, timedelta):
        raise ValidationError("within", f"must be a timedelta, not {type(value).__name__}")
    if not _MIN_DUNNING_WINDOW <= value <= _MAX_DUNNING_WINDOW:
        raise ValidationError("within", f"must be between 1 second and 365 days, not {value}")


# --------------------------------------------------------------------------- values


@attrs.frozen
class DunningPolicy:
    """How a failed charge is retried: ``max_attempts`` in all, spread over ``within``.

    ``max_attempts`` counts the first (failed) attempt, so the default makes
    one attempt and seven retries, the last exactly 14 days after the first
    failure.
    """

    max_attempts: int = attrs.field(default=8, validator=_check_attempts)
    within: timedelta = attrs.field(default=timedelta(days=14), validator=_check_window)

    def retry_at(self, first_failed_at: datetime, failed_attempts: int) -> datetime | None:
        """When to try again after ``failed_attempts`` failures (1-based); ``None``: give up.

        Retries are spread evenly, each computed from ``first_failed_at``
        (never from the previous retry, so rounding does not accumulate):
        ``first_failed_at + within * failed_attempts / (max_attempts - 1)``.
        The last retry (attempt ``max_attempts``) is exactly ``within`` after
        the first failure; with ``max_attempts == 1`` there is no retry.

        >>> policy = DunningPolicy(max_attempts=3, within=timedelta(days=10))
        >>> first = datetime(2024, 5, 1, tzinfo=UTC)
        >>> [policy.retry_at(first, n) for n in (1, 2, 3)]  # doctest: +NORMALIZE_WHITESPACE
        [datetime.datetime(2024, 5, 6, 0, 0, tzinfo=datetime.timezone.utc),
         datetime.datetime(2024, 5, 11, 0, 0, tzinfo=datetime.timezone.utc), None]
        """
        _validate.aware("first_failed_at", first_failed_at)
        _validate.integer("failed_attempts", failed_attempts, minimum=1)
        if failed_attempts >= self.max_attempts:
            return None
        return first_failed_at + self.within * failed_attempts / (self.max_attempts - 1)


@attrs.frozen
class Billing:
    """The billing state of one recurring purchase (a subscription or a payment plan).

    - ``next_sequence`` is the :func:`~.pricing.schedule` sequence number of
      the next charge to collect; ``next_charge_at`` is when to try it (its due
      date, or the next retry while past due), ``None`` once nothing more will
      be charged.
    - ``paid_through`` (subscriptions only; ``None`` for a payment plan) is
      the end of the last paid period, or of the trial. Periods stay anchored
      to the schedule: a late payment does not move the calendar.
    - ``failed_attempts`` and ``first_failed_at`` describe the dunning of the
      current charge; they are reset by a success.
    - ``ended_at`` is when access ended (or ends) because of a cancellation,
      a default, or (a subscription) the end of its access window; ``None``
      while the billing runs.
    - ``access_until`` is the end of the access window the offer was sold
      with (``None``: no end). Access never runs past it, and a subscription
      charges no period that would start at or after it: the period that
      contains it is the last one charged (in full, not prorated), then the
      billing is ``COMPLETED``. A payment plan is charged in full whatever its
      window: its installments pay for the purchase, not for time.

    Build one with :func:`start`; change it with the other functions of this
    module, which check that the transition is allowed.
    """

    id: str = attrs.field(validator=_id("bil"))
    purchase_id: str = attrs.field(validator=_id("pur"))
    member_id: str = attrs.field(validator=_id("mem"))
    offer_id: str = attrs.field(validator=_id("off"))
    plan: Subscription | PaymentPlan = attrs.field(validator=_check_plan)
    coupon: Coupon | None = attrs.field(validator=_check_coupon)
    status: BillingStatus = attrs.field(validator=_check_status)
    started_at: datetime = attrs.field(validator=_aware)
    next_sequence: int = attrs.field(validator=_positive)
    next_charge_at: datetime | None = attrs.field(validator=_optional_aware)
    paid_through: datetime | None = attrs.field(validator=_optional_aware)
    failed_attempts: int = attrs.field(validator=_count)
    first_failed_at: datetime | None = attrs.field(validator=_optional_aware)
    canceled_at: datetime | None = attrs.field(validator=_optional_aware)
    ended_at: datetime | None = attrs.field(validator=_optional_aware)
    updated_at: datetime = attrs.field(validator=_aware)
    access_until: datetime | None = attrs.field(default=None, validator=_optional_aware)

    def __attrs_post_init__(self) -> None:
        # Only the two cross-field rules that the plan kind alone decides; the rest is
        # kept by the transition functions, so a stored value is never refused on load.
        if isinstance(self.plan, PaymentPlan):
            if self.paid_through is not None:
                raise ValidationError("paid_through", "must be None for a payment plan")
            if self.status is BillingStatus.TRIALING:
                raise ValidationError("status", "a payment plan has no trial")


#: The policy :func:`record_failure` uses when the caller gives none.
_DEFAULT_POLICY = DunningPolicy()


# --------------------------------------------------------------------------- helpers


def _utc(field: str, value: object) -> datetime:
    """``value`` checked to be aware, then in UTC, like every date :mod:`.pricing` computes."""
    return _validate.aware(field, value).astimezone(UTC)


def _fee_offset(plan: Subscription | PaymentPlan) -> int:
    """How many charges come before the first period: the setup fee, when there is one."""
    return 1 if isinstance(plan, Subscription) and plan.setup_fee is not None else 0


def _period_due(plan: Subscription | PaymentPlan, start: datetime, index: int) -> datetime:
    """When period (or installment) ``index`` is due, as :func:`.pricing.schedule` says.

    It is also when period ``index - 1`` ends, which is what ``paid_through`` needs.
    """
    # A trial pushes the first period back, and every renewal is anchored to it.
    first = start if isinstance(plan, PaymentPlan) else start + timedelta(days=plan.trial_days)
    try:
        return plan.period.advance(first, index)
    except ValidationError as exc:
        if exc.field != "n":
            raise
        # advance() names its own argument; here the caller chose the sequence number.
        raise ValidationError("sequence", "the charge would fall after the year 9999") from None


def earliest_end(first: datetime | None, second: datetime | None) -> datetime | None:
    """The earlier of two optional ends, ``None`` meaning never.

    >>> earliest_end(None, None) is None
    True
    """
    if first is None:
        return second
    if second is None:
        return first
    return min(first, second)


def _window_over(billing: Billing) -> Billing:
    """``billing`` completed if it is a subscription whose next period starts past its window.

    Nothing is charged for a period that could give no access; the periods
    already paid (or the trial) run their course, cut at the window's end.
    """
    if (
        not isinstance(billing.plan, Subscription)
        or billing.access_until is None
        or billing.next_charge_at is None
        or billing.status not in _RUNNING
        or billing.next_charge_at < billing.access_until
    ):
        return billing
    return attrs.evolve(
        billing,
        status=BillingStatus.COMPLETED,
        next_charge_at=None,
        ended_at=earliest_end(billing.paid_through, billing.access_until),
    )


def _refuse(billing: Billing, action: str) -> Conflict:
    return Conflict(f"billing {billing.id} is {billing.status.value}: cannot {action}")


def _check_outcome(billing: Billing, sequence: int, now: object, action: str) -> datetime:
    """Validate a charge outcome for ``billing``; return ``now`` in UTC."""
    _validate.integer("sequence", sequence, minimum=1)
    moment = _utc("now", now)
    if billing.status not in _RUNNING:
        raise _refuse(billing, action)
    if sequence != billing.next_sequence:
        # A stale or duplicated gateway callback must not pay (or fail) the wrong period.
        raise Conflict(
            f"charge {sequence} is not the next charge of billing {billing.id} "
            f"(that is charge {billing.next_sequence})"
        )
    return moment


def _cancel_ends(billing: Billing, at: datetime, at_period_end: bool) -> datetime:
    """When access ends if ``billing`` is cancelled at ``at`` in the given mode."""
    if billing.paid_through is None:
        # A payment plan has no paid period to run out: the admin's cancel ends it now.
        return at
    if at_period_end:
        return billing.paid_through
    # Never beyond what was paid: cancelling while past due must not re-grant access.
    return min(at, billing.paid_through)


# --------------------------------------------------------------------------- functions


def start(
    id: str,
    *,
    purchase_id: str,
    member_id: str,
    offer_id: str,
    plan: Subscription | PaymentPlan,
    coupon: Coupon | None,
    now: datetime,
    access_until: datetime | None = None,
) -> tuple[Billing, list[Charge]]:
    """The billing of a purchase made at ``now``, and the charges checkout must collect.

    The charges are those of ``schedule(plan, now, coupon=coupon)`` due at
    ``now``: the setup fee and first period of a subscription without trial,
    only the setup fee (if any) of one with a trial, the first installment of
    a payment plan. The billing assumes they were paid (persist it only when
    they were):

    - a subscription without trial is ``ACTIVE``, paid through the end of the
      first period, next charging the first renewal when it falls due;
    - one with a trial is ``TRIALING``, "paid" through the end of the trial,
      when the first period is charged;
    - a payment plan is ``ACTIVE``, next charging installment 2.

    The coupon's expiry and limits are not checked here (see
    :func:`.pricing.check_coupon`); it is applied to every charge it covers.

    ``access_until`` is the end of the offer's access window, if it has one
    (see :class:`Billing`): a subscription whose window ends before its first
    renewal (or, with a trial, before the trial ends) starts ``COMPLETED``,
    with nothing more to charge.
    """
    _check_plan(None, None, plan)
    _check_coupon(None, None, coupon)
    moment = _utc("now", now)
    until = None if access_until is None else _utc("access_until", access_until)
    charges = [
        charge
        for charge in schedule(plan, moment, coupon=coupon, periods=1)
        if charge.due_at <= moment
    ]
    offset = _fee_offset(plan)
    status = BillingStatus.ACTIVE
    paid_through: datetime | None = None
    if isinstance(plan, PaymentPlan):
        next_sequence = 2
        next_charge_at = _period_due(plan, moment, 1)
    elif plan.trial_days:
        status = BillingStatus.TRIALING
        next_sequence = offset + 1
        next_charge_at = paid_through = _period_due(plan, moment, 0)
    else:
        next_sequence = offset + 2
        next_charge_at = paid_through = _period_due(plan, moment, 1)
    billing = Billing(
        id=id,
        purchase_id=purchase_id,
        member_id=member_id,
        offer_id=offer_id,
        plan=plan,
        coupon=coupon,
        status=status,
        started_at=moment,
        next_sequence=next_sequence,
        next_charge_at=next_charge_at,
        paid_through=paid_through,
        failed_attempts=0,
        first_failed_at=None,
        canceled_at=None,
        ended_at=None,
        updated_at=moment,
        access_until=until,
    )
    return _window_over(billing), charges


def charge_for(billing: Billing, sequence: int) -> Charge:
    """Charge number ``sequence`` of the billing's schedule, computed on its own.

    It equals ``schedule(plan, started_at, coupon=coupon, periods=...)[sequence - 1]``
    but costs the same for the 1000th renewal as for the first. A sequence
    beyond a payment plan's last installment is a :class:`ValidationError`.
    """
    _validate.integer("sequence", sequence, minimum=1)
    plan = billing.plan
    start_at = billing.started_at.astimezone(UTC)
    kind: ChargeKind
    if isinstance(plan, PaymentPlan):
        if sequence > plan.installments:
            raise ValidationError(
                "sequence", f"the plan has {plan.installments} installments, not {sequence}"
            )
        index = sequence - 1
        # Money.split's rule without building the list: the first `extra` parts get one more.
        base, extra = divmod(plan.total.amount, plan.installments)
        amount = Money(base + (1 if index < extra else 0), plan.total.currency)
        kind = ChargeKind.INSTALLMENT
    else:
        offset = _fee_offset(plan)
        if sequence <= offset and plan.setup_fee is not None:
            # Coupons discount periods, never the setup fee.
            return Charge(sequence, start_at, plan.setup_fee, ChargeKind.SETUP_FEE)
        index = sequence - 1 - offset
        amount = plan.price
        kind = ChargeKind.FIRST_PERIOD if index == 0 else ChargeKind.RENEWAL
    due_at = _period_due(plan, start_at, index)
    if billing.coupon is not None:
        off = discount_for(billing.coupon, amount, index)
        # As in schedule(): a zero discount is no discount.
        if off.amount > 0:
            return Charge(sequence, due_at, amount - off, kind, index, off)
    return Charge(sequence, due_at, amount, kind, index)


def due(billing: Billing, now: datetime) -> Charge | None:
    """The charge to attempt at ``now``, or ``None`` when nothing is to be tried yet.

    While the billing runs (trialing, active or past due) and ``next_charge_at``
    has come, that is charge ``next_sequence``; its ``due_at`` is the scheduled
    date even when this attempt is a retry.
    """
    moment = _utc("now", now)
    if billing.status not in _RUNNING or billing.next_charge_at is None:
        return None
    if billing.next_charge_at > moment:
        return None
    return charge_for(billing, billing.next_sequence)


def record_success(billing: Billing, sequence: int, now: datetime) -> Billing:
    """Charge ``sequence`` (the next one) was paid at ``now``.

    Dunning is over and the billing is ``ACTIVE`` again. A subscription is
    paid through the end of the period that charge paid for, counted from
    its scheduled date, so a late payment does not shift the calendar; its
    next charge is the next period. A payment plan moves to its next
    installment, or is ``COMPLETED`` after the last.

    :class:`Conflict` when the billing no longer runs (cancelled, completed,
    defaulted) or ``sequence`` is not ``next_sequence``.
    """
    moment = _check_outcome(billing, sequence, now, "record a payment")
    plan = billing.plan
    paid_through: datetime | None = None
    if isinstance(plan, PaymentPlan):
        if sequence >= plan.installments:
            return attrs.evolve(
                billing,
                status=BillingStatus.COMPLETED,
                next_sequence=sequence + 1,
                next_charge_at=None,
                failed_attempts=0,
                first_failed_at=None,
                updated_at=moment,
            )
        # Installment `sequence + 1` has the 0-based index `sequence`.
        next_charge_at = _period_due(plan, billing.started_at, sequence)
    else:
        paid_index = sequence - 1 - _fee_offset(plan)
        next_charge_at = paid_through = _period_due(plan, billing.started_at, paid_index + 1)
    return _window_over(
        attrs.evolve(
            billing,
            status=BillingStatus.ACTIVE,
            next_sequence=sequence + 1,
            next_charge_at=next_charge_at,
            paid_through=paid_through,
            failed_attempts=0,
            first_failed_at=None,
            updated_at=moment,
        )
    )


def record_failure(
    billing: Billing, sequence: int, now: datetime, policy: DunningPolicy = _DEFAULT_POLICY
) -> Billing:
    """An attempt at charge ``sequence`` (the next one) failed at ``now``.

    The billing is ``PAST_DUE`` and retries at ``policy.retry_at(...)``, counted
    from the first failure, so an attempt made late does not stretch the
    dunning window: the next retry may then be due at once. When
    the policy is exhausted it is ``DEFAULTED``: nothing more is charged, and
    access ends at ``now`` for a payment plan, at ``paid_through`` for a
    subscription: its access already stopped there while the charge was past
    due, and a default recorded before then does not take back a paid period.

    :class:`Conflict` when the billing no longer runs or ``sequence`` is not
    ``next_sequence``.
    """
    moment = _check_outcome(billing, sequence, now, "record a failed payment")
    if not isinstance(policy, DunningPolicy):
        raise ValidationError("policy", f"must be DunningPolicy, not {type(policy).__name__}")
    failed = billing.failed_attempts + 1
    first_failed_at = billing.first_failed_at or moment
    retry = policy.retry_at(first_failed_at, failed)
    if retry is None:
        ended_at = moment if billing.paid_through is None else max(moment, billing.paid_through)
        return attrs.evolve(
            billing,
            status=BillingStatus.DEFAULTED,
            next_charge_at=None,
            failed_attempts=failed,
            first_failed_at=first_failed_at,
            ended_at=ended_at,
            updated_at=moment,
        )
    return attrs.evolve(
        billing,
        status=BillingStatus.PAST_DUE,
        next_charge_at=retry,
        failed_attempts=failed,
        first_failed_at=first_failed_at,
        updated_at=moment,
    )


def cancel(billing: Billing, now: datetime, *, at_period_end: bool = True) -> Billing:
    """Stop charging ``billing`` at ``now``.

    A subscription cancelled ``at_period_end`` keeps access to ``paid_through``
    (the end of the trial while trialing); cancelled immediately, access ends
    at ``now`` (never later than ``paid_through``). A payment plan's access
    ends at ``now`` in both modes.

    Cancelling again in the same mode returns the billing unchanged, so a
    repeated request is harmless; in the other mode it is a :class:`Conflict`,
    as is cancelling a completed or defaulted billing.
    """
    moment = _utc("now", now)
    _validate.boolean("at_period_end", at_period_end)
    if billing.status is BillingStatus.CANCELED:
        # The mode is not stored: it is the one that yields the ended_at we have.
        if (
            billing.canceled_at is not None
            and _cancel_ends(billing, billing.canceled_at, at_period_end) == billing.ended_at
        ):
            return billing
        mode = "at the period end" if at_period_end else "immediately"
        raise Conflict(f"billing {billing.id} is already canceled, and not {mode}")
    if billing.status not in _RUNNING:
        raise _refuse(billing, "cancel it")
    return attrs.evolve(
        billing,
        status=BillingStatus.CANCELED,
        next_charge_at=None,
        canceled_at=moment,
        ended_at=_cancel_ends(billing, moment, at_period_end),
        updated_at=moment,
    )


def access_ends_at(billing: Billing) -> datetime | None:
    """Until when ``billing`` grants access (exclusive); ``None``: billing sets no end.

    A subscription gives access to ``paid_through`` while it is in good
    standing. Past due, it keeps access while retries are scheduled: to
    :data:`RETRY_GRACE` after the next retry (so a scheduler running a little
    late never suspends a member whose retry would have succeeded), and never
    less than the paid period. Cancelled or defaulted, access runs to
    ``ended_at``. A payment plan gives open-ended access while it runs (past
    due included) and once completed, and access to ``ended_at`` once
    cancelled or defaulted. A completed subscription (its window ended) gives
    access to ``ended_at``. In every case access ends by ``access_until``,
    the end of the offer's access window.
    """
    return earliest_end(_billing_ends_at(billing), billing.access_until)


def _billing_ends_at(billing: Billing) -> datetime | None:
    """:func:`access_ends_at` before the access window is applied."""
    if billing.status in (BillingStatus.CANCELED, BillingStatus.DEFAULTED):
        return billing.ended_at
    if isinstance(billing.plan, PaymentPlan):
        return None
    if billing.status is BillingStatus.COMPLETED:
        return billing.ended_at or billing.paid_through
    if billing.status is BillingStatus.PAST_DUE and billing.next_charge_at is not None:
        retry_end = billing.next_charge_at + RETRY_GRACE
        return retry_end if billing.paid_through is None else max(billing.paid_through, retry_end)
    return billing.paid_through
