"""The ``controlcenter`` command line."""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controlcenter.defaults import CENTER_DB_URL, DEMO_DB_URL, DEMO_USERS_PATH
from controlcenter.model import (
    CommandOrigin,
    CommandResult,
    Event,
    Role,
    Sample,
    utc_now,
)
from controlcenter.runner import configure_logging, run_until_stopped
from controlcenter.sim_cli import DEFAULT_BASE_PORT, DEFAULT_CONTROL, sim_app
from controlcenter.timeparse import TimeParseError, parse_time

if TYPE_CHECKING:
    from controlcenter.config import SiteConfig
    from controlcenter.demo import Demo
    from historian.queries import HistoryQueries

# Each command imports what it needs when it runs: `--help`, `check`, `history` and `user`
# then start without importing every protocol library, the HMI and the benchmarks.

app = typer.Typer(
    help="City operations control center: acquisition, historian, rules and HMI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
user_app = typer.Typer(help="Manage HMI users.", no_args_is_help=True)
app.add_typer(user_app, name="user")
bench_app = typer.Typer(help="Benchmarks that print one JSON object.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(sim_app, name="sim")

log = logging.getLogger("controlcenter")


class OutputFormat(StrEnum):
    """Export formats of ``history``."""

    CSV = "csv"
    JSON = "json"


_configure_logging = configure_logging
_run_until_stopped = run_until_stopped


Duration = Annotated[
    float | None,
    typer.Option(help="Stop after this many seconds of wall-clock time.", min=0),
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail.")]


@app.command()
def demo(
    duration: Duration = None,
    no_hmi: Annotated[bool, typer.Option("--no-hmi", help="Run without the web HMI.")] = False,
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per wall-clock second.", min=0.1, max=3600)
    ] = 1.0,
    db: Annotated[str, typer.Option(help="Historian database URL.")] = DEMO_DB_URL,
    port: Annotated[int, typer.Option(help="HMI port (0 picks a free one).")] = 8050,
    host: Annotated[str, typer.Option(help="HMI address to listen on.")] = "127.0.0.1",
    users: Annotated[Path, typer.Option(help="HMI users file.")] = DEMO_USERS_PATH,
    seed: Annotated[int, typer.Option(help="Seed of the simulation's randomness.")] = 1,
    base_port: Annotated[
        int, typer.Option(help="Port of the city's first device (0: any free ports).")
    ] = DEFAULT_BASE_PORT,
    control: Annotated[
        str, typer.Option(help="host:port of the city's fault-injection endpoint (port 0: any).")
    ] = DEFAULT_CONTROL,
    start: Annotated[
        datetime | None,
        typer.Option(
            help="Simulated time to start at, ISO 8601 with offset (e.g. a morning peak: "
            "2026-11-21T07:00:00+01:00). Default: now."
        ),
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Run the simulated city, the control center and the HMI on SQLite under ./var/."""
    from controlcenter.app import HmiOptions
    from controlcenter.demo import Demo, DemoOptions, ensure_demo_login

    if start is not None and start.utcoffset() is None:
        raise typer.BadParameter("--start needs a UTC offset, e.g. 2026-11-21T07:00:00+01:00")
    _configure_logging(verbose)
    hmi = None
    if not no_hmi:
        password = ensure_demo_login(users)
        if password is not None:
            typer.echo(f"HMI login created: admin / {password} (stored hashed in {users})")
        else:
            typer.echo(f"HMI logins: {users} (add one with `controlcenter user add NAME`)")
        hmi = HmiOptions(users_path=users, host=host, port=port)
    runner = Demo(
        DemoOptions(
            speed=speed,
            db_url=db,
            hmi=hmi,
            seed=seed,
            start=start,
            base_port=base_port,
            control=control,
        )
    )

    async def body(stop: asyncio.Event) -> None:
        announce = asyncio.create_task(_announce(runner))
        try:
            await runner.run(stop)
        finally:
            announce.cancel()

    raise typer.Exit(_run_until_stopped(body, duration))


async def _announce(runner: Demo) -> None:
    await runner.ready.wait()
    center = runner.center
    if runner.city_control is not None:
        host, port = runner.city_control
        typer.echo(f"Fault injection: controlcenter sim fault --control {host}:{port} …")
    if center is not None and center.hmi_server is not None:
        typer.echo(f"HMI: {center.hmi_url}  (Ctrl-C stops the demo)")
    else:
        typer.echo("Demo running without HMI (Ctrl-C stops it)")


@app.command()
def run(
    site: Annotated[Path, typer.Option(help="Site file (YAML).")],
    db: Annotated[str, typer.Option(help="Historian database URL.")] = CENTER_DB_URL,
    duration: Duration = None,
    no_hmi: Annotated[bool, typer.Option("--no-hmi", help="Run without the web HMI.")] = False,
    port: Annotated[int, typer.Option(help="HMI port (0 picks a free one).")] = 8050,
    host: Annotated[str, typer.Option(help="HMI address to listen on.")] = "127.0.0.1",
    users: Annotated[Path, typer.Option(help="HMI users file.")] = Path("var/users.json"),
    verbose: Verbose = False,
) -> None:
    """Run the control center for a site file against its field devices, in real time."""
    from controlcenter.app import ControlCenter, HmiOptions
    from controlcenter.clock import WallClock
    from historian.store import SqlHistorian

    _configure_logging(verbose)
    config = _load_site_or_exit(site)
    hmi = None if no_hmi else HmiOptions(users_path=users, host=host, port=port)

    async def body(stop: asyncio.Event) -> None:
        store = await asyncio.to_thread(SqlHistorian, db)
        try:
            await ControlCenter(config, store, WallClock(), hmi=hmi).run(stop)
        finally:
            await asyncio.to_thread(store.close)

    raise typer.Exit(_run_until_stopped(body, duration))


@app.command()
def check(site: Annotated[Path, typer.Option(help="Site file (YAML).")]) -> None:
    """Validate a site file: exit 0 when valid, 1 with file, line and reason otherwise."""
    config = _load_site_or_exit(site)
    typer.echo(
        f"{site}: valid ({len(config.devices)} devices, {len(config.tags)} tags, "
        f"{len(config.rules)} rules)"
    )


def _load_site_or_exit(path: Path) -> SiteConfig:
    from controlcenter.config import load_site
    from controlcenter.yamlsource import SourceFileError

    try:
        return load_site(path)
    except SourceFileError as err:
        for problem in err.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from err


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


@app.command()
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
        str | None, typer.Option("--tag", help="Journal: only this tag (events: source).")
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
            events = queries.read_events(
                start_time, end_time, source=tag_filter, user=user, limit=limit
            )
            _print_rows([_event_row(event) for event in events], output_format)
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
        return [_sample_row(s) for s in queries.read_raw(tag, start, end, limit=limit)]
    # Aggregates and trends need a bounded range: from the first sample, up to now.
    if start is None:
        first = queries.read_raw(tag, None, end, limit=1)
        start = first[0].source_time if first else now
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


def _sample_row(sample: Sample) -> dict[str, object]:
    return {
        "time": sample.source_time.isoformat(timespec="milliseconds"),
        "tag": sample.tag,
        "value": sample.value,
        "quality": sample.quality.label(),
        "reason": sample.quality.reason,
    }


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


def _event_row(event: Event) -> dict[str, object]:
    return {
        "time": event.time.isoformat(timespec="milliseconds"),
        "kind": event.kind.value,
        "source": event.source,
        "message": event.message,
        "user": event.user,
        "severity": event.severity,
    }


_DEFAULT_COLUMNS = ["time", "tag", "value", "quality", "reason"]


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


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[Role, typer.Option(help="What the user may do.")] = Role.VIEWER,
    users: Annotated[Path, typer.Option(help="HMI users file.")] = DEMO_USERS_PATH,
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Password."),
    ] = "",
) -> None:
    """Add a user, or replace the password and role of an existing one."""
    from controlcenter.users import UserStore, UserStoreError

    store = UserStore(users)
    try:
        if name in {user.name for user in store.users()}:
            store.set_password(name, password)
            store.set_role(name, role)
        else:
            store.add_user(name, password, role)
    except UserStoreError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from err
    typer.echo(f"user {name} ({role.value}) saved in {users}")


@bench_app.command("poll")
def bench_poll(
    protocol: Annotated[str, typer.Option(help="Protocol: modbus, opcua or bacnet.")],
    tags: Annotated[int, typer.Option(min=1, help="Points in all, over realistic RTUs.")],
    scan: Annotated[float, typer.Option(min=0.01, help="Scan interval, seconds.")] = 1.0,
    duration: Annotated[float, typer.Option(min=0.5, help="Scan phase, seconds.")] = 10.0,
    per_device: Annotated[
        int | None,
        typer.Option(
            min=1, help="Points per device (default: Modbus 400, OPC UA 2500, BACnet 160)."
        ),
    ] = None,
    capacity: Annotated[
        float, typer.Option(min=0.5, help="Capacity and naive phases, seconds each.")
    ] = 3.0,
) -> None:
    """Poll simulated devices with the real drivers and scan engine; print one JSON object."""
    from controlcenter.bench_poll import BenchError, PollBenchOptions, run_poll_bench

    options = PollBenchOptions(protocol, tags, scan, duration, per_device, capacity)
    try:
        figures = asyncio.run(run_poll_bench(options))
    except BenchError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(figures))


@bench_app.command("city")
def bench_city(
    scale: Annotated[int, typer.Option(min=1, help="Scale of the simulated city.")] = 1,
    duration: Annotated[float, typer.Option(min=0.5, help="Polling window, seconds.")] = 10.0,
    scan: Annotated[float, typer.Option(min=0.1, help="Scan interval of every device.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city.")] = 1,
) -> None:
    """Run the simulated city in a child process, poll every point; print one JSON object."""
    from controlcenter.bench_city import CityBenchError, CityBenchOptions, run_city_bench

    options = CityBenchOptions(scale=scale, duration_s=duration, scan_interval_s=scan, seed=seed)
    try:
        figures = asyncio.run(run_city_bench(options))
    except CityBenchError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(figures))


class HistorianBackend(StrEnum):
    """Databases the historian bench runs on."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class HistorianBenchSize(StrEnum):
    """How much data the historian bench uses."""

    FULL = "full"
    TINY = "tiny"


@bench_app.command("historian")
def bench_historian(
    backend: Annotated[
        HistorianBackend, typer.Option(help="Database to measure.")
    ] = HistorianBackend.SQLITE,
    db: Annotated[
        str | None,
        typer.Option(
            help="Database URL (PostgreSQL default: the local server's database 'test', in a "
            "fresh schema dropped afterwards; SQLite default: a temporary file)."
        ),
    ] = None,
    size: Annotated[
        HistorianBenchSize, typer.Option(help="full: the published figures; tiny: a smoke run.")
    ] = HistorianBenchSize.FULL,
) -> None:
    """Measure the historian's ingest, compression, queries and spool replay; print one JSON."""
    from controlcenter import bench_historian as historian_bench

    chosen = historian_bench.TINY if size is HistorianBenchSize.TINY else None
    try:
        result = historian_bench.run_historian_bench(backend.value, db, chosen)
    except historian_bench.BenchError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(historian_bench.result_json(result))


def main() -> None:
    """Entry point of the ``controlcenter`` console script."""
    app()


if __name__ == "__main__":
    main()
