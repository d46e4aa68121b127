"""Road segments with induction-loop detectors, and a road-pricing zone counting entries.

Each segment has a capacity and a free-flow speed. Demand over capacity (v/c) follows the day
(the commuter peaks of ``plc_sim.mobility.traffic``), the segment's own weight and a slow random
wander; speed follows the BPR curve (US Bureau of Public Roads): travel time over free-flow time
is ``1 + BPR_ALPHA (v/c)^4`` (0.5, steeper than the highway 0.15: urban signalised roads).
Flow is demand capped at capacity; occupancy is the share of time a
6 m loop is covered (flow / speed x effective vehicle length); the congestion index is the share
of free-flow speed lost (0 free, 1 standstill). Rainy, dark weather (cloud cover at night) slows
traffic a little. An incident (``start_incident``) halves a segment's capacity until cleared.

The road-pricing zone counts vehicles entering it: a share of the flow of every inbound segment,
charged on working days 07:00-19:00; ``entries`` is the day's total (reset at local midnight).

Detectors report every ``REPORT_INTERVAL_S`` (an NB-IoT detector's minute), the zone's gantry
every ``ZONE_REPORT_INTERVAL_S``. ``travel_time_factor`` is what buses feel on the roads.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from plc_sim.device import PointBinding, PointSpec, SimDevice
from plc_sim.domain import AssetPlan, UplinkSensor
from plc_sim.mobility.traffic import traffic_factor
from plc_sim.weather import WeatherState

DEVICE = "traffic.detectors"
REPORT_INTERVAL_S = 60.0
ZONE_REPORT_INTERVAL_S = 300.0
SEGMENTS_PER_SCALE = 6
VEHICLE_LENGTH_KM = 0.0065
"""Effective length of a vehicle over a loop detector (vehicle plus loop), km."""
BPR_ALPHA = 0.5
ZONE_SHARE = 0.35
"""Share of an inbound segment's flow that enters the pricing zone."""


@dataclass(slots=True)
class RoadSegment:
    """One road segment and what its detector measures."""

    name: str
    label: str
    capacity_vph: float
    free_speed_kmh: float
    weight: float
    inbound: bool
    demand_vc: float = 0.2
    flow_vph: float = 0.0
    speed_kmh: float = 0.0
    count: float = 0.0
    incident: bool = False
    wander: float = 1.0

    @property
    def occupancy_pct(self) -> float:
        """Share of time the loop is covered, %."""
        if self.speed_kmh <= 0.1:
            return 100.0 if self.flow_vph > 0 else 0.0
        return min(100.0, 100.0 * self.flow_vph / self.speed_kmh * VEHICLE_LENGTH_KM)

    @property
    def congestion(self) -> float:
        """Share of free-flow speed lost: 0 free flow, 1 standstill."""
        return max(0.0, min(1.0, 1.0 - self.speed_kmh / self.free_speed_kmh))


class TrafficNetwork:
    """The city's detected road segments and its road-pricing zone."""

    def __init__(self, scale: int = 1, seed: int = 1, tz: ZoneInfo | None = None) -> None:
        self._rng = random.Random(f"traffic:{seed}")
        self._tz = tz or ZoneInfo("Europe/Amsterdam")
        rng = self._rng
        self.segments: list[RoadSegment] = []
        for index in range(SEGMENTS_PER_SCALE * scale):
            arterial = index % 3 != 2
            self.segments.append(
                RoadSegment(
                    name=f"traffic.seg{index + 1}",
                    label=f"Road segment {index + 1}",
                    capacity_vph=rng.choice((1800.0, 2400.0, 3600.0)) if arterial else 900.0,
                    free_speed_kmh=50.0 if arterial else 30.0,
                    weight=rng.uniform(0.75, 1.15),
                    inbound=index % 2 == 0,
                )
            )
        self.zone_entries = 0.0
        self.zone_rate_vph = 0.0
        self._day: int | None = None
        self._incidents: set[str] = set()
        self._build()

    # -- scenarios -----------------------------------------------------------------------------

    def segment(self, name: str) -> RoadSegment:
        """A segment by name (``traffic.seg1``); KeyError naming the known ones."""
        for segment in self.segments:
            if segment.name == name:
                return segment
        raise KeyError(f"no road segment {name!r}; there are {[s.name for s in self.segments]}")

    def start_incident(self, name: str) -> None:
        """An accident or road works on a segment: its capacity halves until cleared."""
        self.segment(name).incident = True

    def clear_incident(self, name: str) -> None:
        """The segment is clear again."""
        self.segment(name).incident = False

    def travel_time_factor(self, local: datetime) -> float:
        """Travel time over free-flow time across the network now (>= 1): what buses feel.

        ``local`` is accepted so the function can stand in for the time-of-day profile."""
        if not self.segments:
            return traffic_factor(local)
        total = sum(s.free_speed_kmh / max(s.speed_kmh, 1.0) for s in self.segments)
        return max(1.0, total / len(self.segments))

    # -- physics -------------------------------------------------------------------------------

    def step(self, dt_s: float, now: datetime, weather: WeatherState) -> None:
        """Advance ``dt_s`` simulated seconds ending at ``now``."""
        local = now.astimezone(self._tz)
        if self._day != local.toordinal():
            self._day = local.toordinal()
            self.zone_entries = 0.0
        profile = traffic_factor(local) - 1.0  # 0 at night, ~0.5 in the peaks
        hour = local.hour + local.minute / 60
        night = hour < 5.5 or hour > 23.0
        base_vc = 0.06 if night else 0.2 + 1.7 * profile
        # Rain and darkness (clouds after sunset) slow drivers by up to a tenth.
        gloom = 1.0 - 0.1 * weather.cloud_cover * (1.0 if weather.sun_elevation_deg < 0 else 0.5)
        rate = 0.0
        for segment in self.segments:
            # A slow wander (tau 20 min) keeps every segment's day its own.
            relax = min(1.0, dt_s / 1200.0)
            segment.wander += relax * (1.0 - segment.wander) + self._rng.gauss(
                0.0, 0.03 * math.sqrt(relax)
            )
            segment.wander = min(1.3, max(0.7, segment.wander))
            segment.demand_vc = max(0.0, base_vc * segment.weight * segment.wander)
            capacity = segment.capacity_vph * (0.5 if segment.incident else 1.0)
            vc = segment.demand_vc * segment.capacity_vph / capacity
            segment.flow_vph = min(capacity, vc * capacity) if vc <= 1.0 else capacity / vc
            speed = segment.free_speed_kmh * gloom / (1.0 + BPR_ALPHA * vc**4)
            segment.speed_kmh = max(3.0, speed)
            segment.count += segment.flow_vph * dt_s / 3600.0
            if segment.inbound:
                rate += ZONE_SHARE * segment.flow_vph
        charged = local.weekday() < 5 and 7 <= local.hour < 19
        self.zone_rate_vph = rate if charged else 0.0
        self.zone_entries += self.zone_rate_vph * dt_s / 3600.0

    # -- device ----------------------------------------------------------------------------------

    def devices(self) -> tuple[SimDevice, ...]:
        """The detector network, one device with every segment's points."""
        return (self._device,)

    def sensors(self) -> tuple[UplinkSensor, ...]:
        """One detector per segment and the zone's gantry counter."""
        return self._sensors

    def asset_plans(self) -> tuple[AssetPlan, ...]:
        """Every segment and the pricing zone on the map."""
        plans = [
            AssetPlan(s.name, "road_segment", s.label, 2 * index)
            for index, s in enumerate(self.segments)
        ]
        plans.append(AssetPlan("traffic.zone1", "pricing_zone", "Road-pricing zone", 0))
        return tuple(plans)

    def _build(self) -> None:
        bindings: list[PointBinding] = []
        sensors: list[UplinkSensor] = []
        for segment in self.segments:
            n = segment.name
            s = segment
            bindings += [
                PointBinding(
                    PointSpec(f"{n}.flow", "float", "veh/h", low=0.0, high=4000.0),
                    lambda s=s: s.flow_vph,  # type: ignore[misc]
                ),
                PointBinding(
                    PointSpec(f"{n}.speed", "float", "km/h", low=0.0, high=130.0),
                    lambda s=s: s.speed_kmh,  # type: ignore[misc]
                ),
                PointBinding(
                    PointSpec(f"{n}.occupancy", "float", "%", low=0.0, high=100.0),
                    lambda s=s: s.occupancy_pct,  # type: ignore[misc]
                ),
                PointBinding(
                    PointSpec(f"{n}.count", "counter", "veh", low=0.0, description="vehicles"),
                    lambda s=s: float(int(s.count)),  # type: ignore[misc]
                ),
                PointBinding(
                    PointSpec(
                        f"{n}.congestion",
                        "float",
                        low=0.0,
                        high=1.0,
                        description="congestion index: share of free-flow speed lost",
                    ),
                    lambda s=s: s.congestion,  # type: ignore[misc]
                ),
            ]
            fields = ("flow", "speed", "occupancy", "count", "congestion")
            sensors.append(
                UplinkSensor(
                    n.split(".", 1)[1],
                    REPORT_INTERVAL_S,
                    tuple((field, f"{n}.{field}") for field in fields),
                )
            )
        bindings += [
            PointBinding(
                PointSpec(
                    "traffic.zone1.entries",
                    "counter",
                    "veh",
                    low=0.0,
                    description="vehicles charged entering the zone today",
                ),
                lambda: float(int(self.zone_entries)),
            ),
            PointBinding(
                PointSpec("traffic.zone1.entry_rate", "float", "veh/h", low=0.0, high=20_000.0),
                lambda: self.zone_rate_vph,
            ),
        ]
        sensors.append(
            UplinkSensor(
                "zone1",
                ZONE_REPORT_INTERVAL_S,
                (("entries", "traffic.zone1.entries"), ("entry_rate", "traffic.zone1.entry_rate")),
            )
        )
        self._device = SimDevice(DEVICE, "mqtt", bindings, description="traffic detectors")
        self._sensors = tuple(sensors)
