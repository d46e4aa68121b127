"""The simulated buses and bike share: timetable, delays following traffic, bikes moving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from plc_sim.mobility.bikes import BikeShare, demo_stations
from plc_sim.mobility.buses import BusNetwork, demo_routes
from plc_sim.mobility.traffic import traffic_factor

# Mondays in March: 06:00 local (Amsterdam, UTC+1) is 05:00 UTC.
EARLY = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 03:00 local
MORNING = datetime(2026, 3, 2, 5, 30, tzinfo=UTC)  # 06:30 local


def _run(network: BusNetwork | BikeShare, start: datetime, hours: float, dt: float = 5.0) -> None:
    now = start
    for _ in range(int(hours * 3600 / dt)):
        now += timedelta(seconds=dt)
        network.step(dt, now)


def test_traffic_peaks_in_the_rush_hours() -> None:
    night = traffic_factor(datetime(2026, 3, 2, 3, 0))
    peak = traffic_factor(datetime(2026, 3, 2, 8, 0))
    assert night < 1.05
    assert peak > 1.4
    assert traffic_factor(datetime(2026, 3, 7, 8, 0)) < peak  # a Saturday


def test_buses_run_early_at_night_and_late_in_the_morning_peak() -> None:
    night = BusNetwork(demo_routes(52.37, 4.89), EARLY)
    _run(night, EARLY, 1.5)
    night_delays = [report.delay_s for report in night.reports()]
    peak = BusNetwork(demo_routes(52.37, 4.89), MORNING)
    _run(peak, MORNING, 2.5)
    peak_delays = [report.delay_s for report in peak.reports()]
    assert max(night_delays) < 60, night_delays  # free flow: on time or early
    assert sum(peak_delays) / len(peak_delays) > 60, peak_delays
    assert min(peak.on_time_share(route.route_id) for route in peak.routes) < 1.0
    for report in peak.reports():
        assert abs(report.lat - 52.37) < 0.1 and abs(report.lon - 4.89) < 0.1
        assert report.trip_id.startswith(report.route_id)


def test_bus_points_and_addresses_agree() -> None:
    network = BusNetwork(demo_routes(52.37, 4.89, count=1), MORNING)
    device = network.devices()[0]
    assert device.protocol == "gtfs_realtime"
    assert set(network.addresses()) == {spec.tag for spec in device.points}
    report = network.reports()[0]
    assert device.read(f"mobility.bus.{report.vehicle_id}.lat") == report.lat


def test_bikes_flow_to_the_centre_in_the_morning_and_none_are_lost() -> None:
    stations = demo_stations(52.37, 4.89, count=10)
    total = sum(station.bikes for station in stations)
    share = BikeShare(stations, MORNING, seed=3)
    central_before = sum(s.bikes for s in stations if s.central)
    _run(share, MORNING, 3.5)  # 06:30 to 10:00 local
    assert sum(s.bikes for s in stations) + share.riding == total
    assert all(0 <= s.bikes <= s.capacity for s in stations)
    assert sum(s.bikes for s in stations if s.central) > central_before
    device = share.devices()[0]
    assert device.protocol == "gbfs"
    assert set(share.addresses()) == {spec.tag for spec in device.points}
