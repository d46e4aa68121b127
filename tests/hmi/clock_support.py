"""A clock the tests move by hand, for session lifetimes and login lockouts."""

from __future__ import annotations


class ManualClock:
    """Seconds (wall or monotonic) that move only when a test advances them."""

    def __init__(self, start: float = 1_900_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds
