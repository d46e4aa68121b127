"""Building types and their occupancy: who is in which zone, when, drawn from a seed.

A building type fixes its zones (use, floor area, how many people they hold) and its week:
operating hours per weekday (heating in occupied mode, ventilation running) and the periods
people are in the zones. Each zone's day is drawn from that template with seeded randomness:
arrival and departure jitter, how many people come, and now and then a zone left empty.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ZoneDesign:
    """One zone of a building type: its use, floor area, ceiling height and capacity."""

    use: str
    area_m2: float
    height_m: float
    capacity: int
    """People the zone is designed for (ventilation is sized for them)."""


@dataclass(frozen=True, slots=True)
class Period:
    """A span of local hours on one day, ``start_h`` inclusive, ``end_h`` exclusive."""

    start_h: float
    end_h: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.start_h < self.end_h <= 24.0:
            raise ValueError(f"period {self.start_h}..{self.end_h} is not within one day")

    def contains(self, hour: float) -> bool:
        """Whether ``hour`` lies in the period."""
        return self.start_h <= hour < self.end_h


@dataclass(frozen=True, slots=True)
class Visit:
    """People in a zone from ``start_h`` to ``end_h`` on one day."""

    start_h: float
    end_h: float
    people: int


@dataclass(frozen=True, slots=True)
class BuildingType:
    """A kind of building: zones, operating hours and occupancy template per weekday."""

    kind: str
    zones: tuple[ZoneDesign, ...]
    operating_hours: tuple[Period | None, ...]
    """Monday..Sunday: when the building is in occupied mode (None: closed all day)."""
    occupied_periods: tuple[tuple[Period, ...], ...]
    """Monday..Sunday: when people are in the zones (before jitter)."""
    attendance: tuple[float, float] = (0.6, 1.0)
    """Range of the fraction of a zone's capacity present in a period."""
    empty_probability: float = 0.1
    """Chance that a zone stays empty for a whole period."""
    jitter_h: float = 0.25
    """Arrivals and departures vary by up to this many hours either way."""

    def __post_init__(self) -> None:
        if len(self.operating_hours) != 7 or len(self.occupied_periods) != 7:
            raise ValueError(f"building type {self.kind}: give seven days, Monday first")
        if not self.zones:
            raise ValueError(f"building type {self.kind} has no zones")
        low, high = self.attendance
        if not 0.0 <= low <= high <= 1.0 or not 0.0 <= self.empty_probability <= 1.0:
            raise ValueError(f"building type {self.kind}: fractions must lie in 0..1")

    def day_plan(self, weekday: int, rng: random.Random, capacity: int) -> tuple[Visit, ...]:
        """The visits of one zone of ``capacity`` people on a ``weekday`` (0 Monday)."""
        visits = []
        for period in self.occupied_periods[weekday]:
            if rng.random() < self.empty_probability:
                continue
            start = period.start_h + rng.uniform(-self.jitter_h, self.jitter_h)
            end = period.end_h + rng.uniform(-self.jitter_h, self.jitter_h)
            people = round(capacity * rng.uniform(*self.attendance))
            if people > 0 and end > start:
                visits.append(Visit(max(0.0, start), min(24.0, end), people))
        return tuple(visits)


def _weekdays(
    weekday: Period | None, saturday: Period | None = None, sunday: Period | None = None
) -> tuple[Period | None, ...]:
    return (weekday, weekday, weekday, weekday, weekday, saturday, sunday)


def _periods(
    weekday: tuple[Period, ...],
    saturday: tuple[Period, ...] = (),
    sunday: tuple[Period, ...] = (),
) -> tuple[tuple[Period, ...], ...]:
    return (weekday, weekday, weekday, weekday, weekday, saturday, sunday)


_CLASSROOM = ZoneDesign("classroom", 70.0, 3.2, 26)

SCHOOL = BuildingType(
    kind="school",
    zones=(*(_CLASSROOM,) * 5, ZoneDesign("hall", 280.0, 6.0, 60)),
    operating_hours=_weekdays(Period(7.0, 17.0)),
    occupied_periods=_periods((Period(7.9, 12.0), Period(12.75, 15.5))),
    attendance=(0.8, 1.0),
    empty_probability=0.1,
    jitter_h=0.1,
)
"""A primary school: five classrooms and a hall, lessons on weekdays."""

OFFICE = BuildingType(
    kind="office",
    zones=(
        ZoneDesign("open office", 220.0, 3.0, 22),
        ZoneDesign("open office", 180.0, 3.0, 18),
        ZoneDesign("open office", 250.0, 3.0, 25),
        ZoneDesign("meeting rooms", 90.0, 3.0, 24),
        ZoneDesign("open office", 160.0, 3.0, 16),
    ),
    operating_hours=_weekdays(Period(7.0, 19.0)),
    occupied_periods=_periods((Period(8.0, 12.0), Period(13.0, 17.5))),
    attendance=(0.5, 0.9),
    empty_probability=0.05,
    jitter_h=0.5,
)
"""An office block: desks and meeting rooms on weekdays, with a lunch break."""

LIBRARY = BuildingType(
    kind="library",
    zones=(
        ZoneDesign("reading room", 320.0, 4.0, 60),
        ZoneDesign("stacks", 400.0, 3.5, 20),
        ZoneDesign("children", 120.0, 3.2, 25),
        ZoneDesign("staff", 90.0, 3.0, 8),
    ),
    operating_hours=_weekdays(Period(9.0, 20.0), saturday=Period(9.0, 15.0)),
    occupied_periods=_periods((Period(10.0, 19.0),), saturday=(Period(10.0, 14.0),)),
    attendance=(0.2, 0.8),
    empty_probability=0.05,
    jitter_h=0.25,
)
"""A public library: open weekdays and Saturday mornings."""

BUILDING_TYPES: tuple[BuildingType, ...] = (SCHOOL, OFFICE, LIBRARY)
"""The building types in the order the stock repeats them."""
