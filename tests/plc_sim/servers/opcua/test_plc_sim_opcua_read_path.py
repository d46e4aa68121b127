"""The Read fast path of the simulated OPC UA devices, against asyncua's own Read.

Over real sockets with asyncua's client: the same request is answered byte for byte as asyncua
answers it (taken both ways by switching the fast path off), what the fast path does not serve
is answered by asyncua, published changes are read at once, and faults behave alike on both
paths. The request parser and the value encoder are checked against asyncua's codec.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UASocketProtocol
from asyncua.common.utils import Buffer
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.ua_binary import (
    nodeid_from_binary,
    nodeid_to_binary,
    struct_from_binary,
    struct_to_binary,
    to_binary,
)
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from plc_sim.device import FaultKind, PointSpec
from plc_sim.servers.opcua.nodes import SharedDataValue, bad_value, good_value, numeric_node, status
from plc_sim.servers.opcua.read_path import (
    MalformedReadRequest,
    ReadFastPath,
    encode_data_value,
    parse_read_parameters,
)
from plc_sim.servers.opcua.server import OpcUaDeviceServer
from tests.plc_sim.servers.opcua.opcua_support import (
    CLIENT_TIMEOUT_S,
    SIM_START,
    Certificates,
    DictModel,
    Served,
    SimTime,
    make_certificates,
    serving,
)

pytestmark = pytest.mark.timeout(60)

CABINET = "lights.d1.c1"
SETPOINT = f"{CABINET}.dim_setpoint"
POWER = f"{CABINET}.power"
MODE = f"{CABINET}.mode"
OFFSET = f"{CABINET}.offset"
DOOR = f"{CABINET}.door_open"
ENERGY = f"{CABINET}.energy"

SPECS = (
    PointSpec(SETPOINT, "float", "%", writable=True, low=0, high=100, role="value"),
    PointSpec(POWER, "float", "kW", low=0, high=20),
    PointSpec(MODE, "int", writable=True, low=0, high=2, role="value", states=("a", "m", "o")),
    PointSpec(OFFSET, "int", low=-100_000, high=100_000),
    PointSpec(DOOR, "bool"),
    PointSpec(ENERGY, "counter", "kWh"),
)
"""Double, Boolean, UInt16 and Int32 variables: every type a point is served as."""

TAGS = tuple(spec.tag for spec in SPECS)


def cabinet_values() -> DictModel:
    """The cabinet's values, one of each served type."""
    return DictModel(
        {
            SETPOINT: 100.0,
            POWER: 3.5,
            MODE: 2,
            OFFSET: -42_000,
            DOOR: True,
            ENERGY: 1234.5,
        }
    )


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with serving(cabinet_values(), SPECS) as running:
        yield running


@pytest.fixture
async def client(served: Served) -> AsyncIterator[Client]:
    async with Client(served.server.url, timeout=CLIENT_TIMEOUT_S) as connected:
        yield connected


def node_id(tag: str) -> ua.NodeId:
    return ua.NodeId.from_string(f"ns=2;s={tag}")


def value_reads(tags: tuple[str, ...] = TAGS) -> ua.ReadParameters:
    """What the center's driver sends: the Value of each point, with both timestamps."""
    return ua.ReadParameters(
        TimestampsToReturn=ua.TimestampsToReturn.Both,
        NodesToRead=[
            ua.ReadValueId(NodeId=node_id(tag), AttributeId=AttributeIds.Value) for tag in tags
        ],
    )


async def raw_read(client: Client, parameters: ua.ReadParameters) -> bytes:
    """The ReadResponse body as the server sent it (TypeId first)."""
    request = ua.ReadRequest()
    request.Parameters = parameters
    return bytes(await socket_protocol(client).send_request(request))


def socket_protocol(client: Client) -> UASocketProtocol:
    protocol = client.uaclient.protocol
    assert protocol is not None, "the client is not connected"
    return protocol


def decoded(response: bytes) -> list[ua.DataValue]:
    read = struct_from_binary(ua.ReadResponse, Buffer(response))
    assert isinstance(read, ua.ReadResponse)
    return list(read.Results)


def unstamped(response: bytes) -> bytes:
    """The response without its ResponseHeader's Timestamp and RequestHandle (Part 4 7.33)."""
    return response[:4] + response[16:]


@contextmanager
def asyncua_reads(reads: ReadFastPath) -> Iterator[None]:
    reads.enabled = False
    try:
        yield
    finally:
        reads.enabled = True


async def read_both_ways(
    reads: ReadFastPath, client: Client, parameters: ua.ReadParameters
) -> tuple[bytes, bytes]:
    """The same request answered by the fast path, then by asyncua's path."""
    served, declined = reads.served, reads.declined
    fast = await raw_read(client, parameters)
    assert (reads.served, reads.declined) == (served + 1, declined)
    with asyncua_reads(reads):
        by_asyncua = await raw_read(client, parameters)
    assert (reads.served, reads.declined) == (served + 1, declined + 1)
    return fast, by_asyncua


async def until_refused(port: int, timeout_s: float = 5.0) -> None:
    """Wait until nothing listens on ``port`` any more (connections are refused)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return
        except ConnectionResetError:
            pass  # the listening socket is being closed
        else:
            writer.close()
            await writer.wait_closed()
        if time.monotonic() > deadline:
            pytest.fail(f"port {port} still accepts connections after {timeout_s} s")
        await asyncio.sleep(0.01)


# --- the same answer as asyncua's ------------------------------------------------------------


async def test_a_fast_read_answers_byte_for_byte_as_asyncua(served: Served, client: Client) -> None:
    fast, by_asyncua = await read_both_ways(served.reads, client, value_reads())
    assert unstamped(fast) == unstamped(by_asyncua)
    values = decoded(fast)
    assert [v.Value.VariantType for v in values if v.Value] == [
        ua.VariantType.Double,
        ua.VariantType.Double,
        ua.VariantType.UInt16,
        ua.VariantType.Int32,
        ua.VariantType.Boolean,
        ua.VariantType.Double,
    ]
    assert [v.Value.Value for v in values if v.Value] == [100.0, 3.5, 2, -42_000, True, 1234.5]
    assert all(v.SourceTimestamp == SIM_START == v.ServerTimestamp for v in values)
    assert decoded(fast) == decoded(by_asyncua)


@pytest.mark.parametrize(
    "timestamps", [t for t in ua.TimestampsToReturn if t is not ua.TimestampsToReturn.Invalid]
)
async def test_timestamps_to_return_are_answered_alike_on_both_paths(
    served: Served, client: Client, timestamps: ua.TimestampsToReturn
) -> None:
    parameters = value_reads()
    parameters.TimestampsToReturn = timestamps
    parameters.MaxAge = 5000.0
    fast, by_asyncua = await read_both_ways(served.reads, client, parameters)
    assert unstamped(fast) == unstamped(by_asyncua)


async def read_on_each_path(
    reads: ReadFastPath, client: Client, parameters: ua.ReadParameters
) -> list[list[ua.DataValue]]:
    """The values of the same request answered by the fast path, then by asyncua's path."""
    fast, by_asyncua = await read_both_ways(reads, client, parameters)
    return [decoded(fast), decoded(by_asyncua)]


async def test_the_server_timestamp_is_the_time_of_the_read(served: Served, client: Client) -> None:
    # The values last changed at SIM_START; a minute on, they are still served as current.
    served.clock.now = SIM_START + timedelta(minutes=1)
    for values in await read_on_each_path(served.reads, client, value_reads()):
        assert all(v.SourceTimestamp == SIM_START for v in values)
        assert all(v.ServerTimestamp == SIM_START + timedelta(minutes=1) for v in values)


@pytest.mark.parametrize(
    ("timestamps", "source", "server"),
    [
        (ua.TimestampsToReturn.Source, True, False),
        (ua.TimestampsToReturn.Server, False, True),
        (ua.TimestampsToReturn.Both, True, True),
        (ua.TimestampsToReturn.Neither, False, False),
    ],
)
async def test_only_the_timestamps_asked_for_are_returned(
    served: Served, client: Client, timestamps: ua.TimestampsToReturn, source: bool, server: bool
) -> None:
    parameters = value_reads()
    parameters.TimestampsToReturn = timestamps
    served.clock.now = SIM_START + timedelta(seconds=5)
    for values in await read_on_each_path(served.reads, client, parameters):
        for value in values:
            assert value.SourceTimestamp == (SIM_START if source else None)
            assert value.ServerTimestamp == (served.clock.now if server else None)
            assert value.Value is not None and value.Value.Value is not None


async def test_other_attributes_have_no_source_timestamp(served: Served, client: Client) -> None:
    parameters = ua.ReadParameters(
        TimestampsToReturn=ua.TimestampsToReturn.Both,
        NodesToRead=[ua.ReadValueId(NodeId=node_id(POWER), AttributeId=AttributeIds.DataType)],
    )
    (value,) = decoded(await raw_read(client, parameters))
    assert value.SourceTimestamp is None  # Part 4 7.11: only the Value attribute has one
    assert value.ServerTimestamp == served.clock.now


async def refusal(client: Client, parameters: ua.ReadParameters) -> int:
    """The ServiceResult of a Read the server refuses."""
    with pytest.raises(UaStatusCodeError) as raised:
        await raw_read(client, parameters)
    return int(raised.value.code)


async def test_read_parameters_out_of_bounds_are_refused_on_both_paths(
    served: Served, client: Client
) -> None:
    invalid_timestamps = value_reads()
    invalid_timestamps.TimestampsToReturn = ua.TimestampsToReturn.Invalid
    negative_age = value_reads()
    negative_age.MaxAge = -1.0
    for fast in (True, False):
        served.reads.enabled = fast
        try:
            assert await refusal(client, invalid_timestamps) == (
                StatusCodes.BadTimestampsToReturnInvalid
            )
            assert await refusal(client, negative_age) == StatusCodes.BadMaxAgeInvalid
            assert await refusal(client, ua.ReadParameters()) == StatusCodes.BadNothingToDo
        finally:
            served.reads.enabled = True


async def test_the_advertised_max_nodes_per_read_is_enforced() -> None:
    model = cabinet_values()
    server = OpcUaDeviceServer(model.device(SPECS), max_nodes_per_read=4)
    await server.start()
    try:
        async with Client(server.url, timeout=CLIENT_TIMEOUT_S) as client:
            limit = client.get_node(
                numeric_node(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)
            )
            assert await limit.read_value() == 4
            for fast in (True, False):
                server.read_path.enabled = fast
                assert len(decoded(await raw_read(client, value_reads(TAGS[:4])))) == 4
                code = await refusal(client, value_reads(TAGS[:5]))
                assert code == StatusCodes.BadTooManyOperations  # Part 4 5.10.2
    finally:
        await server.stop()


async def test_bad_values_of_an_error_fault_read_the_same(served: Served, client: Client) -> None:
    served.device.set_fault(FaultKind.ERROR, error_code=StatusCodes.BadSensorFailure)
    fast, by_asyncua = await read_both_ways(served.reads, client, value_reads())
    assert unstamped(fast) == unstamped(by_asyncua)
    for value in decoded(fast):
        assert value.StatusCode == status(StatusCodes.BadSensorFailure)
        assert value.Value is not None and value.Value.Value is None


async def test_repeated_and_duplicate_nodes_read_the_same(served: Served, client: Client) -> None:
    parameters = value_reads((POWER, POWER, DOOR, POWER))
    first, by_asyncua = await read_both_ways(served.reads, client, parameters)
    again, _ = await read_both_ways(served.reads, client, parameters)
    assert unstamped(first) == unstamped(again) == unstamped(by_asyncua)


async def test_a_published_change_is_read_at_once(served: Served, client: Client) -> None:
    reads = served.reads
    for step in range(1, 4):
        served.clock.now = SIM_START + timedelta(seconds=step)
        served.model.values[POWER] = 3.5 + step
        served.model.values[DOOR] = step % 2 == 0
        await served.server.publish()
        fast, by_asyncua = await read_both_ways(reads, client, value_reads())
        assert unstamped(fast) == unstamped(by_asyncua)
        power, door = decoded(fast)[1], decoded(fast)[4]
        assert power.Value is not None and power.Value.Value == 3.5 + step
        assert power.SourceTimestamp == served.clock.now
        assert door.Value is not None and door.Value.Value is (step % 2 == 0)
    setpoint = client.get_node(node_id(SETPOINT))
    await setpoint.write_value(ua.Variant(40.0, ua.VariantType.Double))
    served_before = reads.served
    assert await setpoint.read_value() == 40.0
    assert reads.served == served_before + 1


# --- what asyncua answers ----------------------------------------------------------------------


def point_read(tag: str, **fields: Any) -> ua.ReadValueId:
    return ua.ReadValueId(NodeId=node_id(tag), AttributeId=AttributeIds.Value, **fields)


SERVER_STATUS = numeric_node(ObjectIds.Server_ServerStatus)
DECLINED_READS = {
    "server status": [ua.ReadValueId(NodeId=SERVER_STATUS, AttributeId=AttributeIds.Value)],
    "display name": [ua.ReadValueId(NodeId=node_id(POWER), AttributeId=AttributeIds.DisplayName)],
    "index range": [point_read(POWER, IndexRange="0:1")],
    "data encoding": [point_read(POWER, DataEncoding=ua.QualifiedName("Default Binary"))],
    "unknown node": [point_read("lights.d1.c1.nope")],
    "property": [point_read(f"{POWER}#EURange")],
    "a point and a property": [point_read(POWER), point_read(f"{POWER}#EURange")],
    "expanded node id": [
        ua.ReadValueId(
            NodeId=ua.ExpandedNodeId(
                ua.String(POWER), ua.Int16(2), ua.NodeIdType.String, ua.String("urn:x")
            ),
            AttributeId=AttributeIds.Value,
        )
    ],
}


@pytest.mark.parametrize("case", list(DECLINED_READS))
async def test_other_reads_are_answered_by_asyncua(
    served: Served, client: Client, case: str
) -> None:
    parameters = ua.ReadParameters(NodesToRead=DECLINED_READS[case])
    reads = served.reads
    served_before, declined = reads.served, reads.declined
    answer = decoded(await raw_read(client, parameters))
    assert (reads.served, reads.declined) == (served_before, declined + 1)
    with asyncua_reads(reads):
        assert decoded(await raw_read(client, parameters)) == answer
    first = answer[0]
    assert first.StatusCode is not None
    if case == "server status":
        assert first.StatusCode.is_good()
        assert first.Value is not None
        assert first.Value.Value.State == ua.ServerState.Running
    elif case == "display name":
        assert first.Value is not None and first.Value.Value.Text == "power"
    elif case == "unknown node":
        assert first.StatusCode.value == StatusCodes.BadNodeIdUnknown
    elif case in ("property", "a point and a property"):
        eu_range = answer[-1].Value
        assert eu_range is not None and (eu_range.Value.Low, eu_range.Value.High) == (0.0, 20.0)
    else:  # asyncua reads a point's Value whatever its IndexRange or DataEncoding says
        assert first.Value is not None and first.Value.Value == 3.5


async def test_a_truncated_read_is_answered_by_asyncua(
    served: Served, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = served.reads
    connection = socket_protocol(client)._connection
    framed = connection.message_to_binary

    def truncated(message: bytes, **framing: Any) -> bytes:
        return framed(message[:-3], **framing)

    answers: list[int] = []
    for fast in (True, False):
        reads.enabled = fast
        monkeypatch.setattr(connection, "message_to_binary", truncated)
        with pytest.raises(UaStatusCodeError) as refused:
            await raw_read(client, value_reads())
        monkeypatch.undo()
        answers.append(refused.value.code)
    reads.enabled = True
    assert answers == [StatusCodes.BadInternalError] * 2
    assert (reads.served, reads.declined) == (0, 2)
    assert await client.get_node(node_id(POWER)).read_value() == 3.5
    assert reads.served == 1


async def test_a_session_not_activated_is_answered_by_asyncua(served: Served) -> None:
    reads = served.reads
    answers: list[int] = []
    for fast in (True, False):
        reads.enabled = fast
        client = Client(served.server.url, timeout=CLIENT_TIMEOUT_S)
        await client.connect_socket()
        try:
            await client.send_hello()
            await client.open_secure_channel()
            await client.create_session()
            with pytest.raises(UaStatusCodeError) as refused:
                await client.uaclient.read(value_reads())
            answers.append(refused.value.code)
        finally:
            client.disconnect_socket()
    assert answers[0] == answers[1]
    assert not status(answers[0]).is_good()
    assert (reads.served, reads.declined) == (0, 2)


# --- faults, alike on both paths ---------------------------------------------------------------

BOTH_PATHS = pytest.mark.parametrize("fast", [True, False], ids=["fast path", "asyncua"])


def count_on(reads: ReadFastPath, fast: bool) -> Callable[[], int]:
    """The counter of the path the reads take."""
    reads.enabled = fast
    return (lambda: reads.served) if fast else (lambda: reads.declined)


@BOTH_PATHS
async def test_slow_fault_delays_reads(served: Served, client: Client, fast: bool) -> None:
    counted = count_on(served.reads, fast)
    served.device.set_fault(FaultKind.SLOW, delay_s=0.3)
    power = client.get_node(node_id(POWER))
    started = time.monotonic()
    assert await power.read_value() == 3.5
    assert time.monotonic() - started >= 0.3
    served.device.clear_fault(FaultKind.SLOW)
    started = time.monotonic()
    assert await power.read_value() == 3.5
    assert time.monotonic() - started < 0.3
    assert counted() == 2


@BOTH_PATHS
async def test_offline_fault_holds_reads_until_cleared(
    served: Served, client: Client, fast: bool
) -> None:
    counted = count_on(served.reads, fast)
    served.device.set_fault(FaultKind.OFFLINE)
    pending = asyncio.ensure_future(client.get_node(node_id(POWER)).read_value())
    done, _ = await asyncio.wait({pending}, timeout=0.5)
    assert not done, "an offline device answered"
    assert counted() == 1
    with pytest.raises((TimeoutError, ConnectionError, UaStatusCodeError)):
        async with Client(served.server.url, timeout=0.5):
            pass
    served.device.clear_fault(FaultKind.OFFLINE)
    assert await asyncio.wait_for(pending, CLIENT_TIMEOUT_S) == 3.5


@BOTH_PATHS
async def test_error_fault_gives_bad_values_until_cleared(
    served: Served, client: Client, fast: bool
) -> None:
    counted = count_on(served.reads, fast)
    served.device.set_fault(FaultKind.ERROR)
    values = await client.uaclient.read(value_reads())
    assert {v.StatusCode.value for v in values if v.StatusCode} == {StatusCodes.BadDeviceFailure}
    served.device.clear_fault(FaultKind.ERROR)
    values = await client.uaclient.read(value_reads())
    assert [v.Value.Value for v in values if v.Value] == [100.0, 3.5, 2, -42_000, True, 1234.5]
    assert counted() == 2


@BOTH_PATHS
async def test_refusing_fault_drops_a_reading_client(
    served: Served, client: Client, fast: bool
) -> None:
    counted = count_on(served.reads, fast)
    port = served.server.port
    served.device.set_fault(FaultKind.REFUSING)
    with pytest.raises((ConnectionError, TimeoutError, UaStatusCodeError, UaError)):
        await client.get_node(node_id(POWER)).read_value()
    assert counted() == 1
    await until_refused(port)
    assert not served.server.running
    served.device.clear_fault(FaultKind.REFUSING)
    await served.server.publish()
    assert served.server.port == port
    async with Client(served.server.url, timeout=CLIENT_TIMEOUT_S) as again:
        assert await again.get_node(node_id(POWER)).read_value() == 3.5
    assert counted() == 2


# --- a secured channel -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("opcua_read_pki"))


async def test_a_sign_and_encrypt_session_reads_through_the_fast_path(
    certificates: Certificates,
) -> None:
    model = cabinet_values()
    server = OpcUaDeviceServer(
        model.device(SPECS), security=certificates.server_security(), source_time=SimTime()
    )
    await server.start()
    try:
        client = Client(server.url, timeout=CLIENT_TIMEOUT_S)
        client.application_uri = certificates.client_uri
        client.set_user("operator")
        client.set_password("correct horse")
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            str(certificates.client_cert),
            str(certificates.client_key),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
        async with client:
            fast, by_asyncua = await read_both_ways(server.read_path, client, value_reads())
            assert unstamped(fast) == unstamped(by_asyncua)
            values = [v.Value.Value for v in decoded(fast) if v.Value]
            assert values == [100.0, 3.5, 2, -42_000, True, 1234.5]
            model.values[POWER] = 7.25
            await server.publish()
            assert await client.get_node(node_id(POWER)).read_value() == 7.25
            assert server.read_path.served == 2
    finally:
        await server.stop()


# --- the request parser ------------------------------------------------------------------------

UINT16 = st.integers(0, 0xFFFF)
UINT32 = st.integers(0, 0xFFFF_FFFF)
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)

NODE_IDS = st.one_of(
    st.builds(ua.TwoByteNodeId, st.integers(0, 0xFF)),
    st.builds(ua.FourByteNodeId, UINT16, st.integers(0, 0xFF)),
    st.builds(ua.NumericNodeId, UINT32, UINT16),
    st.builds(ua.StringNodeId, TEXT, UINT16),
    st.builds(ua.GuidNodeId, st.uuids(), UINT16),
    st.builds(ua.ByteStringNodeId, st.binary(max_size=40), UINT16),
)
READ_VALUE_IDS = st.builds(
    ua.ReadValueId,
    NodeId=NODE_IDS,
    AttributeId=st.one_of(st.just(AttributeIds.Value), st.sampled_from(AttributeIds), UINT32),
    IndexRange=st.one_of(st.none(), TEXT),
    DataEncoding=st.one_of(
        st.just(ua.QualifiedName()),
        st.builds(ua.QualifiedName, st.one_of(st.none(), TEXT), st.integers(0, 0x7FFF)),
    ),
)
READ_PARAMETERS = st.builds(
    ua.ReadParameters,
    MaxAge=st.floats(allow_nan=False),
    TimestampsToReturn=st.sampled_from(ua.TimestampsToReturn),
    NodesToRead=st.lists(READ_VALUE_IDS, max_size=12),
)


def plainly_read(item: ua.ReadValueId) -> bool:
    encoding = item.DataEncoding
    return not item.IndexRange and encoding.NamespaceIndex == 0 and not encoding.Name


@settings(max_examples=300)
@given(READ_PARAMETERS)
def test_read_parameters_parse_as_asyncua_encodes_them(parameters: ua.ReadParameters) -> None:
    view = parse_read_parameters(struct_to_binary(parameters))
    assert view.max_age == parameters.MaxAge
    assert view.timestamps_to_return == parameters.TimestampsToReturn
    items = parameters.NodesToRead
    assert view.node_ids == [nodeid_to_binary(item.NodeId) for item in items]
    assert [nodeid_from_binary(Buffer(raw)) for raw in view.node_ids] == [i.NodeId for i in items]
    assert view.attribute_ids == [item.AttributeId for item in items]
    assert view.plain == all(plainly_read(item) for item in items)


@settings(max_examples=200)
@given(READ_PARAMETERS, st.data())
def test_a_truncated_or_padded_body_is_refused(
    parameters: ua.ReadParameters, data: st.DataObject
) -> None:
    encoded = struct_to_binary(parameters)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(MalformedReadRequest):
        parse_read_parameters(encoded[:cut])
    with pytest.raises(MalformedReadRequest):
        parse_read_parameters(encoded + data.draw(st.binary(min_size=1, max_size=8)))


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused_cleanly(body: bytes) -> None:
    with suppress(MalformedReadRequest):
        parse_read_parameters(body)


def test_what_the_fast_path_plans_and_what_it_leaves_to_asyncua() -> None:
    reads = OpcUaDeviceServer(cabinet_values().device(SPECS)).read_path
    body = struct_to_binary(value_reads())
    planned = reads.plan(Buffer(body))
    assert planned is not None and len(planned.points) == len(TAGS)
    for cut in range(len(body)):
        assert reads.plan(Buffer(body[:cut])) is None
    assert reads.plan(Buffer(struct_to_binary(ua.ReadParameters()))) is None
    for declined in DECLINED_READS.values():
        parameters = ua.ReadParameters(NodesToRead=declined)
        assert reads.plan(Buffer(struct_to_binary(parameters))) is None
    reads.enabled = False
    assert reads.plan(Buffer(body)) is None


def test_null_and_unknown_enumerations_are_refused() -> None:
    body = bytearray(struct_to_binary(value_reads()))
    body[8:12] = (7).to_bytes(4, "little")  # TimestampsToReturn 7 is none (Part 4 7.40)
    with pytest.raises(MalformedReadRequest, match="TimestampsToReturn"):
        parse_read_parameters(bytes(body))
    null_array = struct_to_binary(ua.ReadParameters())[:12] + (-1).to_bytes(
        4, "little", signed=True
    )
    with pytest.raises(MalformedReadRequest):
        parse_read_parameters(null_array)


# --- the value encoder -------------------------------------------------------------------------

TIMES = st.one_of(
    st.none(),
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(1601, 1, 2)),
)
SCALARS = st.one_of(
    st.tuples(st.just(ua.VariantType.Null), st.none()),
    st.tuples(st.just(ua.VariantType.Boolean), st.booleans()),
    st.tuples(st.just(ua.VariantType.SByte), st.integers(-128, 127)),
    st.tuples(st.just(ua.VariantType.Byte), st.integers(0, 255)),
    st.tuples(st.just(ua.VariantType.Int16), st.integers(-(2**15), 2**15 - 1)),
    st.tuples(st.just(ua.VariantType.UInt16), UINT16),
    st.tuples(st.just(ua.VariantType.Int32), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just(ua.VariantType.UInt32), UINT32),
    st.tuples(st.just(ua.VariantType.Int64), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just(ua.VariantType.UInt64), st.integers(0, 2**64 - 1)),
    st.tuples(st.just(ua.VariantType.Float), st.floats(width=32)),
    st.tuples(st.just(ua.VariantType.Double), st.floats()),
    st.tuples(st.just(ua.VariantType.String), st.one_of(st.none(), TEXT)),
    st.tuples(st.just(ua.VariantType.DateTime), st.datetimes(timezones=st.just(UTC))),
    st.tuples(st.just(ua.VariantType.ByteString), st.one_of(st.none(), st.binary(max_size=20))),
    st.tuples(st.just(ua.VariantType.Int32), st.lists(st.integers(-5, 5), max_size=3)),
    st.tuples(st.just(ua.VariantType.LocalizedText), st.builds(ua.LocalizedText, TEXT)),
)


@st.composite
def data_values(draw: st.DrawFn) -> ua.DataValue:
    vtype, content = draw(SCALARS)
    is_array = isinstance(content, list)
    source = draw(TIMES)
    server = source if draw(st.booleans()) else draw(TIMES)
    kind = draw(st.sampled_from([SharedDataValue, ua.DataValue]))
    fields: dict[str, Any] = {
        "StatusCode": draw(st.one_of(st.none(), st.builds(status, UINT32))),
        "SourceTimestamp": source,
        "ServerTimestamp": server,
        "SourcePicoseconds": draw(st.one_of(st.none(), UINT16)),
        "ServerPicoseconds": draw(st.one_of(st.none(), UINT16)),
    }
    return kind(ua.Variant(content, vtype, is_array=is_array), **fields)


def in_part_6_order(encoded: bytes) -> bytes:
    """asyncua's encoding of a DataValue with its times in Part 6 5.2.2.17's order: asyncua
    writes SourcePicoseconds after the ServerTimestamp, the clause right after the source's."""
    mask = encoded[0]
    sizes = {0x04: 8, 0x08: 8, 0x10: 2, 0x20: 2}
    tail = sum(size for bit, size in sizes.items() if mask & bit)
    head, times = encoded[: len(encoded) - tail], encoded[len(encoded) - tail :]
    fields: dict[int, bytes] = {}
    pos = 0
    for bit in (0x04, 0x08, 0x10, 0x20):  # asyncua's order
        if mask & bit:
            fields[bit] = times[pos : pos + sizes[bit]]
            pos += sizes[bit]
    return head + b"".join(fields[bit] for bit in (0x04, 0x10, 0x08, 0x20) if bit in fields)


@settings(max_examples=400)
@given(data_values())
def test_values_encode_per_part_6(value: ua.DataValue) -> None:
    assert encode_data_value(value) == in_part_6_order(to_binary(ua.DataValue, value))


def test_served_values_encode_as_asyncua_encodes_them() -> None:
    for value in (
        good_value(1.5, ua.VariantType.Double, SIM_START),
        good_value(True, ua.VariantType.Boolean, SIM_START),
        good_value(2, ua.VariantType.UInt16, SIM_START),
        good_value(-42_000, ua.VariantType.Int32, SIM_START),
        bad_value(StatusCodes.BadDeviceFailure, SIM_START),
    ):
        assert encode_data_value(value) == to_binary(ua.DataValue, value)


def test_a_value_its_type_cannot_hold_is_refused_as_asyncua_refuses_it() -> None:
    value = ua.DataValue(ua.Variant(70_000, ua.VariantType.UInt16))
    with pytest.raises(UaError):
        to_binary(ua.DataValue, value)
    with pytest.raises(UaError):
        encode_data_value(value)
