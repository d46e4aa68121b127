"""A clock whose time runs ``speed`` times faster than the wall clock.

One instance is shared by the simulated city and the control center so that every timestamp on
both sides of the protocol is simulated time. It satisfies the center's ``Clock`` port
structurally; the simulator imports nothing of the center.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class SimClock:
    """Simulated time: ``start + wall elapsed * speed``, timezone-aware UTC."""

    def __init__(
        self, speed: float = 1.0, start: datetime | None = None, wall_origin: float | None = None
    ) -> None:
        """``wall_origin`` is the ``time.monotonic()`` reading at which simulated time was
        ``start`` (default: now). CLOCK_MONOTONIC is one clock for every process of a machine,
        so a child process given the parent's start and origin keeps exactly the same time."""
        if not speed > 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        if start is not None and start.utcoffset() is None:
            raise ValueError("clock start must be timezone-aware")
        self._speed = float(speed)
        self._start = (start or datetime.now(UTC)).astimezone(UTC)
        self._wall_origin = time.monotonic() if wall_origin is None else wall_origin

    @property
    def speed(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self._speed

    @property
    def start(self) -> datetime:
        """Simulated time at which this clock was created."""
        return self._start

    @property
    def wall_origin(self) -> float:
        """The ``time.monotonic()`` reading at which simulated time was ``start``."""
        return self._wall_origin

    def monotonic(self) -> float:
        """Simulated seconds elapsed since the clock was created; never goes backwards."""
        return (time.monotonic() - self._wall_origin) * self._speed

    def now(self) -> datetime:
        """Current simulated time, timezone-aware UTC."""
        return self._start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of simulated time (``seconds / speed`` of wall time)."""
        await asyncio.sleep(max(0.0, seconds) / self._speed)
