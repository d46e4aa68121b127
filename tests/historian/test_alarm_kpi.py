"""EEMUA 191 alarm KPIs by SQL over a handcrafted alarm journal, on SQLite and PostgreSQL.

Every figure asserted below is worked out by hand from the journal the test writes: a flood, a
chattering alarm, a standing (stale) alarm, timed shelving across the window's start, removal
from service until past its end, activations hidden by shelving, suppression and out of
service, and activations exactly on both edges of the window.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from controlcenter.automation import (
    AlarmAction,
    AlarmDisplayState,
    AlarmPriority,
    AlarmTransition,
)
from controlcenter.cli.main import app
from historian import SqlHistorian
from historian.alarm_kpi import (
    AlarmKpiError,
    BadActor,
    ChatteringAlarm,
    Flood,
    OutOfNormalUse,
    StaleAlarm,
    compute_alarm_kpi,
    read_alarm_kpi,
)
from historian.timetypes import to_epoch_us
from tests.historian.historian_support import Database

START = datetime(2024, 3, 4, tzinfo=UTC)
END = START + timedelta(hours=2)

A = AlarmAction
D = AlarmDisplayState
P = AlarmPriority


def at(minutes: float) -> datetime:
    """A moment ``minutes`` after the window's start (negative: before it)."""
    return START + timedelta(minutes=minutes)


def transition(
    minutes: float,
    alarm: str,
    action: AlarmAction,
    after: AlarmDisplayState,
    priority: AlarmPriority = P.LOW,
    before: AlarmDisplayState = D.NORMAL,
) -> AlarmTransition:
    """One journaled transition of ``alarm`` at ``minutes`` into the window."""
    return AlarmTransition(
        time=at(minutes),
        alarm=alarm,
        action=action,
        before=before,
        after=after,
        priority=priority,
        area="water",
    )


def raised(minutes: float, alarm: str, priority: AlarmPriority = P.LOW) -> list[AlarmTransition]:
    """An annunciated activation and, 5 s later, its clear."""
    return [
        transition(minutes, alarm, A.ACTIVATE, D.UNACKNOWLEDGED, priority),
        transition(
            minutes + 5 / 60,
            alarm,
            A.CLEAR,
            D.RETURNED_UNACKNOWLEDGED,
            priority,
            D.UNACKNOWLEDGED,
        ),
    ]


def handcrafted_journal() -> list[AlarmTransition]:
    """The journal whose figures the tests know exactly (see the comments for each part)."""
    journal: list[AlarmTransition] = []
    # Interval 0: an activation exactly at the start (counted) and one still standing at the end
    # but for less than 24 h (not stale).
    journal += raised(0, "edge.start")
    journal.append(transition(5, "tank.recent", A.ACTIVATE, D.UNACKNOWLEDGED, P.HIGH))
    # Intervals 2, 3, 4: 12, 6 and 3 alarms: a flood from 00:20 to 00:40 (6 keeps it going,
    # 3 ends it).
    for index in range(12):
        journal += raised(20 + index * 0.5, f"flood.a{index + 1:02d}")
    for index in range(6):
        journal += raised(30 + index * 0.5, f"flood.a{index + 1:02d}")
    for index in range(3):
        journal += raised(40 + index * 0.5, f"flood.a{index + 1:02d}")
    # Interval 6: a chattering alarm, activated at 0, 20, 40 and 90 s: three within a minute
    # once (the third); the fourth is 70 s after the second.
    for seconds in (0, 20, 40, 90):
        journal += raised(60 + seconds / 60, "pump.chatter", P.MEDIUM)
    # Interval 8: a critical and a high alarm.
    journal += raised(80, "heat.crit", P.CRITICAL)
    journal += raised(85, "heat.high", P.HIGH)
    # Stale: active since 30 h before the window, acknowledged since, never cleared.
    journal.append(transition(-30 * 60, "tank.stale", A.ACTIVATE, D.UNACKNOWLEDGED, P.HIGH))
    journal.append(
        transition(-29 * 60, "tank.stale", A.ACKNOWLEDGE, D.ACKNOWLEDGED, P.HIGH, D.UNACKNOWLEDGED)
    )
    # Not stale: activated 48 h before, cleared an hour later.
    journal += raised(-48 * 60, "tank.cleared")
    # Shelved 00:50..01:10 (activated unseen at 01:00 meanwhile): 1,200 s.
    journal.append(transition(50, "fan.shelved", A.SHELVE, D.SHELVED))
    journal.append(transition(60, "fan.shelved", A.ACTIVATE, D.SHELVED, before=D.SHELVED))
    journal.append(transition(70, "fan.shelved", A.UNSHELVE, D.UNACKNOWLEDGED, before=D.SHELVED))
    journal.append(
        transition(75, "fan.shelved", A.CLEAR, D.RETURNED_UNACKNOWLEDGED, before=D.UNACKNOWLEDGED)
    )
    # Shelved an hour before the window, expired at 00:15: 900 s inside it.
    journal.append(transition(-60, "fan.long", A.SHELVE, D.SHELVED))
    journal.append(transition(15, "fan.long", A.SHELF_EXPIRED, D.NORMAL, before=D.SHELVED))
    # Out of service from 01:30 past the end (1,800 s), activated unseen at 01:40.
    journal.append(transition(90, "valve.oos", A.REMOVE_FROM_SERVICE, D.OUT_OF_SERVICE))
    journal.append(
        transition(100, "valve.oos", A.ACTIVATE, D.OUT_OF_SERVICE, before=D.OUT_OF_SERVICE)
    )
    # Out of service and back, all before the window: nothing inside it.
    journal.append(transition(-300, "valve.old", A.REMOVE_FROM_SERVICE, D.OUT_OF_SERVICE))
    journal.append(
        transition(-240, "valve.old", A.RETURN_TO_SERVICE, D.NORMAL, before=D.OUT_OF_SERVICE)
    )
    # Suppressed by design: recorded, not shown.
    journal.append(transition(105, "pump.suppressed", A.ACTIVATE, D.SUPPRESSED))
    # Exactly at the end: outside [start, end).
    journal += raised(120, "late.alarm", P.CRITICAL)
    return journal


@pytest.fixture
def kpi_store(database: Database) -> Iterator[SqlHistorian]:
    """A store of each backend with the handcrafted journal in it."""
    store = database.open()
    try:
        store.journal_alarm_transitions(handcrafted_journal())
        yield store
    finally:
        store.close()


def test_rates_and_intervals_of_the_handcrafted_journal(kpi_store: SqlHistorian) -> None:
    kpi = read_alarm_kpi(kpi_store, START, END)
    # 2 + 12 + 6 + 3 + 4 + 2 annunciated activations; three hidden ones (shelved, out of
    # service, suppressed); the one at the end is outside.
    assert kpi.alarms == 29
    assert kpi.hidden_activations == 3
    assert kpi.intervals == 12
    assert kpi.per_10min_average == pytest.approx(29 / 12)
    assert kpi.per_hour_average == pytest.approx(14.5)
    assert kpi.peak_per_10min == 12
    # Intervals with 2, 12, 6, 3, 4, 2 alarms.
    assert kpi.intervals_above_1 == pytest.approx(6 / 12)
    assert kpi.intervals_above_2 == pytest.approx(4 / 12)
    assert kpi.intervals_above_5 == pytest.approx(2 / 12)


def test_flood_chattering_and_stale_of_the_handcrafted_journal(kpi_store: SqlHistorian) -> None:
    kpi = read_alarm_kpi(kpi_store, START, END)
    assert kpi.floods == (Flood(at(20), at(40), alarms=18, peak_per_10min=12),)
    assert kpi.floods[0].duration_s == 1200
    assert kpi.flood_seconds == 1200
    assert kpi.time_in_flood == pytest.approx(1 / 6)
    assert kpi.chattering == (ChatteringAlarm("pump.chatter", activations=4, bursts=1),)
    assert kpi.stale == (StaleAlarm("tank.stale", at(-30 * 60), int(P.HIGH), D.ACKNOWLEDGED.value),)


def test_bad_actors_priorities_and_shelving(kpi_store: SqlHistorian) -> None:
    kpi = read_alarm_kpi(kpi_store, START, END)
    assert kpi.bad_actors == (
        BadActor("pump.chatter", 4, 4 / 29),
        BadActor("flood.a01", 3, 3 / 29),
        BadActor("flood.a02", 3, 3 / 29),
        BadActor("flood.a03", 3, 3 / 29),
        BadActor("flood.a04", 2, 2 / 29),
        BadActor("flood.a05", 2, 2 / 29),
        BadActor("flood.a06", 2, 2 / 29),
        BadActor("edge.start", 1, 1 / 29),
        BadActor("flood.a07", 1, 1 / 29),
        BadActor("flood.a08", 1, 1 / 29),
    )
    assert kpi.bad_actor_share == pytest.approx(22 / 29)
    counts = {item.name: (item.alarms, item.target) for item in kpi.priorities}
    assert counts == {
        "critical": (1, None),
        "high": (2, 0.05),
        "medium": (4, 0.15),
        "low": (22, 0.80),
    }
    assert [item.share for item in kpi.priorities] == pytest.approx(
        [1 / 29, 2 / 29, 4 / 29, 22 / 29]
    )
    assert kpi.shelved == OutOfNormalUse(times=1, alarms=2, seconds=2100.0)
    assert kpi.out_of_service == OutOfNormalUse(times=1, alarms=1, seconds=1800.0)


def test_as_dict_is_json_with_every_figure(kpi_store: SqlHistorian) -> None:
    figures = json.loads(json.dumps(read_alarm_kpi(kpi_store, START, END).as_dict()))
    assert figures["alarms"] == 29
    assert figures["intervals_above"] == {
        "1": pytest.approx(0.5),
        "2": pytest.approx(1 / 3),
        "5": pytest.approx(1 / 6),
    }
    assert figures["floods"] == [
        {
            "start": "2024-03-04T00:20:00+00:00",
            "end": "2024-03-04T00:40:00+00:00",
            "duration_s": 1200.0,
            "alarms": 18,
            "peak_per_10min": 12,
        }
    ]
    assert figures["stale"][0]["active_since"] == "2024-03-02T18:00:00+00:00"
    assert figures["shelved"] == {"times": 1, "alarms": 2, "seconds": 2100.0}
    assert len(figures["bad_actors"]) == 10


def test_flood_needs_an_interval_below_five_to_end(database: Database) -> None:
    # Intervals 0..9 of a 95-minute window: 12, 7, (none), 8, -, 12, 5, 11, 4, 11 alarms.
    # Flood 1: intervals 0-1 (the empty interval 2 ends it; 8 after it starts nothing).
    # Flood 2: intervals 5-7 (5 is not below 5). Flood 3: interval 9, cut at the window's end.
    counts = {0: 12, 1: 7, 3: 8, 5: 12, 6: 5, 7: 11, 8: 4, 9: 11}
    journal = [
        transition(
            interval * 10 + index * 0.25, f"f{interval}.{index}", A.ACTIVATE, D.UNACKNOWLEDGED
        )
        for interval, count in counts.items()
        for index in range(count)
    ]
    end = at(95)
    with database.open() as store:
        store.journal_alarm_transitions(journal)
        kpi = read_alarm_kpi(store, START, end)
    assert kpi.floods == (
        Flood(at(0), at(20), alarms=19, peak_per_10min=12),
        Flood(at(50), at(80), alarms=28, peak_per_10min=12),
        Flood(at(90), at(95), alarms=11, peak_per_10min=11),
    )
    assert kpi.flood_seconds == 3300
    assert kpi.time_in_flood == pytest.approx(3300 / 5700)
    assert kpi.intervals == 10
    assert kpi.alarms == sum(counts.values())


def test_an_empty_journal_gives_zeros_not_errors(database: Database) -> None:
    with database.open() as store:
        kpi = read_alarm_kpi(store, START, END)
    assert kpi.alarms == 0 and kpi.peak_per_10min == 0 and kpi.per_hour_average == 0
    assert kpi.intervals_above_1 == 0 and kpi.floods == () and kpi.time_in_flood == 0
    assert kpi.bad_actors == () and kpi.bad_actor_share == 0
    assert all(item.alarms == 0 and item.share == 0 for item in kpi.priorities)
    assert kpi.shelved == OutOfNormalUse(0, 0, 0.0)


def test_forged_rows_do_not_break_or_inflate_the_figures(database: Database) -> None:
    # Rows no center writes (an unknown action, an unknown display state, priority 9) must be
    # read as what they are: the unknown action is no alarm, the unknown state is shown, the
    # priority is counted in the total but belongs to no priority's share.
    with database.open() as store:
        store.journal_alarm_transitions(raised(1, "real"))
        with store.writing("forge rows") as conn:
            forged = text(
                'INSERT INTO alarm_journal (time, alarm, action, before, "after", user_name, '
                "comment, priority, area, tag, device, value) VALUES "
                "(:time, :alarm, :action, 'normal', :after, '', '', :priority, '', '', '', NULL)"
            )
            moment = at(2) if store.backend == "postgresql" else to_epoch_us(at(2))
            conn.execute(
                forged,
                [
                    {
                        "time": moment,
                        "alarm": "x",
                        "action": "explode",
                        "after": "normal",
                        "priority": 3,
                    },
                    {
                        "time": moment,
                        "alarm": "y",
                        "action": "activate",
                        "after": "weird",
                        "priority": 9,
                    },
                ],
            )
        kpi = read_alarm_kpi(store, START, END)
    assert kpi.alarms == 2
    assert sum(item.alarms for item in kpi.priorities) == 1


def test_windows_that_cannot_be_used_are_refused(database: Database) -> None:
    with database.open() as store:
        with pytest.raises(AlarmKpiError, match="end after it starts"):
            read_alarm_kpi(store, END, START)
        with pytest.raises(AlarmKpiError, match="timezone-aware"):
            read_alarm_kpi(store, START.replace(tzinfo=None), END)
        with store.reading("check") as conn, pytest.raises(AlarmKpiError, match="end after"):
            compute_alarm_kpi(conn, START, START)


def test_kpi_command_prints_text_and_json(sqlite_database: Database) -> None:
    with sqlite_database.open() as store:
        store.journal_alarm_transitions(handcrafted_journal())
    window = ["--start", START.isoformat(), "--end", END.isoformat(), "--db", sqlite_database.url]
    as_json = CliRunner().invoke(app, ["alarms", "kpi", *window, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    figures = json.loads(as_json.stdout)
    assert figures["alarms"] == 29 and figures["floods"][0]["alarms"] == 18
    as_text = CliRunner().invoke(app, ["alarms", "kpi", *window])
    assert as_text.exit_code == 0, as_text.output
    for expected in ("29 alarms", "pump.chatter", "tank.stale", "flood"):
        assert expected in as_text.stdout
    refused = CliRunner().invoke(
        app,
        [
            "alarms",
            "kpi",
            "--start",
            END.isoformat(),
            "--end",
            START.isoformat(),
            "--db",
            sqlite_database.url,
        ],
    )
    assert refused.exit_code == 2 and "end after it starts" in refused.output
    garbled = CliRunner().invoke(
        app, ["alarms", "kpi", "--start", "yesterday", "--db", sqlite_database.url]
    )
    assert garbled.exit_code == 2 and "is not a time" in garbled.output
