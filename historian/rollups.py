"""Rollups: per-tag summaries of each minute (``rollup_1m``) and hour (``rollup_1h``).

A bucket row holds count, good count, min and max (with their times), first and last (with their
qualities), and the integral and Good seconds of the segments between its own samples (see
``historian.series`` for segments). That is enough to merge buckets exactly: a coarser bucket's
integral is the sum of its parts' integrals plus the segments that join one part's last sample to
the next part's first, which are exactly the raw segments crossing the boundary. So a raw sample
is merged as a bucket of one, minutes are built from raw samples and hours from minutes, by the
same code, and every aggregate of a whole number of buckets (minimum, maximum, count, time
average, percent good) equals the one computed from raw samples.

``RollupMaintainer`` keeps the tables current incrementally: it is told which samples were
written (``note_written``) or which range to redo (``refresh_range``), and recomputes only the
buckets touched, from scratch each time, so late data and replays are harmless (idempotent).
Only numeric tags (float, int, bool) have rollups.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, Table, delete, select

from controlcenter.model import Sample
from historian.schema import rollup_1h, rollup_1m, samples
from historian.series import (
    US_PER_S,
    BoolArray,
    FloatArray,
    IntArray,
    Interpolation,
    TagInfo,
    epoch_us,
    micros,
    moment,
    tag_infos,
)
from historian.store import SqlHistorian

MINUTE_US = 60 * US_PER_S
HOUR_US = 60 * MINUTE_US
_SEVERITY_BITS = 0xC0000000
_TAGS_PER_STATEMENT = 500
"""Tag ids per IN (...) list, well under every backend's bound-parameter limit."""


@dataclass(frozen=True, slots=True)
class RollupLevel:
    """One rollup table and the width of its buckets."""

    table: Table
    width_us: int

    @property
    def width(self) -> timedelta:
        """The bucket width."""
        return timedelta(microseconds=self.width_us)


_FLOAT_FIELDS = frozenset(("min", "max", "first_value", "last_value", "integral", "good_seconds"))
_TIME_FIELDS = ("bucket", "min_time", "max_time", "first_time", "last_time")

MINUTES = RollupLevel(rollup_1m, MINUTE_US)
HOURS = RollupLevel(rollup_1h, HOUR_US)
LEVELS = (MINUTES, HOURS)


@dataclass(frozen=True, slots=True, eq=False)
class Buckets:
    """Bucket summaries as column arrays, sorted by (tag, bucket); NaN marks a missing value."""

    tag_id: IntArray
    bucket: IntArray
    count: IntArray
    good_count: IntArray
    min: FloatArray
    min_time: IntArray
    max: FloatArray
    max_time: IntArray
    first_time: IntArray
    first_value: FloatArray
    first_quality: IntArray
    last_time: IntArray
    last_value: FloatArray
    last_quality: IntArray
    integral: FloatArray
    good_seconds: FloatArray

    def __len__(self) -> int:
        return int(self.tag_id.size)

    @property
    def twa(self) -> FloatArray:
        """Time-weighted average over each bucket's own Good segments (NaN without any)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            average: FloatArray = np.where(
                self.good_seconds > 0, self.integral / self.good_seconds, np.nan
            )
        return average

    @classmethod
    def of_samples(
        cls, tag_id: IntArray, times: IntArray, values: FloatArray, codes: IntArray
    ) -> Buckets:
        """Raw samples (sorted by tag, time) as buckets of one sample each."""
        good = _good(values, codes)
        kept = np.where(good, values, np.nan)
        return cls(
            tag_id=tag_id,
            bucket=times,
            count=np.ones(times.size, np.int64),
            good_count=good.astype(np.int64),
            min=kept,
            min_time=times,
            max=kept,
            max_time=times,
            first_time=times,
            first_value=values,
            first_quality=codes,
            last_time=times,
            last_value=values,
            last_quality=codes,
            integral=np.zeros(times.size),
            good_seconds=np.zeros(times.size),
        )

    def rows(self) -> Iterator[dict[str, Any]]:
        """The buckets as rows of a rollup table."""
        twa = self.twa
        columns = [np.asarray(getattr(self, field.name)).tolist() for field in fields(self)]
        names = [field.name for field in fields(self)]
        for index, values in enumerate(zip(*columns, strict=True)):
            row = dict(zip(names, values, strict=True))
            for name in _TIME_FIELDS:
                row[name] = moment(row[name])
            for name in ("min", "max", "first_value", "last_value"):
                if np.isnan(row[name]):
                    row[name] = None
            if row["min"] is None:
                row["min_time"] = row["max_time"] = None
            average = float(twa[index])
            row["twa"] = None if np.isnan(average) else average
            yield row


def _good(values: FloatArray, codes: IntArray) -> BoolArray:
    good: BoolArray = ((codes & _SEVERITY_BITS) == 0) & ~np.isnan(values)
    return good


def merge(parts: Buckets, width_us: int, linear_tags: set[int]) -> Buckets:
    """Merge finer buckets (or raw samples) into buckets of ``width_us``.

    The segment joining one part's last sample to the next part's first counts like any raw
    segment: when it starts on a Good value; sloped for linear tags when it also ends on one.
    """
    size = len(parts)
    if size == 0:
        return parts
    bucket = parts.bucket // width_us * width_us
    new_group = np.ones(size, bool)
    new_group[1:] = (parts.tag_id[1:] != parts.tag_id[:-1]) | (bucket[1:] != bucket[:-1])
    starts = np.flatnonzero(new_group)
    lasts = np.append(starts[1:], size) - 1
    group = np.cumsum(new_group) - 1

    minimum, min_time = _extreme(parts.min, parts.min_time, starts, group, np.minimum)
    maximum, max_time = _extreme(parts.max, parts.max_time, starts, group, np.maximum)
    join_area, join_seconds = _joins(parts, group, linear_tags)
    return Buckets(
        tag_id=parts.tag_id[starts],
        bucket=bucket[starts],
        count=np.add.reduceat(parts.count, starts),
        good_count=np.add.reduceat(parts.good_count, starts),
        min=minimum,
        min_time=min_time,
        max=maximum,
        max_time=max_time,
        first_time=parts.first_time[starts],
        first_value=parts.first_value[starts],
        first_quality=parts.first_quality[starts],
        last_time=parts.last_time[lasts],
        last_value=parts.last_value[lasts],
        last_quality=parts.last_quality[lasts],
        integral=np.add.reduceat(parts.integral + join_area, starts),
        good_seconds=np.add.reduceat(parts.good_seconds + join_seconds, starts),
    )


def _extreme(
    values: FloatArray, times: IntArray, starts: IntArray, group: IntArray, pick: np.ufunc
) -> tuple[FloatArray, IntArray]:
    """Per group, the min or max of ``values`` (NaN ignored) and the time of its first holder."""
    fill = np.inf if pick is np.minimum else -np.inf
    present = ~np.isnan(values)
    best = pick.reduceat(np.where(present, values, fill), starts)
    has_any = np.logical_or.reduceat(present, starts)
    best = np.where(has_any, best, np.nan)
    holders = np.flatnonzero(present & (values == best[group]))
    holder_groups, first = np.unique(group[holders], return_index=True)
    best_time = np.zeros(starts.size, np.int64)
    best_time[holder_groups] = times[holders[first]]
    return best, best_time


def _joins(parts: Buckets, group: IntArray, linear_tags: set[int]) -> tuple[FloatArray, FloatArray]:
    """Area and Good seconds of the segment from each part to the next one of its group."""
    size = len(parts)
    area = np.zeros(size)
    seconds = np.zeros(size)
    if size < 2:
        return area, seconds
    same = group[1:] == group[:-1]
    start_value = parts.last_value[:-1]
    counted = same & _good(start_value, parts.last_quality[:-1])
    end_value = parts.first_value[1:]
    sloped = _good(end_value, parts.first_quality[1:]) & np.isin(
        parts.tag_id[:-1], np.fromiter(linear_tags, np.int64, len(linear_tags))
    )
    width = (parts.first_time[1:] - parts.last_time[:-1]) / US_PER_S
    mean = np.where(sloped, (start_value + end_value) / 2.0, start_value)
    area[:-1] = np.where(counted, mean * width, 0.0)
    seconds[:-1] = np.where(counted, width, 0.0)
    return area, seconds


# --- reading and writing rollup tables --------------------------------------------------------


def _rollup_columns(table: Table, dialect: str) -> list[Any]:
    """The columns of a rollup table in ``Buckets`` field order, times as epoch microseconds."""
    columns: list[Any] = []
    for field in fields(Buckets):
        column: Any = table.c[field.name]
        if field.name in _TIME_FIELDS:
            column = epoch_us(column, dialect).label(field.name)
        columns.append(column)
    return columns


def buckets_from_rows(rows: Sequence[Any]) -> Buckets:
    """Buckets from rows selected with ``select_buckets`` (in field order)."""
    names = [field.name for field in fields(Buckets)]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays: dict[str, Any] = {}
    for name, column in zip(names, columns, strict=True):
        if name in _FLOAT_FIELDS:
            arrays[name] = np.array([np.nan if v is None else v for v in column], np.float64)
        else:
            arrays[name] = np.array([0 if v is None else v for v in column], np.int64)
    return Buckets(**arrays)


def select_buckets(
    conn: Connection, level: RollupLevel, tag_ids: Sequence[int], lo_us: int, hi_us: int
) -> Buckets:
    """The stored buckets of ``tag_ids`` starting in [lo, hi), sorted by (tag, bucket)."""
    table = level.table
    rows: list[Any] = []
    for first in range(0, len(tag_ids), _TAGS_PER_STATEMENT):
        chunk = list(tag_ids[first : first + _TAGS_PER_STATEMENT])
        query = (
            select(*_rollup_columns(table, conn.dialect.name))
            .where(
                table.c.tag_id.in_(chunk),
                table.c.bucket >= moment(lo_us),
                table.c.bucket < moment(hi_us),
            )
            .order_by(table.c.tag_id, table.c.bucket)
        )
        rows.extend(conn.execute(query).all())
    return buckets_from_rows(rows)


def _raw_samples(conn: Connection, tag_ids: Sequence[int], lo_us: int, hi_us: int) -> Buckets:
    time_us = epoch_us(samples.c.server_time, conn.dialect.name)
    parts: list[Any] = []
    for first in range(0, len(tag_ids), _TAGS_PER_STATEMENT):
        chunk = list(tag_ids[first : first + _TAGS_PER_STATEMENT])
        query = (
            select(samples.c.tag_id, time_us, samples.c.value, samples.c.quality)
            .where(
                samples.c.tag_id.in_(chunk),
                samples.c.server_time >= moment(lo_us),
                samples.c.server_time < moment(hi_us),
            )
            .order_by(samples.c.tag_id, samples.c.server_time)
        )
        parts.extend(conn.execute(query).all())
    if not parts:
        empty_int = np.empty(0, np.int64)
        return Buckets.of_samples(empty_int, empty_int, np.empty(0), empty_int)
    tag_id, times, values, codes = zip(*parts, strict=True)
    return Buckets.of_samples(
        np.array(tag_id, np.int64),
        np.array(times, np.int64),
        np.array([np.nan if v is None else v for v in values], np.float64),
        np.array(codes, np.int64),
    )


def _replace(
    conn: Connection,
    level: RollupLevel,
    tag_ids: Sequence[int],
    lo_us: int,
    hi_us: int,
    new: Buckets,
) -> None:
    table = level.table
    for first in range(0, len(tag_ids), _TAGS_PER_STATEMENT):
        chunk = list(tag_ids[first : first + _TAGS_PER_STATEMENT])
        conn.execute(
            delete(table).where(
                table.c.tag_id.in_(chunk),
                table.c.bucket >= moment(lo_us),
                table.c.bucket < moment(hi_us),
            )
        )
    rows = list(new.rows())
    if rows:
        conn.execute(table.insert(), rows)


def rebuild(conn: Connection, tags: Sequence[TagInfo], lo_us: int, hi_us: int) -> int:
    """Recompute the minute and hour buckets of ``tags`` touching [lo, hi); return minutes.

    Minutes (the range widened to whole minutes) come from raw samples; then the hours those
    minutes belong to are merged again from all their minutes.
    """
    numeric = [tag for tag in tags if tag.is_numeric]
    if not numeric or hi_us <= lo_us:
        return 0
    tag_ids = [tag.id for tag in numeric]
    linear = {tag.id for tag in numeric if tag.interpolation is Interpolation.LINEAR}
    lo, hi = _widen(lo_us, hi_us, MINUTE_US)
    minutes = merge(_raw_samples(conn, tag_ids, lo, hi), MINUTE_US, linear)
    _replace(conn, MINUTES, tag_ids, lo, hi, minutes)
    lo, hi = _widen(lo_us, hi_us, HOUR_US)
    hours = merge(select_buckets(conn, MINUTES, tag_ids, lo, hi), HOUR_US, linear)
    _replace(conn, HOURS, tag_ids, lo, hi, hours)
    return len(minutes)


def _widen(lo_us: int, hi_us: int, width_us: int) -> tuple[int, int]:
    return lo_us // width_us * width_us, -(-hi_us // width_us) * width_us


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What one refresh did."""

    tags: int
    minute_buckets: int
    seconds: float


class RollupMaintainer:
    """Keeps ``rollup_1m`` and ``rollup_1h`` current for the samples written to a store.

    Call ``note_written`` with each batch the store accepted (cheap: it only records which
    minutes of which tags changed) and ``refresh`` now and then (from a worker thread, e.g.
    every 10 s); or ``refresh_range`` to rebuild a range, e.g. after an import. Touched minutes
    are recomputed from raw samples and their hours from minutes: late data redoes its own
    minute and hour, and a replayed batch changes nothing. Thread-safe.
    """

    def __init__(self, store: SqlHistorian) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._dirty: dict[str, set[int]] = {}
        self._refresh_lock = threading.Lock()

    def note_written(self, batch: Iterable[Sample]) -> None:
        """Record the minutes of each tag that a written batch touched."""
        touched: dict[str, set[int]] = {}
        for sample in batch:
            touched.setdefault(sample.tag, set()).add(micros(sample.server_time) // MINUTE_US)
        with self._lock:
            for tag, hours in touched.items():
                self._dirty.setdefault(tag, set()).update(hours)

    @property
    def pending(self) -> int:
        """How many (tag, minute) pairs wait for the next refresh."""
        with self._lock:
            return sum(len(hours) for hours in self._dirty.values())

    def refresh(self) -> RefreshReport:
        """Recompute the buckets of every minute noted since the last refresh (and their hours)."""
        with self._refresh_lock:
            with self._lock:
                dirty, self._dirty = self._dirty, {}
            try:
                return self._refresh(dirty)
            except BaseException:
                with self._lock:
                    for tag, hours in dirty.items():
                        self._dirty.setdefault(tag, set()).update(hours)
                raise

    def refresh_range(
        self, start: datetime, end: datetime, tags: Iterable[str] | None = None
    ) -> RefreshReport:
        """Recompute the buckets of [start, end) for ``tags`` (default: every numeric tag)."""
        started = time.monotonic()
        wanted = None if tags is None else set(tags)
        with self._store.writing("rebuild rollups") as conn:
            infos = tag_infos(conn, wanted)
            minutes = rebuild(conn, infos, micros(start), micros(end))
        return RefreshReport(len(infos), minutes, time.monotonic() - started)

    def _refresh(self, dirty: dict[str, set[int]]) -> RefreshReport:
        started = time.monotonic()
        if not dirty:
            return RefreshReport(0, 0, 0.0)
        with self._store.reading("look up tags for rollups") as conn:
            infos = {info.name: info for info in tag_infos(conn, set(dirty))}
        # Tags whose dirty minutes form the same runs are rebuilt together, one statement per
        # run: the usual case (every tag written in the last few minutes) is a single run.
        by_runs: dict[tuple[tuple[int, int], ...], list[TagInfo]] = {}
        for name, hours in dirty.items():
            info = infos.get(name)
            if info is not None and info.is_numeric:
                by_runs.setdefault(_runs(hours), []).append(info)
        minutes = 0
        for runs, group in by_runs.items():
            for first_minute, end_minute in runs:
                with self._store.writing("update rollups") as conn:
                    minutes += rebuild(
                        conn, group, first_minute * MINUTE_US, end_minute * MINUTE_US
                    )
        return RefreshReport(
            sum(len(g) for g in by_runs.values()), minutes, time.monotonic() - started
        )


def _runs(minutes: set[int]) -> tuple[tuple[int, int], ...]:
    """Consecutive minutes as [first, end) runs."""
    runs: list[tuple[int, int]] = []
    for minute in sorted(minutes):
        if runs and runs[-1][1] == minute:
            runs[-1] = (runs[-1][0], minute + 1)
        else:
            runs.append((minute, minute + 1))
    return tuple(runs)
