"""What the simulated city needs of a domain model and of a device's protocol server."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from plc_sim.device import SimDevice
from plc_sim.weather import WeatherState

DOMAINS = ("water", "lights", "heat", "bldg")
"""The city's domains, by the first segment of their tag names."""


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
