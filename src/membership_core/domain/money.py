"""Money: an integer count of minor units and an ISO 4217 currency code. Never a float.

>>> price = Money.of("19.99", "EUR")
>>> price.amount
1999
>>> [str(part) for part in price.allocate([1, 1, 1])]
['6.67 EUR', '6.66 EUR', '6.66 EUR']
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from ..errors import ValidationError

__all__ = ["CURRENCY_EXPONENTS", "Money"]

# Active ISO 4217 codes and their minor-unit exponent. Codes not listed use 2.
_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD "
    "KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD "
    "NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
    "SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED "
    "VES WST XCD XCG YER ZAR ZMW ZWG"
)
CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(_TWO.split(), 2),
    **dict.fromkeys(_ZERO.split(), 0),
    **dict.fromkeys(_THREE.split(), 3),
    **dict.fromkeys(_FOUR.split(), 4),
}


def _check_currency(_instance: Any, _attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or value not in CURRENCY_EXPONENTS:
        raise ValidationError("currency", f"{value!r} is not an ISO 4217 currency code")


def _check_amount(_instance: Any, _attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("amount", f"must be an integer of minor units, not {value!r}")


@attrs.frozen(order=False)
class Money:
    """An exact amount: ``amount`` minor units (cents) of ``currency``.

    Arithmetic only mixes amounts of the same currency; anything else raises
    :class:`~membership_core.ValidationError`.
    """

    amount: int = attrs.field(validator=_check_amount)
    currency: str = attrs.field(validator=_check_currency)

    @classmethod
    def of(cls, major: str | int | Decimal, currency: str) -> Money:
        """Build from a decimal amount in major units, e.g. ``Money.of("19.99", "USD")``.

        Floats are refused: they cannot represent most prices exactly.
        """
        if isinstance(major, (float, bool)):
            raise ValidationError("amount", "use a string or Decimal, never a float")
        _check_currency(None, None, currency)
        try:
            value = Decimal(major)
        except (InvalidOperation, ValueError):
            raise ValidationError("amount", f"{major!r} is not a number") from None
        scaled = value.scaleb(CURRENCY_EXPONENTS[currency])
        if scaled != scaled.to_integral_value():
            raise ValidationError("amount", f"{major} has more decimals than {currency} allows")
        return cls(int(scaled), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Nothing, in ``currency``."""
        return cls(0, currency)

    @property
    def exponent(self) -> int:
        """How many minor-unit digits the currency has (2 for EUR, 0 for JPY)."""
        return CURRENCY_EXPONENTS[self.currency]

    @property
    def decimal(self) -> Decimal:
        """The amount in major units, exactly."""
        return Decimal(self.amount).scaleb(-self.exponent)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise ValidationError("other", f"expected Money, got {type(other).__name__}")
        if other.currency != self.currency:
            raise ValidationError(
                "currency", f"cannot combine {self.currency} with {other.currency}"
            )

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, int):
            raise ValidationError("factor", "money can only be multiplied by an integer")
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def __bool__(self) -> bool:
        return self.amount != 0

    def __str__(self) -> str:
        return f"{self.decimal:.{self.exponent}f} {self.currency}"

    def split(self, parts: int) -> list[Money]:
        """Split into ``parts`` near-equal amounts that add up exactly to this one.

        Larger parts come first: ``Money(100, "USD").split(3)`` is 34, 33, 33 cents.
        """
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise ValidationError("parts", "must be a positive integer")
        return self.allocate([1] * parts)

    def allocate(self, ratios: Sequence[int]) -> list[Money]:
        """Split in proportion to integer ``ratios``; the parts always sum to the whole.

        Uses the largest-remainder method: every part gets its floor share, and
        the cents left over go one each to the parts with the largest remainders
        (earlier parts first on ties), so no cent is lost or invented.
        """
        if not ratios:
            raise ValidationError("ratios", "must not be empty")
        for ratio in ratios:
            if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 0:
                raise ValidationError("ratios", "must be non-negative integers")
        total = sum(ratios)
        if total == 0:
            raise ValidationError("ratios", "must not all be zero")
        sign = -1 if self.amount < 0 else 1
        whole = abs(self.amount)
        shares = [whole * ratio // total for ratio in ratios]
        remainders = [whole * ratio % total for ratio in ratios]
        left = whole - sum(shares)
        order = sorted(range(len(ratios)), key=lambda i: (-remainders[i], i))
        for index in order[:left]:
            shares[index] += 1
        return [Money(sign * share, self.currency) for share in shares]
