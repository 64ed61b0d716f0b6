"""Issue 12, stories 4, 5 and 6 (api.md §11.3), against the real server over loopback.

Before: 10 MiB of random bytes on one socket became 220 frame-log rows holding 21 M hex
characters and the socket was never closed (story 4); 1,100 idle sockets exhausted a
1,024-descriptor limit so that /healthz timed out (story 5); with a log reader that
stalls, log writes blocked the event loop and heartbeats froze (story 6).
"""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bkvcodec import DeviceConnection, DeviceHeartbeat, ProtocolFamily
from tests.server.harness import API_KEY, BKV_ID, RunningServer, e2e_config, server_running

from .peers import Peer, metric, rows

pytestmark = pytest.mark.trio

TIMEOUT = 30


@asynccontextmanager
async def serving(db_path: Path, **overrides: Any
                  ) -> AsyncIterator[tuple[RunningServer, trio.Nursery]]:
    with trio.fail_after(TIMEOUT):
        async with server_running(e2e_config(db_path, None, offline_after=60,
                                             **overrides)) as server, \
                trio.open_nursery() as nursery:
            yield server, nursery
            nursery.cancel_scope.cancel()


async def send_until_closed(stream: trio.SocketStream, data: bytes, chunk: int = 65536) -> int:
    """Write *data* until the server closes the connection; returns the bytes written."""
    sent = 0
    try:
        for start in range(0, len(data), chunk):
            await stream.send_all(data[start:start + chunk])
            sent += len(data[start:start + chunk])
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    return sent


async def wait_eof(stream: trio.SocketStream) -> None:
    """Until the server has closed *stream* (EOF or reset)."""
    try:
        while await stream.receive_some(65536):
            pass
    except trio.BrokenResourceError:
        pass


# --- story 4: one socket fills the disk ----------------------------------------------------------

async def test_a_garbage_socket_is_closed_and_logged_within_its_budget(tmp_path: Path) -> None:
    db_path = tmp_path / "iot.db"
    garbage = random.Random(4).randbytes(4 * 1024 * 1024)
    async with serving(db_path) as (server, _):
        async with await trio.open_tcp_stream("127.0.0.1", server.addresses.tcp_port) as stream:
            sent = await send_until_closed(stream, garbage)
            await wait_eof(stream)
        closed = await metric(server, "iot_connections_refused_total",
                              reason="unidentified_bytes")
    stored = rows(db_path, "SELECT COUNT(*), COALESCE(SUM(LENGTH(hex)), 0) FROM cmd_logs")[0]

    assert 1 == closed
    assert sent < len(garbage)
    assert int(str(stored[1])) // 2 <= 4096


async def test_a_silent_socket_is_closed_after_the_unidentified_timeout(tmp_path: Path) -> None:
    async with serving(tmp_path / "iot.db", unidentified_timeout=1) as (server, _):
        async with await trio.open_tcp_stream("127.0.0.1", server.addresses.tcp_port) as stream:
            await wait_eof(stream)

        assert 1 == await metric(server, "iot_connections_refused_total",
                                 reason="unidentified_timeout")


async def test_the_frame_log_stops_at_its_budget_and_counts(tmp_path: Path) -> None:
    db_path = tmp_path / "iot.db"
    async with serving(db_path, frame_log_max_bytes=1000) as (server, nursery):
        device = Peer(ProtocolFamily.BKV, BKV_ID)
        await device.connect(nursery, server.addresses.tcp_port)
        for _ in range(40):  # 40 heartbeats of 50 bytes and their answers
            await device.expect_answer()
            await device.heartbeat()
        await device.expect_answer()
        skipped = await metric(server, "iot_frame_log_skipped_total", reason="budget")
    stored = rows(db_path, "SELECT COALESCE(SUM(LENGTH(hex)), 0) FROM cmd_logs")[0][0]

    assert int(str(stored)) // 2 <= 1000
    assert skipped > 0


async def test_garbage_after_a_valid_frame_is_stored_only_up_to_the_budget(
        tmp_path: Path) -> None:
    db_path = tmp_path / "iot.db"
    async with serving(db_path) as (server, nursery):
        device = Peer(ProtocolFamily.BKV, BKV_ID)
        await device.connect(nursery, server.addresses.tcp_port)
        await device.expect_answer()
        assert device.stream is not None
        await device.stream.send_all(random.Random(5).randbytes(512 * 1024))
        await device.heartbeat()
        await device.expect_answer()
        skipped = await metric(server, "iot_frame_log_skipped_total", reason="garbage")
    up = rows(db_path, "SELECT COALESCE(SUM(LENGTH(hex)), 0) FROM cmd_logs "
                       "WHERE direction = 'up'")[0][0]

    assert int(str(up)) // 2 <= 4096 + 2 * 50
    assert skipped > 0


# --- stories 5 and 6: a server process of its own ------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_LAUNCH = ("import resource, sys\n"
           "limit = int(sys.argv[1])\n"
           "if limit: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))\n"
           "from reference_server.__main__ import main\n"
           "sys.exit(main(sys.argv[2:]))\n")


@asynccontextmanager
async def server_process(tmp_path: Path, *, nofile: int = 0, log_level: str = "info",
                         stderr: int | None = subprocess.DEVNULL
                         ) -> AsyncIterator[tuple[int, httpx.AsyncClient]]:
    """The server as ``python -m reference_server`` with a descriptor limit of *nofile*
    (0: inherited); yields its device port and an API client."""
    tcp_port, http_port = free_port(), free_port()
    args = [sys.executable, "-c", _LAUNCH, str(nofile), "--tcp-host", "127.0.0.1",
            "--tcp-port", str(tcp_port), "--http-host", "127.0.0.1",
            "--http-port", str(http_port), "--db", str(tmp_path / "iot.db"),
            "--api-key", API_KEY, "--log-level", log_level]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=stderr, env=env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}",
                                     headers={"X-Api-Key": API_KEY}, timeout=10) as api:
            while True:
                try:
                    if (await api.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, "the server process ended"
                await trio.sleep(0.1)
            yield tcp_port, api
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


async def metric_of(api: httpx.AsyncClient, sample: str) -> float:
    for line in (await api.get("/metrics")).text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


async def test_the_connection_cap_keeps_descriptors_for_healthz(tmp_path: Path) -> None:
    # A 400-descriptor process keeps 256 in reserve: at most 144 device connections.
    # 500 idle sockets would exhaust it without the cap.
    with trio.fail_after(60):
        async with server_process(tmp_path, nofile=400) as (tcp_port, api):
            sockets = [await trio.open_tcp_stream("127.0.0.1", tcp_port) for _ in range(500)]
            while await metric_of(api, 'iot_connections_refused_total'
                                        '{reason="max_connections"}') < 356:
                await trio.sleep(0.05)
            health = await api.get("/healthz")
            connections = await metric_of(api, "iot_device_connections")
            late = await trio.open_tcp_stream("127.0.0.1", tcp_port)
            await wait_eof(late)
            for stream in sockets[:10]:
                await stream.aclose()
            while await metric_of(api, "iot_device_connections") > 134:
                await trio.sleep(0.05)
            device = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id=BKV_ID)
            device.send(DeviceHeartbeat(phy_id=BKV_ID, protocol=ProtocolFamily.BKV), 0.0)
            stream = await trio.open_tcp_stream("127.0.0.1", tcp_port)
            await stream.send_all(device.data_to_send())
            answer = await stream.receive_some(65536)
            for s in (*sockets[10:], late, stream):
                await s.aclose()

    assert 200 == health.status_code
    assert 144 == connections
    assert answer  # a new device is served once connections are free again


async def test_a_stalled_log_reader_does_not_freeze_heartbeats(tmp_path: Path) -> None:
    # stderr is a pipe nobody reads: it fills after ~64 KiB of log lines. 20,000
    # corrupted frames log 20,000 warnings; heartbeats and /healthz must go on.
    frame = bytearray(_heartbeat(BKV_ID))
    frame[25] ^= 0xFF
    with trio.fail_after(60):
        async with server_process(tmp_path, stderr=subprocess.PIPE) as (tcp_port, api):
            noisy = await trio.open_tcp_stream("127.0.0.1", tcp_port)
            await noisy.send_all(_heartbeat("82210225000001"))
            await noisy.receive_some(65536)
            await noisy.send_all(bytes(frame) * 20_000)
            while await metric_of(api, "iot_log_lines_dropped_total") == 0:
                await trio.sleep(0.05)
            stream = await trio.open_tcp_stream("127.0.0.1", tcp_port)
            answers = 0
            for _ in range(5):
                await stream.send_all(_heartbeat(BKV_ID))
                answers += bool(await stream.receive_some(65536))
            health = await api.get("/healthz")
            await stream.aclose()
            await noisy.aclose()

    assert 5 == answers
    assert 200 == health.status_code


def _heartbeat(phy_id: str) -> bytes:
    device = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id=phy_id)
    device.send(DeviceHeartbeat(phy_id=phy_id, protocol=ProtocolFamily.BKV), 0.0)
    return device.data_to_send()
