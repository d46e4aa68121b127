"""The booster stations' electricity meters: power from the motors' currents, energy over time."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from plc_sim.water.network import WaterNetwork
from plc_sim.water.pumps import Pump, PumpStation
from plc_sim.weather import WeatherState

START = datetime(2025, 1, 13, 2, 0, tzinfo=UTC)


def test_a_standing_station_draws_nothing() -> None:
    station = PumpStation(pumps=(Pump(), Pump()), auto=False)
    station.advance(60.0, 25.0, 0.5e-4)
    assert station.power_kw == 0.0
    assert station.energy_kwh == 0.0


def test_power_is_the_motors_three_phase_power_and_energy_its_integral() -> None:
    station = PumpStation(pumps=(Pump(), Pump()), auto=False)
    station.pumps[0].command(True)
    for _ in range(200):  # past the start delay and the flow ramp
        station.advance(1.0, 25.0, 0.5e-4)
    pump = station.pumps[0]
    curve = pump.curve
    expected_kw = math.sqrt(3.0) * curve.motor_voltage_v * station.current_a(pump)
    expected_kw *= curve.power_factor / 1000.0
    assert station.power_kw == pytest.approx(expected_kw)
    assert 10.0 < station.power_kw < 60.0  # one 180 m3/h pump at about 45 m
    before = station.energy_kwh
    station.advance(3600.0, 25.0, 0.5e-4)
    assert station.energy_kwh - before == pytest.approx(station.power_kw, rel=1e-3)


def test_the_station_rtu_serves_its_meter_without_moving_older_points() -> None:
    network = WaterNetwork(seed=1)
    device = next(d for d in network.devices() if d.name == "water.ps1_rtu")
    tags = [spec.tag for spec in device.points]
    assert tags[-2:] == ["water.ps1.power", "water.ps1.energy"]
    assert tags[0] == "water.ps1.auto"
    device.write("water.ps1.pump1.run_cmd", True)
    weather = WeatherState(START, 2.0, 0.5, -20.0, 0.0)
    now = START
    for _ in range(120):
        now += timedelta(seconds=30)
        network.step(30.0, now, weather)
    energy = float(device.read("water.ps1.energy"))
    assert energy == pytest.approx(network.stations[0].energy_kwh)
    assert energy == pytest.approx(float(device.read("water.ps1.power")), rel=0.05)  # an hour
