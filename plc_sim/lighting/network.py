"""Street lighting: LED lamps in cabinets, one lighting controller per district.

Each district has a controller (an OPC UA device) serving 2-3 cabinets of 25-30 LED lamps. A
cabinet switches and dims its lamps in one of three modes:

- auto (0): on when its ambient light sensor reads below ``ON_BELOW_LUX`` and off above
  ``OFF_ABOVE_LUX`` (a gap so dusk noise does not flicker the lamps), at the night profile:
  full output from dusk, ``NIGHT_DIM_PERCENT`` between midnight and 05:00 local time;
- manual (1): on at the operator's ``dim_setpoint`` (off at 0 %);
- off (2): off.

LED drivers ramp their output toward the target at ``RAMP_PERCENT_PER_S`` (soft start and
smooth dimming); a switch-off cuts the output at once, and a repaired lamp joins its cabinet's
level. A lamp draws
``W x (0.1 + 0.9 x dim)`` when lit, a small standby when dark, nothing when failed. Lamps fail
at random while burning (mean time between failures ``LAMP_MTBF_H``) and stay dark until
repaired; cabinet doors open now and then (tamper alarm) and close again after a while.

The physics is stable for any step: the ramp is clipped, failures and door openings are drawn
from their exact probabilities for the step's length, and the light sensor's noise is an exact
Ornstein-Uhlenbeck step. The working lamps of a cabinet share its output level, so a step costs
one plain loop over the cabinets; a lamp's points (lit, dim, failed, power) are computed from its
cabinet when read, and only a failure or repair walks a cabinet's lamps.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from plc_sim.device import PointBinding, PointSpec, PointValue, SimDevice
from plc_sim.weather import WeatherState

DISTRICTS_PER_SCALE = 4
ON_BELOW_LUX = 30.0
OFF_ABOVE_LUX = 60.0
NIGHT_DIM_PERCENT = 50.0
NIGHT_DIM_START_H = 0
NIGHT_DIM_END_H = 5
RAMP_PERCENT_PER_S = 20.0
STANDBY_W = 0.5
"""A dark LED driver's standby draw."""
MIN_OUTPUT_SHARE = 0.1
"""Share of the rated power a lit lamp draws at 0 % dim (driver losses and minimum output)."""
LAMP_MTBF_H = 50_000.0
DOOR_OPENINGS_PER_YEAR = 6.0
"""Per cabinet: maintenance visits and the odd tamper."""
DOOR_OPEN_MINUTES = (5.0, 40.0)
SENSOR_NOISE_SD = 0.08
"""Relative s.d. of a cabinet's light sensor around the shaded daylight."""
SENSOR_NOISE_TAU_S = 300.0
MAX_LUX = 130_000.0
LAMP_RATINGS_W = (40, 50, 60, 75, 90, 100, 120)
LAMP_ROAD_LUX_AT_FULL = 15.0
"""Average maintained illuminance the lamps of a cabinet give its street at full output, lux:
designed for EN 13201-2 class P2 (10 lx) with the margin a new LED installation has; the light
scales with the output level and the share of working lamps."""

MODE_AUTO, MODE_MANUAL, MODE_OFF = 0, 1, 2
MODE_STATES = ("auto", "manual", "off")

_YEAR_S = 365.25 * 86_400.0


@dataclass(slots=True)
class Cabinet:
    """One lighting cabinet: its settings, sensor, door, output and the lamps it feeds."""

    district: int
    number: int
    first_lamp: int
    lamp_count: int
    shade: float
    """Share of the open-sky daylight its sensor sees (trees, buildings)."""
    rated_w: float = 0.0
    """Rated power of its working (not failed) lamps."""
    mode: int = MODE_AUTO
    dim_setpoint: float = 100.0
    output_on: bool = False
    target_dim: float = 0.0
    level: float = 0.0
    """The lamps' present output, 0-100 % (every working lamp of a cabinet follows it)."""
    lux: float = 0.0
    ambient_lux: float = 0.0
    """Daylight on the cabinet's street (what its sensor sees, without the sensor's noise)."""
    sensor_noise: float = 0.0
    door_open: bool = False
    door_closes_in_s: float = 0.0
    power_kw: float = 0.0
    energy_kwh: float = 0.0
    lamps_on: int = 0
    lamps_failed: int = 0

    @property
    def prefix(self) -> str:
        """The cabinet's tag prefix, e.g. ``lights.d1.c2``."""
        return f"lights.d{self.district}.c{self.number}"

    @property
    def street_lux(self) -> float:
        """Average illuminance on the cabinet's street: daylight plus its lamps' light, lux."""
        if not self.output_on or self.lamp_count == 0:
            return self.ambient_lux
        working = (self.lamp_count - self.lamps_failed) / self.lamp_count
        return self.ambient_lux + LAMP_ROAD_LUX_AT_FULL * self.level / 100.0 * working


def output_share(level_percent: float) -> float:
    """Share of its rated power a lit LED lamp draws at a dim level."""
    return MIN_OUTPUT_SHARE + (1.0 - MIN_OUTPUT_SHARE) * level_percent / 100.0


class LightingNetwork:
    """The city's street lighting: ``DISTRICTS_PER_SCALE x scale`` districts of cabinets."""

    def __init__(
        self,
        scale: int = 1,
        seed: int = 1,
        *,
        latitude: float = 48.21,
        longitude: float = 16.37,
        tz: str | None = None,
    ) -> None:
        """Build the network; local time is ``tz`` or, without one, solar time at ``longitude``."""
        if scale < 1:
            raise ValueError(f"scale must be at least 1, got {scale}")
        if not -90.0 <= latitude <= 90.0 or not -180.0 <= longitude <= 180.0:
            raise ValueError(f"site location {latitude}, {longitude} is not on Earth")
        self.latitude = latitude
        self.longitude = longitude
        self._tz = ZoneInfo(tz) if tz is not None else None
        self._layout = random.Random(f"lighting-layout-{seed}")
        self._random = random.Random(f"lighting-events-{seed}")
        self.cabinets: list[Cabinet] = []
        self._rated_w: list[float] = []
        self._failed: list[bool] = []
        self._districts: list[list[Cabinet]] = []
        for district in range(1, DISTRICTS_PER_SCALE * scale + 1):
            count = self._layout.randint(2, 3)
            self._districts.append(
                [self._add_cabinet(district, number) for number in range(1, count + 1)]
            )
        self._devices = tuple(self._district_device(cabinets) for cabinets in self._districts)

    def _add_cabinet(self, district: int, number: int) -> Cabinet:
        lamps = self._layout.randint(25, 30)
        cabinet = Cabinet(
            district=district,
            number=number,
            first_lamp=len(self._rated_w),
            lamp_count=lamps,
            shade=self._layout.uniform(0.7, 1.0),
        )
        for _ in range(lamps):
            self._rated_w.append(float(self._layout.choice(LAMP_RATINGS_W)))
            self._failed.append(False)
        self._recount(cabinet)
        self.cabinets.append(cabinet)
        return cabinet

    @property
    def lamp_count(self) -> int:
        """How many lamps the network has."""
        return len(self._rated_w)

    def devices(self) -> tuple[SimDevice, ...]:
        """One lighting controller per district, in district order."""
        return self._devices

    def cabinet(self, district: int, cabinet: int) -> Cabinet:
        """A cabinet by its 1-based district and cabinet numbers."""
        if district < 1 or cabinet < 1:
            raise KeyError(f"no cabinet lights.d{district}.c{cabinet}")
        try:
            return self._districts[district - 1][cabinet - 1]
        except IndexError as err:
            raise KeyError(f"no cabinet lights.d{district}.c{cabinet}") from err

    def fail_lamp(self, district: int, cabinet: int, lamp: int) -> None:
        """Make one lamp fail now (1-based numbers, as in ``lights.d1.c2.l07``)."""
        self._failed[self._lamp_index(district, cabinet, lamp)] = True
        self._recount(self.cabinet(district, cabinet))

    def repair_lamp(self, district: int, cabinet: int, lamp: int) -> None:
        """Replace a failed lamp; it lights with the rest of its cabinet."""
        self._failed[self._lamp_index(district, cabinet, lamp)] = False
        self._recount(self.cabinet(district, cabinet))

    def lamp_power_w(self, district: int, cabinet: int, lamp: int) -> float:
        """One lamp's present draw in W."""
        return self._lamp_power(
            self.cabinet(district, cabinet), self._lamp_index(district, cabinet, lamp)
        )

    def _lamp_index(self, district: int, cabinet: int, lamp: int) -> int:
        box = self.cabinet(district, cabinet)
        if not 1 <= lamp <= box.lamp_count:
            raise KeyError(f"no lamp {lamp} in {box.prefix}")
        return box.first_lamp + lamp - 1

    def _lamp_power(self, cabinet: Cabinet, index: int) -> float:
        if self._failed[index]:
            return 0.0
        if not cabinet.output_on:
            return STANDBY_W
        return self._rated_w[index] * output_share(cabinet.level)

    def step(self, dt_s: float, now: datetime, weather: WeatherState) -> None:
        """Advance every cabinet by ``dt_s`` simulated seconds ending at ``now``."""
        dt_s = max(0.0, dt_s)
        night_dim = self._in_night_dim(now)
        ramp = RAMP_PERCENT_PER_S * dt_s
        for cabinet in self.cabinets:
            self._step_sensor(cabinet, dt_s, weather.daylight_lux)
            self._step_door(cabinet, dt_s)
            self._choose_output(cabinet, night_dim)
            start_kw = cabinet.power_kw
            if cabinet.output_on:
                # LED drivers ramp toward the target; the switch-off below cuts at once.
                if cabinet.level < cabinet.target_dim:
                    cabinet.level = min(cabinet.target_dim, cabinet.level + ramp)
                elif cabinet.level > cabinet.target_dim:
                    cabinet.level = max(cabinet.target_dim, cabinet.level - ramp)
                if dt_s > 0.0:
                    self._fail_burning_lamps(cabinet, dt_s)
            else:
                cabinet.level = 0.0
            self._update_power(cabinet)
            # Trapezoid over the step: exact for a linear ramp, and power never goes negative.
            cabinet.energy_kwh += 0.5 * (start_kw + cabinet.power_kw) * dt_s / 3600.0

    def _in_night_dim(self, now: datetime) -> bool:
        if self._tz is not None:
            local = now.astimezone(self._tz)
        else:
            local = now + timedelta(hours=self.longitude / 15.0)
        return NIGHT_DIM_START_H <= local.hour < NIGHT_DIM_END_H

    def _step_sensor(self, cabinet: Cabinet, dt_s: float, daylight_lux: float) -> None:
        decay = math.exp(-dt_s / SENSOR_NOISE_TAU_S)
        spread = SENSOR_NOISE_SD * math.sqrt(1.0 - decay * decay)
        cabinet.sensor_noise = cabinet.sensor_noise * decay + spread * self._random.gauss(0, 1)
        cabinet.ambient_lux = daylight_lux * cabinet.shade
        seen = cabinet.ambient_lux * (1.0 + cabinet.sensor_noise)
        cabinet.lux = min(MAX_LUX, max(0.0, seen))

    def _step_door(self, cabinet: Cabinet, dt_s: float) -> None:
        if cabinet.door_open:
            cabinet.door_closes_in_s -= dt_s
            if cabinet.door_closes_in_s <= 0.0:
                cabinet.door_open = False
            return
        chance = 1.0 - math.exp(-dt_s * DOOR_OPENINGS_PER_YEAR / _YEAR_S)
        if chance > 0.0 and self._random.random() < chance:
            cabinet.door_open = True
            cabinet.door_closes_in_s = 60.0 * self._random.uniform(*DOOR_OPEN_MINUTES)

    def _choose_output(self, cabinet: Cabinet, night_dim: bool) -> None:
        if cabinet.mode == MODE_OFF:
            cabinet.output_on, cabinet.target_dim = False, 0.0
        elif cabinet.mode == MODE_MANUAL:
            cabinet.output_on = cabinet.dim_setpoint > 0.0
            cabinet.target_dim = cabinet.dim_setpoint
        else:
            if cabinet.lux < ON_BELOW_LUX:
                cabinet.output_on = True
            elif cabinet.lux > OFF_ABOVE_LUX:
                cabinet.output_on = False
            cabinet.target_dim = NIGHT_DIM_PERCENT if night_dim else 100.0

    def _fail_burning_lamps(self, cabinet: Cabinet, dt_s: float) -> None:
        expected = cabinet.lamps_on * dt_s / (LAMP_MTBF_H * 3600.0)
        failures = _poisson(self._random, expected)
        if not failures:
            return
        first = cabinet.first_lamp
        working = [i for i in range(first, first + cabinet.lamp_count) if not self._failed[i]]
        for index in self._random.sample(working, min(failures, len(working))):
            self._failed[index] = True
        self._recount(cabinet)

    def _recount(self, cabinet: Cabinet) -> None:
        """Recount the working lamps and their rated power after a failure or repair."""
        lamps = range(cabinet.first_lamp, cabinet.first_lamp + cabinet.lamp_count)
        cabinet.lamps_failed = sum(self._failed[i] for i in lamps)
        cabinet.rated_w = sum(self._rated_w[i] for i in lamps if not self._failed[i])
        self._update_power(cabinet)

    def _update_power(self, cabinet: Cabinet) -> None:
        working = cabinet.lamp_count - cabinet.lamps_failed
        if cabinet.output_on:
            cabinet.lamps_on = working
            cabinet.power_kw = cabinet.rated_w * output_share(cabinet.level) / 1000.0
        else:
            cabinet.lamps_on = 0
            cabinet.power_kw = working * STANDBY_W / 1000.0

    def _district_device(self, cabinets: list[Cabinet]) -> SimDevice:
        district = cabinets[0].district
        bindings: list[PointBinding] = []
        for cabinet in cabinets:
            bindings.extend(self._cabinet_points(cabinet))
            for lamp in range(1, cabinet.lamp_count + 1):
                bindings.extend(self._lamp_points(cabinet, lamp))
        return SimDevice(
            f"lights.d{district}_ctrl",
            "opcua",
            bindings,
            description=f"street lighting controller of district {district}",
            seed=district,
        )

    def _cabinet_points(self, cabinet: Cabinet) -> list[PointBinding]:
        prefix = cabinet.prefix
        rated_kw = sum(self._rated_w[cabinet.first_lamp : cabinet.first_lamp + cabinet.lamp_count])

        def set_mode(value: PointValue) -> None:
            cabinet.mode = int(value)

        def set_dim(value: PointValue) -> None:
            cabinet.dim_setpoint = float(value)

        def auto_mode() -> None:
            cabinet.mode = MODE_AUTO

        return [
            PointBinding(
                PointSpec(
                    f"{prefix}.mode",
                    "int",
                    writable=True,
                    low=0,
                    high=2,
                    role="value",
                    states=MODE_STATES,
                    description="operating mode: 0 auto, 1 manual, 2 off",
                ),
                lambda: cabinet.mode,
                set_mode,
                auto_mode,
            ),
            PointBinding(
                PointSpec(
                    f"{prefix}.dim_setpoint",
                    "float",
                    "%",
                    writable=True,
                    low=0,
                    high=100,
                    role="value",
                    cov_increment=1.0,
                    description="dim level in manual mode",
                ),
                lambda: cabinet.dim_setpoint,
                set_dim,
            ),
            PointBinding(
                PointSpec(
                    f"{prefix}.lamps_on",
                    "int",
                    low=0,
                    high=cabinet.lamp_count,
                    description="lamps lit",
                ),
                lambda: cabinet.lamps_on,
            ),
            PointBinding(
                PointSpec(
                    f"{prefix}.lamps_failed",
                    "int",
                    low=0,
                    high=cabinet.lamp_count,
                    description="lamps failed, awaiting repair",
                ),
                lambda: cabinet.lamps_failed,
            ),
            PointBinding(
                PointSpec(
                    f"{prefix}.power",
                    "float",
                    "kW",
                    low=0,
                    high=round(rated_kw / 1000.0, 3),
                    cov_increment=0.05,
                    description="cabinet electrical power",
                ),
                lambda: cabinet.power_kw,
            ),
            PointBinding(
                PointSpec(f"{prefix}.energy", "counter", "kWh", description="energy meter"),
                lambda: cabinet.energy_kwh,
            ),
            PointBinding(
                PointSpec(
                    f"{prefix}.lux",
                    "float",
                    "lux",
                    low=0,
                    high=MAX_LUX,
                    cov_increment=5.0,
                    description="ambient light sensor",
                ),
                lambda: cabinet.lux,
            ),
            PointBinding(
                PointSpec(f"{prefix}.door_open", "bool", description="cabinet door (tamper)"),
                lambda: cabinet.door_open,
            ),
        ]

    def _lamp_points(self, cabinet: Cabinet, lamp: int) -> list[PointBinding]:
        prefix = f"{cabinet.prefix}.l{lamp:02d}"
        index = cabinet.first_lamp + lamp - 1
        rated = self._rated_w[index]
        failed = self._failed

        def lit() -> bool:
            return cabinet.output_on and not failed[index]

        def dim() -> float:
            return cabinet.level if lit() else 0.0

        return [
            PointBinding(
                PointSpec(f"{prefix}.on", "bool", role="output", description="lamp lit"), lit
            ),
            PointBinding(
                PointSpec(
                    f"{prefix}.dim",
                    "float",
                    "%",
                    low=0,
                    high=100,
                    cov_increment=1.0,
                    description="lamp output level",
                ),
                dim,
            ),
            PointBinding(
                PointSpec(f"{prefix}.failed", "bool", description="lamp failed"),
                lambda: failed[index],
            ),
            PointBinding(
                PointSpec(
                    f"{prefix}.power",
                    "float",
                    "W",
                    low=0,
                    high=rated,
                    cov_increment=1.0,
                    description=f"lamp power (rated {rated:g} W)",
                ),
                lambda: self._lamp_power(cabinet, index),
            ),
        ]


def _poisson(rng: random.Random, expected: float) -> int:
    """A Poisson-distributed count (Knuth's method; the expectations here are small)."""
    if expected <= 0.0:
        return 0
    if expected > 30.0:
        return max(0, round(rng.gauss(expected, math.sqrt(expected))))
    limit = math.exp(-expected)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
