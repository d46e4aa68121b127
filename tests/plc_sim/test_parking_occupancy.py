"""Parking: garages fill by day, streets by night; counts stay within capacity; a set
occupancy reports at once; a closed garage empties."""

from __future__ import annotations

from datetime import UTC, datetime

from plc_sim.parking.network import ParkingNetwork
from tests.plc_sim.sim_weather import run

TUESDAY = datetime(2026, 6, 23, 0, 0, tzinfo=UTC)


def test_garages_fill_by_day_and_streets_by_night() -> None:
    parking = ParkingNetwork(seed=4)
    run(parking, TUESDAY, 1.0)  # 03:00 local
    garage, street = parking.facility("parking.g1"), parking.facility("parking.z1")
    night = (garage.occupancy_pct, street.occupancy_pct)
    run(parking, datetime(2026, 6, 23, 9, 0, tzinfo=UTC), 2.0)  # 13:00 local
    assert garage.occupancy_pct > night[0] + 40
    assert street.occupancy_pct < night[1] - 15
    for facility in parking.facilities:
        assert 0 <= facility.free <= facility.capacity
        assert facility.free + round(facility.occupied) == facility.capacity


def test_a_set_occupancy_reports_at_once_and_a_closed_garage_empties() -> None:
    parking = ParkingNetwork(seed=4)
    run(parking, TUESDAY, 0.1)
    sensor = next(s for s in parking.sensors() if s.id == "g2")
    parking.set_occupied("parking.g2", 10_000)
    assert sensor.report_now
    assert parking.facility("parking.g2").free == 0
    parking.close("parking.g2")
    run(parking, datetime(2026, 6, 23, 10, 0, tzinfo=UTC), 3.0)
    assert parking.facility("parking.g2").occupancy_pct < 15
