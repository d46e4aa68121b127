"""Modbus TCP device server of the simulated city (pymodbus)."""
