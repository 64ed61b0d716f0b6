"""What integrators found missing with their own device emulators (issue 13): the
port view follows progress reports, the heartbeat's signal strength is shown at once,
a start never confirmed ends as no_confirmation, and a start on a port the device
does not have is refused before any order exists."""
from __future__ import annotations

import functools
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import trio

from bkvcodec import (
    CommandRejected,
    CommandTiming,
    DeviceHeartbeat,
    ProtocolFamily,
    ServerConnection,
    StartCharging,
)
from bkvcodec.ap3000 import Ap3000Frame, Ap3000HostHeartbeat, parse_phy_id

from .harness import AP3000_ID, BKV_ID
from .test_e2e import DEVICES, progress, protocols, stack, start_charging

pytestmark = pytest.mark.trio

#: The ICCID the library's AP3000 emulator announces.
EMULATOR_ICCID = "89860000000000000000"


@protocols
async def test_the_port_view_follows_the_progress_reports(tmp_path: Path,
                                                          protocol: ProtocolFamily) -> None:
    async with stack(tmp_path) as s:
        device = await s.device(protocol, ports=4)
        order_no, business = await start_charging(s, device)
        await progress(device, order_no, business, 60, 25, power_dw=15000)
        await s.server.wait_order(order_no, "charging")
        [port] = [p for p in (await s.server.device(device.phy_id))["ports"]
                  if p["port_no"] == 1]
        assert ("charging", 1500, order_no) == (port["status_name"], port["power_w"],
                                                port["order_no"])

        await progress(device, order_no, business, 120, 50, power_dw=9000)
        while (await s.server.order(order_no))["current_power"] != 900.0:
            await trio.sleep(0.05)
        [port] = [p for p in (await s.server.device(device.phy_id))["ports"]
                  if p["port_no"] == 1]
        assert 900 == port["power_w"]


async def test_the_bkv_heartbeat_rssi_is_shown_with_the_heartbeat(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await s.device(ProtocolFamily.BKV)  # its heartbeat carries rssi 31
        [heartbeat] = await s.receiver.wait_for("device.heartbeat")
        # Read at once: not after the batched liveness write of up to a second later.
        assert (31, 31) == (heartbeat["data"]["rssi"], (await s.server.device(BKV_ID))["rssi"])


async def test_an_ap3000_port_heartbeat_keeps_the_modem_signal(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        device = await s.device(ProtocolFamily.AP3000, ports=2)
        def modem(signal: int, message_id: int) -> bytes:
            return Ap3000Frame(physical_id=parse_phy_id(AP3000_ID), message_id=message_id,
                               message=Ap3000HostHeartbeat(
                                   firmware_version=640, rtc_type=0, host_timestamp=0,
                                   signal_strength=signal, module_type=8,
                                   iccid=EMULATOR_ICCID, host_type=0, frequency=0)).encode()

        await device._write(modem(23, 7))
        while (await s.server.device(AP3000_ID))["rssi"] != 23:
            await trio.sleep(0.05)
        # A new modem value, and right behind it a port heartbeat (0x21), which sends
        # 0 for "wired or not supported": the modem's value stands.
        await device._write(modem(25, 8))
        await device.send(DeviceHeartbeat(phy_id=AP3000_ID, protocol=ProtocolFamily.AP3000))
        await trio.sleep(1.5)  # past the batched liveness write
        assert 25 == (await s.server.device(AP3000_ID))["rssi"]


def _order_row(db_path: Path, order_no: str) -> tuple[object, ...]:
    with closing(sqlite3.connect(db_path)) as db:
        row: tuple[object, ...] = db.execute(
            "SELECT status, end_reason, end_reason_raw, end_detail FROM orders "
            "WHERE order_no = ?", (order_no,)).fetchone()
    return row


async def test_a_start_the_device_never_answers_fails_as_no_confirmation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The command times out (unanswered after its retransmission) well before
    # start_timeout: that is no answer, not a refusal.
    quick = CommandTiming(reply_timeout_s=0.3, max_retransmissions=0, min_spacing_s=0.0)
    monkeypatch.setattr("reference_server.gateway.ServerConnection",
                        functools.partial(ServerConnection, bkv_timing=quick))
    async with stack(tmp_path, start_timeout=3) as s:
        device = await s.device(ProtocolFamily.BKV)
        order_no = (await s.server.charge(BKV_ID, port_no=1))["order_no"]
        await device.expect(StartCharging)
        [failed] = await s.receiver.wait_for("order.failed", order_no=order_no)
        order = await s.server.order(order_no)
        assert ("no_confirmation", 100, "no_confirmation") == (
            order["end_reason"], order["end_reason_code"], order["end_reason_name"])
        assert order["end_reason_msg"]
        assert ("no_confirmation", order["end_reason_msg"]) == (
            failed["data"]["end_reason"], failed["data"]["end_reason_msg"])
        assert ("failed", 100) == _order_row(s.db_path, order_no)[:2]


async def test_a_charge_on_a_port_the_device_lacks_is_refused_without_an_order(
        tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await s.device(ProtocolFamily.AP3000, ports=4)
        response = await s.server.call("POST", f"/devices/{AP3000_ID}/charge", {
            "port_no": 9, "charge_mode": 1, "duration": 60, "amount": 100})
        assert 422 == response.status_code, response.text
        body = response.json()
        assert ("port_not_found", {"port_no": 9, "port_count": 4}) == (body["error"],
                                                                       body["data"])
        orders = await s.server.call("GET", f"/orders?device_phy_id={AP3000_ID}")
        assert [] == orders.json()["data"]["items"]


async def test_a_start_the_device_refuses_keeps_its_reason(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        device = await s.device(ProtocolFamily.BKV)  # a BKV gateway names no port count
        order_no = (await s.server.charge(BKV_ID, port_no=2))["order_no"]
        start = await device.expect(StartCharging)
        await device.send(CommandRejected(command_id=start.command_id, phy_id=BKV_ID,
                                          reason="no_charger", raw_code=2))
        [failed] = await s.receiver.wait_for("order.failed", order_no=order_no)
        order = await s.server.order(order_no)
        # The gateway's result code 2 has no name in the BKV rules: device_rejected.
        expected = ("device_rejected", "device_rejected", None, 2, "device_rejected")
        assert expected == (order["end_reason"], order["end_reason_name"],
                            order["end_reason_code"], order["end_reason_raw"],
                            order["end_detail"])
        assert "the device refused the start" == order["end_reason_msg"]
        listed = (await s.server.call("GET", f"/orders?device_phy_id={BKV_ID}")).json()
        [item] = listed["data"]["items"]
        assert ("device_rejected", 2) == (item["end_reason"], item["end_reason_raw"])
        assert ("device_rejected", "the device refused the start") == (
            failed["data"]["end_reason"], failed["data"]["end_reason_msg"])
        assert ("failed", None, 2, "device_rejected") == _order_row(s.db_path, order_no)


assert set(DEVICES) == {ProtocolFamily.BKV, ProtocolFamily.AP3000}
