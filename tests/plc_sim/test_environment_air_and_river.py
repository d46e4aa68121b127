"""Air quality follows traffic and sun; an ozone episode passes 180 and, in the afternoon,
240 µg/m³; a flood lifts every gauge past its alert level, downstream later, and recedes."""

from __future__ import annotations

from datetime import UTC, datetime

from plc_sim.environment.model import ALERT_LEVEL_M, BASE_LEVEL_M, GAUGE_ALERT_REPORT_S, Environment
from tests.plc_sim.sim_weather import run

MONDAY = datetime(2026, 6, 22, 0, 0, tzinfo=UTC)


def test_no2_follows_traffic_and_ozone_the_sun() -> None:
    env = Environment(seed=1)
    run(env, MONDAY, 2.0, sun_deg=-10.0, cloud=0.2)  # 04:00 local
    road = env.station("env.air1")
    night_no2, night_o3 = road.no2, road.o3
    run(env, datetime(2026, 6, 22, 5, 0, tzinfo=UTC), 2.0, sun_deg=35.0, cloud=0.2)  # 09:00
    assert road.no2 > night_no2 + 15
    run(env, datetime(2026, 6, 22, 10, 0, tzinfo=UTC), 3.0, sun_deg=55.0, cloud=0.0, temp_c=27.0)
    assert road.o3 > night_o3 + 30
    assert road.o3 < 180.0  # a fine summer day is not an episode


def test_an_ozone_episode_passes_both_eu_thresholds_in_the_afternoon() -> None:
    env = Environment(seed=1)
    env.start_ozone_episode()
    run(env, datetime(2026, 6, 22, 8, 0, tzinfo=UTC), 2.0, sun_deg=50.0, temp_c=31.0)  # to 12:00
    assert all(s.o3 > 180.0 for s in env.stations)
    run(env, datetime(2026, 6, 22, 10, 0, tzinfo=UTC), 3.0, sun_deg=45.0, temp_c=33.0)  # 15:00
    assert max(s.o3 for s in env.stations) > 240.0
    env.end_ozone_episode()
    run(env, datetime(2026, 6, 22, 18, 0, tzinfo=UTC), 3.0, sun_deg=-5.0, temp_c=22.0)
    assert all(s.o3 < 180.0 for s in env.stations)


def test_a_flood_lifts_the_gauges_downstream_later_and_recedes() -> None:
    env = Environment(seed=1)
    run(env, MONDAY, 0.5, cloud=0.0)
    assert all(abs(g.level_m - BASE_LEVEL_M) < 0.3 for g in env.gauges)
    env.start_flood()
    run(env, MONDAY, 1.5, cloud=1.0)
    first, last = env.gauges[0], env.gauges[-1]
    assert first.level_m > last.level_m
    assert first.rain_mm_h > 20.0
    run(env, MONDAY, 3.0, cloud=1.0)
    assert all(g.level_m > ALERT_LEVEL_M + 1.0 for g in env.gauges)
    sensor = next(s for s in env.sensors() if s.id == "river1")
    assert sensor.interval_s == GAUGE_ALERT_REPORT_S  # a high river reports more often
    peak = first.level_m
    env.end_flood()
    run(env, MONDAY, 12.0, cloud=0.0)
    assert first.level_m < peak - 1.5
