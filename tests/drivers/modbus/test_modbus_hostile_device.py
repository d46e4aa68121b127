"""The driver against a Modbus TCP server that answers wrongly, over real sockets.

A reply that does not fit its request (function code, unit, transaction or protocol id, byte
count, write echo, a truncated frame) must give Bad quality with a reason naming the request,
log one line (no traceback) and recover once the device answers properly again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.clock import WallClock
from controlcenter.model import DataType, Sample, Severity, Substatus, TagDef
from drivers.base import CommunicationTimeoutError, DriverError
from drivers.modbus import ModbusDeviceConfig, ModbusDriver
from plc_sim.clock import SimClock
from tests.controlcenter.acquisition.scan_support import Collector
from tests.drivers.modbus.hostile_modbus_server import HostileModbusServer, Misbehaviour

INPUT_REGISTERS = (
    TagDef("hostile.ir0", "hostile", "ir:0:uint16", DataType.INT),
    TagDef("hostile.ir1", "hostile", "ir:1:uint16", DataType.INT),
)
COILS = (
    TagDef("hostile.coil0", "hostile", "coil:0", DataType.BOOL),
    TagDef("hostile.coil1", "hostile", "coil:1", DataType.BOOL),
)
HOLDING = TagDef("hostile.hr0", "hostile", "hr:0:uint16", DataType.INT, writable=True)


@pytest.fixture
async def hostile() -> AsyncIterator[HostileModbusServer]:
    server = HostileModbusServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def driver(hostile: HostileModbusServer) -> AsyncIterator[ModbusDriver]:
    config = ModbusDeviceConfig("127.0.0.1", hostile.port, timeout_s=0.3)
    hostile_driver = ModbusDriver("hostile", config, SimClock())
    yield hostile_driver
    await hostile_driver.close()


async def failed_read(driver: ModbusDriver, points: tuple[TagDef, ...]) -> list[Sample]:
    """The samples of a read that must fail as a whole."""
    with pytest.raises(DriverError) as failure:
        await driver.read(points)
    samples = list(failure.value.point_samples)
    assert [sample.tag for sample in samples] == [point.name for point in points]
    return samples


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert record.levelno < logging.ERROR, record.getMessage()
        assert "Traceback" not in record.getMessage()


BROKEN_REPLIES = [
    (
        Misbehaviour.FC3_FOR_FC4,
        INPUT_REGISTERS,
        "function code 3 to a request with function code 4",
    ),
    (Misbehaviour.FC2_FOR_FC1, COILS, "function code 2 to a request with function code 1"),
    (Misbehaviour.BYTE_COUNT_BEYOND_FRAME, INPUT_REGISTERS, "byte count 14 for 2 registers"),
    (Misbehaviour.BYTE_COUNT_BEYOND_FRAME, COILS, "byte count 11 for 2 bits"),
    (Misbehaviour.BYTE_COUNT_SHORT, INPUT_REGISTERS, "byte count 2 for 2 registers"),
    (Misbehaviour.BYTE_COUNT_LONG, INPUT_REGISTERS, "byte count 6 for 2 registers"),
    (Misbehaviour.BYTE_COUNT_LONG, COILS, "byte count 2 for 2 bits"),
    (Misbehaviour.ODD_BYTE_COUNT, INPUT_REGISTERS, "byte count 5 for 2 registers"),
    (Misbehaviour.WRONG_UNIT, INPUT_REGISTERS, "reply from unit 2 to a request to unit 1"),
    (Misbehaviour.WRONG_PROTOCOL, INPUT_REGISTERS, "protocol id 1"),
    (Misbehaviour.WRONG_TRANSACTION, INPUT_REGISTERS, "transaction id"),
    (Misbehaviour.EXCEPTION_WITHOUT_FUNCTION, COILS, "function code 128"),
    (Misbehaviour.UNKNOWN_FUNCTION, INPUT_REGISTERS, "function code 65"),
]


@pytest.mark.parametrize(("misbehaviour", "points", "expected"), BROKEN_REPLIES)
async def test_a_reply_that_does_not_fit_the_request_is_bad_with_a_reason(
    hostile: HostileModbusServer,
    driver: ModbusDriver,
    caplog: pytest.LogCaptureFixture,
    misbehaviour: Misbehaviour,
    points: tuple[TagDef, ...],
    expected: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    caplog.set_level(logging.INFO)
    assert all(sample.quality.is_good for sample in await driver.read(points))

    hostile.misbehaviour = misbehaviour
    for _ in range(3):  # the same fault on every scan: still one log line
        samples = await failed_read(driver, points)
        block = "ir:0+2" if points is INPUT_REGISTERS else "coil:0+2"
        for sample in samples:
            assert sample.value is None
            assert sample.quality.severity is Severity.BAD
            assert sample.quality.substatus is Substatus.COMM_FAILURE
            assert expected in sample.quality.reason, sample.quality.reason
            assert block in sample.quality.reason
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert expected in warnings[0].getMessage()

    hostile.misbehaviour = None
    recovered = await driver.read(points)
    assert all(sample.quality.is_good for sample in recovered), recovered
    if points is INPUT_REGISTERS:
        assert [sample.value for sample in recovered] == [100, 101]
    else:
        assert [sample.value for sample in recovered] == [False, True]
    assert any("communication restored" in r.getMessage() for r in caplog.records)
    assert_no_traceback(caplog)


async def test_a_truncated_reply_is_a_timeout_naming_the_incomplete_response(
    hostile: HostileModbusServer, driver: ModbusDriver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hostile.misbehaviour = Misbehaviour.TRUNCATED
    samples = await failed_read(driver, INPUT_REGISTERS)
    for sample in samples:
        assert sample.quality.substatus is Substatus.TIMEOUT
        assert "incomplete response" in sample.quality.reason
        assert "ir:0+2" in sample.quality.reason
    hostile.misbehaviour = None
    assert [s.value for s in await driver.read(INPUT_REGISTERS)] == [100, 101]
    assert_no_traceback(caplog)


async def test_a_write_reply_that_does_not_echo_the_request_fails_the_write(
    hostile: HostileModbusServer, driver: ModbusDriver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hostile.misbehaviour = Misbehaviour.WRONG_ECHO
    with pytest.raises(DriverError, match="does not echo"):
        await driver.write(HOLDING, 7)
    hostile.misbehaviour = Misbehaviour.FC3_FOR_FC4
    assert await driver.write(HOLDING, 7) == 100  # the stateless server's readback
    assert_no_traceback(caplog)


async def test_each_block_of_a_failed_read_names_its_own_request(
    hostile: HostileModbusServer, driver: ModbusDriver
) -> None:
    points = (HOLDING, *COILS)
    hostile.misbehaviour = Misbehaviour.FC2_FOR_FC1
    samples = await driver.read(points)  # the holding register answered: no failure raised
    assert samples[0].quality.is_good and samples[0].value == 100
    for sample in samples[1:]:
        assert sample.quality.substatus is Substatus.COMM_FAILURE
        assert "read coil:0+2" in sample.quality.reason
        assert "hr:" not in sample.quality.reason


async def test_a_silent_device_gives_each_point_the_range_of_its_own_request(
    silent_port: int,
) -> None:
    config = ModbusDeviceConfig("127.0.0.1", silent_port, timeout_s=0.2)
    silent = ModbusDriver("silent", config, SimClock())
    try:
        with pytest.raises(CommunicationTimeoutError) as failure:
            await silent.read((HOLDING, *COILS))
    finally:
        await silent.close()
    register, *bits = failure.value.point_samples
    assert "read hr:0+1" in register.quality.reason
    assert "coil" not in register.quality.reason
    for bit in bits:
        assert bit.quality.substatus is Substatus.TIMEOUT
        assert "read coil:0+2" in bit.quality.reason
        assert "hr:" not in bit.quality.reason
    # The first request timed out; the other was not sent to wait for its own timeout too.
    reasons = [register.quality.reason, bits[0].quality.reason]
    assert sum("not sent" in reason for reason in reasons) == 1
    assert all("no response within 0.2 s" in reason for reason in reasons)


async def test_the_scan_engine_keeps_each_points_own_reason(silent_port: int) -> None:
    config = ModbusDeviceConfig("127.0.0.1", silent_port, timeout_s=0.2)
    silent = ModbusDriver("silent", config, SimClock())
    collector = Collector()
    scan = DeviceScan(silent, (HOLDING, *COILS), interval_s=0.1, timeout_s=1.0)
    engine = ScanEngine([scan], collector, WallClock())
    task = asyncio.create_task(engine.run())
    try:
        await collector.wait_for(lambda s: {x.tag for x in s} >= {HOLDING.name, COILS[1].name})
    finally:
        task.cancel()
        await silent.close()
    reasons = {sample.tag: sample.quality.reason for sample in collector.samples[:3]}
    assert "hr:0+1" in reasons[HOLDING.name]
    assert "coil:0+2" in reasons[COILS[0].name]
    assert "coil:0+2" in reasons[COILS[1].name]
    assert "hr:" not in reasons[COILS[1].name]
