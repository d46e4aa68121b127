"""Values at given times: the stored value, the one held before, or a linear interpolation.

The rules follow OPC UA Part 11 (ReadAtTime) and Part 13 (5.4.2, interpolated bounding values):

- a sample stored at exactly the time is returned as it is;
- step tags (booleans, integers, strings) hold the value of the sample before the time;
- linear tags interpolate between the samples before and after; the quality is the worse of the
  two, and a neighbour without a value makes the value held instead;
- with no sample after the time the last value is extrapolated, flat, as Uncertain;
- with no sample before the time there is nothing to build on: Bad, no data.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, select

from controlcenter.model import Quality, Sample, Substatus, Value
from historian.schema import samples
from historian.series import NO_DATA, Interpolation, TagInfo, epoch_us, micros, worse
from historian.timetypes import UtcDateTime
from historian.values import decode_sample_value

RANGE_READ_LIMIT = 10_000
"""Up to this many samples between the times asked for are read at once rather than sought."""


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """One stored sample as the interpolation needs it."""

    time_us: int
    value: Value | None
    quality: Quality


def value_at(
    time_us: int,
    before: StoredPoint | None,
    after: StoredPoint | None,
    interpolation: Interpolation,
) -> tuple[Value | None, Quality]:
    """The value and quality at ``time_us`` from the stored samples around it.

    ``before`` is the last sample at or before the time, ``after`` the first one after it.
    """
    if before is None:
        return None, NO_DATA
    if before.time_us == time_us:
        return before.value, before.quality
    if after is None:
        if before.quality.is_good:
            held = Quality.uncertain(Substatus.LAST_USABLE, "no later value stored: extrapolated")
            return before.value, held
        return before.value, before.quality
    if interpolation is Interpolation.STEP:
        return before.value, before.quality
    quality = worse(before.quality, after.quality)
    start, end = _number(before.value), _number(after.value)
    if start is None or end is None:
        return before.value, quality
    fraction = (time_us - before.time_us) / (after.time_us - before.time_us)
    return start + (end - start) * fraction, quality


def _number(value: Value | None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def read_at_times(conn: Connection, tag: TagInfo, times: Sequence[datetime]) -> list[Sample]:
    """One sample of ``tag`` per requested time, in the order asked (see the module rules).

    When few samples lie between the first and the last time asked for, they are read in one
    statement with their two bounding samples; otherwise each time costs two index seeks (the
    sample at or before it, the first after it), so times far apart never scan what lies
    between them.
    """
    if not times:
        return []
    wanted = [micros(moment) for moment in times]
    first, last = min(times), max(times)
    if _count_between(conn, tag, first, last, RANGE_READ_LIMIT + 1) <= RANGE_READ_LIMIT:
        found = _range_with_bounds(conn, tag, first, last)
    else:
        found = [point for moment in times for point in _neighbours(conn, tag, moment)]
    points = {point.time_us: point for point in found}
    ordered = sorted(points)
    result: list[Sample] = []
    for moment, time_us in zip(times, wanted, strict=True):
        index = bisect.bisect_right(ordered, time_us)
        before = points[ordered[index - 1]] if index > 0 else None
        after = points[ordered[index]] if index < len(ordered) else None
        value, quality = value_at(time_us, before, after, tag.interpolation)
        if value is None and quality.is_good:
            quality = NO_DATA
        result.append(Sample(tag.name, value, quality, moment, moment))
    return result


def _columns(conn: Connection) -> tuple[Any, ...]:
    return (
        epoch_us(samples.c.server_time, conn.dialect.name).label("t"),
        samples.c.value,
        samples.c.text_value,
        samples.c.quality,
        samples.c.reason,
    )


def _count_between(
    conn: Connection, tag: TagInfo, first: datetime, last: datetime, cap: int
) -> int:
    capped = (
        select(samples.c.server_time)
        .where(
            samples.c.tag_id == tag.id,
            samples.c.server_time >= first,
            samples.c.server_time <= last,
        )
        .limit(cap)
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(capped)).scalar_one())


def _range_with_bounds(
    conn: Connection, tag: TagInfo, first: datetime, last: datetime
) -> list[StoredPoint]:
    columns = _columns(conn)
    of_tag = samples.c.tag_id == tag.id
    inside = select(*columns).where(
        of_tag, samples.c.server_time >= first, samples.c.server_time <= last
    )
    points = _points(tag, conn.execute(inside).all())
    points.extend(_neighbours(conn, tag, first))
    points.extend(_neighbours(conn, tag, last))
    return points


def _neighbours(conn: Connection, tag: TagInfo, moment: datetime) -> list[StoredPoint]:
    """The sample at or before ``moment`` and the first one after it (where they exist)."""
    before, after = _seek_statements(conn)
    parameters = {"tag_id": tag.id, "moment": moment}
    rows = [*conn.execute(before, parameters).all(), *conn.execute(after, parameters).all()]
    return _points(tag, rows)


def _seek_statements(conn: Connection) -> tuple[Select[Any], Select[Any]]:
    """The two seeks around a moment, built once per dialect and executed with parameters."""
    dialect = conn.dialect.name
    built = _SEEKS.get(dialect)
    if built is None:
        columns = _columns(conn)
        of_tag = samples.c.tag_id == bindparam("tag_id")
        moment = bindparam("moment", type_=UtcDateTime())
        before = (
            select(*columns)
            .where(of_tag, samples.c.server_time <= moment)
            .order_by(samples.c.server_time.desc())
            .limit(1)
        )
        after = (
            select(*columns)
            .where(of_tag, samples.c.server_time > moment)
            .order_by(samples.c.server_time)
            .limit(1)
        )
        built = _SEEKS[dialect] = (before, after)
    return built


_SEEKS: dict[str, tuple[Select[Any], Select[Any]]] = {}
"""Statements are immutable and safe to share between threads."""


def _points(tag: TagInfo, rows: Sequence[Any]) -> list[StoredPoint]:
    return [
        StoredPoint(
            int(time_us),
            decode_sample_value(tag.data_type, value, text_value),
            Quality.from_status_code(int(code), reason or ""),
        )
        for time_us, value, text_value, code, reason in rows
    ]
