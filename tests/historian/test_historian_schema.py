"""Schema versions, forward migrations and database URLs."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, text, update

from controlcenter.model import Quality, Sample
from historian import SCHEMA_VERSION, SchemaVersionError, SqlHistorian, UnsupportedDatabaseError
from historian.audit import AuditAction, AuditRecord
from historian.compression import CompressionSettings
from historian.engine import SQLITE_CACHE_KIB, create_historian_engine, normalise_url
from historian.migrations import migrate
from historian.postgres import SamplesLayout, day_partitions, samples_layout
from historian.schema import TAG_COMPRESSION_COLUMNS, metadata, schema_version
from tests.historian.historian_support import (
    LEVEL,
    MODE,
    STARTS,
    TAGS,
    Database,
    at,
    create_version_1_database,
    create_version_2_database,
    level_samples,
    sample,
)


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


def test_each_sqlite_connection_keeps_a_large_page_cache(sqlite_database: Database) -> None:
    # The writer's batches touch the index pages of thousands of tags (historian/engine.py).
    engine = create_historian_engine(sqlite_database.url)
    try:
        with engine.connect() as conn:
            size = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        assert size == -SQLITE_CACHE_KIB and SQLITE_CACHE_KIB >= 65_536
    finally:
        engine.dispose()


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
        assert [s.server_time for s in store.read_raw(LEVEL)] == [at(0)]


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


def test_a_version_1_database_migrates_to_the_current_version_keeping_its_data(
    database: Database,
) -> None:
    levels = [1.25, 2.5, 3.75, 5.0, 6.25]  # one per hour: spans a day boundary on PostgreSQL
    create_version_1_database(database, levels)

    with database.open() as store:
        assert store.schema_version() == SCHEMA_VERSION == 6
        stored = store.read_raw(LEVEL)
        # Existing tags get raw compression (what their samples went through).
        assert store.compression_settings()[LEVEL] == CompressionSettings()
        store.write_samples(level_samples(2, start=at(86_400.0)))
        assert store.read_audit() == []

    assert [s.value for s in stored] == levels
    assert [s.server_time for s in stored] == [at(i * 3600.0) for i in range(len(levels))]
    assert all(s.source_time == s.server_time for s in stored)
    engine = database.admin_engine()
    with engine.begin() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("tags")}
        tables = set(inspect(conn).get_table_names())
        layout = samples_layout(conn) if database.backend == "postgresql" else None
        partitions = day_partitions(conn) if database.backend == "postgresql" else {}
    engine.dispose()
    assert set(TAG_COMPRESSION_COLUMNS) <= columns
    assert {"audit_journal", *metadata.tables} <= tables  # every table this software knows
    if database.backend == "postgresql":
        assert layout is SamplesLayout.PARTITIONED
        assert {at(i * 3600.0).date() for i in range(len(levels))} <= set(partitions.values())


def test_a_version_2_database_gets_server_and_source_times_keeping_its_rows(
    database: Database,
) -> None:
    levels = [1.0, 2.0, 3.0]
    create_version_2_database(database, levels)
    received = at(86_400.0)
    device_stamp = at(10.0)  # a value the device stamped long before the center received it

    with database.open() as store:
        assert store.schema_version() == SCHEMA_VERSION
        store.write_samples([Sample(LEVEL, 9.0, Quality.good(), device_stamp, received)])
        stored = store.read_raw(LEVEL)

    # Rows of version 2 had one time: it is now both their server and their source time.
    assert [(s.value, s.server_time, s.source_time) for s in stored] == [
        *((value, at(i * 3600.0), at(i * 3600.0)) for i, value in enumerate(levels)),
        (9.0, received, device_stamp),
    ]
    engine = database.admin_engine()
    with engine.begin() as conn:
        columns = [c["name"] for c in inspect(conn).get_columns("samples")]
        key = inspect(conn).get_pk_constraint("samples")["constrained_columns"]
        layout = samples_layout(conn) if database.backend == "postgresql" else None
    engine.dispose()
    assert "time" not in columns and {"server_time", "source_time"} <= set(columns)
    assert key == ["tag_id", "server_time"]
    if database.backend == "postgresql":
        assert layout is SamplesLayout.PARTITIONED


def test_compression_settings_are_recorded_per_tag(database: Database) -> None:
    exception = CompressionSettings("exception", 0.5, True, max_interval_s=600.0)
    door = CompressionSettings("swinging_door", 0.02, False, 1.0, True, 60.0)
    with database.open() as store:
        store.ensure_tags(TAGS, compression={LEVEL: door, STARTS: exception})
        store.ensure_tags(TAGS)  # without settings: what is recorded stays
        recorded = store.compression_settings()
        store.ensure_tags(TAGS, compression={})
        reset = store.compression_settings()

    assert recorded[LEVEL] == door
    assert recorded[STARTS] == exception
    assert recorded[MODE] == CompressionSettings()
    assert set(reset.values()) == {CompressionSettings()}


def test_the_audit_journal_keeps_who_did_what(database: Database) -> None:
    records = [
        AuditRecord(at(0), AuditAction.LOGIN, "ada", "hmi", "from 10.0.0.9"),
        AuditRecord(at(1), AuditAction.LOGIN_FAILED, "mallory", "hmi", "bad password", False),
        AuditRecord(at(2), AuditAction.RULE_CHANGE, "ada", "water.tank1.fill", "off_above 6->7"),
    ]
    with database.open() as store:
        for record in records:
            store.journal_audit(record)
        assert store.read_audit() == records
        assert store.read_audit(action=AuditAction.LOGIN_FAILED) == [records[1]]
        assert store.read_audit(at(1), at(2)) == records[1:]


def test_times_keep_their_microseconds_in_utc(database: Database) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2024, 3, 1, 14, 0, 0, 999_999, tzinfo=plus_two)
    with database.open() as store:
        store.ensure_tags(TAGS)
        store.write_samples([sample(LEVEL, 1.0, local), sample(LEVEL, 2.0, at(0.000001))])
        stored = store.read_raw(LEVEL)

    assert [s.server_time for s in stored] == [at(0.000001), local]
    assert all(s.server_time.tzinfo is UTC and s.source_time.tzinfo is UTC for s in stored)
    assert stored[1].server_time.microsecond == 999_999
    assert stored[1].source_time.microsecond == 996_999
