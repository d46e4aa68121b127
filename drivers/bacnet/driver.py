"""The BACnet/IP driver: batched reads, prioritised writes with readback, COV subscriptions.

bacpypes3 stays behind this package: its error, reject and abort PDUs become ``drivers.base``
errors here, with the cause chained, and no bacpypes3 type leaves the driver. Each driver owns
one BACnet/IP port (its own UDP socket and a minimal client device object) and talks to one
device at its direct address. UDP has no connection: the driver counts the device as
reachable while it answers, and a request that gets no answer fails after
``apdu_timeout_s * (retries + 1)``. Before the first request and after every silence the
driver checks that the device at the address is the configured device instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from bacpypes3.apdu import (
    AbortPDU,
    ComplexAckPDU,
    ConfirmedRequestPDU,
    Error,
    ErrorPDU,
    ErrorRejectAbortNack,
    ReadPropertyMultipleRequest,
    RejectPDU,
    SimpleAckPDU,
    SubscribeCOVRequest,
)
from bacpypes3.app import Application
from bacpypes3.appservice import ApplicationServiceAccessPoint
from bacpypes3.basetypes import (
    BinaryPV,
    PropertyIdentifier,
    PropertyReference,
    ReadAccessSpecification,
    Segmentation,
    StatusFlags,
)
from bacpypes3.comm import ServiceAccessPoint, bind
from bacpypes3.ipv4.link import NormalLinkLayer
from bacpypes3.local.device import DeviceObject
from bacpypes3.netservice import NetworkServiceAccessPoint, NetworkServiceElement
from bacpypes3.pdu import Address, IPv4Address
from bacpypes3.primitivedata import Null, ObjectIdentifier, Real, Unsigned

from controlcenter.model import Quality, Sample, Substatus, TagDef, Value
from controlcenter.ports import Clock
from drivers.bacnet.address import BacnetAddress, check_compatible, parse_address
from drivers.bacnet.codec import (
    CodecError,
    decode_present_value,
    decode_property,
    encode_present_value,
    quality_from_status_flags,
)
from drivers.bacnet.config import BacnetDeviceConfig
from drivers.bacnet.planner import ObjectRead, plan_batches
from drivers.bacnet.rpm_codec import (
    READ_PROPERTY_MULTIPLE,
    AckDecodingError,
    PropertyAccessError,
    PropertyResult,
    decode_ack,
)
from drivers.base import (
    AddressError,
    CommunicationTimeoutError,
    DeviceRejectedError,
    DriverDiagnostics,
    DriverError,
    NotConnectedError,
    SampleCallback,
    SubscriptionUnsupportedError,
    confirm_write,
)
from drivers.health import DriverHealth

_log = logging.getLogger(__name__)

DEFAULT_WRITE_PRIORITY = 8
"""Priority of a command that names none: manual operator (ASHRAE 135-2020, 19.2.1.1)."""

PRIORITY_LEVELS = 16

COV_RENEW_FRACTION = 0.8
"""Share of a COV subscription's lifetime after which it is renewed."""

SUBSCRIBE_CONCURRENCY = 16
"""SubscribeCOV requests in flight at once (a device's transaction table is small)."""

REQUEST_CACHE_SIZE = 1024
"""Encoded ReadPropertyMultiple requests kept (a poll repeats the same batches)."""

ADDRESS_CACHE_SIZE = 65536
"""Parsed point addresses kept (BacnetAddress is immutable)."""

VENDOR_IDENTIFIER = 999
"""Vendor identifier of the driver's client device object (no registered vendor)."""

WILDCARD_DEVICE_INSTANCE = 0x3FFFFF
"""Device instance 4194303: "the device that receives this request" (ASHRAE 135-2020,
12.11.1 and 15.5.2), so reading its object-identifier tells which device answers."""

BACNET_IP_MAC_LENGTH = 6
"""A BACnet/IP MAC address: 4 bytes of IPv4 address, then 2 of UDP port (Annex J.1.2)."""

_STATUS_FLAGS = "status-flags"
_PRESENT_VALUE = "present-value"
_BACPYPES_LOGGER = "bacpypes3"

# Answers that mean the device cannot serve ReadPropertyMultiple (clauses 18.9, 18.10).
_UNSUPPORTED_SERVICE = frozenset(
    {"unrecognized-service", "service-request-denied", "optional-functionality-not-supported"}
)
# Answers that mean the request's answer was too big for one APDU (clause 18.9).
_TOO_LONG = frozenset({"segmentation-not-supported", "buffer-overflow", "apdu-too-long"})


def quiet_bacpypes_logging() -> None:
    """Keep bacpypes3 from logging expected field faults; an explicit level is left alone."""
    logger = logging.getLogger(_BACPYPES_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL)


class BacnetErrorResponse(DeviceRejectedError):
    """The device answered with a BACnet Error, Reject or Abort PDU (clause 18)."""

    def __init__(self, message: str, *, kind: str, reason: str) -> None:
        super().__init__(message)
        self.kind = kind
        """``error``, ``reject`` or ``abort``."""
        self.reason = reason
        """``<error-class>/<error-code>`` for errors, the reject/abort reason otherwise."""

    @property
    def unknown_object(self) -> bool:
        """Whether the device has no such object."""
        return self.reason == "object/unknown-object"

    @property
    def service_unsupported(self) -> bool:
        """Whether the device does not implement the service."""
        return self.reason.rpartition("/")[2] in _UNSUPPORTED_SERVICE

    @property
    def too_long(self) -> bool:
        """Whether the answer did not fit the agreed APDU size."""
        return self.reason in _TOO_LONG


class DeviceIdentityError(DriverError):
    """The device at the configured address is another device instance than configured.

    A configuration error, not a field fault: the driver reads nothing from a device it was
    not configured for, and every point of the device is Bad ``config_error``.
    """

    substatus = Substatus.CONFIG_ERROR


class _Confirmation(Enum):
    """How the driver confirms, every interval, that the device still holds its COV
    subscriptions (a device may lose them on a restart, ASHRAE 135-2020 13.1)."""

    LISTED = "listed"
    """The device lists them in active-cov-subscriptions (12.11.39): read it every interval."""
    POLLED = "polled"
    """It does not: poll the subscribed present-values every interval as well, and subscribe
    again when time-of-device-restart (12.11.41) changes."""


@dataclass(frozen=True, slots=True)
class _Failure:
    """A property that could not be read, and why."""

    substatus: Substatus
    reason: str


@dataclass(frozen=True, slots=True)
class _Point:
    """A point to read: its tag definition and parsed address."""

    tag: TagDef
    address: BacnetAddress


@dataclass(slots=True)
class _CovObject:
    """One object watched by COV and the tags that show its present-value."""

    address: BacnetAddress
    object_id: Any
    process_id: int
    points: list[_Point]
    watch: _Watch
    last: dict[str, Sample] = field(default_factory=dict)
    """The last sample notified per tag, kept Uncertain when the subscription is lost."""


@dataclass(slots=True)
class _Watch:
    """What one ``subscribe`` call asked for."""

    callback: SampleCallback
    interval_s: float
    cov_objects: list[_CovObject] = field(default_factory=list)
    polled: list[_Point] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    confirmation: _Confirmation = _Confirmation.POLLED

    @property
    def points(self) -> list[_Point]:
        """Every point of the watch."""
        return [p for obj in self.cov_objects for p in obj.points] + list(self.polled)


class _UndecodedAckAccessPoint(ApplicationServiceAccessPoint):  # type: ignore[misc]
    """The application service access point, handing some ComplexACKs up undecoded.

    bacpypes3 decodes every ComplexACK into its generic sequence before the application sees
    it. The ACKs of the requests listed in ``undecoded`` (device address, invoke id) go up as
    they arrived, service data and all, for the driver to decode; their transactions (invoke
    ids, retries, timeouts, segmentation, errors, rejects and aborts) stay bacpypes3's.
    """

    def __init__(self, device_object: Any, device_info_cache: Any) -> None:
        ApplicationServiceAccessPoint.__init__(self, device_object, device_info_cache)
        self.undecoded: set[tuple[Any, int]] = set()

    async def sap_response(self, apdu: Any) -> None:
        """Hand a finished transaction's answer to the application (decoded unless listed)."""
        if (
            isinstance(apdu, ComplexAckPDU)
            and (apdu.pduSource, apdu.apduInvokeID) in self.undecoded
        ):
            await ServiceAccessPoint.sap_response(self, apdu)
            return
        await ApplicationServiceAccessPoint.sap_response(self, apdu)


class _ClientApplication(Application):  # type: ignore[misc]
    """The driver's BACnet application: its own UDP socket and COV notification intake."""

    def __init__(
        self,
        device_object: Any,
        address: Any,
        sock: socket.socket,
        on_notification: Callable[[Any], None],
    ) -> None:
        Application.__init__(self)
        self.asap = _UndecodedAckAccessPoint(device_object, self.device_info_cache)
        self.nsap = NetworkServiceAccessPoint()
        self.nse = NetworkServiceElement()
        bind(self.nse, self.nsap)
        bind(self, self.asap, self.nsap)
        self.link = NormalLinkLayer(address, bind_socket=sock)
        self.nsap.bind(self.link, address=address)
        self.add_object(device_object)
        self._on_notification = on_notification

    async def do_UnconfirmedCOVNotificationRequest(self, apdu: Any) -> None:
        """Hand an unconfirmed COV notification (13.7) to the driver."""
        self._on_notification(apdu)

    async def do_ConfirmedCOVNotificationRequest(self, apdu: Any) -> None:
        """Hand a confirmed COV notification (13.6) to the driver and acknowledge it."""
        self._on_notification(apdu)
        await self.response(SimpleAckPDU(context=apdu))

    async def read_multiple(self, address: Any, service_data: bytes) -> list[PropertyResult]:
        """Send a ReadPropertyMultiple request (15.7) and decode its ACK with ``rpm_codec``.

        The request goes through bacpypes3's own request machinery; only the ACK's decoding
        is the driver's. Errors, rejects and aborts raise as bacpypes3 raises them.
        """
        # The device's vendor information picks the object classes that type the values,
        # as in bacpypes3's read_property_multiple.
        vendor_info = await self.get_vendor_info(device_address=address)
        request = ConfirmedRequestPDU(service_choice=READ_PROPERTY_MULTIPLE, destination=address)
        request.put_data(service_data)
        answer = self.request(request)  # assigns the invoke id; the request is sent later
        key = (request.pduDestination, request.apduInvokeID)
        self.asap.undecoded.add(key)
        answer.add_done_callback(lambda _: self.asap.undecoded.discard(key))
        ack = await answer
        try:
            return decode_ack(ack, vendor_info)
        except AckDecodingError as err:
            # The error bacpypes3's sap_response makes of an ACK it cannot decode (it loses
            # it: without the invoke id no request matches it, and the request never ends).
            raise Error(
                source=ack.pduSource,
                service_choice=ack.apduService,
                errorClass="communication",
                errorCode="invalid-tag",
            ) from err

    def close(self) -> None:
        """Close the UDP endpoint."""
        self.link.close()


class BacnetDriver:
    """One BACnet/IP device, implementing ``drivers.base.Driver``."""

    def __init__(self, device: str, config: BacnetDeviceConfig, clock: Clock) -> None:
        self._device = device
        self._config = config
        self._clock = clock
        self._app: _ClientApplication | None = None
        self._socket: socket.socket | None = None
        self._device_address = Address(f"{config.host}:{config.port}")
        self._device_id = ObjectIdentifier(("device", config.device_instance))
        self._max_apdu = config.max_apdu
        self._rpm_supported = True
        self._connect_lock = asyncio.Lock()
        self._health = DriverHealth(device, _log)
        self._watches: list[_Watch] = []
        self._cov_by_process: dict[int, _CovObject] = {}
        self._next_process_id = 1
        self._identity_confirmed = False
        self._identity_error: DeviceIdentityError | None = None

    @property
    def device(self) -> str:
        """Name of the device this driver talks to."""
        return self._device

    @property
    def config(self) -> BacnetDeviceConfig:
        """The connection settings."""
        return self._config

    @property
    def connected(self) -> bool:
        """Whether the driver's port is open and the device answered the last request."""
        return self._app is not None and self._health.available is True

    @property
    def max_apdu(self) -> int:
        """The APDU size reads are planned for (the device's, if it accepts less)."""
        return self._max_apdu

    @property
    def local_port(self) -> int:
        """The driver's own bound UDP port; only while open."""
        if self._socket is None:
            raise RuntimeError(f"{self._where}: not connected")
        return int(self._socket.getsockname()[1])

    # -- Driver --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the port, check the device's identity, read its max-APDU-length-accepted.

        Raise NotConnectedError when the port cannot be bound or the device does not answer,
        DeviceIdentityError when the device at the address is another device instance.
        """
        async with self._connect_lock:
            await self._open()
            try:
                await self._verify_identity()
            except DeviceIdentityError:
                raise
            except DriverError as err:
                raise NotConnectedError(f"{self._where}: cannot connect: {err}") from err
            try:
                accepted = await self._call(
                    "read max-apdu-length-accepted",
                    lambda app: app.read_property(
                        self._device_address,
                        self._device_id,
                        PropertyIdentifier("max-apdu-length-accepted"),
                    ),
                )
            except BacnetErrorResponse as err:
                # The device answers: it is there, only the property is not (old devices).
                _log.debug("%s: max-apdu-length-accepted unreadable: %s", self._where, err)
                return
            except DriverError as err:
                raise NotConnectedError(f"{self._where}: cannot connect: {err}") from err
            if isinstance(accepted, int) and accepted > 0:
                self._max_apdu = min(self._config.max_apdu, int(accepted))

    async def close(self) -> None:
        """Stop every subscription and close the port; never raises."""
        watches, self._watches = self._watches, []
        for watch in watches:
            if watch.task is not None:
                watch.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch.task
        self._cov_by_process.clear()
        async with self._connect_lock:
            self._drop_app()

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        """Read points with ReadPropertyMultiple requests sized to the device's max APDU.

        One sample per point, in order. A point with an unusable address, or whose object or
        property the device does not have, gets a Bad sample; no answer raises.
        """
        now = self._clock.now()
        samples: dict[int, Sample] = {}
        readable: list[tuple[int, _Point]] = []
        for slot, tag in enumerate(points):
            try:
                address = _parsed_address(tag.address)
                check_compatible(address, tag.data_type)
            except AddressError as err:
                samples[slot] = _bad(tag, Substatus.CONFIG_ERROR, str(err), now)
                continue
            readable.append((slot, _Point(tag, address)))
        if readable:
            await self._ensure_identity()
        results = await self._read_properties([point for _, point in readable])
        now = self._clock.now()
        for slot, point in readable:
            samples[slot] = _sample(point, results, now)
        return [samples[slot] for slot in range(len(points))]

    async def subscribe(
        self, points: Sequence[TagDef], callback: SampleCallback, *, interval_s: float
    ) -> None:
        """Watch ``points`` by COV (present-values) and polling (the rest, and refusers).

        Every interval the subscriptions are confirmed (``_supervise``): a subscription the
        device no longer holds makes its points Uncertain and is made again, so a value is
        never Good and stale for longer than an interval. Subscriptions are renewed at 80 %
        of their lifetime and made again after a silence. While the device does not answer,
        every point is delivered once as Bad; DeviceIdentityError when another device answers.
        """
        if not self._config.cov:
            raise SubscriptionUnsupportedError(f"{self._where}: COV is disabled, poll instead")
        if interval_s <= 0:
            raise ValueError(f"subscription interval must be positive, got {interval_s}")
        if self._app is None:
            await self.connect()
        await self._ensure_identity()
        watch = _Watch(callback, interval_s)
        objects: dict[str, _CovObject] = {}
        now = self._clock.now()
        bad: list[Sample] = []
        for tag in points:
            try:
                address = parse_address(tag.address)
                check_compatible(address, tag.data_type)
            except AddressError as err:
                bad.append(_bad(tag, Substatus.CONFIG_ERROR, str(err), now))
                continue
            point = _Point(tag, address)
            if not address.is_present_value:
                watch.polled.append(point)
                continue
            cov = objects.get(address.object_key)
            if cov is None:
                cov = _CovObject(
                    address,
                    ObjectIdentifier(address.object_key),
                    self._new_process_id(),
                    [],
                    watch,
                )
                objects[address.object_key] = cov
                self._cov_by_process[cov.process_id] = cov
            cov.points.append(point)
        watch.cov_objects = list(objects.values())
        self._watches.append(watch)
        if bad:
            callback(bad)
        up = True
        marker: str | None = None
        try:
            if watch.cov_objects:
                marker = await self._restart_marker()
            await self._subscribe_objects(watch, watch.cov_objects)
            if watch.cov_objects:
                watch.confirmation = await self._confirmation_of(watch)
            if watch.polled:
                callback(await self.read([p.tag for p in watch.polled]))
        except DriverError as err:
            self._deliver_bad(watch, err)
            up = False
        watch.task = asyncio.create_task(
            self._supervise(watch, up, marker), name=f"bacnet-cov-{self._device}"
        )

    async def write(self, point: TagDef, value: Value, *, priority: int | None = None) -> Value:
        """WriteProperty ``value`` and return the value read back.

        A present-value is written at ``priority`` (default 8, manual operator) unless the
        object is an input; other properties are written without a priority. The device's
        refusal (e.g. write-access-denied) raises DeviceRejectedError naming it.
        """
        address = parse_address(point.address)
        check_compatible(address, point.data_type)
        await self._ensure_identity()
        if address.is_present_value:
            try:
                encoded = encode_present_value(address, value)
            except CodecError as err:
                raise AddressError(f"{point.name}: {err}") from err
        else:
            encoded = value
        level = _write_priority(address, priority)
        await self._write(point, address, encoded, level)
        return await self._readback(point)

    async def relinquish(self, point: TagDef, priority: int) -> Value:
        """Withdraw the command at ``priority`` (write Null, 19.2.1) and return the readback."""
        address = parse_address(point.address)
        if not address.is_present_value:
            raise AddressError(f"{point.name}: only a present-value can be relinquished")
        await self._ensure_identity()
        level = _write_priority(address, priority)
        await self._write(point, address, Null(()), level)
        return await self._readback(point)

    def diagnostics(self) -> DriverDiagnostics:
        """Request and error counts, the last error and the reachability."""
        return self._health.snapshot(self.connected)

    # -- connection ------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self._device} ({self._config.host}:{self._config.port})"

    async def _open(self) -> _ClientApplication:
        if self._app is not None:
            return self._app
        config = self._config
        if config.bbmd_host is not None:
            raise NotConnectedError(
                f"{self._where}: foreign-device registration with a BBMD is not supported; "
                "address the device directly"
            )
        quiet_bacpypes_logging()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((config.local_host, config.local_port))
        except OSError as err:
            sock.close()
            raise self._health.failed(
                NotConnectedError(
                    f"{self._where}: cannot bind {config.local_host}:{config.local_port}: {err}"
                ),
            ) from err
        sock.setblocking(False)
        local = IPv4Address(f"{config.local_host}/32:{sock.getsockname()[1]}")
        device_object = DeviceObject(
            objectIdentifier=("device", config.local_device_instance),
            objectName=f"controlcenter-{self._device}",
            vendorIdentifier=VENDOR_IDENTIFIER,
            apduTimeout=round(config.apdu_timeout_s * 1000),
            numberOfApduRetries=config.retries,
            maxApduLengthAccepted=config.max_apdu,
            segmentationSupported=Segmentation.segmentedReceive,
        )
        app = _ClientApplication(device_object, local, sock, self._on_notification)
        # bacpypes3 attaches the transport in a task; wait for it before the first request.
        await app.link.server._local_transport_ready.wait()
        self._app = app
        self._socket = sock
        return app

    def _drop_app(self) -> None:
        app, self._app = self._app, None
        sock, self._socket = self._socket, None
        if app is not None:
            try:
                app.close()
            except (OSError, RuntimeError) as err:
                _log.debug("%s: close: %s", self._where, err)
        if sock is not None and app is None:
            sock.close()

    async def _call(self, what: str, call: Callable[[Any], Awaitable[Any]]) -> Any:
        """Send one confirmed request; map bacpypes3's answers and silences to DriverError."""
        app = self._app if self._app is not None else await self._open()
        where = f"{self._where}: {what}"
        self._health.count_request()
        # bacpypes3's transaction state machine must run to its own end: cancelling it mid-way
        # (a scan abandoned at its timeout, a shutdown) leaves a timer that later fails on the
        # cancelled future. So the request is shielded, and its outcome retrieved if abandoned.
        request = asyncio.ensure_future(call(app))
        try:
            result = await asyncio.shield(request)
        except asyncio.CancelledError:
            request.add_done_callback(_retrieve_outcome)
            raise
        except ErrorPDU as err:
            reason = f"{err.errorClass}/{err.errorCode}"
            self._health.mark_available(self._where)
            self._health.count_error(Substatus.DEVICE_FAILURE.value, f"{where}: {reason}")
            raise BacnetErrorResponse(
                f"{where}: BACnet error {reason}", kind="error", reason=reason
            ) from err
        except RejectPDU as err:
            reason = str(err.apduAbortRejectReason)
            self._health.mark_available(self._where)
            self._health.count_error(Substatus.DEVICE_FAILURE.value, f"{where}: rejected: {reason}")
            raise BacnetErrorResponse(
                f"{where}: BACnet reject {reason}", kind="reject", reason=reason
            ) from err
        except AbortPDU as err:
            reason = str(err.apduAbortRejectReason)
            if reason == "no-response":
                # After a silence the device at the address is checked again before use.
                self._identity_confirmed = False
                raise self._health.failed(
                    CommunicationTimeoutError(
                        f"{where}: no response within {self._config.no_answer_after_s:g} s"
                    ),
                    err,
                ) from err
            self._health.mark_available(self._where)
            self._health.count_error(Substatus.DEVICE_FAILURE.value, f"{where}: aborted: {reason}")
            raise BacnetErrorResponse(
                f"{where}: BACnet abort {reason}", kind="abort", reason=reason
            ) from err
        except ErrorRejectAbortNack as err:  # any other negative answer
            raise self._health.failed(DriverError(f"{where}: {err!r}"), err) from err
        except OSError as err:
            self._identity_confirmed = False
            raise self._health.failed(NotConnectedError(f"{where}: {err}"), err) from err
        self._health.mark_available(self._where)
        return result

    # -- identity --------------------------------------------------------------------------

    async def _ensure_identity(self) -> None:
        """Check the device's identity unless it was confirmed since the last silence."""
        if not self._identity_confirmed:
            await self._verify_identity()

    async def _verify_identity(self) -> None:
        """Read the answering device's object-identifier and compare it with the configured one.

        The wildcard instance 4194303 addresses whatever device answers (12.11.1, 15.5.2),
        so its object-identifier is the device's real one. A device that does not take the
        wildcard is asked for the configured instance instead: unknown-object there also
        means another device. DeviceIdentityError on a mismatch, logged once until it is
        fixed.
        """
        configured = self._config.device_instance
        device = self._device_address
        wildcard = ObjectIdentifier(("device", WILDCARD_DEVICE_INSTANCE))
        object_identifier = PropertyIdentifier("object-identifier")
        try:
            found = await self._call(
                "read the device's object-identifier",
                lambda app: app.read_property(device, wildcard, object_identifier),
            )
            instance: int | None = int(found[1])
        except BacnetErrorResponse:
            try:
                await self._call(
                    f"read the object-identifier of device {configured}",
                    lambda app: app.read_property(device, self._device_id, object_identifier),
                )
                instance = configured
            except BacnetErrorResponse as err:
                # unknown-object: not this device. Anything else (no object-identifier to
                # read, an old device): it answers but cannot tell, so it is taken as is.
                instance = None if err.unknown_object else configured
        if instance != configured:
            if instance is None:
                found_text = f"has no device object {configured}"
            else:
                found_text = f"is device instance {instance}"
            error = DeviceIdentityError(
                f"{self._where}: configured device instance {configured}, but the device at "
                f"{self._config.host}:{self._config.port} {found_text}; fix device_instance "
                "or the address"
            )
            if self._identity_error is None or str(self._identity_error) != str(error):
                _log.error("%s", error)
            self._identity_error = error
            self._identity_confirmed = False
            raise error
        if self._identity_error is not None:
            _log.info("%s: device instance %d confirmed", self._where, configured)
        self._identity_error = None
        self._identity_confirmed = True

    # -- reading ---------------------------------------------------------------------------

    async def _read_properties(self, points: Sequence[_Point]) -> dict[tuple[str, str], object]:
        """Read every property the points need; value or ``_Failure`` per (object, property)."""
        wanted: dict[str, list[str]] = {}
        for point in points:
            names = wanted.setdefault(point.address.object_key, [])
            needed = [point.address.property_name]
            if point.address.is_present_value:
                needed.append(_STATUS_FLAGS)
            names.extend(name for name in needed if name not in names)
        reads = [ObjectRead(key, tuple(names)) for key, names in wanted.items()]
        results: dict[tuple[str, str], object] = {}
        if not reads:
            return results
        if self._app is None:
            await self.connect()
        if self._rpm_supported:
            for batch in plan_batches(reads, self._max_apdu):
                await self._read_multiple([reads[i] for i in batch], results)
        else:
            await self._read_singly(reads, results)
        return results

    async def _read_multiple(
        self, reads: list[ObjectRead], results: dict[tuple[str, str], object]
    ) -> None:
        service_data = _read_multiple_request(tuple(reads))
        address = self._device_address
        what = f"read {len(reads)} objects from {reads[0].object_key}"
        try:
            rows: list[PropertyResult] = await self._call(
                what, lambda app: app.read_multiple(address, service_data)
            )
        except BacnetErrorResponse as err:
            if err.service_unsupported:
                _log.info("%s: no ReadPropertyMultiple (%s), reading singly", self._where, err)
                self._rpm_supported = False
                await self._read_singly(reads, results)
                return
            if err.too_long and len(reads) > 1:
                half = len(reads) // 2
                await self._read_multiple(reads[:half], results)
                await self._read_multiple(reads[half:], results)
                return
            failure = _failure_of(err)
            for read in reads:
                for name in read.properties:
                    results[(read.object_key, name)] = failure
            return
        for row in rows:
            key = (row.object_key, row.property_name)
            results[key] = _access_result(key, row.value)

    async def _read_singly(
        self, reads: list[ObjectRead], results: dict[tuple[str, str], object]
    ) -> None:
        address = self._device_address
        for read in reads:
            object_id = ObjectIdentifier(read.object_key)
            for name in read.properties:
                property_id = PropertyIdentifier(name)
                try:
                    value = await self._call(
                        f"read {read.object_key}/{name}",
                        _property_reader(address, object_id, property_id),
                    )
                except BacnetErrorResponse as err:
                    results[(read.object_key, name)] = _failure_of(err)
                    continue
                results[(read.object_key, name)] = _access_result((read.object_key, name), value)

    async def _readback(self, point: TagDef) -> Value:
        # The device accepted the write: a failed readback leaves it unconfirmed, not refused.
        return await confirm_write(f"{self._where}: write {point.name}", self._read_one(point))

    async def _read_one(self, point: TagDef) -> Sample:
        return (await self.read([point]))[0]

    # -- writing ---------------------------------------------------------------------------

    async def _write(
        self, point: TagDef, address: BacnetAddress, value: object, priority: int | None
    ) -> None:
        at = f" at priority {priority}" if priority is not None else ""
        what = f"write {point.name} ({address}){at}"
        object_id = ObjectIdentifier(address.object_key)
        property_id = PropertyIdentifier(address.property_name)
        device = self._device_address
        await self._call(
            what,
            lambda app: app.write_property(
                device, object_id, property_id, value, priority=priority
            ),
        )

    # -- change of value -------------------------------------------------------------------

    def _new_process_id(self) -> int:
        # Subscriber process identifiers are Unsigned32 (13.14.1.1); keep them small and unique.
        process_id = self._next_process_id
        self._next_process_id = process_id % 0x3FFFFF + 1
        return process_id

    async def _subscribe_objects(self, watch: _Watch, objects: Sequence[_CovObject]) -> None:
        """(Re)subscribe COV objects of a watch; refusers move to polling."""
        gate = asyncio.Semaphore(SUBSCRIBE_CONCURRENCY)

        async def subscribe_one(cov: _CovObject) -> _CovObject | None:
            async with gate:
                request = SubscribeCOVRequest(
                    subscriberProcessIdentifier=cov.process_id,
                    monitoredObjectIdentifier=cov.object_id,
                    issueConfirmedNotifications=self._config.cov_confirmed,
                    lifetime=self._config.cov_lifetime_s,
                    destination=self._device_address,
                )
                try:
                    await self._call(
                        f"subscribe COV of {cov.address.object_key}",
                        lambda app: app.request(request),
                    )
                except BacnetErrorResponse as err:
                    _log.info(
                        "%s: %s refuses COV (%s), polling it",
                        self._where,
                        cov.address.object_key,
                        err.reason,
                    )
                    return cov
                return None

        refused = await asyncio.gather(*(subscribe_one(cov) for cov in list(objects)))
        for cov in refused:
            if cov is None:
                continue
            watch.cov_objects.remove(cov)
            self._cov_by_process.pop(cov.process_id, None)
            watch.polled.extend(cov.points)

    async def _restart_marker(self) -> str:
        """The device's time-of-device-restart, or '' when it has none (12.11.x)."""
        try:
            stamp = await self._call(
                "read time-of-device-restart",
                lambda app: app.read_property(
                    self._device_address,
                    self._device_id,
                    PropertyIdentifier("time-of-device-restart"),
                ),
            )
        except BacnetErrorResponse:
            return ""  # it answered, so it is alive; it just does not say when it restarted
        return _stamp_text(stamp)

    async def _listed_subscriptions(self) -> set[tuple[int, str]] | None:
        """(process id, object) of this driver's subscriptions in active-cov-subscriptions.

        None when the device does not have the property (12.11.39 is optional). A recipient
        given by address is this driver's when the address ends with its UDP port (a
        BACnet/IP MAC is the IP address and the port, Annex J.1.2; the IP address is the
        one the device sees, which may differ behind a router); by device, when it is this
        driver's device instance.
        """
        try:
            listed = await self._call(
                "read active-cov-subscriptions",
                lambda app: app.read_property(
                    self._device_address,
                    self._device_id,
                    PropertyIdentifier("active-cov-subscriptions"),
                ),
            )
        except BacnetErrorResponse as err:
            _log.debug("%s: active-cov-subscriptions unreadable: %s", self._where, err)
            return None
        port = self.local_port.to_bytes(2, "big")
        mine: set[tuple[int, str]] = set()
        for entry in listed or ():
            recipient = entry.recipient.recipient
            if recipient.address is not None:
                mac = bytes(recipient.address.macAddress)
                if len(mac) != BACNET_IP_MAC_LENGTH or mac[4:] != port:
                    continue
            elif recipient.device is None or (
                int(recipient.device[1]) != self._config.local_device_instance
            ):
                continue
            reference = entry.monitoredPropertyReference
            mine.add((int(entry.recipient.processIdentifier), str(reference.objectIdentifier)))
        return mine

    async def _confirmation_of(self, watch: _Watch) -> _Confirmation:
        """LISTED when the device lists every subscription just made, else POLLED."""
        listed = await self._listed_subscriptions()
        if listed is not None and all(
            (cov.process_id, str(cov.object_id)) in listed for cov in watch.cov_objects
        ):
            return _Confirmation.LISTED
        _log.info(
            "%s: the device does not list its COV subscriptions; subscribed values are "
            "also polled every %g s",
            self._where,
            watch.interval_s,
        )
        return _Confirmation.POLLED

    async def _confirm_listed(self, watch: _Watch) -> None:
        """Subscribe again what active-cov-subscriptions no longer lists; POLLED if unreadable.

        A missing subscription (a restart, a reset subscription table) makes its points
        Uncertain with their last value until the new subscription's first notification
        (13.1.2: sent at once) brings the current one.
        """
        listed = await self._listed_subscriptions()
        if listed is None:
            watch.confirmation = await self._confirmation_of(watch)
            return
        lost = [
            cov for cov in watch.cov_objects if (cov.process_id, str(cov.object_id)) not in listed
        ]
        if not lost:
            return
        _log.info(
            "%s: %d COV subscriptions no longer held by the device (restarted?), subscribing again",
            self._where,
            len(lost),
        )
        now = self._clock.now()
        reason = "COV subscription lost by the device; subscribing again"
        stale: list[Sample] = []
        for cov in lost:
            for point in cov.points:
                last = cov.last.get(point.tag.name)
                if last is None or last.value is None:
                    stale.append(_bad(point.tag, Substatus.COMM_FAILURE, reason, now))
                else:
                    quality = Quality.uncertain(Substatus.LAST_USABLE, reason)
                    stale.append(Sample(point.tag.name, last.value, quality, now, now))
        watch.callback(stale)
        await self._subscribe_objects(watch, lost)

    async def _supervise(self, watch: _Watch, up: bool, marker: str | None) -> None:
        """Confirm the subscriptions every interval, renew them, poll the rest, report outages.

        Every interval costs one confirmed request per device beyond the polled points: the
        read of active-cov-subscriptions (LISTED), or of time-of-device-restart (POLLED,
        where the subscribed present-values are polled too). So a value the device no longer
        reports is never Good for more than one interval and its request's timeout.
        """
        loop = asyncio.get_running_loop()
        lifetime = self._config.cov_lifetime_s
        renew_at = loop.time() + lifetime * COV_RENEW_FRACTION
        while True:
            await asyncio.sleep(watch.interval_s)
            try:
                await self._ensure_identity()
                polled = list(watch.polled)
                if watch.cov_objects:
                    resubscribe = not up or loop.time() >= renew_at
                    if watch.confirmation is _Confirmation.POLLED:
                        current = await self._restart_marker()
                        if marker is not None and current != marker:
                            _log.info("%s: device restarted, subscribing again", self._where)
                            resubscribe = True
                        marker = current
                    if resubscribe:
                        await self._subscribe_objects(watch, watch.cov_objects)
                        renew_at = loop.time() + lifetime * COV_RENEW_FRACTION
                    elif watch.confirmation is _Confirmation.LISTED:
                        await self._confirm_listed(watch)
                    if watch.confirmation is _Confirmation.POLLED:
                        polled += [p for cov in watch.cov_objects for p in cov.points]
                if polled:
                    watch.callback(await self.read([p.tag for p in polled]))
                if watch.cov_objects and watch.confirmation is _Confirmation.LISTED:
                    # The device answered and lists its subscriptions: values that sent no
                    # notification are unchanged, still current (an empty batch says so).
                    watch.callback([])
                up = True
            except DriverError as err:
                if up:
                    self._deliver_bad(watch, err)
                up = False

    def _deliver_bad(self, watch: _Watch, error: DriverError) -> None:
        now = self._clock.now()
        watch.callback([_bad(p.tag, error.substatus, str(error), now) for p in watch.points])

    def _on_notification(self, apdu: Any) -> None:
        """Turn a COV notification (13.6, 13.7) into samples for the watch's callback."""
        if apdu.pduSource != self._device_address:
            return
        cov = self._cov_by_process.get(int(apdu.subscriberProcessIdentifier))
        if cov is None or apdu.monitoredObjectIdentifier != cov.object_id:
            return
        results: dict[tuple[str, str], object] = {}
        key = cov.address.object_key
        for element in apdu.listOfValues:
            name = str(element.propertyIdentifier)
            if name == _PRESENT_VALUE:
                results[(key, name)] = element.value.cast_out(_present_value_type(cov.address))
            elif name == _STATUS_FLAGS:
                results[(key, name)] = element.value.cast_out(StatusFlags)
        if (key, _PRESENT_VALUE) not in results:
            return
        now = self._clock.now()
        samples = [_sample(point, results, now) for point in cov.points]
        for sample in samples:
            cov.last[sample.tag] = sample
        cov.watch.callback(samples)

    # -- bookkeeping -----------------------------------------------------------------------


@lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def _parsed_address(text: str) -> BacnetAddress:
    """``parse_address``, remembered: every poll reads the same addresses again."""
    return parse_address(text)


@lru_cache(maxsize=REQUEST_CACHE_SIZE)
def _read_multiple_request(reads: tuple[ObjectRead, ...]) -> bytes:
    """The service data of a ReadPropertyMultiple request (15.7.1.1), by bacpypes3's encoder."""
    specs = [
        ReadAccessSpecification(
            objectIdentifier=ObjectIdentifier(read.object_key),
            listOfPropertyReferences=[
                PropertyReference(propertyIdentifier=PropertyIdentifier(name))
                for name in read.properties
            ],
        )
        for read in reads
    ]
    return bytes(ReadPropertyMultipleRequest(listOfReadAccessSpecs=specs).encode().pduData)


def _property_reader(address: Any, object_id: Any, property_id: Any) -> Callable[[Any], Any]:
    """A ReadProperty call for ``_call`` (bound now, not to a loop variable)."""
    return lambda app: app.read_property(address, object_id, property_id)


def _write_priority(address: BacnetAddress, priority: int | None) -> int | None:
    """The priority a write carries: present-values of commandable kinds only (19.2)."""
    if priority is not None and not 1 <= priority <= PRIORITY_LEVELS:
        raise ValueError(f"BACnet priority {priority} outside 1..{PRIORITY_LEVELS}")
    if not address.is_present_value or address.object_type.is_input:
        return None
    return DEFAULT_WRITE_PRIORITY if priority is None else priority


def _present_value_type(address: BacnetAddress) -> type[Any]:
    if address.object_type.is_binary:
        return BinaryPV  # type: ignore[no-any-return]
    if address.object_type.is_multi_state:
        return Unsigned  # type: ignore[no-any-return]
    return Real  # type: ignore[no-any-return]


def _failure_of(error: BacnetErrorResponse) -> _Failure:
    if error.unknown_object:
        return _Failure(Substatus.CONFIG_ERROR, str(error))
    return _Failure(Substatus.DEVICE_FAILURE, str(error))


def _access_result(key: tuple[str, str], value: object) -> object:
    """A ReadPropertyMultiple result element: the value, or the property access error."""
    if isinstance(value, PropertyAccessError):
        return _access_failure(key, value.error_class, value.error_code)
    error_class = getattr(value, "errorClass", None)
    if error_class is None:
        return value
    return _access_failure(key, str(error_class), str(value.errorCode))  # type: ignore[attr-defined]


def _access_failure(key: tuple[str, str], error_class: str, error_code: str) -> _Failure:
    """The failure of a property the device could not read (an unknown one: configuration)."""
    reason = f"{key[0]}/{key[1]}: BACnet error {error_class}/{error_code}"
    unknown = error_class in ("object", "property") and error_code in (
        "unknown-object",
        "unknown-property",
    )
    return _Failure(Substatus.CONFIG_ERROR if unknown else Substatus.DEVICE_FAILURE, reason)


def _sample(point: _Point, results: dict[tuple[str, str], object], now: datetime) -> Sample:
    address, tag = point.address, point.tag
    raw = results.get((address.object_key, address.property_name))
    if raw is None:
        return _bad(tag, Substatus.COMM_FAILURE, f"{address}: no value in the answer", now)
    if isinstance(raw, _Failure):
        return _bad(tag, raw.substatus, raw.reason, now)
    quality = Quality.good()
    try:
        if address.is_present_value:
            flags = results.get((address.object_key, _STATUS_FLAGS))
            bits = None if flags is None or isinstance(flags, _Failure) else list(flags)  # type: ignore[call-overload]
            quality = quality_from_status_flags(bits, address.object_key)
            value = decode_present_value(address, raw, tag.data_type)
        else:
            value = decode_property(address, raw, tag.data_type)
    except CodecError as err:
        return _bad(tag, Substatus.CONFIG_ERROR, str(err), now)
    return Sample(tag.name, value, quality, now, now)


def _stamp_text(stamp: object) -> str:
    for choice in ("sequenceNumber", "dateTime", "time"):
        value = getattr(stamp, choice, None)
        if value is not None:
            return f"{choice}:{value}"
    return repr(stamp)


def _bad(tag: TagDef, substatus: Substatus, reason: str, now: datetime) -> Sample:
    return Sample(tag.name, None, Quality.bad(substatus, reason), now, now)


def _retrieve_outcome(request: asyncio.Future[Any]) -> None:
    """Mark an abandoned request's outcome as seen (its caller was cancelled)."""
    if not request.cancelled():
        request.exception()
