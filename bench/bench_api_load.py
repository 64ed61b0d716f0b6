"""API load: the plan's stress 1 and a sustained read run, server in its own process.

Starts ``python -m reference_server`` as a separate process (temporary database, free
loopback ports, ``--offline-after 30``, ``--log-level warning``, default rate limits) and
connects the plan's BKV device ``82210225000520`` over TCP (it heartbeats, and acknowledges
the one start command it gets, reporting progress like a charging port). Then:

1. **Charge stress** (test-plan.md §8.7 stress 1, ``ab -n 1000 -c 10``): 1000 ``POST
   /devices/82210225000520/charge`` with ``{port_no 1, charge_mode 1, duration 60, amount
   100}`` from 10 concurrent clients, a new connection per request as ``ab`` does without
   ``-k``. One creates the order; the rest are meant to be refused: 409 ``port_busy`` while
   the order holds the port, 429 ``rate_limited`` beyond the device's 5 commands a second
   (or the key's 200 requests a second). Targets: QPS > 100, mean < 200 ms, error rate
   < 1 % (an error is any status other than 200, 409 and 429).
2. **Read run**: ``GET /devices/{id}`` and ``GET /orders/{order_no}`` in turn for
   ``--duration`` seconds at ``--concurrency`` keep-alive connections, split over
   ``--clients`` client processes (a Python HTTP client spends about as much CPU per request
   as the server; one process cannot show the server's rate). Every client connection
   uses one of ``--keys`` API keys, so the per-key limit (default 200/s) is not what is
   measured. Targets: ≥ 500 requests/s, p99 < 50 ms, error rate 0.

The client is httpx on trio. Run::

    .venv/bin/python bench/bench_api_load.py

Smoke mode (CI, about 15 s)::

    .venv/bin/python bench/bench_api_load.py --requests 200 --duration 5
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio
from bench_load import (
    API_KEY,
    REPO,
    LineReader,
    ProbeDevice,
    Report,
    Sampler,
    finish,
    histogram_delta,
    histogram_quantile,
    machine,
    parse_metrics,
    percentile,
    process_cpu,
    raise_fd_limit,
    start_server,
    system_cpu_busy,
)

from bkvcodec import CommandAcknowledged, MeterReading, ProgressReported, ProtocolFamily

PHY_ID = "82210225000520"
CHARGE_BODY = {"port_no": 1, "charge_mode": 1, "duration": 60, "amount": 100}
#: The statuses the charge stress means to get; anything else is an error.
INTENDED = frozenset({200, 409, 429})
API = "/api/v1/third"


def read_keys(count: int) -> list[str]:
    return [f"bench-read-key-{n}" for n in range(count)]


# --- the charge stress ------------------------------------------------------------------------

@dataclass
class Calls:
    """Statuses and latencies (seconds) of a run of requests."""

    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)  # no HTTP answer at all
    order_no: str | None = None

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + sum(self.failures.values())


async def charge_stress(base_url: str, requests: int, concurrency: int,
                        keepalive: bool) -> tuple[Calls, float]:
    """``ab -n requests -c concurrency`` of the plan's charge call. Returns the calls and
    the wall time."""
    calls = Calls()
    left = requests
    limits = httpx.Limits(max_connections=concurrency,
                          max_keepalive_connections=concurrency if keepalive else 0)

    async def client(api: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            try:
                response = await api.post(f"{API}/devices/{PHY_ID}/charge", json=CHARGE_BODY)
            except httpx.HTTPError as err:
                calls.failures[type(err).__name__] += 1
                continue
            calls.latencies.append(time.perf_counter() - started)
            calls.statuses[response.status_code] += 1
            if response.status_code == 200:
                calls.order_no = response.json()["data"]["order_no"]

    async with httpx.AsyncClient(base_url=base_url, headers={"X-Api-Key": API_KEY},
                                 limits=limits, timeout=30) as api:
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(client, api)
        return calls, time.perf_counter() - started


async def play_device(device: ProbeDevice) -> None:
    """The device takes its start command like a real one: acknowledge, then report."""
    _, start = await device.next_start()
    await device.send(CommandAcknowledged(command_id=start.command_id, phy_id=PHY_ID,
                                          business_no=0x101))
    await device.send(ProgressReported(
        phy_id=PHY_ID, socket_no=1, port_no=start.port_no, order_no=start.order_no,
        business_no=0x101, reading=MeterReading(duration_s=60, energy_centikwh=1,
                                                power_dw=1500)))


# --- the read run (client processes) -------------------------------------------------------

async def read_worker(args: argparse.Namespace) -> None:
    """One client process: GET device / GET order until the common end time."""
    keys: list[str] = args.worker_keys.split(",")
    paths = [f"{API}/devices/{PHY_ID}", f"{API}/orders/{args.order_no}"]
    calls = Calls()
    by_route: dict[str, list[float]] = {path: [] for path in paths}
    offset = time.time() - trio.current_time()

    async def client(n: int) -> None:
        headers = {"X-Api-Key": keys[n % len(keys)]}
        async with httpx.AsyncClient(base_url=args.base_url, headers=headers,
                                     timeout=30) as api:
            turn = n
            while time.time() < args.end:
                path = paths[turn % 2]
                turn += 1
                started = time.perf_counter()
                try:
                    response = await api.get(path)
                except httpx.HTTPError as err:
                    calls.failures[type(err).__name__] += 1
                    continue
                latency = time.perf_counter() - started
                if time.time() < args.start:
                    continue  # warming up: connections opened, caches warm
                calls.latencies.append(latency)
                by_route[path].append(latency)
                calls.statuses[response.status_code] += 1

    cpu_at_start = 0.0

    async def note_start() -> None:
        nonlocal cpu_at_start
        await trio.sleep_until(args.start - offset)
        times = os.times()
        cpu_at_start = times.user + times.system

    await trio.sleep_until(args.start - 1.0 - offset)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(note_start)
        for n in range(args.concurrency):
            nursery.start_soon(client, n + args.first)
    times = os.times()
    print(json.dumps({"statuses": dict(calls.statuses), "failures": dict(calls.failures),
                      "latencies": calls.latencies,
                      "by_route": {path: values for path, values in by_route.items()},
                      "cpu_seconds": times.user + times.system - cpu_at_start,
                      "cpu_seconds_total": times.user + times.system}), flush=True)


@dataclass
class ReadResults:
    calls: Calls
    by_route: dict[str, list[float]]
    client_cpu: float  # over the measured run
    client_cpu_total: float  # whole processes, start-up included


async def read_run(args: argparse.Namespace, base_url: str, order_no: str) -> ReadResults:
    """Start the client processes, gather what they measured."""
    start = time.time() + 2.0 + 0.5 * args.clients  # after every process has started
    end = start + args.duration
    keys = read_keys(args.keys)
    processes: list[tuple[trio.Process, LineReader]] = []
    for w in range(args.clients):
        first = args.concurrency * w // args.clients
        count = args.concurrency * (w + 1) // args.clients - first
        process = await trio.lowlevel.open_process(
            [sys.executable, __file__, "--worker", "--base-url", base_url,
             "--order-no", order_no, "--worker-keys", ",".join(keys),
             "--concurrency", str(count), "--first", str(first),
             "--start", repr(start), "--end", repr(end)],
            cwd=str(REPO), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        assert process.stdout is not None
        processes.append((process, LineReader(process.stdout)))
    calls = Calls()
    by_route: dict[str, list[float]] = {}
    client_cpu = client_cpu_total = 0.0
    for process, lines in processes:
        line = await lines.readline()
        await process.wait()
        if line is None:
            calls.failures["client process produced nothing"] += 1
            continue
        result = json.loads(line)
        calls.statuses.update({int(k): int(v) for k, v in result["statuses"].items()})
        calls.failures.update(result["failures"])
        calls.latencies += result["latencies"]
        for path, values in result["by_route"].items():
            by_route.setdefault(path, []).extend(values)
        client_cpu += float(result["cpu_seconds"])
        client_cpu_total += float(result["cpu_seconds_total"])
    return ReadResults(calls, by_route, client_cpu, client_cpu_total)


# --- the orchestrator ---------------------------------------------------------------------------

def api_histogram_p99(before: dict[str, float], after: dict[str, float],
                      route: str, method: str) -> tuple[float, float]:
    """Server-side p99 (bucket estimate) and count of ``iot_api_request_seconds`` for one
    route, all statuses summed."""
    buckets = histogram_delta(before, after, "iot_api_request_seconds",
                              f'method="{method}"', f'route="{route}"')
    return histogram_quantile(0.99, buckets), (buckets[-1][1] if buckets else 0.0)


async def wait_online(api: httpx.AsyncClient) -> None:
    with trio.fail_after(30):
        while True:
            response = await api.get(f"{API}/devices/{PHY_ID}")
            if response.status_code == 200 and response.json()["data"]["online"]:
                return
            await trio.sleep(0.05)


async def orchestrate(args: argparse.Namespace) -> int:
    raise_fd_limit()
    info = machine()
    print(f"bench_api_load: charge stress {args.requests} requests at concurrency "
          f"{args.charge_concurrency}; read run {args.duration:g} s at concurrency "
          f"{args.concurrency} over {args.clients} client process(es)", flush=True)
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['ram']}, "
          f"Python {info['python']}, {info['date']}", flush=True)
    run_started = time.perf_counter()
    figures: dict[str, object] = {"machine": info, "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
        async with trio.open_nursery() as nursery:
            server = await start_server(Path(tmp), api_keys=[API_KEY, *read_keys(args.keys)])
            sampler = Sampler(server.process.pid)
            nursery.start_soon(sampler.run)
            try:
                device = ProbeDevice(ProtocolFamily.BKV, PHY_ID)
                await nursery.start(device.run, server.tcp_port, 11.0)
                nursery.start_soon(play_device, device)
                async with httpx.AsyncClient(base_url=server.base_url, timeout=30,
                                             headers={"X-Api-Key": API_KEY}) as api:
                    await wait_online(api)
                    cpu_before, wall_before = sampler.cpu_seconds(), time.perf_counter()
                    charge, charge_wall = await charge_stress(
                        server.base_url, args.requests, args.charge_concurrency,
                        args.keepalive)
                    charge_cpu = sampler.cpu_seconds() - cpu_before
                    charge_cpu_wall = time.perf_counter() - wall_before
                    order_no = charge.order_no
                    if order_no is None:
                        raise RuntimeError("no charge request succeeded: nothing to read")
                    await trio.sleep(1.0)  # let the order settle into charging
                    order = (await api.get(f"{API}/orders/{order_no}")).json()["data"]
                    before = parse_metrics((await api.get("/metrics")).text)
                    cpu_before, system_before = sampler.cpu_seconds(), system_cpu_busy()
                    own_before = process_cpu([os.getpid()])
                    wall_before = time.perf_counter()
                    reads = await read_run(args, server.base_url, order_no)
                    wall = time.perf_counter() - wall_before
                    read_cpu = sampler.cpu_seconds() - cpu_before
                    system = system_cpu_busy() - system_before
                    own = process_cpu([os.getpid()]) - own_before
                    after = parse_metrics((await api.get("/metrics")).text)
            finally:
                await server.stop()
                nursery.cancel_scope.cancel()
            errors = server.error_lines()

    # --- stress 1 ---
    connections = "keep-alive" if args.keepalive else "a new connection per request"
    report = Report(f"Target 2a: charge stress (test-plan §8.7 stress 1: ab -n {args.requests} "
                    f"-c {args.charge_concurrency}, {connections})")
    n = charge.total
    unintended = n - sum(charge.statuses[s] for s in INTENDED)
    counts = ", ".join(f"{status}: {count}" for status, count in sorted(charge.statuses.items()))
    report.row("requests completed", f"{n}", f"{args.requests}", n == args.requests)
    report.row("status counts", counts or "none")
    report.row("  intended: 200 (the order) / 409 / 429",
               f"{charge.statuses[200]} / {charge.statuses[409]} / {charge.statuses[429]}",
               "1 / rest / some 429", charge.statuses[200] == 1 and charge.statuses[429] > 0)
    report.row("throughput", f"{n / charge_wall:.0f} requests/s", "> 100 QPS",
               n / charge_wall > 100)
    mean = sum(charge.latencies) / max(1, len(charge.latencies))
    report.row("mean response", f"{mean * 1000:.2f} ms", "< 200 ms", mean < 0.2)
    report.latency("response", charge.latencies, None)
    report.row("error rate (not 200/409/429)", f"{100 * unintended / max(1, n):.2f} %",
               "< 1 %", unintended / max(1, n) < 0.01)
    report.row("server CPU during the stress", f"{100 * charge_cpu / charge_cpu_wall:.0f} % "
               "of one core", "noted")
    report.row("the order it created", f"{order_no} ({order['status']})", "charging",
               order["status"] == "charging")
    figures["target2a"] = report.rows

    # --- read run ---
    calls = reads.calls
    read = Report(f"Target 2b: sustained reads (GET device / GET order, {args.duration:g} s, "
                  f"concurrency {args.concurrency}, {args.clients} client process(es))")
    total = calls.total
    bad = total - calls.statuses[200]
    read.row("requests", f"{total}")
    read.row("throughput", f"{total / args.duration:.0f} requests/s", "≥ 500 requests/s",
             total / args.duration >= 500)
    read.latency("response (client)", calls.latencies, 50)
    for path, values in sorted(reads.by_route.items()):
        route = path.replace(PHY_ID, "{id}").replace(order_no, "{order_no}")
        read.row(f"  {route} p99", f"{percentile(values, 99) * 1000:.2f} ms  (n={len(values)})")
    counts = ", ".join(f"{s}: {c}" for s, c in sorted(calls.statuses.items()))
    if calls.failures:
        counts += ", " + ", ".join(f"{k}: {v}" for k, v in calls.failures.items())
    read.row("status counts", counts)
    read.row("error rate (not 200)", f"{100 * bad / max(1, total):.2f} %", "0",
             bad == 0 and total > 0)
    for route in ("/api/v1/third/devices/{phy_id}", "/api/v1/third/orders/{order_no}"):
        p99, count = api_histogram_p99(before, after, route, "GET")
        read.row(f"server histogram p99 {route.removeprefix(API)}",
                 f"{p99 * 1000:.2f} ms  (n={count:.0f})", "p99 < 50 ms", p99 < 0.05)
    read.row("server CPU over the run", f"{100 * read_cpu / wall:.0f} % of one core", "noted")
    read.row("client processes' CPU over the run",
             f"{100 * reads.client_cpu / args.duration:.0f} % of one core", "noted")
    cores = os.cpu_count() or 1
    read.row(f"machine CPU over the run ({cores} cores)", f"{100 * system / wall / cores:.0f} %",
             "noted")
    # What is left of the machine's busy time is someone else's.
    other = max(0.0, system - read_cpu - own - reads.client_cpu_total)
    read.row("other processes' CPU over the run", f"{100 * other / wall:.0f} % of one core",
             "~0 (a quiet machine)",
             status="quiet" if other / wall < 0.1 else "BUSY: figures disturbed")
    read.row("server RSS peak", f"{sampler.peak_rss / 2**20:.0f} MB", "< 500 MB",
             sampler.peak_rss < 500 * 2**20)
    read.row("server error log lines", f"{errors}", "0", errors == 0)
    figures["target2b"] = read.rows
    return finish(args, figures, report.missed + read.missed, run_started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000,
                        help="charge requests of the stress (1000)")
    parser.add_argument("--charge-concurrency", type=int, default=10)
    parser.add_argument("--keepalive", action="store_true",
                        help="reuse connections in the charge stress (ab -k)")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds of the read run (30)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="connections of the read run, over all clients (16)")
    parser.add_argument("--clients", type=int, default=2,
                        help="client processes of the read run (2)")
    parser.add_argument("--keys", type=int, default=8,
                        help="API keys the read run spreads over (8)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a target is missed")
    # A client process of the read run (started by the orchestrator).
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--order-no", help=argparse.SUPPRESS)
    parser.add_argument("--worker-keys", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--end", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        trio.run(read_worker, args)
        return 0
    return trio.run(orchestrate, args)


if __name__ == "__main__":
    sys.exit(main())
