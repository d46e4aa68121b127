"""When time-based triggers fire next: intervals, crontab schedules and sun events.

Every function takes and returns timezone-aware UTC datetimes; local time (the site's time zone)
is used only inside, where a schedule is defined in it (crontab fields, the date of a sun event).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger as _ApsCronTrigger
from astral import Observer
from astral.sun import dawn, dusk, sunrise, sunset

from controlcenter.automation import SiteLocation, SunEvent

_SEARCH_DAYS = 370
"""How far ahead a sun event is looked for: beyond a polar night or a midnight-sun summer."""

_CIVIL_DEPRESSION = 6.0
"""Civil twilight: the sun's centre 6 degrees below the horizon."""


class ScheduleError(ValueError):
    """A schedule that cannot be used (a malformed crontab, a non-positive interval)."""


def next_interval(anchor: datetime, every_s: float, after: datetime) -> datetime:
    """The first time ``anchor + k * every_s`` (k >= 1) strictly later than ``after``.

    Intervals are aligned to ``anchor`` (the rule set's activation), so a late wake-up skips
    missed ticks instead of drifting or firing a burst of them.
    """
    if every_s <= 0 or not math.isfinite(every_s):
        raise ScheduleError(f"interval must be a positive number of seconds, not {every_s}")
    elapsed = (after - anchor).total_seconds()
    ticks = max(1, math.floor(elapsed / every_s) + 1)
    candidate = anchor + timedelta(seconds=ticks * every_s)
    while candidate <= after:  # floating-point rounding at a tick boundary
        ticks += 1
        candidate = anchor + timedelta(seconds=ticks * every_s)
    return candidate


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
"""Crontab weekday numbers: 0 (and 7) is Sunday, 1 Monday ... 6 Saturday."""


def _cron_day(token: str) -> int:
    name = token.strip().lower()
    if name in _CRON_DAYS:
        return _CRON_DAYS.index(name)
    if not name.isdigit() or int(name) > 7:
        raise ValueError(f"weekday {token!r} is not 0-7 or sun..sat")
    return int(name) % 7


def _aps_weekdays(field_text: str) -> str:
    """Translate a crontab weekday field into APScheduler's, by day names.

    APScheduler 3.x numbers weekdays from 0 = Monday, while crontab numbers them from
    0 = Sunday (POSIX crontab): passing ``1-5`` through would mean Tuesday to Saturday.
    """
    if field_text == "*":
        return "*"
    days: set[int] = set()
    for item in field_text.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"weekday step {step_text!r} must be >= 1")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            low, high = span.split("-", 1)
            first, last = _cron_day(low), _cron_day(high)
            if high.strip() == "7":
                last = 7  # 1-7: Monday to Sunday
        else:
            first = last = _cron_day(span)
        if last < first:
            raise ValueError(f"weekday range {span!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    ordered = sorted(days, key=lambda day: (day - 1) % 7)  # Monday first, as APScheduler
    return ",".join(_CRON_DAYS[day] for day in ordered)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A five-field crontab (minute hour day month weekday) evaluated in the site's time zone.

    Weekdays are numbered as in POSIX crontab (0 or 7 Sunday, 1 Monday) or named (mon..sun).
    Unlike Vixie cron, a schedule restricting both day of month and weekday fires only on days
    matching both.

    A local time that the spring DST change skips fires one hour later that day (02:30 becomes
    03:30 in Europe/Amsterdam); a time the autumn change repeats fires once (APScheduler 3.x).
    """

    expression: str
    timezone: str
    _trigger: _ApsCronTrigger = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            fields = self.expression.split()
            if len(fields) != 5:
                raise ValueError(f"wrong number of fields: {len(fields)}, expected 5")
            minute, hour, day, month, weekday = fields
            trigger = _ApsCronTrigger(
                minute=minute,
                hour=hour,
                day=day,
                month=month,
                day_of_week=_aps_weekdays(weekday),
                timezone=ZoneInfo(self.timezone),
            )
        except (ValueError, KeyError) as err:
            raise ScheduleError(f"invalid crontab {self.expression!r}: {err}") from err
        object.__setattr__(self, "_trigger", trigger)

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly later than ``after`` (UTC), or None if there is none."""
        start = after + timedelta(microseconds=1)
        fire = self._trigger.get_next_fire_time(None, start.astimezone(ZoneInfo(self.timezone)))
        if fire is None:
            return None
        result: datetime = fire.astimezone(UTC)
        return result


@dataclass(frozen=True, slots=True)
class SunSchedule:
    """A sun event at the site's location, shifted by ``offset_s`` (negative: before).

    On days where the sun does not reach the event's angle (polar day or night, or summer nights
    at high latitudes that never get civil-dark), the event does not happen and is skipped.
    """

    event: SunEvent
    offset_s: float
    location: SiteLocation

    def on_date(self, day: date) -> datetime | None:
        """The shifted event on the local ``day`` (UTC), or None when the sun does not reach it."""
        zone = ZoneInfo(self.location.timezone)
        observer = Observer(latitude=self.location.latitude, longitude=self.location.longitude)
        try:
            match self.event:
                case SunEvent.SUNRISE:
                    moment = sunrise(observer, date=day, tzinfo=zone)
                case SunEvent.SUNSET:
                    moment = sunset(observer, date=day, tzinfo=zone)
                case SunEvent.CIVIL_DAWN:
                    moment = dawn(observer, date=day, tzinfo=zone, depression=_CIVIL_DEPRESSION)
                case SunEvent.CIVIL_DUSK:
                    moment = dusk(observer, date=day, tzinfo=zone, depression=_CIVIL_DEPRESSION)
        except ValueError:
            # astral raises ValueError when the sun never reaches the angle on that day.
            return None
        return moment.astimezone(UTC) + timedelta(seconds=self.offset_s)

    def next_after(self, after: datetime) -> datetime | None:
        """The first shifted event strictly later than ``after``, or None within a year."""
        zone = ZoneInfo(self.location.timezone)
        # Start a day early: a large negative offset moves tomorrow's event before midnight.
        shift_days = math.ceil(abs(self.offset_s) / 86_400) + 1
        first = (after.astimezone(zone) - timedelta(days=shift_days)).date()
        for day_number in range(_SEARCH_DAYS + 2 * shift_days):
            moment = self.on_date(first + timedelta(days=day_number))
            if moment is not None and moment > after:
                return moment
        return None
