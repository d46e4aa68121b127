from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable, Sequence

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ExceptionResponse

from plc_sim.city import SimulatedCity
from plc_sim.clock import SimClock
from plc_sim.points import TANK1_DEVICE

TAGS = {
    "water.tank1.level",
    "water.tank1.inflow",
    "water.tank1.outflow",
    "water.tank1.pump_cmd",
    "water.tank1.pump_running",
}


async def wait_until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


async def connected_client(city: SimulatedCity) -> AsyncModbusTcpClient:
    host, port = city.endpoints()[TANK1_DEVICE]
    client = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0, reconnect_delay=0)
    assert await client.connect()
    return client


def float_at(registers: Sequence[int], offset: int) -> float:
    value: float = struct.unpack(">f", struct.pack(">HH", *registers[offset : offset + 2]))[0]
    return value


def test_point_list_describes_the_tank() -> None:
    city = SimulatedCity(SimClock())
    points = {point.tag: point for point in city.points()}
    assert set(points) == TAGS
    assert all(
        point.device == TANK1_DEVICE and point.protocol == "modbus" for point in points.values()
    )
    assert points["water.tank1.level"].address == "ir:0:float32"
    assert points["water.tank1.level"].unit == "m"
    assert (points["water.tank1.level"].low, points["water.tank1.level"].high) == (0.0, 5.0)
    assert points["water.tank1.pump_cmd"].writable
    assert points["water.tank1.pump_cmd"].data_type == "bool"
    assert [p.tag for p in city.points() if p.writable] == ["water.tank1.pump_cmd"]


async def test_serves_the_tank_state_on_the_documented_registers(fast_city: SimulatedCity) -> None:
    host, port = fast_city.endpoints()[TANK1_DEVICE]
    assert (host, port > 0) == ("127.0.0.1", True)
    client = await connected_client(fast_city)
    try:
        response = await client.read_input_registers(0, count=6, device_id=1)
        assert not response.isError()
        level = float_at(response.registers, 0)
        assert 2.5 < level < 3.5
        assert abs(level - fast_city.tank.level_m) < 0.05
        assert float_at(response.registers, 2) == 0.0
        assert float_at(response.registers, 4) > 0.0
        discrete = await client.read_discrete_inputs(0, count=1, device_id=1)
        assert discrete.bits[0] is False
    finally:
        client.close()


async def test_coil_write_starts_the_pump_after_its_delay(fast_city: SimulatedCity) -> None:
    client = await connected_client(fast_city)
    try:
        written = await client.write_coil(0, True, device_id=1)
        assert not written.isError()
        assert fast_city.tank.pump_command
        assert not fast_city.tank.pump_running

        async def running_bit() -> bool:
            response = await client.read_discrete_inputs(0, count=1, device_id=1)
            return bool(response.bits[0])

        deadline = time.monotonic() + 3.0
        while not await running_bit():
            assert time.monotonic() < deadline, "pump never reported running"
            await asyncio.sleep(0.01)
        await client.write_coil(0, False, device_id=1)
        assert not fast_city.tank.pump_running
    finally:
        client.close()


@pytest.mark.parametrize(
    ("request_name", "address", "count"),
    [
        ("read_coils", 1, 1),
        ("read_discrete_inputs", 5, 1),
        ("read_input_registers", 5, 2),
        ("read_input_registers", 6, 1),
        ("read_holding_registers", 0, 1),
    ],
)
async def test_undefined_addresses_answer_exception_2(
    fast_city: SimulatedCity, request_name: str, address: int, count: int
) -> None:
    client = await connected_client(fast_city)
    try:
        response = await getattr(client, request_name)(address, count=count, device_id=1)
        assert isinstance(response, ExceptionResponse)
        assert response.exception_code == 2
        for write in (
            client.write_coil(1, True, device_id=1),
            client.write_register(0, 1, device_id=1),
        ):
            rejected = await write
            assert isinstance(rejected, ExceptionResponse)
            assert rejected.exception_code == 2
        assert not fast_city.tank.pump_command
    finally:
        client.close()


async def test_other_unit_ids_answer_gateway_exception(fast_city: SimulatedCity) -> None:
    client = await connected_client(fast_city)
    try:
        response = await client.read_input_registers(0, count=2, device_id=9)
        assert isinstance(response, ExceptionResponse)
        assert response.exception_code == 11
    finally:
        client.close()


async def test_physics_keeps_up_with_a_600x_clock(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    clock = SimClock(speed=600.0)
    city = SimulatedCity(clock, seed=2)
    async with city:
        city.tank.command_pump(True)
        started = clock.monotonic()
        await wait_until(lambda: clock.monotonic() - started > 120.0)
        await wait_until(lambda: city.tank.pump_running)
        step_time = city.tank.time
        assert step_time is not None
        assert abs((clock.now() - step_time).total_seconds()) < 60.0
        assert 0.0 <= city.tank.level_m <= 5.0
    assert not city.running
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_stop_is_idempotent_and_closes_the_port() -> None:
    city = SimulatedCity(SimClock(speed=10.0))
    await city.start()
    host, port = city.endpoints()[TANK1_DEVICE]
    with pytest.raises(RuntimeError):
        await city.start()
    await city.stop()
    await city.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection(host, port)
    with pytest.raises(RuntimeError):
        city.endpoints()


async def test_a_busy_port_is_refused_with_oserror(fast_city: SimulatedCity) -> None:
    _, port = fast_city.endpoints()[TANK1_DEVICE]
    second = SimulatedCity(SimClock(), modbus_port=port)
    with pytest.raises(OSError, match="cannot listen"):
        await second.start()
    await second.stop()
    assert not second.running
