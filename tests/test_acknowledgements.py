"""Store, then acknowledge: the answers that tell a device it may forget a report
leave only after the application acknowledged the report, a connection that ends
with such answers unwritten reports them, and message ids never repeat across a
device's connections."""
from __future__ import annotations

import pytest

from bkvcodec import (
    AnswerWithheld,
    CardPresented,
    CommandDropped,
    DeviceHeartbeat,
    Direction,
    EndReason,
    LocalProtocolError,
    MessageIds,
    MeterReading,
    ProtocolFamily,
    QueryParams,
    ServerAnswered,
    ServerConnection,
    SettlementReported,
    StartConfirmed,
    decode,
)
from bkvcodec import ap3000 as a
from bkvcodec import bkv as b
from bkvcodec._tracker import MAX_PENDING_CARDS

from .helpers import DevicePair

PHY = "04A228CD"
GATEWAY = "82210225000520"
T0 = 1729407600.0
PROTOCOLS = [pytest.param(ProtocolFamily.AP3000, PHY, id="ap3000"),
             pytest.param(ProtocolFamily.BKV, GATEWAY, id="bkv")]


def _settlement(phy_id: str) -> SettlementReported:
    return SettlementReported(phy_id=phy_id, socket_no=1, port_no=1, order_no="ORDER0001",
                              business_no=0x1234, end_reason=EndReason.NORMAL,
                              reading=MeterReading(duration_s=600, energy_centikwh=12))


def _paused_pair(protocol: ProtocolFamily, phy_id: str) -> DevicePair:
    pair = DevicePair(protocol, phy_id, auto_acknowledge=False)
    pair.connect(T0)
    pair.device_sends(DeviceHeartbeat(phy_id=phy_id, protocol=protocol), T0)
    pair.device_inputs.clear()
    return pair


def _answers(pair: DevicePair) -> list[str]:
    return [i.name for i in pair.device_inputs if isinstance(i, ServerAnswered)]


@pytest.mark.parametrize(("protocol", "phy_id"), PROTOCOLS)
def test_a_settlement_is_answered_only_after_acknowledge(protocol: ProtocolFamily,
                                                         phy_id: str) -> None:
    pair = _paused_pair(protocol, phy_id)

    [settled] = pair.device_sends(_settlement(phy_id), T0 + 1)

    assert isinstance(settled, SettlementReported)
    assert [] == _answers(pair)
    assert b"" == pair.server.data_to_send()
    assert [settled] == pair.server.held()

    pair.server.acknowledge(settled)
    pair._to_device(pair.server.data_to_send(), T0 + 2)

    assert 1 == len(_answers(pair))
    assert [] == pair.server.held()


@pytest.mark.parametrize(("protocol", "phy_id"), PROTOCOLS)
def test_other_answers_in_the_same_read_are_not_held(protocol: ProtocolFamily,
                                                     phy_id: str) -> None:
    pair = _paused_pair(protocol, phy_id)
    pair.device.send(_settlement(phy_id), T0 + 1)
    pair.device.send(DeviceHeartbeat(phy_id=phy_id, protocol=protocol), T0 + 1)

    events = pair.server.receive_data(pair.device.data_to_send(), T0 + 1)
    out = pair.server.data_to_send()

    assert ["SettlementReported", "DeviceHeartbeat"] == [
        type(e).__name__ for e in events if type(e).__name__ in ("SettlementReported",
                                                                   "DeviceHeartbeat")]
    # One answer, the heartbeat's; the settlement's waits.
    inputs = pair.device.receive_data(out, T0 + 1)
    assert 1 == sum(isinstance(i, ServerAnswered) for i in inputs)
    assert 1 == len(pair.server.held())


@pytest.mark.parametrize(("protocol", "phy_id"), PROTOCOLS)
def test_a_connection_ending_with_held_answers_reports_them(protocol: ProtocolFamily,
                                                            phy_id: str) -> None:
    pair = _paused_pair(protocol, phy_id)
    [settled] = pair.device_sends(_settlement(phy_id), T0 + 1)

    ended = pair.server.receive_eof()

    assert [AnswerWithheld(phy_id=phy_id, event=settled)] == [
        e for e in ended if isinstance(e, AnswerWithheld)]
    with pytest.raises(LocalProtocolError):
        pair.server.acknowledge(settled)
    with pytest.raises(LocalProtocolError):
        pair.server.receive_data(b"", T0 + 2)


@pytest.mark.parametrize(("protocol", "phy_id"), PROTOCOLS)
def test_a_failed_write_reports_the_acknowledged_answers_it_carried(
        protocol: ProtocolFamily, phy_id: str) -> None:
    pair = _paused_pair(protocol, phy_id)
    [settled] = pair.device_sends(_settlement(phy_id), T0 + 1)
    pair.server.acknowledge(settled)
    assert pair.server.data_to_send()  # the write that fails

    ended = pair.server.send_failed()

    assert [AnswerWithheld(phy_id=phy_id, event=settled)] == ended


@pytest.mark.parametrize(("protocol", "phy_id"), PROTOCOLS)
def test_a_connection_ending_reports_its_commands_as_dropped(protocol: ProtocolFamily,
                                                             phy_id: str) -> None:
    pair = _paused_pair(protocol, phy_id)
    pair.server.send(QueryParams(command_id="q1", phy_id=phy_id), T0 + 1)
    pair.server.send(QueryParams(command_id="q2", phy_id=phy_id), T0 + 1)

    ended = pair.server.receive_eof()

    assert [CommandDropped(phy_id=phy_id, command_id="q1"),
            CommandDropped(phy_id=phy_id, command_id="q2")] == ended


@pytest.mark.parametrize(("protocol", "phy_id"), PROTOCOLS)
def test_a_repeated_report_is_a_second_event_with_its_own_answer(protocol: ProtocolFamily,
                                                                  phy_id: str) -> None:
    pair = _paused_pair(protocol, phy_id)
    [first] = pair.device_sends(_settlement(phy_id), T0 + 1)
    [again] = pair.device_sends(_settlement(phy_id), T0 + 12)

    assert first == again and first is not again
    assert 2 == len(pair.server.held())
    pair.server.acknowledge(again)
    with pytest.raises(LocalProtocolError):
        pair.server.acknowledge(again)
    assert [first] == pair.server.held()


@pytest.mark.parametrize(("protocol", "phy_id"), PROTOCOLS)
def test_holding_can_be_turned_off(protocol: ProtocolFamily, phy_id: str) -> None:
    pair = DevicePair(protocol, phy_id, auto_acknowledge=False, hold=frozenset())
    pair.connect(T0)
    pair.device_sends(DeviceHeartbeat(phy_id=phy_id, protocol=protocol), T0)
    pair.device_inputs.clear()

    [settled] = pair.device_sends(_settlement(phy_id), T0 + 1)

    assert 1 == len(_answers(pair))
    assert [] == pair.server.held()
    with pytest.raises(LocalProtocolError):
        pair.server.acknowledge(settled)


def test_only_reports_a_device_repeats_can_be_held() -> None:
    with pytest.raises(LocalProtocolError, match="DeviceHeartbeat"):
        ServerConnection(hold={SettlementReported, DeviceHeartbeat})


def test_an_ap3000_start_confirmation_can_be_held() -> None:
    pair = DevicePair(ProtocolFamily.AP3000, PHY, auto_acknowledge=False,
                      hold={SettlementReported, StartConfirmed})
    pair.connect(T0)

    [confirmed] = pair.device_sends(StartConfirmed(phy_id=PHY, socket_no=1, port_no=2,
                                                   order_no="ORDER0001"), T0)

    assert isinstance(confirmed, StartConfirmed)
    assert b"" == pair.server.data_to_send()
    pair.server.acknowledge(confirmed)
    reply = decode(pair.server.data_to_send(), Direction.DOWN)
    assert isinstance(reply, a.Ap3000Frame)
    assert a.Ap3000OrderConfirmReply(port=1, result=0) == reply.message


def test_a_bkv_fee_mode_end_is_held_too() -> None:
    server = ServerConnection(protocol=ProtocolFamily.BKV)
    end = b.BkvFrame(gateway_id=GATEWAY, seq=7, message=b.FeeChargeEnd(
        socket_no=1, port=0, business_no=0x99, energy_wh=1200, duration_min=60, end_reason=0,
        electricity_fee_fen=80, service_fee_fen=20, bkv_seq=7))

    [settled] = server.receive_data(end.encode(), T0)

    assert isinstance(settled, SettlementReported) and 100 == settled.amount_cents
    assert b"" == server.data_to_send()
    server.acknowledge(settled)
    reply = decode(server.data_to_send())
    assert isinstance(reply, b.BkvFrame) and isinstance(reply.message, b.FeeChargeEndAck)


@pytest.mark.parametrize(("protocol", "phy_id"), PROTOCOLS)
def test_message_ids_do_not_repeat_across_connections(protocol: ProtocolFamily,
                                                      phy_id: str) -> None:
    ids = MessageIds(modulus=0x10000)
    seen = []
    for connection_no in range(3):
        server = ServerConnection(protocol=protocol, message_ids=ids)
        server.send(QueryParams(command_id=f"q{connection_no}", phy_id=phy_id), T0)
        frame = decode(server.data_to_send(), Direction.DOWN)
        assert isinstance(frame, a.Ap3000Frame | b.BkvFrame)
        seen.append(frame.message_id if isinstance(frame, a.Ap3000Frame) else frame.seq)
        server.receive_eof()

    assert [1, 2, 3] == seen
    assert 3 == ids.last(phy_id)


def test_message_ids_can_be_seeded_after_a_restart_and_wrap_without_zero() -> None:
    ids = MessageIds(modulus=0x10000)
    ids.seed(PHY, 0xFFFE)

    assert [0xFFFF, 1, 2] == [ids.next(PHY) for _ in range(3)]
    assert 1 == MessageIds().next("another device")


@pytest.mark.parametrize(("protocol", "phy_id"), PROTOCOLS)
def test_held_answers_are_bounded(protocol: ProtocolFamily, phy_id: str) -> None:
    pair = DevicePair(protocol, phy_id, auto_acknowledge=False, max_held=2)
    pair.connect(T0)
    reports = [pair.device_sends(_settlement(phy_id), T0 + n) for n in range(3)]

    # The third report gave the first up: reported, and the device repeats it later.
    [[first], [second], [third, given_up]] = reports
    assert AnswerWithheld(phy_id=phy_id, event=first) == given_up
    assert given_up.event is first
    assert [id(second), id(third)] == [id(event) for event in pair.server.held()]


@pytest.mark.parametrize(("protocol", "phy_id"), PROTOCOLS)
def test_unanswered_card_requests_are_bounded(protocol: ProtocolFamily, phy_id: str) -> None:
    pair = DevicePair(protocol, phy_id)
    pair.connect(T0)
    card = "000000000002" if protocol is ProtocolFamily.BKV else "2056062429"
    presented = [pair.device_sends(CardPresented(phy_id=phy_id, socket_no=1, port_no=1,
                                                 card_no=card, request_id=n), T0)[0]
                 for n in range(MAX_PENDING_CARDS + 1)]

    # The oldest request was forgotten; the newest can still be answered.
    with pytest.raises(LocalProtocolError, match="no card request"):
        pair.server.answer_card(presented[0].request_id, accept=False, now=T0)
    pair.server.answer_card(presented[-1].request_id, accept=False, now=T0)
    assert pair.server.data_to_send()
