"""The alarm banner: counts by priority (unacknowledged / active), the most urgent
unacknowledged alarms first (priority, then the newest), links to the alarm list, and shelved
or acknowledged alarms leaving the unacknowledged list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from alarms.service import AlarmService
from controlcenter.automation import AlarmDef, AlarmKind, AlarmPriority
from controlcenter.model import Role, User
from controlcenter.ports import EventJournal, HistoryReader, LiveView
from historian.store import SqlHistorian
from hmi.banner import BANNER_ALARMS, alarm_list_href, render_banner
from hmi.context import HmiContext
from tests.hmi.alarm_display_support import (
    LAMP,
    TANK_LOW,
    TRIPPED,
    FakeClock,
    StoreJournal,
    find,
    make_service,
    raise_alarm,
    text_of,
    with_class,
)
from tests.hmi.conftest import hmi_context

OPERATOR = User("olga", Role.OPERATOR)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlHistorian]:
    opened = SqlHistorian(f"sqlite:///{tmp_path / 'alarms.db'}")
    yield opened
    opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _context(
    live: LiveView, history: HistoryReader, journal: EventJournal, service: AlarmService | None
) -> HmiContext:
    return hmi_context(live, history, journal, alarms=service)


def _links(banner: Any) -> list[str]:
    return [node.href for node in with_class(banner, "banner-alarm")]


def test_counts_and_most_urgent_unacknowledged_first(
    live_view: LiveView,
    history: HistoryReader,
    journal: EventJournal,
    store: SqlHistorian,
    clock: FakeClock,
) -> None:
    service = make_service(store, clock)
    raise_alarm(service, clock, LAMP.name, True)
    clock.advance(5)
    raise_alarm(service, clock, TRIPPED.name, True)
    clock.advance(5)
    raise_alarm(service, clock, TANK_LOW.name, 0.5)
    banner = render_banner(_context(live_view, history, journal, service), OPERATOR)

    assert _links(banner) == [
        alarm_list_href(alarm=TANK_LOW.name),
        alarm_list_href(alarm=TRIPPED.name),
        alarm_list_href(alarm=LAMP.name),
    ]
    first = with_class(banner, "banner-alarm")[0]
    # Colour only with the word: the priority is written out beside the name.
    assert "critical" in text_of(first) and "priority-critical" in first.className
    assert text_of(find(banner, "banner-unacked")) == "3 unacknowledged"
    assert text_of(find(banner, "banner-count-high")) == "high 1 /1"
    assert "nonzero" in find(banner, "banner-count-critical").className
    assert "nonzero" not in find(banner, "banner-count-medium").className

    # Acknowledged: still active, no longer unacknowledged; shelved: neither.
    service.acknowledge([TANK_LOW.name], OPERATOR, "seen")
    service.shelve(LAMP.name, OPERATOR, "lamp crew on site", one_shot=True)
    banner = render_banner(_context(live_view, history, journal, service), OPERATOR)
    assert _links(banner) == [alarm_list_href(alarm=TRIPPED.name)]
    assert text_of(find(banner, "banner-count-critical")) == "critical 0 /1"
    assert text_of(find(banner, "banner-count-low")) == "low 0 /0"
    assert text_of(find(banner, "banner-unacked")) == "1 unacknowledged"


def test_more_alarms_than_fit_link_to_the_filtered_list(
    live_view: LiveView,
    history: HistoryReader,
    journal: EventJournal,
    store: SqlHistorian,
    clock: FakeClock,
) -> None:
    many = [
        AlarmDef(f"water.dma{i}.night_flow", AlarmKind.DISCRETE, AlarmPriority.MEDIUM, area="water")
        for i in range(BANNER_ALARMS + 4)
    ]
    service = AlarmService(many, store, StoreJournal(store), clock)
    for definition in many:
        clock.advance(1)
        raise_alarm(service, clock, definition.name, True)
    banner = render_banner(_context(live_view, history, journal, service), OPERATOR)
    # The newest first.
    assert _links(banner) == [alarm_list_href(alarm=d.name) for d in reversed(many)][:BANNER_ALARMS]
    more = with_class(banner, "banner-more")[0]
    assert text_of(more) == "+4 more"
    assert parse_qs(urlsplit(more.href).query) == {"state": ["unacknowledged_any"]}


def test_no_alarm_service_and_quiet_site(
    live_view: LiveView,
    history: HistoryReader,
    journal: EventJournal,
    store: SqlHistorian,
    clock: FakeClock,
) -> None:
    none = render_banner(_context(live_view, history, journal, None), OPERATOR)
    assert "not available" in text_of(none)
    quiet = render_banner(
        _context(live_view, history, journal, make_service(store, clock)), OPERATOR
    )
    assert "No unacknowledged alarms" in text_of(quiet)
    assert find(quiet, "banner-link").href == "/alarms"


def test_alarm_names_are_query_encoded() -> None:
    assert alarm_list_href(alarm="a b&c=d") == "/alarms?alarm=a+b%26c%3Dd"
    assert alarm_list_href(priority="", alarm="") == "/alarms"
