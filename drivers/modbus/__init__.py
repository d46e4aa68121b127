"""Modbus TCP driver: addresses, register codec, read planner, shared connections, the driver."""

from drivers.modbus.address import ModbusAddress, parse_address, validate_address
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.connection import ModbusConnection, ModbusGateways, ModbusProtocolError
from drivers.modbus.driver import ModbusDriver

__all__ = [
    "ModbusAddress",
    "ModbusConnection",
    "ModbusDeviceConfig",
    "ModbusDriver",
    "ModbusGateways",
    "ModbusProtocolError",
    "parse_address",
    "validate_address",
]
