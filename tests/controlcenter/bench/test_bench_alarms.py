"""``controlcenter bench alarms``: engine CPU share, latency, a flood, and the KPI query."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controlcenter.automation import AlarmAction, AlarmKind
from controlcenter.bench.alarms import (
    KPI_START,
    TINY,
    AlarmsBenchError,
    AlarmsBenchSize,
    alarm_flood,
    limit_alarm_site,
    random_walk_seconds,
    run_alarms_bench,
    synthetic_journal,
)
from controlcenter.cli.main import app


def test_bench_alarms_prints_every_figure_with_its_target() -> None:
    result = CliRunner().invoke(app, ["bench", "alarms", "--size", "tiny"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures) == {"engine", "latency", "flood", "kpi"}
    engine = figures["engine"]
    assert engine["tags"] == TINY.tags and engine["alarms"] == 2 * TINY.tags
    assert engine["samples_per_s"] == TINY.tags and engine["target_cores"] == 0.15
    # The random walk crosses the limits: the engine did report changes.
    assert engine["condition_changes"] > 0 and engine["cpu_s"] > 0
    latency = figures["latency"]
    assert latency["samples"] == TINY.tags * TINY.latency_seconds
    # Every tag pushed over its limit raised its alarm, and the listener heard each one.
    assert latency["transitions"] == TINY.raised_per_s * TINY.latency_seconds
    assert 0 < latency["p50_s"] <= latency["p95_s"] <= latency["max_s"]
    assert latency["target_p95_s"] == 1.0
    flood = figures["flood"]
    assert flood["alarms"] == flood["journaled"] == flood["saved_active"] == TINY.flood_alarms
    assert flood["pass"] is True
    kpi = figures["kpi"]
    assert kpi["transitions"] == TINY.kpi_transitions and kpi["target_s"] == 2.0
    assert kpi["annunciated"] > 0 and kpi["query_s"] > 0
    for part in figures.values():
        assert isinstance(part["pass"], bool)


def test_synthetic_site_has_a_high_and_a_low_alarm_per_tag() -> None:
    tags, alarms = limit_alarm_site(250)
    assert len(tags) == 250 and len(alarms) == 500
    assert Counter(alarm.kind for alarm in alarms) == {AlarmKind.HIGH: 250, AlarmKind.LOW: 250}
    assert {alarm.tag for alarm in alarms} == {tag.name for tag in tags}
    assert len({tag.device for tag in tags}) == 3


def test_random_walk_samples_every_tag_once_a_second_in_batches() -> None:
    tags, _ = limit_alarm_site(250)
    batches = random_walk_seconds(tags, 3, 100, KPI_START)
    assert len(batches) == 9 and all(len(batch) <= 100 for _, batch in batches)
    samples = [sample for _, batch in batches for sample in batch]
    assert Counter(sample.tag for sample in samples) == {tag.name: 3 for tag in tags}
    values = [sample.numeric for sample in samples]
    assert all(value is not None and 0.0 <= value <= 100.0 for value in values)


def test_synthetic_journal_has_floods_shelving_and_bad_actors() -> None:
    journal = synthetic_journal(6_000, 40, 2.0, KPI_START)
    assert len(journal) == 6_000
    assert all(KPI_START <= t.time < KPI_START + timedelta(days=2, hours=9) for t in journal)
    actions = Counter(t.action for t in journal)
    assert actions[AlarmAction.ACTIVATE] > 1_000 and actions[AlarmAction.SHELVE] > 0
    activations = Counter(t.alarm for t in journal if t.action is AlarmAction.ACTIVATE)
    # The first alarm is the worst actor by design.
    assert activations.most_common(1)[0][0] == "bench.alarm0000"


def test_a_flood_is_journaled_whole(tmp_path: Path) -> None:
    flood = alarm_flood(60, tmp_path / "flood.db")
    assert flood.journaled == 60 and flood.saved_active == 60
    assert 0.9 <= flood.wall_s < 5.0


def test_sizes_out_of_range_are_refused() -> None:
    with pytest.raises(AlarmsBenchError, match="at least 1"):
        run_alarms_bench(AlarmsBenchSize(tags=0))
    with pytest.raises(AlarmsBenchError, match="raised_per_s"):
        run_alarms_bench(AlarmsBenchSize(tags=10, raised_per_s=6))
