"""The alarm monitor: the bus's samples through the condition sources into the alarm service.

The condition sources (the alarm engine, the night-flow leak detector) are synchronous and
never do I/O; the monitor runs them on the center's event loop, batch by batch, wakes them when
their timers fall due (on- and off-delays, start delays, frozen values, the nights of the leak
detector), and hands their condition changes to the alarm service, whose database work runs in
a worker thread. It also lets timed shelves expire on time and retries journal writes that a
database outage held back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from alarms.conditions import ConditionChange
from alarms.service import AlarmService
from controlcenter.model import Sample
from controlcenter.ports import Clock

log = logging.getLogger(__name__)

UPKEEP_S = 1.0
"""Clock seconds between two looks at shelves and held-back journal writes."""


class ConditionSource(Protocol):
    """Something that turns samples and time into alarm condition changes."""

    def feed(self, samples: Sequence[Sample], now: datetime) -> list[ConditionChange]:
        """Take a batch of samples received at ``now``."""
        ...

    def advance(self, now: datetime) -> list[ConditionChange]:
        """Fire what has fallen due by ``now``."""
        ...

    def next_due(self) -> datetime | None:
        """When the source next needs ``advance``, or None."""
        ...


class SourceMemory(Protocol):
    """Keeps what a condition source has learnt across restarts (the leak detector's nights)."""

    def recall(self) -> object:
        """Take back what was kept (blocking I/O; runs in a worker thread before any batch)."""
        ...

    def pending(self, now: datetime) -> Callable[[], None] | None:
        """On the loop: a blocking save job when there is something new to keep, or None."""
        ...


class AlarmMonitor:
    """Feeds the condition sources from the bus and applies their changes to the service."""

    def __init__(
        self,
        sources: Sequence[ConditionSource],
        service: AlarmService,
        clock: Clock,
        memories: Sequence[SourceMemory] = (),
    ) -> None:
        self._sources = tuple(sources)
        self._memories = tuple(memories)
        self._service = service
        self._clock = clock
        self._queue: asyncio.Queue[Sequence[Sample]] = asyncio.Queue()
        self._getter: asyncio.Future[Sequence[Sample]] | None = None
        self._failing = False

    def on_samples(self, samples: Sequence[Sample]) -> None:
        """Take a batch from the bus (a ``SampleListener``); never blocks."""
        self._queue.put_nowait(samples)

    async def drained(self) -> None:
        """Wait until every batch received so far has been applied."""
        await self._queue.join()

    async def run(self) -> None:
        """Restore the persisted alarms, then monitor until cancelled."""
        await asyncio.to_thread(self._service.restore)
        for memory in self._memories:
            await self._call(memory.recall)
        last_upkeep = self._clock.monotonic()
        try:
            while True:
                batch = await self._next_batch()
                try:
                    await self._step(batch)
                    if self._clock.monotonic() - last_upkeep >= UPKEEP_S:
                        last_upkeep = self._clock.monotonic()
                        await self._upkeep()
                finally:
                    if batch is not None:
                        self._queue.task_done()
        finally:
            if self._getter is not None:
                self._getter.cancel()

    async def _next_batch(self) -> Sequence[Sample] | None:
        """The next batch, or None when a timer (or the upkeep) falls due first."""
        now = self._clock.now()
        dues = [due for due in (s.next_due() for s in self._sources) if due is not None]
        shelf = self._service.next_shelf_expiry()
        if shelf is not None:
            dues.append(shelf)
        wait_s = UPKEEP_S
        if dues:
            wait_s = min(wait_s, max(0.0, (min(dues) - now).total_seconds()))
        # One pending get, kept across timeouts: a batch is never taken off the queue and
        # dropped, and no wait_for (whose 3.11 implementation can swallow a cancellation that
        # coincides with a completed get) stands between the monitor and its shutdown.
        if self._getter is None:
            self._getter = asyncio.ensure_future(self._queue.get())
        await asyncio.wait({self._getter}, timeout=wait_s / self._clock.speed)
        if not self._getter.done():
            return None
        batch = self._getter.result()
        self._getter = None
        return batch

    async def _step(self, batch: Sequence[Sample] | None) -> None:
        now = self._clock.now()
        changes: list[ConditionChange] = []
        for source in self._sources:
            if batch is not None:
                changes += source.feed(batch, now)
            changes += source.advance(now)
        if changes:
            await self._call(self._service.apply_conditions, changes)
        for memory in self._memories:
            # The state is taken here, on the loop; only the write runs in a worker thread.
            save = memory.pending(now)
            if save is not None:
                await self._call(save)
        shelf = self._service.next_shelf_expiry()
        if shelf is not None and shelf <= now:
            await self._call(self._service.expire_shelves)

    async def _upkeep(self) -> None:
        await self._call(self._service.expire_shelves)
        await self._call(self._service.flush)

    async def _call(self, action: Callable[..., object], *args: object) -> None:
        """Run a service call in a worker thread; a failure is logged once, not raised: the
        service keeps what it could not write and retries it."""
        try:
            await asyncio.to_thread(action, *args)
        except Exception as err:  # the service is the last line: log, keep monitoring
            if not self._failing:
                log.warning("alarm service call failed: %s", err)
            self._failing = True
        else:
            if self._failing:
                log.info("alarm service calls succeed again")
            self._failing = False
