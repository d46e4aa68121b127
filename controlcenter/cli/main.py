"""The ``controlcenter`` command line: its top-level commands (demo, run, check) and its groups."""

from __future__ import annotations

import asyncio
import logging
import shlex
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controlcenter.cli.alarms import alarms_app
from controlcenter.cli.bench import bench_app
from controlcenter.cli.commands import commands_app
from controlcenter.cli.devices import devices
from controlcenter.cli.discover import discover_app
from controlcenter.cli.history import history
from controlcenter.cli.import_points import import_points
from controlcenter.cli.rules import rules_app
from controlcenter.cli.screenshots import hmi_screenshots
from controlcenter.cli.sim import sim_app
from controlcenter.cli.tags import tags
from controlcenter.cli.tokens import token_app
from controlcenter.cli.user import user_app
from controlcenter.cli.value import value
from controlcenter.cli.write import write
from controlcenter.runtime.defaults import (
    CENTER_DB_URL,
    DEFAULT_BASE_PORT,
    DEFAULT_CONTROL,
    DEMO_DB_URL,
    DEMO_USERS_PATH,
)
from controlcenter.runtime.logformat import LogFormat
from controlcenter.runtime.runner import configure_logging, run_until_stopped

if TYPE_CHECKING:
    from controlcenter.runtime.demo import Demo
    from controlcenter.site.config import SiteConfig
    from hmi.server import TlsFiles

# Each command imports what it needs when it runs: `--help`, `check`, `history` and `user`
# then start without importing every protocol library, the HMI and the benchmarks.

app = typer.Typer(
    help="City operations control center: acquisition, historian, rules and HMI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(bench_app, name="bench")
app.add_typer(sim_app, name="sim")
app.add_typer(rules_app, name="rules")
app.add_typer(commands_app, name="commands")
app.add_typer(alarms_app, name="alarms")

log = logging.getLogger("controlcenter")


_configure_logging = configure_logging
_run_until_stopped = run_until_stopped


Duration = Annotated[
    float | None,
    typer.Option(help="Stop after this many seconds of wall-clock time.", min=0),
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail.")]
NatsUrl = Annotated[
    str | None,
    typer.Option(
        "--nats",
        help="NATS server URL (a cluster's nodes comma-separated): take edge devices' samples "
        "from the stream and command them through their edges (default: poll every device).",
    ),
]
NatsConsumer = Annotated[
    str | None,
    typer.Option(help="Durable consumer name; centers naming the same one share the samples."),
]
NatsRoot = Annotated[str, typer.Option(help="First token of the site's NATS subjects.")]
NatsReplicas = Annotated[
    int | None,
    typer.Option(
        help="Copies the site's stream keeps on a NATS cluster (default: 3 when --nats names "
        "three or more servers, else 1).",
        min=1,
        max=5,
    ),
]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format", help="text for people, json for log collectors (one object per line)."
    ),
]
TlsCert = Annotated[
    Path | None,
    typer.Option(help="PEM certificate (chain) of the HMI: serve HTTPS (needs --tls-key)."),
]
TlsKey = Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")]
HostNames = Annotated[
    list[str] | None,
    typer.Option(
        "--hmi-host-name",
        help="A host name browsers use to reach the HMI (repeatable); other Host headers get "
        "400. localhost, 127.0.0.1 and the listening address are always accepted.",
    ),
]


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
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    hmi_host_name: HostNames = None,
    start: Annotated[
        datetime | None,
        typer.Option(
            help="Simulated time to start at, ISO 8601 with offset (e.g. a morning peak: "
            "2026-11-21T07:00:00+01:00). Default: now."
        ),
    ] = None,
    domain: Annotated[
        list[str] | None,
        typer.Option(
            help="Simulate this domain (repeatable), or 'all'; default: water, lights, heat, "
            "bldg. The MQTT domains need the broker at 127.0.0.1:1883 "
            "(`controlcenter sim --help` lists them)."
        ),
    ] = None,
    verbose: Verbose = False,
    log_format: LogFormatOption = "text",
) -> None:
    """Run the simulated city, the control center and the HMI on SQLite under ./var/."""
    from controlcenter.runtime.app import HmiOptions
    from controlcenter.runtime.demo import Demo, DemoOptions, ensure_demo_login

    if start is not None and start.utcoffset() is None:
        raise typer.BadParameter("--start needs a UTC offset, e.g. 2026-11-21T07:00:00+01:00")
    domains = _demo_domains(domain)
    _configure_logging(verbose, log_format)
    tls = _tls_files(tls_cert, tls_key)
    hmi = None
    if not no_hmi:
        password = ensure_demo_login(users)
        if password is not None:
            typer.echo(f"HMI login created: admin / {password} (stored hashed in {users})")
        else:
            typer.echo(f"HMI logins: {users} (add one with `{typed_command()} user add NAME`)")
        hmi = HmiOptions(
            users_path=users,
            host=host,
            port=port,
            tls=tls,
            host_names=tuple(hmi_host_name or ()),
        )
    runner = Demo(
        DemoOptions(
            speed=speed,
            db_url=db,
            hmi=hmi,
            seed=seed,
            start=start,
            base_port=base_port,
            control=control,
            domains=domains,
        )
    )

    async def body(stop: asyncio.Event) -> None:
        announce = asyncio.create_task(_announce(runner))
        try:
            await runner.run(stop)
        finally:
            announce.cancel()

    raise typer.Exit(_run_until_stopped(body, duration))


def _demo_domains(named: list[str] | None) -> frozenset[str]:
    """The demo's domains from ``--domain`` (``all``: every one); BadParameter for unknown ones."""
    from plc_sim.domain import ALL_DOMAINS, DOMAINS

    wanted = set(named or DOMAINS)
    if "all" in wanted:
        wanted = (wanted - {"all"}) | set(ALL_DOMAINS)
    unknown = sorted(wanted - set(ALL_DOMAINS))
    if unknown:
        raise typer.BadParameter(f"unknown domain(s) {unknown}: the city has {list(ALL_DOMAINS)}")
    return frozenset(wanted)


def typed_command() -> str:
    """How to type this command again: its name when the shell finds it, else the path it ran by."""
    invoked = Path(sys.argv[0])
    on_path = shutil.which(invoked.name)
    if on_path is not None and Path(on_path).resolve() == invoked.resolve():
        return invoked.name
    return shlex.quote(str(invoked))


async def _announce(runner: Demo) -> None:
    await runner.ready.wait()
    center = runner.center
    if runner.city_control is not None:
        host, port = runner.city_control
        # Printed as a whole command that works when pasted, from the same directory.
        typer.echo(f"Fault injection: {typed_command()} sim fault list --control {host}:{port}")
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
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    hmi_host_name: HostNames = None,
    verbose: Verbose = False,
    log_format: LogFormatOption = "text",
    nats: NatsUrl = None,
    nats_consumer: NatsConsumer = None,
    nats_root: NatsRoot = "cc",
    nats_replicas: NatsReplicas = None,
) -> None:
    """Run the control center for a site file against its field devices, in real time."""
    from controlcenter.clock import WallClock
    from controlcenter.runtime.app import ControlCenter, HmiOptions, prepare_private_database
    from controlcenter.runtime.center_transport import TransportOptions
    from historian.store import SqlHistorian

    _configure_logging(verbose, log_format)
    config = _load_site_or_exit(site)
    tls = _tls_files(tls_cert, tls_key)
    hmi = None
    if not no_hmi:
        hmi = HmiOptions(
            users_path=users,
            host=host,
            port=port,
            tls=tls,
            host_names=tuple(hmi_host_name or ()),
        )

    async def body(stop: asyncio.Event) -> None:
        await asyncio.to_thread(prepare_private_database, db)
        store = await asyncio.to_thread(SqlHistorian, db)
        try:
            center = ControlCenter(
                config,
                store,
                WallClock(),
                hmi=hmi,
                site_directory=site.absolute().parent,
                nats_url=nats,
                transport=TransportOptions.for_nats(
                    nats, root=nats_root, consumer=nats_consumer, replicas=nats_replicas
                ),
            )
            await center.run(stop)
        finally:
            await asyncio.to_thread(store.close)

    raise typer.Exit(_run_until_stopped(body, duration))


@app.command()
def edge(
    site: Annotated[Path, typer.Option(help="Site file (YAML).")],
    edge: Annotated[str, typer.Option(help="This edge's name, as its devices' `edge:` say.")],
    nats: Annotated[
        str,
        typer.Option(
            help="NATS server URL, e.g. nats://127.0.0.1:4222 (a cluster's nodes comma-separated)."
        ),
    ],
    spool: Annotated[
        Path, typer.Option(help="Folder of the store-and-forward spool (kept across restarts).")
    ] = Path("var/edge-spool"),
    nats_root: NatsRoot = "cc",
    nats_replicas: NatsReplicas = None,
    duration: Duration = None,
    verbose: Verbose = False,
    log_format: LogFormatOption = "text",
) -> None:
    """Run an edge collector: acquire the devices of one edge and publish them to NATS."""
    from controlcenter.clock import WallClock
    from controlcenter.runtime.center_transport import TransportOptions
    from controlcenter.runtime.edge import EdgeCollector

    _configure_logging(verbose, log_format)
    config = _load_site_or_exit(site)
    try:
        collector = EdgeCollector(
            config,
            edge,
            nats,
            WallClock(),
            spool_dir=spool,
            options=TransportOptions.for_nats(nats, root=nats_root, replicas=nats_replicas),
        )
    except ValueError as err:
        typer.echo(f"{site}: {err}", err=True)
        raise typer.Exit(1) from err

    async def body(stop: asyncio.Event) -> None:
        await collector.run(stop)
        # The edge's own account, for whoever checks that nothing was lost (bench scaleout).
        figures = collector.publisher.metrics()
        typer.echo(
            f"published {figures.samples_published} samples "
            f"({figures.spool_depth} messages left in the spool)"
        )

    raise typer.Exit(_run_until_stopped(body, duration))


@app.command()
def check(site: Annotated[Path, typer.Option(help="Site file (YAML).")]) -> None:
    """Validate a site file: exit 0 when valid, 1 with file, line and reason otherwise."""
    config = _load_site_or_exit(site)
    # Imported once the file itself is valid: the whole center (HMI, API, drivers) comes with
    # the rules' check, and a refused file is reported without waiting for it.
    from controlcenter.runtime.app import AutomationRefusedError, check_automation

    try:
        rule_set = check_automation(config, site.absolute().parent)
    except AutomationRefusedError as err:
        for problem in err.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(1) from err
    typer.echo(
        f"{site}: valid ({len(config.devices)} devices, {len(config.tags)} tags, "
        f"{len(rule_set.rules)} rules, {len(rule_set.calculated)} calculated tags, "
        f"{len(config.interlocks)} interlocks)"
    )


def _tls_files(certificate: Path | None, private_key: Path | None) -> TlsFiles | None:
    """The HMI's TLS files, or None; both or neither must be given, and both readable."""
    from hmi.server import TlsFiles

    if certificate is None and private_key is None:
        return None
    if certificate is None or private_key is None:
        raise typer.BadParameter("--tls-cert and --tls-key go together")
    for path in (certificate, private_key):
        if not path.is_file():
            raise typer.BadParameter(f"{path} is not a readable file")
    return TlsFiles(certificate=certificate, private_key=private_key)


def _load_site_or_exit(path: Path) -> SiteConfig:
    from controlcenter.site.config import load_site
    from controlcenter.site.yamlsource import SourceFileError

    try:
        return load_site(path)
    except SourceFileError as err:
        for problem in err.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from err


# After demo, run and check, so that `--help` lists the commands in the order of a first day.
app.command()(history)
# The commissioning engineer's commands: the site's tags, live values, a write, device health,
# point discovery and bulk import.
app.command()(tags)
app.command()(value)
app.command()(write)
app.command()(devices)
app.add_typer(discover_app, name="discover")
app.command("import")(import_points)
app.command("hmi-screenshots")(hmi_screenshots)


def main() -> None:
    """Entry point of the ``controlcenter`` console script."""
    app()


if __name__ == "__main__":
    main()
