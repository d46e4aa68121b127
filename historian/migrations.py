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

from controlcenter.model import utc_now
from historian.errors import SchemaVersionError
from historian.schema import SCHEMA_VERSION, metadata, schema_version

MigrationStep = Callable[[Connection], None]
"""Takes a database from version N-1 to version N, inside the caller's transaction."""

MIGRATIONS: Mapping[int, MigrationStep] = {}
"""Steps by the version they produce (2, 3...); version 1 is the initial schema."""

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


def current_version(conn: Connection) -> int:
    """The schema version recorded in the database (0 when it has no historian schema)."""
    if not inspect(conn).has_table(schema_version.name):
        return 0
    found = conn.execute(select(schema_version.c.version)).scalar_one_or_none()
    return 0 if found is None else int(found)
