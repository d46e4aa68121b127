from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from plc_sim.device import PointWriteError, SimDevice
from plc_sim.heating.network import (
    HOT_WATER_PROFILE,
    MAX_SUBSTEP_S,
    PLANT_DEVICE,
    SPACE_HEATING_PROFILE,
    HeatingNetwork,
    HeatingParams,
    daily_profile,
)
from plc_sim.heating.transport import TransportLine
from plc_sim.pi_controller import PiTuning, pi_step, pi_track
from plc_sim.weather import Weather, WeatherState

VIENNA = ZoneInfo("Europe/Vienna")
MIDNIGHT = datetime(2025, 1, 14, 23, 0, tzinfo=UTC)  # 00:00 local in Vienna in winter


def fixed_weather(now: datetime, outdoor_c: float) -> WeatherState:
    """A weather that holds the outdoor temperature constant."""
    return WeatherState(
        time=now, outdoor_temp_c=outdoor_c, cloud_cover=0.5, sun_elevation_deg=0.0, daylight_lux=0
    )


def run(
    network: HeatingNetwork, start: datetime, seconds: float, outdoor_c: float, dt_s: float = 30.0
) -> datetime:
    """Step ``network`` for ``seconds`` at a constant outdoor temperature; the end time."""
    now = start
    for _ in range(round(seconds / dt_s)):
        now += timedelta(seconds=dt_s)
        network.step(dt_s, now, fixed_weather(now, outdoor_c))
    return now


def plant(network: HeatingNetwork) -> SimDevice:
    return network.devices()[0]


def substation(network: HeatingNetwork, number: int) -> SimDevice:
    return network.devices()[number]


def read(network: HeatingNetwork, tag: str) -> float:
    """A point's value from whichever device serves it."""
    for device in network.devices():
        if any(spec.tag == tag for spec in device.points):
            return float(device.read(tag))
    raise KeyError(tag)


def test_supply_setpoint_rise_reaches_each_substation_only_after_its_transport_delay() -> None:
    network = HeatingNetwork(seed=3, tz=VIENNA)
    now = run(network, MIDNIGHT, 3 * 3600, outdoor_c=0.0)
    count = len(network.designs)
    before = [read(network, f"heat.ss{n}.primary_supply_temp") for n in range(1, count + 1)]
    delays = [network.transport_delay_s(n) for n in range(1, count + 1)]
    # Delays follow the pipe lengths: the farthest substation waits longest.
    lengths = [design.pipe_length_m for design in network.designs]
    assert delays.index(max(delays)) == lengths.index(max(lengths))
    assert min(delays) > 5 * 60

    plant(network).write("heat.plant.supply_setpoint", 110.0)
    first_rise_s: list[float | None] = [None] * count
    dt_s = 10.0
    elapsed = 0.0
    while elapsed < 2.5 * 3600:
        now += timedelta(seconds=dt_s)
        elapsed += dt_s
        network.step(dt_s, now, fixed_weather(now, 0.0))
        for index in range(count):
            temp = read(network, f"heat.ss{index + 1}.primary_supply_temp")
            if first_rise_s[index] is None and temp > before[index] + 0.5:
                first_rise_s[index] = elapsed
    assert read(network, "heat.plant.supply_temp") == pytest.approx(110.0, abs=0.1)
    for index in range(count):
        rise = first_rise_s[index]
        assert rise is not None, f"substation {index + 1} never saw the new temperature"
        assert rise >= 0.9 * delays[index], f"substation {index + 1} saw it before its delay"
        assert rise <= 1.5 * delays[index] + 120
        after = read(network, f"heat.ss{index + 1}.primary_supply_temp")
        # The full 20 K step arrives, less the pipe's cooling (a few kelvin).
        assert after > before[index] + 15.0
        assert after < 110.0


def test_colder_weather_means_more_load_and_a_lower_return_temperature() -> None:
    mild, cold = HeatingNetwork(seed=4, tz=VIENNA), HeatingNetwork(seed=4, tz=VIENNA)
    run(mild, MIDNIGHT, 8 * 3600, outdoor_c=10.0)
    run(cold, MIDNIGHT, 8 * 3600, outdoor_c=-10.0)
    count = len(mild.designs)
    for number in range(1, count + 1):
        tag = f"heat.ss{number}.heat_power"
        assert read(cold, tag) > 1.5 * read(mild, tag)
    assert read(cold, "heat.plant.heat_output") > 1.5 * read(mild, "heat.plant.heat_output")
    assert read(cold, "heat.plant.flow") > read(mild, "heat.plant.flow")
    assert read(cold, "heat.plant.return_temp") < read(mild, "heat.plant.return_temp") - 2.0
    assert read(cold, "heat.plant.outdoor_temp") == -10.0
    # The outdoor-reset curve asks for hotter secondary water in the cold.
    assert read(cold, "heat.ss1.supply_setpoint") > read(mild, "heat.ss1.supply_setpoint")


def test_more_load_at_the_same_flow_cools_the_primary_water_more() -> None:
    network = HeatingNetwork(seed=4, tz=VIENNA)
    now = run(network, MIDNIGHT, 2 * 3600, outdoor_c=0.0)
    device = substation(network, 1)
    device.write("heat.ss1.valve", 50.0)
    now = run(network, now, 1800, outdoor_c=5.0)
    light_return = read(network, "heat.ss1.primary_return_temp")
    light_flow = read(network, "heat.ss1.primary_flow")
    run(network, now, 1800, outdoor_c=-5.0)
    assert read(network, "heat.ss1.primary_flow") == pytest.approx(light_flow, rel=0.02)
    assert read(network, "heat.ss1.primary_return_temp") < light_return - 2.0


def test_valve_override_holds_the_valve_and_release_returns_it_to_the_loop() -> None:
    network = HeatingNetwork(seed=5, tz=VIENNA)
    now = run(network, MIDNIGHT, 2 * 3600, outdoor_c=-5.0)
    device = substation(network, 2)
    setpoint = read(network, "heat.ss2.supply_setpoint")
    assert read(network, "heat.ss2.supply_temp") == pytest.approx(setpoint, abs=1.0)
    assert not device.read("heat.ss2.valve_manual")

    device.write("heat.ss2.valve", 0.0)
    assert device.read("heat.ss2.valve_manual")
    now = run(network, now, 1800, outdoor_c=-5.0)
    assert read(network, "heat.ss2.valve") == 0.0
    assert read(network, "heat.ss2.primary_flow") == 0.0
    assert read(network, "heat.ss2.heat_power") == 0.0
    assert read(network, "heat.ss2.supply_temp") < setpoint - 10.0

    device.release("heat.ss2.valve")
    assert not device.read("heat.ss2.valve_manual")
    now = run(network, now, 600, outdoor_c=-5.0)
    assert read(network, "heat.ss2.valve") > 20.0  # the loop drives it again
    run(network, now, 3600, outdoor_c=-5.0)
    assert read(network, "heat.ss2.supply_temp") == pytest.approx(setpoint, abs=1.0)


def test_the_manual_coil_switches_the_valve_between_manual_and_automatic() -> None:
    network = HeatingNetwork(seed=5, tz=VIENNA)
    now = run(network, MIDNIGHT, 3600, outdoor_c=-5.0)
    device = substation(network, 1)
    device.write("heat.ss1.valve_manual", True)
    held = read(network, "heat.ss1.valve")
    now = run(network, now, 600, outdoor_c=-20.0)  # the loop would open further
    assert read(network, "heat.ss1.valve") == held
    device.write("heat.ss1.valve_manual", False)
    run(network, now, 600, outdoor_c=-20.0)
    assert read(network, "heat.ss1.valve") > held + 5.0


def test_secondary_setpoint_override_and_release_to_the_outdoor_reset_curve() -> None:
    network = HeatingNetwork(seed=6, tz=VIENNA)
    now = run(network, MIDNIGHT, 3600, outdoor_c=0.0)
    device = substation(network, 3)
    curve = read(network, "heat.ss3.supply_setpoint")
    device.write("heat.ss3.supply_setpoint", 75.0)
    assert device.read("heat.ss3.setpoint_manual")
    now = run(network, now, 3600, outdoor_c=0.0)
    assert read(network, "heat.ss3.supply_temp") == pytest.approx(75.0, abs=1.0)
    device.release("heat.ss3.supply_setpoint")
    assert read(network, "heat.ss3.supply_setpoint") == curve
    run(network, now, 3600, outdoor_c=0.0)
    assert read(network, "heat.ss3.supply_temp") == pytest.approx(curve, abs=1.0)
    with pytest.raises(PointWriteError):
        device.write("heat.ss3.supply_setpoint", 120.0)


def test_stopping_the_pumps_stops_the_flow_and_a_start_waits_for_the_drive() -> None:
    network = HeatingNetwork(seed=7, tz=VIENNA)
    now = run(network, MIDNIGHT, 1800, outdoor_c=0.0)
    device = plant(network)
    assert device.read("heat.plant.pump1.running")
    assert not device.read("heat.plant.pump2.running")
    assert read(network, "heat.plant.diff_pressure") == pytest.approx(2.5, abs=0.05)
    device.write("heat.plant.pump1.run_cmd", False)
    now = run(network, now, 120, outdoor_c=0.0, dt_s=1.0)
    assert not device.read("heat.plant.pump1.running")
    assert read(network, "heat.plant.flow") == 0.0
    assert read(network, "heat.plant.diff_pressure") == 0.0
    assert read(network, "heat.ss1.primary_flow") == 0.0

    device.write("heat.plant.pump2.run_cmd", True)
    now = run(network, now, 2.0, outdoor_c=0.0, dt_s=1.0)
    assert not device.read("heat.plant.pump2.running")
    now = run(network, now, 2.0, outdoor_c=0.0, dt_s=1.0)
    assert device.read("heat.plant.pump2.running")
    run(network, now, 120, outdoor_c=0.0, dt_s=1.0)
    assert read(network, "heat.plant.flow") > 10.0
    assert read(network, "heat.plant.diff_pressure") == pytest.approx(2.5, abs=0.05)


def test_the_pumps_speed_up_to_hold_a_higher_differential_pressure() -> None:
    network = HeatingNetwork(seed=7, tz=VIENNA)
    now = run(network, MIDNIGHT, 1800, outdoor_c=5.0)
    speed = read(network, "heat.plant.pump1.speed")
    plant(network).write("heat.plant.dp_setpoint", 3.5)
    run(network, now, 300, outdoor_c=5.0, dt_s=1.0)
    assert read(network, "heat.plant.pump1.speed") > speed + 5.0
    assert read(network, "heat.plant.diff_pressure") == pytest.approx(3.5, abs=0.05)
    assert read(network, "heat.plant.pump2.speed") == 0.0


def test_the_plant_at_capacity_cannot_hold_its_supply_temperature() -> None:
    network = HeatingNetwork(seed=8, tz=VIENNA)
    run(network, MIDNIGHT + timedelta(hours=4), 4 * 3600, outdoor_c=-35.0)
    assert plant(network).read("heat.plant.at_capacity")
    assert read(network, "heat.plant.supply_temp") < 89.0
    assert read(network, "heat.plant.heat_output") <= network.max_output_kw / 1000 + 1e-9


def test_a_week_of_hourly_steps_stays_bounded_and_the_meters_only_grow() -> None:
    network = HeatingNetwork(seed=9, tz=VIENNA)
    weather = Weather(48.2, 16.37, seed=9)
    counters = [
        (device, spec.tag)
        for device in network.devices()
        for spec in device.points
        if spec.kind == "counter"
    ]
    last = {tag: 0.0 for _, tag in counters}
    now = MIDNIGHT
    for _ in range(7 * 24):
        now += timedelta(hours=1)
        network.step(3600.0, now, weather.step(3600.0, now))
        for device in network.devices():
            for spec in device.points:
                value = float(device.read(spec.tag))
                assert math.isfinite(value), spec.tag
                if spec.unit == "degC" and spec.tag != "heat.plant.outdoor_temp":
                    assert 0.0 <= value <= 120.0, (spec.tag, value)
                if spec.unit in {"%", "m3/h", "kW", "MW", "bar"}:
                    assert value >= 0.0, (spec.tag, value)
        for device, tag in counters:
            value = float(device.read(tag))
            assert value >= last[tag]
            last[tag] = value
    assert all(value > 0 for value in last.values())
    assert last["heat.plant.heat_energy"] * 1000 == pytest.approx(
        sum(v for tag, v in last.items() if tag.startswith("heat.ss")), rel=0.2
    )


def test_a_long_step_integrates_close_to_many_short_ones() -> None:
    one_long, many_short = HeatingNetwork(seed=2), HeatingNetwork(seed=2)
    run(one_long, MIDNIGHT, 6 * 3600, outdoor_c=0.0, dt_s=3600.0)
    run(many_short, MIDNIGHT, 6 * 3600, outdoor_c=0.0, dt_s=MAX_SUBSTEP_S)
    for tag in ("heat.plant.return_temp", "heat.ss1.supply_temp", "heat.ss4.primary_supply_temp"):
        assert read(one_long, tag) == pytest.approx(read(many_short, tag), abs=2.0)
    energy = "heat.plant.heat_energy"
    assert read(one_long, energy) == pytest.approx(read(many_short, energy), rel=0.05)


def test_scale_multiplies_the_substations_with_unique_names() -> None:
    network = HeatingNetwork(scale=3, seed=1)
    devices = network.devices()
    assert len(devices) == 1 + 18
    assert devices[0].name == PLANT_DEVICE
    assert [d.name for d in devices[1:]] == [f"heat.ss{n}_ctrl" for n in range(1, 19)]
    tags = [spec.tag for device in devices for spec in device.points]
    assert len(tags) == len(set(tags))
    assert "heat.ss18.heat_energy" in tags
    assert all(d.protocol == "modbus" and d.unit_id == 1 for d in devices)
    with pytest.raises(ValueError):
        HeatingNetwork(scale=0)


def test_points_declare_what_the_modbus_server_maps_from() -> None:
    network = HeatingNetwork()
    specs = {spec.tag: spec for device in network.devices() for spec in device.points}
    assert specs["heat.plant.supply_setpoint"].writable
    assert (specs["heat.plant.supply_setpoint"].low, specs["heat.plant.supply_setpoint"].high) == (
        60.0,
        120.0,
    )
    assert specs["heat.plant.pump1.run_cmd"].kind == "bool"
    assert specs["heat.plant.pump1.run_cmd"].writable
    assert not specs["heat.plant.pump1.running"].writable
    assert specs["heat.ss1.valve"].role == "output"
    assert specs["heat.ss1.valve"].writable
    assert specs["heat.ss1.heat_energy"].kind == "counter"
    assert specs["heat.ss1.heat_energy"].unit == "kWh"
    assert specs["heat.plant.flow"].unit == "m3/h"
    assert specs["heat.plant.heat_output"].unit == "MW"
    assert not specs["heat.ss1.primary_supply_temp"].writable


def test_same_seed_same_trajectory_and_another_seed_differs() -> None:
    networks = [HeatingNetwork(seed=11), HeatingNetwork(seed=11), HeatingNetwork(seed=12)]
    for network in networks:
        run(network, MIDNIGHT, 2 * 3600, outdoor_c=2.0, dt_s=37.0)
    values = [
        [device.read(spec.tag) for device in network.devices() for spec in device.points]
        for network in networks
    ]
    assert values[0] == values[1]
    assert values[0] != values[2]


def test_step_refuses_negative_or_naive_time_and_a_zero_step_changes_nothing() -> None:
    network = HeatingNetwork()
    with pytest.raises(ValueError):
        network.step(-1.0, MIDNIGHT, fixed_weather(MIDNIGHT, 0.0))
    with pytest.raises(ValueError):
        network.step(1.0, datetime(2025, 1, 1), fixed_weather(MIDNIGHT, 0.0))
    network.step(0.0, MIDNIGHT, fixed_weather(MIDNIGHT, 0.0))
    assert read(network, "heat.plant.heat_energy") == 0.0
    with pytest.raises(ValueError):
        HeatingParams(supply_setpoint_c=130.0)


def test_daily_profiles_hit_their_anchors_and_are_continuous_across_midnight() -> None:
    for profile in (SPACE_HEATING_PROFILE, HOT_WATER_PROFILE):
        for hour, value in profile:
            assert daily_profile(profile, hour) == pytest.approx(value)
        assert daily_profile(profile, 23.9999) == pytest.approx(
            daily_profile(profile, 0.0), abs=1e-3
        )
    # Morning peak above the night setback.
    assert daily_profile(SPACE_HEATING_PROFILE, 6.5) > daily_profile(SPACE_HEATING_PROFILE, 2.0)


def test_transport_line_delivers_water_after_it_has_travelled_the_pipe() -> None:
    line = TransportLine(initial_temp_c=80.0, max_length_m=1000.0, resolution_m=1.0)
    for second in range(1, 401):  # 1 m/s for 400 s, then a hotter supply
        line.advance(1.0, float(second), 80.0 if second < 100 else 100.0)
    assert line.arrival(250.0)[0] == pytest.approx(100.0)
    assert line.arrival(350.0)[0] == pytest.approx(80.0)
    assert line.arrival(250.0)[1] == pytest.approx(150.0)
    # Water that stands still does not arrive anywhere: the same parcel stays at 350 m.
    for second in range(401, 500):
        line.advance(0.0, float(second), 120.0)
    assert line.arrival(350.0)[0] == pytest.approx(80.0)
    assert line.arrival(0.0)[0] == 120.0
    # Slower flow: 50 s at 0.5 m/s moves the front 25 m.
    for second in range(500, 550):
        line.advance(0.5, float(second), 100.0)
    assert line.arrival(325.0)[0] == pytest.approx(90.0, abs=10.0)
    assert len(line) <= 1000 + 2
    with pytest.raises(ValueError):
        line.advance(-1.0, 600.0, 90.0)
    with pytest.raises(ValueError):
        line.arrival(2000.0)


def test_pi_loop_does_not_wind_up_while_saturated_and_tracks_an_override() -> None:
    tuning = PiTuning(gain=2.0, integral_time_s=100.0)
    integral = 0.0
    for _ in range(1000):  # a large error for a long time saturates the output
        output, integral = pi_step(tuning, integral, 30.0, 10.0)
    assert output == 100.0
    # Without wind-up, a reversed error brings the output off the stop at once.
    output, integral = pi_step(tuning, integral, -1.0, 10.0)
    assert output < 100.0
    integral = pi_track(tuning, 40.0, 5.0)
    output, _ = pi_step(tuning, integral, 5.0, 0.0)
    assert output == pytest.approx(40.0)
    with pytest.raises(ValueError):
        PiTuning(gain=0.0, integral_time_s=1.0)
