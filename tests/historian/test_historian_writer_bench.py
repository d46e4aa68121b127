"""``controlcenter bench historian`` at a tiny size: every measurement runs, one JSON object."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from controlcenter.cli.main import app
from tests.historian.conftest import POSTGRES_URL_ENV, PostgresServer

KEYS = {
    "backend",
    "ingest_values_per_s",
    "raw_insert_values_per_s",
    "ingest_ratio",
    "compression_ratio",
    "max_reconstruction_error_ratio",
    "trend_query_ms",
    "raw_query_ms",
    "spool_drain_values_per_s",
}


def _bench(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["bench", "historian", "--size", "tiny", *args])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, lines  # one JSON object, nothing else on stdout
    figures: dict[str, object] = json.loads(lines[0])
    return figures


def _check(figures: dict[str, object], backend: str) -> None:
    assert figures.keys() >= KEYS
    assert figures["backend"] == backend
    for key in KEYS - {"backend"}:
        value = figures[key]
        assert isinstance(value, float | int) and value > 0, (key, value)
    assert figures["ingest_values"] == 4000
    assert figures["raw_query_rows"] == 3 * 3600  # the whole (3 h) trend range
    ratio = figures["max_reconstruction_error_ratio"]
    assert isinstance(ratio, float) and ratio <= 1.0
    compression = figures["compression_ratio"]
    assert isinstance(compression, float) and compression > 1.0


def test_the_sqlite_bench_prints_every_figure() -> None:
    _check(_bench(), "sqlite")


@pytest.mark.postgres
def test_the_postgresql_bench_prints_every_figure_and_leaves_no_schema(
    postgres_server: PostgresServer,
) -> None:
    url = os.environ[POSTGRES_URL_ENV]
    figures = _bench("--backend", "postgresql", "--db", url)

    _check(figures, "postgresql")
    assert figures["samples_layout"] == "partitioned"
    with postgres_server.engine.connect() as conn:
        leftovers = conn.execute(
            text("SELECT count(*) FROM pg_namespace WHERE nspname LIKE :pattern"),
            {"pattern": "bench\\_%"},
        ).scalar_one()
    assert leftovers == 0
