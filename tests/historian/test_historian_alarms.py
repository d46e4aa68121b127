"""Alarm states, the alarm journal, the alarm request queue and the event journal's subject
columns in the historian, and the schema version 5 migration that adds them (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from controlcenter.automation import (
    AlarmAction,
    AlarmDisplayState,
    AlarmPriority,
    AlarmState,
    AlarmTransition,
)
from controlcenter.model import Event, EventKind
from controlcenter.ports import (
    AlarmRequestStatus,
    AlarmRequestStore,
    AlarmStore,
    UnknownAlarmRequestError,
)
from historian import SCHEMA_VERSION, SqlHistorian, StorageError
from tests.historian.historian_support import TAGS, Database, at, level_samples

_ALARM_TABLES = ("alarm_states", "alarm_journal", "alarm_requests")
_N = AlarmDisplayState.NORMAL
_U = AlarmDisplayState.UNACKNOWLEDGED
_A = AlarmDisplayState.ACKNOWLEDGED


def _transition(
    seconds: float,
    alarm: str = "water.tank1.level_high",
    action: AlarmAction = AlarmAction.ACTIVATE,
    *,
    user: str = "",
    area: str = "water",
    value: float | bool | str | datetime | None = 4.5,
) -> AlarmTransition:
    before, after = (_N, _U) if action is AlarmAction.ACTIVATE else (_U, _A)
    return AlarmTransition(
        time=at(seconds),
        alarm=alarm,
        action=action,
        before=before,
        after=after,
        user=user,
        comment="Straße überläuft" if user else "",
        priority=AlarmPriority.HIGH,
        area=area,
        tag="water.tank1.level",
        device="water.rtu1",
        value=value,
    )


def create_version_4_database(database: Database) -> None:
    """A database as schema version 4 left it, with samples and an event: made by the current
    software, then taken back (version 5 added three tables and three event columns)."""
    with database.open() as store:
        store.ensure_tags(TAGS)
        store.write_samples(level_samples(5))
        store.journal_event(Event(at(1), EventKind.SYSTEM, "center", "started"))
    engine = database.admin_engine()
    with engine.begin() as conn:
        for table in _ALARM_TABLES:
            conn.exec_driver_sql(f"DROP TABLE {table}")
        for column in ("tag", "device", "area"):
            conn.exec_driver_sql(f"ALTER TABLE event_journal DROP COLUMN {column}")
        conn.exec_driver_sql("UPDATE schema_version SET version = 4")
    engine.dispose()


def test_a_version_4_database_upgrades_in_place_keeping_its_events(database: Database) -> None:
    create_version_4_database(database)
    engine = database.admin_engine()
    with engine.connect() as conn:
        before = set(inspect(conn).get_table_names())
        columns = {c["name"] for c in inspect(conn).get_columns("event_journal")}
    engine.dispose()
    assert not set(_ALARM_TABLES) & before and "tag" not in columns  # really version 4
    with database.open() as store:
        assert store.schema_version() == SCHEMA_VERSION == 6
        assert [e.message for e in store.read_events()] == ["started"]
        assert len(store.read_raw("water.tank1.level")) == 5
        entry = store.read_event_entries()[0]
        assert (entry.tag, entry.device, entry.area) == ("", "", "")
        store.journal_alarm_transitions([_transition(2)])
        assert store.read_events(tag="water.tank1.level")[0].source == "water.tank1.level_high"


def test_the_historian_implements_the_alarm_ports(store: SqlHistorian) -> None:
    alarms: AlarmStore = store
    requests: AlarmRequestStore = store
    assert alarms.load_alarm_states() == []
    assert requests.pending_alarm_requests() == []


def test_alarm_states_round_trip_and_replace_by_name(store: SqlHistorian) -> None:
    shelved = AlarmState(
        "b.alarm",
        active=True,
        acknowledged=False,
        shelved_by="otto",
        shelve_reason="sensor work",
        shelved_until=datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
        activated_at=at(0),
        changed_at=at(1),
        value=True,
        message="pump failed to start",
    )
    out = AlarmState("a.alarm", out_of_service_by="mia", out_of_service_reason="rebuild", value=3)
    store.save_alarm_states([shelved, out])
    assert store.load_alarm_states() == [out, shelved]  # ordered by name, types kept
    cleared = AlarmState("b.alarm", value=1.5, changed_at=at(9))
    store.save_alarm_states([cleared])
    assert store.load_alarm_states() == [out, cleared]
    stamped = AlarmState("c.alarm", value=datetime(2026, 1, 1, tzinfo=UTC))
    store.save_alarm_states([stamped])
    assert store.load_alarm_states()[-1] == stamped


@pytest.mark.parametrize(
    "bad",
    [
        AlarmState("x", value=float("nan")),
        AlarmState("x", changed_at=datetime(2026, 1, 1)),  # naive
        AlarmState("x\x00y"),
    ],
)
def test_states_a_database_cannot_give_back_are_refused_before_writing(
    store: SqlHistorian, bad: AlarmState
) -> None:
    with pytest.raises(ValueError):
        store.save_alarm_states([AlarmState("ok"), bad])
    assert store.load_alarm_states() == []


def test_transitions_are_journaled_in_both_journals_with_their_subject(
    store: SqlHistorian,
) -> None:
    store.journal_event(Event(at(0), EventKind.SYSTEM, "center", "started"))
    store.journal_alarm_transitions(
        [
            _transition(1),
            _transition(2, action=AlarmAction.ACKNOWLEDGE, user="otto", value=None),
            _transition(3, alarm="lights.d1.lamp_fail", area="lighting", value="fault"),
        ]
    )
    journal = store.read_alarm_journal()
    activate, acknowledge = AlarmAction.ACTIVATE, AlarmAction.ACKNOWLEDGE
    assert [t.action for t in journal] == [activate, acknowledge, activate]
    assert journal[0] == _transition(1)
    assert journal[1].comment == "Straße überläuft" and journal[1].value is None
    assert journal[2].value == "fault"
    # One journal answers "what happened": alarm events carry tag, device and area.
    events = store.read_event_entries()
    assert [e.event.kind for e in events] == [EventKind.SYSTEM] + [EventKind.ALARM] * 3
    assert (events[1].tag, events[1].device, events[1].area) == (
        "water.tank1.level",
        "water.rtu1",
        "water",
    )
    assert "activate: normal -> unacknowledged" in events[1].event.message
    assert events[2].event.user == "otto"
    assert [e.source for e in store.read_events(area="lighting")] == ["lights.d1.lamp_fail"]
    assert len(store.read_events(device="water.rtu1")) == 3
    assert len(store.read_events(tag="water.tank1.level", kind=EventKind.ALARM, limit=2)) == 2
    assert store.read_events(area="nowhere") == []
    # Filters of the alarm journal.
    assert len(store.read_alarm_journal(alarm="water.tank1.level_high")) == 2
    assert [t.alarm for t in store.read_alarm_journal(area="lighting")] == ["lights.d1.lamp_fail"]
    assert [t.action for t in store.read_alarm_journal(user="otto")] == [AlarmAction.ACKNOWLEDGE]
    assert [t.time for t in store.read_alarm_journal(at(2), at(3))] == [at(2), at(3)]
    assert [t.time for t in store.read_alarm_journal(limit=1)] == [at(3)]
    latest = store.latest_alarm_transitions()
    assert latest["water.tank1.level_high"].action is AlarmAction.ACKNOWLEDGE
    assert latest["lights.d1.lamp_fail"].area == "lighting"


def test_a_transition_that_cannot_be_stored_writes_nothing(store: SqlHistorian) -> None:
    with pytest.raises(ValueError):
        store.journal_alarm_transitions([_transition(1), _transition(2, value=float("inf"))])
    assert store.read_alarm_journal() == []
    assert store.read_events() == []


def test_requests_queue_and_are_decided(store: SqlHistorian) -> None:
    first = store.add_alarm_request("acknowledge", ["a", "b"], "otto", "seen", at(0))
    second = store.add_alarm_request(
        "shelve", ["c"], "otto", "sensor work", at(1), duration_s=600.0
    )
    assert first.id < second.id
    assert first.alarms == ("a", "b") and first.status is AlarmRequestStatus.PENDING
    assert [r.id for r in store.pending_alarm_requests()] == [first.id, second.id]
    assert [r.id for r in store.pending_alarm_requests(limit=1)] == [first.id]
    store.decide_alarm_request(first.id, AlarmRequestStatus.DONE, "a: acknowledge", at(2))
    decided = store.alarm_request(first.id)
    assert (decided.status, decided.detail, decided.decided_at) == (
        AlarmRequestStatus.DONE,
        "a: acknowledge",
        at(2),
    )
    assert [r.id for r in store.pending_alarm_requests()] == [second.id]
    assert store.alarm_request(second.id).duration_s == 600.0
    with pytest.raises(UnknownAlarmRequestError, match="no alarm request 999"):
        store.alarm_request(999)
    with pytest.raises(UnknownAlarmRequestError):
        store.decide_alarm_request(999, AlarmRequestStatus.DONE, "", at(3))


@pytest.mark.parametrize(
    ("alarms", "duration", "text"),
    [
        ([], None, "ok"),
        (["a"] * 1001, None, "ok"),
        (["a"], -5.0, "ok"),
        (["a"], float("nan"), "ok"),
        (["a"], None, "nul\x00byte"),
    ],
)
def test_hostile_requests_are_refused_before_writing(
    store: SqlHistorian, alarms: list[str], duration: float | None, text: str
) -> None:
    with pytest.raises(ValueError):
        store.add_alarm_request("shelve", alarms, "otto", text, at(0), duration_s=duration)
    assert store.pending_alarm_requests() == []


def test_a_forged_request_row_comes_back_to_be_refused(
    database: Database, store: SqlHistorian
) -> None:
    engine = database.admin_engine()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO alarm_requests (requested_at, action, alarms, user_name, text, "
            "one_shot, status, detail) VALUES "
            f"({_stored_time(store, at(0))}, 'drop_tables', '{{\"not\": \"a list\"}}', 'x', '', "
            "false, 'pending', '')"
        )
    engine.dispose()
    (forged,) = store.pending_alarm_requests()
    assert forged.action == "drop_tables" and forged.alarms == ()


def _stored_time(store: SqlHistorian, moment: datetime) -> str:
    """A time literal as the backend stores it (SQLite: epoch microseconds)."""
    if store.backend == "sqlite":
        return str(int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)))
    return f"'{moment.isoformat()}'"


def test_a_damaged_state_row_is_a_storage_error(database: Database, store: SqlHistorian) -> None:
    store.save_alarm_states([AlarmState("a", value=1)])
    engine = database.admin_engine()
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alarm_states SET value = '{not json'")
    engine.dispose()
    with pytest.raises(StorageError, match="alarm 'a'"):
        store.load_alarm_states()
