"""Every endpoint family of the API over a small real center (SQLite historian, alarm service,
user administration): what each returns, and who may call it, per role and token scope, with
every refusal journaled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controlcenter.model import Role
from controlcenter.permissions import PERMISSION_ROLES, SCOPE_PERMISSIONS, Permission, TokenScope
from tests.controlcenter.api.api_testkit import (
    PASSWORD,
    USERS,
    CenterKit,
    audit_messages,
    center_kit,
)

NOW = datetime.now(UTC)
# The window's start is filled in at call time: test ids must not change with the clock, or
# parallel workers collect different tests.
WINDOW = "start=THREE_HOURS_AGO"


def _at_call_time(path: str) -> str:
    start = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return path.replace("THREE_HOURS_AGO", start)


# One call per endpoint: method, path, body, the permission it needs.
CALLS: list[tuple[str, str, dict[str, Any] | None, Permission]] = [
    ("GET", f"/api/v1/history/water.tank1.level/raw?{WINDOW}", None, Permission.VIEW),
    ("GET", f"/api/v1/history/water.tank1.level/raw/columns?{WINDOW}", None, Permission.VIEW),
    ("GET", "/api/v1/history/water.tank1.level/aggregates", None, Permission.VIEW),
    ("GET", "/api/v1/history/water.tank1.level/trend", None, Permission.VIEW),
    ("GET", "/api/v1/alarms", None, Permission.VIEW),
    ("GET", "/api/v1/alarms/water.tank1.level_high", None, Permission.VIEW),
    (
        "POST",
        "/api/v1/alarms/acknowledge",
        {"alarms": ["water.tank1.level_high"]},
        Permission.ACKNOWLEDGE_ALARMS,
    ),
    (
        "POST",
        "/api/v1/alarms/lights.d1.lamp/comment",
        {"comment": "crew on site"},
        Permission.ACKNOWLEDGE_ALARMS,
    ),
    (
        "POST",
        "/api/v1/alarms/lights.d1.lamp/shelve",
        {"reason": "known fault", "duration_s": 600},
        Permission.SHELVE_ALARMS,
    ),
    (
        "POST",
        "/api/v1/alarms/water.tank1.level_high/out-of-service",
        {"reason": "sensor swap"},
        Permission.REMOVE_ALARMS_FROM_SERVICE,
    ),
    ("GET", "/api/v1/journal/events", None, Permission.VIEW_JOURNAL),
    ("GET", "/api/v1/journal/commands", None, Permission.VIEW_JOURNAL),
    ("GET", "/api/v1/journal/alarms", None, Permission.VIEW_JOURNAL),
    ("POST", "/api/v1/commands/selections", {"tag": "water.tank1.pump_cmd"}, Permission.COMMAND),
    ("GET", "/api/v1/commands/overrides", None, Permission.VIEW),
    ("GET", "/api/v1/rules", None, Permission.VIEW),
    ("GET", "/api/v1/rules/versions/1", None, Permission.VIEW),
    (
        "POST",
        "/api/v1/rules/apply",
        {"sources": [{"name": "water.yaml", "text": "rules: [x]\n"}], "reason": "tune"},
        Permission.APPLY_RULES,
    ),
    (
        "POST",
        "/api/v1/rules/backtests",
        {"version": 1, "start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"},
        Permission.EDIT_RULES,
    ),
    ("GET", "/api/v1/devices", None, Permission.VIEW_DIAGNOSTICS),
    ("GET", "/api/v1/users", None, Permission.ADMINISTER_USERS),
    ("GET", "/api/v1/tokens", None, Permission.ADMINISTER_USERS),
]


@pytest.fixture
def kit(tmp_path: Path) -> CenterKit:
    return center_kit(tmp_path)


def _role_user(role: Role) -> str:
    return "mona" if role is Role.MAINTENANCE else USERS[role]


def _token(kit: CenterKit, role: Role, scope: TokenScope) -> str:
    return kit.tokens.create(_role_user(role), scope, 3600, created_by="ada").secret_text


@pytest.mark.parametrize(("method", "path", "body", "permission"), CALLS)
def test_each_endpoint_answers_by_role_and_scope_and_journals_refusals(
    kit: CenterKit, method: str, path: str, body: dict[str, Any] | None, permission: Permission
) -> None:
    for role in Role:
        for scope in TokenScope:
            reply = kit.call(method, _at_call_time(path), _token(kit, role, scope), body)
            allowed = role.includes(PERMISSION_ROLES[permission]) and (
                permission in SCOPE_PERMISSIONS[scope]
            )
            if not allowed:
                assert reply.status_code == 403, (role, scope, reply.get_json())
                assert reply.mimetype == "application/problem+json"
                assert permission.value in reply.get_json()["detail"]
                assert any(
                    f"({403})" in m and _role_user(role) in m and permission.value in m
                    for m in audit_messages(kit.store)
                ), (role, scope)
            else:
                # Authorised: an answer, or a state refusal (409: already acknowledged).
                assert reply.status_code in (200, 201, 202, 409), (role, scope, reply.get_json())


@pytest.mark.parametrize(("method", "path", "body", "permission"), CALLS)
def test_each_endpoint_refuses_missing_forged_expired_and_revoked_tokens(
    kit: CenterKit, method: str, path: str, body: dict[str, Any] | None, permission: Permission
) -> None:
    expired = kit.tokens.create("ada", TokenScope.ADMINISTER, 0.001, created_by="ada")
    revoked = kit.tokens.create("ada", TokenScope.ADMINISTER, 3600, created_by="ada")
    kit.tokens.revoke(revoked.token.token_id)
    forged = revoked.secret_text[:-4] + "AAAA"
    for token, reason in [
        ("", "token is required"),
        (forged, "unknown token"),
        (expired.secret_text, "expired"),
        (revoked.secret_text, "revoked"),
    ]:
        reply = kit.call(method, _at_call_time(path), token, body)
        assert reply.status_code == 401, reason
        assert reply.mimetype == "application/problem+json"
        assert reason in reply.get_json()["detail"]
    refusals = [m for m in audit_messages(kit.store) if "(401)" in m]
    assert len(refusals) == 4


def test_raw_aggregate_and_trend_history(kit: CenterKit) -> None:
    token = _token(kit, Role.VIEWER, TokenScope.READ)
    start = (NOW - timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    raw = kit.get(f"/api/v1/history/water.tank1.level/raw?start={start}&limit=5", token)
    document = raw.get_json()
    assert raw.status_code == 200 and len(document["values"]) == 5 and document["truncated"]
    assert document["values"][0]["value"] == pytest.approx(1.0)
    # The same rows as columns: times in epoch milliseconds, qualities listed once.
    columns = kit.get(
        f"/api/v1/history/water.tank1.level/raw/columns?start={start}&limit=5", token
    ).get_json()
    assert columns["truncated"] and columns["value"] == [v["value"] for v in document["values"]]
    assert columns["server_time_ms"] == [
        round(datetime.fromisoformat(v["server_time"]).timestamp() * 1000)
        for v in document["values"]
    ]
    assert [columns["qualities"][i] for i in columns["quality"]] == [
        v["quality"] for v in document["values"]
    ]
    newest = kit.get(
        f"/api/v1/history/water.tank1.level/raw?start={start}&order=desc&limit=1", token
    )
    assert newest.get_json()["values"][0]["value"] == pytest.approx(1.0 + 119 / 60)
    aggregates = kit.get(
        f"/api/v1/history/water.tank1.level/aggregates?start={start}&interval_s=3600"
        "&aggregates=minimum&aggregates=maximum&aggregates=count",
        token,
    ).get_json()["aggregates"]
    assert set(aggregates) == {"minimum", "maximum", "count"}
    assert max(v["value"] or 0 for v in aggregates["maximum"]) == pytest.approx(1.0 + 119 / 60)
    assert sum(v["value"] or 0 for v in aggregates["count"]) == 120
    trend = kit.get(
        f"/api/v1/history/water.tank1.level/trend?start={start}&max_points=10", token
    ).get_json()
    assert 2 <= len(trend["values"]) <= 10
    # Hostile and wrong queries: problems, never a 500.
    for bad in [
        "/api/v1/history/water.nope/raw",
        "/api/v1/history/water.nope/raw/columns",
        f"/api/v1/history/water.tank1.level/raw/columns?start={start}&limit=-1",
        f"/api/v1/history/water.tank1.level/aggregates?start={start}&aggregates=median",
        f"/api/v1/history/water.tank1.level/aggregates?start={start}&aggregates=",
        "/api/v1/history/water.tank1.level/raw?start=2030-01-01T00:00:00",
        "/api/v1/history/water.tank1.level/raw?start=2030-01-02T00:00:00Z&end=2030-01-01T00:00:00Z",
        "/api/v1/history/water.tank1.level/aggregates?interval_s=0.0001",
        "/api/v1/history/water.tank1.level/trend?max_points=1",
    ]:
        reply = kit.get(bad, token)
        assert reply.status_code in (400, 404), bad
        assert reply.mimetype == "application/problem+json", bad


def test_alarm_list_detail_and_actions(kit: CenterKit) -> None:
    operator = _token(kit, Role.OPERATOR, TokenScope.COMMAND)
    listed = kit.get("/api/v1/alarms?area=water", operator).get_json()["alarms"]
    assert [a["name"] for a in listed] == ["water.tank1.level_high"]
    assert listed[0]["state"] == "unacknowledged" and listed[0]["priority"] == "high"
    # A priority filter keeps that priority and the more urgent ones.
    high = kit.get("/api/v1/alarms?priority=high", operator).get_json()["alarms"]
    assert [a["name"] for a in high] == ["water.tank1.level_high"]
    assert len(kit.get("/api/v1/alarms?priority=low", operator).get_json()["alarms"]) == 2
    assert kit.get("/api/v1/alarms?priority=urgent", operator).status_code == 400
    assert kit.get("/api/v1/alarms?state=bogus", operator).status_code == 400
    assert kit.get("/api/v1/alarms?colour=red", operator).status_code == 400
    unacknowledged = "/api/v1/alarms?state=unacknowledged&state=acknowledged"
    assert len(kit.get(unacknowledged, operator).get_json()["alarms"]) == 2
    detail = kit.get("/api/v1/alarms/water.tank1.level_high", operator).get_json()
    assert detail["guidance"]["action"] == "stop pump 1" and detail["limit"] == 4.0
    assert kit.get("/api/v1/alarms/nope", operator).status_code == 404

    acked = kit.post(
        "/api/v1/alarms/acknowledge",
        operator,
        {"alarms": ["water.tank1.level_high"], "comment": "seen"},
    ).get_json()
    assert acked["transitions"][0]["after"] == "acknowledged"
    assert acked["transitions"][0]["user"] == "olga"
    again = kit.post("/api/v1/alarms/acknowledge", operator, {"alarms": ["water.tank1.level_high"]})
    assert again.status_code == 409 and "already acknowledged" in again.get_json()["detail"]
    unknown = kit.post("/api/v1/alarms/acknowledge", operator, {"alarms": ["nope"]})
    assert unknown.status_code == 404

    shelved = kit.post(
        "/api/v1/alarms/lights.d1.lamp/shelve", operator, {"reason": "lamp crew", "one_shot": True}
    )
    assert shelved.get_json()["transitions"][-1]["after"] == "shelved"
    assert kit.get("/api/v1/alarms/lights.d1.lamp", operator).get_json()["one_shot"] is True
    unshelved = kit.post("/api/v1/alarms/lights.d1.lamp/unshelve", operator, {"reason": "done"})
    assert unshelved.get_json()["transitions"][-1]["before"] == "shelved"
    too_long = kit.post(
        "/api/v1/alarms/lights.d1.lamp/shelve",
        operator,
        {"reason": "x", "duration_s": 29 * 86400},
    )
    assert too_long.status_code == 409
    maintenance = _token(kit, Role.MAINTENANCE, TokenScope.COMMAND)
    out = kit.post(
        "/api/v1/alarms/water.tank1.level_high/out-of-service", maintenance, {"reason": "swap"}
    )
    assert out.get_json()["transitions"][-1]["after"] == "out_of_service"
    back = kit.post(
        "/api/v1/alarms/water.tank1.level_high/return-to-service", maintenance, {"reason": ""}
    )
    assert back.status_code == 200
    transitions = kit.get(
        "/api/v1/journal/alarms?alarm=water.tank1.level_high", operator
    ).get_json()["transitions"]
    assert [t["action"] for t in transitions][-3:] == [
        "acknowledge",
        "remove_from_service",
        "return_to_service",
    ]


def test_select_before_operate_cancel_and_release(kit: CenterKit) -> None:
    operator = _token(kit, Role.OPERATOR, TokenScope.COMMAND)
    selected = kit.post("/api/v1/commands/selections", operator, {"tag": "water.tank1.pump_cmd"})
    assert selected.status_code == 201
    selection = selected.get_json()
    assert selection["current"]["value"] is True and selection["limits"]["data_type"] == "bool"
    assert selection["expires_at"] > selection["selected_at"]
    # Another user cannot operate it: a 409 problem.
    other = _token(kit, Role.ENGINEER, TokenScope.COMMAND)
    foreign = kit.post(
        f"/api/v1/commands/selections/{selection['selection_id']}/operate",
        other,
        {"value": False, "reason": "x"},
    )
    assert foreign.status_code == 409 and foreign.mimetype == "application/problem+json"
    operated = kit.post(
        f"/api/v1/commands/selections/{selection['selection_id']}/operate",
        operator,
        {"value": False, "reason": "stop for inspection"},
    ).get_json()
    assert operated["status"] == "confirmed" and operated["readback"] is False
    assert kit.get("/api/v1/commands/overrides", operator).get_json()["overrides"][0]["user"] == (
        "olga"
    )
    # A rejected command is an answer (200, status rejected), journaled by the pipeline.
    second = kit.post(
        "/api/v1/commands/selections", operator, {"tag": "water.tank1.pump_cmd"}
    ).get_json()
    rejected = kit.post(
        f"/api/v1/commands/selections/{second['selection_id']}/operate",
        operator,
        {"value": 7, "reason": "typo"},
    )
    assert rejected.status_code == 200 and rejected.get_json()["status"] == "rejected"
    journaled = kit.get("/api/v1/journal/commands?tag=water.tank1.pump_cmd", operator).get_json()
    assert [c["status"] for c in journaled["commands"]] == ["confirmed", "rejected"]
    read_only = kit.post("/api/v1/commands/selections", operator, {"tag": "water.tank1.level"})
    assert read_only.status_code == 409
    third = kit.post(
        "/api/v1/commands/selections", operator, {"tag": "water.tank1.pump_cmd"}
    ).get_json()
    cancel_path = f"/api/v1/commands/selections/{third['selection_id']}"
    assert kit.call("DELETE", cancel_path, operator).status_code == 204
    assert kit.call("DELETE", cancel_path, operator).status_code == 409
    released = kit.post(
        "/api/v1/commands/overrides/water.tank1.pump_cmd/release", operator, {"reason": "done"}
    )
    assert released.status_code == 200 and released.get_json()["result"] is None
    again = kit.post(
        "/api/v1/commands/overrides/water.tank1.pump_cmd/release", operator, {"reason": "done"}
    )
    assert again.status_code == 409


def test_rules_versions_diff_apply_rollback_and_backtest(kit: CenterKit) -> None:
    engineer = _token(kit, Role.ENGINEER, TokenScope.ADMINISTER)
    state = kit.get("/api/v1/rules", engineer).get_json()
    assert state["running_version"] == 1 and state["rules"][0]["name"] == "pump_night"
    refused = kit.post(
        "/api/v1/rules/apply",
        engineer,
        {"sources": [{"name": "water.yaml", "text": "bad"}], "reason": "try"},
    ).get_json()
    assert refused["version"] is None and "bad rule" in refused["problems"][0]
    applied = kit.post(
        "/api/v1/rules/apply",
        engineer,
        {"sources": [{"name": "water.yaml", "text": "rules: [a]\n"}], "reason": "tune"},
    ).get_json()
    assert applied["version"]["version"] == 2 and applied["version"]["status"] == "active"
    diff = kit.get("/api/v1/rules/diff?older=1&newer=2", engineer).get_json()["diff"]
    assert "+rules: [a]" in diff
    assert kit.get("/api/v1/rules/diff?older=1&newer=9", engineer).status_code == 404
    one = kit.get("/api/v1/rules/versions/2", engineer).get_json()
    assert one["sources"][0]["text"] == "rules: [a]\n" and one["author"] == "erik"
    rolled = kit.post("/api/v1/rules/rollback", engineer, {"version": 1, "reason": "back"})
    assert rolled.get_json()["version"]["version"] == 3
    assert kit.post(
        "/api/v1/rules/rollback", engineer, {"version": 9, "reason": "x"}
    ).status_code == (404)
    job = kit.post(
        "/api/v1/rules/backtests",
        engineer,
        {"version": 1, "start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"},
    )
    assert job.status_code == 202
    followed = kit.get(f"/api/v1/rules/backtests/{job.get_json()['job_id']}", engineer).get_json()
    assert followed["status"] == "done" and followed["report"] == "ok"
    assert kit.get("/api/v1/rules/backtests/nope", engineer).status_code == 404
    both = kit.post(
        "/api/v1/rules/backtests",
        engineer,
        {"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"},
    )
    assert both.status_code == 400


def test_devices_and_journal_events(kit: CenterKit) -> None:
    maintenance = _token(kit, Role.MAINTENANCE, TokenScope.READ)
    devices = kit.get("/api/v1/devices", maintenance).get_json()["devices"]
    assert {d["device"]: d["healthy"] for d in devices} == {"rtu1": True, "ctrl1": False}
    assert devices[1]["reconnects"] == 2 and devices[1]["on_time_pct"] == 50.0
    kit.get("/api/v1/users", maintenance)  # refused, journaled
    events = kit.get("/api/v1/journal/events?kind=audit&source=api", maintenance).get_json()
    assert any("administer_users" in e["message"] for e in events["events"])
    assert kit.get("/api/v1/journal/events?kind=nonsense", maintenance).status_code == 400


def test_users_and_tokens_for_administrators(kit: CenterKit) -> None:
    admin = _token(kit, Role.ADMIN, TokenScope.ADMINISTER)
    names = [u["name"] for u in kit.get("/api/v1/users", admin).get_json()["users"]]
    assert "olga" in names and "ada" in names
    added = kit.post(
        "/api/v1/users",
        admin,
        {"name": "nils", "role": "operator", "password": PASSWORD, "reason": "new shift"},
    )
    assert added.status_code == 201 and added.get_json()["role"] == "operator"
    weak = kit.post("/api/v1/users", admin, {"name": "nora", "password": "short", "reason": "new"})
    assert weak.status_code == 409
    role = kit.call("PUT", "/api/v1/users/nils/role", admin, {"role": "engineer", "reason": "r"})
    assert role.get_json()["role"] == "engineer"
    assert kit.post("/api/v1/users/nils/disable", admin, {"reason": "left"}).get_json()["disabled"]
    assert not kit.post("/api/v1/users/nils/enable", admin, {"reason": "back"}).get_json()[
        "disabled"
    ]
    reset = kit.post(
        "/api/v1/users/nils/password", admin, {"password": PASSWORD + "x", "reason": "forgot"}
    )
    assert reset.status_code == 204
    selfish = kit.post("/api/v1/users/ada/disable", admin, {"reason": "oops"})
    assert selfish.status_code == 409

    created = kit.post(
        "/api/v1/tokens", admin, {"user": "nils", "scope": "read", "lifetime_s": 600}
    ).get_json()
    secret = created["secret"]
    assert secret.startswith("cc_") and created["token"]["user"] == "nils"
    assert kit.get("/api/v1/tags", secret).status_code == 200
    listed = kit.get("/api/v1/tokens?user=nils", admin).get_json()["tokens"]
    assert [t["token_id"] for t in listed] == [created["token"]["token_id"]]
    assert "secret" not in listed[0]
    revoke = kit.call("DELETE", f"/api/v1/tokens/{created['token']['token_id']}", admin)
    assert revoke.status_code == 204
    assert kit.get("/api/v1/tags", secret).status_code == 401
    assert kit.call("DELETE", "/api/v1/tokens/nope", admin).status_code == 404
    assert kit.post("/api/v1/tokens", admin, {"user": "ghost"}).status_code == 404
