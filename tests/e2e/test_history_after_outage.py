"""History after an outage: a device frozen with SIGSTOP, then resumed, ends Good in history.

The simulated lighting district runs in a child process (its own OPC UA server on a free
loopback port); the center's scan engine polls one of its points, whose value does not change,
through the OPC UA driver, and the historian writer stores what the bus carries. Freezing the
child (SIGSTOP, as a hung device or a stalled network does) past the comm-loss time gives the
point Bad samples stamped by the center; after SIGCONT the unchanged Good value comes back with
the device's old source time. History must end Good, as the live value does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.bus import SampleBus
from controlcenter.clock import WallClock
from controlcenter.live import LiveSnapshot
from controlcenter.model import Sample, Severity
from controlcenter.runtime.app import build_driver, scan_timeout
from controlcenter.runtime.city_process import CityProcess, CityProcessOptions
from controlcenter.site.config import load_site
from historian import HistorianWriter, SqlHistorian
from historian.queries import HistoryQueries

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

DEVICE = "lights.d1_ctrl"
TAG = "lights.d1.c1.mode"
"""An operating mode: it stays what it is unless an operator changes it."""
SCAN_S = 0.2


async def eventually(probe: Callable[[], Awaitable[bool]], *, timeout_s: float, what: str) -> None:
    """Poll ``probe`` until it holds, failing after ``timeout_s`` of wall time."""
    deadline = time.monotonic() + timeout_s
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        await asyncio.sleep(0.05)


async def test_history_ends_good_after_a_frozen_device_resumes(tmp_path: Path) -> None:
    city = await CityProcess.start(
        CityProcessOptions(
            ready_file=tmp_path / "site.yaml",
            # The demo site's rules and featured tags are the water tank's: both domains.
            domains=frozenset({"lights", "water"}),
            scan_interval_s=SCAN_S,
            duration_s=110.0,
        )
    )
    resumed = False
    try:
        await city.listening(timeout_s=60.0)
        site = await asyncio.to_thread(load_site, tmp_path / "site.yaml")
        device = site.device(DEVICE)
        [tag] = [t for t in site.tag_defs() if t.name == TAG]
        clock = WallClock()
        store = SqlHistorian(f"sqlite:///{tmp_path / 'history.db'}")
        store.ensure_tags([tag])
        writer = HistorianWriter(store, max_delay_s=0.05)
        live = LiveSnapshot([tag], clock.now())
        bus = SampleBus()
        bus.subscribe("live", live.update)
        bus.subscribe("historian", writer.enqueue)
        driver = build_driver(device, clock)
        scan = DeviceScan(driver, (tag,), SCAN_S, scan_timeout(device), poll=True)
        tasks = [
            asyncio.create_task(writer.run(), name="writer"),
            asyncio.create_task(ScanEngine([scan], bus, clock).run(), name="scan"),
        ]
        queries = HistoryQueries(store)

        async def history() -> list[Sample]:
            return await asyncio.to_thread(queries.read_raw, TAG)

        async def stored_good() -> bool:
            return any(s.quality.is_good for s in await history())

        async def stored_bad() -> bool:
            return any(s.quality.severity is Severity.BAD for s in await history())

        try:
            await eventually(stored_good, timeout_s=30.0, what="a first Good sample stored")
            os.kill(city.process.pid, signal.SIGSTOP)
            await eventually(stored_bad, timeout_s=30.0, what="the frozen device marked Bad")
            frozen = [s for s in await history() if s.quality.severity is Severity.BAD]
            os.kill(city.process.pid, signal.SIGCONT)
            resumed = True
            last_bad = max(s.server_time for s in await history() if not s.quality.is_good)

            async def good_again() -> bool:
                stored = await history()
                newest = stored[-1]
                return newest.quality.is_good and newest.server_time > last_bad

            await eventually(good_again, timeout_s=30.0, what="history Good again after SIGCONT")
        finally:
            for task in tasks[1:]:
                task.cancel()
            await asyncio.gather(*tasks[1:], return_exceptions=True)
            await driver.close()
            await writer.stop(timeout_s=10.0)
            await asyncio.gather(tasks[0], return_exceptions=True)

        stored = await history()
        store.close()
    finally:
        if not resumed:
            os.kill(city.process.pid, signal.SIGCONT)
        await city.stop()

    assert frozen[0].quality.substatus.value in {"comm_failure", "timeout", "not_connected"}
    assert live.latest(TAG).quality.is_good
    newest = stored[-1]
    assert newest.quality.is_good and newest.value == live.latest(TAG).value
    # The device's stamp did not move (the mode never changed); the center's did.
    first_good = next(s for s in stored if s.quality.is_good)
    assert newest.source_time == first_good.source_time
    assert newest.server_time > frozen[-1].server_time
    assert [s.server_time for s in stored] == sorted(s.server_time for s in stored)
