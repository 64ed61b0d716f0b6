# Every SQL statement the storage layer runs, as module constants, plus pure
# functions for the few whose WHERE clause depends on which filters a list request
# uses. Keeping the text here (STYLE.md, "Server (trio)") means it can be read,
# grepped and EXPLAINed without running the server, and that _database.py holds
# only the Python side: parameters in, records out.
#
# Conventions: parameters are always bound (? or :name), never formatted in; the
# builders below only choose among fixed fragments. The text is the SQL both engines
# run: the PostgreSQL engine rewrites the placeholders for psycopg and drops SQLite's
# INDEXED BY hints (storage/_postgres.py); the one statement that must differ has a
# twin here, named for what it adds. So: no scalar MAX(a, b) (a CASE instead), and a
# column in an upsert's DO UPDATE is qualified with its table (PostgreSQL finds a
# bare name ambiguous there). Writes that must not apply
# twice carry their precondition in the WHERE clause (status = 'pending', balance
# ≥ amount, …), so the row count says whether they happened. Times are Unix seconds
# and arrive as parameters: no statement reads SQLite's clock.
from __future__ import annotations

__all__: list[str] = []  # internal to the storage package

# --- devices -------------------------------------------------------------------------------

DEVICE_COLUMNS = ("id, phy_id, protocol, last_seen_at, remote_addr, firmware, iccid, rssi, "
                  "online, created_at, updated_at")

SELECT_DEVICE_BY_PHY_ID = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE phy_id = ?"
SELECT_DEVICE_BY_ID = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?"

INSERT_DEVICE = """
INSERT INTO devices (phy_id, protocol, last_seen_at, remote_addr, firmware, iccid, rssi,
                     online, created_at, updated_at)
VALUES (:phy_id, :protocol, :now, :remote_addr, :firmware, :iccid, :rssi, 0, :now, :now)"""

# A registration frame: fields the frame did not carry keep their stored value.
UPDATE_DEVICE_REGISTERED = """
UPDATE devices SET protocol = :protocol,
                   last_seen_at = CASE WHEN last_seen_at > :now THEN last_seen_at
                                       ELSE :now END,
                   remote_addr = COALESCE(:remote_addr, remote_addr),
                   firmware = COALESCE(:firmware, firmware),
                   iccid = COALESCE(:iccid, iccid),
                   rssi = COALESCE(:rssi, rssi),
                   updated_at = :now
WHERE phy_id = :phy_id"""

# Device identities (api.md §11.2).
IDENTITY_COLUMNS = "phy_id, provisioned, protocol, bound_iccid, created_at, updated_at"
SELECT_IDENTITIES = f"SELECT {IDENTITY_COLUMNS} FROM device_identities ORDER BY phy_id"
SELECT_IDENTITY = f"SELECT {IDENTITY_COLUMNS} FROM device_identities WHERE phy_id = ?"
# Provisioning: given fields replace the stored ones (an ICCID given rebinds).
PROVISION_DEVICE = """
INSERT INTO device_identities (phy_id, provisioned, protocol, bound_iccid, created_at,
                               updated_at)
VALUES (:phy_id, 1, :protocol, :iccid, :now, :now)
ON CONFLICT (phy_id) DO UPDATE SET
    provisioned = 1, protocol = COALESCE(:protocol, device_identities.protocol),
    bound_iccid = COALESCE(:iccid, device_identities.bound_iccid), updated_at = :now"""
DELETE_IDENTITY = "DELETE FROM device_identities WHERE phy_id = ?"
# The first ICCID wins: a bound one is never replaced here.
BIND_ICCID = """
INSERT INTO device_identities (phy_id, provisioned, protocol, bound_iccid, created_at,
                               updated_at)
VALUES (:phy_id, 0, :protocol, :iccid, :now, :now)
ON CONFLICT (phy_id) DO UPDATE SET bound_iccid = :iccid, updated_at = :now
WHERE device_identities.bound_iccid IS NULL"""

# The heartbeat batch: last_seen_at only moves forwards, whatever order the batch has.
TOUCH_DEVICE = """
UPDATE devices SET last_seen_at = CASE WHEN last_seen_at > :seen_at THEN last_seen_at
                                       ELSE :seen_at END,
                   rssi = COALESCE(:rssi, rssi),
                   updated_at = CASE WHEN updated_at > :seen_at THEN updated_at
                                     ELSE :seen_at END
WHERE phy_id = :phy_id"""

SET_DEVICE_ONLINE = """
UPDATE devices SET online = :online, updated_at = :now
WHERE phy_id = :phy_id AND online != :online"""

SELECT_STALE_DEVICES = f"""
SELECT {DEVICE_COLUMNS} FROM devices
WHERE online = 1 AND protocol = ? AND (last_seen_at IS NULL OR last_seen_at < ?)
ORDER BY id"""

MARK_ALL_DEVICES_OFFLINE = "UPDATE devices SET online = 0, updated_at = ? WHERE online = 1 " \
                           "RETURNING phy_id"


def list_devices_sql(*, online: bool, protocol: bool, after: bool) -> str:
    """``GET /devices``: ascending id, filters as flagged, ``LIMIT`` last."""
    where = ["1 = 1"]
    if online:
        where.append("online = :online")
    if protocol:
        where.append("protocol = :protocol")
    if after:
        where.append("id > :after")
    return (f"SELECT {DEVICE_COLUMNS} FROM devices WHERE {' AND '.join(where)} "
            "ORDER BY id LIMIT :limit")


# --- ports ---------------------------------------------------------------------------------

PORT_COLUMNS = ("device_id, socket_no, port_no, status, power_w, voltage, fault_code, "
                "order_no, business_no, updated_at")

UPSERT_PORT = f"""
INSERT INTO ports ({PORT_COLUMNS})
VALUES (:device_id, :socket_no, :port_no, :status, :power_w, :voltage, :fault_code,
        :order_no, :business_no, :updated_at)
ON CONFLICT (device_id, socket_no, port_no) DO UPDATE SET
    status = excluded.status, power_w = excluded.power_w, voltage = excluded.voltage,
    fault_code = excluded.fault_code, order_no = excluded.order_no,
    business_no = excluded.business_no, updated_at = excluded.updated_at"""

SELECT_PORT = f"""
SELECT {PORT_COLUMNS} FROM ports WHERE device_id = ? AND socket_no = ? AND port_no = ?"""
SELECT_PORTS_OF_DEVICE = f"""
SELECT {PORT_COLUMNS} FROM ports WHERE device_id = ? ORDER BY socket_no, port_no"""

# --- orders --------------------------------------------------------------------------------

# Columns set once at creation; everything else is written by save_order.
_ORDER_MUTABLE = (
    "status", "charge_mode", "amount", "price_per_kwh", "service_fee", "duration_sec",
    "requested_duration_sec", "requested_energy_wh", "power_tiers_json", "total_kwh",
    "current_power", "peak_power", "final_amount", "refund_amount", "energy_fee",
    "service_fee_amount", "device_amount", "end_reason", "end_reason_raw", "end_detail",
    "business_no",
    "card_no", "stop_reason", "start_time", "end_time", "updated_at",
)
ORDER_COLUMNS = ("id, order_no, device_id, socket_no, port_no, created_at, key_name, tariff, "
                 + ", ".join(_ORDER_MUTABLE))

INSERT_ORDER = """
INSERT INTO orders (order_no, device_id, socket_no, port_no, status, charge_mode, amount,
                    price_per_kwh, service_fee, requested_duration_sec, requested_energy_wh,
                    power_tiers_json, card_no, business_no, created_at, updated_at, key_name,
                    tariff)
VALUES (:order_no, :device_id, :socket_no, :port_no, 'pending', :charge_mode, :amount,
        :price_per_kwh, :service_fee, :requested_duration_sec, :requested_energy_wh,
        :power_tiers_json, :card_no, :business_no, :created_at, :created_at, :key_name,
        :tariff)"""

SELECT_ORDER_BY_NO = f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_no = ?"

_OPEN = "('pending', 'charging', 'stopping')"

SELECT_OPEN_ORDER_FOR_PORT = f"""
SELECT {ORDER_COLUMNS} FROM orders
WHERE device_id = ? AND socket_no = ? AND port_no = ? AND status IN {_OPEN}
ORDER BY id DESC LIMIT 1"""

SELECT_ORDER_BY_BUSINESS_NO = f"""
SELECT {ORDER_COLUMNS} FROM orders WHERE device_id = ? AND business_no = ?
ORDER BY id DESC LIMIT 1"""

SELECT_OPEN_ORDERS = f"SELECT {ORDER_COLUMNS} FROM orders WHERE status IN {_OPEN} ORDER BY id"
SELECT_OPEN_ORDERS_OF_DEVICE = f"""
SELECT {ORDER_COLUMNS} FROM orders WHERE device_id = ? AND status IN {_OPEN} ORDER BY id"""
# Devices whose owner has timers to run: online, or with an open order.
SELECT_WATCHED_DEVICES = f"""
SELECT phy_id FROM devices WHERE online = 1
UNION
SELECT d.phy_id FROM orders o JOIN devices d ON d.id = o.device_id WHERE o.status IN {_OPEN}"""

# Numbers of one second share the prefix THD<10 digits>; the 3-digit tail counts up.
SELECT_MAX_ORDER_NO_BETWEEN = "SELECT MAX(order_no) FROM orders WHERE order_no BETWEEN ? AND ?"


def update_order_sql(*, expect_status: bool) -> str:
    """``save_order``: every mutable column, optionally only from a given status."""
    sets = ", ".join(f"{column} = :{column}" for column in _ORDER_MUTABLE)
    condition = " AND status = :expect_status" if expect_status else ""
    return f"UPDATE orders SET {sets} WHERE order_no = :order_no{condition}"


def list_orders_sql(*, device: bool, statuses: int, created_from: bool, created_to: bool,
                    after: bool) -> str:
    """``GET /orders``: newest first (descending id), filters as flagged.

    ``statuses`` is the number of ``:status<i>`` parameters (0 for no filter);
    ``created_from`` is inclusive, ``created_to`` exclusive.
    """
    where = ["1 = 1"]
    if device:
        where.append("device_id = (SELECT id FROM devices WHERE phy_id = :device_phy_id)")
    if statuses:
        names = ", ".join(f":status{i}" for i in range(statuses))
        where.append(f"status IN ({names})")
    if created_from:
        where.append("created_at >= :created_from")
    if created_to:
        where.append("created_at < :created_to")
    if after:
        where.append("id < :after")
    return (f"SELECT {ORDER_COLUMNS} FROM orders WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT :limit")


# --- progress ------------------------------------------------------------------------------

INSERT_PROGRESS = """
INSERT INTO order_progress (order_no, at, duration_sec, total_kwh, power, voltage, current)
VALUES (:order_no, :at, :duration_sec, :total_kwh, :power, :voltage, :current)"""

SELECT_PROGRESS = """
SELECT order_no, at, duration_sec, total_kwh, power, voltage, current
FROM order_progress WHERE order_no = ? ORDER BY id"""

# --- commands ------------------------------------------------------------------------------

COMMAND_COLUMNS = ("id, device_id, phy_id, kind, payload_json, status, reason, result_json, "
                   "msg_id, attempts, order_no, created_at, sent_at, finished_at, expires_at, "
                   "key_name")

INSERT_COMMAND = """
INSERT INTO commands (id, device_id, phy_id, kind, payload_json, status, order_no, created_at,
                      expires_at, key_name)
VALUES (:id, :device_id, :phy_id, :kind, :payload_json, 'queued', :order_no, :created_at,
        :expires_at, :key_name)"""

SELECT_COMMAND = f"SELECT {COMMAND_COLUMNS} FROM commands WHERE id = ?"

# Oldest first: the device's FIFO. Expired-but-not-yet-swept commands are left out.
SELECT_QUEUED_COMMANDS = f"""
SELECT {COMMAND_COLUMNS} FROM commands
WHERE device_id = ? AND status = 'queued' AND expires_at > ?
ORDER BY created_at, rowid"""
SELECT_OPEN_COMMANDS = f"""
SELECT {COMMAND_COLUMNS} FROM commands
WHERE device_id = ? AND (status = 'sent' OR (status = 'queued' AND expires_at > ?))
ORDER BY created_at, rowid"""

MARK_COMMAND_SENT = """
UPDATE commands SET status = 'sent', sent_at = :now, msg_id = COALESCE(:msg_id, msg_id),
                    attempts = attempts + 1
WHERE id = :id AND status IN ('queued', 'sent')"""

SET_COMMAND_MSG_ID = "UPDATE commands SET msg_id = :msg_id WHERE id = :id"

FINISH_COMMAND = """
UPDATE commands SET status = :status, finished_at = :now, reason = :reason,
                    result_json = COALESCE(:result_json, result_json)
WHERE id = :id AND status IN ('queued', 'sent')"""

EXPIRE_COMMANDS = f"""
UPDATE commands SET status = 'expired', finished_at = :now, reason = 'command_ttl'
WHERE status = 'queued' AND expires_at <= :now
RETURNING {COMMAND_COLUMNS}"""

# --- cmd_logs ------------------------------------------------------------------------------

INSERT_CMD_LOG = """
INSERT INTO cmd_logs (device_id, phy_id, direction, cmd, msg_id, hex, created_at)
VALUES (:device_id, :phy_id, :direction, :cmd, :msg_id, :hex, :created_at)"""

#: The same insert with positional parameters, in CmdLogRow order.
INSERT_CMD_LOG_ROW = """
INSERT INTO cmd_logs (device_id, phy_id, direction, cmd, msg_id, hex, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)"""

CMD_LOG_COLUMNS = "id, device_id, phy_id, direction, cmd, msg_id, hex, created_at"


def list_cmd_logs_sql(*, phy_id: bool) -> str:
    """The newest frames first, optionally of one device."""
    where = "WHERE phy_id = :phy_id " if phy_id else ""
    return f"SELECT {CMD_LOG_COLUMNS} FROM cmd_logs {where}ORDER BY id DESC LIMIT :limit"


PRUNE_CMD_LOGS_OLDER = "DELETE FROM cmd_logs WHERE created_at < ?"
# Keep the newest N rows: delete everything up to the (N+1)-th newest id.
PRUNE_CMD_LOGS_EXCESS = """
DELETE FROM cmd_logs WHERE id <= (SELECT id FROM cmd_logs ORDER BY id DESC LIMIT 1 OFFSET ?)"""

# --- events (the outbox) and webhook deliveries --------------------------------------------

EVENT_COLUMNS = "seq, event_id, event_type, device_phy_id, order_no, payload_json, created_at"

# ON CONFLICT (event_id) rather than OR IGNORE: only a replayed id is skipped; a
# NOT NULL or CHECK violation still raises.
INSERT_EVENT = """
INSERT INTO events (event_id, event_type, device_phy_id, order_no, payload_json, created_at)
VALUES (:event_id, :event_type, :device_phy_id, :order_no, :payload_json, :created_at)
ON CONFLICT (event_id) DO NOTHING
RETURNING seq"""

INSERT_DELIVERY = """
INSERT INTO webhook_deliveries (event_seq, device_phy_id, next_attempt_at, routine)
VALUES (?, ?, ?, ?)"""

# An event that is not routine makes the device's pending routine ones urgent too:
# they go out before it (per-device order), so they must not wait as routine.
# INDEXED BY: left alone, SQLite picks the (routine, event_seq) index and reads every
# pending routine row, thousands during a sampling burst, for each event.
PROMOTE_DEVICE_DELIVERIES = """
UPDATE webhook_deliveries INDEXED BY webhook_deliveries_device SET routine = 0
WHERE device_phy_id = ? AND status = 'pending' AND routine = 1"""

SELECT_EVENT_BY_ID = f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?"
SELECT_EVENT_BY_SEQ = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?"
SELECT_EVENTS_AFTER = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
COUNT_ORDER_EVENTS = "SELECT COUNT(*) FROM events WHERE order_no = ?"

# Due deliveries, at most one per device: a device's later event waits while an
# earlier one is still pending (api.md §6.4 ordering), whatever its retry time.
# Events without a device never wait for each other.
_CLAIM_DUE_DELIVERIES = """
UPDATE webhook_deliveries SET next_attempt_at = :lease_until
WHERE event_seq IN (
    SELECT d.event_seq FROM webhook_deliveries AS d
    WHERE d.status = 'pending' AND d.next_attempt_at <= :now
      AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries AS earlier
          WHERE earlier.status = 'pending' AND earlier.device_phy_id = d.device_phy_id
            AND earlier.event_seq < d.event_seq)
    ORDER BY d.routine, d.event_seq LIMIT :limit{lock})
RETURNING event_seq, routine"""
CLAIM_DUE_DELIVERIES = _CLAIM_DUE_DELIVERIES.format(lock="")
# The same claim where several servers share the database (PostgreSQL): a row
# another connection is claiming is skipped, not waited for, so no delivery is ever
# claimed twice. Per-device order still holds: the claimed row stays pending, so
# the device's later rows fail NOT EXISTS for everyone, and a row claimed meanwhile
# is checked again once locked (its next_attempt_at is the lease now: not due).
CLAIM_DUE_DELIVERIES_SKIP_LOCKED = _CLAIM_DUE_DELIVERIES.format(
    lock=" FOR UPDATE OF d SKIP LOCKED")

# At start: no attempt of an earlier process is still running, so its claims (and
# back-off waits) end now instead of at their lease or retry time.
RELEASE_DELIVERY_CLAIMS = """
UPDATE webhook_deliveries SET next_attempt_at = :now
WHERE status = 'pending' AND next_attempt_at > :now"""

SELECT_DELIVERY = f"""
SELECT {', '.join('e.' + c.strip() for c in EVENT_COLUMNS.split(','))},
       d.attempts, d.status, d.next_attempt_at, d.last_error, d.delivered_at, d.latency_ms
FROM webhook_deliveries AS d JOIN events AS e ON e.seq = d.event_seq
WHERE d.event_seq = ?"""

MARK_DELIVERED = """
UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,
                              delivered_at = :now, latency_ms = :latency_ms, last_error = NULL
WHERE event_seq = :seq AND status = 'pending'"""

MARK_DELIVERY_FAILED = """
UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = :error,
                              next_attempt_at = :retry_at
WHERE event_seq = :seq AND status = 'pending'"""

MARK_DELIVERY_DEAD = """
UPDATE webhook_deliveries SET status = 'dead', attempts = attempts + 1, last_error = :error
WHERE event_seq = :seq AND status = 'pending'"""

# POST /events/{id}/redeliver: a fresh pending delivery, whatever happened before.
REDELIVER_EVENT = """
INSERT INTO webhook_deliveries (event_seq, device_phy_id, next_attempt_at, key_name)
SELECT seq, device_phy_id, :now, :key_name FROM events WHERE event_id = :event_id
ON CONFLICT (event_seq) DO UPDATE SET status = 'pending', attempts = 0,
    next_attempt_at = excluded.next_attempt_at, last_error = NULL, delivered_at = NULL,
    latency_ms = NULL, key_name = excluded.key_name
RETURNING event_seq"""

# --- cards and their ledger (api.md §11.1; the ledger migration explains the sums) ----------

CARD_COLUMNS = ("card_no, balance_cents, held_cents, status, charge_mode, duration, energy_wh, "
                "created_at, updated_at")

INSERT_CARD = f"""
INSERT INTO cards ({CARD_COLUMNS})
VALUES (:card_no, :balance_cents, 0, :status, :charge_mode, :duration, :energy_wh, :now, :now)
ON CONFLICT (card_no) DO NOTHING"""

SELECT_CARD = f"SELECT {CARD_COLUMNS} FROM cards WHERE card_no = ?"

# A read-decide-write on one card (a settlement, an idempotent change) starts with
# this write: it holds the card's row lock to the commit, so two servers sharing a
# database cannot both decide from the same ledger (SQLite's one writer needs none).
LOCK_CARD = "UPDATE cards SET updated_at = updated_at WHERE card_no = ?"

CARD_BALANCE_ADD = """
UPDATE cards SET balance_cents = balance_cents + :amount, updated_at = :now
WHERE card_no = :card_no AND balance_cents + :amount >= held_cents"""

# The availability check is in the statement: two holds can never reserve the same cents.
CARD_HOLD = """
UPDATE cards SET held_cents = held_cents + :amount, updated_at = :now
WHERE card_no = :card_no AND balance_cents - held_cents >= :amount"""

# A settlement: the bill leaves the balance and the hold; the rest of the hold is freed.
CARD_SETTLE = """
UPDATE cards SET balance_cents = balance_cents - :debit,
                 held_cents = held_cents - :debit - :release, updated_at = :now
WHERE card_no = :card_no"""

SET_CARD_STATUS = "UPDATE cards SET status = :status, updated_at = :now WHERE card_no = :card_no"

LEDGER_COLUMNS = "entry_id, card_no, kind, amount_cents, order_no, key_name, reason, created_at"

INSERT_LEDGER = """
INSERT INTO card_ledger (card_no, kind, amount_cents, order_no, key_name, reason, idem_key,
                         created_at)
VALUES (:card_no, :kind, :amount, :order_no, :key_name, :reason, :idem_key, :now)"""

SELECT_LEDGER_PAGE = f"""
SELECT {LEDGER_COLUMNS} FROM card_ledger
WHERE card_no = :card_no AND entry_id > :after ORDER BY entry_id LIMIT :limit"""

SELECT_LEDGER_REPEAT = """
SELECT 1 FROM card_ledger
WHERE card_no = :card_no AND key_name = :key_name AND idem_key = :idem_key AND kind = :kind
  AND amount_cents = :amount"""

# One order's entries on one card, summed by kind.
SELECT_ORDER_LEDGER = """
SELECT kind, SUM(amount_cents) AS total FROM card_ledger
WHERE card_no = ? AND order_no = ? GROUP BY kind"""

# --- API bookkeeping: nonces, idempotency, settings ----------------------------------------

DELETE_EXPIRED_NONCE = """
DELETE FROM api_nonces WHERE key_name = ? AND nonce = ? AND seen_at <= ?"""
INSERT_NONCE = """
INSERT INTO api_nonces (key_name, nonce, seen_at) VALUES (?, ?, ?)
ON CONFLICT (key_name, nonce) DO NOTHING"""
# Retention (retention_days, api.md §11.4), one bounded batch per statement. Events
# go with their delivery rows (ON DELETE CASCADE), never while a delivery is pending
# or dead (undelivered: GET /events and redelivery must still find it), nor while
# their order is open (its next event ids continue from the count of its events).
PRUNE_EVENTS_BATCH = """
DELETE FROM events WHERE seq IN (
    SELECT seq FROM events e
    WHERE e.created_at < :before
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                      WHERE d.event_seq = e.seq AND d.status IN ('pending', 'dead'))
      AND (e.order_no IS NULL OR NOT EXISTS (
          SELECT 1 FROM orders o WHERE o.order_no = e.order_no
                                   AND o.status IN ('pending', 'charging', 'stopping')))
    ORDER BY seq LIMIT :limit)"""
PRUNE_PROGRESS_BATCH = """
DELETE FROM order_progress WHERE id IN (
    SELECT id FROM order_progress WHERE at < :before ORDER BY at LIMIT :limit)"""
PRUNE_CMD_LOGS_BATCH = """
DELETE FROM cmd_logs WHERE id IN (
    SELECT id FROM cmd_logs WHERE created_at < :before ORDER BY created_at LIMIT :limit)"""

PRUNE_NONCES = "DELETE FROM api_nonces WHERE seen_at <= ?"

IDEMPOTENCY_COLUMNS = "key_name, idem_key, status_code, response_json, request_hash, created_at"
SELECT_IDEMPOTENCY = f"""
SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency
WHERE key_name = ? AND idem_key = ? AND created_at > ?"""
# The first answer wins; a stale one (older than the TTL) is replaced.
PUT_IDEMPOTENCY = f"""
INSERT INTO idempotency ({IDEMPOTENCY_COLUMNS})
VALUES (:key_name, :idem_key, :status_code, :response_json, :request_hash, :now)
ON CONFLICT (key_name, idem_key) DO UPDATE SET
    status_code = excluded.status_code, response_json = excluded.response_json,
    request_hash = excluded.request_hash, created_at = excluded.created_at
WHERE idempotency.created_at <= :stale_before"""
PRUNE_IDEMPOTENCY = "DELETE FROM idempotency WHERE created_at <= ?"

SELECT_SETTING = "SELECT value FROM settings WHERE name = ?"
UPSERT_SETTING = """
INSERT INTO settings (name, value) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value"""
DELETE_SETTING = "DELETE FROM settings WHERE name = ?"
INSERT_SETTING_IF_ABSENT = """
INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"""

# --- statistics ----------------------------------------------------------------------------

SELECT_STATISTICS = f"""
SELECT (SELECT COUNT(*) FROM devices) AS devices,
       (SELECT COUNT(*) FROM devices WHERE online = 1) AS devices_online,
       (SELECT COUNT(*) FROM orders WHERE status IN {_OPEN}) AS open_orders,
       (SELECT COUNT(*) FROM commands WHERE status = 'queued') AS commands_queued,
       (SELECT COALESCE(MAX(seq), 0) FROM events) AS last_event_seq,
       (SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending') AS deliveries_pending,
       (SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'dead') AS deliveries_dead,
       (SELECT COUNT(*) FROM cmd_logs) AS cmd_logs"""
