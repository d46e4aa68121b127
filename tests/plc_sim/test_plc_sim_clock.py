from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from plc_sim.clock import SimClock


def test_time_runs_speed_times_faster_than_the_wall() -> None:
    start = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    clock = SimClock(speed=200.0, start=start)
    wall_before = time.monotonic()
    sim_before = clock.monotonic()
    deadline = wall_before + 0.05
    while time.monotonic() < deadline:
        pass
    wall_elapsed = time.monotonic() - wall_before
    sim_elapsed = clock.monotonic() - sim_before
    assert sim_elapsed == pytest.approx(wall_elapsed * 200.0, rel=0.2)
    assert clock.now() - start >= timedelta(seconds=10)
    assert clock.now().tzinfo is not None
    assert clock.speed == 200.0


def test_default_start_is_the_current_utc_time() -> None:
    clock = SimClock()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)
    assert clock.now().utcoffset() == timedelta(0)


async def test_sleep_takes_seconds_over_speed_of_wall_time() -> None:
    clock = SimClock(speed=100.0)
    wall_before = time.monotonic()
    sim_before = clock.monotonic()
    await clock.sleep(5.0)
    assert clock.monotonic() - sim_before >= 5.0
    assert time.monotonic() - wall_before < 1.0


@pytest.mark.parametrize("speed", [0.0, -1.0])
def test_speed_must_be_positive(speed: float) -> None:
    with pytest.raises(ValueError):
        SimClock(speed=speed)


def test_start_must_be_aware() -> None:
    with pytest.raises(ValueError):
        SimClock(start=datetime(2025, 1, 1))
