"""A ``ports.Clock`` that moves only when a test says so; sleepers wake when their time comes."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta


class ControlledClock:
    """Time stands still until ``advance``; ``sleep`` waits for the test to move it."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._now = start
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    @property
    def speed(self) -> float:
        """Real time."""
        return 1.0

    def now(self) -> datetime:
        """The controlled time."""
        return self._now

    def monotonic(self) -> float:
        """Seconds since the start."""
        return (self._now - self._start).total_seconds()

    async def sleep(self, seconds: float) -> None:
        """Wait until the test has advanced the clock by ``seconds``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._now + timedelta(seconds=seconds), future)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    @property
    def sleepers(self) -> int:
        """How many tasks sleep on this clock now."""
        return len(self._sleepers)

    def advance(self, seconds: float) -> None:
        """Move the time on and wake every sleeper whose time has come."""
        self._now += timedelta(seconds=seconds)
        for due, future in list(self._sleepers):
            if due <= self._now and not future.done():
                future.set_result(None)
