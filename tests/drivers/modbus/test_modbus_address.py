from __future__ import annotations

import pytest

from controlcenter.model import DataType
from drivers.base import AddressError
from drivers.modbus.address import ModbusAddress, Table, ValueType, parse_address, validate_address


@pytest.mark.parametrize(
    ("text", "expected", "count"),
    [
        ("coil:0", ModbusAddress(Table.COIL, 0, ValueType.BOOL), 1),
        ("di:17", ModbusAddress(Table.DISCRETE_INPUT, 17, ValueType.BOOL), 1),
        ("di:17:bool", ModbusAddress(Table.DISCRETE_INPUT, 17, ValueType.BOOL), 1),
        ("ir:0:float32", ModbusAddress(Table.INPUT_REGISTER, 0, ValueType.FLOAT32), 2),
        ("hr:65535:int16", ModbusAddress(Table.HOLDING_REGISTER, 65535, ValueType.INT16), 1),
        ("hr:65534:uint32", ModbusAddress(Table.HOLDING_REGISTER, 65534, ValueType.UINT32), 2),
        (" HR:10:Int32 ", ModbusAddress(Table.HOLDING_REGISTER, 10, ValueType.INT32), 2),
        ("ir:3:uint16", ModbusAddress(Table.INPUT_REGISTER, 3, ValueType.UINT16), 1),
        ("hr:100:float64", ModbusAddress(Table.HOLDING_REGISTER, 100, ValueType.FLOAT64), 4),
        ("hr:10.3", ModbusAddress(Table.HOLDING_REGISTER, 10, ValueType.BOOL, 3), 1),
        ("ir:0.15:bool", ModbusAddress(Table.INPUT_REGISTER, 0, ValueType.BOOL, 15), 1),
    ],
)
def test_parses_valid_addresses(text: str, expected: ModbusAddress, count: int) -> None:
    parsed = parse_address(text)
    assert parsed == expected
    assert parsed.register_count == count
    assert parse_address(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not '<table>:<offset>[:<type>]'"),
        ("coil", "is not '<table>:<offset>[:<type>]'"),
        ("ir:0:float32:x", "is not '<table>:<offset>[:<type>]'"),
        ("xx:0", "unknown table 'xx'"),
        ("coil:-1", "is not a decimal number"),
        ("coil:0x10", "is not a decimal number"),
        ("coil:65536", "outside 0..65535"),
        ("hr:65535:float32", "runs past the last address"),
        ("ir:0", "needs a type"),
        ("ir:0:bool", "not allowed in table ir"),
        ("coil:0:int16", "not allowed in table coil"),
        ("hr:0:float128", "unknown type 'float128'"),
        ("hr:65533:float64", "runs past the last address"),
        ("hr:10.16", "bit 16 outside 0..15"),
        ("hr:10.x", "bit 'x' is not a decimal number"),
        ("hr:10.3:int16", "a bit inside a register is bool"),
        ("coil:3.1", "holds single bits"),
    ],
)
def test_refuses_malformed_addresses_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(AddressError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_address(text)


@pytest.mark.parametrize(
    ("address", "data_type"),
    [
        ("coil:0", DataType.BOOL),
        ("di:0", DataType.BOOL),
        ("ir:0:float32", DataType.FLOAT),
        ("hr:0:int16", DataType.FLOAT),
        ("hr:0:uint32", DataType.INT),
        ("hr:0:float64", DataType.FLOAT),
        ("hr:7.2", DataType.BOOL),
    ],
)
def test_validate_accepts_compatible_types(address: str, data_type: DataType) -> None:
    validate_address(address, data_type)


@pytest.mark.parametrize(
    ("address", "data_type"),
    [
        ("ir:0:float32", DataType.BOOL),
        ("coil:0", DataType.FLOAT),
        ("hr:0:float32", DataType.INT),
        ("hr:0:int16", DataType.STRING),
        ("nonsense", DataType.FLOAT),
        ("hr:7.2", DataType.FLOAT),
        ("hr:0:float64", DataType.INT),
    ],
)
def test_validate_refuses_incompatible_types(address: str, data_type: DataType) -> None:
    with pytest.raises(AddressError):
        validate_address(address, data_type)


def test_only_coils_and_holding_registers_are_writable() -> None:
    assert [t for t in Table if t.writable] == [Table.COIL, Table.HOLDING_REGISTER]
