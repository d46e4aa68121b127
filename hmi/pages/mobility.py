"""Level 2: mobility — bus punctuality per line, parking free spaces per area, bike share.

Values come from the site's tags (``mobility.line.<line>.on_time_share`` from the GTFS-Realtime
feed, ``parking.<area>.free`` from the parking sensors, ``mobility.bikes.<station>.bikes`` and
``.docks`` from the GBFS feed), each kept current by the live stream.
"""

from __future__ import annotations

import re
from typing import Any

from dash import html

from controlcenter.model import User
from controlcenter.permissions import Permission
from hmi.context import HmiContext
from hmi.faceplates.parts import alarm_limits, alarm_pairs, natural_key, reading
from hmi.page import Page, PageRequest

LINE = re.compile(r"^mobility\.line\.([^.]+)\.on_time_share$")
PARKING = re.compile(r"^parking\.([^.]+)\.free$")
BIKES = re.compile(r"^mobility\.bikes\.([^.]+)\.bikes$")


def _matches(context: HmiContext, pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    found = [
        (match.group(1), name)
        for name in context.tags_by_name()
        if (match := pattern.match(name)) is not None
    ]
    return sorted(found, key=lambda pair: natural_key(pair[0]))


def _section(title: str, rows: list[Any], empty: str, section_id: str) -> Any:
    body = rows or [html.P(empty, className="missing")]
    return html.Div([html.H3(title), *body], className="mobility-group", id=section_id)


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """Bus lines, parking and bike share."""
    limits = alarm_limits(alarm_pairs(context))
    lines = [
        reading(context, tag, f"Line {line} on time", limits)
        for line, tag in _matches(context, LINE)
    ]
    parking = [
        reading(context, tag, f"{area} free spaces", limits)
        for area, tag in _matches(context, PARKING)
    ]
    bikes = []
    for station, tag in _matches(context, BIKES):
        bikes.append(
            html.Div(
                [
                    reading(context, tag, f"Station {station} bikes", limits),
                    reading(
                        context, f"mobility.bikes.{station}.docks", "free docks", limits, bar=False
                    ),
                ],
                className="bike-station",
            )
        )
    return html.Section(
        [
            html.H2("Mobility"),
            _section(
                "Bus punctuality per line", lines, "No bus lines on this site.", "mobility-lines"
            ),
            _section(
                "Parking guidance: free spaces", parking, "No parking sensors.", "mobility-parking"
            ),
            _section("Bike share", bikes, "No bike-share stations.", "mobility-bikes"),
        ],
        className="panel domain-display",
        id="mobility-display",
    )


PAGE = Page(
    path="/mobility",
    title="Mobility",
    level=2,
    permission=Permission.VIEW,
    render=render,
    nav_label="Mobility",
)
