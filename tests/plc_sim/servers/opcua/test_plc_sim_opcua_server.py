"""The generic OPC UA device server against a real asyncua client over real sockets."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.server.address_space import NodeData
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.ua_binary import struct_to_binary
from asyncua.ua.uaerrors import UaStatusCodeError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from plc_sim.device import FaultKind, PointBinding, PointSpec, PointValue, SimDevice
from plc_sim.servers.opcua.internal import (
    STANDARD_NODES,
    DeviceInternalServer,
    PickledNodes,
    StandardNodes,
    read_cache,
)
from plc_sim.servers.opcua.nodes import (
    SharedDataValue,
    bad_value,
    browse_path,
    good_value,
    numeric_node,
    status,
)
from plc_sim.servers.opcua.security import (
    OpcUaServerSecurity,
    PasswordUserManager,
    make_self_signed_certificate,
)
from plc_sim.servers.opcua.server import WRITES_PER_YIELD, OpcUaDeviceServer
from plc_sim.servers.opcua.units import unit_id
from tests.plc_sim.servers.opcua.opcua_support import (
    CLIENT_TIMEOUT_S,
    SIM_START,
    Certificates,
    DictModel,
    Served,
    make_certificates,
    serving,
)

CABINET = "lights.d1.c1"
SETPOINT = f"{CABINET}.dim_setpoint"
POWER = f"{CABINET}.power"
MODE = f"{CABINET}.mode"
DOOR = f"{CABINET}.door_open"
ENERGY = f"{CABINET}.energy"
LAMP_ON = f"{CABINET}.l01.on"

SPECS = (
    PointSpec(SETPOINT, "float", "%", writable=True, low=0, high=100, role="value"),
    PointSpec(POWER, "float", "kW", low=0, high=20),
    PointSpec(MODE, "int", writable=True, low=0, high=2, role="value", states=("a", "m", "o")),
    PointSpec(DOOR, "bool"),
    PointSpec(ENERGY, "counter", "kWh"),
    PointSpec(LAMP_ON, "bool", writable=True, role="output"),
)


def plain_model() -> DictModel:
    """The cabinet's values."""
    return DictModel(
        {
            SETPOINT: 100.0,
            POWER: 3.5,
            MODE: 0,
            DOOR: False,
            ENERGY: 1234.5,
            LAMP_ON: True,
        }
    )


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with serving(plain_model(), SPECS) as running:
        yield running


@pytest.fixture
async def client(served: Served) -> AsyncIterator[Client]:
    async with Client(served.server.url, timeout=CLIENT_TIMEOUT_S) as connected:
        yield connected


def point(client: Client, tag: str) -> Node:
    return client.get_node(served_address(tag))


def served_address(tag: str) -> str:
    return f"ns=2;s={tag}"


async def wait_until(predicate: object, timeout_s: float = 5.0) -> None:
    """Poll ``predicate`` (a no-argument callable) until true, failing after ``timeout_s``."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.01)


async def test_addresses_are_known_before_start() -> None:
    server = OpcUaDeviceServer(plain_model().device(SPECS))
    assert server.addresses()[SETPOINT] == "ns=2;s=lights.d1.c1.dim_setpoint"
    assert set(server.addresses()) == {spec.tag for spec in SPECS}
    assert browse_path(LAMP_ON) == "/Objects/2:lights/2:d1/2:c1/2:l01/2:on"
    with pytest.raises(RuntimeError):
        _ = server.port


async def test_namespace_and_browse_tree(served: Served, client: Client) -> None:
    assert await client.get_namespace_index("urn:smartcity:plc_sim:lights.d1_ctrl") == 2
    cabinet = await client.nodes.objects.get_child(["2:lights", "2:d1", "2:c1"])
    names = {(await child.read_browse_name()).Name for child in await cabinet.get_children()}
    assert names == {"dim_setpoint", "power", "mode", "door_open", "energy", "l01"}
    by_path = await client.nodes.root.get_child(
        ["0:Objects", "2:lights", "2:d1", "2:c1", "2:l01", "2:on"]
    )
    assert by_path.nodeid == ua.NodeId.from_string(served_address(LAMP_ON))
    assert await by_path.read_value() is True


async def test_types_units_ranges_and_access_levels(client: Client) -> None:
    power = point(client, POWER)
    assert await power.read_value() == pytest.approx(3.5)
    assert (await power.read_data_type()).Identifier == ObjectIds.Double
    definition = await power.read_type_definition()
    assert definition is not None
    assert definition.Identifier == ObjectIds.AnalogItemType
    eu_range = await (await power.get_child("0:EURange")).read_value()
    assert (eu_range.Low, eu_range.High) == (0.0, 20.0)
    units = await (await power.get_child("0:EngineeringUnits")).read_value()
    assert units.DisplayName.Text == "kW"
    assert units.UnitId == unit_id("KWT")
    mode = point(client, MODE)
    assert (await mode.read_data_type()).Identifier == ObjectIds.UInt16
    assert await mode.read_value() == 0
    assert (await point(client, DOOR).read_data_type()).Identifier == ObjectIds.Boolean
    assert await point(client, ENERGY).read_value() == pytest.approx(1234.5)
    read_only = await power.get_access_level()
    writable = await point(client, SETPOINT).get_access_level()
    assert ua.AccessLevel.CurrentWrite not in read_only
    assert ua.AccessLevel.CurrentRead in read_only
    assert ua.AccessLevel.CurrentWrite in writable


async def test_write_reaches_the_model(served: Served, client: Client) -> None:
    setpoint = point(client, SETPOINT)
    await setpoint.write_value(ua.Variant(50.0, ua.VariantType.Double))
    assert served.model.values[SETPOINT] == 50.0
    assert await setpoint.read_value() == 50.0
    await point(client, MODE).write_value(ua.Variant(1, ua.VariantType.UInt16))
    assert served.model.values[MODE] == 1
    await point(client, LAMP_ON).write_value(ua.Variant(False, ua.VariantType.Boolean))
    assert served.model.values[LAMP_ON] is False


async def test_refused_writes_leave_the_value(served: Served, client: Client) -> None:
    setpoint = point(client, SETPOINT)
    with pytest.raises(UaStatusCodeError) as out_of_range:
        await setpoint.write_value(ua.Variant(150.0, ua.VariantType.Double))
    assert out_of_range.value.code == StatusCodes.BadOutOfRange
    with pytest.raises(UaStatusCodeError) as wrong_type:
        await setpoint.write_value(ua.Variant(50.0, ua.VariantType.Float))
    assert wrong_type.value.code == StatusCodes.BadTypeMismatch
    with pytest.raises(UaStatusCodeError) as read_only:
        await point(client, POWER).write_value(ua.Variant(1.0, ua.VariantType.Double))
    assert read_only.value.code == StatusCodes.BadNotWritable
    assert served.model.values[SETPOINT] == 100.0
    assert served.model.values[POWER] == 3.5
    assert await setpoint.read_value() == 100.0


async def test_publish_writes_only_changed_values_at_simulated_time(
    served: Served, client: Client
) -> None:
    served.clock.now = SIM_START + timedelta(minutes=5)
    served.model.values[POWER] = 4.25
    await served.server.publish()
    power = await point(client, POWER).read_data_value()
    assert power.Value is not None
    assert power.Value.Value == 4.25
    assert power.SourceTimestamp == SIM_START + timedelta(minutes=5)
    unchanged = await point(client, ENERGY).read_data_value()
    assert unchanged.SourceTimestamp == SIM_START


async def test_subscription_sees_published_changes(served: Served, client: Client) -> None:
    seen: list[float] = []

    class Handler:
        def datachange_notification(self, node: Node, value: float, data: object) -> None:
            seen.append(value)

    subscription = await client.create_subscription(20, Handler())
    await subscription.subscribe_data_change(point(client, POWER))
    await wait_until(lambda: seen == [3.5])
    for value in (4.0, 5.0):
        served.model.values[POWER] = value
        await served.server.publish()
        await wait_until(lambda v=value: seen[-1] == v)
    assert seen == [3.5, 4.0, 5.0]


async def test_error_fault_gives_every_value_a_bad_status(served: Served, client: Client) -> None:
    served.device.set_fault(FaultKind.ERROR)
    power = await point(client, POWER).read_data_value(raise_on_bad_status=False)
    assert power.StatusCode is not None
    assert power.StatusCode.value == StatusCodes.BadDeviceFailure
    with pytest.raises(UaStatusCodeError) as refused:
        await point(client, SETPOINT).write_value(ua.Variant(10.0, ua.VariantType.Double))
    assert refused.value.code == StatusCodes.BadDeviceFailure
    served.device.set_fault(FaultKind.ERROR, error_code=StatusCodes.BadSensorFailure)
    await served.server.publish()
    mode = await point(client, MODE).read_data_value(raise_on_bad_status=False)
    assert mode.StatusCode is not None
    assert mode.StatusCode.value == StatusCodes.BadSensorFailure
    served.device.clear_fault(FaultKind.ERROR)
    assert await point(client, POWER).read_value() == pytest.approx(3.5)
    assert served.model.values[SETPOINT] == 100.0


async def test_offline_fault_leaves_requests_unanswered(served: Served, client: Client) -> None:
    served.device.set_fault(FaultKind.OFFLINE)
    await served.server.publish()
    pending = asyncio.ensure_future(point(client, POWER).read_value())
    done, _ = await asyncio.wait({pending}, timeout=0.5)
    assert not done, "an offline device answered"
    with pytest.raises((TimeoutError, ConnectionError, UaStatusCodeError)):
        async with Client(served.server.url, timeout=0.5):
            pass
    served.device.clear_fault(FaultKind.OFFLINE)
    assert await asyncio.wait_for(pending, CLIENT_TIMEOUT_S) == pytest.approx(3.5)


async def test_refusing_fault_closes_the_port_until_cleared(served: Served) -> None:
    port = served.server.port
    served.device.set_fault(FaultKind.REFUSING)
    await served.server.publish()
    assert not served.server.running
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    served.device.clear_fault(FaultKind.REFUSING)
    await served.server.publish()
    assert served.server.port == port
    async with Client(served.server.url, timeout=CLIENT_TIMEOUT_S) as again:
        assert await point(again, POWER).read_value() == pytest.approx(3.5)


async def test_slow_fault_delays_answers(served: Served, client: Client) -> None:
    served.device.set_fault(FaultKind.SLOW, delay_s=0.3)
    started = time.monotonic()
    assert await point(client, POWER).read_value() == pytest.approx(3.5)
    assert time.monotonic() - started >= 0.3
    served.device.clear_fault(FaultKind.SLOW)
    started = time.monotonic()
    await point(client, POWER).read_value()
    assert time.monotonic() - started < 0.3


async def test_stuck_and_noisy_values(served: Served, client: Client) -> None:
    served.device.set_fault(FaultKind.STUCK)
    served.model.values[POWER] = 9.0
    await served.server.publish()
    assert await point(client, POWER).read_value() == pytest.approx(3.5)
    served.device.clear_fault(FaultKind.STUCK)
    served.device.set_fault(FaultKind.NOISY, noise=0.05)
    await served.server.publish()
    noisy = await point(client, POWER).read_value()
    assert noisy != 9.0
    assert noisy == pytest.approx(9.0, abs=20 * 0.05 * 6)


async def test_restart_drops_sessions_and_keeps_the_port(served: Served, client: Client) -> None:
    port = served.server.port
    await served.server.restart()
    assert served.server.port == port
    with pytest.raises((ConnectionError, UaStatusCodeError, TimeoutError)):
        await point(client, POWER).read_value()
    async with Client(served.server.url, timeout=CLIENT_TIMEOUT_S) as again:
        assert await point(again, POWER).read_value() == pytest.approx(3.5)


async def test_device_restart_handler_restarts_the_server(served: Served) -> None:
    handler = served.device.restart_handler
    assert handler is not None
    awaitable = handler()
    assert asyncio.iscoroutine(awaitable)
    await awaitable
    async with Client(served.server.url, timeout=CLIENT_TIMEOUT_S) as again:
        assert await point(again, MODE).read_value() == 0


@dataclass
class TickingTime:
    """A simulated clock that moves on a millisecond every time it is read."""

    reads: int = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return SIM_START + timedelta(milliseconds=self.reads)


@dataclass
class Large:
    values: dict[str, PointValue]
    device: SimDevice
    server: OpcUaDeviceServer
    clock: TickingTime
    tags: list[str]


@pytest.fixture
async def large() -> AsyncIterator[Large]:
    """A device with a few publish slices' worth of points (``WRITES_PER_YIELD`` each)."""
    tags = [f"plant.line.v{index:04d}" for index in range(4 * WRITES_PER_YIELD + 10)]
    values: dict[str, PointValue] = dict.fromkeys(tags, 1.0)

    def binding(tag: str) -> PointBinding:
        return PointBinding(PointSpec(tag, "float"), lambda: values[tag])

    device = SimDevice("plant.plc", "opcua", [binding(tag) for tag in tags])
    clock = TickingTime()
    server = OpcUaDeviceServer(device, source_time=clock)
    await server.start()
    try:
        yield Large(values, device, server, clock, tags)
    finally:
        await server.stop()


async def read_data_values(server: OpcUaDeviceServer, tags: list[str]) -> list[ua.DataValue]:
    async with Client(server.url, timeout=CLIENT_TIMEOUT_S) as reader:
        return [await point(reader, tag).read_data_value() for tag in tags]


async def test_publish_stamps_each_value_as_written_and_lets_the_loop_run(large: Large) -> None:
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    for tag in large.tags:
        large.values[tag] = 2.0
    reads_before = large.clock.reads
    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    turns = 0
    try:
        await large.server.publish()
    finally:
        other.cancel()
    # Other tasks ran between slices of writes, not only after the whole publish.
    assert turns >= 3
    # One timestamp per written value, taken as it was written.
    assert large.clock.reads - reads_before == len(large.tags)
    first, last = await read_data_values(large.server, [large.tags[0], large.tags[-1]])
    assert first.Value is not None and first.Value.Value == 2.0
    assert last.Value is not None and last.Value.Value == 2.0
    assert first.SourceTimestamp is not None and last.SourceTimestamp is not None
    assert last.SourceTimestamp - first.SourceTimestamp == timedelta(
        milliseconds=len(large.tags) - 1
    )
    # Node.read_data_value asks for the source timestamp only (Part 4 7.40).
    assert first.ServerTimestamp is None


async def test_a_restart_during_a_publish_serves_the_current_values(large: Large) -> None:
    for tag in large.tags:
        large.values[tag] = 3.0
    publishing = asyncio.create_task(large.server.publish())
    await asyncio.sleep(0)
    assert not publishing.done(), "the publish wrote every value without letting the loop run"
    await large.server.restart()
    await publishing
    last = (await read_data_values(large.server, [large.tags[-1]]))[0]
    assert last.Value is not None and last.Value.Value == 3.0


async def test_an_error_fault_during_a_publish_is_shown_once_it_is_done(large: Large) -> None:
    for tag in large.tags:
        large.values[tag] = 4.0
    publishing = asyncio.create_task(large.server.publish())
    await asyncio.sleep(0)
    large.device.set_fault(FaultKind.ERROR)
    async with Client(large.server.url, timeout=CLIENT_TIMEOUT_S) as reader:
        last = await point(reader, large.tags[-1]).read_data_value(raise_on_bad_status=False)
        assert publishing.done()
        assert last.StatusCode is not None
        assert last.StatusCode.value == StatusCodes.BadDeviceFailure
        large.device.clear_fault(FaultKind.ERROR)
        assert await point(reader, large.tags[-1]).read_value() == 4.0


def test_served_values_are_their_own_copies_and_encode_as_data_values() -> None:
    shared = good_value(1.5, ua.VariantType.Double, SIM_START)
    assert isinstance(shared, SharedDataValue)
    assert copy.deepcopy(shared) is shared
    plain = ua.DataValue(
        ua.Variant(1.5, ua.VariantType.Double),
        StatusCode=status(StatusCodes.Good),
        SourceTimestamp=shared.SourceTimestamp,
        ServerTimestamp=shared.ServerTimestamp,
    )
    notification = ua.MonitoredItemNotification(ClientHandle=7, Value=shared)
    expected = ua.MonitoredItemNotification(ClientHandle=7, Value=plain)
    assert struct_to_binary(notification) == struct_to_binary(expected)
    bad = bad_value(StatusCodes.BadDeviceFailure, SIM_START)
    assert copy.deepcopy(bad) is bad
    assert bad.Value is not None and bad.Value.Value is None


async def test_point_variables_carry_every_variable_attribute(client: Client) -> None:
    setpoint = point(client, SETPOINT)
    names = (
        "NodeClass",
        "BrowseName",
        "DisplayName",
        "Description",
        "ValueRank",
        "AccessLevel",
        "UserAccessLevel",
        "MinimumSamplingInterval",
        "Historizing",
        "WriteMask",
    )
    values = await setpoint.read_attributes([getattr(AttributeIds, name) for name in names])
    for name, value in zip(names, values, strict=True):
        assert value.StatusCode is not None and value.StatusCode.is_good(), name
    read = {
        name: value.Value.Value for name, value in zip(names, values, strict=True) if value.Value
    }
    assert read["NodeClass"] == ua.NodeClass.Variable
    assert read["BrowseName"] == ua.QualifiedName("dim_setpoint", 2)
    assert read["DisplayName"].Text == "dim_setpoint"
    assert read["Description"].Text == SETPOINT
    assert read["ValueRank"] == ua.ValueRank.Scalar
    assert read["AccessLevel"] == read["UserAccessLevel"] == 3
    assert read["Historizing"] is False
    assert read["WriteMask"] == 0
    parent = await setpoint.get_parent()
    assert parent is not None
    assert parent.nodeid == ua.NodeId.from_string("ns=2;s=folder:lights.d1.c1")
    properties = {(await p.read_browse_name()).Name for p in await setpoint.get_properties()}
    assert properties == {"EURange", "EngineeringUnits"}
    objects = {
        (await child.read_browse_name()).Name for child in await client.nodes.objects.get_children()
    }
    assert {"Server", "lights"} <= objects


def standard_sample() -> dict[ua.NodeId, NodeData]:
    """A few real standard nodes (a folder, types, a property) to cache without a full fill."""
    template = STANDARD_NODES.get()
    ids = (
        ObjectIds.ObjectsFolder,
        ObjectIds.FolderType,
        ObjectIds.AnalogItemType,
        ObjectIds.PropertyType,
        ObjectIds.Server_NamespaceArray,
    )
    return {numeric_node(node_id): template[numeric_node(node_id)] for node_id in ids}


def same_node(left: NodeData, right: NodeData) -> bool:
    attributes = {key: held.value for key, held in left.attributes.items()}
    return (
        left.nodeid == right.nodeid
        and left.references == right.references
        and attributes == {key: held.value for key, held in right.attributes.items()}
    )


def test_standard_nodes_are_cached_and_read_back_lazily(tmp_path: Path) -> None:
    sample = standard_sample()
    cache = tmp_path / "standard.pickle"
    fills: list[int] = []

    def fill() -> dict[ua.NodeId, NodeData]:
        fills.append(1)
        return sample

    assert StandardNodes(cache, fill).get() is sample
    assert fills == [1] and cache.is_file()
    cached = StandardNodes(cache, fill).get()
    assert fills == [1]
    assert isinstance(cached, PickledNodes)
    assert len(cached) == len(sample) and set(cached) == set(sample)
    assert numeric_node(ObjectIds.ObjectsFolder) in cached
    assert numeric_node(ObjectIds.RootFolder) not in cached
    for key, node in sample.items():
        assert same_node(cached[key], node)
        assert cached[key] is cached[key]


def test_an_unusable_standard_nodes_cache_is_rebuilt(tmp_path: Path) -> None:
    sample = standard_sample()
    cache = tmp_path / "standard.pickle"
    cache.write_bytes(b"not a cache")
    with pytest.raises(ValueError, match="not a standard-nodes cache"):
        read_cache(cache)
    assert StandardNodes(cache, lambda: sample).get() is sample
    assert set(read_cache(cache)) == set(sample)
    assert StandardNodes(None, lambda: sample).get() is sample


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("opcua_pki"))


@pytest.fixture
async def secure_server(certificates: Certificates) -> AsyncIterator[OpcUaDeviceServer]:
    device = plain_model().device(SPECS)
    server = OpcUaDeviceServer(device, security=certificates.server_security())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def secure_client(
    server: OpcUaDeviceServer, certificates: Certificates, user: str, password: str
) -> Client:
    client = Client(server.url, timeout=CLIENT_TIMEOUT_S)
    client.application_uri = certificates.client_uri
    client.set_user(user)
    client.set_password(password)
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        str(certificates.client_cert),
        str(certificates.client_key),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    return client


async def test_secure_server_accepts_sign_and_encrypt_with_a_password(
    secure_server: OpcUaDeviceServer, certificates: Certificates
) -> None:
    client = await secure_client(secure_server, certificates, "operator", "correct horse")
    async with client:
        assert await point(client, POWER).read_value() == pytest.approx(3.5)
        await point(client, SETPOINT).write_value(ua.Variant(40.0, ua.VariantType.Double))
        assert await point(client, SETPOINT).read_value() == 40.0


async def test_secure_server_offers_no_unsecured_endpoint(
    secure_server: OpcUaDeviceServer,
) -> None:
    probe = Client(secure_server.url, timeout=CLIENT_TIMEOUT_S)
    endpoints = await probe.connect_and_get_server_endpoints()
    modes = {endpoint.SecurityMode for endpoint in endpoints}
    assert ua.MessageSecurityMode.None_ not in modes
    insecure = Client(secure_server.url, timeout=CLIENT_TIMEOUT_S)
    insecure.set_user("operator")
    insecure.set_password("correct horse")
    with pytest.raises(UaStatusCodeError) as refused:
        async with insecure:
            pass
    assert refused.value.code == StatusCodes.BadSecurityModeRejected


async def test_secure_server_refuses_a_session_over_a_none_channel(
    secure_server: OpcUaDeviceServer,
) -> None:
    # A real None channel (asyncua opens one for GetEndpoints even on a secure-only server),
    # then CreateSession on it, as a client that ignores the endpoints would send it.
    client = Client(secure_server.url, timeout=CLIENT_TIMEOUT_S)
    await client.connect_socket()
    try:
        await client.send_hello()
        await client.open_secure_channel()
        parameters = ua.CreateSessionParameters(
            ClientDescription=ua.ApplicationDescription(
                ApplicationUri="urn:test:none-channel",
                ApplicationType=ua.ApplicationType.Client,
            ),
            EndpointUrl=secure_server.url,
            SessionName="none channel",
            ClientNonce=bytes(32),
            RequestedSessionTimeout=60_000,
            MaxResponseMessageSize=0,
        )
        with pytest.raises(UaStatusCodeError) as refused:
            await client.uaclient.create_session(parameters)
        assert refused.value.code == StatusCodes.BadSecurityModeRejected
        # The channel is still there for discovery, as Part 4 5.4 wants.
        endpoints = await client.get_endpoints()
        assert {e.SecurityMode for e in endpoints} == {
            ua.MessageSecurityMode.Sign,
            ua.MessageSecurityMode.SignAndEncrypt,
        }
    finally:
        client.disconnect_socket()


def test_secure_only_user_manager_refuses_unsigned_channels() -> None:
    users = {"operator": "correct horse"}
    manager = PasswordUserManager(users, allow_anonymous=True, require_secure_channel=True)
    iserver = DeviceInternalServer()
    assert manager.get_user(iserver, "operator", "correct horse", certificate=None) is None
    assert manager.get_user(iserver, None, None, certificate=None) is None
    # What asyncua hands on an unsecured channel: an empty certificate.
    assert manager.get_user(iserver, "operator", "correct horse", certificate=b"") is None
    signed = manager.get_user(iserver, "operator", "correct horse", certificate=b"peer")
    assert signed is not None
    assert manager.get_user(iserver, "operator", "nope", certificate=b"peer") is None
    assert manager.get_user(iserver, "nobody", "correct horse", certificate=b"peer") is None
    assert manager.get_user(iserver, None, None, certificate=b"peer") is not None


async def test_only_trusted_client_certificates_get_a_session(
    certificates: Certificates, tmp_path: Path
) -> None:
    trusted_dir = tmp_path / "trusted"
    trusted_dir.mkdir()
    (trusted_dir / "center.der").write_bytes(certificates.client_cert.read_bytes())
    (trusted_dir / "notes.txt").write_text("not a certificate")
    # A self-signed certificate with the same application URI, unknown to the server.
    stranger_cert, stranger_key = make_self_signed_certificate(
        tmp_path / "stranger", certificates.client_uri, name="stranger", client=True
    )
    stranger = replace(certificates, client_cert=stranger_cert, client_key=stranger_key)
    security = replace(certificates.server_security(), trust_dir=trusted_dir)
    server = OpcUaDeviceServer(plain_model().device(SPECS), security=security)
    await server.start()
    try:
        async with await secure_client(server, certificates, "operator", "correct horse") as ok:
            assert await point(ok, POWER).read_value() == pytest.approx(3.5)
        with pytest.raises(UaStatusCodeError) as refused:
            async with await secure_client(server, stranger, "operator", "correct horse"):
                pass
        assert refused.value.code == StatusCodes.BadCertificateUntrusted
        # Trusted from the next session on once its certificate is in the list (PEM here).
        pem = x509.load_der_x509_certificate(stranger_cert.read_bytes()).public_bytes(
            serialization.Encoding.PEM
        )
        (trusted_dir / "stranger.pem").write_bytes(pem)
        async with await secure_client(server, stranger, "operator", "correct horse") as now_ok:
            assert await point(now_ok, POWER).read_value() == pytest.approx(3.5)
    finally:
        await server.stop()


async def test_secure_server_refuses_a_wrong_password(
    secure_server: OpcUaDeviceServer, certificates: Certificates
) -> None:
    client = await secure_client(secure_server, certificates, "operator", "wrong")
    with pytest.raises(UaStatusCodeError) as refused:
        async with client:
            pass
    assert refused.value.code == StatusCodes.BadUserAccessDenied


def test_security_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown OPC UA security policies"):
        OpcUaServerSecurity(
            Path("c"), Path("k"), policies=("Basic128Rsa15_Sign",), users={"a": "b"}
        )
    with pytest.raises(ValueError, match="anonymous"):
        OpcUaServerSecurity(Path("c"), Path("k"))
