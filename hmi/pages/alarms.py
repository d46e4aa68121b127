"""The alarm list: active alarms and their history in one table, filters, the guidance and
journal of the selected alarm, and the operator's actions (acknowledge, shelve, out of service).

Every action is the alarm service's (``context.alarms``): this display collects the alarms and
the comment, checks the permission of the callback on the server, and shows the service's
answer or refusal. The table is redrawn when an alarm changes (the live stream bumps
``alarm-version``), one page at a time, so a site with thousands of alarms stays quick.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dash
from dash import ALL, ClientsideFunction, Input, Output, State, dcc, html

from controlcenter.model import User
from controlcenter.permissions import Permission, allows
from controlcenter.ports import (
    AlarmDef,
    AlarmDisplayState,
    AlarmPriority,
    AlarmState,
    AlarmTransition,
)
from hmi import alarm_actions
from hmi.alarm_actions import (
    ACTIVE_VIEW,
    HISTORY_LIMIT,
    HISTORY_VIEW,
    SHELVE_PRESETS,
    UNACKNOWLEDGED_ANY,
    AlarmFilter,
    alarm_time,
    current_alarms,
    history_entries,
    loud_count,
    page_of,
    priority_word,
    state_word,
    value_text,
)
from hmi.context import HmiContext
from hmi.guard import acting_user, viewing_user
from hmi.page import Page, PageRequest

PREFIX = "alarms"
VIEW_ID = "alarms-view"
AREA_ID = "alarms-area"
PRIORITY_ID = "alarms-priority"
STATE_ID = "alarms-state"
TEXT_ID = "alarms-text"
ALARM_ID = "alarms-alarm"
ASSET_ID = "alarms-asset"
TABLE_ID = "alarms-table"
PAGE_STORE_ID = "alarms-page"
PAGE_INFO_ID = "alarms-page-info"
PREV_ID = "alarms-prev"
NEXT_ID = "alarms-next"
SELECTED_ID = "alarms-selected"
FOCUS_ID = "alarms-focus"
DETAIL_ID = "alarms-detail"
COMMENT_ID = "alarms-comment"
ACK_ID = "alarms-ack"
ACK_RESULT_ID = "alarms-ack-result"
SHELVE_DURATION_ID = "alarms-shelve-duration"
SHELVE_ID = "alarms-shelve"
UNSHELVE_ID = "alarms-unshelve"
SHELVE_RESULT_ID = "alarms-shelve-result"
OUT_OF_SERVICE_ID = "alarms-out-of-service"
RETURN_ID = "alarms-return"
SERVICE_RESULT_ID = "alarms-service-result"
SOUND_ID = "alarms-sound"
LOUD_ID = "alarms-loud"
SOUND_STATE_ID = "alarms-sound-state"
ALARM_VERSION_ID = "alarm-version"
"""The shell's store, bumped by the live stream on every alarm transition."""
CHECK_TYPE = "alarms-check"
OPEN_TYPE = "alarms-open"
JOURNAL_ROWS = 50
MAX_SELECTED = 500
"""Alarms one action may name (a forged request must not make the service loop for long)."""
MAX_TEXT_CHARS = 1000

STATE_CHOICES: tuple[tuple[str, str], ...] = (
    (UNACKNOWLEDGED_ANY, "Unacknowledged (active or returned)"),
    *(
        (display.value, state_word(display))
        for display in AlarmDisplayState
        if display is not AlarmDisplayState.NORMAL
    ),
)


# --- drawing ------------------------------------------------------------------------------------


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The alarm list, its filters preselected by the query string."""
    if context.alarms is None:
        return html.Section(
            className="panel alarms",
            children=[html.H2("Alarms"), html.P("This center has no alarm service.")],
        )
    wanted = AlarmFilter.from_query(request.query)
    focus = wanted.alarm
    table, page, info, loud = table_view(context, wanted, 0, [], focus)
    return html.Section(
        className="panel alarms",
        children=[
            html.H2("Alarms"),
            dcc.Store(id=PAGE_STORE_ID, data=page),
            dcc.Store(id=SELECTED_ID, data=[]),
            dcc.Store(id=FOCUS_ID, data=focus),
            dcc.Store(id=LOUD_ID, data=loud),
            _filters(context, wanted),
            html.Div(table, id=TABLE_ID, className="alarms-table-frame"),
            html.Div(
                className="alarms-pager",
                children=[
                    html.Button("Previous", id=PREV_ID, n_clicks=0, className="alarms-button"),
                    html.Span(info, id=PAGE_INFO_ID, className="alarms-page-info"),
                    html.Button("Next", id=NEXT_ID, n_clicks=0, className="alarms-button"),
                ],
            ),
            html.Div(
                className="alarms-lower",
                children=[
                    _actions(user),
                    html.Div(
                        detail_view(context, focus),
                        id=DETAIL_ID,
                        className="alarms-detail panel",
                    ),
                ],
            ),
        ],
    )


def _filters(context: HmiContext, wanted: AlarmFilter) -> Any:
    areas = sorted(
        {area.name for area in context.areas}
        | {definition.area for definition, _ in _all(context) if definition.area}
        | ({wanted.area} if wanted.area else set())
    )
    return html.Div(
        className="alarms-filters",
        children=[
            dcc.RadioItems(
                id=VIEW_ID,
                options=[
                    {"label": "Active", "value": ACTIVE_VIEW},
                    {"label": "History", "value": HISTORY_VIEW},
                ],
                value=wanted.view,
                inline=True,
                className="alarms-view",
            ),
            _labelled(
                "Area",
                dcc.Dropdown(
                    id=AREA_ID,
                    options=[{"label": name, "value": name} for name in areas],
                    value=wanted.area or None,
                    placeholder="All areas",
                    className="alarms-dropdown",
                ),
            ),
            _labelled(
                "Priority",
                dcc.Dropdown(
                    id=PRIORITY_ID,
                    options=[
                        {"label": priority_word(p), "value": priority_word(p)}
                        for p in AlarmPriority
                    ],
                    value=wanted.priority or None,
                    placeholder="All priorities",
                    className="alarms-dropdown",
                ),
            ),
            _labelled(
                "State",
                dcc.Dropdown(
                    id=STATE_ID,
                    options=[{"label": label, "value": value} for value, label in STATE_CHOICES],
                    value=wanted.state or None,
                    placeholder="All states",
                    className="alarms-dropdown alarms-state-dropdown",
                ),
            ),
            _labelled(
                "Text",
                dcc.Input(
                    id=TEXT_ID,
                    type="search",
                    value=wanted.text,
                    debounce=True,
                    placeholder="name, message, tag",
                    className="alarms-input",
                ),
            ),
            _labelled(
                "Alarm",
                dcc.Input(
                    id=ALARM_ID,
                    type="search",
                    value=wanted.alarm,
                    debounce=True,
                    className="alarms-input",
                ),
            ),
            _labelled(
                "Asset",
                dcc.Input(
                    id=ASSET_ID,
                    type="search",
                    value=wanted.asset,
                    debounce=True,
                    className="alarms-input",
                ),
            ),
            dcc.Checklist(
                id=SOUND_ID,
                options=[{"label": " Sound", "value": "on"}],
                value=[],
                # The browser remembers the choice (localStorage), per operator station.
                persistence=True,
                persistence_type="local",
                className="alarms-sound",
            ),
            html.Span(id=SOUND_STATE_ID, className="alarms-sound-state"),
        ],
    )


def _labelled(label: str, control: Any) -> Any:
    return html.Label([html.Span(label, className="alarms-label"), control], className="field")


def _all(context: HmiContext) -> list[tuple[AlarmDef, AlarmState]]:
    return context.alarms.states() if context.alarms is not None else []


def _button(label: str, ident: str, enabled: bool, why: str) -> Any:
    return html.Button(
        label,
        id=ident,
        n_clicks=0,
        disabled=not enabled,
        title="" if enabled else why,
        className="alarms-button alarms-action",
    )


def _actions(user: User) -> Any:
    may_ack = allows(user, Permission.ACKNOWLEDGE_ALARMS)
    may_shelve = allows(user, Permission.SHELVE_ALARMS)
    may_service = allows(user, Permission.REMOVE_ALARMS_FROM_SERVICE)
    role = user.role.value
    return html.Div(
        className="alarms-actions panel",
        children=[
            html.H3("Act on the selected alarms"),
            html.Label(
                [
                    html.Span("Comment or reason", className="alarms-label"),
                    dcc.Textarea(
                        id=COMMENT_ID,
                        value="",
                        maxLength=MAX_TEXT_CHARS,
                        className="alarms-comment",
                        disabled=not (may_ack or may_shelve or may_service),
                    ),
                ],
                className="field",
            ),
            html.Div(
                className="alarms-action-row",
                children=[
                    _button("Acknowledge", ACK_ID, may_ack, f"{role} may not acknowledge"),
                    html.Span(id=ACK_RESULT_ID, className="alarms-result"),
                ],
            ),
            html.Div(
                className="alarms-action-row",
                children=[
                    dcc.Dropdown(
                        id=SHELVE_DURATION_ID,
                        options=[
                            {"label": label, "value": value} for label, value in SHELVE_PRESETS
                        ],
                        value=SHELVE_PRESETS[1][1],
                        clearable=False,
                        disabled=not may_shelve,
                        className="alarms-dropdown alarms-shelve-duration",
                    ),
                    _button("Shelve", SHELVE_ID, may_shelve, f"{role} may not shelve"),
                    _button("Unshelve", UNSHELVE_ID, may_shelve, f"{role} may not unshelve"),
                    html.Span(id=SHELVE_RESULT_ID, className="alarms-result"),
                ],
            ),
            html.Div(
                className="alarms-action-row",
                children=[
                    _button(
                        "Out of service",
                        OUT_OF_SERVICE_ID,
                        may_service,
                        f"{role} may not take alarms out of service",
                    ),
                    _button(
                        "Return to service",
                        RETURN_ID,
                        may_service,
                        f"{role} may not return alarms to service",
                    ),
                    html.Span(id=SERVICE_RESULT_ID, className="alarms-result"),
                ],
            ),
        ],
    )


def table_view(
    context: HmiContext,
    wanted: AlarmFilter,
    page: int,
    selected: Sequence[str],
    focus: str,
) -> tuple[Any, int, str, int]:
    """The table of ``wanted`` at ``page``: its element, the page shown, the pager's text and
    the count of unacknowledged high and critical alarms (for the sound)."""
    if context.alarms is None:
        return html.P("No alarm service."), 0, "", 0
    pairs = context.alarms.states()
    loud = loud_count(pairs)
    if wanted.view == HISTORY_VIEW:
        history = page_of(_history(context, wanted), page)
        table = _history_table(context, history.items, history.page, focus)
        number, pages, total, noun = history.page, history.pages, history.total, "entries"
    else:
        current = page_of(current_alarms(pairs, wanted), page)
        table = _active_table(context, current.items, set(selected), focus)
        number, pages, total, noun = current.page, current.pages, current.total, "alarms"
    return table, number, f"Page {number + 1} of {pages} · {total} {noun}", loud


def _history(context: HmiContext, wanted: AlarmFilter) -> list[AlarmTransition]:
    if context.alarm_journal is None:
        return []
    transitions = context.alarm_journal.read_alarm_journal(
        area=wanted.area or None, alarm=wanted.alarm or None, limit=HISTORY_LIMIT
    )
    return history_entries(transitions, wanted, lambda name: _definition(context, name))


def _definition(context: HmiContext, name: str) -> AlarmDef | None:
    if context.alarms is None:
        return None
    try:
        return context.alarms.definition(name)
    except KeyError:
        return None


HEADINGS_ACTIVE = ("", "Priority", "Time", "Alarm", "Message", "Area", "State", "Value")
HEADINGS_HISTORY = ("Priority", "Time", "Alarm", "Action", "By", "Comment", "Area", "State")


def _open_button(name: str, row: int) -> Any:
    return html.Button(
        name,
        id={"type": OPEN_TYPE, "alarm": name, "row": row},
        n_clicks=0,
        className="alarm-open",
        title="Show the guidance and journal",
    )


def _active_table(
    context: HmiContext,
    pairs: Sequence[tuple[AlarmDef, AlarmState]],
    selected: set[str],
    focus: str,
) -> Any:
    if not pairs:
        return html.P("No alarms match.", className="alarms-none", id="alarms-none")
    rows = []
    for row, (definition, state) in enumerate(pairs):
        word = priority_word(definition.priority)
        display = state.display
        moment = alarm_time(state)
        classes = f"alarm-row priority-{word} state-{display.value}"
        if definition.name == focus:
            classes += " focused"
        rows.append(
            html.Tr(
                className=classes,
                children=[
                    html.Td(
                        dcc.Checklist(
                            id={"type": CHECK_TYPE, "alarm": definition.name},
                            options=[{"label": "", "value": definition.name}],
                            value=[definition.name] if definition.name in selected else [],
                            className="alarm-check",
                        )
                    ),
                    html.Td(html.Span(word, className="alarm-priority")),
                    html.Td(context.local_text(moment) if moment else "", className="alarm-time"),
                    html.Td(_open_button(definition.name, row)),
                    html.Td(state.message or definition.message, className="alarm-message"),
                    html.Td(definition.area),
                    html.Td(state_word(display), className="alarm-state"),
                    html.Td(value_text(state.value), className="alarm-value"),
                ],
            )
        )
    return html.Table(
        className="alarms-list",
        children=[
            html.Thead(html.Tr([html.Th(heading) for heading in HEADINGS_ACTIVE])),
            html.Tbody(rows),
        ],
    )


def _history_table(
    context: HmiContext, transitions: Sequence[AlarmTransition], page: int, focus: str
) -> Any:
    if not transitions:
        return html.P("No journal entries match.", className="alarms-none", id="alarms-none")
    rows = []
    for index, transition in enumerate(transitions):
        word = priority_word(transition.priority)
        classes = f"alarm-row history-row priority-{word} state-{transition.after.value}"
        if transition.alarm == focus:
            classes += " focused"
        rows.append(
            html.Tr(
                className=classes,
                children=[
                    html.Td(html.Span(word, className="alarm-priority")),
                    html.Td(context.local_text(transition.time), className="alarm-time"),
                    html.Td(_open_button(transition.alarm, page * 1000 + index)),
                    html.Td(transition.action.value.replace("_", " ")),
                    html.Td(transition.user),
                    html.Td(transition.comment, className="alarm-comment"),
                    html.Td(transition.area),
                    html.Td(state_word(transition.after), className="alarm-state"),
                ],
            )
        )
    return html.Table(
        className="alarms-list alarms-history",
        children=[
            html.Thead(html.Tr([html.Th(heading) for heading in HEADINGS_HISTORY])),
            html.Tbody(rows),
        ],
    )


def detail_view(context: HmiContext, name: str) -> Any:
    """The guidance of alarm ``name`` and its journal, newest first."""
    if not name:
        return html.P("Select an alarm to see its guidance and journal.", className="muted")
    if context.alarms is None:
        return html.P("No alarm service.")
    try:
        definition = context.alarms.definition(name)
        state = context.alarms.state(name)
    except KeyError:
        return html.P(f"No alarm named {name}.", className="alarms-unknown")
    guidance = definition.guidance
    journal: list[AlarmTransition] = []
    if context.alarm_journal is not None:
        journal = context.alarm_journal.read_alarm_journal(alarm=name, limit=JOURNAL_ROWS)
    word = priority_word(definition.priority)
    facts: list[Any] = [
        html.Dt("State"),
        html.Dd(state_word(state.display), id="alarms-detail-state"),
        html.Dt("Priority"),
        html.Dd(html.Span(word, className=f"alarm-priority priority-{word}")),
        html.Dt("Tag"),
        html.Dd(definition.tag or definition.device or "—"),
    ]
    if state.shelved:
        until = context.local_text(state.shelved_until) if state.shelved_until else "it clears"
        facts += [
            html.Dt("Shelved"),
            html.Dd(f"by {state.shelved_by} until {until}: {state.shelve_reason}"),
        ]
    if state.out_of_service:
        facts += [
            html.Dt("Out of service"),
            html.Dd(f"by {state.out_of_service_by}: {state.out_of_service_reason}"),
        ]
    if state.suppressed:
        facts += [html.Dt("Suppressed"), html.Dd(state.suppressed_reason)]
    links = [dcc.Link("Trend", href=f"/trends?tags={definition.tag}")] if definition.tag else []
    if definition.asset:
        links.append(dcc.Link("Faceplate", href=f"/asset/{definition.asset}"))
    return html.Div(
        [
            html.H3(name, id="alarms-detail-name"),
            html.P(definition.message, className="alarms-detail-message"),
            html.Dl(facts, className="alarms-facts"),
            html.Div(links, className="alarms-links"),
            html.H4("Guidance"),
            html.Dl(
                [
                    html.Dt("Cause"),
                    html.Dd(guidance.cause or "—", id="alarms-guidance-cause"),
                    html.Dt("Consequence"),
                    html.Dd(guidance.consequence or "—", id="alarms-guidance-consequence"),
                    html.Dt("Action"),
                    html.Dd(guidance.action or "—", id="alarms-guidance-action"),
                ],
                className="alarms-guidance",
            ),
            html.H4("Journal"),
            _journal_table(context, journal),
        ]
    )


def _journal_table(context: HmiContext, journal: Sequence[AlarmTransition]) -> Any:
    if not journal:
        return html.P("No journal entries yet.", className="muted")
    return html.Table(
        className="alarms-journal",
        id="alarms-detail-journal",
        children=[
            html.Thead(html.Tr([html.Th(h) for h in ("Time", "Action", "State", "By", "Comment")])),
            html.Tbody(
                [
                    html.Tr(
                        [
                            html.Td(context.local_text(t.time)),
                            html.Td(t.action.value.replace("_", " ")),
                            html.Td(state_word(t.after)),
                            html.Td(t.user),
                            html.Td(t.comment),
                        ]
                    )
                    for t in sorted(journal, key=lambda t: t.time, reverse=True)
                ]
            ),
        ],
    )


# --- callbacks ------------------------------------------------------------------------------------


def _text(value: object) -> str:
    """A text input's value, whatever a forged request sends."""
    return value[:MAX_TEXT_CHARS] if isinstance(value, str) else ""


def chosen_alarms(selected: object, focus: object) -> list[str]:
    """The alarms an action applies to: the ticked rows, else the alarm shown in detail
    (only names, at most ``MAX_SELECTED``: the request may be forged)."""
    names = (
        [name for name in selected if isinstance(name, str) and name]
        if isinstance(selected, list)
        else []
    )
    if not names and isinstance(focus, str) and focus:
        names = [focus]
    return list(dict.fromkeys(names))[:MAX_SELECTED]


def register(app: dash.Dash, context: HmiContext) -> None:
    """The alarm list's callbacks."""

    @app.callback(
        Output(TABLE_ID, "children"),
        Output(PAGE_STORE_ID, "data"),
        Output(PAGE_INFO_ID, "children"),
        Output(LOUD_ID, "data"),
        Input(VIEW_ID, "value"),
        Input(AREA_ID, "value"),
        Input(PRIORITY_ID, "value"),
        Input(STATE_ID, "value"),
        Input(TEXT_ID, "value"),
        Input(ALARM_ID, "value"),
        Input(ASSET_ID, "value"),
        Input(ALARM_VERSION_ID, "data"),
        Input(PREV_ID, "n_clicks"),
        Input(NEXT_ID, "n_clicks"),
        State(PAGE_STORE_ID, "data"),
        State(SELECTED_ID, "data"),
        State(FOCUS_ID, "data"),
        prevent_initial_call=True,
    )
    def refresh(
        view: object,
        area: object,
        priority: object,
        state: object,
        text: object,
        alarm: object,
        asset: object,
        _version: object,
        _prev: object,
        _next: object,
        page: object,
        selected: object,
        focus: object,
    ) -> tuple[Any, int, str, int]:
        viewing_user()
        wanted = AlarmFilter(
            view=_text(view),
            area=_text(area),
            priority=_text(priority),
            state=_text(state),
            text=_text(text),
            alarm=_text(alarm),
            asset=_text(asset),
        ).cleaned()
        number = page if isinstance(page, int) and not isinstance(page, bool) else 0
        trigger = dash.ctx.triggered_id
        if trigger == PREV_ID:
            number -= 1
        elif trigger == NEXT_ID:
            number += 1
        elif trigger not in (ALARM_VERSION_ID, None):
            number = 0  # another filter: its first page
        return table_view(context, wanted, number, chosen_alarms(selected, ""), _text(focus))

    @app.callback(
        Output(SELECTED_ID, "data"),
        Input({"type": CHECK_TYPE, "alarm": ALL}, "value"),
        State(SELECTED_ID, "data"),
        prevent_initial_call=True,
    )
    def select(_values: object, selected: object) -> list[str]:
        viewing_user()
        before = chosen_alarms(selected, "")
        shown: set[str] = set()
        ticked: list[str] = []
        for item in dash.ctx.inputs_list[0] if dash.ctx.inputs_list else []:
            ident = item.get("id") if isinstance(item, dict) else None
            name = ident.get("alarm") if isinstance(ident, dict) else None
            if not isinstance(name, str):
                continue
            shown.add(name)
            value = item.get("value")
            if isinstance(value, list) and name in value:
                ticked.append(name)
        # Ticks on other pages stay; those of the rows shown are what the boxes say now.
        return chosen_alarms([name for name in before if name not in shown] + ticked, "")

    @app.callback(
        Output(FOCUS_ID, "data"),
        Input({"type": OPEN_TYPE, "alarm": ALL, "row": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def open_alarm(clicks: object) -> Any:
        viewing_user()
        trigger = dash.ctx.triggered_id
        # Rows drawn anew report n_clicks 0: only a real click opens an alarm.
        if not isinstance(trigger, dict) or not any(
            isinstance(n, int) and n > 0 for n in (clicks if isinstance(clicks, list) else [])
        ):
            return dash.no_update
        value = dash.ctx.triggered[0].get("value") if dash.ctx.triggered else None
        if not (isinstance(value, int) and value > 0):
            return dash.no_update
        return _text(trigger.get("alarm"))

    @app.callback(
        Output(DETAIL_ID, "children"),
        Input(FOCUS_ID, "data"),
        Input(ALARM_VERSION_ID, "data"),
        prevent_initial_call=True,
    )
    def detail(focus: object, _version: object) -> Any:
        viewing_user()
        return detail_view(context, _text(focus))

    @app.callback(
        Output(ACK_RESULT_ID, "children"),
        Input(ACK_ID, "n_clicks"),
        State(SELECTED_ID, "data"),
        State(FOCUS_ID, "data"),
        State(COMMENT_ID, "value"),
        prevent_initial_call=True,
    )
    def acknowledge(_clicks: object, selected: object, focus: object, comment: object) -> str:
        user = acting_user(Permission.ACKNOWLEDGE_ALARMS)
        if context.alarms is None:
            return "No alarm service."
        names = chosen_alarms(selected, focus)
        return alarm_actions.acknowledge(context.alarms, user, names, _text(comment))

    @app.callback(
        Output(SHELVE_RESULT_ID, "children"),
        Input(SHELVE_ID, "n_clicks"),
        Input(UNSHELVE_ID, "n_clicks"),
        State(SELECTED_ID, "data"),
        State(FOCUS_ID, "data"),
        State(COMMENT_ID, "value"),
        State(SHELVE_DURATION_ID, "value"),
        prevent_initial_call=True,
    )
    def shelve(
        _shelve: object,
        _unshelve: object,
        selected: object,
        focus: object,
        reason: object,
        duration: object,
    ) -> str:
        user = acting_user(Permission.SHELVE_ALARMS)
        if context.alarms is None:
            return "No alarm service."
        names = chosen_alarms(selected, focus)
        if dash.ctx.triggered_id == UNSHELVE_ID:
            return alarm_actions.unshelve(context.alarms, user, names, _text(reason))
        return alarm_actions.shelve(
            context.alarms, user, names, _text(reason), _text(duration), now=context.now()
        )

    @app.callback(
        Output(SERVICE_RESULT_ID, "children"),
        Input(OUT_OF_SERVICE_ID, "n_clicks"),
        Input(RETURN_ID, "n_clicks"),
        State(SELECTED_ID, "data"),
        State(FOCUS_ID, "data"),
        State(COMMENT_ID, "value"),
        prevent_initial_call=True,
    )
    def service(
        _out: object, _back: object, selected: object, focus: object, reason: object
    ) -> str:
        user = acting_user(Permission.REMOVE_ALARMS_FROM_SERVICE)
        if context.alarms is None:
            return "No alarm service."
        names = chosen_alarms(selected, focus)
        if dash.ctx.triggered_id == RETURN_ID:
            return alarm_actions.return_to_service(context.alarms, user, names, _text(reason))
        return alarm_actions.remove_from_service(context.alarms, user, names, _text(reason))

    # Dash's clientside_callback has no type annotations.
    app.clientside_callback(  # type: ignore[no-untyped-call]
        ClientsideFunction(namespace="hmiAlarms", function_name="sound"),
        Output(SOUND_STATE_ID, "children"),
        Input(LOUD_ID, "data"),
        State(SOUND_ID, "value"),
    )


PAGE = Page(
    path="/alarms",
    title="Alarms",
    level=0,
    permission=Permission.VIEW,
    render=render,
    nav_label="Alarms",
    register=register,
)
