"""Trends: at most N points of a tag over a range of any length, spikes kept.

The source is chosen by the range: raw samples when they fit comfortably (at most
``DETAIL * max_points`` of them), else the minute rollups, else the hour rollups. From a rollup
each bucket gives its minimum and its maximum, at the times they happened, so a one-second
spike inside an hour still shows. Then MinMaxLTTB (Van Der Donckt et al., "MinMaxLTTB:
Leveraging MinMax-Preselection to Scale LTTB", 2023; the ``tsdownsample`` package) brings the
points down to ``max_points``, and the global minimum and maximum are always among them.

Rollups also cover the part of a range before the first raw sample kept (retention keeps them
longer). They lag the raw data by up to one maintenance cycle: the part of the range after the
last rollup bucket is read raw. A range with no rollups at all is read raw, however long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import Connection, func, select
from tsdownsample import MinMaxLTTBDownsampler

from controlcenter.model import Quality, Sample, Substatus
from historian.rollups import HOURS, MINUTES, RollupLevel
from historian.schema import samples
from historian.series import (
    NO_DATA,
    FloatArray,
    IntArray,
    TagInfo,
    epoch_us,
    fetch_series,
    micros,
    moment,
)

# tsdownsample's constructors carry no annotations; its downsample() does.
_DOWNSAMPLER = MinMaxLTTBDownsampler()  # type: ignore[no-untyped-call]

TrendSource = Literal["raw", "rollup_1m", "rollup_1h"]

DETAIL = 25
"""A source is used when it yields at most this many points per point asked for."""
MIN_POINTS = 5
"""MinMaxLTTB needs three points besides the two extremes."""
_PARTIAL_CODE = Quality.uncertain(Substatus.NON_SPECIFIC, "").status_code
"""A rollup point whose bucket holds some samples that are not Good is Uncertain."""


class TrendError(ValueError):
    """A trend that cannot be drawn (string tag, too few points asked for)."""


@dataclass(frozen=True, slots=True)
class Trend:
    """Points of one tag's trend, oldest first, with the source they were drawn from."""

    tag: str
    source: TrendSource
    times: tuple[datetime, ...]
    values: tuple[float | None, ...]
    qualities: tuple[Quality, ...]

    def __len__(self) -> int:
        return len(self.times)

    def samples(self) -> list[Sample]:
        """The points as samples (source and server time both the point's time)."""
        return [
            Sample(self.tag, value, quality, when, when)
            for when, value, quality in zip(self.times, self.values, self.qualities, strict=True)
        ]


@dataclass(frozen=True, slots=True, eq=False)
class _Points:
    times: IntArray
    values: FloatArray
    codes: IntArray

    @classmethod
    def join(cls, parts: list[_Points]) -> _Points:
        return cls(
            np.concatenate([part.times for part in parts]),
            np.concatenate([part.values for part in parts]),
            np.concatenate([part.codes for part in parts]),
        )


_EMPTY = _Points(np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64))


def read_trend(
    conn: Connection, tag: TagInfo, start: datetime, end: datetime, max_points: int
) -> Trend:
    """At most ``max_points`` points of ``tag`` in [start, end) (see the module notes)."""
    if not tag.is_numeric:
        raise TrendError(f"{tag.name} is a string tag: a trend needs numbers")
    if max_points < MIN_POINTS:
        raise TrendError(f"a trend needs at least {MIN_POINTS} points, not {max_points}")
    lo, hi = micros(start), micros(end)
    if hi <= lo:
        return Trend(tag.name, "raw", (), (), ())
    budget = DETAIL * max_points
    source: TrendSource = "raw"
    points = _EMPTY
    # Rollups cover what raw samples cannot: a range too long for them, or the part of a range
    # before the first raw sample kept (retention keeps rollups longer than raw samples).
    if _raw_count(conn, tag, start, end, budget + 1) > budget:
        rollup_end = hi
    else:
        rollup_end = _first_raw_time(conn, tag, start, end) or hi
    if rollup_end > lo:
        level = MINUTES if 2 * (rollup_end - lo) // MINUTES.width_us <= budget else HOURS
        points, covered_until = _rollup_points(conn, tag, level, lo, rollup_end)
        if covered_until > lo:
            source = "rollup_1m" if level is MINUTES else "rollup_1h"
            lo = covered_until
    if lo < hi:
        rest = fetch_series(conn, tag, moment(lo), end, bounds=False)
        points = _Points.join([points, _Points(rest.times, rest.values, rest.codes)])
    return _as_trend(tag, source, _downsample(points, max_points))


def _first_raw_time(conn: Connection, tag: TagInfo, start: datetime, end: datetime) -> int | None:
    """The time (epoch microseconds) of the first raw sample in [start, end), if any."""
    found = conn.execute(
        select(epoch_us(samples.c.server_time, conn.dialect.name))
        .where(
            samples.c.tag_id == tag.id, samples.c.server_time >= start, samples.c.server_time < end
        )
        .order_by(samples.c.server_time)
        .limit(1)
    ).scalar_one_or_none()
    return None if found is None else int(found)


def _raw_count(conn: Connection, tag: TagInfo, start: datetime, end: datetime, cap: int) -> int:
    """How many raw samples lie in [start, end), counting no further than ``cap``."""
    capped = (
        select(samples.c.server_time)
        .where(
            samples.c.tag_id == tag.id, samples.c.server_time >= start, samples.c.server_time < end
        )
        .limit(cap)
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(capped)).scalar_one())


def _rollup_points(
    conn: Connection, tag: TagInfo, level: RollupLevel, lo: int, hi: int
) -> tuple[_Points, int]:
    """Min and max of each bucket at their times; and where the buckets end (``lo`` if none)."""
    table = level.table
    dialect = conn.dialect.name
    query = (
        select(
            epoch_us(table.c.bucket, dialect),
            table.c.count,
            table.c.good_count,
            table.c.min,
            epoch_us(table.c.min_time, dialect),
            table.c.max,
            epoch_us(table.c.max_time, dialect),
            epoch_us(table.c.first_time, dialect),
            table.c.first_quality,
        )
        .where(
            table.c.tag_id == tag.id,
            table.c.bucket >= moment(lo // level.width_us * level.width_us),
            table.c.bucket < moment(hi),
        )
        .order_by(table.c.bucket)
    )
    rows: list[Any] = list(conn.execute(query).all())
    if not rows:
        return _EMPTY, lo
    columns = list(zip(*rows, strict=True))
    bucket = np.array(columns[0], np.int64)
    count = np.array(columns[1], np.int64)
    good_count = np.array(columns[2], np.int64)
    has_good = good_count > 0
    minimum = np.array([np.nan if v is None else v for v in columns[3]], np.float64)
    maximum = np.array([np.nan if v is None else v for v in columns[5]], np.float64)
    min_time = np.array([0 if v is None else v for v in columns[4]], np.int64)
    max_time = np.array([0 if v is None else v for v in columns[6]], np.int64)
    first_time = np.array(columns[7], np.int64)
    first_quality = np.array(columns[8], np.int64)
    code = np.where(good_count == count, 0, _PARTIAL_CODE)
    # A bucket without Good data draws one Bad point (a gap) at its first sample.
    gap_code = np.where(first_quality & 0xC0000000 == 0, NO_DATA.status_code, first_quality)
    times = np.concatenate([min_time[has_good], max_time[has_good], first_time[~has_good]])
    values = np.concatenate(
        [minimum[has_good], maximum[has_good], np.full(int((~has_good).sum()), np.nan)]
    )
    codes = np.concatenate([code[has_good], code[has_good], gap_code[~has_good]])
    order = np.argsort(times, kind="stable")
    times, values, codes = times[order], values[order], codes[order]
    keep = np.ones(times.size, bool)
    keep[1:] = times[1:] != times[:-1]  # min and max at the same instant: one point
    keep &= (times >= lo) & (times < hi)
    covered_until = min(int(bucket[-1]) + level.width_us, hi)
    return _Points(times[keep], values[keep], codes[keep]), covered_until


def _downsample(points: _Points, max_points: int) -> _Points:
    """At most ``max_points`` points (see ``select_points``)."""
    if points.times.size <= max_points:
        return points
    picked = select_points(points.times, points.values, max_points)
    return _Points(points.times[picked], points.values[picked], points.codes[picked])


def select_points(times: IntArray, values: FloatArray, max_points: int) -> IntArray:
    """Indices of at most ``max_points`` points to draw, in time order.

    Points without a value (NaN) are dropped first; then MinMaxLTTB picks ``max_points - 2``
    points and the global minimum and maximum are added if it left them out.
    """
    if max_points < MIN_POINTS:
        raise TrendError(f"a trend needs at least {MIN_POINTS} points, not {max_points}")
    valued = np.flatnonzero(~np.isnan(values))
    if valued.size <= max_points:
        return valued
    x = times[valued]
    y = values[valued]
    chosen = _DOWNSAMPLER.downsample(x, y, n_out=max_points - 2)
    extremes = np.array([int(np.argmin(y)), int(np.argmax(y))], np.int64)
    picked: IntArray = valued[np.union1d(np.asarray(chosen, np.int64), extremes)]
    return picked


def _as_trend(tag: TagInfo, source: TrendSource, points: _Points) -> Trend:
    qualities = {code: Quality.from_status_code(code) for code in set(points.codes.tolist())}
    values = [None if np.isnan(value) else value for value in points.values.tolist()]
    return Trend(
        tag.name,
        source,
        tuple(moment(time) for time in points.times.tolist()),
        tuple(values),
        tuple(qualities[code] for code in points.codes.tolist()),
    )
