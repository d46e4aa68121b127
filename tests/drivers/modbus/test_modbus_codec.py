from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.address import ValueType
from drivers.modbus.codec import (
    BYTE_ORDER_NAMES,
    ByteOrder,
    CodecError,
    WordOrder,
    decode_registers,
    encode_value,
    registers_to_bytes,
)

INTEGER_TYPES = {
    ValueType.INT16: (-(2**15), 2**15 - 1),
    ValueType.UINT16: (0, 2**16 - 1),
    ValueType.INT32: (-(2**31), 2**31 - 1),
    ValueType.UINT32: (0, 2**32 - 1),
}
word_orders = st.sampled_from(["big", "little"])


@st.composite
def integer_cases(draw: st.DrawFn) -> tuple[ValueType, int]:
    value_type = draw(st.sampled_from(sorted(INTEGER_TYPES)))
    low, high = INTEGER_TYPES[value_type]
    return value_type, draw(st.integers(low, high))


@settings(deadline=None, max_examples=60)
@given(integer_cases(), word_orders)
def test_integers_round_trip(case: tuple[ValueType, int], word_order: WordOrder) -> None:
    value_type, value = case
    registers = encode_value(value, value_type, word_order)
    assert len(registers) == value_type.width
    assert all(0 <= register <= 0xFFFF for register in registers)
    assert decode_registers(registers, value_type, word_order) == value


@settings(deadline=None, max_examples=60)
@given(st.floats(width=32), word_orders)
def test_float32_round_trips(value: float, word_order: WordOrder) -> None:
    decoded = decode_registers(
        encode_value(value, ValueType.FLOAT32, word_order), ValueType.FLOAT32, word_order
    )
    # The same float32 bits: the decoder may print them as a shorter decimal.
    same_bits = struct.pack(">f", decoded) == struct.pack(">f", value)
    assert same_bits or (math.isnan(value) and math.isnan(decoded))


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2))
def test_little_word_order_is_big_with_words_swapped(registers: list[int]) -> None:
    for value_type in (ValueType.INT32, ValueType.UINT32, ValueType.FLOAT32):
        big = decode_registers(registers, value_type, "big")
        little = decode_registers(registers[::-1], value_type, "little")
        assert big == little or (math.isnan(big) and math.isnan(little))


def test_big_word_order_puts_the_high_word_first() -> None:
    assert encode_value(1.0, ValueType.FLOAT32) == [0x3F80, 0x0000]
    assert encode_value(1.0, ValueType.FLOAT32, "little") == [0x0000, 0x3F80]
    assert encode_value(0x12345678, ValueType.UINT32) == [0x1234, 0x5678]
    assert encode_value(-2, ValueType.INT16) == [0xFFFE]
    assert decode_registers([0xFFFE], ValueType.INT16) == -2
    assert decode_registers([0xFFFE], ValueType.UINT16) == 0xFFFE


@settings(deadline=None, max_examples=60)
@given(integer_cases())
def test_integer_out_of_range_is_refused(case: tuple[ValueType, int]) -> None:
    value_type, _ = case
    low, high = INTEGER_TYPES[value_type]
    for value in (low - 1, high + 1):
        with pytest.raises(CodecError):
            encode_value(value, value_type)


@pytest.mark.parametrize(
    ("value", "value_type"),
    [
        (1.5, ValueType.INT16),
        (True, ValueType.UINT16),
        (1e39, ValueType.FLOAT32),
        (1.0, ValueType.BOOL),
    ],
)
def test_unrepresentable_values_are_refused(value: float, value_type: ValueType) -> None:
    with pytest.raises(CodecError):
        encode_value(value, value_type)


def test_whole_floats_encode_into_integer_registers() -> None:
    assert encode_value(12.0, ValueType.INT16) == [12]


@pytest.mark.parametrize(
    ("registers", "value_type"),
    [([1], ValueType.FLOAT32), ([1, 2], ValueType.INT16), ([0x10000], ValueType.UINT16)],
)
def test_decode_refuses_wrong_register_counts_and_values(
    registers: list[int], value_type: ValueType
) -> None:
    with pytest.raises(CodecError):
        decode_registers(registers, value_type)


def test_matches_struct_ieee754() -> None:
    registers = encode_value(3.25, ValueType.FLOAT32)
    assert struct.pack(">HH", *registers) == struct.pack(">f", 3.25)


@settings(deadline=None, max_examples=60)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_decodes_to_the_shortest_decimal_of_the_same_bits(value: float) -> None:
    registers = encode_value(value, ValueType.FLOAT32)
    decoded = decode_registers(registers, ValueType.FLOAT32)
    assert encode_value(decoded, ValueType.FLOAT32) == registers
    assert len(repr(decoded)) <= len(repr(value)) or decoded == value


def test_float32_noise_is_not_shown() -> None:
    registers = encode_value(2.9993396, ValueType.FLOAT32)
    assert decode_registers(registers, ValueType.FLOAT32) == 2.9993396


# 0x12345678 has bytes A=0x12, B=0x34, C=0x56, D=0x78 (most significant first).
@pytest.mark.parametrize(
    ("word_order", "byte_order", "name", "registers"),
    [
        ("big", "big", "ABCD", [0x1234, 0x5678]),
        ("little", "big", "CDAB", [0x5678, 0x1234]),
        ("big", "little", "BADC", [0x3412, 0x7856]),
        ("little", "little", "DCBA", [0x7856, 0x3412]),
    ],
)
def test_the_four_byte_orders_lay_out_a_32_bit_value_as_device_manuals_name_them(
    word_order: WordOrder, byte_order: ByteOrder, name: str, registers: list[int]
) -> None:
    assert BYTE_ORDER_NAMES[(word_order, byte_order)] == name
    assert encode_value(0x12345678, ValueType.UINT32, word_order, byte_order) == registers
    assert decode_registers(registers, ValueType.UINT32, word_order, byte_order) == 0x12345678


def test_a_16_bit_value_follows_the_byte_order_only() -> None:
    assert encode_value(0x1234, ValueType.UINT16, "little", "big") == [0x1234]
    assert encode_value(0x1234, ValueType.UINT16, "big", "little") == [0x3412]
    assert decode_registers([0x3412], ValueType.UINT16, "little", "little") == 0x1234


@settings(deadline=None, max_examples=60)
@given(
    st.floats(allow_nan=False),
    st.sampled_from(["big", "little"]),
    st.sampled_from(["big", "little"]),
)
def test_float64_round_trips_in_every_order(
    value: float, word_order: WordOrder, byte_order: ByteOrder
) -> None:
    registers = encode_value(value, ValueType.FLOAT64, word_order, byte_order)
    assert len(registers) == 4
    assert decode_registers(registers, ValueType.FLOAT64, word_order, byte_order) == value


def test_float64_big_order_is_ieee754_big_endian() -> None:
    registers = encode_value(-1234.5678, ValueType.FLOAT64)
    assert struct.pack(">4H", *registers) == struct.pack(">d", -1234.5678)
    little = encode_value(-1234.5678, ValueType.FLOAT64, "little")
    assert little == registers[::-1]


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=8))
def test_little_byte_order_swaps_the_bytes_of_each_register(registers: list[int]) -> None:
    swapped = registers_to_bytes(registers, "little")
    assert swapped == b"".join(r.to_bytes(2, "little") for r in registers)
    assert registers_to_bytes(registers) == b"".join(r.to_bytes(2, "big") for r in registers)
