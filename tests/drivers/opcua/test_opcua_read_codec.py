"""The Read decoder against asyncua's own codec, and over a socket to a real server.

asyncua 2.1 reads a DataValue's SourcePicoseconds after its ServerTimestamp, against OPC UA
Part 6, 5.2.2.17. The reference here is asyncua's decoder fed the same fields in the order it
reads them, so every other part of the decoding is still compared with asyncua's.
"""

from __future__ import annotations

import dataclasses
import struct
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.utils import Buffer
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.ua_binary import (
    struct_from_binary,
    struct_to_binary,
    variant_from_binary,
    variant_to_binary,
)
from asyncua.ua.uaerrors import UaStatusCodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from controlcenter.clock import WallClock
from controlcenter.model import DataType, TagDef
from drivers.opcua import OpcUaDeviceConfig, OpcUaDriver, read_codec, session
from drivers.opcua.read_codec import (
    ReadEncodingError,
    ResponseDecodingError,
    decode_read_response,
    encode_node_id,
    prepare_read,
)
from drivers.opcua.session import make_node_id, send_read
from drivers.opcua.values import to_sample
from tests.drivers.opcua.opcua_test_server import PlantServer

pytestmark = pytest.mark.timeout(60)

READ_RESPONSE_ID = struct.pack("<BBH", 1, 0, ObjectIds.ReadResponse_Encoding_DefaultBinary)
FIXED_SIZES = {2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 4, 8: 8, 9: 8, 10: 4, 11: 8}
"""Byte sizes of the fixed-size numeric built-in types, by type id (Part 6, 5.2.2.2-3)."""
LATEST_TICKS = 2_650_467_743_990_000_000  # 9999-12-31 23:59:59 UTC in 100 ns since 1601
STATUS_CODES = st.sampled_from(
    [
        StatusCodes.Good,
        StatusCodes.Good | 0x0400,
        StatusCodes.UncertainLastUsableValue,
        StatusCodes.BadSensorFailure,
        StatusCodes.BadNodeIdUnknown,
    ]
) | st.integers(0, 2**32 - 1)
TICKS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, LATEST_TICKS + 10),
    st.sampled_from([0, -1, LATEST_TICKS - 1, LATEST_TICKS, 2**63 - 1]),
)


@dataclass(frozen=True)
class WireValue:
    """One DataValue in Part 6's field order, the same fields in asyncua's order, and whether
    its Variant is decoded without asyncua."""

    data: bytes
    asyncua_order: bytes
    fast: bool


def tail_size(mask: int) -> int:
    """Bytes of a DataValue's timestamps and picoseconds (Part 6, 5.2.2.17)."""
    return (
        8 * bool(mask & 0x04)
        + 8 * bool(mask & 0x08)
        + 2 * bool(mask & 0x10)
        + 2 * bool(mask & 0x20)
    )


def reorder_tail(mask: int, tail: bytes, *, to_spec: bool) -> bytes:
    """Timestamps and picoseconds moved between asyncua's order and Part 6's."""
    fields = {}
    pos = 0
    order_in = (0x04, 0x08, 0x10, 0x20) if to_spec else (0x04, 0x10, 0x08, 0x20)
    order_out = (0x04, 0x10, 0x08, 0x20) if to_spec else (0x04, 0x08, 0x10, 0x20)
    for bit in order_in:
        if mask & bit:
            size = 8 if bit in (0x04, 0x08) else 2
            fields[bit] = tail[pos : pos + size]
            pos += size
    return b"".join(fields[bit] for bit in order_out if bit in fields)


def spec_encoding(value: ua.DataValue) -> bytes:
    """A DataValue in Part 6's field order (asyncua's encoder writes its own order)."""
    encoded = struct_to_binary(value)
    size = tail_size(encoded[0])
    head, tail = encoded[: len(encoded) - size], encoded[len(encoded) - size :]
    return head + reorder_tail(encoded[0], tail, to_spec=True)


def int32(number: int) -> bytes:
    return struct.pack("<i", number)


def asyncua_results(body: bytes) -> list[ua.DataValue]:
    """What asyncua's Read returns for a response body."""
    response = struct_from_binary(ua.ReadResponse, Buffer(body))
    response.ResponseHeader.ServiceResult.check()
    results: list[ua.DataValue] = response.Results
    return results


def shape(value: object) -> object:
    """Everything about a value: types and representations of every field, recursively."""
    if isinstance(value, list | tuple):
        return [shape(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            field.name: shape(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
        return (type(value).__name__, fields)
    return (type(value).__name__, repr(value))


def outcome(decode: Callable[[bytes], list[ua.DataValue]], body: bytes) -> tuple[object, ...]:
    """The decoded values' shape, or the error raised."""
    try:
        return ("values", shape(decode(body)))
    except Exception as err:
        return ("raised", type(err), str(err))


def response(
    values: Sequence[bytes],
    header: ua.ResponseHeader | None = None,
    diagnostics: bytes = int32(-1),
) -> bytes:
    """A ReadResponse body (Part 4, 5.10.2) around encoded DataValues."""
    encoded_header = struct_to_binary(header if header is not None else ua.ResponseHeader())
    return READ_RESPONSE_ID + encoded_header + int32(len(values)) + b"".join(values) + diagnostics


@st.composite
def scalar_variants(draw: st.DrawFn) -> bytes:
    """A scalar Variant of a type the fast decoder handles, any payload (Part 6, 5.2.2.16)."""
    type_id = draw(st.sampled_from([0, 1, *FIXED_SIZES, 12, 13, 15]))
    if type_id == 0:
        return b"\x00"
    if type_id == 1:
        return bytes([1, draw(st.integers(0, 255))])
    if type_id in FIXED_SIZES:
        size = FIXED_SIZES[type_id]
        return bytes([type_id]) + draw(st.binary(min_size=size, max_size=size))
    if type_id == 13:
        return bytes([13]) + struct.pack("<q", draw(TICKS))
    payload = draw(st.none() | st.binary(max_size=24) | st.text(max_size=12).map(str.encode))
    return bytes([type_id]) + (int32(-1) if payload is None else int32(len(payload)) + payload)


UNSUPPORTED_VARIANTS = [
    variant_to_binary(ua.Variant([1.0, 2.0], ua.VariantType.Double)),
    variant_to_binary(ua.Variant([[1, 2], [3, 4]], ua.VariantType.Int32)),
    variant_to_binary(ua.Variant(["a", None], ua.VariantType.String)),
    variant_to_binary(ua.Variant(ua.LocalizedText("on", "en"), ua.VariantType.LocalizedText)),
    variant_to_binary(ua.Variant(uuid.UUID(int=7), ua.VariantType.Guid)),
    variant_to_binary(ua.Variant(ua.StatusCode(ua.UInt32(StatusCodes.BadInternalError)))),
    variant_to_binary(ua.Variant(ua.QualifiedName("q", 2), ua.VariantType.QualifiedName)),
    variant_to_binary(ua.Variant(make_node_id(5, 2), ua.VariantType.NodeId)),
    variant_to_binary(ua.Variant(ua.Range(1.0, 2.0), ua.VariantType.ExtensionObject)),
    bytes([0x80 | 11]) + int32(-1),  # a null Double array
    bytes([30]) + int32(2) + b"ab",  # a type id beyond the built-in types
]


@st.composite
def wire_values(draw: st.DrawFn) -> WireValue:
    """A DataValue (Part 6, 5.2.2.17): any mask, common and uncommon Variants, any fields."""
    mask = draw(st.integers(0, 0x3F))
    undefined_bits = draw(st.sampled_from([0, 0, 0, 0, 0x40, 0x80]))  # reserved: ignored
    fast = True
    parts = [bytes([mask | undefined_bits])]
    if mask & 0x01:
        if draw(st.integers(0, 4)) == 0:
            parts.append(draw(st.sampled_from(UNSUPPORTED_VARIANTS)))
            fast = False
        else:
            parts.append(draw(scalar_variants()))
    if mask & 0x02:
        parts.append(struct.pack("<I", draw(STATUS_CODES)))
    tail = []
    for bit in (0x04, 0x10, 0x08, 0x20):  # Part 6, 5.2.2.17's order
        if mask & bit:
            if bit in (0x04, 0x08):
                tail.append(struct.pack("<q", draw(TICKS)))
            else:
                tail.append(struct.pack("<H", draw(st.integers(0, 0xFFFF))))
    spec_tail = b"".join(tail)
    head = b"".join(parts)
    asyncua_tail = reorder_tail(mask, spec_tail, to_spec=False)
    return WireValue(head + spec_tail, head + asyncua_tail, fast)


def python_data_values() -> st.SearchStrategy[ua.DataValue]:
    """DataValues as a server builds them, of every scalar type the fast decoder handles."""
    times = st.datetimes(
        min_value=datetime(1601, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    )
    integers = [
        (ua.VariantType.SByte, -(2**7), 2**7 - 1),
        (ua.VariantType.Byte, 0, 2**8 - 1),
        (ua.VariantType.Int16, -(2**15), 2**15 - 1),
        (ua.VariantType.UInt16, 0, 2**16 - 1),
        (ua.VariantType.Int32, -(2**31), 2**31 - 1),
        (ua.VariantType.UInt32, 0, 2**32 - 1),
        (ua.VariantType.Int64, -(2**63), 2**63 - 1),
        (ua.VariantType.UInt64, 0, 2**64 - 1),
    ]

    def of(variant_type: ua.VariantType) -> Callable[[object], ua.Variant]:
        return lambda raw: ua.Variant(raw, variant_type)

    variants = st.one_of(
        st.just(ua.Variant()),
        st.booleans().map(of(ua.VariantType.Boolean)),
        *[st.integers(low, high).map(of(kind)) for kind, low, high in integers],
        st.floats(width=32).map(of(ua.VariantType.Float)),
        st.floats().map(of(ua.VariantType.Double)),
        (st.none() | st.text(max_size=12)).map(of(ua.VariantType.String)),
        (st.none() | st.binary(max_size=12)).map(of(ua.VariantType.ByteString)),
        times.map(of(ua.VariantType.DateTime)),
    )
    picoseconds = st.none() | st.integers(0, 9999)

    def data_value(
        variant: ua.Variant,
        status: int | None,
        source: datetime | None,
        server: datetime | None,
        source_picoseconds: int | None,
        server_picoseconds: int | None,
    ) -> ua.DataValue:
        fields: Any = {
            "StatusCode": None if status is None else ua.StatusCode(ua.UInt32(status)),
            "SourceTimestamp": source,
            "ServerTimestamp": server,
            "SourcePicoseconds": source_picoseconds,
            "ServerPicoseconds": server_picoseconds,
        }
        return ua.DataValue(variant, **fields)

    return st.builds(
        data_value,
        variants,
        st.none() | STATUS_CODES,
        st.none() | times,
        st.none() | times,
        picoseconds,
        picoseconds,
    )


def spy_on_asyncua() -> Any:
    """Count the codec's calls of asyncua's Variant decoder."""
    return mock.patch.object(read_codec, "variant_from_binary", wraps=variant_from_binary)


@settings(max_examples=300)
@given(st.lists(wire_values(), max_size=12))
def test_every_data_value_shape_decodes_per_part_6(values: list[WireValue]) -> None:
    body = response([value.data for value in values])
    with spy_on_asyncua() as asyncua_decoder:
        decoded = outcome(decode_read_response, body)
    assert decoded == outcome(asyncua_results, response([v.asyncua_order for v in values]))
    # Only the Variants the fast decoder leaves to asyncua went through asyncua, one by one.
    assert asyncua_decoder.call_count == sum(not value.fast for value in values)


@settings(max_examples=200)
@given(st.lists(python_data_values(), max_size=8))
def test_server_built_values_decode_as_asyncua_decodes_them(values: list[ua.DataValue]) -> None:
    spec_body = response([spec_encoding(value) for value in values])
    asyncua_body = struct_to_binary(ua.ReadResponse(Results=values))
    assert outcome(decode_read_response, spec_body) == outcome(asyncua_results, asyncua_body)


def test_source_picoseconds_before_the_server_timestamp() -> None:
    # node-opcua's normal encoding (mask 0x3D): value, SourceTimestamp, SourcePicoseconds,
    # ServerTimestamp, ServerPicoseconds. asyncua 2.1 reads it as 1601-01-01.
    source = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    server = datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC)
    value = (
        b"\x3d\x0b"
        + struct.pack("<d", 21.5)
        + struct.pack("<qHqH", ticks_of(source), 300, ticks_of(server), 700)
    )
    (decoded,) = decode_read_response(response([value]))
    assert decoded.Value is not None
    assert decoded.Value.Value == 21.5
    assert (decoded.SourceTimestamp, decoded.SourcePicoseconds) == (source, 300)
    assert (decoded.ServerTimestamp, decoded.ServerPicoseconds) == (server, 700)


def ticks_of(moment: datetime) -> int:
    """A DateTime's 100 ns ticks since 1601-01-01 UTC (Part 6, 5.2.2.5)."""
    return int(ua.datetime_to_win_epoch(moment))


@settings(max_examples=100)
@given(st.lists(wire_values(), min_size=1, max_size=6), st.data())
def test_truncated_responses_fail_with_a_decoding_error(
    values: list[WireValue], data: st.DataObject
) -> None:
    body = response([value.data for value in values])
    cut = body[: data.draw(st.integers(0, len(body) - 1))]
    with pytest.raises(ResponseDecodingError):
        decode_read_response(cut)


HEADERS = {
    "good with info bits": (ua.ResponseHeader(ServiceResult=ua.StatusCode(ua.UInt32(0x0400))), 0),
    "uncertain": (
        ua.ResponseHeader(
            ServiceResult=ua.StatusCode(
                ua.UInt32(StatusCodes.UncertainNoCommunicationLastUsableValue)
            )
        ),
        1,
    ),
    "bad": (
        ua.ResponseHeader(ServiceResult=ua.StatusCode(ua.UInt32(StatusCodes.BadTooManyOperations))),
        1,
    ),
    "diagnostics": (
        ua.ResponseHeader(ServiceDiagnostics=ua.DiagnosticInfo(SymbolicId=ua.Int32(3))),
        1,
    ),
    # An empty first string encodes like the null AdditionalHeader that would follow.
    "string table": (ua.ResponseHeader(StringTable=[ua.String(""), ua.String("symbol")]), 1),
    "additional header": (
        ua.ResponseHeader(
            AdditionalHeader=ua.ExtensionObject(TypeId=make_node_id(5, 2), Body=ua.ByteString(b"x"))
        ),
        1,
    ),
}


@pytest.mark.parametrize("name", HEADERS)
@pytest.mark.parametrize("diagnostics", ["null", "empty", "present"])
def test_response_headers_and_diagnostics(name: str, diagnostics: str) -> None:
    header, _ = HEADERS[name]
    diagnostic_infos = {
        "null": int32(-1),
        "empty": int32(0),
        "present": int32(1) + struct_to_binary(ua.DiagnosticInfo(SymbolicId=ua.Int32(1))),
    }[diagnostics]
    value = ua.DataValue(ua.Variant(2.5, ua.VariantType.Double), ua.StatusCode(ua.UInt32(0)))
    body = response([struct_to_binary(value)], header, diagnostic_infos)
    assert outcome(decode_read_response, body) == outcome(asyncua_results, body)


def test_a_bad_service_result_raises_as_asyncua_read_does() -> None:
    header = ua.ResponseHeader(
        ServiceResult=ua.StatusCode(ua.UInt32(StatusCodes.BadTooManyOperations))
    )
    with pytest.raises(UaStatusCodeError) as raised:
        decode_read_response(response([], header))
    assert raised.value.code == StatusCodes.BadTooManyOperations


def test_a_string_longer_than_the_message_fails_as_in_asyncua() -> None:
    # Nine bytes announced, eight left: zeros that would otherwise read as "no diagnostics".
    body = response([b"\x01\x0c" + int32(9) + bytes(4)], diagnostics=int32(0))
    assert outcome(asyncua_results, body)[0] == "raised"
    with pytest.raises(ResponseDecodingError):
        decode_read_response(body)


def test_a_body_that_is_no_read_response_fails_with_a_decoding_error() -> None:
    fault = ua.ServiceFault()
    fault.ResponseHeader.ServiceResult = ua.StatusCode(ua.UInt32(StatusCodes.BadSessionIdInvalid))
    body = struct_to_binary(fault)
    assert outcome(asyncua_results, body)[0] == "raised"
    with pytest.raises(ResponseDecodingError):
        decode_read_response(body)


NODE_IDS = st.one_of(
    st.builds(make_node_id, st.integers(0, 255)),
    st.builds(make_node_id, st.integers(0, 65535), st.integers(0, 255)),
    st.builds(make_node_id, st.integers(0, 2**32 - 1), st.integers(0, 65535)),
    st.builds(make_node_id, st.text(max_size=20), st.integers(0, 65535)),
    st.builds(make_node_id, st.uuids(), st.integers(0, 65535)),
    st.builds(make_node_id, st.binary(max_size=20), st.integers(0, 65535)),
)


@settings(max_examples=200)
@given(
    st.lists(NODE_IDS, max_size=20),
    NODE_IDS,
    st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.just(UTC)),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
def test_the_prepared_request_is_asyncuas_encoding(
    node_ids: list[ua.NodeId], token: ua.NodeId, stamp: datetime, handle: int, timeout_ms: int
) -> None:
    prepared = prepare_read(node_ids)
    parameters = ua.ReadParameters(
        MaxAge=0,
        TimestampsToReturn=ua.TimestampsToReturn.Both,
        NodesToRead=[
            ua.ReadValueId(NodeId=node, AttributeId=AttributeIds.Value) for node in node_ids
        ],
    )
    fields: Any = {
        "AuthenticationToken": token,
        "Timestamp": stamp,
        "RequestHandle": handle,
        "TimeoutHint": timeout_ms,
    }
    header = ua.RequestHeader(**fields)
    expected = struct_to_binary(ua.ReadRequest(RequestHeader=header, Parameters=parameters))

    assert prepared.encode(header) == expected
    assert prepared.parameters == parameters
    # Only the header is encoded per request; the parameters are asyncua's encoding of them.
    assert prepared.encoded_parameters == struct_to_binary(parameters)


def test_node_ids_without_a_binary_form_are_refused_with_the_cause() -> None:
    with pytest.raises(
        ReadEncodingError,
        match="TwoByte node id 5 in namespace 2: the two-byte form has no namespace",
    ):
        encode_node_id(make_node_id(5, 2, ua.NodeIdType.TwoByte))
    with pytest.raises(ReadEncodingError, match="cannot be encoded") as raised:
        prepare_read([make_node_id(2**40, 2, ua.NodeIdType.Numeric)])
    assert isinstance(raised.value.__cause__, struct.error)
    with pytest.raises(ReadEncodingError, match="does not fit the ByteString form"):
        encode_node_id(make_node_id("text", 2, ua.NodeIdType.ByteString))
    with pytest.raises(ReadEncodingError, match="not a local node id"):
        remote = ua.ExpandedNodeId(
            ua.Int32(5), ua.Int16(2), NamespaceUri=ua.String("urn:elsewhere")
        )
        encode_node_id(remote)


def test_datetimes_decode_as_asyncua_decodes_them() -> None:
    for ticks in (-(2**63), -1, 0, 1, 10, 133_500_000_000_000_007, LATEST_TICKS - 1, LATEST_TICKS):
        assert read_codec.to_datetime(ticks) == ua.win_epoch_to_datetime(ticks)


PLANT_VARIABLES = ("Level", "Setpoint", "Count", "Running", "Name", "Faulty", "Stale", "Vector")


@pytest_asyncio.fixture(loop_scope="session")
async def client(plant: PlantServer) -> AsyncIterator[Client]:
    """A plain asyncua client of the shared plant server."""
    connected = Client(plant.url, timeout=5)
    await connected.connect()
    yield connected
    await connected.disconnect()


async def test_a_read_over_the_socket_equals_asyncuas_read(
    plant: PlantServer, client: Client
) -> None:
    nodes = [plant.variables[name].nodeid for name in (*PLANT_VARIABLES, "Numeric")]
    prepared = prepare_read(nodes)

    with spy_on_asyncua() as asyncua_decoder:
        fast = await send_read(client.uaclient, prepared)
    ordinary = await client.uaclient.read(prepared.parameters)

    assert shape(fast) == shape(ordinary)
    faulty = fast[PLANT_VARIABLES.index("Faulty")]
    assert faulty.StatusCode is not None
    assert faulty.StatusCode.value == StatusCodes.BadSensorFailure
    assert asyncua_decoder.call_count == 1  # the array's Variant, and only it, went to asyncua


async def test_the_driver_makes_the_samples_asyncuas_values_make(
    plant: PlantServer, client: Client
) -> None:
    points = [
        TagDef(
            name,
            "plant",
            plant.node_id(name),
            DataType.STRING if name == "Name" else DataType.FLOAT,
        )
        for name in PLANT_VARIABLES
    ]
    driver = OpcUaDriver("plant", OpcUaDeviceConfig(plant.url, timeout_s=5.0), WallClock())
    try:
        samples = await driver.read(points)
    finally:
        await driver.close()
    parameters = prepare_read([plant.variables[name].nodeid for name in PLANT_VARIABLES]).parameters
    # A sample's server time is when the center received it: compare the rest.
    now = datetime.now(UTC)
    expected = [
        to_sample(point, value, now)
        for point, value in zip(points, await client.uaclient.read(parameters), strict=True)
    ]
    assert [dataclasses.replace(sample, server_time=now) for sample in samples] == expected
    faulty = samples[PLANT_VARIABLES.index("Faulty")]
    assert (faulty.value, faulty.quality.label()) == (None, "bad:sensor_failure")


async def test_a_node_list_is_encoded_once_per_session(plant: PlantServer) -> None:
    names = plant.shard_names[-3:]
    points = [TagDef(name, "plant", plant.node_id(name), DataType.FLOAT) for name in names]
    driver = OpcUaDriver("plant", OpcUaDeviceConfig(plant.url, timeout_s=5.0), WallClock())
    try:
        with mock.patch.object(session, "prepare_read", wraps=prepare_read) as prepare:
            await plant.set_many(names, [1.0, 2.0, 3.0], ua.VariantType.Double)
            first = await driver.read(points)
            await plant.set_many(names, [4.0, 5.0, 6.0], ua.VariantType.Double)
            second = await driver.read(points)
    finally:
        await driver.close()
    assert [sample.value for sample in first] == [1.0, 2.0, 3.0]
    assert [sample.value for sample in second] == [4.0, 5.0, 6.0]
    assert prepare.call_count == 1


async def test_a_service_fault_raises_as_asyncuas_read_raises(plant: PlantServer) -> None:
    # A secure channel without a session: the server answers a Read with a ServiceFault.
    channel_only = Client(plant.url, timeout=5)
    await channel_only.connect_socket()
    try:
        await channel_only.send_hello()
        await channel_only.open_secure_channel()
        prepared = prepare_read([plant.variables["Level"].nodeid])
        with pytest.raises(UaStatusCodeError) as fast:
            await send_read(channel_only.uaclient, prepared)
        with pytest.raises(UaStatusCodeError) as ordinary:
            await channel_only.uaclient.read(prepared.parameters)
    finally:
        channel_only.disconnect_socket()
    assert type(fast.value) is type(ordinary.value)
    assert fast.value.code == ordinary.value.code


async def test_a_closed_connection_is_reported_as_asyncua_reports_it(plant: PlantServer) -> None:
    closed = Client(plant.url, timeout=5)
    prepared = prepare_read([plant.variables["Level"].nodeid])
    with pytest.raises(ConnectionError, match="Connection is not open"):
        await send_read(closed.uaclient, prepared)
    with pytest.raises(ConnectionError, match="Connection is not open"):
        await closed.uaclient.read(prepared.parameters)


async def test_without_the_read_seam_reads_are_still_decoded_here(
    plant: PlantServer, client: Client
) -> None:
    prepared = prepare_read([plant.variables[name].nodeid for name in PLANT_VARIABLES])
    with (
        mock.patch.object(session, "_has_read_seam", return_value=False),
        mock.patch.object(session, "decode_read_response", wraps=decode_read_response) as decode,
    ):
        fallback = await send_read(client.uaclient, prepared)
    assert decode.call_count == 1  # asyncua sends the request; the codec reads the answer
    assert shape(fallback) == shape(await send_read(client.uaclient, prepared))
