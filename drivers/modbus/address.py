"""Modbus point addresses: ``<table>:<offset>[:<type>]`` and ``<table>:<offset>.<bit>``.

Tables are the four primary tables of the Modbus data model (Modbus Application Protocol
v1.1b3, 4.3): ``coil`` (coils), ``di`` (discrete inputs), ``ir`` (input registers) and ``hr``
(holding registers). The offset is the zero-based protocol address 0..65535 that goes into the
PDU (MAP 4.4), not a "40001"-style register number.

The type says how many entries a value occupies and how they are decoded:

- ``bool`` for the bit tables (the default there);
- ``int16``, ``uint16`` (one register), ``int32``, ``uint32``, ``float32`` (two registers) or
  ``float64`` (four registers) for the register tables, where a type is required;
- a bit inside a register: ``hr:10.3`` is bit 3 of holding register 10, bit 0 being the least
  significant bit of the register's value (MAP 4.2 sends the register big-endian; the bit
  number counts in the value, independent of the device's byte order). The type may be
  omitted or given as ``bool`` (``hr:10.3:bool``). Many PLCs pack alarms and states this way.

Examples: ``coil:3``, ``di:17``, ``ir:0:float32``, ``hr:100:int16``, ``hr:200:float64``,
``ir:12.15``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controlcenter.model import DataType
from drivers.base import AddressError

MAX_OFFSET = 0xFFFF
"""Highest protocol address (MAP 4.4: addresses are 16-bit)."""

REGISTER_BITS = 16
"""Bits in one register (MAP 4.3: registers are 16-bit words)."""


class Table(StrEnum):
    """A primary table of the Modbus data model (MAP 4.3)."""

    COIL = "coil"
    DISCRETE_INPUT = "di"
    INPUT_REGISTER = "ir"
    HOLDING_REGISTER = "hr"

    @property
    def is_bit_table(self) -> bool:
        """Whether the table holds single bits (coils, discrete inputs)."""
        return self in (Table.COIL, Table.DISCRETE_INPUT)

    @property
    def writable(self) -> bool:
        """Whether a client can write the table (coils and holding registers, MAP 4.3)."""
        return self in (Table.COIL, Table.HOLDING_REGISTER)


class ValueType(StrEnum):
    """How a point's value is laid out in its table."""

    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @property
    def width(self) -> int:
        """Number of table entries (bits or 16-bit registers) one value occupies."""
        return _WIDTHS.get(self, 1)


_WIDTHS: dict[ValueType, int] = {
    ValueType.INT32: 2,
    ValueType.UINT32: 2,
    ValueType.FLOAT32: 2,
    ValueType.FLOAT64: 4,
}

_NUMERIC_TYPES = frozenset(ValueType) - {ValueType.BOOL}

# Which engineering data types each layout can carry without losing meaning.
_COMPATIBLE: dict[DataType, frozenset[ValueType]] = {
    DataType.BOOL: frozenset({ValueType.BOOL}),
    DataType.INT: frozenset({ValueType.INT16, ValueType.UINT16, ValueType.INT32, ValueType.UINT32}),
    DataType.FLOAT: _NUMERIC_TYPES,
    DataType.STRING: frozenset(),
    DataType.DATETIME: frozenset(),
}


@dataclass(frozen=True, slots=True)
class ModbusAddress:
    """A parsed point address: table, zero-based offset, value layout and, for a bit inside a
    register, the bit number (0 = least significant)."""

    table: Table
    offset: int
    value_type: ValueType
    bit: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.offset <= MAX_OFFSET:
            raise AddressError(f"offset {self.offset} outside 0..{MAX_OFFSET}")
        if self.bit is not None:
            if self.table.is_bit_table:
                raise AddressError(f"table {self.table} holds single bits: it has no '.bit'")
            if not 0 <= self.bit < REGISTER_BITS:
                raise AddressError(f"bit {self.bit} outside 0..{REGISTER_BITS - 1}")
            if self.value_type is not ValueType.BOOL:
                raise AddressError(f"a bit inside a register is bool, not {self.value_type}")
        elif self.table.is_bit_table != (self.value_type is ValueType.BOOL):
            raise AddressError(
                f"type {self.value_type} is not allowed in table {self.table}: "
                "coil and di hold bool only, ir and hr hold int16, uint16, int32, uint32, "
                "float32, float64 or a bit as '<offset>.<bit>'"
            )
        if self.end > MAX_OFFSET + 1:
            raise AddressError(
                f"{self.value_type} at offset {self.offset} runs past the last address {MAX_OFFSET}"
            )

    @property
    def register_count(self) -> int:
        """Number of table entries the value occupies (bits for bit tables, else registers)."""
        return 1 if self.bit is not None else self.value_type.width

    @property
    def end(self) -> int:
        """First offset after the value."""
        return self.offset + self.register_count

    @property
    def is_register_bit(self) -> bool:
        """Whether the point is one bit inside a register."""
        return self.bit is not None

    def __str__(self) -> str:
        if self.bit is not None:
            return f"{self.table}:{self.offset}.{self.bit}"
        return f"{self.table}:{self.offset}:{self.value_type}"


def parse_address(text: str) -> ModbusAddress:
    """Parse ``<table>:<offset>[:<type>]`` or ``<table>:<offset>.<bit>``; raise AddressError."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3):
        raise AddressError(
            f"Modbus address {text!r} is not '<table>:<offset>[:<type>]' (e.g. 'ir:0:float32')"
        )
    table_text, location_text = parts[0].strip().lower(), parts[1].strip()
    try:
        table = Table(table_text)
    except ValueError as err:
        tables = ", ".join(t.value for t in Table)
        raise AddressError(
            f"Modbus address {text!r}: unknown table {table_text!r} (one of {tables})"
        ) from err
    offset_text, dot, bit_text = location_text.partition(".")
    offset = _decimal(text, "offset", offset_text, f"0..{MAX_OFFSET}")
    bit = _decimal(text, "bit", bit_text, f"0..{REGISTER_BITS - 1}") if dot else None
    if len(parts) == 3:
        type_text = parts[2].strip().lower()
        try:
            value_type = ValueType(type_text)
        except ValueError as err:
            types = ", ".join(t.value for t in ValueType)
            raise AddressError(
                f"Modbus address {text!r}: unknown type {type_text!r} (one of {types})"
            ) from err
    elif table.is_bit_table or bit is not None:
        value_type = ValueType.BOOL
    else:
        raise AddressError(
            f"Modbus address {text!r}: register table {table} needs a type "
            "(int16, uint16, int32, uint32, float32, float64) or a bit ('<offset>.<bit>')"
        )
    try:
        return ModbusAddress(table, offset, value_type, bit)
    except AddressError as err:
        raise AddressError(f"Modbus address {text!r}: {err}") from err


def _decimal(text: str, what: str, digits: str, allowed: str) -> int:
    if not (digits.isascii() and digits.isdigit()):
        raise AddressError(
            f"Modbus address {text!r}: {what} {digits!r} is not a decimal number {allowed}"
        )
    return int(digits)


def validate_address(address: str, data_type: DataType) -> None:
    """Check that ``address`` parses and can carry a tag of ``data_type``; raise AddressError."""
    parsed = parse_address(address)
    check_compatible(parsed, data_type)


def check_compatible(address: ModbusAddress, data_type: DataType) -> None:
    """Raise ``AddressError`` if a tag of ``data_type`` cannot live at ``address``."""
    allowed = _COMPATIBLE[data_type]
    if address.value_type not in allowed:
        if not allowed:
            raise AddressError(f"Modbus points cannot carry {data_type} tags")
        names = ", ".join(sorted(t.value for t in allowed))
        raise AddressError(
            f"a {data_type} tag cannot live at {address} ({address.value_type}); use {names}"
        )
