"""Rules (engineers): the running rule set's live state, its stored versions and their diff;
edit a rule file of the running version, validate it, backtest it and apply it; roll back.

Everything is done by the center's rule operations (``HmiContext.rules``), the same service
the command line's checks and deployment are built on: the display collects the request and
shows the outcome. Validating and backtesting need the edit permission; applying and rolling
back the apply permission, checked on the server for every request. A backtest runs as a job
in a worker thread: the display polls its progress once a second while it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import dash
from dash import Input, Output, State, ctx, dcc, html

from controlcenter.model import User
from controlcenter.permissions import Permission, allows
from controlcenter.ports import (
    BacktestJob,
    BacktestJobStatus,
    RuleApplyOutcome,
    RuleLiveState,
    RuleOperations,
    RuleSource,
    RuleVersion,
    RuleVersionStatus,
)
from hmi.context import HmiContext
from hmi.guard import acting_user
from hmi.page import Page, PageRequest

STATE_ID = "rules-state"
STATE_REFRESH_ID = "rules-state-refresh"
VERSIONS_ID = "rules-versions"
DIFF_FROM_ID = "rules-diff-from"
DIFF_TO_ID = "rules-diff-to"
DIFF_BUTTON_ID = "rules-diff"
DIFF_OUTPUT_ID = "rules-diff-output"
FILE_ID = "rules-file"
EDITOR_ID = "rules-editor"
VALIDATE_ID = "rules-validate"
VALIDATION_ID = "rules-validation"
BACKTEST_HOURS_ID = "rules-backtest-hours"
BACKTEST_ID = "rules-backtest"
BACKTEST_JOB_ID = "rules-backtest-job"
BACKTEST_POLL_ID = "rules-backtest-poll"
BACKTEST_OUTPUT_ID = "rules-backtest-output"
REASON_ID = "rules-reason"
APPLY_ID = "rules-apply"
ROLLBACK_TO_ID = "rules-rollback-to"
ROLLBACK_ID = "rules-rollback"
OUTCOME_ID = "rules-outcome"

STATE_REFRESH_MS = 5_000
BACKTEST_POLL_MS = 1_000
DEFAULT_BACKTEST_HOURS = 24.0
MAX_BACKTEST_HOURS = 24.0 * 31
MAX_RULE_TEXT = 1_000_000
"""Longest rule file text taken from the editor (the site file size limit's order)."""


# --- drawing ------------------------------------------------------------------------------


def render_states(context: HmiContext, states: Sequence[RuleLiveState]) -> Any:
    """The live state table: rule, enabled, holding, last trigger, last action."""
    header = html.Tr(
        [html.Th(t) for t in ("Rule", "Enabled", "State", "Last trigger", "Last action")]
    )
    rows = []
    for state in states:
        if not state.enabled:
            status: Any = "disabled"
        elif state.held is not None:
            status = html.Span(f"Holding: {state.held}", className="rules-held abnormal")
        else:
            status = "acting"
        action = (
            f"{context.local_text(state.last_action_at)}: {state.last_action}"
            if state.last_action_at is not None
            else "-"
        )
        rows.append(
            html.Tr(
                className="rules-row",
                children=[
                    html.Td(state.name, className="rules-name"),
                    html.Td("yes" if state.enabled else "no"),
                    html.Td(status),
                    html.Td(context.local_text(state.last_fired) if state.last_fired else "-"),
                    html.Td(action),
                ],
            )
        )
    if not rows:
        rows = [html.Tr(html.Td("No rule set runs.", colSpan=5))]
    return html.Table(className="admin-table", children=[html.Thead(header), html.Tbody(rows)])


def render_versions(
    context: HmiContext, versions: Sequence[RuleVersion], running: int | None
) -> Any:
    """The stored versions, newest first: version, author, time, reason, status."""
    header = html.Tr([html.Th(t) for t in ("Version", "Author", "Stored", "Reason", "Status")])
    rows = [
        html.Tr(
            className="rules-version",
            children=[
                html.Td(f"v{v.version}" + (" (running)" if v.version == running else "")),
                html.Td(v.author),
                html.Td(context.local_text(v.created_at)),
                html.Td(v.reason),
                html.Td(
                    v.status.value
                    + (f": {v.detail}" if v.status is RuleVersionStatus.REFUSED else ""),
                    className="abnormal" if v.status is RuleVersionStatus.REFUSED else "",
                ),
            ],
        )
        for v in reversed(versions)
    ]
    return html.Table(className="admin-table", children=[html.Thead(header), html.Tbody(rows)])


def _version_options(versions: Sequence[RuleVersion]) -> list[dict[str, Any]]:
    return [
        {"label": f"v{v.version} ({v.status.value})", "value": v.version}
        for v in reversed(versions)
    ]


def render_outcome(outcome: RuleApplyOutcome) -> Any:
    """What came of an apply or rollback, in words."""
    version = outcome.version
    if version is None:
        return _message("refused, nothing stored:\n" + "\n".join(outcome.problems), True)
    if version.status is RuleVersionStatus.ACTIVE:
        return _message(f"rule set v{version.version} applied: it runs now", False)
    if version.status is RuleVersionStatus.REFUSED:
        return _message(f"the center refused rule set v{version.version}:\n{version.detail}", True)
    return _message(
        f"rule set v{version.version} stored; the center has not taken it up yet", False
    )


def render_job(job: BacktestJob) -> Any:
    """A backtest's progress or report."""
    if job.status is BacktestJobStatus.RUNNING:
        return html.Div(f"backtest running: {job.progress * 100:.0f}%", className="admin-message")
    if job.status is BacktestJobStatus.FAILED:
        return _message(f"backtest failed: {job.error}", True)
    return html.Pre(job.report, className="rules-output")


def _message(text: str, refused: bool) -> Any:
    return html.Div(
        text, className="admin-message refused" if refused else "admin-message done", role="status"
    )


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The rules display."""
    service = context.rules
    if service is None:
        return html.Section(
            className="panel", children=[html.H2("Rules"), html.P("No rule operations.")]
        )
    running = service.running_version()
    versions = service.versions()
    sources = running.sources if running is not None else ()
    may_apply = allows(user, Permission.APPLY_RULES)
    options = _version_options(versions)
    return html.Section(
        className="panel rules rules-grid",
        children=[
            html.H2("Rules"),
            html.Div(render_states(context, service.live_states()), id=STATE_ID),
            dcc.Interval(id=STATE_REFRESH_ID, interval=STATE_REFRESH_MS),
            html.H3("Versions"),
            html.Div(
                render_versions(context, versions, running.version if running else None),
                id=VERSIONS_ID,
            ),
            html.Div(
                className="admin-form",
                children=[
                    html.Label(
                        [
                            "From",
                            dcc.Dropdown(
                                id=DIFF_FROM_ID, options=options, className="admin-choice"
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "To",
                            dcc.Dropdown(id=DIFF_TO_ID, options=options, className="admin-choice"),
                        ]
                    ),
                    html.Button("Diff", id=DIFF_BUTTON_ID),
                ],
            ),
            html.Pre(id=DIFF_OUTPUT_ID, className="rules-output"),
            html.H3("Edit the running rule set"),
            html.Div(
                className="admin-form",
                children=[
                    html.Label(
                        [
                            "Rule file",
                            dcc.Dropdown(
                                id=FILE_ID,
                                options=[{"label": s.name, "value": s.name} for s in sources],
                                value=sources[0].name if sources else None,
                                clearable=False,
                                className="admin-choice",
                            ),
                        ]
                    ),
                ],
            ),
            dcc.Textarea(
                id=EDITOR_ID,
                value=sources[0].text if sources else "",
                className="rules-editor",
                spellCheck=False,
            ),
            html.Div(
                className="admin-form",
                children=[
                    html.Button("Validate", id=VALIDATE_ID),
                    html.Label(
                        [
                            "Backtest over the last hours",
                            dcc.Input(
                                id=BACKTEST_HOURS_ID,
                                type="number",
                                min=0.1,
                                max=MAX_BACKTEST_HOURS,
                                value=DEFAULT_BACKTEST_HOURS,
                            ),
                        ]
                    ),
                    html.Button("Backtest", id=BACKTEST_ID),
                    html.Label(["Reason", dcc.Input(id=REASON_ID, type="text")]),
                    html.Button("Apply", id=APPLY_ID, disabled=not may_apply),
                ],
            ),
            html.Div(id=VALIDATION_ID),
            html.Div(id=BACKTEST_OUTPUT_ID),
            dcc.Store(id=BACKTEST_JOB_ID),
            dcc.Interval(id=BACKTEST_POLL_ID, interval=BACKTEST_POLL_MS, disabled=True),
            html.Div(
                className="admin-form",
                children=[
                    html.Label(
                        [
                            "Roll back to",
                            dcc.Dropdown(
                                id=ROLLBACK_TO_ID, options=options, className="admin-choice"
                            ),
                        ]
                    ),
                    html.Button("Roll back", id=ROLLBACK_ID, disabled=not may_apply),
                ],
            ),
            html.Div(id=OUTCOME_ID),
        ],
    )


# --- requests -----------------------------------------------------------------------------


def edited_sources(
    service: RuleOperations, file_name: object, text: object
) -> tuple[RuleSource, ...] | str:
    """The running version's files with ``file_name``'s text replaced by ``text``, or why not."""
    running = service.running_version()
    if running is None:
        return "no rule set runs: there is no file to edit"
    if not isinstance(text, str) or len(text) > MAX_RULE_TEXT:
        return "the rule text is missing or too long"
    names = [source.name for source in running.sources]
    if not isinstance(file_name, str) or file_name not in names:
        return "choose a rule file of the running version"
    return tuple(
        RuleSource(source.name, text) if source.name == file_name else source
        for source in running.sources
    )


def _version_number(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def register(app: dash.Dash, context: HmiContext) -> None:
    """The display's callbacks, each checking the user's permission first."""

    def service() -> RuleOperations:
        if context.rules is None:
            raise dash.exceptions.PreventUpdate
        return context.rules

    @app.callback(Output(STATE_ID, "children"), Input(STATE_REFRESH_ID, "n_intervals"))
    def refresh_states(_ticks: int | None) -> Any:
        acting_user(Permission.EDIT_RULES)
        return render_states(context, service().live_states())

    @app.callback(Output(EDITOR_ID, "value"), Input(FILE_ID, "value"), prevent_initial_call=True)
    def load_file(file_name: object) -> str:
        acting_user(Permission.EDIT_RULES)
        running = service().running_version()
        for source in running.sources if running is not None else ():
            if source.name == file_name:
                return source.text
        raise dash.exceptions.PreventUpdate

    @app.callback(
        Output(DIFF_OUTPUT_ID, "children"),
        Input(DIFF_BUTTON_ID, "n_clicks"),
        State(DIFF_FROM_ID, "value"),
        State(DIFF_TO_ID, "value"),
        prevent_initial_call=True,
    )
    def diff(_clicks: int | None, older: object, newer: object) -> str:
        acting_user(Permission.EDIT_RULES)
        first, second = _version_number(older), _version_number(newer)
        if first is None or second is None:
            return "choose two versions"
        try:
            return service().diff(first, second) or "no difference"
        except KeyError as err:
            return str(err)

    @app.callback(
        Output(VALIDATION_ID, "children"),
        Input(VALIDATE_ID, "n_clicks"),
        State(FILE_ID, "value"),
        State(EDITOR_ID, "value"),
        prevent_initial_call=True,
    )
    def validate(_clicks: int | None, file_name: object, text: object) -> Any:
        user = acting_user(Permission.EDIT_RULES)
        sources = edited_sources(service(), file_name, text)
        if isinstance(sources, str):
            return _message(sources, True)
        problems = service().validate(user, sources)
        if problems:
            return _message("\n".join(problems), True)
        return _message("valid: the rule set passes every check", False)

    @app.callback(
        Output(BACKTEST_JOB_ID, "data"),
        Output(BACKTEST_POLL_ID, "disabled"),
        Output(BACKTEST_OUTPUT_ID, "children"),
        Input(BACKTEST_ID, "n_clicks"),
        Input(BACKTEST_POLL_ID, "n_intervals"),
        State(FILE_ID, "value"),
        State(EDITOR_ID, "value"),
        State(BACKTEST_HOURS_ID, "value"),
        State(BACKTEST_JOB_ID, "data"),
        prevent_initial_call=True,
    )
    def backtest(
        _clicks: int | None,
        _ticks: int | None,
        file_name: object,
        text: object,
        hours: object,
        job_id: object,
    ) -> tuple[Any, bool, Any]:
        user = acting_user(Permission.EDIT_RULES)
        rules = service()
        if ctx.triggered_id == BACKTEST_POLL_ID:
            if not isinstance(job_id, str):
                return None, True, dash.no_update
            try:
                job = rules.backtest(user, job_id)
            except KeyError:
                return None, True, _message("the backtest is no longer known", True)
            return job_id, job.status is not BacktestJobStatus.RUNNING, render_job(job)
        sources = edited_sources(rules, file_name, text)
        if isinstance(sources, str):
            return None, True, _message(sources, True)
        span = hours if isinstance(hours, int | float) and not isinstance(hours, bool) else 0
        if not 0 < span <= MAX_BACKTEST_HOURS:
            return None, True, _message(f"hours must be between 0 and {MAX_BACKTEST_HOURS:g}", True)
        # The window ends at the newest sample: the center's clock, simulated in the demo.
        end = max(
            (sample.server_time for sample in context.live.snapshot().values()),
            default=None,
        )
        if end is None:
            return None, True, _message("no data yet to replay", True)
        try:
            job = rules.start_backtest(user, sources, end - timedelta(hours=float(span)), end)
        except ValueError as err:
            return None, True, _message(f"backtest refused: {err}", True)
        return job.job_id, False, render_job(job)

    @app.callback(
        Output(OUTCOME_ID, "children"),
        Output(VERSIONS_ID, "children"),
        Input(APPLY_ID, "n_clicks"),
        Input(ROLLBACK_ID, "n_clicks"),
        State(FILE_ID, "value"),
        State(EDITOR_ID, "value"),
        State(REASON_ID, "value"),
        State(ROLLBACK_TO_ID, "value"),
        prevent_initial_call=True,
    )
    def change(
        _apply: int | None,
        _rollback: int | None,
        file_name: object,
        text: object,
        reason: object,
        rollback_to: object,
    ) -> tuple[Any, Any]:
        user = acting_user(Permission.APPLY_RULES)
        rules = service()
        why = reason if isinstance(reason, str) else ""
        if ctx.triggered_id == ROLLBACK_ID:
            number = _version_number(rollback_to)
            if number is None:
                return _message("choose the version to roll back to", True), dash.no_update
            try:
                outcome = rules.rollback(user, number, why)
            except KeyError as err:
                return _message(str(err), True), dash.no_update
        else:
            sources = edited_sources(rules, file_name, text)
            if isinstance(sources, str):
                return _message(sources, True), dash.no_update
            outcome = rules.apply(user, sources, why)
        running = rules.running_version()
        versions = render_versions(context, rules.versions(), running.version if running else None)
        return render_outcome(outcome), versions


PAGE = Page(
    path="/rules",
    title="Rules",
    level=0,
    permission=Permission.EDIT_RULES,
    render=render,
    nav_label="Rules",
    register=register,
)
