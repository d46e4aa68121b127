"""``controlcenter bench city``: the simulated city in a child process, polled by the center."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from controlcenter.cli.main import app

PER_PROTOCOL_KEYS = {
    "devices",
    "points",
    "scans",
    "missed_scans",
    "scans_on_time_pct",
    "values_per_s",
    "good_pct",
    "latency_p95_ms",
}
EXPECTED_KEYS = PER_PROTOCOL_KEYS | {
    "scale",
    "scan_interval_s",
    "duration_s",
    "start_s",
    "connect_s",
    "warm_up_s",
    "sim_cpu_cores_used",
    "center_cpu_cores_used",
    "sim_response_p95_ms",
    "sim_response_max_ms",
    "physics_interval_p95_ms",
    "physics_interval_max_ms",
    "physics_step_p95_ms",
    "protocols",
}


def test_bench_city_polls_every_device_of_the_city_and_prints_one_json_object() -> None:
    result = CliRunner().invoke(app, ["bench", "city", "--scale", "1", "--duration", "3"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures) == EXPECTED_KEYS
    assert figures["scale"] == 1 and figures["duration_s"] == 3
    assert figures["start_s"] > 0 and figures["connect_s"] >= 0
    assert set(figures["protocols"]) == {"modbus", "opcua", "bacnet"}
    for protocol in figures["protocols"].values():
        assert set(protocol) == PER_PROTOCOL_KEYS
        assert protocol["devices"] > 0 and protocol["points"] > 0
    assert figures["devices"] == sum(p["devices"] for p in figures["protocols"].values())
    assert figures["points"] == sum(p["points"] for p in figures["protocols"].values())
    # Devices were scanned in the window, and values arrived.
    assert figures["scans"] > 0
    assert figures["values_per_s"] > 0 and 0 < figures["good_pct"] <= 100
    assert 0 <= figures["scans_on_time_pct"] <= 100
    assert figures["sim_cpu_cores_used"] > 0 and figures["center_cpu_cores_used"] > 0
    assert figures["sim_response_max_ms"] is not None
    # The simulator's physics stepped in the window, each step after its 100 ms period.
    assert figures["physics_interval_p95_ms"] >= 90
    assert figures["physics_interval_max_ms"] >= figures["physics_interval_p95_ms"]
    assert figures["physics_step_p95_ms"] > 0
