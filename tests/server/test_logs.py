"""The log lines (test-plan §5.10): the plan's messages at info with their fields, a
normal close that is no read error, ``msg_id`` in the commands table and the frame
log, and the text format beside JSON."""
from __future__ import annotations

import io
import json
import re
import socket
import sqlite3
import struct
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio

from bkvcodec import ProtocolFamily, StartCharging
from bkvcodec.ap3000 import Ap3000Frame, Ap3000Heartbeat, parse_phy_id
from reference_server.gateway import FrameHeader, _first_msg_id, frame_headers
from reference_server.logs import Logger, text_line
from reference_server.server import run_server

from .harness import AP3000_ID, BKV_ID, Device, RunningServer, e2e_config
from .test_e2e import progress, stack, start_charging

#: The heartbeat reply of a BKV gateway's documentation, byte for byte.
BKV_HEARTBEAT_REPLY = bytes.fromhex(
    "fc ff 00 18 00 00 00 00 00 00 00 82 20 05 20 00 48 69 20 20 07 30 16 45 45 a7 fc ee")


def log_lines(server: RunningServer) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log.getvalue().splitlines()]


def lines_of(server: RunningServer, msg: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(server) if line["msg"] == msg]


async def logged(server: RunningServer, msg: str) -> list[dict[str, Any]]:
    while not (found := lines_of(server, msg)):
        await trio.sleep(0.02)
    return found


def _db(db_path: Path, query: str, *args: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db_path)) as db:
        return db.execute(query, args).fetchall()


@pytest.mark.trio
@pytest.mark.parametrize("protocol", [ProtocolFamily.BKV, ProtocolFamily.AP3000],
                         ids=lambda p: p.value)
async def test_the_plans_messages_at_info_with_their_fields(
        tmp_path: Path, protocol: ProtocolFamily) -> None:
    async with stack(tmp_path) as s:
        device = await s.device(protocol, ports=2)
        order_no, business = await start_charging(s, device)
        await progress(device, order_no, business, 60, 25)
        await s.server.wait_order(order_no, "charging")
        await device.disconnect()
        await logged(s.server, "connection will close")
        name = "BKV" if protocol is ProtocolFamily.BKV else "AP3000"

        def one(msg: str, **fields: object) -> dict[str, Any]:
            lines = lines_of(s.server, msg)
            assert lines, msg
            line = lines[0]
            assert "info" == line["level"], line
            assert fields.items() <= line.items(), line
            return line

        one("TCP connection accepted")["remote_addr"].startswith("127.0.0.1:")
        one("Protocol identified", protocol=protocol.value)
        received = one(f"{name} frame received", gateway_id=device.phy_id)
        assert isinstance(received["msg_id"], int) and isinstance(received["data_len"], int)
        assert received["cmd"].startswith("0x")
        one("outbound message dequeued", device=device.phy_id, cmd="start_charging")
        sent = one("outbound message sent", device=device.phy_id, cmd="start_charging")
        frames_sent = lines_of(s.server, f"{name} frame sent")
        assert sent["msg_id"] in {f["msg_id"] for f in frames_sent
                                  if f["gateway_id"] == device.phy_id}
        one("device ack received", status="acked")
        one("order confirmed", order_no=order_no, port_no=1)
        one("charging progress updated", order_no=order_no, duration=60, kwh=0.25)
        closing_line = one("connection will close", reason="closed by the device")
        assert closing_line["remote_addr"].startswith("127.0.0.1:")
        assert not lines_of(s.server, "TCP read error")

        # The message id is stored with the command and shown with it.
        [(command_id, msg_id)] = _db(
            s.db_path, "SELECT id, msg_id FROM commands WHERE kind = 'start_charging'")
        assert sent["msg_id"] == msg_id is not None
        shown = (await s.server.call("GET", f"/commands/{command_id}")).json()["data"]
        assert msg_id == shown["msg_id"]
        await trio.sleep(1.2)  # the frame log is written in batches
        logged_ids = {row[0] for row in _db(
            s.db_path, "SELECT msg_id FROM cmd_logs WHERE direction = 'DOWN' AND phy_id = ?",
            device.phy_id)}
        assert msg_id in logged_ids


@pytest.mark.trio
async def test_a_reset_connection_logs_a_read_error(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        device = Device(ProtocolFamily.BKV, BKV_ID)
        await device.connect(s.nursery, s.server.addresses.tcp_port)
        await s.server.wait_online(BKV_ID)
        assert device.stream is not None
        # SO_LINGER 0: close() sends a reset, not a FIN.
        device.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
        await device.disconnect()
        [error] = await logged(s.server, "TCP read error")
        assert "error" in error["error"].lower()
        assert ("info", "read error") == (
            error["level"], lines_of(s.server, "connection will close")[0]["reason"])


@pytest.mark.trio
async def test_frame_lines_can_be_turned_down_to_debug(tmp_path: Path) -> None:
    async with stack(tmp_path, log_frame_level="debug") as s:
        device = await s.device(ProtocolFamily.BKV)
        await s.server.charge(BKV_ID, port_no=1)
        await device.expect(StartCharging)
        received = await logged(s.server, "BKV frame received")
        assert {"debug"} == {line["level"] for line in
                             received + lines_of(s.server, "BKV frame sent")}


def test_frame_headers_read_the_fixed_offsets() -> None:
    ap3000 = Ap3000Frame(physical_id=parse_phy_id(AP3000_ID), message_id=0x1234,
                         message=Ap3000Heartbeat(voltage_0p1v=2200, port_status=(0, 0),
                                                 signal_strength=0, env_temp_raw=0)).encode()
    # Noise before, a frame cut short after: only the whole frames count.
    data = b"\x00garbage" + BKV_HEARTBEAT_REPLY + ap3000 + BKV_HEARTBEAT_REPLY[:9]
    assert [FrameHeader("BKV", "0x0000", "82200520004869", 0, 7),
            FrameHeader("AP3000", "0x21", AP3000_ID, 0x1234, len(ap3000) - 14),
            ] == list(frame_headers(data))


def test_frame_headers_find_frames_behind_many_false_starts() -> None:
    ap3000 = Ap3000Frame(physical_id=parse_phy_id(AP3000_ID), message_id=7,
                         message=Ap3000Heartbeat(voltage_0p1v=2200, port_status=(0, 0),
                                                 signal_strength=0, env_temp_raw=0)).encode()
    # Markers of one protocol with impossible lengths, then of the other, then frames.
    data = (b"\xfc\xfe\x00\x00" * 2000 + b"DNY\x00\x00" * 2000 + BKV_HEARTBEAT_REPLY
            + b"\xfc" * 100 + ap3000)
    assert ["BKV", "AP3000"] == [header.protocol for header in frame_headers(data)]


@pytest.mark.parametrize("noise", [b"", b"\x00junk", b"\xfc\xfe\x00\x00", b"DNY\x00"])
def test_the_first_message_id_is_that_of_the_first_whole_frame(noise: bytes) -> None:
    ap3000 = Ap3000Frame(physical_id=parse_phy_id(AP3000_ID), message_id=0x1234,
                         message=Ap3000Heartbeat(voltage_0p1v=2200, port_status=(0, 0),
                                                 signal_strength=0, env_temp_raw=0)).encode()
    for data in (noise + ap3000 + BKV_HEARTBEAT_REPLY, noise + BKV_HEARTBEAT_REPLY + ap3000,
                 noise + ap3000[:-1] + BKV_HEARTBEAT_REPLY, noise[:1]):
        first = next(frame_headers(data), None)
        assert (None if first is None else first.msg_id) == _first_msg_id(data)


def test_text_lines_are_single_readable_lines() -> None:
    stream = io.StringIO()
    log = Logger("info", stream, log_format="text")
    log.info("BKV frame received", cmd="0x1000", gateway_id="82210225000520", msg_id=7,
             data_len=42, note="two words\nand a line")
    log.debug("not written")
    [line] = stream.getvalue().splitlines()
    stamp, level, rest = line.split(" ", 2)
    assert stamp.endswith("Z") and "T" in stamp
    assert "INFO" == level
    assert ('BKV frame received cmd=0x1000 gateway_id=82210225000520 msg_id=7 data_len=42 '
            'note="two words\\nand a line"') == rest.strip()
    assert ("2026-12-06T15:45:00Z INFO  connection will close remote_addr=1.2.3.4:5 "
            "device=null\n") == text_line(1796571900.0, "info", "connection will close",
                                          {"remote_addr": "1.2.3.4:5", "device": None})


def test_json_stays_the_default() -> None:
    stream = io.StringIO()
    log = Logger("info", stream)
    log.info("order confirmed", order_no="THD1", port_no=1)
    line = json.loads(stream.getvalue())
    assert ("info", "order confirmed", "THD1", 1) == (line["level"], line["msg"],
                                                       line["order_no"], line["port_no"])
    assert (log.enabled("info"), log.enabled("debug")) == (True, False)
    with pytest.raises(ValueError):
        Logger("info", stream, log_format="yaml")  # type: ignore[arg-type]


@pytest.mark.trio
async def test_the_server_logs_text_when_configured(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = e2e_config(tmp_path / "iot.db", None, log_format="text")
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: run_server(
                config, announce=io.StringIO(), task_status=task_status))
            nursery.cancel_scope.cancel()
    assert Logger("info").drain(5)  # every stderr logger shares one writer
    lines = capsys.readouterr().err.splitlines()
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO  listening "
                            r"listener=devices host=127\.0\.0\.1 port=\d+", line)
               for line in lines), lines
