"""Modbus TCP against independent stacks, both ways, over loopback sockets on free ports.

- Debian's ``mbpoll`` (a libmodbus client) reads and writes the simulated city's RTU server.
- A libmodbus server (``libmodbus_server.c``, compiled here with gcc) is polled and written by
  the center's driver: every value type, both word orders, an exception reply, a restart.

``.ci/setup.d/20-modbus-interop.sh`` installs mbpoll, libmodbus-dev and gcc; without them these
tests fail and say so.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal

import pytest

from controlcenter.model import DataType, Sample, Substatus, TagDef, Value
from drivers.base import DeviceRejectedError, DriverError
from drivers.modbus import ModbusDeviceConfig, ModbusDriver
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock
from plc_sim.points import TANK1_DEVICE
from plc_sim.servers.modbus.server import ModbusDeviceServer
from tests.plc_sim.servers.modbus.test_plc_sim_modbus_server import UNIT, RtuModel, make_device

SETUP_SCRIPT = ".ci/setup.d/20-modbus-interop.sh"
SERVER_SOURCE = Path(__file__).with_name("libmodbus_server.c")


def required_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: run {SETUP_SCRIPT}")
    return path


# --- mbpoll against the simulated city's Modbus server ------------------------------------------


@pytest.fixture
async def rtu() -> AsyncIterator[tuple[RtuModel, ModbusDeviceServer]]:
    model = RtuModel()
    server = ModbusDeviceServer(make_device(model))
    await server.start()
    yield model, server
    await server.stop()


async def mbpoll(port: int, *args: str, unit: int = UNIT) -> tuple[int, str]:
    """Run mbpoll once (zero-based references, ``unit``); its exit status and output."""
    command = [required_tool("mbpoll"), "-m", "tcp", "-p", str(port), "-a", str(unit)]
    command += ["-0", "-1", "-o", "2", *args]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 15)
    return int(process.returncode or 0), output.decode()


def values_of(output: str) -> dict[int, str]:
    return {int(ref): value for ref, value in re.findall(r"\[(\d+)\]:\s+(\S+)", output)}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("-t", "3:float", "-B", "-r", "0"), {0: 42.5}),  # input registers, float32
        (("-t", "3:float", "-B", "-r", "24"), {24: 12.0}),
        (("-t", "4:float", "-B", "-r", "0"), {0: 80.0}),  # holding registers, float32
        (("-t", "4", "-r", "2"), {2: 1.0}),  # holding register, uint16
        (("-t", "0", "-r", "0"), {0: 0.0}),  # coil
        (("-t", "1", "-r", "0"), {0: 1.0}),  # discrete inputs
        (("-t", "1", "-r", "32"), {32: 0.0}),
    ],
)
async def test_mbpoll_reads_the_simulated_rtu(
    rtu: tuple[RtuModel, ModbusDeviceServer], args: tuple[str, ...], expected: dict[int, float]
) -> None:
    _, server = rtu
    status, output = await mbpoll(server.port, *args, "127.0.0.1")
    assert status == 0, output
    assert {ref: float(value) for ref, value in values_of(output).items()} == expected


async def test_mbpoll_writes_a_holding_register_a_coil_and_a_float(
    rtu: tuple[RtuModel, ModbusDeviceServer],
) -> None:
    model, server = rtu
    status, output = await mbpoll(server.port, "-t", "4", "-r", "2", "127.0.0.1", "2")
    assert status == 0, output
    assert model.values["rtu.pump1.mode"] == 2
    status, output = await mbpoll(server.port, "-t", "0", "-r", "0", "127.0.0.1", "1")
    assert status == 0, output
    assert model.values["rtu.pump1.cmd"] is True
    status, output = await mbpoll(
        server.port, "-t", "4:float", "-B", "-r", "0", "127.0.0.1", "55.5"
    )
    assert status == 0, output
    assert model.values["rtu.pump1.speed_sp"] == 55.5
    status, output = await mbpoll(server.port, "-t", "4:float", "-B", "-r", "0", "127.0.0.1")
    assert values_of(output) == {0: "55.5"}


async def test_mbpoll_sees_the_exceptions_of_the_simulated_rtu(
    rtu: tuple[RtuModel, ModbusDeviceServer],
) -> None:
    _, server = rtu
    status, output = await mbpoll(server.port, "-t", "4", "-r", "10", "127.0.0.1")
    assert status != 0 and "Illegal data address" in output, output
    status, output = await mbpoll(server.port, "-t", "4", "-r", "2", "127.0.0.1", "7")
    assert status != 0 and "Illegal data value" in output, output  # mode is 0..2


async def test_mbpoll_reads_a_tank_of_the_running_city() -> None:
    options = CityOptions(seed=4, domains=frozenset({"water"}))
    async with SimulatedCity(SimClock(speed=10.0), options) as city:
        _, port = city.endpoints()[TANK1_DEVICE]
        addresses = {p.tag: p.address for p in city.points() if p.device == TANK1_DEVICE}
        assert addresses["water.tank1.level"] == "ir:0:float32"
        assert addresses["water.tank1.pump_running"] == "di:0"
        status, output = await mbpoll(
            port, "-t", "3:float", "-B", "-r", "0", "-c", "3", "127.0.0.1", unit=1
        )
        assert status == 0, output
        level = float(values_of(output)[0])
        assert 0.0 <= level <= 5.0
        status, output = await mbpoll(port, "-t", "1", "-r", "0", "127.0.0.1", unit=1)
        assert status == 0 and values_of(output)[0] in ("0", "1"), output


# --- the center's driver against a libmodbus server ---------------------------------------------


@pytest.fixture(scope="module")
def libmodbus_server_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc, pkg_config = required_tool("gcc"), required_tool("pkg-config")
    flags = subprocess.run(
        [pkg_config, "--cflags", "--libs", "libmodbus"], check=False, capture_output=True, text=True
    )
    if flags.returncode != 0:
        pytest.fail(f"libmodbus-dev is missing ({flags.stderr.strip()}): run {SETUP_SCRIPT}")
    binary = tmp_path_factory.mktemp("libmodbus") / "libmodbus_server"
    compiled = subprocess.run(
        [gcc, "-O1", "-Wall", "-o", str(binary), str(SERVER_SOURCE), *flags.stdout.split()],
        check=False,
        capture_output=True,
        text=True,
    )
    assert compiled.returncode == 0, compiled.stderr
    return binary


class LibmodbusServer:
    """The compiled libmodbus server as a child process."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            str(self.binary), str(self.port), stdout=asyncio.subprocess.PIPE
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 10)
        assert line.startswith(b"PORT "), line
        self.port = int(line.split()[1])

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def libmodbus(libmodbus_server_binary: Path) -> AsyncIterator[LibmodbusServer]:
    server = LibmodbusServer(libmodbus_server_binary)
    await server.start()
    yield server
    await server.kill()


@pytest.fixture
def clock() -> Iterator[SimClock]:
    yield SimClock()


def driver_for(
    server: LibmodbusServer,
    clock: SimClock,
    *,
    word_order: Literal["big", "little"] = "big",
    multiple_writes_only: bool = False,
) -> ModbusDriver:
    config = ModbusDeviceConfig(
        "127.0.0.1",
        server.port,
        timeout_s=0.5,
        reconnect_delay_max_s=0.3,
        word_order=word_order,
        multiple_writes_only=multiple_writes_only,
    )
    return ModbusDriver("libmodbus", config, clock)


def point(address: str, data_type: DataType) -> TagDef:
    return TagDef(f"lm.{address}", "libmodbus", address, data_type, writable=True)


EXPECTED_READS: dict[str, tuple[DataType, Value]] = {
    "hr:0:uint16": (DataType.INT, 1234),
    "hr:1:int16": (DataType.INT, -1234),
    "hr:2:uint32": (DataType.INT, 305419896),
    "hr:4:int32": (DataType.INT, -123456),
    "hr:6:float32": (DataType.FLOAT, 21.5),
    "hr:8:float64": (DataType.FLOAT, -1234.5678),
    "hr:12.0": (DataType.BOOL, False),
    "hr:12.1": (DataType.BOOL, True),
    "hr:12.3": (DataType.BOOL, True),
    "ir:0:uint16": (DataType.INT, 4321),
    "ir:1:int16": (DataType.INT, -1234),
    "ir:6:float32": (DataType.FLOAT, 3.25),
    "ir:8:float64": (DataType.FLOAT, 0.125),
    "coil:0": (DataType.BOOL, True),
    "coil:1": (DataType.BOOL, False),
    "coil:2": (DataType.BOOL, True),
    "di:0": (DataType.BOOL, False),
    "di:1": (DataType.BOOL, True),
}


async def test_the_driver_reads_every_value_type_from_libmodbus(
    libmodbus: LibmodbusServer, clock: SimClock
) -> None:
    driver = driver_for(libmodbus, clock)
    points = [point(address, data_type) for address, (data_type, _) in EXPECTED_READS.items()]
    try:
        samples = await driver.read(points)
        little = driver_for(libmodbus, clock, word_order="little")
        (swapped,) = await little.read([point("hr:20:float32", DataType.FLOAT)])
        await little.close()
    finally:
        await driver.close()
    assert all(sample.quality.is_good for sample in samples), samples
    assert {s.tag: s.value for s in samples} == {
        f"lm.{address}": value for address, (_, value) in EXPECTED_READS.items()
    }
    assert swapped.quality.is_good and swapped.value == -7.25


WRITES: list[tuple[str, DataType, Value]] = [
    ("hr:0:uint16", DataType.INT, 65535),
    ("hr:1:int16", DataType.INT, -32768),
    ("hr:2:uint32", DataType.INT, 4_000_000_000),
    ("hr:4:int32", DataType.INT, -2_000_000_000),
    ("hr:6:float32", DataType.FLOAT, 0.5),
    ("hr:8:float64", DataType.FLOAT, 3.141592653589793),
    ("hr:12.2", DataType.BOOL, True),
    ("hr:12.1", DataType.BOOL, False),
    ("coil:1", DataType.BOOL, True),
    ("coil:0", DataType.BOOL, False),
]


async def test_the_driver_writes_every_value_type_to_libmodbus(
    libmodbus: LibmodbusServer, clock: SimClock
) -> None:
    driver = driver_for(libmodbus, clock)
    try:
        for address, data_type, value in WRITES:
            assert await driver.write(point(address, data_type), value) == value, address
        samples = await driver.read([point(a, t) for a, t, _ in WRITES])
        # Register 12 now holds bits 3 and 2 (0b1100); its other bits were kept.
        (register,) = await driver.read([point("hr:12:uint16", DataType.INT)])
        multiple = driver_for(libmodbus, clock, multiple_writes_only=True)
        assert await multiple.write(point("hr:0:uint16", DataType.INT), 7) == 7  # FC16
        assert await multiple.write(point("coil:2", DataType.BOOL), False) is False  # FC15
        await multiple.close()
    finally:
        await driver.close()
    assert [s.value for s in samples] == [value for _, _, value in WRITES]
    assert register.value == 0b1100


async def test_a_libmodbus_exception_reply_is_bad_for_its_points_only(
    libmodbus: LibmodbusServer, clock: SimClock
) -> None:
    driver = driver_for(libmodbus, clock)
    try:
        good, refused = await driver.read(
            [point("hr:0:uint16", DataType.INT), point("hr:100:uint16", DataType.INT)]
        )
        with pytest.raises(DeviceRejectedError, match="illegal data address"):
            await driver.write(point("hr:100:uint16", DataType.INT), 1)
    finally:
        await driver.close()
    assert good.quality.is_good and good.value == 1234
    assert refused.quality.substatus is Substatus.DEVICE_FAILURE
    assert "Modbus exception 2 (illegal data address)" in refused.quality.reason
    assert "read hr:100+1" in refused.quality.reason


async def read_until_good(driver: ModbusDriver, points: list[TagDef]) -> list[Sample]:
    deadline = time.monotonic() + 10
    while True:
        try:
            samples = await driver.read(points)
            if all(sample.quality.is_good for sample in samples):
                return samples
        except DriverError:
            pass
        assert time.monotonic() < deadline, "the driver never read the restarted server"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(60)
async def test_the_driver_recovers_after_a_libmodbus_restart(
    libmodbus: LibmodbusServer, clock: SimClock
) -> None:
    driver = driver_for(libmodbus, clock)
    points = [point("hr:6:float32", DataType.FLOAT), point("coil:0", DataType.BOOL)]
    try:
        assert [s.value for s in await driver.read(points)] == [21.5, True]
        await libmodbus.kill()
        with pytest.raises(DriverError) as failure:
            await driver.read(points)
        assert failure.value.substatus in (Substatus.NOT_CONNECTED, Substatus.TIMEOUT)
        await libmodbus.start()  # the same port
        assert [s.value for s in await read_until_good(driver, points)] == [21.5, True]
    finally:
        await driver.close()
