"""Fixtures for the server's storage on both engines.

``postgres_url`` gives a PostgreSQL database with an empty schema, on the server that
``BKV_TEST_POSTGRES_URL`` names (``export BKV_TEST_POSTGRES_URL=$(.ci/start_postgres
DIR)`` starts a throwaway one). Without it the PostgreSQL tests skip, or fail when
``CI`` is set: CI must not pass by skipping them.
"""
from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.engines import ENGINES, POSTGRES_URL_ENV


def _with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A database of this test session on the PostgreSQL server of the environment
    (created now, dropped at the end)."""
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not url:
        message = (f"{POSTGRES_URL_ENV} is not set: the PostgreSQL storage tests need a "
                   f"server whose user may create databases (e.g. "
                   f"export {POSTGRES_URL_ENV}=$(.ci/start_postgres /tmp/pgdata))")
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so they must run", pytrace=False)
        pytest.skip(message)
    import psycopg

    name = f"bkv_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """The session's PostgreSQL database with an empty ``public`` schema (a fresh,
    unmigrated database for each test)."""
    import psycopg

    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return postgres_server


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The storage engine of the test."""
    return str(request.param)


@pytest.fixture
def db_target(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """What ``Database.open`` is given: a new SQLite file or an empty PostgreSQL
    database."""
    if engine == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return tmp_path / "data" / "iot.db"
