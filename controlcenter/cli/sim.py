"""``controlcenter sim``: run the simulated city, print its point list, inject faults."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import sys
from dataclasses import replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from controlcenter.runtime.defaults import DEFAULT_BASE_PORT, DEFAULT_CONTROL
from controlcenter.runtime.runner import (
    configure_logging,
    freeze_startup_objects,
    run_until_stopped,
)
from plc_sim.device import FaultKind
from plc_sim.domain import ALL_DOMAINS, DOMAINS

if TYPE_CHECKING:
    from plc_sim.city import SimulatedCity
    from plc_sim.servers.opcua.security import OpcUaServerSecurity

# The city, its servers and the site model are imported where they are used: `sim fault` and
# `--help` then start in a fraction of the time the protocol libraries take to import.

sim_app = typer.Typer(
    help="The simulated city: every device on its own port, with fault injection.",
    no_args_is_help=False,
    invoke_without_command=True,
)
fault_app = typer.Typer(
    help="Inject or clear faults in a running simulator (its control endpoint).",
    no_args_is_help=True,
)
sim_app.add_typer(fault_app, name="fault")

PARENT_CHECK_S = 1.0
"""How often a city started with ``--exit-with-parent`` looks whether its parent still runs."""


class PointFormat(StrEnum):
    """Formats of the point list."""

    CSV = "csv"
    JSON = "json"


@sim_app.callback()
def sim(
    ctx: typer.Context,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds of wall time.", min=0)
    ] = None,
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per wall-clock second.", min=0.1, max=3600)
    ] = 1.0,
    scale: Annotated[
        int, typer.Option(help="Multiply each domain's assets (tens of thousands of points).")
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the simulation's randomness.")] = 1,
    host: Annotated[str, typer.Option(help="Address the devices listen on.")] = "127.0.0.1",
    base_port: Annotated[
        int, typer.Option(help="Port of the first device; device i gets base + i (0: any free).")
    ] = DEFAULT_BASE_PORT,
    control: Annotated[
        str, typer.Option(help="host:port of the fault-injection endpoint (port 0: any free).")
    ] = DEFAULT_CONTROL,
    points: Annotated[bool, typer.Option("--points", help="Print the point list and exit.")] = (
        False
    ),
    output_format: Annotated[
        PointFormat, typer.Option("--format", help="Point list format.")
    ] = PointFormat.CSV,
    site_file: Annotated[
        Path | None,
        typer.Option(help="Write the matching site file for the center here and exit."),
    ] = None,
    ready_file: Annotated[
        Path | None,
        typer.Option(
            help="Once every device listens, write the matching site file here (any ports)."
        ),
    ] = None,
    domain: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Simulate this domain (repeatable): {', '.join(ALL_DOMAINS)}, or 'all'. "
            f"Default: {', '.join(DOMAINS)} (--points without it lists every domain)."
        ),
    ] = None,
    mqtt_broker: Annotated[
        str, typer.Option(help="host:port of the MQTT broker the sensor networks publish to.")
    ] = "127.0.0.1:1883",
    mqtt_prefix: Annotated[str, typer.Option(help="Topic prefix of every sensor uplink.")] = "city",
    scan_interval: Annotated[
        float | None,
        typer.Option(help="Scan interval of every device in the written site file.", min=0.001),
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option(help="Simulated time at --clock-origin (ISO 8601 with offset).", hidden=True),
    ] = None,
    clock_origin: Annotated[
        float | None,
        typer.Option(help="time.monotonic() reading at which the clock read --start.", hidden=True),
    ] = None,
    exit_with_parent: Annotated[
        bool, typer.Option(help="Stop when the process that started this one ends.", hidden=True)
    ] = False,
    opcua_security: Annotated[
        list[str] | None,
        typer.Option(
            help="Secure every OPC UA device with this policy (repeatable), e.g. "
            "Basic256Sha256_SignAndEncrypt; no None endpoint is offered then."
        ),
    ] = None,
    opcua_pki: Annotated[
        Path,
        typer.Option(help="Where the OPC UA devices' certificate is kept (made if missing)."),
    ] = Path("var/sim-opcua-pki"),
    opcua_trust_dir: Annotated[
        Path | None,
        typer.Option(help="Directory of the client certificates the OPC UA devices trust."),
    ] = None,
    opcua_user: Annotated[
        str | None,
        typer.Option(help="User name the OPC UA devices accept (anonymous if none is given)."),
    ] = None,
    opcua_password_file: Annotated[
        Path | None,
        typer.Option(help="File whose first line is --opcua-user's password."),
    ] = None,
) -> None:
    """Run the simulated city (or print its point list, or write its site file)."""
    if ctx.invoked_subcommand is not None:
        return
    from controlcenter.runtime.demo_site import (
        demo_city_options,
        render_demo_site,
        write_demo_site,
    )
    from plc_sim.city import SimulatedCity
    from plc_sim.clock import SimClock
    from plc_sim.control import ControlEndpoint

    configure_logging(verbose=False)
    named = set(domain or ())
    if "all" in named:
        named = (named - {"all"}) | set(ALL_DOMAINS)
    unknown = sorted(named - set(ALL_DOMAINS))
    if unknown:
        raise typer.BadParameter(f"unknown domain(s) {unknown}: the city has {list(ALL_DOMAINS)}")
    if start is not None and start.utcoffset() is None:
        raise typer.BadParameter("--start needs a UTC offset, e.g. 2026-11-21T05:00:00+01:00")
    # The point list is the simulator's catalogue: every domain unless some are named.
    default = ALL_DOMAINS if points else DOMAINS
    domains = frozenset(named) if named else frozenset(default)
    broker_host, broker_port = _split(mqtt_broker)
    options = replace(
        demo_city_options(scale, seed, host, base_port, domains),
        mqtt_host=broker_host,
        mqtt_port=broker_port,
        mqtt_prefix=mqtt_prefix,
    )
    if opcua_security:
        options = replace(
            options,
            opcua_security=_opcua_security(
                opcua_security, opcua_pki, opcua_trust_dir, opcua_user, opcua_password_file, host
            ),
        )
    city = SimulatedCity(SimClock(speed, start, clock_origin), options)
    if points:
        print_points(city, output_format)
        return
    if site_file is not None:
        if base_port == 0:
            raise typer.BadParameter("a site file needs fixed ports: give --base-port")
        write_demo_site(site_file, render_demo_site(city, scan_interval))
        typer.echo(f"site file written: {site_file} ({len(city.points())} tags)")
        return
    control_host, control_port = _split(control)

    async def body(stop: asyncio.Event) -> None:
        await city.start()
        # Every address space is built: keep it out of full garbage collections.
        freeze_startup_objects()
        endpoint = ControlEndpoint(city, host=control_host, port=control_port)
        try:
            await endpoint.start()
            if ready_file is not None:
                # Written whole, then renamed, after its rule files: a watcher never reads
                # half a site file, nor one whose rule files are missing.
                write_demo_site(ready_file, render_demo_site(city, scan_interval))
            for name, (device_host, device_port) in city.endpoints().items():
                protocol = city.device(name).protocol
                typer.echo(f"{name:<24} {protocol:<6} {device_host}:{device_port}")
            typer.echo(f"fault control: {control_host}:{endpoint.port} (controlcenter sim fault)")
            typer.echo(f"{len(city.points())} points on {len(city.devices())} devices")
            if exit_with_parent:
                await _until_parent_exits(stop, os.getppid())
            else:
                await stop.wait()
        finally:
            await endpoint.stop()
            await city.stop()

    raise typer.Exit(run_until_stopped(body, duration))


def _opcua_security(
    policies: list[str],
    pki_dir: Path,
    trust_dir: Path | None,
    user: str | None,
    password_file: Path | None,
    host: str,
) -> OpcUaServerSecurity:
    """The OPC UA devices' security from the command line; BadParameter for what is missing."""
    from plc_sim.servers.opcua.security import city_server_security

    if trust_dir is None:
        raise typer.BadParameter("--opcua-security needs --opcua-trust-dir (trusted clients)")
    users: dict[str, str] = {}
    if user is not None:
        if password_file is None:
            raise typer.BadParameter("--opcua-user needs --opcua-password-file")
        try:
            password = password_file.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, UnicodeError, IndexError) as err:
            raise typer.BadParameter(f"cannot read a password from {password_file}") from err
        users[user] = password
    try:
        return city_server_security(
            pki_dir, policies=tuple(policies), trust_dir=trust_dir, users=users, host=host
        )
    except (OSError, ValueError) as err:
        raise typer.BadParameter(f"OPC UA security: {err}") from err


async def _until_parent_exits(stop: asyncio.Event, parent: int) -> None:
    """Wait for ``stop``, or for the parent process to end (the process is then re-parented)."""
    while os.getppid() == parent:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=PARENT_CHECK_S)
            return


def print_points(city: SimulatedCity, output_format: PointFormat) -> None:
    """Print every point: device, protocol, endpoint, address, tag, unit, writable, range.

    An MQTT point's endpoint is its broker; a charge point's is the central system the
    simulated charge points connect to (the center listens there)."""
    endpoints = city.endpoints()
    central = city.ocpp_url or ""
    rows: list[dict[str, Any]] = [
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
    rows += [
        {
            "device": point.device,
            "protocol": "ocpp",
            "endpoint": central,
            "address": point.address,
            "tag": point.tag,
            "data_type": point.data_type,
            "unit": point.unit,
            "writable": point.writable,
            "low": "" if point.low is None else point.low,
            "high": "" if point.high is None else point.high,
        }
        for point in city.charging_points()
    ]
    if output_format is PointFormat.JSON:
        typer.echo(json.dumps(rows, indent=2))
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


ControlOption = Annotated[str, typer.Option(help="host:port of the simulator's control endpoint.")]


@fault_app.command("set")
def fault_set(
    device: Annotated[str, typer.Argument(help="Device name, e.g. water.ps1_rtu.")],
    kind: Annotated[FaultKind, typer.Argument(help="The fault.")],
    delay: Annotated[float | None, typer.Option(help="Seconds, for 'slow'.", min=0)] = None,
    error_code: Annotated[
        int | None, typer.Option(help="Protocol error to answer with, for 'error'.")
    ] = None,
    noise: Annotated[float | None, typer.Option(help="Noise, fraction of span.", min=0)] = None,
    control: ControlOption = DEFAULT_CONTROL,
) -> None:
    """Give a device a fault."""
    request: dict[str, Any] = {"action": "set", "device": device, "fault": kind.value}
    for key, value in (("delay_s", delay), ("error_code", error_code), ("noise", noise)):
        if value is not None:
            request[key] = value
    _send(control, request)


@fault_app.command("clear")
def fault_clear(
    device: Annotated[str, typer.Argument(help="Device name.")],
    kind: Annotated[FaultKind | None, typer.Argument(help="The fault (default: all).")] = None,
    control: ControlOption = DEFAULT_CONTROL,
) -> None:
    """Clear one fault of a device, or all of them."""
    request: dict[str, Any] = {"action": "clear", "device": device}
    if kind is not None:
        request["fault"] = kind.value
    _send(control, request)


@fault_app.command("restart")
def fault_restart(
    device: Annotated[str, typer.Argument(help="Device name.")],
    control: ControlOption = DEFAULT_CONTROL,
) -> None:
    """Restart a device, as a PLC reboot: clients lose their sessions."""
    _send(control, {"action": "restart", "device": device})


@fault_app.command("leak")
def fault_leak(
    area: Annotated[int, typer.Argument(help="District metering area number (1, 2...).")],
    flow: Annotated[float, typer.Argument(help="Leak flow in m3/h (0 repairs it).", min=0)],
    control: ControlOption = DEFAULT_CONTROL,
) -> None:
    """Open (or repair) a leak in a district metering area of the water network."""
    _send(control, {"action": "leak", "area": area, "flow_m3h": flow})


@fault_app.command("list")
def fault_list(control: ControlOption = DEFAULT_CONTROL) -> None:
    """List the devices and their active faults."""
    answer = _send(control, {"action": "list"}, quiet=True)
    for device, faults in sorted(answer.get("devices", {}).items()):
        typer.echo(f"{device:<24} {', '.join(faults) or '-'}")


def _send(control: str, request: dict[str, Any], *, quiet: bool = False) -> dict[str, Any]:
    from plc_sim.control import send_control_request

    host, port = _split(control)
    try:
        answer = asyncio.run(send_control_request(host, port, request))
    except OSError as err:
        typer.echo(f"error: no simulator control endpoint at {control}: {err}", err=True)
        raise typer.Exit(1) from err
    if not answer.get("ok"):
        typer.echo(f"error: {answer.get('error', 'refused')}", err=True)
        raise typer.Exit(1)
    if not quiet:
        typer.echo("ok")
    return answer


def _split(endpoint: str) -> tuple[str, int]:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise typer.BadParameter(f"'{endpoint}' is not host:port")
    return host, int(port)


if __name__ == "__main__":
    # ``python -m controlcenter.cli.sim``: the city alone, without the rest of the command line.
    sim_app(prog_name="controlcenter sim")
