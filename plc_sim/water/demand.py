"""Physics of a district metering area (DMA): diurnal demand, leakage and supply pressure.

Pure model, no protocol. A DMA is a district supplied through one metered inlet. Its inflow is
the consumers' demand, which follows a daily pattern in local time (night minimum around
03:00, morning and evening peaks, a little more on hot days) with seeded, correlated noise,
plus any leak, which runs day and night: a leak shows as a raised minimum night flow, the
figure water utilities watch to find leaks. The inlet pressure is the static head of the
reservoir feeding the district less the friction of the flow (``dp = c * Q^2``), so pressure
sags at the peaks and with a leak. When the reservoir runs dry the district only gets what
flows into it, and the pressure collapses with the supply.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from plc_sim.water.pumps import METRES_PER_BAR
from plc_sim.water.tank import DEFAULT_DEMAND_PATTERN, DemandAnchor, daily_demand_m3h

_SECONDS_PER_HOUR = 3600.0


def _pattern_mean(pattern: tuple[DemandAnchor, ...]) -> float:
    samples = 288
    return sum(daily_demand_m3h(pattern, 24.0 * i / samples) for i in range(samples)) / samples


_PATTERN = DEFAULT_DEMAND_PATTERN
_PATTERN_MEAN_M3H = _pattern_mean(_PATTERN)

HOT_DAY_THRESHOLD_C = 18.0
"""Above this outdoor temperature demand rises (gardens, showers)."""

HOT_DAY_GAIN_PER_C = 0.015
"""Fraction of extra demand per degree above the threshold."""


def diurnal_factor(local_hour: float) -> float:
    """Demand relative to the daily mean at a local hour (minimum around 03:00)."""
    return daily_demand_m3h(_PATTERN, local_hour) / _PATTERN_MEAN_M3H


def demand_factor(local_hour: float, outdoor_temp_c: float) -> float:
    """Demand relative to the daily mean: the diurnal pattern, raised on hot days."""
    heat = 1.0 + HOT_DAY_GAIN_PER_C * max(outdoor_temp_c - HOT_DAY_THRESHOLD_C, 0.0)
    return diurnal_factor(local_hour) * heat


@dataclass(slots=True)
class DistrictMeteringArea:
    """One DMA: mean demand, static head below its reservoir, friction and an optional leak."""

    mean_demand_m3h: float
    static_head_m: float = 35.0
    """Height of the feeding reservoir's floor above the district's pressure point."""
    friction_bar_per_m3h2: float = 1.4e-5
    """Pressure lost per squared inflow (supply main and district pipes)."""
    noise_m3h: float = 3.0
    noise_correlation_s: float = 300.0
    seed: int = 1
    leak_m3h: float = 0.0
    wanted_m3h: float = field(init=False, default=0.0)
    """Demand plus leak the district would draw with full supply."""
    inflow_m3h: float = field(init=False, default=0.0)
    pressure_bar: float = field(init=False, default=0.0)
    volume_m3: float = field(init=False, default=0.0)
    """Totaliser of the inlet meter."""
    _noise: float = field(init=False, default=0.0)
    _noise_dt_s: float = field(init=False, default=-1.0)
    _noise_decay: float = field(init=False, default=0.0)
    _noise_spread: float = field(init=False, default=0.0)
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        if self.mean_demand_m3h < 0 or self.static_head_m <= 0:
            raise ValueError("DMA demand must not be negative and its static head positive")
        self._random = random.Random(self.seed)

    def set_leak(self, flow_m3h: float) -> None:
        """Add a constant leak flow (0 clears it)."""
        if flow_m3h < 0 or math.isnan(flow_m3h) or math.isinf(flow_m3h):
            raise ValueError(f"leak flow must be a finite non-negative number, got {flow_m3h}")
        self.leak_m3h = flow_m3h

    def advance_demand(self, dt_s: float, demand_factor: float) -> float:
        """Advance the demand noise over ``dt_s`` and return the wanted inflow, m3/h.

        ``demand_factor`` is the demand relative to the mean at this moment (``demand_factor``
        of the module: the same for every district of the city, so computed once per step).
        """
        if dt_s != self._noise_dt_s:
            # Ornstein-Uhlenbeck noise: exact for any step, stationary sd ``noise_m3h``.
            decay = math.exp(-dt_s / self.noise_correlation_s)
            self._noise_decay = decay
            self._noise_spread = self.noise_m3h * math.sqrt(1.0 - decay * decay)
            self._noise_dt_s = dt_s
        self._noise = self._noise * self._noise_decay + self._noise_spread * self._random.gauss(
            0.0, 1.0
        )
        demand = self.mean_demand_m3h * demand_factor + self._noise
        self.wanted_m3h = (demand if demand > 0.0 else 0.0) + self.leak_m3h
        return self.wanted_m3h

    def supply(self, dt_s: float, fraction: float, reservoir_level_m: float) -> None:
        """Take ``fraction`` (0..1) of the wanted flow for ``dt_s`` from a reservoir."""
        fraction = min(max(fraction, 0.0), 1.0)
        self.inflow_m3h = self.wanted_m3h * fraction
        self.volume_m3 += self.inflow_m3h * dt_s / _SECONDS_PER_HOUR
        static_bar = (self.static_head_m + reservoir_level_m) / METRES_PER_BAR
        friction_bar = self.friction_bar_per_m3h2 * self.inflow_m3h * self.inflow_m3h
        # A starved district (an empty reservoir) loses its pressure with its supply.
        self.pressure_bar = max((static_bar - friction_bar) * fraction, 0.0)
