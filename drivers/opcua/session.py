"""One OPC UA session: secured connect, address resolution and the batched services.

asyncua stays behind this module and ``drivers.opcua.subscriptions``: ``driver_error`` is the
one place its exceptions become ``drivers.base`` errors. A session lives from one successful
connect to its loss; everything learnt from the server (namespace array, operation limits,
resolved node ids, data types) belongs to it and is learnt again after a reconnect, because
a restarted server may renumber namespaces or rebuild its address space.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClient, UASocketProtocol, UASocketState
from asyncua.common.shortcuts import Shortcuts
from asyncua.common.utils import Buffer, wait_for
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from drivers.base import (
    AddressError,
    CommunicationTimeoutError,
    DeviceRejectedError,
    DriverError,
    NotConnectedError,
)
from drivers.opcua.address import (
    BrowsePathAddress,
    IdentifierKind,
    NodeAddress,
    parse_address,
)
from drivers.opcua.config import OpcUaDeviceConfig
from drivers.opcua.publish_codec import SpecPublishSession
from drivers.opcua.read_codec import (
    PreparedRead,
    decode_read_response,
    prepare_parameters,
    prepare_read,
)
from drivers.opcua.security import (
    MESSAGE_MODES,
    ClientCertificate,
    SecurityConfigurationError,
    check_server_trusted,
    ensure_client_certificate,
    first_certificate,
    load_trusted_certificates,
    policy_class,
    read_password,
    select_endpoint,
)
from drivers.opcua.values import status_name, variant_type_for

_ASYNCUA_LOGGER = "asyncua"
_log = logging.getLogger(__name__)

DEFAULT_OPERATION_LIMIT = 1000
"""Nodes per service call when the server states no limit (0 means none, Part 5, 6.3.11)."""
DEFAULT_MONITORED_ITEMS_PER_CALL = 500
"""Monitored items per CreateMonitoredItems call when the server states no limit: creating an
item costs a server far more than reading one, and each call must answer within the timeout."""
PREPARED_READS_KEPT = 64
"""Node lists whose encoded Read request a session keeps: a scan reads the same lists each
cycle; the least recently read list is dropped first."""

_FULLY_RESOLVED = 0xFFFFFFFF  # RemainingPathIndex of a complete match (Part 4, 7.27)

_LOST_SESSION_STATUSES = frozenset(
    {
        "BadSessionIdInvalid",
        "BadSessionClosed",
        "BadSessionNotActivated",
        "BadSecureChannelIdInvalid",
        "BadSecureChannelClosed",
        "BadConnectionClosed",
        "BadServerNotConnected",
        "BadNotConnected",
        "BadShutdown",
        "BadCommunicationError",
        "BadServerHalted",
    }
)
_SECURITY_STATUSES = frozenset(
    {
        "BadSecurityChecksFailed",
        "BadSecurityPolicyRejected",
        "BadSecurityModeRejected",
        "BadCertificateInvalid",
        "BadCertificateUntrusted",
        "BadCertificateUriInvalid",
        "BadCertificateTimeInvalid",
        "BadCertificateRevoked",
        "BadApplicationSignatureInvalid",
        "BadNonceInvalid",
    }
)
_IDENTITY_STATUSES = frozenset(
    {
        "BadUserAccessDenied",
        "BadIdentityTokenInvalid",
        "BadIdentityTokenRejected",
        "BadUserSignatureInvalid",
    }
)

LostCallback = Callable[[str], None]
"""Told the reason when the transport under a session is lost."""


def quiet_asyncua_logging() -> None:
    """Keep asyncua from logging expected field faults (lost connections, failed publishes).

    The driver reports those itself, once per state change. A level configured explicitly for
    the ``asyncua`` logger is left as it is.
    """
    logger = logging.getLogger(_ASYNCUA_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL)


@contextlib.asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[None]:
    """``asyncio.timeout`` that always ends in TimeoutError when the time is up.

    asyncua's requests wait with ``wait_for2``, which reports a cancellation that raced with
    a response as a CancelledError subclass that ``asyncio.timeout`` does not convert."""
    timeout = asyncio.timeout(seconds)
    try:
        async with timeout:
            yield
    except asyncio.CancelledError as err:
        if timeout.expired():
            raise TimeoutError(f"no answer within {seconds:g} s") from err
        raise


def driver_error(err: BaseException, where: str) -> DriverError:
    """Map an asyncua or socket failure to the ``drivers.base`` error tree."""
    if isinstance(err, DriverError):
        return err
    if isinstance(err, TimeoutError):
        return CommunicationTimeoutError(f"{where}: no answer in time")
    if isinstance(err, UaStatusCodeError):
        code = err.code if isinstance(err.code, int) else 0
        name = status_name(code)
        if name in _LOST_SESSION_STATUSES:
            return NotConnectedError(f"{where}: session lost ({name})")
        if name in _SECURITY_STATUSES:
            return SecurityConfigurationError(f"{where}: security refused by the server ({name})")
        if name == "BadTimeout":
            return CommunicationTimeoutError(f"{where}: server timed out ({name})")
        return DeviceRejectedError(f"{where}: server refused ({name})")
    if isinstance(err, ConnectionError | OSError):
        return NotConnectedError(f"{where}: {str(err) or type(err).__name__}")
    if isinstance(err, UaError):
        return NotConnectedError(f"{where}: {err}")
    return DriverError(f"{where}: {type(err).__name__}: {err}")


LIBRARY_ERRORS: tuple[type[Exception], ...] = (UaError, OSError, TimeoutError, ValueError)
"""Exceptions asyncua calls may raise; catch these (not Exception) and map with driver_error."""


def make_node_id(
    identifier: int | str | uuid.UUID | bytes,
    namespace_index: int = 0,
    kind: ua.NodeIdType | None = None,
) -> ua.NodeId:
    """A node id from plain values (asyncua annotates its fields with its own NewTypes)."""
    typed = cast("ua.Int32 | ua.String | ua.Guid | ua.ByteString", identifier)
    if kind is None:  # let asyncua choose the encoding from the identifier
        return ua.NodeId(typed, ua.Int16(namespace_index))
    return ua.NodeId(typed, ua.Int16(namespace_index), kind)


@dataclass(frozen=True, slots=True)
class OperationLimits:
    """Nodes per service call the server accepts (Part 5, 6.3.11 OperationLimits)."""

    read: int
    write: int
    translate: int
    monitored_items: int


_LIMIT_NODES = (
    ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
    ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite,
    ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds,
    ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
)


class OpcUaSession:
    """A connected, activated session and what the driver learnt from the server in it."""

    def __init__(
        self,
        client: Client,
        namespaces: Sequence[str],
        limits: OperationLimits,
        where: str,
        count_request: Callable[[], None],
    ) -> None:
        self._client = client
        self._namespaces = list(namespaces)
        self._limits = limits
        self._where = where
        self._count_request = count_request
        self._node_ids: dict[str, ua.NodeId | str] = {}
        self._variant_types: dict[ua.NodeId, ua.VariantType] = {}
        self._prepared_reads: dict[tuple[int, ...], PreparedRead] = {}
        self._next_handle = 1

    @property
    def limits(self) -> OperationLimits:
        """The server's operation limits (capped by the configuration)."""
        return self._limits

    @property
    def namespaces(self) -> list[str]:
        """The server's namespace array, read at connect (Part 5, 6.3.1)."""
        return list(self._namespaces)

    def allocate_handles(self, count: int) -> int:
        """Reserve ``count`` client handles for monitored items; return the first."""
        first = self._next_handle
        self._next_handle += count
        return first

    def node_id(self, address: str) -> ua.NodeId:
        """The resolved node of an address; raise AddressError if it did not resolve."""
        resolved = self._node_ids.get(address)
        if resolved is None:
            raise AddressError(f"{self._where}: address {address!r} was not resolved")
        if isinstance(resolved, str):
            raise AddressError(resolved)
        return resolved

    async def resolve(self, addresses: Iterable[str]) -> None:
        """Resolve new addresses once per session: namespace URIs from the namespace array,
        browse paths in batched TranslateBrowsePathsToNodeIds calls (Part 4, 5.8.4)."""
        paths: dict[str, BrowsePathAddress] = {}
        for address in addresses:
            if address in self._node_ids or address in paths:
                continue
            try:
                parsed = parse_address(address)
            except AddressError as err:
                self._node_ids[address] = f"{address!r}: {err}"
                continue
            if isinstance(parsed, BrowsePathAddress):
                paths[address] = parsed
            else:
                self._node_ids[address] = self._node_of(address, parsed)
        if paths:
            await self._translate(paths)

    def _node_of(self, address: str, parsed: NodeAddress) -> ua.NodeId | str:
        index = parsed.namespace_index
        if parsed.namespace_uri is not None:
            try:
                index = self._namespaces.index(parsed.namespace_uri)
            except ValueError:
                return (
                    f"{address!r}: namespace {parsed.namespace_uri!r} is not in the server's "
                    "namespace array"
                )
        identifier = parsed.identifier
        if parsed.kind is IdentifierKind.GUID:
            return make_node_id(uuid.UUID(str(identifier)), index, ua.NodeIdType.Guid)
        if parsed.kind is IdentifierKind.OPAQUE:
            # Validated as base64 by the parser.
            opaque = base64.b64decode(str(identifier))
            return make_node_id(opaque, index, ua.NodeIdType.ByteString)
        return make_node_id(identifier, index)

    async def _translate(self, paths: dict[str, BrowsePathAddress]) -> None:
        hierarchical = make_node_id(ObjectIds.HierarchicalReferences)
        root = make_node_id(ObjectIds.RootFolder)
        items = list(paths.items())
        for start in range(0, len(items), self._limits.translate):
            chunk = items[start : start + self._limits.translate]
            browse_paths = [
                ua.BrowsePath(
                    StartingNode=root,
                    RelativePath=ua.RelativePath(
                        Elements=[
                            ua.RelativePathElement(
                                ReferenceTypeId=hierarchical,
                                # asyncua annotates Boolean fields with a marker class.
                                IsInverse=cast(ua.Boolean, False),
                                IncludeSubtypes=cast(ua.Boolean, True),
                                TargetName=ua.QualifiedName(element.name, element.namespace_index),
                            )
                            for element in path.elements
                        ]
                    ),
                )
                for _, path in chunk
            ]
            self._count_request()
            results = await self._client.uaclient.translate_browsepaths_to_nodeids(browse_paths)
            for (address, _), result in zip(chunk, results, strict=True):
                self._node_ids[address] = self._target_of(address, result)

    def _target_of(self, address: str, result: ua.BrowsePathResult) -> ua.NodeId | str:
        code = result.StatusCode.value
        if code & 0x80000000:
            return f"{address!r}: browse path not found ({status_name(code)})"
        for target in result.Targets:
            if target.RemainingPathIndex != _FULLY_RESOLVED:
                continue
            expanded = target.TargetId
            index = expanded.NamespaceIndex
            uri = expanded.NamespaceUri if isinstance(expanded, ua.ExpandedNodeId) else None
            if uri:
                if uri not in self._namespaces:
                    return f"{address!r}: target in unknown namespace {uri!r}"
                index = self._namespaces.index(uri)
            return ua.NodeId(expanded.Identifier, ua.Int16(index), expanded.NodeIdType)
        return f"{address!r}: browse path reaches no node on this server"

    async def read(self, node_ids: Sequence[ua.NodeId]) -> list[ua.DataValue]:
        """Read the Value attribute of many nodes: one Read call per MaxNodesPerRead nodes
        (Part 4, 5.10.2), with source and server timestamps."""
        values: list[ua.DataValue] = []
        limit = self._limits.read
        for start in range(0, len(node_ids), limit):
            prepared = self._prepared_read(node_ids[start : start + limit])
            self._count_request()
            values.extend(await send_read(self._client.uaclient, prepared))
        return values

    def _prepared_read(self, node_ids: Sequence[ua.NodeId]) -> PreparedRead:
        """The encoded Read request of a node list, prepared once per session.

        Keyed by the node ids' identities, which hash far faster than NodeIds: the session
        hands out one object per address, and the prepared request keeps those objects alive,
        so no other node id can reuse an identity while it is a key."""
        key = tuple(map(id, node_ids))
        prepared = self._prepared_reads.pop(key, None)
        if prepared is None:
            prepared = prepare_read(node_ids)
            if len(self._prepared_reads) >= PREPARED_READS_KEPT:
                del self._prepared_reads[next(iter(self._prepared_reads))]
        self._prepared_reads[key] = prepared  # most recently read last
        return prepared

    async def variant_type(self, node_id: ua.NodeId) -> ua.VariantType:
        """The built-in type to write ``node_id`` with; its DataType is read once per session."""
        known = self._variant_types.get(node_id)
        if known is not None:
            return known
        parameters = ua.ReadParameters(
            NodesToRead=[
                ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.DataType),
                ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.Value),
            ]
        )
        self._count_request()
        data_type, current = await send_read(self._client.uaclient, prepare_parameters(parameters))
        code = data_type.StatusCode.value if data_type.StatusCode is not None else 0
        if code & 0x80000000 or data_type.Value is None:
            raise AddressError(
                f"{self._where}: cannot read the data type of {node_id.to_string()} "
                f"({status_name(code)})"
            )
        type_id = data_type.Value.Value
        if not isinstance(type_id, ua.NodeId):
            raise AddressError(f"{self._where}: {node_id.to_string()} has no DataType node id")
        variant_type = variant_type_for(type_id, current.Value)
        self._variant_types[node_id] = variant_type
        return variant_type

    async def write(self, node_id: ua.NodeId, variant: ua.Variant) -> int:
        """Write one Value attribute (Part 4, 5.10.4); return the operation's status code."""
        parameters = ua.WriteParameters(
            NodesToWrite=[
                ua.WriteValue(
                    NodeId=node_id,
                    AttributeId=AttributeIds.Value,
                    Value=ua.DataValue(variant),
                )
            ]
        )
        self._count_request()
        (status,) = await self._client.uaclient.write(parameters)
        return int(status.value)

    async def create_subscription(
        self,
        parameters: ua.CreateSubscriptionParameters,
        on_publish: Callable[[ua.PublishResult], None],
    ) -> ua.CreateSubscriptionResult:
        """Create a subscription whose publish responses go to ``on_publish`` (Part 4, 5.13.2)."""
        self._count_request()
        return await self._client.uaclient.create_subscription(parameters, on_publish)

    async def create_monitored_items(
        self, subscription_id: int, items: Sequence[ua.MonitoredItemCreateRequest]
    ) -> list[ua.MonitoredItemCreateResult]:
        """Create monitored items, MaxMonitoredItemsPerCall at a time (Part 4, 5.12.2)."""
        results: list[ua.MonitoredItemCreateResult] = []
        limit = self._limits.monitored_items
        for start in range(0, len(items), limit):
            parameters = ua.CreateMonitoredItemsParameters(
                SubscriptionId=subscription_id,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                ItemsToCreate=list(items[start : start + limit]),
            )
            self._count_request()
            results.extend(await self._client.uaclient.create_monitored_items(parameters))
        return results

    async def delete_subscription(self, subscription_id: int) -> None:
        """Delete a subscription and its items (Part 4, 5.13.8); best effort, never raises."""
        try:
            self._count_request()
            await self._client.uaclient.delete_subscriptions([subscription_id])
        except LIBRARY_ERRORS:
            pass

    async def close(self, timeout_s: float) -> None:
        """Close the session (deleting its subscriptions) and the channel; never raises."""
        client = self._client
        client.connection_lost_callback = None
        try:
            async with deadline(timeout_s):
                await client.disconnect()
        except LIBRARY_ERRORS:
            pass
        finally:
            client.disconnect_socket()


async def open_session(
    config: OpcUaDeviceConfig,
    device: str,
    on_lost: LostCallback,
    count_request: Callable[[], None],
) -> OpcUaSession:
    """Connect, secure and activate a session; raise a DriverError naming what failed.

    The endpoints are listed first (GetEndpoints, Part 4, 5.4.4) so that a policy mismatch or
    an untrusted server is refused with a clear reason before any session is attempted.
    """
    where = f"{device} ({config.endpoint})"
    quiet_asyncua_logging()
    client = Client(
        config.endpoint, timeout=config.timeout_s, watchdog_intervall=config.keepalive_s
    )
    client.name = f"City control center ({device})"
    client.description = client.name
    client.application_uri = config.application_uri
    client.product_uri = "urn:city-controlcenter"
    client.session_timeout = int(config.session_timeout_s * 1000)
    # Publish responses decoded per Part 6, 5.2.2.17 (see drivers.opcua.publish_codec).
    client.uaclient.session = SpecPublishSession(client.uaclient)
    client.nodes = Shortcuts(client.uaclient.session)
    try:
        certificate = await ensure_client_certificate(config, device) if config.secure else None
        async with deadline(config.timeout_s * 3):
            await _prepare(client, config, certificate, where, count_request)
            count_request()
            await client.connect()
    except DriverError:
        client.disconnect_socket()
        raise
    except UaStatusCodeError as err:
        client.disconnect_socket()
        name = status_name(err.code if isinstance(err.code, int) else 0)
        if name in _IDENTITY_STATUSES:
            user = f"user {config.username!r}" if config.username else "anonymous access"
            raise SecurityConfigurationError(
                f"{where}: server refused {user} ({name}): wrong user name or password, "
                "or the user is not allowed"
            ) from err
        raise driver_error(err, f"{where}: cannot connect") from err
    except LIBRARY_ERRORS as err:
        client.disconnect_socket()
        if isinstance(err, TimeoutError):
            raise NotConnectedError(
                f"{where}: cannot connect: no answer within {config.timeout_s * 3:g} s"
            ) from err
        detail = str(err) or type(err).__name__
        raise NotConnectedError(f"{where}: cannot connect: {detail}") from err
    session_lost = _LostOnce(on_lost)

    async def connection_lost(err: Exception) -> None:
        session_lost(f"connection lost ({str(err) or type(err).__name__})")

    client.connection_lost_callback = connection_lost
    try:
        namespaces, limits = await _server_facts(client, config, count_request)
    except LIBRARY_ERRORS as err:
        await OpcUaSession(client, [], _default_limits(config), where, count_request).close(1.0)
        raise driver_error(err, f"{where}: reading the namespace array") from err
    return OpcUaSession(client, namespaces, limits, where, count_request)


_READ_SEAM_CLIENT = ("_request_semaphore", "observer")
_READ_SEAM_PROTOCOL = (
    "_setup_request_header",
    "_request_id",
    "_request_handle",
    "_callbackmap",
    "_connection",
    "revolve_security_token",
    "check_answer",
    "pre_request_hook",
    "transport",
    "timeout",
    "state",
)


async def send_read(uaclient: UaClient, prepared: PreparedRead) -> list[ua.DataValue]:
    """One Read call of a prepared request over asyncua's secure channel; its DataValues.

    The steps of asyncua's own Read (``UaClient._send_request``, ``UASocketProtocol
    .send_request``): its limit on concurrent requests, request observer, pre-request hook,
    fresh RequestHeader, request ids, chunking, signing and encryption (``message_to_binary``),
    response matching, timeout and ServiceFault check, with the body encoded and decoded by
    ``drivers.opcua.read_codec``. Errors are the ones asyncua's Read raises. An asyncua
    without those parts sends the request its ordinary way; the answer is still decoded by
    ``read_codec``, in Part 6's field order.
    """
    request = ua.ReadRequest(RequestHeader=ua.RequestHeader(), Parameters=prepared.parameters)
    protocol = uaclient.protocol
    if protocol is not None and not _has_read_seam(uaclient, protocol):
        return decode_read_response(bytes(await protocol.send_request(request)))
    with uaclient.observer.observe_request(request):
        async with uaclient._request_semaphore:
            protocol = uaclient.protocol
            if protocol is None:
                raise ConnectionError("Connection is not open")
            timeout = protocol.timeout
            if protocol.pre_request_hook:
                await protocol.pre_request_hook()
            try:
                data: Buffer = await wait_for(
                    _post_read(protocol, request, prepared, timeout), timeout or None
                )
            except (UaError, TimeoutError):
                raise
            except Exception as err:
                if protocol.state is not UASocketState.OPEN:
                    raise ConnectionError("Connection is closed") from err
                raise
            # A ServiceFault raises UaStatusCodeError here (Part 4, 7.34 in 1.05).
            protocol.check_answer(data, " in response to ReadRequest")
    return decode_read_response(bytes(data))


def _post_read(
    protocol: UASocketProtocol, request: ua.ReadRequest, prepared: PreparedRead, timeout: float
) -> asyncio.Future[Buffer]:
    """Send one ReadRequest; the future resolves with the response body."""
    transport = protocol.transport
    if transport is None:
        raise ConnectionError("Connection is not open")
    # Authentication token, request handle and timeout hint, as for every asyncua request.
    protocol._setup_request_header(request.RequestHeader, timeout)
    request_id = protocol._request_id + 1
    try:
        body = prepared.encode(request.RequestHeader)
        protocol.revolve_security_token()
        # A SecureMessage (the default), chunked, signed and encrypted as the channel asks.
        message = protocol._connection.message_to_binary(body, request_id=request_id)
    except Exception:
        protocol._request_handle -= 1  # nothing was sent: the handle is free again
        raise
    protocol._request_id = request_id
    future: asyncio.Future[Buffer] = asyncio.get_running_loop().create_future()
    protocol._callbackmap[request_id] = future
    transport.write(message)
    return future


def _has_read_seam(uaclient: UaClient, protocol: UASocketProtocol) -> bool:
    """Whether asyncua has the parts ``send_read`` uses."""
    missing = tuple(name for name in _READ_SEAM_CLIENT if not hasattr(uaclient, name)) + tuple(
        name for name in _READ_SEAM_PROTOCOL if not hasattr(protocol, name)
    )
    if missing:
        _report_missing_read_seam(missing)
    return not missing


@functools.cache
def _report_missing_read_seam(missing: tuple[str, ...]) -> None:
    """Say once per process that reads take asyncua's own, slower request path."""
    _log.warning(
        "this asyncua has no %s: OPC UA reads use asyncua's request path", ", ".join(missing)
    )


class _LostOnce:
    """Forwards the first loss of a session only."""

    def __init__(self, on_lost: LostCallback) -> None:
        self._on_lost: LostCallback | None = on_lost

    def __call__(self, reason: str) -> None:
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost(reason)


async def _prepare(
    client: Client,
    config: OpcUaDeviceConfig,
    certificate: ClientCertificate | None,
    where: str,
    count_request: Callable[[], None],
) -> None:
    """Choose the endpoint, check the server's certificate and set up the client's identity."""
    count_request()
    endpoints = await client.connect_and_get_server_endpoints()
    endpoint = select_endpoint(endpoints, config, where)
    server_certificate = first_certificate(bytes(endpoint.ServerCertificate or b""))
    trusted = await load_trusted_certificates(config.trusted_server_certificates, where)
    check_server_trusted(server_certificate, trusted, where)
    if certificate is not None:
        # The application URI in CreateSession must be the one the certificate carries.
        client.application_uri = certificate.application_uri
        await client.set_security(
            policy_class(config.security_policy),
            str(certificate.certificate),
            str(certificate.private_key),
            server_certificate=server_certificate,
            mode=MESSAGE_MODES[config.security_mode],
        )
    password = read_password(config, where)
    if config.username:
        client.set_user(config.username)
    if password is not None:
        client.set_password(password)


def _default_limits(config: OpcUaDeviceConfig) -> OperationLimits:
    cap = min(config.max_nodes_per_read, DEFAULT_OPERATION_LIMIT)
    return OperationLimits(config.max_nodes_per_read, cap, cap, DEFAULT_MONITORED_ITEMS_PER_CALL)


async def _server_facts(
    client: Client, config: OpcUaDeviceConfig, count_request: Callable[[], None]
) -> tuple[list[str], OperationLimits]:
    """The namespace array and the operation limits, in one Read call."""
    nodes = [
        make_node_id(identifier) for identifier in (ObjectIds.Server_NamespaceArray, *_LIMIT_NODES)
    ]
    parameters = ua.ReadParameters(
        NodesToRead=[ua.ReadValueId(NodeId=node, AttributeId=AttributeIds.Value) for node in nodes]
    )
    count_request()
    namespace_value, *limit_values = await send_read(
        client.uaclient, prepare_parameters(parameters)
    )
    namespaces = namespace_value.Value.Value if namespace_value.Value is not None else None
    if not isinstance(namespaces, list):
        raise ValueError("the server has no readable namespace array")

    def limit(value: ua.DataValue, cap: int) -> int:
        stated = value.Value.Value if value.Value is not None else None
        # Missing, unreadable or 0 means the server states no limit.
        if not isinstance(stated, int) or stated <= 0:
            return cap
        return min(stated, cap)

    read, write, translate, monitored = limit_values
    return [str(uri) for uri in namespaces], OperationLimits(
        read=limit(read, config.max_nodes_per_read),
        write=limit(write, DEFAULT_OPERATION_LIMIT),
        translate=limit(translate, DEFAULT_OPERATION_LIMIT),
        monitored_items=limit(monitored, DEFAULT_MONITORED_ITEMS_PER_CALL),
    )
