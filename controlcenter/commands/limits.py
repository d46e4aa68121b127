"""Stage 2 of the command pipeline: is the command well formed and within the tag's limits?

The tag must exist, be writable and have a driver; the command must give a reason. The value
must fit the tag's type and engineering range, must not move a numeric tag by more than its
``max_step`` from the current value (a setpoint ramps in steps an operator can watch), and the
tag must not have been written less than ``min_command_interval_s`` ago (a pump or a breaker is
not cycled faster than its equipment allows).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from controlcenter.model import DataType, Sample, Severity, TagDef, Value

LatestValue = Callable[[str], Sample | None]
"""The latest sample of a tag (its current readback), or None when none is known."""


def tag_problem(name: str, tag: TagDef | None, has_driver: bool) -> str | None:
    """Why tag ``name`` cannot be commanded at all (unknown, read-only, no driver), or None."""
    if tag is None:
        return f"unknown tag '{name}'"
    if not tag.writable:
        return f"tag '{tag.name}' is read-only"
    if not has_driver:
        return f"no driver for device '{tag.device}'"
    return None


def reason_problem(reason: str) -> str | None:
    """Why ``reason`` is not enough to journal a command with (blank), or None."""
    return None if reason.strip() else "a command needs a reason"


def value_problem(tag: TagDef, value: Value) -> str | None:
    """Why ``value`` does not fit the type and engineering range of ``tag``, or None."""
    if tag.data_type is DataType.BOOL:
        return None if isinstance(value, bool) else f"{tag.name} takes true or false"
    if tag.data_type is DataType.STRING:
        return None if isinstance(value, str) else f"{tag.name} takes text"
    if tag.data_type is DataType.DATETIME:
        return f"{tag.name} is a time stamp and cannot be commanded"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{tag.name} takes a number"
    if not math.isfinite(value):
        return f"{value} is not a finite number"
    if tag.data_type is DataType.INT and not float(value).is_integer():
        return f"{tag.name} takes a whole number"
    if tag.low is not None and value < tag.low:
        return f"{value} is below the engineering range ({range_text(tag)})"
    if tag.high is not None and value > tag.high:
        return f"{value} is above the engineering range ({range_text(tag)})"
    return None


def step_problem(tag: TagDef, value: Value, current: Sample | None) -> str | None:
    """Why ``value`` moves ``tag`` further than its ``max_step`` from ``current``, or None.

    Without a usable current value (none read yet, or Bad quality) the step cannot be checked,
    and the command is refused rather than let a possibly large jump through.
    """
    if tag.max_step is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if current is None or current.numeric is None:
        return f"max step {tag.max_step:g} cannot be checked: no current value of {tag.name}"
    if current.quality.severity is Severity.BAD:
        return (
            f"max step {tag.max_step:g} cannot be checked: the current value of {tag.name} "
            f"is {current.quality.label()}"
        )
    step = abs(float(value) - current.numeric)
    if step > tag.max_step:
        return (
            f"a step of {step:g} from the current {current.numeric:g} exceeds the max step "
            f"{tag.max_step:g} {tag.unit}".rstrip()
        )
    return None


class IntervalGuard:
    """Remembers when each tag was last written, on a monotonic clock, and enforces the tag's
    minimum interval between two commands."""

    def __init__(self) -> None:
        self._last_write: dict[str, float] = {}

    def problem(self, tag: TagDef, now: float) -> str | None:
        """Why ``tag`` may not be written at monotonic time ``now``, or None."""
        last = self._last_write.get(tag.name)
        if last is None or tag.min_command_interval_s <= 0:
            return None
        elapsed = now - last
        if elapsed < tag.min_command_interval_s:
            return (
                f"{tag.name} was commanded {elapsed:.1f} s ago; its minimum interval between "
                f"commands is {tag.min_command_interval_s:g} s"
            )
        return None

    def note_write(self, tag: str, now: float) -> None:
        """Record that ``tag`` was written at monotonic time ``now``."""
        self._last_write[tag] = now


def range_text(tag: TagDef) -> str:
    """The engineering range of ``tag`` as text, e.g. ``0..100 %``."""
    low = "" if tag.low is None else f"{tag.low:g}"
    high = "" if tag.high is None else f"{tag.high:g}"
    return f"{low}..{high} {tag.unit}".strip()
