"""The wall clock, for a center running on real time."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from controlcenter.model import utc_now


class WallClock:
    """Real time: ``speed`` 1, ``now`` is UTC wall time (satisfies ``ports.Clock``)."""

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second: always 1."""
        return 1.0

    def now(self) -> datetime:
        """Current UTC wall time."""
        return utc_now()

    def monotonic(self) -> float:
        """The process's monotonic clock in seconds."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of wall time."""
        await asyncio.sleep(max(0.0, seconds))
