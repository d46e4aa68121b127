"""One weather for the whole city: outdoor temperature, cloud cover and daylight.

Pure model, seeded. The sun's elevation comes from astral for the site's latitude and
longitude; outdoor temperature follows the season and the time of day (coldest before
sunrise, warmest mid-afternoon) with slow, correlated noise; cloud cover drifts and dims the
daylight.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime

from astral import Observer
from astral.sun import elevation

CLEAR_SKY_LUX_AT_ZENITH = 110_000.0
"""Illuminance of direct sun plus sky with the sun overhead, lux."""

_DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class WeatherState:
    """The weather at one moment."""

    time: datetime
    outdoor_temp_c: float
    cloud_cover: float
    """0 clear … 1 overcast."""
    sun_elevation_deg: float
    daylight_lux: float


@dataclass(frozen=True, slots=True)
class Climate:
    """Seasonal parameters of the site's climate (defaults: central Europe)."""

    annual_mean_c: float = 10.0
    annual_swing_c: float = 10.0
    """Half the difference between the warmest and the coldest month's mean."""
    daily_swing_c: float = 4.0
    """Half the typical difference between the afternoon maximum and the night minimum."""
    coldest_day_of_year: int = 20


class Weather:
    """The city's weather, advanced by the simulation loop."""

    def __init__(
        self,
        latitude: float,
        longitude: float,
        *,
        seed: int = 1,
        climate: Climate | None = None,
    ) -> None:
        if not -90.0 <= latitude <= 90.0 or not -180.0 <= longitude <= 180.0:
            raise ValueError(f"site location {latitude}, {longitude} is not on Earth")
        self._observer = Observer(latitude=latitude, longitude=longitude)
        self._longitude = longitude
        self._climate = climate or Climate()
        self._random = random.Random(seed)
        self._temp_noise_c = 0.0
        self._cloud_cover = 0.3
        self._state: WeatherState | None = None

    @property
    def state(self) -> WeatherState:
        """The weather after the last ``step`` (RuntimeError before the first)."""
        if self._state is None:
            raise RuntimeError("the weather has not been stepped yet")
        return self._state

    def step(self, dt_s: float, now: datetime) -> WeatherState:
        """Advance by ``dt_s`` simulated seconds to ``now`` and return the new state."""
        # Ornstein-Uhlenbeck noise: correlated over hours, so no step is a jump.
        self._temp_noise_c = _relax(self._temp_noise_c, 0.0, dt_s, 6 * 3600.0, 1.5, self._random)
        self._cloud_cover = min(
            1.0, max(0.0, _relax(self._cloud_cover, 0.45, dt_s, 3 * 3600.0, 0.25, self._random))
        )
        sun = float(elevation(self._observer, now))
        state = WeatherState(
            time=now,
            outdoor_temp_c=self._seasonal_temp(now) + self._temp_noise_c,
            cloud_cover=self._cloud_cover,
            sun_elevation_deg=sun,
            daylight_lux=_daylight_lux(sun, self._cloud_cover),
        )
        self._state = state
        return state

    def _seasonal_temp(self, now: datetime) -> float:
        climate = self._climate
        day = now.timetuple().tm_yday
        season = -math.cos(2 * math.pi * (day - climate.coldest_day_of_year) / 365.25)
        # Local solar time: the minimum near 05:00, the maximum near 15:00.
        solar_hour = (now.hour + now.minute / 60 + now.second / 3600 + self._longitude / 15) % 24
        daily = -math.cos(2 * math.pi * (solar_hour - 5.0) / 24.0)
        seasonal = climate.annual_mean_c + climate.annual_swing_c * season
        return seasonal + climate.daily_swing_c * daily


def _relax(
    value: float, mean: float, dt_s: float, tau_s: float, sd: float, rng: random.Random
) -> float:
    """One exact Ornstein-Uhlenbeck step of length ``dt_s`` (stationary s.d. ``sd``)."""
    decay = math.exp(-max(0.0, dt_s) / tau_s)
    return mean + (value - mean) * decay + sd * math.sqrt(1 - decay * decay) * rng.gauss(0, 1)


def _daylight_lux(sun_elevation_deg: float, cloud_cover: float) -> float:
    """Horizontal illuminance from the sun's elevation, dimmed by clouds; twilight fades out."""
    if sun_elevation_deg <= -6.0:  # below civil twilight: night (moon and sky glow ignored)
        return 0.0
    if sun_elevation_deg <= 0.0:
        twilight = 400.0 * (sun_elevation_deg + 6.0) / 6.0
        return twilight * (1.0 - 0.6 * cloud_cover)
    clear = 400.0 + CLEAR_SKY_LUX_AT_ZENITH * math.sin(math.radians(sun_elevation_deg))
    return clear * (1.0 - 0.75 * cloud_cover)
