"""Clocks the scan engine tests move by hand: wall time, and a simulated clock running on it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

SETTLE_ROUNDS = 50
"""Event-loop turns given to the engine after each step of time (it does no I/O with fakes)."""


async def settle() -> None:
    """Let every task that can run without real I/O run."""
    for _ in range(SETTLE_ROUNDS):
        await asyncio.sleep(0)


class ManualWallTime:
    """Monotonic wall time that moves only in ``advance`` (a ``scan.WallTime``)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        """The current manual time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the test has advanced time by ``seconds``."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), woken))
        await woken

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own deadline, in order."""
        target = self._now + seconds
        while True:
            await settle()
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)  # cancelled sleepers
            if not self._sleepers or self._sleepers[0][0] > target:
                break
            deadline, _, woken = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            woken.set_result(None)
        self._now = target
        await settle()


class ManualSimClock:
    """A simulated clock ``speed`` times faster than a ``ManualWallTime`` (a ``ports.Clock``)."""

    def __init__(self, wall: ManualWallTime, speed: float) -> None:
        self._wall = wall
        self._speed = speed
        self._origin = wall.monotonic()
        self._start = datetime(2030, 1, 1, tzinfo=UTC)

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second."""
        return self._speed

    def monotonic(self) -> float:
        """Simulated seconds since the clock was made."""
        return (self._wall.monotonic() - self._origin) * self._speed

    def now(self) -> datetime:
        """Current simulated time."""
        return self._start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of simulated time."""
        await self._wall.sleep(max(0.0, seconds) / self._speed)
