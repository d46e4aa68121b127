"""The simulated city as a whole: its point list, its ports, its physics loop and fault control."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from asyncua.client.client import Client

from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock
from plc_sim.control import ControlEndpoint, send_control_request
from plc_sim.device import FaultKind, UnknownDeviceError
from plc_sim.points import TANK1_DEVICE

WATER_ONLY = frozenset({"water"})
LIGHTS_ONLY = frozenset({"lights"})


def test_scale_1_serves_over_a_thousand_points_across_three_protocols() -> None:
    points = SimulatedCity(SimClock()).points()
    by_protocol = Counter(point.protocol for point in points)
    assert len(points) >= 1000
    assert set(by_protocol) == {"modbus", "opcua", "bacnet"}
    assert len({point.tag for point in points}) == len(points)


def test_scale_20_serves_over_twenty_thousand_points() -> None:
    city = SimulatedCity(SimClock(), CityOptions(scale=20))
    assert len(city.points()) >= 20_000
    assert len(city.devices()) > 15 * len(SimulatedCity(SimClock()).devices())


def test_the_skeleton_tank_keeps_its_tags_and_registers() -> None:
    city = SimulatedCity(SimClock(), CityOptions(domains=WATER_ONLY))
    tank = {point.tag: point for point in city.points() if point.device == TANK1_DEVICE}
    assert {tag: tank[tag].address for tag in list(tank)[:5]} == {
        "water.tank1.level": "ir:0:float32",
        "water.tank1.inflow": "ir:2:float32",
        "water.tank1.outflow": "ir:4:float32",
        "water.tank1.pump_cmd": "coil:0",
        "water.tank1.pump_running": "di:0",
    }
    assert tank["water.tank1.pump_cmd"].writable
    assert not tank["water.tank1.level"].writable


def test_planned_ports_follow_the_base_port() -> None:
    city = SimulatedCity(SimClock(), CityOptions(base_port=20000, domains=WATER_ONLY))
    ports = [port for _, port in city.endpoints().values()]
    assert ports == list(range(20000, 20000 + len(ports)))


def test_the_same_seed_builds_the_same_city() -> None:
    first = SimulatedCity(SimClock(), CityOptions(seed=3)).points()
    second = SimulatedCity(SimClock(), CityOptions(seed=3)).points()
    assert first == second


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="scale"):
        CityOptions(scale=0)
    with pytest.raises(ValueError, match="unknown domains"):
        CityOptions(domains=frozenset({"gas"}))


async def test_physics_keeps_up_with_a_600x_clock(caplog: pytest.LogCaptureFixture) -> None:
    clock = SimClock(speed=600.0)
    city = SimulatedCity(clock, CityOptions(seed=2, domains=WATER_ONLY))
    caplog.set_level(logging.WARNING, logger="plc_sim")
    async with city:
        assert city.water is not None
        start = clock.monotonic()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while clock.monotonic() - start < 600.0:
            assert loop.time() < deadline, "ten simulated minutes took over 10 s"
            await asyncio.sleep(0.05)
        await city.step_now()
    assert not [r for r in caplog.records if "behind" in r.getMessage()]


async def test_stop_is_idempotent_and_closes_the_ports() -> None:
    city = SimulatedCity(SimClock(), CityOptions(domains=WATER_ONLY))
    await city.start()
    host, port = city.endpoints()[TANK1_DEVICE]
    await city.stop()
    await city.stop()
    with pytest.raises(OSError), socket.create_connection((host, port), timeout=1):
        pass


async def test_a_busy_port_is_refused_with_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        city = SimulatedCity(SimClock(), CityOptions(base_port=busy, domains=WATER_ONLY))
        with pytest.raises(OSError, match="could not start"):
            await city.start()
        assert not city.running


async def test_control_endpoint_sets_lists_and_clears_faults() -> None:
    city = SimulatedCity(SimClock(), CityOptions(domains=WATER_ONLY))
    async with city:
        endpoint = ControlEndpoint(city)
        await endpoint.start()
        try:
            port = endpoint.port

            async def ask(**request: object) -> dict[str, object]:
                return await send_control_request("127.0.0.1", port, dict(request))

            assert await ask(action="set", device="water.ps1_rtu", fault="slow", delay_s=0.5) == {
                "ok": True
            }
            device = city.device("water.ps1_rtu")
            assert device.faults.has(FaultKind.SLOW)
            assert device.faults.delay_s == 0.5
            listing = await ask(action="list")
            assert listing["devices"]["water.ps1_rtu"] == ["slow"]  # type: ignore[index]
            assert (await ask(action="clear", device="water.ps1_rtu"))["ok"] is True
            assert not device.faults.active
            refused = await ask(action="set", device="water.nowhere", fault="slow")
            assert refused["ok"] is False
            assert "water.nowhere" in str(refused["error"])
            unknown = await ask(action="set", device="water.ps1_rtu", fault="melting")
            assert "unknown fault" in str(unknown["error"])
            assert (await ask(action="leak", area=1, flow_m3h=30.0))["ok"] is True
            assert (await ask(action="restart", device=TANK1_DEVICE))["ok"] is True
        finally:
            await endpoint.stop()


async def test_physics_timing_counts_steps_and_resets() -> None:
    period = 0.02
    city = SimulatedCity(SimClock(), CityOptions(domains=WATER_ONLY, physics_period_s=period))
    async with city:
        endpoint = ControlEndpoint(city)
        await endpoint.start()
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while city.physics_timing().steps < 5:  # polled with a deadline
                assert asyncio.get_running_loop().time() < deadline, "physics loop not stepping"
                await asyncio.sleep(period)
            answer = await send_control_request(
                "127.0.0.1", endpoint.port, {"action": "timing", "reset": True}
            )
            refused = await send_control_request(
                "127.0.0.1", endpoint.port, {"action": "timing", "reset": "yes"}
            )
        finally:
            await endpoint.stop()
        after_reset = city.physics_timing()
    physics = answer["physics"]
    assert answer["ok"] is True
    assert physics["period_s"] == period
    assert physics["steps"] >= 5
    # A step starts a period after the last one ended: intervals are at least the period.
    assert physics["interval_p95_s"] >= period * 0.9
    assert physics["interval_max_s"] >= physics["interval_p95_s"]
    assert 0 < physics["step_p95_s"] <= physics["step_max_s"]
    assert refused["ok"] is False
    assert "reset" in refused["error"]
    assert after_reset.steps < physics["steps"]


def test_unknown_device_names_the_device() -> None:
    city = SimulatedCity(SimClock(), CityOptions(domains=WATER_ONLY))
    with pytest.raises(UnknownDeviceError, match=r"water\.nowhere"):
        city.device("water.nowhere")


async def test_opcua_values_carry_simulated_source_timestamps() -> None:
    # The demo's clock runs in another year and faster than the wall: OPC UA samples must carry
    # its time, as Modbus and BACnet samples (stamped by the center on arrival) do.
    start = datetime(2030, 1, 1, 6, 0, tzinfo=UTC)
    city = SimulatedCity(SimClock(speed=10.0, start=start), CityOptions(domains=LIGHTS_ONLY))
    async with city:
        point = next(p for p in city.points() if p.protocol == "opcua")
        host, port = city.endpoints()[point.device]
        async with Client(f"opc.tcp://{host}:{port}", timeout=10) as client:
            data_value = await client.get_node(point.address).read_data_value()
    assert data_value.SourceTimestamp is not None
    source = data_value.SourceTimestamp.replace(tzinfo=UTC)
    assert start <= source < start + timedelta(hours=1)
