"""Scan engine isolation and recovery against real Modbus TCP devices on free ports."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.clock import WallClock
from controlcenter.model import DataType, Sample, Substatus, TagDef
from drivers.modbus import ModbusDeviceConfig, ModbusDriver
from tests.controlcenter.acquisition.scan_support import Collector
from tests.drivers.modbus.modbus_test_devices import FeatureDevice, SilentEndpoint

INTERVAL_S = 0.05


def points(device: str) -> tuple[TagDef, ...]:
    return tuple(TagDef(f"{device}.r{i}", device, f"hr:{i}:uint16", DataType.INT) for i in range(8))


def modbus_scan(
    device: str, port: int, *, driver_timeout_s: float, scan_timeout_s: float
) -> DeviceScan:
    config = ModbusDeviceConfig(
        "127.0.0.1", port, timeout_s=driver_timeout_s, reconnect_delay_max_s=0.2
    )
    driver = ModbusDriver(device, config, WallClock())
    return DeviceScan(driver, points(device), INTERVAL_S, scan_timeout_s)


@pytest.fixture
async def live_device() -> AsyncIterator[FeatureDevice]:
    device = FeatureDevice()
    await device.start()
    yield device
    await device.stop()


@pytest.fixture
async def hung_device() -> AsyncIterator[SilentEndpoint]:
    endpoint = SilentEndpoint()
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


def good_of(samples: list[Sample], device: str) -> int:
    return sum(1 for s in samples if s.tag.startswith(device) and s.quality.is_good)


async def test_a_hung_device_beyond_its_timeout_does_not_slow_a_live_one(
    live_device: FeatureDevice, hung_device: SilentEndpoint
) -> None:
    live = modbus_scan("live", live_device.port, driver_timeout_s=1.0, scan_timeout_s=0.5)
    # The driver would wait 5 s; the engine abandons the read after 0.2 s.
    hung = modbus_scan("hung", hung_device.port, driver_timeout_s=5.0, scan_timeout_s=0.2)
    collector = Collector()
    engine = ScanEngine([live, hung], collector, WallClock(), rng=random.Random(1))
    task = asyncio.create_task(engine.run())
    try:
        await collector.wait_for(lambda s: good_of(s, "live") >= 20 * len(live.points), 10)
        by_device = {d.device: d for d in engine.diagnostics()}
        assert by_device["live"].healthy and by_device["live"].on_time_pct >= 90
        assert by_device["live"].failed_scans == 0
        hung_diagnostics = by_device["hung"]
        assert not hung_diagnostics.healthy and hung_diagnostics.abandoned_reads >= 1
        hung_kinds = {s.quality.substatus for s in collector.samples if s.tag.startswith("hung")}
        assert Substatus.TIMEOUT in hung_kinds
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await live.driver.close()
        await hung.driver.close()


async def test_a_device_that_returns_is_good_again_within_a_bounded_time(
    closed_port: int,
) -> None:
    scan = modbus_scan("back", closed_port, driver_timeout_s=0.3, scan_timeout_s=0.5)
    collector = Collector()
    engine = ScanEngine([scan], collector, WallClock(), rng=random.Random(2))
    task = asyncio.create_task(engine.run())
    device = FeatureDevice()
    loop = asyncio.get_running_loop()
    try:
        # Let the backoff grow to its cap (8 intervals) before the device returns.
        await collector.wait_for(
            lambda s: (
                sum(x.quality.substatus is Substatus.NOT_CONNECTED for x in s)
                >= 6 * len(scan.points)
            )
        )
        await device.start(closed_port)
        returned = loop.time()
        await collector.wait_for(lambda s: s[-1].quality.is_good, 5)
        recovery_s = loop.time() - returned
        # Engine backoff cap (8 x 50 ms) + the driver's reconnect delay cap (0.2 s) + slack.
        assert recovery_s < 1.5, recovery_s
        (diagnostics,) = engine.diagnostics()
        assert diagnostics.healthy and diagnostics.connected
        assert diagnostics.errors_by_kind.get("not_connected", 0) >= 6
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await scan.driver.close()
        await device.stop()
