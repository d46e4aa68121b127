"""SqlHistorian on SQLite and PostgreSQL: samples, tags and journals round-trip exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from controlcenter.model import (
    Command,
    CommandOrigin,
    CommandPriority,
    CommandResult,
    CommandStatus,
    DataType,
    Event,
    EventKind,
    Quality,
    Severity,
    Substatus,
    TagDef,
)
from controlcenter.ports import HistoryStore
from historian import (
    HistorianClosedError,
    InvalidSamplesError,
    SqlHistorian,
    StorageError,
    UnknownTagError,
)
from tests.historian.historian_support import (
    LEVEL,
    MODE,
    RUNNING,
    STARTS,
    TAGS,
    Database,
    at,
    level_samples,
    sample,
)


def test_store_satisfies_the_history_store_port(store: SqlHistorian) -> None:
    port: HistoryStore = store  # checked by mypy; the assert keeps the test honest at runtime
    assert port.read_raw(LEVEL) == []


def test_values_of_every_data_type_round_trip(store: SqlHistorian) -> None:
    written = [
        sample(LEVEL, 2.75, at(0)),
        sample(LEVEL, -1e-9, at(1)),
        sample(LEVEL, float("inf"), at(2)),
        sample(LEVEL, 1.0000000000000002, at(3)),
        sample(STARTS, 42, at(0)),
        sample(STARTS, -(2**53), at(1)),
        sample(RUNNING, True, at(0)),
        sample(RUNNING, False, at(1)),
        sample(MODE, "winter ❄", at(0)),
        sample(MODE, "", at(1)),
    ]
    store.write_samples(written)

    for tag in (LEVEL, STARTS, RUNNING, MODE):
        read = store.read_raw(tag)
        expected = [s for s in written if s.tag == tag]
        assert [s.value for s in read] == [s.value for s in expected]
        assert [type(s.value) for s in read] == [type(s.value) for s in expected]


def test_qualities_and_reasons_are_preserved(store: SqlHistorian) -> None:
    qualities = [
        Quality.good(),
        Quality(Severity.GOOD, Substatus.LOCAL_OVERRIDE, "hand switch"),
        Quality.uncertain(Substatus.LAST_USABLE, "no update for 3 scans"),
        Quality.bad(Substatus.COMM_FAILURE, "connection refused by 10.0.0.7:502"),
        Quality.bad(Substatus.SENSOR_FAILURE, ""),
    ]
    written = [sample(LEVEL, float(i), at(i), q) for i, q in enumerate(qualities)]
    written.append(sample(LEVEL, None, at(10), Quality.bad(Substatus.NOT_CONNECTED, "unplugged")))
    store.write_samples(written)

    read = store.read_raw(LEVEL)

    assert [s.quality for s in read] == [s.quality for s in written]
    assert read[-1].value is None


def test_time_range_is_inclusive_at_both_ends(store: SqlHistorian) -> None:
    store.write_samples(level_samples(5, step_ms=1000))

    def times(start: datetime | None, end: datetime | None) -> list[datetime]:
        return [s.server_time for s in store.read_raw(LEVEL, start, end)]

    assert times(at(1), at(3)) == [at(1), at(2), at(3)]
    assert times(at(3), None) == [at(3), at(4)]
    assert times(None, at(1)) == [at(0), at(1)]
    assert times(at(1.5), at(1.9)) == []
    assert times(None, None) == [at(i) for i in range(5)]


def test_samples_come_back_oldest_first_whatever_the_write_order(store: SqlHistorian) -> None:
    store.write_samples([sample(LEVEL, 3.0, at(3)), sample(LEVEL, 1.0, at(1))])
    store.write_samples([sample(LEVEL, 2.0, at(2)), sample(LEVEL, 0.0, at(0))])

    assert [s.value for s in store.read_raw(LEVEL)] == [0.0, 1.0, 2.0, 3.0]


def test_times_keep_microseconds_and_come_back_in_utc(store: SqlHistorian) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2024, 7, 1, 14, 0, 0, 1, tzinfo=plus_two)
    store.write_samples(
        [
            sample(LEVEL, 1.0, local),
            sample(LEVEL, 2.0, local + timedelta(microseconds=1)),
            sample(LEVEL, 3.0, datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ]
    )

    read = store.read_raw(LEVEL)

    assert [s.server_time for s in read] == [
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2024, 7, 1, 12, 0, 0, 1, tzinfo=UTC),
        datetime(2024, 7, 1, 12, 0, 0, 2, tzinfo=UTC),
    ]
    assert all(s.server_time.utcoffset() == timedelta(0) for s in read)
    assert all(s.source_time.utcoffset() == timedelta(0) for s in read)
    # Both times are stored: the device's stamp comes back beside the center's.
    assert all(s.server_time - s.source_time == timedelta(milliseconds=3) for s in read)


def test_rewriting_a_sample_at_the_same_time_stores_it_once(store: SqlHistorian) -> None:
    batch = level_samples(3)
    store.write_samples(batch)
    store.write_samples(batch)
    store.write_samples([batch[0], batch[0]])

    assert len(store.read_raw(LEVEL)) == 3


def test_unknown_tag_on_read_is_a_key_error_naming_it(store: SqlHistorian) -> None:
    with pytest.raises(UnknownTagError, match=r"no\.such\.tag") as caught:
        store.read_raw("no.such.tag")
    assert isinstance(caught.value, KeyError)
    assert caught.value.tag == "no.such.tag"


def test_unknown_tag_on_write_refuses_the_whole_batch(store: SqlHistorian) -> None:
    stranger = sample("no.such.tag", 1.0, at(0))
    with pytest.raises(InvalidSamplesError, match=r"unknown tag 'no\.such\.tag'") as caught:
        store.write_samples([sample(LEVEL, 1.0, at(0)), stranger])

    assert [r.sample for r in caught.value.rejected] == [stranger]
    assert store.read_raw(LEVEL) == []


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        (LEVEL, "high"),
        (LEVEL, float("nan")),
        (STARTS, 2.5),
        (STARTS, 2**60),
        (RUNNING, 2),
        (MODE, 1.0),
        (MODE, "auto\x00"),  # PostgreSQL text holds no NUL
        (MODE, "\ud800auto"),  # a lone surrogate has no UTF-8 form
    ],
)
def test_values_that_do_not_fit_the_tag_are_refused(
    store: SqlHistorian, tag: str, value: float | str
) -> None:
    with pytest.raises(InvalidSamplesError) as caught:
        store.write_samples([sample(tag, value, at(0))])

    assert len(caught.value.rejected) == 1
    assert store.read_raw(tag) == []


def test_a_diagnostic_text_no_database_holds_is_stored_readable(store: SqlHistorian) -> None:
    # A device's raw error text can carry a NUL or half a UTF-16 pair; the sample stays.
    quality = Quality.bad(Substatus.DEVICE_FAILURE, "fault\x00code \udc80 7")
    store.write_samples([sample(LEVEL, None, at(0), quality)])

    [read] = store.read_raw(LEVEL)
    assert read.quality.status_code == quality.status_code
    assert read.quality.reason is not None
    assert read.quality.reason.startswith("fault\ufffdcode ")
    assert read.quality.reason.endswith(" 7")
    read.quality.reason.encode("utf-8")  # storable and readable text


def test_naive_times_are_refused(store: SqlHistorian) -> None:
    naive = datetime(2024, 1, 1, 12, 0)
    with pytest.raises(InvalidSamplesError, match="naive"):
        store.write_samples([sample(LEVEL, 1.0, naive)])
    with pytest.raises(ValueError, match="timezone-aware"):
        store.read_raw(LEVEL, start=naive)


def test_ensure_tags_updates_a_known_tag(store: SqlHistorian) -> None:
    store.write_samples([sample(STARTS, 7, at(0))])

    store.ensure_tags([TagDef(STARTS, "rtu1", "40003", DataType.FLOAT, unit="1")])

    [read] = store.read_raw(STARTS)
    assert read.value == 7.0
    assert isinstance(read.value, float)


def test_a_second_store_knows_the_tags_of_the_first(
    store: SqlHistorian, database: Database
) -> None:
    store.write_samples([sample(LEVEL, 1.0, at(0))])
    with database.open() as other:
        other.write_samples([sample(LEVEL, 2.0, at(1))])
        assert [s.value for s in other.read_raw(LEVEL)] == [1.0, 2.0]
    assert len(store.read_raw(LEVEL)) == 2


def _command_result(
    value: float | int | bool | str,
    readback: float | int | bool | str | None,
    issued: datetime,
    status: CommandStatus = CommandStatus.CONFIRMED,
) -> CommandResult:
    command = Command(
        tag="lights.d1.c2.dim_setpoint",
        value=value,
        origin=CommandOrigin.OPERATOR,
        requested_by="alice",
        reason="dim for the festival",
        issued_at=issued,
        priority=CommandPriority.MANUAL_OPERATOR,
    )
    completed = issued + timedelta(milliseconds=250, microseconds=7)
    return CommandResult(command, status, "read back matches", completed, readback)


def test_command_journal_round_trips_every_field(store: SqlHistorian) -> None:
    results = [
        _command_result(40.5, 40.5, at(0)),
        _command_result(True, None, at(1), CommandStatus.TIMED_OUT),
        _command_result(3, 3, at(2)),
        _command_result("auto", "manual", at(3), CommandStatus.FAILED),
    ]
    rule_command = Command(
        tag="heat.ss3.supply_setpoint",
        value=72.0,
        origin=CommandOrigin.RULE,
        requested_by="rule:night_setback",
        reason="night setback",
        issued_at=at(4),
        priority=CommandPriority.AUTOMATION,
    )
    results.append(
        CommandResult(rule_command, CommandStatus.REJECTED, "above engineering limit", at(4))
    )
    for result in reversed(results):
        store.journal_command(result)

    read = store.read_commands()

    assert read == results
    assert [type(r.command.value) for r in read] == [type(r.command.value) for r in results]
    assert [type(r.readback) for r in read] == [type(r.readback) for r in results]
    assert store.read_commands(at(1), at(3)) == results[1:4]


def test_journaling_a_command_twice_keeps_one_entry(store: SqlHistorian) -> None:
    result = _command_result(1.0, 1.0, at(0))
    store.journal_command(result)
    store.journal_command(result)

    assert store.read_commands() == [result]


def test_events_round_trip_and_filter_by_time_and_kind(store: SqlHistorian) -> None:
    events = [
        Event(at(0), EventKind.ALARM, "water.tank1.level", "High level", "", 700),
        Event(at(1), EventKind.AUDIT, "hmi", "login", "alice", 0),
        Event(at(1), EventKind.ALARM, "water.tank1.level", "High level acknowledged", "bob", 700),
        Event(at(2), EventKind.SYSTEM, "historian", "database reachable again"),
    ]
    for event in events:
        store.journal_event(event)

    assert store.read_events() == events
    assert store.read_events(at(1), at(2)) == events[1:]
    assert store.read_events(kind=EventKind.ALARM) == [events[0], events[2]]
    assert store.read_events(at(1), None, kind=EventKind.ALARM) == [events[2]]


def test_a_closed_store_refuses_work(database: Database) -> None:
    opened = database.open()
    opened.close()
    with pytest.raises(HistorianClosedError):
        opened.read_raw(LEVEL)
    opened.close()  # closing twice is harmless


def test_database_failures_are_storage_errors_with_the_cause(
    store: SqlHistorian, database: Database
) -> None:
    engine = database.admin_engine()
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE samples")
    engine.dispose()

    with pytest.raises(StorageError, match="could not write samples") as caught:
        store.write_samples([sample(LEVEL, 1.0, at(0))])
    assert caught.value.__cause__ is not None
    assert "\n" not in str(caught.value)


def test_tags_are_registered_idempotently(store: SqlHistorian) -> None:
    store.ensure_tags(TAGS)
    store.ensure_tags([*TAGS, TAGS[0]])
    store.write_samples([sample(LEVEL, 1.0, at(0))])

    assert len(store.read_raw(LEVEL)) == 1
