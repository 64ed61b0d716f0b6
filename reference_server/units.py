# Stored integers → the decimal units of API responses and webhooks (api.md §3).
# The database keeps integers only; conversion happens at the edge, here, once.
from __future__ import annotations

__all__ = ["amperes", "kwh", "volts", "watts", "yuan"]


def kwh(centikwh: int) -> float:
    """0.01 kWh → kWh with 2 decimals."""
    return round(centikwh / 100, 2)


def watts(deciwatts: int) -> float:
    """0.1 W → W with 1 decimal."""
    return round(deciwatts / 10, 1)


def volts(decivolts: int | None) -> float | None:
    """0.1 V → V with 1 decimal."""
    return None if decivolts is None else round(decivolts / 10, 1)


def amperes(milliamperes: int | None) -> float | None:
    """mA → A with 3 decimals."""
    return None if milliamperes is None else round(milliamperes / 1000, 3)


def yuan(cents: int | None) -> float | None:
    """Cents → yuan with 2 decimals."""
    return None if cents is None else round(cents / 100, 2)
