"""History of one tag: raw values, aggregates per interval, and trend points (the historian's
queries)."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any

from flask_openapi3.openapi import OpenAPI
from pydantic import AwareDatetime, BaseModel, Field
from werkzeug.exceptions import BadRequest

from controlcenter.api.auth import require
from controlcenter.api.problems import problems
from controlcenter.api.routes.common import MAX_NAME, Query, blueprint, dump, window
from controlcenter.api.routes.tags import known_tag
from controlcenter.api.schemas import Value, ValueColumns, value_columns, value_documents
from controlcenter.api.services import ApiServices
from controlcenter.permissions import Permission

MAX_RAW = 100_000
MAX_BUCKETS = 10_000
"""Intervals one aggregate query may return per aggregate."""
MAX_TREND_POINTS = 10_000


class Order(StrEnum):
    """Oldest or newest first."""

    ASC = "asc"
    DESC = "desc"


class Aggregate(StrEnum):
    """The historian's aggregates (OPC UA Part 13)."""

    INTERPOLATIVE = "interpolative"
    AVERAGE = "average"
    TIME_AVERAGE = "time_average"
    MINIMUM = "minimum"
    MAXIMUM = "maximum"
    START = "start"
    END = "end"
    COUNT = "count"
    PERCENT_GOOD = "percent_good"


class TagPath(BaseModel):
    """One tag by name."""

    tag: str = Field(max_length=MAX_NAME)


class RawQuery(Query):
    """Stored values in a window (by server time), at most ``limit`` of them."""

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    limit: int = Field(1000, ge=1, le=MAX_RAW)
    order: Order = Order.ASC


class AggregateQuery(Query):
    """Aggregates per interval over a window."""

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    interval_s: float = Field(60.0, gt=0, le=366 * 86400, description="interval in seconds")
    aggregates: list[Aggregate] = Field(
        default_factory=lambda: [Aggregate.AVERAGE],
        min_length=1,
        max_length=len(Aggregate),
        description="Aggregates (repeat the parameter)",
    )


class TrendQuery(Query):
    """At most ``max_points`` points over a window, the extremes kept."""

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    max_points: int = Field(1000, ge=2, le=MAX_TREND_POINTS)


class RawHistory(BaseModel):
    """Stored values of one tag."""

    tag: str
    values: list[Value]
    truncated: bool = Field(description="More values lie in the window than were returned")


class AggregateHistory(BaseModel):
    """Aggregates of one tag, one list of values per aggregate (one value per interval)."""

    tag: str
    interval_s: float
    aggregates: dict[str, list[Value]]


class TrendHistory(BaseModel):
    """Trend points of one tag."""

    tag: str
    values: list[Value]


def register(api: OpenAPI, services: ApiServices) -> None:
    """Add the history endpoints."""
    bp = blueprint("history", "The historian's queries: raw values, aggregates, trend points")
    missing = problems(e404="No such tag")

    @bp.get("/history/<tag>/raw", responses={200: RawHistory, **missing})
    def raw(path: TagPath, query: RawQuery) -> dict[str, Any]:
        """Stored values of a tag in a window (default: the last hour), oldest or newest first."""
        require(Permission.VIEW)
        known_tag(services, path.tag)
        start, end = window(query.start, query.end, services.now())
        # One more than the limit tells whether the window holds more.
        samples = services.history.read_raw(
            path.tag,
            start,
            end,
            limit=query.limit + 1,
            newest_first=query.order is Order.DESC,
        )
        page = samples[: query.limit]
        # Built directly, not through the pydantic model: a day of one-second values is 86,400
        # documents (the model describes them in the OpenAPI document all the same).
        return {
            "tag": path.tag,
            "values": value_documents(page),
            "truncated": len(samples) > len(page),
        }

    @bp.get("/history/<tag>/raw/columns", responses={200: ValueColumns, **missing})
    def raw_columns(path: TagPath, query: RawQuery) -> dict[str, Any]:
        """Stored values of a tag in a window as columns: the compact shape for long windows
        (a day of one-second values), times in milliseconds since 1970 UTC."""
        require(Permission.VIEW)
        known_tag(services, path.tag)
        start, end = window(query.start, query.end, services.now())
        columns = services.history.read_raw_columns(
            path.tag,
            start,
            end,
            limit=query.limit + 1,
            newest_first=query.order is Order.DESC,
        )
        # One more than the limit tells whether the window holds more.
        return value_columns(columns.head(query.limit), truncated=len(columns) > query.limit)

    @bp.get("/history/<tag>/aggregates", responses={200: AggregateHistory, **missing})
    def aggregates(path: TagPath, query: AggregateQuery) -> dict[str, Any]:
        """Aggregates of a tag per interval over a window (default: the last hour)."""
        require(Permission.VIEW)
        known_tag(services, path.tag)
        start, end = window(query.start, query.end, services.now())
        names = [a.value for a in query.aggregates]
        if (end - start).total_seconds() / query.interval_s > MAX_BUCKETS:
            raise BadRequest(f"more than {MAX_BUCKETS} intervals: widen the interval")
        result = services.history.read_processed(
            path.tag, start, end, timedelta(seconds=query.interval_s), list(dict.fromkeys(names))
        )
        return dump(
            AggregateHistory(
                tag=path.tag,
                interval_s=query.interval_s,
                aggregates={
                    name: [Value.of(s) for s in samples] for name, samples in result.items()
                },
            )
        )

    @bp.get("/history/<tag>/trend", responses={200: TrendHistory, **missing})
    def trend(path: TagPath, query: TrendQuery) -> dict[str, Any]:
        """At most ``max_points`` points of a tag over a window, extremes kept (for plots)."""
        require(Permission.VIEW)
        known_tag(services, path.tag)
        start, end = window(query.start, query.end, services.now())
        samples = services.history.read_trend(path.tag, start, end, query.max_points)
        return dump(TrendHistory(tag=path.tag, values=[Value.of(s) for s in samples]))

    api.register_api(bp)
