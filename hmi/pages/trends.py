"""Trends: a tag browser, up to eight pens, presets and a custom range, zoom and pan that re-query
the historian, alarm and command markers, and the export of what is shown.

What the trend shows (its pens and range, ``hmi.trend.TrendView``) lives in the URL's query
(``/trends?tags=a,b&period=8h`` or ``&start=…&end=…``) and in a store of the browser tab's
session: a reload draws the same trend, and coming back from another display finds the trend
as it was left. Every zoom or pan of the time axis asks the historian again for that range
(``read_trend``: raw samples, or rollups with the extremes kept, at most about a thousand
points per pen), so details appear as the operator zooms in.

While a trend shows a preset period it follows the newest data: every ``FOLLOW_MS`` the new
points are appended to the figure (a partial update), not redrawn. A zoom stops following;
resetting the zoom (double click) returns to the preset.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import dash
from dash import ALL, Input, Output, Patch, State, ctx, dcc, html
from flask import Response, request

from controlcenter.model import TagDef, User, utc_now
from controlcenter.permissions import Permission
from hmi.context import HmiContext
from hmi.guard import viewing_user
from hmi.live import live_value
from hmi.page import Page, PageRequest
from hmi.trend import (
    MAX_PENS,
    MAX_POINTS_PER_PEN,
    PERIOD_LABELS,
    PERIODS,
    Marker,
    TrendSeries,
    TrendView,
    alarm_markers,
    checked_range,
    choose_pens,
    command_markers,
    export_csv,
    gap_threshold,
    is_autorange,
    local_naive,
    parse_time,
    relayout_range,
    trend_figure,
    trend_points,
    trendable,
    unit_label,
    view_from_data,
    view_from_query,
    with_gaps,
)

_log = logging.getLogger(__name__)

PATH = "/trends"
EXPORT_PATH = "/trends/export.csv"
VIEW_ID = "trends-view"
INIT_ID = "trends-init"
MARK_ID = "trends-mark"
FOLLOW_ID = "trends-follow"
SEARCH_ID = "trends-search"
AREA_ID = "trends-area"
UNIT_ID = "trends-unit"
RESULTS_ID = "trends-results"
PENS_ID = "trends-pens"
START_ID = "trends-start"
END_ID = "trends-end"
APPLY_ID = "trends-apply"
MESSAGE_ID = "trends-message"
GRAPH_ID = "trends-graph"
EXPORT_ID = "trends-export"
RANGE_ID = "trends-range"
ADD_TYPE = "trends-add"
REMOVE_TYPE = "trends-remove"
PERIOD_TYPE = "trends-period"
FOLLOW_MS = 5000
"""How often a following trend appends the newest points (ISA-101: no redraw every second)."""
MAX_RESULTS = 50
"""Tags the browser lists at once: refine the search for more."""
_INPUT_TIME = "%Y-%m-%d %H:%M:%S"
"""The custom range's inputs: site-local ISO 8601 time (seconds optional when typed)."""
GRAPH_CONFIG: Any = {
    # Operators' networks are closed: no logo linking out, no "edit in Chart Studio", and the
    # image download is kept (it is made in the browser).
    "displaylogo": False,
    "showSendToCloud": False,
    "showEditInChartStudio": False,
    "modeBarButtonsToRemove": ["sendDataToCloud", "lasso2d", "select2d", "toggleSpikelines"],
}


# --- reading the historian ------------------------------------------------------------------------


def data_now(context: HmiContext, tags: Sequence[str]) -> datetime:
    """The time of the newest data: the newest sample of the pens (or of any tag), which may
    run on a simulated clock; the wall clock when there is no sample at all."""
    times = [sample.server_time for name in tags if (sample := context.sample(name)) is not None]
    if not times:
        times = [sample.server_time for sample in context.live.snapshot().values()]
    return max(times) if times else utc_now()


def read_series(
    context: HmiContext, tags: Sequence[str], start: datetime, end: datetime
) -> tuple[list[TrendSeries], list[str]]:
    """Each pen's trend points over [start, end) from the historian, and what failed."""
    known = context.tags_by_name()
    series: list[TrendSeries] = []
    problems: list[str] = []
    for name in tags:
        tag = known[name]
        try:
            samples = context.history.read_trend(name, start, end, MAX_POINTS_PER_PEN)
        except (KeyError, ValueError) as err:
            problems.append(f"{name}: {err}")
            samples = []
        except Exception as err:  # a historian outage is shown, not raised
            _log.warning("trend of %s failed: %r", name, err)
            problems.append(f"History unavailable: {err}")
            samples = []
        series.append(TrendSeries(name, unit_label(tag), samples, tag.description))
    return series, problems


def read_markers(
    context: HmiContext, tags: Sequence[str], start: datetime, end: datetime
) -> tuple[list[Marker], list[Marker]]:
    """The alarm transitions and the commands of the pens' tags over [start, end]."""
    alarms: list[Marker] = []
    commands: list[Marker] = []
    try:
        if context.alarm_journal is not None:
            alarms = alarm_markers(context.alarm_journal.read_alarm_journal(start, end), tags)
        results = [
            result
            for name in tags
            for result in context.history.read_commands(start, end, tag=name, limit=300)
        ]
        commands = command_markers(results, tags)
    except Exception as err:  # markers are extra: the trend draws without them
        _log.warning("trend markers failed: %r", err)
    return alarms, commands


# --- the display --------------------------------------------------------------------------------


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The trend display for the URL's query (the pens and range of the session otherwise)."""
    view = view_from_query(request.query, context.tags_by_name(), context.timezone)
    asked = any(request.query.get(key) for key in ("tags", "start", "end", "period"))
    areas = [{"label": area.name, "value": area.name} for area in context.areas]
    units = sorted({unit_label(tag) for tag in context.tags_by_name().values() if trendable(tag)})
    return html.Section(
        className="trends",
        children=[
            dcc.Store(id=VIEW_ID, storage_type="session"),
            dcc.Store(
                id=INIT_ID,
                data={"view": view.to_data(), "asked": asked, "notes": list(view.messages)},
            ),
            dcc.Store(id=MARK_ID),
            dcc.Interval(id=FOLLOW_ID, interval=FOLLOW_MS, disabled=True),
            html.Aside(
                className="panel trends-browser",
                children=[
                    html.H2("Tags"),
                    dcc.Input(
                        id=SEARCH_ID,
                        type="search",
                        placeholder="Search name or description",
                        debounce=True,
                        className="trends-search",
                    ),
                    dcc.Dropdown(id=AREA_ID, options=areas, placeholder="Area", clearable=True),
                    dcc.Dropdown(
                        id=UNIT_ID,
                        options=[{"label": unit, "value": unit} for unit in units],
                        placeholder="Unit",
                        clearable=True,
                    ),
                    html.Div(id=RESULTS_ID, className="trends-results"),
                ],
            ),
            html.Div(
                className="trends-main",
                children=[
                    html.Div(
                        className="panel trends-controls",
                        children=[
                            html.Div(
                                className="trends-periods",
                                children=[
                                    html.Button(
                                        label,
                                        id={"type": PERIOD_TYPE, "period": name},
                                        className="trends-period-button",
                                        title=f"The last {label}, following new data",
                                    )
                                    for name, label in PERIOD_LABELS.items()
                                ],
                            ),
                            html.Div(
                                className="trends-custom",
                                children=[
                                    html.Label(["From ", _time_input(START_ID)]),
                                    html.Label(["to ", _time_input(END_ID)]),
                                    html.Span(context.timezone.key, className="trends-zone"),
                                    html.Button("Show", id=APPLY_ID, className="trends-apply"),
                                ],
                            ),
                            html.Span(id=RANGE_ID, className="trends-range"),
                            html.A(
                                "Export CSV",
                                id=EXPORT_ID,
                                className="trends-export",
                                href=EXPORT_PATH,
                                download="trend.csv",
                            ),
                        ],
                    ),
                    html.Div(id=MESSAGE_ID, className="trends-message", role="status"),
                    html.Div(id=PENS_ID, className="panel trends-pens"),
                    html.Div(
                        className="panel trends-plot",
                        children=[
                            dcc.Graph(
                                id=GRAPH_ID,
                                config=GRAPH_CONFIG,
                                className="trends-graph",
                                style={"height": "460px"},
                            )
                        ],
                    ),
                ],
            ),
        ],
    )


def _time_input(component_id: str) -> Any:
    return dcc.Input(
        id=component_id,
        type="text",
        placeholder="YYYY-MM-DD HH:MM",
        maxLength=40,
        className="trends-time",
    )


def search_tags(
    context: HmiContext, text: str | None, area: str | None, unit: str | None
) -> tuple[list[TagDef], int]:
    """The trendable tags matching the search text (name or description), the area and the
    unit, in name order: the first ``MAX_RESULTS`` and how many match in all."""
    needle = (text or "").strip().lower()[:100]
    patterns: tuple[str, ...] = ()
    if area:
        patterns = next((one.tags for one in context.areas if one.name == area), ("\0",))
    found = [
        tag
        for name, tag in sorted(context.tags_by_name().items())
        if trendable(tag)
        and (not needle or needle in name.lower() or needle in tag.description.lower())
        and (not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns))
        and (not unit or unit_label(tag) == unit)
    ]
    return found[:MAX_RESULTS], len(found)


def render_results(tags: Sequence[TagDef], total: int) -> Any:
    """The tag browser's list: name, description and unit, and a button adding the pen."""
    rows = [
        html.Li(
            className="trends-result",
            children=[
                html.Button(
                    "+",
                    id={"type": ADD_TYPE, "tag": tag.name},
                    className="trends-add",
                    title=f"Add {tag.name} to the trend",
                ),
                html.Span(tag.name, className="trends-result-name"),
                html.Span(tag.unit, className="unit"),
                html.Div(tag.description, className="trends-result-description"),
            ],
        )
        for tag in tags
    ]
    more = total - len(tags)
    note = html.P(f"{more:,} more: refine the search.", className="trends-more") if more else None
    if not tags:
        note = html.P("No tag matches.", className="trends-more")
    return [html.Ul(rows, className="trends-result-list"), note]


def render_pens(context: HmiContext, tags: Sequence[str]) -> Any:
    """The pens: each tag with its description, live value and a button removing it."""
    if not tags:
        return html.P(
            f"No pens: add up to {MAX_PENS} tags from the list.", className="trends-no-pens"
        )
    known = context.tags_by_name()
    return html.Ul(
        className="trends-pen-list",
        children=[
            html.Li(
                className="trends-pen",
                children=[
                    html.Span(f"{index}", className="trends-pen-number"),
                    html.Span(name, className="trends-pen-name"),
                    html.Span(known[name].description, className="trends-pen-description"),
                    live_value(context.live, known[name]),
                    html.Button(
                        "Remove",
                        id={"type": REMOVE_TYPE, "tag": name},
                        className="trends-remove",
                        title=f"Remove {name}",
                    ),
                ],
            )
            for index, name in enumerate(tags, start=1)
        ],
    )


def export_href(view: TrendView, start: datetime, end: datetime) -> str:
    """The export URL of what is shown: the pens over the range drawn."""
    query = {"tags": ",".join(view.tags), "start": _utc_text(start), "end": _utc_text(end)}
    return f"{EXPORT_PATH}?{urlencode(query)}"


def _utc_text(moment: datetime) -> str:
    return TrendView(start=moment, end=moment).query()["start"]


def _input_text(context: HmiContext, moment: datetime) -> str:
    return context.local(moment).strftime(_INPUT_TIME)


def url_search(view: TrendView) -> str:
    """The URL query of a view (``?tags=…&period=…``)."""
    return "?" + urlencode(view.query())


def _with_notes(view: TrendView, notes: Sequence[str]) -> dict[str, Any]:
    data = view.to_data()
    data["notes"] = [str(note)[:300] for note in notes][:10]
    return data


def _clicked() -> bool:
    """Whether the input that fired the callback carries a click (a button just drawn fires
    with no clicks)."""
    return bool(ctx.triggered and ctx.triggered[0].get("value"))


def register(app: dash.Dash, context: HmiContext) -> None:
    """The display's callbacks and the CSV export route."""

    @app.callback(
        Output(VIEW_ID, "data", allow_duplicate=True),
        Output("url", "search", allow_duplicate=True),
        Input(INIT_ID, "data"),
        State(VIEW_ID, "data"),
        prevent_initial_call="initial_duplicate",
    )
    def start_view(init: object, stored: object) -> tuple[Any, Any]:
        user = viewing_user()
        del user
        known = context.tags_by_name()
        if not isinstance(init, dict):
            raise dash.exceptions.PreventUpdate
        if init.get("asked") or not isinstance(stored, dict):
            view = view_from_data(init.get("view"), known)
            notes = [str(one) for one in init.get("notes", []) if isinstance(one, str)]
            return _with_notes(view, notes), dash.no_update
        # No query: the trend this tab showed last.
        view = view_from_data(stored, known)
        return _with_notes(view, view.messages), url_search(view)

    @app.callback(
        Output(VIEW_ID, "data", allow_duplicate=True),
        Output("url", "search", allow_duplicate=True),
        Input({"type": ADD_TYPE, "tag": ALL}, "n_clicks"),
        Input({"type": REMOVE_TYPE, "tag": ALL}, "n_clicks"),
        Input({"type": PERIOD_TYPE, "period": ALL}, "n_clicks"),
        Input(APPLY_ID, "n_clicks"),
        Input(GRAPH_ID, "relayoutData"),
        State(VIEW_ID, "data"),
        State(START_ID, "value"),
        State(END_ID, "value"),
        prevent_initial_call=True,
    )
    def change_view(
        _add: object,
        _remove: object,
        _period: object,
        _apply: object,
        relayout: object,
        stored: object,
        start_text: object,
        end_text: object,
    ) -> tuple[Any, Any]:
        viewing_user()
        view = view_from_data(stored, context.tags_by_name())
        changed = changed_view(
            context, view, ctx.triggered_id, _clicked(), relayout, start_text, end_text
        )
        if changed is None:
            raise dash.exceptions.PreventUpdate
        new_view, notes = changed
        return _with_notes(new_view, notes), url_search(new_view)

    @app.callback(
        Output(RESULTS_ID, "children"),
        Input(SEARCH_ID, "value"),
        Input(AREA_ID, "value"),
        Input(UNIT_ID, "value"),
    )
    def browse(text: object, area: object, unit: object) -> Any:
        viewing_user()
        tags, total = search_tags(
            context,
            text if isinstance(text, str) else None,
            area if isinstance(area, str) else None,
            unit if isinstance(unit, str) else None,
        )
        return render_results(tags, total)

    @app.callback(
        Output(GRAPH_ID, "figure"),
        Output(PENS_ID, "children"),
        Output(START_ID, "value"),
        Output(END_ID, "value"),
        Output(RANGE_ID, "children"),
        Output(EXPORT_ID, "href"),
        Output(FOLLOW_ID, "disabled"),
        Output(MARK_ID, "data"),
        Output(MESSAGE_ID, "children"),
        Input(VIEW_ID, "data"),
        prevent_initial_call=True,
    )
    def draw(stored: object) -> tuple[Any, ...]:
        viewing_user()
        view = view_from_data(stored, context.tags_by_name())
        notes = list(view.messages)
        if isinstance(stored, dict) and isinstance(stored.get("notes"), list):
            notes = [str(one)[:300] for one in stored["notes"][:10]] + notes
        now = data_now(context, view.tags)
        start, end = view.window(now)
        series, problems = read_series(context, view.tags, start, end)
        alarms, commands = read_markers(context, view.tags, start, end)
        message = "" if view.tags else "Add a tag from the list to draw its trend."
        figure = trend_figure(
            series,
            start,
            end,
            timezone=context.timezone,
            alarms=alarms,
            commands=commands,
            message=message or ("; ".join(problems) if problems else ""),
            revision=f"{','.join(view.tags)}|{start.isoformat()}|{end.isoformat()}",
        )
        mark = {
            "end": end.isoformat(),
            "last": {
                one.tag: one.samples[-1].server_time.isoformat() for one in series if one.samples
            },
        }
        span = (
            f"{context.local_text(start, seconds=False)} to "
            f"{context.local_text(end, seconds=False)}"
            + (f", following (last {PERIOD_LABELS[view.period]})" if view.follow else "")
        )
        return (
            figure,
            render_pens(context, view.tags),
            _input_text(context, start),
            _input_text(context, end),
            span,
            export_href(view, start, end),
            not (view.follow and bool(view.tags)),
            mark,
            [html.P(note, className="trends-note") for note in notes + problems],
        )

    @app.callback(
        Output(GRAPH_ID, "figure", allow_duplicate=True),
        Output(MARK_ID, "data", allow_duplicate=True),
        Input(FOLLOW_ID, "n_intervals"),
        State(VIEW_ID, "data"),
        State(MARK_ID, "data"),
        prevent_initial_call=True,
    )
    def follow(_tick: object, stored: object, mark: object) -> tuple[Any, Any]:
        viewing_user()
        view = view_from_data(stored, context.tags_by_name())
        extension = follow_patch(context, view, mark)
        if extension is None:
            raise dash.exceptions.PreventUpdate
        return extension

    app.server.add_url_rule(
        EXPORT_PATH, "trends_export", lambda: export_response(context), methods=["GET"]
    )


def changed_view(
    context: HmiContext,
    view: TrendView,
    trigger: object,
    clicked: bool,
    relayout: object,
    start_text: object,
    end_text: object,
) -> tuple[TrendView, list[str]] | None:
    """The view after the input ``trigger`` changed (a pen added or removed, a preset, the
    custom range, a zoom or pan of the graph), with what was refused; None: no change.
    ``clicked``: whether a button that fired was clicked (one just drawn fires unclicked)."""
    known = context.tags_by_name()
    if isinstance(trigger, dict) and trigger.get("type") == ADD_TYPE:
        tag = str(trigger.get("tag", ""))
        if not clicked:
            return None
        pens, refused = choose_pens([*view.tags, tag], known)
        return _replace(view, tags=pens), list(refused)
    if isinstance(trigger, dict) and trigger.get("type") == REMOVE_TYPE:
        if not clicked:
            return None
        tag = str(trigger.get("tag", ""))
        return _replace(view, tags=tuple(one for one in view.tags if one != tag)), []
    if isinstance(trigger, dict) and trigger.get("type") == PERIOD_TYPE:
        period = str(trigger.get("period", ""))
        if period not in PERIODS or not clicked:
            return None
        return TrendView(view.tags, period), []
    if trigger == APPLY_ID:
        start = parse_time(start_text, context.timezone) if isinstance(start_text, str) else None
        end = parse_time(end_text, context.timezone) if isinstance(end_text, str) else None
        checked = checked_range(start, end)
        if isinstance(checked, str):
            return view, [checked]
        return TrendView(view.tags, view.period, *checked), []
    if trigger == GRAPH_ID:
        zoomed = relayout_range(relayout, context.timezone)
        if zoomed is not None:
            return TrendView(view.tags, view.period, *zoomed), []
        if is_autorange(relayout):
            return TrendView(view.tags, view.period), []
    return None


def _replace(view: TrendView, *, tags: tuple[str, ...]) -> TrendView:
    return TrendView(tags, view.period, view.start, view.end)


def follow_patch(
    context: HmiContext, view: TrendView, mark: object
) -> tuple[Patch, dict[str, Any]] | None:
    """The partial update of a following trend: each pen's points since the last update
    appended (with a gap if its data stopped), and the time axis moved on; None when the
    trend does not follow or nothing is new."""
    if not view.follow or not view.tags or not isinstance(mark, dict):
        return None
    since = parse_time(str(mark.get("end", "")), context.timezone)
    lasts_data = mark.get("last")
    lasts: dict[str, Any] = lasts_data if isinstance(lasts_data, dict) else {}
    now = data_now(context, view.tags)
    if since is None or now <= since:
        return None
    start, end = view.window(now)
    patch = Patch()
    new_last: dict[str, str] = {}
    span = end - start
    for index, name in enumerate(view.tags):
        try:
            samples = context.history.read_trend(name, since, now, MAX_POINTS_PER_PEN)
        except Exception as err:  # the next tick tries again
            _log.warning("following %s failed: %r", name, err)
            return None
        last_text = lasts.get(name)
        last = parse_time(last_text, context.timezone) if isinstance(last_text, str) else None
        points = trend_points([s for s in samples if last is None or s.server_time > last])
        if not points:
            if isinstance(last_text, str):
                new_last[name] = last_text
            continue
        if last is not None:
            # The step from the last point drawn counts too: data that stopped, then resumed.
            joined = [(last, 0.0), *points]
            points = with_gaps(joined, gap_threshold([p[0] for p in joined], span))[1:]
        else:
            points = with_gaps(points, gap_threshold([p[0] for p in points], span))
        patch["data"][index]["x"].extend([local_naive(p[0], context.timezone) for p in points])
        patch["data"][index]["y"].extend([p[1] for p in points])
        new_last[name] = points[-1][0].isoformat()
    alarms, commands = read_markers(context, view.tags, since, now)
    for offset, markers in ((0, alarms), (1, commands)):
        if markers:
            trace = patch["data"][len(view.tags) + offset]
            trace["x"].extend([local_naive(m.time, context.timezone) for m in markers])
            trace["y"].extend([0.04 if offset == 0 else 0.1] * len(markers))
            trace["text"].extend([m.text for m in markers])
            trace["showlegend"] = True
    patch["layout"]["xaxis"]["range"] = [
        local_naive(start, context.timezone),
        local_naive(end, context.timezone),
    ]
    return patch, {"end": now.isoformat(), "last": new_last}


def export_response(context: HmiContext) -> Response:
    """``GET /trends/export.csv?tags=a,b&start=…&end=…``: the samples drawn for those pens over
    that range (default: the last hour) as CSV, in site-local time and UTC."""
    viewing_user()
    query = {key: request.args.get(key, "")[:4000] for key in ("tags", "start", "end", "period")}
    view = view_from_query(query, context.tags_by_name(), context.timezone)
    if not view.tags:
        reason = " ".join(view.messages) or "No tags: ask for ?tags=a,b."
        return Response(reason, status=400, mimetype="text/plain")
    if view.messages:
        return Response(" ".join(view.messages), status=400, mimetype="text/plain")
    start, end = view.window(data_now(context, view.tags))
    series, problems = read_series(context, view.tags, start, end)
    if problems:
        return Response("; ".join(problems), status=503, mimetype="text/plain")
    name = f"trend-{context.local(start).strftime('%Y%m%d-%H%M%S')}.csv"
    return Response(
        export_csv(series, context.timezone),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


PAGE = Page(
    path=PATH,
    title="Trends",
    level=0,
    permission=Permission.VIEW,
    render=render,
    nav_label="Trends",
    register=register,
)
