"""Leak detection by minimum night flow: one ``NIGHT_FLOW`` alarm per district metering area.

A metering area (DMA) is a district fed through metered inlets. Between about 00:30 and 04:30
local time almost nobody draws water, so the area's inflow is at its lowest and is mostly
leakage: a new leak runs day and night and shows as a *raised minimum night flow*, the figure
water utilities watch to find leaks (IWA water balance; the UK "Managing Leakage" reports).

Each night, per alarm, the detector takes the minimum over the night window of the area's
inflow smoothed by a rolling, time-weighted mean (``smoothing_s``). By default the mean spans
the whole window, so the figure is the window's mean flow, as many utilities take the "minimum
night flow" (the mean of the quiet hours): demand noise that decorrelates within minutes
averages out over four hours (about 0.6 m3/h night to night on the demo city's districts,
``controlcenter bench leaks``, docs/benchmarks.md). It also takes the mean of each half of the
window.

The night's figure is compared with its *baseline*, the median of that figure over the previous
``baseline_nights`` nights (a median, so one odd night, a burst being repaired or a festival,
does not move it). Until that many nights are known the alarm never activates. The margin is
the larger of ``SPREAD_FACTOR`` standard deviations of a night's figure and a floor of
``limit`` (``AlarmDef.limit``, a share) of the area's *average inflow* (the time-weighted mean
of its inflow over the last ``baseline_nights`` complete days). The standard deviation is
estimated from the ``SLOTS`` equal parts of every learnt night (``within_night_spread``: the
parts' residuals once each night's level and the window's shape are taken out, about a hundred
values where the nights give seven, so one unlucky week does not blow the margin up); the
nights' own standard deviation takes its place when it is larger than chance allows (a 1 %
chi-square test, ``COMMON_CAUSE_Z``): a cause common to whole nights.

Looks: at the end of each part of the window, the last four hours of night-window flow are
judged, the night before from that part on joined to tonight up to it, against the same
baseline and margin; at the window's end, the whole night. A leak that began inside last
night's window is whole (at most one part short) in the look at the same clock time tonight,
within 24 h of its start; one that began outside the window is whole in the next window. The
alarm clears at the end of a night whose whole figure is back within its margin less
``AlarmDef.deadband``.

Why a share of the average inflow: leak sizes are stated that way (a 5 % leak adds 5 % of the
area's average inflow), so one limit fits every area whatever its size. While the alarm is
active, nights are not learnt: a leak left running must not teach the baseline that it is
normal (``relearn`` forgets the baseline after a real, permanent change, a new large consumer).

Local time follows the site's time zone: on the spring-forward night the window is an hour
shorter, on the fall-back night an hour longer, and so are its parts (looks across two nights
weigh each part by its length); the figures are means, so both are fine. A
night with data for less than ``min_coverage`` of its window (a communication loss, a Bad
meter) changes nothing: neither the alarm nor the baseline. Samples of Bad or Uncertain quality
break the series (a value is held at most ``max_gap`` seconds), so a stale value never fills a
night.

The detector produces ``ConditionChange`` values like the alarm engine does; ``state()`` and
``restore()`` carry what it has learnt (JSON-able) across restarts; ``NightFlowMemory`` keeps
it in a store (the center: the historian's ``leak_baselines``) after every night. The night
being collected is not carried: after a restart inside the window that night is judged only
if enough of it remains (``min_coverage``).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alarms.conditions import ConditionChange
from controlcenter.automation import AlarmDef, AlarmKind, SiteLocation
from controlcenter.model import Sample

log = logging.getLogger(__name__)

STATE_VERSION = 3
"""Version of the ``state()`` document; ``restore`` takes it and versions 1 and 2, refuses
others."""

DEFAULT_WINDOW = ("00:30", "04:30")
"""The four quietest hours of a residential district (its demand is lowest near 03:00)."""
SPREAD_FACTOR = 3.0
"""A night is judged against the area's own spread: this many standard deviations of a night's
figure (the Shewhart 3-sigma control limit) or ``limit`` x the average inflow, whichever is
larger."""
MAD_TO_SD = 1.4826
"""The median absolute deviation times this estimates a normal standard deviation (used while
a single night is learnt, where no standard deviation exists)."""
SLOTS = 16
"""The window is cut into this many equal parts (quarter-hours of the default window): a look
at the end of each part judges the last four hours of night-window flow across two nights."""
COMMON_CAUSE_Z = 2.326
"""The nights' own standard deviation replaces the within-night estimate when it is larger
than chance allows at this one-sided normal quantile (a 1 % chi-square test on the learnt
nights): the nights then differ by a cause common to whole nights (weather, a consumer)."""
DEFAULT_MIN_COVERAGE = 0.75
DEFAULT_MAX_GAP_S = 300.0
ROLLING_MEAN_MIN_COVERAGE = 0.9
"""A rolling mean counts only when data covers this share of its span."""
DAY_MIN_COVERAGE = 0.75
"""A day's mean inflow counts for the average only when data covers this share of the day."""
NIGHT_FLOW_REASON = "night_flow"


class NightFlowError(ValueError):
    """A night-flow alarm or detector setting that cannot work (wrong kind, no limit, ...)."""


class NightFlowStateError(ValueError):
    """A saved detector state that cannot be restored (malformed, another version)."""


@dataclass(frozen=True, slots=True)
class NightFigure:
    """One night's figures by its local date, m3/h: the minimum of the smoothed inflow over the
    window (by default the window's mean) and the mean of each of its ``SLOTS`` equal parts
    (None: too little data in that part; empty: not recorded, a state of version 1 or 2)."""

    night: date
    minimum: float
    slots: tuple[float | None, ...] = ()


@dataclass(frozen=True, slots=True)
class NightFlowStatus:
    """What the detector knows of one alarm: learnt nights, baseline, average inflow."""

    alarm: str
    tag: str
    active: bool
    nights: tuple[NightFigure, ...]
    baseline: float | None
    """Median of the learnt nights; None until ``baseline_nights`` are known."""
    average_inflow: float | None
    threshold: float | None
    """The larger of ``limit`` x the average inflow and ``SPREAD_FACTOR`` x ``spread``, m3/h."""
    spread: float | None
    """Standard deviation of a night's figure, m3/h: from the learnt nights' parts, or the
    nights' own when they differ more than chance allows (see ``_Track._reference``)."""


@dataclass(frozen=True, slots=True)
class _Reference:
    """What one figure of a night is judged against: the learnt nights' median and the margin."""

    baseline: float
    spread: float
    threshold: float


def _parse_clock(text: str) -> time:
    try:
        hours_text, minutes_text = text.split(":")
        return time(int(hours_text), int(minutes_text))
    except ValueError as err:
        raise NightFlowError(f"night window time {text!r} is not HH:MM") from err


class _Segment:
    """A stretch of the inflow held at one value: [start, end) seconds since the epoch."""

    __slots__ = ("end", "start", "value")

    def __init__(self, start: float, end: float, value: float) -> None:
        self.start = start
        self.end = end
        self.value = value


class _Track:
    """One alarm's series: the night being collected, the current day, what has been learnt."""

    def __init__(self, definition: AlarmDef, detector: NightFlowDetector) -> None:
        self.definition = definition
        self.detector = detector
        self.active = False
        self.minima: deque[NightFigure] = deque(maxlen=detector.baseline_nights)
        self.daily_means: deque[tuple[date, float]] = deque(maxlen=detector.baseline_nights)
        self.last: tuple[float, float] | None = None
        # The night being collected: its local date, window (epoch seconds), figure so far.
        self.night: date | None = None
        self.window_start = 0.0
        self.window_end = 0.0
        self.slot_s = 0.0
        self.night_minimum: float | None = None
        self.night_covered_s = 0.0
        self.booked_until = 0.0
        self.slot_integrals = [0.0] * SLOTS
        self.slot_covered = [0.0] * SLOTS
        self.looks_done = 0
        """Parts of tonight's window already judged together with the night before."""
        self.previous: NightFigure | None = None
        """The last closed night (learnt or not): its later parts join tonight's looks."""
        self.revision = 0
        """Counts changes of what ``state()`` carries across a restart (nights, days, alarm)."""
        self.activated_tonight = False
        self.segments: deque[_Segment] = deque()
        self.rolling_integral = 0.0
        self.rolling_covered_s = 0.0
        # The day being integrated for the average inflow.
        self.day: date | None = None
        self.day_integral = 0.0
        self.day_covered_s = 0.0

    # -- feeding ------------------------------------------------------------------------------

    def add(self, at: float, value: float) -> list[ConditionChange]:
        """Take one Good reading at ``at`` (epoch seconds)."""
        if self.night is None:
            self._open_night_for(at)
        last = self.last
        if last is not None and at <= last[0]:
            return []  # late or repeated: the series only moves forward
        if last is not None and at - last[0] <= self.detector.max_gap_s:
            # Booked before the night closes, so a stretch ending past the window's end
            # still counts for the night it belongs to.
            self._integrate(last[0], at, last[1])
        self.last = (at, value)
        return self.close_nights(at)

    def gap(self, at: float) -> None:
        """A Bad or missing reading at ``at``: the last value is no longer held."""
        last = self.last
        if last is not None and at > last[0]:
            self._integrate(last[0], min(at, last[0] + self.detector.max_gap_s), last[1])
            self.last = None

    def close_nights(self, now: float) -> list[ConditionChange]:
        """Close the night being collected if its window ended at or before ``now``."""
        if self.night is None:
            self._open_night_for(now)
            return []
        changes: list[ConditionChange] = []
        while self.looks_done < SLOTS - 1:
            boundary = self.window_start + (self.looks_done + 1) * self.slot_s
            if now < boundary:
                break
            # A look across two nights: the night before from this part on, tonight up to it.
            # A leak that began inside last night's window is whole in one of these looks
            # (at most one part short), and each closes within 24 h of such a start.
            self._hold_last_reading_to(boundary)
            self.looks_done += 1
            across = self._judge_across(self.looks_done, boundary)
            if across is not None:
                changes.append(across)
        if now < self.window_end:
            return changes
        self._hold_last_reading_to(self.window_end)
        change = self._close_night()
        if change is not None:
            changes.append(change)
        self._open_night_for(now)
        return changes

    def _hold_last_reading_to(self, moment: float) -> None:
        last = self.last
        if last is not None and last[0] < moment <= last[0] + self.detector.max_gap_s:
            # The last reading holds to ``moment`` (the day's share of that stretch is booked
            # when the next reading comes; the night's is not booked twice).
            self._add_to_night(last[0], moment, last[1])

    # -- integration --------------------------------------------------------------------------

    def _integrate(self, start: float, end: float, value: float) -> None:
        self._add_to_day(start, end, value)
        self._add_to_night(start, end, value)

    def _add_to_night(self, start: float, end: float, value: float) -> None:
        if self.night is None:
            return
        clipped_start = max(start, self.window_start, self.booked_until)
        clipped_end = min(end, self.window_end)
        if clipped_end <= clipped_start:
            return
        self.booked_until = clipped_end
        index = min(int((clipped_start - self.window_start) / self.slot_s), SLOTS - 1)
        cursor = clipped_start
        while cursor < clipped_end and index < SLOTS:
            slot_end = self.window_start + (index + 1) * self.slot_s
            part_end = clipped_end if index == SLOTS - 1 else min(clipped_end, slot_end)
            if part_end > cursor:
                self.slot_integrals[index] += (part_end - cursor) * value
                self.slot_covered[index] += part_end - cursor
            cursor = part_end
            index += 1
        self.segments.append(_Segment(clipped_start, clipped_end, value))
        length = clipped_end - clipped_start
        self.rolling_integral += length * value
        self.rolling_covered_s += length
        self.night_covered_s += length
        self._evaluate_rolling_mean(clipped_end)

    def _evaluate_rolling_mean(self, at: float) -> None:
        smoothing = min(self.detector.smoothing_s, self.window_end - self.window_start)
        if at - self.window_start < smoothing - 1e-6:
            return
        low = at - smoothing
        while self.segments and self.segments[0].end <= low:
            dropped = self.segments.popleft()
            length = dropped.end - dropped.start
            self.rolling_integral -= length * dropped.value
            self.rolling_covered_s -= length
        integral = self.rolling_integral
        covered = self.rolling_covered_s
        if self.segments and self.segments[0].start < low:
            first = self.segments[0]
            integral -= (low - first.start) * first.value
            covered -= low - first.start
        if covered < ROLLING_MEAN_MIN_COVERAGE * smoothing:
            return
        mean = integral / covered
        if self.night_minimum is None or mean < self.night_minimum:
            self.night_minimum = mean

    def _add_to_day(self, start: float, end: float, value: float) -> None:
        # A stretch is booked on the local day it starts: at most ``max_gap_s`` lands on the
        # wrong side of midnight, nothing against a day's average.
        day = self.detector.local_date(start)
        if self.day != day:
            self._close_day()
            self.day = day
        self.day_integral += (end - start) * value
        self.day_covered_s += end - start

    def _close_day(self) -> None:
        if self.day is None:
            return
        length = self.detector.day_length_s(self.day)
        if self.day_covered_s >= DAY_MIN_COVERAGE * length and self.day_covered_s > 0:
            self.daily_means.append((self.day, self.day_integral / self.day_covered_s))
            self.revision += 1
        self.day = None
        self.day_integral = 0.0
        self.day_covered_s = 0.0

    # -- nights -------------------------------------------------------------------------------

    def _open_night_for(self, now: float) -> None:
        night = self.detector.local_date(now)
        start, end = self.detector.window_of(night)
        if now >= end:
            night = night + timedelta(days=1)
            start, end = self.detector.window_of(night)
        self.night = night
        self.window_start = start
        self.window_end = end
        # Parts in elapsed time: on DST nights every part shrinks or grows alike.
        self.slot_s = (end - start) / SLOTS
        self.night_minimum = None
        self.night_covered_s = 0.0
        self.booked_until = start
        self.slot_integrals = [0.0] * SLOTS
        self.slot_covered = [0.0] * SLOTS
        self.looks_done = 0
        self.activated_tonight = False
        self.segments.clear()
        self.rolling_integral = 0.0
        self.rolling_covered_s = 0.0

    def _slot_means(self) -> tuple[float | None, ...]:
        """Tonight's mean of each part of the window (None: too little data in it)."""
        need = self.detector.min_coverage * self.slot_s
        return tuple(
            integral / covered if covered > 0 and covered >= need else None
            for integral, covered in zip(self.slot_integrals, self.slot_covered, strict=True)
        )

    def _judge_across(self, parts: int, at: float) -> ConditionChange | None:
        """Judge the night before from part ``parts`` on with tonight's first ``parts``."""
        previous = self.previous
        if self.active or self.night is None or previous is None or not previous.slots:
            return None
        if previous.night != self.night - timedelta(days=1):
            return None
        before_s = self.detector.window_length_s(previous.night) / SLOTS
        integral = sum(self.slot_integrals[:parts])
        covered = sum(self.slot_covered[:parts])
        for mean in previous.slots[parts:]:
            if mean is not None:
                integral += mean * before_s
                covered += before_s
        whole = (SLOTS - parts) * before_s + parts * self.slot_s
        reference = self._reference()
        if covered <= 0 or covered < self.detector.min_coverage * whole or reference is None:
            return None
        figure = integral / covered
        if figure - reference.baseline <= reference.threshold:
            return None
        self.active = True
        self.activated_tonight = True
        self.revision += 1
        return self._change(True, figure, reference, at, "the last four hours of")

    def _close_night(self) -> ConditionChange | None:
        night = self.night
        minimum = self.night_minimum
        required = self.detector.min_coverage * (self.window_end - self.window_start)
        if night is None or minimum is None or self.night_covered_s < required:
            self.previous = None
            return None  # too little data: the night tells nothing
        figure = NightFigure(night, minimum, self._slot_means())
        self.previous = figure
        self.revision += 1
        change: ConditionChange | None = None
        whole = self._reference()
        if whole is not None:
            excess = minimum - whole.baseline
            average = self.average_inflow() or 0.0
            clear_at = whole.threshold - self.definition.deadband * average
            if not self.active and excess > whole.threshold:
                self.active = True
                change = self._change(True, minimum, whole, self.window_end, "")
            elif self.active and not self.activated_tonight and excess <= clear_at:
                self.active = False
                change = self._change(False, minimum, whole, self.window_end, "")
        if not self.active:
            self.minima.append(figure)
        return change

    def _change(
        self, active: bool, value: float, reference: _Reference, at: float, part: str
    ) -> ConditionChange:
        night = self.night.isoformat() if self.night is not None else "?"
        what = f"night flow over {part} the window" if part else "minimum night flow"
        excess = value - reference.baseline
        if active:
            message = (
                f"{what} {value:.1f} m3/h on the night of {night} is {excess:.1f} m3/h above "
                f"its baseline {reference.baseline:.1f} m3/h (limit {reference.threshold:.1f} "
                "m3/h): a possible leak"
            )
        else:
            message = (
                f"{what} {value:.1f} m3/h on the night of {night} is back within "
                f"{reference.threshold:.1f} m3/h of its baseline {reference.baseline:.1f} m3/h"
            )
        return ConditionChange(
            alarm=self.definition.name,
            time=datetime.fromtimestamp(at, UTC),
            active=active,
            suppressed=None,
            value=round(value, 3),
            message=message,
            reason=NIGHT_FLOW_REASON,
        )

    def average_inflow(self) -> float | None:
        """The mean of the learnt days' mean inflows, m3/h (None before a whole day)."""
        if not self.daily_means:
            return None
        return statistics.fmean(mean for _, mean in self.daily_means)

    def _reference(self) -> _Reference | None:
        """The baseline and margin of a night figure (or a look across two nights).

        The baseline is the median of the learnt nights. The margin is the larger of
        ``limit`` x the average inflow and ``SPREAD_FACTOR`` x the spread of a night figure:
        estimated from the learnt nights' parts (``within_night_spread``), precise because
        it rests on ``SLOTS`` values a night, unless the nights' own standard deviation is
        larger than chance allows (``COMMON_CAUSE_Z``): a cause common to whole nights that
        the parts cannot see.
        """
        learnt = [figure.minimum for figure in self.minima]
        average = self.average_inflow()
        if len(learnt) < self.detector.baseline_nights or average is None:
            return None
        baseline = statistics.median(learnt)
        # The nights' own standard deviation without the night farthest from the median: one
        # odd night (a burst being repaired, a festival) neither moves the baseline nor
        # widens the margin.
        kept = sorted(learnt, key=lambda value: abs(value - baseline))[:-1]
        between = (
            statistics.stdev(kept)
            if len(kept) > 1
            else MAD_TO_SD * statistics.median(abs(value - baseline) for value in learnt)
        )
        within = within_night_spread([figure.slots for figure in self.minima])
        spread = between
        if within is not None and between <= _chance_ratio(len(kept) - 1) * within:
            spread = within
        floor = (self.definition.limit or 0.0) * average
        return _Reference(baseline, spread, max(floor, SPREAD_FACTOR * spread))

    def status(self) -> NightFlowStatus:
        """The learnt nights, baseline, average inflow and threshold of this alarm."""
        reference = self._reference()
        nights = tuple(self.minima)
        baseline = None
        if len(nights) >= self.detector.baseline_nights:
            baseline = statistics.median(figure.minimum for figure in nights)
        return NightFlowStatus(
            alarm=self.definition.name,
            tag=self.definition.tag,
            active=self.active,
            nights=nights,
            baseline=baseline,
            average_inflow=self.average_inflow(),
            threshold=reference.threshold if reference is not None else None,
            spread=reference.spread if reference is not None else None,
        )


class NightFlowDetector:
    """Minimum-night-flow leak detection for ``NIGHT_FLOW`` alarms (one per metering area)."""

    def __init__(
        self,
        definitions: Sequence[AlarmDef],
        site: SiteLocation,
        *,
        window: tuple[str, str] = DEFAULT_WINDOW,
        baseline_nights: int = 7,
        smoothing_s: float | None = None,
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
        if baseline_nights < 1:
            raise NightFlowError(f"baseline_nights must be at least 1, got {baseline_nights}")
        if not 0.0 < min_coverage <= 1.0:
            raise NightFlowError(f"min_coverage must be in (0, 1], got {min_coverage}")
        if not ((smoothing_s is None or smoothing_s > 0) and max_gap_s > 0):
            raise NightFlowError("smoothing and max_gap must be positive seconds")
        self.baseline_nights = baseline_nights
        self.smoothing_s = smoothing_s if smoothing_s is not None else math.inf
        """Span of the rolling mean; None (infinite) takes the whole window."""
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

    def revision(self) -> int:
        """A number that changes whenever what ``state()`` carries changes (a night closed, a
        day's mean learnt, an alarm set or cleared, a relearn or restore): save then."""
        return sum(track.revision for track in self._tracks.values())

    def day_length_s(self, day: date) -> float:
        """Seconds in a local day (23 h or 25 h on DST change days)."""
        start = datetime.combine(day, time(0), tzinfo=self.zone)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        return end.timestamp() - start.timestamp()

    # -- the engine's interface ---------------------------------------------------------------

    def feed(self, samples: Sequence[Sample], now: datetime) -> list[ConditionChange]:
        """Take samples (any tags: unwatched ones are skipped) and close nights ended by
        ``now``; return the alarms whose condition changed."""
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
                    track.gap(at)
        changes.extend(self.advance(now))
        return changes

    def advance(self, now: datetime) -> list[ConditionChange]:
        """Close every night whose window ended by ``now`` (also without new samples)."""
        at = _epoch(now)
        changes: list[ConditionChange] = []
        for track in self._tracks.values():
            changes.extend(track.close_nights(at))
        return changes

    def next_due(self) -> datetime | None:
        """When the next night closes (call ``advance`` then), or None before any feed."""
        ends = [track.window_end for track in self._tracks.values() if track.night is not None]
        return datetime.fromtimestamp(min(ends), UTC) if ends else None

    def alarms(self) -> list[str]:
        """The names of the night-flow alarms this detector watches."""
        return list(self._tracks)

    def status(self, alarm: str) -> NightFlowStatus:
        """What the detector has learnt for one alarm (KeyError: not a night-flow alarm here)."""
        return self._tracks[alarm].status()

    def relearn(self, alarm: str, now: datetime) -> list[ConditionChange]:
        """Forget an alarm's baseline (after a real, permanent change of the area's night
        use); an active alarm clears, and nights are learnt again from the next one."""
        track = self._tracks[alarm]
        track.minima.clear()
        track.revision += 1
        if not track.active:
            return []
        track.active = False
        return [
            ConditionChange(
                alarm=alarm,
                time=now,
                active=False,
                suppressed=None,
                value=None,
                message="night-flow baseline relearnt: the alarm waits for new nights",
                reason=NIGHT_FLOW_REASON,
            )
        ]

    # -- persistence --------------------------------------------------------------------------

    def state(self) -> dict[str, object]:
        """What has been learnt, as a JSON-able document (``restore`` takes it back)."""
        alarms: dict[str, object] = {}
        for name, track in self._tracks.items():
            alarms[name] = {
                "tag": track.definition.tag,
                "active": track.active,
                "nights": [_night_row(f) for f in track.minima],
                "previous": _night_row(track.previous) if track.previous is not None else None,
                "daily_means": [[d.isoformat(), mean] for d, mean in track.daily_means],
                "day": track.day.isoformat() if track.day is not None else None,
                "day_integral": track.day_integral,
                "day_covered_s": track.day_covered_s,
            }
        return {"version": STATE_VERSION, "alarms": alarms}

    def restore(self, state: Mapping[str, object]) -> None:
        """Take back a ``state()`` document: alarms no longer defined, or now watching another
        tag, are dropped; a malformed document raises ``NightFlowStateError`` and changes
        nothing."""
        if state.get("version") not in (1, 2, STATE_VERSION):
            raise NightFlowStateError(
                f"night-flow state version {state.get('version')!r} is not {STATE_VERSION}"
            )
        alarms = state.get("alarms")
        if not isinstance(alarms, Mapping):
            raise NightFlowStateError("night-flow state has no 'alarms' mapping")
        parsed: list[tuple[_Track, _Restored]] = []
        for name, entry in alarms.items():
            track = self._tracks.get(str(name))
            if track is None:
                continue
            restored = _parse_entry(str(name), entry)
            if restored.tag != track.definition.tag:
                continue  # another meter: what was learnt does not apply
            parsed.append((track, restored))
        for track, restored in parsed:
            track.active = restored.active
            track.minima.clear()
            track.minima.extend(restored.nights[-self.baseline_nights :])
            track.daily_means.clear()
            track.daily_means.extend(restored.daily_means[-self.baseline_nights :])
            track.day = restored.day
            track.day_integral = restored.day_integral
            track.day_covered_s = restored.day_covered_s
            track.previous = restored.previous
            track.revision += 1


@dataclass(frozen=True, slots=True)
class _Restored:
    tag: str
    active: bool
    nights: list[NightFigure]
    daily_means: list[tuple[date, float]]
    day: date | None
    day_integral: float
    day_covered_s: float
    previous: NightFigure | None


def _parse_entry(name: str, entry: object) -> _Restored:
    def fail(what: str) -> NightFlowStateError:
        return NightFlowStateError(f"night-flow state of {name}: {what}")

    if not isinstance(entry, Mapping):
        raise fail("not a mapping")
    tag = entry.get("tag")
    active = entry.get("active")
    if not isinstance(tag, str) or not isinstance(active, bool):
        raise fail("'tag' must be text and 'active' true or false")
    try:
        nights = [_night(item) for item in _rows(entry, "nights", (2, 3, 4))]
        previous_row = entry.get("previous")
        previous = None
        if previous_row is not None:
            if not (isinstance(previous_row, list) and len(previous_row) == 3):
                raise TypeError("'previous' must be [date, number, parts] or null")
            previous = _night(previous_row)
        means = [
            (date.fromisoformat(str(row[0])), _finite(row[1]))
            for row in _rows(entry, "daily_means", (2,))
        ]
        day_text = entry.get("day")
        day = date.fromisoformat(day_text) if isinstance(day_text, str) else None
        if day_text is not None and day is None:
            raise ValueError("'day' must be a date or null")
        integral = _finite(entry.get("day_integral", 0.0))
        covered = _finite(entry.get("day_covered_s", 0.0))
    except (TypeError, ValueError) as err:
        raise fail(str(err)) from err
    figures = [*nights, previous] if previous is not None else nights
    flows = [v for f in figures for v in (f.minimum, *f.slots) if v is not None]
    if covered < 0 or any(v < 0 for v in flows) or any(m < 0 for _, m in means):
        raise fail("flows and durations must not be negative")
    return _Restored(tag, active, nights, means, day, integral, covered, previous)


def _rows(entry: Mapping[str, object], key: str, lengths: tuple[int, ...]) -> list[list[object]]:
    items = entry.get(key, [])
    if not isinstance(items, list):
        raise TypeError(f"'{key}' must be a list")
    rows: list[list[object]] = []
    for item in items:
        if not (isinstance(item, list) and len(item) in lengths and isinstance(item[0], str)):
            raise TypeError(f"'{key}' entries must be [date, number, ...] of {lengths} items")
        rows.append(item)
    return rows


def _night_row(figure: NightFigure) -> list[object]:
    """A night as saved: [date, figure, [mean of each part or null, ...]]."""
    return [figure.night.isoformat(), figure.minimum, list(figure.slots)]


def _night(row: list[object]) -> NightFigure:
    """A saved night: [date, figure, parts] (version 3); [date, figure] (version 1) and
    [date, figure, first half, second half] (version 2) keep their figure, not their parts."""
    night = date.fromisoformat(str(row[0]))
    if len(row) != 3:
        return NightFigure(night, _finite(row[1]))
    parts = row[2]
    if not isinstance(parts, list) or len(parts) not in (0, SLOTS):
        raise TypeError(f"a night's parts must be a list of {SLOTS} numbers or nulls")
    slots = tuple(None if v is None else _finite(v) for v in parts)
    return NightFigure(night, _finite(row[1]), slots)


def within_night_spread(nights: Sequence[Sequence[float | None]]) -> float | None:
    """The standard deviation of a night's mean flow, m3/h, estimated from the parts of the
    learnt nights (None: fewer than 3 nights with every part known).

    Each part's residual is what is left after its night's mean and the part's mean over the
    nights are taken out (two-way analysis of variance), so the night's shape (demand falls
    towards 03:00) and its level do not count. A night's mean averages ``SLOTS`` parts, so its
    variance is the residuals' variance over ``SLOTS``, raised by the correlation of
    neighbouring parts (demand noise lasting longer than a part); a negative correlation is
    taken as none, which keeps the estimate on the safe side.
    """
    rows = [list(parts) for parts in nights if len(parts) == SLOTS and None not in parts]
    if len(rows) < 3:
        return None
    values = [[float(v) for v in row if v is not None] for row in rows]
    count = len(values)
    grand = statistics.fmean(v for row in values for v in row)
    row_means = [statistics.fmean(row) for row in values]
    column_means = [statistics.fmean(row[k] for row in values) for k in range(SLOTS)]
    residuals = [
        [row[k] - row_means[i] - column_means[k] + grand for k in range(SLOTS)]
        for i, row in enumerate(values)
    ]
    freedom = (count - 1) * (SLOTS - 1)
    variance = sum(r * r for row in residuals for r in row) / freedom
    lag = sum(row[k] * row[k + 1] for row in residuals for k in range(SLOTS - 1)) / freedom
    night_variance = (variance + 2.0 * max(lag, 0.0) * (SLOTS - 1) / SLOTS) / SLOTS
    return math.sqrt(max(night_variance, 0.0))


def _chance_ratio(freedom: int) -> float:
    """How many times the true standard deviation a sample one of ``freedom`` degrees exceeds
    by chance once in a hundred: sqrt(chi-square 99 % quantile / freedom), Wilson-Hilferty."""
    if freedom < 1:
        return math.inf
    step = 2.0 / (9.0 * freedom)
    return math.sqrt((1.0 - step + COMMON_CAUSE_Z * math.sqrt(step)) ** 3)


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
    the detector's learning changed since the last save (every night's close), else None.
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
