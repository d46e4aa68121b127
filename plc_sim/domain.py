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
