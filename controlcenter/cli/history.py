"""``controlcenter history``: stored samples, aggregates, trends and journals as CSV or JSON."""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from controlcenter.cli.timeparse import TimeParseError, parse_time
from controlcenter.model import CommandOrigin, CommandResult, Sample, utc_now
from controlcenter.runtime.defaults import DEMO_DB_URL

if TYPE_CHECKING:
    from historian.queries import HistoryQueries
    from historian.store import JournaledEvent


class OutputFormat(StrEnum):
    """Export formats of ``history``."""

    CSV = "csv"
    JSON = "json"


class Journal(StrEnum):
    """Journals ``history --journal`` prints."""

    COMMANDS = "commands"
    EVENTS = "events"


class _UsageError(ValueError):
    """The options of a ``history`` call do not fit together."""


_INTERVAL = re.compile(r"^(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)$")
_INTERVAL_UNITS = {
    "ms": "milliseconds",
    "s": "seconds",
    "m": "minutes",
    "h": "hours",
    "d": "days",
}
AGGREGATE_ALIASES = {
    "avg": "time_average",
    "mean": "average",
    "min": "minimum",
    "max": "maximum",
    "first": "start",
    "last": "end",
    "count": "count",
    "pct_good": "percent_good",
    "interp": "interpolative",
}
"""Short aggregate names of the command line and the OPC UA Part 13 aggregates they stand for."""


def history(
    tags: Annotated[
        list[str] | None, typer.Argument(help="Tag names, e.g. water.tank1.level.")
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="ISO 8601 time, 'now' or relative (-1h). Default: all.")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="ISO 8601 time, 'now' or relative (-5m). Default: all.")
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(help="Aggregate per interval (30s, 1m, 1h, 1d) instead of raw values."),
    ] = None,
    agg: Annotated[
        str,
        typer.Option(
            help="Aggregates with --every: avg (time-weighted), mean, min, max, first, last, "
            "count, pct_good, interp (or OPC UA Part 13 names)."
        ),
    ] = "avg,min,max",
    points: Annotated[
        int | None, typer.Option(help="Trend of at most this many points (min and max kept).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="At most this many rows per tag.", min=0)
    ] = None,
    journal: Annotated[
        Journal | None, typer.Option(help="Print a journal instead of tag values.")
    ] = None,
    tag_filter: Annotated[
        str | None,
        typer.Option(
            "--tag", help="Journal: only this tag (events: from it, or alarm events of it)."
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="Event journal: only alarm events of this device.")
    ] = None,
    area: Annotated[
        str | None, typer.Option(help="Event journal: only alarm events of this area.")
    ] = None,
    origin: Annotated[
        CommandOrigin | None, typer.Option(help="Command journal: only this origin.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Journal: only this user or rule.")] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="Output format.")
    ] = OutputFormat.CSV,
    db: Annotated[str, typer.Option(help="Historian database URL.")] = DEMO_DB_URL,
) -> None:
    """Print stored samples, aggregates per interval, a trend, or a journal, as CSV or JSON."""
    from historian.aggregates import AggregateError
    from historian.errors import UnknownTagError
    from historian.queries import HistoryQueries
    from historian.store import SqlHistorian
    from historian.trend import TrendError

    now = utc_now()
    try:
        start_time = parse_time(start, now) if start is not None else None
        end_time = parse_time(end, now) if end is not None else None
        request = _history_request(tags or [], every, agg, points, journal)
    except (TimeParseError, _UsageError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    store = SqlHistorian(db)
    queries = HistoryQueries(store)
    try:
        if journal is Journal.COMMANDS:
            results = queries.read_commands(
                start_time, end_time, tag=tag_filter, origin=origin, requested_by=user, limit=limit
            )
            _print_rows([_command_row(result) for result in results], output_format)
            return
        if journal is Journal.EVENTS:
            entries = store.read_event_entries(
                start_time,
                end_time,
                about=tag_filter,
                user=user,
                limit=limit,
                device=device,
                area=area,
            )
            _print_rows([_event_row(entry) for entry in entries], output_format)
            return
        rows: list[dict[str, object]] = []
        for name in tags or []:
            rows.extend(_tag_rows(queries, name, start_time, end_time, now, request, limit))
        _print_rows(rows, output_format)
    except UnknownTagError as err:
        typer.echo(f"unknown tag '{err.tag}' in {db}", err=True)
        raise typer.Exit(1) from err
    except (AggregateError, TrendError, _UsageError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    finally:
        store.close()


@dataclass(frozen=True, slots=True)
class _HistoryRequest:
    """What ``history`` prints for each tag."""

    interval: timedelta | None
    aggregates: tuple[str, ...]
    points: int | None


def _history_request(
    tags: list[str], every: str | None, agg: str, points: int | None, journal: Journal | None
) -> _HistoryRequest:
    if journal is not None:
        if tags:
            raise _UsageError("--journal prints a journal: filter it with --tag, not arguments")
        return _HistoryRequest(None, (), None)
    if not tags:
        raise _UsageError("name at least one tag (or print a journal with --journal)")
    if every is not None and points is not None:
        raise _UsageError("choose --every (aggregates) or --points (trend), not both")
    if every is None:
        return _HistoryRequest(None, (), points)
    matched = _INTERVAL.match(every.strip())
    if matched is None:
        raise _UsageError(f"'{every}' is not an interval: use e.g. 30s, 1m, 1h or 1d")
    from historian.aggregates import AggregateError, parse_aggregates

    interval = timedelta(**{_INTERVAL_UNITS[matched["unit"]]: float(matched["amount"])})
    names = tuple(
        AGGREGATE_ALIASES.get(name.strip(), name.strip()) for name in agg.split(",") if name.strip()
    )
    try:
        parse_aggregates(names)
    except AggregateError as err:
        raise _UsageError(f"{err} (or avg, mean, min, max, first, last, count, pct_good)") from err
    return _HistoryRequest(interval, names, None)


def _tag_rows(
    queries: HistoryQueries,
    tag: str,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    request: _HistoryRequest,
    limit: int | None,
) -> list[dict[str, object]]:
    if request.interval is None and request.points is None:
        raw = queries.read_raw(tag, start, end, limit=limit)
        return [_sample_row(s, with_source_time=True) for s in raw]
    # Aggregates and trends need a bounded range: from the first sample, up to now.
    if start is None:
        first = queries.read_raw(tag, None, end, limit=1)
        start = first[0].server_time if first else now
    end = now if end is None else end
    if request.points is not None:
        return [_sample_row(s) for s in queries.read_trend(tag, start, end, request.points)]
    if request.interval is None:
        raise _UsageError("neither --every nor --points given")
    processed = queries.read_processed(tag, start, end, request.interval, request.aggregates)
    rows: list[dict[str, object]] = []
    for name, results in processed.items():
        rows.extend({**_sample_row(result), "aggregate": name} for result in results)
    rows.sort(key=lambda row: str(row["time"]))
    return rows[:limit] if limit is not None else rows


def _sample_row(sample: Sample, *, with_source_time: bool = False) -> dict[str, object]:
    # History is ordered by the time the center received each value ("time"); a raw row also
    # shows the device's own stamp, which stands still while a value does not change.
    row: dict[str, object] = {
        "time": sample.server_time.isoformat(timespec="milliseconds"),
        "tag": sample.tag,
        # A datetime tag's value as ISO 8601, in CSV and JSON alike.
        "value": sample.value.isoformat() if isinstance(sample.value, datetime) else sample.value,
        "quality": sample.quality.label(),
        "reason": sample.quality.reason,
    }
    if with_source_time:
        row["source_time"] = sample.source_time.isoformat(timespec="milliseconds")
    return row


def _command_row(result: CommandResult) -> dict[str, object]:
    command = result.command
    return {
        "issued_at": command.issued_at.isoformat(timespec="milliseconds"),
        "tag": command.tag,
        "value": command.value,
        "origin": command.origin.value,
        "requested_by": command.requested_by,
        "priority": int(command.priority),
        "reason": command.reason,
        "status": result.status.value,
        "result_reason": result.reason,
        "readback": result.readback,
        "completed_at": result.completed_at.isoformat(timespec="milliseconds"),
    }


def _event_row(entry: JournaledEvent) -> dict[str, object]:
    event = entry.event
    return {
        "time": event.time.isoformat(timespec="milliseconds"),
        "kind": event.kind.value,
        "source": event.source,
        "message": event.message,
        "user": event.user,
        "severity": event.severity,
        # What an alarm event concerns (empty for other events).
        "tag": entry.tag,
        "device": entry.device,
        "area": entry.area,
    }


_DEFAULT_COLUMNS = ["time", "tag", "value", "quality", "reason", "source_time"]


def _print_rows(rows: list[dict[str, object]], output_format: OutputFormat) -> None:
    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps(rows, indent=1))
        return
    columns = list(rows[0]) if rows else _DEFAULT_COLUMNS
    if "aggregate" in columns:
        columns = ["time", "tag", "aggregate", "value", "quality", "reason"]
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
