"""Waste containers: levels rise with use, drop when collected (on their weekday or on
demand), report at once past 80 %, report every 10-60 min, and a silent sensor is silent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from plc_sim.waste.containers import FULL_ALERT_PCT, RESIDUE_PCT, WasteNetwork
from tests.plc_sim.sim_weather import run

SUNDAY = datetime(2026, 6, 21, 8, 0, tzinfo=UTC)


def test_levels_rise_with_use_and_drop_on_collection_day() -> None:
    waste = WasteNetwork(seed=5)
    before = {c.name: c.fill_pct for c in waste.containers}
    run(waste, SUNDAY, 10.0, step_s=300.0)  # a Sunday: no collections
    assert all(c.fill_pct > before[c.name] for c in waste.containers)
    run(waste, SUNDAY, 24 * 6, step_s=600.0)  # the working week: every container collected
    assert all(c.collected_on is not None for c in waste.containers)
    assert all(0.0 <= c.fill_pct <= 100.0 for c in waste.containers)


def test_crossing_80_percent_reports_at_once_and_collecting_empties() -> None:
    waste = WasteNetwork(seed=5)
    sensor = next(s for s in waste.sensors() if s.id == "c003")
    waste.fill("waste.c003", 50.0)
    sensor.report_now = False
    waste.fill("waste.c003", FULL_ALERT_PCT + 5)
    assert sensor.report_now
    assert [c.name for c in waste.full()][:1] == ["waste.c003"] or waste.full()[0].fill_pct >= 85
    sensor.report_now = False
    waste.collect("waste.c003")
    assert waste.container("waste.c003").fill_pct == RESIDUE_PCT
    assert sensor.report_now
    with pytest.raises(ValueError, match="outside"):
        waste.fill("waste.c003", 140.0)
    with pytest.raises(KeyError, match=r"waste\.c999"):
        waste.fill("waste.c999", 10.0)


def test_sensors_report_every_10_to_60_minutes_and_can_go_silent() -> None:
    waste = WasteNetwork(seed=5)
    intervals = {sensor.interval_s for sensor in waste.sensors()}
    assert min(intervals) >= 600 and max(intervals) <= 3600 and len(intervals) > 2
    waste.stop_reporting("waste.c001")
    assert next(s for s in waste.sensors() if s.id == "c001").silent


def test_a_fire_heats_the_container() -> None:
    waste = WasteNetwork(seed=5)
    run(waste, SUNDAY, 0.5)
    waste.start_fire("waste.c004")
    run(waste, SUNDAY, 0.5)
    assert waste.container("waste.c004").temp_c > 100.0
    assert waste.container("waste.c005").temp_c < 30.0
