"""Every AP3000 downlink command (ap3000.md §5, §6.6) through a paired server and
device connection: constructed, paced, received as the right DeviceInput, answered,
and ended by exactly one outcome event on the server."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, reject, settings

from bkvcodec import (
    ChargeMode,
    Command,
    CommandAcknowledged,
    CommandDropped,
    CommandRejected,
    CommandTimedOut,
    DeviceHeartbeat,
    DeviceRegistered,
    Direction,
    FirmwareTarget,
    LocalProtocolError,
    ModifyCharge,
    ParamsReported,
    PortStatusReported,
    ProtocolFamily,
    QueryParams,
    QueryStatus,
    SendFirmware,
    SendMessage,
    ServerConnection,
    SetParams,
    StartCharging,
    StopCharging,
    UnknownMessage,
)
from bkvcodec import ap3000 as a
from bkvcodec import bkv as b
from bkvcodec.testing import ap3000_messages

from .helpers import DevicePair

PHY = "04A228CD"
OTHER = "04A26CF3"
T0 = 1729407600.0
ORDER = "THD1729407600001"
ORDER_BYTES = ORDER.encode()
OUTCOMES = (CommandAcknowledged, CommandRejected, CommandTimedOut, CommandDropped)

P83 = {"unplug_power": 5, "unplug_detect_time_s": 12, "float_percent": 25,
       "float_detect_time_s": 1200, "float_time_s": 2400, "heartbeat_interval_s": 120}
P84 = {"dyn_overload_power": 900, "dyn_overload_detect_time_s": 40,
       "dyn_overload_start_time_s": 1500, "unplug_interference_power": 12,
       "unplug_interference_time_s": 200, "float_second_time_point_s": 9000,
       "float_second_detect_time_s": 250, "min_power": 280, "min_power_check_time_s": 1600,
       "second_max_power_time_s": 240, "env_alarm_temp_c": 75, "port_alarm_temp_c": 70,
       "unplug_detect_off": 0, "qr_light": 0}
P85 = {"max_charge_duration_s": 28800, "overload_power_0p1w": 15000}
P86 = {"card_sector": 1, "user_card_key": 0x010203040506, "new_card_key": 0xFFFFFFFFFFFF}
P97 = {"mute": 1}
#: What a fresh unit reports (the defaults of ap3000.md §5.4-§5.7).
D83 = {"unplug_power": 3, "unplug_detect_time_s": 10, "float_percent": 20,
       "float_detect_time_s": 1800, "float_time_s": 3600, "heartbeat_interval_s": 180}
D84 = {"dyn_overload_power": 800, "dyn_overload_detect_time_s": 30,
       "dyn_overload_start_time_s": 1800, "unplug_interference_power": 10,
       "unplug_interference_time_s": 300, "float_second_time_point_s": 10800,
       "float_second_detect_time_s": 300, "min_power": 300, "min_power_check_time_s": 1800,
       "second_max_power_time_s": 300, "env_alarm_temp_c": 80, "port_alarm_temp_c": 80,
       "unplug_detect_off": 0, "qr_light": 1}
D85 = {"max_charge_duration_s": 36000, "overload_power_0p1w": 20000,
       "over_voltage_0p1v": 2700, "under_voltage_0p1v": 1000}
D86 = {"card_sector": 0, "user_card_key": 0x159185191880, "new_card_key": 0xFFFFFFFFFFFF}

IDLE_HEARTBEAT = a.Ap3000Heartbeat(voltage_0p1v=2200, port_status=(0, 0), signal_strength=0,
                                   env_temp_raw=0)


def send(message: a.Ap3000Message) -> SendMessage:
    return SendMessage(command_id="c", phy_id=PHY, message=message)


def received(message: a.Ap3000Message, code: int) -> SendMessage:
    return SendMessage(command_id=f"{code:02x}-1", phy_id=PHY, message=message)


@dataclass(frozen=True)
class Case:
    """One downlink: the command sent, what the device receives, the reply the device
    role sends by default and the outcome the server reports."""

    name: str
    command: Command
    received: object
    reply: a.Ap3000Message | None
    port_no: int | None = None
    #: The ParamsReported the server reports before the acknowledgement (queries).
    params: dict[str, int] | None = None
    #: The device role answers on its own (firmware packets).
    auto: bool = False
    #: Other events the reply produces (0x81's heartbeat).
    reports: tuple[type, ...] = field(default=())


def _firmware(target: FirmwareTarget, reply: a.Ap3000Message) -> Case:
    image = bytes(range(10))
    return Case(f"{target.value:#04x} firmware", SendFirmware(
        command_id="c", phy_id=PHY, image=image, target=target),
        SendFirmware(command_id=f"{target.value:02x}-1", phy_id=PHY,
                     image=image.ljust(200, b"\0"), target=target), reply, auto=True)


CASES = [
    Case("0x81 query_status", QueryStatus(command_id="c", phy_id=PHY),
         QueryStatus(command_id="81-1", phy_id=PHY), IDLE_HEARTBEAT,
         reports=(DeviceHeartbeat, PortStatusReported, PortStatusReported)),
    Case("0x81 query_status as SendMessage", send(a.Ap3000QueryStatus()),
         QueryStatus(command_id="81-1", phy_id=PHY), IDLE_HEARTBEAT,
         reports=(DeviceHeartbeat, PortStatusReported, PortStatusReported)),
    Case("0x82 start", StartCharging(command_id="c", phy_id=PHY, port_no=1, order_no=ORDER,
                                     mode=ChargeMode.TIME, duration_s=3600),
         StartCharging(command_id="82-1", phy_id=PHY, port_no=1, order_no=ORDER,
                       mode=ChargeMode.TIME, duration_s=3600, amount_cents=0),
         a.Ap3000ChargeControlReply(result=0, order_no=ORDER_BYTES, port=0), port_no=1),
    Case("0x82 stop", StopCharging(command_id="c", phy_id=PHY, port_no=2, order_no=ORDER),
         StopCharging(command_id="82-1", phy_id=PHY, port_no=2, order_no=ORDER),
         a.Ap3000ChargeControlReply(result=0, order_no=ORDER_BYTES, port=1), port_no=2),
    Case("0x83 set_params_1_1", SetParams(command_id="c", phy_id=PHY, params=P83),
         SetParams(command_id="83-1", phy_id=PHY, params=P83),
         a.Ap3000SetParams11Reply(result=0)),
    Case("0x84 set_params_1_2", SetParams(command_id="c", phy_id=PHY, params=P84),
         SetParams(command_id="84-1", phy_id=PHY, params=P84),
         a.Ap3000SetParams12Reply(result=0)),
    Case("0x85 set_limits", SetParams(command_id="c", phy_id=PHY, params=P85),
         SetParams(command_id="85-1", phy_id=PHY, params=P85),
         a.Ap3000SetLimitsReply(result=0)),
    Case("0x85 set_limits as SendMessage", send(a.Ap3000SetLimits(
        max_charge_duration_s=28800, overload_power_0p1w=15000, over_voltage_0p1v=2600)),
         SetParams(command_id="85-1", phy_id=PHY, params={**P85, "over_voltage_0p1v": 2600}),
         a.Ap3000SetLimitsReply(result=0)),
    Case("0x86 set_card_params", SetParams(command_id="c", phy_id=PHY, params=P86),
         SetParams(command_id="86-1", phy_id=PHY, params=P86),
         a.Ap3000SetCardParamsReply(result=0)),
    Case("0x87 reboot", send(a.Ap3000Reboot()), received(a.Ap3000Reboot(), 0x87),
         a.Ap3000RebootReply(result=0)),
    Case("0x88 clear_memory", send(a.Ap3000ClearMemory()),
         received(a.Ap3000ClearMemory(), 0x88), a.Ap3000ClearMemoryReply(result=0)),
    Case("0x89 play_voice", send(a.Ap3000PlayVoice(interrupt=1, voice_ids=b"\x01\x07")),
         received(a.Ap3000PlayVoice(interrupt=1, voice_ids=b"\x01\x07"), 0x89),
         a.Ap3000PlayVoiceReply(result=0)),
    Case("0x8A modify_charge", ModifyCharge(command_id="c", phy_id=PHY, port_no=1,
                                            duration_s=1800),
         ModifyCharge(command_id="8a-1", phy_id=PHY, port_no=1, duration_s=1800),
         a.Ap3000ModifyChargeReply(result=0)),
    Case("0x8B read_eeprom", send(a.Ap3000ReadEeprom(address=0x0100, read_length=8)),
         received(a.Ap3000ReadEeprom(address=0x0100, read_length=8), 0x8B),
         a.Ap3000ReadEepromReply(result=0, eeprom_data=bytes(8))),
    Case("0x8C write_eeprom", send(a.Ap3000WriteEeprom(address=0x0100, write_length=2,
                                                       eeprom_data=b"\xab\xcd")),
         received(a.Ap3000WriteEeprom(address=0x0100, write_length=2,
                                      eeprom_data=b"\xab\xcd"), 0x8C),
         a.Ap3000WriteEepromReply(result=0)),
    Case("0x8D set_work_mode", send(a.Ap3000SetWorkMode(work_mode=1)),
         received(a.Ap3000SetWorkMode(work_mode=1), 0x8D), a.Ap3000SetWorkModeReply(result=0)),
    Case("0x8E set_qr_code", send(a.Ap3000SetQrCode(main_screen=1, reserved=bytes(3),
                                                    qr_text="https://e.example/40aace04")),
         received(a.Ap3000SetQrCode(main_screen=1, reserved=bytes(3),
                                    qr_text="https://e.example/40aace04"), 0x8E),
         a.Ap3000SetQrCodeReply(result=0)),
    Case("0x8F set_tc_card_mode", send(a.Ap3000SetTcCardMode(tc_mode=3)),
         received(a.Ap3000SetTcCardMode(tc_mode=3), 0x8F),
         a.Ap3000SetTcCardModeReply(result=0)),
    Case("0x90 query_params_1_1", QueryParams(command_id="c", phy_id=PHY),
         QueryParams(command_id="90-1", phy_id=PHY, names=tuple(D83)),
         a.Ap3000QueryParams11Reply(**D83), params=D83),
    Case("0x91 query_params_1_2", QueryParams(command_id="c", phy_id=PHY, names=("min_power",)),
         QueryParams(command_id="91-1", phy_id=PHY, names=tuple(D84)),
         a.Ap3000QueryParams12Reply(**D84), params=D84),
    Case("0x91 query_params_1_2 as SendMessage", send(a.Ap3000QueryParams12()),
         QueryParams(command_id="91-1", phy_id=PHY, names=tuple(D84)),
         a.Ap3000QueryParams12Reply(**D84), params=D84),
    Case("0x92 query_limits", QueryParams(command_id="c", phy_id=PHY,
                                          names=("over_voltage_0p1v", "max_charge_duration_s")),
         QueryParams(command_id="92-1", phy_id=PHY, names=tuple(D85)),
         a.Ap3000QueryLimitsReply(**D85), params=D85),
    Case("0x93 query_card_params", QueryParams(command_id="c", phy_id=PHY,
                                               names=("card_sector",)),
         QueryParams(command_id="93-1", phy_id=PHY, names=tuple(D86)),
         a.Ap3000QueryCardParamsReply(card_sector=0,
                                      user_card_key=bytes.fromhex("159185191880"),
                                      new_card_key=b"\xff" * 6), params=D86),
    Case("0x95 temp_qr_code", send(a.Ap3000TempQrCode(qr_text="PAY 1234")),
         received(a.Ap3000TempQrCode(qr_text="PAY 1234"), 0x95),
         a.Ap3000TempQrCodeReply(result=0)),
    Case("0x96 locate", send(a.Ap3000Locate(duration_s=10)),
         received(a.Ap3000Locate(duration_s=10), 0x96), a.Ap3000LocateReply(result=0)),
    Case("0x97 set_params_1_3", SetParams(command_id="c", phy_id=PHY, params=P97),
         SetParams(command_id="97-1", phy_id=PHY, params=P97),
         a.Ap3000SetParams13Reply(result=0)),
    Case("0x98 multi_function", send(a.Ap3000MultiFunction(function=0, port=3)),
         received(a.Ap3000MultiFunction(function=0, port=3), 0x98),
         a.Ap3000MultiFunctionReply(result=0)),
    _firmware(FirmwareTarget.SLAVE, a.Ap3000FirmwarePacketSlaveReply(result=0, packet_no=1)),
    _firmware(FirmwareTarget.POWER_BOARD,
              a.Ap3000FirmwarePacketPowerBoardReply(result=0, packet_no=1)),
    _firmware(FirmwareTarget.HOST, a.Ap3000FirmwarePacketHostReply(result=0, packet_no=1)),
    Case("0xE0 one packet as SendMessage", send(a.Ap3000FirmwarePacketSlave(
        total_packets=1, packet_no=1, firmware=bytes(200))),
         SendFirmware(command_id="e0-1", phy_id=PHY, image=bytes(200)),
         a.Ap3000FirmwarePacketSlaveReply(result=0, packet_no=1), auto=True),
    Case("0xE4 trigger_self_upgrade", send(a.Ap3000TriggerSelfUpgrade()),
         received(a.Ap3000TriggerSelfUpgrade(), 0xE4), None),
    Case("0xF8 legacy_firmware_packet", send(a.Ap3000LegacyFirmwarePacket(
        total_packets=1, packet_no=1, firmware=bytes(range(256)))),
         received(a.Ap3000LegacyFirmwarePacket(total_packets=1, packet_no=1,
                                               firmware=bytes(range(256))), 0xF8),
         a.Ap3000LegacyFirmwarePacketReply(result=0, packet_no=1)),
    Case("0x72 cabinet_stop", send(a.Ap3000CabinetStop(port=2, order_no=ORDER_BYTES)),
         received(a.Ap3000CabinetStop(port=2, order_no=ORDER_BYTES), 0x72),
         a.Ap3000CabinetStopReply(result=0, order_no=ORDER_BYTES)),
    Case("0x34 host_set_server", send(a.Ap3000HostSetServer(
        server_port=7055, module_type=3, socket_b_enable=1, server_address="iot.example.com")),
         received(a.Ap3000HostSetServer(server_port=7055, module_type=3, socket_b_enable=1,
                                        server_address="iot.example.com"), 0x34),
         a.Ap3000HostSetServerReply(result=0)),
]


def outcomes(events: list[object], command_id: str = "c") -> list[object]:
    return [e for e in events if isinstance(e, OUTCOMES) and e.command_id == command_id]


def downlinks(pair: DevicePair) -> list[a.Ap3000Frame]:
    return [a.Ap3000Frame.decode(data, Direction.DOWN) for data in pair.wire_down]


def uplinks(pair: DevicePair) -> list[a.Ap3000Frame]:
    return [a.Ap3000Frame.decode(data, Direction.UP) for data in pair.wire_up
            if data.startswith(b"DNY")]


def connected_pair(**options: object) -> DevicePair:
    pair = DevicePair(ProtocolFamily.AP3000, PHY, **options)
    pair.connect(T0 - 10)
    pair.server_events.clear()
    return pair


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_downlink_is_received_answered_and_ends_in_one_outcome(case: Case) -> None:
    pair = connected_pair()

    inputs = pair.server_sends(case.command, T0)
    if not case.auto:
        pair.device_sends(CommandAcknowledged(command_id=inputs[0].command_id, phy_id=PHY),
                          T0 + 1)
    pair.tick(T0 + 2)
    pair.tick(T0 + 100)  # long past every reply timeout
    pair.server_events += pair.server.receive_eof()

    assert [case.received] == inputs
    assert [CommandAcknowledged(command_id="c", phy_id=PHY, reply=case.reply,
                                port_no=case.port_no)] == outcomes(pair.server_events)
    before = [e for e in pair.server_events if not isinstance(e, OUTCOMES)]
    expected = [ParamsReported(phy_id=PHY, params=case.params, command_id="c")] if (
        case.params is not None) else []
    assert list(case.reports) == [type(e) for e in before if type(e) in case.reports]
    assert expected == [e for e in before if isinstance(e, ParamsReported)]
    if case.reply is not None and not isinstance(case.reply, a.Ap3000Heartbeat):
        request, answer = downlinks(pair)[0], uplinks(pair)[-1]
        assert (request.command, request.message_id) == (answer.command, answer.message_id)


@given(message=ap3000_messages(Direction.DOWN))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_any_downlink_the_device_answers_ends_in_exactly_one_acknowledgement(
        message: a.Ap3000Message) -> None:
    try:
        command = send(message)
    except (LocalProtocolError, a.Ap3000FrameSizeWarning):
        reject()  # beyond the documented limits: refused at construction
    pair = connected_pair()

    inputs = pair.server_sends(command, T0)
    for item in inputs:
        if isinstance(item, Command) and not isinstance(item, SendFirmware):
            pair.device_sends(CommandAcknowledged(command_id=item.command_id, phy_id=PHY),
                              T0 + 1)
    pair.tick(T0 + 1)
    pair.tick(T0 + 200)

    [outcome] = outcomes(pair.server_events)
    assert isinstance(outcome, CommandAcknowledged)


# --- rejections -------------------------------------------------------------------------

REJECTIONS = [
    (StartCharging(command_id="c", phy_id=PHY, port_no=1, order_no=ORDER,
                   mode=ChargeMode.UNTIL_FULL), 1, "no_charger"),
    (StartCharging(command_id="c", phy_id=PHY, port_no=1, order_no=ORDER,
                   mode=ChargeMode.UNTIL_FULL), 0x0F, "device_rejected"),
    (StopCharging(command_id="c", phy_id=PHY, port_no=1, order_no=ORDER), 2, "port_busy"),
    (SetParams(command_id="c", phy_id=PHY, params=P83), 1, "parameter_error"),
    (SetParams(command_id="c", phy_id=PHY, params=P84), 1, "parameter_error"),
    (SetParams(command_id="c", phy_id=PHY, params=P85), 1, "beyond_device_limits"),
    (SetParams(command_id="c", phy_id=PHY, params=P86), 1, "failed"),
    (SetParams(command_id="c", phy_id=PHY, params=P97), 7, "device_rejected"),
    (ModifyCharge(command_id="c", phy_id=PHY, port_no=1, duration_s=60), 1,
     "port_not_charging"),
    (ModifyCharge(command_id="c", phy_id=PHY, port_no=1, duration_s=60), 2,
     "value_below_current"),
    (ModifyCharge(command_id="c", phy_id=PHY, port_no=1, energy_wh=500), 3,
     "unknown_mode_or_port"),
    (send(a.Ap3000SetWorkMode(work_mode=1)), 1, "not_supported"),
    (send(a.Ap3000SetWorkMode(work_mode=1)), 2, "failed"),
    (send(a.Ap3000Reboot()), 1, "failed"),
    (send(a.Ap3000ReadEeprom(address=0, read_length=4)), 1, "failed"),
    (send(a.Ap3000Locate(duration_s=5)), 2, "device_rejected"),
    (send(a.Ap3000LegacyFirmwarePacket(total_packets=3, packet_no=2, firmware=bytes(256))),
     1, "packet_error"),
    (send(a.Ap3000CabinetStop(port=0, order_no=ORDER_BYTES)), 1, "failed"),
    (send(a.Ap3000HostSetServer(server_port=1, module_type=1, socket_b_enable=0,
                                server_address="h")), 1, "failed"),
]


@pytest.mark.parametrize(("command", "code", "reason"), REJECTIONS,
                         ids=[f"{type(c).__name__}-{code}" for c, code, _ in REJECTIONS])
def test_a_refusal_is_one_rejection_named_after_the_reference(command: Command, code: int,
                                                               reason: str) -> None:
    pair = connected_pair()
    [item] = pair.server_sends(command, T0)

    pair.device_sends(CommandRejected(command_id=item.command_id, phy_id=PHY, reason="x",
                                      raw_code=code), T0 + 1)
    pair.tick(T0 + 100)

    assert [CommandRejected(command_id="c", phy_id=PHY, reason=reason, raw_code=code)] == (
        outcomes(pair.server_events))
    assert code == getattr(uplinks(pair)[-1].message, "result", None)


def test_firmware_packet_refusals_are_named() -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    server.send(send(a.Ap3000FirmwarePacketHost(total_packets=2, packet_no=1,
                                                firmware=bytes(200))), T0)
    request = a.Ap3000Frame.decode(server.data_to_send(), Direction.DOWN)

    events = server.receive_data(request.reply(
        a.Ap3000FirmwarePacketHostReply(result=9, packet_no=0)).encode(), T0 + 1)

    assert [CommandRejected(command_id="c", phy_id=PHY, reason="firmware_refused",
                            raw_code=9)] == events


@pytest.mark.parametrize("command", [
    QueryStatus(command_id="c", phy_id=PHY),
    QueryParams(command_id="c", phy_id=PHY, names=("min_power",)),
    send(a.Ap3000TriggerSelfUpgrade()),
], ids=["0x81", "0x91", "0xE4"])
def test_a_command_whose_reply_has_no_result_cannot_be_refused(command: Command) -> None:
    pair = connected_pair()
    [item] = pair.server_sends(command, T0)

    with pytest.raises(LocalProtocolError, match="no result byte"):
        pair.device.send(CommandRejected(command_id=item.command_id, phy_id=PHY,
                                         reason="x"), T0 + 1)


# --- retransmission, timeouts, spacing ----------------------------------------------------

RETRANSMITTED = [
    QueryStatus(command_id="c", phy_id=PHY),
    StartCharging(command_id="c", phy_id=PHY, port_no=1, order_no=ORDER,
                  mode=ChargeMode.UNTIL_FULL),
    SetParams(command_id="c", phy_id=PHY, params=P85),
    QueryParams(command_id="c", phy_id=PHY, names=("qr_light",)),
    ModifyCharge(command_id="c", phy_id=PHY, port_no=1, duration_s=60),
    send(a.Ap3000Reboot()),
    send(a.Ap3000Locate(duration_s=3)),
    send(a.Ap3000CabinetStop(port=1, order_no=ORDER_BYTES)),
    send(a.Ap3000HostSetServer(server_port=1, module_type=1, socket_b_enable=0,
                               server_address="h")),
]


@pytest.mark.parametrize("command", RETRANSMITTED,
                         ids=[f"{type(c).__name__}-{n}" for n, c in enumerate(RETRANSMITTED)])
def test_an_unanswered_command_is_retransmitted_once_with_its_id_then_times_out(
        command: Command) -> None:
    pair = connected_pair()
    pair.server_sends(command, T0)

    assert [] == pair.tick(T0 + 14.9)
    assert [] == pair.tick(T0 + 15)
    timed_out = pair.tick(T0 + 30)
    pair.tick(T0 + 100)

    first, again = pair.wire_down
    assert first == again  # the same bytes: same message id, same checksum
    assert 1 == downlinks(pair)[0].message_id
    assert [CommandTimedOut(command_id="c", phy_id=PHY, attempts=2)] == timed_out
    assert timed_out == outcomes(pair.server_events)


def test_firmware_packets_sent_as_messages_wait_30_seconds_and_are_resent_three_times() -> None:
    pair = connected_pair()
    pair.server_sends(send(a.Ap3000LegacyFirmwarePacket(total_packets=2, packet_no=1,
                                                        firmware=bytes(256))), T0)

    for attempt in range(1, 4):
        assert [] == pair.tick(T0 + 30 * attempt - 0.1)
        assert [] == pair.tick(T0 + 30 * attempt)
    timed_out = pair.tick(T0 + 120)

    assert [CommandTimedOut(command_id="c", phy_id=PHY, attempts=4)] == timed_out
    assert 4 == len(pair.wire_down) and 1 == len(set(pair.wire_down))


def test_a_reply_after_the_timeout_is_not_a_second_outcome() -> None:
    pair = connected_pair()
    [item] = pair.server_sends(send(a.Ap3000Locate(duration_s=3)), T0)
    pair.tick(T0 + 15)
    pair.tick(T0 + 30)

    late = pair.device_sends(CommandAcknowledged(command_id=item.command_id, phy_id=PHY),
                             T0 + 31)

    assert [UnknownMessage(phy_id=PHY, name="locate_reply", data=pair.wire_up[-1])] == late
    assert [CommandTimedOut(command_id="c", phy_id=PHY, attempts=2)] == (
        outcomes(pair.server_events))


def test_a_reboot_whose_unit_restarts_first_is_dropped_with_the_connection() -> None:
    pair = connected_pair()
    pair.server_sends(send(a.Ap3000Reboot()), T0)

    ended = pair.server.receive_eof()

    assert [CommandDropped(phy_id=PHY, command_id="c")] == outcomes(ended)


def test_two_status_queries_at_the_same_instant_go_out_half_a_second_apart() -> None:
    # A host's connection: two units behind it.
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    server.send(QueryStatus(command_id="q1", phy_id=PHY), T0)
    server.send(QueryStatus(command_id="q2", phy_id=OTHER), T0)
    first = server.data_to_send()

    assert T0 + 0.5 == server.next_deadline()
    assert [] == server.handle_timeout(T0 + 0.49)
    assert b"" == server.data_to_send()
    assert [] == server.handle_timeout(T0 + 0.5)
    second = server.data_to_send()

    assert [PHY, OTHER] == [a.Ap3000Frame.decode(d, Direction.DOWN).phy_id
                            for d in (first, second)]


def test_a_second_status_query_to_one_unit_waits_for_the_first_answer_and_the_spacing() -> None:
    pair = connected_pair()
    [q1] = pair.server_sends(QueryStatus(command_id="q1", phy_id=PHY), T0)
    pair.server_sends(QueryStatus(command_id="q2", phy_id=PHY), T0)
    assert 1 == len(pair.wire_down)

    pair.device_sends(CommandAcknowledged(command_id=q1.command_id, phy_id=PHY), T0 + 0.2)
    assert [a.Ap3000QueryStatus(), a.Ap3000HeartbeatReply(result=0)] == [
        f.message for f in downlinks(pair)]
    assert T0 + 0.5 == pair.server.next_deadline()
    pair.tick(T0 + 0.5)

    assert [a.Ap3000QueryStatus()] == [f.message for f in downlinks(pair)[2:]]
    assert [QueryStatus(command_id="81-1", phy_id=PHY),
            QueryStatus(command_id="81-2", phy_id=PHY)] == [
        i for i in pair.device_inputs if isinstance(i, QueryStatus)]
    assert ["q1"] == [e.command_id for e in outcomes(pair.server_events, "q1")]


def test_different_commands_at_the_same_instant_are_spaced_too() -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    server.send(send(a.Ap3000Locate(duration_s=1)), T0)
    server.send(QueryParams(command_id="q", phy_id=OTHER), T0)
    server.send(SendMessage(command_id="u", phy_id="04A26CF4",
                            message=a.Ap3000TriggerSelfUpgrade()), T0)
    written = [(T0, server.data_to_send())]
    events = []
    while (deadline := server.next_deadline()) is not None and deadline < T0 + 5:
        events += server.handle_timeout(deadline)
        if data := server.data_to_send():
            written.append((deadline, data))

    assert [T0, T0 + 0.5, T0 + 1.0] == [at for at, _ in written]
    assert [a.Ap3000Locate(duration_s=1), a.Ap3000QueryParams11(),
            a.Ap3000TriggerSelfUpgrade()] == [
        a.Ap3000Frame.decode(data, Direction.DOWN).message for _, data in written]
    # 0xE4 has no reply: acknowledged once written, with no reply.
    assert [CommandAcknowledged(command_id="u", phy_id="04A26CF4")] == outcomes(events, "u")


# --- a status query answered by the frames it asks for ----------------------------------

@pytest.mark.parametrize("reply", [
    a.Ap3000Register(firmware_version=640, port_count=2, virtual_id=0, device_type=0x21,
                     work_mode=0),
    a.Ap3000LegacyHeartbeat(firmware_version=310, voltage_0p1v=2210, port_status=(0, 1),
                            port_power_0p1w=(0, 900), port_peak_power_0p1w=(0, 950),
                            virtual_id=0, signal_strength=0, device_type=0x04),
    a.Ap3000Heartbeat(voltage_0p1v=2205, port_status=(1, 0), signal_strength=0,
                      env_temp_raw=0x5E),
], ids=["0x20", "0x01", "0x21"])
def test_a_status_query_is_answered_by_the_units_next_status_frame(
        reply: a.Ap3000Message) -> None:
    pair = connected_pair()
    [query] = pair.server_sends(QueryStatus(command_id="c", phy_id=PHY), T0)

    events = pair.device_sends(CommandAcknowledged(command_id=query.command_id, phy_id=PHY,
                                                   reply=reply), T0 + 3)

    assert CommandAcknowledged(command_id="c", phy_id=PHY, reply=reply) == events[-1]
    assert isinstance(events[0], DeviceRegistered | DeviceHeartbeat)
    assert 1 == len(outcomes(pair.server_events))


def test_a_status_frame_of_another_unit_does_not_answer_a_status_query() -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    server.send(QueryStatus(command_id="c", phy_id=PHY), T0)
    server.data_to_send()
    beat = a.Ap3000Frame(physical_id=0x04A26CF3, message_id=9, message=IDLE_HEARTBEAT)

    events = server.receive_data(beat.encode(), T0 + 1)

    assert [] == outcomes(events)
    assert T0 + 15 == server.next_deadline()


def test_a_status_query_cannot_be_answered_by_another_message() -> None:
    pair = connected_pair()
    [query] = pair.server_sends(QueryStatus(command_id="c", phy_id=PHY), T0)

    with pytest.raises(LocalProtocolError, match="0x20, 0x01 or 0x21"):
        pair.device.send(CommandAcknowledged(command_id=query.command_id, phy_id=PHY,
                                             reply=a.Ap3000TimeRequest()), T0)


# --- SetParams and QueryParams routing ---------------------------------------------------

@pytest.mark.parametrize(("params", "expected"), [
    (P83, a.Ap3000SetParams11(**P83)),
    (P84, a.Ap3000SetParams12(**P84)),
    (P85, a.Ap3000SetLimits(**P85)),
    ({**P85, "over_voltage_0p1v": 2650, "under_voltage_0p1v": 1800},
     a.Ap3000SetLimits(**P85, over_voltage_0p1v=2650, under_voltage_0p1v=1800)),
    (P86, a.Ap3000SetCardParams(card_sector=1, user_card_key=bytes.fromhex("010203040506"),
                                new_card_key=b"\xff" * 6)),
    (P97, a.Ap3000SetParams13(mute=1)),
], ids=["0x83", "0x84", "0x85", "0x85-voltages", "0x86", "0x97"])
def test_set_params_picks_the_command_from_the_field_names(
        params: dict[str, int], expected: a.Ap3000Message) -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)

    server.send(SetParams(command_id="c", phy_id=PHY, params=params), T0)

    assert expected == a.Ap3000Frame.decode(server.data_to_send(), Direction.DOWN).message


@pytest.mark.parametrize(("params", "match"), [
    ({"heartbeat_interval_s": 60, "max_charge_duration_s": 3600},
     r"2 AP3000 commands.*0x83 set_params_1_1: heartbeat_interval_s; "
     r"0x85 set_limits: max_charge_duration_s"),
    ({"mute": 1, "qr_light": 0, "card_sector": 2},
     r"3 AP3000 commands.*0x84 set_params_1_2: qr_light; 0x86 set_card_params: card_sector; "
     r"0x97 set_params_1_3: mute"),
    ({"max_charge_duration_s": 3600, "overload_power_0p1w": 1, "colour": 3, "volume": 2},
     r"unknown AP3000 parameters colour, volume \(known: 0x83 set_params_1_1: unplug_power"),
    ({"max_charge_duration_s": 3600},
     r"0x85 set_limits needs max_charge_duration_s, overload_power_0p1w; "
     r"missing overload_power_0p1w"),
    ({k: v for k, v in P84.items() if k not in ("min_power", "qr_light")},
     r"0x84 set_params_1_2 needs .*; missing min_power, qr_light"),
    ({**P85, "under_voltage_0p1v": 1800}, r"under_voltage_0p1v needs over_voltage_0p1v"),
    ({}, r"needs at least one parameter"),
    ({**P83, "float_percent": 0},
     r"0x83 set_params_1_1: Ap3000SetParams11.float_percent must be 1-100"),
    ({**P83, "float_percent": 101}, r"float_percent must be 1-100"),
    ({**P83, "unplug_power": 65536}, r"unplug_power must be 0-65535 \(u16\), got 65536"),
    ({**P84, "env_alarm_temp_c": 256}, r"env_alarm_temp_c must be 0-255 \(u8\)"),
    ({**P85, "overload_power_0p1w": 35001}, r"overload_power_0p1w must be 0-35000"),
    ({**P85, "max_charge_duration_s": -1}, r"max_charge_duration_s must be a whole number"),
    ({**P86, "user_card_key": 1 << 48}, r"user_card_key must be 0-0xFFFFFFFFFFFF"),
    ({"mute": 1.5}, r"mute must be a whole number"),
], ids=["83+85", "84+86+97", "unknown", "missing", "missing-two", "voltage-order", "empty",
        "percent-0", "percent-101", "u16", "u8", "overload", "negative", "key", "float"])
def test_set_params_refuses_what_no_single_command_can_carry(params: dict[str, object],
                                                             match: str) -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)

    with pytest.raises(LocalProtocolError, match=match):
        server.send(SetParams(command_id="c", phy_id=PHY, params=params), T0)  # type: ignore[arg-type]
    assert b"" == server.data_to_send()


@pytest.mark.parametrize(("names", "expected"), [
    ((), a.Ap3000QueryParams11()),
    (("heartbeat_interval_s",), a.Ap3000QueryParams11()),
    (("min_power", "qr_light"), a.Ap3000QueryParams12()),
    (("under_voltage_0p1v",), a.Ap3000QueryLimits()),
    (("new_card_key", "user_card_key"), a.Ap3000QueryCardParams()),
], ids=["empty", "0x90", "0x91", "0x92", "0x93"])
def test_query_params_picks_the_query_whose_reply_carries_the_names(
        names: tuple[str, ...], expected: a.Ap3000Message) -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)

    server.send(QueryParams(command_id="c", phy_id=PHY, names=names), T0)

    assert expected == a.Ap3000Frame.decode(server.data_to_send(), Direction.DOWN).message


@pytest.mark.parametrize(("names", "match"), [
    (("float_percent", "overload_power_0p1w"),
     r"QueryParams: the parameters belong to 2 AP3000 commands.*0x90 query_params_1_1: "
     r"float_percent; 0x92 query_limits: overload_power_0p1w"),
    (("mute",), r"unknown AP3000 parameter mute \(known: 0x90"),
    (("speed",), r"unknown AP3000 parameter speed"),
], ids=["spanning", "mute-has-no-query", "unknown"])
def test_query_params_refuses_names_no_single_query_reports(names: tuple[str, ...],
                                                            match: str) -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)

    with pytest.raises(LocalProtocolError, match=match):
        server.send(QueryParams(command_id="c", phy_id=PHY, names=names), T0)


def test_a_query_answered_with_params_reported_gives_every_field_of_the_reply() -> None:
    pair = connected_pair()
    [query] = pair.server_sends(QueryParams(command_id="c", phy_id=PHY,
                                            names=("heartbeat_interval_s",)), T0)

    events = pair.device_sends(ParamsReported(phy_id=PHY, params={"heartbeat_interval_s": 60},
                                              command_id=query.command_id), T0 + 1)

    values = {**D83, "heartbeat_interval_s": 60}
    assert [ParamsReported(phy_id=PHY, params=values, command_id="c"),
            CommandAcknowledged(command_id="c", phy_id=PHY,
                                reply=a.Ap3000QueryParams11Reply(**values))] == events


def test_a_query_answer_names_only_what_the_reply_carries() -> None:
    pair = connected_pair()
    [query] = pair.server_sends(QueryParams(command_id="c", phy_id=PHY), T0)

    with pytest.raises(LocalProtocolError, match=r"query_params_1_1_reply carries .*; not mute"):
        pair.device.send(ParamsReported(phy_id=PHY, params={"mute": 1},
                                        command_id=query.command_id), T0)
    with pytest.raises(LocalProtocolError, match="no parameter query 'nope'"):
        pair.device.send(ParamsReported(phy_id=PHY, params={}, command_id="nope"), T0)


def test_the_unit_reports_what_it_was_set_to() -> None:
    pair = connected_pair()
    for n, params in enumerate((P85, P86, {**P83, "float_percent": 40})):
        [item] = pair.server_sends(SetParams(command_id=f"s{n}", phy_id=PHY, params=params),
                                   T0 + 10 * n)
        pair.device_sends(CommandAcknowledged(command_id=item.command_id, phy_id=PHY),
                          T0 + 10 * n + 1)
    [refused] = pair.server_sends(SetParams(command_id="s3", phy_id=PHY, params=P97), T0 + 40)
    pair.device_sends(CommandRejected(command_id=refused.command_id, phy_id=PHY, reason="x",
                                      raw_code=1), T0 + 41)

    reported = []
    for n, names in enumerate((("overload_power_0p1w",), ("card_sector",), ())):
        [query] = pair.server_sends(QueryParams(command_id=f"q{n}", phy_id=PHY, names=names),
                                    T0 + 50 + 10 * n)
        events = pair.device_sends(CommandAcknowledged(command_id=query.command_id,
                                                       phy_id=PHY), T0 + 51 + 10 * n)
        reported += [e.params for e in events if isinstance(e, ParamsReported)]

    assert [{**D85, **P85}, P86, {**P83, "float_percent": 40}] == reported
    assert 0 == pair.device._rules.params["mute"]  # type: ignore[attr-defined]


def test_an_unsolicited_query_reply_is_still_reported() -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    frame = a.Ap3000Frame(physical_id=0x04A228CD, message_id=5,
                          message=a.Ap3000QueryLimitsReply(max_charge_duration_s=3600,
                                                           overload_power_0p1w=10000))

    events = server.receive_data(frame.encode(), T0)

    assert [ParamsReported(phy_id=PHY, params={"max_charge_duration_s": 3600,
                                               "overload_power_0p1w": 10000})] == events


def test_an_unsolicited_result_reply_is_kept_for_logging() -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    frame = a.Ap3000Frame(physical_id=0x04A228CD, message_id=5,
                          message=a.Ap3000SetParams11Reply(result=0))

    events = server.receive_data(frame.encode(), T0)

    assert [UnknownMessage(phy_id=PHY, name="set_params_1_1_reply",
                           data=frame.encode())] == events


# --- the device's answers -----------------------------------------------------------------

def test_the_device_sends_the_exact_reply_it_is_given() -> None:
    pair = connected_pair()
    [item] = pair.server_sends(send(a.Ap3000ReadEeprom(address=16, read_length=4)), T0)
    reply = a.Ap3000ReadEepromReply(result=0, eeprom_data=b"\x01\x02\x03\x04")

    events = pair.device_sends(CommandAcknowledged(command_id=item.command_id, phy_id=PHY,
                                                   reply=reply), T0 + 1)

    assert [CommandAcknowledged(command_id="c", phy_id=PHY, reply=reply)] == events


def test_an_exact_reply_with_a_failure_result_is_a_rejection() -> None:
    pair = connected_pair()
    [item] = pair.server_sends(send(a.Ap3000Locate(duration_s=9)), T0)

    events = pair.device_sends(CommandAcknowledged(command_id=item.command_id, phy_id=PHY,
                                                   reply=a.Ap3000LocateReply(result=1)), T0 + 1)

    assert [CommandRejected(command_id="c", phy_id=PHY, reason="failed", raw_code=1)] == events


def test_a_charge_control_refusal_for_any_port_names_port_zero() -> None:
    pair = connected_pair()
    [item] = pair.server_sends(StartCharging(command_id="c", phy_id=PHY, port_no=255,
                                             order_no=ORDER, mode=ChargeMode.UNTIL_FULL), T0)

    events = pair.device_sends(CommandRejected(command_id=item.command_id, phy_id=PHY,
                                               reason="x", raw_code=5), T0 + 1)

    assert [CommandRejected(command_id="c", phy_id=PHY, reason="several_ports_waiting",
                            raw_code=5)] == events


def test_a_rejection_without_a_code_is_result_one() -> None:
    pair = connected_pair()
    [item] = pair.server_sends(send(a.Ap3000ClearMemory()), T0)

    events = pair.device_sends(CommandRejected(command_id=item.command_id, phy_id=PHY,
                                               reason="x"), T0 + 1)

    assert [CommandRejected(command_id="c", phy_id=PHY, reason="failed", raw_code=1)] == events


@pytest.mark.parametrize(("reply", "match"), [
    (a.Ap3000SetParams11Reply(result=0), "does not answer command 0x96"),
    (b.HeartbeatAck(time=b.BcdTime(bytes.fromhex("20241020080000"))), "BKV message"),
], ids=["other-command", "bkv"])
def test_the_device_refuses_a_reply_that_does_not_answer_the_command(reply: object,
                                                                     match: str) -> None:
    pair = connected_pair()
    [item] = pair.server_sends(send(a.Ap3000Locate(duration_s=9)), T0)

    with pytest.raises(LocalProtocolError, match=match):
        pair.device.send(CommandAcknowledged(command_id=item.command_id, phy_id=PHY,
                                             reply=reply), T0)  # type: ignore[arg-type]
    pair.device_sends(CommandAcknowledged(command_id=item.command_id, phy_id=PHY), T0 + 1)
    assert 1 == len(outcomes(pair.server_events))


def test_answering_a_command_twice_or_never_received_is_refused() -> None:
    pair = connected_pair()
    [item] = pair.server_sends(send(a.Ap3000Locate(duration_s=9)), T0)
    pair.device_sends(CommandAcknowledged(command_id=item.command_id, phy_id=PHY), T0 + 1)

    with pytest.raises(LocalProtocolError, match="no command '96-1' to answer"):
        pair.device.send(CommandAcknowledged(command_id=item.command_id, phy_id=PHY), T0)


def test_a_downlink_beyond_the_documented_limits_reaches_the_device_as_unknown() -> None:
    # 0x8B with a read length of 40: a server built on this library refuses to send it.
    frame = a.Ap3000Frame(physical_id=0x04A228CD, message_id=3,
                          message=a.Ap3000ReadEeprom(address=0, read_length=40))
    pair = connected_pair()

    inputs = pair.device.receive_data(frame.encode(), T0)

    assert [UnknownMessage(phy_id=PHY, name="read_eeprom", data=frame.encode())] == inputs


# --- construction-time validation ----------------------------------------------------------

@pytest.mark.parametrize(("message", "match"), [
    (a.Ap3000SetQrCode(main_screen=0, reserved=bytes(3), qr_text="q" * 72),
     r"Ap3000SetQrCode.qr_text holds at most 71 characters"),
    (a.Ap3000SetQrCode(main_screen=0, reserved=bytes(2), qr_text="q"),
     r"Ap3000SetQrCode.reserved must be exactly 3 bytes, got 2"),
    (a.Ap3000PlayVoice(interrupt=0, voice_ids=bytes(256)),
     r"Ap3000PlayVoice.voice_ids holds at most 255 prompts"),
    (a.Ap3000ReadEeprom(address=0, read_length=33),
     r"Ap3000ReadEeprom.read_length must be 0-32"),
    (a.Ap3000WriteEeprom(address=0, write_length=33, eeprom_data=bytes(33)),
     r"Ap3000WriteEeprom.write_length must be 0-32"),
    (a.Ap3000WriteEeprom(address=0, write_length=4, eeprom_data=bytes(3)),
     r"write_length is 4 but eeprom_data has 3 bytes"),
    (a.Ap3000Locate(duration_s=256), r"Ap3000Locate.duration_s must be 0-255 \(u8\)"),
    (a.Ap3000HostSetServer(server_port=1, module_type=1, socket_b_enable=0,
                           server_address="s" * 46),
     r"Ap3000HostSetServer.server_address holds at most 45 characters"),
    (a.Ap3000HostSetServer(server_port=65536, module_type=1, socket_b_enable=0,
                           server_address="s"),
     r"server_port must be 0-65535"),
    (a.Ap3000TempQrCode(qr_text="\u4e2d"), r"qr_text must be Latin-1 text"),
    (a.Ap3000TempQrCode(qr_text=b"x"), r"qr_text must be text"),  # type: ignore[arg-type]
    (a.Ap3000CabinetStop(port=0, order_no=b"short"), r"order_no must be exactly 16 bytes"),
    (a.Ap3000CabinetStop(port=0, order_no="x" * 16), r"order_no must be bytes"),  # type: ignore[arg-type]
    (a.Ap3000SetParams11(**{**P83, "float_percent": 0}), r"float_percent must be 1-100"),
    (a.Ap3000SetLimits(max_charge_duration_s=1, overload_power_0p1w=35001),
     r"overload_power_0p1w must be 0-35000"),
    (a.Ap3000FirmwarePacketSlave(total_packets=2, packet_no=0, firmware=bytes(200)),
     r"packet_no must be 1-2"),
    (a.Ap3000LegacyFirmwarePacket(total_packets=2, packet_no=3, firmware=bytes(256)),
     r"packet_no must be 1-2"),
    (a.Ap3000LegacyFirmwarePacket(total_packets=1, packet_no=1, firmware=bytes(255)),
     r"firmware must be exactly 256 bytes"),
    (a.Ap3000Heartbeat(voltage_0p1v=1, port_status=(), signal_strength=0, env_temp_raw=0),
     r"sent by devices"),
], ids=lambda value: type(value).__name__ if not isinstance(value, str) else "")
def test_send_message_refuses_values_beyond_the_reference_naming_the_field(
        message: a.Ap3000Message, match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        send(message)


@pytest.mark.parametrize("message", [
    a.Ap3000SetQrCode(main_screen=0, reserved=bytes(3), qr_text="q" * 71),
    a.Ap3000HostSetServer(server_port=1, module_type=1, socket_b_enable=0,
                          server_address="s" * 45),
    a.Ap3000ReadEeprom(address=0, read_length=32),
    a.Ap3000WriteEeprom(address=0, write_length=32, eeprom_data=bytes(32)),
    a.Ap3000Locate(duration_s=255),
    a.Ap3000SetLimits(max_charge_duration_s=65535, overload_power_0p1w=35000),
], ids=lambda m: type(m).__name__)
def test_send_message_accepts_the_limits_themselves(message: a.Ap3000Message) -> None:
    assert message == send(message).message


def test_a_bkv_message_cannot_be_sent_to_an_ap3000_unit() -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    # A BKV command (a heartbeat reply is refused when the SendMessage is built: it is
    # an answer, not a command).
    command = SendMessage(command_id="c", phy_id=PHY, message=b.StatusQuery(socket_no=1))

    with pytest.raises(LocalProtocolError, match="is a BKV message"):
        server.send(command, T0)


def test_a_firmware_reply_after_the_transfer_timed_out_is_kept_for_logging() -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    server.send(SendFirmware(command_id="fw", phy_id=PHY, image=b"x"), T0)
    request = a.Ap3000Frame.decode(server.data_to_send(), Direction.DOWN)
    for attempt in range(1, 5):
        events = server.handle_timeout(T0 + 30 * attempt)
    reply = request.reply(a.Ap3000FirmwarePacketSlaveReply(result=0, packet_no=1))

    late = server.receive_data(reply.encode(), T0 + 121)

    assert [CommandTimedOut(command_id="fw", phy_id=PHY, attempts=4)] == events
    assert [UnknownMessage(phy_id=PHY, name="firmware_packet_slave_reply",
                           data=reply.encode())] == late


def test_parameter_messages_convert_to_integers_and_back() -> None:
    from bkvcodec._ap3000.messages import parameter_message, parameters

    message = a.Ap3000QueryCardParamsReply(card_sector=2, user_card_key=b"\x01" * 6,
                                           new_card_key=b"\xff" * 6)

    assert message == parameter_message(type(message), parameters(message))
    assert {"max_charge_duration_s": 1, "overload_power_0p1w": 2} == parameters(
        a.Ap3000SetLimits(max_charge_duration_s=1, overload_power_0p1w=2))
    with pytest.raises(LocalProtocolError, match=r"Ap3000SetLimits: .*overload_power_0p1w"):
        parameter_message(a.Ap3000SetLimits, {"max_charge_duration_s": 1})


def test_parameter_command_names_the_set_command_its_fields_and_the_query() -> None:
    limits = a.parameter_command(["overload_power_0p1w"])
    mute = a.parameter_command(["mute"])

    assert ("0x85 set_limits", ("max_charge_duration_s", "overload_power_0p1w")) == (
        limits.name, limits.mandatory)
    assert ("max_charge_duration_s", "overload_power_0p1w", "over_voltage_0p1v",
            "under_voltage_0p1v") == limits.fields == limits.query_names
    assert ("0x97 set_params_1_3", ()) == (mute.name, mute.query_names)
    assert {"max_charge_duration_s": 36000, "overload_power_0p1w": 20000,
            "over_voltage_0p1v": 2700, "under_voltage_0p1v": 1000} == limits.defaults
    assert {"mute": 0} == mute.defaults


@pytest.mark.parametrize(("names", "problem"), [
    ([], "no AP3000 parameter named"),
    (["max_power_w"], "unknown AP3000 parameter max_power_w"),
    (["mute", "unplug_power"], "belong to 2 AP3000 commands"),
])
def test_parameter_command_refuses_names_of_no_or_several_commands(
        names: list[str], problem: str) -> None:
    with pytest.raises(LocalProtocolError, match=problem):
        a.parameter_command(names)
