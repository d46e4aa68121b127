"""Stage 4 in the pipeline: an operator's override holds against the rules, is released or
expires, and control returns to the rule; overrides survive a restart through the store."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from controlcenter.commands.arbitration import NoOverrideError
from controlcenter.commands.authorisation import AuthorisationError
from controlcenter.commands.pipeline import CommandPipeline
from controlcenter.model import (
    CommandPriority,
    CommandStatus,
    EventKind,
    Override,
)
from historian.store import SqlHistorian
from plc_sim.city import SimulatedCity
from tests.controlcenter.commands.support import (
    PUMP,
    START,
    USERS,
    VALVE,
    FixedInterlocks,
    ManualClock,
    MemoryOverrideStore,
    PipelineFactory,
    command,
    pump_command,
    rule_command,
    valve_position,
)

OLGA, OTTO, VERA = USERS["olga"], USERS["otto"], USERS["vera"]


def messages(store: SqlHistorian, kind: EventKind = EventKind.COMMAND) -> list[str]:
    return [event.message for event in store.read_events(kind=kind)]


async def override(
    pipeline: CommandPipeline, tag: str, value: bool | float, until_s: float | None = None
) -> None:
    """Olga selects ``tag`` and operates it to ``value`` (a manual override)."""
    selection = await pipeline.select(tag, OLGA)
    until = None if until_s is None else START + timedelta(seconds=until_s)
    result = await pipeline.operate(
        selection.selection_id, OLGA, value, "manual stop for inspection", until=until
    )
    assert result.status is CommandStatus.CONFIRMED, result.reason


async def test_override_holds_against_the_rule_and_release_returns_the_rules_value(
    tank_city: SimulatedCity, store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    pipeline = make_pipeline(overrides=store)
    assert (await pipeline.submit(rule_command(PUMP, True))).confirmed
    await override(pipeline, PUMP, False)
    assert pump_command(tank_city) is False
    assert store.active_overrides() == [
        Override(PUMP, False, "olga", "manual stop for inspection", START)
    ]

    held = await pipeline.submit(rule_command(PUMP, True, "tank 1 below 1.5 m"))
    assert held.status is CommandStatus.OVERRIDDEN
    assert held.reason.startswith(
        "overridden: olga holds the point at priority manual_operator (False: manual stop"
    )
    assert pump_command(tank_city) is False  # the override holds in the field

    returned = await pipeline.release(PUMP, OTTO, "inspection done")
    assert returned is not None and returned.status is CommandStatus.CONFIRMED, returned
    assert returned.command.requested_by == "rules"
    assert returned.command.priority is CommandPriority.AUTOMATION
    assert returned.command.reason == (
        "control returns to rules at priority automation after release of olga's override "
        "by otto: tank 1 below 1.5 m"
    )
    assert pump_command(tank_city) is True
    assert store.active_overrides() == []
    assert pipeline.overrides() == []

    journal = store.read_commands()
    assert [(r.command.requested_by, r.command.value, r.status) for r in journal] == [
        ("rules", True, CommandStatus.CONFIRMED),
        ("olga", False, CommandStatus.CONFIRMED),
        ("rules", True, CommandStatus.OVERRIDDEN),
        ("rules", True, CommandStatus.CONFIRMED),
    ]
    assert journal[2].reason == held.reason
    events = messages(store)
    assert (
        "manual override of water.tank1.pump_cmd := False by olga: manual stop for "
        "inspection" in events
    )
    assert (
        "override of water.tank1.pump_cmd := False by olga released by otto: inspection "
        "done" in events
    )


async def test_override_expires_on_the_clock_and_the_rule_takes_back_control(
    tank_city: SimulatedCity,
    store: SqlHistorian,
    clock: ManualClock,
    make_pipeline: PipelineFactory,
) -> None:
    overrides = MemoryOverrideStore()
    pipeline = make_pipeline(overrides=overrides)
    await pipeline.submit(rule_command(VALVE, 60.0))
    await override(pipeline, VALVE, 20.0, until_s=600)
    assert (await pipeline.submit(rule_command(VALVE, 70.0))).status is CommandStatus.OVERRIDDEN
    clock.advance(599)
    assert await pipeline.expire_overrides() == []
    assert valve_position(tank_city) == pytest.approx(20.0)
    clock.advance(1)
    (returned,) = await pipeline.expire_overrides()
    assert returned.status is CommandStatus.CONFIRMED, returned.reason
    assert returned.command.value == 70.0  # the rule's latest wish, not its first
    assert valve_position(tank_city) == pytest.approx(70.0)
    assert overrides.active_overrides() == []
    assert (
        "override of water.tank2.inlet_valve := 20.0 by olga expired at 2026-03-02T08:10:00+00:00"
        in messages(store)
    )
    assert await pipeline.expire_overrides() == []


async def test_expiry_is_checked_when_a_command_arrives(
    tank_city: SimulatedCity,
    store: SqlHistorian,
    clock: ManualClock,
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = make_pipeline()
    await override(pipeline, VALVE, 20.0, until_s=60)
    clock.advance(61)
    result = await pipeline.submit(rule_command(VALVE, 55.0))
    assert result.status is CommandStatus.CONFIRMED, result.reason
    assert valve_position(tank_city) == pytest.approx(55.0)
    assert pipeline.overrides() == []
    # One write for the arriving command: no stale return write before it.
    assert [r.command.value for r in store.read_commands()] == [20.0, 55.0]
    assert any("expired" in message for message in messages(store))


async def test_release_with_no_remaining_writer_keeps_the_value(
    tank_city: SimulatedCity, store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    pipeline = make_pipeline()
    await override(pipeline, VALVE, 30.0)
    assert await pipeline.release(VALVE, OLGA, "done") is None
    assert valve_position(tank_city) == pytest.approx(30.0)
    assert messages(store)[-1] == (
        "water.tank2.inlet_valve: no writer remains after release of olga's override by olga; "
        "the point keeps its value"
    )


async def test_release_is_refused_to_viewers_and_needs_an_override_and_a_reason(
    store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    pipeline = make_pipeline()
    with pytest.raises(NoOverrideError, match=r"water\.tank1\.pump_cmd has no active override"):
        await pipeline.release(PUMP, OLGA, "nothing to release")
    await override(pipeline, PUMP, False)
    with pytest.raises(AuthorisationError, match="role viewer"):
        await pipeline.release(PUMP, VERA, "let go")
    with pytest.raises(ValueError, match="needs a reason"):
        await pipeline.release(PUMP, OTTO, " ")
    assert len(pipeline.overrides()) == 1
    audit = messages(store, EventKind.AUDIT)
    assert audit == [
        "release of water.tank1.pump_cmd refused: user 'vera' has role viewer; commanding "
        "needs operator or above"
    ]


async def test_the_returning_write_passes_the_interlocks(
    tank_city: SimulatedCity, store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    interlocks = FixedInterlocks()
    pipeline = make_pipeline(interlocks=interlocks)
    await pipeline.submit(rule_command(PUMP, True))
    await override(pipeline, PUMP, False)
    await pipeline.submit(rule_command(PUMP, True))
    interlocks.blocked[(PUMP, True)] = "ps1.reservoir_high: reservoir 2 is above its high level"
    returned = await pipeline.release(PUMP, OLGA, "done")
    assert returned is not None and returned.status is CommandStatus.REJECTED
    assert returned.reason == (
        "blocked by interlock ps1.reservoir_high: reservoir 2 is above its high level"
    )
    assert pump_command(tank_city) is False
    assert store.read_commands()[-1].reason == returned.reason


async def test_a_safety_writer_holds_automation_until_it_relinquishes(
    tank_city: SimulatedCity, store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    pipeline = make_pipeline()
    safety = command(PUMP, False, by="rules", priority=CommandPriority.SAFETY)
    assert (await pipeline.submit(safety)).confirmed
    held = await pipeline.submit(rule_command(PUMP, True))
    assert held.status is CommandStatus.OVERRIDDEN
    assert held.reason.startswith("overridden: rules holds the point at priority safety")
    returned = await pipeline.relinquish(PUMP, CommandPriority.SAFETY, "rules")
    assert returned is not None and returned.confirmed, returned
    assert pump_command(tank_city) is True
    assert await pipeline.relinquish(PUMP, CommandPriority.SAFETY, "rules") is None


async def test_overrides_are_restored_from_the_store_at_start(
    tank_city: SimulatedCity,
    store: SqlHistorian,
    clock: ManualClock,
    make_pipeline: PipelineFactory,
) -> None:
    store.save_override(Override(PUMP, False, "olga", "pump repair", START))
    store.save_override(
        Override(VALVE, 25.0, "otto", "flushing", START, START - timedelta(seconds=1))
    )
    store.save_override(Override("water.gone.cmd", True, "otto", "old", START))
    pipeline = make_pipeline(overrides=store)
    restored = await pipeline.restore_overrides()
    assert restored == [Override(PUMP, False, "olga", "pump repair", START)]
    assert store.active_overrides() == restored  # the lapsed and the unknown are dropped
    held = await pipeline.submit(rule_command(PUMP, True))
    assert held.status is CommandStatus.OVERRIDDEN
    assert pump_command(tank_city) is False
    events = messages(store)
    assert "override of water.tank1.pump_cmd := False by olga restored: pump repair" in events
    assert (
        "override of water.tank2.inlet_valve by otto expired while the center was stopped" in events
    )
    assert (
        "stored override of water.gone.cmd by otto dropped: the tag is no longer commandable"
        in events
    )


async def test_writes_to_one_tag_stay_serialised(
    tank_city: SimulatedCity, store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    pipeline = make_pipeline()
    values = [10.0, 20.0, 30.0, 40.0, 50.0]
    results = await asyncio.gather(*(pipeline.submit(rule_command(VALVE, v)) for v in values))
    # Each readback belongs to its own write: no write slipped between another's write and
    # readback.
    assert [r.readback for r in results] == pytest.approx(values)
    assert all(r.confirmed for r in results)
    assert valve_position(tank_city) == pytest.approx(50.0)


async def test_a_rejected_command_after_expiry_still_returns_control(
    tank_city: SimulatedCity,
    store: SqlHistorian,
    clock: ManualClock,
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = make_pipeline()
    await pipeline.submit(rule_command(VALVE, 60.0))
    await override(pipeline, VALVE, 20.0, until_s=60)
    clock.advance(61)
    rejected = await pipeline.submit(rule_command(VALVE, 150.0))  # above the range
    assert rejected.status is CommandStatus.REJECTED
    # The lapsed override's point went back to the rule's remembered 60 %.
    assert valve_position(tank_city) == pytest.approx(60.0)
    assert store.read_commands()[-1].command.reason.startswith(
        "control returns to rules at priority automation after expiry of olga's override"
    )
