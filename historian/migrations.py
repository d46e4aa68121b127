"""Forward-only schema migrations, applied in one transaction when a store opens.

A new database is created directly at the current version from ``schema.metadata``. An older
database is brought forward one version at a time by the steps in ``MIGRATIONS``; each step
changes tables in place (ALTER/CREATE/UPDATE) and so keeps the data. A database newer than this
software is refused: running old code against a newer schema could corrupt it.

To change the schema: edit ``schema.py``, bump ``SCHEMA_VERSION`` and add a step here that takes
a database of the previous version to the new one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy import Connection, MetaData, insert, inspect, select, text, update
from sqlalchemy.schema import CreateColumn

from controlcenter.model import utc_now
from historian import postgres
from historian.errors import SchemaVersionError
from historian.schema import (
    EVENT_SUBJECT_COLUMNS,
    SCHEMA_VERSION,
    TAG_COMPRESSION_COLUMNS,
    event_journal,
    metadata,
    samples,
    schema_version,
    tags,
)

MigrationStep = Callable[[Connection], None]
"""Takes a database from version N-1 to version N, inside the caller's transaction."""


def _to_version_2(conn: Connection) -> None:
    """Compression settings per tag, the audit journal, and (PostgreSQL) partitioned samples."""
    present = {column["name"] for column in inspect(conn).get_columns(tags.name)}
    for name in TAG_COMPRESSION_COLUMNS:
        if name not in present:
            # CreateColumn renders the column as in CREATE TABLE, with its server default, so
            # existing tags get the default (raw) settings.
            spec = CreateColumn(tags.c[name]).compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {tags.name} ADD COLUMN {spec}")
    if conn.dialect.name == "postgresql":
        postgres.convert_to_partitioned(conn)
    # Every table of this software that the database lacks (the audit journal, and any table
    # added since without a step of its own) is created empty.
    create_missing_tables(conn)


def _to_version_3(conn: Connection) -> None:
    """Samples keyed by server time, with the source time beside it.

    ``time`` becomes ``server_time`` (still the key, the partition and the hypertable column:
    PostgreSQL and TimescaleDB carry a renamed column into partitions, chunks and the primary
    key) and ``source_time`` is added empty, which reads as "equal to the server time": every
    row stored before keeps its one time as both, and no row is rewritten.
    """
    present = {column["name"] for column in inspect(conn).get_columns(samples.name)}
    if "server_time" not in present:
        conn.exec_driver_sql(f"ALTER TABLE {samples.name} RENAME COLUMN time TO server_time")
    if "source_time" not in present:
        spec = CreateColumn(samples.c.source_time).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {samples.name} ADD COLUMN {spec}")


def _to_version_4(conn: Connection) -> None:
    """Rule-set versions, the requested-version pointer and the operators' overrides.

    New tables only: ``create_missing_tables`` creates them empty (``checkfirst``, so a step 2
    that already created them from the current metadata is no problem).
    """
    create_missing_tables(conn)


def _to_version_5(conn: Connection) -> None:
    """Alarm management: alarm states, the alarm journal, the alarm request queue, and the
    subject (tag, device, area) of events in the event journal.

    The event journal's new columns are nullable: existing events keep no subject, and no row
    is rewritten. The alarm tables are new and created empty.
    """
    present = {column["name"] for column in inspect(conn).get_columns(event_journal.name)}
    for name in EVENT_SUBJECT_COLUMNS:
        if name not in present:
            spec = CreateColumn(event_journal.c[name]).compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {event_journal.name} ADD COLUMN {spec}")
    create_missing_tables(conn)


def _to_version_6(conn: Connection) -> None:
    """The leak detector's learnt baselines (``leak_baselines``): a new table, created empty."""
    create_missing_tables(conn)


MIGRATIONS: Mapping[int, MigrationStep] = {
    2: _to_version_2,
    3: _to_version_3,
    4: _to_version_4,
    5: _to_version_5,
    6: _to_version_6,
}
"""Steps by the version they produce (2, 3, 4, 5...); version 1 is the initial schema."""

# Any constant will do: it only has to be the same for every process opening the database.
_POSTGRES_LOCK_KEY = 0x43_43_48_49  # "CCHI"


def migrate(
    conn: Connection,
    *,
    target: int = SCHEMA_VERSION,
    tables: MetaData = metadata,
    steps: Mapping[int, MigrationStep] = MIGRATIONS,
) -> int:
    """Bring the database on ``conn`` to ``target``; return the version it had before (0 if new).

    Must run inside a transaction that excludes concurrent migrators: on SQLite the store opens
    it with BEGIN IMMEDIATE; on PostgreSQL a transaction-scoped advisory lock is taken here.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_LOCK_KEY})
    inspector = inspect(conn)
    if not inspector.has_table(schema_version.name):
        ours = set(tables.tables)
        present = sorted(ours & set(inspector.get_table_names()))
        if present:
            raise SchemaVersionError(
                f"tables {', '.join(present)} exist but schema_version does not: "
                "not a historian database, or one created by a foreign tool"
            )
        if tables is metadata:
            create_missing_tables(conn)
        else:
            tables.create_all(conn)
        conn.execute(insert(schema_version).values(id=1, version=target, applied_at=utc_now()))
        return 0
    stored = conn.execute(select(schema_version.c.version)).scalar_one_or_none()
    if stored is None:
        raise SchemaVersionError("schema_version has no row: the database is damaged")
    found = int(stored)
    if found > target:
        raise SchemaVersionError(
            f"database schema version {found} is newer than this software's ({target}); "
            "upgrade the control center before opening it"
        )
    for version in range(found + 1, target + 1):
        step = steps.get(version)
        if step is None:
            raise SchemaVersionError(f"no migration step to schema version {version}")
        step(conn)
        conn.execute(update(schema_version).values(version=version, applied_at=utc_now()))
    return found


def create_missing_tables(conn: Connection) -> None:
    """Create every table of ``schema.metadata`` missing from the database.

    On PostgreSQL ``samples`` is created by ``historian.postgres`` (day partitions, or a
    hypertable where TimescaleDB is installed), not as the plain table the metadata describes.
    """
    if conn.dialect.name == "postgresql":
        if postgres.samples_layout(conn) is postgres.SamplesLayout.MISSING:
            postgres.create_samples_table(conn)
        others = [table for table in metadata.sorted_tables if table is not samples]
        metadata.create_all(conn, tables=others, checkfirst=True)
        return
    metadata.create_all(conn, checkfirst=True)


def current_version(conn: Connection) -> int:
    """The schema version recorded in the database (0 when it has no historian schema)."""
    if not inspect(conn).has_table(schema_version.name):
        return 0
    found = conn.execute(select(schema_version.c.version)).scalar_one_or_none()
    return 0 if found is None else int(found)
