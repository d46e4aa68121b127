"""Databases for the historian tests: an SQLite file per test, and PostgreSQL when configured.

PostgreSQL tests read the server URL from ``CC_TEST_POSTGRES_URL``. Unset: they are skipped with
the reason. Set but unreachable: they fail, so CI cannot pass without the database. Each test
gets its own schema (``cc_test_<session>_<n>``), dropped afterwards, so runs never collide.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from historian import SqlHistorian
from historian.engine import normalise_url
from tests.historian.historian_support import TAGS, Database

POSTGRES_URL_ENV = "CC_TEST_POSTGRES_URL"


@dataclass
class PostgresServer:
    """The PostgreSQL server named by the environment, with a schema prefix for this session."""

    url: str
    engine: Engine
    prefix: str
    counter: itertools.count[int]

    def new_schema(self) -> str:
        """Create a fresh schema for one test."""
        name = f"{self.prefix}_{next(self.counter)}"
        with self.engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {name}"))
        return name

    def drop_schema(self, name: str) -> None:
        """Drop a test's schema and everything in it."""
        with self.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server of ``CC_TEST_POSTGRES_URL``: skip if unset, fail if unreachable."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(
            f"{POSTGRES_URL_ENV} is not set; set it to run the PostgreSQL tests, "
            "e.g. postgresql://postgres@127.0.0.1:5432/test"
        )
    engine = create_engine(normalise_url(url), connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as err:
        engine.dispose()
        pytest.fail(f"{POSTGRES_URL_ENV}={url} is set but the server is unreachable: {err}")
    server = PostgresServer(url, engine, f"cc_test_{secrets.token_hex(4)}", itertools.count(1))
    yield server
    # Drop whatever an interrupted test left behind under this session's prefix.
    with engine.begin() as conn:
        leftovers = list(
            conn.execute(
                text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :pattern"),
                {"pattern": f"{server.prefix}_%"},
            ).scalars()
        )
        for name in leftovers:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
    engine.dispose()


def _sqlite_database(tmp_path: Path) -> Database:
    return Database("sqlite", f"sqlite:///{tmp_path / 'db' / 'historian.db'}", None)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database of each backend."""
    if request.param == "sqlite":
        yield _sqlite_database(tmp_path)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    schema = server.new_schema()
    try:
        yield Database("postgresql", server.url, schema)
    finally:
        server.drop_schema(schema)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Database:
    """An empty SQLite database (for behaviour specific to the embedded backend)."""
    return _sqlite_database(tmp_path)


@pytest.fixture
def store(database: Database) -> Iterator[SqlHistorian]:
    """A store on each backend with the test tags registered."""
    opened = database.open()
    opened.ensure_tags(TAGS)
    try:
        yield opened
    finally:
        opened.close()
