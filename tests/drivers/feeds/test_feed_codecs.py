"""Feed addresses, freshness and the decoders, fed hostile bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from google.transit import gtfs_realtime_pb2

from controlcenter.model import DataType, Severity, Substatus
from drivers.base import AddressError
from drivers.feeds.address import parse_gtfs_address, validate_gbfs_address, validate_gtfs_address
from drivers.feeds.config import Freshness, GtfsRealtimeConfig
from drivers.feeds.freshness import feed_quality
from drivers.feeds.gbfs import decode_discovery, decode_station_status
from drivers.feeds.gtfs_rt import decode_trip_updates, decode_vehicle_positions
from drivers.feeds.http import FeedFormatError

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_addresses_parse_and_check_types() -> None:
    address = parse_gtfs_address("vehicle:agency:bus:7:lat")
    assert (address.entity, address.id, address.field) == ("vehicle", "agency:bus:7", "lat")
    validate_gtfs_address("route:l1:on_time_share", DataType.FLOAT)
    validate_gtfs_address("trip:t1:delay_s", DataType.FLOAT)  # a count into a float tag
    validate_gbfs_address("station:s1:renting", DataType.BOOL)
    for bad, kind in [
        ("vehicle:b1", DataType.FLOAT),
        ("bus:b1:lat", DataType.FLOAT),
        ("vehicle::lat", DataType.FLOAT),
        ("vehicle:b 1:lat", DataType.FLOAT),
        ("vehicle:b1:colour", DataType.FLOAT),
        ("vehicle:b1:lat", DataType.BOOL),
        ("vehicle:b1:delay_s", DataType.BOOL),
        ("vehicle:" + "x" * 200 + ":lat", DataType.FLOAT),
    ]:
        with pytest.raises(AddressError):
            validate_gtfs_address(bad, kind)
    with pytest.raises(AddressError):
        validate_gbfs_address("station:s1:bikes", DataType.STRING)


def test_freshness_goes_good_uncertain_bad_and_flags_the_future() -> None:
    rules = Freshness(uncertain_after_s=60, bad_after_s=300)
    assert feed_quality(NOW - timedelta(seconds=80), 30, NOW, rules).is_good
    stale = feed_quality(NOW - timedelta(seconds=200), 30, NOW, rules)
    assert stale.severity is Severity.UNCERTAIN and stale.substatus is Substatus.LAST_USABLE
    assert feed_quality(NOW - timedelta(seconds=400), 30, NOW, rules).severity is Severity.BAD
    ahead = feed_quality(NOW + timedelta(hours=1), 0, NOW, rules)
    assert ahead.substatus is Substatus.SENSOR_NOT_ACCURATE
    with pytest.raises(ValueError):
        Freshness(uncertain_after_s=300, bad_after_s=60)
    with pytest.raises(ValueError):
        GtfsRealtimeConfig("file:///etc/passwd", None)


def _message(stamp: int = int(NOW.timestamp())) -> gtfs_realtime_pb2.FeedMessage:
    message = gtfs_realtime_pb2.FeedMessage()
    message.header.gtfs_realtime_version = "2.0"
    message.header.timestamp = stamp
    return message


def test_vehicle_positions_drop_impossible_values_not_the_feed() -> None:
    message = _message()
    good = message.entity.add(id="1").vehicle
    good.vehicle.id = "b1"
    good.position.latitude, good.position.longitude = 52.1, 4.2
    good.position.speed = 5.0
    good.current_status = gtfs_realtime_pb2.VehiclePosition.STOPPED_AT
    wild = message.entity.add(id="2").vehicle
    wild.vehicle.id = "b2"
    wild.position.latitude, wild.position.longitude = 123.0, 4.2
    wild.position.speed = float("nan")
    snapshot = decode_vehicle_positions(message.SerializeToString(), "test")
    assert snapshot.timestamp == NOW
    assert snapshot.values["vehicle:b1:lat"] == pytest.approx(52.1)
    assert snapshot.values["vehicle:b1:stopped"] is True
    assert "vehicle:b2:lat" not in snapshot.values
    assert "vehicle:b2:speed" not in snapshot.values


def test_trip_updates_give_delays_and_route_punctuality() -> None:
    message = _message()
    for index, delay in enumerate((30, 400, -30, -200)):
        update = message.entity.add(id=str(index)).trip_update
        update.trip.trip_id, update.trip.route_id = f"t{index}", "l1"
        update.vehicle.id = f"b{index}"
        update.stop_time_update.add().arrival.delay = delay
    values = decode_trip_updates(message.SerializeToString(), "test").values
    assert values["trip:t1:delay_s"] == 400
    assert values["vehicle:b3:delay_s"] == -200
    assert values["route:l1:on_time_share"] == pytest.approx(0.5)
    assert values["route:l1:trips"] == 4


@pytest.mark.parametrize(
    "body",
    [
        b"",  # no header
        _message().SerializeToString()[:5],  # truncated
        b"\xff\xff\xff\xff garbage",
        _message(stamp=0).SerializeToString(),  # no usable timestamp
        _message(stamp=2**62).SerializeToString(),
    ],
)
def test_broken_gtfs_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(FeedFormatError):
        decode_vehicle_positions(body, "test")


def _status(**station: object) -> bytes:
    base: dict[str, object] = {
        "station_id": "s1",
        "num_vehicles_available": 3,
        "num_docks_available": 7,
        "is_installed": True,
        "is_renting": True,
        "is_returning": False,
        "last_reported": "2026-03-02T08:00:00+00:00",
    }
    base.update(station)
    document = {"last_updated": "2026-03-02T08:00:00Z", "ttl": 60, "version": "3.0"}
    return json.dumps({**document, "data": {"stations": [base]}}).encode()


def test_station_status_decodes_and_refuses_wrong_types() -> None:
    snapshot = decode_station_status(_status(), "test")
    assert snapshot.values == {
        "station:s1:bikes": 3,
        "station:s1:docks": 7,
        "station:s1:renting": True,
        "station:s1:returning": False,
        "station:s1:installed": True,
    }
    assert snapshot.valid_for_s == 60
    for broken in (
        _status(num_vehicles_available="3"),
        _status(is_renting=1),
        _status(num_docks_available=-1),
        _status(last_reported="yesterday"),
        _status(last_reported="2026-03-02T08:00:00"),  # no offset
        b'{"last_updated": 1, "ttl": 60}',
        b"not json",
    ):
        with pytest.raises(FeedFormatError):
            decode_station_status(broken, "test")


def test_discovery_refuses_non_http_links() -> None:
    document = {
        "last_updated": "2026-03-02T08:00:00Z",
        "ttl": 60,
        "version": "3.0",
        "data": {"feeds": [{"name": "station_status", "url": "file:///etc/passwd"}]},
    }
    with pytest.raises(FeedFormatError):
        decode_discovery(json.dumps(document).encode(), "test")
