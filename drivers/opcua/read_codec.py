"""The binary form of the Read service (Part 4, 5.10.2) in OPC UA Binary (Part 6, 5.2).

A scan reads the same nodes every cycle, so ``prepare_read`` encodes a node list's parameters
(MaxAge, TimestampsToReturn and the NodesToRead array) once; each request then only adds its
own, fresh RequestHeader. ``decode_read_response`` decodes the common ReadResponse (scalar
values of the built-in types points use, status codes, timestamps) straight into asyncua's
value objects. Every other shape is decoded by asyncua itself from the same bytes, value by
value or the whole response, so the results are always the ones asyncua gives.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.ua_binary import get_string_encoding, struct_from_binary, struct_to_binary
from asyncua.ua.uaerrors import UaError

_BYTE_AND_UINT16 = struct.Struct("<BH")
_INT32 = struct.Struct("<i")
_UINT16 = struct.Struct("<H")
_UINT32 = struct.Struct("<I")
_INT64 = struct.Struct("<q")
_STATUS_AND_TIMES = struct.Struct("<Iqq")  # StatusCode, SourceTimestamp, ServerTimestamp

_NULL_STRING = b"\xff\xff\xff\xff"  # a null String or ByteString: length -1 (Part 6, 5.2.2.4)
_NULL_EXTENSION_OBJECT = b"\x00\x00\x00"  # TypeId ns=0;i=0 (two-byte form), no body (5.2.2.15)


class ReadEncodingError(ValueError):
    """A node id that cannot be put into a Read request (Part 6, 5.2.2.9)."""


@dataclass(frozen=True, slots=True)
class PreparedRead:
    """A node list's Read request with its parameters already in binary form.

    ``parameters`` is the same request as asyncua objects: for observers of requests, and for
    sending it the ordinary way.
    """

    node_ids: tuple[ua.NodeId, ...]
    parameters: ua.ReadParameters
    encoded_parameters: bytes

    def encode(self, header: ua.RequestHeader) -> bytes:
        """The ReadRequest's binary body: encoding id, this request's header, the parameters."""
        return b"".join((_READ_REQUEST_ID, struct_to_binary(header), self.encoded_parameters))


def prepare_read(node_ids: Sequence[ua.NodeId]) -> PreparedRead:
    """Encode the Value attribute of ``node_ids`` with source and server timestamps, MaxAge 0.

    Raise ReadEncodingError (chained) for a node id that has no binary form.
    """
    nodes = tuple(node_ids)
    parts = [
        struct.pack("<di", 0.0, ua.TimestampsToReturn.Both),  # MaxAge 0: a fresh value
        _INT32.pack(len(nodes)),  # arrays are prefixed by their length (Part 6, 5.2.5)
    ]
    # ReadValueId: the node, the Value attribute, no IndexRange, the default DataEncoding
    # (a QualifiedName of namespace 0 with a null name, Part 6, 5.2.2.13).
    value_attribute = _UINT32.pack(AttributeIds.Value) + _NULL_STRING + b"\x00\x00" + _NULL_STRING
    for node_id in nodes:
        parts.append(encode_node_id(node_id))
        parts.append(value_attribute)
    parameters = ua.ReadParameters(
        MaxAge=0,
        TimestampsToReturn=ua.TimestampsToReturn.Both,
        NodesToRead=[ua.ReadValueId(NodeId=node, AttributeId=AttributeIds.Value) for node in nodes],
    )
    return PreparedRead(nodes, parameters, b"".join(parts))


def encode_node_id(node_id: ua.NodeId) -> bytes:
    """A NodeId in the binary form its NodeIdType names (Part 6, 5.2.2.9)."""
    kind = node_id.NodeIdType
    namespace = node_id.NamespaceIndex
    identifier: object = node_id.Identifier
    # Described by hand: asyncua's to_string fails on the inconsistent ids refused here.
    described = f"{kind.name} node id {identifier!r} in namespace {namespace}"
    if isinstance(node_id, ua.ExpandedNodeId) and (node_id.NamespaceUri or node_id.ServerIndex):
        raise ReadEncodingError(f"{described} is not a local node id")
    try:
        if kind in _NUMERIC_KINDS and isinstance(identifier, int):
            if kind is ua.NodeIdType.TwoByte:
                if namespace != 0:
                    raise ReadEncodingError(f"{described}: the two-byte form has no namespace")
                return struct.pack("<BB", kind, identifier)
            if kind is ua.NodeIdType.FourByte:
                return struct.pack("<BBH", kind, namespace, identifier)
            return struct.pack("<BHI", kind, namespace, identifier)
        prefix = _BYTE_AND_UINT16.pack(kind, namespace)
        if kind is ua.NodeIdType.String and isinstance(identifier, str):
            return prefix + _length_prefixed(_encode_text(identifier))
        if kind is ua.NodeIdType.ByteString and isinstance(identifier, bytes):
            return prefix + _length_prefixed(identifier)
        if kind is ua.NodeIdType.Guid and isinstance(identifier, uuid.UUID):
            # Data1..Data3 little-endian, Data4 as is (Part 6, 5.2.2.6): the UUID's bytes_le.
            return prefix + identifier.bytes_le
    except (struct.error, UnicodeError) as err:
        raise ReadEncodingError(f"{described} cannot be encoded: {err}") from err
    raise ReadEncodingError(
        f"{described}: a {type(identifier).__name__} identifier does not fit the {kind.name} form"
    )


def decode_read_response(body: bytes) -> list[ua.DataValue]:
    """The DataValues of a ReadResponse body, equal to what asyncua decodes from it.

    A ServiceResult that is not Good raises asyncua's UaStatusCodeError, as asyncua's Read does.
    """
    try:
        return _decode_common(body)
    except (_NotCommon, struct.error, IndexError, UaError):
        # A shape this decoder leaves to asyncua, or bytes that do not decode: asyncua decodes
        # the whole response and reports its own errors, exactly as without this decoder.
        pass
    response = struct_from_binary(ua.ReadResponse, Buffer(body))
    response.ResponseHeader.ServiceResult.check()
    results: list[ua.DataValue] = response.Results
    return results


class _NotCommon(Exception):
    """The response has a shape the fast decoder leaves to asyncua."""


def _decode_common(body: bytes) -> list[ua.DataValue]:
    """Decode a ReadResponse whose header carries no diagnostics, strings or extension."""
    if not body.startswith(_READ_RESPONSE_ID):
        raise _NotCommon
    # ResponseHeader (Part 4, 7.33 in 1.05): Timestamp, RequestHandle, ServiceResult,
    # ServiceDiagnostics, StringTable, AdditionalHeader.
    pos = len(_READ_RESPONSE_ID) + 8 + 4
    (service_result,) = _UINT32.unpack_from(body, pos)
    if service_result & _NOT_GOOD:
        raise _NotCommon  # asyncua raises for it; its decoder gives the exact error
    pos += 4
    if body[pos] != 0:  # a DiagnosticInfo with any field set (Part 6, 5.2.2.12)
        raise _NotCommon
    (strings,) = _INT32.unpack_from(body, pos + 1)
    pos += 5
    if strings > 0 or body[pos : pos + 3] != _NULL_EXTENSION_OBJECT:
        raise _NotCommon
    (count,) = _INT32.unpack_from(body, pos + 3)
    if count < 0:
        raise _NotCommon
    results, pos = _decode_data_values(body, pos + 7, count)
    (diagnostics,) = _INT32.unpack_from(body, pos)
    if diagnostics > 0:
        raise _NotCommon
    return results


def _decode_data_values(body: bytes, pos: int, count: int) -> tuple[list[ua.DataValue], int]:
    """Decode ``count`` DataValues (Part 6, 5.2.2.17) from ``pos``; return them and the end.

    Each value is built without asyncua's constructors, which guess and check what the wire
    has already said (the Variant's type, a scalar): they cost more than the decoding.
    """
    encoding = get_string_encoding()
    new = object.__new__
    results: list[ua.DataValue] = []
    append = results.append
    last_source_ticks = last_server_ticks = -1
    last_source = last_server = _EARLIEST
    end = len(body)
    for _ in range(count):
        mask = body[pos]
        if mask & _UNCOMMON_MASK or mask & _ORDER_DIFFERS == _ORDER_DIFFERS:
            pos = _decode_by_asyncua(body, pos, append)
            continue
        start = pos
        pos += 1
        value: object = None
        variant_type = ua.VariantType.Null
        if mask & _HAS_VALUE:
            type_id = body[pos]  # array and dimension flags make it no scalar type id
            pos += 1
            fixed = _FIXED_SIZE.get(type_id)
            if fixed is not None:
                unpacker, variant_type = fixed
                (value,) = unpacker.unpack_from(body, pos)
                pos += unpacker.size
            elif type_id == _BOOLEAN:
                value = body[pos] != 0  # any non-zero byte is true (Part 6, 5.2.2.1)
                variant_type = ua.VariantType.Boolean
                pos += 1
            elif type_id in _BYTE_SEQUENCES:
                variant_type = _BYTE_SEQUENCES[type_id]
                (length,) = _INT32.unpack_from(body, pos)
                pos += 4
                if length >= 0 and pos + length <= end:
                    raw = body[pos : pos + length]
                    pos += length
                    if type_id == _BYTE_STRING:
                        value = raw
                    else:
                        value = raw.decode(encoding, "surrogateescape")
                elif length != -1:  # -1 is null; anything else is left to asyncua's checks
                    pos = _decode_by_asyncua(body, start, append)
                    continue
            elif type_id == _DATE_TIME:
                (ticks,) = _INT64.unpack_from(body, pos)
                pos += 8
                value = to_datetime(ticks)
                variant_type = ua.VariantType.DateTime
            elif type_id != _NULL:
                pos = _decode_by_asyncua(body, start, append)
                continue
        status = 0  # an absent StatusCode is Good (Part 6, 5.2.2.17)
        source = server = None
        if mask & _STATUS_AND_BOTH_TIMES == _STATUS_AND_BOTH_TIMES:  # the common case: at once
            status, source_ticks, server_ticks = _STATUS_AND_TIMES.unpack_from(body, pos)
            pos += 20
        else:
            source_ticks = server_ticks = -1
            if mask & _HAS_STATUS:
                (status,) = _UINT32.unpack_from(body, pos)
                pos += 4
            if mask & _HAS_SOURCE_TIME:
                (source_ticks,) = _INT64.unpack_from(body, pos)
                pos += 8
            if mask & _HAS_SERVER_TIME:
                (server_ticks,) = _INT64.unpack_from(body, pos)
                pos += 8
        # Servers often stamp many values alike: reuse the last conversion.
        if mask & _HAS_SOURCE_TIME:
            if source_ticks != last_source_ticks:
                last_source_ticks, last_source = source_ticks, to_datetime(source_ticks)
            source = last_source
        if mask & _HAS_SERVER_TIME:
            if server_ticks != last_server_ticks:
                last_server_ticks, last_server = server_ticks, to_datetime(server_ticks)
            server = last_server
        source_picoseconds = server_picoseconds = None
        if mask & _HAS_SOURCE_PICOSECONDS:
            (source_picoseconds,) = _UINT16.unpack_from(body, pos)
            pos += 2
        if mask & _HAS_SERVER_PICOSECONDS:
            (server_picoseconds,) = _UINT16.unpack_from(body, pos)
            pos += 2
        # Typed Any: asyncua annotates these fields with its marker classes (ua.UInt32,
        # ua.DateTime...), which the plain values asyncua's own decoder stores are not.
        variant: Any = new(_Variant)
        variant.Value = value
        variant.VariantType = variant_type
        variant.Dimensions = None
        variant.is_array = False
        status_code: Any = new(_StatusCode)
        status_code.value = status
        data_value: Any = new(_DataValue)
        data_value.Encoding = 0
        data_value.Value = variant
        data_value.StatusCode = status_code
        data_value.SourceTimestamp = source
        data_value.ServerTimestamp = server
        data_value.SourcePicoseconds = source_picoseconds
        data_value.ServerPicoseconds = server_picoseconds
        append(data_value)
    return results, pos


def _decode_by_asyncua(body: bytes, pos: int, append: Any) -> int:
    """Decode the DataValue at ``pos`` with asyncua, append it, return where the next starts."""
    buffer = Buffer(body, pos)
    append(struct_from_binary(ua.DataValue, buffer))
    return int(buffer.cur_pos)


def to_datetime(ticks: int) -> datetime:
    """A DateTime (Part 6, 5.2.2.5): 100 ns ticks since 1601-01-01 UTC, as asyncua gives it.

    Values past 9999-12-31 23:59:59 decode as that time and negative ones as 1601-01-01, the
    earliest and latest dates the platform represents (as the clause asks of decoders).
    """
    if 0 <= ticks < _LATEST_TICKS:
        # Positional arguments: timedelta's keyword parsing costs more than the arithmetic.
        return _EARLIEST + timedelta(0, 0, ticks // 10)
    return _EARLIEST if ticks < 0 else _LATEST


def _length_prefixed(data: bytes) -> bytes:
    return _INT32.pack(len(data)) + data


def _encode_text(text: str) -> bytes:
    # asyncua's configured string encoding (UTF-8, Part 6, 5.2.2.4, unless changed), with the
    # same error handling, so that requests and responses agree with asyncua's codec.
    return text.encode(get_string_encoding(), "surrogateescape")


def _four_byte_node_id(identifier: int) -> bytes:
    return struct.pack("<BBH", ua.NodeIdType.FourByte, 0, identifier)


# A service message is the NodeId of its binary encoding followed by its fields (Part 6, 5.2).
_READ_REQUEST_ID = _four_byte_node_id(ObjectIds.ReadRequest_Encoding_DefaultBinary)
_READ_RESPONSE_ID = _four_byte_node_id(ObjectIds.ReadResponse_Encoding_DefaultBinary)

_NUMERIC_KINDS = frozenset({ua.NodeIdType.TwoByte, ua.NodeIdType.FourByte, ua.NodeIdType.Numeric})
_NOT_GOOD = 0xC0000000  # severity bits: Uncertain or Bad (Part 4, StatusCode)

# DataValue encoding mask bits (Part 6, 5.2.2.17).
_HAS_VALUE = 0x01
_HAS_STATUS = 0x02
_HAS_SOURCE_TIME = 0x04
_HAS_SERVER_TIME = 0x08
_HAS_SOURCE_PICOSECONDS = 0x10
_HAS_SERVER_PICOSECONDS = 0x20
_UNCOMMON_MASK = 0xC0  # bits the clause does not define
_STATUS_AND_BOTH_TIMES = _HAS_STATUS | _HAS_SOURCE_TIME | _HAS_SERVER_TIME
# Part 6 orders the fields SourceTimestamp, SourcePicoseconds, ServerTimestamp; asyncua reads
# both timestamps first. They differ only when source picoseconds and a server timestamp come
# together: that shape is left to asyncua, so the result stays what asyncua reads.
_ORDER_DIFFERS = _HAS_SOURCE_PICOSECONDS | _HAS_SERVER_TIME

# Scalar Variant type ids (Part 6, 5.1.2 built-in types; 5.2.2.16 Variant).
_NULL = 0
_BOOLEAN = 1
_DATE_TIME = 13
_BYTE_STRING = 15
_FIXED_SIZE: dict[int, tuple[struct.Struct, ua.VariantType]] = {
    vt.value: (struct.Struct(fmt), vt)
    for vt, fmt in (
        (ua.VariantType.SByte, "<b"),
        (ua.VariantType.Byte, "<B"),
        (ua.VariantType.Int16, "<h"),
        (ua.VariantType.UInt16, "<H"),
        (ua.VariantType.Int32, "<i"),
        (ua.VariantType.UInt32, "<I"),
        (ua.VariantType.Int64, "<q"),
        (ua.VariantType.UInt64, "<Q"),
        (ua.VariantType.Float, "<f"),  # IEEE 754 (Part 6, 5.2.2.3)
        (ua.VariantType.Double, "<d"),
    )
}
_BYTE_SEQUENCES = {
    ua.VariantType.String.value: ua.VariantType.String,
    _BYTE_STRING: ua.VariantType.ByteString,
}

_EARLIEST = datetime(1601, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_LATEST_TICKS = int((_LATEST - _EARLIEST).total_seconds()) * 10_000_000

_Variant = ua.Variant
_StatusCode = ua.StatusCode
_DataValue = ua.DataValue
