"""The test plan's flows end to end: the server on real sockets with a real SQLite file,
devices speaking BKV/GN and AP3000 over TCP, the HTTP API over HTTP, and webhooks
delivered to a receiver that checks every signature (test-plan.md §7, api.md)."""
from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from bkvcodec import (
    CardAnswered,
    CardPresented,
    CommandAcknowledged,
    EndReason,
    MeterReading,
    PortState,
    PortStatusReported,
    ProgressReported,
    ProtocolFamily,
    SettlementReported,
    StartCharging,
    StopCharging,
)
from reference_server.storage import AsyncDatabase

from .harness import (
    AP3000_ID,
    BKV_ID,
    Device,
    Receiver,
    RunningServer,
    e2e_config,
    receiver_running,
    server_running,
)

pytestmark = pytest.mark.trio

DEVICES = {ProtocolFamily.BKV: BKV_ID, ProtocolFamily.AP3000: AP3000_ID}
protocols = pytest.mark.parametrize("protocol", list(DEVICES), ids=lambda p: p.value)


@dataclass
class Stack:
    server: RunningServer
    receiver: Receiver
    nursery: trio.Nursery
    db_path: Path

    async def device(self, protocol: ProtocolFamily, phy_id: str | None = None,
                     ports: int | None = None) -> Device:
        device = Device(protocol, phy_id or DEVICES[protocol],
                        ports if protocol is ProtocolFamily.AP3000 else None)
        await device.connect(self.nursery, self.server.addresses.tcp_port)
        await self.server.wait_online(device.phy_id)
        return device


@asynccontextmanager
async def stack(tmp_path: Path, *, seconds: float = 20, **overrides: Any
                ) -> AsyncIterator[Stack]:
    with trio.fail_after(seconds):
        async with receiver_running() as (receiver, url):
            db_path = tmp_path / "iot.db"
            async with server_running(e2e_config(db_path, url, **overrides)) as server, \
                    trio.open_nursery() as nursery:
                yield Stack(server, receiver, nursery, db_path)
                nursery.cancel_scope.cancel()


async def start_charging(s: Stack, device: Device, port_no: int = 1,
                         **body: object) -> tuple[str, int | None]:
    """Charge through the API; the device accepts; returns the order and business no."""
    order_no = (await s.server.charge(device.phy_id, port_no=port_no, **body))["order_no"]
    start = await device.expect(StartCharging, lambda c: c.port_no == port_no)
    business = 0x60 + port_no if device.protocol is ProtocolFamily.BKV else None
    await device.send(CommandAcknowledged(command_id=start.command_id, phy_id=device.phy_id,
                                          business_no=business))
    return order_no, business


async def progress(device: Device, order_no: str, business: int | None, seconds: int,
                   energy: int, port_no: int = 1, power_dw: int = 15000) -> None:
    await device.send(ProgressReported(
        phy_id=device.phy_id, socket_no=1, port_no=port_no, order_no=order_no,
        business_no=business, reading=MeterReading(duration_s=seconds, energy_centikwh=energy,
                                                   power_dw=power_dw)))


async def settle(device: Device, order_no: str, business: int | None, seconds: int,
                 energy: int, reason: EndReason = EndReason.NORMAL, port_no: int = 1) -> None:
    await device.send(SettlementReported(
        phy_id=device.phy_id, socket_no=1, port_no=port_no, order_no=order_no,
        business_no=business, reading=MeterReading(duration_s=seconds, energy_centikwh=energy),
        end_reason=reason))


def frame_log_counts(db_path: Path, phy_id: str) -> dict[str, int]:
    with closing(sqlite3.connect(db_path)) as db:
        return dict(db.execute("SELECT direction, COUNT(*) FROM cmd_logs WHERE phy_id = ? "
                               "GROUP BY direction", (phy_id,)).fetchall())


async def drained(server: RunningServer, receiver: Receiver) -> None:
    """Wait until the receiver has every event the server recorded."""
    response = await server.call("GET", "/events?after=0&limit=500")
    wanted = {e["event_id"] for e in response.json()["data"]["items"]}
    while not wanted <= {e["event_id"] for e in receiver.received}:
        await receiver.wait_changed()


def assert_order_events(receiver: Receiver, order_no: str, expected: list[str]) -> None:
    """The order's webhooks arrived once each, in this order (progress may repeat)."""
    types = [t for t in receiver.types(order_no=order_no)
             if t.startswith(("order.", "charging.")) and t != "charging.progress"]
    assert expected == types
    assert not receiver.duplicates
    assert receiver.bad_signatures == 0


@protocols
async def test_tc001_duration_order_completes(tmp_path: Path, protocol: ProtocolFamily) -> None:
    async with stack(tmp_path) as s:
        device = await s.device(protocol)
        order_no, business = await start_charging(
            s, device, duration=3600, amount=1000, price_per_kwh=150, service_fee=100)
        await progress(device, order_no, business, 60, 25)
        await s.receiver.wait_for("charging.started", order_no=order_no)
        assert "charging" == (await s.server.order(order_no))["status"]

        await progress(device, order_no, business, 1800, 262)
        await settle(device, order_no, business, 3600, 523)
        [completed] = await s.receiver.wait_for("order.completed", order_no=order_no)

        order = await s.server.order(order_no)
        assert ("completed", "normal", 3600, 5.23) == (
            order["status"], order["end_reason"], order["duration_sec"], order["total_kwh"])
        # 5.23 kWh × 150 = 785 cents, + 10 % service = 864 ≤ 1000 prepaid.
        assert (864, 136, 8.64) == (order["final_amount_cents"], order["refund_cents"],
                                    order["final_amount"])
        assert (8.64, "normal") == (completed["data"]["final_amount"],
                                    completed["data"]["end_reason"])
        assert_order_events(s.receiver, order_no, [
            "order.created", "charging.started", "charging.ended", "order.completed"])
        assert 2 >= len(s.receiver.of_type("charging.progress", order_no=order_no)) >= 1


async def test_a_charge_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """The whole server on a PostgreSQL database: provisioning, a charge, its webhooks."""
    async with stack(tmp_path, database_url=postgres_url) as s:
        response = await s.server.call("POST", "/devices", {"device_phy_id": "82210225000599"})
        assert response.status_code in (200, 201), response.text
        assert "82210225000599" in response.text
        device = await s.device(ProtocolFamily.BKV)
        order_no, business = await start_charging(s, device, duration=3600, amount=1000,
                                                  price_per_kwh=150)
        await progress(device, order_no, business, 60, 25)
        await settle(device, order_no, business, 3600, 523)
        await s.receiver.wait_for("order.completed", order_no=order_no)

        order = await s.server.order(order_no)
        assert ("completed", 5.23) == (order["status"], order["total_kwh"])
        assert_order_events(s.receiver, order_no, [
            "order.created", "charging.started", "charging.ended", "order.completed"])
    assert not (tmp_path / "iot.db").exists()  # no SQLite file beside


@protocols
async def test_tc002_remote_stop(tmp_path: Path, protocol: ProtocolFamily) -> None:
    async with stack(tmp_path) as s:
        device = await s.device(protocol)
        order_no, business = await start_charging(s, device)
        await progress(device, order_no, business, 1200, 300)
        await s.server.wait_order(order_no, "charging")

        response = await s.server.call("POST", f"/devices/{device.phy_id}/stop",
                                       {"port_no": 1, "order_no": order_no,
                                        "reason": "user_cancelled"})
        assert 200 == response.status_code, response.text
        assert "stopping" == response.json()["data"]["status"]
        stop = await device.expect(StopCharging)
        await device.send(CommandAcknowledged(command_id=stop.command_id, phy_id=device.phy_id))
        await settle(device, order_no, business, 1200, 300, EndReason.REMOTE_STOP)

        [completed] = await s.receiver.wait_for("order.completed", order_no=order_no)
        assert ("remote_stop", 1200) == (completed["data"]["end_reason"],
                                         completed["data"]["duration_sec"])
        assert "completed" == (await s.server.order(order_no))["status"]


@protocols
async def test_tc003_network_loss_keeps_charging_and_the_offline_totals(
        tmp_path: Path, protocol: ProtocolFamily) -> None:
    async with stack(tmp_path) as s:
        device = await s.device(protocol)
        order_no, business = await start_charging(s, device)
        await progress(device, order_no, business, 600, 250)
        await s.server.wait_order(order_no, "charging")

        await device.disconnect()
        await s.receiver.wait_for("device.offline")
        view = await s.server.device(device.phy_id)
        assert not view["online"]
        assert view["ports"] and {3} == {p["status"] for p in view["ports"]}
        await device.connect(s.nursery, s.server.addresses.tcp_port)
        await s.server.wait_online(device.phy_id)
        await progress(device, order_no, business, 660, 270)
        await settle(device, order_no, business, 720, 290)

        [completed] = await s.receiver.wait_for("order.completed", order_no=order_no)
        assert (720, 2.9) == (completed["data"]["duration_sec"],
                              completed["data"]["total_kwh"])
        types = s.receiver.types(device=device.phy_id)
        assert types.index("device.offline") < types.index("device.online", 1)


@protocols
async def test_tc004_reboot_without_the_order_ends_as_exception(
        tmp_path: Path, protocol: ProtocolFamily) -> None:
    async with stack(tmp_path, offline_after=2) as s:
        device = await s.device(protocol)
        order_no, business = await start_charging(s, device)
        await progress(device, order_no, business, 600, 250)
        await s.server.wait_order(order_no, "charging")

        await device.disconnect()
        await device.connect(s.nursery, s.server.addresses.tcp_port)
        raw = 0x80 if protocol is ProtocolFamily.BKV else 0x00
        await device.send(PortStatusReported(phy_id=device.phy_id, socket_no=1, port_no=1,
                                             state=PortState.IDLE, raw_status=raw))
        [event] = await s.receiver.wait_for("order.exception", order_no=order_no)

        assert ("device_lost_order", 250) == (event["data"]["end_reason"],
                                               event["data"]["total_kwh"] * 100)
        order = await s.server.order(order_no)
        assert ("exception", "device_lost_order") == (order["status"], order["end_reason"])


@protocols
async def test_tc005_ports_charge_independently(tmp_path: Path,
                                                protocol: ProtocolFamily) -> None:
    async with stack(tmp_path) as s:
        device = await s.device(protocol, ports=4)
        ports = [1, 2] if protocol is ProtocolFamily.BKV else [1, 2, 3, 4]
        orders = [await start_charging(s, device, port_no=p) for p in ports]
        for p, (order_no, business) in zip(ports, orders, strict=True):
            await progress(device, order_no, business, 60, 5 + p, port_no=p)
        for p, (order_no, business) in zip(ports, orders, strict=True):
            await settle(device, order_no, business, 3600, 500 + p, port_no=p)
        for p, (order_no, _) in zip(ports, orders, strict=True):
            [completed] = await s.receiver.wait_for("order.completed", order_no=order_no)
            assert (p, 5.0 + p / 100) == (completed["data"]["port_no"],
                                          completed["data"]["total_kwh"])


@protocols
async def test_exception_1_the_command_waits_for_an_offline_device(
        tmp_path: Path, protocol: ProtocolFamily) -> None:
    async with stack(tmp_path, command_ttl=30) as s:
        device = await s.device(protocol)
        await device.disconnect()
        await s.server.wait_online(device.phy_id, False)

        created = await s.server.charge(device.phy_id, port_no=1)
        assert (False, "pending") == (created["device_online"], created["status"])
        await device.connect(s.nursery, s.server.addresses.tcp_port)
        start = await device.expect(StartCharging)
        assert created["order_no"] == start.order_no or protocol is ProtocolFamily.BKV


@protocols
async def test_exception_1_the_command_expires_if_the_device_stays_away(
        tmp_path: Path, protocol: ProtocolFamily) -> None:
    async with stack(tmp_path, command_ttl=1) as s:
        device = await s.device(protocol)
        await device.disconnect()
        await s.server.wait_online(device.phy_id, False)

        order_no = (await s.server.charge(device.phy_id, port_no=1))["order_no"]
        [failed] = await s.receiver.wait_for("order.failed", order_no=order_no)

        assert "command_expired" == failed["data"]["end_reason"]
        command = await s.server.order(order_no)
        assert "failed" == command["status"]


@protocols
async def test_exception_2_port_fault_settles_once_with_reason_fault(
        tmp_path: Path, protocol: ProtocolFamily) -> None:
    async with stack(tmp_path) as s:
        device = await s.device(protocol)
        order_no, business = await start_charging(s, device)
        await progress(device, order_no, business, 600, 250)
        await s.server.wait_order(order_no, "charging")

        raw = 0x82 if protocol is ProtocolFamily.BKV else 0x0D
        await device.send(PortStatusReported(phy_id=device.phy_id, socket_no=1, port_no=1,
                                             state=PortState.FAULT, raw_status=raw))
        [alarm] = await s.receiver.wait_for("device.alarm")
        await settle(device, order_no, business, 610, 255)
        [completed] = await s.receiver.wait_for("order.completed", order_no=order_no)

        assert "fault" == completed["data"]["end_reason"]
        assert alarm["data"]["fault_code"] != 0
        port = (await s.server.device(device.phy_id))["ports"][0]
        assert 2 == port["status"]
        response = await s.server.call("POST", f"/devices/{device.phy_id}/charge",
                                       {"port_no": 1, "charge_mode": 1, "duration": 60})
        assert (422, "port_fault") == (response.status_code, response.json()["error"])


@protocols
async def test_exception_3_a_busy_port_is_refused_with_409(tmp_path: Path,
                                                          protocol: ProtocolFamily) -> None:
    async with stack(tmp_path) as s:
        device = await s.device(protocol)
        order_no, business = await start_charging(s, device)
        await progress(device, order_no, business, 60, 10)
        await s.server.wait_order(order_no, "charging")

        response = await s.server.call("POST", f"/devices/{device.phy_id}/charge",
                                       {"port_no": 1, "charge_mode": 1, "duration": 60})

        assert 409 == response.status_code
        body = response.json()
        assert (409, "port_busy") == (body["code"], body["error"])
        assert {"current_order": order_no, "port_no": 1, "status": "charging"} == body["data"]


CARDS = {ProtocolFamily.BKV: "0000A1B2C3D4", ProtocolFamily.AP3000: "2056062429"}


@protocols
async def test_a_card_swipe_charges_and_debits_the_card(tmp_path: Path,
                                                      protocol: ProtocolFamily) -> None:
    async with stack(tmp_path, default_price_per_kwh=150) as s:
        card_no = CARDS[protocol]
        response = await s.server.call("POST", "/cards", {"card_no": card_no,
                                                          "balance_cents": 2000})
        assert 200 == response.status_code, response.text
        device = await s.device(protocol)

        await device.send(CardPresented(phy_id=device.phy_id, socket_no=1, port_no=1,
                                        card_no=card_no, request_id=7))
        answer = await device.expect(CardAnswered)
        [swiped] = await s.receiver.wait_for("card.swiped")
        assert answer.accepted, swiped["data"]
        order_no = swiped["data"]["order_no"]
        business = 0x42 if protocol is ProtocolFamily.BKV else None
        if protocol is ProtocolFamily.AP3000:
            # The AP3000 reply admits the card; the start command follows it.
            start = await device.expect(StartCharging)
            assert (order_no, 1) == (start.order_no, start.port_no)
            await device.send(CommandAcknowledged(command_id=start.command_id,
                                                  phy_id=device.phy_id))
        elif answer.command_id is not None:
            await device.send(CommandAcknowledged(command_id=answer.command_id,
                                                  phy_id=device.phy_id, business_no=business))
        await progress(device, order_no, business, 60, 10)
        await settle(device, order_no, business, 1200, 200, EndReason.USER_STOP)
        [completed] = await s.receiver.wait_for("order.completed", order_no=order_no)

        # 2.00 kWh × 150 cents = 300 cents, debited from the 2000 on the card. A BKV
        # end report carries no reason: it reads as normal (api.md §10.2).
        reason = "normal" if protocol is ProtocolFamily.BKV else "user_stop"
        assert (300, reason) == (completed["data"]["final_amount_cents"],
                                 completed["data"]["end_reason"])
        card = (await s.server.call("GET", f"/cards/{card_no}")).json()["data"]
        assert 1700 == card["balance_cents"]


@protocols
async def test_an_unknown_card_is_refused_at_the_device(tmp_path: Path,
                                                       protocol: ProtocolFamily) -> None:
    async with stack(tmp_path) as s:
        device = await s.device(protocol)
        await device.send(CardPresented(phy_id=device.phy_id, socket_no=1, port_no=1,
                                        card_no=CARDS[protocol], request_id=8))

        answer = await device.expect(CardAnswered)
        [swiped] = await s.receiver.wait_for("card.swiped")

        assert not answer.accepted
        assert (False, "unknown_card", None) == (
            swiped["data"]["accepted"], swiped["data"]["reason"], swiped["data"]["order_no"])


async def test_a_silent_device_goes_offline_and_its_connection_is_closed(
        tmp_path: Path) -> None:
    async with stack(tmp_path, offline_after=1) as s:
        device = await s.device(ProtocolFamily.AP3000)
        [offline] = await s.receiver.wait_for("device.offline")
        assert "silent" == offline["data"]["reason"]
        assert not (await s.server.device(device.phy_id))["online"]
        assert device.stream is not None
        # The server closed the connection: the next read sees the end of the stream.
        while device.stream is not None and not device.closed_by_peer:
            await device.changed.wait()


async def test_a_device_arriving_after_an_empty_sweep_still_goes_offline(
        tmp_path: Path) -> None:
    async with stack(tmp_path, offline_after=1) as s:
        await trio.sleep(0.6)  # timer ticks with no device online come first
        device = await s.device(ProtocolFamily.BKV)
        [offline] = await s.receiver.wait_for("device.offline", device=device.phy_id)
        assert "silent" == offline["data"]["reason"]


async def test_a_charge_for_a_device_still_registering_follows_its_reports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The order is created while the device's first frame waits for its database row:
    # both tasks load the new device, and they must share one object, or the order's
    # reports are not recognised as its own and it stays pending (a test-plan flake).
    written, release = trio.Event(), trio.Event()
    upsert_device = AsyncDatabase.upsert_device

    async def held_upsert(self: AsyncDatabase, *args: Any, **kwargs: Any) -> Any:
        result = await upsert_device(self, *args, **kwargs)
        written.set()
        await release.wait()
        return result

    monkeypatch.setattr(AsyncDatabase, "upsert_device", held_upsert)
    async with stack(tmp_path) as s:
        device = Device(ProtocolFamily.AP3000, AP3000_ID, 2)
        await device.connect(s.nursery, s.server.addresses.tcp_port)
        await written.wait()
        order_no = (await s.server.charge(device.phy_id, port_no=1))["order_no"]
        release.set()
        start = await device.expect(StartCharging)
        await device.send(CommandAcknowledged(command_id=start.command_id,
                                              phy_id=device.phy_id))
        await progress(device, order_no, None, 60, 3)

        assert "charging" == (await s.server.wait_order(order_no, "charging"))["status"]


async def test_unknown_device_bad_field_and_rate_limit(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        response = await s.server.call("POST", "/devices/00000000000000/charge",
                                       {"port_no": 1, "charge_mode": 1, "duration": 60})
        assert (404, "device_not_found") == (response.status_code, response.json()["error"])

        device = await s.device(ProtocolFamily.BKV)
        response = await s.server.call("POST", f"/devices/{device.phy_id}/charge",
                                       {"port_no": 1, "charge_mode": 1})
        assert 400 == response.status_code
        assert "duration" == response.json()["data"]["field"]

        statuses = [(await s.server.call("POST", f"/devices/{device.phy_id}/stop",
                                         {"port_no": 1})).status_code for _ in range(10)]
        assert 429 in statuses
        assert statuses.count(404) <= 5  # no running order; the rest were limited


async def test_wrong_api_key_is_refused(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        response = await s.server.call("GET", "/devices", headers={"X-Api-Key": "wrong"})
        assert (401, "unauthorized") == (response.status_code, response.json()["error"])


async def test_webhooks_survive_a_receiver_outage_exactly_once_in_order(
        tmp_path: Path) -> None:
    async with stack(tmp_path, seconds=30) as s:
        s.receiver.failing = True
        device = await s.device(ProtocolFamily.AP3000)
        order_no, business = await start_charging(s, device)
        await progress(device, order_no, business, 60, 10)
        await settle(device, order_no, business, 120, 20)
        await s.server.wait_order(order_no, "completed")
        await trio.sleep(1.5)
        assert not s.receiver.received

        s.receiver.failing = False
        await s.receiver.wait_for("order.completed", order_no=order_no)
        assert_order_events(s.receiver, order_no, [
            "order.created", "charging.started", "charging.ended", "order.completed"])


async def test_restart_mid_charge_keeps_the_order_and_queued_commands(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with receiver_running() as (receiver, url):
            config = e2e_config(tmp_path / "iot.db", url, command_ttl=60)
            async with server_running(config) as server, trio.open_nursery() as nursery:
                device = Device(ProtocolFamily.BKV, BKV_ID)
                await device.connect(nursery, server.addresses.tcp_port)
                await server.wait_online(BKV_ID)
                s = Stack(server, receiver, nursery, config.db_path)
                order_no, business = await start_charging(s, device)
                await progress(device, order_no, business, 600, 250)
                await server.wait_order(order_no, "charging")
                await device.disconnect()
                await server.wait_online(BKV_ID, False)
                # Queued while the device is away; must survive the restart.
                response = await server.call("POST", f"/devices/{BKV_ID}/stop",
                                             {"port_no": 1})
                assert "stopping" == response.json()["data"]["status"]
                await drained(server, receiver)
                nursery.cancel_scope.cancel()

            async with server_running(config) as server, trio.open_nursery() as nursery:
                assert "stopping" == (await server.order(order_no))["status"]
                s = Stack(server, receiver, nursery, config.db_path)
                device = Device(ProtocolFamily.BKV, BKV_ID)
                await device.connect(nursery, server.addresses.tcp_port)
                stop = await device.expect(StopCharging)
                await device.send(CommandAcknowledged(command_id=stop.command_id,
                                                      phy_id=BKV_ID))
                await settle(device, order_no, business, 660, 270, EndReason.REMOTE_STOP)
                await receiver.wait_for("order.completed", order_no=order_no)
                nursery.cancel_scope.cancel()

        assert_order_events(receiver, order_no, [
            "order.created", "charging.started", "charging.ended", "order.completed"])
        ids = [e["event_id"] for e in receiver.received]
        assert len(ids) == len(set(ids))


async def test_garbage_on_one_connection_leaves_the_others_working(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        noisy = await trio.open_tcp_stream("127.0.0.1", s.server.addresses.tcp_port)
        await noisy.send_all(b"\xfc\xfe\xff\xff" + bytes(range(256)) * 8)
        bad_length = await trio.open_tcp_stream("127.0.0.1", s.server.addresses.tcp_port)
        await bad_length.send_all(bytes.fromhex("fcfe") + b"\xff" * 64)

        device = await s.device(ProtocolFamily.BKV)
        order_no, business = await start_charging(s, device)
        await progress(device, order_no, business, 60, 10)
        await s.server.wait_order(order_no, "charging")
        await noisy.aclose()
        await bad_length.aclose()


async def test_diagnostic_queries_of_the_plan_work_on_the_file(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        device = await s.device(ProtocolFamily.BKV)
        order_no, business = await start_charging(s, device)
        await progress(device, order_no, business, 60, 10)
        await s.server.wait_order(order_no, "charging")

        # Frame logs and device touches are written once a second.
        while (counts := frame_log_counts(s.db_path, device.phy_id)).get("DOWN", 0) < 2 \
                or counts.get("UP", 0) < 2:
            await trio.sleep(0.1)

        with closing(sqlite3.connect(s.db_path)) as db:
            row = db.execute(
                "SELECT o.order_no, o.status, o.duration_sec, o.total_kwh, d.phy_id "
                "FROM orders o JOIN devices d ON d.id = o.device_id "
                "WHERE o.order_no = ?", (order_no,)).fetchone()
            last_seen = db.execute("SELECT last_seen_at FROM devices WHERE phy_id = ?",
                                   (device.phy_id,)).fetchone()[0]
        assert (order_no, "charging", 60, 10, device.phy_id) == row
        assert last_seen is not None

        metrics = (await s.server.api.get("/metrics")).text
        for line in ('iot_frames_out_total{kind="StartCharging"} 1.0',
                     'iot_commands_total{kind="start_charging",outcome="acked"} 1.0',
                     'iot_frames_in_total{kind="ProgressReported",protocol="bkv"} 1.0',
                     "iot_device_connections 1.0"):
            assert line in metrics
