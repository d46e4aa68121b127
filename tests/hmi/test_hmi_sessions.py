"""Server-side sessions over real HTTP: revocation at logout, expiry, user changes, restarts."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import dash
import pytest

from controlcenter.model import Role
from controlcenter.ports import EventJournal, HistoryReader, LiveView
from controlcenter.security.files import load_or_create_secret_key
from controlcenter.security.login import LoginService
from controlcenter.security.sessions import SessionPolicy, SessionStore
from controlcenter.security.throttle import LoginThrottle
from controlcenter.security.users import UserStore
from hmi.app import create_hmi
from hmi.server import HmiServer
from tests.hmi.clock_support import ManualClock
from tests.hmi.conftest import hmi_context
from tests.hmi.http_support import (
    banner_refresh_status,
    layout_status,
    log_in,
    log_out,
    navigation_status,
)

ENGINEER = "erik"
ENGINEER_PASSWORD = "boiler-house-engineer-42"
MINUTE = 60.0
HOUR = 3600.0


@pytest.fixture
def engineer(user_store: UserStore) -> tuple[str, str]:
    user_store.add_user(ENGINEER, ENGINEER_PASSWORD, Role.ENGINEER)
    return ENGINEER, ENGINEER_PASSWORD


def logged_in(url: str, name: str, password: str) -> str:
    reply = log_in(url, name, password)
    assert reply.status == 302
    cookie = reply.cookie()
    assert cookie
    return cookie


def test_logout_revokes_the_session_for_every_copy_of_the_cookie(
    hmi_server: HmiServer, operator_credentials: tuple[str, str]
) -> None:
    url = hmi_server.url
    cookie = logged_in(url, *operator_credentials)
    copied = str(cookie)
    assert layout_status(url, copied) == 200

    reply = log_out(url, cookie)

    assert reply.status == 302
    # The copy still carries a valid signature, but the session it names is gone.
    assert layout_status(url, copied) == 401


def test_privileged_sessions_end_after_30_idle_minutes(
    hmi_server: HmiServer, engineer: tuple[str, str], manual_clock: ManualClock
) -> None:
    url = hmi_server.url
    cookie = logged_in(url, *engineer)

    manual_clock.advance(20 * MINUTE)
    assert layout_status(url, cookie) == 200  # activity: the idle time starts again
    manual_clock.advance(29 * MINUTE)
    assert layout_status(url, cookie) == 200
    manual_clock.advance(30 * MINUTE)
    assert layout_status(url, cookie) == 401


def test_the_refresh_timer_is_not_activity(
    hmi_server: HmiServer, engineer: tuple[str, str], manual_clock: ManualClock
) -> None:
    url = hmi_server.url
    cookie = logged_in(url, *engineer)

    for changed in ("banner-tick.n_intervals", "alarm-version.data") * 2 + ("alarm-version.data",):
        manual_clock.advance(5 * MINUTE)
        assert banner_refresh_status(url, cookie, changed) == 200
    manual_clock.advance(5 * MINUTE)
    # 30 minutes of automatic refreshes only: the session has been idle all along.
    assert banner_refresh_status(url, cookie, "banner-tick.n_intervals") == 401


def test_opening_a_display_is_activity(
    hmi_server: HmiServer, engineer: tuple[str, str], manual_clock: ManualClock
) -> None:
    url = hmi_server.url
    cookie = logged_in(url, *engineer)

    for _ in range(5):
        manual_clock.advance(10 * MINUTE)
        assert navigation_status(url, cookie, "/trends", "?tags=water.tank1.level") == 200
    # 50 minutes after the login, 10 after the last click: still logged in.
    assert banner_refresh_status(url, cookie, "banner-tick.n_intervals") == 200


def test_console_sessions_last_a_shift_whatever_the_activity(
    hmi_server: HmiServer, operator_credentials: tuple[str, str], manual_clock: ManualClock
) -> None:
    url = hmi_server.url
    cookie = logged_in(url, *operator_credentials)

    manual_clock.advance(11 * HOUR)
    assert layout_status(url, cookie) == 200  # no idle timeout on an operator's console
    manual_clock.advance(1 * HOUR)
    assert layout_status(url, cookie) == 401  # the absolute lifetime: 12 hours


def test_password_or_role_change_revokes_the_users_sessions(
    hmi_server: HmiServer,
    user_store: UserStore,
    operator_credentials: tuple[str, str],
    engineer: tuple[str, str],
) -> None:
    url = hmi_server.url
    name, password = operator_credentials
    operator_cookie = logged_in(url, name, password)
    engineer_cookie = logged_in(url, *engineer)

    user_store.set_password(name, "a different passphrase 9")
    assert layout_status(url, operator_cookie) == 401
    assert layout_status(url, engineer_cookie) == 200

    user_store.set_role(ENGINEER, Role.ADMIN)
    assert layout_status(url, engineer_cookie) == 401
    assert layout_status(url, logged_in(url, *engineer)) == 200


class Center:
    """The HMI as the center builds it: secret key and sessions in files under ``var``."""

    def __init__(
        self,
        var: Path,
        users: UserStore,
        live_view: LiveView,
        history: HistoryReader,
        journal: EventJournal,
    ) -> None:
        self.sessions = SessionStore(var / "hmi-sessions.sqlite", users, SessionPolicy())
        app: dash.Dash = create_hmi(
            hmi_context(live_view, history, journal),
            LoginService(users, self.sessions, LoginThrottle()),
            secret_key=load_or_create_secret_key(var / "hmi-secret.key"),
        )
        self.server = HmiServer(app, port=0)
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
        self.sessions.close()


@pytest.fixture
def start_center(
    tmp_path: Path,
    user_store: UserStore,
    live_view: LiveView,
    history: HistoryReader,
    journal: EventJournal,
) -> Iterator[Callable[[], Center]]:
    started: list[Center] = []

    def start() -> Center:
        center = Center(tmp_path / "var", user_store, live_view, history, journal)
        started.append(center)
        return center

    yield start
    for center in started:
        center.stop()


def test_sessions_survive_a_restart_unless_revoked(
    start_center: Callable[[], Center], operator_credentials: tuple[str, str], tmp_path: Path
) -> None:
    first = start_center()
    kept = logged_in(first.server.url, *operator_credentials)
    revoked = logged_in(first.server.url, *operator_credentials)
    assert log_out(first.server.url, revoked).status == 302
    first.stop()

    second = start_center()

    assert layout_status(second.server.url, kept) == 200
    assert layout_status(second.server.url, revoked) == 401
    var = tmp_path / "var"
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    for name in ("hmi-secret.key", "hmi-sessions.sqlite"):
        assert stat.S_IMODE((var / name).stat().st_mode) == 0o600, name


def test_a_password_changed_by_the_command_line_ends_the_running_hmis_sessions(
    hmi_server: HmiServer, user_store: UserStore, operator_credentials: tuple[str, str]
) -> None:
    name, password = operator_credentials
    cookie = logged_in(hmi_server.url, name, password)
    # `controlcenter user add` is another process with its own store over the same file.
    command_line = UserStore(user_store.path)

    command_line.set_password(name, "changed at the console 7")

    assert layout_status(hmi_server.url, cookie) == 401
