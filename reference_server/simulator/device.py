# One simulated device: a BKV/GN gateway or an AP3000 unit on one TCP link,
# built on bkvcodec's device role (DeviceConnection): the library turns the
# neutral events below into frames and the server's frames into commands; this
# module decides what a device does and when.
#
# Strategy: one trio task per device (run()), and no task per port. The task
# loops: bring the simulation up to the present (catch_up: fire every port event
# and device timer that is due, in time order, at its exact simulated time),
# connect if it is time to, write what is queued, then wait for bytes from the
# server until the next due time. Public actions (SimPort.plug_in,
# SimDevice.drop_network …) run in the caller's task: they catch up, change the
# model synchronously and poke the loop, which cancels its wait and writes what
# changed. Only the loop touches the socket, so writes never interleave.
#
# Offline behaviour follows test-plan.md §1.6: charging continues, nothing is
# sent, settlements are kept until the server answers them (also across a
# reboot, as AP3000 units keep them in EEPROM, ap3000.md §4.3), and on
# reconnection the device registers, reports its ports (progress with the
# accumulated totals) and resends unanswered settlements.
from __future__ import annotations

import ipaddress
import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias, TypeVar, assert_never

import trio

from bkvcodec import (
    CardAnswered,
    CardPresented,
    ChargeMode,
    CommandAcknowledged,
    CommandRejected,
    DeviceConnection,
    DeviceHeartbeat,
    DeviceInput,
    DeviceOutput,
    DeviceRegistered,
    FrameRejected,
    LocalProtocolError,
    MeterReading,
    ModifyCharge,
    ParamsReported,
    PortStatusReported,
    ProgressReported,
    ProtocolFamily,
    QueryParams,
    QueryStatus,
    SendFirmware,
    SendMessage,
    ServerAnswered,
    SetNetworkList,
    SetParams,
    SettlementReported,
    StartCharging,
    StartOta,
    StopCharging,
    UnknownMessage,
)

from ..logs import Logger
from .clock import SimClock
from .faults import SHORT_CIRCUIT, Fault
from .port import SimPort
from .protocols import (
    SETTLEMENT_ANSWERS,
    DeviceSettings,
    PortCondition,
    port_state,
    settlement_reason,
    status_code,
)
from .records import (
    ChargeRecord,
    DeviceStatistics,
    EndCause,
    Garbage,
    JournalEntry,
    JournalItem,
    LinkChange,
)
from .specs import DeviceSpec

__all__ = ["DeviceOffline", "SimDevice"]

_T = TypeVar("_T")
_Outgoing: TypeAlias = DeviceOutput | Garbage | bytes

#: Real seconds a connection attempt or a write may take before it counts as failed.
_CONNECT_TIMEOUT = 10.0
_WRITE_TIMEOUT = 10.0
#: Real seconds to wait for the server's answer before resending a settlement, at least.
_MIN_ANSWER_WAIT = 2.0
_READ_SIZE = 65536
#: Events one catch-up may fire; a guard against a model that stops advancing.
_MAX_EVENTS = 100_000
#: Bytes that could start a frame or a non-frame message; generated junk avoids them
#: so that it is only noise, never a false start (fcfe/fcff, DNY, link, ICCID digits).
_MAGIC_BYTES = frozenset(b"\xfcDl0123456789ABCDEFabcdef")


class DeviceOffline(Exception):
    """The action needs the device's link to the server, and it is down."""


@dataclass(slots=True)
class _Unsettled:
    """A settlement the server has not answered yet."""

    event: SettlementReported
    sent_at: float | None = None


class SimDevice:
    """A simulated BKV/GN gateway or AP3000 unit.

    Made by :class:`Fleet`; runs in one task (:meth:`run`). Times are simulated
    seconds of :attr:`clock`.

    Attributes:
        spec: What the device is.
        phy_id: Its printed id (BKV lower-case, AP3000 upper-case hex).
        protocol: Its protocol family.
        clock: The simulated clock.
        settings: Live cadence and detection settings (the server's parameter
            commands change them).
        random: The device's own seeded random generator (delays, junk bytes).
        powered: False while it reboots.
    """

    def __init__(self, spec: DeviceSpec, *, host: str, port: int, clock: SimClock,
                 seed: int | str = 0, logger: Logger | None = None,
                 journal_limit: int | None = 1000, latency: float = 0.0,
                 source_addresses: Sequence[str] = ()) -> None:
        self.spec = spec
        self.phy_id = spec.phy_id
        self.protocol = spec.protocol
        self.host = host
        self.server_port = port
        self.clock = clock
        self.settings = DeviceSettings.from_profile(spec.protocol, spec.profile)
        self.random = random.Random(f"{seed}:{spec.phy_id}")
        self.log = logger if logger is not None else Logger("warning")
        self.powered = True
        self._ports = {(s, p): SimPort(self, s, p)
                       for s in range(1, spec.sockets + 1) for p in range(1, spec.ports + 1)}
        # The link.
        self._stream: trio.SocketStream | None = None
        self._connection: DeviceConnection | None = None
        self._to_close: list[trio.SocketStream] = []
        self._abandoned: list[trio.SocketStream] = []
        self._answered = False
        self._link_epoch = 0
        self._connect_at = 0.0
        self._boot_at = 0.0
        self._failures = 0
        self._source_addresses = tuple(source_addresses)
        self._next_source: str | None = None
        self._ip_changes = 0
        self._bind_unavailable = False
        self._dribble: tuple[int, float] | None = None
        self.latency = latency
        self._in_transit: deque[tuple[float, bytes]] = deque()  # (trio deadline, bytes)
        # What goes out.
        self._outbox: deque[tuple[float, _Outgoing]] = deque()
        self._unsettled: list[_Unsettled] = []
        self._heartbeat_due = math.inf
        self._progress_due = math.inf
        self._business = self.random.randrange(1, 0xFFFF)
        self._swipes: dict[int, SimPort] = {}
        #: Start commands accepted on the current link (ids are per link).
        self._accepted: dict[str, SimPort] = {}
        self._card_answers: dict[int, CardAnswered] = {}
        self._card_requests = 0
        # The loop.
        self._wait_scope: trio.CancelScope | None = None
        self._poked = False
        self._catching_up = False
        self._changed: trio.Event | None = None
        # Observability.
        self._journal: deque[JournalEntry] = deque(maxlen=journal_limit)
        self._journal_on = journal_limit is None or journal_limit > 0
        self._seq = 0
        self._connections = 0
        self._connect_failures = 0
        self._frames_sent = 0
        self._frames_received = 0
        self._bytes_sent = 0
        self._bytes_received = 0
        self._errors = 0

    def __repr__(self) -> str:
        state = "connected" if self.connected else "offline"
        return f"<SimDevice {self.protocol.value} {self.phy_id} {state}>"

    # --- ports --------------------------------------------------------------------------

    def port(self, port_no: int = 1, socket_no: int = 1) -> SimPort:
        """A port: AP3000 ``port(1)`` … ``port(16)``; BKV ``port(1 or 2, socket_no)``
        (port 1 is hole A, 2 hole B).

        Raises:
            KeyError: The device has no such port.
        """
        try:
            return self._ports[(socket_no, port_no)]
        except KeyError:
            raise KeyError(f"{self.phy_id} has no socket {socket_no} port {port_no}") from None

    @property
    def ports(self) -> tuple[SimPort, ...]:
        """Every port, by socket then port number."""
        return tuple(self._ports.values())

    # --- observability ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """A TCP connection to the server is open (and not abandoned)."""
        return self._stream is not None

    @property
    def registered(self) -> bool:
        """The server has answered something on the current connection."""
        return self._stream is not None and self._answered

    @property
    def journal(self) -> tuple[JournalEntry, ...]:
        """What the device sent, received and went through, oldest first (the last
        ``journal_limit`` entries)."""
        return tuple(self._journal)

    def sent(self, kind: type[_T]) -> list[_T]:
        """Every journaled item of *kind* the device sent (``sent(ProgressReported)``)."""
        return [e.item for e in self._journal
                if e.direction == "sent" and isinstance(e.item, kind)]

    def received(self, kind: type[_T]) -> list[_T]:
        """Every journaled item of *kind* the device received (``received(StopCharging)``)."""
        return [e.item for e in self._journal
                if e.direction == "received" and isinstance(e.item, kind)]

    def statistics(self) -> DeviceStatistics:
        """The device's counters."""
        return DeviceStatistics(
            connected=self.connected, connections=self._connections,
            connect_failures=self._connect_failures, frames_sent=self._frames_sent,
            frames_received=self._frames_received, bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            charging_ports=sum(1 for p in self._ports.values() if p._condition()
                               is PortCondition.CHARGING),
            errors=self._errors)

    # --- waiting ------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake everything waiting on this device (its state changed)."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once *predicate* (called after every change) is true."""
        while not predicate():
            if self._changed is None:
                self._changed = trio.Event()
            await self._changed.wait()

    async def wait_connected(self) -> None:
        """Return once a connection is open."""
        await self.wait_until(lambda: self.connected)

    async def wait_registered(self) -> None:
        """Return once the server has answered on the current connection."""
        await self.wait_until(lambda: self.registered)

    async def wait_disconnected(self) -> None:
        """Return once no connection is open."""
        await self.wait_until(lambda: not self.connected)

    async def wait_received(self, kind: type[_T], where: Callable[[_T], bool] | None = None,
                            *, after: int | None = None) -> _T:
        """Return the first item of *kind* (matching *where*) received after journal
        entry *after* (default: from now on)."""
        floor = self._seq if after is None else after

        def match() -> _T | None:
            for entry in self._journal:
                if (entry.seq > floor and entry.direction == "received"
                        and isinstance(entry.item, kind) and (where is None or where(entry.item))):
                    return entry.item
            return None

        await self.wait_until(lambda: match() is not None)
        found = match()
        assert found is not None
        return found

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest journal entry (0 before the first)."""
        return self._seq

    def _record(self, direction: Literal["sent", "received", "link"], item: JournalItem,
                at: float) -> None:
        self._seq += 1
        if self._journal_on:
            self._journal.append(JournalEntry(seq=self._seq, at=at, direction=direction,
                                              item=item))
        self.notify()

    # --- actions (public) ----------------------------------------------------------------

    async def act(self, change: Callable[[float], None]) -> None:
        """Bring the device up to the present, apply *change* (given the simulated
        time) and let the device loop send what changed. Port actions use it; a
        custom action can too."""
        now = self.clock.now()
        self.catch_up(now)
        change(now)
        self.notify()
        self._poke()
        await trio.lowlevel.checkpoint()

    async def drop_network(self, duration: float | None = None, *,
                           close: bool = False) -> None:
        """Lose the network for *duration* simulated seconds (default: the profile's
        reconnect delay, 5-10 s), then reconnect. Charging continues meanwhile.

        Args:
            duration: How long the device stays away.
            close: Close the socket at once (the server sees the end of the stream
                now) instead of going silent (the server notices only by the lack
                of frames, like a lost mobile cell, test case TC003).
        """
        def change(at: float) -> None:
            self._lose_link("network dropped", at, abandon=not close)
            self._connect_at = at + (self._reconnect_delay() if duration is None else duration)

        await self.act(change)

    async def reboot(self, *, keep_orders: bool | None = None,
                     boot_time: float | None = None) -> None:
        """Power-cycle the device: the link is lost, relays open, and after
        *boot_time* (default: the profile's) it reconnects. Running orders resume
        (*keep_orders*, plan TC004 option B) or are forgotten without a settlement
        (option A); default: the profile's ``keep_orders_on_reboot``."""
        keep = self.spec.profile.keep_orders_on_reboot if keep_orders is None else keep_orders

        def change(at: float) -> None:
            for port in self._ports.values():
                port.power_lost(at, keep_orders=keep)
            self.powered = False
            self._lose_link("reboot", at, abandon=True)
            low, high = self.spec.profile.boot_s
            self._boot_at = at + (self.random.uniform(low, high) if boot_time is None
                                  else boot_time)
            self._connect_at = self._boot_at

        await self.act(change)

    async def change_ip(self, source_address: str | None = None, *,
                        delay: float | None = None) -> None:
        """Reconnect from another local address, as after a cell handover: the old
        link is abandoned and a new one opens after *delay* (default: the
        profile's reconnect delay) from *source_address* (default: the next of the
        fleet's source addresses, else the next 127.0.0.x when the server is on
        loopback, else the same address with a new port)."""
        def change(at: float) -> None:
            self._ip_changes += 1
            self._next_source = source_address or self._pick_source_address()
            self._lose_link("IP change", at, abandon=True)
            self._connect_at = at + (self._reconnect_delay() if delay is None else delay)

        await self.act(change)

    async def send_garbage(self, data: bytes | None = None, *, size: int = 64) -> None:
        """Write junk on the link between two frames: *data*, or *size* random bytes
        that cannot be mistaken for the start of a frame.

        Raises:
            DeviceOffline: The device is not connected.
        """
        if not self.connected:
            raise DeviceOffline(f"{self.phy_id} is not connected")
        junk = data if data is not None else self._junk(size)
        await self.act(lambda at: self._emit(Garbage(data=junk), at))

    def dribble(self, chunk_size: int | None = 1, delay: float = 0.05) -> None:
        """Make the link slow: write *chunk_size* bytes at a time, *delay* simulated
        seconds apart (frames arrive split); ``dribble(None)`` ends it."""
        if chunk_size is not None and chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self._dribble = None if chunk_size is None else (chunk_size, max(0.0, delay))

    async def swipe_card(self, port: SimPort, card_no: str, *,
                         balance_only: bool = False) -> CardAnswered:
        """Present a card at *port*; return the server's answer (see
        :meth:`SimPort.swipe_card`)."""
        if not self.connected:
            raise DeviceOffline(f"{self.phy_id} is not connected")
        if self.protocol is ProtocolFamily.AP3000:
            request_id = int(card_no)  # the device role answers by card number
        else:
            self._card_requests += 1
            request_id = self._card_requests
        self._swipes[request_id] = port
        self._card_answers.pop(request_id, None)
        epoch = self._link_epoch
        await self.act(lambda at: self._emit(CardPresented(
            phy_id=self.phy_id, socket_no=port.socket_no, port_no=port.port_no,
            card_no=card_no, request_id=request_id, balance_only=balance_only), at))
        await self.wait_until(lambda: request_id in self._card_answers
                              or epoch != self._link_epoch)
        answer = self._card_answers.pop(request_id, None)
        if answer is None:
            raise DeviceOffline(f"{self.phy_id} lost its link before the card was answered")
        return answer

    # --- the simulation ------------------------------------------------------------------

    def catch_up(self, now: float | None = None) -> None:
        """Fire every port event and device timer due up to *now* (default: the
        clock's present), in time order, and advance every port to *now*."""
        if self._catching_up:
            return
        self._catching_up = True
        try:
            end = self.clock.now() if now is None else now
            for _ in range(_MAX_EVENTS):
                port, port_at = self._next_port_event()
                device_at = self._next_timer()
                if min(port_at, device_at) > end:
                    break
                if port is not None and port_at <= device_at:
                    port.advance(port_at)
                    port.fire(port_at)
                else:
                    self._fire_timer(device_at, end)
            else:
                self._error("a port's events do not advance; catch-up stopped")
            for port in self._ports.values():
                port.advance(end)
        finally:
            self._catching_up = False

    def _next_port_event(self) -> tuple[SimPort | None, float]:
        best: SimPort | None = None
        best_at = math.inf
        for port in self._ports.values():
            at = port.next_event_at()
            if at is not None and at < best_at:
                best, best_at = port, at
        return best, best_at

    def _next_timer(self) -> float:
        retry = math.inf
        if self._stream is not None:
            # The server's answer takes real time, which the clock does not compress.
            wait = max(self.settings.settlement_retry_s, self.clock.speed * _MIN_ANSWER_WAIT)
            for item in self._unsettled:
                if item.sent_at is not None:
                    retry = item.sent_at + wait
                    break
        return min(self._heartbeat_due, self._progress_due, retry)

    def _fire_timer(self, at: float, end: float) -> None:
        settings = self.settings
        if at >= self._heartbeat_due:
            self._emit(self._heartbeat(), at)
            self._heartbeat_due = _next_due(at, settings.heartbeat_s, end)
        elif at >= self._progress_due:
            for port in self._ports.values():
                if port._condition() is PortCondition.CHARGING:
                    port.advance(at)
                    self._emit(self._progress(port), at)
            self._progress_due = _next_due(at, settings.progress_s, end)
        else:  # a settlement went unanswered: send the oldest again
            for item in self._unsettled:
                if item.sent_at is not None:
                    item.sent_at = at
                    self._emit(item.event, at)
                    break

    def _next_wakeup(self) -> float:
        _, at = self._next_port_event()
        at = min(at, self._next_timer())
        if not self.powered:
            return min(at, self._boot_at)
        if self._stream is None:
            return min(at, self._connect_at)
        return at

    # --- what the ports report (called by SimPort) ---------------------------------------

    def report_port(self, port: SimPort, at: float) -> None:
        """Send the port's state now (a status report, or progress while charging)."""
        if self._stream is None:
            return
        self._emit(self._port_report(port), at)

    def _port_report(self, port: SimPort) -> DeviceOutput:
        condition = port._condition()
        if condition is PortCondition.CHARGING:
            return self._progress(port)
        raw = status_code(self.protocol, condition, port._fault)
        order = port._order
        reading = port.reading()
        fault = port._fault if condition is PortCondition.FAULT else None
        fault_code = 0
        if fault is not None:  # api.md §10.4: BKV the fault bits, AP3000 the status
            fault_code = fault.bkv_bits if self.protocol is ProtocolFamily.BKV else raw
        return PortStatusReported(
            phy_id=self.phy_id, socket_no=port.socket_no, port_no=port.port_no,
            state=port_state(condition), raw_status=raw, fault_code=fault_code,
            fault_msg=fault.name.replace("_", " ") if fault is not None else "",
            power_dw=0, voltage_dv=reading.voltage_dv, current_ma=0,  # the relay is open
            energy_centikwh=reading.energy_centikwh if order is not None else None,
            duration_s=reading.duration_s if order is not None else None,
            order_no=order.order_no if order is not None else None,
            business_no=order.business_no if order is not None else None)

    def _progress(self, port: SimPort) -> ProgressReported:
        order = port._order
        return ProgressReported(
            phy_id=self.phy_id, socket_no=port.socket_no, port_no=port.port_no,
            reading=port.reading(), order_no=order.order_no if order else None,
            business_no=order.business_no if order else None,
            peak_power_dw=port.peak_power_dw())

    def settle(self, port: SimPort, record: ChargeRecord, reading: MeterReading,
               fault: Fault | None, at: float) -> None:
        """Keep the settlement of an ended order and send it (now, or on reconnection)."""
        assert record.end_cause is not None
        reason, raw = settlement_reason(self.protocol, record.end_cause, fault)
        event = SettlementReported(
            phy_id=self.phy_id, socket_no=port.socket_no, port_no=port.port_no,
            reading=reading, end_reason=reason, end_reason_raw=raw,
            order_no=record.order_no, business_no=record.business_no,
            peak_power_dw=round(record.peak_power_w * 10))
        item = _Unsettled(event)
        self._unsettled.append(item)
        if self._stream is not None:
            item.sent_at = at
            self._emit(event, at)

    def _emit(self, item: _Outgoing, at: float) -> None:
        """Queue *item* for the current link (dropped when there is none)."""
        if self._stream is not None:
            self._outbox.append((at, item))
            self._poke()

    def _heartbeat(self) -> DeviceHeartbeat:
        profile = self.spec.profile
        return DeviceHeartbeat(
            phy_id=self.phy_id, protocol=self.protocol, iccid=self.spec.sim_iccid,
            firmware=profile.firmware, rssi=profile.rssi,
            voltage_dv=round(profile.mains_voltage_v * 10))

    # --- commands from the server ---------------------------------------------------------

    def _handle(self, item: DeviceInput, at: float) -> None:
        match item:
            case StartCharging():
                self._start_command(item, at)
            case StopCharging():
                self._stop_command(item, at)
            case QueryStatus():
                self._ack(item.command_id, at)
                self._report_all(at, socket_no=item.socket_no)
            case SetParams():
                self.settings.apply(self.protocol, item.params)
                for port in self._ports.values():
                    port.thresholds_changed()
                self._heartbeat_due = min(self._heartbeat_due, at + self.settings.heartbeat_s)
                self._ack(item.command_id, at)
            case QueryParams():
                # A query for some names (AP3000 0x91-0x93) is answered with those;
                # the device role fills the reply's other fields with its stored values.
                params = self.settings.params(self.protocol)
                if item.names:
                    params = {name: value for name, value in params.items()
                              if name in item.names}
                self._emit(ParamsReported(phy_id=self.phy_id, params=params,
                                          socket_no=item.socket_no,
                                          command_id=item.command_id), at)
            case ModifyCharge():
                self._modify_command(item, at)
            case SetNetworkList() | SendMessage():
                # Any other command the device role received: accepted, with the
                # protocol's default answer.
                self._ack(item.command_id, at)
            case ServerAnswered():
                self._server_answered(item)
            case CardAnswered():
                self._card_answered(item, at)
            case FrameRejected() | UnknownMessage():
                self.log.debug("simulated device got a frame it cannot use",
                               device=self.phy_id, item=type(item).__name__)
            case StartOta() | SendFirmware():
                # No answer here: a BKV gateway answers an OTA with nothing, and the
                # AP3000 device role answers each firmware packet.
                pass
            case _:
                assert_never(item)

    def _ack(self, command_id: str, at: float, *, business_no: int | None = None,
             port_no: int | None = None) -> None:
        self._emit(CommandAcknowledged(command_id=command_id, phy_id=self.phy_id,
                                       business_no=business_no, port_no=port_no), at)

    def _reject(self, command_id: str, at: float, reason: str, raw_code: int) -> None:
        self._emit(CommandRejected(command_id=command_id, phy_id=self.phy_id, reason=reason,
                                   raw_code=raw_code), at)

    def _start_command(self, command: StartCharging, at: float) -> None:
        port = self._choose_port(command.socket_no, command.port_no)
        if port is None:
            refusal = ("no_charger", 1) if command.port_no == 255 else ("no_such_port", 4)
            self._reject(command.command_id, at, *refusal)
            return
        if port._fault is not None:
            code = 10 if port._fault == SHORT_CIRCUIT else 8
            self._reject(command.command_id, at, "port_fault", code)
            return
        running = port._order
        if running is not None:
            if (self._accepted.get(command.command_id) is port
                    or (command.order_no and running.order_no == command.order_no)):
                # A repeated start (a retransmission, or AP3000 limits updated by a
                # repeat, ap3000.md §5.2): answer it again, change nothing.
                self._ack(command.command_id, at, business_no=running.business_no,
                          port_no=port.port_no)
                return
            self._reject(command.command_id, at, "port_busy", 2)
            return
        if not port._detected and self.spec.profile.start_without_charger == "reject":
            self._reject(command.command_id, at, "no_charger", 1)
            return
        limit_s: float | None = command.duration_s
        limit_wh: float | None = command.energy_wh
        if command.mode is ChargeMode.POWER_TIERS:
            limit_s = _tier_seconds(command, port)
        bkv = self.protocol is ProtocolFamily.BKV
        business = self._new_business_no() if bkv else None
        self._ack(command.command_id, at, business_no=business, port_no=port.port_no)
        self._accepted[command.command_id] = port
        # AP3000 (ap3000.md §5.2): timed orders neither stop when full nor obey the
        # maximum time; energy orders obey it; only "until full" stops when full. A
        # BKV gateway ends any order on its full and maximum-time settings.
        port.accept_order(
            at=at, order_no=command.order_no or None, business_no=business,
            command_id=command.command_id, mode=command.mode,
            limit_s=None if command.mode is ChargeMode.UNTIL_FULL else limit_s,
            limit_wh=limit_wh if command.mode is ChargeMode.ENERGY else None,
            stop_when_full=bkv or command.mode is ChargeMode.UNTIL_FULL,
            obey_max_time=bkv or command.mode is not ChargeMode.TIME)

    def _choose_port(self, socket_no: int, port_no: int) -> SimPort | None:
        if port_no != 255:
            return self._ports.get((socket_no, port_no))
        # "Let the device pick the port with a charger plugged in" (ap3000.md §3.2).
        return next((p for p in self._ports.values()
                     if p._detected and p._order is None and p._fault is None), None)

    def _stop_command(self, command: StopCharging, at: float) -> None:
        if command.port_no == 255:
            port = next((p for p in self._ports.values() if p._order is not None
                         and p._order.order_no == command.order_no), None)
        else:
            port = self._ports.get((command.socket_no, command.port_no))
        order = None if port is None else port._order
        if self.protocol is ProtocolFamily.AP3000 and (
                order is None or (command.order_no and order.order_no != command.order_no)):
            # A stop naming another order is not executed (ap3000.md §5.2).
            self._reject(command.command_id, at, "not_running", 2)
            return
        self._ack(command.command_id, at)
        if port is not None:
            port.end_order(EndCause.REMOTE_STOP, at)

    def _modify_command(self, command: ModifyCharge, at: float) -> None:
        port = self._ports.get((command.socket_no, command.port_no))
        if port is None or port._order is None or not port._order.charging:
            self._reject(command.command_id, at, "not_charging", 1)
            return
        port.modify_order(limit_s=command.duration_s, limit_wh=command.energy_wh,
                          stop_when_full=command.stop_when_full)
        self._ack(command.command_id, at)

    def _server_answered(self, answer: ServerAnswered) -> None:
        self._answered = True
        # The server now knows the device on this link (and has dropped an old one
        # it had): the socket left behind by a silent drop can go.
        self._to_close += self._abandoned
        self._abandoned.clear()
        self._failures = 0  # the link works: the next loss starts the back-off anew
        if answer.name in SETTLEMENT_ANSWERS:
            for index, item in enumerate(self._unsettled):
                if item.sent_at is not None:
                    del self._unsettled[index]
                    break

    def _card_answered(self, answer: CardAnswered, at: float) -> None:
        self._card_answers[answer.request_id] = answer
        port = self._swipes.pop(answer.request_id, None)
        if answer.command_id is None:
            return  # AP3000: an accepted card is followed by a start command
        if port is not None and answer.accepted and (port._order is not None
                                                     or port._fault is not None):
            self._reject(answer.command_id, at, "port_busy", 0)
            return
        if not answer.accepted or port is None:
            self._ack(answer.command_id, at)  # the refusal is received
            return
        business = self._new_business_no()
        self._ack(answer.command_id, at, business_no=business, port_no=port.port_no)
        mode = (ChargeMode.TIME if answer.duration_s else
                ChargeMode.ENERGY if answer.energy_wh else ChargeMode.UNTIL_FULL)
        port.accept_order(at=at, order_no=answer.order_no, business_no=business,
                          command_id=answer.command_id, mode=mode,
                          limit_s=answer.duration_s or None, limit_wh=answer.energy_wh or None,
                          stop_when_full=True, obey_max_time=True)

    def _new_business_no(self) -> int:
        """The next BKV session number (1-65535, never 0)."""
        self._business = self._business % 0xFFFF + 1
        return self._business

    def _report_all(self, at: float, *, socket_no: int | None = None) -> None:
        """Report ports: AP3000 in its registration and heartbeat (plus progress for
        charging ports), BKV one status report per port (of *socket_no* if given)."""
        if self.protocol is ProtocolFamily.AP3000:
            self._emit(DeviceRegistered(phy_id=self.phy_id, protocol=self.protocol,
                                        port_count=self.spec.ports), at)
            self._emit(self._heartbeat(), at)
            for port in self._ports.values():
                if port._condition() is PortCondition.CHARGING:
                    self._emit(self._progress(port), at)
            return
        for port in self._ports.values():
            if socket_no is None or port.socket_no == socket_no:
                self._emit(self._port_report(port), at)

    # --- the device's task -------------------------------------------------------------

    async def run(self, *, start_after: float = 0.0) -> None:
        """Live until cancelled: connect, talk, reconnect. An unexpected error is
        logged and the device starts over after a back-off; it never propagates."""
        self._connect_at = self.clock.now() + start_after
        try:
            while True:
                try:
                    await self._loop()
                except Exception as err:  # one device's failure must not spread
                    self._error("simulated device failed", error=repr(err))
                    self._lose_link("device error", self.clock.now(), abandon=False)
                    await self.clock.sleep(self._reconnect_delay())
        finally:
            streams = [*self._to_close, *self._abandoned]
            if self._stream is not None:
                streams.append(self._stream)
            self._stream = None
            for stream in streams:
                await trio.aclose_forcefully(stream)

    async def _loop(self) -> None:
        while True:
            now = self.clock.now()
            self.catch_up(now)
            while self._to_close:
                await trio.aclose_forcefully(self._to_close.pop())
            if not self.powered and now >= self._boot_at:
                self._boot(now)
                continue
            if self.powered and self._stream is None and now >= self._connect_at:
                await self._connect(now)
                continue
            if self._outbox:
                self._flush()
                continue
            if self._in_transit and self._in_transit[0][0] <= trio.current_time():
                await self._write(self._in_transit.popleft()[1])
                continue
            if self._poked:
                self._poked = False
                continue
            deadline = self.clock.to_trio(self._next_wakeup())
            if self._in_transit:
                deadline = min(deadline, self._in_transit[0][0])
            data = await self._wait(deadline)
            if data is not None:
                self._received_bytes(data)

    async def _wait(self, deadline: float) -> bytes | None:
        """Wait for bytes from the server until trio time *deadline* or a poke.
        Returns the bytes (empty at the end of the stream), or None."""
        stream = self._stream
        with trio.CancelScope(deadline=deadline) as scope:
            self._wait_scope = scope
            try:
                if stream is None:
                    await trio.sleep_forever()
                return bytes(await stream.receive_some(_READ_SIZE))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return b""
            finally:
                self._wait_scope = None
        return None

    def _poke(self) -> None:
        self._poked = True
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    def _boot(self, now: float) -> None:
        self.powered = True
        for port in self._ports.values():
            port.booted(now)
        self.notify()

    async def _connect(self, now: float) -> None:
        source = self._next_source
        try:
            with trio.fail_after(_CONNECT_TIMEOUT):
                stream = await trio.open_tcp_stream(self.host, self.server_port,
                                                    local_address=source)
        except (OSError, trio.TooSlowError) as err:
            if source is not None and not _refused(err):
                # This host cannot use that source address (binding failed): from now
                # on an IP change only takes a new port.
                self.log.warning("source address unavailable", device=self.phy_id,
                                 source=source, error=repr(err))
                self._bind_unavailable = True
                self._next_source = None
                return
            self._connect_failures += 1
            self._failures += 1
            self._connect_at = self.clock.now() + self._reconnect_delay()
            self.log.debug("connection failed", device=self.phy_id, error=repr(err))
            return
        self._next_source = None
        self._stream = stream
        self._connection = DeviceConnection(
            protocol=self.protocol, phy_id=self.phy_id, iccid=self.spec.sim_iccid,
            port_count=self.spec.ports if self.protocol is ProtocolFamily.AP3000 else None)
        self._answered = False
        self._accepted.clear()
        self._connections += 1
        self._link_epoch += 1
        try:
            local = stream.socket.getsockname()
            detail = f"{local[0]}:{local[1]}"
        except OSError:
            detail = "unknown"
        at = self.clock.now()
        self._record("link", LinkChange(up=True, detail=detail), at)
        self.log.debug("device connected", device=self.phy_id, local=detail)
        self._heartbeat_due = at + self.settings.heartbeat_s
        self._progress_due = at + self.settings.progress_s
        if self.protocol is ProtocolFamily.BKV:
            self._emit(self._heartbeat(), at)  # a BKV gateway registers by its heartbeat
        self._report_all(at)
        for item in self._unsettled:
            item.sent_at = at
            self._emit(item.event, at)

    def _lose_link(self, reason: str, at: float, *, abandon: bool) -> None:
        """The link is gone: close it (or, silently, leave it for later)."""
        stream = self._stream
        if stream is None:
            return
        (self._abandoned if abandon else self._to_close).append(stream)
        self._stream = None
        self._connection = None
        self._outbox.clear()
        self._in_transit.clear()
        self._heartbeat_due = self._progress_due = math.inf
        for item in self._unsettled:
            item.sent_at = None
        self._link_epoch += 1
        self._record("link", LinkChange(up=False, detail=reason), at)
        self.log.debug("device link lost", device=self.phy_id, reason=reason)
        self._poke()

    def _link_failed(self, reason: str) -> None:
        """The server closed the link or a write failed: reconnect after a back-off."""
        now = self.clock.now()
        self._lose_link(reason, now, abandon=False)
        self._failures += 1
        self._connect_at = now + self._reconnect_delay()

    def _reconnect_delay(self) -> float:
        profile = self.spec.profile
        low, high = profile.reconnect_delay_s
        factor = 1 << min(max(self._failures - 1, 0), 16)
        return min(self.random.uniform(low, high) * factor, profile.max_backoff_s)

    def _pick_source_address(self) -> str | None:
        if self._bind_unavailable:
            return None
        if self._source_addresses:
            return self._source_addresses[self._ip_changes % len(self._source_addresses)]
        try:
            address = ipaddress.ip_address(self.host)
        except ValueError:
            return None  # a host name: its address family is not known here
        if address.version != 4 or not address.is_loopback:
            return None
        return f"127.0.0.{2 + (self._ip_changes - 1) % 250}"

    def _received_bytes(self, data: bytes) -> None:
        connection = self._connection
        if not data or connection is None:
            self._link_failed("closed by the server")
            return
        at = self.clock.now()
        self.catch_up(at)
        self._bytes_received += len(data)
        try:
            inputs = connection.receive_data(data, time.time())
        except Exception as err:  # a library bug must not take the device down
            self._error("cannot read the server's bytes", error=repr(err))
            return
        for item in inputs:
            self._frames_received += 1
            self._record("received", item, at)
            self._handle(item, at)
        direct = connection.data_to_send()
        if direct:
            self._emit(direct, at)

    def _flush(self) -> None:
        """Encode everything queued into one write, due after the link's latency."""
        connection = self._connection
        chunks: list[bytes] = []
        while self._outbox and connection is not None:
            at, item = self._outbox.popleft()
            try:
                data = self._encode(connection, item)
            except (LocalProtocolError, ValueError) as err:
                self._error("cannot encode", item=type(item).__name__, error=repr(err))
                continue
            if not isinstance(item, bytes):
                self._record("sent", item, at)
            if not isinstance(item, Garbage | bytes):
                self._frames_sent += 1
            chunks.append(data)
        if chunks:
            self._in_transit.append((trio.current_time() + self.latency, b"".join(chunks)))

    def _encode(self, connection: DeviceConnection, item: _Outgoing) -> bytes:
        if isinstance(item, Garbage):
            return connection.data_to_send() + item.data
        if isinstance(item, bytes):
            return item
        if self.protocol is ProtocolFamily.AP3000:
            self._sync_port_table(connection)
        connection.send(item, time.time())
        return connection.data_to_send()

    def _sync_port_table(self, connection: DeviceConnection) -> None:
        """Give the AP3000 device role this unit's port statuses: its heartbeat and
        registration report them."""
        for port in self._ports.values():
            connection.set_port_status(port.port_no,
                                       status_code(self.protocol, port._condition(),
                                                   port._fault))

    async def _write(self, data: bytes) -> None:
        stream = self._stream
        if stream is None or not data:
            return
        size, delay = self._dribble or (len(data), 0.0)
        try:
            for start in range(0, len(data), size):
                with trio.fail_after(_WRITE_TIMEOUT):
                    await stream.send_all(data[start:start + size])
                if delay:
                    await self.clock.sleep(delay)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError,
                OSError) as err:
            if self._stream is stream:
                self._link_failed(f"write failed: {err!r}")
            return
        self._bytes_sent += len(data)

    def _junk(self, size: int) -> bytes:
        allowed = [b for b in range(256) if b not in _MAGIC_BYTES]
        return bytes(self.random.choice(allowed) for _ in range(size))

    def _error(self, msg: str, **fields: object) -> None:
        self._errors += 1
        self.log.error(msg, device=self.phy_id, **fields)


def _refused(err: BaseException) -> bool:
    """Whether a failed connection attempt was refused or timed out at the server's
    end, rather than failing here (trio reports each attempt inside a group)."""
    if isinstance(err, ConnectionRefusedError | TimeoutError | trio.TooSlowError):
        return True
    if isinstance(err, BaseExceptionGroup):
        return any(_refused(inner) for inner in err.exceptions)
    cause = err.__cause__
    return cause is not None and _refused(cause)


def _next_due(fired_at: float, period: float, now: float) -> float:
    """The next due time of a periodic timer that fired at *fired_at*; missed
    periods (the loop was held up) are skipped, not sent in a burst."""
    due = fired_at + period
    return due if due > now else now + period


def _tier_seconds(command: StartCharging, port: SimPort) -> float | None:
    """How long a power-tier order's money lasts: the prepaid amount at the price of
    the tier covering the charger's power (an approximation of the device's tier billing)."""
    if not command.power_tiers or not command.amount_cents:
        return None
    power = port.charger.power_w if port.charger is not None else 0.0
    tier = next((t for t in command.power_tiers if power <= t.max_power_w),
                command.power_tiers[-1])
    if tier.price_cents <= 0:
        return None
    return command.amount_cents / tier.price_cents * tier.minutes * 60.0
