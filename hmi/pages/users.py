"""Users (administrators): list users; add one; disable, enable, change a role, reset a password.

Every action goes through the center's user administration (``HmiContext.users``), which
checks the permission again, refuses an administrator's own lockout, requires a reason and
journals who did what to whom, and why. The display only collects the request and shows the
outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dash
from dash import Input, Output, State, ctx, dcc, html

from controlcenter.model import Role, User
from controlcenter.permissions import Permission
from controlcenter.ports import UserAccount, UserAdministration
from hmi.context import HmiContext
from hmi.guard import acting_user
from hmi.page import Page, PageRequest

TABLE_ID = "users-table"
ADD_NAME_ID = "users-add-name"
ADD_ROLE_ID = "users-add-role"
ADD_AREAS_ID = "users-add-areas"
ADD_PASSWORD_ID = "users-add-password"
ADD_REASON_ID = "users-add-reason"
ADD_BUTTON_ID = "users-add"
ADD_MESSAGE_ID = "users-add-message"
TARGET_ID = "users-target"
ACTION_ID = "users-action"
NEW_ROLE_ID = "users-new-role"
NEW_PASSWORD_ID = "users-new-password"
CHANGE_REASON_ID = "users-change-reason"
CHANGE_BUTTON_ID = "users-change"
CHANGE_MESSAGE_ID = "users-change-message"

DISABLE = "disable"
ENABLE = "enable"
SET_ROLE = "role"
RESET_PASSWORD = "password"
ACTIONS = {
    DISABLE: "Disable",
    ENABLE: "Enable",
    SET_ROLE: "Change role",
    RESET_PASSWORD: "Reset password",
}
MAX_FIELD = 1024
"""Longest text taken from a field (a password's own limit); longer input is refused."""


def render_table(accounts: Sequence[UserAccount]) -> Any:
    """The users table: name, role, areas, status."""
    header = html.Tr([html.Th(text) for text in ("User", "Role", "Areas", "Status")])
    rows = [
        html.Tr(
            className="users-row admin-disabled" if account.disabled else "users-row",
            children=[
                html.Td(account.user.name, className="users-name"),
                html.Td(account.user.role.value, className="users-role"),
                html.Td(", ".join(account.user.areas) or "every area"),
                html.Td("Disabled" if account.disabled else "Active", className="users-status"),
            ],
        )
        for account in accounts
    ]
    return html.Table(className="admin-table", children=[html.Thead(header), html.Tbody(rows)])


def _role_options() -> list[dict[str, str]]:
    return [{"label": role.value, "value": role.value} for role in Role]


def _target_options(accounts: Sequence[UserAccount]) -> list[dict[str, str]]:
    return [{"label": a.user.name, "value": a.user.name} for a in accounts]


def _field(label: str, control: Any) -> Any:
    return html.Label([label, control])


def render(context: HmiContext, user: User, request: PageRequest) -> Any:
    """The users display."""
    if context.users is None:
        return html.Section(
            className="panel", children=[html.H2("Users"), html.P("No user administration.")]
        )
    accounts = context.users.accounts(user)
    return html.Section(
        className="panel users",
        children=[
            html.H2("Users"),
            html.Div(render_table(accounts), id=TABLE_ID),
            html.H3("Add a user"),
            html.Div(
                className="admin-form",
                children=[
                    _field("Name", dcc.Input(id=ADD_NAME_ID, type="text", maxLength=64)),
                    _field(
                        "Role",
                        dcc.Dropdown(
                            id=ADD_ROLE_ID,
                            options=_role_options(),
                            value=Role.VIEWER.value,
                            clearable=False,
                            className="admin-choice",
                        ),
                    ),
                    _field(
                        "Areas (comma separated; none: every area)",
                        dcc.Input(id=ADD_AREAS_ID, type="text"),
                    ),
                    _field(
                        "Initial password",
                        dcc.Input(id=ADD_PASSWORD_ID, type="password", autoComplete="new-password"),
                    ),
                    _field("Reason", dcc.Input(id=ADD_REASON_ID, type="text")),
                    html.Button("Add user", id=ADD_BUTTON_ID),
                ],
            ),
            html.Div(id=ADD_MESSAGE_ID, className="admin-message"),
            html.H3("Change a user"),
            html.Div(
                className="admin-form",
                children=[
                    _field(
                        "User",
                        dcc.Dropdown(
                            id=TARGET_ID,
                            options=_target_options(accounts),
                            className="admin-choice",
                        ),
                    ),
                    _field(
                        "Action",
                        dcc.Dropdown(
                            id=ACTION_ID,
                            options=[{"label": t, "value": v} for v, t in ACTIONS.items()],
                            value=DISABLE,
                            clearable=False,
                            className="admin-choice",
                        ),
                    ),
                    _field(
                        "New role",
                        dcc.Dropdown(
                            id=NEW_ROLE_ID,
                            options=_role_options(),
                            className="admin-choice",
                        ),
                    ),
                    _field(
                        "New password",
                        dcc.Input(id=NEW_PASSWORD_ID, type="password", autoComplete="new-password"),
                    ),
                    _field("Reason", dcc.Input(id=CHANGE_REASON_ID, type="text")),
                    html.Button("Apply", id=CHANGE_BUTTON_ID),
                ],
            ),
            html.Div(id=CHANGE_MESSAGE_ID, className="admin-message"),
        ],
    )


def _text(value: object) -> str:
    """A field's text; anything else a forged request sends is empty."""
    return value[:MAX_FIELD] if isinstance(value, str) else ""


def _message(text: str, *, refused: bool) -> Any:
    return html.Div(
        text,
        className="admin-message refused" if refused else "admin-message done",
        role="status",
    )


def add_user(
    service: UserAdministration,
    actor: User,
    name: object,
    role: object,
    areas: object,
    password: object,
    reason: object,
) -> tuple[str, bool]:
    """Add a user as ``actor``; the outcome's text and whether it was refused."""
    try:
        chosen = Role(_text(role))
    except ValueError:
        return "choose a role", True
    area_names = [part.strip() for part in _text(areas).split(",") if part.strip()]
    try:
        account = service.add_user(
            actor, _text(name).strip(), chosen, area_names, _text(password), _text(reason)
        )
    except ValueError as err:
        return f"refused: {err}", True
    return f"added user {account.user.name} ({account.user.role.value})", False


def change_user(
    service: UserAdministration,
    actor: User,
    target: object,
    action: object,
    role: object,
    password: object,
    reason: object,
) -> tuple[str, bool]:
    """Disable, enable, re-role or reset the password of ``target``; the outcome's text and
    whether it was refused."""
    name = _text(target)
    if not name:
        return "choose a user", True
    try:
        if action == DISABLE:
            service.disable_user(actor, name, _text(reason))
            return f"disabled {name}: their sessions have ended", False
        if action == ENABLE:
            service.enable_user(actor, name, _text(reason))
            return f"enabled {name}", False
        if action == SET_ROLE:
            try:
                chosen = Role(_text(role))
            except ValueError:
                return "choose the new role", True
            service.set_role(actor, name, chosen, _text(reason))
            return f"{name} is now {chosen.value}", False
        if action == RESET_PASSWORD:
            service.reset_password(actor, name, _text(password), _text(reason))
            return f"reset the password of {name}: their sessions have ended", False
    except ValueError as err:
        return f"refused: {err}", True
    return "choose an action", True


def register(app: dash.Dash, context: HmiContext) -> None:
    """The add and change buttons."""

    @app.callback(
        Output(TABLE_ID, "children"),
        Output(TARGET_ID, "options"),
        Output(ADD_MESSAGE_ID, "children"),
        Output(CHANGE_MESSAGE_ID, "children"),
        Output(ADD_PASSWORD_ID, "value"),
        Output(NEW_PASSWORD_ID, "value"),
        Input(ADD_BUTTON_ID, "n_clicks"),
        Input(CHANGE_BUTTON_ID, "n_clicks"),
        State(ADD_NAME_ID, "value"),
        State(ADD_ROLE_ID, "value"),
        State(ADD_AREAS_ID, "value"),
        State(ADD_PASSWORD_ID, "value"),
        State(ADD_REASON_ID, "value"),
        State(TARGET_ID, "value"),
        State(ACTION_ID, "value"),
        State(NEW_ROLE_ID, "value"),
        State(NEW_PASSWORD_ID, "value"),
        State(CHANGE_REASON_ID, "value"),
        prevent_initial_call=True,
    )
    def act(
        _add: int | None,
        _change: int | None,
        name: object,
        role: object,
        areas: object,
        password: object,
        reason: object,
        target: object,
        action: object,
        new_role: object,
        new_password: object,
        change_reason: object,
    ) -> tuple[Any, ...]:
        actor = acting_user(Permission.ADMINISTER_USERS)
        service = context.users
        if service is None:
            raise dash.exceptions.PreventUpdate
        add_message: Any = dash.no_update
        change_message: Any = dash.no_update
        if ctx.triggered_id == ADD_BUTTON_ID:
            text, refused = add_user(service, actor, name, role, areas, password, reason)
            add_message = _message(text, refused=refused)
        elif ctx.triggered_id == CHANGE_BUTTON_ID:
            text, refused = change_user(
                service, actor, target, action, new_role, new_password, change_reason
            )
            change_message = _message(text, refused=refused)
        else:
            raise dash.exceptions.PreventUpdate
        accounts = service.accounts(actor)
        # Passwords never stay in the form once used.
        return (
            render_table(accounts),
            _target_options(accounts),
            add_message,
            change_message,
            "",
            "",
        )


PAGE = Page(
    path="/users",
    title="Users",
    level=0,
    permission=Permission.ADMINISTER_USERS,
    render=render,
    nav_label="Users",
    register=register,
)
