"""Level 2: environment — air quality against the EU thresholds, river levels against the
flood levels, waste containers' fill with the next collection round.

Thresholds are the alarms' limits (the alarm list and this display never disagree): they are
drawn as ticks on each value's bar. The collection round is the center's planner's: every
container above 80 %, in the order a crew drives them.
"""

from __future__ import annotations

import re
from typing import Any

from dash import dcc, html

from controlcenter.model import User
from controlcenter.permissions import Permission
from hmi.context import HmiContext
from hmi.faceplates.parts import alarm_limits, alarm_pairs, asset_href, natural_key, reading
from hmi.page import Page, PageRequest

# The simulated city's (and the generated site's) names: env.air1.o3, env.river1.level,
# waste.c001.fill.
AIR = re.compile(r"^env\.([^.]+)\.(o3|no2|pm25|pm10|co2)$")
RIVER = re.compile(r"^env\.([^.]+)\.level$")
WASTE = re.compile(r"^waste\.([^.]+)\.fill$")
POLLUTANTS = {"o3": "Ozone", "no2": "NO₂", "pm25": "PM2.5", "pm10": "PM10", "co2": "CO₂"}
MAX_CONTAINERS_SHOWN = 60


def _matches(context: HmiContext, pattern: re.Pattern[str]) -> list[re.Match[str]]:
    found = [m for name in context.tags_by_name() if (m := pattern.match(name)) is not None]
    return sorted(found, key=lambda m: natural_key(m.group(0)))


def _collection(context: HmiContext) -> Any:
    planner = context.collection
    if planner is None:
        return html.P("No collection planner on this site.", className="missing")
    stops = planner.next_collection()
    if not stops:
        return html.P("No container above 80 %.", id="environment-collection-empty")
    rows = [
        html.Tr(
            [
                html.Td(str(stop.order)),
                html.Td(dcc.Link(stop.label or stop.asset, href=asset_href(stop.asset))),
                html.Td(f"{stop.fill_pct:.0f} %"),
                html.Td(f"{stop.leg_m / 1000:.2f} km"),
            ],
            **{"data-asset": stop.asset},  # type: ignore[arg-type]
        )
        for stop in stops
    ]
    total = sum(stop.leg_m for stop in stops) / 1000
    return html.Table(
        [
            html.Thead(
                html.Tr([html.Th("#"), html.Th("Container"), html.Th("Fill"), html.Th("Leg")])
            ),
            html.Tbody(rows),
            html.Tfoot(html.Tr([html.Td(f"{len(stops)} stops, {total:.1f} km", colSpan=4)])),
        ],
        className="collection-list",
        id="environment-collection",
    )


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """Air quality, rivers and waste."""
    limits = alarm_limits(alarm_pairs(context))
    air = [
        reading(
            context, m.group(0), f"{m.group(1)} {POLLUTANTS.get(m.group(2), m.group(2))}", limits
        )
        for m in _matches(context, AIR)
    ]
    rivers = [
        reading(context, m.group(0), f"Gauge {m.group(1)} level", limits)
        for m in _matches(context, RIVER)
    ]
    containers = _matches(context, WASTE)
    fills = [
        reading(context, m.group(0), f"Container {m.group(1)}", limits)
        for m in containers[:MAX_CONTAINERS_SHOWN]
    ]
    more = len(containers) - len(fills)
    return html.Section(
        [
            html.H2("Environment"),
            html.Div(
                [
                    html.H3("Air quality (EU thresholds as ticks)"),
                    *(air or [html.P("No air-quality stations.", className="missing")]),
                ],
                className="environment-group",
                id="environment-air",
            ),
            html.Div(
                [
                    html.H3("Rivers (flood levels as ticks)"),
                    *(rivers or [html.P("No river gauges.", className="missing")]),
                ],
                className="environment-group",
                id="environment-rivers",
            ),
            html.Div(
                [html.H3("Next waste collection round"), _collection(context)],
                className="environment-group",
                id="environment-waste-round",
            ),
            html.Div(
                [
                    html.H3("Waste containers' fill"),
                    *(fills or [html.P("No waste containers.", className="missing")]),
                    *([html.P(f"and {more} more (see the tag display)")] if more > 0 else []),
                ],
                className="environment-group",
                id="environment-waste",
            ),
        ],
        className="panel domain-display",
        id="environment-display",
    )


PAGE = Page(
    path="/environment",
    title="Environment",
    level=2,
    permission=Permission.VIEW,
    render=render,
    nav_label="Environment",
)
