"""BKV server and device connections paired in memory: the test plan's flows."""
from __future__ import annotations

import pytest

from bkvcodec import (
    AlarmRaised,
    CardAnswered,
    CardPresented,
    ChargeMode,
    ChargingSession,
    CommandAcknowledged,
    CommandDropped,
    CommandRejected,
    CommandTimedOut,
    DeviceHeartbeat,
    EndReason,
    LocalProtocolError,
    MeterReading,
    ModifyCharge,
    NetworkSocketSpec,
    OrderCompleted,
    OrderState,
    ParamsReported,
    PortState,
    PortStatusReported,
    ProgressReported,
    ProtocolFamily,
    QueryParams,
    ServerAnswered,
    SessionTimeouts,
    SetNetworkList,
    SetParams,
    SettlementReported,
    StartCharging,
    StartOta,
    StopCharging,
)
from bkvcodec._billing import Tariff
from bkvcodec.bkv import (
    BkvFrame,
    ChargeControl,
    ChargeControlAck,
    HeartbeatAck,
    NetworkRefreshAck,
    ParamQueryReply,
    StatusReportAck,
)

from .helpers import DevicePair

GATEWAY = "82210225000520"
T0 = 1729407600.0


def kinds(items: list[object]) -> list[str]:
    return [type(item).__name__ for item in items]


def test_heartbeat_is_answered_with_the_server_time() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)

    events = pair.device_sends(DeviceHeartbeat(phy_id=GATEWAY, protocol=ProtocolFamily.BKV,
                                               iccid="898608551024D1988196", rssi=17), T0)

    assert ["DeviceRegistered", "DeviceHeartbeat"] == kinds(events)
    reply = BkvFrame.decode(pair.wire_down[0])
    assert isinstance(reply.message, HeartbeatAck)
    assert "20241020150000" == str(reply.message.time)  # type: ignore[union-attr]
    assert [ServerAnswered(phy_id=GATEWAY, name="heartbeat_ack", server_time=T0)] == (
        pair.device_inputs)


def test_second_heartbeat_does_not_register_again() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    beat = DeviceHeartbeat(phy_id=GATEWAY, protocol=ProtocolFamily.BKV)
    pair.device_sends(beat, T0)

    assert ["DeviceHeartbeat"] == kinds(pair.device_sends(beat, T0 + 60))


def test_status_report_is_acknowledged() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)

    events = pair.device_sends(PortStatusReported(
        phy_id=GATEWAY, socket_no=1, port_no=1, state=PortState.IDLE, raw_status=0x80), T0)

    assert [PortState.IDLE] == [e.state for e in events if isinstance(e, PortStatusReported)]
    assert isinstance(BkvFrame.decode(pair.wire_down[0]).message, StatusReportAck)


def _run_order(pair: DevicePair, session: ChargingSession, *, stop_at: float | None,
               minutes: int) -> list[object]:
    """Drive one order through a paired connection the way a server would."""
    published = list(session.start_requested(T0))
    start = StartCharging(command_id="cmd-1", phy_id=GATEWAY, port_no=1,
                          order_no=session.order_no, mode=ChargeMode.TIME, duration_s=3600,
                          amount_cents=1000)
    [received] = pair.server_sends(start, T0 + 1)
    published += session.command_sent(T0 + 1)
    assert isinstance(received, StartCharging)
    assert (1, 3600) == (received.port_no, received.duration_s)
    events = pair.device_sends(CommandAcknowledged(command_id=received.command_id,
                                                   phy_id=GATEWAY, business_no=0x68), T0 + 2)
    assert [CommandAcknowledged(command_id="cmd-1", phy_id=GATEWAY, business_no=0x68,
                                port_no=1, reply=ChargeControlAck(
                                    result=1, socket_no=1, port=0, business_no=0x68))] == events
    published += session.command_acked(T0 + 2)
    for minute in range(1, minutes + 1):
        now = T0 + 35 + 60 * minute
        for event in pair.device_sends(ProgressReported(
                phy_id=GATEWAY, socket_no=1, port_no=1, business_no=0x68,
                reading=MeterReading(duration_s=60 * minute, energy_centikwh=9 * minute,
                                     power_dw=15000)), now):
            if isinstance(event, ProgressReported):
                assert "THD1729407600001" == event.order_no
                published += session.progress(now, event.reading)
        if stop_at is not None and now >= stop_at:
            [stop] = pair.server_sends(StopCharging(command_id="cmd-2", phy_id=GATEWAY,
                                                    port_no=1), now)
            published += session.stop_requested(now)
            assert isinstance(stop, StopCharging)
            pair.device_sends(CommandAcknowledged(command_id=stop.command_id, phy_id=GATEWAY),
                              now)
            break
    end = T0 + 35 + 60 * minute + 5
    for event in pair.device_sends(SettlementReported(
            phy_id=GATEWAY, socket_no=1, port_no=1, business_no=0x68,
            reading=MeterReading(duration_s=60 * minute, energy_centikwh=9 * minute),
            end_reason=EndReason.NORMAL), end):
        if isinstance(event, SettlementReported):
            assert "THD1729407600001" == event.order_no
            published += session.settlement(end, event.reading, end_reason=event.end_reason,
                                             end_reason_raw=event.end_reason_raw)
    return published


def _session() -> ChargingSession:
    return ChargingSession(order_no="THD1729407600001", device_phy_id=GATEWAY, port_no=1,
                           charge_mode=ChargeMode.TIME, requested_duration_s=3600,
                           tariff=Tariff(amount_cents=1000, duration_s=3600),
                           timeouts=SessionTimeouts())


def test_tc001_time_order_over_bkv() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    session = _session()

    published = _run_order(pair, session, stop_at=None, minutes=60)

    assert OrderState.COMPLETED == session.state
    completed = published[-1]
    assert isinstance(completed, OrderCompleted)
    assert (3600, 540, EndReason.NORMAL) == (completed.duration_s, completed.energy_centikwh,
                                             completed.end_reason)
    control = BkvFrame.decode(pair.wire_down[0]).message
    assert ChargeControl(socket_no=1, port=0, switch=1, mode=1, duration_min=60,
                         energy_wh=0) == control
    assert "charge_end_ack" == pair.device_inputs[-1].name


def test_tc002_remote_stop_over_bkv_derives_the_reason() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    session = _session()

    published = _run_order(pair, session, stop_at=T0 + 35 + 1200, minutes=60)

    completed = published[-1]
    assert isinstance(completed, OrderCompleted)
    assert EndReason.REMOTE_STOP == completed.end_reason
    assert 1200 == completed.duration_s
    assert 333 == completed.bill.final_cents


def test_rejected_start_is_reported() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    start = StartCharging(command_id="c", phy_id=GATEWAY, port_no=2, order_no="THD1",
                          mode=ChargeMode.ENERGY, energy_wh=500)
    [received] = pair.server_sends(start, T0)

    events = pair.device_sends(CommandRejected(command_id=received.command_id, phy_id=GATEWAY,
                                               reason="no_charger"), T0 + 1)

    assert [CommandRejected(command_id="c", phy_id=GATEWAY, reason="device_rejected",
                            raw_code=0)] == events


def test_unanswered_command_is_resent_with_the_same_seq_then_times_out() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    pair.server_sends(StartCharging(command_id="c", phy_id=GATEWAY, port_no=1, order_no="THD1",
                                    mode=ChargeMode.TIME, duration_s=60), T0)

    assert T0 + 10 == pair.server.next_deadline()
    assert [] == pair.tick(T0 + 10)
    events = pair.tick(T0 + 20)

    assert [CommandTimedOut(command_id="c", phy_id=GATEWAY, attempts=2)] == events
    first, second = (BkvFrame.decode(d) for d in pair.wire_down)
    assert first == second


def test_commands_to_one_gateway_wait_for_the_previous_answer() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    first = pair.server_sends(StartCharging(command_id="a", phy_id=GATEWAY, port_no=1,
                                            order_no="THD1", mode=ChargeMode.TIME,
                                            duration_s=60), T0)
    second = pair.server_sends(StartCharging(command_id="b", phy_id=GATEWAY, port_no=2,
                                             order_no="THD2", mode=ChargeMode.TIME,
                                             duration_s=60), T0 + 0.1)

    assert 1 == len(first) and [] == second
    pair.device_sends(CommandAcknowledged(command_id=first[0].command_id, phy_id=GATEWAY,
                                          business_no=1), T0 + 1)
    assert 2 == pair.device_inputs[-1].port_no


def test_port_fault_raises_one_alarm() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    faulted = PortStatusReported(phy_id=GATEWAY, socket_no=1, port_no=1,
                                 state=PortState.FAULT, raw_status=0x82)

    first = pair.device_sends(faulted, T0)
    again = pair.device_sends(faulted, T0 + 60)

    assert [AlarmRaised(phy_id=GATEWAY, alarm_type="port_fault", fault_code=2,
                        fault_msg="over-current", socket_no=1, port_no=1)] == [
        e for e in first if isinstance(e, AlarmRaised)]
    assert [] == [e for e in again if isinstance(e, AlarmRaised)]


def test_card_swipe_is_answered_by_the_caller() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    [presented] = pair.device_sends(CardPresented(phy_id=GATEWAY, socket_no=1, port_no=1,
                                                  card_no="000000000002", request_id=7), T0)
    assert isinstance(presented, CardPresented)

    pair.server.answer_card(presented.request_id, accept=True, now=T0 + 1, order_no="THD9",
                            duration_s=720 * 60)
    pair._to_device(pair.server.data_to_send(), T0 + 1)

    answer = pair.device_inputs[-1]
    assert isinstance(answer, CardAnswered)
    assert (7, True, 43200) == (answer.request_id, answer.accepted, answer.duration_s)
    events = pair.device_sends(CommandAcknowledged(command_id=answer.command_id or "",
                                                   phy_id=GATEWAY), T0 + 2)
    assert ["CommandAcknowledged"] == kinds(events)


def _swipe(pair: DevicePair, now: float, request_id: int = 7) -> CardPresented:
    [presented] = pair.device_sends(CardPresented(phy_id=GATEWAY, socket_no=1, port_no=2,
                                                  card_no="000000000002",
                                                  request_id=request_id), now)
    assert isinstance(presented, CardPresented)
    return presented


def test_card_answer_is_written_at_once_behind_a_command_in_flight() -> None:
    # Issue 12, story 10: the device waits for its card answer with a short
    # timeout; neither the spacing nor an unanswered command may hold it back.
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    pair.server_sends(StopCharging(command_id="stop", phy_id=GATEWAY, port_no=1), T0)
    presented = _swipe(pair, T0 + 0.1)

    pair.server.answer_card(presented.request_id, accept=True, now=T0 + 0.1,
                            command_id="card", order_no="THD9", duration_s=600)
    written = pair.server.data_to_send()
    pair._to_device(written, T0 + 0.1)
    answer = pair.device_inputs[-1]
    acked = pair.device_sends(CommandAcknowledged(command_id=answer.command_id or "",
                                                  phy_id=GATEWAY), T0 + 0.2)

    assert isinstance(answer, CardAnswered) and answer.accepted
    assert ["card"] == [e.command_id for e in acked if isinstance(e, CommandAcknowledged)]
    assert T0 + 10 == pair.server.next_deadline()  # the stop still waits for its answer


def test_unacknowledged_card_answer_is_resent_then_times_out() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    presented = _swipe(pair, T0)
    pair.server.answer_card(presented.request_id, accept=True, now=T0, command_id="card",
                            order_no="THD9", duration_s=600)
    pair._to_device(pair.server.data_to_send(), T0)

    assert T0 + 10 == pair.server.next_deadline()
    assert [] == pair.tick(T0 + 10)
    events = pair.tick(T0 + 20)

    assert [CommandTimedOut(command_id="card", phy_id=GATEWAY, attempts=2)] == events
    first, second = (BkvFrame.decode(d) for d in pair.wire_down[-2:])
    assert first == second


def test_card_answer_unacknowledged_at_the_end_is_dropped() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    presented = _swipe(pair, T0)
    pair.server.answer_card(presented.request_id, accept=True, now=T0, command_id="card",
                            order_no="THD9", duration_s=600)
    pair._to_device(pair.server.data_to_send(), T0)

    events = pair.server.receive_eof()

    assert [CommandDropped(phy_id=GATEWAY, command_id="card")] == events


def test_parameters_set_and_query() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    [set_params] = pair.server_sends(SetParams(command_id="p", phy_id=GATEWAY, socket_no=2,
                                               params={"power_limit_dw": 7000}), T0)
    assert isinstance(set_params, SetParams)
    assert {"power_limit_dw": 7000} == dict(set_params.params)
    acked = pair.device_sends(CommandAcknowledged(command_id=set_params.command_id,
                                                  phy_id=GATEWAY), T0 + 1)
    [query] = pair.server_sends(QueryParams(command_id="q", phy_id=GATEWAY, socket_no=2),
                                T0 + 2)

    reported = pair.device_sends(ParamsReported(phy_id=GATEWAY, socket_no=2,
                                                command_id=query.command_id,
                                                params={"power_limit_dw": 7000}), T0 + 3)

    assert ["CommandAcknowledged"] == kinds(acked)
    assert [ParamsReported(phy_id=GATEWAY, socket_no=2, command_id="q",
                           params={"power_limit_dw": 7000}),
            CommandAcknowledged(command_id="q", phy_id=GATEWAY, reply=ParamQueryReply(
                socket_no=2, ack=1, bkv_seq=2, power_limit_dw=7000))] == reported



def test_network_list_is_set_and_acknowledged() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)
    sockets = (NetworkSocketSpec(socket_no=1, mac="450030700247"),
               NetworkSocketSpec(socket_no=2, mac="450030700743"))
    [received] = pair.server_sends(SetNetworkList(command_id="n", phy_id=GATEWAY,
                                                  sockets=sockets, channel=4), T0)

    events = pair.device_sends(CommandAcknowledged(command_id=received.command_id,
                                                   phy_id=GATEWAY), T0 + 1)

    assert SetNetworkList(command_id=received.command_id, phy_id=GATEWAY, sockets=sockets,
                          channel=4) == received
    assert [CommandAcknowledged(command_id="n", phy_id=GATEWAY,
                                reply=NetworkRefreshAck(result=1))] == events


def test_an_ota_order_gets_no_answer_and_is_done_once_written() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)

    [received] = pair.server_sends(StartOta(command_id="o", phy_id=GATEWAY,
                                            ftp_host="101.37.145.162",
                                            file_name="GV.8r12.OTA"), T0)

    assert StartOta(command_id=received.command_id, phy_id=GATEWAY, ftp_host="101.37.145.162",
                    file_name="GV.8r12.OTA") == received
    # Its outcome is due at once, and it is the only one.
    assert T0 == pair.server.next_deadline()
    assert [CommandAcknowledged(command_id="o", phy_id=GATEWAY)] == pair.tick(T0)
    assert pair.server.next_deadline() is None


def test_modify_charge_is_not_a_bkv_command() -> None:
    pair = DevicePair(ProtocolFamily.BKV, GATEWAY)

    with pytest.raises(LocalProtocolError):
        pair.server.send(ModifyCharge(command_id="m", phy_id=GATEWAY, port_no=1,
                                      duration_s=60), T0)
