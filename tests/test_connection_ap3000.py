"""AP3000 server and device connections paired in memory: the test plan's flows."""
from __future__ import annotations

import pytest

from bkvcodec import (
    AlarmRaised,
    CardAnswered,
    CardPresented,
    ChargeMode,
    ChargingSession,
    CommandAcknowledged,
    CommandRejected,
    CommandTimedOut,
    DeviceConnection,
    DeviceHeartbeat,
    DeviceRegistered,
    Direction,
    EndReason,
    FirmwareProgress,
    FirmwareTarget,
    LocalProtocolError,
    MeterReading,
    ModemIdentified,
    ModifyCharge,
    OrderCompleted,
    OrderState,
    PortState,
    PortStatusReported,
    ProgressReported,
    ProtocolFamily,
    SendFirmware,
    ServerAnswered,
    ServerConnection,
    SettlementReported,
    StartCharging,
    StartOta,
    StopCharging,
)
from bkvcodec._ap3000 import messages as a
from bkvcodec._ap3000.codec import Ap3000Frame
from bkvcodec._billing import Tariff

from .helpers import DevicePair

PHY = "04A228CD"
T0 = 1729407600.0
ORDER = "THD1729407600001"


def kinds(items: list[object]) -> list[str]:
    return [type(item).__name__ for item in items]


def downlinks(pair: DevicePair) -> list[a.Ap3000Message]:
    return [Ap3000Frame.decode(d, Direction.DOWN).message for d in pair.wire_down]


def test_connect_register_heartbeat_are_answered() -> None:
    pair = DevicePair(ProtocolFamily.AP3000, PHY)

    greeting = pair.connect(T0)
    registered = pair.device_sends(DeviceRegistered(phy_id=PHY,
                                                    protocol=ProtocolFamily.AP3000), T0)
    beat = pair.device_sends(DeviceHeartbeat(phy_id=PHY, protocol=ProtocolFamily.AP3000,
                                             voltage_dv=2212), T0 + 1)

    assert ["ModemIdentified"] == kinds(greeting)
    assert isinstance(greeting[0], ModemIdentified)
    assert ["DeviceRegistered"] == kinds(registered)
    assert ["DeviceHeartbeat", "PortStatusReported", "PortStatusReported"] == kinds(beat)
    assert [a.Ap3000RegisterReply(result=0), a.Ap3000HeartbeatReply(result=0)] == (
        downlinks(pair))
    assert {PHY} == pair.server.phy_ids


def _order(pair: DevicePair, *, stop_after_minutes: int | None) -> tuple[ChargingSession,
                                                                          list[object]]:
    session = ChargingSession(order_no=ORDER, device_phy_id=PHY, port_no=1,
                              charge_mode=ChargeMode.TIME, requested_duration_s=3600,
                              tariff=Tariff(amount_cents=1000, price_per_kwh_cents=150,
                                            service_fee_permille=100))
    published = list(session.start_requested(T0))
    [start] = pair.server_sends(StartCharging(command_id="c1", phy_id=PHY, port_no=1,
                                              order_no=ORDER, mode=ChargeMode.TIME,
                                              duration_s=3600, amount_cents=1000), T0 + 1)
    assert isinstance(start, StartCharging)
    assert (ORDER, 3600, 1000) == (start.order_no, start.duration_s, start.amount_cents)
    published += session.command_sent(T0 + 1)
    [acked] = pair.device_sends(CommandAcknowledged(command_id=start.command_id, phy_id=PHY),
                                T0 + 2)
    assert CommandAcknowledged(command_id="c1", phy_id=PHY, port_no=1,
                               reply=a.Ap3000ChargeControlReply(
                                   result=0, order_no=ORDER.encode(), port=0)) == acked
    published += session.command_acked(T0 + 2)
    minutes = 60 if stop_after_minutes is None else stop_after_minutes
    for minute in range(5, minutes + 1, 5):
        now = T0 + 35 + 60 * minute
        [progress] = pair.device_sends(ProgressReported(
            phy_id=PHY, socket_no=1, port_no=1, order_no=ORDER,
            reading=MeterReading(duration_s=60 * minute, energy_centikwh=9 * minute,
                                 power_dw=15000)), now)
        assert isinstance(progress, ProgressReported)
        published += session.progress(now, progress.reading)
    reason = EndReason.NORMAL
    if stop_after_minutes is not None:
        now = T0 + 40 + 60 * minutes
        [stop] = pair.server_sends(StopCharging(command_id="c2", phy_id=PHY, port_no=1), now)
        assert StopCharging(command_id=stop.command_id, phy_id=PHY, port_no=1,
                            order_no=ORDER) == stop
        published += session.stop_requested(now)
        pair.device_sends(CommandAcknowledged(command_id=stop.command_id, phy_id=PHY), now)
        reason = EndReason.REMOTE_STOP
    end = T0 + 45 + 60 * minutes
    [settled] = pair.device_sends(SettlementReported(
        phy_id=PHY, socket_no=1, port_no=1, order_no=ORDER, end_reason=reason,
        reading=MeterReading(duration_s=60 * minutes, energy_centikwh=9 * minutes),
        peak_power_dw=18000), end)
    assert isinstance(settled, SettlementReported)
    published += session.settlement(end, settled.reading, end_reason=settled.end_reason,
                                    end_reason_raw=settled.end_reason_raw)
    return session, published


def test_tc001_time_order_over_ap3000() -> None:
    pair = DevicePair(ProtocolFamily.AP3000, PHY)
    pair.connect(T0)

    session, published = _order(pair, stop_after_minutes=None)

    assert OrderState.COMPLETED == session.state
    completed = published[-1]
    assert isinstance(completed, OrderCompleted)
    assert (3600, 540, EndReason.NORMAL, 3) == (
        completed.duration_s, completed.energy_centikwh, completed.end_reason,
        completed.end_reason_raw)
    control = downlinks(pair)[0]
    assert isinstance(control, a.Ap3000ChargeControl)
    assert (0, 0, 1, 3600, ORDER.encode()) == (control.rate_mode, control.port,
                                                control.charge_command, control.charge_value,
                                                control.order_no)
    assert a.Ap3000SettlementReply(result=0) == downlinks(pair)[-1]


def test_tc002_remote_stop_over_ap3000() -> None:
    pair = DevicePair(ProtocolFamily.AP3000, PHY)

    _session, published = _order(pair, stop_after_minutes=20)

    completed = published[-1]
    assert isinstance(completed, OrderCompleted)
    assert (EndReason.REMOTE_STOP, 7, 1200) == (completed.end_reason,
                                                completed.end_reason_raw,
                                                completed.duration_s)


def test_rejection_code_is_named() -> None:
    pair = DevicePair(ProtocolFamily.AP3000, PHY)
    [start] = pair.server_sends(StartCharging(command_id="c", phy_id=PHY, port_no=2,
                                              order_no=ORDER, mode=ChargeMode.UNTIL_FULL), T0)

    events = pair.device_sends(CommandRejected(command_id=start.command_id, phy_id=PHY,
                                               reason="no_charger", raw_code=1), T0 + 1)

    assert [CommandRejected(command_id="c", phy_id=PHY, reason="no_charger",
                            raw_code=1)] == events


def test_command_is_retransmitted_once_after_15_seconds() -> None:
    pair = DevicePair(ProtocolFamily.AP3000, PHY)
    pair.server_sends(StartCharging(command_id="c", phy_id=PHY, port_no=1, order_no=ORDER,
                                    mode=ChargeMode.TIME, duration_s=60), T0)

    assert T0 + 15 == pair.server.next_deadline()
    assert [] == pair.tick(T0 + 15)
    timed_out = pair.tick(T0 + 30)

    assert [CommandTimedOut(command_id="c", phy_id=PHY, attempts=2)] == timed_out
    first, second = (Ap3000Frame.decode(d, Direction.DOWN) for d in pair.wire_down)
    assert first == second


def test_commands_on_one_connection_are_spaced_half_a_second() -> None:
    # Three units behind one host connection: one command each, at the same moment.
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    for n, phy_id in enumerate((PHY, "04A26CF3", "04A26CF4")):
        server.send(StartCharging(command_id=f"s{n}", phy_id=phy_id, port_no=1,
                                  order_no=f"ORDER{n}", mode=ChargeMode.UNTIL_FULL), T0)
    first = server.data_to_send()
    later: list[tuple[float, bytes]] = []
    while (deadline := server.next_deadline()) is not None and deadline < T0 + 10:
        server.handle_timeout(deadline)
        later.append((deadline, server.data_to_send()))

    assert first
    assert [T0 + 0.5, T0 + 1.0] == [at for at, _ in later[:2]]
    assert all(data for _, data in later[:2])


def test_port_fault_in_heartbeat_raises_one_alarm() -> None:
    pair = DevicePair(ProtocolFamily.AP3000, PHY)
    fault = PortStatusReported(phy_id=PHY, socket_no=1, port_no=1, state=PortState.FAULT,
                               raw_status=0x0D)

    first = pair.device_sends(fault, T0)
    again = pair.device_sends(fault, T0 + 180)

    assert [AlarmRaised(phy_id=PHY, alarm_type="port_fault", fault_code=0x0D,
                        fault_msg="precheck short circuit", socket_no=1, port_no=1)] == [
        e for e in first if isinstance(e, AlarmRaised)]
    assert [] == [e for e in again if isinstance(e, AlarmRaised)]
    assert PortState.FAULT == next(e for e in again if isinstance(e, PortStatusReported)).state


def test_card_swipe_gets_the_callers_answer() -> None:
    pair = DevicePair(ProtocolFamily.AP3000, PHY)
    pair.connect(T0)
    [presented] = pair.device_sends(CardPresented(phy_id=PHY, socket_no=1, port_no=1,
                                                  card_no="2056062429", request_id=1), T0)
    assert isinstance(presented, CardPresented)
    assert "2056062429" == presented.card_no

    pair.server.answer_card(presented.request_id, accept=False, now=T0, refusal_code=0x06)
    pair._to_device(pair.server.data_to_send(), T0)

    assert CardAnswered(phy_id=PHY, request_id=2056062429, accepted=False,
                        balance_cents=0) == pair.device_inputs[-1]


def test_time_request_is_answered_with_unix_time() -> None:
    pair = DevicePair(ProtocolFamily.AP3000, PHY)
    data = Ap3000Frame(physical_id=0x04A228CD, message_id=9,
                       message=a.Ap3000TimeRequest()).encode()

    pair._to_server(data, T0)

    assert [ServerAnswered(phy_id=PHY, name="time_reply", server_time=T0)] == (
        pair.device_inputs)


def test_modify_charge_round_trip() -> None:
    pair = DevicePair(ProtocolFamily.AP3000, PHY)
    [received] = pair.server_sends(ModifyCharge(command_id="m", phy_id=PHY, port_no=2,
                                                energy_wh=1500), T0)

    events = pair.device_sends(CommandRejected(command_id=received.command_id, phy_id=PHY,
                                               reason="not_charging", raw_code=1), T0 + 1)

    assert ModifyCharge(command_id=received.command_id, phy_id=PHY, port_no=2,
                        energy_wh=1500, stop_when_full=True) == received
    assert [CommandRejected(command_id="m", phy_id=PHY, reason="port_not_charging",
                            raw_code=1)] == events


def test_bkv_only_commands_are_refused() -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)

    with pytest.raises(LocalProtocolError):
        server.send(StartOta(command_id="o", phy_id=PHY, ftp_host="1.2.3.4", file_name="f"),
                    T0)


def test_firmware_is_sent_packet_by_packet() -> None:
    pair = DevicePair(ProtocolFamily.AP3000, PHY)
    pair.connect(T0)
    pair.server_events.clear()
    image = bytes(range(256)) * 2  # 512 bytes: three packets and a verification packet

    pair.server_sends(SendFirmware(command_id="fw", phy_id=PHY, image=image,
                                   device_type=0x21, firmware_version=641), T0)
    for step in range(1, 5):  # the packets keep the 0.5 s spacing between commands
        pair.tick(T0 + 0.5 * step)

    assert [FirmwareProgress(command_id="fw", phy_id=PHY, packets_done=n, packets_total=4)
            for n in (1, 2, 3)] + [CommandAcknowledged(
                command_id="fw", phy_id=PHY,
                reply=a.Ap3000FirmwarePacketSlaveReply(result=0, packet_no=4))] == (
        pair.server_events)
    [received] = pair.device_inputs
    assert isinstance(received, SendFirmware)
    assert image == received.image[:512] and not any(received.image[512:])
    assert (0x21, 641, FirmwareTarget.SLAVE) == (received.device_type,
                                                 received.firmware_version, received.target)


def test_refused_firmware_is_a_rejection() -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    server.send(SendFirmware(command_id="fw", phy_id=PHY, image=b"x" * 10), T0)
    first = Ap3000Frame.decode(server.data_to_send(), Direction.DOWN)
    reply = Ap3000Frame(physical_id=first.physical_id, message_id=first.message_id,
                        message=a.Ap3000FirmwarePacketSlaveReply(result=3, packet_no=0))

    events = server.receive_data(reply.encode(), T0 + 1)

    assert [CommandRejected(command_id="fw", phy_id=PHY, reason="wrong_device_type",
                            raw_code=3)] == events


def test_unanswered_firmware_packet_is_resent_three_times() -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    server.send(SendFirmware(command_id="fw", phy_id=PHY, image=b"x"), T0)

    for attempt in range(1, 4):
        assert [] == server.handle_timeout(T0 + 30 * attempt)
    assert [CommandTimedOut(command_id="fw", phy_id=PHY, attempts=4)] == (
        server.handle_timeout(T0 + 120))


def test_a_unit_reports_its_port_count_and_the_statuses_it_is_given() -> None:
    device = DeviceConnection(protocol=ProtocolFamily.AP3000, phy_id=PHY, port_count=4)
    server = ServerConnection(protocol=ProtocolFamily.AP3000)
    server.receive_data(device.data_to_send(), T0)
    device.set_port_status(3, 0x01)

    device.send(DeviceHeartbeat(phy_id=PHY, protocol=ProtocolFamily.AP3000), T0)
    events = server.receive_data(device.data_to_send(), T0)

    states = {e.port_no: e.state for e in events if isinstance(e, PortStatusReported)}
    assert [1, 2, 3, 4] == sorted(states)
    with pytest.raises(LocalProtocolError, match="ports 1-4"):
        device.set_port_status(5, 0x00)
    with pytest.raises(LocalProtocolError, match="1-16 ports"):
        DeviceConnection(protocol=ProtocolFamily.AP3000, phy_id=PHY, port_count=17)


def test_port_count_and_port_statuses_are_for_ap3000_only() -> None:
    with pytest.raises(LocalProtocolError, match="AP3000"):
        DeviceConnection(protocol=ProtocolFamily.BKV, phy_id="82210225000520", port_count=2)
    bkv = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id="82210225000520")
    with pytest.raises(LocalProtocolError, match="AP3000"):
        bkv.set_port_status(1, 0)
