"""Stage 2: type and range, max step from the current value, minimum interval per tag."""

from __future__ import annotations

import dataclasses
import math

import pytest

from controlcenter.commands.limits import (
    IntervalGuard,
    reason_problem,
    step_problem,
    tag_problem,
    value_problem,
)
from controlcenter.model import (
    CommandLimits,
    CommandStatus,
    DataType,
    Quality,
    Sample,
    Substatus,
    TagDef,
    Value,
)
from historian.store import SqlHistorian
from plc_sim.city import SimulatedCity
from tests.controlcenter.commands.support import (
    PUMP_TAG,
    START,
    TAGS,
    VALVE,
    VALVE_TAG,
    ManualClock,
    PipelineFactory,
    command,
    valve_position,
)

STEPPED = dataclasses.replace(VALVE_TAG, max_step=10.0, min_command_interval_s=5.0)
COUNT = TagDef("x.count", "d", "hr:1", DataType.INT, low=0, high=10, writable=True)


def sample(value: Value | None, quality: Quality | None = None) -> Sample:
    return Sample(VALVE, value, quality or Quality.good(), START, START)


@pytest.mark.parametrize(
    ("tag", "value", "problem"),
    [
        (PUMP_TAG, 1, "water.tank1.pump_cmd takes true or false"),
        (PUMP_TAG, "on", "water.tank1.pump_cmd takes true or false"),
        (VALVE_TAG, True, "water.tank2.inlet_valve takes a number"),
        (VALVE_TAG, "50", "water.tank2.inlet_valve takes a number"),
        (VALVE_TAG, math.nan, "nan is not a finite number"),
        (VALVE_TAG, -math.inf, "-inf is not a finite number"),
        (VALVE_TAG, 100.5, "100.5 is above the engineering range (0..100 %)"),
        (VALVE_TAG, -0.1, "-0.1 is below the engineering range (0..100 %)"),
        (COUNT, 2.5, "x.count takes a whole number"),
        (COUNT, 3.0, None),
        (VALVE_TAG, 0, None),
        (PUMP_TAG, False, None),
    ],
)
def test_value_type_and_range(tag: TagDef, value: Value, problem: str | None) -> None:
    assert value_problem(tag, value) == problem


def test_tag_and_reason_problems() -> None:
    assert tag_problem("nope", None, False) == "unknown tag 'nope'"
    level = TAGS[1]
    assert tag_problem(level.name, level, True) == "tag 'water.tank1.level' is read-only"
    assert tag_problem(VALVE, VALVE_TAG, False) == "no driver for device 'water.tank2_rtu'"
    assert tag_problem(VALVE, VALVE_TAG, True) is None
    assert reason_problem(" \t") == "a command needs a reason"


def test_max_step_from_the_current_value() -> None:
    assert step_problem(STEPPED, 60.0, sample(50.0)) is None
    assert step_problem(STEPPED, 40.0, sample(50.0)) is None
    assert step_problem(STEPPED, 60.5, sample(50.0)) == (
        "a step of 10.5 from the current 50 exceeds the max step 10 %"
    )
    assert step_problem(VALVE_TAG, 100.0, sample(0.0)) is None  # no max step configured


def test_max_step_refuses_without_a_usable_current_value() -> None:
    assert step_problem(STEPPED, 50.0, None) == (
        "max step 10 cannot be checked: no current value of water.tank2.inlet_valve"
    )
    bad = Quality.bad(Substatus.COMM_FAILURE, "link down")
    assert step_problem(STEPPED, 50.0, sample(50.0, bad)) == (
        "max step 10 cannot be checked: the current value of water.tank2.inlet_valve is "
        "bad:comm_failure"
    )


def test_minimum_interval_per_tag() -> None:
    guard = IntervalGuard()
    assert guard.problem(STEPPED, 0.0) is None
    guard.note_write(VALVE, 100.0)
    assert guard.problem(STEPPED, 104.0) == (
        "water.tank2.inlet_valve was commanded 4.0 s ago; its minimum interval between "
        "commands is 5 s"
    )
    assert guard.problem(STEPPED, 105.0) is None
    assert guard.problem(VALVE_TAG, 100.1) is None  # no interval configured


def test_limits_shown_on_selection() -> None:
    assert CommandLimits.of(STEPPED) == CommandLimits(DataType.FLOAT, 0.0, 100.0, "%", 10.0, 5.0)


async def test_pipeline_enforces_step_and_interval_against_the_rtu(
    tank_city: SimulatedCity,
    store: SqlHistorian,
    clock: ManualClock,
    make_pipeline: PipelineFactory,
) -> None:
    live = {VALVE: sample(95.0)}
    pipeline = make_pipeline(tags=(STEPPED,), latest=live.get)
    too_far = await pipeline.submit(command(VALVE, 50.0))
    assert too_far.status is CommandStatus.REJECTED
    assert too_far.reason == "limits: a step of 45 from the current 95 exceeds the max step 10 %"
    first = await pipeline.submit(command(VALVE, 90.0))
    assert first.status is CommandStatus.CONFIRMED, first.reason
    clock.advance(4.0)
    too_soon = await pipeline.submit(command(VALVE, 85.0))
    assert too_soon.reason.startswith("limits: water.tank2.inlet_valve was commanded 4.0 s ago")
    clock.advance(1.0)
    # The live view still says 95: the step is measured from the newer confirmed readback (90).
    second = await pipeline.submit(command(VALVE, 81.0))
    assert second.status is CommandStatus.CONFIRMED, second.reason
    assert valve_position(tank_city) == pytest.approx(81.0)
    journal = store.read_commands()
    assert [(r.command.value, r.status) for r in journal] == [
        (50.0, CommandStatus.REJECTED),
        (90.0, CommandStatus.CONFIRMED),
        (85.0, CommandStatus.REJECTED),
        (81.0, CommandStatus.CONFIRMED),
    ]
    assert journal[0].reason == too_far.reason


@pytest.mark.parametrize("value", [math.nan, math.inf, "42", None, True])
async def test_forged_values_never_reach_the_rtu(
    value: Value,
    tank_city: SimulatedCity,
    store: SqlHistorian,
    make_pipeline: PipelineFactory,
) -> None:
    result = await make_pipeline().submit(command(VALVE, value))
    assert result.status is CommandStatus.REJECTED
    assert result.reason.startswith("limits: ")
    assert valve_position(tank_city) == pytest.approx(100.0)
    (journaled,) = store.read_commands()
    assert journaled.status is CommandStatus.REJECTED and journaled.reason == result.reason


async def test_a_value_that_is_no_tag_value_is_journaled_as_text(
    store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    forged: object = ["true"]
    result = await make_pipeline().submit(command(VALVE, forged))  # type: ignore[arg-type]
    assert result.status is CommandStatus.REJECTED
    (journaled,) = store.read_commands()
    assert journaled.command.value == "<not a value: list ['true']>"
    assert journaled.reason == "limits: water.tank2.inlet_valve takes a number"
