"""Webhook delivery from a real outbox (on both storage engines) to a real HTTP
receiver on loopback: signing and envelope, per-device order, retries with back-off,
dead letters, restarts, no webhook configured, and the example receiver of the docs."""
from __future__ import annotations

import collections
import importlib.util
import io
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

import h11
import httpx
import pytest
import trio
import trio.testing

from bkvcodec import SignatureError, WebhookEvent, sign, verify_webhook
from reference_server.config import Config
from reference_server.logs import Logger
from reference_server.metrics import Metrics
from reference_server.storage import (
    AsyncDatabase,
    DeliveryRecord,
    DeliveryStatus,
    EventRecord,
    NewEvent,
)
from reference_server.webhooks import (
    MAX_IN_FLIGHT,
    WebhookDeliverer,
    backoff_delay,
    webhook_request,
)

SECRET = "whsec-test-secret"
PATH = "/hooks/iot"
QUERY = "token=hush-hush"  # must reach the receiver, but never the signature or the logs
T0 = 1_700_000_000
EXAMPLE = Path(__file__).parents[2] / "examples" / "webhook_receiver.py"


class ManualClock:
    """Unix time that moves only when the test says so (whole seconds, as stored)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- a webhook receiver: h11 over trio, on a loopback port ----------------------------------

@dataclass
class Request:
    """One request as the receiver saw it; *event* is set when it verified."""

    target: str
    headers: dict[str, str]
    body: bytes
    event: WebhookEvent | None
    error: str | None


@dataclass(eq=False)
class Receiver:
    """Verifies every delivery with bkvcodec.verify_webhook and answers by *mode*:
    ``ok`` 200, ``fail`` 500, ``hold`` 200 once *release* is set. Event ids in
    *failing* always get 500. It can be stopped (connection refused) and started
    again on the same port."""

    clock: Callable[[], float]
    secret: str | None = SECRET
    mode: str = "ok"
    failing: set[str] = field(default_factory=set)
    release: trio.Event = field(default_factory=trio.Event)
    requests: list[Request] = field(default_factory=list)
    accepted: list[WebhookEvent] = field(default_factory=list)
    # Event ids that arrived while another event of the same device was in progress.
    overlaps: list[str] = field(default_factory=list)
    port: int = 0
    _busy_devices: set[str | None] = field(default_factory=set)
    _scope: trio.CancelScope | None = None
    _stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}?{QUERY}"

    def accepted_ids(self) -> list[str]:
        return [event.event_id for event in self.accepted]

    async def start(self, nursery: trio.Nursery) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        self._scope, self._stopped = trio.CancelScope(), trio.Event()
        nursery.start_soon(self._serve, listeners, self._scope, self._stopped)

    async def stop(self) -> None:
        """Close the listener and every connection; requests on hold are dropped."""
        assert self._scope is not None
        self._scope.cancel()
        await self._stopped.wait()

    async def _serve(self, listeners: list[trio.SocketListener], scope: trio.CancelScope,
                     stopped: trio.Event) -> None:
        try:
            with scope:
                await trio.serve_listeners(self._connection, listeners)
        finally:
            stopped.set()

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await self._read_request(conn, stream)
                if request is None:
                    return
                status, reply = await self._answer(request, body)
                headers = [("Content-Type", "application/json"),
                           ("Content-Length", str(len(reply)))]
                await stream.send_all(conn.send(h11.Response(status_code=status,
                                                             headers=headers)))
                await stream.send_all(conn.send(h11.Data(data=reply)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (h11.RemoteProtocolError, trio.BrokenResourceError):
            return  # the client went away mid-request; not this receiver's business

    @staticmethod
    async def _read_request(conn: h11.Connection, stream: trio.SocketStream
                            ) -> tuple[h11.Request | None, bytes]:
        request, body = None, bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            else:  # ConnectionClosed between requests
                return None, b""

    async def _answer(self, request: h11.Request, body: bytes) -> tuple[int, bytes]:
        target = request.target.decode()
        headers = {name.decode(): value.decode() for name, value in request.headers}
        try:
            event = self._verify(request.method.decode(), target.partition("?")[0], headers,
                                 body)
        except SignatureError as err:
            self.requests.append(Request(target, headers, body, None, err.reason))
            return 401, b'{"error": "invalid signature"}'
        self.requests.append(Request(target, headers, body, event, None))
        device = event.device_phy_id
        if device in self._busy_devices:
            self.overlaps.append(event.event_id)
        self._busy_devices.add(device)
        try:
            if self.mode == "hold":
                await self.release.wait()
            if self.mode == "fail" or event.event_id in self.failing:
                return 500, b'{"error": "try again"}'
            self.accepted.append(event)
            return 200, b'{"success": true}'
        finally:
            self._busy_devices.discard(device)

    def _verify(self, method: str, path: str, headers: dict[str, str],
                body: bytes) -> WebhookEvent:
        if self.secret is not None:
            return verify_webhook(self.secret, method, path, headers, body, now=self.clock())
        envelope = json.loads(body)  # unsigned deliveries: trust the body as it is
        return WebhookEvent(event_id=envelope["event_id"], event_type=envelope["event_type"],
                            device_phy_id=envelope["device_phy_id"],
                            timestamp=envelope["timestamp"], nonce=envelope["nonce"],
                            data=envelope["data"])


# --- the harness: database, receiver, deliverers --------------------------------------------

@dataclass
class Running:
    deliverer: WebhookDeliverer
    metrics: Metrics
    scope: trio.CancelScope
    done: trio.Event

    async def stop(self) -> None:
        self.scope.cancel()
        await self.done.wait()

    def count(self, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value("iot_webhook_deliveries_total",
                                                        {"outcome": outcome})
        return 0.0 if value is None else value


@dataclass
class Harness:
    db: AsyncDatabase
    db_target: str | Path
    clock: ManualClock
    receiver: Receiver
    nursery: trio.Nursery
    logs: io.StringIO = field(default_factory=io.StringIO)

    def config(self, **changes: object) -> Config:
        base = Config(webhook_url=self.receiver.url, webhook_secret=SECRET, webhook_timeout=2,
                      webhook_max_backoff=4, webhook_retry_window=3600)
        return replace(base, **changes)  # type: ignore[arg-type]

    async def start(self, config: Config | None = None, *, db: AsyncDatabase | None = None,
                    clock: Callable[[], float] | None = None,
                    client: httpx.AsyncClient | None = None) -> Running:
        """A deliverer running in its own cancel scope, so a test can stop it alone."""
        metrics = Metrics()
        deliverer = WebhookDeliverer(db or self.db, config or self.config(),
                                     Logger("debug", self.logs), metrics,
                                     clock=clock or self.clock, client=client)
        running = Running(deliverer, metrics, trio.CancelScope(), trio.Event())

        async def run(task_status: trio.TaskStatus[None]) -> None:
            try:
                with running.scope:
                    await deliverer.run(task_status=task_status)
            finally:
                running.done.set()

        await self.nursery.start(run)
        return running

    async def emit(self, phy_id: str | None, n: int, *, event_type: str = "charging.progress",
                   data: dict[str, object] | None = None, db: AsyncDatabase | None = None
                   ) -> int:
        """Record event number *n* of a device, due for delivery; returns its seq."""
        event = NewEvent(event_id=f"{event_type}-{phy_id}-{n}", event_type=event_type,
                         data={"n": n} if data is None else data,
                         created_at=int(self.clock.now), device_phy_id=phy_id)
        seq = await (db or self.db).append_event(event, deliver=True)
        assert seq is not None
        return seq

    async def delivery(self, seq: int, *, db: AsyncDatabase | None = None) -> DeliveryRecord:
        record = await (db or self.db).get_delivery(seq)
        assert record is not None
        return record

    async def settled(self, seq: int, *, attempts: int = 1, status: DeliveryStatus | None = None,
                      db: AsyncDatabase | None = None) -> DeliveryRecord:
        """Wait until the delivery has *attempts* finished attempts (and *status*)."""
        while True:
            record = await self.delivery(seq, db=db)
            if record.attempts >= attempts and status in (None, record.status):
                return record
            await trio.sleep(0.005)

    def log_lines(self, msg: str) -> list[dict[str, object]]:
        lines = [json.loads(line) for line in self.logs.getvalue().splitlines()]
        return [line for line in lines if line["msg"] == msg]


async def wait_until(condition: Callable[[], bool]) -> None:
    while not condition():
        await trio.sleep(0.005)


def device_order(events: list[WebhookEvent], phy_id: str) -> list[object]:
    return [event.data["n"] for event in events if event.device_phy_id == phy_id]


@asynccontextmanager
async def harness(db_target: str | Path) -> AsyncIterator[Harness]:
    """Database (of the test's engine), receiver and a nursery for deliverers, all
    torn down at the end. A hang is a failure, not a stuck test run."""
    clock = ManualClock()
    async with await AsyncDatabase.open(db_target) as db, trio.open_nursery() as nursery:
        try:
            with trio.fail_after(10):
                receiver = Receiver(clock)
                await receiver.start(nursery)
                yield Harness(db, db_target, clock, receiver, nursery)
        finally:
            nursery.cancel_scope.cancel()


# --- pure pieces ----------------------------------------------------------------------------

def test_backoff_doubles_from_one_second_up_to_the_cap() -> None:
    assert [1, 2, 4, 8, 16, 32, 60, 60] == [backoff_delay(n, 60) for n in range(1, 9)]
    assert 300 == backoff_delay(10**6, 300)


def _event_record() -> EventRecord:
    return EventRecord(seq=1, event_id="device.alarm-8221-1", event_type="device.alarm",
                       device_phy_id="8221", order_no=None,
                       payload_json='{"fault_code":4,"fault_msg":"短路保护触发"}',
                       created_at=T0)


def test_webhook_request_is_the_signed_envelope() -> None:
    body, headers = webhook_request(_event_record(), path=PATH, secret=SECRET, now=T0 + 7.9,
                                    nonce="abc")

    assert ('{"event_id":"device.alarm-8221-1","event_type":"device.alarm",'
            '"device_phy_id":"8221","timestamp":1700000000,"nonce":"abc",'
            '"data":{"fault_code":4,"fault_msg":"短路保护触发"}}').encode() == body
    assert {"Content-Type": "application/json", "X-Event-Id": "device.alarm-8221-1",
            "X-Event-Type": "device.alarm", "X-Timestamp": str(T0 + 7), "X-Nonce": "abc",
            "X-Signature": sign(SECRET, "POST", PATH, str(T0 + 7), "abc", body)} == headers


def test_without_a_secret_the_request_is_unsigned() -> None:
    _, headers = webhook_request(_event_record(), path=PATH, secret=None, now=T0, nonce="abc")

    assert "X-Signature" not in headers


# --- delivering -----------------------------------------------------------------------------

@pytest.mark.trio
async def test_a_delivery_is_signed_and_carries_the_envelope(db_target: str | Path) -> None:
    async with harness(db_target) as h:
        running = await h.start()
        seq = await h.emit("82210225000520", 1, event_type="device.alarm",
                           data={"fault_code": 4, "fault_msg": "短路保护触发", "port_no": 1})
        h.clock.now += 2  # the attempt comes 2 s after the event
        running.deliverer.wake()

        record = await h.settled(seq, status=DeliveryStatus.DELIVERED)

        [request] = h.receiver.requests
        assert request.error is None  # verify_webhook accepted it
        assert f"{PATH}?{QUERY}" == request.target
        envelope = json.loads(request.body)
        assert {"event_id": "device.alarm-82210225000520-1", "event_type": "device.alarm",
                "device_phy_id": "82210225000520", "timestamp": T0,
                "nonce": request.headers["x-nonce"],
                "data": {"fault_code": 4, "fault_msg": "短路保护触发", "port_no": 1}} == envelope
        assert list(envelope) == ["event_id", "event_type", "device_phy_id", "timestamp",
                                  "nonce", "data"]
        assert b": " not in request.body  # compact
        assert "application/json" == request.headers["content-type"]
        assert "device.alarm-82210225000520-1" == request.headers["x-event-id"]
        assert "device.alarm" == request.headers["x-event-type"]
        assert str(T0 + 2) == request.headers["x-timestamp"]
        assert 1 == record.attempts
        assert 2000 == record.latency_ms
        assert 1.0 == running.count("delivered")
        assert 2.0 == running.metrics.registry.get_sample_value(
            "iot_webhook_delivery_seconds_sum")


@pytest.mark.trio
async def test_each_attempt_has_a_fresh_nonce_and_timestamp(db_target: str | Path) -> None:
    async with harness(db_target) as h:
        h.receiver.mode = "fail"
        running = await h.start()
        seq = await h.emit("A", 1)
        running.deliverer.wake()
        await h.settled(seq, attempts=1)
        h.receiver.mode = "ok"
        h.clock.now += 1
        running.deliverer.wake()

        await h.settled(seq, status=DeliveryStatus.DELIVERED)

        first, second = h.receiver.requests
        assert first.headers["x-nonce"] != second.headers["x-nonce"]
        assert (str(T0), str(T0 + 1)) == (first.headers["x-timestamp"],
                                          second.headers["x-timestamp"])
        assert json.loads(first.body)["timestamp"] == json.loads(second.body)["timestamp"]


@pytest.mark.trio
async def test_without_a_secret_deliveries_go_unsigned(db_target: str | Path) -> None:
    async with harness(db_target) as h:
        h.receiver.secret = None
        running = await h.start(h.config(webhook_secret=None))
        seq = await h.emit("A", 1)
        running.deliverer.wake()

        await h.settled(seq, status=DeliveryStatus.DELIVERED)

        [request] = h.receiver.requests
        assert "x-signature" not in request.headers
        assert {"x-timestamp", "x-nonce", "x-event-id"} <= set(request.headers)


@pytest.mark.trio
async def test_devices_go_concurrently_each_in_order(db_target: str | Path) -> None:
    async with harness(db_target) as h:
        devices = [f"dev{i:02}" for i in range(MAX_IN_FLIGHT + 2)]
        seqs = [await h.emit(phy_id, n)  # interleaved, as events of busy devices are
                for n in (1, 2, 3) for phy_id in devices]
        h.receiver.mode = "hold"

        running = await h.start()
        await wait_until(lambda: len(h.receiver.requests) == MAX_IN_FLIGHT)
        await trio.testing.wait_all_tasks_blocked()

        # A full set in flight, each the first event of a different device.
        assert MAX_IN_FLIGHT == len(h.receiver.requests)
        firsts = [r.event for r in h.receiver.requests if r.event is not None]
        assert MAX_IN_FLIGHT == len({event.device_phy_id for event in firsts})
        assert {1} == {event.data["n"] for event in firsts}
        h.receiver.mode = "ok"
        h.receiver.release.set()
        for seq in seqs:
            await h.settled(seq, status=DeliveryStatus.DELIVERED)
        for phy_id in devices:
            assert [1, 2, 3] == device_order(h.receiver.accepted, phy_id)
        assert [] == h.receiver.overlaps
        assert 3.0 * len(devices) == running.count("delivered")


@pytest.mark.trio
async def test_a_failing_event_holds_back_its_own_device_only(db_target: str | Path) -> None:
    async with harness(db_target) as h:
        a1, a2 = await h.emit("A", 1), await h.emit("A", 2)
        b1, b2 = await h.emit("B", 1), await h.emit("B", 2)
        h.receiver.failing = {"charging.progress-A-1"}
        running = await h.start()

        await h.settled(a1, attempts=1)
        await h.settled(b2, status=DeliveryStatus.DELIVERED)
        await trio.testing.wait_all_tasks_blocked()

        assert ["charging.progress-B-1", "charging.progress-B-2"] == h.receiver.accepted_ids()
        assert 0 == (await h.delivery(a2)).attempts
        h.receiver.failing.clear()
        h.clock.now += 1
        running.deliverer.wake()
        await h.settled(a2, status=DeliveryStatus.DELIVERED)
        assert [1, 2] == device_order(h.receiver.accepted, "A")
        assert DeliveryStatus.DELIVERED is (await h.delivery(b1)).status


@pytest.mark.trio
async def test_an_attempt_that_outlives_its_lease_is_not_started_again(
        db_target: str | Path) -> None:
    async with harness(db_target) as h:
        h.receiver.mode = "hold"
        running = await h.start()
        seq = await h.emit("A", 1)
        running.deliverer.wake()
        await wait_until(lambda: len(h.receiver.requests) == 1)

        h.clock.now += 3600  # the claim's lease ran out while the POST is in flight
        running.deliverer.wake()
        await trio.testing.wait_all_tasks_blocked()

        assert 1 == len(h.receiver.requests)
        h.receiver.mode = "ok"
        h.receiver.release.set()
        record = await h.settled(seq, status=DeliveryStatus.DELIVERED)
        assert (1, ["charging.progress-A-1"]) == (record.attempts, h.receiver.accepted_ids())


@pytest.mark.trio
async def test_no_answer_within_the_timeout_is_a_failure(db_target: str | Path) -> None:
    async with harness(db_target) as h:
        h.receiver.mode = "hold"  # answers nothing until released
        running = await h.start(h.config(webhook_timeout=1))
        seq = await h.emit("A", 1)
        running.deliverer.wake()

        record = await h.settled(seq)

        assert (DeliveryStatus.PENDING, "no answer within 1 s") == (record.status,
                                                                    record.last_error)
        [failure] = h.log_lines("webhook delivery failed")
        assert (None, 1) == (failure["status"], failure["retry_in"])


@pytest.mark.trio
async def test_errors_are_stored_and_logged_without_the_query(db_target: str | Path) -> None:
    def transport(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    async with (httpx.AsyncClient(transport=httpx.MockTransport(transport)) as client,
                harness(db_target) as h):
        running = await h.start(client=client)
        seq = await h.emit("A", 1)
        running.deliverer.wake()

        record = await h.settled(seq)

        shown = f"http://127.0.0.1:{h.receiver.port}{PATH}"
        assert f"ConnectError: cannot reach {shown}" == record.last_error
        [failure] = h.log_lines("webhook delivery failed")
        assert record.last_error == failure["error"]
        assert QUERY not in h.logs.getvalue()


@pytest.mark.trio
async def test_receiver_down_then_failing_then_up_gets_each_event_once_in_order(
        db_target: str | Path) -> None:
    async with harness(db_target) as h:
        await h.receiver.stop()  # connection refused
        seqs = {phy_id: [await h.emit(phy_id, n) for n in (1, 2, 3)] for phy_id in "AB"}
        running = await h.start()
        firsts = [seqs["A"][0], seqs["B"][0]]

        for seq in firsts:
            record = await h.settled(seq, attempts=1)
            assert record.last_error is not None
            assert "ConnectError" in record.last_error
            assert QUERY not in record.last_error
        h.receiver.mode = "fail"
        await h.receiver.start(h.nursery)  # back on the same port, answering 500
        h.clock.now += 1
        running.deliverer.wake()
        for seq in firsts:
            assert "HTTP 500" == (await h.settled(seq, attempts=2)).last_error
        h.receiver.mode = "ok"
        h.clock.now += 2
        running.deliverer.wake()
        for seq in seqs["A"] + seqs["B"]:
            await h.settled(seq, status=DeliveryStatus.DELIVERED)

        counts = collections.Counter(h.receiver.accepted_ids())
        assert 6 == len(counts)
        assert {1} == set(counts.values())
        assert [1, 2, 3] == device_order(h.receiver.accepted, "A")
        assert [1, 2, 3] == device_order(h.receiver.accepted, "B")
        assert (4.0, 6.0) == (running.count("failed"), running.count("delivered"))
        failures = h.log_lines("webhook delivery failed")
        assert 4 == len(failures)
        assert {500} == {line["status"] for line in failures if line["status"] is not None}
        assert QUERY not in h.logs.getvalue()
        assert SECRET not in h.logs.getvalue()


@pytest.mark.trio
async def test_backoff_doubles_and_is_capped(db_target: str | Path) -> None:
    async with harness(db_target) as h:  # webhook_max_backoff = 4
        h.receiver.mode = "fail"
        running = await h.start()
        seq = await h.emit("A", 1)
        running.deliverer.wake()

        delays = []
        for attempt in range(1, 7):
            record = await h.settled(seq, attempts=attempt)
            delays.append(record.next_attempt_at - h.clock.now)
            await trio.testing.wait_all_tasks_blocked()
            assert attempt == len(h.receiver.requests)  # nothing before it was due
            h.clock.now = record.next_attempt_at
            running.deliverer.wake()

        assert [1, 2, 4, 4, 4, 4] == delays
        failures = h.log_lines("webhook delivery failed")
        assert [1, 2, 4, 4, 4, 4] == [line["retry_in"] for line in failures]
        assert [1, 2, 3, 4, 5, 6] == [line["attempt"] for line in failures]
        assert {"charging.progress-A-1"} == {line["event_id"] for line in failures}
        assert {"warning"} == {line["level"] for line in failures}


@pytest.mark.trio
async def test_dead_letter_after_the_window_then_redeliver(db_target: str | Path) -> None:
    async with harness(db_target) as h:
        config = h.config(webhook_retry_window=5, webhook_max_backoff=2)
        a1, a2 = await h.emit("A", 1), await h.emit("A", 2)
        h.receiver.failing = {"charging.progress-A-1"}
        running = await h.start(config)

        # Attempts at T0, +1, +3 and +5; the next would be at +7, after the window.
        record = await h.settled(a1)
        while record.status is DeliveryStatus.PENDING:
            h.clock.now = record.next_attempt_at
            running.deliverer.wake()
            record = await h.settled(a1, attempts=record.attempts + 1)

        assert (DeliveryStatus.DEAD, 4, "HTTP 500") == (record.status, record.attempts,
                                                        record.last_error)
        assert 5 == h.clock.now - T0
        [dead] = h.log_lines("webhook delivery dead-lettered")
        assert ("error", "charging.progress-A-1", 4, "HTTP 500") == (
            dead["level"], dead["event_id"], dead["attempts"], dead["error"])
        assert (3.0, 1.0) == (running.count("failed"), running.count("dead"))
        # A dead letter no longer holds back its device.
        await h.settled(a2, status=DeliveryStatus.DELIVERED)
        assert ["charging.progress-A-1"] * 4 + ["charging.progress-A-2"] == [
            r.event.event_id for r in h.receiver.requests if r.event is not None]

        h.receiver.failing.clear()
        assert await h.db.redeliver("charging.progress-A-1", int(h.clock.now))
        running.deliverer.wake()
        record = await h.settled(a1, status=DeliveryStatus.DELIVERED)

        assert 1 == record.attempts
        assert ["charging.progress-A-2", "charging.progress-A-1"] == h.receiver.accepted_ids()


@pytest.mark.trio
async def test_a_restart_delivers_what_was_pending_and_nothing_twice(db_target: str | Path) -> None:
    async with harness(db_target) as h:
        first = await h.start()
        a1 = await h.emit("A", 1)
        first.deliverer.wake()
        await h.settled(a1, status=DeliveryStatus.DELIVERED)
        h.receiver.mode = "hold"
        a2, a3, b1 = await h.emit("A", 2), await h.emit("A", 3), await h.emit("B", 1)
        first.deliverer.wake()
        await wait_until(lambda: len(h.receiver.requests) == 3)  # A-2 and B-1 in flight

        # The server stops mid-attempt: the attempts in flight are finished first
        # (the receiver holds them past webhook_timeout, so they are recorded as
        # failed, not left leased); the receiver drops what it held.
        await first.stop()
        await h.db.aclose()
        await h.receiver.stop()
        h.receiver.mode = "ok"
        await h.receiver.start(h.nursery)
        async with await AsyncDatabase.open(h.db_target) as db:
            failed = await h.delivery(a2, db=db)
            assert (DeliveryStatus.PENDING, 1) == (failed.status, failed.attempts)
            # What a starting server does before its deliverer runs.
            await db.release_delivery_claims(int(h.clock.now))
            second = await h.start(db=db)
            second.deliverer.wake()
            for seq in (a2, a3, b1):
                await h.settled(seq, status=DeliveryStatus.DELIVERED, db=db)
            await second.stop()

        assert ["charging.progress-A-1", "charging.progress-A-2", "charging.progress-A-3",
                "charging.progress-B-1"] == sorted(h.receiver.accepted_ids())
        assert [1, 2, 3] == device_order(h.receiver.accepted, "A")
        assert 3.0 == second.count("delivered")


@pytest.mark.trio
async def test_without_a_webhook_url_events_are_only_recorded(db_target: str | Path) -> None:
    calls: list[httpx.Request] = []

    def transport(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    async with (httpx.AsyncClient(transport=httpx.MockTransport(transport)) as client,
                harness(db_target) as h):
        running = await h.start(h.config(webhook_url=None), client=client)
        seqs = [await h.emit("A", 1), await h.emit(None, 2)]
        running.deliverer.wake()
        h.clock.now += 3600
        running.deliverer.wake()
        await trio.sleep(0.05)  # time to do something wrong, if it were going to
        await trio.testing.wait_all_tasks_blocked()

        for seq in seqs:
            record = await h.delivery(seq)
            assert (DeliveryStatus.PENDING, 0, T0) == (record.status, record.attempts,
                                                       record.next_attempt_at)  # not claimed
        assert 2 == len(await h.db.list_events())
        assert ([], []) == (calls, h.receiver.requests)
        await running.stop()
        assert not client.is_closed  # a client passed in belongs to the caller


@pytest.mark.trio
async def test_run_twice_is_refused(db_target: str | Path) -> None:
    async with harness(db_target) as h:
        running = await h.start()

        with pytest.raises(RuntimeError):
            await running.deliverer.run()


# --- the example receiver of the docs -------------------------------------------------------

def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("webhook_receiver_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.trio
async def test_the_example_receiver_verifies_and_drops_repeats(
        db_target: str | Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = _load_example().make_server(SECRET, 0, "127.0.0.1")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/webhook"
        async with harness(db_target) as h:
            h.clock.now = time.time()  # the example checks X-Timestamp against its own clock
            running = await h.start(h.config(webhook_url=url), clock=time.time)
            seq = await h.emit("82210225000520", 1, event_type="order.completed",
                               data={"order_no": "THD1729407600001", "end_reason": "normal"})
            running.deliverer.wake()
            await h.settled(seq, status=DeliveryStatus.DELIVERED)
            # Delivered again (as after a lost answer): accepted, but not handled twice.
            assert await h.db.redeliver("order.completed-82210225000520-1", int(time.time()))
            running.deliverer.wake()
            await h.settled(seq, status=DeliveryStatus.DELIVERED)

            body = b'{"event_id": "forged"}'
            headers = {"X-Timestamp": str(int(time.time())), "X-Nonce": "n",
                       "X-Signature": "0" * 64}
            async with httpx.AsyncClient() as client:
                forged = await client.post(url, content=body, headers=headers)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    assert (401, {"error": "invalid signature"}) == (forged.status_code, forged.json())
    out = capsys.readouterr().out
    assert 1 == out.count("event received: order.completed")
    assert '"order_no": "THD1729407600001"' in out
    assert 2.0 == running.count("delivered")
