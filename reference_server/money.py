# Plausibility of what devices report about money (api.md §11.1). Pure functions:
# the service calls them on each progress and settlement report and raises
# ``order.anomaly`` for what they find.
#
# A device's meters are the order's meters (api.md §10.1), so the checks compare a
# report with itself and with the device's earlier reports, never with the server's
# clock: energy above what the port's rated power can deliver in the reported time
# (+ 20 %, + one minute because devices report whole minutes), power above the
# rating (+ 20 %), minutes per tier adding up to more than the reported time, and
# counters that go backwards within one connection. An implausible value is capped
# to the largest plausible one; counters that went backwards keep their earlier,
# larger value (the session keeps the largest reading).
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bkvcodec import MeterReading

from .units import kwh, watts

__all__ = ["Anomaly", "backwards", "cap_reading", "cap_tier_minutes", "max_energy_centikwh"]

#: Reports may exceed the rating by this share (meter tolerance, short peaks).
TOLERANCE_PERCENT = 120
#: Slack for devices that report time in whole minutes (BKV).
TIME_SLACK_S = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class Anomaly:
    """One implausible value: ``order.anomaly``'s ``reason``, ``field``, ``reported``
    and ``accepted`` (in the unit the order view uses for *field*)."""

    reason: str
    field: str
    reported: object
    accepted: object


def max_energy_centikwh(rated_power_w: int, duration_s: int) -> int:
    """The most energy (0.01 kWh) a port rated *rated_power_w* delivers in *duration_s*."""
    # W·s → 0.01 kWh is ÷ 36,000; × 1.2 is × 120 ÷ 100.
    return rated_power_w * (duration_s + TIME_SLACK_S) * TOLERANCE_PERCENT // 3_600_000


def cap_reading(reading: MeterReading, rated_power_w: int
                ) -> tuple[MeterReading, list[Anomaly]]:
    """*reading* with its energy and power capped to what the rating allows."""
    anomalies: list[Anomaly] = []
    energy_cap = max_energy_centikwh(rated_power_w, reading.duration_s)
    if reading.energy_centikwh > energy_cap:
        anomalies.append(Anomaly(reason="energy_above_rating", field="total_kwh",
                                 reported=kwh(reading.energy_centikwh),
                                 accepted=kwh(energy_cap)))
        reading = dataclasses.replace(reading, energy_centikwh=energy_cap)
    power_cap = rated_power_w * TOLERANCE_PERCENT // 10  # 0.1 W
    if reading.power_dw > power_cap:
        anomalies.append(Anomaly(reason="power_above_rating", field="current_power",
                                 reported=watts(reading.power_dw), accepted=watts(power_cap)))
        reading = dataclasses.replace(reading, power_dw=power_cap)
    return reading, anomalies


def backwards(previous: MeterReading, reading: MeterReading) -> list[Anomaly]:
    """The counters of *reading* that are below *previous* (same connection).

    ``accepted`` is the earlier value, which the order keeps.
    """
    anomalies: list[Anomaly] = []
    if reading.energy_centikwh < previous.energy_centikwh:
        anomalies.append(Anomaly(reason="counter_backwards", field="total_kwh",
                                 reported=kwh(reading.energy_centikwh),
                                 accepted=kwh(previous.energy_centikwh)))
    if reading.duration_s < previous.duration_s:
        anomalies.append(Anomaly(reason="counter_backwards", field="duration_sec",
                                 reported=reading.duration_s, accepted=previous.duration_s))
    return anomalies


def cap_tier_minutes(tier_minutes: tuple[int, ...], duration_s: int
                     ) -> tuple[tuple[int, ...], list[Anomaly]]:
    """*tier_minutes* trimmed (from the last tier back) to the reported duration."""
    limit = (duration_s + TIME_SLACK_S + 59) // 60
    if sum(tier_minutes) <= limit:
        return tier_minutes, []
    capped: list[int] = []
    left = limit
    for minutes in tier_minutes:
        take = min(minutes, left)
        capped.append(take)
        left -= take
    accepted = tuple(capped)
    return accepted, [Anomaly(reason="tier_minutes_above_duration", field="tier_minutes",
                              reported=list(tier_minutes), accepted=list(accepted))]
