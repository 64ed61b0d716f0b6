# Simulated time for the device simulator. Every device timer, every charge and
# every duration a device reports runs on one SimClock: simulated seconds pass
# ``speed`` times faster than trio's clock, so an hour-long charge at ×60 takes a
# minute. The clock is a linear map over trio.current_time(), so it needs no task
# of its own and works under trio's MockClock (autojump) in tests.
from __future__ import annotations

import math

import trio

__all__ = ["SimClock"]


class SimClock:
    """Simulated seconds, running *speed* times faster than trio's clock.

    Simulated time 0 is the moment the clock is first read inside a trio run
    (:meth:`Fleet.connect` reads it when the fleet starts), or the trio time given
    as *origin*.

    Args:
        speed: Simulated seconds per real second (60 makes an hour last a minute).
        origin: The trio time (:func:`trio.current_time`) that is simulated time 0.

    Raises:
        ValueError: *speed* is not a positive finite number.
    """

    def __init__(self, speed: float = 1.0, *, origin: float | None = None) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number, got {speed!r}")
        self.speed = float(speed)
        self._origin = origin

    @property
    def origin(self) -> float:
        """The trio time of simulated time 0 (fixed at the first reading)."""
        if self._origin is None:
            self._origin = trio.current_time()
        return self._origin

    def now(self) -> float:
        """The current simulated time, in seconds since time 0."""
        return self.to_sim(trio.current_time())

    def to_sim(self, trio_time: float) -> float:
        """The simulated time at trio time *trio_time*."""
        return (trio_time - self.origin) * self.speed

    def to_trio(self, sim_time: float) -> float:
        """The trio time (a deadline for :func:`trio.sleep_until`) of *sim_time*."""
        if sim_time == math.inf:
            return math.inf
        return self.origin + sim_time / self.speed

    def real_seconds(self, sim_seconds: float) -> float:
        """How long *sim_seconds* of simulated time take in real time."""
        return sim_seconds / self.speed

    async def sleep(self, seconds: float) -> None:
        """Sleep for *seconds* of simulated time."""
        await trio.sleep(max(0.0, seconds) / self.speed)

    async def sleep_until(self, sim_time: float) -> None:
        """Sleep until the simulated time is *sim_time* (at once if it has passed)."""
        await trio.sleep_until(self.to_trio(sim_time))

    def __repr__(self) -> str:
        return f"SimClock(speed={self.speed:g})"
