"""Aggregates of a tag over consecutive intervals, after OPC UA Part 13 (Aggregates).

Intervals are ``[start + k * interval, start + (k + 1) * interval)``; the last one ends at ``end``
and may be shorter. Each aggregate gives one sample per interval. Its quality follows Part 13's
defaults (PercentDataGood = PercentDataBad = 100): Good when everything that went into it was
Good, Bad (no data) when nothing Good did, Uncertain in between.

- ``interpolative``: the value at the interval start (5.4.3.2), as ``historian.attime`` reads it.
- ``average``: the arithmetic mean of the Good raw values in the interval (5.4.3.6).
- ``time_average``: the time-weighted average of the reconstructed signal, bounding values
  included, over the Good part of the interval (5.4.3.7); after the last stored sample the value
  is extrapolated flat and makes the result Uncertain.
- ``minimum`` / ``maximum``: of the Good raw values (5.4.3.10/11).
- ``start`` / ``end``: the first / last raw sample in the interval, with its own time and
  quality (5.4.3.13/14).
- ``count``: how many Good raw values (5.4.3.25).
- ``percent_good``: the percentage of the interval's duration covered by Good data (5.4.3.36).

Everything comes from one statement (the samples in range plus their two bounding samples) and
is computed with numpy: one query per call, never one per interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import numpy as np
from sqlalchemy import Connection

from controlcenter.model import Quality, Sample, Substatus
from historian.attime import StoredPoint, value_at
from historian.series import (
    NO_DATA,
    US_PER_S,
    Segments,
    Series,
    TagInfo,
    clipped_integral,
    fetch_series,
    micros,
    moment,
    segments,
)

MAX_INTERVALS = 100_000
"""More intervals than this in one call is refused: ask for a longer interval instead."""

_PARTIAL = "part of the interval has no Good data"
_EXTRAPOLATED = "extrapolated past the last stored value"


class Aggregate(StrEnum):
    """The aggregates the historian computes (names after OPC UA Part 13)."""

    INTERPOLATIVE = "interpolative"
    AVERAGE = "average"
    TIME_AVERAGE = "time_average"
    MINIMUM = "minimum"
    MAXIMUM = "maximum"
    START = "start"
    END = "end"
    COUNT = "count"
    PERCENT_GOOD = "percent_good"


class AggregateError(ValueError):
    """An aggregate request that cannot be answered (string tag, bad interval, unknown name)."""


def parse_aggregates(names: Sequence[str]) -> list[Aggregate]:
    """Aggregates by name; raises AggregateError naming the valid ones for an unknown name."""
    parsed: list[Aggregate] = []
    for name in names:
        try:
            parsed.append(Aggregate(name))
        except ValueError as err:
            valid = ", ".join(member.value for member in Aggregate)
            raise AggregateError(f"unknown aggregate {name!r}; use one of {valid}") from err
    return parsed


@dataclass(frozen=True, slots=True)
class IntervalGrid:
    """Interval starts and ends in epoch microseconds."""

    starts: list[int]
    ends: list[int]

    @classmethod
    def of(cls, start: datetime, end: datetime, interval: timedelta) -> IntervalGrid:
        """The intervals covering [start, end)."""
        step = interval // timedelta(microseconds=1)
        if step <= 0:
            raise AggregateError(f"the interval must be positive, not {interval}")
        lo, hi = micros(start), micros(end)
        if hi <= lo:
            return cls([], [])
        count = -(-(hi - lo) // step)
        if count > MAX_INTERVALS:
            raise AggregateError(
                f"{count} intervals of {interval} exceed {MAX_INTERVALS}: use a longer interval"
            )
        starts = [lo + k * step for k in range(count)]
        return cls(starts, [min(first + step, hi) for first in starts])


def read_processed(
    conn: Connection,
    tag: TagInfo,
    start: datetime,
    end: datetime,
    interval: timedelta,
    aggregates: Sequence[Aggregate],
) -> dict[Aggregate, list[Sample]]:
    """Each aggregate of ``tag`` over the intervals of [start, end), one sample per interval."""
    if not tag.is_numeric:
        raise AggregateError(f"{tag.name} is a string tag: aggregates need numbers")
    grid = IntervalGrid.of(start, end, interval)
    series = fetch_series(conn, tag, start, end, bounds=True)
    return compute_aggregates(tag, series, grid, aggregates)


def compute_aggregates(
    tag: TagInfo, series: Series, grid: IntervalGrid, aggregates: Sequence[Aggregate]
) -> dict[Aggregate, list[Sample]]:
    """The aggregates of a series (with its bounding samples) over the grid's intervals."""
    calculator = _Calculator(tag, series)
    results: dict[Aggregate, list[Sample]] = {aggregate: [] for aggregate in aggregates}
    for lo, hi in zip(grid.starts, grid.ends, strict=True):
        for aggregate in aggregates:
            time_us, value, quality = calculator.compute(aggregate, lo, hi)
            when = moment(time_us)
            if value is None and quality.is_good:
                quality = NO_DATA
            results[aggregate].append(Sample(tag.name, value, quality, when, when))
    return results


_Result = tuple[int, float | int | None, Quality]


class _Calculator:
    """Computes aggregates of one series interval by interval."""

    def __init__(self, tag: TagInfo, series: Series) -> None:
        self._tag = tag
        self._series = series
        self._good = series.good
        self._segments: Segments = segments(series, tag.interpolation)

    def compute(self, aggregate: Aggregate, lo: int, hi: int) -> _Result:
        """One aggregate over [lo, hi)."""
        if aggregate is Aggregate.INTERPOLATIVE:
            return self._interpolative(lo)
        if aggregate in (Aggregate.TIME_AVERAGE, Aggregate.PERCENT_GOOD):
            return self._time_weighted(aggregate, lo, hi)
        if aggregate in (Aggregate.START, Aggregate.END):
            return self._boundary(aggregate, lo, hi)
        return self._raw(aggregate, lo, hi)

    def _slice(self, lo: int, hi: int) -> slice:
        times = self._series.times
        return slice(
            int(np.searchsorted(times, lo, side="left")),
            int(np.searchsorted(times, hi, side="left")),
        )

    def _interpolative(self, lo: int) -> _Result:
        times = self._series.times
        index = int(np.searchsorted(times, lo, side="right"))
        before = self._point(index - 1) if index > 0 else None
        after = self._point(index) if index < len(times) else None
        value, quality = value_at(lo, before, after, self._tag.interpolation)
        return lo, _as_number(value), quality

    def _point(self, index: int) -> StoredPoint:
        raw = float(self._series.values[index])
        value = None if np.isnan(raw) else raw
        code = int(self._series.codes[index])
        return StoredPoint(int(self._series.times[index]), value, Quality.from_status_code(code))

    def _raw(self, aggregate: Aggregate, lo: int, hi: int) -> _Result:
        window = self._slice(lo, hi)
        good = self._good[window]
        values = self._series.values[window][good]
        total = int(good.size)
        good_count = int(values.size)
        if aggregate is Aggregate.COUNT:
            quality = Quality.good() if good_count == total else _uncertain(_PARTIAL)
            return lo, good_count, quality
        if good_count == 0:
            return lo, None, NO_DATA
        quality = Quality.good() if good_count == total else _uncertain(_PARTIAL)
        if aggregate is Aggregate.MINIMUM:
            return lo, self._typed(float(values.min())), quality
        if aggregate is Aggregate.MAXIMUM:
            return lo, self._typed(float(values.max())), quality
        return lo, float(values.mean()), quality

    def _typed(self, value: float) -> float | int:
        # Minimum and maximum are stored values: keep an integer tag's values integers.
        if self._tag.data_type.value in ("int", "bool") and value.is_integer():
            return int(value)
        return value

    def _boundary(self, aggregate: Aggregate, lo: int, hi: int) -> _Result:
        window = self._slice(lo, hi)
        if window.stop <= window.start:
            return lo, None, NO_DATA
        index = window.start if aggregate is Aggregate.START else window.stop - 1
        point = self._point(index)
        raw = point.value
        # Only numeric tags are aggregated (TagInfo.is_numeric): anything else has no value here.
        value = self._typed(float(raw)) if isinstance(raw, int | float) else None
        return point.time_us, value, point.quality

    def _time_weighted(self, aggregate: Aggregate, lo: int, hi: int) -> _Result:
        integral, good_us = clipped_integral(self._segments, lo, hi)
        extrapolated_s = 0.0
        times = self._series.times
        if times.size and times[-1] < hi and self._good[-1]:
            # No stored value after the last one: hold it to the interval end, as Uncertain.
            tail_start = max(int(times[-1]), lo)
            extrapolated_s = (hi - tail_start) / US_PER_S
            integral += float(self._series.values[-1]) * extrapolated_s
        if aggregate is Aggregate.PERCENT_GOOD:
            return lo, 100.0 * good_us / (hi - lo), Quality.good()
        weighed_s = good_us / US_PER_S + extrapolated_s
        if weighed_s == 0.0:
            return lo, None, NO_DATA
        if good_us == hi - lo:
            quality = Quality.good()
        elif extrapolated_s > 0.0:
            quality = _uncertain(_EXTRAPOLATED)
        else:
            quality = _uncertain(_PARTIAL)
        return lo, integral / weighed_s, quality


def _uncertain(reason: str) -> Quality:
    return Quality.uncertain(Substatus.NON_SPECIFIC, reason)


def _as_number(value: object) -> float | int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    return None
