"""The city run by its rules over the real protocols: a lighting cabinet switched at simulated
civil dusk, an operator's override holding against the rule and released, an interlock
blocking a pump start, and a bad rule set refused while the running one goes on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from astral import Observer
from astral.sun import dusk

from controlcenter.model import (
    CommandOrigin,
    CommandResult,
    CommandStatus,
    EventKind,
    Role,
)
from controlcenter.ports import RuleSource, RuleVersionStatus
from controlcenter.runtime.app import ControlCenter
from controlcenter.runtime.demo_site import city_devices, render_site
from controlcenter.security.users import UserStore
from controlcenter.site.config import load_site
from historian.store import SqlHistorian
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
SPEED = 60.0
"""Simulated seconds per wall second: a minute of the evening per second of the test."""
SCAN_S = 10.0
"""Simulated seconds between scans: a sixth of a wall second at this speed."""
CABINET_MODE = "lights.d1.c1.mode"
CALCULATED = "lights.d1.power_total"
MODE_MANUAL = 1
MODE_OFF = 2

OVERLAY = """
site:
  name: Rules test city
  latitude: 52.37
  longitude: 4.90
  timezone: Europe/Amsterdam
automation:
  rule_files: [rules/lighting.yaml]
  identity: {name: rules, role: operator}
areas:
  - {name: water, tags: ["water.*"]}
  - {name: lighting, tags: ["lights.*"]}
interlocks:
  - name: water.tank1_full
    tags: [water.tank1.pump_cmd]
    block_when: water.tank1.level > -1.0
    applies_to: "true"
    message: tank 1 must not be filled (test interlock, always on)
"""

RULES = """calculated:
  - name: lights.d1.power_total
    description: District 1's streetlight power
    expression: lights.d1.c1.power + lights.d1.c2.power + lights.d1.c3.power
    unit: kW
rules:
  - name: lights.d1.c1.dusk
    description: The cabinet's lamps on at civil dusk
    owner: lighting
    triggers:
      - sun: civil_dusk
    actions:
      - command: lights.d1.c1.mode
        value: 1
  - name: lights.d1.c1.night
    description: Keep the cabinet on through the night
    owner: lighting
    triggers:
      - every: 1m
    condition: sun_elevation() < -7.0
    actions:
      - command: lights.d1.c1.mode
        value: 1
"""

BAD_RULES = """rules:
  - name: lights.d1.c1.dusk
    triggers:
      - sun: civil_dusk
    actions:
      - command: lights.d1.c1.mode
        value: lights.d1.c1.no_such_point + 1
"""


@dataclass
class RunningCenter:
    """The simulated city, the center watching it, and what the test needs of both."""

    city: SimulatedCity
    center: ControlCenter
    store: SqlHistorian
    civil_dusk: datetime


def _civil_dusk(day: date) -> datetime:
    return dusk(Observer(52.37, 4.90), day, tzinfo=AMSTERDAM)


@pytest_asyncio.fixture(loop_scope="session")
async def running(tmp_path: Path) -> AsyncIterator[RunningCenter]:
    """Water and lighting on free ports, three simulated minutes before civil dusk."""
    civil_dusk = _civil_dusk(date(2026, 11, 21))
    clock = SimClock(speed=SPEED, start=civil_dusk - timedelta(minutes=3))
    city = SimulatedCity(clock, CityOptions(seed=7, domains=frozenset({"water", "lights"})))
    await city.start()
    try:
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "lighting.yaml").write_text(RULES, encoding="utf-8")
        site_path = tmp_path / "site.yaml"
        site_text = render_site(OVERLAY, city_devices(city, scan_interval_s=SCAN_S), city.points())
        site_path.write_text(site_text, encoding="utf-8")
        site = await asyncio.to_thread(load_site, site_path)
        users = UserStore(tmp_path / "users.json")
        users.add_user("olga", "a long operator passphrase 1", Role.OPERATOR)
        users.add_user("vera", "a long viewer passphrase 22", Role.VIEWER)
        store = await asyncio.to_thread(SqlHistorian, f"sqlite:///{tmp_path / 'center.db'}")
        center = ControlCenter(site, store, clock, site_directory=tmp_path, users=users)
        stop = asyncio.Event()
        task = asyncio.create_task(center.run(stop))
        try:
            await asyncio.wait_for(center.ready.wait(), 30)
            yield RunningCenter(city, center, store, civil_dusk)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await asyncio.to_thread(store.close)
    finally:
        await city.stop()


async def _until(what: str, found: Callable[[], object], wall_timeout_s: float = 30.0) -> object:
    """Poll ``found`` until it returns something truthy, or fail after the deadline."""
    deadline = asyncio.get_running_loop().time() + wall_timeout_s
    while True:
        result = await asyncio.to_thread(found)
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _rule_commands(store: SqlHistorian, status: CommandStatus) -> list[CommandResult]:
    return [
        result
        for result in store.read_commands()
        if result.command.origin is CommandOrigin.RULE
        and result.command.tag == CABINET_MODE
        and result.status is status
    ]


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_rules_override_interlock_and_refused_set_in_the_running_city(
    running: RunningCenter,
) -> None:
    center, store = running.center, running.store
    olga = center.user("olga")

    # 1. At simulated civil dusk the rule switches the cabinet on, over OPC UA.
    confirmed = await _until(
        "the dusk rule's confirmed command",
        lambda: _rule_commands(store, CommandStatus.CONFIRMED),
    )
    assert isinstance(confirmed, list)
    first = confirmed[0]
    assert first.command.value == MODE_MANUAL and first.readback == MODE_MANUAL
    assert first.command.reason.startswith("lights.d1.c1.dusk")
    assert first.command.requested_by == "rules"
    issued = first.command.issued_at
    assert running.civil_dusk <= issued < running.civil_dusk + timedelta(minutes=1), issued

    # 2. An operator overrides the cabinet to off; the night rule's command is overridden.
    selection = await center.commands.select(CABINET_MODE, olga)
    assert selection.user == "olga"
    result = await center.commands.operate(
        selection.selection_id, olga, MODE_OFF, "lamp replacement in Hoofdstraat"
    )
    assert result.status is CommandStatus.CONFIRMED, result.reason
    assert [o.tag for o in center.commands.overrides()] == [CABINET_MODE]
    overridden = await _until(
        "the night rule's command journaled as overridden",
        lambda: _rule_commands(store, CommandStatus.OVERRIDDEN),
    )
    assert isinstance(overridden, list)
    assert overridden[0].command.reason.startswith("lights.d1.c1.night")
    assert center.live.latest(CABINET_MODE).value == MODE_OFF

    # 3. An interlock blocks starting tank 1's pump, named in the rejection and the journal.
    pump = await center.commands.select("water.tank1.pump_cmd", olga)
    assert pump.blocking_interlock is not None and "water.tank1_full" in pump.blocking_interlock
    blocked = await center.commands.operate(pump.selection_id, olga, True, "fill tank 1")
    assert blocked.status is CommandStatus.REJECTED
    assert "water.tank1_full" in blocked.reason
    journaled = [
        r for r in store.read_commands() if r.command.command_id == blocked.command.command_id
    ]
    assert journaled and "water.tank1_full" in journaled[0].reason

    # 4. A bad rule set is refused with file, line and column; the running set goes on.
    running_set = center.rules.rule_set
    version = store.add_rule_version(
        (RuleSource("rules/lighting.yaml", BAD_RULES),),
        "olga",
        "try a broken rule",
        center.clock.now(),
    )
    store.request_rule_version(version.version)
    refused = await _until(
        "the bad rule set refused",
        lambda: store.rule_version(version.version).status is RuleVersionStatus.REFUSED,
    )
    assert refused
    detail = store.rule_version(version.version).detail
    assert "rules/lighting.yaml:7:" in detail and "no_such_point" in detail, detail
    assert center.rules.rule_set is running_set

    # 5. The operator releases the override: control returns to the rule's value.
    before = len(_rule_commands(store, CommandStatus.CONFIRMED))
    released = await center.commands.release(CABINET_MODE, olga, "lamps replaced")
    assert released is not None and released.status is CommandStatus.CONFIRMED, released
    assert released.command.value == MODE_MANUAL
    assert center.commands.overrides() == []
    await _until(
        "the cabinet back on the rule's value",
        lambda: center.live.latest(CABINET_MODE).value == MODE_MANUAL,
    )
    events = store.read_events()
    assert any(e.kind is EventKind.RULE and "refused" in e.message for e in events)
    assert len(_rule_commands(store, CommandStatus.CONFIRMED)) >= before

    # 6. A good rule set is applied to the running center without a restart.
    calmer = RULES.replace("every: 1m", "every: 5m")
    good = store.add_rule_version(
        (RuleSource("rules/lighting.yaml", calmer),),
        "olga",
        "check every 5 minutes",
        center.clock.now(),
    )
    store.request_rule_version(good.version)
    await _until(
        "the good rule set active",
        lambda: store.rule_version(good.version).status is RuleVersionStatus.ACTIVE,
    )
    assert center.rules.rule_set is not running_set
    assert "every: 5m" in center.rules.rule_set.definition.sources[0].text
    assert any(e.kind is EventKind.RULE and "replaced" in e.message for e in store.read_events())

    # 7. The calculated tag is historized with its inputs' quality, equal to their sum.
    totals = [s for s in store.read_raw(CALCULATED) if s.quality.is_good]
    assert totals, "the calculated tag was not historized"
    last = totals[-1]
    parts = [
        [s for s in store.read_raw(f"lights.d1.c{n}.power") if s.server_time <= last.server_time]
        for n in (1, 2, 3)
    ]
    expected = sum(float(p[-1].value) for p in parts if isinstance(p[-1].value, float))
    assert last.value == pytest.approx(expected, abs=1e-6)

    # A viewer may not command at all.
    vera = center.user("vera")
    with pytest.raises(PermissionError):
        await center.commands.select(CABINET_MODE, vera)
