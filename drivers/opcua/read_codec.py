"""The binary form of the Read service (Part 4, 5.10.2) in OPC UA Binary (Part 6, 5.2).

A scan reads the same nodes every cycle, so ``prepare_read`` encodes a node list's parameters
(MaxAge, TimestampsToReturn and the NodesToRead array) once; each request then only adds its
own, fresh RequestHeader. ``decode_read_response`` decodes
the ReadResponse straight into asyncua's value objects, every DataValue in the field order of
Part 6, 5.2.2.17 (``decode_data_values``, also used for publish responses): scalar values of
the built-in types points use are decoded here, any other Variant by asyncua's Variant decoder.
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
from asyncua.ua.ua_binary import (
    get_string_encoding,
    struct_from_binary,
    struct_to_binary,
    variant_from_binary,
)
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

_BYTE_AND_UINT16 = struct.Struct("<BH")
_INT32 = struct.Struct("<i")
_UINT16 = struct.Struct("<H")
_UINT32 = struct.Struct("<I")
_INT64 = struct.Struct("<q")

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


def prepare_parameters(parameters: ua.ReadParameters) -> PreparedRead:
    """Any Read request's parameters (other attributes, other timestamps) in binary form."""
    nodes = tuple(item.NodeId for item in parameters.NodesToRead)
    return PreparedRead(nodes, parameters, struct_to_binary(parameters))


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
    """The DataValues of a ReadResponse body, decoded per OPC UA Part 6, 5.2.2.17.

    A ServiceResult that is not Good raises asyncua's UaStatusCodeError, as asyncua's Read does;
    bytes that do not decode raise ResponseDecodingError.
    """
    try:
        if not body.startswith(_READ_RESPONSE_ID):
            # Not a ReadResponse (a ServiceFault is checked before): asyncua says what it is.
            response = struct_from_binary(ua.ReadResponse, Buffer(body))
            response.ResponseHeader.ServiceResult.check()
            return list(response.Results)
        pos = _skip_response_header(body, len(_READ_RESPONSE_ID))
        (count,) = _INT32.unpack_from(body, pos)
        results, pos = decode_data_values(body, pos + 4, max(count, 0))
        _skip_diagnostic_infos(body, pos)
    except (struct.error, IndexError, ValueError, UaError) as err:
        if isinstance(err, UaStatusCodeError | ResponseDecodingError):
            raise
        raise ResponseDecodingError(f"ReadResponse does not decode: {err}") from err
    return results


class ResponseDecodingError(UaError):
    """A response body that does not decode as OPC UA Binary (Part 6, 5.2)."""


def _skip_response_header(body: bytes, pos: int) -> int:
    """Check a ResponseHeader's ServiceResult (Part 4, 7.33); return where the header ends.

    The common header (no diagnostics, strings or additional header) is skipped by hand; any
    other is decoded by asyncua. A ServiceResult that is not Good raises UaStatusCodeError.
    """
    # Timestamp, RequestHandle, ServiceResult, ServiceDiagnostics, StringTable, AdditionalHeader.
    (service_result,) = _UINT32.unpack_from(body, pos + 12)
    common = (
        not service_result & _NOT_GOOD
        and body[pos + 16] == 0  # a DiagnosticInfo with no field set (Part 6, 5.2.2.12)
        and _INT32.unpack_from(body, pos + 17)[0] <= 0
        and body[pos + 21 : pos + 24] == _NULL_EXTENSION_OBJECT
    )
    if common:
        return pos + 24
    buffer = Buffer(body, pos)
    header = struct_from_binary(ua.ResponseHeader, buffer)
    header.ServiceResult.check()
    return int(buffer.cur_pos)


def _skip_diagnostic_infos(body: bytes, pos: int) -> int:
    """Decode (and drop) a DiagnosticInfo array; return where it ends."""
    (count,) = _INT32.unpack_from(body, pos)
    pos += 4
    if count <= 0:
        return pos
    buffer = Buffer(body, pos)
    for _ in range(count):
        struct_from_binary(ua.DiagnosticInfo, buffer)
    return int(buffer.cur_pos)


def decode_data_values(body: bytes, pos: int, count: int) -> tuple[list[ua.DataValue], int]:
    """Decode ``count`` DataValues (Part 6, 5.2.2.17) from ``pos``; return them and the end.

    The fields follow the clause's order: Value, StatusCode, SourceTimestamp,
    SourcePicoseconds, ServerTimestamp, ServerPicoseconds, each present when its mask bit is
    set (asyncua 2.1's own decoder reads both timestamps before the picoseconds, which shifts
    a server timestamp that follows source picoseconds). Scalars of the common built-in types
    are decoded here; any other Variant (arrays, structures) by asyncua's Variant decoder.
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
        mask = body[pos]  # bits 6 and 7 are reserved (Part 6, 5.2.2.17): ignored
        pos += 1
        value: object = None
        variant_type = ua.VariantType.Null
        variant: Any = None
        if mask & _HAS_VALUE:
            type_id = body[pos]  # array and dimension flags make it no scalar type id
            fixed = _FIXED_SIZE.get(type_id)
            if fixed is not None:
                unpacker, variant_type = fixed
                (value,) = unpacker.unpack_from(body, pos + 1)
                pos += 1 + unpacker.size
            elif type_id == _BOOLEAN:
                value = body[pos + 1] != 0  # any non-zero byte is true (Part 6, 5.2.2.1)
                variant_type = ua.VariantType.Boolean
                pos += 2
            elif type_id in _BYTE_SEQUENCES and (
                (length := _INT32.unpack_from(body, pos + 1)[0]) == -1
                or 0 <= length <= end - pos - 5
            ):
                variant_type = _BYTE_SEQUENCES[type_id]
                pos += 5
                if length >= 0:  # -1 is null (Part 6, 5.2.2.4)
                    raw = body[pos : pos + length]
                    pos += length
                    value = (
                        raw if type_id == _BYTE_STRING else raw.decode(encoding, "surrogateescape")
                    )
            elif type_id == _DATE_TIME:
                (ticks,) = _INT64.unpack_from(body, pos + 1)
                pos += 9
                value = to_datetime(ticks)
                variant_type = ua.VariantType.DateTime
            elif type_id == _NULL:
                pos += 1
            else:
                buffer = Buffer(body, pos)
                variant = variant_from_binary(buffer)
                pos = int(buffer.cur_pos)
        if variant is None:
            variant = new(_Variant)
            variant.Value = value
            variant.VariantType = variant_type
            variant.Dimensions = None
            variant.is_array = False
        status = 0  # an absent StatusCode is Good (Part 6, 5.2.2.17)
        if mask & _HAS_STATUS:
            (status,) = _UINT32.unpack_from(body, pos)
            pos += 4
        source = server = None
        source_picoseconds = server_picoseconds = None
        # Servers often stamp many values alike: reuse the last conversion.
        if mask & _HAS_SOURCE_TIME:
            (source_ticks,) = _INT64.unpack_from(body, pos)
            pos += 8
            if source_ticks != last_source_ticks:
                last_source_ticks, last_source = source_ticks, to_datetime(source_ticks)
            source = last_source
        if mask & _HAS_SOURCE_PICOSECONDS:
            (source_picoseconds,) = _UINT16.unpack_from(body, pos)
            pos += 2
        if mask & _HAS_SERVER_TIME:
            (server_ticks,) = _INT64.unpack_from(body, pos)
            pos += 8
            if server_ticks != last_server_ticks:
                last_server_ticks, last_server = server_ticks, to_datetime(server_ticks)
            server = last_server
        if mask & _HAS_SERVER_PICOSECONDS:
            (server_picoseconds,) = _UINT16.unpack_from(body, pos)
            pos += 2
        # Typed Any: asyncua annotates these fields with its marker classes (ua.UInt32,
        # ua.DateTime...), which the plain values asyncua's own decoder stores are not.
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
    if pos > end:
        raise ResponseDecodingError(f"DataValues end at byte {pos} of a {end}-byte body")
    return results, pos


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
