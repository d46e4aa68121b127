"""The driver against a bench RTU of the simulator: every value, in the fewest requests."""

from __future__ import annotations

import struct

import pytest

from controlcenter.model import DataType, TagDef
from drivers.modbus import ModbusDeviceConfig, ModbusDriver
from drivers.modbus.codec import shortest_float32
from plc_sim.bench_devices import Ticker, bench_device
from plc_sim.clock import SimClock
from plc_sim.servers.modbus.server import ModbusDeviceServer


@pytest.mark.parametrize(
    ("contiguous_bits", "word_order", "requests"),
    [
        # Five blocks of 124 input registers and one block of 90 discrete inputs.
        (True, "big", 6),
        (True, "little", 6),
        # Each asset's 18 discrete inputs in a block of their own, behind a hole.
        (False, "big", 10),
    ],
)
async def test_a_bench_rtu_reads_every_value_it_holds_in_one_request_per_block(
    contiguous_bits: bool, word_order: str, requests: int
) -> None:
    ticker = Ticker()
    ticker.second = 17
    device = bench_device(0, 400, ticker)
    little = word_order == "little"
    server = ModbusDeviceServer(
        device, word_order="little" if little else "big", contiguous_bits=contiguous_bits
    )
    await server.start()
    config = ModbusDeviceConfig("127.0.0.1", server.port, word_order="little" if little else "big")
    driver = ModbusDriver(device.name, config, SimClock())
    try:
        addresses = server.addresses()
        tags = [
            TagDef(
                spec.tag,
                device.name,
                addresses[spec.tag],
                DataType.BOOL if spec.kind == "bool" else DataType.FLOAT,
            )
            for spec in device.points
        ]
        samples = await driver.read(tags)
        assert driver.diagnostics().requests == requests
        assert driver.diagnostics().errors == 0
        for spec, sample in zip(device.points, samples, strict=True):
            assert sample.tag == spec.tag and sample.quality.is_good
            held = device.read(spec.tag)
            if spec.kind == "bool":
                assert sample.value is bool(held)
            else:
                assert sample.value == shortest_float32(struct.pack(">f", float(held)))
        ticker.second += 1
        await server.publish()
        again = await driver.read(tags)
        assert driver.diagnostics().requests == 2 * requests
        assert [sample.value for sample in again] != [sample.value for sample in samples]
    finally:
        await driver.close()
        await server.stop()
