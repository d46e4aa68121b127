"""``controlcenter bench rules``: the rule language, the live engine and the backtest, measured.

Three figures, each with its target and a pass flag (one JSON object):

- ``expression``: evaluations per second of one compiled three-input numeric condition
  (``bench.a > 50 && bench.b < 20 || bench.c >= 75``) through ``CompiledExpression.evaluate``,
  over a few dozen prepared value sets in turn. Target: at least 200,000 per second.
- ``engine``: the live ``RulesEngine``'s CPU share while it keeps up with the value rate of the
  scale-20 simulated city (about 29,000 values per second). A synthetic site of that size
  (assets of ten analog values, two states, a run command and a setpoint) carries 2,000 rules
  (tag-change conditions, some with ``for:``, timed rules over windowed averages, hysteresis
  controls, event-only rules) and 500 calculated tags. Every second of samples is generated
  before the measurement; then the samples are fed through ``on_samples`` in scan-sized
  batches, on a clock that follows the data, with a command sink that confirms at once, and
  the process CPU time spent until the engine has drained each second is divided by the
  simulated seconds fed. Target: at most 0.2 of a core.
- ``backtest``: wall seconds of ``run_backtest`` over a day of 1 s history of the inputs (and
  command targets) of 50 rules, written beforehand into a temporary SQLite historian through
  its own ``write_samples`` (not counted). Target: at most 30 s.
"""

from __future__ import annotations

import asyncio
import math
import random
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from controlcenter.automation import (
    CalculatedTagDef,
    CommandAction,
    CronTrigger,
    EventAction,
    Expression,
    HysteresisControl,
    InputQualityPolicy,
    IntervalTrigger,
    RuleDef,
    RuleSetDef,
    SiteLocation,
    TagChangeTrigger,
    Trigger,
)
from controlcenter.model import (
    Command,
    CommandResult,
    CommandStatus,
    DataType,
    Event,
    Quality,
    Sample,
    TagDef,
    Value,
)
from historian.store import SqlHistorian
from rules.backtest import default_backtest_workers, replayed_tags, run_backtest_in_parallel
from rules.engine import RulesEngine
from rules.expressions import ExpressionCompiler, TagSignature, ValueKind
from rules.ruleset import CompiledRuleSet, compile_rule_set

BENCH_START = datetime(2026, 3, 2, tzinfo=UTC)
"""Fixed start of the generated data (a Monday), so runs are comparable."""
SITE = SiteLocation(52.37, 4.90, "Europe/Amsterdam")

TARGET_EVALUATIONS_PER_S = 200_000.0
TARGET_ENGINE_CORES = 0.2
TARGET_BACKTEST_S = 30.0


class RulesBenchError(RuntimeError):
    """The rules bench could not run (a generated rule set did not compile, a part failed)."""


@dataclass(frozen=True, slots=True)
class RulesBenchSize:
    """How much each measurement uses."""

    evaluations: int = 500_000
    values_per_s: int = 29_000
    """The scale-20 city's Good values per second (``controlcenter bench city --scale 20``)."""
    rules: int = 2_000
    calculated: int = 500
    engine_seconds: int = 20
    """Simulated seconds of samples fed to the engine."""
    backtest_rules: int = 50
    backtest_hours: float = 24.0
    backtest_workers: int = field(default_factory=default_backtest_workers)
    """Processes replaying shares of the rules (``controlcenter rules backtest --workers``)."""


TINY = RulesBenchSize(
    evaluations=2_000,
    values_per_s=600,
    rules=60,
    calculated=15,
    engine_seconds=3,
    backtest_rules=5,
    backtest_hours=0.25,
    backtest_workers=2,
)
"""A size for tests: every path runs, in seconds."""


def run_rules_bench(size: RulesBenchSize | None = None) -> dict[str, object]:
    """Run the three measurements; return one JSON-ready mapping of figures."""
    chosen = size or RulesBenchSize()
    if min(chosen.evaluations, chosen.values_per_s, chosen.rules, chosen.engine_seconds) < 1:
        raise RulesBenchError("every size must be at least 1")
    if chosen.backtest_rules < 1 or not chosen.backtest_hours > 0:
        raise RulesBenchError("the backtest needs at least one rule and a positive duration")
    rate = expression_rate(chosen.evaluations)
    engine = asyncio.run(engine_share(chosen))
    backtest = backtest_speed(chosen)
    return {
        "expression": {
            "evaluations": chosen.evaluations,
            "evaluations_per_s": round(rate),
            "target_per_s": TARGET_EVALUATIONS_PER_S,
            "pass": rate >= TARGET_EVALUATIONS_PER_S,
        },
        "engine": {
            **engine.as_dict(),
            "target_cores": TARGET_ENGINE_CORES,
            "pass": engine.cores <= TARGET_ENGINE_CORES,
        },
        "backtest": {
            **backtest.as_dict(),
            "target_s": TARGET_BACKTEST_S,
            "pass": backtest.wall_s <= TARGET_BACKTEST_S,
        },
    }


# --- (a) expression evaluations ---------------------------------------------------------------


class _StillContext:
    """An evaluation context for expressions that read only values (nothing else is asked)."""

    def now(self) -> datetime:
        """The bench's fixed time."""
        return BENCH_START

    def quality(self, tag: str) -> Quality:
        """Every input is Good."""
        return Quality.good()

    def since_change(self, tag: str) -> float:
        """Every input changed a minute ago."""
        return 60.0

    def window(self, tag: str, seconds: float, statistic: str) -> float:
        """No windows are read by the measured condition."""
        raise RulesBenchError(f"the measured condition reads no window ({tag})")


def expression_rate(evaluations: int) -> float:
    """Evaluations per second of a compiled three-input numeric condition."""
    names = ("bench.a", "bench.b", "bench.c")
    signatures = {name: TagSignature(name, DataType.FLOAT) for name in names}
    compiler = ExpressionCompiler(signatures, SITE)
    condition = compiler.compile(
        Expression("bench.a > 50 && bench.b < 20 || bench.c >= 75"), expect=ValueKind.BOOL
    )
    generator = random.Random(1)
    value_sets: list[Mapping[str, Value | None]] = [
        {name: round(generator.uniform(0, 100), 2) for name in names} for _ in range(64)
    ]
    context = _StillContext()
    evaluate = condition.evaluate
    count = len(value_sets)
    started = time.perf_counter()
    for index in range(evaluations):
        evaluate(value_sets[index % count], context)
    return evaluations / (time.perf_counter() - started)


# --- (b) the live engine ----------------------------------------------------------------------

ANALOGS_PER_ASSET = 10
STATES_PER_ASSET = 2
TAGS_PER_ASSET = ANALOGS_PER_ASSET + STATES_PER_ASSET + 2  # + run command, setpoint


@dataclass(frozen=True, slots=True)
class SyntheticSite:
    """A generated site: its tags, rule set and the asset names the rules were written over."""

    tags: tuple[TagDef, ...]
    rule_set: CompiledRuleSet
    assets: tuple[str, ...]


def synthetic_tags(values_per_s: int) -> tuple[tuple[TagDef, ...], tuple[str, ...]]:
    """Assets of ten analog values, two states, a run command and a setpoint, enough of them
    for ``values_per_s`` values per second at one scan a second."""
    assets = tuple(f"site.a{index:05d}" for index in range(max(1, values_per_s // TAGS_PER_ASSET)))
    tags: list[TagDef] = []
    for asset in assets:
        device = asset
        tags += [
            TagDef(f"{asset}.v{n}", device, f"hr:{2 * n}", DataType.FLOAT, "", 0.0, 100.0)
            for n in range(ANALOGS_PER_ASSET)
        ]
        tags += [
            TagDef(f"{asset}.s{n}", device, f"di:{n}", DataType.BOOL)
            for n in range(STATES_PER_ASSET)
        ]
        tags.append(TagDef(f"{asset}.run_cmd", device, "coil:0", DataType.BOOL, writable=True))
        tags.append(
            TagDef(f"{asset}.setpoint", device, "hr:40", DataType.FLOAT, "", 0.0, 100.0, True)
        )
    return tuple(tags), assets


def synthetic_rule_set(
    tags: Sequence[TagDef], assets: Sequence[str], rules: int, calculated: int
) -> CompiledRuleSet:
    """``rules`` rules and ``calculated`` calculated tags spread over ``assets``: a mix of the
    kinds a city's rule files hold, compiled by the real compiler."""
    calc_defs = [
        CalculatedTagDef(
            name=f"calc.c{index:04d}",
            expression=Expression(
                f"{_asset(assets, index)}.v0 + {_asset(assets, index + 1)}.v1 "
                f"+ {_asset(assets, index + 2)}.v2"
                if index % 2 == 0
                else f"max({_asset(assets, index)}.v3, {_asset(assets, index + 3)}.v4)"
            ),
            unit="%",
        )
        for index in range(calculated)
    ]
    rule_defs = [_rule(index, assets, calculated) for index in range(rules)]
    definition = RuleSetDef(rules=tuple(rule_defs), calculated=tuple(calc_defs), identity="rules")
    try:
        return compile_rule_set(definition, tags, SITE)
    except Exception as err:
        raise RulesBenchError(f"the generated rule set did not compile: {err}") from err


def _asset(assets: Sequence[str], index: int) -> str:
    return assets[index % len(assets)]


def _rule(index: int, assets: Sequence[str], calculated: int) -> RuleDef:
    """Rule ``index`` of the synthetic set; the kind cycles through ten slots."""
    # Shifted by one asset every ten rules, so that each asset carries rules of every kind.
    asset = _asset(assets, index + index // 10)
    other = _asset(assets, index * 7 + 3)
    name = f"bench.r{index:05d}"
    slot = index % 10
    command = CommandAction(f"{asset}.run_cmd", Expression("true"))
    if slot in (0, 1, 2, 3):
        # Tag-change condition over three inputs: the bulk of a city's rules.
        return RuleDef(
            name=name,
            triggers=(TagChangeTrigger((f"{asset}.v1", f"{other}.v2")),),
            condition=Expression(f"{asset}.v1 > 97.5 && {other}.v2 < 2.5 || {asset}.v3 > 99.9"),
            actions=(command,),
        )
    if slot in (4, 5):
        # Condition with for: (it must hold a minute), commanding a computed setpoint.
        return RuleDef(
            name=name,
            triggers=(TagChangeTrigger((f"{asset}.v4",)),),
            condition=Expression(f"{asset}.v4 > 95.0"),
            hold_for_s=60.0,
            actions=(
                CommandAction(f"{asset}.setpoint", Expression(f"clamp({asset}.v4 - 10.0, 0, 100)")),
            ),
        )
    if slot == 6:
        # Timed rule over a windowed average.
        return RuleDef(
            name=name,
            triggers=(IntervalTrigger(60.0),),
            condition=Expression(f'avg({asset}.v5, "5m") > 90.0'),
            actions=(EventAction(f"{asset} v5 high: {{{asset}.v5}}", 300),),
        )
    if slot == 7:
        return RuleDef(
            name=name,
            hysteresis=HysteresisControl(f"{asset}.v6", f"{asset}.run_cmd", 30.0, 70.0),
        )
    if slot == 8 and calculated:
        # Reads a calculated tag; acts on uncertain inputs too.
        calc = f"calc.c{index % calculated:04d}"
        return RuleDef(
            name=name,
            triggers=(TagChangeTrigger((calc,)),),
            condition=Expression(f"{calc} > 295.0"),
            inputs_quality=InputQualityPolicy.GOOD_OR_UNCERTAIN,
            actions=(EventAction(f"{calc} high", 500),),
        )
    triggers: tuple[Trigger, ...] = (
        CronTrigger("*/15 * * * *"),
        TagChangeTrigger((f"{asset}.s0",)),
    )
    return RuleDef(
        name=name,
        triggers=triggers,
        condition=Expression(f"{asset}.s0 && {asset}.v7 > 50.0"),
        actions=(EventAction(f"{asset} state 0 on", 200),),
    )


def synthetic_seconds(tags: Sequence[TagDef], seconds: int, batch: int) -> list[list[Sample]]:
    """``seconds`` of one sample per tag per second, as batches of about ``batch`` samples
    (one device's scan each): analog values drift and jitter, states change now and then."""
    generator = random.Random(7)
    good = Quality.good()
    levels = {tag.name: generator.uniform(10.0, 90.0) for tag in tags}
    states = {tag.name: False for tag in tags}
    batches: list[list[Sample]] = []
    for second in range(seconds):
        moment = BENCH_START + timedelta(seconds=second)
        current: list[Sample] = []
        for tag in tags:
            value: Value
            if tag.data_type is DataType.FLOAT:
                level = levels[tag.name] + generator.gauss(0.0, 0.5)
                level = min(100.0, max(0.0, level))
                levels[tag.name] = level
                value = round(level, 2)
            else:
                if generator.random() < 0.002:
                    states[tag.name] = not states[tag.name]
                value = states[tag.name]
            current.append(Sample(tag.name, value, good, moment, moment))
            if len(current) >= batch:
                batches.append(current)
                current = []
        if current:
            batches.append(current)
    return batches


class DataClock:
    """A clock that follows the data fed: ``now`` is the time of the second being fed, and
    ``sleep`` returns once the data has moved that far (satisfies ``ports.Clock``)."""

    def __init__(self, start: datetime) -> None:
        self._origin = start
        self._now = start
        self._moved = asyncio.Event()

    @property
    def speed(self) -> float:
        """One data second per second."""
        return 1.0

    def now(self) -> datetime:
        """The time of the data being fed."""
        return self._now

    def monotonic(self) -> float:
        """Data seconds since the start."""
        return (self._now - self._origin).total_seconds()

    async def sleep(self, seconds: float) -> None:
        """Return once the data has moved ``seconds`` on."""
        target = self._now + timedelta(seconds=max(0.0, seconds))
        while self._now < target:
            moved = self._moved
            await moved.wait()

    def move_to(self, moment: datetime) -> None:
        """The data reached ``moment``: wake every sleeper."""
        self._now = moment
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()


@dataclass(slots=True)
class ConfirmingSink:
    """A command sink that confirms every command at once, counting them."""

    commands: int = 0

    async def submit(self, command: Command) -> CommandResult:
        """Confirm ``command`` with its own value read back."""
        self.commands += 1
        return CommandResult(
            command, CommandStatus.CONFIRMED, "bench", command.issued_at, command.value
        )


@dataclass(slots=True)
class CountingJournal:
    """An event journal that counts what it is given."""

    events: int = 0

    def record(self, event: Event) -> None:
        """Count ``event``."""
        self.events += 1


@dataclass(slots=True)
class CountingPublisher:
    """Where the engine's calculated samples go: counted, not fed back."""

    samples: int = 0

    def __call__(self, samples: Sequence[Sample]) -> None:
        """Count a batch of calculated samples."""
        self.samples += len(samples)


@dataclass(frozen=True, slots=True)
class EngineFigures:
    """What feeding the live engine cost."""

    tags: int
    rules: int
    calculated: int
    seconds: int
    values: int
    cpu_s: float
    commands: int
    events: int
    calculated_samples: int

    @property
    def cores(self) -> float:
        """CPU seconds per second of data."""
        return self.cpu_s / self.seconds

    @property
    def values_per_s(self) -> float:
        """Values fed per second of data."""
        return self.values / self.seconds

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {
            "tags": self.tags,
            "rules": self.rules,
            "calculated": self.calculated,
            "seconds": self.seconds,
            "values_per_s": round(self.values_per_s),
            "cpu_s": round(self.cpu_s, 3),
            "cores": round(self.cores, 3),
            "commands": self.commands,
            "events": self.events,
            "calculated_samples": self.calculated_samples,
        }


SCAN_BATCH = 60
"""Samples per published batch: one device's scan in the scale-20 city (about 29,000 values
a second from about 500 devices)."""


async def engine_share(size: RulesBenchSize) -> EngineFigures:
    """Feed the engine ``engine_seconds`` of the synthetic site's samples; measure its CPU."""
    tags, assets = synthetic_tags(size.values_per_s)
    rule_set = synthetic_rule_set(tags, assets, size.rules, size.calculated)
    # One extra second first, to warm the engine's state; measured afterwards.
    batches = synthetic_seconds(tags, size.engine_seconds + 1, SCAN_BATCH)
    per_second: dict[datetime, list[list[Sample]]] = {}
    for batch in batches:
        per_second.setdefault(batch[0].server_time, []).append(batch)
    seconds = sorted(per_second)
    clock = DataClock(seconds[0])
    sink, journal, publisher = ConfirmingSink(), CountingJournal(), CountingPublisher()
    engine = RulesEngine(rule_set, sink, clock, journal, publisher)
    task = asyncio.create_task(engine.run(), name="bench rules engine")
    try:
        await _feed_second(engine, clock, seconds[0], per_second[seconds[0]])
        commands, events, calculated = sink.commands, journal.events, publisher.samples
        values = 0
        cpu_before = time.process_time()
        for moment in seconds[1:]:
            values += await _feed_second(engine, clock, moment, per_second[moment])
        cpu = time.process_time() - cpu_before
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return EngineFigures(
        tags=len(tags),
        rules=len(rule_set.rules),
        calculated=len(rule_set.calculated),
        seconds=len(seconds) - 1,
        values=values,
        cpu_s=cpu,
        commands=sink.commands - commands,
        events=journal.events - events,
        calculated_samples=publisher.samples - calculated,
    )


async def _feed_second(
    engine: RulesEngine, clock: DataClock, moment: datetime, batches: Sequence[Sequence[Sample]]
) -> int:
    clock.move_to(moment)
    for batch in batches:
        engine.on_samples(batch)
    await engine.drained()
    # Let the timers woken by the clock and the commands' tasks run before the next second.
    for _ in range(3):
        await asyncio.sleep(0)
    return sum(len(batch) for batch in batches)


# --- (c) backtest speed -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BacktestFigures:
    """What replaying the stored day cost."""

    rules: int
    tags: int
    hours: float
    samples: int
    write_s: float
    wall_s: float
    commands: int
    events: int
    workers: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {
            "workers": self.workers,
            "rules": self.rules,
            "tags": self.tags,
            "hours": self.hours,
            "samples": self.samples,
            "write_s": round(self.write_s, 1),
            "wall_s": round(self.wall_s, 2),
            "samples_per_s": round(self.samples / self.wall_s) if self.wall_s > 0 else None,
            "commands": self.commands,
            "events": self.events,
        }


def backtest_speed(size: RulesBenchSize) -> BacktestFigures:
    """Write the history of 50 rules' tags into a temporary SQLite historian; time the replay."""
    assets_needed = max(1, math.ceil(size.backtest_rules / 10) * 2)
    tags, assets = synthetic_tags(assets_needed * TAGS_PER_ASSET)
    rule_set = synthetic_rule_set(tags, assets, size.backtest_rules, 0)
    stored = set(replayed_tags(rule_set))
    wanted = [tag for tag in tags if tag.name in stored]
    seconds = int(size.backtest_hours * 3600)
    start = BENCH_START
    end = start + timedelta(seconds=seconds - 1)
    with tempfile.TemporaryDirectory(prefix="cc-bench-rules-") as directory:
        url = f"sqlite:///{Path(directory) / 'history.db'}"
        store = SqlHistorian(url)
        try:
            store.ensure_tags(wanted)
            began = time.perf_counter()
            samples = _write_history(store, wanted, start, seconds)
            write_s = time.perf_counter() - began
        finally:
            store.close()
        began = time.perf_counter()
        report = run_backtest_in_parallel(
            rule_set.definition,
            tags,
            rule_set.site,
            partial(SqlHistorian, url),
            start,
            end,
            workers=size.backtest_workers,
        )
        wall_s = time.perf_counter() - began
    return BacktestFigures(
        rules=len(rule_set.rules),
        tags=len(wanted),
        hours=size.backtest_hours,
        samples=samples,
        write_s=write_s,
        wall_s=wall_s,
        commands=len(report.commands),
        events=len(report.events),
        workers=size.backtest_workers,
    )


def _write_history(
    store: SqlHistorian, tags: Sequence[TagDef], start: datetime, seconds: int
) -> int:
    """One sample per tag per second, written an hour at a time; return how many."""
    generator = random.Random(11)
    good = Quality.good()
    levels = {tag.name: generator.uniform(10.0, 90.0) for tag in tags}
    states = {tag.name: False for tag in tags}
    written = 0
    for hour_start in range(0, seconds, 3600):
        batch: list[Sample] = []
        for second in range(hour_start, min(seconds, hour_start + 3600)):
            moment = start + timedelta(seconds=second)
            for tag in tags:
                value: Value
                if tag.data_type is DataType.FLOAT:
                    level = min(100.0, max(0.0, levels[tag.name] + generator.gauss(0.0, 0.8)))
                    levels[tag.name] = level
                    value = round(level, 2)
                else:
                    if generator.random() < 0.001:
                        states[tag.name] = not states[tag.name]
                    value = states[tag.name]
                batch.append(Sample(tag.name, value, good, moment, moment))
        store.write_samples(batch)
        written += len(batch)
    return written
