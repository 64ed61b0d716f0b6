"""The service's steady clock (reference_server/clock.py): follows the wall clock while it
agrees with the monotonic clock, absorbs a step gradually, never goes backwards."""
from __future__ import annotations

import pytest

from reference_server.clock import SteadyClock


class Clocks:
    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.monotonic = 50.0
        self.steps: list[float] = []

    def clock(self) -> SteadyClock:
        return SteadyClock(lambda: self.wall, monotonic=lambda: self.monotonic,
                           on_step=self.steps.append)

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.monotonic += seconds


def test_follows_the_wall_clock_within_the_tolerance() -> None:
    c = Clocks()
    clock = c.clock()
    start = clock()
    c.advance(10)
    c.wall += 0.5  # drift and slewing are followed at once

    assert start + 10.5 == clock()
    assert [] == c.steps


def test_a_step_forward_is_absorbed_at_the_slew_rate() -> None:
    c = Clocks()
    clock = c.clock()
    start = clock()
    c.wall += 3600
    c.advance(10)

    assert start + 10 + 1.0 == pytest.approx(clock())  # 10 s elapsed, 10 % of it
    assert [pytest.approx(3600.0)] == c.steps
    assert clock.absorbing
    for _ in range(40_000):
        c.advance(1)
        clock()
    assert c.wall == clock()  # absorbed: the timeline is the wall clock again
    assert not clock.absorbing
    assert 1 == len(c.steps)


def test_a_step_back_never_runs_backwards() -> None:
    c = Clocks()
    clock = c.clock()
    readings = [clock()]
    c.wall -= 3600
    for _ in range(10):
        c.advance(1)
        readings.append(clock())

    assert readings == sorted(readings)
    assert readings[-1] - readings[0] == pytest.approx(10 * 0.9)


@pytest.mark.parametrize(("tolerance", "slew"), [(-1.0, 0.1), (1.0, 1.0), (1.0, -0.1)])
def test_bad_settings(tolerance: float, slew: float) -> None:
    with pytest.raises(ValueError):
        SteadyClock(lambda: 0.0, monotonic=lambda: 0.0, tolerance=tolerance, slew=slew)
