"""Next fire times of intervals, crontab schedules (across DST) and sun events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from astral import Observer
from astral.sun import dawn, dusk, sunrise, sunset

from controlcenter.automation import SiteLocation, SunEvent
from rules.schedule import CronSchedule, ScheduleError, SunSchedule, next_interval

AMSTERDAM = SiteLocation(52.3676, 4.9041, "Europe/Amsterdam")
LONGYEARBYEN = SiteLocation(78.2232, 15.6267, "Arctic/Longyearbyen")
ZONE = ZoneInfo("Europe/Amsterdam")


def test_interval_is_aligned_to_the_anchor_and_skips_missed_ticks() -> None:
    anchor = datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)
    assert next_interval(anchor, 300, anchor) == anchor + timedelta(minutes=5)
    # Just before, at, and long after a tick: always the next one strictly later.
    tick = anchor + timedelta(minutes=10)
    assert next_interval(anchor, 300, tick - timedelta(microseconds=1)) == tick
    assert next_interval(anchor, 300, tick) == tick + timedelta(minutes=5)
    assert next_interval(anchor, 300, anchor + timedelta(hours=5, seconds=1)) == anchor + timedelta(
        hours=5, minutes=5
    )


@pytest.mark.parametrize("every", [0.0, -5.0, float("nan"), float("inf")])
def test_interval_must_be_positive_and_finite(every: float) -> None:
    with pytest.raises(ScheduleError, match="positive"):
        next_interval(datetime(2026, 1, 1, tzinfo=UTC), every, datetime(2026, 1, 1, tzinfo=UTC))


def test_cron_keeps_local_time_across_the_autumn_dst_change() -> None:
    weekday_night = CronSchedule("0 22 * * 1-5", "Europe/Amsterdam")
    # Friday 23 Oct 2026 22:00 CEST is 20:00 UTC; the clocks go back on Sunday 25 Oct.
    friday = weekday_night.next_after(datetime(2026, 10, 23, 12, tzinfo=UTC))
    assert friday == datetime(2026, 10, 23, 20, tzinfo=UTC)
    # The weekend is skipped; Monday 26 Oct 22:00 CET is 21:00 UTC.
    monday = weekday_night.next_after(friday)
    assert monday == datetime(2026, 10, 26, 21, tzinfo=UTC)
    assert monday is not None and monday.astimezone(ZONE).hour == 22


def test_cron_at_a_time_the_spring_change_skips_fires_an_hour_later_once() -> None:
    nightly = CronSchedule("30 2 * * *", "Europe/Amsterdam")
    before = nightly.next_after(datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert before == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST: 02:30 does not exist
    after = nightly.next_after(before)
    assert after == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)  # 02:30 CEST again


def test_cron_next_is_strictly_later() -> None:
    hourly = CronSchedule("0 * * * *", "UTC")
    top = datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert hourly.next_after(top) == top + timedelta(hours=1)
    assert hourly.next_after(top - timedelta(microseconds=1)) == top


@pytest.mark.parametrize("text", ["bad", "61 * * * *", "* * * *", "0 25 * * *", "* * * * 9"])
def test_malformed_crontab_is_refused(text: str) -> None:
    with pytest.raises(ScheduleError, match="invalid crontab"):
        CronSchedule(text, "Europe/Amsterdam")


ASTRAL = {
    SunEvent.SUNRISE: lambda obs, day: sunrise(obs, date=day, tzinfo=ZONE),
    SunEvent.SUNSET: lambda obs, day: sunset(obs, date=day, tzinfo=ZONE),
    SunEvent.CIVIL_DAWN: lambda obs, day: dawn(obs, date=day, tzinfo=ZONE, depression=6),
    SunEvent.CIVIL_DUSK: lambda obs, day: dusk(obs, date=day, tzinfo=ZONE, depression=6),
}


@pytest.mark.parametrize("event", list(SunEvent))
@pytest.mark.parametrize("day", [date(2026, 6, 21), date(2026, 12, 21), date(2026, 3, 29)])
@pytest.mark.parametrize("offset_s", [0.0, -600.0, 1800.0])
def test_sun_events_in_amsterdam_match_astral(event: SunEvent, day: date, offset_s: float) -> None:
    observer = Observer(latitude=AMSTERDAM.latitude, longitude=AMSTERDAM.longitude)
    expected = ASTRAL[event](observer, day).astimezone(UTC) + timedelta(seconds=offset_s)
    schedule = SunSchedule(event, offset_s, AMSTERDAM)
    local_midnight = datetime(day.year, day.month, day.day, tzinfo=ZONE).astimezone(UTC)
    assert schedule.next_after(local_midnight) == expected
    assert schedule.next_after(expected) != expected  # strictly later: the next day's


def test_amsterdam_midsummer_values_are_plausible() -> None:
    # Independent sanity bounds (published tables: sunset 22:0x CEST, civil dusk ~22:50 CEST).
    after = datetime(2026, 6, 21, tzinfo=UTC)
    sunset_at = SunSchedule(SunEvent.SUNSET, 0, AMSTERDAM).next_after(after)
    dusk_at = SunSchedule(SunEvent.CIVIL_DUSK, -600, AMSTERDAM).next_after(after)
    assert sunset_at is not None and dusk_at is not None
    assert (
        datetime(2026, 6, 21, 19, 58, tzinfo=UTC)
        < sunset_at
        < datetime(2026, 6, 21, 20, 12, tzinfo=UTC)
    )
    assert sunset_at < dusk_at + timedelta(minutes=10)
    assert (
        timedelta(minutes=30) < dusk_at + timedelta(minutes=10) - sunset_at < timedelta(minutes=60)
    )


def test_a_large_negative_offset_moves_the_event_before_midnight() -> None:
    early = SunSchedule(SunEvent.SUNRISE, -12 * 3600, AMSTERDAM)
    fire = early.next_after(datetime(2026, 6, 20, 12, tzinfo=UTC))
    observer = Observer(latitude=AMSTERDAM.latitude, longitude=AMSTERDAM.longitude)
    sunrise_21 = sunrise(observer, date=date(2026, 6, 21), tzinfo=ZONE).astimezone(UTC)
    assert fire == sunrise_21 - timedelta(hours=12)


def test_at_78_north_days_without_the_event_are_skipped() -> None:
    midsummer = datetime(2026, 6, 21, tzinfo=UTC)
    # Midnight sun: no sunset until late August.
    sunset_at = SunSchedule(SunEvent.SUNSET, 0, LONGYEARBYEN).next_after(midsummer)
    assert sunset_at is not None
    assert datetime(2026, 8, 20, tzinfo=UTC) < sunset_at < datetime(2026, 8, 31, tzinfo=UTC)
    # Polar night: no sunrise from late October until mid-February.
    winter = datetime(2026, 12, 1, tzinfo=UTC)
    sunrise_at = SunSchedule(SunEvent.SUNRISE, 0, LONGYEARBYEN).next_after(winter)
    assert sunrise_at is not None
    assert datetime(2027, 2, 10, tzinfo=UTC) < sunrise_at < datetime(2027, 2, 25, tzinfo=UTC)
    assert SunSchedule(SunEvent.SUNRISE, 0, LONGYEARBYEN).on_date(date(2026, 12, 21)) is None


@pytest.mark.parametrize(
    ("weekdays", "fires_on"),
    [
        ("1-5", {0, 1, 2, 3, 4}),
        ("0", {6}),
        ("7", {6}),
        ("6,0", {5, 6}),
        ("1-7", {0, 1, 2, 3, 4, 5, 6}),
        ("*/2", {6, 1, 3, 5}),
        ("mon-fri", {0, 1, 2, 3, 4}),
    ],
)
def test_crontab_weekdays_count_from_sunday(weekdays: str, fires_on: set[int]) -> None:
    schedule = CronSchedule(f"0 12 * * {weekdays}", "Europe/Amsterdam")
    moment = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday
    seen: set[int] = set()
    for _ in range(14):
        following = schedule.next_after(moment)
        assert following is not None
        moment = following
        seen.add(moment.astimezone(ZONE).weekday())  # Python: 0 = Monday
    assert seen == fires_on
