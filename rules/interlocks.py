"""Interlocks: conditions on the latest values that block commands to some tags.

An interlock is a permissive in the IEC 61511 / ISA-84 sense, kept in the control center: while
its ``block_when`` expression holds, commands to its tags (optionally only those that start or
open, ``applies_to: "true"``) are rejected by the command pipeline with the interlock's name and
message. It fails safe: when an input it reads is not Good, or the expression cannot be
evaluated, it blocks, and its reason says so.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass

from controlcenter.automation import InterlockDef
from controlcenter.model import Value
from controlcenter.ports import LiveView
from rules.expressions import (
    CompiledExpression,
    EvaluationContext,
    ExpressionCompiler,
    ExpressionError,
    ExpressionEvaluationError,
    ValueKind,
)

_APPLIES_TO = ("any", "true", "false")
_TRUE_WORDS = frozenset({"true", "1", "on", "yes"})
_FALSE_WORDS = frozenset({"false", "0", "off", "no", ""})


@dataclass(frozen=True, slots=True)
class _Interlock:
    definition: InterlockDef
    condition: CompiledExpression
    reads: tuple[str, ...]
    """Tags whose quality decides whether the interlock can be trusted."""

    def reason(self) -> str:
        message = self.definition.message or f"blocked while {self.definition.block_when.text}"
        return f"{self.definition.name}: {message}"


class InterlockSet:
    """The site's interlocks, compiled; implements ``controlcenter.ports.InterlockChecker``.

    Evaluated on the caller's thread against ``latest``; one caller at a time (the command
    pipeline's task).
    """

    def __init__(
        self,
        interlocks: Sequence[InterlockDef],
        compiler: ExpressionCompiler,
        latest: LiveView,
        context: EvaluationContext,
    ) -> None:
        compiled: list[_Interlock] = []
        names: set[str] = set()
        for definition in interlocks:
            if definition.name in names:
                raise ExpressionError(
                    definition.spot, f"interlock {definition.name} is defined twice"
                )
            names.add(definition.name)
            if definition.applies_to not in _APPLIES_TO:
                raise ExpressionError(
                    definition.spot,
                    f"interlock {definition.name}: applies_to must be any, true or false, "
                    f"not {definition.applies_to!r}",
                )
            for pattern in definition.tags:
                if not any(fnmatch.fnmatchcase(tag, pattern) for tag in compiler.tags):
                    raise ExpressionError(
                        definition.spot,
                        f"interlock {definition.name}: tags pattern {pattern!r} matches no tag",
                    )
            condition = compiler.compile(definition.block_when, expect=ValueKind.BOOL)
            reads = tuple(sorted(condition.inputs | condition.windows.keys()))
            compiled.append(_Interlock(definition, condition, reads))
        self._interlocks = tuple(compiled)
        self._latest = latest
        self._context = context
        self._by_tag: dict[str, tuple[_Interlock, ...]] = {}

    def __len__(self) -> int:
        return len(self._interlocks)

    def covering(self, tag: str) -> tuple[str, ...]:
        """Names of the interlocks that guard commands to ``tag``."""
        return tuple(interlock.definition.name for interlock in self._guarding(tag))

    def blocking(self, tag: str, value: Value) -> str | None:
        """``"<name>: <message>"`` of the first interlock blocking ``tag := value``, or None."""
        for interlock in self._guarding(tag):
            if not _applies(interlock.definition.applies_to, value):
                continue
            reason = self._check(interlock)
            if reason is not None:
                return reason
        return None

    def _guarding(self, tag: str) -> tuple[_Interlock, ...]:
        found = self._by_tag.get(tag)
        if found is None:
            found = tuple(
                interlock
                for interlock in self._interlocks
                if any(fnmatch.fnmatchcase(tag, pattern) for pattern in interlock.definition.tags)
            )
            self._by_tag[tag] = found
        return found

    def _check(self, interlock: _Interlock) -> str | None:
        values: dict[str, Value | None] = {}
        for read in interlock.reads:
            try:
                sample = self._latest.latest(read)
            except KeyError:
                return f"{interlock.reason()} (fail-safe: input {read} is unknown)"
            if not sample.quality.is_good:
                detail = sample.quality.label()
                if sample.quality.reason:
                    detail += f", {sample.quality.reason}"
                return f"{interlock.reason()} (fail-safe: input {read} is {detail})"
            values[read] = sample.value
        try:
            holds = interlock.condition.evaluate(values, self._context)
        except ExpressionEvaluationError as err:
            return f"{interlock.reason()} (fail-safe: cannot evaluate: {err})"
        return interlock.reason() if holds is True else None


def _applies(applies_to: str, value: Value) -> bool:
    """Whether an interlock limited to ``applies_to`` covers a command of ``value``.

    A value whose truth cannot be told is covered (fail safe)."""
    if applies_to == "any":
        return True
    truth = _truth(value)
    if truth is None:
        return True
    return truth is (applies_to == "true")


def _truth(value: Value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return None
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return None  # a time value has no truth
