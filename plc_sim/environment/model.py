"""Air quality linked to traffic and weather, and a river that rises with rain and floods.

Air (µg/m³ unless said): NO2 and PM2.5 come from traffic (the road network's travel-time
factor, or the time-of-day profile without detectors) and, for PM2.5, from heating on cold days;
they pile up under a still, cloudless night sky (an inversion) and rain washes PM2.5 out. CO2
(ppm) is the background plus traffic. Ozone forms in sunshine and warmth and is eaten by NO2
near roads (titration), so it peaks in the afternoon and falls at night. An ozone episode
(``start_ozone_episode``: a hot, sunny, stagnant spell) drives it above the EU information
threshold (180) and, on the afternoon, above the alert threshold (240). Every concentration
approaches its target with a time constant of ``AIR_TAU_S``.

Rain (mm/h) falls in showers drawn from the seed, likelier under cloud. Each river gauge's
level (m) rises with the rain of the last hours over the catchment, routed downstream: a gauge
further down sees a wave later and flatter. ``start_flood`` sends a flood wave (heavy rain
upstream) that lifts the levels past the warning levels over a few simulated hours, and
``end_flood`` lets it recede. Gauges report every ``GAUGE_REPORT_S``, every
``GAUGE_ALERT_REPORT_S`` once above ``ALERT_LEVEL_M`` (event-driven reporting), air stations
every ``AIR_REPORT_S``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from plc_sim.device import PointBinding, PointSpec, SimDevice
from plc_sim.domain import AssetPlan, UplinkSensor
from plc_sim.mobility.traffic import traffic_factor
from plc_sim.weather import WeatherState

DEVICE = "env.sensors"
AIR_REPORT_S = 600.0
GAUGE_REPORT_S = 900.0
GAUGE_ALERT_REPORT_S = 120.0
AIR_TAU_S = 1800.0
STATIONS_PER_SCALE = 3
GAUGES_PER_SCALE = 3
BASE_LEVEL_M = 1.2
ALERT_LEVEL_M = 2.5
"""Above this a gauge reports every ``GAUGE_ALERT_REPORT_S``."""
FLOOD_PEAK_M = 5.2
"""Level the flood wave lifts the first gauge to (the others a little less)."""
FLOOD_RISE_S = 3 * 3600.0
SURGE_SAMPLE_S = 30.0
OZONE_INFORMATION = 180.0
OZONE_ALERT = 240.0


@dataclass(slots=True)
class AirStation:
    """An air-quality station near a road (traffic weight 1) or in a park (less)."""

    name: str
    label: str
    traffic_weight: float
    no2: float = 25.0
    o3: float = 40.0
    pm25: float = 8.0
    co2: float = 420.0


@dataclass(slots=True)
class RiverGauge:
    """A water-level gauge with a rain gauge beside it; ``lag_s`` from the first gauge."""

    name: str
    label: str
    lag_s: float
    attenuation: float
    level_m: float = BASE_LEVEL_M
    rain_mm_h: float = 0.0
    history: list[float] = field(default_factory=list)


class Environment:
    """The city's air-quality stations, rain and river gauges."""

    def __init__(
        self,
        scale: int = 1,
        seed: int = 1,
        tz: ZoneInfo | None = None,
        traffic: Callable[[datetime], float] | None = None,
    ) -> None:
        """``traffic`` gives the road network's travel-time factor at a local time (default:
        the time-of-day profile)."""
        rng = random.Random(f"environment:{seed}")
        self._rng = rng
        self._tz = tz or ZoneInfo("Europe/Amsterdam")
        self._traffic = traffic or traffic_factor
        self.stations = [
            AirStation(
                f"env.air{index + 1}",
                f"Air-quality station {index + 1}",
                1.0 if index % 3 != 2 else 0.35,
            )
            for index in range(STATIONS_PER_SCALE * scale)
        ]
        self.gauges = [
            RiverGauge(
                f"env.river{index + 1}",
                f"River gauge {index + 1}",
                lag_s=index * 2400.0,
                attenuation=1.0 - 0.06 * index,
            )
            for index in range(GAUGES_PER_SCALE * scale)
        ]
        self.rain_mm_h = 0.0
        self._shower_s = 0.0
        self._runoff = 0.0
        """Catchment storage above base flow, in metres of level at the first gauge."""
        self._flood = False
        self._flood_s = 0.0
        self._surge: list[tuple[float, float]] = []
        """(simulated seconds, level rise at the first gauge) history for routing."""
        self._clock_s = 0.0
        self.ozone_episode = False
        self._build()

    # -- scenarios -----------------------------------------------------------------------------

    def start_ozone_episode(self) -> None:
        """A hot, sunny, still spell: ozone climbs past 180 µg/m³ and 240 in the afternoon."""
        self.ozone_episode = True

    def end_ozone_episode(self) -> None:
        """The spell breaks (a front passes)."""
        self.ozone_episode = False

    def start_flood(self) -> None:
        """Heavy rain upstream: a flood wave lifts the river past its warning levels."""
        self._flood = True
        self._flood_s = 0.0

    def end_flood(self) -> None:
        """The rain stops upstream: the flood recedes."""
        self._flood = False

    def gauge(self, name: str) -> RiverGauge:
        """A river gauge by name (``env.river1``)."""
        for gauge in self.gauges:
            if gauge.name == name:
                return gauge
        raise KeyError(f"no river gauge {name!r}; there are {[g.name for g in self.gauges]}")

    def station(self, name: str) -> AirStation:
        """An air-quality station by name (``env.air1``)."""
        for station in self.stations:
            if station.name == name:
                return station
        raise KeyError(f"no air station {name!r}; there are {[s.name for s in self.stations]}")

    def stop_reporting(self, name: str, silent: bool = True) -> None:
        """A station's or gauge's sensor stops reporting, or resumes."""
        self._sensor_of[name].silent = silent

    # -- physics -------------------------------------------------------------------------------

    def step(self, dt_s: float, now: datetime, weather: WeatherState) -> None:
        """Advance ``dt_s`` simulated seconds ending at ``now``."""
        self._clock_s += dt_s
        local = now.astimezone(self._tz)
        self._step_rain(dt_s, weather)
        self._step_river(dt_s)
        self._step_air(dt_s, local, weather)

    def _step_rain(self, dt_s: float, weather: WeatherState) -> None:
        if self._shower_s > 0:
            self._shower_s -= dt_s
            if self._shower_s <= 0:
                self.rain_mm_h = 0.0
        else:
            # Showers start about once in 12 h under full cloud, rarely under a clear sky.
            chance = dt_s / (12 * 3600.0) * max(0.0, weather.cloud_cover - 0.3) / 0.7
            if self._rng.random() < chance:
                self._shower_s = self._rng.uniform(1200.0, 7200.0)
                self.rain_mm_h = self._rng.uniform(0.5, 8.0)
        heavy = 25.0 if self._flood else 0.0
        for index, gauge in enumerate(self.gauges):
            gauge.rain_mm_h = max(0.0, self.rain_mm_h * (1.0 + 0.1 * index) + heavy)

    def _step_river(self, dt_s: float) -> None:
        # A linear reservoir: rain fills the catchment, which drains with a 6 h time constant.
        inflow_m_per_s = self.rain_mm_h * 0.02 / 3600.0
        if self._flood:
            self._flood_s += dt_s
            target = FLOOD_PEAK_M - BASE_LEVEL_M
            rise = target * min(1.0, self._flood_s / FLOOD_RISE_S)
            self._runoff = max(self._runoff, rise)
        self._runoff += inflow_m_per_s * dt_s
        self._runoff -= self._runoff * min(1.0, dt_s / (6 * 3600.0)) * (0.0 if self._flood else 1.0)
        self._runoff = max(0.0, self._runoff)
        # Kept every half minute: routing needs the shape of the wave, not every step.
        if not self._surge or self._clock_s - self._surge[-1][0] >= SURGE_SAMPLE_S:
            self._surge.append((self._clock_s, self._runoff))
        else:
            self._surge[-1] = (self._surge[-1][0], self._runoff)
        horizon = self._clock_s - max(g.lag_s for g in self.gauges) - 60.0
        while len(self._surge) > 2 and self._surge[1][0] < horizon:
            self._surge.pop(0)
        for gauge in self.gauges:
            rise = self._surge_at(self._clock_s - gauge.lag_s) * gauge.attenuation
            before = gauge.level_m
            gauge.level_m = BASE_LEVEL_M + rise
            sensor = self._sensor_of[gauge.name]
            sensor.interval_s = (
                GAUGE_ALERT_REPORT_S if gauge.level_m > ALERT_LEVEL_M else GAUGE_REPORT_S
            )
            if before <= ALERT_LEVEL_M < gauge.level_m:
                sensor.report_now = True

    def _surge_at(self, when_s: float) -> float:
        if not self._surge or when_s <= self._surge[0][0]:
            return self._surge[0][1] if self._surge and when_s >= 0 else 0.0
        for (t0, v0), (t1, v1) in zip(self._surge, self._surge[1:], strict=False):
            if t0 <= when_s <= t1:
                share = 0.0 if t1 == t0 else (when_s - t0) / (t1 - t0)
                return v0 + share * (v1 - v0)
        return self._surge[-1][1]

    def _step_air(self, dt_s: float, local: datetime, weather: WeatherState) -> None:
        activity = max(0.0, self._traffic(local) - 1.0) / 0.5  # 0 at night, ~1 in the peaks
        hour = local.hour + local.minute / 60
        sun = max(0.0, math.sin(math.radians(max(0.0, weather.sun_elevation_deg))))
        clear = 1.0 - weather.cloud_cover
        inversion = 1.0 + 0.8 * clear * (1.0 if weather.sun_elevation_deg < 0 else 0.0)
        washout = 1.0 / (1.0 + 0.15 * self.rain_mm_h)
        heating = max(0.0, 12.0 - weather.outdoor_temp_c)
        warmth = max(0.0, weather.outdoor_temp_c - 10.0)
        relax = min(1.0, dt_s / AIR_TAU_S)
        for station in self.stations:
            w = station.traffic_weight
            no2 = (12.0 + 55.0 * w * (0.15 + activity)) * inversion
            pm25 = (5.0 + 9.0 * w * (0.2 + activity) + 0.6 * heating) * inversion * washout
            co2 = 418.0 + 35.0 * w * (0.2 + activity) * inversion
            o3 = 25.0 + 70.0 * sun * clear + 3.0 * warmth * sun - 0.35 * no2
            if self.ozone_episode:
                afternoon = math.exp(-(((hour - 15.5) / 3.0) ** 2))
                o3 = max(o3, 195.0 + 70.0 * afternoon)
            station.no2 += relax * (no2 - station.no2)
            station.pm25 += relax * (pm25 - station.pm25)
            station.co2 += relax * (co2 - station.co2)
            # An episode builds within the hour: stagnant air keeps what sunshine makes.
            o3_relax = min(1.0, dt_s / (AIR_TAU_S / 2)) if self.ozone_episode else relax
            station.o3 += o3_relax * (max(2.0, o3) - station.o3)

    # -- device ----------------------------------------------------------------------------------

    def devices(self) -> tuple[SimDevice, ...]:
        """The environmental sensor network."""
        return (self._device,)

    def sensors(self) -> tuple[UplinkSensor, ...]:
        """One sensor per air station and per river gauge."""
        return tuple(self._sensor_of.values())

    def asset_plans(self) -> tuple[AssetPlan, ...]:
        """Stations and gauges on the map (gauges along one row of districts: the river)."""
        plans = [
            AssetPlan(s.name, "air_quality_station", s.label, 4 * i + 2)
            for i, s in enumerate(self.stations)
        ]
        plans += [AssetPlan(g.name, "river_gauge", g.label, i) for i, g in enumerate(self.gauges)]
        return tuple(plans)

    def _build(self) -> None:
        bindings: list[PointBinding] = []
        self._sensor_of: dict[str, UplinkSensor] = {}
        for station in self.stations:
            n, s = station.name, station
            bindings += [
                PointBinding(
                    PointSpec(f"{n}.no2", "float", "µg/m³", low=0.0, high=1000.0),
                    lambda s=s: s.no2,  # type: ignore[misc]
                ),
                PointBinding(
                    PointSpec(f"{n}.o3", "float", "µg/m³", low=0.0, high=1000.0),
                    lambda s=s: s.o3,  # type: ignore[misc]
                ),
                PointBinding(
                    PointSpec(f"{n}.pm25", "float", "µg/m³", low=0.0, high=1000.0),
                    lambda s=s: s.pm25,  # type: ignore[misc]
                ),
                PointBinding(
                    PointSpec(f"{n}.co2", "float", "ppm", low=300.0, high=5000.0),
                    lambda s=s: s.co2,  # type: ignore[misc]
                ),
            ]
            self._sensor_of[n] = UplinkSensor(
                n.split(".", 1)[1],
                AIR_REPORT_S,
                tuple((key, f"{n}.{key}") for key in ("no2", "o3", "pm25", "co2")),
            )
        for gauge in self.gauges:
            n, g = gauge.name, gauge
            bindings += [
                PointBinding(
                    PointSpec(f"{n}.level", "float", "m", low=0.0, high=10.0),
                    lambda g=g: g.level_m,  # type: ignore[misc]
                ),
                PointBinding(
                    PointSpec(f"{n}.flow", "float", "m³/s", low=0.0, high=5000.0),
                    lambda g=g: _rating_curve(g.level_m),  # type: ignore[misc]
                ),
                PointBinding(
                    PointSpec(f"{n}.rain", "float", "mm/h", low=0.0, high=200.0),
                    lambda g=g: g.rain_mm_h,  # type: ignore[misc]
                ),
            ]
            self._sensor_of[n] = UplinkSensor(
                n.split(".", 1)[1],
                GAUGE_REPORT_S,
                tuple((key, f"{n}.{key}") for key in ("level", "flow", "rain")),
            )
        self._device = SimDevice(DEVICE, "mqtt", bindings, description="environment sensors")


def _rating_curve(level_m: float) -> float:
    """Discharge from stage (a power-law rating curve Q = a (h - h0)^b)."""
    return float(40.0 * max(0.0, level_m - 0.3) ** 1.6)
