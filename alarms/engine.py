"""The alarm engine: samples and time in, changes of alarm conditions out.

``AlarmEngine`` compiles a site's alarm definitions once (every problem reported together, with
its ``file:line:column``), indexes the alarms by the tags they read, and then judges each batch
of samples. It never reads a clock and never does I/O: ``feed`` and ``advance`` say what time it
is, so the same code runs live and on a test's controlled time base.

Semantics (ISA-18.2 / IEC 62682 terms):

* the *condition* of an alarm is judged on its inputs (see ``alarms.conditions``); on- and
  off-delays (ISA-18.2 5.3.5 "alarm on-delay / off-delay") then decide when the change is
  reported, so a blip shorter than the on-delay raises nothing;
* an input that is Bad, missing, not a finite number or of the wrong type *holds* the
  condition: it neither raises nor clears, and a pending delay is cancelled;
* a device whose tags' samples are Bad with a communication sub-status raises its one
  ``comm_loss`` alarm; while that alarm is active the device's other active alarms are
  reported suppressed (ISA-18.2 "suppressed by design"), naming it, so a device down is one
  alarm on the operator's screen; an alarm of that device which activates during the outage
  is reported suppressed at once;
* ``suppress_when`` expressions suppress their alarm while they hold (reported whether the
  alarm is active or not, so operators see what is blinded).

Not thread-safe: one task feeds and advances it.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from alarms.conditions import (
    COMMUNICATION_SUBSTATUSES,
    HIGH_KINDS,
    LIMIT_KINDS,
    AlarmDefinitionError,
    AlarmProblem,
    ConditionChange,
    RateTracker,
    check_definition,
    discrete_condition,
    finite_number,
    format_value,
    magnitude_condition,
    mismatch_condition,
    switch_state,
)
from controlcenter.automation import AlarmDef, AlarmKind, Expression, SiteLocation
from controlcenter.model import Quality, Sample, Severity, Substatus, TagDef, Value
from rules.expressions import (
    CompiledExpression,
    ExpressionCompiler,
    ExpressionError,
    ExpressionEvaluationError,
    TagSignature,
    ValueKind,
)
from rules.windows import NoWindowDataError, TagWindows

RECHECK_S: Final = 10.0
"""Expressions that read the clock, windows or ``since_change`` change without any sample:
they are re-evaluated at least this often."""
FROZEN_RECHECK_S: Final = 60.0
"""A still value whose ``expect_change_when`` does not hold (or cannot be evaluated) is
looked at again after at most this long."""

_GOOD: Final = Severity.GOOD
_BAD: Final = Severity.BAD
_NO_VALUE: Final = Quality.bad(Substatus.WAITING_FOR_INITIAL_DATA, "no value received yet")
_TIME_FUNCTIONS = re.compile(
    r"\b(hour|minute|weekday|sun_elevation|since_change|avg|min_over|max_over)\s*\("
)
_EVALUATION_FAILURES: Final = (
    ExpressionEvaluationError,
    NoWindowDataError,
    KeyError,
    ValueError,
    TypeError,
    OverflowError,
)

# Timer slots of one alarm.
_DELAY: Final = 0
_MISMATCH: Final = 1
_FROZEN: Final = 2
_RECHECK: Final = 3


@dataclass(slots=True, eq=False)
class _Alarm:
    """What the engine remembers of one alarm between calls."""

    definition: AlarmDef
    index: int
    device: str
    expression: CompiledExpression | None = None
    suppress_when: CompiledExpression | None = None
    expect_change_when: CompiledExpression | None = None
    rechecked: bool = False
    """Its expression or suppression reads the clock: re-evaluated every ``RECHECK_S``."""
    # limit kinds, pre-signed so one comparison serves high and low alarms
    sign: float = 1.0
    trip_key: float = 0.0
    clear_key: float = 0.0
    raw: bool = False
    """The condition as last judged, before on/off delays."""
    output: bool = False
    """The condition as reported (after delays)."""
    pending_value: Value | None = None
    pending_reason: str = ""
    value: Value | None = None
    mismatch: str | None = None
    """Command mismatch: the direction being timed or reported."""
    frozen_value: Value | None = None
    frozen_since: datetime | None = None
    rate: RateTracker | None = None
    design_suppressed: bool = False
    comm_suppressor: str | None = None
    """The active comm-loss alarm of this alarm's device, if any."""
    reported_suppressed: bool = False


@dataclass(slots=True, eq=False)
class _Device:
    """A device with a comm-loss alarm: which of its tags are unreachable."""

    name: str
    alarm: _Alarm
    unreachable: set[str] = field(default_factory=set)
    members: tuple[_Alarm, ...] = ()
    """The device's other alarms, suppressed while its comm-loss alarm is active."""


class _Watch:
    """Everything a sample of one tag concerns (one dict lookup per sample)."""

    __slots__ = ("dependents", "device", "keep", "last_time", "limits", "tag", "unreachable")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.limits: tuple[_Alarm, ...] = ()
        self.dependents: tuple[_Alarm, ...] = ()
        """Alarms judged after the batch (every kind but limits, and suppressions)."""
        self.device: _Device | None = None
        self.keep = False
        """Keep the latest sample (for dependents, expressions, quality())."""
        self.last_time: datetime | None = None
        self.unreachable = False


class AlarmEngine:
    """Judges alarm conditions on samples and time; reports changes, acts on nothing.

    Also the ``EvaluationContext`` its expressions read (time, quality, since_change, windows).
    Raises ``AlarmDefinitionError`` listing every definition it cannot evaluate.
    """

    def __init__(
        self, definitions: Sequence[AlarmDef], tags: Sequence[TagDef], site: SiteLocation
    ) -> None:
        tag_defs = {tag.name: tag for tag in tags}
        compiler = ExpressionCompiler(
            {t.name: TagSignature(t.name, t.data_type, t.writable) for t in tags}, site
        )
        problems: list[AlarmProblem] = []
        self._alarms: list[_Alarm] = []
        self._by_name: dict[str, _Alarm] = {}
        comm_alarms: dict[str, _Alarm] = {}
        for definition in definitions:
            if definition.name in self._by_name:
                problems.append(
                    AlarmProblem(definition.name, definition.spot, "defined more than once")
                )
                continue
            found = check_definition(definition, tag_defs)
            alarm = self._compile(definition, tag_defs, compiler, found)
            problems.extend(found)
            self._by_name[definition.name] = alarm
            if definition.kind is AlarmKind.COMM_LOSS and definition.device:
                other = comm_alarms.get(definition.device)
                if other is not None:
                    problems.append(
                        AlarmProblem(
                            definition.name,
                            definition.spot,
                            f"device {definition.device} already has comm_loss alarm "
                            f"{other.definition.name}",
                        )
                    )
                comm_alarms[definition.device] = alarm
        if problems:
            raise AlarmDefinitionError(problems)
        self._alarms = list(self._by_name.values())
        self._now: datetime | None = None
        self._samples: dict[str, Sample] = {}
        self._values: dict[str, Value | None] = {}
        self._changed_at: dict[str, datetime] = {}
        self._activated: datetime | None = None
        self._timers: dict[tuple[int, int], datetime] = {}
        self._heap: list[tuple[datetime, int, tuple[int, int]]] = []
        self._sequence = 0
        self.held_samples = 0
        """Samples that could not be judged (Bad, non-finite, wrong type, out of order)."""
        self._build_index(tag_defs, comm_alarms)

    # -- compile ---------------------------------------------------------------------------

    def _compile(
        self,
        definition: AlarmDef,
        tags: Mapping[str, TagDef],
        compiler: ExpressionCompiler,
        problems: list[AlarmProblem],
    ) -> _Alarm:
        tag = tags.get(definition.tag)
        device = definition.device or (tag.device if tag is not None else "")
        alarm = _Alarm(definition, len(self._by_name), device)

        def compile_bool(expression: Expression | None) -> CompiledExpression | None:
            if expression is None:
                return None
            try:
                return compiler.compile(expression, expect=ValueKind.BOOL)
            except ExpressionError as err:
                problems.append(AlarmProblem(definition.name, err.spot, err.reason))
                return None

        if definition.kind is AlarmKind.EXPRESSION:
            alarm.expression = compile_bool(definition.expression)
        if definition.kind is AlarmKind.FROZEN:
            alarm.expect_change_when = compile_bool(definition.expect_change_when)
        alarm.suppress_when = compile_bool(definition.suppress_when)
        alarm.rechecked = any(
            compiled is not None and _reads_clock(compiled)
            for compiled in (alarm.expression, alarm.suppress_when)
        )
        if definition.kind in LIMIT_KINDS and definition.limit is not None:
            # value * sign > trip_key raises; value * sign <= clear_key clears (deadband).
            alarm.sign = 1.0 if definition.kind in HIGH_KINDS else -1.0
            alarm.trip_key = alarm.sign * definition.limit
            alarm.clear_key = alarm.trip_key - definition.deadband
        if definition.kind is AlarmKind.RATE:
            alarm.rate = RateTracker()
        return alarm

    def _build_index(self, tags: Mapping[str, TagDef], comm_alarms: Mapping[str, _Alarm]) -> None:
        watches: dict[str, _Watch] = {}
        limits: dict[str, list[_Alarm]] = {}
        dependents: dict[str, list[_Alarm]] = {}
        kept: set[str] = set()
        window_needs: dict[str, float] = {}

        def depend(tag: str, alarm: _Alarm) -> None:
            if tag:
                entries = dependents.setdefault(tag, [])
                if alarm not in entries:
                    entries.append(alarm)
                kept.add(tag)

        for alarm in self._alarms:
            definition = alarm.definition
            kind = definition.kind
            if kind in LIMIT_KINDS:
                limits.setdefault(definition.tag, []).append(alarm)
            elif kind is AlarmKind.DEVIATION:
                depend(definition.tag, alarm)
                depend(definition.setpoint_tag, alarm)
            elif kind is AlarmKind.COMMAND_MISMATCH:
                depend(definition.tag, alarm)
                depend(definition.command_tag, alarm)
            elif kind in (AlarmKind.RATE, AlarmKind.DISCRETE, AlarmKind.FROZEN):
                depend(definition.tag, alarm)
            for compiled in (alarm.expression, alarm.suppress_when, alarm.expect_change_when):
                if compiled is None:
                    continue
                for tag in compiled.inputs | compiled.referenced:
                    depend(tag, alarm)
                for tag, seconds in compiled.windows.items():
                    window_needs[tag] = max(window_needs.get(tag, 0.0), seconds)
        for tag in set(limits) | set(dependents):
            watch = watches.setdefault(tag, _Watch(tag))
            watch.limits = tuple(limits.get(tag, ()))
            watch.dependents = tuple(dependents.get(tag, ()))
            watch.keep = tag in kept
        self._devices: dict[str, _Device] = {}
        for device_name, alarm in comm_alarms.items():
            members = tuple(
                other
                for other in self._alarms
                if other.device == device_name and other is not alarm
            )
            device = _Device(device_name, alarm, members=members)
            self._devices[device_name] = device
            for tag_def in tags.values():
                if tag_def.device == device_name:
                    watches.setdefault(tag_def.name, _Watch(tag_def.name)).device = device
        self._watches = watches
        self._windows = {tag: TagWindows({tag: seconds}) for tag, seconds in window_needs.items()}
        self._rechecked = tuple(alarm for alarm in self._alarms if alarm.rechecked)

    # -- EvaluationContext -----------------------------------------------------------------

    def now(self) -> datetime:
        """The time of the current evaluation (UTC)."""
        if self._now is None:
            raise RuntimeError("the alarm engine has not been fed or advanced yet")
        return self._now

    def quality(self, tag: str) -> Quality:
        """The latest quality of ``tag`` (Bad, waiting for initial data, before its first)."""
        sample = self._samples.get(tag)
        return _NO_VALUE if sample is None else sample.quality

    def since_change(self, tag: str) -> float:
        """Seconds since ``tag``'s value last changed (since the engine started if never)."""
        now = self.now()
        return (now - self._changed_at.get(tag, self._activated or now)).total_seconds()

    def window(self, tag: str, seconds: float, statistic: str) -> float:
        """A time-weighted statistic ("avg", "min", "max") of ``tag`` over the last seconds."""
        windows = self._windows.get(tag)
        if windows is None:
            raise ExpressionEvaluationError(f"no window is kept for {tag}")
        return windows.statistic(tag, self.now(), seconds, statistic)

    # -- public API ------------------------------------------------------------------------

    @property
    def watched_tags(self) -> frozenset[str]:
        """The tags whose samples the engine reads (every other sample is skipped)."""
        return frozenset(self._watches)

    def active(self) -> frozenset[str]:
        """The alarms whose condition is reported active."""
        return frozenset(alarm.definition.name for alarm in self._alarms if alarm.output)

    def feed(self, samples: Sequence[Sample], now: datetime) -> list[ConditionChange]:
        """Judge a batch of samples received at ``now``; the changes they cause, in order."""
        self._start(now)
        self._now = now
        out: list[ConditionChange] = []
        watches = self._watches
        touched: dict[int, _Alarm] = {}
        for sample in samples:
            watch = watches.get(sample.tag)
            if watch is None:
                continue
            time = sample.source_time
            last = watch.last_time
            if last is not None and time < last:
                self.held_samples += 1  # out of order: an older value cannot overrule a newer
                continue
            watch.last_time = time
            quality = sample.quality
            if quality.severity is _BAD:
                self._bad(watch, sample, touched, out)
                continue
            if watch.unreachable and quality.substatus is not Substatus.NO_COMM_LAST_USABLE:
                self._reachable(watch, now, out)
            if watch.limits:
                value = sample.value
                # A finite int or float (bools and NaN/inf fail: x - x is NaN for them).
                if (type(value) is float or type(value) is int) and value - value == 0:
                    for alarm in watch.limits:
                        signed = value * alarm.sign
                        if alarm.raw:
                            if signed <= alarm.clear_key:
                                self._limit(alarm, False, value, now, out)
                        elif signed > alarm.trip_key:
                            self._limit(alarm, True, value, now, out)
                else:
                    self.held_samples += 1
                    for alarm in watch.limits:
                        self._hold(alarm)
            if watch.keep:
                self._store(sample, now)
                for alarm in watch.dependents:
                    touched[alarm.index] = alarm
        for index in sorted(touched):
            self._judge(touched[index], now, out)
        return out

    def advance(self, now: datetime) -> list[ConditionChange]:
        """Fire every timer due at or before ``now`` (delays, start delays, frozen, rechecks)."""
        self._start(now)
        self._now = now
        out: list[ConditionChange] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, key = heapq.heappop(heap)
            if self._timers.get(key) != due:
                continue  # replaced or cancelled
            del self._timers[key]
            alarm = self._alarms[key[0]]
            slot = key[1]
            if slot == _DELAY:
                if alarm.raw != alarm.output:
                    delay = (
                        alarm.definition.on_delay_s if alarm.raw else alarm.definition.off_delay_s
                    )
                    reason = f"{alarm.pending_reason} for {delay:g} s"
                    self._output(alarm, alarm.raw, due, alarm.pending_value, reason, out)
            elif slot == _MISMATCH:
                self._judge_mismatch(alarm, due, out, timer_fired=True)
            elif slot == _FROZEN:
                self._judge_frozen(alarm, due, out, timer_fired=True)
            else:
                self._set_timer(alarm, _RECHECK, due + timedelta(seconds=RECHECK_S))
                self._judge_expressions(alarm, due, out)
        return out

    def next_due(self) -> datetime | None:
        """When ``advance`` has something to do next, or None while nothing is scheduled."""
        heap = self._heap
        while heap and self._timers.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # -- inputs ----------------------------------------------------------------------------

    def _start(self, now: datetime) -> None:
        if self._activated is not None:
            return
        self._activated = now
        for alarm in self._rechecked:
            self._set_timer(alarm, _RECHECK, now)

    def _store(self, sample: Sample, now: datetime) -> None:
        tag = sample.tag
        previous = self._samples.get(tag)
        self._samples[tag] = sample
        if sample.quality.severity is _BAD:
            return
        if previous is None or previous.value != sample.value:
            self._changed_at[tag] = now
        self._values[tag] = sample.value
        windows = self._windows.get(tag)
        if windows is not None:
            number = finite_number(sample.value)
            if number is not None:
                windows.add(tag, now, number)

    def _bad(
        self, watch: _Watch, sample: Sample, touched: dict[int, _Alarm], out: list[ConditionChange]
    ) -> None:
        """A Bad sample holds the tag's alarms; a communication failure speaks for the device."""
        self.held_samples += 1
        for alarm in watch.limits:
            self._hold(alarm)
        if watch.keep:
            self._store(sample, self.now())
            for alarm in watch.dependents:
                touched[alarm.index] = alarm
        device = watch.device
        if device is None:
            return
        if sample.quality.substatus in COMMUNICATION_SUBSTATUSES:
            if not watch.unreachable:
                watch.unreachable = True
                device.unreachable.add(watch.tag)
                if len(device.unreachable) == 1:
                    reason = f"{watch.tag} is {sample.quality.label()}"
                    if sample.quality.reason:
                        reason += f" ({sample.quality.reason})"
                    self._raw(device.alarm, True, None, reason, self.now(), out)
        elif watch.unreachable:
            # The device answered (with a Bad value of its own): it is reachable.
            self._reachable(watch, self.now(), out)

    def _reachable(self, watch: _Watch, now: datetime, out: list[ConditionChange]) -> None:
        watch.unreachable = False
        device = watch.device
        if device is None:
            return
        device.unreachable.discard(watch.tag)
        if not device.unreachable:
            self._raw(device.alarm, False, None, f"{device.name} answers again", now, out)

    def _usable(self, tag: str) -> Sample | None:
        """The latest sample of ``tag`` if its value may be judged (not Bad), else None."""
        sample = self._samples.get(tag)
        if sample is None or sample.quality.severity is _BAD:
            return None
        return sample

    # -- judging -----------------------------------------------------------------------------

    def _limit(
        self, alarm: _Alarm, active: bool, value: float, now: datetime, out: list[ConditionChange]
    ) -> None:
        definition = alarm.definition
        limit = definition.limit
        if active:
            side = "above" if alarm.sign > 0 else "below"
            reason = f"{format_value(value)} {side} {definition.kind.value} limit {limit:g}"
        else:
            band = f" by deadband {definition.deadband:g}" if definition.deadband else ""
            reason = f"{format_value(value)} back inside limit {limit:g}{band}"
        self._raw(alarm, active, value, reason, now, out)

    def _judge(self, alarm: _Alarm, now: datetime, out: list[ConditionChange]) -> None:
        """Judge an alarm whose inputs changed in the batch (every kind but the limits)."""
        kind = alarm.definition.kind
        if kind is AlarmKind.DEVIATION:
            self._judge_deviation(alarm, now, out)
        elif kind is AlarmKind.RATE:
            self._judge_rate(alarm, now, out)
        elif kind is AlarmKind.DISCRETE:
            self._judge_discrete(alarm, now, out)
        elif kind is AlarmKind.COMMAND_MISMATCH:
            self._judge_mismatch(alarm, now, out, timer_fired=False)
        elif kind is AlarmKind.FROZEN:
            self._judge_frozen(alarm, now, out, timer_fired=False)
        self._judge_expressions(alarm, now, out)

    def _judge_expressions(self, alarm: _Alarm, now: datetime, out: list[ConditionChange]) -> None:
        if alarm.expression is not None:
            result = self._evaluate(alarm.expression)
            if result is None:
                self._hold(alarm)
            else:
                text = alarm.expression.source.text
                reason = f"{text} holds" if result else f"{text} no longer holds"
                self._raw(alarm, result, None, reason, now, out)
        if alarm.suppress_when is not None:
            suppressed = self._evaluate(alarm.suppress_when)
            if suppressed is not None and suppressed != alarm.design_suppressed:
                alarm.design_suppressed = suppressed
                self._sync_suppression(alarm, now, out)

    def _evaluate(self, compiled: CompiledExpression) -> bool | None:
        """A bool expression's value, or None when an input is Bad or it cannot be evaluated."""
        for tag in compiled.inputs:
            if self._usable(tag) is None:
                return None
        try:
            return compiled.evaluate(self._values, self) is True
        except _EVALUATION_FAILURES:
            return None

    def _judge_deviation(self, alarm: _Alarm, now: datetime, out: list[ConditionChange]) -> None:
        definition = alarm.definition
        measured = self._number(definition.tag)
        setpoint = self._number(definition.setpoint_tag)
        if measured is None or setpoint is None or definition.limit is None:
            self._hold(alarm)
            return
        deviation = abs(measured - setpoint)
        active = magnitude_condition(definition.limit, definition.deadband, deviation, alarm.raw)
        reason = (
            f"{definition.tag} {measured:g} deviates {deviation:g} from "
            f"{definition.setpoint_tag} {setpoint:g} (limit {definition.limit:g})"
        )
        self._raw(alarm, active, measured, reason, now, out)

    def _judge_rate(self, alarm: _Alarm, now: datetime, out: list[ConditionChange]) -> None:
        definition = alarm.definition
        tracker = alarm.rate
        sample = self._usable(definition.tag)
        value = finite_number(sample.value) if sample is not None else None
        if tracker is None or definition.limit is None or sample is None or value is None:
            if tracker is not None:
                tracker.clear()  # a gap breaks the minute: start measuring again
            self._hold(alarm)
            return
        rate = tracker.add(sample.source_time, value)
        if rate is None:
            return
        active = magnitude_condition(definition.limit, definition.deadband, abs(rate), alarm.raw)
        reason = f"{definition.tag} changes {rate:+g}/min (limit {definition.limit:g}/min)"
        self._raw(alarm, active, value, reason, now, out)

    def _judge_discrete(self, alarm: _Alarm, now: datetime, out: list[ConditionChange]) -> None:
        definition = alarm.definition
        sample = self._usable(definition.tag)
        state = definition.state
        verdict = None
        if sample is not None and sample.value is not None and state is not None:
            verdict = discrete_condition(state, sample.value)
        if verdict is None or sample is None:
            self._hold(alarm)
            return
        shown = format_value(sample.value)
        reason = f"{definition.tag} is {shown}" if verdict else f"{definition.tag} left {shown}"
        self._raw(alarm, verdict, sample.value, reason, now, out)

    def _judge_mismatch(
        self, alarm: _Alarm, now: datetime, out: list[ConditionChange], *, timer_fired: bool
    ) -> None:
        definition = alarm.definition
        command = self._switch(definition.command_tag)
        feedback = self._switch(definition.tag)
        if command is None or feedback is None:
            self._cancel_timer(alarm, _MISMATCH)
            if not alarm.raw:
                alarm.mismatch = None  # the start delay restarts once the inputs are usable
            self._hold(alarm)
            return
        direction = mismatch_condition(command, feedback)
        if direction is None:
            self._cancel_timer(alarm, _MISMATCH)
            alarm.mismatch = None
            reason = f"{definition.tag} follows {definition.command_tag}"
            self._raw(alarm, False, feedback, reason, now, out)
            return
        delay = definition.delay_s
        if timer_fired or delay <= 0:
            if timer_fired and direction != alarm.mismatch:
                return
            alarm.mismatch = direction
            reason = (
                f"{direction}: {definition.command_tag} is {format_value(command)}, "
                f"{definition.tag} still {format_value(feedback)} after {delay:g} s"
            )
            self._raw(alarm, True, feedback, reason, now, out)
            return
        if direction != alarm.mismatch:
            # A new mismatch (or a new direction): the start delay counts from now.
            alarm.mismatch = direction
            if alarm.raw:
                self._raw(alarm, False, feedback, f"{direction}: timing again", now, out)
            self._set_timer(alarm, _MISMATCH, now + timedelta(seconds=delay))

    def _judge_frozen(
        self, alarm: _Alarm, now: datetime, out: list[ConditionChange], *, timer_fired: bool
    ) -> None:
        definition = alarm.definition
        sample = self._usable(definition.tag)
        if sample is None or (
            isinstance(sample.value, float) and finite_number(sample.value) is None
        ):
            # Nothing is known of the value: stillness is measured again from the next one.
            alarm.frozen_since = None
            alarm.frozen_value = None
            self._cancel_timer(alarm, _FROZEN)
            self._hold(alarm)
            return
        delay = timedelta(seconds=definition.delay_s)
        if alarm.frozen_since is None or sample.value != alarm.frozen_value:
            alarm.frozen_since = now
            alarm.frozen_value = sample.value
            self._set_timer(alarm, _FROZEN, now + delay)
            if alarm.raw:
                reason = f"{definition.tag} changed to {format_value(sample.value)}"
                self._raw(alarm, False, sample.value, reason, now, out)
            return
        still = now - alarm.frozen_since
        if still < delay:
            return
        expected = True
        if alarm.expect_change_when is not None:
            verdict = self._evaluate(alarm.expect_change_when)
            if verdict is None:
                self._hold(alarm)
                self._recheck_frozen(alarm, now, timer_fired)
                return
            expected = verdict
        if expected:
            reason = (
                f"{definition.tag} unchanged at {format_value(sample.value)} "
                f"for {still.total_seconds():g} s"
            )
        else:
            reason = f"{definition.tag} is not expected to change"
            self._recheck_frozen(alarm, now, timer_fired)
        self._raw(alarm, expected, sample.value, reason, now, out)

    def _recheck_frozen(self, alarm: _Alarm, now: datetime, timer_fired: bool) -> None:
        if timer_fired or (alarm.index, _FROZEN) not in self._timers:
            seconds = min(alarm.definition.delay_s, FROZEN_RECHECK_S)
            self._set_timer(alarm, _FROZEN, now + timedelta(seconds=seconds))

    def _number(self, tag: str) -> float | None:
        sample = self._usable(tag)
        return None if sample is None else finite_number(sample.value)

    def _switch(self, tag: str) -> bool | None:
        sample = self._usable(tag)
        return None if sample is None else switch_state(sample.value)

    # -- delays and reporting ----------------------------------------------------------------

    def _hold(self, alarm: _Alarm) -> None:
        """The condition cannot be judged: it stays as reported; a pending delay is void."""
        if alarm.raw != alarm.output:
            alarm.raw = alarm.output
            self._cancel_timer(alarm, _DELAY)

    def _raw(
        self,
        alarm: _Alarm,
        active: bool,
        value: Value | None,
        reason: str,
        now: datetime,
        out: list[ConditionChange],
    ) -> None:
        """The condition was judged ``active``: report it now or after its on/off-delay."""
        if active == alarm.raw:
            return
        alarm.raw = active
        if active == alarm.output:
            self._cancel_timer(alarm, _DELAY)  # a blip shorter than the delay
            return
        definition = alarm.definition
        delay = definition.on_delay_s if active else definition.off_delay_s
        if delay <= 0:
            self._output(alarm, active, now, value, reason, out)
            return
        alarm.pending_value = value
        alarm.pending_reason = reason
        self._set_timer(alarm, _DELAY, now + timedelta(seconds=delay))

    def _output(
        self,
        alarm: _Alarm,
        active: bool,
        time: datetime,
        value: Value | None,
        reason: str,
        out: list[ConditionChange],
    ) -> None:
        alarm.output = active
        alarm.value = value
        self._cancel_timer(alarm, _DELAY)
        suppressed: bool | None = None
        target = self._suppression_target(alarm)
        if target != alarm.reported_suppressed:
            alarm.reported_suppressed = target
            suppressed = target
            reason += f"; {self._suppression_reason(alarm)}"
        out.append(
            ConditionChange(
                alarm.definition.name,
                time,
                active,
                suppressed,
                value,
                self._message(alarm, active, value),
                reason,
            )
        )
        device = self._devices.get(alarm.device)
        if device is not None and device.alarm is alarm:
            suppressor = alarm.definition.name if active else None
            for member in device.members:
                member.comm_suppressor = suppressor
                self._sync_suppression(member, time, out)

    def _suppression_target(self, alarm: _Alarm) -> bool:
        # Comm loss suppresses alarms that are (or become) active; an inactive alarm is
        # held by its Bad inputs anyway, and reporting it would only fill the journal.
        return alarm.design_suppressed or (
            alarm.comm_suppressor is not None and (alarm.output or alarm.reported_suppressed)
        )

    def _suppression_reason(self, alarm: _Alarm) -> str:
        reasons: list[str] = []
        if alarm.comm_suppressor is not None:
            reasons.append(
                f"suppressed: device {alarm.device} unreachable "
                f"(alarm {alarm.comm_suppressor} active)"
            )
        if alarm.design_suppressed and alarm.suppress_when is not None:
            reasons.append(f"suppressed by design: {alarm.suppress_when.source.text}")
        return "; ".join(reasons) or "no longer suppressed"

    def _sync_suppression(self, alarm: _Alarm, now: datetime, out: list[ConditionChange]) -> None:
        target = self._suppression_target(alarm)
        if target == alarm.reported_suppressed:
            return
        alarm.reported_suppressed = target
        out.append(
            ConditionChange(
                alarm.definition.name,
                now,
                None,
                target,
                alarm.value,
                self._message(alarm, alarm.output, alarm.value),
                self._suppression_reason(alarm),
            )
        )

    def _message(self, alarm: _Alarm, active: bool, value: Value | None) -> str:
        definition = alarm.definition
        if definition.message:
            return definition.message
        kind = definition.kind
        subject = definition.device if kind is AlarmKind.COMM_LOSS else definition.tag
        if kind is AlarmKind.COMM_LOSS:
            text = f"{subject} communication lost" if active else f"{subject} communication ok"
            return text
        if kind is AlarmKind.EXPRESSION and definition.expression is not None:
            subject = definition.name
        words = kind.value.replace("_", " ")
        shown = "" if value is None else f" {format_value(value)}"
        return f"{subject} {words}{shown}" if active else f"{subject} {words} cleared{shown}"

    # -- timers ------------------------------------------------------------------------------

    def _set_timer(self, alarm: _Alarm, slot: int, due: datetime) -> None:
        key = (alarm.index, slot)
        self._timers[key] = due
        self._sequence += 1
        heapq.heappush(self._heap, (due, self._sequence, key))

    def _cancel_timer(self, alarm: _Alarm, slot: int) -> None:
        self._timers.pop((alarm.index, slot), None)


def _reads_clock(compiled: CompiledExpression) -> bool:
    """Whether an expression's value can change with time alone (no new sample)."""
    return bool(compiled.windows) or bool(_TIME_FUNCTIONS.search(compiled.source.text))
