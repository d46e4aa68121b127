"""Level 2: the water network as a schematic, treatment plant to booster stations to reservoirs
to metering areas, each asset a box linking to its faceplate.

Flows and levels are analogue indicators against the limits of their alarms; pumps show their
state in words (a tripped drive in the abnormal style). The supply links come from the site's
``feeds``; a site without them is drawn by stage, in name order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dash import dcc, html

from controlcenter.automation import AssetDef
from controlcenter.model import User
from controlcenter.permissions import Permission
from hmi.context import HmiContext
from hmi.faceplates.parts import (
    alarm_limits,
    alarm_pairs,
    asset_box,
    asset_href,
    assets_of,
    children_of,
    district_page,
    level_gauge,
    natural_key,
    reading,
    words,
)
from hmi.page import Page, PageRequest

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Treatment", ("treatment_plant",)),
    ("Booster stations", ("booster_station",)),
    ("Reservoirs", ("reservoir", "storage_tank")),
    ("Metering areas", ("metering_area",)),
)
"""The columns of the schematic, upstream first, and the asset types in each."""

Limits = Mapping[str, Sequence[tuple[str, float]]]


def _water(asset: AssetDef) -> bool:
    return asset.area == "water" or asset.name.startswith("water.")


def _plant(context: HmiContext, asset: AssetDef, limits: Limits) -> list[Any]:
    name = asset.name
    return [
        reading(context, f"{name}.outflow", "Outflow", limits),
        reading(context, f"{name}.chlorine", "Chlorine", limits),
        reading(context, f"{name}.turbidity", "Turbidity", limits),
    ]


def _station(context: HmiContext, asset: AssetDef, limits: Limits) -> list[Any]:
    name = asset.name
    pumps = []
    for pump in children_of(context, name, r"pump\d+"):
        label = f"Pump {pump.removeprefix('pump')}"
        pumps.append(
            html.Div(
                [
                    words(context, f"{name}.{pump}.running", label, on="Running", off="Stopped"),
                    words(
                        context,
                        f"{name}.{pump}.fault",
                        "",
                        on="TRIPPED",
                        off="",
                        abnormal_when=True,
                    ),
                ],
                className="pump-line",
            )
        )
    return [
        *pumps,
        reading(context, f"{name}.flow", "Flow", limits),
        reading(context, f"{name}.header_pressure", "Pressure", limits),
    ]


def _reservoir(context: HmiContext, asset: AssetDef, limits: Limits) -> list[Any]:
    name = asset.name
    return [
        html.Div(
            [
                level_gauge(context, f"{name}.level", limits),
                html.Div(
                    [
                        reading(context, f"{name}.inflow", "In", limits),
                        reading(context, f"{name}.outflow", "Out", limits),
                    ],
                    className="reservoir-flows",
                ),
            ],
            className="reservoir",
        )
    ]


def _metering(context: HmiContext, asset: AssetDef, limits: Limits) -> list[Any]:
    name = asset.name
    return [
        reading(context, f"{name}.inflow", "Inflow", limits),
        reading(context, f"{name}.pressure", "Pressure", limits),
    ]


_CONTENT = {
    "treatment_plant": _plant,
    "booster_station": _station,
    "reservoir": _reservoir,
    "storage_tank": _reservoir,
    "metering_area": _metering,
}


def ordered_stages(
    context: HmiContext, query: Mapping[str, str] | None = None
) -> tuple[list[tuple[str, list[AssetDef]]], Any]:
    """The schematic's columns with their assets (each column in the order of the assets that
    feed it, so that supply links run across, not up and down; else in name order), and the
    district links of a large network (whose stations, reservoirs and metering areas are then
    drawn one district at a time; the treatment plants always)."""
    water = [asset for asset in assets_of(context, *_CONTENT) if _water(asset)]
    plants = [asset for asset in water if asset.type == "treatment_plant"]
    network = [asset for asset in water if asset.type != "treatment_plant"]
    shown, nav = district_page(context, "/water", network, query or {})
    water = plants + shown
    columns: list[tuple[str, list[AssetDef]]] = []
    previous: list[AssetDef] = []
    for title, types in STAGES:
        members = [asset for asset in water if asset.type in types]
        if previous and any(asset.feeds for asset in previous):
            rank: dict[str, int] = {}
            for position, feeder in enumerate(previous):
                for fed in feeder.feeds:
                    rank.setdefault(fed, position)
            members.sort(key=lambda a: (rank.get(a.name, len(previous)), natural_key(a.name)))
        columns.append((title, members))
        previous = members
    return columns, nav


def _feeds_line(asset: AssetDef, known: set[str]) -> Any:
    if not asset.feeds:
        return None
    links: list[Any] = [html.Span("feeds ", className="feeds-label")]
    for index, fed in enumerate(asset.feeds):
        if index:
            links.append(", ")
        links.append(
            dcc.Link(fed.rsplit(".", 1)[-1], href=asset_href(fed))
            if fed in known
            else html.Span(fed)
        )
    return html.Div(links, className="feeds")


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The water network schematic."""
    limits = alarm_limits(alarm_pairs(context))
    stages, nav = ordered_stages(context, request.query)
    known = {asset.name for _, members in stages for asset in members}
    has_feeds = any(asset.feeds for _, members in stages for asset in members)
    columns: list[Any] = []
    for index, (title, members) in enumerate(stages):
        if index:
            columns.append(html.Div("▶", className="flow-arrow", title="supplies"))
        boxes = [
            asset_box(
                asset, [*_CONTENT[asset.type](context, asset, limits), _feeds_line(asset, known)]
            )
            for asset in members
        ]
        columns.append(
            html.Div(
                [
                    html.H3(f"{title} ({len(members)})"),
                    *(boxes or [html.P("none", className="missing")]),
                ],
                className="stage",
                id=f"water-stage-{index}",
            )
        )
    note = (
        []
        if has_feeds
        else [
            html.P(
                "Supply links are not in the site file: assets are drawn by stage.",
                className="hint",
            )
        ]
    )
    return html.Section(
        [
            html.H2("Water network"),
            *note,
            nav,
            html.Div(columns, className="schematic", id="water-schematic"),
        ],
        className="panel domain-display",
        id="water-display",
    )


PAGE = Page(
    path="/water",
    title="Water network",
    level=2,
    permission=Permission.VIEW,
    render=render,
    nav_label="Water",
)
