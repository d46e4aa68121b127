"""Select-before-operate on a faceplate: what each step shows and sends to the pipeline, and the
server-side refusal of a callback a viewer forges by hand."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import dash
import pytest

from controlcenter.model import (
    CommandStatus,
    EventKind,
    Override,
    Role,
    TagDef,
)
from controlcenter.ports import LoginSessions, SelectionRefusedError
from controlcenter.security.users import UserStore
from hmi.app import create_hmi
from hmi.command_panel import (
    cancel_selection,
    operate_selection,
    parse_until,
    parse_value,
    release_override,
    select_point,
)
from hmi.server import HmiServer
from tests.hmi.conftest import SECRET_KEY
from tests.hmi.http_support import log_in, send
from tests.hmi.test_hmi_faceplates import (
    NOW,
    OPERATOR,
    DemoPorts,
    demo_ports,
    dumped,
    with_class,
)

RUN = "water.ps1.pump1.run_cmd"
SPEED = "water.ps1.pump1.speed"
MODE = "lights.d1.c1.mode"
VIEWER_NAME = "vera"
VIEWER_PASSWORD = "only-looking-here"


@pytest.fixture
def ports() -> DemoPorts:
    return demo_ports()


def selected(ports: DemoPorts, tag: str) -> dict[str, Any]:
    area, store = select_point(ports.context, OPERATOR, tag)
    assert isinstance(store, dict), dumped(area)
    return store


def test_select_shows_value_limits_interlock_and_expiry(ports: DemoPorts) -> None:
    ports.commands.interlock = "water.ps1_dry_run: the suction tank is empty"
    area, store = select_point(ports.context, OPERATOR, SPEED)
    text = dumped(area)
    assert ("select", (SPEED, "olga")) in ports.commands.calls
    assert store["id"] == "sel-1" and store["at"] == NOW.isoformat()
    assert "50.00 %" in text and "good" in text  # the current value and its quality
    assert "range 0 to 100 %" in text
    assert "until 2030-01-07 12:01:00 UTC" in text  # the selection's expiry, site-local
    interlock = with_class(area, "cmd-interlock")
    assert interlock and "abnormal" in interlock[0].className
    assert "suction tank is empty" in dumped(interlock)
    # A number within the limits for a float; two choices for a boolean.
    number = with_class(area, "cmd-number")[0]
    assert (number.min, number.max, number.step) == (0.0, 100.0, "any")
    run_area, _ = select_point(ports.context, OPERATOR, RUN)
    choices = with_class(run_area, "cmd-bool")[0]
    assert [o["label"] for o in choices.options] == ["Start", "Stop"]


def test_select_refused_by_the_pipeline_is_text(ports: DemoPorts) -> None:
    ports.commands.refuse_select = SelectionRefusedError("water.ps1.pump1.run_cmd is held by erik")
    area, store = select_point(ports.context, OPERATOR, RUN)
    assert store is None
    assert "Select refused: water.ps1.pump1.run_cmd is held by erik" in dumped(area)
    ports.commands.refuse_select = PermissionError("olga may not command area heating")
    area, _ = select_point(ports.context, OPERATOR, "heat.ss1.valve")
    assert "may not command area heating" in dumped(area)
    area, store = select_point(ports.context, OPERATOR, "water.nowhere")
    assert store is None and "Unknown point" in dumped(area)


def test_operate_start_shows_result_readback_and_override(ports: DemoPorts) -> None:
    store = selected(ports, RUN)
    area, message, new_store, override = operate_selection(
        ports.context, OPERATOR, RUN, "true", "  morning peak  ", None, store
    )
    assert ports.commands.calls[-1] == ("operate", ("sel-1", "olga", True, "morning peak", None))
    text = dumped(area)
    assert "CONFIRMED" in text and "Read back: " in text
    assert with_class(area, "cmd-readback")[0].children == "ON"
    assert "until released" in text
    assert message is dash.no_update and new_store is None
    assert "MANUAL OVERRIDE" in dumped(override)
    assert not with_class(override, "cmd-release")[0].disabled


def test_operate_with_expiry_counts_from_the_selection(ports: DemoPorts) -> None:
    store = selected(ports, SPEED)
    operate_selection(ports.context, OPERATOR, SPEED, 72.5, "test", 30, store)
    _, (_, _, value, _, until) = ports.commands.calls[-1]
    assert value == 72.5
    assert until == NOW + timedelta(minutes=30)


@pytest.mark.parametrize(
    ("value", "reason", "until", "complaint"),
    [
        (None, "why", None, "choose a value"),
        (50, "", None, "a reason is required"),
        (50, "   ", None, "a reason is required"),
        (50, "why", 0, "between 1 and"),
        (50, "why", 10**9, "between 1 and"),
        (50, "why", "soon", "must be a number"),
        ("fifty", "why", None, "not a number"),
        (math.inf, "why", None, "finite"),
    ],
)
def test_operate_input_mistakes_keep_the_form(
    ports: DemoPorts, value: object, reason: object, until: object, complaint: str
) -> None:
    store = selected(ports, SPEED)
    area, message, new_store, _ = operate_selection(
        ports.context, OPERATOR, SPEED, value, reason, until, store
    )
    assert area is dash.no_update and new_store is dash.no_update
    assert complaint in dumped(message)
    assert not any(call[0] == "operate" for call in ports.commands.calls)


@pytest.mark.parametrize(
    "forged",
    [None, {}, {"id": 3, "at": NOW.isoformat()}, {"id": "x", "at": "yesterday"}, "sel-1", [1]],
)
def test_operate_without_a_stored_selection_asks_to_select(
    ports: DemoPorts, forged: object
) -> None:
    _, message, new_store, _ = operate_selection(
        ports.context, OPERATOR, RUN, "true", "why", None, forged
    )
    assert "select the point first" in dumped(message) and new_store is None
    assert not any(call[0] == "operate" for call in ports.commands.calls)


def test_foreign_selection_id_is_rejected_by_the_pipeline(ports: DemoPorts) -> None:
    forged = {"id": "sel-999", "at": NOW.isoformat()}
    area, _, _, _ = operate_selection(ports.context, OPERATOR, RUN, "true", "why", None, forged)
    result = with_class(area, "cmd-result")[0]
    assert "REJECTED" in dumped(result) and "abnormal" in result.className


def test_operate_errors_are_text_never_tracebacks(ports: DemoPorts) -> None:
    store = selected(ports, RUN)

    def times_out(*args: Any, **kwargs: Any) -> Any:
        raise TimeoutError("the center did not answer within 30 s")

    ports.commands.operate = times_out  # type: ignore[method-assign]
    area, _, new_store, _ = operate_selection(
        ports.context, OPERATOR, RUN, "false", "why", None, store
    )
    assert "Operate refused: the center did not answer within 30 s" in dumped(area)
    assert new_store is None


def test_failed_command_is_abnormal_with_its_reason(ports: DemoPorts) -> None:
    ports.commands.status = CommandStatus.FAILED
    store = selected(ports, MODE)
    area, _, _, _ = operate_selection(ports.context, OPERATOR, MODE, 1, "maintenance", None, store)
    result = with_class(area, "cmd-result")[0]
    assert "FAILED" in dumped(result) and "refused" in dumped(result)
    assert "abnormal" in result.className


def test_cancel_gives_up_the_selection(ports: DemoPorts) -> None:
    store = selected(ports, RUN)
    area, _, new_store, _ = cancel_selection(ports.context, OPERATOR, RUN, store)
    assert ports.commands.calls[-1] == ("cancel", ("sel-1", "olga"))
    assert "cancelled" in dumped(area) and new_store is None
    area, _, _, _ = cancel_selection(ports.context, OPERATOR, RUN, store)
    assert "Cancel: unknown selection sel-1" in dumped(area)


def test_release_needs_a_reason_and_reports_the_pipeline(ports: DemoPorts) -> None:
    ports.commands.active_overrides.append(Override(SPEED, 80.0, "olga", "test", NOW))
    override, message = release_override(ports.context, OPERATOR, SPEED, "")
    assert override is dash.no_update and "a reason is required" in message
    override, message = release_override(ports.context, OPERATOR, SPEED, "back to automatic")
    assert ports.commands.calls[-1] == ("release", (SPEED, "olga", "back to automatic"))
    assert "released" in dumped(override)
    _, message = release_override(ports.context, OPERATOR, SPEED, "again")
    assert "Release refused" in message and "no active override" in message


def test_value_parsing_by_type() -> None:
    ports = demo_ports()
    tags = ports.context.tags_by_name()
    mode: TagDef = tags[MODE]
    assert parse_value(mode, 2) == 2 and parse_value(mode, "1") == 1
    with pytest.raises(ValueError, match="whole numbers"):
        parse_value(mode, 1.5)
    with pytest.raises(ValueError, match="not a choice"):
        parse_value(tags[RUN], "maybe")
    with pytest.raises(ValueError, match="not a number"):
        parse_value(tags[SPEED], True)
    assert parse_until(None, NOW) is None
    assert parse_until(1, NOW) == NOW + timedelta(minutes=1)


# --- through the server: a forged callback -------------------------------------------------------


@pytest.fixture
def command_server(
    user_store: UserStore, login_sessions: LoginSessions, ports: DemoPorts
) -> Iterator[HmiServer]:
    user_store.add_user(VIEWER_NAME, VIEWER_PASSWORD, Role.VIEWER)
    app = create_hmi(ports.context, login_sessions, secret_key=SECRET_KEY)
    server = HmiServer(app, port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def select_payload(tag: object) -> bytes:
    """The request the browser sends when Select of ``tag`` is clicked."""
    area = {"tag": tag, "type": "cmd-area"}
    store = {"tag": tag, "type": "cmd-selection"}
    button = {"tag": tag, "type": "cmd-select"}
    payload = {
        "output": '..{"tag":["MATCH"],"type":"cmd-area"}.children...'
        '{"tag":["MATCH"],"type":"cmd-selection"}.data..',
        "outputs": [
            {"id": area, "property": "children"},
            {"id": store, "property": "data"},
        ],
        "inputs": [{"id": button, "property": "n_clicks", "value": 1}],
        "changedPropIds": [json.dumps(button, separators=(",", ":"), sort_keys=True) + ".n_clicks"],
        "state": [],
    }
    return json.dumps(payload).encode()


def post_select(server: HmiServer, cookie: str, tag: object) -> tuple[int, str]:
    reply = send(
        server.url,
        "POST",
        "/_dash-update-component",
        body=select_payload(tag),
        headers={"Content-Type": "application/json"},
        cookie=cookie,
    )
    return reply.status, reply.body.decode(errors="replace")


def test_forged_select_by_a_viewer_is_refused_and_journaled(
    command_server: HmiServer,
    ports: DemoPorts,
    operator_credentials: tuple[str, str],
) -> None:
    viewer = log_in(command_server.url, VIEWER_NAME, VIEWER_PASSWORD).cookie()
    status, body = post_select(command_server, viewer, RUN)
    assert status == 403
    assert "command needs the operator role" in body
    assert not any(call[0] == "select" for call in ports.commands.calls)
    refusals = [e for e in ports.journal if e.kind is EventKind.AUDIT and "refused" in e.message]
    assert refusals and refusals[-1].user == VIEWER_NAME

    # The same request from an operator reaches the pipeline.
    operator = log_in(command_server.url, *operator_credentials).cookie()
    status, body = post_select(command_server, operator, RUN)
    assert status == 200, body
    assert ("select", (RUN, "olga")) in ports.commands.calls
    assert "sel-1" in body and "Operate" in body

    # Hostile tags: unknown, absurdly long, not a string: a refusal as text, or nothing.
    status, body = post_select(command_server, operator, "water.nowhere")
    assert status == 200 and "Unknown point water.nowhere" in body
    status, _ = post_select(command_server, operator, "x" * 5000)
    assert status == 204  # PreventUpdate: nothing to draw
    status, _ = post_select(command_server, operator, 7)
    assert status == 204
