from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from plc_sim.water.tank import (
    DEFAULT_DEMAND_PATTERN,
    MAX_SUBSTEP_S,
    DemandAnchor,
    Tank,
    TankParams,
    daily_demand_m3h,
)

VIENNA = ZoneInfo("Europe/Vienna")
# 03:00 local time in Vienna in winter (UTC+1): the night minimum of the demand.
NIGHT = datetime(2025, 1, 15, 2, 0, tzinfo=UTC)


def run(tank: Tank, seconds: float, start: datetime, dt_s: float = 1.0) -> datetime:
    """Step ``tank`` for ``seconds`` of simulated time from ``start``; return the end time."""
    now = start
    elapsed = 0.0
    while elapsed < seconds - 1e-9:
        step = min(dt_s, seconds - elapsed)
        now += timedelta(seconds=step)
        tank.step(step, now)
        elapsed += step
    return now


def test_pump_on_fills_the_tank() -> None:
    tank = Tank(seed=3, tz=VIENNA)
    tank.command_pump(True)
    run(tank, 600, NIGHT)
    assert tank.pump_running
    assert tank.inflow_m3h == pytest.approx(150.0, rel=0.01)
    # 10 min of ~150 in and ~30 out through 20 m²: about +1 m.
    assert tank.level_m == pytest.approx(3.0 + (150 - 30) / 6 / 20, abs=0.15)


def test_pump_off_drains_with_demand() -> None:
    tank = Tank(seed=3, tz=VIENNA)
    morning_peak = datetime(2025, 1, 15, 6, 30, tzinfo=UTC)
    run(tank, 600, morning_peak)
    assert not tank.pump_running
    assert tank.inflow_m3h == 0.0
    assert tank.outflow_m3h == pytest.approx(110.0, abs=10.0)
    assert tank.level_m == pytest.approx(3.0 - 110 / 6 / 20, abs=0.1)


def test_pump_reports_running_only_after_the_start_delay() -> None:
    tank = Tank(tz=VIENNA)
    tank.command_pump(True)
    now = run(tank, 4.9, NIGHT, dt_s=0.1)
    assert tank.pump_command
    assert not tank.pump_running
    assert tank.inflow_m3h == 0.0
    now = run(tank, 0.2, now, dt_s=0.1)
    assert tank.pump_running
    assert 0.0 < tank.inflow_m3h < 150.0  # ramping up
    run(tank, 60, now)
    assert tank.inflow_m3h == pytest.approx(150.0, rel=0.001)


def test_command_off_stops_the_pump_at_once() -> None:
    tank = Tank(tz=VIENNA)
    tank.command_pump(True)
    now = run(tank, 30, NIGHT)
    assert tank.pump_running
    tank.command_pump(False)
    assert not tank.pump_running
    assert tank.inflow_m3h == 0.0
    run(tank, 10, now)
    assert tank.inflow_m3h == 0.0
    # A new command waits the full start delay again.
    tank.command_pump(True)
    run(tank, 4, now)
    assert not tank.pump_running


def test_repeated_run_command_does_not_restart_the_delay() -> None:
    tank = Tank(tz=VIENNA)
    tank.command_pump(True)
    now = run(tank, 4, NIGHT)
    tank.command_pump(True)
    run(tank, 1.5, now)
    assert tank.pump_running


def test_level_clamps_at_the_top_and_spills() -> None:
    tank = Tank(params=TankParams(initial_level_m=4.9), tz=VIENNA)
    tank.command_pump(True)
    run(tank, 1800, NIGHT)
    assert tank.level_m == pytest.approx(5.0)
    assert tank.spill_m3h == pytest.approx(tank.inflow_m3h - tank.outflow_m3h, abs=1e-6)
    assert tank.spill_m3h > 50.0


def test_empty_tank_delivers_nothing() -> None:
    tank = Tank(params=TankParams(initial_level_m=0.1), tz=VIENNA)
    run(tank, 1800, NIGHT)
    assert tank.level_m == 0.0
    assert tank.outflow_m3h == 0.0
    assert tank.demand_m3h > 0.0
    assert tank.spill_m3h == 0.0


def test_empty_tank_with_pump_running_delivers_the_inflow_at_most() -> None:
    morning_peak = datetime(2025, 1, 15, 6, 30, tzinfo=UTC)
    params = TankParams(initial_level_m=0.0, pump_rated_flow_m3h=50.0)
    tank = Tank(params=params, tz=VIENNA)
    tank.command_pump(True)
    run(tank, 600, morning_peak)
    assert tank.level_m == 0.0
    assert tank.outflow_m3h == pytest.approx(tank.inflow_m3h, rel=1e-6)


def test_daily_pattern_has_its_minimum_at_night_and_peaks_morning_and_evening() -> None:
    minutes = [m / 60 for m in range(24 * 60)]
    demand = [daily_demand_m3h(DEFAULT_DEMAND_PATTERN, hour) for hour in minutes]
    night_min = min(demand)
    assert minutes[demand.index(night_min)] == 3.0
    assert night_min == pytest.approx(30.0)
    assert max(demand) == pytest.approx(110.0)
    assert minutes[demand.index(max(demand))] == 7.5
    assert daily_demand_m3h(DEFAULT_DEMAND_PATTERN, 19.5) == pytest.approx(100.0)
    evening = [d for h, d in zip(minutes, demand, strict=True) if 17 <= h <= 22]
    assert max(evening) == pytest.approx(100.0)
    # Continuous across midnight.
    assert daily_demand_m3h(DEFAULT_DEMAND_PATTERN, 23.999) == pytest.approx(
        daily_demand_m3h(DEFAULT_DEMAND_PATTERN, 0.0), abs=0.01
    )


def test_demand_follows_the_local_time_of_the_site() -> None:
    # 07:30 local in Vienna in winter is 06:30 UTC; in a UTC site it is the early morning.
    at = datetime(2025, 1, 15, 6, 30, tzinfo=UTC)
    vienna = Tank(params=TankParams(demand_noise_m3h=0.0), tz=VIENNA)
    utc_site = Tank(params=TankParams(demand_noise_m3h=0.0), tz=UTC)
    vienna.step(1.0, at)
    utc_site.step(1.0, at)
    assert vienna.demand_m3h == pytest.approx(110.0, abs=0.1)
    assert utc_site.demand_m3h < 105.0


def test_same_seed_same_trajectory_and_other_seed_differs() -> None:
    tanks = [Tank(seed=7, tz=VIENNA), Tank(seed=7, tz=VIENNA), Tank(seed=8, tz=VIENNA)]
    for tank in tanks:
        tank.command_pump(True)
        run(tank, 300, NIGHT, dt_s=7.3)
    assert tanks[0].snapshot() == tanks[1].snapshot()
    assert tanks[0].demand_m3h != tanks[2].demand_m3h


def test_a_long_step_integrates_like_many_short_ones() -> None:
    one_long, many_short = Tank(seed=5, tz=VIENNA), Tank(seed=5, tz=VIENNA)
    for tank in (one_long, many_short):
        tank.command_pump(True)
    one_long.step(120 * MAX_SUBSTEP_S, NIGHT + timedelta(seconds=120))
    run(many_short, 120, NIGHT, dt_s=MAX_SUBSTEP_S)
    assert one_long.level_m == pytest.approx(many_short.level_m, abs=1e-9)
    assert one_long.inflow_m3h == pytest.approx(many_short.inflow_m3h, abs=1e-9)


def test_snapshot_carries_the_step_time() -> None:
    tank = Tank()
    state = tank.step(2.0, NIGHT)
    assert state.time == NIGHT
    assert state.level_m == tank.level_m
    assert tank.step(0.0, NIGHT).level_m == state.level_m


@pytest.mark.parametrize(
    "kwargs",
    [
        {"area_m2": 0.0},
        {"initial_level_m": 6.0},
        {"pump_start_delay_s": -1.0},
        {"pump_ramp_time_constant_s": 0.0},
        {"demand_pattern": (DemandAnchor(3, 30),)},
        {"demand_pattern": (DemandAnchor(7, 30), DemandAnchor(3, 40))},
        {"demand_pattern": (DemandAnchor(3, -1), DemandAnchor(7, 40))},
    ],
)
def test_invalid_parameters_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TankParams(**kwargs)  # type: ignore[arg-type]


def test_step_refuses_negative_or_naive_time() -> None:
    tank = Tank()
    with pytest.raises(ValueError):
        tank.step(-1.0, NIGHT)
    with pytest.raises(ValueError):
        tank.step(1.0, datetime(2025, 1, 1))
