"""The rules engine: evaluates rules on new samples and sends their commands to the command sink."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from controlcenter.model import (
    Command,
    CommandOrigin,
    CommandPriority,
    Sample,
)
from controlcenter.ports import Clock, CommandSink
from rules.hysteresis import HysteresisRule

log = logging.getLogger(__name__)


class RulesEngine:
    """Consumes samples from the bus and keeps each rule's output where the rule wants it.

    A rule acts only on Good input: on Bad or Uncertain input it holds its output and says so once
    in the log. A rule commands only when the output's read-back state differs from what it wants,
    never while its previous command is still in flight, and not more often than its minimum
    command interval, so a device that ignores commands is not flooded.
    """

    def __init__(
        self, rules: Sequence[HysteresisRule], commands: CommandSink, clock: Clock
    ) -> None:
        self._rules = tuple(rule for rule in rules if rule.enabled)
        self._commands = commands
        self._clock = clock
        self._queue: asyncio.Queue[Sequence[Sample]] = asyncio.Queue()
        self._latest: dict[str, Sample] = {}
        self._watched = {rule.input_tag for rule in self._rules} | {
            rule.output_tag for rule in self._rules
        }
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._last_command_at: dict[str, float] = {}
        self._holding: set[str] = set()

    def on_samples(self, samples: Sequence[Sample]) -> None:
        """Take a batch from the bus (a ``SampleListener``); never blocks."""
        if self._rules:
            self._queue.put_nowait(samples)

    async def run(self) -> None:
        """Evaluate rules on every batch until cancelled."""
        try:
            while True:
                batch = await self._queue.get()
                try:
                    self._evaluate_batch(batch)
                finally:
                    self._queue.task_done()
        finally:
            for task in self._in_flight.values():
                task.cancel()

    async def drained(self) -> None:
        """Wait until every batch received so far has been evaluated."""
        await self._queue.join()

    def _evaluate_batch(self, batch: Sequence[Sample]) -> None:
        touched = {sample.tag for sample in batch if sample.tag in self._watched}
        for sample in batch:
            if sample.tag in touched:
                self._latest[sample.tag] = sample
        for rule in self._rules:
            if rule.input_tag in touched or rule.output_tag in touched:
                self._evaluate(rule)

    def _evaluate(self, rule: HysteresisRule) -> None:
        measured = self._latest.get(rule.input_tag)
        if measured is None:
            return
        value = measured.numeric
        if not measured.quality.is_good or value is None:
            if rule.name not in self._holding:
                self._holding.add(rule.name)
                log.warning(
                    "rule %s holds its output: %s is %s (%s)",
                    rule.name,
                    rule.input_tag,
                    measured.quality.label(),
                    measured.quality.reason,
                )
            return
        if rule.name in self._holding:
            self._holding.discard(rule.name)
            log.info("rule %s resumes: %s is good again", rule.name, rule.input_tag)
        desired = rule.desired_output(value)
        if desired is None or rule.name in self._in_flight:
            return
        output = self._latest.get(rule.output_tag)
        if output is not None and output.quality.is_good and output.value == desired:
            return
        last = self._last_command_at.get(rule.name)
        now = self._clock.monotonic()
        if last is not None and now - last < rule.min_command_interval_s:
            return
        self._last_command_at[rule.name] = now
        command = Command(
            tag=rule.output_tag,
            value=desired,
            origin=CommandOrigin.RULE,
            requested_by=rule.name,
            reason=rule.reason(value, desired),
            issued_at=self._clock.now(),
            priority=CommandPriority.AUTOMATION,
        )
        task = asyncio.get_running_loop().create_task(
            self._send(rule, command), name=f"rule {rule.name}"
        )
        self._in_flight[rule.name] = task

    async def _send(self, rule: HysteresisRule, command: Command) -> None:
        try:
            result = await self._commands.submit(command)
            if not result.confirmed:
                log.warning(
                    "rule %s: command %s := %r %s: %s",
                    rule.name,
                    command.tag,
                    command.value,
                    result.status.value,
                    result.reason,
                )
        finally:
            self._in_flight.pop(rule.name, None)
