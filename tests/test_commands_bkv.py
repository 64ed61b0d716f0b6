"""Every BKV downlink command (bkv.md §4, §5, §6.5) through a paired server and device:
built as a neutral command or a SendMessage, paced, received by the gateway as the right
DeviceInput, answered, and ending in exactly one outcome event on the server."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from bkvcodec import (
    CardAnswered,
    ChargeMode,
    Command,
    CommandAcknowledged,
    CommandDropped,
    CommandRejected,
    CommandTimedOut,
    Direction,
    LocalProtocolError,
    MessageIds,
    NetworkSocketSpec,
    ParamsReported,
    PortState,
    PortStatusReported,
    PowerTierSpec,
    ProtocolFamily,
    QueryParams,
    QueryStatus,
    SendMessage,
    ServerAnswered,
    ServerConnection,
    SetNetworkList,
    SetParams,
    StartCharging,
    StartOta,
    StopCharging,
    UnknownMessage,
)
from bkvcodec.ap3000 import Ap3000Reboot
from bkvcodec.bkv import (
    BcdTime,
    BkvFrame,
    BkvItem,
    BkvMessage,
    CardBalanceReply,
    CardOrder,
    CardOrderAck,
    ChargeControl,
    ChargeControlAck,
    ChargeEndAck,
    ExceptionReportAck,
    FeeChargeEndAck,
    FeeControlAck,
    FeeTier,
    HeartbeatAck,
    NetworkAdd,
    NetworkAddAck,
    NetworkRefresh,
    NetworkRefreshAck,
    NetworkSocket,
    OtaUpgrade,
    ParamQuery,
    ParamQueryReply,
    ParamSet,
    ParamSetAck,
    PortGroup,
    PowerControl,
    PowerTier,
    SocketCluster,
    SocketStatus,
    StatusQuery,
    StatusReport,
    StatusReportAck,
    UnknownBkvPacket,
    UnknownCommand,
    UnknownGnMessage,
    VoiceConfig,
    VoiceConfigAck,
    VoiceWindow,
)

from .helpers import DevicePair, load_vectors

GATEWAY = "82210225000520"
OTHER = "82241218000382"
T0 = 1729407600.0
BKV = ProtocolFamily.BKV
OUTCOMES = (CommandAcknowledged, CommandRejected, CommandTimedOut, CommandDropped)
VECTORS = {v["id"]: v for v in load_vectors("bkv")["vectors"]}


def vector_message(vector_id: str) -> Any:
    return BkvFrame.decode(bytes.fromhex(VECTORS[vector_id]["hex"])).message


def outcomes(events: list[Any], command_id: str = "c") -> list[Any]:
    """Every outcome event reported for *command_id*."""
    return [e for e in events if isinstance(e, OUTCOMES) and e.command_id == command_id]


def last_up(pair: DevicePair) -> Any:
    """The last message the gateway sent."""
    return BkvFrame.decode(pair.wire_up[-1]).message


def ids(command_id: str = "c", phy_id: str = GATEWAY) -> dict[str, str]:
    return {"command_id": command_id, "phy_id": phy_id}


ALL_DAY = (VoiceWindow(start="00:00", end="23:59"),)
TIERS = (PowerTierSpec(max_power_w=200, price_cents=25, minutes=60),
         PowerTierSpec(max_power_w=2000, price_cents=500, minutes=120))
SOCKETS = (NetworkSocketSpec(socket_no=1, mac="450030700247"),
           NetworkSocketSpec(socket_no=2, mac="450030700743"))
UNKNOWN_GN = UnknownGnMessage(direction=Direction.DOWN, sub_command=0x0A, params=b"\x03",
                              container=0x0005)
VOICE_WINDOWS = VoiceConfig(socket_no=254, port=1, buzzer_on=1, voice_on=1, windows=(
    VoiceWindow(start="08:00", end="12:00"), VoiceWindow(start="14:00", end="22:30")))
POWER_CARD_ORDER = CardOrder(socket_no=1, port=0, business_no=0x1A, switch=1, mode=3,
                             duration_min=0, energy_wh=0, amount_fen=100,
                             tiers=(PowerTier(max_power_dw=2000, price_fen=25, duration_min=60),))


@dataclass(frozen=True)
class Case:
    """One downlink command: what the server sends, what the gateway receives (with
    command_id "c"), and the answer the server reports the outcome with."""

    id: str
    command: Command
    received: Any
    reply: type[Any]
    #: business_no and port_no of the acknowledgement (order starts).
    details: dict[str, int] = dataclasses.field(default_factory=dict)


STARTED = {"business_no": 1, "port_no": 1}
CASES = [
    Case("0x07 start by time", StartCharging(
        **ids(), port_no=1, order_no="THD1", mode=ChargeMode.TIME, duration_s=3600),
        StartCharging(**ids(), port_no=1, order_no="", mode=ChargeMode.TIME, duration_s=3600),
        ChargeControlAck, STARTED),
    Case("0x07 start by energy", StartCharging(
        **ids(), socket_no=3, port_no=2, order_no="THD1", mode=ChargeMode.ENERGY,
        energy_wh=800),
        StartCharging(**ids(), socket_no=3, port_no=2, order_no="", mode=ChargeMode.ENERGY,
                      energy_wh=800),
        ChargeControlAck, {"business_no": 1, "port_no": 2}),
    Case("0x07 start until full", StartCharging(
        **ids(), port_no=1, order_no="THD1", mode=ChargeMode.UNTIL_FULL),
        StartCharging(**ids(), port_no=1, order_no="", mode=ChargeMode.TIME, duration_s=54000),
        ChargeControlAck, STARTED),
    Case("0x07 stop", StopCharging(**ids(), port_no=2),
         StopCharging(**ids(), port_no=2), ChargeControlAck, {"port_no": 2}),
    Case("0x07 as a message", SendMessage(
        **ids(), message=vector_message("charge-control-vendor-fixed")),
        StartCharging(**ids(), socket_no=2, port_no=1, order_no="", mode=ChargeMode.TIME,
                      duration_s=240 * 60),
        ChargeControlAck, STARTED),
    Case("0x17 power tiers", StartCharging(
        **ids(), port_no=1, order_no="THD1", mode=ChargeMode.POWER_TIERS, amount_cents=100,
        power_tiers=TIERS),
        StartCharging(**ids(), port_no=1, order_no="", mode=ChargeMode.POWER_TIERS,
                      amount_cents=100, power_tiers=TIERS),
        UnknownGnMessage, STARTED),
    Case("0x17 as a message in container 0x0005", SendMessage(
        **ids(), message=vector_message("power-control-vendor")),
        StartCharging(**ids(), port_no=1, order_no="", mode=ChargeMode.POWER_TIERS,
                      amount_cents=100, power_tiers=tuple(
                          PowerTierSpec(max_power_w=w, price_cents=p, minutes=n)
                          for w, p, n in ((200, 25, 60), (400, 50, 60), (600, 100, 60),
                                          (800, 150, 60), (2000, 500, 120)))),
        UnknownGnMessage, STARTED),
    Case("0x1D status query", QueryStatus(**ids(), socket_no=2),
         QueryStatus(**ids(), socket_no=2), SocketStatus),
    Case("0x1D as a message", SendMessage(**ids(), message=StatusQuery(socket_no=250)),
         QueryStatus(**ids(), socket_no=250), SocketStatus),
    Case("0x08 network refresh", SetNetworkList(**ids(), sockets=SOCKETS, channel=4),
         SetNetworkList(**ids(), sockets=SOCKETS, channel=4), NetworkRefreshAck),
    Case("0x08 as a message", SendMessage(
        **ids(), message=vector_message("network-refresh-vendor")),
        SetNetworkList(**ids(), channel=4, sockets=tuple(
            NetworkSocketSpec(socket_no=n, mac=mac) for n, mac in (
                (1, "450030700247"), (2, "450030700743"), (3, "350030701247"),
                (4, "259102402320")))),
        NetworkRefreshAck),
    Case("0x09 network add", SetNetworkList(**ids(), sockets=SOCKETS[:1], add=True),
         SetNetworkList(**ids(), sockets=SOCKETS[:1], add=True), NetworkAddAck),
    Case("0x09 as a message", SendMessage(**ids(), message=vector_message("network-add-vendor")),
         SetNetworkList(**ids(), add=True, sockets=(
             NetworkSocketSpec(socket_no=3, mac="350030701247"),)),
         NetworkAddAck),
    Case("0x0A network delete (GN without a layout)", SendMessage(**ids(), message=UNKNOWN_GN),
         SendMessage(**ids(), message=UNKNOWN_GN), UnknownGnMessage),
    Case("0x1B voice by SetParams", SetParams(
        **ids(), socket_no=254, params={"buzzer_on": 1, "voice_on": 0}),
        SetParams(**ids(), socket_no=254, params={"buzzer_on": 1, "voice_on": 0}),
        VoiceConfigAck),
    Case("0x1B voice windows as a message", SendMessage(**ids(), message=VOICE_WINDOWS),
         SendMessage(**ids(), message=VOICE_WINDOWS), VoiceConfigAck),
    Case("0x0B card order by time", SendMessage(
        **ids(), message=vector_message("card-order-time-vendor")),
        CardAnswered(phy_id=GATEWAY, request_id=0, accepted=True, duration_s=48000 * 60,
                     command_id="c"),
        CardOrderAck),
    Case("0x0B card order by power", SendMessage(**ids(), message=POWER_CARD_ORDER),
         CardAnswered(phy_id=GATEWAY, request_id=0, accepted=True, command_id="c"),
         CardOrderAck),
    Case("0x1011 param set", SetParams(**ids(), socket_no=2, params={
        "power_limit_dw": 7000, "max_charge_time_min": 600}),
        SetParams(**ids(), socket_no=2, params={"power_limit_dw": 7000,
                                                "max_charge_time_min": 600}),
        ParamSetAck),
    Case("0x1011 as a message", SendMessage(**ids(), message=vector_message("param-set-vendor")),
         SetParams(**ids(), socket_no=2, params={
             "full_charge_delay_s": 7200, "no_load_delay_s": 120,
             "full_power_threshold_dw": 100, "no_load_power_threshold_dw": 8,
             "high_temp_threshold_c": 85, "power_limit_dw": 7000, "max_charge_time_min": 600}),
         ParamSetAck),
    Case("0x1012 param query", QueryParams(**ids(), socket_no=2, names=("power_limit_dw",)),
         QueryParams(**ids(), socket_no=2), ParamQueryReply),
    Case("0x1012 as a message", SendMessage(**ids(), message=ParamQuery(socket_no=7)),
         QueryParams(**ids(), socket_no=7), ParamQueryReply),
    Case("0x1007 fee control", SendMessage(
        **ids(), message=vector_message("fee-control-vendor-fixed")),
        SendMessage(**ids(), message=dataclasses.replace(
            vector_message("fee-control-vendor-fixed"), bkv_seq=1)),
        FeeControlAck, STARTED),
]
BY_ID = {case.id: case for case in CASES}


def with_id(item: Any, command_id: str = "c") -> Any:
    return dataclasses.replace(item, command_id=command_id)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_command_is_received_answered_and_ends_once(case: Case) -> None:
    pair = DevicePair(BKV, GATEWAY)

    [received] = pair.server_sends(case.command, T0)
    seq = BkvFrame.decode(pair.wire_down[0]).seq
    assert str(seq) == received.command_id
    assert case.received == with_id(received)
    pair.device_sends(CommandAcknowledged(command_id=received.command_id, phy_id=GATEWAY),
                      T0 + 1)
    pair.tick(T0 + 100)  # nothing is due any more: no retransmission, no timeout

    reply = last_up(pair)
    assert isinstance(reply, case.reply)
    assert [CommandAcknowledged(**ids(), reply=reply, **case.details)] == outcomes(
        pair.server_events)
    assert seq == BkvFrame.decode(pair.wire_up[-1]).seq
    assert 1 == len(pair.wire_down)
    assert pair.server.next_deadline() is None


@pytest.mark.parametrize("command", [
    StartOta(**ids(), ftp_host="101.37.145.162", file_name="GV.8r12.OTA"),
    SendMessage(**ids(), message=OtaUpgrade(target=1, ftp_ip="101.37.145.162", ftp_port=21,
                                            file_name="GV.8r12.OTA")),
], ids=["StartOta", "SendMessage"])
def test_ota_has_no_answer_and_is_acknowledged_once_written(command: Command) -> None:
    pair = DevicePair(BKV, GATEWAY)

    [received] = pair.server_sends(command, T0)
    events = pair.tick(T0)

    assert StartOta(**ids(), ftp_host="101.37.145.162", file_name="GV.8r12.OTA") == with_id(
        received)
    assert [CommandAcknowledged(**ids())] == outcomes(events)
    assert [] == pair.tick(T0 + 100)
    with pytest.raises(LocalProtocolError, match="OTA orders get none"):
        pair.device.send(CommandAcknowledged(command_id=received.command_id, phy_id=GATEWAY),
                         T0 + 1)


#: Commands bkv.md gives no refusal for (no result field in their answer).
NO_REFUSAL = ("0x1D status query", "0x1D as a message", "0x0A network delete (GN without a layout)")
REJECTABLE = [case for case in CASES if case.id not in NO_REFUSAL]


@pytest.mark.parametrize("raw_code", [None, 2])
@pytest.mark.parametrize("case", REJECTABLE, ids=[case.id for case in REJECTABLE])
def test_a_rejection_ends_the_command_once(case: Case, raw_code: int | None) -> None:
    pair = DevicePair(BKV, GATEWAY)
    [received] = pair.server_sends(case.command, T0)

    pair.device_sends(CommandRejected(command_id=received.command_id, phy_id=GATEWAY,
                                      reason="port_busy", raw_code=raw_code), T0 + 1)
    pair.tick(T0 + 100)

    assert [CommandRejected(**ids(), reason="device_rejected",
                            raw_code=raw_code or 0)] == outcomes(pair.server_events)
    assert [] == [e for e in pair.server_events if isinstance(e, ParamsReported)]


@pytest.mark.parametrize("case", [BY_ID[case_id] for case_id in NO_REFUSAL], ids=NO_REFUSAL)
def test_commands_without_a_documented_refusal_cannot_be_refused(case: Case) -> None:
    pair = DevicePair(BKV, GATEWAY)
    [received] = pair.server_sends(case.command, T0)

    with pytest.raises(LocalProtocolError, match="no refusal"):
        pair.device.send(CommandRejected(command_id=received.command_id, phy_id=GATEWAY,
                                         reason="x"), T0)
    # The command is still open: the gateway can still answer it.
    pair.device_sends(CommandAcknowledged(command_id=received.command_id, phy_id=GATEWAY),
                      T0 + 1)
    assert ["CommandAcknowledged"] == [type(e).__name__ for e in outcomes(pair.server_events)]


def test_a_rejection_with_the_ok_code_is_refused() -> None:
    pair = DevicePair(BKV, GATEWAY)
    [received] = pair.server_sends(BY_ID["0x1011 param set"].command, T0)

    with pytest.raises(LocalProtocolError, match="raw_code 1 means OK"):
        pair.device.send(CommandRejected(command_id=received.command_id, phy_id=GATEWAY,
                                         reason="x", raw_code=1), T0)


TRACKED = list(CASES)


@pytest.mark.parametrize("case", TRACKED, ids=[case.id for case in TRACKED])
def test_unanswered_command_is_resent_once_with_the_same_seq_then_times_out(
        case: Case) -> None:
    pair = DevicePair(BKV, GATEWAY)
    pair.server_sends(case.command, T0)

    assert [] == outcomes(pair.tick(T0 + 9.9))
    assert [] == outcomes(pair.tick(T0 + 10))
    timed_out = pair.tick(T0 + 20)
    later = pair.tick(T0 + 100)

    assert [CommandTimedOut(**ids(), attempts=2)] == outcomes(timed_out)
    assert [] == later
    first, again = pair.wire_down
    assert first == again
    assert [str(BkvFrame.decode(first).seq)] * 2 == [i.command_id for i in pair.device_inputs]


def test_a_dropped_connection_ends_queued_and_sent_commands_once() -> None:
    server = ServerConnection(protocol=BKV)
    server.send(QueryStatus(**ids("a")), T0)
    server.send(QueryStatus(**ids("b")), T0)
    server.data_to_send()

    events = server.receive_eof()

    assert [CommandDropped(**ids("a")), CommandDropped(**ids("b"))] == events


# --- answers real gateways send (the vectors) -----------------------------------------

@pytest.mark.parametrize(("command", "answer_id", "reply"), [
    (QueryStatus(**ids(phy_id="86004459453005")), "socket-status-reply-vendor", SocketStatus),
    (QueryStatus(**ids(phy_id=OTHER)), "status-report-gw382-idle-a", StatusReport),
    (SetNetworkList(**ids(phy_id="86004459453005"), sockets=SOCKETS, channel=4),
     "network-refresh-ack-vendor", NetworkRefreshAck),
    (SetNetworkList(**ids(phy_id=OTHER), sockets=SOCKETS, channel=4),
     "network-refresh-ack-gw382", NetworkRefreshAck),
    (StartCharging(**ids(phy_id="86004459453005"), socket_no=2, port_no=1, order_no="THD1",
                   mode=ChargeMode.TIME, duration_s=240 * 60),
     "charge-control-ack-vendor", ChargeControlAck),
    (SendMessage(**ids(phy_id="86004459453005"), message=vector_message(
        "card-order-time-vendor")), "card-order-ack-vendor", CardOrderAck),
])
def test_the_answers_gateways_send_end_their_command(command: Command, answer_id: str,
                                                      reply: type[Any]) -> None:
    vector = VECTORS[answer_id]
    message_ids = MessageIds(modulus=0x1_0000_0000)
    message_ids.seed(command.phy_id, vector["expect"]["seq"] - 1)  # the command's seq
    server = ServerConnection(protocol=BKV, message_ids=message_ids)
    server.send(command, T0)
    server.data_to_send()

    events = server.receive_data(bytes.fromhex(vector["hex"]), T0 + 3)

    answer = vector_message(answer_id)
    assert isinstance(answer, reply)
    [outcome] = outcomes(events)
    assert CommandAcknowledged(**ids(phy_id=command.phy_id), reply=answer) == dataclasses.replace(
        outcome, business_no=None, port_no=None)


def test_a_status_report_answers_a_status_query_as_a_real_gateway_does() -> None:
    # bkv.md §11 A22: the gateway answers 0x1D with a 0x1017 report, seq 0.
    pair = DevicePair(BKV, GATEWAY)
    [query] = pair.server_sends(QueryStatus(**ids(), socket_no=1), T0)
    report = StatusReport(sockets=(SocketCluster(
        socket_no=1, socket_version=b"\xff\xff", temperature_c=29, rssi=30,
        ports=(PortGroup(port=0, status=0x80, business_no=0, voltage_dv=2297, power_dw=0,
                         current_ma=0, energy_wh=0, duration_min=0),)),))

    events = pair.device_sends(CommandAcknowledged(command_id=query.command_id,
                                                   phy_id=GATEWAY, reply=report), T0 + 1)

    assert 0 == BkvFrame.decode(pair.wire_up[-1]).seq
    assert ["PortStatusReported", "CommandAcknowledged"] == [type(e).__name__ for e in events]
    assert [CommandAcknowledged(**ids(), reply=report)] == outcomes(pair.server_events)
    assert isinstance(BkvFrame.decode(pair.wire_down[-1]).message, StatusReportAck)


def test_a_report_of_another_socket_does_not_answer_the_query() -> None:
    pair = DevicePair(BKV, GATEWAY)
    pair.server_sends(QueryStatus(**ids(), socket_no=2), T0)

    events = pair.device_sends(PortStatusReported(
        phy_id=GATEWAY, socket_no=1, port_no=1, state=PortState.IDLE, raw_status=0x80), T0 + 1)

    assert [] == outcomes(events)
    assert pair.server.next_deadline() == T0 + 10


def test_a_port_status_report_answers_the_query_through_the_neutral_event() -> None:
    pair = DevicePair(BKV, GATEWAY)
    pair.server_sends(QueryStatus(**ids(), socket_no=1), T0)

    events = pair.device_sends(PortStatusReported(
        phy_id=GATEWAY, socket_no=1, port_no=2, state=PortState.IDLE, raw_status=0x80), T0 + 1)

    [outcome] = outcomes(events)
    assert isinstance(outcome, CommandAcknowledged)
    assert isinstance(outcome.reply, StatusReport)


def test_an_answer_echoing_only_the_bkv_seq_ends_its_command() -> None:
    server = ServerConnection(protocol=BKV)
    server.send(SetParams(**ids(), params={"power_limit_dw": 7000}), T0)
    sent = BkvFrame.decode(server.data_to_send())
    assert isinstance(sent.message, ParamSet)
    assert sent.seq == sent.message.bkv_seq
    answer = BkvFrame(gateway_id=GATEWAY, seq=0,
                      message=ParamSetAck(socket_no=1, ack=1, bkv_seq=sent.seq))

    events = server.receive_data(answer.encode(), T0 + 1)

    assert [CommandAcknowledged(**ids(), reply=answer.message)] == outcomes(events)


@pytest.mark.parametrize("case", [BY_ID["0x1B voice windows as a message"],
                                  BY_ID["0x07 start by time"],
                                  BY_ID["0x1011 param set"]], ids=["0x1B", "0x07", "0x1011"])
def test_a_repeated_answer_is_no_second_outcome(case: Case) -> None:
    pair = DevicePair(BKV, GATEWAY)
    [received] = pair.server_sends(case.command, T0)
    pair.device_sends(CommandAcknowledged(command_id=received.command_id, phy_id=GATEWAY),
                      T0 + 1)

    again = pair.server.receive_data(pair.wire_up[-1], T0 + 2)

    assert ["UnknownMessage"] == [type(e).__name__ for e in again]
    assert 1 == len(outcomes(pair.server_events))


def test_answers_to_no_command_are_reported_as_what_they_are() -> None:
    server = ServerConnection(protocol=BKV)
    frames = [
        UnknownGnMessage(direction=Direction.UP, sub_command=0x0A, params=b"\x01"),
        SocketStatus(socket_no=1, socket_version=b"\xff\xff", temperature_c=30, rssi=30,
                     ports=()),
        ParamQueryReply(socket_no=1, ack=1, power_limit_dw=7000),
    ]

    events = [server.receive_data(BkvFrame(gateway_id=GATEWAY, seq=77, message=message)
                                  .encode(), T0) for message in frames]

    assert [[UnknownMessage(phy_id=GATEWAY, name="unknown_gn_message", data=BkvFrame(
        gateway_id=GATEWAY, seq=77, message=frames[0]).encode())], [],
        [ParamsReported(phy_id=GATEWAY, socket_no=1, params={"power_limit_dw": 7000})]] == events


def test_a_gateway_may_report_parameters_unasked() -> None:
    pair = DevicePair(BKV, GATEWAY)

    events = pair.device_sends(ParamsReported(phy_id=GATEWAY, params={"power_limit_dw": 1}), T0)

    assert [ParamsReported(phy_id=GATEWAY, socket_no=1, params={"power_limit_dw": 1})] == events
    assert 0 == BkvFrame.decode(pair.wire_up[-1]).seq


def test_the_device_sends_the_exact_reply_it_is_given() -> None:
    pair = DevicePair(BKV, GATEWAY)
    [received] = pair.server_sends(BY_ID["0x1007 fee control"].command, T0)
    reply = FeeControlAck(ack=1, socket_no=1, port=0, business_no=0x33, bkv_seq=1)

    pair.device_sends(CommandAcknowledged(command_id=received.command_id, phy_id=GATEWAY,
                                          reply=reply), T0 + 1)

    assert reply == last_up(pair)
    assert [CommandAcknowledged(**ids(), reply=reply, business_no=0x33, port_no=1)] == (
        outcomes(pair.server_events))


@pytest.mark.parametrize(("reply", "match"), [
    (VoiceConfig(socket_no=1, port=0, buzzer_on=1, voice_on=1, windows=()), "sent by servers"),
    (Ap3000Reboot(), "not a BKV message"),
])
def test_a_reply_must_be_a_bkv_uplink(reply: Any, match: str) -> None:
    pair = DevicePair(BKV, GATEWAY)
    [received] = pair.server_sends(BY_ID["0x1B voice windows as a message"].command, T0)

    with pytest.raises(LocalProtocolError, match=match):
        pair.device.send(CommandAcknowledged(command_id=received.command_id, phy_id=GATEWAY,
                                             reply=reply), T0 + 1)


# --- spacing ---------------------------------------------------------------------------

def test_a_second_command_to_a_gateway_waits_for_the_first_answer() -> None:
    pair = DevicePair(BKV, GATEWAY)
    [first] = pair.server_sends(QueryStatus(**ids("a")), T0)
    assert [] == pair.server_sends(SendMessage(**ids("b"), message=VOICE_WINDOWS), T0 + 0.1)
    pair.tick(T0 + 5)
    assert 1 == len(pair.wire_down)

    pair.device_sends(CommandAcknowledged(command_id=first.command_id, phy_id=GATEWAY), T0 + 6)

    assert isinstance(pair.device_inputs[-1], SendMessage)
    assert 2 == len(pair.wire_down)


def test_an_early_answer_still_leaves_half_a_second_before_the_next_command() -> None:
    pair = DevicePair(BKV, GATEWAY)
    [first] = pair.server_sends(QueryStatus(**ids("a")), T0)
    pair.server_sends(QueryParams(**ids("b")), T0)

    pair.device_sends(CommandAcknowledged(command_id=first.command_id, phy_id=GATEWAY), T0 + 0.1)
    assert 1 == len(pair.wire_down)
    assert T0 + 0.5 == pair.server.next_deadline()
    pair.tick(T0 + 0.5)

    assert isinstance(pair.device_inputs[-1], QueryParams)


def test_commands_to_gateways_on_one_connection_go_half_a_second_apart() -> None:
    server = ServerConnection(protocol=BKV)
    third = "82231214002700"
    server.send(QueryStatus(**ids("a", GATEWAY)), T0)
    server.send(SendMessage(**ids("b", OTHER), message=VOICE_WINDOWS), T0)
    server.send(SetParams(**ids("c", third), params={"buzzer_on": 0, "voice_on": 0}), T0)
    written = [(T0, server.data_to_send())]
    while (deadline := server.next_deadline()) is not None and deadline < T0 + 5:
        server.handle_timeout(deadline)
        written.append((deadline, server.data_to_send()))

    frames = [(at, BkvFrame.decode(data)) for at, data in written]
    assert [(T0, GATEWAY), (T0 + 0.5, OTHER), (T0 + 1.0, third)] == [
        (at, frame.gateway_id) for at, frame in frames]
    # Each gateway counts its own seq, and an answer names its gateway.
    assert [1, 1, 1] == [frame.seq for _, frame in frames]
    events = server.receive_data(BkvFrame(gateway_id=OTHER, seq=1, message=VoiceConfigAck(
        socket_no=254, port=1, result=1)).encode(), T0 + 1.5)
    assert [CommandAcknowledged(**ids("b", OTHER), reply=VoiceConfigAck(
        socket_no=254, port=1, result=1))] == outcomes(events, "b")
    assert [] == outcomes(events, "a") + outcomes(events, "c")


# --- SetParams and QueryParams -----------------------------------------------------------

def sent_message(command: Command) -> Any:
    server = ServerConnection(protocol=BKV)
    server.send(command, T0)
    return BkvFrame.decode(server.data_to_send()).message


@pytest.mark.parametrize(("params", "socket_no", "expected"), [
    ({"power_limit_dw": 7000, "no_load_delay_s": 120}, 2,
     ParamSet(socket_no=2, power_limit_dw=7000, no_load_delay_s=120, bkv_seq=1)),
    ({"high_temp_threshold_c": 255, "full_power_threshold_dw": 0}, 1,
     ParamSet(socket_no=1, high_temp_threshold_c=255, full_power_threshold_dw=0, bkv_seq=1)),
    ({"buzzer_on": 0, "voice_on": 1}, 3,
     VoiceConfig(socket_no=3, port=0, buzzer_on=0, voice_on=1, windows=ALL_DAY)),
    ({"buzzer_on": 1, "voice_on": 1}, 254,
     VoiceConfig(socket_no=254, port=0, buzzer_on=1, voice_on=1, windows=ALL_DAY)),
])
def test_set_params_picks_the_command_from_the_names(params: dict[str, int], socket_no: int,
                                                      expected: BkvMessage) -> None:
    assert expected == sent_message(SetParams(**ids(), socket_no=socket_no, params=params))


@pytest.mark.parametrize(("params", "socket_no", "match"), [
    ({"max_power_w": 500, "power_limit_dw": 1}, 1, "not known: max_power_w; settable: "),
    ({"power_limit_dw": 7000, "voice_on": 1, "buzzer_on": 1}, 1,
     r"spans two BKV commands.*param_set \(BKV 0x1011\) sets power_limit_dw; "
     r"voice_config \(GN 0x1B\) sets buzzer_on, voice_on"),
    ({"buzzer_on": 1}, 1, "voice_on missing"),
    ({"power_limit_dw": 70000}, 1, "power_limit_dw must be 0-65535, not 70000"),
    ({"high_temp_threshold_c": 300}, 1, "high_temp_threshold_c must be 0-255"),
    ({"buzzer_on": 2, "voice_on": 1}, 1, "buzzer_on must be 0-1"),
    ({"power_limit_dw": 1}, 0, "ParamSet.socket_no must be 1-250, not 0"),
    ({"buzzer_on": 1, "voice_on": 1}, 251, "VoiceConfig.socket_no must be 1-250, not 251"),
])
def test_set_params_refusals_name_the_fields(params: dict[str, int], socket_no: int,
                                             match: str) -> None:
    server = ServerConnection(protocol=BKV)

    with pytest.raises(LocalProtocolError, match=match):
        server.send(SetParams(**ids(), socket_no=socket_no, params=params), T0)
    assert b"" == server.data_to_send()
    server.send(QueryStatus(**ids()), T0)
    assert 1 == BkvFrame.decode(server.data_to_send()).seq  # no seq was used up


@pytest.mark.parametrize("names", [(), ("power_limit_dw", "anti_pulse_time", "key_base_amount")])
def test_query_params_reports_then_acknowledges(names: tuple[str, ...]) -> None:
    pair = DevicePair(BKV, GATEWAY)
    [query] = pair.server_sends(QueryParams(**ids(), socket_no=2, names=names), T0)
    values = {"power_limit_dw": 7000, "anti_pulse_time": 45, "key_base_amount": 100,
              "trickle_threshold_pct": 10}

    events = pair.device_sends(ParamsReported(phy_id=GATEWAY, socket_no=2,
                                              command_id=query.command_id, params=values), T0 + 1)

    assert ParamQuery(socket_no=2, bkv_seq=1) == BkvFrame.decode(pair.wire_down[0]).message
    reply = last_up(pair)
    assert [ParamsReported(phy_id=GATEWAY, socket_no=2, command_id="c", params=values),
            CommandAcknowledged(**ids(), reply=reply)] == events


@pytest.mark.parametrize(("names", "match"), [
    (("buzzer_on",), "no BKV query reports buzzer_on; param_query"),
    (("power_limit_dw", "nonsense", "max_power_w"), "no BKV query reports max_power_w, nonsense;"),
])
def test_query_params_refuses_names_no_query_reports(names: tuple[str, ...],
                                                     match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        ServerConnection(protocol=BKV).send(QueryParams(**ids(), names=names), T0)


def test_the_device_reports_only_what_a_query_reply_carries() -> None:
    pair = DevicePair(BKV, GATEWAY)
    [query] = pair.server_sends(QueryParams(**ids()), T0)

    with pytest.raises(LocalProtocolError, match="cannot carry buzzer_on"):
        pair.device.send(ParamsReported(phy_id=GATEWAY, command_id=query.command_id,
                                        params={"buzzer_on": 1}), T0)
    with pytest.raises(LocalProtocolError, match="no parameter query 'x'"):
        pair.device.send(ParamsReported(phy_id=GATEWAY, command_id="x", params={}), T0)


# --- validation at construction ------------------------------------------------------------

def power(count: int, **changes: Any) -> PowerControl:
    """A power-tier order with *count* tiers."""
    message = PowerControl(socket_no=1, port=0, switch=1, amount_fen=100, tiers=tuple(
        PowerTier(max_power_dw=2000, price_fen=25, duration_min=60) for _ in range(count)))
    return dataclasses.replace(message, **changes)


CONTROL = ChargeControl(socket_no=1, port=0, switch=1, mode=1, duration_min=60, energy_wh=0)
FEE = vector_message("fee-control-vendor-fixed")
OTA = OtaUpgrade(target=1, ftp_ip="101.37.145.162", ftp_port=21, file_name="GV.8r12.OTA")
MAC = bytes.fromhex("450030700247")


@pytest.mark.parametrize(("message", "match"), [
    (NetworkRefresh(channel=16, sockets=()), r"NetworkRefresh\.channel must be 1-15, not 16"),
    (NetworkRefresh(channel=0, sockets=()), r"NetworkRefresh\.channel must be 1-15, not 0"),
    (NetworkRefresh(channel=1, sockets=tuple(NetworkSocket(socket_no=n % 250 + 1, mac=MAC)
                                            for n in range(251))),
     r"NetworkRefresh\.sockets must list at most 250 sockets"),
    (NetworkRefresh(channel=1, sockets=(NetworkSocket(socket_no=1, mac=b"\x01" * 5),)),
     r"NetworkRefresh\.sockets\[0\]\.mac must be 6 bytes"),
    (NetworkRefresh(channel=1, sockets=(NetworkSocket(socket_no=251, mac=MAC),)),
     r"NetworkRefresh\.sockets\[0\]\.socket_no must be 1-250"),
    (NetworkRefresh(channel=1, sockets=(NetworkSocket(socket_no=2, mac=MAC),
                                        NetworkSocket(socket_no=2, mac=MAC))),
     r"NetworkRefresh\.sockets\[1\]\.socket_no must be unique"),
    (NetworkAdd(socket_no=0, mac=MAC), r"NetworkAdd\.socket_no must be 1-250, not 0"),
    (NetworkAdd(socket_no=1, mac=b""), r"NetworkAdd\.mac must be 6 bytes"),
    (StatusQuery(socket_no=251), r"StatusQuery\.socket_no must be 1-250"),
    (dataclasses.replace(CONTROL, port=2), r"ChargeControl\.port must be 0-1, not 2"),
    (dataclasses.replace(CONTROL, switch=2), r"ChargeControl\.switch must be 0-1"),
    (dataclasses.replace(CONTROL, duration_min=901), r"ChargeControl\.duration_min must be 1-900"),
    (dataclasses.replace(CONTROL, duration_min=0), r"ChargeControl\.duration_min must be 1-900"),
    (dataclasses.replace(CONTROL, mode=2), r"ChargeControl\.mode must be 0-1"),
    (dataclasses.replace(CONTROL, mode=0, duration_min=0),
     r"ChargeControl\.energy_wh must be 1-65535, not 0"),
    (dataclasses.replace(CONTROL, energy_wh=70000), r"ChargeControl\.energy_wh must be 0-65535"),
    (power(6), r"PowerControl\.tiers must hold 1-5 power tiers, not 6"),
    (power(0), r"PowerControl\.tiers must hold 1-5 power tiers, not 0"),
    (power(1, amount_fen=-1), r"PowerControl\.amount_fen must be 0-65535"),
    (power(1, tiers=(PowerTier(max_power_dw=2000, price_fen=70000, duration_min=60),)),
     r"PowerControl\.tiers\[0\]\.price_fen must be 0-65535"),
    (dataclasses.replace(POWER_CARD_ORDER, amount_fen=None),
     r"CardOrder\.tiers need amount_fen"),
    (dataclasses.replace(POWER_CARD_ORDER, amount_fen=None, tiers=()),
     r"CardOrder\.amount_fen is required by a by-power order"),
    (dataclasses.replace(POWER_CARD_ORDER, mode=1), r"CardOrder\.amount_fen is for by-power"),
    (dataclasses.replace(POWER_CARD_ORDER, tiers=()), r"CardOrder\.tiers must hold 1-5"),
    (dataclasses.replace(POWER_CARD_ORDER, business_no=0x10000),
     r"CardOrder\.business_no must be 0-65535"),
    (dataclasses.replace(VOICE_WINDOWS, windows=ALL_DAY * 3),
     r"VoiceConfig\.windows must hold at most 2 windows, not 3"),
    (dataclasses.replace(VOICE_WINDOWS, windows=(VoiceWindow(start="08:00", end="24:00"),)),
     r"VoiceConfig\.windows\[0\]\.end must be a time of day hh:mm"),
    (dataclasses.replace(VOICE_WINDOWS, windows=(VoiceWindow(start="8h", end="12:00"),)),
     r"VoiceConfig\.windows\[0\]\.start must be a time of day"),
    (dataclasses.replace(VOICE_WINDOWS, voice_on=2), r"VoiceConfig\.voice_on must be 0-1"),
    (dataclasses.replace(VOICE_WINDOWS, port=3), r"VoiceConfig\.port must be 0-1"),
    (dataclasses.replace(VOICE_WINDOWS, socket_no=253), r"VoiceConfig\.socket_no must be 1-250"),
    (dataclasses.replace(OTA, file_name="GV.8r12.OTA.bin"),
     r"OtaUpgrade\.file_name must be 1-13 printable ASCII characters"),
    (dataclasses.replace(OTA, file_name=""), r"OtaUpgrade\.file_name must be 1-13"),
    (dataclasses.replace(OTA, file_name="fw\u00e9.bin"), r"OtaUpgrade\.file_name must be 1-13"),
    (dataclasses.replace(OTA, ftp_ip="101.37.145"), r"OtaUpgrade\.ftp_ip must be a dotted IPv4"),
    (dataclasses.replace(OTA, ftp_ip="101.37.145.256"), r"OtaUpgrade\.ftp_ip must be a dotted"),
    (dataclasses.replace(OTA, ftp_port=0), r"OtaUpgrade\.ftp_port must be 1-65535"),
    (dataclasses.replace(OTA, target=256), r"OtaUpgrade\.target must be 0-255"),
    (dataclasses.replace(FEE, fee_tiers=(FeeTier(end="22:00", electricity_price_fen=50,
                                                 service_price_fen=50),)),
     r"FeeControl\.fee_tiers\[0\]\.end must be 23:59"),
    (dataclasses.replace(FEE, socket_no=None), r"FeeControl\.socket_no is required \(1-250\)"),
    (dataclasses.replace(FEE, switch=3), r"FeeControl\.switch must be 0-1"),
    (dataclasses.replace(FEE, fee_tier_count=2), r"FeeControl\.fee_tier_count must equal the 1"),
    (dataclasses.replace(FEE, service_fee_mode=2), r"FeeControl\.service_fee_mode must be 0-1"),
    (dataclasses.replace(FEE, fee_tiers=(FeeTier(end="23:59", electricity_price_fen=70000,
                                                 service_price_fen=0),)),
     r"FeeControl\.fee_tiers\[0\]\.electricity_price_fen must be 0-65535"),
    (ParamSet(socket_no=1), "ParamSet sets nothing"),
    (ParamSet(socket_no=1, power_limit_dw=70000), r"ParamSet\.power_limit_dw must be 0-65535"),
    (ParamSet(power_limit_dw=1), r"ParamSet\.socket_no is required"),
    (ParamQuery(), r"ParamQuery\.socket_no is required"),
    (UnknownGnMessage(direction=Direction.DOWN, sub_command=0x07, params=b""),
     "has a message class: send a ChargeControl"),
    (UnknownGnMessage(direction=Direction.DOWN, sub_command=0x02, params=b"\x01\x01"),
     "is a gateway's charge_end"),
])
def test_invalid_messages_are_refused_at_construction_naming_the_field(
        message: BkvMessage, match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        SendMessage(**ids(), message=message)


@pytest.mark.parametrize("message", [
    HeartbeatAck(time=BcdTime(bytes.fromhex("20200730164545"))),
    ChargeEndAck(socket_no=1, result=1),
    CardBalanceReply(socket_no=1, port=0, card_no=bytes(6), balance_fen=0),
    StatusReportAck(ack=1),
    FeeChargeEndAck(ack=1, socket_no=1, port=0),
    ExceptionReportAck(socket_no=1, ack=1),
], ids=lambda message: type(message).__name__)
def test_answers_to_uplinks_are_not_commands(message: BkvMessage) -> None:
    with pytest.raises(LocalProtocolError, match="it is not a command: the connection sends it"):
        SendMessage(**ids(), message=message)


@pytest.mark.parametrize(("message", "match"), [
    (ChargeControlAck(result=1, socket_no=1, port=0, business_no=1), "sent by devices"),
    (UnknownCommand(direction=Direction.DOWN, command=0x0001, payload=b""),
     "not a command a server sends"),
    (UnknownBkvPacket(direction=Direction.DOWN, bkv_cmd=0x1009), "not a command a server sends"),
], ids=lambda message: type(message).__name__)
def test_uplinks_and_unknown_commands_are_not_commands(message: BkvMessage, match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        SendMessage(**ids(), message=message)


@pytest.mark.parametrize("vector_id", [
    v["id"] for v in VECTORS.values() if v["direction"] == "downlink"
    and v["expect"]["message"] not in ("heartbeat_ack", "status_report_ack", "charge_end_ack")])
def test_every_command_the_vectors_hold_is_a_valid_send_message(vector_id: str) -> None:
    SendMessage(**ids(), message=vector_message(vector_id))


@pytest.mark.parametrize(("command", "match"), [
    (SendMessage(**ids(), message=Ap3000Reboot()), "not a BKV message"),
    (StopCharging(**ids(), port_no=3), "ports 1 and 2, not 3"),
    (StartCharging(**ids(), port_no=3, order_no="A", mode=ChargeMode.TIME, duration_s=60),
     "ports 1 and 2, not 3"),
    (StartCharging(**ids(), socket_no=251, port_no=1, order_no="A", mode=ChargeMode.TIME,
                   duration_s=60), r"ChargeControl\.socket_no must be 1-250"),
    (StartCharging(**ids(), port_no=1, order_no="A", mode=ChargeMode.ENERGY, energy_wh=70000),
     r"ChargeControl\.energy_wh must be 0-65535"),
    (StartCharging(**ids(), port_no=1, order_no="A", mode=ChargeMode.POWER_TIERS,
                   power_tiers=(PowerTierSpec(max_power_w=7000, price_cents=1, minutes=1),)),
     r"power_tiers\[0\]\.max_power_w must be 0-6553"),
    (QueryStatus(**ids(), socket_no=0), r"StatusQuery\.socket_no must be 1-250"),
    (StartOta(**ids(), ftp_host="ftp.example.com", file_name="fw.bin"),
     r"OtaUpgrade\.ftp_ip must be a dotted IPv4 address"),
])
def test_invalid_neutral_commands_are_refused_when_sent(command: Command, match: str) -> None:
    server = ServerConnection(protocol=BKV)

    with pytest.raises(LocalProtocolError, match=match):
        server.send(command, T0)
    assert b"" == server.data_to_send()


# --- what the gateway receives -------------------------------------------------------

EXPECTED_INPUT: dict[str, type[Any]] = {
    "heartbeat_ack": ServerAnswered, "status_report_ack": ServerAnswered,
    "charge_end_ack": ServerAnswered, "status_query": QueryStatus,
    "network_refresh": SetNetworkList, "network_add": SetNetworkList,
    "charge_control": StartCharging, "power_control": StartCharging,
    "fee_control": SendMessage, "card_order": CardAnswered, "param_set": SetParams,
    "param_query": QueryParams,
}


@pytest.mark.parametrize("vector_id", [v["id"] for v in VECTORS.values()
                                       if v["direction"] == "downlink"])
def test_the_gateway_receives_every_downlink_vector(vector_id: str) -> None:
    vector = VECTORS[vector_id]
    pair = DevicePair(BKV, vector["expect"]["gateway_id"])

    [received] = pair._to_device(bytes.fromhex(vector["hex"]), T0)

    assert EXPECTED_INPUT[vector["expect"]["message"]] is type(received)


@pytest.mark.parametrize(("message", "expected"), [
    # A neutral command would drop the unknown item, the extra bytes, the windows.
    (ParamSet(socket_no=1, power_limit_dw=1), SetParams),
    (ParamSet(socket_no=1, power_limit_dw=1, unknown=(BkvItem(key=0x98, value=b"\x01"),)),
     SendMessage),
    (dataclasses.replace(CONTROL, extra=b"\x00"), SendMessage),
    (VoiceConfig(socket_no=1, port=0, buzzer_on=1, voice_on=1, windows=ALL_DAY), SetParams),
    (VoiceConfig(socket_no=1, port=1, buzzer_on=1, voice_on=1, windows=ALL_DAY), SendMessage),
    (VoiceConfig(socket_no=1, port=0, buzzer_on=1, voice_on=1, windows=()), SendMessage),
    (power(2, switch=0), SendMessage),
    (power(1, tiers=(PowerTier(max_power_dw=2005, price_fen=1, duration_min=1),)), SendMessage),
    (dataclasses.replace(CONTROL, switch=0, mode=7), StopCharging),
])
def test_a_downlink_is_the_neutral_command_only_when_that_says_everything(
        message: BkvMessage, expected: type[Any]) -> None:
    pair = DevicePair(BKV, GATEWAY)

    [received] = pair.server_sends(SendMessage(**ids(), message=message), T0)

    assert expected is type(received)
    if isinstance(received, SendMessage):
        assert BkvFrame.decode(pair.wire_down[0]).message == received.message


@pytest.mark.parametrize("message", [
    dataclasses.replace(CONTROL, port=9),
    dataclasses.replace(CONTROL, mode=2),
    dataclasses.replace(CONTROL, switch=0, socket_no=0),
    NetworkRefresh(channel=1, sockets=(NetworkSocket(socket_no=251, mac=MAC),)),
    UnknownBkvPacket(direction=Direction.DOWN, bkv_cmd=0x1009),
], ids=["port 9", "mode 2", "stop socket 0", "socket 251", "BKV 0x1009"])
def test_a_downlink_that_is_no_valid_command_reaches_the_gateway_as_unknown(
        message: BkvMessage) -> None:
    pair = DevicePair(BKV, GATEWAY)
    frame = BkvFrame(gateway_id=GATEWAY, seq=5, message=message)

    [received] = pair._to_device(frame.encode(), T0)

    assert isinstance(received, UnknownMessage)
    assert frame.encode() == received.data
