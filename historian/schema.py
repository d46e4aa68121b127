"""The historian's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Design notes for what comes next:

- ``samples`` is keyed by (tag_id, time): a tag's history is one contiguous index range, which is
  what raw and trend queries scan. On SQLite the table is WITHOUT ROWID, so that key *is* the
  table's b-tree and no second index is kept up to date on insert. On PostgreSQL the key includes
  the time column, which native partitioning by time (or a TimescaleDB hypertable) requires.
- ``samples`` has no foreign key to ``tags``: the store resolves every tag id from its own
  registry before writing, and a per-row foreign-key check would slow ingest for nothing.
- Quality is the OPC UA status code (Part 4, 7.39). Codes of Bad qualities exceed 2**31, so the
  column is a BIGINT (PostgreSQL's INTEGER is signed 32-bit).
- Only the source time is stored (as in OPC UA HA's raw history and in PI): a read returns it
  as both the source and the server time.
- Values of numeric and boolean tags go to ``value`` (a double); string tags use ``text_value``.
  A Bad sample with no value has both NULL.
- Compression settings per tag, rollup tables and a spool journal arrive as new schema versions
  (see ``historian.migrations``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

from historian.timetypes import UtcDateTime

SCHEMA_VERSION = 1
"""The version of the schema this code creates and expects; bump it with every migration."""

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    # A single row: the CHECK makes a second row impossible.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
    CheckConstraint("id = 1", name="schema_version_single_row"),
)

tags = Table(
    "tags",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("unit", Text, nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("data_type", Text, nullable=False),
    Column("low", Double, nullable=True),
    Column("high", Double, nullable=True),
)

samples = Table(
    "samples",
    metadata,
    Column("tag_id", Integer, nullable=False),
    Column("time", UtcDateTime, nullable=False),
    Column("value", Double, nullable=True),
    Column("text_value", Text, nullable=True),
    Column("quality", BigInteger, nullable=False),
    Column("reason", Text, nullable=True),
    PrimaryKeyConstraint("tag_id", "time", name="samples_pkey"),
    sqlite_with_rowid=False,
)

command_journal = Table(
    "command_journal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("command_id", Text, nullable=False, unique=True),
    Column("tag", Text, nullable=False),
    # Commanded and read-back values are JSON scalars so that bool/int/float/str come back as sent.
    Column("value", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("requested_by", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("status", Text, nullable=False),
    Column("result_reason", Text, nullable=False),
    Column("readback", Text, nullable=True),
    Column("completed_at", UtcDateTime, nullable=False),
)
Index("command_journal_issued_at", command_journal.c.issued_at)
Index("command_journal_tag_issued_at", command_journal.c.tag, command_journal.c.issued_at)

event_journal = Table(
    "event_journal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", UtcDateTime, nullable=False),
    Column("kind", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("message", Text, nullable=False),
    # Not "user": that is a reserved word in PostgreSQL and would need quoting in raw SQL (COPY).
    Column("user_name", Text, nullable=False, default=""),
    Column("severity", Integer, nullable=False, default=0),
)
Index("event_journal_time", event_journal.c.time)
Index("event_journal_kind_time", event_journal.c.kind, event_journal.c.time)
