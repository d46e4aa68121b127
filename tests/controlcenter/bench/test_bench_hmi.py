"""``controlcenter bench hmi``: a quick run with tiny settings, its figures checked for sense."""

from __future__ import annotations

import random

import pytest
from typer.testing import CliRunner

from controlcenter.bench.hmi import (
    SEEN_TIMEOUT_S,
    SWITCH_TOUR,
    HmiBenchError,
    HmiBenchOptions,
    Traffic,
    choose_probe,
    next_value,
    percentile,
    run_hmi_bench,
)
from controlcenter.cli.main import app

TINY = HmiBenchOptions(
    scale=1,
    sessions=2,
    duration_s=3.0,
    min_changes=4,
    idle_s=1.0,
    warm_up_s=2.0,
    switch_rounds=1,
    domains=frozenset({"water"}),
)


@pytest.mark.e2e
@pytest.mark.timeout(300)
async def test_a_tiny_run_reports_every_figure_with_sensible_numbers() -> None:
    figures = await run_hmi_bench(TINY)

    assert {
        "scale",
        "sessions",
        "display",
        "devices",
        "tags",
        "sim_cpu_cores",
        "probe_tag",
        "field_change_to_screen",
        "display_switch_ms",
        "display_switch_max_ms",
        "live_stream",
        "dash_callbacks",
        "center_cpu",
    } <= set(figures)
    assert figures["sessions"] == 2 and figures["devices"] > 0
    assert figures["probe_tag"].startswith("water.ps1.")

    field = figures["field_change_to_screen"]
    assert field["changes"] >= TINY.min_changes
    assert field["observations"] + field["missed"] == field["changes"] * TINY.sessions
    # Every screen showed nearly every change, and no faster than physics allows.
    assert field["observations"] >= field["changes"] * TINY.sessions - 1
    assert 0 < field["p50_ms"] <= field["p95_ms"] <= field["max_ms"] < SEEN_TIMEOUT_S * 1000

    switches = figures["display_switch_ms"]
    assert set(switches) == {path or TINY.faceplate for path in SWITCH_TOUR}
    for path, figure in switches.items():
        assert figure["timeouts"] == 0, path
        assert 0 < figure["median_ms"] <= figure["max_ms"] < 15_000, path
    assert figures["display_switch_max_ms"] == max(f["max_ms"] for f in switches.values())

    stream = figures["live_stream"]
    assert stream["bytes_per_s_per_browser"] > 0 and stream["messages_per_s_per_browser"] > 0
    # A message carries a few changed values, never a whole display.
    assert 20 < stream["bytes_per_message"] < 20_000
    assert figures["dash_callbacks"]["requests_per_min_per_browser"] >= 0

    cpu = figures["center_cpu"]
    assert 0 < cpu["idle_cores"] < 2.5 and 0 < cpu["with_sessions_cores"] < 2.5
    assert cpu["hmi_cores"] == pytest.approx(cpu["with_sessions_cores"] - cpu["idle_cores"], 0.01)


def test_the_probe_is_a_speed_setpoint_the_display_shows() -> None:
    writable = {"water.ps1.auto_sp": (None, 0.0, 10.0), "water.ps1.pump2.speed": (None, 0, 100)}
    shown = ["water.ps1.flow", "water.ps1.auto_sp", "water.ps1.pump2.speed"]
    assert choose_probe(shown, writable) == "water.ps1.pump2.speed"
    assert choose_probe(shown[:2], writable) == "water.ps1.auto_sp"
    with pytest.raises(HmiBenchError, match="no writable number"):
        choose_probe(["water.ps1.flow"], writable)


def test_each_new_value_differs_visibly_from_the_last() -> None:
    rng = random.Random(3)
    previous = None
    for _ in range(200):
        value = next_value(0.0, 100.0, previous, rng)
        assert 50.0 <= value <= 100.0
        assert previous is None or abs(value - previous) >= 10.0
        previous = value


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.95) == 95.0
    assert percentile([], 0.5) is None


def test_traffic_counts_the_stream_and_the_callbacks_apart() -> None:
    traffic = Traffic()
    traffic.on_request({"requestId": "1", "request": {"url": "http://h/live/stream?tags=a"}})
    traffic.on_request(
        {"requestId": "2", "request": {"url": "http://h/_dash-update-component", "postData": "{}"}}
    )
    traffic.on_data({"requestId": "1", "dataLength": 120})
    traffic.on_data({"requestId": "2", "dataLength": 999})
    traffic.on_message({"eventName": "values", "data": '{"a": 1}'})
    traffic.on_finished({"requestId": "2", "encodedDataLength": 300})
    assert traffic.stream_bytes == 120 and traffic.stream_messages == 1
    assert traffic.value_messages == 1
    assert traffic.dash_requests == 1 and traffic.dash_bytes == 302
    traffic.reset()
    assert traffic.stream_bytes == traffic.dash_bytes == traffic.dash_requests == 0


def test_the_command_refuses_a_display_that_is_no_path() -> None:
    result = CliRunner().invoke(app, ["bench", "hmi", "--display", "water"])
    assert result.exit_code == 2
    assert "paths" in result.output
