from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from controlcenter.model import DataType, Sample, Severity, Substatus, TagDef
from drivers.base import (
    AddressError,
    CommunicationTimeoutError,
    DeviceRejectedError,
    Driver,
    NotConnectedError,
)
from drivers.modbus import ModbusDeviceConfig, ModbusDriver
from plc_sim.city import SimulatedCity
from plc_sim.clock import SimClock
from plc_sim.points import TANK1_DEVICE

FLOATS = ("water.tank1.level", "water.tank1.inflow", "water.tank1.outflow")


def make_driver(city: SimulatedCity, *, unit_id: int = 1, timeout_s: float = 1.0) -> ModbusDriver:
    host, port = city.endpoints()[TANK1_DEVICE]
    clock = city.clock
    assert isinstance(clock, SimClock)
    config = ModbusDeviceConfig(host, port, unit_id=unit_id, timeout_s=timeout_s)
    return ModbusDriver(TANK1_DEVICE, config, clock)


def tag(address: str, data_type: DataType = DataType.FLOAT, name: str = "") -> TagDef:
    return TagDef(name or f"test.{address}", "test_device", address, data_type, writable=True)


@pytest.fixture
async def driver(city: SimulatedCity) -> AsyncIterator[ModbusDriver]:
    tank_driver = make_driver(city)
    await tank_driver.connect()
    yield tank_driver
    await tank_driver.close()


@pytest.fixture
async def scratch(scratch_port: int) -> AsyncIterator[ModbusDriver]:
    scratch_driver = ModbusDriver(
        "scratch", ModbusDeviceConfig("127.0.0.1", scratch_port), SimClock()
    )
    yield scratch_driver
    await scratch_driver.close()


async def poll_until_good(
    driver: ModbusDriver, point: TagDef, expected: object, timeout_s: float = 3.0
) -> Sample:
    deadline = time.monotonic() + timeout_s
    while True:
        (sample,) = await driver.read([point])
        if sample.quality.is_good and sample.value == expected:
            return sample
        assert time.monotonic() < deadline, f"{point.name} never became {expected}: {sample}"
        await asyncio.sleep(0.01)


def test_satisfies_the_driver_protocol(city: SimulatedCity) -> None:
    tank_driver: Driver = make_driver(city)
    assert tank_driver.device == TANK1_DEVICE


async def test_reads_the_five_tank_points_good(
    city: SimulatedCity, driver: ModbusDriver, tank_tags: dict[str, TagDef]
) -> None:
    points = list(tank_tags.values())
    before = city.clock.now()
    samples = await driver.read(points)
    after = city.clock.now()
    assert [s.tag for s in samples] == [p.name for p in points]
    by_tag = {s.tag: s for s in samples}
    assert all(s.quality.is_good for s in samples), samples
    assert all(before <= s.source_time == s.server_time <= after for s in samples)
    assert isinstance(by_tag["water.tank1.level"].value, float)
    assert 2.0 < by_tag["water.tank1.level"].value < 4.0
    assert by_tag["water.tank1.inflow"].value == 0.0
    assert 20.0 < (by_tag["water.tank1.outflow"].numeric or 0.0) < 130.0
    assert by_tag["water.tank1.pump_cmd"].value is False
    assert by_tag["water.tank1.pump_running"].value is False
    # One request per table: input registers, coils, discrete inputs.
    assert driver.diagnostics().requests == 3
    assert driver.diagnostics().errors == 0


async def test_the_three_floats_come_in_one_request(
    driver: ModbusDriver, tank_tags: dict[str, TagDef]
) -> None:
    samples = await driver.read([tank_tags[name] for name in FLOATS])
    assert all(s.quality.is_good for s in samples)
    assert driver.diagnostics().requests == 1


async def test_pump_command_reads_back_and_the_pump_starts_after_its_delay(
    city: SimulatedCity, driver: ModbusDriver, tank_tags: dict[str, TagDef]
) -> None:
    commanded_at = city.clock.monotonic()  # before the write: the delay cannot start earlier
    readback = await driver.write(tank_tags["water.tank1.pump_cmd"], True)
    assert readback is True
    assert city.water is not None
    assert city.water.tank1.pump_command
    await poll_until_good(driver, tank_tags["water.tank1.pump_running"], True)
    assert city.clock.monotonic() - commanded_at >= 5.0
    assert await driver.write(tank_tags["water.tank1.pump_cmd"], False) is False
    await poll_until_good(driver, tank_tags["water.tank1.pump_running"], False)


async def test_exception_response_makes_only_that_requests_points_bad(
    driver: ModbusDriver, tank_tags: dict[str, TagDef]
) -> None:
    undefined = tag("hr:0:uint16", name="test.undefined")
    level = tank_tags["water.tank1.level"]
    samples = await driver.read([undefined, level])
    assert samples[0].quality.severity is Severity.BAD
    assert samples[0].quality.substatus is Substatus.DEVICE_FAILURE
    assert samples[0].quality.reason.endswith(
        ": read hr:0+1: Modbus exception 2 (illegal data address)"
    )
    assert samples[0].value is None
    assert samples[1].quality.is_good
    diagnostics = driver.diagnostics()
    assert diagnostics.errors == 1
    assert diagnostics.errors_by_kind == {"device_failure": 1}
    assert "illegal data address" in diagnostics.last_error


async def test_write_to_an_undefined_address_is_rejected(driver: ModbusDriver) -> None:
    with pytest.raises(DeviceRejectedError, match=r"Modbus exception 2 \(illegal data address\)"):
        await driver.write(tag("coil:7", DataType.BOOL), True)
    with pytest.raises(DeviceRejectedError, match="exception 2"):
        await driver.write(tag("hr:3:int16"), 5)


async def test_writes_to_read_only_tables_or_bad_values_are_refused(
    driver: ModbusDriver, tank_tags: dict[str, TagDef]
) -> None:
    with pytest.raises(AddressError, match="read-only"):
        await driver.write(tank_tags["water.tank1.pump_running"], True)
    with pytest.raises(AddressError, match="read-only"):
        await driver.write(tank_tags["water.tank1.level"], 1.0)
    with pytest.raises(AddressError, match="bool"):
        await driver.write(tank_tags["water.tank1.pump_cmd"], "on")
    assert driver.diagnostics().requests == 0


async def test_bad_addresses_give_config_error_samples(
    driver: ModbusDriver, tank_tags: dict[str, TagDef]
) -> None:
    samples = await driver.read(
        [tag("ir:0"), tag("ir:0:float32", DataType.BOOL), tank_tags["water.tank1.level"]]
    )
    assert [s.quality.substatus for s in samples[:2]] == [Substatus.CONFIG_ERROR] * 2
    assert "needs a type" in samples[0].quality.reason
    assert samples[2].quality.is_good


async def test_wrong_unit_id_gives_bad_samples(
    city: SimulatedCity, tank_tags: dict[str, TagDef]
) -> None:
    wrong_unit = make_driver(city, unit_id=9)
    try:
        (sample,) = await wrong_unit.read([tank_tags["water.tank1.level"]])
    finally:
        await wrong_unit.close()
    assert sample.quality.substatus is Substatus.DEVICE_FAILURE
    assert sample.quality.reason.endswith(
        ": read ir:0+2: Modbus exception 11 (gateway target device failed to respond)"
    )


async def test_dead_port_raises_not_connected_and_logs_once(
    closed_port: int, tank_tags: dict[str, TagDef], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dead = ModbusDriver(
        "dead", ModbusDeviceConfig("127.0.0.1", closed_port, timeout_s=0.5), SimClock()
    )
    with pytest.raises(NotConnectedError, match="cannot connect"):
        await dead.connect()
    for _ in range(3):
        with pytest.raises(NotConnectedError):
            await dead.read([tank_tags["water.tank1.level"]])
    with pytest.raises(NotConnectedError):
        await dead.write(tank_tags["water.tank1.pump_cmd"], True)
    diagnostics = dead.diagnostics()
    assert not diagnostics.connected
    assert diagnostics.errors == 5
    assert diagnostics.errors_by_kind == {"not_connected": 5}
    driver_records = [r for r in caplog.records if r.name.startswith("drivers.")]
    assert [r.levelno for r in driver_records] == [logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info or r.name.startswith("pymodbus")]
    await dead.close()
    await dead.close()


async def test_silent_device_raises_timeout(silent_port: int, tank_tags: dict[str, TagDef]) -> None:
    config = ModbusDeviceConfig("127.0.0.1", silent_port, timeout_s=0.2)
    silent = ModbusDriver("silent", config, SimClock())
    await silent.connect()
    started = time.monotonic()
    with pytest.raises(CommunicationTimeoutError) as raised:
        await silent.read([tank_tags["water.tank1.level"]])
    assert time.monotonic() - started < 2.0
    assert raised.value.__cause__ is not None
    assert silent.diagnostics().errors_by_kind == {"timeout": 1}
    await silent.close()


async def _serve_scratch(port: int) -> ModbusTcpServer:
    device = SimDevice(id=1, simdata=[SimData(0, values=[7] * 4, datatype=SimType.REGISTERS)])
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    return server


async def test_reconnects_after_the_device_returns_and_logs_once_each_way(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drivers")
    point = tag("hr:0:uint16", DataType.INT)
    server = await _serve_scratch(closed_port)
    flaky = ModbusDriver(
        "flaky", ModbusDeviceConfig("127.0.0.1", closed_port, timeout_s=0.3), SimClock()
    )
    try:
        assert (await flaky.read([point]))[0].value == 7
        await server.shutdown()  # type: ignore[no-untyped-call]
        for _ in range(3):
            with pytest.raises(NotConnectedError):
                await flaky.read([point])
        server = await _serve_scratch(closed_port)
        # The next connection attempt comes within the capped reconnect delay.
        deadline = time.monotonic() + 2.0
        while True:
            try:
                (sample,) = await flaky.read([point])
                break
            except NotConnectedError:
                assert time.monotonic() < deadline, "no reconnect after the device returned"
                await asyncio.sleep(0.02)
        assert sample.quality.is_good and sample.value == 7
        assert flaky.diagnostics().connected
    finally:
        await flaky.close()
        await server.shutdown()  # type: ignore[no-untyped-call]
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("drivers")]
    assert [level for level, _ in messages] == [logging.WARNING, logging.INFO]
    assert "communication restored" in messages[1][1]


async def test_register_writes_use_fc6_and_fc16_and_read_back(scratch: ModbusDriver) -> None:
    assert await scratch.write(tag("hr:0:int16", DataType.INT), -1234) == -1234
    assert await scratch.write(tag("hr:2:float32"), 21.5) == 21.5
    assert await scratch.write(tag("hr:4:uint32", DataType.INT), 70000) == 70000
    raw = await scratch.read([tag(f"hr:{i}:uint16", DataType.INT) for i in range(6)])
    assert [s.value for s in raw] == [65536 - 1234, 0, 0x41AC, 0x0000, 0x0001, 0x1170]
    with pytest.raises(AddressError, match="range"):
        await scratch.write(tag("hr:0:int16", DataType.INT), 40000)


async def test_little_word_order_swaps_the_words(scratch_port: int) -> None:
    config = ModbusDeviceConfig("127.0.0.1", scratch_port, word_order="little")
    little = ModbusDriver("little", config, SimClock())
    try:
        assert await little.write(tag("hr:8:float32"), 21.5) == 21.5
        raw = await little.read(
            [tag("hr:8:uint16", DataType.INT), tag("hr:9:uint16", DataType.INT)]
        )
        assert [s.value for s in raw] == [0x0000, 0x41AC]
    finally:
        await little.close()


async def test_max_gap_splits_requests(scratch_port: int) -> None:
    config = ModbusDeviceConfig("127.0.0.1", scratch_port, max_gap=2)
    gappy = ModbusDriver("gappy", config, SimClock(start=datetime(2025, 1, 1, tzinfo=UTC)))
    try:
        samples = await gappy.read([tag("hr:0:uint16"), tag("hr:3:uint16"), tag("hr:10:uint16")])
        assert all(s.quality.is_good for s in samples)
        assert gappy.diagnostics().requests == 2
        assert samples[0].source_time >= datetime(2025, 1, 1, tzinfo=UTC)
    finally:
        await gappy.close()


async def test_close_is_safe_and_reports_disconnected(driver: ModbusDriver) -> None:
    assert driver.diagnostics().connected
    await driver.close()
    await driver.close()
    assert not driver.diagnostics().connected


async def test_lost_connection_raises_not_connected(
    city: SimulatedCity, tank_tags: dict[str, TagDef]
) -> None:
    # The read races the close: it either finds the connection gone or loses it mid-request.
    quick = make_driver(city, timeout_s=0.3)
    await quick.read([tank_tags["water.tank1.level"]])
    await city.stop()
    with pytest.raises(NotConnectedError):
        await quick.read([tank_tags["water.tank1.level"]])
    assert not quick.diagnostics().connected
    await quick.close()
