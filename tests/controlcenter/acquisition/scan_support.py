"""What the scan engine tests share: a publisher that keeps what the engine publishes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from controlcenter.model import Sample


class Collector:
    """A publisher that keeps every sample and wakes waiters on each batch."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self._changed = asyncio.Event()

    def publish(self, samples: Sequence[Sample]) -> None:
        self.samples.extend(samples)
        self._changed.set()

    async def wait_for(
        self, condition: Callable[[list[Sample]], bool], deadline_s: float = 10
    ) -> None:
        async def wait() -> None:
            while not condition(self.samples):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), deadline_s)
