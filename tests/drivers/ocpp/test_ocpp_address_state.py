"""OCPP addresses and the central system's bookkeeping of meter readings (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlcenter.model import DataType, Severity, Substatus
from drivers.base import AddressError
from drivers.ocpp.address import OcppAddress, Quantity, parse_address, validate_address
from drivers.ocpp.config import ChargePointConfig, OcppCentralSystemConfig
from drivers.ocpp.state import MeterReading, StationState, parse_meter_values

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_addresses_parse_and_print_back() -> None:
    parsed = parse_address("cp:harbour-1:2:power_w")
    assert parsed == OcppAddress("harbour-1", 2, Quantity.POWER_W)
    assert str(parsed) == "cp:harbour-1:2:power_w"
    validate_address("cp:ev_1:0:limit_w", DataType.FLOAT)
    validate_address("cp:ev_1:1:status", DataType.STRING)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "cp:ev:1",
        "xx:ev:1:status",
        "cp::1:status",
        "cp:ev/../x:1:status",
        "cp:ev:-1:status",
        "cp:ev:100:status",
        "cp:ev:1:volts",
        "cp:" + "a" * 49 + ":1:status",
        "cp:ev:1:status:extra",
        "cp:ev:\u0661:status",
        "cp:ev\n:1:status",
        "cp:ev:1\n:status",
    ],
)
def test_hostile_addresses_are_refused(address: str) -> None:
    with pytest.raises(AddressError):
        parse_address(address)


def test_data_types_must_fit_the_quantity() -> None:
    with pytest.raises(AddressError, match="string"):
        validate_address("cp:ev:1:status", DataType.FLOAT)
    with pytest.raises(AddressError):
        validate_address("cp:ev:1:charge", DataType.FLOAT)


def test_configuration_refuses_duplicates_and_bad_ids() -> None:
    with pytest.raises(ValueError, match="unique"):
        OcppCentralSystemConfig(
            charge_points=(ChargePointConfig("a", "X"), ChargePointConfig("a", "Y"))
        )
    with pytest.raises(ValueError):
        ChargePointConfig("no spaces", "X")


def _station() -> StationState:
    station = StationState(ChargePointConfig("ev", "PW", max_power_w=22_000.0))
    station.connected = True
    return station


def test_a_meter_running_backwards_or_too_fast_is_uncertain() -> None:
    station = _station()
    station.meter(1, MeterReading(T0, 1_000.0, 11_000.0))
    assert station.connectors[1].energy is not None
    assert station.connectors[1].energy.quality.is_good
    # 22 kW for one hour is at most ~24 kWh: 1 MWh in a minute is a lie.
    station.meter(1, MeterReading(T0 + timedelta(minutes=1), 1_001_000.0, 11_000.0))
    jumped = station.connectors[1].energy.quality
    assert jumped.severity is Severity.UNCERTAIN
    assert jumped.substatus is Substatus.SENSOR_NOT_ACCURATE
    station.meter(1, MeterReading(T0 + timedelta(minutes=2), 500.0, 11_000.0))
    assert "went back" in station.connectors[1].energy.quality.reason
    # Plausible again: 11 kW for a minute.
    station.meter(1, MeterReading(T0 + timedelta(minutes=3), 683.0, 11_000.0))
    assert station.connectors[1].energy.quality.is_good
    station.meter(1, MeterReading(T0 + timedelta(minutes=4), None, -5.0))
    assert station.connectors[1].power is not None
    assert not station.connectors[1].power.quality.is_good


def test_sessions_follow_start_and_stop() -> None:
    station = _station()
    station.start_transaction(1, "42", 2_000.0, T0)
    station.meter(1, MeterReading(T0 + timedelta(minutes=10), 3_500.0, 9_000.0))
    session_energy = station.connectors[1].session_energy
    assert session_energy is not None and session_energy.value == pytest.approx(1_500.0)
    assert station.stop_transaction("42", 3_600.0, T0 + timedelta(minutes=11)) == 1
    assert station.connectors[1].session is not None
    assert station.connectors[1].session.value is False
    assert station.stop_transaction("nope", None, T0) == -1


def test_meter_values_of_both_versions_and_garbage() -> None:
    v16 = [
        {
            "timestamp": "2026-06-01T12:00:00Z",
            "sampled_value": [
                {"value": "12.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
                {"value": "3.6", "measurand": "Power.Active.Import", "unit": "kW", "phase": "L1"},
                {"value": "3.6", "measurand": "Power.Active.Import", "unit": "kW", "phase": "L2"},
                {"value": "230", "measurand": "Voltage"},
            ],
        }
    ]
    readings, problems = parse_meter_values(v16, T0)
    assert problems == []
    assert readings == [MeterReading(T0, 12_500.0, 7_200.0)]
    v201 = [
        {
            "timestamp": "2026-06-01T12:00:00Z",
            "sampled_value": [
                {"value": 4, "unit_of_measure": {"unit": "Wh", "multiplier": 3}},
            ],
        }
    ]
    assert parse_meter_values(v201, T0)[0][0].energy_wh == pytest.approx(4_000.0)
    garbage = [
        {"timestamp": "yesterday", "sampled_value": [{"value": "NaN"}, {"value": "1e999"}, 7]},
        "nope",
        {"sampled_value": [{"value": True}, {"value": "5", "unit": "furlongs"}]},
    ]
    readings, problems = parse_meter_values(garbage, T0)
    assert readings == []
    assert len(problems) == 6
    assert parse_meter_values({"not": "a list"}, T0)[1]
