"""Stage 3: an interlock blocks a command, and the refusal and the journal name it."""

from __future__ import annotations

from controlcenter.commands.interlocks import blocking_interlock, interlock_refusal
from controlcenter.model import CommandStatus, Value
from historian.store import SqlHistorian
from plc_sim.city import SimulatedCity
from tests.controlcenter.commands.support import (
    PUMP,
    FixedInterlocks,
    PipelineFactory,
    command,
    pump_command,
)

HIGH = "ps1.reservoir_high: reservoir 2 is above its high level"


class BrokenInterlocks:
    """A checker whose evaluation fails."""

    def blocking(self, tag: str, value: Value) -> str | None:
        raise RuntimeError("no value of water.tank2.level")


def test_no_checker_blocks_nothing() -> None:
    assert blocking_interlock(None, PUMP, True) is None


def test_the_finding_names_the_interlock() -> None:
    checker = FixedInterlocks({(PUMP, True): HIGH})
    assert blocking_interlock(checker, PUMP, True) == HIGH
    assert blocking_interlock(checker, PUMP, False) is None
    assert interlock_refusal(HIGH) == f"blocked by interlock {HIGH}"


def test_a_failing_check_blocks() -> None:
    assert blocking_interlock(BrokenInterlocks(), PUMP, True) == (
        "check failure (RuntimeError: no value of water.tank2.level)"
    )


async def test_a_blocked_command_is_rejected_journaled_and_not_written(
    tank_city: SimulatedCity, store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    pipeline = make_pipeline(interlocks=FixedInterlocks({(PUMP, True): HIGH}))
    blocked = await pipeline.submit(command(PUMP, True, reason="fill"))
    assert blocked.status is CommandStatus.REJECTED
    assert blocked.reason == f"blocked by interlock {HIGH}"
    assert pump_command(tank_city) is False
    allowed = await pipeline.submit(command(PUMP, False, reason="stop"))
    assert allowed.status is CommandStatus.CONFIRMED, allowed.reason
    journal = store.read_commands()
    assert [(r.status, r.reason) for r in journal] == [
        (CommandStatus.REJECTED, f"blocked by interlock {HIGH}"),
        (CommandStatus.CONFIRMED, "readback matches"),
    ]


async def test_a_failing_checker_rejects_the_command(
    tank_city: SimulatedCity, store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    result = await make_pipeline(interlocks=BrokenInterlocks()).submit(command(PUMP, True))
    assert result.status is CommandStatus.REJECTED
    assert result.reason.startswith("blocked by interlock check failure (RuntimeError")
    assert pump_command(tank_city) is False
    assert store.read_commands()[0].reason == result.reason
