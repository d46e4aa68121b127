"""The API's frame: tokens required, refusals journaled as problem documents, rate limits, the
OpenAPI 3.1 document served without a token, and the tag and value endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlcenter.model import EventKind, Role
from controlcenter.permissions import TokenScope
from controlcenter.security.ratelimit import RatePolicy
from tests.controlcenter.api.api_testkit import api_kit


def test_the_openapi_document_is_served_without_a_token(tmp_path: Path) -> None:
    kit = api_kit(tmp_path)
    reply = kit.get("/api/v1/docs/openapi.json")
    assert reply.status_code == 200
    document = reply.get_json()
    assert document["openapi"].startswith("3.1")
    assert "/api/v1/tags" in document["paths"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    docs_page = kit.get("/api/v1/docs/swagger")
    assert docs_page.status_code == 200
    assert b"//unpkg" not in docs_page.data and b"cdn." not in docs_page.data


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("", "an API token is required"),
        ("Basic b2xnYTpwdw==", "an API token is required"),
        ("Bearer cc_0000000000000000_forged", "unknown token"),
        ("Bearer nonsense", "malformed token"),
    ],
)
def test_requests_without_a_usable_token_get_401_and_are_journaled(
    tmp_path: Path, header: str, reason: str
) -> None:
    kit = api_kit(tmp_path)
    reply = kit.client.get("/api/v1/tags", headers={"Authorization": header} if header else {})
    assert reply.status_code == 401
    assert reply.mimetype == "application/problem+json"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    problem = reply.get_json()
    assert problem["status"] == 401 and reason in problem["detail"]
    [event] = kit.journal.events
    assert event.kind is EventKind.AUDIT and event.source == "api" and reason in event.message


def test_a_revoked_token_stops_working_at_once(tmp_path: Path) -> None:
    kit = api_kit(tmp_path)
    issued = kit.tokens.create("olga", TokenScope.READ, 3600, created_by="ada")
    assert kit.get("/api/v1/tags", issued.secret_text).status_code == 200
    kit.tokens.revoke(issued.token.token_id)
    reply = kit.get("/api/v1/tags", issued.secret_text)
    assert reply.status_code == 401 and "revoked" in reply.get_json()["detail"]


def test_tags_by_pattern_area_and_page(tmp_path: Path) -> None:
    kit = api_kit(tmp_path)
    token = kit.token(Role.VIEWER)
    water = kit.get("/api/v1/tags?area=water", token).get_json()
    assert water["total"] == 2
    assert [t["name"] for t in water["tags"]] == ["water.tank1.level", "water.tank1.pump_cmd"]
    assert water["tags"][0]["areas"] == ["water"]
    page = kit.get("/api/v1/tags?pattern=*&offset=1&limit=1", token).get_json()
    assert page["total"] == 3 and len(page["tags"]) == 1
    assert kit.get("/api/v1/tags/water.tank1.level", token).get_json()["unit"] == "m"
    missing = kit.get("/api/v1/tags/water.nope", token)
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    bad = kit.get("/api/v1/tags?limit=0", token)
    assert bad.status_code == 400 and "limit" in bad.get_json()["detail"]


def test_live_values_with_their_quality(tmp_path: Path) -> None:
    kit = api_kit(tmp_path)
    token = kit.token(Role.OPERATOR)
    values = kit.get("/api/v1/values?tags=water.tank1.level,lights.d1.c1.power,nope", token)
    by_tag = {v["tag"]: v for v in values.get_json()["values"]}
    assert set(by_tag) == {"water.tank1.level", "lights.d1.c1.power"}
    assert by_tag["water.tank1.level"]["value"] == 3.2
    bad = by_tag["lights.d1.c1.power"]
    assert bad["value"] is None and bad["quality"]["severity"] == "bad"
    assert bad["quality"]["substatus"] == "comm_failure"
    one = kit.get("/api/v1/values/water.tank1.pump_cmd", token).get_json()
    assert one["value"] is True and one["source_time"].startswith("2030-01-01T12:00:00")
    by_pattern = kit.get("/api/v1/values?pattern=water.*", token).get_json()["values"]
    assert len(by_pattern) == 2


def test_a_caller_over_the_rate_limit_gets_429_with_retry_after(tmp_path: Path) -> None:
    kit = api_kit(tmp_path, rate=RatePolicy(rate_per_s=0.5, burst=3))
    token = kit.token(Role.VIEWER)
    statuses = [kit.get("/api/v1/tags", token).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    reply = kit.get("/api/v1/tags", token)
    assert reply.status_code == 429 and int(reply.headers["Retry-After"]) >= 1
    # Another caller is not held back by the first.
    assert kit.get("/api/v1/tags", kit.token(Role.OPERATOR)).status_code == 200
