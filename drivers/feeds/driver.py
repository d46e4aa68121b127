"""The feed drivers: GTFS-Realtime and GBFS publishers polled over HTTP, one device each.

A read fetches every feed the device has (conditionally: a publisher with nothing new answers
304), decodes what is new and answers each point from the last snapshot accepted. Quality comes
from the feed's own timestamp (``drivers.feeds.freshness``): a feed that stops being updated
turns Uncertain, then Bad, however fast its server answers. A failed fetch leaves the last
snapshot in use, Uncertain (no_comm_last_usable) while it is young enough, so one lost request
does not blank a display; with no snapshot at all, the read fails as a whole.

A feed whose timestamp goes backwards is refused (the older snapshot is not taken over the
newer one), as is a malformed body (truncated protobuf, JSON of the wrong types) or one above
the size cap: the snapshot kept ages instead. Feeds are read-only: every write is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

import httpx

from controlcenter.model import DataType, Quality, Sample, Severity, Substatus, TagDef, Value
from controlcenter.ports import Clock
from drivers.base import (
    AddressError,
    DeviceRejectedError,
    DriverDiagnostics,
    DriverError,
    SampleCallback,
    SubscriptionUnsupportedError,
)
from drivers.feeds.address import (
    FeedAddress,
    check_compatible,
    parse_gbfs_address,
    parse_gtfs_address,
)
from drivers.feeds.config import Freshness, GbfsConfig, GtfsRealtimeConfig, HttpSettings
from drivers.feeds.freshness import feed_quality
from drivers.feeds.gbfs import (
    Discovery,
    decode_discovery,
    decode_station_information,
    decode_station_status,
)
from drivers.feeds.gtfs_rt import FeedSnapshot, decode_trip_updates, decode_vehicle_positions
from drivers.feeds.http import FeedFetcher, FeedFormatError, FetchResult
from drivers.health import DriverHealth

_log = logging.getLogger(__name__)

Decoder = Callable[[bytes, str], FeedSnapshot]


class PolledFeed:
    """One feed URL: how it is fetched and decoded, the snapshot accepted last and whether the
    last refresh failed."""

    def __init__(self, name: str, url: str | None, decode: Decoder, max_bytes: int) -> None:
        """``url`` None: not known yet (a GBFS file before ``gbfs.json`` names it)."""
        self.name = name
        self.fetcher: FeedFetcher | None = None if url is None else FeedFetcher(url, max_bytes)
        self._decode = decode
        self._max_bytes = max_bytes
        self.snapshot: FeedSnapshot | None = None
        self.error: DriverError | None = None
        """Why the last refresh failed (None: it succeeded)."""
        self._body_error: FeedFormatError | None = None
        """Why the body kept by the fetcher was refused: a 304 repeats the refusal."""

    @property
    def url(self) -> str:
        """Where the feed is fetched from (``unknown`` before it is known)."""
        return "unknown" if self.fetcher is None else self.fetcher.url

    def moved(self, url: str) -> None:
        """The publisher now names another URL for this feed."""
        if self.fetcher is None or url != self.fetcher.url:
            self.fetcher = FeedFetcher(url, self._max_bytes)
            self._body_error = None

    async def refresh(self, client: httpx.AsyncClient) -> None:
        """Fetch and decode; raise a DriverError (also kept in ``error``) when that fails."""
        try:
            if self.fetcher is None:
                raise DeviceRejectedError(f"no URL known for the {self.name} feed")
            self._refresh(await self.fetcher.fetch(client))
        except DriverError as err:
            self.error = err
            raise
        self.error = None

    def _refresh(self, result: FetchResult) -> None:
        if not result.fresh:
            if self._body_error is not None:
                raise self._body_error
            return
        where = f"{self.name} feed {self.url}"
        try:
            snapshot = self._decode(result.body, where)
            accepted = self.snapshot
            if accepted is not None and snapshot.timestamp < accepted.timestamp:
                raise FeedFormatError(
                    f"{where}: timestamp went backwards ({snapshot.timestamp.isoformat()}"
                    f" before {accepted.timestamp.isoformat()}): kept the newer snapshot"
                )
        except FeedFormatError as err:
            self._body_error = err
            raise
        self._body_error = None
        self.snapshot = snapshot


class _FeedDriver:
    """What both feed drivers share: the HTTP client, refreshes, samples and health."""

    protocol = "feed"

    def __init__(
        self,
        device: str,
        clock: Clock,
        http: HttpSettings,
        freshness: Freshness,
        parse: Callable[[str], FeedAddress],
    ) -> None:
        self._device = device
        self._clock = clock
        self._http = http
        self._freshness = freshness
        self._parse = parse
        self._client: httpx.AsyncClient | None = None
        self._health = DriverHealth(device, _log)
        self._parsed: tuple[Sequence[TagDef], list[FeedAddress | AddressError]] | None = None

    @property
    def device(self) -> str:
        """Name of the device this driver talks to."""
        return self._device

    @property
    def connected(self) -> bool:
        """Whether the last refresh reached the publisher."""
        return self._client is not None and self._health.available is True

    def _feeds(self) -> Sequence[PolledFeed]:
        raise NotImplementedError

    def _feed_for(self, address: FeedAddress) -> PolledFeed | None:
        raise NotImplementedError

    def _ensure_client(self) -> httpx.AsyncClient:
        if self._client is None:
            # No proxies or netrc from the environment: the center talks to the publisher only.
            self._client = httpx.AsyncClient(
                timeout=self._http.timeout_s,
                follow_redirects=False,
                trust_env=False,
                headers={"Accept-Encoding": "gzip, deflate"},
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
            )
        return self._client

    async def connect(self) -> None:
        """Fetch every feed once; raise the first failure when no feed could be read."""
        failures = await self._refresh(self._ensure_client())
        if failures and all(feed.snapshot is None for feed in self._feeds()):
            raise failures[0]

    async def close(self) -> None:
        """Close the HTTP client; never raises."""
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except (httpx.HTTPError, OSError) as err:  # closing must not fail a shutdown
                _log.debug("%s: closing the HTTP client: %s", self._device, err)

    async def _refresh(self, client: httpx.AsyncClient) -> list[DriverError]:
        """Refresh every feed at once; return the failures (counted and logged once)."""
        feeds = self._feeds()
        for _ in feeds:
            self._health.count_request()
        results = await asyncio.gather(
            *(feed.refresh(client) for feed in feeds), return_exceptions=True
        )
        failures: list[DriverError] = []
        for result in results:
            if isinstance(result, DriverError):
                failures.append(self._health.failed(result, result.__cause__))
            elif isinstance(result, BaseException):
                raise result
        if len(failures) < len(feeds):
            self._health.mark_available(self._device)
        return failures

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        """Refresh the feeds and answer every point from the last accepted snapshots."""
        failures = await self._refresh(self._ensure_client())
        now = self._clock.now()
        samples = [self._sample(tag, address, now) for tag, address in self._addresses(points)]
        if failures and all(feed.snapshot is None for feed in self._feeds()):
            error = failures[0]
            error.point_samples = tuple(samples)
            raise error
        return samples

    def _addresses(
        self, points: Sequence[TagDef]
    ) -> list[tuple[TagDef, FeedAddress | AddressError]]:
        cached = self._parsed
        if cached is None or cached[0] is not points:
            parsed: list[FeedAddress | AddressError] = []
            for tag in points:
                try:
                    address = self._parse(tag.address)
                    check_compatible(address, tag.data_type)
                    parsed.append(address)
                except AddressError as err:
                    parsed.append(err)
            cached = (points, parsed)
            self._parsed = cached
        return list(zip(cached[0], cached[1], strict=True))

    def _sample(self, tag: TagDef, address: FeedAddress | AddressError, now: datetime) -> Sample:
        if isinstance(address, AddressError):
            return _bad(tag, Substatus.CONFIG_ERROR, f"{tag.address!r}: {address}", now)
        feed = self._feed_for(address)
        if feed is None:
            return _bad(
                tag, Substatus.CONFIG_ERROR, f"{self._device} has no feed for {address}", now
            )
        snapshot = feed.snapshot
        if snapshot is None:
            error = feed.error
            if error is None:
                return _bad(tag, Substatus.WAITING_FOR_INITIAL_DATA, "feed not read yet", now)
            return _bad(tag, error.substatus, str(error), now)
        value = snapshot.values.get(str(address))
        if value is None:
            reason = f"{address.entity} {address.id} not in the {feed.name} feed"
            return _bad(tag, Substatus.OUT_OF_SERVICE, reason, now)
        quality = feed_quality(snapshot.timestamp, snapshot.valid_for_s, now, self._freshness)
        if feed.error is not None and quality.severity is not Severity.BAD:
            reason = f"last fetch failed: {feed.error}"
            if not quality.is_good:
                reason = f"{quality.reason}; {reason}"
            quality = Quality.uncertain(Substatus.NO_COMM_LAST_USABLE, reason)
        if quality.severity is Severity.BAD:
            return Sample(tag.name, None, quality, snapshot.timestamp, now)
        return Sample(tag.name, _engineering(tag, value), quality, snapshot.timestamp, now)

    async def subscribe(
        self, points: Sequence[TagDef], callback: SampleCallback, *, interval_s: float
    ) -> None:
        """Feeds are polled (HTTP GET): always refused."""
        raise SubscriptionUnsupportedError(f"{self._device}: {self.protocol} feeds are polled")

    async def write(self, point: TagDef, value: Value, *, priority: int | None = None) -> Value:
        """Feeds are published, not commanded: every write is refused."""
        reason = f"{self._device}: {point.name}: a {self.protocol} feed is read-only"
        self._health.count_error(Substatus.DEVICE_FAILURE.value, reason)
        raise DeviceRejectedError(reason)

    def diagnostics(self) -> DriverDiagnostics:
        """Request and error counts, the last error and whether the publisher answered."""
        return self._health.snapshot(self.connected)


class GtfsRealtimeDriver(_FeedDriver):
    """A GTFS-Realtime publisher's VehiclePositions and TripUpdates feeds."""

    protocol = "GTFS-Realtime"

    def __init__(self, device: str, config: GtfsRealtimeConfig, clock: Clock) -> None:
        """Poll ``config``'s feeds; stamp samples with ``clock``."""
        super().__init__(device, clock, config.http, config.freshness, parse_gtfs_address)
        self._config = config
        self._positions: PolledFeed | None = None
        self._trips: PolledFeed | None = None
        max_bytes = config.http.max_bytes
        if config.vehicle_positions_url is not None:
            self._positions = PolledFeed(
                "vehicle positions",
                config.vehicle_positions_url,
                decode_vehicle_positions,
                max_bytes,
            )
        if config.trip_updates_url is not None:

            def decode_trips(body: bytes, where: str) -> FeedSnapshot:
                return decode_trip_updates(
                    body, where, early_s=config.on_time_early_s, late_s=config.on_time_late_s
                )

            self._trips = PolledFeed(
                "trip updates", config.trip_updates_url, decode_trips, max_bytes
            )
        self._all = tuple(feed for feed in (self._positions, self._trips) if feed is not None)

    def _feeds(self) -> Sequence[PolledFeed]:
        return self._all

    def _feed_for(self, address: FeedAddress) -> PolledFeed | None:
        # Delays and route punctuality are in TripUpdates; the rest in VehiclePositions.
        if address.field == "delay_s" or address.entity in ("trip", "route"):
            return self._trips
        return self._positions


class GbfsDriver(_FeedDriver):
    """A GBFS 3.0 system: its stations' status and information, found through ``gbfs.json``."""

    protocol = "GBFS"

    def __init__(self, device: str, config: GbfsConfig, clock: Clock) -> None:
        """Discover ``config``'s files and poll them; stamp samples with ``clock``."""
        super().__init__(device, clock, config.http, config.freshness, parse_gbfs_address)
        self._config = config
        max_bytes = config.http.max_bytes
        self._discovery_feed = FeedFetcher(config.discovery_url, max_bytes)
        self._discovery: Discovery | None = None
        self._status = PolledFeed("station_status", None, decode_station_status, max_bytes)
        self._information = PolledFeed(
            "station_information", None, decode_station_information, max_bytes
        )
        self._both = (self._status, self._information)

    def _feeds(self) -> Sequence[PolledFeed]:
        return self._both

    def _feed_for(self, address: FeedAddress) -> PolledFeed | None:
        if address.field in ("lat", "lon", "capacity"):
            return self._information
        return self._status

    async def _refresh(self, client: httpx.AsyncClient) -> list[DriverError]:
        """Read ``gbfs.json`` when it is due (first, expired, or a file failed), then the files."""
        discovery = self._discovery
        due = (
            discovery is None
            or any(feed.error is not None for feed in self._both)
            or (self._clock.now() - discovery.last_updated).total_seconds() > discovery.ttl
        )
        if due:
            self._health.count_request()
            try:
                result = await self._discovery_feed.fetch(client)
                discovery = decode_discovery(result.body, f"GBFS {self._config.discovery_url}")
            except DriverError as err:
                failed = self._health.failed(err, err.__cause__)
                if self._discovery is None:
                    for feed in self._both:
                        feed.error = failed
                    return [failed]
            else:
                self._discovery = discovery
                for feed in self._both:
                    url = discovery.url_of(feed.name)
                    if url is not None:
                        feed.moved(url)
        return await super()._refresh(client)


def _bad(tag: TagDef, substatus: Substatus, reason: str, now: datetime) -> Sample:
    return Sample(tag.name, None, Quality.bad(substatus, reason), now, now)


def _engineering(tag: TagDef, value: Value) -> Value:
    """A feed value as the tag's type, scaled (a count read into a float tag is a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if tag.scale != 1.0 or tag.offset != 0.0:
        scaled = value * tag.scale + tag.offset
        return round(scaled) if tag.data_type is DataType.INT else float(scaled)
    if tag.data_type is DataType.FLOAT:
        return float(value)
    return value
