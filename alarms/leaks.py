"""Leak detection by night flow and a learnt daily profile: one ``NIGHT_FLOW`` alarm per district
metering area.

A metering area (DMA) is a district fed through metered inlets. A leak adds a constant flow day
and night; between about 00:30 and 04:30 almost nobody draws water, so there it shows plainly as
a raised *minimum night flow*, the figure water utilities watch to find leaks (IWA water
balance; the UK "Managing Leakage" reports; the IWA Water Loss Task Force's DMA guidance). The
same constant excess is in the day-time flow too, less plainly, against demand that repeats from
day to day. This detector uses both, and lets the night decide.

What it learns: the area's inflow is cut into quarter-hours (aligned to the clock). From the
last ``baseline_days`` normal days it keeps, for each quarter-hour of the day, the median flow
(the *profile*) and how much that quarter-hour varies from day to day (smoothed over the
neighbouring quarter-hours), how neighbouring quarter-hours vary together (autocorrelation up
to ``LAGS``), and whether whole days or whole nights differ more than that allows (a cause
common to a day: weather, a holiday), tested with a 1 % chi-square test (``COMMON_CAUSE_Z``)
and then taken at its 90 % upper bound. A day is learnt one day after it ends, and only if
the alarm was not active since it began: a leak that began in it has had a full day to be found
before it could enter the profile. The first ``baseline_days`` days are learnt as they end
(nothing is judged before them).

What it judges: at the end of every quarter-hour, for every possible start of a leak (a
quarter-hour boundary) among the quarter-hours not yet learnt (up to two days), the step since
that start: the excess of the flow over the profile, each quarter-hour weighted by how steady it
is (inverse variance), with its standard error (``Profile.span_variance``). The alarm activates
when, for some start,

1. the span holds at least ``NIGHT_SHARE`` of a night window (12 of its 16 quarter-hours):
   without the night nothing is decided;
2. the estimated excess is at least the alarm's limit flow (``AlarmDef.limit`` x the area's
   average inflow): the smallest leak worth an operator's time;
3. it is at least ``Z_STAR`` standard errors: not the chance of any one of the thousands of
   (start, look) pairs judged in a week;
4. the night quarter-hours of the span alone are up by at least ``NIGHT_CONFIRM`` of the limit
   flow and ``NIGHT_Z`` of their own standard errors, and not less than the day-time part by
   more than ``CONSISTENCY_Z`` standard errors: a leak raises night and day by the same flow;
   demand (a hot afternoon, an event) raises the day far more than the night.

A leak that starts right after a night window has, twelve quarter-hours into the next window
(23 h later), a day of excess and most of a night; one that starts inside the window needs at
most twelve of the next window's quarter-hours joined to the rest of its first night. Either
way the look that can decide comes within 24 h of its start.

The alarm clears at the end of a night window when both that night and the last 24 h are back
within the limit flow less ``AlarmDef.deadband`` (a share) of the average inflow. While it is
active nothing is learnt, so a leak left running never becomes the profile (``relearn`` forgets
the profile after a real, lasting change, a new large consumer).

Quarter-hours follow the site's local clock: on the spring-forward day four quarter-hours do
not exist, on the fall-back day four come twice (learnt as their mean). A quarter-hour with Good
data for less than ``min_coverage`` of it is missing; Bad or Uncertain samples break the series
(a reading is held at most ``max_gap_s``), so a stale value never fills a night.

The detector produces ``ConditionChange`` values like the alarm engine does; ``state()`` and
``restore()`` carry what it has learnt and the quarter-hours not yet learnt (JSON-able) across
restarts; ``NightFlowMemory`` keeps it in a store (the center: the historian's
``leak_baselines``) whenever a quarter-hour closed.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import statistics
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alarms.conditions import ConditionChange
from controlcenter.automation import AlarmDef, AlarmKind, SiteLocation
from controlcenter.model import Sample

log = logging.getLogger(__name__)

STATE_VERSION = 4
"""Version of the ``state()`` document; ``restore`` takes it, and versions 1 to 3 (night figures
of the former method) only for the alarm's state."""

DEFAULT_WINDOW = ("00:30", "04:30")
"""The four quietest hours of a residential district (its demand is lowest near 03:00)."""
QUARTER_S = 900.0
SLOTS_PER_DAY = 96
"""Quarter-hours of a local day (by the wall clock)."""
Z_STAR = 5.0
"""Standard errors an estimated excess must reach. A week holds some hundred thousand (start,
look) pairs, strongly overlapping; taken as ten thousand independent tests at five standard
errors (one-sided 3e-7 each), chance alone passes one in under one week of three hundred,
before the limit flow and the night are asked."""
NIGHT_SHARE = 0.75
"""Share of a night window's quarter-hours a judged span must hold (12 of 16): a whole window
less a quarter of it, so a leak that starts inside the window is judged within 24 h."""
NIGHT_CONFIRM = 0.5
"""The night part of a span must be up by at least this share of the limit flow..."""
NIGHT_Z = 2.0
"""... and by this many of its own standard errors: a night that shows nothing beyond its
usual spread cannot confirm (a normal night passes by chance one time in 44)."""
CONSISTENCY_Z = 3.0
"""The night part may be below the day-time part by at most this many standard errors."""
LAGS = 4
"""Autocorrelation of the quarter-hours is learnt up to this lag (an hour)."""
SMOOTH_SLOTS = 2
"""A quarter-hour's variance is the mean of the day-to-day variances of it and this many
quarter-hours on each side (a day's shape of spread, from 5 x (days - 1) degrees of freedom)."""
MIN_DAYS_PER_SLOT = 3
"""A quarter-hour of the day needs this many learnt values for a profile value."""
VARIANCE_FLOOR_SHARE = 0.25
"""No quarter-hour is taken as steadier than this share of the median quarter-hour's variance
(one that happened to be steady for a week is not given four times the weight of the rest)."""
RESOLUTION_SHARE = 1e-3
"""Nor steadier than this share of the average inflow (a meter's resolution), as a deviation."""
COMMON_CAUSE_Z = 2.326
"""Whole days (or nights) differing more than chance allows at this one-sided normal quantile
(a 1 % chi-square test) add their excess variance to every judged span..."""
COMMON_CAUSE_UPPER_Z = 1.2816
"""... taken at its 90 % upper confidence bound (this one-sided normal quantile): six days
say little about how much whole days vary, and erring wide only delays an alarm."""
DEFAULT_MIN_COVERAGE = 0.75
DEFAULT_MAX_GAP_S = 300.0
DAY_MIN_COVERAGE = 0.75
"""A day is learnt only when this share of its quarter-hours has data."""
HORIZON_S = 2 * 86_400.0
"""Quarter-hours not yet learnt are kept (and leak starts searched among them) this long."""
NIGHT_FLOW_REASON = "night_flow"


class NightFlowError(ValueError):
    """A night-flow alarm or detector setting that cannot work (wrong kind, no limit, ...)."""


class NightFlowStateError(ValueError):
    """A saved detector state that cannot be restored (malformed, another version)."""


@dataclass(frozen=True, slots=True)
class LearntDay:
    """One learnt local day: the mean flow of each of its quarter-hours, m3/h (None: no data,
    or a quarter-hour the spring-forward day does not have)."""

    day: date
    slots: tuple[float | None, ...]


@dataclass(frozen=True, slots=True)
class Evidence:
    """The step a look found: since ``onset``, the flow is ``excess`` m3/h over the profile."""

    onset: datetime
    excess: float
    standard_error: float
    night_excess: float
    night_quarters: int


@dataclass(frozen=True, slots=True)
class NightFlowStatus:
    """What the detector knows of one alarm: learnt days, night baseline, limit flow, spreads."""

    alarm: str
    tag: str
    active: bool
    days: tuple[date, ...]
    """The learnt days, oldest first."""
    baseline: float | None
    """The profile's mean over the night window (the learnt minimum night flow), m3/h; None
    until ``baseline_days`` days are learnt."""
    average_inflow: float | None
    """The profile's mean inflow once learnt, before that the learnt days' (None before a day
    is learnt), m3/h."""
    threshold: float | None
    """The limit flow: ``AlarmDef.limit`` x the average inflow, m3/h."""
    night_spread: float | None
    """Standard error of a whole night window's excess over the profile, m3/h."""
    day_spread: float | None
    """Standard error of a whole day's (24 h) excess over the profile, m3/h."""


def _parse_clock(text: str) -> time:
    try:
        hours_text, minutes_text = text.split(":")
        moment = time(int(hours_text), int(minutes_text))
    except ValueError as err:
        raise NightFlowError(f"night window time {text!r} is not HH:MM") from err
    if moment.minute % 15:
        raise NightFlowError(f"night window time {text!r} is not on a quarter-hour")
    return moment


def _slot_of_clock(moment: time) -> int:
    return (moment.hour * 60 + moment.minute) // 15


class Profile:
    """What the learnt days say of each quarter-hour of the day: its median flow, the variance
    of a quarter-hour's excess over that median, the quarter-hours' autocorrelation and the
    variance common to whole days and to whole nights."""

    def __init__(self, days: Sequence[LearntDay], night_slots: frozenset[int]) -> None:
        columns: list[list[float]] = [
            [v for v in (d.slots[s] for d in days) if v is not None] for s in range(SLOTS_PER_DAY)
        ]
        self.median: list[float | None] = [
            statistics.median(c) if len(c) >= MIN_DAYS_PER_SLOT else None for c in columns
        ]
        known = [m for m in self.median if m is not None]
        self.mean = statistics.fmean(known) if known else 0.0
        """The profile's mean (the area's average inflow), m3/h: one odd day does not move
        it."""
        raw = [statistics.variance(c) if len(c) >= 2 else None for c in columns]
        smoothed: list[float] = []
        for slot in range(SLOTS_PER_DAY):
            near = [raw[(slot + k) % SLOTS_PER_DAY] for k in range(-SMOOTH_SLOTS, SMOOTH_SLOTS + 1)]
            known = [v for v in near if v is not None]
            smoothed.append(statistics.fmean(known) if known else 0.0)
        floor = max(
            VARIANCE_FLOOR_SHARE * statistics.median(smoothed),
            (RESOLUTION_SHARE * self.mean) ** 2,
            1e-12,
        )
        self.raw_variance = [max(v, floor) for v in smoothed]
        """Day-to-day variance of each quarter-hour's flow, (m3/h)^2."""
        # The profile is a median of n values: its own error adds pi/(2n) of the variance.
        self.variance = [
            v * (1.0 + math.pi / (2.0 * max(len(c), 1)))
            for v, c in zip(self.raw_variance, columns, strict=True)
        ]
        """Variance of a quarter-hour's excess over the profile, (m3/h)^2."""
        self.correlation = _lag_correlations(days, columns, self.raw_variance)
        self.night_slots = night_slots
        self.common_day = self._common(days, frozenset(range(SLOTS_PER_DAY)))
        self.common_night = self._common(days, night_slots)

    def span_variance(self, slots: Sequence[int | None], raw: bool = False) -> tuple[float, float]:
        """The weight and the variance of the weighted sum of excesses over consecutive
        quarter-hours (None: a quarter-hour without data), as (sum of weights, variance)."""
        variances = self.raw_variance if raw else self.variance
        weights = [0.0 if s is None else 1.0 / variances[s] for s in slots]
        total = sum(weights)
        variance = total
        for lag, rho in enumerate(self.correlation, start=1):
            if rho <= 0.0:
                continue
            for i in range(len(slots) - lag):
                a, b = slots[i], slots[i + lag]
                if a is not None and b is not None:
                    variance += 2.0 * rho * math.sqrt(weights[i] * weights[i + lag])
        return total, variance

    def _common(self, days: Sequence[LearntDay], slots: frozenset[int]) -> float:
        """The variance whole days (over ``slots``) share beyond what the quarter-hours
        explain, at its 90 % upper confidence bound; 0 when a 1 % chi-square test does not
        find it."""
        common = [
            s
            for s in sorted(slots)
            if self.median[s] is not None and all(d.slots[s] is not None for d in days)
        ]
        if len(days) < 4 or not common:
            return 0.0
        weights = [1.0 / self.raw_variance[s] for s in common]
        total = sum(weights)
        means = [
            sum(w * _known(d.slots[s]) for w, s in zip(weights, common, strict=True)) / total
            for d in days
        ]
        # Without the day farthest from the median: one odd day (a burst being repaired, a
        # festival) does not make every day look uncertain.
        centre = statistics.median(means)
        kept = sorted(means, key=lambda m: abs(m - centre))[:-1]
        observed = statistics.variance(kept)
        weight, variance = self.span_variance(_runs(common), raw=True)
        expected = variance / (weight * weight)
        freedom = len(kept) - 1
        if observed <= expected * _chance_ratio(freedom) ** 2:
            return 0.0
        return observed / _chi_square_share(freedom, -COMMON_CAUSE_UPPER_Z) - expected

    def night_standard_error(self) -> float:
        """Standard error of a whole night window's excess, m3/h."""
        weight, variance = self.span_variance(sorted(self.night_slots))
        return math.sqrt(variance / (weight * weight) + self.common_night)

    def day_standard_error(self) -> float:
        """Standard error of a whole day's excess, m3/h."""
        weight, variance = self.span_variance(list(range(SLOTS_PER_DAY)))
        return math.sqrt(variance / (weight * weight) + self.common_day)


def _known(value: float | None) -> float:
    assert value is not None  # the caller keeps only quarter-hours every day has
    return value


def _runs(slots: Sequence[int]) -> list[int | None]:
    """Slots as a consecutive series, None where one is left out (keeps lags honest)."""
    if not slots:
        return []
    series: list[int | None] = []
    for slot in range(slots[0], slots[-1] + 1):
        series.append(slot if slot in slots else None)
    return series


def _lag_correlations(
    days: Sequence[LearntDay], columns: Sequence[Sequence[float]], variances: Sequence[float]
) -> tuple[float, ...]:
    """The autocorrelation of the quarter-hours' standardised deviations from their mean over
    the learnt days, lags 1 to ``LAGS``, pooled over every day; a negative one is taken as none
    (the safe side: it would shrink the variance of a span)."""
    means = [statistics.fmean(c) if c else 0.0 for c in columns]
    standard: list[list[float | None]] = [
        [
            None if v is None else (v - means[s]) / math.sqrt(variances[s])
            for s, v in enumerate(d.slots)
        ]
        for d in days
    ]
    result: list[float] = []
    for lag in range(1, LAGS + 1):
        products = 0.0
        left = 0.0
        right = 0.0
        for row in standard:
            for s in range(SLOTS_PER_DAY - lag):
                a, b = row[s], row[s + lag]
                if a is not None and b is not None:
                    products += a * b
                    left += a * a
                    right += b * b
        rho = products / math.sqrt(left * right) if left > 0 and right > 0 else 0.0
        result.append(min(max(rho, 0.0), 0.99))
    return tuple(result)


def _chance_ratio(freedom: int) -> float:
    """How many times the true standard deviation a sample one of ``freedom`` degrees exceeds
    by chance once in a hundred: sqrt(chi-square 99 % quantile / freedom)."""
    if freedom < 1:
        return math.inf
    return math.sqrt(_chi_square_share(freedom, COMMON_CAUSE_Z))


def _chi_square_share(freedom: int, z: float) -> float:
    """The chi-square quantile of ``freedom`` degrees at the normal quantile ``z``, divided by
    ``freedom`` (Wilson-Hilferty)."""
    step = 2.0 / (9.0 * freedom)
    return max(1.0 - step + z * math.sqrt(step), 0.0) ** 3


class _Quarter:
    """One closed quarter-hour of the series: its start (epoch seconds), local slot, mean flow
    (None: too little data), and what a look needs of it under the current profile."""

    __slots__ = ("cross", "excess", "night", "slot", "start", "value", "weight")

    def __init__(self, start: float, slot: int, value: float | None, night: bool) -> None:
        self.start = start
        self.slot = slot
        self.value = value
        self.night = night
        self.weight = 0.0
        self.excess = 0.0
        self.cross = [0.0, 0.0, 0.0]
        """Covariance terms with the next ``LAGS`` quarter-hours: all, night-night, day-day."""


class _Track:
    """One alarm's series: the quarter-hour being collected, the ones not yet learnt, and what
    has been learnt."""

    def __init__(self, definition: AlarmDef, detector: NightFlowDetector) -> None:
        self.definition = definition
        self.detector = detector
        self.active = False
        self.inactive_since = -math.inf
        """When the alarm last cleared (epoch seconds): days before it are not learnt."""
        self.scan_from = -math.inf
        """Leak starts are searched from here on (the last clear, a relearn)."""
        self.learnt: deque[LearntDay] = deque(maxlen=detector.baseline_days)
        self.profile: Profile | None = None
        self.recent: deque[_Quarter] = deque()
        self.last: tuple[float, float] | None = None
        self.booked_until = -math.inf
        self.quarter_start: float | None = None
        self.integral = 0.0
        self.covered = 0.0
        self.revision = 0
        """Counts changes of what ``state()`` carries across a restart."""

    # -- feeding ------------------------------------------------------------------------------

    def add(self, at: float, value: float) -> list[ConditionChange]:
        """Take one Good reading at ``at`` (epoch seconds)."""
        last = self.last
        if last is not None and at <= last[0]:
            return []  # late or repeated: the series only moves forward
        if self.quarter_start is not None and at < self.quarter_start:
            return []  # before a quarter-hour already closed
        changes = self.close_quarters(at)
        self._book(at)
        self.last = (at, value)
        return changes

    def gap(self, at: float) -> list[ConditionChange]:
        """A Bad or missing reading at ``at``: the last value is no longer held."""
        changes = self.close_quarters(at)
        last = self.last
        if last is not None and at > last[0]:
            self._book(at)
            self.last = None
        return changes

    def close_quarters(self, now: float) -> list[ConditionChange]:
        """Close every quarter-hour that ended at or before ``now``."""
        if self.quarter_start is None:
            self.quarter_start = math.floor(now / QUARTER_S) * QUARTER_S
            self.booked_until = self.quarter_start
        changes: list[ConditionChange] = []
        while now >= self.quarter_start + QUARTER_S:
            end = self.quarter_start + QUARTER_S
            self._book(end)
            need = self.detector.min_coverage * QUARTER_S
            value = self.integral / self.covered if self.covered >= need else None
            change = self._closed(self.quarter_start, value)
            if change is not None:
                changes.append(change)
            self.quarter_start = end
            self.booked_until = max(self.booked_until, end)
            self.integral = 0.0
            self.covered = 0.0
        return changes

    def _book(self, until: float) -> None:
        """Hold the last reading up to ``until`` (at most ``max_gap_s`` after it)."""
        last = self.last
        if last is None:
            return
        start = max(last[0], self.booked_until)
        end = min(until, last[0] + self.detector.max_gap_s)
        if end > start:
            self.integral += (end - start) * last[1]
            self.covered += end - start
            self.booked_until = end

    # -- quarter-hours and days -----------------------------------------------------------------

    def _closed(self, start: float, value: float | None) -> ConditionChange | None:
        detector = self.detector
        slot = detector.slot_of(start)
        quarter = _Quarter(start, slot, value, slot in detector.night_slots)
        self._append(quarter)
        self.revision += 1
        end = start + QUARTER_S
        day = detector.local_date(start)
        if detector.local_date(end) != day:
            self._day_ended(day)
        if self.active:
            if self.profile is None:
                return self._clear(end, "no learnt profile to judge it by")
            if quarter.night and detector.slot_of(end) not in detector.night_slots:
                return self._judge_clear(end)
            return None
        return self._look(end)

    def _append(self, quarter: _Quarter) -> None:
        recent = self.recent
        previous = recent[-1].start if recent else None
        if previous is not None and quarter.start - previous > QUARTER_S:
            # A gap (the center was down): empty quarter-hours keep the series consecutive.
            moment = max(previous + QUARTER_S, quarter.start - HORIZON_S)
            if moment > previous + QUARTER_S:
                recent.clear()
            while moment < quarter.start:
                slot = self.detector.slot_of(moment)
                self._weigh(_Quarter(moment, slot, None, slot in self.detector.night_slots))
                moment += QUARTER_S
        self._weigh(quarter)
        while recent and recent[0].start < quarter.start + QUARTER_S - HORIZON_S:
            recent.popleft()

    def _weigh(self, quarter: _Quarter) -> None:
        """Append a quarter-hour with its weight, excess and covariance terms."""
        profile = self.profile
        if profile is not None and quarter.value is not None:
            median = profile.median[quarter.slot]
            if median is not None:
                quarter.weight = 1.0 / profile.variance[quarter.slot]
                quarter.excess = quarter.value - median
        if profile is not None and quarter.weight > 0.0:
            # Covariances with the quarter-hours before it (their terms look forward).
            for lag, rho in enumerate(profile.correlation, start=1):
                if lag > len(self.recent) or rho <= 0.0:
                    continue
                before = self.recent[-lag]
                if before.weight == 0.0:
                    continue
                term = 2.0 * rho * math.sqrt(before.weight * quarter.weight)
                before.cross[0] += term
                if before.night and quarter.night:
                    before.cross[1] += term
                elif not before.night and not quarter.night:
                    before.cross[2] += term
        self.recent.append(quarter)

    def _reweigh(self) -> None:
        """Weigh the kept quarter-hours again under a new profile."""
        kept = list(self.recent)
        self.recent.clear()
        for quarter in kept:
            quarter.weight = 0.0
            quarter.excess = 0.0
            quarter.cross = [0.0, 0.0, 0.0]
            self._weigh(quarter)

    def _day_ended(self, day: date) -> None:
        """Learn a day: at its own end while the profile is being built, else a day later."""
        ready = len(self.learnt) >= self.detector.baseline_days
        candidate = day - timedelta(days=1) if ready else day
        if self.learnt and candidate <= self.learnt[-1].day:
            return
        learnt = self._learnable(candidate)
        if learnt is None:
            return
        self.learnt.append(learnt)
        self.revision += 1
        if len(self.learnt) >= self.detector.baseline_days:
            self.profile = Profile(list(self.learnt), self.detector.night_slots)
        # Learnt quarter-hours are no longer searched; the rest is weighed anew.
        day_end = self.detector.day_start(candidate + timedelta(days=1))
        while self.recent and self.recent[0].start < day_end:
            self.recent.popleft()
        self._reweigh()

    def _learnable(self, day: date) -> LearntDay | None:
        if self.active or self.detector.day_start(day) < self.inactive_since:
            return None
        start = self.detector.day_start(day)
        stop = self.detector.day_start(day + timedelta(days=1))
        sums = [0.0] * SLOTS_PER_DAY
        counts = [0] * SLOTS_PER_DAY
        present = 0
        for quarter in self.recent:
            if start <= quarter.start < stop and quarter.value is not None:
                sums[quarter.slot] += quarter.value
                counts[quarter.slot] += 1
                present += 1
        if present < DAY_MIN_COVERAGE * (stop - start) / QUARTER_S:
            return None
        slots = tuple(s / c if c else None for s, c in zip(sums, counts, strict=True))
        return LearntDay(day, slots)

    # -- judging ------------------------------------------------------------------------------

    def limit_flow(self) -> float | None:
        """The alarm's limit as a flow: ``limit`` x the learnt average inflow, m3/h."""
        if self.profile is None:
            return None
        return (self.definition.limit or 0.0) * self.profile.mean

    def evidence(self) -> Evidence | None:
        """The strongest step among the quarter-hours not yet learnt that passes every test
        of a leak, or None."""
        profile = self.profile
        floor = self.limit_flow()
        if profile is None or floor is None:
            return None
        need_night = math.ceil(NIGHT_SHARE * len(self.detector.night_slots))
        all_w = all_we = all_var = 0.0
        night_w = night_we = night_var = 0.0
        day_var = 0.0
        night_count = 0
        best: Evidence | None = None
        best_z = 0.0
        for quarter in reversed(self.recent):
            if quarter.start < self.scan_from:
                break
            weight = quarter.weight
            if weight > 0.0:
                all_w += weight
                all_we += weight * quarter.excess
                all_var += weight + quarter.cross[0]
                if quarter.night:
                    night_w += weight
                    night_we += weight * quarter.excess
                    night_var += weight + quarter.cross[1]
                    night_count += 1
                else:
                    day_var += weight + quarter.cross[2]
            if night_count < need_night:
                continue
            excess = all_we / all_w
            if excess < floor:
                continue
            error = math.sqrt(all_var / (all_w * all_w) + profile.common_day)
            if excess < Z_STAR * error:
                continue
            night_excess = night_we / night_w
            night_error2 = night_var / (night_w * night_w) + profile.common_night
            if night_excess < NIGHT_CONFIRM * floor or night_excess < NIGHT_Z * math.sqrt(
                night_error2
            ):
                continue
            day_w = all_w - night_w
            if day_w > 0.0:
                day_excess = (all_we - night_we) / day_w
                day_error2 = day_var / (day_w * day_w) + profile.common_day
                if night_excess < day_excess - CONSISTENCY_Z * math.sqrt(night_error2 + day_error2):
                    continue  # the day is up far more than the night: demand, not a leak
            z = excess / error
            if z > best_z:
                best_z = z
                best = Evidence(
                    datetime.fromtimestamp(quarter.start, UTC),
                    excess,
                    error,
                    night_excess,
                    night_count,
                )
        return best

    def _look(self, at: float) -> ConditionChange | None:
        evidence = self.evidence()
        floor = self.limit_flow()
        if evidence is None or floor is None:
            return None
        self.active = True
        self.revision += 1
        onset = evidence.onset.astimezone(self.detector.zone)
        message = (
            f"inflow since {onset:%Y-%m-%d %H:%M} is {evidence.excess:.1f} m3/h above its "
            f"learnt profile (night flow {evidence.night_excess:.1f} m3/h above; limit "
            f"{floor:.1f} m3/h): a possible leak"
        )
        return self._change(True, evidence.excess, at, message)

    def _judge_clear(self, at: float) -> ConditionChange | None:
        """At a night window's end: clear when that night and the last 24 h are back within
        the limit flow less the deadband."""
        floor = self.limit_flow()
        profile = self.profile
        if floor is None or profile is None:
            return None
        night: list[_Quarter] = []
        for quarter in reversed(self.recent):
            if not quarter.night:
                break
            night.append(quarter)
        day = [q for q in self.recent if q.start >= at - 86_400.0]
        night_excess = _weighted_excess(night, self.detector.min_coverage)
        day_excess = _weighted_excess(day, DAY_MIN_COVERAGE)
        if night_excess is None or day_excess is None:
            return None
        clear_at = floor - self.definition.deadband * profile.mean
        if night_excess > clear_at or day_excess > clear_at:
            return None
        return self._clear(
            at,
            f"night flow {night_excess:.1f} m3/h and the last day's inflow {day_excess:.1f} "
            f"m3/h above the learnt profile: back within the limit {floor:.1f} m3/h",
            night_excess,
        )

    def _clear(self, at: float, message: str, value: float | None = None) -> ConditionChange:
        self.active = False
        self.inactive_since = at
        self.scan_from = at
        self.revision += 1
        return self._change(False, value, at, message)

    def _change(
        self, active: bool, value: float | None, at: float, message: str
    ) -> ConditionChange:
        return ConditionChange(
            alarm=self.definition.name,
            time=datetime.fromtimestamp(at, UTC),
            active=active,
            suppressed=None,
            value=None if value is None else round(value, 3),
            message=message,
            reason=NIGHT_FLOW_REASON,
        )

    def status(self) -> NightFlowStatus:
        """The learnt days, night baseline, average inflow and limit flow of this alarm."""
        profile = self.profile
        baseline = night_spread = day_spread = None
        if profile is not None:
            night = [profile.median[s] for s in sorted(self.detector.night_slots)]
            known = [v for v in night if v is not None]
            baseline = statistics.fmean(known) if known else None
            night_spread = profile.night_standard_error()
            day_spread = profile.day_standard_error()
        values = [v for d in self.learnt for v in d.slots if v is not None]
        average = profile.mean if profile is not None else None
        if average is None and values:
            average = statistics.fmean(values)
        return NightFlowStatus(
            alarm=self.definition.name,
            tag=self.definition.tag,
            active=self.active,
            days=tuple(d.day for d in self.learnt),
            baseline=baseline,
            average_inflow=average,
            threshold=self.limit_flow(),
            night_spread=night_spread,
            day_spread=day_spread,
        )

    def forget(self) -> None:
        """Forget the profile and the quarter-hours not yet learnt (a relearn)."""
        self.learnt.clear()
        self.profile = None
        self.recent.clear()
        self.revision += 1


def _weighted_excess(quarters: Iterable[_Quarter], coverage: float) -> float | None:
    """The weighted mean excess of quarter-hours, None when too few of them have data."""
    listed = list(quarters)
    weighed = [q for q in listed if q.weight > 0.0]
    if not listed or len(weighed) < coverage * len(listed):
        return None
    total = sum(q.weight for q in weighed)
    return sum(q.weight * q.excess for q in weighed) / total


class NightFlowDetector:
    """Leak detection for ``NIGHT_FLOW`` alarms (one per metering area): night flow and a learnt
    daily profile, judged every quarter-hour (see the module's description)."""

    def __init__(
        self,
        definitions: Sequence[AlarmDef],
        site: SiteLocation,
        *,
        window: tuple[str, str] = DEFAULT_WINDOW,
        baseline_days: int = 7,
        min_coverage: float = DEFAULT_MIN_COVERAGE,
        max_gap_s: float = DEFAULT_MAX_GAP_S,
    ) -> None:
        try:
            self.zone = ZoneInfo(site.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise NightFlowError(f"unknown time zone {site.timezone!r}") from err
        self.window_start = _parse_clock(window[0])
        self.window_end = _parse_clock(window[1])
        if self.window_end <= self.window_start:
            raise NightFlowError(
                f"night window {window[0]}-{window[1]} must end after it starts on the same day"
            )
        if baseline_days < 3:
            raise NightFlowError(f"baseline_days must be at least 3, got {baseline_days}")
        if not 0.0 < min_coverage <= 1.0:
            raise NightFlowError(f"min_coverage must be in (0, 1], got {min_coverage}")
        if not max_gap_s > 0:
            raise NightFlowError("max_gap_s must be positive seconds")
        self.night_slots = frozenset(
            range(_slot_of_clock(self.window_start), _slot_of_clock(self.window_end))
        )
        self.baseline_days = baseline_days
        self.min_coverage = min_coverage
        self.max_gap_s = max_gap_s
        self._tracks: dict[str, _Track] = {}
        self._by_tag: dict[str, list[_Track]] = {}
        for definition in definitions:
            _check_definition(definition)
            if definition.name in self._tracks:
                raise NightFlowError(f"night-flow alarm {definition.name} is defined twice")
            track = _Track(definition, self)
            self._tracks[definition.name] = track
            self._by_tag.setdefault(definition.tag, []).append(track)

    # -- time ---------------------------------------------------------------------------------

    def local_date(self, at: float) -> date:
        """The local date at ``at`` (epoch seconds)."""
        return datetime.fromtimestamp(at, self.zone).date()

    def slot_of(self, at: float) -> int:
        """The local quarter-hour of the day (0-95) that ``at`` (epoch seconds) falls in."""
        local = datetime.fromtimestamp(at, self.zone)
        return (local.hour * 60 + local.minute) // 15

    def day_start(self, day: date) -> float:
        """Local midnight starting ``day``, epoch seconds."""
        return datetime.combine(day, time(0), tzinfo=self.zone).timestamp()

    def window_of(self, night: date) -> tuple[float, float]:
        """The night window of a local date as epoch seconds (DST: shorter or longer)."""
        # A wall time that does not exist (spring forward) maps, with fold 0, onto the
        # instant of the transition; an ambiguous one onto its first occurrence: either
        # way the window covers every local reading between its two wall times.
        start = datetime.combine(night, self.window_start, tzinfo=self.zone)
        end = datetime.combine(night, self.window_end, tzinfo=self.zone)
        return start.timestamp(), end.timestamp()

    def window_length_s(self, night: date) -> float:
        """Seconds in the night window of a local date (shorter or longer on DST nights)."""
        start, end = self.window_of(night)
        return end - start

    def day_length_s(self, day: date) -> float:
        """Seconds in a local day (23 h or 25 h on DST change days)."""
        return self.day_start(day + timedelta(days=1)) - self.day_start(day)

    def revision(self) -> int:
        """A number that changes whenever what ``state()`` carries changes (a quarter-hour
        closed, a day learnt, an alarm set or cleared, a relearn or restore): save then."""
        return sum(track.revision for track in self._tracks.values())

    # -- the engine's interface ---------------------------------------------------------------

    def feed(self, samples: Sequence[Sample], now: datetime) -> list[ConditionChange]:
        """Take samples (any tags: unwatched ones are skipped) and close the quarter-hours
        ended by ``now``; return the alarms whose condition changed."""
        changes: list[ConditionChange] = []
        for sample in sorted(samples, key=lambda s: s.source_time):
            tracks = self._by_tag.get(sample.tag)
            if tracks is None:
                continue
            at = _epoch(sample.source_time)
            value = sample.numeric
            good = sample.quality.is_good and value is not None and math.isfinite(value)
            for track in tracks:
                if good and value is not None:
                    changes.extend(track.add(at, value))
                else:
                    changes.extend(track.gap(at))
        changes.extend(self.advance(now))
        return changes

    def advance(self, now: datetime) -> list[ConditionChange]:
        """Close (and judge) every quarter-hour that ended by ``now``, also without samples."""
        at = _epoch(now)
        changes: list[ConditionChange] = []
        for track in self._tracks.values():
            changes.extend(track.close_quarters(at))
        return changes

    def next_due(self) -> datetime | None:
        """When the next quarter-hour closes (call ``advance`` then), or None before any
        feed."""
        ends = [
            track.quarter_start + QUARTER_S
            for track in self._tracks.values()
            if track.quarter_start is not None
        ]
        return datetime.fromtimestamp(min(ends), UTC) if ends else None

    def alarms(self) -> list[str]:
        """The names of the night-flow alarms this detector watches."""
        return list(self._tracks)

    def status(self, alarm: str) -> NightFlowStatus:
        """What the detector has learnt for one alarm (KeyError: not a night-flow alarm here)."""
        return self._tracks[alarm].status()

    def evidence(self, alarm: str) -> Evidence | None:
        """The step that would activate an inactive alarm now, or None (KeyError: unknown)."""
        return self._tracks[alarm].evidence()

    def relearn(self, alarm: str, now: datetime) -> list[ConditionChange]:
        """Forget an alarm's profile (after a real, permanent change of the area's use); an
        active alarm clears, and days are learnt again from the next one."""
        track = self._tracks[alarm]
        track.forget()
        at = _epoch(now)
        track.scan_from = at
        if not track.active:
            return []
        return [track._clear(at, "night-flow profile relearnt: the alarm waits for new days")]

    # -- persistence --------------------------------------------------------------------------

    def state(self) -> dict[str, object]:
        """What has been learnt, as a JSON-able document (``restore`` takes it back)."""
        alarms: dict[str, object] = {}
        for name, track in self._tracks.items():
            recent = list(track.recent)
            alarms[name] = {
                "tag": track.definition.tag,
                "active": track.active,
                "inactive_since": _finite_or_none(track.inactive_since),
                "scan_from": _finite_or_none(track.scan_from),
                "days": [[d.day.isoformat(), list(d.slots)] for d in track.learnt],
                "recent_start": recent[0].start if recent else None,
                "recent": [q.value for q in recent],
            }
        return {"version": STATE_VERSION, "alarms": alarms}

    def restore(self, state: Mapping[str, object]) -> None:
        """Take back a ``state()`` document: alarms no longer defined, or now watching another
        tag, are dropped; a malformed document raises ``NightFlowStateError`` and changes
        nothing. A document of versions 1 to 3 (the former method's night figures) gives back
        only whether the alarm is active: it clears at the next quarter-hour, and the profile
        is learnt afresh."""
        version = state.get("version")
        if version not in (1, 2, 3, STATE_VERSION):
            raise NightFlowStateError(
                f"night-flow state version {version!r} is not {STATE_VERSION}"
            )
        alarms = state.get("alarms")
        if not isinstance(alarms, Mapping):
            raise NightFlowStateError("night-flow state has no 'alarms' mapping")
        parsed: list[tuple[_Track, _Restored]] = []
        for name, entry in alarms.items():
            track = self._tracks.get(str(name))
            if track is None:
                continue
            restored = _parse_entry(str(name), entry, version == STATE_VERSION)
            if restored.tag != track.definition.tag:
                continue  # another meter: what was learnt does not apply
            parsed.append((track, restored))
        for track, restored in parsed:
            track.active = restored.active
            track.inactive_since = restored.inactive_since
            track.scan_from = restored.scan_from
            track.learnt.clear()
            track.learnt.extend(restored.days[-self.baseline_days :])
            track.profile = None
            if len(track.learnt) >= self.baseline_days:
                track.profile = Profile(list(track.learnt), self.night_slots)
            track.recent.clear()
            moment = restored.recent_start
            for value in restored.recent:
                slot = self.slot_of(moment)
                track._weigh(_Quarter(moment, slot, value, slot in self.night_slots))
                moment += QUARTER_S
            track.quarter_start = None
            track.last = None
            track.integral = track.covered = 0.0
            track.revision += 1


@dataclass(frozen=True, slots=True)
class _Restored:
    tag: str
    active: bool
    inactive_since: float
    scan_from: float
    days: list[LearntDay]
    recent_start: float
    recent: list[float | None]


def _parse_entry(name: str, entry: object, current: bool) -> _Restored:
    def fail(what: str) -> NightFlowStateError:
        return NightFlowStateError(f"night-flow state of {name}: {what}")

    if not isinstance(entry, Mapping):
        raise fail("not a mapping")
    tag = entry.get("tag")
    active = entry.get("active")
    if not isinstance(tag, str) or not isinstance(active, bool):
        raise fail("'tag' must be text and 'active' true or false")
    if not current:
        # The former method's night figures do not make a profile: only the alarm's state.
        return _Restored(tag, active, -math.inf, -math.inf, [], 0.0, [])
    try:
        days = [_day(row) for row in _list(entry.get("days", []), "days")]
        if any(later.day <= earlier.day for earlier, later in itertools.pairwise(days)):
            raise ValueError("'days' must be in increasing date order")
        recent = [
            None if v is None else _finite(v) for v in _list(entry.get("recent", []), "recent")
        ]
        start = entry.get("recent_start")
        recent_start = 0.0 if start is None else _finite(start)
        if recent and start is None:
            raise ValueError("'recent' needs a 'recent_start'")
        if len(recent) > HORIZON_S / QUARTER_S + 4 or recent_start % QUARTER_S:
            raise ValueError("'recent' must be quarter-hours within two days")
        inactive_since = _optional_time(entry.get("inactive_since"))
        scan_from = _optional_time(entry.get("scan_from"))
    except (TypeError, ValueError) as err:
        raise fail(str(err)) from err
    flows = [v for d in days for v in d.slots if v is not None]
    flows += [v for v in recent if v is not None]
    if any(v < 0 for v in flows):
        raise fail("flows must not be negative")
    return _Restored(tag, active, inactive_since, scan_from, days, recent_start, recent)


def _list(items: object, key: str) -> list[object]:
    if not isinstance(items, list):
        raise TypeError(f"'{key}' must be a list")
    return items


def _day(row: object) -> LearntDay:
    """A saved day: [date, [mean flow of each quarter-hour or null, ... 96]]."""
    if not (isinstance(row, list) and len(row) == 2 and isinstance(row[0], str)):
        raise TypeError("'days' entries must be [date, [96 numbers or nulls]]")
    slots = row[1]
    if not isinstance(slots, list) or len(slots) != SLOTS_PER_DAY:
        raise TypeError(f"a day must hold {SLOTS_PER_DAY} quarter-hours")
    values = tuple(None if v is None else _finite(v) for v in slots)
    return LearntDay(date.fromisoformat(row[0]), values)


def _optional_time(value: object) -> float:
    return -math.inf if value is None else _finite(value)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _finite(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


def _check_definition(definition: AlarmDef) -> None:
    if definition.kind is not AlarmKind.NIGHT_FLOW:
        raise NightFlowError(f"alarm {definition.name} is {definition.kind}, not night_flow")
    if not definition.tag:
        raise NightFlowError(f"night-flow alarm {definition.name} names no inflow tag")
    limit = definition.limit
    if limit is None or not 0.0 < limit < 1.0:
        raise NightFlowError(
            f"night-flow alarm {definition.name} needs a limit between 0 and 1 "
            f"(a share of the area's average inflow), got {limit}"
        )
    if not 0.0 <= definition.deadband < limit:
        raise NightFlowError(
            f"night-flow alarm {definition.name}: deadband must be a share below the limit"
        )


def _epoch(moment: datetime) -> float:
    if moment.utcoffset() is None:
        raise NightFlowError(f"time {moment.isoformat()} has no time zone")
    return moment.timestamp()


class BaselineStore(Protocol):
    """Where a detector's learning is kept: one JSON document per alarm (blocking I/O)."""

    def load_leak_baselines(self) -> Mapping[str, str]:
        """Every stored document by alarm name."""
        ...

    def save_leak_baselines(self, documents: Mapping[str, str], saved_at: datetime) -> None:
        """Replace the stored document of each alarm given."""
        ...


class NightFlowMemory:
    """Keeps a detector's learning in a ``BaselineStore`` across restarts of the center.

    ``recall`` (blocking, before the first samples) takes back each alarm's document; a
    missing one leaves the alarm learning from scratch, a damaged one too, with one log line,
    never an exception. ``pending`` (on the event loop, cheap) returns a blocking save job when
    the detector's learning changed since the last save (every closed quarter-hour), else None.
    """

    def __init__(self, detector: NightFlowDetector, store: BaselineStore) -> None:
        self.detector = detector
        self._store = store
        self._saved = -1

    def recall(self) -> list[str]:
        """Restore what the store holds; return the alarms whose baseline came back."""
        documents = self._store.load_leak_baselines()
        restored: list[str] = []
        fresh: list[str] = []
        for alarm in self.detector.alarms():
            text = documents.get(alarm)
            if text is None:
                fresh.append(alarm)
                continue
            try:
                document = json.loads(text)
                if not isinstance(document, dict):
                    raise NightFlowStateError("the saved document is not a JSON object")
                self.detector.restore(
                    {"version": document.get("version"), "alarms": {alarm: document.get("entry")}}
                )
            except (ValueError, RecursionError) as err:  # JSON and state errors alike
                log.warning(
                    "night-flow baseline of %s is unusable, learning afresh: %s", alarm, err
                )
                continue
            restored.append(alarm)
        if fresh:
            log.info("no saved night-flow baseline for %s: learning afresh", ", ".join(fresh))
        self._saved = self.detector.revision()
        return restored

    def pending(self, now: datetime) -> Callable[[], None] | None:
        """A job saving the detector's learning if it changed since the last save, or None."""
        revision = self.detector.revision()
        if revision == self._saved:
            return None
        state = self.detector.state()
        entries = state["alarms"]
        assert isinstance(entries, dict)
        documents = {
            alarm: json.dumps({"version": state["version"], "entry": entry}, allow_nan=False)
            for alarm, entry in entries.items()
        }

        def save() -> None:
            self._store.save_leak_baselines(documents, now)
            self._saved = revision

        return save
