"""The HTTP API over real loopback HTTP: hypercorn's trio worker serving create_app()
with a real database (api.md §6; test-plan.md §3 examples). Devices for the read
routes are written straight into the database; the command routes go through the
real ChargingService (started, no gateway attached: every device is offline)."""
from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from starlette.routing import Route

from bkvcodec import ChargeMode, OrderState, PortState, ProtocolFamily, sign
from reference_server.api import ROUTES, create_app, openapi_document, serve_http
from reference_server.api.idempotency import KeyedLocks
from reference_server.api.openapi import DATA_SCHEMAS
from reference_server.api.ratelimit import TokenBucketLimiter
from reference_server.api.serve import parse_bound_address
from reference_server.config import ApiKey, Config
from reference_server.logs import Logger
from reference_server.metrics import Metrics
from reference_server.service import ChargingService
from reference_server.storage import (
    AsyncDatabase,
    CommandStatus,
    NewCommand,
    NewEvent,
    NewOrder,
    PortRecord,
    ProgressSample,
)

GW1 = "82210225000520"
GW2 = "82210225000521"
AP1 = "1A2B3C4D"  # AP3000 printed ids are 8 hex digits
KEY = "test-api-key-12345"
SIGNED_KEY = "signed-key"
SECRET = "s3cret"
BASE = "/api/v1/third"
ENVELOPE_KEYS = {"code", "message", "data", "request_id", "timestamp"}
ERROR_KEYS = ENVELOPE_KEYS | {"error"}
TIMEOUT = 10  # seconds per test: a hang is a failure, not a stuck run

CONFIG = Config(api_keys=(ApiKey("plain", KEY), ApiKey("signer", SIGNED_KEY, SECRET)))


@dataclass
class Api:
    client: httpx.AsyncClient
    db: AsyncDatabase
    service: ChargingService
    log: io.StringIO
    metrics: Metrics
    config: Config


@asynccontextmanager
async def running_api(tmp_path: Path, config: Config = CONFIG) -> AsyncIterator[Api]:
    """The API served on a free loopback port, with a client that sends ``KEY``."""
    db = await AsyncDatabase.open(tmp_path / "iot.db")
    log = io.StringIO()
    logger = Logger("info", log)
    metrics = Metrics()
    service = ChargingService(db, config, logger, metrics)
    await service.start()
    app = create_app(config=config, db=db, service=service, metrics=metrics, logger=logger)
    try:
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(serve_http, app, "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}",
                                         headers={"X-Api-Key": KEY}) as client:
                yield Api(client, db, service, log, metrics, config)
            nursery.cancel_scope.cancel()
    finally:
        await db.aclose()


async def add_device(db: AsyncDatabase, phy_id: str = GW1, *,
                     protocol: ProtocolFamily = ProtocolFamily.BKV, online: bool = True,
                     ports: int = 2) -> int:
    now = int(time.time())
    device, _ = await db.upsert_device(phy_id, protocol, now, remote_addr="10.0.0.7:40000",
                                       firmware="V1.2.3", iccid="8986000000000000000",
                                       rssi=23)
    await db.set_device_online(phy_id, online, now)
    for port_no in range(1, ports + 1):
        await db.put_port(PortRecord(
            device_id=device.id, socket_no=1, port_no=port_no,
            status=PortState.CHARGING if port_no == 1 else PortState.FAULT,
            power_w=1500 if port_no == 1 else 0, voltage=2205, fault_code=0 if port_no == 1 else 4,
            order_no=None, business_no=None, updated_at=now))
    return device.id


def signed_headers(method: str, path: str, body: bytes = b"", *, nonce: str = "n-1",
                   timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"X-Api-Key": SIGNED_KEY, "X-Timestamp": ts, "X-Nonce": nonce,
            "X-Signature": sign(secret, method, path, ts, nonce, body)}


def assert_error(response: httpx.Response, status: int, error: str,
                 field: str | None = None) -> dict[str, object]:
    body = response.json()

    assert (status, error) == (response.status_code, body["error"]), body
    assert ERROR_KEYS == set(body)
    assert status == body["code"]
    assert response.headers["x-request-id"] == body["request_id"]
    if field is not None:
        assert {"field": field} == body["data"], body
    data: dict[str, object] = body["data"]
    return data


def ok_data(response: httpx.Response) -> dict[str, object]:
    body = response.json()

    assert 200 == response.status_code, body
    assert ENVELOPE_KEYS == set(body)
    assert 0 == body["code"]
    data: dict[str, object] = body["data"]
    return data


CHARGE = {"port_no": 1, "charge_mode": 1, "duration": 3600, "amount": 1000,
          "price_per_kwh": 150, "service_fee": 100}


# --- envelope, health, metrics, document ---------------------------------------------------

@pytest.mark.trio
async def test_envelope_shape_and_request_id(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            await add_device(api.db)
            before = int(time.time())
            first = await api.client.get(f"{BASE}/devices/{GW1}")
            second = await api.client.get(f"{BASE}/devices/{GW1}")
            body = first.json()

            assert ENVELOPE_KEYS == set(body)
            assert (0, "ok") == (body["code"], body["message"])
            assert first.headers["x-request-id"] == body["request_id"]
            assert body["request_id"].startswith("req-")
            assert body["request_id"] != second.json()["request_id"]
            assert before <= body["timestamp"] <= int(time.time())
            assert first.headers["content-type"].startswith("application/json")


@pytest.mark.trio
async def test_health_ready_metrics_and_document(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            anonymous = {"X-Api-Key": ""}
            health = await api.client.get("/healthz", headers=anonymous)
            ready = await api.client.get("/readyz", headers=anonymous)
            await api.client.get(f"{BASE}/devices/{GW1}")
            await api.client.get(f"{BASE}/devices/no/such/route")
            metrics = await api.client.get("/metrics", headers=anonymous)
            document = await api.client.get("/openapi.json", headers=anonymous)
            await api.service.aclose()  # shutdown begins: not ready any more
            unready = await api.client.get("/readyz")

            assert {"status": "ok"} == ok_data(health)
            assert {"ready": True, "service": True, "database": True} == ok_data(ready)
            assert metrics.headers["content-type"].startswith("text/plain")
            assert "iot_api_request_seconds" in metrics.text
            # Route templates, not raw paths, label the latency histogram.
            assert 'route="/api/v1/third/devices/{phy_id}",status="404"' in metrics.text
            assert 'route="<unmatched>",status="404"' in metrics.text
            assert GW1 not in metrics.text
            assert openapi_document() == document.json()
            data = assert_error(unready, 503, "unavailable")
            assert {"ready": False, "service": False, "database": True} == data


def test_openapi_document_covers_every_route_and_nothing_else() -> None:
    document = openapi_document()
    # Building the routes needs no database or service.
    app = create_app(config=CONFIG, db=None, service=None, metrics=Metrics())
    routed: set[tuple[str, str]] = set()
    for route in app.routes:
        assert isinstance(route, Route)
        routed |= {(route.path, m.lower()) for m in route.methods or () if m != "HEAD"}
    paths = document["paths"]
    assert isinstance(paths, dict)
    documented = {(path, method) for path, ops in paths.items() for method in ops}

    assert routed == documented
    assert {(r.path, r.method.lower()) for r in ROUTES} == documented
    assert "3.1.0" == document["openapi"]
    components = document["components"]
    assert isinstance(components, dict)
    assert {"ApiKey", "Timestamp", "Nonce", "Signature"} == set(components["securitySchemes"])
    # Every $ref resolves.
    text = json.dumps(document)
    for name in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in components["schemas"], name
    # Unauthenticated routes say so (api.md §10.10); the others accept a plain or a
    # signing key.
    for path, ops in paths.items():
        for op in ops.values():
            assert (2 if path.startswith(BASE) else 0) == len(op["security"]), path


# --- authentication (api.md §6.1) ----------------------------------------------------------

@pytest.mark.trio
async def test_missing_or_unknown_api_key_is_401(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            missing = await api.client.get(f"{BASE}/devices", headers={"X-Api-Key": ""})
            wrong = await api.client.get(f"{BASE}/devices", headers={"X-Api-Key": KEY + "x"})

            assert {"reason": "missing_key"} == assert_error(missing, 401, "unauthorized")
            assert {"reason": "unknown_key"} == assert_error(wrong, 401, "unauthorized")
            assert KEY not in api.log.getvalue()


@pytest.mark.trio
async def test_signed_requests(tmp_path: Path) -> None:
    path = f"{BASE}/cards"
    body = json.dumps({"card_no": "1234567890", "balance_cents": 500}).encode()
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            post = api.client.post
            good = await post(path, content=body,
                              headers=signed_headers("POST", path, body, nonce="a"))
            replay = await post(path, content=body,
                                headers=signed_headers("POST", path, body, nonce="a"))
            unsigned = await post(path, content=body, headers={"X-Api-Key": SIGNED_KEY})
            stale = await post(path, content=body, headers=signed_headers(
                "POST", path, body, nonce="b", timestamp=int(time.time()) - 301))
            bad = await post(path, content=body, headers=signed_headers(
                "POST", path, body, nonce="c", secret="wrong"))
            tampered = await post(path, content=body + b" ",
                                  headers=signed_headers("POST", path, body, nonce="d"))
            # The query string is not signed (api.md §10.5).
            query = await api.client.get(f"{BASE}/devices?limit=5", headers=signed_headers(
                "GET", f"{BASE}/devices", nonce="e"))

            assert "1234567890" == ok_data(good)["card_no"]
            assert "replayed_nonce" == assert_error(replay, 401, "unauthorized")["reason"]
            assert "missing_header" == assert_error(unsigned, 401, "unauthorized")["reason"]
            assert "stale_timestamp" == assert_error(stale, 401, "unauthorized")["reason"]
            assert "bad_signature" == assert_error(bad, 401, "unauthorized")["reason"]
            assert "bad_signature" == assert_error(tampered, 401, "unauthorized")["reason"]
            assert [] == ok_data(query)["items"]
            assert SECRET not in api.log.getvalue()


@pytest.mark.trio
async def test_unsigned_key_checks_timestamp_and_nonce_when_sent(tmp_path: Path) -> None:
    # test-plan.md §3.3's first example sends X-Timestamp and X-Nonce with a plain key.
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            now = str(int(time.time()))
            first = await api.client.get(f"{BASE}/devices",
                                         headers={"X-Timestamp": now, "X-Nonce": "u-1"})
            replay = await api.client.get(f"{BASE}/devices",
                                          headers={"X-Timestamp": now, "X-Nonce": "u-1"})
            stale = await api.client.get(f"{BASE}/devices", headers={"X-Timestamp": "1000"})

            assert [] == ok_data(first)["items"]
            assert "replayed_nonce" == assert_error(replay, 401, "unauthorized")["reason"]
            assert "stale_timestamp" == assert_error(stale, 401, "unauthorized")["reason"]


# --- rate limits (api.md §6.2) -------------------------------------------------------------

@pytest.mark.trio
async def test_rate_limit_per_api_key(tmp_path: Path) -> None:
    config = replace(CONFIG, rate_limit_rps=1, rate_limit_burst=3)
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path, config) as api:
            answers = [await api.client.get(f"{BASE}/devices") for _ in range(4)]
            other_key = await api.client.get(
                f"{BASE}/devices", headers=signed_headers("GET", f"{BASE}/devices"))

            assert [200, 200, 200, 429] == [r.status_code for r in answers]
            data = assert_error(answers[3], 429, "rate_limited")
            assert {"scope": "api_key", "retry_after": 1} == data
            assert "1" == answers[3].headers["retry-after"]
            assert 200 == other_key.status_code  # buckets are per key


@pytest.mark.trio
async def test_ten_charge_requests_in_one_second_see_429(tmp_path: Path) -> None:
    # Scenario 5.3: 10 requests within one second to one device must trigger 429.
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            await add_device(api.db)
            await add_device(api.db, GW2)
            started = trio.current_time()
            answers = [await api.client.post(f"{BASE}/devices/{GW1}/charge", json=CHARGE)
                       for _ in range(10)]
            elapsed = trio.current_time() - started
            other_device = await api.client.post(f"{BASE}/devices/{GW2}/charge", json=CHARGE)

            limited = [r for r in answers if r.status_code == 429]
            assert elapsed < 1.0
            assert len(limited) >= 4
            for response in limited:
                assert "device" == assert_error(response, 429, "rate_limited")["scope"]
                assert int(response.headers["retry-after"]) >= 1
            # The first was accepted; the next ones within the burst found the port busy.
            assert 200 == answers[0].status_code
            assert {409} == {r.status_code for r in answers[1:5]}
            assert 200 == other_device.status_code


def test_token_buckets_refill_and_stay_bounded() -> None:
    limiter = TokenBucketLimiter(5, 5, max_buckets=3)

    assert [None] * 5 == [limiter.acquire("a", 0.0) for _ in range(5)]
    assert 1 == limiter.acquire("a", 0.0)
    assert limiter.acquire("a", 0.2) is None  # one token back after 1/rate s
    for i in range(10):
        limiter.acquire(f"k{i}", 0.3)
    assert 3 == len(limiter)
    limiter.acquire("late", 5.0)  # everything else is full again: evicted
    assert 1 == len(limiter)
    assert limiter.acquire("a", 4.0) is None  # a clock stepping back mints nothing
    slow = TokenBucketLimiter(0.1, 1)
    assert slow.acquire("x", 0.0) is None
    assert 10 == slow.acquire("x", 0.0)


@pytest.mark.trio
async def test_keyed_locks_serialise_and_forget() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    order: list[str] = []

    async def worker(name: str) -> None:
        async with locks.hold("k"):
            order.append(name + "+")
            await trio.sleep(0)
            order.append(name + "-")

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker, "a")
            nursery.start_soon(worker, "b")

    assert order in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])
    assert 0 == len(locks)


# --- routing errors ------------------------------------------------------------------------

@pytest.mark.trio
async def test_not_found(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            get, post = api.client.get, api.client.post
            cases = [
                (await get(f"{BASE}/devices/{GW1}"), "device_not_found"),
                (await get(f"{BASE}/devices/{'9' * 500}"), "device_not_found"),
                (await post(f"{BASE}/devices/{GW1}/charge", json=CHARGE), "device_not_found"),
                (await post(f"{BASE}/devices/{GW1}/stop", json={"port_no": 1}),
                 "device_not_found"),
                (await get(f"{BASE}/orders/THD1729407600001"), "order_not_found"),
                (await get(f"{BASE}/orders/THD1729407600001/progress"), "order_not_found"),
                (await get(f"{BASE}/commands/cmd_nope"), "command_not_found"),
                (await post(f"{BASE}/events/nope/redeliver"), "event_not_found"),
                (await get(f"{BASE}/cards/123"), "card_not_found"),
                (await post(f"{BASE}/cards/123/topup", json={"amount_cents": 5}),
                 "card_not_found"),
                (await post(f"{BASE}/cards/123/adjust", json={"amount_cents": 5,
                                                              "reason": "x"}),
                 "card_not_found"),
                (await post(f"{BASE}/cards/123/status", json={"status": "blocked"}),
                 "card_not_found"),
                (await get(f"{BASE}/cards/123/ledger"), "card_not_found"),
                (await get(f"{BASE}/nothing/here"), "not_found"),
                (await get("/api/devices/82210225000520"), "not_found"),  # api.md §6.3
            ]

            for response, error in cases:
                assert_error(response, 404, error)


@pytest.mark.trio
async def test_wrong_method_is_405_with_allow(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            delete = await api.client.delete(f"{BASE}/orders/THD0000000000000")
            put = await api.client.put(f"{BASE}/devices/{GW1}/params", json={})

            assert_error(delete, 405, "method_not_allowed")
            assert {"GET", "HEAD"} == set(delete.headers["allow"].split(", "))
            assert_error(put, 405, "method_not_allowed")
            assert {"GET", "HEAD", "POST"} == set(put.headers["allow"].split(", "))


@pytest.mark.trio
async def test_unexpected_exception_is_500_envelope_and_logged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            monkeypatch.setattr(api.db, "list_devices", broken)
            response = await api.client.get(f"{BASE}/devices")

            assert_error(response, 500, "internal")
            assert "secret internals" not in response.text
            line = json.loads(api.log.getvalue().splitlines()[-1])
            assert ("api request failed", "RuntimeError") == (line["msg"], line["error"])
            assert response.json()["request_id"] == line["request_id"]


# --- request bodies and validation ---------------------------------------------------------

VALIDATION_CASES = [
    # (path suffix, body, field at fault)
    ("charge", {"charge_mode": 1, "duration": 60}, "port_no"),
    ("charge", {**CHARGE, "port_no": 17}, "port_no"),
    ("charge", {**CHARGE, "port_no": 0}, "port_no"),
    ("charge", {**CHARGE, "port_no": True}, "port_no"),  # a bool is not an int
    ("charge", {**CHARGE, "port_no": 1.0}, "port_no"),
    ("charge", {**CHARGE, "port_no": "1"}, "port_no"),
    ("charge", {**CHARGE, "socket_no": 251}, "socket_no"),
    ("charge", {"port_no": 1}, "charge_mode"),
    ("charge", {**CHARGE, "charge_mode": 5}, "charge_mode"),
    ("charge", {"port_no": 1, "charge_mode": 1}, "duration"),
    ("charge", {**CHARGE, "duration": 0}, "duration"),
    ("charge", {**CHARGE, "duration": False}, "duration"),
    ("charge", {"port_no": 1, "charge_mode": 2}, "energy_wh"),
    ("charge", {"port_no": 1, "charge_mode": 2, "energy_wh": -5}, "energy_wh"),
    ("charge", {"port_no": 1, "charge_mode": 3}, "power_tiers"),
    ("charge", {"port_no": 1, "charge_mode": 3, "power_tiers": []}, "power_tiers"),
    ("charge", {"port_no": 1, "charge_mode": 3, "power_tiers": [7]}, "power_tiers[0]"),
    ("charge", {"port_no": 1, "charge_mode": 3, "power_tiers": [
        {"max_power_w": 500, "price_cents": 100, "minutes": 60},
        {"max_power_w": 1000, "price_cents": 100}]}, "power_tiers[1].minutes"),
    ("charge", {**CHARGE, "amount": -1}, "amount"),
    ("charge", {**CHARGE, "price_per_kwh": -1}, "price_per_kwh"),
    ("charge", {**CHARGE, "service_fee": 1001}, "service_fee"),
    ("charge", {**CHARGE, "card_no": "12-34"}, "card_no"),
    ("stop", {}, "port_no"),
    ("stop", {"port_no": 255}, "port_no"),
    ("stop", {"port_no": 1, "reason": "x" * 65}, "reason"),
    ("stop", {"port_no": 1, "order_no": 5}, "order_no"),
    ("params", {}, "params"),
    ("params", {"params": [1, 2]}, "params"),
    ("params", {"params": {}}, "params"),
    ("params", {"params": {"max_power": True}}, "params.max_power"),
    ("params", {"params": {"max_power": "high"}}, "params.max_power"),
    ("ota", {}, "body"),
    ("ota", {"ftp_host": "10.0.0.1", "image_base64": "AAAA"}, "body"),
    ("ota", {"ftp_host": "10.0.0.1"}, "file_name"),
    ("ota", {"ftp_host": "10.0.0.1", "file_name": "fw.bin", "ftp_port": 70000}, "ftp_port"),
    ("ota", {"image_base64": "not base64!"}, "image_base64"),
    ("ota", {"image_base64": "AAAA", "target": "moon"}, "target"),
    ("ota", {"image_base64": "AAAA", "device_type": 256}, "device_type"),
]


@pytest.mark.trio
async def test_body_validation_names_the_field(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path, replace(CONFIG, device_command_rate=1000)) as api:
            await add_device(api.db)
            for suffix, body, field in VALIDATION_CASES:
                response = await api.client.post(f"{BASE}/devices/{GW1}/{suffix}", json=body)

                assert_error(response, 400, "invalid_argument", field)
            # Nothing reached the service.
            assert [] == list((await api.db.list_orders()).items)


@pytest.mark.trio
async def test_other_bodies_and_queries_name_the_field(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            await api.db.create_card("42", int(time.time()), balance_cents=0)
            post, get = api.client.post, api.client.get
            cases = [
                (await post(f"{BASE}/cards", content=b"{not json"), "body"),
                (await post(f"{BASE}/cards", content=b"[1, 2]"), "body"),
                (await post(f"{BASE}/cards", content=b'{"balance_cents": NaN}'), "body"),
                (await post(f"{BASE}/cards", content=b"[" * 50_000), "body"),
                (await post(f"{BASE}/cards", content=b"\xff\xfe{"), "body"),
                (await post(f"{BASE}/cards", json={"balance_cents": 5}), "card_no"),
                (await post(f"{BASE}/cards", json={"card_no": "1", "balance_cents": -5}),
                 "balance_cents"),
                (await post(f"{BASE}/cards", json={"card_no": "1", "balance_cents": True}),
                 "balance_cents"),
                (await post(f"{BASE}/cards", json={"card_no": "1", "balance_cents": 5,
                                                   "status": "gold"}), "status"),
                (await post(f"{BASE}/cards", json={"card_no": "1", "balance_cents": 5,
                                                   "charge_mode": 9}), "charge_mode"),
                (await post(f"{BASE}/cards/42/topup", json={"amount_cents": 0}), "amount_cents"),
                (await post(f"{BASE}/cards/42/adjust", json={"amount_cents": 0, "reason": "x"}),
                 "amount_cents"),
                (await post(f"{BASE}/cards/42/adjust", json={"amount_cents": 5}), "reason"),
                (await post(f"{BASE}/cards/42/adjust", json={"amount_cents": 5, "reason": " "}),
                 "reason"),
                (await post(f"{BASE}/cards/42/status", json={}), "status"),
                (await post(f"{BASE}/cards/42/status", json={"status": "gold"}), "status"),
                (await get(f"{BASE}/cards/42/ledger?limit=0"), "limit"),
                (await post(f"{BASE}/devices/{GW1}/charge", json=CHARGE,
                            headers={"Idempotency-Key": "has space"}), "Idempotency-Key"),
                (await get(f"{BASE}/devices?limit=0"), "limit"),
                (await get(f"{BASE}/devices?limit=501"), "limit"),
                (await get(f"{BASE}/devices?limit=ten"), "limit"),
                (await get(f"{BASE}/devices?cursor=bogus"), "cursor"),
                (await get(f"{BASE}/devices?online=maybe"), "online"),
                (await get(f"{BASE}/devices?protocol=gn"), "protocol"),
                (await get(f"{BASE}/orders?status=charging,bogus"), "status"),
                (await get(f"{BASE}/orders?from=yesterday"), "from"),
                (await get(f"{BASE}/events?after=-1"), "after"),
                (await get(f"{BASE}/devices/{GW1}/params?socket_no=0"), "socket_no"),
            ]

            for response, field in cases:
                assert_error(response, 400, "invalid_argument", field)


@pytest.mark.trio
async def test_body_over_64_kib_is_413(tmp_path: Path) -> None:
    limit = CONFIG.max_body_bytes
    padded = json.dumps({"card_no": "1", "balance_cents": 1, "pad": "x" * limit}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the server must count as the body streams in.
        for i in range(0, len(padded), 4096):
            yield padded[i:i + 4096]

    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            declared = await api.client.post(f"{BASE}/cards", content=padded)
            streamed = await api.client.post(f"{BASE}/cards", content=chunks())
            at_limit = json.dumps({"card_no": "1", "balance_cents": 1,
                                   "pad": ""}).encode().ljust(limit)
            fits = await api.client.post(f"{BASE}/cards", content=at_limit)

            assert {"limit": limit} == assert_error(declared, 413, "payload_too_large")
            assert {"limit": limit} == assert_error(streamed, 413, "payload_too_large")
            assert "1" == ok_data(fits)["card_no"]


@pytest.mark.trio
async def test_json_body_is_read_whatever_the_content_type(tmp_path: Path) -> None:
    # The plan's stop example is curl -d without a Content-Type (form-encoded).
    body = b'{"card_no": "77", "balance_cents": 10}'
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            bare = await api.client.post(f"{BASE}/cards", content=body)
            body = body.replace(b"77", b"78")
            form = await api.client.post(f"{BASE}/cards", content=body, headers={
                "Content-Type": "application/x-www-form-urlencoded"})

            assert "content-type" not in bare.request.headers
            assert 10 == ok_data(bare)["balance_cents"]
            assert 10 == ok_data(form)["balance_cents"]


# --- reads: devices, orders, events --------------------------------------------------------

@pytest.mark.trio
async def test_device_view(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            await add_device(api.db)
            data = ok_data(await api.client.get(f"{BASE}/devices/{GW1}"))

            assert set(DATA_SCHEMAS["Device"]["properties"]) == set(data)
            assert (GW1, "bkv", True, "V1.2.3", 23) == (
                data["device_phy_id"], data["protocol"], data["online"], data["firmware"],
                data["rssi"])
            ports = data["ports"]
            assert isinstance(ports, list)
            assert set(DATA_SCHEMAS["Port"]["properties"]) == set(ports[0])
            assert [(1, 1, "charging", 1500, 220.5, 0), (2, 2, "fault", 0, 220.5, 4)] == [
                (p["port_no"], p["status"], p["status_name"], p["power_w"], p["voltage_v"],
                 p["fault_code"]) for p in ports]


@pytest.mark.trio
async def test_device_list_filters_and_cursor(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            phy_ids = [f"8221022500{n:04d}" for n in range(5)]
            for n, phy_id in enumerate(phy_ids):
                await add_device(api.db, phy_id, online=n % 2 == 0, ports=0)
            await add_device(api.db, AP1, protocol=ProtocolFamily.AP3000, ports=0)
            seen: list[str] = []
            cursor = None
            pages = 0
            while True:
                query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
                data = ok_data(await api.client.get(f"{BASE}/devices{query}"))
                seen += [d["device_phy_id"] for d in data["items"]]
                pages += 1
                cursor = data["next_cursor"]
                if cursor is None:
                    break
            online = ok_data(await api.client.get(f"{BASE}/devices?online=true&protocol=bkv"))
            ap3000 = ok_data(await api.client.get(f"{BASE}/devices?protocol=ap3000"))

            assert [*phy_ids, AP1] == seen
            assert 3 == pages
            assert [phy_ids[0], phy_ids[2], phy_ids[4]] == [
                d["device_phy_id"] for d in online["items"]]
            assert [AP1] == [d["device_phy_id"] for d in ap3000["items"]]
            assert set(DATA_SCHEMAS["DeviceSummary"]["properties"]) == set(
                ap3000["items"][0])


@pytest.mark.trio
async def test_order_view_progress_and_list(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            device_id = await add_device(api.db)
            now = int(time.time())
            order = await api.db.insert_order(NewOrder(
                order_no="THD1729407600001", device_id=device_id, port_no=1,
                charge_mode=ChargeMode.TIME, amount=1000, price_per_kwh=150, service_fee=100,
                requested_duration_sec=3600, created_at=now))
            await api.db.save_order(replace(
                order, status=OrderState.CHARGING, start_time=now, duration_sec=900,
                total_kwh=235, current_power=15005, peak_power=18000, updated_at=now))
            await api.db.add_progress(ProgressSample(
                order_no=order.order_no, at=now, duration_sec=900, total_kwh=235,
                power=15005, voltage=2205, current=6800))
            data = ok_data(await api.client.get(f"{BASE}/orders/{order.order_no}"))
            progress = ok_data(await api.client.get(f"{BASE}/orders/{order.order_no}/progress"))
            listed = ok_data(await api.client.get(
                f"{BASE}/orders?device_phy_id={GW1}&status=charging,pending&limit=1"))
            none = ok_data(await api.client.get(f"{BASE}/orders?status=completed"))

            assert set(DATA_SCHEMAS["Order"]["properties"]) == set(data)
            # test-plan.md §3.6, in its units.
            assert {"order_no": "THD1729407600001", "device_phy_id": GW1, "port_no": 1,
                    "status": "charging", "start_time": now, "duration_sec": 900,
                    "total_kwh": 2.35, "current_power": 1500.5, "peak_power": 1800.0,
                    "amount": 1000} == {k: data[k] for k in (
                        "order_no", "device_phy_id", "port_no", "status", "start_time",
                        "duration_sec", "total_kwh", "current_power", "peak_power", "amount")}
            assert (None, None, None) == (data["end_reason"], data["final_amount"],
                                          data["final_amount_cents"])
            assert {"order_no": order.order_no, "items": [
                {"time": now, "duration_sec": 900, "total_kwh": 2.35, "power": 1500.5,
                 "voltage": 220.5, "current": 6.8}]} == progress
            assert [order.order_no] == [o["order_no"] for o in listed["items"]]
            assert [] == none["items"]


@pytest.mark.trio
async def test_events_paging(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            for n in range(5):
                await api.db.append_event(NewEvent(
                    event_id=f"device.online-{GW1}-{n}", event_type="device.online",
                    data={"device_phy_id": GW1, "n": n}, created_at=1729407600 + n,
                    device_phy_id=GW1), deliver=False)
            first = ok_data(await api.client.get(f"{BASE}/events?limit=2"))
            after = first["next_after"]
            second = ok_data(await api.client.get(f"{BASE}/events?after={after}&limit=2"))
            rest = ok_data(await api.client.get(f"{BASE}/events?after={second['next_after']}"))
            end = ok_data(await api.client.get(f"{BASE}/events?after={rest['next_after']}"))

            items = first["items"]
            assert isinstance(items, list)
            assert set(DATA_SCHEMAS["Event"]["properties"]) == set(items[0])
            assert {"seq": items[0]["seq"], "event_id": f"device.online-{GW1}-0",
                    "event_type": "device.online", "device_phy_id": GW1, "order_no": None,
                    "timestamp": 1729407600, "data": {"device_phy_id": GW1, "n": 0}} == items[0]
            assert [0, 1, 2, 3, 4] == [e["data"]["n"] for page in (first, second, rest)
                                       for e in page["items"]]
            assert ([], rest["next_after"]) == (end["items"], end["next_after"])


@pytest.mark.trio
async def test_cards_create_get_top_up(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            created = ok_data(await api.client.post(f"{BASE}/cards", json={
                "card_no": "A1B2C3D4E5F6", "balance_cents": 500, "charge_mode": 1,
                "duration": 3600}))
            topped = ok_data(await api.client.post(f"{BASE}/cards/A1B2C3D4E5F6/topup",
                                                   json={"amount_cents": 250}))
            again = await api.client.post(f"{BASE}/cards", json={
                "card_no": "A1B2C3D4E5F6", "balance_cents": 100, "status": "blocked"})
            adjusted = ok_data(await api.client.post(f"{BASE}/cards/A1B2C3D4E5F6/adjust",
                                                     json={"amount_cents": -50,
                                                           "reason": "duplicate top-up"}))
            blocked = ok_data(await api.client.post(f"{BASE}/cards/A1B2C3D4E5F6/status",
                                                    json={"status": "blocked"}))
            fetched = ok_data(await api.client.get(f"{BASE}/cards/A1B2C3D4E5F6"))
            ledger = ok_data(await api.client.get(f"{BASE}/cards/A1B2C3D4E5F6/ledger"))

            assert set(DATA_SCHEMAS["Card"]["properties"]) == set(created)
            assert (500, 5.0, 0, 500, "active", 1, 3600) == (
                created["balance_cents"], created["balance"], created["held_cents"],
                created["available_cents"], created["status"], created["charge_mode"],
                created["duration"])
            assert 750 == topped["balance_cents"]
            assert {"card_no": "a1b2c3d4e5f6"} == assert_error(again, 409, "card_exists")
            assert 700 == adjusted["balance_cents"]
            assert (700, "blocked", 1) == (blocked["balance_cents"], blocked["status"],
                                           blocked["charge_mode"])
            assert blocked == fetched
            assert set(DATA_SCHEMAS["LedgerEntry"]["properties"]) == set(ledger["items"][0])
            assert [("topup", 500, "opening balance"), ("topup", 250, None),
                    ("adjust", -50, "duplicate top-up")] == [
                (e["kind"], e["amount_cents"], e["reason"]) for e in ledger["items"]]
            assert {"plain"} == {e["key_name"] for e in ledger["items"]}
            assert ledger["next_cursor"] is None


# --- through the charging service ----------------------------------------------------------

@pytest.mark.trio
async def test_charge_stop_and_busy_port(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            await add_device(api.db)
            started = await api.client.post(f"{BASE}/devices/{GW1}/charge", json=CHARGE)
            data = ok_data(started)
            busy = await api.client.post(f"{BASE}/devices/{GW1}/charge", json=CHARGE)
            order = ok_data(await api.client.get(f"{BASE}/orders/{data['order_no']}"))
            stopped = await api.client.post(f"{BASE}/devices/{GW1}/stop", json={
                "port_no": 1, "order_no": data["order_no"], "reason": "user_cancelled"})
            no_order = await api.client.post(f"{BASE}/devices/{GW1}/stop", json={"port_no": 2})
            bad_port = await api.client.post(f"{BASE}/devices/{GW1}/charge",
                                             json={**CHARGE, "port_no": 3})

            assert "charge started successfully" == started.json()["message"]
            assert {"order_no", "device_phy_id", "socket_no", "port_no", "status",
                    "device_online"} == set(data)
            assert (GW1, 1, 1, "pending", False) == (
                data["device_phy_id"], data["socket_no"], data["port_no"], data["status"],
                data["device_online"])
            assert {"current_order": data["order_no"], "port_no": 1,
                    "status": "pending"} == assert_error(busy, 409, "port_busy")
            assert (1000, 150, 100, 3600) == (order["amount"], order["price_per_kwh"],
                                              order["service_fee"],
                                              order["requested_duration_sec"])
            stop_data = ok_data(stopped)
            assert data["order_no"] == stop_data["order_no"]
            assert stop_data["status"] in ("stopping", "cancelled")
            assert_error(no_order, 404, "order_not_found")
            # The generic range allows 3; the BKV socket has holes 1 and 2 only.
            assert_error(bad_port, 400, "invalid_argument", "port_no")


@pytest.mark.trio
async def test_idempotency_key_replays_the_first_answer(tmp_path: Path) -> None:
    path = f"{BASE}/devices/{GW1}/charge"
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path, replace(CONFIG, device_command_rate=100)) as api:
            await add_device(api.db)
            key = {"Idempotency-Key": "charge-1"}
            first = await api.client.post(path, json=CHARGE, headers=key)
            # Same request, different key order and spacing: the same request.
            again = await api.client.post(path, headers=key, content=json.dumps(
                dict(reversed(CHARGE.items())), indent=2).encode())
            other = await api.client.post(path, json={**CHARGE, "duration": 60}, headers=key)
            # A refusal is an answer too: replayed, not re-evaluated.
            busy_key = {"Idempotency-Key": "charge-2"}
            busy = await api.client.post(path, json=CHARGE, headers=busy_key)
            busy_again = await api.client.post(path, json=CHARGE, headers=busy_key)
            # Keys belong to the API key that sent them.
            signed = signed_headers("POST", path, json.dumps(CHARGE).encode(), nonce="i")
            foreign = await api.client.post(path, content=json.dumps(CHARGE).encode(),
                                            headers={**signed, **key})

            assert 200 == first.status_code
            assert "idempotency-replayed" not in first.headers
            assert (200, first.content, "true") == (
                again.status_code, again.content, again.headers["idempotency-replayed"])
            assert again.headers["x-request-id"] != first.headers["x-request-id"]
            assert_error(other, 422, "idempotency_key_reused")
            assert_error(busy, 409, "port_busy")
            assert (409, busy.content, "true") == (busy_again.status_code, busy_again.content,
                                                   busy_again.headers["idempotency-replayed"])
            assert_error(foreign, 409, "port_busy")
            assert "idempotency-replayed" not in foreign.headers
            assert 1 == len((await api.db.list_orders()).items)


@pytest.mark.trio
async def test_concurrent_requests_with_one_idempotency_key_create_one_order(
        tmp_path: Path) -> None:
    path = f"{BASE}/devices/{GW1}/charge"
    answers: list[httpx.Response] = []
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            await add_device(api.db)

            async def charge() -> None:
                answers.append(await api.client.post(path, json=CHARGE,
                                                     headers={"Idempotency-Key": "c"}))

            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(charge)

            # Without the reservation the late ones would find the port busy (409).
            assert {200} == {a.status_code for a in answers}
            assert 1 == len({a.content for a in answers})
            assert ["true", "true", "true"] == sorted(
                a.headers["idempotency-replayed"] for a in answers
                if "idempotency-replayed" in a.headers)
            assert 1 == len((await api.db.list_orders()).items)


@pytest.mark.trio
async def test_params_query_ota_and_commands(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            await add_device(api.db)
            await add_device(api.db, AP1, protocol=ProtocolFamily.AP3000, ports=0)
            query = await api.client.get(f"{BASE}/devices/{GW1}/params?socket_no=3")
            ota = await api.client.post(f"{BASE}/devices/{GW1}/ota", json={
                "ftp_host": "10.0.0.1", "file_name": "fw.bin"})
            wrong_form = await api.client.post(f"{BASE}/devices/{GW1}/ota", json={
                "image_base64": base64.b64encode(b"\x01" * 300).decode()})
            image = await api.client.post(f"{BASE}/devices/{AP1}/ota", json={
                "image_base64": base64.b64encode(b"\x01" * 300).decode(), "target": "host"})
            unknown_param = await api.client.post(f"{BASE}/devices/{GW1}/params",
                                                  json={"params": {"no_such_param": 1}})
            queried = ok_data(query)
            fetched = ok_data(await api.client.get(f"{BASE}/commands/{queried['command_id']}"))

            assert set(DATA_SCHEMAS["Command"]["properties"]) == set(queried)
            assert ("queued", GW1, 0, None) == (queried["status"], queried["device_phy_id"],
                                                queried["attempts"], queried["result"])
            assert queried == fetched
            assert "queued" == ok_data(ota)["status"]
            assert_error(wrong_form, 422, "device_rejected")
            assert "queued" == ok_data(image)["status"]
            assert_error(unknown_param, 400, "invalid_argument", "params")


@pytest.mark.trio
async def test_redeliver_an_event(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            await add_device(api.db)
            ok_data(await api.client.post(f"{BASE}/devices/{GW1}/charge", json=CHARGE))
            events = ok_data(await api.client.get(f"{BASE}/events"))["items"]
            assert isinstance(events, list)
            created = next(e for e in events if e["event_type"] == "order.created")
            again = ok_data(await api.client.post(
                f"{BASE}/events/{created['event_id']}/redeliver"))

            assert created == again


@pytest.mark.trio
async def test_command_view_of_a_finished_command(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_api(tmp_path) as api:
            device_id = await add_device(api.db)
            now = int(time.time())
            await api.db.insert_command(NewCommand(
                id="cmd_1", device_id=device_id, phy_id=GW1, kind="params_query",
                payload={"socket_no": 1}, created_at=now, expires_at=now + 300))
            await api.db.mark_command_sent("cmd_1", now, msg_id=7)
            await api.db.finish_command("cmd_1", CommandStatus.ACKED, now,
                                        result={"max_power": 2000})
            data = ok_data(await api.client.get(f"{BASE}/commands/cmd_1"))

            assert ("acked", {"max_power": 2000}, 1, now, now) == (
                data["status"], data["result"], data["attempts"], data["sent_at"],
                data["finished_at"])


# --- serving -------------------------------------------------------------------------------

def test_parse_bound_address() -> None:
    assert ("127.0.0.1", 7055) == parse_bound_address("http://127.0.0.1:7055")
    assert ("::1", 41234) == parse_bound_address("http://[::1]:41234")
    with pytest.raises(ValueError, match="not a bound address"):
        parse_bound_address("unix:/tmp/sock")


@pytest.mark.trio
async def test_serve_http_stops_on_its_shutdown_trigger(tmp_path: Path) -> None:
    stop = trio.Event()
    with trio.fail_after(TIMEOUT):
        async with await AsyncDatabase.open(tmp_path / "iot.db") as db:
            app = create_app(config=CONFIG, db=db, service=ChargingService(
                db, CONFIG, Logger("error", io.StringIO()), Metrics()), metrics=Metrics())
            async with trio.open_nursery() as nursery:
                host, port = await nursery.start(partial(
                    serve_http, app, "127.0.0.1", 0, shutdown_trigger=stop.wait))
                async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
                    assert 200 == (await client.get("/healthz")).status_code
                stop.set()
            # The nursery closed by itself: the server returned after the trigger.
