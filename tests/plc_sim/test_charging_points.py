"""Simulated charge points and shore power: plausible sessions, energy and power, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from plc_sim.charging.model import (
    ChargeFault,
    ChargingDomain,
    ConnectorStatus,
    ev_charger,
    shore_power,
)
from plc_sim.charging.points import charging_points

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _run(model: object, hours: float, step_s: float = 30.0) -> None:
    now = NOON
    for _ in range(int(hours * 3600 / step_s)):
        now += timedelta(seconds=step_s)
        model.step(step_s, now)  # type: ignore[attr-defined]


def test_a_remote_start_charges_with_a_taper_and_the_register_only_rises() -> None:
    charger = ev_charger("ev_1", connectors=1, power_w=22_000.0)
    charger.arrivals_per_hour = 0.0
    charger.step(1.0, NOON)
    charger.plug_in(1, authorise=False, soc=0.5)
    connector = charger.connector(1)
    assert connector.status is ConnectorStatus.PREPARING
    assert charger.remote_start(1)
    assert not charger.remote_start(1)  # already running
    registers = []
    powers = []
    now = NOON
    while connector.transaction:
        now += timedelta(seconds=60)
        charger.step(60.0, now)
        registers.append(connector.register_wh)
        powers.append(connector.power_w)
        assert now < NOON + timedelta(hours=12)
    assert registers == sorted(registers)
    session = registers[-1]
    assert 0 < session <= 100_000 * 0.5 + 1  # at most half of the largest battery
    assert max(powers) <= min(22_000.0, charger.connector(1).max_power_w)
    kinds = [event.kind for event in charger.events]
    assert kinds.count("started") == 1 and kinds.count("stopped") == 1


def test_limits_cap_the_power_and_are_refused_above_the_rating() -> None:
    charger = ev_charger("ev_2", connectors=2, power_w=22_000.0)
    charger.arrivals_per_hour = 0.0
    assert not charger.set_limit(1, 30_000.0)
    assert not charger.set_limit(9, 1_000.0)
    assert charger.set_limit(1, 5_000.0)
    assert charger.composite_limit(1) == 5_000.0
    charger.plug_in(1, authorise=True, soc=0.2)
    charger.step(60.0, NOON)
    assert 0 < charger.connector(1).power_w <= 5_000.0
    assert charger.set_limit(0, 3_000.0)
    charger.step(60.0, NOON + timedelta(minutes=1))
    assert charger.connector(1).power_w <= 3_000.0


def test_ships_draw_megawatts_until_they_sail() -> None:
    quay = shore_power("quay_1", seed=3)
    quay.arrivals_per_hour = 0.0
    quay.plug_in(1, authorise=True)
    quay.step(60.0, NOON)
    assert 1.0e6 * 0.7 <= quay.connector(1).power_w <= 6.0e6
    _run(quay, 15.0, step_s=300.0)
    assert not quay.connector(1).transaction  # sailed
    assert quay.connector(1).register_wh > 5.0e6  # hours of megawatts


def test_random_arrivals_make_sessions_by_day() -> None:
    domain = ChargingDomain([ev_charger(f"ev_{n}", seed=n) for n in range(10)])
    now = NOON
    for _ in range(24 * 60):
        now += timedelta(minutes=1)
        for point in domain.points:
            point.step(60.0, now)
    started = sum(1 for point in domain.points for event in point.events if event.kind == "started")
    assert started >= 10
    assert domain.devices() == ()


def test_a_lying_meter_reports_impossible_registers() -> None:
    charger = ev_charger("ev_3", connectors=1)
    charger.connector(1).register_wh = 50_000.0
    assert charger.reported_register(charger.connector(1)) == 50_000.0
    charger.faults.add(ChargeFault.LYING_METER)
    reported = {charger.reported_register(charger.connector(1)) for _ in range(20)}
    assert any(value < 50_000.0 for value in reported)
    assert any(value > 1.0e6 for value in reported)


def test_point_list_names_and_addresses() -> None:
    points = charging_points(shore_power("quay_1"), "charging.central")
    by_tag = {point.tag: point for point in points}
    assert by_tag["charging.quay_1.c1.power"].address == "cp:quay_1:1:power_w"
    assert by_tag["charging.quay_1.c1.charge"].writable
    assert by_tag["charging.quay_1.c1.status"].data_type == "string"
    assert by_tag["charging.quay_1.c0.limit"].high == pytest.approx(7.5e6)
    assert len(by_tag) == len(points)
