"""A cluster of server processes on loopback, with a node killed (SIGKILL) in the
middle of a charge: the device reconnects to another node, which takes its order
and its queued commands over; the order settles once and every webhook arrives
once, in order per device. Real Redis and a real PostgreSQL database."""
from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bkvcodec import (
    CommandAcknowledged,
    EndReason,
    ProtocolFamily,
    QueryParams,
    StartCharging,
    StopCharging,
)
from reference_server.cluster.client import connect

from .harness import API_KEY, BKV_ID, WEBHOOK_SECRET, Device, Receiver, receiver_running
from .services import cluster_name, redis_url
from .test_cluster import charge_and_start
from .test_e2e import settle

pytestmark = pytest.mark.trio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    name: str
    process: trio.Process
    tcp_port: int
    api: httpx.AsyncClient
    log: Path

    async def call(self, method: str, path: str, body: object = None) -> httpx.Response:
        return await self.api.request(method, f"/api/v1/third{path}", json=body)

    async def ready(self) -> None:
        while True:
            if self.process.returncode is not None:
                raise AssertionError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                if (await self.api.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await trio.sleep(0.1)

    async def order(self, order_no: str) -> dict[str, Any]:
        response = await self.call("GET", f"/orders/{order_no}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    async def wait_order(self, order_no: str, status: str) -> None:
        while (await self.order(order_no))["status"] != status:
            await trio.sleep(0.05)

    async def wait_online(self, phy_id: str, online: bool = True) -> None:
        while True:
            response = await self.call("GET", f"/devices/{phy_id}")
            if response.status_code == 200 and response.json()["data"]["online"] is online:
                return
            await trio.sleep(0.05)


@asynccontextmanager
async def node(tmp_path: Path, name: str, webhook_url: str, cluster: str,
               database_url: str) -> AsyncIterator[Node]:
    tcp_port, http_port = free_port(), free_port()
    log = tmp_path / f"{name}.log"
    command = [
        sys.executable, "-m", "reference_server", "--database-url", database_url,
        "--tcp-host", "127.0.0.1", "--tcp-port", str(tcp_port),
        "--http-host", "127.0.0.1", "--http-port", str(http_port),
        "--webhook-url", webhook_url, "--webhook-secret", WEBHOOK_SECRET,
        "--offline-after", "3", "--command-ttl", "60", "--start-timeout", "30",
        "--webhook-max-backoff", "1", "--rated-power-w", "20000",
        "--redis-url", redis_url(), "--cluster-name", cluster, "--node-id", name,
        "--api-key", API_KEY, "--log-level", "info"]
    with log.open("wb") as output:
        process = await trio.lowlevel.open_process(command, stdout=output, stderr=output,
                                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}",
                                     headers={"X-Api-Key": API_KEY}, timeout=15) as api:
            running = Node(name, process, tcp_port, api, log)
            await running.ready()
            yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_a_node_killed_mid_charge_hands_its_device_over(tmp_path: Path,
                                                             postgres_url: str) -> None:
    cluster = cluster_name()
    with trio.fail_after(90):
        async with receiver_running() as (receiver, url), AsyncExitStack() as stack, \
                trio.open_nursery() as nursery:
            a, b = [await stack.enter_async_context(
                node(tmp_path, name, url, cluster, postgres_url))
                for name in ("node-a", "node-b")]
            device = Device(ProtocolFamily.BKV, BKV_ID)
            await device.connect(nursery, a.tcp_port)
            await a.wait_online(BKV_ID)
            # The charge goes in through node b; the device's socket is on node a.
            order_no = await charge_and_start(b.call, device)
            await b.wait_order(order_no, "charging")
            # A query queued on node a while the device is away...
            await device.disconnect()
            await b.wait_online(BKV_ID, False)
            response = await a.call("GET", f"/devices/{BKV_ID}/params")
            assert response.status_code == 200, response.text
            await _drained(b, receiver)

            a.process.send_signal(signal.SIGKILL)
            await a.process.wait()
            # ...and a stop through node b after node a died.
            response = await b.call("POST", f"/devices/{BKV_ID}/stop", {"port_no": 1})
            assert response.status_code == 200, response.text
            assert response.json()["data"]["status"] == "stopping"

            moved = Device(ProtocolFamily.BKV, BKV_ID)
            await moved.connect(nursery, b.tcp_port)
            query = await moved.expect(QueryParams)
            await moved.send(CommandAcknowledged(command_id=query.command_id, phy_id=BKV_ID))
            stop = await moved.expect(StopCharging)
            await moved.send(CommandAcknowledged(command_id=stop.command_id, phy_id=BKV_ID))
            await settle(moved, order_no, 0x61, 90, 15, EndReason.REMOTE_STOP)
            await receiver.wait_for("order.completed", order_no=order_no)
            await _drained(b, receiver)
            assert (await b.order(order_no))["status"] == "completed"
            nursery.cancel_scope.cancel()
    types = [t for t in receiver.types(order_no=order_no)
             if t.startswith(("order.", "charging.")) and t != "charging.progress"]
    assert types == ["order.created", "charging.started", "charging.ended", "order.completed"]
    assert not receiver.duplicates
    assert receiver.bad_signatures == 0


async def _drained(node: Node, receiver: Receiver) -> None:
    """Every recorded event arrived, and each device's in the order recorded."""
    response = await node.call("GET", "/events?after=0&limit=500")
    recorded = response.json()["data"]["items"]
    wanted = [e["event_id"] for e in recorded]
    while not set(wanted) <= {e["event_id"] for e in receiver.received}:
        await receiver.wait_changed()
    for phy_id in {e.get("device_phy_id") for e in recorded}:
        in_record = [e["event_id"] for e in recorded if e.get("device_phy_id") == phy_id]
        arrived = [e["event_id"] for e in receiver.received
                   if e.get("device_phy_id") == phy_id and e["event_id"] in set(wanted)]
        assert arrived == in_record, f"events of {phy_id} arrived out of order"


async def test_workers_share_the_ports_and_any_of_them_takes_any_call(
        tmp_path: Path, postgres_url: str) -> None:
    tcp_port, http_port = free_port(), free_port()
    cluster = cluster_name()
    log = tmp_path / "workers.log"
    command = [
        sys.executable, "-m", "reference_server", "--workers", "2",
        "--database-url", postgres_url, "--tcp-host", "127.0.0.1",
        "--tcp-port", str(tcp_port), "--http-host", "127.0.0.1", "--http-port", str(http_port),
        "--redis-url", redis_url(), "--cluster-name", cluster, "--node-id", "w",
        "--api-key", API_KEY, "--log-level", "info"]
    with log.open("wb") as output:
        supervisor = await trio.lowlevel.open_process(command, stdout=output, stderr=output)
    ids = [f"8221022500{n:04d}" for n in range(16)]
    try:
        with trio.fail_after(60):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}",
                                         headers={"X-Api-Key": API_KEY}, timeout=15) as api, \
                    trio.open_nursery() as nursery:
                workers = Node("workers", supervisor, tcp_port, api, log)
                await workers.ready()
                await nodes_alive(cluster, ["w-1", "w-2"])
                devices = [Device(ProtocolFamily.BKV, phy_id) for phy_id in ids]
                for device in devices:
                    await device.connect(nursery, tcp_port)
                nodes = set()
                for phy_id in ids:
                    await workers.wait_online(phy_id)
                    while (node := (await workers.call("GET", f"/devices/{phy_id}"))
                           .json()["data"]["node"]) is None:
                        await trio.sleep(0.05)
                    nodes.add(node)
                # The kernel spread 16 connections over both workers.
                assert nodes == {"w-1", "w-2"}
                # Charges through the shared HTTP port reach devices on either worker.
                for device in devices[:4]:
                    response = await workers.call("POST", f"/devices/{device.phy_id}/charge", {
                        "port_no": 1, "charge_mode": 1, "duration": 600, "amount": 100})
                    assert response.status_code == 200, response.text
                    await device.expect(StartCharging)
                nursery.cancel_scope.cancel()
        supervisor.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            assert await supervisor.wait() == 0
    finally:
        if supervisor.returncode is None:
            supervisor.kill()
            await supervisor.wait()


async def test_workers_end_with_their_supervisor_even_when_it_is_killed(
        tmp_path: Path, postgres_url: str) -> None:
    tcp_port, http_port = free_port(), free_port()
    cluster = cluster_name()
    command = [
        sys.executable, "-m", "reference_server", "--workers", "2",
        "--database-url", postgres_url, "--tcp-host", "127.0.0.1",
        "--tcp-port", str(tcp_port), "--http-host", "127.0.0.1", "--http-port", str(http_port),
        "--redis-url", redis_url(), "--cluster-name", cluster, "--node-id", "k",
        "--api-key", API_KEY]
    log = tmp_path / "workers.log"
    with log.open("wb") as output:
        supervisor = await trio.lowlevel.open_process(command, stdout=output, stderr=output)
    with trio.fail_after(40):
        await nodes_alive(cluster, ["k-1", "k-2"])
        supervisor.kill()
        await supervisor.wait()
        # The workers go too: they leave the cluster on their way out.
        redis = connect(redis_url())
        async with redis:
            while await redis.exists([f"{cluster}:node:k-1", f"{cluster}:node:k-2"]):
                await trio.sleep(0.1)
        while port_open(tcp_port):
            await trio.sleep(0.1)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def nodes_alive(cluster: str, names: list[str]) -> None:
    """Wait until every node of *names* has joined the cluster."""
    redis = connect(redis_url())
    async with redis:
        while await redis.exists([f"{cluster}:node:{name}" for name in names]) < len(names):
            await trio.sleep(0.1)
