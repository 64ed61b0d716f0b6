# The acceptance lists (test-plan.md §8.9, §8.10, §8.11), judged after every step has
# run: from the figures the steps gathered, the events the receiver got, the
# server's own metrics, and a few measurements made here (a read burst for QPS,
# the diagnostic queries for DB time, a forged webhook for signature checking).
from __future__ import annotations

import resource
import sqlite3
import time
from contextlib import closing

import httpx
import trio

from .crowd import PROBE_FIRST_INDEX, crowd_running
from .plan import mean, percentile
from .report import Item, Report, Verdict
from .runner import API_BASE, PLAN_CADENCE, Plan, waiting_for

__all__ = ["judge_acceptance"]

#: The events the plan's final acceptance checklist lists.
REQUIRED_EVENTS = ("device.registered", "device.heartbeat", "order.created",
                   "charging.started", "charging.progress", "order.completed",
                   "device.alarm")
READ_BURST = 400
READ_CONCURRENCY = 10
#: Stress 2: heartbeat processing latency.
HEARTBEAT_LATENCY_S = 0.1
#: Devices that time heartbeats while the crowd is online.
HEARTBEAT_PROBES = 50


def _row(item_id: str, title: str, ok: bool, measured: str, target: str,
         detail: str = "") -> Item:
    return Item(item_id=item_id, title=title, verdict=Verdict.PASS if ok else Verdict.FAIL,
                measured=measured, target=target, detail=detail)


async def judge_acceptance(plan: Plan, report: Report) -> None:
    """Add the acceptance rows to *report*."""
    failed = {i.item_id for i in report.items if i.verdict is Verdict.FAIL}
    rows: list[Item] = []

    def steps_ok(title: str, item_id: str, *prefixes: str) -> None:
        bad = sorted(i for i in failed if i.startswith(prefixes))
        rows.append(_row(item_id, title, not bad, "all passed" if not bad else
                         "failed: " + ", ".join(bad), "every related plan item passes"))

    steps_ok("functional completeness: registration, heartbeat, dispatch, orders, "
             "progress, settlement, push, remote control, exceptions", "8.9 functional",
             "TC", "matrix", "exception", "hands-on")
    errors = plan.accuracy
    worst_duration = max((d for d, _ in errors), default=0.0)
    worst_energy = max((e for _, e in errors), default=0.0)
    rows.append(_row("8.9 duration", "duration error", bool(errors) and worst_duration < 5,
                     f"worst {worst_duration:.1f} s over {len(errors)} orders", "< 5 s"))
    rows.append(_row("8.9 energy", "energy error", bool(errors) and worst_energy < 0.02,
                     f"worst {worst_energy * 100:.2f} % over {len(errors)} orders", "< 2 %"))
    reconnect = plan.reconnect_s
    rows.append(_row("8.9 reconnect", "reconnect after a disconnect",
                     reconnect is not None and reconnect < 10,
                     "not measured" if reconnect is None else f"{reconnect:.1f} s", "< 10 s"))
    outcomes = await _command_outcomes(plan)
    if outcomes is None:
        rows.append(Item(item_id="8.9 command success", title="command success rate",
                         verdict=Verdict.SKIP, detail="the server has no /metrics with "
                         "iot_commands_total to count acknowledged commands"))
    else:
        acked, total = outcomes
        rate = acked / total if total else 0.0
        rows.append(_row("8.9 command success", "command success rate", rate > 0.99,
                         f"{rate * 100:.1f} % ({acked} of {total} acknowledged)", "> 99 %",
                         "stops of orders already ended count as failures"))
    api_mean = mean(plan.api_seconds)
    rows.append(_row("8.9 API response", "API response time (mean)", api_mean < 0.2,
                     f"mean {api_mean * 1000:.1f} ms, p99 "
                     f"{percentile(plan.api_seconds, 99) * 1000:.1f} ms over "
                     f"{len(plan.api_seconds)} calls", "< 200 ms"))
    dispatch = percentile(plan.dispatch_seconds, 100)
    paced = plan.paced_dispatch_seconds
    rows.append(_row("8.9 dispatch", "command dispatch latency (API call → device)",
                     bool(plan.dispatch_seconds) and dispatch < 1.0,
                     f"max {dispatch * 1000:.1f} ms over {len(plan.dispatch_seconds)}",
                     "< 1 s", f"{len(paced)} commands sent right behind another to the same "
                     f"device waited for the protocol's 0.5 s spacing (max "
                     f"{percentile(paced, 100) * 1000:.0f} ms); they are not counted"))
    hooks = plan.webhook_seconds + _event_latencies(plan)
    rows.append(_row("8.9 webhook", "webhook push latency",
                     bool(hooks) and percentile(hooks, 100) < 2.0,
                     f"max {percentile(hooks, 100) * 1000:.0f} ms over {len(hooks)} events",
                     "< 2 s"))
    rows.append(await _db_query_time(plan))
    steps_ok("no order data lost, concurrent charging without interference",
             "8.9 reliability", "TC003", "TC004", "TC005", "matrix 5")
    missing = [t for t in REQUIRED_EVENTS if not plan.receiver.of_type(t)]
    rows.append(_row("8.10 events", "every listed event type pushed", not missing,
                     "all received" if not missing else "missing: " + ", ".join(missing),
                     ", ".join(REQUIRED_EVENTS)))
    rows.append(await _forged_webhook(plan))
    rows.append(_row("8.10 duplicates", "duplicate-command filtering: each event once",
                     not plan.receiver.duplicates,
                     f"{len(plan.receiver.duplicates)} duplicate deliveries", "0"))
    rows.append(await _read_burst(plan))
    rows += await _many_devices(plan, plan.settings.load_devices)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_mb = usage.ru_maxrss / 1024
    if plan.attached:
        rows.append(Item(item_id="8.10 memory", title="memory", verdict=Verdict.SKIP,
                         detail="attach mode: the server's process runs elsewhere; "
                                "measure its memory where it runs"))
    else:
        rows.append(_row("8.10 memory", "memory", rss_mb < 500, f"peak RSS {rss_mb:.0f} MB",
                         "< 500 MB",
                         "the server's process, with the plan's receiver and its few "
                         "devices; bench/bench_load.py measures the server alone"))
    report.extend(rows)


async def _many_devices(plan: Plan, count: int) -> list[Item]:
    """Stress 2 of the plan in small: *count* devices at the 11 s cadence, all online,
    every heartbeat answered; the CPU of the server's process meanwhile."""
    if count <= 0:
        return [Item(item_id="8.10 devices", title="1000+ devices online",
                     verdict=Verdict.SKIP, detail="--load-devices 0")]
    host, port = plan.tcp
    window = 2 * PLAN_CADENCE
    with trio.fail_after(180), waiting_for(f"{count} devices online and their window"):
        async with crowd_running(host, port, count, window) as crowd:
            before = await crowd.next_statistics()
            cpu_before, wall_before = time.process_time(), time.perf_counter()
            # The probes time heartbeats while the crowd loads the server: a small
            # child of their own, so the figure is the server's more than the
            # simulator's (a thousand devices in one process lag by themselves).
            async with crowd_running(host, port, HEARTBEAT_PROBES, window,
                                     first_index=PROBE_FIRST_INDEX) as probes:
                after = await crowd.next_statistics()
                cpu = (time.process_time() - cpu_before) / (time.perf_counter()
                                                             - wall_before)
                online = await _count_online(plan)
                await probes.next_statistics()
                await probes.next_statistics()
    latencies = probes.heartbeat_latencies
    answered = after.frames_received - before.frames_received
    # Every device sends a heartbeat each 11 s: two periods, two answers each at least.
    expected = 2 * count - count // 10
    rows = [
        _row("8.10 devices", "1000+ devices online at once", online >= count
             and after.connected == count, f"{online} online on the server, "
             f"{after.connected} connected", f"{count}"),
        _row("8.11 heartbeats", "the devices are answered (frames received vs heartbeats due)",
             answered >= expected and after.errors == 0,
             f"{answered} answers in {window:.0f} s from {count} devices", f"≥ {expected}"),
        _row("8.11 heartbeat latency", "heartbeat processing latency with the devices "
             "online (heartbeat sent → answer received, at the device, real time)",
             len(latencies) >= HEARTBEAT_PROBES
             and percentile(latencies, 95) < HEARTBEAT_LATENCY_S,
             f"p50 {percentile(latencies, 50) * 1000:.1f} ms, p95 "
             f"{percentile(latencies, 95) * 1000:.1f} ms, max "
             f"{percentile(latencies, 100) * 1000:.1f} ms over {len(latencies)} heartbeats "
             f"of {HEARTBEAT_PROBES} probe devices", "p95 < 100 ms",
             f"timed by {HEARTBEAT_PROBES} more devices while the {count} are online, on "
             "their real-time clock whatever --speed is, from the heartbeat falling due "
             "to its answer being read (the probes' own scheduling included)"),
    ]
    if plan.attached:
        rows.append(Item(item_id="8.10 CPU", title="CPU with the devices online",
                         verdict=Verdict.SKIP,
                         detail="attach mode: the server's process runs elsewhere; "
                                "measure its CPU where it runs"))
    else:
        rows.append(_row("8.10 CPU", "CPU with the devices online", cpu < 0.5,
                         f"{cpu * 100:.0f} % of one core", "< 50 % (stress 2)",
                         "the server's process (with the plan's receiver); the devices "
                         "run in a child process"))
    return rows


async def _count_online(plan: Plan) -> int:
    count, cursor = 0, None
    while True:
        query = "/devices?online=true&limit=500" + (f"&cursor={cursor}" if cursor else "")
        data = await plan.data("GET", query)
        items = data["items"]
        count += len(items) if isinstance(items, list) else 0
        cursor = data.get("next_cursor")
        if not cursor:
            return count


async def _command_outcomes(plan: Plan) -> tuple[int, int] | None:
    """(acknowledged, all) commands from the server's metrics; None without them."""
    response = await plan.api.get("/metrics")
    if response.status_code != 200 or "iot_commands_total" not in response.text:
        return None
    acked = total = 0
    for line in response.text.splitlines():
        if line.startswith("iot_commands_total{"):
            value = int(float(line.rsplit(" ", 1)[1]))
            total += value
            if 'outcome="acked"' in line:
                acked += value
    return acked, total


def _event_latencies(plan: Plan) -> list[float]:
    # Events carry the second they happened; arrival is timed by the receiver's
    # monotonic clock, so compare through the wall clock at the end of the run.
    offset = time.time() - time.perf_counter()
    latencies = []
    for event in plan.receiver.received:
        happened = event.get("timestamp")
        if isinstance(happened, int):
            arrived = plan.receiver.arrived_at[str(event["event_id"])] + offset
            # The timestamp is truncated to the second: up to 1 s of it is not delay.
            latencies.append(max(0.0, arrived - happened - 1.0))
    return latencies


async def _db_query_time(plan: Plan) -> Item:
    if plan.db_path is None:
        return Item(item_id="8.9 DB query", title="DB query time", verdict=Verdict.SKIP,
                    detail="attach mode: the server's database is not reachable from here")
    queries = (
        "SELECT phy_id, last_seen_at FROM devices WHERE last_seen_at > unixepoch() - 30",
        "SELECT order_no, port_no, status, duration_sec, total_kwh FROM orders "
        "WHERE status IN ('pending', 'charging') ORDER BY created_at DESC LIMIT 10",
        "SELECT COUNT(*) FROM commands WHERE status IN ('queued', 'sent')",
    )

    def run() -> float:
        with closing(sqlite3.connect(f"file:{plan.db_path}?mode=ro", uri=True)) as db:
            slowest = 0.0
            for sql in queries:
                started = time.perf_counter()
                db.execute(sql).fetchall()
                slowest = max(slowest, time.perf_counter() - started)
        return slowest

    slowest = await trio.to_thread.run_sync(run)
    return _row("8.9 DB query", "DB query time (the plan's diagnostic queries)",
                slowest < 0.1, f"slowest {slowest * 1000:.2f} ms", "< 100 ms")


async def _forged_webhook(plan: Plan) -> Item:
    """Post a delivery with a wrong signature straight to the receiver: it must refuse."""
    before = plan.receiver.bad_signatures
    async with httpx.AsyncClient() as client:
        response = await client.post(plan.receiver_url, content=b'{"event_id":"forged"}', headers={
            "X-Timestamp": str(int(time.time())), "X-Nonce": "n", "X-Signature": "0" * 64})
    ok = response.status_code == 401 and plan.receiver.bad_signatures == before + 1
    return _row("8.10 signature", "webhook signature verification", ok and before == 0,
                f"forged delivery answered {response.status_code}; "
                f"{before} genuine deliveries failed verification", "forged refused, all "
                "genuine verified")


async def _read_burst(plan: Plan) -> Item:
    """The plan's QPS target with reads (GET device), at concurrency 10."""
    paths = [f"{API_BASE}/devices/82210225000520", f"{API_BASE}/devices"]
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()

    async def worker(n: int) -> None:
        nonlocal errors
        for i in range(n, READ_BURST, READ_CONCURRENCY):
            t = time.perf_counter()
            response = await plan.api.get(paths[i % 2])
            latencies.append(time.perf_counter() - t)
            errors += response.status_code != 200

    async with trio.open_nursery() as nursery:
        for n in range(READ_CONCURRENCY):
            nursery.start_soon(worker, n)
    qps = READ_BURST / (time.perf_counter() - started)
    return _row("8.10 QPS", "API throughput (reads, concurrency 10)",
                qps > 100 and errors == 0,
                f"{qps:.0f} requests/s, p99 {percentile(latencies, 99) * 1000:.1f} ms, "
                f"{errors} errors", "> 100 QPS, < 1 % errors",
                "client and server share one process here; bench/bench_api_load.py "
                "measures them apart")
