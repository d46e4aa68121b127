"""The synchronous core of the rules: what the live engine and the backtest both run.

``RuleEvaluator`` keeps the latest sample of every tag the rule set reads, computes calculated
tags, and decides what the rules do. It never does I/O and never reads a clock: every call says
what time it is, so the same code runs live (the engine's clock) and in a backtest (virtual time).

Semantics, per rule: a trigger fires -> the condition is evaluated on the latest values -> if it
holds (and, with ``for:``, has held that long) -> the actions run. A rule with ``for:`` acts once
per stretch of its condition being true: it is re-armed only after the condition was seen false.
A command is sent only when the target's latest Good read-back differs from the wanted value, not
while the rule's previous command to that tag is in flight, and not more often than the rule's
``min_command_interval`` per tag. Inputs whose quality the rule's policy refuses hold the rule:
it says so once when it holds and once when it resumes.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from controlcenter.automation import InputQualityPolicy, IntervalTrigger
from controlcenter.model import (
    Command,
    CommandOrigin,
    CommandPriority,
    DataType,
    Event,
    EventKind,
    Quality,
    Sample,
    Severity,
    Substatus,
    Value,
)
from rules.expressions import ExpressionEvaluationError
from rules.ruleset import (
    CompiledCalculatedTag,
    CompiledCommandAction,
    CompiledRule,
    CompiledRuleSet,
    TimedSchedule,
)
from rules.schedule import CronSchedule, next_interval
from rules.windows import TagWindows

HOLD_SEVERITY = 500
"""Severity of the journal event saying a rule holds on its inputs' quality."""
RESUME_SEVERITY = 200
"""Severity of the journal event saying a held rule resumes."""
DEFAULT_IDENTITY = "rules"
"""Who rule commands are requested by when the rule set names no identity."""

_FOR_SLOT = -1
_DEBOUNCE_SLOT = 1_000_000
_NO_VALUE = Quality.bad(Substatus.WAITING_FOR_INITIAL_DATA, "no value received yet")


@dataclass(frozen=True, slots=True)
class Decisions:
    """What one ``feed`` or ``advance`` decided: commands to send, events to journal, holds and
    resumes (also present in ``events``), and calculated samples to publish."""

    commands: tuple[Command, ...] = ()
    events: tuple[Event, ...] = ()
    holds: tuple[Event, ...] = ()
    """Rules that stopped acting on their inputs' quality (source: the rule's name)."""
    resumes: tuple[Event, ...] = ()
    """Held rules that act again."""
    calculated: tuple[Sample, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether nothing was decided."""
        return not (self.commands or self.events or self.calculated)


NO_DECISIONS = Decisions()


@dataclass(slots=True)
class _Collector:
    """Decisions being gathered during one call."""

    commands: list[Command] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    holds: list[Event] = field(default_factory=list)
    resumes: list[Event] = field(default_factory=list)
    calculated: list[Sample] = field(default_factory=list)

    def freeze(self) -> Decisions:
        if not (self.commands or self.events or self.calculated):
            return NO_DECISIONS
        return Decisions(
            tuple(self.commands),
            tuple(self.events),
            tuple(self.holds),
            tuple(self.resumes),
            tuple(self.calculated),
        )


@dataclass(slots=True, eq=False)
class _RuleState:
    """What the evaluator remembers of one rule between calls."""

    rule: CompiledRule
    order: int
    held: str | None = None
    """Why the rule holds, or None."""
    held_on_evaluation: bool = False
    """The hold comes from an expression that failed to evaluate (resumes only on success)."""
    true_since: datetime | None = None
    """``for:`` rules: when the condition was first seen true in the current stretch."""
    acted: bool = False
    """``for:`` rules: acted in the current stretch of the condition being true."""
    received: bool = False
    """Every input has been received at least once (inputs never go missing afterwards)."""
    last_fired: datetime | None = None
    """When a trigger of the rule last fired (for the engineers' display)."""


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """What one enabled rule is doing, read-only: why it holds (None: it acts) and when a
    trigger of it last fired."""

    name: str
    held: str | None
    last_fired: datetime | None


class _Cause:
    """Why a rule is being evaluated, for the reason text of its commands."""

    __slots__ = ("fired", "text")

    def __init__(self, fired: bool, text: str) -> None:
        self.fired = fired
        self.text = text


_TOUCHED = _Cause(False, "input changed")


class _InputsMissing(Exception):
    """An input has no value yet: the rule can neither act nor be said to hold."""


class RuleEvaluator:
    """Evaluates a compiled rule set on samples and time; returns decisions, performs none.

    Also the ``EvaluationContext`` its expressions read (time, quality, since_change, windows).
    """

    def __init__(self, rule_set: CompiledRuleSet, now: datetime) -> None:
        self._now = now
        self._activated = now
        self._samples: dict[str, Sample] = {}
        self._not_good: set[str] = set()
        """Tags whose latest sample is not Good: most of the time none, so a rule's input
        check is one set test."""
        self._values: dict[str, Value | None] = {}
        self._changed_at: dict[str, datetime] = {}
        self._windows: dict[str, TagWindows] = {}
        self._window_seconds: dict[str, float] = {}
        self._in_flight: dict[tuple[str, str], str] = {}
        self._flight_keys: dict[str, tuple[str, str]] = {}
        self._last_command: dict[tuple[str, str], datetime] = {}
        self._timers: dict[tuple[str, int], datetime] = {}
        self._heap: list[tuple[datetime, int, tuple[str, int]]] = []
        self._sequence = 0
        self._states: dict[str, _RuleState] = {}
        self._evaluations = 0
        self._install(rule_set, now, previous={})

    # -- the rule set ----------------------------------------------------------------------

    @property
    def rule_set(self) -> CompiledRuleSet:
        """The rule set being evaluated."""
        return self._rule_set

    @property
    def evaluations(self) -> int:
        """Rule evaluations since start (a trigger fired or an input changed)."""
        return self._evaluations

    def rule_statuses(self) -> list[RuleStatus]:
        """Each enabled rule's hold and last firing, in rule-set order."""
        # One C-level copy of the values: safe to call from another thread while evaluating.
        states = list(self._states.values())
        return [RuleStatus(s.rule.name, s.held, s.last_fired) for s in states]

    def replace(self, rule_set: CompiledRuleSet, now: datetime) -> None:
        """Evaluate ``rule_set`` from now on, keeping latest values, windows, commands in
        flight and the state of every rule whose definition did not change."""
        self._now = now
        previous = self._states
        self._states = {}
        self._install(rule_set, now, previous)

    def _install(
        self, rule_set: CompiledRuleSet, now: datetime, previous: Mapping[str, _RuleState]
    ) -> None:
        self._rule_set = rule_set
        self._identity = rule_set.identity or DEFAULT_IDENTITY
        calculated_names = {calc.name for calc in rule_set.calculated}
        self._calculated = rule_set.calculated
        self._calculated_index = {
            calc.name: index for index, calc in enumerate(rule_set.calculated)
        }
        self._calculated_by_input: dict[str, list[int]] = {}
        for index, calc in enumerate(rule_set.calculated):
            for tag in calc.inputs:
                self._calculated_by_input.setdefault(tag, []).append(index)
        self._readers: dict[str, list[_RuleState]] = {}
        self._immediate: dict[str, list[_RuleState]] = {}
        self._debounced: dict[str, list[tuple[_RuleState, int, float]]] = {}
        kept_timers: dict[tuple[str, int], datetime] = {}
        for order, rule in enumerate(r for r in rule_set.rules if r.definition.enabled):
            old = previous.get(rule.name)
            if old is not None and old.rule.definition == rule.definition:
                state = _RuleState(rule, order, old.held, old.held_on_evaluation)
                state.true_since, state.acted = old.true_since, old.acted
                for key, due in self._timers.items():
                    if key[0] == rule.name:
                        kept_timers[key] = due
            else:
                state = _RuleState(rule, order, old.held if old else None)
                state.held_on_evaluation = old.held_on_evaluation if old else False
                for slot, schedule in enumerate(rule.timed_triggers):
                    first = _next_fire(schedule, now, now)
                    if first is not None:
                        kept_timers[(rule.name, slot)] = first
            state.last_fired = old.last_fired if old is not None else None
            self._states[rule.name] = state
            for tag in rule.watched:
                self._readers.setdefault(tag, []).append(state)
            if rule.hysteresis is not None:
                for tag in (rule.hysteresis.input_tag, rule.hysteresis.output_tag):
                    self._immediate.setdefault(tag, []).append(state)
            for index, trigger in enumerate(rule.change_triggers):
                for tag in trigger.tags:
                    if trigger.debounce_s > 0:
                        self._debounced.setdefault(tag, []).append(
                            (state, index, trigger.debounce_s)
                        )
                    else:
                        self._immediate.setdefault(tag, []).append(state)
        self._timers = {}
        self._heap = []
        for key, due in kept_timers.items():
            self._set_timer(key, due)
        # One lookup per changed tag on the hot path: (fires now, debounced, reads it).
        self._by_tag: dict[
            str,
            tuple[
                tuple[_RuleState, ...],
                tuple[tuple[_RuleState, int, float], ...],
                tuple[_RuleState, ...],
            ],
        ] = {
            tag: (
                tuple(self._immediate.get(tag, ())),
                tuple(self._debounced.get(tag, ())),
                tuple(self._readers.get(tag, ())),
            )
            for tag in set(self._readers) | set(self._immediate) | set(self._debounced)
        }
        # Samples of calculated tags come back from the bus: this evaluator computed them itself.
        self._accepted = (
            set(self._readers) | set(self._calculated_by_input) | set(rule_set.window_needs)
        ) - calculated_names
        for tag, seconds in rule_set.window_needs.items():
            if self._window_seconds.get(tag, 0.0) < seconds:
                self._windows[tag] = TagWindows({tag: seconds})
                self._window_seconds[tag] = seconds
                latest = self._samples.get(tag)
                if latest is not None and latest.numeric is not None:
                    self._windows[tag].add(tag, now, latest.numeric)

    # -- EvaluationContext -----------------------------------------------------------------

    def now(self) -> datetime:
        """The time of the current evaluation (UTC)."""
        return self._now

    def quality(self, tag: str) -> Quality:
        """The latest quality of ``tag`` (Bad, waiting for initial data, before its first)."""
        sample = self._samples.get(tag)
        return _NO_VALUE if sample is None else sample.quality

    def since_change(self, tag: str) -> float:
        """Seconds since ``tag``'s value last changed (since activation if it never did)."""
        return (self._now - self._changed_at.get(tag, self._activated)).total_seconds()

    def window(self, tag: str, seconds: float, statistic: str) -> float:
        """A time-weighted statistic ("avg", "min", "max") of ``tag`` over the last seconds."""
        windows = self._windows.get(tag)
        if windows is None:
            raise ExpressionEvaluationError(f"no window is kept for {tag}")
        return windows.statistic(tag, self._now, seconds, statistic)

    # -- inputs ----------------------------------------------------------------------------

    def latest(self, tag: str) -> Sample | None:
        """The latest sample of ``tag`` the evaluator holds (calculated tags included)."""
        return self._samples.get(tag)

    def feed(self, samples: Sequence[Sample], now: datetime) -> Decisions:
        """Take a batch of samples received at ``now``; evaluate what they trigger."""
        self._now = now
        accepted = self._accepted
        changed: list[str] = []
        for sample in samples:
            tag = sample.tag
            if tag in accepted:
                self._store(sample, changed)
        if not changed:
            return NO_DECISIONS
        out = _Collector()
        if self._calculated_by_input:
            self._compute_calculated(changed, out)
        self._evaluate_changes(changed, out)
        return out.freeze()

    def _store(self, sample: Sample, changed: list[str]) -> None:
        tag = sample.tag
        previous = self._samples.get(tag)
        self._samples[tag] = sample
        if sample.quality.severity is Severity.GOOD:
            if self._not_good:
                self._not_good.discard(tag)
        else:
            self._not_good.add(tag)
        windows = self._windows.get(tag)
        if windows is not None and sample.quality.severity is not Severity.BAD:
            numeric = sample.numeric
            if numeric is not None:
                windows.add(tag, self._now, numeric)
        if previous is None or previous.value != sample.value:
            self._changed_at[tag] = self._now
            self._values[tag] = sample.value
            changed.append(tag)
        elif previous.quality != sample.quality:
            changed.append(tag)

    def command_done(self, command_id: str) -> None:
        """A command this evaluator decided has completed (whatever its result)."""
        key = self._flight_keys.pop(command_id, None)
        if key is not None and self._in_flight.get(key) == command_id:
            del self._in_flight[key]

    # -- calculated tags -------------------------------------------------------------------

    def _compute_calculated(self, changed: list[str], out: _Collector) -> None:
        dirty: list[int] = []
        for tag in changed:
            dirty.extend(self._calculated_by_input.get(tag, ()))
        if not dirty:
            return
        heapq.heapify(dirty)
        done: set[int] = set()
        while dirty:
            index = heapq.heappop(dirty)
            if index in done:
                continue
            done.add(index)
            calc = self._calculated[index]
            sample = self._calculate(calc)
            if sample is None:
                continue
            out.calculated.append(sample)
            before = len(changed)
            self._store(sample, changed)
            if len(changed) > before:
                for dependent in self._calculated_by_input.get(calc.name, ()):
                    heapq.heappush(dirty, dependent)

    def _calculate(self, calc: CompiledCalculatedTag) -> Sample | None:
        """The calculated tag's new sample: worst input quality, newest input source time."""
        worst: Quality | None = None
        worst_tag = ""
        newest: datetime | None = None
        for tag in calc.inputs:
            sample = self._samples.get(tag)
            if sample is None:
                return None  # not every input has been received yet
            if worst is None or _rank(sample.quality) > _rank(worst):
                worst, worst_tag = sample.quality, tag
            if newest is None or sample.source_time > newest:
                newest = sample.source_time
        source_time = newest or self._now
        quality = Quality.good() if worst is None or worst.is_good else _inherit(worst, worst_tag)
        if quality.severity is Severity.BAD:
            return Sample(calc.name, None, quality, source_time, self._now)
        try:
            value = _convert(
                calc.expression.evaluate(self._values, self), calc.definition.data_type
            )
        except (ExpressionEvaluationError, ValueError, TypeError, OverflowError) as err:
            failed = Quality.bad(Substatus.NON_SPECIFIC, f"cannot evaluate: {err}")
            return Sample(calc.name, None, failed, source_time, self._now)
        low, high = calc.definition.low, calc.definition.high
        if quality.is_good and _outside(value, low, high):
            # As a field device flags a reading beyond its range (OPC UA Part 4, 7.39).
            quality = Quality.uncertain(
                Substatus.ENGINEERING_UNITS_EXCEEDED, f"{value} outside [{low}, {high}]"
            )
        return Sample(calc.name, value, quality, source_time, self._now)

    # -- rules -----------------------------------------------------------------------------

    def _evaluate_changes(self, changed: Iterable[str], out: _Collector) -> None:
        fired: dict[int, str] = {}  # rule order -> the tag whose change fired it
        touched: dict[int, _RuleState] = {}
        by_tag = self._by_tag
        for tag in changed:
            entry = by_tag.get(tag)
            if entry is None:
                continue
            immediate, debounced, readers = entry
            for state in immediate:
                fired.setdefault(state.order, tag)
            for state, index, debounce in debounced:
                self._set_timer(
                    (state.rule.name, _DEBOUNCE_SLOT + index),
                    self._now + timedelta(seconds=debounce),
                )
            for state in readers:
                touched[state.order] = state
        for order in sorted(touched):
            by = fired.get(order)
            cause = _TOUCHED if by is None else _Cause(True, f"{by} changed")
            self._evaluate(touched[order], cause, out)

    def _evaluate(self, state: _RuleState, cause: _Cause, out: _Collector) -> None:
        rule = state.rule
        self._evaluations += 1
        if cause.fired:
            state.last_fired = self._now
        try:
            problem = self._input_problem(state)
        except _InputsMissing:
            return
        if problem is None:
            if state.held is not None and state.held_on_evaluation and not cause.fired:
                return  # resumes only once an evaluation succeeds
            try:
                self._decide(state, cause, out)
            except (ExpressionEvaluationError, ValueError, TypeError, OverflowError) as err:
                self._hold(state, f"cannot evaluate: {err}", out, on_evaluation=True)
                return
        if problem is not None:
            self._hold(state, problem, out, on_evaluation=False)
        elif state.held is not None:
            resumed = Event(
                self._now,
                EventKind.RULE,
                rule.name,
                f"rule {rule.name} resumes: its inputs are usable again",
                self._identity,
                RESUME_SEVERITY,
            )
            out.resumes.append(resumed)
            out.events.append(resumed)
            state.held = None
            state.held_on_evaluation = False

    def _hold(
        self, state: _RuleState, reason: str, out: _Collector, *, on_evaluation: bool
    ) -> None:
        if state.held is not None:
            return
        state.held = reason
        state.held_on_evaluation = on_evaluation
        # The condition's stretch is broken: a for: rule starts counting again afterwards.
        state.true_since = None
        self._cancel_timer((state.rule.name, _FOR_SLOT))
        name = state.rule.name
        held = Event(
            self._now,
            EventKind.RULE,
            name,
            f"rule {name} holds: {reason}",
            self._identity,
            HOLD_SEVERITY,
        )
        out.holds.append(held)
        out.events.append(held)

    def _input_problem(self, state: _RuleState) -> str | None:
        rule = state.rule
        if not state.received:
            samples = self._samples
            if any(tag not in samples for tag in rule.inputs):
                raise _InputsMissing
            state.received = True
        if self._not_good.isdisjoint(rule.inputs):
            return None
        policy = rule.definition.inputs_quality
        for tag in rule.inputs:
            sample = self._samples.get(tag)
            if sample is None:
                raise _InputsMissing
            severity = sample.quality.severity
            if severity is Severity.GOOD or policy is InputQualityPolicy.ANY:
                continue
            if severity is Severity.UNCERTAIN and policy is InputQualityPolicy.GOOD_OR_UNCERTAIN:
                continue
            reason = sample.quality.reason
            return f"{tag} is {sample.quality.label()}" + (f" ({reason})" if reason else "")
        return None

    def _decide(self, state: _RuleState, cause: _Cause, out: _Collector) -> None:
        rule = state.rule
        if rule.hysteresis is not None:
            if cause.fired:
                self._hysteresis(state, out)
            return
        hold_for = rule.definition.hold_for_s
        if hold_for <= 0:
            if cause.fired and self._condition(rule):
                self._act(state, cause, out)
            return
        if not self._condition(rule):
            state.true_since = None
            state.acted = False
            self._cancel_timer((rule.name, _FOR_SLOT))
            return
        if state.acted:
            return
        if state.true_since is None:
            if not cause.fired:
                return  # only a trigger starts the watch
            state.true_since = self._now
            self._set_timer((rule.name, _FOR_SLOT), self._now + timedelta(seconds=hold_for))
            return
        if (self._now - state.true_since).total_seconds() >= hold_for:
            self._cancel_timer((rule.name, _FOR_SLOT))
            held = _Cause(True, f"condition held for {hold_for:g} s")
            self._act(state, held, out)
            state.acted = True

    def _condition(self, rule: CompiledRule) -> bool:
        if rule.condition is None:
            return True
        return rule.condition.evaluate(self._values, self) is True

    def _act(self, state: _RuleState, cause: _Cause, out: _Collector) -> None:
        rule = state.rule
        # Evaluate every action first: a failing one must not leave half of them done.
        commands: list[tuple[CompiledCommandAction, Value]] = []
        messages: list[tuple[str, int]] = []
        for action in rule.actions:
            if isinstance(action, CompiledCommandAction):
                value = _convert(action.value.evaluate(self._values, self), action.data_type)
                commands.append((action, value))
            else:
                text = "".join(
                    part if isinstance(part, str) else _format(part.evaluate(self._values, self))
                    for part in action.parts
                )
                messages.append((text, action.severity))
        reason = _reason(rule, cause)
        for action, value in commands:
            self._command(rule, action.tag, value, action.priority, reason, out)
        for text, severity in messages:
            out.events.append(
                Event(self._now, EventKind.RULE, rule.name, text, self._identity, severity)
            )

    def _hysteresis(self, state: _RuleState, out: _Collector) -> None:
        control = state.rule.hysteresis
        definition = state.rule.definition.hysteresis
        assert control is not None and definition is not None
        measured = self._samples[control.input_tag].numeric
        if measured is None:
            raise ValueError(f"{control.input_tag} has no numeric value")
        desired = control.desired_output(measured)
        if desired is None:
            return
        reason = f"{control.name}: {control.reason(measured, desired)}"
        self._command(state.rule, control.output_tag, desired, definition.priority, reason, out)

    def _command(
        self,
        rule: CompiledRule,
        tag: str,
        value: Value,
        priority: CommandPriority,
        reason: str,
        out: _Collector,
    ) -> None:
        key = (rule.name, tag)
        if key in self._in_flight:
            return
        readback = self._samples.get(tag)
        if readback is not None and readback.quality.is_good and _same(readback.value, value):
            return
        last = self._last_command.get(key)
        interval = rule.definition.min_command_interval_s
        if last is not None and (self._now - last).total_seconds() < interval:
            return
        command = Command(
            tag=tag,
            value=value,
            origin=CommandOrigin.RULE,
            requested_by=self._identity,
            reason=reason,
            issued_at=self._now,
            priority=priority,
        )
        self._in_flight[key] = command.command_id
        self._flight_keys[command.command_id] = key
        self._last_command[key] = self._now
        out.commands.append(command)

    # -- timers ----------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """When ``advance`` has something to do next, or None while nothing is scheduled."""
        heap = self._heap
        while heap and self._timers.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def advance(self, now: datetime) -> Decisions:
        """Fire every timer due at or before ``now``: intervals, cron, sun, debounces, for:."""
        self._now = now
        out = _Collector()
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, key = heapq.heappop(heap)
            if self._timers.get(key) != due:
                continue  # replaced or cancelled
            del self._timers[key]
            state = self._states.get(key[0])
            if state is None:
                continue
            slot = key[1]
            rule = state.rule
            if slot == _FOR_SLOT:
                self._evaluate(state, _Cause(False, "for: expired"), out)
            elif slot >= _DEBOUNCE_SLOT:
                trigger = rule.change_triggers[slot - _DEBOUNCE_SLOT]
                text = f"{', '.join(trigger.tags)} changed (debounced {trigger.debounce_s:g} s)"
                self._evaluate(state, _Cause(True, text), out)
            else:
                schedule = rule.timed_triggers[slot]
                following = _next_fire(schedule, self._activated, now)
                if following is not None:
                    self._set_timer(key, following)
                self._evaluate(state, _Cause(True, _describe(rule, slot)), out)
        return out.freeze()

    def _set_timer(self, key: tuple[str, int], due: datetime) -> None:
        self._timers[key] = due
        self._sequence += 1
        heapq.heappush(self._heap, (due, self._sequence, key))

    def _cancel_timer(self, key: tuple[str, int]) -> None:
        self._timers.pop(key, None)


def _next_fire(schedule: TimedSchedule, anchor: datetime, after: datetime) -> datetime | None:
    if isinstance(schedule, IntervalTrigger):
        return next_interval(anchor, schedule.every_s, after)
    return schedule.next_after(after)


def _describe(rule: CompiledRule, slot: int) -> str:
    schedule = rule.timed_triggers[slot]
    if isinstance(schedule, IntervalTrigger):
        return f"every {schedule.every_s:g} s"
    if isinstance(schedule, CronSchedule):
        return f"cron {schedule.expression}"
    offset = schedule.offset_s
    if offset:
        return f"{schedule.event.value} {'+' if offset > 0 else '-'}{abs(offset):g} s"
    return schedule.event.value


def _reason(rule: CompiledRule, cause: _Cause) -> str:
    text = f"{rule.name}: {cause.text}"
    if rule.condition is not None:
        text += f"; {rule.condition.source.text}"
    return text


def _rank(quality: Quality) -> int:
    return {Severity.GOOD: 0, Severity.UNCERTAIN: 1, Severity.BAD: 2}[quality.severity]


def _inherit(worst: Quality, tag: str) -> Quality:
    reason = f"input {tag} is {worst.label()}" + (f": {worst.reason}" if worst.reason else "")
    return Quality(worst.severity, worst.substatus, reason)


def _convert(value: Value, data_type: DataType) -> Value:
    """Fit an expression's result to a tag's type ("every number is a double" in expressions)."""
    if data_type is DataType.FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{value!r} is not a number")
        result = float(value)
        if not math.isfinite(result):
            raise ValueError(f"{result} is not a finite number")
        return result
    if data_type is DataType.INT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{value!r} is not a number")
        if not math.isfinite(value) or value != math.floor(value):
            raise ValueError(f"{value} is not a whole number")
        return int(value)
    if data_type is DataType.BOOL:
        if not isinstance(value, bool):
            raise TypeError(f"{value!r} is not a bool")
        return value
    if data_type is DataType.STRING:
        if not isinstance(value, str):
            raise TypeError(f"{value!r} is not a string")
        return value
    raise TypeError(f"a {data_type} value cannot be computed")


def _outside(value: Value, low: float | None, high: float | None) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return (low is not None and value < low) or (high is not None and value > high)


def _same(readback: Value | None, wanted: Value) -> bool:
    if isinstance(readback, bool) or isinstance(wanted, bool):
        return readback is wanted or (
            isinstance(readback, bool) and isinstance(wanted, bool) and readback == wanted
        )
    if isinstance(readback, int | float) and isinstance(wanted, int | float):
        return math.isclose(readback, wanted, rel_tol=1e-9, abs_tol=1e-9)
    return readback == wanted


def _format(value: Value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
