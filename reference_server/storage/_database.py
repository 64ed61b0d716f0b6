# The synchronous database API: one connection, typed records in and out.
#
# Strategy. The server owns one Database and calls it from one worker thread at a
# time (AsyncDatabase runs every call through trio.to_thread.run_sync with a
# CapacityLimiter(1)), so the connection is never used concurrently. Transactions
# are explicit: transaction() begins one (SQLite: BEGIN IMMEDIATE, the write lock at
# once, so a transaction never fails half-way for a lock upgrade) and nests with
# SAVEPOINTs. Every write method runs in transaction(), so it is atomic on its own
# and joins the caller's transaction when there is one: a state change and its
# outbox events are one `with db.transaction():` block (api.md §4).
#
# The engine (storage/_engine.py) is chosen at open: an SQLite file
# (storage/_sqlite.py: WAL, synchronous, file mode) or a PostgreSQL URL
# (storage/_postgres.py), which several servers may share. The statements are the
# same for both; a statement that may violate a constraint the caller must hear of
# runs in a savepoint of its own, so the transaction stays usable after the typed
# error (PostgreSQL aborts a transaction at its first error).
#
# SQL text lives in _sql.py; this file binds parameters and converts rows to the
# frozen records of _records.py.
from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from bkvcodec import (
    ChargeMode,
    Direction,
    EndReason,
    OrderState,
    PortState,
    ProtocolFamily,
    TariffKind,
)

from . import _sql as sql
from ._engine import ONE_OPEN_ORDER_PER_PORT, ORDER_NO_TAKEN, Engine, open_engine
from ._errors import (
    ActiveOrderExists,
    CardExists,
    DuplicateOrderNo,
    InsufficientFunds,
)
from ._paging import DEFAULT_LIMIT, Page, check_limit, decode_cursor, encode_cursor
from ._records import (
    CardLedgerEntry,
    CardRecord,
    CardSettlement,
    CardStatus,
    CmdLogEntry,
    CmdLogRecord,
    CommandRecord,
    CommandStatus,
    DeliveryRecord,
    DeliveryStatus,
    DeviceIdentity,
    DeviceRecord,
    DeviceTouch,
    EventRecord,
    IdempotencyRecord,
    LedgerKind,
    NewCommand,
    NewEvent,
    NewOrder,
    OrderRecord,
    PortRecord,
    ProgressSample,
    StorageStatistics,
    dump_json,
)
from ._sqlite import MIN_SQLITE_VERSION

if TYPE_CHECKING:
    from ._engine import Row

__all__ = ["MIN_SQLITE_VERSION", "Database", "format_order_no"]

_T = TypeVar("_T")
#: A ``cmd_logs`` row as :meth:`Database.append_cmd_log_rows` takes it: device_id,
#: phy_id, direction (``UP``/``DOWN``), cmd, msg_id, hex, created_at.
CmdLogRow = tuple[int | None, str | None, str, str, int | None, str, int]
_ORDER_NO_PREFIX = "THD"
#: Events whose webhooks wait while other devices' events are due (the schema's
#: migration 2 says why), unless an event of another type of the same device waits
#: behind them. A device's own events still go out in order.
ROUTINE_EVENT_TYPES = frozenset({"device.heartbeat"})
_DIRECTION_TO_DB = {Direction.UP: "UP", Direction.DOWN: "DOWN"}
_DIRECTION_FROM_DB = {"UP": Direction.UP, "DOWN": Direction.DOWN}


def card_key(card_no: str) -> str:
    """A card number as stored: hex digits in lower case, so that a BKV card reported
    as ``0000a1b2c3d4`` finds the card registered as ``0000A1B2C3D4`` (decimal AP3000
    numbers are unchanged)."""
    return card_no.strip().lower()


def format_order_no(seconds: int, sequence: int) -> str:
    """``THD`` + 10-digit Unix seconds + 3-digit sequence (16 characters).

    Raises:
        ValueError: *seconds* or *sequence* does not fit its digits.
    """
    if not 0 <= seconds <= 9_999_999_999 or not 0 <= sequence <= 999:
        raise ValueError(f"cannot number an order for {seconds}/{sequence}")
    return f"{_ORDER_NO_PREFIX}{seconds:010d}{sequence:03d}"


# --- rows to records -----------------------------------------------------------------------

def _device(row: Row) -> DeviceRecord:
    values = dict(zip(row.keys(), row, strict=True))
    values.update(protocol=ProtocolFamily(row["protocol"]), online=bool(row["online"]))
    return DeviceRecord(**values)


def _identity(row: Row) -> DeviceIdentity:
    protocol = row["protocol"]
    return DeviceIdentity(phy_id=row["phy_id"], provisioned=bool(row["provisioned"]),
                          protocol=None if protocol is None else ProtocolFamily(protocol),
                          bound_iccid=row["bound_iccid"], created_at=row["created_at"],
                          updated_at=row["updated_at"])


def _port(row: Row) -> PortRecord:
    values = dict(zip(row.keys(), row, strict=True))
    values.update(status=PortState(row["status"]))
    return PortRecord(**values)


def _order(row: Row) -> OrderRecord:
    values = dict(zip(row.keys(), row, strict=True))
    reason = row["end_reason"]
    values.update(status=OrderState(row["status"]), charge_mode=ChargeMode(row["charge_mode"]),
                  end_reason=None if reason is None else EndReason(reason),
                  tariff=TariffKind(row["tariff"]))
    return OrderRecord(**values)


def _progress(row: Row) -> ProgressSample:
    return ProgressSample(**dict(zip(row.keys(), row, strict=True)))


def _command(row: Row) -> CommandRecord:
    values = dict(zip(row.keys(), row, strict=True))
    values.update(status=CommandStatus(row["status"]))
    return CommandRecord(**values)


def _cmd_log(row: Row) -> CmdLogRecord:
    values = dict(zip(row.keys(), row, strict=True))
    values.update(direction=_DIRECTION_FROM_DB[row["direction"]])
    return CmdLogRecord(**values)


def _event(row: Row) -> EventRecord:
    return EventRecord(seq=row["seq"], event_id=row["event_id"], event_type=row["event_type"],
                       device_phy_id=row["device_phy_id"], order_no=row["order_no"],
                       payload_json=row["payload_json"], created_at=row["created_at"])


def _delivery(row: Row) -> DeliveryRecord:
    return DeliveryRecord(event=_event(row), attempts=row["attempts"],
                          status=DeliveryStatus(row["status"]),
                          next_attempt_at=row["next_attempt_at"], last_error=row["last_error"],
                          delivered_at=row["delivered_at"], latency_ms=row["latency_ms"])


def _card(row: Row) -> CardRecord:
    values = dict(zip(row.keys(), row, strict=True))
    mode = row["charge_mode"]
    values.update(status=CardStatus(row["status"]),
                  charge_mode=None if mode is None else ChargeMode(mode))
    return CardRecord(**values)


def _ledger_entry(row: Row) -> CardLedgerEntry:
    values = dict(zip(row.keys(), row, strict=True))
    values.update(kind=LedgerKind(row["kind"]))
    return CardLedgerEntry(**values)


def _idempotency(row: Row) -> IdempotencyRecord:
    return IdempotencyRecord(**dict(zip(row.keys(), row, strict=True)))


def _order_params(order: OrderRecord) -> dict[str, object]:
    return {
        "order_no": order.order_no, "status": order.status.value,
        "charge_mode": int(order.charge_mode), "amount": order.amount,
        "price_per_kwh": order.price_per_kwh, "service_fee": order.service_fee,
        "duration_sec": order.duration_sec,
        "requested_duration_sec": order.requested_duration_sec,
        "requested_energy_wh": order.requested_energy_wh,
        "power_tiers_json": order.power_tiers_json, "total_kwh": order.total_kwh,
        "current_power": order.current_power, "peak_power": order.peak_power,
        "final_amount": order.final_amount, "refund_amount": order.refund_amount,
        "energy_fee": order.energy_fee, "service_fee_amount": order.service_fee_amount,
        "device_amount": order.device_amount,
        "end_reason": None if order.end_reason is None else int(order.end_reason),
        "end_reason_raw": order.end_reason_raw, "end_detail": order.end_detail,
        "business_no": order.business_no,
        "card_no": order.card_no, "stop_reason": order.stop_reason,
        "start_time": order.start_time, "end_time": order.end_time,
        "updated_at": order.updated_at,
    }


def _port_params(port: PortRecord) -> dict[str, object]:
    return {
        "device_id": port.device_id, "socket_no": port.socket_no, "port_no": port.port_no,
        "status": int(port.status), "power_w": port.power_w, "voltage": port.voltage,
        "fault_code": port.fault_code, "order_no": port.order_no,
        "business_no": port.business_no, "updated_at": port.updated_at,
    }


def _cmd_log_params(entry: CmdLogEntry) -> dict[str, object]:
    return {
        "device_id": entry.device_id, "phy_id": entry.phy_id,
        "direction": _DIRECTION_TO_DB[entry.direction], "cmd": entry.cmd,
        "msg_id": entry.msg_id, "hex": entry.hex, "created_at": entry.created_at,
    }


class Database:
    """The server's database, synchronous and typed: an SQLite file or a PostgreSQL
    database.

    Open it with :meth:`open`; call it from one thread at a time (the server
    uses :class:`AsyncDatabase`). Write methods are atomic and join an enclosing
    :meth:`transaction`. Times are Unix seconds as ``int``; all units are the
    database's.
    """

    def __init__(self, engine: Engine) -> None:
        """Wrap an open, migrated engine; use :meth:`open` instead."""
        self._engine = engine
        self._conn = engine.connection
        self._depth = 0
        self._closed = False
        #: The database file (``":memory:"`` for a private in-memory database), or
        #: the PostgreSQL URL without its password.
        self.path = engine.target
        #: ``"sqlite"`` or ``"postgresql"``.
        self.engine = engine.name

    # --- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open(cls, target: str | os.PathLike[str], *, busy_timeout: float = 5.0,
             synchronous: str = "full") -> Database:
        """Open (creating it if needed) and migrate the database.

        Args:
            target: The SQLite file (its directory is created), ``":memory:"``, or
                a PostgreSQL URL (``postgresql://user@host:port/dbname``; needs the
                ``cluster`` extra, psycopg).
            busy_timeout: Seconds to wait for another process's lock (SQLite), or
                for the connection (PostgreSQL).
            synchronous: SQLite's ``PRAGMA synchronous``: ``full`` or ``normal``
                (checked, and without effect, for PostgreSQL: its commits are
                synchronous, routine ones excepted; see :meth:`transaction`).

        Raises:
            StorageError: SQLite is too old, or the file cannot use WAL.
            SchemaTooNew: A newer server migrated the database.
            ValueError: *synchronous* is neither ``full`` nor ``normal``.
            sqlite3.Error, psycopg.Error: The database cannot be opened or migrated.
        """
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        return cls(open_engine(target, busy_timeout=busy_timeout, synchronous=synchronous))

    def close(self) -> None:
        """Close (SQLite: after checkpointing the WAL into the file). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._engine.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def schema_version(self) -> int:
        """The migration version of the open database."""
        return self._engine.schema_version()

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """One atomic unit of writes: commit on normal exit, roll back on an exception.

        The outermost level begins and commits a transaction; nested levels are
        savepoints, so an inner failure that the caller catches undoes only the
        inner writes.

        Args:
            durable: False for routine writes (the frame log, liveness, heartbeat
                samples, delivery bookkeeping): their commit does not wait for the
                disk. It is still atomic and survives a crash of the process; a
                power loss (SQLite) or a crash of the database server (PostgreSQL,
                ``synchronous_commit = off``) may undo it, but only together with the
                routine commits after it, never a durable commit, because the next
                durable commit syncs the whole write-ahead log, routine commits
                before it included. On SQLite this matters for a database opened
                with ``synchronous=full``. Decided by the outermost level.
        """
        conn = self._conn
        engine = self._engine
        depth = self._depth
        done = False
        if depth == 0:
            engine.begin(durable=durable)
        else:
            conn.execute(f"SAVEPOINT sp{depth}")
        self._depth = depth + 1
        try:
            yield
            if depth == 0:
                engine.commit()
            else:
                conn.execute(f"RELEASE sp{depth}")
            done = True
        finally:
            self._depth = depth
            if not done:
                if depth == 0:
                    engine.rollback()
                elif conn.in_transaction:
                    conn.execute(f"ROLLBACK TO sp{depth}")
                    conn.execute(f"RELEASE sp{depth}")

    def statistics(self) -> StorageStatistics:
        """Row counts and the database's size on disk, for ``/metrics``."""
        row = self._conn.execute(sql.SELECT_STATISTICS).fetchone()
        return StorageStatistics(
            schema_version=self.schema_version(), devices=row["devices"],
            devices_online=row["devices_online"], open_orders=row["open_orders"],
            commands_queued=row["commands_queued"], last_event_seq=row["last_event_seq"],
            deliveries_pending=row["deliveries_pending"],
            deliveries_dead=row["deliveries_dead"], cmd_logs=row["cmd_logs"],
            file_bytes=self._engine.database_bytes())

    # --- devices ---------------------------------------------------------------------------

    def upsert_device(self, phy_id: str, protocol: ProtocolFamily, now: int, *,
                      remote_addr: str | None = None, firmware: str | None = None,
                      iccid: str | None = None,
                      rssi: int | None = None) -> tuple[DeviceRecord, bool]:
        """Record a registration: create the device or update what the frame carried.

        ``last_seen_at`` becomes *now* (never earlier than before); fields given as
        None keep their value. ``online`` is not changed (see
        :meth:`set_device_online`).

        Returns:
            The device and whether it was created now.
        """
        params = {"phy_id": phy_id, "protocol": protocol.value, "now": now,
                  "remote_addr": remote_addr, "firmware": firmware, "iccid": iccid,
                  "rssi": rssi}
        with self.transaction():
            created = self._conn.execute(sql.UPDATE_DEVICE_REGISTERED, params).rowcount == 0
            if created:
                self._conn.execute(sql.INSERT_DEVICE, params)
            device = self.get_device(phy_id)
        assert device is not None
        return device, created

    def get_device(self, phy_id: str) -> DeviceRecord | None:
        """The device with this printed id, or None."""
        row = self._conn.execute(sql.SELECT_DEVICE_BY_PHY_ID, (phy_id,)).fetchone()
        return None if row is None else _device(row)

    def get_device_by_id(self, device_id: int) -> DeviceRecord | None:
        """The device with this row id, or None."""
        row = self._conn.execute(sql.SELECT_DEVICE_BY_ID, (device_id,)).fetchone()
        return None if row is None else _device(row)

    def list_devices(self, *, online: bool | None = None,
                     protocol: ProtocolFamily | None = None, limit: int = DEFAULT_LIMIT,
                     cursor: str | None = None) -> Page[DeviceRecord]:
        """``GET /devices``: devices in creation order, one page.

        Raises:
            InvalidPage: A bad *limit* or *cursor*.
        """
        check_limit(limit)
        after = None if cursor is None else decode_cursor("devices", cursor)
        params: dict[str, object] = {"limit": limit + 1}
        if online is not None:
            params["online"] = int(online)
        if protocol is not None:
            params["protocol"] = protocol.value
        if after is not None:
            params["after"] = after
        text = sql.list_devices_sql(online=online is not None, protocol=protocol is not None,
                                    after=after is not None)
        rows = [_device(r) for r in self._conn.execute(text, params)]
        return _page(rows, limit, "devices", lambda d: d.id)

    def set_device_online(self, phy_id: str, online: bool, now: int) -> bool:
        """Set the device's ``online`` flag.

        Returns:
            True if it changed (the caller then records ``device.online`` or
            ``device.offline`` in the same transaction).
        """
        with self.transaction():
            cur = self._conn.execute(sql.SET_DEVICE_ONLINE,
                                     {"phy_id": phy_id, "online": int(online), "now": now})
            return cur.rowcount == 1

    def list_identities(self) -> list[DeviceIdentity]:
        """Every ``device_identities`` row (provisioned ids and ICCID bindings)."""
        return [_identity(r) for r in self._conn.execute(sql.SELECT_IDENTITIES)]

    def provision_device(self, phy_id: str, now: int, *,
                         protocol: ProtocolFamily | None = None,
                         iccid: str | None = None) -> tuple[DeviceIdentity, bool]:
        """Provision *phy_id* (``device_policy = known``); an *iccid* given binds it.

        Returns:
            The identity and whether it was provisioned now (False: it already was).
        """
        params = {"phy_id": phy_id, "now": now, "iccid": iccid,
                  "protocol": None if protocol is None else protocol.value}
        with self.transaction():
            before = self._conn.execute(sql.SELECT_IDENTITY, (phy_id,)).fetchone()
            self._conn.execute(sql.PROVISION_DEVICE, params)
            row = self._conn.execute(sql.SELECT_IDENTITY, (phy_id,)).fetchone()
        return _identity(row), before is None or not before["provisioned"]

    def deprovision_device(self, phy_id: str) -> bool:
        """Withdraw *phy_id*'s provisioning and its ICCID binding.

        Returns:
            False when the id had neither.
        """
        with self.transaction():
            return self._conn.execute(sql.DELETE_IDENTITY, (phy_id,)).rowcount == 1

    def bind_iccid(self, phy_id: str, iccid: str, now: int, *,
                   protocol: ProtocolFamily | None = None) -> DeviceIdentity:
        """Bind *phy_id* to *iccid* unless it is bound already.

        Returns:
            The identity; its ``bound_iccid`` is the earlier ICCID, if there was one.
        """
        params = {"phy_id": phy_id, "iccid": iccid, "now": now,
                  "protocol": None if protocol is None else protocol.value}
        with self.transaction():
            self._conn.execute(sql.BIND_ICCID, params)
            row = self._conn.execute(sql.SELECT_IDENTITY, (phy_id,)).fetchone()
        return _identity(row)

    def touch_devices(self, updates: Sequence[DeviceTouch]) -> int:
        """Record a batch of frames' liveness (``last_seen_at``, ``rssi``) in one
        transaction, so a burst of heartbeats from many devices costs one commit.

        ``last_seen_at`` never moves backwards; unknown phy_ids are skipped.

        Returns:
            The number of row updates made.
        """
        if not updates:
            return 0
        params = [{"phy_id": u.phy_id, "seen_at": u.seen_at, "rssi": u.rssi} for u in updates]
        with self.transaction(durable=False):
            return self._conn.executemany(sql.TOUCH_DEVICE, params).rowcount

    def stale_devices(self, protocol: ProtocolFamily, seen_before: int) -> list[DeviceRecord]:
        """Online devices of *protocol* with no frame since *seen_before*
        (now − ``offline_after``)."""
        rows = self._conn.execute(sql.SELECT_STALE_DEVICES, (protocol.value, seen_before))
        return [_device(r) for r in rows]

    def mark_all_devices_offline(self, now: int) -> list[str]:
        """Set every device offline (at start: no connection survives a restart).

        Returns:
            The phy_ids that were online, sorted.
        """
        with self.transaction():
            rows = self._conn.execute(sql.MARK_ALL_DEVICES_OFFLINE, (now,)).fetchall()
        return sorted(str(r["phy_id"]) for r in rows)

    # --- ports -----------------------------------------------------------------------------

    def put_port(self, port: PortRecord) -> None:
        """Write one charging point's row whole (insert or replace)."""
        with self.transaction():
            self._conn.execute(sql.UPSERT_PORT, _port_params(port))

    def put_ports(self, ports: Sequence[PortRecord]) -> None:
        """Write many ports in one transaction (a gateway's status report)."""
        if not ports:
            return
        with self.transaction():
            self._conn.executemany(sql.UPSERT_PORT, [_port_params(p) for p in ports])

    def get_port(self, device_id: int, socket_no: int, port_no: int) -> PortRecord | None:
        """One charging point, or None if the device never reported it."""
        row = self._conn.execute(sql.SELECT_PORT, (device_id, socket_no, port_no)).fetchone()
        return None if row is None else _port(row)

    def list_ports(self, device_id: int) -> list[PortRecord]:
        """A device's ports by socket and port number."""
        return [_port(r) for r in self._conn.execute(sql.SELECT_PORTS_OF_DEVICE, (device_id,))]

    # --- orders ----------------------------------------------------------------------------

    def allocate_order_no(self, now: int) -> str:
        """The next free order number of second *now*, or of a later
        second if 1000 orders were already numbered in this one.

        The number is only reserved once :meth:`insert_order` stores it, so call
        both in one transaction.
        """
        second = now
        while True:
            low, high = format_order_no(second, 0), format_order_no(second, 999)
            row = self._conn.execute(sql.SELECT_MAX_ORDER_NO_BETWEEN, (low, high)).fetchone()
            last: str | None = row[0]
            if last is None:
                return low
            sequence = int(last[-3:])
            if sequence < 999:
                return format_order_no(second, sequence + 1)
            second += 1

    def insert_order(self, order: NewOrder) -> OrderRecord:
        """Create a ``pending`` order.

        Raises:
            ActiveOrderExists: The port already has a pending or charging order.
            DuplicateOrderNo: The order number is taken.
            sqlite3.IntegrityError, psycopg.IntegrityError: The device does not exist.
        """
        params = {
            "order_no": order.order_no, "device_id": order.device_id,
            "socket_no": order.socket_no, "port_no": order.port_no,
            "charge_mode": int(order.charge_mode), "amount": order.amount,
            "price_per_kwh": order.price_per_kwh, "service_fee": order.service_fee,
            "requested_duration_sec": order.requested_duration_sec,
            "requested_energy_wh": order.requested_energy_wh,
            "power_tiers_json": order.power_tiers_json, "card_no": order.card_no,
            "business_no": order.business_no, "created_at": order.created_at,
            "key_name": order.key_name,
            "tariff": (order.tariff if order.tariff is not None else TariffKind.for_order(
                order.charge_mode, price_per_kwh_cents=order.price_per_kwh,
                amount_cents=order.amount, card=order.card_no is not None)).value,
        }
        with self.transaction():
            try:
                with self.transaction():  # a savepoint: the error leaves the rest usable
                    self._conn.execute(sql.INSERT_ORDER, params)
            except self._engine.integrity_errors as err:
                constraint = self._engine.constraint(err)
                if constraint == ORDER_NO_TAKEN:
                    raise DuplicateOrderNo(order.order_no) from err
                if constraint == ONE_OPEN_ORDER_PER_PORT:
                    holder = self.open_order_for_port(order.device_id, order.socket_no,
                                                      order.port_no)
                    raise ActiveOrderExists(None if holder is None else holder.order_no) \
                        from err
                raise
            created = self.get_order(order.order_no)
        assert created is not None
        return created

    def get_order(self, order_no: str) -> OrderRecord | None:
        """The order with this number, or None."""
        row = self._conn.execute(sql.SELECT_ORDER_BY_NO, (order_no,)).fetchone()
        return None if row is None else _order(row)

    def open_order_for_port(self, device_id: int, socket_no: int,
                            port_no: int) -> OrderRecord | None:
        """The newest ``pending``, ``charging`` or ``stopping`` order on a port."""
        row = self._conn.execute(sql.SELECT_OPEN_ORDER_FOR_PORT,
                                 (device_id, socket_no, port_no)).fetchone()
        return None if row is None else _order(row)

    def find_order_by_business_no(self, device_id: int, business_no: int) -> OrderRecord | None:
        """The newest order of a device with this BKV business number."""
        row = self._conn.execute(sql.SELECT_ORDER_BY_BUSINESS_NO,
                                 (device_id, business_no)).fetchone()
        return None if row is None else _order(row)

    def open_orders(self) -> list[OrderRecord]:
        """Every ``pending``, ``charging`` or ``stopping`` order, oldest first (to
        restore sessions and timers after a restart)."""
        return [_order(r) for r in self._conn.execute(sql.SELECT_OPEN_ORDERS)]

    def open_orders_for_device(self, device_id: int) -> list[OrderRecord]:
        """The device's ``pending``, ``charging`` or ``stopping`` orders, oldest first
        (a node of a cluster loads them when it takes the device over)."""
        return [_order(r) for r in self._conn.execute(sql.SELECT_OPEN_ORDERS_OF_DEVICE,
                                                      (device_id,))]

    def watched_devices(self) -> list[str]:
        """The devices online or with an open order: those whose timers must run
        somewhere (a cluster's sweeper adopts the ones no live node owns)."""
        return [str(r[0]) for r in self._conn.execute(sql.SELECT_WATCHED_DEVICES)]

    def save_order(self, order: OrderRecord, *, expect_status: OrderState | None = None) -> bool:
        """Write every mutable column of *order* (all but id, order_no, device_id,
        socket_no, port_no, created_at); pass ``updated_at`` as now.

        Args:
            order: The new state, e.g. ``dataclasses.replace(old, status=…)``.
            expect_status: Write only if the stored status is this one (a
                compare-and-set for state transitions).

        Returns:
            True if the row was written.

        Raises:
            ActiveOrderExists: The write would give the port a second pending or
                charging order.
        """
        params = _order_params(order)
        if expect_status is not None:
            params["expect_status"] = expect_status.value
        with self.transaction():
            try:
                with self.transaction():  # a savepoint: the error leaves the rest usable
                    cur = self._conn.execute(
                        sql.update_order_sql(expect_status=expect_status is not None), params)
            except self._engine.integrity_errors as err:
                if self._engine.constraint(err) == ONE_OPEN_ORDER_PER_PORT:
                    raise ActiveOrderExists(None) from err
                raise
            return cur.rowcount == 1

    def list_orders(self, *, device_phy_id: str | None = None,
                    statuses: Sequence[OrderState] = (), created_from: int | None = None,
                    created_to: int | None = None, limit: int = DEFAULT_LIMIT,
                    cursor: str | None = None) -> Page[OrderRecord]:
        """``GET /orders``: newest first, one page.

        Args:
            device_phy_id: Only this device's orders.
            statuses: Only orders in these states (empty: all).
            created_from: Only orders created at or after this time.
            created_to: Only orders created before this time.
            limit: Page size, 1–500.
            cursor: ``next_cursor`` of the previous page.

        Raises:
            InvalidPage: A bad *limit* or *cursor*.
        """
        check_limit(limit)
        after = None if cursor is None else decode_cursor("orders", cursor)
        params: dict[str, object] = {"limit": limit + 1, "device_phy_id": device_phy_id,
                                     "created_from": created_from, "created_to": created_to,
                                     "after": after}
        for i, status in enumerate(statuses):
            params[f"status{i}"] = status.value
        text = sql.list_orders_sql(device=device_phy_id is not None, statuses=len(statuses),
                                   created_from=created_from is not None,
                                   created_to=created_to is not None, after=after is not None)
        rows = [_order(r) for r in self._conn.execute(text, params)]
        return _page(rows, limit, "orders", lambda o: o.id)

    # --- progress samples ------------------------------------------------------------------

    def add_progress(self, sample: ProgressSample) -> None:
        """Append one progress report of an order."""
        with self.transaction():
            self._conn.execute(sql.INSERT_PROGRESS, {
                "order_no": sample.order_no, "at": sample.at,
                "duration_sec": sample.duration_sec, "total_kwh": sample.total_kwh,
                "power": sample.power, "voltage": sample.voltage, "current": sample.current})

    def list_progress(self, order_no: str) -> list[ProgressSample]:
        """An order's progress samples in the order they arrived."""
        return [_progress(r) for r in self._conn.execute(sql.SELECT_PROGRESS, (order_no,))]

    # --- commands --------------------------------------------------------------------------

    def insert_command(self, command: NewCommand) -> CommandRecord:
        """Persist a downlink as ``queued`` (before it is ever sent)."""
        command_id = command.id if command.id is not None else uuid.uuid4().hex
        with self.transaction():
            self._conn.execute(sql.INSERT_COMMAND, {
                "id": command_id, "device_id": command.device_id, "phy_id": command.phy_id,
                "kind": command.kind, "payload_json": dump_json(dict(command.payload)),
                "order_no": command.order_no, "created_at": command.created_at,
                "expires_at": command.expires_at, "key_name": command.key_name})
            record = self.get_command(command_id)
        assert record is not None
        return record

    def get_command(self, command_id: str) -> CommandRecord | None:
        """The command with this id, or None."""
        row = self._conn.execute(sql.SELECT_COMMAND, (command_id,)).fetchone()
        return None if row is None else _command(row)

    def queued_commands(self, device_id: int, now: int, *,
                        include_sent: bool = False) -> list[CommandRecord]:
        """A device's unexpired ``queued`` commands, oldest first; with
        *include_sent* also those ``sent`` and not yet answered (to resume after a
        restart)."""
        text = sql.SELECT_OPEN_COMMANDS if include_sent else sql.SELECT_QUEUED_COMMANDS
        return [_command(r) for r in self._conn.execute(text, (device_id, now))]

    def mark_command_sent(self, command_id: str, now: int, *, msg_id: int | None = None) -> bool:
        """Record a (re)send: status ``sent``, ``sent_at``, ``attempts`` + 1 and the
        wire message id.

        Returns:
            False if the command is already finished.
        """
        with self.transaction():
            cur = self._conn.execute(sql.MARK_COMMAND_SENT,
                                     {"id": command_id, "now": now, "msg_id": msg_id})
            return cur.rowcount == 1

    def set_command_msg_ids(self, msg_ids: Mapping[str, int]) -> None:
        """Record the wire message id each command (by id) was written with."""
        with self.transaction():
            self._conn.executemany(sql.SET_COMMAND_MSG_ID,
                                   [{"id": command_id, "msg_id": msg_id}
                                    for command_id, msg_id in msg_ids.items()])

    def finish_command(self, command_id: str, status: CommandStatus, now: int, *,
                       reason: str | None = None,
                       result: Mapping[str, object] | None = None) -> bool:
        """Move a queued or sent command to a final status.

        Args:
            status: ``acked``, ``failed`` or ``expired``.
            reason: Why it failed or expired.
            result: The device's answer (parameter results), stored as JSON.

        Returns:
            False if it was already finished (the first outcome stands).

        Raises:
            ValueError: *status* is not final.
        """
        if not status.is_final:
            raise ValueError(f"{status.value} is not a final command status")
        with self.transaction():
            cur = self._conn.execute(sql.FINISH_COMMAND, {
                "id": command_id, "status": status.value, "now": now, "reason": reason,
                "result_json": None if result is None else dump_json(dict(result))})
            return cur.rowcount == 1

    def expire_commands(self, now: int) -> list[CommandRecord]:
        """Expire every ``queued`` command whose ``expires_at`` has come.

        Returns:
            The expired commands, oldest first (their orders fail with
            ``command_expired``).
        """
        with self.transaction():
            rows = self._conn.execute(sql.EXPIRE_COMMANDS, {"now": now}).fetchall()
        return sorted((_command(r) for r in rows), key=lambda c: (c.created_at, c.id))

    # --- the frame log ---------------------------------------------------------------------

    def append_cmd_log(self, entry: CmdLogEntry) -> None:
        """Log one frame in or out."""
        self.append_cmd_logs([entry])

    def append_cmd_logs(self, entries: Sequence[CmdLogEntry]) -> None:
        """Log many frames in one transaction."""
        if not entries:
            return
        with self.transaction(durable=False):
            self._conn.executemany(sql.INSERT_CMD_LOG, [_cmd_log_params(e) for e in entries])

    def append_cmd_log_rows(self, rows: Sequence[CmdLogRow]) -> None:
        """Log many frames in one transaction, given as ready rows (the server's
        hot path: a row is a tuple, not a :class:`CmdLogEntry`, because every
        read and write of every device makes one)."""
        if not rows:
            return
        with self.transaction(durable=False):
            self._conn.executemany(sql.INSERT_CMD_LOG_ROW, rows)

    def list_cmd_logs(self, *, phy_id: str | None = None, limit: int = 100) -> list[CmdLogRecord]:
        """The newest logged frames first, optionally of one device."""
        text = sql.list_cmd_logs_sql(phy_id=phy_id is not None)
        return [_cmd_log(r) for r in self._conn.execute(text, {"phy_id": phy_id,
                                                               "limit": limit})]

    def prune_cmd_logs(self, *, older_than: int, max_rows: int | None = None) -> int:
        """Bound the frame log: delete rows created before *older_than*, then all but
        the newest *max_rows*.

        Returns:
            The number of rows deleted.
        """
        with self.transaction():
            deleted = self._conn.execute(sql.PRUNE_CMD_LOGS_OLDER, (older_than,)).rowcount
            if max_rows is not None:
                deleted += self._conn.execute(sql.PRUNE_CMD_LOGS_EXCESS, (max_rows,)).rowcount
        return deleted

    # --- events (the outbox) ---------------------------------------------------------------

    def append_event(self, event: NewEvent, *, deliver: bool) -> int | None:
        """Record an event in the outbox.

        Args:
            event: The event; its ``event_id`` makes the append idempotent.
            deliver: Also queue a webhook delivery (when a webhook is configured).

        Returns:
            The new sequence number, or None when an event with this id was
            already recorded (nothing is written: a replay never duplicates).
        """
        params = {"event_id": event.event_id, "event_type": event.event_type,
                  "device_phy_id": event.device_phy_id, "order_no": event.order_no,
                  "payload_json": dump_json(dict(event.data)), "created_at": event.created_at}
        with self.transaction():
            if event.device_phy_id is not None:
                self._engine.lock_device_events(event.device_phy_id)
            row = self._conn.execute(sql.INSERT_EVENT, params).fetchone()
            if row is None:
                return None
            seq = int(row["seq"])
            if deliver:
                routine = event.event_type in ROUTINE_EVENT_TYPES
                if not routine and event.device_phy_id is not None:
                    self._conn.execute(sql.PROMOTE_DEVICE_DELIVERIES, (event.device_phy_id,))
                self._conn.execute(sql.INSERT_DELIVERY,
                                   (seq, event.device_phy_id, event.created_at, int(routine)))
        return seq

    def get_event(self, event_id: str) -> EventRecord | None:
        """The event with this id, or None."""
        row = self._conn.execute(sql.SELECT_EVENT_BY_ID, (event_id,)).fetchone()
        return None if row is None else _event(row)

    def get_event_by_seq(self, seq: int) -> EventRecord | None:
        """The event with this sequence number, or None."""
        row = self._conn.execute(sql.SELECT_EVENT_BY_SEQ, (seq,)).fetchone()
        return None if row is None else _event(row)

    def list_events(self, *, after: int = 0, limit: int = DEFAULT_LIMIT) -> list[EventRecord]:
        """``GET /events?after=&limit=``: events with ``seq`` > *after*, in order.

        Raises:
            InvalidPage: A bad *limit*.
        """
        check_limit(limit)
        return [_event(r) for r in self._conn.execute(sql.SELECT_EVENTS_AFTER, (after, limit))]

    def order_event_count(self, order_no: str) -> int:
        """How many events an order has recorded (to continue its event ids after a
        restart)."""
        return int(self._conn.execute(sql.COUNT_ORDER_EVENTS, (order_no,)).fetchone()[0])

    # --- webhook deliveries ----------------------------------------------------------------

    def claim_due_deliveries(self, now: int, *, limit: int = 100,
                             lease: int = 60) -> list[DeliveryRecord]:
        """Take the deliveries due at *now*, oldest first, at most one per device;
        routine ones (:data:`ROUTINE_EVENT_TYPES`) only after every other due one.

        A device's event is never handed out while an earlier event of that device
        is still pending (events are delivered in the order they happened). The
        claimed rows get ``next_attempt_at = now + lease``, so a crashed dispatcher's
        claims come due again; choose *lease* longer than a delivery attempt.
        """
        # Routine: a claim lost to a power loss is a lease not taken.
        with self.transaction(durable=False):
            rows = self._conn.execute(self._engine.claim_due_deliveries, {
                "now": now, "limit": limit, "lease_until": now + lease}).fetchall()
            in_claim_order = sorted((int(r["routine"]), int(r["event_seq"])) for r in rows)
            claimed = [self.get_delivery(seq) for _, seq in in_claim_order]
        return [d for d in claimed if d is not None]

    def settle_and_claim(self, delivered: Sequence[tuple[int, int, int]], now: int, *,
                         limit: int, lease: int = 60) -> list[DeliveryRecord]:
        """Mark *delivered* deliveries, then claim the ones due (see
        :meth:`claim_due_deliveries`), in one routine transaction: the webhook
        worker's one database call per pass instead of two per delivery.

        Args:
            delivered: ``(event_seq, delivered_at, latency_ms)`` of the deliveries
                whose POST got a 2xx since the last call (rows no longer pending are
                left as they are).
            limit: Claim at most this many (0: only mark).
        """
        with self.transaction(durable=False):
            if delivered:
                self._conn.executemany(sql.MARK_DELIVERED, [
                    {"seq": seq, "now": at, "latency_ms": latency}
                    for seq, at, latency in delivered])
            if limit <= 0:
                return []
            return self.claim_due_deliveries(now, limit=limit, lease=lease)

    def release_delivery_claims(self, now: int) -> int:
        """Make every pending delivery due at *now* (at start, when no earlier
        attempt can still be running). Returns how many were waiting."""
        with self.transaction():
            return self._conn.execute(sql.RELEASE_DELIVERY_CLAIMS, {"now": now}).rowcount

    def get_delivery(self, event_seq: int) -> DeliveryRecord | None:
        """The delivery of one event with the event, or None."""
        row = self._conn.execute(sql.SELECT_DELIVERY, (event_seq,)).fetchone()
        return None if row is None else _delivery(row)

    def mark_delivered(self, event_seq: int, now: int, *, latency_ms: int) -> bool:
        """A 2xx arrived. Returns False if the delivery was not pending.

        Routine (see :meth:`transaction`): a mark lost to a power loss means the
        event is delivered again, which receivers already expect (at least once).
        """
        with self.transaction(durable=False):
            return self._conn.execute(sql.MARK_DELIVERED, {
                "seq": event_seq, "now": now, "latency_ms": latency_ms}).rowcount == 1

    def mark_delivery_failed(self, event_seq: int, *, error: str, retry_at: int) -> bool:
        """An attempt failed; try again at *retry_at*. Returns False if not pending."""
        with self.transaction():
            return self._conn.execute(sql.MARK_DELIVERY_FAILED, {
                "seq": event_seq, "error": error, "retry_at": retry_at}).rowcount == 1

    def mark_delivery_dead(self, event_seq: int, *, error: str) -> bool:
        """The last attempt failed; stop retrying (``GET /events`` and redelivery
        remain). Returns False if not pending."""
        with self.transaction():
            return self._conn.execute(sql.MARK_DELIVERY_DEAD, {
                "seq": event_seq, "error": error}).rowcount == 1

    def redeliver(self, event_id: str, now: int, *, key_name: str | None = None) -> bool:
        """Queue one event for delivery again, due at *now*, attempts reset.

        Args:
            event_id: The event.
            now: When it is due.
            key_name: The API key that asked (kept on the delivery for audit).

        Returns:
            False if there is no such event.
        """
        with self.transaction():
            rows = self._conn.execute(sql.REDELIVER_EVENT, {
                "event_id": event_id, "now": now, "key_name": key_name}).fetchall()
        return bool(rows)

    def prune_retained(self, *, before: int, batch: int) -> int:
        """Delete one batch of rows older than *before* from ``events`` (with their
        delivered webhook rows), ``order_progress`` and ``cmd_logs`` (retention_days).
        Undelivered events and the events of open orders are kept;
        orders and cards are never touched.

        Returns:
            The rows deleted; less than *batch* per table means that table is done.
        """
        params = {"before": before, "limit": batch}
        with self.transaction():
            return sum(self._conn.execute(text, params).rowcount for text in (
                sql.PRUNE_EVENTS_BATCH, sql.PRUNE_PROGRESS_BATCH, sql.PRUNE_CMD_LOGS_BATCH))

    # --- cards -----------------------------------------------------------------------------

    def create_card(self, card_no: str, now: int, *, balance_cents: int = 0,
                    status: CardStatus = CardStatus.ACTIVE,
                    charge_mode: ChargeMode | None = None, duration: int | None = None,
                    energy_wh: int | None = None, key_name: str | None = None) -> CardRecord:
        """Register a new card (``POST /cards``); a positive opening balance is its
        first ledger entry (``topup``).

        Raises:
            CardExists: The card is registered already (nothing changes).
            ValueError: A negative balance.
        """
        if balance_cents < 0:
            raise ValueError("balance_cents must not be negative")
        key = card_key(card_no)
        with self.transaction():
            cur = self._conn.execute(sql.INSERT_CARD, {
                "card_no": key, "balance_cents": balance_cents, "status": status.value,
                "charge_mode": None if charge_mode is None else int(charge_mode),
                "duration": duration, "energy_wh": energy_wh, "now": now})
            if cur.rowcount == 0:
                raise CardExists(key)
            if balance_cents > 0:
                self._ledger(key, LedgerKind.TOPUP, balance_cents, now, key_name=key_name,
                             reason="opening balance")
            card = self.get_card(key)
        assert card is not None
        return card

    def get_card(self, card_no: str) -> CardRecord | None:
        """The card, or None."""
        row = self._conn.execute(sql.SELECT_CARD, (card_key(card_no),)).fetchone()
        return None if row is None else _card(row)

    def top_up_card(self, card_no: str, amount_cents: int, now: int, *,
                    key_name: str | None = None, reason: str | None = None,
                    idem_key: str | None = None) -> CardRecord | None:
        """Add to a card's balance (a ``topup`` entry).

        A top-up of the same amount under an *idem_key* its *key_name* used for
        one before on this card credits nothing more: the card is returned as it
        is (the API's stored answer may have been lost or expired).

        Returns:
            The card, or None if it does not exist.

        Raises:
            ValueError: *amount_cents* is not positive.
        """
        if amount_cents <= 0:
            raise ValueError("a top-up must be positive")
        return self._change_balance(card_no, LedgerKind.TOPUP, amount_cents, now,
                                    key_name=key_name, reason=reason, idem_key=idem_key)

    def adjust_card(self, card_no: str, amount_cents: int, now: int, *, reason: str,
                    key_name: str | None = None,
                    idem_key: str | None = None) -> CardRecord | None:
        """Correct a card's balance by a signed amount (an ``adjust`` entry).

        A decrease may take only what is available: the balance never falls below
        what open orders hold. An *idem_key* makes a repeat a no-op, as for
        :meth:`top_up_card`.

        Returns:
            The card, or None if it does not exist.

        Raises:
            InsufficientFunds: A decrease beyond the available amount.
            ValueError: A zero amount or an empty reason.
        """
        if amount_cents == 0:
            raise ValueError("an adjustment must not be zero")
        if not reason.strip():
            raise ValueError("an adjustment needs a reason")
        return self._change_balance(card_no, LedgerKind.ADJUST, amount_cents, now,
                                    key_name=key_name, reason=reason, idem_key=idem_key)

    def hold_card(self, card_no: str, order_no: str, amount_cents: int,
                  now: int) -> CardRecord:
        """Reserve *amount_cents* of the card's available money for *order_no* (a
        ``hold`` entry); call it in the transaction that creates the order.

        Raises:
            InsufficientFunds: Less is available (or the card does not exist);
                nothing is held.
            ValueError: *amount_cents* is not positive.
        """
        if amount_cents <= 0:
            raise ValueError("a hold must be positive")
        key = card_key(card_no)
        with self.transaction():
            cur = self._conn.execute(sql.CARD_HOLD,
                                     {"card_no": key, "amount": amount_cents, "now": now})
            if cur.rowcount == 0:
                card = self.get_card(key)
                raise InsufficientFunds(key, amount_cents,
                                        None if card is None else card.available_cents)
            self._ledger(key, LedgerKind.HOLD, amount_cents, now, order_no=order_no)
            card = self.get_card(key)
        assert card is not None
        return card

    def settle_card_order(self, card_no: str, order_no: str, final_cents: int,
                          now: int) -> CardSettlement | None:
        """Settle an ended order against its hold: ``debit`` the bill, ``release``
        the rest of the hold (a bill of 0, for an order that never charged,
        releases it all). Once per order; a second call writes nothing.

        A bill above the order's hold (an order from before holds existed) is
        covered from what the card has available; what remains uncovered is
        reported as ``shortfall_cents``, never taken below zero.

        Returns:
            What was done, or None if the card does not exist.

        Raises:
            ValueError: A negative bill.
        """
        if final_cents < 0:
            raise ValueError("a bill must not be negative")
        key = card_key(card_no)
        with self.transaction():
            self._conn.execute(sql.LOCK_CARD, (key,))
            card = self.get_card(key)
            if card is None:
                return None
            totals = {row["kind"]: int(row["total"]) for row in
                      self._conn.execute(sql.SELECT_ORDER_LEDGER, (key, order_no))}
            held = totals.get("hold", 0) - totals.get("debit", 0) - totals.get("release", 0)
            if "debit" in totals or "release" in totals:
                return CardSettlement(billed_cents=final_cents, held_cents=held,
                                      debited_cents=0, released_cents=0, shortfall_cents=0,
                                      already_settled=True)
            extra = max(0, min(final_cents - held, card.available_cents))
            if extra:
                self.hold_card(key, order_no, extra, now)
            debit = min(final_cents, held + extra)
            release = held + extra - debit
            if debit:
                self._ledger(key, LedgerKind.DEBIT, debit, now, order_no=order_no)
            if release:
                self._ledger(key, LedgerKind.RELEASE, release, now, order_no=order_no)
            self._conn.execute(sql.CARD_SETTLE, {"card_no": key, "debit": debit,
                                                 "release": release, "now": now})
        return CardSettlement(billed_cents=final_cents, held_cents=held, debited_cents=debit,
                              released_cents=release, shortfall_cents=final_cents - debit)

    def list_card_ledger(self, card_no: str, *, limit: int = DEFAULT_LIMIT,
                         cursor: str | None = None) -> Page[CardLedgerEntry]:
        """A card's ledger, oldest entry first (paged).

        Raises:
            InvalidPage: A bad *limit* or *cursor*.
        """
        check_limit(limit)
        after = 0 if cursor is None else decode_cursor("card_ledger", cursor)
        rows = [_ledger_entry(r) for r in self._conn.execute(sql.SELECT_LEDGER_PAGE, {
            "card_no": card_key(card_no), "after": after, "limit": limit + 1})]
        return _page(rows, limit, "card_ledger", lambda e: e.entry_id)

    def _change_balance(self, card_no: str, kind: LedgerKind, amount_cents: int, now: int, *,
                        key_name: str | None, reason: str | None,
                        idem_key: str | None) -> CardRecord | None:
        key = card_key(card_no)
        with self.transaction():
            self._conn.execute(sql.LOCK_CARD, (key,))
            if idem_key is not None and key_name is not None and self._conn.execute(
                    sql.SELECT_LEDGER_REPEAT, {"card_no": key, "key_name": key_name,
                                               "idem_key": idem_key, "kind": kind.value,
                                               "amount": amount_cents}).fetchone():
                return self.get_card(key)
            cur = self._conn.execute(sql.CARD_BALANCE_ADD,
                                     {"card_no": key, "amount": amount_cents, "now": now})
            if cur.rowcount == 0:
                card = self.get_card(key)
                if card is None:
                    return None
                raise InsufficientFunds(key, -amount_cents, card.available_cents)
            self._ledger(key, kind, amount_cents, now, key_name=key_name, reason=reason,
                         idem_key=idem_key)
            return self.get_card(key)

    def _ledger(self, card_no: str, kind: LedgerKind, amount_cents: int, now: int, *,
                order_no: str | None = None, key_name: str | None = None,
                reason: str | None = None, idem_key: str | None = None) -> None:
        self._conn.execute(sql.INSERT_LEDGER, {
            "card_no": card_no, "kind": kind.value, "amount": amount_cents,
            "order_no": order_no, "key_name": key_name, "reason": reason,
            "idem_key": idem_key, "now": now})

    def set_card_status(self, card_no: str, status: CardStatus, now: int) -> CardRecord | None:
        """Block or unblock a card. Returns the card, or None if it does not exist."""
        with self.transaction():
            self._conn.execute(sql.SET_CARD_STATUS,
                               {"card_no": card_key(card_no), "status": status.value, "now": now})
            return self.get_card(card_no)

    # --- API bookkeeping -------------------------------------------------------------------

    def check_nonce(self, key_name: str, nonce: str, now: int, *, ttl: int) -> bool:
        """Check and remember a request nonce.

        Returns:
            True if the nonce is fresh (now stored); False if this key used it
            less than *ttl* seconds ago (a replay).
        """
        with self.transaction():
            self._conn.execute(sql.DELETE_EXPIRED_NONCE, (key_name, nonce, now - ttl))
            cur = self._conn.execute(sql.INSERT_NONCE, (key_name, nonce, now))
            return cur.rowcount == 1

    def prune_nonces(self, now: int, *, ttl: int) -> int:
        """Forget nonces older than *ttl*. Returns how many."""
        with self.transaction():
            return self._conn.execute(sql.PRUNE_NONCES, (now - ttl,)).rowcount

    def get_idempotency(self, key_name: str, idem_key: str, now: int, *,
                        ttl: int) -> IdempotencyRecord | None:
        """The stored answer for this key's ``Idempotency-Key``, if younger than *ttl*."""
        row = self._conn.execute(sql.SELECT_IDEMPOTENCY,
                                 (key_name, idem_key, now - ttl)).fetchone()
        return None if row is None else _idempotency(row)

    def put_idempotency(self, key_name: str, idem_key: str, now: int, *, ttl: int,
                        status_code: int, response_json: str,
                        request_hash: str | None = None) -> IdempotencyRecord:
        """Store the answer to a request with an ``Idempotency-Key``.

        The first answer wins: if a fresh one is already stored, it is kept and
        returned (compare it with yours); a stale one is replaced.
        """
        with self.transaction():
            self._conn.execute(sql.PUT_IDEMPOTENCY, {
                "key_name": key_name, "idem_key": idem_key, "status_code": status_code,
                "response_json": response_json, "request_hash": request_hash, "now": now,
                "stale_before": now - ttl})
            record = self.get_idempotency(key_name, idem_key, now, ttl=ttl)
        assert record is not None
        return record

    def prune_idempotency(self, now: int, *, ttl: int) -> int:
        """Forget idempotency answers older than *ttl*. Returns how many."""
        with self.transaction():
            return self._conn.execute(sql.PRUNE_IDEMPOTENCY, (now - ttl,)).rowcount

    def get_setting(self, name: str) -> str | None:
        """A ``settings`` value, or None."""
        row = self._conn.execute(sql.SELECT_SETTING, (name,)).fetchone()
        return None if row is None else str(row["value"])

    def put_setting(self, name: str, value: str) -> None:
        """Set a ``settings`` value."""
        with self.transaction():
            self._conn.execute(sql.UPSERT_SETTING, (name, value))

    def delete_setting(self, name: str) -> bool:
        """Remove a ``settings`` row, on SQLite overwriting its bytes in the file
        (``secure_delete``: the row may have held a secret; PostgreSQL has no such
        mode). Returns whether it existed."""
        with self._engine.secure_delete(), self.transaction():
            return self._conn.execute(sql.DELETE_SETTING, (name,)).rowcount == 1

    def ensure_setting(self, name: str, value: str) -> tuple[str, bool]:
        """Store *value* unless the setting exists (the generated API key).

        Returns:
            The stored value and whether it was stored now (so the caller prints a
            generated key exactly once).
        """
        with self.transaction():
            created = self._conn.execute(sql.INSERT_SETTING_IF_ABSENT,
                                         (name, value)).rowcount == 1
            stored = self.get_setting(name)
        assert stored is not None
        return stored, created


def _page(rows: list[_T], limit: int, list_name: str, key: Callable[[_T], int]) -> Page[_T]:
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(tuple(rows), encode_cursor(list_name, key(rows[-1])))
    return Page(tuple(rows), None)
