"""``controlcenter bench city``: the whole simulated city polled by the center, every second.

The city runs as a child process (``controlcenter.runtime.city_process``:
``controlcenter sim``), as field devices run on their own CPUs; the center's drivers
(``controlcenter.runtime.app.build_driver``,
from the site file the simulator writes once every device listens) and its scan engine run in
this process. Every device is polled, none subscribed: OPC UA servers are read with batched
Read calls, BACnet devices with ReadPropertyMultiple (COV off), every scan interval is
``--scan`` (1 s), so the figures show whether every point can be answered every second. The
window of ``--duration`` seconds opens once every device has been read once (``warm_up_s``).

Figures (one JSON object): ``start_s`` (child started to every device listening and the site
file written), ``connect_s`` (every driver connected), ``scans_on_time_pct`` (due scans started
within one interval of their due time; skipped scans count as late), ``values_per_s`` (Good
values per second), ``good_pct`` (Good share of every sample published), ``latency_p95_ms``
(the worst device's 95th percentile read time), ``sim_cpu_cores_used`` and
``center_cpu_cores_used`` (CPU seconds per wall second of the simulator and of this process),
``sim_response_p95_ms``/``sim_response_max_ms`` (round trip of a request to the simulator's
control endpoint every half second: how long its event loop, shared by the physics and every
server, kept a request waiting), ``physics_interval_p95_ms``/``physics_interval_max_ms``
(wall time between the starts of two physics steps, which integrate the models and publish
every point: the age a served value can reach; the simulator's period is 100 ms) and
``physics_step_p95_ms`` (how long a step took), and the same per protocol under ``protocols``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.clock import WallClock
from controlcenter.model import Sample, ScanDiagnostics, TagDef, Value
from controlcenter.runtime.app import build_driver, scan_timeout
from controlcenter.runtime.child_process import own_cpu_seconds
from controlcenter.runtime.city_process import CityProcess, CityProcessError, CityProcessOptions
from controlcenter.runtime.runner import freeze_startup_objects
from controlcenter.site.config import (
    BacnetDeviceConfig,
    DeviceConfig,
    OpcUaDeviceConfig,
    SiteConfig,
    load_site,
)
from drivers.base import (
    Driver,
    DriverDiagnostics,
    DriverError,
    SampleCallback,
    SubscriptionUnsupportedError,
)
from drivers.modbus.connection import ModbusGateways
from plc_sim.control import send_control_request

log = logging.getLogger(__name__)

CITY_START_TIMEOUT_S = 900.0
"""How long the simulated city may take to have every device listening."""
WARM_UP_TIMEOUT_S = 120.0
"""How long every device may take to be read once before the window opens."""
PROBE_PERIOD_S = 0.5
"""How often the simulator's control endpoint is asked something, to see it answer."""


class CityBenchError(Exception):
    """The city benchmark cannot run (the simulator did not start, its site is unusable)."""


@dataclass(frozen=True, slots=True)
class CityBenchOptions:
    """What city to run and how long to poll it."""

    scale: int = 1
    duration_s: float = 10.0
    scan_interval_s: float = 1.0
    seed: int = 1


class PollOnly:
    """A driver that is polled whatever its protocol could push (the bench measures polls)."""

    def __init__(self, inner: Driver) -> None:
        self._inner = inner

    @property
    def device(self) -> str:
        """Name of the device this driver talks to."""
        return self._inner.device

    async def connect(self) -> None:
        """Open the connection."""
        await self._inner.connect()

    async def close(self) -> None:
        """Close the connection; never raises."""
        await self._inner.close()

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        """Read points, one sample each."""
        return await self._inner.read(points)

    async def subscribe(
        self, points: Sequence[TagDef], callback: SampleCallback, *, interval_s: float
    ) -> None:
        """Refuse: the scan engine then polls this device."""
        raise SubscriptionUnsupportedError(f"{self.device}: polled for the benchmark")

    async def write(self, point: TagDef, value: Value, *, priority: int | None = None) -> Value:
        """Write through the wrapped driver."""
        return await self._inner.write(point, value, priority=priority)

    def diagnostics(self) -> DriverDiagnostics:
        """The wrapped driver's health figures."""
        return self._inner.diagnostics()


@dataclass(slots=True)
class _ProtocolCount:
    samples: int = 0
    good: int = 0


@dataclass(slots=True)
class _Meter:
    """Counts what the scan engine publishes, by protocol (the bench measures acquisition)."""

    protocol_of_tag: dict[str, str]
    counts: dict[str, _ProtocolCount] = field(default_factory=dict)

    def publish(self, samples: Sequence[Sample]) -> None:
        """Count a batch (one device's scan)."""
        if not samples:
            return
        protocol = self.protocol_of_tag.get(samples[0].tag, "?")
        count = self.counts.setdefault(protocol, _ProtocolCount())
        count.samples += len(samples)
        count.good += sum(1 for sample in samples if sample.quality.is_good)


def polled_device(device: DeviceConfig, interval_s: float) -> DeviceConfig:
    """The device as the bench polls it: at ``interval_s``, without subscriptions or COV."""
    update: dict[str, Any] = {"scan_interval": interval_s}
    if isinstance(device, OpcUaDeviceConfig):
        update["subscribe"] = False
    if isinstance(device, BacnetDeviceConfig):
        update["cov"] = False
    return device.model_copy(update=update)


def _scans(site: SiteConfig, clock: WallClock, interval_s: float) -> list[DeviceScan]:
    gateways = ModbusGateways()
    tags_by_device: dict[str, list[TagDef]] = {}
    for tag in site.tag_defs():
        tags_by_device.setdefault(tag.device, []).append(tag)
    scans = []
    for configured in site.devices:
        device = polled_device(configured, interval_s)
        driver = PollOnly(build_driver(device, clock, gateways))
        points = tuple(tags_by_device.get(device.name, ()))
        if points:
            scans.append(DeviceScan(driver, points, interval_s, scan_timeout(device)))
    return scans


async def _probe(control: tuple[str, int], round_trips: list[float]) -> None:
    """Ask the simulator something every ``PROBE_PERIOD_S``; note how long each answer took."""
    host, port = control
    while True:
        started = time.monotonic()
        with contextlib.suppress(OSError, ValueError):
            await send_control_request(host, port, {"action": "list"})
            round_trips.append(time.monotonic() - started)
        await asyncio.sleep(max(0.0, started + PROBE_PERIOD_S - time.monotonic()))


async def run_city_bench(options: CityBenchOptions) -> dict[str, Any]:
    """Start the city, poll every point every interval for the duration; return the figures."""
    if options.scale < 1 or options.duration_s <= 0 or options.scan_interval_s <= 0:
        raise CityBenchError("scale, duration and scan interval must be positive")
    with tempfile.TemporaryDirectory(prefix="bench-city-") as directory:
        site_file = Path(directory) / "city-site.yaml"
        started = time.monotonic()
        simulator = await CityProcess.start(
            CityProcessOptions(
                ready_file=site_file,
                scale=options.scale,
                seed=options.seed,
                # A safety net: the city ends by itself should this process not stop it.
                duration_s=CITY_START_TIMEOUT_S + options.duration_s + 300,
            )
        )
        try:
            try:
                await simulator.listening(CITY_START_TIMEOUT_S)
            except CityProcessError as err:
                raise CityBenchError(str(err)) from err
            start_s = time.monotonic() - started
            site = await asyncio.to_thread(load_site, site_file)
            return await _poll_city(options, simulator, site, start_s)
        finally:
            await simulator.stop(grace_s=60.0)


async def _poll_city(
    options: CityBenchOptions, simulator: CityProcess, site: SiteConfig, start_s: float
) -> dict[str, Any]:
    clock = WallClock()
    scans = _scans(site, clock, options.scan_interval_s)
    protocol_of_device = {device.name: device.protocol for device in site.devices}
    meter = _Meter(
        {point.name: protocol_of_device[scan.device] for scan in scans for point in scan.points}
    )
    connecting = time.monotonic()
    try:
        await asyncio.gather(*(scan.driver.connect() for scan in scans))
    except DriverError as err:
        for scan in scans:
            await scan.driver.close()
        raise CityBenchError(f"the simulated city's devices could not be reached: {err}") from err
    connect_s = time.monotonic() - connecting
    engine = ScanEngine(scans, meter, clock)
    freeze_startup_objects()  # as the center does once started
    round_trips: list[float] = []
    tasks = [asyncio.create_task(engine.run(), name="bench city scan engine")]
    try:
        warm_up_s = await _warm_up(engine, options.scan_interval_s)
        before = {d.device: d for d in engine.diagnostics()}
        meter.counts.clear()
        await _physics_timing(simulator, reset=True)
        cpu_before, sim_before = own_cpu_seconds(), simulator.cpu_seconds()
        window_start = time.monotonic()
        if simulator.control is not None:
            tasks.append(asyncio.create_task(_probe(simulator.control, round_trips)))
        await asyncio.sleep(options.duration_s)  # the measurement window itself
        elapsed = time.monotonic() - window_start
        cpu, sim_cpu = own_cpu_seconds() - cpu_before, simulator.cpu_seconds() - sim_before
        diagnostics = {d.device: _since(d, before[d.device]) for d in engine.diagnostics()}
        physics = await _physics_timing(simulator, reset=False)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for scan in scans:
            await scan.driver.close()
    by_protocol: dict[str, dict[str, Any]] = {}
    for protocol in sorted(set(protocol_of_device.values())):
        devices = [scan for scan in scans if protocol_of_device[scan.device] == protocol]
        by_protocol[protocol] = _figures(
            [diagnostics[scan.device] for scan in devices],
            sum(len(scan.points) for scan in devices),
            meter.counts.get(protocol, _ProtocolCount()),
            elapsed,
        )
    total = _ProtocolCount(
        sum(count.samples for count in meter.counts.values()),
        sum(count.good for count in meter.counts.values()),
    )
    overall = _figures(
        list(diagnostics.values()), sum(len(scan.points) for scan in scans), total, elapsed
    )
    ordered = sorted(round_trips)
    return {
        "scale": options.scale,
        "scan_interval_s": options.scan_interval_s,
        "duration_s": options.duration_s,
        "start_s": _round(start_s),
        "connect_s": _round(connect_s),
        "warm_up_s": _round(warm_up_s),
        **overall,
        "sim_cpu_cores_used": _cores(sim_cpu / elapsed),
        "center_cpu_cores_used": _cores(cpu / elapsed),
        "sim_response_p95_ms": _round(1000 * ordered[int(0.95 * (len(ordered) - 1))])
        if ordered
        else None,
        "sim_response_max_ms": _round(1000 * ordered[-1]) if ordered else None,
        "physics_interval_p95_ms": _ms(physics.get("interval_p95_s")),
        "physics_interval_max_ms": _ms(physics.get("interval_max_s")),
        "physics_step_p95_ms": _ms(physics.get("step_p95_s")),
        "protocols": by_protocol,
    }


async def _physics_timing(simulator: CityProcess, *, reset: bool) -> dict[str, Any]:
    """The simulator's physics timing (``plc_sim.city.PhysicsTiming``); ``reset`` starts anew."""
    if simulator.control is None:
        raise CityBenchError("the simulated city has no control endpoint to report its timing")
    host, port = simulator.control
    try:
        answer = await send_control_request(host, port, {"action": "timing", "reset": reset})
    except (OSError, ValueError) as err:
        raise CityBenchError(f"the simulated city did not report its timing: {err}") from err
    physics = answer.get("physics")
    if not answer.get("ok") or not isinstance(physics, dict):
        raise CityBenchError(f"the simulated city did not report its timing: {answer}")
    return physics


def _ms(seconds: object) -> float | None:
    """Seconds as rounded milliseconds; None stays None (no step in the window)."""
    return _round(1000 * seconds) if isinstance(seconds, int | float) else None


async def _warm_up(engine: ScanEngine, interval_s: float) -> float:
    """Wait until every device has been read once (or ``WARM_UP_TIMEOUT_S``); return how long.

    The window then measures steady polling, not the staggered first scans."""
    started = time.monotonic()
    deadline = started + WARM_UP_TIMEOUT_S
    while time.monotonic() < deadline:
        waiting = [d.device for d in engine.diagnostics() if d.last_good_scan is None]
        if not waiting:
            return time.monotonic() - started
        await asyncio.sleep(interval_s / 4)  # polling the engine's figures, with a deadline
    log.warning(
        "%d device(s) not read within %g s; measuring anyway", len(waiting), WARM_UP_TIMEOUT_S
    )
    return time.monotonic() - started


def _since(now: ScanDiagnostics, before: ScanDiagnostics) -> ScanDiagnostics:
    """A device's scan counts during the window (latency: its recent reads)."""
    return replace(
        now,
        scans=now.scans - before.scans,
        scans_on_time=now.scans_on_time - before.scans_on_time,
        missed_scans=now.missed_scans - before.missed_scans,
        failed_scans=now.failed_scans - before.failed_scans,
    )


def _figures(
    diagnostics: list[ScanDiagnostics], points: int, count: _ProtocolCount, elapsed: float
) -> dict[str, Any]:
    scans = sum(d.scans for d in diagnostics)
    due = scans + sum(d.missed_scans for d in diagnostics)
    on_time = sum(d.scans_on_time for d in diagnostics)
    return {
        "devices": len(diagnostics),
        "points": points,
        "scans": scans,
        "missed_scans": due - scans,
        "scans_on_time_pct": _round(100.0 * on_time / due if due else 0.0),
        "values_per_s": _round(count.good / elapsed),
        "good_pct": _round(100.0 * count.good / count.samples if count.samples else 0.0),
        "latency_p95_ms": _round(max((d.latency_p95_ms for d in diagnostics), default=0.0)),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _cores(value: float) -> float:
    # Three decimals: a quiet center polling a small city uses a few hundredths of a core, which
    # one decimal would print as 0.0.
    return round(value, 3)
