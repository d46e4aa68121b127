"""Parking garages (barrier counts) and on-street zones (bay sensors) and their occupancy.

A garage in the centre fills through the working day and for evening shopping; an on-street
zone in a residential street is full at night and half empty by day. Occupancy approaches the
hour's target with a time constant of half an hour, plus arrivals' randomness; it stays within
0..capacity. ``set_occupied`` puts a number of cars in (tests, scenarios); ``close`` shuts a
garage (no one enters, cars leave).

Garages report every ``GARAGE_REPORT_S``, zones every ``ZONE_REPORT_S``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from plc_sim.device import PointBinding, PointSpec, SimDevice
from plc_sim.domain import AssetPlan, UplinkSensor
from plc_sim.weather import WeatherState

DEVICE = "parking.sensors"
GARAGE_REPORT_S = 120.0
ZONE_REPORT_S = 300.0
GARAGES_PER_SCALE = 3
ZONES_PER_SCALE = 4
TAU_S = 1800.0


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-(((hour - centre) / width) ** 2))


def garage_target(hour: float, weekday: bool) -> float:
    """Share of a central garage's spaces taken at local ``hour``."""
    if weekday:
        return min(0.97, 0.08 + 0.8 * _bump(hour, 12.5, 4.0) + 0.25 * _bump(hour, 19.5, 1.5))
    return min(0.97, 0.05 + 0.75 * _bump(hour, 15.0, 3.5))


def street_target(hour: float, weekday: bool) -> float:
    """Share of a residential street's bays taken at local ``hour``."""
    day_dip = 0.4 * _bump(hour, 12.5, 3.5) if weekday else 0.15 * _bump(hour, 14.0, 3.0)
    return max(0.3, 0.92 - day_dip)


@dataclass(slots=True)
class ParkingFacility:
    """A garage or an on-street zone."""

    name: str
    label: str
    garage: bool
    capacity: int
    occupied: float
    closed: bool = False

    @property
    def free(self) -> int:
        """Free spaces."""
        return max(0, self.capacity - round(self.occupied))

    @property
    def occupancy_pct(self) -> float:
        """Spaces taken, %."""
        return 100.0 * round(self.occupied) / self.capacity


class ParkingNetwork:
    """The city's garages and on-street zones."""

    def __init__(self, scale: int = 1, seed: int = 1, tz: ZoneInfo | None = None) -> None:
        rng = random.Random(f"parking:{seed}")
        self._rng = rng
        self._tz = tz or ZoneInfo("Europe/Amsterdam")
        self.facilities: list[ParkingFacility] = []
        for index in range(GARAGES_PER_SCALE * scale):
            capacity = rng.choice((250, 400, 600, 850))
            self.facilities.append(
                ParkingFacility(
                    f"parking.g{index + 1}", f"Garage {index + 1}", True, capacity, 0.3 * capacity
                )
            )
        for index in range(ZONES_PER_SCALE * scale):
            capacity = rng.randint(40, 120)
            self.facilities.append(
                ParkingFacility(
                    f"parking.z{index + 1}",
                    f"On-street zone {index + 1}",
                    False,
                    capacity,
                    0.8 * capacity,
                )
            )
        self._started = False
        self._build()

    def facility(self, name: str) -> ParkingFacility:
        """A garage or zone by name; KeyError naming the known ones."""
        for facility in self.facilities:
            if facility.name == name:
                return facility
        known = [f.name for f in self.facilities]
        raise KeyError(f"no parking facility {name!r}; there are {known}")

    def set_occupied(self, name: str, cars: int) -> None:
        """Put ``cars`` cars in a facility (clipped to its capacity); it reports at once."""
        facility = self.facility(name)
        facility.occupied = float(max(0, min(facility.capacity, cars)))
        self._sensor_of[name].report_now = True

    def close(self, name: str, closed: bool = True) -> None:
        """Close a garage or zone (no one enters) or open it again."""
        self.facility(name).closed = closed

    def step(self, dt_s: float, now: datetime, weather: WeatherState) -> None:
        """Advance ``dt_s`` simulated seconds ending at ``now``."""
        local = now.astimezone(self._tz)
        hour = local.hour + local.minute / 60
        weekday = local.weekday() < 5
        for facility in self.facilities:
            share = (
                garage_target(hour, weekday) if facility.garage else street_target(hour, weekday)
            )
            target = 0.0 if facility.closed else share * facility.capacity
            if not self._started:
                facility.occupied = target
                continue
            relax = min(1.0, dt_s / TAU_S)
            noise = self._rng.gauss(0.0, 0.02 * facility.capacity * math.sqrt(relax))
            occupied = facility.occupied + relax * (target - facility.occupied) + noise
            if facility.closed:
                occupied = min(occupied, facility.occupied)
            facility.occupied = max(0.0, min(float(facility.capacity), occupied))
        self._started = True

    def devices(self) -> tuple[SimDevice, ...]:
        """The parking sensor network."""
        return (self._device,)

    def sensors(self) -> tuple[UplinkSensor, ...]:
        """One counter per garage, one bay-sensor gateway per zone."""
        return tuple(self._sensor_of.values())

    def asset_plans(self) -> tuple[AssetPlan, ...]:
        """Every garage and zone on the map (garages central, zones around)."""
        return tuple(
            AssetPlan(f.name, "parking_garage" if f.garage else "parking_zone", f.label, 3 * i + 1)
            for i, f in enumerate(self.facilities)
        )

    def _build(self) -> None:
        bindings: list[PointBinding] = []
        self._sensor_of: dict[str, UplinkSensor] = {}
        for facility in self.facilities:
            n, f = facility.name, facility
            high = float(facility.capacity)
            bindings += [
                PointBinding(
                    PointSpec(f"{n}.occupied", "int", "cars", low=0.0, high=high),
                    lambda f=f: round(f.occupied),  # type: ignore[misc]
                ),
                PointBinding(
                    PointSpec(f"{n}.free", "int", "spaces", low=0.0, high=high),
                    lambda f=f: f.free,  # type: ignore[misc]
                ),
                PointBinding(
                    PointSpec(f"{n}.occupancy", "float", "%", low=0.0, high=100.0),
                    lambda f=f: f.occupancy_pct,  # type: ignore[misc]
                ),
            ]
            self._sensor_of[n] = UplinkSensor(
                n.split(".", 1)[1],
                GARAGE_REPORT_S if facility.garage else ZONE_REPORT_S,
                tuple((key, f"{n}.{key}") for key in ("occupied", "free", "occupancy")),
            )
        self._device = SimDevice(DEVICE, "mqtt", bindings, description="parking sensors")
