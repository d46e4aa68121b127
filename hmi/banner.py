"""The alarm banner on every display: counts by priority and the most important unacknowledged
alarms, one click to the alarm list."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from controlcenter.model import User
from controlcenter.ports import AlarmDisplayState, AlarmPriority
from hmi.context import HmiContext

BANNER_ID = "alarm-banner"
BANNER_ALARMS = 3
"""Unacknowledged alarms shown in the banner, the most urgent first."""


def render_banner(context: HmiContext, user: User) -> Any:
    """The banner's content for ``user``."""
    if context.alarms is None:
        return html.Span("Alarms: not available", className="banner-empty")
    pairs = context.alarms.states()
    unacknowledged = [
        (definition, state)
        for definition, state in pairs
        if state.display
        in (AlarmDisplayState.UNACKNOWLEDGED, AlarmDisplayState.RETURNED_UNACKNOWLEDGED)
    ]
    active = [(d, s) for d, s in pairs if s.active or s.latched]
    counts = []
    for priority in AlarmPriority:
        number = sum(1 for d, _ in active if d.priority == priority)
        counts.append(
            html.Span(
                f"{priority.name.lower()} {number}",
                className=f"banner-count priority-{priority.name.lower()}"
                + (" nonzero" if number else ""),
                id=f"banner-count-{priority.name.lower()}",
            )
        )
    rows = [
        dcc.Link(
            f"{definition.priority.name.lower()} · {definition.name} · {definition.message}",
            href=f"/alarms?alarm={definition.name}",
            className=f"banner-alarm priority-{definition.priority.name.lower()}",
        )
        for definition, _ in unacknowledged[:BANNER_ALARMS]
    ]
    return html.Div(
        className="banner-content",
        children=[
            dcc.Link("Alarms", href="/alarms", className="banner-link", id="banner-link"),
            html.Span(f"{len(unacknowledged)} unacknowledged", id="banner-unacked"),
            *counts,
            html.Div(rows, className="banner-alarms"),
        ],
    )
