"""District heating: a heat plant and its circulation pumps feeding substations through long pipes.

Every device here speaks Modbus TCP: heat-plant PLCs and substation controllers in district
heating commonly expose Modbus TCP, and their heat meters (EN 1434, read over M-Bus, EN 13757)
reach SCADA through M-Bus-to-Modbus gateways. Devices: ``heat.plant_plc`` (unit 1) and one
``heat.ss<N>_ctrl`` per substation (unit 1, each on its own port). Modbus has no relinquish, so
each overridable substation output has a ``*_manual`` coil: writing the output switches it to
manual, writing the coil false returns it to automatic (``SimDevice.release`` does the same).

Physics, integrated in sub-steps of at most ``MAX_SUBSTEP_S`` with exact exponential relaxations
(so any step up to an hour is stable and costs at most 60 sub-steps):

- Hydraulics: the plant's variable-speed pumps work against the network's conductance (the sum
  of the substations' control-valve and bypass Kv values). The pump curve gives
  ``dp = shutoff * speed^2 - k * (flow / pumps)^2`` (affinity laws: head rises with speed
  squared and falls with flow); the PLC's speed loop holds the differential-pressure setpoint,
  modelled by its result (the speed that holds it, reached with a first-order lag).
- Supply temperature: first-order approach to the setpoint, limited by the plant's maximum
  output ``flow * cp * (supply - return)``.
- Transport: plug flow (``plc_sim.heating.transport``) at the trunk's velocity, so each
  substation sees the plant's supply temperature after its own pipe length / velocity delay
  (5-30 min at design flow, longer at low flow), cooled towards the ground while in the pipe.
- Substations: a counter-flow heat exchanger with fixed effectiveness between the primary flow
  (through the control valve) and the building's secondary circuit; the substation's PI loop
  moves the valve to hold the secondary supply temperature at its outdoor-reset setpoint. A
  thermostatic bypass keeps each service pipe warm with a small flow of supply water, which is
  why the plant's return is hotter at low load, as in real networks in summer.
- Load: space heating by heating degrees (none above ``heating_limit_c``) times a daily profile
  (night setback, morning peak), plus domestic hot water peaks, with correlated noise per
  substation. A higher load at a given flow cools the primary water more.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from plc_sim.device import PointBinding, PointSpec, PointValue, SimDevice
from plc_sim.heating.transport import TransportLine
from plc_sim.pi_controller import PiTuning, pi_step, pi_track
from plc_sim.weather import WeatherState

WATER_KWH_PER_M3K = 1.163
"""Volumetric heat capacity of hot water, kWh per m3 and kelvin (4.186 kJ/kgK, ~1000 kg/m3)."""
MAX_SUBSTEP_S = 60.0
"""Longest interval integrated at once: half the 120 s secondary loop time constant, where the
exact exponential updates keep the valve loops smooth and stable (checked up to 60 s)."""
NOISE_INTERVAL_S = 10.0
"""Load noise is drawn at most this often: a 100 ms physics step need not draw 120 numbers."""
GROUND_TEMP_C = 8.0
"""Soil temperature around the buried pipes."""
PIPE_COOLING_TIME_S = 12 * 3600.0
"""Time constant of standing water cooling towards the ground in a pre-insulated pipe."""
ROOM_TEMP_C = 20.0
"""Indoor temperature the buildings' radiators emit into."""
SUBSTATIONS_PER_SCALE = 6
PUMP_COUNT = 2
PLANT_DEVICE = "heat.plant_plc"
MODBUS_UNIT_ID = 1

_SECONDS_PER_HOUR = 3600.0
_RADIATOR_EXPONENT = 1.3
"""EN 442 radiator exponent: output grows with (mean temperature - room)^1.3."""

SPACE_HEATING_PROFILE: tuple[tuple[float, float], ...] = (
    (0.0, 0.80),
    (4.5, 0.80),
    (6.5, 1.25),
    (9.0, 1.05),
    (16.0, 0.95),
    (19.0, 1.05),
    (22.0, 0.85),
)
"""(local hour, factor) of the space-heating load: night setback, morning reheat peak."""
HOT_WATER_PROFILE: tuple[tuple[float, float], ...] = (
    (0.0, 0.20),
    (4.0, 0.15),
    (7.0, 1.00),
    (9.0, 0.50),
    (12.0, 0.60),
    (15.0, 0.40),
    (19.5, 0.90),
    (22.0, 0.40),
)
"""(local hour, factor) of domestic hot water use: morning and evening peaks."""


_VALVE_TUNING = PiTuning(gain=3.0, integral_time_s=240.0)
"""Substation valve loop: 3 % per kelvin of secondary supply error, 4 min integral time."""


@dataclass(frozen=True, slots=True)
class HeatingParams:
    """Design parameters of the network (defaults: a mid-size European city network)."""

    supply_setpoint_c: float = 90.0
    plant_time_constant_s: float = 300.0
    plant_capacity_margin: float = 1.4
    """Plant maximum output over the sum of the substations' design loads."""
    dp_setpoint_bar: float = 2.5
    pump_shutoff_bar: float = 6.0
    """Pump head at full speed and zero flow."""
    pump_min_speed_pct: float = 30.0
    pump_start_delay_s: float = 3.0
    pump_speed_time_constant_s: float = 10.0
    design_velocity_m_s: float = 1.2
    pipe_length_m: tuple[float, float] = (500.0, 2000.0)
    design_load_kw: tuple[float, float] = (300.0, 1500.0)
    design_outdoor_c: float = -12.0
    heating_limit_c: float = 18.0
    """Outdoor temperature above which buildings need no space heating."""
    hx_effectiveness: float = 0.85
    bypass_fraction: float = 0.08
    """Thermostatic bypass flow of each substation, as a fraction of its design flow."""
    secondary_design_delta_k: float = 20.0
    secondary_time_constant_s: float = 120.0
    return_time_constant_s: float = 600.0
    """Lag of the plant's return temperature behind the substations' mixed return."""
    reset_warm_c: float = 15.0
    reset_warm_supply_c: float = 55.0
    reset_cold_supply_c: float = 70.0
    """Outdoor-reset curve: secondary supply at ``reset_warm_c`` and at the design outdoor."""
    load_noise: float = 0.05
    load_noise_time_s: float = 1800.0
    valve_tuning: PiTuning = _VALVE_TUNING

    def __post_init__(self) -> None:
        if not 60.0 <= self.supply_setpoint_c <= 120.0:
            raise ValueError(f"supply setpoint {self.supply_setpoint_c} outside 60..120 degC")
        if self.pump_shutoff_bar <= self.dp_setpoint_bar:
            raise ValueError("the pumps' shutoff head must exceed the dp setpoint")
        for low, high in (self.pipe_length_m, self.design_load_kw):
            if not 0 < low <= high:
                raise ValueError(f"range {low}..{high} must be positive and ordered")
        if self.design_outdoor_c >= self.heating_limit_c:
            raise ValueError("the design outdoor temperature must be below the heating limit")
        if min(self.reset_warm_supply_c, self.reset_cold_supply_c) <= ROOM_TEMP_C + 5.0:
            raise ValueError("the outdoor-reset curve must supply water above room temperature")
        if not 0 < self.hx_effectiveness < 1 or self.bypass_fraction < 0:
            raise ValueError("heat exchanger effectiveness in (0, 1), bypass not negative")
        positive = (
            self.plant_time_constant_s,
            self.plant_capacity_margin,
            self.pump_speed_time_constant_s,
            self.design_velocity_m_s,
            self.secondary_design_delta_k,
            self.secondary_time_constant_s,
            self.return_time_constant_s,
            self.load_noise_time_s,
        )
        if min(positive) <= 0 or self.pump_start_delay_s < 0 or self.load_noise < 0:
            raise ValueError("time constants, velocity and margins must be positive")


@dataclass(frozen=True, slots=True)
class SubstationDesign:
    """The fixed sizing of one substation, drawn from the network's seed."""

    number: int
    pipe_length_m: float
    design_load_kw: float
    hot_water_fraction: float
    """Peak domestic hot water load over the design space-heating load."""
    design_flow_m3h: float
    """Primary flow that carries the design load."""
    valve_kvs: float
    """Control valve flow at full opening under 1 bar, m3/h."""
    bypass_kv: float
    secondary_kw_per_k: float
    """Heat capacity flow of the secondary circuit (its design flow times cp)."""

    @property
    def prefix(self) -> str:
        """Tag prefix of the substation's points, e.g. ``heat.ss3``."""
        return f"heat.ss{self.number}"

    @property
    def device_name(self) -> str:
        """Device name of the substation controller, e.g. ``heat.ss3_ctrl``."""
        return f"heat.ss{self.number}_ctrl"


class _Pump:
    """A circulation pump's state: run command, running feedback and speed."""

    __slots__ = ("run_command", "running", "speed_pct", "start_elapsed_s")

    def __init__(self, run_command: bool) -> None:
        self.run_command = run_command
        self.running = run_command
        self.speed_pct = 0.0
        self.start_elapsed_s = 0.0


class _Substation:
    """A substation's changing state (its design is ``design``)."""

    __slots__ = (
        "design",
        "heat_energy_kwh",
        "heat_power_kw",
        "integral",
        "load_factor",
        "primary_flow_m3h",
        "primary_return_c",
        "primary_supply_c",
        "secondary_return_c",
        "secondary_supply_c",
        "setpoint_override_c",
        "transport_delay_s",
        "valve_override_pct",
        "valve_pct",
    )

    def __init__(self, design: SubstationDesign, supply_c: float) -> None:
        self.design = design
        self.primary_supply_c = supply_c
        self.primary_return_c = 50.0
        self.primary_flow_m3h = 0.0
        self.secondary_supply_c = 60.0
        self.secondary_return_c = 45.0
        self.valve_pct = 40.0
        self.integral = 40.0
        self.valve_override_pct: float | None = None
        self.setpoint_override_c: float | None = None
        self.heat_power_kw = 0.0
        self.heat_energy_kwh = 0.0
        self.load_factor = 1.0
        self.transport_delay_s = 0.0


def daily_profile(anchors: tuple[tuple[float, float], ...], local_hour: float) -> float:
    """A periodic daily profile: cosine interpolation between (hour, value) anchors."""
    hour = local_hour % 24.0
    count = len(anchors)
    for index in range(count):
        start_hour, start_value = anchors[index]
        end_hour, end_value = anchors[(index + 1) % count]
        if index == count - 1:
            end_hour += 24.0
            if hour < anchors[0][0]:
                hour += 24.0
        if start_hour <= hour < end_hour or index == count - 1:
            weight = (1.0 - math.cos(math.pi * (hour - start_hour) / (end_hour - start_hour))) / 2
            return start_value + (end_value - start_value) * weight
    raise AssertionError("unreachable: the last segment wraps around midnight")


class HeatingNetwork:
    """A district heating network: one plant, its pumps and ``6 * scale`` substations."""

    def __init__(
        self,
        scale: int = 1,
        seed: int = 1,
        tz: tzinfo | str = UTC,
        params: HeatingParams | None = None,
    ) -> None:
        if scale < 1:
            raise ValueError(f"scale must be at least 1, got {scale}")
        self.params = params or HeatingParams()
        self._tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self._noise = random.Random(f"heating-noise:{seed}")
        self.designs = _draw_designs(self.params, SUBSTATIONS_PER_SCALE * scale, seed)
        self._substations = [_Substation(d, self.params.supply_setpoint_c) for d in self.designs]
        params = self.params
        self.design_flow_m3h = (1.0 + params.bypass_fraction) * sum(
            d.design_flow_m3h for d in self.designs
        )
        self.max_output_kw = params.plant_capacity_margin * sum(
            d.design_load_kw for d in self.designs
        )
        # One pump at full speed delivers 1.2 x the design flow at the dp setpoint.
        self._pump_flow_coefficient = (params.pump_shutoff_bar - params.dp_setpoint_bar) / (
            1.2 * self.design_flow_m3h
        ) ** 2
        self._line = TransportLine(
            params.supply_setpoint_c, max(d.pipe_length_m for d in self.designs)
        )
        self._pumps = [_Pump(run_command=index == 0) for index in range(PUMP_COUNT)]
        self._elapsed_s = 0.0
        self.supply_setpoint_c = params.supply_setpoint_c
        self.supply_temp_c = params.supply_setpoint_c
        self.return_temp_c = 50.0
        self.flow_m3h = 0.0
        self.heat_output_kw = 0.0
        self.heat_energy_mwh = 0.0
        self.outdoor_temp_c = 0.0
        self.dp_setpoint_bar = params.dp_setpoint_bar
        self.diff_pressure_bar = 0.0
        self.at_capacity = False
        self.reset_setpoint_c = params.reset_cold_supply_c
        self._heating_degree_factor = 0.0
        self._noise_pending_s = 0.0
        self._devices = (self._plant_device(seed), *self._substation_devices(seed))

    def devices(self) -> tuple[SimDevice, ...]:
        """The plant PLC, then the substation controllers in number order."""
        return self._devices

    def transport_delay_s(self, number: int) -> float:
        """How long the water now arriving at substation ``number`` was in the pipe, s."""
        return self._substation(number).transport_delay_s

    def step(self, dt_s: float, now: datetime, weather: WeatherState) -> None:
        """Advance the network by ``dt_s`` simulated seconds ending at ``now``."""
        if dt_s < 0:
            raise ValueError(f"time step must not be negative, got {dt_s}")
        if now.utcoffset() is None:
            raise ValueError("step time must be timezone-aware")
        params = self.params
        self.outdoor_temp_c = weather.outdoor_temp_c
        heating_degrees = max(0.0, params.heating_limit_c - weather.outdoor_temp_c)
        self._heating_degree_factor = heating_degrees / (
            params.heating_limit_c - params.design_outdoor_c
        )
        self.reset_setpoint_c = self._reset_curve(weather.outdoor_temp_c)
        self._advance_load_noise(dt_s)
        local = now.astimezone(self._tz)
        end_hour = local.hour + local.minute / 60 + (local.second + local.microsecond / 1e6) / 3600
        substeps = math.ceil(dt_s / MAX_SUBSTEP_S)  # zero for a zero step: nothing to integrate
        sub_dt = dt_s / substeps if substeps else 0.0
        for index in range(substeps):
            hour = end_hour - (dt_s - (index + 1) * sub_dt) / _SECONDS_PER_HOUR
            self._substep(sub_dt, hour)

    # -- physics -----------------------------------------------------------------------------

    def _reset_curve(self, outdoor_c: float) -> float:
        params = self.params
        span = params.reset_warm_c - params.design_outdoor_c
        cold = min(1.0, max(0.0, (params.reset_warm_c - outdoor_c) / span))
        return params.reset_warm_supply_c + cold * (
            params.reset_cold_supply_c - params.reset_warm_supply_c
        )

    def _advance_load_noise(self, dt_s: float) -> None:
        """Ornstein-Uhlenbeck load multipliers: correlated over half an hour, exact for any dt."""
        self._noise_pending_s += dt_s
        if self._noise_pending_s < NOISE_INTERVAL_S:
            return
        dt_s, self._noise_pending_s = self._noise_pending_s, 0.0
        params = self.params
        decay = math.exp(-dt_s / params.load_noise_time_s)
        spread = params.load_noise * math.sqrt(1.0 - decay * decay)
        gauss = self._noise.gauss
        for station in self._substations:
            factor = 1.0 + (station.load_factor - 1.0) * decay + spread * gauss(0.0, 1.0)
            station.load_factor = min(1.5, max(0.5, factor))

    def _substep(self, dt_s: float, local_hour: float) -> None:
        params = self.params
        self._elapsed_s += dt_s
        conductance = 0.0
        for station in self._substations:
            design = station.design
            conductance += design.valve_kvs * station.valve_pct / 100.0 + design.bypass_kv
        self._advance_hydraulics(dt_s, conductance)
        self._advance_plant_temperature(dt_s)
        velocity = params.design_velocity_m_s * self.flow_m3h / self.design_flow_m3h
        self._line.advance(velocity * dt_s, self._elapsed_s, self.supply_temp_c)
        space_heating = self._heating_degree_factor * daily_profile(
            SPACE_HEATING_PROFILE, local_hour
        )
        hot_water = daily_profile(HOT_WATER_PROFILE, local_hour)
        mixed_return = self._advance_substations(dt_s, space_heating, hot_water)
        if mixed_return is None:
            target, time_constant = GROUND_TEMP_C, PIPE_COOLING_TIME_S
        else:
            target, time_constant = mixed_return, params.return_time_constant_s
        self.return_temp_c = target + (self.return_temp_c - target) * math.exp(
            -dt_s / time_constant
        )

    def _advance_hydraulics(self, dt_s: float, conductance: float) -> None:
        params = self.params
        shutoff = params.pump_shutoff_bar
        running = 0
        for pump in self._pumps:
            if pump.run_command and not pump.running:
                pump.start_elapsed_s += dt_s
                if pump.start_elapsed_s >= params.pump_start_delay_s:
                    pump.running = True
            running += pump.running
        if running:
            # Parallel pumps share the flow; the speed that holds the dp setpoint follows from
            # dp = shutoff*s^2 - k*(Q/n)^2 with Q = conductance*sqrt(dp).
            friction = self._pump_flow_coefficient * conductance**2 / running**2
            wanted = math.sqrt(self.dp_setpoint_bar * (1.0 + friction) / shutoff) * 100.0
            target_pct = min(100.0, max(params.pump_min_speed_pct, wanted))
        else:
            friction, target_pct = 0.0, 0.0
        lag = math.exp(-dt_s / params.pump_speed_time_constant_s)
        speed_sum = 0.0
        for pump in self._pumps:
            goal = target_pct if pump.running else 0.0
            pump.speed_pct = goal + (pump.speed_pct - goal) * lag
            if pump.running:
                speed_sum += pump.speed_pct
        if not running:
            self.flow_m3h, self.diff_pressure_bar = 0.0, 0.0
            return
        speed = speed_sum / running / 100.0
        self.flow_m3h = speed * conductance * math.sqrt(shutoff / (1.0 + friction))
        self.diff_pressure_bar = shutoff * speed * speed / (1.0 + friction)

    def _advance_plant_temperature(self, dt_s: float) -> None:
        params = self.params
        capacity_flow = self.flow_m3h * WATER_KWH_PER_M3K
        target = self.supply_setpoint_c
        if capacity_flow > 0:
            target = min(target, self.return_temp_c + self.max_output_kw / capacity_flow)
        self.at_capacity = target < self.supply_setpoint_c - 0.5
        lag = math.exp(-dt_s / params.plant_time_constant_s)
        supply = target + (self.supply_temp_c - target) * lag
        if capacity_flow > 0 and capacity_flow * (supply - self.return_temp_c) > self.max_output_kw:
            # A sudden rise in flow: the boilers cannot heat it to the lagged temperature.
            supply = self.return_temp_c + self.max_output_kw / capacity_flow
        self.supply_temp_c = max(GROUND_TEMP_C, supply)
        self.heat_output_kw = max(0.0, capacity_flow * (self.supply_temp_c - self.return_temp_c))
        self.heat_energy_mwh += self.heat_output_kw * dt_s / _SECONDS_PER_HOUR / 1000.0

    def _advance_substations(
        self, dt_s: float, space_heating: float, hot_water: float
    ) -> float | None:
        """Advance every substation; the flow-weighted primary return temperature, or None."""
        params = self.params
        line = self._line
        elapsed = self._elapsed_s
        exp = math.exp
        root_dp = math.sqrt(self.diff_pressure_bar)
        effectiveness = params.hx_effectiveness
        secondary_lag = exp(-dt_s / params.secondary_time_constant_s)
        needed_c = self.reset_setpoint_c
        needed_above_room_k = needed_c - ROOM_TEMP_C
        tuning = params.valve_tuning
        hours = dt_s / _SECONDS_PER_HOUR
        return_heat = 0.0
        return_flow = 0.0
        for station in self._substations:
            design = station.design
            departure_temp_c, departure_time_s = line.arrival(design.pipe_length_m)
            residence_s = elapsed - departure_time_s
            station.transport_delay_s = residence_s
            supply_c = GROUND_TEMP_C + (departure_temp_c - GROUND_TEMP_C) * exp(
                -residence_s / PIPE_COOLING_TIME_S
            )
            station.primary_supply_c = supply_c
            flow = design.valve_kvs * station.valve_pct / 100.0 * root_dp
            bypass_flow = design.bypass_kv * root_dp
            # The building takes its demand when the secondary water is hot enough (thermostatic
            # valves throttle any excess); colder water delivers less through the radiators.
            demand_kw = (
                design.design_load_kw
                * (space_heating + design.hot_water_fraction * hot_water)
                * station.load_factor
            )
            secondary_c = station.secondary_supply_c
            secondary_flow = design.secondary_kw_per_k
            above_room_k = secondary_c - ROOM_TEMP_C
            if above_room_k <= 0.0:
                delivered_kw = 0.0
            else:
                emission = above_room_k / needed_above_room_k
                if emission < 1.0:
                    demand_kw *= emission**_RADIATOR_EXPONENT
                capacity_kw = secondary_flow * above_room_k
                delivered_kw = demand_kw if demand_kw < capacity_kw else capacity_kw
            secondary_return_c = secondary_c - delivered_kw / secondary_flow
            primary_flow = flow * WATER_KWH_PER_M3K
            ratio = 1.0 if primary_flow <= secondary_flow else secondary_flow / primary_flow
            approach_k = supply_c - secondary_return_c
            primary_drop = effectiveness * ratio * approach_k if approach_k > 0.0 else 0.0
            heat_kw = primary_flow * primary_drop
            outlet_c = secondary_return_c + heat_kw / secondary_flow
            station.secondary_supply_c = outlet_c + (secondary_c - outlet_c) * secondary_lag
            station.secondary_return_c = secondary_return_c
            station.primary_return_c = supply_c - primary_drop
            station.primary_flow_m3h = flow
            station.heat_power_kw = heat_kw
            station.heat_energy_kwh += heat_kw * hours
            return_heat += flow * station.primary_return_c + bypass_flow * supply_c
            return_flow += flow + bypass_flow
            # The controller samples its sensor and moves the valve for the next interval.
            setpoint = station.setpoint_override_c
            error = (needed_c if setpoint is None else setpoint) - station.secondary_supply_c
            override = station.valve_override_pct
            if override is None:
                station.valve_pct, station.integral = pi_step(tuning, station.integral, error, dt_s)
            else:
                station.valve_pct = override
                station.integral = pi_track(tuning, override, error)
        return return_heat / return_flow if return_flow > 0 else None

    # -- devices -----------------------------------------------------------------------------

    def _substation(self, number: int) -> _Substation:
        if not 1 <= number <= len(self._substations):
            raise KeyError(f"no substation {number} (1..{len(self._substations)})")
        return self._substations[number - 1]

    def _plant_device(self, seed: int) -> SimDevice:
        points: list[PointBinding] = [
            PointBinding(
                _value("heat.plant.supply_setpoint", "degC", 60.0, 120.0, "supply temperature"),
                read=lambda: self.supply_setpoint_c,
                write=self._write_supply_setpoint,
                release=self._release_supply_setpoint,
            ),
            _reading("heat.plant.supply_temp", "degC", 0.0, 130.0, lambda: self.supply_temp_c),
            _reading("heat.plant.return_temp", "degC", 0.0, 130.0, lambda: self.return_temp_c),
            _reading(
                "heat.plant.flow", "m3/h", 0.0, 2.0 * self.design_flow_m3h, lambda: self.flow_m3h
            ),
            _reading(
                "heat.plant.heat_output",
                "MW",
                0.0,
                self.max_output_kw / 1000.0,
                lambda: self.heat_output_kw / 1000.0,
                cov=0.01,
            ),
            PointBinding(
                PointSpec(
                    "heat.plant.heat_energy",
                    "counter",
                    "MWh",
                    low=0.0,
                    description="heat delivered into the network",
                ),
                read=lambda: self.heat_energy_mwh,
            ),
            _reading("heat.plant.outdoor_temp", "degC", -40.0, 50.0, lambda: self.outdoor_temp_c),
            _reading(
                "heat.plant.diff_pressure",
                "bar",
                0.0,
                self.params.pump_shutoff_bar,
                lambda: self.diff_pressure_bar,
                cov=0.01,
            ),
            PointBinding(
                _value("heat.plant.dp_setpoint", "bar", 0.5, 5.0, "pump differential pressure"),
                read=lambda: self.dp_setpoint_bar,
                write=self._write_dp_setpoint,
                release=self._release_dp_setpoint,
            ),
            PointBinding(
                PointSpec(
                    "heat.plant.at_capacity",
                    "bool",
                    description="plant at maximum output: supply below setpoint",
                ),
                read=lambda: self.at_capacity,
            ),
        ]
        for index, pump in enumerate(self._pumps, start=1):
            points.extend(self._pump_points(index, pump))
        return SimDevice(
            PLANT_DEVICE,
            "modbus",
            points,
            description="heat plant PLC",
            unit_id=MODBUS_UNIT_ID,
            seed=seed,
        )

    def _pump_points(self, index: int, pump: _Pump) -> list[PointBinding]:
        prefix = f"heat.plant.pump{index}"
        default_run = index == 1

        def write_run(value: PointValue) -> None:
            self._command_pump(pump, bool(value))

        def release_run() -> None:
            self._command_pump(pump, default_run)

        return [
            PointBinding(
                PointSpec(
                    f"{prefix}.run_cmd",
                    "bool",
                    writable=True,
                    role="output",
                    description=f"circulation pump {index} run command",
                ),
                read=lambda: pump.run_command,
                write=write_run,
                release=release_run,
            ),
            PointBinding(
                PointSpec(f"{prefix}.running", "bool", description=f"pump {index} running"),
                read=lambda: pump.running,
            ),
            _reading(f"{prefix}.speed", "%", 0.0, 100.0, lambda: pump.speed_pct, cov=0.5),
        ]

    def _substation_devices(self, seed: int) -> list[SimDevice]:
        return [
            SimDevice(
                station.design.device_name,
                "modbus",
                self._substation_points(station),
                description=f"district heating substation {station.design.number} controller",
                unit_id=MODBUS_UNIT_ID,
                seed=seed + station.design.number,
            )
            for station in self._substations
        ]

    def _substation_points(self, station: _Substation) -> list[PointBinding]:
        design = station.design
        prefix = design.prefix
        max_flow = design.valve_kvs * math.sqrt(self.params.pump_shutoff_bar)

        def write_valve(value: PointValue) -> None:
            station.valve_override_pct = float(value)
            station.valve_pct = float(value)

        def release_valve() -> None:
            station.valve_override_pct = None

        def write_valve_manual(value: PointValue) -> None:
            if value:
                write_valve(station.valve_pct)
            else:
                release_valve()

        def write_setpoint(value: PointValue) -> None:
            station.setpoint_override_c = float(value)

        def release_setpoint() -> None:
            station.setpoint_override_c = None

        def write_setpoint_manual(value: PointValue) -> None:
            if value:
                write_setpoint(self._station_setpoint(station))
            else:
                release_setpoint()

        return [
            _reading(
                f"{prefix}.primary_supply_temp",
                "degC",
                0.0,
                130.0,
                lambda: station.primary_supply_c,
            ),
            _reading(
                f"{prefix}.primary_return_temp",
                "degC",
                0.0,
                130.0,
                lambda: station.primary_return_c,
            ),
            _reading(
                f"{prefix}.primary_flow", "m3/h", 0.0, max_flow, lambda: station.primary_flow_m3h
            ),
            PointBinding(
                PointSpec(
                    f"{prefix}.valve",
                    "float",
                    "%",
                    writable=True,
                    low=0.0,
                    high=100.0,
                    role="output",
                    cov_increment=1.0,
                    description="primary control valve position",
                ),
                read=lambda: station.valve_pct,
                write=write_valve,
                release=release_valve,
            ),
            PointBinding(
                PointSpec(
                    f"{prefix}.valve_manual",
                    "bool",
                    writable=True,
                    role="value",
                    description="valve in manual (false: the loop drives it)",
                ),
                read=lambda: station.valve_override_pct is not None,
                write=write_valve_manual,
                release=release_valve,
            ),
            _reading(
                f"{prefix}.supply_temp", "degC", 0.0, 130.0, lambda: station.secondary_supply_c
            ),
            _reading(
                f"{prefix}.return_temp", "degC", 0.0, 130.0, lambda: station.secondary_return_c
            ),
            PointBinding(
                _value(f"{prefix}.supply_setpoint", "degC", 30.0, 95.0, "secondary supply"),
                read=lambda: self._station_setpoint(station),
                write=write_setpoint,
                release=release_setpoint,
            ),
            PointBinding(
                PointSpec(
                    f"{prefix}.setpoint_manual",
                    "bool",
                    writable=True,
                    role="value",
                    description="setpoint fixed by an operator (false: outdoor-reset curve)",
                ),
                read=lambda: station.setpoint_override_c is not None,
                write=write_setpoint_manual,
                release=release_setpoint,
            ),
            _reading(
                f"{prefix}.heat_power",
                "kW",
                0.0,
                2.0 * design.design_load_kw,
                lambda: station.heat_power_kw,
                cov=1.0,
            ),
            PointBinding(
                PointSpec(
                    f"{prefix}.heat_energy",
                    "counter",
                    "kWh",
                    low=0.0,
                    description="heat meter energy",
                ),
                read=lambda: station.heat_energy_kwh,
            ),
        ]

    def _station_setpoint(self, station: _Substation) -> float:
        override = station.setpoint_override_c
        return self.reset_setpoint_c if override is None else override

    def _write_supply_setpoint(self, value: PointValue) -> None:
        self.supply_setpoint_c = float(value)

    def _release_supply_setpoint(self) -> None:
        self.supply_setpoint_c = self.params.supply_setpoint_c

    def _write_dp_setpoint(self, value: PointValue) -> None:
        self.dp_setpoint_bar = float(value)

    def _release_dp_setpoint(self) -> None:
        self.dp_setpoint_bar = self.params.dp_setpoint_bar

    @staticmethod
    def _command_pump(pump: _Pump, run: bool) -> None:
        if run and not pump.run_command:
            pump.start_elapsed_s = 0.0
        if not run:
            pump.running = False  # removing the run command trips the drive at once
        pump.run_command = run


def _draw_designs(params: HeatingParams, count: int, seed: int) -> tuple[SubstationDesign, ...]:
    """Size ``count`` substations from the seed: pipe lengths, loads and matching valves."""
    rng = random.Random(f"heating-design:{seed}")
    designs = []
    # Design point: supply 88 degC arriving, secondary return = cold reset supply - design dT.
    design_secondary_return_c = params.reset_cold_supply_c - params.secondary_design_delta_k
    design_drop_k = params.hx_effectiveness * (
        params.supply_setpoint_c - 2.0 - design_secondary_return_c
    )
    for number in range(1, count + 1):
        load_kw = rng.uniform(*params.design_load_kw)
        flow_m3h = load_kw / (WATER_KWH_PER_M3K * design_drop_k)
        root_dp = math.sqrt(params.dp_setpoint_bar)
        designs.append(
            SubstationDesign(
                number=number,
                pipe_length_m=rng.uniform(*params.pipe_length_m),
                design_load_kw=load_kw,
                hot_water_fraction=rng.uniform(0.10, 0.20),
                design_flow_m3h=flow_m3h,
                # The valve passes 1.5x the design flow fully open: about 2/3 open at design.
                valve_kvs=1.5 * flow_m3h / root_dp,
                bypass_kv=params.bypass_fraction * flow_m3h / root_dp,
                secondary_kw_per_k=load_kw / params.secondary_design_delta_k,
            )
        )
    return tuple(designs)


def _reading(
    tag: str,
    unit: str,
    low: float,
    high: float,
    read: Callable[[], PointValue],
    cov: float = 0.1,
) -> PointBinding:
    """A read-only analog measurement."""
    spec = PointSpec(tag, "float", unit, low=low, high=high, role="input", cov_increment=cov)
    return PointBinding(spec, read=read)


def _value(tag: str, unit: str, low: float, high: float, what: str) -> PointSpec:
    """A writable software setpoint."""
    return PointSpec(
        tag,
        "float",
        unit,
        writable=True,
        low=low,
        high=high,
        role="value",
        cov_increment=0.1,
        description=f"{what} setpoint",
    )
