"""The live rules engine: runs the rule evaluator on the bus's samples and on the center's clock.

The engine owns the I/O around ``RuleEvaluator`` (the same synchronous core a backtest runs):
it takes batches from the bus, wakes for timers (intervals, crontab, sun events, debounces,
``for:`` expiries) on its ``Clock``, sends the decided commands to the command pipeline
concurrently (a slow device never delays evaluation; one command in flight per rule and tag),
journals rule events, and publishes calculated samples back into the bus so they are historized
and shown like any tag.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from controlcenter.model import Command, Event, EventKind, Sample
from controlcenter.ports import Clock, CommandSink, EventJournal
from rules.backtest import rule_of
from rules.evaluator import Decisions, RuleEvaluator, RuleStatus
from rules.expressions import EvaluationContext
from rules.ruleset import CompiledRuleSet

log = logging.getLogger(__name__)

ENGINE_SOURCE = "rules"
"""The journal source of the engine's own events (rule set replaced)."""


class RulesEngine:
    """Consumes samples from the bus and runs a compiled rule set on them and on time."""

    def __init__(
        self,
        rule_set: CompiledRuleSet,
        commands: CommandSink,
        clock: Clock,
        journal: EventJournal,
        publish: Callable[[Sequence[Sample]], None],
    ) -> None:
        self._commands = commands
        self._clock = clock
        self._journal = journal
        self._publish = publish
        self._evaluator = RuleEvaluator(rule_set, clock.now())
        self._queue: asyncio.Queue[Sequence[Sample]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._sleeping_until: datetime | None = None
        self._sends: dict[str, asyncio.Task[None]] = {}
        self._last_actions: dict[str, tuple[datetime, str]] = {}

    @property
    def rule_set(self) -> CompiledRuleSet:
        """The rule set the engine runs."""
        return self._evaluator.rule_set

    @property
    def context(self) -> EvaluationContext:
        """What expressions outside the rule set (interlocks) read: the center's time, the
        latest qualities, change times and windows the engine keeps."""
        return self._evaluator

    def rule_statuses(self) -> list[RuleStatus]:
        """Each enabled rule's hold and last firing (read-only; any thread)."""
        return self._evaluator.rule_statuses()

    def evaluations(self) -> int:
        """Rule evaluations since start (read-only; any thread)."""
        return self._evaluator.evaluations

    def last_actions(self) -> dict[str, tuple[datetime, str]]:
        """Per rule, when it last decided a command or an event, and which (any thread)."""
        return dict(self._last_actions)

    def on_samples(self, samples: Sequence[Sample]) -> None:
        """Take a batch from the bus (a ``SampleListener``); never blocks."""
        self._queue.put_nowait(samples)

    def replace(self, rule_set: CompiledRuleSet) -> None:
        """Run ``rule_set`` from now on (call on the engine's event loop).

        The swap is atomic between two evaluations: latest values, windows, commands in flight
        and the state of unchanged rules are kept; the swap is journaled.
        """
        old = self._evaluator.rule_set
        now = self._clock.now()
        self._evaluator.replace(rule_set, now)
        self._journal.record(
            Event(
                now,
                EventKind.RULE,
                ENGINE_SOURCE,
                _replacement_summary(old, rule_set),
                rule_set.identity,
            )
        )
        self._wake.set()

    async def run(self) -> None:
        """Evaluate batches and timers until cancelled."""
        timers = asyncio.get_running_loop().create_task(self._run_timers(), name="rule timers")
        try:
            while True:
                batch = await self._queue.get()
                try:
                    self._apply(self._evaluator.feed(batch, self._clock.now()))
                    due = self._evaluator.next_due()
                    if due is not None and (
                        self._sleeping_until is None or due < self._sleeping_until
                    ):
                        self._wake.set()
                except Exception:
                    # A fault in one batch must not stop the city's automation: log it loudly
                    # and go on with the next batch.
                    log.exception("rules engine: evaluating a batch failed")
                finally:
                    self._queue.task_done()
        finally:
            timers.cancel()
            for task in list(self._sends.values()):
                task.cancel()

    async def drained(self) -> None:
        """Wait until every batch received so far has been evaluated."""
        await self._queue.join()

    async def _run_timers(self) -> None:
        while True:
            self._wake.clear()
            due = self._evaluator.next_due()
            self._sleeping_until = due
            if due is None:
                await self._wake.wait()
                continue
            delay = (due - self._clock.now()).total_seconds()
            if delay > 0 and await self._sleep_or_wake(delay):
                continue
            try:
                self._apply(self._evaluator.advance(max(due, self._clock.now())))
            except Exception:
                log.exception("rules engine: firing timers failed")

    async def _sleep_or_wake(self, seconds: float) -> bool:
        """Sleep ``seconds`` of the clock; True if woken early (a new timer or rule set)."""
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        return waker in done

    def _apply(self, decisions: Decisions) -> None:
        if decisions.calculated:
            self._publish(decisions.calculated)
        for event in decisions.events:
            self._journal.record(event)
            if event not in decisions.holds and event not in decisions.resumes:
                self._last_actions[event.source] = (event.time, event.message)
        loop = asyncio.get_running_loop()
        for command in decisions.commands:
            self._last_actions[rule_of(command)] = (
                command.issued_at,
                f"{command.tag} := {command.value!r}",
            )
            task = loop.create_task(self._send(command), name=f"rule command {command.tag}")
            self._sends[command.command_id] = task

    async def _send(self, command: Command) -> None:
        try:
            result = await self._commands.submit(command)
            if not result.confirmed:
                log.warning(
                    "rule command %s := %r %s: %s (%s)",
                    command.tag,
                    command.value,
                    result.status.value,
                    result.reason,
                    command.reason,
                )
        except Exception:
            # The sink promises a result; if it breaks that promise, the command is still over.
            log.exception("rule command %s := %r failed in the sink", command.tag, command.value)
        finally:
            self._sends.pop(command.command_id, None)
            self._evaluator.command_done(command.command_id)


def _replacement_summary(old: CompiledRuleSet, new: CompiledRuleSet) -> str:
    """``rule set replaced: ...`` naming the rules added, removed and changed."""
    before = {rule.name: rule.definition for rule in old.rules}
    after = {rule.name: rule.definition for rule in new.rules}
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = sorted(name for name in after.keys() & before.keys() if before[name] != after[name])
    text = f"rule set replaced: {len(after)} rules, {len(new.calculated)} calculated tags"
    for label, names in (("added", added), ("removed", removed), ("changed", changed)):
        if names:
            shown = ", ".join(names[:10]) + (
                f" and {len(names) - 10} more" if len(names) > 10 else ""
            )
            text += f"; {label}: {shown}"
    return text
