"""``controlcenter bench historian``: the historian's write path and queries, measured.

Every figure comes from the real code on a real database: SQLite in a temporary file, or
PostgreSQL in a fresh schema dropped afterwards.

- ``ingest_values_per_s``: raw-mode samples through ``HistorianWriter`` into the store, from the
  first ``enqueue`` until ``flush`` returns (batches of ``batch`` samples, one transaction each).
- ``raw_insert_values_per_s``: the same rows through plain DB-API ``executemany`` into a table
  of the same shape, one transaction per batch: the ceiling the writer is compared with.
- ``compression_ratio`` / ``max_reconstruction_error_ratio``: simulated plant signals (tank
  level, supply temperature, flow with pump steps, a noisy pressure) through swinging-door
  compression and back out of the database; the error of linear interpolation between stored
  samples divided by the tag's error bound (``CompressionSettings.error_bound``), so <= 1.
- ``trend_query_ms``: ``historian.trend.read_trend`` of one tag over 30 days of 1 s data
  (rollups built first) at 2,000 points; ``raw_query_ms``: 24 h of that tag's raw samples.
- ``spool_drain_values_per_s``: samples replayed from a full disk spool into the database.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, select, text

from controlcenter.model import DataType, Quality, Sample, TagDef
from historian.compression import (
    CompressionSettings,
    Compressor,
    reconstruction_errors,
)
from historian.engine import normalise_url
from historian.postgres import samples_layout
from historian.rollups import RollupMaintainer
from historian.schema import tags
from historian.series import tag_info
from historian.spool import DiskSpool
from historian.store import SqlHistorian
from historian.timetypes import to_epoch_us
from historian.trend import read_trend
from historian.writer import HistorianWriter

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_START = datetime(2025, 1, 1, tzinfo=UTC)
"""Fixed start of the simulated data, so runs are comparable."""


class BenchError(RuntimeError):
    """The benchmark could not run (database unreachable, a part missing)."""


@dataclass(frozen=True, slots=True)
class BenchSize:
    """How much data each measurement uses."""

    ingest_values: int = 1_000_000
    ingest_tags: int = 50
    batch: int = 10_000
    compression_seconds: int = 86_400
    trend_hours: int = 30 * 24
    drain_values: int = 200_000


TINY = BenchSize(
    ingest_values=4_000,
    ingest_tags=4,
    batch=1_000,
    compression_seconds=3_600,
    trend_hours=3,
    drain_values=2_000,
)
"""A size for tests: every path runs, in seconds."""


@dataclass(frozen=True, slots=True)
class HistorianBenchResult:
    """The figures of one run (printed as one JSON object)."""

    backend: str
    ingest_values: int
    ingest_values_per_s: float
    raw_insert_values_per_s: float
    ingest_ratio: float
    compression_ratio: float
    max_reconstruction_error_ratio: float
    trend_query_ms: float
    trend_points: int
    trend_source: str
    raw_query_ms: float
    raw_query_rows: int
    spool_drain_values_per_s: float
    samples_layout: str

    def as_json(self) -> dict[str, Any]:
        """The figures as a JSON-ready mapping, rounded for reading."""
        return {
            key: round(value, 3) if isinstance(value, float) else value
            for key, value in asdict(self).items()
        }


def run_historian_bench(
    backend: str, db_url: str | None = None, size: BenchSize | None = None
) -> HistorianBenchResult:
    """Run every measurement on a fresh database of ``backend`` (sqlite or postgresql)."""
    chosen = size or BenchSize()
    with _fresh_database(backend, db_url) as (url, schema, workdir):
        store = SqlHistorian(url, schema=schema)
        try:
            return _measure(store, backend, workdir, chosen)
        finally:
            store.close()


@contextmanager
def _fresh_database(backend: str, db_url: str | None) -> Iterator[tuple[str, str | None, Path]]:
    workdir = Path(tempfile.mkdtemp(prefix="cc-bench-historian-"))
    try:
        if backend == "sqlite":
            yield db_url or f"sqlite:///{workdir / 'historian.db'}", None, workdir
            return
        if backend != "postgresql":
            raise BenchError(f"unknown backend {backend!r}: use sqlite or postgresql")
        url = db_url or DEFAULT_POSTGRES_URL
        schema = f"bench_{secrets.token_hex(4)}"
        admin = create_engine(normalise_url(url), connect_args={"connect_timeout": 5})
        try:
            with admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
        except Exception as err:
            admin.dispose()
            raise BenchError(f"cannot create a bench schema on {url}: {err}") from err
        try:
            yield url, schema, workdir
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _measure(
    store: SqlHistorian, backend: str, workdir: Path, size: BenchSize
) -> HistorianBenchResult:
    ingest_tags = [_float_tag(f"bench.ingest.t{i:03d}") for i in range(size.ingest_tags)]
    store.ensure_tags(ingest_tags)
    seconds = math.ceil(size.ingest_values / size.ingest_tags)
    ingest = _grid(ingest_tags, BENCH_START, seconds)[: size.ingest_values]
    ingest_rate = asyncio.run(_ingest_through_writer(store, ingest, size.batch))
    raw_rate = _raw_executemany(store, backend, ingest, size.batch)
    ratio, error_ratio = asyncio.run(_compression(store, size.compression_seconds))
    trend_ms, trend_points, trend_source, raw_ms, raw_rows = _queries(store, size)
    drain_rate = asyncio.run(_spool_drain(store, workdir, size))
    with store.reading("read the samples layout") as conn:
        layout = _layout(conn, backend)
    return HistorianBenchResult(
        backend=backend,
        ingest_values=len(ingest),
        ingest_values_per_s=ingest_rate,
        raw_insert_values_per_s=raw_rate,
        ingest_ratio=ingest_rate / raw_rate,
        compression_ratio=ratio,
        max_reconstruction_error_ratio=error_ratio,
        trend_query_ms=trend_ms,
        trend_points=trend_points,
        trend_source=trend_source,
        raw_query_ms=raw_ms,
        raw_query_rows=raw_rows,
        spool_drain_values_per_s=drain_rate,
        samples_layout=layout,
    )


def _layout(conn: Connection, backend: str) -> str:
    if backend != "postgresql":
        return "sqlite_without_rowid"
    return str(samples_layout(conn))


def _float_tag(name: str, low: float = 0.0, high: float = 100.0) -> TagDef:
    return TagDef(name, "bench", "0", DataType.FLOAT, low=low, high=high)


def _grid(tags: Sequence[TagDef], start: datetime, seconds: int) -> list[Sample]:
    """One sample per tag per second, in time order (as a scan delivers them)."""
    good = Quality.good()
    out: list[Sample] = []
    for second in range(seconds):
        moment = start + timedelta(seconds=second)
        for index, tag in enumerate(tags):
            value = 50.0 + 10.0 * math.sin(second / 600.0 + index) + (second % 7) * 0.01
            out.append(Sample(tag.name, value, good, moment, moment))
    return out


async def _ingest_through_writer(store: SqlHistorian, samples: list[Sample], batch: int) -> float:
    writer = HistorianWriter(store, max_batch=batch, max_delay_s=1.0)
    task = asyncio.create_task(writer.run())
    started = time.perf_counter()
    for first in range(0, len(samples), batch):
        writer.enqueue(samples[first : first + batch])
        # Let the loop breathe as a bus would between scans; the writer works meanwhile.
        await asyncio.sleep(0)
    await writer.flush()
    elapsed = time.perf_counter() - started
    await writer.stop()
    await task
    if writer.metrics().rows_written != len(samples):
        raise BenchError(f"the writer wrote {writer.metrics().rows_written} of {len(samples)}")
    return len(samples) / elapsed


def _raw_executemany(store: SqlHistorian, backend: str, samples: list[Sample], batch: int) -> float:
    """Plain DB-API executemany of the same rows into a same-shaped table; rows/s."""
    tag_ids = _tag_ids(store, {sample.tag for sample in samples})
    if backend == "sqlite":
        rows: list[tuple[Any, ...]] = [
            (tag_ids[s.tag], to_epoch_us(s.server_time), None, s.value, None, 0, None)
            for s in samples
        ]
        create = (
            "CREATE TABLE raw_bench (tag_id INTEGER NOT NULL, server_time BIGINT NOT NULL, "
            "source_time BIGINT, value FLOAT, text_value TEXT, quality BIGINT NOT NULL, "
            "reason TEXT, PRIMARY KEY (tag_id, server_time)) WITHOUT ROWID"
        )
        insert = "INSERT INTO raw_bench VALUES (?, ?, ?, ?, ?, ?, ?)"
        begin: str | None = "BEGIN"
    else:
        rows = [(tag_ids[s.tag], s.server_time, None, s.value, None, 0, None) for s in samples]
        create = "CREATE TABLE raw_bench (LIKE samples INCLUDING ALL)"
        insert = "INSERT INTO raw_bench VALUES (%s, %s, %s, %s, %s, %s, %s)"
        begin = None  # psycopg opens a transaction on the first statement
    with store.writing("create the raw insert table") as conn:
        conn.exec_driver_sql(create)
    raw = store.raw_connection()
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        for first in range(0, len(rows), batch):
            if begin is not None:
                cursor.execute(begin)
            cursor.executemany(insert, rows[first : first + batch])
            if begin is not None:
                cursor.execute("COMMIT")
            else:
                raw.commit()
        elapsed = time.perf_counter() - started
        cursor.close()
    finally:
        raw.close()
    with store.writing("drop the raw insert table") as conn:
        conn.exec_driver_sql("DROP TABLE raw_bench")
    return len(rows) / elapsed


def _tag_ids(store: SqlHistorian, names: set[str]) -> dict[str, int]:
    with store.reading("look up bench tags") as conn:
        found = conn.execute(select(tags.c.name, tags.c.id).where(tags.c.name.in_(names))).all()
    return {str(name): int(tag_id) for name, tag_id in found}


# --- compression ------------------------------------------------------------------------------

_SIGNALS: dict[str, tuple[TagDef, CompressionSettings]] = {
    "level": (
        _float_tag("bench.comp.tank_level", 0.0, 8.0),
        CompressionSettings("swinging_door", 0.1, True, 0.5, True, 3600.0),
    ),
    "supply": (
        _float_tag("bench.comp.supply_temp", 40.0, 120.0),
        CompressionSettings("swinging_door", 0.1, True, 0.5, True, 3600.0),
    ),
    "flow": (
        _float_tag("bench.comp.flow", 0.0, 500.0),
        CompressionSettings("swinging_door", 0.2, True, 0.5, True, 3600.0),
    ),
    "pressure": (
        _float_tag("bench.comp.pressure", 0.0, 10.0),
        CompressionSettings("swinging_door", 0.25, True, 0.5, True, 3600.0),
    ),
}


def _signal(kind: str, second: int) -> float:
    """Plant-like signals at 1 s: slow cycles, steps and a little deterministic noise."""
    noise = math.sin(second * 12.9898) * 43758.5453 % 1.0 - 0.5  # in [-0.5, 0.5)
    if kind == "level":
        return 4.0 + 2.5 * math.sin(2 * math.pi * second / 7200) + 0.004 * noise
    if kind == "supply":
        return 80.0 + 10.0 * math.sin(2 * math.pi * second / 86_400) + 0.05 * noise
    if kind == "flow":
        pumps = 1 + (second // 1800) % 3
        return 120.0 * pumps + 0.8 * noise
    return 4.0 + 0.3 * math.sin(2 * math.pi * second / 900) + 0.02 * noise


async def _compression(store: SqlHistorian, seconds: int) -> tuple[float, float]:
    """Compression ratio and worst error / bound, measured on what the database returns."""
    tag_defs = [tag for tag, _ in _SIGNALS.values()]
    settings = {tag.name: setting for tag, setting in _SIGNALS.values()}
    store.ensure_tags(tag_defs, compression=settings)
    raw_by_tag: dict[str, list[Sample]] = {tag.name: [] for tag in tag_defs}
    good = Quality.good()
    for second in range(seconds):
        moment = BENCH_START + timedelta(seconds=second)
        for kind, (tag, _) in _SIGNALS.items():
            raw_by_tag[tag.name].append(
                Sample(tag.name, _signal(kind, second), good, moment, moment)
            )
    writer = HistorianWriter(
        store, max_batch=10_000, compressor=Compressor.for_tags(settings, tag_defs)
    )
    task = asyncio.create_task(writer.run())
    for second in range(0, seconds, 60):
        writer.enqueue([s for tag in tag_defs for s in raw_by_tag[tag.name][second : second + 60]])
    await writer.stop()
    await task
    raw_total = stored_total = 0
    worst = 0.0
    for tag in tag_defs:
        raw = raw_by_tag[tag.name]
        stored = store.read_raw(tag.name)
        bound = settings[tag.name].resolved_for(tag).error_bound
        raw_total += len(raw)
        stored_total += len(stored)
        worst = max(worst, max(reconstruction_errors(raw, stored)) / bound)
    return raw_total / stored_total, worst


# --- queries ----------------------------------------------------------------------------------


def _queries(store: SqlHistorian, size: BenchSize) -> tuple[float, int, str, float, int]:
    tag = _float_tag("bench.trend.level")
    store.ensure_tags([tag])
    seconds = size.trend_hours * 3600
    start = BENCH_START
    good = Quality.good()
    chunk = 100_000
    for first in range(0, seconds, chunk):
        store.write_samples(
            [
                Sample(tag.name, 50.0 + 20.0 * math.sin(s / 3600.0), good, moment, moment)
                for s in range(first, min(first + chunk, seconds))
                for moment in (start + timedelta(seconds=s),)
            ]
        )
    end = start + timedelta(seconds=seconds)
    RollupMaintainer(store).refresh_range(start, end, [tag.name])
    started = time.perf_counter()
    with store.reading("read a trend") as conn:
        trend = read_trend(conn, tag_info(conn, tag.name), start, end, 2000)
    trend_ms = (time.perf_counter() - started) * 1000
    day_end = min(end, start + timedelta(days=1))
    started = time.perf_counter()
    raw = store.read_raw(tag.name, start, day_end)
    raw_ms = (time.perf_counter() - started) * 1000
    return trend_ms, len(trend.times), trend.source, raw_ms, len(raw)


# --- spool ------------------------------------------------------------------------------------


async def _spool_drain(store: SqlHistorian, workdir: Path, size: BenchSize) -> float:
    tags = [_float_tag(f"bench.spool.t{i:02d}") for i in range(10)]
    store.ensure_tags(tags)
    samples = _grid(tags, BENCH_START, math.ceil(size.drain_values / len(tags)))
    spool = DiskSpool(workdir / "drain.spool", max_bytes=1 << 34)
    try:
        for first in range(0, len(samples), size.batch):
            spool.append(samples[first : first + size.batch])
        writer = HistorianWriter(store, max_batch=size.batch, spool=spool)
        started = time.perf_counter()
        task = asyncio.create_task(writer.run())
        await writer.flush()
        elapsed = time.perf_counter() - started
        await writer.stop()
        await task
    finally:
        spool.close()
    return len(samples) / elapsed


def result_json(result: HistorianBenchResult) -> str:
    """The result as one line of JSON."""
    return json.dumps(result.as_json())
