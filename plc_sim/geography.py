"""Where the simulated city's plant stands: districts tiling the area around the site, and a
plausible place for every asset, with the pipes between them (what feeds what).

Everything is drawn from the city's seed, so the same city always has the same map. The city
is a grid of ``DISTRICT_SIZE_KM`` districts, one per lighting district (``lights.d<N>``), laid
out as close to a square as the count allows around the site's latitude and longitude. The
inner corners of the grid are moved at random by up to ``CORNER_JITTER`` of a district's size,
so the outlines look like city districts while still tiling the area without gaps (neighbours
share their corners) and every outline stays convex.

Assets stand inside their district, at least ``INSET`` of its size from its edges:
lighting cabinets in their lighting district, each metering area in its own district, a
reservoir in the district of the first metering area it supplies and its booster stations
next to it, the treatment plant, tank 1, the heat plant, its substations and the buildings
spread over the others. The topology is the simulator's own: the treatment plant feeds every
booster station, each station the reservoir it pumps into, each reservoir the metering areas
that draw from it; the heat plant feeds every substation.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plc_sim.lighting.network import DISTRICTS_PER_SCALE

if TYPE_CHECKING:
    from plc_sim.city import SimulatedCity
    from plc_sim.water.network import WaterNetwork

KM_PER_DEGREE = 111.32
"""Length of a degree of latitude (and of longitude at the equator), km."""
DISTRICT_SIZE_KM = 1.4
CORNER_JITTER = 0.15
"""Largest move of an inner grid corner, as a share of a district's size (small enough that
no outline can turn concave)."""
INSET = 0.18
"""Assets keep this share of their district's size from its edges."""

DISTRICT_NAMES = (
    "Old Town",
    "Harbour",
    "Riverside",
    "North End",
    "Market",
    "Parkside",
    "University",
    "Station",
    "Canal",
    "Westgate",
    "Eastbank",
    "Hillside",
    "Meadows",
    "Mill Quarter",
    "Garden City",
    "Docklands",
)
"""Labels of the first districts (in an order drawn from the seed); later ones are numbered."""

LatLon = tuple[float, float]


@dataclass(frozen=True, slots=True)
class District:
    """A district: its name (``d1``), label and outline of (latitude, longitude) corners."""

    name: str
    label: str
    outline: tuple[LatLon, ...]


@dataclass(frozen=True, slots=True)
class PlacedAsset:
    """A plant item where it stands, with the assets it supplies."""

    name: str
    type: str
    label: str
    position: LatLon
    district: str
    feeds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CityGeography:
    """The city's districts and every asset of its simulated domains."""

    districts: tuple[District, ...]
    assets: tuple[PlacedAsset, ...]

    def asset(self, name: str) -> PlacedAsset:
        """The asset ``name``; raises KeyError."""
        for asset in self.assets:
            if asset.name == name:
                return asset
        raise KeyError(name)

    def district(self, name: str) -> District:
        """The district ``name``; raises KeyError."""
        for district in self.districts:
            if district.name == name:
                return district
        raise KeyError(name)


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of a grid of exactly ``count`` cells, as square as possible."""
    if count < 1:
        raise ValueError(f"a city has at least one district, got {count}")
    rows = max(r for r in range(1, math.isqrt(count) + 1) if count % r == 0)
    return rows, count // rows


class _Grid:
    """The district grid in km around the site (x east, y north), with jittered inner corners."""

    def __init__(self, count: int, rng: random.Random) -> None:
        self.rows, self.columns = grid_shape(count)
        size = DISTRICT_SIZE_KM
        left = -self.columns * size / 2.0
        bottom = -self.rows * size / 2.0
        self.corners: list[list[tuple[float, float]]] = []
        for row in range(self.rows + 1):
            line = []
            for column in range(self.columns + 1):
                x, y = left + column * size, bottom + row * size
                # The outer edge stays straight: the city's boundary needs no wobble to look
                # real, and moving only inner corners keeps the tiling exact.
                if 0 < row < self.rows and 0 < column < self.columns:
                    x += rng.uniform(-CORNER_JITTER, CORNER_JITTER) * size
                    y += rng.uniform(-CORNER_JITTER, CORNER_JITTER) * size
                line.append((x, y))
            self.corners.append(line)

    def cell(self, index: int) -> tuple[tuple[float, float], ...]:
        """The corners of cell ``index`` (row-major), counter-clockwise from bottom left."""
        row, column = divmod(index, self.columns)
        c = self.corners
        return (c[row][column], c[row][column + 1], c[row + 1][column + 1], c[row + 1][column])

    def inside(self, index: int, rng: random.Random) -> tuple[float, float]:
        """A point of cell ``index``, away from its edges (bilinear in the convex quad)."""
        u = rng.uniform(INSET, 1.0 - INSET)
        v = rng.uniform(INSET, 1.0 - INSET)
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = self.cell(index)
        x = (1 - u) * (1 - v) * x0 + u * (1 - v) * x1 + u * v * x2 + (1 - u) * v * x3
        y = (1 - u) * (1 - v) * y0 + u * (1 - v) * y1 + u * v * y2 + (1 - u) * v * y3
        return x, y


class _Projection:
    """Local km around the site to degrees (equirectangular: exact enough for a city)."""

    def __init__(self, latitude: float, longitude: float) -> None:
        self.latitude = latitude
        self.longitude = longitude
        self.km_per_degree_longitude = KM_PER_DEGREE * max(math.cos(math.radians(latitude)), 0.01)

    def degrees(self, point: tuple[float, float]) -> LatLon:
        x, y = point
        return (
            round(self.latitude + y / KM_PER_DEGREE, 6),
            round(self.longitude + x / self.km_per_degree_longitude, 6),
        )


def city_geography(city: SimulatedCity) -> CityGeography:
    """The districts and assets of ``city`` (its simulated domains only)."""
    options = city.options
    count = DISTRICTS_PER_SCALE * options.scale
    rng = random.Random(f"geography:{options.seed}")
    grid = _Grid(count, rng)
    projection = _Projection(options.latitude, options.longitude)
    labels = list(DISTRICT_NAMES)
    rng.shuffle(labels)
    districts = tuple(
        District(
            name=f"d{index + 1}",
            label=labels[index] if index < len(labels) else f"District {index + 1}",
            outline=tuple(projection.degrees(corner) for corner in grid.cell(index)),
        )
        for index in range(count)
    )
    placer = _Placer(grid, projection, rng)
    if city.water is not None:
        _place_water(city.water, placer, count)
    if city.lighting is not None:
        for cabinet in city.lighting.cabinets:
            placer.place(
                cabinet.prefix,
                "lighting_cabinet",
                f"Lighting cabinet {cabinet.district}.{cabinet.number}",
                (cabinet.district - 1) % count,
            )
    if city.heating is not None:
        substations = [design.prefix for design in city.heating.designs]
        placer.place("heat.plant", "heating_plant", "Heat plant", count // 3, substations)
        for index, design in enumerate(city.heating.designs):
            placer.place(
                design.prefix, "substation", f"Substation {design.number}", (index + 1) % count
            )
    if city.buildings is not None:
        for index, device in enumerate(city.buildings.devices()):
            name = device.name.removesuffix("_bms")
            kind = name.split(".", 1)[1]
            label = kind.rstrip("0123456789").capitalize()
            number = kind[len(label) :]
            placer.place(
                name,
                "building",
                f"{label} {number}".strip(),
                (2 * index + 1) % count,
            )
    # The domains beyond the utilities say where on the grid their assets belong.
    for plan in city.asset_plans():
        placer.place(plan.name, plan.type, plan.label, plan.district % count)
    return CityGeography(districts, tuple(placer.assets))


def _place_water(water: WaterNetwork, placer: _Placer, count: int) -> None:
    reservoirs = list(water.reservoirs)
    stations = [f"water.ps{j + 1}" for j in range(len(water.stations))]
    district_of_reservoir: dict[int, int] = {}
    reservoir_feeds: dict[int, list[str]] = {r: [] for r in range(len(reservoirs))}
    for i in range(len(water.districts)):
        fed_by = _index_of(reservoirs, water.reservoir_of_district(i + 1))
        reservoir_feeds[fed_by].append(f"water.dma{i + 1}")
        district_of_reservoir.setdefault(fed_by, i % count)
    placer.place("water.plant", "treatment_plant", "Treatment plant", count - 1, stations)
    placer.place("water.tank1", "storage_tank", "Tank 1", count // 2)
    for r in range(len(reservoirs)):
        placer.place(
            f"water.tank{r + 2}",
            "reservoir",
            f"Reservoir tank {r + 2}",
            district_of_reservoir.get(r, r % count),
            reservoir_feeds[r],
        )
    for j in range(len(water.stations)):
        fed = _index_of(reservoirs, water.reservoir_of_station(j + 1))
        placer.place(
            stations[j],
            "booster_station",
            f"Booster station {j + 1}",
            district_of_reservoir.get(fed, fed % count),
            [f"water.tank{fed + 2}"],
        )
    for i in range(len(water.districts)):
        placer.place(f"water.dma{i + 1}", "metering_area", f"Metering area {i + 1}", i % count)


def _index_of(items: Sequence[object], item: object) -> int:
    """The position of ``item`` itself (not of an equal one) in ``items``."""
    for index, candidate in enumerate(items):
        if candidate is item:
            return index
    raise ValueError("not in the sequence")


class _Placer:
    def __init__(self, grid: _Grid, projection: _Projection, rng: random.Random) -> None:
        self.grid = grid
        self.projection = projection
        self.rng = rng
        self.assets: list[PlacedAsset] = []

    def place(
        self,
        name: str,
        kind: str,
        label: str,
        district: int,
        feeds: Sequence[str] = (),
    ) -> None:
        point = self.grid.inside(district, self.rng)
        self.assets.append(
            PlacedAsset(
                name=name,
                type=kind,
                label=label,
                position=self.projection.degrees(point),
                district=f"d{district + 1}",
                feeds=tuple(feeds),
            )
        )


def point_in_polygon(point: LatLon, outline: Sequence[LatLon]) -> bool:
    """Whether ``point`` lies inside the polygon ``outline`` (even-odd rule)."""
    latitude, longitude = point
    inside = False
    count = len(outline)
    for index in range(count):
        lat1, lon1 = outline[index]
        lat2, lon2 = outline[(index + 1) % count]
        if (lat1 > latitude) != (lat2 > latitude):
            crossing = lon1 + (latitude - lat1) * (lon2 - lon1) / (lat2 - lat1)
            if longitude < crossing:
                inside = not inside
    return inside
