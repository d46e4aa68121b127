"""Whole-block decoding: the same values as decoding each point alone, in every order."""

from __future__ import annotations

import math
import struct
from collections.abc import Awaitable, Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsResponse, ReadDiscreteInputsResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)

from controlcenter.model import DataType, Sample, Substatus, TagDef
from drivers.modbus import ModbusDeviceConfig, ModbusDriver
from drivers.modbus.address import ModbusAddress, Table, ValueType, parse_address
from drivers.modbus.codec import (
    ByteOrder,
    CodecError,
    RegisterLayout,
    WordOrder,
    decode_registers,
    encode_value,
    shortest_float32,
    shortest_float32_value,
)
from drivers.modbus.connection import READ_RESPONSES, ConnectionSettings
from plc_sim.clock import SimClock

ORDERS: list[tuple[WordOrder, ByteOrder]] = [
    ("big", "big"),
    ("little", "big"),
    ("big", "little"),
    ("little", "little"),
]
REGISTER_TYPES = [t for t in ValueType if t is not ValueType.BOOL]
WINDOW = 24


def alone(
    registers: Sequence[int],
    start: int,
    address: ModbusAddress,
    word_order: WordOrder,
    byte_order: ByteOrder,
) -> int | float | bool:
    """One point decoded by itself, as the driver did before whole-block decoding."""
    first = address.offset - start
    if address.bit is not None:
        register = registers[first]
        if byte_order == "little":
            register = ((register & 0xFF) << 8) | (register >> 8)
        return bool((register >> address.bit) & 1)
    words = registers[first : first + address.register_count]
    return decode_registers(words, address.value_type, word_order, byte_order)


def same(left: object, right: object) -> bool:
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    return type(left) is type(right) and left == right


@st.composite
def layouts(draw: st.DrawFn) -> tuple[int, list[ModbusAddress], list[int]]:
    """A register window, points in it (gaps, overlaps, duplicates, bits) and its registers."""
    start = draw(st.integers(0, 1000))
    addresses: list[ModbusAddress] = []
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.booleans()) and draw(st.booleans()):
            offset = start + draw(st.integers(0, WINDOW - 1))
            bit = draw(st.integers(0, 15))
            addresses.append(ModbusAddress(Table.INPUT_REGISTER, offset, ValueType.BOOL, bit))
            continue
        value_type = draw(st.sampled_from(REGISTER_TYPES))
        offset = start + draw(st.integers(0, WINDOW - value_type.width))
        addresses.append(ModbusAddress(Table.INPUT_REGISTER, offset, value_type))
    if draw(st.booleans()):
        addresses.sort(key=lambda a: (a.offset, a.end))
    registers = draw(st.lists(st.integers(0, 0xFFFF), min_size=WINDOW, max_size=WINDOW))
    return start, addresses, registers


@settings(deadline=None, max_examples=200)
@given(layouts(), st.sampled_from(ORDERS))
def test_a_block_decodes_as_each_point_alone(
    case: tuple[int, list[ModbusAddress], list[int]], order: tuple[WordOrder, ByteOrder]
) -> None:
    start, addresses, registers = case
    word_order, byte_order = order
    decoded = RegisterLayout(start, WINDOW, addresses, word_order, byte_order).decode(registers)
    expected = [alone(registers, start, a, word_order, byte_order) for a in addresses]
    assert len(decoded) == len(expected)
    assert all(same(d, e) for d, e in zip(decoded, expected, strict=True)), (decoded, expected)


@settings(deadline=None, max_examples=100)
@given(
    st.lists(st.floats(width=32), min_size=1, max_size=62),
    st.integers(0, 3),
    st.sampled_from(ORDERS),
)
def test_side_by_side_float32s_decode_to_their_shortest_decimals(
    values: list[float], gap: int, order: tuple[WordOrder, ByteOrder]
) -> None:
    word_order, byte_order = order
    registers: list[int] = []
    addresses: list[ModbusAddress] = []
    for value in values:
        registers += [0] * gap
        addresses.append(
            ModbusAddress(Table.HOLDING_REGISTER, 7 + len(registers), ValueType.FLOAT32)
        )
        registers += encode_value(value, ValueType.FLOAT32, word_order, byte_order)
    layout = RegisterLayout(7, len(registers), addresses, word_order, byte_order)
    decoded = layout.decode(registers)
    assert len(decoded) == len(values)
    for value, got in zip(values, decoded, strict=True):
        assert same(got, shortest_float32(struct.pack(">f", value)))


@settings(deadline=None, max_examples=300)
@given(st.floats(width=32))
def test_shortest_float32_of_a_value_is_that_of_its_bits(value: float) -> None:
    packed = struct.pack(">f", value)
    assert same(shortest_float32_value(value), shortest_float32(packed))


@pytest.mark.parametrize(
    ("value", "text"),
    [(2.9993396, "2.9993396"), (37.2, "37.2"), (0.1, "0.1"), (-0.0, "-0.0"), (1e-45, "1.4013e-45")],
)
def test_shortest_float32_examples(value: float, text: str) -> None:
    assert repr(shortest_float32(struct.pack(">f", value))) == text


def test_a_layout_refuses_the_wrong_number_of_registers_and_points_outside_it() -> None:
    address = ModbusAddress(Table.INPUT_REGISTER, 10, ValueType.FLOAT32)
    layout = RegisterLayout(10, 4, [address])
    assert layout.count == 4
    with pytest.raises(CodecError):
        layout.decode([0, 0, 0])
    with pytest.raises(CodecError):
        layout.decode([0, 0, 0, 0x10000])
    with pytest.raises(CodecError):
        RegisterLayout(11, 4, [address])
    with pytest.raises(CodecError):
        RegisterLayout(10, 1, [address])


# --- the driver over a scripted connection ------------------------------------------------------


class ScriptedConnection:
    """Answers every read from fixed tables, as pymodbus' own response classes would."""

    def __init__(self, registers: Sequence[int], bits: Sequence[bool]) -> None:
        self.settings = ConnectionSettings("127.0.0.1", 1502)
        self.where = "127.0.0.1:1502"
        self.connected = True
        self.requests: list[tuple[str, int, int]] = []
        self._registers = list(registers)
        self._bits = list(bits)

    async def connect(self, user: str) -> None:
        """Always connected."""

    def close(self, user: str) -> None:
        """Nothing to close."""

    async def execute(self, user: str, call: Callable[[object], Awaitable[ModbusPDU]]) -> ModbusPDU:
        return await call(self)

    async def read_input_registers(self, start: int, *, count: int, device_id: int) -> ModbusPDU:
        self.requests.append(("ir", start, count))
        return ReadInputRegistersResponse(registers=self._registers[start : start + count])

    async def read_holding_registers(self, start: int, *, count: int, device_id: int) -> ModbusPDU:
        self.requests.append(("hr", start, count))
        return ReadHoldingRegistersResponse(registers=self._registers[start : start + count])

    async def read_discrete_inputs(self, start: int, *, count: int, device_id: int) -> ModbusPDU:
        self.requests.append(("di", start, count))
        bits = self._bits[start : start + count]
        return ReadDiscreteInputsResponse(bits=bits + [False] * (-len(bits) % 8))

    async def read_coils(self, start: int, *, count: int, device_id: int) -> ModbusPDU:
        self.requests.append(("coil", start, count))
        bits = self._bits[start : start + count]
        return ReadCoilsResponse(bits=bits + [False] * (-len(bits) % 8))


def tag(address: str, data_type: DataType, scale: float = 1.0, offset: float = 0.0) -> TagDef:
    return TagDef(
        f"t.{address}.{data_type}.{scale}", "d", address, data_type, scale=scale, offset=offset
    )


def expected_sample(
    point: TagDef,
    registers: Sequence[int],
    bits: Sequence[bool],
    order: tuple[WordOrder, ByteOrder],
) -> tuple[object, Substatus | None]:
    """The value (or the Bad sub-status) a point must read, worked out point by point."""
    address = parse_address(point.address)
    if address.table.is_bit_table:
        raw: int | float | bool = bits[address.offset]
    else:
        raw = alone(registers, 0, address, *order)
    if isinstance(raw, float) and not math.isfinite(raw):
        return None, Substatus.SENSOR_FAILURE
    if point.data_type is DataType.BOOL:
        return bool(raw), None
    if point.scale != 1.0 or point.offset != 0.0:
        raw = raw * point.scale + point.offset
    return (round(raw) if point.data_type is DataType.INT else float(raw)), None


@pytest.mark.parametrize("order", ORDERS)
async def test_the_driver_reads_mixed_blocks_as_point_by_point_decoding(
    order: tuple[WordOrder, ByteOrder],
) -> None:
    word_order, byte_order = order
    registers = [0] * 40
    registers[0:2] = encode_value(21.5, ValueType.FLOAT32, word_order, byte_order)
    registers[2:4] = encode_value(math.inf, ValueType.FLOAT32, word_order, byte_order)
    registers[4:6] = encode_value(math.nan, ValueType.FLOAT32, word_order, byte_order)
    registers[6:8] = encode_value(-7.25, ValueType.FLOAT32, word_order, byte_order)
    registers[8] = encode_value(-300, ValueType.INT16, word_order, byte_order)[0]
    registers[9] = encode_value(0xA5F0, ValueType.UINT16, word_order, byte_order)[0]
    registers[10:12] = encode_value(-123456, ValueType.INT32, word_order, byte_order)
    registers[12:16] = encode_value(1234.5678, ValueType.FLOAT64, word_order, byte_order)
    registers[16:20] = encode_value(math.inf, ValueType.FLOAT64, word_order, byte_order)
    registers[30:32] = encode_value(0.1, ValueType.FLOAT32, word_order, byte_order)
    bits = [index % 3 == 0 for index in range(40)]
    points = [
        tag("ir:0:float32", DataType.FLOAT),
        tag("ir:2:float32", DataType.FLOAT),
        tag("ir:4:float32", DataType.FLOAT),
        tag("ir:6:float32", DataType.FLOAT, scale=2.0, offset=1.0),
        tag("ir:8:int16", DataType.INT),
        tag("ir:8:int16", DataType.FLOAT),
        tag("ir:9:uint16", DataType.INT, scale=0.5),
        tag("ir:9.4", DataType.BOOL),
        tag("ir:9.15", DataType.BOOL),
        tag("ir:10:int32", DataType.INT),
        tag("ir:10:uint32", DataType.FLOAT, scale=0.001),
        tag("ir:12:float64", DataType.FLOAT),
        tag("ir:16:float64", DataType.FLOAT),
        tag("ir:11:uint16", DataType.INT),
        tag("ir:30:float32", DataType.FLOAT),
        tag("hr:0:float32", DataType.FLOAT),
        tag("di:0", DataType.BOOL),
        tag("di:5", DataType.BOOL),
        tag("di:33", DataType.BOOL),
        tag("coil:3", DataType.BOOL),
    ]
    connection = ScriptedConnection(registers, bits)
    config = ModbusDeviceConfig("127.0.0.1", 1502, word_order=word_order, byte_order=byte_order)
    driver = ModbusDriver("d", config, SimClock(), connection=connection)  # type: ignore[arg-type]
    for _ in range(2):  # the second read reuses the plan and its layouts
        samples = await driver.read(points)
        assert [sample.tag for sample in samples] == [point.name for point in points]
        for point, sample in zip(points, samples, strict=True):
            check(point, sample, expected_sample(point, registers, bits, order))
    assert ("ir", 0, 20) in connection.requests  # one request decodes 14 points


def check(point: TagDef, sample: Sample, expected: tuple[object, Substatus | None]) -> None:
    value, bad = expected
    if bad is not None:
        assert not sample.quality.is_good and sample.quality.substatus is bad, point
        assert sample.value is None
        return
    assert sample.quality.is_good, (point, sample)
    assert same(sample.value, value), (point, sample.value, value)


# --- pymodbus answers, decoded in one pass ------------------------------------------------------


PYMODBUS_CLASSES: dict[int, type[ModbusPDU]] = {
    1: ReadCoilsResponse,
    2: ReadDiscreteInputsResponse,
    3: ReadHoldingRegistersResponse,
    4: ReadInputRegistersResponse,
}


@settings(deadline=None, max_examples=100)
@given(st.sampled_from(READ_RESPONSES), st.binary(min_size=0, max_size=254))
def test_read_answers_decode_as_pymodbus_decodes_them(
    response_class: type[ModbusPDU], payload: bytes
) -> None:
    frame = bytes([len(payload)]) + payload
    ours, theirs = response_class(), PYMODBUS_CLASSES[response_class.function_code]()
    assert isinstance(ours, PYMODBUS_CLASSES[response_class.function_code])
    ours.decode(frame)
    theirs.decode(frame)
    assert list(ours.registers) == list(theirs.registers)
    assert list(ours.bits) == list(theirs.bits)
    assert "entries=" in str(ours)


def test_a_register_answer_shorter_than_its_byte_count_is_refused_as_pymodbus_does() -> None:
    for response_class in READ_RESPONSES:
        if response_class.function_code in (3, 4):
            with pytest.raises(ModbusIOException):
                response_class().decode(bytes([4, 0, 1]))
