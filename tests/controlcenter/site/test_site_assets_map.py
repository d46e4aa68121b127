"""Assets with their places and topology, and the districts of the map, in the site file:
read into the shared vocabulary, and refused with ``file:line:column`` when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlcenter.automation import AssetDef, DistrictDef, GeoPoint
from controlcenter.runtime.demo import load_demo_site
from controlcenter.runtime.demo_site import demo_city_options, render_demo_site, write_demo_site
from controlcenter.site.config import load_site
from controlcenter.site.yamlsource import SourceFileError
from plc_sim.city import SimulatedCity
from plc_sim.clock import SimClock
from tests.controlcenter.site.site_samples import MODBUS_SITE

PLACES = """\
districts:
  - name: d1
    label: Old Town
    outline: [[52.00, 5.00], [52.00, 5.02], [52.01, 5.02], [52.01, 5.00]]
  - {name: d2, outline: [[52.01, 5.00], [52.01, 5.02], [52.02, 5.01]]}
assets:
  - {name: water.plant, type: treatment_plant, label: Treatment plant,
     position: [52.005, 5.01], district: d1, feeds: [water.tank1]}
  - {name: water.tank1, type: storage_tank, position: [52.012, 5.01], district: d2}
"""

DEMO_ALARMS_AT_SCALE_1 = 109
"""The demo site's alarms (templates expanded, single and communication alarms)."""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def spot(text: str, fragment: str) -> tuple[int, int]:
    offset = text.index(fragment)
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def refused(path: Path) -> list[str]:
    with pytest.raises(SourceFileError) as caught:
        load_site(path)
    return [str(problem) for problem in caught.value.problems]


def test_assets_and_districts_become_vocabulary(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, MODBUS_SITE + PLACES))
    assert site.asset_defs() == (
        AssetDef(
            name="water.plant",
            type="treatment_plant",
            area="water",
            label="Treatment plant",
            position=GeoPoint(52.005, 5.01),
            district="d1",
            feeds=("water.tank1",),
        ),
        AssetDef("water.tank1", "storage_tank", "water", "", GeoPoint(52.012, 5.01), "d2", ()),
    )
    d1, d2 = site.district_defs()
    assert d1 == DistrictDef(
        "d1",
        "Old Town",
        (GeoPoint(52.0, 5.0), GeoPoint(52.0, 5.02), GeoPoint(52.01, 5.02), GeoPoint(52.01, 5.0)),
    )
    assert (d2.label, len(d2.outline)) == ("d2", 3)
    # Types without an alarm template are plant items without alarms, not errors.
    assert site.alarm_defs() == tuple(a for a in site.alarm_defs() if a.kind == "comm_loss")


CASES = [
    (
        "latitude-out-of-range",
        "position: [52.005, 5.01]",
        "position: [95.0, 5.01]",
        "95.0",
        "assets[0].position[0]",
    ),
    (
        "longitude-not-a-number",
        "position: [52.012, 5.01]",
        "position: [52.012, east]",
        "east",
        "assets[1].position[1]",
    ),
    (
        "position-with-three-numbers",
        "position: [52.012, 5.01]",
        "position: [52.012, 5.01, 3]",
        "position: [52.012, 5.01, 3]",
        "assets[1].position",
    ),
    (
        "feeds-unknown-asset",
        "feeds: [water.tank1]",
        "feeds: [water.tank9]",
        "water.tank9",
        "assets[0].feeds[0]",
    ),
    (
        "feeds-itself",
        "feeds: [water.tank1]",
        "feeds: [water.plant]",
        "water.plant]",
        "assets[0].feeds[0]",
    ),
    (
        "unknown-district",
        "district: d2}",
        "district: d7}",
        "d7}",
        "assets[1].district",
    ),
    (
        "outline-of-two-corners",
        "outline: [[52.01, 5.00], [52.01, 5.02], [52.02, 5.01]]",
        "outline: [[52.01, 5.00], [52.01, 5.02]]",
        "[[52.01, 5.00], [52.01, 5.02]]",
        "districts[1].outline",
    ),
    (
        "outline-corner-off-the-earth",
        "[52.02, 5.01]]",
        "[52.02, 185.0]]",
        "185.0",
        "districts[1].outline[2][1]",
    ),
    (
        "duplicate-district",
        "{name: d2, outline",
        "{name: d1, outline",
        "name: d1, outline",
        "districts[1].name",
    ),
    (
        "duplicate-asset",
        "{name: water.tank1, type: storage_tank",
        "{name: water.plant, type: storage_tank",
        "name: water.plant, type: storage_tank",
        "assets[1].name",
    ),
    (
        "misspelt-type-without-template",
        "type: storage_tank",
        "type: storage_tnak",
        "storage_tnak",
        "assets[1].type",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "fragment", "location"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_problem_is_named_at_its_spot(
    tmp_path: Path, old: str, new: str, fragment: str, location: str
) -> None:
    original = MODBUS_SITE + PLACES
    assert original.count(old) == 1, old
    text = original.replace(old, new)
    path = write(tmp_path, text)
    problems = refused(path)
    line, column = spot(text, fragment)
    prefix = f"{path}:{line}:"
    assert any(
        problem.startswith(prefix) and f" {location}: " in problem for problem in problems
    ), (
        problems,
        line,
        column,
    )


def test_a_plain_type_refuses_overrides_it_cannot_have(tmp_path: Path) -> None:
    text = (MODBUS_SITE + PLACES).replace(
        "district: d2}", "district: d2, disable: [water.tank1.level.high]}"
    )
    problems = refused(write(tmp_path, text))
    assert any("has no alarm template" in problem for problem in problems), problems


def test_the_demo_site_places_every_asset_and_keeps_its_alarms() -> None:
    site = load_demo_site()
    assert len(site.alarm_defs()) == DEMO_ALARMS_AT_SCALE_1
    assets = {asset.name: asset for asset in site.asset_defs()}
    districts = {district.name for district in site.district_defs()}
    assert len(districts) == 4
    assert all(
        asset.position is not None and asset.district in districts for asset in assets.values()
    )
    assert assets["water.plant"].type == "treatment_plant"
    assert assets["water.plant"].feeds == ("water.ps1", "water.ps2", "water.ps3")
    assert assets["heat.plant"].feeds == tuple(f"heat.ss{n}" for n in range(1, 7))
    assert assets["lights.d2.c1"].area == "lighting"
    # Every tag of the city belongs to an asset.
    for tag in site.tag_defs():
        assert any(tag.name.startswith(name + ".") for name in assets), tag.name


@pytest.mark.timeout(120)
def test_a_larger_city_places_its_extra_assets_with_their_types(tmp_path: Path) -> None:
    city = SimulatedCity(SimClock(), demo_city_options(scale=2, base_port=20000))
    path = tmp_path / "site.yaml"
    write_demo_site(path, render_demo_site(city))
    site = load_site(path)
    assets = {asset.name: asset for asset in site.asset_defs()}
    assert assets["water.ps6"].type == "booster_station"
    assert assets["heat.ss12"].type == "substation"
    assert assets["bldg.school2"].type == "building"
    assert len(site.district_defs()) == 8
    # Assets of a templated type get their template's alarms at every scale.
    assert any(alarm.asset == "water.ps6" for alarm in site.alarm_defs())
