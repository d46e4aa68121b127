"""The live engine on a controlled clock: timers, replace(), concurrency, calculated samples,
and one rule driving a real simulated Modbus device through the real command pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from controlcenter.automation import HysteresisControl, IntervalTrigger, RuleDef, RuleSetDef
from controlcenter.clock import WallClock
from controlcenter.commands.pipeline import CommandPipeline
from controlcenter.model import (
    CommandOrigin,
    CommandStatus,
    EventKind,
    Quality,
    Role,
    Sample,
    User,
)
from controlcenter.runtime.app import build_driver
from controlcenter.runtime.demo import load_demo_site
from historian.store import SqlHistorian
from plc_sim.city import SimulatedCity
from rules.engine import RulesEngine
from rules.evaluator import RuleEvaluator
from rules.ruleset import compile_rule_set
from tests.rules.rules_testkit import (
    T0,
    FakeClock,
    ListJournal,
    RecordingSink,
    calculated,
    command,
    compiled,
    event,
    good,
    on_change,
    rule,
    spot,
    until,
)

LUX = "lights.d1.c1.lux"
MODE = "lights.d1.c1.mode"
LEVEL = "water.tank1.level"


class Published:
    """The ``publish`` callable: remembers what it got and echoes it back into the engine."""

    def __init__(self) -> None:
        self.batches: list[Sequence[Sample]] = []
        self.engine: RulesEngine | None = None

    def __call__(self, samples: Sequence[Sample]) -> None:
        self.batches.append(samples)
        if self.engine is not None:
            self.engine.on_samples(samples)


def start(engine: RulesEngine) -> asyncio.Task[None]:
    return asyncio.create_task(engine.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_interval_timer_runs_on_the_engine_clock() -> None:
    clock, sink, journal = FakeClock(), RecordingSink(), ListJournal()
    ticking = rule("tick", [IntervalTrigger(60, spot(2))], [event("level {water.tank1.level}")])
    engine = RulesEngine(compiled([ticking]), sink, clock, journal, Published())
    task = start(engine)
    try:
        engine.on_samples([good(LEVEL, 2.0)])
        await engine.drained()
        await until(lambda: clock.sleepers == 1, "the timer loop to sleep")
        clock.advance(59)
        await asyncio.sleep(0)
        assert journal.events == []
        clock.advance(1)
        await until(lambda: len(journal.events) == 1, "the first tick")
        assert journal.events[0].message == "level 2" and journal.events[0].kind is EventKind.RULE
        await until(lambda: clock.sleepers == 1, "the timer loop to sleep again")
        clock.advance(60)
        await until(lambda: len(journal.events) == 2, "the second tick")
    finally:
        await stop(task)


async def test_a_debounce_wakes_the_sleeping_timer_loop_early() -> None:
    clock, sink, journal = FakeClock(), RecordingSink(), ListJournal()
    rules = [
        rule("slow", [IntervalTrigger(3600, spot(2))], [event("hourly")]),
        rule("quick", [on_change(LUX, debounce_s=5)], [event("lux {lights.d1.c1.lux}")]),
    ]
    engine = RulesEngine(compiled(rules), sink, clock, journal, Published())
    task = start(engine)
    try:
        await until(lambda: clock.sleepers == 1, "the timer loop to sleep for an hour")
        engine.on_samples([good(LUX, 7.0)])
        await engine.drained()
        await until(lambda: clock.sleepers == 1, "the timer loop to sleep for the debounce")
        clock.advance(5)
        await until(lambda: [e.message for e in journal.events] == ["lux 7"], "the debounced event")
    finally:
        await stop(task)


async def test_replace_keeps_running_and_is_journaled() -> None:
    clock, sink, journal = FakeClock(), RecordingSink(), ListJournal()
    engine = RulesEngine(compiled([]), sink, clock, journal, Published())
    task = start(engine)
    try:
        engine.on_samples([good(MODE, 0), good(LUX, 50.0)])
        await engine.drained()
        new_set = compiled(
            [
                rule("lamps", [on_change(LUX)], [command(MODE, "1")], "lights.d1.c1.lux < 20.0"),
                rule("tick", [IntervalTrigger(30, spot(3))], [event("tick")]),
            ]
        )
        engine.replace(new_set)
        assert engine.rule_set is new_set
        (replaced,) = journal.events
        assert (
            replaced.message == "rule set replaced: 2 rules, 0 calculated tags; added: lamps, tick"
        )
        assert replaced.source == "rules"
        # The new rule uses the read-back received before the swap; its timers run.
        engine.on_samples([good(LUX, 10.0)])
        await until(lambda: sink.finished == 1, "the new rule's command")
        assert sink.commands[0].value == 1
        await until(lambda: clock.sleepers == 1, "the timer loop to sleep for the new set")
        clock.advance(30)
        await until(lambda: journal.events[-1].message == "tick", "the new set's interval")
    finally:
        await stop(task)


async def test_a_slow_command_sink_does_not_block_evaluation() -> None:
    clock, sink, journal = FakeClock(), RecordingSink(), ListJournal()
    sink.gate = asyncio.Event()  # the device never answers until the test says so
    rules = [
        rule("lamps", [on_change(LUX)], [command(MODE, "1")], min_command_interval_s=0),
        rule("watch", [on_change(LEVEL)], [event("level {water.tank1.level}")]),
    ]
    engine = RulesEngine(compiled(rules), sink, clock, journal, Published())
    task = start(engine)
    try:
        engine.on_samples([good(MODE, 0), good(LUX, 10.0)])
        await until(lambda: len(sink.commands) == 1, "the command in flight")
        for level in (1.0, 2.0, 3.0):
            engine.on_samples([good(LEVEL, level), good(LUX, level)])
        await asyncio.wait_for(engine.drained(), 2)
        assert [e.message for e in journal.events] == ["level 1", "level 2", "level 3"]
        assert len(sink.commands) == 1  # one in flight per rule and tag
        sink.gate.set()
        await until(lambda: sink.finished == 1, "the slow command to finish")
        await asyncio.sleep(0)
        engine.on_samples([good(LUX, 4.0)])
        await until(lambda: len(sink.commands) == 2, "a new command once the first completed")
    finally:
        await stop(task)


async def test_calculated_samples_are_published_and_their_echo_is_ignored() -> None:
    clock, sink, journal = FakeClock(), RecordingSink(), ListJournal()
    published = Published()
    total = calculated("calc.total", "water.tank1.level + water.tank2.level")
    engine = RulesEngine(compiled(calculated_tags=[total]), sink, clock, journal, published)
    published.engine = engine
    task = start(engine)
    try:
        engine.on_samples([good(LEVEL, 1.0), good("water.tank2.level", 2.5)])
        await until(lambda: len(published.batches) == 1, "the calculated sample")
        await asyncio.wait_for(engine.drained(), 2)
        (only,) = published.batches[0]
        assert (only.tag, only.value, only.quality) == ("calc.total", 3.5, Quality.good())
        assert len(published.batches) == 1  # the echo produced nothing new
    finally:
        await stop(task)


async def test_timer_catches_up_when_the_loop_woke_late() -> None:
    # The evaluator alone: advancing past several due ticks fires one and realigns.
    evaluator = RuleEvaluator(
        compiled([rule("t", [IntervalTrigger(10, spot(2))], [event("x")])]), T0
    )
    decisions = evaluator.advance(datetime(2026, 11, 21, 12, 1, 5, tzinfo=UTC))
    assert len(decisions.events) == 1


async def test_a_rule_commands_a_real_simulated_pump_through_the_pipeline(
    water_city: SimulatedCity, tmp_path: Path
) -> None:
    tank = "water.tank1_rtu"
    host, port = water_city.endpoints()[tank]
    clock = WallClock()
    site = load_demo_site().with_endpoints({tank: f"{host}:{port}"})
    driver = build_driver(site.device(tank), clock)
    tags = [tag for tag in site.tag_defs() if tag.device == tank]
    store = SqlHistorian(f"sqlite:///{tmp_path / 'journal.db'}")
    service = User("rules", Role.OPERATOR)

    def users(name: str) -> User:
        if name != service.name:
            raise KeyError(name)
        return service

    pipeline = CommandPipeline(tags, {tank: driver}, store, clock, timeout_s=10.0, users=users)
    fill = RuleDef(
        name="water.fill",
        hysteresis=HysteresisControl(LEVEL, "water.tank1.pump_cmd", 1.5, 4.0),
        spot=spot(1),
    )
    rule_set = compile_rule_set(RuleSetDef(rules=(fill,), identity="rules"), tags, site.location())
    journal = ListJournal()
    engine = RulesEngine(rule_set, pipeline, clock, journal, Published())
    task = start(engine)
    try:
        now = clock.now()
        engine.on_samples(
            [
                Sample(LEVEL, 1.0, Quality.good(), now, now),
                Sample("water.tank1.pump_cmd", False, Quality.good(), now, now),
            ]
        )

        def journaled() -> bool:
            return len(store.read_commands()) == 1

        await until(journaled, "the journaled command", seconds=15)
        (result,) = store.read_commands()
        assert result.status is CommandStatus.CONFIRMED, result.reason
        assert result.command.origin is CommandOrigin.RULE
        assert result.command.requested_by == "rules"
        assert result.command.reason.startswith("water.fill: ")
        assert water_city.water is not None and water_city.water.tank1.pump_command is True
    finally:
        await stop(task)
        await driver.close()
        store.close()
