"""Publish responses (Part 4, 5.13.5) decoded with DataValues in Part 6's field order.

asyncua 2.1 decodes a DataValue's SourcePicoseconds after its ServerTimestamp, against OPC UA
Part 6, 5.2.2.17, so a server that sends both (node-opcua does, for every value) would have
its data-change notifications decoded into wrong timestamps. ``SpecPublishSession`` is the
session the driver gives its asyncua client: the same publish loop, with each
PublishResponse decoded by ``decode_publish_response``, whose DataChangeNotifications'
DataValues go through ``drivers.opcua.read_codec.decode_data_values``; every other part of
the message (header, other notification types, diagnostics) through asyncua's codec.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from asyncua import ua
from asyncua.client.ua_session import UaSession
from asyncua.common.utils import Buffer
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.ua_binary import extensionobject_from_binary, struct_from_binary
from asyncua.ua.uaerrors import UaError, UaStructParsingError

from drivers.opcua.read_codec import ResponseDecodingError, decode_data_values, to_datetime

_log = logging.getLogger(__name__)

_INT32 = struct.Struct("<i")
_UINT32 = struct.Struct("<I")
_SEQUENCE_AND_TIME = struct.Struct("<Iq")  # NotificationMessage: SequenceNumber, PublishTime


def _four_byte_node_id(identifier: int) -> bytes:
    return struct.pack("<BBH", ua.NodeIdType.FourByte, 0, identifier)


_PUBLISH_RESPONSE_ID = _four_byte_node_id(ObjectIds.PublishResponse_Encoding_DefaultBinary)
_DATA_CHANGE_ID = _four_byte_node_id(ObjectIds.DataChangeNotification_Encoding_DefaultBinary)
_BINARY_BODY = 0x01  # ExtensionObject encoding byte: a ByteString body (Part 6, 5.2.2.15)


def decode_publish_response(body: bytes) -> ua.PublishResponse:
    """A PublishResponse from its binary body; raise ResponseDecodingError if it does not decode."""
    if not body.startswith(_PUBLISH_RESPONSE_ID):
        return struct_from_binary(ua.PublishResponse, Buffer(body))
    try:
        return _decode(body, len(_PUBLISH_RESPONSE_ID))
    except (struct.error, IndexError, ValueError, UaError) as err:
        if isinstance(err, ResponseDecodingError):
            raise
        raise ResponseDecodingError(f"PublishResponse does not decode: {err}") from err


def _decode(body: bytes, pos: int) -> ua.PublishResponse:
    buffer = Buffer(body, pos)
    header = struct_from_binary(ua.ResponseHeader, buffer)
    pos = int(buffer.cur_pos)
    (subscription_id,) = _UINT32.unpack_from(body, pos)
    available, pos = _uint32_array(body, pos + 4)
    more = body[pos] != 0
    sequence_number, publish_ticks = _SEQUENCE_AND_TIME.unpack_from(body, pos + 1)
    pos += 13
    (count,) = _INT32.unpack_from(body, pos)
    pos += 4
    notifications: list[Any] = []
    for _ in range(max(count, 0)):
        notification, pos = _notification(body, pos)
        notifications.append(notification)
    codes, pos = _uint32_array(body, pos)
    buffer = Buffer(body, pos)
    diagnostics = _diagnostic_infos(buffer)
    message = ua.NotificationMessage(
        SequenceNumber=sequence_number,
        PublishTime=to_datetime(publish_ticks),
        NotificationData=notifications,
    )
    fields: Any = {
        "SubscriptionId": subscription_id,
        "AvailableSequenceNumbers": available,
        "MoreNotifications": more,
        "NotificationMessage": message,
        "Results": [_status_code(code) for code in codes],
        "DiagnosticInfos": diagnostics,
    }
    return ua.PublishResponse(ResponseHeader=header, Parameters=ua.PublishResult(**fields))


def _notification(body: bytes, pos: int) -> tuple[Any, int]:
    """One NotificationData ExtensionObject (Part 4, 7.25); return it and where it ends."""
    if body.startswith(_DATA_CHANGE_ID, pos) and body[pos + 4] == _BINARY_BODY:
        (length,) = _INT32.unpack_from(body, pos + 5)
        start = pos + 9
        end = start + length
        if length < 0 or end > len(body):
            raise ResponseDecodingError(f"a DataChangeNotification of {length} bytes overruns")
        # DataChangeNotification (Part 4, 7.25.2): MonitoredItems, then DiagnosticInfos.
        (count,) = _INT32.unpack_from(body, start)
        position = start + 4
        items: list[ua.MonitoredItemNotification] = []
        for _ in range(max(count, 0)):
            (handle,) = _UINT32.unpack_from(body, position)
            (value,), position = decode_data_values(body, position + 4, 1)
            items.append(ua.MonitoredItemNotification(ClientHandle=handle, Value=value))
        buffer = Buffer(body, position, end - position)
        diagnostics = _diagnostic_infos(buffer)
        return ua.DataChangeNotification(MonitoredItems=items, DiagnosticInfos=diagnostics), end
    buffer = Buffer(body, pos)
    notification = extensionobject_from_binary(buffer)
    return notification, int(buffer.cur_pos)


def _status_code(code: Any) -> ua.StatusCode:
    # A plain int, as asyncua's decoder stores it (its annotation names a marker class).
    return ua.StatusCode(code)


def _uint32_array(body: bytes, pos: int) -> tuple[list[int], int]:
    (count,) = _INT32.unpack_from(body, pos)
    pos += 4
    if count <= 0:  # -1 is a null array (Part 6, 5.2.5): none
        return [], pos
    values = list(struct.unpack_from(f"<{count}I", body, pos))
    return values, pos + 4 * count


def _diagnostic_infos(buffer: Buffer) -> list[ua.DiagnosticInfo]:
    (count,) = _INT32.unpack(buffer.read(4))
    return [struct_from_binary(ua.DiagnosticInfo, buffer) for _ in range(max(count, 0))]


class SpecPublishSession(UaSession):
    """asyncua's session whose publish responses are decoded by ``decode_publish_response``."""

    async def publish(self, acks: list[ua.SubscriptionAcknowledgement]) -> ua.PublishResponse:
        """Send a PublishRequest (Part 4, 5.13.5) and decode its answer per Part 6."""
        request = ua.PublishRequest()
        request.Parameters.SubscriptionAcknowledgements = acks if acks else []
        # Timeout 0: a publish request waits at the server until there is something to send.
        data = await self._send_request(request, timeout=0)
        try:
            return decode_publish_response(bytes(data))
        except UaError as err:
            # asyncua's publish loop drops an undecodable response and keeps publishing: one
            # line says so (a device's malformed message is a field fault, not a crash).
            _log.warning("OPC UA publish response dropped: %s", err)
            raise UaStructParsingError(str(err)) from err
