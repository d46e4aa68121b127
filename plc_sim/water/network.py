"""The city's drinking-water network: plant, booster stations, reservoirs and districts.

Topology (``scale`` multiplies the stations, service reservoirs and districts)::

    treatment plant ─▶ booster stations ps1..ps(3N) ─▶ reservoirs tank2..tank(2N+1)
                                                          └─▶ districts dma1..dma(4N)
    tank1: the original tank with its own feed pump and demand (the center's pump rule)

Station ``j`` feeds reservoir ``j mod 2N`` and district ``i`` draws from reservoir ``i mod 2N``
(zero-based), so at scale 1 tank2 has stations ps1 and ps3 and districts dma1 and dma3. Each
district's mean demand is sized to half the capacity of the stations feeding its reservoir, so
the stations' local level control (on by default) keeps every reservoir in service without
the center; the center can take a station to remote by commanding a pump.

Integration: ``step`` splits the interval into sub-steps of at most ``MAX_SUBSTEP_S``, also
ending one at every pending pump start, and integrates flows with exact exponential solutions
within each, so a one-hour step costs 120 sub-steps of a few microseconds per asset, not 3,600.
Tank 1 keeps the physics of ``plc_sim.water.tank.Tank`` unchanged.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from plc_sim.device import SimDevice
from plc_sim.water.assets import Reservoir, TreatmentPlant
from plc_sim.water.demand import DistrictMeteringArea, demand_factor
from plc_sim.water.devices import (
    dma_device,
    plant_device,
    pump_station_device,
    reservoir_device,
    tank1_device,
)
from plc_sim.water.pumps import Pump, PumpStation, operating_point
from plc_sim.water.pumps import SystemCurve as _SystemCurve
from plc_sim.water.tank import MAX_SUBSTEP_S as TANK_MAX_SUBSTEP_S
from plc_sim.water.tank import Tank, TankParams, TankState
from plc_sim.weather import WeatherState

DEFAULT_TIMEZONE = "Europe/Vienna"
"""Local time of the demand patterns when no timezone is given."""

MAX_SUBSTEP_S = 30.0
"""Longest sub-step: the demand pattern and the levels change little in half a minute."""

MIN_SUBSTEP_S = 1e-3
"""Shortest sub-step, so that a start event due "now" never stalls the loop."""

STATIONS_PER_SCALE = 3
RESERVOIRS_PER_SCALE = 2
DISTRICTS_PER_SCALE = 4
DEMAND_SHARE_OF_CAPACITY = 0.5
"""Mean demand of a reservoir's districts as a share of its stations' capacity."""


TANK1_STEADY_SUBSTEP_S = 10.0
"""Sub-step of tank 1 while its pump is stopped or at its rated flow (nothing fast happens)."""


class Tank1(Tank):
    """``Tank`` with the same physics, integrated in longer sub-steps when nothing is fast.

    While the pump starts or ramps, ``Tank``'s own one-second sub-steps are used; otherwise
    the mass balance runs in sub-steps of ``TANK1_STEADY_SUBSTEP_S`` (the demand noise and
    the pump lag are exact exponential solutions for any sub-step), so an hour of simulated
    time costs hundreds of sub-steps, not thousands.
    """

    __slots__ = ()

    def step(self, dt_s: float, now: datetime) -> TankState:
        """Advance by ``dt_s`` seconds ending at ``now`` (aware); returns the new state."""
        if dt_s < 0:
            raise ValueError(f"time step must not be negative, got {dt_s}")
        if now.utcoffset() is None:
            raise ValueError("step time must be timezone-aware")
        rated = self.params.pump_rated_flow_m3h
        elapsed = 0.0
        while elapsed < dt_s:
            ramping = self.pump_command and self.inflow_m3h < rated - 1e-3
            longest = TANK_MAX_SUBSTEP_S if ramping else TANK1_STEADY_SUBSTEP_S
            sub_dt = min(dt_s - elapsed, longest)
            elapsed += sub_dt
            self._substep(sub_dt, now - timedelta(seconds=dt_s - elapsed))
        self.time = now
        return self.snapshot()


class WaterNetwork:
    """The water network's physics and its RTUs (``DomainModel``)."""

    def __init__(self, scale: int = 1, seed: int = 1, tz: tzinfo | None = None) -> None:
        if scale < 1:
            raise ValueError(f"scale must be at least 1, got {scale}")
        tz = tz if tz is not None else ZoneInfo(DEFAULT_TIMEZONE)
        self._tz = tz
        rng = random.Random(seed * 7919 + 17)
        self.tank1 = Tank1(params=TankParams(), seed=seed, tz=tz)
        self.plant = TreatmentPlant(seed=seed * 31 + 1)
        self.reservoirs = tuple(
            Reservoir(level_m=round(rng.uniform(2.8, 4.4), 2))
            for _ in range(RESERVOIRS_PER_SCALE * scale)
        )
        self.stations = tuple(
            PumpStation(pumps=(Pump(), Pump()), lift_m=round(rng.uniform(17.0, 23.0), 1))
            for _ in range(STATIONS_PER_SCALE * scale)
        )
        self._station_reservoir = tuple(
            index % len(self.reservoirs) for index in range(len(self.stations))
        )
        district_count = DISTRICTS_PER_SCALE * scale
        self._district_reservoir = tuple(
            index % len(self.reservoirs) for index in range(district_count)
        )
        self.districts = tuple(
            DistrictMeteringArea(
                mean_demand_m3h=self._district_share(index) * rng.uniform(0.85, 1.15),
                static_head_m=round(rng.uniform(30.0, 40.0), 1),
                seed=seed * 1009 + index,
            )
            for index in range(district_count)
        )
        self._devices = self._build_devices(seed)

    def devices(self) -> tuple[SimDevice, ...]:
        """Plant, tank 1, reservoirs, stations, districts: one RTU each, in that order."""
        return self._devices

    def set_leak(self, dma_index: int, flow_m3h: float) -> None:
        """Add a constant leak to district ``dma<dma_index>`` (1-based); 0 clears it."""
        self.districts[self._checked(dma_index, len(self.districts), "district")].set_leak(flow_m3h)

    def trip_pump(self, station_index: int, pump_index: int) -> None:
        """Trip pump ``pump<pump_index>`` of station ``ps<station_index>`` (both 1-based)."""
        self._pump(station_index, pump_index).trip()

    def reset_pump(self, station_index: int, pump_index: int) -> None:
        """Reset a tripped pump (both indices 1-based)."""
        self._pump(station_index, pump_index).reset()

    def reservoir_of_station(self, station_index: int) -> Reservoir:
        """The reservoir a station (1-based) feeds."""
        index = self._checked(station_index, len(self.stations), "station")
        return self.reservoirs[self._station_reservoir[index]]

    def reservoir_of_district(self, dma_index: int) -> Reservoir:
        """The reservoir a district (1-based) draws from."""
        index = self._checked(dma_index, len(self.districts), "district")
        return self.reservoirs[self._district_reservoir[index]]

    def step(self, dt_s: float, now: datetime, weather: WeatherState) -> None:
        """Advance the network by ``dt_s`` simulated seconds ending at ``now`` (aware)."""
        if dt_s < 0:
            raise ValueError(f"time step must not be negative, got {dt_s}")
        if now.utcoffset() is None:
            raise ValueError("step time must be timezone-aware")
        self.tank1.step(dt_s, now)
        elapsed = 0.0
        start = now - timedelta(seconds=dt_s)
        while elapsed < dt_s:
            sub_dt = min(dt_s - elapsed, MAX_SUBSTEP_S)
            for station, reservoir_index in zip(
                self.stations, self._station_reservoir, strict=True
            ):
                station.control(self.reservoirs[reservoir_index].level_fraction)
                pending = station.seconds_to_next_start()
                if pending is not None:
                    sub_dt = min(sub_dt, max(pending, MIN_SUBSTEP_S))
            middle = start + timedelta(seconds=elapsed + sub_dt / 2.0)
            self._substep(sub_dt, middle, weather.outdoor_temp_c)
            elapsed += sub_dt

    def _substep(self, dt_s: float, middle: datetime, outdoor_temp_c: float) -> None:
        local = middle.astimezone(self._tz)
        hour = local.hour + local.minute / 60.0 + local.second / 3600.0
        factor = demand_factor(hour, outdoor_temp_c)
        wanted_m3 = [0.0] * len(self.reservoirs)
        for district, reservoir_index in zip(self.districts, self._district_reservoir, strict=True):
            wanted_m3h = district.advance_demand(dt_s, factor)
            wanted_m3[reservoir_index] += wanted_m3h * dt_s / 3600.0
        fed_m3 = [0.0] * len(self.reservoirs)
        for station, reservoir_index in zip(self.stations, self._station_reservoir, strict=True):
            reservoir = self.reservoirs[reservoir_index]
            fed_m3[reservoir_index] += station.advance(
                dt_s, station.lift_m + reservoir.level_m, reservoir.valve_resistance()
            )
        delivered = [
            reservoir.balance(dt_s, fed_m3[index], wanted_m3[index])
            for index, reservoir in enumerate(self.reservoirs)
        ]
        for district, reservoir_index in zip(self.districts, self._district_reservoir, strict=True):
            district.supply(
                dt_s, delivered[reservoir_index], self.reservoirs[reservoir_index].level_m
            )
        self.plant.advance(dt_s, sum(station.flow_m3h for station in self.stations))

    def _district_share(self, district_index: int) -> float:
        """Mean demand that gives each reservoir's districts half its stations' capacity."""
        reservoir_index = self._district_reservoir[district_index]
        stations = [
            station
            for station, fed in zip(self.stations, self._station_reservoir, strict=True)
            if fed == reservoir_index
        ]
        reservoir = self.reservoirs[reservoir_index]
        capacity = 0.0
        for station in stations:
            system = _SystemCurve(
                station.lift_m + reservoir.height_m / 2.0,
                station.pipe_resistance + reservoir.valve_resistance(),
            )
            pumps = station.pumps
            point = operating_point([p.curve for p in pumps], [100.0] * len(pumps), system)
            capacity += sum(point.flows_m3h)
        districts = self._district_reservoir.count(reservoir_index)
        return DEMAND_SHARE_OF_CAPACITY * capacity / districts

    def _build_devices(self, seed: int) -> tuple[SimDevice, ...]:
        devices = [plant_device(self.plant, seed), tank1_device(self.tank1, seed)]
        devices.extend(
            reservoir_device(index + 2, reservoir, seed)
            for index, reservoir in enumerate(self.reservoirs)
        )
        devices.extend(
            pump_station_device(index + 1, station, seed)
            for index, station in enumerate(self.stations)
        )
        devices.extend(
            dma_device(index + 1, district, seed) for index, district in enumerate(self.districts)
        )
        return tuple(devices)

    def _pump(self, station_index: int, pump_index: int) -> Pump:
        station = self.stations[self._checked(station_index, len(self.stations), "station")]
        return station.pumps[self._checked(pump_index, len(station.pumps), "pump")]

    @staticmethod
    def _checked(number: int, count: int, what: str) -> int:
        if not 1 <= number <= count:
            raise IndexError(f"{what} {number} does not exist (1..{count})")
        return number - 1
