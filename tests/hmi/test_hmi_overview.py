"""The city overview's figures, computed from a live snapshot by pure functions, and the
display drawn from them."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import plotly.io
from dash import dcc, html
from dash.development.base_component import Component

from controlcenter.automation import (
    AlarmDef,
    AlarmKind,
    AlarmPriority,
    AlarmState,
    AssetDef,
)
from controlcenter.model import Quality, Role, Sample, Substatus, User
from hmi.page import PageRequest
from hmi.pages.overview import (
    alarm_counts,
    building_figures,
    device_health,
    lighting_figures,
    lowest_level,
    pump_counts,
    render,
    suspected_leaks,
)
from tests.hmi.test_hmi_map import Alarms, Devices, _city_assets, context

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
BAD = Quality.bad(Substatus.COMM_FAILURE, "no answer")


def good(tag: str, value: Any) -> Sample:
    return Sample(tag, value, Quality.good(), NOW, NOW)


def bad(tag: str) -> Sample:
    return Sample(tag, None, BAD, NOW, NOW)


def snapshot(*samples: Sample) -> dict[str, Sample]:
    return {sample.tag: sample for sample in samples}


def test_pumps_running_and_failed_count_good_values_only() -> None:
    found = pump_counts(
        snapshot(
            good("water.ps1.pump1.running", True),
            good("water.ps1.pump2.running", False),
            good("water.ps2.pump1.running", True),
            bad("water.ps2.pump2.running"),
            good("water.tank1.pump_running", True),
            good("water.ps1.pump2.fault", True),
            bad("water.ps2.pump1.fault"),
            good("water.ps1.pump1.flow", 50.0),
            good("heat.plant.pump1.running", True),
        )
    )
    assert (found.running, found.failed, found.reporting, found.total) == (3, 1, 4, 5)


def test_the_lowest_reservoir_ignores_bad_levels_and_other_assets() -> None:
    assets = (
        AssetDef("water.tank1", "storage_tank", "water"),
        AssetDef("water.tank2", "reservoir", "water"),
        AssetDef("water.tank3", "reservoir", "water"),
        AssetDef("water.dma1", "metering_area", "water"),
    )
    values = snapshot(
        good("water.tank1.level", 3.1),
        good("water.tank2.level", 2.4),
        bad("water.tank3.level"),
        good("water.dma1.level", 0.1),
    )
    found = lowest_level(assets, values)
    assert found is not None and (found[0].name, found[1]) == ("water.tank2", 2.4)
    assert lowest_level(assets, {}) is None


def test_suspected_leaks_are_active_night_flow_or_leak_alarms() -> None:
    night = AlarmDef("water.dma1.night_flow", AlarmKind.NIGHT_FLOW, tag="water.dma1.inflow")
    burst = AlarmDef("water.dma2.inflow.burst", AlarmKind.RATE, tag="water.dma2.inflow")
    named = AlarmDef("water.main.leak", AlarmKind.DISCRETE, tag="water.main.leak")
    other = AlarmDef("water.tank2.level.low", AlarmKind.LOW, tag="water.tank2.level")
    pairs = [
        (night, AlarmState(night.name, active=True)),
        (burst, AlarmState(burst.name, active=False, acknowledged=False)),
        (named, AlarmState(named.name, active=True)),
        (other, AlarmState(other.name, active=True)),
    ]
    assert [d.name for d in suspected_leaks(pairs)] == ["water.dma1.night_flow", "water.main.leak"]


def test_lighting_sums_the_cabinets_that_report() -> None:
    assets = (
        AssetDef("lights.d1.c1", "lighting_cabinet", "lighting"),
        AssetDef("lights.d1.c2", "lighting_cabinet", "lighting"),
        AssetDef("lights.d2.c1", "lighting_cabinet", "lighting"),
    )
    values = snapshot(
        good("lights.d1.c1.lamps_on", 25),
        good("lights.d1.c1.lamps_failed", 2),
        good("lights.d1.c1.power", 1.5),
        good("lights.d1.c2.lamps_on", 28),
        good("lights.d1.c2.lamps_failed", 0),
        good("lights.d1.c2.power", 2.25),
        good("lights.d1.c2.l01.power", 0.09),
        bad("lights.d2.c1.lamps_on"),
        good("lights.d2.c1.lamps_failed", 7),
        good("lights.d2.c1.power", 3.0),
    )
    found = lighting_figures(assets, values)
    assert (found.lamps_on, found.lamps_failed, found.cabinets, found.reporting) == (53, 2, 3, 2)
    assert found.power_kw == 3.75


def test_zones_in_comfort_are_within_one_and_a_half_kelvin_of_their_setpoint() -> None:
    assets = (AssetDef("bldg.school", "building", "buildings"),)
    values = snapshot(
        good("bldg.school.z1.temp", 21.4),
        good("bldg.school.z1.setpoint", 21.0),
        good("bldg.school.z2.temp", 18.0),
        good("bldg.school.z2.setpoint", 21.0),
        good("bldg.school.z3.temp", 22.5),
        good("bldg.school.z3.setpoint", 21.0),
        bad("bldg.school.z4.temp"),
        good("bldg.school.z4.setpoint", 21.0),
        good("bldg.school.elec.power", 40.0),
        good("bldg.school.heat.power", 120.0),
        good("bldg.office.z1.temp", 10.0),
        good("bldg.office.z1.setpoint", 21.0),
    )
    found = building_figures(assets, values)
    assert (found.zones_in_comfort, found.zones) == (2, 3)
    assert found.comfort_share is not None and round(found.comfort_share, 3) == 0.667
    assert (found.electricity_kw, found.heat_kw) == (40.0, 120.0)


def test_alarm_counts_by_area_and_priority_count_active_alarms() -> None:
    def alarm(name: str, area: str, priority: AlarmPriority) -> AlarmDef:
        return AlarmDef(name, AlarmKind.HIGH, priority, area=area)

    pairs = [
        (alarm("a", "water", AlarmPriority.HIGH), AlarmState("a", active=True)),
        (alarm("b", "water", AlarmPriority.HIGH), AlarmState("b", latched=True)),
        (alarm("c", "water", AlarmPriority.LOW), AlarmState("c", active=False)),
        (alarm("d", "heating", AlarmPriority.CRITICAL), AlarmState("d", active=True)),
    ]
    counts = alarm_counts(pairs)
    assert list(counts) == ["heating", "water"]
    assert counts["water"][AlarmPriority.HIGH] == 2
    assert counts["water"][AlarmPriority.LOW] == 0
    assert counts["heating"][AlarmPriority.CRITICAL] == 1


def test_device_health_counts_connected_devices_per_domain() -> None:
    health = device_health(Devices(lost={"water.ps1_rtu"}).diagnostics())
    assert health["water"] == (2, 3)
    assert health["heat"] == (1, 1)


def _text(component: Any) -> str:
    # plotly escapes "/" (as \u002f) so that the JSON is safe inside a <script>.
    return str(plotly.io.json.to_json_plotly(component.to_plotly_json())).replace("\\u002f", "/")


def test_the_display_shows_figures_alarms_health_and_the_small_map() -> None:
    tank = AlarmDef("water.tank2.level.low", AlarmKind.LOW, AlarmPriority.CRITICAL, area="water")
    samples = {
        "water.plant.outflow": good("water.plant.outflow", 410.5),
        "water.ps1.pump1.running": good("water.ps1.pump1.running", True),
        "water.ps1.flow": good("water.ps1.flow", 200.0),
        "water.tank2.level": good("water.tank2.level", 0.42),
        "heat.ss1.supply_temp": good("heat.ss1.supply_temp", 61.0),
        "bldg.hall.z1.temp": good("bldg.hall.z1.temp", 20.0),
    }
    ctx = context(
        samples, lost={"heat.ss1_ctrl"}, alarms=[(tank, AlarmState(tank.name, active=True))]
    )
    viewer = User("vera", Role.VIEWER)
    text = _text(render(ctx, viewer, PageRequest("/")))
    assert "410.50" in text  # the plant's outflow, a live element
    assert '"data-tag":"water.plant.outflow"' in text
    assert "0.42 m Tank 2" in text and "/asset/water.tank2" in text
    assert "1 of 1" in text  # pumps running
    assert "/alarms?area=water&priority=critical" in text
    assert "Heating: 0 of 1 devices connected" in text and "1 LOST" in text
    assert "/water" in text and "/heating" in text and "/buildings" in text
    assert "overview-map" in text and "Old Town" in small_map(render(ctx, viewer, PageRequest("/")))
    # A viewer may not open diagnostics: the health lines are not links for them.
    assert "/diagnostics?domain=" not in text
    maintenance = User("mats", Role.MAINTENANCE)
    assert "/diagnostics?domain=heat" in _text(render(ctx, maintenance, PageRequest("/")))


def small_map(tree: Any) -> str:
    """The SVG document of the overview's small map (a picture, its ``src`` a data URI)."""
    (image,) = [c for c in walk(tree) if getattr(c, "id", None) == "overview-map"]
    assert isinstance(image, html.Img)
    source: str = getattr(image, "src")  # noqa: B009 - Dash's stubs do not name the prop
    return base64.b64decode(source.split(",", 1)[1]).decode()


def walk(tree: Any) -> list[Component]:
    """Every Dash component of a rendered tree."""
    if isinstance(tree, list | tuple):
        return [found for child in tree for found in walk(child)]
    if isinstance(tree, Component):
        return [tree, *walk(getattr(tree, "children", None))]
    return []


def test_the_display_does_not_grow_with_the_city_and_draws_no_plot() -> None:
    # What costs a browser time (elements to lay out, a plotting library's work) stays the
    # same however many assets the city has: the small map is one picture.
    small = context()
    grown = replace(small, assets=(*small.assets, *_city_assets()))
    viewer = User("vera", Role.VIEWER)
    shown = [walk(render(ctx, viewer, PageRequest("/"))) for ctx in (small, grown)]
    assert len(shown[0]) < 150 and len(shown[1]) < 150
    assert not [c for tree in shown for c in tree if isinstance(c, dcc.Graph)]
    assert len(small_map(render(grown, viewer, PageRequest("/")))) > len(
        small_map(render(small, viewer, PageRequest("/")))
    )


def test_the_display_without_alarms_or_devices_says_so() -> None:
    ctx = context()
    ctx = type(ctx)(
        live=ctx.live,
        history=ctx.history,
        journal=ctx.journal,
        site_name="Testville",
        assets=ctx.assets,
    )
    text = _text(render(ctx, User("vera", Role.VIEWER), PageRequest("/")))
    assert "Alarms: not available" in text and "Device health: not available" in text
    assert ctx.alarms is None
    assert Alarms([]).states() == []
