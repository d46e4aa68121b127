"""GTFS-Realtime feeds decoded with the official bindings (``gtfs-realtime-bindings``) into
values by point address (see ``drivers.feeds.address``).

A feed must have a header with ``gtfs_realtime_version`` and a ``timestamp`` (POSIX seconds):
its age is what the values' quality is judged by. Entities with values out of range (a latitude
beyond ±90°, a non-finite speed) lose those values, not the feed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2

from controlcenter.model import Value
from drivers.feeds.http import FeedFormatError

MAX_TIMESTAMP = 32503680000
"""Year 3000: a larger POSIX timestamp is not a plausible feed time."""


@dataclass(frozen=True, slots=True)
class FeedSnapshot:
    """What one feed said at ``timestamp``, valid for ``valid_for_s`` seconds, as values by
    point address."""

    timestamp: datetime
    values: dict[str, Value]
    valid_for_s: float = 0.0


def _message(body: bytes, where: str) -> gtfs_realtime_pb2.FeedMessage:
    message = gtfs_realtime_pb2.FeedMessage()
    try:
        message.ParseFromString(body)
    except DecodeError as err:
        raise FeedFormatError(f"{where}: not a GTFS-Realtime FeedMessage ({err})") from err
    if not message.HasField("header") or not message.header.gtfs_realtime_version:
        raise FeedFormatError(f"{where}: GTFS-Realtime feed without a header")
    stamp = message.header.timestamp
    if not message.header.HasField("timestamp") or not 0 < stamp < MAX_TIMESTAMP:
        raise FeedFormatError(f"{where}: GTFS-Realtime header has no usable timestamp ({stamp})")
    return message


def _timestamp(message: gtfs_realtime_pb2.FeedMessage) -> datetime:
    return datetime.fromtimestamp(message.header.timestamp, UTC)


def decode_vehicle_positions(body: bytes, where: str) -> FeedSnapshot:
    """Values of a VehiclePositions feed:
    ``vehicle:<id>:lat|lon|speed|bearing|stopped|trip|route``."""
    message = _message(body, where)
    values: dict[str, Value] = {}
    for entity in message.entity:
        if not entity.HasField("vehicle"):
            continue
        vehicle = entity.vehicle
        ident = vehicle.vehicle.id or entity.id
        prefix = f"vehicle:{ident}:"
        if vehicle.HasField("position"):
            position = vehicle.position
            lat, lon = float(position.latitude), float(position.longitude)
            if math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180:
                values[prefix + "lat"] = lat
                values[prefix + "lon"] = lon
            if position.HasField("speed") and math.isfinite(position.speed) and position.speed >= 0:
                values[prefix + "speed"] = float(position.speed)
            if position.HasField("bearing") and 0 <= position.bearing <= 360:
                values[prefix + "bearing"] = float(position.bearing)
        if vehicle.HasField("current_status"):
            stopped = vehicle.current_status == gtfs_realtime_pb2.VehiclePosition.STOPPED_AT
            values[prefix + "stopped"] = stopped
        if vehicle.trip.trip_id:
            values[prefix + "trip"] = vehicle.trip.trip_id
        if vehicle.trip.route_id:
            values[prefix + "route"] = vehicle.trip.route_id
    return FeedSnapshot(_timestamp(message), values)


def _trip_delay(update: gtfs_realtime_pb2.TripUpdate) -> int | None:
    """The trip's delay: its own ``delay``, else that of its first stop time update."""
    if update.HasField("delay"):
        return int(update.delay)
    for stop in update.stop_time_update:
        for event in (stop.arrival, stop.departure):
            if event.HasField("delay"):
                return int(event.delay)
    return None


def decode_trip_updates(
    body: bytes, where: str, *, early_s: int = 60, late_s: int = 300
) -> FeedSnapshot:
    """Values of a TripUpdates feed: ``trip:<id>:delay_s``, ``vehicle:<id>:delay_s``,
    ``route:<id>:on_time_share`` and ``route:<id>:trips``."""
    message = _message(body, where)
    values: dict[str, Value] = {}
    on_time: dict[str, list[bool]] = defaultdict(list)
    for entity in message.entity:
        if not entity.HasField("trip_update"):
            continue
        update = entity.trip_update
        delay = _trip_delay(update)
        trip_id = update.trip.trip_id
        if delay is None:
            continue
        if trip_id:
            values[f"trip:{trip_id}:delay_s"] = delay
        if update.vehicle.id:
            values[f"vehicle:{update.vehicle.id}:delay_s"] = delay
        if update.trip.route_id:
            on_time[update.trip.route_id].append(-early_s <= delay <= late_s)
    for route, flags in on_time.items():
        values[f"route:{route}:on_time_share"] = sum(flags) / len(flags)
        values[f"route:{route}:trips"] = len(flags)
    return FeedSnapshot(_timestamp(message), values)
