# The crowd of the "1000+ devices online" acceptance item. It runs in a child
# process so that the CPU the plan measures in its own process is the server's,
# not the simulated devices' (which cost about as much as the server does).
#
# The child speaks JSON lines on stdout: one when the measurement window opens,
# one when it closes (each with the fleet's counters; the second also with the
# heartbeat latencies of the window), and it keeps its devices connected until its
# stdin closes, so the parent can count them on the server.
#
# Heartbeat latency is measured at the devices, on real time (the crowd's clock
# runs at speed 1 whatever --speed says): from the moment a device's heartbeat
# fell due and was queued to the moment the server's answer was read. It includes
# the child's own scheduling of its devices, so the plan measures it with a small
# crowd of probes (a lightly loaded child) while the big one loads the server.
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from bkvcodec import DeviceHeartbeat, ServerAnswered

from ..simulator import Fleet, FleetStatistics, SimClock, SimDevice, fleet_specs
from .runner import HEARTBEAT_ANSWERS, PLAN_CADENCE, plan_profile

__all__ = ["PROBE_FIRST_INDEX", "Crowd", "crowd_running", "heartbeat_latencies"]

#: Simulated device ids start here, clear of the plan's own devices.
FIRST_INDEX = 10_000
#: Where the ids of a probe crowd start, clear of a big crowd's.
PROBE_FIRST_INDEX = 50_000
#: Journal entries kept per crowd device: enough for the heartbeats of a window.
JOURNAL_LIMIT = 64


@dataclass(slots=True)
class Crowd:
    """The parent's handle on the child process."""

    _process: trio.Process
    _stdout: trio.abc.ReceiveStream
    _buffer: bytearray = dataclasses.field(default_factory=bytearray)
    #: Real seconds from heartbeat to answer, of every heartbeat sent in the window
    #: (filled by the report that closes it).
    heartbeat_latencies: list[float] = dataclasses.field(default_factory=list)

    async def next_statistics(self) -> FleetStatistics:
        """The counters of the child's next report (it sends one per window edge).

        Raises:
            RuntimeError: The child ended without reporting.
        """
        while b"\n" not in self._buffer:
            chunk = await self._stdout.receive_some()
            if not chunk:
                raise RuntimeError(f"the device crowd ended early ({self._process.returncode})")
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer[:] = rest
        report = json.loads(line)
        self.heartbeat_latencies = [float(x) for x in report["heartbeat_latencies"]]
        return FleetStatistics(**report["statistics"])


@asynccontextmanager
async def crowd_running(host: str, port: int, count: int, window: float,
                        settle: float = PLAN_CADENCE, *, first_index: int = FIRST_INDEX
                        ) -> AsyncIterator[Crowd]:
    """*count* simulated devices (half BKV, half AP3000) at the plan's cadence in a
    child process. Once all are registered and *settle* seconds more have passed (the
    connection burst is over), it reports when a *window*-second measurement starts
    and ends; the devices disconnect when the block exits."""
    command = [sys.executable, "-m", __name__, host, str(port), str(count), str(window),
               str(settle), str(first_index)]
    process = await trio.lowlevel.open_process(command, stdin=subprocess.PIPE,
                                               stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    try:
        yield Crowd(process, process.stdout)
    finally:
        with trio.CancelScope(shield=True):
            await process.stdin.aclose()
            with trio.move_on_after(30):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


async def _run(host: str, port: int, count: int, window: float, settle: float,
               first_index: int) -> None:
    specs = fleet_specs(bkv=count // 2, ap3000=count - count // 2, first_index=first_index,
                        profile=plan_profile())
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    clock = SimClock(1.0)
    async with Fleet.connect(host, port, specs, clock=clock, ramp_up=5.0,
                             journal_limit=JOURNAL_LIMIT) as fleet:
        await fleet.wait_registered()
        await trio.sleep(settle)
        opened = clock.now()
        _report(fleet.statistics(), [])
        await trio.sleep(window)
        closed = clock.now()
        # Answers to the window's last heartbeats may still be under way.
        await trio.sleep(1.0)
        latencies = [latency for device in fleet.devices
                     for latency in heartbeat_latencies(device, opened, closed)]
        _report(fleet.statistics(), latencies)
        while await stdin.receive_some():
            pass


def heartbeat_latencies(device: SimDevice, since: float, until: float) -> list[float]:
    """Seconds of *device*'s clock from each heartbeat sent in [*since*, *until*) to
    the server's answer (answers come in order on the connection). A heartbeat left
    unanswered (the link dropped) is not counted."""
    latencies: list[float] = []
    pending: list[float] = []
    for entry in device.journal:
        if entry.direction == "link":
            pending.clear()
        elif entry.direction == "sent" and isinstance(entry.item, DeviceHeartbeat):
            pending.append(entry.at)
        elif (entry.direction == "received" and isinstance(entry.item, ServerAnswered)
              and entry.item.name in HEARTBEAT_ANSWERS and pending):
            sent = pending.pop(0)
            if since <= sent < until:
                latencies.append((entry.at - sent) / device.clock.speed)
    return latencies


def _report(stats: FleetStatistics, latencies: list[float]) -> None:
    sys.stdout.write(json.dumps({"statistics": dataclasses.asdict(stats),
                                 "heartbeat_latencies": [round(x, 6) for x in latencies]})
                     + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _host, _port, _count, _window, _settle, _first = sys.argv[1:]
    trio.run(_run, _host, int(_port), int(_count), float(_window), float(_settle), int(_first))
