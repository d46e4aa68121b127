"""GTFS-Realtime and GBFS publishers over HTTP/1.1 (asyncio streams, port 0 for any free port).

Each answer carries an ``ETag`` (a hash of the body) and a ``Last-Modified`` (the feed's own
time); a GET with a matching ``If-None-Match``, or without one and an ``If-Modified-Since`` not
before ``Last-Modified``, answers 304 with no body (RFC 9110 13.1). Bodies are rebuilt by
``publish()`` at most every ``update_interval_s`` simulated seconds, as real publishers refresh
theirs, so a poller sees 304s in between.

Device faults (``device.faults``): offline → requests are held unanswered; refusing → nothing
listens until it clears; slow → answers after ``delay_s``; error → ``500 Internal Server
Error`` (or ``error_code`` when it is an HTTP status 400-599); stuck → the feed goes stale: its
bodies and timestamps stop changing. Feed faults (``set_feed_fault``): ``stale`` as stuck;
``truncated`` cuts every body in half (a valid HTTP answer carrying a broken feed);
``wrong_types`` sends GBFS counts as strings and GTFS-Realtime bytes that are no protobuf;
``clock_back`` stamps the feed an hour in the past; ``huge`` pads every body to
``HUGE_BYTES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from enum import StrEnum
from typing import Protocol

from plc_sim.device import FaultKind, SimDevice
from plc_sim.domain import DeviceServerBase
from plc_sim.mobility.records import StationReport, VehicleReport
from plc_sim.servers.feeds import encode

_log = logging.getLogger(__name__)

HUGE_BYTES = 20 * 1024 * 1024
MAX_REQUEST_LINE = 8192
MAX_HEADERS = 64
_FAULT_POLL_S = 0.05
_REASONS = {200: "OK", 304: "Not Modified", 404: "Not Found", 405: "Method Not Allowed"}


class FeedFault(StrEnum):
    """Faults of a feed's content (the device's faults cover the transport)."""

    STALE = "stale"
    TRUNCATED = "truncated"
    WRONG_TYPES = "wrong_types"
    CLOCK_BACK = "clock_back"
    HUGE = "huge"


@dataclass(frozen=True, slots=True)
class _Body:
    content: bytes
    content_type: str
    etag: str
    last_modified: str
    modified_at: datetime


def _body(content: bytes, content_type: str, at: datetime) -> _Body:
    etag = '"' + hashlib.sha256(content).hexdigest()[:24] + '"'
    whole = at.replace(microsecond=0)
    return _Body(content, content_type, etag, format_datetime(whole, usegmt=True), whole)


def _not_modified(body: _Body, headers: dict[str, str]) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or body.etag in tags
    since = headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    return when.tzinfo is not None and when >= body.modified_at


class FeedServerBase(DeviceServerBase):
    """An HTTP publisher of one device's feed files."""

    protocol_label = "feed"

    def __init__(
        self,
        device: SimDevice,
        clock: Callable[[], datetime],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        update_interval_s: float = 15.0,
    ) -> None:
        super().__init__(device, host, port)
        self._clock = clock
        self._update_interval_s = update_interval_s
        self._server: asyncio.Server | None = None
        self._running = False
        self._bodies: dict[str, _Body] = {}
        self._built_at: datetime | None = None
        self._feed_fault: FeedFault | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self.requests = 0
        """Requests answered (304s included), for tests and benchmarks."""
        self.not_modified = 0
        """Of them, answered 304."""

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self._host}:{self.port}"

    def set_feed_fault(self, fault: FeedFault | None) -> None:
        """Give the feed's content a fault (None: clear it); takes effect at once."""
        self._feed_fault = fault
        self._built_at = None
        if fault is not FeedFault.STALE:
            self._rebuild(force=True)

    def _stale(self) -> bool:
        return self._feed_fault is FeedFault.STALE or self._device.faults.has(FaultKind.STUCK)

    def _feed_time(self) -> datetime:
        now = self._clock()
        if self._feed_fault is FeedFault.CLOCK_BACK:
            return now - timedelta(hours=1)
        return now

    def _files(self, now: datetime) -> dict[str, tuple[bytes, str]]:
        """Path → (content, content type) of every file at ``now``."""
        raise NotImplementedError

    def _rebuild(self, *, force: bool = False) -> None:
        if self._stale() and self._bodies and not force:
            return
        now = self._clock()
        built = self._built_at
        if (
            not force
            and built is not None
            and (now - built).total_seconds() < self._update_interval_s
        ):
            return
        self._built_at = now
        at = self._feed_time()
        fault = self._feed_fault
        bodies: dict[str, _Body] = {}
        for path, (whole, content_type) in self._files(at).items():
            content = whole
            if fault is FeedFault.TRUNCATED:
                content = whole[: len(whole) // 2]
            elif fault is FeedFault.HUGE:
                content = whole + b" " * max(0, HUGE_BYTES - len(whole))
            bodies[path] = _body(content, content_type, at)
        self._bodies = bodies

    async def start(self) -> None:
        """Build the feed and listen (on the port bound before, after a restart)."""
        self._rebuild(force=True)
        self._running = True
        await self._listen()

    async def _listen(self) -> None:
        server = await asyncio.start_server(
            self._serve, self._host, self._bound_port or self._requested_port
        )
        self._server = server
        self._bound_port = server.sockets[0].getsockname()[1]

    async def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for writer in list(self._connections):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    async def stop(self) -> None:
        """Stop listening and drop every client; idempotent, never raises."""
        self._running = False
        await self._close_listener()

    async def restart(self) -> None:
        """Drop every client and listen again on the same port."""
        await self._close_listener()
        if self._running:
            await self._listen()

    async def publish(self) -> None:
        """Rebuild the feed when due and follow the refusing fault."""
        refusing = self._device.faults.has(FaultKind.REFUSING)
        if self._running and refusing and self._server is not None:
            await self._close_listener()
        elif self._running and not refusing and self._server is None:
            await self._listen()
        self._rebuild()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ValueError as err:  # an over-long line (StreamReader's limit)
            _log.debug("%s: bad request: %s", self._device.name, err)
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection is to close."""
        line = await reader.readline()
        if not line:
            return False
        if len(line) > MAX_REQUEST_LINE:
            return False
        parts = line.decode("latin-1").split()
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, sep, value = header.decode("latin-1").partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        else:
            return False
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._answer(writer, 400, b"bad request\n", {}, head=False)
            return False
        method, target, _ = parts
        keep = headers.get("connection", "").lower() != "close" and parts[2] == "HTTP/1.1"
        faults = self._device.faults
        # Held while offline (a hung publisher never answers); the fault is a plain flag set
        # from anywhere, so it is polled.
        while faults.has(FaultKind.OFFLINE):  # noqa: ASYNC110
            await asyncio.sleep(_FAULT_POLL_S)
        if faults.has(FaultKind.SLOW):
            await asyncio.sleep(faults.delay_s)
        self.requests += 1
        if faults.has(FaultKind.ERROR):
            code = (
                faults.error_code if faults.error_code and 400 <= faults.error_code < 600 else 500
            )
            await self._answer(writer, code, b"publisher error\n", {}, head=False)
            return keep
        if method not in ("GET", "HEAD"):
            await self._answer(writer, 405, b"", {"Allow": "GET, HEAD"}, head=False)
            return keep
        body = self._bodies.get(target.split("?", 1)[0])
        if body is None:
            await self._answer(writer, 404, b"not found\n", {}, head=method == "HEAD")
            return keep
        validators = {"ETag": body.etag, "Last-Modified": body.last_modified}
        if _not_modified(body, headers):
            self.not_modified += 1
            await self._answer(writer, 304, b"", validators, head=True)
            return keep
        validators["Content-Type"] = body.content_type
        await self._answer(writer, 200, body.content, validators, head=method == "HEAD")
        return keep

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        content: bytes,
        headers: dict[str, str],
        *,
        head: bool,
    ) -> None:
        reason = _REASONS.get(status, "Error")
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if status != 304:
            lines.append(f"Content-Length: {len(content)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head and status != 304:
            writer.write(content)
        await writer.drain()


class VehicleSource(Protocol):
    """What a GTFS-Realtime publisher reports (``plc_sim.mobility.buses.BusNetwork``)."""

    def reports(self) -> Sequence[VehicleReport]:
        """Every vehicle now."""
        ...

    def addresses(self) -> dict[str, str]:
        """Tag → point address of the device's points."""
        ...


class StationSource(Protocol):
    """What a GBFS publisher reports (``plc_sim.mobility.bikes.BikeShare``)."""

    def reports(self) -> Sequence[StationReport]:
        """Every station now."""
        ...

    def addresses(self) -> dict[str, str]:
        """Tag → point address of the device's points."""
        ...


class GtfsRealtimeServer(FeedServerBase):
    """Serves ``/gtfs-rt/vehicle_positions.pb`` and ``/gtfs-rt/trip_updates.pb``."""

    protocol_label = "GTFS-Realtime"
    VEHICLE_POSITIONS = "/gtfs-rt/vehicle_positions.pb"
    TRIP_UPDATES = "/gtfs-rt/trip_updates.pb"

    def __init__(
        self,
        device: SimDevice,
        source: VehicleSource,
        clock: Callable[[], datetime],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        update_interval_s: float = 15.0,
    ) -> None:
        """Publish ``source``'s vehicles as ``device``'s feed."""
        super().__init__(device, clock, host, port, update_interval_s=update_interval_s)
        self._source = source

    @property
    def vehicle_positions_url(self) -> str:
        """URL of the VehiclePositions feed."""
        return self.base_url + self.VEHICLE_POSITIONS

    @property
    def trip_updates_url(self) -> str:
        """URL of the TripUpdates feed."""
        return self.base_url + self.TRIP_UPDATES

    def _files(self, now: datetime) -> dict[str, tuple[bytes, str]]:
        kind = "application/x-protobuf"
        if self._feed_fault is FeedFault.WRONG_TYPES:
            garbage = b"\xff\xff\xff\xff not a protobuf"
            return {self.VEHICLE_POSITIONS: (garbage, kind), self.TRIP_UPDATES: (garbage, kind)}
        reports = self._source.reports()
        return {
            self.VEHICLE_POSITIONS: (encode.vehicle_positions(reports, now), kind),
            self.TRIP_UPDATES: (encode.trip_updates(reports, now), kind),
        }

    def addresses(self) -> dict[str, str]:
        """Tag → GTFS-Realtime point address."""
        return self._source.addresses()


class GbfsServer(FeedServerBase):
    """Serves a GBFS 3.0 system under ``/gbfs/`` (``gbfs.json`` and the files it names)."""

    protocol_label = "GBFS"

    def __init__(
        self,
        device: SimDevice,
        source: StationSource,
        clock: Callable[[], datetime],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        update_interval_s: float = 15.0,
        ttl_s: int = 60,
        tz: str = "Europe/Amsterdam",
    ) -> None:
        """Publish ``source``'s stations as ``device``'s feed, each file valid ``ttl_s``."""
        super().__init__(device, clock, host, port, update_interval_s=update_interval_s)
        self._source = source
        self._ttl_s = ttl_s
        self._tz = tz

    @property
    def discovery_url(self) -> str:
        """URL of ``gbfs.json``."""
        return self.base_url + "/gbfs/gbfs.json"

    def _files(self, now: datetime) -> dict[str, tuple[bytes, str]]:
        kind = "application/json"
        base = f"http://{self._host}:{self._bound_port or self._requested_port}/gbfs"
        reports = self._source.reports()
        ttl = self._ttl_s
        wrong = self._feed_fault is FeedFault.WRONG_TYPES
        return {
            "/gbfs/gbfs.json": (encode.gbfs_discovery(base, now, ttl), kind),
            "/gbfs/system_information.json": (
                encode.system_information(
                    self._device.name, "City bike share", self._tz, now, 86_400
                ),
                kind,
            ),
            "/gbfs/station_information.json": (
                encode.station_information(reports, now, ttl),
                kind,
            ),
            "/gbfs/station_status.json": (
                encode.station_status(reports, now, ttl, wrong_types=wrong),
                kind,
            ),
        }

    async def start(self) -> None:
        """Listen first: ``gbfs.json`` names the files by the bound port."""
        self._running = True
        await self._listen()
        self._rebuild(force=True)

    def addresses(self) -> dict[str, str]:
        """Tag → GBFS point address."""
        return self._source.addresses()
