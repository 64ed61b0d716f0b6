"""Issue 12, story 1 (device takeover, made-up ids) and api.md §11.2, against the real
server over loopback.

Before: any client that sent one frame with an online device's id took the device
over (the real socket closed, the next StartCharging went to the attacker), and one
socket created 5,001 device rows with made-up ids. After: a takeover from another
address is reported (``device.takeover``) and, with ``takeover_policy = keep``,
refused; under ``device_policy = known`` made-up ids are not answered and their
connection is closed; a connection names one device only; an ICCID other than the
bound one quarantines the connection (``device.identity_conflict``).
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from bkvcodec import DeviceConnection, DeviceHeartbeat, ProtocolFamily, StartCharging
from tests.server.harness import AP3000_ID, BKV_ID, RunningServer, e2e_config, server_running

from .peers import ATTACKER_ADDRESS, OTHER_ICCID, Peer, events_of, metric, rows

pytestmark = pytest.mark.trio

TIMEOUT = 20


@asynccontextmanager
async def serving(tmp_path: Path, **overrides: Any
                  ) -> AsyncIterator[tuple[RunningServer, trio.Nursery]]:
    overrides.setdefault("offline_after", 60)
    with trio.fail_after(TIMEOUT):
        async with server_running(e2e_config(tmp_path / "iot.db", None, **overrides)) as server, \
                trio.open_nursery() as nursery:
            yield server, nursery
            nursery.cancel_scope.cancel()


async def online(server: RunningServer, nursery: trio.Nursery, peer: Peer) -> Peer:
    await peer.connect(nursery, server.addresses.tcp_port)
    await server.wait_online(peer.phy_id)
    return peer


# --- takeover --------------------------------------------------------------------------------

async def test_takeover_from_another_address_is_reported_and_replaces(tmp_path: Path) -> None:
    async with serving(tmp_path) as (server, nursery):
        device = await online(server, nursery, Peer(ProtocolFamily.BKV, BKV_ID))
        attacker = await online(server, nursery, Peer(ProtocolFamily.BKV, BKV_ID,
                                                      local_address=ATTACKER_ADDRESS))
        await device.wait_closed()
        takeovers = await events_of(server, "device.takeover")

        assert [{"device_phy_id": BKV_ID, "old_remote_addr": device_addr(device),
                 "remote_addr": device_addr(attacker), "action": "replace"}] == takeovers
        assert not attacker.closed_by_peer


async def test_takeover_keep_refuses_the_newcomer_and_commands_stay(tmp_path: Path) -> None:
    async with serving(tmp_path, takeover_policy="keep") as (server, nursery):
        device = await online(server, nursery, Peer(ProtocolFamily.BKV, BKV_ID))
        attacker = Peer(ProtocolFamily.BKV, BKV_ID, local_address=ATTACKER_ADDRESS)
        await attacker.connect(nursery, server.addresses.tcp_port)
        await attacker.wait_closed()
        order = await server.charge(BKV_ID, port_no=1)
        start = await device.expect(StartCharging)
        takeovers = await events_of(server, "device.takeover")
        refused = await metric(server, "iot_devices_refused_total", reason="takeover_kept")

        assert 0 == attacker.answers()
        assert ("pending", 1) == (order["status"], start.port_no)
        assert ["keep"] == [t["action"] for t in takeovers]
        assert 1 == refused
        assert not device.closed_by_peer


async def test_reconnect_from_the_same_address_is_no_takeover(tmp_path: Path) -> None:
    async with serving(tmp_path, takeover_policy="keep") as (server, nursery):
        first = await online(server, nursery, Peer(ProtocolFamily.BKV, BKV_ID))
        second = await online(server, nursery, Peer(ProtocolFamily.BKV, BKV_ID))
        await first.wait_closed()

        assert [] == await events_of(server, "device.takeover")
        assert not second.closed_by_peer


# --- provisioning ------------------------------------------------------------------------------

async def test_known_policy_serves_provisioned_ids_only(tmp_path: Path) -> None:
    made_up = "82210225999999"
    async with serving(tmp_path, device_policy="known") as (server, nursery):
        created = await server.call("POST", "/devices",
                                    {"device_phy_id": BKV_ID, "protocol": "bkv"})
        again = await server.call("POST", "/devices", {"device_phy_id": BKV_ID})
        device = await online(server, nursery, Peer(ProtocolFamily.BKV, BKV_ID))
        stranger = Peer(ProtocolFamily.BKV, made_up)
        await stranger.connect(nursery, server.addresses.tcp_port)
        await stranger.wait_closed()
        unknown = await server.call("GET", f"/devices/{made_up}")
        refused = await metric(server, "iot_devices_refused_total", reason="unknown")

        assert (201, True) == (created.status_code, created.json()["data"]["provisioned"])
        assert 200 == again.status_code
        assert 0 == stranger.answers()
        assert 404 == unknown.status_code
        assert 1 == refused
        assert device.answers() >= 1

        deleted = await server.call("DELETE", f"/devices/{BKV_ID}")
        await device.wait_closed()
        missing = await server.call("DELETE", f"/devices/{BKV_ID}")

        assert (200, False) == (deleted.status_code, deleted.json()["data"]["provisioned"])
        assert 404 == missing.status_code


async def test_one_socket_with_made_up_ids_creates_no_rows(tmp_path: Path) -> None:
    # Story 1: one socket created 5,001 device rows. Under "known" it creates none
    # and is closed at its first frame; under "open" it creates one.
    ids = [f"8221{n:010d}" for n in range(5001)]
    for policy, expected_rows in (("known", 0), ("open", 1)):
        db_path = tmp_path / policy / "iot.db"
        config = e2e_config(db_path, None, device_policy=policy, offline_after=60)
        with trio.fail_after(TIMEOUT):
            async with server_running(config) as server, trio.open_nursery() as nursery:
                spray = Peer(ProtocolFamily.BKV, ids[0])
                await spray.connect(nursery, server.addresses.tcp_port)
                burst = bytearray()
                for phy_id in ids[1:]:
                    encoder = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id=phy_id)
                    encoder.send(DeviceHeartbeat(phy_id=phy_id, protocol=ProtocolFamily.BKV),
                                 0.0)
                    burst += encoder.data_to_send()
                await _send_quietly(spray, bytes(burst))
                if policy == "open":
                    # Refused one by one; then the connection still serves its own id
                    # (answers of reads that mixed in refused frames were withheld).
                    while await metric(server, "iot_devices_refused_total",
                                       reason="second_id") < len(ids) - 1:
                        await trio.sleep(0.05)
                    spray.inputs.clear()
                    await spray.heartbeat()
                    await spray.expect_answer()
                else:
                    await spray.wait_closed()
                nursery.cancel_scope.cancel()

        assert expected_rows == rows(db_path, "SELECT COUNT(*) FROM devices")[0][0]


async def _send_quietly(peer: Peer, data: bytes) -> None:
    try:
        await peer._write(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


# --- one id per connection -------------------------------------------------------------------

async def test_a_second_id_on_one_connection_is_rejected(tmp_path: Path) -> None:
    second = "82210225000999"
    async with serving(tmp_path) as (server, nursery):
        device = await online(server, nursery, Peer(ProtocolFamily.BKV, BKV_ID))
        await device.expect_answer()
        await device.send_as(second, DeviceHeartbeat(phy_id=second, protocol=ProtocolFamily.BKV))
        while not (refused := await metric(server, "iot_devices_refused_total",
                                           reason="second_id")):
            await trio.sleep(0.02)
        await device.heartbeat()
        await device.expect_answer()
        other = await server.call("GET", f"/devices/{second}")

        assert 404 == other.status_code
        assert 1 == refused
        assert '"reason": "second_id"' in server.log.getvalue()
        assert not device.closed_by_peer


async def test_an_ap3000_host_relays_its_slaves(tmp_path: Path) -> None:
    host, slave = "09D62684", AP3000_ID
    async with serving(tmp_path) as (server, nursery):
        unit = await online(server, nursery, Peer(ProtocolFamily.AP3000, host))
        await unit.send_as(slave, DeviceHeartbeat(phy_id=slave, protocol=ProtocolFamily.AP3000))
        await server.wait_online(slave)

        assert 0 == await metric(server, "iot_devices_refused_total", reason="second_id")


# --- ICCID binding ---------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [ProtocolFamily.BKV, ProtocolFamily.AP3000])
async def test_another_iccid_quarantines_the_connection(tmp_path: Path,
                                                        protocol: ProtocolFamily) -> None:
    phy_id = BKV_ID if protocol is ProtocolFamily.BKV else AP3000_ID
    async with serving(tmp_path) as (server, nursery):
        device = await online(server, nursery, Peer(protocol, phy_id))
        await device.disconnect()
        await server.wait_online(phy_id, False)
        impostor = Peer(protocol, phy_id, iccid=OTHER_ICCID, local_address=ATTACKER_ADDRESS)
        await impostor.connect(nursery, server.addresses.tcp_port)
        await impostor.wait_closed()
        conflicts = await events_of(server, "device.identity_conflict")
        view = await server.device(phy_id)

        assert [{"device_phy_id": phy_id, "bound_iccid": device.iccid,
                 "presented_iccid": OTHER_ICCID,
                 "remote_addr": device_addr(impostor)}] == conflicts
        assert 0 == impostor.answers()
        assert (False, device.iccid) == (view["online"], view["iccid"])


async def test_without_binding_another_iccid_is_served(tmp_path: Path) -> None:
    async with serving(tmp_path, iccid_binding="off") as (server, nursery):
        device = await online(server, nursery, Peer(ProtocolFamily.BKV, BKV_ID))
        await device.disconnect()
        await server.wait_online(BKV_ID, False)
        await online(server, nursery, Peer(ProtocolFamily.BKV, BKV_ID, iccid=OTHER_ICCID))

        assert [] == await events_of(server, "device.identity_conflict")


def device_addr(peer: Peer) -> str:
    return peer.local_name
