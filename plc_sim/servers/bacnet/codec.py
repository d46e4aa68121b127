"""Byte-level BACnet codec for the reads a poll asks most (pure: no protocol library here).

A scan polls present-value and status-flags of hundreds of objects every few seconds. The
generic bacpypes3 path builds a constructed-data object for every request element and every
answer element, which costs about a millisecond each; this module reads the request and writes
the answer directly in the encoding of ASHRAE 135-2020 clause 20.2 (tags), 15.5
(ReadProperty) and 15.7 (ReadPropertyMultiple). The server uses it for present-value and
status-flags of its point objects and leaves every other property to bacpypes3, whose answer
it splices into the same message.

A request that uses anything the parser does not expect (extended tag numbers, the special
property identifiers all/required/optional, trailing bytes) is not parsed (None) and goes the
generic way, so errors and rejects stay bacpypes3's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

READ_PROPERTY = 12
"""Confirmed service choice of ReadProperty (ASHRAE 135-2020, 21)."""

READ_PROPERTY_MULTIPLE = 14
"""Confirmed service choice of ReadPropertyMultiple (21)."""

PRESENT_VALUE = 85
STATUS_FLAGS = 111
"""BACnetPropertyIdentifier values of present-value and status-flags (21)."""

_SPECIAL_PROPERTIES = frozenset({8, 80, 105})
"""all, optional, required: only meaningful in ReadPropertyMultiple (15.7.3.1.2)."""

_INSTANCE_BITS = 22
_INSTANCE_MASK = (1 << _INSTANCE_BITS) - 1

_OPENING = 6
_CLOSING = 7
_EXTENDED_LENGTH = 5

_REAL_TAG = b"\x44"
"""Application tag 4 (REAL), length 4 (20.2.6)."""

_STATUS_FLAGS_TAG = b"\x82\x04"
"""Application tag 8 (BIT STRING), length 2, then 4 unused bits of the 4-bit string (20.2.10)."""


class CodecError(ValueError):
    """A value this codec cannot encode (the caller answers the generic way instead)."""


@dataclass(frozen=True, slots=True)
class PropertyRead:
    """One property asked of one object: identifiers as numbers, the array index if any."""

    object_type: int
    instance: int
    property_id: int
    array_index: int | None = None


@dataclass(frozen=True, slots=True)
class ObjectReads:
    """The properties a ReadPropertyMultiple asks of one object, in the request's order."""

    object_type: int
    instance: int
    reads: tuple[PropertyRead, ...]


def parse_read_property(data: bytes) -> PropertyRead | None:
    """The object and property a ReadProperty-Request names (15.5.1.1), or None."""
    try:
        reader = _TagReader(data)
        object_type, instance = reader.object_identifier(0)
        property_id = reader.unsigned(1)
        array_index = reader.unsigned(2) if reader.next_is_context(2) else None
        if not reader.at_end() or property_id in _SPECIAL_PROPERTIES:
            return None
    except _ParseError:
        return None
    return PropertyRead(object_type, instance, property_id, array_index)


def parse_read_property_multiple(data: bytes) -> tuple[ObjectReads, ...] | None:
    """The read access specifications of a ReadPropertyMultiple-Request (15.7.1.1), or None."""
    specs: list[ObjectReads] = []
    try:
        reader = _TagReader(data)
        while not reader.at_end():
            object_type, instance = reader.object_identifier(0)
            reader.opening(1)
            reads: list[PropertyRead] = []
            while not reader.next_is_closing(1):
                property_id = reader.unsigned(0)
                if property_id in _SPECIAL_PROPERTIES:
                    return None
                index = reader.unsigned(1) if reader.next_is_context(1) else None
                reads.append(PropertyRead(object_type, instance, property_id, index))
            reader.closing(1)
            if not reads:
                return None
            specs.append(ObjectReads(object_type, instance, tuple(reads)))
    except _ParseError:
        return None
    return tuple(specs) if specs else None


def encode_real(value: float) -> bytes:
    """An application-tagged REAL (20.2.6); CodecError beyond the float32 range."""
    try:
        return _REAL_TAG + struct.pack(">f", value)
    except (OverflowError, struct.error) as err:
        raise CodecError(f"{value!r} is not a REAL") from err


def encode_enumerated(value: int) -> bytes:
    """An application-tagged ENUMERATED (20.2.11)."""
    return _application_unsigned(9, value)


def encode_unsigned(value: int) -> bytes:
    """An application-tagged Unsigned (20.2.4)."""
    return _application_unsigned(2, value)


def encode_status_flags(fault: bool, overridden: bool, out_of_service: bool) -> bytes:
    """BACnetStatusFlags (in-alarm, fault, overridden, out-of-service) as a BIT STRING."""
    # Bit 0 (in-alarm) is the most significant bit of the first octet (20.2.10).
    bits = (int(fault) << 6) | (int(overridden) << 5) | (int(out_of_service) << 4)
    return _STATUS_FLAGS_TAG + bytes((bits,))


def read_result(read: PropertyRead, value: bytes) -> bytes:
    """One element of a ReadAccessResult's listOfResults holding a property value (21)."""
    head = _context_unsigned(2, read.property_id)
    if read.array_index is not None:
        head += _context_unsigned(3, read.array_index)
    return head + b"\x4e" + value + b"\x4f"


def read_access_result(object_type: int, instance: int, results: bytes) -> bytes:
    """A ReadAccessResult: the object identifier and its listOfResults (21)."""
    return _context_object_identifier(0, object_type, instance) + b"\x1e" + results + b"\x1f"


def read_property_ack(read: PropertyRead, value: bytes) -> bytes:
    """The service data of a ReadProperty-ACK (15.5.1.3)."""
    body = _context_object_identifier(0, read.object_type, read.instance)
    body += _context_unsigned(1, read.property_id)
    if read.array_index is not None:
        body += _context_unsigned(2, read.array_index)
    return body + b"\x3e" + value + b"\x3f"


def _unsigned_octets(value: int) -> bytes:
    if value < 0:
        raise CodecError(f"{value} is not unsigned")
    length = max(1, (value.bit_length() + 7) // 8)
    if length > 4:
        raise CodecError(f"{value} does not fit 32 bits")
    return value.to_bytes(length, "big")


def _application_unsigned(tag: int, value: int) -> bytes:
    octets = _unsigned_octets(value)
    return bytes(((tag << 4) | len(octets),)) + octets


def _context_unsigned(tag: int, value: int) -> bytes:
    octets = _unsigned_octets(value)
    return bytes(((tag << 4) | 0x08 | len(octets),)) + octets


def _context_object_identifier(tag: int, object_type: int, instance: int) -> bytes:
    return bytes(((tag << 4) | 0x08 | 4,)) + ((object_type << _INSTANCE_BITS) | instance).to_bytes(
        4, "big"
    )


class _ParseError(Exception):
    """The request is not in the simple form this parser reads."""


class _TagReader:
    """Reads context tags (20.2.1) from a service request, front to back."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def at_end(self) -> bool:
        return self._pos >= len(self._data)

    def _octet(self) -> int:
        if self._pos >= len(self._data):
            raise _ParseError("truncated")
        octet = self._data[self._pos]
        return octet

    def next_is_context(self, number: int) -> bool:
        if self.at_end():
            return False
        octet = self._octet()
        return octet >> 4 == number and octet & 0x08 != 0 and octet & 0x07 < _OPENING

    def next_is_closing(self, number: int) -> bool:
        return not self.at_end() and self._octet() == (number << 4) | 0x08 | _CLOSING

    def opening(self, number: int) -> None:
        if self._octet() != (number << 4) | 0x08 | _OPENING:
            raise _ParseError(f"opening tag {number} expected")
        self._pos += 1

    def closing(self, number: int) -> None:
        if self._octet() != (number << 4) | 0x08 | _CLOSING:
            raise _ParseError(f"closing tag {number} expected")
        self._pos += 1

    def _context_octets(self, number: int) -> bytes:
        octet = self._octet()
        if octet >> 4 != number or octet & 0x08 == 0:
            raise _ParseError(f"context tag {number} expected")
        length = octet & 0x07
        if length >= _EXTENDED_LENGTH:
            raise _ParseError("extended length or opening/closing tag")
        start = self._pos + 1
        end = start + length
        if end > len(self._data):
            raise _ParseError("truncated")
        self._pos = end
        return self._data[start:end]

    def unsigned(self, number: int) -> int:
        octets = self._context_octets(number)
        if not octets:
            raise _ParseError("empty unsigned")
        return int.from_bytes(octets, "big")

    def object_identifier(self, number: int) -> tuple[int, int]:
        octets = self._context_octets(number)
        if len(octets) != 4:
            raise _ParseError("object identifier of other than 4 octets")
        value = int.from_bytes(octets, "big")
        return value >> _INSTANCE_BITS, value & _INSTANCE_MASK
