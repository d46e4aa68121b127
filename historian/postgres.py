"""PostgreSQL storage of samples: day partitions (or a TimescaleDB hypertable) and COPY writes.

Layout. ``samples`` is declaratively partitioned by ``RANGE (server_time)`` (the time the center
received the sample, which orders history; see ``historian.schema``) with one partition per UTC
day (``samples_p20240301``) and a DEFAULT partition (``samples_default``), so a row whose day has
no partition yet is still stored, never refused. The writer creates the partitions of the days a
batch covers before writing it, so the default partition normally stays empty. Retention drops
whole partitions (``drop_partitions_before``): instant, and no dead rows left for VACUUM.

Where the TimescaleDB extension is installed in the database (``CREATE EXTENSION timescaledb``),
``samples`` becomes a hypertable with one-day chunks instead: TimescaleDB then creates the chunks
itself and retention uses ``drop_chunks``. The extension is detected, never required; nothing
here creates it (it needs ``shared_preload_libraries`` and a superuser).

Writes. A batch is encoded here into PostgreSQL's binary COPY format (``struct``, one call per
row) and goes by ``COPY samples ... FROM STDIN (FORMAT BINARY)`` straight into the table, inside
a savepoint: COPY is several times faster than row-by-row INSERTs (the PostgreSQL manual,
"Populating a Database", 14.4.2), and a plain COPY costs the server about half of what staging
the rows and inserting them with ``ON CONFLICT`` does. COPY cannot skip conflicting rows, so a
batch holding a row already stored (a replay after a crash or an outage) fails on the primary
key as a whole; it is then rolled back to the savepoint and the same bytes go into a temporary
table, then ``INSERT INTO samples SELECT ... ON CONFLICT (tag_id, server_time) DO NOTHING``.
Writes stay idempotent: a replayed batch stores nothing twice.
"""

from __future__ import annotations

import re
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import Connection, text
from sqlalchemy.schema import CreateTable

from historian.schema import samples
from historian.timetypes import EPOCH

TEMP_TABLE = "samples_incoming"
DEFAULT_PARTITION = "samples_default"
PARTITION_DAYS_AHEAD = 2
"""Partitions created ahead of the current day when a store opens, so the day turns quietly."""

_PARTITION_NAME = re.compile(r"samples_p(\d{8})")
_ONE_DAY = timedelta(days=1)
_EXACT_DAYS_ABOVE = 31
"""A batch spanning more days than this gets partitions only for the days it really holds."""
_COLUMNS = "tag_id, server_time, source_time, value, text_value, quality, reason"
_SAVEPOINT = "historian_copy"

SampleRow = tuple[int, int, int | None, float | None, str | None, int, str | None]
"""One row of ``samples`` in column order: tag id, server time and source time (microseconds
since the Unix epoch, UTC; the source time None when it equals the server time), value, text
value, quality (status code), reason."""

# Binary COPY (the PostgreSQL manual, COPY, "Binary Format"): a signature, a flags word and a
# header-extension length, then per row a field count and per field a length (-1 for NULL) and
# the value in network byte order, then -1. The field types must match the columns exactly
# (historian.schema.samples): int4, timestamptz, timestamptz, float8, text, int8, text.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_FIELDS = 7
_NULL_FIELD = struct.pack(">i", -1)
_NUMERIC_ROW = struct.Struct(">hiiiqiidiiqi")
"""A whole row with a value, no source time of its own, no text value and no reason: the
common case (a polled Modbus or BACnet value), one call."""
_NUMERIC_ROW_WITH_SOURCE = struct.Struct(">hiiiqiqidiiqi")
"""The same with a source time (an OPC UA value stamped by its device), one call."""
_ROW_START = struct.Struct(">hiiiq")
_TIME_FIELD = struct.Struct(">iq")
_FLOAT8_FIELD = struct.Struct(">id")
_INT8_FIELD = struct.Struct(">iq")
_LENGTH = struct.Struct(">i")
_PG_EPOCH_US = (datetime(2000, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
"""PostgreSQL counts timestamps in microseconds from 2000-01-01 UTC, rows from 1970."""
_COPY_CHUNK_ROWS = 2000
"""Rows encoded per write (about 110 kB): the server parses a chunk while the next is encoded,
and a chunk stays under psycopg's largest single write, which it would otherwise copy to split."""
_DAY_US = 86_400_000_000
_EPOCH_DAY = EPOCH.date()


class TimescaleStatus(StrEnum):
    """Whether the TimescaleDB extension can be used in this database."""

    ABSENT = "absent"
    """Not installed on the server."""
    AVAILABLE = "available"
    """Installed on the server, but not created in this database: not used."""
    INSTALLED = "installed"
    """Created in this database: ``samples`` becomes a hypertable."""


class SamplesLayout(StrEnum):
    """How the ``samples`` table is stored."""

    PARTITIONED = "partitioned"
    HYPERTABLE = "hypertable"
    PLAIN = "plain"
    """A single table: a schema version 1 database not yet migrated."""
    MISSING = "missing"


def detect_timescaledb(conn: Connection) -> TimescaleStatus:
    """Whether TimescaleDB is absent, available on the server, or installed in this database."""
    row = conn.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'), "
            "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
        )
    ).one()
    if row[0]:
        return TimescaleStatus.INSTALLED
    return TimescaleStatus.AVAILABLE if row[1] else TimescaleStatus.ABSENT


def samples_layout(conn: Connection) -> SamplesLayout:
    """How ``samples`` (found through the search path) is stored."""
    kind = conn.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass('samples')")
    ).scalar_one_or_none()
    if kind is None:
        return SamplesLayout.MISSING
    if kind == "p":
        return SamplesLayout.PARTITIONED
    if detect_timescaledb(conn) is TimescaleStatus.INSTALLED:
        is_hypertable = conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables "
                "WHERE hypertable_name = 'samples' AND hypertable_schema = current_schema())"
            )
        ).scalar_one()
        if is_hypertable:
            return SamplesLayout.HYPERTABLE
    return SamplesLayout.PLAIN


def create_samples_table(conn: Connection, *, today: date | None = None) -> SamplesLayout:
    """Create ``samples``: a hypertable where TimescaleDB is installed, else day partitions."""
    ddl = str(CreateTable(samples).compile(dialect=conn.dialect)).strip()
    if detect_timescaledb(conn) is TimescaleStatus.INSTALLED:
        conn.exec_driver_sql(ddl)
        _make_hypertable(conn, "server_time", migrate_data=False)
        return SamplesLayout.HYPERTABLE
    conn.exec_driver_sql(f"{ddl} PARTITION BY RANGE (server_time)")
    conn.exec_driver_sql(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF samples DEFAULT")
    first = today or datetime.now(UTC).date()
    ensure_day_partitions(conn, [first + i * _ONE_DAY for i in range(PARTITION_DAYS_AHEAD + 1)])
    return SamplesLayout.PARTITIONED


def convert_to_partitioned(conn: Connection) -> SamplesLayout:
    """Turn a plain ``samples`` table (schema version 1) into the current layout, keeping rows.

    A hypertable keeps the version 1 columns (the next migration step renames them); day
    partitions are made with the current columns, each row's one time as its server time.
    """
    if samples_layout(conn) is not SamplesLayout.PLAIN:
        return samples_layout(conn)
    if detect_timescaledb(conn) is TimescaleStatus.INSTALLED:
        _make_hypertable(conn, "time", migrate_data=True)
        return SamplesLayout.HYPERTABLE
    conn.exec_driver_sql("ALTER TABLE samples RENAME TO samples_v1")
    conn.exec_driver_sql("ALTER TABLE samples_v1 RENAME CONSTRAINT samples_pkey TO samples_v1_pkey")
    create_samples_table(conn)
    days = conn.execute(
        text("SELECT DISTINCT (time AT TIME ZONE 'UTC')::date FROM samples_v1")
    ).scalars()
    ensure_day_partitions(conn, list(days))
    kept = "value, text_value, quality, reason"
    conn.exec_driver_sql(
        f"INSERT INTO samples (tag_id, server_time, {kept}) "
        f"SELECT tag_id, time, {kept} FROM samples_v1"
    )
    conn.exec_driver_sql("DROP TABLE samples_v1")
    return SamplesLayout.PARTITIONED


def _make_hypertable(conn: Connection, time_column: str, *, migrate_data: bool) -> None:
    conn.execute(
        text(
            "SELECT create_hypertable('samples', :column, "
            "chunk_time_interval => INTERVAL '1 day', "
            "if_not_exists => TRUE, migrate_data => :migrate)"
        ),
        {"column": time_column, "migrate": migrate_data},
    )


def partition_name(day: date) -> str:
    """The name of the partition holding the samples of one UTC day."""
    return f"samples_p{day:%Y%m%d}"


def day_partitions(conn: Connection) -> dict[str, date]:
    """The day partitions of ``samples`` by name (the default partition is not one)."""
    names = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('samples')"
        )
    ).scalars()
    found: dict[str, date] = {}
    for name in names:
        match = _PARTITION_NAME.fullmatch(name)
        if match is not None:
            found[name] = datetime.strptime(match.group(1), "%Y%m%d").date()
    return found


def ensure_day_partitions(conn: Connection, days: Iterable[date]) -> list[str]:
    """Create the partitions of ``days`` that do not exist yet; return the names created.

    Rows of such a day already in the default partition are moved into the new partition (a
    partition cannot be created over rows the default partition holds for its range).
    """
    existing = set(day_partitions(conn))
    created: list[str] = []
    for day in sorted(set(days)):
        name = partition_name(day)
        if name in existing:
            continue
        low, high = _bound(day), _bound(day + _ONE_DAY)
        bounds = f"FOR VALUES FROM ('{low}') TO ('{high}')"
        strays = conn.execute(
            text(
                f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} "
                "WHERE server_time >= :low AND server_time < :high)"
            ),
            {"low": low, "high": high},
        ).scalar_one()
        if not strays:
            conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF samples {bounds}")
        else:
            conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE samples INCLUDING ALL)")
            conn.execute(
                text(
                    f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
                    "WHERE server_time >= :low AND server_time < :high RETURNING *) "
                    f"INSERT INTO {name} ({_COLUMNS}) SELECT {_COLUMNS} FROM moved"
                ),
                {"low": low, "high": high},
            )
            conn.exec_driver_sql(f"ALTER TABLE samples ATTACH PARTITION {name} {bounds}")
        created.append(name)
    return created


def _bound(day: date) -> str:
    return f"{day.isoformat()} 00:00:00+00"


def drop_partitions_before(conn: Connection, cutoff: datetime) -> list[str]:
    """Remove samples older than ``cutoff``; return the partitions (or chunks) dropped.

    Day partitions that end at or before ``cutoff`` are dropped whole; rows before ``cutoff``
    in the default partition are deleted. Samples of the day ``cutoff`` falls in are kept. On a
    hypertable, TimescaleDB's ``drop_chunks`` does the same with its chunks.
    """
    if cutoff.utcoffset() is None:
        raise ValueError(f"naive cutoff {cutoff.isoformat()}: the historian needs UTC times")
    layout = samples_layout(conn)
    if layout is SamplesLayout.HYPERTABLE:
        dropped = conn.execute(
            text("SELECT drop_chunks('samples', older_than => :cutoff)::text"), {"cutoff": cutoff}
        ).scalars()
        return list(dropped)
    if layout is not SamplesLayout.PARTITIONED:
        conn.execute(text("DELETE FROM samples WHERE server_time < :cutoff"), {"cutoff": cutoff})
        return []
    last_day = cutoff.astimezone(UTC).date()
    dropped_names = [
        name for name, day in sorted(day_partitions(conn).items()) if day + _ONE_DAY <= last_day
    ]
    # A day that ends exactly at a midnight cutoff goes too: every row of it is before cutoff.
    for name in dropped_names:
        conn.exec_driver_sql(f"DROP TABLE {name}")
    conn.execute(
        text(f"DELETE FROM {DEFAULT_PARTITION} WHERE server_time < :cutoff"),
        {"cutoff": cutoff},
    )
    return dropped_names


class SampleCopier:
    """Writes batches of sample rows with COPY, creating day partitions as data arrives.

    Thread-safe: each call works on the connection it is given; only the set of days known to
    have a partition is shared, under a lock.
    """

    def __init__(self, layout: SamplesLayout) -> None:
        self.layout = layout
        self._days_ready: set[date] = set()
        self._lock = threading.Lock()

    def forget_partitions(self) -> None:
        """Check the partitions again before the next write (after a failure, or retention)."""
        with self._lock:
            self._days_ready.clear()

    def prepare_partitions(self, conn: Connection, times_us: Sequence[int]) -> None:
        """Create the partitions the rows' days need (times in microseconds since the epoch),
        in the caller's (own, short) transaction."""
        if self.layout is not SamplesLayout.PARTITIONED or not times_us:
            return
        days = _days_of(times_us)
        with self._lock:
            missing = days - self._days_ready
        if not missing:
            return
        ensure_day_partitions(conn, missing)
        with self._lock:
            self._days_ready |= missing

    def copy_rows(self, conn: Connection, rows: Sequence[SampleRow]) -> None:
        """COPY ``rows`` into ``samples`` inside the caller's transaction; conflicts ignored."""
        raw = conn.connection.dbapi_connection
        if not isinstance(raw, psycopg.Connection):
            raise TypeError(f"expected a psycopg connection, got {type(raw).__name__}")
        chunks = _copy_chunks(rows, raw.info.encoding)
        sent: list[bytes] = []
        with raw.cursor() as cursor:
            cursor.execute(f"SAVEPOINT {_SAVEPOINT}")
            try:
                _copy(cursor, "samples", chunks, sent)
            except pg_errors.UniqueViolation:
                # Some row is stored already: this is a replay. The savepoint keeps the
                # transaction usable, and the bytes already encoded are sent again.
                cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                sent.extend(chunks)
                _insert_new_rows(cursor, sent)
            cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")


def _copy(
    cursor: psycopg.Cursor[object], table: str, chunks: Iterator[bytes], sent: list[bytes]
) -> None:
    """COPY the chunks of binary COPY data into ``table``, keeping each in ``sent``."""
    with cursor.copy(f"COPY {table} ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        for chunk in chunks:
            sent.append(chunk)
            copy.write(chunk)


def _insert_new_rows(cursor: psycopg.Cursor[object], encoded: list[bytes]) -> None:
    """Store the rows of ``encoded`` that are not stored yet, through a temporary table."""
    # Made and dropped here, inside the transaction: this path is rare, and a table that never
    # outlives its transaction leaves no state in the connection that a rollback could undo.
    cursor.execute(f"CREATE TEMPORARY TABLE {TEMP_TABLE} (LIKE samples INCLUDING DEFAULTS)")
    _copy(cursor, TEMP_TABLE, iter(encoded), [])
    cursor.execute(
        f"INSERT INTO samples ({_COLUMNS}) SELECT {_COLUMNS} FROM {TEMP_TABLE} "
        "ON CONFLICT (tag_id, server_time) DO NOTHING"
    )
    cursor.execute(f"DROP TABLE {TEMP_TABLE}")


def _copy_chunks(rows: Sequence[SampleRow], encoding: str) -> Iterator[bytes]:
    """``rows`` as binary COPY data, header and trailer included, in chunks of rows."""
    pack_numeric = _NUMERIC_ROW.pack
    pack_numeric_with_source = _NUMERIC_ROW_WITH_SOURCE.pack
    fields, epoch = _FIELDS, _PG_EPOCH_US  # locals: this loop runs once per sample
    yield _COPY_HEADER
    for first in range(0, len(rows), _COPY_CHUNK_ROWS):
        parts: list[bytes] = []
        append = parts.append
        for row in rows[first : first + _COPY_CHUNK_ROWS]:
            tag_id, server_us, source_us, value, text_value, quality, reason = row
            if value is not None and text_value is None and reason is None:
                if source_us is None:
                    append(
                        pack_numeric(
                            fields,
                            4,
                            tag_id,
                            8,
                            server_us - epoch,
                            -1,
                            8,
                            value,
                            -1,
                            8,
                            quality,
                            -1,
                        )
                    )
                else:
                    append(
                        pack_numeric_with_source(
                            fields,
                            4,
                            tag_id,
                            8,
                            server_us - epoch,
                            8,
                            source_us - epoch,
                            8,
                            value,
                            -1,
                            8,
                            quality,
                            -1,
                        )
                    )
            else:
                append(_encode_row(row, encoding))
        yield b"".join(parts)
    yield _COPY_TRAILER


def _encode_row(row: SampleRow, encoding: str) -> bytes:
    """One row in binary COPY format, any column NULL or not."""
    tag_id, server_us, source_us, value, text_value, quality, reason = row
    return b"".join(
        (
            _ROW_START.pack(_FIELDS, 4, tag_id, 8, server_us - _PG_EPOCH_US),
            _NULL_FIELD if source_us is None else _TIME_FIELD.pack(8, source_us - _PG_EPOCH_US),
            _NULL_FIELD if value is None else _FLOAT8_FIELD.pack(8, value),
            _text_field(text_value, encoding),
            _INT8_FIELD.pack(8, quality),
            _text_field(reason, encoding),
        )
    )


def _text_field(value: str | None, encoding: str) -> bytes:
    if value is None:
        return _NULL_FIELD
    # Binary COPY sends text in the connection's client encoding, as the server expects it.
    data = value.encode(encoding)
    return _LENGTH.pack(len(data)) + data


def _days_of(times_us: Sequence[int]) -> set[date]:
    first, last = min(times_us) // _DAY_US, max(times_us) // _DAY_US
    if last - first <= _EXACT_DAYS_ABOVE:
        day_numbers: Iterable[int] = range(first, last + 1)
    else:
        day_numbers = {moment // _DAY_US for moment in times_us}
    return {_EPOCH_DAY + timedelta(days=number) for number in day_numbers}
