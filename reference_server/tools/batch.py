# ``python -m reference_server batch``: start many orders through a running server's
# HTTP API, follow each to its final state, optionally stop them, and summarise what
# happened: how many started and completed, why the others failed (HTTP error codes,
# order end reasons), and latency percentiles of the charge call and of the wait from
# pending to charging.
#
# Orders are spread round-robin over every (device, port) pair; at most --concurrency
# of them are in flight (from the charge call to their final state) at once. More
# orders than pairs reuse ports, so a port still busy shows as a 409 port_busy.
#
# Exit status: 0 when every order completed, 1 when one did not (or the server cannot
# be reached or refuses the key before the first order), 2 for a usage error.
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO, TypedDict, cast

import trio

from .client import ApiClient, ApiError, KeyRefused, ServerUnreachable, api_client

__all__ = ["BatchOptions", "BatchSummary", "OrderOutcome", "main", "parse_arguments",
           "percentile", "run_batch"]

#: Order states after which nothing changes any more.
FINAL_STATES = frozenset({"completed", "failed", "cancelled", "exception"})

DESCRIPTION = """\
Start many charging orders (charge by duration) through a running server's HTTP
API, spread over the given devices and ports, wait for each to end (or stop it after
--stop-after seconds of charging), and print a summary: attempted, started, charging,
completed, failures by reason, and latency percentiles."""

EPILOG = """\
examples:
  batch --url http://127.0.0.1:7055 --api-key KEY --devices 82210225000520 --ports 1,2
  batch --url http://127.0.0.1:7055 --api-key KEY --devices A,B --ports 1,2 \\
        --orders 40 --concurrency 4 --duration-s 180 --stop-after 30 --json

exit status: 0 when every order completed, 1 otherwise (also when the server cannot
be reached or refuses the key), 2 for a usage error. The key needs the operate role."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchOptions:
    """What to start and how to follow it.

    Attributes:
        url: The server's HTTP address.
        api_key: A key with the ``operate`` role.
        devices: Device ids, used round-robin with *ports*.
        ports: Port numbers (1–16).
        orders: How many orders to start (default: one per device and port).
        duration_s: Each order's requested duration (charge_mode 1).
        amount: Each order's prepaid amount in cents.
        concurrency: Orders in flight at once.
        stop_after: Stop an order this many seconds after it started charging
            (None: let it end by itself).
        timeout: Seconds an order may take from the charge call to a final
            state before it counts as ``timeout``.
        poll_interval: Seconds between looks at a running order.
        as_json: Print the summary as JSON.
    """

    url: str
    api_key: str
    devices: tuple[str, ...]
    ports: tuple[int, ...]
    orders: int
    duration_s: int = 60
    amount: int = 100
    concurrency: int = 4
    stop_after: float | None = None
    timeout: float = 120.0
    poll_interval: float = 0.5
    as_json: bool = False


def _id_list(text: str) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in text.split(",") if part.strip())
    if not ids:
        raise argparse.ArgumentTypeError("give at least one id")
    return ids


def _port_list(text: str) -> tuple[int, ...]:
    try:
        ports = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of port numbers") from None
    if not ports or not all(1 <= p <= 16 for p in ports):
        raise argparse.ArgumentTypeError("ports are numbers from 1 to 16, comma-separated")
    return ports


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference_server batch", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the server's HTTP API, e.g. "
                                                     "http://127.0.0.1:7055")
    parser.add_argument("--api-key", required=True, metavar="KEY",
                        help="an API key with the operate role")
    parser.add_argument("--devices", required=True, type=_id_list, metavar="ID[,ID...]",
                        help="the devices to charge on")
    parser.add_argument("--ports", type=_port_list, default=(1,), metavar="N[,N...]",
                        help="the ports of each device to use (default 1)")
    parser.add_argument("--orders", type=int, metavar="N",
                        help="orders to start (default: one per device and port)")
    parser.add_argument("--duration-s", type=int, default=60, metavar="SECONDS",
                        help="each order's charging time (default 60)")
    parser.add_argument("--amount", type=int, default=100, metavar="CENTS",
                        help="each order's prepaid amount in cents (default 100)")
    parser.add_argument("--concurrency", type=int, default=4, metavar="C",
                        help="orders in flight at once (default 4)")
    parser.add_argument("--stop-after", type=float, metavar="SECONDS",
                        help="stop each order this long after it starts charging")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="longest wait for one order to end (default: its duration "
                             "plus 60 s)")
    parser.add_argument("--poll-interval", type=float, default=0.5, metavar="SECONDS",
                        help="seconds between looks at a running order (default 0.5); "
                             "the resolution of the pending→charging figures")
    parser.add_argument("--json", action="store_true", dest="as_json",
                        help="print the summary as JSON")
    return parser


def parse_arguments(argv: Sequence[str]) -> BatchOptions:
    """The options of a command line; exits 2 (argparse) on a bad one."""
    parser = _parser()
    args = parser.parse_args(argv)
    orders = (len(args.devices) * len(args.ports) if args.orders is None else args.orders)
    if orders < 1:
        parser.error("--orders must be at least 1")
    if args.duration_s < 1 or args.amount < 0:
        parser.error("--duration-s must be positive and --amount not negative")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if args.poll_interval <= 0 or (args.timeout is not None and args.timeout <= 0):
        parser.error("--poll-interval and --timeout must be positive")
    if args.stop_after is not None and args.stop_after < 0:
        parser.error("--stop-after must not be negative")
    timeout = args.duration_s + 60.0 if args.timeout is None else args.timeout
    return BatchOptions(url=args.url, api_key=args.api_key, devices=args.devices,
                        ports=args.ports, orders=orders, duration_s=args.duration_s,
                        amount=args.amount, concurrency=args.concurrency,
                        stop_after=args.stop_after, timeout=timeout,
                        poll_interval=args.poll_interval, as_json=args.as_json)


# --- one order -------------------------------------------------------------------------------

@dataclass(slots=True)
class OrderOutcome:
    """What happened to one attempted order.

    Attributes:
        device_phy_id, port_no: Where it was started.
        order_no: None when the charge call failed.
        call_ms: How long the charge call took (failed calls included).
        to_charging_ms: From the charge answer to the first look that saw
            ``charging`` (None if it never charged).
        status: The last status seen.
        end_reason: The order's end reason, once final.
        failure: Why it does not count as completed, e.g. ``HTTP 409 port_busy``,
            ``failed: no_confirmation``, ``timeout (charging)``; None when completed.
        stopped: A stop was requested.
    """

    device_phy_id: str
    port_no: int
    order_no: str | None = None
    call_ms: float | None = None
    to_charging_ms: float | None = None
    status: str | None = None
    end_reason: str | None = None
    failure: str | None = None
    stopped: bool = False


class _OrderData(TypedDict):
    """The parts of an order's answer a batch looks at."""

    order_no: str
    status: str
    end_reason: str | None


async def _look(client: ApiClient, order_no: str) -> _OrderData | None:
    """The order now, or None when the look failed in a way worth retrying."""
    try:
        answer = await client.get(f"/orders/{order_no}")
    except ApiError as err:
        if err.status == 429 or err.status >= 500:
            return None
        raise
    return cast("_OrderData", answer.data)


async def _follow(client: ApiClient, options: BatchOptions, outcome: OrderOutcome,
                  answered: float) -> None:
    assert outcome.order_no is not None
    charging_since: float | None = None
    with trio.move_on_after(options.timeout - (time.monotonic() - answered)):
        while True:
            order = await _look(client, outcome.order_no)
            if order is not None:
                outcome.status = order["status"]
                if order["status"] == "charging" and charging_since is None:
                    charging_since = time.monotonic()
                    outcome.to_charging_ms = (charging_since - answered) * 1000
                if order["status"] in FINAL_STATES:
                    outcome.end_reason = order["end_reason"]
                    if order["status"] != "completed":
                        outcome.failure = f"{order['status']}: {order['end_reason'] or '-'}"
                    return
                if (options.stop_after is not None and charging_since is not None
                        and not outcome.stopped
                        and time.monotonic() - charging_since >= options.stop_after):
                    outcome.stopped = True
                    await client.call("POST", f"/devices/{outcome.device_phy_id}/stop",
                                      body={"port_no": outcome.port_no,
                                            "order_no": outcome.order_no,
                                            "reason": "batch stop"})
            await trio.sleep(options.poll_interval)
    outcome.failure = f"timeout ({outcome.status})"


async def _run_order(client: ApiClient, options: BatchOptions, outcome: OrderOutcome) -> None:
    body = {"port_no": outcome.port_no, "charge_mode": 1, "duration": options.duration_s,
            "amount": options.amount}
    called = time.monotonic()
    try:
        answer = await client.call("POST", f"/devices/{outcome.device_phy_id}/charge",
                                   body=body)
    except ApiError as err:
        outcome.call_ms = (time.monotonic() - called) * 1000
        outcome.failure = f"HTTP {err.status} {err.error}"
        return
    except ServerUnreachable as err:
        outcome.call_ms = (time.monotonic() - called) * 1000
        outcome.failure = f"unreachable: {err.__cause__.__class__.__name__}"
        return
    answered = time.monotonic()
    outcome.call_ms = (answered - called) * 1000
    order = cast("_OrderData", answer.data)
    outcome.order_no = order["order_no"]
    outcome.status = order["status"]
    try:
        await _follow(client, options, outcome, answered)
    except ApiError as err:
        outcome.failure = f"while following: HTTP {err.status} {err.error}"
    except ServerUnreachable as err:
        outcome.failure = f"while following: unreachable: {err.__cause__.__class__.__name__}"


# --- the summary -----------------------------------------------------------------------------

def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (*share* from 0 to 1) of *values*; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


class Latency(TypedDict):
    """Percentiles in milliseconds (None without a single value)."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


class BatchTotals(TypedDict):
    """The summary's figures (the JSON summary, less the per-order list)."""

    attempted: int
    started: int
    charged: int
    stopped: int
    completed: int
    failed: int
    failures: dict[str, int]
    end_reasons: dict[str, int]
    charge_call_ms: Latency
    pending_to_charging_ms: Latency
    wall_s: float


def _latency(values: Sequence[float]) -> Latency:
    return Latency(count=len(values), p50=_round(percentile(values, 0.50)),
                   p95=_round(percentile(values, 0.95)), p99=_round(percentile(values, 0.99)),
                   max=_round(max(values)) if values else None)


@dataclass(slots=True)
class BatchSummary:
    """The run's outcome, per order and in totals."""

    outcomes: list[OrderOutcome] = field(default_factory=list)
    wall_s: float = 0.0

    def totals(self) -> BatchTotals:
        """Counts, failure reasons and latency figures."""
        completed = [o for o in self.outcomes if o.failure is None]
        return BatchTotals(
            attempted=len(self.outcomes),
            started=sum(1 for o in self.outcomes if o.order_no is not None),
            charged=sum(1 for o in self.outcomes if o.to_charging_ms is not None),
            stopped=sum(1 for o in self.outcomes if o.stopped),
            completed=len(completed),
            failed=len(self.outcomes) - len(completed),
            failures=dict(Counter(o.failure for o in self.outcomes
                                  if o.failure is not None).most_common()),
            end_reasons=dict(Counter(o.end_reason or "-" for o in completed).most_common()),
            charge_call_ms=_latency([o.call_ms for o in self.outcomes
                                     if o.call_ms is not None]),
            pending_to_charging_ms=_latency([o.to_charging_ms for o in self.outcomes
                                             if o.to_charging_ms is not None]),
            wall_s=round(self.wall_s, 3))

    def to_json(self) -> str:
        outcomes = [{"device_phy_id": o.device_phy_id, "port_no": o.port_no,
                     "order_no": o.order_no, "status": o.status, "end_reason": o.end_reason,
                     "failure": o.failure, "stopped": o.stopped,
                     "call_ms": _round(o.call_ms), "to_charging_ms": _round(o.to_charging_ms)}
                    for o in self.outcomes]
        return json.dumps({**self.totals(), "orders": outcomes}, indent=2) + "\n"

    def to_text(self) -> str:
        t = self.totals()
        lines = [f"batch: {t['attempted']} attempted, {t['started']} started, "
                 f"{t['charged']} charged, {t['completed']} completed, {t['failed']} failed "
                 f"({t['stopped']} stopped on request) in {t['wall_s']:.1f} s", ""]
        lines.append("completed by end reason")
        lines += [f"  {count:5d}  {reason}" for reason, count in t["end_reasons"].items()]
        if not t["end_reasons"]:
            lines.append("      -")
        lines.append("failed by reason")
        lines += [f"  {count:5d}  {reason}" for reason, count in t["failures"].items()]
        if not t["failures"]:
            lines.append("      -")
        lines += ["", "latency ms             count      p50      p95      p99      max"]
        for label, figures in (("charge call", t["charge_call_ms"]),
                               ("pending → charging", t["pending_to_charging_ms"])):
            cells = "".join(f"{_cell(v):>9}" for v in (figures["p50"], figures["p95"],
                                                        figures["p99"], figures["max"]))
            lines.append(f"  {label:<19}{figures['count']:>7}{cells}")
        return "\n".join(lines) + "\n"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


# --- the run ---------------------------------------------------------------------------------

async def run_batch(options: BatchOptions, out: TextIO, err: TextIO) -> int:
    """Start, follow and summarise the orders; the exit status."""
    summary = BatchSummary(outcomes=[
        OrderOutcome(device_phy_id=options.devices[i % len(options.devices)],
                     port_no=options.ports[(i // len(options.devices)) % len(options.ports)])
        for i in range(options.orders)])
    limiter = trio.CapacityLimiter(options.concurrency)
    async with api_client(options.url, options.api_key,
                          max_connections=options.concurrency + 2) as client:
        try:
            # One look first, so that a wrong address or key is one clear message and
            # not a column of identical failures.
            await client.get("/devices", limit=1)
        except (ServerUnreachable, ApiError) as problem:
            hint = ("; batch needs a key with the operate role"
                    if isinstance(problem, KeyRefused) else "")
            print(f"batch: {problem}{hint}", file=err)
            return 1

        async def one(outcome: OrderOutcome) -> None:
            async with limiter:
                await _run_order(client, options, outcome)

        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            for outcome in summary.outcomes:
                nursery.start_soon(one, outcome)
        summary.wall_s = time.monotonic() - started
    out.write(summary.to_json() if options.as_json else summary.to_text())
    out.flush()
    return 0 if summary.totals()["failed"] == 0 else 1


def main(argv: Sequence[str]) -> int:
    """The ``batch`` subcommand."""
    options = parse_arguments(argv)
    try:
        return trio.run(run_batch, options, sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        return 1
