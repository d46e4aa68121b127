"""Feed devices in the site file: validated with their addresses, built into drivers."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlcenter.clock import WallClock
from controlcenter.runtime.app import build_driver, scan_timeout
from controlcenter.site.config import load_site
from controlcenter.site.yamlsource import SourceFileError
from drivers.feeds import GbfsDriver, GtfsRealtimeDriver

SITE = """site: {name: Feeds, latitude: 52.0, longitude: 5.0, timezone: Europe/Amsterdam}
devices:
  - {name: mobility.bus_feed, protocol: gtfs_realtime, endpoint: "http://127.0.0.1:8081",
     trip_updates: null, scan_interval: 10}
  - {name: mobility.bike_feed, protocol: gbfs, endpoint: "http://127.0.0.1:8082/",
     discovery: "https://bikes.example.org/gbfs.json", uncertain_after: 30, bad_after: 90}
tags:
  - {name: mobility.bus.b1.lat, device: mobility.bus_feed, address: "vehicle:b1:lat",
     data_type: float}
  - {name: mobility.bikes.s1.bikes, device: mobility.bike_feed, address: "station:s1:bikes",
     data_type: int}
"""


def test_feed_devices_load_and_build_their_drivers(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    site = load_site(path, tmp_path)
    clock = WallClock()
    buses = build_driver(site.device("mobility.bus_feed"), clock)
    bikes = build_driver(site.device("mobility.bike_feed"), clock)
    assert isinstance(buses, GtfsRealtimeDriver)
    assert isinstance(bikes, GbfsDriver)
    assert [feed.url for feed in buses._feeds()] == [
        "http://127.0.0.1:8081/gtfs-rt/vehicle_positions.pb"
    ]
    assert scan_timeout(site.device("mobility.bike_feed")) > 2 * 5.0


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"vehicle:b1:lat"', '"vehicle:b1:colour"', "no field"),
        ("data_type: int", "data_type: bool", "delivers int"),
        ('"http://127.0.0.1:8081"', '"ftp://127.0.0.1"', "endpoint"),
        ("bad_after: 90", "bad_after: 10", "uncertain_after"),
        ("trip_updates: null", "trip_updates: null, vehicle_positions: null", "both"),
        ('"https://bikes.example.org/gbfs.json"', '"gbfs.json"', "discovery"),
    ],
)
def test_bad_feed_settings_are_refused_with_their_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = tmp_path / "site.yaml"
    assert old in SITE
    path.write_text(SITE.replace(old, new))
    with pytest.raises(SourceFileError, match=expected):
        load_site(path, tmp_path)
