"""Register encoding: values to and from 16-bit Modbus registers.

Each register travels big-endian (Modbus Application Protocol v1.1b3, 4.2). The protocol does
not define values wider than one register; devices put the high word first ("big" word order,
the common convention and the default here) or last ("little").
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Literal

from drivers.modbus.address import ValueType

WordOrder = Literal["big", "little"]
"""Order of the 16-bit words of a 32-bit value: high word first ("big") or last ("little")."""

_STRUCT_FORMAT: dict[ValueType, str] = {
    ValueType.INT16: "h",
    ValueType.UINT16: "H",
    ValueType.INT32: "i",
    ValueType.UINT32: "I",
    ValueType.FLOAT32: "f",
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


def decode_registers(
    registers: Sequence[int], value_type: ValueType, word_order: WordOrder = "big"
) -> int | float:
    """Decode the registers of one value (exactly ``value_type.width`` of them)."""
    fmt = _format(value_type)
    if len(registers) != value_type.width:
        raise CodecError(f"{value_type} needs {value_type.width} registers, got {len(registers)}")
    if any(not 0 <= register <= 0xFFFF for register in registers):
        raise CodecError(f"registers {list(registers)} are not all 16-bit values")
    words = list(registers) if word_order == "big" else list(reversed(registers))
    raw = struct.pack(f">{len(words)}H", *words)
    value: int | float = struct.unpack(f">{fmt}", raw)[0]
    if value_type is ValueType.FLOAT32:
        return shortest_float32(raw)
    return value


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


def encode_value(value: float, value_type: ValueType, word_order: WordOrder = "big") -> list[int]:
    """Encode one value into ``value_type.width`` registers; raise CodecError if it cannot fit."""
    fmt = _format(value_type)
    if isinstance(value, bool):
        raise CodecError(f"a bool cannot be written as {value_type}")
    if value_type is ValueType.FLOAT32:
        try:
            raw = struct.pack(">f", float(value))
        except OverflowError as err:
            raise CodecError(f"{value} is out of the float32 range") from err
    else:
        if isinstance(value, float):
            if not value.is_integer():
                raise CodecError(f"{value} is not a whole number; {value_type} holds integers")
            value = int(value)
        low, high = _INTEGER_RANGE[value_type]
        if not low <= value <= high:
            raise CodecError(f"{value} is out of the {value_type} range {low}..{high}")
        raw = struct.pack(f">{fmt}", value)
    words = list(struct.unpack(f">{value_type.width}H", raw))
    return words if word_order == "big" else list(reversed(words))
