"""A simulated device served as one BACnet/IP device (bacpypes3), with injectable faults.

Each ``SimDevice`` becomes one BACnet device on its own UDP port: a device object (instance
``device.device_instance``, object name = device name, max-APDU-length-accepted 1476,
segmentation supported) and one object per point, typed and numbered as
``plc_sim.servers.bacnet.object_map`` describes. Every object carries object-name (the tag),
description, present-value, status-flags, out-of-service and, for analog objects, units and
cov-increment; multi-state objects carry number-of-states and state-text.

Commandable objects (ASHRAE 135-2020, clause 19.2) keep a 16-slot priority array. A
WriteProperty of present-value at a priority (16 when none is given, 19.2.1) fills that slot,
writing Null relinquishes it; the value of the highest-priority non-null slot is applied with
``device.write``; when every slot is null ``device.release`` returns the point to its automatic
value. The priority array lives in the server, not in the bacpypes3 objects, so commands
survive a restart as they survive a controller reboot. Present-value always shows what the
device reports (``device.read``), refreshed by ``publish()`` and right after every command.
Writes to objects that are not commandable, and to any property but present-value (the
priority array included), answer ``property/write-access-denied``; a value of the wrong
datatype answers ``property/invalid-datatype`` and a value outside the object's range (a binary
enumeration other than 0/1, a state beyond number-of-states, a number beyond the point's
limits) ``property/value-out-of-range`` (15.9.1.3.2). WritePropertyMultiple stops at the first
failed write and answers its own error naming it (15.10.1.3.2). Every confirmed request is
answered: a handler that fails unexpectedly answers an Abort, so no invoke id stays open.

The device object takes the wildcard instance 4194303 as itself (12.11.1, 15.5.2), lists the
services it executes and the object types it can hold (protocol-services-supported,
protocol-object-types-supported), its real COV subscriptions (active-cov-subscriptions,
12.11.39), and keeps local-time, local-date, utc-offset and daylight-savings-status in the
server's time zone (the city's) from the server's clock.

Faults (``device.faults``) as a client sees them:

- OFFLINE: every request is dropped silently and no COV notification is sent.
- REFUSING: the UDP endpoint is closed (the port answers ICMP port-unreachable) and the same
  port is bound again when the fault is cleared; the device comes back as after a power cycle,
  without its COV subscriptions.
- SLOW: every confirmed request is answered after ``faults.delay_s``.
- ERROR: ReadProperty, ReadPropertyMultiple, WriteProperty and SubscribeCOV are answered with a
  BACnet Error: class device, code ``faults.error_code`` (a BACnetErrorCode number) or
  operational-problem (25).
- STUCK and NOISY: applied to values by ``SimDevice.read``.

Reads of present-value and status-flags of point objects (ReadProperty and
ReadPropertyMultiple, the bulk of a poll) are answered from the served values by
``plc_sim.servers.bacnet.codec`` without bacpypes3's generic decoding and encoding; every other
property, object or request form gets bacpypes3's answer, byte for byte the same. Objects are
built with their class's properties looked up once (``_PresetSequenceInit``) and share one
relinquished priority value, so a device of hundreds of points starts in well under a second.

Changes of OFFLINE/REFUSING take effect at the next ``publish()`` (the city publishes after
every physics step); ``restart()`` closes the device and opens it again on the same port, as a
reboot: COV subscriptions are lost, the device object's time-of-device-restart (a sequence
number) counts up so clients can tell.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import partial
from typing import Any

from bacpypes3.apdu import (
    APCI,
    APDU,
    AbortPDU,
    APCISequence,
    ComplexAckPDU,
    ConfirmedRequestPDU,
    Error,
    ReadPropertyMultipleRequest,
    ReadPropertyRequest,
    SimpleAckPDU,
    SubscribeCOVRequest,
    WritePropertyMultipleError,
    WritePropertyMultipleRequest,
    WritePropertyRequest,
)
from bacpypes3.app import Application
from bacpypes3.appservice import ApplicationServiceAccessPoint, ServerSSM
from bacpypes3.basetypes import (
    BinaryPV,
    COVSubscription,
    DeviceAddress,
    EngineeringUnits,
    ErrorType,
    EventState,
    ListOfCOVSubscription,
    ObjectPropertyReference,
    ObjectTypesSupported,
    Polarity,
    PriorityArray,
    PriorityValue,
    PropertyIdentifier,
    Recipient,
    RecipientProcess,
    Reliability,
    Segmentation,
    ServicesSupported,
    StatusFlags,
    TimeStamp,
)
from bacpypes3.comm import bind
from bacpypes3.constructeddata import Array, Sequence
from bacpypes3.errors import ExecutionError, PropertyError, RejectException
from bacpypes3.ipv4.link import NormalLinkLayer
from bacpypes3.local.cov import COVIncrementCriteria, GenericCriteria
from bacpypes3.local.device import DeviceObject
from bacpypes3.local.object import Object as LocalObject
from bacpypes3.netservice import NetworkServiceAccessPoint, NetworkServiceElement
from bacpypes3.object import AnalogInputObject as _AnalogInputBase
from bacpypes3.object import AnalogOutputObject as _AnalogOutputBase
from bacpypes3.object import AnalogValueObject as _AnalogValueBase
from bacpypes3.object import BinaryInputObject as _BinaryInputBase
from bacpypes3.object import BinaryOutputObject as _BinaryOutputBase
from bacpypes3.object import BinaryValueObject as _BinaryValueBase
from bacpypes3.object import MultiStateValueObject as _MultiStateValueBase
from bacpypes3.pdu import IPv4Address
from bacpypes3.primitivedata import (
    Boolean,
    Date,
    Integer,
    Null,
    ObjectIdentifier,
    ObjectType,
    Time,
    Unsigned,
)
from bacpypes3.service.object import read_property_to_result_element

from plc_sim.device import FaultKind, PointSpec, PointValue, PointWriteError, SimDevice
from plc_sim.domain import DeviceServerBase
from plc_sim.servers.bacnet import codec as bacnet_codec
from plc_sim.servers.bacnet.object_map import (
    ObjectPlan,
    engineering_units,
    plan_objects,
    state_count,
)

_log = logging.getLogger(__name__)

MAX_APDU_LENGTH = 1476
"""Largest APDU the device accepts: the BACnet/IP maximum (ASHRAE 135-2020, Annex J / 6.2.4)."""

VENDOR_IDENTIFIER = 999
"""Vendor identifier of the simulated devices (no registered vendor stands behind them)."""

OPERATIONAL_PROBLEM = 25
"""BACnetErrorCode operational-problem (ASHRAE 135-2020, 21), the ERROR fault's default."""

PRIORITY_LEVELS = 16
"""Slots of a priority array (ASHRAE 135-2020, 19.2.2)."""

DEFAULT_WRITE_PRIORITY = 16
"""Priority of a write to a commandable property that names none (19.2.1)."""

WILDCARD_DEVICE_INSTANCE = 0x3FFFFF
"""Device instance 4194303: "this device" in a request (ASHRAE 135-2020, 12.11.1 / 15.5.2)."""

_DEVICE_TYPE = int(ObjectType.device)

SUPPORTED_OBJECT_TYPES = (
    "device",
    "analog-input",
    "analog-output",
    "analog-value",
    "binary-input",
    "binary-output",
    "binary-value",
    "multi-state-value",
)
"""Object types a simulated device can contain (protocol-object-types-supported, 12.11.15)."""

EXECUTED_SERVICES = (
    "readProperty",
    "readPropertyMultiple",
    "writeProperty",
    "writePropertyMultiple",
    "subscribeCOV",
    "whoHas",
    "whoIs",
)
"""Services the device executes (protocol-services-supported, 12.11.14): the confirmed ones it
answers with a result, Who-Has (answered by I-Have) and Who-Is (answered by I-Am). Services it
only initiates (I-Am, I-Have, COV notifications) are not listed."""


_SERVICES_WITH_FAULT_ERRORS = (
    ReadPropertyRequest,
    ReadPropertyMultipleRequest,
    WritePropertyRequest,
    SubscribeCOVRequest,
)

_BACPYPES_LOGGERS = ("bacpypes3",)

_CLOSE_TURNS = 10
"""Event-loop turns to wait for a closed transport to release its socket."""


def quiet_bacpypes_logging() -> None:
    """Keep bacpypes3 from logging expected field faults; explicit levels are left alone."""
    for name in _BACPYPES_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.CRITICAL)


@dataclass(frozen=True, slots=True)
class BacnetDeviceQuirks:
    """Ways a real device's object falls short of the full standard, to test clients against.

    Many field devices (bacnet-stack's demo server among them) never set
    time-of-device-restart, and some keep active-cov-subscriptions empty; a client that
    relies on either to notice a restart keeps stale values. The defaults are the conformant
    device.
    """

    time_of_device_restart: bool = True
    """Whether the device object has time-of-device-restart (12.11.41)."""
    lists_cov_subscriptions: bool = True
    """Whether active-cov-subscriptions lists the subscriptions (else it is always empty)."""


@dataclass(slots=True)
class _ServedPoint:
    """One point's BACnet state that outlives the bacpypes3 objects (restarts keep it)."""

    plan: ObjectPlan
    spec: PointSpec
    slots: list[PointValue | None] = field(default_factory=lambda: [None] * PRIORITY_LEVELS)
    published: PointValue | None = None
    fault: bool = False
    out_of_service: bool = False
    overridden: bool = False

    @property
    def active_priority(self) -> int | None:
        """The highest priority (1..16) holding a command, or None when all are relinquished."""
        for index, slot in enumerate(self.slots):
            if slot is not None:
                return index + 1
        return None


def _class_properties(cls: type[Any]) -> dict[str, property]:
    """The elements of an object class that are Python properties, found once per class.

    bacpypes3 asks ``inspect.getattr_static`` this on every construction and every attribute
    access (about 0.1 ms a time, dozens of times per object); the answer depends only on the
    class, as a property is a data descriptor and wins over the instance dictionary.
    """
    found = _CLASS_PROPERTIES.get(cls)
    if found is None:
        found = {}
        for attr in cls._elements:
            candidate = inspect.getattr_static(cls, attr, None)
            if isinstance(candidate, property):
                found[attr] = candidate
        _CLASS_PROPERTIES[cls] = found
    return found


_CLASS_PROPERTIES: dict[type[Any], dict[str, property]] = {}


class _PresetSequenceInit(Sequence):  # type: ignore[misc]
    """``Sequence.__init__`` for keyword values, with the class's properties looked up once.

    Placed right before ``Sequence`` in a served object's method order, so the object and
    local-object initialisers of bacpypes3 run unchanged around it. Behaves as the original
    for keyword arguments (the only form used here): values are cast to the element type,
    class prototypes fill what is not given, and every other element that is not a property
    starts as None.
    """

    def __init__(self, arg: Any = None, **kwargs: Any) -> None:
        if arg is not None:
            super().__init__(arg, **kwargs)
            return
        cls = type(self)
        elements: dict[str, Any] = cls._elements
        wrong = set(kwargs).difference(elements)
        if wrong:
            raise AttributeError(f"not a sequence element: {', '.join(sorted(wrong))}")
        assign = super(Sequence, self).__setattr__
        prototypes: dict[str, Any] = cls._inits
        properties = _class_properties(cls)
        for attr, element in elements.items():
            value = kwargs[attr] if attr in kwargs else prototypes.get(attr)
            if value is None:
                if attr not in properties:
                    assign(attr, None)
                continue
            if value.__class__ != element:
                value = element(element.cast(value))
            assign(attr, value)


class _SimObject:
    """Behaviour shared by every served object: writes go to the device, flags to the server.

    Attribute access mirrors bacpypes3's local object (element casting, change monitors for
    COV) with the class's properties looked up once instead of on every access.
    """

    _served: _ServedPoint
    _on_command: Callable[[_ServedPoint, int, PointValue | None], None]

    def __getattribute__(self, attr: str) -> Any:
        """An element's value through its element type; anything else as a plain attribute."""
        if attr[0] == "_":
            return object.__getattribute__(self, attr)
        cls: type[Any] = type(self)
        element = cls._elements.get(attr)
        if element is None:
            return object.__getattribute__(self, attr)
        found = _class_properties(cls).get(attr)
        if found is not None and inspect.iscoroutinefunction(found.fget):
            return LocalObject.__getattribute__(self, attr)
        return element.get_attribute(getter=partial(object.__getattribute__, self, attr))

    def __setattr__(self, attr: str, value: Any) -> None:
        """Set an element, cast to its type; tell the change monitors when it changed."""
        if attr[0] == "_":
            object.__setattr__(self, attr, value)
            return
        cls: type[Any] = type(self)
        found = _class_properties(cls).get(attr)
        if found is not None and (
            inspect.iscoroutinefunction(found.fget) or inspect.iscoroutinefunction(found.fset)
        ):
            LocalObject.__setattr__(self, attr, value)
            return
        element = cls._elements[attr]
        if value.__class__ != element:
            value = element(element.cast(value))
        base = super(LocalObject, self)
        getter = partial(base.__getattribute__, attr)
        current = getter()
        if value == current:
            return
        element.set_attribute(getter=getter, setter=partial(base.__setattr__, attr), value=value)
        for monitor in self._property_monitors[attr]:
            monitor(current, value)

    @property
    def statusFlags(self) -> StatusFlags:
        """Status flags (12.1.x): in-alarm never set; fault, overridden, out-of-service."""
        served = self._served
        return StatusFlags(
            [0, int(served.fault), int(served.overridden), int(served.out_of_service)]
        )

    @statusFlags.setter
    def statusFlags(self, value: object) -> None:
        """Status flags are computed; writes (from initialisation) are ignored."""

    async def write_property(
        self,
        attr: int | str,
        value: Any,
        index: int | None = None,
        priority: int | None = None,
    ) -> None:
        """Accept only present-value of commandable objects; everything else is read-only."""
        served = self._served
        name = attr if isinstance(attr, str) else _property_name(attr)
        if name not in ("presentValue", "present-value") or not served.plan.commandable:
            raise PropertyError("writeAccessDenied")
        if index is not None:
            raise PropertyError("propertyIsNotAnArray")
        level = DEFAULT_WRITE_PRIORITY if priority is None else int(priority)
        if not 1 <= level <= PRIORITY_LEVELS:
            raise ExecutionError("services", "parameterOutOfRange")
        command = None if isinstance(value, Null) else _model_value(served, value)
        self._on_command(served, level, command)


def _encoded_property(point: tuple[Any, _ServedPoint], property_id: int) -> bytes | None:
    """A point object's present-value or status-flags, encoded; None for other properties."""
    obj, served = point
    if property_id == bacnet_codec.STATUS_FLAGS:
        return bacnet_codec.encode_status_flags(
            served.fault, served.overridden, served.out_of_service
        )
    if property_id != bacnet_codec.PRESENT_VALUE:
        return None
    value = object.__getattribute__(obj, "presentValue")
    if value is None:
        return None
    object_type = served.plan.object_type
    try:
        if object_type.startswith("binary"):
            return bacnet_codec.encode_enumerated(int(value))
        if object_type == "multi-state-value":
            return bacnet_codec.encode_unsigned(int(value))
        return bacnet_codec.encode_real(float(value))
    except bacnet_codec.CodecError:
        return None


def _property_name(identifier: int) -> str:
    return str(PropertyIdentifier(identifier).attr)


def _model_value(served: _ServedPoint, value: Any) -> PointValue:
    """A written BACnet value as the model's value; PropertyError when it cannot be one."""
    object_type = served.plan.object_type
    try:
        if object_type.startswith("binary"):
            # BACnetBinaryPV has two values (21): any other enumeration is out of range, not
            # "inactive" (which would switch the output off).
            state = int(value)
            if state not in (int(BinaryPV.inactive), int(BinaryPV.active)):
                raise PropertyError("valueOutOfRange")
            return state == int(BinaryPV.active)
        if object_type == "multi-state-value":
            state = int(value)
            if not 1 <= state <= state_count(served.spec):
                raise PropertyError("valueOutOfRange")
            return state - 1
        number = float(value)
    except (TypeError, ValueError) as err:
        raise PropertyError("invalidDataType") from err
    if not math.isfinite(number):
        raise PropertyError("valueOutOfRange")
    return number


class _AnalogInput(_SimObject, LocalObject, _AnalogInputBase, _PresetSequenceInit):  # type: ignore[misc]
    _cov_criteria = COVIncrementCriteria


class _AnalogOutput(_SimObject, LocalObject, _AnalogOutputBase, _PresetSequenceInit):  # type: ignore[misc]
    _cov_criteria = COVIncrementCriteria


class _AnalogValue(_SimObject, LocalObject, _AnalogValueBase, _PresetSequenceInit):  # type: ignore[misc]
    _cov_criteria = COVIncrementCriteria


class _BinaryInput(_SimObject, LocalObject, _BinaryInputBase, _PresetSequenceInit):  # type: ignore[misc]
    _cov_criteria = GenericCriteria


class _BinaryOutput(_SimObject, LocalObject, _BinaryOutputBase, _PresetSequenceInit):  # type: ignore[misc]
    _cov_criteria = GenericCriteria


class _BinaryValue(_SimObject, LocalObject, _BinaryValueBase, _PresetSequenceInit):  # type: ignore[misc]
    _cov_criteria = GenericCriteria


class _MultiStateValue(_SimObject, LocalObject, _MultiStateValueBase, _PresetSequenceInit):  # type: ignore[misc]
    _cov_criteria = GenericCriteria


_OBJECT_CLASSES: dict[str, type[Any]] = {
    "analog-input": _AnalogInput,
    "analog-output": _AnalogOutput,
    "analog-value": _AnalogValue,
    "binary-input": _BinaryInput,
    "binary-output": _BinaryOutput,
    "binary-value": _BinaryValue,
    "multi-state-value": _MultiStateValue,
}


class _SimDeviceObject(DeviceObject):  # type: ignore[misc]
    """The device object: clock properties in the city's time zone, honest capability lists.

    local-date, local-time, utc-offset and daylight-savings-status (ASHRAE 135-2020,
    12.11.19-12.11.22) are read from the server's clock and time zone at every read;
    protocol-services-supported and protocol-object-types-supported (12.11.14, 12.11.15)
    list what the simulated device implements.
    """

    _now: Callable[[], datetime]
    _time_zone: tzinfo

    def _local_now(self) -> datetime:
        return self._now().astimezone(self._time_zone)

    @property
    def localDate(self) -> Date:
        """Today in the device's time zone (day of week 1 = Monday, 21)."""
        now = self._local_now()
        return Date((now.year - 1900, now.month, now.day, now.isoweekday()))

    @localDate.setter
    def localDate(self, value: object) -> None:
        """The date follows the clock; writes are ignored."""

    @property
    def localTime(self) -> Time:
        """The time of day in the device's time zone, to the hundredth."""
        now = self._local_now()
        return Time((now.hour, now.minute, now.second, now.microsecond // 10_000))

    @localTime.setter
    def localTime(self, value: object) -> None:
        """The time follows the clock; writes are ignored."""

    @property
    def utcOffset(self) -> Integer:
        """Minutes to add to local time to get UTC (12.11.20): -60 for UTC+1."""
        offset = self._local_now().utcoffset()
        minutes = 0 if offset is None else round(offset.total_seconds() / 60)
        return Integer(-minutes)

    @utcOffset.setter
    def utcOffset(self, value: object) -> None:
        """The offset follows the time zone; writes are ignored."""

    @property
    def daylightSavingsStatus(self) -> Boolean:
        """Whether daylight saving time is in effect now (12.11.22)."""
        return Boolean(bool(self._local_now().dst()))

    @daylightSavingsStatus.setter
    def daylightSavingsStatus(self, value: object) -> None:
        """Daylight saving follows the time zone; writes are ignored."""

    @property
    def protocolServicesSupported(self) -> ServicesSupported:
        """The services the device executes (EXECUTED_SERVICES)."""
        services = ServicesSupported([])
        for name in EXECUTED_SERVICES:
            services[getattr(ServicesSupported, name)] = 1
        return services

    @protocolServicesSupported.setter
    def protocolServicesSupported(self, value: object) -> None:
        """Fixed by the implementation; writes are ignored."""

    @property
    def protocolObjectTypesSupported(self) -> ObjectTypesSupported:
        """The object types a simulated device can contain (SUPPORTED_OBJECT_TYPES)."""
        types = ObjectTypesSupported([])
        for name in SUPPORTED_OBJECT_TYPES:
            types[int(ObjectType(name))] = 1
        return types

    @protocolObjectTypesSupported.setter
    def protocolObjectTypesSupported(self, value: object) -> None:
        """Fixed by the implementation; writes are ignored."""


class _FastReadRequest(ConfirmedRequestPDU):  # type: ignore[misc]
    """A ReadProperty(Multiple) request read by the fast codec, with its undecoded original.

    The application answers it from the served points; the original is decoded the generic
    way only when something in the request is not a point's present-value or status-flags.
    """

    def __init__(
        self,
        original: Any,
        single: bacnet_codec.PropertyRead | None,
        multiple: tuple[bacnet_codec.ObjectReads, ...] | None,
    ) -> None:
        super().__init__()
        APCI.update(self, original)
        self.original = original
        self.single = single
        self.multiple = multiple


def _fast_read_request(apdu: Any) -> _FastReadRequest | None:
    """The request as a ``_FastReadRequest`` when it is a read the codec parses, else None."""
    if not isinstance(apdu, ConfirmedRequestPDU) or isinstance(apdu, APCISequence):
        return None
    if apdu.apduService == bacnet_codec.READ_PROPERTY:
        single = bacnet_codec.parse_read_property(bytes(apdu.pduData))
        return None if single is None else _FastReadRequest(apdu, single, None)
    if apdu.apduService == bacnet_codec.READ_PROPERTY_MULTIPLE:
        multiple = bacnet_codec.parse_read_property_multiple(bytes(apdu.pduData))
        return None if multiple is None else _FastReadRequest(apdu, None, multiple)
    return None


class _FastReadServerSSM(ServerSSM):  # type: ignore[misc]
    """A server transaction (ASHRAE 135-2020, 5.4.5) that hands simple reads up undecoded."""

    async def request(self, apdu: Any) -> None:
        """Pass a complete request to the application; reads skip the generic decoder."""
        fast = _fast_read_request(apdu)
        if fast is None:
            await super().request(apdu)
            return
        fast.pduSource = self.pdu_address
        fast.pduDestination = None
        await self.ssmSAP.sap_request(fast)


class _FaultyServiceAccessPoint(ApplicationServiceAccessPoint):  # type: ignore[misc]
    """Drops every incoming PDU while the device is OFFLINE (a hung controller answers nothing)."""

    def __init__(self, device: SimDevice, device_object: Any, device_info_cache: Any) -> None:
        super().__init__(device_object, device_info_cache)
        self._device = device

    async def confirmation(self, pdu: Any) -> None:
        """Pass an incoming PDU up unless the device is offline.

        Confirmed requests get a ``_FastReadServerSSM`` instead of bacpypes3's own server
        transaction (found by invoke id and source as bacpypes3 does, 5.4); everything else,
        and everything while device communication control restricts, goes the generic way.
        """
        if self._device.faults.has(FaultKind.OFFLINE):
            return
        data = pdu.pduData
        if (
            self.dccEnableDisable != "enable"
            or not data
            or data[0] >> 4 != ConfirmedRequestPDU.pduType
        ):
            await super().confirmation(pdu)
            return
        apdu = APDU.decode(pdu)
        for transaction in self.serverTransactions:
            if (
                apdu.apduInvokeID == transaction.invokeID
                and apdu.pduSource == transaction.pdu_address
            ):
                break
        else:
            transaction = _FastReadServerSSM(self, apdu.pduSource)
            self.serverTransactions.append(transaction)
        await transaction.indication(apdu)


class _DeviceApplication(Application):  # type: ignore[misc]
    """The BACnet application of one simulated device: services plus the device's faults."""

    def __init__(
        self,
        device: SimDevice,
        device_object: Any,
        address: Any,
        sock: socket.socket,
        quirks: BacnetDeviceQuirks,
    ) -> None:
        Application.__init__(self)
        self._device = device
        self._quirks = quirks
        self.asap = _FaultyServiceAccessPoint(device, device_object, self.device_info_cache)
        # The application may take as long as a SLOW fault says before the transaction aborts.
        self.asap.applicationTimeout = 3_600_000
        self.nsap = NetworkServiceAccessPoint()
        self.nse = NetworkServiceElement()
        bind(self.nse, self.nsap)
        bind(self, self.asap, self.nsap)
        self.link = NormalLinkLayer(address, bind_socket=sock)
        self.nsap.bind(self.link, address=address)
        self.add_object(device_object)
        self.points: dict[tuple[int, int], tuple[Any, _ServedPoint]] = {}
        """(object type number, instance) → the object serving a point and its state."""

    def add_point_object(self, obj: Any, served: _ServedPoint) -> None:
        """Add the object serving a point; its reads may be answered by the fast path."""
        self.add_object(obj)
        object_type, instance = obj.objectIdentifier
        self.points[(int(object_type), int(instance))] = (obj, served)

    async def indication(self, apdu: Any) -> None:
        """Serve a request as the device's faults allow."""
        faults = self._device.faults
        if faults.has(FaultKind.OFFLINE):
            return
        if faults.has(FaultKind.SLOW) and isinstance(apdu, ConfirmedRequestPDU):
            await asyncio.sleep(faults.delay_s)
            if faults.has(FaultKind.OFFLINE):
                return
        # A read the fast path serves is one of the services that answer the fault's error.
        answers_errors = isinstance(apdu, (*_SERVICES_WITH_FAULT_ERRORS, _FastReadRequest))
        if faults.has(FaultKind.ERROR) and isinstance(apdu, WritePropertyMultipleRequest):
            await self.response(self._faulted_write_multiple(apdu))
            return
        if faults.has(FaultKind.ERROR) and answers_errors:
            code = faults.error_code if faults.error_code is not None else OPERATIONAL_PROBLEM
            await self.response(
                Error(
                    service_choice=apdu.apduService,
                    errorClass="device",
                    errorCode=code,
                    context=apdu,
                )
            )
            return
        try:
            await super().indication(apdu)
        except Exception as err:  # an unforeseen failure must still be answered
            # A confirmed request left unanswered keeps its server transaction open, and the
            # client's later requests with the same invoke id are taken as its duplicates
            # (5.4.5): answer an Abort (reason other, 5.4.5.3) rather than nothing.
            if not isinstance(apdu, ConfirmedRequestPDU):
                return
            _log.warning(
                "BACnet device %s: %s failed: %s",
                self._device.name,
                type(apdu).__name__,
                type(err).__name__,
            )
            await self.response(AbortPDU(True, reason="other", context=apdu))

    def _faulted_write_multiple(self, apdu: WritePropertyMultipleRequest) -> Any:
        """The ERROR fault's answer to a WritePropertyMultiple: its own error (15.10.1.3.2),
        the first write attempt named as the one that failed, and nothing written."""
        faults = self._device.faults
        code = faults.error_code if faults.error_code is not None else OPERATIONAL_PROBLEM
        spec = apdu.listOfWriteAccessSpecs[0]
        element = spec.listOfProperties[0]
        failed = ObjectPropertyReference(
            objectIdentifier=self._this_device(spec.objectIdentifier),
            propertyIdentifier=element.propertyIdentifier,
        )
        if element.propertyArrayIndex is not None:
            failed.propertyArrayIndex = element.propertyArrayIndex
        return WritePropertyMultipleError(
            errorType=ErrorType(errorClass="device", errorCode=code),
            firstFailedWriteAttempt=failed,
            context=apdu,
        )

    async def do__FastReadRequest(self, apdu: _FastReadRequest) -> None:
        """Answer a parsed read; requests beyond the fast path get bacpypes3's answer."""
        if apdu.single is not None:
            body = self._read_property_ack(apdu.single)
        else:
            body = await self._read_property_multiple_ack(apdu.multiple or ())
        if body is None:
            decoded = APCISequence.decode(apdu.original)
            decoded.pduSource = apdu.pduSource
            decoded.pduDestination = None
            if apdu.single is not None:
                await self.do_ReadPropertyRequest(decoded)
            else:
                await self.do_ReadPropertyMultipleRequest(decoded)
            return
        ack = ComplexAckPDU(context=apdu)
        ack.put_data(body)
        await self.response(ack)

    def _read_property_ack(self, read: bacnet_codec.PropertyRead) -> bytes | None:
        """A ReadProperty-ACK of a point's present-value or status-flags, else None."""
        point = self.points.get((read.object_type, read.instance))
        if point is None or read.array_index is not None:
            return None
        value = _encoded_property(point, read.property_id)
        return None if value is None else bacnet_codec.read_property_ack(read, value)

    async def _read_property_multiple_ack(
        self, specs: tuple[bacnet_codec.ObjectReads, ...]
    ) -> bytes | None:
        """A ReadPropertyMultiple-ACK (15.7.1.3) built from encoded point values.

        Other properties and objects are read the generic way and spliced in as bacpypes3
        encodes them; None when no object of the request exists (the whole request is then
        answered with an error, 15.7.1.3.2, by the generic path).
        """
        parts: list[bytes] = []
        any_object = False
        for spec in specs:
            point = self.points.get((spec.object_type, spec.instance))
            generic_object = None if point is not None else self._other_object(spec)
            any_object = any_object or point is not None or generic_object is not None
            results: list[bytes] = []
            for read in spec.reads:
                value = None
                if point is not None and read.array_index is None:
                    value = _encoded_property(point, read.property_id)
                if value is not None:
                    results.append(bacnet_codec.read_result(read, value))
                    continue
                element = await read_property_to_result_element(
                    point[0] if point is not None else generic_object,
                    PropertyIdentifier(read.property_id),
                    read.array_index,
                )
                results.append(bytes(element.encode().encode().pduData))
            # A wildcard device instance is answered with the device's own (15.5.2).
            identifier = (
                generic_object.objectIdentifier
                if generic_object is not None
                else (spec.object_type, spec.instance)
            )
            parts.append(
                bacnet_codec.read_access_result(
                    int(identifier[0]), int(identifier[1]), b"".join(results)
                )
            )
        return b"".join(parts) if any_object else None

    def _other_object(self, spec: bacnet_codec.ObjectReads) -> Any:
        """A non-point object of the device (the device object itself), or None."""
        try:
            identifier = self._this_device(ObjectIdentifier((spec.object_type, spec.instance)))
        except (TypeError, ValueError):
            return None
        return self.get_object_id(identifier)

    def _this_device(self, identifier: Any) -> Any:
        """The identifier, with the wildcard device instance taken as this device (15.5.2)."""
        object_type, instance = identifier
        if int(object_type) == _DEVICE_TYPE and int(instance) == WILDCARD_DEVICE_INSTANCE:
            return self.device_object.objectIdentifier
        return identifier

    async def do_ReadPropertyRequest(self, apdu: Any) -> None:
        """ReadProperty (15.5), the wildcard device instance read as this device's."""
        apdu.objectIdentifier = self._this_device(apdu.objectIdentifier)
        await super().do_ReadPropertyRequest(apdu)

    async def do_ReadPropertyMultipleRequest(self, apdu: Any) -> None:
        """ReadPropertyMultiple (15.7), the wildcard device instance read as this device's."""
        for spec in apdu.listOfReadAccessSpecs:
            spec.objectIdentifier = self._this_device(spec.objectIdentifier)
        await super().do_ReadPropertyMultipleRequest(apdu)

    async def do_WritePropertyRequest(self, apdu: WritePropertyRequest) -> None:
        """WriteProperty (15.9): a Result(+), or an Error naming the first check that failed."""
        await self._write_one(
            apdu.objectIdentifier,
            apdu.propertyIdentifier,
            apdu.propertyArrayIndex,
            apdu.propertyValue,
            apdu.priority,
        )
        await self.response(SimpleAckPDU(context=apdu))

    async def do_WritePropertyMultipleRequest(self, apdu: WritePropertyMultipleRequest) -> None:
        """WritePropertyMultiple (15.10): writes in order, stopping at the first failure.

        A failure answers the service's own error, naming the first failed write attempt
        (15.10.1.3.2); the writes before it stay applied, as the standard says.
        """
        for spec in apdu.listOfWriteAccessSpecs:
            object_id = self._this_device(spec.objectIdentifier)
            for element in spec.listOfProperties:
                try:
                    await self._write_one(
                        object_id,
                        element.propertyIdentifier,
                        element.propertyArrayIndex,
                        element.value,
                        element.priority,
                    )
                except ExecutionError as err:
                    failed = ObjectPropertyReference(
                        objectIdentifier=object_id,
                        propertyIdentifier=element.propertyIdentifier,
                    )
                    if element.propertyArrayIndex is not None:
                        failed.propertyArrayIndex = element.propertyArrayIndex
                    error = WritePropertyMultipleError(
                        errorType=ErrorType(errorClass=err.errorClass, errorCode=err.errorCode),
                        firstFailedWriteAttempt=failed,
                        context=apdu,
                    )
                    await self.response(error)
                    return
        await self.response(SimpleAckPDU(context=apdu))

    async def _write_one(
        self,
        object_id: Any,
        property_id: Any,
        array_index: int | None,
        encoded: Any,
        priority: int | None,
    ) -> None:
        """Check and apply one write; ExecutionError with the standard's error otherwise.

        The checks run in the order of the WriteProperty errors of 15.9.1.3.2: unknown
        object, unknown property, write access denied (only present-value of a commandable
        object is writable, so priority-array and every other property are refused here),
        then a value of the wrong datatype (invalid-datatype, an Error, not a Reject: the
        request itself is well formed), then the value's range (value-out-of-range).
        """
        obj = self.get_object_id(self._this_device(object_id))
        if not obj:
            raise ExecutionError(errorClass="object", errorCode="unknownObject")
        property_type = obj.get_property_type(property_id)
        if property_type is None:
            raise PropertyError("unknownProperty")
        served = self._served_of(obj)
        if (
            served is None
            or str(PropertyIdentifier(property_id)) != "present-value"
            or not served.plan.commandable
        ):
            raise PropertyError("writeAccessDenied")
        if array_index is not None or issubclass(property_type, Array):
            raise PropertyError("propertyIsNotAnArray")
        try:
            # Null relinquishes a commandable value, with or without a priority (19.2.1).
            value = encoded.cast_out(property_type, null=True)
        except (RejectException, TypeError, ValueError, AttributeError) as err:
            raise PropertyError("invalidDataType") from err
        await obj.write_property(property_id, value, array_index, priority)

    def _served_of(self, obj: Any) -> _ServedPoint | None:
        for point_obj, served in self.points.values():
            if point_obj is obj:
                return served
        return None

    def get_active_cov_subscriptions(self) -> Any:
        """active-cov-subscriptions (12.11.39): every COV subscription the device holds."""
        now = asyncio.get_running_loop().time()
        found: list[Any] = []
        if not self._quirks.lists_cov_subscriptions:
            return ListOfCOVSubscription(found)
        for detection in self._cov_detections.values():
            for cov in detection.cov_subscriptions:
                remaining = 0  # a lifetime of 0 is indefinite (13.14.1.1.4)
                if cov.cancel_handle is not None:
                    remaining = max(0, math.ceil(cov.cancel_handle.when() - now))
                subscription = COVSubscription(
                    recipient=RecipientProcess(
                        recipient=Recipient(address=DeviceAddress(cov.client_addr)),
                        processIdentifier=cov.proc_id,
                    ),
                    monitoredPropertyReference=ObjectPropertyReference(
                        objectIdentifier=cov.obj_id, propertyIdentifier="present-value"
                    ),
                    issueConfirmedNotifications=bool(cov.confirmed),
                    timeRemaining=Unsigned(remaining),
                )
                # Only objects with a COV_Increment report one (12.11.39).
                increment = getattr(cov.obj_ref, "covIncrement", None) if cov.obj_ref else None
                if increment is not None:
                    subscription.covIncrement = float(increment)
                found.append(subscription)
        return ListOfCOVSubscription(found)

    def cov_notification(self, cov: Any, apdu: Any) -> None:
        """Send a COV notification unless the device is offline."""
        if self._device.faults.has(FaultKind.OFFLINE):
            return
        super().cov_notification(cov, apdu)

    def drop_cov_subscriptions(self) -> None:
        """Forget every COV subscription: its timer, its detection hooks, its listing."""
        for detection in list(self._cov_detections.values()):
            for cov in list(detection.cov_subscriptions):
                self.cancel_subscription(cov)
        self._cov_detections.clear()

    def close(self) -> None:
        """Cancel every COV subscription timer and close the UDP endpoint."""
        self.drop_cov_subscriptions()
        self.link.close()


class BacnetDeviceServer(DeviceServerBase):
    """Serves one ``SimDevice`` as a BACnet/IP device on ``host:port`` (port 0: any free port).

    ``now`` is the device's clock (UTC, timezone-aware; the wall clock unless given) and
    ``time_zone`` where the device stands: its local-time, local-date and utc-offset follow.
    ``quirks`` make it behave as some real devices do (see ``BacnetDeviceQuirks``).
    """

    protocol_label = "BACnet"

    def __init__(
        self,
        device: SimDevice,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        time_zone: tzinfo = UTC,
        now: Callable[[], datetime] | None = None,
        quirks: BacnetDeviceQuirks | None = None,
    ) -> None:
        if device.device_instance is None:
            raise ValueError(f"device {device.name} has no BACnet device instance")
        if not 0 <= device.device_instance < 0x3FFFFF:
            # 4194303 is the wildcard instance (ASHRAE 135-2020, 12.11.1).
            raise ValueError(f"device instance {device.device_instance} outside 0..4194302")
        super().__init__(device, host, port)
        self._plans = plan_objects(device.points)
        self._served = {plan.tag: _ServedPoint(plan, device.spec(plan.tag)) for plan in self._plans}
        position = {spec.tag: index for index, spec in enumerate(device.points)}
        self._positions = tuple(position[plan.tag] for plan in self._plans)
        """Where each served point's value is in ``SimDevice.read_all``."""
        self._app: _DeviceApplication | None = None
        self._socket: socket.socket | None = None
        self._objects: dict[str, Any] = {}
        self._restart_count = 0
        self._refusing = False
        self._lock = asyncio.Lock()
        self._time_zone = time_zone
        self._quirks = quirks if quirks is not None else BacnetDeviceQuirks()
        self._now: Callable[[], datetime] = now if now is not None else partial(datetime.now, UTC)
        device.restart_handler = self.restart

    @property
    def running(self) -> bool:
        """Whether the device is open (it may be closed by a REFUSING fault meanwhile)."""
        return self._bound_port is not None

    def addresses(self) -> dict[str, str]:
        """Tag → ``<object-type>:<instance>`` (the center's BACnet address format)."""
        return {plan.tag: plan.address for plan in self._plans}

    async def start(self) -> None:
        """Bind the port and open the device (the same port again after a restart)."""
        async with self._lock:
            if self._bound_port is not None:
                raise RuntimeError(f"BACnet device {self._device.name} is already running")
            quiet_bacpypes_logging()
            await self._open(self._requested_port)
            await self._publish_all()

    async def stop(self) -> None:
        """Close the device and forget the port; idempotent, never raises."""
        async with self._lock:
            await self._close()
            self._bound_port = None
            self._refusing = False

    async def restart(self) -> None:
        """Close and open again on the same port, as a reboot (COV subscriptions are lost)."""
        async with self._lock:
            port = self._bound_port if self._bound_port is not None else self._requested_port
            await self._close()
            self._restart_count += 1
            await self._open(port)
            await self._publish_all()

    async def publish(self) -> None:
        """Apply OFFLINE/REFUSING changes and copy changed point values into present-value."""
        async with self._lock:
            if self._bound_port is None:
                return
            refusing = self._device.faults.has(FaultKind.REFUSING)
            if refusing and not self._refusing:
                await self._close()
                self._refusing = True
                _log.debug("BACnet device %s refuses: port closed", self._device.name)
                return
            if not refusing and self._refusing:
                self._refusing = False
                self._restart_count += 1
                await self._open(self._bound_port)
            if self._app is None:
                return
            await self._publish_changed()

    def set_point_status(
        self,
        tag: str,
        *,
        fault: bool | None = None,
        out_of_service: bool | None = None,
        overridden: bool | None = None,
    ) -> None:
        """Set a point's status flags (a sensor fault, maintenance, a local hand switch)."""
        served = self._served[tag]
        obj = self._objects.get(tag)
        old_flags = obj.statusFlags if obj is not None else None
        if fault is not None:
            served.fault = fault
        if out_of_service is not None:
            served.out_of_service = out_of_service
        if overridden is not None:
            served.overridden = overridden
        if obj is None:
            return
        obj.reliability = (
            Reliability.unreliableOther if served.fault else Reliability.noFaultDetected
        )
        obj.outOfService = served.out_of_service
        # Status flags are computed, so no property monitor sees them change: the COV
        # detection (ASHRAE 135 13.1: a change of status-flags is reported) is told here.
        new_flags = obj.statusFlags
        for monitor in list(obj._property_monitors["statusFlags"]):
            monitor(old_flags, new_flags)

    def drop_cov_subscriptions(self) -> None:
        """Lose every COV subscription without restarting (as a device whose table was reset)."""
        if self._app is not None:
            self._app.drop_cov_subscriptions()

    def priority_array(self, tag: str) -> tuple[PointValue | None, ...]:
        """The model values commanded in a point's 16 priority slots (None: relinquished)."""
        return tuple(self._served[tag].slots)

    # -- internals -------------------------------------------------------------------------

    async def _open(self, port: int) -> None:
        """Bind ``port`` (no SO_REUSEPORT: a taken port fails loudly) and build the device."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self._host, port))
        except OSError as err:
            sock.close()
            raise OSError(
                f"BACnet device {self._device.name} cannot bind {self._host}:{port}: {err}"
            ) from err
        sock.setblocking(False)
        bound = int(sock.getsockname()[1])
        # A /32 mask: the device needs no broadcast listener (clients use direct addresses).
        address = IPv4Address(f"{self._host}/32:{bound}")
        device_object = self._device_object()
        app = _DeviceApplication(self._device, device_object, address, sock, self._quirks)
        objects: dict[str, Any] = {}
        for plan in self._plans:
            served = self._served[plan.tag]
            obj = self._make_object(served)
            app.add_point_object(obj, served)
            objects[plan.tag] = obj
        # bacpypes3 attaches the transport to the socket in a task: wait for it, so that a
        # close right after the open closes a transport, not a socket under a live selector.
        await app.link.server._local_transport_ready.wait()
        self._app = app
        self._socket = sock
        self._objects = objects
        self._bound_port = bound
        _log.debug("BACnet device %s listening on %s:%d", self._device.name, self._host, bound)

    async def _close(self) -> None:
        """Close the device; return once its socket is closed, so the port can be bound again."""
        app, self._app = self._app, None
        sock, self._socket = self._socket, None
        self._objects = {}
        for served in self._served.values():
            served.published = None
        if app is None:
            return
        try:
            app.close()
        except (OSError, RuntimeError) as err:  # a socket already gone is not worth a traceback
            _log.debug("BACnet device %s close: %s", self._device.name, err)
        if sock is None:
            return
        # The transport closes its socket on a later turn of the loop (asyncio's
        # _call_connection_lost); a few turns are enough, then close it ourselves.
        for _ in range(_CLOSE_TURNS):
            if sock.fileno() == -1:
                return
            await asyncio.sleep(0)
        sock.close()

    def _device_object(self) -> Any:
        device = self._device
        device_object = _SimDeviceObject(
            objectIdentifier=("device", device.device_instance),
            objectName=device.name,
            description=device.description or device.name,
            vendorIdentifier=VENDOR_IDENTIFIER,
            vendorName="City operations simulator",
            modelName="Simulated controller",
            maxApduLengthAccepted=MAX_APDU_LENGTH,
            segmentationSupported=Segmentation.segmentedBoth,
        )
        if self._quirks.time_of_device_restart:
            # A sequence number, not a clock time: restarts count whatever the clock says.
            device_object.timeOfDeviceRestart = TimeStamp(sequenceNumber=self._restart_count)
        device_object._now = self._now
        device_object._time_zone = self._time_zone
        return device_object

    def _make_object(self, served: _ServedPoint) -> Any:
        plan, spec = served.plan, served.spec
        value = self._device.read(plan.tag)
        kwargs: dict[str, Any] = {
            "objectIdentifier": (ObjectType(plan.object_type), plan.instance),
            "objectName": plan.tag,
            "description": spec.description or plan.tag,
            "presentValue": _bacnet_value(plan, value),
            "eventState": EventState.normal,
            "outOfService": served.out_of_service,
            "reliability": (
                Reliability.unreliableOther if served.fault else Reliability.noFaultDetected
            ),
        }
        if plan.object_type.startswith("analog"):
            kwargs["units"] = EngineeringUnits(engineering_units(spec.unit))
            kwargs["covIncrement"] = spec.cov_increment if spec.cov_increment else 0.0
            if spec.low is not None:
                kwargs["minPresValue"] = spec.low
            if spec.high is not None:
                kwargs["maxPresValue"] = spec.high
        elif plan.object_type == "multi-state-value":
            kwargs["numberOfStates"] = state_count(spec)
            if spec.states:
                kwargs["stateText"] = list(spec.states)
        else:
            if plan.object_type != "binary-value":  # BV has no polarity (12.8)
                kwargs["polarity"] = Polarity.normal
            kwargs["activeText"] = "on"
            kwargs["inactiveText"] = "off"
        if plan.commandable:
            kwargs["priorityArray"] = _priority_array(plan, served.slots)
            kwargs["relinquishDefault"] = _bacnet_value(plan, value)
            active = served.active_priority
            kwargs["currentCommandPriority"] = (
                {"unsigned": active} if active is not None else {"null": ()}
            )
        obj = _OBJECT_CLASSES[plan.object_type](**kwargs)
        obj._served = served
        obj._on_command = self._command
        served.published = value
        return obj

    def _command(self, served: _ServedPoint, priority: int, value: PointValue | None) -> None:
        """Put a command into a priority slot and apply the effective value to the device."""
        slots = list(served.slots)
        slots[priority - 1] = value
        effective = next((slot for slot in slots if slot is not None), None)
        tag = served.plan.tag
        try:
            if effective is None:
                self._device.release(tag)
            else:
                self._device.write(tag, effective)
        except PointWriteError as err:
            raise PropertyError("valueOutOfRange") from err
        served.slots = slots
        obj = self._objects.get(tag)
        if obj is None:
            return
        obj.priorityArray = _priority_array(served.plan, slots)
        active = served.active_priority
        obj.currentCommandPriority = {"unsigned": active} if active is not None else {"null": ()}
        self._publish_point(served, obj, self._device.read(tag))

    async def _publish_all(self) -> None:
        for served in self._served.values():
            served.published = None
        await self._publish_changed()

    async def _publish_changed(self) -> None:
        objects = self._objects
        values = self._device.read_all()
        for (tag, served), position in zip(self._served.items(), self._positions, strict=True):
            obj = objects.get(tag)
            if obj is not None:
                self._publish_point(served, obj, values[position])

    def _publish_point(self, served: _ServedPoint, obj: Any, value: PointValue) -> None:
        if value == served.published:
            return
        served.published = value
        obj.presentValue = _bacnet_value(served.plan, value)
        if served.plan.commandable and served.active_priority is None:
            obj.relinquishDefault = _bacnet_value(served.plan, value)


def _bacnet_value(plan: ObjectPlan, value: PointValue) -> Any:
    """The model value as the object's present-value (binary enumerated, 1-based states)."""
    if plan.object_type.startswith("binary"):
        return BinaryPV.active if value else BinaryPV.inactive
    if plan.object_type == "multi-state-value":
        return int(value) + 1
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _priority_array(plan: ObjectPlan, slots: list[PointValue | None]) -> Any:
    """The 16 slots as a PriorityArray; relinquished slots share one Null priority value.

    Building a PriorityValue costs bacpypes3 about a millisecond, and most slots are empty.
    """
    values = []
    for slot in slots:
        if slot is None:
            values.append(_null_priority_value())
        elif plan.object_type.startswith("binary"):
            values.append(PriorityValue(enumerated=int(bool(slot))))
        elif plan.object_type == "multi-state-value":
            values.append(PriorityValue(unsigned=int(slot) + 1))
        else:
            values.append(PriorityValue(real=float(slot)))
    return PriorityArray(values)


_NULL_PRIORITY_VALUE: list[Any] = []


def _null_priority_value() -> Any:
    """The shared relinquished slot (never mutated: every command builds a new array)."""
    if not _NULL_PRIORITY_VALUE:
        _NULL_PRIORITY_VALUE.append(PriorityValue(null=()))
    return _NULL_PRIORITY_VALUE[0]
