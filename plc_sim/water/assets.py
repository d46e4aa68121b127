"""Physics of the water network's reservoirs and treatment plant.

Pure model, no protocol. A reservoir balances what its feeding pump stations deliver against
what its districts draw: its level stays within ``[0, height]``, what does not fit spills over
the weir, and an empty reservoir delivers no more than flows into it. Its inlet valve throttles
the feeding mains (a butterfly valve's resistance grows as it closes, roughly with the inverse
square of its opening). The treatment plant supplies the pump stations from its clear well; it
reports its outflow, the free chlorine residual (following the dosing setpoint less the
chlorine consumed in the contact tank, with a lag) and the filtered water's turbidity.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

_SECONDS_PER_HOUR = 3600.0

CLOSED_VALVE_PCT = 0.5
"""Openings below this count as shut."""


def relax_noise(
    value: float, sd: float, correlation_s: float, dt_s: float, rng: random.Random
) -> float:
    """One exact step of an Ornstein-Uhlenbeck process around 0 (stationary sd ``sd``)."""
    decay = math.exp(-dt_s / correlation_s)
    return value * decay + sd * math.sqrt(1.0 - decay * decay) * rng.gauss(0.0, 1.0)


@dataclass(slots=True)
class Reservoir:
    """A service reservoir: level by mass balance, inlet valve, spill over the weir."""

    area_m2: float = 800.0
    height_m: float = 6.0
    level_m: float = 3.5
    inlet_valve_pct: float = 100.0
    open_valve_resistance: float = 0.5e-4
    """Resistance of the fully open inlet valve, m/(m3/h)^2."""
    inflow_m3h: float = field(init=False, default=0.0)
    outflow_m3h: float = field(init=False, default=0.0)
    spill_m3h: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if self.area_m2 <= 0 or self.height_m <= 0:
            raise ValueError("reservoir area and height must be positive")
        if not 0.0 <= self.level_m <= self.height_m:
            raise ValueError(f"reservoir level {self.level_m} m outside 0..{self.height_m}")

    @property
    def level_fraction(self) -> float:
        """Level as a fraction of the height."""
        return self.level_m / self.height_m

    def valve_resistance(self) -> float:
        """Resistance the inlet valve adds to the feeding mains (infinite when shut)."""
        if self.inlet_valve_pct < CLOSED_VALVE_PCT:
            return math.inf
        opening = self.inlet_valve_pct / 100.0
        return self.open_valve_resistance / (opening * opening)

    def balance(self, dt_s: float, inflow_m3: float, wanted_out_m3: float) -> float:
        """Apply one interval's inflow and draw; returns the fraction of the draw delivered."""
        volume_m3 = self.level_m * self.area_m2
        # An empty reservoir delivers no more than flows into it in the same interval.
        out_m3 = min(wanted_out_m3, volume_m3 + inflow_m3)
        volume_m3 += inflow_m3 - out_m3
        capacity_m3 = self.height_m * self.area_m2
        spilled_m3 = max(volume_m3 - capacity_m3, 0.0)
        volume_m3 = min(max(volume_m3, 0.0), capacity_m3)
        self.level_m = volume_m3 / self.area_m2
        if dt_s > 0:
            per_hour = _SECONDS_PER_HOUR / dt_s
            self.inflow_m3h = inflow_m3 * per_hour
            self.outflow_m3h = out_m3 * per_hour
            self.spill_m3h = spilled_m3 * per_hour
        return out_m3 / wanted_out_m3 if wanted_out_m3 > 0 else 1.0


@dataclass(slots=True)
class TreatmentPlant:
    """The treatment plant's clear well outlet: outflow, chlorine residual and turbidity."""

    seed: int = 1
    chlorine_dose_mg_l: float = 0.8
    chlorine_consumption_mg_l: float = 0.3
    """Chlorine consumed in the contact tank between dosing and the outlet analyser."""
    chlorine_time_constant_s: float = 900.0
    base_turbidity_ntu: float = 0.15
    outflow_m3h: float = field(init=False, default=0.0)
    chlorine_mg_l: float = field(init=False, default=0.5)
    turbidity_ntu: float = field(init=False, default=0.15)
    _chlorine_noise: float = field(init=False, default=0.0)
    _turbidity_noise: float = field(init=False, default=0.0)
    _chlorine_mean: float = field(init=False, default=0.5)
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._chlorine_mean = max(self.chlorine_dose_mg_l - self.chlorine_consumption_mg_l, 0.0)
        self.chlorine_mg_l = self._chlorine_mean
        self.turbidity_ntu = self.base_turbidity_ntu

    def advance(self, dt_s: float, outflow_m3h: float) -> None:
        """Advance the analysers over ``dt_s`` with the outflow the stations draw."""
        self.outflow_m3h = max(outflow_m3h, 0.0)
        target = max(self.chlorine_dose_mg_l - self.chlorine_consumption_mg_l, 0.0)
        decay = math.exp(-dt_s / self.chlorine_time_constant_s)
        self._chlorine_mean = target + (self._chlorine_mean - target) * decay
        rng = self._random
        self._chlorine_noise = relax_noise(self._chlorine_noise, 0.02, 600.0, dt_s, rng)
        self._turbidity_noise = relax_noise(self._turbidity_noise, 0.03, 1800.0, dt_s, rng)
        self.chlorine_mg_l = max(self._chlorine_mean + self._chlorine_noise, 0.0)
        self.turbidity_ntu = max(self.base_turbidity_ntu + self._turbidity_noise, 0.02)
