"""The scan engine against the simulated tank over real Modbus TCP, and against a dead device."""

from __future__ import annotations

import asyncio

from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.clock import WallClock
from controlcenter.model import Severity, Substatus
from controlcenter.ports import Clock
from controlcenter.runtime.app import build_driver
from controlcenter.runtime.demo import load_demo_site
from plc_sim.city import SimulatedCity
from tests.controlcenter.acquisition.scan_support import Collector


def tank_scan(endpoint: str, clock: Clock, interval_s: float, device_name: str = "") -> DeviceScan:
    site = load_demo_site()
    site = site.with_endpoints({"water.tank1_rtu": endpoint})
    device = site.device("water.tank1_rtu")
    if device_name:
        device = device.model_copy(update={"name": device_name})
    points = tuple(tag for tag in site.tag_defs() if tag.device == "water.tank1_rtu")
    return DeviceScan(build_driver(device, clock), points, interval_s, timeout_s=0.5)


async def test_scan_publishes_good_samples_for_every_point(tank_city: SimulatedCity) -> None:
    host, port = tank_city.endpoints()["water.tank1_rtu"]
    clock = WallClock()
    scan = tank_scan(f"{host}:{port}", clock, 0.05)
    collector = Collector()
    engine = ScanEngine([scan], collector, clock)
    task = asyncio.create_task(engine.run())
    try:
        names = {point.name for point in scan.points}
        await collector.wait_for(lambda s: {x.tag for x in s if x.quality.is_good} == names)
        levels = [s.value for s in collector.samples if s.tag == "water.tank1.level"]
        assert all(isinstance(v, float) and 0 <= v <= 5 for v in levels)
        await collector.wait_for(lambda s: len(s) >= 5 * len(names))
        (diagnostics,) = engine.diagnostics()
        assert diagnostics.healthy and diagnostics.scans >= 5 and diagnostics.failed_scans == 0
    finally:
        task.cancel()
        await scan.driver.close()


async def test_dead_device_gives_bad_quality_with_reason(closed_port: int) -> None:
    clock = WallClock()
    scan = tank_scan(f"127.0.0.1:{closed_port}", clock, 0.05)
    collector = Collector()
    engine = ScanEngine([scan], collector, clock)
    task = asyncio.create_task(engine.run())
    try:
        names = {point.name for point in scan.points}
        await collector.wait_for(lambda s: {x.tag for x in s} == names)
        first_scan = collector.samples[: len(names)]
        assert {s.tag for s in first_scan} == names
        for sample in first_scan:
            assert sample.value is None
            assert sample.quality.severity is Severity.BAD
            assert sample.quality.substatus is Substatus.NOT_CONNECTED
            assert sample.quality.reason
        (diagnostics,) = engine.diagnostics()
        assert not diagnostics.healthy and diagnostics.last_error
    finally:
        task.cancel()
        await scan.driver.close()


async def test_dead_device_does_not_slow_a_live_one(
    tank_city: SimulatedCity, closed_port: int
) -> None:
    host, port = tank_city.endpoints()["water.tank1_rtu"]
    clock = WallClock()
    live = tank_scan(f"{host}:{port}", clock, 0.05)
    dead = tank_scan(f"127.0.0.1:{closed_port}", clock, 0.05, device_name="water.dead_rtu")
    collector = Collector()
    engine = ScanEngine([live, dead], collector, clock)
    task = asyncio.create_task(engine.run())
    try:
        await collector.wait_for(
            lambda s: sum(1 for x in s if x.quality.is_good) >= 20 * len(live.points)
        )
        by_device = {d.device: d for d in engine.diagnostics()}
        assert by_device["water.tank1_rtu"].healthy
        assert by_device["water.tank1_rtu"].on_time_pct >= 90
        assert not by_device["water.dead_rtu"].healthy
    finally:
        task.cancel()
        await live.driver.close()
        await dead.driver.close()
