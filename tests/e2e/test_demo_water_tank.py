"""The whole demo at high simulated speed: the rule keeps the tank in its band, all journaled."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controlcenter.model import CommandOrigin, CommandStatus, EventKind
from controlcenter.runtime.demo import Demo, DemoOptions
from historian.store import SqlHistorian

SIMULATED = timedelta(hours=3)
SPEED = 600.0
"""Three simulated hours in 18 s of the test."""
SCAN_S = 30.0
"""Simulated seconds between scans: 50 ms of wall time at 600x."""


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_rule_keeps_tank_in_band_for_three_simulated_hours(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'demo.db'}"
    # 05:00 local: the night minimum, then the morning peak, so the level both falls and rises.
    start = datetime(2026, 11, 21, 5, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
    # The water network alone: this test is about the rule, not the load of the whole city.
    options = DemoOptions(
        speed=SPEED,
        db_url=db_url,
        seed=3,
        start=start,
        domains=frozenset({"water"}),
        scan_interval_s=SCAN_S,
        site_path=tmp_path / "site.yaml",
    )
    demo = Demo(options)
    stop = asyncio.Event()
    running = asyncio.create_task(demo.run(stop))
    await asyncio.wait_for(demo.ready.wait(), 30)
    await demo.clock.sleep(SIMULATED.total_seconds())
    stop.set()
    await asyncio.wait_for(running, 30)

    assert demo.center is not None
    definition = next(
        rule for rule in demo.center.rules.rule_set.definition.rules if rule.hysteresis is not None
    )
    rule = definition.hysteresis
    assert rule is not None and rule.output_tag == "water.tank1.pump_cmd"
    store = SqlHistorian(db_url)
    try:
        levels = store.read_raw("water.tank1.level")
        commands = store.read_commands()
        events = store.read_events()
    finally:
        store.close()

    good = [s for s in levels if s.quality.is_good]
    expected_scans = SIMULATED.total_seconds() / SCAN_S
    assert len(good) > 0.4 * expected_scans, "the tank was not polled at its scan interval"
    assert good[-1].source_time - good[0].source_time >= SIMULATED * 0.95
    values = [float(s.value) for s in good if isinstance(s.value, int | float)]
    # The pump starts after its start delay and scans are 30 s apart: allow that much travel.
    # 30 s scans, the simulator's 60 s physics steps (100 ms of wall time at 600x), a 5 s pump
    # start and the loop's latency at 600x: the level went 0.12 m past a switching level at most
    # on a busy machine.
    tolerance = 0.3
    assert min(values) >= rule.on_below - tolerance, min(values)
    assert max(values) <= rule.off_above + tolerance, max(values)
    assert min(values) < rule.on_below + 0.5, "the level never came near the switch-on level"

    by_rule = [
        c
        for c in commands
        if c.command.origin is CommandOrigin.RULE and c.command.tag == rule.output_tag
    ]
    assert len(by_rule) >= 2
    assert all(c.status is CommandStatus.CONFIRMED for c in by_rule), [c.reason for c in by_rule]
    assert {c.command.value for c in by_rule} == {True, False}
    # The rules command as the site's identity; the journal names the rule in each reason.
    assert all(c.command.requested_by == "rules" for c in by_rule)
    assert all(c.command.reason.startswith(definition.name) for c in by_rule)
    assert all(c.command.tag == "water.tank1.pump_cmd" and c.command.reason for c in by_rule)
    # Every start follows a low level, every stop a high one, as the journal explains.
    for result in by_rule:
        assert ("below" in result.command.reason) == (result.command.value is True)

    pump_running = store_values(db_url, "water.tank1.pump_running")
    assert True in pump_running and False in pump_running
    assert any(e.kind is EventKind.SYSTEM and "started" in e.message for e in events)
    assert any(e.kind is EventKind.SYSTEM and "stopped" in e.message for e in events)


def store_values(db_url: str, tag: str) -> set[object]:
    store = SqlHistorian(db_url)
    try:
        return {s.value for s in store.read_raw(tag) if s.quality.is_good}
    finally:
        store.close()
