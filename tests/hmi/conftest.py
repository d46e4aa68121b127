"""Fixtures for the HMI tests: a small simulated plant behind the ports the HMI reads.

The plant runs on a simulated clock starting at 2030-01-01, 60 times faster than real time, so
the tests can tell whether the HMI takes its time axis from the samples or from the wall clock.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import dash
import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from controlcenter.model import (
    CommandResult,
    DataType,
    Event,
    Quality,
    Role,
    Sample,
    Substatus,
    TagDef,
)
from controlcenter.ports import (
    EventJournal,
    HistoryQueryReader,
    HistoryReader,
    LiveView,
    LoginSessions,
)
from controlcenter.security.login import LoginService
from controlcenter.security.sessions import SessionPolicy, SessionStore
from controlcenter.security.throttle import LoginThrottle
from controlcenter.security.users import UserStore
from hmi.app import create_hmi
from hmi.context import HmiContext
from hmi.server import HmiServer
from tests.hmi.clock_support import ManualClock

SIM_EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
SIM_SPEED = 60.0
OPERATOR_NAME = "olga"
OPERATOR_PASSWORD = "pump-station-7"
SECRET_KEY = b"k" * 32

LEVEL = "water.tank1.level"
PUMP = "water.pump1.running"
TANK2 = "water.tank2.level"
PRESSURE = "water.main.pressure"
TAGS = (
    TagDef(LEVEL, "rtu1", "40001", DataType.FLOAT, unit="m", description="Tank 1 level"),
    TagDef(PUMP, "rtu1", "00001", DataType.BOOL, description="Pump 1 running"),
    TagDef(TANK2, "rtu2", "40001", DataType.FLOAT, unit="m", description="Tank 2 level"),
    TagDef(PRESSURE, "rtu1", "30001", DataType.INT, unit="kPa"),
)
FEATURED = (LEVEL, PUMP, TANK2)


class SimulatedPlant:
    """Tag values as functions of a simulated clock that runs SIM_SPEED times real time."""

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def run_for(self, span: timedelta) -> None:
        """Move the plant's clock ``span`` (simulated time) ahead at once."""
        self._origin -= span.total_seconds() / SIM_SPEED

    def now(self) -> datetime:
        """The plant's current simulated time."""
        return SIM_EPOCH + timedelta(seconds=(time.monotonic() - self._origin) * SIM_SPEED)

    def sample(self, tag: str, at: datetime) -> Sample:
        """The sample of ``tag`` at simulated time ``at``."""
        seconds = (at - SIM_EPOCH).total_seconds()
        if tag == LEVEL:
            # Changes every simulated second, i.e. many times per refresh of the display.
            value = 3.0 + math.sin(seconds / 120.0) + seconds / 1e5
            return Sample(tag, value, Quality.good(), at, at)
        if tag == PUMP:
            return Sample(tag, int(seconds // 300) % 2 == 0, Quality.good(), at, at)
        if tag == TANK2:
            bad = Quality.bad(Substatus.COMM_FAILURE, "RTU 2 does not answer")
            return Sample(tag, None, bad, at, at)
        if tag == PRESSURE:
            uncertain = Quality.uncertain(Substatus.LAST_USABLE, "stale")
            return Sample(tag, 412, uncertain, at, at)
        raise KeyError(tag)


class FakeLiveView:
    """LiveView over the simulated plant."""

    def __init__(self, plant: SimulatedPlant) -> None:
        self._plant = plant

    def tags(self) -> Sequence[TagDef]:
        """Every configured tag."""
        return TAGS

    def latest(self, tag: str) -> Sample:
        """The latest sample of ``tag``."""
        return self._plant.sample(tag, self._plant.now())

    def snapshot(self) -> Mapping[str, Sample]:
        """The latest sample of every tag."""
        now = self._plant.now()
        return {tag.name: self._plant.sample(tag.name, now) for tag in TAGS}


class FakeHistory:
    """HistoryReader holding one sample per 10 simulated seconds since SIM_EPOCH."""

    def __init__(self, plant: SimulatedPlant) -> None:
        self._plant = plant
        self.windows: list[tuple[datetime | None, datetime | None]] = []

    def read_raw(
        self, tag: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[Sample]:
        """Samples of ``tag`` between ``start`` and ``end``, oldest first."""
        self.windows.append((start, end))
        now = self._plant.now()
        first = max(start or SIM_EPOCH, SIM_EPOCH)
        last = min(end or now, now)
        step = timedelta(seconds=10)
        moment = SIM_EPOCH + step * math.ceil((first - SIM_EPOCH) / step)
        samples = []
        while moment <= last:
            samples.append(self._plant.sample(tag, moment))
            moment += step
        return samples

    def read_trend(self, tag: str, start: datetime, end: datetime, max_points: int) -> list[Sample]:
        """The raw samples of ``tag`` in [start, end) (few enough here to need no thinning)."""
        return [s for s in self.read_raw(tag, start, end) if s.server_time < end][-max_points:]

    def read_commands(
        self, start: datetime | None = None, end: datetime | None = None, **filters: object
    ) -> list[CommandResult]:
        """No commands in this plant."""
        return []

    def read_events(
        self, start: datetime | None = None, end: datetime | None = None, **filters: object
    ) -> list[Event]:
        """No journaled events in this plant."""
        return []


class ListJournal:
    """EventJournal appending to a list (under a lock: the HMI records from its own threads)."""

    def __init__(self, events: list[Event]) -> None:
        self._events = events
        self._lock = threading.Lock()

    def record(self, event: Event) -> None:
        """Append the event."""
        with self._lock:
            self._events.append(event)


def hmi_context(
    live: LiveView, history: HistoryReader, journal: EventJournal, **more: Any
) -> HmiContext:
    """The test plant as the HMI sees it (the fake history answers raw reads only)."""
    return HmiContext(
        live=live,
        history=cast(HistoryQueryReader, history),
        journal=journal,
        site_name="Testville Utilities",
        featured=FEATURED,
        **more,
    )


@pytest.fixture
def plant() -> SimulatedPlant:
    return SimulatedPlant()


@pytest.fixture
def live_view(plant: SimulatedPlant) -> LiveView:
    return FakeLiveView(plant)


@pytest.fixture
def history(plant: SimulatedPlant) -> FakeHistory:
    return FakeHistory(plant)


@pytest.fixture
def journal_events() -> list[Event]:
    return []


@pytest.fixture
def journal(journal_events: list[Event]) -> EventJournal:
    return ListJournal(journal_events)


@pytest.fixture
def user_store(tmp_path: Path) -> UserStore:
    # The cheapest Argon2 parameters keep the tests fast; production uses the RFC 9106 profile.
    store = UserStore(tmp_path / "users.json", hasher=PasswordHasher.from_parameters(CHEAPEST))
    store.add_user(OPERATOR_NAME, OPERATOR_PASSWORD, Role.OPERATOR)
    return store


@pytest.fixture
def manual_clock() -> ManualClock:
    """The clock of the sessions' lifetimes and of the login throttle."""
    return ManualClock()


@pytest.fixture
def session_store(
    tmp_path: Path, user_store: UserStore, manual_clock: ManualClock
) -> Iterator[SessionStore]:
    # Every activity is written at once, so that idle timeouts are exact in the tests.
    store = SessionStore(
        tmp_path / "sessions.sqlite",
        user_store,
        SessionPolicy(activity_resolution_s=0),
        wall_time=manual_clock,
    )
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def login_sessions(
    user_store: UserStore, session_store: SessionStore, manual_clock: ManualClock
) -> LoginSessions:
    return LoginService(user_store, session_store, LoginThrottle(monotonic=manual_clock))


@pytest.fixture
def hmi_app(
    live_view: LiveView,
    history: HistoryReader,
    login_sessions: LoginSessions,
    journal: EventJournal,
) -> dash.Dash:
    return create_hmi(
        hmi_context(live_view, history, journal), login_sessions, secret_key=SECRET_KEY
    )


@contextlib.contextmanager
def serving(app: dash.Dash, **options: Any) -> Iterator[HmiServer]:
    """``app`` served on a free loopback port until the block ends (``HmiServer`` options)."""
    server = HmiServer(app, port=0, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def serving_context(context: HmiContext, login_sessions: LoginSessions) -> Iterator[HmiServer]:
    """The HMI of ``context`` served on a free loopback port until the block ends."""
    with serving(create_hmi(context, login_sessions, secret_key=SECRET_KEY)) as server:
        yield server


@pytest.fixture
def hmi_server(hmi_app: dash.Dash) -> Iterator[HmiServer]:
    with serving(hmi_app) as server:
        yield server


@pytest.fixture
def operator_credentials() -> tuple[str, str]:
    """Name and password of the operator in ``user_store``."""
    return OPERATOR_NAME, OPERATOR_PASSWORD


@pytest.fixture
def trend_windows(history: FakeHistory) -> list[tuple[datetime | None, datetime | None]]:
    """The (start, end) of every history read, in order."""
    return history.windows
