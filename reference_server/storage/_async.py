# The trio face of the database: AsyncDatabase runs every Database call in a
# worker thread through trio.to_thread.run_sync(..., limiter=CapacityLimiter(1))
# (STYLE.md, "Server (trio)"), so the database (SQLite or PostgreSQL) never blocks
# the event loop and the one connection is never used by two threads at once.
#
# Each Database method has an async twin here with the same signature, written out
# (not generated with __getattr__) so that mypy checks every call; a test checks the
# two classes stay in step. A multi-step state change does not await between its
# steps: it is one synchronous function run with atomic(), which wraps it in
# Database.transaction() inside the worker thread, so the state change and its
# outbox events commit together (api.md §4) and no other task's writes interleave.
#
# Calls are not abandoned on cancellation (trio's default): a cancelled task waits
# for its statement to finish, so a transaction is never cut off half-way. A task
# cancelled before its call started withdraws it, as one waiting for the limiter did.
#
# Calls that queue up while one runs are run together, in order, by ONE trip to the
# worker thread (a batch), each still on its own and in its own transaction. A trip
# costs the event loop a thread hand-off and a couple of scheduling rounds; under
# load (10,000 devices) one trip per call capped the database at a few hundred calls
# a second and queued heartbeat commits for seconds (bench/RESULTS.md). The caller
# whose call finds no batch running leads the next one: it takes every queued call,
# runs them in the thread, wakes their callers, and hands the lead to the first call
# that queued meanwhile.
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Concatenate, Generic, ParamSpec, TypeVar

import trio

from ._database import CmdLogRow, Database
from ._paging import DEFAULT_LIMIT
from ._records import CardStatus

if TYPE_CHECKING:
    from types import TracebackType

    from bkvcodec import ChargeMode, OrderState, ProtocolFamily

    from ._paging import Page
    from ._records import (
        CardLedgerEntry,
        CardRecord,
        CardSettlement,
        CmdLogEntry,
        CmdLogRecord,
        CommandRecord,
        CommandStatus,
        DeliveryRecord,
        DeviceIdentity,
        DeviceRecord,
        DeviceTouch,
        EventRecord,
        IdempotencyRecord,
        NewCommand,
        NewEvent,
        NewOrder,
        OrderRecord,
        PortRecord,
        ProgressSample,
        StorageStatistics,
    )

__all__ = ["AsyncDatabase"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class _Call(Generic[_T]):
    """One queued database call and, once it ran, its result or exception."""

    __slots__ = ("done", "error", "fn", "started", "turn", "value")

    def __init__(self, fn: Callable[[], _T]) -> None:
        self.fn = fn
        self.started = False  # taken into a batch: it will run
        self.done = False
        self.value: _T | None = None
        self.error: BaseException | None = None
        #: Set when the call has run, or when its caller is to lead the next batch.
        self.turn = trio.Event()

    def execute(self) -> None:
        """Run the call (in the worker thread) and keep what it gave."""
        try:
            self.value = self.fn()
        except Exception as exc:  # handed to the caller, which raises it
            self.error = exc
        self.done = True

    def result(self) -> _T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # _T, set by execute()


def _execute(batch: list[_Call[object]]) -> None:
    for call in batch:
        call.execute()


class AsyncDatabase:
    """A :class:`Database` for trio code: every call runs in a worker thread, one at
    a time.

    Args:
        database: The open database; this object owns it from now on.
        limiter: The limiter serialising the calls; a fresh
            ``CapacityLimiter(1)`` when None.
    """

    def __init__(self, database: Database, *,
                 limiter: trio.CapacityLimiter | None = None) -> None:
        self._db = database
        self._limiter = limiter if limiter is not None else trio.CapacityLimiter(1)
        self._queue: deque[_Call[object]] = deque()  # not yet taken into a batch
        self._leader: _Call[object] | None = None  # its caller runs the next batch

    @classmethod
    async def open(cls, target: str | os.PathLike[str], *, busy_timeout: float = 5.0,
                   synchronous: str = "full") -> AsyncDatabase:
        """Open and migrate the database (an SQLite file or a PostgreSQL URL) in a
        worker thread (see :meth:`Database.open`)."""
        limiter = trio.CapacityLimiter(1)
        database = await trio.to_thread.run_sync(
            lambda: Database.open(target, busy_timeout=busy_timeout, synchronous=synchronous),
            limiter=limiter)
        return cls(database, limiter=limiter)

    async def aclose(self) -> None:
        """Close the database, checkpointing SQLite's WAL (see :meth:`Database.close`)."""
        await self.run(Database.close)

    async def __aenter__(self) -> AsyncDatabase:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc_value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()

    @property
    def path(self) -> str:
        """The database file, or the PostgreSQL URL without its password."""
        return self._db.path

    @property
    def engine(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.engine

    async def run(self, fn: Callable[Concatenate[Database, _P], _T], *args: _P.args,
                  **kwargs: _P.kwargs) -> _T:
        """Run ``fn(database, *args, **kwargs)`` in the database's worker thread.

        *fn* is a :class:`Database` method taken from the class, or any function
        whose first parameter is the database: ``await adb.run(Database.get_device,
        phy_id)``. The methods below do exactly that.
        """
        db = self._db
        return await self._call(lambda: fn(db, *args, **kwargs))

    async def _call(self, fn: Callable[[], _T]) -> _T:
        await trio.lowlevel.checkpoint_if_cancelled()  # a cancelled task starts nothing
        call = _Call(fn)
        queued: _Call[object] = call  # type: ignore[assignment]  # only run, never read
        self._queue.append(queued)
        if self._leader is None:
            self._leader = queued
        while not call.done:
            if self._leader is queued:
                await self._run_batch()
            elif call.started:
                # In the worker thread: wait for it even if cancelled meanwhile.
                with trio.CancelScope(shield=True):
                    await call.turn.wait()
            else:
                settled = False
                try:
                    await call.turn.wait()
                    settled = True
                except trio.Cancelled:
                    if not call.started:
                        raise
                    settled = True  # taken into a batch meanwhile: the next pass waits
                finally:
                    if not settled and not call.started:
                        self._withdraw(queued)
        return call.result()

    async def _run_batch(self) -> None:
        """Run every queued call in one trip to the worker thread, then hand on."""
        batch = list(self._queue)
        self._queue.clear()
        for call in batch:
            call.started = True
        try:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_execute, batch, limiter=self._limiter)
        finally:
            for call in batch:
                if not call.done:  # the thread itself failed
                    call.error = RuntimeError("the database call did not run")
                    call.done = True
                call.turn.set()
            self._leader = None
            self._hand_on()

    def _withdraw(self, call: _Call[object]) -> None:
        """A caller left before its call started: drop it (and pass on its lead)."""
        self._queue.remove(call)
        if self._leader is call:
            self._leader = None
            self._hand_on()

    def _hand_on(self) -> None:
        if self._leader is None and self._queue:
            self._leader = self._queue[0]
            self._leader.turn.set()

    async def atomic(self, fn: Callable[Concatenate[Database, _P], _T], *args: _P.args,
                     **kwargs: _P.kwargs) -> _T:
        """Like :meth:`run`, inside one :meth:`Database.transaction`.

        For a state change that takes several steps (read, decide, write the new
        state and its outbox events): they commit together or not at all, and no
        other call runs in between.
        """
        def in_transaction(db: Database) -> _T:
            with db.transaction():
                return fn(db, *args, **kwargs)
        return await self.run(in_transaction)

    async def atomic_routine(self, fn: Callable[Concatenate[Database, _P], _T], *args: _P.args,
                             **kwargs: _P.kwargs) -> _T:
        """Like :meth:`atomic`, for routine writes: the commit is not synced to disk
        (``Database.transaction(durable=False)`` says what that risks)."""
        def in_transaction(db: Database) -> _T:
            with db.transaction(durable=False):
                return fn(db, *args, **kwargs)
        return await self.run(in_transaction)

    # --- one twin per Database method, same signature --------------------------------------

    async def schema_version(self) -> int:
        """The migration version of the open database."""
        return await self.run(Database.schema_version)

    async def statistics(self) -> StorageStatistics:
        """Row counts and the file size, for ``/metrics``."""
        return await self.run(Database.statistics)

    async def upsert_device(self, phy_id: str, protocol: ProtocolFamily, now: int, *,
                            remote_addr: str | None = None, firmware: str | None = None,
                            iccid: str | None = None,
                            rssi: int | None = None) -> tuple[DeviceRecord, bool]:
        """Record a registration: create the device or update what the frame carried."""
        return await self.run(Database.upsert_device, phy_id, protocol, now,
                              remote_addr=remote_addr, firmware=firmware, iccid=iccid, rssi=rssi)

    async def get_device(self, phy_id: str) -> DeviceRecord | None:
        """The device with this printed id, or None."""
        return await self.run(Database.get_device, phy_id)

    async def get_device_by_id(self, device_id: int) -> DeviceRecord | None:
        """The device with this row id, or None."""
        return await self.run(Database.get_device_by_id, device_id)

    async def list_devices(self, *, online: bool | None = None,
                           protocol: ProtocolFamily | None = None, limit: int = DEFAULT_LIMIT,
                           cursor: str | None = None) -> Page[DeviceRecord]:
        """``GET /devices``: devices in creation order, one page."""
        return await self.run(Database.list_devices, online=online, protocol=protocol, limit=limit,
                              cursor=cursor)

    async def set_device_online(self, phy_id: str, online: bool, now: int) -> bool:
        """Set the device's ``online`` flag."""
        return await self.run(Database.set_device_online, phy_id, online, now)

    async def list_identities(self) -> list[DeviceIdentity]:
        """Every ``device_identities`` row."""
        return await self.run(Database.list_identities)

    async def provision_device(self, phy_id: str, now: int, *,
                               protocol: ProtocolFamily | None = None,
                               iccid: str | None = None) -> tuple[DeviceIdentity, bool]:
        """Provision *phy_id*; an *iccid* given binds it."""
        return await self.run(Database.provision_device, phy_id, now, protocol=protocol,
                              iccid=iccid)

    async def deprovision_device(self, phy_id: str) -> bool:
        """Withdraw *phy_id*'s provisioning and its ICCID binding."""
        return await self.run(Database.deprovision_device, phy_id)

    async def bind_iccid(self, phy_id: str, iccid: str, now: int, *,
                         protocol: ProtocolFamily | None = None) -> DeviceIdentity:
        """Bind *phy_id* to *iccid* unless it is bound already."""
        return await self.run(Database.bind_iccid, phy_id, iccid, now, protocol=protocol)

    async def touch_devices(self, updates: Sequence[DeviceTouch]) -> int:
        """Record a batch of frames' liveness (``last_seen_at``, ``rssi``) in one transaction,
        so a burst of heartbeats from many devices costs one commit.
        """
        return await self.run(Database.touch_devices, updates)

    async def stale_devices(self, protocol: ProtocolFamily,
                            seen_before: int) -> list[DeviceRecord]:
        """Online devices of *protocol* with no frame since *seen_before* (now −
        ``offline_after``).
        """
        return await self.run(Database.stale_devices, protocol, seen_before)

    async def mark_all_devices_offline(self, now: int) -> list[str]:
        """Set every device offline (at start: no connection survives a restart)."""
        return await self.run(Database.mark_all_devices_offline, now)

    async def put_port(self, port: PortRecord) -> None:
        """Write one charging point's row whole (insert or replace)."""
        return await self.run(Database.put_port, port)

    async def put_ports(self, ports: Sequence[PortRecord]) -> None:
        """Write many ports in one transaction (a gateway's status report)."""
        return await self.run(Database.put_ports, ports)

    async def get_port(self, device_id: int, socket_no: int, port_no: int) -> PortRecord | None:
        """One charging point, or None if the device never reported it."""
        return await self.run(Database.get_port, device_id, socket_no, port_no)

    async def list_ports(self, device_id: int) -> list[PortRecord]:
        """A device's ports by socket and port number."""
        return await self.run(Database.list_ports, device_id)

    async def allocate_order_no(self, now: int) -> str:
        """The next free order number of second *now*, or of a later second if 1000
        orders were already numbered in this one.
        """
        return await self.run(Database.allocate_order_no, now)

    async def insert_order(self, order: NewOrder) -> OrderRecord:
        """Create a ``pending`` order."""
        return await self.run(Database.insert_order, order)

    async def get_order(self, order_no: str) -> OrderRecord | None:
        """The order with this number, or None."""
        return await self.run(Database.get_order, order_no)

    async def open_order_for_port(self, device_id: int, socket_no: int,
                                  port_no: int) -> OrderRecord | None:
        """The newest ``pending``, ``charging`` or ``stopping`` order on a port."""
        return await self.run(Database.open_order_for_port, device_id, socket_no, port_no)

    async def find_order_by_business_no(self, device_id: int,
                                        business_no: int) -> OrderRecord | None:
        """The newest order of a device with this BKV business number."""
        return await self.run(Database.find_order_by_business_no, device_id, business_no)

    async def open_orders(self) -> list[OrderRecord]:
        """Every ``pending``, ``charging`` or ``stopping`` order, oldest first (to restore
        sessions and timers after a restart).
        """
        return await self.run(Database.open_orders)

    async def open_orders_for_device(self, device_id: int) -> list[OrderRecord]:
        """The device's ``pending``, ``charging`` or ``stopping`` orders, oldest first."""
        return await self.run(Database.open_orders_for_device, device_id)

    async def watched_devices(self) -> list[str]:
        """The devices online or with an open order."""
        return await self.run(Database.watched_devices)

    async def save_order(self, order: OrderRecord, *,
                         expect_status: OrderState | None = None) -> bool:
        """Write every mutable column of *order* (all but id, order_no, device_id, socket_no,
        port_no, created_at); pass ``updated_at`` as now.
        """
        return await self.run(Database.save_order, order, expect_status=expect_status)

    async def list_orders(self, *, device_phy_id: str | None = None,
                          statuses: Sequence[OrderState] = (), created_from: int | None = None,
                          created_to: int | None = None, limit: int = DEFAULT_LIMIT,
                          cursor: str | None = None) -> Page[OrderRecord]:
        """``GET /orders``: newest first, one page."""
        return await self.run(Database.list_orders, device_phy_id=device_phy_id, statuses=statuses,
                              created_from=created_from, created_to=created_to, limit=limit,
                              cursor=cursor)

    async def add_progress(self, sample: ProgressSample) -> None:
        """Append one progress report of an order."""
        return await self.run(Database.add_progress, sample)

    async def list_progress(self, order_no: str) -> list[ProgressSample]:
        """An order's progress samples in the order they arrived."""
        return await self.run(Database.list_progress, order_no)

    async def insert_command(self, command: NewCommand) -> CommandRecord:
        """Persist a downlink as ``queued`` (before it is ever sent)."""
        return await self.run(Database.insert_command, command)

    async def get_command(self, command_id: str) -> CommandRecord | None:
        """The command with this id, or None."""
        return await self.run(Database.get_command, command_id)

    async def queued_commands(self, device_id: int, now: int, *,
                              include_sent: bool = False) -> list[CommandRecord]:
        """A device's unexpired ``queued`` commands, oldest first; with *include_sent* also
        those ``sent`` and not yet answered (to resume after a restart).
        """
        return await self.run(Database.queued_commands, device_id, now, include_sent=include_sent)

    async def mark_command_sent(self, command_id: str, now: int, *,
                                msg_id: int | None = None) -> bool:
        """Record a (re)send: status ``sent``, ``sent_at``, ``attempts`` + 1 and the wire
        message id.
        """
        return await self.run(Database.mark_command_sent, command_id, now, msg_id=msg_id)

    async def set_command_msg_ids(self, msg_ids: Mapping[str, int]) -> None:
        """Record the wire message id each command (by id) was written with."""
        return await self.run(Database.set_command_msg_ids, msg_ids)

    async def finish_command(self, command_id: str, status: CommandStatus, now: int, *,
                             reason: str | None = None,
                             result: Mapping[str, object] | None = None) -> bool:
        """Move a queued or sent command to a final status."""
        return await self.run(Database.finish_command, command_id, status, now, reason=reason,
                              result=result)

    async def expire_commands(self, now: int) -> list[CommandRecord]:
        """Expire every ``queued`` command whose ``expires_at`` has come."""
        return await self.run(Database.expire_commands, now)

    async def append_cmd_log(self, entry: CmdLogEntry) -> None:
        """Log one frame in or out."""
        return await self.run(Database.append_cmd_log, entry)

    async def append_cmd_logs(self, entries: Sequence[CmdLogEntry]) -> None:
        """Log many frames in one transaction."""
        return await self.run(Database.append_cmd_logs, entries)

    async def append_cmd_log_rows(self, rows: Sequence[CmdLogRow]) -> None:
        """Log many frames in one transaction, given as ready rows."""
        return await self.run(Database.append_cmd_log_rows, rows)

    async def list_cmd_logs(self, *, phy_id: str | None = None,
                            limit: int = 100) -> list[CmdLogRecord]:
        """The newest logged frames first, optionally of one device."""
        return await self.run(Database.list_cmd_logs, phy_id=phy_id, limit=limit)

    async def prune_cmd_logs(self, *, older_than: int, max_rows: int | None = None) -> int:
        """Bound the frame log: delete rows created before *older_than*, then all but the newest
        *max_rows*.
        """
        return await self.run(Database.prune_cmd_logs, older_than=older_than, max_rows=max_rows)

    async def append_event(self, event: NewEvent, *, deliver: bool) -> int | None:
        """Record an event in the outbox."""
        return await self.run(Database.append_event, event, deliver=deliver)

    async def get_event(self, event_id: str) -> EventRecord | None:
        """The event with this id, or None."""
        return await self.run(Database.get_event, event_id)

    async def get_event_by_seq(self, seq: int) -> EventRecord | None:
        """The event with this sequence number, or None."""
        return await self.run(Database.get_event_by_seq, seq)

    async def list_events(self, *, after: int = 0, limit: int = DEFAULT_LIMIT) -> list[EventRecord]:
        """``GET /events?after=&limit=``: events with ``seq`` > *after*, in order."""
        return await self.run(Database.list_events, after=after, limit=limit)

    async def order_event_count(self, order_no: str) -> int:
        """How many events an order has recorded (to continue its event ids after a restart).
        """
        return await self.run(Database.order_event_count, order_no)

    async def claim_due_deliveries(self, now: int, *, limit: int = 100,
                                   lease: int = 60) -> list[DeliveryRecord]:
        """Take the deliveries due at *now*, oldest first, at most one per device."""
        return await self.run(Database.claim_due_deliveries, now, limit=limit, lease=lease)

    async def settle_and_claim(self, delivered: Sequence[tuple[int, int, int]], now: int, *,
                               limit: int, lease: int = 60) -> list[DeliveryRecord]:
        """Mark deliveries delivered, then claim the due ones, in one transaction."""
        return await self.run(Database.settle_and_claim, delivered, now, limit=limit,
                              lease=lease)

    async def release_delivery_claims(self, now: int) -> int:
        """Make every pending delivery due now (at start)."""
        return await self.run(Database.release_delivery_claims, now)

    async def get_delivery(self, event_seq: int) -> DeliveryRecord | None:
        """The delivery of one event with the event, or None."""
        return await self.run(Database.get_delivery, event_seq)

    async def mark_delivered(self, event_seq: int, now: int, *, latency_ms: int) -> bool:
        """A 2xx arrived. Returns False if the delivery was not pending."""
        return await self.run(Database.mark_delivered, event_seq, now, latency_ms=latency_ms)

    async def mark_delivery_failed(self, event_seq: int, *, error: str, retry_at: int) -> bool:
        """An attempt failed; try again at *retry_at*. Returns False if not pending."""
        return await self.run(Database.mark_delivery_failed, event_seq, error=error,
                              retry_at=retry_at)

    async def mark_delivery_dead(self, event_seq: int, *, error: str) -> bool:
        """The last attempt failed; stop retrying (``GET /events`` and redelivery remain).
        Returns False if not pending.
        """
        return await self.run(Database.mark_delivery_dead, event_seq, error=error)

    async def redeliver(self, event_id: str, now: int, *, key_name: str | None = None) -> bool:
        """Queue one event for delivery again, due at *now*, attempts reset."""
        return await self.run(Database.redeliver, event_id, now, key_name=key_name)

    async def prune_retained(self, *, before: int, batch: int) -> int:
        """Delete one batch of rows past retention (see :meth:`Database.prune_retained`)."""
        return await self.run(Database.prune_retained, before=before, batch=batch)

    async def create_card(self, card_no: str, now: int, *, balance_cents: int = 0,
                          status: CardStatus = CardStatus.ACTIVE,
                          charge_mode: ChargeMode | None = None, duration: int | None = None,
                          energy_wh: int | None = None,
                          key_name: str | None = None) -> CardRecord:
        """Register a new card (``POST /cards``); raises ``CardExists`` for a known one."""
        return await self.run(Database.create_card, card_no, now, balance_cents=balance_cents,
                              status=status, charge_mode=charge_mode, duration=duration,
                              energy_wh=energy_wh, key_name=key_name)

    async def get_card(self, card_no: str) -> CardRecord | None:
        """The card, or None."""
        return await self.run(Database.get_card, card_no)

    async def top_up_card(self, card_no: str, amount_cents: int, now: int, *,
                          key_name: str | None = None, reason: str | None = None,
                          idem_key: str | None = None) -> CardRecord | None:
        """Add to a card's balance (a ``topup`` entry). None if it does not exist."""
        return await self.run(Database.top_up_card, card_no, amount_cents, now,
                              key_name=key_name, reason=reason, idem_key=idem_key)

    async def adjust_card(self, card_no: str, amount_cents: int, now: int, *, reason: str,
                          key_name: str | None = None,
                          idem_key: str | None = None) -> CardRecord | None:
        """Correct a card's balance (an ``adjust`` entry). None if it does not exist."""
        return await self.run(Database.adjust_card, card_no, amount_cents, now,
                              reason=reason, key_name=key_name, idem_key=idem_key)

    async def hold_card(self, card_no: str, order_no: str, amount_cents: int,
                        now: int) -> CardRecord:
        """Reserve available money of the card for an order (a ``hold`` entry)."""
        return await self.run(Database.hold_card, card_no, order_no, amount_cents, now)

    async def settle_card_order(self, card_no: str, order_no: str, final_cents: int,
                                now: int) -> CardSettlement | None:
        """Debit an ended order's bill from its hold and release the rest."""
        return await self.run(Database.settle_card_order, card_no, order_no, final_cents, now)

    async def list_card_ledger(self, card_no: str, *, limit: int = DEFAULT_LIMIT,
                               cursor: str | None = None) -> Page[CardLedgerEntry]:
        """A card's ledger, oldest entry first."""
        return await self.run(Database.list_card_ledger, card_no, limit=limit, cursor=cursor)

    async def set_card_status(self, card_no: str, status: CardStatus,
                              now: int) -> CardRecord | None:
        """Block or unblock a card. Returns the card, or None if it does not exist."""
        return await self.run(Database.set_card_status, card_no, status, now)

    async def check_nonce(self, key_name: str, nonce: str, now: int, *, ttl: int) -> bool:
        """Check and remember a request nonce."""
        return await self.run(Database.check_nonce, key_name, nonce, now, ttl=ttl)

    async def prune_nonces(self, now: int, *, ttl: int) -> int:
        """Forget nonces older than *ttl*. Returns how many."""
        return await self.run(Database.prune_nonces, now, ttl=ttl)

    async def get_idempotency(self, key_name: str, idem_key: str, now: int, *,
                              ttl: int) -> IdempotencyRecord | None:
        """The stored answer for this key's ``Idempotency-Key``, if younger than *ttl*."""
        return await self.run(Database.get_idempotency, key_name, idem_key, now, ttl=ttl)

    async def put_idempotency(self, key_name: str, idem_key: str, now: int, *, ttl: int,
                              status_code: int, response_json: str,
                              request_hash: str | None = None) -> IdempotencyRecord:
        """Store the answer to a request with an ``Idempotency-Key``."""
        return await self.run(Database.put_idempotency, key_name, idem_key, now, ttl=ttl,
                              status_code=status_code, response_json=response_json,
                              request_hash=request_hash)

    async def prune_idempotency(self, now: int, *, ttl: int) -> int:
        """Forget idempotency answers older than *ttl*. Returns how many."""
        return await self.run(Database.prune_idempotency, now, ttl=ttl)

    async def get_setting(self, name: str) -> str | None:
        """A ``settings`` value, or None."""
        return await self.run(Database.get_setting, name)

    async def put_setting(self, name: str, value: str) -> None:
        """Set a ``settings`` value."""
        return await self.run(Database.put_setting, name, value)

    async def delete_setting(self, name: str) -> bool:
        """Remove a ``settings`` row. Returns whether it existed."""
        return await self.run(Database.delete_setting, name)

    async def ensure_setting(self, name: str, value: str) -> tuple[str, bool]:
        """Store *value* unless the setting exists (the generated API key)."""
        return await self.run(Database.ensure_setting, name, value)
