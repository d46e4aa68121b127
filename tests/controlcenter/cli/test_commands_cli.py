"""``controlcenter commands overrides``: the active overrides from the store, as a table or JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from typer.testing import CliRunner

from controlcenter.cli.commands import (
    OverridesFormat,
    commands_app,
    override_rows,
    render_overrides,
)
from controlcenter.model import Override
from historian.store import SqlHistorian
from tests.controlcenter.commands.support import MemoryOverrideStore

# Registered as in the ``controlcenter`` application: a group of its own.
cli = typer.Typer()
cli.add_typer(commands_app, name="commands")

SINCE = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PUMP = Override("water.tank1.pump_cmd", False, "olga", "pump repair", SINCE)
VALVE = Override(
    "water.tank2.inlet_valve", 25.5, "otto", "flushing", SINCE, SINCE + timedelta(hours=1)
)


def test_rows_from_an_override_store() -> None:
    store = MemoryOverrideStore([VALVE, PUMP])
    rows = override_rows(store, SINCE + timedelta(minutes=5))
    assert rows == [
        {
            "tag": "water.tank1.pump_cmd",
            "value": "false",
            "who": "olga",
            "why": "pump repair",
            "since": "2026-03-02T08:00:00+00:00",
            "until": "until released",
        },
        {
            "tag": "water.tank2.inlet_valve",
            "value": "25.5",
            "who": "otto",
            "why": "flushing",
            "since": "2026-03-02T08:00:00+00:00",
            "until": "2026-03-02T09:00:00+00:00",
        },
    ]
    lapsed = override_rows(store, SINCE + timedelta(hours=2))
    assert lapsed[1]["until"] == "2026-03-02T09:00:00+00:00 (lapsed)"


def test_table_and_empty_table() -> None:
    rows = override_rows(MemoryOverrideStore([PUMP]), SINCE)
    table = render_overrides(rows, OverridesFormat.TABLE).splitlines()
    assert table[0].split() == ["tag", "value", "who", "why", "since", "until"]
    assert table[1].split("  ")[0] == "water.tank1.pump_cmd"
    assert "until released" in table[1]
    assert render_overrides([], OverridesFormat.TABLE) == "no active overrides"


def test_cli_reads_the_overrides_from_a_real_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'center.db'}"
    store = SqlHistorian(url)
    try:
        store.save_override(PUMP)
        store.save_override(VALVE)
    finally:
        store.close()
    runner = CliRunner()
    result = runner.invoke(cli, ["commands", "overrides", "--db", url, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(row["tag"], row["value"], row["who"]) for row in rows] == [
        ("water.tank1.pump_cmd", "false", "olga"),
        ("water.tank2.inlet_valve", "25.5", "otto"),
    ]
    table = runner.invoke(cli, ["commands", "overrides", "--db", url])
    assert table.exit_code == 0
    assert "pump repair" in table.output and "flushing" in table.output


def test_cli_with_no_overrides(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    SqlHistorian(url).close()
    result = CliRunner().invoke(cli, ["commands", "overrides", "--db", url])
    assert result.exit_code == 0
    assert result.output.strip() == "no active overrides"
