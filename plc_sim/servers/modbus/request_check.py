"""Which exception a simulated RTU answers to a malformed request, before it acts on it.

The checks follow the state diagrams of the Modbus Application Protocol v1.1b3, section 6: the
function code first (exception 1, illegal function), then the quantity and the structure of the
request (exception 3, illegal data value; MAP 7 names "the implied length is incorrect" as one
case), then whether the addressed range fits the 16-bit address space (exception 2, illegal
data address). Whether the addresses exist in the device's map, and whether the device accepts
a written value, is decided later, by the server.
"""

from __future__ import annotations

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3

READ_DEVICE_IDENTIFICATION = 0x2B
"""Encapsulated Interface Transport (MAP 6.19); MEI type 14 is Read Device Identification."""
MEI_READ_DEVICE_ID = 0x0E

SUPPORTED_FUNCTIONS = frozenset({1, 2, 3, 4, 5, 6, 15, 16, READ_DEVICE_IDENTIFICATION})
"""What the simulated RTU implements; any other function code answers exception 1."""

COIL_ON, COIL_OFF = 0xFF00, 0x0000
"""The only values of a write single coil request (MAP 6.5)."""

_ADDRESS_SPACE = 0x10000
# Quantity limits per function code (MAP 6.1: 1..2000 bits, 6.3/6.4: 1..125 registers,
# 6.11: 1..1968 coils, 6.12: 1..123 registers).
_READ_LIMITS = {1: 2000, 2: 2000, 3: 125, 4: 125}
_WRITE_LIMITS = {15: 1968, 16: 123}


def request_exception(pdu: bytes) -> int | None:
    """The exception code a request PDU (function code first) must be answered with, or None
    when it is well formed."""
    function = pdu[0]
    if function not in SUPPORTED_FUNCTIONS:
        return ILLEGAL_FUNCTION
    if function == READ_DEVICE_IDENTIFICATION:
        if len(pdu) != 4:
            return ILLEGAL_DATA_VALUE
        # Only MEI type 14 is implemented (MAP 6.19: 13 is CANopen General Reference).
        return None if pdu[1] == MEI_READ_DEVICE_ID else ILLEGAL_FUNCTION
    if len(pdu) < 5:
        return ILLEGAL_DATA_VALUE
    address, second = int.from_bytes(pdu[1:3], "big"), int.from_bytes(pdu[3:5], "big")
    if function in _READ_LIMITS:
        if len(pdu) != 5 or not 1 <= second <= _READ_LIMITS[function]:
            return ILLEGAL_DATA_VALUE
        return ILLEGAL_DATA_ADDRESS if address + second > _ADDRESS_SPACE else None
    if function == 5:
        return None if len(pdu) == 5 and second in (COIL_ON, COIL_OFF) else ILLEGAL_DATA_VALUE
    if function == 6:
        return None if len(pdu) == 5 else ILLEGAL_DATA_VALUE
    # FC15 and FC16: quantity, then a byte count that must match it and the bytes that follow.
    if len(pdu) < 6 or not 1 <= second <= _WRITE_LIMITS[function]:
        return ILLEGAL_DATA_VALUE
    expected = (second + 7) // 8 if function == 15 else 2 * second
    if pdu[5] != expected or len(pdu) != 6 + expected:
        return ILLEGAL_DATA_VALUE
    return ILLEGAL_DATA_ADDRESS if address + second > _ADDRESS_SPACE else None
