"""Any simulated device served over OPC UA (asyncua ``Server``), one server per device.

The address space is described in ``plc_sim.servers.opcua.nodes``: namespace 2 is the device's own,
one folder per dotted tag segment under Objects, one variable per point with NodeId
``ns=2;s=<tag>``, engineering units and ranges as Part 8 properties. ``addresses()`` gives
tag → ``ns=2;s=<tag>``; the browse path form ``/Objects/2:<seg>/…/2:<last>`` reaches the same
variable (``plc_sim.servers.opcua.nodes.browse_path``).

A Read of the points' values (what the center polls) is answered from the request's bytes by
``plc_sim.servers.opcua.read_path``, several times cheaper than asyncua; any other Read, and every
other service, is served by asyncua (``read_path`` counts both). Both follow Part 4 5.10.2 alike
(``read_rules``): TimestampsToReturn honoured, the ServerTimestamp the time of the Read, the
advertised MaxNodesPerRead enforced.

Client writes to a writable point go to ``SimDevice.write``; the model's refusal becomes the
write's status (Bad_OutOfRange, Bad_TypeMismatch; Bad_NotWritable for a read-only point) and the
served value is left as it was. ``publish()`` copies the values that changed since the last
publish into the address space, each stamped as it is written (with the simulated time when a
clock is given), which also drives the subscriptions' data-change notifications. It lets the
event loop run every few hundred writes, so a large device does not hold up publish responses,
requests or the other servers of the process while it writes. A process serving large address
spaces should keep them out of the cyclic garbage collector's full collections once its
servers run (``gc.freeze``, as ``controlcenter sim`` and the bench devices do): every full
collection otherwise rescans some twenty objects per point for nothing, half a second with
10,000 points during which no server answers.

Faults (``device.faults``), reconciled on every ``publish()`` and on every read and write request:

- OFFLINE: the server stops reading from every connection (new ones too); sockets stay open and
  requests go unanswered, as a hung controller behind a switch.
- REFUSING: nothing listens any more and every connection is dropped; when cleared the server
  listens again on the same port (a fresh start: sessions are gone, as after power-up).
- SLOW: Read and Write responses are delayed by ``faults.delay_s``. The delay holds the
  connection's request queue (asyncua serves a connection's requests in order), so every later
  request on that connection waits too; subscription notifications are not delayed.
- ERROR: every point's value carries a Bad status (``faults.error_code``, default
  Bad_DeviceFailure) and writes answer it.
- STUCK / NOISY: applied by ``SimDevice.read``, so the served values freeze or jitter.
- ``restart()``: stop and start on the same port; sessions and subscriptions are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from plc_sim.device import FaultKind, PointValue, PointWriteError, SimDevice
from plc_sim.domain import DeviceServerBase
from plc_sim.servers.opcua.internal import DeviceInternalServer
from plc_sim.servers.opcua.nodes import (
    NAMESPACE_INDEX,
    ServedPoint,
    add_device_nodes,
    bad_value,
    good_value,
    namespace_uri,
    numeric_node,
    point_address,
    python_value,
    served_points,
    status,
)
from plc_sim.servers.opcua.read_path import ReadFastPath
from plc_sim.servers.opcua.security import (
    ClientTrustList,
    OpcUaServerSecurity,
    PasswordUserManager,
    server_application_uri,
)

_log = logging.getLogger(__name__)

LIBRARY_LOGGER = "asyncua"
"""asyncua logs thousands of INFO lines while it builds a server."""

DEFAULT_ERROR_STATUS = StatusCodes.BadDeviceFailure
"""Part 4 7.39 Bad_DeviceFailure: the device behind the value has failed."""

OFFLINE_POLL_S = 0.02
"""How often an offline server looks for new connections to silence and for the fault's end."""

WRITES_PER_YIELD = 250
"""Values a publish writes before it lets the event loop run (a few milliseconds of work)."""


def _wall_clock_utc() -> datetime:
    return datetime.now(UTC)


class OpcUaDeviceServer(DeviceServerBase):
    """Serves one ``SimDevice`` over OPC UA on ``host:port`` (port 0: any free port)."""

    protocol_label = "OPC UA"

    def __init__(
        self,
        device: SimDevice,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        security: OpcUaServerSecurity | None = None,
        source_time: Callable[[], datetime] | None = None,
        max_nodes_per_read: int | None = None,
    ) -> None:
        """Serve ``device``; ``source_time`` (e.g. ``SimClock.now``) stamps published values
        and is the server's current time; ``max_nodes_per_read`` is advertised and enforced
        (default: asyncua's 10,000)."""
        super().__init__(device, host, port)
        self._max_nodes_per_read = max_nodes_per_read
        self._security = security
        self._source_time = source_time or _wall_clock_utc
        self._points = served_points(device.points)
        self._reads = ReadFastPath(self._points, self._apply_request_faults)
        self._server: Server | None = None
        self._iserver: DeviceInternalServer | None = None
        self._published: dict[str, PointValue] = {}
        self._last_read: list[PointValue] | None = None
        """The model values the last publish took (None: publish every point next time)."""
        self._error_shown: int | None = None
        self._refusing = False
        self._silencer: asyncio.Task[None] | None = None
        self._paused: list[asyncio.Transport] = []
        self._reconciler: asyncio.Task[None] | None = None
        self._lifecycle = asyncio.Lock()
        self._publishing = asyncio.Lock()
        device.restart_handler = self.restart

    @property
    def url(self) -> str:
        """The endpoint URL clients connect to: ``opc.tcp://host:port``."""
        return f"opc.tcp://{self._host}:{self.port}"

    @property
    def application_uri(self) -> str:
        """The server's ApplicationUri (its certificate must carry it)."""
        return server_application_uri(self._device.name)

    @property
    def namespace_uri(self) -> str:
        """The URI of the device's namespace, index 2."""
        return namespace_uri(self._device.name)

    @property
    def running(self) -> bool:
        """Whether the server is listening (False while refusing connections)."""
        return self._server is not None

    @property
    def read_path(self) -> ReadFastPath:
        """What serves the plain Reads of the points (``enabled``, ``served``, ``declined``)."""
        return self._reads

    def addresses(self) -> dict[str, str]:
        """Tag → ``ns=2;s=<tag>``, the center's OPC UA driver address; works before start."""
        return {point.spec.tag: point_address(point.spec.tag) for point in self._points}

    async def start(self) -> None:
        """Build the address space, publish the device's values and start listening."""
        async with self._lifecycle:
            if self._server is not None or self._refusing:
                raise RuntimeError(f"the OPC UA server of {self._device.name} is running")
            await self._start_server()

    async def stop(self) -> None:
        """Stop listening, drop every client and its session; idempotent, never raises."""
        async with self._lifecycle:
            self._refusing = False
            await self._stop_server()
            self._bound_port = None

    async def restart(self) -> None:
        """Stop and start again on the same port, as a PLC reboot: clients lose sessions."""
        async with self._lifecycle:
            await self._stop_server()
            if not self._device.faults.has(FaultKind.REFUSING):
                self._refusing = False
                await self._start_server()
        _log.info("OPC UA device %s restarted", self._device.name)

    async def publish(self) -> None:
        """Copy the device's changed values into the address space and reconcile faults."""
        await self._reconcile_listening()
        if self._server is None or self._device.faults.has(FaultKind.OFFLINE):
            self._watch_offline()
            return
        await self._publish_values()

    async def _start_server(self) -> None:
        _quiet_library_logs()
        server, iserver = await self._build()
        try:
            await server.start()
        except OSError as err:
            await _stop_quietly(server)
            raise OSError(
                f"OPC UA server of {self._device.name} cannot listen on "
                f"{self._host}:{self._requested_port}"
            ) from err
        self._server, self._iserver = server, iserver
        if server.bserver is None:
            raise RuntimeError("asyncua started without a socket server")
        self._bound_port = self._requested_port = int(server.bserver.port)
        self._error_shown = None
        # The nodes were built with the values just read; this catches what changed since and
        # shows an ERROR fault present at start.
        await self._publish_values()
        _log.debug("OPC UA device %s listening on %s", self._device.name, self.url)

    async def _stop_server(self) -> None:
        server, iserver = self._server, self._iserver
        self._server = self._iserver = None
        silencer, self._silencer = self._silencer, None
        if silencer is not None:
            silencer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await silencer
        self._paused.clear()
        if server is None or iserver is None:
            return
        await _stop_quietly(server)
        with contextlib.suppress(Exception):  # a session already closing is not worth a word
            await iserver.close_client_sessions()

    async def _build(self) -> tuple[Server, DeviceInternalServer]:
        """A configured asyncua server holding the device's address space (not listening)."""
        iserver = DeviceInternalServer()
        server = Server(iserver=iserver)
        server.set_endpoint(f"opc.tcp://{self._host}:{self._requested_port}")
        server.set_server_name(f"plc_sim {self._device.name}")
        server.disable_clock(True)
        await self._configure_security(server, iserver)
        await server.init()
        await self._enforce_read_limits(server, iserver)
        await server.set_application_uri(self.application_uri)
        index = await server.register_namespace(self.namespace_uri)
        if index != NAMESPACE_INDEX:
            raise RuntimeError(f"device namespace registered at {index}, not {NAMESPACE_INDEX}")
        initial = [python_value(p.spec, self._device.read(p.spec.tag)) for p in self._points]
        add_device_nodes(iserver.aspace, self._points, initial, self._source_time())
        self._published = {
            point.spec.tag: value for point, value in zip(self._points, initial, strict=True)
        }
        self._last_read = None
        security = self._security
        self._reads.secure_only = security is not None and security.secure_only
        trust_dir = security.trust_dir if security is not None else None
        self._reads.trust_list = ClientTrustList(trust_dir) if trust_dir is not None else None
        iserver.point_service.points = {point.node_id: point for point in self._points}
        iserver.point_service.point_writer = self._write_point
        iserver.connection_listener = self._on_connection
        server.subscribe_server_callback(CallbackType.PreRead, self._before_request)
        server.subscribe_server_callback(CallbackType.PreWrite, self._before_request)
        return server, iserver

    async def _enforce_read_limits(self, server: Server, iserver: DeviceInternalServer) -> None:
        """Advertise MaxNodesPerRead (Part 5 6.3.11) and enforce it on both Read paths, with the
        server's clock as every Read's ServerTimestamp (``read_rules``)."""
        node = server.get_node(
            numeric_node(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)
        )
        if self._max_nodes_per_read is not None:
            await node.write_value(ua.Variant(self._max_nodes_per_read, ua.VariantType.UInt32))
        advertised = int(await node.read_value())
        for enforcer in (iserver.point_service, self._reads):
            enforcer.max_nodes_per_read = advertised
            enforcer.server_time = self._source_time

    async def _configure_security(self, server: Server, iserver: DeviceInternalServer) -> None:
        security = self._security
        if security is None:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            server.set_identity_tokens([ua.AnonymousIdentityToken])
            iserver.set_user_manager(PasswordUserManager({}, allow_anonymous=True))
            return
        await server.load_certificate(security.certificate)
        await server.load_private_key(security.private_key)
        server.set_security_policy(security.policy_types())
        server.set_identity_tokens(security.identity_tokens())
        iserver.set_user_manager(
            PasswordUserManager(
                security.users,
                allow_anonymous=security.allow_anonymous,
                require_secure_channel=security.secure_only,
            )
        )

    async def _publish_values(self, *, force: bool = False) -> None:
        """Write every changed value (all when ``force``) or the ERROR status into the nodes."""
        # One writer at a time: a publish yields to the loop part-way through, and a request
        # that finds the ERROR fault changed publishes too.
        async with self._publishing:
            iserver = self._iserver
            if iserver is not None:
                await self._write_values(iserver, force=force)

    async def _write_values(self, iserver: DeviceInternalServer, *, force: bool) -> None:
        """Write the values into ``iserver``; give up if it stops serving part-way through.

        Each value is stamped as it is written, which is when this device takes it from its
        model: the SourceTimestamp is applied by the data source, as close to it as possible
        (Part 4 7.7.3), so a value written after thousands of others does not claim their time.
        Every ``WRITES_PER_YIELD`` writes the loop gets a turn, so that publish responses
        (Part 4 5.13.1), requests and other servers in the process are served in between.
        """
        faults = self._device.faults
        stamp = self._source_time
        write = iserver.aspace.write_attribute_value
        written = 0
        if faults.has(FaultKind.ERROR):
            code = faults.error_code if faults.error_code is not None else DEFAULT_ERROR_STATUS
            if self._error_shown == code:
                return
            self._error_shown = code
            for point in self._points:
                _checked(await write(point.node_id, _VALUE, bad_value(code, stamp())))
                written += 1
                if written % WRITES_PER_YIELD == 0 and not await self._still_serving(iserver):
                    return
            return
        if self._error_shown is not None:
            self._error_shown = None
            force = True
        published = self._published
        values = self._device.read_all()
        # Most model values do not change between two publishes ten times a second: compare
        # them as the model gives them, and convert only those that changed.
        last = None if force else self._last_read
        self._last_read = values
        if last is not None and last == values:
            return
        for index, point in enumerate(self._points):
            raw = values[index]
            if last is not None and last[index] == raw:
                continue
            tag = point.spec.tag
            value = python_value(point.spec, raw)
            if not force and published.get(tag) == value:
                continue
            published[tag] = value
            _checked(await write(point.node_id, _VALUE, good_value(value, point.vtype, stamp())))
            written += 1
            if written % WRITES_PER_YIELD == 0 and not await self._still_serving(iserver):
                return

    async def _still_serving(self, iserver: DeviceInternalServer) -> bool:
        """Let the loop run; whether ``iserver`` still serves (a stop or restart replaces it,
        and a restarted server publishes its values itself)."""
        await asyncio.sleep(0)
        return self._iserver is iserver

    async def _write_point(self, point: ServedPoint, data_value: ua.DataValue) -> ua.StatusCode:
        """Hand a client's write to the device; its verdict is the write's status."""
        faults = self._device.faults
        if faults.has(FaultKind.ERROR):
            code = faults.error_code if faults.error_code is not None else DEFAULT_ERROR_STATUS
            return status(code)
        variant = data_value.Value
        if variant is None:
            return status(StatusCodes.BadTypeMismatch)
        tag = point.spec.tag
        try:
            self._device.write(tag, variant.Value)
        except PointWriteError as err:
            _log.debug("OPC UA write refused by %s: %s", self._device.name, err)
            return status(StatusCodes.BadOutOfRange)
        value = python_value(point.spec, self._device.read(tag))
        self._published[tag] = value
        iserver = self._iserver
        if iserver is None:
            return status(StatusCodes.BadServerHalted)
        readback = good_value(value, point.vtype, self._source_time())
        return await iserver.aspace.write_attribute_value(point.node_id, _VALUE, readback)

    async def _before_request(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        """Carry out the device's faults before asyncua serves a client's Read or Write."""
        if event.is_external:
            await self._apply_request_faults()

    async def _apply_request_faults(self) -> None:
        """Carry out the device's faults before a client's request is served."""
        faults = self._device.faults
        if faults.has(FaultKind.REFUSING):
            # Stopping the server from inside one of its own requests would cancel this very
            # request; let a task do it and leave the request unanswered until it does.
            self._schedule_reconcile()
            await asyncio.Event().wait()
        if faults.has(FaultKind.OFFLINE):
            self._watch_offline()
            await self._until_online()
        if faults.has(FaultKind.SLOW) and faults.delay_s > 0:
            await asyncio.sleep(faults.delay_s)
        if faults.has(FaultKind.ERROR) != (self._error_shown is not None):
            await self._publish_values()

    async def _until_online(self) -> None:
        """Hold a request while the device is OFFLINE (faults are plain data: poll them)."""
        while self._device.faults.has(FaultKind.OFFLINE):  # noqa: ASYNC110 - nothing to await
            await asyncio.sleep(OFFLINE_POLL_S)

    def _schedule_reconcile(self) -> None:
        if self._reconciler is None or self._reconciler.done():
            self._reconciler = asyncio.create_task(
                self._reconcile_listening(), name=f"opcua faults {self._device.name}"
            )

    async def _reconcile_listening(self) -> None:
        """Stop listening under REFUSING; listen again on the same port once it is cleared."""
        refusing = self._device.faults.has(FaultKind.REFUSING)
        if refusing == self._refusing:
            return
        async with self._lifecycle:
            if refusing and not self._refusing and self._bound_port is not None:
                self._refusing = True
                await self._stop_server()
                _log.info("OPC UA device %s refuses connections", self._device.name)
            elif not refusing and self._refusing:
                self._refusing = False
                await self._start_server()
                _log.info("OPC UA device %s accepts connections again", self._device.name)

    def _watch_offline(self) -> None:
        """Start silencing every connection while the device is OFFLINE."""
        if not self._device.faults.has(FaultKind.OFFLINE) or self._server is None:
            return
        if self._silencer is None or self._silencer.done():
            self._silencer = asyncio.create_task(
                self._silence_while_offline(), name=f"opcua offline {self._device.name}"
            )

    def _on_connection(self, transport: asyncio.Transport) -> None:
        """Serve the new connection's Reads by the fast path, and silence a connection made
        while OFFLINE at once: a client's handshake takes a few milliseconds, less than the
        silencer's polling period."""
        self._reads.attach(transport)
        self._watch_offline()
        if self._silencer is not None and not self._silencer.done():
            self._silence(transport)

    def _silence(self, transport: asyncio.Transport) -> None:
        """Stop reading from a connection until OFFLINE is cleared (the silencer resumes it)."""
        if transport not in self._paused and not transport.is_closing():
            transport.pause_reading()
            self._paused.append(transport)

    async def _silence_while_offline(self) -> None:
        """Pause reading on every connection until OFFLINE is cleared, then resume them."""
        try:
            while self._device.faults.has(FaultKind.OFFLINE) and self._iserver is not None:
                for transport in self._iserver.asyncio_transports:
                    self._silence(transport)
                await asyncio.sleep(OFFLINE_POLL_S)
        finally:
            paused, self._paused = self._paused, []
            for transport in paused:
                if not transport.is_closing():
                    transport.resume_reading()


_VALUE = AttributeIds.Value


def _checked(status: ua.StatusCode) -> None:
    """Raise if asyncua refused to store a value (a bug in the served types, never a fault)."""
    status.check()


async def _stop_quietly(server: Server) -> None:
    try:
        await server.stop()
    except (OSError, RuntimeError) as err:  # a socket already gone is not worth a traceback
        _log.debug("OPC UA server stop: %s", err)


def _quiet_library_logs() -> None:
    """Keep asyncua at WARNING unless the application configured its level itself."""
    library = logging.getLogger(LIBRARY_LOGGER)
    if library.level == logging.NOTSET:
        library.setLevel(logging.WARNING)
