"""Point discovery on BACnet/IP: Who-Is, then each device's object list, names and units.

``discover_bacnet`` sends a Who-Is (ASHRAE 135-2020, 16.10) to one address (a directed
Who-Is: on loopback and across routers broadcasts do not arrive) or as a local broadcast, and
collects the I-Am answers until ``timeout_s``. For each device it reads the ``object-list``
(whole, or element by element when the device cannot send it in one piece), then of each
analog, binary and multi-state object its ``object-name``, ``description``, ``units``,
``min-pres-value``/``max-pres-value`` and ``priority-array`` (present: commandable, 19.2).

Each object becomes a tag of the device: name from its object-name, address
``<object-type>:<instance>`` (the driver's present-value address), data type float for analog,
bool for binary and int for multi-state objects, writable for outputs and commandable values.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bacpypes3.apdu import ErrorRejectAbortNack
from bacpypes3.app import Application
from bacpypes3.appservice import ApplicationServiceAccessPoint
from bacpypes3.basetypes import Segmentation
from bacpypes3.comm import bind
from bacpypes3.ipv4.link import NormalLinkLayer
from bacpypes3.local.device import DeviceObject
from bacpypes3.netservice import NetworkServiceAccessPoint, NetworkServiceElement
from bacpypes3.pdu import Address, IPv4Address

from controlcenter.model import DataType, TagDef
from drivers.bacnet.driver import VENDOR_IDENTIFIER, quiet_bacpypes_logging
from drivers.base import CommunicationTimeoutError, DriverError, NotConnectedError

MAX_OBJECTS = 10_000
"""Most objects read from one device (a bound for a hostile or enormous device)."""
CONCURRENT_READS = 8
"""Requests in flight to one device at a time."""
DISCOVERY_DEVICE_INSTANCE = 4_194_301
"""The instance of the discovering application's own device object (one below the
wildcard 4194303 and the highest valid instance)."""

_TYPES: dict[str, DataType] = {
    "analog-input": DataType.FLOAT,
    "analog-output": DataType.FLOAT,
    "analog-value": DataType.FLOAT,
    "binary-input": DataType.BOOL,
    "binary-output": DataType.BOOL,
    "binary-value": DataType.BOOL,
    "multi-state-input": DataType.INT,
    "multi-state-output": DataType.INT,
    "multi-state-value": DataType.INT,
}
_OUTPUTS = frozenset({"analog-output", "binary-output", "multi-state-output"})
_INPUTS = frozenset({"analog-input", "binary-input", "multi-state-input"})

UNIT_SYMBOLS: dict[str, str] = {
    "meters": "m",
    "millimeters": "mm",
    "centimeters": "cm",
    "cubic-meters": "m3",
    "cubic-meters-per-hour": "m3/h",
    "cubic-meters-per-second": "m3/s",
    "liters": "L",
    "liters-per-second": "L/s",
    "liters-per-hour": "L/h",
    "bars": "bar",
    "millibars": "mbar",
    "pascals": "Pa",
    "kilopascals": "kPa",
    "percent": "%",
    "degrees-celsius": "degC",
    "degrees-kelvin": "K",
    "watts": "W",
    "kilowatts": "kW",
    "megawatts": "MW",
    "kilowatt-hours": "kWh",
    "megawatt-hours": "MWh",
    "megajoules": "MJ",
    "luxes": "lux",
    "parts-per-million": "ppm",
    "parts-per-billion": "ppb",
    "amperes": "A",
    "milliamperes": "mA",
    "volts": "V",
    "kilovolts": "kV",
    "hertz": "Hz",
    "revolutions-per-minute": "rpm",
    "milligrams-per-liter": "mg/L",
    "nephelometric-turbidity-unit": "NTU",
    "meters-per-second": "m/s",
    "watts-per-square-meter": "W/m2",
    "seconds": "s",
    "minutes": "min",
    "hours": "h",
    "days": "d",
    "kilograms": "kg",
    "decibels": "dB",
}
"""BACnetEngineeringUnits (clause 21, as bacpypes3 spells them) → the site file's unit symbol;
other units keep their BACnet name, ``no-units`` none."""

_NAME_CHARACTERS = re.compile(r"[^a-z0-9_.]+")


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """A device that answered Who-Is, with its objects as tags."""

    name: str
    endpoint: str
    device_instance: int
    tags: tuple[TagDef, ...]


def tag_name(text: str, fallback: str) -> str:
    """A dotted tag name from an object name: lower case, ``a-z0-9_`` in each part."""
    cleaned = _NAME_CHARACTERS.sub("_", text.strip().lower())
    parts = [part.strip("_") for part in cleaned.split(".") if part.strip("_")]
    if not parts:
        return fallback
    if not parts[0][0].isalpha():
        parts[0] = "p" + parts[0]
    return ".".join(parts)


def unit_symbol(units: str) -> str:
    """The site file's unit for a BACnetEngineeringUnits name."""
    if units in ("", "no-units", "noUnits"):
        return ""
    kebab = re.sub(r"(?<!^)(?=[A-Z])", "-", units).lower()
    return UNIT_SYMBOLS.get(kebab, units)


async def discover_bacnet(
    address: str | None,
    *,
    local: str = "0.0.0.0/0:0",
    timeout_s: float = 3.0,
    apdu_timeout_s: float = 1.0,
) -> list[DiscoveredDevice]:
    """The devices answering a Who-Is within ``timeout_s`` and their objects; ``address``
    (``host:port``) sends a directed Who-Is, None a local broadcast from ``local``
    (``ip/mask:port``). Raises DriverError when the local socket cannot be opened."""
    quiet_bacpypes_logging()
    app, sock = await _open(local, apdu_timeout_s)
    try:
        target = Address(address) if address is not None else Address("*")
        try:
            answers = await asyncio.wait_for(_who_is(app, target, timeout_s), timeout_s + 1)
        except TimeoutError as err:
            raise CommunicationTimeoutError(f"no I-Am within {timeout_s:g} s") from err
        devices = []
        for answer in answers:
            devices.append(await _device(app, answer))
        return sorted(devices, key=lambda device: device.device_instance)
    finally:
        app.close()
        sock.close()


async def _who_is(app: Any, target: Any, timeout_s: float) -> list[Any]:
    # bacpypes3 collects I-Ams for its own timeout: the answers of every device reached.
    answers = await app.who_is(address=target, timeout=timeout_s)
    unique = {}
    for answer in answers:
        unique[(str(answer.pduSource), answer.iAmDeviceIdentifier[1])] = answer
    return list(unique.values())


async def _open(local: str, apdu_timeout_s: float) -> tuple[Any, socket.socket]:
    """A BACnet application on its own UDP socket (bacpypes3 binds the default port else)."""
    try:
        where = IPv4Address(local)
    except ValueError as err:
        raise DriverError(f"local address {local!r}: {err}") from err
    host, port = str(where.addrTuple[0]), int(where.addrTuple[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise NotConnectedError(f"cannot bind {host}:{port}: {err}") from err
    sock.setblocking(False)
    prefix = local.split(":", 1)[0]
    mask = prefix.split("/", 1)[1] if "/" in prefix else "32"
    address = IPv4Address(f"{host}/{mask}:{sock.getsockname()[1]}")
    device_object = DeviceObject(
        objectIdentifier=("device", DISCOVERY_DEVICE_INSTANCE),
        objectName="controlcenter-discovery",
        vendorIdentifier=VENDOR_IDENTIFIER,
        apduTimeout=round(apdu_timeout_s * 1000),
        numberOfApduRetries=1,
        segmentationSupported=Segmentation.segmentedReceive,
    )
    app = _DiscoveryApplication(device_object, address, sock)
    await app.link.server._local_transport_ready.wait()
    return app, sock


class _DiscoveryApplication(Application):  # type: ignore[misc]
    """A plain client application bound to the given socket."""

    def __init__(self, device_object: Any, address: Any, sock: socket.socket) -> None:
        Application.__init__(self)
        self.asap = ApplicationServiceAccessPoint(device_object, self.device_info_cache)
        self.nsap = NetworkServiceAccessPoint()
        self.nse = NetworkServiceElement()
        bind(self.nse, self.nsap)
        bind(self, self.asap, self.nsap)
        self.link = NormalLinkLayer(address, bind_socket=sock)
        self.nsap.bind(self.link, address=address)
        self.add_object(device_object)

    def close(self) -> None:
        """Close the UDP endpoint."""
        self.link.close()


async def _read(app: Any, address: Any, object_id: Any, prop: str, index: int | None = None) -> Any:
    """A property's value, or None when the device refuses it (unknown property, object)."""
    try:
        return await app.read_property(address, object_id, prop, index)
    except (ErrorRejectAbortNack, ValueError, TypeError):
        return None


async def _device(app: Any, answer: Any) -> DiscoveredDevice:
    address = answer.pduSource
    device_id = answer.iAmDeviceIdentifier
    instance = int(device_id[1])
    name = tag_name(str(await _read(app, address, device_id, "object-name") or ""), "")
    objects = await _object_list(app, address, device_id)
    device = name or f"bacnet.device_{instance}"
    limit = asyncio.Semaphore(CONCURRENT_READS)

    async def one(object_id: Any) -> TagDef | None:
        async with limit:
            return await _object(app, address, object_id, device)

    found = await asyncio.gather(*(one(object_id) for object_id in objects))
    tags = tuple(tag for tag in found if tag is not None)
    return DiscoveredDevice(device, _endpoint(address), instance, tags)


async def _object_list(app: Any, address: Any, device_id: Any) -> list[Any]:
    whole = await _read(app, address, device_id, "object-list")
    if isinstance(whole, Sequence) and not isinstance(whole, str):
        return [o for o in whole if str(o[0]) in _TYPES][:MAX_OBJECTS]
    # Too long to send unsegmented: element 0 is the length, then one element at a time.
    count = await _read(app, address, device_id, "object-list", 0)
    objects = []
    for index in range(1, min(int(count or 0), MAX_OBJECTS) + 1):
        item = await _read(app, address, device_id, "object-list", index)
        if item is not None and str(item[0]) in _TYPES:
            objects.append(item)
    return objects


async def _object(app: Any, address: Any, object_id: Any, device: str) -> TagDef | None:
    object_type, instance = str(object_id[0]), int(object_id[1])
    data_type = _TYPES.get(object_type)
    if data_type is None:
        return None
    fallback = f"{device}.{object_type.replace('-', '_')}_{instance}"
    name = tag_name(str(await _read(app, address, object_id, "object-name") or ""), fallback)
    description = str(await _read(app, address, object_id, "description") or "")
    unit, low, high = "", None, None
    if data_type is DataType.FLOAT:
        units = await _read(app, address, object_id, "units")
        unit = unit_symbol(str(units)) if units is not None else ""
        low = _number(await _read(app, address, object_id, "min-pres-value"))
        high = _number(await _read(app, address, object_id, "max-pres-value"))
        if low is None or high is None or not low < high:
            low = high = None
    if object_type in _OUTPUTS:
        writable = True
    elif object_type in _INPUTS:
        writable = False
    else:
        writable = await _read(app, address, object_id, "priority-array") is not None
    return TagDef(
        name=name,
        device=device,
        address=f"{object_type}:{instance}",
        data_type=data_type,
        unit=unit,
        low=low,
        high=high,
        writable=writable,
        description="" if description == name else description[:500],
    )


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _endpoint(address: Any) -> str:
    host, port = address.addrTuple[:2]
    return f"{host}:{port}"
