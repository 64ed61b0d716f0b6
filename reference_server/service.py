# The charging service: the trio shell around the decisions of reference_server.core.
#
# The gateway hands it the library's protocol-neutral events per TCP read; the
# HTTP API calls its operations. For each, the shell reads what the decision
# needs from the database, lets the core decide (core.orders, core.commands,
# core.devices), commits the Changes the core filled in, ONE transaction of state
# writes and their outbox events, and then carries out the change's intents
# (sending commands, answering cards, closing connections). The awaits, the
# commit and the timers are here; the decisions are not.
#
# Why memory and not a read per event: one process owns each device's state, so
# the caches cannot go stale, and a status report of a 250-socket gateway must not
# cost 500 queries. What must survive a restart is always in the database first;
# start() rebuilds the caches from it (open orders resume their sessions with
# ChargingSession.resume, event ids continue, unanswered commands are resent).
#
# Time: the service reads a SteadyClock (clock.py) built on the injected wall clock,
# so its timers (session deadlines, silence, command expiry) keep their length when
# the wall clock steps; the timer task's own intervals count trio's monotonic clock.
#
# Memory never runs ahead of the database. The core updates the caches before the
# commit and registers an undo for each update; a failed commit runs them: the
# orders it touched are resumed from their last stored row, as after a restart,
# popped commands and ports come back. The gateway then closes the connection
# without the held answers, and the device's retransmission finds the order as the
# database has it and settles it once.
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TypeAlias, assert_never

import trio

from bkvcodec import (
    AlarmRaised,
    AnswerWithheld,
    CardPresented,
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
    ModemIdentified,
    ParamsReported,
    PortState,
    PortStatusReported,
    ProgressReported,
    ProtocolFamily,
    QueryParams,
    SendFirmware,
    SetParams,
    SettlementReported,
    StartCharging,
    StartConfirmed,
    StartOta,
    Tariff,
    UnidentifiedStream,
    UnknownMessage,
    UpgradeRequested,
)
from bkvcodec.ap3000 import Ap3000ParameterCommand

from .clock import SteadyClock
from .commands import command_from_record
from .config import Config
from .core.changes import Changes, Op, device_event, new_id
from .core.commands import Commands, OpenCommand, partial_set, sending_problem
from .core.devices import Device, Devices
from .core.intents import AnswerCard, CloseLink, Dispatch, Intent, ReportCardDebit, Send
from .core.orders import Order, Orders
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
from .gateway import DeviceLink, Gateway
from .identity import DeviceIdentities
from .logs import Logger
from .metrics import Metrics
from .requests import AUTO_PORT, ChargeRequest, ChargeResult, FirmwareOta, OtaRequest, StopRequest
from .storage import (
    ROUTINE_EVENT_TYPES,
    ActiveOrderExists,
    AsyncDatabase,
    CardExists,
    CmdLogRow,
    CommandRecord,
    CommandStatus,
    Database,
    DeviceIdentity,
    DeviceRecord,
    DuplicateOrderNo,
    EventRecord,
    InsufficientFunds,
    NewEvent,
    NewOrder,
    OrderRecord,
    card_key,
)

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


class ChargingService:
    """Routes device events to orders, queues commands, records events: reads,
    lets :mod:`reference_server.core` decide, commits, carries out the intents.

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
        #: The decisions, with the state they keep (orders → commands → devices).
        self.devices = Devices(config, tick=TICK)
        self.commands = Commands(self.devices, config, logger, metrics)
        self.orders = Orders(self.commands, self.devices, config, logger)
        #: Devices being claimed and loaded (clustered servers), by id.
        self._loading: dict[str, trio.Event] = {}
        #: Partial sets whose query is being queued (see _complete_params).
        self._params_asking: set[str] = set()
        self._card_locks: dict[str, trio.Lock] = {}
        self._frame_logs: list[CmdLogRow] = []

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
        self.orders.free_order_no = await self.db.allocate_order_no(int(now))
        if self.ownership is not None:
            self._ready = True
            self.log.info("clustered: device state is loaded as devices are claimed")
            return
        changes = Changes()
        for phy_id in await self.db.mark_all_devices_offline(int(now)):
            changes.events.append(device_event(
                "device.offline", phy_id, now, {"reason": "server_restart"}))
        for record in await self.db.open_orders():
            await self._resume(record, now)
        await self._commit(changes)
        self._ready = True
        self.log.info("orders resumed", open_orders=len(self.orders.orders),
                      open_commands=len(self.commands.open))

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
        device = self.devices.get(phy_id) if phy_id else None
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
        self.commands.frames_sent(link.link_id, sent)

    async def device_events(self, link: DeviceLink, events: list[ConnectionEvent]) -> None:
        """Handle the events of one read of *link*, then commit them together (with
        the message ids of commands written since the last commit)."""
        started = time.perf_counter()
        now = self.clock()
        changes = Changes()
        for event in events:
            await self._handle(link, event, now, changes)
        await self._commit(changes)
        self.metrics.device_handling.observe(time.perf_counter() - started)

    async def link_closed(self, link: DeviceLink, phy_ids: list[str],
                          dropped_commands: list[str]) -> None:
        """*link* closed: its devices are offline unless another link carries them."""
        self.devices.link_iccid.pop(link.link_id, None)
        now = self.clock()
        changes = Changes()
        for command_id in dropped_commands:
            self.commands.dropped(command_id)
        for phy_id in phy_ids:
            device = self.devices.get(phy_id)
            if device is not None and device.link_id == link.link_id:
                self.commands.device_offline(device, now, "disconnected", changes)
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
        port = self.devices.ports.get(key)
        if port is not None and port.status is PortState.FAULT:
            raise PortFault(port_no, port.fault_code)
        for _ in range(_ORDER_NO_ATTEMPTS - 1):
            try:
                return await self._start_order(device, request, port_no, key_name,
                                               record_answer)
            except DuplicateOrderNo:
                # Another node numbered an order of the same second: take the next
                # free number from the database and try again.
                self.orders.free_order_no = await self.db.allocate_order_no(int(self.clock()))
        return await self._start_order(device, request, port_no, key_name, record_answer)

    async def _start_order(self, device: Device, request: ChargeRequest, port_no: int,
                           key_name: str | None,
                           record_answer: Callable[[Database, ChargeResult], None] | None
                           ) -> ChargeResult:
        now = self.clock()
        changes = Changes()
        plan = self.orders.charge(device, request, port_no, key_name, now, changes)
        order_no = plan.new_order.order_no
        online = self.is_online(device.phy_id)
        also: Op | None = None
        if record_answer is not None:
            answer = record_answer

            def also(db: Database) -> None:
                stored = db.get_order(order_no)
                assert stored is not None
                answer(db, ChargeResult(order=stored, device_online=online,
                                        replaced_order=plan.replaced))
        order = await self._create_order(device, plan.new_order, plan.tariff, plan.command,
                                         now, changes, also=also)
        self.log.info("order created", order_no=order_no, device=device.phy_id,
                      socket_no=request.socket_no, port_no=port_no)
        return ChargeResult(order=order.record, device_online=online,
                            replaced_order=plan.replaced)

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
            order = self.orders.get(request.order_no)
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
            found = self.orders.on_port((device.id, request.socket_no, request.port_no))
            if found is None:
                raise OrderNotFound(f"running on port {request.port_no}")
            order = found
        now = self.clock()
        changes = Changes()
        self.orders.stop(order, now, request.reason or "remote_stop", changes, key_name=key_name)
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
        return await self._queue(device, QueryParams(command_id=new_id("cmd"), phy_id=phy_id,
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
            command = SendFirmware(command_id=new_id("cmd"), phy_id=phy_id,
                                   image=request.image, target=request.target,
                                   device_type=request.device_type,
                                   firmware_version=request.firmware_version)
        else:
            if device.protocol is not ProtocolFamily.BKV:
                raise DeviceRejected("AP3000 devices take the firmware image itself: send "
                                     "image_base64")
            command = StartOta(command_id=new_id("cmd"), phy_id=phy_id,
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
            command = build(new_id("cmd"))
        except LocalProtocolError as err:
            raise refusal(str(err)) from None
        checked = command
        if isinstance(command, SetParams):
            owner = partial_set(device.protocol, command.params)
            if owner is not None:
                # Checked with the documented defaults standing in for the fields
                # the device's own values will fill.
                checked = dataclasses.replace(command, params={
                    **owner.defaults, **command.params})
        problem = sending_problem(device.protocol, checked)
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
        changes = Changes()
        changes.events.append(device_event(event_type, phy_id, self.clock(), data))
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
                      changes: Changes) -> None:
        protocol = link.protocol or "unknown"
        self.metrics.child(self.metrics.frames_in, protocol, type(event).__name__).inc()
        match event:
            case FrameRejected():
                self.metrics.frames_rejected.labels(event.error.code).inc()
            case UnidentifiedStream():
                self.metrics.frames_rejected.labels("unidentified").inc()
            case ModemIdentified():
                self.devices.link_iccid[link.link_id] = event.iccid
            case CommandAcknowledged() | CommandRejected() | CommandTimedOut():
                self.orders.command_outcome(event, now, changes)
            case CommandDropped():
                self.commands.dropped(event.command_id)
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
                             changes: Changes) -> None:
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
                self.devices.registered(device, event, link.remote_addr, now, changes)
                await self.db.upsert_device(device.phy_id, device.protocol, int(now),
                                            remote_addr=link.remote_addr,
                                            firmware=event.firmware)
            case DeviceHeartbeat():
                self.devices.heartbeat(device, event, now, changes,
                                       sampling=HEARTBEAT_SAMPLING)
            case PortStatusReported():
                self.orders.port_status(device, event, now, changes)
            case StartConfirmed() | ProgressReported() | SettlementReported():
                self.orders.report(device, event, now, changes)
            case AlarmRaised():
                self.orders.alarm(device, event, now, changes)
            case CardPresented():
                await self._card(device, event, now, changes)
            case ParamsReported():
                self.commands.params_reported(device, event, now, changes)
            case UpgradeRequested():
                self.log.info("device asks for a firmware upgrade", device=event.phy_id,
                              device_type=event.device_type,
                              firmware_version=event.firmware_version)
            case UnknownMessage():
                self.log.debug("message without a rule", device=event.phy_id,
                               name=event.name)
            case _:
                assert_never(event)

    async def _seen(self, link: DeviceLink, phy_id: str, now: float,
                    changes: Changes) -> Device | None:
        """A frame of *phy_id* arrived on *link*: it exists and is online."""
        device = self.devices.get(phy_id)
        if device is None or device.link_id != link.link_id:
            protocol = link.connection.protocol
            if protocol is None:
                return None
            record, _ = await self.db.upsert_device(
                phy_id, protocol, int(now), remote_addr=link.remote_addr,
                iccid=self.devices.link_iccid.get(link.link_id))
            if device is None and self.ownership is not None:
                # Online as the database says is another node's word: coming online
                # here is this node's (its event, and the queued commands sent).
                device = await self._claim_and_load(record, online=False)
            # Another task (an API call) may have cached the device meanwhile.
            device = self.devices.cache(record)
            device.link_id = link.link_id
        self.devices.seen(device, link.remote_addr, now, changes)
        return device

    async def _card(self, device: Device, event: CardPresented, now: float,
                    changes: Changes) -> None:
        # One swipe of a card at a time, from reading what is available to the
        # commit of the order and its hold (two swipes can never spend the same
        # cents; the conditional hold in the database is the proof, this lock
        # keeps the second swipe from being authorised for stale cents).
        key = card_key(event.card_no)
        lock = self._card_locks.setdefault(key, trio.Lock())
        try:
            async with lock:
                await self._card_swiped(device, event, now, changes)
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._card_locks.pop(key, None)

    async def _card_swiped(self, device: Device, event: CardPresented, now: float,
                           changes: Changes) -> None:
        card = await self.db.get_card(event.card_no)
        plan = self.orders.card_swiped(device, event, card, now, changes)
        if plan is None:
            return
        swiped = plan.swiped
        ap3000 = device.protocol is ProtocolFamily.AP3000
        try:
            order = await self._create_order(
                device, plan.new_order, plan.tariff, None, now, plan.creation,
                card_command=None if ap3000 else plan.command_id)
        except InsufficientFunds as err:
            # Spent meanwhile (an adjustment): refuse rather than hold cents twice.
            swiped.update(accepted=False, reason="insufficient_balance", order_no=None,
                          authorised_cents=None, available_cents=err.available_cents)
            self.orders.card_refused(device, event, now, changes, swiped,
                                     "insufficient_balance", err.available_cents or 0)
            return
        except PortBusy:
            swiped.update(accepted=False, reason="port_busy", order_no=None,
                          authorised_cents=None)
            self.orders.card_refused(device, event, now, changes, swiped, "port_busy",
                                     plan.card.available_cents)
            return
        self.orders.card_accepted(order, event, plan, now, changes)

    # --- orders and commands ------------------------------------------------------------------

    async def _create_order(self, device: Device, new_order: NewOrder, tariff: Tariff,
                            command: StartCharging | None, now: float, changes: Changes,
                            *, card_command: str | None = None,
                            also: Op | None = None) -> Order:
        """Insert the order, its start command and its first events in one transaction
        (with *also*, a write of the caller's, after the order's)."""
        staged = self.orders.stage_order(device, new_order, tariff, command, now, changes,
                                         card_command=card_command, also=also)
        # The start is sent only once the order is tracked: a device may answer it
        # before this task runs again.
        intents, changes.intents = changes.intents, []
        try:
            await self._commit(changes)
        except ActiveOrderExists as err:
            self._unstage(command)
            raise PortBusy(err.order_no or "unknown", new_order.port_no, "pending") from None
        except Exception:
            # Nothing was committed: the start command was never stored.
            self._unstage(command)
            raise
        order = self.orders.opened(staged)
        for intent in intents:
            await self._carry_out(intent)
        return order

    def _unstage(self, command: StartCharging | None) -> None:
        if command is not None:
            self.commands.forget(command.command_id)

    async def _resume(self, record: OrderRecord, now: float) -> None:
        device_record = await self.db.get_device_by_id(record.device_id)
        if device_record is None:
            return
        device = self.devices.cache(device_record)
        commands = await self.db.queued_commands(device.id, int(now), include_sent=True)
        events_emitted = await self.db.order_event_count(record.order_no)
        self.orders.resume(record, device, commands, events_emitted, now)
        self.devices.load_ports(await self.db.list_ports(device.id))

    async def _queue(self, device: Device, command: Command, *,
                     key_name: str | None = None) -> CommandRecord:
        now = self.clock()
        changes = Changes()
        self.commands.stage(device, command, None, now, changes, key_name=key_name)
        await self._commit(changes)
        record = await self.db.get_command(command.command_id)
        assert record is not None
        return record

    async def _dispatch(self, device: Device) -> None:
        """The device is online: send what waits for it, oldest first."""
        now = self.clock()
        for record in await self.db.queued_commands(device.id, int(now), include_sent=True):
            if record.expires_at <= now and record.status is CommandStatus.SENT:
                changes = Changes()
                self.commands.finish(record.id, CommandStatus.EXPIRED, now, changes,
                                     reason="command_ttl")
                await self._commit(changes)
                continue
            open_command = self.commands.reopen(record, device)
            try:
                command = command_from_record(record)
            except ValueError as err:
                self.log.error("stored command cannot be rebuilt", command_id=record.id,
                               error=str(err))
                continue
            await self._send(open_command, command)

    async def _send(self, open_command: OpenCommand, command: Command) -> None:
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
            changes = Changes()
            self.commands.finish(open_command.id, CommandStatus.FAILED, self.clock(), changes,
                                 reason=f"cannot be sent: {err}")
            await self._commit(changes)
            return
        if not sent:
            return
        # Its message id, if it was written at once, waits in the commands' msg_ids
        # (see commands_sent) and is stored with this commit; a command waiting
        # behind another one gets its id when it is written.
        changes = Changes()
        self.orders.handed_over(open_command, link.link_id, self.clock(), changes)
        await self._commit(changes)

    async def _complete_params(self, open_command: OpenCommand,
                               command: SetParams) -> SetParams | None:
        """*command* ready to send (completed if partial), or None while it waits."""
        completed = self.commands.complete_params(open_command, command)
        if isinstance(completed, SetParams):
            return completed
        if (open_command.id in self._params_asking
                or self.commands.waits_for_values(open_command.id)):
            return None  # its query is queued already (a reconnect resends both)
        # Two sends of one set can overlap (the queueing and the device's coming
        # online): the first to get here asks, across its awaits.
        self._params_asking.add(open_command.id)
        try:
            await self._ask_for_params(open_command, command, completed)
        finally:
            self._params_asking.discard(open_command.id)
        return None

    async def _ask_for_params(self, open_command: OpenCommand, command: SetParams,
                              owner: Ap3000ParameterCommand) -> None:
        """Queue the query that reads the values a partial set lacks."""
        now = self.clock()
        record = await self.db.get_command(open_command.id)
        if record is None:
            return  # pruned meanwhile: nothing left to complete
        changes = Changes()
        self.commands.ask_for_params(open_command, command, owner, record, now, changes)
        await self._commit(changes)

    # --- timers -------------------------------------------------------------------------------

    async def _tick(self, now: float) -> None:
        changes = Changes()
        self.orders.deadlines_due(now, changes)
        self.commands.sweep_silent(now, changes)
        waits = Changes()
        self.commands.params_waits_due(now, waits)
        if not waits.empty():
            await self._commit(waits)
        self.orders.commands_expired(await self.db.expire_commands(int(now)), now, changes)
        await self._commit(changes)

    async def _flush(self) -> None:
        touches = self.devices.take_touches()
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

    # --- the commit ---------------------------------------------------------------------------

    async def _commit(self, changes: Changes) -> None:
        if not self.commands.msg_ids and changes.empty():
            return  # most reads: a heartbeat changes nothing that is stored at once
        # Commands written since the last commit (commands_sent) give their ids.
        self.commands.store_msg_ids(changes)
        taken = changes.take()
        events = taken.events
        if taken.ops or events:
            deliver = self.config.webhook_url is not None
            ops = taken.ops
            try:
                # Heartbeat samples alone are routine: not synced to disk on their own
                # (the next durable commit syncs them); state changes are durable.
                commit = (self.db.atomic_routine
                          if not ops and all(e.event_type in ROUTINE_EVENT_TYPES for e in events)
                          else self.db.atomic)
                await commit(lambda db: _apply(db, ops, events, deliver=deliver))
            except Exception as err:
                self._roll_back(taken)
                # A refusal by the database's own rules (a port with an open order, a
                # card without the money) is an answer the caller turns into a 409,
                # not a failure of the store.
                log = self.log.info if isinstance(err, _REFUSALS) else self.log.error
                log("state change not stored; nothing of it is acknowledged",
                    error=repr(err), orders=sorted(taken.touched),
                    events=[e.event_type for e in events])
                raise
            for event in events:
                self.metrics.child(self.metrics.events, event.event_type).inc()
            if events:
                self.on_events()
        for intent in taken.intents:
            await self._carry_out(intent)

    def _roll_back(self, changes: Changes) -> None:
        """A commit failed: put the caches back to what the database holds."""
        for action in reversed(changes.undo):
            action()
        now = self.clock()
        for restore in changes.touched.values():
            restore(now)

    async def _carry_out(self, intent: Intent) -> None:
        """Do what a committed change asks for."""
        match intent:
            case Send():
                open_command = self.commands.get(intent.command_id)
                if open_command is not None:
                    await self._send(open_command, intent.command)
            case Dispatch():
                device = self.devices.get(intent.phy_id)
                if device is not None:
                    await self._dispatch(device)
            case AnswerCard():
                await self._answer_card(intent)
            case CloseLink():
                link = self.gateway.link_for(intent.phy_id) if self.gateway else None
                if link is not None and intent.link_id in (None, link.link_id):
                    link.close()
            case ReportCardDebit():
                result = intent.settled[0] if intent.settled else None
                if result is None or result.shortfall_cents:
                    self.metrics.events.labels("card.debit_failed").inc()
                    self.log.error("card debit failed", card_no=intent.card_no,
                                   order_no=intent.order_no, billed_cents=intent.billed_cents,
                                   shortfall_cents=intent.billed_cents if result is None
                                   else result.shortfall_cents)
            case _:
                assert_never(intent)

    async def _answer_card(self, answer: AnswerCard) -> None:
        assert self.gateway is not None
        if answer.order_no is None:
            await self.gateway.answer_card(answer.phy_id, answer.request_id,
                                           accept=answer.accept,
                                           balance_cents=answer.balance_cents)
            return
        sent = await self.gateway.answer_card(
            answer.phy_id, answer.request_id, accept=answer.accept,
            command_id=answer.command_id, order_no=answer.order_no,
            balance_cents=answer.balance_cents, duration_s=answer.duration_s,
            energy_wh=answer.energy_wh)
        if sent and answer.command_id is not None:
            # The BKV card answer is the order's start command.
            more = Changes()
            self.orders.card_answer_sent(answer.order_no, self.clock(), more)
            await self._commit(more)

    def _check_ready(self) -> None:
        if not self._ready:
            raise Unavailable("the server is starting or stopping")

    async def _known_device(self, phy_id: str) -> Device:
        device = self.devices.get(phy_id)
        if device is None:
            record = await self.db.get_device(phy_id)
            if record is None:
                raise DeviceNotFound(phy_id)
            if self.ownership is not None:
                # The API runs a device's calls on its owner: with none alive, here.
                return await self._claim_and_load(record)
            device = self.devices.cache(record)
        return device

    def _pick_idle_port(self, device: Device, socket_no: int) -> int:
        if not self.is_online(device.phy_id):
            raise NoIdlePort(device.phy_id)
        port_no = self.orders.idle_port(device, socket_no)
        if port_no is None:
            raise NoIdlePort(device.phy_id)
        return port_no

    # --- ownership (clustered servers) --------------------------------------------------

    async def _claim_and_load(self, record: DeviceRecord, *,
                              online: bool | None = None) -> Device:
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
        cached = self.devices.get(phy_id)
        if cached is not None:
            return cached
        self._loading[phy_id] = done = trio.Event()
        try:
            epoch = await self.ownership.claim(phy_id)
            fresh = await self.db.get_device(phy_id) or record
            if online is not None:
                fresh = dataclasses.replace(fresh, online=online)
            device = self.devices.cache(fresh)
            device.epoch = epoch
            now = self.clock()
            for order in await self.db.open_orders_for_device(fresh.id):
                if self.orders.get(order.order_no) is None:
                    await self._resume(order, now)
            self.devices.load_ports(await self.db.list_ports(fresh.id))
        finally:
            del self._loading[phy_id]
            done.set()
        await self.ownership.loaded(phy_id)
        return device

    def owned_devices(self) -> list[tuple[str, int]]:
        """The devices whose state this node holds, with the epochs of its claims."""
        return [(d.phy_id, d.epoch) for d in self.devices.devices.values() if d.epoch]

    async def adopt_device(self, phy_id: str) -> None:
        """Take over a device no live node owns (the cluster's sweeper): its
        timers (offline, lost orders, command expiry) run here from now on."""
        if self.devices.get(phy_id) is not None:
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
        self.orders.release(phy_id)
        if self.gateway is not None:
            self.gateway.disconnect(phy_id, "claimed by another node")
        self.log.info("device released to another node", device=phy_id)


def _apply(db: Database, ops: list[Op], events: list[NewEvent], *, deliver: bool) -> None:
    """The body of one transaction: the state writes, then their outbox events."""
    for op in ops:
        op(db)
    for event in events:
        db.append_event(event, deliver=deliver)


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
    problem = sending_problem(protocol, command)
    if problem is not None:
        raise InvalidArgument(field_name, problem)
