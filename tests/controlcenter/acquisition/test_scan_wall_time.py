"""Quality rules measure silence, timeouts and backoff in wall time, whatever the clock's speed.

Scans run on a simulated clock 30 times faster than the wall; both clocks are moved by hand,
so nothing here sleeps. A 1 s scan class then scans every 33 ms of wall time, but a device is
only lost after 3 s of wall-clock silence.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.model import Quality, Sample, Severity, Substatus
from drivers.base import NotConnectedError
from tests.controlcenter.acquisition.gated_driver import (
    STAMP,
    GatedDriver,
    MultiRequestDriver,
    points_of,
)
from tests.controlcenter.acquisition.manual_time import ManualSimClock, ManualWallTime
from tests.controlcenter.acquisition.scan_support import Collector

SPEED = 30.0
INTERVAL_S = 1.0
"""The scan class: 1 s, i.e. a scan every 33 ms of wall time at speed 30."""
POINTS = points_of("gated")


@dataclass
class Rig:
    """An engine on manual clocks, its fake device and what it published."""

    wall: ManualWallTime
    driver: GatedDriver
    engine: ScanEngine
    collector: Collector

    def not_good(self) -> list[Sample]:
        """Every published sample that is not Good."""
        return [s for s in self.collector.samples if not s.quality.is_good]


async def start(
    *, can_push: bool = False, timeout_s: float = 5.0
) -> tuple[Rig, asyncio.Task[None]]:
    wall = ManualWallTime()
    driver = GatedDriver(wall, can_push=can_push)
    collector = Collector()
    engine = ScanEngine(
        [DeviceScan(driver, POINTS, INTERVAL_S, timeout_s)],
        collector,
        ManualSimClock(wall, SPEED),
        rng=random.Random(3),
        wall=wall,
    )
    task = asyncio.create_task(engine.run())
    await wall.advance(INTERVAL_S / SPEED)  # past the staggered start
    return Rig(wall, driver, engine, collector), task


@pytest.fixture
async def polled() -> AsyncIterator[Rig]:
    rig, task = await start()
    yield rig
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def subscribed() -> AsyncIterator[Rig]:
    rig, task = await start(can_push=True)
    yield rig
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_short_hiccup_at_speed_30_never_marks_a_healthy_device_bad(polled: Rig) -> None:
    await polled.wall.advance(0.5)
    assert len(polled.driver.read_started_at) >= 10  # scanning every 33 ms of wall time
    polled.driver.hold()
    await polled.wall.advance(0.05)
    assert polled.driver.pending
    # A 0.3 s hiccup is 9 simulated scan periods, but a tenth of the wall-clock silence (3 s)
    # after which a device counts as lost.
    for _ in range(6):
        await polled.wall.advance(0.05)
    polled.driver.release()
    await polled.wall.advance(0.5)
    assert polled.not_good() == []
    (diagnostics,) = polled.engine.diagnostics()
    assert diagnostics.healthy and diagnostics.outages == 0 and diagnostics.failed_scans == 0


async def test_a_device_silent_for_three_wall_periods_is_bad_then_abandoned(polled: Rig) -> None:
    await polled.wall.advance(0.2)
    polled.driver.hold()
    await polled.wall.advance(0.05)
    assert polled.driver.pending
    last_answer = polled.wall.monotonic() - 0.05  # at most one scan period before the hold
    await polled.wall.advance(2.8)
    assert polled.not_good() == []  # not yet 3 s of silence
    await polled.wall.advance(0.3)
    lost = polled.not_good()
    assert {s.tag for s in lost} == {p.name for p in POINTS}
    assert {s.quality.substatus for s in lost} == {Substatus.COMM_FAILURE}
    assert "3 scan periods" in lost[0].quality.reason
    assert polled.wall.monotonic() - last_answer >= 3.0
    await polled.wall.advance(2.0)  # the read's 5 s timeout (wall) runs out
    kinds = [s.quality.substatus for s in polled.not_good() if s.tag == POINTS[0].name]
    assert kinds == [Substatus.COMM_FAILURE, Substatus.TIMEOUT]
    (diagnostics,) = polled.engine.diagnostics()
    assert diagnostics.abandoned_reads == 1 and diagnostics.outages == 1


async def test_retries_of_a_failing_device_back_off_in_wall_time(polled: Rig) -> None:
    polled.driver.failure = NotConnectedError("device away")
    failed_from = len(polled.driver.read_started_at)
    await polled.wall.advance(40.0)
    attempts = polled.driver.read_started_at[failed_from:]
    gaps = [round(later - earlier, 3) for earlier, later in itertools.pairwise(attempts)]
    # The first retry is the next scan; then 2, 4, 8 scan intervals of wall time, capped at 8.
    assert gaps[0] == pytest.approx(INTERVAL_S / SPEED, abs=0.002)
    assert gaps[1:5] == pytest.approx([2.0, 4.0, 8.0, 8.0], abs=0.04)
    polled.driver.failure = None
    await polled.wall.advance(8.0)
    (diagnostics,) = polled.engine.diagnostics()
    assert diagnostics.healthy and diagnostics.outages == 1
    assert polled.collector.samples[-1].quality.is_good


async def test_subscribed_points_go_uncertain_after_three_wall_intervals(subscribed: Rig) -> None:
    subscribed.driver.push([Sample(p.name, 2.5, Quality.good(), STAMP, STAMP) for p in POINTS])
    await subscribed.wall.advance(2.9)  # 87 simulated intervals, under 3 s of wall time
    assert subscribed.not_good() == []
    await subscribed.wall.advance(0.2)
    stale = subscribed.not_good()
    assert {s.tag for s in stale} == {p.name for p in POINTS}
    assert all(s.quality.severity is Severity.UNCERTAIN for s in stale)
    assert all(s.quality.substatus is Substatus.LAST_USABLE and s.value == 2.5 for s in stale)
    assert subscribed.engine.diagnostics()[0].stale_points == len(POINTS)


async def test_a_keep_alive_after_a_silence_makes_stale_points_good_again(
    subscribed: Rig,
) -> None:
    subscribed.driver.push([Sample(p.name, 2.5, Quality.good(), STAMP, STAMP) for p in POINTS])
    await subscribed.wall.advance(3.1)
    assert len(subscribed.not_good()) == len(POINTS)
    published = len(subscribed.collector.samples)
    subscribed.driver.push([])  # keep-alive: the subscription lives, nothing changed
    recovered = subscribed.collector.samples[published:]
    assert {s.tag for s in recovered} == {p.name for p in POINTS}
    assert all(s.quality.is_good and s.value == 2.5 for s in recovered)
    assert all(s.source_time == STAMP for s in recovered)
    assert subscribed.engine.diagnostics()[0].stale_points == 0
    subscribed.driver.push([])  # a second keep-alive has nothing to restore
    assert len(subscribed.collector.samples) == published + len(POINTS)


async def run_multi_request(driver: MultiRequestDriver) -> tuple[Collector, ScanEngine]:
    """Scan ``driver`` (1 s timeout) for 10 s of manual wall time at speed 30."""
    collector = Collector()
    engine = ScanEngine(
        [DeviceScan(driver, POINTS, INTERVAL_S, timeout_s=1.0)],
        collector,
        ManualSimClock(driver.wall, SPEED),
        rng=random.Random(3),
        wall=driver.wall,
    )
    task = asyncio.create_task(engine.run())
    try:
        await driver.wall.advance(10.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return collector, engine


async def test_a_long_read_whose_device_answers_every_request_is_not_abandoned() -> None:
    # Four requests of 0.4 s: 1.6 s per read, beyond the 1 s timeout, never 1 s of silence.
    driver = MultiRequestDriver(ManualWallTime(), requests=4, answer_s=0.4)
    collector, engine = await run_multi_request(driver)
    assert [s for s in collector.samples if not s.quality.is_good] == []
    (diagnostics,) = engine.diagnostics()
    assert diagnostics.scans >= 5 and diagnostics.abandoned_reads == 0 and diagnostics.outages == 0


async def test_requests_the_driver_saw_time_out_are_no_answer() -> None:
    driver = MultiRequestDriver(ManualWallTime(), requests=4, answer_s=0.4)
    driver.silent_requests = frozenset({0, 1, 2, 3})
    collector, engine = await run_multi_request(driver)
    timeouts = [s for s in collector.samples if s.quality.substatus is Substatus.TIMEOUT]
    assert timeouts and "no answer within 1 s" in timeouts[0].quality.reason
    assert engine.diagnostics()[0].abandoned_reads >= 1
