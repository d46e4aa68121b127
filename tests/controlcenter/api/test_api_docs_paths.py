"""docs/api.md against the served OpenAPI document: every documented ``/api/v1`` path (tables,
curl lines and the Python examples) is an operation of the API, with the documented method,
and every documented query parameter is one that operation takes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.controlcenter.api.api_testkit import center_kit

DOC = Path(__file__).parents[3] / "docs" / "api.md"
NOT_IN_THE_DOCUMENT = ("/api/v1/stream", "/api/v1/docs")
"""Served beside the JSON endpoints (an ASGI stream, the docs pages), described in prose."""

TABLE_ROW = re.compile(r"`(GET|POST|PUT|DELETE) (/api/v1/[^`\s]*)")
CURL_PATH = re.compile(r"\$CC_URL(/api/v1/[^\"'\s]*)")
CURL_METHOD = re.compile(r"-X (POST|PUT|DELETE)")
PYTHON_CALL = re.compile(r"api\.(get|post|put|delete)\(\s*f?\"(/[^\"]*)\"")
PYTHON_STREAM = re.compile(r"api\.stream\(\"GET\", \"(/[^\"]*)\"")


Operations = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def operations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operations]:
    """The served document's paths and their operations."""
    kit = center_kit(tmp_path_factory.mktemp("api-docs"))
    try:
        document = kit.client.get("/api/v1/docs/openapi.json").get_json()
        yield dict(document["paths"])
    finally:
        kit.store.close()


def _template(documented: str, operations: Operations) -> str | None:
    """The document's path template a documented path (with values or ``{names}``) is of."""
    path = documented.split("?", maxsplit=1)[0].rstrip("/") or "/"
    path = re.sub(r"\{[^}]*\}", "X", path)
    for template in operations:
        pattern = "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return template
    return None


def documented_calls() -> list[tuple[str, str]]:
    """(method, path with query) for every call docs/api.md shows."""
    text = DOC.read_text(encoding="utf-8")
    calls = [(m, p) for m, p in TABLE_ROW.findall(text)]
    for line in text.splitlines():
        for path in CURL_PATH.findall(line):
            method = CURL_METHOD.search(line)
            calls.append((method.group(1) if method else "GET", path))
    for method, path in PYTHON_CALL.findall(text):
        calls.append((method.upper(), "/api/v1" + path))
    calls += [("GET", "/api/v1" + path) for path in PYTHON_STREAM.findall(text)]
    return calls


def test_the_page_documents_every_family() -> None:
    calls = documented_calls()
    assert len(calls) > 40
    families = {p.split("/")[3].split("?")[0] for _, p in calls}
    assert {
        "tags", "values", "history", "alarms", "journal", "commands", "rules", "devices",
        "users", "tokens", "stream",
    } <= families  # fmt: skip


@pytest.mark.parametrize(("method", "path"), documented_calls())
def test_each_documented_call_is_an_operation_of_the_api(
    operations: Operations, method: str, path: str
) -> None:
    if path.startswith(NOT_IN_THE_DOCUMENT):
        return
    template = _template(path, operations)
    assert template is not None, f"{path} is not a path of the API"
    operation = operations[template].get(method.lower())
    assert operation is not None, f"{method} {template} is not an operation"
    taken = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
    query = urlsplit(path).query
    for name, _ in parse_qsl(query, keep_blank_values=True):
        assert name in taken, f"{method} {template} takes no query parameter {name!r}"


def test_every_operation_of_the_api_is_documented(operations: Operations) -> None:
    documented = {
        (m, _template(p, operations)) for m, p in documented_calls() if p.startswith("/api/v1")
    }
    missing = [
        f"{method.upper()} {path}"
        for path, item in operations.items()
        for method in item
        if method in ("get", "post", "put", "delete") and (method.upper(), path) not in documented
    ]
    assert not missing, missing
