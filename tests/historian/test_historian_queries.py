"""The query facade: the port it satisfies, raw reads with limits, filtered journals."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest

from controlcenter.model import (
    Command,
    CommandOrigin,
    CommandResult,
    CommandStatus,
    Event,
    EventKind,
    JsonArray,
    Quality,
    Sample,
    Substatus,
    epoch_ms,
)
from controlcenter.ports import HistoryQueryReader
from historian import SqlHistorian, UnknownTagError
from historian.aggregates import AggregateError
from historian.queries import HistoryQueries
from tests.historian.historian_support import LEVEL, MODE, RUNNING, STARTS, at, level_samples


def _command(tag: str, origin: CommandOrigin, who: str, seconds: float) -> CommandResult:
    command = Command(tag, True, origin, who, "test", at(seconds))
    return CommandResult(command, CommandStatus.CONFIRMED, "ok", at(seconds + 1), True)


def test_the_facade_satisfies_the_query_port(store: SqlHistorian) -> None:
    port: HistoryQueryReader = HistoryQueries(store)  # checked by mypy
    store.write_samples(level_samples(5, step_ms=1000))

    assert [s.value for s in port.read_raw(LEVEL)] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert [s.value for s in port.read_at_times(LEVEL, [at(0.5)])] == [0.25]
    averages = port.read_processed(LEVEL, at(0), at(4), timedelta(seconds=2), ["average"])
    assert [s.value for s in averages["average"]] == [0.25, 1.25]
    assert len(port.read_trend(LEVEL, at(0), at(5), 100)) == 5
    with pytest.raises(AggregateError):
        port.read_processed(LEVEL, at(0), at(4), timedelta(seconds=2), ["avg"])


def test_raw_reads_take_a_limit_and_an_order(store: SqlHistorian) -> None:
    store.write_samples(level_samples(10, step_ms=1000))
    queries = HistoryQueries(store)

    assert [s.value for s in queries.read_raw(LEVEL, limit=3)] == [0.0, 0.5, 1.0]
    newest = queries.read_raw(LEVEL, limit=2, newest_first=True)
    assert [s.value for s in newest] == [4.5, 4.0]
    window = queries.read_raw(LEVEL, at(2), at(4), newest_first=True)
    assert [s.value for s in window] == [2.0, 1.5, 1.0]
    assert queries.read_raw(LEVEL, limit=0) == []
    with pytest.raises(UnknownTagError):
        queries.read_raw("water.nothing")


def test_commands_filter_by_tag_origin_and_requester(store: SqlHistorian) -> None:
    journaled = [
        _command(RUNNING, CommandOrigin.OPERATOR, "ann", 0),
        _command(RUNNING, CommandOrigin.RULE, "tank1-level", 10),
        _command("water.pump2.running", CommandOrigin.OPERATOR, "bob", 20),
        _command(RUNNING, CommandOrigin.OPERATOR, "ann", 30),
    ]
    for result in journaled:
        store.journal_command(result)
    queries = HistoryQueries(store)

    def ids(results: list[CommandResult]) -> list[str]:
        return [r.command.command_id for r in results]

    assert ids(queries.read_commands(tag=RUNNING)) == ids([journaled[i] for i in (0, 1, 3)])
    assert ids(queries.read_commands(origin=CommandOrigin.RULE)) == ids([journaled[1]])
    assert ids(queries.read_commands(requested_by="ann")) == ids([journaled[0], journaled[3]])
    assert ids(queries.read_commands(at(5), at(25), tag=RUNNING)) == ids([journaled[1]])
    assert ids(queries.read_commands(limit=2)) == ids(journaled[2:])
    # Several tags in one query (an asset's setpoints): the newest of all of them.
    both = [RUNNING, "water.pump2.running"]
    assert ids(queries.read_commands(tags=both, limit=2)) == ids(journaled[2:])
    assert ids(queries.read_commands(tags=["water.pump2.running", "x"])) == ids([journaled[2]])
    assert queries.read_commands(tags=[]) == []


def test_events_filter_by_kind_source_and_user(store: SqlHistorian) -> None:
    events = [
        Event(at(0), EventKind.AUDIT, "hmi", "login", user="ann"),
        Event(at(1), EventKind.ALARM, LEVEL, "high level", severity=700),
        Event(at(2), EventKind.AUDIT, "hmi", "logout", user="ann"),
        Event(at(3), EventKind.AUDIT, "hmi", "login", user="bob"),
    ]
    for event in events:
        store.journal_event(event)
    queries = HistoryQueries(store)

    assert queries.read_events(user="ann") == [events[0], events[2]]
    assert queries.read_events(source=LEVEL) == [events[1]]
    assert queries.read_events(kind=EventKind.AUDIT, user="bob") == [events[3]]
    assert queries.read_events(limit=1) == [events[3]]
    assert queries.read_events(at(1), at(2), kind=EventKind.AUDIT) == [events[2]]


def test_raw_reads_as_columns_hold_the_same_rows_in_every_data_type(store: SqlHistorian) -> None:
    # Sub-millisecond times (T0 is at .123456 s) round to the nearest millisecond; the source
    # time differs from the server time on some rows; a Bad row has no value and a reason.
    bad = Quality.bad(Substatus.COMM_FAILURE, "rtu1 does not answer")
    written = [
        Sample(LEVEL, 1.25, Quality.good(), at(0) - timedelta(microseconds=700), at(0)),
        Sample(LEVEL, None, bad, at(1), at(1)),
        Sample(LEVEL, 2.5, Quality.uncertain(Substatus.LAST_USABLE, "held"), at(2), at(2.0004)),
        Sample(RUNNING, True, Quality.good(), at(0), at(0)),
        Sample(RUNNING, False, Quality.good(), at(1), at(1)),
        Sample(STARTS, 7, Quality.good(), at(0), at(0)),
        Sample(MODE, "auto", Quality.good(), at(0), at(0)),
        Sample(MODE, "manual", bad, at(1), at(1)),
    ]
    store.write_samples(written)
    queries = HistoryQueries(store)

    for tag in (LEVEL, RUNNING, STARTS, MODE):
        rows = queries.read_raw(tag)
        columns = queries.read_raw_columns(tag)
        assert columns.tag == tag
        assert list(columns.server_time_ms) == [epoch_ms(s.server_time) for s in rows]
        assert list(columns.source_time_ms) == [epoch_ms(s.source_time) for s in rows]
        assert list(columns.values) == [s.value for s in rows]
        assert [type(v) for v in columns.values] == [type(s.value) for s in rows]
        assert [columns.qualities[i] for i in columns.quality_index] == [s.quality for s in rows]
        assert len(set(columns.qualities)) == len(columns.qualities)

    assert list(queries.read_raw_columns(LEVEL).server_time_ms) == [
        1709294400123,
        1709294401123,
        1709294402124,
    ]
    newest = queries.read_raw_columns(LEVEL, at(1), at(3), limit=1, newest_first=True)
    assert list(newest.values) == [2.5]
    both = queries.read_raw_columns(LEVEL, newest_first=True)
    assert list(both.values) == [2.5, None, 1.25]
    assert len(queries.read_raw_columns(LEVEL, limit=0)) == 0
    with pytest.raises(UnknownTagError):
        queries.read_raw_columns("water.nothing")


def test_columns_of_awkward_numbers_read_back_exactly(store: SqlHistorian) -> None:
    # Doubles that need all 17 digits, tiny and huge ones, an infinity and doubles beyond
    # 1e100, which SQLite 3.40 prints inexactly even with 17 digits (sent row by row).
    awkward = [0.1, 0.30000000000000004, 123456789.12345679, -7.25e-300, 1e22, 3.0, math.inf]
    awkward += [1.7976931348623157e308, -1.2925088766488487e297]
    store.write_samples(
        [Sample(LEVEL, v, Quality.good(), at(i), at(i)) for i, v in enumerate(awkward)]
    )
    queries = HistoryQueries(store)

    assert list(queries.read_raw_columns(LEVEL).values) == awkward
    assert list(queries.read_raw_columns(LEVEL, end=at(5)).values) == awkward[:6]
    assert list(queries.read_raw_columns(LEVEL, start=at(7)).values) == awkward[7:]
    assert all(type(v) is float for v in queries.read_raw_columns(LEVEL).values)


def test_float_columns_read_as_json_arrays_hold_the_exact_values(store: SqlHistorian) -> None:
    # On SQLite a float tag's columns stay the database's JSON text (no parse on the way to an
    # answer); whatever the backend, the text, once parsed, holds exactly the stored rows.
    awkward = [0.1, 0.30000000000000004, None, -7.25e-300, 1e22, 9.999999999999999e99, 0.0, 5e-324]
    bad = Quality.bad(Substatus.COMM_FAILURE, "")
    store.write_samples(
        [
            Sample(LEVEL, v, Quality.good() if v is not None else bad, at(i), at(i))
            for i, v in enumerate(awkward)
        ]
    )
    columns = HistoryQueries(store).read_raw_columns(LEVEL)

    for column, expected in (
        (columns.values, awkward),
        (columns.server_time_ms, [epoch_ms(at(i)) for i in range(len(awkward))]),
    ):
        if isinstance(column, JsonArray):
            assert json.loads(column.text) == expected
        assert list(column) == expected and len(column) == len(expected)
    assert [columns.qualities[i] for i in columns.quality_index] == [
        Quality.good() if v is not None else bad for v in awkward
    ]
    if store.backend == "sqlite":
        assert isinstance(columns.values, JsonArray)


def test_one_quality_all_along_is_listed_once_whatever_its_reason(store: SqlHistorian) -> None:
    # No reason and an empty one are the same quality: one entry, every row pointing at it.
    held = Quality.uncertain(Substatus.LAST_USABLE, "held")
    store.write_samples(
        [Sample(LEVEL, float(i), held, at(i), at(i)) for i in range(4)]
        + [Sample(RUNNING, True, Quality.good(), at(i), at(i)) for i in range(2)]
    )
    queries = HistoryQueries(store)

    columns = queries.read_raw_columns(LEVEL, newest_first=True)
    assert list(columns.quality_index) == [0, 0, 0, 0] and list(columns.qualities) == [held]
    assert list(columns.values) == [3.0, 2.0, 1.0, 0.0]
    assert list(columns.server_time_ms) == [epoch_ms(at(i)) for i in (3, 2, 1, 0)]
    head = columns.head(2)
    assert list(head.values) == [3.0, 2.0] and list(head.quality_index) == [0, 0]


def test_a_json_array_column_parses_only_when_read() -> None:
    parsed: list[str] = []

    def loads(text: str) -> object:
        parsed.append(text)
        return json.loads(text)

    column: JsonArray[float] = JsonArray("[1.5,null,2.0]", 3, loads)
    assert len(column) == 3 and column.text == "[1.5,null,2.0]" and not parsed
    assert column[0] == 1.5 and column[1:] == [None, 2.0] and list(column) == [1.5, None, 2.0]
    assert column == [1.5, None, 2.0] and column == JsonArray("[1.5, null, 2.0]", 3)
    assert column != (1.5, None, 2.0) and len(parsed) == 1
    with pytest.raises(ValueError, match="2 values"):
        JsonArray("[1.5]", 2)[0]
    with pytest.raises(ValueError, match="1 values"):
        JsonArray('{"a": 1}', 1)[0]
