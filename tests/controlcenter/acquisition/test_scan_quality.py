"""Scan engine quality rules with fake drivers (pure logic): subscriptions, staleness, overruns."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.clock import WallClock
from controlcenter.model import (
    DataType,
    Quality,
    Sample,
    ScanMode,
    Severity,
    Substatus,
    TagDef,
    Value,
)
from drivers.base import (
    DriverDiagnostics,
    NotConnectedError,
    SampleCallback,
    SubscriptionUnsupportedError,
)
from tests.controlcenter.acquisition.scan_support import Collector

POINTS = tuple(TagDef(f"fake.p{i}", "fake", f"p{i}", DataType.FLOAT) for i in range(3))


class FakeDriver:
    """A driver whose behaviour the test sets: push, poll, hang or fail."""

    def __init__(self, name: str = "fake", *, can_push: bool = True) -> None:
        self.name = name
        self.can_push = can_push
        self.subscribe_failures = 0
        self.callback: SampleCallback | None = None
        self.reads = 0
        self.read_delay_s = 0.0

    @property
    def device(self) -> str:
        return self.name

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        self.reads += 1
        if self.read_delay_s:
            await asyncio.sleep(self.read_delay_s)
        now = WallClock().now()
        return [Sample(p.name, float(self.reads), Quality.good(), now, now) for p in points]

    async def subscribe(
        self, points: Sequence[TagDef], callback: SampleCallback, *, interval_s: float
    ) -> None:
        if not self.can_push:
            raise SubscriptionUnsupportedError("polled only")
        if self.subscribe_failures:
            self.subscribe_failures -= 1
            raise NotConnectedError("device away")
        self.callback = callback

    def push(self, values: dict[str, Value]) -> None:
        assert self.callback is not None
        now = WallClock().now()
        self.callback([Sample(tag, v, Quality.good(), now, now) for tag, v in values.items()])

    async def write(self, point: TagDef, value: Value, *, priority: int | None = None) -> Value:
        return value

    def diagnostics(self) -> DriverDiagnostics:
        return DriverDiagnostics(self.name, True, self.reads, 0)


async def running(engine: ScanEngine) -> asyncio.Task[None]:
    return asyncio.create_task(engine.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_subscribed_points_go_uncertain_after_three_intervals_without_updates() -> None:
    driver = FakeDriver()
    collector = Collector()
    engine = ScanEngine([DeviceScan(driver, POINTS, 0.05, 1.0)], collector, WallClock())
    task = await running(engine)
    try:
        await collector.wait_for(lambda _: driver.callback is not None)
        assert driver.reads == 0
        (diagnostics,) = engine.diagnostics()
        assert diagnostics.mode is ScanMode.SUBSCRIBE
        loop = asyncio.get_running_loop()
        pushed_at = loop.time()
        driver.push({"fake.p0": 1.5, "fake.p1": 2.5, "fake.p2": 3.5})
        await collector.wait_for(lambda s: any(x.quality.severity is Severity.UNCERTAIN for x in s))
        waited = loop.time() - pushed_at
        assert 0.15 <= waited < 1.0  # 3 intervals of 50 ms, checked every interval
        await collector.wait_for(
            lambda s: sum(x.quality.severity is Severity.UNCERTAIN for x in s) == 3
        )
        stale = {x.tag: x for x in collector.samples if x.quality.severity is Severity.UNCERTAIN}
        assert stale["fake.p1"].value == 2.5  # the last value is kept
        assert stale["fake.p1"].quality.substatus is Substatus.LAST_USABLE
        assert "no update" in stale["fake.p1"].quality.reason
        assert engine.diagnostics()[0].stale_points == 3
        # Marked once per stale episode, cleared by the next update.
        count = len(collector.samples)
        driver.push({"fake.p1": 4.0})
        await collector.wait_for(lambda s: len(s) > count)
        assert collector.samples[-1].quality.is_good
        assert engine.diagnostics()[0].stale_points == 2
    finally:
        await stop(task)


async def test_a_keep_alive_keeps_subscribed_points_current() -> None:
    driver = FakeDriver()
    collector = Collector()
    engine = ScanEngine([DeviceScan(driver, POINTS, 0.05, 1.0)], collector, WallClock())
    task = await running(engine)
    try:
        await collector.wait_for(lambda _: driver.callback is not None)
        driver.push({p.name: 1.0 for p in POINTS})
        for _ in range(10):
            await asyncio.sleep(0.03)  # the fake device's keep-alive period
            assert driver.callback is not None
            driver.callback([])
        assert not any(x.quality.severity is Severity.UNCERTAIN for x in collector.samples)
    finally:
        await stop(task)


async def test_a_driver_that_cannot_push_is_polled() -> None:
    driver = FakeDriver(can_push=False)
    collector = Collector()
    engine = ScanEngine([DeviceScan(driver, POINTS, 0.02, 1.0)], collector, WallClock())
    task = await running(engine)
    try:
        await collector.wait_for(lambda s: len(s) >= 5 * len(POINTS))
        (diagnostics,) = engine.diagnostics()
        assert diagnostics.mode is ScanMode.POLL and driver.reads >= 5
        assert all(x.quality.is_good for x in collector.samples)
        assert diagnostics.requests_per_s > 0
    finally:
        await stop(task)


async def test_a_failed_subscription_gives_bad_then_is_retried() -> None:
    driver = FakeDriver()
    driver.subscribe_failures = 2
    collector = Collector()
    engine = ScanEngine([DeviceScan(driver, POINTS, 0.02, 1.0)], collector, WallClock())
    task = await running(engine)
    try:
        await collector.wait_for(lambda _: driver.callback is not None)
        bad = [x for x in collector.samples if x.quality.substatus is Substatus.NOT_CONNECTED]
        assert len(bad) == 2 * len(POINTS)
        driver.push({"fake.p0": 1.0})
        await collector.wait_for(lambda s: s[-1].quality.is_good)
        (diagnostics,) = engine.diagnostics()
        assert diagnostics.healthy and diagnostics.errors_by_kind == {"not_connected": 2}
    finally:
        await stop(task)


async def test_a_read_slower_than_three_periods_is_bad_before_its_timeout_then_abandoned() -> None:
    slow, live = FakeDriver("slow", can_push=False), FakeDriver("live", can_push=False)
    slow.read_delay_s = 10.0
    live_points = tuple(TagDef(f"live.p{i}", "live", f"p{i}", DataType.FLOAT) for i in range(3))
    collector = Collector()
    engine = ScanEngine(
        [DeviceScan(slow, POINTS, 0.05, 0.4), DeviceScan(live, live_points, 0.05, 0.4)],
        collector,
        WallClock(),
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = await running(engine)
    try:
        await collector.wait_for(lambda s: any(x.quality.substatus is Substatus.TIMEOUT for x in s))
        kinds = [x.quality.substatus for x in collector.samples if x.tag == "fake.p0"]
        # Bad after 3 periods (stagger + 0.15 s), before the read's 0.4 s timeout ran out.
        assert kinds[:2] == [Substatus.COMM_FAILURE, Substatus.TIMEOUT]
        assert loop.time() - started >= 0.4
        by_device = {d.device: d for d in engine.diagnostics()}
        assert by_device["slow"].abandoned_reads >= 1
        assert by_device["slow"].errors_by_kind == {"timeout": by_device["slow"].failed_scans}
        assert by_device["live"].healthy and by_device["live"].on_time_pct >= 90
        assert by_device["live"].scans >= 6
    finally:
        await stop(task)
