# The service's time (api.md §11.4: timers run on the monotonic clock).
#
# The charging service keeps one timeline for its timers and the timestamps it
# records: order sessions set deadlines (start timeout, lost order, overdue end) in
# the same seconds they stamp events with, devices fall silent after offline_after
# since their last frame, queued commands expire after command_ttl. Read straight
# from the wall clock, a step of the wall clock (an operator fixing the date, NTP
# stepping after a long outage, a VM restored from a snapshot) moved every one of
# those deadlines at once: a one-hour step forward failed every pending order,
# expired every queued command and took every device offline in one tick.
#
# SteadyClock advances with the monotonic clock (trio's, which also drives every
# sleep) and follows the wall clock only while the two agree: each reading is the
# previous one plus the monotonic time elapsed, corrected to the wall clock when the
# difference is within ``tolerance`` (the ordinary drift and slewing of a
# disciplined clock). A larger difference is a step: it is reported once and then
# absorbed gradually, at most ``slew`` seconds per second elapsed (10 %: a one-hour
# step is absorbed in ten hours, and no timer runs more than 10 % early or late
# meanwhile). The reading never goes backwards. So timers keep their length across
# a step, and the recorded times come back to the wall clock once it is absorbed.
from __future__ import annotations

from collections.abc import Callable

import trio

__all__ = ["SteadyClock"]


class SteadyClock:
    """Unix time that advances with the monotonic clock and follows the wall clock
    without jumping.

    Call it for the time. It must be called from within ``trio.run`` (the monotonic
    reading is :func:`trio.current_time`) unless *monotonic* is given.

    Args:
        wall: The wall clock (Unix seconds), e.g. :func:`time.time`.
        monotonic: The monotonic clock; trio's by default.
        tolerance: Largest difference from the wall clock followed at once, seconds.
        slew: Largest correction per second elapsed while a step is absorbed.
        on_step: Called with the size of a step (wall minus this clock, seconds)
            when one is first seen.

    Raises:
        ValueError: A negative tolerance, or a slew outside [0, 1).
    """

    def __init__(self, wall: Callable[[], float], *,
                 monotonic: Callable[[], float] = trio.current_time, tolerance: float = 1.0,
                 slew: float = 0.1, on_step: Callable[[float], None] | None = None) -> None:
        if tolerance < 0 or not 0 <= slew < 1:
            raise ValueError("tolerance must be ≥ 0 and slew in [0, 1)")
        self._wall = wall
        self._monotonic = monotonic
        self.tolerance = tolerance
        self.slew = slew
        self._on_step = on_step
        self._last: float | None = None
        self._last_monotonic = 0.0
        self._absorbing = False

    @property
    def absorbing(self) -> bool:
        """True while a step of the wall clock is being absorbed."""
        return self._absorbing

    def __call__(self) -> float:
        wall = self._wall()
        monotonic = self._monotonic()
        last = self._last
        if last is None:
            self._last, self._last_monotonic = wall, monotonic
            return wall
        elapsed = max(0.0, monotonic - self._last_monotonic)
        expected = last + elapsed
        error = wall - expected
        if abs(error) <= self.tolerance:
            now = wall
            self._absorbing = False
        else:
            if not self._absorbing:
                self._absorbing = True
                if self._on_step is not None:
                    self._on_step(error)
            limit = self.slew * elapsed
            now = expected + max(-limit, min(limit, error))
        now = max(now, last)
        self._last, self._last_monotonic = now, monotonic
        return now
