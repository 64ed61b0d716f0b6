"""Several servers as one cluster, in one process: device calls reach the device
on whichever node holds its socket, and a device that moves is taken over with its
orders and its queued commands. Real Redis and a real PostgreSQL database, which
the nodes share."""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
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

from .harness import (
    BKV_ID,
    Device,
    Receiver,
    RunningServer,
    e2e_config,
    receiver_running,
    server_running,
)
from .services import cluster_name, redis_url
from .test_e2e import Stack, assert_order_events, drained, progress, settle

pytestmark = pytest.mark.trio


@asynccontextmanager
async def cluster(tmp_path: Path, nodes: int, receiver_url: str, database_url: str,
                  **overrides: Any) -> AsyncIterator[list[RunningServer]]:
    settings: dict[str, Any] = {"redis_url": redis_url(), "cluster_name": cluster_name(),
                                "database_url": database_url, "command_ttl": 60}
    settings.update(overrides)
    async with AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(server_running(e2e_config(
            tmp_path / "iot.db", receiver_url, node_id=f"node-{chr(ord('a') + i)}",
            **settings))) for i in range(nodes)]
        yield servers


async def charge_and_start(call: Callable[..., Awaitable[httpx.Response]],
                           device: Device) -> str:
    """A charge through *call* (a node's API) that the BKV device acknowledges and
    reports progress on; returns the order number."""
    response = await call("POST", f"/devices/{device.phy_id}/charge", {
        "port_no": 1, "charge_mode": 1, "duration": 3600, "amount": 1000})
    assert response.status_code == 200, response.text
    order_no = str(response.json()["data"]["order_no"])
    start = await device.expect(StartCharging)
    await device.send(CommandAcknowledged(command_id=start.command_id,
                                          phy_id=device.phy_id, business_no=0x61))
    await progress(device, order_no, 0x61, 60, 10)
    return order_no


async def test_a_charge_through_another_node_reaches_the_device(tmp_path: Path,
                                                               postgres_url: str) -> None:
    with trio.fail_after(30):
        async with receiver_running() as (receiver, url), \
                cluster(tmp_path, 2, url, postgres_url) as (a, b), \
                trio.open_nursery() as nursery:
            device = Device(ProtocolFamily.BKV, BKV_ID)
            await device.connect(nursery, a.addresses.tcp_port)
            await a.wait_online(BKV_ID)
            assert (await b.device(BKV_ID))["node"] == "node-a"
            order_no = await charge_and_start(b.call, device)
            await b.wait_order(order_no, "charging")
            # A stop through node b, too: it runs where the order's session is.
            response = await b.call("POST", f"/devices/{BKV_ID}/stop", {"port_no": 1})
            assert response.status_code == 200, response.text
            stop = await device.expect(StopCharging)
            await device.send(CommandAcknowledged(command_id=stop.command_id,
                                                  phy_id=BKV_ID))
            await settle(device, order_no, 0x61, 90, 15, EndReason.REMOTE_STOP)
            await receiver.wait_for("order.completed", order_no=order_no)
            await drained(a, receiver)
            nursery.cancel_scope.cancel()
    assert_order_events(receiver, order_no, [
        "order.created", "charging.started", "charging.ended", "order.completed"])
    assert_exactly_once(receiver)


async def test_a_device_moving_to_another_node_takes_its_order_and_commands(
        tmp_path: Path, postgres_url: str) -> None:
    with trio.fail_after(40):
        async with receiver_running() as (receiver, url), \
                cluster(tmp_path, 2, url, postgres_url) as (a, b), \
                trio.open_nursery() as nursery:
            s = Stack(a, receiver, nursery, tmp_path / "iot.db")
            device = Device(ProtocolFamily.BKV, BKV_ID)
            await device.connect(nursery, a.addresses.tcp_port)
            await a.wait_online(BKV_ID)
            order_no = await charge_and_start(a.call, device)
            await a.wait_order(order_no, "charging")
            await device.disconnect()
            await a.wait_online(BKV_ID, False)
            # Queued on a while the device is away.
            response = await b.call("GET", f"/devices/{BKV_ID}/params")
            assert response.status_code == 200, response.text
            # The device comes back on b: b takes it over from a.
            moved = Device(ProtocolFamily.BKV, BKV_ID)
            await moved.connect(nursery, b.addresses.tcp_port)
            await moved.expect(QueryParams)
            assert (await a.device(BKV_ID))["node"] == "node-b"
            await progress(moved, order_no, 0x61, 120, 20)
            await settle(moved, order_no, 0x61, 150, 25)
            await receiver.wait_for("order.completed", order_no=order_no)
            order = await a.order(order_no)
            assert order["status"] == "completed"
            await drained(s.server, receiver)
            nursery.cancel_scope.cancel()
    assert_order_events(receiver, order_no, [
        "order.created", "charging.started", "charging.ended", "order.completed"])
    assert_exactly_once(receiver)


def assert_exactly_once(receiver: Receiver) -> None:
    ids = [e["event_id"] for e in receiver.received]
    assert len(ids) == len(set(ids)), "an event was delivered twice"


async def test_a_device_provisioned_through_one_node_is_served_by_the_others(
        tmp_path: Path, postgres_url: str) -> None:
    with trio.fail_after(30):
        async with receiver_running() as (_, url), \
                cluster(tmp_path, 2, url, postgres_url, device_policy="known") as (a, b), \
                trio.open_nursery() as nursery:
            response = await b.call("POST", "/devices", {"device_phy_id": BKV_ID})
            assert response.status_code == 201, response.text
            device = Device(ProtocolFamily.BKV, BKV_ID)
            await device.connect(nursery, a.addresses.tcp_port)
            await a.wait_online(BKV_ID)
            # Withdrawn through node b: node a closes the connection it holds.
            response = await b.call("DELETE", f"/devices/{BKV_ID}")
            assert response.status_code == 200, response.text
            while not device.closed_by_peer:
                await device.changed.wait()
            nursery.cancel_scope.cancel()


async def test_a_node_that_stops_gives_its_devices_up(tmp_path: Path,
                                                      postgres_url: str) -> None:
    name = cluster_name()
    with trio.fail_after(30):
        async with receiver_running() as (_, url):
            async with cluster(tmp_path, 1, url, postgres_url, cluster_name=name) as (a,), \
                    trio.open_nursery() as nursery:
                device = Device(ProtocolFamily.BKV, BKV_ID)
                await device.connect(nursery, a.addresses.tcp_port)
                await a.wait_online(BKV_ID)
                assert await owner_value(name, BKV_ID) == "node-a 1"
                nursery.cancel_scope.cancel()
            # Given up on the way out: the device need not wait for the claim to lapse.
            assert await owner_value(name, BKV_ID) is None


async def owner_value(cluster: str, phy_id: str) -> str | None:
    redis = connect(redis_url())
    async with redis:
        return await redis.get(f"{cluster}:owner:{phy_id}")
