"""Physics of a water storage tank with one inflow pump and a daily demand outflow.

Pure model, no protocol: the Modbus server reads its state and forwards the pump command. Time
is given by the caller (``step(dt_s, now)``), so tests drive it without a clock or sleeping.

Model (SI units inside, m³/h at the interface because operators read flows in m³/h):

- level in metres, ``d(level)/dt = (inflow - outflow) / area``, clamped to ``[0, height]``;
  what does not fit spills over (``spill_m3h``), an empty tank delivers no more than flows in;
- the pump behaves as a PLC-controlled drive: the run command starts a start-up delay, after
  which the running feedback goes on and the inflow follows a first-order lag up to its rated
  flow; removing the command stops it at once;
- the demand follows a smooth daily pattern in the site's local time (night minimum around
  03:00, morning peak around 07:30, evening peak around 19:30) plus small, seeded, correlated
  noise.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

MAX_SUBSTEP_S = 1.0
"""Longest integration step: the pump lag and demand noise are explicit-Euler integrated."""

_SECONDS_PER_HOUR = 3600.0
_HOURS_PER_DAY = 24.0


@dataclass(frozen=True, slots=True)
class DemandAnchor:
    """One point of the daily demand pattern: local hour of day and demand in m³/h."""

    hour: float
    flow_m3h: float


DEFAULT_DEMAND_PATTERN: tuple[DemandAnchor, ...] = (
    DemandAnchor(3.0, 30.0),
    DemandAnchor(7.5, 110.0),
    DemandAnchor(13.0, 72.0),
    DemandAnchor(16.0, 66.0),
    DemandAnchor(19.5, 100.0),
    DemandAnchor(23.0, 52.0),
)
"""Typical residential drinking-water demand: a night minimum and two daily peaks."""


@dataclass(frozen=True, slots=True)
class TankParams:
    """Geometry, pump and demand parameters of a tank."""

    area_m2: float = 20.0
    height_m: float = 5.0
    initial_level_m: float = 3.0
    pump_rated_flow_m3h: float = 150.0
    pump_start_delay_s: float = 5.0
    pump_ramp_time_constant_s: float = 4.0
    demand_pattern: tuple[DemandAnchor, ...] = DEFAULT_DEMAND_PATTERN
    demand_noise_m3h: float = 2.0
    demand_noise_correlation_s: float = 120.0

    def __post_init__(self) -> None:
        if self.area_m2 <= 0 or self.height_m <= 0:
            raise ValueError("tank area and height must be positive")
        if not 0.0 <= self.initial_level_m <= self.height_m:
            raise ValueError(f"initial level {self.initial_level_m} m outside 0..{self.height_m}")
        if self.pump_rated_flow_m3h < 0 or self.pump_start_delay_s < 0:
            raise ValueError("pump flow and start delay must not be negative")
        if self.pump_ramp_time_constant_s <= 0 or self.demand_noise_correlation_s <= 0:
            raise ValueError("time constants must be positive")
        if len(self.demand_pattern) < 2:
            raise ValueError("the demand pattern needs at least two anchors")
        hours = [anchor.hour for anchor in self.demand_pattern]
        if hours != sorted(hours) or len(set(hours)) != len(hours):
            raise ValueError("demand anchors must be in strictly increasing hour order")
        if hours[0] < 0 or hours[-1] >= _HOURS_PER_DAY:
            raise ValueError("demand anchor hours must lie in [0, 24)")
        if any(anchor.flow_m3h < 0 for anchor in self.demand_pattern):
            raise ValueError("demand anchors must not be negative")


@dataclass(frozen=True, slots=True)
class TankState:
    """A snapshot of the tank after a step."""

    time: datetime | None
    level_m: float
    inflow_m3h: float
    outflow_m3h: float
    demand_m3h: float
    spill_m3h: float
    pump_command: bool
    pump_running: bool


def daily_demand_m3h(pattern: tuple[DemandAnchor, ...], local_hour: float) -> float:
    """Demand at a local hour of day: cosine interpolation between the anchors, periodic.

    Cosine interpolation keeps every anchor a local extremum of the curve, so the night minimum
    and the peaks are exactly where the pattern puts them.
    """
    hour = local_hour % _HOURS_PER_DAY
    first, last = pattern[0], pattern[-1]
    if hour < first.hour or hour >= last.hour:
        # The segment across midnight, from the last anchor to the first of the next day.
        before, after = last, first
        start_hour, end_hour = last.hour, first.hour + _HOURS_PER_DAY
        if hour < first.hour:
            hour += _HOURS_PER_DAY
    else:
        index = next(i for i in range(1, len(pattern)) if hour < pattern[i].hour)
        before, after = pattern[index - 1], pattern[index]
        start_hour, end_hour = before.hour, after.hour
    fraction = (hour - start_hour) / (end_hour - start_hour)
    weight = (1.0 - math.cos(math.pi * fraction)) / 2.0
    return before.flow_m3h + (after.flow_m3h - before.flow_m3h) * weight


@dataclass(slots=True)
class Tank:
    """A water tank with an inflow pump and a demand outflow, integrated by ``step``."""

    params: TankParams = field(default_factory=TankParams)
    seed: int = 1
    tz: tzinfo = UTC
    level_m: float = field(init=False)
    inflow_m3h: float = field(init=False, default=0.0)
    outflow_m3h: float = field(init=False, default=0.0)
    demand_m3h: float = field(init=False, default=0.0)
    spill_m3h: float = field(init=False, default=0.0)
    pump_command: bool = field(init=False, default=False)
    pump_running: bool = field(init=False, default=False)
    time: datetime | None = field(init=False, default=None)
    _start_elapsed_s: float = field(init=False, default=0.0)
    _noise_m3h: float = field(init=False, default=0.0)
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.level_m = self.params.initial_level_m
        self._random = random.Random(self.seed)

    def command_pump(self, run: bool) -> None:
        """Set the pump run command, as a write to the PLC's command coil does."""
        if run and not self.pump_command:
            self._start_elapsed_s = 0.0
        if not run:
            # Removing the run command trips the drive at once (no run-down is modelled).
            self.pump_running = False
            self.inflow_m3h = 0.0
        self.pump_command = run

    def snapshot(self) -> TankState:
        """The current state as an immutable value."""
        return TankState(
            time=self.time,
            level_m=self.level_m,
            inflow_m3h=self.inflow_m3h,
            outflow_m3h=self.outflow_m3h,
            demand_m3h=self.demand_m3h,
            spill_m3h=self.spill_m3h,
            pump_command=self.pump_command,
            pump_running=self.pump_running,
        )

    def step(self, dt_s: float, now: datetime) -> TankState:
        """Advance the model by ``dt_s`` seconds ending at ``now`` (aware); returns the new state.

        The interval is split into sub-steps of at most ``MAX_SUBSTEP_S`` so that a long interval
        (a fast clock) integrates as stably as many short ones.
        """
        if dt_s < 0:
            raise ValueError(f"time step must not be negative, got {dt_s}")
        if now.utcoffset() is None:
            raise ValueError("step time must be timezone-aware")
        substeps = math.ceil(dt_s / MAX_SUBSTEP_S)  # zero for a zero step: nothing to integrate
        sub_dt = dt_s / substeps if substeps else 0.0
        for index in range(substeps):
            sub_end = now - timedelta(seconds=dt_s - (index + 1) * sub_dt)
            self._substep(sub_dt, sub_end)
        self.time = now
        return self.snapshot()

    def _substep(self, dt_s: float, at: datetime) -> None:
        self._advance_pump(dt_s)
        self._advance_demand(dt_s, at)
        params = self.params
        volume_m3 = self.level_m * params.area_m2
        inflow_m3 = self.inflow_m3h * dt_s / _SECONDS_PER_HOUR
        wanted_out_m3 = self.demand_m3h * dt_s / _SECONDS_PER_HOUR
        # An empty tank delivers no more than flows into it in the same interval.
        out_m3 = min(wanted_out_m3, volume_m3 + inflow_m3)
        volume_m3 += inflow_m3 - out_m3
        capacity_m3 = params.height_m * params.area_m2
        spilled_m3 = max(0.0, volume_m3 - capacity_m3)
        volume_m3 = min(max(volume_m3, 0.0), capacity_m3)
        per_hour = _SECONDS_PER_HOUR / dt_s
        self.outflow_m3h = out_m3 * per_hour
        self.spill_m3h = spilled_m3 * per_hour
        self.level_m = volume_m3 / params.area_m2

    def _advance_pump(self, dt_s: float) -> None:
        params = self.params
        if not self.pump_command:
            return
        if not self.pump_running:
            self._start_elapsed_s += dt_s
            if self._start_elapsed_s < params.pump_start_delay_s:
                return
            self.pump_running = True
        # First-order lag towards the rated flow: the drive ramps and the flow settles.
        lag = 1.0 - math.exp(-dt_s / params.pump_ramp_time_constant_s)
        self.inflow_m3h += (params.pump_rated_flow_m3h - self.inflow_m3h) * lag

    def _advance_demand(self, dt_s: float, at: datetime) -> None:
        params = self.params
        local = at.astimezone(self.tz)
        local_hour = local.hour + local.minute / 60.0 + local.second / 3600.0
        base = daily_demand_m3h(params.demand_pattern, local_hour)
        # Ornstein-Uhlenbeck noise: correlated over minutes like real consumption, bounded
        # variance (stationary standard deviation = demand_noise_m3h) whatever the step size.
        decay = math.exp(-dt_s / params.demand_noise_correlation_s)
        spread = params.demand_noise_m3h * math.sqrt(1.0 - decay * decay)
        self._noise_m3h = self._noise_m3h * decay + spread * self._random.gauss(0.0, 1.0)
        self.demand_m3h = max(0.0, base + self._noise_m3h)
