# ``python -m reference_server simulate``: run a fleet of simulated devices against
# a server from the command line, optionally following a scenario file, printing
# one status line every few seconds. A thin shell over the Python API (Fleet,
# run_scenario); every behaviour lives there.
#
# Exit status: 0 when the scenario or --duration ran to its end (or Ctrl-C ended
# an open run), 1 when a scenario step failed or a device never connected, 2 for
# a usage error (bad flag, unreadable or invalid scenario file).
from __future__ import annotations

import argparse
import dataclasses
import math
import random
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

import trio

from ..logs import LEVELS, Logger
from .charger import Charger
from .clock import SimClock
from .fleet import Fleet
from .records import FleetStatistics
from .scenario import (
    Scenario,
    ScenarioError,
    StepFailure,
    load_scenario,
    parse_duration,
    run_scenario,
    with_cadence,
)
from .specs import DeviceProfile, DeviceSpec, fleet_specs

__all__ = ["main"]

_DESCRIPTION = """\
Simulated BKV/GN gateways and AP3000 units for the reference server: they
register, heartbeat, answer commands and charge e-bikes on simulated time
(--speed 60 runs an hour in a minute). See docs/simulator.rst."""

_EPILOG = """\
examples:
  simulate --server 127.0.0.1:7065 --bkv 2 --bkv-sockets 4 --ap3000 3 --ap3000-ports 10
  simulate --server 127.0.0.1:7065 --ap3000 1000 --cadence 11 --ramp 11 --duration 10m
  simulate --server 127.0.0.1:7065 --scenario plan.toml --speed 60

exit status: 0 at the end of the scenario or --duration, 1 if a scenario step
failed or a device never connected, 2 for a usage error."""


@dataclass(frozen=True, slots=True)
class _Options:
    host: str
    port: int
    specs: tuple[DeviceSpec, ...]
    scenario: Scenario | None
    speed: float
    seed: int
    duration: float | None
    plugged: float
    ramp: float
    latency: float
    status_every: float
    log_level: str


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference_server simulate", description=_DESCRIPTION,
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", metavar="HOST:PORT",
                        help="the server's device TCP address (or 'server' in the scenario)")
    parser.add_argument("--bkv", type=int, default=0, metavar="N",
                        help="number of BKV/GN gateways to add (ids 8290…)")
    parser.add_argument("--bkv-sockets", type=int, default=1, metavar="K",
                        help="sockets per BKV gateway, 1-250, two ports each (default 1)")
    parser.add_argument("--ap3000", type=int, default=0, metavar="M",
                        help="number of AP3000 units to add")
    parser.add_argument("--ap3000-ports", type=int, default=2, metavar="P",
                        help="ports per AP3000 unit, 1-16 (default 2)")
    parser.add_argument("--cadence", type=_seconds, metavar="SECONDS",
                        help="heartbeat and progress period of every device (the plan's "
                             "devices: 11); default: per protocol (BKV 60 s, AP3000 30 s; "
                             "progress 5 min)")
    parser.add_argument("--speed", type=float, metavar="X",
                        help="simulated seconds per real second (default 1, or the "
                             "scenario's)")
    parser.add_argument("--scenario", metavar="FILE", help="a scenario file (TOML)")
    parser.add_argument("--duration", type=_seconds, metavar="SECONDS",
                        help="stop after this much simulated time ('90s', '2h' …); default: "
                             "the scenario's end, or run until Ctrl-C")
    parser.add_argument("--seed", type=int, metavar="S",
                        help="seed for every random choice (default 0, or the scenario's)")
    parser.add_argument("--plugged", type=float, default=0.0, metavar="FRACTION",
                        help="share of ports with a charger plugged in at the start, 0-1 "
                             "(default 0)")
    parser.add_argument("--ramp", type=_seconds, default=0.0, metavar="SECONDS",
                        help="spread first connections over this much simulated time")
    parser.add_argument("--latency", type=float, default=0.0, metavar="REAL_SECONDS",
                        help="one-way delay of every device write, in real seconds")
    parser.add_argument("--status-every", type=float, default=5.0, metavar="REAL_SECONDS",
                        help="print a status line this often (default 5; 0 = never)")
    parser.add_argument("--log-level", choices=list(LEVELS), default="warning",
                        help="device log lines on stderr (default warning)")
    return parser


def _seconds(text: str) -> float:
    try:
        return parse_duration(text, "value")
    except ScenarioError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--server must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _options(args: argparse.Namespace) -> _Options:
    """Combine the flags and the scenario file; raises ValueError/ScenarioError."""
    scenario = load_scenario(args.scenario) if args.scenario else None
    server = args.server or (scenario.server if scenario else None)
    if server is None:
        raise ValueError("give --server HOST:PORT (or 'server' in the scenario file)")
    host, port = _address(server)
    if not 0.0 <= args.plugged <= 1.0:
        raise ValueError("--plugged must be between 0 and 1")
    if args.bkv < 0 or args.ap3000 < 0:
        raise ValueError("device counts cannot be negative")
    specs = list(scenario.devices if scenario else ())
    specs += fleet_specs(bkv=args.bkv, bkv_sockets=args.bkv_sockets, ap3000=args.ap3000,
                         ap3000_ports=args.ap3000_ports, profile=DeviceProfile())
    if not specs:
        raise ValueError("no devices: give --bkv N and/or --ap3000 M, or a scenario "
                         "with [[devices]]")
    if len({s.phy_id for s in specs}) != len(specs):
        raise ValueError("a generated device id repeats one of the scenario's")
    cadence = args.cadence or (scenario.cadence if scenario else None)
    if cadence is not None:
        if cadence <= 0:
            raise ValueError("--cadence must be positive")
        specs = [with_cadence(s, cadence) for s in specs]
    speed = args.speed or (scenario.speed if scenario and scenario.speed else 1.0)
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError("--speed must be positive")
    seed = args.seed if args.seed is not None else (
        scenario.seed if scenario and scenario.seed is not None else 0)
    duration = args.duration if args.duration is not None else (
        scenario.end if scenario else None)
    return _Options(host=host, port=port, specs=tuple(specs), scenario=scenario, speed=speed,
                    seed=seed, duration=duration, plugged=args.plugged, ramp=args.ramp,
                    latency=max(0.0, args.latency), status_every=args.status_every,
                    log_level=args.log_level)


def main(argv: Sequence[str]) -> int:
    """Run the simulator with command-line arguments *argv*; return the exit status.

    ``--help`` and argument errors end with :exc:`SystemExit` (0 and 2), as
    :mod:`argparse` does.
    """
    args = _parser().parse_args(list(argv))
    try:
        options = _options(args)
    except (ValueError, ScenarioError) as err:
        print(f"simulate: {err}", file=sys.stderr)
        return 2
    return trio.run(_run, options, sys.stdout)


async def _run(options: _Options, out: TextIO) -> int:
    clock = SimClock(options.speed)
    log = Logger(options.log_level)
    failures: list[StepFailure] = []
    async with Fleet.connect(options.host, options.port, options.specs, clock=clock,
                             seed=options.seed, logger=log, journal_limit=0,
                             ramp_up=options.ramp, latency=options.latency) as fleet:
        await _plug_in(fleet, options)
        out.write(f"simulating {len(fleet)} devices against {options.host}:{options.port} "
                  f"at ×{options.speed:g}" + (f" for {_clock_text(options.duration)}"
                                             if options.duration is not None else "") + "\n")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
            if options.status_every > 0:
                nursery.start_soon(_print_status, fleet, options, out)
            if options.scenario is not None:
                scenario = options.scenario
                if options.duration is not None:
                    scenario = dataclasses.replace(scenario, duration=options.duration)
                with trio.move_on_at(clock.to_trio(scenario.end)):
                    failures = await run_scenario(fleet, scenario, logger=log)
            elif options.duration is not None:
                await clock.sleep(options.duration)
            else:
                await trio.sleep_forever()
            nursery.cancel_scope.cancel()
        stats = fleet.statistics()
        out.write(_status_line(clock, options, stats) + "\n")
    for failure in failures:
        out.write(f"failed: {failure.step.describe()}: {failure.error}\n")
    never = stats.devices - stats.ever_connected
    if never:
        out.write(f"failed: {never} of {stats.devices} devices never connected\n")
    out.flush()
    return 1 if failures or never else 0


async def _plug_in(fleet: Fleet, options: _Options) -> None:
    """Plug default chargers (random initial charge) into a share of the ports."""
    if options.plugged <= 0:
        return
    rng = random.Random(f"{options.seed}:plugged")
    for device in fleet:
        for port in device.ports:
            if rng.random() < options.plugged:
                await port.plug_in(Charger(soc=round(rng.uniform(0.1, 0.6), 3)))


async def _stop_on_signal(scope: trio.CancelScope) -> None:
    """Ctrl-C (or SIGTERM) ends an open-ended run cleanly."""
    if threading.current_thread() is not threading.main_thread():
        return  # run from a test's thread: signals are not ours to take
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


async def _print_status(fleet: Fleet, options: _Options, out: TextIO) -> None:
    while True:
        await trio.sleep(options.status_every)
        out.write(_status_line(fleet.clock, options, fleet.statistics()) + "\n")
        out.flush()


def _status_line(clock: SimClock, options: _Options, stats: FleetStatistics) -> str:
    return (f"[sim {_clock_text(clock.now())} ×{options.speed:g}] "
            f"connected {stats.connected}/{stats.devices} · charging ports "
            f"{stats.charging_ports} · frames sent {stats.frames_sent} received "
            f"{stats.frames_received} · reconnects {stats.reconnects} · errors "
            f"{stats.errors + stats.connect_failures}")


def _clock_text(seconds: float | None) -> str:
    total = int(seconds or 0)
    return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"
