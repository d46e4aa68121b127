"""The buildings' heat meters: the radiators' output and the air handler's heating coil."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from plc_sim.buildings.stock import BuildingStock
from plc_sim.weather import WeatherState

MONDAY_NIGHT = datetime(2025, 1, 13, 1, 0, tzinfo=UTC)


def run(stock: BuildingStock, start: datetime, hours: float, outdoor_c: float) -> datetime:
    now = start
    for _ in range(round(hours * 60)):
        now += timedelta(minutes=1)
        stock.step(60.0, now, WeatherState(now, outdoor_c, 0.5, -20.0, 0.0))
    return now


def meter(stock: BuildingStock, name: str) -> tuple[float, float]:
    device = next(d for d in stock.devices() if d.name == f"bldg.{name}_bms")
    return float(device.read(f"bldg.{name}.heat.power")), float(
        device.read(f"bldg.{name}.heat.energy")
    )


def test_a_cold_night_is_metered_and_a_colder_setpoint_uses_less_heat() -> None:
    warm, cool = BuildingStock(seed=1), BuildingStock(seed=1)
    device = next(d for d in cool.devices() if d.name == "bldg.school_bms")
    for zone in range(1, 7):
        device.write(f"bldg.school.z{zone}.setpoint", 15.0)
    run(warm, MONDAY_NIGHT, 4.0, -5.0)
    run(cool, MONDAY_NIGHT, 4.0, -5.0)
    warm_power, warm_energy = meter(warm, "school")
    _, cool_energy = meter(cool, "school")
    assert warm_power > 0.0 and warm_energy > 0.0
    assert cool_energy < warm_energy


def test_no_heat_is_metered_on_a_hot_day() -> None:
    stock = BuildingStock(seed=1)
    for device in stock.devices():
        for spec in device.points:
            if spec.tag.endswith(".valve"):
                device.write(spec.tag, 0.0)
    run(stock, MONDAY_NIGHT, 3.0, 30.0)
    power, _ = meter(stock, "office")
    assert power == pytest.approx(0.0, abs=0.05)


def test_the_heat_meter_follows_the_electricity_meter_in_the_device() -> None:
    device = BuildingStock(seed=1).devices()[0]
    tags = [spec.tag for spec in device.points]
    assert tags[-4:] == [
        "bldg.school.elec.power",
        "bldg.school.elec.energy",
        "bldg.school.heat.power",
        "bldg.school.heat.energy",
    ]
