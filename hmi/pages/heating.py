"""Level 2: the district heating network, plant to substations: supply and return
temperatures, flow, heat power and the control valve of each, against their limits.

Substations are grouped under the plant that feeds them (the site's ``feeds``); without supply
links every substation is drawn under the one network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    words,
)
from hmi.page import Page, PageRequest

Limits = Mapping[str, Sequence[tuple[str, float]]]


def _plant(context: HmiContext, asset: AssetDef, limits: Limits) -> Any:
    name = asset.name
    pumps = [
        words(
            context,
            f"{name}.{pump}.running",
            f"Pump {pump.removeprefix('pump')}",
            on="Running",
            off="Stopped",
        )
        for pump in children_of(context, name, r"pump\d+")
    ]
    return asset_box(
        asset,
        [
            reading(context, f"{name}.supply_temp", "Supply", limits),
            reading(context, f"{name}.supply_setpoint", "Setpoint", limits),
            reading(context, f"{name}.return_temp", "Return", limits),
            reading(context, f"{name}.flow", "Flow", limits),
            reading(context, f"{name}.heat_output", "Heat output", limits),
            reading(context, f"{name}.diff_pressure", "Diff. pressure", limits),
            reading(context, f"{name}.outdoor_temp", "Outdoor", limits),
            words(
                context,
                f"{name}.at_capacity",
                "Capacity",
                on="AT MAXIMUM",
                off="below maximum",
                abnormal_when=True,
            ),
            *pumps,
        ],
        class_name="heating-plant",
    )


def _substation(context: HmiContext, asset: AssetDef, limits: Limits) -> Any:
    name = asset.name
    return asset_box(
        asset,
        [
            reading(context, f"{name}.primary_supply_temp", "Primary supply", limits),
            reading(context, f"{name}.primary_return_temp", "Primary return", limits),
            reading(context, f"{name}.supply_temp", "Supply", limits),
            reading(context, f"{name}.return_temp", "Return", limits),
            reading(context, f"{name}.primary_flow", "Flow", limits),
            reading(context, f"{name}.heat_power", "Heat power", limits),
            reading(context, f"{name}.valve", "Valve", limits),
            words(context, f"{name}.valve_manual", "Valve", on="MANUAL", off="auto"),
        ],
    )


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The heating network."""
    limits = alarm_limits(alarm_pairs(context))
    plants = assets_of(context, "heating_plant")
    substations, nav = district_page(
        context, "/heating", assets_of(context, "substation"), request.query
    )
    networks: list[tuple[AssetDef | None, list[AssetDef]]] = []
    if any(plant.feeds for plant in plants):
        placed: set[str] = set()
        for plant in plants:
            fed = [s for s in substations if s.name in plant.feeds]
            placed.update(s.name for s in fed)
            networks.append((plant, fed))
        rest = [s for s in substations if s.name not in placed]
        if rest:
            networks.append((None, rest))
    else:
        networks = [(plant, []) for plant in plants[:-1]]
        networks.append((plants[-1] if plants else None, substations))
    parts: list[Any] = []
    for source, fed in networks:
        parts.append(
            html.Div(
                [
                    _plant(context, source, limits) if source is not None else html.Div(),
                    html.Div("▶", className="flow-arrow", title="supplies"),
                    html.Div(
                        [_substation(context, s, limits) for s in fed],
                        className="substations",
                    ),
                ],
                className="heating-network schematic",
            )
        )
    return html.Section(
        [
            html.H2("District heating"),
            nav,
            *(parts or [html.P("No heating network on this site.", className="missing")]),
        ],
        className="panel domain-display",
        id="heating-display",
    )


PAGE = Page(
    path="/heating",
    title="District heating",
    level=2,
    permission=Permission.VIEW,
    render=render,
    nav_label="Heating",
)
