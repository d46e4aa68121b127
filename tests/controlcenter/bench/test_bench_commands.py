"""``controlcenter bench commands``: setpoints of the simulated city commanded and read back."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from controlcenter.bench.commands import (
    CommandsBenchError,
    CommandsBenchOptions,
    percentile,
    run_commands_bench,
)
from controlcenter.cli.main import app

PROTOCOL_KEYS = {"sent", "confirmed", "p50_ms", "p95_ms", "max_ms"}


def test_bench_commands_confirms_every_command_of_every_protocol() -> None:
    result = CliRunner().invoke(app, ["bench", "commands", "--commands", "3"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures) == {
        "commands_per_protocol",
        "sent",
        "confirmed",
        "target_p95_ms",
        "pass",
        "protocols",
    }
    assert set(figures["protocols"]) == {"modbus", "opcua", "bacnet"}
    for protocol in figures["protocols"].values():
        assert set(protocol) == PROTOCOL_KEYS
        assert protocol["sent"] == 3 and protocol["confirmed"] == 3
        assert 0 < protocol["p50_ms"] <= protocol["p95_ms"] <= protocol["max_ms"]
    assert figures["sent"] == figures["confirmed"] == 9
    assert figures["target_p95_ms"] == 1000.0
    assert isinstance(figures["pass"], bool)


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([3.0, 1.0, 2.0], 1.0) == 3.0


async def test_no_commands_is_refused() -> None:
    with pytest.raises(CommandsBenchError, match="at least one"):
        await run_commands_bench(CommandsBenchOptions(commands_per_protocol=0))
