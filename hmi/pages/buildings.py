"""Level 2: buildings: comfort (zones near their setpoint, zone temperatures against their
setpoints) and energy (electric and heat power, meters).

The share of zones in comfort is counted when the display is drawn (and says so); the values
beside it are live.
"""

from __future__ import annotations

from typing import Any

from dash import html

from controlcenter.automation import AssetDef
from controlcenter.model import User
from controlcenter.permissions import Permission
from hmi.context import HmiContext
from hmi.faceplates.parts import (
    alarm_limits,
    alarm_pairs,
    asset_box,
    assets_of,
    children_of,
    district_page,
    reading,
    tag_of,
)
from hmi.live import live_state, live_value
from hmi.page import Page, PageRequest

COMFORT_BAND_K = 1.0
"""A zone is in comfort within this many kelvin of its setpoint."""
OPEN_ZONES_UP_TO = 12
"""With more buildings than this, zone tables start folded."""


def comfort(context: HmiContext, building: str, zones: list[str]) -> tuple[int, int]:
    """(zones in comfort, zones with a known temperature and setpoint) of ``building`` now."""
    good = known = 0
    for zone in zones:
        temp = context.sample(f"{building}.{zone}.temp")
        setpoint = context.sample(f"{building}.{zone}.setpoint")
        if temp is None or setpoint is None:
            continue
        if temp.numeric is None or setpoint.numeric is None or not temp.quality.is_good:
            continue
        known += 1
        if abs(temp.numeric - setpoint.numeric) <= COMFORT_BAND_K:
            good += 1
    return good, known


def _zone_row(context: HmiContext, building: str, zone: str) -> Any:
    cells: list[Any] = [html.Td(zone)]
    for suffix in ("temp", "setpoint", "occupied"):
        tag = tag_of(context, f"{building}.{zone}.{suffix}")
        if tag is None:
            cells.append(html.Td("—"))
        elif suffix == "occupied":
            cells.append(html.Td(live_state(context.live, tag, on="occupied", off="empty")))
        else:
            cells.append(html.Td(live_value(context.live, tag)))
    return html.Tr(cells)


def _building(context: HmiContext, asset: AssetDef, is_open: bool, limits: Any) -> Any:
    name = asset.name
    zones = children_of(context, name, r"z\d+")
    good, known = comfort(context, name, zones)
    share = f"{100 * good / known:.0f} %" if known else "—"
    table = html.Details(
        [
            html.Summary(f"{len(zones)} zones"),
            html.Table(
                [
                    html.Thead(html.Tr([html.Th(h) for h in ("Zone", "Temp", "Setpoint", "")])),
                    html.Tbody([_zone_row(context, name, zone) for zone in zones]),
                ],
                className="domain-table",
            ),
        ],
        open=is_open,
    )
    return asset_box(
        asset,
        [
            html.Div(
                [
                    html.Span("Comfort", className="reading-label"),
                    html.Span(f"{good} of {known} zones ({share})", className="comfort-share"),
                ],
                className="reading",
                title=f"zones within {COMFORT_BAND_K:g} K of their setpoint when drawn",
            ),
            reading(context, f"{name}.elec.power", "Electric", limits),
            reading(context, f"{name}.heat.power", "Heat", limits),
            reading(context, f"{name}.elec.energy", "Electric meter", limits, bar=False),
            reading(context, f"{name}.heat.energy", "Heat meter", limits, bar=False),
            table,
        ],
        class_name="building",
    )


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """Every building's comfort and energy."""
    limits = alarm_limits(alarm_pairs(context))
    buildings, nav = district_page(
        context, "/buildings", assets_of(context, "building"), request.query
    )
    is_open = len(buildings) <= OPEN_ZONES_UP_TO
    boxes = [_building(context, b, is_open, limits) for b in buildings]
    return html.Section(
        [
            html.H2("Buildings"),
            html.P(
                f"Comfort: zones within {COMFORT_BAND_K:g} K of their setpoint, "
                "counted when the display was opened.",
                className="hint",
            ),
            nav,
            html.Div(
                boxes or [html.P("No buildings on this site.", className="missing")],
                className="building-grid",
            ),
        ],
        className="panel domain-display",
        id="buildings-display",
    )


PAGE = Page(
    path="/buildings",
    title="Buildings",
    level=2,
    permission=Permission.VIEW,
    render=render,
    nav_label="Buildings",
)
