"""``controlcenter bench scaleout``: how the city is dealt to edges, the run's own database, and
a tiny run end to end (edges and a center on the machine's NATS and PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from controlcenter.bench.scaleout import (
    _busiest_tags,
    _rate_over,
    _writable_tags,
    fresh_database_url,
    split_site,
)

POSTGRES_URL = os.environ.get("CC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _site(devices: dict[str, int]) -> dict[str, Any]:
    """A site of ``devices`` (name → number of points)."""
    return {
        "devices": [{"name": name} for name in devices],
        "tags": [
            {"name": f"{name}.p{index}", "device": name}
            for name, count in devices.items()
            for index in range(count)
        ],
    }


def test_domains_stay_whole_and_the_edges_are_balanced() -> None:
    site = _site(
        {
            "lights.d1_ctrl": 400,
            "lights.d2_ctrl": 400,
            "water.rtu1": 300,
            "water.rtu2": 200,
            "heat.plc1": 350,
            "bldg.school": 100,
            "bldg.hall": 50,
        }
    )
    owned = split_site(site, 3)
    assert set(owned) == {"e1", "e2", "e3"}
    edge_of = {device["name"]: device["edge"] for device in site["devices"]}
    assert sorted(edge_of) == sorted(name for names in owned.values() for name in names)
    for domain in ("lights", "water", "heat", "bldg"):
        assert len({edge for name, edge in edge_of.items() if name.startswith(domain)}) == 1
    # lights (800) alone; water (500) and heat (350) + bldg (150) share the other two.
    loads = sorted(
        sum(1 for tag in site["tags"] if edge_of[tag["device"]] == edge) for edge in owned
    )
    assert loads == [500, 500, 800]


def test_fewer_domains_than_edges_deals_devices() -> None:
    site = _site({"water.a": 10, "water.b": 10, "water.c": 10})
    owned = split_site(site, 3)
    assert sorted(len(devices) for devices in owned.values()) == [1, 1, 1]


def test_split_refuses_no_edge() -> None:
    with pytest.raises(ValueError, match="at least one edge"):
        split_site(_site({"water.a": 1}), 0)


def test_fresh_database_url_replaces_only_the_database() -> None:
    url = fresh_database_url("postgresql://postgres@127.0.0.1:5432/test?sslmode=disable", "cc_x")
    assert url == "postgresql://postgres@127.0.0.1:5432/cc_x?sslmode=disable"


def test_commands_go_to_analogue_setpoints_only() -> None:
    site = {
        "devices": [{"name": "lights.d1"}, {"name": "water.t1"}],
        "tags": [
            {"name": "lights.d1.mode", "device": "lights.d1", "writable": True, "data_type": "int"},
            {"name": "water.t1.pump", "device": "water.t1", "writable": True, "data_type": "bool"},
            {"name": "water.t1.valve", "device": "water.t1", "writable": True},
            {"name": "water.t1.level", "device": "water.t1", "data_type": "float"},
        ],
    }
    owned = {"e1": ["lights.d1"], "e2": ["water.t1"]}
    assert _writable_tags(site, owned) == ["water.t1.valve"]


def test_rates_are_taken_over_the_last_span_of_the_row_counts() -> None:
    seen = [(0.0, 0), (1.0, 100), (2.0, 5_000), (3.0, 9_000), (7.0, 9_400)]
    assert _rate_over(seen[:3], 5.0) is None  # not five seconds of counts yet
    assert _rate_over(seen, 5.0) == 4_400 / 5.0  # from t=2, the newest point at least 5 s back
    assert _rate_over(seen, 4.0) == 400 / 4.0


def test_the_latency_probe_watches_each_edges_busiest_tags() -> None:
    site = {
        "devices": [{"name": "lights.d1"}, {"name": "water.t1"}],
        "tags": [
            {"name": f"{device}.p{index}", "device": device}
            for device in ("lights.d1", "water.t1")
            for index in range(20)
        ],
    }
    counts = {"lights.d1.p3": 50, "lights.d1.p7": 40, "water.t1.p0": 2, "water.t1.p9": 90}
    chosen = _busiest_tags(counts, site, {"e1": ["lights.d1"], "e2": ["water.t1"]})
    assert len(chosen) == 20
    assert chosen[:2] == ["lights.d1.p3", "lights.d1.p7"]
    assert chosen[10:12] == ["water.t1.p9", "water.t1.p0"]


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_tiny_scaleout_run_loses_nothing() -> None:
    before = _scaleout_databases()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "controlcenter.cli.main",
            "bench",
            "scaleout",
            "--size",
            "tiny",
            "--db",
            POSTGRES_URL,
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert figures["points"] > 1000
    assert figures["values_per_s"] > 0
    assert figures["published"] is not None and figures["published"] > 0
    assert figures["lost"] == 0
    # Every command is an analogue setpoint in range: each one is confirmed by its read back.
    assert set(figures["commands"]) == {"confirmed"}, figures["commands"]
    assert figures["command_p95_ms"] is not None
    assert len(figures["edges"]) == 3
    # The center stopped and started again worked off the backlog, and nothing was lost.
    assert figures["catch_up"]["values_per_s"] > 0 and figures["catch_up"]["rows"] > 0
    assert figures["catch_up"]["caught_up"] is True
    # The run's own database is gone again.
    assert _scaleout_databases() == before


def _scaleout_databases() -> set[str]:
    with psycopg.connect(POSTGRES_URL) as connection:
        rows = connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'cc_scaleout_%'"
        ).fetchall()
    return {str(row[0]) for row in rows}
