# One simulated port: the charger plugged into it, the device's view of it
# (plug sensor, relay, fault latch) and the order running on it, all on simulated
# time. The logic is synchronous and takes the simulated time as an argument; the
# port never sleeps and owns no task. Its device's single loop asks each port
# when its next event is due (plug detected, limit reached, battery full …),
# advances it there and fires it, so reported values do not depend on how
# promptly the loop wakes. The async methods at the end are the public actions
# (plug in, unplug, fault …): each brings the device up to the present, changes
# the port and wakes the device loop to send what changed.
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bkvcodec import CardAnswered, ChargeMode, EndReason, MeterReading, ProtocolFamily

from .charger import Charger, ChargerState
from .faults import SHORT_CIRCUIT, Fault
from .protocols import PortCondition, server_end_reason
from .records import ChargeRecord, EndCause

if TYPE_CHECKING:
    from .device import SimDevice

__all__ = ["SimPort"]

#: Slack for comparing simulated times (s) and energies (Wh) that closed-form
#: event times should have made equal.
_EPSILON = 1e-6


def meter(value: float) -> int:
    """A meter's whole-unit reading of *value*: rounded down, as meters count."""
    return math.floor(value + _EPSILON)


class _Order:
    """An order on a port while it runs (mutable; snapshots are ChargeRecords)."""

    __slots__ = ("accepted_at", "below_full_since", "below_no_load_since", "business_no",
                 "charging", "command_id", "duration_s", "energy_wh", "limit_s", "limit_wh",
                 "mode", "obey_max_time", "order_no", "peak_w", "started_at", "stop_when_full")

    def __init__(self, *, order_no: str | None, business_no: int | None,
                 command_id: str | None, mode: ChargeMode, limit_s: float | None,
                 limit_wh: float | None, stop_when_full: bool, obey_max_time: bool,
                 accepted_at: float) -> None:
        self.order_no = order_no
        self.business_no = business_no
        self.command_id = command_id
        self.mode = mode
        self.limit_s = limit_s
        self.limit_wh = limit_wh
        self.stop_when_full = stop_when_full
        self.obey_max_time = obey_max_time
        self.accepted_at = accepted_at
        self.started_at: float | None = None
        self.charging = False
        self.duration_s = 0.0
        self.energy_wh = 0.0
        self.peak_w = 0.0
        self.below_full_since: float | None = None
        self.below_no_load_since: float | None = None

    def record(self, *, ended_at: float | None = None, cause: EndCause | None = None,
               end_reason: EndReason | None = None, reported: MeterReading | None = None
               ) -> ChargeRecord:
        return ChargeRecord(
            order_no=self.order_no, business_no=self.business_no, command_id=self.command_id,
            mode=self.mode, limit_s=self.limit_s, limit_wh=self.limit_wh,
            accepted_at=self.accepted_at, started_at=self.started_at, ended_at=ended_at,
            duration_s=self.duration_s, energy_wh=self.energy_wh, peak_power_w=self.peak_w,
            end_cause=cause, end_reason=end_reason, reported=reported)


def _latches(protocol: ProtocolFamily, fault: Fault) -> bool:
    """Whether the port keeps *fault* (and reports it) after it trips."""
    return protocol is ProtocolFamily.BKV or fault.ap3000_port_status is not None


def _first(since: float | None, at: float) -> float:
    return at if since is None else since


def _min(*times: float | None) -> float | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


class SimPort:
    """A port of a simulated device (a BKV socket's hole, or an AP3000 port).

    Get one with :meth:`SimDevice.port`. Actions are coroutines that return once
    the port has changed; what the device sends about it follows at once (or on
    reconnection). Times are simulated seconds.
    """

    def __init__(self, device: SimDevice, socket_no: int, port_no: int) -> None:
        self.device = device
        self.socket_no = socket_no
        self.port_no = port_no
        self._charger: Charger | None = None
        self._physics: ChargerState | None = None
        self._detected = False
        self._detect_at: float | None = None
        self._fault: Fault | None = None
        self._full = False
        self._order: _Order | None = None
        self._history: list[ChargeRecord] = []
        self._t = 0.0

    def __repr__(self) -> str:
        return (f"<SimPort {self.device.phy_id} socket {self.socket_no} port {self.port_no} "
                f"{self._condition().value}>")

    # --- what a test can read ------------------------------------------------------------

    @property
    def charger(self) -> Charger | None:
        """The charger plugged in, if any (the physical truth, not the sensor's)."""
        return self._charger

    @property
    def fault(self) -> Fault | None:
        """The latched fault, if any."""
        return self._fault

    @property
    def condition(self) -> PortCondition:
        """The port as the device reports it."""
        self.device.catch_up()
        return self._condition()

    def _condition(self) -> PortCondition:
        if self._fault is not None:
            return PortCondition.FAULT
        if self._order is not None and self._order.charging:
            return PortCondition.CHARGING
        if self._detected:
            return PortCondition.FULL if self._full else PortCondition.PLUGGED
        return PortCondition.EMPTY

    @property
    def charging(self) -> bool:
        """The relay is closed for an order."""
        self.device.catch_up()
        return self._order is not None and self._order.charging

    @property
    def power_w(self) -> float:
        """The power drawn now (W): the charger's while the relay is closed, else 0."""
        self.device.catch_up()
        return self._power_w()

    def _power_w(self) -> float:
        order = self._order
        if order is not None and order.charging and self._physics is not None:
            return self._physics.power_w
        return 0.0

    @property
    def order(self) -> ChargeRecord | None:
        """The running order's truth up to now, if one runs."""
        self.device.catch_up()
        return None if self._order is None else self._order.record()

    @property
    def history(self) -> tuple[ChargeRecord, ...]:
        """Every order that ended on this port, oldest first."""
        return tuple(self._history)

    def reading(self) -> MeterReading:
        """The meters as the device reports them (whole units, rounded down)."""
        order = self._order
        power = self._power_w()
        volts = self.device.spec.profile.mains_voltage_v
        return MeterReading(
            duration_s=meter(order.duration_s) if order else 0,
            energy_centikwh=meter(order.energy_wh / 10) if order else 0,
            power_dw=round(power * 10), voltage_dv=round(volts * 10),
            current_ma=round(power / volts * 1000) if volts > 0 else 0)

    def peak_power_dw(self) -> int:
        """The running order's peak power in 0.1 W (0 without an order)."""
        return round(self._order.peak_w * 10) if self._order else 0

    # --- time -----------------------------------------------------------------------------

    def advance(self, to: float) -> None:
        """Let simulated time pass up to *to*: the charger charges while the relay is
        closed (the device calls this; it is a no-op for earlier times)."""
        dt = to - self._t
        if dt <= 0:
            return
        order = self._order
        if order is not None and order.charging:
            settings = self.device.settings
            physics = self._physics
            if physics is None:  # the plug is out but not yet detected: nothing flows
                order.below_full_since = _first(order.below_full_since, self._t)
                order.below_no_load_since = _first(order.below_no_load_since, self._t)
            else:
                order.peak_w = max(order.peak_w, physics.power_w)
                for attr, threshold in (("below_full_since", settings.full_power_w),
                                        ("below_no_load_since", settings.no_load_power_w)):
                    if getattr(order, attr) is None:
                        wait = physics.seconds_until_power_at_most(threshold)
                        if wait is not None and wait <= dt:
                            setattr(order, attr, self._t + wait)
                order.energy_wh += physics.advance(dt)
            order.duration_s += dt
        self._t = to

    def next_event_at(self) -> float | None:
        """When this port next needs the device's attention (simulated time), or None."""
        if not self.device.powered:
            return None
        order = self._order
        if order is None:
            return self._detect_at
        settings = self.device.settings
        if order.started_at is None:
            return _min(self._detect_at, order.accepted_at + self.device.spec.profile.plug_wait_s)
        if not order.charging:
            return self._detect_at
        t, physics = self._t, self._physics
        candidates: list[float | None] = [self._detect_at]
        if order.limit_s is not None:
            candidates.append(t + order.limit_s - order.duration_s)
        if order.obey_max_time:
            candidates.append(t + settings.max_charge_time_s - order.duration_s)
        if order.limit_wh is not None:
            if physics is not None:
                wait = physics.seconds_until_energy(order.limit_wh - order.energy_wh)
                candidates.append(None if wait is None else t + wait)
        if order.stop_when_full:
            since = self._low_since(order.below_full_since, settings.full_power_w)
            candidates.append(None if since is None else since + settings.full_delay_s)
        since = self._low_since(order.below_no_load_since, settings.no_load_power_w)
        candidates.append(None if since is None else since + settings.no_load_delay_s)
        return _min(*candidates)

    def _low_since(self, since: float | None, threshold_w: float) -> float | None:
        """When the power fell (or will fall) to *threshold_w*, None if never."""
        if since is not None:
            return since
        if self._physics is None:
            return self._t
        wait = self._physics.seconds_until_power_at_most(threshold_w)
        return None if wait is None else self._t + wait

    def fire(self, at: float) -> None:
        """Handle whatever is due at *at* (the device advanced the port there)."""
        if self._detect_at is not None and self._detect_at <= at + _EPSILON:
            self._detect_at = None
            self._sensor_changed(at)
        order = self._order
        if order is None:
            return
        settings = self.device.settings
        due = at + _EPSILON
        if order.started_at is None:
            if order.accepted_at + self.device.spec.profile.plug_wait_s <= due:
                self._end(EndCause.NO_LOAD, at)
            return
        if not order.charging:
            return
        if order.limit_s is not None and order.duration_s + _EPSILON >= order.limit_s:
            self._end(EndCause.TIME_LIMIT, at)
        elif order.limit_wh is not None and order.energy_wh + _EPSILON >= order.limit_wh:
            self._end(EndCause.ENERGY_LIMIT, at)
        elif order.obey_max_time and order.duration_s + _EPSILON >= settings.max_charge_time_s:
            self._end(EndCause.MAX_TIME, at)
        elif (order.stop_when_full and order.below_full_since is not None
              and order.below_full_since + settings.full_delay_s <= due):
            self._end(EndCause.FULL, at)
        elif (order.below_no_load_since is not None
              and order.below_no_load_since + settings.no_load_delay_s <= due):
            self._end(EndCause.NO_LOAD, at)

    def thresholds_changed(self) -> None:
        """The device's detection settings changed: measure below-threshold times anew."""
        if self._order is not None:
            self._order.below_full_since = None
            self._order.below_no_load_since = None

    # --- what the device does with the port ----------------------------------------------

    def _sensor_changed(self, at: float) -> None:
        """The plug sensor now sees what is physically there."""
        plugged = self._charger is not None
        if plugged == self._detected:
            return
        self._detected = plugged
        self._full = False
        order = self._order
        if plugged:
            if self._fault is None and order is not None and order.started_at is None:
                self._start(at)
                return
        elif order is not None:
            self._end(EndCause.UNPLUGGED, at)
            return
        self.device.report_port(self, at)

    def accept_order(self, *, at: float, order_no: str | None, business_no: int | None,
                     command_id: str | None, mode: ChargeMode, limit_s: float | None,
                     limit_wh: float | None, stop_when_full: bool, obey_max_time: bool) -> None:
        """Take an order the device accepted; charge at once if a plug is detected."""
        self._order = _Order(order_no=order_no, business_no=business_no,
                             command_id=command_id, mode=mode, limit_s=limit_s,
                             limit_wh=limit_wh, stop_when_full=stop_when_full,
                             obey_max_time=obey_max_time, accepted_at=at)
        if self._detected:
            self._start(at)

    def _start(self, at: float) -> None:
        order = self._order
        assert order is not None
        order.started_at = at if order.started_at is None else order.started_at
        order.charging = True
        self._full = False
        self.device.report_port(self, at)
        self.device.notify()

    def modify_order(self, *, limit_s: float | None, limit_wh: float | None,
                     stop_when_full: bool) -> None:
        """Change the running order's limit (AP3000 ``0x8A``)."""
        order = self._order
        assert order is not None
        order.limit_s, order.limit_wh = limit_s, limit_wh
        order.stop_when_full = stop_when_full

    def end_order(self, cause: EndCause, at: float) -> None:
        """End the running order (a stop command, a fault …), if there is one."""
        if self._order is not None:
            self._end(cause, at)

    def _end(self, cause: EndCause, at: float, *, report: bool = True,
             fault: Fault | None = None) -> None:
        order = self._order
        assert order is not None
        device = self.device
        self._order = None
        reading = MeterReading(
            duration_s=meter(order.duration_s), energy_centikwh=meter(order.energy_wh / 10),
            power_dw=0, voltage_dv=round(device.spec.profile.mains_voltage_v * 10),
            current_ma=0)
        fault = fault or self._fault
        reported = None if cause is EndCause.LOST else reading
        record = order.record(ended_at=at, cause=cause,
                              end_reason=server_end_reason(device.protocol, cause, fault),
                              reported=reported)
        self._history.append(record)
        self._full = cause is EndCause.FULL and self._charger is not None
        if cause is not EndCause.LOST:
            device.settle(self, record, reading, fault, at)
        if report:
            device.report_port(self, at)
        device.notify()

    def power_lost(self, at: float, *, keep_orders: bool) -> None:
        """The device lost power: the relay opens; the order pauses or is forgotten."""
        if self._order is not None and not keep_orders:
            self._end(EndCause.LOST, at, report=False)
        elif self._order is not None:
            self._order.charging = False  # resumes on boot
        self._detect_at = None

    def booted(self, at: float) -> None:
        """The device is back: read the sensor; resume a paused order."""
        self._detected = self._charger is not None
        order = self._order
        if order is None:
            return
        if not self._detected or self._fault is not None:
            if order.started_at is not None:
                self._end(EndCause.UNPLUGGED, at, report=False)
        else:
            order.started_at = at if order.started_at is None else order.started_at
            order.charging = True

    def _plug_changed(self, at: float) -> None:
        """The plug went in or out: the sensor notices after its delay."""
        if (self._charger is not None) == self._detected:
            self._detect_at = None
        else:
            low, high = self.device.spec.profile.plug_detect_s
            self._detect_at = at + self.device.random.uniform(low, high)

    # --- actions (public) --------------------------------------------------------------

    async def plug_in(self, charger: Charger | None = None) -> None:
        """Plug a charger in (the default :class:`Charger` if None). The device
        notices after its plug-detection delay; an order waiting for the plug then
        starts.

        Raises:
            RuntimeError: A charger is already plugged in.
        """
        if self._charger is not None:
            raise RuntimeError(f"{self!r}: a charger is already plugged in")
        chosen = charger or Charger()

        def change(at: float) -> None:
            self._charger, self._physics = chosen, chosen.start()
            self._plug_changed(at)

        await self.device.act(change)

    async def unplug(self) -> None:
        """Pull the plug. Power stops at once; the device notices after its
        plug-detection delay and settles a running order (reason unplugged)."""
        def change(at: float) -> None:
            self._charger, self._physics = None, None
            self._plug_changed(at)

        await self.device.act(change)

    async def inject_fault(self, fault: Fault = SHORT_CIRCUIT) -> None:
        """A fault trips the port: the relay opens, the status reports the fault and
        a running order is settled with reason fault. On AP3000 a fault without a
        port status code only stops the order (see :class:`Fault`)."""
        def change(at: float) -> None:
            latches = _latches(self.device.protocol, fault)
            if latches:
                self._fault = fault
                self.device.report_port(self, at)  # the alarm first, then the settlement
            if self._order is not None:
                self._end(EndCause.FAULT, at, fault=fault, report=not latches)

        await self.device.act(change)

    async def clear_fault(self) -> None:
        """Clear a latched fault (a technician's repair); the port reports its state."""
        def change(at: float) -> None:
            if self._fault is not None:
                self._fault = None
                self.device.report_port(self, at)

        await self.device.act(change)

    async def stop_at_device(self) -> None:
        """The user stops the charge at the device (button or card): reason user_stop."""
        await self.device.act(lambda at: self.end_order(EndCause.USER_STOP, at))

    async def swipe_card(self, card_no: str, *, balance_only: bool = False) -> CardAnswered:
        """Present a card at this port and return the server's answer. An accepted
        card starts an order (BKV: the answer carries it; AP3000: the server sends
        a start) that waits for the plug as usual.

        Args:
            card_no: BKV: 12 hex digits (6 card bytes); AP3000: the decimal card
                number.
            balance_only: Ask for the balance only.

        Raises:
            DeviceOffline: The device is not connected, or the link dropped before
                the answer.
        """
        return await self.device.swipe_card(self, card_no, balance_only=balance_only)

    # --- waiting ------------------------------------------------------------------------

    async def wait_until_charging(self) -> None:
        """Return once the relay is closed for an order."""
        await self.device.wait_until(lambda: self._order is not None and self._order.charging)

    async def wait_until_idle(self) -> None:
        """Return once no order runs on the port."""
        await self.device.wait_until(lambda: self._order is None)

    @property
    def last_charge(self) -> ChargeRecord | None:
        """The most recent order that ended on this port, if any."""
        return self._history[-1] if self._history else None

    async def wait_charge_ended(self, *, order_no: str | None = None) -> ChargeRecord:
        """Return the record of an order once it has ended: the one named by
        *order_no* (AP3000; at once if it already ended); else the one running now;
        else, if none runs, the last one that ended (so it can follow the action
        that ended it), or the next to end if none has.
        """
        if order_no is not None:
            def named() -> ChargeRecord | None:
                return next((r for r in self._history if r.order_no == order_no), None)

            await self.device.wait_until(lambda: named() is not None)
            found = named()
            assert found is not None
            return found
        running = self._order
        if running is None:
            if self._history:
                return self._history[-1]
            await self.device.wait_until(lambda: bool(self._history))
            return self._history[0]
        await self.device.wait_until(lambda: self._order is not running)
        return next(r for r in reversed(self._history)
                    if r.accepted_at == running.accepted_at
                    and r.command_id == running.command_id)
