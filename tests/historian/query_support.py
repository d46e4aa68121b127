"""A store shared by the tests of one module, on each backend: read-only query tests write
their known data once instead of creating a database per test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from historian import SqlHistorian
from tests.historian.historian_support import TAGS

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
"""Parameters of a module-scoped store fixture: ``@pytest.fixture(scope="module", params=...)``."""


@contextmanager
def shared_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqlHistorian]:
    """An empty store with the test tags on the backend of ``request.param``."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("shared") / "historian.db"
        opened = SqlHistorian(f"sqlite:///{path}")
        schema = None
        server: Any = None
    else:
        # conftest's PostgresServer: skips when unconfigured, fails when unreachable.
        server = request.getfixturevalue("postgres_server")
        schema = server.new_schema()
        opened = SqlHistorian(server.url, schema=schema)
    try:
        opened.ensure_tags(TAGS)
        yield opened
    finally:
        opened.close()
        if server is not None and schema is not None:
            server.drop_schema(schema)
