"""Rolling windows of recent values per tag, for ``avg``/``min_over``/``max_over`` in rules.

A tag's value holds from its sample's time until the next sample (sample-and-hold, the
"stepped" interpretation of OPC UA Part 13 aggregates), so the average is time-weighted: a
value that held for ten minutes weighs ten times one that held for one. Each tag keeps only
what its longest window needs, plus the one sample in force at the window's start.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Final

MAX_SAMPLES_PER_TAG: Final = 200_000
"""Memory bound per tag (a day of one sample every 0.5 s); beyond it the oldest are dropped
and a window reaching further back is computed over the part still kept."""

STATISTICS: Final = frozenset({"avg", "min", "max"})


class NoWindowDataError(LookupError):
    """The tag has no sample at or before the end of the window yet."""


class TagWindows:
    """Recent samples of the tags that windows need; time-weighted avg, min and max.

    Not thread-safe: fed and read by one task (the rules engine's).
    """

    def __init__(self, needs: Mapping[str, float]) -> None:
        for tag, seconds in needs.items():
            if not math.isfinite(seconds) or seconds <= 0:
                raise ValueError(f"window of {tag} must be a positive number of seconds")
        self._needs = dict(needs)
        self._samples: dict[str, deque[tuple[float, float]]] = {
            tag: deque(maxlen=MAX_SAMPLES_PER_TAG) for tag in needs
        }

    @property
    def needs(self) -> Mapping[str, float]:
        """Tag -> the longest window kept for it, in seconds."""
        return self._needs

    def add(self, tag: str, time: datetime, value: float) -> None:
        """Record that ``tag`` took ``value`` at ``time``; tags no window needs are ignored.

        A sample older than the newest one kept is ignored (the window stays ordered), as is a
        value that is not a finite number (a Bad sample carries no usable value).
        """
        samples = self._samples.get(tag)
        if samples is None or not math.isfinite(value):
            return
        stamp = _seconds(time)
        if samples and stamp < samples[-1][0]:
            return
        if samples and stamp == samples[-1][0]:
            samples.pop()  # a correction at the same instant replaces the earlier value
        samples.append((stamp, float(value)))
        # Keep one sample at or before the start of the longest window: it holds into it.
        horizon = stamp - self._needs[tag]
        while len(samples) > 1 and samples[1][0] <= horizon:
            samples.popleft()

    def statistic(self, tag: str, now: datetime, seconds: float, statistic: str) -> float:
        """``statistic`` ("avg", "min" or "max") of ``tag`` over ``[now - seconds, now]``.

        Raises KeyError for a tag no window was asked for, ValueError for a window longer than
        the one kept or an unknown statistic, NoWindowDataError while no sample covers it.
        """
        samples = self._samples.get(tag)
        if samples is None:
            raise KeyError(f"no window is kept for {tag}")
        if statistic not in STATISTICS:
            raise ValueError(f"unknown window statistic {statistic!r}")
        if not 0 < seconds <= self._needs[tag]:
            raise ValueError(f"{tag} keeps {self._needs[tag]:g} s, not {seconds:g} s")
        end = _seconds(now)
        start = end - seconds
        # Samples in force during the window: the last at or before its start, and the later
        # ones up to its end.
        in_force: list[tuple[float, float]] = []
        for stamp, value in reversed(samples):
            if stamp > end:
                continue
            in_force.append((stamp, value))
            if stamp <= start:
                break
        if not in_force:
            raise NoWindowDataError(f"{tag} has no sample before {now.isoformat()}")
        in_force.reverse()
        if statistic == "min":
            return min(value for _, value in in_force)
        if statistic == "max":
            return max(value for _, value in in_force)
        return _time_weighted_average(in_force, start, end)


def _time_weighted_average(in_force: list[tuple[float, float]], start: float, end: float) -> float:
    """The average of a held (stepped) signal over [start, end], or over the covered part of
    it when the first sample came after ``start``."""
    covered_from = max(start, in_force[0][0])
    if end <= covered_from:
        return in_force[-1][1]
    total = 0.0
    for index, (stamp, value) in enumerate(in_force):
        begin = max(stamp, start)
        finish = in_force[index + 1][0] if index + 1 < len(in_force) else end
        total += value * (finish - begin)
    return total / (end - covered_from)


def _seconds(time: datetime) -> float:
    if time.tzinfo is None:
        raise ValueError(f"naive time {time.isoformat()}: windows need timezone-aware times")
    return time.timestamp()
