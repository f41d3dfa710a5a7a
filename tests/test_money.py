"""Money: exact arithmetic and allocation that never loses a cent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membership_core import Money, ValidationError

currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD", "CLF"])
amounts = st.integers(min_value=-(10**12), max_value=10**12)


def test_of_parses_major_units_exactly() -> None:
    assert Money.of("19.99", "EUR") == Money(1999, "EUR")
    assert Money.of(500, "JPY") == Money(500, "JPY")
    assert Money.of("1.234", "KWD") == Money(1234, "KWD")
    assert str(Money(1999, "EUR")) == "19.99 EUR"
    assert str(Money(-5, "USD")) == "-0.05 USD"


@pytest.mark.parametrize(
    ("major", "currency", "field"),
    [
        (19.99, "EUR", "amount"),
        ("1.999", "EUR", "amount"),
        ("0.5", "JPY", "amount"),
        ("abc", "EUR", "amount"),
        ("1", "EURO", "currency"),
        ("1", "eur", "currency"),
    ],
)
def test_of_rejects_bad_input_naming_the_field(major: object, currency: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Money.of(major, currency)  # type: ignore[arg-type]
    assert info.value.field == field


def test_constructor_validates() -> None:
    with pytest.raises(ValidationError, match="currency"):
        Money(1, "XXX")
    with pytest.raises(ValidationError, match="amount"):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="amount"):
        Money(True, "USD")


def test_arithmetic_refuses_mixed_currencies() -> None:
    assert Money(100, "USD") + Money(5, "USD") == Money(105, "USD")
    assert Money(100, "USD") - Money(5, "USD") == Money(95, "USD")
    assert Money(100, "USD") * 3 == Money(300, "USD")
    assert Money(1, "USD") < Money(2, "USD")
    with pytest.raises(ValidationError, match="currency"):
        Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(ValidationError):
        Money(1, "USD") < Money(1, "EUR")  # noqa: B015
    with pytest.raises(ValidationError):
        Money(1, "USD") * 1.5  # type: ignore[operator]


def test_split_puts_larger_parts_first() -> None:
    assert [m.amount for m in Money(100, "USD").split(3)] == [34, 33, 33]
    assert [m.amount for m in Money(-100, "USD").split(3)] == [-34, -33, -33]
    assert [m.amount for m in Money(1000, "USD").allocate([1, 2, 7])] == [100, 200, 700]


@pytest.mark.parametrize("ratios", [[], [0, 0], [-1, 2]])
def test_allocate_rejects_bad_ratios(ratios: list[int]) -> None:
    with pytest.raises(ValidationError) as info:
        Money(100, "USD").allocate(ratios)
    assert info.value.field == "ratios"


@given(amounts, currencies, st.integers(min_value=1, max_value=60))
def test_split_sums_to_the_whole_and_parts_differ_by_at_most_one(
    amount: int, currency: str, parts: int
) -> None:
    shares = Money(amount, currency).split(parts)
    assert len(shares) == parts
    assert sum(s.amount for s in shares) == amount
    assert {s.currency for s in shares} == {currency}
    values = [s.amount for s in shares]
    assert max(values) - min(values) <= 1
    assert values == sorted(values, key=abs, reverse=True)


@given(
    amounts,
    st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=20).filter(any),
)
def test_allocate_sums_to_the_whole_and_is_proportional(amount: int, ratios: list[int]) -> None:
    shares = [m.amount for m in Money(amount, "EUR").allocate(ratios)]
    assert sum(shares) == amount
    total = sum(ratios)
    for share, ratio in zip(shares, ratios, strict=True):
        exact = Decimal(amount) * ratio / total
        assert abs(Decimal(share) - exact) < 1
        if ratio == 0:
            assert share == 0


@given(amounts, currencies)
def test_decimal_round_trips(amount: int, currency: str) -> None:
    money = Money(amount, currency)
    assert Money.of(money.decimal, currency) == money
