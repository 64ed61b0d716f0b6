# The charging service: every decision of the server, in one place.
#
# The gateway hands it the library's protocol-neutral events per TCP read; the
# HTTP API calls its operations. It keeps what it needs to decide in memory
# (devices, open orders with their ChargingSession, in-flight commands) and
# writes each state change with the events it produces in ONE transaction (the
# outbox, api.md §4), through a _Changes object committed by _commit(). Things
# that must happen only after the commit (sending a command, waking the webhook
# worker, answering a card) ride along as after-commit actions.
#
# Why memory and not a read per event: one process owns the database, so the
# caches cannot go stale, and a status report of a 250-socket gateway must not
# cost 500 queries. What must survive a restart is always in the database first;
# start() rebuilds the caches from it (open orders resume their sessions with
# ChargingSession.resume, event ids continue, unanswered commands are resent).
#
# Time: the service reads a SteadyClock (clock.py) built on the injected wall clock,
# so its timers (session deadlines, silence, command expiry) keep their length when
# the wall clock steps; the timer task's own intervals count trio's monotonic clock.
#
# Memory never runs ahead of the database (api.md §11.1). A state change updates
# the caches before its commit; each such update registers an undo with the
# _Changes, and a failed commit runs them: the orders it touched are resumed from
# their last stored row, as after a restart, popped commands and ports come back.
# The gateway then closes the connection without the held answers, and the
# device's retransmission finds the order as the database has it and settles it
# once. Device reports are checked for plausibility first (money.py): an
# implausible value is capped and raises order.anomaly.
from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, assert_never

import trio

from bkvcodec import (
    AlarmRaised,
    AnswerWithheld,
    CardPresented,
    ChargeMode,
    ChargingProgress,
    ChargingSession,
    ChargingStarted,
    Command,
    CommandAcknowledged,
    CommandDropped,
    CommandRejected,
    CommandSent,
    CommandTimedOut,
    ConnectionEvent,
    DeviceHeartbeat,
    DeviceRegistered,
    Direction,
    FirmwareProgress,
    FrameRejected,
    LocalProtocolError,
    MeterReading,
    ModemIdentified,
    OrderCancelled,
    OrderCompleted,
    OrderEvent,
    OrderException,
    OrderFailed,
    OrderState,
    ParamsReported,
    PortState,
    PortStatusReported,
    PowerTierSpec,
    ProgressReported,
    ProtocolFamily,
    QueryParams,
    SendFirmware,
    ServerConnection,
    SessionTimeouts,
    SetParams,
    SettlementReported,
    StartCharging,
    StartConfirmed,
    StartOta,
    StopCharging,
    Tariff,
    TariffKind,
    UnidentifiedStream,
    UnknownMessage,
    UpgradeRequested,
)
from bkvcodec.ap3000 import Ap3000Message, Ap3000ParameterCommand, parameter_command
from bkvcodec.bkv import BkvMessage

from .clock import SteadyClock
from .commands import command_from_record, command_kind, command_payload, message_json
from .config import Config
from .errors import (
    DeviceNotFound,
    DeviceRejected,
    EventNotFound,
    InvalidArgument,
    InvalidCommand,
    NoIdlePort,
    OrderNotFound,
    PortBusy,
    PortFault,
    PortNotFound,
    ServiceError,
    Unavailable,
)
from .eventdata import order_event_data
from .gateway import DeviceLink, Gateway
from .identity import DeviceIdentities
from .logs import Logger
from .metrics import Metrics
from .money import Anomaly, backwards, cap_reading, cap_tier_minutes
from .requests import AUTO_PORT, ChargeRequest, ChargeResult, FirmwareOta, OtaRequest, StopRequest
from .storage import (
    OPEN_ORDER_STATES,
    ROUTINE_EVENT_TYPES,
    ActiveOrderExists,
    AsyncDatabase,
    CardExists,
    CardSettlement,
    CardStatus,
    CmdLogRow,
    CommandRecord,
    CommandStatus,
    Database,
    DeviceIdentity,
    DeviceRecord,
    DeviceTouch,
    DuplicateOrderNo,
    EventRecord,
    InsufficientFunds,
    NewCommand,
    NewEvent,
    NewOrder,
    OrderRecord,
    PortRecord,
    ProgressSample,
    card_key,
    dump_json,
    format_order_no,
)
from .units import kwh, volts, watts

__all__ = ["ChargingService"]

#: Storage errors that are the database refusing a change by its rules, not failing.
_REFUSALS = (ActiveOrderExists, DuplicateOrderNo, CardExists, InsufficientFunds)

#: The events that report on a device the connection has named.
_DeviceReport: TypeAlias = (
    DeviceRegistered | DeviceHeartbeat | PortStatusReported | StartConfirmed
    | ProgressReported | SettlementReported | AlarmRaised | CardPresented | ParamsReported
    | UpgradeRequested | UnknownMessage
)

#: Push every 10th heartbeat of a device (the 1st, 11th, 21st …).
HEARTBEAT_SAMPLING = 10
#: How often the timer task runs (session clocks, expiry, offline sweep, flushes).
TICK = 0.25
#: Flush batched device touches and frame logs at least this often (seconds).
FLUSH_EVERY = 1.0
#: Refresh the storage statistics behind the /metrics gauges this often (seconds).
STATISTICS_EVERY = 15.0
#: Prune cmd_logs, nonces, idempotency answers and what retention_days let go this
#: often (seconds; the first time at the first tick).
PRUNE_EVERY = 3600.0
#: Most rows of each table one retention batch deletes (one transaction each).
RETENTION_BATCH = 2000
#: Most frame-log rows buffered between flushes; beyond, the oldest are dropped.
MAX_BUFFERED_LOGS = 50_000
#: Most rows one database call of a flush writes. A second's frame log of 10,000
#: devices is ~1,900 rows and took the database thread ~100 ms, during which a
#: charge request's commit waited; in chunks, other calls wait for one chunk at
#: most (bench/RESULTS.md).
FLUSH_CHUNK = 250

_Op = Callable[[Database], object]
#: Times a charge request takes a new order number after another node took its one.
_ORDER_NO_ATTEMPTS = 5


class Ownership(Protocol):
    """The cluster's ownership of devices, as the service uses it (a
    :class:`~reference_server.cluster.ClusterNode`)."""

    async def claim(self, phy_id: str) -> int:
        """Become the device's owner; returns the claim's epoch."""

    async def loaded(self, phy_id: str) -> None:
        """The claimed device's state is loaded: what its previous owner left
        unfinished may run."""

    async def broadcast(self, change: str) -> None:
        """Tell the other nodes that shared state (``identities``) changed."""


@dataclass(eq=False)
class _Device:
    id: int
    phy_id: str
    protocol: ProtocolFamily
    online: bool
    last_seen: float
    firmware: str | None = None
    iccid: str | None = None
    #: The signal strength last stored (None: never reported).
    rssi: int | None = None
    #: The ports per socket the device has, when it told: its registration, or an
    #: AP3000 heartbeat, which lists every port (None: not told).
    port_count: int | None = None
    heartbeats: int = 0
    link_id: int | None = None
    #: The epoch of this node's claim on the device (clustered servers; 0 otherwise).
    epoch: int = 0


@dataclass(eq=False)
class _Order:
    record: OrderRecord
    session: ChargingSession
    device: _Device
    start_command: str | None = None
    stop_command: str | None = None
    #: The link of the last meter report and that report as the device sent it.
    reported_on: int | None = None
    reported: MeterReading | None = None
    #: The anomaly reasons already raised for progress reports (once per order).
    anomalies: set[str] = field(default_factory=set)


@dataclass(eq=False)
class _OpenCommand:
    id: str
    kind: str
    device: _Device
    order_no: str | None
    handed_to: int | None = None  # the link the command was given to
    #: The link whose first frame of the command gave ``commands.msg_id``.
    msg_id_link: int | None = None


@dataclass(eq=False)
class _ParamsWait:
    """A partial AP3000 parameter set waiting for the device's current values."""

    set_command: _OpenCommand
    command: SetParams
    owner: Ap3000ParameterCommand
    #: When the set expires: the query's answer must come before.
    deadline: float


@dataclass(eq=False)
class _Changes:
    """The writes of one state change, committed together, and what follows them."""

    ops: list[_Op] = field(default_factory=list)
    events: list[NewEvent] = field(default_factory=list)
    after: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: Put the caches back as they were, if the commit fails (newest first).
    undo: list[Callable[[], None]] = field(default_factory=list)
    #: The orders changed, with their last stored row.
    touched: dict[str, tuple[_Order, OrderRecord]] = field(default_factory=dict)

    def write(self, op: _Op) -> None:
        self.ops.append(op)


def _apply(db: Database, ops: list[_Op], events: list[NewEvent], *, deliver: bool) -> None:
    """The body of one transaction: the state writes, then their outbox events."""
    for op in ops:
        op(db)
    for event in events:
        db.append_event(event, deliver=deliver)


class ChargingService:
    """Routes device events to orders, queues commands, records events.

    The gateway's :class:`~reference_server.gateway.EventSink`, and the backend
    of the HTTP API: each operation raises a
    :class:`~reference_server.errors.ServiceError` subclass on a refusal.

    Args:
        db: The open database.
        config: The server configuration.
        logger: Where JSON log lines go.
        metrics: The server's metrics.
        clock: The wall clock, Unix time (injected for tests). The service reads
            it through a :class:`~reference_server.clock.SteadyClock` (``clock``).
    """

    def __init__(self, db: AsyncDatabase, config: Config, logger: Logger, metrics: Metrics,
                 *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.config = config
        self.log = logger
        self.metrics = metrics
        self.clock: Callable[[], float] = SteadyClock(
            clock, on_step=lambda step: logger.warning(
                "wall clock jumped; absorbing it gradually", step_s=round(step, 3)))
        self.gateway: Gateway | None = None
        self.on_events: Callable[[], None] = lambda: None
        #: Set on a clustered server: the device state here is only that of the
        #: devices this node owns, claimed before it is loaded.
        self.ownership: Ownership | None = None
        self._ready = False
        #: Per-report debug lines are built only when they are written.
        self._debug = logger.enabled("debug")
        #: Webhook deliveries waiting, refreshed with each flush (a /metrics gauge).
        self.deliveries_pending = 0
        self._devices: dict[str, _Device] = {}
        #: Devices being claimed and loaded (clustered servers), by id.
        self._loading: dict[str, trio.Event] = {}
        self._orders: dict[str, _Order] = {}
        self._by_port: dict[tuple[int, int, int], str] = {}
        self._by_business: dict[tuple[int, int], str] = {}
        self._commands: dict[str, _OpenCommand] = {}
        #: Each device's parameters as it last reported or acknowledged them, by name.
        self._known_params: dict[str, dict[str, int]] = {}
        #: Partial parameter sets waiting for a query's answer, by the query's id.
        self._params_waits: dict[str, _ParamsWait] = {}
        #: The parameters each SetParams in flight carries, by command id.
        self._params_sent: dict[str, dict[str, int]] = {}
        #: Partial sets whose query is being queued (see _complete_params).
        self._params_asking: set[str] = set()
        self._ports: dict[tuple[int, int, int], PortRecord] = {}
        self._link_iccid: dict[int, str] = {}
        self._card_locks: dict[str, trio.Lock] = {}
        #: The lowest order number not yet given out (seeded from the database).
        self._free_order_no = format_order_no(0, 0)
        #: Devices seen since the last flush: their last_seen_at and rssi are stored
        #: with it (one row update a device, however many frames it sent).
        self._touched: dict[str, _Device] = {}
        self._frame_logs: list[CmdLogRow] = []
        #: Wire message ids of commands just written, stored with the next commit.
        self._msg_ids: dict[str, int] = {}
        self._silence_check_at = -math.inf  # see _sweep_silent()
        self._swept_at = -math.inf
        self._timeouts = SessionTimeouts(
            start_timeout=config.start_timeout, command_ttl=config.command_ttl,
            lost_order_after=min(config.offline_after_for("bkv"),
                                 config.offline_after_for("ap3000")))

    # --- life ---------------------------------------------------------------------------

    def attach(self, gateway: Gateway, on_events: Callable[[], None]) -> None:
        """Connect the gateway that carries commands and the webhook worker's wake-up."""
        self.gateway = gateway
        self.on_events = on_events

    @property
    def ready(self) -> bool:
        """True once started and until shutdown begins (``/readyz``)."""
        return self._ready

    def is_online(self, phy_id: str) -> bool:
        """Whether a live connection carries the device."""
        return self.gateway is not None and self.gateway.is_online(phy_id)

    async def start(self) -> None:
        """Rebuild the caches from the database; devices start offline.

        A clustered server starts empty instead: other nodes hold their devices,
        and a device's state is loaded when this node claims it.
        """
        now = self.clock()
        self._free_order_no = await self.db.allocate_order_no(int(now))
        if self.ownership is not None:
            self._ready = True
            self.log.info("clustered: device state is loaded as devices are claimed")
            return
        changes = _Changes()
        for phy_id in await self.db.mark_all_devices_offline(int(now)):
            changes.events.append(self._device_event(
                "device.offline", phy_id, now, {"reason": "server_restart"}))
        for record in await self.db.open_orders():
            await self._resume(record, now)
        await self._commit(changes)
        self._ready = True
        self.log.info("orders resumed", open_orders=len(self._orders),
                      open_commands=len(self._commands))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """The timers: order clocks, command expiry, offline sweep, batched writes."""
        task_status.started()
        # Intervals on trio's monotonic clock; the first prune comes at the first tick.
        last_flush = trio.current_time()
        last_statistics = last_prune = -math.inf
        while True:
            await trio.sleep(TICK)
            now = self.clock()
            ticked = trio.current_time()
            try:
                await self._tick(now)
                if ticked - last_flush >= FLUSH_EVERY:
                    last_flush = ticked
                    await self._flush()
                if ticked - last_statistics >= STATISTICS_EVERY:
                    last_statistics = ticked
                    statistics = await self.db.statistics()
                    self.deliveries_pending = statistics.deliveries_pending
                if ticked - last_prune >= PRUNE_EVERY:
                    last_prune = ticked
                    await self._prune(now)
            except Exception as err:  # the timers must outlive one bad tick
                self.log.error("timer tick failed", error=repr(err))

    async def aclose(self) -> None:
        """Stop taking requests and write out what is buffered."""
        self._ready = False
        await self._flush()

    # --- the gateway's sink ---------------------------------------------------------------

    def traffic(self, link: DeviceLink, direction: Direction, data: bytes,
                kinds: list[str], phy_id: str | None, *, msg_id: int | None = None) -> None:
        """Bytes read from or written to *link* (``cmd_logs``, written in batches)."""
        device = self._devices.get(phy_id) if phy_id else None
        if direction is Direction.DOWN:
            for kind in kinds:
                self.metrics.child(self.metrics.frames_out, kind).inc()
        if len(self._frame_logs) >= MAX_BUFFERED_LOGS:
            del self._frame_logs[: MAX_BUFFERED_LOGS // 10]
        self._frame_logs.append((
            None if device is None else device.id, phy_id,
            "UP" if direction is Direction.UP else "DOWN", ",".join(kinds) or "-", msg_id,
            data.hex(), int(self.clock())))

    def commands_sent(self, link: DeviceLink, sent: list[CommandSent]) -> None:
        """Command frames just written to *link*: each is logged now (``outbound
        message sent``); the first frame of a command on a link gives
        ``commands.msg_id``, stored with the next commit (the gateway's or the
        caller's of :meth:`Gateway.send`), not in a transaction of its own."""
        for record in sent:
            open_command = self._commands.get(record.command_id)
            self.log.info("outbound message sent", device=record.phy_id,
                          cmd=None if open_command is None else open_command.kind,
                          msg_id=record.message_id, command_id=record.command_id,
                          attempt=record.attempt)
            if record.attempt != 1:
                continue  # a retransmission: the same message id
            if open_command is not None:
                if open_command.msg_id_link == link.link_id:
                    continue  # a later frame of the command (an AP3000 firmware packet)
                open_command.msg_id_link = link.link_id
            self._msg_ids[record.command_id] = record.message_id

    async def device_events(self, link: DeviceLink, events: list[ConnectionEvent]) -> None:
        """Handle the events of one read of *link*, then commit them together (with
        the message ids of commands written since the last commit)."""
        started = time.perf_counter()
        now = self.clock()
        changes = _Changes()
        for event in events:
            await self._handle(link, event, now, changes)
        await self._commit(changes)
        self.metrics.device_handling.observe(time.perf_counter() - started)

    async def link_closed(self, link: DeviceLink, phy_ids: list[str],
                          dropped_commands: list[str]) -> None:
        """*link* closed: its devices are offline unless another link carries them."""
        self._link_iccid.pop(link.link_id, None)
        now = self.clock()
        changes = _Changes()
        for command_id in dropped_commands:
            self._command_dropped(command_id)
        for phy_id in phy_ids:
            device = self._devices.get(phy_id)
            if device is not None and device.link_id == link.link_id:
                self._set_offline(device, now, "disconnected", changes)
        await self._commit(changes)

    # --- operations (the HTTP API) ----------------------------------------------------------

    async def start_charge(self, request: ChargeRequest, *, key_name: str | None = None,
                           record_answer: Callable[[Database, ChargeResult], None] | None
                           = None) -> ChargeResult:
        """Create an order and queue its start command.

        Args:
            request: What to charge.
            key_name: The API key that asks (recorded on the order and its command).
            record_answer: Called inside the order's transaction with the result, to
                store the idempotency answer in the same commit: a
                failure of either undoes both.

        Raises:
            DeviceNotFound, PortBusy, NoIdlePort, PortFault, InvalidArgument.
        """
        self._check_ready()
        device = await self._known_device(request.phy_id)
        port_no = request.port_no
        if port_no == AUTO_PORT:
            port_no = self._pick_idle_port(device, request.socket_no)
        _check_address(device.protocol, request.socket_no, port_no)
        if device.port_count is not None and port_no > device.port_count:
            # The device would refuse it; no order is created for a port that is not there.
            raise PortNotFound(port_no, device.port_count)
        key = (device.id, request.socket_no, port_no)
        port = self._ports.get(key)
        if port is not None and port.status is PortState.FAULT:
            raise PortFault(port_no, port.fault_code)
        for _ in range(_ORDER_NO_ATTEMPTS - 1):
            try:
                return await self._start_order(device, request, port_no, key_name,
                                               record_answer)
            except DuplicateOrderNo:
                # Another node numbered an order of the same second: take the next
                # free number from the database and try again.
                self._free_order_no = await self.db.allocate_order_no(int(self.clock()))
        return await self._start_order(device, request, port_no, key_name, record_answer)

    async def _start_order(self, device: _Device, request: ChargeRequest, port_no: int,
                           key_name: str | None,
                           record_answer: Callable[[Database, ChargeResult], None] | None
                           ) -> ChargeResult:
        key = (device.id, request.socket_no, port_no)
        now = self.clock()
        changes = _Changes()
        replaced: str | None = None
        holder = self._orders.get(self._by_port.get(key, ""))
        if holder is not None:
            if self.config.busy_port_policy == "reject":
                raise PortBusy(holder.record.order_no, port_no, holder.session.state.value)
            replaced = holder.record.order_no
            self._stop(holder, now, "replaced by a new order", changes, key_name=key_name)
        price = _default(request.price_per_kwh, self.config.default_price_per_kwh)
        tariff = Tariff(
            amount_cents=request.amount_cents, price_per_kwh_cents=price,
            service_fee_permille=_default(request.service_fee, self.config.default_service_fee),
            duration_s=request.duration_s,
            kind=TariffKind.for_order(request.charge_mode, price_per_kwh_cents=price,
                                      amount_cents=request.amount_cents),
            power_tiers=request.power_tiers)
        order_no = self._next_order_no(now)
        command = StartCharging(
            command_id=_new_id("cmd"), phy_id=device.phy_id, port_no=port_no,
            order_no=order_no, mode=request.charge_mode, socket_no=request.socket_no,
            duration_s=request.duration_s, energy_wh=request.energy_wh,
            power_tiers=request.power_tiers, amount_cents=request.amount_cents)
        new_order = NewOrder(
            order_no=order_no, device_id=device.id, socket_no=request.socket_no,
            port_no=port_no, charge_mode=request.charge_mode, amount=request.amount_cents,
            price_per_kwh=tariff.price_per_kwh_cents, service_fee=tariff.service_fee_permille,
            requested_duration_sec=request.duration_s, requested_energy_wh=request.energy_wh,
            power_tiers_json=dump_json([dataclasses.asdict(t) for t in request.power_tiers])
            if request.power_tiers else None,
            card_no=request.card_no, created_at=int(now), key_name=key_name,
            tariff=tariff.kind)
        online = self.is_online(device.phy_id)
        also: _Op | None = None
        if record_answer is not None:
            answer = record_answer

            def also(db: Database) -> None:
                stored = db.get_order(order_no)
                assert stored is not None
                answer(db, ChargeResult(order=stored, device_online=online,
                                        replaced_order=replaced))
        order = await self._create_order(device, new_order, tariff, command, now, changes,
                                         also=also)
        self.log.info("order created", order_no=order_no, device=device.phy_id,
                      socket_no=request.socket_no, port_no=port_no)
        return ChargeResult(order=order.record, device_online=online, replaced_order=replaced)

    async def stop_charge(self, request: StopRequest, *,
                          key_name: str | None = None) -> OrderRecord:
        """Stop the order on the port (or the one named): ``stopping`` or ``cancelled``.

        A stop for an order that has already ended returns it unchanged.

        Raises:
            DeviceNotFound, OrderNotFound, InvalidArgument.
        """
        self._check_ready()
        device = await self._known_device(request.phy_id)
        if request.order_no is not None:
            order = self._orders.get(request.order_no)
            if order is None:
                record = await self.db.get_order(request.order_no)
                if record is None or record.device_id != device.id:
                    raise OrderNotFound(request.order_no)
                return record
            if order.device is not device:
                raise OrderNotFound(request.order_no)
            if (order.record.socket_no, order.record.port_no) != (request.socket_no,
                                                                    request.port_no):
                raise InvalidArgument("port_no", f"order {request.order_no} runs on socket "
                                      f"{order.record.socket_no} port {order.record.port_no}")
        else:
            found = self._orders.get(
                self._by_port.get((device.id, request.socket_no, request.port_no), ""))
            if found is None:
                raise OrderNotFound(f"running on port {request.port_no}")
            order = found
        now = self.clock()
        changes = _Changes()
        self._stop(order, now, request.reason or "remote_stop", changes, key_name=key_name)
        await self._commit(changes)
        return order.record

    async def set_params(self, phy_id: str, params: Mapping[str, int], *,
                         socket_no: int = 1, key_name: str | None = None) -> CommandRecord:
        """Queue a parameter change; the answer comes as ``device.params_result``.

        An AP3000 set naming only some fields of its command is completed with the
        device's last reported values when it is sent (see :meth:`send_command`).

        Raises:
            DeviceNotFound, InvalidArgument (``params``: a name the protocol lacks, a
            value out of range).
        """
        return await self.send_command(
            phy_id, "set_params",
            lambda command_id: SetParams(command_id=command_id, phy_id=phy_id,
                                         params=dict(params), socket_no=socket_no),
            key_name=key_name, refuse=lambda problem: InvalidArgument("params", problem))

    async def query_params(self, phy_id: str, *, socket_no: int = 1,
                           key_name: str | None = None) -> CommandRecord:
        """Queue a parameter query.

        Raises:
            DeviceNotFound.
        """
        self._check_ready()
        device = await self._known_device(phy_id)
        return await self._queue(device, QueryParams(command_id=_new_id("cmd"), phy_id=phy_id,
                                                     socket_no=socket_no), key_name=key_name)

    async def start_ota(self, phy_id: str, request: OtaRequest, *,
                        key_name: str | None = None) -> CommandRecord:
        """Queue a firmware update of the form the device's protocol uses.

        Raises:
            DeviceNotFound, DeviceRejected (the form does not fit the protocol).
        """
        self._check_ready()
        device = await self._known_device(phy_id)
        command: Command
        if isinstance(request, FirmwareOta):
            if device.protocol is not ProtocolFamily.AP3000:
                raise DeviceRejected("BKV devices fetch firmware by FTP: send ftp_host and "
                                     "file_name")
            command = SendFirmware(command_id=_new_id("cmd"), phy_id=phy_id,
                                   image=request.image, target=request.target,
                                   device_type=request.device_type,
                                   firmware_version=request.firmware_version)
        else:
            if device.protocol is not ProtocolFamily.BKV:
                raise DeviceRejected("AP3000 devices take the firmware image itself: send "
                                     "image_base64")
            command = StartOta(command_id=_new_id("cmd"), phy_id=phy_id,
                               ftp_host=request.ftp_host, file_name=request.file_name,
                               ftp_port=request.ftp_port, target=request.target)
        _check_expressible(device.protocol, command, "body")
        return await self._queue(device, command, key_name=key_name)

    async def send_command(self, phy_id: str, kind: str, build: Callable[[str], Command], *,
                           key_name: str | None = None,
                           refuse: Callable[[str], ServiceError] | None = None
                           ) -> CommandRecord:
        """Queue the library command *build* makes from a new command id, after the
        library has accepted it for the device's protocol (persisted, then sent when
        the device is online, like every command).

        A :class:`~bkvcodec.SetParams` for an AP3000 device may name only some fields
        of its set command (the frame carries them all): when it is sent, the other
        fields take the device's last reported values; with none known, the server
        first queues a parameter query and sends the completed set once the device
        answers it. A query not answered within the set's lifetime fails the set.

        Args:
            kind: The command's kind, for the refusal.
            refuse: The error for a command the library refuses; default
                :class:`~reference_server.errors.InvalidCommand` (422).

        Raises:
            DeviceNotFound, the refusal.
        """
        self._check_ready()
        device = await self._known_device(phy_id)

        def refusal(problem: str) -> ServiceError:
            return InvalidCommand(kind, problem) if refuse is None else refuse(problem)

        try:
            command = build(_new_id("cmd"))
        except LocalProtocolError as err:
            raise refusal(str(err)) from None
        checked = command
        if isinstance(command, SetParams):
            owner = _partial_set(device.protocol, command.params)
            if owner is not None:
                # Checked with the documented defaults standing in for the fields
                # the device's own values will fill.
                checked = dataclasses.replace(command, params={
                    **owner.defaults, **command.params})
        problem = _sending_problem(device.protocol, checked)
        if problem is not None:
            raise refusal(problem)
        return await self._queue(device, command, key_name=key_name)

    # --- device identity (api.md §11.2) -----------------------------------------------------

    async def provision_device(self, phy_id: str, *, protocol: ProtocolFamily | None = None,
                               iccid: str | None = None) -> tuple[DeviceIdentity, bool]:
        """``POST /devices``: serve *phy_id* under ``device_policy = known``; an
        *iccid* given binds the device to it (replacing a binding: a SIM swap).

        Returns:
            The identity and whether it was provisioned now.
        """
        identities = self._identities()
        identity, created = await identities.provision(
            phy_id, protocol=protocol, iccid=iccid)
        self.log.info("device provisioned", device=phy_id, created=created,
                      iccid_bound=identity.bound_iccid is not None)
        if self.ownership is not None:
            await self.ownership.broadcast("identities")
        return identity, created

    async def deprovision_device(self, phy_id: str) -> None:
        """``DELETE /devices/{phy_id}``: withdraw provisioning and the ICCID binding;
        under ``device_policy = known`` its live connection is closed.

        Raises:
            DeviceNotFound: *phy_id* was neither provisioned nor bound.
        """
        identities = self._identities()
        if not await identities.deprovision(phy_id):
            raise DeviceNotFound(phy_id)
        self.log.info("device deprovisioned", device=phy_id)
        if self.ownership is not None:
            await self.ownership.broadcast("identities")
        if self.config.device_policy == "known" and self.gateway is not None:
            self.gateway.disconnect(phy_id, "deprovisioned")

    async def identities_changed(self) -> None:
        """Another node of the cluster provisioned or withdrew a device: read the
        identities again, and close what ``device_policy = known`` no longer serves."""
        identities = self._identities()
        await identities.load()
        if self.config.device_policy == "known" and self.gateway is not None:
            for phy_id in self.gateway.connected_devices():
                if not identities.provisioned(phy_id):
                    self.gateway.disconnect(phy_id, "deprovisioned")

    def _identities(self) -> DeviceIdentities:
        self._check_ready()
        if self.gateway is None or self.gateway.identities is None:
            raise Unavailable("device identities are not loaded")
        return self.gateway.identities

    async def record_device_event(self, event_type: str, phy_id: str,
                                  data: Mapping[str, object]) -> None:
        """Record one device event (the gateway's identity decisions) in the outbox."""
        changes = _Changes()
        changes.events.append(self._device_event(event_type, phy_id, self.clock(), data))
        await self._commit(changes)

    async def redeliver(self, event_id: str, *, key_name: str | None = None) -> EventRecord:
        """Queue one recorded event for webhook delivery again; the delivery keeps
        *key_name*, the API key that asked.

        Raises:
            EventNotFound.
        """
        event = await self.db.get_event(event_id)
        if event is None or not await self.db.redeliver(event_id, int(self.clock()),
                                                        key_name=key_name):
            raise EventNotFound(event_id)
        self.log.info("event redelivery requested", event_id=event_id, key_name=key_name)
        self.on_events()
        return event

    # --- device events ------------------------------------------------------------------------

    async def _handle(self, link: DeviceLink, event: ConnectionEvent, now: float,
                      changes: _Changes) -> None:
        protocol = link.protocol or "unknown"
        self.metrics.child(self.metrics.frames_in, protocol, type(event).__name__).inc()
        match event:
            case FrameRejected():
                self.metrics.frames_rejected.labels(event.error.code).inc()
            case UnidentifiedStream():
                self.metrics.frames_rejected.labels("unidentified").inc()
            case ModemIdentified():
                self._link_iccid[link.link_id] = event.iccid
            case CommandAcknowledged() | CommandRejected() | CommandTimedOut():
                self._command_outcome(event, now, changes)
            case CommandDropped():
                self._command_dropped(event.command_id)
            case AnswerWithheld():
                self.log.info("answer not written; the device repeats the report",
                              device=event.phy_id, report=type(event.event).__name__)
            case FirmwareProgress():
                self.log.info("firmware transfer", command_id=event.command_id,
                              device=event.phy_id, packets_done=event.packets_done,
                              packets_total=event.packets_total)
            case UnknownMessage() if event.phy_id is None:
                self.log.debug("message without a rule", name=event.name)
            case _:
                await self._device_report(link, event, now, changes)

    async def _device_report(self, link: DeviceLink, event: _DeviceReport, now: float,
                             changes: _Changes) -> None:
        """A report that names its device: the device is online, and the report is
        applied to it."""
        if event.phy_id is None:
            return
        device = await self._seen(link, event.phy_id, now, changes)
        if device is None:
            return
        if self._debug:
            self.log.debug("device report", kind=type(event).__name__, device=event.phy_id)
        match event:
            case DeviceRegistered():
                await self._registered(device, event, link, now, changes)
            case DeviceHeartbeat():
                self._heartbeat(device, event, now, changes)
            case PortStatusReported():
                self._port_status(device, event, now, changes)
            case StartConfirmed() | ProgressReported() | SettlementReported():
                self._order_report(device, event, now, changes)
            case AlarmRaised():
                self._alarm(device, event, now, changes)
            case CardPresented():
                await self._card(device, event, now, changes)
            case ParamsReported():
                self._params_reported(device, event, now, changes)
            case UpgradeRequested():
                self.log.info("device asks for a firmware upgrade", device=event.phy_id,
                              device_type=event.device_type,
                              firmware_version=event.firmware_version)
            case UnknownMessage():
                self.log.debug("message without a rule", device=event.phy_id,
                               name=event.name)
            case _:
                assert_never(event)

    def _command_dropped(self, command_id: str) -> None:
        # Still 'sent' in the database: sent again when the device returns.
        open_command = self._commands.get(command_id)
        if open_command is not None:
            open_command.handed_to = None

    async def _seen(self, link: DeviceLink, phy_id: str, now: float,
                    changes: _Changes) -> _Device | None:
        """A frame of *phy_id* arrived on *link*: it exists and is online."""
        device = self._devices.get(phy_id)
        if device is None or device.link_id != link.link_id:
            protocol = link.connection.protocol
            if protocol is None:
                return None
            record, _ = await self.db.upsert_device(
                phy_id, protocol, int(now), remote_addr=link.remote_addr,
                iccid=self._link_iccid.get(link.link_id))
            if device is None and self.ownership is not None:
                # Online as the database says is another node's word: coming online
                # here is this node's (its event, and the queued commands sent).
                device = await self._claim_and_load(record, online=False)
            # Another task (an API call) may have cached the device meanwhile.
            device = self._cache_device(record)
            device.link_id = link.link_id
        device.last_seen = now
        self._touched[phy_id] = device
        if not device.online:
            device.online = True
            changes.undo.append(lambda: setattr(device, "online", False))
            silent_at = now + self.config.offline_after_for(device.protocol.value)
            self._silence_check_at = min(self._silence_check_at, silent_at - TICK)
            changes.write(lambda db: db.set_device_online(phy_id, True, int(now)))
            changes.events.append(self._device_event("device.online", phy_id, now,
                                                     {"remote_addr": link.remote_addr}))
            changes.after.append(lambda: self._dispatch(device))
        return device

    async def _registered(self, device: _Device, event: DeviceRegistered, link: DeviceLink,
                          now: float, changes: _Changes) -> None:
        device.firmware = event.firmware or device.firmware
        if event.port_count:
            device.port_count = event.port_count
        await self.db.upsert_device(device.phy_id, device.protocol, int(now),
                                    remote_addr=link.remote_addr, firmware=event.firmware)
        changes.events.append(self._device_event("device.registered", device.phy_id, now, {
            "protocol": device.protocol.value, "firmware": event.firmware,
            "port_count": event.port_count, "device_type": event.device_type,
            "remote_addr": link.remote_addr}))

    def _heartbeat(self, device: _Device, event: DeviceHeartbeat, now: float,
                   changes: _Changes) -> None:
        rssi = _reported_rssi(device.protocol, event)
        if rssi is not None and device.rssi is None:
            # The first value is stored with this read, so the device's view shows it
            # as soon as the heartbeat's events do; later changes ride the batched touch.
            device.rssi = rssi
            changes.undo.append(lambda: setattr(device, "rssi", None))
            touch = DeviceTouch(phy_id=device.phy_id, seen_at=int(now), rssi=rssi)
            changes.write(lambda db: db.touch_devices([touch]))
        elif rssi is not None:  # stored with the next flush's touch
            device.rssi = rssi
        if (event.firmware and event.firmware != device.firmware) or (
                event.iccid and event.iccid != device.iccid):
            device.firmware = event.firmware or device.firmware
            device.iccid = event.iccid or device.iccid
            phy_id, protocol = device.phy_id, device.protocol
            firmware, iccid = event.firmware, event.iccid
            changes.write(lambda db: db.upsert_device(phy_id, protocol, int(now),
                                                      firmware=firmware, iccid=iccid))
        device.heartbeats += 1
        if device.heartbeats % HEARTBEAT_SAMPLING == 1:
            changes.events.append(self._device_event("device.heartbeat", device.phy_id, now, {
                "heartbeat_count": device.heartbeats, "rssi": event.rssi,
                "voltage": volts(event.voltage_dv), "firmware": event.firmware,
                "iccid": event.iccid}))

    def _port_status(self, device: _Device, event: PortStatusReported, now: float,
                     changes: _Changes) -> None:
        if device.protocol is ProtocolFamily.AP3000 and event.port_no > (device.port_count or 0):
            device.port_count = event.port_no
        key = (device.id, event.socket_no, event.port_no)
        order = self._orders.get(self._by_port.get(key, ""))
        old = self._ports.get(key)
        port = PortRecord(
            device_id=device.id, socket_no=event.socket_no, port_no=event.port_no,
            status=event.state, power_w=round((event.power_dw or 0) / 10),  # whole watts
            voltage=event.voltage_dv,
            fault_code=event.fault_code,
            order_no=order.record.order_no if order is not None else event.order_no,
            business_no=event.business_no, updated_at=int(now))
        self._put_port(device, key, old, port, event.fault_msg, now, changes)
        if (order is not None and event.state is not PortState.CHARGING
                and event.state is not PortState.FAULT
                and order.session.state in (OrderState.CHARGING, OrderState.STOPPING)):
            self._order_input(order, order.session.port_idle(now), now, changes)

    def _port_follows(self, order: _Order, reading: MeterReading, now: float,
                      changes: _Changes) -> None:
        """A progress report: its port charges for the order at the reported power
        (AP3000 sends its power as 0x06 only, not as a port status)."""
        record = order.record
        key = (record.device_id, record.socket_no, record.port_no)
        old = self._ports.get(key)
        if old is not None and old.status is PortState.FAULT:
            return  # a fault stays shown until the device reports the port otherwise
        port = PortRecord(
            device_id=record.device_id, socket_no=record.socket_no, port_no=record.port_no,
            status=PortState.CHARGING, power_w=round(reading.power_dw / 10),  # whole watts
            voltage=reading.voltage_dv if reading.voltage_dv is not None
            else None if old is None else old.voltage,
            fault_code=0, order_no=record.order_no,
            business_no=record.business_no if old is None or record.business_no
            else old.business_no,
            updated_at=int(now))
        self._put_port(order.device, key, old, port, "", now, changes)

    def _put_port(self, device: _Device, key: tuple[int, int, int], old: PortRecord | None,
                  port: PortRecord, fault_msg: str, now: float, changes: _Changes) -> None:
        """Store *port* if it changed, and report a change of its status."""
        if old is None or _port_changed(old, port):
            self._ports[key] = port
            changes.undo.append(lambda: self._restore_port(key, old))
            changes.write(lambda db: db.put_port(port))
        if old is None or old.status is not port.status:
            changes.events.append(self._device_event("port.status_changed", device.phy_id, now, {
                "socket_no": port.socket_no, "port_no": port.port_no,
                "status": int(port.status), "status_name": port.status.name.lower(),
                "previous_status": None if old is None else int(old.status),
                "fault_code": port.fault_code, "fault_msg": fault_msg,
                "power_w": port.power_w, "order_no": port.order_no}))

    def _forget_command(self, command_id: str) -> None:
        self._commands.pop(command_id, None)

    def _restore_port(self, key: tuple[int, int, int], port: PortRecord | None) -> None:
        if port is None:
            self._ports.pop(key, None)
        else:
            self._ports[key] = port

    def _order_report(self, device: _Device,
                      event: StartConfirmed | ProgressReported | SettlementReported,
                      now: float, changes: _Changes) -> None:
        order = self._order_for(device, event.socket_no, event.port_no, event.order_no,
                                event.business_no)
        if order is None:
            if isinstance(event, SettlementReported):
                # Often an order the server settled first (a fault, api.md §7); the
                # library has acknowledged it, and nothing changes.
                self.log.info("settlement for no open order", device=device.phy_id,
                                 socket_no=event.socket_no, port_no=event.port_no,
                                 order_no=event.order_no, business_no=event.business_no)
            return
        session = order.session
        if isinstance(event, StartConfirmed):
            self._order_input(order, session.device_confirmed(now), now, changes)
            return
        reading = self._plausible(order, event, now, changes)
        if isinstance(event, ProgressReported):
            if not session.state.is_terminal:
                sample = ProgressSample(
                    order_no=order.record.order_no, at=int(now), duration_sec=reading.duration_s,
                    total_kwh=reading.energy_centikwh, power=reading.power_dw,
                    voltage=reading.voltage_dv, current=reading.current_ma)
                changes.write(lambda db: db.add_progress(sample))
                self._port_follows(order, reading, now, changes)
            self._order_input(order, session.progress(now, reading), now, changes)
        else:
            settling = not session.state.is_terminal
            tier_minutes = event.tier_minutes
            if tier_minutes is not None and settling:
                tier_minutes, capped = cap_tier_minutes(tier_minutes, reading.duration_s)
                for anomaly in capped:
                    self._anomaly(order, anomaly, "settlement", now, changes)
            self._order_input(order, session.settlement(
                now, reading, end_reason=event.end_reason,
                end_reason_raw=event.end_reason_raw, tier_minutes=tier_minutes), now, changes,
                device_amount=event.amount_cents)
            bill = session.bill
            if (settling and bill is not None and bill.tariff is TariffKind.TIERS
                    and event.amount_cents is not None
                    and abs(event.amount_cents - bill.final_cents) > max(
                        1, len(session.tariff.power_tiers))):
                # The server's figure bills: the order's tier prices applied to the
                # device's minutes; the device's own sum only cross-checks it.
                self._anomaly(order, Anomaly(
                    reason="device_amount_mismatch", field="final_amount_cents",
                    reported=event.amount_cents, accepted=bill.final_cents),
                    "settlement", now, changes)

    def _plausible(self, order: _Order, event: ProgressReported | SettlementReported,
                   now: float, changes: _Changes) -> MeterReading:
        """The report's reading, capped where it cannot be true."""
        report = "settlement" if isinstance(event, SettlementReported) else "progress"
        if order.session.state.is_terminal:
            return event.reading
        reading, anomalies = cap_reading(event.reading, self.config.rated_power_w)
        link_id = order.device.link_id
        if order.reported is not None and order.reported_on == link_id:
            anomalies += backwards(order.reported, event.reading)
        order.reported_on, order.reported = link_id, event.reading
        for anomaly in anomalies:
            self._anomaly(order, anomaly, report, now, changes)
        return reading

    def _anomaly(self, order: _Order, anomaly: Anomaly, report: str, now: float,
                 changes: _Changes) -> None:
        """Raise ``order.anomaly``: for a settlement always, for progress once per
        reason and order."""
        key = f"{anomaly.reason}:{anomaly.field}"
        if report == "progress":
            if key in order.anomalies:
                return
            order.anomalies.add(key)
            changes.undo.append(lambda: order.anomalies.discard(key))
        record = order.record
        self.log.warning("implausible device report", order_no=record.order_no,
                         device=order.device.phy_id, reason=anomaly.reason,
                         field=anomaly.field, reported=anomaly.reported,
                         accepted=anomaly.accepted)
        changes.events.append(NewEvent(
            event_id=f"order.anomaly-{record.order_no}-{_new_id('e')}",
            event_type="order.anomaly", created_at=int(now),
            device_phy_id=order.device.phy_id, order_no=record.order_no,
            data={"order_no": record.order_no, "device_phy_id": order.device.phy_id,
                  "socket_no": record.socket_no, "port_no": record.port_no,
                  "tariff": record.tariff.value, "report": report,
                  "reason": anomaly.reason, "field": anomaly.field,
                  "reported": anomaly.reported, "accepted": anomaly.accepted}))

    def _alarm(self, device: _Device, event: AlarmRaised, now: float,
               changes: _Changes) -> None:
        order = None
        if event.port_no is not None:
            order = self._orders.get(self._by_port.get(
                (device.id, event.socket_no or 1, event.port_no), ""))
        if order is not None:
            # The session records the alarm and settles the order with reason fault.
            self._order_input(order, order.session.port_fault(now, event.fault_code,
                                                                event.fault_msg), now, changes)
            return
        changes.events.append(self._device_event("device.alarm", device.phy_id, now, {
            "device_phy_id": device.phy_id, "alarm_type": event.alarm_type,
            "socket_no": event.socket_no, "port_no": event.port_no,
            "fault_code": event.fault_code, "fault_msg": event.fault_msg, "order_no": None}))

    def _params_reported(self, device: _Device, event: ParamsReported, now: float,
                         changes: _Changes) -> None:
        result = {"ok": True, "params": dict(event.params)}
        self._params_known(device, event, changes)
        if event.command_id is not None:
            self._finish_command(event.command_id, CommandStatus.ACKED, now, changes,
                                 result=result)
        changes.events.append(self._device_event("device.params_result", device.phy_id, now, {
            "command_id": event.command_id, "socket_no": event.socket_no, **result}))

    async def _card(self, device: _Device, event: CardPresented, now: float,
                    changes: _Changes) -> None:
        # One swipe of a card at a time, from reading what is available to the
        # commit of the order and its hold (api.md §11.1: two swipes can never
        # spend the same cents; the conditional hold in the database is the proof,
        # this lock keeps the second swipe from being authorised for stale cents).
        key = card_key(event.card_no)
        lock = self._card_locks.setdefault(key, trio.Lock())
        try:
            async with lock:
                await self._card_swiped(device, event, now, changes)
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._card_locks.pop(key, None)

    async def _card_swiped(self, device: _Device, event: CardPresented, now: float,
                           changes: _Changes) -> None:
        card = await self.db.get_card(event.card_no)
        refusal = None
        if card is None:
            refusal = "unknown_card"
        elif card.status is not CardStatus.ACTIVE:
            refusal = "card_blocked"
        elif card.available_cents <= 0:
            refusal = "insufficient_balance"
        port_no = event.port_no
        key = (device.id, event.socket_no, port_no or 0)
        if refusal is None and not event.balance_only and (port_no is None or key in self._by_port):
            refusal = "port_busy"
        available = card.available_cents if card is not None else 0
        swiped: dict[str, object] = {
            "card_no": event.card_no, "socket_no": event.socket_no, "port_no": port_no,
            "balance_cents": None if card is None else card.balance_cents,
            "available_cents": None if card is None else available,
            "authorised_cents": None, "balance_only": event.balance_only,
            "accepted": refusal is None, "reason": refusal, "order_no": None}
        if refusal is not None or event.balance_only or card is None or port_no is None:
            self._refuse_card(device, event, now, changes, swiped, refusal, available)
            return
        # The swipe is authorised for everything available, and that is held in
        # the order's own transaction; the settlement debits the bill from the
        # hold and releases the rest (_ended).
        authorised = available
        mode = card.charge_mode or ChargeMode.UNTIL_FULL
        tariff = Tariff(amount_cents=authorised,
                        price_per_kwh_cents=self.config.default_price_per_kwh,
                        service_fee_permille=self.config.default_service_fee,
                        duration_s=card.duration,
                        kind=TariffKind.for_order(
                            mode, price_per_kwh_cents=self.config.default_price_per_kwh,
                            amount_cents=card.balance_cents, card=True))
        order_no = self._next_order_no(now)
        command_id = _new_id("card")
        new_order = NewOrder(order_no=order_no, device_id=device.id, socket_no=event.socket_no,
                             port_no=port_no, charge_mode=mode, amount=authorised,
                             price_per_kwh=tariff.price_per_kwh_cents,
                             service_fee=tariff.service_fee_permille,
                             requested_duration_sec=card.duration,
                             requested_energy_wh=card.energy_wh, card_no=card.card_no,
                             created_at=int(now), tariff=tariff.kind)
        swiped.update(order_no=order_no, authorised_cents=authorised)
        # The order and its hold are committed now, on their own, so that they
        # exist before the device is told to charge (the answer runs after the
        # read's commit: the answer follows the hold, api.md §7).
        creation = _Changes()
        card_no = card.card_no
        creation.write(lambda db: db.hold_card(card_no, order_no, authorised, int(now)))
        creation.events.append(self._device_event("card.swiped", device.phy_id, now, swiped))
        ap3000 = device.protocol is ProtocolFamily.AP3000
        try:
            order = await self._create_order(device, new_order, tariff, None, now, creation,
                                             card_command=None if ap3000 else command_id)
        except InsufficientFunds as err:
            # Spent meanwhile (an adjustment): refuse rather than hold cents twice.
            swiped.update(accepted=False, reason="insufficient_balance", order_no=None,
                          authorised_cents=None, available_cents=err.available_cents)
            self._refuse_card(device, event, now, changes, swiped, "insufficient_balance",
                              err.available_cents or 0)
            return
        except PortBusy:
            swiped.update(accepted=False, reason="port_busy", order_no=None,
                          authorised_cents=None)
            self._refuse_card(device, event, now, changes, swiped, "port_busy", available)
            return
        if ap3000:
            # An AP3000 card reply only admits the card; the charge starts with the
            # usual start command (ap3000.md §4.2), sent after the reply.
            start = StartCharging(command_id=_new_id("cmd"), phy_id=device.phy_id,
                                  port_no=port_no, order_no=order_no, mode=mode,
                                  socket_no=event.socket_no, duration_s=card.duration,
                                  energy_wh=card.energy_wh, amount_cents=authorised)
            order.start_command = start.command_id

            async def admit() -> None:
                assert self.gateway is not None
                await self.gateway.answer_card(
                    device.phy_id, event.request_id, accept=True, order_no=order_no,
                    balance_cents=authorised, duration_s=card.duration,
                    energy_wh=card.energy_wh)
            changes.after.append(admit)
            self._stage_command(device, start, order_no, now, changes)
            return

        async def accept() -> None:
            assert self.gateway is not None
            sent = await self.gateway.answer_card(
                device.phy_id, event.request_id, accept=True, command_id=command_id,
                order_no=order_no, balance_cents=authorised,
                duration_s=card.duration, energy_wh=card.energy_wh)
            if sent:
                more = _Changes()
                self._order_input(order, order.session.command_sent(self.clock()),
                                  self.clock(), more)
                await self._commit(more)
        changes.after.append(accept)

    def _refuse_card(self, device: _Device, event: CardPresented, now: float,
                     changes: _Changes, swiped: Mapping[str, object], refusal: str | None,
                     available: int) -> None:
        """Answer a swipe that starts no charge (a refusal or a balance query)."""
        async def answer() -> None:
            assert self.gateway is not None
            await self.gateway.answer_card(device.phy_id, event.request_id,
                                           accept=refusal is None, balance_cents=available)
        changes.events.append(self._device_event("card.swiped", device.phy_id, now, swiped))
        changes.after.append(answer)

    # --- orders -------------------------------------------------------------------------------

    async def _create_order(self, device: _Device, new_order: NewOrder, tariff: Tariff,
                            command: StartCharging | None, now: float, changes: _Changes,
                            *, card_command: str | None = None,
                            also: _Op | None = None) -> _Order:
        """Insert the order, its start command and its first events in one transaction
        (with *also*, a write of the caller's, after the order's)."""
        session = ChargingSession(
            order_no=new_order.order_no, device_phy_id=device.phy_id,
            socket_no=new_order.socket_no, port_no=new_order.port_no,
            charge_mode=new_order.charge_mode, tariff=tariff,
            requested_duration_s=new_order.requested_duration_sec, timeouts=self._timeouts)
        first_events = session.start_requested(now)
        created: list[OrderRecord] = []
        changes.write(lambda db: created.append(db.insert_order(new_order)))
        if command is not None:
            self._stage_command(device, command, new_order.order_no, now, changes,
                                key_name=new_order.key_name)
        if also is not None:
            changes.write(also)
        for order_event in first_events:
            changes.events.append(self._order_event(device, new_order.amount, order_event, now,
                                                    tariff=tariff.effective_kind))
        # The start is sent only once the order is tracked: a device may answer it
        # before this task runs again.
        after, changes.after = changes.after, []
        try:
            await self._commit(changes)
        except ActiveOrderExists as err:
            if command is not None:
                self._commands.pop(command.command_id, None)
            raise PortBusy(err.order_no or "unknown", new_order.port_no, "pending") from None
        except Exception:
            # Nothing was committed: the start command was never stored.
            if command is not None:
                self._commands.pop(command.command_id, None)
            raise
        order = _Order(record=created[0], session=session, device=device,
                       start_command=command.command_id if command else card_command)
        self._track(order)
        if card_command is not None:
            self._commands[card_command] = _OpenCommand(card_command, "card_answer", device,
                                                        new_order.order_no)
        for action in after:
            await action()
        return order

    def _track(self, order: _Order) -> None:
        record = order.record
        self._orders[record.order_no] = order
        self._by_port[(record.device_id, record.socket_no, record.port_no)] = record.order_no
        if record.business_no:
            self._by_business[(record.device_id, record.business_no)] = record.order_no

    def _untrack(self, order: _Order) -> None:
        record = order.record
        self._orders.pop(record.order_no, None)
        key = (record.device_id, record.socket_no, record.port_no)
        if self._by_port.get(key) == record.order_no:
            del self._by_port[key]
        if record.business_no:
            self._by_business.pop((record.device_id, record.business_no), None)

    def _order_for(self, device: _Device, socket_no: int, port_no: int, order_no: str | None,
                   business_no: int | None) -> _Order | None:
        """The open order a report is about: by order number, business number, or port."""
        if order_no is not None:
            order = self._orders.get(order_no)
            return order if order is not None and order.device is device else None
        port_order = self._orders.get(self._by_port.get((device.id, socket_no, port_no), ""))
        if business_no:
            order = self._orders.get(self._by_business.get((device.id, business_no), ""))
            if order is not None:
                return order
            # A business number we never mapped belongs to the port's order only if
            # that order has none yet (the device assigned it in its start answer).
            if port_order is not None and port_order.record.business_no:
                return None
        return port_order

    def _stop(self, order: _Order, now: float, reason: str, changes: _Changes, *,
              key_name: str | None = None) -> None:
        """Ask the session to stop, and the device if the charge may have begun."""
        before = order.session.state
        if before.is_terminal:
            return
        events = order.session.stop_requested(now)
        order.record = dataclasses.replace(order.record, stop_reason=reason)
        after = order.session.state
        start = self._commands.get(order.start_command or "")
        start_reached_device = start is None or start.handed_to is not None or (
            before is not OrderState.PENDING)
        if after is OrderState.CANCELLED and start is not None and start.handed_to is None:
            self._finish_command(start.id, CommandStatus.FAILED, now, changes,
                                 reason="cancelled")
        if before is not OrderState.STOPPING and start_reached_device:
            record = order.record
            stop = StopCharging(command_id=_new_id("cmd"), phy_id=order.device.phy_id,
                                port_no=record.port_no, socket_no=record.socket_no,
                                order_no=record.order_no)
            order.stop_command = stop.command_id
            self._stage_command(order.device, stop, record.order_no, now, changes,
                                key_name=key_name)
        self._order_input(order, events, now, changes)

    def _order_input(self, order: _Order, events: list[OrderEvent], now: float,
                     changes: _Changes, *, device_amount: int | None = None,
                     refusal_code: int | None = None) -> None:
        """Record what a session input produced: the order row and its events."""
        session = order.session
        record = order.record
        changes.touched.setdefault(record.order_no, (order, record))
        reading = session.last_reading
        bill = session.bill
        updated = dataclasses.replace(
            record, status=session.state, duration_sec=session.duration_s,
            total_kwh=session.energy_centikwh, peak_power=session.peak_power_dw,
            current_power=reading.power_dw if reading is not None else record.current_power,
            start_time=_int(session.start_time), end_time=_int(session.end_time),
            end_reason=session.end_reason,
            final_amount=bill.final_cents if bill is not None else None,
            refund_amount=bill.refund_cents if bill is not None else None,
            energy_fee=bill.energy_fee_cents if bill is not None else None,
            service_fee_amount=bill.service_fee_cents if bill is not None else None,
            device_amount=device_amount if device_amount is not None else record.device_amount,
            updated_at=int(now))
        for event in events:
            if isinstance(event, OrderCompleted):
                updated = dataclasses.replace(updated, end_reason_raw=event.end_reason_raw)
            elif isinstance(event, OrderFailed):
                updated = dataclasses.replace(
                    updated, end_detail=event.detail,
                    end_reason_raw=refusal_code if event.end_reason is None
                    else updated.end_reason_raw)
            changes.events.append(self._order_event(order.device, record.amount, event, now,
                                                    tariff=record.tariff))
            self._log_order_event(order, event)
        if updated == record and not events:
            return
        if session.state is OrderState.CHARGING and session.state is not record.status:
            # Settling a port's previous order may leave this one as the port's holder.
            self._by_port[(record.device_id, record.socket_no, record.port_no)] = record.order_no
        order.record = updated
        changes.write(lambda db: db.save_order(updated))
        if session.state.is_terminal:
            self._ended(order, events, now, changes)

    def _ended(self, order: _Order, events: list[OrderEvent], now: float,
               changes: _Changes) -> None:
        self._untrack(order)
        for command_id in (order.start_command, order.stop_command):
            open_command = self._commands.get(command_id or "")
            # One the device has not seen is cancelled; one it has is left to its
            # answer (a stop's acknowledgement may follow the settlement).
            if open_command is not None and open_command.handed_to is None:
                self._finish_command(open_command.id, CommandStatus.FAILED, now, changes,
                                     reason=f"order {order.session.state.value}")
        record = order.record
        if record.card_no:
            bills = [e.bill.final_cents for e in events
                     if isinstance(e, OrderCompleted | OrderException)]
            self._settle_card(order, record.card_no, bills[0] if bills else 0, now, changes)
        key = (record.device_id, record.socket_no, record.port_no)
        port = self._ports.get(key)
        if port is not None and port.order_no == record.order_no:
            cleared = dataclasses.replace(port, order_no=None, updated_at=int(now))
            self._ports[key] = cleared
            held = port
            changes.undo.append(lambda: self._ports.__setitem__(key, held))
            changes.write(lambda db: db.put_port(cleared))

    def _settle_card(self, order: _Order, card_no: str, final: int, now: float,
                     changes: _Changes) -> None:
        """Debit the bill from the order's hold on its card and release the rest (an
        order that never charged releases it all), with the order's own change. A
        bill the card could not pay raises ``card.debit_failed``, in the same
        transaction: never silence (issue 12, story 2)."""
        order_no, phy_id = order.record.order_no, order.device.phy_id
        deliver = self.config.webhook_url is not None
        settled: list[CardSettlement | None] = []

        def settle(db: Database) -> None:
            result = db.settle_card_order(card_no, order_no, final, int(now))
            settled.append(result)
            if result is None or result.shortfall_cents:
                db.append_event(self._device_event("card.debit_failed", phy_id, now, {
                    "card_no": card_no, "order_no": order_no, "billed_cents": final,
                    "debited_cents": 0 if result is None else result.debited_cents,
                    "shortfall_cents": final if result is None else result.shortfall_cents,
                    "reason": "unknown_card" if result is None else "insufficient_funds"}),
                    deliver=deliver)

        async def report() -> None:
            result = settled[0] if settled else None
            if result is None or result.shortfall_cents:
                self.metrics.events.labels("card.debit_failed").inc()
                self.log.error("card debit failed", card_no=card_no, order_no=order_no,
                               billed_cents=final,
                               shortfall_cents=final if result is None
                               else result.shortfall_cents)
        changes.write(settle)
        changes.after.append(report)

    def _log_order_event(self, order: _Order, event: OrderEvent) -> None:
        if isinstance(event, ChargingStarted):
            self.log.info("order confirmed", order_no=event.order_no,
                          device=order.device.phy_id, port_no=event.port_no)
        elif isinstance(event, ChargingProgress):
            self.log.info("charging progress updated", order_no=event.order_no,
                          duration=event.reading.duration_s,
                          kwh=kwh(event.reading.energy_centikwh),
                          power_w=watts(event.reading.power_dw))
        elif isinstance(event, OrderCompleted | OrderException | OrderFailed | OrderCancelled):
            self.log.info("order ended", order_no=event.order_no,
                          status=order.session.state.value,
                          end_reason=None if order.session.end_reason is None
                          else order.session.end_reason.name.lower())

    async def _resume(self, record: OrderRecord, now: float) -> None:
        device_record = await self.db.get_device_by_id(record.device_id)
        if device_record is None:
            return
        device = self._cache_device(device_record)
        start: CommandRecord | None = None
        stop: CommandRecord | None = None
        for command in await self.db.queued_commands(device.id, int(now), include_sent=True):
            if command.id in self._commands:
                continue
            self._commands[command.id] = _OpenCommand(command.id, command.kind, device,
                                                      command.order_no)
            if command.order_no == record.order_no:
                if command.kind == "start_charging":
                    start = command
                elif command.kind == "stop_charging":
                    stop = command
        session = self._stored_session(
            record, device, now,
            events_emitted=await self.db.order_event_count(record.order_no),
            command_sent_at=None if start is None or start.sent_at is None
            else float(start.sent_at))
        order = _Order(record=record, session=session, device=device,
                       start_command=None if start is None else start.id,
                       stop_command=None if stop is None else stop.id)
        self._track(order)
        for port in await self.db.list_ports(device.id):
            self._ports.setdefault((device.id, port.socket_no, port.port_no), port)

    # --- commands ---------------------------------------------------------------------------

    async def _queue(self, device: _Device, command: Command, *,
                     key_name: str | None = None) -> CommandRecord:
        now = self.clock()
        changes = _Changes()
        self._stage_command(device, command, None, now, changes, key_name=key_name)
        await self._commit(changes)
        record = await self.db.get_command(command.command_id)
        assert record is not None
        return record

    def _stage_command(self, device: _Device, command: Command, order_no: str | None,
                       now: float, changes: _Changes, *, key_name: str | None = None) -> None:
        """Persist *command* with the change; send it after the commit if online."""
        new = NewCommand(id=command.command_id, device_id=device.id, phy_id=device.phy_id,
                         kind=command_kind(command), payload=command_payload(command),
                         created_at=int(now), expires_at=int(now) + self.config.command_ttl,
                         order_no=order_no, key_name=key_name)
        changes.write(lambda db: db.insert_command(new))
        open_command = _OpenCommand(command.command_id, new.kind, device, order_no)
        self._commands[command.command_id] = open_command
        changes.undo.append(lambda: self._forget_command(command.command_id))
        changes.after.append(lambda: self._send(open_command, command))

    async def _dispatch(self, device: _Device) -> None:
        """The device is online: send what waits for it, oldest first."""
        now = self.clock()
        for record in await self.db.queued_commands(device.id, int(now), include_sent=True):
            if record.expires_at <= now and record.status is CommandStatus.SENT:
                changes = _Changes()
                self._finish_command(record.id, CommandStatus.EXPIRED, now, changes,
                                     reason="command_ttl")
                await self._commit(changes)
                continue
            open_command = self._commands.setdefault(
                record.id, _OpenCommand(record.id, record.kind, device, record.order_no))
            try:
                command = command_from_record(record)
            except ValueError as err:
                self.log.error("stored command cannot be rebuilt", command_id=record.id,
                               error=str(err))
                continue
            await self._send(open_command, command)

    async def _send(self, open_command: _OpenCommand, command: Command) -> None:
        gateway = self.gateway
        device = open_command.device
        link = gateway.link_for(device.phy_id) if gateway is not None else None
        if gateway is None or link is None or open_command.handed_to == link.link_id:
            return
        if isinstance(command, SetParams):
            completed = await self._complete_params(open_command, command)
            if completed is None:
                return
            command = completed
        self.log.info("outbound message dequeued", device=device.phy_id, cmd=open_command.kind,
                      command_id=open_command.id)
        try:
            sent = await gateway.send(device.phy_id, command)
        except LocalProtocolError as err:
            changes = _Changes()
            self._finish_command(open_command.id, CommandStatus.FAILED, self.clock(), changes,
                                 reason=f"cannot be sent: {err}")
            await self._commit(changes)
            return
        if not sent:
            return
        open_command.handed_to = link.link_id
        now = self.clock()
        command_id = open_command.id
        # Its message id, if it was written at once, is in self._msg_ids (see
        # commands_sent) and stored with this commit; a command waiting behind
        # another one gets its id when it is written.
        changes = _Changes()
        changes.write(lambda db: db.mark_command_sent(command_id, int(now)))
        order = self._orders.get(open_command.order_no or "")
        if order is not None and open_command.kind == "start_charging":
            self._order_input(order, order.session.command_sent(now), now, changes)
        await self._commit(changes)

    def _command_outcome(self, event: CommandAcknowledged | CommandRejected | CommandTimedOut,
                         now: float, changes: _Changes) -> None:
        open_command = self._commands.get(event.command_id)
        if open_command is None:
            return
        order = self._orders.get(open_command.order_no or "")
        kind = open_command.kind
        if isinstance(event, CommandAcknowledged):
            self.log.info("device ack received", status="acked", device=event.phy_id,
                          cmd=kind, command_id=event.command_id)
            result: dict[str, object] = {"ok": True}
            if event.business_no is not None:
                result["business_no"] = event.business_no
            if kind == "send_message" and event.reply is not None:
                result["reply"] = _reply_json(event.phy_id, event.reply)
            sent_params = self._params_sent.pop(event.command_id, None)
            if sent_params is not None:
                # What the device took (a partial set: with the values filled in).
                result["params"] = sent_params
                self._known_params.setdefault(event.phy_id, {}).update(sent_params)
            self._finish_command(event.command_id, CommandStatus.ACKED, now, changes,
                                 result=result if kind != "query_params" else None)
            if kind == "set_params":
                changes.events.append(self._device_event(
                    "device.params_result", event.phy_id, now,
                    {"command_id": event.command_id, "ok": True, "params": None}))
            if order is not None and kind in ("start_charging", "card_answer"):
                if event.business_no:
                    order.record = dataclasses.replace(order.record,
                                                       business_no=event.business_no)
                    self._by_business[(order.device.id, event.business_no)] = (
                        order.record.order_no)
                self._order_input(order, order.session.command_acked(now), now, changes)
            return
        reason = event.reason if isinstance(event, CommandRejected) else "no answer"
        if isinstance(event, CommandRejected):
            self.log.info("device ack received", status="rejected", device=event.phy_id,
                          cmd=kind, command_id=event.command_id, reason=reason,
                          raw_code=event.raw_code)
        self.log.warning("command failed", device=event.phy_id, cmd=kind,
                         command_id=event.command_id, reason=reason)
        self._finish_command(event.command_id, CommandStatus.FAILED, now, changes,
                             reason=reason)
        self._params_query_failed(event.command_id, reason, now, changes)
        if kind in ("set_params", "query_params"):
            changes.events.append(self._device_event(
                "device.params_result", event.phy_id, now,
                {"command_id": event.command_id, "ok": False, "reason": reason}))
        if order is None:
            return
        if kind in ("start_charging", "card_answer") and (
                order.session.state is OrderState.PENDING):
            if isinstance(event, CommandTimedOut):
                # Unanswered is not refused: the order waits for start_timeout, which
                # ends it as no_confirmation unless a late confirmation or progress
                # report arrives first.
                return
            self._order_input(order, order.session.command_rejected(now, reason), now, changes,
                              refusal_code=event.raw_code)
        elif kind == "stop_charging" and order.session.state is OrderState.STOPPING:
            self._order_input(order, order.session.stop_failed(now), now, changes)

    def _finish_command(self, command_id: str, status: CommandStatus, now: float,
                        changes: _Changes, *, reason: str | None = None,
                        result: Mapping[str, object] | None = None) -> None:
        open_command = self._commands.pop(command_id, None)
        self._params_sent.pop(command_id, None)
        if open_command is not None:
            self.metrics.commands.labels(open_command.kind, status.value).inc()
            kept = open_command
            changes.undo.append(lambda: self._commands.__setitem__(command_id, kept))
        changes.write(lambda db: db.finish_command(command_id, status, int(now), reason=reason,
                                                   result=result))

    # --- partial AP3000 parameter sets ---------------------------------------------------------
    #
    # An AP3000 set command carries every field of its frame, so a set naming only
    # some is completed when it is sent: with the device's last reported values
    # (its query answers and acknowledged sets, kept in memory: after a restart the
    # device is asked again), else after a parameter query queued for it. The set
    # row keeps what the client asked; its result shows what was sent.

    async def _complete_params(self, open_command: _OpenCommand,
                               command: SetParams) -> SetParams | None:
        """*command* ready to send (completed if partial), or None while it waits."""
        device = open_command.device
        owner = _partial_set(device.protocol, command.params)
        if owner is None:
            self._params_sent[open_command.id] = dict(command.params)
            return command
        known = self._known_params.get(device.phy_id, {})
        if all(name in command.params or name in known for name in owner.mandatory):
            params = {name: known[name] for name in owner.fields if name in known}
            params.update(command.params)
            self._params_sent[open_command.id] = params
            return dataclasses.replace(command, params=params)
        if open_command.id in self._params_asking or any(
                wait.set_command.id == open_command.id for wait in self._params_waits.values()):
            return None  # its query is queued already (a reconnect resends both)
        # Two sends of one set can overlap (the queueing and the device's coming
        # online): the first to get here asks, across its awaits.
        self._params_asking.add(open_command.id)
        try:
            await self._ask_for_params(open_command, command, owner)
        finally:
            self._params_asking.discard(open_command.id)
        return None

    async def _ask_for_params(self, open_command: _OpenCommand, command: SetParams,
                              owner: Ap3000ParameterCommand) -> None:
        """Queue the query that reads the values a partial set lacks."""
        device = open_command.device
        now = self.clock()
        record = await self.db.get_command(open_command.id)
        if record is None:
            return  # pruned meanwhile: nothing left to complete
        if not owner.query_names:
            changes = _Changes()
            self._fail_partial_set(open_command, owner, "no parameter query reports them",
                                   now, changes)
            await self._commit(changes)
            return
        query = QueryParams(command_id=_new_id("cmd"), phy_id=device.phy_id,
                            names=owner.query_names, socket_no=command.socket_no)
        changes = _Changes()
        self._stage_command(device, query, None, now, changes, key_name=record.key_name)
        self._params_waits[query.command_id] = _ParamsWait(
            open_command, command, owner, deadline=record.expires_at)
        changes.undo.append(lambda: self._forget_params_wait(query.command_id))
        self.log.info("partial parameter set waits for the device's values",
                      command_id=open_command.id, query_command_id=query.command_id,
                      device=device.phy_id, set_command=owner.name)
        await self._commit(changes)

    def _forget_params_wait(self, query_id: str) -> None:
        self._params_waits.pop(query_id, None)

    def _params_known(self, device: _Device, event: ParamsReported,
                      changes: _Changes) -> None:
        """Keep the reported values; a partial set waiting for them is sent next."""
        self._known_params.setdefault(device.phy_id, {}).update(event.params)
        wait = self._params_waits.pop(event.command_id or "", None)
        if wait is not None and wait.set_command.id in self._commands:
            changes.after.append(lambda: self._send(wait.set_command, wait.command))

    def _params_query_failed(self, query_id: str, reason: str, now: float,
                             changes: _Changes) -> None:
        wait = self._params_waits.pop(query_id, None)
        if wait is not None:
            self._fail_partial_set(wait.set_command, wait.owner,
                                   f"the device did not answer the parameter query "
                                   f"{query_id} ({reason})", now, changes)

    async def _params_waits_due(self, now: float) -> None:
        """Fail the partial sets whose lifetime ended before their query's answer."""
        due = [query_id for query_id, wait in self._params_waits.items()
               if wait.deadline <= now]
        if not due:
            return
        changes = _Changes()
        for query_id in due:
            wait = self._params_waits.pop(query_id)
            self._fail_partial_set(wait.set_command, wait.owner,
                                   f"the device did not answer the parameter query "
                                   f"{query_id} within command_ttl", now, changes)
        await self._commit(changes)

    def _fail_partial_set(self, open_command: _OpenCommand, owner: Ap3000ParameterCommand,
                          why: str, now: float, changes: _Changes) -> None:
        if open_command.id not in self._commands:
            return  # already ended (expired, or failed another way)
        reason = (f"partial parameter set: {owner.name} carries "
                  f"{', '.join(owner.mandatory)} together and the device's current values "
                  f"are not known: {why}; send every one of them to set without asking")
        self.log.warning("command failed", device=open_command.device.phy_id,
                         cmd=open_command.kind, msg_id=open_command.id, reason=reason)
        self._finish_command(open_command.id, CommandStatus.FAILED, now, changes,
                             reason=reason)
        changes.events.append(self._device_event(
            "device.params_result", open_command.device.phy_id, now,
            {"command_id": open_command.id, "ok": False, "reason": reason}))

    # --- timers -------------------------------------------------------------------------------

    async def _tick(self, now: float) -> None:
        changes = _Changes()
        for order in list(self._orders.values()):
            deadline = order.session.next_deadline()
            if deadline is not None and deadline <= now:
                self._order_input(order, order.session.handle_timeout(now), now, changes)
        # Sweep when a device may have fallen silent, or when the clock went back
        # since the last sweep (the bound it returned no longer holds).
        if now >= self._silence_check_at or now < self._swept_at:
            self._silence_check_at = self._sweep_silent(now, changes)
            self._swept_at = now
        await self._params_waits_due(now)
        for record in await self.db.expire_commands(int(now)):
            open_command = self._commands.pop(record.id, None)
            self.metrics.commands.labels(record.kind, "expired").inc()
            self.log.warning("command expired", command_id=record.id, device=record.phy_id,
                             cmd=record.kind)
            waiting = self._orders.get(record.order_no or "")
            if (open_command is not None and waiting is not None
                    and record.kind == "start_charging"
                    and waiting.session.state is OrderState.PENDING):
                self._order_input(waiting, waiting.session.command_expired(now), now, changes)
        await self._commit(changes)

    def _sweep_silent(self, now: float, changes: _Changes) -> float:
        """Mark the online devices silent past their ``offline_after`` offline.

        Returns:
            The earliest time another device can fall silent: an online device's
            ``last_seen`` only grows, and a device coming online lowers the bound
            to its own (in ``_seen``), so no sweep is needed before then. At
            10,000 devices a sweep blocks the event loop for some milliseconds;
            four a second added up.
        """
        limits = {protocol: self.config.offline_after_for(protocol.value)
                  for protocol in ProtocolFamily}
        next_check = math.inf
        for device in self._devices.values():
            if not device.online:
                continue
            limit = limits[device.protocol]
            if now - device.last_seen > limit:
                self._set_offline(device, now, "silent", changes)
                link = self.gateway.link_for(device.phy_id) if self.gateway else None
                if link is not None:
                    link.close()
            else:
                next_check = min(next_check, device.last_seen + limit)
        return next_check - TICK  # a tick early: no rounding can skip the due sweep

    def _set_offline(self, device: _Device, now: float, reason: str,
                     changes: _Changes) -> None:
        if not device.online:
            return
        device.online = False
        link_id, device.link_id = device.link_id, None
        changes.undo.append(lambda: _set_link(device, True, link_id))
        phy_id = device.phy_id
        changes.write(lambda db: db.set_device_online(phy_id, False, int(now)))
        changes.events.append(self._device_event("device.offline", phy_id, now,
                                                 {"reason": reason}))
        for open_command in self._commands.values():
            if open_command.device is device:
                open_command.handed_to = None

    async def _flush(self) -> None:
        touched, self._touched = self._touched, {}
        touches = [DeviceTouch(phy_id=device.phy_id, seen_at=int(device.last_seen),
                               rssi=device.rssi) for device in touched.values()]
        logs, self._frame_logs = self._frame_logs, []
        for start in range(0, len(touches), FLUSH_CHUNK):
            await self.db.touch_devices(touches[start:start + FLUSH_CHUNK])
        for start in range(0, len(logs), FLUSH_CHUNK):
            await self.db.append_cmd_log_rows(logs[start:start + FLUSH_CHUNK])

    async def _prune(self, now: float) -> None:
        config = self.config
        await self.db.prune_cmd_logs(older_than=int(now) - config.cmd_log_retention,
                                     max_rows=config.cmd_log_max_rows)
        await self.db.prune_nonces(int(now), ttl=config.nonce_ttl)
        await self.db.prune_idempotency(int(now), ttl=config.idempotency_ttl)
        # retention_days, in batches: other database calls go between two of them.
        before = int(now) - config.retention_days * 24 * 3600
        pruned = 0
        while (deleted := await self.db.prune_retained(before=before,
                                                       batch=RETENTION_BATCH)) > 0:
            pruned += deleted
            if deleted < RETENTION_BATCH:
                break
        if pruned:
            self.log.info("retention pruned", rows=pruned, before=before)

    # --- helpers ------------------------------------------------------------------------------

    async def _commit(self, changes: _Changes) -> None:
        if not (self._msg_ids or changes.ops or changes.events or changes.after
                or changes.undo or changes.touched):
            return  # most reads: a heartbeat changes nothing that is stored at once
        if self._msg_ids:  # commands written since the last commit (commands_sent)
            msg_ids, self._msg_ids = self._msg_ids, {}
            changes.write(lambda db: db.set_command_msg_ids(msg_ids))
            changes.undo.append(lambda: self._msg_ids.update(
                {k: v for k, v in msg_ids.items() if k not in self._msg_ids}))
        # Taken out of *changes* first: a change is applied once, even if the
        # object is committed again.
        ops, events, after = changes.ops, changes.events, changes.after
        undo, touched = changes.undo, changes.touched
        changes.ops, changes.events, changes.after, changes.undo = [], [], [], []
        changes.touched = {}
        if ops or events:
            deliver = self.config.webhook_url is not None
            try:
                # Heartbeat samples alone are routine: not synced to disk on their own
                # (the next durable commit syncs them); state changes are durable.
                commit = (self.db.atomic_routine
                          if not ops and all(e.event_type in ROUTINE_EVENT_TYPES for e in events)
                          else self.db.atomic)
                await commit(lambda db: _apply(db, ops, events, deliver=deliver))
            except Exception as err:
                self._roll_back(undo, touched)
                # A refusal by the database's own rules (a port with an open order, a
                # card without the money) is an answer the caller turns into a 409,
                # not a failure of the store.
                log = self.log.info if isinstance(err, _REFUSALS) else self.log.error
                log("state change not stored; nothing of it is acknowledged",
                    error=repr(err), orders=sorted(touched),
                    events=[e.event_type for e in events])
                raise
            for event in events:
                self.metrics.child(self.metrics.events, event.event_type).inc()
            if events:
                self.on_events()
        for action in after:
            await action()

    def _roll_back(self, undo: list[Callable[[], None]],
                   touched: Mapping[str, tuple[_Order, OrderRecord]]) -> None:
        """A commit failed: put the caches back to what the database holds."""
        for action in reversed(undo):
            action()
        now = self.clock()
        for order, stored in touched.values():
            self._untrack(order)
            order.record = stored
            if stored.status.is_terminal:
                continue
            start = self._commands.get(order.start_command or "")
            order.session = self._stored_session(
                stored, order.device, now, events_emitted=order.session.events_emitted,
                command_sent_at=None if start is None or start.handed_to is None else now)
            self._track(order)

    def _stored_session(self, record: OrderRecord, device: _Device, now: float, *,
                        events_emitted: int, command_sent_at: float | None
                        ) -> ChargingSession:
        """The session of an open order as its row *record* stores it."""
        return ChargingSession.resume(
            order_no=record.order_no, device_phy_id=device.phy_id, socket_no=record.socket_no,
            port_no=record.port_no, charge_mode=record.charge_mode,
            tariff=self._stored_tariff(record),
            requested_duration_s=record.requested_duration_sec, timeouts=self._timeouts,
            state=record.status, created_at=float(record.created_at),
            command_sent_at=command_sent_at,
            start_time=None if record.start_time is None else float(record.start_time),
            duration_s=record.duration_sec, energy_centikwh=record.total_kwh,
            peak_power_dw=record.peak_power, events_emitted=events_emitted, now=now)

    def _stored_tariff(self, record: OrderRecord) -> Tariff:
        tiers: tuple[PowerTierSpec, ...] = ()
        if record.power_tiers_json:
            tiers = _tier_specs(record.power_tiers_json)
        kind = record.tariff
        if kind is TariffKind.TIERS and not tiers:
            self.log.error("tier order without tiers; billed flat", order_no=record.order_no)
            kind = TariffKind.FLAT
        return Tariff(amount_cents=record.amount, price_per_kwh_cents=record.price_per_kwh,
                      service_fee_permille=record.service_fee,
                      duration_s=record.requested_duration_sec, kind=kind, power_tiers=tiers)

    def _check_ready(self) -> None:
        if not self._ready:
            raise Unavailable("the server is starting or stopping")

    async def _known_device(self, phy_id: str) -> _Device:
        device = self._devices.get(phy_id)
        if device is None:
            record = await self.db.get_device(phy_id)
            if record is None:
                raise DeviceNotFound(phy_id)
            if self.ownership is not None:
                # The API runs a device's calls on its owner: with none alive, here.
                return await self._claim_and_load(record)
            device = self._cache_device(record)
        return device

    # --- ownership (clustered servers) --------------------------------------------------

    async def _claim_and_load(self, record: DeviceRecord, *,
                              online: bool | None = None) -> _Device:
        """Claim a device for this node and cache it with its open orders (their
        sessions resumed as after a restart) and its ports; then let the cluster
        run what a dead previous owner left unfinished about it.

        Until that is done, other tasks asking for the device wait: an API call
        must not find the device without its orders.
        """
        assert self.ownership is not None
        phy_id = record.phy_id
        while (loading := self._loading.get(phy_id)) is not None:
            await loading.wait()
        cached = self._devices.get(phy_id)
        if cached is not None:
            return cached
        self._loading[phy_id] = done = trio.Event()
        try:
            epoch = await self.ownership.claim(phy_id)
            fresh = await self.db.get_device(phy_id) or record
            if online is not None:
                fresh = dataclasses.replace(fresh, online=online)
            device = self._cache_device(fresh)
            device.epoch = epoch
            now = self.clock()
            for order in await self.db.open_orders_for_device(fresh.id):
                if order.order_no not in self._orders:
                    await self._resume(order, now)
            for port in await self.db.list_ports(fresh.id):
                self._ports.setdefault((fresh.id, port.socket_no, port.port_no), port)
        finally:
            del self._loading[phy_id]
            done.set()
        await self.ownership.loaded(phy_id)
        return device

    def owned_devices(self) -> list[tuple[str, int]]:
        """The devices whose state this node holds, with the epochs of its claims."""
        return [(d.phy_id, d.epoch) for d in self._devices.values() if d.epoch]

    async def adopt_device(self, phy_id: str) -> None:
        """Take over a device no live node owns (the cluster's sweeper): its
        timers (offline, lost orders, command expiry) run here from now on."""
        if phy_id in self._devices:
            return
        record = await self.db.get_device(phy_id)
        if record is not None:
            await self._claim_and_load(record)
            self.log.info("orphaned device adopted", device=phy_id)

    async def watched_devices(self) -> list[str]:
        """Devices with something to time: online in the database, or an open order."""
        return await self.db.watched_devices()

    async def release_device(self, phy_id: str) -> None:
        """Another node claimed the device: forget its state (the database has it)
        and close its connection here, if any.

        The state goes first, so the closing connection marks nothing offline:
        the device is online on the other node.
        """
        device = self._devices.pop(phy_id, None)
        if device is not None:
            for order in [o for o in self._orders.values() if o.device is device]:
                self._untrack(order)
            for command_id in [c for c, o in self._commands.items() if o.device is device]:
                self._forget_command(command_id)
            for key in [k for k in self._ports if k[0] == device.id]:
                del self._ports[key]
            self._known_params.pop(phy_id, None)
            self._touched.pop(phy_id, None)
        if self.gateway is not None:
            self.gateway.disconnect(phy_id, "claimed by another node")
        self.log.info("device released to another node", device=phy_id)

    def _cache_device(self, record: DeviceRecord) -> _Device:
        """The one object for the device of *record*; cached now if it was not.

        Never replaces a cached one: an order holds its device object, and two tasks
        that loaded the same new device across an ``await`` must end up sharing one.
        """
        cached = self._devices.get(record.phy_id)
        if cached is not None:
            return cached
        device = _Device(id=record.id, phy_id=record.phy_id, protocol=record.protocol,
                         online=record.online, last_seen=float(record.last_seen_at or 0),
                         firmware=record.firmware, iccid=record.iccid, rssi=record.rssi)
        self._devices[record.phy_id] = device
        if device.online:
            self._silence_check_at = -math.inf
        return device

    def _pick_idle_port(self, device: _Device, socket_no: int) -> int:
        if not self.is_online(device.phy_id):
            raise NoIdlePort(device.phy_id)
        idle = sorted(port.port_no for key, port in self._ports.items()
                      if key[0] == device.id and key[1] == socket_no
                      and port.status is PortState.IDLE and key not in self._by_port)
        if not idle:
            raise NoIdlePort(device.phy_id)
        return idle[0]

    def _next_order_no(self, now: float) -> str:
        """A new order number, given out here and not by the database:
        two requests in the same second must not both see the same "next free"
        number before either has inserted its order."""
        order_no = max(format_order_no(int(now), 0), self._free_order_no)
        second, sequence = int(order_no[3:13]), int(order_no[13:])
        self._free_order_no = (format_order_no(second, sequence + 1) if sequence < 999
                               else format_order_no(second + 1, 0))
        return order_no

    def _device_event(self, event_type: str, phy_id: str, now: float,
                      data: Mapping[str, object]) -> NewEvent:
        return NewEvent(event_id=f"{event_type}-{phy_id}-{_new_id('e')}",
                        event_type=event_type, data={"device_phy_id": phy_id, **data},
                        created_at=int(now), device_phy_id=phy_id)

    def _order_event(self, device: _Device, amount_cents: int | None, event: OrderEvent,
                     now: float, *, tariff: TariffKind) -> NewEvent:
        event_type, data = order_event_data(event, device_phy_id=device.phy_id,
                                            amount_cents=amount_cents, tariff=tariff.value)
        return NewEvent(event_id=event.event_id, event_type=event_type, data=data,
                        created_at=int(event.at), device_phy_id=device.phy_id,
                        order_no=event.order_no)


def _check_address(protocol: ProtocolFamily, socket_no: int, port_no: int) -> None:
    """The charging point must exist in the device's protocol."""
    if protocol is ProtocolFamily.BKV:
        if not 1 <= socket_no <= 250:
            raise InvalidArgument("socket_no", "BKV sockets are numbered 1 to 250")
        if port_no not in (1, 2):
            raise InvalidArgument("port_no", "BKV sockets have port 1 (hole A) and 2 (hole B)")
    else:
        if socket_no != 1:
            raise InvalidArgument("socket_no", "AP3000 devices have socket 1 only")
        if not 1 <= port_no <= 16:
            raise InvalidArgument("port_no", "AP3000 ports are numbered 1 to 16")


def _check_expressible(protocol: ProtocolFamily, command: Command, field_name: str) -> None:
    """Encode *command* once on a scratch connection, so a bad one fails now, not later."""
    problem = _sending_problem(protocol, command)
    if problem is not None:
        raise InvalidArgument(field_name, problem)


def _sending_problem(protocol: ProtocolFamily, command: Command) -> str | None:
    """Why the library refuses to send *command* to a device of *protocol*, if it does."""
    scratch = ServerConnection(protocol=protocol)
    try:
        scratch.send(command, 0.0)
    except (LocalProtocolError, ValueError) as err:
        return str(err)
    return None


def _reply_json(phy_id: str, reply: BkvMessage | Ap3000Message) -> dict[str, object]:
    """The device's answer to a SendMessage: its message name and fields."""
    form = message_json(phy_id, reply)
    return {"message": form.get("message"), "fields": form.get("fields", {})}


def _partial_set(protocol: ProtocolFamily, params: Mapping[str, int]
                 ) -> Ap3000ParameterCommand | None:
    """The AP3000 set command *params* names only some mandatory fields of, if so."""
    if protocol is not ProtocolFamily.AP3000:
        return None  # BKV's 0x1011 carries only what changes
    try:
        owner = parameter_command(params)
    except LocalProtocolError:
        return None  # unknown names or two commands: the library's refusal says which
    return owner if any(name not in params for name in owner.mandatory) else None


def _reported_rssi(protocol: ProtocolFamily, event: DeviceHeartbeat) -> int | None:
    """The heartbeat's signal strength, None when it reports none: 99 is the modem's
    "not known"; an AP3000 port heartbeat (no ICCID) sends 0 for "wired or not
    supported", which must not replace the modem heartbeat's value."""
    rssi = event.rssi
    if rssi is None or rssi == 99:
        return None
    if protocol is ProtocolFamily.AP3000 and rssi == 0 and not event.iccid:
        return None
    return rssi


def _port_changed(old: PortRecord, new: PortRecord) -> bool:
    return (old.status, old.power_w, old.voltage, old.fault_code, old.order_no,
            old.business_no) != (new.status, new.power_w, new.voltage, new.fault_code,
                                 new.order_no, new.business_no)


def _set_link(device: _Device, online: bool, link_id: int | None) -> None:
    device.online = online
    device.link_id = link_id


def _tier_specs(text: str) -> tuple[PowerTierSpec, ...]:
    """The ``power_tiers_json`` of an order (written from the request's tiers)."""
    value = json.loads(text)
    assert isinstance(value, list)
    return tuple(PowerTierSpec(**item) for item in value)


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


# Open states must match the storage's notion of an order holding its port.
assert {OrderState.PENDING, OrderState.CHARGING, OrderState.STOPPING} == OPEN_ORDER_STATES
