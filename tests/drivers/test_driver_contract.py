"""One contract, every protocol: each driver against a simulated device over real sockets.

The same device (a level input, a setpoint, a run command and a mode) is served by the
simulator's Modbus TCP, OPC UA and BACnet/IP servers, its GTFS-Realtime and GBFS feeds, an MQTT
device through the test broker, and an OCPP charge point, on free ports; each driver must read
it, write it with readback, refuse what the device refuses, push changes where the protocol can,
fail fast and typed on a dead endpoint, and count what it did.

OCPP turns the connection round: the driver is the central system that listens, and the charge
point dials in once the driver's port is known (``Served.attach``). Its dead endpoint is a
central system no charge point is connected to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import pytest
import pytest_asyncio

from controlcenter.clock import WallClock
from controlcenter.model import DataType, Sample, TagDef
from drivers.bacnet.config import BacnetDeviceConfig
from drivers.bacnet.driver import BacnetDriver
from drivers.base import (
    CommunicationTimeoutError,
    DeviceRejectedError,
    Driver,
    DriverError,
    NotConnectedError,
    SubscriptionUnsupportedError,
)
from drivers.feeds import GbfsConfig, GbfsDriver, GtfsRealtimeConfig, GtfsRealtimeDriver
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.driver import ModbusDriver
from drivers.mqtt.config import MqttDeviceConfig
from drivers.mqtt.driver import MqttDriver
from drivers.ocpp.driver import OcppDriver
from drivers.opcua.config import OpcUaDeviceConfig
from drivers.opcua.driver import OpcUaDriver
from plc_sim.device import PointBinding, PointSpec, PointValue, SimDevice
from plc_sim.domain import DeviceServer
from plc_sim.mobility.records import StationReport, VehicleReport
from plc_sim.servers.bacnet.server import BacnetDeviceServer
from plc_sim.servers.feeds.server import GbfsServer, GtfsRealtimeServer
from plc_sim.servers.modbus.server import ModbusDeviceServer
from plc_sim.servers.opcua.server import OpcUaDeviceServer
from tests.drivers.mqtt.mqtt_contract_device import MqttControllerDevice
from tests.drivers.mqtt.mqtt_support import broker as mqtt_broker
from tests.drivers.ocpp.ocpp_contract_point import SCALES as OCPP_SCALES
from tests.drivers.ocpp.ocpp_contract_point import OcppControllerPoint

PROTOCOLS = ("modbus", "opcua", "bacnet", "gtfs_realtime", "gbfs", "mqtt", "ocpp")
POLLED = frozenset({"modbus", "gtfs_realtime", "gbfs"})
"""Protocols that cannot push changes."""
READ_ONLY = frozenset({"gtfs_realtime", "gbfs"})
"""Published feeds: every write is refused."""
DEVICE_INSTANCE = 4711


class Controller:
    """A tiny plant: a level the test moves, and the commands a client may write."""

    def __init__(self) -> None:
        self.values: dict[str, PointValue] = {
            "plant.level": 2.5,
            "plant.setpoint": 3.0,
            "plant.run": False,
            "plant.mode": 0,
        }

    def binding(self, spec: PointSpec) -> PointBinding:
        """A binding that reads and writes this controller's value of ``spec``."""

        def read() -> PointValue:
            return self.values[spec.tag]

        def write(value: PointValue) -> None:
            self.values[spec.tag] = value

        return PointBinding(spec, read, write if spec.writable else None)


SPECS = (
    PointSpec("plant.level", "float", unit="m", low=0.0, high=5.0, cov_increment=0.01),
    PointSpec("plant.setpoint", "float", unit="m", writable=True, low=0.0, high=5.0, role="value"),
    PointSpec("plant.run", "bool", writable=True, role="output"),
    PointSpec(
        "plant.mode",
        "int",
        writable=True,
        low=0,
        high=2,
        role="value",
        states=("auto", "manual", "off"),
    ),
)


class ControllerVehicle:
    """The controller published as one bus of a GTFS-Realtime feed: speed is the level,
    latitude the setpoint, stopped the run command and delay the mode."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def reports(self) -> list[VehicleReport]:
        """The one bus."""
        values = self.controller.values
        return [
            VehicleReport(
                vehicle_id="bus1",
                route_id="r1",
                trip_id="t1",
                lat=float(values["plant.setpoint"]),
                lon=4.9,
                speed_mps=float(values["plant.level"]),
                bearing_deg=90.0,
                stopped=bool(values["plant.run"]),
                delay_s=int(values["plant.mode"]),
                next_stop="s1",
            )
        ]

    def addresses(self) -> dict[str, str]:
        """The controller's tags as the bus's fields."""
        return {
            "plant.level": "vehicle:bus1:speed",
            "plant.setpoint": "vehicle:bus1:lat",
            "plant.run": "vehicle:bus1:stopped",
            "plant.mode": "vehicle:bus1:delay_s",
        }


class ControllerStation:
    """The controller published as one GBFS station: longitude is the level, latitude the
    setpoint, renting the run command and bikes the mode."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def reports(self) -> list[StationReport]:
        """The one station."""
        values = self.controller.values
        return [
            StationReport(
                station_id="st1",
                name="Contract",
                lat=float(values["plant.setpoint"]),
                lon=float(values["plant.level"]),
                capacity=10,
                bikes=int(values["plant.mode"]),
                installed=True,
                renting=bool(values["plant.run"]),
                returning=True,
                last_reported=WallClock().now(),
            )
        ]

    def addresses(self) -> dict[str, str]:
        """The controller's tags as the station's fields."""
        return {
            "plant.level": "station:st1:lon",
            "plant.setpoint": "station:st1:lat",
            "plant.run": "station:st1:renting",
            "plant.mode": "station:st1:bikes",
        }


@dataclass
class Served:
    """One protocol's server of the controller, and how to reach it."""

    protocol: str
    controller: Controller
    server: DeviceServer
    tags: dict[str, TagDef]
    make_driver: Callable[[int], Driver]
    """A driver for the server's port (or another port, for a dead endpoint)."""
    attach: Callable[[Driver], AbstractAsyncContextManager[None]] | None = None
    """For a device that connects to its driver (OCPP): connected to a listening driver."""


def _tag_defs(
    server: DeviceServer, device: str, scales: dict[str, float] | None = None
) -> dict[str, TagDef]:
    addresses = server.addresses()
    kinds = {"float": DataType.FLOAT, "bool": DataType.BOOL, "int": DataType.INT}
    return {
        spec.tag: TagDef(
            name=spec.tag,
            device=device,
            address=addresses[spec.tag],
            data_type=kinds[spec.kind],
            unit=spec.unit,
            low=spec.low,
            high=spec.high,
            writable=spec.writable,
            scale=(scales or {}).get(spec.tag, 1.0),
        )
        for spec in SPECS
    }


def _serve(protocol: str) -> Served:
    controller = Controller()
    name = f"contract.{protocol}_plc"
    device = SimDevice(
        name,
        protocol,  # type: ignore[arg-type]
        [controller.binding(spec) for spec in SPECS],
        device_instance=DEVICE_INSTANCE,
    )
    clock = WallClock()
    server: DeviceServer
    make_driver: Callable[[int], Driver]
    attach: Callable[[Driver], AbstractAsyncContextManager[None]] | None = None
    scales: dict[str, float] | None = None
    if protocol == "modbus":
        server = ModbusDeviceServer(device)

        def make_driver(port: int) -> Driver:
            return ModbusDriver(name, ModbusDeviceConfig("127.0.0.1", port, timeout_s=0.5), clock)

    elif protocol == "opcua":
        server = OpcUaDeviceServer(device)

        def make_driver(port: int) -> Driver:
            config = OpcUaDeviceConfig(f"opc.tcp://127.0.0.1:{port}", timeout_s=1.0)
            return OpcUaDriver(name, config, clock)

    elif protocol == "gtfs_realtime":
        server = GtfsRealtimeServer(
            device, ControllerVehicle(controller), clock.now, update_interval_s=0
        )

        def make_driver(port: int) -> Driver:
            base = f"http://127.0.0.1:{port}"
            config = GtfsRealtimeConfig(
                base + GtfsRealtimeServer.VEHICLE_POSITIONS, base + GtfsRealtimeServer.TRIP_UPDATES
            )
            return GtfsRealtimeDriver(name, config, clock)

    elif protocol == "gbfs":
        server = GbfsServer(device, ControllerStation(controller), clock.now, update_interval_s=0)

        def make_driver(port: int) -> Driver:
            config = GbfsConfig(f"http://127.0.0.1:{port}/gbfs/gbfs.json")
            return GbfsDriver(name, config, clock)

    elif protocol == "mqtt":
        mqtt_device = MqttControllerDevice(device)
        server = mqtt_device

        def make_driver(port: int) -> Driver:
            config = MqttDeviceConfig(
                mqtt_broker()[0],
                port,
                topic_prefix=mqtt_device.prefix,
                timestamp_pointer="/ts",
                report_interval_s=60.0,
                write_timeout_s=1.0,
                timeout_s=1.0,
            )
            return MqttDriver(name, config, clock)

    elif protocol == "ocpp":
        charge_point = OcppControllerPoint(device)
        server = charge_point
        attach = charge_point.attached
        scales = OCPP_SCALES  # OCPP speaks watts; the level and setpoint are kilowatts

        def make_driver(port: int) -> Driver:
            return OcppDriver(name, charge_point.central_system(port), clock)

    else:
        server = BacnetDeviceServer(device)

        def make_driver(port: int) -> Driver:
            config = BacnetDeviceConfig(
                host="127.0.0.1",
                port=port,
                device_instance=DEVICE_INSTANCE,
                local_host="127.0.0.1",
                apdu_timeout_s=0.5,
                retries=0,
            )
            return BacnetDriver(name, config, clock)

    tags = _tag_defs(server, name, scales)
    return Served(protocol, controller, server, tags, make_driver, attach)


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=PROTOCOLS)
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    """The controller served over one protocol on a free port."""
    result = _serve(str(request.param))
    await result.server.start()
    try:
        yield result
    finally:
        await result.server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def driver(served: Served) -> AsyncIterator[Driver]:
    """A connected driver of the served protocol."""
    connected = served.make_driver(served.server.port)
    await connected.connect()
    try:
        if served.attach is None:
            yield connected
        else:
            async with served.attach(connected):
                yield connected
    finally:
        await connected.close()


async def _settle(served: Served) -> None:
    await served.server.publish()


async def test_reads_every_point_with_good_quality(served: Served, driver: Driver) -> None:
    served.controller.values["plant.level"] = 1.75
    await _settle(served)
    samples = await driver.read(list(served.tags.values()))
    assert [sample.tag for sample in samples] == list(served.tags)
    assert all(sample.quality.is_good for sample in samples), samples
    by_tag = {sample.tag: sample.value for sample in samples}
    assert by_tag["plant.level"] == pytest.approx(1.75)
    assert by_tag["plant.run"] is False
    assert by_tag["plant.mode"] == 0


async def test_write_returns_the_readback_and_reaches_the_device(
    served: Served, driver: Driver
) -> None:
    if served.protocol in READ_ONLY:
        with pytest.raises(DeviceRejectedError):
            await driver.write(served.tags["plant.setpoint"], 4.25)
        assert served.controller.values["plant.setpoint"] != 4.25
        return
    readback = await driver.write(served.tags["plant.setpoint"], 4.25)
    assert readback == pytest.approx(4.25)
    assert served.controller.values["plant.setpoint"] == pytest.approx(4.25)
    assert await driver.write(served.tags["plant.run"], True) is True
    assert served.controller.values["plant.run"] is True
    assert await driver.write(served.tags["plant.mode"], 2) == 2
    assert served.controller.values["plant.mode"] == 2


async def test_a_write_the_device_refuses_is_a_typed_error(served: Served, driver: Driver) -> None:
    level = served.tags["plant.level"]
    forced = TagDef(level.name, level.device, level.address, level.data_type, writable=True)
    with pytest.raises(DriverError):
        await driver.write(forced, 1.0)
    assert served.controller.values["plant.level"] != 1.0
    with pytest.raises((DeviceRejectedError, DriverError)):
        await driver.write(served.tags["plant.setpoint"], 99.0)  # above the device's range
    assert served.controller.values["plant.setpoint"] != 99.0


async def test_pushes_changes_where_the_protocol_can(served: Served, driver: Driver) -> None:
    received: list[Sample] = []
    level = served.tags["plant.level"]
    try:
        await driver.subscribe([level], received.extend, interval_s=0.2)
    except SubscriptionUnsupportedError:
        assert served.protocol in POLLED
        return
    assert served.protocol not in POLLED
    served.controller.values["plant.level"] = 3.3
    await _settle(served)
    deadline = time.monotonic() + 5.0
    while not any(s.value == pytest.approx(3.3) and s.quality.is_good for s in received):
        assert time.monotonic() < deadline, f"no pushed change within 5 s: {received[-3:]}"
        await asyncio.sleep(0.02)


async def test_a_dead_endpoint_fails_fast_and_typed(served: Served, closed_port: int) -> None:
    dead = served.make_driver(closed_port)
    started = time.monotonic()
    with pytest.raises((NotConnectedError, CommunicationTimeoutError)):
        await dead.connect()
        await dead.read(list(served.tags.values()))
    if served.protocol not in READ_ONLY:
        # A command to a device nobody can reach is refused as fast, never sent into the void.
        with pytest.raises((NotConnectedError, CommunicationTimeoutError)):
            await dead.write(served.tags["plant.setpoint"], 1.0)
    await dead.close()
    assert time.monotonic() - started < 5.0


async def test_diagnostics_count_requests(served: Served, driver: Driver) -> None:
    await driver.read(list(served.tags.values()))
    health = driver.diagnostics()
    assert health.device == f"contract.{served.protocol}_plc"
    assert health.connected
    assert health.requests >= 1
