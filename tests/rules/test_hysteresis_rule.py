"""The two-position rule: switching levels, the gap, and the engine's command discipline."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlcenter.automation import HysteresisControl, RuleDef
from controlcenter.model import CommandOrigin, Quality, Sample, Substatus, Value
from rules.engine import RulesEngine
from rules.hysteresis import HysteresisRule
from tests.rules.rules_testkit import FakeClock, ListJournal, RecordingSink, compiled, spot, until

RULE = HysteresisRule("water.fill", "water.tank1.level", "water.tank1.pump_cmd", 1.5, 4.0, 10.0)
T0 = datetime(2026, 11, 21, tzinfo=UTC)


def test_switching_levels() -> None:
    assert RULE.desired_output(1.49) is True
    assert RULE.desired_output(4.01) is False
    assert RULE.desired_output(1.5) is None
    assert RULE.desired_output(2.7) is None
    assert RULE.desired_output(4.0) is None


def test_gap_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="on_below must be lower"):
        HysteresisRule("bad", "a", "b", 4.0, 1.5)


@given(st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=200))
def test_output_changes_only_beyond_the_switching_levels(levels: list[float]) -> None:
    state = False
    for level in levels:
        desired = RULE.desired_output(level)
        new_state = state if desired is None else desired
        if new_state and not state:
            assert level < RULE.on_below
        if state and not new_state:
            assert level > RULE.off_above
        state = new_state


FILL = RuleDef(
    name="water.fill",
    hysteresis=HysteresisControl("water.tank1.level", "water.tank1.pump_cmd", 1.5, 4.0),
    min_command_interval_s=10.0,
    spot=spot(1),
)


def batch(
    level: float | None, pump: Value | None, quality: Quality | None = None
) -> Sequence[Sample]:
    samples = []
    if level is not None:
        samples.append(Sample("water.tank1.level", level, quality or Quality.good(), T0, T0))
    if pump is not None:
        samples.append(Sample("water.tank1.pump_cmd", pump, Quality.good(), T0, T0))
    return samples


def engine_for(clock: FakeClock, sink: RecordingSink) -> RulesEngine:
    return RulesEngine(compiled([FILL]), sink, clock, ListJournal(), lambda samples: None)


async def drain(engine: RulesEngine) -> None:
    await asyncio.wait_for(engine.drained(), 2)


async def test_engine_commands_on_below_and_off_above_once() -> None:
    clock, sink = FakeClock(T0), RecordingSink()
    engine = engine_for(clock, sink)
    task = asyncio.create_task(engine.run())
    try:
        engine.on_samples(batch(1.2, False))
        await until(lambda: sink.finished == 1, "the first command")
        first = sink.commands[0]
        assert (first.tag, first.value, first.origin) == (
            "water.tank1.pump_cmd",
            True,
            CommandOrigin.RULE,
        )
        assert first.requested_by == "rules-svc"
        assert first.reason.startswith("water.fill: ") and "below 1.5" in first.reason
        # Still below, output not yet read back as on, within the minimum interval: no repeat.
        engine.on_samples(batch(1.1, False))
        await drain(engine)
        assert len(sink.commands) == 1
        # Output reads back on: nothing to do inside the gap or below.
        clock.advance(60)
        engine.on_samples(batch(2.5, True))
        engine.on_samples(batch(1.0, True))
        await drain(engine)
        assert len(sink.commands) == 1
        engine.on_samples(batch(4.2, True))
        await until(lambda: sink.finished == 2, "the second command")
        assert sink.commands[1].value is False and "above 4" in sink.commands[1].reason
    finally:
        task.cancel()


async def test_engine_repeats_after_min_interval_when_output_ignores_it() -> None:
    clock, sink = FakeClock(T0), RecordingSink()
    engine = engine_for(clock, sink)
    task = asyncio.create_task(engine.run())
    try:
        engine.on_samples(batch(1.0, False))
        await until(lambda: sink.finished == 1, "the first command")
        clock.advance(5)
        engine.on_samples(batch(1.01, False))
        await drain(engine)
        assert len(sink.commands) == 1
        clock.advance(6)
        engine.on_samples(batch(1.0, False))
        await until(lambda: sink.finished == 2, "the repeated command")
    finally:
        task.cancel()


async def test_engine_holds_on_bad_input() -> None:
    clock, sink = FakeClock(T0), RecordingSink()
    engine = engine_for(clock, sink)
    task = asyncio.create_task(engine.run())
    try:
        bad = Quality.bad(Substatus.COMM_FAILURE, "device offline")
        engine.on_samples([Sample("water.tank1.level", None, bad, T0, T0)])
        engine.on_samples(batch(0.5, False, Quality.uncertain(Substatus.LAST_USABLE, "stale")))
        await drain(engine)
        assert sink.commands == []
        engine.on_samples(batch(0.5, False))
        await until(lambda: sink.finished == 1, "the command after recovery")
    finally:
        task.cancel()
