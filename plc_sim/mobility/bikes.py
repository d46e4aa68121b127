"""Bike-share stations whose bikes move through the day.

Half the stations are residential, half central. Rides start at a rate that follows the day
(a morning and an evening peak, few at night); in the morning most rides go from residential
to central stations, in the evening back, at other times either way. A ride takes a bike from
a station that has one and is renting, and docks it ``RIDE_S`` later at a station with a free
dock that is returning (the nearest other one of the wanted kind that has room; with none, the
ride goes on until one has). Everything is drawn from the seed, so a run repeats.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from plc_sim.device import PointBinding, PointSpec, SimDevice
from plc_sim.mobility.records import StationReport
from plc_sim.weather import WeatherState

RIDE_S = 900.0
"""Length of a ride, simulated seconds."""
RIDES_PER_STATION_HOUR = 1.5
"""Rides started per station and hour at the day's mean rate."""
FEED_DEVICE = "mobility.bike_feed"
"""The GBFS publisher's device name in the point list."""


@dataclass(slots=True)
class Station:
    """One docking station."""

    station_id: str
    name: str
    lat: float
    lon: float
    capacity: int
    bikes: int
    central: bool
    installed: bool = True
    renting: bool = True
    returning: bool = True
    last_reported: datetime | None = None

    @property
    def docks(self) -> int:
        """Free docks."""
        return self.capacity - self.bikes


@dataclass(order=True, slots=True)
class _Ride:
    ends: datetime
    to_central: bool = field(compare=False)


def ride_rate_profile(hour: float) -> float:
    """Ride starts relative to the day's mean at local ``hour`` (mean over a day ~1)."""
    night = 0.1
    morning = 2.2 * math.exp(-(((hour - 8.0) / 1.2) ** 2))
    evening = 2.4 * math.exp(-(((hour - 17.5) / 1.6) ** 2))
    day = 0.9 * math.exp(-(((hour - 13.0) / 3.0) ** 2))
    return night + morning + evening + day


class BikeShare:
    """The city's bike-share system and its GBFS device."""

    def __init__(
        self,
        stations: list[Station],
        start: datetime,
        *,
        tz: str = "Europe/Amsterdam",
        seed: int = 1,
    ) -> None:
        """Run ``stations`` from ``start``; local time (for the day's pattern) is in ``tz``."""
        if not stations:
            raise ValueError("a bike-share system needs at least one station")
        for station in stations:
            if not 0 <= station.bikes <= station.capacity:
                raise ValueError(f"station {station.station_id}: bikes outside 0..capacity")
            station.last_reported = start
        self.stations = stations
        self._tz = ZoneInfo(tz)
        self._rng = random.Random(seed)
        self._rides: list[_Ride] = []
        self._now = start
        self._device = self._build_device()

    @property
    def riding(self) -> int:
        """Bikes out on a ride."""
        return len(self._rides)

    def step(self, dt_s: float, now: datetime, weather: WeatherState | None = None) -> None:
        """Start and end the rides of ``dt_s`` simulated seconds ending at ``now``."""
        local = now.astimezone(self._tz)
        hour = local.hour + local.minute / 60 + local.second / 3600
        expected = (
            RIDES_PER_STATION_HOUR * len(self.stations) * ride_rate_profile(hour) * dt_s / 3600
        )
        for _ in range(self._poisson(expected)):
            self._start_ride(now, hour)
        self._rides.sort()
        while self._rides and self._rides[0].ends <= now:
            ride = self._rides[0]
            if not self._dock(ride, now):
                break  # nowhere to dock: the ride goes on, and every later one waits too
            self._rides.pop(0)
        self._now = now

    def _poisson(self, mean: float) -> int:
        # Knuth's method: the means here are small (a few rides per step at most).
        limit, count, product = math.exp(-min(mean, 50.0)), 0, self._rng.random()
        while product > limit:
            count += 1
            product *= self._rng.random()
        return count

    def _start_ride(self, now: datetime, hour: float) -> None:
        if 6.5 <= hour < 10.5:
            from_central = self._rng.random() < 0.2
        elif 15.5 <= hour < 19.5:
            from_central = self._rng.random() < 0.8
        else:
            from_central = self._rng.random() < 0.5
        candidates = [
            s
            for s in self.stations
            if s.bikes > 0 and s.renting and s.installed and s.central == from_central
        ] or [s for s in self.stations if s.bikes > 0 and s.renting and s.installed]
        if not candidates:
            return
        origin = self._rng.choices(candidates, weights=[s.bikes for s in candidates])[0]
        origin.bikes -= 1
        origin.last_reported = now
        self._rides.append(_Ride(now + timedelta(seconds=RIDE_S), not from_central))

    def _dock(self, ride: _Ride, now: datetime) -> bool:
        free = [
            s
            for s in self.stations
            if s.docks > 0 and s.returning and s.installed and s.central == ride.to_central
        ] or [s for s in self.stations if s.docks > 0 and s.returning and s.installed]
        if not free:
            return False
        target = self._rng.choices(free, weights=[s.docks for s in free])[0]
        target.bikes += 1
        target.last_reported = now
        return True

    def reports(self) -> list[StationReport]:
        """Every station as the GBFS feed reports it."""
        return [
            StationReport(
                station_id=s.station_id,
                name=s.name,
                lat=s.lat,
                lon=s.lon,
                capacity=s.capacity,
                bikes=s.bikes,
                installed=s.installed,
                renting=s.renting,
                returning=s.returning,
                last_reported=s.last_reported or self._now,
            )
            for s in self.stations
        ]

    def addresses(self) -> dict[str, str]:
        """Tag → GBFS point address of the feed device's points."""
        return {
            f"mobility.bikes.{s.station_id}.{field}": f"station:{s.station_id}:{field}"
            for s in self.stations
            for field in ("bikes", "docks")
        }

    def devices(self) -> tuple[SimDevice, ...]:
        """The GBFS publisher, as a device with a point per served value."""
        return (self._device,)

    def _build_device(self) -> SimDevice:
        bindings: list[PointBinding] = []
        for station in self.stations:
            prefix = f"mobility.bikes.{station.station_id}"
            high = float(station.capacity)
            bindings.append(
                PointBinding(
                    PointSpec(f"{prefix}.bikes", "int", low=0.0, high=high),
                    lambda s=station: s.bikes,  # type: ignore[misc]
                )
            )
            bindings.append(
                PointBinding(
                    PointSpec(f"{prefix}.docks", "int", low=0.0, high=high),
                    lambda s=station: s.docks,  # type: ignore[misc]
                )
            )
        return SimDevice(FEED_DEVICE, "gbfs", bindings, description="bike-share feed")


def demo_stations(lat: float, lon: float, count: int = 8, seed: int = 1) -> list[Station]:
    """``count`` stations within about 3 km of (``lat``, ``lon``), the inner half central."""
    rng = random.Random(seed)
    stations: list[Station] = []
    for index in range(count):
        central = index % 2 == 0
        radius_km = rng.uniform(0.2, 1.0) if central else rng.uniform(1.5, 3.0)
        angle = rng.uniform(0, 2 * math.pi)
        capacity = rng.randint(15, 30)
        stations.append(
            Station(
                station_id=f"s{index + 1}",
                name=f"Station {index + 1}",
                lat=lat + radius_km * math.cos(angle) / 111.32,
                lon=lon + radius_km * math.sin(angle) / (111.32 * math.cos(math.radians(lat))),
                capacity=capacity,
                bikes=capacity // 2,
                central=central,
            )
        )
    return stations
