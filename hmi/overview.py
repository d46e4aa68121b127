"""The overview display: header, one tile per featured tag, the trend and the table of all tags.

ISA-101 high-performance style: grey everywhere, values in dark text, colour only where something
is abnormal (here: Uncertain or Bad quality), always together with a text label so that the state
does not depend on colour vision alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from dash import dcc, html

from controlcenter.model import Sample, TagDef, User
from hmi.formatting import (
    NO_VALUE,
    element_id,
    format_time,
    format_value,
    quality_class,
    quality_text,
)

REFRESH_ID = "refresh"
REFRESH_INTERVAL_MS = 1000
TREND_ID = "trend"
TABLE_BODY_ID = "tag-table-body"
DATA_TIME_ID = "data-time"
NO_DATA = "no data"
TREND_HEIGHT_PX = 320


def value_id(tag: str) -> str:
    """DOM id of the element holding a featured tag's value text."""
    return f"value-{element_id(tag)}"


def quality_id(tag: str) -> str:
    """DOM id of the element holding a featured tag's quality label."""
    return f"quality-{element_id(tag)}"


def tile_id(tag: str) -> str:
    """DOM id of a featured tag's tile."""
    return f"tile-{element_id(tag)}"


def tile_class(sample: Sample | None) -> str:
    """CSS classes of a tile: its quality, or quality-bad when the tag has no sample at all."""
    return f"tile {quality_class(sample.quality) if sample is not None else 'quality-bad'}"


def tile_texts(sample: Sample | None) -> tuple[str, str]:
    """Value text and quality text of a tile."""
    if sample is None:
        return NO_VALUE, NO_DATA
    return format_value(sample.value), quality_text(sample.quality)


def data_time_text(snapshot: Mapping[str, Sample]) -> str:
    """Header text with the newest source time of all samples (the clock may be simulated)."""
    if not snapshot:
        return "Data time: no data"
    newest: datetime = max(s.source_time for s in snapshot.values())
    return f"Data time: {format_time(newest)}"


def overview_layout(site_name: str, featured: Sequence[TagDef], user: User | None) -> Any:
    """The whole page; ``user`` is None while the app validates its layout outside a session."""
    return html.Div(
        className="hmi",
        children=[
            _header(site_name, user),
            html.Main(
                className="overview",
                children=[
                    html.Section(
                        className="tiles",
                        children=[_tile(tag) for tag in featured],
                    ),
                    html.Section(
                        className="panel trend-panel",
                        children=[
                            html.H2("Trend"),
                            dcc.Graph(
                                id=TREND_ID,
                                config={"displaylogo": False},
                                style={"height": f"{TREND_HEIGHT_PX}px"},
                            ),
                        ],
                    ),
                    html.Section(
                        className="panel table-panel",
                        children=[html.H2("All tags"), _table()],
                    ),
                ],
            ),
            dcc.Interval(id=REFRESH_ID, interval=REFRESH_INTERVAL_MS),
        ],
    )


TABLE_MAX_ROWS = 100
"""Rows the overview's tag table shows at most: a city has thousands of tags, and sending them
all every second would keep a browser busy re-rendering (about 1 MB a second at 1,500 tags)."""

_ABNORMAL_FIRST = {"quality-bad": 0, "quality-uncertain": 1}
_GOOD_RANK = 2


def table_rows(
    tags: Sequence[TagDef], snapshot: Mapping[str, Sample], limit: int = TABLE_MAX_ROWS
) -> list[Any]:
    """At most ``limit`` rows: abnormal quality first (Bad, then Uncertain), then by name.

    The rows an operator must see come first; a last row says how many more tags there are.
    """
    entries = []
    for tag in tags:
        sample = snapshot.get(tag.name)
        status = quality_class(sample.quality) if sample is not None else "quality-bad"
        entries.append((_ABNORMAL_FIRST.get(status, _GOOD_RANK), tag.name, tag, sample, status))
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    rows = [_table_row(tag, sample, status) for _, _, tag, sample, status in entries[:limit]]
    hidden = entries[limit:]
    if hidden:
        abnormal = sum(1 for entry in hidden if entry[0] < _GOOD_RANK)
        which = f"{abnormal:,} of them abnormal" if abnormal else "all Good"
        rows.append(
            html.Tr(
                className="tag-row-more",
                children=html.Td(f"{len(hidden):,} more tags, {which}", colSpan=5),
            )
        )
    return rows


def _table_row(tag: TagDef, sample: Sample | None, status: str) -> Any:
    value, quality = tile_texts(sample)
    return html.Tr(
        className=f"tag-row {status}",
        children=[
            html.Td(tag.name, className="tag-name"),
            html.Td(value, className="tag-value"),
            html.Td(tag.unit, className="tag-unit"),
            html.Td(html.Span(quality, className="quality-label")),
            html.Td(
                format_time(sample.source_time) if sample is not None else NO_VALUE,
                className="tag-time",
            ),
        ],
    )


def _header(site_name: str, user: User | None) -> Any:
    session_items: list[Any] = []
    if user is not None:
        session_items = [
            html.Span(user.name, id="user-name", className="user-name"),
            html.Span(user.role.value, id="user-role", className="user-role"),
            html.Form(
                action="/logout",
                method="post",
                className="logout-form",
                children=[html.Button("Log out", id="logout", type="submit")],
            ),
        ]
    return html.Header(
        className="hmi-header",
        children=[
            html.H1(site_name, className="site-name"),
            html.Span("Data time: —", id=DATA_TIME_ID, className="data-time"),
            html.Div(className="session", children=session_items),
        ],
    )


def _tile(tag: TagDef) -> Any:
    return html.Div(
        id=tile_id(tag.name),
        className="tile",
        children=[
            html.Div(tag.description or tag.name, className="tile-title", title=tag.name),
            html.Div(
                className="tile-reading",
                children=[
                    html.Span(NO_VALUE, id=value_id(tag.name), className="tile-value"),
                    html.Span(tag.unit, className="tile-unit"),
                ],
            ),
            html.Div(NO_VALUE, id=quality_id(tag.name), className="quality-label"),
        ],
    )


def _table() -> Any:
    header = html.Thead(
        html.Tr(
            [
                html.Th("Tag"),
                html.Th("Value"),
                html.Th("Unit"),
                html.Th("Quality"),
                html.Th("Source time (UTC)"),
            ]
        )
    )
    return html.Table(
        id="tag-table", className="tag-table", children=[header, html.Tbody(id=TABLE_BODY_ID)]
    )
