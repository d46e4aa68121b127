"""What every history query shares: tag lookup, epoch-microsecond times, numeric series in numpy.

A tag's stored samples describe a signal between them. How that signal is reconstructed is the
tag's interpolation: ``linear`` for analog values (and for any tag compressed by swinging door,
whose stored points are the corners of a piecewise-linear trend, Bristol 1990), ``step`` for
booleans, integers and strings, which hold their value until the next sample (OPC UA Part 13,
5.4.2: stepped versus sloped interpolation). A segment from one sample to the next counts as Good
only when it starts on a Good value; a linear segment also needs a Good value at its end, else it
is held flat (OPC UA Part 13, 5.4.3.3: a bad end bound is not interpolated towards).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    cast,
    func,
    select,
    type_coerce,
    union_all,
)

from controlcenter.model import DataType, Quality, Severity, Substatus
from historian.errors import UnknownTagError
from historian.schema import samples, tags
from historian.timetypes import from_epoch_us, to_epoch_us

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

US_PER_S = 1_000_000
_SEVERITY_BITS = 0xC0000000
"""The two top bits of an OPC UA StatusCode hold its severity (Part 4, 7.39)."""

NO_DATA = Quality.bad(Substatus.NON_SPECIFIC, "no data")
"""Quality of a result with no stored value to build it from (OPC UA Bad_NoData)."""


class Interpolation(StrEnum):
    """How a tag's signal is reconstructed between stored samples."""

    STEP = "step"
    LINEAR = "linear"


@dataclass(frozen=True, slots=True)
class TagInfo:
    """What a query needs to know of a stored tag."""

    id: int
    name: str
    data_type: DataType
    interpolation: Interpolation

    @property
    def is_numeric(self) -> bool:
        """Whether the tag's values are numbers (float, int or bool), so aggregates apply."""
        return self.data_type not in (DataType.STRING, DataType.DATETIME)


def interpolation_for(data_type: DataType, compression_mode: str) -> Interpolation:
    """The interpolation of a tag of ``data_type`` stored with ``compression_mode``."""
    if data_type in (DataType.STRING, DataType.BOOL, DataType.DATETIME):
        return Interpolation.STEP
    if data_type is DataType.FLOAT or compression_mode == "swinging_door":
        return Interpolation.LINEAR
    return Interpolation.STEP


def _tag_info_query() -> Select[Any]:
    return select(tags.c.id, tags.c.name, tags.c.data_type, tags.c.compression_mode)


def _tag_info(row: Any) -> TagInfo:
    data_type = DataType(row[2])
    return TagInfo(int(row[0]), str(row[1]), data_type, interpolation_for(data_type, str(row[3])))


def tag_info(conn: Connection, name: str) -> TagInfo:
    """The stored tag called ``name``; raises UnknownTagError if the historian does not know it."""
    row = conn.execute(_tag_info_query().where(tags.c.name == name)).one_or_none()
    if row is None:
        raise UnknownTagError(name)
    return _tag_info(row)


def tag_infos(conn: Connection, names: set[str] | None = None) -> list[TagInfo]:
    """Every stored tag (or those of ``names`` that exist), ordered by id."""
    query = _tag_info_query().order_by(tags.c.id)
    if names is not None:
        query = query.where(tags.c.name.in_(sorted(names)))
    return [_tag_info(row) for row in conn.execute(query)]


def epoch_us(column: Any, dialect: str) -> ColumnElement[int]:
    """A time column as integer microseconds since the epoch, computed by the database.

    Fetching integers instead of datetimes spares building one Python datetime per row. SQLite
    stores exactly that integer; PostgreSQL's EXTRACT(EPOCH ...) is an exact numeric (since 14).
    """
    if dialect == "sqlite":
        return type_coerce(column, BigInteger)
    return cast(func.extract("epoch", column) * US_PER_S, BigInteger)


def is_good_code(code: int) -> bool:
    """Whether an OPC UA status code has Good severity."""
    return code & _SEVERITY_BITS == 0


def worse(first: Quality, second: Quality) -> Quality:
    """The less trustworthy of two qualities (Bad over Uncertain over Good); ``first`` on a tie."""
    return second if _rank(second.severity) > _rank(first.severity) else first


def _rank(severity: Severity) -> int:
    return {Severity.GOOD: 0, Severity.UNCERTAIN: 1, Severity.BAD: 2}[severity]


@dataclass(frozen=True, slots=True, eq=False)
class Series:
    """One numeric tag's samples as arrays, oldest first; NaN where a sample has no value."""

    times: IntArray
    values: FloatArray
    codes: IntArray

    @property
    def good(self) -> BoolArray:
        """Which samples have Good quality and a value."""
        severity_good: BoolArray = (self.codes & _SEVERITY_BITS) == 0
        return severity_good & ~np.isnan(self.values)

    def __len__(self) -> int:
        return int(self.times.size)

    @classmethod
    def from_rows(cls, rows: list[Any]) -> Series:
        """Build a series from (epoch_us, value, code) rows sorted by time."""
        if not rows:
            return cls(np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int64))
        times, values, codes = zip(*rows, strict=True)
        return cls(
            np.array(times, dtype=np.int64),
            np.array([np.nan if v is None else v for v in values], dtype=np.float64),
            np.array(codes, dtype=np.int64),
        )


def fetch_series(
    conn: Connection, tag: TagInfo, start: datetime, end: datetime, *, bounds: bool
) -> Series:
    """Samples of ``tag`` with start <= time < end, in one statement.

    With ``bounds``, also the last sample before ``start`` and the first at or after ``end``:
    the bounding values that time-weighted and interpolated aggregates need (OPC UA Part 13,
    3.1.8).
    """
    dialect = conn.dialect.name
    columns = (
        epoch_us(samples.c.server_time, dialect).label("t"),
        samples.c.value,
        samples.c.quality,
    )
    of_tag = samples.c.tag_id == tag.id
    inside = select(*columns).where(
        of_tag, samples.c.server_time >= start, samples.c.server_time < end
    )
    if not bounds:
        rows = conn.execute(inside.order_by(samples.c.server_time)).all()
        return Series.from_rows(list(rows))
    before = (
        select(*columns)
        .where(of_tag, samples.c.server_time < start)
        .order_by(samples.c.server_time.desc())
        .limit(1)
        .subquery()
    )
    after = (
        select(*columns)
        .where(of_tag, samples.c.server_time >= end)
        .order_by(samples.c.server_time)
        .limit(1)
        .subquery()
    )
    # Compound members with ORDER BY/LIMIT must be subqueries on SQLite.
    inside_sub = inside.subquery()
    query = union_all(
        select(before.c.t, before.c.value, before.c.quality),
        select(inside_sub.c.t, inside_sub.c.value, inside_sub.c.quality),
        select(after.c.t, after.c.value, after.c.quality),
    )
    compound = query.subquery()
    rows = conn.execute(select(compound).order_by(compound.c.t)).all()
    return Series.from_rows(list(rows))


def micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (ValueError if it is naive)."""
    return to_epoch_us(moment)


def moment(micros_since_epoch: int) -> datetime:
    """The UTC datetime of a count of microseconds since the epoch."""
    return from_epoch_us(int(micros_since_epoch))


@dataclass(frozen=True, slots=True, eq=False)
class Segments:
    """The pieces of a series' reconstructed signal between consecutive samples.

    Segment ``i`` runs from sample ``i`` to sample ``i + 1``. ``start_value``/``end_value`` are
    the signal at its two ends (equal when held flat); ``counted`` is whether it starts on a
    Good value, the only segments that enter averages and good-time sums.
    """

    starts: IntArray
    ends: IntArray
    start_value: FloatArray
    end_value: FloatArray
    counted: BoolArray


def segments(series: Series, interpolation: Interpolation) -> Segments:
    """The segments between consecutive samples of ``series``."""
    good = series.good
    values = series.values
    start_value = values[:-1]
    sloped = good[1:] if interpolation is Interpolation.LINEAR else np.zeros(len(good) - 1, bool)
    end_value = np.where(sloped, values[1:], start_value) if len(values) else values[:0]
    return Segments(series.times[:-1], series.times[1:], start_value, end_value, good[:-1])


def clipped_integral(segs: Segments, lo: int, hi: int) -> tuple[float, int]:
    """Integral (value-seconds) and microseconds of the counted segments clipped to [lo, hi)."""
    if segs.starts.size == 0:
        return 0.0, 0
    first = max(int(np.searchsorted(segs.ends, lo, side="right")), 0)
    last = int(np.searchsorted(segs.starts, hi, side="left"))
    if last <= first:
        return 0.0, 0
    starts = segs.starts[first:last]
    ends = segs.ends[first:last]
    counted = segs.counted[first:last]
    v0 = segs.start_value[first:last]
    v1 = segs.end_value[first:last]
    a = np.maximum(starts, lo)
    b = np.minimum(ends, hi)
    width = (ends - starts).astype(np.float64)
    width[width == 0] = 1.0
    slope = (v1 - v0) / width
    at_a = v0 + slope * (a - starts)
    at_b = v0 + slope * (b - starts)
    seconds = (b - a).astype(np.float64) / US_PER_S
    # A flat segment of an infinite value has slope NaN (inf - inf): use the value itself.
    area = np.where(v0 == v1, v0 * seconds, (at_a + at_b) / 2.0 * seconds)
    covered = counted & (b > a)
    return float(np.sum(area, where=covered)), int(np.sum(b - a, where=covered))
