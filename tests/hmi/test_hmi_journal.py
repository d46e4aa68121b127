"""The journal display over a real SQLite historian: commands, alarm transitions (each once)
and events merged newest first; search by site-local time range, tag, device, user, kind and
text; bad input answered, not raised; paging and CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controlcenter.model import (
    Command,
    CommandOrigin,
    CommandPriority,
    CommandResult,
    CommandStatus,
    Event,
    EventKind,
    Role,
    User,
    Value,
)
from controlcenter.ports import EventJournal, LiveView
from historian.queries import HistoryQueries
from historian.store import SqlHistorian
from hmi.context import HmiContext
from hmi.page import PageRequest
from hmi.pages import journal as journal_page
from hmi.pages.journal import JournalEntry, csv_text, query_from, search
from tests.hmi.alarm_display_support import (
    T0,
    TRIPPED,
    FakeClock,
    find,
    make_service,
    raise_alarm,
    text_of,
    with_class,
)
from tests.hmi.conftest import PUMP, TANK2, hmi_context

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
OLGA = User("olga", Role.OPERATOR)


def _command(tag: str, value: Value, by: str, origin: CommandOrigin, minute: int) -> CommandResult:
    issued = T0 + timedelta(minutes=minute)
    command = Command(
        tag,
        value,
        origin,
        by,
        "test reason",
        issued,
        CommandPriority.MANUAL_OPERATOR,
    )
    return CommandResult(command, CommandStatus.CONFIRMED, "read back", issued, value)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlHistorian]:
    opened = SqlHistorian(f"sqlite:///{tmp_path / 'journal.db'}")
    yield opened
    opened.close()


@pytest.fixture
def context(live_view: LiveView, journal: EventJournal, store: SqlHistorian) -> HmiContext:
    """Minute 0 a login, 1 an operator's command, 2 a rule's, 3 an alarm, 4 its
    acknowledgement, 5 a rule change."""
    store.journal_event(Event(T0, EventKind.AUDIT, "hmi", "olga: login as operator", "olga"))
    store.journal_command(_command(PUMP, True, "olga", CommandOrigin.OPERATOR, 1))
    store.journal_command(_command(TANK2, 3.5, "night-fill", CommandOrigin.RULE, 2))
    clock = FakeClock(T0 + timedelta(minutes=3))
    service = make_service(store, clock)
    raise_alarm(service, clock, TRIPPED.name, True)
    clock.advance(60)
    service.acknowledge([TRIPPED.name], OLGA, "drive reset on site")
    store.journal_event(
        Event(
            T0 + timedelta(minutes=5),
            EventKind.RULE,
            "rules",
            "=HYPERLINK(evil) version 3 applied",
            "erik",
        )
    )
    return hmi_context(
        live_view,
        HistoryQueries(store),
        journal,
        alarms=service,
        alarm_journal=store,
        timezone=AMSTERDAM,
    )


def _kinds(entries: list[JournalEntry]) -> list[str]:
    return [entry.kind for entry in entries]


def test_everything_newest_first_and_each_alarm_transition_once(context: HmiContext) -> None:
    entries = search(context, query_from(context, {}))
    assert _kinds(entries) == ["rule", "alarm", "alarm", "command", "command", "audit"]
    ack = entries[1]
    assert (ack.source, ack.user) == (TRIPPED.name, "olga")
    assert "acknowledge" in ack.text and "drive reset on site" in ack.text
    command = entries[4]
    assert command.source == PUMP and command.user == "olga"
    assert "confirmed" in command.text and "read back ON" in command.text


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"user": "olga"}, [("alarm", TRIPPED.name), ("command", PUMP), ("audit", "hmi")]),
        ({"tag": PUMP}, [("command", PUMP)]),
        ({"tag": TRIPPED.tag}, [("alarm", TRIPPED.name), ("alarm", TRIPPED.name)]),
        ({"device": "rtu2"}, [("command", TANK2)]),
        ({"kind": "audit"}, [("audit", "hmi")]),
        ({"kind": "command", "user": "night-fill"}, [("command", TANK2)]),
        ({"text": "DRIVE RESET"}, [("alarm", TRIPPED.name)]),
        # Site time: 12:01 to 12:02 CET is 11:01 to 11:02 UTC.
        (
            {"from": "2030-01-01 12:01", "to": "2030-01-01 12:02"},
            [("command", TANK2), ("command", PUMP)],
        ),
        ({"user": "nobody"}, []),
    ],
)
def test_search_filters(
    context: HmiContext, values: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    entries = search(context, query_from(context, values))
    assert [(entry.kind, entry.source) for entry in entries] == expected


@pytest.mark.parametrize(
    "values",
    [{"from": "yesterday"}, {"to": "2030-13-45 99:99"}, {"kind": "<script>"}, {"kind": "alarm'--"}],
)
def test_bad_search_input_is_refused_with_a_reason(
    context: HmiContext, values: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match=r"no time|no journal kind"):
        query_from(context, values)


def test_display_draws_local_times_preset_by_the_url_and_says_what_is_wrong(
    context: HmiContext,
) -> None:
    view = journal_page.render(
        context, OLGA, PageRequest("/journal", query={"user": "olga", "kind": "alarm"})
    )
    rows = with_class(view, "journal-row")
    # The activation has no user: only the acknowledgement is olga's.
    assert len(rows) == 1
    assert "2030-01-01 12:04:00 CET" in text_of(rows[0])
    assert find(view, journal_page.USER_ID).value == "olga"
    assert text_of(find(view, journal_page.PAGE_INFO_ID)).endswith("1 entries")
    wrong = journal_page.render(context, OLGA, PageRequest("/journal", query={"from": "soon"}))
    assert "no time" in text_of(find(wrong, "journal-error"))
    # Unfiltered instead: the display still opens.
    assert len(with_class(wrong, "journal-row")) == 6


def test_pages_of_fifty(context: HmiContext) -> None:
    entries = [
        JournalEntry(T0 + timedelta(seconds=i), "system", "center", "", f"tick {i}")
        for i in range(120)
    ]
    table, page, info = journal_page.table_view(context, entries, 2)
    assert (page, info) == (2, "Page 3 of 3 · 120 entries")
    assert len(with_class(table, "journal-row")) == 20


def test_csv_export_has_local_and_utc_times_and_defuses_formulas(context: HmiContext) -> None:
    text = csv_text(context, search(context, query_from(context, {})))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["time_local", "time_utc", "kind", "source", "user", "text"]
    assert len(rows) == 7
    rule = rows[1]
    assert rule[0] == "2030-01-01 12:05:00 CET" and rule[1].startswith("2030-01-01T11:05:00")
    assert rule[5].startswith("'=HYPERLINK")
