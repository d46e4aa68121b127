"""Register encoding: values to and from 16-bit Modbus registers, in any of the four orders.

The Modbus Application Protocol (v1.1b3, 4.2) sends each register big-endian and defines no
value wider than one register. Devices differ in two ways, both configured per device:

- word order: the high word of a 32/64-bit value first ("big", the common convention and the
  default) or last ("little");
- byte order: the two bytes of each register as MAP 4.2 says ("big", the default) or swapped
  ("little"), as some devices and gateways do.

For a 32-bit value whose bytes are A B C D from most to least significant, this gives the four
orders found in device manuals:

=========  ==========  ==========  ==================
name       word_order  byte_order  registers (low address first)
=========  ==========  ==========  ==================
ABCD       big         big         [AB] [CD]
CDAB       little      big         [CD] [AB]
BADC       big         little      [BA] [DC]
DCBA       little      little      [DC] [BA]
=========  ==========  ==========  ==================

A 16-bit value follows the byte order only; a 64-bit value reverses all four words under little
word order.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Literal

from drivers.modbus.address import ValueType

WordOrder = Literal["big", "little"]
"""Order of the 16-bit words of a wide value: high word first ("big") or last ("little")."""

ByteOrder = Literal["big", "little"]
"""Order of the two bytes inside each register: as MAP 4.2 says ("big") or swapped ("little")."""

BYTE_ORDER_NAMES: dict[tuple[WordOrder, ByteOrder], str] = {
    ("big", "big"): "ABCD",
    ("little", "big"): "CDAB",
    ("big", "little"): "BADC",
    ("little", "little"): "DCBA",
}
"""The usual manual names of the four (word order, byte order) combinations."""

_STRUCT_FORMAT: dict[ValueType, str] = {
    ValueType.INT16: ">h",
    ValueType.UINT16: ">H",
    ValueType.INT32: ">i",
    ValueType.UINT32: ">I",
    ValueType.FLOAT32: ">f",
    ValueType.FLOAT64: ">d",
}

_INTEGER_RANGE: dict[ValueType, tuple[int, int]] = {
    ValueType.INT16: (-(2**15), 2**15 - 1),
    ValueType.UINT16: (0, 2**16 - 1),
    ValueType.INT32: (-(2**31), 2**31 - 1),
    ValueType.UINT32: (0, 2**32 - 1),
}


class CodecError(ValueError):
    """A value cannot be represented in, or decoded from, the given registers."""


def _format(value_type: ValueType) -> str:
    try:
        return _STRUCT_FORMAT[value_type]
    except KeyError as err:
        raise CodecError(f"{value_type} is not a register type") from err


def registers_to_bytes(registers: Sequence[int], byte_order: ByteOrder = "big") -> bytes:
    """The registers as bytes, each register's most significant byte first after undoing the
    device's byte order (a register-level swap for ``byte_order="little"``)."""
    try:
        raw = struct.pack(f">{len(registers)}H", *registers)
    except struct.error as err:
        raise CodecError(f"registers {list(registers)} are not all 16-bit values") from err
    if byte_order == "little":
        swapped = bytearray(raw)
        swapped[0::2], swapped[1::2] = raw[1::2], raw[0::2]
        return bytes(swapped)
    return raw


def decode_bytes(raw: bytes, value_type: ValueType, word_order: WordOrder = "big") -> int | float:
    """Decode one value from ``2 * width`` bytes as ``registers_to_bytes`` gives them."""
    fmt = _format(value_type)
    if word_order == "little" and len(raw) > 2:
        raw = b"".join(raw[i : i + 2] for i in range(len(raw) - 2, -1, -2))
    if value_type is ValueType.FLOAT32:
        return shortest_float32(raw)
    value: int | float = struct.unpack(fmt, raw)[0]
    return value


def decode_registers(
    registers: Sequence[int],
    value_type: ValueType,
    word_order: WordOrder = "big",
    byte_order: ByteOrder = "big",
) -> int | float:
    """Decode the registers of one value (exactly ``value_type.width`` of them)."""
    _format(value_type)
    if len(registers) != value_type.width:
        raise CodecError(f"{value_type} needs {value_type.width} registers, got {len(registers)}")
    return decode_bytes(registers_to_bytes(registers, byte_order), value_type, word_order)


def shortest_float32(raw: bytes) -> float:
    """The shortest decimal that is still the same float32 (2.9993396, not 2.9993395805358887).

    A float32 holds 6 to 9 significant decimal digits (IEEE 754-2008, 5.12.2); widening it to a
    Python float exposes binary noise that operators would read as precision the sensor lacks.
    """
    exact: float = struct.unpack(">f", raw)[0]
    if not math.isfinite(exact):
        return exact
    for digits in range(6, 10):
        candidate = float(f"{exact:.{digits}g}")
        if struct.pack(">f", candidate) == raw:
            return candidate
    return exact


def encode_value(
    value: float,
    value_type: ValueType,
    word_order: WordOrder = "big",
    byte_order: ByteOrder = "big",
) -> list[int]:
    """Encode one value into ``value_type.width`` registers; raise CodecError if it cannot fit."""
    fmt = _format(value_type)
    if isinstance(value, bool):
        raise CodecError(f"a bool cannot be written as {value_type}")
    if value_type in (ValueType.FLOAT32, ValueType.FLOAT64):
        try:
            raw = struct.pack(fmt, float(value))
        except OverflowError as err:
            raise CodecError(f"{value} is out of the {value_type} range") from err
    else:
        if isinstance(value, float):
            if not value.is_integer():
                raise CodecError(f"{value} is not a whole number; {value_type} holds integers")
            value = int(value)
        low, high = _INTEGER_RANGE[value_type]
        if not low <= value <= high:
            raise CodecError(f"{value} is out of the {value_type} range {low}..{high}")
        raw = struct.pack(fmt, value)
    words = list(struct.unpack(f">{value_type.width}H", raw))
    if word_order == "little":
        words.reverse()
    if byte_order == "little":
        words = [((word & 0xFF) << 8) | (word >> 8) for word in words]
    return words
