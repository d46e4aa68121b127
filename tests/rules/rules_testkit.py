"""Building blocks for the rules tests: a small site, rule definitions, fakes for the ports."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from controlcenter.automation import (
    Action,
    CalculatedTagDef,
    CommandAction,
    EventAction,
    Expression,
    InputQualityPolicy,
    RuleDef,
    RuleSetDef,
    SiteLocation,
    SourceSpot,
    TagChangeTrigger,
    Trigger,
)
from controlcenter.model import (
    Command,
    CommandPriority,
    CommandResult,
    CommandStatus,
    DataType,
    Event,
    Quality,
    Sample,
    TagDef,
    Value,
)
from rules.ruleset import CompiledRuleSet, compile_rule_set
from tests.controlled_clock import ControlledClock

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
AMSTERDAM = SiteLocation(52.3676, 4.9041, "Europe/Amsterdam")
FILE = "rules/test.yaml"


def tag(name: str, data_type: DataType = DataType.FLOAT, *, writable: bool = False) -> TagDef:
    """A site tag on a made-up device."""
    return TagDef(name=name, device="dev", address="x", data_type=data_type, writable=writable)


SITE_TAGS: tuple[TagDef, ...] = (
    tag("water.tank1.level"),
    tag("water.tank2.level"),
    tag("water.tank1.pump_cmd", DataType.BOOL, writable=True),
    tag("water.ps1.speed_sp", writable=True),
    tag("lights.d1.c1.lux"),
    tag("lights.d1.c1.power"),
    tag("lights.d1.c2.power"),
    tag("lights.d1.c1.mode", DataType.INT, writable=True),
    tag("lights.d1.c1.on", DataType.BOOL, writable=True),
    tag("heat.ss3.supply_temp"),
    tag("heat.ss3.label", DataType.STRING),
)


def spot(line: int, column: int = 1) -> SourceSpot:
    """A spot in the test rule file."""
    return SourceSpot(FILE, line, column)


def expr(text: str, line: int = 1, column: int = 1) -> Expression:
    """An expression written at ``line``:``column`` of the test rule file."""
    return Expression(text, spot(line, column))


def command(
    target: str, value: str, priority: CommandPriority = CommandPriority.AUTOMATION, line: int = 1
) -> CommandAction:
    """A command action."""
    return CommandAction(target, expr(value, line, 10), priority, spot(line))


def event(message: str, severity: int = 300, line: int = 1) -> EventAction:
    """An event action."""
    return EventAction(message, severity, spot(line, 5))


def on_change(*tags: str, debounce_s: float = 0.0) -> TagChangeTrigger:
    """A tag-change trigger."""
    return TagChangeTrigger(tuple(tags), debounce_s, spot(1))


def rule(
    name: str,
    triggers: Sequence[Trigger],
    actions: Sequence[Action],
    condition: str | None = None,
    *,
    hold_for_s: float = 0.0,
    inputs: InputQualityPolicy = InputQualityPolicy.GOOD,
    min_command_interval_s: float = 10.0,
    line: int = 1,
) -> RuleDef:
    """A rule definition."""
    return RuleDef(
        name=name,
        triggers=tuple(triggers),
        condition=None if condition is None else expr(condition, line + 1, 16),
        hold_for_s=hold_for_s,
        actions=tuple(actions),
        inputs_quality=inputs,
        min_command_interval_s=min_command_interval_s,
        spot=spot(line),
    )


def calculated(
    name: str, expression: str, data_type: DataType = DataType.FLOAT, line: int = 1
) -> CalculatedTagDef:
    """A calculated tag definition."""
    return CalculatedTagDef(name, expr(expression, line, 17), data_type, spot=spot(line))


def compiled(
    rules: Sequence[RuleDef] = (),
    calculated_tags: Sequence[CalculatedTagDef] = (),
    location: SiteLocation = AMSTERDAM,
) -> CompiledRuleSet:
    """Compile a rule set over the test site."""
    definition = RuleSetDef(tuple(rules), tuple(calculated_tags), identity="rules-svc")
    return compile_rule_set(definition, SITE_TAGS, location)


def good(name: str, value: Value, at: datetime = T0) -> Sample:
    """A Good sample."""
    return Sample(name, value, Quality.good(), at, at)


def sample(name: str, value: Value | None, quality: Quality, at: datetime = T0) -> Sample:
    """A sample of any quality."""
    return Sample(name, value, quality, at, at)


class FakeClock(ControlledClock):
    """A controlled clock starting at ``T0`` unless told otherwise."""

    def __init__(self, start: datetime = T0) -> None:
        super().__init__(start)


class RecordingSink:
    """A command sink that confirms (or holds back) commands and remembers each."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.gate: asyncio.Event | None = None
        """When set to an Event, submit waits for it before confirming (a slow device)."""
        self.finished = 0

    async def submit(self, command: Command) -> CommandResult:
        self.commands.append(command)
        if self.gate is not None:
            await self.gate.wait()
        self.finished += 1
        return CommandResult(
            command, CommandStatus.CONFIRMED, "ok", command.issued_at, command.value
        )


class ListJournal:
    """An event journal backed by a list."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def record(self, event: Event) -> None:
        self.events.append(event)


async def until(check: Callable[[], bool], what: str, seconds: float = 2.0) -> None:
    """Let the loop run until ``check()`` holds, or fail after ``seconds`` of wall time."""

    async def poll() -> None:
        # Polling with a deadline: the conditions are plain attributes of fakes, not events.
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0)

    try:
        await asyncio.wait_for(poll(), seconds)
    except TimeoutError as err:
        raise AssertionError(f"timed out waiting for {what}") from err


async def settle(*waits: Awaitable[None]) -> None:
    """Await each of ``waits`` with a deadline."""
    for wait in waits:
        await asyncio.wait_for(wait, 2.0)
