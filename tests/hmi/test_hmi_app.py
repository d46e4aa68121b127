"""create_hmi refuses configurations it cannot display correctly."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controlcenter.ports import EventJournal, HistoryReader, LiveView, LoginSessions
from hmi.app import create_hmi


def build(
    live_view: LiveView,
    history: HistoryReader,
    login_sessions: LoginSessions,
    journal: EventJournal,
    *,
    featured: tuple[str, ...] = ("water.tank1.level",),
    secret_key: bytes = b"s" * 32,
    window: timedelta = timedelta(minutes=5),
) -> None:
    create_hmi(
        live_view,
        history,
        login_sessions,
        journal,
        site_name="Testville",
        featured_tags=featured,
        secret_key=secret_key,
        trend_window=window,
    )


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


def test_empty_trend_window_is_refused(
    live_view: LiveView,
    history: HistoryReader,
    login_sessions: LoginSessions,
    journal: EventJournal,
) -> None:
    with pytest.raises(ValueError, match="trend_window"):
        build(live_view, history, login_sessions, journal, window=timedelta(0))


def test_valid_configuration_builds(
    live_view: LiveView,
    history: HistoryReader,
    login_sessions: LoginSessions,
    journal: EventJournal,
) -> None:
    build(live_view, history, login_sessions, journal)
