"""Every knob the documentation names is a ServerConnection argument that works,
and the AP3000 answers the connection sends are the ones AP3000_REQUIRED_REPLIES
lists."""
from __future__ import annotations

import pytest

from bkvcodec import (
    CommandTimedOut,
    CommandTiming,
    Direction,
    EndReason,
    MeterReading,
    ProtocolFamily,
    QueryParams,
    ServerConnection,
    SettlementReported,
    decode,
)
from bkvcodec import ap3000 as a
from bkvcodec import bkv as b

from .helpers import DevicePair

PHY = "04A228CD"
GATEWAY = "82210225000520"
T0 = 1729407600.0


def _timeouts(server: ServerConnection, phy_id: str) -> list[float]:
    """When the server writes a query and its retransmissions, until it gives up."""
    server.send(QueryParams(command_id="q", phy_id=phy_id), T0)
    written = [T0] if server.data_to_send() else []
    while (deadline := server.next_deadline()) is not None:
        events = server.handle_timeout(deadline)
        if server.data_to_send():
            written.append(deadline)
        if any(isinstance(e, CommandTimedOut) for e in events):
            written.append(deadline)
            break
    return [at - T0 for at in written]


def test_ap3000_timing_is_a_connection_argument() -> None:
    default = ServerConnection(protocol=ProtocolFamily.AP3000)
    tuned = ServerConnection(protocol=ProtocolFamily.AP3000, ap3000_timing=a.Ap3000Timing(
        reply_timeout_s=2.0, max_retransmissions=3))

    # Written, resent, given up: 15 s and one resend by default.
    assert [0.0, 15.0, 30.0] == _timeouts(default, PHY)
    assert [0.0, 2.0, 4.0, 6.0, 8.0] == _timeouts(tuned, PHY)


def test_bkv_timing_is_a_connection_argument() -> None:
    tuned = ServerConnection(protocol=ProtocolFamily.BKV, bkv_timing=CommandTiming(
        reply_timeout_s=1.0, max_retransmissions=0))

    assert [0.0, 1.0] == _timeouts(tuned, GATEWAY)


@pytest.mark.parametrize(("protocol", "phy_id", "option"), [
    pytest.param(ProtocolFamily.AP3000, PHY, "ap3000_end_reasons", id="ap3000"),
    pytest.param(ProtocolFamily.BKV, GATEWAY, "bkv_end_reasons", id="bkv")])
def test_end_reason_tables_are_connection_arguments(protocol: ProtocolFamily, phy_id: str,
                                                    option: str) -> None:
    # The device reports stop reason / end reason code 5 (AP3000: server stop); the
    # table below calls every code a fault.
    table = {code: EndReason.FAULT for code in range(256)}
    pair = DevicePair(protocol, phy_id, **{option: table})
    pair.connect(T0)
    if protocol is ProtocolFamily.BKV:
        end = b.BkvFrame(gateway_id=phy_id, seq=0, message=b.FeeChargeEnd(
            socket_no=1, port=0, business_no=1, energy_wh=100, duration_min=1, end_reason=5,
            bkv_seq=0))
        [settled] = pair.server.receive_data(end.encode(), T0)
    else:
        [settled] = pair.device_sends(SettlementReported(
            phy_id=phy_id, socket_no=1, port_no=1, order_no="ORDER0001",
            end_reason=EndReason.REMOTE_STOP, end_reason_raw=0x06,
            reading=MeterReading(duration_s=60, energy_centikwh=1)), T0)

    assert isinstance(settled, SettlementReported)
    assert EndReason.FAULT is settled.end_reason


UPLINKS: dict[type[a.Ap3000Message], a.Ap3000Message] = {
    a.Ap3000LegacyHeartbeat: a.Ap3000LegacyHeartbeat(
        firmware_version=641, voltage_0p1v=2200, port_status=(0, 0), port_power_0p1w=(0, 0),
        port_peak_power_0p1w=(0, 0), virtual_id=0, signal_strength=20, device_type=0x21),
    a.Ap3000Heartbeat: a.Ap3000Heartbeat(
        voltage_0p1v=2200, port_status=(0, 0), signal_strength=20, env_temp_raw=90),
    a.Ap3000Register: a.Ap3000Register(
        firmware_version=641, port_count=2, virtual_id=0, device_type=0x21, work_mode=0),
    a.Ap3000TimeRequest: a.Ap3000TimeRequest(),
    a.Ap3000HostTimeRequest: a.Ap3000HostTimeRequest(),
    a.Ap3000OrderConfirm: a.Ap3000OrderConfirm(
        port=0, start_mode=0, card_id=bytes(4), charge_duration_s=600,
        order_no=b"ORDER0001".ljust(16, b"\0")),
}


def test_the_table_lists_the_uplinks_the_connection_answers() -> None:
    # Card swipes are answered by the application (answer_card), settlements once
    # acknowledged (tests/test_acknowledgements.py); the connection answers the rest.
    assert set(a.AP3000_REQUIRED_REPLIES) == {*UPLINKS, a.Ap3000CardSwipe, a.Ap3000Settlement}


@pytest.mark.parametrize("uplink", list(UPLINKS), ids=lambda c: c.__name__)
def test_each_required_reply_is_sent(uplink: type[a.Ap3000Message]) -> None:
    server = ServerConnection(protocol=ProtocolFamily.AP3000, hold=frozenset())
    frame = a.Ap3000Frame(physical_id=a.parse_phy_id(PHY), message_id=9,
                          message=UPLINKS[uplink])

    server.receive_data(frame.encode(), T0)

    reply = decode(server.data_to_send(), Direction.DOWN)
    assert isinstance(reply, a.Ap3000Frame)
    assert a.AP3000_REQUIRED_REPLIES[uplink] is type(reply.message)
    assert 9 == reply.message_id
