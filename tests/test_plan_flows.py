"""The test plan's cases TC001-TC005 and exceptions 1-3, played through server-role and
device-role connections paired in memory, for BKV/GN and for AP3000 (test-plan.md §7)."""
from __future__ import annotations

import pytest

from bkvcodec import (
    ChargeMode,
    ChargingSession,
    CommandAcknowledged,
    CommandRejected,
    DeviceHeartbeat,
    EndReason,
    MeterReading,
    OrderState,
    PortState,
    PortStatusReported,
    ProgressReported,
    ProtocolFamily,
    SessionTimeouts,
    SettlementReported,
    StartCharging,
    StopCharging,
)
from bkvcodec._billing import Tariff

from .helpers import DevicePair, OrderDesk

T0 = 1729407600.0
DEVICES = {ProtocolFamily.BKV: "82210225000520", ProtocolFamily.AP3000: "04A228CD"}
protocols = pytest.mark.parametrize("protocol", list(DEVICES), ids=lambda p: p.value)


class Bench:
    """A device and the order desk, connected; reconnects on demand."""

    def __init__(self, protocol: ProtocolFamily) -> None:
        self.protocol = protocol
        self.phy_id = DEVICES[protocol]
        self.desk = OrderDesk()
        self.business: dict[int, int] = {}
        self.commands = 0
        self.connect(T0 - 10)

    def connect(self, now: float) -> None:
        self.pair = DevicePair(self.protocol, self.phy_id)
        self.desk.handle(self.pair.connect(now), now)
        self.device(DeviceHeartbeat(phy_id=self.phy_id, protocol=self.protocol), now)

    def device(self, event: object, now: float) -> list[object]:
        events = self.pair.device_sends(event, now)
        self.desk.handle(events, now)
        return events

    def order(self, order_no: str, port_no: int, now: float, *, duration_s: int = 3600,
              timeouts: SessionTimeouts | None = None) -> ChargingSession:
        session = ChargingSession(
            order_no=order_no, device_phy_id=self.phy_id, port_no=port_no,
            charge_mode=ChargeMode.TIME, requested_duration_s=duration_s,
            tariff=Tariff(amount_cents=1000, price_per_kwh_cents=150,
                          service_fee_permille=100),
            timeouts=timeouts or SessionTimeouts(lost_order_after=30))
        self.desk.open(session, now)
        return session

    def start(self, session: ChargingSession, now: float, *, accept: bool = True) -> None:
        self.commands += 1
        command_id = f"cmd-{self.commands}"
        received = self.pair.server_sends(StartCharging(
            command_id=command_id, phy_id=self.phy_id, port_no=session.port_no,
            order_no=session.order_no, mode=ChargeMode.TIME, duration_s=3600,
            amount_cents=1000), now)
        self.desk.command_sent(command_id, session.order_no, now)
        [start] = [r for r in received if isinstance(r, StartCharging)]
        if accept:
            business = 0x60 + session.port_no
            self.business[session.port_no] = business
            self.device(CommandAcknowledged(command_id=start.command_id, phy_id=self.phy_id,
                                            business_no=business), now + 1)
        else:
            self.device(CommandRejected(command_id=start.command_id, phy_id=self.phy_id,
                                        reason="port_busy", raw_code=2), now + 1)

    def progress(self, session: ChargingSession, seconds: int, energy: int, now: float,
                 power_dw: int = 15000) -> None:
        self.device(ProgressReported(
            phy_id=self.phy_id, socket_no=1, port_no=session.port_no,
            order_no=session.order_no, business_no=self.business.get(session.port_no),
            reading=MeterReading(duration_s=seconds, energy_centikwh=energy,
                                 power_dw=power_dw)), now)

    def settle(self, session: ChargingSession, seconds: int, energy: int, now: float,
               reason: EndReason = EndReason.NORMAL) -> None:
        self.device(SettlementReported(
            phy_id=self.phy_id, socket_no=1, port_no=session.port_no,
            order_no=session.order_no, business_no=self.business.get(session.port_no),
            reading=MeterReading(duration_s=seconds, energy_centikwh=energy),
            end_reason=reason), now)

    def idle(self, port_no: int, now: float) -> None:
        raw = 0x80 if self.protocol is ProtocolFamily.BKV else 0x00
        self.device(PortStatusReported(phy_id=self.phy_id, socket_no=1, port_no=port_no,
                                       state=PortState.IDLE, raw_status=raw), now)


@protocols
def test_tc001_duration_order_completes(protocol: ProtocolFamily) -> None:
    bench = Bench(protocol)
    session = bench.order("THD1729407600001", 1, T0)
    bench.start(session, T0)

    for minute in range(1, 61):
        bench.progress(session, 60 * minute, minute * 523 // 60, T0 + 35 + 60 * minute)
    bench.settle(session, 3600, 523, T0 + 3640)

    assert OrderState.COMPLETED == session.state
    assert (3600, 523) == (session.duration_s, session.energy_centikwh)
    types = bench.desk.types("THD1729407600001")
    assert ["OrderCreated", "ChargingStarted"] == types[:2]
    assert ["ChargingEnded", "OrderCompleted"] == types[-2:]
    assert 1 == types.count("ChargingStarted")
    assert 60 >= types.count("ChargingProgress") >= 30


@protocols
def test_tc002_remote_stop(protocol: ProtocolFamily) -> None:
    bench = Bench(protocol)
    session = bench.order("THD1729407700001", 1, T0)
    bench.start(session, T0)
    bench.progress(session, 1200, 300, T0 + 1235)

    [stop] = bench.pair.server_sends(StopCharging(command_id="stop", phy_id=bench.phy_id,
                                                  port_no=1), T0 + 1240)
    bench.desk.published += session.stop_requested(T0 + 1240)
    bench.device(CommandAcknowledged(command_id=stop.command_id, phy_id=bench.phy_id),
                 T0 + 1241)
    bench.settle(session, 1200, 300, T0 + 1243, EndReason.REMOTE_STOP)

    assert (OrderState.COMPLETED, EndReason.REMOTE_STOP, 1200) == (
        session.state, session.end_reason, session.duration_s)


@protocols
def test_tc003_network_loss_keeps_the_offline_totals(protocol: ProtocolFamily) -> None:
    bench = Bench(protocol)
    session = bench.order("THD1729407800001", 1, T0)
    bench.start(session, T0)
    bench.progress(session, 600, 250, T0 + 635)

    bench.pair.server.receive_eof()
    bench.connect(T0 + 700)
    # BKV counts whole minutes: 11 minutes, 5 of them while offline.
    bench.progress(session, 660, 270, T0 + 701)

    assert OrderState.CHARGING == session.state
    assert (660, 270) == (session.duration_s, session.energy_centikwh)


@protocols
def test_tc004_reboot_without_the_order_ends_as_exception(protocol: ProtocolFamily) -> None:
    bench = Bench(protocol)
    session = bench.order("THD1729407900001", 1, T0)
    bench.start(session, T0)
    bench.progress(session, 600, 250, T0 + 635)

    bench.pair.server.receive_eof()
    bench.connect(T0 + 700)
    bench.idle(1, T0 + 701)
    bench.desk.tick(T0 + 731)

    assert OrderState.EXCEPTION == session.state
    assert EndReason.DEVICE_LOST_ORDER == session.end_reason
    assert ["OrderException"] == bench.desk.types("THD1729407900001")[-1:]


@protocols
def test_tc004_reboot_with_the_order_continues(protocol: ProtocolFamily) -> None:
    bench = Bench(protocol)
    session = bench.order("THD1729407900002", 1, T0)
    bench.start(session, T0)
    bench.progress(session, 600, 250, T0 + 635)

    bench.connect(T0 + 700)
    bench.progress(session, 660, 275, T0 + 760)

    assert OrderState.CHARGING == session.state


@protocols
def test_tc005_four_ports_charge_independently(protocol: ProtocolFamily) -> None:
    bench = Bench(protocol)
    ports = [1, 2] if protocol is ProtocolFamily.BKV else [1, 2, 3, 4]
    if protocol is ProtocolFamily.AP3000:
        bench.pair.device._rules.port_status = [0, 0, 0, 0]  # a 4-port unit
    sessions = [bench.order(f"THD172940760000{p}", p, T0) for p in ports]
    for i, session in enumerate(sessions):
        bench.start(session, T0 + i)
    for i, session in enumerate(sessions):
        bench.progress(session, 60 - 5 * i, 5 + i, T0 + 100, power_dw=15000 + 1000 * i)

    for i, session in enumerate(sessions):
        bench.settle(session, 3600, 500 + 10 * i, T0 + 3700 + i)

    assert [OrderState.COMPLETED] * len(ports) == [s.state for s in sessions]
    assert [500 + 10 * i for i in range(len(ports))] == [s.energy_centikwh for s in sessions]


@protocols
def test_exception_1_command_waits_for_an_offline_device(protocol: ProtocolFamily) -> None:
    bench = Bench(protocol)
    bench.pair.server.receive_eof()
    session = bench.order("THD1729408000001", 1, T0)

    bench.desk.tick(T0 + 200)
    assert OrderState.PENDING == session.state
    bench.connect(T0 + 250)
    bench.start(session, T0 + 251)
    bench.progress(session, 60, 10, T0 + 320)

    assert OrderState.CHARGING == session.state


@protocols
def test_exception_1_command_expires_if_the_device_stays_away(
        protocol: ProtocolFamily) -> None:
    bench = Bench(protocol)
    bench.pair.server.receive_eof()
    session = bench.order("THD1729408000002", 1, T0)

    bench.desk.tick(T0 + 300)

    assert (OrderState.FAILED, EndReason.COMMAND_EXPIRED) == (session.state,
                                                               session.end_reason)


@protocols
def test_exception_2_port_fault_settles_with_reason_fault(protocol: ProtocolFamily) -> None:
    bench = Bench(protocol)
    session = bench.order("THD1729408100001", 1, T0)
    bench.start(session, T0)
    bench.progress(session, 600, 250, T0 + 635)

    raw = 0x82 if protocol is ProtocolFamily.BKV else 0x0D
    bench.device(PortStatusReported(phy_id=bench.phy_id, socket_no=1, port_no=1,
                                    state=PortState.FAULT, raw_status=raw), T0 + 640)
    bench.settle(session, 610, 255, T0 + 645)

    assert (OrderState.COMPLETED, EndReason.FAULT) == (session.state, session.end_reason)
    types = bench.desk.types("THD1729408100001")
    assert 1 == types.count("DeviceAlarm")
    assert 1 == types.count("OrderCompleted")


@protocols
def test_exception_3_start_on_a_busy_port_is_refused_by_the_device(
        protocol: ProtocolFamily) -> None:
    bench = Bench(protocol)
    running = bench.order("THD1729408200001", 1, T0)
    bench.start(running, T0)
    bench.progress(running, 60, 10, T0 + 100)
    second = bench.order("THD1729408200002", 1, T0 + 200)

    bench.start(second, T0 + 200, accept=False)

    assert OrderState.CHARGING == running.state
    assert OrderState.FAILED == second.state
