"""The mobility and environment displays: every line, car park, station, air-quality value,
river gauge and container drawn with live values; the next collection round in crew order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from alarms.collection import CollectionPlanner
from controlcenter.automation import AssetDef, GeoPoint
from controlcenter.model import DataType, Quality, Role, Sample, TagDef, User
from controlcenter.ports import HistoryQueryReader
from hmi.context import HmiContext
from hmi.page import PageRequest
from hmi.pages import all_pages, environment, mobility

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
VIEWER = User("vera", Role.VIEWER)
VALUES = {
    "mobility.line.l1.on_time_share": (0.92, 0.0, 1.0),
    "mobility.line.l10.on_time_share": (0.4, 0.0, 1.0),
    "mobility.line.l2.on_time_share": (0.8, 0.0, 1.0),
    "parking.centre.free": (120.0, 0.0, 400.0),
    "mobility.bikes.s1.bikes": (7.0, 0.0, 20.0),
    "mobility.bikes.s1.docks": (13.0, 0.0, 20.0),
    "env.air1.o3": (190.0, 0.0, 400.0),
    "env.air1.no2": (40.0, 0.0, 600.0),
    "env.river1.level": (3.1, 0.0, 8.0),
    "waste.c1.fill": (85.0, 0.0, 100.0),
    "waste.c2.fill": (40.0, 0.0, 100.0),
    "waste.c3.fill": (97.0, 0.0, 100.0),
}


class Live:
    """Fixed Good values."""

    def __init__(self) -> None:
        self.defs = [
            TagDef(n, "dev", "x", DataType.FLOAT, low=lo, high=hi)
            for n, (_, lo, hi) in VALUES.items()
        ]

    def tags(self) -> list[TagDef]:
        return self.defs

    def latest(self, tag: str) -> Sample:
        return Sample(tag, VALUES[tag][0], Quality.good(), NOW, NOW)

    def snapshot(self) -> dict[str, Sample]:
        return {n: self.latest(n) for n in VALUES}


def _context() -> HmiContext:
    live = Live()
    assets = (
        AssetDef("waste.c1", "waste_container", "waste", "Far", GeoPoint(52.0, 4.05)),
        AssetDef("waste.c2", "waste_container", "waste", "Half", GeoPoint(52.0, 4.01)),
        AssetDef("waste.c3", "waste_container", "waste", "Near", GeoPoint(52.0, 4.01)),
    )
    planner = CollectionPlanner(assets, live, GeoPoint(52.0, 4.0))
    return HmiContext(
        live=live,
        history=cast(HistoryQueryReader, None),
        journal=cast(Any, None),
        site_name="Testville",
        assets=assets,
        collection=planner,
    )


def _walk(node: Any) -> list[Any]:
    found = [node]
    children = getattr(node, "children", None)
    if isinstance(children, list | tuple):
        for child in children:
            found += _walk(child)
    elif children is not None and not isinstance(children, str | int | float):
        found += _walk(children)
    return found


def _live_tags(node: Any) -> set[str]:
    return {
        props["data-tag"]
        for n in _walk(node)
        if hasattr(n, "to_plotly_json")
        and "data-tag" in (props := n.to_plotly_json().get("props", {}))
    }


def test_the_displays_are_in_the_hierarchy() -> None:
    """Both are level-2 displays with their own URL, visible to viewers."""
    pages = {page.path: page for page in all_pages()}
    assert pages["/mobility"].level == 2 and pages["/environment"].level == 2


def test_mobility_shows_lines_parking_and_bikes_live() -> None:
    """Every line in natural order, the car park, the station's bikes and docks, all live."""
    shown = mobility.render(_context(), VIEWER, PageRequest("/mobility", "", {}))
    tags = _live_tags(shown)
    assert {
        "mobility.line.l1.on_time_share",
        "mobility.line.l10.on_time_share",
        "parking.centre.free",
        "mobility.bikes.s1.bikes",
        "mobility.bikes.s1.docks",
    } <= tags
    labels = [n.children for n in _walk(shown) if getattr(n, "className", "") == "reading-label"]
    assert labels[:3] == ["Line l1 on time", "Line l2 on time", "Line l10 on time"]


def test_environment_shows_values_and_the_collection_round() -> None:
    """Air, river and fill values live; the round lists the two full containers, near first."""
    shown = environment.render(_context(), VIEWER, PageRequest("/environment", "", {}))
    assert {"env.air1.o3", "env.air1.no2", "env.river1.level", "waste.c2.fill"} <= _live_tags(shown)
    rows = [
        n.to_plotly_json()["props"]["data-asset"]
        for n in _walk(shown)
        if hasattr(n, "to_plotly_json") and "data-asset" in n.to_plotly_json()["props"]
    ]
    assert rows == ["waste.c3", "waste.c1"]


def test_an_empty_site_says_what_is_missing() -> None:
    """No mobility or environment tags: each section says so instead of failing."""
    context = HmiContext(
        live=cast(Any, Live()).__class__.__new__(Live),
        history=cast(HistoryQueryReader, None),
        journal=cast(Any, None),
        site_name="Empty",
    )
    context.live.defs = []  # type: ignore[attr-defined]
    text = str(environment.render(context, VIEWER, PageRequest("/environment", "", {})))
    assert "No air-quality stations." in text and "No collection planner" in text
    text = str(mobility.render(context, VIEWER, PageRequest("/mobility", "", {})))
    assert "No bus lines on this site." in text
