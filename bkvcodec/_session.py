# The charging-session (order) state machine: every rule of an order's life,
# from the start request to its settlement, and nothing else.
#
# All session logic lives in this file, and the file knows no sockets, bytes or
# protocols: the connection layer turns frames into the protocol-neutral inputs
# below (in contract units: seconds, 0.01 kWh, 0.1 W), and the caller passes the
# current time in. One ChargingSession exists per order. Every input goes through
# one table, _TRANSITIONS, mapping (state, input) to (side effect, next state); a
# pair that is not in the table is a misuse by the caller and raises
# LocalProtocolError without changing anything. Every device input has an entry
# in every state, because devices repeat, reorder and lose frames: a duplicate or
# late report is a no-op, never an error.
#
# States, end reasons and billing follow the contract (api.md §4, §5, §10).
# Events carry deterministic ids (order number + sequence), so a caller that
# persists them can de-duplicate after a crash.
from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypedDict

from ._billing import Bill, Tariff, compute_bill
from ._errors import LocalProtocolError
from ._events import ChargeMode, EndReason, MeterReading
from ._fastinit import frozen_dataclass

__all__ = [
    "ChargeMode", "ChargingEnded", "ChargingProgress", "ChargingSession", "ChargingStarted",
    "DeviceAlarm", "EndReason", "MeterReading", "OrderCancelled", "OrderCompleted",
    "OrderCreated", "OrderEvent", "OrderException", "OrderFailed", "OrderState",
    "SessionInput", "SessionTimeouts",
]


class OrderState(enum.Enum):
    """The states of an order."""

    #: Constructed, start not yet requested.
    NEW = "new"
    #: Created; the start command is queued or sent.
    PENDING = "pending"
    #: The device confirmed the start or reported progress.
    CHARGING = "charging"
    #: A stop was requested; waiting for the device's settlement.
    STOPPING = "stopping"
    #: Settled (terminal).
    COMPLETED = "completed"
    #: The start failed (terminal).
    FAILED = "failed"
    #: Stopped before charging began (terminal).
    CANCELLED = "cancelled"
    #: The device lost the order; settled on the last report (terminal).
    EXCEPTION = "exception"

    @property
    def is_terminal(self) -> bool:
        """True for the four end states."""
        return self in _TERMINAL


_TERMINAL = frozenset({OrderState.COMPLETED, OrderState.FAILED, OrderState.CANCELLED,
                       OrderState.EXCEPTION})


class SessionInput(enum.Enum):
    """Everything that can happen to an order."""

    #: The platform asked for the charge (the order is created).
    START_REQUESTED = "start_requested"
    #: The start command was written to the device.
    COMMAND_SENT = "command_sent"
    #: The device accepted the start command.
    COMMAND_ACKED = "command_acked"
    #: The device refused the start command.
    COMMAND_REJECTED = "command_rejected"
    #: The start command expired before it could be sent (``command_ttl``).
    COMMAND_EXPIRED = "command_expired"
    #: The device confirmed that charging began.
    DEVICE_CONFIRMED = "device_confirmed"
    #: A progress report for this order.
    PROGRESS = "progress"
    #: The platform asked to stop.
    STOP_REQUESTED = "stop_requested"
    #: The device refused (or never answered) the stop command.
    STOP_FAILED = "stop_failed"
    #: The device's end-of-charge report (settlement).
    SETTLEMENT = "settlement"
    #: The port reported a fault.
    PORT_FAULT = "port_fault"
    #: The port reported not charging while the order runs.
    PORT_IDLE = "port_idle"
    #: ``start_timeout`` passed without confirmation (a timer input).
    START_TIMEOUT = "start_timeout"
    #: The port stayed idle ``lost_order_after`` without a settlement (a timer input).
    LOST_ORDER_TIMEOUT = "lost_order_timeout"
    #: No end report long after the expected end (a timer input).
    END_OVERDUE = "end_overdue"


@frozen_dataclass
class SessionTimeouts:
    """The clocks of an order, in seconds.

    Attributes:
        start_timeout: From the start command's delivery to the device's
            confirmation or first progress.
        command_ttl: How long a start command may wait for an offline device.
        lost_order_after: How long a port may report idle during the order
            without a settlement (the contract's ``offline_after``).
        end_grace: How long after the expected end (time orders) the
            settlement may be late.
        max_charging: The longest any order may run without a settlement.

    .. versionadded:: 0.1.0
    """

    start_timeout: float = 120.0
    command_ttl: float = 300.0
    lost_order_after: float = 180.0
    end_grace: float = 900.0
    max_charging: float = 24 * 3600.0


# --- events --------------------------------------------------------------------------------
# One class per event type of the contract (api.md §6.4). ``event_id`` is
# "<order_no>-<n>", n counting the order's events from 1; ``at`` is the caller's
# time of the input that caused the event.

@frozen_dataclass
class OrderCreated:
    """``order.created``: the order exists and its start command is queued."""

    event_id: str
    order_no: str
    at: float
    device_phy_id: str
    socket_no: int
    port_no: int
    charge_mode: ChargeMode
    amount_cents: int | None


@frozen_dataclass
class ChargingStarted:
    """``charging.started``: the device confirmed, or reported first progress."""

    event_id: str
    order_no: str
    at: float
    socket_no: int
    port_no: int
    start_time: float


@frozen_dataclass
class ChargingProgress:
    """``charging.progress``: the first report, then at most one per 60 s of order time."""

    event_id: str
    order_no: str
    at: float
    socket_no: int
    port_no: int
    reading: MeterReading
    peak_power_dw: int


@frozen_dataclass
class ChargingEnded:
    """``charging.ended``: the device reported the end of the charge."""

    event_id: str
    order_no: str
    at: float
    socket_no: int
    port_no: int
    duration_s: int
    energy_centikwh: int
    end_reason: EndReason
    end_reason_raw: int | None


@frozen_dataclass
class OrderCompleted:
    """``order.completed``: the order is settled (terminal)."""

    event_id: str
    order_no: str
    at: float
    socket_no: int
    port_no: int
    duration_s: int
    energy_centikwh: int
    peak_power_dw: int
    end_reason: EndReason
    end_reason_raw: int | None
    bill: Bill
    start_time: float | None
    end_time: float


@frozen_dataclass
class OrderFailed:
    """``order.failed``: the order never started (terminal); nothing is charged."""

    event_id: str
    order_no: str
    at: float
    socket_no: int
    port_no: int
    end_reason: EndReason | None  #: None when the device refused the start.
    detail: str
    bill: Bill


@frozen_dataclass
class OrderCancelled:
    """``order.cancelled``: stopped before charging began (terminal)."""

    event_id: str
    order_no: str
    at: float
    socket_no: int
    port_no: int
    bill: Bill


@frozen_dataclass
class OrderException:
    """``order.exception``: the device lost the order (terminal), settled on the last
    report and flagged for a refund review."""

    event_id: str
    order_no: str
    at: float
    socket_no: int
    port_no: int
    duration_s: int
    energy_centikwh: int
    end_reason: EndReason
    bill: Bill
    start_time: float | None
    end_time: float


@frozen_dataclass
class DeviceAlarm:
    """``device.alarm``: the order's port reported a fault."""

    event_id: str
    order_no: str
    at: float
    socket_no: int
    port_no: int
    fault_code: int
    fault_msg: str


OrderEvent = (OrderCreated | ChargingStarted | ChargingProgress | ChargingEnded
              | OrderCompleted | OrderFailed | OrderCancelled | OrderException | DeviceAlarm)


class _CommonFields(TypedDict):
    event_id: str
    order_no: str
    at: float
    socket_no: int
    port_no: int


@dataclass(slots=True)
class _Input:
    """One input with its data, as the side effects see it."""

    kind: SessionInput
    now: float
    reading: MeterReading | None = None
    end_reason: EndReason | None = None
    end_reason_raw: int | None = None
    fault_code: int = 0
    detail: str = ""


_Effect = Callable[["ChargingSession", _Input], None]


class ChargingSession:
    """One order, from the start request to its settlement.

    Feed it what happens (the methods below, each taking the current time) and
    it returns the events to publish. It never reads a clock: ask
    :meth:`next_deadline` when to call :meth:`handle_timeout`.

    Args:
        order_no: The order number (16 ASCII characters by the contract).
        device_phy_id: The device's printed id.
        socket_no: Socket under the device (1 for single sockets).
        port_no: Port, 1-based.
        charge_mode: How the order limits the charge.
        tariff: Prepaid amount and prices.
        requested_duration_s: Ordered duration (time orders), for the
            expected-end check.
        timeouts: The order's clocks.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, order_no: str, device_phy_id: str, socket_no: int = 1,
                 port_no: int, charge_mode: ChargeMode, tariff: Tariff,
                 requested_duration_s: int | None = None,
                 timeouts: SessionTimeouts | None = None) -> None:
        self.order_no = order_no
        self.device_phy_id = device_phy_id
        self.socket_no = socket_no
        self.port_no = port_no
        self.charge_mode = charge_mode
        self.tariff = tariff
        self.requested_duration_s = requested_duration_s
        self.timeouts = timeouts if timeouts is not None else SessionTimeouts()
        self.state = OrderState.NEW
        self.created_at: float | None = None
        self.start_time: float | None = None
        self.end_time: float | None = None
        self.end_reason: EndReason | None = None
        self.bill: Bill | None = None
        self.duration_s = 0
        self.energy_centikwh = 0
        self.peak_power_dw = 0
        self.last_reading: MeterReading | None = None
        #: Minutes per power tier from the settlement (tiers orders).
        self.tier_minutes: tuple[int, ...] = ()
        self._sequence = 0
        self._events: list[OrderEvent] = []
        self._last_progress_duration: int | None = None
        self._deadlines: dict[SessionInput, float] = {}

    @classmethod
    def resume(cls, *, order_no: str, device_phy_id: str, socket_no: int = 1, port_no: int,
               charge_mode: ChargeMode, tariff: Tariff, requested_duration_s: int | None = None,
               timeouts: SessionTimeouts | None = None, state: OrderState, created_at: float,
               command_sent_at: float | None = None, start_time: float | None = None,
               duration_s: int = 0, energy_centikwh: int = 0, peak_power_dw: int = 0,
               events_emitted: int, now: float) -> ChargingSession:
        """Rebuild an open order from what a server stored (after a restart).

        The clocks are re-armed from the stored times: an unsent start command
        still expires ``command_ttl`` after *created_at*; a sent one waits
        ``start_timeout`` from *command_sent_at* (or *now*, if unknown); a running
        charge keeps its end-overdue limit from *start_time*. Event ids continue
        after *events_emitted*, so none repeats.

        Raises:
            ValueError: *state* is not an open state (pending, charging, stopping).
        """
        if state not in (OrderState.PENDING, OrderState.CHARGING, OrderState.STOPPING):
            raise ValueError(f"only an open order can be resumed, not a {state.value} one")
        s = cls(order_no=order_no, device_phy_id=device_phy_id, socket_no=socket_no,
                port_no=port_no, charge_mode=charge_mode, tariff=tariff,
                requested_duration_s=requested_duration_s, timeouts=timeouts)
        s.state = state
        s.created_at = created_at
        s.start_time = start_time
        s.duration_s = duration_s
        s.energy_centikwh = energy_centikwh
        s.peak_power_dw = peak_power_dw
        s._sequence = events_emitted
        if state is OrderState.PENDING:
            if command_sent_at is None:
                s._deadlines[SessionInput.COMMAND_EXPIRED] = created_at + s.timeouts.command_ttl
            else:
                s._deadlines[SessionInput.START_TIMEOUT] = (
                    command_sent_at + s.timeouts.start_timeout)
        else:
            begun = start_time if start_time is not None else now
            s._last_progress_duration = duration_s
            limit = begun + s.timeouts.max_charging
            if requested_duration_s:
                limit = min(limit, begun + requested_duration_s + s.timeouts.end_grace)
            s._deadlines[SessionInput.END_OVERDUE] = max(limit, now)
        return s

    # --- inputs ----------------------------------------------------------------------

    def start_requested(self, now: float) -> list[OrderEvent]:
        """The platform asked for the charge: the order is created."""
        return self._handle(_Input(SessionInput.START_REQUESTED, now))

    def command_sent(self, now: float) -> list[OrderEvent]:
        """The start command was written to the device."""
        return self._handle(_Input(SessionInput.COMMAND_SENT, now))

    def command_acked(self, now: float) -> list[OrderEvent]:
        """The device accepted the start command."""
        return self._handle(_Input(SessionInput.COMMAND_ACKED, now))

    def command_rejected(self, now: float, detail: str = "device_rejected") -> list[OrderEvent]:
        """The device refused the start command."""
        return self._handle(_Input(SessionInput.COMMAND_REJECTED, now, detail=detail))

    def command_expired(self, now: float) -> list[OrderEvent]:
        """The start command could not be delivered within ``command_ttl``."""
        return self._handle(_Input(SessionInput.COMMAND_EXPIRED, now))

    def device_confirmed(self, now: float) -> list[OrderEvent]:
        """The device confirmed that charging began."""
        return self._handle(_Input(SessionInput.DEVICE_CONFIRMED, now))

    def progress(self, now: float, reading: MeterReading) -> list[OrderEvent]:
        """A progress report for this order (also counts as the start confirmation)."""
        return self._handle(_Input(SessionInput.PROGRESS, now, reading=reading))

    def stop_requested(self, now: float) -> list[OrderEvent]:
        """The platform asked to stop the order.

        Raises:
            LocalProtocolError: The order has already ended.
        """
        return self._handle(_Input(SessionInput.STOP_REQUESTED, now))

    def stop_failed(self, now: float) -> list[OrderEvent]:
        """The device refused, or never answered, the stop command."""
        return self._handle(_Input(SessionInput.STOP_FAILED, now))

    def settlement(self, now: float, reading: MeterReading, *, end_reason: EndReason,
                   end_reason_raw: int | None = None,
                   tier_minutes: Sequence[int] | None = None) -> list[OrderEvent]:
        """The device's end-of-charge report: the order is settled (once).

        *tier_minutes*, the minutes the device charged in each power tier, bill a
        :attr:`~bkvcodec.TariffKind.TIERS` order.
        """
        if tier_minutes is not None and not self.state.is_terminal:
            self.tier_minutes = tuple(tier_minutes)
        return self._handle(_Input(SessionInput.SETTLEMENT, now, reading=reading,
                                   end_reason=end_reason, end_reason_raw=end_reason_raw))

    def port_fault(self, now: float, fault_code: int, fault_msg: str) -> list[OrderEvent]:
        """The order's port reported a fault: alarm, and settle with reason ``fault``."""
        return self._handle(_Input(SessionInput.PORT_FAULT, now, fault_code=fault_code,
                                   detail=fault_msg))

    def port_idle(self, now: float) -> list[OrderEvent]:
        """The port reported not charging (idle, or plugged but off) during the order."""
        return self._handle(_Input(SessionInput.PORT_IDLE, now))

    @property
    def events_emitted(self) -> int:
        """The number of events the session has produced (the *events_emitted* of a
        :meth:`resume` that must not repeat an event id)."""
        return self._sequence

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must next be called, or None."""
        return min(self._deadlines.values(), default=None)

    def handle_timeout(self, now: float) -> list[OrderEvent]:
        """Fire every deadline that has passed at *now*."""
        events: list[OrderEvent] = []
        for kind, deadline in sorted(self._deadlines.items(), key=lambda item: item[1]):
            if deadline <= now and kind in self._deadlines:
                events += self._handle(_Input(kind, now))
        return events

    # --- the machine ----------------------------------------------------------------

    def _handle(self, event: _Input) -> list[OrderEvent]:
        key = (self.state, event.kind)
        if key not in _TRANSITIONS:
            raise LocalProtocolError(
                f"order {self.order_no}: {event.kind.value} is not possible when "
                f"{self.state.value}")
        effect, next_state = _TRANSITIONS[key]
        self._events = []
        if effect is not None:
            effect(self, event)
        self.state = next_state
        if next_state.is_terminal:
            self._deadlines.clear()
        return self._events

    def _common(self, now: float) -> _CommonFields:
        """The fields every event has, with the next event id."""
        self._sequence += 1
        return {"event_id": f"{self.order_no}-{self._sequence}", "order_no": self.order_no,
                "at": now, "socket_no": self.socket_no, "port_no": self.port_no}

    def _record(self, reading: MeterReading) -> None:
        # Counters never go backwards: a late or reordered report keeps the larger totals.
        self.duration_s = max(self.duration_s, reading.duration_s)
        self.energy_centikwh = max(self.energy_centikwh, reading.energy_centikwh)
        self.peak_power_dw = max(self.peak_power_dw, reading.power_dw)
        self.last_reading = reading

    def _settle(self, now: float) -> Bill:
        self.end_time = now
        self.bill = compute_bill(self.tariff, energy_centikwh=self.energy_centikwh,
                                 used_s=self.duration_s, tier_minutes=self.tier_minutes)
        return self.bill

    def _nothing_charged(self) -> Bill:
        amount = self.tariff.amount_cents or 0
        self.bill = Bill(energy_fee_cents=0, service_fee_cents=0, final_cents=0,
                         refund_cents=amount, tariff=self.tariff.effective_kind)
        return self.bill


# --- side effects ---------------------------------------------------------------------------

def _create(s: ChargingSession, e: _Input) -> None:
    s.created_at = e.now
    s._deadlines[SessionInput.COMMAND_EXPIRED] = e.now + s.timeouts.command_ttl
    s._events.append(OrderCreated(
        **s._common(e.now), device_phy_id=s.device_phy_id, charge_mode=s.charge_mode,
        amount_cents=s.tariff.amount_cents))


def _sent(s: ChargingSession, e: _Input) -> None:
    s._deadlines.pop(SessionInput.COMMAND_EXPIRED, None)
    s._deadlines.setdefault(SessionInput.START_TIMEOUT, e.now + s.timeouts.start_timeout)


def _begin(s: ChargingSession, e: _Input) -> None:
    s._deadlines.pop(SessionInput.COMMAND_EXPIRED, None)
    s._deadlines.pop(SessionInput.START_TIMEOUT, None)
    s.start_time = e.now
    limit = e.now + s.timeouts.max_charging
    if s.requested_duration_s:
        limit = min(limit, e.now + s.requested_duration_s + s.timeouts.end_grace)
    s._deadlines[SessionInput.END_OVERDUE] = limit
    s._events.append(ChargingStarted(**s._common(e.now), start_time=e.now))


def _begin_with_progress(s: ChargingSession, e: _Input) -> None:
    _begin(s, e)
    _progress(s, e)


def _progress(s: ChargingSession, e: _Input) -> None:
    assert e.reading is not None
    s._record(e.reading)
    s._deadlines.pop(SessionInput.LOST_ORDER_TIMEOUT, None)
    last = s._last_progress_duration
    if last is None or s.duration_s >= last + 60:
        s._last_progress_duration = s.duration_s
        s._events.append(ChargingProgress(
            **s._common(e.now), reading=e.reading, peak_power_dw=s.peak_power_dw))


def _complete(s: ChargingSession, e: _Input, reason: EndReason, raw: int | None) -> None:
    s.end_reason = reason
    bill = s._settle(e.now)
    s._events.append(ChargingEnded(
        **s._common(e.now), duration_s=s.duration_s, energy_centikwh=s.energy_centikwh,
        end_reason=reason, end_reason_raw=raw))
    s._events.append(OrderCompleted(
        **s._common(e.now), duration_s=s.duration_s, energy_centikwh=s.energy_centikwh,
        peak_power_dw=s.peak_power_dw, end_reason=reason, end_reason_raw=raw, bill=bill,
        start_time=s.start_time, end_time=e.now))


def _settled(s: ChargingSession, e: _Input) -> None:
    assert e.reading is not None and e.end_reason is not None
    s._record(e.reading)
    _complete(s, e, e.end_reason, e.end_reason_raw)


def _alarm(s: ChargingSession, e: _Input) -> None:
    s._events.append(DeviceAlarm(**s._common(e.now), fault_code=e.fault_code,
                                 fault_msg=e.detail))


def _fault(s: ChargingSession, e: _Input) -> None:
    _alarm(s, e)
    _complete(s, e, EndReason.FAULT, None)


def _fail(reason: EndReason | None) -> _Effect:
    def fail(s: ChargingSession, e: _Input) -> None:
        s.end_reason = reason
        s.end_time = e.now
        detail = e.detail or (reason.name.lower() if reason is not None else "failed")
        s._events.append(OrderFailed(**s._common(e.now), end_reason=reason, detail=detail,
                                     bill=s._nothing_charged()))
    return fail


def _fault_before_start(s: ChargingSession, e: _Input) -> None:
    _alarm(s, e)
    _fail(EndReason.FAULT)(s, e)


def _cancel(s: ChargingSession, e: _Input) -> None:
    s.end_reason = EndReason.REMOTE_STOP
    s.end_time = e.now
    s._events.append(OrderCancelled(**s._common(e.now), bill=s._nothing_charged()))


def _watch_idle(s: ChargingSession, e: _Input) -> None:
    s._deadlines.setdefault(SessionInput.LOST_ORDER_TIMEOUT,
                            e.now + s.timeouts.lost_order_after)


def _lost(s: ChargingSession, e: _Input) -> None:
    s.end_reason = EndReason.DEVICE_LOST_ORDER
    bill = s._settle(e.now)
    s._events.append(OrderException(
        **s._common(e.now), duration_s=s.duration_s, energy_centikwh=s.energy_centikwh,
        end_reason=EndReason.DEVICE_LOST_ORDER, bill=bill, start_time=s.start_time,
        end_time=e.now))


# --- the table ------------------------------------------------------------------------------
# (state, input) -> (side effect or None, next state). Inputs from the device
# appear under every state; caller inputs only where they make sense.

_S, _I = OrderState, SessionInput
_TRANSITIONS: dict[tuple[OrderState, SessionInput], tuple[_Effect | None, OrderState]] = {
    (_S.NEW, _I.START_REQUESTED): (_create, _S.PENDING),

    (_S.PENDING, _I.COMMAND_SENT): (_sent, _S.PENDING),
    (_S.PENDING, _I.COMMAND_ACKED): (_sent, _S.PENDING),
    (_S.PENDING, _I.COMMAND_REJECTED): (_fail(None), _S.FAILED),
    (_S.PENDING, _I.COMMAND_EXPIRED): (_fail(EndReason.COMMAND_EXPIRED), _S.FAILED),
    (_S.PENDING, _I.START_TIMEOUT): (_fail(EndReason.NO_CONFIRMATION), _S.FAILED),
    (_S.PENDING, _I.DEVICE_CONFIRMED): (_begin, _S.CHARGING),
    (_S.PENDING, _I.PROGRESS): (_begin_with_progress, _S.CHARGING),
    (_S.PENDING, _I.STOP_REQUESTED): (_cancel, _S.CANCELLED),
    (_S.PENDING, _I.SETTLEMENT): (_settled, _S.COMPLETED),
    (_S.PENDING, _I.PORT_FAULT): (_fault_before_start, _S.FAILED),
    (_S.PENDING, _I.PORT_IDLE): (None, _S.PENDING),

    (_S.CHARGING, _I.COMMAND_SENT): (None, _S.CHARGING),
    (_S.CHARGING, _I.COMMAND_ACKED): (None, _S.CHARGING),
    (_S.CHARGING, _I.COMMAND_REJECTED): (None, _S.CHARGING),
    (_S.CHARGING, _I.DEVICE_CONFIRMED): (None, _S.CHARGING),
    (_S.CHARGING, _I.PROGRESS): (_progress, _S.CHARGING),
    (_S.CHARGING, _I.STOP_REQUESTED): (None, _S.STOPPING),
    (_S.CHARGING, _I.SETTLEMENT): (_settled, _S.COMPLETED),
    (_S.CHARGING, _I.PORT_FAULT): (_fault, _S.COMPLETED),
    (_S.CHARGING, _I.PORT_IDLE): (_watch_idle, _S.CHARGING),
    (_S.CHARGING, _I.LOST_ORDER_TIMEOUT): (_lost, _S.EXCEPTION),
    (_S.CHARGING, _I.END_OVERDUE): (_lost, _S.EXCEPTION),

    (_S.STOPPING, _I.COMMAND_SENT): (None, _S.STOPPING),
    (_S.STOPPING, _I.COMMAND_ACKED): (None, _S.STOPPING),
    (_S.STOPPING, _I.COMMAND_REJECTED): (None, _S.STOPPING),
    (_S.STOPPING, _I.DEVICE_CONFIRMED): (None, _S.STOPPING),
    (_S.STOPPING, _I.PROGRESS): (_progress, _S.STOPPING),
    (_S.STOPPING, _I.STOP_REQUESTED): (None, _S.STOPPING),
    (_S.STOPPING, _I.STOP_FAILED): (None, _S.CHARGING),
    (_S.STOPPING, _I.SETTLEMENT): (_settled, _S.COMPLETED),
    (_S.STOPPING, _I.PORT_FAULT): (_fault, _S.COMPLETED),
    (_S.STOPPING, _I.PORT_IDLE): (_watch_idle, _S.STOPPING),
    (_S.STOPPING, _I.LOST_ORDER_TIMEOUT): (_lost, _S.EXCEPTION),
    (_S.STOPPING, _I.END_OVERDUE): (_lost, _S.EXCEPTION),
}
# A terminal order ignores whatever the device still says about it.
for _state in _TERMINAL:
    for _input in (_I.COMMAND_SENT, _I.COMMAND_ACKED, _I.COMMAND_REJECTED, _I.DEVICE_CONFIRMED,
                   _I.PROGRESS, _I.SETTLEMENT, _I.PORT_FAULT, _I.PORT_IDLE, _I.STOP_FAILED):
        _TRANSITIONS[(_state, _input)] = (None, _state)
del _state, _input


def transitions() -> dict[tuple[OrderState, SessionInput], OrderState]:
    """The transition table without its side effects (for diagrams and tests)."""
    return {key: next_state for key, (_, next_state) in _TRANSITIONS.items()}

