"""What the mobility models report to the feed servers: plain records, no protocol."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class VehicleReport:
    """One bus on one trip: where it is and how late it runs."""

    vehicle_id: str
    route_id: str
    trip_id: str
    lat: float
    lon: float
    speed_mps: float
    bearing_deg: float
    stopped: bool
    delay_s: int
    next_stop: str
    """The stop the bus heads for (its terminus while it waits there)."""


@dataclass(frozen=True, slots=True)
class StationReport:
    """One bike-share station's state."""

    station_id: str
    name: str
    lat: float
    lon: float
    capacity: int
    bikes: int
    installed: bool
    renting: bool
    returning: bool
    last_reported: datetime

    @property
    def docks(self) -> int:
        """Free docks."""
        return self.capacity - self.bikes
