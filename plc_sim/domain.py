"""What the simulated city needs of a domain model and of a device's protocol server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from plc_sim.device import SimDevice
from plc_sim.weather import WeatherState

DOMAINS = ("water", "lights", "heat", "bldg")
"""The city's utility domains, by the first segment of their tag names: the ones a city runs
when no domains are named (the demo's default, served by the simulator alone)."""

MORE_DOMAINS = ("mobility", "charging", "traffic", "parking", "waste", "env", "cameras")
"""The city's further domains: buses and bike share (GTFS-Realtime, GBFS), charge points (OCPP
clients of the center) and the sensor networks that report over MQTT (traffic detectors,
parking, waste containers, air quality and river gauges, camera health). The MQTT ones need a
broker and the charge points a center, so they run only when named."""

ALL_DOMAINS = DOMAINS + MORE_DOMAINS
"""Every domain the simulated city can run."""

MQTT_DOMAINS = ("traffic", "parking", "waste", "env", "cameras")
"""The domains whose sensors report as JSON uplinks to an MQTT broker."""


@dataclass(slots=True)
class UplinkSensor:
    """A battery sensor (LoRaWAN, NB-IoT) that sends its points as one uplink every
    ``interval_s`` simulated seconds, and at once when something it watches crosses a threshold.

    ``fields`` maps each uplink field (a key of the payload's ``object``) to the tag of the
    device point it carries. ``silent`` is the fault of a sensor that stops reporting (a flat
    battery, a broken antenna); ``malformed`` makes it send payloads that are no JSON."""

    id: str
    """The sensor's id, also the last segment of its uplink topic (``<domain>/<id>/up``)."""
    interval_s: float
    fields: tuple[tuple[str, str], ...]
    report_now: bool = False
    """Set by the model when the sensor must report at its next chance (a threshold crossed)."""
    silent: bool = False
    malformed: bool = False

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError(f"sensor {self.id}: the report interval must be positive")
        if not self.id or any(char in self.id for char in "/+#\0 "):
            raise ValueError(f"sensor id {self.id!r} must be one topic level")


class SensorNetwork(Protocol):
    """A domain whose sensors report uplinks (to an MQTT broker) rather than being polled."""

    def sensors(self) -> tuple[UplinkSensor, ...]:
        """Every sensor, in a fixed order."""
        ...


class DomainModel(Protocol):
    """The physics of one domain (water network, heating network, a lighting district…)."""

    def step(self, dt_s: float, now: datetime, weather: WeatherState) -> None:
        """Advance the model by ``dt_s`` simulated seconds ending at ``now``."""
        ...

    def devices(self) -> tuple[SimDevice, ...]:
        """The devices that serve this model's points, in a fixed order."""
        ...


class DeviceServer(Protocol):
    """One device's protocol server on its own port."""

    @property
    def device(self) -> SimDevice:
        """The device served."""
        ...

    @property
    def port(self) -> int:
        """The bound port (the real one when port 0 was asked for); only while running."""
        ...

    async def start(self) -> None:
        """Start listening (on the port bound before, if it was restarted)."""
        ...

    async def stop(self) -> None:
        """Stop listening and drop every client; idempotent, never raises."""
        ...

    async def publish(self) -> None:
        """Copy the device's current point values into the served image (changed ones only)."""
        ...

    async def restart(self) -> None:
        """Stop and start again on the same port, as a PLC reboot: clients lose their sessions."""
        ...

    def addresses(self) -> dict[str, str]:
        """Tag → protocol address in the center's driver format; works before ``start``."""
        ...


class DeviceServerBase:
    """What every protocol server keeps alike: the device, its interface and its bound port."""

    protocol_label = "device"
    """Names the server in errors (``the Modbus server of water.tank1_rtu``)."""

    def __init__(self, device: SimDevice, host: str, port: int) -> None:
        self._device = device
        self._host = host
        self._requested_port = port
        """The port asked for, then the one bound: a restart listens on the same port."""
        self._bound_port: int | None = None

    @property
    def device(self) -> SimDevice:
        """The device served."""
        return self._device

    @property
    def host(self) -> str:
        """The interface the device listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the real one when port 0 was asked for); RuntimeError while none is
        bound (before start; for BACnet, whose socket closes, also after stop)."""
        if self._bound_port is None:
            server = f"the {self.protocol_label} server of {self._device.name}"
            raise RuntimeError(f"{server} is not listening (not started, or stopped)")
        return self._bound_port


@dataclass(frozen=True, slots=True)
class AssetPlan:
    """A plant item a domain wants on the city's map: the geography gives it a place in
    district number ``district`` (counted from 0, taken modulo the city's districts)."""

    name: str
    type: str
    label: str
    district: int
