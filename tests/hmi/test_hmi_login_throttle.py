"""Login throttling over real HTTP: lockouts per user and per address that grow each time."""

from __future__ import annotations

from controlcenter.model import Event, EventKind
from hmi.server import HmiServer
from tests.hmi.clock_support import ManualClock
from tests.hmi.http_support import layout_status, log_in

WRONG = "not-the-password-at-all"


def audit(events: list[Event]) -> list[str]:
    return [f"{e.user}: {e.message}" for e in events if e.kind is EventKind.AUDIT]


def test_user_lockout_refuses_the_right_password_for_a_growing_time(
    hmi_server: HmiServer,
    operator_credentials: tuple[str, str],
    manual_clock: ManualClock,
    journal_events: list[Event],
) -> None:
    name, password = operator_credentials
    url = hmi_server.url

    assert [log_in(url, name, WRONG).status for _ in range(5)] == [401] * 5
    locked = log_in(url, name, password)
    assert locked.status == 429
    assert locked.headers["Retry-After"] == "30"
    assert b"Too many refused logins" in locked.body
    assert locked.cookie() == ""
    assert (
        f"{name}: login locked for user {name!r} for 30 s after 5 refused logins (from "
        "127.0.0.1)" in audit(journal_events)
    )

    manual_clock.advance(31)
    assert [log_in(url, name, WRONG).status for _ in range(5)] == [401] * 5
    # The second lockout of the same name lasts twice as long.
    assert log_in(url, name, password).headers["Retry-After"] == "60"
    manual_clock.advance(59)
    assert log_in(url, name, password).status == 429

    manual_clock.advance(2)
    granted = log_in(url, name, password)
    assert granted.status == 302
    assert layout_status(url, granted.cookie()) == 200
    refusals = [m for m in audit(journal_events) if "login refused" in m]
    assert len(refusals) == 10


def test_address_lockout_covers_every_user_name(
    hmi_server: HmiServer,
    operator_credentials: tuple[str, str],
    journal_events: list[Event],
) -> None:
    name, password = operator_credentials
    url = hmi_server.url

    # One guess each for 20 names: no user reaches its limit, the address does.
    statuses = [log_in(url, f"guess{index}", WRONG).status for index in range(20)]
    assert statuses == [401] * 20
    assert log_in(url, name, password).status == 429
    assert any(
        "login locked for address 127.0.0.1 for 30 s after 20 refused logins" in message
        for message in audit(journal_events)
    )


def test_a_good_login_forgets_earlier_refusals_of_that_user(
    hmi_server: HmiServer, operator_credentials: tuple[str, str]
) -> None:
    name, password = operator_credentials
    url = hmi_server.url

    for _ in range(4):
        assert log_in(url, name, WRONG).status == 401
    assert log_in(url, name, password).status == 302
    for _ in range(4):
        assert log_in(url, name, WRONG).status == 401
    assert log_in(url, name, password).status == 302
