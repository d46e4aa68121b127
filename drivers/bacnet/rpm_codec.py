"""ReadPropertyMultiple-ACK service data to per-property results, without generic decoding.

A ReadPropertyMultiple-ACK (ASHRAE 135-2020, clauses 15.7.1.3 and 21) is a list of read access
results: an object identifier [0] and a list of results [1], each a property identifier [2],
an optional array index [3] and either the property value [4] or a property access error [5]
(error class and error code, application-tagged ENUMERATEDs). The fast decoder walks that
structure in its canonical encoding (clause 20.2) and reads the primitive values points carry:
Null, BOOLEAN, Unsigned, INTEGER, REAL, Double, CharacterString (UTF-8), BIT STRING and
ENUMERATED (20.2.2-20.2.11).

Each value is typed as bacpypes3 types it: by the property's datatype in the object's class
(the device's vendor information picks the class), the element type for an array index, and
Unsigned for index 0 (the array's length, 12.1.1); it is built with that class. Anything the
fast decoder does not read - a constructed value, a date, an octet string, a value whose tag is
not its datatype's, a tag in a non-canonical form, bytes after the last result - sends the whole
ACK through bacpypes3's decoder, which then gives the results (or the error) it always gives.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bacpypes3.apdu import (
    APCISequence,
    ComplexAckPDU,
    ConfirmedServiceChoice,
    ReadPropertyMultipleACK,
)
from bacpypes3.basetypes import ErrorClass, ErrorCode
from bacpypes3.constructeddata import Array
from bacpypes3.primitivedata import (
    BitString,
    Boolean,
    CharacterString,
    Double,
    Enumerated,
    Integer,
    Null,
    ObjectType,
    PropertyIdentifier,
    Real,
    Unsigned,
)

READ_PROPERTY_MULTIPLE = int(ConfirmedServiceChoice.readPropertyMultiple)
"""The ConfirmedServiceChoice of ReadPropertyMultiple (21)."""

_CACHE_SIZE = 4096
_VALUE_CACHE_SIZE = 16384
_CACHED_CONTENTS = 16
"""Longest contents (octets) whose typed value is remembered; longer text is built anew."""

# Canonical tag octets (20.2.1): context tags [0] with 4 octets, [2] and [3] with 1-4 octets,
# opening/closing tags [1], [4] and [5].
_OBJECT_IDENTIFIER = 0x0C
_OPEN_RESULTS, _CLOSE_RESULTS = 0x1E, 0x1F
_PROPERTY_IDENTIFIER = 0x28
_ARRAY_INDEX = 0x38
_OPEN_VALUE, _CLOSE_VALUE = 0x4E, 0x4F
_OPEN_ERROR, _CLOSE_ERROR = 0x5E, 0x5F
_ENUMERATED = 0x90
_TAG_NUMBER_AND_CLASS = 0xF8
_LENGTH = 0x07
_CONTEXT_CLASS = 0x08
_EXTENDED_LENGTH = 5
_LENGTH_IN_TWO_OCTETS = 254

_REAL = struct.Struct(">f")
_DOUBLE = struct.Struct(">d")

# Application tag numbers (20.2.1.4).
_NULL, _BOOLEAN, _UNSIGNED, _INTEGER, _REAL_TAG, _DOUBLE_TAG = 0, 1, 2, 3, 4, 5
_CHARACTER_STRING, _BIT_STRING, _ENUMERATED_TAG = 7, 8, 9
_UTF8 = 0
"""Character set X'00', ISO 10646 UTF-8 (20.2.9)."""


class AckDecodingError(ValueError):
    """The answer is not a ReadPropertyMultiple-ACK that bacpypes3 can decode either."""


@dataclass(frozen=True, slots=True)
class PropertyAccessError:
    """A property the device could not read: its error class and error code names (18)."""

    error_class: str
    error_code: str


@dataclass(frozen=True, slots=True)
class PropertyResult:
    """One property of a ReadPropertyMultiple-ACK.

    ``value`` is the bacpypes3 value of the property's datatype, a ``PropertyAccessError``, or
    None when bacpypes3 knows no datatype for the property (a proprietary one). Equal values
    decoded fast are one shared instance: read them, never change them.
    """

    object_key: str
    """``<object-type>:<instance>``."""
    property_name: str
    array_index: int | None
    value: object


class _NotFast(Exception):
    """The fast decoder does not read this ACK; bacpypes3 decodes it."""


def decode_ack(ack: Any, vendor_info: Any) -> list[PropertyResult]:
    """The results of a ReadPropertyMultiple-ACK APDU whose service data is still undecoded.

    ``vendor_info`` is the bacpypes3 vendor information of the device (its object classes give
    the datatypes). Raise AckDecodingError when the answer is not a ReadPropertyMultiple-ACK or
    bacpypes3 cannot decode it; a value that is not its datatype raises what bacpypes3 raises.
    """
    if not isinstance(ack, ComplexAckPDU) or ack.apduService != READ_PROPERTY_MULTIPLE:
        raise AckDecodingError(f"not a ReadPropertyMultiple-ACK: {ack!r}")
    try:
        return _decode_fast(bytes(ack.pduData), vendor_info)
    except _NotFast:
        return decode_ack_with_bacpypes(ack, vendor_info)


def decode_ack_with_bacpypes(ack: Any, vendor_info: Any) -> list[PropertyResult]:
    """The same results by bacpypes3's generic decoding (it consumes the APDU's data)."""
    try:
        decoded = APCISequence.decode(ack)
    except Exception as err:  # bacpypes3 raises many kinds for undecodable data
        raise AckDecodingError(f"undecodable ReadPropertyMultiple-ACK: {err!r}") from err
    if not isinstance(decoded, ReadPropertyMultipleACK):
        raise AckDecodingError(f"not a ReadPropertyMultiple-ACK: {decoded!r}")
    results: list[PropertyResult] = []
    for access_result in decoded.listOfReadAccessResults:
        object_id = access_result.objectIdentifier
        object_key = f"{object_id[0]}:{object_id[1]}"
        object_class = vendor_info.get_object_class(object_id[0])
        for element in access_result.listOfResults:
            name = str(element.propertyIdentifier)
            index = element.propertyArrayIndex
            array_index = None if index is None else int(index)
            read_result = element.readResult
            error = read_result.propertyAccessError
            if error:
                value: object = PropertyAccessError(str(error.errorClass), str(error.errorCode))
            else:
                datatype = _datatype(object_class, element.propertyIdentifier, array_index)
                value = None if datatype is None else read_result.propertyValue.cast_out(datatype)
            results.append(PropertyResult(object_key, name, array_index, value))
    return results


def _decode_fast(data: bytes, vendor_info: Any) -> list[PropertyResult]:
    """Walk the canonical encoding; raise _NotFast at the first thing it does not read."""
    end = len(data)
    if not end:
        raise _NotFast
    results: list[PropertyResult] = []
    append = results.append
    pos = 0
    try:
        while pos < end:
            if data[pos] != _OBJECT_IDENTIFIER or data[pos + 5] != _OPEN_RESULTS:
                raise _NotFast
            object_id = int.from_bytes(data[pos + 1 : pos + 5], "big")
            object_type = object_id >> 22
            object_key = f"{_object_type_name(object_type)}:{object_id & 0x3FFFFF}"
            object_class: Any = None
            pos += 6
            while (tag := data[pos]) != _CLOSE_RESULTS:
                size = tag & _LENGTH
                if tag & _TAG_NUMBER_AND_CLASS != _PROPERTY_IDENTIFIER or not 1 <= size <= 4:
                    raise _NotFast
                pos += 1 + size
                property_id = int.from_bytes(data[pos - size : pos], "big")
                array_index: int | None = None
                tag = data[pos]
                if tag & _TAG_NUMBER_AND_CLASS == _ARRAY_INDEX:
                    size = tag & _LENGTH
                    if not 1 <= size <= 4:
                        raise _NotFast
                    pos += 1 + size
                    array_index = int.from_bytes(data[pos - size : pos], "big")
                    tag = data[pos]
                value: object
                if tag == _OPEN_VALUE:
                    if object_class is None:
                        object_class = vendor_info.get_object_class(object_type)
                        if object_class is None:
                            raise _NotFast
                    value, pos = _value(data, pos + 1, object_class, property_id, array_index)
                    if data[pos] != _CLOSE_VALUE:
                        raise _NotFast
                elif tag == _OPEN_ERROR:
                    value, pos = _access_error(data, pos + 1)
                    if data[pos] != _CLOSE_ERROR:
                        raise _NotFast
                else:
                    raise _NotFast
                pos += 1
                append(PropertyResult(object_key, _property_name(property_id), array_index, value))
            pos += 1
    except IndexError as err:  # the data ends inside a result
        raise _NotFast from err
    if pos != end:
        raise _NotFast
    return results


def _value(
    data: bytes, pos: int, object_class: Any, property_id: int, array_index: int | None
) -> tuple[object, int]:
    """The one application-tagged value at ``pos`` and where it ends (20.2.1)."""
    # Only whether there is an index, and whether it is 0, picks the datatype.
    index_kind = None if array_index is None else min(array_index, 1)
    datatype, tag_number = _fast_datatype(object_class, property_id, index_kind)
    if datatype is None:
        raise _NotFast  # no datatype (bacpypes3 gives None), or one read by bacpypes3 only
    tag = data[pos]
    if tag >> 4 != tag_number or tag & _CONTEXT_CLASS:
        raise _NotFast
    length = tag & _LENGTH
    if tag_number == _BOOLEAN:
        # An application-tagged BOOLEAN carries its value in the length field (20.2.3).
        if length > 1:
            raise _NotFast
        return _typed(datatype, tag_number, _BOOLEAN_CONTENTS[length]), pos + 1
    pos += 1
    if length == _EXTENDED_LENGTH:
        length = data[pos]
        pos += 1
        if length == _LENGTH_IN_TWO_OCTETS:
            length = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif length > _LENGTH_IN_TWO_OCTETS:
            raise _NotFast
    elif length > _EXTENDED_LENGTH:
        raise _NotFast
    stop = pos + length
    if stop > len(data):
        raise _NotFast
    typed = _typed if length <= _CACHED_CONTENTS else _new_typed
    return typed(datatype, tag_number, data[pos:stop]), stop


_BOOLEAN_CONTENTS = (b"\x00", b"\x01")


def _new_typed(datatype: Any, tag_number: int, contents: bytes) -> object:
    """A primitive's contents octets as an instance of its datatype, as bacpypes3 builds it."""
    value = _primitive(tag_number, contents)
    try:
        return datatype(value)
    except Exception as err:  # out of the datatype's range: bacpypes3 meets it again
        raise _NotFast from err


_typed = lru_cache(maxsize=_VALUE_CACHE_SIZE)(_new_typed)
"""``_new_typed``, remembered for short contents: a poll reads mostly the same flags, states
and units again and again."""


def _primitive(tag_number: int, contents: bytes) -> object:
    """The Python value of a primitive's contents octets (20.2.2-20.2.11)."""
    if tag_number in (_UNSIGNED, _ENUMERATED_TAG):
        if not contents:
            raise _NotFast
        return int.from_bytes(contents, "big")
    if tag_number == _REAL_TAG:
        if len(contents) != _REAL.size:
            raise _NotFast
        return _REAL.unpack(contents)[0]
    if tag_number == _BIT_STRING:
        return _bits(contents)
    if tag_number == _CHARACTER_STRING:
        if not contents or contents[0] != _UTF8:
            raise _NotFast
        try:
            return contents[1:].decode("utf-8")
        except UnicodeDecodeError as err:  # bacpypes3 then tries Latin-1
            raise _NotFast from err
    if tag_number == _BOOLEAN:
        return bool(contents[0])
    if tag_number == _INTEGER:
        if not contents:
            raise _NotFast
        return int.from_bytes(contents, "big", signed=True)
    if tag_number == _DOUBLE_TAG:
        if len(contents) != _DOUBLE.size:
            raise _NotFast
        return _DOUBLE.unpack(contents)[0]
    if contents:  # Null has no contents octets (20.2.2)
        raise _NotFast
    return ()


def _bits(contents: bytes) -> list[int]:
    """A BIT STRING's bits: the first octet counts the unused bits of the last (20.2.10)."""
    if not contents:
        raise _NotFast
    unused = contents[0]
    if unused > 7 or (unused and len(contents) == 1):
        raise _NotFast
    bits = [(octet >> shift) & 1 for octet in contents[1:] for shift in _SHIFTS]
    return bits[: len(bits) - unused]


_SHIFTS = (7, 6, 5, 4, 3, 2, 1, 0)


def _access_error(data: bytes, pos: int) -> tuple[PropertyAccessError, int]:
    """Error class and error code, two application-tagged ENUMERATEDs (21, BACnet-Error)."""
    numbers: list[int] = []
    for _ in range(2):
        tag = data[pos]
        size = tag & _LENGTH
        if tag & _TAG_NUMBER_AND_CLASS != _ENUMERATED or not 1 <= size <= 4:
            raise _NotFast
        pos += 1 + size
        numbers.append(int.from_bytes(data[pos - size : pos], "big"))
    return _error(numbers[0], numbers[1]), pos


@lru_cache(maxsize=_CACHE_SIZE)
def _error(error_class: int, error_code: int) -> PropertyAccessError:
    """The names of an error class and code, as bacpypes3 spells them."""
    try:
        return PropertyAccessError(str(ErrorClass(error_class)), str(ErrorCode(error_code)))
    except (TypeError, ValueError) as err:
        raise _NotFast from err


@lru_cache(maxsize=_CACHE_SIZE)
def _object_type_name(object_type: int) -> str:
    """An object type's name (its number when it has none), as bacpypes3 spells it."""
    try:
        return str(ObjectType(object_type))
    except (TypeError, ValueError) as err:
        raise _NotFast from err


@lru_cache(maxsize=_CACHE_SIZE)
def _property_name(property_id: int) -> str:
    """A property identifier's name (its number when it has none), as bacpypes3 spells it."""
    try:
        return str(PropertyIdentifier(property_id))
    except (TypeError, ValueError) as err:
        raise _NotFast from err


def _datatype(object_class: Any, property_id: Any, array_index: int | None) -> Any:
    """The class bacpypes3 decodes a property value as; None when it knows none.

    As in bacpypes3's read_property_multiple: the object class's type of the property, and for
    an array read with an index, the element type (the length's, Unsigned, for index 0).
    """
    datatype = object_class.get_property_type(property_id)
    if datatype is None:
        return None
    if issubclass(datatype, Array) and array_index is not None:
        # Index 0 reads the array's length (12.1.1), any other index one element.
        return Unsigned if array_index == 0 else datatype._subtype
    return datatype


# The primitive datatypes the fast decoder builds, with their application tag numbers; Double
# before Real, which it extends.
_FAST_DATATYPES: tuple[tuple[Any, int], ...] = (
    (Null, _NULL),
    (Boolean, _BOOLEAN),
    (Unsigned, _UNSIGNED),
    (Integer, _INTEGER),
    (Double, _DOUBLE_TAG),
    (Real, _REAL_TAG),
    (CharacterString, _CHARACTER_STRING),
    (BitString, _BIT_STRING),
    (Enumerated, _ENUMERATED_TAG),
)


@lru_cache(maxsize=_CACHE_SIZE)
def _fast_datatype(object_class: Any, property_id: int, index_kind: int | None) -> tuple[Any, int]:
    """The datatype of a property and its application tag, or (None, -1) if not read fast."""
    try:
        datatype = _datatype(object_class, PropertyIdentifier(property_id), index_kind)
    except Exception:  # whatever it is, bacpypes3's own decoding meets it again
        return None, -1
    if not isinstance(datatype, type) or getattr(datatype, "_context", None) is not None:
        return None, -1
    for primitive, tag_number in _FAST_DATATYPES:
        if issubclass(datatype, primitive):
            # A datatype with its own decoding, or a character set other than UTF-8, is not a
            # plain primitive: bacpypes3 decodes it.
            decoding = getattr(datatype.decode, "__func__", None)  # type: ignore[attr-defined]
            same_decoding = decoding is primitive.decode.__func__
            if not same_decoding or getattr(datatype, "_encoding", _UTF8) != _UTF8:
                return None, -1
            return datatype, tag_number
    return None, -1
