from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from plc_sim.buildings.schedule import LIBRARY, OFFICE, SCHOOL, Period
from plc_sim.buildings.stock import (
    FIRST_DEVICE_INSTANCE,
    OUTDOOR_CO2_PPM,
    BuildingParams,
    BuildingStock,
)
from plc_sim.device import PointWriteError, SimDevice
from plc_sim.weather import Weather, WeatherState

VIENNA = ZoneInfo("Europe/Vienna")
SUNDAY = datetime(2025, 1, 11, 23, 0, tzinfo=UTC)  # Sunday 00:00 local, school closed all day
MONDAY = datetime(2025, 1, 12, 23, 0, tzinfo=UTC)  # Monday 00:00 local


def fixed_weather(now: datetime, outdoor_c: float, lux: float) -> WeatherState:
    """A weather that holds outdoor temperature and daylight constant."""
    return WeatherState(
        time=now,
        outdoor_temp_c=outdoor_c,
        cloud_cover=0.5,
        sun_elevation_deg=10.0 if lux else -10.0,
        daylight_lux=lux,
    )


def run(
    stock: BuildingStock,
    start: datetime,
    seconds: float,
    outdoor_c: float = 0.0,
    lux: float = 0.0,
    dt_s: float = 60.0,
) -> datetime:
    """Step ``stock`` for ``seconds`` in a constant weather; the end time."""
    now = start
    for _ in range(round(seconds / dt_s)):
        now += timedelta(seconds=dt_s)
        stock.step(dt_s, now, fixed_weather(now, outdoor_c, lux))
    return now


def school(stock: BuildingStock) -> SimDevice:
    return stock.devices()[0]


def value(device: SimDevice, tag: str) -> float:
    return float(device.read(tag))


def test_zone_setpoint_up_opens_the_valve_and_warms_the_zone() -> None:
    stock = BuildingStock(seed=2, tz=VIENNA)
    now = run(stock, SUNDAY, 8 * 3600)
    device = school(stock)
    start_temp = value(device, "bldg.school.z1.temp")
    start_valve = value(device, "bldg.school.z1.valve")
    assert value(device, "bldg.school.z1.setpoint") == 17.0
    assert start_temp == pytest.approx(17.0, abs=0.5)

    device.write("bldg.school.z1.setpoint", 24.0)
    assert value(device, "bldg.school.z1.setpoint") == 24.0
    now = run(stock, now, 600)
    assert value(device, "bldg.school.z1.valve") > start_valve + 30.0
    now = run(stock, now, 2 * 3600 - 600)
    assert value(device, "bldg.school.z1.temp") > start_temp + 3.0
    run(stock, now, 6 * 3600)
    assert value(device, "bldg.school.z1.temp") == pytest.approx(24.0, abs=0.3)
    # The zone next door kept its schedule setpoint.
    assert value(device, "bldg.school.z2.temp") == pytest.approx(17.0, abs=0.5)


def test_setpoint_release_returns_to_the_schedule() -> None:
    stock = BuildingStock(seed=2, tz=VIENNA)
    device = school(stock)
    now = run(stock, MONDAY, 10 * 3600)  # 10:00 on a school day: occupied setpoint
    assert value(device, "bldg.school.z3.setpoint") == 21.0
    device.write("bldg.school.z3.setpoint", 26.0)
    device.release("bldg.school.z3.setpoint")
    assert value(device, "bldg.school.z3.setpoint") == 21.0
    run(stock, now, 10 * 3600)  # 20:00: unoccupied
    assert value(device, "bldg.school.z3.setpoint") == 17.0
    with pytest.raises(PointWriteError):
        device.write("bldg.school.z3.setpoint", 30.0)


def test_valve_override_then_release_returns_the_zone_to_its_loop() -> None:
    stock = BuildingStock(seed=3, tz=VIENNA)
    device = school(stock)
    device.write("bldg.school.z2.setpoint", 21.0)
    now = run(stock, SUNDAY, 8 * 3600)
    assert value(device, "bldg.school.z2.temp") == pytest.approx(21.0, abs=0.3)
    device.write("bldg.school.z2.valve", 0.0)
    now = run(stock, now, 2 * 3600)
    assert value(device, "bldg.school.z2.valve") == 0.0
    cooled = value(device, "bldg.school.z2.temp")
    assert cooled < 20.0

    device.release("bldg.school.z2.valve")
    now = run(stock, now, 300)
    assert value(device, "bldg.school.z2.valve") > 20.0
    run(stock, now, 6 * 3600)
    assert value(device, "bldg.school.z2.temp") == pytest.approx(21.0, abs=0.3)


def occupied_zone(device: SimDevice, building: str, zones: int) -> int:
    """The number of the first occupied zone of a building."""
    for number in range(1, zones + 1):
        if device.read(f"bldg.{building}.z{number}.occupied"):
            return number
    raise AssertionError(f"no zone of {building} is occupied")


def test_co2_rises_when_occupied_with_the_damper_closed_and_falls_when_ventilated() -> None:
    stock = BuildingStock(seed=4, tz=VIENNA)
    device = school(stock)
    now = run(stock, MONDAY, 9 * 3600, lux=10_000.0)  # 09:00 on a school day
    zone = occupied_zone(device, "school", 5)
    co2, damper = f"bldg.school.z{zone}.co2", f"bldg.school.z{zone}.damper"
    ventilated = value(device, co2)
    assert value(device, damper) >= 20.0  # the CO2 loop ventilates an occupied zone
    assert device.read("bldg.school.ahu.fan")

    device.write(damper, 0.0)
    now = run(stock, now, 45 * 60, lux=10_000.0)
    assert device.read(f"bldg.school.z{zone}.occupied")
    stuffy = value(device, co2)
    assert stuffy > ventilated + 300.0

    device.write(damper, 100.0)
    now = run(stock, now, 30 * 60, lux=10_000.0)
    assert value(device, co2) < stuffy - 200.0

    device.release(damper)
    run(stock, now, 3600, lux=10_000.0)
    assert device.read(f"bldg.school.z{zone}.occupied")
    assert 20.0 <= value(device, damper) < 100.0  # the loop's balance, not the override


def test_occupancy_fan_and_setpoints_follow_each_building_types_week() -> None:
    stock = BuildingStock(seed=5, tz=VIENNA)
    school_bms, office_bms, library_bms = stock.devices()
    seen: dict[tuple[str, int, int], bool] = {}  # (building, weekday, hour) -> anyone there
    fans: dict[tuple[str, int, int], bool] = {}
    now = MONDAY
    for _ in range(7 * 24 * 4):
        now = run(stock, now, 900, dt_s=900.0)
        local = now.astimezone(VIENNA)
        for device, name, zones in (
            (school_bms, "school", 6),
            (office_bms, "office", 5),
            (library_bms, "library", 4),
        ):
            key = (name, local.weekday(), local.hour)
            anyone = any(device.read(f"bldg.{name}.z{n}.occupied") for n in range(1, zones + 1))
            seen[key] = seen.get(key, False) or anyone
            fans[key] = bool(device.read(f"bldg.{name}.ahu.fan"))
    for weekday in range(5):
        assert seen[("school", weekday, 10)]
        assert seen[("office", weekday, 14)]
        assert seen[("library", weekday, 17)]
        assert not seen[("school", weekday, 3)]
        assert fans[("office", weekday, 10)]
        assert not fans[("office", weekday, 22)]
    assert seen[("library", 5, 11)]
    assert not any(seen[("school", day, hour)] for day in (5, 6) for hour in range(24))
    assert not any(fans[("school", day, hour)] for day in (5, 6) for hour in range(24))


def test_fan_override_and_release_back_to_the_schedule() -> None:
    stock = BuildingStock(seed=6, tz=VIENNA)
    device = stock.devices()[1]
    now = run(stock, SUNDAY, 3600)
    assert not device.read("bldg.office.ahu.fan")
    idle_power = value(device, "bldg.office.elec.power")
    device.write("bldg.office.ahu.fan", True)
    device.write("bldg.office.z1.damper", 100.0)
    now = run(stock, now, 1800)
    assert device.read("bldg.office.ahu.fan")
    assert value(device, "bldg.office.elec.power") > idle_power + 0.3
    assert value(device, "bldg.office.ahu.supply_air_temp") == pytest.approx(18.0, abs=0.5)
    device.release("bldg.office.ahu.fan")
    run(stock, now, 60)
    assert not device.read("bldg.office.ahu.fan")
    assert value(device, "bldg.office.elec.power") == pytest.approx(idle_power, rel=0.01)


def test_a_week_of_hourly_steps_stays_bounded_and_the_meters_only_grow() -> None:
    stock = BuildingStock(seed=7, tz=VIENNA)
    weather = Weather(48.2, 16.37, seed=7)
    last = {device.name: 0.0 for device in stock.devices()}
    now = SUNDAY
    for _ in range(7 * 24):
        now += timedelta(hours=1)
        stock.step(3600.0, now, weather.step(3600.0, now))
        for device in stock.devices():
            for spec in device.points:
                reading = device.read(spec.tag)
                if spec.kind == "bool":
                    assert isinstance(reading, bool)
                    continue
                number = float(reading)
                assert math.isfinite(number), spec.tag
                if spec.unit == "degC" and spec.role == "input" and "supply_air" not in spec.tag:
                    assert 5.0 <= number <= 40.0, (spec.tag, number)
                if spec.unit == "ppm":
                    assert OUTDOOR_CO2_PPM <= number <= 5000.0, (spec.tag, number)
                if spec.unit == "%":
                    assert 0.0 <= number <= 100.0, (spec.tag, number)
                if spec.unit == "kW":
                    assert number > 0.0
            energy = value(device, f"{device.name.removesuffix('_bms')}.elec.energy")
            assert energy >= last[device.name]
            last[device.name] = energy
    assert all(energy > 100.0 for energy in last.values())


def test_a_long_step_integrates_close_to_many_short_ones() -> None:
    one_long, many_short = BuildingStock(seed=8, tz=VIENNA), BuildingStock(seed=8, tz=VIENNA)
    run(one_long, MONDAY, 12 * 3600, dt_s=3600.0, lux=5000.0)
    run(many_short, MONDAY, 12 * 3600, dt_s=60.0, lux=5000.0)
    for tag in ("bldg.school.z1.temp", "bldg.school.z6.temp"):
        assert value(school(one_long), tag) == pytest.approx(
            value(school(many_short), tag), abs=0.5
        )
    energy = "bldg.school.elec.energy"
    assert value(school(one_long), energy) == pytest.approx(
        value(school(many_short), energy), rel=0.05
    )


def test_same_seed_same_trajectory_and_another_seed_differs() -> None:
    stocks = [BuildingStock(seed=9), BuildingStock(seed=9), BuildingStock(seed=10)]
    for stock in stocks:
        run(stock, MONDAY + timedelta(hours=6), 6 * 3600, dt_s=97.0, lux=3000.0)
    values = [
        [device.read(spec.tag) for device in stock.devices() for spec in device.points]
        for stock in stocks
    ]
    assert values[0] == values[1]
    assert values[0] != values[2]


def test_scale_repeats_the_building_types_with_unique_names_and_instances() -> None:
    devices = BuildingStock(scale=2, seed=1).devices()
    assert [device.name for device in devices] == [
        "bldg.school_bms",
        "bldg.office_bms",
        "bldg.library_bms",
        "bldg.school2_bms",
        "bldg.office2_bms",
        "bldg.library2_bms",
    ]
    assert [device.device_instance for device in devices] == list(
        range(FIRST_DEVICE_INSTANCE, FIRST_DEVICE_INSTANCE + 6)
    )
    assert all(device.protocol == "bacnet" for device in devices)
    zones = [sum(spec.tag.endswith(".temp") for spec in device.points) for device in devices]
    assert zones == [6, 5, 4, 6, 5, 4]
    tags = [spec.tag for device in devices for spec in device.points]
    assert len(tags) == len(set(tags))
    assert "bldg.library2.z4.co2" in tags
    with pytest.raises(ValueError):
        BuildingStock(scale=0)


def test_points_declare_what_the_bacnet_server_maps_from() -> None:
    specs = {spec.tag: spec for spec in BuildingStock().devices()[0].points}
    temp = specs["bldg.school.z1.temp"]
    assert (temp.kind, temp.role, temp.unit, temp.cov_increment) == ("float", "input", "degC", 0.1)
    setpoint = specs["bldg.school.z1.setpoint"]
    assert (setpoint.role, setpoint.writable, setpoint.low, setpoint.high) == (
        "value",
        True,
        12.0,
        28.0,
    )
    assert (specs["bldg.school.z1.occupied"].kind, specs["bldg.school.z1.occupied"].role) == (
        "bool",
        "input",
    )
    assert specs["bldg.school.z1.co2"].cov_increment == 10.0
    for output in ("bldg.school.z1.valve", "bldg.school.z1.damper"):
        assert (specs[output].role, specs[output].writable, specs[output].unit) == (
            "output",
            True,
            "%",
        )
    fan = specs["bldg.school.ahu.fan"]
    assert (fan.kind, fan.role, fan.writable) == ("bool", "output", True)
    assert specs["bldg.school.elec.energy"].kind == "counter"
    assert specs["bldg.school.elec.energy"].unit == "kWh"
    assert specs["bldg.school.elec.power"].unit == "kW"


def test_step_refuses_negative_or_naive_time_and_bad_parameters() -> None:
    stock = BuildingStock()
    weather = fixed_weather(MONDAY, 0.0, 0.0)
    with pytest.raises(ValueError):
        stock.step(-1.0, MONDAY, weather)
    with pytest.raises(ValueError):
        stock.step(1.0, datetime(2025, 1, 1), weather)
    with pytest.raises(ValueError):
        BuildingParams(occupied_setpoint_c=16.0, unoccupied_setpoint_c=18.0)
    with pytest.raises(ValueError):
        Period(10.0, 9.0)


def test_day_plans_are_reproducible_and_respect_the_week() -> None:
    plan = SCHOOL.day_plan(0, random.Random("a"), 26)
    assert plan == SCHOOL.day_plan(0, random.Random("a"), 26)
    assert all(7.5 < visit.start_h < visit.end_h < 16.0 for visit in plan)
    assert all(0 < visit.people <= 26 for visit in plan)
    assert SCHOOL.day_plan(6, random.Random("a"), 26) == ()
    assert OFFICE.day_plan(5, random.Random("b"), 20) == ()
    assert LIBRARY.operating_hours[5] is not None
    assert LIBRARY.operating_hours[6] is None
