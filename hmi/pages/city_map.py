"""The city map (ISA-101 level 1): districts, every asset where it stands, the abnormal ones
in colour with their reason in words; a click on an asset opens its faceplate.

The markers' states are recomputed on the server every ``REFRESH_MS`` and at once when an
alarm changes (the live stream bumps the shell's alarm version); the figure keeps the
operator's zoom, pan and hidden layers across these refreshes (``uirevision``; the legend's
layers are the asset types, grouped by domain). Beside the map, the assets needing attention are
listed as links (the first ``MAX_ATTENTION``, with how many more), so the map never depends on
seeing colour or on hitting a small marker.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, dcc, html

from controlcenter.model import User
from controlcenter.permissions import Permission
from hmi.context import HmiContext
from hmi.guard import viewing_user
from hmi.live import data_attributes
from hmi.map_svg import abnormal_assets, clicked_asset, map_figure, marker_states
from hmi.page import Page, PageRequest
from hmi.shell import ALARM_VERSION_ID, URL_ID

GRAPH_ID = "map-graph"
TICK_ID = "map-tick"
ATTENTION_ID = "map-attention"
REFRESH_MS = 5_000
"""Marker states are cheap, but a map is read at a glance: every five seconds is enough
(alarm changes refresh it at once)."""
GRAPH_CONFIG: Any = {"displayModeBar": False, "scrollZoom": True, "displaylogo": False}
MAX_ATTENTION = 100
"""Assets listed beside the map: a gateway's outage can make thousands of containers abnormal,
and a list that long helps nobody (the map counts them per district and reason)."""


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The map display."""
    if not any(asset.position is not None for asset in context.assets):
        return html.Section(
            className="panel map-display",
            children=[
                html.H2("City map"),
                html.P("The site file places no assets (assets: position).", id="map-empty"),
            ],
        )
    states = marker_states(context)
    return html.Section(
        className="panel map-display",
        children=[
            html.H2("City map"),
            dcc.Interval(id=TICK_ID, interval=REFRESH_MS),
            html.Div(
                className="map-layout",
                children=[
                    dcc.Graph(
                        id=GRAPH_ID,
                        figure=map_figure(context, states),
                        config=GRAPH_CONFIG,
                        className="map-graph",
                    ),
                    html.Aside(
                        id=ATTENTION_ID,
                        className="map-attention",
                        children=attention_list(context, states),
                    ),
                ],
            ),
        ],
    )


def attention_list(context: HmiContext, states: Any) -> Any:
    """The abnormal assets as links to their faceplates, each with its reason."""
    rows = abnormal_assets(context, states)
    if not rows:
        return [html.H3("Needing attention"), html.P("None", className="map-none")]
    more = len(rows) - MAX_ATTENTION
    rest = (
        [html.P(f"and {more} more (the first {MAX_ATTENTION} are listed)", id="map-attention-more")]
        if more > 0
        else []
    )
    return [
        html.H3(f"Needing attention ({len(rows)})"),
        html.Ul(
            [
                html.Li(
                    [
                        dcc.Link(asset.title, href=f"/asset/{asset.name}"),
                        html.Span(f" {state.text}", className="abnormal-text"),
                    ],
                    className="map-attention-item abnormal",
                    **data_attributes({"data-asset": asset.name}),
                )
                for asset, state in rows[:MAX_ATTENTION]
            ]
        ),
        *rest,
    ]


def register(app: dash.Dash, context: HmiContext) -> None:
    """The refresh of the markers and the click that opens a faceplate."""

    @app.callback(
        Output(GRAPH_ID, "figure"),
        Output(ATTENTION_ID, "children"),
        Input(TICK_ID, "n_intervals"),
        Input(ALARM_VERSION_ID, "data"),
        prevent_initial_call=True,
    )
    def refresh(_tick: int | None, _version: int | None) -> tuple[Any, Any]:
        viewing_user()
        if not context.assets:
            return dash.no_update, dash.no_update
        states = marker_states(context)
        return map_figure(context, states), attention_list(context, states)

    @app.callback(
        Output(URL_ID, "pathname", allow_duplicate=True),
        Input(GRAPH_ID, "clickData"),
        prevent_initial_call=True,
    )
    def open_asset(click: object) -> Any:
        viewing_user()
        name = clicked_asset(context, click)
        if name is None:
            return dash.no_update
        return f"/asset/{name}"


PAGE = Page(
    path="/map",
    title="City map",
    level=1,
    permission=Permission.VIEW,
    render=render,
    nav_label="Map",
    register=register,
)
