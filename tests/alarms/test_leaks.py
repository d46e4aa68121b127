"""The minimum-night-flow leak detector on controlled inflow series (a virtual clock)."""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alarms.conditions import ConditionChange
from alarms.leaks import (
    SLOTS,
    NightFlowDetector,
    NightFlowError,
    NightFlowStateError,
    within_night_spread,
)
from controlcenter.automation import AlarmDef, AlarmKind, SiteLocation
from controlcenter.model import Quality, Sample, Substatus

SITE = SiteLocation(52.37, 4.90, "Europe/Amsterdam")
ZONE = ZoneInfo(SITE.timezone)
TAG = "water.dma1.inflow"
ALARM = AlarmDef(name="water.dma1.night_flow", kind=AlarmKind.NIGHT_FLOW, tag=TAG, limit=0.05)
STEP = timedelta(minutes=1)

Profile = Callable[[datetime], float]


def flat_profile(night: float = 40.0, day: float = 100.0) -> Profile:
    """Inflow: ``night`` between 00:00 and 05:00 local time, ``day`` otherwise."""

    def flow(at: datetime) -> float:
        return night if at.astimezone(ZONE).hour < 5 else day

    return flow


class Feeder:
    """Feeds a detector one reading a minute from a profile, an hour per ``feed`` call."""

    def __init__(self, detector: NightFlowDetector, start: datetime) -> None:
        self.detector = detector
        self.now = start.astimezone(UTC)  # UTC arithmetic: local wall-clock steps skip DST hours
        self.changes: list[ConditionChange] = []

    def run(
        self, until: datetime, profile: Profile, quality: Quality | None = None
    ) -> list[ConditionChange]:
        found: list[ConditionChange] = []
        while self.now < until.astimezone(UTC):
            batch = []
            hour_end = min(self.now + timedelta(hours=1), until.astimezone(UTC))
            while self.now < hour_end:
                self.now += STEP
                if quality is None:
                    batch.append(Sample(TAG, profile(self.now), Quality.good(), self.now, self.now))
                else:
                    batch.append(Sample(TAG, None, quality, self.now, self.now))
            found.extend(self.detector.feed(batch, self.now))
        self.changes.extend(found)
        return found


def local(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZONE)


def detector(**options: object) -> NightFlowDetector:
    return NightFlowDetector([ALARM], SITE, baseline_nights=3, **options)  # type: ignore[arg-type]


def test_no_alarm_until_the_baseline_is_learnt_then_a_step_leak_alarms_the_next_night() -> None:
    watcher = detector()
    feeder = Feeder(watcher, local(2025, 1, 12))
    # A large jump on the second night: no baseline yet, so no alarm, and it is learnt.
    assert feeder.run(local(2025, 1, 13, 12), flat_profile()) == []
    assert feeder.run(local(2025, 1, 14, 12), flat_profile(night=60.0)) == []
    assert feeder.run(local(2025, 1, 15, 12), flat_profile()) == []
    status = watcher.status(ALARM.name)
    assert [figure.night for figure in status.nights] == [
        date(2025, 1, 13),
        date(2025, 1, 14),
        date(2025, 1, 15),
    ]
    assert status.baseline == pytest.approx(40.0)
    assert status.average_inflow is not None and 85.0 < status.average_inflow < 95.0
    # A leak of 5.5 m3/h (about 6 % of the average inflow, limit 5 %, 4.5 m3/h) from noon:
    # the looks across two nights hold ever more of it; 14 of 16 parts carry 4.8 m3/h, found
    # at 04:00, before the window ends.
    leaking = flat_profile(night=45.5, day=105.5)
    changes = feeder.run(local(2025, 1, 16, 12), leaking)
    assert len(changes) == 1
    change = changes[0]
    assert change.alarm == ALARM.name and change.active is True and change.suppressed is None
    assert change.time == local(2025, 1, 16, 4, 0).astimezone(UTC)
    assert change.value == pytest.approx(40.0 + 5.5 * 14 / 16, abs=1e-3)
    assert "last four hours" in change.message and "above its baseline" in change.message
    # Still leaking: nothing new, and the leak's nights are not learnt.
    assert feeder.run(local(2025, 1, 18, 12), leaking) == []
    assert watcher.status(ALARM.name).baseline == pytest.approx(40.0)
    # Repaired: the next night clears it.
    cleared = feeder.run(local(2025, 1, 19, 12), flat_profile())
    assert [(c.active, c.time) for c in cleared] == [
        (False, local(2025, 1, 19, 4, 30).astimezone(UTC))
    ]


def test_a_whole_night_look_alarms_on_a_leak_there_when_no_look_across_could() -> None:
    feeder = Feeder(detector(), local(2025, 1, 12))
    feeder.run(local(2025, 1, 15, 12), flat_profile())
    # The meter is down through the night before: no look across two nights is possible.
    bad = Quality.bad(Substatus.COMM_FAILURE, "no reply")
    feeder.run(local(2025, 1, 16, 12), flat_profile(), quality=bad)
    changes = feeder.run(local(2025, 1, 17, 12), flat_profile(night=48.0, day=108.0))
    assert [(c.active, c.time) for c in changes] == [
        (True, local(2025, 1, 17, 4, 30).astimezone(UTC))
    ]
    assert changes[0].value == pytest.approx(48.0) and "minimum night flow" in changes[0].message


def test_a_large_leak_is_found_inside_the_window_by_a_look_across_two_nights() -> None:
    feeder = Feeder(detector(), local(2025, 1, 12))
    feeder.run(local(2025, 1, 15, 12), flat_profile())
    changes = feeder.run(local(2025, 1, 16, 12), flat_profile(night=48.0, day=108.0))
    # 8 m3/h against a limit of 4.4 m3/h: 9 of the last 16 parts carry 4.5 m3/h, at 02:45.
    assert [(c.active, c.time) for c in changes] == [
        (True, local(2025, 1, 16, 2, 45).astimezone(UTC))
    ]
    assert changes[0].value == pytest.approx(40.0 + 8.0 * 9 / 16)


def leak_from(start: datetime, flow: float, base: Profile) -> Profile:
    """``base`` plus ``flow`` m3/h from ``start`` on."""
    return lambda at: base(at) + (flow if at >= start else 0.0)


def test_a_leak_beginning_late_in_the_window_is_found_within_24_hours() -> None:
    # 8 m3/h from 04:00 (the window's last half hour): too little of that night to judge; the
    # next night's looks join it to the night before: at 02:15 they hold 9 of 16 parts.
    feeder = Feeder(detector(), local(2025, 1, 12))
    feeder.run(local(2025, 1, 15, 12), flat_profile())
    start = local(2025, 1, 16, 4)
    changes = feeder.run(local(2025, 1, 17, 12), leak_from(start, 8.0, flat_profile()))
    assert [(c.active, c.time) for c in changes] == [
        (True, local(2025, 1, 17, 2, 15).astimezone(UTC))
    ]
    assert changes[0].time - start.astimezone(UTC) <= timedelta(hours=24)


def test_a_leak_beginning_in_the_middle_of_the_window_is_found_within_24_hours() -> None:
    # 7 m3/h from 02:30: that night's whole window holds 3.5 m3/h, under the 4.4 m3/h limit;
    # the next night's looks join its second half: at 01:15 ten of 16 parts carry 4.4 m3/h.
    feeder = Feeder(detector(), local(2025, 1, 12))
    feeder.run(local(2025, 1, 15, 12), flat_profile())
    start = local(2025, 1, 16, 2, 30)
    assert feeder.run(local(2025, 1, 16, 12), leak_from(start, 7.0, flat_profile())) == []
    changes = feeder.run(local(2025, 1, 17, 12), leak_from(start, 7.0, flat_profile()))
    assert [(c.active, c.time) for c in changes] == [
        (True, local(2025, 1, 17, 1, 15).astimezone(UTC))
    ]
    assert changes[0].time - start.astimezone(UTC) <= timedelta(hours=24)
    assert "last four hours" in changes[0].message


def test_a_district_with_a_wide_night_to_night_spread_gets_a_wider_margin() -> None:
    nights = iter([40.0, 37.0, 43.0, 40.0, 46.0])  # by local date, from the 12th

    def spread_profile() -> Profile:
        levels: dict[date, float] = {}

        def flow(at: datetime) -> float:
            day = at.astimezone(ZONE).date()
            if day not in levels:
                levels[day] = next(nights, 40.0)
            return flat_profile(night=levels[day])(at)

        return flow

    watcher = detector()
    feeder = Feeder(watcher, local(2025, 1, 12, 12))
    profile = spread_profile()
    feeder.run(local(2025, 1, 15, 12), profile)
    status = watcher.status(ALARM.name)
    assert status.spread is not None and status.threshold is not None
    assert status.average_inflow is not None
    # Learnt 37, 43, 40 with flat nights (no within-night spread): their standard deviation
    # without the farthest night (43) is the spread, 3 x 2.1 = 6.4 m3/h beats 5 % x ~87.
    assert status.spread == pytest.approx(statistics.stdev([40.0, 37.0]))
    assert status.threshold == pytest.approx(3.0 * statistics.stdev([40.0, 37.0]))
    assert status.threshold > 0.05 * status.average_inflow
    # A night 6 m3/h up would pass the bare 5 % limit but not this district's own spread.
    assert feeder.run(local(2025, 1, 20, 12), profile) == []


def test_a_leak_below_the_limit_does_not_alarm() -> None:
    feeder = Feeder(detector(), local(2025, 1, 12))
    feeder.run(local(2025, 1, 16, 12), flat_profile())
    # 3 m3/h: about 3 % of the average inflow, under the 5 % limit.
    assert feeder.run(local(2025, 1, 20, 12), flat_profile(night=43.0, day=103.0)) == []


def test_a_noisy_leak_free_month_raises_no_alarm() -> None:
    rng = random.Random(7)
    noise = {"value": 0.0}

    def noisy(at: datetime) -> float:
        # Correlated noise (an AR(1) of 5 minutes) of 3 m3/h, as the demo city's districts.
        noise["value"] = noise["value"] * 0.8 + 3.0 * 0.6 * rng.gauss(0.0, 1.0)
        return max(flat_profile()(at) + noise["value"], 0.0)

    watcher = NightFlowDetector([ALARM], SITE)
    feeder = Feeder(watcher, local(2025, 1, 12))
    assert feeder.run(local(2025, 2, 12), noisy) == []
    assert len(watcher.status(ALARM.name).nights) == 7


def test_dst_nights_have_shorter_and_longer_windows_and_still_count() -> None:
    watcher = detector()
    spring_start, spring_end = watcher.window_of(date(2025, 3, 30))
    autumn_start, autumn_end = watcher.window_of(date(2025, 10, 26))
    assert spring_end - spring_start == 3 * 3600.0  # 02:00-03:00 does not exist
    assert autumn_end - autumn_start == 5 * 3600.0  # 02:00-03:00 happens twice
    feeder = Feeder(watcher, local(2025, 3, 26))
    assert feeder.run(local(2025, 3, 29, 12), flat_profile()) == []
    changes = feeder.run(local(2025, 3, 30, 12), flat_profile(night=50.0, day=110.0))
    # Tonight's parts last 11.25 minutes, the night before's 15: 9 parts outweigh 7.
    assert [(c.active, c.time) for c in changes] == [
        (True, datetime.fromtimestamp(spring_start + 9 * 3 * 3600.0 / 16, UTC))
    ]
    autumn = Feeder(detector(), local(2025, 10, 22))
    autumn.run(local(2025, 10, 25, 12), flat_profile())
    changes = autumn.run(local(2025, 10, 26, 12), flat_profile(night=50.0, day=110.0))
    # Tonight's parts last 18.75 minutes, the night before's 15: 7 parts outweigh 9.
    assert [(c.active, c.time) for c in changes] == [
        (True, datetime.fromtimestamp(autumn_start + 7 * 5 * 3600.0 / 16, UTC))
    ]


def test_state_survives_a_restart_through_json() -> None:
    watcher = detector()
    feeder = Feeder(watcher, local(2025, 1, 12))
    feeder.run(local(2025, 1, 15, 12), flat_profile())
    saved = json.loads(json.dumps(watcher.state()))
    restarted = detector()
    restarted.restore(saved)
    before, after = watcher.status(ALARM.name), restarted.status(ALARM.name)
    assert after.nights == before.nights and after.baseline == before.baseline
    assert after.average_inflow == pytest.approx(before.average_inflow)
    resumed = Feeder(restarted, feeder.now)
    changes = resumed.run(local(2025, 1, 16, 12), flat_profile(night=50.0, day=110.0))
    assert [c.active for c in changes] == [True]
    # The active alarm is remembered too: no second activation after another restart.
    again = detector()
    again.restore(json.loads(json.dumps(restarted.state())))
    assert again.status(ALARM.name).active is True


def test_restore_refuses_malformed_state_and_drops_other_meters() -> None:
    watcher = detector()
    Feeder(watcher, local(2025, 1, 12)).run(local(2025, 1, 15, 12), flat_profile())
    good = watcher.state()
    for broken in (
        {"version": 99, "alarms": {}},
        {"version": 1, "alarms": []},
        {"version": 1, "alarms": {ALARM.name: "x"}},
        {"version": 1, "alarms": {ALARM.name: {"tag": TAG, "active": "yes"}}},
        {"version": 1, "alarms": {ALARM.name: {"tag": TAG, "active": False, "nights": [[1, 2]]}}},
        {
            "version": 1,
            "alarms": {
                ALARM.name: {"tag": TAG, "active": False, "nights": [["2025-01-01", "NaN"]]}
            },
        },
        {
            "version": 1,
            "alarms": {ALARM.name: {"tag": TAG, "active": False, "nights": [["2025-01-01", -5.0]]}},
        },
    ):
        fresh = detector()
        with pytest.raises(NightFlowStateError):
            fresh.restore(broken)
        assert fresh.status(ALARM.name).nights == ()
    moved = NightFlowDetector([replace(ALARM, tag="water.dma2.inflow")], SITE)
    moved.restore(good)
    assert moved.status(ALARM.name).nights == ()


def test_restore_takes_a_version_1_document_without_parts() -> None:
    nights = [[f"2025-01-1{n}", 40.0] for n in range(3, 6)]
    older = {"version": 1, "alarms": {ALARM.name: {"tag": TAG, "active": False, "nights": nights}}}
    restored = detector()
    restored.restore(older)
    status = restored.status(ALARM.name)
    assert status.baseline == pytest.approx(40.0)
    assert [f.slots for f in status.nights] == [()] * 3
    version_2 = [[f"2025-01-1{n}", 40.0, 41.0, 39.0] for n in range(3, 6)]
    older["alarms"][ALARM.name]["nights"] = version_2  # type: ignore[index]
    older["version"] = 2
    restored.restore(older)
    assert [f.slots for f in restored.status(ALARM.name).nights] == [()] * 3


def test_a_night_without_enough_good_data_changes_nothing() -> None:
    watcher = detector()
    feeder = Feeder(watcher, local(2025, 1, 12))
    feeder.run(local(2025, 1, 15, 12), flat_profile())
    bad = Quality.bad(Substatus.COMM_FAILURE, "no reply")
    # The meter is down from before the window until after it: the night is not judged.
    feeder.run(local(2025, 1, 16, 1), flat_profile(night=90.0, day=150.0))
    assert feeder.run(local(2025, 1, 16, 5), flat_profile(), quality=bad) == []
    assert feeder.run(local(2025, 1, 16, 12), flat_profile()) == []
    assert [f.night for f in watcher.status(ALARM.name).nights][-1] == date(2025, 1, 15)


def test_forged_readings_are_ignored() -> None:
    watcher = detector()
    feeder = Feeder(watcher, local(2025, 1, 12))
    feeder.run(local(2025, 1, 15, 12), flat_profile())
    now = feeder.now
    forged = [
        Sample(TAG, float("nan"), Quality.good(), now, now),
        Sample(TAG, "lots", Quality.good(), now + STEP, now + STEP),
        Sample(TAG, 1e9, Quality.good(), now - timedelta(days=2), now),  # from the past
    ]
    assert watcher.feed(forged, now + STEP) == []
    feeder.now = now + STEP
    assert feeder.run(local(2025, 1, 17, 12), flat_profile()) == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"kind": AlarmKind.HIGH}, "not night_flow"),
        ({"limit": None}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"tag": ""}, "inflow tag"),
        ({"deadband": 0.2}, "deadband"),
    ],
)
def test_unusable_definitions_are_refused(changes: dict[str, object], problem: str) -> None:
    broken = replace(ALARM, **changes)  # type: ignore[arg-type]
    with pytest.raises(NightFlowError, match=problem):
        NightFlowDetector([broken], SITE)


def test_unusable_settings_are_refused() -> None:
    with pytest.raises(NightFlowError, match="HH:MM"):
        NightFlowDetector([ALARM], SITE, window=("2am", "04:00"))
    with pytest.raises(NightFlowError, match="end after"):
        NightFlowDetector([ALARM], SITE, window=("04:00", "02:00"))
    with pytest.raises(NightFlowError, match="time zone"):
        NightFlowDetector([ALARM], SiteLocation(0.0, 0.0, "Mars/Olympus"))
    with pytest.raises(NightFlowError, match="twice"):
        NightFlowDetector([ALARM, ALARM], SITE)


def test_relearn_clears_an_active_alarm_and_forgets_the_baseline() -> None:
    watcher = detector()
    feeder = Feeder(watcher, local(2025, 1, 12))
    feeder.run(local(2025, 1, 15, 12), flat_profile())
    feeder.run(local(2025, 1, 16, 12), flat_profile(night=60.0, day=120.0))
    changes = watcher.relearn(ALARM.name, feeder.now)
    assert [c.active for c in changes] == [False]
    assert watcher.status(ALARM.name).baseline is None
    # The new level is learnt, then the alarm watches again.
    assert feeder.run(local(2025, 1, 20, 12), flat_profile(night=60.0, day=120.0)) == []
    assert watcher.status(ALARM.name).baseline == pytest.approx(60.0)
    assert watcher.next_due() == local(2025, 1, 21, 4, 30).astimezone(UTC)


@given(
    levels=st.lists(st.floats(0.0, 200.0), min_size=3, max_size=8),
    shape=st.lists(st.floats(-20.0, 20.0), min_size=SLOTS, max_size=SLOTS),
    noise=st.lists(st.floats(-3.0, 3.0), min_size=8 * SLOTS, max_size=8 * SLOTS),
)
def test_the_within_night_spread_ignores_each_night_s_level_and_the_night_s_shape(
    levels: list[float], shape: list[float], noise: list[float]
) -> None:
    def nights(with_levels: bool) -> list[list[float | None]]:
        return [
            [
                (level if with_levels else 0.0) + shape[k] + noise[i * SLOTS + k]
                for k in range(SLOTS)
            ]
            for i, level in enumerate(levels)
        ]

    spread = within_night_spread(nights(True))
    assert spread is not None and spread >= 0.0
    bare = within_night_spread(
        [[noise[i * SLOTS + k] for k in range(SLOTS)] for i in range(len(levels))]
    )
    assert bare is not None and spread == pytest.approx(bare, abs=1e-6)
    assert within_night_spread(nights(True)[:2]) is None  # too few nights
    gappy = nights(True)
    gappy[0][3] = None
    assert within_night_spread(gappy[:3]) is None


@pytest.mark.timeout(300)
@settings(max_examples=15, deadline=None)
@given(start_minute=st.integers(0, 24 * 60 - 1))
def test_a_leak_over_the_limit_is_found_within_24_hours_whenever_it_starts(
    start_minute: int,
) -> None:
    # A steady district and a leak 1.2 x its limit (with no noise the margin is the floor):
    # whatever minute of the day it begins, some look holds at least 15 of 16 parts of it.
    watcher = detector()
    feeder = Feeder(watcher, local(2025, 1, 12))
    feeder.run(local(2025, 1, 15, 12), flat_profile())
    threshold = watcher.status(ALARM.name).threshold
    assert threshold is not None
    start = local(2025, 1, 15, 12) + timedelta(minutes=start_minute)
    changes = feeder.run(
        start + timedelta(hours=25), leak_from(start, 1.2 * threshold, flat_profile())
    )
    assert changes and changes[0].active
    assert timedelta(0) < changes[0].time - start.astimezone(UTC) <= timedelta(hours=24)
