"""Values between OPC UA and the center: DataValues to samples, tag values to Variants.

A DataValue carries value, status code and both timestamps together (Part 4, 7.11); a sample
keeps all of them. Writes must carry the variable's own built-in type (Part 4, 5.10.4.1: a
server may refuse a Double for a Float variable with BadTypeMismatch), so the driver reads the
variable's DataType once and encodes the value for it here.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from asyncua import ua
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from controlcenter.model import DataType, Quality, Sample, Severity, Substatus, TagDef, Value
from drivers.base import AddressError

# Status codes whose cause is the point's configuration rather than the device (Part 4, 7.39).
_CONFIG_STATUS_NAMES = frozenset(
    {
        "BadNodeIdUnknown",
        "BadNodeIdInvalid",
        "BadAttributeIdInvalid",
        "BadNotReadable",
        "BadNoMatch",
        "BadBrowseNameInvalid",
        "BadFilterNotAllowed",
        "BadMonitoredItemFilterUnsupported",
    }
)

_INTEGER_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}
_FLOAT_TYPES = frozenset({ua.VariantType.Float, ua.VariantType.Double})

# Well-known subtypes of built-in data types (Part 3, 8.x; Part 5, 12) and their encoding.
_DATA_TYPE_ENCODINGS: dict[int, ua.VariantType] = {
    ObjectIds.Duration: ua.VariantType.Double,
    ObjectIds.UtcTime: ua.VariantType.DateTime,
    ObjectIds.LocaleId: ua.VariantType.String,
    ObjectIds.IntegerId: ua.VariantType.UInt32,
    ObjectIds.Counter: ua.VariantType.UInt32,
    ObjectIds.Enumeration: ua.VariantType.Int32,
}
_LAST_BUILTIN_TYPE = 25  # DiagnosticInfo: built-in type ids are 1..25 (Part 6, 5.1.2)

_GOOD = Quality.good()

STATUS_NAMES: dict[int, str] = {
    code: name for name, code in vars(StatusCodes).items() if isinstance(code, int)
}
"""Symbolic names of status codes (Part 6, Annex A) for operators' messages."""


def status_name(code: int) -> str:
    """``BadNodeIdUnknown`` for a known code (severity and sub-code), else ``0x...``."""
    return STATUS_NAMES.get(code & 0xFFFF0000) or f"0x{code:08X}"


def quality_of(code: int) -> Quality:
    """The quality of an OPC UA status code (info bits ignored, Part 4, 7.39)."""
    base = code & 0xFFFF0000
    if base == 0:
        return Quality.good()
    name = status_name(base)
    if name in _CONFIG_STATUS_NAMES:
        return Quality.bad(Substatus.CONFIG_ERROR, name)
    return Quality.from_status_code(base, name)


def to_sample(tag: TagDef, data_value: ua.DataValue, now: datetime) -> Sample:
    """A sample of ``tag`` from a DataValue: its value in the tag's type, status and times.

    The server time is ``now``, when the center received the value; a missing source
    timestamp falls back to the OPC UA server's timestamp, then to ``now``.
    """
    status = data_value.StatusCode
    code = status.value if status is not None else 0
    # The sample's server time is when the center received it, which orders history; the OPC
    # UA server's own ServerTimestamp (Part 4, 7.7.4) only stands in for a missing source time.
    server_time = now
    source_time = data_value.SourceTimestamp or data_value.ServerTimestamp or now
    variant = data_value.Value
    if not code & 0xFFFF0000 and variant is not None:
        # Fast path for the common case on the subscription hot path: a Good float.
        raw = variant.Value
        if type(raw) is float and tag.data_type is DataType.FLOAT and math.isfinite(raw):
            return Sample(tag.name, raw, _GOOD, source_time, server_time)
    quality = quality_of(code)
    if quality.severity is Severity.BAD:  # the value is not usable (Part 4, 7.39)
        return Sample(tag.name, None, quality, source_time, server_time)
    try:
        value = convert(variant.Value if variant is not None else None, tag.data_type)
    except ConversionError as err:
        bad = Quality.bad(err.substatus, str(err))
        return Sample(tag.name, None, bad, source_time, server_time)
    return Sample(tag.name, value, quality, source_time, server_time)


class ConversionError(ValueError):
    """A variable's value does not fit the tag; ``substatus`` says whose fault it is."""

    def __init__(self, reason: str, substatus: Substatus = Substatus.CONFIG_ERROR) -> None:
        super().__init__(reason)
        self.substatus = substatus


def convert(raw: object, data_type: DataType) -> Value:
    """Convert a variant's value to ``data_type``; raise ConversionError when it does not fit."""
    if isinstance(raw, list) or raw is None:
        what = "an array" if isinstance(raw, list) else "no value"
        raise ConversionError(f"the variable holds {what}, not a {data_type}")
    if data_type is DataType.FLOAT:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            number = float(raw)
            if not math.isfinite(number):
                raise ConversionError(f"device reported {number}", Substatus.SENSOR_FAILURE)
            return number
    elif data_type is DataType.INT:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
    elif data_type is DataType.BOOL:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
    elif data_type is DataType.DATETIME:
        if isinstance(raw, datetime):
            # A DateTime is UTC (Part 6, 5.2.2.5); asyncua's own decoder may give it naive.
            return raw if raw.tzinfo is not None else raw.replace(tzinfo=UTC)
    elif isinstance(raw, str):
        return raw
    elif isinstance(raw, ua.LocalizedText):
        return raw.Text or ""
    elif isinstance(raw, int | float):
        return str(raw)
    elif isinstance(raw, datetime):
        return (raw if raw.tzinfo is not None else raw.replace(tzinfo=UTC)).isoformat()
    raise ConversionError(f"a {type(raw).__name__} value ({raw!r}) does not fit a {data_type} tag")


def variant_type_for(data_type: ua.NodeId, current: ua.Variant | None) -> ua.VariantType:
    """The built-in type to write a variable with: from its DataType attribute, else its value."""
    identifier = data_type.Identifier
    if data_type.NamespaceIndex == 0 and isinstance(identifier, int):
        if 1 <= identifier <= _LAST_BUILTIN_TYPE:
            return ua.VariantType(identifier)
        known = _DATA_TYPE_ENCODINGS.get(identifier)
        if known is not None:
            return known
    if current is not None and current.VariantType is not ua.VariantType.Null:
        return current.VariantType
    raise AddressError(f"cannot tell the built-in type of data type {data_type.to_string()}")


def to_variant(value: Value, variant_type: ua.VariantType, where: str) -> ua.Variant:
    """Encode ``value`` as ``variant_type``; raise AddressError when it does not fit."""
    if variant_type is ua.VariantType.Boolean:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return ua.Variant(bool(value), variant_type)
    elif variant_type in _INTEGER_RANGES:
        number = value
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        if isinstance(number, int) and not isinstance(number, bool):
            low, high = _INTEGER_RANGES[variant_type]
            if not low <= number <= high:
                raise AddressError(
                    f"{where}: {value} is out of the {variant_type.name} range {low}..{high}"
                )
            return ua.Variant(number, variant_type)
    elif variant_type in _FLOAT_TYPES:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if not math.isfinite(number):
                raise AddressError(f"{where}: {value} is not a finite number")
            return ua.Variant(number, variant_type)
    elif variant_type is ua.VariantType.String:
        if isinstance(value, str):
            return ua.Variant(value, variant_type)
    elif variant_type is ua.VariantType.LocalizedText and isinstance(value, str):
        return ua.Variant(ua.LocalizedText(value), variant_type)
    elif variant_type is ua.VariantType.DateTime and isinstance(value, datetime):
        if value.tzinfo is None:
            raise AddressError(f"{where}: {value.isoformat()} has no time zone")
        return ua.Variant(value.astimezone(UTC), variant_type)
    raise AddressError(f"{where}: a {variant_type.name} variable cannot take {value!r}")
