"""Reconnects in the scan engine's diagnostics: counted when a lost connection comes back,
against a real Modbus TCP device stopped and started again on the same free port."""

from __future__ import annotations

import asyncio
import random

from controlcenter.acquisition.scan import ScanEngine
from controlcenter.clock import WallClock
from tests.controlcenter.acquisition.scan_support import Collector
from tests.controlcenter.acquisition.test_scan_isolation import modbus_scan
from tests.drivers.modbus.modbus_test_devices import FeatureDevice


async def test_a_device_that_comes_back_counts_one_reconnect() -> None:
    device = FeatureDevice()
    await device.start()
    port = device.port
    scan = modbus_scan("back", port, driver_timeout_s=0.3, scan_timeout_s=0.5)
    collector = Collector()
    engine = ScanEngine([scan], collector, WallClock(), rng=random.Random(3))
    task = asyncio.create_task(engine.run())
    try:
        await collector.wait_for(lambda s: bool(s) and s[-1].quality.is_good, 5)
        (first,) = engine.diagnostics()
        assert first.connected and first.reconnects == 0  # a first connect is no reconnect
        await device.stop()
        await collector.wait_for(lambda s: not s[-1].quality.is_good, 5)
        (lost,) = engine.diagnostics()
        assert not lost.healthy and lost.reconnects == 0
        device = FeatureDevice()
        await device.start(port)
        await collector.wait_for(lambda s: s[-1].quality.is_good, 5)
        (back,) = engine.diagnostics()
        assert back.healthy and back.connected and back.reconnects == 1
        assert back.outages == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await scan.driver.close()
        await device.stop()
