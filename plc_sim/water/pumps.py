"""Physics of a booster pump station: centrifugal pumps in parallel against a system curve.

Pure model, no protocol. Heads in metres of water, flows in m3/h.

- Pump curve at speed ``n`` (percent of rated): ``H = H0 * (n / 100)^2 - k * Q^2`` (the
  affinity laws scale the shut-off head with the square of the speed; the quadratic drop with
  flow is the usual fit of a centrifugal pump's published curve).
- System curve to the reservoir fed: ``H = H_static + r * Q_total^2``, with the static head
  the lift to the reservoir plus its water level, and ``r`` the main's friction plus the
  reservoir's inlet valve (more closed, more resistance).
- The operating point is where the running pumps' summed flow at a common header head meets
  the system curve; it is found by bisection on the head (summed pump flow falls and system
  flow rises with the head, so there is exactly one crossing).
- Each pump is driven by a PLC: the run command starts a start-up delay (the drive's
  pre-checks and the valve opening), after which the running feedback goes on and the flow
  relaxes exponentially to the operating point; removing the command drops the feedback at
  once and the flow coasts down. A tripped pump (fault) does not run until it is reset.

Flows relax with exact exponential solutions, so any step length integrates stably; the
caller splits steps at start-up events (``seconds_to_next_start``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

WATER_DENSITY_KG_M3 = 1000.0
GRAVITY_M_S2 = 9.81
METRES_PER_BAR = 1e5 / (WATER_DENSITY_KG_M3 * GRAVITY_M_S2)
"""Head of water that one bar of pressure holds (about 10.2 m)."""

SUCTION_PRESSURE_BAR = 0.3
"""Pressure at the pumps' suction (the plant's clear well); a stopped pump's gauge reads it."""

_BISECTION_STEPS = 40
_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class PumpCurve:
    """A centrifugal pump's head-flow curve at rated speed, and its motor."""

    shutoff_head_m: float = 60.0
    """Head at zero flow and rated speed (H0)."""
    curve_coefficient: float = 4.63e-4
    """Head lost per squared flow (k), m/(m3/h)^2: 180 m3/h at 45 m."""
    efficiency: float = 0.72
    """Wire-to-water efficiency of pump and motor."""
    motor_voltage_v: float = 400.0
    power_factor: float = 0.85
    no_load_current_a: float = 6.0
    """Magnetising current of the running motor at rated speed."""

    def __post_init__(self) -> None:
        if self.shutoff_head_m <= 0 or self.curve_coefficient <= 0:
            raise ValueError("pump shut-off head and curve coefficient must be positive")
        if not 0 < self.efficiency <= 1 or not 0 < self.power_factor <= 1:
            raise ValueError("pump efficiency and power factor must lie in (0, 1]")

    def head_m(self, flow_m3h: float, speed_pct: float) -> float:
        """Head the pump delivers at a flow and speed (negative beyond its run-out flow)."""
        ratio = speed_pct / 100.0
        return self.shutoff_head_m * ratio * ratio - self.curve_coefficient * flow_m3h * flow_m3h

    def flow_at_head_m3h(self, head_m: float, speed_pct: float) -> float:
        """Flow the pump delivers against a head at a speed (0 at or above its shut-off)."""
        ratio = speed_pct / 100.0
        margin = self.shutoff_head_m * ratio * ratio - head_m
        return math.sqrt(margin / self.curve_coefficient) if margin > 0 else 0.0

    def current_a(self, flow_m3h: float, head_m: float, speed_pct: float) -> float:
        """Motor line current of a running pump (three-phase: P = sqrt(3) U I cos(phi))."""
        hydraulic_w = WATER_DENSITY_KG_M3 * GRAVITY_M_S2 * flow_m3h / _SECONDS_PER_HOUR * head_m
        electrical_w = max(hydraulic_w, 0.0) / self.efficiency
        load_a = electrical_w / (math.sqrt(3.0) * self.motor_voltage_v * self.power_factor)
        return self.no_load_current_a * speed_pct / 100.0 + load_a


@dataclass(frozen=True, slots=True)
class SystemCurve:
    """The pipe system a station pumps into: ``H = static_head_m + resistance * Q^2``."""

    static_head_m: float
    resistance: float
    """Head lost per squared total flow, m/(m3/h)^2; infinite for a closed valve."""

    def flow_at_head_m3h(self, head_m: float) -> float:
        """Flow the system takes at a header head."""
        margin = head_m - self.static_head_m
        if margin <= 0 or math.isinf(self.resistance):
            return 0.0
        return math.sqrt(margin / self.resistance)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Header head and each pump's flow where the pumps meet the system curve."""

    head_m: float
    flows_m3h: tuple[float, ...]


def operating_point(
    curves: Sequence[PumpCurve], speeds_pct: Sequence[float], system: SystemCurve
) -> OperatingPoint:
    """Where running pumps in parallel meet the system curve (empty ``curves``: no flow)."""
    if not curves:
        return OperatingPoint(system.static_head_m, ())
    if all(curve == curves[0] for curve in curves) and all(
        speed == speeds_pct[0] for speed in speeds_pct
    ):
        return _identical_pumps_point(curves[0], speeds_pct[0], len(curves), system)
    top = max(curve.head_m(0.0, speed) for curve, speed in zip(curves, speeds_pct, strict=True))
    if top <= system.static_head_m or math.isinf(system.resistance):
        # The pumps cannot lift the water (or the valve is shut): they run against the
        # closed check valve at their shut-off head.
        return OperatingPoint(max(top, 0.0), tuple(0.0 for _ in curves))
    low, high = system.static_head_m, top
    for _ in range(_BISECTION_STEPS):
        head = (low + high) / 2.0
        pumped = sum(
            curve.flow_at_head_m3h(head, speed)
            for curve, speed in zip(curves, speeds_pct, strict=True)
        )
        if pumped > system.flow_at_head_m3h(head):
            low = head
        else:
            high = head
    head = (low + high) / 2.0
    flows = tuple(
        curve.flow_at_head_m3h(head, speed) for curve, speed in zip(curves, speeds_pct, strict=True)
    )
    return OperatingPoint(head, flows)


def _identical_pumps_point(
    curve: PumpCurve, speed_pct: float, count: int, system: SystemCurve
) -> OperatingPoint:
    """Closed form for ``count`` identical pumps at one speed, each taking ``Q / count``.

    ``H0 s^2 - k (Q / n)^2 = H_static + r Q^2``  gives  ``Q^2 = (H0 s^2 - H_static) /
    (k / n^2 + r)``; the station's common case, solved without iterating.
    """
    shutoff = curve.head_m(0.0, speed_pct)
    lift = shutoff - system.static_head_m
    if lift <= 0 or math.isinf(system.resistance):
        return OperatingPoint(max(shutoff, 0.0), tuple(0.0 for _ in range(count)))
    total = math.sqrt(lift / (curve.curve_coefficient / (count * count) + system.resistance))
    head = system.static_head_m + system.resistance * total * total
    return OperatingPoint(head, tuple(total / count for _ in range(count)))


@dataclass(slots=True)
class Pump:
    """One PLC-driven pump: run command, start-up delay, running feedback, speed and flow."""

    curve: PumpCurve = field(default_factory=PumpCurve)
    start_delay_s: float = 8.0
    ramp_time_constant_s: float = 4.0
    coast_time_constant_s: float = 2.0
    run_command: bool = False
    running: bool = False
    speed_pct: float = 100.0
    flow_m3h: float = 0.0
    target_flow_m3h: float = 0.0
    fault: bool = False
    _start_elapsed_s: float = 0.0

    def command(self, run: bool) -> None:
        """Set the run command, as a write to the PLC's command coil does."""
        if run and not self.run_command:
            self._start_elapsed_s = 0.0
        if not run:
            self.running = False
        self.run_command = run

    def trip(self) -> None:
        """Trip the drive (a motor protection fault): it stops and stays stopped until reset."""
        self.fault = True
        self.running = False

    def reset(self) -> None:
        """Reset a tripped drive; a standing run command starts it again after the delay."""
        self.fault = False
        self._start_elapsed_s = 0.0

    def seconds_to_start(self) -> float | None:
        """Seconds until a commanded pump's running feedback comes on; None if none pending."""
        if not self.run_command or self.running or self.fault:
            return None
        return max(self.start_delay_s - self._start_elapsed_s, 0.0)

    def advance_start(self, dt_s: float) -> None:
        """Count the start-up delay; the feedback comes on when it has elapsed."""
        if not self.run_command or self.running or self.fault:
            return
        self._start_elapsed_s += dt_s
        if self._start_elapsed_s >= self.start_delay_s - 1e-9:
            self.running = True

    def relax_flow(self, dt_s: float) -> float:
        """Relax the flow towards its target over ``dt_s``; returns the volume pumped, m3."""
        target = self.target_flow_m3h if self.running else 0.0
        if self.flow_m3h == target:
            return target * dt_s / _SECONDS_PER_HOUR  # settled (a standing pump: nothing)
        tau = self.ramp_time_constant_s if self.running else self.coast_time_constant_s
        decay = math.exp(-dt_s / tau)
        start = self.flow_m3h
        # Exact integral of target + (start - target) * exp(-t / tau) over the interval.
        volume_m3h_s = target * dt_s + (start - target) * tau * (1.0 - decay)
        self.flow_m3h = target + (start - target) * decay
        if abs(self.flow_m3h - target) < 1e-6:
            self.flow_m3h = target
        return max(volume_m3h_s, 0.0) / _SECONDS_PER_HOUR


@dataclass(slots=True)
class PumpStation:
    """A booster station: pumps in parallel on one header, with local level control."""

    pumps: tuple[Pump, ...]
    lift_m: float = 20.0
    """Height of the fed reservoir's floor above the station."""
    pipe_resistance: float = 3.0e-4
    """Friction of the main to the reservoir, m/(m3/h)^2."""
    auto: bool = True
    """Local control: the station's PLC runs its pumps by the fed reservoir's level."""
    start_lead_fraction: float = 0.45
    start_lag_fraction: float = 0.30
    stop_fraction: float = 0.90
    header_head_m: float = 0.0
    flow_m3h: float = 0.0
    power_kw: float = 0.0
    """Electrical power of the running pumps' motors (the station's electricity meter)."""
    energy_kwh: float = 0.0
    """The station's electricity meter total."""

    def control(self, level_fraction: float) -> None:
        """Local level control (auto only): lead pump below one level, lag below a lower one."""
        if not self.auto or self.start_lead_fraction <= level_fraction < self.stop_fraction:
            return  # inside the band nothing changes
        healthy = [pump for pump in self.pumps if not pump.fault]
        running_wanted = sum(pump.run_command for pump in healthy)
        if level_fraction >= self.stop_fraction:
            running_wanted = 0
        elif level_fraction < self.start_lag_fraction:
            running_wanted = len(healthy)
        else:
            running_wanted = max(running_wanted, 1)
        for position, pump in enumerate(healthy):
            pump.command(position < running_wanted)

    def seconds_to_next_start(self) -> float | None:
        """Seconds until the next pending pump start (for splitting integration steps)."""
        earliest: float | None = None
        for pump in self.pumps:
            if pump.run_command and not pump.running:
                pending = pump.seconds_to_start()
                if pending is not None and (earliest is None or pending < earliest):
                    earliest = pending
        return earliest

    def advance(self, dt_s: float, static_head_m: float, valve_resistance: float) -> float:
        """Advance the pumps over ``dt_s`` against the reservoir; returns the volume fed, m3."""
        running = [pump for pump in self.pumps if pump.running]
        if running:
            system = SystemCurve(static_head_m, self.pipe_resistance + valve_resistance)
            point = operating_point(
                [pump.curve for pump in running], [pump.speed_pct for pump in running], system
            )
            for pump, flow in zip(running, point.flows_m3h, strict=True):
                pump.target_flow_m3h = flow
            self.header_head_m = point.head_m
        else:
            self.header_head_m = static_head_m
        volume_m3 = 0.0
        flow_m3h = 0.0
        for pump in self.pumps:
            volume_m3 += pump.relax_flow(dt_s)
            flow_m3h += pump.flow_m3h
        self.flow_m3h = flow_m3h
        start_kw = self.power_kw
        self.power_kw = sum(self.electrical_power_kw(pump) for pump in self.pumps)
        # Trapezoid over the interval: the flows relax smoothly between its ends.
        self.energy_kwh += 0.5 * (start_kw + self.power_kw) * dt_s / _SECONDS_PER_HOUR
        # The start-up delay ends at the end of the interval (the caller splits intervals at
        # start events), so a pump starting now ramps from the next interval on.
        for pump in self.pumps:
            pump.advance_start(dt_s)
        return volume_m3

    def discharge_pressure_bar(self, pump: Pump) -> float:
        """A pump's discharge gauge: the header when it runs, the suction when it stands."""
        if pump.running:
            return SUCTION_PRESSURE_BAR + self.header_head_m / METRES_PER_BAR
        return SUCTION_PRESSURE_BAR

    def electrical_power_kw(self, pump: Pump) -> float:
        """A pump motor's electrical power from its line current (P = sqrt(3) U I cos(phi))."""
        curve = pump.curve
        volt_amperes = math.sqrt(3.0) * curve.motor_voltage_v * self.current_a(pump)
        return volt_amperes * curve.power_factor / 1000.0

    def current_a(self, pump: Pump) -> float:
        """A pump's motor current (0 when it stands)."""
        if not pump.running:
            return 0.0
        return pump.curve.current_a(pump.flow_m3h, self.header_head_m, pump.speed_pct)
