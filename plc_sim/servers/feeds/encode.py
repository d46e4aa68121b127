"""Feed bodies: GTFS-Realtime FeedMessages (the official bindings) and GBFS 3.0 JSON files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from google.transit import gtfs_realtime_pb2

from plc_sim.mobility.records import StationReport, VehicleReport

GTFS_RT_VERSION = "2.0"
GBFS_VERSION = "3.0"


def _header(message: gtfs_realtime_pb2.FeedMessage, now: datetime) -> None:
    message.header.gtfs_realtime_version = GTFS_RT_VERSION
    message.header.incrementality = gtfs_realtime_pb2.FeedHeader.FULL_DATASET
    message.header.timestamp = int(now.timestamp())


def vehicle_positions(vehicles: Sequence[VehicleReport], now: datetime) -> bytes:
    """A VehiclePositions feed of ``vehicles`` at ``now``."""
    message = gtfs_realtime_pb2.FeedMessage()
    _header(message, now)
    for report in vehicles:
        entity = message.entity.add()
        entity.id = f"vp_{report.vehicle_id}"
        vehicle = entity.vehicle
        vehicle.vehicle.id = report.vehicle_id
        vehicle.trip.trip_id = report.trip_id
        vehicle.trip.route_id = report.route_id
        vehicle.position.latitude = report.lat
        vehicle.position.longitude = report.lon
        vehicle.position.speed = report.speed_mps
        vehicle.position.bearing = report.bearing_deg
        vehicle.stop_id = report.next_stop
        vehicle.current_status = (
            gtfs_realtime_pb2.VehiclePosition.STOPPED_AT
            if report.stopped
            else gtfs_realtime_pb2.VehiclePosition.IN_TRANSIT_TO
        )
        vehicle.timestamp = int(now.timestamp())
    content: bytes = message.SerializeToString()
    return content


def trip_updates(vehicles: Sequence[VehicleReport], now: datetime) -> bytes:
    """A TripUpdates feed: each vehicle's trip, its delay and the next stop's arrival delay."""
    message = gtfs_realtime_pb2.FeedMessage()
    _header(message, now)
    for report in vehicles:
        entity = message.entity.add()
        entity.id = f"tu_{report.trip_id}"
        update = entity.trip_update
        update.trip.trip_id = report.trip_id
        update.trip.route_id = report.route_id
        update.vehicle.id = report.vehicle_id
        update.timestamp = int(now.timestamp())
        update.delay = report.delay_s
        stop = update.stop_time_update.add()
        stop.stop_id = report.next_stop
        stop.arrival.delay = report.delay_s
    content: bytes = message.SerializeToString()
    return content


def _envelope(data: object, now: datetime, ttl_s: int) -> bytes:
    document = {
        "last_updated": now.replace(microsecond=0).isoformat(),
        "ttl": ttl_s,
        "version": GBFS_VERSION,
        "data": data,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def gbfs_discovery(base_url: str, now: datetime, ttl_s: int) -> bytes:
    """``gbfs.json``: the system's files under ``base_url``."""
    names = ("system_information", "station_information", "station_status")
    feeds = [{"name": name, "url": f"{base_url}/{name}.json"} for name in names]
    return _envelope({"feeds": feeds}, now, ttl_s)


def system_information(system_id: str, name: str, tz: str, now: datetime, ttl_s: int) -> bytes:
    """``system_information.json`` with GBFS 3.0's required fields."""
    data = {
        "system_id": system_id,
        "languages": ["en"],
        "name": [{"text": name, "language": "en"}],
        "opening_hours": "24/7",
        "feed_contact_email": "opendata@example.org",
        "timezone": tz,
    }
    return _envelope(data, now, ttl_s)


def station_information(stations: Sequence[StationReport], now: datetime, ttl_s: int) -> bytes:
    """``station_information.json``."""
    data = {
        "stations": [
            {
                "station_id": s.station_id,
                "name": [{"text": s.name, "language": "en"}],
                "lat": round(s.lat, 6),
                "lon": round(s.lon, 6),
                "capacity": s.capacity,
            }
            for s in stations
        ]
    }
    return _envelope(data, now, ttl_s)


def station_status(
    stations: Sequence[StationReport], now: datetime, ttl_s: int, *, wrong_types: bool = False
) -> bytes:
    """``station_status.json``; ``wrong_types`` sends counts as strings (a broken publisher)."""
    data = {
        "stations": [
            {
                "station_id": s.station_id,
                "num_vehicles_available": str(s.bikes) if wrong_types else s.bikes,
                "num_docks_available": s.docks,
                "is_installed": s.installed,
                "is_renting": s.renting,
                "is_returning": s.returning,
                "last_reported": s.last_reported.replace(microsecond=0).isoformat(),
            }
            for s in stations
        ]
    }
    return _envelope(data, now, ttl_s)
