"""schemathesis against the served OpenAPI document of a running API (real HTTP on a free
port, an administrator's token): every answer is documented (status code, content type,
schema), errors are problem documents, and nothing answers 500."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.serving import BaseWSGIServer, make_server

from controlcenter.permissions import TokenScope
from tests.controlcenter.api.api_testkit import center_kit

EXAMPLES_PER_OPERATION = 8


@pytest.fixture(scope="module")
def served_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    kit = center_kit(Path(tmp_path_factory.mktemp("schemathesis")))
    token = kit.tokens.create("ada", TokenScope.ADMINISTER, 3600, created_by="ada").secret_text
    server: BaseWSGIServer = make_server("127.0.0.1", 0, kit.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", token
    finally:
        server.shutdown()
        thread.join(10)
        kit.store.close()


@pytest.mark.timeout(240)
def test_the_api_conforms_to_its_document(served_api: tuple[str, str]) -> None:
    base, token = served_api
    api_schema = schemathesis.openapi.from_url(f"{base}/api/v1/docs/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        negative_data_rejection,
    ]
    failures: list[str] = []
    operations = 0
    for result, mode in itertools.product(
        api_schema.get_all_operations(), (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ):
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def exercise(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=checks)

        try:
            exercise()
        except Exception as err:  # every operation is tried; all failures reported together
            failures.append(f"{operation.label} ({mode.value}): {err}")
    assert operations >= 2 * 40
    assert not failures, "\n\n".join(failures)
