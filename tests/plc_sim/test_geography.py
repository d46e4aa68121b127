"""The simulated city's map: deterministic from the seed, districts tiling the area, every asset
inside its district, and the simulator's own topology."""

from __future__ import annotations

import pytest

from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock
from plc_sim.geography import (
    DISTRICT_SIZE_KM,
    KM_PER_DEGREE,
    CityGeography,
    city_geography,
    grid_shape,
    point_in_polygon,
)


def geography(scale: int = 1, seed: int = 1, **options: object) -> CityGeography:
    city = SimulatedCity(SimClock(), CityOptions(scale=scale, seed=seed, **options))  # type: ignore[arg-type]
    return city_geography(city)


def city_of(scale: int, seed: int = 1) -> SimulatedCity:
    return SimulatedCity(SimClock(), CityOptions(scale=scale, seed=seed))


def test_the_same_seed_gives_the_same_map_and_another_seed_another() -> None:
    assert geography(seed=3) == geography(seed=3)
    first, other = geography(seed=3), geography(seed=4)
    assert [a.name for a in first.assets] == [a.name for a in other.assets]
    assert [a.position for a in first.assets] != [a.position for a in other.assets]


@pytest.mark.parametrize("scale", [1, 3, 5])
def test_every_asset_stands_inside_its_district(scale: int) -> None:
    found = geography(scale=scale)
    outlines = {district.name: district.outline for district in found.districts}
    for asset in found.assets:
        assert point_in_polygon(asset.position, outlines[asset.district]), asset
        others = [name for name, outline in outlines.items() if name != asset.district]
        assert not any(point_in_polygon(asset.position, outlines[name]) for name in others), asset


def _area(outline: tuple[tuple[float, float], ...]) -> float:
    """Shoelace area in square degrees."""
    return abs(
        sum(
            lat1 * lon2 - lat2 * lon1
            for (lat1, lon1), (lat2, lon2) in zip(outline, outline[1:] + outline[:1], strict=True)
        )
        / 2.0
    )


@pytest.mark.parametrize("scale", [1, 2, 7])
def test_the_districts_tile_the_area_around_the_site(scale: int) -> None:
    found = geography(scale=scale, latitude=48.2, longitude=16.4)
    rows, columns = grid_shape(4 * scale)
    assert len(found.districts) == rows * columns == 4 * scale
    cell_lat = DISTRICT_SIZE_KM / KM_PER_DEGREE
    corners = [corner for district in found.districts for corner in district.outline]
    middle_lat = (min(c[0] for c in corners) + max(c[0] for c in corners)) / 2
    middle_lon = (min(c[1] for c in corners) + max(c[1] for c in corners)) / 2
    assert middle_lat == pytest.approx(48.2, abs=1e-5)
    assert middle_lon == pytest.approx(16.4, abs=1e-5)
    assert max(c[0] for c in corners) - min(c[0] for c in corners) == pytest.approx(
        rows * cell_lat, rel=1e-4
    )
    # The outlines cover the bounding box exactly once: no gap, no overlap.
    box = (max(c[0] for c in corners) - min(c[0] for c in corners)) * (
        max(c[1] for c in corners) - min(c[1] for c in corners)
    )
    assert sum(_area(d.outline) for d in found.districts) == pytest.approx(box, rel=1e-6)
    assert all(len(d.outline) == 4 for d in found.districts)
    assert len({d.label for d in found.districts}) == len(found.districts)


@pytest.mark.parametrize("scale", [1, 2])
def test_every_tag_of_the_city_belongs_to_a_placed_asset(scale: int) -> None:
    city = city_of(scale)
    names = {asset.name for asset in city_geography(city).assets}
    for point in city.points():
        assert any(point.tag.startswith(name + ".") for name in names), point.tag
    for name in names:
        assert any(point.tag.startswith(name + ".") for point in city.points()), name


def test_the_topology_is_the_simulators() -> None:
    city = city_of(2)
    found = city_geography(city)
    water = city.water
    assert water is not None
    assets = {asset.name: asset for asset in found.assets}
    stations = [f"water.ps{j}" for j in range(1, 7)]
    assert assets["water.plant"].feeds == tuple(stations)
    for number, station in enumerate(stations, start=1):
        (reservoir,) = assets[station].feeds
        index = int(reservoir.removeprefix("water.tank")) - 2
        assert water.reservoirs[index] is water.reservoir_of_station(number)
    fed = [dma for asset in found.assets if asset.type == "reservoir" for dma in asset.feeds]
    assert sorted(fed) == sorted(f"water.dma{i}" for i in range(1, 9))
    for asset in found.assets:
        if asset.type == "reservoir":
            for dma in asset.feeds:
                index = int(asset.name.removeprefix("water.tank")) - 2
                number = int(dma.removeprefix("water.dma"))
                assert water.reservoir_of_district(number) is water.reservoirs[index]
    assert assets["heat.plant"].feeds == tuple(f"heat.ss{n}" for n in range(1, 13))
    assert {assets["lights.d3.c1"].district} == {"d3"}


def test_a_city_of_some_domains_places_only_their_assets() -> None:
    found = geography(domains=frozenset({"water"}))
    assert {asset.name.split(".")[0] for asset in found.assets} == {"water"}
    assert len(found.districts) == 4
    types = {asset.type for asset in found.assets}
    assert types == {
        "treatment_plant",
        "storage_tank",
        "reservoir",
        "booster_station",
        "metering_area",
    }


def test_a_grid_is_as_square_as_its_count_allows() -> None:
    assert grid_shape(4) == (2, 2)
    assert grid_shape(80) == (8, 10)
    assert grid_shape(28) == (4, 7)
    with pytest.raises(ValueError):
        grid_shape(0)
