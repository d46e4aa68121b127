"""Street lighting physics, and one cabinet driven through its OPC UA controller."""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, datetime, timedelta

import pytest
from asyncua import ua
from asyncua.client.client import Client

from plc_sim.device import PointValue
from plc_sim.lighting.network import (
    DISTRICTS_PER_SCALE,
    MODE_AUTO,
    MODE_MANUAL,
    MODE_OFF,
    RAMP_PERCENT_PER_S,
    STANDBY_W,
    Cabinet,
    LightingNetwork,
)
from plc_sim.servers.opcua.server import OpcUaDeviceServer
from plc_sim.weather import Weather, WeatherState

VIENNA = (48.21, 16.37)
# 22:00 UTC in March is 23:00 in Vienna: dark, before the night dim profile starts at 00:00.
EVENING = datetime(2025, 3, 10, 22, 0, tzinfo=UTC)


def dark(at: datetime) -> WeatherState:
    return WeatherState(at, 5.0, 0.5, -30.0, 0.0)


def run_dark(network: LightingNetwork, seconds: float, start: datetime, dt_s: float = 0.5) -> None:
    elapsed = 0.0
    while elapsed < seconds - 1e-9:
        elapsed += dt_s
        now = start + timedelta(seconds=elapsed)
        network.step(dt_s, now, dark(now))


def served_value(network: LightingNetwork, cabinet: Cabinet, point: str) -> PointValue:
    """A cabinet's point as its controller serves it, e.g. ``l01.dim``."""
    return network.devices()[cabinet.district - 1].read(f"{cabinet.prefix}.{point}")


def manual(cabinet: Cabinet, percent: float) -> None:
    cabinet.mode = MODE_MANUAL
    cabinet.dim_setpoint = percent


def test_districts_cabinets_lamps_and_tags() -> None:
    network = LightingNetwork(scale=2, seed=5)
    devices = network.devices()
    assert [device.name for device in devices] == [
        f"lights.d{n}_ctrl" for n in range(1, 2 * DISTRICTS_PER_SCALE + 1)
    ]
    assert all(device.protocol == "opcua" for device in devices)
    assert all(2 <= sum(c.district == n for c in network.cabinets) <= 3 for n in range(1, 9))
    assert all(25 <= cabinet.lamp_count <= 30 for cabinet in network.cabinets)
    tags = {spec.tag: spec for spec in devices[0].points}
    assert tags["lights.d1.c1.mode"].writable
    assert tags["lights.d1.c1.dim_setpoint"].writable
    assert tags["lights.d1.c1.energy"].kind == "counter"
    assert not tags["lights.d1.c1.door_open"].writable
    for point in ("on", "dim", "failed", "power"):
        assert f"lights.d1.c1.l01.{point}" in tags
    assert 40 <= (tags["lights.d1.c1.l01.power"].high or 0) <= 120
    assert network.lamp_count == sum(cabinet.lamp_count for cabinet in network.cabinets)


def test_same_seed_same_city() -> None:
    first, second = LightingNetwork(seed=9), LightingNetwork(seed=9)
    run_dark(first, 30, EVENING)
    run_dark(second, 30, EVENING)
    assert [c.power_kw for c in first.cabinets] == [c.power_kw for c in second.cabinets]
    assert [c.lux for c in first.cabinets] == [c.lux for c in second.cabinets]
    other = LightingNetwork(seed=10)
    assert [c.lamp_count for c in other.cabinets] != [c.lamp_count for c in first.cabinets]


def test_manual_dim_halves_the_power_after_the_ramp() -> None:
    network = LightingNetwork(seed=3)
    cabinet = network.cabinet(1, 1)
    manual(cabinet, 100.0)
    run_dark(network, 10, EVENING)
    full_kw = cabinet.power_kw
    assert cabinet.lamps_on == cabinet.lamp_count
    manual(cabinet, 50.0)
    run_dark(network, 1.0, EVENING + timedelta(seconds=10), dt_s=1.0)
    ramping = served_value(network, cabinet, "l01.dim")
    assert ramping == pytest.approx(100.0 - RAMP_PERCENT_PER_S)
    run_dark(network, 10, EVENING + timedelta(seconds=11))
    # P = W x (0.1 + 0.9 x dim): 55 % of full power at 50 %.
    assert cabinet.power_kw == pytest.approx(0.55 * full_kw, rel=0.01)
    assert served_value(network, cabinet, "l01.dim") == 50.0


def test_off_mode_leaves_only_standby() -> None:
    network = LightingNetwork(seed=3)
    cabinet = network.cabinet(2, 1)
    manual(cabinet, 80.0)
    run_dark(network, 10, EVENING)
    cabinet.mode = MODE_OFF
    run_dark(network, 1, EVENING + timedelta(seconds=10))
    assert cabinet.lamps_on == 0
    assert cabinet.power_kw == pytest.approx(cabinet.lamp_count * STANDBY_W / 1000.0)


def test_auto_mode_follows_daylight_over_a_day() -> None:
    network = LightingNetwork(seed=4, latitude=VIENNA[0], longitude=VIENNA[1], tz="Europe/Vienna")
    weather = Weather(*VIENNA, seed=4)
    start = datetime(2025, 3, 10, 0, 0, tzinfo=UTC)
    cabinet = network.cabinet(1, 1)
    assert cabinet.mode == MODE_AUTO
    lit_by_hour: dict[int, int] = {}
    dim_by_hour: dict[int, float] = {}
    for minute in range(1, 24 * 60 + 1):
        now = start + timedelta(minutes=minute)
        network.step(60.0, now, weather.step(60.0, now))
        if now.minute == 0:
            lit_by_hour[now.hour] = cabinet.lamps_on
            dim_by_hour[now.hour] = served_value(network, cabinet, "l01.dim")
    lamps = cabinet.lamp_count
    # UTC hours: 01:00-03:00 is 02:00-04:00 in Vienna (night dim), 19:00 UTC is 20:00 (dark).
    for night in (1, 2, 3, 19, 21, 23):
        assert lit_by_hour[night] == lamps, f"lamps dark at {night}:00 UTC"
    for day in (9, 11, 13):
        assert lit_by_hour[day] == 0, f"lamps lit at {day}:00 UTC"
    assert dim_by_hour[2] == 50.0
    assert dim_by_hour[21] == 100.0


def test_a_failed_lamp_draws_nothing_until_repaired() -> None:
    network = LightingNetwork(seed=6)
    cabinet = network.cabinet(1, 2)
    manual(cabinet, 100.0)
    run_dark(network, 10, EVENING)
    before_kw = cabinet.power_kw
    network.fail_lamp(1, 2, 7)
    run_dark(network, 10, EVENING + timedelta(seconds=10))
    assert network.lamp_power_w(1, 2, 7) == 0.0
    assert cabinet.lamps_failed == 1
    assert cabinet.lamps_on == cabinet.lamp_count - 1
    assert cabinet.power_kw < before_kw
    assert served_value(network, cabinet, "l07.failed") is True
    network.repair_lamp(1, 2, 7)
    run_dark(network, 10, EVENING + timedelta(seconds=20))
    assert cabinet.lamps_failed == 0
    assert cabinet.power_kw == pytest.approx(before_kw)
    with pytest.raises(KeyError):
        network.fail_lamp(1, 2, cabinet.lamp_count + 1)


def test_week_of_large_steps_stays_finite_and_energy_grows() -> None:
    network = LightingNetwork(scale=2, seed=8)
    weather = Weather(*VIENNA, seed=8)
    steps = random.Random(8)
    now = datetime(2025, 6, 1, tzinfo=UTC)
    end = now + timedelta(days=7)
    last_energy = [0.0] * len(network.cabinets)
    while now < end:
        dt_s = steps.choice((0.1, 5.0, 60.0, 900.0, 3600.0))
        now += timedelta(seconds=dt_s)
        network.step(dt_s, now, weather.step(dt_s, now))
        for index, cabinet in enumerate(network.cabinets):
            values = (cabinet.power_kw, cabinet.energy_kwh, cabinet.lux)
            assert all(math.isfinite(value) for value in values)
            assert cabinet.energy_kwh >= last_energy[index]
            assert 0 <= cabinet.lamps_on <= cabinet.lamp_count
            assert cabinet.power_kw >= 0.0
            last_energy[index] = cabinet.energy_kwh
    # Roughly 8 h of light a night at ~2-3 kW per cabinet: tens of kWh per cabinet and week.
    assert all(energy > 10.0 for energy in last_energy)
    for device in network.devices():
        for spec in device.points:
            value = device.read(spec.tag)
            assert not (isinstance(value, float) and not math.isfinite(value))


def test_lamps_fail_at_the_expected_rate() -> None:
    network = LightingNetwork(scale=5, seed=2)
    for cabinet in network.cabinets:
        manual(cabinet, 100.0)
    now = EVENING
    hours = 2000
    for _ in range(hours):
        now += timedelta(hours=1)
        network.step(3600.0, now, dark(now))
    failed = sum(cabinet.lamps_failed for cabinet in network.cabinets)
    # 50,000 burning hours between failures: ~4 % of the lamps in 2,000 hours.
    expected = network.lamp_count * hours / 50_000
    assert 0.5 * expected < failed < 1.6 * expected


def test_step_cost_at_scale_20() -> None:
    network = LightingNetwork(scale=20, seed=1)
    for cabinet in network.cabinets[::2]:
        manual(cabinet, 70.0)
    now = EVENING
    network.step(0.1, now, dark(now))
    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        now += timedelta(seconds=0.1)
        network.step(0.1, now, dark(now))
    per_step_ms = (time.perf_counter() - started) / rounds * 1000
    print(f"lighting step at scale 20 ({network.lamp_count} lamps): {per_step_ms:.2f} ms")
    # The budget is ~5 ms on a quiet machine; the bound leaves room for a busy CI runner.
    assert per_step_ms < 25.0


async def test_dim_setpoint_over_opc_ua_halves_the_cabinet_power() -> None:
    network = LightingNetwork(seed=3)
    device = network.devices()[0]
    server = OpcUaDeviceServer(device)
    await server.start()
    try:
        async with Client(server.url, timeout=5) as client:
            mode = client.get_node("ns=2;s=lights.d1.c1.mode")
            setpoint = client.get_node("ns=2;s=lights.d1.c1.dim_setpoint")
            power = client.get_node("ns=2;s=lights.d1.c1.power")
            await mode.write_value(ua.Variant(MODE_MANUAL, ua.VariantType.UInt16))
            await setpoint.write_value(ua.Variant(100.0, ua.VariantType.Double))
            run_dark(network, 10, EVENING)
            await server.publish()
            full_kw = await power.read_value()
            await setpoint.write_value(ua.Variant(50.0, ua.VariantType.Double))
            assert network.cabinet(1, 1).dim_setpoint == 50.0
            run_dark(network, 10, EVENING + timedelta(seconds=10))
            await server.publish()
            # "About halves": P = W x (0.1 + 0.9 x dim), so 50 % draws 55 % of full power.
            assert await power.read_value() == pytest.approx(0.55 * full_kw, rel=0.01)
    finally:
        await server.stop()


def test_cabinet_doors_open_now_and_then_and_close_again() -> None:
    network = LightingNetwork(scale=3, seed=12)
    now = EVENING
    opened: set[str] = set()
    closed_after_opening: set[str] = set()
    for _ in range(12 * 90):  # 90 days in steps of 2 h
        now += timedelta(hours=2)
        network.step(7200.0, now, dark(now))
        for cabinet in network.cabinets:
            if cabinet.door_open:
                opened.add(cabinet.prefix)
            elif cabinet.prefix in opened:
                closed_after_opening.add(cabinet.prefix)
    # ~6 openings per cabinet-year: about 1.5 per cabinet in 90 days, each lasting minutes.
    assert len(opened) > len(network.cabinets) // 2
    assert closed_after_opening == opened
