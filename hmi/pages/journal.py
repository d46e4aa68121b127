"""The journal: commands, alarm transitions, logins and audit, rule and configuration changes
and system events, merged in time order (newest first), searchable by time range (site-local),
tag, device, user, kind and text; paged; exported as CSV.

Three journals are read through the center's ports: the command journal (every write with its
result), the alarm journal (every transition with who and why) and the event journal. The event
journal also tells each alarm transition as an event; those copies are left out where the alarm
journal's own entry is shown, so that each happening is one row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from controlcenter.model import CommandResult, Event, EventKind, User
from controlcenter.permissions import Permission
from controlcenter.ports import AlarmTransition
from hmi.alarm_actions import page_of, state_word, value_text
from hmi.context import HmiContext
from hmi.guard import acting_user
from hmi.page import Page, PageRequest

FROM_ID = "journal-from"
TO_ID = "journal-to"
TAG_ID = "journal-tag"
DEVICE_ID = "journal-device"
USER_ID = "journal-user"
KIND_ID = "journal-kind"
TEXT_ID = "journal-text"
TABLE_ID = "journal-table"
PAGE_STORE_ID = "journal-page"
PAGE_INFO_ID = "journal-page-info"
PREV_ID = "journal-prev"
NEXT_ID = "journal-next"
CSV_ID = "journal-csv"
DOWNLOAD_ID = "journal-download"
PAGE_SIZE = 50
SOURCE_LIMIT = 2000
"""The newest entries read from each journal per search (narrow the time range for older)."""
MAX_FILTER_CHARS = 200
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")
"""How times are typed, site-local (the time zone is the site's)."""

KIND_CHOICES: tuple[tuple[str, str], ...] = (
    (EventKind.COMMAND.value, "Commands"),
    (EventKind.ALARM.value, "Alarms"),
    (EventKind.AUDIT.value, "Logins and audit"),
    (EventKind.RULE.value, "Rules and configuration"),
    (EventKind.SYSTEM.value, "System"),
)
COLUMNS = ("Time", "Kind", "Source", "User", "What")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One row of the journal, whichever journal it comes from."""

    time: datetime
    kind: str
    source: str
    user: str
    text: str


@dataclass(frozen=True, slots=True)
class JournalQuery:
    """What the operator searches for; empty strings and None mean no filter."""

    start: datetime | None = None
    end: datetime | None = None
    tag: str = ""
    device: str = ""
    user: str = ""
    kind: str = ""
    text: str = ""


def _clip(value: object) -> str:
    return value.strip()[:MAX_FILTER_CHARS] if isinstance(value, str) else ""


def parse_local_time(context: HmiContext, text: str) -> datetime | None:
    """Site-local text (``2030-01-01 13:00``) as an aware time; raises ValueError."""
    text = text.strip()
    if not text:
        return None
    for pattern in TIME_FORMATS:
        try:
            naive = datetime.strptime(text, pattern)
        except ValueError:
            continue
        return naive.replace(tzinfo=context.timezone)
    raise ValueError(f"{text!r} is no time: write it as YYYY-MM-DD HH:MM (site time)")


def query_from(context: HmiContext, values: Mapping[str, object]) -> JournalQuery:
    """The search of the form's (or the URL's) values; raises ValueError for a bad time or
    kind."""
    kind = _clip(values.get("kind"))
    if kind and kind not in {value for value, _ in KIND_CHOICES}:
        raise ValueError(f"no journal kind {kind!r}")
    return JournalQuery(
        start=parse_local_time(context, _clip(values.get("from"))),
        end=parse_local_time(context, _clip(values.get("to"))),
        tag=_clip(values.get("tag")),
        device=_clip(values.get("device")),
        user=_clip(values.get("user")),
        kind=kind,
        text=_clip(values.get("text")),
    )


def command_entry(result: CommandResult) -> JournalEntry:
    """A command and its result as a journal row."""
    command = result.command
    text = (
        f"{command.tag} := {value_text(command.value)} ({command.origin.value}, "
        f"{command.priority.name.lower()}): {result.status.value}"
    )
    if result.reason:
        text += f", {result.reason}"
    if result.readback is not None:
        text += f"; read back {value_text(result.readback)}"
    if command.reason:
        text += f"; reason: {command.reason}"
    return JournalEntry(command.issued_at, "command", command.tag, command.requested_by, text)


def transition_entry(transition: AlarmTransition) -> JournalEntry:
    """An alarm transition as a journal row."""
    text = (
        f"{transition.action.value.replace('_', ' ')}: {state_word(transition.before)} → "
        f"{state_word(transition.after)} (priority {transition.priority.name.lower()})"
    )
    if transition.value is not None:
        text += f", value {value_text(transition.value)}"
    if transition.comment:
        text += f"; comment: {transition.comment}"
    return JournalEntry(transition.time, "alarm", transition.alarm, transition.user, text)


def event_entry(event: Event) -> JournalEntry:
    """An event as a journal row."""
    return JournalEntry(event.time, event.kind.value, event.source, event.user, event.message)


def _moment_key(moment: datetime, name: str) -> tuple[float, str]:
    return (round(moment.timestamp(), 3), name)


def merge_entries(
    commands: Sequence[CommandResult],
    transitions: Sequence[AlarmTransition] | None,
    events: Sequence[Event],
) -> list[JournalEntry]:
    """Every row, newest first. With ``transitions`` (the alarm journal was read), an alarm
    event that repeats one of them is left out; without, alarm events stand for them."""
    entries = [command_entry(result) for result in commands]
    told: set[tuple[float, str]] = set()
    if transitions is not None:
        entries += [transition_entry(transition) for transition in transitions]
        told = {_moment_key(t.time, t.alarm) for t in transitions}
    for event in events:
        if event.kind is EventKind.ALARM and _moment_key(event.time, event.source) in told:
            continue
        entries.append(event_entry(event))
    entries.sort(key=lambda entry: entry.time, reverse=True)
    return entries


def matches_text(entry: JournalEntry, text: str) -> bool:
    """Whether ``text`` occurs (any case) in the row."""
    folded = text.casefold()
    return any(
        folded in part.casefold() for part in (entry.source, entry.user, entry.text, entry.kind)
    )


def search(context: HmiContext, query: JournalQuery) -> list[JournalEntry]:
    """The rows of ``query``, newest first (at most ``SOURCE_LIMIT`` from each journal)."""
    wanted = query.kind
    tags = context.tags_by_name()
    commands: list[CommandResult] = []
    if wanted in ("", EventKind.COMMAND.value):
        commands = context.history.read_commands(
            query.start,
            query.end,
            tag=query.tag or None,
            requested_by=query.user or None,
            limit=SOURCE_LIMIT,
        )
        if query.device:
            commands = [
                result
                for result in commands
                if (tag := tags.get(result.command.tag)) is not None and tag.device == query.device
            ]
    transitions: list[AlarmTransition] | None = None
    if context.alarm_journal is not None:
        transitions = []
        if wanted in ("", EventKind.ALARM.value):
            transitions = [
                transition
                for transition in context.alarm_journal.read_alarm_journal(
                    query.start, query.end, user=query.user or None, limit=SOURCE_LIMIT
                )
                if (not query.tag or transition.tag == query.tag)
                and (not query.device or transition.device == query.device)
            ]
    events = _events(context, query)
    entries = merge_entries(commands, transitions, events)
    if query.text:
        entries = [entry for entry in entries if matches_text(entry, query.text)]
    return entries


def _events(context: HmiContext, query: JournalQuery) -> list[Event]:
    kind = EventKind(query.kind) if query.kind else None
    common: dict[str, Any] = {"kind": kind, "user": query.user or None, "limit": SOURCE_LIMIT}
    subject = query.tag or query.device
    if not subject:
        return context.history.read_events(query.start, query.end, **common)
    # A tag's or a device's own events name it as their source; alarm events name their
    # tag and device in columns of their own. Both, once each.
    about = (
        context.history.read_events(query.start, query.end, tag=query.tag, **common)
        if query.tag
        else context.history.read_events(query.start, query.end, device=query.device, **common)
    )
    if query.tag and query.device:
        of_device = set(
            context.history.read_events(query.start, query.end, device=query.device, **common)
        )
        about = [event for event in about if event in of_device]
    own = context.history.read_events(query.start, query.end, source=subject, **common)
    return list(dict.fromkeys([*about, *own]))


def table_view(
    context: HmiContext, entries: Sequence[JournalEntry], page: int
) -> tuple[Any, int, str]:
    """One page of ``entries`` as a table, the page shown and the pager's text."""
    shown = page_of(entries, page, PAGE_SIZE)
    info = f"Page {shown.page + 1} of {shown.pages} · {shown.total} entries"
    if not shown.items:
        return html.P("No entries match.", className="journal-none", id="journal-none"), 0, info
    rows = [
        html.Tr(
            className=f"journal-row journal-{entry.kind}",
            children=[
                html.Td(context.local_text(entry.time), className="journal-time"),
                html.Td(entry.kind, className="journal-kind"),
                html.Td(entry.source, className="journal-source"),
                html.Td(entry.user, className="journal-user"),
                html.Td(entry.text, className="journal-text"),
            ],
        )
        for entry in shown.items
    ]
    table = html.Table(
        className="journal-list",
        children=[html.Thead(html.Tr([html.Th(c) for c in COLUMNS])), html.Tbody(rows)],
    )
    return table, shown.page, info


def csv_text(context: HmiContext, entries: Sequence[JournalEntry]) -> str:
    """The rows as CSV (site-local time and UTC, kind, source, user, text)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time_local", "time_utc", "kind", "source", "user", "text"])
    for entry in entries:
        writer.writerow(
            [
                context.local_text(entry.time),
                entry.time.isoformat(),
                entry.kind,
                _cell(entry.source),
                _cell(entry.user),
                _cell(entry.text),
            ]
        )
    return out.getvalue()


def _cell(text: str) -> str:
    # A cell starting with = + - @ is run as a formula by spreadsheets (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# --- the display ----------------------------------------------------------------------------------


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The journal, its search preset by the query string (``?user=&tag=&device=&kind=``)."""
    error = ""
    try:
        query = query_from(context, request.query)
    except ValueError as err:
        query, error = JournalQuery(), str(err)
    table, page, info = table_view(context, search(context, query), 0)
    values = {key: _clip(request.query.get(key)) for key in ("from", "to")}
    return html.Section(
        className="panel journal",
        children=[
            html.H2("Journal"),
            dcc.Store(id=PAGE_STORE_ID, data=page),
            dcc.Download(id=DOWNLOAD_ID),
            html.Div(
                className="journal-filters",
                children=[
                    _field("From (site time)", FROM_ID, values["from"], "YYYY-MM-DD HH:MM"),
                    _field("To (site time)", TO_ID, values["to"], "YYYY-MM-DD HH:MM"),
                    _field("Tag", TAG_ID, query.tag, "water.ps1.pump1.run_cmd"),
                    _field("Device", DEVICE_ID, query.device, ""),
                    _field("User", USER_ID, query.user, ""),
                    html.Label(
                        [
                            html.Span("Kind", className="journal-label"),
                            dcc.Dropdown(
                                id=KIND_ID,
                                options=[{"label": lab, "value": val} for val, lab in KIND_CHOICES],
                                value=query.kind or None,
                                placeholder="All kinds",
                                className="journal-dropdown",
                            ),
                        ],
                        className="field",
                    ),
                    _field("Text", TEXT_ID, query.text, ""),
                    html.Button("Export CSV", id=CSV_ID, n_clicks=0, className="journal-button"),
                ],
            ),
            html.Div(error, id="journal-error", className="journal-error"),
            html.Div(table, id=TABLE_ID),
            html.Div(
                className="journal-pager",
                children=[
                    html.Button("Previous", id=PREV_ID, n_clicks=0, className="journal-button"),
                    html.Span(info, id=PAGE_INFO_ID, className="journal-page-info"),
                    html.Button("Next", id=NEXT_ID, n_clicks=0, className="journal-button"),
                ],
            ),
        ],
    )


def _field(label: str, ident: str, value: str, placeholder: str) -> Any:
    return html.Label(
        [
            html.Span(label, className="journal-label"),
            dcc.Input(
                id=ident,
                type="search",
                value=value,
                debounce=True,
                placeholder=placeholder,
                className="journal-input",
            ),
        ],
        className="field",
    )


FILTER_INPUTS = (FROM_ID, TO_ID, TAG_ID, DEVICE_ID, USER_ID, KIND_ID, TEXT_ID)
FILTER_KEYS = ("from", "to", "tag", "device", "user", "kind", "text")


def register(app: dash.Dash, context: HmiContext) -> None:
    """The journal's callbacks: search and page, export."""

    @app.callback(
        Output(TABLE_ID, "children"),
        Output(PAGE_STORE_ID, "data"),
        Output(PAGE_INFO_ID, "children"),
        Output("journal-error", "children"),
        *(Input(ident, "value") for ident in FILTER_INPUTS),
        Input(PREV_ID, "n_clicks"),
        Input(NEXT_ID, "n_clicks"),
        State(PAGE_STORE_ID, "data"),
        prevent_initial_call=True,
    )
    def refresh(*args: object) -> tuple[Any, Any, Any, str]:
        acting_user(Permission.VIEW_JOURNAL)
        values = dict(zip(FILTER_KEYS, args[: len(FILTER_KEYS)], strict=True))
        page = args[-1]
        number = page if isinstance(page, int) and not isinstance(page, bool) else 0
        trigger = dash.ctx.triggered_id
        if trigger == PREV_ID:
            number -= 1
        elif trigger == NEXT_ID:
            number += 1
        else:
            number = 0
        try:
            query = query_from(context, values)
        except ValueError as err:
            return dash.no_update, dash.no_update, dash.no_update, str(err)
        table, shown, info = table_view(context, search(context, query), number)
        return table, shown, info, ""

    @app.callback(
        Output(DOWNLOAD_ID, "data"),
        Input(CSV_ID, "n_clicks"),
        *(State(ident, "value") for ident in FILTER_INPUTS),
        prevent_initial_call=True,
    )
    def export(_clicks: object, *args: object) -> Any:
        acting_user(Permission.VIEW_JOURNAL)
        try:
            query = query_from(context, dict(zip(FILTER_KEYS, args, strict=True)))
        except ValueError:
            return dash.no_update
        stamp = datetime.now(context.timezone).strftime("%Y%m%d-%H%M")
        # What dcc.send_string returns (it has no type annotations).
        return {
            "content": csv_text(context, search(context, query)),
            "filename": f"journal-{stamp}.csv",
            "base64": False,
            "type": "text/csv",
        }


PAGE = Page(
    path="/journal",
    title="Journal",
    level=0,
    permission=Permission.VIEW_JOURNAL,
    render=render,
    nav_label="Journal",
    register=register,
)
