"""The trend: stored samples of a few tags as a plotly figure in the HMI's grey style."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import plotly.graph_objects as go

from controlcenter.model import Sample, Severity

MAX_POINTS_PER_TRACE = 2000
"""More points than a trend is wide in pixels only cost bandwidth; beyond this, decimate."""

# ISA-101 high-performance style: dark grey lines on a light grey ground, no decoration.
_TRACE_COLOURS = ("#303030", "#707070", "#505050", "#909090")
_GROUND = "#e4e4e4"
_GRID = "#cfcfcf"
_TEXT = "#2b2b2b"

Point = tuple[datetime, float | None]
"""One trend point: time and value, or None for a gap (no trustworthy value)."""


@dataclass(frozen=True, slots=True)
class TrendSeries:
    """The samples of one tag to draw, with its unit."""

    tag: str
    unit: str
    samples: Sequence[Sample]


def trend_points(samples: Sequence[Sample]) -> list[Point]:
    """Turn samples into points; Bad or non-numeric samples become gaps rather than values.

    Points are placed at the server time, the order history is kept in (a device's source time
    stands still while its value does not change, even across an outage).
    """
    return [
        (s.server_time, None if s.quality.severity is Severity.BAD else s.numeric) for s in samples
    ]


def decimate_min_max(points: Sequence[Point], max_points: int) -> list[Point]:
    """Keep at most about ``max_points`` points, keeping each bucket's minimum, maximum and gaps.

    Min/max decimation keeps every peak visible, which plain striding would lose; a bucket
    holding a gap keeps one gap point so that an outage stays visible at any zoom level.
    """
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    if len(points) <= max_points:
        return list(points)
    buckets = max_points // 2
    size = len(points) / buckets
    kept: list[Point] = []
    for index in range(buckets):
        bucket = points[round(index * size) : round((index + 1) * size)]
        valued = [p for p in bucket if p[1] is not None]
        chosen: set[Point] = set()
        if valued:
            chosen.add(min(valued, key=lambda p: (p[1], p[0])))
            chosen.add(max(valued, key=lambda p: (p[1], p[0])))
        gap = next((p for p in bucket if p[1] is None), None)
        if gap is not None:
            chosen.add(gap)
        kept.extend(sorted(chosen, key=lambda p: p[0]))
    return kept


def trend_figure(
    series: Sequence[TrendSeries], start: datetime, end: datetime, *, message: str = ""
) -> go.Figure:
    """Build the trend figure from ``start`` to ``end``; ``message`` is shown over the plot."""
    figure = go.Figure()
    for index, one in enumerate(series):
        points = decimate_min_max(trend_points(one.samples), MAX_POINTS_PER_TRACE)
        figure.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                mode="lines",
                name=f"{one.tag} [{one.unit}]" if one.unit else one.tag,
                line={"color": _TRACE_COLOURS[index % len(_TRACE_COLOURS)], "width": 1.5},
                connectgaps=False,
            )
        )
    figure.update_layout(
        # A constant revision keeps the operator's zoom and hidden traces across refreshes.
        uirevision="trend",
        margin={"l": 56, "r": 16, "t": 16, "b": 40},
        paper_bgcolor=_GROUND,
        plot_bgcolor=_GROUND,
        font={"family": "DejaVu Sans, Arial, sans-serif", "color": _TEXT, "size": 12},
        showlegend=True,
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        xaxis={"range": [start, end], "gridcolor": _GRID, "linecolor": "#9a9a9a"},
        yaxis={
            "gridcolor": _GRID,
            "linecolor": "#9a9a9a",
            "title": {"text": series[0].unit if series else ""},
        },
    )
    if message:
        figure.add_annotation(
            text=message, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False
        )
    return figure
