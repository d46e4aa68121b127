"""The Read service of a simulated device's OPC UA server, served from the request's bytes.

The center polls every point of every device with Read requests of a few hundred nodes each.
asyncua decodes such a request into a NodeId and a QualifiedName object per node and encodes
every value of the response anew on every read, some 25 µs of CPU per value. For the common
request this module does the same work on the bytes themselves, several times cheaper:

- The ReadParameters (Part 4 5.10.2 Read) are parsed with ``struct`` (Part 6 5.2 binary encoding),
  and a point is recognised by the encoded bytes of its NodeId: no object is built per node.
- The device's faults are carried out before the values are read, by the same hook the server
  runs before a Read asyncua serves (``before_read``): REFUSING, OFFLINE, SLOW and ERROR behave
  exactly alike on both paths.
- Each value is read from the address space as asyncua's attribute service reads it; its binary
  encoding (Value, StatusCode and source time, Part 6 5.2.2.17) is kept with the point as long as
  the point holds that same ``SharedDataValue``. A served value is never changed and a publish
  replaces it, so a value is encoded once however often it is read, and a read after a publish
  always encodes the new one. The ServerTimestamp, the time of the Read, is added per response.
- The ReadResponse is framed by the connection's secure channel exactly as asyncua frames any
  response (signed, or signed and encrypted, as the channel's security mode asks).

The fast path serves a Read on an activated session whose user the channel's permission rules
allow to read, when every node asks for the Value attribute (Part 4 7.24 ReadValueId) of a
served point, without IndexRange and without DataEncoding. Everything else goes to asyncua's own
path unchanged, which decodes the same bytes itself: other services, other attributes, nodes
that are no point (the Server object, a point's properties, unknown nodes), an IndexRange or a
DataEncoding, an empty NodesToRead, a session not (yet) activated, a user refused, and any
body this parser does not read in full (truncated, trailing bytes, a NodeId encoding with
ExpandedNodeId flags, a TimestampsToReturn outside its enumeration).

Both paths answer alike, as ``plc_sim.servers.opcua.read_rules`` says (Part 4 5.10.2): the
parameters checked (MaxNodesPerRead enforced), the timestamps TimestampsToReturn asks for, the
ServerTimestamp being the time of the Read. The transport's limits on message size and chunk
count apply before either path sees the request.

The processor also guards sessions (Part 4 5.6.2 CreateSession, 5.6.3 ActivateSession): on a
secure-only server none is created or activated over an unsecured channel, and with a client
trust list only for a client whose channel certificate is in it.

asyncua makes a ``UaProcessor`` for each new connection and tells the internal server's list of
connections about it before reading a byte (``DeviceInternalServer.connection_listener``); the
device server then puts a ``FastReadProcessor`` in its place (``ReadFastPath.attach``), which
handles Read requests itself and hands every other message to asyncua's processor code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.common.connection import TransportLimits
from asyncua.common.utils import Buffer
from asyncua.server.binary_server_asyncio import OPCUAProtocol
from asyncua.server.internal_server import InternalServer
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.ua_binary import (
    create_uatype_serializer,
    nodeid_to_binary,
    struct_to_binary,
    to_binary,
)
from asyncua.ua.uaerrors import UaStatusCodeError

from plc_sim.servers.opcua.nodes import ServedPoint, SharedDataValue, numeric_node
from plc_sim.servers.opcua.read_rules import WITH_SERVER, WITH_SOURCE, check_read
from plc_sim.servers.opcua.security import ClientTrustList

_log = logging.getLogger(__name__)

BeforeRead = Callable[[], Awaitable[None]]
"""Carries out the device's faults before a client's Read is served (may wait, or never end)."""

_READ_REQUEST = numeric_node(ObjectIds.ReadRequest_Encoding_DefaultBinary)
_SESSION_REQUESTS = frozenset(
    {
        numeric_node(ObjectIds.CreateSessionRequest_Encoding_DefaultBinary),
        numeric_node(ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary),
    }
)
_READ_RESPONSE_TYPE_ID = nodeid_to_binary(
    ua.FourByteNodeId(ua.Int32(ObjectIds.ReadResponse_Encoding_DefaultBinary))
)
"""Part 6 5.2.9 Messages: a message body starts with the NodeId of its DataTypeEncoding."""

_VALUE = AttributeIds.Value
_TIMESTAMPS_TO_RETURN_MAX = max(ua.TimestampsToReturn)
"""Part 4 7.35 TimestampsToReturn: an enumeration of Source … Invalid (0 … 4)."""

_INT32 = struct.Struct("<i")
_UINT32 = struct.Struct("<I")
_PARAMETERS = struct.Struct("<dii")
"""MaxAge (Duration, a Double), TimestampsToReturn (an enumeration: Int32), then the Int32
length of the NodesToRead array (Part 6 5.2.5: -1 is a null array)."""
_QUALIFIED_NAME = struct.Struct("<Hi")
"""Part 6 5.2.2.13: NamespaceIndex (UInt16), then the Name's Int32 length."""

_STRING_NODE_IDS = (0x03, 0x05)
"""Part 6 5.2.2.9: String and ByteString NodeIds: a UInt16 namespace, then a length and bytes."""
_FIXED_NODE_ID_SIZES = {0x00: 2, 0x01: 4, 0x02: 7, 0x04: 19}
"""Part 6 5.2.2.9: the encoded size of TwoByte, FourByte, Numeric and Guid NodeIds. The
ExpandedNodeId flags (0x40, 0x80) have no place in a NodeId and are not accepted."""
_SMALLEST_READ_VALUE_ID = 2 + 4 + 4 + 6
"""A TwoByte NodeId, the AttributeId, a null IndexRange and a null DataEncoding."""
_PLAIN_VALUE_TAIL = _UINT32.pack(_VALUE) + _INT32.pack(-1) + _QUALIFIED_NAME.pack(0, -1)
"""What follows the NodeId in a ReadValueId of the Value attribute with a null IndexRange and
a null DataEncoding, as clients (asyncua's among them) encode it."""
_NO_DIAGNOSTICS = _INT32.pack(0)
"""An empty DiagnosticInfos array, as asyncua answers every Read (Part 4 5.10.2 Read)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MalformedReadRequest(ValueError):
    """ReadParameters this parser does not read in full; asyncua is left to answer them."""


@dataclass(frozen=True, slots=True)
class ReadRequestView:
    """The parts of a Read request's parameters (Part 4 5.10.2 Read) the fast path looks at."""

    max_age: float
    timestamps_to_return: int
    node_ids: list[bytes]
    """Each ReadValueId's NodeId, as its binary encoding (Part 6 5.2.2.9)."""
    attribute_ids: list[int]
    plain: bool
    """True when no ReadValueId has an IndexRange or a DataEncoding (both null or empty)."""


def parse_read_parameters(data: bytes) -> ReadRequestView:
    """The parameters of a ReadRequest body after its RequestHeader (MalformedReadRequest)."""
    try:
        return _parse(data)
    except (struct.error, IndexError) as err:
        raise MalformedReadRequest("the ReadParameters end before their last field") from err


def _length(encoded: int) -> int:
    """The byte count of a String or ByteString body from its Int32 length (Part 6 5.2.2.4)."""
    if encoded < -1:
        raise MalformedReadRequest(f"string length {encoded}")
    return encoded if encoded > 0 else 0


def _parse(data: bytes) -> ReadRequestView:
    size = len(data)
    max_age, timestamps, count = _PARAMETERS.unpack_from(data, 0)
    if not 0 <= timestamps <= _TIMESTAMPS_TO_RETURN_MAX:
        raise MalformedReadRequest(f"TimestampsToReturn {timestamps}")
    pos = _PARAMETERS.size
    if count < 0 or count * _SMALLEST_READ_VALUE_ID > size - pos:
        raise MalformedReadRequest(f"{count} nodes to read in {size - pos} bytes")
    node_ids: list[bytes] = []
    attribute_ids: list[int] = []
    plain = True
    unpack_int32 = _INT32.unpack_from
    for _ in range(count):
        start = pos
        kind = data[pos]
        if kind in _STRING_NODE_IDS:
            length = unpack_int32(data, pos + 3)[0]
            pos += 7 + (length if length > 0 else _length(length))
        else:
            fixed = _FIXED_NODE_ID_SIZES.get(kind)
            if fixed is None:
                raise MalformedReadRequest(f"NodeId encoding {kind:#04x}")
            pos += fixed
        node_ids.append(data[start:pos])
        if data.startswith(_PLAIN_VALUE_TAIL, pos):
            attribute_ids.append(_VALUE)
            pos += len(_PLAIN_VALUE_TAIL)
            continue
        attribute_ids.append(_UINT32.unpack_from(data, pos)[0])
        index_range = unpack_int32(data, pos + 4)[0]
        pos += 8 + _length(index_range)
        namespace, name = _QUALIFIED_NAME.unpack_from(data, pos)
        pos += _QUALIFIED_NAME.size + _length(name)
        plain = plain and index_range <= 0 and namespace == 0 and name <= 0
    if pos != size:
        raise MalformedReadRequest(f"the ReadParameters take {pos} bytes of {size}")
    return ReadRequestView(max_age, timestamps, node_ids, attribute_ids, plain)


_SCALAR_TYPES = (
    ua.VariantType.Null,
    ua.VariantType.Boolean,
    ua.VariantType.SByte,
    ua.VariantType.Byte,
    ua.VariantType.Int16,
    ua.VariantType.UInt16,
    ua.VariantType.Int32,
    ua.VariantType.UInt32,
    ua.VariantType.Int64,
    ua.VariantType.UInt64,
    ua.VariantType.Float,
    ua.VariantType.Double,
    ua.VariantType.String,
    ua.VariantType.DateTime,
    ua.VariantType.ByteString,
)
_SCALARS: dict[ua.VariantType, tuple[bytes, Callable[[Any], bytes]]] = {
    vtype: (bytes((vtype.value,)), create_uatype_serializer(vtype)) for vtype in _SCALAR_TYPES
}
"""Variant types encoded here: the Variant's encoding byte of a scalar (Part 6 5.2.2.16: the
built-in type's id, no array bits) and asyncua's own encoder of the value."""
_HAS_VALUE, _HAS_STATUS, _HAS_SOURCE_TIME, _HAS_SERVER_TIME = 0x01, 0x02, 0x04, 0x08
_HAS_SOURCE_PICOSECONDS, _HAS_SERVER_PICOSECONDS = 0x10, 0x20
"""Part 6 5.2.2.17: the DataValue encoding mask's bits of the fields present."""
_INT64 = struct.Struct("<q")
_UINT16 = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class EncodedValue:
    """A DataValue's encoding in the parts a Read puts together (Part 6 5.2.2.17): the fields
    are Value, StatusCode, SourceTimestamp, SourcePicoseconds, ServerTimestamp,
    ServerPicoseconds, each present when its mask bit is set."""

    mask: int
    """The mask bits of the Value and the StatusCode."""
    body: bytes
    """The Variant and the StatusCode."""
    source_mask: int
    """The mask bits of the SourceTimestamp and SourcePicoseconds."""
    source: bytes
    """The SourceTimestamp and SourcePicoseconds."""


def encode_value(value: ua.DataValue) -> EncodedValue:
    """A DataValue's Value, StatusCode and source time in binary (Part 6 5.2.2.16-17).

    A scalar of a primitive type (what a point holds) is encoded here, any other Variant by
    asyncua's own encoder.
    """
    variant = value.Value
    status = value.StatusCode
    scalar = _SCALARS.get(variant.VariantType) if variant is not None else None
    body = b""
    if (
        scalar is not None
        and variant is not None
        and not variant.is_array
        and variant.Dimensions is None
        and not isinstance(variant.Value, list | tuple)
    ):
        prefix, pack = scalar
        with contextlib.suppress(struct.error, TypeError, OverflowError, AttributeError):
            body = prefix + pack(variant.Value)
    if body:
        mask = _HAS_VALUE
        if status is not None:
            mask |= _HAS_STATUS
            body += _UINT32.pack(status.value)
    else:
        # Anything else, or a value its type cannot hold: asyncua's encoder (and its errors).
        fields: Any = {"StatusCode": status}
        encoded = to_binary(ua.DataValue, ua.DataValue(variant, **fields))
        mask, body = encoded[0], encoded[1:]
    source_mask = 0
    source = b""
    if value.SourceTimestamp is not None:
        source_mask |= _HAS_SOURCE_TIME
        source = _INT64.pack(ua.datetime_to_win_epoch(value.SourceTimestamp))
    if value.SourcePicoseconds is not None:
        source_mask |= _HAS_SOURCE_PICOSECONDS
        source += _UINT16.pack(value.SourcePicoseconds)
    return EncodedValue(mask, body, source_mask, source)


def encode_data_value(value: ua.DataValue) -> bytes:
    """A whole DataValue's binary encoding, the fields in Part 6 5.2.2.17's order."""
    encoded = encode_value(value)
    mask = encoded.mask | encoded.source_mask
    server = b""
    if value.ServerTimestamp is not None:
        mask |= _HAS_SERVER_TIME
        server = _INT64.pack(ua.datetime_to_win_epoch(value.ServerTimestamp))
    if value.ServerPicoseconds is not None:
        mask |= _HAS_SERVER_PICOSECONDS
        server += _UINT16.pack(value.ServerPicoseconds)
    return b"".join((bytes((mask,)), encoded.body, encoded.source, server))


class _PointValue:
    """A served point's Value: its NodeId, and the last DataValue read with its encoding."""

    __slots__ = ("both", "encoded", "node_id", "value")

    def __init__(self, node_id: ua.NodeId) -> None:
        self.node_id = node_id
        self.value: ua.DataValue | None = None
        self.encoded = EncodedValue(0, b"", 0, b"")
        self.both = b""
        """The value with both timestamps asked (the common Read), but the ServerTimestamp."""


@dataclass(frozen=True, slots=True)
class PlannedRead:
    """A Read the fast path serves: its parameters and the points whose Value it asks."""

    request: ReadRequestView
    points: list[_PointValue]


class ReadFastPath:
    """Serves the plain Reads of one device's points, on every connection of its server."""

    def __init__(self, points: Iterable[ServedPoint], before_read: BeforeRead) -> None:
        """Serve ``points``; ``before_read`` runs before each Read is answered."""
        self._points = {
            nodeid_to_binary(point.node_id): _PointValue(point.node_id) for point in points
        }
        self._before_read = before_read
        self.server_time: Callable[[], datetime] = _utc_now
        """The server's current time: the ServerTimestamp of every value a Read returns."""
        self.max_nodes_per_read = 0
        """The MaxNodesPerRead the server advertises (0: no limit), enforced on every Read."""
        self.secure_only = False
        """Refuse sessions over an unsecured channel (the server offers no None endpoint)."""
        self.trust_list: ClientTrustList | None = None
        """Refuse sessions of clients whose channel certificate is not in it (None: any)."""
        self.enabled = True
        """False: every Read goes to asyncua's own path."""
        self.served = 0
        """Reads answered here."""
        self.declined = 0
        """Reads handed to asyncua's own path."""

    def attach(self, transport: asyncio.BaseTransport) -> None:
        """Serve a new connection's Reads here: replace the processor asyncua just made for it."""
        protocol = transport.get_protocol()
        if not isinstance(protocol, OPCUAProtocol) or protocol.processor is None:
            _log.warning("OPC UA connection without a processor: its Reads are served by asyncua")
            return
        if isinstance(protocol.processor, FastReadProcessor):
            return
        if protocol.processor.session is not None:
            _log.warning("OPC UA connection already in a session: its Reads are served by asyncua")
            return
        processor = FastReadProcessor(protocol.iserver, transport, protocol.limits, self)
        processor.set_policies(protocol.policies)  # type: ignore[no-untyped-call]
        protocol.processor = processor

    def plan(self, body: Buffer) -> PlannedRead | None:
        """The points a Read request's body asks the Value of; None when asyncua serves it."""
        if not self.enabled:
            return None
        try:
            request = parse_read_parameters(bytes(body))
        except MalformedReadRequest as err:
            _log.debug("OPC UA Read left to asyncua: %s", err)
            return None
        attribute_ids = request.attribute_ids
        if not (
            request.plain and attribute_ids and attribute_ids.count(_VALUE) == len(attribute_ids)
        ):
            return None
        points = self._points
        planned: list[_PointValue] = []
        for node_id in request.node_ids:
            point = points.get(node_id)
            if point is None:
                return None
            planned.append(point)
        return PlannedRead(request, planned)

    async def before_read(self) -> None:
        """Carry out the device's faults, as before a Read asyncua serves."""
        await self._before_read()

    def check(self, planned: PlannedRead) -> None:
        """Raise the ServiceResult of a Read whose parameters must be refused (``read_rules``)."""
        request = planned.request
        check_read(
            len(planned.points),
            request.max_age,
            request.timestamps_to_return,
            self.max_nodes_per_read,
        )

    def response(self, iserver: InternalServer, request_handle: int, planned: PlannedRead) -> bytes:
        """The encoded ReadResponse (Part 4 5.10.2 Read) with the points' current values, the
        timestamps TimestampsToReturn asks for (Part 4 7.40), the ServerTimestamp being now."""
        # asyncua's AttributeService.read: each value as the address space holds it.
        read = iserver.aspace.read_attribute_value
        header = ua.ResponseHeader()
        header.RequestHandle = request_handle
        parts = [_READ_RESPONSE_TYPE_ID, struct_to_binary(header), _INT32.pack(len(planned.points))]
        append = parts.append
        timestamps = planned.request.timestamps_to_return
        with_source = timestamps in WITH_SOURCE
        server = b""
        if timestamps in WITH_SERVER:
            server = _INT64.pack(ua.datetime_to_win_epoch(self.server_time()))
        both = with_source and server
        for point in planned.points:
            value = read(point.node_id, _VALUE)
            if value is not point.value:
                encoded = encode_value(value)
                both_mask = encoded.mask | encoded.source_mask | _HAS_SERVER_TIME
                point.encoded = encoded
                point.both = bytes((both_mask,)) + encoded.body + encoded.source
                # Only a value nobody changes may be known by its identity.
                point.value = value if type(value) is SharedDataValue else None
            if both:
                append(point.both)
                append(server)
                continue
            encoded = point.encoded
            mask = encoded.mask | (_HAS_SERVER_TIME if server else 0)
            if with_source:
                mask |= encoded.source_mask
            append(bytes((mask,)))
            append(encoded.body)
            if with_source:
                append(encoded.source)
            append(server)
        append(_NO_DIAGNOSTICS)
        return b"".join(parts)


class FastReadProcessor(UaProcessor):
    """asyncua's processor of one connection, with plain Reads of points served by the fast
    path; every other message is processed by asyncua's code as it is."""

    def __init__(
        self,
        internal_server: InternalServer,
        transport: asyncio.BaseTransport,
        limits: TransportLimits,
        reads: ReadFastPath,
    ) -> None:
        super().__init__(internal_server, transport, limits)
        self._reads = reads

    async def _process_message(
        self, typeid: ua.NodeId, requesthdr: ua.RequestHeader, seqhdr: Any, body: Buffer
    ) -> bool:
        """Serve a plain Read of points here; hand anything else to asyncua untouched."""
        if typeid in _SESSION_REQUESTS and self._reads.secure_only and self._unsecured():
            # asyncua opens a None channel for discovery (GetEndpoints, Part 4 5.4.4) even when
            # it offers no None endpoint, and would create and activate sessions over it: a
            # password would travel in clear. A session must use a channel whose security an
            # offered endpoint has (Part 4 5.6.2 CreateSession, 5.6.3 ActivateSession).
            raise UaStatusCodeError(StatusCodes.BadSecurityModeRejected)  # type: ignore[no-untyped-call]
        if typeid in _SESSION_REQUESTS and not self._trusted():
            # The certificate that secures the channel, not the one CreateSession names (which
            # a client may leave empty, and asyncua then checks nothing).
            raise UaStatusCodeError(StatusCodes.BadCertificateUntrusted)  # type: ignore[no-untyped-call]
        if typeid != _READ_REQUEST:
            return await self._by_asyncua(typeid, requesthdr, seqhdr, body)
        reads = self._reads
        session = self.session
        # What asyncua checks before it serves a Read: a session activated on this channel
        # (Part 4 5.6.3 ActivateSession) and a user the channel's permission rules let read.
        # Failing either, asyncua gives the answer.
        if session is None or not session.is_activated() or not self._permitted(typeid, body):
            reads.declined += 1
            return await self._by_asyncua(typeid, requesthdr, seqhdr, body)
        planned = reads.plan(body)
        if planned is None:
            reads.declined += 1
            return await self._by_asyncua(typeid, requesthdr, seqhdr, body)
        reads.check(planned)  # a refused Read raises: asyncua answers it with a ServiceFault
        reads.served += 1
        # As asyncua notes every request of a session (its timeout, Part 4 5.6.2 CreateSession).
        self.session_last_activity = time.monotonic()
        session.touch()
        await reads.before_read()
        response = reads.response(self.iserver, requesthdr.RequestHandle, planned)
        # Framed on the secure channel as UaProcessor.send_response frames every response.
        self._transport.write(
            self._connection.message_to_binary(response, request_id=seqhdr.RequestId)
        )
        return True

    async def _by_asyncua(
        self, typeid: ua.NodeId, requesthdr: ua.RequestHeader, seqhdr: Any, body: Buffer
    ) -> bool:
        """asyncua's own processing of the message, from the body as it was received."""
        return bool(
            await super()._process_message(  # type: ignore[no-untyped-call]
                typeid, requesthdr, seqhdr, body
            )
        )

    def _trusted(self) -> bool:
        """Whether the channel's client certificate is trusted (always, without a trust list)."""
        trust_list = self._reads.trust_list
        if trust_list is None:
            return True
        peer = self._connection.security_policy.peer_certificate
        return trust_list.trusts(bytes(peer or b""))

    def _unsecured(self) -> bool:
        """Whether this connection's secure channel neither signs nor encrypts (Part 4 7.20)."""
        mode = getattr(self._connection.security_policy, "Mode", ua.MessageSecurityMode.None_)
        return bool(mode == ua.MessageSecurityMode.None_)

    def _permitted(self, typeid: ua.NodeId, body: Buffer) -> bool:
        """Whether the channel's permission rules let the session's user make this request."""
        permissions = self._connection.security_policy.permissions
        if permissions is None or self.session is None:
            return True
        allowed = permissions.check_validity(  # type: ignore[no-untyped-call]
            self.session.user, typeid, body
        )
        return allowed is not False
