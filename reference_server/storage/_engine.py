# What Database needs from a database engine, and the choice of engine at open.
#
# Database (storage/_database.py) runs the statements of _sql.py on a connection and
# turns rows into records; everything that differs between SQLite and PostgreSQL is
# behind Engine: how a connection is opened and migrated, how a transaction starts
# (and what a routine, non-durable commit means), which integrity constraint an
# error names, the size of the database and the few statements that must differ.
# Two engines: SqliteEngine (storage/_sqlite.py) for a file, PostgresEngine
# (storage/_postgres.py) for a postgresql:// URL, where several server processes may
# share one database.
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    # What the drivers' own stubs give for a column value or a parameter set: Any.
    from _typeshed import Incomplete

    #: A result row, by column name and by index: sqlite3.Row or PgRow.
    Row: TypeAlias = Incomplete

__all__ = ["ONE_OPEN_ORDER_PER_PORT", "ORDER_NO_TAKEN", "Connection", "Cursor", "Engine",
           "is_postgres_url", "open_engine"]

#: The integrity constraints Database turns into typed errors, by the name the
#: PostgreSQL schema gives them (the SQLite engine maps its messages to these).
ORDER_NO_TAKEN = "orders_order_no_key"
ONE_OPEN_ORDER_PER_PORT = "orders_one_open_per_port"

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Cursor(Protocol):
    """The part of a DB-API cursor Database uses (``sqlite3.Cursor`` has it)."""

    @property
    def rowcount(self) -> int:
        """Rows changed by the statement (summed over an executemany)."""

    def fetchone(self) -> Incomplete:
        """The next row (by column name and by index), or None."""

    def fetchall(self) -> list[Incomplete]:
        """The remaining rows."""

    def __iter__(self) -> Iterator[Incomplete]:
        """The remaining rows, one by one."""


class Connection(Protocol):
    """The part of a connection Database uses: statements in _sql.py's dialect
    (``?`` and ``:name`` placeholders). ``sqlite3.Connection`` has it as is."""

    def execute(self, sql: str, parameters: Incomplete = ..., /) -> Cursor:
        """Run one statement."""

    def executemany(self, sql: str, parameters: Incomplete, /) -> Cursor:
        """Run one statement once per parameter set."""

    @property
    def in_transaction(self) -> bool:
        """True between BEGIN and COMMIT/ROLLBACK."""


class Engine(ABC):
    """One open, migrated database connection of one engine.

    Attributes:
        name: ``"sqlite"`` or ``"postgresql"``.
        target: The file, or the URL without its password (safe to log).
        connection: Where Database runs its statements.
        integrity_errors: The driver's integrity-error classes.
        claim_due_deliveries: The engine's form of the delivery claim.
    """

    name: str
    target: str
    connection: Connection
    integrity_errors: tuple[type[Exception], ...]
    claim_due_deliveries: str

    @abstractmethod
    def begin(self, *, durable: bool) -> None:
        """Start the outermost transaction (see ``Database.transaction``)."""

    @abstractmethod
    def commit(self) -> None:
        """Commit the outermost transaction."""

    @abstractmethod
    def rollback(self) -> None:
        """Roll back the outermost transaction, if one is open (also after a failed
        commit)."""

    @abstractmethod
    def constraint(self, error: Exception) -> str | None:
        """The name of the constraint an integrity *error* violated, if known
        (:data:`ORDER_NO_TAKEN`, :data:`ONE_OPEN_ORDER_PER_PORT`, …)."""

    @abstractmethod
    def schema_version(self) -> int:
        """The migration version of the database."""

    @abstractmethod
    def database_bytes(self) -> int:
        """The size of the database on disk."""

    @abstractmethod
    def lock_device_events(self, phy_id: str) -> None:
        """Inside a transaction: hold until its commit the right to append events of
        *phy_id*, so a device's events are numbered in the order they commit."""

    @abstractmethod
    def secure_delete(self) -> AbstractContextManager[None]:
        """Around a delete of a secret: overwrite the deleted bytes where the engine
        can."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection (after tidying the files, for SQLite)."""


def is_postgres_url(target: str | os.PathLike[str]) -> bool:
    """True if *target* names a PostgreSQL database (``postgresql://…``)."""
    return isinstance(target, str) and target.startswith(_POSTGRES_SCHEMES)


def open_engine(target: str | os.PathLike[str], *, busy_timeout: float,
                synchronous: str) -> Engine:
    """Open and migrate the database *target* names: a PostgreSQL URL or an SQLite
    file (see ``Database.open``)."""
    if is_postgres_url(target):
        # Imported here: psycopg is an optional dependency (the cluster extra).
        from ._postgres import PostgresEngine
        return PostgresEngine.open(os.fspath(target), connect_timeout=busy_timeout)
    from ._sqlite import SqliteEngine
    return SqliteEngine.open(target, busy_timeout=busy_timeout, synchronous=synchronous)
