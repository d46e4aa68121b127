"""What an alarm condition is, and the pure judgements behind each kind of alarm.

The engine (``alarms.engine``) feeds samples through these judgements and reports each change
of an alarm's condition as a :class:`ConditionChange`, which the alarm service turns into state
transitions (ISA-18.2 / IEC 62682). Nothing here keeps time or state of its own except the
:class:`RateTracker`, which remembers the last minute of one tag.

Conventions shared by every kind:

* a limit is exceeded strictly (``value > limit`` for high alarms, ``value < limit`` for low
  ones); once exceeded, the condition clears only when the value is back inside the limit by
  the deadband (ISA-18.2 5.3.4: deadband prevents chattering around the limit);
* a value that is not a finite number (NaN, infinity, a string on a numeric tag) cannot say
  anything: the caller holds the alarm's condition, as it does on Bad quality.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from controlcenter.automation import AlarmDef, AlarmKind, SourceSpot
from controlcenter.model import DataType, Substatus, TagDef, Value

COMMUNICATION_SUBSTATUSES: Final = frozenset(
    {
        Substatus.COMM_FAILURE,
        Substatus.NOT_CONNECTED,
        Substatus.TIMEOUT,
        Substatus.DEVICE_FAILURE,
    }
)
"""Bad sub-statuses that mean the device could not be reached (OPC UA Part 4, 7.39:
BadCommunicationError, BadNotConnected, BadTimeout, BadDeviceFailure)."""

LIMIT_KINDS: Final = frozenset(
    {AlarmKind.HIGH, AlarmKind.HIGH_HIGH, AlarmKind.LOW, AlarmKind.LOW_LOW}
)
HIGH_KINDS: Final = frozenset({AlarmKind.HIGH, AlarmKind.HIGH_HIGH})
NUMERIC_TYPES: Final = frozenset({DataType.FLOAT, DataType.INT})
SWITCH_TYPES: Final = frozenset({DataType.BOOL, DataType.INT, DataType.FLOAT})
RATE_SPAN_S: Final = 60.0
"""A rate of change is the change over the last minute of source time (per minute)."""
RATE_MAX_SAMPLES: Final = 10_000
"""Memory bound of one rate alarm's minute of samples."""


@dataclass(frozen=True, slots=True)
class ConditionChange:
    """A change of one alarm's condition or of its suppression, at ``time``.

    ``active`` is None when only the suppression changed; ``suppressed`` is None when it did
    not change. ``value`` is the measured value that caused the change (None for expression
    and communication alarms), ``message`` what the operator reads, ``reason`` why the engine
    decided it (limits, delays, the suppressing alarm).
    """

    alarm: str
    time: datetime
    active: bool | None
    suppressed: bool | None
    value: Value | None
    message: str
    reason: str


@dataclass(frozen=True, slots=True)
class AlarmProblem:
    """One reason an alarm definition cannot be evaluated, and where it was written."""

    alarm: str
    spot: SourceSpot
    reason: str

    def __str__(self) -> str:
        return f"{self.spot}: alarm {self.alarm}: {self.reason}"


class AlarmDefinitionError(ValueError):
    """Alarm definitions that cannot be evaluated; ``problems`` lists every one of them."""

    def __init__(self, problems: Sequence[AlarmProblem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(str(problem) for problem in self.problems)
        super().__init__(f"{count} alarm definition problem{'s' if count != 1 else ''}:\n{lines}")


# --- values ---------------------------------------------------------------------------------


def finite_number(value: Value | None) -> float | None:
    """``value`` as a float when it is a finite int or float (bools are not numbers here)."""
    if type(value) is float or type(value) is int:
        number = float(value)
        if number - number == 0.0:  # false for NaN and both infinities
            return number
    return None


def switch_state(value: Value | None) -> bool | None:
    """``value`` as on/off: a bool, or a finite number (non-zero: on); None otherwise."""
    if type(value) is bool:
        return value
    number = finite_number(value)
    return None if number is None else number != 0.0


def format_value(value: Value | None) -> str:
    """A value as an operator reads it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --- judgements per kind ----------------------------------------------------------------------


def limit_condition(
    kind: AlarmKind, limit: float, deadband: float, value: float, was_active: bool
) -> bool:
    """Whether a limit alarm's condition holds for ``value``, with the deadband on clearing."""
    if kind in HIGH_KINDS:
        return value > limit - deadband if was_active else value > limit
    return value < limit + deadband if was_active else value < limit


def magnitude_condition(limit: float, deadband: float, magnitude: float, was_active: bool) -> bool:
    """Whether ``magnitude`` (a deviation, a rate) exceeds ``limit``, clearing below the
    deadband."""
    return magnitude > limit - deadband if was_active else magnitude > limit


def discrete_condition(state: bool | float | str, value: Value) -> bool | None:
    """Whether ``value`` is the abnormal ``state``; None when it is of another kind."""
    if isinstance(state, bool):
        return value is state if type(value) is bool else None
    if isinstance(state, str):
        return value == state if isinstance(value, str) else None
    number = finite_number(value)
    return None if number is None else number == float(state)


def mismatch_condition(command: bool, feedback: bool) -> str | None:
    """What a command/feedback pair says: "failed to start", "failed to stop" or None."""
    if command == feedback:
        return None
    return "failed to start" if command else "failed to stop"


class RateTracker:
    """The last minute (source time) of one tag, for its change per minute.

    The rate is the change since the value in force one minute before the newest sample,
    divided by the time between them; before a minute has been seen, over what has been seen.
    """

    __slots__ = ("_samples",)

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=RATE_MAX_SAMPLES)

    def add(self, time: datetime, value: float) -> float | None:
        """Record ``value`` at ``time``; the change per minute, or None with too little data.

        A sample not newer than the newest one is ignored (None)."""
        stamp = time.timestamp()
        samples = self._samples
        if samples and stamp <= samples[-1][0]:
            return None
        samples.append((stamp, value))
        horizon = stamp - RATE_SPAN_S
        while len(samples) > 2 and samples[1][0] <= horizon:
            samples.popleft()
        if len(samples) < 2:
            return None
        first_time, first_value = samples[0]
        return (value - first_value) * 60.0 / (stamp - first_time)

    def clear(self) -> None:
        """Forget the history (after Bad data: the minute is broken)."""
        self._samples.clear()


# --- static checks ------------------------------------------------------------------------------


def check_definition(definition: AlarmDef, tags: Mapping[str, TagDef]) -> list[AlarmProblem]:
    """Every problem of ``definition`` that needs no expression compiler (tags, numbers)."""
    problems: list[str] = []
    kind = definition.kind

    def need_tag(name: str, role: str, types: frozenset[DataType] | None) -> None:
        if not name:
            problems.append(f"a {kind.value} alarm needs a {role}")
            return
        tag = tags.get(name)
        if tag is None:
            problems.append(f"unknown {role} {name}")
        elif types is not None and tag.data_type not in types:
            wanted = " or ".join(sorted(t.value for t in types))
            problems.append(f"{role} {name} is {tag.data_type.value}, not {wanted}")

    def need_limit() -> None:
        limit = definition.limit
        if limit is None:
            problems.append(f"a {kind.value} alarm needs a limit")
        elif not math.isfinite(limit):
            problems.append(f"limit {limit} is not a finite number")

    for label, seconds in (
        ("deadband", definition.deadband),
        ("on_delay_s", definition.on_delay_s),
        ("off_delay_s", definition.off_delay_s),
        ("delay_s", definition.delay_s),
    ):
        if not math.isfinite(seconds) or seconds < 0:
            problems.append(f"{label} must be a finite number of at least 0, not {seconds}")

    if kind in LIMIT_KINDS:
        need_tag(definition.tag, "tag", NUMERIC_TYPES)
        need_limit()
    elif kind is AlarmKind.DEVIATION:
        need_tag(definition.tag, "tag", NUMERIC_TYPES)
        need_tag(definition.setpoint_tag, "setpoint_tag", NUMERIC_TYPES)
        need_limit()
        if definition.limit is not None and definition.limit < 0:
            problems.append("a deviation limit is a largest |difference|: it cannot be negative")
    elif kind is AlarmKind.RATE:
        need_tag(definition.tag, "tag", NUMERIC_TYPES)
        need_limit()
        if definition.limit is not None and definition.limit < 0:
            problems.append("a rate limit is a largest |change| per minute: not negative")
    elif kind is AlarmKind.DISCRETE:
        need_tag(definition.tag, "tag", None)
        problems.extend(_discrete_problems(definition, tags))
    elif kind is AlarmKind.COMMAND_MISMATCH:
        need_tag(definition.tag, "tag", SWITCH_TYPES)
        need_tag(definition.command_tag, "command_tag", SWITCH_TYPES)
    elif kind is AlarmKind.FROZEN:
        need_tag(definition.tag, "tag", None)
        if definition.delay_s <= 0:
            problems.append("a frozen alarm needs delay_s: how long without change is abnormal")
    elif kind is AlarmKind.EXPRESSION:
        if definition.expression is None:
            problems.append("an expression alarm needs an expression")
    elif kind is AlarmKind.COMM_LOSS:
        if not definition.device:
            problems.append("a comm_loss alarm needs a device")
        elif not any(tag.device == definition.device for tag in tags.values()):
            problems.append(f"device {definition.device} has no tags to watch")
    return [AlarmProblem(definition.name, definition.spot, reason) for reason in problems]


def _discrete_problems(definition: AlarmDef, tags: Mapping[str, TagDef]) -> list[str]:
    state = definition.state
    if state is None:
        return ["a discrete alarm needs the abnormal state"]
    tag = tags.get(definition.tag)
    if tag is None:
        return []
    data_type = tag.data_type
    if isinstance(state, bool):
        fits = data_type is DataType.BOOL
    elif isinstance(state, str):
        fits = data_type is DataType.STRING
    else:
        fits = data_type in NUMERIC_TYPES and math.isfinite(state)
    if fits:
        return []
    return [f"state {state!r} can never be a value of {tag.name} ({data_type.value})"]
