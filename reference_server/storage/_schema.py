# The database schema (api.md §8) as an ordered list of migrations, and the code
# that brings a database up to date when the server starts.
#
# A migration is (version, name, SQL script); versions count up from 1 without gaps
# and a published migration is never edited, only followed by a new one. migrate()
# runs in one BEGIN IMMEDIATE transaction: it reads the highest version recorded in
# schema_migrations, runs every later script statement by statement, records each
# version and sets PRAGMA user_version to the result, then commits. So a second
# server starting at the same time waits for the first and then finds nothing to do,
# a failure leaves the database as it was, and re-running is a no-op. A database
# with a version newer than the code is refused (SchemaTooNew) rather than used.
#
# Units (api.md §3): integers only, enforced by STRICT tables (SQLite ≥ 3.37), so a
# float where an integer unit belongs is refused. Money in cents, energy in 0.01 kWh,
# power in 0.1 W (except ports.power_w: whole W, as the plan's SQL uses it), voltage
# 0.1 V, current mA, durations in seconds, times in Unix seconds (UTC). Column names
# are the plan's (§5.6, §5.8, TC001, TC005), so its diagnostic SQL runs unchanged
# apart from PostgreSQL's NOW()/INTERVAL syntax.
from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from ._errors import SchemaTooNew

__all__ = ["LATEST_VERSION", "MIGRATIONS", "Migration", "migrate", "schema_version",
           "split_statements"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: applied once, in version order, never edited once published."""

    version: int
    name: str
    sql: str


_V1 = """
CREATE TABLE devices (
    id           INTEGER PRIMARY KEY,
    phy_id       TEXT    NOT NULL UNIQUE,
    protocol     TEXT    NOT NULL CHECK (protocol IN ('bkv', 'ap3000')),
    last_seen_at INTEGER,
    remote_addr  TEXT,
    firmware     TEXT,
    iccid        TEXT,
    rssi         INTEGER,
    online       INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX devices_online_seen ON devices (online, last_seen_at);

CREATE TABLE ports (
    device_id   INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    socket_no   INTEGER NOT NULL DEFAULT 1 CHECK (socket_no >= 1),
    port_no     INTEGER NOT NULL CHECK (port_no >= 1),
    status      INTEGER NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2, 3)),
    power_w     INTEGER NOT NULL DEFAULT 0,
    voltage     INTEGER,
    fault_code  INTEGER NOT NULL DEFAULT 0,
    order_no    TEXT,
    business_no INTEGER,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (device_id, socket_no, port_no)
) STRICT, WITHOUT ROWID;

CREATE TABLE orders (
    id                     INTEGER PRIMARY KEY,
    order_no               TEXT    NOT NULL UNIQUE,
    device_id              INTEGER NOT NULL REFERENCES devices (id),
    socket_no              INTEGER NOT NULL DEFAULT 1,
    port_no                INTEGER NOT NULL,
    status                 TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN (
                               'pending', 'charging', 'stopping', 'completed', 'failed',
                               'cancelled', 'exception')),
    charge_mode            INTEGER NOT NULL,
    amount                 INTEGER,
    price_per_kwh          INTEGER NOT NULL DEFAULT 0,
    service_fee            INTEGER NOT NULL DEFAULT 0,
    duration_sec           INTEGER NOT NULL DEFAULT 0,
    requested_duration_sec INTEGER,
    requested_energy_wh    INTEGER,
    power_tiers_json       TEXT,
    total_kwh              INTEGER NOT NULL DEFAULT 0,
    current_power          INTEGER NOT NULL DEFAULT 0,
    peak_power             INTEGER NOT NULL DEFAULT 0,
    final_amount           INTEGER,
    refund_amount          INTEGER,
    energy_fee             INTEGER,
    service_fee_amount     INTEGER,
    device_amount          INTEGER,
    end_reason             INTEGER,
    end_reason_raw         INTEGER,
    business_no            INTEGER,
    card_no                TEXT,
    stop_reason            TEXT,
    start_time             INTEGER,
    end_time               INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
) STRICT;
-- One pending or charging order per charging point: two racing charge requests
-- cannot both win the port ('stopping' may overlap with a replacing order).
CREATE UNIQUE INDEX orders_one_open_per_port ON orders (device_id, socket_no, port_no)
    WHERE status IN ('pending', 'charging');
CREATE INDEX orders_device ON orders (device_id, id);
CREATE INDEX orders_status ON orders (status, created_at);
CREATE INDEX orders_created ON orders (created_at);
CREATE INDEX orders_business_no ON orders (device_id, business_no)
    WHERE business_no IS NOT NULL;

CREATE TABLE order_progress (
    id           INTEGER PRIMARY KEY,
    order_no     TEXT    NOT NULL REFERENCES orders (order_no) ON DELETE CASCADE,
    at           INTEGER NOT NULL,
    duration_sec INTEGER NOT NULL,
    total_kwh    INTEGER NOT NULL,
    power        INTEGER NOT NULL,
    voltage      INTEGER,
    current      INTEGER
) STRICT;
CREATE INDEX order_progress_order ON order_progress (order_no, id);

CREATE TABLE commands (
    id           TEXT    PRIMARY KEY,
    device_id    INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    phy_id       TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    payload_json TEXT    NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'queued' CHECK (status IN (
                     'queued', 'sent', 'acked', 'failed', 'expired')),
    reason       TEXT,
    result_json  TEXT,
    msg_id       INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0,
    order_no     TEXT,
    created_at   INTEGER NOT NULL,
    sent_at      INTEGER,
    finished_at  INTEGER,
    expires_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX commands_device_open ON commands (device_id, created_at)
    WHERE status IN ('queued', 'sent');
CREATE INDEX commands_queued_expiry ON commands (expires_at) WHERE status = 'queued';

CREATE TABLE cmd_logs (
    id         INTEGER PRIMARY KEY,
    device_id  INTEGER,
    phy_id     TEXT,
    direction  TEXT    NOT NULL CHECK (direction IN ('UP', 'DOWN')),
    cmd        TEXT    NOT NULL,
    msg_id     INTEGER,
    hex        TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX cmd_logs_created ON cmd_logs (created_at);
CREATE INDEX cmd_logs_phy_id ON cmd_logs (phy_id, id);

CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      TEXT    NOT NULL UNIQUE,
    event_type    TEXT    NOT NULL,
    device_phy_id TEXT,
    order_no      TEXT,
    payload_json  TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX events_order ON events (order_no) WHERE order_no IS NOT NULL;

CREATE TABLE webhook_deliveries (
    event_seq       INTEGER PRIMARY KEY REFERENCES events (seq) ON DELETE CASCADE,
    device_phy_id   TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    status          TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN (
                        'pending', 'delivered', 'dead')),
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at    INTEGER,
    latency_ms      INTEGER
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_device ON webhook_deliveries (device_phy_id, event_seq)
    WHERE status = 'pending';

CREATE TABLE cards (
    card_no       TEXT    PRIMARY KEY,
    balance_cents INTEGER NOT NULL DEFAULT 0 CHECK (balance_cents >= 0),
    status        TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked')),
    charge_mode   INTEGER,
    duration      INTEGER,
    energy_wh     INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE api_nonces (
    key_name TEXT    NOT NULL,
    nonce    TEXT    NOT NULL,
    seen_at  INTEGER NOT NULL,
    PRIMARY KEY (key_name, nonce)
) STRICT, WITHOUT ROWID;
CREATE INDEX api_nonces_seen ON api_nonces (seen_at);

CREATE TABLE idempotency (
    key_name      TEXT    NOT NULL,
    idem_key      TEXT    NOT NULL,
    status_code   INTEGER NOT NULL,
    response_json TEXT    NOT NULL,
    request_hash  TEXT,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (key_name, idem_key)
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency (created_at);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
"""

# The webhook worker claims the oldest due deliveries, one per device
# (storage/_sql.py CLAIM_DUE_DELIVERIES), routine ones (the sampled heartbeats) after
# every other: only per-device order is promised (api.md §6.4), and a burst of
# heartbeat samples from a fleet that connected together must not hold up another
# device's order events for seconds (bench/RESULTS.md, "sampling bursts").
# Without an index in claim order SQLite walked the whole table by rowid, delivered
# rows included: a claim cost grew with the delivery history (7 ms at 60,000
# delivered rows). With this one it reads the pending rows in order and stops.
_V2 = """
ALTER TABLE webhook_deliveries ADD COLUMN routine INTEGER NOT NULL DEFAULT 0
    CHECK (routine IN (0, 1));
UPDATE webhook_deliveries SET routine = 1
WHERE event_seq IN (SELECT seq FROM events WHERE event_type = 'device.heartbeat');
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (routine, event_seq)
    WHERE status = 'pending';
"""

# Cards as a ledger (api.md §11.1; issue 12, stories 2 and 9). card_ledger is the
# record of every change to a card's money, append-only (the triggers refuse UPDATE
# and DELETE): topup and adjust (signed) change the balance; a hold reserves an
# order's authorised amount at the swipe; at the order's end a debit takes the bill
# and a release frees the rest of its hold. So, per card,
#   balance = Σ topup + Σ adjust − Σ debit,   held = Σ hold − Σ release − Σ debit,
# and cards.balance_cents / held_cents are those sums, kept in the transaction that
# appends each entry so that authorising a swipe is one conditional UPDATE. The
# existing balances become an opening adjust entry. idem_key: the Idempotency-Key
# of the request that made a top-up or adjustment: a repeat of the same change
# under the same key of the same API key credits nothing, even if the stored
# answer of the first was lost (a crash between the two commits) or expired.
_V3 = """
ALTER TABLE cards ADD COLUMN held_cents INTEGER NOT NULL DEFAULT 0 CHECK (held_cents >= 0);
CREATE TABLE card_ledger (
    entry_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    card_no      TEXT    NOT NULL REFERENCES cards (card_no),
    kind         TEXT    NOT NULL CHECK (kind IN ('topup', 'hold', 'release', 'debit',
                                                  'adjust')),
    amount_cents INTEGER NOT NULL CHECK (kind = 'adjust' OR amount_cents > 0),
    order_no     TEXT,
    key_name     TEXT,
    reason       TEXT,
    idem_key     TEXT,
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX card_ledger_card ON card_ledger (card_no, entry_id);
CREATE INDEX card_ledger_order ON card_ledger (order_no) WHERE order_no IS NOT NULL;
CREATE INDEX card_ledger_idem ON card_ledger (card_no, key_name, idem_key)
    WHERE idem_key IS NOT NULL;
CREATE TRIGGER card_ledger_no_update BEFORE UPDATE ON card_ledger
BEGIN
    SELECT RAISE(ABORT, 'card_ledger is append-only');
END;
CREATE TRIGGER card_ledger_no_delete BEFORE DELETE ON card_ledger
BEGIN
    SELECT RAISE(ABORT, 'card_ledger is append-only');
END;
INSERT INTO card_ledger (card_no, kind, amount_cents, reason, created_at)
SELECT card_no, 'adjust', balance_cents, 'opening balance',
       CAST(strftime('%s', 'now') AS INTEGER)
FROM cards WHERE balance_cents <> 0 ORDER BY card_no;
"""

# Keys and audit (api.md §11.4): which API key created an order, queued a command or
# asked for a redelivery (NULL: the server or a device did); and the indexes that let
# retention pruning (retention_days) find old rows without walking the tables.
_V4 = """
ALTER TABLE orders ADD COLUMN key_name TEXT;
ALTER TABLE commands ADD COLUMN key_name TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN key_name TEXT;
CREATE INDEX events_created ON events (created_at);
CREATE INDEX order_progress_at ON order_progress (at);
"""

# Every order names the tariff that bills it (api.md §11.1): energy, time, tiers or
# flat, fixed at creation. Existing rows get a derived value: an ended order the
# tariff its bill followed before this version (energy with a price, time with a
# prepaid amount and a duration, else flat; tier prices were not billed then), an
# open order the tariff it will now be settled by.
_V5 = """
ALTER TABLE orders ADD COLUMN tariff TEXT NOT NULL DEFAULT 'flat'
    CHECK (tariff IN ('energy', 'time', 'tiers', 'flat'));
UPDATE orders SET tariff = CASE
    WHEN status IN ('pending', 'charging', 'stopping') AND charge_mode = 3 THEN 'tiers'
    WHEN price_per_kwh > 0 THEN 'energy'
    WHEN status IN ('pending', 'charging', 'stopping') THEN
        CASE WHEN charge_mode = 1 AND amount IS NOT NULL AND card_no IS NULL THEN 'time'
             ELSE 'flat' END
    WHEN amount IS NOT NULL AND requested_duration_sec > 0 THEN 'time'
    ELSE 'flat' END;
"""

# Device identity (api.md §11.2): which ids are provisioned (device_policy known)
# and the ICCID each device is bound to (iccid_binding pin). A table of its own, not
# columns of devices: a device can be provisioned before it ever connects (devices
# rows are created by connecting, with a protocol), and withdrawing provisioning
# must not touch the device's history. A device that already reported an ICCID is
# bound to the one it last reported.
_V6 = """
CREATE TABLE device_identities (
    phy_id       TEXT    PRIMARY KEY,
    provisioned  INTEGER NOT NULL DEFAULT 0 CHECK (provisioned IN (0, 1)),
    protocol     TEXT    CHECK (protocol IN ('bkv', 'ap3000')),
    bound_iccid  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
INSERT INTO device_identities (phy_id, provisioned, protocol, bound_iccid, created_at,
                               updated_at)
SELECT phy_id, 0, protocol, iccid, updated_at, updated_at FROM devices
WHERE iccid IS NOT NULL AND iccid != '';
"""

# Why a failed order failed, in the device's or the server's words (a refused start:
# the device's reason, e.g. port_busy). The contract's end reasons have no code for
# a refusal, so end_reason stays NULL for it and this column keeps the reason.
_V7 = """
ALTER TABLE orders ADD COLUMN end_detail TEXT;
"""

#: Every migration, in order. Append; never edit a published one.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _V1),
    Migration(2, "routine webhook deliveries after the others; claim index", _V2),
    Migration(3, "cards as a ledger: holds, debits, top-ups", _V3),
    Migration(4, "key_name on orders, commands and redeliveries; retention indexes", _V4),
    Migration(5, "orders.tariff: the tariff that bills each order", _V5),
    Migration(6, "device identities: provisioning and ICCID binding", _V6),
    Migration(7, "orders.end_detail: why a failed order failed", _V7),
)

#: The schema version this code writes.
LATEST_VERSION = MIGRATIONS[-1].version

_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
) STRICT"""
_SELECT_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
_INSERT_VERSION = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"
_TABLE_EXISTS = "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'"


def split_statements(script: str) -> list[str]:
    """Split an SQL script into single statements, each ending with ``;``.

    Semicolons inside strings, comments and trigger bodies do not split (the
    test is :func:`sqlite3.complete_statement`).

    Raises:
        ValueError: The script ends with an incomplete statement.
    """
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";")[:-1]:
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    rest = (buffer + script.rsplit(";", 1)[-1]).strip()
    if any(line.strip() and not line.strip().startswith("--") for line in rest.splitlines()):
        raise ValueError(f"incomplete SQL statement at the end of the script: {rest[:60]!r}")
    return statements


def schema_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied to *conn*'s database (0 for a new one)."""
    if conn.execute(_TABLE_EXISTS).fetchone() is None:
        return 0
    row = conn.execute(_SELECT_VERSION).fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection,
            migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Bring *conn*'s database up to the last of *migrations*, atomically.

    *conn* must be in autocommit mode (``isolation_level=None``) and outside a
    transaction.

    Returns:
        The versions applied now (empty when the database was up to date).

    Raises:
        SchemaTooNew: The database has a version this code does not know.
        sqlite3.Error: A migration failed; nothing of this call was kept.
    """
    latest = migrations[-1].version if migrations else 0
    applied: list[int] = []
    committed = False
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_CREATE_MIGRATIONS_TABLE)
        current = int(conn.execute(_SELECT_VERSION).fetchone()[0])
        if current > latest:
            raise SchemaTooNew(current, latest)
        for migration in migrations:
            if migration.version <= current:
                continue
            for statement in split_statements(migration.sql):
                conn.execute(statement)
            conn.execute(_INSERT_VERSION, (migration.version, migration.name, int(time.time())))
            applied.append(migration.version)
        # PRAGMA takes no parameters; the value is an int from the code, not input.
        conn.execute(f"PRAGMA user_version = {int(latest)}")
        conn.execute("COMMIT")
        committed = True
    finally:
        if not committed and conn.in_transaction:
            conn.execute("ROLLBACK")
    return applied
