# Order billing in integer cents (contract api.md §5). Pure functions, no state:
# the session machine calls them at settlement, and so can anyone re-checking a
# bill. Rounding is half-up on exact integer fractions, never through floats.
from __future__ import annotations

from dataclasses import dataclass

from ._errors import LocalProtocolError

__all__ = ["Bill", "Tariff", "compute_bill", "round_half_up"]


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up, for non-negative integers."""
    if numerator < 0 or denominator <= 0:
        raise LocalProtocolError(f"cannot round {numerator}/{denominator}")
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tariff:
    """What an order costs (api.md §5).

    Attributes:
        amount_cents: The prepaid amount, the cap of the bill; None when nothing
            was prepaid.
        price_per_kwh_cents: Energy price; 0 bills by time instead.
        service_fee_permille: Service fee as a per-mille share of the energy fee.
        duration_s: The ordered duration, for billing by time.

    .. versionadded:: 0.1.0
    """

    amount_cents: int | None = None
    price_per_kwh_cents: int = 0
    service_fee_permille: int = 0
    duration_s: int | None = None

    def __post_init__(self) -> None:
        for name in ("amount_cents", "price_per_kwh_cents", "service_fee_permille",
                     "duration_s"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise LocalProtocolError(f"Tariff.{name} must not be negative, got {value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Bill:
    """The settlement of an order, in cents.

    Attributes:
        energy_fee_cents: Energy × price (0 when billed by time).
        service_fee_cents: The service fee on the energy fee.
        final_cents: What the user pays: never more than the prepaid amount.
        refund_cents: Prepaid amount − final (0 when nothing was prepaid).

    .. versionadded:: 0.1.0
    """

    energy_fee_cents: int
    service_fee_cents: int
    final_cents: int
    refund_cents: int


def compute_bill(tariff: Tariff, *, energy_centikwh: int, used_s: int) -> Bill:
    """Bill an order that used *energy_centikwh* (0.01 kWh) over *used_s* seconds.

    With an energy price: energy fee = energy × price, service = energy fee × ‰,
    final = their sum capped at the prepaid amount. Without one, an order with a
    prepaid amount and a duration pays the used share of the amount.

    Raises:
        LocalProtocolError: A negative quantity.
    """
    if energy_centikwh < 0 or used_s < 0:
        raise LocalProtocolError("energy and time used must not be negative")
    amount = tariff.amount_cents
    if tariff.price_per_kwh_cents > 0:
        energy_fee = round_half_up(energy_centikwh * tariff.price_per_kwh_cents, 100)
        service = round_half_up(energy_fee * tariff.service_fee_permille, 1000)
        total = energy_fee + service
        final = total if amount is None else min(amount, total)
        return Bill(energy_fee_cents=energy_fee, service_fee_cents=service, final_cents=final,
                    refund_cents=0 if amount is None else amount - final)
    if amount is None:
        return Bill(energy_fee_cents=0, service_fee_cents=0, final_cents=0, refund_cents=0)
    if tariff.duration_s:
        final = min(amount, round_half_up(amount * used_s, tariff.duration_s))
    else:
        final = amount
    return Bill(energy_fee_cents=0, service_fee_cents=0, final_cents=final,
                refund_cents=amount - final)
