"""Modbus TCP driver: addresses, register codec, read planner, device config and the driver."""

from drivers.modbus.address import ModbusAddress, parse_address, validate_address
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.driver import ModbusDriver

__all__ = [
    "ModbusAddress",
    "ModbusDeviceConfig",
    "ModbusDriver",
    "parse_address",
    "validate_address",
]
