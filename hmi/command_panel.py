"""Commands on a faceplate: select-before-operate, the result with its read-back, overrides.

Every writable tag of an asset gets one row: its live value and a Select button. Selecting
reserves the point in the command pipeline (``CommandOperations.select``) and shows what an
operate would act on: the current value and quality, the limits, an interlock that blocks now
and when the selection lapses; then the value, a required reason and an optional override
expiry, and Operate or Cancel. The result shows status, reason and the value read back from the
field. A manual override of the tag is shown with a Release button (reason required).

The page decides nothing: every callback starts with ``acting_user(Permission.COMMAND)`` (a
forged request from a viewer gets 403 and is journaled), and the pipeline checks role, area,
limits, interlocks and the selection again. Its refusals are shown as text. Controls are
disabled, not hidden, for roles without the permission, so a viewer sees what exists.

One set of pattern-matching callbacks (ids like ``{"type": "cmd-select", "tag": name}``) serves
every tag of every faceplate; the selection id lives in a per-tag ``dcc.Store`` on the page, so
it belongs to one browser tab.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import dash
from dash import MATCH, Input, Output, State, dcc, html

from controlcenter.model import (
    CommandResult,
    CommandStatus,
    DataType,
    Override,
    Selection,
    TagDef,
    User,
    Value,
)
from controlcenter.permissions import Permission, allows
from hmi.context import HmiContext
from hmi.formatting import NO_VALUE, format_value, quality_text
from hmi.guard import acting_user
from hmi.live import data_attributes, live_value

SELECT = "cmd-select"
SELECTION = "cmd-selection"
AREA = "cmd-area"
VALUE = "cmd-value"
REASON = "cmd-reason"
UNTIL = "cmd-until"
OPERATE = "cmd-operate"
CANCEL = "cmd-cancel"
MESSAGE = "cmd-message"
OVERRIDE = "cmd-override"
RELEASE = "cmd-release"
RELEASE_REASON = "cmd-release-reason"
RELEASE_MESSAGE = "cmd-release-message"

MAX_REASON = 500
"""Longest reason kept (the journal keeps reasons of this length)."""
MAX_OVERRIDE_MINUTES = 7 * 24 * 60
"""Longest override expiry an operator can give here: a week."""
MAX_TAG_NAME = 200

_FAILED = (PermissionError, LookupError, ValueError, TimeoutError, RuntimeError)
"""What the pipeline raises when it refuses (role, area, selection, limits) or cannot answer."""


def pid(kind: str, tag: object) -> dict[str, Any]:
    """The pattern-matching id of one part of one tag's command row."""
    return {"type": kind, "tag": tag}


def bool_words(tag: TagDef) -> tuple[str, str]:
    """The words of a boolean command's two values: Start/Stop for run commands, else On/Off."""
    last = tag.name.rsplit(".", 1)[-1]
    if last.endswith(("run_cmd", "pump_cmd")) or last == "fan":
        return "Start", "Stop"
    if last.endswith("_manual"):
        return "Manual", "Auto"
    return "On", "Off"


def command_panel(
    context: HmiContext, user: User, tags: Sequence[TagDef], *, title: str = "Commands"
) -> Any:
    """The commands section of a faceplate: one row per writable tag of ``tags``."""
    writable = [tag for tag in tags if tag.writable]
    if not writable:
        return html.Section(
            [html.H2(title), html.P("This asset has no commandable points.")],
            className="panel cmd-panel",
        )
    if context.commands is None:
        return html.Section(
            [html.H2(title), html.P("Commands are not available on this center.")],
            className="panel cmd-panel",
        )
    allowed = allows(user, Permission.COMMAND)
    try:
        overrides = {override.tag: override for override in context.commands.overrides()}
    except _FAILED as err:
        overrides = {}
        note: Any = html.P(f"Overrides unknown: {err}", className="cmd-error")
    else:
        note = None
    header: list[Any] = [html.H2(title)]
    if not allowed:
        header.append(
            html.P(
                f"{user.name} ({user.role.value}) may look but not command: "
                "the controls are disabled.",
                className="cmd-not-permitted",
            )
        )
    if note is not None:
        header.append(note)
    rows = [command_row(context, tag, overrides.get(tag.name), allowed) for tag in writable]
    return html.Section(
        [*header, html.Div(rows, className="cmd-rows")], className="panel cmd-panel"
    )


def command_row(context: HmiContext, tag: TagDef, override: Override | None, allowed: bool) -> Any:
    """One writable tag: label, live value, Select, and the places the steps are drawn in."""
    label = tag.description or tag.name.rsplit(".", 1)[-1]
    return html.Div(
        [
            html.Div(
                [
                    html.Span(label, className="cmd-label"),
                    html.Code(tag.name, className="cmd-tag"),
                    live_value(context.live, tag),
                    html.Button(
                        "Select",
                        id=pid(SELECT, tag.name),
                        className="cmd-select",
                        disabled=not allowed,
                        title="Reserve the point and see what an operate would act on"
                        if allowed
                        else "Your role may not command",
                        **data_attributes({"data-cmd-tag": tag.name}),
                    ),
                ],
                className="cmd-head",
            ),
            dcc.Store(id=pid(SELECTION, tag.name), data=None),
            html.Div(id=pid(AREA, tag.name), className="cmd-area"),
            html.Div(
                render_override(context, tag.name, override, allowed),
                id=pid(OVERRIDE, tag.name),
                className="cmd-override",
            ),
        ],
        className="cmd-row",
        **data_attributes({"data-cmd-tag": tag.name}),
    )


# --- what each step shows ------------------------------------------------------------------------


def limits_text(selection: Selection) -> str:
    """The limits of a selected point in one line (range, largest step, shortest interval)."""
    limits = selection.limits
    parts: list[str] = [limits.data_type.value]
    if limits.low is not None or limits.high is not None:
        low = "" if limits.low is None else f"{limits.low:g}"
        high = "" if limits.high is None else f"{limits.high:g}"
        parts.append(f"range {low} to {high} {limits.unit}".rstrip())
    if limits.max_step is not None:
        parts.append(f"at most {limits.max_step:g} {limits.unit} per command".replace("  ", " "))
    if limits.min_command_interval_s > 0:
        parts.append(f"at most one command per {limits.min_command_interval_s:g} s")
    return ", ".join(parts)


def value_control(tag: TagDef, selection: Selection) -> Any:
    """The value input for the selected tag's type: two choices for a boolean, a number within
    the limits for a numeric tag, text otherwise."""
    if tag.data_type is DataType.BOOL:
        on, off = bool_words(tag)
        return dcc.RadioItems(
            id=pid(VALUE, tag.name),
            options=[{"label": on, "value": "true"}, {"label": off, "value": "false"}],
            value=None,
            className="cmd-bool",
            inputClassName="cmd-bool-input",
            labelClassName="cmd-bool-choice",
            inline=True,
        )
    if tag.data_type in (DataType.INT, DataType.FLOAT):
        limits = selection.limits
        current = selection.current.value if selection.current is not None else None
        start = (
            current if isinstance(current, int | float) and not isinstance(current, bool) else None
        )
        return dcc.Input(
            id=pid(VALUE, tag.name),
            type="number",
            min=limits.low,
            max=limits.high,
            step=1 if tag.data_type is DataType.INT else "any",
            value=start,
            className="cmd-number",
            debounce=False,
        )
    return dcc.Input(id=pid(VALUE, tag.name), type="text", value="", className="cmd-text")


def render_selection(context: HmiContext, tag: TagDef, selection: Selection) -> Any:
    """What a selection shows: the point now, its limits, a blocking interlock, the expiry,
    then the value, reason and override expiry inputs and Operate / Cancel."""
    current = selection.current
    now_text = (
        NO_VALUE
        if current is None
        else f"{format_value(current.value)} {tag.unit}".strip()
        + f" ({quality_text(current.quality)})"
    )
    interlock: Any = (
        html.P(
            f"Interlock blocks now: {selection.blocking_interlock}",
            className="cmd-interlock abnormal",
        )
        if selection.blocking_interlock
        else html.P("No interlock blocks now.", className="cmd-interlock-none")
    )
    return html.Div(
        [
            html.Dl(
                [
                    html.Dt("Selected"),
                    html.Dd(
                        f"by {selection.user} until {context.local_text(selection.expires_at)}",
                        className="cmd-expiry",
                    ),
                    html.Dt("Now"),
                    html.Dd(now_text, className="cmd-current"),
                    html.Dt("Limits"),
                    html.Dd(limits_text(selection), className="cmd-limits"),
                ],
                className="cmd-facts",
            ),
            interlock,
            html.Div(
                [
                    html.Label(["Value ", value_control(tag, selection)], className="cmd-field"),
                    html.Label(
                        [
                            "Reason ",
                            dcc.Input(
                                id=pid(REASON, tag.name),
                                type="text",
                                value="",
                                maxLength=MAX_REASON,
                                placeholder="why (required)",
                                className="cmd-reason",
                            ),
                        ],
                        className="cmd-field",
                    ),
                    html.Label(
                        [
                            "Override ends after ",
                            dcc.Input(
                                id=pid(UNTIL, tag.name),
                                type="number",
                                min=1,
                                max=MAX_OVERRIDE_MINUTES,
                                step=1,
                                value=None,
                                placeholder="until released",
                                className="cmd-until",
                            ),
                            " min",
                        ],
                        className="cmd-field",
                    ),
                ],
                className="cmd-inputs",
            ),
            html.Div(
                [
                    html.Button("Operate", id=pid(OPERATE, tag.name), className="cmd-operate"),
                    html.Button("Cancel", id=pid(CANCEL, tag.name), className="cmd-cancel"),
                ],
                className="cmd-buttons",
            ),
            html.Div(id=pid(MESSAGE, tag.name), className="cmd-message"),
        ],
        className="cmd-selection",
    )


def render_result(context: HmiContext, result: CommandResult, until: datetime | None) -> Any:
    """A command's outcome: status, reason and the read-back value."""
    tag = context.tags_by_name().get(result.command.tag)
    unit = tag.unit if tag is not None else ""
    readback = (
        NO_VALUE if result.readback is None else f"{format_value(result.readback)} {unit}".strip()
    )
    normal = result.status is CommandStatus.CONFIRMED
    lines: list[Any] = [
        html.Span(result.status.value.replace("_", " ").upper(), className="cmd-status"),
        html.Span(f" {format_value(result.command.value)} {unit}".rstrip(), className="cmd-sent"),
        html.Span(f" — {result.reason}" if result.reason else "", className="cmd-reason-text"),
        html.Div(["Read back: ", html.Span(readback, className="cmd-readback")]),
        html.Div(f"at {context.local_text(result.completed_at)}", className="cmd-time"),
    ]
    if normal:
        lines.append(
            html.Div(
                "Manual override "
                + (f"until {context.local_text(until)}" if until else "until released"),
                className="cmd-override-note",
            )
        )
    return html.Div(
        lines,
        className=f"cmd-result status-{result.status.value}{'' if normal else ' abnormal'}",
    )


def render_override(context: HmiContext, tag: str, override: Override | None, allowed: bool) -> Any:
    """A tag's manual override with its Release control (empty when there is none)."""
    if override is None:
        return []
    ends = f"until {context.local_text(override.until)}" if override.until else "until released"
    return html.Div(
        [
            html.Span("MANUAL OVERRIDE", className="cmd-override-flag"),
            html.Span(
                f" {format_value(override.value)} by {override.user} since "
                f"{context.local_text(override.since)}, {ends}: {override.reason}",
                className="cmd-override-text",
            ),
            dcc.Input(
                id=pid(RELEASE_REASON, tag),
                type="text",
                value="",
                maxLength=MAX_REASON,
                placeholder="why release (required)",
                disabled=not allowed,
                className="cmd-release-reason",
            ),
            html.Button(
                "Release",
                id=pid(RELEASE, tag),
                disabled=not allowed,
                className="cmd-release",
                **data_attributes({"data-cmd-tag": tag}),
            ),
            html.Span(id=pid(RELEASE_MESSAGE, tag), className="cmd-release-message"),
        ],
        className="cmd-override-active",
    )


# --- reading what the page sent ------------------------------------------------------------------


def parse_value(tag: TagDef, raw: object) -> Value:
    """The commanded value from the value input; raises ValueError saying what is wrong."""
    if raw is None or raw == "":
        raise ValueError("choose a value")
    if tag.data_type is DataType.BOOL:
        if raw in ("true", True):
            return True
        if raw in ("false", False):
            return False
        raise ValueError(f"not a choice for {tag.name}: {raw!r}")
    if tag.data_type in (DataType.INT, DataType.FLOAT):
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ValueError(f"not a number: {raw!r}")
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"not a number: {raw!r}") from None
        if not math.isfinite(number):
            raise ValueError("the value must be a finite number")
        if tag.data_type is DataType.INT:
            if not number.is_integer():
                raise ValueError(f"{tag.name} takes whole numbers")
            return int(number)
        return number
    if not isinstance(raw, str):
        raise ValueError(f"not text: {raw!r}")
    return raw


def parse_reason(raw: object) -> str:
    """The reason, stripped; raises ValueError when it is missing."""
    reason = raw.strip() if isinstance(raw, str) else ""
    if not reason:
        raise ValueError("a reason is required")
    return reason[:MAX_REASON]


def parse_until(raw: object, selected_at: datetime) -> datetime | None:
    """The override's end from its minutes (counted from the selection, on the center's clock);
    None when empty; raises ValueError for anything but 1 to a week of minutes."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"override minutes must be a number: {raw!r}")
    if not math.isfinite(raw) or not 1 <= raw <= MAX_OVERRIDE_MINUTES:
        raise ValueError(f"override minutes must be between 1 and {MAX_OVERRIDE_MINUTES}")
    return selected_at + timedelta(minutes=float(raw))


def _triggered_tag() -> str:
    triggered = dash.ctx.triggered_id
    tag = triggered.get("tag") if isinstance(triggered, Mapping) else None
    if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_NAME:
        raise dash.exceptions.PreventUpdate
    return tag


def _triggered_type() -> str:
    triggered = dash.ctx.triggered_id
    kind = triggered.get("type") if isinstance(triggered, Mapping) else None
    return kind if isinstance(kind, str) else ""


def _stored(data: object) -> tuple[str, datetime] | None:
    """The selection id and time kept in the page's store (None when there is none or the
    page sent something else)."""
    if not isinstance(data, Mapping):
        return None
    selection_id, at = data.get("id"), data.get("at")
    if not isinstance(selection_id, str) or not isinstance(at, str):
        return None
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return None
    if moment.utcoffset() is None:
        return None
    return selection_id, moment


def _error(text: str) -> Any:
    return html.Div(text, className="cmd-error abnormal")


# --- the callbacks -------------------------------------------------------------------------------


def register(app: dash.Dash, context: HmiContext) -> None:
    """Add the command callbacks (once; they serve every faceplate)."""

    @app.callback(
        Output(pid(AREA, MATCH), "children"),
        Output(pid(SELECTION, MATCH), "data"),
        Input(pid(SELECT, MATCH), "n_clicks"),
        prevent_initial_call=True,
    )
    def select(_clicks: int | None) -> tuple[Any, Any]:
        user = acting_user(Permission.COMMAND)
        return select_point(context, user, _triggered_tag())

    @app.callback(
        Output(pid(AREA, MATCH), "children", allow_duplicate=True),
        Output(pid(MESSAGE, MATCH), "children"),
        Output(pid(SELECTION, MATCH), "data", allow_duplicate=True),
        Output(pid(OVERRIDE, MATCH), "children", allow_duplicate=True),
        Input(pid(OPERATE, MATCH), "n_clicks"),
        Input(pid(CANCEL, MATCH), "n_clicks"),
        State(pid(VALUE, MATCH), "value"),
        State(pid(REASON, MATCH), "value"),
        State(pid(UNTIL, MATCH), "value"),
        State(pid(SELECTION, MATCH), "data"),
        prevent_initial_call=True,
    )
    def operate(
        _operate: int | None,
        _cancel: int | None,
        value: object,
        reason: object,
        until: object,
        stored: object,
    ) -> tuple[Any, Any, Any, Any]:
        user = acting_user(Permission.COMMAND)
        tag = _triggered_tag()
        if _triggered_type() == CANCEL:
            return cancel_selection(context, user, tag, stored)
        return operate_selection(context, user, tag, value, reason, until, stored)

    @app.callback(
        Output(pid(OVERRIDE, MATCH), "children", allow_duplicate=True),
        Output(pid(RELEASE_MESSAGE, MATCH), "children"),
        Input(pid(RELEASE, MATCH), "n_clicks"),
        State(pid(RELEASE_REASON, MATCH), "value"),
        prevent_initial_call=True,
    )
    def release(_clicks: int | None, reason: object) -> tuple[Any, Any]:
        user = acting_user(Permission.COMMAND)
        return release_override(context, user, _triggered_tag(), reason)


def select_point(context: HmiContext, user: User, tag_name: str) -> tuple[Any, Any]:
    """Select ``tag_name`` for ``user``: the selection's panel and the data for the store."""
    if context.commands is None:
        return _error("Commands are not available on this center."), None
    tag = context.tags_by_name().get(tag_name)
    if tag is None:
        return _error(f"Unknown point {tag_name}."), None
    try:
        selection = context.commands.select(tag_name, user)
    except _FAILED as err:
        return _error(f"Select refused: {err}"), None
    stored = {"id": selection.selection_id, "at": selection.selected_at.isoformat()}
    return render_selection(context, tag, selection), stored


def operate_selection(
    context: HmiContext,
    user: User,
    tag_name: str,
    raw_value: object,
    raw_reason: object,
    raw_until: object,
    stored: object,
) -> tuple[Any, Any, Any, Any]:
    """Operate the stored selection: (area, message, store, override) for the callback.
    Input mistakes keep the form and say what is wrong; the pipeline's answer replaces it."""
    keep = dash.no_update
    if context.commands is None:
        return keep, _error("Commands are not available on this center."), keep, keep
    tag = context.tags_by_name().get(tag_name)
    selection = _stored(stored)
    if tag is None or selection is None:
        return keep, _error("Nothing selected: select the point first."), None, keep
    selection_id, selected_at = selection
    try:
        value = parse_value(tag, raw_value)
        reason = parse_reason(raw_reason)
        until = parse_until(raw_until, selected_at)
    except ValueError as err:
        return keep, _error(f"Cannot operate: {err}."), keep, keep
    try:
        result = context.commands.operate(selection_id, user, value, reason, until=until)
    except _FAILED as err:
        return _error(f"Operate refused: {err}"), keep, None, keep
    return (
        render_result(context, result, until),
        keep,
        None,
        _current_override(context, tag_name, allowed=True),
    )


def cancel_selection(
    context: HmiContext, user: User, tag_name: str, stored: object
) -> tuple[Any, Any, Any, Any]:
    """Cancel the stored selection: (area, message, store, override) for the callback."""
    keep = dash.no_update
    selection = _stored(stored)
    if context.commands is None or selection is None:
        return html.P("Nothing selected."), keep, None, keep
    try:
        context.commands.cancel(selection[0], user)
    except _FAILED as err:
        return _error(f"Cancel: {err}"), keep, None, keep
    return (
        html.P(f"Selection of {tag_name} cancelled.", className="cmd-cancelled"),
        keep,
        None,
        keep,
    )


def release_override(
    context: HmiContext, user: User, tag_name: str, raw_reason: object
) -> tuple[Any, Any]:
    """Release ``tag_name``'s override: (override, message) for the callback."""
    keep = dash.no_update
    if context.commands is None:
        return keep, "Commands are not available on this center."
    try:
        reason = parse_reason(raw_reason)
    except ValueError as err:
        return keep, f"Cannot release: {err}."
    try:
        result = context.commands.release(tag_name, user, reason)
    except _FAILED as err:
        return keep, f"Release refused: {err}"
    after = (
        "no other writer: the point keeps its value"
        if result is None
        else f"control returned: {result.status.value}, read back {format_value(result.readback)}"
    )
    return html.P(f"Override of {tag_name} released ({after}).", className="cmd-released"), keep


def _current_override(context: HmiContext, tag: str, *, allowed: bool) -> Any:
    if context.commands is None:
        return []
    try:
        overrides = context.commands.overrides()
    except _FAILED:
        return []
    found = next((o for o in overrides if o.tag == tag), None)
    return render_override(context, tag, found, allowed)
