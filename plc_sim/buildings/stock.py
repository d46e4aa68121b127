"""Public buildings (schools, offices, libraries) with their building management controllers.

Every building is one BACnet/IP device (``bldg.school_bms``, ``bldg.office_bms``…): building
automation speaks BACnet (ASHRAE 135). Zone temperatures and CO2 are analog inputs, setpoints
commandable analog values, heating valves and dampers commandable analog outputs, the supply
fan a commandable binary output; when an operator relinquishes every priority of a command
(ASHRAE 135 clause 19.2), the point returns to automatic: the schedule's setpoint, the zone's PI
loop, the CO2 ventilation loop, the fan schedule.

Physics per zone, integrated in sub-steps of at most ``MAX_SUBSTEP_S`` with exact exponential
solutions for constant inputs (so any step up to an hour is stable):

- heat balance ``C dT/dt = UA (T_out - T) + gains + radiator - ventilation``: gains from people,
  lights, plug loads and sun through the windows; the radiator's output follows the valve with a
  first-order lag; mechanical ventilation (damper x fan) brings air at the air handler's supply
  temperature (heat recovery, then a heating coil to 18 degC), infiltration brings outdoor air;
- CO2: each person exhales about 0.005 L/s, ventilation replaces the air with outdoor air at
  420 ppm;
- electricity: lights, plug loads by occupancy, the fan by its air flow, and a base load.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from plc_sim.buildings.schedule import BUILDING_TYPES, BuildingType, Visit
from plc_sim.device import PointBinding, PointSpec, PointValue, SimDevice
from plc_sim.pi_controller import PiTuning, pi_step, pi_track
from plc_sim.weather import WeatherState

MAX_SUBSTEP_S = 120.0
"""Longest interval integrated at once: a fifth of the radiators' 600 s time constant."""
FIRST_DEVICE_INSTANCE = 10001
"""BACnet device instance of the first building; the others follow in order."""
OUTDOOR_CO2_PPM = 420.0
CO2_PER_PERSON_M3_S = 0.005e-3
"""CO2 exhaled by a seated adult, m3/s (0.005 L/s)."""
AIR_KJ_PER_M3K = 1.2
"""Volumetric heat capacity of air, kJ per m3 and kelvin."""

_SENSIBLE_HEAT_PER_PERSON_KW = 0.08
_CAPACITY_KJ_PER_M2K = 60.0
"""Effective heat capacity of a zone (air, furniture, inner wall surfaces) per floor area."""
_UA_KW_PER_M2K = 0.0009
_RADIATOR_KW_PER_M2 = 0.07
_RADIATOR_TIME_CONSTANT_S = 600.0
_INFILTRATION_ACH = 0.15
_AIRFLOW_PER_PERSON_M3_S = 0.010
_AIRFLOW_PER_M2_M3_S = 0.0015
_WINDOW_KW_PER_LUX_M2 = 0.2 * 0.15 / 110.0 / 1000.0
"""Solar gain per lux of daylight and m2 floor: 20 % glazing, 0.15 effective transmission
(g-value, shading, orientation), 110 lux per W/m2 of daylight."""
_LIGHTING_KW_PER_M2 = 0.009
_PLUG_KW_PER_M2_OCCUPIED = 0.006
_BASE_KW_PER_M2 = 0.0015
_FULL_DAYLIGHT_LUX = 30_000.0
"""Daylight at which lights dim to their minimum."""
_FAN_KW_PER_M3_S = 1.8
"""Specific fan power of the air handler, kW per m3/s of supply air."""
_SUPPLY_AIR_TIME_CONSTANT_S = 300.0
_MIN_SUPPLY_AIR_C = 18.0
_HEAT_RECOVERY = 0.75
_PREHEAT_H = 1.5
"""Optimum start: the heating goes to the occupied setpoint this long before opening."""
_FAN_LEAD_H = 0.5
_SECONDS_PER_DAY = 86_400
_UNIX_EPOCH_WEEKDAY = 3
"""1970-01-01 was a Thursday (Monday = 0)."""


_VALVE_TUNING = PiTuning(gain=20.0, integral_time_s=1800.0)
"""Zone heating valve loop: 20 % per kelvin of error, 30 min integral time."""


@dataclass(frozen=True, slots=True)
class BuildingParams:
    """Setpoints and loop tunings shared by every building."""

    occupied_setpoint_c: float = 21.0
    unoccupied_setpoint_c: float = 17.0
    valve_tuning: PiTuning = _VALVE_TUNING
    co2_target_ppm: float = 600.0
    """Occupied zones open the damper above this CO2 level (minimum 20 %)."""
    co2_purge_ppm: float = 800.0
    """Unoccupied zones ventilate only above this CO2 level."""
    damper_gain_pct_per_ppm: float = 0.2

    def __post_init__(self) -> None:
        if not 15.0 <= self.unoccupied_setpoint_c <= self.occupied_setpoint_c <= 28.0:
            raise ValueError("setpoints must satisfy 15 <= unoccupied <= occupied <= 28 degC")
        if self.damper_gain_pct_per_ppm <= 0:
            raise ValueError("the damper loop gain must be positive")


class _Zone:
    """One zone's sizing (derived from its design) and changing state."""

    __slots__ = (
        "airflow_max_m3_s",
        "capacity",
        "capacity_kj_per_k",
        "co2_ppm",
        "damper_override_pct",
        "damper_pct",
        "infiltration_m3_s",
        "integral",
        "lighting_kw",
        "number",
        "occupied",
        "people",
        "plan",
        "plan_day",
        "plug_base_kw",
        "plug_occupied_kw",
        "radiator_kw",
        "radiator_max_kw",
        "setpoint_override_c",
        "solar_kw_per_lux",
        "temp_c",
        "ua_kw_per_k",
        "valve_override_pct",
        "valve_pct",
        "volume_m3",
    )

    def __init__(self, number: int, area_m2: float, height_m: float, capacity: int) -> None:
        self.number = number
        self.capacity = capacity
        self.volume_m3 = area_m2 * height_m
        self.capacity_kj_per_k = _CAPACITY_KJ_PER_M2K * area_m2
        self.ua_kw_per_k = _UA_KW_PER_M2K * area_m2
        self.radiator_max_kw = _RADIATOR_KW_PER_M2 * area_m2
        self.infiltration_m3_s = _INFILTRATION_ACH * self.volume_m3 / 3600.0
        self.airflow_max_m3_s = max(
            capacity * _AIRFLOW_PER_PERSON_M3_S, area_m2 * _AIRFLOW_PER_M2_M3_S
        )
        self.solar_kw_per_lux = _WINDOW_KW_PER_LUX_M2 * area_m2
        self.lighting_kw = _LIGHTING_KW_PER_M2 * area_m2
        self.plug_occupied_kw = _PLUG_KW_PER_M2_OCCUPIED * area_m2
        self.plug_base_kw = _BASE_KW_PER_M2 * area_m2
        self.temp_c = 19.0
        self.radiator_kw = 0.0
        self.valve_pct = 30.0
        self.integral = 30.0
        self.valve_override_pct: float | None = None
        self.damper_pct = 0.0
        self.damper_override_pct: float | None = None
        self.setpoint_override_c: float | None = None
        self.co2_ppm = OUTDOOR_CO2_PPM + 30.0
        self.occupied = False
        self.people = 0
        self.plan: tuple[Visit, ...] = ()
        self.plan_day = -1


class _Building:
    """One building's air handler, meter and zones."""

    __slots__ = (
        "building_type",
        "default_setpoint_c",
        "energy_kwh",
        "fan_auto",
        "fan_override",
        "heat_energy_kwh",
        "heat_power_kw",
        "index",
        "name",
        "power_kw",
        "supply_air_c",
        "zones",
    )

    def __init__(
        self, index: int, name: str, building_type: BuildingType, zones: list[_Zone]
    ) -> None:
        self.index = index
        self.name = name
        self.building_type = building_type
        self.zones = zones
        self.default_setpoint_c = 17.0
        self.fan_auto = False
        self.fan_override: bool | None = None
        self.supply_air_c = 18.0
        self.power_kw = 0.0
        self.energy_kwh = 0.0
        self.heat_power_kw = 0.0
        self.heat_energy_kwh = 0.0

    @property
    def fan_on(self) -> bool:
        """The fan's effective command: the operator's, else the schedule's."""
        return self.fan_auto if self.fan_override is None else self.fan_override


class BuildingStock:
    """The city's public buildings: a school, an office and a library per ``scale``."""

    def __init__(
        self,
        scale: int = 1,
        seed: int = 1,
        tz: tzinfo | str = UTC,
        params: BuildingParams | None = None,
    ) -> None:
        if scale < 1:
            raise ValueError(f"scale must be at least 1, got {scale}")
        self.params = params or BuildingParams()
        self._tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self._seed = seed
        sizes = random.Random(f"buildings-design:{seed}")
        self._buildings: list[_Building] = []
        for copy in range(scale):
            for building_type in BUILDING_TYPES:
                suffix = "" if copy == 0 else str(copy + 1)
                zones = [
                    _Zone(
                        number,
                        design.area_m2 * sizes.uniform(0.9, 1.1),
                        design.height_m,
                        design.capacity,
                    )
                    for number, design in enumerate(building_type.zones, start=1)
                ]
                index = len(self._buildings)
                name = f"{building_type.kind}{suffix}"
                self._buildings.append(_Building(index, name, building_type, zones))
        self._devices = tuple(self._device(building) for building in self._buildings)

    def devices(self) -> tuple[SimDevice, ...]:
        """One BACnet device per building, in the order school, office, library, school2…"""
        return self._devices

    def step(self, dt_s: float, now: datetime, weather: WeatherState) -> None:
        """Advance every building by ``dt_s`` simulated seconds ending at ``now``."""
        if dt_s < 0:
            raise ValueError(f"time step must not be negative, got {dt_s}")
        offset = now.astimezone(self._tz).utcoffset()
        if offset is None or now.utcoffset() is None:
            raise ValueError("step time must be timezone-aware")
        # Local seconds since the epoch: day numbers and hours without datetime arithmetic.
        local_end_s = now.timestamp() + offset.total_seconds()
        substeps = math.ceil(dt_s / MAX_SUBSTEP_S)
        sub_dt = dt_s / substeps if substeps else 0.0
        for index in range(substeps):
            local_s = local_end_s - (dt_s - (index + 1) * sub_dt)
            day, second = divmod(local_s, _SECONDS_PER_DAY)
            for building in self._buildings:
                self._advance(building, sub_dt, int(day), second / 3600.0, weather)

    # -- physics -----------------------------------------------------------------------------

    def _advance(
        self, building: _Building, dt_s: float, day: int, hour: float, weather: WeatherState
    ) -> None:
        params = self.params
        weekday = (day + _UNIX_EPOCH_WEEKDAY) % 7
        hours = building.building_type.operating_hours[weekday]
        occupied_mode = hours is not None and hours.start_h - _PREHEAT_H <= hour < hours.end_h
        building.fan_auto = hours is not None and hours.start_h - _FAN_LEAD_H <= hour < hours.end_h
        building.default_setpoint_c = (
            params.occupied_setpoint_c if occupied_mode else params.unoccupied_setpoint_c
        )
        fan_on = building.fan_on
        outdoor_c = weather.outdoor_temp_c
        zones = building.zones
        mean_c = sum(zone.temp_c for zone in zones) / len(zones)
        building.supply_air_c = self._supply_air(
            building.supply_air_c, fan_on, outdoor_c, mean_c, dt_s
        )
        supply_air_c = building.supply_air_c
        lux = weather.daylight_lux
        dimming = 1.0 - lux / _FULL_DAYLIGHT_LUX
        dimming = 0.15 if dimming < 0.15 else dimming
        exp = math.exp
        radiator_lag = exp(-dt_s / _RADIATOR_TIME_CONSTANT_S)
        tuning = params.valve_tuning
        fan = 1.0 if fan_on else 0.0
        electric_kw = 0.0
        mechanical_total = 0.0
        for zone in zones:
            if zone.plan_day != day:
                zone.plan = building.building_type.day_plan(
                    weekday, self._zone_random(building, zone, day), zone.capacity
                )
                zone.plan_day = day
            people = 0
            for visit in zone.plan:
                if visit.start_h <= hour < visit.end_h:
                    people = visit.people
                    break
            zone.people = people
            zone.occupied = people > 0
            lights_kw = zone.lighting_kw * dimming if people else 0.0
            plug_kw = zone.plug_base_kw + (zone.plug_occupied_kw if people else 0.0)
            electric_kw += lights_kw + plug_kw
            gains_kw = (
                people * _SENSIBLE_HEAT_PER_PERSON_KW
                + lights_kw
                + plug_kw
                + zone.solar_kw_per_lux * lux
            )
            target_kw = zone.valve_pct / 100.0 * zone.radiator_max_kw
            zone.radiator_kw = target_kw + (zone.radiator_kw - target_kw) * radiator_lag
            mechanical = fan * zone.damper_pct / 100.0 * zone.airflow_max_m3_s
            mechanical_total += mechanical
            infiltration = zone.infiltration_m3_s
            ua = zone.ua_kw_per_k
            conductance = ua + AIR_KJ_PER_M3K * (mechanical + infiltration)
            balance_c = (
                (ua + AIR_KJ_PER_M3K * infiltration) * outdoor_c
                + AIR_KJ_PER_M3K * mechanical * supply_air_c
                + gains_kw
                + zone.radiator_kw
            ) / conductance
            decay = exp(-conductance * dt_s / zone.capacity_kj_per_k)
            zone.temp_c = balance_c + (zone.temp_c - balance_c) * decay
            airflow = mechanical + infiltration
            co2_balance = OUTDOOR_CO2_PPM + people * CO2_PER_PERSON_M3_S * 1e6 / airflow
            zone.co2_ppm = co2_balance + (zone.co2_ppm - co2_balance) * exp(
                -airflow * dt_s / zone.volume_m3
            )
            # The zone controller samples its sensors and sets its outputs for the next interval.
            setpoint = zone.setpoint_override_c
            error = (building.default_setpoint_c if setpoint is None else setpoint) - zone.temp_c
            override = zone.valve_override_pct
            if override is None:
                zone.valve_pct, zone.integral = pi_step(tuning, zone.integral, error, dt_s)
            else:
                zone.valve_pct = override
                zone.integral = pi_track(tuning, override, error)
            damper = zone.damper_override_pct
            zone.damper_pct = self._ventilation_demand(zone, fan_on) if damper is None else damper
        fan_kw = _FAN_KW_PER_M3_S * mechanical_total + (0.3 if fan_on else 0.0)
        building.power_kw = electric_kw + fan_kw
        building.energy_kwh += building.power_kw * dt_s / 3600.0
        # The heat meter: the radiators' output and the air handler's heating coil, which lifts
        # the air leaving the heat recovery to the supply temperature.
        coil_kw = 0.0
        if fan_on and outdoor_c < mean_c:
            recovered_c = outdoor_c + _HEAT_RECOVERY * (mean_c - outdoor_c)
            if supply_air_c > recovered_c:
                coil_kw = AIR_KJ_PER_M3K * mechanical_total * (supply_air_c - recovered_c)
        start_kw = building.heat_power_kw
        building.heat_power_kw = sum(zone.radiator_kw for zone in zones) + coil_kw
        building.heat_energy_kwh += 0.5 * (start_kw + building.heat_power_kw) * dt_s / 3600.0

    @staticmethod
    def _supply_air(
        current_c: float, fan_on: bool, outdoor_c: float, room_c: float, dt_s: float
    ) -> float:
        """The air handler's supply temperature after ``dt_s``: recovery, then the coil."""
        if not fan_on:
            target = (outdoor_c + room_c) / 2.0  # still air in the unit, between the ducts
        elif outdoor_c >= room_c:
            target = outdoor_c  # summer: recovery bypassed, no cooling coil
        else:
            recovered = outdoor_c + _HEAT_RECOVERY * (room_c - outdoor_c)
            target = recovered if recovered > _MIN_SUPPLY_AIR_C else _MIN_SUPPLY_AIR_C
        return target + (current_c - target) * math.exp(-dt_s / _SUPPLY_AIR_TIME_CONSTANT_S)

    def _ventilation_demand(self, zone: _Zone, fan_on: bool) -> float:
        """Demand-controlled ventilation: the damper position the CO2 loop asks for, %."""
        if not fan_on:
            return 0.0  # the air handler is off: its zone dampers close
        params = self.params
        if zone.occupied:
            demand = 20.0 + params.damper_gain_pct_per_ppm * (zone.co2_ppm - params.co2_target_ppm)
            low = 20.0
        else:
            demand = params.damper_gain_pct_per_ppm * (zone.co2_ppm - params.co2_purge_ppm)
            low = 0.0
        return 100.0 if demand > 100.0 else low if demand < low else demand

    def _zone_random(self, building: _Building, zone: _Zone, day: int) -> random.Random:
        """A generator for one zone's day: the same seed and day always give the same plan."""
        return random.Random(
            f"buildings-occupancy:{self._seed}:{building.index}:{zone.number}:{day}"
        )

    # -- devices -----------------------------------------------------------------------------

    def _device(self, building: _Building) -> SimDevice:
        prefix = f"bldg.{building.name}"
        points: list[PointBinding] = []
        for zone in building.zones:
            points.extend(self._zone_points(building, zone, f"{prefix}.z{zone.number}"))

        def write_fan(value: PointValue) -> None:
            building.fan_override = bool(value)

        def release_fan() -> None:
            building.fan_override = None

        points += [
            PointBinding(
                PointSpec(
                    f"{prefix}.ahu.fan",
                    "bool",
                    writable=True,
                    role="output",
                    description="air handler supply fan command",
                ),
                read=lambda: building.fan_on,
                write=write_fan,
                release=release_fan,
            ),
            _input(
                f"{prefix}.ahu.supply_air_temp",
                "degC",
                -30.0,
                50.0,
                0.1,
                lambda: building.supply_air_c,
            ),
            _input(
                f"{prefix}.elec.power",
                "kW",
                0.0,
                500.0,
                0.5,
                lambda: building.power_kw,
            ),
            PointBinding(
                PointSpec(
                    f"{prefix}.elec.energy",
                    "counter",
                    "kWh",
                    low=0.0,
                    description="electricity meter energy",
                ),
                read=lambda: building.energy_kwh,
            ),
            # The heat meter, after the electricity meter so that no existing object moves.
            _input(
                f"{prefix}.heat.power",
                "kW",
                0.0,
                1000.0,
                0.5,
                lambda: building.heat_power_kw,
            ),
            PointBinding(
                PointSpec(
                    f"{prefix}.heat.energy",
                    "counter",
                    "kWh",
                    low=0.0,
                    description="heat meter energy (radiators and air handler coil)",
                ),
                read=lambda: building.heat_energy_kwh,
            ),
        ]
        return SimDevice(
            f"bldg.{building.name}_bms",
            "bacnet",
            points,
            description=f"{building.building_type.kind} building management controller",
            device_instance=FIRST_DEVICE_INSTANCE + building.index,
            seed=self._seed + building.index,
        )

    def _zone_points(self, building: _Building, zone: _Zone, prefix: str) -> list[PointBinding]:
        def write_setpoint(value: PointValue) -> None:
            zone.setpoint_override_c = float(value)

        def release_setpoint() -> None:
            zone.setpoint_override_c = None

        def write_valve(value: PointValue) -> None:
            zone.valve_override_pct = float(value)
            zone.valve_pct = float(value)

        def release_valve() -> None:
            zone.valve_override_pct = None

        def write_damper(value: PointValue) -> None:
            zone.damper_override_pct = float(value)
            zone.damper_pct = float(value)

        def release_damper() -> None:
            zone.damper_override_pct = None
            zone.damper_pct = self._ventilation_demand(zone, building.fan_on)

        def setpoint() -> float:
            override = zone.setpoint_override_c
            return building.default_setpoint_c if override is None else override

        return [
            _input(f"{prefix}.temp", "degC", 0.0, 40.0, 0.1, lambda: zone.temp_c),
            PointBinding(
                PointSpec(
                    f"{prefix}.setpoint",
                    "float",
                    "degC",
                    writable=True,
                    low=12.0,  # frost-protection setback (EN 15500 building automation: 12 degC)
                    high=28.0,
                    role="value",
                    cov_increment=0.1,
                    description="zone temperature setpoint",
                ),
                read=setpoint,
                write=write_setpoint,
                release=release_setpoint,
            ),
            PointBinding(
                PointSpec(f"{prefix}.occupied", "bool", description="zone occupancy sensor"),
                read=lambda: zone.occupied,
            ),
            _input(f"{prefix}.co2", "ppm", 0.0, 5000.0, 10.0, lambda: zone.co2_ppm),
            _output(
                f"{prefix}.valve",
                "heating valve",
                lambda: zone.valve_pct,
                write_valve,
                release_valve,
            ),
            _output(
                f"{prefix}.damper",
                "ventilation damper",
                lambda: zone.damper_pct,
                write_damper,
                release_damper,
            ),
        ]


def _input(
    tag: str, unit: str, low: float, high: float, cov: float, read: Callable[[], PointValue]
) -> PointBinding:
    """A read-only analog measurement."""
    spec = PointSpec(tag, "float", unit, low=low, high=high, role="input", cov_increment=cov)
    return PointBinding(spec, read=read)


def _output(
    tag: str,
    what: str,
    read: Callable[[], PointValue],
    write: Callable[[PointValue], None],
    release: Callable[[], None],
) -> PointBinding:
    """A commandable 0-100 % actuator output that returns to its loop when released."""
    spec = PointSpec(
        tag,
        "float",
        "%",
        writable=True,
        low=0.0,
        high=100.0,
        role="output",
        cov_increment=1.0,
        description=f"{what} position",
    )
    return PointBinding(spec, read=read, write=write, release=release)
