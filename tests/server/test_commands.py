"""Stored commands: every kind survives the trip to a row and back."""
from __future__ import annotations

import dataclasses

import pytest

from bkvcodec import (
    ChargeMode,
    Command,
    FirmwareTarget,
    ModifyCharge,
    NetworkSocketSpec,
    PowerTierSpec,
    QueryParams,
    QueryStatus,
    SendFirmware,
    SendMessage,
    SetNetworkList,
    SetParams,
    StartCharging,
    StartOta,
    StopCharging,
)
from bkvcodec import ap3000 as a
from bkvcodec import bkv as b
from reference_server.commands import command_from_record, command_kind, command_payload
from reference_server.storage import CommandRecord, CommandStatus, dump_json

PHY = "82210225000520"
COMMANDS: list[Command] = [
    StartCharging(command_id="c1", phy_id=PHY, port_no=2, order_no="THD1729407600001",
                  mode=ChargeMode.POWER_TIERS, socket_no=7, amount_cents=1000,
                  power_tiers=(PowerTierSpec(max_power_w=200, price_cents=100, minutes=60),)),
    StopCharging(command_id="c2", phy_id=PHY, port_no=1, order_no="THD1729407600001"),
    QueryStatus(command_id="c3", phy_id=PHY, socket_no=3),
    SetParams(command_id="c4", phy_id=PHY, params={"max_power_w": 500}),
    QueryParams(command_id="c5", phy_id=PHY),
    ModifyCharge(command_id="c6", phy_id=PHY, port_no=1, duration_s=600),
    StartOta(command_id="c7", phy_id=PHY, ftp_host="10.0.0.1", file_name="fw.bin"),
    SetNetworkList(command_id="c8", phy_id=PHY,
                   sockets=(NetworkSocketSpec(socket_no=1, mac="aabbccddeeff"),)),
    SendFirmware(command_id="c9", phy_id=PHY, image=b"\x00\x01firmware",
                 target=FirmwareTarget.HOST, firmware_version=12),
    SendMessage(command_id="c10", phy_id="04A228CD", message=a.Ap3000Locate(duration_s=5)),
    SendMessage(command_id="c11", phy_id=PHY, message=b.VoiceConfig(
        socket_no=1, port=0, buzzer_on=1, voice_on=0,
        windows=(b.VoiceWindow(start="08:00", end="20:00"),))),
]


def _row(command: Command) -> CommandRecord:
    return CommandRecord(
        id=command.command_id, device_id=1, phy_id=command.phy_id,
        kind=command_kind(command), payload_json=dump_json(command_payload(command)),
        status=CommandStatus.QUEUED, reason=None, result_json=None, msg_id=None, attempts=0,
        order_no=None, created_at=0, sent_at=None, finished_at=None, expires_at=300)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_a_stored_command_is_rebuilt_equal(command: Command) -> None:
    assert command == command_from_record(_row(command))


def test_an_unknown_kind_is_a_clear_error() -> None:
    row = dataclasses.replace(_row(COMMANDS[2]), kind="reboot")
    with pytest.raises(ValueError, match="unknown kind"):
        command_from_record(row)


def test_a_payload_with_a_foreign_field_is_a_clear_error() -> None:
    row = dataclasses.replace(_row(COMMANDS[2]), payload_json='{"volume": 3}')
    with pytest.raises(ValueError, match="bad payload"):
        command_from_record(row)
