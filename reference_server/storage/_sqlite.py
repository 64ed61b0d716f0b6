# The SQLite engine: one file, one writer.
#
# The connection is in autocommit mode (isolation_level=None) and transactions are
# explicit: BEGIN IMMEDIATE takes the write lock at once, so a transaction never
# fails half-way for a lock upgrade.
#
# On open the file gets WAL (readers never block the writer), synchronous=FULL by
# default (a commit is on disk when it returns, so what the server acknowledges
# after it survives a power loss) or NORMAL when configured (durable
# at each checkpoint, never corrupt: a power loss may undo the last commits),
# foreign keys on and a busy timeout, then migrate() brings the schema up to date.
# close() checkpoints and truncates the WAL. A new database file is created with
# mode 0600 before SQLite opens it (SQLite gives its -wal and -shm files the mode of
# the database file), because it holds API-key hashes, card balances and every
# order; an existing file keeps its mode (the server warns when others can read it).
# Tables are STRICT, so a float where an integer unit belongs is refused
# by SQLite itself.
from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from . import _sql as sql
from ._engine import ONE_OPEN_ORDER_PER_PORT, ORDER_NO_TAKEN, Engine
from ._errors import StorageError
from ._schema import migrate, schema_version

__all__ = ["MIN_SQLITE_VERSION", "SqliteEngine"]

#: STRICT tables (3.37) and RETURNING (3.35) are used.
MIN_SQLITE_VERSION = (3, 37, 0)
#: The ``PRAGMA synchronous`` modes a server may choose.
_SYNCHRONOUS_MODES = ("full", "normal")
#: SQLite names a violated UNIQUE constraint by its columns only.
_CONSTRAINT_MESSAGES = (
    ("orders.device_id, orders.socket_no, orders.port_no", ONE_OPEN_ORDER_PER_PORT),
    ("orders.order_no", ORDER_NO_TAKEN),
)


class SqliteEngine(Engine):
    """An SQLite file (or ``:memory:``), opened in WAL mode and migrated."""

    name = "sqlite"
    integrity_errors = (sqlite3.IntegrityError,)
    claim_due_deliveries = sql.CLAIM_DUE_DELIVERIES

    def __init__(self, connection: sqlite3.Connection, path: str, synchronous: str) -> None:
        """Wrap an open, migrated connection; use :meth:`open` instead."""
        self.connection = self.sqlite = connection
        self.target = path
        self.synchronous = synchronous
        self._relaxed = False  # the open transaction runs at synchronous=NORMAL

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, busy_timeout: float,
             synchronous: str) -> SqliteEngine:
        """Open (creating it and its directory if needed) and migrate the file.

        Raises:
            StorageError: SQLite is too old, or the file cannot use WAL.
            SchemaTooNew: A newer server migrated the file.
            ValueError: *synchronous* is neither ``full`` nor ``normal``.
            sqlite3.Error: The file cannot be opened or migrated.
        """
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise StorageError(f"SQLite {sqlite3.sqlite_version} is too old; the server "
                               f"needs {'.'.join(map(str, MIN_SQLITE_VERSION))} or newer")
        if synchronous not in _SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        name = os.fspath(path)
        in_memory = name == ":memory:"
        if not in_memory:
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            _create_private(name)
        conn = sqlite3.connect(name, timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False, cached_statements=256)
        ready = False
        try:
            conn.row_factory = sqlite3.Row
            mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            if mode != "wal" and not in_memory:
                raise StorageError(f"{name}: cannot switch to WAL (journal_mode is {mode})")
            # A fixed word from _SYNCHRONOUS_MODES: PRAGMA takes no parameters.
            conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_size_limit = 67108864")  # the WAL file after checkpoints
            migrate(conn)
            ready = True
        finally:
            if not ready:
                conn.close()
        return cls(conn, name, synchronous)

    def begin(self, *, durable: bool) -> None:
        """``BEGIN IMMEDIATE``; a routine transaction of a ``synchronous=full``
        database runs at ``NORMAL`` (the commit skips the sync to disk)."""
        relaxed = not durable and self.synchronous == "full"
        if relaxed:
            self.sqlite.execute("PRAGMA synchronous = NORMAL")
        try:
            self.sqlite.execute("BEGIN IMMEDIATE")
        except BaseException:
            if relaxed:
                self.sqlite.execute("PRAGMA synchronous = FULL")
            raise
        self._relaxed = relaxed

    def commit(self) -> None:
        """``COMMIT``, then back to ``synchronous=FULL`` if it was relaxed."""
        self.sqlite.execute("COMMIT")
        self._restore()

    def rollback(self) -> None:
        """``ROLLBACK`` if a transaction is open, then back to ``FULL`` if relaxed."""
        try:
            if self.sqlite.in_transaction:
                self.sqlite.execute("ROLLBACK")
        finally:
            self._restore()

    def _restore(self) -> None:
        if self._relaxed:
            self._relaxed = False
            self.sqlite.execute("PRAGMA synchronous = FULL")

    def constraint(self, error: Exception) -> str | None:
        """The constraint named by SQLite's message (it has no constraint names)."""
        message = str(error)
        for columns, name in _CONSTRAINT_MESSAGES:
            if columns in message:
                return name
        return None

    def schema_version(self) -> int:
        """The highest migration applied."""
        return schema_version(self.sqlite)

    def database_bytes(self) -> int:
        """The file's size (pages × page size; the WAL not counted)."""
        page_count = int(self.sqlite.execute("PRAGMA page_count").fetchone()[0])
        page_size = int(self.sqlite.execute("PRAGMA page_size").fetchone()[0])
        return page_count * page_size

    def lock_device_events(self, phy_id: str) -> None:
        """Nothing to do: BEGIN IMMEDIATE already made this the only writer."""

    @contextmanager
    def _secure_delete(self) -> Iterator[None]:
        self.sqlite.execute("PRAGMA secure_delete = ON")
        try:
            yield
        finally:
            self.sqlite.execute("PRAGMA secure_delete = OFF")

    def secure_delete(self) -> AbstractContextManager[None]:
        """``PRAGMA secure_delete`` on: deleted rows are overwritten in the file."""
        return self._secure_delete()

    def close(self) -> None:
        """Checkpoint the WAL into the database file and close."""
        try:
            if not self.sqlite.in_transaction:
                self.sqlite.execute("PRAGMA optimize")
                self.sqlite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError:
            # Another process writing the same file (several workers): the last one
            # to close checkpoints; nothing is lost by skipping it here.
            pass
        finally:
            self.sqlite.close()


def _create_private(name: str) -> None:
    """Create the database file with mode 0600 if it does not exist yet."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(name, 0o600)  # whatever the umask left
