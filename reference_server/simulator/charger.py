# The e-bike charger model: what a port's meter sees when a charger and its battery
# are plugged in. A lithium-ion e-bike charger works constant-current first (the
# power drawn at the socket is flat), then constant-voltage as the battery fills:
# the current, and with it the power, decays exponentially until the charger's own
# cut-off, after which it draws only its standby power. We model the power at the
# socket (AC side) as a function of the state of charge s:
#
#     P(s) = P_cc                                 for s < s_taper   (constant current)
#     P(s) = P_cc · (1 − s) / (1 − s_taper)       until P(s) = P_cutoff (constant voltage)
#     P    = P_standby                            after the cut-off (battery full)
#
# and the battery takes η·P. Within each phase the equations have closed forms
# (linear in the first, exponential in the second), so advancing time, finding
# when the power falls below a threshold and finding when an energy target is
# met are all exact: the results do not depend on how often the device looks.
# Energy is ∫P dt at the socket, the quantity a port's meter reports.
from __future__ import annotations

import enum
import math
from dataclasses import dataclass

__all__ = ["Charger", "ChargerPhase", "ChargerState"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Charger:
    """A charger with its battery: the load plugged into a port.

    The defaults describe a common e-bike set: a 48 V, 20 Ah lithium-ion pack
    (960 Wh) at 20 % charge and a 54.6 V / 4 A charger (about 220 W into the
    battery, 250 W at the socket at 88 % efficiency). Charged from 20 %, it runs
    about 2.8 h at 250 W, tapers for about 1.7 h and draws about 0.86 kWh in all.

    Attributes:
        power_w: Power drawn at the socket during constant-current charging (W).
        capacity_wh: Battery capacity (Wh).
        soc: State of charge when plugged in, 0-1. ``1.0`` gives a full battery:
            the charger draws only standby power (a no-load port).
        taper_soc: State of charge where constant-voltage charging (the taper)
            begins, 0-1.
        efficiency: Share of the socket power that reaches the battery.
        cutoff_w: Socket power at which the charger ends the taper and stops.
        standby_w: Socket power after the cut-off (and with a full battery).
    """

    power_w: float = 250.0
    capacity_wh: float = 960.0
    soc: float = 0.2
    taper_soc: float = 0.85
    efficiency: float = 0.88
    cutoff_w: float = 20.0
    standby_w: float = 1.5

    def __post_init__(self) -> None:
        _check(self.power_w > 0, "power_w must be positive")
        _check(self.capacity_wh > 0, "capacity_wh must be positive")
        _check(0.0 <= self.soc <= 1.0, "soc must be between 0 and 1")
        _check(0.0 < self.taper_soc < 1.0, "taper_soc must be between 0 and 1 (exclusive)")
        _check(0.0 < self.efficiency <= 1.0, "efficiency must be in (0, 1]")
        _check(0.0 < self.cutoff_w < self.power_w, "cutoff_w must be in (0, power_w)")
        _check(0.0 <= self.standby_w < self.cutoff_w, "standby_w must be in [0, cutoff_w)")

    def start(self) -> ChargerState:
        """A fresh physics state for this charger, at its initial charge."""
        return ChargerState(self)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class ChargerPhase(enum.Enum):
    """Where a charger is in its charge."""

    #: Constant current: flat power.
    CONSTANT_CURRENT = "constant_current"
    #: Constant voltage: power decaying as the battery fills.
    TAPER = "taper"
    #: Cut off: the battery is full, the charger draws standby power.
    DONE = "done"


class ChargerState:
    """The running physics of one :class:`Charger` while it is powered.

    Time only passes through :meth:`advance`; the port calls it with the seconds
    its relay was closed. Every method is exact (closed forms, no time steps).
    """

    def __init__(self, charger: Charger) -> None:
        self.charger = charger
        c = charger
        #: Energy into the battery per socket-watt-second, as a share of the capacity.
        self._gain = c.efficiency / (3600.0 * c.capacity_wh)
        #: Decay rate of the power during the taper (1/s).
        self._rate = c.power_w * self._gain / (1.0 - c.taper_soc)
        #: The state of charge where the taper reaches the cut-off power.
        self._cutoff_soc = 1.0 - c.cutoff_w * (1.0 - c.taper_soc) / c.power_w
        self.soc = c.soc
        self.phase = self._phase_of(c.soc)

    def _phase_of(self, soc: float) -> ChargerPhase:
        if soc >= self._cutoff_soc:
            return ChargerPhase.DONE
        if soc >= self.charger.taper_soc:
            return ChargerPhase.TAPER
        return ChargerPhase.CONSTANT_CURRENT

    @property
    def power_w(self) -> float:
        """The power drawn at the socket now (W)."""
        c = self.charger
        if self.phase is ChargerPhase.CONSTANT_CURRENT:
            return c.power_w
        if self.phase is ChargerPhase.TAPER:
            return c.power_w * (1.0 - self.soc) / (1.0 - c.taper_soc)
        return c.standby_w

    def _constant_current_left(self) -> float:
        """Seconds until the taper begins (in the constant-current phase)."""
        return max(0.0, (self.charger.taper_soc - self.soc) / (self.charger.power_w * self._gain))

    def _taper_left(self) -> float:
        """Seconds until the cut-off (in the taper)."""
        return max(0.0, math.log(self.power_w / self.charger.cutoff_w) / self._rate)

    def advance(self, seconds: float) -> float:
        """Charge for *seconds*; return the energy drawn at the socket (Wh)."""
        energy_ws = 0.0
        left = max(0.0, seconds)
        while left > 0.0:
            if self.phase is ChargerPhase.CONSTANT_CURRENT:
                span = self._constant_current_left()
                step = min(left, span)
                energy_ws += self.charger.power_w * step
                if step >= span:
                    self.soc, self.phase = self.charger.taper_soc, ChargerPhase.TAPER
                else:
                    self.soc += self.charger.power_w * self._gain * step
            elif self.phase is ChargerPhase.TAPER:
                span = self._taper_left()
                step = min(left, span)
                energy_ws += self.power_w * -math.expm1(-self._rate * step) / self._rate
                if step >= span:
                    self.soc, self.phase = self._cutoff_soc, ChargerPhase.DONE
                else:
                    self.soc = 1.0 - (1.0 - self.soc) * math.exp(-self._rate * step)
            else:
                step = left
                energy_ws += self.charger.standby_w * step
            left -= step
        return energy_ws / 3600.0

    def seconds_until_power_at_most(self, threshold_w: float) -> float | None:
        """Charging seconds until the socket power is at or below *threshold_w*
        (0 if it already is; None if it never will be)."""
        if self.power_w <= threshold_w:
            return 0.0
        c = self.charger
        if c.standby_w > threshold_w:
            return None
        before_taper = (self._constant_current_left()
                        if self.phase is ChargerPhase.CONSTANT_CURRENT else 0.0)
        top = c.power_w if self.phase is ChargerPhase.CONSTANT_CURRENT else self.power_w
        # Below the cut-off power, the drop to standby at the cut-off reaches it.
        floor = max(threshold_w, c.cutoff_w)
        return before_taper + math.log(top / floor) / self._rate

    def seconds_until_energy(self, energy_wh: float) -> float | None:
        """Charging seconds until *energy_wh* more energy has been drawn (None: never)."""
        want = max(0.0, energy_wh) * 3600.0  # watt-seconds
        elapsed = 0.0
        c = self.charger
        if self.phase is ChargerPhase.CONSTANT_CURRENT:
            span = self._constant_current_left()
            if want <= c.power_w * span:
                return want / c.power_w
            want -= c.power_w * span
            elapsed += span
            top = c.power_w
        elif self.phase is ChargerPhase.TAPER:
            top = self.power_w
        else:
            top = 0.0
        if top > 0.0:
            span = math.log(top / c.cutoff_w) / self._rate
            available = top * -math.expm1(-self._rate * span) / self._rate
            if want <= available:
                return elapsed - math.log1p(-want * self._rate / top) / self._rate
            want -= available
            elapsed += span
        if c.standby_w <= 0.0:
            return None if want > 0.0 else elapsed
        return elapsed + want / c.standby_w
