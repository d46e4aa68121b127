"""``controlcenter bench leaks``: how soon night-flow leak detection finds leaks of each size.

The demo city's water network (``plc_sim.water.network.WaterNetwork``, its districts' daily
demand with seeded, correlated noise) runs in-process on a virtual clock, alone: leaks touch
nothing else. Every ``STEP_S`` each district's inflow is handed as a Sample to the detector the
center runs (``alarms.leaks.NightFlowDetector``), with one ``NIGHT_FLOW`` alarm per district as
the demo site engineers them (``LIMIT``, a share of the area's average inflow).

Runs, each ``trials`` times from its own seed:

- a leak-free run: ``BASELINE_DAYS`` days to learn the profiles, then ``days`` days in which
  every alarm is a false alarm;
- per leak size (``LEAK_SIZES_PCT`` of each district's average demand): after the profiles are
  learnt, a leak starts in *every* district at its own random time (seeded, uniform over the
  next 24 h), and runs for ``days`` days; the districts draw from shared reservoirs that never
  run short, so four districts make four independent trials. Measured per leak: hours from its
  start to the alarm and whether it was found by the end of the first night whose whole window
  followed its start. An alarm before a district's leak starts is a false alarm.

Targets: every 5 % leak found within 24 simulated hours of its start, also one that began
inside the night window (counted apart); no false alarm in the leak-free runs.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from alarms.leaks import DEFAULT_WINDOW, NightFlowDetector
from controlcenter.automation import AlarmDef, AlarmKind, AlarmPriority
from controlcenter.bench.outcomes import SITE
from controlcenter.model import Quality, Sample
from plc_sim.water.network import WaterNetwork
from plc_sim.weather import Weather

START_LOCAL = datetime(2025, 1, 12, 12, 0, tzinfo=ZoneInfo(SITE.timezone))
"""A Sunday noon in winter, as ``bench outcomes`` starts."""
STEP_S = 60.0
"""Simulated seconds per sample: the network integrates any step exactly (30 s sub-steps);
a minute resolves the detector's quarter-hours well and keeps a simulated week near one
second."""
BASELINE_DAYS = 7
WINDOW = DEFAULT_WINDOW
"""The detector's default night window, as the center runs it."""
LIMIT = 0.03
"""The demo's night-flow limit: 3 % of the area's average inflow (see docs/alarms.md)."""
LEAK_SIZES_PCT = (2.0, 5.0, 10.0, 20.0)
DETECTION_TARGET_PCT = 5.0
DETECTION_TARGET_H = 24.0


class LeaksBenchError(Exception):
    """The bench could not run: a bad argument."""


@dataclass(slots=True)
class _RunResult:
    """One run: per district, when its leak started and when its alarm first went active."""

    leak_start: dict[str, datetime | None] = field(default_factory=dict)
    first_alarm: dict[str, datetime] = field(default_factory=dict)
    false_alarms: int = 0
    area_nights: int = 0


def run_leaks_bench(
    days: float = 7.0,
    seed: int = 1,
    *,
    trials: int = 3,
    limit: float = LIMIT,
    sizes_pct: Sequence[float] = LEAK_SIZES_PCT,
    baseline_days: int = BASELINE_DAYS,
) -> dict[str, object]:
    """Run the leak-free and leak runs (``trials`` seeds from ``seed`` each) and return the
    figures, with the targets and pass flags, as one JSON-ready dict."""
    if not days > 0:
        raise LeaksBenchError(f"days must be positive, got {days}")
    if trials < 1 or baseline_days < 3:
        raise LeaksBenchError("trials must be at least 1 and baseline_days at least 3")
    if any(not 0.0 < size < 100.0 for size in sizes_pct):
        raise LeaksBenchError(f"leak sizes must be shares in (0, 100) %, got {list(sizes_pct)}")
    options = _Options(days, limit, baseline_days)
    started = time.perf_counter()
    leak_free_false = 0
    leak_free_nights = 0
    for trial in range(trials):
        result = _run(options, seed + trial, None)
        leak_free_false += result.false_alarms
        leak_free_nights += result.area_nights
    sizes: list[dict[str, object]] = []
    target_met = True
    for size in sizes_pct:
        hours: list[float] = []
        first_night = 0
        in_window = 0
        in_window_within = 0
        missed = 0
        false_alarms = 0
        leaks = 0
        for trial in range(trials):
            result = _run(options, seed + trial, size)
            false_alarms += result.false_alarms
            for area, start in result.leak_start.items():
                if start is None:
                    continue
                leaks += 1
                found = result.first_alarm.get(area)
                if found is None:
                    missed += 1
                    continue
                hours.append((found - start).total_seconds() / 3600.0)
                if found <= _first_whole_night_end(start):
                    first_night += 1
                if _inside_window(start):
                    in_window += 1
                    in_window_within += hours[-1] <= DETECTION_TARGET_H
        within = sum(1 for h in hours if h <= DETECTION_TARGET_H)
        entry: dict[str, object] = {
            "size_pct": size,
            "leaks": leaks,
            "found": len(hours),
            "missed": missed,
            "found_first_night": first_night,
            "found_within_24h": within,
            "started_inside_window": in_window,
            "started_inside_window_found_within_24h": in_window_within,
            "detection_h_median": round(statistics.median(hours), 1) if hours else None,
            "detection_h_max": round(max(hours), 1) if hours else None,
            "false_alarms_before_leak": false_alarms,
        }
        if size == DETECTION_TARGET_PCT:
            passed = missed == 0 and within == leaks
            entry["target"] = "every leak found within 24 h"
            entry["pass"] = passed
            target_met = target_met and passed
        sizes.append(entry)
    leak_free_pass = leak_free_false == 0
    return {
        "days": days,
        "seed": seed,
        "trials": trials,
        "step_s": STEP_S,
        "start": START_LOCAL.isoformat(),
        "window": "-".join(WINDOW),
        "baseline_days": baseline_days,
        "limit_share": limit,
        "leak_free": {
            "area_nights": leak_free_nights,
            "false_alarms": leak_free_false,
            "target": 0,
            "pass": leak_free_pass,
        },
        "leaks": sizes,
        "pass": leak_free_pass and target_met,
        "wall_s": round(time.perf_counter() - started, 2),
    }


def _inside_window(start: datetime) -> bool:
    """Whether a leak began inside a night window (only part of that night saw it)."""
    zone = ZoneInfo(SITE.timezone)
    local = start.astimezone(zone)
    begin_h, begin_m = (int(part) for part in WINDOW[0].split(":"))
    end_h, end_m = (int(part) for part in WINDOW[1].split(":"))
    day = local.date()
    begin = datetime(day.year, day.month, day.day, begin_h, begin_m, tzinfo=zone)
    end = datetime(day.year, day.month, day.day, end_h, end_m, tzinfo=zone)
    return begin < local < end


def _first_whole_night_end(start: datetime) -> datetime:
    """The end of the first night window that starts at or after ``start``."""
    zone = ZoneInfo(SITE.timezone)
    local = start.astimezone(zone)
    begin_h, begin_m = (int(part) for part in WINDOW[0].split(":"))
    end_h, end_m = (int(part) for part in WINDOW[1].split(":"))
    night = local.date()
    while True:
        window_start = datetime(night.year, night.month, night.day, begin_h, begin_m, tzinfo=zone)
        if window_start >= local:
            window_end = datetime(night.year, night.month, night.day, end_h, end_m, tzinfo=zone)
            return window_end.astimezone(UTC)
        night += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _Options:
    days: float
    limit: float
    baseline_days: int


def _run(options: _Options, seed: int, leak_pct: float | None) -> _RunResult:
    zone = ZoneInfo(SITE.timezone)
    network = WaterNetwork(seed=seed, tz=zone)
    weather = Weather(SITE.latitude, SITE.longitude, seed=seed)
    areas = [f"water.dma{index + 1}" for index in range(len(network.districts))]
    definitions = [
        AlarmDef(
            name=f"{area}.night_flow",
            kind=AlarmKind.NIGHT_FLOW,
            priority=AlarmPriority.MEDIUM,
            tag=f"{area}.inflow",
            limit=options.limit,
            area="water",
        )
        for area in areas
    ]
    detector = NightFlowDetector(
        definitions,
        SITE,
        window=WINDOW,
        baseline_days=options.baseline_days,
    )
    now = START_LOCAL.astimezone(UTC)
    learnt = _ready(options.baseline_days)
    rng = random.Random(seed * 104_729 + int((leak_pct or 0.0) * 100))
    result = _RunResult()
    leak_flows: dict[int, float] = {}
    for index, area in enumerate(areas):
        if leak_pct is None:
            result.leak_start[area] = None
            continue
        result.leak_start[area] = learnt + timedelta(seconds=rng.uniform(0.0, 86_400.0))
        leak_flows[index] = network.districts[index].mean_demand_m3h * leak_pct / 100.0
    end = learnt + timedelta(days=options.days + (1.0 if leak_pct is not None else 0.0))
    good = Quality.good()
    weather.step(0.0, now)
    step = timedelta(seconds=STEP_S)
    while now < end:
        now += step
        state = weather.step(STEP_S, now)
        for index, area in enumerate(areas):
            start = result.leak_start[area]
            if start is not None and now >= start and network.districts[index].leak_m3h == 0:
                network.set_leak(index + 1, leak_flows[index])
        network.step(STEP_S, now, state)
        samples = [
            Sample(f"{area}.inflow", district.inflow_m3h, good, now, now)
            for area, district in zip(areas, network.districts, strict=True)
        ]
        for change in detector.feed(samples, now):
            if not change.active:
                continue
            area = change.alarm.removesuffix(".night_flow")
            start = result.leak_start[area]
            if start is None or change.time < start:
                result.false_alarms += 1
            elif area not in result.first_alarm:
                result.first_alarm[area] = change.time
    if leak_pct is None:
        result.area_nights = _count_nights(learnt, now) * len(areas)
    return result


def _ready(baseline_days: int) -> datetime:
    """When the detector judges: the end of the last of its first ``baseline_days`` whole local
    days (the first one starts at the first local midnight after the start)."""
    zone = ZoneInfo(SITE.timezone)
    first = START_LOCAL.astimezone(zone).date() + timedelta(days=1)
    last = first + timedelta(days=baseline_days)
    return datetime(last.year, last.month, last.day, tzinfo=zone).astimezone(UTC)


def _count_nights(learnt: datetime, now: datetime) -> int:
    """Whole night windows closed after ``learnt`` and by ``now``."""
    nights = 0
    end = _first_whole_night_end(learnt)
    while end <= now:
        nights += 1
        end = _first_whole_night_end(end)
    return nights
