"""The alarm list: filters from the query string (hostile ones too), state words, paging, the
table and the detail as drawn, each action through the real alarm service with its refusals
shown as text, buttons per role, and a forged acknowledge refused on the server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alarms.service import AlarmService
from controlcenter.automation import AlarmAction, AlarmDisplayState
from controlcenter.model import Event, EventKind, Role, User
from controlcenter.ports import EventJournal, HistoryReader, LiveView, LoginSessions
from controlcenter.security.users import UserStore
from historian.store import SqlHistorian
from hmi import alarm_actions
from hmi.alarm_actions import (
    HISTORY_VIEW,
    MAX_FILTER_CHARS,
    AlarmFilter,
    current_alarms,
    history_entries,
    loud_count,
    page_of,
)
from hmi.app import create_hmi
from hmi.context import HmiContext
from hmi.page import PageRequest
from hmi.pages import alarms as alarm_page
from hmi.server import HmiServer
from tests.hmi.alarm_display_support import (
    LAMP,
    QUIET,
    TANK_LOW,
    TRIPPED,
    FakeClock,
    clear_alarm,
    find,
    make_service,
    raise_alarm,
    text_of,
    with_class,
)
from tests.hmi.conftest import OPERATOR_NAME, OPERATOR_PASSWORD, SECRET_KEY, hmi_context
from tests.hmi.http_support import log_in, send

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
VIEWER = User("vera", Role.VIEWER)
OPERATOR = User("olga", Role.OPERATOR)
MAINTENANCE = User("mats", Role.MAINTENANCE)
VIEWER_PASSWORD = "only looking 12345"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlHistorian]:
    opened = SqlHistorian(f"sqlite:///{tmp_path / 'alarms.db'}")
    yield opened
    opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(store: SqlHistorian, clock: FakeClock) -> AlarmService:
    """Pump tripped (high, unacknowledged), reservoir low (critical, acknowledged), lamp
    failed and cleared (low, returned unacknowledged); the heating alarm normal."""
    service = make_service(store, clock)
    raise_alarm(service, clock, TRIPPED.name, True)
    clock.advance(60)
    raise_alarm(service, clock, TANK_LOW.name, 0.8)
    service.acknowledge([TANK_LOW.name], OPERATOR, "seen, crew called")
    clock.advance(60)
    raise_alarm(service, clock, LAMP.name, True)
    clock.advance(10)
    clear_alarm(service, clock, LAMP.name)
    return service


@pytest.fixture
def context(
    live_view: LiveView,
    history: HistoryReader,
    journal: EventJournal,
    service: AlarmService,
    store: SqlHistorian,
) -> HmiContext:
    return hmi_context(
        live_view, history, journal, alarms=service, alarm_journal=store, timezone=AMSTERDAM
    )


# --- filters, words, paging ---------------------------------------------------------------------


def test_query_string_preselects_filters_and_drops_what_it_does_not_know() -> None:
    wanted = AlarmFilter.from_query(
        {"area": "water", "priority": "HIGH", "state": "unacknowledged", "text": " pump "}
    )
    assert wanted == AlarmFilter(area="water", priority="high", state="unacknowledged", text="pump")
    hostile = AlarmFilter.from_query(
        {
            "priority": "urgent'; drop table",
            "state": "<script>",
            "view": "../../etc",
            "text": "x" * 10_000,
            "alarm": "\u0000\u202e",
        }
    )
    assert hostile.priority == "" and hostile.state == "" and hostile.view == "active"
    assert len(hostile.text) == MAX_FILTER_CHARS
    assert AlarmFilter.from_query({}) == AlarmFilter()


def test_current_alarms_filter_by_area_priority_state_text_alarm_and_asset(
    service: AlarmService,
) -> None:
    pairs = service.states()
    names = [d.name for d, _ in current_alarms(pairs, AlarmFilter())]
    # The normal heating alarm is not listed; the most urgent first.
    assert names == [TANK_LOW.name, TRIPPED.name, LAMP.name]
    assert QUIET.name not in names

    def only(**query: str) -> list[str]:
        return [d.name for d, _ in current_alarms(pairs, AlarmFilter.from_query(query))]

    assert only(area="lighting") == [LAMP.name]
    assert only(priority="high") == [TRIPPED.name]
    assert only(state="returned_unacknowledged") == [LAMP.name]
    assert only(state="unacknowledged_any") == [TRIPPED.name, LAMP.name]
    assert only(state="acknowledged") == [TANK_LOW.name]
    assert only(text="RESERVOIR") == [TANK_LOW.name]
    assert only(alarm=TRIPPED.name) == [TRIPPED.name]
    assert only(asset="water.ps1") == [TRIPPED.name]
    assert only(area="no-such-area") == []
    assert loud_count(pairs) == 1  # the tripped pump; the critical one is acknowledged


def test_history_entries_filter_and_order_newest_first(
    service: AlarmService, store: SqlHistorian
) -> None:
    transitions = store.read_alarm_journal()

    def definition(name: str) -> Any:
        try:
            return service.definition(name)
        except KeyError:
            return None

    everything = history_entries(transitions, AlarmFilter(view=HISTORY_VIEW), definition)
    assert [t.time for t in everything] == sorted((t.time for t in transitions), reverse=True)
    acknowledged = history_entries(
        transitions, AlarmFilter(view=HISTORY_VIEW, text="crew called"), definition
    )
    assert [(t.alarm, t.action) for t in acknowledged] == [(TANK_LOW.name, AlarmAction.ACKNOWLEDGE)]
    lamp = history_entries(transitions, AlarmFilter(asset="lights.d1.c1"), definition)
    assert {t.alarm for t in lamp} == {LAMP.name} and len(lamp) == 2


def test_pages_are_clamped() -> None:
    items = list(range(120))
    assert page_of(items, 0, size=50).items == list(range(50))
    last = page_of(items, 99, size=50)
    assert (last.page, last.pages, last.items) == (2, 3, list(range(100, 120)))
    assert len(page_of(items, 0).items) == alarm_actions.PAGE_SIZE <= 25
    assert page_of(items, -5).page == 0
    assert page_of([], 3).pages == 1


# --- drawing ---------------------------------------------------------------------------------


def test_table_shows_priority_word_local_time_state_words_and_value(context: HmiContext) -> None:
    view = alarm_page.render(context, OPERATOR, PageRequest("/alarms"))
    rows = with_class(view, "alarm-row")
    assert len(rows) == 3
    tripped = next(r for r in rows if TRIPPED.name in text_of(r))
    text = text_of(tripped)
    # 11:00 UTC is 12:00 at the site.
    assert "2030-01-01 12:00:00 CET" in text
    assert "high" in text and "Active, unacknowledged" in text and "ON" in text
    assert "Pump 1 of station 1 tripped" in text
    assert "priority-high" in tripped.className and "state-unacknowledged" in tripped.className
    lamp = next(r for r in rows if LAMP.name in text_of(r))
    assert "Returned, unacknowledged" in text_of(lamp)
    assert "Page 1 of 1 · 3 alarms" in text_of(find(view, alarm_page.PAGE_INFO_ID))


def test_query_preselects_and_opens_the_alarm_with_its_guidance_and_journal(
    context: HmiContext,
) -> None:
    view = alarm_page.render(
        context, OPERATOR, PageRequest("/alarms", query={"alarm": TANK_LOW.name})
    )
    assert find(view, alarm_page.ALARM_ID).value == TANK_LOW.name
    assert len(with_class(view, "alarm-row")) == 1
    detail = find(view, alarm_page.DETAIL_ID)
    assert TANK_LOW.name in text_of(find(detail, "alarms-detail-name"))
    journal = text_of(find(detail, "alarms-detail-journal"))
    assert "acknowledge" in journal and "olga" in journal and "seen, crew called" in journal

    tripped = alarm_page.detail_view(context, TRIPPED.name)
    assert text_of(find(tripped, "alarms-guidance-cause")) == "Drive fault"
    assert text_of(find(tripped, "alarms-guidance-action")) == "Reset the drive"
    assert "No alarm named" in text_of(alarm_page.detail_view(context, "<img src=x>"))


def test_history_view_lists_transitions(context: HmiContext) -> None:
    table, _, info, _ = alarm_page.table_view(
        context, AlarmFilter(view=HISTORY_VIEW, alarm=TANK_LOW.name), 0, [], ""
    )
    text = text_of(table)
    assert "acknowledge" in text and "seen, crew called" in text and "activate" in text
    assert info.endswith("2 entries")


def test_paging_keeps_thousands_of_alarms_to_one_page(context: HmiContext) -> None:
    class Many:
        """Two thousand active alarms, as a large site has."""

        def __init__(self, service: Any) -> None:
            self.service = service

        def states(self, **_: Any) -> list[Any]:
            definition, state = self.service.states()[0]
            return [(definition, state)] * 2000

    crowded = HmiContext(**{**context.__dict__, "alarms": Many(context.alarms)})
    table, page, info, _ = alarm_page.table_view(crowded, AlarmFilter(), 7, [], "")
    pages = -(-2000 // alarm_actions.PAGE_SIZE)
    assert page == 7 and info.startswith(f"Page 8 of {pages}")
    assert len(with_class(table, "alarm-row")) == alarm_actions.PAGE_SIZE


@pytest.mark.parametrize(
    ("user", "enabled"),
    [
        (VIEWER, set()),
        (OPERATOR, {alarm_page.ACK_ID, alarm_page.SHELVE_ID, alarm_page.UNSHELVE_ID}),
        (
            MAINTENANCE,
            {
                alarm_page.ACK_ID,
                alarm_page.SHELVE_ID,
                alarm_page.UNSHELVE_ID,
                alarm_page.OUT_OF_SERVICE_ID,
                alarm_page.RETURN_ID,
            },
        ),
    ],
)
def test_action_buttons_follow_the_role(context: HmiContext, user: User, enabled: set[str]) -> None:
    view = alarm_page.render(context, user, PageRequest("/alarms"))
    buttons = {
        alarm_page.ACK_ID,
        alarm_page.SHELVE_ID,
        alarm_page.UNSHELVE_ID,
        alarm_page.OUT_OF_SERVICE_ID,
        alarm_page.RETURN_ID,
    }
    assert {b for b in buttons if not find(view, b).disabled} == enabled


# --- actions through the service -----------------------------------------------------------------


def test_acknowledge_with_comment_and_refusals_as_text(
    service: AlarmService, store: SqlHistorian
) -> None:
    said = alarm_actions.acknowledge(service, OPERATOR, [TRIPPED.name, LAMP.name], "on it")
    assert said == f"Acknowledged 2: {LAMP.name}, {TRIPPED.name}"
    assert service.state(TRIPPED.name).display is AlarmDisplayState.ACKNOWLEDGED
    assert service.state(LAMP.name).display is AlarmDisplayState.NORMAL
    ack = store.read_alarm_journal(alarm=TRIPPED.name)[-1]
    assert (ack.action, ack.user, ack.comment) == (AlarmAction.ACKNOWLEDGE, "olga", "on it")

    again = alarm_actions.acknowledge(service, OPERATOR, [TRIPPED.name], "")
    assert again.startswith("Could not acknowledge:")
    assert alarm_actions.acknowledge(service, VIEWER, [TANK_LOW.name], "").startswith("Refused:")
    unknown = alarm_actions.acknowledge(service, OPERATOR, ["no.such.alarm"], "")
    assert unknown == "Refused: no alarm named 'no.such.alarm'"
    assert alarm_actions.acknowledge(service, OPERATOR, [], "") == (
        "Select the alarms to acknowledge."
    )


def test_shelve_needs_a_reason_then_shelves_and_unshelves(
    service: AlarmService, clock: FakeClock
) -> None:
    refused = alarm_actions.shelve(service, OPERATOR, [TRIPPED.name], "  ", "3600", now=clock.now())
    assert refused.startswith("Nothing to shelve. Could not shelve:")
    assert service.state(TRIPPED.name).display is AlarmDisplayState.UNACKNOWLEDGED

    said = alarm_actions.shelve(
        service, OPERATOR, [TRIPPED.name], "drive being replaced", "3600", now=clock.now()
    )
    assert said == f"Shelve: {TRIPPED.name}"
    state = service.state(TRIPPED.name)
    assert state.display is AlarmDisplayState.SHELVED
    assert state.shelved_until == clock.now() + timedelta(hours=1)
    assert alarm_actions.shelve(service, OPERATOR, [LAMP.name], "x", "forever") == (
        "Choose how long to shelve."
    )
    # Longer than the site allows: the service refuses, the display says why.
    too_long = alarm_actions.shelve(
        service, OPERATOR, [LAMP.name], "noisy", str(10**9), now=clock.now()
    )
    assert "Could not shelve" in too_long
    one_shot = alarm_actions.shelve(service, OPERATOR, [TANK_LOW.name], "known", "one-shot")
    assert one_shot == f"Shelve: {TANK_LOW.name}" and service.state(TANK_LOW.name).one_shot

    assert alarm_actions.unshelve(service, OPERATOR, [TRIPPED.name], "back") == (
        f"Unshelve: {TRIPPED.name}"
    )
    assert service.state(TRIPPED.name).display is AlarmDisplayState.UNACKNOWLEDGED


def test_out_of_service_is_for_maintenance(service: AlarmService) -> None:
    refused = alarm_actions.remove_from_service(service, OPERATOR, [TRIPPED.name], "repair")
    assert refused.startswith("Nothing to take out of service. Refused:")
    said = alarm_actions.remove_from_service(service, MAINTENANCE, [TRIPPED.name], "repair")
    assert said == f"Take out of service: {TRIPPED.name}"
    assert service.state(TRIPPED.name).display is AlarmDisplayState.OUT_OF_SERVICE
    back = alarm_actions.return_to_service(service, MAINTENANCE, [TRIPPED.name], "repaired")
    assert back == f"Return to service: {TRIPPED.name}"


def test_chosen_alarms_take_ticks_else_the_open_alarm_and_ignore_junk() -> None:
    assert alarm_page.chosen_alarms(["a", "b", "a"], "c") == ["a", "b"]
    assert alarm_page.chosen_alarms([], "c") == ["c"]
    assert alarm_page.chosen_alarms({"evil": 1}, 5) == []
    assert alarm_page.chosen_alarms([1, None, "x"], "") == ["x"]
    assert len(alarm_page.chosen_alarms([f"a{i}" for i in range(10_000)], "")) == 500


# --- the server's check of a forged callback ------------------------------------------------------


def _ack_payload(names: list[str], comment: str) -> bytes:
    payload = {
        "output": f"{alarm_page.ACK_RESULT_ID}.children",
        "outputs": {"id": alarm_page.ACK_RESULT_ID, "property": "children"},
        "inputs": [{"id": alarm_page.ACK_ID, "property": "n_clicks", "value": 1}],
        "state": [
            {"id": alarm_page.SELECTED_ID, "property": "data", "value": names},
            {"id": alarm_page.FOCUS_ID, "property": "data", "value": ""},
            {"id": alarm_page.COMMENT_ID, "property": "value", "value": comment},
        ],
        "changedPropIds": [f"{alarm_page.ACK_ID}.n_clicks"],
    }
    return json.dumps(payload).encode()


def test_forged_acknowledge_by_a_viewer_gets_403_and_is_journaled(
    context: HmiContext,
    login_sessions: LoginSessions,
    user_store: UserStore,
    journal_events: list[Event],
    service: AlarmService,
) -> None:
    user_store.add_user(VIEWER.name, VIEWER_PASSWORD, Role.VIEWER)
    server = HmiServer(create_hmi(context, login_sessions, secret_key=SECRET_KEY), port=0)
    server.start()
    try:
        headers = {"Content-Type": "application/json"}
        viewer = log_in(server.url, VIEWER.name, VIEWER_PASSWORD).cookie()
        forged = send(
            server.url,
            "POST",
            "/_dash-update-component",
            body=_ack_payload([TRIPPED.name], "forged"),
            headers=headers,
            cookie=viewer,
        )
        assert forged.status == 403
        assert service.state(TRIPPED.name).display is AlarmDisplayState.UNACKNOWLEDGED
        refusals = [
            e for e in journal_events if e.kind is EventKind.AUDIT and e.user == VIEWER.name
        ]
        assert refusals and "acknowledge_alarms" in refusals[-1].message

        # The same request from an operator is a valid one: it acknowledges.
        operator = log_in(server.url, OPERATOR_NAME, OPERATOR_PASSWORD).cookie()
        done = send(
            server.url,
            "POST",
            "/_dash-update-component",
            body=_ack_payload([TRIPPED.name], "by hand"),
            headers=headers,
            cookie=operator,
        )
        assert done.status == 200, done.body
        assert f"Acknowledged 1: {TRIPPED.name}" in done.body.decode()
        assert service.state(TRIPPED.name).display is AlarmDisplayState.ACKNOWLEDGED
    finally:
        server.stop()
