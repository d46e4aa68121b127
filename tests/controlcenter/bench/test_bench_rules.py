"""``controlcenter bench rules``: expression rate, the live engine's CPU share, backtest speed."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from controlcenter.bench.rules import (
    BENCH_START,
    TINY,
    DataClock,
    RulesBenchError,
    RulesBenchSize,
    run_rules_bench,
    synthetic_rule_set,
    synthetic_seconds,
    synthetic_tags,
)
from controlcenter.cli.main import app

ENGINE_KEYS = {
    "tags",
    "rules",
    "calculated",
    "seconds",
    "values_per_s",
    "cpu_s",
    "cores",
    "commands",
    "events",
    "calculated_samples",
    "target_cores",
    "pass",
}
BACKTEST_KEYS = {
    "rules",
    "tags",
    "hours",
    "workers",
    "samples",
    "write_s",
    "wall_s",
    "samples_per_s",
    "commands",
    "events",
    "target_s",
    "pass",
}


def test_bench_rules_prints_every_figure_with_its_target() -> None:
    result = CliRunner().invoke(app, ["bench", "rules", "--size", "tiny"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures) == {"expression", "engine", "backtest"}
    expression = figures["expression"]
    assert set(expression) == {"evaluations", "evaluations_per_s", "target_per_s", "pass"}
    assert expression["evaluations"] == TINY.evaluations and expression["evaluations_per_s"] > 0
    assert expression["target_per_s"] == 200_000
    engine = figures["engine"]
    assert set(engine) == ENGINE_KEYS
    assert engine["rules"] == TINY.rules and engine["calculated"] == TINY.calculated
    assert engine["seconds"] == TINY.engine_seconds and engine["target_cores"] == 0.2
    # Every tag is fed once a second, and the engine did compute calculated tags.
    assert engine["values_per_s"] == engine["tags"]
    assert engine["calculated_samples"] > 0 and engine["cpu_s"] > 0
    backtest = figures["backtest"]
    assert set(backtest) == BACKTEST_KEYS
    assert backtest["rules"] == TINY.backtest_rules and backtest["target_s"] == 30
    assert backtest["samples"] == backtest["tags"] * int(TINY.backtest_hours * 3600)
    assert backtest["workers"] == TINY.backtest_workers == 2
    assert backtest["wall_s"] > 0
    for part in figures.values():
        assert isinstance(part["pass"], bool)


def test_synthetic_site_has_the_asked_size() -> None:
    tags, assets = synthetic_tags(1400)
    assert len(tags) == 1400 and len(assets) == 100
    rule_set = synthetic_rule_set(tags, assets, 200, 50)
    assert len(rule_set.rules) == 200 and len(rule_set.calculated) == 50
    kinds = {
        "hysteresis"
        if rule.hysteresis
        else "for"
        if rule.definition.hold_for_s
        else "timed"
        if rule.timed_triggers
        else "change"
        for rule in rule_set.rules
    }
    assert kinds == {"hysteresis", "for", "timed", "change"}


def test_synthetic_seconds_give_every_tag_once_a_second_in_scan_batches() -> None:
    tags, _ = synthetic_tags(140)
    batches = synthetic_seconds(tags, 3, 60)
    assert all(len(batch) <= 60 for batch in batches)
    samples = [sample for batch in batches for sample in batch]
    assert len(samples) == 3 * len(tags)
    assert {sample.server_time for sample in samples} == {
        BENCH_START + timedelta(seconds=s) for s in range(3)
    }


async def test_data_clock_sleepers_wake_when_the_data_moves_on() -> None:
    clock = DataClock(BENCH_START)
    sleeper = asyncio.create_task(clock.sleep(5.0))
    await asyncio.sleep(0)  # the sleeper starts at 0 s: it wakes at 5 s
    clock.move_to(BENCH_START + timedelta(seconds=3))
    await asyncio.sleep(0)
    assert not sleeper.done()
    clock.move_to(BENCH_START + timedelta(seconds=5))
    await asyncio.wait_for(sleeper, 1.0)
    assert clock.monotonic() == 5.0


def test_empty_sizes_are_refused() -> None:
    with pytest.raises(RulesBenchError, match="at least 1"):
        run_rules_bench(RulesBenchSize(rules=0))


def test_bench_group_lists_the_rules_commands_and_outcomes_benches() -> None:
    result = CliRunner().invoke(app, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    for name in ("rules", "commands", "outcomes"):
        assert name in result.stdout
    outcomes = CliRunner().invoke(app, ["bench", "outcomes", "--help"])
    assert outcomes.exit_code == 0 and "--days" in outcomes.stdout and "--seed" in outcomes.stdout
