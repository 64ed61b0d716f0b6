# The server's storage (contract api.md §3, §8), one job per module:
#   _schema.py   the schema as ordered migrations, applied on open (SQLite)
#   _schema_pg.py the same migrations in PostgreSQL's dialect, and their migrate()
#   _sql.py      every SQL statement, as constants and pure builder functions
#   _engine.py   what differs between engines, behind Engine; the choice at open
#   _sqlite.py   the SQLite engine: a file in WAL mode
#   _postgres.py the PostgreSQL engine (psycopg 3): placeholders, rows, locks
#   _records.py  the frozen records and status enums going in and out
#   _paging.py   opaque keyset cursors for list endpoints (api.md §10.7)
#   _database.py Database: the synchronous, typed API over one connection
#   _async.py    AsyncDatabase: the same API for trio, through one worker thread
#   _errors.py   the errors a caller can act on
# This package re-exports the public names; the submodules are private.
"""Storage of the reference server: schema, migrations and a typed API, on SQLite
or PostgreSQL.

Open with :meth:`Database.open` (synchronous) or :meth:`AsyncDatabase.open` (trio),
given an SQLite file (created, switched to WAL) or a ``postgresql://`` URL (the
``cluster`` extra); both migrate the database.
"""
from __future__ import annotations

from ._async import AsyncDatabase
from ._database import (
    MIN_SQLITE_VERSION,
    ROUTINE_EVENT_TYPES,
    CmdLogRow,
    Database,
    card_key,
    format_order_no,
)
from ._engine import is_postgres_url
from ._errors import (
    ActiveOrderExists,
    CardExists,
    DuplicateOrderNo,
    InsufficientFunds,
    InvalidPage,
    SchemaTooNew,
    StorageError,
)
from ._paging import DEFAULT_LIMIT, MAX_LIMIT, Page, decode_cursor, encode_cursor
from ._records import (
    OPEN_ORDER_STATES,
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
    load_json_object,
)
from ._schema import LATEST_VERSION, MIGRATIONS, Migration, migrate, split_statements

__all__ = [
    "DEFAULT_LIMIT",
    "LATEST_VERSION",
    "MAX_LIMIT",
    "MIGRATIONS",
    "MIN_SQLITE_VERSION",
    "OPEN_ORDER_STATES",
    "ROUTINE_EVENT_TYPES",
    "ActiveOrderExists",
    "AsyncDatabase",
    "CardExists",
    "CardLedgerEntry",
    "CardRecord",
    "CardSettlement",
    "CardStatus",
    "CmdLogEntry",
    "CmdLogRecord",
    "CmdLogRow",
    "CommandRecord",
    "CommandStatus",
    "Database",
    "DeliveryRecord",
    "DeliveryStatus",
    "DeviceIdentity",
    "DeviceRecord",
    "DeviceTouch",
    "DuplicateOrderNo",
    "EventRecord",
    "IdempotencyRecord",
    "InsufficientFunds",
    "InvalidPage",
    "LedgerKind",
    "Migration",
    "NewCommand",
    "NewEvent",
    "NewOrder",
    "OrderRecord",
    "Page",
    "PortRecord",
    "ProgressSample",
    "SchemaTooNew",
    "StorageError",
    "StorageStatistics",
    "card_key",
    "decode_cursor",
    "dump_json",
    "encode_cursor",
    "format_order_no",
    "is_postgres_url",
    "load_json_object",
    "migrate",
    "split_statements",
]
