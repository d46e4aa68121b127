from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from controlcenter.model import DataType, TagDef
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock
from plc_sim.points import TANK1_DEVICE
from tests.drivers.modbus.modbus_test_devices import FeatureDevice

SCRATCH_HOLDING_REGISTERS = 16
"""Holding registers 0..15 of the scratch device; 16 and up are undefined."""


@pytest.fixture
async def city() -> AsyncIterator[SimulatedCity]:
    """The simulated city on a clock 100 times faster than the wall."""
    async with SimulatedCity(
        SimClock(speed=100.0), CityOptions(seed=4, domains=frozenset({"water"}))
    ) as running:
        yield running


@pytest.fixture
def tank_tags(city: SimulatedCity) -> dict[str, TagDef]:
    """The tank's points as the center's tag definitions, by tag name."""
    return {
        point.tag: TagDef(
            name=point.tag,
            device=point.device,
            address=point.address,
            data_type=DataType(point.data_type),
            unit=point.unit,
            low=point.low,
            high=point.high,
            writable=point.writable,
        )
        for point in city.points()
        if point.device == TANK1_DEVICE
    }


@pytest.fixture
async def scratch_port() -> AsyncIterator[int]:
    """A plain Modbus device with holding registers 0..15 and coils 0..15, on an ephemeral port."""
    device = SimDevice(
        id=1,
        simdata=(
            [SimData(0, values=[False] * 16, datatype=SimType.BITS)],
            [SimData(0, values=[True] * 16, datatype=SimType.BITS)],
            [SimData(0, values=[0] * SCRATCH_HOLDING_REGISTERS, datatype=SimType.REGISTERS)],
            [SimData(0, values=[0] * 4, datatype=SimType.REGISTERS)],
        ),
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    assert isinstance(server.transport, asyncio.Server)
    yield int(server.transport.sockets[0].getsockname()[1])
    await server.shutdown()  # type: ignore[no-untyped-call]


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers."""
    connections: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(1024):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in connections:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.fixture
async def feature_device() -> AsyncIterator[FeatureDevice]:
    """Units 1 and 2 behind one endpoint; registers 0..99 with holes at 10..19 and 40..41."""
    device = FeatureDevice()
    await device.start()
    yield device
    await device.stop()
