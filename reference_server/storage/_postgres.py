# The PostgreSQL engine (psycopg 3, synchronous): one connection per Database, used
# from AsyncDatabase's worker thread as the SQLite connection is. Several server
# processes may share the database; what keeps them apart is in the SQL (conditional
# updates, FOR UPDATE SKIP LOCKED on delivery claims, a row lock before a card's
# read-decide-write) and here (an advisory lock per device while its events are
# appended, an advisory lock around migrations).
#
# The statements are _sql.py's, written for SQLite: translate() rewrites them once
# each (a cache) into psycopg's placeholders, `?` → %s and `:name` → %(name)s, with
# a literal % doubled, and drops SQLite's INDEXED BY hints. Rows come back as
# PgRow, readable by column name and by index as sqlite3.Row is.
#
# The connection is in autocommit mode and transactions are explicit (BEGIN …
# COMMIT, savepoints inside), as on SQLite. A routine transaction (durable=False)
# runs with SET LOCAL synchronous_commit = off: its commit returns before the WAL
# is flushed, so a crash of the database server may lose the last routine commits,
# never a durable one (a durable commit flushes the WAL up to itself, routine
# commits before it included). That is the meaning SQLite's NORMAL commits have.
#
# A connection the database server dropped (a restart, a failover, an idle timeout)
# is replaced at the next call outside a transaction: a read or a BEGIN is repeated
# once on the new connection. Inside a transaction nothing is repeated: the
# transaction fails and its caller hears of it, as of any failed commit.
from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, TypeVar

import psycopg
from psycopg.pq import TransactionStatus

from . import _sql as sql
from ._engine import Engine
from ._schema_pg import migrate_postgres, postgres_schema_version

if TYPE_CHECKING:
    from _typeshed import Incomplete
    from psycopg.rows import RowMaker

__all__ = ["PgConnection", "PgRow", "PostgresEngine", "redact_database_url", "translate"]

#: A ``?`` or ``:name`` placeholder, or text in which neither is one (a quoted string
#: or identifier, a comment, a ``::`` cast), or a literal ``%``.
_TOKEN = re.compile(r"""'(?:[^']|'')*'|"[^"]*"|--[^\n]*|::|\?|:([A-Za-z_]\w*)|%""")
_INDEXED_BY = re.compile(r"\s+INDEXED\s+BY\s+\w+", re.IGNORECASE)
_T = TypeVar("_T")
#: The first key of the two-key advisory locks on a device's events.
_DEVICE_EVENTS_LOCK = 0x626B76  # "bkv"


@functools.lru_cache(maxsize=1024)
def translate(statement: str) -> str:
    """*statement* (SQLite's dialect, ``?``/``:name`` placeholders) as psycopg runs it.

    Raises:
        ValueError: The statement mixes positional and named placeholders.
    """
    kinds: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "?":
            kinds.add("?")
            return "%s"
        if text == "%":
            return "%%"
        name = match.group(1)
        if name is not None:
            kinds.add(":")
            return f"%({name})s"
        return text.replace("%", "%%")  # psycopg reads % in quoted text too

    translated = _TOKEN.sub(replace, _INDEXED_BY.sub("", statement))
    if len(kinds) > 1:
        raise ValueError(f"mixed placeholders in {statement[:60]!r}")
    return translated


class PgRow:
    """One result row, by column name (``row["seq"]``) or index (``row[0]``);
    iterating gives the values and :meth:`keys` the names, as ``sqlite3.Row``."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Incomplete], index: Mapping[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Incomplete:
        return self._values[key if isinstance(key, int) else self._index[key]]

    def __iter__(self) -> Iterator[Incomplete]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        """The column names, in order."""
        return list(self._index)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._index, self._values, strict=True))!r})"


def pg_row(cursor: psycopg.Cursor[Incomplete]) -> RowMaker[PgRow]:
    """psycopg row factory making :class:`PgRow` rows."""
    columns = cursor.description or []
    index = {column.name: i for i, column in enumerate(columns)}

    def make(values: Sequence[Incomplete]) -> PgRow:
        return PgRow(values, index)
    return make


class PgConnection:
    """A psycopg connection that takes _sql.py's statements (see :func:`translate`),
    and connects again when the server dropped it (a restart, a failover).

    Only outside a transaction: a read there is repeated once on a new connection,
    as is the ``BEGIN`` of a transaction; a statement inside a transaction fails with
    it, and the caller sees the error, as for any failed transaction.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection[PgRow]]) -> None:
        self._connect = connect
        self.raw = connect()
        self._transaction = False  # between begin() and commit()/rollback()

    def execute(self, statement: str,
                parameters: Sequence[object] | Mapping[str, object] | None = None,
                /) -> psycopg.Cursor[PgRow]:
        """Run one statement."""
        query = translate(statement)
        if self._transaction:
            return self.raw.execute(query, parameters)
        return self._again_if_dropped(lambda: self.raw.execute(query, parameters))

    def executemany(self, statement: str,
                    parameters: Sequence[Sequence[object] | Mapping[str, object]],
                    /) -> psycopg.Cursor[PgRow]:
        """Run one statement per parameter set; ``rowcount`` is their sum."""
        cursor = self.raw.cursor()
        cursor.executemany(translate(statement), parameters)
        return cursor

    @property
    def in_transaction(self) -> bool:
        """True inside a transaction, also a failed one not yet rolled back."""
        return (not self.raw.closed
                and self.raw.info.transaction_status != TransactionStatus.IDLE)

    def begin(self, *, durable: bool) -> None:
        """``BEGIN`` (on a new connection if the server dropped this one)."""
        self._again_if_dropped(lambda: self.raw.execute("BEGIN"))
        self._transaction = True
        if not durable:
            try:
                self.raw.execute("SET LOCAL synchronous_commit = off")
            except BaseException:
                self.rollback()
                raise

    def commit(self) -> None:
        """``COMMIT``."""
        try:
            self.raw.execute("COMMIT")
        finally:
            self._transaction = False

    def rollback(self) -> None:
        """``ROLLBACK`` if a transaction is open."""
        try:
            if self.in_transaction:
                self.raw.execute("ROLLBACK")
        finally:
            self._transaction = False

    def _again_if_dropped(self, run: Callable[[], _T]) -> _T:
        try:
            return run()
        except psycopg.OperationalError:
            if not (self.raw.broken or self.raw.closed):
                raise
        self.raw.close()
        self.raw = self._connect()
        return run()


class PostgresEngine(Engine):
    """A PostgreSQL database by URL, migrated on open."""

    name = "postgresql"
    integrity_errors = (psycopg.IntegrityError,)
    claim_due_deliveries = sql.CLAIM_DUE_DELIVERIES_SKIP_LOCKED

    def __init__(self, connection: PgConnection, url: str) -> None:
        """Wrap an open, migrated connection; use :meth:`open` instead."""
        self.connection = self.pg = connection
        self.target = redact_database_url(url)

    @classmethod
    def open(cls, url: str, *, connect_timeout: float = 5.0) -> PostgresEngine:
        """Connect to *url* and migrate the database.

        Raises:
            SchemaTooNew: A newer server migrated the database.
            psycopg.Error: The database cannot be reached or migrated.
        """
        def connect() -> psycopg.Connection[PgRow]:
            return psycopg.connect(url, autocommit=True, row_factory=pg_row,
                                   connect_timeout=max(1, round(connect_timeout)),
                                   application_name="bkvcodec-server")

        connection = PgConnection(connect)
        ready = False
        try:
            migrate_postgres(connection.raw)
            ready = True
        finally:
            if not ready:
                connection.raw.close()
        return cls(connection, url)

    def begin(self, *, durable: bool) -> None:
        """``BEGIN``; a routine transaction commits without waiting for the WAL flush."""
        self.pg.begin(durable=durable)

    def commit(self) -> None:
        """``COMMIT``."""
        self.pg.commit()

    def rollback(self) -> None:
        """``ROLLBACK`` if a transaction is open."""
        self.pg.rollback()

    def constraint(self, error: Exception) -> str | None:
        """The constraint (or unique index) the server named in *error*."""
        if isinstance(error, psycopg.Error) and error.diag is not None:
            return error.diag.constraint_name
        return None

    def schema_version(self) -> int:
        """The schema version (the row of ``schema_version``)."""
        return postgres_schema_version(self.pg.raw)

    def database_bytes(self) -> int:
        """``pg_database_size`` of the current database."""
        row = self.pg.execute("SELECT pg_database_size(current_database())").fetchone()
        return 0 if row is None else int(row[0])

    def lock_device_events(self, phy_id: str) -> None:
        """A transaction-level advisory lock on the device's events: another server
        appending an event of this device waits for this commit, so a device's events
        commit in ``seq`` order and a claim never hands out a later one first."""
        self.pg.execute("SELECT pg_advisory_xact_lock(?, hashtext(?))",
                        (_DEVICE_EVENTS_LOCK, phy_id))

    def secure_delete(self) -> AbstractContextManager[None]:
        """Nothing: PostgreSQL has no secure delete; VACUUM reclaims dead rows."""
        return nullcontext()

    def close(self) -> None:
        """Close the connection."""
        self.pg.raw.close()


def redact_database_url(url: str) -> str:
    """*url* without its password (in the user part or a ``password`` parameter)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{hostport}" if colon else netloc
    query = urllib.parse.urlencode([
        (name, "***" if name == "password" else value)
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)],
        safe="*")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
