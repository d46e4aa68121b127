"""The city map's markers: abnormal for a lost device, Bad data or an alarm (colour and words),
one symbol per asset type, district outlines with labels, and clicks checked on the server."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from controlcenter.automation import (
    AlarmDef,
    AlarmKind,
    AlarmPriority,
    AlarmState,
    AssetDef,
    DistrictDef,
    GeoPoint,
)
from controlcenter.model import (
    DataType,
    Quality,
    Sample,
    ScanDiagnostics,
    Substatus,
    TagDef,
)
from controlcenter.ports import AlarmDisplayState, AlarmOperations, HistoryQueryReader
from hmi.context import HmiContext
from hmi.map_svg import (
    ABNORMAL_COLOUR,
    ALARM,
    BAD_QUALITY,
    COMM_LOST,
    LAYER_ORDER,
    LAYERS,
    MARKER_GREY,
    OTHER_SYMBOL,
    SYMBOLS,
    TYPE_NAMES,
    MarkerState,
    clicked_asset,
    index_assets,
    map_figure,
    marker_states,
)
from hmi.pages.city_map import MAX_ATTENTION, attention_list
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock
from plc_sim.domain import ALL_DOMAINS
from plc_sim.geography import city_geography
from tests.hmi.conftest import ListJournal

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)

DISTRICTS = (
    DistrictDef(
        "d1",
        "Old Town",
        (GeoPoint(52.0, 5.0), GeoPoint(52.0, 5.02), GeoPoint(52.01, 5.02), GeoPoint(52.01, 5.0)),
    ),
    DistrictDef(
        "d2",
        "Harbour",
        (GeoPoint(52.01, 5.0), GeoPoint(52.01, 5.02), GeoPoint(52.02, 5.02), GeoPoint(52.02, 5.0)),
    ),
)
ASSETS = (
    AssetDef(
        "water.plant",
        "treatment_plant",
        "water",
        "Treatment plant",
        GeoPoint(52.005, 5.01),
        "d1",
        ("water.ps1",),
    ),
    AssetDef(
        "water.ps1",
        "booster_station",
        "water",
        "Booster station 1",
        GeoPoint(52.006, 5.011),
        "d1",
        ("water.tank2",),
    ),
    AssetDef("water.tank2", "reservoir", "water", "Tank 2", GeoPoint(52.015, 5.01), "d2"),
    AssetDef("heat.ss1", "substation", "heating", "Substation 1", GeoPoint(52.016, 5.015), "d2"),
    AssetDef("bldg.hall", "town_hall", "buildings", "", GeoPoint(52.017, 5.012), "d2"),
)
TAGS = (
    TagDef("water.plant.outflow", "water.plant_rtu", "hr:0", DataType.FLOAT, unit="m3/h"),
    TagDef("water.ps1.pump1.running", "water.ps1_rtu", "di:0", DataType.BOOL),
    TagDef("water.ps1.flow", "water.ps1_rtu", "hr:2", DataType.FLOAT),
    TagDef("water.tank2.level", "water.tank2_rtu", "hr:0", DataType.FLOAT, unit="m"),
    TagDef("heat.ss1.supply_temp", "heat.ss1_ctrl", "hr:0", DataType.FLOAT),
    TagDef("bldg.hall.z1.temp", "bldg.hall_bms", "analog-input,1", DataType.FLOAT),
)


def good(tag: str, value: Any) -> Sample:
    return Sample(tag, value, Quality.good(), NOW, NOW)


class DictLive:
    """A LiveView over a dict of samples."""

    def __init__(self, samples: Mapping[str, Sample]) -> None:
        self.samples = dict(samples)

    def tags(self) -> Sequence[TagDef]:
        return TAGS

    def latest(self, tag: str) -> Sample:
        return self.samples[tag]

    def snapshot(self) -> Mapping[str, Sample]:
        return dict(self.samples)


class Devices:
    def __init__(self, lost: Collection[str] = ()) -> None:
        self.lost = set(lost)

    def diagnostics(self) -> list[ScanDiagnostics]:
        names = sorted({tag.device for tag in TAGS})
        return [
            ScanDiagnostics(
                device=name,
                healthy=name not in self.lost,
                scans=10,
                scans_on_time=10,
                failed_scans=0,
                last_good_scan=NOW,
                last_error="",
                latency_mean_ms=1.0,
                latency_p95_ms=2.0,
                connected=name not in self.lost,
            )
            for name in names
        ]


class Alarms:
    def __init__(self, pairs: list[tuple[AlarmDef, AlarmState]]) -> None:
        self.pairs = pairs

    def states(self, **_: object) -> list[tuple[AlarmDef, AlarmState]]:
        return self.pairs


def context(
    samples: Mapping[str, Sample] | None = None,
    lost: Collection[str] = (),
    alarms: list[tuple[AlarmDef, AlarmState]] | None = None,
) -> HmiContext:
    live = DictLive(samples if samples is not None else {t.name: good(t.name, 1.0) for t in TAGS})
    return HmiContext(
        live=live,
        history=cast(HistoryQueryReader, None),
        journal=ListJournal([]),
        site_name="Testville",
        assets=ASSETS,
        districts=DISTRICTS,
        devices=Devices(lost),
        alarms=cast(AlarmOperations, Alarms(alarms or [])),
    )


def test_tags_and_devices_belong_to_the_longest_asset_prefix() -> None:
    index = index_assets(ASSETS, TAGS)
    assert index.tags["water.ps1"] == ("water.ps1.pump1.running", "water.ps1.flow")
    assert index.devices["water.ps1"] == frozenset({"water.ps1_rtu"})
    assert index.owner["bldg.hall.z1.temp"] == "bldg.hall"
    assert index.tags["water.plant"] == ("water.plant.outflow",)


def test_all_normal_markers_are_grey_and_unlabelled() -> None:
    ctx = context()
    states = marker_states(ctx)
    assert not any(state.abnormal for state in states.values())
    figure = map_figure(ctx, states)
    markers = [trace for trace in figure.data if trace.customdata is not None]
    assert all(colour == MARKER_GREY for trace in markers for colour in trace.marker.color)
    assert all(text == "" for trace in markers for text in trace.text)


def test_a_lost_device_marks_its_asset_comm_lost() -> None:
    ctx = context(lost={"water.ps1_rtu"})
    states = marker_states(ctx)
    assert states["water.ps1"].reasons == (COMM_LOST,)
    assert not states["water.plant"].abnormal
    figure = map_figure(ctx, states)
    (station,) = [
        t for t in figure.data if t.customdata is not None and "water.ps1" in t.customdata
    ]
    position = list(station.customdata).index("water.ps1")
    assert station.marker.color[position] == ABNORMAL_COLOUR
    assert station.text[position] == "Booster station 1: COMM LOST"


def test_bad_quality_of_one_tag_marks_its_asset() -> None:
    samples = {t.name: good(t.name, 1.0) for t in TAGS}
    bad = Quality.bad(Substatus.DEVICE_FAILURE, "sensor broken")
    samples["water.tank2.level"] = Sample("water.tank2.level", None, bad, NOW, NOW)
    samples["heat.ss1.supply_temp"] = Sample(
        "heat.ss1.supply_temp", 60.0, Quality.uncertain(Substatus.LAST_USABLE, "stale"), NOW, NOW
    )
    states = marker_states(context(samples))
    assert states["water.tank2"].reasons == (BAD_QUALITY,)
    # Uncertain is shown on the value itself, not as an abnormal asset on the map.
    assert not states["heat.ss1"].abnormal


@pytest.mark.parametrize(
    ("state", "abnormal"),
    [
        (AlarmState("a", active=True, acknowledged=False), True),
        (AlarmState("a", active=True, acknowledged=True), True),
        (AlarmState("a", active=False, acknowledged=False), True),
        (AlarmState("a", active=False, acknowledged=True), False),
        (AlarmState("a", active=True, acknowledged=False, shelved_by="olga"), False),
        (AlarmState("a", active=True, out_of_service_by="mats"), False),
    ],
)
def test_an_active_or_unacknowledged_alarm_marks_its_asset(
    state: AlarmState, abnormal: bool
) -> None:
    definition = AlarmDef(
        "water.tank2.level.low", AlarmKind.LOW, AlarmPriority.MEDIUM, "water.tank2.level"
    )
    states = marker_states(context(alarms=[(definition, state)]))
    assert states["water.tank2"].abnormal is abnormal
    if abnormal:
        assert states["water.tank2"].reasons == (ALARM,)
    assert state.display is not AlarmDisplayState.NORMAL or not abnormal


def test_a_communication_alarm_marks_every_asset_of_its_device() -> None:
    definition = AlarmDef("heat.ss1_ctrl.comm", AlarmKind.COMM_LOSS, device="heat.ss1_ctrl")
    states = marker_states(context(alarms=[(definition, AlarmState("c", active=True))]))
    assert states["heat.ss1"].reasons == (ALARM,)
    assert not states["water.ps1"].abnormal


def test_the_figure_draws_districts_symbols_per_type_and_pipes() -> None:
    ctx = context()
    figure = map_figure(ctx, marker_states(ctx))
    # Both districts in one filled trace, their polygons apart by None.
    (outlines,) = [t for t in figure.data if t.fill == "toself"]
    assert list(outlines.x).count(None) == 2
    assert [a.text for a in figure.layout.annotations] == ["Old Town", "Harbour"]
    markers = {t.name: t for t in figure.data if t.customdata is not None}
    assert markers["Booster station"].marker.symbol == SYMBOLS["booster_station"]
    assert markers["Reservoir"].marker.symbol == SYMBOLS["reservoir"]
    assert markers["Town hall"].marker.symbol == "x"  # a type the map has no symbol for
    (pipes,) = [t for t in figure.data if t.name == "Supplies"]
    assert list(pipes.x) == [5.01, 5.011, None, 5.011, 5.01, None]
    assert figure.layout.yaxis.scaleanchor == "x"
    assert figure.layout.yaxis.scaleratio == pytest.approx(1.6243, abs=1e-3)
    # No map style, geo or tiles: nothing for the browser to fetch.
    assert "mapbox" not in figure.layout.to_plotly_json()
    assert "geo" not in figure.layout.to_plotly_json()


@pytest.mark.parametrize(
    "click",
    [
        None,
        "water.ps1",
        {},
        {"points": []},
        {"points": ["water.ps1"]},
        {"points": [{"customdata": "water.nope"}]},
        {"points": [{"customdata": "../../login"}]},
        {"points": [{"customdata": ["water.ps1"]}]},
        {"points": [{"customdata": "x" * 10_000}]},
    ],
)
def test_a_forged_click_opens_nothing(click: object) -> None:
    assert clicked_asset(context(), click) is None


def test_a_click_on_a_marker_names_its_asset() -> None:
    click = {"points": [{"x": 5.011, "y": 52.006, "customdata": "water.ps1"}]}
    assert clicked_asset(context(), click) == "water.ps1"


# -- the further domains: layers, symbols, and thousands of containers ------------------------


def _city_assets() -> tuple[AssetDef, ...]:
    """The placed assets of the simulated city with every domain (as its site file has them)."""
    city = SimulatedCity(SimClock(), CityOptions(domains=frozenset(ALL_DOMAINS)))
    return tuple(
        AssetDef(
            placed.name,
            placed.type,
            placed.name.split(".", 1)[0],
            placed.label,
            GeoPoint(*placed.position),
            placed.district,
        )
        for placed in city_geography(city).assets
    )


def _context_of(
    assets: Sequence[AssetDef], districts: Sequence[DistrictDef] = DISTRICTS
) -> HmiContext:
    return HmiContext(
        live=DictLive({}),
        history=cast(HistoryQueryReader, None),
        journal=ListJournal([]),
        site_name="Testville",
        assets=tuple(assets),
        districts=tuple(districts),
    )


def test_every_asset_type_of_the_city_is_a_named_layer_with_its_own_symbol() -> None:
    assets = _city_assets()
    types = {asset.type for asset in assets}
    # The further domains are on the map (buses and bikes have no fixed place in the site).
    assert {"waste_container", "air_quality_station", "river_gauge", "charge_point"} <= types
    assert {"camera", "parking_garage", "parking_zone", "road_segment"} <= types
    assert types <= set(SYMBOLS) and types <= set(TYPE_NAMES) and types <= set(LAYERS)
    assert len(set(SYMBOLS.values())) == len(SYMBOLS), "two types share a symbol"
    assert OTHER_SYMBOL not in SYMBOLS.values()
    assert len(set(TYPE_NAMES.values())) == len(TYPE_NAMES), "two types share a name"
    assert set(LAYERS.values()) <= set(LAYER_ORDER)
    figure = map_figure(_context_of(assets), {})
    markers = {t.uid: t for t in figure.data if t.customdata is not None}
    assert set(markers) == {f"type-{kind}" for kind in types}
    for kind in types:
        trace = markers[f"type-{kind}"]
        assert trace.name == TYPE_NAMES[kind]
        assert trace.marker.symbol == SYMBOLS[kind]
        assert trace.legendgroup == LAYERS[kind]
        assert trace.legendgrouptitle.text == LAYERS[kind]
    assert markers["type-waste_container"].legendgroup == "Waste"
    assert markers["type-charge_point"].legendgroup == markers["type-shore_power"].legendgroup
    # Layers in domain order: the utilities first, then the further domains.
    groups = [t.legendgroup for t in figure.data if t.customdata is not None]
    assert groups == sorted(groups, key=LAYER_ORDER.index)


def test_the_legend_says_how_to_hide_layers_and_refreshes_keep_the_choice() -> None:
    ctx = _context_of(_city_assets())
    first = map_figure(ctx, {})
    legend = first.layout.legend
    assert "click" in legend.title.text and "hide" in legend.title.text
    assert legend.groupclick == "toggleitem"
    # A refresh draws the same traces under the same uids and ui revision: plotly keeps
    # what the operator hid (and the zoom) when the new figure arrives.
    lost = {asset.name: MarkerState(asset.name, (COMM_LOST,)) for asset in ctx.assets[:5]}
    second = map_figure(ctx, lost)
    assert [t.uid for t in first.data] == [t.uid for t in second.data]
    assert all(t.uid for t in first.data)
    assert len({t.uid for t in first.data}) == len(first.data)
    assert first.layout.uirevision == second.layout.uirevision == "city-map"
    assert all(t.visible is None for t in second.data), "a refresh must not reset visibility"


def _containers(count: int, district: str = "d1") -> list[AssetDef]:
    return [
        AssetDef(
            f"waste.c{n}",
            "waste_container",
            "waste",
            f"Container {n}",
            GeoPoint(52.001 + (n % 97) * 0.00008, 5.001 + (n // 97) * 0.00015),
            district,
        )
        for n in range(count)
    ]


def _points(figure: Any, uid: str) -> list[tuple[str, str, Any]]:
    (trace,) = [t for t in figure.data if t.uid == uid]
    return list(zip(trace.customdata, trace.text, trace.marker.color, strict=True))


def test_thousands_of_containers_in_a_district_are_counted_not_drawn_one_by_one() -> None:
    assets = _containers(3000) + _containers(30, "d2")
    ctx = _context_of(assets)
    figure = map_figure(ctx, {})
    points = _points(figure, "type-waste_container")
    # Old Town's 3000 are one counted marker; Harbour's 30 stay single (within the limit).
    assert len(points) == 1 + 30
    counted = [p for p in points if p[0] == ""]
    assert [(text, colour) for _, text, colour in counted] == [("3000", MARKER_GREY)]
    (trace,) = [t for t in figure.data if t.uid == "type-waste_container"]
    (group,) = [h for h in trace.hovertext if "3000 in Old Town" in h]
    assert "all normal" in group
    # A click on the counted marker opens nothing.
    assert clicked_asset(ctx, {"points": [{"customdata": ""}]}) is None


def test_abnormal_containers_stay_visible_one_by_one_or_counted_per_reason() -> None:
    assets = _containers(3000)
    ctx = _context_of(assets)
    few = {a.name: MarkerState(a.name, (ALARM,)) for a in assets[:3]}
    points = _points(map_figure(ctx, few), "type-waste_container")
    singles = [p for p in points if p[0]]
    assert [p[0] for p in singles] == ["waste.c0", "waste.c1", "waste.c2"]
    assert all(
        text.endswith(": ALARM") and colour == ABNORMAL_COLOUR for _, text, colour in singles
    )
    assert [text for name, text, _ in points if not name] == ["2997"]
    # A gateway outage: every container abnormal, some with an alarm as well.
    outage = {a.name: MarkerState(a.name, (COMM_LOST,)) for a in assets}
    outage.update({a.name: MarkerState(a.name, (COMM_LOST, ALARM)) for a in assets[:10]})
    points = _points(map_figure(ctx, outage), "type-waste_container")
    assert sorted(text for _, text, _ in points) == [
        "Waste container (10): COMM LOST, ALARM",
        "Waste container (2990): COMM LOST",
    ]
    assert all(colour == ABNORMAL_COLOUR and name == "" for name, _, colour in points)


def test_the_attention_list_beside_the_map_is_bounded() -> None:
    assets = _containers(500)
    ctx = _context_of(assets)
    states = {a.name: MarkerState(a.name, (COMM_LOST,)) for a in assets}
    heading, listing, more = attention_list(ctx, states)
    assert heading.children == "Needing attention (500)"
    assert len(listing.children) == MAX_ATTENTION
    assert more.children == f"and {500 - MAX_ATTENTION} more (the first {MAX_ATTENTION} are listed)"
    assert len(attention_list(ctx, {k: states[k] for k in list(states)[:3]})[1].children) == 3
