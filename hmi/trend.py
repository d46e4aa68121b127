"""Trends: which pens over which range, the points with their gaps, the figure and its export.

Everything here is pure: the trends display (``hmi.pages.trends``) reads the historian and the
journals and hands what they return to these functions, so the rules of a trend (at most eight
pens on at most three axes, where a line must break, which ranges a URL may ask for, what an
export holds) are tested without a browser.

Every time an operator reads is in the site's time zone. plotly draws dates as they are given
(it ignores a UTC offset), so points are converted to the site's wall-clock time before they are
plotted, and the x range a browser sends back (zoom, pan) is read as site-local time.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import plotly.graph_objects as go

from controlcenter.automation import AlarmTransition
from controlcenter.model import CommandResult, DataType, Sample, Severity, TagDef

MAX_PENS = 8
"""Pens one trend shows: more lines than this cannot be told apart."""
MAX_AXES = 3
"""Y axes (one per unit): a fourth unit would need a fourth scale nobody can read."""
MAX_POINTS_PER_PEN = 1000
"""About the width of a trend in pixels: more points cost bandwidth and show nothing more."""
MAX_POINTS_PER_TRACE = MAX_POINTS_PER_PEN
"""The former name of ``MAX_POINTS_PER_PEN``."""
GAP_STEPS = 5
"""A step this many times the usual distance between points breaks the line (a few scans)."""
GAP_SHARE = 0.003
"""...and at least this share of the range: a break narrower than a pixel or two is noise."""
MIN_SPAN = timedelta(seconds=10)
MAX_SPAN = timedelta(days=3660)
DEFAULT_PERIOD = "1h"
PERIODS: Mapping[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "8h": timedelta(hours=8),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
"""The period presets, by the name a URL carries (``?period=8h``)."""
PERIOD_LABELS: Mapping[str, str] = {
    "15m": "15 min",
    "1h": "1 h",
    "8h": "8 h",
    "24h": "24 h",
    "7d": "7 d",
    "30d": "30 d",
}
MAX_MARKERS = 300
"""Alarm or command markers drawn at most (the newest are kept)."""
MAX_TEXT = 120
"""Longest text of a query value that is read at all."""
TRENDABLE = frozenset({DataType.FLOAT, DataType.INT, DataType.BOOL})

# ISA-101 high-performance style: dark grey lines on a light grey ground, no decoration. Pens are
# told apart by shade and dash, never by colour alone.
_PEN_STYLES = (
    ("#202020", "solid"),
    ("#6a6a6a", "solid"),
    ("#202020", "dash"),
    ("#6a6a6a", "dash"),
    ("#202020", "dot"),
    ("#6a6a6a", "dot"),
    ("#404040", "dashdot"),
    ("#8a8a8a", "dashdot"),
)
_GROUND = "#e4e4e4"
_GRID = "#cfcfcf"
_TEXT = "#2b2b2b"
_ALARM_COLOUR = "#a1008f"
"""Alarms are abnormal: the one colour on the trend (with a shape and hover text as well)."""
_COMMAND_COLOUR = "#303030"
MARKER_AXIS = "y4"

Point = tuple[datetime, float | None]
"""One trend point: time and value, or None for a gap (no trustworthy value)."""


# --- which pens, which range ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrendView:
    """What a trend shows: its pens, and either a preset period that follows the newest data
    (``follow``) or a fixed range (zoomed, panned or typed in); times in UTC."""

    tags: tuple[str, ...] = ()
    period: str = DEFAULT_PERIOD
    """The last preset chosen: the period followed, or the one a reset of the zoom returns to."""
    start: datetime | None = None
    end: datetime | None = None
    messages: tuple[str, ...] = field(default=(), compare=False)
    """Why part of what was asked for was refused (shown to the operator)."""

    @property
    def follow(self) -> bool:
        """Whether the range follows the newest data (no fixed range)."""
        return self.start is None or self.end is None

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """The range shown when the newest data is from ``now``."""
        if self.start is not None and self.end is not None:
            return self.start, self.end
        return now - PERIODS[self.period], now

    def to_data(self) -> dict[str, Any]:
        """The view as JSON for a ``dcc.Store`` (read back with ``view_from_data``)."""
        return {
            "tags": list(self.tags),
            "period": self.period,
            "start": _iso(self.start) if self.start is not None else None,
            "end": _iso(self.end) if self.end is not None else None,
        }

    def query(self) -> dict[str, str]:
        """The view as URL query parameters (read back with ``view_from_query``)."""
        query = {"tags": ",".join(self.tags), "period": self.period}
        if self.start is not None and self.end is not None:
            query["start"] = _iso(self.start)
            query["end"] = _iso(self.end)
        return query


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def trendable(tag: TagDef) -> bool:
    """Whether a tag can be drawn as a line (numbers and booleans; not texts or dates)."""
    return tag.data_type in TRENDABLE


def unit_label(tag: TagDef) -> str:
    """The axis a tag is drawn on: its unit, or ``state`` for a boolean, ``value`` otherwise."""
    if tag.unit:
        return tag.unit
    return "state" if tag.data_type is DataType.BOOL else "value"


def choose_pens(
    requested: Sequence[str], tags: Mapping[str, TagDef]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The pens to draw of ``requested`` (in order, each once) and why any were refused:
    unknown tags, tags that are no numbers, a ninth pen, a fourth unit."""
    pens: list[str] = []
    units: list[str] = []
    messages: list[str] = []
    for raw in requested:
        name = raw.strip()[:MAX_TEXT]
        if not name or name in pens:
            continue
        tag = tags.get(name)
        if tag is None:
            messages.append(f"No tag named {name!r}.")
            continue
        if not trendable(tag):
            messages.append(f"{name} holds {tag.data_type.value} values: a trend needs numbers.")
            continue
        if len(pens) >= MAX_PENS:
            messages.append(f"A trend shows at most {MAX_PENS} pens: {name} was not added.")
            continue
        unit = unit_label(tag)
        if unit not in units and len(units) >= MAX_AXES:
            messages.append(
                f"A trend has at most {MAX_AXES} axes ({', '.join(units)}): "
                f"{name} in {unit} was not added."
            )
            continue
        if unit not in units:
            units.append(unit)
        pens.append(name)
    return tuple(pens), tuple(messages)


def split_tags(text: str) -> list[str]:
    """Tag names of a comma-separated list (``a,b``), at most a few more than a trend shows."""
    return [part for part in text[: MAX_TEXT * (MAX_PENS + 4)].split(",") if part.strip()][
        : MAX_PENS * 4
    ]


def parse_time(text: str, timezone: ZoneInfo) -> datetime | None:
    """A time of a URL, a date-time input or a plotly axis, as UTC; None if it is none.

    Text without an offset is site-local time (what the inputs and the axis show). Only ISO
    8601 is read (``2026-11-23T10:00``, ``2026-11-23 10:00:00.5``, ``…Z``, ``…+01:00``).
    """
    text = text.strip()[:40]
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def checked_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime] | str:
    """``(start, end)`` if it is a range a trend can show, else why not."""
    if start is None or end is None:
        return "The range needs a start and an end."
    if end <= start:
        return "The range ends before it starts."
    if end - start < MIN_SPAN:
        return f"The shortest range is {MIN_SPAN.total_seconds():g} s."
    if end - start > MAX_SPAN:
        return f"The longest range is {MAX_SPAN.days} days."
    return start, end


def view_from_query(
    query: Mapping[str, str], tags: Mapping[str, TagDef], timezone: ZoneInfo
) -> TrendView:
    """The view a URL asks for (``?tags=a,b&period=8h`` or ``&start=…&end=…``); whatever
    cannot be shown is left out and said in ``messages``."""
    messages: list[str] = []
    pens, refused = choose_pens(split_tags(str(query.get("tags", ""))), tags)
    messages.extend(refused)
    period = str(query.get("period") or DEFAULT_PERIOD)[:MAX_TEXT]
    if period not in PERIODS:
        messages.append(f"No period {period!r}: showing {PERIOD_LABELS[DEFAULT_PERIOD]}.")
        period = DEFAULT_PERIOD
    start_text, end_text = str(query.get("start", "")), str(query.get("end", ""))
    start = end = None
    if start_text or end_text:
        checked = checked_range(parse_time(start_text, timezone), parse_time(end_text, timezone))
        if isinstance(checked, str):
            messages.append(f"{checked} Showing the last {PERIOD_LABELS[period]}.")
        else:
            start, end = checked
    return TrendView(pens, period, start, end, tuple(messages))


def view_from_data(data: object, tags: Mapping[str, TagDef]) -> TrendView:
    """The view of a ``dcc.Store`` (``TrendView.to_data``): the browser keeps it, so it is
    checked as any input is; anything malformed gives the default view."""
    if not isinstance(data, dict):
        return TrendView()
    raw_tags = data.get("tags")
    names = [one for one in raw_tags if isinstance(one, str)] if isinstance(raw_tags, list) else []
    pens, messages = choose_pens(names[: MAX_PENS * 4], tags)
    period = data.get("period")
    if not isinstance(period, str) or period not in PERIODS:
        period = DEFAULT_PERIOD
    start_text, end_text = data.get("start"), data.get("end")
    start = end = None
    if isinstance(start_text, str) and isinstance(end_text, str):
        checked = checked_range(parse_time(start_text, UTC_ZONE), parse_time(end_text, UTC_ZONE))
        if not isinstance(checked, str):
            start, end = checked
    return TrendView(pens, period, start, end, messages)


UTC_ZONE = ZoneInfo("UTC")


def relayout_range(relayout: object, timezone: ZoneInfo) -> tuple[datetime, datetime] | None:
    """The x range of a plotly ``relayoutData`` after a zoom or pan (site-local axis), in UTC;
    None when the event changed no x range (autorange, a legend click, a resize) or is
    malformed."""
    if not isinstance(relayout, dict):
        return None
    low: object = relayout.get("xaxis.range[0]")
    high: object = relayout.get("xaxis.range[1]")
    both = relayout.get("xaxis.range")
    if isinstance(both, list) and len(both) == 2:
        low, high = both
    if not isinstance(low, str) or not isinstance(high, str):
        return None
    checked = checked_range(parse_time(low, timezone), parse_time(high, timezone))
    return None if isinstance(checked, str) else checked


def is_autorange(relayout: object) -> bool:
    """Whether a ``relayoutData`` is a reset of the zoom (double click, home button)."""
    return isinstance(relayout, dict) and relayout.get("xaxis.autorange") is True


# --- points and gaps ------------------------------------------------------------------------------


def trend_points(samples: Sequence[Sample]) -> list[Point]:
    """Turn samples into points; Bad or non-numeric samples become gaps rather than values.

    Points are placed at the server time, the order history is kept in (a device's source time
    stands still while its value does not change, even across an outage).
    """
    return [
        (s.server_time, None if s.quality.severity is Severity.BAD else s.numeric) for s in samples
    ]


def gap_threshold(times: Sequence[datetime], span: timedelta) -> timedelta:
    """How far apart two points may be before the line between them breaks: ``GAP_STEPS`` times
    the usual distance between points (the scan interval for raw data, the bucket width for
    downsampled data), and at least ``GAP_SHARE`` of the range shown."""
    steps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    positive = [step for step in steps if step > 0]
    usual = statistics.median(positive) if positive else 0.0
    return max(timedelta(seconds=GAP_STEPS * usual), span * GAP_SHARE)


def with_gaps(points: Sequence[Point], max_step: timedelta) -> list[Point]:
    """``points`` with a gap (a None value) wherever two neighbours are more than ``max_step``
    apart: no straight line across a time without data (the center stopped, a device was
    unreachable and its Bad samples were thinned out)."""
    out: list[Point] = []
    for point in points:
        if out and out[-1][1] is not None and point[1] is not None:
            previous = out[-1][0]
            if point[0] - previous > max_step:
                out.append((previous + (point[0] - previous) / 2, None))
        out.append(point)
    return out


def pen_points(samples: Sequence[Sample], start: datetime, end: datetime) -> list[Point]:
    """The points to draw of one pen's samples over [start, end): Bad samples and long steps
    become gaps."""
    points = trend_points(samples)
    return with_gaps(points, gap_threshold([p[0] for p in points], end - start))


def decimate_min_max(points: Sequence[Point], max_points: int) -> list[Point]:
    """Keep at most about ``max_points`` points, keeping each bucket's minimum, maximum and gaps.

    Min/max decimation keeps every peak visible, which plain striding would lose; a bucket
    holding a gap keeps one gap point so that an outage stays visible at any zoom level. (The
    historian's ``read_trend`` already returns few points; this bounds what any other reader
    hands to a figure.)
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


def local_naive(moment: datetime, timezone: ZoneInfo) -> datetime:
    """``moment`` as the site's wall-clock time without an offset (what plotly draws)."""
    return moment.astimezone(timezone).replace(tzinfo=None)


# --- markers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Marker:
    """A moment on the time axis: an alarm transition or a command, with its hover text."""

    time: datetime
    text: str


def alarm_markers(transitions: Sequence[AlarmTransition], tags: Collection[str]) -> list[Marker]:
    """One marker per transition of an alarm on one of ``tags`` (the newest ``MAX_MARKERS``)."""
    wanted = set(tags)
    markers = [
        Marker(
            one.time,
            f"Alarm {one.alarm} ({one.priority.name.lower()}): {one.action.value}, "
            f"{one.before.value} → {one.after.value}"
            + (f" by {one.user}" if one.user else "")
            + (f": {one.comment}" if one.comment else ""),
        )
        for one in transitions
        if one.tag in wanted
    ]
    return sorted(markers, key=lambda m: m.time)[-MAX_MARKERS:]


def command_markers(results: Sequence[CommandResult], tags: Collection[str]) -> list[Marker]:
    """One marker per command to one of ``tags`` at the time it was issued, with who, what and
    its result (the newest ``MAX_MARKERS``)."""
    wanted = set(tags)
    markers = [
        Marker(
            one.command.issued_at,
            f"Command {one.command.tag} = {one.command.value} by {one.command.requested_by} "
            f"({one.command.origin.value}): {one.status.value}"
            + (f", read back {one.readback}" if one.readback is not None else "")
            + (f" ({one.reason})" if one.reason else ""),
        )
        for one in results
        if one.command.tag in wanted
    ]
    return sorted(markers, key=lambda m: m.time)[-MAX_MARKERS:]


# --- the figure ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrendSeries:
    """The samples of one tag to draw, with its unit (its axis) and description."""

    tag: str
    unit: str
    samples: Sequence[Sample]
    description: str = ""


def axis_units(series: Sequence[TrendSeries]) -> list[str]:
    """The units of ``series`` in order of first use, one y axis each (at most ``MAX_AXES``)."""
    units: list[str] = []
    for one in series:
        if one.unit not in units:
            units.append(one.unit)
    return units[:MAX_AXES]


def trace_name(tag: str, unit: str) -> str:
    """A pen's name in the legend: ``water.tank1.level [m]``."""
    return f"{tag} [{unit}]" if unit else tag


def trend_figure(
    series: Sequence[TrendSeries],
    start: datetime,
    end: datetime,
    *,
    timezone: ZoneInfo = UTC_ZONE,
    alarms: Sequence[Marker] = (),
    commands: Sequence[Marker] = (),
    message: str = "",
    revision: str = "trend",
) -> go.Figure:
    """The trend from ``start`` to ``end`` in site-local time: one line per pen on the axis of
    its unit, breaks where data is missing or Bad, alarm and command markers along the time
    axis; ``message`` is shown over the plot. Pen traces come first, in order, then the alarm
    and the command markers (``extend_figure`` relies on it)."""
    figure = go.Figure()
    units = axis_units(series)
    for index, one in enumerate(series):
        points = decimate_min_max(pen_points(one.samples, start, end), 2 * MAX_POINTS_PER_PEN)
        colour, dash = _PEN_STYLES[index % len(_PEN_STYLES)]
        number = units.index(one.unit) + 1 if one.unit in units else MAX_AXES
        figure.add_trace(
            go.Scatter(
                x=[local_naive(p[0], timezone) for p in points],
                y=[p[1] for p in points],
                mode="lines",
                name=trace_name(one.tag, one.unit),
                meta=one.tag,
                hovertemplate=f"{one.tag}<br>%{{x|%Y-%m-%d %H:%M:%S}}<br>%{{y}} {one.unit}"
                "<extra></extra>",
                line={"color": colour, "width": 1.5, "dash": dash},
                connectgaps=False,
                yaxis="y" if number == 1 else f"y{number}",
            )
        )
    for name, markers, symbol, colour, height in (
        ("Alarms", alarms, "triangle-up", _ALARM_COLOUR, 0.04),
        ("Commands", commands, "diamond", _COMMAND_COLOUR, 0.1),
    ):
        figure.add_trace(
            go.Scatter(
                x=[local_naive(m.time, timezone) for m in markers],
                y=[height] * len(markers),
                text=[m.text for m in markers],
                mode="markers",
                name=name,
                marker={"symbol": symbol, "size": 10, "color": colour},
                hovertemplate="%{x|%Y-%m-%d %H:%M:%S}<br>%{text}<extra></extra>",
                yaxis=MARKER_AXIS,
                showlegend=bool(markers),
            )
        )
    right_axes = max(0, len(units) - 1)
    layout: dict[str, Any] = {
        # A new revision for every new range or set of pens: plotly then takes the range drawn
        # here rather than keeping the previous zoom.
        "uirevision": revision,
        "margin": {"l": 64, "r": 24 + 8 * right_axes, "t": 24, "b": 40},
        "paper_bgcolor": _GROUND,
        "plot_bgcolor": _GROUND,
        "font": {"family": "DejaVu Sans, Arial, sans-serif", "color": _TEXT, "size": 12},
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "hovermode": "closest",
        "xaxis": {
            "range": [local_naive(start, timezone), local_naive(end, timezone)],
            "gridcolor": _GRID,
            "linecolor": "#9a9a9a",
            "domain": [0.0, 1.0 - 0.07 * max(0, right_axes - 1)],
            "title": {"text": f"Time ({timezone.key})"},
        },
        MARKER_AXIS.replace("y", "yaxis"): {
            "overlaying": "y",
            "range": [0, 1],
            "fixedrange": True,
            "visible": False,
        },
    }
    for number, unit in enumerate(units, start=1):
        scale: dict[str, Any] = {
            "gridcolor": _GRID if number == 1 else "rgba(0,0,0,0)",
            "linecolor": "#9a9a9a",
            "title": {"text": unit},
            "zeroline": False,
        }
        if number > 1:
            scale.update(
                {"overlaying": "y", "side": "right", "anchor": "x" if number == 2 else "free"}
            )
            if number == 3:
                scale["position"] = 1.0
        layout["yaxis" if number == 1 else f"yaxis{number}"] = scale
    figure.update_layout(**layout)
    if message:
        figure.add_annotation(
            text=message, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False
        )
    return figure


# --- export ---------------------------------------------------------------------------------------

CSV_HEADER = ("tag", "unit", "time_local", "time_utc", "value", "quality")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    # A spreadsheet runs a cell starting like a formula: keep texts from devices inert.
    return "'" + text if text.startswith(_FORMULA_START) else text


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return repr(value)


def export_csv(series: Sequence[TrendSeries], timezone: ZoneInfo) -> str:
    """The samples of ``series`` as CSV, one row per sample: tag, unit, site-local time (with
    its offset), UTC time, value (empty when Bad or missing) and quality."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for one in series:
        for sample in one.samples:
            value = None if sample.quality.severity is Severity.BAD else sample.numeric
            writer.writerow(
                (
                    _cell(one.tag),
                    _cell(one.unit),
                    sample.server_time.astimezone(timezone).isoformat(timespec="milliseconds"),
                    sample.server_time.astimezone(UTC)
                    .isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
                    _number(value),
                    _cell(sample.quality.label()),
                )
            )
    return out.getvalue()
