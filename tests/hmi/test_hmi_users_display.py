"""Users display: the table, add and change through the administration service, refusals in
words, and the callback refused on the server to anyone but an administrator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from controlcenter.model import Event, EventKind, Role, User
from controlcenter.ports import EventJournal, HistoryReader, LiveView, LoginSessions
from controlcenter.security.administration import UserAdministrationService
from controlcenter.security.users import UserStore
from hmi.page import PageRequest
from hmi.pages.users import PAGE, add_user, change_user
from hmi.server import HmiServer
from tests.hmi.conftest import (
    OPERATOR_NAME,
    OPERATOR_PASSWORD,
    hmi_context,
    serving_context,
)
from tests.hmi.http_support import log_in, send

ADMIN, ADMIN_PASSWORD = "ada", "administrator passphrase 3"
ENGINEER, ENGINEER_PASSWORD = "erik", "engineer passphrase 5"
NEW_PASSWORD = "a fresh quiet passphrase 8"


@pytest.fixture
def service(user_store: UserStore, journal: EventJournal) -> UserAdministrationService:
    user_store.add_user(ADMIN, ADMIN_PASSWORD, Role.ADMIN)
    user_store.add_user(ENGINEER, ENGINEER_PASSWORD, Role.ENGINEER)
    return UserAdministrationService(user_store, journal)


def test_the_display_lists_users_with_role_areas_and_status(
    service: UserAdministrationService,
    live_view: LiveView,
    history: HistoryReader,
    journal: EventJournal,
) -> None:
    actor = User(ADMIN, Role.ADMIN)
    service.disable_user(actor, ENGINEER, "on leave")
    context = hmi_context(live_view, history, journal, users=service)
    page = json.dumps(
        PAGE.render(context, actor, PageRequest("/users")).to_plotly_json(), default=str
    )
    for text in ("ada", "admin", "erik", "Disabled", "olga", "operator", "every area"):
        assert text in page


def test_add_and_change_speak_the_outcome(
    service: UserAdministrationService, user_store: UserStore, journal_events: list[Event]
) -> None:
    actor = User(ADMIN, Role.ADMIN)
    assert add_user(service, actor, "nina", "operator", "north, south", NEW_PASSWORD, "new") == (
        "added user nina (operator)",
        False,
    )
    assert user_store.get_user("nina").areas == ("north", "south")
    text, refused = add_user(service, actor, "nina2", "operator", "", "short", "new")
    assert refused and "at least 12" in text
    text, refused = add_user(service, actor, "x", "superuser", "", NEW_PASSWORD, "new")
    assert refused and text == "choose a role"
    assert change_user(service, actor, "nina", "disable", None, None, "left") == (
        "disabled nina: their sessions have ended",
        False,
    )
    assert user_store.account("nina").disabled
    assert change_user(service, actor, "nina", "role", "maintenance", None, "moved")[1] is False
    assert user_store.get_user("nina").role is Role.MAINTENANCE
    text, refused = change_user(service, actor, ADMIN, "disable", None, None, "oops")
    assert refused and "yourself" in text
    text, refused = change_user(service, actor, "nina", "password", None, NEW_PASSWORD, "")
    assert refused and "reason" in text
    assert change_user(service, actor, "nina", {"x": 1}, None, None, "why") == (
        "choose an action",
        True,
    )
    audits = [e for e in journal_events if e.kind is EventKind.AUDIT and e.user == ADMIN]
    assert any("disabled user nina" in e.message for e in audits)


@pytest.fixture
def users_server(
    service: UserAdministrationService,
    live_view: LiveView,
    history: HistoryReader,
    journal: EventJournal,
    login_sessions: LoginSessions,
) -> Iterator[HmiServer]:
    context = hmi_context(live_view, history, journal, users=service)
    with serving_context(context, login_sessions) as server:
        yield server


OUTPUTS = [
    ("users-table", "children"),
    ("users-target", "options"),
    ("users-add-message", "children"),
    ("users-change-message", "children"),
    ("users-add-password", "value"),
    ("users-new-password", "value"),
]


def change_request(base_url: str, cookie: str, target: str, action: str) -> tuple[int, str]:
    """The change button's callback, sent by hand."""
    state: list[dict[str, Any]] = [
        {"id": "users-add-name", "property": "value", "value": None},
        {"id": "users-add-role", "property": "value", "value": "viewer"},
        {"id": "users-add-areas", "property": "value", "value": None},
        {"id": "users-add-password", "property": "value", "value": None},
        {"id": "users-add-reason", "property": "value", "value": None},
        {"id": "users-target", "property": "value", "value": target},
        {"id": "users-action", "property": "value", "value": action},
        {"id": "users-new-role", "property": "value", "value": "admin"},
        {"id": "users-new-password", "property": "value", "value": None},
        {"id": "users-change-reason", "property": "value", "value": "forged"},
    ]
    payload = {
        "output": ".." + "...".join(f"{i}.{p}" for i, p in OUTPUTS) + "..",
        "outputs": [{"id": i, "property": p} for i, p in OUTPUTS],
        "inputs": [
            {"id": "users-add", "property": "n_clicks", "value": None},
            {"id": "users-change", "property": "n_clicks", "value": 1},
        ],
        "state": state,
        "changedPropIds": ["users-change.n_clicks"],
    }
    reply = send(
        base_url,
        "POST",
        "/_dash-update-component",
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        cookie=cookie,
    )
    return reply.status, reply.body.decode()


def test_a_forged_change_by_an_operator_or_engineer_is_refused(
    users_server: HmiServer, user_store: UserStore, journal_events: list[Event]
) -> None:
    url = users_server.url
    for name, password in ((OPERATOR_NAME, OPERATOR_PASSWORD), (ENGINEER, ENGINEER_PASSWORD)):
        cookie = log_in(url, name, password).cookie()
        status, body = change_request(url, cookie, name, "role")
        assert status == 403 and "administer_users" in body
    assert user_store.get_user(OPERATOR_NAME).role is Role.OPERATOR
    assert user_store.get_user(ENGINEER).role is Role.ENGINEER
    refusals = [e for e in journal_events if "refused /_dash-update-component" in e.message]
    assert len(refusals) == 2
    admin = log_in(url, ADMIN, ADMIN_PASSWORD).cookie()
    status, body = change_request(url, admin, OPERATOR_NAME, "disable")
    assert status == 200 and "disabled olga" in body
    assert user_store.account(OPERATOR_NAME).disabled
