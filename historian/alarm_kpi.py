"""Alarm-system performance (EEMUA 191, ISA-18.2 clause 16) computed by SQL over ``alarm_journal``.

Every figure is over a window [start, end) and is computed by the database: GROUP BY over
10-minute intervals counted from ``start``, window functions (LAG, LEAD, running MAX,
ROW_NUMBER) for floods, chattering, standing alarms and the time spent shelved or out of
service. Python only checks the window and assembles the rows into an ``AlarmKpi``.

What counts as an *alarm* (EEMUA 191 section 6, ISA-18.2 16.5): an ``activate`` transition the
operator was shown, i.e. whose display state after it is not shelved, suppressed or out of
service. Activations hidden that way are recorded (the journal keeps them) and counted apart,
as ``hidden_activations``: they cost the operator nothing and must not make a well-shelved
system look loaded.

- Rates: the average number of alarms per 10 minutes and per hour over the window, the busiest
  10-minute interval, and the share of 10-minute intervals with more than 1, 2 and 5 alarms
  (EEMUA 191 table 35: an average of at most 1 per 10 minutes is "very likely to be
  acceptable", 2 "manageable").
- Floods (ISA-18.2 16.5.4): a flood starts with an interval of more than 10 alarms and lasts
  until an interval of fewer than 5; per flood its start, end, alarms and busiest interval, and
  the share of the window in flood (ISA-18.2 16.5.4: target under 1 %).
- Chattering (ISA-18.2 16.5.6): an alarm activated three or more times within 60 seconds;
  ``bursts`` counts its activations that were the third (or later) within 60 s.
- Stale (standing) alarms (ISA-18.2 16.5.7): condition still active at ``end`` and activated
  more than 24 hours before it, whenever that was (even before ``start``).
- Bad actors (ISA-18.2 16.5.5): the ten alarms with the most activations and their share of all.
- Priority distribution (EEMUA 191 table 2, ISA-18.2 16.5.8): the share of each priority against
  the aim of about 80 % low, 15 % medium and 5 % high; critical has no share of its own to aim
  at (it should be rare) and is reported as measured.
- Shelving and out of service (ISA-18.2 16.5.9, 16.5.10): how many times alarms were shelved or
  taken out of service in the window, how many distinct alarms spent time so, and how long in
  all (seconds inside the window shown as shelved, or out of service, summed over alarms).

Times are integer microseconds since the epoch inside the SQL on both backends (SQLite stores
them so; PostgreSQL converts its TIMESTAMPTZ once, in the first common table expression), so
that the rest of every query is the same text for both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from controlcenter.ports import AlarmAction, AlarmDisplayState, AlarmPriority
from historian.errors import HistorianError
from historian.store import SqlHistorian
from historian.timetypes import from_epoch_us, to_epoch_us

# The journal's vocabulary as stored (the values of the enumerations).
ACTIVATE = AlarmAction.ACTIVATE.value
CLEAR = AlarmAction.CLEAR.value
SHELVE = AlarmAction.SHELVE.value
REMOVE_FROM_SERVICE = AlarmAction.REMOVE_FROM_SERVICE.value
SHELVED = AlarmDisplayState.SHELVED.value
OUT_OF_SERVICE = AlarmDisplayState.OUT_OF_SERVICE.value
HIDDEN_DISPLAY_STATES = (SHELVED, AlarmDisplayState.SUPPRESSED.value, OUT_OF_SERVICE)
"""Display states after which an activation was not shown to the operator."""
PRIORITY_TARGETS: Mapping[AlarmPriority, float] = {
    AlarmPriority.LOW: 0.80,
    AlarmPriority.MEDIUM: 0.15,
    AlarmPriority.HIGH: 0.05,
}
"""EEMUA 191 / ISA-18.2: the aimed-at share of annunciated alarms per priority."""

INTERVAL_S = 600
"""The 10-minute interval of EEMUA 191's rate figures."""
FLOOD_START_ABOVE = 10
"""ISA-18.2 16.5.4: more than 10 alarms in 10 minutes starts a flood..."""
FLOOD_END_BELOW = 5
"""...and fewer than 5 in 10 minutes ends it."""
CHATTER_ACTIVATIONS = 3
CHATTER_WINDOW_S = 60
STALE_AFTER_S = 24 * 3600
BAD_ACTORS = 10

_US = 1_000_000
_JOURNAL_COLUMNS = 'id, alarm, action, "after" AS after_state, priority'


class AlarmKpiError(HistorianError, ValueError):
    """The KPI window cannot be used (naive times, end not after start)."""


@dataclass(frozen=True, slots=True)
class Flood:
    """One alarm flood: from the start of its first interval to the end of its last one."""

    start: datetime
    end: datetime
    alarms: int
    peak_per_10min: int

    @property
    def duration_s(self) -> float:
        """How long the flood lasted inside the window, in seconds."""
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class ChatteringAlarm:
    """An alarm that was activated three or more times within a minute."""

    alarm: str
    activations: int
    bursts: int
    """Activations that were the third or later within 60 seconds."""


@dataclass(frozen=True, slots=True)
class StaleAlarm:
    """An alarm whose condition has stood for more than 24 hours at the end of the window."""

    alarm: str
    active_since: datetime
    priority: int
    display: str
    """What the operator sees of it at the end of the window (it may be shelved)."""


@dataclass(frozen=True, slots=True)
class BadActor:
    """One of the alarms with the most activations."""

    alarm: str
    alarms: int
    share: float


@dataclass(frozen=True, slots=True)
class PriorityShare:
    """How many alarms of one priority there were, their share, and the share aimed at."""

    priority: int
    name: str
    alarms: int
    share: float
    target: float | None


@dataclass(frozen=True, slots=True)
class OutOfNormalUse:
    """Shelving or removal from service in the window: how often, of how many alarms, how long."""

    times: int
    """Shelve (or remove-from-service) actions inside the window."""
    alarms: int
    """Distinct alarms that spent time so inside the window."""
    seconds: float
    """Time inside the window spent so, summed over alarms."""


@dataclass(frozen=True, slots=True)
class AlarmKpi:
    """EEMUA 191 / ISA-18.2 performance figures of the alarm system over [start, end)."""

    start: datetime
    end: datetime
    alarms: int
    hidden_activations: int
    per_10min_average: float
    per_hour_average: float
    peak_per_10min: int
    intervals: int
    intervals_above_1: float
    intervals_above_2: float
    intervals_above_5: float
    floods: tuple[Flood, ...]
    flood_seconds: float
    time_in_flood: float
    chattering: tuple[ChatteringAlarm, ...]
    stale: tuple[StaleAlarm, ...]
    bad_actors: tuple[BadActor, ...]
    bad_actor_share: float
    priorities: tuple[PriorityShare, ...]
    shelved: OutOfNormalUse
    out_of_service: OutOfNormalUse

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (times as ISO 8601 text)."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "alarms": self.alarms,
            "hidden_activations": self.hidden_activations,
            "per_10min_average": self.per_10min_average,
            "per_hour_average": self.per_hour_average,
            "peak_per_10min": self.peak_per_10min,
            "intervals": self.intervals,
            "intervals_above": {
                "1": self.intervals_above_1,
                "2": self.intervals_above_2,
                "5": self.intervals_above_5,
            },
            "floods": [
                {
                    "start": flood.start.isoformat(),
                    "end": flood.end.isoformat(),
                    "duration_s": flood.duration_s,
                    "alarms": flood.alarms,
                    "peak_per_10min": flood.peak_per_10min,
                }
                for flood in self.floods
            ],
            "flood_seconds": self.flood_seconds,
            "time_in_flood": self.time_in_flood,
            "chattering": [
                {"alarm": item.alarm, "activations": item.activations, "bursts": item.bursts}
                for item in self.chattering
            ],
            "stale": [
                {
                    "alarm": item.alarm,
                    "active_since": item.active_since.isoformat(),
                    "priority": item.priority,
                    "display": item.display,
                }
                for item in self.stale
            ],
            "bad_actors": [
                {"alarm": item.alarm, "alarms": item.alarms, "share": item.share}
                for item in self.bad_actors
            ],
            "bad_actor_share": self.bad_actor_share,
            "priorities": [
                {
                    "priority": item.priority,
                    "name": item.name,
                    "alarms": item.alarms,
                    "share": item.share,
                    "target": item.target,
                }
                for item in self.priorities
            ],
            "shelved": {
                "times": self.shelved.times,
                "alarms": self.shelved.alarms,
                "seconds": self.shelved.seconds,
            },
            "out_of_service": {
                "times": self.out_of_service.times,
                "alarms": self.out_of_service.alarms,
                "seconds": self.out_of_service.seconds,
            },
        }


def read_alarm_kpi(store: SqlHistorian, start: datetime, end: datetime) -> AlarmKpi:
    """The alarm-system KPIs over [start, end) from the store's alarm journal (one snapshot)."""
    _check_window(start, end)
    with store.reading("compute the alarm KPIs") as conn:
        return compute_alarm_kpi(conn, start, end)


def compute_alarm_kpi(conn: Connection, start: datetime, end: datetime) -> AlarmKpi:
    """The alarm-system KPIs over [start, end) on an open connection to a historian database."""
    _check_window(start, end)
    dialect = conn.dialect.name
    start_us, end_us = to_epoch_us(start), to_epoch_us(end)
    params: dict[str, Any] = {
        "start_us": start_us,
        "end_us": end_us,
        "start_at": start_us if dialect == "sqlite" else start,
        "end_at": end_us if dialect == "sqlite" else end,
    }
    window = _journal_cte(dialect, bounded=True)
    history = _journal_cte(dialect, bounded=False)

    rates = conn.execute(text(window + _BUCKETS + _RATES), params).one()
    alarms = int(rates.alarms)
    flood_rows = conn.execute(text(window + _BUCKETS + _FLOODS), params).all()
    counts = {
        row.action: (int(row.total), int(row.hidden))
        for row in conn.execute(text(window + _ACTION_COUNTS), params)
    }
    priorities = {
        int(row.priority): int(row.n)
        for row in conn.execute(text(window + _ANNUNCIATED + _PRIORITIES), params)
    }
    actors = conn.execute(text(window + _ANNUNCIATED + _BAD_ACTORS), params).all()
    chatter = conn.execute(text(window + _ANNUNCIATED + _CHATTERING), params).all()
    stale = conn.execute(text(history + _STALE), params).all()
    spans = {
        row.after_state: (int(row.alarms), int(row.micros))
        for row in conn.execute(text(history + _SPANS), params)
    }

    duration_s = (end_us - start_us) / _US
    intervals = math.ceil((end_us - start_us) / (INTERVAL_S * _US))
    floods = tuple(
        Flood(
            start=from_epoch_us(start_us + int(row.first_bucket) * INTERVAL_S * _US),
            end=from_epoch_us(
                min(end_us, start_us + (int(row.last_bucket) + 1) * INTERVAL_S * _US)
            ),
            alarms=int(row.alarms),
            peak_per_10min=int(row.peak),
        )
        for row in flood_rows
    )
    flood_seconds = sum(flood.duration_s for flood in floods)
    top_total = sum(int(row.n) for row in actors)
    return AlarmKpi(
        start=start,
        end=end,
        alarms=alarms,
        hidden_activations=counts.get(ACTIVATE, (0, 0))[1],
        per_10min_average=alarms * INTERVAL_S / duration_s,
        per_hour_average=alarms * 3600 / duration_s,
        peak_per_10min=int(rates.peak or 0),
        intervals=intervals,
        intervals_above_1=int(rates.above_1 or 0) / intervals,
        intervals_above_2=int(rates.above_2 or 0) / intervals,
        intervals_above_5=int(rates.above_5 or 0) / intervals,
        floods=floods,
        flood_seconds=flood_seconds,
        time_in_flood=flood_seconds / duration_s,
        chattering=tuple(
            ChatteringAlarm(row.alarm, int(row.activations), int(row.bursts)) for row in chatter
        ),
        stale=tuple(
            StaleAlarm(
                row.alarm, from_epoch_us(int(row.active_since)), int(row.priority), row.display
            )
            for row in stale
        ),
        bad_actors=tuple(BadActor(row.alarm, int(row.n), int(row.n) / alarms) for row in actors),
        bad_actor_share=top_total / alarms if alarms else 0.0,
        priorities=_priority_shares(priorities, alarms),
        shelved=_out_of_normal(counts.get(SHELVE, (0, 0))[0], spans.get(SHELVED)),
        out_of_service=_out_of_normal(
            counts.get(REMOVE_FROM_SERVICE, (0, 0))[0], spans.get(OUT_OF_SERVICE)
        ),
    )


def _check_window(start: datetime, end: datetime) -> None:
    for name, moment in (("start", start), ("end", end)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise AlarmKpiError(f"{name} must be timezone-aware, got {moment.isoformat()}")
    if end <= start:
        raise AlarmKpiError(
            f"the window must end after it starts ({start.isoformat()} .. {end.isoformat()})"
        )
    if end - start > timedelta(days=3660):
        raise AlarmKpiError("the window may span at most ten years")


def _priority_shares(counts: Mapping[int, int], alarms: int) -> tuple[PriorityShare, ...]:
    return tuple(
        PriorityShare(
            priority=int(priority),
            name=priority.name.lower(),
            alarms=counts.get(priority, 0),
            share=counts.get(priority, 0) / alarms if alarms else 0.0,
            target=PRIORITY_TARGETS.get(priority),
        )
        for priority in AlarmPriority
    )


def _out_of_normal(times: int, span: tuple[int, int] | None) -> OutOfNormalUse:
    alarms, micros = span if span is not None else (0, 0)
    return OutOfNormalUse(times=times, alarms=alarms, seconds=micros / _US)


def _journal_cte(dialect: str, *, bounded: bool) -> str:
    """The journal as rows with an integer microsecond time ``t``: the window's rows, or every
    row before its end (the states of alarms at the window's edges depend on older rows)."""
    lower = " AND time >= :start_at" if bounded else ""
    if dialect == "sqlite":
        moment = "time"
    elif dialect == "postgresql":
        # EXTRACT(EPOCH ...) is numeric on PostgreSQL 14+: exact to the microsecond.
        moment = "CAST(EXTRACT(EPOCH FROM time) * 1000000 AS BIGINT)"
    else:
        raise AlarmKpiError(f"alarm KPIs are computed on SQLite or PostgreSQL, not {dialect}")
    return (
        f"WITH journal AS (SELECT {moment} AS t, {_JOURNAL_COLUMNS} FROM alarm_journal "
        f"WHERE time < :end_at{lower})"
    )


_HIDDEN_SQL = ", ".join(f"'{state}'" for state in HIDDEN_DISPLAY_STATES)

_ANNUNCIATED = f"""
, annunciated AS (
    SELECT t, alarm, priority FROM journal
    WHERE action = '{ACTIVATE}' AND after_state NOT IN ({_HIDDEN_SQL})
)"""

# Alarms per 10-minute interval counted from the window's start (empty intervals have no row),
# and the flood state of each: an interval is in a flood when the last interval of more than
# FLOOD_START_ABOVE alarms came after the last interval of fewer than FLOOD_END_BELOW. An
# interval missing just before a row is such a quiet one (it had none), which ``low_mark``
# records; the first row always gets a mark, so ``last_low`` is never NULL.
_BUCKETS = (
    _ANNUNCIATED
    + f"""
, buckets AS (
    SELECT bucket, COUNT(*) AS n
    FROM (SELECT (t - :start_us) / {INTERVAL_S * _US} AS bucket FROM annunciated) numbered
    GROUP BY bucket
)
, marked AS (
    SELECT bucket, n,
        CASE WHEN n < {FLOOD_END_BELOW} THEN bucket
             WHEN LAG(bucket) OVER ordered IS NULL OR LAG(bucket) OVER ordered < bucket - 1
             THEN bucket - 1 END AS low_mark,
        CASE WHEN n > {FLOOD_START_ABOVE} THEN bucket END AS high_mark
    FROM buckets WINDOW ordered AS (ORDER BY bucket)
)
, running AS (
    SELECT bucket, n,
        MAX(low_mark) OVER upto AS last_low,
        MAX(high_mark) OVER upto AS last_high
    FROM marked WINDOW upto AS (ORDER BY bucket ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)"""
)

_RATES = """
SELECT COALESCE(SUM(n), 0) AS alarms, MAX(n) AS peak,
    SUM(CASE WHEN n > 1 THEN 1 ELSE 0 END) AS above_1,
    SUM(CASE WHEN n > 2 THEN 1 ELSE 0 END) AS above_2,
    SUM(CASE WHEN n > 5 THEN 1 ELSE 0 END) AS above_5
FROM running"""

# No low interval lies inside a flood, so the last low before it names the flood.
_FLOODS = """
SELECT MIN(bucket) AS first_bucket, MAX(bucket) AS last_bucket, SUM(n) AS alarms, MAX(n) AS peak
FROM running WHERE last_high > last_low
GROUP BY last_low ORDER BY MIN(bucket)"""

_ACTION_COUNTS = f"""
SELECT action, COUNT(*) AS total,
    SUM(CASE WHEN after_state IN ({_HIDDEN_SQL}) THEN 1 ELSE 0 END) AS hidden
FROM journal WHERE action IN ('{ACTIVATE}', '{SHELVE}', '{REMOVE_FROM_SERVICE}')
GROUP BY action"""

_PRIORITIES = """
SELECT priority, COUNT(*) AS n FROM annunciated GROUP BY priority"""

_BAD_ACTORS = f"""
SELECT alarm, COUNT(*) AS n FROM annunciated GROUP BY alarm
ORDER BY COUNT(*) DESC, alarm LIMIT {BAD_ACTORS}"""

# An activation is a burst when the one two before it (of the same alarm) is at most
# CHATTER_WINDOW_S older: three activations within that time.
_CHATTERING = f"""
, spaced AS (
    SELECT alarm, t, LAG(t, {CHATTER_ACTIVATIONS - 1}) OVER (PARTITION BY alarm ORDER BY t) AS back
    FROM annunciated
)
SELECT alarm, COUNT(*) AS activations,
    SUM(CASE WHEN t - back <= {CHATTER_WINDOW_S * _US} THEN 1 ELSE 0 END) AS bursts
FROM spaced GROUP BY alarm
HAVING SUM(CASE WHEN t - back <= {CHATTER_WINDOW_S * _US} THEN 1 ELSE 0 END) > 0
ORDER BY bursts DESC, alarm"""

# The condition of each alarm at the window's end is its last activate or clear; what the
# operator sees of it is the display state after its last transition of any kind.
_STALE = f"""
, conditions AS (
    SELECT alarm, t, action, priority,
        ROW_NUMBER() OVER (PARTITION BY alarm ORDER BY t DESC, id DESC) AS newest
    FROM journal WHERE action IN ('{ACTIVATE}', '{CLEAR}')
)
, displays AS (
    SELECT alarm, after_state,
        ROW_NUMBER() OVER (PARTITION BY alarm ORDER BY t DESC, id DESC) AS newest
    FROM journal
)
SELECT c.alarm, c.t AS active_since, c.priority, d.after_state AS display
FROM conditions c JOIN displays d ON d.alarm = c.alarm AND d.newest = 1
WHERE c.newest = 1 AND c.action = '{ACTIVATE}' AND c.t < :end_us - {STALE_AFTER_S * _US}
ORDER BY c.t, c.alarm"""

# Each transition's display state holds until the alarm's next transition (or the window's
# end); the part of each such span inside the window is summed per state.
_SPANS = f"""
, spans AS (
    SELECT alarm, t, after_state, LEAD(t) OVER (PARTITION BY alarm ORDER BY t, id) AS next_t
    FROM journal
)
, clipped AS (
    SELECT alarm, after_state,
        CASE WHEN next_t IS NULL OR next_t > :end_us THEN :end_us ELSE next_t END
        - CASE WHEN t < :start_us THEN :start_us ELSE t END AS micros
    FROM spans
    WHERE after_state IN ('{SHELVED}', '{OUT_OF_SERVICE}')
        AND (next_t IS NULL OR next_t > :start_us)
)
SELECT after_state, COUNT(DISTINCT alarm) AS alarms, SUM(micros) AS micros
FROM clipped WHERE micros > 0 GROUP BY after_state"""

__all__: Sequence[str] = (
    "AlarmKpi",
    "AlarmKpiError",
    "BadActor",
    "ChatteringAlarm",
    "Flood",
    "OutOfNormalUse",
    "PriorityShare",
    "StaleAlarm",
    "compute_alarm_kpi",
    "read_alarm_kpi",
)
