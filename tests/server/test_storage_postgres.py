"""The PostgreSQL engine: statement translation, migrations, routine commits, error
mapping, and what keeps several servers sharing one database apart (delivery claims,
card holds)."""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from bkvcodec import ChargeMode, ProtocolFamily
from reference_server.storage import (
    LATEST_VERSION,
    MIGRATIONS,
    ActiveOrderExists,
    Database,
    DuplicateOrderNo,
    InsufficientFunds,
    NewEvent,
    NewOrder,
    SchemaTooNew,
    is_postgres_url,
)

T0 = 1729407600


def _psycopg():  # type: ignore[no-untyped-def]
    return pytest.importorskip("psycopg")


def _opened(url: str) -> closing[Database]:
    return closing(Database.open(url))


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    database = Database.open(postgres_url)
    yield database
    database.close()


# --- without a server ----------------------------------------------------------------------

def test_statements_are_translated_for_psycopg_once() -> None:
    _psycopg()
    from reference_server.storage._postgres import translate

    assert "SELECT a FROM t WHERE b = %s AND c = %s" == translate(
        "SELECT a FROM t WHERE b = ? AND c = ?")
    assert "UPDATE t SET a = %(a)s WHERE b = %(b_1)s" == translate(
        "UPDATE t SET a = :a WHERE b = :b_1")
    # Quoted text, comments and casts are left alone; a literal % is doubled.
    assert ("SELECT '?:x', \"a?\", x::text, 'a%%' -- ? :y\nFROM t WHERE a LIKE 'b%%' "
            "AND c = %s") == translate(
        "SELECT '?:x', \"a?\", x::text, 'a%' -- ? :y\nFROM t WHERE a LIKE 'b%' AND c = ?")
    assert "UPDATE t SET a = 1" == translate("UPDATE t INDEXED BY t_index SET a = 1")
    assert translate("SELECT ?") is translate("SELECT ?")  # cached
    with pytest.raises(ValueError, match="mixed"):
        translate("SELECT ? WHERE a = :a")


def test_postgres_targets_are_urls() -> None:
    assert is_postgres_url("postgresql://u@h/db")
    assert is_postgres_url("postgres://u@h/db")
    assert not is_postgres_url("./data/iot.db")
    assert not is_postgres_url(Path("postgresql:/x"))


def test_the_url_shown_has_no_password() -> None:
    _psycopg()
    from reference_server.storage._postgres import redact_database_url

    assert "postgresql://bkv:***@db:5432/iot?sslmode=require" == redact_database_url(
        "postgresql://bkv:s3cret@db:5432/iot?sslmode=require")
    assert "postgresql://db/iot?user=bkv&password=***" == redact_database_url(
        "postgresql://db/iot?user=bkv&password=s3cret")
    assert "postgresql://bkv@db/iot" == redact_database_url("postgresql://bkv@db/iot")


def test_both_engines_have_the_same_migrations() -> None:
    _psycopg()
    from reference_server.storage._schema_pg import PG_MIGRATIONS

    assert [(m.version, m.name) for m in MIGRATIONS] == [
        (m.version, m.name) for m in PG_MIGRATIONS]


# --- migrations ----------------------------------------------------------------------------

def _tables(url: str) -> set[str]:
    psycopg = _psycopg()
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_an_empty_database_is_migrated_to_the_latest_version(postgres_url: str) -> None:
    assert set() == _tables(postgres_url)

    with _opened(postgres_url) as db:
        assert (LATEST_VERSION, "postgresql") == (db.schema_version(), db.engine)
        assert db.statistics().file_bytes > 0

    assert {"devices", "ports", "orders", "order_progress", "commands", "cmd_logs", "events",
            "webhook_deliveries", "cards", "card_ledger", "api_nonces", "idempotency",
            "settings", "device_identities", "schema_migrations",
            "schema_version"} == _tables(postgres_url)


def test_migrating_again_is_a_no_op(postgres_url: str) -> None:
    psycopg = _psycopg()
    from reference_server.storage._schema_pg import migrate_postgres

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert list(range(1, LATEST_VERSION + 1)) == migrate_postgres(conn)
        assert [] == migrate_postgres(conn)
        assert LATEST_VERSION == conn.execute(
            "SELECT count(*) FROM schema_migrations").fetchone()[0]
        assert [(LATEST_VERSION,)] == conn.execute(
            "SELECT version FROM schema_version").fetchall()


def test_servers_starting_together_migrate_once(postgres_url: str) -> None:
    psycopg = _psycopg()
    from reference_server.storage._schema_pg import migrate_postgres

    results: list[list[int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def migrate() -> None:
        try:
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                start.wait()
                results.append(migrate_postgres(conn))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [] == errors
    assert sorted(results) == [[], [], [], list(range(1, LATEST_VERSION + 1))]


def test_a_newer_database_is_refused(postgres_url: str) -> None:
    psycopg = _psycopg()
    Database.open(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (LATEST_VERSION + 1,))

    with pytest.raises(SchemaTooNew):
        Database.open(postgres_url)


def test_a_failing_migration_changes_nothing(postgres_url: str) -> None:
    psycopg = _psycopg()
    from reference_server.storage import Migration
    from reference_server.storage._schema_pg import PG_MIGRATIONS, migrate_postgres

    Database.open(postgres_url).close()
    bad = Migration(LATEST_VERSION + 1, "broken",
                    "CREATE TABLE extra (a BIGINT); SELECT no_such_column FROM extra;")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedColumn):
            migrate_postgres(conn, (*PG_MIGRATIONS, bad))
        assert [(LATEST_VERSION,)] == conn.execute(
            "SELECT version FROM schema_version").fetchall()
    assert "extra" not in _tables(postgres_url)


# --- transactions and errors ---------------------------------------------------------------

def _synchronous_commit(db: Database) -> str:
    return str(db._conn.execute("SHOW synchronous_commit").fetchone()[0])


def test_routine_transactions_do_not_wait_for_the_wal_flush(pg: Database) -> None:
    with pg.transaction(durable=False):
        assert "off" == _synchronous_commit(pg)
        pg.put_setting("a", "1")
    assert "on" == _synchronous_commit(pg)  # SET LOCAL ended with the transaction
    with pg.transaction():
        assert "on" == _synchronous_commit(pg)
        with pg.transaction(durable=False):  # decided by the outermost level
            assert "on" == _synchronous_commit(pg)
    assert "1" == pg.get_setting("a")


def _order(db: Database, order_no: str, port_no: int = 1) -> NewOrder:
    device, _ = db.upsert_device("82210225000520", ProtocolFamily.BKV, T0)
    return NewOrder(order_no=order_no, device_id=device.id, port_no=port_no,
                    charge_mode=ChargeMode.TIME, created_at=T0)


def test_constraint_violations_are_typed_and_leave_the_transaction_usable(
        pg: Database) -> None:
    with pg.transaction():
        pg.insert_order(_order(pg, "THD1729407600001"))
        with pytest.raises(DuplicateOrderNo):
            pg.insert_order(_order(pg, "THD1729407600001", port_no=2))
        with pytest.raises(ActiveOrderExists) as busy:
            pg.insert_order(_order(pg, "THD1729407600002"))
        assert "THD1729407600001" in str(busy.value)
        pg.insert_order(_order(pg, "THD1729407600003", port_no=2))

    assert ["THD1729407600003", "THD1729407600001"] == [
        o.order_no for o in pg.list_orders().items]


def test_the_ledger_is_append_only(pg: Database) -> None:
    psycopg = _psycopg()
    pg.create_card("c1", T0, balance_cents=100)
    for statement in ("UPDATE card_ledger SET amount_cents = 1000", "DELETE FROM card_ledger"):
        with pytest.raises(psycopg.IntegrityError, match="append-only"):
            pg._conn.execute(statement)
    with pytest.raises(psycopg.IntegrityError):
        pg._conn.execute("UPDATE cards SET held_cents = -1 WHERE card_no = 'c1'")


def test_a_dropped_connection_is_replaced_outside_a_transaction(
        postgres_url: str, pg: Database) -> None:
    psycopg = _psycopg()

    def drop() -> None:
        """What a restart of the database server does to the connection."""
        pid = pg._conn.raw.info.backend_pid  # type: ignore[attr-defined]
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))

    pg.put_setting("a", "1")

    drop()
    assert "1" == pg.get_setting("a")  # the read is repeated on a new connection
    drop()
    pg.put_setting("b", "2")  # so is the BEGIN
    assert "2" == pg.get_setting("b")

    with pytest.raises(psycopg.OperationalError), pg.transaction():
        pg.put_setting("c", "3")
        drop()
        pg.put_setting("d", "4")  # inside a transaction: it fails with it
    assert (None, None) == (pg.get_setting("c"), pg.get_setting("d"))


# --- several servers on one database -------------------------------------------------------

def _run_together(count: int, work: object) -> None:
    """Run work(index) in *count* threads started together; re-raise the first error."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            start.wait()
            work(index)  # type: ignore[operator]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]


def test_two_servers_claim_each_delivery_once_and_each_device_in_order(
        postgres_url: str) -> None:
    devices = ["D1", "D2", "D3", None]
    with _opened(postgres_url) as db:
        for i in range(240):
            device = devices[i % len(devices)]
            kind = "device.heartbeat" if i % 5 == 0 else "order.updated"
            db.append_event(NewEvent(event_id=f"e{i}", event_type=kind, device_phy_id=device,
                                     order_no=None, data={"i": i}, created_at=T0),
                            deliver=True)
    total = 240
    lock = threading.Lock()
    claimed: list[int] = []
    in_flight: dict[str, int] = {}  # device → its claimed, not yet delivered event
    last: dict[str, int] = {}
    done: set[int] = set()

    failed = threading.Event()  # the other worker stops at once

    def worker(index: int) -> None:
        try:
            deliver(index)
        except BaseException:
            failed.set()
            raise

    def deliver(index: int) -> None:
        rng = random.Random(index)
        deadline = time.monotonic() + 60
        with _opened(postgres_url) as db:
            delivered: list[tuple[int, int, int]] = []
            while time.monotonic() < deadline and not failed.is_set():
                batch = db.settle_and_claim(delivered, T0, limit=rng.randint(1, 4),
                                            lease=100_000)
                delivered = []
                with lock:
                    for delivery in batch:
                        seq, device = delivery.event.seq, delivery.event.device_phy_id
                        assert seq not in claimed, f"event {seq} claimed twice"
                        claimed.append(seq)
                        if device is not None:
                            assert device not in in_flight, (
                                f"{device}: {seq} claimed while {in_flight[device]} is out")
                            assert seq > last.get(device, 0), f"{device}: {seq} out of order"
                            in_flight[device] = seq
                            last[device] = seq
                    if len(done) == total:
                        return
                time.sleep(rng.random() / 1000)  # the POST
                with lock:
                    for delivery in batch:
                        # Out of flight before the database hears it: the check above
                        # can only be stricter than the database's view.
                        in_flight.pop(delivery.event.device_phy_id or "", None)
                        done.add(delivery.event.seq)
                delivered = [(d.event.seq, T0, 1) for d in batch]
                if not batch:
                    time.sleep(0.001)
            raise AssertionError(f"only {len(done)} of {total} delivered")

    _run_together(2, worker)

    assert total == len(claimed) == len(set(claimed))
    with _opened(postgres_url) as db:
        stats = db.statistics()
        # The last pass of each worker marks what it delivered last.
        assert stats.deliveries_pending <= 2


def test_holds_from_two_servers_never_take_the_same_cents(postgres_url: str) -> None:
    with _opened(postgres_url) as db:
        db.create_card("c1", T0, balance_cents=1000)
    held: list[int] = []

    def hold(index: int) -> None:
        with _opened(postgres_url) as db:
            for i in range(30):
                try:
                    db.hold_card("c1", f"o{index}-{i}", 10, T0)
                except InsufficientFunds:
                    continue
                held.append(10)

    _run_together(4, hold)

    with _opened(postgres_url) as db:
        card = db.get_card("c1")
        assert card is not None
        assert (1000, 1000, 0) == (card.balance_cents, card.held_cents, card.available_cents)
    assert 1000 == sum(held)
