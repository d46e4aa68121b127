"""Publish responses decoded with DataValues in OPC UA Part 6, 5.2.2.17's field order."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.ua_binary import extensionobject_to_binary, struct_from_binary, struct_to_binary
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.opcua.publish_codec import decode_publish_response
from drivers.opcua.read_codec import ResponseDecodingError
from tests.drivers.opcua.test_opcua_read_codec import (
    int32,
    python_data_values,
    shape,
    spec_encoding,
)

PUBLISH_RESPONSE_ID = struct.pack("<BBH", 1, 0, ObjectIds.PublishResponse_Encoding_DefaultBinary)
DATA_CHANGE_ID = struct.pack("<BBH", 1, 0, ObjectIds.DataChangeNotification_Encoding_DefaultBinary)
PUBLISH_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def spec_publish_body(values: list[ua.DataValue], status: int) -> bytes:
    """A PublishResponse with one DataChangeNotification (values in Part 6's order) and one
    StatusChangeNotification, written field by field (Part 4, 5.13.5 and 7.25)."""
    items = b"".join(
        struct.pack("<I", handle) + spec_encoding(value) for handle, value in enumerate(values)
    )
    change = int32(len(values)) + items + int32(-1)
    status_change = ua.StatusChangeNotification(Status=ua.StatusCode(ua.UInt32(status)))
    return b"".join(
        (
            PUBLISH_RESPONSE_ID,
            struct_to_binary(ua.ResponseHeader()),
            struct.pack("<I", 42),  # SubscriptionId
            int32(2) + struct.pack("<II", 6, 7),  # AvailableSequenceNumbers
            b"\x01",  # MoreNotifications
            struct.pack("<Iq", 7, int(ua.datetime_to_win_epoch(PUBLISH_TIME))),
            int32(2),
            DATA_CHANGE_ID + b"\x01" + int32(len(change)) + change,
            extensionobject_to_binary(status_change),
            int32(1) + struct.pack("<I", 0),  # Results
            int32(-1),  # DiagnosticInfos
        )
    )


def asyncua_publish(values: list[ua.DataValue], status: int) -> ua.PublishResponse:
    """The same response as asyncua's codec makes and reads it."""
    fields: dict[str, object] = {
        "SubscriptionId": 42,
        "AvailableSequenceNumbers": [6, 7],
        "MoreNotifications": True,
        "NotificationMessage": ua.NotificationMessage(
            SequenceNumber=7,
            PublishTime=PUBLISH_TIME,
            NotificationData=[
                ua.DataChangeNotification(
                    MonitoredItems=[
                        ua.MonitoredItemNotification(ClientHandle=handle, Value=value)
                        for handle, value in enumerate(values)
                    ]
                ),
                ua.StatusChangeNotification(Status=ua.StatusCode(ua.UInt32(status))),
            ],
        ),
        "Results": [ua.StatusCode(ua.UInt32(0))],
    }
    message = ua.PublishResponse(Parameters=ua.PublishResult(**fields))  # type: ignore[arg-type]
    return struct_from_binary(ua.PublishResponse, Buffer(struct_to_binary(message)))


@settings(max_examples=100)
@given(st.lists(python_data_values(), max_size=6), st.integers(0, 2**32 - 1))
def test_notifications_decode_per_part_6(values: list[ua.DataValue], status: int) -> None:
    decoded = decode_publish_response(spec_publish_body(values, status))
    expected = asyncua_publish(values, status)
    # The response header's timestamp is the encoder's now: compare the parameters.
    assert shape(decoded.Parameters) == shape(expected.Parameters)


def test_a_notification_with_both_picoseconds_keeps_both_timestamps() -> None:
    source = datetime(2026, 3, 1, 11, 59, 59, 500_000, tzinfo=UTC)
    server = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    times: Any = {
        "SourceTimestamp": source,
        "ServerTimestamp": server,
        "SourcePicoseconds": 123,
        "ServerPicoseconds": 456,
    }
    value = ua.DataValue(ua.Variant(3.25, ua.VariantType.Double), **times)
    decoded = decode_publish_response(spec_publish_body([value], 0))
    change = decoded.Parameters.NotificationMessage.NotificationData[0]
    assert isinstance(change, ua.DataChangeNotification)
    (item,) = change.MonitoredItems
    assert (item.Value.SourceTimestamp, item.Value.ServerTimestamp) == (source, server)
    assert (item.Value.SourcePicoseconds, item.Value.ServerPicoseconds) == (123, 456)


def test_a_truncated_response_fails_with_a_decoding_error() -> None:
    body = spec_publish_body([ua.DataValue(ua.Variant(1.0, ua.VariantType.Double))], 0)
    for cut in (len(PUBLISH_RESPONSE_ID) + 3, len(body) - 30, len(body) - 1):
        try:
            decode_publish_response(body[:cut])
        except ResponseDecodingError:
            continue
        raise AssertionError(f"a body cut at {cut} decoded")
