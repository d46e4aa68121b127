"""Buses on routes with a timetable, late when traffic is slow.

Each route is a line of stops around the city's centre, driven back and forth. Its timetable gives
every trip its running time at ``SCHEDULED_SPEED_MPS`` (free flow slowed by the traffic factor
planners allow for, ``PLANNED_TRAFFIC``); one bus of the route leaves every ``headway_s``, each
bus's trips alternating between the terminuses. A bus drives at ``CRUISE_SPEED_MPS`` divided by the
traffic factor of the moment (``plc_sim.mobility.traffic``) and a small per-bus spread, so it falls
behind in the peaks and catches up off-peak; at a terminus it waits ``MIN_LAYOVER_S`` at least and
leaves at its next scheduled departure, or at once when it is late already.

A bus's delay is the time it has taken so far minus the time the timetable allowed to where it is:
positive late, negative early (GTFS-Realtime's ``delay``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from plc_sim.device import PointBinding, PointSpec, SimDevice
from plc_sim.mobility.records import VehicleReport
from plc_sim.mobility.traffic import traffic_factor
from plc_sim.weather import WeatherState

CRUISE_SPEED_MPS = 7.5
"""Average speed of a bus between terminuses in free flow, stops included (27 km/h)."""
PLANNED_TRAFFIC = 1.2
"""The traffic factor the timetable allows for: buses run early at night, late in the peaks."""
SCHEDULED_SPEED_MPS = CRUISE_SPEED_MPS / PLANNED_TRAFFIC
MIN_LAYOVER_S = 120.0
EARTH_RADIUS_M = 6_371_000.0
FEED_DEVICE = "mobility.bus_feed"
"""The GTFS-Realtime publisher's device name in the point list."""
ON_TIME_EARLY_S = 60
ON_TIME_LATE_S = 300


@dataclass(frozen=True, slots=True)
class Route:
    """A bus route: its id and its stops as (latitude, longitude), terminus to terminus."""

    route_id: str
    stops: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.stops) < 2:
            raise ValueError(f"route {self.route_id} needs at least two stops")


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Equirectangular distance: exact enough within a city."""
    lat = math.radians((a[0] + b[0]) / 2)
    dx = math.radians(b[1] - a[1]) * math.cos(lat)
    dy = math.radians(b[0] - a[0])
    return EARTH_RADIUS_M * math.hypot(dx, dy)


class _Path:
    """A route's stops with the distance of each from the first."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.at_m = [0.0]
        for a, b in zip(route.stops, route.stops[1:], strict=False):
            self.at_m.append(self.at_m[-1] + _distance_m(a, b))
        self.length_m = self.at_m[-1]

    def place(self, progress_m: float, direction: int) -> tuple[float, float, float, int]:
        """Latitude, longitude, bearing and next stop index ``progress_m`` into a trip."""
        along = progress_m if direction == 0 else self.length_m - progress_m
        along = min(max(along, 0.0), self.length_m)
        stops = self.route.stops
        segment = 0
        while segment < len(stops) - 2 and self.at_m[segment + 1] < along:
            segment += 1
        start, end = stops[segment], stops[segment + 1]
        span = self.at_m[segment + 1] - self.at_m[segment]
        share = 0.0 if span <= 0 else (along - self.at_m[segment]) / span
        lat = start[0] + (end[0] - start[0]) * share
        lon = start[1] + (end[1] - start[1]) * share
        if direction == 1:
            start, end = end, start
        dx = math.radians(end[1] - start[1]) * math.cos(math.radians(lat))
        dy = math.radians(end[0] - start[0])
        bearing = math.degrees(math.atan2(dx, dy)) % 360
        next_stop = segment + 1 if direction == 0 else segment
        return lat, lon, bearing, next_stop


@dataclass(slots=True)
class Bus:
    """One bus: the trips it works and where it is on the current one."""

    vehicle_id: str
    path: _Path
    first_departure: datetime
    cycle_s: float
    """Scheduled running time plus layover: the time between two of its trips' departures."""
    pace: float
    """This bus's speed relative to the others (driver, load)."""
    trip: int = 0
    progress_m: float = 0.0
    waiting: bool = True
    actual_start: datetime | None = None
    speed_mps: float = 0.0

    @property
    def direction(self) -> int:
        """0 outbound, 1 inbound: trips alternate."""
        return self.trip % 2

    def scheduled_start(self, trip: int) -> datetime:
        """Scheduled departure of the bus's trip number ``trip``."""
        return self.first_departure + timedelta(seconds=trip * self.cycle_s)

    def delay_s(self, now: datetime) -> float:
        """Seconds behind the timetable (negative: ahead)."""
        scheduled = self.scheduled_start(self.trip)
        if self.waiting:
            return max(0.0, (now - scheduled).total_seconds())
        allowed = self.progress_m / SCHEDULED_SPEED_MPS
        return (now - scheduled).total_seconds() - allowed


class BusNetwork:
    """The city's buses: routes, timetable and vehicles, and their GTFS-Realtime device."""

    def __init__(
        self,
        routes: list[Route],
        start: datetime,
        *,
        headway_s: float = 600.0,
        tz: str = "Europe/Amsterdam",
        seed: int = 1,
        traffic: Callable[[datetime], float] | None = None,
    ) -> None:
        """Put the buses where the timetable has them at ``start`` (on time); ``traffic``
        replaces the time-of-day traffic factor (it gets local time)."""
        if not routes:
            raise ValueError("a bus network needs at least one route")
        if not headway_s > 0:
            raise ValueError("headway must be positive")
        self._tz = ZoneInfo(tz)
        self._traffic = traffic or traffic_factor
        self._rng = random.Random(seed)
        self.routes = routes
        self.buses: list[Bus] = []
        for route in routes:
            path = _Path(route)
            running_s = path.length_m / SCHEDULED_SPEED_MPS
            # Whole headways per cycle, so departures keep their clock-face minutes.
            cycle_s = math.ceil((running_s + MIN_LAYOVER_S) / headway_s) * headway_s
            count = round(cycle_s / headway_s)
            for index in range(count):
                offset = index * headway_s
                first = start - timedelta(seconds=cycle_s - offset)
                bus = Bus(
                    vehicle_id=f"{route.route_id}_{index + 1:02d}",
                    path=path,
                    first_departure=first,
                    cycle_s=cycle_s,
                    pace=self._rng.uniform(0.95, 1.05),
                )
                self._place_on_time(bus, start)
                self.buses.append(bus)
        self._now = start
        self._device = self._build_device()

    def _place_on_time(self, bus: Bus, now: datetime) -> None:
        elapsed = (now - bus.first_departure).total_seconds()
        bus.trip = int(elapsed // bus.cycle_s)
        into = elapsed - bus.trip * bus.cycle_s
        running_s = bus.path.length_m / SCHEDULED_SPEED_MPS
        if into < running_s:
            bus.waiting = False
            bus.progress_m = into * SCHEDULED_SPEED_MPS
            bus.actual_start = bus.scheduled_start(bus.trip)
        else:
            bus.trip += 1
            bus.waiting = True
            bus.progress_m = 0.0

    def step(self, dt_s: float, now: datetime, weather: WeatherState | None = None) -> None:
        """Advance every bus by ``dt_s`` simulated seconds ending at ``now``."""
        factor = max(1.0, self._traffic(now.astimezone(self._tz)))
        for bus in self.buses:
            if bus.waiting:
                bus.speed_mps = 0.0
                if now >= bus.scheduled_start(bus.trip):
                    bus.waiting = False
                    bus.actual_start = now
                continue
            bus.speed_mps = CRUISE_SPEED_MPS * bus.pace / factor
            bus.progress_m += bus.speed_mps * dt_s
            if bus.progress_m >= bus.path.length_m:
                arrived = now
                bus.trip += 1
                bus.progress_m = 0.0
                bus.waiting = True
                bus.speed_mps = 0.0
                # A late bus takes a short layover and leaves at once: its lateness carries on.
                earliest = arrived + timedelta(seconds=MIN_LAYOVER_S)
                while bus.scheduled_start(bus.trip) + timedelta(seconds=bus.cycle_s) < earliest:
                    bus.trip += 2  # a bus more than a cycle late skips a round trip
        self._now = now

    def trip_id(self, bus: Bus) -> str:
        """The timetable's id of the bus's current trip: route, direction, local departure."""
        start = bus.scheduled_start(bus.trip).astimezone(self._tz)
        return f"{bus.path.route.route_id}_{bus.direction}_{start:%Y%m%d_%H%M}"

    def reports(self) -> list[VehicleReport]:
        """Every bus as the GTFS-Realtime feed reports it."""
        now = self._now
        out: list[VehicleReport] = []
        for bus in self.buses:
            lat, lon, bearing, next_stop = bus.path.place(bus.progress_m, bus.direction)
            route_id = bus.path.route.route_id
            out.append(
                VehicleReport(
                    vehicle_id=bus.vehicle_id,
                    route_id=route_id,
                    trip_id=self.trip_id(bus),
                    lat=lat,
                    lon=lon,
                    speed_mps=bus.speed_mps,
                    bearing_deg=bearing,
                    stopped=bus.waiting,
                    delay_s=round(bus.delay_s(now)),
                    next_stop=f"{route_id}_s{next_stop + 1}",
                )
            )
        return out

    def on_time_share(self, route_id: str) -> float:
        """Share of the route's buses between one minute early and five minutes late."""
        flags = [
            -ON_TIME_EARLY_S <= bus.delay_s(self._now) <= ON_TIME_LATE_S
            for bus in self.buses
            if bus.path.route.route_id == route_id
        ]
        return sum(flags) / len(flags) if flags else 1.0

    def addresses(self) -> dict[str, str]:
        """Tag → GTFS-Realtime point address of the feed device's points."""
        result: dict[str, str] = {}
        for bus in self.buses:
            for field in ("delay_s", "lat", "lon", "speed"):
                result[f"mobility.bus.{bus.vehicle_id}.{field}"] = (
                    f"vehicle:{bus.vehicle_id}:{field}"
                )
        for route in self.routes:
            result[f"mobility.line.{route.route_id}.on_time_share"] = (
                f"route:{route.route_id}:on_time_share"
            )
        return result

    def devices(self) -> tuple[SimDevice, ...]:
        """The GTFS-Realtime publisher, as a device with a point per served value."""
        return (self._device,)

    def _bus_binding(self, bus: Bus, field: str) -> PointBinding:
        tag = f"mobility.bus.{bus.vehicle_id}.{field}"
        if field == "delay_s":
            return PointBinding(
                PointSpec(tag, "int", unit="s", description=f"bus {bus.vehicle_id} delay"),
                lambda: round(bus.delay_s(self._now)),
            )
        if field == "speed":
            return PointBinding(
                PointSpec(tag, "float", unit="m/s", low=0.0, high=30.0), lambda: bus.speed_mps
            )
        index = 0 if field == "lat" else 1
        return PointBinding(
            PointSpec(tag, "float", unit="deg"),
            lambda: bus.path.place(bus.progress_m, bus.direction)[index],
        )

    def _share_reader(self, route_id: str) -> Callable[[], float]:
        return lambda: self.on_time_share(route_id)

    def _build_device(self) -> SimDevice:
        bindings = [
            self._bus_binding(bus, field)
            for bus in self.buses
            for field in ("delay_s", "lat", "lon", "speed")
        ]
        for route in self.routes:
            route_id = route.route_id
            bindings.append(
                PointBinding(
                    PointSpec(
                        f"mobility.line.{route_id}.on_time_share",
                        "float",
                        low=0.0,
                        high=1.0,
                        description=f"line {route_id}: share of buses on time",
                    ),
                    self._share_reader(route_id),
                )
            )
        return SimDevice(FEED_DEVICE, "gtfs_realtime", bindings, description="bus feed")


def demo_routes(lat: float, lon: float, count: int = 3, seed: int = 1) -> list[Route]:
    """``count`` routes crossing the city around (``lat``, ``lon``), 8 stops each."""
    rng = random.Random(seed)
    routes: list[Route] = []
    for number in range(count):
        angle = math.pi * number / count + rng.uniform(-0.2, 0.2)
        half_km = rng.uniform(3.0, 5.0)
        stops: list[tuple[float, float]] = []
        for index in range(8):
            along_km = -half_km + 2 * half_km * index / 7
            wiggle_km = rng.uniform(-0.3, 0.3)
            north = along_km * math.cos(angle) - wiggle_km * math.sin(angle)
            east = along_km * math.sin(angle) + wiggle_km * math.cos(angle)
            stops.append(
                (lat + north / 111.32, lon + east / (111.32 * math.cos(math.radians(lat))))
            )
        routes.append(Route(f"l{number + 1}", tuple(stops)))
    return routes
