"""The simulator's BACnet/IP device server, seen by a real bacpypes3 client on another port."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from bacpypes3.apdu import (
    AbortPDU,
    APCISequence,
    ErrorPDU,
    ErrorRejectAbortNack,
    ReadPropertyMultipleRequest,
    ReadPropertyRequest,
    SimpleAckPDU,
    WritePropertyMultipleError,
    WritePropertyMultipleRequest,
    WritePropertyRequest,
)
from bacpypes3.app import Application
from bacpypes3.appservice import ApplicationServiceAccessPoint
from bacpypes3.basetypes import (
    DeviceAddress,
    EngineeringUnits,
    PropertyReference,
    PropertyValue,
    ReadAccessSpecification,
    StatusFlags,
    WriteAccessSpecification,
)
from bacpypes3.comm import bind
from bacpypes3.constructeddata import Any as AnyValue
from bacpypes3.constructeddata import Sequence
from bacpypes3.ipv4.link import NormalLinkLayer
from bacpypes3.local.device import DeviceObject
from bacpypes3.netservice import NetworkServiceAccessPoint, NetworkServiceElement
from bacpypes3.pdu import Address, IPv4Address
from bacpypes3.primitivedata import CharacterString, Enumerated, Null, ObjectIdentifier, Real

from plc_sim.device import FaultKind, PointBinding, PointSpec, PointValue, SimDevice
from plc_sim.servers.bacnet import codec as bacnet_codec
from plc_sim.servers.bacnet.object_map import plan_objects
from plc_sim.servers.bacnet.server import (
    BacnetDeviceServer,
    _fast_read_request,
    _PresetSequenceInit,
)

APDU_TIMEOUT_MS = 300
NO_ANSWER_WITHIN_S = 2 * APDU_TIMEOUT_MS / 1000  # one retry


@dataclass
class Plant:
    """A small model behind the device: a level, a setpoint, a pump, a mode."""

    values: dict[str, PointValue] = field(
        default_factory=lambda: {
            "t.level": 2.5,
            "t.energy": 1200.0,
            "t.setpoint": 20.0,
            "t.valve": 10.0,
            "t.pump": False,
            "t.running": True,
            "t.enabled": True,
            "t.mode": 0,
        }
    )

    def setter(self, tag: str) -> Any:
        return lambda value: self.values.__setitem__(tag, value)


AUTOMATIC_SETPOINT = 20.0


def make_device(plant: Plant, instance: int = 1001) -> SimDevice:
    def reader(tag: str) -> Any:
        return lambda: plant.values[tag]

    points = [
        PointBinding(
            PointSpec("t.level", "float", "m", role="input", cov_increment=0.1, low=0, high=5),
            reader("t.level"),
        ),
        PointBinding(PointSpec("t.energy", "counter", "kWh"), reader("t.energy")),
        PointBinding(
            PointSpec("t.setpoint", "float", "degC", True, 0, 50, role="value"),
            reader("t.setpoint"),
            plant.setter("t.setpoint"),
            lambda: plant.values.__setitem__("t.setpoint", AUTOMATIC_SETPOINT),
        ),
        PointBinding(
            PointSpec("t.valve", "float", "%", True, 0, 100, role="output"),
            reader("t.valve"),
            plant.setter("t.valve"),
        ),
        PointBinding(
            PointSpec("t.pump", "bool", writable=True, role="output"),
            reader("t.pump"),
            plant.setter("t.pump"),
        ),
        PointBinding(PointSpec("t.running", "bool", role="input"), reader("t.running")),
        PointBinding(PointSpec("t.enabled", "bool", role="value"), reader("t.enabled")),
        PointBinding(
            PointSpec("t.mode", "int", writable=True, role="value", states=("auto", "hand", "off")),
            reader("t.mode"),
            plant.setter("t.mode"),
        ),
    ]
    return SimDevice("t.plant_ctrl", "bacnet", points, device_instance=instance)


class Client(Application):  # type: ignore[misc]
    """A plain bacpypes3 client application on its own loopback port."""

    def __init__(self) -> None:
        Application.__init__(self)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        address = IPv4Address(f"127.0.0.1/32:{sock.getsockname()[1]}")
        device_object = DeviceObject(
            objectIdentifier=("device", 4000001),
            objectName="test-client",
            vendorIdentifier=999,
            apduTimeout=APDU_TIMEOUT_MS,
            numberOfApduRetries=1,
            maxApduLengthAccepted=1476,
        )
        self.asap = ApplicationServiceAccessPoint(device_object, self.device_info_cache)
        self.nsap = NetworkServiceAccessPoint()
        self.nse = NetworkServiceElement()
        bind(self.nse, self.nsap)
        bind(self, self.asap, self.nsap)
        self.link = NormalLinkLayer(address, bind_socket=sock)
        self.nsap.bind(self.link, address=address)
        self.add_object(device_object)
        self.link_port = int(sock.getsockname()[1])

    def close(self) -> None:
        self.link.close()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    app = Client()
    yield app
    app.close()


@pytest.fixture
def plant() -> Plant:
    return Plant()


@pytest.fixture
async def server(plant: Plant) -> AsyncIterator[BacnetDeviceServer]:
    served = BacnetDeviceServer(make_device(plant))
    await served.start()
    yield served
    await served.stop()


def at(server: BacnetDeviceServer) -> Address:
    return Address(f"127.0.0.1:{server.port}")


async def read(client: Client, server: BacnetDeviceServer, objid: str, prop: str) -> Any:
    return await client.read_property(at(server), objid, prop)


async def notification(subscription: Any) -> dict[str, Any]:
    """The next COV notification of an analog object: present-value and status-flags."""
    values = [await asyncio.wait_for(subscription.get_value(), 2) for _ in range(2)]
    return {str(name): value for name, value in values}


async def failure_of(call: Any) -> ErrorRejectAbortNack:
    """The error, reject or abort a request ends with (bacpypes3 raises them)."""
    try:
        await call
    except ErrorRejectAbortNack as err:
        return err
    raise AssertionError("the request succeeded")


def test_addresses_are_typed_and_numbered_per_type_before_start(plant: Plant) -> None:
    server = BacnetDeviceServer(make_device(plant))
    assert server.addresses() == {
        "t.level": "analog-input:1",
        "t.energy": "analog-input:2",
        "t.setpoint": "analog-value:1",
        "t.valve": "analog-output:1",
        "t.pump": "binary-output:1",
        "t.running": "binary-input:1",
        "t.enabled": "binary-value:1",
        "t.mode": "multi-state-value:1",
    }
    commandable = {plan.tag for plan in plan_objects(server.device.points) if plan.commandable}
    assert commandable == {"t.setpoint", "t.valve", "t.pump", "t.mode"}


async def test_read_property_values_units_and_flags(
    client: Client, server: BacnetDeviceServer
) -> None:
    assert await read(client, server, "analog-input:1", "present-value") == 2.5
    assert await read(client, server, "analog-input:1", "units") == EngineeringUnits.meters
    assert await read(client, server, "analog-input:2", "units") == EngineeringUnits.kilowattHours
    assert await read(client, server, "analog-value:1", "units") == EngineeringUnits.degreesCelsius
    assert await read(client, server, "analog-input:1", "object-name") == "t.level"
    assert await read(client, server, "analog-input:1", "cov-increment") == pytest.approx(0.1)
    flags = await read(client, server, "analog-input:1", "status-flags")
    assert list(flags) == [0, 0, 0, 0]
    assert await read(client, server, "binary-input:1", "present-value") == 1
    # ASHRAE 135 12.20: multi-state values count from 1, so model state 0 reads 1.
    assert await read(client, server, "multi-state-value:1", "present-value") == 1
    assert list(await read(client, server, "multi-state-value:1", "state-text")) == [
        "auto",
        "hand",
        "off",
    ]
    device = "device:1001"
    assert await read(client, server, device, "object-name") == "t.plant_ctrl"
    assert await read(client, server, device, "max-apdu-length-accepted") == 1476
    object_list = await read(client, server, device, "object-list")
    assert len(object_list) == 1 + len(server.addresses())
    assert ObjectIdentifier("multi-state-value:1") in object_list


async def test_read_property_multiple_mixes_values_and_errors(
    client: Client, server: BacnetDeviceServer
) -> None:
    results = await client.read_property_multiple(
        at(server),
        [
            "analog-input:1",
            ["present-value", "status-flags", "units"],
            "binary-output:1",
            ["present-value"],
            "analog-input:99",
            ["present-value"],
        ],
    )
    values = {(str(objid), str(prop)): value for objid, prop, _, value in results}
    assert values[("analog-input,1", "present-value")] == 2.5
    assert isinstance(values[("analog-input,1", "status-flags")], StatusFlags)
    assert values[("analog-input,1", "units")] == EngineeringUnits.meters
    assert values[("binary-output,1", "present-value")] == 0
    missing = values[("analog-input,99", "present-value")]
    assert (str(missing.errorClass), str(missing.errorCode)) == ("object", "unknown-object")


async def test_priority_array_arbitrates_and_relinquishes(
    client: Client, server: BacnetDeviceServer, plant: Plant
) -> None:
    address = at(server)
    await client.write_property(address, "analog-value:1", "present-value", 30.0, priority=8)
    assert plant.values["t.setpoint"] == 30.0
    await client.write_property(address, "analog-value:1", "present-value", 40.0, priority=5)
    assert plant.values["t.setpoint"] == 40.0
    # A later write at a lower priority lands in its slot but does not take effect.
    await client.write_property(address, "analog-value:1", "present-value", 35.0, priority=8)
    assert plant.values["t.setpoint"] == 40.0
    assert await read(client, server, "analog-value:1", "present-value") == 40.0
    assert (await read(client, server, "analog-value:1", "current-command-priority")).unsigned == 5
    await client.write_property(address, "analog-value:1", "present-value", Null(()), priority=5)
    assert plant.values["t.setpoint"] == 35.0
    assert await read(client, server, "analog-value:1", "present-value") == 35.0
    slots = server.priority_array("t.setpoint")
    assert slots[7] == 35.0
    assert slots.count(None) == 15
    await client.write_property(address, "analog-value:1", "present-value", Null(()), priority=8)
    assert plant.values["t.setpoint"] == AUTOMATIC_SETPOINT
    assert await read(client, server, "analog-value:1", "present-value") == AUTOMATIC_SETPOINT


async def test_binary_and_multi_state_commands_reach_the_model(
    client: Client, server: BacnetDeviceServer, plant: Plant
) -> None:
    address = at(server)
    await client.write_property(address, "binary-output:1", "present-value", "active", priority=8)
    assert plant.values["t.pump"] is True
    await client.write_property(address, "multi-state-value:1", "present-value", 3, priority=8)
    assert plant.values["t.mode"] == 2
    await client.write_property(address, "analog-output:1", "present-value", 55.0, priority=12)
    assert plant.values["t.valve"] == 55.0
    assert await read(client, server, "analog-output:1", "present-value") == 55.0


async def test_refused_writes_name_the_bacnet_error(
    client: Client, server: BacnetDeviceServer, plant: Plant
) -> None:
    address = at(server)
    denied = await failure_of(
        client.write_property(address, "analog-input:1", "present-value", 3.0, priority=8)
    )
    assert isinstance(denied, ErrorPDU)
    assert str(denied.errorCode) == "write-access-denied"
    out_of_range = await failure_of(
        client.write_property(address, "analog-value:1", "present-value", 80.0, priority=8)
    )
    assert str(out_of_range.errorCode) == "value-out-of-range"
    assert plant.values["t.setpoint"] == 20.0
    bad_state = await failure_of(
        client.write_property(address, "multi-state-value:1", "present-value", 4, priority=8)
    )
    assert str(bad_state.errorCode) == "value-out-of-range"
    assert server.priority_array("t.setpoint").count(None) == 16


async def test_publish_sends_cov_notifications_beyond_the_increment(
    client: Client, server: BacnetDeviceServer, plant: Plant
) -> None:
    monitored = ObjectIdentifier("analog-input:1")
    async with client.change_of_value(at(server), monitored, None, False, 60) as subscription:
        # The first notification arrives at once (ASHRAE 135 13.1.2).
        assert (await notification(subscription))["present-value"] == 2.5
        plant.values["t.level"] = 2.55  # below the 0.1 m increment
        await server.publish()
        plant.values["t.level"] = 2.8
        await server.publish()
        changed = await notification(subscription)
        assert changed["present-value"] == pytest.approx(2.8)
        assert list(changed["status-flags"]) == [0, 0, 0, 0]
        server.set_point_status("t.level", fault=True)
        assert list((await notification(subscription))["status-flags"]) == [0, 1, 0, 0]


async def test_status_flags_show_fault_out_of_service_and_override(
    client: Client, server: BacnetDeviceServer
) -> None:
    server.set_point_status("t.valve", out_of_service=True, overridden=True)
    flags = await read(client, server, "analog-output:1", "status-flags")
    assert list(flags) == [0, 0, 1, 1]
    assert await read(client, server, "analog-output:1", "out-of-service") == 1
    server.set_point_status("t.valve", out_of_service=False, overridden=False, fault=True)
    assert list(await read(client, server, "analog-output:1", "status-flags")) == [0, 1, 0, 0]


async def test_error_fault_answers_bacnet_errors(
    client: Client, server: BacnetDeviceServer
) -> None:
    server.device.set_fault(FaultKind.ERROR)
    error = await failure_of(read(client, server, "analog-input:1", "present-value"))
    assert isinstance(error, ErrorPDU)
    assert (str(error.errorClass), str(error.errorCode)) == ("device", "operational-problem")
    server.device.set_fault(FaultKind.ERROR, error_code=30)  # timeout
    error = await failure_of(
        client.write_property(at(server), "analog-value:1", "present-value", 21.0, priority=8)
    )
    assert str(error.errorCode) == "timeout"
    server.device.clear_fault()
    assert await read(client, server, "analog-input:1", "present-value") == 2.5


async def test_offline_fault_drops_requests_silently(
    client: Client, server: BacnetDeviceServer
) -> None:
    server.device.set_fault(FaultKind.OFFLINE)
    await server.publish()
    started = time.monotonic()
    silence = await failure_of(read(client, server, "analog-input:1", "present-value"))
    assert isinstance(silence, AbortPDU)
    assert str(silence.apduAbortRejectReason) == "no-response"
    assert time.monotonic() - started >= NO_ANSWER_WITHIN_S * 0.9
    server.device.clear_fault()
    await server.publish()
    assert await read(client, server, "analog-input:1", "present-value") == 2.5


async def test_refusing_fault_closes_the_port_and_reopens_the_same_one(
    client: Client, server: BacnetDeviceServer
) -> None:
    port = server.port
    server.device.set_fault(FaultKind.REFUSING)
    await server.publish()
    # Nothing listens: a datagram to the port draws ICMP port-unreachable.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("127.0.0.1", port))
        probe.send(b"\x81\x0a\x00\x04")  # BVLC header only
        probe.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            probe.recv(64)
    silence = await failure_of(read(client, server, "analog-input:1", "present-value"))
    assert str(silence.apduAbortRejectReason) == "no-response"
    server.device.clear_fault()
    await server.publish()
    assert server.port == port
    assert await read(client, server, "analog-input:1", "present-value") == 2.5


async def test_slow_fault_answers_after_the_delay(
    client: Client, server: BacnetDeviceServer
) -> None:
    server.device.set_fault(FaultKind.SLOW, delay_s=0.2)
    started = time.monotonic()
    assert await read(client, server, "analog-input:1", "present-value") == 2.5
    assert time.monotonic() - started >= 0.2
    server.device.clear_fault()


async def test_stuck_and_noisy_values_come_from_the_device(
    client: Client, server: BacnetDeviceServer, plant: Plant
) -> None:
    server.device.set_fault(FaultKind.STUCK)
    plant.values["t.level"] = 3.5
    await server.publish()
    assert await read(client, server, "analog-input:1", "present-value") == 2.5
    server.device.clear_fault()
    server.device.set_fault(FaultKind.NOISY, noise=0.1)
    await server.publish()
    noisy = await read(client, server, "analog-input:1", "present-value")
    assert noisy != 3.5
    assert abs(noisy - 3.5) < 5
    server.device.clear_fault()


async def test_restart_keeps_the_port_and_commands_but_drops_subscriptions(
    client: Client, server: BacnetDeviceServer, plant: Plant
) -> None:
    port = server.port
    address = at(server)
    await client.write_property(address, "analog-value:1", "present-value", 30.0, priority=8)
    before = await read(client, server, "device:1001", "time-of-device-restart")
    monitored = ObjectIdentifier("analog-input:1")
    async with client.change_of_value(address, monitored, None, False, 60) as subscription:
        await notification(subscription)
        await server.restart()
        assert server.port == port
        plant.values["t.level"] = 4.0
        await server.publish()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(subscription.get_value(), 0.5)
    after = await read(client, server, "device:1001", "time-of-device-restart")
    assert after.sequenceNumber == before.sequenceNumber + 1
    assert server.priority_array("t.setpoint")[7] == 30.0
    assert await read(client, server, "analog-value:1", "priority-array") is not None
    assert (await read(client, server, "analog-value:1", "current-command-priority")).unsigned == 8


async def test_publish_touches_only_changed_objects(
    server: BacnetDeviceServer, plant: Plant
) -> None:
    writes: list[str] = []
    app = server._app
    assert app is not None
    for tag, obj in server._objects.items():
        obj._property_monitors["presentValue"].append(
            lambda _old, _new, tag=tag: writes.append(tag)
        )
    await server.publish()
    assert writes == []
    plant.values["t.energy"] = 1201.0
    await server.publish()
    assert writes == ["t.energy"]


# -- the fast read path answers exactly as bacpypes3 would -------------------------------------


def _generic_request(apdu: Any, invoke_id: int) -> Any:
    """A request as it arrives off the wire: encoded, with a source and an invoke id."""
    apdu.apduInvokeID = invoke_id
    encoded = apdu.encode()
    encoded.pduSource = Address("127.0.0.1:47809")
    return encoded


async def _generic_answer(app: Any, handler: str, encoded: Any) -> bytes:
    """The service data bacpypes3's own handler answers an encoded request with."""
    answers: list[Any] = []

    async def capture(apdu: Any) -> None:
        answers.append(apdu)

    decoded = APCISequence.decode(encoded)
    original_response = app.response
    app.response = capture
    try:
        await getattr(app, handler)(decoded)
    finally:
        app.response = original_response
    (answer,) = answers
    return bytes(answer.encode().pduData)


def _rpm(*specs: tuple[str, list[Any]]) -> Any:
    return ReadPropertyMultipleRequest(
        listOfReadAccessSpecs=[
            ReadAccessSpecification(
                objectIdentifier=objid,
                listOfPropertyReferences=[
                    PropertyReference(propertyIdentifier=prop)
                    if isinstance(prop, str)
                    else PropertyReference(propertyIdentifier=prop[0], propertyArrayIndex=prop[1])
                    for prop in props
                ],
            )
            for objid, props in specs
        ]
    )


async def _make_varied(server: BacnetDeviceServer, plant: Plant, client: Client) -> None:
    """Commands, changed values and status flags, so every encoding has something to show."""
    address = at(server)
    await client.write_property(address, "analog-value:1", "present-value", 31.5, priority=8)
    await client.write_property(address, "binary-output:1", "present-value", "active", priority=9)
    await client.write_property(address, "multi-state-value:1", "present-value", 3, priority=8)
    plant.values["t.level"] = -1.25e-3
    plant.values["t.energy"] = 123456.789
    await server.publish()
    server.set_point_status("t.level", fault=True)
    server.set_point_status("t.valve", out_of_service=True, overridden=True)


async def test_fast_read_property_multiple_is_byte_identical_to_bacpypes3(
    client: Client, server: BacnetDeviceServer, plant: Plant
) -> None:
    await _make_varied(server, plant, client)
    app = server._app
    assert app is not None
    every_point: list[tuple[str, list[Any]]] = [
        (address, ["present-value", "status-flags"]) for address in server.addresses().values()
    ]
    mixed: list[tuple[str, list[Any]]] = [
        ("analog-input:1", ["status-flags", "units", "present-value", "object-name"]),
        ("analog-value:1", [("priority-array", 8), ("priority-array", 0), "present-value"]),
        ("device:1001", ["object-name", "max-apdu-length-accepted"]),
        ("device:4194303", ["object-name"]),
        ("analog-input:99", ["present-value"]),
        ("binary-input:1", ["present-value", "polarity", "status-flags"]),
    ]
    for invoke_id, specs in enumerate((every_point, mixed)):
        request = _generic_request(_rpm(*specs), invoke_id)
        fast = _fast_read_request(request)
        assert fast is not None and fast.multiple is not None
        fast_body = await app._read_property_multiple_ack(fast.multiple)
        generic_body = await _generic_answer(app, "do_ReadPropertyMultipleRequest", request)
        assert fast_body == generic_body


async def test_fast_read_property_is_byte_identical_to_bacpypes3(
    client: Client, server: BacnetDeviceServer, plant: Plant
) -> None:
    await _make_varied(server, plant, client)
    app = server._app
    assert app is not None
    for invoke_id, address in enumerate(server.addresses().values()):
        for prop in ("present-value", "status-flags"):
            request = _generic_request(
                ReadPropertyRequest(objectIdentifier=address, propertyIdentifier=prop), invoke_id
            )
            fast = _fast_read_request(request)
            assert fast is not None and fast.single is not None
            fast_body = app._read_property_ack(fast.single)
            generic_body = await _generic_answer(app, "do_ReadPropertyRequest", request)
            assert fast_body == generic_body


async def test_reads_of_points_skip_the_generic_handlers(
    client: Client, server: BacnetDeviceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = server._app
    assert app is not None
    generic_calls: list[str] = []
    for name in ("do_ReadPropertyRequest", "do_ReadPropertyMultipleRequest"):
        original = getattr(app, name)

        async def record(apdu: Any, name: str = name, original: Any = original) -> None:
            generic_calls.append(name)
            await original(apdu)

        monkeypatch.setattr(app, name, record)
    request: list[Any] = []
    for address in server.addresses().values():
        request += [address, ["present-value", "status-flags"]]
    results = await client.read_property_multiple(at(server), request)
    assert len(results) == 2 * len(server.addresses())
    assert await read(client, server, "analog-input:1", "present-value") == 2.5
    assert generic_calls == []
    # Other properties and the special identifiers still get bacpypes3's answers.
    assert await read(client, server, "analog-input:1", "units") == EngineeringUnits.meters
    everything = await client.read_property_multiple(at(server), ["analog-input:1", ["all"]])
    names = {str(prop) for _, prop, _, _ in everything}
    assert {"present-value", "status-flags", "units", "object-name"} <= names
    missing = await failure_of(
        client.read_property_multiple(at(server), ["analog-input:99", ["present-value"]])
    )
    assert str(missing.errorCode) == "unknown-object"
    assert generic_calls == [
        "do_ReadPropertyRequest",
        "do_ReadPropertyMultipleRequest",
        "do_ReadPropertyMultipleRequest",
    ]


async def test_fast_initialisation_matches_bacpypes3(plant: Plant) -> None:
    server = BacnetDeviceServer(make_device(plant))
    for served in server._served.values():
        obj = server._make_object(served)
        cls: Any = type(obj)
        properties = {
            attr
            for attr in cls._elements
            if isinstance(inspect.getattr_static(cls, attr, None), property)
        }
        given = {
            attr: value
            for attr, value in _element_values(obj).items()
            if value is not None and attr not in properties
        }
        # Raw Python values are cast to the element types as bacpypes3 casts them.
        given["description"] = "a point"
        fast = cls.__new__(cls)
        _PresetSequenceInit.__init__(fast, **given)
        plain = cls.__new__(cls)
        Sequence.__init__(plain, **given)
        assert _element_values(fast) == _element_values(plain)
        assert {type(value) for value in _element_values(fast).values()} == {
            type(value) for value in _element_values(plain).values()
        }


def _element_values(obj: Any) -> dict[str, Any]:
    return {
        attr: object.__getattribute__(obj, attr)
        for attr in type(obj)._elements
        if attr in vars(obj)
    }


def test_codec_leaves_unusual_requests_to_the_generic_decoder() -> None:
    every = _generic_request(_rpm(("analog-input:1", ["all"])), 1)
    assert bacnet_codec.parse_read_property_multiple(bytes(every.pduData)) is None
    plain = _generic_request(_rpm(("analog-input:1", ["present-value", ("priority-array", 3)])), 2)
    data = bytes(plain.pduData)
    parsed = bacnet_codec.parse_read_property_multiple(data)
    assert parsed is not None
    assert [(read.property_id, read.array_index) for read in parsed[0].reads] == [
        (bacnet_codec.PRESENT_VALUE, None),
        (87, 3),
    ]
    assert bacnet_codec.parse_read_property_multiple(data[:-1]) is None
    assert bacnet_codec.parse_read_property_multiple(data + b"\x00") is None
    assert bacnet_codec.parse_read_property_multiple(b"") is None
    with pytest.raises(bacnet_codec.CodecError):
        bacnet_codec.encode_real(1e39)


# -- conformance: every confirmed request answered, the standard's errors, the device object ---

WILDCARD_DEVICE = "device:4194303"


def _write_multiple(*writes: tuple[str, str, Any, int | None]) -> Any:
    """A WritePropertyMultiple request (15.10.1.1), one access specification per write."""
    return WritePropertyMultipleRequest(
        listOfWriteAccessSpecs=[
            WriteAccessSpecification(
                objectIdentifier=ObjectIdentifier(objid),
                listOfProperties=[
                    PropertyValue(propertyIdentifier=prop, value=AnyValue(value), priority=priority)
                ],
            )
            for objid, prop, value, priority in writes
        ]
    )


async def _confirmed(client: Client, server: BacnetDeviceServer, request: Any) -> Any:
    """Send a confirmed request and return its answer; no answer fails the test."""
    request.pduDestination = at(server)
    return await asyncio.wait_for(client.request(request), 5)


async def test_failed_write_property_multiple_is_answered_and_no_invoke_id_sticks(
    client: Client, server: BacnetDeviceServer, plant: Plant
) -> None:
    request = _write_multiple(
        ("analog-value:1", "present-value", Real(30.0), 8),
        ("analog-value:1", "present-value", Real(99.0), 8),  # above the 50 degC limit
    )
    error = await failure_of(_confirmed(client, server, request))
    # 15.10.1.3.2: the service's own error, naming the first write that failed.
    assert isinstance(error, WritePropertyMultipleError)
    assert (str(error.errorType.errorClass), str(error.errorType.errorCode)) == (
        "property",
        "value-out-of-range",
    )
    assert error.firstFailedWriteAttempt.objectIdentifier == ObjectIdentifier("analog-value:1")
    assert plant.values["t.setpoint"] == 30.0  # the writes before the failure stand
    denied = await failure_of(
        _confirmed(client, server, _write_multiple(("analog-input:1", "present-value", Real(1), 8)))
    )
    assert str(denied.errorType.errorCode) == "write-access-denied"
    # More requests than there are invoke ids (0..255): none is taken for a duplicate of a
    # transaction left open.
    for _ in range(300):
        assert await read(client, server, "analog-value:1", "present-value") == 30.0
    ok = await _confirmed(
        client, server, _write_multiple(("analog-value:1", "present-value", Real(31.0), 8))
    )
    assert isinstance(ok, SimpleAckPDU)
    assert plant.values["t.setpoint"] == 31.0


async def test_error_fault_answers_write_property_multiple_with_its_own_error(
    client: Client, server: BacnetDeviceServer, plant: Plant
) -> None:
    before = plant.values["t.setpoint"]
    server.device.set_fault(FaultKind.ERROR, error_code=30)  # timeout
    try:
        request = _write_multiple(("analog-value:1", "present-value", Real(33.0), 8))
        error = await failure_of(_confirmed(client, server, request))
    finally:
        server.device.clear_fault()
    assert isinstance(error, WritePropertyMultipleError)
    assert (str(error.errorType.errorClass), str(error.errorType.errorCode)) == (
        "device",
        "timeout",
    )
    assert error.firstFailedWriteAttempt.objectIdentifier == ObjectIdentifier("analog-value:1")
    assert plant.values["t.setpoint"] == before  # the faulted device wrote nothing


async def test_a_request_that_fails_unexpectedly_is_aborted_not_left_unanswered(
    client: Client, server: BacnetDeviceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever escapes bacpypes3's service dispatch (its own last-resort handler can fail
    # while it logs an exception) still gets an answer, so the invoke id is released.
    async def failing_dispatch(self: Any, apdu: Any) -> None:
        raise RuntimeError("dispatch failed")

    monkeypatch.setattr(Application, "indication", failing_dispatch)
    aborted = await failure_of(read(client, server, "analog-input:1", "units"))
    assert isinstance(aborted, AbortPDU)
    assert str(aborted.apduAbortRejectReason) == "other"
    monkeypatch.undo()
    assert await read(client, server, "analog-input:1", "units") == EngineeringUnits.meters


async def test_binary_objects_refuse_enumerations_other_than_0_and_1(
    client: Client, server: BacnetDeviceServer, plant: Plant
) -> None:
    address = at(server)
    await client.write_property(address, "binary-output:1", "present-value", "active", priority=8)
    assert plant.values["t.pump"] is True
    for value in (Enumerated(5), Enumerated(2)):
        refused = await failure_of(
            client.write_property(address, "binary-output:1", "present-value", value, priority=8)
        )
        assert (str(refused.errorClass), str(refused.errorCode)) == (
            "property",
            "value-out-of-range",
        )
    assert plant.values["t.pump"] is True  # the fan was not switched off
    assert server.priority_array("t.pump")[7] is True


async def test_wrong_datatype_and_priority_array_writes_answer_the_standard_errors(
    client: Client, server: BacnetDeviceServer, plant: Plant
) -> None:
    cases = [
        ("analog-value:1", "present-value", CharacterString("warm"), 8, "invalid-data-type"),
        ("binary-output:1", "present-value", Real(1.0), 8, "invalid-data-type"),
        ("multi-state-value:1", "present-value", Real(2.0), 8, "invalid-data-type"),
        ("analog-value:1", "priority-array", Real(1.0), None, "write-access-denied"),
        ("analog-value:1", "object-name", CharacterString("x"), None, "write-access-denied"),
    ]
    for objid, prop, value, priority, code in cases:
        request = WritePropertyRequest(
            objectIdentifier=ObjectIdentifier(objid),
            propertyIdentifier=prop,
            propertyValue=AnyValue(value),
            priority=priority,
        )
        error = await failure_of(_confirmed(client, server, request))
        assert isinstance(error, ErrorPDU), (objid, prop, error)
        assert (str(error.errorClass), str(error.errorCode)) == ("property", code), (objid, prop)
    assert plant.values["t.setpoint"] == AUTOMATIC_SETPOINT


async def test_capability_bitstrings_name_what_the_device_implements(
    client: Client, server: BacnetDeviceServer
) -> None:
    types = await read(client, server, "device:1001", "protocol-object-types-supported")
    set_types = {name for name in str(types).split(";")}
    assert set_types == {
        "device",
        "analog-input",
        "analog-output",
        "analog-value",
        "binary-input",
        "binary-output",
        "binary-value",
        "multi-state-value",
    }
    services = await read(client, server, "device:1001", "protocol-services-supported")
    claimed = set(str(services).split(";"))
    assert claimed == {
        "read-property",
        "read-property-multiple",
        "write-property",
        "write-property-multiple",
        "subscribe-cov",
        "who-has",
        "who-is",
    }
    # Every claimed confirmed service is answered by a result or an error, never a Reject.
    address = at(server)
    assert await read(client, server, "analog-input:1", "present-value") == 2.5
    await client.read_property_multiple(address, ["analog-input:1", ["present-value"]])
    await client.write_property(address, "analog-value:1", "present-value", 22.0, priority=8)
    await _confirmed(
        client, server, _write_multiple(("analog-value:1", "present-value", Real(23.0), 8))
    )
    monitored = ObjectIdentifier("analog-input:1")
    async with client.change_of_value(address, monitored, None, False, 60) as subscription:
        await notification(subscription)
    # Who-Is, directed at the device, is answered by an I-Am.
    i_ams = await client.who_is(1001, 1001, address)
    assert [i_am.iAmDeviceIdentifier for i_am in i_ams] == [ObjectIdentifier("device:1001")]
    # Who-Has, by object name, is answered by an I-Have.
    i_haves = await client.who_has(None, None, None, "t.level", address, 1.0)
    assert [i_have.objectIdentifier for i_have in i_haves] == [ObjectIdentifier("analog-input:1")]


async def test_active_cov_subscriptions_list_every_subscription(
    client: Client, server: BacnetDeviceServer
) -> None:
    address = at(server)
    assert list(await read(client, server, "device:1001", "active-cov-subscriptions")) == []
    async with (
        client.change_of_value(address, ObjectIdentifier("analog-input:1"), 77, False, 60) as level,
        client.change_of_value(address, ObjectIdentifier("binary-output:1"), 78, True, 0) as pump,
    ):
        await notification(level)
        await asyncio.wait_for(pump.get_value(), 2)
        listed = await read(client, server, "device:1001", "active-cov-subscriptions")
        by_process = {int(item.recipient.processIdentifier): item for item in listed}
        assert set(by_process) == {77, 78}
        analog = by_process[77]
        client_address = DeviceAddress(Address(f"127.0.0.1:{client.link_port}"))
        assert analog.recipient.recipient.address.macAddress == client_address.macAddress
        reference = analog.monitoredPropertyReference
        assert reference.objectIdentifier == ObjectIdentifier("analog-input:1")
        assert str(reference.propertyIdentifier) == "present-value"
        assert not analog.issueConfirmedNotifications
        assert 55 <= int(analog.timeRemaining) <= 60
        assert analog.covIncrement == pytest.approx(0.1)
        binary = by_process[78]
        assert binary.issueConfirmedNotifications
        assert int(binary.timeRemaining) == 0  # lifetime 0: indefinite (13.14.1.1.4)
        assert binary.covIncrement is None  # binary objects have no COV_Increment
    await wait_until_empty(client, server)


async def wait_until_empty(client: Client, server: BacnetDeviceServer) -> None:
    """Poll active-cov-subscriptions until the cancelled subscriptions are gone."""
    deadline = time.monotonic() + 3
    while list(await read(client, server, "device:1001", "active-cov-subscriptions")):
        assert time.monotonic() < deadline, "subscriptions still listed after cancellation"
        await asyncio.sleep(0.05)


async def test_wildcard_device_instance_is_this_device(
    client: Client, server: BacnetDeviceServer
) -> None:
    # ASHRAE 135 12.11.1 / 15.5.2: instance 4194303 in a request means "this device".
    assert await read(client, server, WILDCARD_DEVICE, "object-name") == "t.plant_ctrl"
    assert await read(client, server, WILDCARD_DEVICE, "object-identifier") == ObjectIdentifier(
        "device:1001"
    )
    results = await client.read_property_multiple(
        at(server),
        [WILDCARD_DEVICE, ["object-name", "vendor-identifier"], "analog-input:1", ["units"]],
    )
    values = {(str(objid), str(prop)): value for objid, prop, _, value in results}
    assert values[("device,1001", "object-name")] == "t.plant_ctrl"
    assert values[("device,1001", "vendor-identifier")] == 999
    alone = await client.read_property_multiple(at(server), [WILDCARD_DEVICE, ["object-name"]])
    assert [(str(objid), value) for objid, _, _, value in alone] == [
        ("device,1001", "t.plant_ctrl")
    ]


@pytest.mark.parametrize(
    ("utc_now", "local_time", "local_date", "utc_offset", "daylight_saving"),
    [
        (datetime(2025, 7, 1, 22, 30, tzinfo=UTC), (0, 30, 0, 0), (125, 7, 2, 3), -120, True),
        (datetime(2025, 1, 15, 6, 5, 7, tzinfo=UTC), (7, 5, 7, 0), (125, 1, 15, 3), -60, False),
    ],
)
async def test_local_time_and_utc_offset_follow_the_city_time_zone(
    client: Client,
    plant: Plant,
    utc_now: datetime,
    local_time: tuple[int, ...],
    local_date: tuple[int, ...],
    utc_offset: int,
    daylight_saving: bool,
) -> None:
    server = BacnetDeviceServer(
        make_device(plant), time_zone=ZoneInfo("Europe/Amsterdam"), now=lambda: utc_now
    )
    await server.start()
    try:
        assert tuple(await read(client, server, WILDCARD_DEVICE, "local-time")) == local_time
        assert tuple(await read(client, server, WILDCARD_DEVICE, "local-date")) == local_date
        # 12.11.20: minutes to add to local time to get UTC, so negative east of Greenwich.
        assert await read(client, server, WILDCARD_DEVICE, "utc-offset") == utc_offset
        assert bool(await read(client, server, WILDCARD_DEVICE, "daylight-savings-status")) is (
            daylight_saving
        )
    finally:
        await server.stop()
