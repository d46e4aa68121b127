"""The daily waste collection list: every container filled above the threshold (80 %), in the
order a crew would drive them.

The order is the nearest-neighbour tour from the depot over the containers' positions
(straight-line, haversine distances): from where the truck stands, always the closest
container not yet emptied. It is a greedy heuristic, typically within about 25 % of the
shortest tour, and needs no road network; a site that has one can replace the planner.
Containers whose fill level is not Good (a sensor that stopped reporting) are left out of the
list and counted, so the crew is not sent on a stale figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from controlcenter.automation import AssetDef, GeoPoint
from controlcenter.model import Event, EventKind
from controlcenter.ports import CollectionStop, EventJournal, LiveView

EARTH_RADIUS_M = 6_371_000.0
DEFAULT_THRESHOLD_PCT = 80.0
CONTAINER_TYPE = "waste_container"
FILL_POINT = "fill"
"""A container's fill-level tag is ``<asset>.fill`` (per cent), as its sensor's uplink names it."""
SOURCE = "waste-collection"


@dataclass(frozen=True, slots=True)
class ContainerFill:
    """A container's place and how full it is."""

    asset: str
    label: str
    position: GeoPoint
    fill_pct: float


def distance_m(a: GeoPoint, b: GeoPoint) -> float:
    """The great-circle distance between two places, in metres (haversine)."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat = lat2 - lat1
    dlon = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def collection_round(
    containers: Sequence[ContainerFill],
    depot: GeoPoint,
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
) -> tuple[CollectionStop, ...]:
    """The containers above ``threshold_pct``, in nearest-neighbour order from ``depot`` (ties
    broken by name, so the same fill levels always give the same list)."""
    due = sorted(
        (c for c in containers if math.isfinite(c.fill_pct) and c.fill_pct > threshold_pct),
        key=lambda c: c.asset,
    )
    stops: list[CollectionStop] = []
    here = depot
    while due:
        nearest = min(due, key=lambda c: (distance_m(here, c.position), c.asset))
        due.remove(nearest)
        leg = distance_m(here, nearest.position)
        stops.append(
            CollectionStop(
                order=len(stops) + 1,
                asset=nearest.asset,
                label=nearest.label,
                fill_pct=nearest.fill_pct,
                latitude=nearest.position.latitude,
                longitude=nearest.position.longitude,
                leg_m=leg,
            )
        )
        here = nearest.position
    return tuple(stops)


def round_length_m(stops: Sequence[CollectionStop], depot: GeoPoint) -> float:
    """The length of a round from the depot over ``stops`` (not back)."""
    return sum(stop.leg_m for stop in stops) if stops else 0.0


class CollectionPlanner:
    """Builds the next collection round from the containers' live fill levels."""

    def __init__(
        self,
        assets: Sequence[AssetDef],
        live: LiveView,
        depot: GeoPoint,
        *,
        threshold_pct: float = DEFAULT_THRESHOLD_PCT,
        container_type: str = CONTAINER_TYPE,
        fill_point: str = FILL_POINT,
    ) -> None:
        self._containers = tuple(
            (asset, f"{asset.name}.{fill_point}")
            for asset in assets
            if asset.type == container_type and asset.position is not None
        )
        self._live = live
        self.depot = depot
        self.threshold_pct = threshold_pct
        self.unknown = 0
        """Containers left out of the last list because their level was not Good."""

    def fills(self) -> list[ContainerFill]:
        """Every container whose fill level is Good now."""
        fills: list[ContainerFill] = []
        unknown = 0
        for asset, tag in self._containers:
            try:
                sample = self._live.latest(tag)
            except KeyError:
                unknown += 1
                continue
            value = sample.value
            if (
                not sample.quality.is_good
                or isinstance(value, bool)
                or not isinstance(value, int | float)
                or asset.position is None
            ):
                unknown += 1
                continue
            fills.append(
                ContainerFill(asset.name, asset.label or asset.name, asset.position, float(value))
            )
        self.unknown = unknown
        return fills

    def next_collection(self) -> tuple[CollectionStop, ...]:
        """The containers due now, ordered as the crew would drive them."""
        return collection_round(self.fills(), self.depot, self.threshold_pct)

    def record(self, journal: EventJournal, now: datetime, timezone: ZoneInfo) -> int:
        """Journal today's list (one event naming the containers in order); returns its length."""
        stops = self.next_collection()
        day = now.astimezone(timezone).date().isoformat()
        names = ", ".join(f"{s.order}. {s.asset} ({s.fill_pct:.0f} %)" for s in stops)
        length_km = round_length_m(stops, self.depot) / 1000
        journal.record(
            Event(
                now,
                EventKind.SYSTEM,
                SOURCE,
                f"collection list for {day}: {len(stops)} containers above "
                f"{self.threshold_pct:g} %, {length_km:.1f} km"
                + (f": {names}" if names else "")
                + (f" ({self.unknown} without a current level)" if self.unknown else ""),
            )
        )
        return len(stops)
