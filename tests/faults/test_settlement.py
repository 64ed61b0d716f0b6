"""Store, then acknowledge (issue 12 story 3, api.md §11.1).

A settlement is answered only once its transaction committed. With the database
write-locked by another process, or the server killed (-9) before its commit, the
device hears nothing; its retransmission (after it reconnects) settles the order
exactly once: one ``order.completed``, one bill.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bkvcodec import (
    CommandAcknowledged,
    EndReason,
    MeterReading,
    ProgressReported,
    ProtocolFamily,
    ServerAnswered,
    SettlementReported,
    StartCharging,
)

from ..server.harness import API_KEY, BKV_ID, Device, e2e_config, server_running

pytestmark = pytest.mark.trio

BUSINESS_NO = 0x61
SETTLEMENT = SettlementReported(
    phy_id=BKV_ID, socket_no=1, port_no=1, business_no=BUSINESS_NO,
    reading=MeterReading(duration_s=1800, energy_centikwh=150), end_reason=EndReason.NORMAL)


@contextmanager
def write_locked(db_path: Path) -> Iterator[None]:
    """Another connection holds the database's write lock (BEGIN IMMEDIATE)."""
    with closing(sqlite3.connect(db_path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")


def stored(db_path: Path, order_no: str) -> tuple[str, int | None, int]:
    """The order's status and final amount, and how many order.completed it has."""
    with closing(sqlite3.connect(db_path)) as db:
        status, final = db.execute("SELECT status, final_amount FROM orders WHERE order_no = ?",
                                   (order_no,)).fetchone()
        [completed] = db.execute("SELECT COUNT(*) FROM events WHERE order_no = ? AND "
                                 "event_type = 'order.completed'", (order_no,)).fetchone()
    return str(status), final, int(completed)


def charge_end_answers(device: Device) -> list[ServerAnswered]:
    return [i for i in device.inputs
            if isinstance(i, ServerAnswered) and i.name == "charge_end_ack"]


async def closed_by_server(device: Device) -> None:
    while not device.closed_by_peer:
        await device.changed.wait()


async def start_order(api: httpx.AsyncClient, device: Device) -> str:
    """An order charging on port 1 of *device* (a 30-minute order of 1000 cents)."""
    response = await api.post(f"/api/v1/third/devices/{device.phy_id}/charge", json={
        "port_no": 1, "charge_mode": 1, "duration": 3600, "amount": 1000})
    assert 200 == response.status_code, response.text
    order_no: str = response.json()["data"]["order_no"]
    start = await device.expect(StartCharging)
    await device.send(CommandAcknowledged(command_id=start.command_id, phy_id=device.phy_id,
                                          business_no=BUSINESS_NO))
    await device.send(ProgressReported(
        phy_id=device.phy_id, socket_no=1, port_no=1, business_no=BUSINESS_NO,
        reading=MeterReading(duration_s=60, energy_centikwh=5, power_dw=20000)))
    while (await api.get(f"/api/v1/third/orders/{order_no}")).json()["data"]["status"] \
            != "charging":
        await trio.sleep(0.05)
    return order_no


async def settled_once_after_retransmission(api: httpx.AsyncClient, device: Device,
                                            db_path: Path, order_no: str) -> None:
    """The device repeats its settlement: answered, and the order settled once."""
    await device.send(SETTLEMENT)
    while not charge_end_answers(device):
        await device.changed.wait()
    await device.send(SETTLEMENT)  # once more: answered again, changes nothing
    while len(charge_end_answers(device)) < 2:
        await device.changed.wait()
    order = (await api.get(f"/api/v1/third/orders/{order_no}")).json()["data"]

    # 30 of 60 minutes of a 1000-cent time order: 500 cents, settled once.
    assert ("completed", 500, 1) == stored(db_path, order_no)
    assert ("completed", 500, 500, "time") == (order["status"], order["final_amount_cents"],
                                               order["refund_cents"], order["tariff"])


async def test_a_settlement_not_stored_for_a_write_lock_is_not_answered(
        tmp_path: Path) -> None:
    db_path = tmp_path / "iot.db"
    with trio.fail_after(60):
        async with server_running(e2e_config(db_path, None, offline_after=60)) as server, \
                trio.open_nursery() as nursery:
            device = Device(ProtocolFamily.BKV, BKV_ID)
            await device.connect(nursery, server.addresses.tcp_port)
            await server.wait_online(BKV_ID)
            order_no = await start_order(server.api, device)

            with write_locked(db_path):
                await device.send(SETTLEMENT)
                await closed_by_server(device)
                # The lock is still held: the order is open in the database, and the
                # server's own view of it (in the API) agrees.
                assert ("charging", None, 0) == stored(db_path, order_no)

            assert [] == charge_end_answers(device)
            assert "state change not stored" in server.log.getvalue()
            assert "closing the connection unanswered" in server.log.getvalue()
            assert "charging" == (await server.order(order_no))["status"]

            await device.connect(nursery, server.addresses.tcp_port)
            await settled_once_after_retransmission(server.api, device, db_path, order_no)
            nursery.cancel_scope.cancel()


# --- kill -9 between the settlement and its answer -----------------------------------------

class ServerProcess:
    """``python -m reference_server`` with a TOML configuration, in a subprocess."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = tmp_path / "server.toml"
        self.db_path = tmp_path / "iot.db"
        self.log_path = tmp_path / "server.log"
        self.config.write_text(
            'tcp_host = "127.0.0.1"\ntcp_port = 0\nhttp_host = "127.0.0.1"\nhttp_port = 0\n'
            f'db_path = "{self.db_path}"\nlog_level = "debug"\noffline_after = 60\n'
            f'[[api_keys]]\nname = "faults"\nkey = "{API_KEY}"\n', encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> tuple[int, int]:
        """Start it; return its device and HTTP ports once both listen."""
        self.log_path.write_bytes(b"")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reference_server", "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "IOT_CONFIG": ""})
        ports: dict[str, int] = {}
        while len(ports) < 2:
            assert self.process.poll() is None, self.log_path.read_text()
            for line in self.lines():
                if line.get("msg") == "listening":
                    ports[str(line["listener"])] = int(line["port"])
            await trio.sleep(0.05)
        return ports["devices"], ports["http"]

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for text in self.log_path.read_text(encoding="utf-8").splitlines():
            if text.startswith("{"):
                out.append(json.loads(text))
        return out

    async def wait_log(self, msg: str, **fields: object) -> None:
        while not any(line.get("msg") == msg and all(line.get(k) == v
                                                       for k, v in fields.items())
                      for line in self.lines()):
            await trio.sleep(0.02)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


@asynccontextmanager
async def api_client(http_port: int) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}",
                                 headers={"X-Api-Key": API_KEY}, timeout=10) as api:
        yield api


async def test_a_server_killed_before_its_settlement_commit_settles_once_after_restart(
        tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                tcp_port, http_port = await server.start()
                device = Device(ProtocolFamily.BKV, BKV_ID)
                await device.connect(nursery, tcp_port)
                async with api_client(http_port) as api:
                    order_no = await start_order(api, device)

                # The write lock holds the server between reading the settlement and
                # committing it; kill -9 lands there.
                with write_locked(server.db_path):
                    await device.send(SETTLEMENT)
                    await server.wait_log("device report", kind="SettlementReported")
                    server.kill()
                    await closed_by_server(device)

                assert [] == charge_end_answers(device)
                assert ("charging", None, 0) == stored(server.db_path, order_no)

                tcp_port, http_port = await server.start()
                await device.connect(nursery, tcp_port)
                async with api_client(http_port) as api:
                    await settled_once_after_retransmission(api, device, server.db_path,
                                                            order_no)
                nursery.cancel_scope.cancel()
    finally:
        server.stop()
