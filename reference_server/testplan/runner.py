# Runs the test plan: starts (or connects to) the server, a webhook receiver and
# simulated devices, then every plan step, concurrently where they use different
# devices, and collects one report row per plan item.
#
# Attached to a server someone else runs (``--attach``), the plan reaches it only
# through its API, its device port and its webhooks: items that need more (its
# database, its process, another setting) are reported as skipped, with why.
#
# Ctrl-C ends the run with the rows checked so far and the rest marked not run;
# while steps wait, a progress line says every few seconds what each waits for.
#
# Two simulated fleets share the run: a fast one (time compressed by --speed) for
# the charging flows, whose figures are the devices' own meters, and a real-time
# one for the items that time the server itself (offline after 30 s, reconnect
# within 10 s), since the server keeps real time.
from __future__ import annotations

import secrets
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import httpx
import trio

from bkvcodec import StartCharging

from ..config import ApiKey, Config
from ..logs import Logger
from ..server import run_server
from ..simulator import DeviceProfile, DeviceSpec, Fleet, SimClock, SimDevice
from .receiver import Receiver, data_of, receiver_running
from .report import Item, Report, Verdict

__all__ = ["API_KEY", "HEARTBEAT_ANSWERS", "PLAN_RATED_POWER_W", "ExternalServer", "Plan",
           "PlanSettings", "Step", "another_server", "provision", "run_plan", "waiting_for"]

#: The plan's API key.
API_KEY = "test-api-key"
#: The plan's devices report every 11 s.
PLAN_CADENCE = 11.0
#: The plan's offline rule: 30 s without a frame (the contract has the test-plan runner
#: configure offline_after = 30).
PLAN_OFFLINE_AFTER = 30
#: The plan's TC001 meters 5.23 kWh in one hour on one port: above the contract's
#: default rating of 3,500 W, so the runner rates ports higher.
PLAN_RATED_POWER_W = 7000
API_BASE = "/api/v1/third"
#: The library's minimum spacing of commands to one device, plus margin.
COMMAND_SPACING_S = 0.6
#: The names of the server's answers to a heartbeat (BKV, AP3000, AP3000's older form).
HEARTBEAT_ANSWERS = frozenset({"heartbeat_ack", "heartbeat_reply", "legacy_heartbeat_reply"})
#: The row id under which the acceptance lists appear when the run never got to them.
ACCEPTANCE_ID = "8.9–8.11 acceptance"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalServer:
    """A server started by someone else (``--attach``); its webhooks must go to our
    receiver, signed with *webhook_secret*."""

    http_url: str
    tcp_host: str
    tcp_port: int
    api_key: str
    webhook_secret: str
    receiver_host: str = "127.0.0.1"
    receiver_port: int = 8888


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSettings:
    """How to run the plan.

    Attributes:
        speed: Simulated seconds per real second for the charging flows.
        load_devices: Devices for the "1000+ online" acceptance item.
        only: Run only the steps whose id starts with one of these (all if empty).
        server: Use this running server instead of starting one.
        progress: Where progress lines go.
        seed: Seeds the simulated devices.
    """

    speed: float = 60.0
    only: tuple[str, ...] = ()
    #: Devices of the "1000+ devices online" acceptance item (0: not run).
    load_devices: int = 1000
    server: ExternalServer | None = None
    progress: TextIO = sys.stderr
    #: Real seconds between the progress lines of a quiet step.
    progress_every: float = 10.0
    seed: int = 1
    #: Ctrl-C (SIGINT) ends the run with a partial report instead of an exception.
    catch_interrupt: bool = True


@dataclass
class Plan:
    """What every step gets: the API, the receiver, the fleets, and measurements."""

    api: httpx.AsyncClient
    receiver: Receiver
    fast: Fleet
    real: Fleet
    db_path: Path | None
    settings: PlanSettings
    receiver_url: str
    #: The server's device listener.
    tcp: tuple[str, int]
    #: (duration error s, relative energy error) of every settled order checked.
    accuracy: list[tuple[float, float]] = field(default_factory=list)
    #: Seconds from a dropped link to the server recording the new connection.
    reconnect_s: float | None = None
    api_seconds: list[float] = field(default_factory=list)
    dispatch_seconds: list[float] = field(default_factory=list)
    #: Dispatches that waited behind another command to the same device.
    paced_dispatch_seconds: list[float] = field(default_factory=list)
    _last_dispatch: dict[str, float] = field(default_factory=dict)
    webhook_seconds: list[float] = field(default_factory=list)

    @property
    def attached(self) -> bool:
        """True when the server is someone else's (``--attach``): only its API, its
        device port and its webhooks are reachable."""
        return self.settings.server is not None

    # --- the API ------------------------------------------------------------------------

    async def call(self, method: str, path: str, body: object = None) -> httpx.Response:
        """One API call (under the base path), timed for the performance items."""
        started = time.perf_counter()
        response = await self.api.request(method, API_BASE + path, json=body)
        self.api_seconds.append(time.perf_counter() - started)
        return response

    async def data(self, method: str, path: str, body: object = None) -> dict[str, object]:
        """The ``data`` of a successful call.

        Raises:
            StepFailed: The call did not answer 200.
        """
        response = await self.call(method, path, body)
        if response.status_code != 200:
            raise StepFailed(f"{method} {path} answered {response.status_code}: "
                             f"{response.text[:200]}")
        data = response.json().get("data")
        if not isinstance(data, dict):
            raise StepFailed(f"{method} {path}: no data object")
        return data

    async def charge(self, device: SimDevice, port_no: int, body: Mapping[str, object], *,
                     socket_no: int = 1) -> str:
        """Start a charge; returns the order number and times the start command's
        way to the device (the plan's "command dispatch latency")."""
        seen = device.last_seq
        started = time.perf_counter()
        data = await self.data("POST", f"/devices/{device.phy_id}/charge",
                               {"port_no": port_no, "socket_no": socket_no, **body})
        order_no = str(data["order_no"])
        if data.get("device_online"):
            await device.wait_received(
                StartCharging, lambda c: (c.socket_no, c.port_no) == (socket_no, port_no),
                after=seen)
            arrived = time.perf_counter()
            # A command right behind another to the same device waits the protocol's
            # 0.5 s spacing: that wait is the protocol's, not the server's dispatch.
            paced = arrived - self._last_dispatch.get(device.phy_id, -1.0) < COMMAND_SPACING_S
            (self.paced_dispatch_seconds if paced else self.dispatch_seconds).append(
                arrived - started)
            self._last_dispatch[device.phy_id] = arrived
        return order_no

    async def order(self, order_no: str) -> dict[str, object]:
        return await self.data("GET", f"/orders/{order_no}")

    async def wait_online(self, device: SimDevice) -> dict[str, object]:
        """Poll the device's view until the server shows it online (a device counts as
        registered once answered; the server records it right after)."""
        with waiting_for(f"device {device.phy_id} online on the server"):
            while not (view := await self.data("GET", f"/devices/{device.phy_id}"))["online"]:
                await trio.sleep(0.05)
        return view

    async def wait_order(self, order_no: str, *statuses: str) -> dict[str, object]:
        """Poll the order until its status is one of *statuses*."""
        with waiting_for(f"order {order_no} {' or '.join(statuses)}"):
            while (order := await self.order(order_no))["status"] not in statuses:
                await trio.sleep(0.05)
        return order

    async def webhook(self, event_type: str, *, order_no: str | None = None,
                      device: str | None = None, since: float | None = None
                      ) -> dict[str, object]:
        """Wait for a webhook; with *since* (a ``perf_counter`` time), time its way."""
        with waiting_for(f"webhook {event_type} of {order_no or device or 'any'}"):
            found = await self.receiver.wait_for(event_type, order_no=order_no, device=device)
        event = found[0]
        if since is not None:
            arrived = self.receiver.arrived_at[str(event["event_id"])]
            self.webhook_seconds.append(max(0.0, arrived - since))
        return event

    def payload(self, event: dict[str, object]) -> dict[str, object]:
        return dict(data_of(event))


class StepFailed(Exception):
    """A step could not go on; its remaining items are reported as failed."""


@dataclass
class Checks:
    """Collects the rows of one step."""

    items: list[Item] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def check(self, item_id: str, title: str, ok: bool, *, measured: object = "",
              target: str = "", detail: str = "") -> bool:
        self.items.append(Item(item_id=item_id, title=title,
                               verdict=Verdict.PASS if ok else Verdict.FAIL,
                               measured=str(measured), target=target, detail=detail,
                               seconds=round(time.perf_counter() - self.started, 2)))
        return ok

    def skip(self, item_id: str, title: str, reason: str) -> None:
        """Report *item_id* as not runnable here, with *reason*."""
        self.items.append(Item(item_id=item_id, title=title, verdict=Verdict.SKIP,
                               detail=reason,
                               seconds=round(time.perf_counter() - self.started, 2)))


#: A plan step: its id, a title, the items it reports, and what it does.
@dataclass(frozen=True, slots=True)
class Step:
    step_id: str
    title: str
    items: tuple[str, ...]
    run: Callable[[Plan, Checks], Awaitable[None]]
    #: Simulated seconds the step may take before it counts as hung.
    budget_s: float = 3 * 3600.0


async def run_plan(steps: Sequence[Step], fast_devices: Sequence[DeviceSpec],
                   real_devices: Sequence[DeviceSpec], settings: PlanSettings,
                   after: Callable[[Plan, Report], Awaitable[None]] | None = None) -> Report:
    """Run *steps* concurrently against a server and return the report.

    With :attr:`PlanSettings.catch_interrupt`, SIGINT stops the run: the report then
    holds the rows checked so far, the others as not run, and ``interrupted`` is set.
    """
    server = settings.server
    report = Report(settings={
        "speed": settings.speed, "cadence_s": PLAN_CADENCE,
        "offline_after_s": PLAN_OFFLINE_AFTER,
        "server": f"attached: {server.http_url}, devices to {server.tcp_host}:"
                  f"{server.tcp_port}" if server else "started by the plan"})
    chosen = [s for s in steps if not settings.only
              or any(s.step_id.startswith(prefix) for prefix in settings.only)]
    progress = _Progress(settings.progress, len(chosen), settings.progress_every)
    with trio.CancelScope() as whole:
        async with trio.open_nursery() as guard:
            if settings.catch_interrupt:
                guard.start_soon(_stop_on_interrupt, whole, report, progress)
            guard.start_soon(progress.tick)
            async with _environment(settings, fast_devices, real_devices) as plan:
                async with trio.open_nursery() as nursery:
                    for step in chosen:
                        nursery.start_soon(_run_step, plan, step, report, progress)
                if after is not None:
                    with _status("acceptance", progress):
                        await after(plan, report)
            guard.cancel_scope.cancel()
    if report.interrupted:
        _mark_not_run(report, chosen, acceptance=after is not None)
    report.items.sort(key=lambda i: _order_key(i.item_id))
    return report


async def _stop_on_interrupt(whole: trio.CancelScope, report: Report,
                             progress: _Progress) -> None:
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async for _ in signals:
            report.interrupted = True
            progress.line("interrupted: writing the report of the items checked so far")
            whole.cancel()
            return


def _mark_not_run(report: Report, chosen: Sequence[Step], *, acceptance: bool) -> None:
    done = {i.item_id for i in report.items}
    report.extend(Item(item_id=item_id, title=step.title, verdict=Verdict.NOT_RUN,
                       detail="the run was interrupted")
                  for step in chosen for item_id in step.items if item_id not in done)
    if acceptance and not any(i.item_id.startswith(("8.9 ", "8.10 ", "8.11 "))
                              for i in report.items):
        report.add(Item(item_id=ACCEPTANCE_ID, title="the acceptance lists",
                        verdict=Verdict.NOT_RUN, detail="the run was interrupted"))


async def _run_step(plan: Plan, step: Step, report: Report, progress: _Progress) -> None:
    checks = Checks()
    progress.started(step)
    real_budget = plan.fast.clock.real_seconds(step.budget_s) + 60.0
    error = ""
    finished = False
    try:
        with _status(step.step_id, progress), trio.move_on_after(real_budget) as scope:
            try:
                await step.run(plan, checks)
            except StepFailed as err:
                error = str(err)
            except Exception as err:  # a bug in one step must not stop the others
                error = f"{type(err).__name__}: {err}"
        if scope.cancelled_caught:
            error = f"did not finish within {real_budget:.0f} s"
        finished = True
    finally:
        # Also on an interruption: the rows checked so far are kept, the rest are
        # marked not run afterwards.
        if finished:
            done = {i.item_id for i in checks.items}
            for item_id in step.items:
                if item_id not in done:
                    checks.items.append(Item(item_id=item_id, title=step.title,
                                             verdict=Verdict.FAIL,
                                             detail=error or "not checked by its step"))
        report.extend(checks.items)
    progress.finished(step, checks.items, error)


#: The waits of the running step (or acceptance lists): (what, since), newest last.
_WAITING: ContextVar[list[tuple[str, float]] | None] = ContextVar("waiting", default=None)


@contextmanager
def _status(name: str, progress: _Progress) -> Iterator[None]:
    """Track the waits of *name* (a step, or the acceptance lists) for the progress
    lines; tasks started inside inherit it."""
    waits: list[tuple[str, float]] = []
    token = _WAITING.set(waits)
    progress.running[name] = (waits, time.perf_counter())
    try:
        yield
    finally:
        del progress.running[name]
        _WAITING.reset(token)


@contextmanager
def waiting_for(what: str) -> Iterator[None]:
    """Say what the current step waits for, for the progress lines."""
    waits = _WAITING.get()
    if waits is None:
        yield
        return
    entry = (what, time.perf_counter())
    waits.append(entry)
    try:
        yield
    finally:
        waits.remove(entry)


class _Progress:
    def __init__(self, stream: TextIO, total: int, every: float) -> None:
        self.stream = stream
        self.total = total
        self.every = every
        self.done = 0
        self.start = time.perf_counter()
        #: Running steps: their waits and when they started.
        self.running: dict[str, tuple[list[tuple[str, float]], float]] = {}

    def started(self, step: Step) -> None:
        self.line(f"start  {step.step_id}: {step.title}")

    def finished(self, step: Step, items: list[Item], error: str) -> None:
        self.done += 1
        failed = [i.item_id for i in items if i.verdict is Verdict.FAIL]
        skipped = [i for i in items if i.verdict is Verdict.SKIP]
        verdict = ("FAIL " + ", ".join(failed) if failed
                   else "skipped" if skipped and len(skipped) == len(items) else "ok")
        self.line(f"done   {step.step_id}: {verdict}" + (f" ({error})" if error else "")
                  + f"  [{self.done}/{self.total}]")

    async def tick(self) -> None:
        """Every *every* seconds, one line per running step: what it waits for."""
        while True:
            await trio.sleep(self.every)
            now = time.perf_counter()
            for name, (waits, since) in list(self.running.items()):
                if waits:
                    what, waited = waits[-1]
                    self.line(f"wait   {name}: {what} ({now - waited:.0f} s; step "
                              f"running {now - since:.0f} s)")
                else:
                    self.line(f"busy   {name}: running {now - since:.0f} s")

    def line(self, text: str) -> None:
        elapsed = time.perf_counter() - self.start
        self.stream.write(f"[{elapsed:6.1f}s] {text}\n")
        self.stream.flush()


def _order_key(item_id: str) -> tuple[int, str]:
    order = ("matrix 1", "matrix 2", "matrix 3", "matrix 4", "matrix 5", "TC", "exception",
             "hands-on", "8.9", "8.10", "8.11")
    return next((n, item_id) for n, prefix in enumerate((*order, "")) if
                item_id.startswith(prefix))


@asynccontextmanager
async def _environment(settings: PlanSettings, fast_devices: Sequence[DeviceSpec],
                       real_devices: Sequence[DeviceSpec]) -> AsyncIterator[Plan]:
    external = settings.server
    secret = external.webhook_secret if external else secrets.token_urlsafe(16)
    host = external.receiver_host if external else "127.0.0.1"
    port = external.receiver_port if external else 0
    async with receiver_running(secret, host, port) as (receiver, url), \
            _server(settings, url, secret) as (http_url, tcp_host, tcp_port, key, db_path), \
            httpx.AsyncClient(base_url=http_url, headers={"X-Api-Key": key},
                              timeout=30) as api:
        if external is not None:
            settings.progress.write(
                f"attached to {http_url} (devices to {tcp_host}:{tcp_port}); its webhooks "
                f"must go to {url}, signed with the --webhook-secret given\n")
            await provision(api, [*fast_devices, *real_devices], settings.progress)
        async with Fleet.connect(tcp_host, tcp_port, fast_devices,
                                 clock=SimClock(settings.speed), seed=settings.seed) as fast, \
                Fleet.connect(tcp_host, tcp_port, real_devices, clock=SimClock(1.0),
                              seed=settings.seed + 1) as real:
            with trio.fail_after(30):
                await fast.wait_registered()
                await real.wait_registered()
            yield Plan(api=api, receiver=receiver, fast=fast, real=real, db_path=db_path,
                       settings=settings, receiver_url=url, tcp=(tcp_host, tcp_port))


async def provision(api: httpx.AsyncClient, devices: Sequence[DeviceSpec],
                    progress: TextIO) -> bool:
    """Provision *devices* on a server that serves only known ids (``POST /devices``,
    the admin role). Returns False, having said so, when the key may not: the server
    must then know the ids already, or serve any."""
    for spec in devices:
        response = await api.post(f"{API_BASE}/devices", json={
            "device_phy_id": spec.phy_id, "protocol": spec.protocol.value})
        if response.status_code in (401, 403, 404, 405):
            progress.write(f"cannot provision the plan's devices ({response.status_code} "
                           f"from POST {API_BASE}/devices): the server must accept their "
                           "ids already (device_policy open, or provisioned)\n")
            return False
        if response.status_code not in (200, 201, 409):
            raise StepFailed(f"provisioning {spec.phy_id} answered {response.status_code}: "
                             f"{response.text[:200]}")
    return True


@asynccontextmanager
async def another_server(plan: Plan, devices: Sequence[DeviceSpec],
                         **changes: object) -> AsyncIterator[Plan]:
    """A second server of the plan's own, with *changes* to its configuration (a
    setting the main server runs without), *devices* connected to it on the plan's
    compressed time, and a receiver of its own (its order numbers may be the main
    server's too). Not for an attached server."""
    if plan.attached:
        raise StepFailed("another server needs the plan's own server (not attach mode)")
    async with receiver_running(plan.receiver.secret) as (receiver, url), \
            _own_server(url, plan.receiver.secret, changes) as \
            (http_url, tcp_host, tcp_port, key, db_path), \
            httpx.AsyncClient(base_url=http_url, headers={"X-Api-Key": key},
                              timeout=30) as api, \
            Fleet.connect(tcp_host, tcp_port, devices, clock=SimClock(plan.settings.speed),
                          seed=plan.settings.seed + 2) as fleet:
        with trio.fail_after(30):
            await fleet.wait_registered()
        yield replace(plan, api=api, receiver=receiver, receiver_url=url, fast=fleet,
                      db_path=db_path, tcp=(tcp_host, tcp_port), _last_dispatch={})


@asynccontextmanager
async def _server(settings: PlanSettings, webhook_url: str, secret: str
                  ) -> AsyncIterator[tuple[str, str, int, str, Path | None]]:
    external = settings.server
    if external is not None:
        yield (external.http_url, external.tcp_host, external.tcp_port, external.api_key,
               None)
        return
    async with _own_server(webhook_url, secret, {}) as addresses:
        yield addresses


@asynccontextmanager
async def _own_server(webhook_url: str, secret: str, changes: Mapping[str, object]
                      ) -> AsyncIterator[tuple[str, str, int, str, Path]]:
    with tempfile.TemporaryDirectory(prefix="testplan-") as tmp:
        db_path = Path(tmp) / "iot.db"
        config = replace(
            Config(), tcp_host="127.0.0.1", tcp_port=0, http_host="127.0.0.1", http_port=0,
            db_path=db_path, api_keys=(ApiKey("test-plan", API_KEY),),
            webhook_url=webhook_url, webhook_secret=secret,
            offline_after=PLAN_OFFLINE_AFTER, rated_power_w=PLAN_RATED_POWER_W,
            log_level="warning",
            default_price_per_kwh=150, default_service_fee=100)
        config = replace(config, **changes)  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(
                lambda task_status: run_server(config, logger=Logger("warning"),
                                               task_status=task_status))
            try:
                yield (f"http://{addresses.http_host}:{addresses.http_port}",
                       addresses.tcp_host, addresses.tcp_port, API_KEY, db_path)
            finally:
                nursery.cancel_scope.cancel()


def plan_profile(**changes: object) -> DeviceProfile:
    """The plan's devices: heartbeat and progress every 11 s."""
    settings: dict[str, object] = {"heartbeat_s": PLAN_CADENCE, "progress_s": PLAN_CADENCE}
    settings.update(changes)
    return DeviceProfile(**settings)  # type: ignore[arg-type]
