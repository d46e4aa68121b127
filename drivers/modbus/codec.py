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

import struct
from collections.abc import Sequence
from math import isfinite
from typing import Literal

from drivers.modbus.address import ModbusAddress, ValueType

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

_FIELD_CODES: dict[ValueType, str] = {
    value_type: fmt[1:] for value_type, fmt in _STRUCT_FORMAT.items()
}

_FLOAT32 = struct.Struct(">f")
_pack_float32 = _FLOAT32.pack

# Six to nine significant digits, as format specs built once rather than for every value.
_SHORTEST_SPECS = (".6g", ".7g", ".8g", ".9g")

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


_FIELD, _BIT, _ALONE = 0, 1, 2
_Step = tuple[int, int, int, struct.Struct | None]
"""How ``RegisterLayout`` gets one value: kind, field index / register / byte offset, bit, and
the struct of a value decoded alone."""


class RegisterLayout:
    """Decodes every value of one register read at once: one ``struct`` call for the block.

    Built once per planned request from the points' addresses (each within
    ``[start, start + count)``) and the device's orders; ``decode`` then turns the response's
    registers into one value per address, in the order given, exactly as ``decode_registers``
    would for each point alone (float32 as its shortest decimal, a register bit as a bool).

    The four orders need no per-value shuffling. Packing the registers big-endian gives the
    device's bytes (MAP 4.2); packing them little-endian swaps the two bytes of every register.
    Reading little-endian a value whose registers were each swapped is reading its words in
    reverse order, each most significant byte first: the little word order. So ABCD packs and
    reads big-endian, DCBA packs big and reads little, CDAB packs little and reads little, and
    BADC packs little and reads big; 16-bit values follow the byte order only, as they must.
    """

    __slots__ = (
        "_all_float32",
        "_count",
        "_direct",
        "_float32",
        "_pack",
        "_steps",
        "_swap_bits",
        "_unpack",
    )

    def __init__(
        self,
        start: int,
        count: int,
        addresses: Sequence[ModbusAddress],
        word_order: WordOrder = "big",
        byte_order: ByteOrder = "big",
    ) -> None:
        if count < 1:
            raise CodecError(f"a register read needs at least one register, not {count}")
        swapped = word_order != byte_order
        read = "<" if word_order == "little" else ">"
        self._count = count
        self._pack = struct.Struct(f"{'<' if swapped else '>'}{count}H").pack
        # A register bit counts in the register's value once the byte order is undone.
        self._swap_bits = byte_order == "little"
        by_offset = sorted(range(len(addresses)), key=lambda i: _extent(addresses[i]))
        fields: list[str] = []
        primary: dict[int, int] = {}
        cursor = start
        for position in by_offset:
            address = addresses[position]
            if address.offset < start or address.end > start + count:
                raise CodecError(f"{address} lies outside registers {start}..{start + count - 1}")
            if address.bit is None and address.offset >= cursor:
                # Unused registers between two values are skipped as pad bytes.
                gap = 2 * (address.offset - cursor)
                fields.append((f"{gap}x" if gap else "") + _FIELD_CODES[address.value_type])
                primary[position] = len(primary)
                cursor = address.end
        fields.append(f"{2 * (start + count - cursor)}x")  # unused registers after the last value
        self._unpack = struct.Struct(read + "".join(fields)).unpack
        # How to get each address's value: a field of the one unpack, a bit of a register, or
        # (a value overlapping an earlier one, e.g. two tags on one register) its own unpack.
        steps: list[_Step] = []
        for position, address in enumerate(addresses):
            if position in primary:
                steps.append((_FIELD, primary[position], 0, None))
            elif address.bit is not None:
                steps.append((_BIT, address.offset - start, address.bit, None))
            else:
                alone = struct.Struct(read + _FIELD_CODES[address.value_type])
                steps.append((_ALONE, 2 * (address.offset - start), 0, alone))
        self._steps = tuple(steps)
        self._float32 = tuple(address.value_type is ValueType.FLOAT32 for address in addresses)
        self._all_float32 = all(self._float32)
        self._direct = list(primary) == list(range(len(addresses)))

    @property
    def count(self) -> int:
        """Number of registers the layout decodes."""
        return self._count

    def decode(self, registers: Sequence[int]) -> list[int | float | bool]:
        """One value per address from exactly ``count`` registers; raise CodecError."""
        try:
            raw = self._pack(*registers)
        except struct.error as err:
            raise CodecError(
                f"expected {self._count} 16-bit registers, got {len(registers)}: {err}"
            ) from err
        fields: tuple[int | float, ...] = self._unpack(raw)
        shortest = shortest_float32_value
        if self._direct:
            # The common case: points side by side, none overlapping: no per-point dispatch.
            if self._all_float32:
                return [shortest(value) for value in fields]
            return [
                shortest(value) if is_float32 else value
                for value, is_float32 in zip(fields, self._float32, strict=True)
            ]
        values: list[int | float | bool] = []
        for (kind, where, bit, alone), is_float32 in zip(self._steps, self._float32, strict=True):
            value: int | float | bool
            if kind == _FIELD:
                value = fields[where]
            elif alone is not None:
                value = alone.unpack_from(raw, where)[0]
            else:
                register = registers[where]
                if self._swap_bits:
                    register = ((register & 0xFF) << 8) | (register >> 8)
                value = bool((register >> bit) & 1)
            values.append(shortest(value) if is_float32 else value)
        return values


def _extent(address: ModbusAddress) -> tuple[int, int]:
    return address.offset, address.end


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
    exact: float = _FLOAT32.unpack(raw)[0]
    return shortest_float32_value(exact)


def shortest_float32_value(value: float) -> float:
    """``shortest_float32`` of a float32 already unpacked (widened to a Python float).

    Non-finite values come back unchanged. The result is the first of 6, 7, 8 and 9 significant
    digits whose decimal packs to the same 32 bits; nine always does (IEEE 754-2008, 5.12.2).
    """
    if not isfinite(value):
        return value
    packed = _pack_float32(value)
    for spec in _SHORTEST_SPECS:
        candidate = float(format(value, spec))
        if _pack_float32(candidate) == packed:
            return candidate
    return value


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
