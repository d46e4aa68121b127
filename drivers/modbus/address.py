"""Modbus point addresses: ``<table>:<offset>[:<type>]``, e.g. ``ir:0:float32`` or ``coil:3``.

Tables are the four primary tables of the Modbus data model (Modbus Application Protocol
v1.1b3, 4.3): ``coil`` (coils), ``di`` (discrete inputs), ``ir`` (input registers) and ``hr``
(holding registers). The offset is the zero-based protocol address 0..65535 that goes into the
PDU (MAP 4.4), not a "40001"-style register number. The type says how many registers a value
occupies and how they are decoded: ``bool`` for the bit tables (the default there, and only
allowed there), ``int16``, ``uint16``, ``int32``, ``uint32`` or ``float32`` for the register
tables (a type is required there).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controlcenter.model import DataType
from drivers.base import AddressError

MAX_OFFSET = 0xFFFF
"""Highest protocol address (MAP 4.4: addresses are 16-bit)."""


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

    @property
    def width(self) -> int:
        """Number of table entries (bits or 16-bit registers) one value occupies."""
        return 2 if self in (ValueType.INT32, ValueType.UINT32, ValueType.FLOAT32) else 1


# Which engineering data types each layout can carry without losing meaning.
_COMPATIBLE: dict[DataType, frozenset[ValueType]] = {
    DataType.BOOL: frozenset({ValueType.BOOL}),
    DataType.INT: frozenset({ValueType.INT16, ValueType.UINT16, ValueType.INT32, ValueType.UINT32}),
    DataType.FLOAT: frozenset(
        {ValueType.INT16, ValueType.UINT16, ValueType.INT32, ValueType.UINT32, ValueType.FLOAT32}
    ),
    DataType.STRING: frozenset(),
}


@dataclass(frozen=True, slots=True)
class ModbusAddress:
    """A parsed point address: table, zero-based offset and value layout."""

    table: Table
    offset: int
    value_type: ValueType

    def __post_init__(self) -> None:
        if not 0 <= self.offset <= MAX_OFFSET:
            raise AddressError(f"offset {self.offset} outside 0..{MAX_OFFSET}")
        if self.table.is_bit_table != (self.value_type is ValueType.BOOL):
            raise AddressError(
                f"type {self.value_type} is not allowed in table {self.table}: "
                "coil and di hold bool only, ir and hr hold int16, uint16, int32, uint32, float32"
            )
        if self.end > MAX_OFFSET + 1:
            raise AddressError(
                f"{self.value_type} at offset {self.offset} runs past the last address {MAX_OFFSET}"
            )

    @property
    def register_count(self) -> int:
        """Number of table entries the value occupies (bits for bit tables, else registers)."""
        return self.value_type.width

    @property
    def end(self) -> int:
        """First offset after the value."""
        return self.offset + self.register_count

    def __str__(self) -> str:
        return f"{self.table}:{self.offset}:{self.value_type}"


def parse_address(text: str) -> ModbusAddress:
    """Parse ``<table>:<offset>[:<type>]``; raise ``AddressError`` naming what is wrong."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3):
        raise AddressError(
            f"Modbus address {text!r} is not '<table>:<offset>[:<type>]' (e.g. 'ir:0:float32')"
        )
    table_text, offset_text = parts[0].strip().lower(), parts[1].strip()
    try:
        table = Table(table_text)
    except ValueError as err:
        tables = ", ".join(t.value for t in Table)
        raise AddressError(
            f"Modbus address {text!r}: unknown table {table_text!r} (one of {tables})"
        ) from err
    if not (offset_text.isascii() and offset_text.isdigit()):
        raise AddressError(
            f"Modbus address {text!r}: offset {offset_text!r} is not a decimal number 0..65535"
        )
    offset = int(offset_text)
    if len(parts) == 3:
        type_text = parts[2].strip().lower()
        try:
            value_type = ValueType(type_text)
        except ValueError as err:
            types = ", ".join(t.value for t in ValueType)
            raise AddressError(
                f"Modbus address {text!r}: unknown type {type_text!r} (one of {types})"
            ) from err
    elif table.is_bit_table:
        value_type = ValueType.BOOL
    else:
        raise AddressError(
            f"Modbus address {text!r}: register table {table} needs a type "
            "(int16, uint16, int32, uint32 or float32)"
        )
    try:
        return ModbusAddress(table, offset, value_type)
    except AddressError as err:
        raise AddressError(f"Modbus address {text!r}: {err}") from err


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
