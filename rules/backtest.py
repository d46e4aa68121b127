"""Backtest: replay a stretch of history through a rule set and report what it would have done.

The replay drives the same ``RuleEvaluator`` the live engine runs, on a virtual clock: the
stored samples of every tag the rule set reads (and of every tag it commands, whose read-back
the evaluator compares with what it wants) are read from the historian an hour at a time,
merged in server-time order, and fed batch by batch, one batch per timestamp; between two
batches the evaluator is advanced to each timer that falls due (intervals, cron, sun events,
debounces, ``for:`` expiries). Commands are not executed: each is recorded and reported to the
evaluator as completed at once, so that the in-flight suppression of one command does not hide
the rest; whether the field followed is what the target's own history says.

The evaluator starts ``warm_up`` before ``start`` (at least the longest statistics window the
rules use), so that latest values, windows and ``since_change`` are what they were at
``start``; what it decides during the warm-up is not reported. A tag with no sample in the
warm-up is primed with its last stored sample before it, looked for up to ``lookback`` back.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from controlcenter.automation import RuleSetDef, SiteLocation
from controlcenter.model import Command, Sample, TagDef, Value
from controlcenter.ports import BulkHistoryReader
from rules.evaluator import NO_DECISIONS, Decisions, RuleEvaluator
from rules.ruleset import CompiledRuleSet, compile_rule_set

DEFAULT_CHUNK = timedelta(hours=1)
"""How much history is read (per tag) and replayed at a time: a day of 1 s data for the
inputs of 50 rules stays a few hundred thousand samples in memory."""
DEFAULT_WARM_UP = timedelta(minutes=15)
"""The shortest warm-up: enough for ``since_change`` and short windows to be meaningful."""
DEFAULT_LOOKBACK = timedelta(days=1)
"""How far back a tag with no sample in the warm-up is looked for (compressed history stores
a still value rarely)."""


class BacktestError(Exception):
    """A backtest could not run: a bad time window, or history that could not be read."""


@dataclass(frozen=True, slots=True)
class BacktestCommand:
    """A command the rule set would have sent."""

    time: datetime
    rule: str
    tag: str
    value: Value
    reason: str
    priority: str

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "time": self.time.isoformat(),
            "rule": self.rule,
            "tag": self.tag,
            "value": _json_value(self.value),
            "reason": self.reason,
            "priority": self.priority,
        }


@dataclass(frozen=True, slots=True)
class BacktestEvent:
    """An event the rule set would have raised."""

    time: datetime
    rule: str
    message: str
    severity: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "time": self.time.isoformat(),
            "rule": self.rule,
            "message": self.message,
            "severity": self.severity,
        }


@dataclass(frozen=True, slots=True)
class BacktestHold:
    """A rule held on its inputs' quality (``held``), or resumed."""

    time: datetime
    rule: str
    held: bool
    message: str

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "time": self.time.isoformat(),
            "rule": self.rule,
            "kind": "hold" if self.held else "resume",
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class RuleCounts:
    """What one rule did in the window."""

    rule: str
    commands: int = 0
    events: int = 0
    holds: int = 0
    resumes: int = 0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "rule": self.rule,
            "commands": self.commands,
            "events": self.events,
            "holds": self.holds,
            "resumes": self.resumes,
        }


@dataclass(frozen=True, slots=True)
class BacktestFigures:
    """How much was replayed and how long it took (over several workers: the sum of what each
    read and computed, so a tag two workers read counts twice)."""

    tags_read: int
    samples_replayed: int
    warm_up_samples: int
    calculated_samples: int
    timers_fired: int
    wall_seconds: float

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "tags_read": self.tags_read,
            "samples_replayed": self.samples_replayed,
            "warm_up_samples": self.warm_up_samples,
            "calculated_samples": self.calculated_samples,
            "timers_fired": self.timers_fired,
            "wall_seconds": round(self.wall_seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class BacktestReport:
    """Everything a rule set would have done over [start, end], in time order."""

    start: datetime
    end: datetime
    commands: tuple[BacktestCommand, ...]
    events: tuple[BacktestEvent, ...]
    holds: tuple[BacktestHold, ...]
    rules: tuple[RuleCounts, ...]
    """Every rule of the set, by name, including those that did nothing."""
    figures: BacktestFigures

    def as_dict(self) -> dict[str, object]:
        """The report as a JSON-ready mapping."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "commands": [command.as_dict() for command in self.commands],
            "events": [event.as_dict() for event in self.events],
            "holds": [hold.as_dict() for hold in self.holds],
            "rules": [counts.as_dict() for counts in self.rules],
            "figures": self.figures.as_dict(),
        }


Progress = Callable[[float], None]
"""Receives the replayed share of the window, 0.0 to 1.0."""


@dataclass(slots=True)
class _Recorder:
    """Collects the reported decisions (mutable while the replay runs)."""

    start: datetime
    commands: list[BacktestCommand] = field(default_factory=list)
    events: list[BacktestEvent] = field(default_factory=list)
    holds: list[BacktestHold] = field(default_factory=list)
    calculated: int = 0
    timers: int = 0

    def take(self, decisions: Decisions, now: datetime, evaluator: RuleEvaluator) -> None:
        """Record what the evaluator decided at ``now`` (nothing before the window starts)."""
        # Commands complete at once: in a backtest nothing is in flight, and the read-back
        # comes from the target's own history.
        for command in decisions.commands:
            evaluator.command_done(command.command_id)
        if now < self.start or decisions is NO_DECISIONS:
            return
        self.calculated += len(decisions.calculated)
        for command in decisions.commands:
            self.commands.append(_command(command, now))
        # Holds and resumes are journaled as events too (the same objects); the report lists
        # them apart from the events the rules' actions raise.
        announced = {id(event) for event in (*decisions.holds, *decisions.resumes)}
        for event in decisions.events:
            if id(event) not in announced:
                self.events.append(BacktestEvent(now, event.source, event.message, event.severity))
        for event in decisions.holds:
            self.holds.append(BacktestHold(now, event.source, True, event.message))
        for event in decisions.resumes:
            self.holds.append(BacktestHold(now, event.source, False, event.message))


def _command(command: Command, now: datetime) -> BacktestCommand:
    return BacktestCommand(
        time=now,
        rule=rule_of(command),
        tag=command.tag,
        value=command.value,
        reason=command.reason,
        priority=command.priority.name.lower(),
    )


def rule_of(command: Command) -> str:
    """The rule that sent ``command``: its reason starts with the rule's name."""
    name, _, _ = command.reason.partition(":")
    return name.strip()


def run_backtest(
    rule_set: CompiledRuleSet,
    history: BulkHistoryReader,
    start: datetime,
    end: datetime,
    *,
    progress: Progress | None = None,
    chunk: timedelta = DEFAULT_CHUNK,
    warm_up: timedelta | None = None,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> BacktestReport:
    """Replay [start, end] of ``history`` through ``rule_set``; report what it would have done.

    Raises BacktestError for a window that is empty or not time-zone aware, or when history
    cannot be read (the cause chained).
    """
    if start.utcoffset() is None or end.utcoffset() is None:
        raise BacktestError("start and end must be time-zone aware")
    if not start < end:
        raise BacktestError(f"start {start.isoformat()} is not before end {end.isoformat()}")
    if chunk <= timedelta(0):
        raise BacktestError("the chunk must be positive")
    if (warm_up is not None and warm_up < timedelta(0)) or lookback < timedelta(0):
        raise BacktestError("the warm-up and the lookback must not be negative")
    began = time.perf_counter()
    tags = replayed_tags(rule_set)
    chosen_warm_up = DEFAULT_WARM_UP if warm_up is None else warm_up
    warm_start = start - max(chosen_warm_up, longest_window(rule_set))
    warm_up_samples = _prime(history, tags, warm_start, start, lookback)
    # Activated at the oldest sample it is given: a tag primed from before the warm-up is
    # then fed in order, not in the evaluator's past.
    activated = min(warm_start, warm_up_samples[0].server_time) if warm_up_samples else warm_start
    evaluator = RuleEvaluator(rule_set, activated)
    recorder = _Recorder(start)
    replay = _Replay(evaluator, recorder)
    replay.play(warm_up_samples)
    replay.advance_to(start, inclusive=False)
    replayed = 0
    span = (end - start).total_seconds()
    for window_start, chunk_end, final in _chunks(start, end, chunk):
        samples = _read_chunk(history, tags, window_start, chunk_end, final)
        replayed += replay.play(samples)
        replay.advance_to(chunk_end, inclusive=final)
        if progress is not None:
            progress(min(1.0, (chunk_end - start).total_seconds() / span))
    figures = BacktestFigures(
        tags_read=len(tags),
        samples_replayed=replayed,
        warm_up_samples=len(warm_up_samples),
        calculated_samples=recorder.calculated,
        timers_fired=recorder.timers,
        wall_seconds=time.perf_counter() - began,
    )
    return BacktestReport(
        start=start,
        end=end,
        commands=tuple(recorder.commands),
        events=tuple(recorder.events),
        holds=tuple(recorder.holds),
        rules=_counts(rule_set, recorder),
        figures=figures,
    )


def _chunks(
    start: datetime, end: datetime, chunk: timedelta
) -> list[tuple[datetime, datetime, bool]]:
    """The windows read one after another: [start, end) each, the last one [start, end]."""
    windows: list[tuple[datetime, datetime, bool]] = []
    cursor = start
    while True:
        chunk_end = min(cursor + chunk, end)
        final = chunk_end >= end
        windows.append((cursor, chunk_end, final))
        if final:
            return windows
        cursor = chunk_end


class _Replay:
    """Feeds merged samples to the evaluator, firing the timers that fall due between them."""

    def __init__(self, evaluator: RuleEvaluator, recorder: _Recorder) -> None:
        self._evaluator = evaluator
        self._recorder = recorder

    def play(self, samples: Sequence[Sample]) -> int:
        """Feed ``samples`` (in server-time order) one timestamp at a time; return how many."""
        evaluator, recorder = self._evaluator, self._recorder
        for moment, batch in _batches(samples):
            self.advance_to(moment, inclusive=False)
            recorder.take(evaluator.feed(batch, moment), moment, evaluator)
        return len(samples)

    def advance_to(self, moment: datetime, *, inclusive: bool) -> None:
        """Fire every timer due before ``moment`` (or at it, when ``inclusive``), in order."""
        evaluator, recorder = self._evaluator, self._recorder
        while True:
            due = evaluator.next_due()
            if due is None or due > moment or (due == moment and not inclusive):
                return
            decisions = evaluator.advance(due)
            if due >= recorder.start:
                recorder.timers += 1
            recorder.take(decisions, due, evaluator)
            following = evaluator.next_due()
            if following is not None and following <= due:
                raise BacktestError(
                    f"the rules' timers do not move past {due.isoformat()}: "
                    "a timer that fires keeps falling due at once"
                )


def _batches(samples: Sequence[Sample]) -> Iterator[tuple[datetime, list[Sample]]]:
    """Consecutive runs of samples with one server time."""
    batch: list[Sample] = []
    moment: datetime | None = None
    for sample in samples:
        if sample.server_time != moment:
            if batch and moment is not None:
                yield moment, batch
            batch = []
            moment = sample.server_time
        batch.append(sample)
    if batch and moment is not None:
        yield moment, batch


def replayed_tags(rule_set: CompiledRuleSet) -> tuple[str, ...]:
    """The stored tags a replay of ``rule_set`` reads: every tag it reads or commands, less the
    calculated tags it computes itself."""
    calculated = {calc.name for calc in rule_set.calculated}
    wanted: set[str] = set()
    for rule in rule_set.rules:
        if rule.definition.enabled:
            wanted |= rule.watched
    for calc in rule_set.calculated:
        wanted |= calc.inputs
    wanted |= set(rule_set.window_needs)
    return tuple(sorted(wanted - calculated))


def longest_window(rule_set: CompiledRuleSet) -> timedelta:
    """The longest statistics window (``avg``/``min_over``/``max_over``) of ``rule_set``."""
    return timedelta(seconds=max(rule_set.window_needs.values(), default=0.0))


def _prime(
    history: BulkHistoryReader,
    tags: Sequence[str],
    warm_start: datetime,
    start: datetime,
    lookback: timedelta,
) -> list[Sample]:
    """The warm-up samples: every tag's history in [warm_start, start), and for a tag with none
    there, its last sample before ``warm_start`` (within ``lookback``)."""
    samples = _read_many(history, tags, warm_start, start)
    seen = {sample.tag for sample in samples}
    earlier: list[list[Sample]] = []
    for tag in tags:
        if tag not in seen:
            before = _before(_read(history, tag, warm_start - lookback, warm_start), warm_start)
            earlier.append(before[-1:])
    return _merge([*earlier, samples])


def _read_chunk(
    history: BulkHistoryReader, tags: Sequence[str], start: datetime, end: datetime, final: bool
) -> list[Sample]:
    """Every tag's samples in [start, end) merged in time order ([start, end] when final)."""
    if not final:
        return _read_many(history, tags, start, end)
    # The last window includes its end: read one microsecond further.
    return _read_many(history, tags, start, end + timedelta(microseconds=1))


def _read_many(
    history: BulkHistoryReader, tags: Sequence[str], start: datetime, end: datetime
) -> list[Sample]:
    try:
        return history.read_raw_many(tags, start, end)
    except Exception as err:
        raise BacktestError(f"cannot read the history of the rules' tags: {err}") from err


def _read(history: BulkHistoryReader, tag: str, start: datetime, end: datetime) -> list[Sample]:
    try:
        return history.read_raw(tag, start, end)
    except KeyError:
        return []  # a tag the historian has never stored: it has no history to replay
    except Exception as err:
        raise BacktestError(f"cannot read the history of {tag}: {err}") from err


def _before(samples: list[Sample], end: datetime) -> list[Sample]:
    """``samples`` (server-time order) without those at or after ``end`` (read_raw includes
    its end; the next chunk starts there)."""
    cut = len(samples)
    while cut and samples[cut - 1].server_time >= end:
        cut -= 1
    return samples if cut == len(samples) else samples[:cut]


_SERVER_TIME = attrgetter("server_time")


def _merge(per_tag: list[list[Sample]]) -> list[Sample]:
    """One server-time ordered list of per-tag ordered lists (ties keep the tags' order)."""
    non_empty = [samples for samples in per_tag if samples]
    if len(non_empty) == 1:
        return non_empty[0]
    # A stable sort of the concatenated runs: timsort merges presorted runs in C, faster
    # than a heap merge in Python, and equal times keep the tags' order.
    merged = [sample for samples in non_empty for sample in samples]
    merged.sort(key=_SERVER_TIME)
    return merged


HistoryOpener = Callable[[], AbstractContextManager[BulkHistoryReader]]
"""Opens the historian in a worker process (picklable: e.g. ``partial(SqlHistorian, url)``)."""

MAX_DEFAULT_WORKERS = 4
"""Most worker processes a backtest starts unless told otherwise."""


def default_backtest_workers() -> int:
    """One worker per core of this machine, at most ``MAX_DEFAULT_WORKERS``."""
    return max(1, min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1))


WORKER_START_TIMEOUT_S = 120.0
"""How long a worker may stay silent (starting up, or between two chunks) before the backtest
gives up on it."""


def run_backtest_in_parallel(
    definition: RuleSetDef,
    tags: Sequence[TagDef],
    site: SiteLocation,
    open_history: HistoryOpener,
    start: datetime,
    end: datetime,
    *,
    workers: int,
    progress: Progress | None = None,
    chunk: timedelta = DEFAULT_CHUNK,
    warm_up: timedelta | None = None,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> BacktestReport:
    """``run_backtest`` of ``definition`` spread over ``workers`` processes, each replaying a
    share of the rules; the commands, events, holds and counts are those a single process
    reports (the figures add up the workers' own: a tag two shares read counts twice).

    In a replay no command is executed, so a rule's decisions depend only on its own inputs,
    state and timers: the rules can be replayed apart and their reports merged. Each worker
    compiles its share (with the calculated tags it reads), opens its own connection to the
    historian and reads only its share's tags. Raises RuleSetError for a set that does not
    compile and BacktestError when a worker fails.
    """
    rule_set = compile_rule_set(definition, tags, site)
    shares = rule_shares(rule_set, workers)
    if len(shares) <= 1:
        with open_history() as history:
            return run_backtest(
                rule_set,
                history,
                start,
                end,
                progress=progress,
                chunk=chunk,
                warm_up=warm_up,
                lookback=lookback,
            )
    began = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # no inherited connections or threads
    messages: multiprocessing.Queue[tuple[str, int, Any]] = context.Queue()
    processes = [
        context.Process(
            target=_replay_share,
            args=(
                index,
                share,
                tuple(tags),
                site,
                open_history,
                start,
                end,
                chunk,
                warm_up,
                lookback,
                messages,
            ),
            name=f"backtest worker {index}",
            daemon=True,
        )
        for index, share in enumerate(shares)
    ]
    for process in processes:
        process.start()
    try:
        reports = _collect(processes, messages, progress)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    return _merged(rule_set, start, end, reports, time.perf_counter() - began)


def rule_shares(rule_set: CompiledRuleSet, workers: int) -> list[RuleSetDef]:
    """The enabled rules split into at most ``workers`` shares of about equal work (the tags
    each rule watches), each with the calculated tags its rules read, in dependency order."""
    enabled = [rule for rule in rule_set.rules if rule.definition.enabled]
    count = max(1, min(workers, len(enabled)))
    # A worker's work: reading its tags (each once, whichever rules share it) and evaluating
    # its rules (one evaluation per change of a watched tag). Each rule, heaviest first, goes
    # where it adds least to the busiest worker: rules sharing tags gather in one share, so
    # that fewer tags are read twice.
    loads = [0] * count
    reads: list[set[str]] = [set() for _ in range(count)]
    members: list[list[int]] = [[] for _ in range(count)]
    by_weight = sorted(range(len(enabled)), key=lambda i: -len(enabled[i].watched))
    for index in by_weight:
        watched = enabled[index].watched
        costs = [
            loads[worker] + len(watched - reads[worker]) + len(watched) for worker in range(count)
        ]
        chosen = costs.index(min(costs))
        members[chosen].append(index)
        loads[chosen] = costs[chosen]
        reads[chosen] |= watched
    calculated = {calc.name: calc for calc in rule_set.calculated}
    shares = []
    for share_members in members:
        rules = [enabled[i] for i in sorted(share_members)]
        needed: set[str] = set()
        pending = [tag for rule in rules for tag in rule.watched if tag in calculated]
        while pending:
            name = pending.pop()
            if name not in needed:
                needed.add(name)
                pending.extend(tag for tag in calculated[name].inputs if tag in calculated)
        shares.append(
            replace(
                rule_set.definition,
                rules=tuple(rule.definition for rule in rules),
                calculated=tuple(
                    calc.definition for calc in rule_set.calculated if calc.name in needed
                ),
                sources=(),
            )
        )
    return shares


def _replay_share(
    index: int,
    share: RuleSetDef,
    tags: tuple[TagDef, ...],
    site: SiteLocation,
    open_history: HistoryOpener,
    start: datetime,
    end: datetime,
    chunk: timedelta,
    warm_up: timedelta | None,
    lookback: timedelta,
    messages: multiprocessing.Queue[tuple[str, int, Any]],
) -> None:
    """A worker process: replay one share and send its report (or its failure) back."""
    try:
        rule_set = compile_rule_set(share, tags, site)
        with open_history() as history:
            report = run_backtest(
                rule_set,
                history,
                start,
                end,
                progress=lambda fraction: messages.put(("progress", index, fraction)),
                chunk=chunk,
                warm_up=warm_up,
                lookback=lookback,
            )
    except Exception as err:  # reported to the parent, which raises BacktestError
        messages.put(("error", index, f"{type(err).__name__}: {err}"))
        return
    messages.put(("done", index, report))


def _collect(
    processes: Sequence[multiprocessing.process.BaseProcess],
    messages: multiprocessing.Queue[tuple[str, int, Any]],
    progress: Progress | None,
) -> list[BacktestReport]:
    """Every worker's report, reporting their mean progress meanwhile; BacktestError when one
    fails, dies or falls silent."""
    reports: dict[int, BacktestReport] = {}
    fractions = [0.0] * len(processes)
    while len(reports) < len(processes):
        try:
            kind, index, payload = messages.get(timeout=WORKER_START_TIMEOUT_S)
        except queue.Empty as err:
            raise BacktestError(
                f"a backtest worker said nothing for {WORKER_START_TIMEOUT_S:g} s"
            ) from err
        if kind == "error":
            raise BacktestError(f"backtest worker {index} failed: {payload}")
        if kind == "progress":
            fractions[index] = float(payload)
            if progress is not None:
                progress(sum(fractions) / len(fractions))
        else:
            reports[index] = payload
    return [reports[index] for index in range(len(processes))]


def _merged(
    rule_set: CompiledRuleSet,
    start: datetime,
    end: datetime,
    reports: Sequence[BacktestReport],
    wall_seconds: float,
) -> BacktestReport:
    """One report of the shares' reports, in time order and then in the rules' order."""
    order = {rule.name: position for position, rule in enumerate(rule_set.rules)}

    def key(item: BacktestCommand | BacktestEvent | BacktestHold) -> tuple[datetime, int]:
        return item.time, order.get(item.rule, len(order))

    counts = {counts.rule: counts for report in reports for counts in report.rules}
    for rule in rule_set.rules:
        counts.setdefault(rule.name, RuleCounts(rule.name))
    return BacktestReport(
        start=start,
        end=end,
        commands=tuple(sorted((c for r in reports for c in r.commands), key=key)),
        events=tuple(sorted((e for r in reports for e in r.events), key=key)),
        holds=tuple(sorted((h for r in reports for h in r.holds), key=key)),
        rules=tuple(counts[name] for name in sorted(counts)),
        figures=BacktestFigures(
            tags_read=len(replayed_tags(rule_set)),
            samples_replayed=sum(r.figures.samples_replayed for r in reports),
            warm_up_samples=sum(r.figures.warm_up_samples for r in reports),
            calculated_samples=sum(r.figures.calculated_samples for r in reports),
            timers_fired=sum(r.figures.timers_fired for r in reports),
            wall_seconds=wall_seconds,
        ),
    )


def _counts(rule_set: CompiledRuleSet, recorder: _Recorder) -> tuple[RuleCounts, ...]:
    counts: dict[str, dict[str, int]] = {
        name: {"commands": 0, "events": 0, "holds": 0, "resumes": 0}
        for name in (rule.name for rule in rule_set.rules)
    }

    def bump(rule: str, key: str) -> None:
        counts.setdefault(rule, {"commands": 0, "events": 0, "holds": 0, "resumes": 0})[key] += 1

    for command in recorder.commands:
        bump(command.rule, "commands")
    for event in recorder.events:
        bump(event.rule, "events")
    for hold in recorder.holds:
        bump(hold.rule, "holds" if hold.held else "resumes")
    return tuple(RuleCounts(rule, **figures) for rule, figures in sorted(counts.items()))


def _json_value(value: Value) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value
