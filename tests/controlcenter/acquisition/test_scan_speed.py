"""The scan engine with the simulated city at 30 times real speed, over real sockets.

A network's silence is a wall-clock fact: at any clock speed a healthy device is never marked
Bad, and a really silent one is marked Bad after 3 scan periods of wall time.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

import pytest
import pytest_asyncio

from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.model import Sample, ScanDiagnostics, Substatus
from controlcenter.runtime.app import build_driver, pushes_changes, scan_timeout
from controlcenter.runtime.demo import load_demo_site
from controlcenter.site.config import SiteConfig
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock
from plc_sim.device import FaultKind
from tests.drivers.modbus.modbus_test_devices import SilentEndpoint

SPEED = 30.0
TANK = "water.tank1_rtu"


class WallRecorder:
    """Keeps every published sample with the wall time it arrived."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, Sample]] = []

    def publish(self, samples: Sequence[Sample]) -> None:
        """Record a batch."""
        now = time.monotonic()
        self.samples.extend((now, sample) for sample in samples)

    def not_good(self, since: float = 0.0) -> list[Sample]:
        """Samples that are not Good, arrived at or after ``since``."""
        return [s for at, s in self.samples if at >= since and not s.quality.is_good]

    def good_tags(self) -> set[str]:
        """Tags with at least one Good sample."""
        return {s.tag for _, s in self.samples if s.quality.is_good}


async def until(condition: Callable[[], object], deadline_s: float, what: str) -> None:
    """Poll ``condition`` until true, failing after ``deadline_s`` wall seconds."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < deadline_s, f"{what} not within {deadline_s} s"
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class FastCity:
    """The simulated city and the clock it shares with the center, as in the demo."""

    city: SimulatedCity
    clock: SimClock


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fast_city() -> AsyncIterator[FastCity]:
    """Water (Modbus) and street lighting (OPC UA subscriptions) at 30 times real speed."""
    clock = SimClock(speed=SPEED)
    # Seed 1: the city the demo's packaged site file describes.
    options = CityOptions(seed=1, domains=frozenset({"water", "lights"}))
    async with SimulatedCity(clock, options) as city:
        yield FastCity(city, clock)


def city_site(city: SimulatedCity) -> SiteConfig:
    """The demo site with the city's devices where the city listens."""
    endpoints = {}
    for name, (host, port) in city.endpoints().items():
        where = f"{host}:{port}"
        endpoints[name] = f"opc.tcp://{where}" if city.device(name).protocol == "opcua" else where
    site = load_demo_site().with_endpoints(endpoints)
    return site.model_copy(update={"devices": [d for d in site.devices if d.name in endpoints]})


def city_scans(fast: FastCity, site: SiteConfig, only: str | None = None) -> list[DeviceScan]:
    """One scan per device of the site, as the center builds them."""
    tags = site.tag_defs()
    return [
        DeviceScan(
            driver=build_driver(device, fast.clock),
            points=tuple(tag for tag in tags if tag.device == device.name),
            interval_s=device.scan_interval,
            timeout_s=scan_timeout(device),
            poll=not pushes_changes(device),
        )
        for device in site.devices
        if only is None or device.name == only
    ]


def outages(engine: ScanEngine) -> dict[str, ScanDiagnostics]:
    """Devices that failed at least once."""
    return {d.device: d for d in engine.diagnostics() if d.outages or d.failed_scans}


async def close_all(task: asyncio.Task[None], scans: Sequence[DeviceScan]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    for scan in scans:
        await scan.driver.close()


async def test_a_device_answering_after_a_hiccup_at_speed_30_is_never_bad(
    fast_city: FastCity,
) -> None:
    scans = city_scans(fast_city, city_site(fast_city.city), only=TANK)
    recorder = WallRecorder()
    engine = ScanEngine(scans, recorder, fast_city.clock)
    task = asyncio.create_task(engine.run())
    names = {point.name for point in scans[0].points}
    try:
        await until(lambda: recorder.good_tags() == names, 10, "every tank point Good")
        # Every answer now comes 0.3 s late: 9 periods of the 1 s scan class at speed 30.
        fast_city.city.set_fault(TANK, FaultKind.SLOW, delay_s=0.3)
        hiccup_from = time.monotonic()
        await until(lambda: slow_answers(recorder, hiccup_from) >= 3, 10, "three late answers")
        fast_city.city.clear_fault(TANK)
        cleared = time.monotonic()
        await until(lambda: good_batches(recorder, cleared) >= 10, 10, "ten prompt answers")
        assert recorder.not_good() == []
        assert outages(engine) == {}
    finally:
        fast_city.city.clear_fault(TANK)
        await close_all(task, scans)


def slow_answers(recorder: WallRecorder, since: float, gap_s: float = 0.25) -> int:
    """Answers that arrived ``gap_s`` or more after the previous one, since ``since``."""
    arrivals = sorted({at for at, _ in recorder.samples if at >= since})
    return sum(1 for a, b in itertools.pairwise(arrivals) if b - a >= gap_s)


def good_batches(recorder: WallRecorder, since: float) -> int:
    """Batches (distinct arrival times) of Good samples since ``since``."""
    return len({at for at, s in recorder.samples if at >= since and s.quality.is_good})


async def test_a_device_silent_for_three_wall_periods_at_speed_30_is_bad(
    fast_city: FastCity,
) -> None:
    silent = SilentEndpoint()
    await silent.start()
    site = city_site(fast_city.city)
    device = site.device(TANK).model_copy(update={"endpoint": f"127.0.0.1:{silent.port}"})
    points = tuple(tag for tag in site.tag_defs() if tag.device == TANK)
    interval_s = 0.2  # 3 periods: 0.6 s of wall time, not 0.6 / 30
    scan = DeviceScan(build_driver(device, fast_city.clock), points, interval_s, timeout_s=3.0)
    recorder = WallRecorder()
    engine = ScanEngine([scan], recorder, fast_city.clock)
    started = time.monotonic()
    task = asyncio.create_task(engine.run())
    try:
        await until(recorder.not_good, 5, "a Bad sample")
        arrived, first = next((at, s) for at, s in recorder.samples if not s.quality.is_good)
        assert first.quality.substatus is Substatus.COMM_FAILURE, first.quality
        assert "3 scan periods" in first.quality.reason
        assert arrived - started >= 3 * interval_s - 0.02
    finally:
        await close_all(task, [scan])
        await silent.stop()


async def test_a_slow_device_answering_every_request_is_not_abandoned(
    fast_city: FastCity,
) -> None:
    # The tank's read is 3 requests; each answered 0.4 s late makes it 1.2 s long, beyond a
    # 1 s timeout, yet the device never stays silent for 1 s.
    (scan,) = city_scans(fast_city, city_site(fast_city.city), only=TANK)
    scan = replace(scan, timeout_s=1.0)
    recorder = WallRecorder()
    engine = ScanEngine([scan], recorder, fast_city.clock)
    task = asyncio.create_task(engine.run())
    names = {point.name for point in scan.points}
    try:
        await until(lambda: recorder.good_tags() == names, 10, "every tank point Good")
        fast_city.city.set_fault(TANK, FaultKind.SLOW, delay_s=0.4)
        slow_from = time.monotonic()
        await until(lambda: slow_answers(recorder, slow_from, 1.1) >= 3, 15, "three long reads")
        assert recorder.not_good() == []
        (diagnostics,) = engine.diagnostics()
        assert diagnostics.abandoned_reads == 0 and diagnostics.outages == 0
    finally:
        fast_city.city.clear_fault(TANK)
        await close_all(task, [scan])


@pytest.mark.timeout(60)
async def test_healthy_city_devices_at_speed_30_never_flap(fast_city: FastCity) -> None:
    scans = city_scans(fast_city, city_site(fast_city.city))
    assert {scan.poll for scan in scans} == {True, False}  # polled and subscribed devices
    recorder = WallRecorder()
    engine = ScanEngine(scans, recorder, fast_city.clock)
    task = asyncio.create_task(engine.run())
    tags: set[str] = {point.name for scan in scans for point in scan.points}
    try:
        await until(lambda: recorder.good_tags() == tags, 20, "every point Good")
        all_good_at = time.monotonic()
        # Four wall seconds are two simulated minutes: 120 scans of every polled device.
        await until(lambda: time.monotonic() - all_good_at >= 4.0, 10, "four seconds")
        late = recorder.not_good(since=all_good_at)
        assert late == [], sorted({(s.tag, s.quality.label(), s.quality.reason) for s in late})
        assert outages(engine) == {}
        polled = [d for d in engine.diagnostics() if d.mode.value == "poll"]
        assert min(d.scans for d in polled) >= 60
    finally:
        await close_all(task, scans)
