"""``controlcenter bench commands``: command to confirmed read-back, per protocol.

The simulated city (``plc_sim.city.SimulatedCity``, every device on a free port) runs in this
process beside the center's real drivers (``controlcenter.runtime.app.build_driver``, from a
site file rendered from the city's point list, as the demo's is) and the real command pipeline
journaling into a SQLite historian. For each protocol the bench sends ``commands`` commands one
after another, round robin over a few setpoints of that protocol, each to a value different
from the previous one, so every command is a real change the device must take and read back:

- Modbus TCP: pump speeds and tank inlet valves (float32 holding registers);
- OPC UA: streetlight circuits' dim setpoints (Write then Read of the node's value);
- BACnet/IP: building zone setpoints (WriteProperty at the command's priority, ASHRAE 135
  19.2, then ReadProperty of the present value).

The latency is the wall time of ``CommandPipeline.submit`` (checks, write, read-back and
journal): what an operator waits for between pressing a button and seeing it confirmed.

Figures (one JSON object): per protocol ``sent``, ``confirmed``, ``p50_ms``, ``p95_ms``,
``max_ms``, plus ``confirmed`` and ``sent`` over all, ``target_p95_ms`` (1,000) and ``pass``
(every command confirmed and every protocol's p95 within the target).
"""

from __future__ import annotations

import asyncio
import logging
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from controlcenter.clock import WallClock
from controlcenter.commands.pipeline import CommandPipeline
from controlcenter.model import (
    Command,
    CommandOrigin,
    CommandPriority,
    CommandStatus,
    Role,
    TagDef,
    User,
)
from controlcenter.runtime.app import build_driver
from controlcenter.runtime.demo_site import city_devices, render_site
from controlcenter.site.config import SiteConfig, load_site
from drivers.base import Driver, DriverError
from drivers.modbus.connection import ModbusGateways
from historian.store import SqlHistorian
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock

log = logging.getLogger(__name__)

TARGET_P95_MS = 1000.0
"""An operator sees a command confirmed within a second (95th percentile, per protocol)."""
BENCH_IDENTITY = "bench"
"""Who the bench's commands are requested by."""


class CommandsBenchError(RuntimeError):
    """The commands bench could not run (the city did not start, a device was unreachable)."""


@dataclass(frozen=True, slots=True)
class CommandTarget:
    """A setpoint the bench commands, and the values it alternates between."""

    tag: str
    values: tuple[float, ...]


# Setpoints of the demo city (seed-independent names), by protocol; each value list steps
# through the engineering range so consecutive commands to one tag always differ.
TARGETS: Mapping[str, tuple[CommandTarget, ...]] = {
    "modbus": (
        CommandTarget("water.ps1.pump1.speed", (55.0, 60.0, 65.0, 70.0)),
        CommandTarget("water.ps1.pump2.speed", (50.0, 58.0, 66.0, 74.0)),
        CommandTarget("water.tank2.inlet_valve", (40.0, 45.0, 50.0, 55.0)),
    ),
    "opcua": (
        CommandTarget("lights.d1.c1.dim_setpoint", (60.0, 70.0, 80.0, 90.0)),
        CommandTarget("lights.d1.c2.dim_setpoint", (65.0, 75.0, 85.0, 95.0)),
    ),
    "bacnet": (
        CommandTarget("bldg.school.z1.setpoint", (20.0, 20.5, 21.0, 21.5)),
        CommandTarget("bldg.school.z2.setpoint", (19.5, 20.0, 20.5, 21.0)),
    ),
}
_DOMAINS = frozenset({"water", "lights", "bldg"})


@dataclass(frozen=True, slots=True)
class CommandsBenchOptions:
    """How many commands to send per protocol."""

    commands_per_protocol: int = 50
    seed: int = 1


@dataclass(frozen=True, slots=True)
class ProtocolFigures:
    """Latencies of one protocol's commands, in milliseconds."""

    sent: int
    confirmed: int
    p50_ms: float
    p95_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, object]:
        """The figures as a JSON-ready mapping."""
        return {
            "sent": self.sent,
            "confirmed": self.confirmed,
            "p50_ms": round(self.p50_ms, 1),
            "p95_ms": round(self.p95_ms, 1),
            "max_ms": round(self.max_ms, 1),
        }


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile of ``values`` (nearest rank, ``values`` non-empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


async def run_commands_bench(options: CommandsBenchOptions) -> dict[str, object]:
    """Start the simulated city, command its setpoints through the pipeline; return figures."""
    if options.commands_per_protocol < 1:
        raise CommandsBenchError("send at least one command per protocol")
    city_options = CityOptions(seed=options.seed, base_port=0, domains=_DOMAINS)
    city = SimulatedCity(SimClock(), city_options)
    try:
        await city.start()
    except OSError as err:
        raise CommandsBenchError(f"the simulated city did not start: {err}") from err
    try:
        with tempfile.TemporaryDirectory(prefix="cc-bench-commands-") as directory:
            site = _site_of(city, Path(directory))
            store = await asyncio.to_thread(
                SqlHistorian, f"sqlite:///{Path(directory) / 'journal.db'}"
            )
            try:
                figures = await _command_every_protocol(site, store, options)
            finally:
                await asyncio.to_thread(store.close)
    finally:
        await city.stop()
    sent = sum(figure.sent for figure in figures.values())
    confirmed = sum(figure.confirmed for figure in figures.values())
    passed = confirmed == sent and all(f.p95_ms <= TARGET_P95_MS for f in figures.values())
    return {
        "commands_per_protocol": options.commands_per_protocol,
        "sent": sent,
        "confirmed": confirmed,
        "target_p95_ms": TARGET_P95_MS,
        "pass": passed,
        "protocols": {name: figure.as_dict() for name, figure in figures.items()},
    }


def _site_of(city: SimulatedCity, directory: Path) -> SiteConfig:
    """The site of the devices holding the bench's targets, where the city listens."""
    wanted = {target.tag for targets in TARGETS.values() for target in targets}
    points = [point for point in city.points() if point.tag in wanted]
    missing = wanted - {point.tag for point in points}
    if missing:
        raise CommandsBenchError(f"the simulated city has no points {sorted(missing)}")
    holding = {point.device for point in points}
    devices = [device for device in city_devices(city) if device.name in holding]
    overlay = (
        "site: {name: Commands bench, latitude: 52.37, longitude: 4.90, "
        "timezone: Europe/Amsterdam}\n"
    )
    site_file = directory / "bench-site.yaml"
    site_file.write_text(render_site(overlay, devices, points), encoding="utf-8")
    return load_site(site_file, directory / "var")


async def _command_every_protocol(
    site: SiteConfig, store: SqlHistorian, options: CommandsBenchOptions
) -> dict[str, ProtocolFigures]:
    clock = WallClock()
    gateways = ModbusGateways()
    drivers: dict[str, Driver] = {
        device.name: build_driver(device, clock, gateways) for device in site.devices
    }
    try:
        try:
            await asyncio.gather(*(driver.connect() for driver in drivers.values()))
        except DriverError as err:
            raise CommandsBenchError(f"a simulated device could not be reached: {err}") from err
        tags = site.tag_defs()
        pipeline = build_pipeline(tags, drivers, store, clock)
        return {
            protocol: await _command_protocol(pipeline, targets, options.commands_per_protocol)
            for protocol, targets in TARGETS.items()
        }
    finally:
        for driver in drivers.values():
            await driver.close()


def build_pipeline(
    tags: Sequence[TagDef], drivers: Mapping[str, Driver], store: SqlHistorian, clock: WallClock
) -> CommandPipeline:
    """The center's command pipeline over the bench's drivers, journaling into ``store``; the
    bench's own identity is its one user (an operator of every area)."""

    def users(name: str) -> User:
        if name != BENCH_IDENTITY:
            raise KeyError(name)
        return User(BENCH_IDENTITY, Role.OPERATOR)

    return CommandPipeline(tags, drivers, store, clock, users=users)


async def _command_protocol(
    pipeline: CommandPipeline, targets: Sequence[CommandTarget], count: int
) -> ProtocolFigures:
    latencies: list[float] = []
    confirmed = 0
    for index in range(count):
        target = targets[index % len(targets)]
        value = target.values[(index // len(targets)) % len(target.values)]
        command = Command(
            tag=target.tag,
            value=value,
            origin=CommandOrigin.OPERATOR,
            requested_by=BENCH_IDENTITY,
            reason=f"commands bench {index + 1} of {count}",
            issued_at=datetime.now(UTC),
            priority=CommandPriority.AUTOMATION,
        )
        started = time.perf_counter()
        result = await pipeline.submit(command)
        latencies.append(time.perf_counter() - started)
        if result.status is CommandStatus.CONFIRMED:
            confirmed += 1
        else:
            log.warning("%s := %s %s: %s", target.tag, value, result.status, result.reason)
    return ProtocolFigures(
        sent=count,
        confirmed=confirmed,
        p50_ms=1000 * percentile(latencies, 0.50),
        p95_ms=1000 * percentile(latencies, 0.95),
        max_ms=1000 * max(latencies),
    )
