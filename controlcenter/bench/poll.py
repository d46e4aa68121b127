"""``controlcenter bench poll``: acquisition measured end to end against simulated devices.

The simulated devices run in a child process (``python -m plc_sim.bench_devices``), as field
devices run on their own CPUs; the center's real drivers and scan engine run in this process.
Every value changes once a second. Phases, each on the same devices and points:

1. **scan**: the scan engine acquires every point at ``--scan`` for ``--duration`` seconds.

   Polled protocols (Modbus; BACnet with COV off, ReadPropertyMultiple): ``scans_on_time_pct``
   (due scans started within one interval of their due time; a scan skipped because the
   previous one overran counts as late: ``missed_scans``), ``scanned_values_per_s`` (Good
   values published per second: at ``--scan 1`` about ``tags`` per second),
   ``latency_p95_ms`` (the worst device's 95th percentile read time) and ``requests_per_s``.

   Subscribed protocols (OPC UA monitored items, sharded over subscriptions by the driver): the
   window starts once every point has delivered its first value. ``latency_p95_ms`` is the
   95th percentile of a notification's age on arrival in the center (its source timestamp,
   stamped by the server with the wall clock as it writes the changed value, to the moment the
   scan engine hands it on); ``scanned_values_per_s`` the Good notifications per second; every
   interval each point is checked, and ``scans_on_time_pct`` is the share of those checks that
   found the point's latest notification at most two intervals old (due every interval, one
   interval of grace, as for a polled scan); ``missed_scans`` the checks that did not.

   Both: ``cpu_cores_used`` (this process's CPU seconds per wall second) and
   ``sim_cpu_cores_used`` (the simulator's).
2. **capacity**: the same planned reads back to back, every device at once, for ``--capacity``
   seconds: for polled protocols ``values_per_s`` is what the driver can deliver on this
   machine, the figure to compare with other systems (for OPC UA ``values_per_s`` is the
   notifications per second and the read capacity is ``read_values_per_s``);
   ``capacity_requests_per_s`` the requests it took.
3. Protocol extras. Modbus, **naive**: one plain pymodbus client reading one tag per request,
   sequentially, as a first script would (``drivers.modbus.naive_poller``):
   ``naive_values_per_s`` and ``speedup`` = ``values_per_s`` / ``naive_values_per_s``.
   OPC UA, **restore**: one server is restarted (a PLC reboot) while subscribed; ``restore_s``
   is the time from the restart order until every point of that server has delivered a Good
   notification again. BACnet, **COV**: new drivers subscribe change-of-value notifications of
   a sample of analog points; ``cov_latency_p95_ms`` is the 95th percentile of the time from
   the value's change in the simulator (its tick, reported by the child on its standard
   output) to the notification's arrival in the center.

Protocols plug in through ``POLL_BENCHES``: a driver factory, whether the scan engine
subscribes, and an optional extra phase.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.clock import WallClock
from controlcenter.model import DataType, Sample, TagDef, utc_now
from controlcenter.ports import Clock
from controlcenter.runtime.child_process import ChildProcess, own_cpu_seconds
from controlcenter.runtime.runner import freeze_startup_objects
from drivers.bacnet.config import BacnetDeviceConfig
from drivers.bacnet.driver import BacnetDriver
from drivers.base import Driver, DriverError
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.naive_poller import naive_poll
from drivers.opcua.config import OpcUaDeviceConfig
from drivers.opcua.driver import OpcUaDriver
from plc_sim.bench_devices import WAVE_PERIOD_S, wave_second

log = logging.getLogger(__name__)

SIMULATOR_MODULE = "plc_sim.bench_devices"
"""Run as ``python -m <module> --protocol P --tags N [--per-device M]``; prints its devices."""

_KIND_TYPES = {"float": DataType.FLOAT, "bool": DataType.BOOL, "int": DataType.INT}
_SIMULATOR_START_TIMEOUT_S = 600.0
"""Building thousands of OPC UA nodes takes minutes on a loaded machine."""
_FIRST_VALUES_TIMEOUT_S = 300.0
"""How long subscriptions may take to deliver every point's first value."""
_RESTORE_TIMEOUT_S = 120.0
_FRESH_INTERVALS = 2.0
"""A subscribed point is on time while its latest notification is at most this many
intervals old: due every interval, with one interval of grace."""
_COV_POINTS_PER_DEVICE = 20
OPCUA_MIN_PUBLISHING_INTERVAL_S = 0.1
_COV_WINDOW_S = 3.0
"""At least this long, so that a few ticks of the simulator are seen."""


class BenchError(Exception):
    """The benchmark cannot run as asked (unknown protocol, simulator failed to start)."""


@dataclass(frozen=True, slots=True)
class BenchDevice:
    """One simulated device as its simulator describes it."""

    name: str
    host: str
    port: int
    unit_id: int
    points: tuple[TagDef, ...]
    device_instance: int | None = None


@dataclass(frozen=True, slots=True)
class PollBenchOptions:
    """What to measure; ``points_per_device`` None takes the protocol's realistic default."""

    protocol: str
    tags: int
    scan_interval_s: float = 1.0
    duration_s: float = 10.0
    points_per_device: int | None = None
    capacity_s: float = 3.0


@dataclass(frozen=True, slots=True)
class ProtocolBench:
    """How to bench one protocol: its driver, whether it is subscribed, its extra phase."""

    build_driver: Callable[[BenchDevice, Clock, float], Driver]
    """Makes a device's driver for a scan interval (seconds)."""
    subscribed: bool = False
    """Whether the scan engine subscribes (the driver can push) rather than polls."""
    extra_phase: Callable[[_BenchRun], Awaitable[dict[str, Any]]] | None = None
    """Runs after the capacity phase with the drivers connected; returns extra figures."""
    extra_keys: tuple[str, ...] = ()
    """The keys ``extra_phase`` adds (null when it cannot measure them)."""


class _ChildSimulator(ChildProcess):
    """The simulator process: started, described, measured, commanded and stopped."""

    def __init__(self, process: asyncio.subprocess.Process, devices: list[BenchDevice]) -> None:
        self.devices = devices
        self.tick_seconds: list[int] = []
        self.tick_times: list[float] = []
        """Wall-clock time (s since the epoch) at which each tick's values changed."""
        self._restarted: dict[str, asyncio.Event] = {}
        super().__init__(process, "bench simulator", self._on_line)

    @classmethod
    async def start(cls, protocol: str, tags: int, per_device: int | None) -> _ChildSimulator:
        command = [sys.executable, "-m", SIMULATOR_MODULE, "--protocol", protocol]
        command += ["--tags", str(tags)]
        if per_device is not None:
            command += ["--per-device", str(per_device)]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), _SIMULATOR_START_TIMEOUT_S)
            description = json.loads(line) if line else None
        except (TimeoutError, ValueError) as err:
            process.kill()
            await process.wait()
            raise BenchError(f"simulator {SIMULATOR_MODULE} did not describe its devices") from err
        if description is None:
            stderr = await process.stderr.read() if process.stderr else b""
            await process.wait()
            raise BenchError(
                f"simulator {SIMULATOR_MODULE} exited: {stderr.decode(errors='replace')}"
            )
        return cls(process, [_device(entry) for entry in description["devices"]])

    def _on_line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if "tick" in message:
            self.tick_seconds.append(int(message["tick"]))
            self.tick_times.append(float(message["changed_at"]))
        elif "restarted" in message:
            self._restarted.setdefault(str(message["restarted"]), asyncio.Event()).set()

    async def restart(self, device: str) -> None:
        """Have the child restart one device's server; return once it serves again."""
        stdin = self.process.stdin
        assert stdin is not None
        done = self._restarted.setdefault(device, asyncio.Event())
        done.clear()
        stdin.write(f"restart {device}\n".encode())
        await stdin.drain()
        await asyncio.wait_for(done.wait(), _RESTORE_TIMEOUT_S)

    def tick_at(self, residue: int, arrived_at: float) -> float | None:
        """When the latest tick ``≡ residue`` (mod the wave period) before ``arrived_at``
        changed the values; None when no such tick is known."""
        latest = bisect.bisect_right(self.tick_times, arrived_at) - 1
        if latest < 0:
            return None
        wanted = self.tick_seconds[latest] - (self.tick_seconds[latest] - residue) % WAVE_PERIOD_S
        slot = bisect.bisect_left(self.tick_seconds, wanted)
        if slot < len(self.tick_seconds) and self.tick_seconds[slot] == wanted:
            return self.tick_times[slot]
        return None


@dataclass(slots=True)
class _BenchRun:
    """What a phase works with."""

    options: PollBenchOptions
    simulator: _ChildSimulator
    drivers: list[Driver]
    clock: Clock
    meter: _Meter | None = None
    """The scan phase's meter, still fed by the running scan engine (subscribed protocols)."""


@dataclass(slots=True)
class _Meter:
    """The publisher of the bench: counts, ages and freshness of what the scan engine hands on
    (the bench measures acquisition, not the bus)."""

    tags: tuple[str, ...]
    samples: int = 0
    good: int = 0
    batches: int = 0
    ages_s: list[float] = field(default_factory=list)
    last_good_at: dict[str, float] = field(default_factory=dict)
    unseen: set[str] = field(default_factory=set)
    all_seen: asyncio.Event = field(default_factory=asyncio.Event)
    awaited: set[str] = field(default_factory=set)
    awaited_since: float = 0.0
    all_awaited: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.unseen = set(self.tags)

    def publish(self, samples: Sequence[Sample]) -> None:
        """Count a batch; note each Good sample's arrival and age."""
        now_mono = time.monotonic()
        now = utc_now()
        self.batches += 1
        self.samples += len(samples)
        last_good_at, ages = self.last_good_at, self.ages_s
        for sample in samples:
            if not sample.quality.is_good:
                continue
            self.good += 1
            last_good_at[sample.tag] = now_mono
            ages.append((now - sample.source_time).total_seconds())
            if self.unseen:
                self._seen(sample.tag)
            if self.awaited and now_mono > self.awaited_since:
                self.awaited.discard(sample.tag)
                if not self.awaited:
                    self.all_awaited.set()

    def _seen(self, tag: str) -> None:
        self.unseen.discard(tag)
        if not self.unseen:
            self.all_seen.set()

    def reset(self) -> None:
        """Start a new measurement window."""
        self.samples = self.good = self.batches = 0
        self.ages_s = []

    def fresh_share(self, max_age_s: float) -> tuple[int, int]:
        """How many points have a Good notification at most ``max_age_s`` old, of all."""
        oldest = time.monotonic() - max_age_s
        last = self.last_good_at
        fresh = sum(1 for tag in self.tags if last.get(tag, -1e300) >= oldest)
        return fresh, len(self.tags)

    def await_all(self, tags: Sequence[str]) -> asyncio.Event:
        """An event set once each of ``tags`` has a Good sample from now on."""
        self.awaited = set(tags)
        self.awaited_since = time.monotonic()
        self.all_awaited = asyncio.Event()
        return self.all_awaited


# -- protocols ---------------------------------------------------------------------------------


def _modbus_driver(device: BenchDevice, clock: Clock, scan_interval_s: float) -> Driver:
    config = ModbusDeviceConfig(device.host, device.port, unit_id=device.unit_id, timeout_s=2.0)
    return ModbusDriver(device.name, config, clock)


async def _modbus_naive(run: _BenchRun) -> dict[str, Any]:
    device = run.simulator.devices[0]
    addresses = [point.address for point in device.points]
    result = await naive_poll(
        device.host, device.port, device.unit_id, addresses, run.options.capacity_s
    )
    return {"naive_values_per_s": result.values_per_s}


def _opcua_driver(device: BenchDevice, clock: Clock, scan_interval_s: float) -> Driver:
    # Sampling every scan interval, publishing four times as often: a change waits at most a
    # quarter interval on the server for its publish response (Part 4, 5.13.1).
    publishing = max(OPCUA_MIN_PUBLISHING_INTERVAL_S, scan_interval_s / 4)
    config = OpcUaDeviceConfig(
        f"opc.tcp://{device.host}:{device.port}", publishing_interval_s=publishing
    )
    return OpcUaDriver(device.name, config, clock)


async def _opcua_restore(run: _BenchRun) -> dict[str, Any]:
    """Restart the first server while subscribed; time until all its points are Good again."""
    meter = run.meter
    if meter is None:
        return {"restore_s": None}
    device = run.simulator.devices[0]
    started = time.monotonic()
    await run.simulator.restart(device.name)
    # Only Good samples after the restart count: the old session's are gone with the server.
    restored = meter.await_all([point.name for point in device.points])
    try:
        await asyncio.wait_for(restored.wait(), _RESTORE_TIMEOUT_S)
    except TimeoutError:
        log.warning("%s: subscriptions not restored within %g s", device.name, _RESTORE_TIMEOUT_S)
        return {"restore_s": None}
    return {"restore_s": _round(time.monotonic() - started)}


def _bacnet_driver(device: BenchDevice, clock: Clock, *, cov: bool = False) -> BacnetDriver:
    if device.device_instance is None:
        raise BenchError(f"{device.name} has no BACnet device instance")
    config = BacnetDeviceConfig(
        device.host, device.device_instance, port=device.port, local_host="127.0.0.1", cov=cov
    )
    return BacnetDriver(device.name, config, clock)


def _bacnet_polled_driver(device: BenchDevice, clock: Clock, scan_interval_s: float) -> Driver:
    return _bacnet_driver(device, clock, cov=False)


async def _bacnet_cov_latency(run: _BenchRun) -> dict[str, Any]:
    """Subscribe COV of a sample of analog points; time each change to its arrival."""
    simulator = run.simulator
    arrivals: list[tuple[str, float, float]] = []

    def on_samples(samples: list[Sample]) -> None:
        arrived_at = time.time()
        for sample in samples:
            if sample.quality.is_good and isinstance(sample.value, float):
                arrivals.append((sample.tag, sample.value, arrived_at))

    drivers = [_bacnet_driver(device, run.clock, cov=True) for device in simulator.devices]
    try:
        for driver, device in zip(drivers, simulator.devices, strict=True):
            sample = [p for p in device.points if p.data_type is DataType.FLOAT]
            await driver.subscribe(
                sample[:_COV_POINTS_PER_DEVICE], on_samples, interval_s=run.options.scan_interval_s
            )
        subscribed_at = time.time()
        await asyncio.sleep(max(run.options.capacity_s, _COV_WINDOW_S))  # the window itself
    finally:
        for driver in drivers:
            await driver.close()
    latencies = []
    for tag, value, arrived_at in arrivals:
        changed_at = simulator.tick_at(wave_second(tag, value), arrived_at)
        # The first notification of a subscription carries an older value: not a change.
        if changed_at is not None and changed_at >= subscribed_at:
            latencies.append(arrived_at - changed_at)
    return {
        "cov_latency_p95_ms": _round(_p95_ms(latencies)) if latencies else None,
        "cov_notifications": len(latencies),
    }


POLL_BENCHES: Mapping[str, ProtocolBench] = MappingProxyType(
    {
        "modbus": ProtocolBench(
            build_driver=_modbus_driver,
            extra_phase=_modbus_naive,
            extra_keys=("naive_values_per_s",),
        ),
        "opcua": ProtocolBench(
            build_driver=_opcua_driver,
            subscribed=True,
            extra_phase=_opcua_restore,
            extra_keys=("restore_s",),
        ),
        "bacnet": ProtocolBench(
            build_driver=_bacnet_polled_driver,
            extra_phase=_bacnet_cov_latency,
            extra_keys=("cov_latency_p95_ms", "cov_notifications"),
        ),
    }
)
"""Bench setups by protocol name (read-only)."""


# -- the run -----------------------------------------------------------------------------------


def _device(entry: dict[str, Any]) -> BenchDevice:
    name = str(entry["name"])
    points = tuple(
        TagDef(str(tag), name, str(address), _KIND_TYPES[str(kind)])
        for tag, address, kind in entry["points"]
    )
    instance = entry.get("device_instance")
    return BenchDevice(
        name,
        str(entry["host"]),
        int(entry["port"]),
        int(entry["unit_id"]),
        points,
        None if instance is None else int(instance),
    )


async def run_poll_bench(options: PollBenchOptions) -> dict[str, Any]:
    """Run the phases and return the figures as one JSON-ready object."""
    bench = POLL_BENCHES.get(options.protocol)
    if bench is None:
        known = ", ".join(sorted(POLL_BENCHES))
        raise BenchError(f"no poll bench for {options.protocol!r} (available: {known})")
    if options.tags < 1 or options.scan_interval_s <= 0 or options.duration_s <= 0:
        raise BenchError("tags, scan interval and duration must be positive")
    simulator = await _ChildSimulator.start(
        options.protocol, options.tags, options.points_per_device
    )
    clock = WallClock()
    drivers = [
        bench.build_driver(device, clock, options.scan_interval_s) for device in simulator.devices
    ]
    run = _BenchRun(options, simulator, drivers, clock)
    try:
        # Connect first: the figures are for acquisition, not for opening connections.
        await asyncio.gather(*(driver.connect() for driver in drivers))
        if bench.subscribed:
            figures = await _subscription_phase(run, bench)
            # Fresh sessions: the capacity reads must not share them with subscriptions.
            for driver in drivers:
                await driver.close()
            await asyncio.gather(*(driver.connect() for driver in drivers))
        else:
            figures = await _scan_phase(run)
        figures.update(await _capacity_phase(run))
        if bench.extra_phase is not None and not bench.subscribed:
            figures.update(await bench.extra_phase(run))
    except DriverError as err:
        raise BenchError(f"the simulated devices could not be read: {err}") from err
    except BaseException:
        tail = simulator.stderr_tail()
        if tail:
            log.error("simulator output:\n%s", tail)
        raise
    finally:
        for driver in drivers:
            await driver.close()
        await simulator.stop()
    naive = figures.pop("naive_values_per_s", None)
    capacity = figures["values_per_s"]
    if bench.subscribed:
        figures["read_values_per_s"] = capacity
        figures["values_per_s"] = figures["scanned_values_per_s"]
    return {
        "protocol": options.protocol,
        "tags": sum(len(device.points) for device in simulator.devices),
        "devices": len(simulator.devices),
        "scan_interval_s": options.scan_interval_s,
        "duration_s": options.duration_s,
        "mode": "subscribe" if bench.subscribed else "poll",
        **{key: None for key in bench.extra_keys if key != "naive_values_per_s"},
        **figures,
        "naive_values_per_s": _round(naive),
        "speedup": _round(capacity / naive) if naive else None,
        "values_per_s_meaning": (
            "notifications received per second; read_values_per_s: batched reads back to back"
            if bench.subscribed
            else "capacity: planned reads back to back on every device at once; "
            "scanned_values_per_s is what the scan rate asked for and got"
        ),
    }


async def _scan_phase(run: _BenchRun) -> dict[str, Any]:
    options, simulator, drivers, clock = run.options, run.simulator, run.drivers, run.clock
    timeout = max(2.0, options.scan_interval_s)
    scans = [
        DeviceScan(driver, device.points, options.scan_interval_s, timeout)
        for driver, device in zip(drivers, simulator.devices, strict=True)
    ]
    meter = _Meter(tuple(point.name for device in simulator.devices for point in device.points))
    engine = ScanEngine(scans, meter, clock)
    freeze_startup_objects()  # as the center does once started
    requests_before = sum(driver.diagnostics().requests for driver in drivers)
    cpu_before, sim_before = own_cpu_seconds(), simulator.cpu_seconds()
    started = time.monotonic()
    task = asyncio.create_task(engine.run(), name="bench scan engine")
    try:
        await asyncio.sleep(options.duration_s)  # the measurement window itself
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    elapsed = time.monotonic() - started
    cpu, sim_cpu = own_cpu_seconds() - cpu_before, simulator.cpu_seconds() - sim_before
    requests = sum(driver.diagnostics().requests for driver in drivers) - requests_before
    diagnostics = engine.diagnostics()
    scan_count = sum(d.scans for d in diagnostics)
    due = scan_count + sum(d.missed_scans for d in diagnostics)
    on_time = sum(d.scans_on_time for d in diagnostics)
    return {
        "scans": scan_count,
        "missed_scans": due - scan_count,
        "scans_on_time_pct": _round(100.0 * on_time / due if due else 0.0),
        "scanned_values_per_s": _round(meter.good / elapsed),
        "bad_values": meter.samples - meter.good,
        "latency_p95_ms": _round(max((d.latency_p95_ms for d in diagnostics), default=0.0)),
        "requests_per_s": _round(requests / elapsed),
        "cpu_cores_used": _cores(cpu / elapsed),
        "sim_cpu_cores_used": _cores(sim_cpu / elapsed),
    }


async def _subscription_phase(run: _BenchRun, bench: ProtocolBench) -> dict[str, Any]:
    options, simulator, drivers, clock = run.options, run.simulator, run.drivers, run.clock
    interval = options.scan_interval_s
    timeout = max(30.0, interval)  # creating thousands of monitored items takes a while
    scans = [
        DeviceScan(driver, device.points, interval, timeout)
        for driver, device in zip(drivers, simulator.devices, strict=True)
    ]
    meter = _Meter(tuple(point.name for device in simulator.devices for point in device.points))
    run.meter = meter
    engine = ScanEngine(scans, meter, clock)
    freeze_startup_objects()  # as the center does once started
    task = asyncio.create_task(engine.run(), name="bench scan engine")
    try:
        try:
            await asyncio.wait_for(meter.all_seen.wait(), _FIRST_VALUES_TIMEOUT_S)
        except TimeoutError as err:
            raise BenchError(
                f"{len(meter.unseen)} of {len(meter.tags)} points delivered no value within "
                f"{_FIRST_VALUES_TIMEOUT_S:g} s of subscribing"
            ) from err
        meter.reset()
        requests_before = sum(driver.diagnostics().requests for driver in drivers)
        cpu_before, sim_before = own_cpu_seconds(), simulator.cpu_seconds()
        started = time.monotonic()
        fresh = checked = 0
        while (remaining := started + options.duration_s - time.monotonic()) > 0:
            await asyncio.sleep(min(interval, remaining))  # one freshness check per interval
            if remaining >= interval:
                point_fresh, point_count = meter.fresh_share(_FRESH_INTERVALS * interval)
                fresh, checked = fresh + point_fresh, checked + point_count
        elapsed = time.monotonic() - started
        cpu, sim_cpu = own_cpu_seconds() - cpu_before, simulator.cpu_seconds() - sim_before
        requests = sum(driver.diagnostics().requests for driver in drivers) - requests_before
        figures: dict[str, Any] = {
            "scans": meter.batches,
            "missed_scans": checked - fresh,
            "scans_on_time_pct": _round(100.0 * fresh / checked if checked else 0.0),
            "scanned_values_per_s": _round(meter.good / elapsed),
            "bad_values": meter.samples - meter.good,
            "latency_p95_ms": _round(_p95_ms(meter.ages_s)) if meter.ages_s else None,
            "requests_per_s": _round(requests / elapsed),
            "cpu_cores_used": _cores(cpu / elapsed),
            "sim_cpu_cores_used": _cores(sim_cpu / elapsed),
        }
        if bench.extra_phase is not None:
            figures.update(await bench.extra_phase(run))
        return figures
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _capacity_phase(run: _BenchRun) -> dict[str, Any]:
    deadline = time.monotonic() + run.options.capacity_s
    drivers = run.drivers
    requests_before = sum(driver.diagnostics().requests for driver in drivers)

    async def read_back_to_back(driver: Driver, points: tuple[TagDef, ...]) -> int:
        good = 0
        while time.monotonic() < deadline:
            with contextlib.suppress(DriverError):  # a failed read only lowers the figure
                samples = await driver.read(points)
                good += sum(1 for sample in samples if sample.quality.is_good)
        return good

    started = time.monotonic()
    counts = await asyncio.gather(
        *(
            read_back_to_back(driver, device.points)
            for driver, device in zip(drivers, run.simulator.devices, strict=True)
        )
    )
    elapsed = time.monotonic() - started
    requests = sum(driver.diagnostics().requests for driver in drivers) - requests_before
    return {
        "values_per_s": _round(sum(counts) / elapsed),
        "capacity_requests_per_s": _round(requests / elapsed),
    }


def _p95_ms(seconds: Sequence[float]) -> float:
    ordered = sorted(seconds)
    return 1000.0 * ordered[int(0.95 * (len(ordered) - 1))]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _cores(value: float) -> float:
    # Three decimals: a quiet center polling a small city uses a few hundredths of a core, which
    # one decimal would print as 0.0.
    return round(value, 3)
