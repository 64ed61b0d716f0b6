"""The order state machine: its table, the contract's flows, billing, and random histories."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bkvcodec import (
    ChargeMode,
    ChargingEnded,
    ChargingProgress,
    ChargingSession,
    ChargingStarted,
    DeviceAlarm,
    EndReason,
    LocalProtocolError,
    MeterReading,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderException,
    OrderFailed,
    OrderState,
    SessionInput,
    SessionTimeouts,
)
from bkvcodec._billing import Bill, Tariff, TariffKind, compute_bill, round_half_up
from bkvcodec._session import _Input, transitions

TERMINAL_EVENTS = (OrderCompleted, OrderFailed, OrderCancelled, OrderException)
TC001_TARIFF = Tariff(amount_cents=1000, price_per_kwh_cents=150, service_fee_permille=100,
                      duration_s=3600)


def new_session(tariff: Tariff = TC001_TARIFF, duration: int | None = 3600) -> ChargingSession:
    return ChargingSession(order_no="THD1729407600001", device_phy_id="82210225000520",
                           port_no=1, charge_mode=ChargeMode.TIME, tariff=tariff,
                           requested_duration_s=duration, timeouts=SessionTimeouts())


def reading(duration: int, energy: int, power: int = 15000) -> MeterReading:
    return MeterReading(duration_s=duration, energy_centikwh=energy, power_dw=power)


def names(events: list[object]) -> list[str]:
    return [type(event).__name__ for event in events]


# --- the table ------------------------------------------------------------------------------

def _drive_to(state: OrderState) -> ChargingSession:
    session = new_session()
    steps = {
        OrderState.NEW: [],
        OrderState.PENDING: [lambda s: s.start_requested(0)],
        OrderState.CHARGING: [lambda s: s.start_requested(0), lambda s: s.device_confirmed(1)],
        OrderState.STOPPING: [lambda s: s.start_requested(0), lambda s: s.device_confirmed(1),
                              lambda s: s.stop_requested(2)],
        OrderState.COMPLETED: [lambda s: s.start_requested(0), lambda s: s.device_confirmed(1),
                               lambda s: s.settlement(2, reading(1, 0),
                                                      end_reason=EndReason.NORMAL)],
        OrderState.FAILED: [lambda s: s.start_requested(0), lambda s: s.command_rejected(1)],
        OrderState.CANCELLED: [lambda s: s.start_requested(0), lambda s: s.stop_requested(1)],
        OrderState.EXCEPTION: [lambda s: s.start_requested(0), lambda s: s.device_confirmed(1),
                               lambda s: s.port_idle(2),
                               lambda s: s.handle_timeout(10_000)],
    }[state]
    for step in steps:
        step(session)
    assert state == session.state
    return session


def _apply(session: ChargingSession, kind: SessionInput, now: float) -> object:
    calls = {
        SessionInput.START_REQUESTED: lambda: session.start_requested(now),
        SessionInput.COMMAND_SENT: lambda: session.command_sent(now),
        SessionInput.COMMAND_ACKED: lambda: session.command_acked(now),
        SessionInput.COMMAND_REJECTED: lambda: session.command_rejected(now),
        SessionInput.COMMAND_EXPIRED: lambda: session.command_expired(now),
        SessionInput.DEVICE_CONFIRMED: lambda: session.device_confirmed(now),
        SessionInput.PROGRESS: lambda: session.progress(now, reading(5, 1)),
        SessionInput.STOP_REQUESTED: lambda: session.stop_requested(now),
        SessionInput.STOP_FAILED: lambda: session.stop_failed(now),
        SessionInput.SETTLEMENT: lambda: session.settlement(now, reading(5, 1),
                                                            end_reason=EndReason.NORMAL),
        SessionInput.PORT_FAULT: lambda: session.port_fault(now, 4, "short circuit"),
        SessionInput.PORT_IDLE: lambda: session.port_idle(now),
        # Ticks are reachable only through handle_timeout; the table test drives them directly.
        SessionInput.START_TIMEOUT: lambda: session._handle(_Input(kind, now)),
        SessionInput.LOST_ORDER_TIMEOUT: lambda: session._handle(_Input(kind, now)),
        SessionInput.END_OVERDUE: lambda: session._handle(_Input(kind, now)),
    }
    return calls[kind]()


@given(st.sampled_from(list(OrderState)), st.sampled_from(list(SessionInput)))
def test_every_state_and_input_is_a_transition_or_a_local_error(state: OrderState,
                                                                  kind: SessionInput) -> None:
    session = _drive_to(state)
    table = transitions()

    if (state, kind) in table:
        _apply(session, kind, 50)
        assert table[(state, kind)] == session.state
    else:
        with pytest.raises(LocalProtocolError):
            _apply(session, kind, 50)
        assert state == session.state


def test_device_inputs_are_accepted_in_every_state_after_the_start() -> None:
    device_inputs = {SessionInput.COMMAND_SENT, SessionInput.COMMAND_ACKED,
                     SessionInput.COMMAND_REJECTED, SessionInput.DEVICE_CONFIRMED,
                     SessionInput.PROGRESS, SessionInput.SETTLEMENT, SessionInput.PORT_FAULT,
                     SessionInput.PORT_IDLE}
    table = transitions()

    missing = [(state, kind) for state in OrderState if state is not OrderState.NEW
               for kind in device_inputs if (state, kind) not in table]

    assert [] == missing


# --- the contract's flows -------------------------------------------------------------------

def test_tc001_time_order_runs_to_settlement() -> None:
    session = new_session()

    created = session.start_requested(1729407600)
    session.command_sent(1729407601)
    session.command_acked(1729407602)
    started = session.device_confirmed(1729407635)
    progress = [session.progress(1729407635 + d, reading(d, d * 523 // 3600))
                for d in range(11, 3601, 11)]
    ended = session.settlement(1729411235, reading(3600, 523, 18000),
                               end_reason=EndReason.NORMAL, end_reason_raw=0)

    assert ["OrderCreated"] == names(created)
    assert ["ChargingStarted"] == names(started)
    assert 1729407635 == started[0].start_time  # type: ignore[union-attr]
    pushed = [e for batch in progress for e in batch]
    assert all(isinstance(e, ChargingProgress) for e in pushed)
    durations = [e.reading.duration_s for e in pushed]  # type: ignore[union-attr]
    assert 11 == durations[0]
    # At most one per 60 s of order time, and never more than one report period late.
    assert all(60 <= b - a < 60 + 11 for a, b in itertools.pairwise(durations))
    assert ["ChargingEnded", "OrderCompleted"] == names(ended)
    completed = ended[1]
    assert isinstance(completed, OrderCompleted)
    assert (3600, 523, EndReason.NORMAL) == (completed.duration_s, completed.energy_centikwh,
                                             completed.end_reason)
    assert Bill(energy_fee_cents=785, service_fee_cents=79, final_cents=864,
                refund_cents=136, tariff=TariffKind.ENERGY) == completed.bill
    assert OrderState.COMPLETED == session.state


def test_event_ids_are_deterministic_and_unique() -> None:
    session = new_session()
    events = session.start_requested(0) + session.device_confirmed(1)
    events += session.settlement(9, reading(8, 1), end_reason=EndReason.NORMAL)

    assert ["THD1729407600001-1", "THD1729407600001-2", "THD1729407600001-3",
            "THD1729407600001-4"] == [e.event_id for e in events]


def test_tc002_remote_stop_bills_actual_use() -> None:
    session = new_session(Tariff(amount_cents=1000, duration_s=3600))
    session.start_requested(0)
    session.progress(10, reading(60, 25))

    assert [] == session.stop_requested(1200)
    assert OrderState.STOPPING == session.state
    events = session.settlement(1201, reading(1200, 500), end_reason=EndReason.REMOTE_STOP,
                                end_reason_raw=3)

    completed = events[-1]
    assert isinstance(completed, OrderCompleted)
    assert EndReason.REMOTE_STOP == completed.end_reason
    assert Bill(energy_fee_cents=0, service_fee_cents=0, final_cents=333,
                refund_cents=667, tariff=TariffKind.TIME) == completed.bill


def test_tc003_report_after_reconnect_includes_offline_time() -> None:
    session = new_session()
    session.start_requested(0)
    session.progress(10, reading(600, 250))

    session.progress(700, reading(650, 270))

    assert (650, 270) == (session.duration_s, session.energy_centikwh)


def test_counters_never_go_backwards() -> None:
    session = new_session()
    session.start_requested(0)
    session.progress(10, reading(600, 250))

    session.progress(20, reading(300, 100))

    assert (600, 250) == (session.duration_s, session.energy_centikwh)


def test_tc004_reboot_without_the_order_ends_as_exception() -> None:
    timeouts = SessionTimeouts(lost_order_after=30)
    session = ChargingSession(order_no="THD1", device_phy_id="04A228CD", port_no=1,
                              charge_mode=ChargeMode.TIME, tariff=TC001_TARIFF,
                              requested_duration_s=3600, timeouts=timeouts)
    session.start_requested(0)
    session.progress(10, reading(600, 250))

    assert [] == session.port_idle(700)
    assert 730 == session.next_deadline()
    assert [] == session.handle_timeout(729)
    events = session.handle_timeout(730)

    assert ["OrderException"] == names(events)
    exception = events[0]
    assert isinstance(exception, OrderException)
    assert EndReason.DEVICE_LOST_ORDER == exception.end_reason
    assert 250 == exception.energy_centikwh
    assert OrderState.EXCEPTION == session.state
    assert session.next_deadline() is None


def test_progress_after_an_idle_report_cancels_the_lost_order_timer() -> None:
    timeouts = SessionTimeouts(lost_order_after=30)
    session = ChargingSession(order_no="THD1", device_phy_id="x", port_no=1,
                              charge_mode=ChargeMode.UNTIL_FULL, tariff=Tariff(),
                              timeouts=timeouts)
    session.start_requested(0)
    session.device_confirmed(1)
    session.port_idle(5)

    session.progress(6, reading(5, 1))

    assert [] == session.handle_timeout(100)
    assert OrderState.CHARGING == session.state


def test_exception_2_port_fault_settles_once_with_reason_fault() -> None:
    session = new_session()
    session.start_requested(0)
    session.progress(10, reading(600, 250))

    events = session.port_fault(20, 4, "short circuit protection")
    late = session.settlement(25, reading(610, 255), end_reason=EndReason.NORMAL)

    assert ["DeviceAlarm", "ChargingEnded", "OrderCompleted"] == names(events)
    alarm = events[0]
    assert isinstance(alarm, DeviceAlarm)
    assert (4, "short circuit protection") == (alarm.fault_code, alarm.fault_msg)
    assert EndReason.FAULT == events[2].end_reason  # type: ignore[union-attr]
    assert [] == late


def test_duplicate_settlement_changes_nothing() -> None:
    session = new_session()
    session.start_requested(0)
    first = session.settlement(10, reading(5, 1), end_reason=EndReason.NORMAL)
    bill = session.bill

    again = session.settlement(20, reading(9, 9), end_reason=EndReason.FULL)

    assert ["ChargingEnded", "OrderCompleted"] == names(first)
    assert [] == again
    assert bill == session.bill
    assert EndReason.NORMAL == session.end_reason


def test_no_confirmation_within_start_timeout_fails_the_order() -> None:
    session = new_session()
    session.start_requested(0)
    session.command_sent(5)

    assert 125 == session.next_deadline()
    events = session.handle_timeout(125)

    assert ["OrderFailed"] == names(events)
    assert EndReason.NO_CONFIRMATION == events[0].end_reason  # type: ignore[union-attr]
    assert 1000 == events[0].bill.refund_cents  # type: ignore[union-attr]


def test_exception_1_command_waits_for_an_offline_device_until_its_ttl() -> None:
    session = new_session()
    session.start_requested(0)

    assert 300 == session.next_deadline()
    events = session.handle_timeout(300)

    assert ["OrderFailed"] == names(events)
    assert EndReason.COMMAND_EXPIRED == events[0].end_reason  # type: ignore[union-attr]


def test_offline_device_that_returns_in_time_starts_normally() -> None:
    session = new_session()
    session.start_requested(0)
    session.command_sent(200)

    assert 320 == session.next_deadline()
    assert ["ChargingStarted"] == names(session.device_confirmed(210))


def test_rejected_start_fails_without_charge() -> None:
    session = new_session()
    session.start_requested(0)

    events = session.command_rejected(1, "port_busy")

    assert isinstance(events[0], OrderFailed)
    assert (None, "port_busy") == (events[0].end_reason, events[0].detail)


def test_stop_before_start_cancels() -> None:
    session = new_session()
    session.start_requested(0)

    events = session.stop_requested(1)

    assert ["OrderCancelled"] == names(events)
    assert Bill(energy_fee_cents=0, service_fee_cents=0, final_cents=0,
                refund_cents=1000, tariff=TariffKind.ENERGY) == session.bill


def test_stop_on_an_ended_order_is_a_local_error() -> None:
    session = new_session()
    session.start_requested(0)
    session.stop_requested(1)

    with pytest.raises(LocalProtocolError):
        session.stop_requested(2)


def test_failed_stop_returns_to_charging() -> None:
    session = new_session()
    session.start_requested(0)
    session.device_confirmed(1)
    session.stop_requested(2)

    session.stop_failed(3)

    assert OrderState.CHARGING == session.state


def test_no_end_report_long_after_the_expected_end() -> None:
    session = new_session(duration=60)
    session.start_requested(0)
    session.device_confirmed(10)

    assert 10 + 60 + 900 == session.next_deadline()
    events = session.handle_timeout(970)

    assert ["OrderException"] == names(events)


def test_event_types_cover_the_contract() -> None:
    produced = {OrderCreated, ChargingStarted, ChargingProgress, ChargingEnded, OrderCompleted,
                DeviceAlarm}
    session = new_session()
    events = session.start_requested(0) + session.progress(1, reading(1, 1))
    events += session.port_fault(2, 1, "x")

    assert produced == {type(e) for e in events}


# --- billing --------------------------------------------------------------------------------

def test_round_half_up() -> None:
    assert [0, 1, 1, 2, 785] == [round_half_up(n, d) for n, d in
                                 [(4, 10), (5, 10), (14, 10), (15, 10), (78450, 100)]]


def test_energy_bill_is_capped_at_the_amount() -> None:
    bill = compute_bill(Tariff(amount_cents=500, price_per_kwh_cents=150,
                               service_fee_permille=100), energy_centikwh=523, used_s=3600)

    assert Bill(energy_fee_cents=785, service_fee_cents=79, final_cents=500,
                refund_cents=0, tariff=TariffKind.ENERGY) == bill


def test_bill_without_prepaid_amount() -> None:
    bill = compute_bill(Tariff(price_per_kwh_cents=150), energy_centikwh=100, used_s=10)

    assert Bill(energy_fee_cents=150, service_fee_cents=0, final_cents=150,
                refund_cents=0, tariff=TariffKind.ENERGY) == bill


def test_negative_tariff_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        Tariff(amount_cents=-1)


@given(st.integers(0, 100_000), st.integers(0, 500), st.integers(0, 1000),
       st.integers(0, 10**6), st.integers(0, 10**5), st.none() | st.integers(1, 10**5))
def test_bill_invariants(amount: int, price: int, permille: int, energy: int, used: int,
                         duration: int | None) -> None:
    bill = compute_bill(Tariff(amount_cents=amount, price_per_kwh_cents=price,
                               service_fee_permille=permille, duration_s=duration),
                        energy_centikwh=energy, used_s=used)

    assert 0 <= bill.final_cents <= amount
    assert amount - bill.final_cents == bill.refund_cents


# --- random histories -----------------------------------------------------------------------

class OrderHistory(RuleBasedStateMachine):
    """Random interleavings of device reports, duplicates, losses, reboots and timeouts."""

    def __init__(self) -> None:
        super().__init__()
        self.session = ChargingSession(
            order_no="THD1729407600001", device_phy_id="82210225000520", port_no=1,
            charge_mode=ChargeMode.TIME,
            tariff=Tariff(amount_cents=1000, price_per_kwh_cents=150, service_fee_permille=100,
                          duration_s=3600),
            requested_duration_s=3600,
            timeouts=SessionTimeouts(start_timeout=120, command_ttl=300, lost_order_after=30))
        self.now = 0.0
        self.events = self.session.start_requested(self.now)
        self.device_duration = 0
        self.device_energy = 0
        self.last_totals = (0, 0)

    def _feed(self, events: list[object]) -> None:
        self.events += events  # type: ignore[arg-type]

    @rule(seconds=st.integers(1, 400))
    def time_passes(self, seconds: int) -> None:
        self.now += seconds
        deadline = self.session.next_deadline()
        if deadline is not None and deadline <= self.now:
            self._feed(self.session.handle_timeout(self.now))

    @rule()
    def command_sent(self) -> None:
        self._feed(self.session.command_sent(self.now))

    @rule()
    def command_acked(self) -> None:
        self._feed(self.session.command_acked(self.now))

    @rule()
    def command_rejected(self) -> None:
        self._feed(self.session.command_rejected(self.now))

    @rule()
    def confirmed(self) -> None:
        self._feed(self.session.device_confirmed(self.now))

    @rule(seconds=st.integers(0, 120), energy=st.integers(0, 50), late=st.booleans())
    def progress(self, seconds: int, energy: int, late: bool) -> None:
        self.device_duration += seconds
        self.device_energy += energy
        duration = self.device_duration - (30 if late else 0)
        self._feed(self.session.progress(
            self.now, reading(max(duration, 0), self.device_energy)))

    @rule()
    def port_idle(self) -> None:
        self._feed(self.session.port_idle(self.now))

    @rule(code=st.integers(1, 255))
    def fault(self, code: int) -> None:
        self._feed(self.session.port_fault(self.now, code, "fault"))

    @rule(reason=st.sampled_from([EndReason.NORMAL, EndReason.FULL, EndReason.REMOTE_STOP]))
    def settlement(self, reason: EndReason) -> None:
        self._feed(self.session.settlement(
            self.now, reading(self.device_duration, self.device_energy), end_reason=reason))

    @precondition(lambda self: not self.session.state.is_terminal)
    @rule()
    def stop(self) -> None:
        self._feed(self.session.stop_requested(self.now))

    @precondition(lambda self: self.session.state is OrderState.STOPPING)
    @rule()
    def stop_failed(self) -> None:
        self._feed(self.session.stop_failed(self.now))

    @invariant()
    def one_terminal_event_once_terminal(self) -> None:
        terminal = [e for e in self.events if isinstance(e, TERMINAL_EVENTS)]
        assert len(terminal) == (1 if self.session.state.is_terminal else 0)

    @invariant()
    def bill_is_bounded(self) -> None:
        bill = self.session.bill
        if bill is not None:
            assert 0 <= bill.final_cents <= 1000
            assert 1000 - bill.final_cents == bill.refund_cents

    @invariant()
    def totals_are_monotonic(self) -> None:
        totals = (self.session.duration_s, self.session.energy_centikwh)
        assert totals[0] >= self.last_totals[0] and totals[1] >= self.last_totals[1]
        self.last_totals = totals

    @invariant()
    def event_ids_are_unique(self) -> None:
        ids = [e.event_id for e in self.events]  # type: ignore[attr-defined]
        assert len(ids) == len(set(ids))

    def teardown(self) -> None:
        # Every order ends: with enough time, a deadline always fires.
        for _ in range(10):
            if self.session.state.is_terminal:
                break
            deadline = self.session.next_deadline()
            if deadline is None:
                self._feed(self.session.settlement(
                    self.now, reading(self.device_duration, self.device_energy),
                    end_reason=EndReason.NORMAL))
            else:
                self.now = max(self.now, deadline)
                self._feed(self.session.handle_timeout(self.now))
        assert self.session.state.is_terminal
        self.one_terminal_event_once_terminal()


TestOrderHistory = OrderHistory.TestCase


# --- resuming after a server restart ---------------------------------------------------------

def _resumed(state: OrderState, **kwargs: object) -> ChargingSession:
    settings: dict[str, object] = {
        "order_no": "THD1729407600001", "device_phy_id": "82210225000520", "port_no": 1,
        "charge_mode": ChargeMode.TIME, "requested_duration_s": 3600,
        "tariff": Tariff(amount_cents=1000, price_per_kwh_cents=150,
                         service_fee_permille=100),
        "timeouts": SessionTimeouts(start_timeout=120, command_ttl=300),
        "state": state, "created_at": 1000.0, "events_emitted": 3, "now": 2000.0}
    settings.update(kwargs)
    return ChargingSession.resume(**settings)  # type: ignore[arg-type]


def test_a_resumed_charge_continues_its_totals_and_event_ids() -> None:
    session = _resumed(OrderState.CHARGING, start_time=1010.0, duration_s=600,
                       energy_centikwh=250, peak_power_dw=18000)

    [ended, completed] = session.settlement(
        2100.0, MeterReading(duration_s=660, energy_centikwh=270), end_reason=EndReason.NORMAL)

    assert ("THD1729407600001-4", "THD1729407600001-5") == (ended.event_id,
                                                            completed.event_id)
    assert isinstance(completed, OrderCompleted)
    assert (660, 270, 18000, 1010.0) == (completed.duration_s, completed.energy_centikwh,
                                         completed.peak_power_dw, completed.start_time)


def test_a_resumed_progress_keeps_the_one_per_minute_throttle() -> None:
    session = _resumed(OrderState.CHARGING, start_time=1010.0, duration_s=600)

    assert [] == session.progress(2001.0, MeterReading(duration_s=630, energy_centikwh=1))
    assert 1 == len(session.progress(2002.0, MeterReading(duration_s=660, energy_centikwh=2)))


def test_a_resumed_unsent_start_still_expires_from_its_creation() -> None:
    session = _resumed(OrderState.PENDING)

    assert 1300.0 == session.next_deadline()
    [failed] = session.handle_timeout(2000.0)
    assert isinstance(failed, OrderFailed)
    assert EndReason.COMMAND_EXPIRED == failed.end_reason


def test_a_resumed_sent_start_waits_for_confirmation_from_the_sending() -> None:
    session = _resumed(OrderState.PENDING, command_sent_at=1950.0)

    assert 2070.0 == session.next_deadline()


def test_only_open_orders_can_be_resumed() -> None:
    with pytest.raises(ValueError, match="open order"):
        _resumed(OrderState.COMPLETED)
