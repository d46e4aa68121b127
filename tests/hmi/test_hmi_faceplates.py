"""Faceplates (level 3) drawn for the demo city's site through fake ports.

The fakes here (the demo site's tags with steady values, alarms, history and a command
pipeline that records its calls) are shared by the domain display and command panel tests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import plotly.utils
import pytest

from controlcenter.automation import AlarmDef, AlarmState, AssetDef
from controlcenter.model import (
    Command,
    CommandLimits,
    CommandOrigin,
    CommandPriority,
    CommandResult,
    CommandStatus,
    DataType,
    Event,
    Override,
    Quality,
    Role,
    Sample,
    Selection,
    Substatus,
    TagDef,
    User,
    Value,
)
from controlcenter.ports import SelectionRefusedError
from controlcenter.site.config import SiteConfig, load_site
from hmi.context import HmiContext
from hmi.faceplates import key_tags, recent_commands, render_faceplate
from hmi.faceplates.parts import (
    alarm_limits,
    asset_alarms,
    find_asset,
    site_assets,
    tags_under,
)
from hmi.page import PageRequest
from hmi.pages import asset as asset_page

DEMO_SITE = Path(__file__).resolve().parents[2] / "controlcenter" / "sites" / "demo.yaml"
NOW = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
OPERATOR = User("olga", Role.OPERATOR)
VIEWER = User("vera", Role.VIEWER)


@cache
def demo_site() -> SiteConfig:
    """The demo city's site file, loaded once."""
    return load_site(DEMO_SITE)


def steady_value(tag: TagDef) -> Value:
    """A plausible value: the middle of the tag's range, False for booleans."""
    if tag.data_type is DataType.BOOL:
        return False
    if tag.data_type is DataType.STRING:
        return "x"
    low = tag.low if tag.low is not None else 0.0
    high = tag.high if tag.high is not None else 100.0
    middle = (low + high) / 2
    return round(middle) if tag.data_type is DataType.INT else middle


class DemoLive:
    """LiveView over the demo site's tags: steady values, some set by the test."""

    def __init__(self, tags: Sequence[TagDef]) -> None:
        self._tags = tuple(tags)
        self._by_name = {tag.name: tag for tag in tags}
        self.values: dict[str, Sample] = {}

    def set(self, name: str, value: Value | None, quality: Quality | None = None) -> None:
        """Give tag ``name`` a value (and quality)."""
        self.values[name] = Sample(name, value, quality or Quality.good(), NOW, NOW)

    def tags(self) -> Sequence[TagDef]:
        """Every tag of the site."""
        return self._tags

    def latest(self, tag: str) -> Sample:
        """The value set by the test, else the steady one."""
        if tag in self.values:
            return self.values[tag]
        return Sample(tag, steady_value(self._by_name[tag]), Quality.good(), NOW, NOW)

    def snapshot(self) -> Mapping[str, Sample]:
        """Every tag's latest sample."""
        return {tag.name: self.latest(tag.name) for tag in self._tags}


@dataclass
class DemoHistory:
    """History: a short ramp for every trend, and the commands the test journals."""

    commands: list[CommandResult] = field(default_factory=list)
    trend_reads: list[tuple[str, datetime, datetime, int]] = field(default_factory=list)
    command_reads: list[str | tuple[str, ...] | None] = field(default_factory=list)

    def read_trend(self, tag: str, start: datetime, end: datetime, max_points: int) -> list[Sample]:
        """Ten samples across the window."""
        self.trend_reads.append((tag, start, end, max_points))
        step = (end - start) / 10
        return [
            Sample(tag, float(i), Quality.good(), start + i * step, start + i * step)
            for i in range(10)
        ]

    def read_commands(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        tag: str | None = None,
        tags: Sequence[str] | None = None,
        origin: CommandOrigin | None = None,
        requested_by: str | None = None,
        limit: int | None = None,
    ) -> list[CommandResult]:
        """Journaled commands of ``tag`` or ``tags``, the newest ``limit``, oldest first."""
        self.command_reads.append(tag if tags is None else tuple(tags))
        chosen = [
            r
            for r in self.commands
            if (tag is None or r.command.tag == tag) and (tags is None or r.command.tag in tags)
        ]
        chosen.sort(key=lambda r: r.command.issued_at)
        return chosen[-limit:] if limit else chosen

    def read_raw(
        self, tag: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[Sample]:
        """No raw history."""
        return []

    def read_events(self, *args: Any, **kwargs: Any) -> list[Event]:
        """No events."""
        return []


class DemoAlarms:
    """AlarmOperations.states over the demo site's alarms; the test activates some."""

    def __init__(self, definitions: Sequence[AlarmDef]) -> None:
        self.definitions = list(definitions)
        self.active: set[str] = set()

    def states(self, **_: Any) -> list[tuple[AlarmDef, AlarmState]]:
        """Every alarm with its state."""
        return [
            (
                d,
                AlarmState(
                    d.name,
                    active=d.name in self.active,
                    acknowledged=d.name not in self.active,
                    activated_at=NOW if d.name in self.active else None,
                ),
            )
            for d in self.definitions
        ]


def result_of(
    tag: str,
    value: Value,
    *,
    at: datetime = NOW,
    status: CommandStatus = CommandStatus.CONFIRMED,
    readback: Value | None = None,
    reason: str = "test",
    user: str = "olga",
) -> CommandResult:
    """A journaled command result."""
    command = Command(
        tag, value, CommandOrigin.OPERATOR, user, reason, at, CommandPriority.MANUAL_OPERATOR
    )
    return CommandResult(
        command, status, "" if status is CommandStatus.CONFIRMED else "refused", at, readback
    )


class RecordingCommands:
    """CommandOperations that records every call; answers as a pipeline would."""

    def __init__(self, tags: Mapping[str, TagDef]) -> None:
        self._tags = tags
        self.calls: list[tuple[str, Any]] = []
        self.selections: dict[str, Selection] = {}
        self.active_overrides: list[Override] = []
        self.interlock: str | None = None
        self.refuse_select: Exception | None = None
        self.status = CommandStatus.CONFIRMED
        self._lock = threading.Lock()
        self._count = 0

    def select(self, tag: str, user: User) -> Selection:
        """A selection of ``tag`` (or the refusal the test set)."""
        self.calls.append(("select", (tag, user.name)))
        if self.refuse_select is not None:
            raise self.refuse_select
        definition = self._tags.get(tag)
        if definition is None or not definition.writable:
            raise SelectionRefusedError(f"{tag} cannot be commanded")
        with self._lock:
            self._count += 1
            selection_id = f"sel-{self._count}"
        selection = Selection(
            selection_id,
            tag,
            user.name,
            Sample(tag, steady_value(definition), Quality.good(), NOW, NOW),
            CommandLimits.of(definition),
            self.interlock,
            NOW,
            NOW + timedelta(seconds=60),
        )
        self.selections[selection_id] = selection
        return selection

    def operate(
        self,
        selection_id: str,
        user: User,
        value: Value,
        reason: str,
        *,
        until: datetime | None = None,
    ) -> CommandResult:
        """Confirm the command with the value as its read-back (or reject an unknown id)."""
        self.calls.append(("operate", (selection_id, user.name, value, reason, until)))
        selection = self.selections.pop(selection_id, None)
        if selection is None:
            return result_of(
                "?", value, status=CommandStatus.REJECTED, reason=reason, user=user.name
            )
        if self.status is CommandStatus.CONFIRMED:
            self.active_overrides.append(
                Override(selection.tag, value, user.name, reason, NOW, until)
            )
        return result_of(
            selection.tag,
            value,
            status=self.status,
            readback=value if self.status is CommandStatus.CONFIRMED else None,
            reason=reason,
            user=user.name,
        )

    def cancel(self, selection_id: str, user: User) -> None:
        """Drop the selection."""
        self.calls.append(("cancel", (selection_id, user.name)))
        if self.selections.pop(selection_id, None) is None:
            raise SelectionRefusedError(f"unknown selection {selection_id}")

    def release(self, tag: str, user: User, reason: str) -> CommandResult | None:
        """Release the override of ``tag``."""
        self.calls.append(("release", (tag, user.name, reason)))
        before = len(self.active_overrides)
        self.active_overrides = [o for o in self.active_overrides if o.tag != tag]
        if len(self.active_overrides) == before:
            raise LookupError(f"{tag} has no active override")
        return None

    def overrides(self) -> list[Override]:
        """The overrides made by operate."""
        return sorted(self.active_overrides, key=lambda o: o.tag)


@dataclass
class DemoPorts:
    """The fakes behind one demo-city context."""

    context: HmiContext
    live: DemoLive
    history: DemoHistory
    alarms: DemoAlarms
    commands: RecordingCommands
    journal: list[Event]


class ListJournal:
    """EventJournal into a list."""

    def __init__(self, events: list[Event]) -> None:
        self._events = events

    def record(self, event: Event) -> None:
        """Append the event."""
        self._events.append(event)


def demo_ports(assets: Sequence[AssetDef] | None = None) -> DemoPorts:
    """A context over the demo site's tags, alarms and assets (or ``assets``)."""
    site = demo_site()
    tags = site.tag_defs()
    live = DemoLive(tags)
    history = DemoHistory()
    alarms = DemoAlarms(site.alarm_defs())
    commands = RecordingCommands({tag.name: tag for tag in tags})
    events: list[Event] = []
    context = HmiContext(
        live=live,
        history=history,  # type: ignore[arg-type]
        journal=ListJournal(events),
        site_name="Demo City",
        assets=site.asset_defs() if assets is None else tuple(assets),
        areas=site.area_defs(),
        alarms=alarms,  # type: ignore[arg-type]
        commands=commands,
    )
    return DemoPorts(context, live, history, alarms, commands, events)


def dumped(component: Any) -> str:
    """A component tree as JSON text (what the browser receives)."""
    return json.dumps(component, cls=plotly.utils.PlotlyJSONEncoder)


def find_all(component: Any, predicate: Any) -> list[Any]:
    """Every component in the tree for which ``predicate`` holds."""
    found = []
    stack = [component]
    while stack:
        node = stack.pop()
        if isinstance(node, list | tuple):
            stack.extend(reversed(node))  # document order
            continue
        if node is None or isinstance(node, str | int | float):
            continue
        if predicate(node):
            found.append(node)
        children = getattr(node, "children", None)
        if children is not None:
            stack.append(children)
    return found


def with_class(component: Any, name: str) -> list[Any]:
    """Every component whose className holds ``name``."""
    return find_all(component, lambda n: name in (getattr(n, "className", "") or "").split())


def tagged(component: Any, role: str | None = None) -> set[str]:
    """The tags of the live elements (``data-tag``) in the tree, of one ``data-live`` role."""
    names = set()
    for node in find_all(component, lambda n: hasattr(n, "to_plotly_json")):
        attributes = node.to_plotly_json().get("props", {})
        if "data-tag" in attributes and (role is None or attributes.get("data-live") == role):
            names.add(attributes["data-tag"])
    return names


# --- the tests -------------------------------------------------------------------------------


def test_assets_listed_and_derived_from_tag_names() -> None:
    ports = demo_ports()
    names = {asset.name: asset.type for asset in site_assets(ports.context)}
    # Listed in the site file...
    assert names["water.ps1"] == "booster_station"
    assert names["bldg.school"] == "building"
    # ...and derived where the site lists none: the plant and tank 1 still get a faceplate.
    assert names["water.tank1"] == "storage_tank"
    # A site that lists no assets: they are derived from the tag names.
    bare = demo_ports(assets=())
    derived = {asset.name: asset.type for asset in site_assets(bare.context)}
    assert derived["water.plant"] == "treatment_plant"
    assert derived["water.tank1"] == "reservoir"
    assert derived["water.ps2"] == "booster_station"
    assert derived["lights.d2.c3"] == "lighting_cabinet"
    assert derived["heat.ss4"] == "substation"
    assert "lights.d1" not in derived  # a district is no cabinet
    assert [t.name for t in tags_under(ports.context, "water.ps1")][:3] == [
        "water.ps1.auto",
        "water.ps1.energy",
        "water.ps1.flow",
    ]
    assert tags_under(ports.context, "water.ps") == []  # "water.ps1" is not under "water.ps"


def test_alarm_limits_and_asset_alarms_from_definitions() -> None:
    ports = demo_ports()
    pairs = ports.alarms.states()
    limits = alarm_limits(pairs)
    assert ("high", 4.8) in limits["water.tank1.level"]
    assert ("low", 0.2) in limits["water.plant.chlorine"]
    own = {d.name for d, _ in asset_alarms(pairs, "water.ps1")}
    assert "water.ps1.pump1.failed_to_start" in own
    assert not any(name.startswith("water.ps2.") for name in own)


def test_booster_station_faceplate_shows_pumps_commands_trends_alarms_commands() -> None:
    ports = demo_ports()
    ports.live.set("water.ps1.pump1.running", True)
    ports.live.set("water.ps1.pump2.fault", True)
    ports.alarms.active.add("water.ps1.pump1.failed_to_start")
    ports.history.commands.extend(
        result_of("water.ps1.pump1.run_cmd", True, at=NOW - timedelta(minutes=i), reason=f"r{i}")
        for i in range(12)
    )
    ports.history.commands.append(result_of("water.ps2.pump1.run_cmd", True, reason="other"))

    plate = render_faceplate(ports.context, OPERATOR, "water.ps1")
    text = dumped(plate)

    assert "Pump 1" in text and "Pump 2" in text
    words = {n.to_plotly_json()["props"]["data-tag"]: n for n in with_class(plate, "live-state")}
    assert words["water.ps1.pump1.running"].children == "Running"
    assert words["water.ps1.pump2.running"].children == "Stopped"
    tripped = words["water.ps1.pump2.fault"]
    assert tripped.children == "TRIPPED" and "abnormal" in tripped.className
    assert {"water.ps1.pump1.speed", "water.ps1.flow", "water.ps1.header_pressure"} <= tagged(
        plate, "bar"
    )
    # Commands: every writable tag has a Select button, enabled for an operator.
    selects = with_class(plate, "cmd-select")
    assert {b.id["tag"] for b in selects} == {
        "water.ps1.auto",
        "water.ps1.pump1.run_cmd",
        "water.ps1.pump1.speed",
        "water.ps1.pump2.run_cmd",
        "water.ps1.pump2.speed",
    }
    assert not any(b.disabled for b in selects)
    # Trends of the key tags over the last hour of data, read once.
    read = {r[0] for r in ports.history.trend_reads}
    assert read == {
        "water.ps1.flow",
        "water.ps1.header_pressure",
        "water.ps1.pump1.flow",
        "water.ps1.pump2.flow",
    }
    assert all(end - start >= timedelta(hours=1) for _, start, end, _ in ports.history.trend_reads)
    assert "/trends?tags=water.ps1.flow,water.ps1.header_pressure" in text
    # Alarms of this asset, and the link to the alarm list.
    alarm_rows = with_class(plate, "fp-alarm")
    assert len(alarm_rows) == 1 and "water.ps1.pump1.failed_to_start" in dumped(alarm_rows)
    assert "/alarms?asset=water.ps1" in text
    # Recent commands: the newest ten of this asset's writable tags, newest first.
    rows = with_class(plate, "fp-command")
    assert len(rows) == 10
    assert "r0" in dumped(rows[0]) and "r9" in dumped(rows[-1])
    assert "other" not in dumped(rows)


def test_viewer_sees_disabled_command_controls() -> None:
    ports = demo_ports()
    ports.commands.active_overrides.append(
        Override("water.ps1.pump1.speed", 70.0, "olga", "test", NOW)
    )
    plate = render_faceplate(ports.context, VIEWER, "water.ps1")
    selects = with_class(plate, "cmd-select")
    assert selects and all(b.disabled for b in selects)
    releases = with_class(plate, "cmd-release")
    assert len(releases) == 1 and releases[0].disabled
    assert "may look but not command" in dumped(plate)


@pytest.mark.parametrize(
    ("asset", "expected"),
    [
        ("lights.d1.c1", ["Dim setpoint", "Lamps failed", "Door", "lamps"]),
        ("heat.ss1", ["Primary (network)", "Supply setpoint", "Valve control", "Heat power"]),
        ("heat.plant", ["Differential pressure", "Circulation pump 1", "Capacity"]),
        ("bldg.school", ["Zones (6)", "Occupancy", "CO2", "Supply fan"]),
        ("water.tank2", ["Level", "Inlet valve"]),
        ("water.dma1", ["Inflow", "Inlet pressure"]),
        ("water.plant", ["chlorine", "turbidity"]),
    ],
)
def test_each_asset_type_has_its_faceplate(asset: str, expected: list[str]) -> None:
    ports = demo_ports()
    plate = render_faceplate(ports.context, OPERATOR, asset)
    text = dumped(plate)
    for word in expected:
        assert word in text, word
    # Every tag of the asset is on the faceplate (the lamps folded away, but there).
    assert {t.name for t in tags_under(ports.context, asset)} <= tagged(plate) | {
        o.id["tag"] for o in with_class(plate, "cmd-select")
    }


def test_generic_faceplate_lists_every_tag_of_an_unknown_type() -> None:
    ports = demo_ports(assets=[AssetDef("water.ps1", "pump_house", "water")])
    plate = render_faceplate(ports.context, OPERATOR, "water.ps1")
    assert {t.name for t in tags_under(ports.context, "water.ps1") if not t.writable} <= tagged(
        plate
    )
    found = find_asset(ports.context, "water.ps1")
    assert found is not None and found.type == "pump_house"
    assert [t.name for t in key_tags(ports.context, found)] == [
        "water.ps1.flow",
        "water.ps1.header_pressure",
        "water.ps1.power",
        "water.ps1.pump1.current",
    ]


@pytest.mark.parametrize(
    "tail",
    ["water.nowhere", "water", "", "../../etc/passwd", "%3Cscript%3E", "x" * 5000, "water.ps1%00"],
)
def test_unknown_asset_is_a_clear_panel(tail: str) -> None:
    ports = demo_ports()
    shown = asset_page.render(ports.context, VIEWER, PageRequest("/asset/" + tail, tail))
    text = dumped(shown)
    assert "No such asset" in text
    # Shown as text (React escapes it), never as markup, and never the whole of a long name.
    assert "dangerouslySetInnerHTML" not in text
    assert len(text) < 2000


def test_history_away_still_draws_the_faceplate() -> None:
    ports = demo_ports()

    def broken(*args: Any, **kwargs: Any) -> list[Any]:
        raise OSError("database is locked")

    ports.history.read_trend = broken  # type: ignore[method-assign]
    ports.history.read_commands = broken  # type: ignore[method-assign]
    text = dumped(render_faceplate(ports.context, OPERATOR, "heat.ss2"))
    assert "history not available: database is locked" in text
    assert "Not available: database is locked" in text


def test_recent_commands_merges_tags_newest_first() -> None:
    ports = demo_ports()
    ports.history.commands.extend(
        [
            result_of("heat.ss1.valve", 10.0, at=NOW - timedelta(minutes=5)),
            result_of("heat.ss1.supply_setpoint", 70.0, at=NOW - timedelta(minutes=1)),
            result_of("heat.ss1.valve_manual", True, at=NOW - timedelta(minutes=3)),
        ]
    )
    writable = [t for t in tags_under(ports.context, "heat.ss1") if t.writable]
    got = recent_commands(ports.context, writable)
    assert [r.command.tag for r in got] == [
        "heat.ss1.supply_setpoint",
        "heat.ss1.valve_manual",
        "heat.ss1.valve",
    ]
    # One read for all of the asset's writable tags.
    assert ports.history.command_reads == [tuple(t.name for t in writable)]


def test_bad_quality_is_shown_with_its_word() -> None:
    ports = demo_ports()
    ports.live.set(
        "water.tank2.level", None, Quality.bad(Substatus.COMM_FAILURE, "RTU does not answer")
    )
    plate = render_faceplate(ports.context, OPERATOR, "water.tank2")
    values = [
        n
        for n in with_class(plate, "live-value")
        if n.to_plotly_json()["props"].get("data-tag") == "water.tank2.level"
    ]
    assert values and "q-bad" in values[0].className
    assert "BAD" in dumped(values[0])
