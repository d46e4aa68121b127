"""``controlcenter bench api``: the tiny run through the command line, its figures checked for
sense; the choices it makes (tags, batches, a day of samples) checked on their own."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from controlcenter.bench.api import (
    SEEN_TIMEOUT_S,
    TINY,
    ApiBenchOptions,
    batches,
    day_of_samples,
    history_tag,
    spread_tags,
    stream_probe,
)
from controlcenter.cli.main import app
from controlcenter.runtime.demo import load_demo_site


def test_the_choices_spread_over_the_site() -> None:
    site = load_demo_site()
    names = spread_tags(site, 1000)
    assert len(names) == len(set(names)) == 1000
    # Every domain of the city is among the tags read.
    assert {name.split(".")[0] for name in names} == {t.name.split(".")[0] for t in site.tags}
    cut = batches(names, 25)
    assert len(cut) == 40 and all(len(b) == 25 for b in cut)
    assert [n for b in cut for n in b] == names
    assert history_tag(site).name == "water.tank1.level"
    probe = stream_probe(site)
    assert probe.writable and probe.name.endswith(".speed")
    end = datetime(2026, 12, 6, tzinfo=UTC)
    day = day_of_samples("water.tank1.level", end, 24)
    assert len(day) == 86_400 and day[-1].server_time == end - timedelta(seconds=1)
    assert day[0].server_time == end - timedelta(hours=24)
    with pytest.raises(ValueError, match=">= 1"):
        ApiBenchOptions(tags=0)
    with pytest.raises(ValueError, match="positive"):
        ApiBenchOptions(rate=0)


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_the_tiny_run_prints_one_json_object_with_sensible_figures() -> None:
    result = CliRunner().invoke(app, ["bench", "api", "--size", "tiny"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["devices"] > 0 and figures["site_tags"] >= TINY.tags

    live = figures["live_values"]
    assert live["tags"] == TINY.tags and live["tags_per_request"] == TINY.batch
    assert live["requests"] == round(TINY.rate * TINY.duration_s)
    # Every request answered, each with a value for every name it asked.
    assert live["ok"] == live["requests"] and live["errors"] == {}
    assert 0 < live["latency"]["p50_ms"] <= live["latency"]["p95_ms"] <= live["latency"]["max_ms"]
    # A few names on an idle center: well under the delayed-ACK stall (~40 ms) that small
    # answers would show if the server's sockets waited for the client's ACK.
    assert live["service_time"]["p50_ms"] < 35
    assert 0 < live["center_cpu_cores"] < 2.5

    history = figures["history_raw"]
    assert history["stored_values"] == round(TINY.hours * 3600)
    assert history["ok"] == history["requests"] == TINY.history_requests
    # The whole filled window in one answer (the center's own samples fall after it).
    assert history["values_per_answer"] == history["stored_values"]
    # The columns shape: two times in milliseconds, a value and a quality index per value.
    assert history["bytes_per_answer"] > 20 * history["values_per_answer"]
    assert 0 < history["latency"]["p95_ms"] < 10_000

    stream = figures["stream"]
    assert stream["clients"] == TINY.streams and stream["changes"] == TINY.changes
    assert stream["observations"] + stream["missed"] == TINY.changes * TINY.streams
    assert stream["missed"] == 0
    field = stream["field_change_to_client"]
    # A change reaches the client after the device's next scan, never before the write.
    assert 0 < field["p50_ms"] <= field["max_ms"] < SEEN_TIMEOUT_S * 1000
    assert field["max_ms"] < (stream["scan_interval_s"] + 2) * 1000
    sample = stream["sample_to_client"]
    assert 0 <= sample["p95_ms"] <= field["max_ms"]
