"""``controlcenter alarms`` against a real SQLite historian and users file, with a running center
played by an AlarmService and its request processor polling in a thread of their own."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner, Result

from alarms.conditions import ConditionChange
from alarms.requests import AlarmRequestProcessor
from alarms.service import AlarmService
from controlcenter.automation import AlarmDef, AlarmDisplayState, AlarmKind, AlarmPriority
from controlcenter.cli.alarms import alarms_app
from controlcenter.clock import WallClock
from controlcenter.model import Event, EventKind, Role
from controlcenter.ports import AlarmRequestStatus
from controlcenter.security.users import UserStore
from historian.store import SqlHistorian

PASSWORD = "correct horse battery staple 42"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
HIGH = AlarmDef(
    "water.tank1.level_high",
    AlarmKind.HIGH,
    AlarmPriority.HIGH,
    tag="water.tank1.level",
    device="water.rtu1",
    limit=4.0,
    area="water",
)
LAMP = AlarmDef("lights.d1.lamp", AlarmKind.DISCRETE, AlarmPriority.LOW, area="lighting")


class Journal:
    def __init__(self, store: SqlHistorian) -> None:
        self.store = store

    def record(self, event: Event) -> None:
        self.store.journal_event(event)


@pytest.fixture
def paths(tmp_path: Path) -> tuple[str, Path]:
    users = tmp_path / "users.json"
    store = UserStore(users, hasher=FAST_HASHER)
    store.add_user("vera", PASSWORD, Role.VIEWER)
    store.add_user("otto", PASSWORD, Role.OPERATOR)
    store.add_user("mia", PASSWORD, Role.MAINTENANCE)
    return f"sqlite:///{tmp_path / 'center.db'}", users


@contextmanager
def running_center(db: str, users: Path) -> Iterator[AlarmService]:
    """An alarm service with both alarms active, applying queued requests every 20 ms."""
    store = SqlHistorian(db)
    clock = WallClock()
    service = AlarmService((HIGH, LAMP), store, Journal(store), clock)
    service.restore()
    now = datetime.now(UTC)
    service.apply_conditions(
        [
            ConditionChange(HIGH.name, now, True, None, 4.6, "level high", "above 4"),
            ConditionChange(LAMP.name, now, True, None, True, "lamp failed", ""),
        ]
    )
    lookup = UserStore(users, hasher=FAST_HASHER).get_user
    processor = AlarmRequestProcessor(service, store, lookup, clock)
    stop = threading.Event()

    def serve() -> None:
        while not stop.wait(0.02):
            processor.poll_requests_once()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        stop.set()
        thread.join(timeout=10)
        store.close()


def invoke(db: str, users: Path, *args: str, user: str = "otto", wait: str = "5") -> Result:
    common = ["--db", db]
    acting = args[0] not in {"list", "history"}
    if acting:
        common += ["--users", str(users), "--user", user, "--wait", wait]
    return CliRunner().invoke(alarms_app, [*args, *common], env={"CC_PASSWORD": PASSWORD})


def test_acting_through_a_running_center(paths: tuple[str, Path]) -> None:
    db, users = paths
    with running_center(db, users) as service:
        done = invoke(db, users, "ack", HIGH.name, "--comment", "seen")
        assert done.exit_code == 0, done.output
        assert "done: water.tank1.level_high: acknowledge" in done.output
        assert service.state(HIGH.name).display is AlarmDisplayState.ACKNOWLEDGED
        shelved = invoke(db, users, "shelve", LAMP.name, "--minutes", "30", "--reason", "works")
        assert shelved.exit_code == 0, shelved.output
        assert service.state(LAMP.name).display is AlarmDisplayState.SHELVED
        decade = invoke(db, users, "shelve", HIGH.name, "--minutes", "5256000", "--reason", "x")
        assert decade.exit_code == 1 and "at most 8 h" in decade.output
        oos = invoke(db, users, "oos", HIGH.name, "--reason", "sensor swap")
        assert oos.exit_code == 1 and "maintenance role" in oos.output  # otto is an operator
        oos = invoke(db, users, "oos", HIGH.name, "--reason", "sensor swap", user="mia")
        assert oos.exit_code == 0, oos.output
        back = invoke(db, users, "return", HIGH.name, user="mia")
        assert back.exit_code == 0, back.output
        unknown = invoke(db, users, "ack", "no.such.alarm")
        assert unknown.exit_code == 1 and "no alarm named 'no.such.alarm'" in unknown.output
        note = invoke(db, users, "comment", HIGH.name, "float switch sticks")
        assert note.exit_code == 0, note.output
        unshelve = invoke(db, users, "unshelve", LAMP.name, "--reason", "done")
        assert unshelve.exit_code == 0, unshelve.output
    listed = invoke(db, users, "list", "--format", "json")
    rows = {row["alarm"]: row for row in json.loads(listed.output)}
    assert rows[HIGH.name]["priority"] == 2 and rows[HIGH.name]["area"] == "water"
    assert rows[LAMP.name]["state"] == "unacknowledged"
    table = invoke(db, users, "list", "--state", "unacknowledged")
    assert LAMP.name in table.output and HIGH.name in table.output
    history = invoke(db, users, "history", "--alarm", HIGH.name, "--format", "json")
    actions = [row["action"] for row in json.loads(history.output)]
    assert actions == [
        "activate",
        "acknowledge",
        "remove_from_service",
        "return_to_service",
        "comment",
    ]
    by_mia = invoke(db, users, "history", "--user", "mia")
    assert "remove_from_service" in by_mia.output and "acknowledge " not in by_mia.output


def test_refusals_before_queuing(paths: tuple[str, Path]) -> None:
    db, users = paths
    viewer = invoke(db, users, "ack", HIGH.name, user="vera")
    assert viewer.exit_code == 1 and "needs the operator role" in viewer.output
    blank = invoke(db, users, "shelve", HIGH.name, "--minutes", "10", "--reason", "   ")
    assert blank.exit_code == 2 and "must not be blank" in blank.output
    both = invoke(db, users, "shelve", HIGH.name, "--reason", "x")
    assert both.exit_code == 2 and "--minutes or --one-shot" in both.output
    wrong = CliRunner().invoke(
        alarms_app,
        ["ack", HIGH.name, "--db", db, "--users", str(users), "--user", "otto"],
        env={"CC_PASSWORD": "wrong"},
    )
    assert wrong.exit_code == 1
    with SqlHistorian(db) as store:
        assert store.pending_alarm_requests() == []
        refused = store.read_events(kind=EventKind.ALARM)
        assert [(e.user, e.source) for e in refused] == [("vera", HIGH.name)]


def test_without_a_running_center_the_request_stays_queued(paths: tuple[str, Path]) -> None:
    db, users = paths
    queued = invoke(db, users, "ack", HIGH.name, LAMP.name, wait="0")
    assert queued.exit_code == 0
    assert "stays queued" in queued.output
    with SqlHistorian(db) as store:
        (pending,) = store.pending_alarm_requests()
        assert pending.alarms == (HIGH.name, LAMP.name)
        assert pending.status is AlarmRequestStatus.PENDING
    with running_center(db, users) as service, SqlHistorian(db) as store:
        # Raised after the request was queued: the center acknowledges them when it starts.
        deadline = 200
        while store.alarm_request(pending.id).status is AlarmRequestStatus.PENDING and deadline:
            threading.Event().wait(0.02)
            deadline -= 1
        assert store.alarm_request(pending.id).status is AlarmRequestStatus.DONE
        assert service.state(HIGH.name).display is AlarmDisplayState.ACKNOWLEDGED
