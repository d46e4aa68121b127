"""Retention: raw samples are kept for weeks, minute rollups for a year, hour rollups for years.

Old rows are deleted tag by tag in chunks of ``chunk_rows``, each chunk its own short
transaction, so retention never holds a long lock against the writer nor bloats one transaction.
On PostgreSQL, whole day partitions (or TimescaleDB chunks) older than the cutoff are dropped
instead (``historian.postgres.drop_partitions_before``): instant, and no dead rows for VACUUM;
the rows left before the cutoff in the cutoff's own day are then deleted in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, delete, select

from historian import postgres
from historian.schema import rollup_1h, rollup_1m, samples, tags
from historian.store import SqlHistorian


class RetentionConfigError(ValueError):
    """Retention settings that cannot be used (a period not positive, a chunk of no rows)."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long each kind of data is kept."""

    raw: timedelta = timedelta(days=30)
    rollup_1m: timedelta = timedelta(days=365)
    rollup_1h: timedelta = timedelta(days=3650)
    chunk_rows: int = 50_000

    def __post_init__(self) -> None:
        for name in ("raw", "rollup_1m", "rollup_1h"):
            period: timedelta = getattr(self, name)
            if period <= timedelta(0):
                raise RetentionConfigError(f"{name} retention must be positive, not {period}")
        if self.chunk_rows < 1:
            raise RetentionConfigError(f"chunk_rows must be >= 1, not {self.chunk_rows}")


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one retention pass removed."""

    raw_rows_deleted: int
    partitions_dropped: tuple[str, ...]
    rollup_1m_rows_deleted: int
    rollup_1h_rows_deleted: int


def apply_retention(store: SqlHistorian, policy: RetentionPolicy, now: datetime) -> RetentionReport:
    """Delete what ``policy`` no longer keeps at ``now`` (timezone-aware)."""
    if now.utcoffset() is None:
        raise ValueError(f"naive time {now.isoformat()}: retention needs a UTC-aware now")
    raw_cutoff = now - policy.raw
    dropped: list[str] = []
    if store.backend == "postgresql":
        with store.writing("drop old sample partitions") as conn:
            if postgres.samples_layout(conn) in (
                postgres.SamplesLayout.PARTITIONED,
                postgres.SamplesLayout.HYPERTABLE,
            ):
                dropped = postgres.drop_partitions_before(conn, raw_cutoff)
    raw = _delete_before(store, samples, samples.c.server_time, raw_cutoff, policy.chunk_rows)
    minutes = _delete_before(
        store, rollup_1m, rollup_1m.c.bucket, now - policy.rollup_1m, policy.chunk_rows
    )
    hours = _delete_before(
        store, rollup_1h, rollup_1h.c.bucket, now - policy.rollup_1h, policy.chunk_rows
    )
    return RetentionReport(raw, tuple(dropped), minutes, hours)


def _delete_before(
    store: SqlHistorian, table: Table, time: Any, cutoff: datetime, chunk_rows: int
) -> int:
    """Delete rows older than ``cutoff``, tag by tag, at most ``chunk_rows`` per transaction."""
    deleted = 0
    for tag_id in _tags_with_rows_before(store, table, time, cutoff):
        while True:
            with store.writing(f"delete old rows of {table.name}") as conn:
                removed, more = _delete_chunk(conn, table, time, tag_id, cutoff, chunk_rows)
            deleted += removed
            if not more:
                break
    return deleted


def _tags_with_rows_before(
    store: SqlHistorian, table: Table, time: Any, cutoff: datetime
) -> list[int]:
    """The tags that hold rows in ``table`` older than ``cutoff``, in one read: an index seek
    on (tag_id, time) per tag inside the database. Most passes find none or few, and a write
    transaction per tag and table would cost seconds on every pass of a site of thousands."""
    older = select(table.c.tag_id).where(table.c.tag_id == tags.c.id, time < cutoff).exists()
    with store.reading(f"find old rows of {table.name}") as conn:
        return [int(tag_id) for tag_id in conn.scalars(select(tags.c.id).where(older))]


def _delete_chunk(
    conn: Connection, table: Table, time: Any, tag_id: int, cutoff: datetime, chunk_rows: int
) -> tuple[int, bool]:
    """Delete one tag's oldest rows before ``cutoff``, at most ``chunk_rows``; (count, more?)."""
    of_tag = table.c.tag_id == tag_id
    # The time of the first row beyond this chunk: an index seek on (tag_id, time), on both
    # backends, where DELETE ... LIMIT is SQLite-only (and only when compiled in).
    boundary = conn.execute(
        select(time).where(of_tag, time < cutoff).order_by(time).offset(chunk_rows).limit(1)
    ).scalar_one_or_none()
    until = cutoff if boundary is None else boundary
    result = conn.execute(delete(table).where(of_tag, time < until))
    return int(result.rowcount), boundary is not None
