"""Level 2: street lighting by district and cabinet: mode, dim setpoint, lamps lit and failed,
power, the cabinet door.

Lamps are summed per cabinet (their own points are on the cabinet's faceplate), and districts
fold away, so that the display stays readable and fast at a city twenty times the demo's size.
"""

from __future__ import annotations

from typing import Any

from dash import html

from controlcenter.automation import AssetDef
from controlcenter.model import User
from controlcenter.permissions import Permission
from hmi.context import HmiContext
from hmi.faceplates.parts import (
    asset_link,
    assets_of,
    district_name,
    district_page,
    natural_key,
    tag_of,
)
from hmi.formatting import format_value
from hmi.live import live_state, live_value
from hmi.page import Page, PageRequest

OPEN_DISTRICTS = 6
"""Up to this many districts are drawn open; more start folded."""
MODE_WORDS = {0: "auto", 1: "manual", 2: "off"}


def _total(context: HmiContext, names: list[str]) -> float:
    total = 0.0
    for name in names:
        sample = context.sample(name)
        if sample is not None and sample.numeric is not None:
            total += sample.numeric
    return total


def _cell(context: HmiContext, name: str) -> Any:
    tag = tag_of(context, name)
    return html.Td("—" if tag is None else live_value(context.live, tag, unit=False))


def _row(context: HmiContext, asset: AssetDef) -> Any:
    name = asset.name
    door = tag_of(context, f"{name}.door_open")
    return html.Tr(
        [
            html.Td(asset_link(asset)),
            _cell(context, f"{name}.mode"),
            _cell(context, f"{name}.dim_setpoint"),
            _cell(context, f"{name}.lamps_on"),
            _cell(context, f"{name}.lamps_failed"),
            _cell(context, f"{name}.power"),
            html.Td(
                "—"
                if door is None
                else live_state(context.live, door, on="OPEN", off="closed", abnormal_when=True)
            ),
        ],
        className="cabinet-row",
    )


def _district(context: HmiContext, district: str, cabinets: list[AssetDef], is_open: bool) -> Any:
    label = next((d.label for d in context.districts if d.name == district), "") or district
    on = _total(context, [f"{c.name}.lamps_on" for c in cabinets])
    failed = _total(context, [f"{c.name}.lamps_failed" for c in cabinets])
    power = _total(context, [f"{c.name}.power" for c in cabinets])
    summary = (
        f"District {label}: {len(cabinets)} cabinets, {format_value(int(on))} lamps on, "
        f"{format_value(int(failed))} failed, {power:.1f} kW"
    )
    headings = ("Cabinet", "Mode", "Dim %", "Lamps on", "Failed", "Power kW", "Door")
    return html.Details(
        [
            html.Summary(summary, className="district-summary"),
            html.Table(
                [
                    html.Thead(html.Tr([html.Th(h) for h in headings])),
                    html.Tbody([_row(context, cabinet) for cabinet in cabinets]),
                ],
                className="domain-table",
            ),
        ],
        open=is_open,
        className="district",
        id=f"lighting-district-{district or 'none'}",
    )


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """Districts with their cabinets."""
    every = assets_of(context, "lighting_cabinet")
    cabinets, nav = district_page(context, "/lighting", every, request.query)
    districts: dict[str, list[AssetDef]] = {}
    for cabinet in cabinets:
        districts.setdefault(district_name(cabinet), []).append(cabinet)
    is_open = len(districts) <= OPEN_DISTRICTS
    parts = [
        _district(context, name, members, is_open)
        for name, members in sorted(districts.items(), key=lambda item: natural_key(item[0]))
    ]
    modes = ", ".join(f"{number} {word}" for number, word in MODE_WORDS.items())
    return html.Section(
        [
            html.H2("Street lighting"),
            html.P(
                f"{len(every)} cabinets. Mode: {modes}. "
                "District totals as of opening the display; cabinet values are live.",
                className="hint",
            ),
            nav,
            *(parts or [html.P("No lighting cabinets on this site.", className="missing")]),
        ],
        className="panel domain-display",
        id="lighting-display",
    )


PAGE = Page(
    path="/lighting",
    title="Street lighting",
    level=2,
    permission=Permission.VIEW,
    render=render,
    nav_label="Lighting",
)
