"""create_hmi refuses configurations it cannot display correctly."""

from __future__ import annotations

import dataclasses

import pytest

from controlcenter.ports import EventJournal, HistoryReader, LiveView, LoginSessions
from hmi.app import HmiSecurity, create_hmi
from hmi.pages import all_pages
from tests.hmi.conftest import hmi_context


def build(
    live_view: LiveView,
    history: HistoryReader,
    login_sessions: LoginSessions,
    journal: EventJournal,
    *,
    featured: tuple[str, ...] = ("water.tank1.level",),
    secret_key: bytes = b"s" * 32,
    security: HmiSecurity | None = None,
) -> None:
    context = dataclasses.replace(hmi_context(live_view, history, journal), featured=featured)
    create_hmi(context, login_sessions, secret_key=secret_key, security=security)


def test_unknown_featured_tag_is_refused(
    live_view: LiveView,
    history: HistoryReader,
    login_sessions: LoginSessions,
    journal: EventJournal,
) -> None:
    with pytest.raises(ValueError, match=r"featured tags not configured: water\.nope"):
        build(
            live_view,
            history,
            login_sessions,
            journal,
            featured=("water.tank1.level", "water.nope"),
        )


def test_short_secret_key_is_refused(
    live_view: LiveView,
    history: HistoryReader,
    login_sessions: LoginSessions,
    journal: EventJournal,
) -> None:
    with pytest.raises(ValueError, match="secret_key"):
        build(live_view, history, login_sessions, journal, secret_key=b"short")


def test_no_host_name_is_refused(
    live_view: LiveView,
    history: HistoryReader,
    login_sessions: LoginSessions,
    journal: EventJournal,
) -> None:
    with pytest.raises(ValueError, match="host name"):
        build(live_view, history, login_sessions, journal, security=HmiSecurity(host_names=()))


def test_valid_configuration_builds_with_the_trend_and_tag_displays(
    live_view: LiveView,
    history: HistoryReader,
    login_sessions: LoginSessions,
    journal: EventJournal,
) -> None:
    build(live_view, history, login_sessions, journal)
    pages = {page.path: page for page in all_pages()}
    assert pages["/trends"].nav_label == "Trends"
    assert pages["/tags"].level == 4
