"""Schema versions, forward migrations and database URLs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, text, update

from historian import SCHEMA_VERSION, SchemaVersionError, SqlHistorian, UnsupportedDatabaseError
from historian.engine import create_historian_engine, normalise_url
from historian.migrations import migrate
from historian.schema import schema_version
from tests.historian.historian_support import LEVEL, TAGS, Database, at, level_samples


def test_a_new_database_records_the_current_schema_version(database: Database) -> None:
    with database.open() as store:
        assert store.schema_version() == SCHEMA_VERSION


def test_reopening_keeps_the_data(database: Database) -> None:
    with database.open() as store:
        store.ensure_tags(TAGS)
        store.write_samples(level_samples(10))

    with database.open() as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert [s.value for s in store.read_raw(LEVEL)] == [i * 0.5 for i in range(10)]


def test_a_database_newer_than_the_software_is_refused(database: Database) -> None:
    database.open().close()
    engine = database.admin_engine()
    with engine.begin() as conn:
        conn.execute(update(schema_version).values(version=SCHEMA_VERSION + 1))
    engine.dispose()

    with pytest.raises(SchemaVersionError, match="newer than this software"):
        database.open()


def _add_site_column(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE tags ADD COLUMN site TEXT NOT NULL DEFAULT 'city'"))


def test_a_migration_step_moves_the_schema_forward_keeping_data(database: Database) -> None:
    with database.open() as store:
        store.ensure_tags(TAGS)
        store.write_samples(level_samples(3))
    next_version = SCHEMA_VERSION + 1
    engine = database.admin_engine()

    with engine.begin() as conn:
        before = migrate(conn, target=next_version, steps={next_version: _add_site_column})
    with engine.begin() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("tags")}
        again = migrate(conn, target=next_version, steps={next_version: _add_site_column})
    engine.dispose()

    assert before == SCHEMA_VERSION
    assert again == next_version  # already there: the step did not run twice
    assert "site" in columns
    with pytest.raises(SchemaVersionError):
        database.open()  # this software is now older than the database
    engine = database.admin_engine()
    with engine.begin() as conn:
        conn.execute(update(schema_version).values(version=SCHEMA_VERSION))
    engine.dispose()
    with database.open() as store:
        assert len(store.read_raw(LEVEL)) == 3


def test_a_missing_migration_step_is_an_error(database: Database) -> None:
    database.open().close()
    engine = database.admin_engine()
    with pytest.raises(SchemaVersionError, match="no migration step"), engine.begin() as conn:
        migrate(conn, target=SCHEMA_VERSION + 1, steps={})
    engine.dispose()


def test_a_foreign_database_is_not_taken_over(sqlite_database: Database) -> None:
    path = Path(normalise_url(sqlite_database.url).database or "")
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE samples (x INTEGER)")

    with pytest.raises(SchemaVersionError, match="not a historian database"):
        sqlite_database.open()


def test_sqlite_runs_in_wal_mode(sqlite_database: Database) -> None:
    sqlite_database.open().close()
    path = normalise_url(sqlite_database.url).database or ""

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_relative_sqlite_paths_resolve_and_create_their_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with SqlHistorian.open("sqlite:///var/data/history.db") as store:
        store.ensure_tags(TAGS)
        store.write_samples(level_samples(1))
        assert store.backend == "sqlite"
    monkeypatch.chdir("/")

    assert (tmp_path / "var" / "data" / "history.db").is_file()
    with SqlHistorian(f"sqlite:///{tmp_path}/var/data/history.db") as store:
        assert [s.source_time for s in store.read_raw(LEVEL)] == [at(0)]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/test",
        "postgres://postgres@127.0.0.1:5432/test",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    ],
)
def test_postgresql_urls_use_psycopg_3(url: str) -> None:
    assert normalise_url(url).drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "mysql://root@localhost/db",
        "postgresql+psycopg2://postgres@localhost/test",
        "not a url",
    ],
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsupportedDatabaseError):
        normalise_url(url)


def test_a_schema_is_postgresql_only(sqlite_database: Database) -> None:
    with pytest.raises(UnsupportedDatabaseError, match="PostgreSQL"):
        SqlHistorian(sqlite_database.url, schema="elsewhere")


def test_a_postgresql_schema_name_must_be_an_identifier() -> None:
    # Refused before any connection is made: the name ends up in the connection's search_path.
    with pytest.raises(UnsupportedDatabaseError, match="schema name"):
        create_historian_engine("postgresql://postgres@127.0.0.1/test", schema="x; DROP TABLE tags")
