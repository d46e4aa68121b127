"""Level 2 domain displays drawn for the demo city (and one twenty times its size) through fake
ports: the assets, their links, the indicators against alarm limits, the abnormal states."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controlcenter.model import Quality, Substatus
from controlcenter.runtime.demo_site import render_demo_site, write_demo_site
from controlcenter.site.config import load_site
from hmi.context import HmiContext
from hmi.page import PageRequest
from hmi.pages import buildings, heating, lighting, water
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock
from tests.hmi.test_hmi_faceplates import (
    OPERATOR,
    DemoAlarms,
    DemoHistory,
    DemoLive,
    ListJournal,
    RecordingCommands,
    demo_ports,
    dumped,
    find_all,
    tagged,
    with_class,
)

DISPLAYS = (water, lighting, heating, buildings)
RENDER_DEADLINE_S = 1.0


def links(component: Any) -> list[str]:
    """The hrefs of every link in the tree, in document order."""
    return [n.href for n in find_all(component, lambda n: getattr(n, "href", None) is not None)]


def render(module: Any, context: HmiContext, query: dict[str, str] | None = None) -> Any:
    return module.render(context, OPERATOR, PageRequest(module.PAGE.path, "", query or {}))


def test_water_schematic_runs_plant_to_metering_areas_in_supply_order() -> None:
    ports = demo_ports()
    ports.live.set("water.ps2.pump1.fault", True)
    shown = render(water, ports.context)
    stages, _ = water.ordered_stages(ports.context)
    assert [title for title, _ in stages] == [
        "Treatment",
        "Booster stations",
        "Reservoirs",
        "Metering areas",
    ]
    names = [[a.name for a in members] for _, members in stages]
    assert names[0] == ["water.plant"]
    # Reservoirs in the order of the stations feeding them; tank 1 has no feeder: last.
    assert names[2] == ["water.tank2", "water.tank3", "water.tank1"]
    # Metering areas in the order of their reservoirs' feeds.
    assert names[3] == ["water.dma1", "water.dma3", "water.dma2", "water.dma4"]
    hrefs = links(shown)
    for asset in ("water.plant", "water.ps1", "water.tank2", "water.dma4"):
        assert f"/asset/{asset}" in hrefs
    # Levels and flows are analogue bars; the tank 1 level bar carries its alarm's high limit.
    bars = tagged(shown, "bar")
    assert {"water.tank1.level", "water.tank2.level", "water.ps1.flow", "water.dma1.inflow"} <= bars
    marks = with_class(shown, "bar-limit-high")
    assert any("4.8" in (m.title or "") for m in marks)
    # Pumps as words; a tripped drive is abnormal and says so.
    tripped = [
        n
        for n in with_class(shown, "live-state")
        if n.to_plotly_json()["props"]["data-tag"] == "water.ps2.pump1.fault"
    ]
    assert tripped[0].children == "TRIPPED" and "abnormal" in tripped[0].className
    assert "feeds " in dumped(shown)


def test_water_without_feeds_or_assets_is_drawn_from_tag_names() -> None:
    ports = demo_ports(assets=())
    shown = render(water, ports.context)
    text = dumped(shown)
    assert "Supply links are not in the site file" in text
    assert "/asset/water.ps3" in links(shown) and "/asset/water.tank1" in links(shown)


def test_lighting_groups_cabinets_by_district() -> None:
    ports = demo_ports()
    ports.live.set("lights.d2.c1.door_open", True)
    shown = render(lighting, ports.context)
    districts = with_class(shown, "district")
    assert [d.id for d in districts] == [f"lighting-district-d{i}" for i in (1, 2, 3, 4)]
    rows = with_class(districts[0], "cabinet-row")
    assert len(rows) == 3
    assert {"lights.d1.c1.mode", "lights.d1.c1.dim_setpoint", "lights.d1.c1.lamps_failed"} <= (
        tagged(rows[0])
    )
    assert "/asset/lights.d1.c1" in links(rows[0])
    # Lamps are summed per cabinet: no lamp's own point is on the display.
    assert not any(".l0" in tag for tag in tagged(shown))
    door = [
        n
        for n in with_class(shown, "live-state")
        if n.to_plotly_json()["props"]["data-tag"] == "lights.d2.c1.door_open"
    ]
    assert door[0].children == "OPEN" and "abnormal" in door[0].className


def test_heating_network_plant_then_substations() -> None:
    ports = demo_ports()
    shown = render(heating, ports.context)
    hrefs = links(shown)
    assert hrefs[0] == "/asset/heat.plant"
    assert [h for h in hrefs if h.startswith("/asset/heat.ss")] == [
        f"/asset/heat.ss{i}" for i in range(1, 7)
    ]
    assert {"heat.ss3.supply_temp", "heat.ss3.heat_power", "heat.ss3.valve"} <= tagged(shown, "bar")


def test_buildings_comfort_share_and_energy() -> None:
    ports = demo_ports()
    # School: zone 1 two kelvin off its setpoint, zone 2 unknown (Bad): 4 of 5 in comfort.
    for zone in range(1, 7):
        ports.live.set(f"bldg.school.z{zone}.setpoint", 21.0)
        ports.live.set(f"bldg.school.z{zone}.temp", 21.5)
    ports.live.set("bldg.school.z1.temp", 23.0)
    ports.live.set("bldg.school.z2.temp", None, Quality.bad(Substatus.COMM_FAILURE, "BMS"))
    shown = render(buildings, ports.context)
    assert buildings.comfort(ports.context, "bldg.school", [f"z{i}" for i in range(1, 7)]) == (4, 5)
    assert "4 of 5 zones (80 %)" in dumped(shown)
    assert {"bldg.school.elec.power", "bldg.office.heat.power"} <= tagged(shown, "bar")
    assert "/asset/bldg.library" in links(shown)


@pytest.mark.parametrize("module", DISPLAYS)
def test_displays_without_alarm_or_command_services_still_draw(module: Any) -> None:
    ports = demo_ports()
    bare = HmiContext(
        live=ports.live,
        history=ports.context.history,
        journal=ports.context.journal,
        site_name="x",
        assets=ports.context.assets,
    )
    assert "/asset/" in dumped(render(module, bare))


@pytest.fixture(scope="module")
def scale20_context(tmp_path_factory: pytest.TempPathFactory) -> HmiContext:
    """The site of a city twenty times the demo's, its values steady."""
    clock = SimClock(speed=1.0, start=datetime(2026, 11, 23, 10, tzinfo=UTC))
    # The city is not started: base_port only numbers the endpoints written in the site file.
    city = SimulatedCity(clock, CityOptions(seed=7, scale=20, base_port=20000))
    path: Path = tmp_path_factory.mktemp("scale20") / "site.yaml"
    write_demo_site(path, render_demo_site(city, scan_interval_s=1.0))
    site = load_site(path)
    tags = site.tag_defs()
    return HmiContext(
        live=DemoLive(tags),
        history=DemoHistory(),  # type: ignore[arg-type]
        journal=ListJournal([]),
        site_name="Big City",
        assets=site.asset_defs(),
        alarms=DemoAlarms(site.alarm_defs()),  # type: ignore[arg-type]
        commands=RecordingCommands({t.name: t for t in tags}),
    )


@pytest.mark.timeout(180)
@pytest.mark.parametrize("module", DISPLAYS)
def test_scale20_displays_show_one_district_and_render_fast(
    scale20_context: HmiContext, module: Any
) -> None:
    render(module, scale20_context)  # the first render builds the site's indexes
    started = time.perf_counter()
    shown = render(module, scale20_context)
    elapsed = time.perf_counter() - started
    assert elapsed < RENDER_DEADLINE_S
    text = dumped(shown)
    assert len(text) < 200_000  # one district, not the whole city
    assert len(tagged(shown)) < 500
    nav = with_class(shown, "district-nav")
    assert nav and len(links(nav)) > 20
    # Another district by its link; an unknown one falls back to the first, and says so.
    second = links(nav)[1]
    district = second.split("district=")[1]
    other = render(module, scale20_context, {"district": district})
    assert with_class(other, "current")[0].href == second
    forged = render(module, scale20_context, {"district": "<d999>" * 100})
    assert "No district" in dumped(forged) and len(dumped(forged)) < 200_000
