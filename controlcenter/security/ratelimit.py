"""Request rate limits: a token bucket per caller (an API token, or an address).

Each caller may send ``burst`` requests at once and ``rate_per_s`` a second on average; beyond
that a request is refused with the time after which it would be accepted (HTTP 429 with
Retry-After, RFC 6585 4). Buckets of callers not seen for a while are dropped, so a flood of
forged addresses cannot grow the table without bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_CALLERS = 100_000
"""Buckets kept at most; the least recently seen go first beyond it."""


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """How fast one caller may go."""

    rate_per_s: float = 50.0
    burst: int = 200

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and self.burst >= 1):
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")


class RateLimiter:
    """Token buckets per caller key; thread-safe."""

    def __init__(
        self, policy: RatePolicy | None = None, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._policy = policy if policy is not None else RatePolicy()
        self._monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @property
    def policy(self) -> RatePolicy:
        """The limits in force."""
        return self._policy

    def take(self, key: str) -> float:
        """Take one request for ``key``: 0.0 when allowed, else the seconds to wait."""
        now = self._monotonic()
        rate, burst = self._policy.rate_per_s, float(self._policy.burst)
        with self._lock:
            tokens, seen = self._buckets.pop(key, (burst, now))
            tokens = min(burst, tokens + (now - seen) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / rate
            if len(self._buckets) > MAX_CALLERS:
                # dicts keep insertion order and every take re-inserts: the first is the stalest.
                del self._buckets[next(iter(self._buckets))]
        return wait
