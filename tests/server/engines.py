"""The storage engines the server tests run on (fixtures: tests/server/conftest.py)."""
from __future__ import annotations

import pytest

#: The server of the PostgreSQL tests: a URL whose user may create databases.
POSTGRES_URL_ENV = "BKV_TEST_POSTGRES_URL"
#: The engines a storage test runs on (the ``engine`` fixture's parameters).
ENGINES = ("sqlite", "postgresql")

#: Narrows a test to SQLite: it checks what only SQLite has (the file, PRAGMAs,
#: STRICT tables, sqlite3 readers).
sqlite_only = pytest.mark.parametrize("engine", ["sqlite"])
#: Narrows a test to PostgreSQL.
postgres_only = pytest.mark.parametrize("engine", ["postgresql"])
