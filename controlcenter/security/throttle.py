"""Login throttling: a lockout per user name and per client address that doubles each time.

After ``max_failures_per_user`` refused logins for one user name, or ``max_failures_per_address``
from one address, every login for that name or from that address is refused without checking
the password for ``first_lockout_s``; each further lockout of the same name or address lasts
twice as long as the one before, up to ``max_lockout_s`` (OWASP Authentication Cheat Sheet:
account lockout with exponential back-off). A name or address with no refused login for
``forget_after_s`` starts afresh. Unknown user names are counted like known ones, so a lockout
says nothing about which names exist. Memory is bounded: at most ``max_tracked`` names and
addresses are remembered, the stalest forgotten first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class ThrottleSubject(StrEnum):
    """What a lockout applies to."""

    USER = "user"
    ADDRESS = "address"


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How many refused logins lead to a lockout, and how long lockouts last."""

    max_failures_per_user: int = 5
    max_failures_per_address: int = 20
    """Higher than per user: a control room's consoles may share one address."""
    first_lockout_s: float = 30.0
    max_lockout_s: float = 3600.0
    forget_after_s: float = 6 * 3600.0
    max_tracked: int = 10_000

    def __post_init__(self) -> None:
        if min(self.max_failures_per_user, self.max_failures_per_address, self.max_tracked) < 1:
            raise ValueError("failure limits and max_tracked must be at least 1")
        if not 0 < self.first_lockout_s <= self.max_lockout_s:
            raise ValueError("need 0 < first_lockout_s <= max_lockout_s")
        if self.forget_after_s <= 0:
            raise ValueError("forget_after_s must be positive")


@dataclass(frozen=True, slots=True)
class Lockout:
    """A user name or address refused logins until ``retry_after_s`` seconds from now."""

    subject: ThrottleSubject
    key: str
    retry_after_s: float
    failures: int
    """Refused logins that led to this lockout."""


@dataclass(slots=True)
class _Record:
    failures: int = 0
    level: int = 0
    locked_until: float = 0.0
    last_failure: float = 0.0


class LoginThrottle:
    """Counts refused logins per user name and per address; safe to use from any thread."""

    def __init__(
        self, policy: ThrottlePolicy | None = None, *, monotonic: Callable[[], float] | None = None
    ) -> None:
        self._policy = policy if policy is not None else ThrottlePolicy()
        self._monotonic = monotonic if monotonic is not None else time.monotonic
        self._lock = threading.Lock()
        self._records: dict[tuple[ThrottleSubject, str], _Record] = {}

    @property
    def policy(self) -> ThrottlePolicy:
        """The policy in force."""
        return self._policy

    def lockout(self, user: str, address: str) -> Lockout | None:
        """The longest lockout now in force for ``user`` or ``address``, or None."""
        now = self._monotonic()
        with self._lock:
            found = [
                Lockout(subject, key, record.locked_until - now, record.failures)
                for subject, key in _keys(user, address)
                if (record := self._records.get((subject, key))) is not None
                and record.locked_until > now
            ]
        return max(found, key=lambda lockout: lockout.retry_after_s, default=None)

    def record_failure(self, user: str, address: str) -> list[Lockout]:
        """Count a refused login; return the lockouts it starts (none, or per user/address)."""
        now = self._monotonic()
        started: list[Lockout] = []
        with self._lock:
            for subject, key in _keys(user, address):
                record = self._record(subject, key, now)
                record.failures += 1
                record.last_failure = now
                if record.failures >= self._limit(subject):
                    duration = min(
                        self._policy.first_lockout_s * 2.0**record.level,
                        self._policy.max_lockout_s,
                    )
                    record.level += 1
                    record.locked_until = now + duration
                    started.append(Lockout(subject, key, duration, record.failures))
                    record.failures = 0
            self._bound(now)
        return started

    def record_success(self, user: str) -> None:
        """Forget the refused logins of ``user`` (not of the address: others may share it)."""
        with self._lock:
            self._records.pop((ThrottleSubject.USER, user), None)

    def _record(self, subject: ThrottleSubject, key: str, now: float) -> _Record:
        record = self._records.get((subject, key))
        if record is None or (
            record.locked_until <= now and now - record.last_failure >= self._policy.forget_after_s
        ):
            record = _Record()
            self._records[(subject, key)] = record
        return record

    def _limit(self, subject: ThrottleSubject) -> int:
        if subject is ThrottleSubject.USER:
            return self._policy.max_failures_per_user
        return self._policy.max_failures_per_address

    def _bound(self, now: float) -> None:
        if len(self._records) <= self._policy.max_tracked:
            return
        # Forget what no longer matters first, then the stalest records that are not locked.
        for entry, record in list(self._records.items()):
            if record.locked_until <= now and now - record.last_failure >= (
                self._policy.forget_after_s
            ):
                del self._records[entry]
        excess = len(self._records) - self._policy.max_tracked
        if excess > 0:
            stalest = sorted(
                self._records.items(), key=lambda item: (item[1].locked_until, item[1].last_failure)
            )
            for entry, _ in stalest[:excess]:
                del self._records[entry]


def _keys(user: str, address: str) -> tuple[tuple[ThrottleSubject, str], ...]:
    return ((ThrottleSubject.USER, user), (ThrottleSubject.ADDRESS, address))
