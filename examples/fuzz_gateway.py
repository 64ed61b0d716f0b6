"""Fuzz a backend's frame handler in CI: the reference server's device gateway.

Run it with ``pytest examples/fuzz_gateway.py``. It starts the whole reference
server (device gateway, HTTP API, SQLite in a temporary directory) on free
loopback ports in a background thread, then, for each input Hypothesis
generates (valid streams of both protocols, malformed frames, the protocol
references' real frames, random bytes, cut into arbitrary reads), it:

1. opens a TCP connection, writes the reads, and closes its sending side;
2. reads everything the server answers until the server closes the connection,
   and checks that the answers are nothing but valid downlink frames;
3. checks that the server logged no error (a handler that raised, a crashed
   connection task) and that a well-behaved device on another connection still
   gets its heartbeat answered.

To fuzz your own server, replace ``running_server`` with whatever starts it and
keep the test: the strategies and the checks come from ``bkvcodec.testing``.
"""
from __future__ import annotations

import io
import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, given, settings

from bkvcodec import DeviceConnection, DeviceHeartbeat, ProtocolFamily, ServerAnswered
from bkvcodec.testing import assert_valid_frames, device_traffic
from reference_server.config import ApiKey, Config
from reference_server.logs import Logger
from reference_server.server import run_server

GOOD_DEVICE = "82210225000520"
TIMEOUT = 10.0


class Server:
    """A reference server running in a thread, and what it logged."""

    def __init__(self, port: int, log: io.StringIO) -> None:
        self.port = port
        self.log = log

    def errors(self) -> list[str]:
        return [line for line in self.log.getvalue().splitlines() if line]


@contextmanager
def running_server(directory: Path) -> Iterator[Server]:
    """The reference server on free loopback ports, logging errors only."""
    config = replace(Config(), tcp_host="127.0.0.1", tcp_port=0, http_host="127.0.0.1",
                     http_port=0, db_path=directory / "iot.db",
                     api_keys=(ApiKey("fuzz", "fuzz-key"),))
    log = io.StringIO()
    started: queue.Queue[tuple[int, trio.lowlevel.TrioToken, trio.CancelScope]
                         | BaseException] = queue.Queue()

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(
                lambda task_status: run_server(config, logger=Logger("error", log),
                                               announce=io.StringIO(),
                                               task_status=task_status))
            started.put((addresses.tcp_port, trio.lowlevel.current_trio_token(),
                         nursery.cancel_scope))

    def thread_main() -> None:
        try:
            trio.run(serve)
        except BaseException as err:  # reported to the waiting test, not lost in the thread
            started.put(err)

    thread = threading.Thread(target=thread_main, daemon=True)
    thread.start()
    result = started.get(timeout=TIMEOUT)
    if isinstance(result, BaseException):
        raise result
    port, token, scope = result
    try:
        yield Server(port, log)
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(TIMEOUT)


def exchange(port: int, chunks: list[bytes]) -> bytes:
    """Write *chunks* on a new connection, close the sending side, and return
    everything the server writes until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        for chunk in chunks:
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)
        answers = b""
        while data := sock.recv(65536):
            answers += data
        return answers


class GoodDevice:
    """A BKV gateway that behaves, on its own connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.connection = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id=GOOD_DEVICE)
        self.sock = sock
        self.sock.sendall(self.connection.data_to_send())

    def heartbeat_answered(self) -> bool:
        event = DeviceHeartbeat(phy_id=GOOD_DEVICE, protocol=ProtocolFamily.BKV)
        self.connection.send(event, time.time())
        self.sock.sendall(self.connection.data_to_send())
        while data := self.sock.recv(65536):
            inputs = self.connection.receive_data(data, time.time())
            self.sock.sendall(self.connection.data_to_send())
            if any(isinstance(item, ServerAnswered) for item in inputs):
                return True
        return False  # the server closed the connection


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("fuzz-gateway")) as running:
        yield running


@pytest.fixture(scope="module")
def good_device(server: Server) -> Iterator[GoodDevice]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        device = GoodDevice(sock)
        assert device.heartbeat_answered()
        yield device


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(chunks=device_traffic())
def test_gateway_survives_any_device_traffic(server: Server, good_device: GoodDevice,
                                             chunks: list[bytes]) -> None:
    answers = exchange(server.port, chunks)

    assert_valid_frames(answers)
    assert [] == server.errors()
    assert good_device.heartbeat_answered()
