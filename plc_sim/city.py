"""The simulated city: every domain's physics on one clock and one weather, each device served
over its own protocol on its own port.

Domains: the water network (Modbus TCP), streetlights (OPC UA), district heating (Modbus TCP) and
buildings (BACnet/IP) run by default. Named in ``CityOptions.domains``, the city also runs buses
(a GTFS-Realtime feed) and bike share (a GBFS feed) as ``mobility``, EV and shore-power charge
points (``charging``: OCPP clients that connect to the center's central system at
``ocpp_url``), and the sensor networks that publish JSON uplinks to an MQTT broker: traffic
detectors, parking, waste containers, air quality and river gauges (``env``) and camera health.
A physics loop integrates the simulated time elapsed since its last step
every ``physics_period_s`` of wall time, then publishes every device's points into its server; a
clock running 600 times faster than the wall only means bigger steps, which every model
integrates stably.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, runtime_checkable
from zoneinfo import ZoneInfo

from plc_sim.buildings.stock import BuildingStock
from plc_sim.cameras.vms import CameraNetwork
from plc_sim.charging.model import ChargePointModel, ChargingDomain, ev_charger, shore_power
from plc_sim.charging.points import ChargingPoint, charging_points
from plc_sim.device import FaultKind, SimDevice, UnknownDeviceError
from plc_sim.domain import (
    ALL_DOMAINS,
    DOMAINS,
    AssetPlan,
    DeviceServer,
    DomainModel,
    UplinkSensor,
)
from plc_sim.environment.model import Environment
from plc_sim.heating.network import HeatingNetwork
from plc_sim.lighting.network import LightingNetwork
from plc_sim.mobility.bikes import BikeShare, demo_stations
from plc_sim.mobility.buses import BusNetwork, demo_routes
from plc_sim.parking.network import ParkingNetwork
from plc_sim.points import SimPoint, sim_point
from plc_sim.servers.bacnet.server import BacnetDeviceServer
from plc_sim.servers.feeds.server import GbfsServer, GtfsRealtimeServer
from plc_sim.servers.modbus.server import ModbusDeviceServer
from plc_sim.servers.mqtt.server import MqttDeviceServer
from plc_sim.servers.ocpp.fleet import ChargingFleet
from plc_sim.servers.opcua.security import OpcUaServerSecurity
from plc_sim.servers.opcua.server import OpcUaDeviceServer
from plc_sim.traffic.network import TrafficNetwork
from plc_sim.waste.containers import WasteNetwork
from plc_sim.water.network import WaterNetwork
from plc_sim.weather import Weather

_log = logging.getLogger(__name__)


PHYSICS_TIMINGS_KEPT = 36_000
"""Physics steps whose timing is kept for ``physics_timing`` (an hour at ten a second)."""

PUBLISH_SLICE_S = 0.005
"""Longest stretch of publishing before waiting requests get a turn of the event loop."""

OCPP_PASSWORD_ENV = "CC_SIM_OCPP_PASSWORD"
"""Environment variable with the password every simulated charge point signs in with; a city
that finds it unset makes one up and sets it, so a center started from the same process (or
a child of it) reads the same one through its site file's ``password_env``."""

CHARGE_POINTS_PER_SCALE = 4
"""Roadside and car-park chargers (``cp01``…) per scale, besides one quay's shore power."""

MAX_CATCH_UP_S = 3600.0
"""Longest simulated interval one step integrates; a longer stall (a suspended process) is
skipped rather than replayed, so the loop never blocks for long."""


class SimulationClock(Protocol):
    """What the simulation needs of a clock (``plc_sim.clock.SimClock`` is one)."""

    def now(self) -> datetime:
        """Current simulated time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Simulated seconds from an arbitrary origin; never goes backwards."""
        ...


@runtime_checkable
class SleepingClock(Protocol):
    """A simulation clock that can also sleep simulated seconds (the charge points need it)."""

    def now(self) -> datetime:
        """Current simulated time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Simulated seconds from an arbitrary origin."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of simulated time."""
        ...


@dataclass(frozen=True, slots=True)
class PhysicsTiming:
    """How the physics loop kept its period since the timings were last reset (wall seconds).

    A step integrates the models and publishes every device's points; the interval between two
    steps' starts is the age the served values can reach, so it says whether the simulator
    keeps up: it stays near ``physics_period_s`` plus ``step`` while it does.
    """

    period_s: float
    steps: int
    interval_p95_s: float | None
    interval_max_s: float | None
    step_p95_s: float | None
    step_max_s: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        """The figures as plain JSON-ready values."""
        return {
            "period_s": self.period_s,
            "steps": self.steps,
            "interval_p95_s": self.interval_p95_s,
            "interval_max_s": self.interval_max_s,
            "step_p95_s": self.step_p95_s,
            "step_max_s": self.step_max_s,
        }


def _p95(values: Iterable[float]) -> float | None:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))] if ordered else None


@dataclass(frozen=True, slots=True)
class CityOptions:
    """What city to build and where to serve it."""

    scale: int = 1
    """Multiplies each domain's assets (pump stations, districts, substations, buildings)."""
    seed: int = 1
    host: str = "127.0.0.1"
    base_port: int = 0
    """0: every device on any free port; otherwise device number i listens on base_port + i
    (TCP for Modbus and OPC UA, UDP for BACnet)."""
    latitude: float = 52.37
    longitude: float = 4.90
    timezone: str = "Europe/Amsterdam"
    domains: frozenset[str] = field(default_factory=lambda: frozenset(DOMAINS))
    """The domains to run (``plc_sim.domain.ALL_DOMAINS``); the four utilities by default."""
    opcua_security: OpcUaServerSecurity | None = None
    physics_period_s: float = 0.1
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    """The broker the sensor networks publish to (the MQTT domains only)."""
    mqtt_prefix: str = "city"
    """Put in front of every uplink topic (one broker can carry several cities or test runs)."""
    ocpp_url: str | None = None
    """Where the charge points find the center's central system (``ws://host:port/ocpp``);
    None: ``ws://<host>:<ocpp_port>/ocpp``."""
    ocpp_port: int = 0
    """The central system's port when ``ocpp_url`` is None; 0: base_port after the devices'
    ports, or a free port found at start when base_port is 0 too."""
    feed_update_interval_s: float = 15.0
    """Simulated seconds between two rebuilds of the GTFS-Realtime and GBFS feeds."""

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise ValueError(f"scale must be at least 1, got {self.scale}")
        unknown = sorted(self.domains - set(ALL_DOMAINS))
        if unknown:
            raise ValueError(f"unknown domains {unknown}; the city has {list(ALL_DOMAINS)}")
        if not 0 < self.mqtt_port <= 65535:
            raise ValueError(f"MQTT broker port {self.mqtt_port} outside 1-65535")
        if any(char in self.mqtt_prefix for char in "+#\0"):
            raise ValueError(f"MQTT topic prefix {self.mqtt_prefix!r} has + # or NUL")
        if not 0 <= self.base_port <= 65535:
            raise ValueError(f"base port {self.base_port} outside 0-65535")
        if not self.physics_period_s > 0:
            raise ValueError("the physics period must be positive")


class SimulatedCity:
    """Runs the city's physics and its devices' servers; use ``async with`` or start/stop."""

    def __init__(self, clock: SimulationClock, options: CityOptions | None = None) -> None:
        self._clock = clock
        self.options = options = options or CityOptions()
        tz = ZoneInfo(options.timezone)
        self.weather = Weather(options.latitude, options.longitude, seed=options.seed)
        models: list[DomainModel] = []
        self.water: WaterNetwork | None = None
        self.lighting: LightingNetwork | None = None
        self.heating: HeatingNetwork | None = None
        self.buildings: BuildingStock | None = None
        if "water" in options.domains:
            self.water = WaterNetwork(scale=options.scale, seed=options.seed, tz=tz)
            models.append(self.water)
        if "lights" in options.domains:
            self.lighting = LightingNetwork(
                scale=options.scale,
                seed=options.seed,
                latitude=options.latitude,
                longitude=options.longitude,
            )
            models.append(self.lighting)
        if "heat" in options.domains:
            self.heating = HeatingNetwork(scale=options.scale, seed=options.seed, tz=tz)
            models.append(self.heating)
        if "bldg" in options.domains:
            self.buildings = BuildingStock(scale=options.scale, seed=options.seed, tz=tz)
            models.append(self.buildings)
        models += self._more_models(clock, options, tz)
        self._models = tuple(models)
        self._devices = {device.name: device for model in models for device in model.devices()}
        self._sensors: dict[str, tuple[UplinkSensor, ...]] = {
            device.name: model.sensors()
            for model in (self.traffic, self.parking, self.waste, self.environment, self.cameras)
            if model is not None
            for device in model.devices()
        }
        self._servers: dict[str, DeviceServer] = {}
        # Devices served by the city take ports in order; MQTT ones publish to the broker.
        index = 0
        for device in self._devices.values():
            if device.protocol == "mqtt":
                port = options.mqtt_port
            else:
                port = options.base_port + index if options.base_port else 0
                index += 1
            self._servers[device.name] = self._server_for(device, port)
            device.before_write = self._integrate
        self._ocpp_port = options.ocpp_port or (
            options.base_port + index if options.base_port else 0
        )
        self.charging_fleet: ChargingFleet | None = None
        """The charge points' OCPP clients (while the city runs with ``charging``)."""
        self._physics_task: asyncio.Task[None] | None = None
        self._last_step_at: float = 0.0
        self._step_intervals: deque[float] = deque(maxlen=PHYSICS_TIMINGS_KEPT)
        self._step_durations: deque[float] = deque(maxlen=PHYSICS_TIMINGS_KEPT)

    def _more_models(
        self, clock: SimulationClock, options: CityOptions, tz: ZoneInfo
    ) -> list[DomainModel]:
        """The domains beyond the utilities, as ``options.domains`` names them."""
        domains, scale, seed = options.domains, options.scale, options.seed
        models: list[DomainModel] = []
        self.traffic: TrafficNetwork | None = None
        self.parking: ParkingNetwork | None = None
        self.waste: WasteNetwork | None = None
        self.environment: Environment | None = None
        self.cameras: CameraNetwork | None = None
        self.buses: BusNetwork | None = None
        self.bikes: BikeShare | None = None
        self.charging: ChargingDomain | None = None
        if "traffic" in domains:
            self.traffic = TrafficNetwork(scale, seed, tz)
            models.append(self.traffic)
        road_factor = None if self.traffic is None else self.traffic.travel_time_factor
        if "mobility" in domains:
            lat, lon = options.latitude, options.longitude
            self.buses = BusNetwork(
                demo_routes(lat, lon, count=3 * scale, seed=seed),
                clock.now(),
                tz=options.timezone,
                seed=seed,
                traffic=road_factor,
            )
            self.bikes = BikeShare(
                demo_stations(lat, lon, count=8 * scale, seed=seed),
                clock.now(),
                tz=options.timezone,
                seed=seed,
            )
            models += [self.buses, self.bikes]
        if "charging" in domains:
            if not isinstance(clock, SleepingClock):
                raise ValueError("the charging domain needs a clock that can sleep (SimClock)")
            self.charging = ChargingDomain(_charge_points(scale, seed))
            models.append(self.charging)
        if "parking" in domains:
            self.parking = ParkingNetwork(scale, seed, tz)
            models.append(self.parking)
        if "waste" in domains:
            self.waste = WasteNetwork(scale, seed, tz)
            models.append(self.waste)
        if "env" in domains:
            self.environment = Environment(scale, seed, tz, traffic=road_factor)
            models.append(self.environment)
        if "cameras" in domains:
            self.cameras = CameraNetwork(scale, seed)
            models.append(self.cameras)
        return models

    def _server_for(self, device: SimDevice, port: int) -> DeviceServer:
        host = self.options.host
        options = self.options
        if device.protocol == "mqtt":
            return MqttDeviceServer(
                device,
                self._sensors[device.name],
                self.clock.now,
                options.mqtt_host,
                port,
                topic_prefix=options.mqtt_prefix,
                seed=options.seed,
            )
        if device.protocol == "gtfs_realtime" and self.buses is not None:
            return GtfsRealtimeServer(
                device,
                self.buses,
                self.clock.now,
                host,
                port,
                update_interval_s=options.feed_update_interval_s,
            )
        if device.protocol == "gbfs" and self.bikes is not None:
            return GbfsServer(
                device,
                self.bikes,
                self.clock.now,
                host,
                port,
                update_interval_s=options.feed_update_interval_s,
                tz=options.timezone,
            )
        if device.protocol == "modbus":
            return ModbusDeviceServer(device, host=host, port=port)
        if device.protocol == "opcua":
            # Values are stamped in simulated time, as every other protocol's samples are.
            return OpcUaDeviceServer(
                device,
                host=host,
                port=port,
                security=self.options.opcua_security,
                source_time=self.clock.now,
            )
        # A BACnet device keeps the city's local time (its local-time, utc-offset, 12.11).
        return BacnetDeviceServer(
            device,
            host=host,
            port=port,
            time_zone=ZoneInfo(self.options.timezone),
            now=self.clock.now,
        )

    @property
    def clock(self) -> SimulationClock:
        """The clock the city's physics runs on."""
        return self._clock

    @property
    def running(self) -> bool:
        """Whether the servers and the physics loop are running."""
        return self._physics_task is not None

    def devices(self) -> tuple[SimDevice, ...]:
        """Every simulated device, in the fixed order their ports are numbered."""
        return tuple(self._devices.values())

    def device(self, name: str) -> SimDevice:
        """The device called ``name``; UnknownDeviceError names the known ones' domains."""
        try:
            return self._devices[name]
        except KeyError as err:
            raise UnknownDeviceError(f"the simulated city has no device {name!r}") from err

    def server(self, name: str) -> DeviceServer:
        """The protocol server of device ``name``."""
        self.device(name)
        return self._servers[name]

    def endpoints(self) -> dict[str, tuple[str, int]]:
        """Device name → (host, port) where it listens (planned ports before ``start``); an
        MQTT device's is its broker's."""
        options = self.options
        host = options.host
        result: dict[str, tuple[str, int]] = {}
        index = 0
        for name, server in self._servers.items():
            if self._devices[name].protocol == "mqtt":
                result[name] = (options.mqtt_host, options.mqtt_port)
            elif self.running:
                result[name] = (host, server.port)
            else:
                base = options.base_port
                result[name] = (host, base + index if base else 0)
                index += 1
        return result

    def sensors(self, device: str) -> tuple[UplinkSensor, ...]:
        """The sensors of an MQTT device (none for a device that is polled)."""
        self.device(device)
        return self._sensors.get(device, ())

    @property
    def ocpp_url(self) -> str | None:
        """Where the charge points connect (None without ``charging``, or while its port is
        still to be found at start)."""
        if self.charging is None:
            return None
        if self.options.ocpp_url is not None:
            return self.options.ocpp_url
        if not self._ocpp_port:
            return None
        return f"ws://{self.options.host}:{self._ocpp_port}/ocpp"

    def charging_points(self) -> list[ChargingPoint]:
        """The charge points' tags, in the center's OCPP address format (empty without them)."""
        if self.charging is None:
            return []
        return [
            point
            for model in self.charging.points
            for point in charging_points(model, CHARGING_DEVICE)
        ]

    def charge_point_models(self) -> tuple[ChargePointModel, ...]:
        """The simulated charge points (empty without ``charging``)."""
        return () if self.charging is None else tuple(self.charging.points)

    def asset_plans(self) -> tuple[AssetPlan, ...]:
        """The assets of the domains beyond the utilities, for the city's map."""
        plans: list[AssetPlan] = []
        for model in (self.traffic, self.parking, self.waste, self.environment, self.cameras):
            if model is not None:
                plans += model.asset_plans()
        for index, point in enumerate(self.charge_point_models()):
            kind = "shore_power" if point.kind == "shore" else "charge_point"
            label = "Shore power" if point.kind == "shore" else "Charge point"
            plans.append(AssetPlan(f"charging.{point.id}", kind, f"{label} {point.id}", 3 * index))
        return tuple(plans)

    def points(self) -> tuple[SimPoint, ...]:
        """Every point every simulated device exposes, device by device."""
        result: list[SimPoint] = []
        for name, server in self._servers.items():
            device = self._devices[name]
            addresses = server.addresses()
            result.extend(
                sim_point(name, device.protocol, spec, addresses[spec.tag])
                for spec in device.points
            )
        return tuple(result)

    async def start(self) -> None:
        """Start every device's server and the physics loop."""
        if self._physics_task is not None:
            raise RuntimeError("the simulated city is already running")
        self._last_step_at = self._clock.monotonic()
        self._step_models(0.0)
        servers = list(self._servers.values())
        results = await asyncio.gather(
            *(server.start() for server in servers), return_exceptions=True
        )
        failures = [
            (server.device.name, result)
            for server, result in zip(servers, results, strict=True)
            if isinstance(result, BaseException)
        ]
        if failures:
            await self._stop_servers()
            name, error = failures[0]
            raise OSError(
                f"{len(failures)} simulated device(s) could not start; first: {name}: {error}"
            ) from error
        await self._publish_all()
        self._physics_task = asyncio.create_task(self._run_physics(), name="plc_sim physics")
        await self._start_charging()
        _log.info("simulated city running: %d devices", len(servers))

    async def _start_charging(self) -> None:
        """Start the charge points' clients: they keep trying until the center listens."""
        if self.charging is None:
            return
        if self.ocpp_url is None:
            self._ocpp_port = _free_port(self.options.host)
        url = self.ocpp_url
        assert url is not None  # a port was found just now
        password = ocpp_password()
        passwords = {model.id: password for model in self.charging.points}
        clock = self._clock
        assert isinstance(clock, SleepingClock)  # checked when the domain was built
        self.charging_fleet = ChargingFleet(self.charging.points, url, passwords, clock)
        await self.charging_fleet.start()

    async def stop(self) -> None:
        """Stop the physics loop and every server; idempotent, never raises."""
        fleet, self.charging_fleet = self.charging_fleet, None
        if fleet is not None:
            await fleet.stop()
        task, self._physics_task = self._physics_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stop_servers()

    async def _stop_servers(self) -> None:
        await asyncio.gather(
            *(server.stop() for server in self._servers.values()), return_exceptions=True
        )

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def set_fault(
        self,
        device: str,
        kind: FaultKind,
        *,
        delay_s: float | None = None,
        error_code: int | None = None,
        noise: float | None = None,
    ) -> None:
        """Give a device a fault; its server carries it out from its next request or publish."""
        self.device(device).set_fault(kind, delay_s=delay_s, error_code=error_code, noise=noise)
        _log.info("fault %s set on %s", kind.value, device)

    def clear_fault(self, device: str, kind: FaultKind | None = None) -> None:
        """Clear one fault of a device, or all of them."""
        self.device(device).clear_fault(kind)
        _log.info("fault %s cleared on %s", "all" if kind is None else kind.value, device)

    async def restart_device(self, device: str) -> None:
        """Restart a device's server on the same port, as a PLC reboot: clients lose sessions."""
        await self.server(device).restart()
        _log.info("device %s restarted", device)

    async def step_now(self) -> None:
        """Integrate up to the clock's current time and publish (the loop calls this)."""
        self._integrate()
        await self._publish_all()

    def physics_timing(self, *, reset: bool = False) -> PhysicsTiming:
        """How regularly the physics loop has run since the last reset; ``reset`` starts anew."""
        intervals, durations = self._step_intervals, self._step_durations
        timing = PhysicsTiming(
            period_s=self.options.physics_period_s,
            steps=len(durations),
            interval_p95_s=_p95(intervals),
            interval_max_s=max(intervals, default=None),
            step_p95_s=_p95(durations),
            step_max_s=max(durations, default=None),
        )
        if reset:
            intervals.clear()
            durations.clear()
        return timing

    def _integrate(self) -> None:
        now_s = self._clock.monotonic()
        elapsed_s = now_s - self._last_step_at
        self._last_step_at = now_s
        if elapsed_s > MAX_CATCH_UP_S:
            _log.warning("physics fell %.0f s behind the clock; skipping ahead", elapsed_s)
            elapsed_s = MAX_CATCH_UP_S
        self._step_models(max(0.0, elapsed_s))

    def _step_models(self, dt_s: float) -> None:
        now = self._clock.now()
        weather = self.weather.step(dt_s, now)
        for model in self._models:
            model.step(dt_s, now, weather)

    async def _publish_all(self) -> None:
        # Publishing a large city takes tens of milliseconds; requests waiting meanwhile get a
        # turn every few milliseconds, as a PLC serves its communication between scan cycles.
        turn_ends = time.monotonic() + PUBLISH_SLICE_S
        for server in self._servers.values():
            await server.publish()
            if time.monotonic() >= turn_ends:
                await asyncio.sleep(0)
                turn_ends = time.monotonic() + PUBLISH_SLICE_S

    async def _run_physics(self) -> None:
        failing = False
        period = self.options.physics_period_s
        previous_start: float | None = None
        while True:
            started = time.monotonic()
            if previous_start is not None:
                self._step_intervals.append(started - previous_start)
            previous_start = started
            try:
                await self.step_now()
            except Exception as err:
                # A fault in one step must not end the simulation; say so once, not every step.
                if not failing:
                    _log.error("physics step failed: %s", err, exc_info=True)
                failing = True
            else:
                if failing:
                    _log.info("physics steps recovered")
                failing = False
            self._step_durations.append(time.monotonic() - started)
            await asyncio.sleep(period)


def devices_by_domain(devices: Iterable[SimDevice]) -> dict[str, list[SimDevice]]:
    """Devices grouped by their domain (the first segment of the device name)."""
    grouped: dict[str, list[SimDevice]] = {}
    for device in devices:
        grouped.setdefault(device.name.split(".", 1)[0], []).append(device)
    return grouped


CHARGING_DEVICE = "charging.central"
"""The site's device name of the center's OCPP central system the charge points connect to."""


def _charge_points(scale: int, seed: int) -> list[ChargePointModel]:
    """The demo's chargers (alternately AC 22 kW and DC 150 kW) and one quay's shore power."""
    points: list[ChargePointModel] = []
    for index in range(CHARGE_POINTS_PER_SCALE * scale):
        power = 22_000.0 if index % 2 == 0 else 150_000.0
        points.append(ev_charger(f"cp{index + 1:02d}", power_w=power, seed=seed))
    points += [shore_power(f"shore{n + 1}", seed=seed) for n in range(scale)]
    return points


def ocpp_password() -> str:
    """The charge points' password: ``CC_SIM_OCPP_PASSWORD``, made up and set when unset."""
    password = os.environ.get(OCPP_PASSWORD_ENV)
    if not password:
        password = secrets.token_urlsafe(18)
        os.environ[OCPP_PASSWORD_ENV] = password
    return password


def _free_port(host: str) -> int:
    """A port nothing listens on now, for the center's central system to take."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
