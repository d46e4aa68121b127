"""``controlcenter discover``: find the points of a new device and print a site-file fragment.

``discover opcua URL`` browses an OPC UA server's address space, ``discover bacnet`` sends a
Who-Is and reads each device's object list, ``discover modbus HOST:PORT`` probes register
ranges. Each prints ``devices:`` and ``tags:`` sections, one flow mapping per line like the
generated demo site, ready to edit and paste under a site file's header; ``controlcenter check``
accepts them as printed. What is guessed (Modbus types) carries a ``# check:`` comment.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from controlcenter.model import TagDef
    from controlcenter.site.point_import import DeviceEntry

# The fragment renderer loads the site schema, which imports every protocol library: it is
# imported by the commands that print a fragment, so that the rest of the command line starts
# without those libraries.

discover_app = typer.Typer(
    help="Find a device's points (OPC UA, BACnet, Modbus) and print a site-file fragment.",
    no_args_is_help=True,
)

_DEVICE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")

DeviceName = Annotated[
    str,
    typer.Option("--device", help="Name of the device entry (dotted, lower case)."),
]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for answers.", min=0.1, max=120)]


def _device_name(name: str) -> str:
    if not _DEVICE_NAME.match(name):
        typer.echo(f"--device {name!r}: a dotted lower-case name, e.g. lights.d5_ctrl", err=True)
        raise typer.Exit(2)
    return name


def _fail(err: Exception) -> typer.Exit:
    typer.echo(f"discovery failed: {err}", err=True)
    return typer.Exit(1)


def fragment_text(devices: list[DeviceEntry], tags: list[TagDef], notes: dict[str, str]) -> str:
    """The printed fragment of ``devices`` and their ``tags``."""
    from controlcenter.site.point_import import Fragment, render_fragment

    text, _ = render_fragment(
        Fragment(devices=devices, tags=tags, notes=notes),
        heading="Discovered points: edit names, units and ranges, then paste under a site "
        "file's header\n(site:, areas:, …) and run `controlcenter check`.",
    )
    return text


@discover_app.command("opcua")
def discover_opcua_command(
    url: Annotated[str, typer.Argument(help="opc.tcp://host:port[/path] of the server.")],
    device: DeviceName = "opcua.device",
    timeout: Timeout = 5.0,
) -> None:
    """Browse the server's address space from Objects: every variable as a tag."""
    from controlcenter.site.point_import import DeviceEntry
    from drivers.base import DriverError
    from drivers.opcua.discovery import discover_opcua

    device = _device_name(device)
    if not url.startswith("opc.tcp://"):
        typer.echo(f"{url!r}: an OPC UA URL starts with opc.tcp://", err=True)
        raise typer.Exit(2)
    try:
        tags = asyncio.run(discover_opcua(url, device, timeout_s=timeout))
    except DriverError as err:
        raise _fail(err) from err
    entry = DeviceEntry(device, "opcua", url)
    typer.echo(fragment_text([entry], tags, {}), nl=False)
    typer.echo(f"{len(tags)} variables found on {url}", err=True)


@discover_app.command("bacnet")
def discover_bacnet_command(
    address: Annotated[
        str | None,
        typer.Option(help="host:port for a directed Who-Is (default: a local broadcast)."),
    ] = None,
    local: Annotated[
        str, typer.Option(help="Local address ip/mask:port to send from.")
    ] = "0.0.0.0/0:47808",
    timeout: Timeout = 3.0,
) -> None:
    """Who-Is, then each answering device's object list, names, units and types."""
    from controlcenter.site.point_import import DeviceEntry
    from drivers.bacnet.discovery import discover_bacnet
    from drivers.base import DriverError

    if address is not None and not re.fullmatch(r"[A-Za-z0-9.\-]+:\d{1,5}", address):
        typer.echo(f"--address {address!r}: host:port", err=True)
        raise typer.Exit(2)
    if address is not None and local == "0.0.0.0/0:47808":
        local = "0.0.0.0/0:0"  # a directed Who-Is needs no broadcast port of our own
    try:
        found = asyncio.run(discover_bacnet(address, local=local, timeout_s=timeout))
    except (DriverError, OSError) as err:
        raise _fail(err) from err
    if not found:
        typer.echo(f"no device answered Who-Is within {timeout:g} s", err=True)
        raise typer.Exit(1)
    devices = [
        DeviceEntry(d.name, "bacnet", d.endpoint, device_instance=d.device_instance) for d in found
    ]
    tags = [tag for d in found for tag in d.tags]
    typer.echo(fragment_text(devices, tags, {}), nl=False)
    typer.echo(f"{len(found)} devices, {len(tags)} objects found", err=True)


@discover_app.command("modbus")
def discover_modbus_command(
    endpoint: Annotated[str, typer.Argument(help="host:port of the Modbus TCP server.")],
    unit: Annotated[int, typer.Option(help="Unit id (device id).", min=0, max=255)] = 1,
    probe: Annotated[
        str,
        typer.Option("--range", help="Address ranges to probe: table:first-last, comma-separated."),
    ] = "hr:0-99,ir:0-99,co:0-99,di:0-99",
    device: DeviceName = "modbus.device",
    timeout: Timeout = 2.0,
) -> None:
    """Probe register and bit ranges: what answers becomes a tag, types guessed and marked."""
    from controlcenter.site.config import split_endpoint
    from controlcenter.site.point_import import DeviceEntry
    from drivers.base import DriverError
    from drivers.modbus.discovery import (
        ProbeRangeError,
        guess_points,
        parse_ranges,
        probe_modbus,
    )

    device = _device_name(device)
    try:
        host, port = split_endpoint(endpoint)
        ranges = parse_ranges(probe)
    except (ValueError, ProbeRangeError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    try:
        answered = asyncio.run(probe_modbus(host, port, unit, ranges, timeout_s=timeout))
    except DriverError as err:
        raise _fail(err) from err
    guesses = guess_points(device, answered)
    entry = DeviceEntry(device, "modbus", f"{host}:{port}", unit_id=unit)
    notes = {g.tag.name: g.note for g in guesses if g.note}
    typer.echo(fragment_text([entry], [g.tag for g in guesses], notes), nl=False)
    typer.echo(f"{len(guesses)} points answered on {host}:{port} unit {unit}", err=True)
