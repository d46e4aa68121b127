from __future__ import annotations

import asyncio
import socket
import statistics
import struct
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from plc_sim.device import FaultKind, PointBinding, PointSpec, PointValue, SimDevice
from plc_sim.domain import DeviceServer
from plc_sim.servers.modbus.register_map import allocate_map, decode_registers, encode_registers
from plc_sim.servers.modbus.server import ModbusDeviceServer

UNIT = 7


@dataclass
class RtuModel:
    """A tiny plain model behind the test RTU: the values its points read and write."""

    values: dict[str, PointValue] = field(
        default_factory=lambda: {
            "rtu.pump1.running": True,
            "rtu.pump1.cmd": False,
            "rtu.pump1.flow": 42.5,
            "rtu.pump1.speed_sp": 80.0,
            "rtu.pump1.mode": 1,
            "rtu.meter.volume": 123_456_789.125,
            "rtu.meter.flow": 12.0,
            "rtu.meter.alarm": False,
        }
    )

    def binding(self, spec: PointSpec) -> PointBinding:
        """Bind one point to the value of the same tag."""

        def read() -> PointValue:
            return self.values[spec.tag]

        def write(value: PointValue) -> None:
            self.values[spec.tag] = value

        return PointBinding(spec, read, write if spec.writable else None)


SPECS = (
    PointSpec("rtu.pump1.running", "bool"),
    PointSpec("rtu.pump1.cmd", "bool", writable=True, role="output"),
    PointSpec("rtu.pump1.flow", "float", unit="m3/h", low=0.0, high=200.0),
    PointSpec(
        "rtu.pump1.speed_sp", "float", unit="%", writable=True, low=0, high=100, role="value"
    ),
    PointSpec("rtu.pump1.mode", "int", writable=True, low=0, high=2, role="value"),
    PointSpec("rtu.meter.volume", "counter", unit="m3"),
    PointSpec("rtu.meter.flow", "float", unit="m3/h", low=0.0, high=100.0),
    PointSpec("rtu.meter.alarm", "bool"),
)

EXPECTED_ADDRESSES = {
    "rtu.pump1.running": "di:0",
    "rtu.pump1.cmd": "coil:0",
    "rtu.pump1.flow": "ir:0:float32",
    "rtu.pump1.speed_sp": "hr:0:float32",
    "rtu.pump1.mode": "hr:2:uint16",
    "rtu.meter.volume": "ir:20:float64",
    "rtu.meter.flow": "ir:24:float32",
    "rtu.meter.alarm": "di:32",
}


def make_device(model: RtuModel) -> SimDevice:
    return SimDevice(
        "rtu.test_rtu", "modbus", [model.binding(spec) for spec in SPECS], unit_id=UNIT, seed=3
    )


@dataclass
class Rig:
    model: RtuModel
    device: SimDevice
    server: ModbusDeviceServer
    client: AsyncModbusTcpClient


def new_client(port: int, timeout: float = 1.0) -> AsyncModbusTcpClient:
    return AsyncModbusTcpClient(
        "127.0.0.1",
        port=port,
        timeout=timeout,
        retries=0,
        reconnect_delay=0.05,
        reconnect_delay_max=0.2,
    )


async def start_rig(word_order: str = "big") -> Rig:
    model = RtuModel()
    device = make_device(model)
    server = ModbusDeviceServer(device, word_order="little" if word_order == "little" else "big")
    await server.start()
    client = new_client(server.port)
    assert await client.connect()
    return Rig(model, device, server, client)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    started = await start_rig()
    try:
        yield started
    finally:
        started.client.close()
        await started.server.stop()


def words_to_float(registers: Sequence[int], little: bool = False) -> float:
    words = list(registers)[::-1] if little else list(registers)
    fmt = ">f" if len(words) == 2 else ">d"
    value: float = struct.unpack(fmt, struct.pack(f">{len(words)}H", *words))[0]
    return value


def float32_words(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


async def read_float(rig: Rig, address: int, table: str = "ir") -> float:
    read = rig.client.read_input_registers if table == "ir" else rig.client.read_holding_registers
    response = await read(address, count=2, device_id=UNIT)
    assert not response.isError(), response
    return words_to_float(response.registers)


def exception_code(response: ModbusPDU) -> int:
    assert isinstance(response, ExceptionResponse), response
    return int(response.exception_code)


async def wait_until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


def connect_refused(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


# --- the map (pure) -----------------------------------------------------------------------------


def test_map_allocates_tables_types_and_asset_blocks_in_point_order() -> None:
    register_map = allocate_map(SPECS)
    assert register_map.addresses() == EXPECTED_ADDRESSES
    assert list(register_map.addresses()) == [spec.tag for spec in SPECS]
    assert [(b.table, b.asset, b.start, b.end) for b in register_map.blocks] == [
        ("coil", "rtu.pump1", 0, 1),
        ("di", "rtu.pump1", 0, 1),
        ("di", "rtu.meter", 32, 33),
        ("hr", "rtu.pump1", 0, 3),
        ("ir", "rtu.pump1", 0, 2),
        ("ir", "rtu.meter", 20, 26),
    ]
    assert register_map.extent() == 48


def test_map_is_deterministic_and_leaves_a_hole_between_blocks_that_end_on_a_boundary() -> None:
    specs = [PointSpec(f"a{asset}.p.v{n}", "float") for asset in range(3) for n in range(10)]
    first, second = allocate_map(specs), allocate_map(list(specs))
    assert first == second
    # Each asset's 10 floats fill 20 registers exactly: the next block skips a whole unit.
    assert [block.start for block in first.blocks] == [0, 40, 80]
    signed = allocate_map(
        [PointSpec("x.y.offset", "int", writable=True, low=-5, high=5, role="value")]
    )
    assert signed.addresses() == {"x.y.offset": "hr:0:int16"}


def test_register_encoding_round_trips_in_both_word_orders() -> None:
    register_map = allocate_map(SPECS)
    volume = register_map.point("rtu.meter.volume")
    big = encode_registers(volume, 123_456_789.125)
    little = encode_registers(volume, 123_456_789.125, "little")
    assert little == big[::-1] and len(big) == 4
    assert decode_registers(volume, little, "little") == 123_456_789.125
    speed = register_map.point("rtu.pump1.speed_sp")
    assert decode_registers(speed, encode_registers(speed, 37.2)) == 37.2


def test_the_server_is_a_device_server_with_addresses_before_start() -> None:
    server: DeviceServer = ModbusDeviceServer(make_device(RtuModel()))
    assert server.addresses() == EXPECTED_ADDRESSES
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


# --- reading ------------------------------------------------------------------------------------


async def test_reads_floats_bools_ints_and_counters(rig: Rig) -> None:
    assert rig.server.addresses() == EXPECTED_ADDRESSES
    assert await read_float(rig, 0) == 42.5
    volume = await rig.client.read_input_registers(20, count=4, device_id=UNIT)
    assert words_to_float(volume.registers) == 123_456_789.125
    assert await read_float(rig, 24) == 12.0
    holding = await rig.client.read_holding_registers(0, count=3, device_id=UNIT)
    assert words_to_float(holding.registers[:2]) == 80.0
    assert holding.registers[2] == 1
    running = await rig.client.read_discrete_inputs(0, count=1, device_id=UNIT)
    assert running.bits[0] is True
    alarm = await rig.client.read_discrete_inputs(32, count=1, device_id=UNIT)
    assert alarm.bits[0] is False
    rig.model.values["rtu.meter.alarm"] = True
    rig.model.values["rtu.pump1.flow"] = 17.25
    await rig.server.publish()
    alarm = await rig.client.read_discrete_inputs(32, count=1, device_id=UNIT)
    assert alarm.bits[0] is True
    assert await read_float(rig, 0) == 17.25


async def test_little_word_order_puts_the_low_word_first() -> None:
    rig = await start_rig("little")
    try:
        flow = await rig.client.read_input_registers(0, count=2, device_id=UNIT)
        assert words_to_float(flow.registers, little=True) == 42.5
        assert words_to_float(flow.registers) != 42.5
        volume = await rig.client.read_input_registers(20, count=4, device_id=UNIT)
        assert words_to_float(volume.registers, little=True) == 123_456_789.125
        write = await rig.client.write_registers(0, float32_words(55.5)[::-1], device_id=UNIT)
        assert not write.isError()
        assert rig.model.values["rtu.pump1.speed_sp"] == 55.5
    finally:
        rig.client.close()
        await rig.server.stop()


# --- writing ------------------------------------------------------------------------------------


async def test_coil_and_register_writes_reach_the_model_and_read_back(rig: Rig) -> None:
    written = await rig.client.write_coil(0, True, device_id=UNIT)
    assert not written.isError()
    assert rig.model.values["rtu.pump1.cmd"] is True
    coils = await rig.client.read_coils(0, count=1, device_id=UNIT)
    assert coils.bits[0] is True

    written = await rig.client.write_registers(0, [*float32_words(37.2), 2], device_id=UNIT)
    assert not written.isError()
    assert rig.model.values["rtu.pump1.speed_sp"] == 37.2
    assert rig.model.values["rtu.pump1.mode"] == 2
    assert await read_float(rig, 0, table="hr") == pytest.approx(37.2)
    await rig.server.publish()
    assert await read_float(rig, 0, table="hr") == pytest.approx(37.2)

    single = await rig.client.write_register(2, 0, device_id=UNIT)
    assert not single.isError()
    assert rig.model.values["rtu.pump1.mode"] == 0
    many_coils = await rig.client.write_coils(0, [False], device_id=UNIT)
    assert not many_coils.isError()
    assert rig.model.values["rtu.pump1.cmd"] is False


async def test_refuses_out_of_range_partial_and_hole_writes(rig: Rig) -> None:
    too_fast = await rig.client.write_registers(0, float32_words(150.0), device_id=UNIT)
    assert exception_code(too_fast) == 3
    bad_mode = await rig.client.write_register(2, 9, device_id=UNIT)
    assert exception_code(bad_mode) == 3
    half_float = await rig.client.write_register(0, 0x4248, device_id=UNIT)
    assert exception_code(half_float) == 3
    straddling = await rig.client.write_registers(1, [0, 1], device_id=UNIT)
    assert exception_code(straddling) == 3
    assert rig.model.values["rtu.pump1.speed_sp"] == 80.0
    assert rig.model.values["rtu.pump1.mode"] == 1
    spare_coil = await rig.client.write_coil(1, True, device_id=UNIT)
    assert exception_code(spare_coil) == 2
    past_the_map = await rig.client.write_register(3, 1, device_id=UNIT)
    assert exception_code(past_the_map) == 2


# --- holes and units ----------------------------------------------------------------------------


async def test_holes_between_blocks_answer_illegal_address(rig: Rig) -> None:
    client = rig.client
    assert exception_code(await client.read_input_registers(2, count=1, device_id=UNIT)) == 2
    assert exception_code(await client.read_input_registers(0, count=3, device_id=UNIT)) == 2
    assert exception_code(await client.read_input_registers(19, count=2, device_id=UNIT)) == 2
    assert exception_code(await client.read_input_registers(26, count=1, device_id=UNIT)) == 2
    assert exception_code(await client.read_input_registers(0, count=26, device_id=UNIT)) == 2
    assert exception_code(await client.read_holding_registers(3, count=1, device_id=UNIT)) == 2
    assert exception_code(await client.read_discrete_inputs(16, count=1, device_id=UNIT)) == 2
    assert exception_code(await client.read_discrete_inputs(0, count=33, device_id=UNIT)) == 2
    assert exception_code(await client.read_coils(16, count=1, device_id=UNIT)) == 2
    whole_block = await client.read_input_registers(20, count=6, device_id=UNIT)
    assert not whole_block.isError()
    # The spare bits of a block's word read 0, as a PLC's packed bit word does.
    spare = await client.read_discrete_inputs(0, count=16, device_id=UNIT)
    assert spare.bits[:16] == [True] + [False] * 15


async def test_other_unit_ids_answer_gateway_target_failed(rig: Rig) -> None:
    response = await rig.client.read_input_registers(0, count=2, device_id=UNIT + 1)
    assert exception_code(response) == 11
    coil = await rig.client.write_coil(0, True, device_id=3)
    assert exception_code(coil) == 11
    assert rig.model.values["rtu.pump1.cmd"] is False


# --- faults -------------------------------------------------------------------------------------


async def test_offline_device_never_answers_until_the_fault_clears(rig: Rig) -> None:
    rig.device.set_fault(FaultKind.OFFLINE)
    patient = new_client(rig.server.port, timeout=0.3)
    assert await patient.connect()
    try:
        with pytest.raises(ModbusException):
            await patient.read_input_registers(0, count=2, device_id=UNIT)
        pending: asyncio.Future[ModbusPDU] = asyncio.ensure_future(
            rig.client.read_input_registers(0, count=2, device_id=UNIT)
        )
        await asyncio.sleep(0.2)  # a quiet interval: the request must stay unanswered in it
        assert not pending.done()
        rig.device.clear_fault(FaultKind.OFFLINE)
        answer = await asyncio.wait_for(pending, timeout=2.0)
        assert words_to_float(answer.registers) == 42.5
    finally:
        patient.close()


async def test_refusing_device_closes_its_port_and_reopens_the_same_one(rig: Rig) -> None:
    port = rig.server.port
    rig.device.set_fault(FaultKind.REFUSING)
    await rig.server.publish()
    assert connect_refused(port)
    refused = new_client(port)
    assert not await refused.connect()
    refused.close()
    rig.device.clear_fault(FaultKind.REFUSING)
    await rig.server.publish()
    assert rig.server.port == port
    again = new_client(port)
    try:
        assert await again.connect()
        response = await again.read_input_registers(0, count=2, device_id=UNIT)
        assert words_to_float(response.registers) == 42.5
    finally:
        again.close()


async def test_refusing_is_noticed_by_a_request_before_the_next_publish(rig: Rig) -> None:
    rig.device.set_fault(FaultKind.REFUSING)
    hasty = new_client(rig.server.port, timeout=0.3)
    assert await hasty.connect()
    with pytest.raises(ModbusException):
        await hasty.read_input_registers(0, count=2, device_id=UNIT)
    hasty.close()
    await wait_until(lambda: not rig.server.running)
    assert connect_refused(rig.server.port)


async def test_slow_device_answers_after_the_delay(rig: Rig) -> None:
    rig.device.set_fault(FaultKind.SLOW, delay_s=0.3)
    started = time.monotonic()
    response = await rig.client.read_input_registers(0, count=2, device_id=UNIT)
    elapsed = time.monotonic() - started
    assert words_to_float(response.registers) == 42.5
    assert 0.3 <= elapsed < 0.9


async def test_error_fault_answers_the_configured_exception(rig: Rig) -> None:
    rig.device.set_fault(FaultKind.ERROR)
    assert exception_code(await rig.client.read_input_registers(0, count=2, device_id=UNIT)) == 4
    assert exception_code(await rig.client.write_coil(0, True, device_id=UNIT)) == 4
    assert rig.model.values["rtu.pump1.cmd"] is False
    rig.device.set_fault(FaultKind.ERROR, error_code=6)
    assert exception_code(await rig.client.read_coils(0, count=1, device_id=UNIT)) == 6
    rig.device.clear_fault()
    assert not (await rig.client.read_coils(0, count=1, device_id=UNIT)).isError()


async def test_stuck_values_freeze_while_the_model_moves(rig: Rig) -> None:
    rig.device.set_fault(FaultKind.STUCK)
    rig.model.values["rtu.pump1.flow"] = 99.0
    rig.model.values["rtu.pump1.running"] = False
    await rig.server.publish()
    assert await read_float(rig, 0) == 42.5
    assert (await rig.client.read_discrete_inputs(0, count=1, device_id=UNIT)).bits[0] is True
    rig.device.clear_fault(FaultKind.STUCK)
    await rig.server.publish()
    assert await read_float(rig, 0) == 99.0


async def test_noisy_values_scatter_around_the_truth(rig: Rig) -> None:
    rig.device.set_fault(FaultKind.NOISY, noise=0.01)  # 1 % of the 0..200 span: sd 2 m3/h
    samples = []
    for _ in range(40):
        await rig.server.publish()
        samples.append(await read_float(rig, 0))
    assert len(set(samples)) > 30
    assert abs(statistics.mean(samples) - 42.5) < 1.5
    assert 1.0 < statistics.stdev(samples) < 3.5


async def test_restart_drops_connections_and_listens_on_the_same_port(rig: Rig) -> None:
    port = rig.server.port
    links: list[bool] = []
    watched = AsyncModbusTcpClient(
        "127.0.0.1",
        port=port,
        timeout=1,
        retries=0,
        reconnect_delay=0.05,
        reconnect_delay_max=0.2,
        trace_connect=links.append,
    )
    assert await watched.connect()
    try:
        assert rig.device.restart_handler == rig.server.restart
        await rig.server.restart()
        await wait_until(lambda: False in links)
        assert rig.server.port == port
        await wait_until(lambda: links.count(True) >= 2)  # the client's own reconnect
        response = await watched.read_input_registers(0, count=2, device_id=UNIT)
        assert words_to_float(response.registers) == 42.5
    finally:
        watched.close()
