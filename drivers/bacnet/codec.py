"""BACnet values to tag values and back, and status flags to quality.

Present-values by object kind (ASHRAE 135-2020, clause 12): analog objects carry a REAL
(IEEE 754 single precision), binary objects a BACnetBinaryPV (inactive 0, active 1),
multi-state objects an Unsigned state number counted from 1 (12.18-12.20), which the center
keeps as the 0-based enumeration value its tags use.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from bacpypes3.basetypes import BinaryPV
from bacpypes3.primitivedata import Real, Unsigned

from controlcenter.model import DataType, Quality, Substatus, Value
from drivers.bacnet.address import BacnetAddress

IN_ALARM, FAULT, OVERRIDDEN, OUT_OF_SERVICE = range(4)
"""Bit positions of BACnetStatusFlags (ASHRAE 135-2020, 21)."""

_FLOAT32_DIGITS = range(1, 10)


class CodecError(ValueError):
    """A value cannot be converted between BACnet and the tag's type."""


def shortest_float32(value: float) -> float:
    """The shortest decimal that is the same single-precision REAL (2.8, not 2.7999999523)."""
    if not math.isfinite(value):
        return value
    try:
        packed = struct.pack(">f", value)
    except OverflowError:
        return value
    for digits in _FLOAT32_DIGITS:
        candidate = float(f"{value:.{digits}g}")
        try:
            if struct.pack(">f", candidate) == packed:
                return candidate
        except OverflowError:
            continue
    return value


def quality_from_status_flags(flags: Sequence[int] | None, object_key: str) -> Quality:
    """The quality a value with these status flags deserves (12.x.y Status_Flags).

    Fault → Bad device failure; out-of-service (the value is not the process) → Bad out of
    service; overridden (a local hand switch holds it) → Good local override; in-alarm alone
    says nothing about the value's trustworthiness.
    """
    if flags is None:
        return Quality.good()
    bits = list(flags)
    if len(bits) > FAULT and bits[FAULT]:
        return Quality.bad(Substatus.DEVICE_FAILURE, f"{object_key}: status flag fault")
    if len(bits) > OUT_OF_SERVICE and bits[OUT_OF_SERVICE]:
        return Quality.bad(Substatus.OUT_OF_SERVICE, f"{object_key}: out of service")
    if len(bits) > OVERRIDDEN and bits[OVERRIDDEN]:
        return Quality(
            Quality.good().severity, Substatus.LOCAL_OVERRIDE, f"{object_key}: overridden"
        )
    return Quality.good()


def decode_present_value(address: BacnetAddress, raw: object, data_type: DataType) -> Value:
    """A present-value as the tag's value; CodecError when it is not what the type carries."""
    if address.object_type.is_binary:
        if isinstance(raw, int) and not isinstance(raw, bool) and raw in (0, 1):
            return raw == 1
        raise CodecError(f"{address}: expected inactive/active, got {raw!r}")
    if address.object_type.is_multi_state:
        if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
            return raw - 1
        raise CodecError(f"{address}: expected a state number from 1, got {raw!r}")
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        number = shortest_float32(float(raw))
        if not math.isfinite(number):
            raise CodecError(f"{address}: device reported {number}")
        return round(number) if data_type is DataType.INT else number
    raise CodecError(f"{address}: expected a REAL, got {raw!r}")


def decode_property(address: BacnetAddress, raw: object, data_type: DataType) -> Value:
    """Another property's value as the tag's value (BOOLEAN, numbers, enumerations, text)."""
    if data_type is DataType.STRING:
        if isinstance(raw, str):
            return str(raw)
    elif data_type is DataType.BOOL:
        if isinstance(raw, int) and int(raw) in (0, 1):
            return bool(int(raw))
    elif data_type is DataType.INT:
        if isinstance(raw, int):
            return int(raw)
    elif isinstance(raw, int | float):
        number = shortest_float32(float(raw)) if isinstance(raw, float) else float(raw)
        if math.isfinite(number):
            return number
    raise CodecError(f"{address}: a {data_type} tag cannot hold {type(raw).__name__} {raw!r}")


def encode_present_value(address: BacnetAddress, value: Value) -> object:
    """A tag value as the object's present-value (REAL, BACnetBinaryPV or 1-based Unsigned)."""
    if address.object_type.is_binary:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return BinaryPV.active if value else BinaryPV.inactive
        raise CodecError(f"{address} takes true/false, not {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"{address} takes a number, not {value!r}")
    if address.object_type.is_multi_state:
        if isinstance(value, int) and value >= 0:
            return Unsigned(value + 1)
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return Unsigned(int(value) + 1)
        raise CodecError(f"{address} takes a state number from 0, not {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise CodecError(f"{address} takes a finite number, not {value!r}")
    return Real(number)
