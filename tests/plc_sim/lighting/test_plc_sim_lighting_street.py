"""A cabinet's street illuminance: daylight plus its lamps, as the outcome bench reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from plc_sim.lighting.network import LAMP_ROAD_LUX_AT_FULL, MODE_MANUAL, LightingNetwork
from plc_sim.weather import WeatherState

START = datetime(2025, 1, 12, 20, 0, tzinfo=UTC)


def weather(at: datetime, daylight_lux: float) -> WeatherState:
    return WeatherState(at, 2.0, 0.5, -20.0 if daylight_lux == 0 else 10.0, daylight_lux)


def test_a_dark_street_is_lit_in_proportion_to_the_output_level() -> None:
    network = LightingNetwork(seed=1)
    cabinet = network.cabinets[0]
    cabinet.mode, cabinet.dim_setpoint = MODE_MANUAL, 40.0
    network.step(10.0, START, weather(START, 0.0))  # the ramp reaches 40 % within the step
    assert cabinet.ambient_lux == 0.0
    assert cabinet.street_lux == pytest.approx(0.4 * LAMP_ROAD_LUX_AT_FULL)


def test_an_unlit_street_has_only_the_daylight_without_sensor_noise() -> None:
    network = LightingNetwork(seed=1)
    cabinet = network.cabinets[0]
    cabinet.mode, cabinet.dim_setpoint = MODE_MANUAL, 0.0
    network.step(60.0, START, weather(START, 1000.0))
    assert cabinet.ambient_lux == pytest.approx(1000.0 * cabinet.shade)
    assert cabinet.street_lux == cabinet.ambient_lux
    assert cabinet.lux != cabinet.ambient_lux  # the sensor reads with its noise


def test_failed_lamps_darken_the_street() -> None:
    network = LightingNetwork(seed=1)
    cabinet = network.cabinets[0]
    cabinet.mode, cabinet.dim_setpoint = MODE_MANUAL, 100.0
    network.step(10.0, START, weather(START, 0.0))
    for lamp in range(1, cabinet.lamp_count // 2 + 1):
        network.fail_lamp(1, 1, lamp)
    network.step(1.0, START + timedelta(seconds=1), weather(START, 0.0))
    working = (cabinet.lamp_count - cabinet.lamps_failed) / cabinet.lamp_count
    assert cabinet.lamps_failed == cabinet.lamp_count // 2
    assert cabinet.street_lux == pytest.approx(LAMP_ROAD_LUX_AT_FULL * working)
