"""The feed drivers against the simulator's GTFS-Realtime and GBFS publishers over real sockets:
conditional fetches, quality from the feed's own timestamp, and the faults of a publisher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from controlcenter.model import DataType, Severity, Substatus, TagDef
from drivers.base import (
    CommunicationTimeoutError,
    DeviceRejectedError,
    DriverError,
    NotConnectedError,
    SubscriptionUnsupportedError,
)
from drivers.feeds import (
    FeedFormatError,
    Freshness,
    GbfsConfig,
    GbfsDriver,
    GtfsRealtimeConfig,
    GtfsRealtimeDriver,
    HttpSettings,
)
from plc_sim.device import FaultKind
from plc_sim.mobility.bikes import BikeShare, demo_stations
from plc_sim.mobility.buses import BusNetwork, demo_routes
from plc_sim.servers.feeds.server import FeedFault, GbfsServer, GtfsRealtimeServer

START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # a Monday, 08:00 in Amsterdam


class TestClock:
    """The simulated time both sides see; tests move it."""

    __test__ = False

    def __init__(self) -> None:
        self.time = START
        self.speed = 1.0

    def now(self) -> datetime:
        return self.time

    def monotonic(self) -> float:
        return (self.time - START).total_seconds()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


@dataclass
class Feeds:
    clock: TestClock
    buses: BusNetwork
    bikes: BikeShare
    gtfs: GtfsRealtimeServer
    gbfs: GbfsServer

    async def advance(self, seconds: float) -> None:
        """Move simulated time and let both models and publishers follow."""
        self.clock.time += timedelta(seconds=seconds)
        self.buses.step(seconds, self.clock.time)
        self.bikes.step(seconds, self.clock.time)
        await self.gtfs.publish()
        await self.gbfs.publish()

    def reset(self) -> None:
        for server in (self.gtfs, self.gbfs):
            server.device.clear_fault()
            server.set_feed_fault(None)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def feeds() -> AsyncIterator[Feeds]:
    clock = TestClock()
    buses = BusNetwork(demo_routes(52.37, 4.89, count=2), START, headway_s=600)
    bikes = BikeShare(demo_stations(52.37, 4.89, count=6), START)
    gtfs = GtfsRealtimeServer(buses.devices()[0], buses, clock.now, update_interval_s=0)
    gbfs = GbfsServer(bikes.devices()[0], bikes, clock.now, update_interval_s=0, ttl_s=30)
    await gtfs.start()
    await gbfs.start()
    try:
        yield Feeds(clock, buses, bikes, gtfs, gbfs)
    finally:
        await gtfs.stop()
        await gbfs.stop()


@pytest.fixture
def fresh(feeds: Feeds) -> Feeds:
    feeds.reset()
    return feeds


FRESHNESS = Freshness(uncertain_after_s=60, bad_after_s=300)


def _gtfs_driver(feeds: Feeds, **http: float) -> GtfsRealtimeDriver:
    config = GtfsRealtimeConfig(
        feeds.gtfs.vehicle_positions_url,
        feeds.gtfs.trip_updates_url,
        http=HttpSettings(**http),  # type: ignore[arg-type]
        freshness=FRESHNESS,
    )
    return GtfsRealtimeDriver("mobility.bus_feed", config, feeds.clock)


def _gbfs_driver(feeds: Feeds, url: str | None = None, **http: float) -> GbfsDriver:
    config = GbfsConfig(
        url or feeds.gbfs.discovery_url,
        http=HttpSettings(**http),  # type: ignore[arg-type]
        freshness=FRESHNESS,
    )
    return GbfsDriver("mobility.bike_feed", config, feeds.clock)


def _tags(addresses: dict[str, str], device: str, kinds: Callable[[str], DataType]) -> list[TagDef]:
    return [TagDef(tag, device, address, kinds(address)) for tag, address in addresses.items()]


def _bus_tags(feeds: Feeds) -> list[TagDef]:
    def kind(address: str) -> DataType:
        return DataType.INT if address.endswith("delay_s") else DataType.FLOAT

    return _tags(feeds.buses.addresses(), "mobility.bus_feed", kind)


def _bike_tags(feeds: Feeds) -> list[TagDef]:
    return _tags(feeds.bikes.addresses(), "mobility.bike_feed", lambda _: DataType.INT)


async def test_gtfs_values_match_the_buses_and_are_good(fresh: Feeds) -> None:
    driver = _gtfs_driver(fresh)
    await driver.connect()
    try:
        tags = _bus_tags(fresh)
        extra = [
            TagDef("x.trip", "d", "vehicle:l1_01:trip", DataType.STRING),
            TagDef("x.stopped", "d", "vehicle:l1_01:stopped", DataType.BOOL),
            TagDef("x.ghost", "d", "vehicle:nobody:lat", DataType.FLOAT),
            TagDef("x.typo", "d", "vehicle:l1_01:colour", DataType.FLOAT),
        ]
        samples = await driver.read([*tags, *extra])
        by_tag = {s.tag: s for s in samples}
        for report in fresh.buses.reports():
            lat = by_tag[f"mobility.bus.{report.vehicle_id}.lat"]
            assert lat.quality.is_good, lat
            assert lat.value == pytest.approx(report.lat, abs=1e-5)
            assert by_tag[f"mobility.bus.{report.vehicle_id}.delay_s"].value == report.delay_s
        share = by_tag["mobility.line.l1.on_time_share"]
        assert share.quality.is_good and 0.0 <= float(share.value or 0) <= 1.0  # type: ignore[arg-type]
        assert str(by_tag["x.trip"].value).startswith("l1_")
        assert isinstance(by_tag["x.stopped"].value, bool)
        assert by_tag["x.ghost"].quality.substatus is Substatus.OUT_OF_SERVICE
        assert by_tag["x.typo"].quality.substatus is Substatus.CONFIG_ERROR
        assert by_tag["x.ghost"].source_time == START
    finally:
        await driver.close()


async def test_unchanged_feeds_answer_304_and_keep_the_values(fresh: Feeds) -> None:
    driver = _gbfs_driver(fresh)
    await driver.connect()
    try:
        tags = _bike_tags(fresh)
        first = await driver.read(tags)
        before = fresh.gbfs.not_modified
        second = await driver.read(tags)
        assert fresh.gbfs.not_modified >= before + 2  # station_status and station_information
        assert [s.value for s in first] == [s.value for s in second]
        assert all(s.quality.is_good for s in second)
        station = fresh.bikes.stations[0]
        station.bikes = 0
        await fresh.advance(1)
        third = {s.tag: s for s in await driver.read(tags)}
        assert third[f"mobility.bikes.{station.station_id}.bikes"].value == 0
        assert third[f"mobility.bikes.{station.station_id}.docks"].value == station.capacity
    finally:
        await driver.close()


async def test_a_stale_feed_turns_uncertain_then_bad(fresh: Feeds) -> None:
    driver = _gbfs_driver(fresh)
    tags = _bike_tags(fresh)[:2]
    try:
        assert all(s.quality.is_good for s in await driver.read(tags))
        fresh.gbfs.set_feed_fault(FeedFault.STALE)
        await fresh.advance(30 + 120)  # ttl 30 s, then 120 s overdue
        uncertain = await driver.read(tags)
        assert all(s.quality.severity is Severity.UNCERTAIN for s in uncertain), uncertain
        assert "stale" in uncertain[0].quality.reason
        assert uncertain[0].value is not None
        await fresh.advance(300)
        bad = await driver.read(tags)
        assert all(s.quality.severity is Severity.BAD for s in bad), bad
        fresh.gbfs.set_feed_fault(None)
        await fresh.advance(1)
        assert all(s.quality.is_good for s in await driver.read(tags))
    finally:
        await driver.close()


async def test_a_timestamp_going_backwards_is_refused(fresh: Feeds) -> None:
    driver = _gtfs_driver(fresh)
    tags = _bus_tags(fresh)[:4]
    try:
        good = await driver.read(tags)
        assert all(s.quality.is_good for s in good)
        fresh.gtfs.set_feed_fault(FeedFault.CLOCK_BACK)
        samples = await driver.read(tags)
        # The older snapshot is not taken: the newer one is kept, marked as not refreshed.
        assert [s.value for s in samples] == [s.value for s in good]
        assert all(s.source_time == good[0].source_time for s in samples)
        assert all(s.quality.substatus is Substatus.NO_COMM_LAST_USABLE for s in samples)
        assert "backwards" in samples[0].quality.reason
        assert driver.diagnostics().errors_by_kind.get("device_failure", 0) >= 1
    finally:
        await driver.close()


@pytest.mark.parametrize("fault", [FeedFault.TRUNCATED, FeedFault.WRONG_TYPES])
async def test_malformed_bodies_are_typed_errors(fresh: Feeds, fault: FeedFault) -> None:
    fresh.gtfs.set_feed_fault(fault)
    fresh.gbfs.set_feed_fault(fault)
    gtfs, gbfs = _gtfs_driver(fresh), _gbfs_driver(fresh)
    try:
        with pytest.raises(FeedFormatError) as caught:
            await gtfs.read(_bus_tags(fresh))
        assert all(not s.quality.is_good for s in caught.value.point_samples)
        bikes = _bike_tags(fresh)
        if fault is FeedFault.WRONG_TYPES:
            # station_information is still valid; station_status (counts as strings) is not.
            samples = await gbfs.read(bikes)
            assert all(s.quality.substatus is Substatus.DEVICE_FAILURE for s in samples)
            assert "num_vehicles_available" in samples[0].quality.reason
        else:
            with pytest.raises(DriverError):
                await gbfs.read(bikes)
    finally:
        await gtfs.close()
        await gbfs.close()


async def test_a_huge_body_is_capped(fresh: Feeds) -> None:
    fresh.gtfs.set_feed_fault(FeedFault.HUGE)
    driver = _gtfs_driver(fresh, max_bytes=64 * 1024)
    try:
        with pytest.raises(FeedFormatError, match="cap"):
            await driver.read(_bus_tags(fresh))
    finally:
        await driver.close()


async def test_server_errors_and_a_lost_server(fresh: Feeds, closed_port: int) -> None:
    driver = _gbfs_driver(fresh)
    tags = _bike_tags(fresh)
    try:
        assert all(s.quality.is_good for s in await driver.read(tags))
        fresh.gbfs.device.set_fault(FaultKind.ERROR)
        samples = await driver.read(tags)
        # Young data is kept, Uncertain, with why the refresh failed.
        assert all(s.quality.substatus is Substatus.NO_COMM_LAST_USABLE for s in samples)
        assert "HTTP 500" in samples[0].quality.reason
        fresh.gbfs.device.clear_fault()
        assert all(s.quality.is_good for s in await driver.read(tags))
    finally:
        await driver.close()
    dead = _gbfs_driver(fresh, url=f"http://127.0.0.1:{closed_port}/gbfs/gbfs.json")
    with pytest.raises(NotConnectedError):
        await dead.connect()
    with pytest.raises(NotConnectedError) as caught:
        await dead.read(tags)
    assert all(s.quality.severity is Severity.BAD for s in caught.value.point_samples)
    assert not dead.diagnostics().connected
    await dead.close()


async def test_a_silent_publisher_times_out(fresh: Feeds) -> None:
    fresh.gtfs.device.set_fault(FaultKind.OFFLINE)
    driver = _gtfs_driver(fresh, timeout_s=0.3)
    try:
        with pytest.raises(CommunicationTimeoutError):
            await driver.read(_bus_tags(fresh))
    finally:
        fresh.gtfs.device.clear_fault()
        await driver.close()


async def test_reconnects_after_the_publisher_restarts(fresh: Feeds) -> None:
    driver = _gtfs_driver(fresh)
    tags = _bus_tags(fresh)[:2]
    try:
        assert all(s.quality.is_good for s in await driver.read(tags))
        await fresh.gtfs.restart()
        await fresh.advance(1)
        samples = await driver.read(tags)
        if not all(s.quality.is_good for s in samples):  # a kept-alive socket found closed
            samples = await driver.read(tags)
        assert all(s.quality.is_good for s in samples)
        assert driver.diagnostics().connected
    finally:
        await driver.close()


async def test_feeds_are_read_only_and_polled(fresh: Feeds) -> None:
    driver = _gbfs_driver(fresh)
    tag = _bike_tags(fresh)[0]
    with pytest.raises(DeviceRejectedError):
        await driver.write(
            TagDef(tag.name, tag.device, tag.address, tag.data_type, writable=True), 3
        )
    with pytest.raises(SubscriptionUnsupportedError):
        await driver.subscribe([tag], lambda _: None, interval_s=1)
    await driver.close()
