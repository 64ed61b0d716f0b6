"""ServerConnection.commands_sent(): which command each write carries, with its
message id, whether the frame went at once, after the answer to the command in
flight, at the spacing timer, or as a retransmission."""
from __future__ import annotations

import pytest

from bkvcodec import (
    ChargeMode,
    CommandAcknowledged,
    CommandSent,
    Direction,
    ProtocolFamily,
    QueryParams,
    SendFirmware,
    ServerConnection,
    StartCharging,
    StartOta,
)
from bkvcodec._tracker import MAX_COMMANDS_SENT
from bkvcodec.ap3000 import Ap3000Frame
from bkvcodec.bkv import BkvFrame

from .helpers import DevicePair

T0 = 1729407600.0
GATEWAY = "82210225000520"
PHY = "04A228CD"
DEVICES = {ProtocolFamily.BKV: GATEWAY, ProtocolFamily.AP3000: PHY}


def wire_id(protocol: ProtocolFamily, data: bytes) -> int:
    """The message id of the frame *data* (AP3000 message id, BKV sequence number)."""
    if protocol is ProtocolFamily.BKV:
        return BkvFrame.decode(data).seq
    return Ap3000Frame.decode(data, Direction.DOWN).message_id


def start(protocol: ProtocolFamily, command_id: str = "start") -> StartCharging:
    return StartCharging(command_id=command_id, phy_id=DEVICES[protocol], port_no=1,
                         order_no="THD1729407600001", mode=ChargeMode.TIME, duration_s=60)


def query(protocol: ProtocolFamily) -> QueryParams:
    if protocol is ProtocolFamily.BKV:
        return QueryParams(command_id="query", phy_id=GATEWAY, socket_no=1)
    return QueryParams(command_id="query", phy_id=PHY)


@pytest.mark.parametrize("protocol", [ProtocolFamily.BKV, ProtocolFamily.AP3000])
def test_a_command_written_at_once_is_reported_at_once(protocol: ProtocolFamily) -> None:
    server = ServerConnection(protocol=protocol)
    assert [] == server.commands_sent()

    server.send(start(protocol), T0)
    data = server.data_to_send()

    assert [CommandSent(command_id="start", phy_id=DEVICES[protocol],
                        message_id=wire_id(protocol, data), attempt=1)] == (
        server.commands_sent())
    assert [] == server.commands_sent()  # drained


@pytest.mark.parametrize("protocol", [ProtocolFamily.BKV, ProtocolFamily.AP3000])
def test_a_held_command_is_reported_when_the_answer_to_the_first_releases_it(
        protocol: ProtocolFamily) -> None:
    pair = DevicePair(protocol, DEVICES[protocol])
    pair.connect(T0)
    [first] = pair.server_sends(start(protocol), T0)
    [sent_first] = pair.server.commands_sent()
    assert [] == pair.server_sends(query(protocol), T0)  # waits behind the start
    assert [] == pair.server.commands_sent()

    pair.device_sends(CommandAcknowledged(command_id=first.command_id,
                                          phy_id=DEVICES[protocol]), T0 + 1)

    [sent_second] = pair.server.commands_sent()
    assert ("query", DEVICES[protocol], 1) == (sent_second.command_id, sent_second.phy_id,
                                              sent_second.attempt)
    assert sent_first.message_id == wire_id(protocol, pair.wire_down[0])
    assert sent_second.message_id == wire_id(protocol, pair.wire_down[-1])
    assert sent_second.message_id != sent_first.message_id


@pytest.mark.parametrize("protocol", [ProtocolFamily.BKV, ProtocolFamily.AP3000])
def test_a_command_paced_by_the_spacing_is_reported_by_handle_timeout(
        protocol: ProtocolFamily) -> None:
    # Two devices behind one connection: the second command waits only for the spacing.
    other = {ProtocolFamily.BKV: "82210225000521", ProtocolFamily.AP3000: "04A26CF3"}[protocol]
    server = ServerConnection(protocol=protocol)
    server.send(start(protocol), T0)
    server.send(StartCharging(command_id="other", phy_id=other, port_no=1,
                              order_no="THD1729407600002", mode=ChargeMode.UNTIL_FULL), T0)
    server.data_to_send()
    assert ["start"] == [sent.command_id for sent in server.commands_sent()]

    deadline = server.next_deadline()
    assert deadline is not None
    server.handle_timeout(deadline)
    data = server.data_to_send()

    assert [CommandSent(command_id="other", phy_id=other,
                        message_id=wire_id(protocol, data), attempt=1)] == (
        server.commands_sent())


@pytest.mark.parametrize("protocol", [ProtocolFamily.BKV, ProtocolFamily.AP3000])
def test_a_retransmission_is_attempt_two_with_the_same_message_id(
        protocol: ProtocolFamily) -> None:
    server = ServerConnection(protocol=protocol)
    server.send(start(protocol), T0)
    server.data_to_send()
    [first] = server.commands_sent()

    deadline = server.next_deadline()
    assert deadline is not None
    server.handle_timeout(deadline)
    data = server.data_to_send()

    assert [CommandSent(command_id="start", phy_id=DEVICES[protocol],
                        message_id=first.message_id, attempt=2)] == server.commands_sent()
    assert first.message_id == wire_id(protocol, data)


def test_a_command_the_protocol_never_answers_is_reported() -> None:
    server = ServerConnection(protocol=ProtocolFamily.BKV)
    server.send(StartOta(command_id="ota", phy_id=GATEWAY, ftp_host="192.0.2.1", file_name="f"), T0)
    data = server.data_to_send()

    assert [CommandSent(command_id="ota", phy_id=GATEWAY, message_id=BkvFrame.decode(data).seq,
                        attempt=1)] == server.commands_sent()


def test_every_firmware_packet_is_reported_with_its_own_message_id() -> None:
    pair = DevicePair(ProtocolFamily.AP3000, PHY)
    pair.connect(T0)
    pair.server_sends(SendFirmware(command_id="fw", phy_id=PHY, image=bytes(512)), T0)
    for step in range(1, 5):
        pair.tick(T0 + 0.5 * step)

    sent = pair.server.commands_sent()

    assert {("fw", PHY, 1)} == {(s.command_id, s.phy_id, s.attempt) for s in sent}
    # Every downlink is a packet here (an ICCID needs no answer).
    assert [wire_id(ProtocolFamily.AP3000, d) for d in pair.wire_down] == (
        [s.message_id for s in sent])
    assert 3 == len(sent) == len({s.message_id for s in sent})


def test_the_list_keeps_the_newest_records_only() -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    for n in range(MAX_COMMANDS_SENT + 10):
        # One device each, a spacing of zero: every command is written at once.
        phy_id = f"{0x04000000 + n:08X}"
        server.send(StartCharging(command_id=f"c{n}", phy_id=phy_id, port_no=1,
                                  order_no=f"O{n}", mode=ChargeMode.UNTIL_FULL),
                    T0 + n)

    sent = server.commands_sent()

    assert MAX_COMMANDS_SENT == len(sent)
    assert "c10" == sent[0].command_id
    assert f"c{MAX_COMMANDS_SENT + 9}" == sent[-1].command_id


def test_records_of_bytes_never_handed_out_end_with_the_connection() -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    server.send(start(ProtocolFamily.AP3000), T0)

    server.receive_eof()

    assert [] == server.commands_sent()
