"""The ``controlcenter`` command line."""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from controlcenter.app import CenterFailedError, ControlCenter, HmiOptions
from controlcenter.clock import WallClock
from controlcenter.config import SiteConfig, load_site
from controlcenter.demo import (
    DEMO_DB_URL,
    DEMO_USERS_PATH,
    Demo,
    DemoOptions,
    ensure_demo_login,
)
from controlcenter.model import Role, Sample, utc_now
from controlcenter.timeparse import TimeParseError, parse_time
from controlcenter.users import UserStore, UserStoreError
from controlcenter.yamlsource import SourceFileError
from historian.store import SqlHistorian
from plc_sim.city import SimulatedCity
from plc_sim.clock import SimClock

app = typer.Typer(
    help="City operations control center: acquisition, historian, rules and HMI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
user_app = typer.Typer(help="Manage HMI users.", no_args_is_help=True)
app.add_typer(user_app, name="user")

log = logging.getLogger("controlcenter")


class OutputFormat(StrEnum):
    """Export formats of ``history``."""

    CSV = "csv"
    JSON = "json"


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Protocol libraries log every field fault with a traceback; the center logs them once.
    for noisy in ("pymodbus", "asyncua", "bacpypes3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)


def _run_until_stopped(
    body: Callable[[asyncio.Event], Awaitable[None]], duration: float | None
) -> int:
    """Run ``body`` until Ctrl-C, SIGTERM or ``duration`` seconds of wall time; return exit code."""

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if duration is not None:
            loop.call_later(duration, stop.set)
        try:
            await body(stop)
        except CenterFailedError as err:
            log.error("the center stopped: %s", err)
            return 1
        return 0

    return asyncio.run(main())


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
    verbose: Verbose = False,
) -> None:
    """Run the simulated city, the control center and the HMI on SQLite under ./var/."""
    _configure_logging(verbose)
    hmi = None
    if not no_hmi:
        password = ensure_demo_login(users)
        if password is not None:
            typer.echo(f"HMI login created: admin / {password} (stored hashed in {users})")
        else:
            typer.echo(f"HMI logins: {users} (add one with `controlcenter user add NAME`)")
        hmi = HmiOptions(users_path=users, host=host, port=port)
    runner = Demo(DemoOptions(speed=speed, db_url=db, hmi=hmi, seed=seed))

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
    if center is not None and center.hmi_server is not None:
        typer.echo(f"HMI: {center.hmi_url}  (Ctrl-C stops the demo)")
    else:
        typer.echo("Demo running without HMI (Ctrl-C stops it)")


@app.command()
def run(
    site: Annotated[Path, typer.Option(help="Site file (YAML).")],
    db: Annotated[str, typer.Option(help="Historian database URL.")] = "sqlite:///var/center.db",
    duration: Duration = None,
    no_hmi: Annotated[bool, typer.Option("--no-hmi", help="Run without the web HMI.")] = False,
    port: Annotated[int, typer.Option(help="HMI port (0 picks a free one).")] = 8050,
    host: Annotated[str, typer.Option(help="HMI address to listen on.")] = "127.0.0.1",
    users: Annotated[Path, typer.Option(help="HMI users file.")] = Path("var/users.json"),
    verbose: Verbose = False,
) -> None:
    """Run the control center for a site file against its field devices, in real time."""
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
    try:
        return load_site(path)
    except SourceFileError as err:
        for problem in err.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from err


@app.command()
def sim(
    duration: Duration = None,
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per wall-clock second.", min=0.1, max=3600)
    ] = 1.0,
    host: Annotated[str, typer.Option(help="Address the devices listen on.")] = "127.0.0.1",
    modbus_port: Annotated[int, typer.Option(help="Port of the tank RTU (0: any free).")] = 15020,
    seed: Annotated[int, typer.Option(help="Seed of the simulation's randomness.")] = 1,
    points: Annotated[
        bool, typer.Option("--points", help="Print the point list and exit.")
    ] = False,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="Point list format.")
    ] = OutputFormat.CSV,
    verbose: Verbose = False,
) -> None:
    """Run the simulated city's devices (or print their point list with --points)."""
    _configure_logging(verbose)
    clock = SimClock(speed=speed)
    city = SimulatedCity(clock, host=host, modbus_port=modbus_port, seed=seed)
    if points:
        _print_points(city, output_format)
        return

    async def body(stop: asyncio.Event) -> None:
        await city.start()
        try:
            for name, (device_host, device_port) in city.endpoints().items():
                typer.echo(f"{name}: modbus tcp {device_host}:{device_port}")
            await stop.wait()
        finally:
            await city.stop()

    raise typer.Exit(_run_until_stopped(body, duration))


def _print_points(city: SimulatedCity, output_format: OutputFormat) -> None:
    endpoints = city.endpoints()
    rows = [
        {
            "device": point.device,
            "protocol": point.protocol,
            "endpoint": "{}:{}".format(*endpoints[point.device]),
            "address": point.address,
            "tag": point.tag,
            "data_type": point.data_type,
            "unit": point.unit,
            "writable": point.writable,
            "low": "" if point.low is None else point.low,
            "high": "" if point.high is None else point.high,
        }
        for point in city.points()
    ]
    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps(rows, indent=2))
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


@app.command()
def history(
    tag: Annotated[str, typer.Argument(help="Tag name, e.g. water.tank1.level.")],
    start: Annotated[
        str | None, typer.Option(help="ISO 8601 time, 'now' or relative (-1h). Default: all.")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="ISO 8601 time, 'now' or relative (-5m). Default: all.")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="Output format.")
    ] = OutputFormat.CSV,
    db: Annotated[str, typer.Option(help="Historian database URL.")] = DEMO_DB_URL,
) -> None:
    """Print a tag's stored samples with their quality."""
    now = utc_now()
    try:
        start_time = parse_time(start, now) if start is not None else None
        end_time = parse_time(end, now) if end is not None else None
    except TimeParseError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    store = SqlHistorian(db)
    try:
        samples = store.read_raw(tag, start_time, end_time)
    except KeyError as err:
        typer.echo(f"unknown tag '{tag}' in {db}", err=True)
        raise typer.Exit(1) from err
    finally:
        store.close()
    _print_samples(samples, output_format)


def _print_samples(samples: list[Sample], output_format: OutputFormat) -> None:
    rows = [
        {
            "time": sample.source_time.isoformat(timespec="milliseconds"),
            "tag": sample.tag,
            "value": sample.value,
            "quality": sample.quality.label(),
            "reason": sample.quality.reason,
        }
        for sample in samples
    ]
    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps(rows, indent=1))
        return
    writer = csv.DictWriter(
        sys.stdout, fieldnames=["time", "tag", "value", "quality", "reason"], lineterminator="\n"
    )
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


def main() -> None:
    """Entry point of the ``controlcenter`` console script."""
    app()


if __name__ == "__main__":
    main()
