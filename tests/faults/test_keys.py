"""Keys, audit and the API's abuse limits (issue 12, stories 7 and 11; api.md §11.3, §11.4),
against the real server over loopback.

Story 7: whoever has seen a signing key's ``X-Api-Key`` spent its rate limit with
unsigned requests and locked the signed client out; wrong keys were never limited.
Story 11: every key could do everything and nothing recorded which key asked; the
generated key sat in plain text in a world-readable file; events, deliveries and
progress were never pruned; the order and its idempotency record were separate
transactions; a step of the wall clock fired the timers in bulk.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import sqlite3
import stat
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bkvcodec import ChargeMode, Direction, ProtocolFamily, sign
from reference_server.config import (
    GENERATED_API_KEY_SETTING,
    LEGACY_GENERATED_API_KEY_SETTING,
    ApiKey,
)
from reference_server.storage import (
    CmdLogEntry,
    Database,
    NewEvent,
    NewOrder,
    ProgressSample,
)

from ..server.harness import (
    AP3000_ID,
    API_KEY,
    BKV_ID,
    Device,
    RunningServer,
    e2e_config,
    server_running,
)

pytestmark = pytest.mark.trio

PREFIX = "/api/v1/third"
SIGNED_KEY, SIGNED_SECRET = "signed-key", "signed-secret"
READ_KEY = "read-only-key"
DAY = 24 * 3600


def _client(server: RunningServer, address: str, key: str | None) -> httpx.AsyncClient:
    """An HTTP client whose connections come from *address* (any 127.x.y.z is loopback)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    headers = {} if key is None else {"X-Api-Key": key}
    return httpx.AsyncClient(
        base_url=f"http://{server.addresses.http_host}:{server.addresses.http_port}",
        transport=transport, headers=headers, timeout=10)


def _signed(method: str, path: str, body: bytes = b"") -> dict[str, str]:
    ts, nonce = str(int(time.time())), uuid.uuid4().hex
    return {"X-Api-Key": SIGNED_KEY, "X-Timestamp": ts, "X-Nonce": nonce,
            "X-Signature": sign(SIGNED_SECRET, method, path, ts, nonce, body)}


@asynccontextmanager
async def _server(tmp_path: Path, seconds: float = 20, **overrides: Any
                  ) -> AsyncIterator[RunningServer]:
    with trio.fail_after(seconds):
        async with server_running(e2e_config(tmp_path / "iot.db", None, **overrides)) as s:
            yield s


async def _known_device(server: RunningServer, nursery: trio.Nursery,
                        protocol: ProtocolFamily = ProtocolFamily.BKV,
                        phy_id: str = BKV_ID) -> Device:
    device = Device(protocol, phy_id, 4 if protocol is ProtocolFamily.AP3000 else None)
    await device.connect(nursery, server.addresses.tcp_port)
    await server.wait_online(phy_id)
    return device


# --- story 7: rate limits after authentication -----------------------------------------------

async def test_unsigned_requests_no_longer_spend_a_signed_keys_rate_limit(
        tmp_path: Path) -> None:
    keys = (ApiKey("signed", SIGNED_KEY, SIGNED_SECRET), ApiKey("e2e", API_KEY))
    async with _server(tmp_path, api_keys=keys, rate_limit_rps=1, rate_limit_burst=5) as s:
        path = f"{PREFIX}/devices"
        async with _client(s, "127.0.0.2", SIGNED_KEY) as attacker:
            flood = [(await attacker.get(path)).status_code for _ in range(30)]
        async with _client(s, "127.0.0.1", None) as owner:
            answer = await owner.get(path, headers=_signed("GET", path))

    # Before: the flood took the key's 5 tokens and the signed client got 429.
    assert [401] * 20 + [429] * 10 == flood
    assert 200 == answer.status_code


async def test_failed_authentication_is_limited_per_address(tmp_path: Path) -> None:
    async with _server(tmp_path) as s:
        path = f"{PREFIX}/devices"
        async with _client(s, "127.0.0.3", "wrong-key") as guesser:
            guesses = [await guesser.get(path) for _ in range(25)]
            # Locked out, a right key from that address is refused too: no guess pays.
            right_key_there = await guesser.get(path, headers={"X-Api-Key": API_KEY})
        elsewhere = await s.call("GET", "/devices")

    assert [401] * 20 + [429] * 5 == [r.status_code for r in guesses]
    refused = guesses[-1]
    assert "auth_failures" == refused.json()["data"]["scope"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert 429 == right_key_there.status_code
    assert 200 == elsewhere.status_code


# --- story 11: roles, audit ----------------------------------------------------------------

async def test_a_read_only_key_cannot_charge(tmp_path: Path) -> None:
    keys = (ApiKey("e2e", API_KEY), ApiKey("reader", READ_KEY, roles=frozenset({"read"})))
    async with _server(tmp_path, api_keys=keys) as s, trio.open_nursery() as nursery:
        await _known_device(s, nursery)
        reader = {"X-Api-Key": READ_KEY}
        charge = await s.call("POST", f"/devices/{BKV_ID}/charge",
                              {"port_no": 1, "charge_mode": 1, "duration": 60, "amount": 100},
                              headers=reader)
        stop = await s.call("POST", f"/devices/{BKV_ID}/stop", {"port_no": 1}, headers=reader)
        look = await s.call("GET", f"/devices/{BKV_ID}", headers=reader)
        orders = await s.call("GET", "/orders", headers=reader)
        document = (await s.api.get("/openapi.json")).json()
        nursery.cancel_scope.cancel()

    assert 403 == charge.status_code
    assert {"required_role": "operate", "roles": ["read"]} == charge.json()["data"]
    assert "forbidden" == charge.json()["error"]
    assert 403 == stop.status_code
    assert 200 == look.status_code
    assert [] == orders.json()["data"]["items"]  # the refused charge created nothing
    operation = document["paths"][f"{PREFIX}/devices/{{phy_id}}/charge"]["post"]
    assert "operate" == operation["x-required-role"]
    assert "redeliver" in "".join(document["paths"]) and "admin" == (
        document["paths"][f"{PREFIX}/events/{{event_id}}/redeliver"]["post"]["x-required-role"])


async def test_orders_commands_and_redeliveries_record_the_key(tmp_path: Path) -> None:
    keys = (ApiKey("operator", API_KEY), ApiKey("other", "other-key"))
    async with _server(tmp_path, api_keys=keys) as s, trio.open_nursery() as nursery:
        await _known_device(s, nursery)
        order_no = (await s.charge(BKV_ID, port_no=1))["order_no"]
        order = await s.order(order_no)
        query = await s.call("GET", f"/devices/{BKV_ID}/params",
                             headers={"X-Api-Key": "other-key"})
        command_id = query.json()["data"]["command_id"]
        command = (await s.call("GET", f"/commands/{command_id}")).json()["data"]
        event_id = (await s.call("GET", "/events")).json()["data"]["items"][0]["event_id"]
        redelivered = await s.call("POST", f"/events/{event_id}/redeliver",
                                   headers={"X-Api-Key": "other-key"})
        nursery.cancel_scope.cancel()
    with closing(sqlite3.connect(tmp_path / "iot.db")) as db:
        start_keys = db.execute("SELECT key_name FROM commands WHERE order_no = ?",
                                (order_no,)).fetchall()
        delivery_key = db.execute(
            "SELECT d.key_name FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq "
            "WHERE e.event_id = ?", (event_id,)).fetchone()

    assert "operator" == order["key_name"]
    assert "other" == command["key_name"]
    assert [("operator",)] == start_keys
    assert 200 == redelivered.status_code
    assert ("other",) == delivery_key


# --- story 11: the generated key and the database file --------------------------------------

def _file_bytes(db_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db_path.parent.iterdir()
                    if p.name.startswith(db_path.name))


async def test_the_generated_key_is_stored_hashed_in_a_private_file(tmp_path: Path) -> None:
    db_path = tmp_path / "data" / "iot.db"
    config = e2e_config(db_path, None, api_keys=())
    announce = io.StringIO()
    with trio.fail_after(20):
        async with server_running(config, announce=announce) as s:
            printed = re.search(r"X-Api-Key\): (\S+)", announce.getvalue())
            assert printed is not None
            key = printed.group(1)
            first = await s.call("GET", "/devices", headers={"X-Api-Key": key})
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in db_path.parent.iterdir()}
            stored = _file_bytes(db_path)
        again = io.StringIO()
        async with server_running(config, announce=again) as s:
            second = await s.call("GET", "/devices", headers={"X-Api-Key": key})

    assert 200 == first.status_code == second.status_code
    assert key.encode() not in stored
    assert hashlib.sha256(key.encode()).hexdigest().encode() in stored
    assert {"iot.db": 0o600, "iot.db-wal": 0o600, "iot.db-shm": 0o600} == modes
    assert "" == again.getvalue()  # printed once only


async def test_a_plain_text_key_of_an_older_server_is_replaced_by_its_hash(
        tmp_path: Path) -> None:
    db_path = tmp_path / "iot.db"
    with closing(Database.open(db_path)) as db:
        db.put_setting(LEGACY_GENERATED_API_KEY_SETTING, "old-plain-key")
    os.chmod(db_path, 0o644)
    with trio.fail_after(20):
        async with server_running(e2e_config(db_path, None, api_keys=())) as s:
            answer = await s.call("GET", "/devices", headers={"X-Api-Key": "old-plain-key"})
            log = s.log.getvalue()
    with closing(sqlite3.connect(db_path)) as db:
        settings = dict(db.execute("SELECT name, value FROM settings").fetchall())

    assert 200 == answer.status_code
    assert {GENERATED_API_KEY_SETTING: hashlib.sha256(b"old-plain-key").hexdigest()} == settings
    assert b"old-plain-key" not in _file_bytes(db_path)
    assert "database file is readable by others" in log
    assert 0o644 == stat.S_IMODE(db_path.stat().st_mode)  # the operator's mode is kept


# --- story 11: retention --------------------------------------------------------------------

async def test_retention_prunes_events_deliveries_progress_and_frames(tmp_path: Path) -> None:
    db_path = tmp_path / "iot.db"
    now = int(time.time())
    old, recent = now - 31 * DAY, now - 29 * DAY
    with closing(Database.open(db_path)) as db:
        device, _ = db.upsert_device(BKV_ID, ProtocolFamily.BKV, old)
        order = db.insert_order(NewOrder(order_no="THD0000000001000", device_id=device.id,
                                         port_no=1, charge_mode=ChargeMode.TIME,
                                         created_at=old))
        for name, at, delivered in (("old-delivered", old, True), ("old-undelivered", old, False),
                                    ("recent", recent, True)):
            seq = db.append_event(NewEvent(event_id=name, event_type="device.online",
                                           data={}, created_at=at, device_phy_id=BKV_ID),
                                  deliver=True)
            assert seq is not None
            if delivered:
                db.mark_delivered(seq, at, latency_ms=1)
        for at in (old, recent):
            db.add_progress(ProgressSample(order_no=order.order_no, at=at, duration_sec=60,
                                           total_kwh=1, power=10))
            db.append_cmd_log(CmdLogEntry(device_id=device.id, phy_id=BKV_ID,
                                          direction=Direction.UP, cmd="0x0000",
                                          msg_id=1, hex="00", created_at=at))
    config = e2e_config(db_path, None, cmd_log_retention=365 * DAY)
    with trio.fail_after(20):
        async with server_running(config) as s:
            while "retention pruned" not in s.log.getvalue():
                await trio.sleep(0.05)
    with closing(sqlite3.connect(db_path)) as db:
        events = [r[0] for r in db.execute("SELECT event_id FROM events ORDER BY seq")]
        deliveries = db.execute("SELECT COUNT(*) FROM webhook_deliveries").fetchone()[0]
        progress = [r[0] for r in db.execute("SELECT at FROM order_progress")]
        frames = [r[0] for r in db.execute("SELECT created_at FROM cmd_logs")]
        orders = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]

    assert ["old-undelivered", "recent"] == events[:2]
    assert 2 <= deliveries  # the undelivered one and the recent one are kept
    assert [recent] == progress
    assert [recent] == [at for at in frames if at < now - DAY]
    assert 1 == orders


# --- story 11: the order and its idempotency record -------------------------------------------

async def test_the_order_and_its_idempotency_record_commit_together(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failures = [1]
    original = Database.put_idempotency

    def failing_once(self: Database, *args: Any, **kwargs: Any) -> Any:
        if failures:
            failures.pop()
            raise sqlite3.OperationalError("disk I/O error (injected)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Database, "put_idempotency", failing_once)
    body = {"port_no": 1, "charge_mode": 1, "duration": 60, "amount": 100}
    headers = {"Idempotency-Key": "charge-1"}
    # Policy replace: a retry that is not recognised replaces the order by a second one.
    async with _server(tmp_path, busy_port_policy="replace") as s, \
            trio.open_nursery() as nursery:
        device = await _known_device(s, nursery)
        await device.disconnect()
        await s.wait_online(BKV_ID, False)
        path = f"/devices/{BKV_ID}/charge"
        first = await s.call("POST", path, body, headers)
        after_failure = (await s.call("GET", "/orders")).json()["data"]["items"]
        retry = await s.call("POST", path, body, headers)
        replay = await s.call("POST", path, body, headers)
        orders = (await s.call("GET", "/orders")).json()["data"]["items"]
        nursery.cancel_scope.cancel()

    # Before: the first answer was 200 with the record lost, and the retry made a
    # second order (2 orders; with policy reject the retry got 409 port_busy).
    assert 500 == first.status_code
    assert [] == after_failure
    assert 200 == retry.status_code == replay.status_code
    assert "true" == replay.headers["Idempotency-Replayed"]
    assert retry.json()["data"]["order_no"] == replay.json()["data"]["order_no"]
    assert [retry.json()["data"]["order_no"]] == [o["order_no"] for o in orders]


# --- story 11: a step of the wall clock -------------------------------------------------------

async def test_a_wall_clock_step_does_not_fire_the_timers_in_bulk(tmp_path: Path) -> None:
    step = [0.0]

    def wall() -> float:
        return time.time() + step[0]

    config = e2e_config(tmp_path / "iot.db", None, offline_after=30, start_timeout=30,
                        command_ttl=30)
    with trio.fail_after(20):
        async with server_running(config, clock=wall) as s, trio.open_nursery() as nursery:
            await _known_device(s, nursery)  # online, heard from just now
            unit = await _known_device(s, nursery, ProtocolFamily.AP3000, AP3000_ID)
            await unit.disconnect()
            await s.wait_online(AP3000_ID, False)
            order_no = (await s.charge(AP3000_ID, port_no=1))["order_no"]  # queued start
            step[0] = 3600.0
            while "wall clock jumped" not in s.log.getvalue():
                await trio.sleep(0.05)
            await trio.sleep(1.0)  # four ticks of the timers after the step
            online = (await s.device(BKV_ID))["online"]
            order = await s.order(order_no)
            nursery.cancel_scope.cancel()
    with closing(sqlite3.connect(tmp_path / "iot.db")) as db:
        commands = db.execute("SELECT status FROM commands WHERE order_no = ?",
                              (order_no,)).fetchall()

    # Before: the device went offline, the order failed (command_expired) and the
    # command expired, all in the first tick after the step.
    assert online is True
    assert "pending" == order["status"]
    assert [("queued",)] == commands

