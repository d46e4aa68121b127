"""The alarm monitor: samples from the bus through the engine into the service, timers on the
center's clock, shelves expiring on time; with a real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest_asyncio

from alarms.engine import AlarmEngine
from alarms.monitor import AlarmMonitor
from alarms.service import AlarmService
from controlcenter.automation import (
    AlarmDef,
    AlarmDisplayState,
    AlarmKind,
    AlarmPriority,
    SiteLocation,
)
from controlcenter.model import DataType, Event, Quality, Role, Sample, TagDef, User
from historian.store import SqlHistorian

START = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
LEVEL = TagDef("water.tank1.level", "water.tank1_rtu", "ir:0", DataType.FLOAT, "m", 0.0, 5.0)
HIGH = AlarmDef(
    "water.tank1.level.high",
    AlarmKind.HIGH,
    AlarmPriority.HIGH,
    tag=LEVEL.name,
    device=LEVEL.device,
    limit=4.5,
    on_delay_s=30.0,
    area="water",
)
OLGA = User("olga", Role.OPERATOR)


class SteppedClock:
    """A clock the test moves; sleeping waits until the test has moved it far enough."""

    def __init__(self) -> None:
        self._now = START
        self._moved = asyncio.Event()

    @property
    def speed(self) -> float:
        """Time runs as fast as the test moves it: waits on the wall are short."""
        return 1000.0

    def now(self) -> datetime:
        """The current time."""
        return self._now

    def monotonic(self) -> float:
        """Seconds since the start."""
        return (self._now - START).total_seconds()

    async def sleep(self, seconds: float) -> None:
        """Wait until the test has moved the clock by ``seconds``."""
        until = self._now + timedelta(seconds=seconds)
        while self._now < until:
            self._moved.clear()
            await self._moved.wait()

    def move(self, seconds: float) -> None:
        """Move the clock forward."""
        self._now += timedelta(seconds=seconds)
        self._moved.set()


@dataclass
class Running:
    monitor: AlarmMonitor
    service: AlarmService
    store: SqlHistorian
    clock: SteppedClock


@pytest_asyncio.fixture(loop_scope="session")
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """A monitor over a real SQLite store, running until the test ends."""
    clock = SteppedClock()
    store = SqlHistorian(f"sqlite:///{tmp_path / 'alarms.db'}")
    service = AlarmService([HIGH], store, _Journal(store), clock)
    engine = AlarmEngine([HIGH], [LEVEL], SiteLocation(52.37, 4.9, "Europe/Amsterdam"))
    monitor = AlarmMonitor([engine], service, clock)
    task = asyncio.create_task(monitor.run())
    try:
        yield Running(monitor, service, store, clock)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()


class _Journal:
    def __init__(self, store: SqlHistorian) -> None:
        self._store = store

    def record(self, event: Event) -> None:
        self._store.journal_event(event)


async def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + 10.0
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _level(value: float, clock: SteppedClock) -> list[Sample]:
    now = clock.now()
    return [Sample(LEVEL.name, value, Quality.good(), now, now)]


async def test_an_alarm_is_raised_after_its_on_delay_and_journaled(running: Running) -> None:
    clock, service = running.clock, running.service
    running.monitor.on_samples(_level(4.8, clock))
    await running.monitor.drained()
    assert service.state(HIGH.name).display is AlarmDisplayState.NORMAL  # on-delay running
    clock.move(31.0)
    await _until(
        "the alarm after its on-delay",
        lambda: service.state(HIGH.name).display is AlarmDisplayState.UNACKNOWLEDGED,
    )
    journal = running.store.read_alarm_journal(START, START + timedelta(hours=1))
    assert [(t.alarm, t.after) for t in journal] == [(HIGH.name, AlarmDisplayState.UNACKNOWLEDGED)]
    assert journal[0].time == START + timedelta(seconds=30)  # stamped when the delay expired


async def test_a_timed_shelf_expires_on_the_clock(running: Running) -> None:
    clock, service = running.clock, running.service
    running.monitor.on_samples(_level(4.9, clock))
    await running.monitor.drained()
    clock.move(31.0)
    await _until("the alarm", lambda: service.state(HIGH.name).active)
    await asyncio.to_thread(
        service.shelve,
        HIGH.name,
        OLGA,
        "sensor being cleaned",
        until=clock.now() + timedelta(minutes=5),
    )
    assert service.state(HIGH.name).display is AlarmDisplayState.SHELVED
    clock.move(299.0)
    await asyncio.sleep(0.05)
    assert service.state(HIGH.name).display is AlarmDisplayState.SHELVED
    clock.move(2.0)
    await _until(
        "the shelf to expire",
        lambda: service.state(HIGH.name).display is AlarmDisplayState.UNACKNOWLEDGED,
    )


async def test_the_monitor_stops_when_cancelled_while_batches_arrive(running: Running) -> None:
    # A cancellation that coincides with a batch arriving must still stop the monitor (the
    # center's shutdown waits for it).
    for _ in range(50):
        task = asyncio.create_task(running.monitor.run())
        await asyncio.sleep(0.01)
        running.monitor.on_samples(_level(1.0, running.clock))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5.0)
        assert task in done and task.cancelled(), "the monitor did not stop"
