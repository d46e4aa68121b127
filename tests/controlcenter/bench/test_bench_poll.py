"""``controlcenter bench poll`` end to end: a child simulator, the real driver and scan engine."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from controlcenter.cli.main import app

EXPECTED_KEYS = {
    "protocol",
    "mode",
    "tags",
    "devices",
    "scan_interval_s",
    "duration_s",
    "scans",
    "missed_scans",
    "scans_on_time_pct",
    "scanned_values_per_s",
    "bad_values",
    "latency_p95_ms",
    "requests_per_s",
    "cpu_cores_used",
    "sim_cpu_cores_used",
    "values_per_s",
    "capacity_requests_per_s",
    "naive_values_per_s",
    "speedup",
    "values_per_s_meaning",
}


def test_bench_poll_prints_one_json_object_with_sane_figures() -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "poll",
            "--protocol",
            "modbus",
            "--tags",
            "300",
            "--per-device",
            "160",
            "--scan",
            "0.5",
            "--duration",
            "2",
            "--capacity",
            "0.5",
        ],
    )
    figures = _figures(result.exit_code, result.output, result.stdout)
    assert set(figures) == EXPECTED_KEYS
    assert figures["protocol"] == "modbus" and figures["mode"] == "poll"
    assert figures["tags"] == 300 and figures["devices"] == 2
    assert figures["scan_interval_s"] == 0.5 and figures["duration_s"] == 2
    assert figures["bad_values"] == 0
    # Two devices at 0.5 s for 2 s: about 4 scans each after a staggered start.
    assert 4 <= figures["scans"] <= 10
    assert 0 <= figures["scans_on_time_pct"] <= 100
    # About 300 values per 0.5 s were asked for.
    assert 200 <= figures["scanned_values_per_s"] <= 700
    assert figures["latency_p95_ms"] > 0
    assert figures["requests_per_s"] > 0
    assert figures["values_per_s"] > figures["naive_values_per_s"] > 0
    assert figures["speedup"] > 1
    assert figures["cpu_cores_used"] >= 0 and figures["sim_cpu_cores_used"] >= 0


def test_an_unknown_protocol_is_refused_naming_the_available_ones() -> None:
    result = CliRunner().invoke(
        app, ["bench", "poll", "--protocol", "profibus", "--tags", "10", "--duration", "1"]
    )
    assert result.exit_code == 2
    assert "modbus" in result.output


def _figures(exit_code: int, output: str, stdout: str) -> dict[str, Any]:
    assert exit_code == 0, output
    figures: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return figures


def _bench(protocol: str, *options: str) -> dict[str, Any]:
    command = ["bench", "poll", "--protocol", protocol, "--tags", "80", "--per-device", "40"]
    result = CliRunner().invoke(app, [*command, *options])
    return _figures(result.exit_code, result.output, result.stdout)


def test_opcua_bench_subscribes_and_measures_age_and_restore() -> None:
    figures = _bench("opcua", "--scan", "1", "--duration", "2", "--capacity", "0.5")
    assert set(figures) == EXPECTED_KEYS | {"read_values_per_s", "restore_s"}
    assert figures["mode"] == "subscribe"
    assert figures["tags"] == 80 and figures["devices"] == 2
    # Every value changes once a second: about 80 notifications per second, all Good.
    assert 40 <= figures["scanned_values_per_s"] <= 160
    assert figures["values_per_s"] == figures["scanned_values_per_s"]
    assert figures["bad_values"] == 0
    assert 0 <= figures["scans_on_time_pct"] <= 100
    # Source timestamp to arrival: positive, and well under the stale limit of 3 intervals.
    assert 0 < figures["latency_p95_ms"] < 3000
    assert figures["read_values_per_s"] > 0
    assert figures["naive_values_per_s"] is None and figures["speedup"] is None
    # One server restarted while subscribed; every point delivered again.
    assert figures["restore_s"] is not None and 0 < figures["restore_s"] < 60


def test_bacnet_bench_polls_with_rpm_and_measures_cov_latency() -> None:
    figures = _bench("bacnet", "--scan", "1", "--duration", "2", "--capacity", "0.5")
    assert set(figures) == EXPECTED_KEYS | {"cov_latency_p95_ms", "cov_notifications"}
    assert figures["mode"] == "poll"
    assert figures["tags"] == 80 and figures["devices"] == 2
    assert figures["scans"] >= 2
    assert figures["scanned_values_per_s"] > 0
    assert figures["requests_per_s"] > 0 and figures["values_per_s"] > 0
    # Changes of a sample of analog points arrive by COV, each timed from its tick.
    assert figures["cov_notifications"] > 0
    assert 0 < figures["cov_latency_p95_ms"] < 5000
