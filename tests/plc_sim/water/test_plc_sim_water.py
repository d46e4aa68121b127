from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pymodbus.client import AsyncModbusTcpClient

from plc_sim.device import SimDevice
from plc_sim.servers.modbus.server import ModbusDeviceServer
from plc_sim.water.network import WaterNetwork
from plc_sim.water.pumps import PumpCurve, PumpStation, SystemCurve, operating_point
from plc_sim.weather import WeatherState

VIENNA = ZoneInfo("Europe/Vienna")
TANK1_TAGS = [
    "water.tank1.level",
    "water.tank1.inflow",
    "water.tank1.outflow",
    "water.tank1.pump_cmd",
    "water.tank1.pump_running",
]


def weather(at: datetime, temp_c: float = 15.0) -> WeatherState:
    return WeatherState(
        time=at, outdoor_temp_c=temp_c, cloud_cover=0.3, sun_elevation_deg=0.0, daylight_lux=0.0
    )


def local(year: int, month: int, day: int, hour: int) -> datetime:
    return datetime(year, month, day, hour, tzinfo=VIENNA).astimezone(UTC)


def run(network: WaterNetwork, start: datetime, seconds: float, dt_s: float) -> datetime:
    now = start
    for _ in range(round(seconds / dt_s)):
        now += timedelta(seconds=dt_s)
        network.step(dt_s, now, weather(now))
    return now


def device(network: WaterNetwork, name: str) -> SimDevice:
    return next(d for d in network.devices() if d.name == name)


def values(network: WaterNetwork) -> list[float]:
    return [float(d.read(p.tag)) for d in network.devices() for p in d.points]


# --- devices and tags ---------------------------------------------------------------------------


def test_one_modbus_rtu_per_site_and_tank1_keeps_its_five_points_first() -> None:
    network = WaterNetwork(scale=1, seed=1)
    names = [d.name for d in network.devices()]
    assert names == [
        "water.plant_rtu",
        "water.tank1_rtu",
        "water.tank2_rtu",
        "water.tank3_rtu",
        "water.ps1_rtu",
        "water.ps2_rtu",
        "water.ps3_rtu",
        "water.dma1_rtu",
        "water.dma2_rtu",
        "water.dma3_rtu",
        "water.dma4_rtu",
    ]
    assert all(d.protocol == "modbus" and d.unit_id == 1 for d in network.devices())
    tank1 = device(network, "water.tank1_rtu")
    assert [p.tag for p in tank1.points[:5]] == TANK1_TAGS
    assert [p.tag for p in tank1.points if p.writable] == ["water.tank1.pump_cmd"]
    # The skeleton's register map stays where the demo site file has it.
    addresses = ModbusDeviceServer(tank1).addresses()
    assert [addresses[tag] for tag in TANK1_TAGS] == [
        "ir:0:float32",
        "ir:2:float32",
        "ir:4:float32",
        "coil:0",
        "di:0",
    ]
    station = device(network, "water.ps1_rtu")
    assert {p.tag for p in station.points} >= {
        "water.ps1.pump2.run_cmd",
        "water.ps1.pump2.running",
        "water.ps1.pump2.speed",
        "water.ps1.pump2.flow",
        "water.ps1.pump2.discharge_pressure",
        "water.ps1.pump2.current",
        "water.ps1.pump2.fault",
    }
    assert device(network, "water.dma1_rtu").spec("water.dma1.volume").kind == "counter"


def test_scale_multiplies_stations_reservoirs_and_districts() -> None:
    network = WaterNetwork(scale=3, seed=1)
    names = [d.name for d in network.devices()]
    assert sum(name.startswith("water.ps") for name in names) == 9
    assert sum(name.startswith("water.dma") for name in names) == 12
    assert sum(name.startswith("water.tank") for name in names) == 1 + 6
    tags = [p.tag for d in network.devices() for p in d.points]
    assert len(tags) == len(set(tags))


# --- pumps --------------------------------------------------------------------------------------


def test_pump_curve_more_head_less_flow_and_affinity_with_speed() -> None:
    curve = PumpCurve()
    flows = [curve.flow_at_head_m3h(head, 100.0) for head in (20.0, 35.0, 50.0, 60.0)]
    assert flows == sorted(flows, reverse=True)
    assert flows[-1] == 0.0
    assert curve.head_m(0.0, 50.0) == pytest.approx(curve.shutoff_head_m / 4.0)
    low = operating_point([curve], [100.0], SystemCurve(20.0, 3e-4))
    high = operating_point([curve], [100.0], SystemCurve(30.0, 3e-4))
    slow = operating_point([curve], [85.0], SystemCurve(20.0, 3e-4))
    assert high.flows_m3h[0] < low.flows_m3h[0]
    assert slow.flows_m3h[0] < low.flows_m3h[0]
    for point, static in ((low, 20.0), (high, 30.0)):
        flow = point.flows_m3h[0]
        assert point.head_m == pytest.approx(curve.head_m(flow, 100.0), abs=1e-6)
        assert point.head_m == pytest.approx(static + 3e-4 * flow * flow, abs=1e-6)
    two = operating_point([curve, curve], [100.0, 100.0], SystemCurve(20.0, 3e-4))
    assert low.flows_m3h[0] < sum(two.flows_m3h) < 2 * low.flows_m3h[0]
    mixed = operating_point([curve, curve], [100.0, 99.999], SystemCurve(20.0, 3e-4))
    assert sum(mixed.flows_m3h) == pytest.approx(sum(two.flows_m3h), rel=1e-3)
    shut = operating_point([curve], [100.0], SystemCurve(20.0, math.inf))
    assert shut.flows_m3h == (0.0,) and shut.head_m == curve.shutoff_head_m


def test_running_feedback_comes_only_after_the_start_delay() -> None:
    network = WaterNetwork(scale=1, seed=2)
    pump = network.stations[0].pumps[0]
    start = local(2025, 3, 10, 12)
    network.stations[0].auto = False
    pump.command(True)
    now = run(network, start, 7.0, 1.0)
    assert not pump.running and pump.flow_m3h == 0.0
    now = run(network, now, 1.0, 1.0)
    assert pump.running
    now = run(network, now, 30.0, 1.0)
    assert pump.flow_m3h > 100.0
    # A long step integrates the same start: delay, then the ramp.
    coarse = WaterNetwork(scale=1, seed=2)
    coarse.stations[0].auto = False
    coarse.stations[0].pumps[0].command(True)
    run(coarse, start, 38.0, 38.0)
    assert coarse.stations[0].pumps[0].flow_m3h == pytest.approx(pump.flow_m3h, rel=1e-3)


def test_running_pump_fills_its_reservoir_and_draws_current() -> None:
    network = WaterNetwork(scale=1, seed=3)
    for station in network.stations:
        station.auto = False
    reservoir = network.reservoir_of_station(2)
    start = local(2025, 3, 10, 2)
    after_idle = run(network, start, 1800.0, 10.0)
    idle_level = reservoir.level_m
    assert idle_level < reservoir.height_m
    station = network.stations[1]
    station.pumps[0].command(True)
    run(network, after_idle, 1800.0, 10.0)
    assert reservoir.level_m > idle_level + 0.02
    assert station.flow_m3h > 100.0
    assert station.current_a(station.pumps[0]) > 20.0
    assert station.discharge_pressure_bar(station.pumps[0]) > 2.0


def test_closing_the_inlet_valve_throttles_the_station() -> None:
    open_net, throttled = WaterNetwork(scale=1, seed=4), WaterNetwork(scale=1, seed=4)
    throttled.reservoirs[1].inlet_valve_pct = 15.0
    for network in (open_net, throttled):
        network.stations[1].auto = False
        network.stations[1].pumps[0].command(True)
        run(network, local(2025, 3, 10, 12), 120.0, 5.0)
    assert 0 < throttled.stations[1].flow_m3h < open_net.stations[1].flow_m3h
    assert throttled.stations[1].header_head_m > open_net.stations[1].header_head_m


def test_local_level_control_starts_pumps_on_a_low_reservoir() -> None:
    network = WaterNetwork(scale=1, seed=5)
    station: PumpStation = network.stations[1]
    reservoir = network.reservoir_of_station(2)
    reservoir.level_m = 0.2 * reservoir.height_m
    run(network, local(2025, 3, 10, 12), 60.0, 10.0)
    assert all(pump.running for pump in station.pumps)
    network.trip_pump(2, 1)
    run(network, local(2025, 3, 10, 12), 60.0, 10.0)
    assert station.pumps[0].fault and not station.pumps[0].running
    assert station.pumps[1].running


# --- districts ----------------------------------------------------------------------------------


def night(network: WaterNetwork, dma: int) -> tuple[float, float]:
    """Minimum night flow and the lowest pressure of a district between 01:00 and 05:00."""
    now = run(network, local(2025, 3, 10, 0), 3600.0, 60.0)
    flows, pressures = [], []
    for _ in range(240):
        now = run(network, now, 60.0, 60.0)
        flows.append(network.districts[dma - 1].inflow_m3h)
        pressures.append(network.districts[dma - 1].pressure_bar)
    return min(flows), min(pressures)


def test_demand_has_a_night_minimum_and_daytime_peaks() -> None:
    network = WaterNetwork(scale=1, seed=6)
    by_hour: dict[int, float] = {}
    now = local(2025, 3, 10, 0)
    for _ in range(24 * 12):
        now = run(network, now, 300.0, 60.0)
        hour = now.astimezone(VIENNA).hour
        by_hour[hour] = by_hour.get(hour, 0.0) + network.districts[0].inflow_m3h
    quietest = min(by_hour, key=by_hour.__getitem__)
    busiest = max(by_hour, key=by_hour.__getitem__)
    assert 1 <= quietest <= 4
    assert busiest in (6, 7, 8, 18, 19, 20)
    assert by_hour[busiest] > 2.0 * by_hour[quietest]


def test_leak_raises_minimum_night_flow_and_lowers_pressure() -> None:
    healthy, leaking = WaterNetwork(scale=1, seed=7), WaterNetwork(scale=1, seed=7)
    leaking.set_leak(2, 40.0)
    healthy_flow, healthy_pressure = night(healthy, 2)
    leak_flow, leak_pressure = night(leaking, 2)
    assert leak_flow == pytest.approx(healthy_flow + 40.0, abs=8.0)
    assert leak_pressure < healthy_pressure - 0.01
    leaking.set_leak(2, 0.0)
    assert leaking.districts[1].leak_m3h == 0.0
    with pytest.raises(IndexError):
        leaking.set_leak(5, 1.0)
    with pytest.raises(ValueError, match="leak"):
        leaking.set_leak(1, -1.0)


def test_empty_reservoir_delivers_only_its_inflow_and_pressure_collapses() -> None:
    network = WaterNetwork(scale=1, seed=8)
    for station in network.stations:
        station.auto = False
    reservoir = network.reservoir_of_district(2)
    reservoir.level_m = 0.05
    run(network, local(2025, 3, 10, 8), 1800.0, 30.0)
    assert reservoir.level_m == 0.0
    assert (
        reservoir.outflow_m3h == pytest.approx(reservoir.inflow_m3h) and reservoir.inflow_m3h == 0
    )
    assert network.districts[1].inflow_m3h == 0.0
    assert network.districts[1].pressure_bar == 0.0


# --- whole-network invariants -------------------------------------------------------------------


def test_seven_days_at_one_minute_stay_bounded_finite_and_counters_only_grow() -> None:
    network = WaterNetwork(scale=1, seed=9)
    network.set_leak(3, 25.0)
    now = local(2025, 7, 1, 0)
    volumes = [d.volume_m3 for d in network.districts]
    for step in range(7 * 24 * 60):
        now += timedelta(seconds=60.0)
        network.step(60.0, now, weather(now, temp_c=15.0 + 12.0 * math.sin(step / 229.0)))
        tank = network.tank1
        if tank.level_m < 1.5:
            tank.command_pump(True)
        elif tank.level_m > 4.0:
            tank.command_pump(False)
        if step == 3000:
            network.trip_pump(1, 1)
        if step % 60 == 0:
            assert all(math.isfinite(v) for v in values(network))
            assert 0.0 <= tank.level_m <= tank.params.height_m
            for reservoir in network.reservoirs:
                assert 0.0 <= reservoir.level_m <= reservoir.height_m
            current = [d.volume_m3 for d in network.districts]
            assert all(b >= a for a, b in zip(volumes, current, strict=True))
            volumes = current
    assert all(0.2 < r.level_fraction < 0.95 for r in network.reservoirs)
    assert all(d.pressure_bar > 2.0 for d in network.districts)


def test_deterministic_for_a_seed() -> None:
    first, second, other = (WaterNetwork(scale=2, seed=s) for s in (10, 10, 11))
    for network in (first, second, other):
        run(network, local(2025, 3, 10, 5), 6 * 3600.0, 60.0)
    assert values(first) == values(second)
    assert values(first) != values(other)


def test_step_rejects_negative_and_naive_times() -> None:
    network = WaterNetwork()
    with pytest.raises(ValueError, match="negative"):
        network.step(-1.0, local(2025, 3, 10, 5), weather(local(2025, 3, 10, 5)))
    with pytest.raises(ValueError, match="aware"):
        network.step(1.0, datetime(2025, 3, 10, 5), weather(local(2025, 3, 10, 5)))


# --- through the Modbus server ------------------------------------------------------------------


def float_at(registers: Sequence[int]) -> float:
    value: float = struct.unpack(">f", struct.pack(">HH", *registers))[0]
    return value


async def test_pump_commanded_over_modbus_runs_and_fills_the_served_reservoir() -> None:
    network = WaterNetwork(scale=1, seed=12)
    station_server = ModbusDeviceServer(device(network, "water.ps1_rtu"))
    tank_server = ModbusDeviceServer(device(network, "water.tank2_rtu"))
    await station_server.start()
    await tank_server.start()
    station_client = AsyncModbusTcpClient("127.0.0.1", port=station_server.port, timeout=2)
    tank_client = AsyncModbusTcpClient("127.0.0.1", port=tank_server.port, timeout=2)
    try:
        assert await station_client.connect() and await tank_client.connect()
        station_map = station_server.addresses()
        run_coil = int(station_map["water.ps1.pump1.run_cmd"].split(":")[1])
        running_di = int(station_map["water.ps1.pump1.running"].split(":")[1])
        level_ir = int(tank_server.addresses()["water.tank2.level"].split(":")[1])

        async def served_level() -> float:
            response = await tank_client.read_input_registers(level_ir, count=2, device_id=1)
            return float_at(response.registers)

        async def served_running() -> bool:
            response = await station_client.read_discrete_inputs(running_di, count=1, device_id=1)
            return bool(response.bits[0])

        now = local(2025, 3, 10, 3)
        before = await served_level()
        written = await station_client.write_coil(run_coil, True, device_id=1)
        assert not written.isError()
        assert network.stations[0].pumps[0].run_command and not network.stations[0].auto
        now = run(network, now, 5.0, 1.0)
        await station_server.publish()
        assert not await served_running()
        now = run(network, now, 5.0, 1.0)
        await station_server.publish()
        assert await served_running()
        run(network, now, 3600.0, 60.0)
        await station_server.publish()
        await tank_server.publish()
        assert await served_level() > before + 0.05
    finally:
        station_client.close()
        tank_client.close()
        await station_server.stop()
        await tank_server.stop()
