"""The function library of the rule expression language, as the CEL engine calls it.

Each function is a plain Python callable registered in a ``cel.Context``. They read the time,
the site and the live state through a :class:`ContextHolder` that the compiled expression fills
in just before it runs, so a compiled program is built once and its functions never capture a
per-evaluation object. A function never raises into the CEL engine (which would print the
Python traceback on standard error): it records the failure in the holder and returns a
placeholder of the right type; the caller raises the recorded error after the run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import elevation

from controlcenter.automation import SiteLocation
from controlcenter.model import Quality

MAX_WINDOW_S = 86_400.0
"""The longest window ``avg``/``min_over``/``max_over`` may ask for: one day."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


class EvaluationContext(Protocol):
    """What the expression functions read at evaluation time."""

    def now(self) -> datetime:
        """The center's clock, timezone-aware UTC (virtual time in a backtest)."""
        ...

    def quality(self, tag: str) -> Quality:
        """The quality of the latest sample of ``tag``."""
        ...

    def since_change(self, tag: str) -> float:
        """Seconds since the value of ``tag`` last changed."""
        ...

    def window(self, tag: str, seconds: float, statistic: str) -> float:
        """``statistic`` ("avg", "min" or "max") of ``tag`` over the last ``seconds``."""
        ...


class ContextHolder:
    """The evaluation context of the run in progress, and the first failure of a function."""

    __slots__ = ("context", "error")

    def __init__(self) -> None:
        self.context: EvaluationContext | None = None
        self.error: Exception | None = None

    def current(self) -> EvaluationContext:
        """The context set for this run; a function called outside a run is a program error."""
        context = self.context
        if context is None:
            raise RuntimeError("expression function called outside an evaluation")
        return context

    def fail(self, error: Exception) -> None:
        """Remember the first failure of this run."""
        if self.error is None:
            self.error = error


def parse_window(text: str) -> float:
    """Seconds of a window written as ``"15m"``, ``"30s"``, ``"2h"``, ``"1d"`` or ``"90"``.

    Raises ValueError for anything else, for zero and for more than one day.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"window {text!r} is not a duration like '30s', '15m', '2h' or '1d'")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return check_window(seconds)


def check_window(seconds: float) -> float:
    """``seconds`` if it is a usable window length; ValueError otherwise."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("a window must be longer than zero")
    if seconds > MAX_WINDOW_S:
        raise ValueError(
            f"a window may be at most one day ({MAX_WINDOW_S:.0f} s), not {seconds:g} s"
        )
    return seconds


def _quality_word(quality: Quality) -> str:
    # The severity only (OPC UA Part 4 7.39): sub-statuses are for people, not for conditions.
    return quality.severity.name.lower()


def build_functions(
    holder: ContextHolder, site: SiteLocation, names: frozenset[str]
) -> dict[str, Callable[..., object]]:
    """The Python implementations of the library functions in ``names``, bound to ``holder``."""
    zone = ZoneInfo(site.timezone)
    observer = Observer(latitude=site.latitude, longitude=site.longitude)

    def local_now() -> datetime:
        return holder.current().now().astimezone(zone)

    def fn_abs(x: float) -> float:
        return abs(x)

    def fn_min(*values: float) -> float:
        return min(values)

    def fn_max(*values: float) -> float:
        return max(values)

    def fn_clamp(x: float, low: float, high: float) -> float:
        if low > high:
            holder.fail(ValueError(f"clamp() with low {low:g} above high {high:g}"))
            return x
        return low if x < low else high if x > high else x

    def fn_hour() -> float:
        try:
            return float(local_now().hour)
        except Exception as err:  # the context is outside code: any failure fails the run
            holder.fail(err)
            return 0.0

    def fn_minute() -> float:
        try:
            return float(local_now().minute)
        except Exception as err:
            holder.fail(err)
            return 0.0

    def fn_weekday() -> float:
        try:
            return float(local_now().isoweekday())
        except Exception as err:
            holder.fail(err)
            return 0.0

    def fn_sun_elevation() -> float:
        try:
            # astral corrects for atmospheric refraction near the horizon, as the NOAA
            # solar calculator does; degrees above (+) or below (-) the horizon.
            return float(elevation(observer, holder.current().now()))
        except Exception as err:
            holder.fail(err)
            return 0.0

    def fn_quality(tag: str) -> str:
        try:
            return _quality_word(holder.current().quality(tag))
        except Exception as err:
            holder.fail(err)
            return "bad"

    def fn_since_change(tag: str) -> float:
        try:
            return float(holder.current().since_change(tag))
        except Exception as err:
            holder.fail(err)
            return 0.0

    def window(statistic: str) -> Callable[[str, float], float]:
        def fn_window(tag: str, seconds: float) -> float:
            try:
                return float(holder.current().window(tag, seconds, statistic))
            except Exception as err:
                holder.fail(err)
                return 0.0

        return fn_window

    library: dict[str, Callable[..., object]] = {
        "abs": fn_abs,
        "min": fn_min,
        "max": fn_max,
        "clamp": fn_clamp,
        "hour": fn_hour,
        "minute": fn_minute,
        "weekday": fn_weekday,
        "sun_elevation": fn_sun_elevation,
        "quality": fn_quality,
        "since_change": fn_since_change,
        "avg": window("avg"),
        "min_over": window("min"),
        "max_over": window("max"),
    }
    return {name: library[name] for name in names}
