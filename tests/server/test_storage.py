"""Storage on real databases: migrations, the plan's diagnostic SQL, outbox, paging,
cards, nonces, batching, and the trio wrapper.

The tests of the storage API run on both engines (the ``engine`` fixture of
conftest.py: an SQLite file and a PostgreSQL database); those marked ``sqlite_only``
check what only SQLite has (the file, PRAGMAs, STRICT tables, sqlite3 readers).
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import sqlite3
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from bkvcodec import ChargeMode, Direction, EndReason, OrderState, PortState, ProtocolFamily
from reference_server.config import GENERATED_API_KEY_SETTING, generate_api_key
from reference_server.storage import (
    LATEST_VERSION,
    MIGRATIONS,
    ActiveOrderExists,
    AsyncDatabase,
    CardExists,
    CardSettlement,
    CardStatus,
    CmdLogEntry,
    CommandStatus,
    Database,
    DeliveryStatus,
    DeviceTouch,
    DuplicateOrderNo,
    InsufficientFunds,
    InvalidPage,
    LedgerKind,
    Migration,
    NewCommand,
    NewEvent,
    NewOrder,
    OrderRecord,
    PortRecord,
    ProgressSample,
    SchemaTooNew,
    dump_json,
    encode_cursor,
    format_order_no,
    load_json_object,
    migrate,
    split_statements,
)
from tests.server.engines import sqlite_only

GW1 = "82210225000520"
GW2 = "82210225000521"
T0 = 1729407600  # the plan's example time


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The SQLite file (``db`` opens it in a test narrowed to SQLite)."""
    return tmp_path / "data" / "iot.db"


@pytest.fixture
def db(db_target: str | Path) -> Iterator[Database]:
    database = Database.open(db_target)
    yield database
    database.close()


@contextmanager
def _reader(path: Path) -> Iterator[sqlite3.Connection]:
    """A second connection, as an operator's sqlite3 shell would be; closed on exit."""
    connection = sqlite3.connect(path)
    try:
        yield connection
    finally:
        connection.close()


def _device(db: Database, phy_id: str = GW1, now: int = T0,
            protocol: ProtocolFamily = ProtocolFamily.BKV) -> int:
    device, _ = db.upsert_device(phy_id, protocol, now)
    return device.id


def _order(db: Database, device_id: int, order_no: str, *, port_no: int = 1,
           created_at: int = T0, **kwargs: object) -> OrderRecord:
    fields: dict[str, object] = {"charge_mode": ChargeMode.TIME, "amount": 1000,
                                 "price_per_kwh": 150, "service_fee": 0,
                                 "requested_duration_sec": 3600}
    fields.update(kwargs)
    return db.insert_order(NewOrder(order_no=order_no, device_id=device_id, port_no=port_no,
                                    created_at=created_at, **fields))  # type: ignore[arg-type]


def _port(device_id: int, port_no: int, status: PortState, power_w: int = 0,
          order_no: str | None = None, now: int = T0) -> PortRecord:
    return PortRecord(device_id=device_id, socket_no=1, port_no=port_no, status=status,
                      power_w=power_w, voltage=2200, fault_code=0, order_no=order_no,
                      business_no=None, updated_at=now)


def _event(event_id: str, phy_id: str | None = GW1, at: int = T0,
           event_type: str = "device.heartbeat") -> NewEvent:
    return NewEvent(event_id=event_id, event_type=event_type, data={"id": event_id},
                    created_at=at, device_phy_id=phy_id)


# --- opening, WAL, migrations --------------------------------------------------------------

@sqlite_only
def test_open_creates_directories_and_uses_wal(db_path: Path, db: Database) -> None:
    with _reader(db_path) as reader:
        journal_mode = reader.execute("PRAGMA journal_mode").fetchone()[0]

    assert db_path.is_file()
    assert "wal" == journal_mode
    assert 2 == db._conn.execute("PRAGMA synchronous").fetchone()[0]  # FULL, the default
    assert 1 == db._conn.execute("PRAGMA foreign_keys").fetchone()[0]


def test_open_applies_the_configured_synchronous_mode(tmp_path: Path) -> None:
    normal = Database.open(tmp_path / "normal.db", synchronous="normal")
    try:
        assert 1 == normal._conn.execute("PRAGMA synchronous").fetchone()[0]  # NORMAL
    finally:
        normal.close()
    with pytest.raises(ValueError, match="synchronous"):
        Database.open(tmp_path / "off.db", synchronous="off")


@sqlite_only
def test_routine_transactions_skip_the_sync_and_durable_ones_keep_it(db: Database) -> None:
    def synchronous() -> int:
        return int(db._conn.execute("PRAGMA synchronous").fetchone()[0])  # 2 FULL, 1 NORMAL

    with db.transaction(durable=False):
        assert 1 == synchronous()
        with db.transaction():  # the outermost level decides
            assert 1 == synchronous()
    assert 2 == synchronous()
    with db.transaction():
        assert 2 == synchronous()
    with pytest.raises(RuntimeError), db.transaction(durable=False):
        raise RuntimeError
    assert 2 == synchronous() and not db._conn.in_transaction
    db.append_cmd_logs([CmdLogEntry(direction=Direction.UP, cmd="0x0000", hex="00",
                                    created_at=1)])  # a routine writer
    assert 2 == synchronous()


def test_frame_log_rows_are_stored_like_entries(db: Database) -> None:
    db.append_cmd_log_rows([(None, "GW", "UP", "DeviceHeartbeat", 7, "fcfe", 5),
                            (None, None, "DOWN", "reply", None, "fcff", 6)])
    down, up = db.list_cmd_logs()
    assert (Direction.UP, "DeviceHeartbeat", 7, "fcfe", 5, "GW") == (
        up.direction, up.cmd, up.msg_id, up.hex, up.created_at, up.phy_id)
    assert (Direction.DOWN, None, None) == (down.direction, down.msg_id, down.phy_id)


def test_routine_transactions_leave_a_normal_database_normal(tmp_path: Path) -> None:
    normal = Database.open(tmp_path / "normal.db", synchronous="normal")
    try:
        with normal.transaction(durable=False):
            pass
        assert 1 == normal._conn.execute("PRAGMA synchronous").fetchone()[0]
    finally:
        normal.close()


def test_the_tariff_migration_derives_the_tariff_of_existing_orders(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "v2.db", isolation_level=None)
    try:
        migrate(conn, MIGRATIONS[:2])
        conn.execute("INSERT INTO devices (phy_id, protocol, created_at, updated_at) "
                     "VALUES ('GW', 'bkv', 0, 0)")
        rows = [  # (order_no, status, charge_mode, amount, price, duration, card_no)
            ("E", "completed", 1, 1000, 150, 3600, None),
            ("T", "completed", 1, 1000, 0, 3600, None),
            ("OLDTIERS", "completed", 3, 1000, 0, None, None),
            ("F", "completed", 4, 1000, 0, None, None),
            ("OPENTIERS", "charging", 3, 1000, 150, None, None),
            ("OPENTIME", "pending", 1, 500, 0, 600, None),
            ("OPENCARD", "stopping", 1, 500, 0, 600, "c1"),
        ]
        for port, (order_no, status, mode, amount, price, duration, card) in enumerate(rows):
            conn.execute(
                "INSERT INTO orders (order_no, device_id, port_no, status, charge_mode, amount,"
                " price_per_kwh, requested_duration_sec, card_no, created_at, updated_at)"
                " VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, 0, 0)",
                (order_no, port + 1, status, mode, amount, price, duration, card))

        migrate(conn)
        tariffs = dict(conn.execute("SELECT order_no, tariff FROM orders").fetchall())
    finally:
        conn.close()

    assert {"E": "energy", "T": "time", "OLDTIERS": "flat", "F": "flat",
            "OPENTIERS": "tiers", "OPENTIME": "time", "OPENCARD": "flat"} == tariffs


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert list(range(1, len(MIGRATIONS) + 1)) == [m.version for m in MIGRATIONS]
    assert MIGRATIONS[-1].version == LATEST_VERSION


def test_migrating_again_is_a_no_op(db_path: Path) -> None:
    Database.open(db_path).close()
    with _reader(db_path) as reader:
        schema_before = reader.execute("SELECT type, name, sql FROM sqlite_schema").fetchall()

    database = Database.open(db_path)
    applied_again = migrate(database._conn)
    database.close()

    with _reader(db_path) as reader:
        schema_after = reader.execute("SELECT type, name, sql FROM sqlite_schema").fetchall()
        versions = reader.execute("SELECT version FROM schema_migrations").fetchall()
        user_version = reader.execute("PRAGMA user_version").fetchone()[0]
    assert [] == applied_again
    assert schema_before == schema_after
    assert [(v,) for v in range(1, LATEST_VERSION + 1)] == versions
    assert LATEST_VERSION == user_version


@sqlite_only
def test_a_failing_migration_changes_nothing(db: Database) -> None:
    bad = Migration(LATEST_VERSION + 1, "broken",
                    "CREATE TABLE extra (a INTEGER) STRICT; SELECT no_such_function();")

    with pytest.raises(sqlite3.OperationalError):
        migrate(db._conn, (*MIGRATIONS, bad))

    assert LATEST_VERSION == db.schema_version()
    assert db._conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE name = 'extra'").fetchone() is None


@sqlite_only
def test_a_later_migration_is_applied_once(db: Database) -> None:
    extra = Migration(LATEST_VERSION + 1, "extra", "CREATE TABLE extra (a INTEGER) STRICT;")

    first = migrate(db._conn, (*MIGRATIONS, extra))
    second = migrate(db._conn, (*MIGRATIONS, extra))

    assert ([LATEST_VERSION + 1], []) == (first, second)


def test_a_newer_database_is_refused(db_path: Path) -> None:
    Database.open(db_path).close()
    with _reader(db_path) as writer:
        writer.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
        writer.commit()

    with pytest.raises(SchemaTooNew) as info:
        Database.open(db_path)

    assert (999, LATEST_VERSION) == (info.value.found, info.value.supported)


def test_split_statements() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (a TEXT DEFAULT 'x;y');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 'z'; END;
    INSERT INTO t VALUES ('1');
    -- trailing comment
    """

    statements = split_statements(script)

    assert 3 == len(statements)
    assert statements[1].endswith("END;")
    with pytest.raises(ValueError):
        split_statements("CREATE TABLE t (a INTEGER); SELECT 1")


@sqlite_only
def test_integer_units_only(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        db.upsert_device(GW1, ProtocolFamily.BKV, 1729407600.5)  # type: ignore[arg-type]

    assert db.get_device(GW1) is None


def test_close_checkpoints_the_wal(db_path: Path) -> None:
    database = Database.open(db_path)
    _device(database)
    database.close()
    database.close()  # idempotent

    wal = db_path.with_name(db_path.name + "-wal")
    assert database.closed
    assert not wal.exists() or 0 == wal.stat().st_size
    with _reader(db_path) as reader:
        assert [(GW1,)] == reader.execute("SELECT phy_id FROM devices").fetchall()


def test_in_memory_database() -> None:
    database = Database.open(":memory:")

    assert LATEST_VERSION == database.schema_version()
    database.close()


# --- transactions --------------------------------------------------------------------------

def test_state_change_and_event_commit_together_or_not_at_all(db: Database) -> None:
    device_id = _device(db)
    order = _order(db, device_id, "THD1729407600001")

    with pytest.raises(RuntimeError), db.transaction():
        db.save_order(dataclasses.replace(order, status=OrderState.CHARGING))
        db.append_event(_event("THD1729407600001-2", event_type="charging.started"),
                        deliver=True)
        raise RuntimeError("crash before commit")

    assert OrderState.PENDING == db.get_order("THD1729407600001").status  # type: ignore[union-attr]
    assert db.get_event("THD1729407600001-2") is None
    with db.transaction():
        db.save_order(dataclasses.replace(order, status=OrderState.CHARGING))
        db.append_event(_event("THD1729407600001-2", event_type="charging.started"),
                        deliver=True)
    assert OrderState.CHARGING == db.get_order("THD1729407600001").status  # type: ignore[union-attr]
    assert db.get_event("THD1729407600001-2") is not None


def test_nested_transaction_rolls_back_only_the_inner_part(db: Database) -> None:
    with db.transaction():
        _device(db, GW1)
        with pytest.raises(RuntimeError), db.transaction():
            _device(db, GW2)
            raise RuntimeError("inner")

    assert db.get_device(GW1) is not None
    assert db.get_device(GW2) is None


# --- devices -------------------------------------------------------------------------------

def test_upsert_device_creates_then_updates(db: Database) -> None:
    created, was_created = db.upsert_device(GW1, ProtocolFamily.BKV, T0, remote_addr="1.2.3.4:1",
                                            firmware="1.0")
    updated, again = db.upsert_device(GW1, ProtocolFamily.BKV, T0 + 10,
                                      remote_addr="5.6.7.8:2", iccid="8986")

    assert (True, False) == (was_created, again)
    assert created.id == updated.id
    assert ("5.6.7.8:2", "1.0", "8986", T0 + 10, T0) == (
        updated.remote_addr, updated.firmware, updated.iccid, updated.last_seen_at,
        updated.created_at)
    assert updated == db.get_device_by_id(updated.id)


def test_online_flag_reports_changes(db: Database) -> None:
    _device(db)

    changes = [db.set_device_online(GW1, True, T0), db.set_device_online(GW1, True, T0 + 1),
               db.set_device_online(GW1, False, T0 + 2)]

    assert [True, False, True] == changes
    assert db.get_device(GW1).online is False  # type: ignore[union-attr]


def test_stale_devices_and_restart(db: Database) -> None:
    for phy_id, seen in ((GW1, T0), (GW2, T0 + 100)):
        _device(db, phy_id, seen)
        db.set_device_online(phy_id, True, seen)
    _device(db, "ap3000-1", T0, ProtocolFamily.AP3000)
    db.set_device_online("ap3000-1", True, T0)

    stale = db.stale_devices(ProtocolFamily.BKV, seen_before=T0 + 50)
    offline = db.mark_all_devices_offline(T0 + 200)

    assert [GW1] == [d.phy_id for d in stale]
    assert sorted([GW1, GW2, "ap3000-1"]) == offline
    assert [] == db.mark_all_devices_offline(T0 + 201)


@sqlite_only
def test_touch_devices_batches_heartbeats(db_path: Path, db: Database) -> None:
    phy_ids = [f"{i:014d}" for i in range(1000)]
    with db.transaction():
        for phy_id in phy_ids:
            _device(db, phy_id, T0)
    statements: list[str] = []
    db._conn.set_trace_callback(statements.append)

    updated = db.touch_devices(
        [DeviceTouch(phy_id=p, seen_at=T0 + 11, rssi=20 + i % 10) for i, p in enumerate(phy_ids)]
        + [DeviceTouch(phy_id=phy_ids[0], seen_at=T0 + 5),  # late: never backwards
           DeviceTouch(phy_id="unknown", seen_at=T0 + 11)])

    db._conn.set_trace_callback(None)
    with _reader(db_path) as reader:
        rows = reader.execute("SELECT COUNT(*), MIN(last_seen_at), MAX(last_seen_at) "
                              "FROM devices").fetchone()
    first = db.get_device(phy_ids[0])
    assert 1001 == updated
    assert (1000, T0 + 11, T0 + 11) == rows
    assert first is not None
    assert (T0 + 11, 20) == (first.last_seen_at, first.rssi)
    assert (1, 1) == (statements.count("BEGIN IMMEDIATE"), statements.count("COMMIT"))
    assert 0 == db.touch_devices([])


@sqlite_only
def test_touch_batch_is_one_transaction(db: Database) -> None:
    _device(db, GW1)
    _device(db, GW2)

    with pytest.raises(sqlite3.IntegrityError):
        db.touch_devices([DeviceTouch(phy_id=GW1, seen_at=T0 + 10),
                          DeviceTouch(phy_id=GW2, seen_at=T0 + 10.5)])  # type: ignore[arg-type]

    assert T0 == db.get_device(GW1).last_seen_at  # type: ignore[union-attr]


def test_device_list_pages_and_filters(db: Database) -> None:
    for i in range(5):
        _device(db, f"BKV{i}", T0)
        db.set_device_online(f"BKV{i}", i % 2 == 0, T0)
    _device(db, "AP1", T0, ProtocolFamily.AP3000)

    first = db.list_devices(protocol=ProtocolFamily.BKV, limit=2)
    second = db.list_devices(protocol=ProtocolFamily.BKV, limit=2, cursor=first.next_cursor)
    third = db.list_devices(protocol=ProtocolFamily.BKV, limit=2, cursor=second.next_cursor)
    online = db.list_devices(online=True)

    assert [["BKV0", "BKV1"], ["BKV2", "BKV3"], ["BKV4"]] == [
        [d.phy_id for d in p.items] for p in (first, second, third)]
    assert third.next_cursor is None
    assert ["BKV0", "BKV2", "BKV4"] == [d.phy_id for d in online.items]


# --- ports ---------------------------------------------------------------------------------

def test_ports_upsert_whole_rows(db: Database) -> None:
    device_id = _device(db)
    db.put_ports([_port(device_id, 2, PortState.IDLE), _port(device_id, 1, PortState.IDLE)])
    db.put_port(_port(device_id, 1, PortState.CHARGING, 1500, "THD1729407600001", T0 + 5))

    ports = db.list_ports(device_id)

    assert [(1, PortState.CHARGING, 1500, "THD1729407600001"), (2, PortState.IDLE, 0, None)] \
        == [(p.port_no, p.status, p.power_w, p.order_no) for p in ports]
    assert ports[0] == db.get_port(device_id, 1, 1)
    assert db.get_port(device_id, 1, 9) is None


# --- orders --------------------------------------------------------------------------------

def test_order_numbers() -> None:
    assert "THD1729407600001" == format_order_no(T0, 1)
    assert 16 == len(format_order_no(T0, 999))
    with pytest.raises(ValueError):
        format_order_no(T0, 1000)


def test_allocate_order_no_counts_per_second(db: Database) -> None:
    device_id = _device(db)

    first = db.allocate_order_no(T0)
    _order(db, device_id, first)
    second = db.allocate_order_no(T0)
    _order(db, device_id, format_order_no(T0 + 1, 999), port_no=2)
    overflow = db.allocate_order_no(T0 + 1)

    assert ["THD1729407600000", "THD1729407600001", "THD1729407602000"] == [
        first, second, overflow]


def test_one_open_order_per_port(db: Database) -> None:
    device_id = _device(db)
    first = _order(db, device_id, "THD1729407800001")

    with pytest.raises(ActiveOrderExists) as busy:
        _order(db, device_id, "THD1729407800002")
    with pytest.raises(DuplicateOrderNo):
        _order(db, device_id, "THD1729407800001", port_no=2)
    other_port = _order(db, device_id, "THD1729407800003", port_no=2)

    assert "THD1729407800001" == busy.value.order_no
    assert OrderState.PENDING == other_port.status
    # A stopping order may overlap with its replacement (busy_port_policy = replace).
    db.save_order(dataclasses.replace(first, status=OrderState.STOPPING))
    replacement = _order(db, device_id, "THD1729407800004")
    assert replacement.order_no == db.open_order_for_port(device_id, 1, 1).order_no  # type: ignore[union-attr]
    with pytest.raises(ActiveOrderExists):
        db.save_order(dataclasses.replace(first, status=OrderState.CHARGING))


def test_orders_need_an_existing_device(db: Database) -> None:
    with pytest.raises(db._engine.integrity_errors):
        _order(db, 12345, "THD1729407600001")


def test_save_order_compare_and_set(db: Database) -> None:
    device_id = _device(db)
    order = _order(db, device_id, "THD1729407600001", business_no=0x1234)
    charging = dataclasses.replace(order, status=OrderState.CHARGING, start_time=T0 + 35,
                                   updated_at=T0 + 35)

    applied = db.save_order(charging, expect_status=OrderState.PENDING)
    repeated = db.save_order(charging, expect_status=OrderState.PENDING)

    assert (True, False) == (applied, repeated)
    assert charging == db.get_order("THD1729407600001")
    assert charging == db.find_order_by_business_no(device_id, 0x1234)
    assert [charging] == db.open_orders()


def test_order_list_pages_newest_first_and_is_stable(db: Database) -> None:
    device_a = _device(db, GW1)
    device_b = _device(db, GW2)
    for i in range(7):
        _order(db, device_a if i % 2 == 0 else device_b, format_order_no(T0 + i, 1),
               port_no=i + 1, created_at=T0 + i)

    first = db.list_orders(limit=3)
    _order(db, device_a, format_order_no(T0 + 99, 1), port_no=50, created_at=T0 + 99)
    second = db.list_orders(limit=3, cursor=first.next_cursor)
    third = db.list_orders(limit=3, cursor=second.next_cursor)

    seen = [o.created_at - T0 for p in (first, second, third) for o in p.items]
    assert [6, 5, 4, 3, 2, 1, 0] == seen
    assert third.next_cursor is None


def test_order_list_filters(db: Database) -> None:
    device_a = _device(db, GW1)
    device_b = _device(db, GW2)
    for i in range(6):
        order = _order(db, device_a if i < 4 else device_b, format_order_no(T0 + i, 1),
                       port_no=i + 1, created_at=T0 + i)
        if i % 2:
            db.save_order(dataclasses.replace(order, status=OrderState.COMPLETED))

    by_device = db.list_orders(device_phy_id=GW1)
    by_status = db.list_orders(statuses=[OrderState.COMPLETED])
    by_time = db.list_orders(created_from=T0 + 2, created_to=T0 + 5)
    combined = db.list_orders(device_phy_id=GW2, statuses=[OrderState.PENDING,
                                                           OrderState.CHARGING])

    assert [3, 2, 1, 0] == [o.created_at - T0 for o in by_device.items]
    assert [5, 3, 1] == [o.created_at - T0 for o in by_status.items]
    assert [4, 3, 2] == [o.created_at - T0 for o in by_time.items]
    assert [4] == [o.created_at - T0 for o in combined.items]
    assert () == db.list_orders(device_phy_id="nobody").items


@pytest.mark.parametrize("limit", [0, -1, 501])
def test_bad_limit(db: Database, limit: int) -> None:
    with pytest.raises(InvalidPage) as info:
        db.list_orders(limit=limit)

    assert "limit" == info.value.field


def test_bad_cursor(db: Database) -> None:
    for i in range(3):
        _device(db, f"D{i}")
    devices_cursor = db.list_devices(limit=1).next_cursor
    assert devices_cursor is not None

    for cursor in ("garbage!", "", devices_cursor, "b3JkZXJzOi0x"):
        with pytest.raises(InvalidPage) as info:
            db.list_orders(cursor=cursor)
        assert "cursor" == info.value.field


def test_progress_samples(db: Database) -> None:
    device_id = _device(db)
    _order(db, device_id, "THD1729407600001")
    samples = [ProgressSample(order_no="THD1729407600001", at=T0 + 11 * i, duration_sec=11 * i,
                              total_kwh=5 * i, power=15000, voltage=2200 if i else None,
                              current=6800 if i else None) for i in range(1, 4)]

    for sample in samples:
        db.add_progress(sample)

    assert samples == db.list_progress("THD1729407600001")
    assert [] == db.list_progress("THD0000000000000")


# --- the plan's diagnostic SQL (test-plan.md §5.6, §7, §8.6, §8.8), on a populated file -----

@pytest.fixture
def populated(db: Database) -> Database:
    """Two gateways (TC001, TC005, exception 3), written through the API."""
    now = int(time.time())
    gw1 = _device(db, GW1, now - 5)
    gw2 = _device(db, GW2, now - 300)
    for phy_id in (GW1, GW2):
        db.set_device_online(phy_id, True, now)
    # TC001: an order on GW2 port 1, created pending.
    _order(db, gw2, "THD1729407600001", created_at=T0)
    # TC005: four ports of GW1 charging, created one after the other.
    powers = [1500, 1600, 1400, 1450]
    for port_no, power in enumerate(powers, start=1):
        order = _order(db, gw1, f"THD172940760010{port_no}", port_no=port_no,
                       created_at=T0 + port_no, amount=1000)
        db.save_order(dataclasses.replace(order, status=OrderState.CHARGING,
                                          start_time=T0 + 30, duration_sec=60 - 5 * port_no,
                                          total_kwh=2 * port_no, current_power=power * 10,
                                          peak_power=power * 10))
        db.put_port(_port(gw1, port_no, PortState.CHARGING, power, order.order_no))
    db.put_port(_port(gw1, 5, PortState.FAULT))
    db.append_cmd_logs([
        CmdLogEntry(direction=Direction.DOWN, cmd="0x82", hex="fcfe", created_at=T0,
                    device_id=gw2, phy_id=GW2, msg_id=12345),
        CmdLogEntry(direction=Direction.UP, cmd="0x82", hex="fcff", created_at=T0 + 1,
                    device_id=gw2, phy_id=GW2, msg_id=12345),
    ])
    return db


@sqlite_only
def test_tc001_order_rows(db_path: Path, populated: Database) -> None:
    with _reader(db_path) as sql:
        step4 = sql.execute("SELECT order_no, status, port_no, amount, created_at FROM orders "
                            "WHERE order_no='THD1729407600001'").fetchall()
        # §5.6, 0x04 confirmation, NOW() → a bound time.
        sql.execute("UPDATE orders SET status='charging', start_time=? "
                    "WHERE order_no='THD1729407600001'", (T0 + 35,))
        # §5.6, 0x06 progress.
        sql.execute("UPDATE orders SET duration_sec=?, current_power=?, total_kwh=?, "
                    "peak_power=?, updated_at=? WHERE order_no='THD1729407600001'",
                    (60, 15000, 25, 15000, T0 + 95))
        sql.execute("UPDATE ports SET status = 1, power_w = ?/10, updated_at = ? "
                    "WHERE device_id = (SELECT id FROM devices WHERE phy_id = ?) "
                    "AND port_no = 1", (15000, T0 + 95, GW2))
        # §5.6, 0x03 settlement.
        sql.execute("UPDATE orders SET status='completed', end_time=?, duration_sec=3600, "
                    "total_kwh=523, peak_power=18000, final_amount=785, end_reason=0, "
                    "updated_at=? WHERE order_no='THD1729407600001'", (T0 + 3635, T0 + 3635))
        sql.execute("UPDATE ports SET status = 0, power_w = 0 "
                    "WHERE device_id = (SELECT id FROM devices WHERE phy_id = ?)", (GW2,))
        sql.commit()
        step13 = sql.execute("SELECT status, duration_sec, total_kwh, final_amount, end_reason, "
                             "end_time - start_time FROM orders "
                             "WHERE order_no='THD1729407600001'").fetchone()

    order = populated.get_order("THD1729407600001")
    assert [("THD1729407600001", "pending", 1, 1000, T0)] == step4
    assert ("completed", 3600, 523, 785, 0, 3600) == step13
    assert order is not None
    assert (OrderState.COMPLETED, EndReason.NORMAL) == (order.status, order.end_reason)


@sqlite_only
def test_tc005_and_monitor_queries(db_path: Path, populated: Database) -> None:
    with _reader(db_path) as sql:
        active = sql.execute(
            "SELECT port_no, order_no, status FROM orders "
            "WHERE device_id=(SELECT id FROM devices WHERE phy_id=?) "
            "AND status IN ('pending','charging') ORDER BY port_no", (GW1,)).fetchall()
        total_power = sql.execute(
            "SELECT SUM(power_w) FROM ports "
            "WHERE device_id=(SELECT id FROM devices WHERE phy_id=?) AND status=1",
            (GW1,)).fetchone()[0]
        ports = sql.execute(
            "SELECT port_no, CASE status WHEN 0 THEN 'idle' WHEN 1 THEN 'charging' "
            "ELSE 'fault' END, power_w FROM ports "
            "WHERE device_id=(SELECT id FROM devices WHERE phy_id=?) ORDER BY port_no",
            (GW1,)).fetchall()
        monitor = sql.execute(
            "SELECT order_no, port_no, status, duration_sec, total_kwh / 100.0, "
            "current_power / 10.0 FROM orders "
            "WHERE device_id=(SELECT id FROM devices WHERE phy_id=?) "
            "AND status IN ('pending','charging') ORDER BY created_at DESC", (GW1,)).fetchall()

    assert [(n, f"THD172940760010{n}", "charging") for n in range(1, 5)] == active
    assert 5950 == total_power
    assert 5950 < 6000
    assert [(1, "charging", 1500), (2, "charging", 1600), (3, "charging", 1400),
            (4, "charging", 1450), (5, "fault", 0)] == ports
    assert ("THD1729407600104", 4, "charging", 40, 0.08, 1450.0) == monitor[0]


@sqlite_only
def test_diagnostics_online_state_and_newest_orders(db_path: Path, populated: Database) -> None:
    with _reader(db_path) as sql:
        # §8.8 (1): online ⇔ last_seen_at within 30 s (PostgreSQL's NOW() - INTERVAL).
        online = sql.execute(
            "SELECT phy_id, CASE WHEN last_seen_at > CAST(strftime('%s','now') AS INTEGER) - 30 "
            "THEN 'online' ELSE 'offline' END FROM devices WHERE phy_id IN (?, ?) "
            "ORDER BY phy_id", (GW1, GW2)).fetchall()
        # §8.8 (2): the 10 newest pending/charging orders.
        newest = sql.execute(
            "SELECT order_no, port_no, status, duration_sec, total_kwh FROM orders "
            "WHERE status IN ('pending','charging') ORDER BY created_at DESC LIMIT 10").fetchall()
        # §5.4: the command log of downlinks.
        downlinks = sql.execute("SELECT device_id, msg_id, cmd, direction FROM cmd_logs "
                                "WHERE direction='DOWN'").fetchall()

    gw2 = populated.get_device(GW2)
    assert gw2 is not None
    assert [(GW1, "online"), (GW2, "offline")] == online
    assert ["THD1729407600104", "THD1729407600103", "THD1729407600102", "THD1729407600101",
            "THD1729407600001"] == [row[0] for row in newest]
    assert [(gw2.id, 12345, "0x82", "DOWN")] == downlinks


@sqlite_only
def test_exception3_busy_port_keeps_the_old_order(db_path: Path, populated: Database) -> None:
    gw1 = populated.get_device(GW1)
    assert gw1 is not None

    with pytest.raises(ActiveOrderExists):
        _order(populated, gw1.id, "THD1729407800001", port_no=1)

    with _reader(db_path) as sql:
        status = sql.execute("SELECT status FROM orders WHERE order_no='THD1729407600101'"
                             ).fetchone()
        new = sql.execute("SELECT COUNT(*) FROM orders WHERE order_no='THD1729407800001'"
                          ).fetchone()
    assert (("charging",), (0,)) == (status, new)


# --- commands ------------------------------------------------------------------------------

def _command(device_id: int, at: int, kind: str = "start", ttl: int = 300) -> NewCommand:
    return NewCommand(device_id=device_id, phy_id=GW1, kind=kind,
                      payload={"port_no": 1, "order_no": "THD1729407600001"},
                      created_at=at, expires_at=at + ttl, order_no="THD1729407600001")


def test_command_life(db: Database) -> None:
    device_id = _device(db)
    first = db.insert_command(_command(device_id, T0))
    second = db.insert_command(_command(device_id, T0 + 1, "stop"))

    queued = db.queued_commands(device_id, T0 + 2)
    sent = db.mark_command_sent(first.id, T0 + 2, msg_id=12345)
    resent = db.mark_command_sent(first.id, T0 + 12)
    in_flight = db.queued_commands(device_id, T0 + 13, include_sent=True)
    still_queued = db.queued_commands(device_id, T0 + 13)
    acked = db.finish_command(first.id, CommandStatus.ACKED, T0 + 14, result={"ok": True})
    late = db.finish_command(first.id, CommandStatus.FAILED, T0 + 15, reason="timeout")

    record = db.get_command(first.id)
    assert [first.id, second.id] == [c.id for c in queued]
    assert (True, True, True, False) == (sent, resent, acked, late)
    assert [first.id, second.id] == [c.id for c in in_flight]
    assert [second.id] == [c.id for c in still_queued]
    assert record is not None
    assert (CommandStatus.ACKED, 12345, 2, T0 + 12, T0 + 14, '{"ok":true}') == (
        record.status, record.msg_id, record.attempts, record.sent_at, record.finished_at,
        record.result_json)
    assert {"order_no": "THD1729407600001", "port_no": 1} == record.payload()
    assert not db.mark_command_sent(first.id, T0 + 20)
    with pytest.raises(ValueError):
        db.finish_command(second.id, CommandStatus.SENT, T0)


def test_a_commands_message_id_is_recorded_when_it_is_written(db: Database) -> None:
    device_id = _device(db)
    first = db.insert_command(_command(device_id, T0))
    second = db.insert_command(_command(device_id, T0 + 1, "stop"))
    db.mark_command_sent(first.id, T0 + 2)  # handed over, held behind another: no id yet

    db.set_command_msg_ids({first.id: 7, second.id: 8})
    db.mark_command_sent(first.id, T0 + 3)  # a later send without an id keeps it

    assert [7, 8] == [record.msg_id for record in (db.get_command(first.id),
                                                   db.get_command(second.id))
                      if record is not None]


def test_commands_expire_after_their_ttl(db: Database) -> None:
    device_id = _device(db)
    old = db.insert_command(_command(device_id, T0, ttl=300))
    young = db.insert_command(_command(device_id, T0 + 100, ttl=300))
    in_flight = db.insert_command(_command(device_id, T0, ttl=300))
    db.mark_command_sent(in_flight.id, T0 + 1)

    not_yet = db.queued_commands(device_id, T0 + 300)
    expired = db.expire_commands(T0 + 300)

    assert [young.id] == [c.id for c in not_yet]
    assert [(old.id, CommandStatus.EXPIRED, "command_ttl")] == [
        (c.id, c.status, c.reason) for c in expired]
    assert [] == db.expire_commands(T0 + 300)
    assert CommandStatus.SENT == db.get_command(in_flight.id).status  # type: ignore[union-attr]


# --- the frame log -------------------------------------------------------------------------

def test_cmd_log_is_bounded(db: Database) -> None:
    device_id = _device(db)
    db.append_cmd_logs([CmdLogEntry(direction=Direction.UP, cmd="0x0000", hex=f"{i:04x}",
                                    created_at=T0 + i, device_id=device_id, phy_id=GW1)
                        for i in range(20)])
    db.append_cmd_log(CmdLogEntry(direction=Direction.UP, cmd="0x0000", hex="00",
                                  created_at=T0 + 20))  # before the device is known
    db.append_cmd_logs([])

    by_age = db.prune_cmd_logs(older_than=T0 + 5)
    by_count = db.prune_cmd_logs(older_than=T0, max_rows=10)
    newest = db.list_cmd_logs(phy_id=GW1, limit=3)

    assert (5, 6) == (by_age, by_count)
    assert 10 == db.statistics().cmd_logs
    assert [T0 + 19, T0 + 18, T0 + 17] == [r.created_at for r in newest]
    assert Direction.UP == newest[0].direction
    assert 0 == db.prune_cmd_logs(older_than=T0, max_rows=10)


# --- the outbox and webhook deliveries -----------------------------------------------------

def test_outbox_append_is_idempotent_and_ordered(db: Database) -> None:
    session = [_event(f"THD1729407600001-{n}", at=T0 + n) for n in range(1, 6)]

    seqs = [db.append_event(e, deliver=True) for e in session]
    replayed = [db.append_event(e, deliver=True) for e in session]  # e.g. after a crash

    events = db.list_events(after=0, limit=500)
    assert [None] * 5 == replayed
    assert seqs == [e.seq for e in events]
    assert all(a.seq < b.seq for a, b in itertools.pairwise(events))
    assert [e.event_id for e in session] == [e.event_id for e in events]
    assert {"id": "THD1729407600001-1"} == events[0].data()
    assert 5 == db.statistics().deliveries_pending
    assert events[2:] == db.list_events(after=events[1].seq)
    assert events[:2] == db.list_events(limit=2)
    assert [] == db.list_events(after=events[-1].seq)


def test_json_columns_hold_objects() -> None:
    with pytest.raises(ValueError):
        load_json_object("[1, 2]")

    assert '{"a":"é","b":1}' == dump_json({"b": 1, "a": "é"})


def test_outbox_without_webhook_records_only(db: Database) -> None:
    seq = db.append_event(_event("e1"), deliver=False)

    assert seq is not None
    assert db.get_event_by_seq(seq) == db.get_event("e1")
    assert db.get_delivery(seq) is None
    assert [] == db.claim_due_deliveries(T0 + 100)


def test_order_event_count(db: Database) -> None:
    for n in range(1, 4):
        db.append_event(NewEvent(event_id=f"THD1729407600001-{n}", event_type="x", data={},
                                 created_at=T0, order_no="THD1729407600001"), deliver=False)

    assert (3, 0) == (db.order_event_count("THD1729407600001"),
                      db.order_event_count("THD0000000000000"))


def test_deliveries_keep_each_devices_order(db: Database) -> None:
    a1 = db.append_event(_event("a1", GW1), deliver=True)
    a2 = db.append_event(_event("a2", GW1), deliver=True)
    b1 = db.append_event(_event("b1", GW2), deliver=True)
    c1 = db.append_event(_event("card-1", None), deliver=True)
    c2 = db.append_event(_event("card-2", None), deliver=True)

    first = db.claim_due_deliveries(T0, lease=60)
    leased = db.claim_due_deliveries(T0 + 1)
    assert a1 is not None and a2 is not None and b1 is not None
    db.mark_delivery_failed(a1, error="HTTP 500", retry_at=T0 + 2)
    db.mark_delivered(b1, T0 + 1, latency_ms=120)
    retry_too_early = db.claim_due_deliveries(T0 + 1)
    retry = db.claim_due_deliveries(T0 + 2)
    db.mark_delivered(a1, T0 + 2, latency_ms=80)
    after_a1 = db.claim_due_deliveries(T0 + 2)

    assert [a1, b1, c1, c2] == [d.event.seq for d in first]
    assert [] == leased
    assert [] == retry_too_early
    assert [a1] == [d.event.seq for d in retry]
    assert (1, "HTTP 500") == (retry[0].attempts, retry[0].last_error)
    assert [a2] == [d.event.seq for d in after_a1]
    delivered = db.get_delivery(a1)
    assert delivered is not None
    assert (DeliveryStatus.DELIVERED, 2, T0 + 2, 80, None) == (
        delivered.status, delivered.attempts, delivered.delivered_at, delivered.latency_ms,
        delivered.last_error)


def test_heartbeat_samples_yield_to_other_devices_events_but_not_within_a_device(
        db: Database) -> None:
    gw3 = "82210225000999"
    samples = [db.append_event(_event(f"hb-{phy_id}", phy_id), deliver=True)
               for phy_id in (GW1, GW2, gw3)]
    started = db.append_event(_event("started", gw3, event_type="charging.started"),
                              deliver=True)
    later_sample = db.append_event(_event("hb-again", GW2), deliver=True)

    first = db.claim_due_deliveries(T0, limit=1)
    second = db.claim_due_deliveries(T0, limit=1)
    rest = db.claim_due_deliveries(T0, limit=10)

    # gw3's sample goes first, as its order event waits behind it; then the samples
    # of the others, oldest first, one per device.
    assert [samples[2]] == [d.event.seq for d in first]
    assert [samples[0]] == [d.event.seq for d in second]
    assert [samples[1]] == [d.event.seq for d in rest]
    assert started is not None and later_sample is not None


def test_dead_letters_unblock_and_redelivery(db: Database) -> None:
    first = db.append_event(_event("a1"), deliver=True)
    second = db.append_event(_event("a2"), deliver=True)
    assert first is not None and second is not None
    db.claim_due_deliveries(T0)

    dead = db.mark_delivery_dead(first, error="timeout")
    dead_again = db.mark_delivery_dead(first, error="timeout")
    dead_count = db.statistics().deliveries_dead
    next_up = db.claim_due_deliveries(T0 + 61)
    redelivered = db.redeliver("a1", T0 + 100)
    unknown = db.redeliver("nope", T0 + 100)

    record = db.get_delivery(first)
    assert (True, False, True, False) == (dead, dead_again, redelivered, unknown)
    assert 1 == dead_count
    assert [second] == [d.event.seq for d in next_up]
    assert record is not None
    assert (DeliveryStatus.PENDING, 0, T0 + 100, None) == (
        record.status, record.attempts, record.next_attempt_at, record.last_error)
    assert 0 == db.statistics().deliveries_dead


def test_expired_lease_is_claimed_again(db: Database) -> None:
    seq = db.append_event(_event("a1"), deliver=True)

    db.claim_due_deliveries(T0, lease=30)
    during = db.claim_due_deliveries(T0 + 29)
    after = db.claim_due_deliveries(T0 + 30)

    assert ([], [seq]) == (during, [d.event.seq for d in after])


def test_released_claims_are_due_at_once(db: Database) -> None:
    seq = db.append_event(_event("a1"), deliver=True)
    db.claim_due_deliveries(T0, lease=30)

    released = db.release_delivery_claims(T0 + 1)
    [again] = db.claim_due_deliveries(T0 + 1)

    assert (1, seq) == (released, again.event.seq)


def test_retention_prunes_delivered_history_only(db: Database) -> None:
    delivered = db.append_event(_event("old-delivered", at=T0), deliver=True)
    assert delivered is not None
    db.claim_due_deliveries(T0)
    db.mark_delivered(delivered, T0, latency_ms=3)
    db.append_event(_event("old-pending", GW2, at=T0), deliver=True)
    db.append_event(_event("new", at=T0 + 100), deliver=False)
    db.append_cmd_log_rows([(None, GW1, "UP", "old", None, "00", T0),
                            (None, GW1, "UP", "new", None, "00", T0 + 100)])

    deleted = db.prune_retained(before=T0 + 50, batch=10)

    assert 2 == deleted
    assert ["old-pending", "new"] == [e.event_id for e in db.list_events()]
    assert ["new"] == [r.cmd for r in db.list_cmd_logs()]
    assert 0 == db.prune_retained(before=T0 + 50, batch=10)


def test_settle_and_claim_marks_first_so_the_device_s_next_event_is_claimed(
        db: Database) -> None:
    first = db.append_event(_event("a1"), deliver=True)
    second = db.append_event(_event("a2"), deliver=True)  # same device: waits for a1
    [claimed] = db.claim_due_deliveries(T0)
    assert first == claimed.event.seq

    nothing_marked = db.settle_and_claim([], T0 + 1, limit=5)
    assert first is not None
    after_mark = db.settle_and_claim([(first, T0 + 1, 250)], T0 + 1, limit=5)
    only_mark = db.settle_and_claim([(first, T0 + 2, 9)], T0 + 2, limit=0)

    record = db.get_delivery(first)
    assert ([], [second], []) == (nothing_marked, [d.event.seq for d in after_mark], only_mark)
    assert record is not None
    assert (DeliveryStatus.DELIVERED, T0 + 1, 250) == (record.status, record.delivered_at,
                                                       record.latency_ms)


# --- cards ---------------------------------------------------------------------------------

def test_card_registry(db: Database) -> None:
    created = db.create_card("1234567890", T0, balance_cents=500, charge_mode=ChargeMode.TIME,
                             duration=3600, key_name="ops")
    with pytest.raises(CardExists):
        db.create_card("1234567890", T0 + 5, balance_cents=700)
    topped = db.top_up_card("1234567890", 300, T0 + 6, key_name="ops", reason="receipt 7")
    blocked = db.set_card_status("1234567890", CardStatus.BLOCKED, T0 + 7)

    assert (500, 0, 500, CardStatus.ACTIVE, ChargeMode.TIME, 3600) == (
        created.balance_cents, created.held_cents, created.available_cents, created.status,
        created.charge_mode, created.duration)
    assert topped is not None and 800 == topped.balance_cents
    assert blocked is not None and CardStatus.BLOCKED == blocked.status
    assert [(LedgerKind.TOPUP, 500, "ops", "opening balance"),
            (LedgerKind.TOPUP, 300, "ops", "receipt 7")] == [
        (e.kind, e.amount_cents, e.key_name, e.reason)
        for e in db.list_card_ledger("1234567890").items]
    assert db.get_card("nope") is None
    assert db.top_up_card("nope", 1, T0) is None
    assert db.adjust_card("nope", 1, T0, reason="x") is None
    assert db.set_card_status("nope", CardStatus.ACTIVE, T0) is None
    assert db.settle_card_order("nope", "THD1", 1, T0) is None
    with pytest.raises(ValueError):
        db.create_card("x", T0, balance_cents=-1)
    with pytest.raises(ValueError):
        db.top_up_card("1234567890", 0, T0)
    with pytest.raises(ValueError):
        db.adjust_card("1234567890", 0, T0, reason="nothing")
    with pytest.raises(ValueError):
        db.adjust_card("1234567890", 5, T0, reason=" ")
    with pytest.raises(ValueError):
        db.hold_card("1234567890", "THD1", 0, T0)
    with pytest.raises(ValueError):
        db.settle_card_order("1234567890", "THD1", -1, T0)


def test_a_new_card_without_balance_has_an_empty_ledger(db: Database) -> None:
    card = db.create_card("c0", T0)

    assert (0, ()) == (card.balance_cents, db.list_card_ledger("c0").items)


def test_two_holds_never_reserve_the_same_cents(db: Database) -> None:
    # Issue 12, story 2 at the storage level: balance 500, two orders.
    db.create_card("c1", T0, balance_cents=500)

    first = db.hold_card("c1", "THD1", 500, T0)
    with pytest.raises(InsufficientFunds) as refused:
        db.hold_card("c1", "THD2", 500, T0)

    assert (500, 500, 0) == (first.balance_cents, first.held_cents, first.available_cents)
    assert ("THD2", 500, 0) == ("THD2", refused.value.requested_cents,
                                refused.value.available_cents)
    assert [LedgerKind.TOPUP, LedgerKind.HOLD] == [e.kind for e in
                                                   db.list_card_ledger("c1").items]


def test_settlement_debits_the_bill_from_the_hold_and_releases_the_rest(db: Database) -> None:
    db.create_card("c1", T0, balance_cents=1000)
    db.hold_card("c1", "THD1", 600, T0)
    db.hold_card("c1", "THD2", 400, T0)

    first = db.settle_card_order("c1", "THD1", 450, T0 + 1)
    again = db.settle_card_order("c1", "THD1", 450, T0 + 2)
    never_charged = db.settle_card_order("c1", "THD2", 0, T0 + 3)
    card = db.get_card("c1")

    assert first == CardSettlement(billed_cents=450, held_cents=600, debited_cents=450,
                                   released_cents=150, shortfall_cents=0)
    assert again is not None and again.already_settled and 0 == again.debited_cents
    assert never_charged == CardSettlement(billed_cents=0, held_cents=400, debited_cents=0,
                                           released_cents=400, shortfall_cents=0)
    assert card is not None and (550, 0) == (card.balance_cents, card.held_cents)
    assert [("topup", 1000, None), ("hold", 600, "THD1"), ("hold", 400, "THD2"),
            ("debit", 450, "THD1"), ("release", 150, "THD1"), ("release", 400, "THD2")] == [
        (e.kind.value, e.amount_cents, e.order_no) for e in db.list_card_ledger("c1").items]


def test_a_bill_beyond_the_hold_takes_what_is_available_and_reports_the_rest(
        db: Database) -> None:
    # An order from before holds existed: no hold, billed 700 on a card of 500.
    db.create_card("c1", T0, balance_cents=500)

    settled = db.settle_card_order("c1", "THD0", 700, T0)
    card = db.get_card("c1")

    assert settled == CardSettlement(billed_cents=700, held_cents=0, debited_cents=500,
                                     released_cents=0, shortfall_cents=200)
    assert card is not None and (0, 0) == (card.balance_cents, card.held_cents)


def test_adjustments_never_take_held_cents(db: Database) -> None:
    db.create_card("c1", T0, balance_cents=500)
    db.hold_card("c1", "THD1", 300, T0)

    down = db.adjust_card("c1", -200, T0 + 1, reason="refund of a duplicate top-up")
    with pytest.raises(InsufficientFunds) as refused:
        db.adjust_card("c1", -1, T0 + 2, reason="one cent more")
    up = db.adjust_card("c1", 50, T0 + 3, reason="goodwill")

    assert down is not None and (300, 300, 0) == (down.balance_cents, down.held_cents,
                                                  down.available_cents)
    assert (1, 0) == (refused.value.requested_cents, refused.value.available_cents)
    assert up is not None and 350 == up.balance_cents


def test_a_repeated_change_under_one_idempotency_key_counts_once(db: Database) -> None:
    db.create_card("c1", T0)

    first = db.top_up_card("c1", 500, T0, key_name="ops", idem_key="k1")
    repeat = db.top_up_card("c1", 500, T0 + 1, key_name="ops", idem_key="k1")
    other_key = db.top_up_card("c1", 500, T0 + 2, key_name="crm", idem_key="k1")
    adjusted = db.adjust_card("c1", -100, T0 + 3, reason="fix", key_name="ops", idem_key="k2")
    adjusted_again = db.adjust_card("c1", -100, T0 + 4, reason="fix", key_name="ops",
                                    idem_key="k2")

    assert [500, 500, 1000, 900, 900] == [
        c.balance_cents if c else None
        for c in (first, repeat, other_key, adjusted, adjusted_again)]
    assert 3 == len(db.list_card_ledger("c1").items)


@sqlite_only
def test_the_ledger_is_append_only_and_pages(db_path: Path, db: Database) -> None:
    db.create_card("c1", T0, balance_cents=1)
    for i in range(4):
        db.top_up_card("c1", 10 + i, T0 + i)

    first = db.list_card_ledger("c1", limit=2)
    second = db.list_card_ledger("c1", limit=2, cursor=first.next_cursor)
    third = db.list_card_ledger("c1", limit=2, cursor=second.next_cursor)

    assert [1, 10, 11, 12, 13] == [e.amount_cents for e in
                                   (*first.items, *second.items, *third.items)]
    assert third.next_cursor is None
    with pytest.raises(InvalidPage):
        db.list_card_ledger("c1", cursor=encode_cursor("orders", 1))
    with _reader(db_path) as sql:
        for statement in ("UPDATE card_ledger SET amount_cents = 1000",
                          "DELETE FROM card_ledger"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                sql.execute(statement)
        with pytest.raises(sqlite3.IntegrityError):
            sql.execute("UPDATE cards SET held_cents = -1 WHERE card_no = 'c1'")


def test_the_ledger_migration_opens_each_balance_with_an_entry(db_path: Path) -> None:
    ledger = next(m.version for m in MIGRATIONS if m.name.startswith("cards as a ledger"))
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, tuple(m for m in MIGRATIONS if m.version < ledger))
    conn.execute("INSERT INTO cards (card_no, balance_cents, created_at, updated_at) "
                 "VALUES ('a', 700, 1, 1), ('b', 0, 1, 1)")
    conn.close()

    db = Database.open(db_path)
    card = db.get_card("a")
    entries = db.list_card_ledger("a").items
    empty = db.list_card_ledger("b").items
    db.close()

    assert card is not None and (700, 0, 700) == (card.balance_cents, card.held_cents,
                                                  card.available_cents)
    assert [(LedgerKind.ADJUST, 700, "opening balance")] == [
        (e.kind, e.amount_cents, e.reason) for e in entries]
    assert () == empty


# --- API bookkeeping -----------------------------------------------------------------------

def test_nonce_replay_is_detected(db: Database) -> None:
    fresh = db.check_nonce("platform", "n-1", T0, ttl=600)
    replay = db.check_nonce("platform", "n-1", T0 + 599, ttl=600)
    other_key = db.check_nonce("other", "n-1", T0 + 1, ttl=600)
    after_window = db.check_nonce("platform", "n-1", T0 + 600, ttl=600)
    replay_again = db.check_nonce("platform", "n-1", T0 + 601, ttl=600)
    pruned = db.prune_nonces(T0 + 2000, ttl=600)

    assert (True, False, True, True, False) == (fresh, replay, other_key, after_window,
                                                replay_again)
    assert 2 == pruned


def test_idempotency_first_answer_wins(db: Database) -> None:
    day = 86400
    missing = db.get_idempotency("platform", "idem-1", T0, ttl=day)
    first = db.put_idempotency("platform", "idem-1", T0, ttl=day, status_code=200,
                               response_json='{"order_no":"A"}', request_hash="h1")
    second = db.put_idempotency("platform", "idem-1", T0 + 5, ttl=day, status_code=200,
                                response_json='{"order_no":"B"}', request_hash="h1")
    repeat = db.get_idempotency("platform", "idem-1", T0 + day - 1, ttl=day)
    stale = db.get_idempotency("platform", "idem-1", T0 + day, ttl=day)
    renewed = db.put_idempotency("platform", "idem-1", T0 + day, ttl=day, status_code=409,
                                 response_json='{"order_no":"C"}')
    pruned = db.prune_idempotency(T0 + 3 * day, ttl=day)

    assert missing is None
    assert first == second == repeat
    assert '{"order_no":"A"}' == first.response_json
    assert stale is None
    assert (409, '{"order_no":"C"}', None) == (renewed.status_code, renewed.response_json,
                                               renewed.request_hash)
    assert 1 == pruned


def test_generated_api_key_is_stored_once(db_path: Path) -> None:
    database = Database.open(db_path)
    key, created = database.ensure_setting(GENERATED_API_KEY_SETTING, generate_api_key())
    database.close()
    database = Database.open(db_path)
    again, created_again = database.ensure_setting(GENERATED_API_KEY_SETTING,
                                                   generate_api_key())
    database.put_setting("other", "1")
    database.put_setting("other", "2")

    assert (key, True, False) == (again, created, created_again)
    assert ("2", None) == (database.get_setting("other"), database.get_setting("absent"))
    database.close()


def test_statistics(populated: Database) -> None:
    stats = populated.statistics()

    assert (2, 2, 5, 0, 0, 2, LATEST_VERSION) == (
        stats.devices, stats.devices_online, stats.open_orders, stats.commands_queued,
        stats.last_event_seq, stats.cmd_logs, stats.schema_version)
    assert stats.file_bytes > 0


# --- AsyncDatabase -------------------------------------------------------------------------

_NOT_MIRRORED = {"open", "close", "transaction", "closed", "path"}


def test_every_database_method_has_an_async_twin() -> None:
    names = [n for n, v in vars(Database).items()
             if not n.startswith("_") and n not in _NOT_MIRRORED and callable(v)]

    for name in names:
        twin = getattr(AsyncDatabase, name, None)
        assert twin is not None, name
        assert inspect.iscoroutinefunction(twin), name
        assert inspect.signature(getattr(Database, name)) == inspect.signature(twin), name
    assert len(names) > 40


def test_every_async_twin_calls_its_method_with_its_arguments() -> None:
    source = textwrap.dedent(inspect.getsource(AsyncDatabase))
    tree = ast.parse(source).body[0]
    assert isinstance(tree, ast.ClassDef)
    twins = [f for f in tree.body if isinstance(f, ast.AsyncFunctionDef)
             and hasattr(Database, f.name) and f.name not in _NOT_MIRRORED]

    for twin in twins:
        call = twin.body[-1]
        assert isinstance(call, ast.Return) and isinstance(call.value, ast.Await), twin.name
        run = call.value.value
        assert isinstance(run, ast.Call) and "self.run" == ast.unparse(run.func), twin.name
        positional = [a.arg for a in twin.args.args[1:]]
        keywords = [a.arg for a in twin.args.kwonlyargs]
        assert [f"Database.{twin.name}", *positional] == [ast.unparse(a) for a in run.args]
        assert [(k, k) for k in keywords] == [(k.arg, ast.unparse(k.value))
                                              for k in run.keywords], twin.name
    assert len(twins) > 40


@pytest.mark.trio
async def test_async_database_runs_in_one_worker_thread(db_target: str | Path) -> None:
    main_thread = threading.get_ident()
    async with await AsyncDatabase.open(db_target) as adb:
        device, created = await adb.upsert_device(GW1, ProtocolFamily.BKV, T0)
        def thread_id(_db: Database) -> int:
            return threading.get_ident()

        thread = await adb.run(thread_id)

        assert created
        assert device == await adb.get_device(GW1)
        assert main_thread != thread
        assert LATEST_VERSION == await adb.schema_version()
        assert str(db_target) == adb.path


@pytest.mark.trio
async def test_async_concurrent_writers_are_serialised(db_target: str | Path) -> None:
    async with await AsyncDatabase.open(db_target) as adb:
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(adb.upsert_device, f"{i:014d}", ProtocolFamily.BKV, T0 + i)

        page = await adb.list_devices(limit=500)
        touched = await adb.touch_devices([DeviceTouch(phy_id=d.phy_id, seen_at=T0 + 100)
                                           for d in page.items])

    assert 50 == len(page.items)
    assert 50 == touched


@pytest.mark.trio
async def test_async_atomic_state_change(db_target: str | Path) -> None:
    async with await AsyncDatabase.open(db_target) as adb:
        device, _ = await adb.upsert_device(GW1, ProtocolFamily.BKV, T0)
        order_no = await adb.allocate_order_no(T0)

        def create(db: Database, port_no: int) -> OrderRecord:
            order = db.insert_order(NewOrder(order_no=order_no, device_id=device.id,
                                             port_no=port_no, charge_mode=ChargeMode.TIME,
                                             created_at=T0))
            db.append_event(NewEvent(event_id=f"{order_no}-1", event_type="order.created",
                                     data={"order_no": order_no}, created_at=T0,
                                     device_phy_id=GW1, order_no=order_no), deliver=True)
            return order

        def create_then_fail(db: Database) -> None:
            db.insert_order(NewOrder(order_no=format_order_no(T0, 7), device_id=device.id,
                                     port_no=2, charge_mode=ChargeMode.TIME, created_at=T0))
            raise RuntimeError("rejected before commit")

        order = await adb.atomic(create, 1)
        with pytest.raises(RuntimeError):
            await adb.atomic(create_then_fail)

        assert order == await adb.get_order(order_no)
        assert 1 == await adb.order_event_count(order_no)
        assert await adb.get_order(format_order_no(T0, 7)) is None
        assert [order_no] == [d.event.order_no for d in await adb.claim_due_deliveries(T0)]


@pytest.mark.trio
async def test_async_calls_queued_meanwhile_run_together_in_order(
        db_target: str | Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import reference_server.storage._async as async_module
    trips: list[int] = []
    execute = async_module._execute

    def counting_execute(batch: list[async_module._Call[object]]) -> None:
        trips.append(len(batch))
        execute(batch)

    monkeypatch.setattr(async_module, "_execute", counting_execute)
    issued: list[int] = []
    ran: list[int] = []
    results: dict[int, int] = {}

    def record(_db: Database, i: int) -> int:
        ran.append(i)
        if i == 7:
            raise ValueError("seven")
        return i * i

    async def call(i: int) -> None:
        try:
            issued.append(i)  # no checkpoint before the call is queued
            results[i] = await adb.run(record, i)
        except ValueError:
            results[i] = -1

    async with await AsyncDatabase.open(db_target) as adb:
        trips.clear()
        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(call, i)
        batches = list(trips)

    assert issued == ran
    assert {i: (-1 if i == 7 else i * i) for i in range(40)} == results
    assert 40 == sum(batches) and len(batches) < 10


@pytest.mark.trio
async def test_async_call_cancelled_before_it_starts_never_runs(db_target: str | Path) -> None:
    release = threading.Event()
    ran: list[str] = []

    def blocking(_db: Database) -> None:
        release.wait(5)
        ran.append("blocking")

    def queued(_db: Database) -> None:
        ran.append("queued")

    async with await AsyncDatabase.open(db_target) as adb:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(adb.run, blocking)
            await trio.testing.wait_all_tasks_blocked()
            with trio.move_on_after(0.05) as waited:
                await adb.run(queued)
            release.set()
        await adb.run(lambda _db: ran.append("after"))

    assert waited.cancelled_caught
    assert ["blocking", "after"] == ran


@pytest.mark.trio
async def test_async_call_cancelled_while_running_still_completes(db_target: str | Path) -> None:
    release = threading.Event()
    ran: list[str] = []

    def blocking(_db: Database) -> None:
        release.wait(5)
        ran.append("blocking")

    async def release_later() -> None:
        await trio.sleep(0.2)
        release.set()

    async with await AsyncDatabase.open(db_target) as adb:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(release_later)
            started = trio.current_time()
            with trio.move_on_after(0.05) as waited:
                await adb.run(blocking)
                ran.append("returned")  # the call finished although the scope expired
                await trio.sleep(1)
                ran.append("slept")
            finished = trio.current_time()

    assert waited.cancelled_caught
    assert ["blocking", "returned"] == ran
    assert finished - started >= 0.2
