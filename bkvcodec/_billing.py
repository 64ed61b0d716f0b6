# Order billing in integer cents (contract api.md §5, §11.1). Pure functions, no
# state: the session machine calls them at settlement, and so can anyone re-checking
# a bill. Rounding is half-up on exact integer fractions, never through floats.
#
# Every order is billed by one named tariff (TariffKind): by energy (a price per
# kWh), by time (the used share of a prepaid amount), by power tiers (the minutes the
# device reports per tier, each at its tier's price) or flat (the prepaid amount).
# Whatever the tariff, the bill is never negative and never above a prepaid amount.
from __future__ import annotations

import enum
from collections.abc import Sequence

from ._commands import PowerTierSpec
from ._errors import LocalProtocolError
from ._events import ChargeMode
from ._fastinit import frozen_dataclass

__all__ = ["Bill", "Tariff", "TariffKind", "compute_bill", "round_half_up"]


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up, for non-negative integers."""
    if numerator < 0 or denominator <= 0:
        raise LocalProtocolError(f"cannot round {numerator}/{denominator}")
    return (2 * numerator + denominator) // (2 * denominator)


class TariffKind(enum.Enum):
    """How an order is billed.

    .. versionadded:: 0.1.0
    """

    #: A price per kWh (and a service fee per mille on it).
    ENERGY = "energy"
    #: The used share of the prepaid amount (amount × used seconds ÷ ordered seconds).
    TIME = "time"
    #: By power tier (Σ minutes charged in tier i × tier price ÷ tier minutes).
    TIERS = "tiers"
    #: The prepaid amount (0 when nothing was prepaid).
    FLAT = "flat"

    @classmethod
    def for_order(cls, charge_mode: ChargeMode, *, price_per_kwh_cents: int,
                  amount_cents: int | None, card: bool = False) -> TariffKind:
        """The tariff of a new order.

        A power-tier order is billed by its tiers, whose prices it carries, even
        when a default energy price is configured (a card order carries none).
        Otherwise a price per kWh bills by energy; a time order with a prepaid
        amount bills by time unless it is a card order (the card's amount is its
        balance, not a price); everything else is flat.
        """
        if charge_mode is ChargeMode.POWER_TIERS and not card:
            return cls.TIERS
        if price_per_kwh_cents > 0:
            return cls.ENERGY
        if charge_mode is ChargeMode.TIME and amount_cents is not None and not card:
            return cls.TIME
        return cls.FLAT


@frozen_dataclass
class Tariff:
    """What an order costs.

    Attributes:
        amount_cents: The prepaid amount, the cap of the bill; None when nothing
            was prepaid.
        price_per_kwh_cents: Energy price; 0 bills by time instead.
        service_fee_permille: Service fee as a per-mille share of the energy fee.
        duration_s: The ordered duration, for billing by time.
        kind: The tariff; None derives it from the prices (energy with a price,
            else time with a prepaid amount and a duration, else flat).
        power_tiers: The tiers of a :attr:`TariffKind.TIERS` order.

    .. versionadded:: 0.1.0
    """

    amount_cents: int | None = None
    price_per_kwh_cents: int = 0
    service_fee_permille: int = 0
    duration_s: int | None = None
    kind: TariffKind | None = None
    power_tiers: tuple[PowerTierSpec, ...] = ()

    def __post_init__(self) -> None:
        for name in ("amount_cents", "price_per_kwh_cents", "service_fee_permille",
                     "duration_s"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise LocalProtocolError(f"Tariff.{name} must not be negative, got {value}")
        if self.kind is TariffKind.TIERS and not self.power_tiers:
            raise LocalProtocolError("a tiers tariff needs its power_tiers")

    @property
    def effective_kind(self) -> TariffKind:
        """:attr:`kind`, or the kind derived from the prices when it is None."""
        if self.kind is not None:
            return self.kind
        if self.price_per_kwh_cents > 0:
            return TariffKind.ENERGY
        if self.amount_cents is not None and self.duration_s:
            return TariffKind.TIME
        return TariffKind.FLAT


@frozen_dataclass
class Bill:
    """The settlement of an order, in cents.

    Attributes:
        energy_fee_cents: Energy × price, or the tiers' sum (0 when billed by time
            or flat).
        service_fee_cents: The service fee on the energy fee.
        final_cents: What the user pays: never negative, never more than the
            prepaid amount.
        refund_cents: Prepaid amount − final (0 when nothing was prepaid).
        tariff: The tariff the bill followed.

    .. versionadded:: 0.1.0
    """

    energy_fee_cents: int
    service_fee_cents: int
    final_cents: int
    refund_cents: int
    tariff: TariffKind


def tiers_fee(tiers: Sequence[PowerTierSpec], tier_minutes: Sequence[int]) -> int:
    """Σ minutes charged in tier i × tier price ÷ tier minutes, rounded half up once.

    Minutes reported for tiers the order does not have are not billed.

    Raises:
        LocalProtocolError: A negative number of minutes.

    .. versionadded:: 0.1.0
    """
    from fractions import Fraction  # here: its import (decimal too) is most of this module's

    if any(minutes < 0 for minutes in tier_minutes):
        raise LocalProtocolError("minutes per tier must not be negative")
    total = sum((Fraction(used * tier.price_cents, tier.minutes)
                 for tier, used in zip(tiers, tier_minutes, strict=False)), Fraction(0))
    return round_half_up(total.numerator, total.denominator)


def compute_bill(tariff: Tariff, *, energy_centikwh: int, used_s: int,
                 tier_minutes: Sequence[int] = ()) -> Bill:
    """Bill an order that used *energy_centikwh* (0.01 kWh) over *used_s* seconds.

    By the tariff's :attr:`~Tariff.effective_kind`: energy fee = energy × price,
    service = energy fee × ‰; time = the used share of the prepaid amount; tiers =
    Σ *tier_minutes* [i] × tier price ÷ tier minutes (the minutes per tier the device
    reported, rounded half up once; minutes of tiers the order lacks are free);
    flat = the prepaid amount. The final amount is capped at the prepaid amount.

    Raises:
        LocalProtocolError: A negative quantity.
    """
    if energy_centikwh < 0 or used_s < 0:
        raise LocalProtocolError("energy and time used must not be negative")
    amount = tariff.amount_cents
    kind = tariff.effective_kind
    energy_fee = service = 0
    if kind is TariffKind.ENERGY:
        energy_fee = round_half_up(energy_centikwh * tariff.price_per_kwh_cents, 100)
        service = round_half_up(energy_fee * tariff.service_fee_permille, 1000)
        total = energy_fee + service
    elif kind is TariffKind.TIERS:
        energy_fee = total = tiers_fee(tariff.power_tiers, tier_minutes)
    elif amount is None:
        total = 0
    elif kind is TariffKind.TIME and tariff.duration_s:
        total = round_half_up(amount * used_s, tariff.duration_s)
    else:
        total = amount
    final = total if amount is None else min(amount, total)
    return Bill(energy_fee_cents=energy_fee, service_fee_cents=service, final_cents=final,
                refund_cents=0 if amount is None else amount - final, tariff=kind)
