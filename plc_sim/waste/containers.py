"""Underground and street containers whose fill level rises with use and drops when collected.

Each container has a type (residual, paper, glass, plastic) and a mean daily use that fills it
in a few days; people drop their waste in the daytime (a curve peaking in the late afternoon),
in random portions. Its ultrasonic sensor reports every 10-60 min (a LoRaWAN device's duty
cycle, drawn per container from the seed), and at once when the level first crosses
``FULL_ALERT_PCT`` (the sensor's threshold alarm). A crew empties each container on its
collection weekday at ``COLLECTION_HOUR``, or whenever ``collect`` is called; an emptied
container keeps a few per cent of residue. The sensor's temperature follows the air, plus a
fire (``start_fire``) that a thermal alarm should catch; its battery drains a little per uplink.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from plc_sim.device import PointBinding, PointSpec, SimDevice
from plc_sim.domain import AssetPlan, UplinkSensor
from plc_sim.weather import WeatherState

DEVICE = "waste.sensors"
CONTAINERS_PER_SCALE = 24
FULL_ALERT_PCT = 80.0
COLLECTION_HOUR = 7
RESIDUE_PCT = 2.0
KINDS = ("residual", "paper", "glass", "plastic")


def use_profile(hour: float) -> float:
    """Deposits relative to the day's mean at local ``hour`` (mean over a day ~1)."""
    return (
        0.15
        + 1.9 * math.exp(-(((hour - 17.0) / 3.5) ** 2))
        + 0.6 * math.exp(-(((hour - 9.0) / 2.0) ** 2))
    )


@dataclass(slots=True)
class Container:
    """One container and its sensor's readings."""

    name: str
    label: str
    kind: str
    fill_pct: float
    daily_use_pct: float
    collection_weekday: int
    report_interval_s: float
    temp_c: float = 10.0
    battery_pct: float = 100.0
    on_fire: bool = False
    collected_on: int | None = None


class WasteNetwork:
    """The city's sensor-equipped containers."""

    def __init__(self, scale: int = 1, seed: int = 1, tz: ZoneInfo | None = None) -> None:
        rng = random.Random(f"waste:{seed}")
        self._rng = rng
        self._tz = tz or ZoneInfo("Europe/Amsterdam")
        self.containers: list[Container] = []
        for index in range(CONTAINERS_PER_SCALE * scale):
            kind = KINDS[index % len(KINDS)]
            self.containers.append(
                Container(
                    name=f"waste.c{index + 1:03d}",
                    label=f"{kind.capitalize()} container {index + 1}",
                    kind=kind,
                    fill_pct=rng.uniform(5.0, 60.0),
                    daily_use_pct=rng.uniform(12.0, 35.0),
                    collection_weekday=rng.randrange(5),
                    report_interval_s=60.0 * rng.choice((10, 15, 20, 30, 45, 60)),
                    battery_pct=rng.uniform(40.0, 100.0),
                )
            )
        self._build()

    def container(self, name: str) -> Container:
        """A container by name (``waste.c001``); KeyError naming how many there are."""
        for container in self.containers:
            if container.name == name:
                return container
        raise KeyError(f"no container {name!r} (waste.c001-waste.c{len(self.containers):03d})")

    def fill(self, name: str, pct: float) -> None:
        """Set a container's level (a bulky drop); it reports at once when it crosses the alert."""
        if not 0.0 <= pct <= 100.0:
            raise ValueError(f"fill level {pct} outside 0-100 %")
        container = self.container(name)
        before = container.fill_pct
        container.fill_pct = pct
        if before < FULL_ALERT_PCT <= pct or pct < before:
            self._sensor_of[name].report_now = True

    def collect(self, name: str) -> None:
        """A crew empties the container; the sensor reports the drop at once."""
        container = self.container(name)
        container.fill_pct = RESIDUE_PCT
        self._sensor_of[name].report_now = True

    def start_fire(self, name: str) -> None:
        """A fire in the container: its temperature climbs; the sensor reports at once."""
        self.container(name).on_fire = True
        self._sensor_of[name].report_now = True

    def stop_reporting(self, name: str, silent: bool = True) -> None:
        """The container's sensor stops reporting (flat battery, broken antenna) or resumes."""
        self.container(name)
        self._sensor_of[name].silent = silent

    def full(self, threshold_pct: float = FULL_ALERT_PCT) -> list[Container]:
        """Containers at or above ``threshold_pct``, fullest first."""
        return sorted(
            (c for c in self.containers if c.fill_pct >= threshold_pct),
            key=lambda c: -c.fill_pct,
        )

    def step(self, dt_s: float, now: datetime, weather: WeatherState) -> None:
        """Advance ``dt_s`` simulated seconds ending at ``now``: deposits, collections, heat."""
        local = now.astimezone(self._tz)
        hour = local.hour + local.minute / 60
        today = local.toordinal()
        profile = use_profile(hour)
        for container in self.containers:
            sensor = self._sensor_of[container.name]
            before = container.fill_pct
            mean = container.daily_use_pct * profile * dt_s / 86_400.0
            if mean > 0:
                # Deposits come in portions: a gamma-distributed amount with the right mean.
                deposit = self._rng.gammavariate(2.0, mean / 2.0)
                container.fill_pct = min(100.0, container.fill_pct + deposit)
            if (
                local.weekday() == container.collection_weekday
                and hour >= COLLECTION_HOUR
                and container.collected_on != today
            ):
                container.collected_on = today
                container.fill_pct = RESIDUE_PCT
                sensor.report_now = True
            if before < FULL_ALERT_PCT <= container.fill_pct:
                sensor.report_now = True
            target = weather.outdoor_temp_c + (250.0 if container.on_fire else 0.0)
            relax = min(1.0, dt_s / (600.0 if container.on_fire else 3600.0))
            container.temp_c += relax * (target - container.temp_c)
            container.battery_pct = max(0.0, container.battery_pct - dt_s / (86_400.0 * 365 * 2))

    def devices(self) -> tuple[SimDevice, ...]:
        """The containers' sensor network."""
        return (self._device,)

    def sensors(self) -> tuple[UplinkSensor, ...]:
        """One fill-level sensor per container."""
        return tuple(self._sensor_of.values())

    def asset_plans(self) -> tuple[AssetPlan, ...]:
        """Every container on the map, spread over the districts."""
        return tuple(
            AssetPlan(c.name, "waste_container", c.label, index)
            for index, c in enumerate(self.containers)
        )

    def _build(self) -> None:
        bindings: list[PointBinding] = []
        self._sensor_of: dict[str, UplinkSensor] = {}
        for container in self.containers:
            n, c = container.name, container
            bindings += [
                PointBinding(
                    PointSpec(
                        f"{n}.fill", "float", "%", low=0.0, high=100.0, description="fill level"
                    ),
                    lambda c=c: c.fill_pct,  # type: ignore[misc]
                ),
                PointBinding(
                    PointSpec(f"{n}.temp", "float", "°C", low=-40.0, high=400.0),
                    lambda c=c: c.temp_c,  # type: ignore[misc]
                ),
                PointBinding(
                    PointSpec(f"{n}.battery", "float", "%", low=0.0, high=100.0),
                    lambda c=c: c.battery_pct,  # type: ignore[misc]
                ),
            ]
            self._sensor_of[n] = UplinkSensor(
                n.split(".", 1)[1],
                container.report_interval_s,
                (("fill", f"{n}.fill"), ("temp", f"{n}.temp"), ("battery", f"{n}.battery")),
            )
        self._device = SimDevice(DEVICE, "mqtt", bindings, description="waste container sensors")
