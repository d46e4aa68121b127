"""``HistoryQueries``: the historian's whole read side behind one object, for the HMI and APIs.

Raw values (with a limit and either order), values at given times, aggregates per interval,
trends of at most N points over any range, and the command and event journals with filters.
It satisfies ``controlcenter.ports.HistoryQueryReader`` (and so ``HistoryReader``). Every method
is one read transaction and safe to call from any thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    Subquery,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    type_coerce,
)

from controlcenter.model import (
    CommandOrigin,
    CommandResult,
    DataType,
    Event,
    EventKind,
    JsonArray,
    Quality,
    Sample,
    SampleColumns,
    Value,
)
from historian.aggregates import parse_aggregates, read_processed
from historian.attime import read_at_times
from historian.schema import samples
from historian.series import tag_info
from historian.store import SqlHistorian
from historian.trend import Trend, read_trend
from historian.values import decode_sample_value


class HistoryQueries:
    """Read access to a historian store: raw, at-time, processed, trend and journal queries."""

    def __init__(self, store: SqlHistorian) -> None:
        self._store = store

    def read_raw(
        self,
        tag: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Sample]:
        """Stored samples of ``tag`` with start <= server time <= end, oldest first.

        History is in server-time order (when the center learned each value); every sample
        carries its source time too. With ``newest_first`` the newest come first; with
        ``limit`` at most that many are returned (from the end the order starts at). Raises
        UnknownTagError for an unknown tag.
        """
        _check_window(start, end, limit)
        with self._store.reading(f"read {tag}") as conn:
            info = tag_info(conn, tag)
            query = select(
                samples.c.server_time,
                samples.c.source_time,
                samples.c.value,
                samples.c.text_value,
                samples.c.quality,
                samples.c.reason,
            ).where(samples.c.tag_id == info.id)
            query = _in_window(query, start, end, limit=limit, newest_first=newest_first)
            rows = conn.execute(query).all()
        qualities: dict[tuple[int, str | None], Quality] = {}
        result: list[Sample] = []
        for server_time, source_time, value, text_value, code, reason in rows:
            quality = qualities.get((code, reason))
            if quality is None:
                quality = qualities[(code, reason)] = Quality.from_status_code(code, reason or "")
            decoded = decode_sample_value(info.data_type, value, text_value)
            source = server_time if source_time is None else source_time
            result.append(Sample(tag, decoded, quality, source, server_time))
        return result

    def read_raw_columns(
        self,
        tag: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> SampleColumns:
        """``read_raw`` as columns: the same rows, times as epoch milliseconds computed by the
        database, no ``Sample`` per row (a day of one-second values reads in a fraction of the
        time). Raises UnknownTagError for an unknown tag."""
        _check_window(start, end, limit)
        with self._store.reading(f"read {tag}") as conn:
            info = tag_info(conn, tag)
            sqlite = conn.dialect.name == "sqlite"
            server_ms = _epoch_ms(samples.c.server_time, sqlite=sqlite)
            source_ms = _epoch_ms(samples.c.source_time, sqlite=sqlite)
            # A tag's values live in one of the two value columns: read only that one.
            textual = info.data_type in (DataType.STRING, DataType.DATETIME)
            query = select(
                server_ms,
                func.coalesce(source_ms, server_ms),
                samples.c.text_value if textual else samples.c.value,
                samples.c.quality,
                samples.c.reason,
            ).where(samples.c.tag_id == info.id)
            query = _in_window(query, start, end, limit=limit, newest_first=newest_first)
            if sqlite and info.data_type is DataType.FLOAT:
                columns = _sqlite_float_columns(conn, tag, query.subquery())
                if columns is not None:
                    return columns
            result = conn.execute(query)
            # The driver's rows as they are (plain tuples: integers, floats and text that need
            # no conversion): a day of one-second values costs no Row object per row.
            rows: Sequence[tuple[Any, ...]] = result.cursor.fetchall()
            result.close()
        if not rows:
            return SampleColumns(tag, [], [], [], [], [])
        # Column by column at C speed (map, zip, dict.fromkeys): no Python loop per row.
        server, source, stored, codes, reasons = (
            list(column) for column in zip(*rows, strict=True)
        )
        return SampleColumns(
            tag,
            server,
            source,
            _decoded_column(info.data_type, stored),
            *_quality_columns(codes, reasons),
        )

    def read_at_times(self, tag: str, times: Sequence[datetime]) -> list[Sample]:
        """One sample of ``tag`` at each of ``times``: stored, held or interpolated.

        See ``historian.attime`` for the rules (Bad with no data before the first sample,
        Uncertain when extrapolated past the last one).
        """
        with self._store.reading(f"read {tag} at times") as conn:
            return read_at_times(conn, tag_info(conn, tag), times)

    def read_processed(
        self,
        tag: str,
        start: datetime,
        end: datetime,
        interval: timedelta,
        aggregates: Sequence[str],
    ) -> dict[str, list[Sample]]:
        """Aggregates of ``tag`` per ``interval`` over [start, end), one sample per interval.

        Names: interpolative, average, time_average, minimum, maximum, start, end, count,
        percent_good (OPC UA Part 13; see ``historian.aggregates``). Raises AggregateError (a
        ValueError) for an unknown name, a string tag or too many intervals.
        """
        parsed = parse_aggregates(aggregates)
        with self._store.reading(f"aggregate {tag}") as conn:
            computed = read_processed(conn, tag_info(conn, tag), start, end, interval, parsed)
        return {aggregate.value: values for aggregate, values in computed.items()}

    def trend(self, tag: str, start: datetime, end: datetime, max_points: int) -> Trend:
        """At most ``max_points`` points of ``tag`` over [start, end), spikes kept."""
        with self._store.reading(f"trend {tag}") as conn:
            return read_trend(conn, tag_info(conn, tag), start, end, max_points)

    def read_trend(self, tag: str, start: datetime, end: datetime, max_points: int) -> list[Sample]:
        """The points of ``trend`` as samples."""
        return self.trend(tag, start, end, max_points).samples()

    def read_commands(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        tag: str | None = None,
        tags: Sequence[str] | None = None,
        origin: CommandOrigin | None = None,
        requested_by: str | None = None,
        limit: int | None = None,
    ) -> list[CommandResult]:
        """Journaled commands issued in [start, end], filtered, oldest first."""
        return self._store.read_commands(
            start,
            end,
            tag=tag,
            tags=tags,
            origin=origin,
            requested_by=requested_by,
            limit=limit,
        )

    def read_events(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        kind: EventKind | None = None,
        source: str | None = None,
        user: str | None = None,
        limit: int | None = None,
        tag: str | None = None,
        device: str | None = None,
        area: str | None = None,
    ) -> list[Event]:
        """Journaled events with start <= time <= end, filtered, oldest first."""
        return self._store.read_events(
            start,
            end,
            kind=kind,
            source=source,
            user=user,
            limit=limit,
            tag=tag,
            device=device,
            area=area,
        )


def _epoch_ms(column: ColumnElement[datetime], *, sqlite: bool) -> ColumnElement[int]:
    """Milliseconds since 1970 UTC of a stored time column, computed by the database."""
    if sqlite:
        # Stored as integer microseconds: round to the nearest millisecond (times are positive).
        return (type_coerce(column, BigInteger) + 500) // 1000
    return cast(func.round(func.extract("epoch", column) * 1000), BigInteger)


def _decoded_column(data_type: DataType, stored: list[Any]) -> list[Value | None]:
    """The values of one stored tag's rows in its data type (``decode_sample_value`` by column):
    ``stored`` is the text column of a text or time tag, the number column of any other."""
    if data_type is DataType.FLOAT:
        # The drivers return REAL and DOUBLE PRECISION columns as floats (None for NULL).
        return stored
    if data_type in (DataType.STRING, DataType.DATETIME):
        return [decode_sample_value(data_type, None, text) for text in stored]
    return [decode_sample_value(data_type, number, None) for number in stored]


_PRINTED_EXACTLY_BELOW = 1e100
"""SQLite (3.40) prints a double of this magnitude or more through a scale of 1e100, which is
not exact: its 17 digits may read back as a neighbouring double. Such rows are read row by row."""


def _sqlite_float_columns(conn: Connection, tag: str, rows: Subquery) -> SampleColumns | None:
    """A float tag's rows as columns, built by SQLite as JSON arrays in one step and kept as
    that text (``JsonArray``); None when a value is infinite (JSON has no such number) or 1e100
    or more (see ``_PRINTED_EXACTLY_BELOW``): read row by row.

    Python's sqlite3 module gives the GIL up and takes it back around every row it steps; with
    the center's other threads busy, a day of one-second values then waited on the GIL tens
    of thousands of times. One aggregate is one step, and the arrays need no parsing (with the
    GIL) to be sent as JSON. Numbers are printed with 17 significant digits, which read back as
    exactly the stored double below 1e100. Qualities are counted in SQL: one for the whole
    window (the common case) needs no per-row column. The arrays follow the rows' order (the
    key's order: checked, and read row by row should it ever differ)."""
    server, source, value, code, reason = rows.c
    # Joined as text, not json_group_array(json(...)): no JSON parse of every number. Infinite
    # (JSON has no such number) and too large to print exactly: seen in min and max, and then
    # read row by row.
    exact = case(
        (value.is_(None), literal("null")),
        (or_(value >= _PRINTED_EXACTLY_BELOW, value <= -_PRINTED_EXACTLY_BELOW), literal("null")),
        else_=func.printf("%!.17g", value),
    )
    query = select(
        func.json_group_array(server),
        func.json_group_array(source),
        literal("[") + func.group_concat(exact, ",") + literal("]"),
        func.count(),
        func.min(value),
        func.max(value),
        # One quality all along (the common case) needs no column of them.
        func.min(code),
        func.max(code),
        func.count(reason),
        func.min(reason),
        func.max(reason),
    )
    server_text, source_text, values_text, count, low, high, *quality = conn.execute(query).one()
    if count == 0:
        return SampleColumns(tag, [], [], [], [], [])
    if max(abs(low or 0.0), abs(high or 0.0)) >= _PRINTED_EXACTLY_BELOW:
        return None
    # The order checked at C speed on the text, with no Python object per row (the times are
    # 64-bit integers; a text that does not read as ``count`` of them is read row by row).
    times = np.fromstring(server_text[1:-1], dtype=np.int64, sep=",")
    steps = np.diff(times)
    if times.size != count or not (bool((steps >= 0).all()) or bool((steps <= 0).all())):
        return None
    low_code, high_code, reasons_given, low_reason, high_reason = quality
    # No reason and an empty one are the same quality (both in one window: read as a column).
    same_reason = reasons_given == 0 or (reasons_given == count and low_reason == high_reason)
    if low_code == high_code and same_reason:
        quality_index: list[int] = [0] * count
        qualities = [Quality.from_status_code(int(low_code), low_reason or "")]
    else:
        # Several qualities: their rows in the same order (the same snapshot, checked).
        again = select(
            func.json_group_array(server),
            func.json_group_array(code),
            func.json_group_array(reason),
        )
        order, codes, reasons = conn.execute(again).one()
        if order != server_text:
            return None
        quality_index, qualities = _quality_columns(orjson.loads(codes), orjson.loads(reasons))
    return SampleColumns(
        tag,
        JsonArray(server_text, count, orjson.loads),
        JsonArray(source_text, count, orjson.loads),
        JsonArray(values_text, count, orjson.loads),
        quality_index,
        qualities,
    )


def _quality_columns(
    codes: list[int], reasons: list[str | None]
) -> tuple[list[int], list[Quality]]:
    """Each row's index into the distinct qualities, and those qualities (at C speed: a day's
    rows mostly share one)."""
    if codes.count(codes[0]) == len(codes) and reasons.count(reasons[0]) == len(reasons):
        # The common case, one quality all along (counted at C speed).
        return [0] * len(codes), [Quality.from_status_code(int(codes[0]), reasons[0] or "")]
    keys = list(zip(codes, reasons, strict=True))
    indexes = {key: index for index, key in enumerate(dict.fromkeys(keys))}
    qualities = [Quality.from_status_code(int(code), reason or "") for code, reason in indexes]
    return list(map(indexes.__getitem__, keys)), qualities


def _check_window(start: datetime | None, end: datetime | None, limit: int | None) -> None:
    """Refuse a negative limit or a window end without a time zone (ValueError)."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    for name, moment in (("start", start), ("end", end)):
        if moment is not None and moment.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")


_Query = TypeVar("_Query", bound=Select[Any])


def _in_window(
    query: _Query,
    start: datetime | None,
    end: datetime | None,
    *,
    limit: int | None,
    newest_first: bool,
) -> _Query:
    """``query`` over samples limited to start <= server time <= end, in server-time order
    (newest first if asked), at most ``limit`` rows from the end the order starts at."""
    if start is not None:
        query = query.where(samples.c.server_time >= start)
    if end is not None:
        query = query.where(samples.c.server_time <= end)
    query = query.order_by(samples.c.server_time.desc() if newest_first else samples.c.server_time)
    return query if limit is None else query.limit(limit)
