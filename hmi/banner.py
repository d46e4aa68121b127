"""The alarm banner on every display: counts by priority and the most important unacknowledged
alarms, one click to the alarm list.

It is redrawn on every alarm transition by every open browser, so it asks the alarm service
only for what it shows (the unacknowledged alarms, then the active ones) and draws a few
elements. ISA-101: colour only for priority, and always with the priority's word.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from dash import dcc, html

from controlcenter.model import User
from controlcenter.ports import AlarmDisplayState, AlarmPriority
from hmi.alarm_actions import UNACKNOWLEDGED_ANY, UNACKNOWLEDGED_STATES, priority_word
from hmi.context import HmiContext

BANNER_ID = "alarm-banner"
BANNER_ALARMS = 3
"""Unacknowledged alarms shown in the banner, the most urgent first."""
ANNUNCIATED_STATES = frozenset(
    {
        AlarmDisplayState.UNACKNOWLEDGED,
        AlarmDisplayState.ACKNOWLEDGED,
        AlarmDisplayState.LATCHED,
    }
)
"""Active alarms that an operator is shown (shelved, suppressed and out of service are not)."""


def alarm_list_href(**query: str) -> str:
    """The alarm list's URL with ``query`` preselecting its filters."""
    chosen = {key: value for key, value in query.items() if value}
    return "/alarms" + ("?" + urlencode(chosen) if chosen else "")


def render_banner(context: HmiContext, user: User) -> Any:
    """The banner's content for ``user``: per priority the unacknowledged and active counts,
    and the most urgent unacknowledged alarms (priority, then the newest), each a link."""
    if context.alarms is None:
        return html.Span("Alarms: not available", className="banner-empty")
    # The service sorts by priority, then the newest activation: the banner's order.
    unacknowledged = context.alarms.states(displays=UNACKNOWLEDGED_STATES)
    active = context.alarms.states(displays=ANNUNCIATED_STATES)
    counts = []
    for priority in AlarmPriority:
        word = priority_word(priority)
        unacked = sum(1 for d, _ in unacknowledged if d.priority == priority)
        number = sum(1 for d, _ in active if d.priority == priority)
        counts.append(
            dcc.Link(
                [
                    html.Span(word, className="banner-count-word"),
                    html.Span(str(unacked), className="banner-count-unacked"),
                    html.Span(f"/{number}", className="banner-count-active"),
                ],
                href=alarm_list_href(priority=word),
                title=f"{word}: {unacked} unacknowledged, {number} active",
                className=f"banner-count priority-{word}" + (" nonzero" if unacked else ""),
                id=f"banner-count-{word}",
            )
        )
    rows = [
        dcc.Link(
            [
                html.Span(priority_word(definition.priority), className="banner-priority"),
                html.Span(definition.name, className="banner-name"),
                html.Span(state.message or definition.message, className="banner-message"),
            ],
            href=alarm_list_href(alarm=definition.name),
            className=f"banner-alarm priority-{priority_word(definition.priority)}",
            title=context.local_text(state.activated_at) if state.activated_at else "",
        )
        for definition, state in unacknowledged[:BANNER_ALARMS]
    ]
    more = len(unacknowledged) - len(rows)
    if more > 0:
        rows.append(
            dcc.Link(
                f"+{more} more",
                href=alarm_list_href(state=UNACKNOWLEDGED_ANY),
                className="banner-more",
            )
        )
    return html.Div(
        className="banner-content",
        children=[
            dcc.Link("Alarms", href="/alarms", className="banner-link", id="banner-link"),
            dcc.Link(
                f"{len(unacknowledged)} unacknowledged",
                href=alarm_list_href(state=UNACKNOWLEDGED_ANY),
                id="banner-unacked",
                className="banner-unacked" + (" nonzero" if unacknowledged else ""),
            ),
            html.Div(counts, className="banner-counts"),
            html.Div(
                rows or [html.Span("No unacknowledged alarms", className="banner-quiet")],
                className="banner-alarms",
                id="banner-alarms",
            ),
        ],
    )
