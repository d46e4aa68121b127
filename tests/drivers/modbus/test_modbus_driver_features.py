"""Scaling, byte orders, float64, register bits, write function codes, holes and gateways."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from pymodbus.constants import ExcCodes

from controlcenter.model import DataType, Severity, Substatus, TagDef
from drivers.base import NotConnectedError
from drivers.modbus import ModbusDeviceConfig, ModbusDriver, ModbusGateways
from drivers.modbus.address import Table
from plc_sim.clock import SimClock
from tests.drivers.modbus.modbus_test_devices import FeatureDevice


def point(
    address: str,
    data_type: DataType = DataType.FLOAT,
    *,
    scale: float = 1.0,
    offset: float = 0.0,
    name: str = "",
) -> TagDef:
    return TagDef(
        name or f"t.{address.replace(':', '_').replace('.', '_')}",
        "feature",
        address,
        data_type,
        writable=True,
        scale=scale,
        offset=offset,
    )


def raw(address: str) -> TagDef:
    return point(address, DataType.INT, name=f"raw.{address.replace(':', '_')}")


@pytest.fixture
async def unit1(feature_device: FeatureDevice) -> AsyncIterator[ModbusDriver]:
    driver = ModbusDriver("unit1", ModbusDeviceConfig("127.0.0.1", feature_device.port), SimClock())
    yield driver
    await driver.close()


async def driver_with(
    feature_device: FeatureDevice, **options: object
) -> AsyncIterator[ModbusDriver]:
    config = ModbusDeviceConfig("127.0.0.1", feature_device.port, **options)  # type: ignore[arg-type]
    driver = ModbusDriver("configured", config, SimClock())
    try:
        yield driver
    finally:
        await driver.close()


async def test_scale_and_offset_give_engineering_values_and_writes_invert_them(
    unit1: ModbusDriver,
) -> None:
    temperature = point("hr:0:int16", scale=0.1, offset=-40.0)
    readback = await unit1.write(temperature, 21.5)
    assert readback == pytest.approx(21.5)
    (stored,) = await unit1.read([raw("hr:0:int16")])
    assert stored.value == 615  # (21.5 + 40) / 0.1
    # A value between two device steps goes to the nearest one.
    assert await unit1.write(temperature, 21.53) == pytest.approx(21.5)
    counts = point("hr:1:uint16", DataType.INT, scale=10)
    assert await unit1.write(counts, 1230) == 1230
    assert (await unit1.read([raw("hr:1:uint16")]))[0].value == 123


@pytest.mark.parametrize(
    ("word_order", "byte_order", "registers"),
    [
        ("big", "big", [0x41AC, 0x0000]),
        ("little", "big", [0x0000, 0x41AC]),
        ("big", "little", [0xAC41, 0x0000]),
        ("little", "little", [0x0000, 0xAC41]),
    ],
)
async def test_each_byte_order_writes_and_reads_its_own_layout(
    feature_device: FeatureDevice, word_order: str, byte_order: str, registers: list[int]
) -> None:
    async for driver in driver_with(feature_device, word_order=word_order, byte_order=byte_order):
        assert await driver.write(point("hr:2:float32"), 21.5) == 21.5
        # Raw registers as the device holds them (uint16 follows the byte order too: undo it).
        words = await driver.read([raw("hr:2:uint16"), raw("hr:3:uint16")])
        swap = byte_order == "little"
        seen = [int(s.value) for s in words]  # type: ignore[arg-type]
        if swap:
            seen = [((w & 0xFF) << 8) | (w >> 8) for w in seen]
        assert seen == registers


async def test_float64_round_trips(unit1: ModbusDriver) -> None:
    total = point("hr:4:float64")
    assert await unit1.write(total, 123456789.125) == 123456789.125
    (sample,) = await unit1.read([total])
    assert sample.value == 123456789.125


async def test_bits_inside_a_register_read_and_write_without_touching_the_others(
    feature_device: FeatureDevice, unit1: ModbusDriver
) -> None:
    await feature_device.set_registers(1, 8, [0b1000_0000_0000_0001])
    bits = [point(f"hr:8.{bit}", DataType.BOOL) for bit in (0, 3, 15)]
    assert [s.value for s in await unit1.read(bits)] == [True, False, True]
    assert unit1.diagnostics().requests == 1
    assert await unit1.write(bits[1], True) is True
    assert (await unit1.read([raw("hr:8:uint16")]))[0].value == 0b1000_0000_0000_1001
    assert await unit1.write(bits[2], False) is False
    assert (await unit1.read([raw("hr:8:uint16")]))[0].value == 0b0000_0000_0000_1001


async def test_single_writes_use_fc5_and_fc6_or_fc15_and_fc16_when_configured(
    feature_device: FeatureDevice, unit1: ModbusDriver
) -> None:
    coil, register, wide = point("coil:1", DataType.BOOL), raw("hr:5:uint16"), point("hr:6:float32")
    await unit1.write(coil, True)
    await unit1.write(register, 7)
    await unit1.write(wide, 1.5)
    writes = [fc for fc in feature_device.function_codes if fc in (5, 6, 15, 16)]
    assert writes == [5, 6, 16]
    feature_device.function_codes.clear()
    async for driver in driver_with(feature_device, multiple_writes_only=True):
        assert await driver.write(coil, False) is False
        assert await driver.write(register, 9) == 9
    writes = [fc for fc in feature_device.function_codes if fc in (5, 6, 15, 16)]
    assert writes == [15, 16]


async def test_a_merged_read_into_a_hole_is_split_and_the_hole_remembered(
    feature_device: FeatureDevice,
) -> None:
    # A gap of 12 merges every point into one read across both holes (10..19 and 40..41).
    points = [raw(f"hr:{offset}:uint16") for offset in (0, 8, 9, 20, 21, 30, 38, 44)]
    async for driver in driver_with(feature_device, max_gap=12):
        first = await driver.read(points)
        assert all(s.quality.is_good for s in first), first
        assert [s.value for s in first] == [1] * len(points)
        # What is learned is the gap between the points around each hole.
        assert driver.rejected_ranges.ranges(Table.HOLDING_REGISTER) == ((10, 20), (39, 44))
        feature_device.function_codes.clear()
        before = driver.diagnostics().requests
        second = await driver.read(points)
        assert all(s.quality.is_good for s in second)
        # 0..9, 20..38 and 44: three requests, none refused.
        assert driver.diagnostics().requests - before == 3
        assert len(feature_device.function_codes) == 3
        assert driver.diagnostics().errors == 0


async def test_a_point_in_a_hole_is_bad_alone_and_its_neighbours_stay_good(
    unit1: ModbusDriver,
) -> None:
    points = [raw("hr:9:uint16"), raw("hr:12:uint16"), raw("hr:20:uint16")]
    for _ in range(2):
        samples = await unit1.read(points)
        assert [s.quality.is_good for s in samples] == [True, False, True]
        assert samples[1].quality.reason.endswith(
            ": read hr:12+1: Modbus exception 2 (illegal data address)"
        )
        assert samples[1].quality.substatus is Substatus.DEVICE_FAILURE
    before = unit1.diagnostics().requests
    await unit1.read(points)
    assert unit1.diagnostics().requests - before == 3


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (ExcCodes.DEVICE_FAILURE, "Modbus exception 4 (server device failure)"),
        (ExcCodes.DEVICE_BUSY, "Modbus exception 6 (server device busy)"),
        (ExcCodes.ILLEGAL_FUNCTION, "Modbus exception 1 (illegal function)"),
    ],
)
async def test_exception_codes_become_bad_quality_naming_the_code(
    feature_device: FeatureDevice, unit1: ModbusDriver, code: ExcCodes, text: str
) -> None:
    feature_device.answer_exception = code
    samples = await unit1.read([raw("hr:0:uint16"), raw("hr:1:uint16")])
    for sample in samples:
        assert sample.quality.severity is Severity.BAD
        assert sample.quality.reason.endswith(f": read hr:0+2: {text}")
    # Only exception 2 means "address": other codes do not teach the planner anything.
    assert len(unit1.rejected_ranges) == 0


async def test_unit_ids_behind_one_gateway_share_one_connection_and_its_pacing(
    feature_device: FeatureDevice,
) -> None:
    gateways = ModbusGateways()
    configs = [
        ModbusDeviceConfig("127.0.0.1", feature_device.port, unit_id=unit, min_request_gap_s=0.05)
        for unit in (1, 2)
    ]
    drivers = [
        ModbusDriver(f"unit{c.unit_id}", c, SimClock(), connection=gateways.connection(c))
        for c in configs
    ]
    try:
        started = time.monotonic()
        results = await asyncio.gather(
            *(driver.read([raw("hr:0:uint16")]) for driver in drivers for _ in range(3))
        )
        elapsed = time.monotonic() - started
        assert [r[0].value for r in results] == [1, 1, 1, 2, 2, 2]
        assert len(gateways) == 1
        assert drivers[0].connected and drivers[1].connected
        # Six requests through one connection, at least 50 ms apart.
        assert elapsed >= 5 * 0.05
        await drivers[0].close()
        assert drivers[1].connected  # still used by unit 2
        await drivers[1].close()
        assert not drivers[1].connected
    finally:
        for driver in drivers:
            await driver.close()
    with pytest.raises(ValueError, match="same timeout"):
        gateways.connection(ModbusDeviceConfig("127.0.0.1", feature_device.port, timeout_s=3))


async def test_reconnect_attempts_are_spaced_by_a_capped_delay(closed_port: int) -> None:
    config = ModbusDeviceConfig("127.0.0.1", closed_port, timeout_s=0.3, reconnect_delay_max_s=0.2)
    driver = ModbusDriver("away", config, SimClock())
    attempts = 0
    deadline = time.monotonic() + 0.8
    while time.monotonic() < deadline:
        with pytest.raises(NotConnectedError) as raised:
            await driver.read([raw("hr:0:uint16")])
        if "next attempt in" not in str(raised.value):
            attempts += 1
        await asyncio.sleep(0.01)
    # 0.1 s, then 0.2 s (the cap) between attempts: about 4-5 attempts in 0.8 s, not 60.
    assert 3 <= attempts <= 7
    device = FeatureDevice()
    await device.start(closed_port)
    try:
        returned = time.monotonic()
        while True:
            try:
                (sample,) = await driver.read([raw("hr:0:uint16")])
                break
            except NotConnectedError:
                assert time.monotonic() - returned < 1.0, "no reconnect within the capped delay"
                await asyncio.sleep(0.02)
        assert sample.value == 1
    finally:
        await driver.close()
        await device.stop()
