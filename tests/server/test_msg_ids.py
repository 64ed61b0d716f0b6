"""Every command's wire message id is recorded when the command is written: also a
command that waited behind the device's command in flight, which the library
writes only once the device answers the first (``commands.msg_id``, ``GET
/commands/{id}``, the ``outbound message sent`` line)."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio

from bkvcodec import CommandAcknowledged, ProtocolFamily, QueryParams, StartCharging
from reference_server.gateway import frame_headers

from .test_e2e import stack
from .test_logs import lines_of


def _rows(db_path: Path, query: str, *args: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db_path)) as db:
        return db.execute(query, args).fetchall()


@pytest.mark.trio
@pytest.mark.parametrize("protocol", [ProtocolFamily.BKV, ProtocolFamily.AP3000],
                         ids=lambda p: p.value)
async def test_a_command_held_behind_another_gets_its_message_id_when_written(
        tmp_path: Path, protocol: ProtocolFamily) -> None:
    async with stack(tmp_path) as s:
        device = await s.device(protocol, ports=2)
        # A start, then a parameter query right behind it (the test plan's order):
        # the query waits until the device answers the start.
        await s.server.charge(device.phy_id, port_no=1)
        start = await device.expect(StartCharging)
        response = await s.server.call("POST", f"/devices/{device.phy_id}/commands",
                                       {"kind": "query_params"})
        assert 200 == response.status_code, response.text
        query_id = response.json()["data"]["command_id"]
        await trio.sleep(0.3)
        assert not [line for line in lines_of(s.server, "outbound message sent")
                    if line["command_id"] == query_id]  # not written yet

        await device.send(CommandAcknowledged(command_id=start.command_id,
                                              phy_id=device.phy_id,
                                              business_no=0x61 if protocol is
                                              ProtocolFamily.BKV else None))
        await device.expect(QueryParams)

        [(start_id,)] = _rows(s.db_path,
                              "SELECT id FROM commands WHERE kind = 'start_charging'")
        shown: dict[str, int | None] = {}
        while None in shown.values() or not shown:
            for command_id in (start_id, query_id):
                data = (await s.server.call("GET", f"/commands/{command_id}")).json()["data"]
                shown[command_id] = data["msg_id"]
            await trio.sleep(0.05)
        assert shown[start_id] != shown[query_id]

        # The ids on the wire, in the order written (the frame log is written in batches).
        await trio.sleep(1.2)
        wire = [header.msg_id
                for (hex_data,) in _rows(s.db_path, "SELECT hex FROM cmd_logs WHERE "
                                         "direction = 'DOWN' AND phy_id = ? ORDER BY id",
                                         device.phy_id)
                for header in frame_headers(bytes.fromhex(hex_data))]
        assert shown[start_id] in wire and shown[query_id] in wire
        assert wire.index(shown[start_id]) < wire.index(shown[query_id])  # type: ignore[arg-type]

        sent = {line["command_id"]: line for line in lines_of(s.server, "outbound message sent")}
        assert {"device": device.phy_id, "cmd": "query_params", "msg_id": shown[query_id],
                "attempt": 1}.items() <= sent[query_id].items()
        assert {"cmd": "start_charging", "msg_id": shown[start_id]}.items() <= (
            sent[start_id].items())


@pytest.mark.trio
async def test_a_retransmission_is_in_the_devices_frame_log(tmp_path: Path) -> None:
    # The timer task writes it (BKV: 10 s after the first write, unanswered).
    async with stack(tmp_path, seconds=30, offline_after=60, command_ttl=60) as s:
        device = await s.device(ProtocolFamily.BKV)
        response = await s.server.call("POST", f"/devices/{device.phy_id}/commands",
                                       {"kind": "query_params"})
        query_id = response.json()["data"]["command_id"]
        await device.expect(QueryParams)
        await device.expect(QueryParams)  # the same frame again, unanswered

        while not [line for line in lines_of(s.server, "outbound message sent")
                   if line["command_id"] == query_id and line["attempt"] == 2]:
            await trio.sleep(0.05)
        await trio.sleep(1.2)  # the frame log is written in batches
        rows = _rows(s.db_path, "SELECT phy_id, device_id, msg_id FROM cmd_logs "
                     "WHERE direction = 'DOWN' AND cmd = 'retransmission'")
        msg_id = (await s.server.call("GET", f"/commands/{query_id}")).json()["data"]["msg_id"]
        assert [(device.phy_id, msg_id)] == [(phy_id, sent) for phy_id, _, sent in rows]
        assert all(device_id is not None for _, device_id, _ in rows)
