"""What the simulated OPC UA server tests share: a dict for a model, a hand-driven clock, a
served device and the certificates of a secured channel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from plc_sim.device import PointBinding, PointSpec, PointValue, SimDevice
from plc_sim.servers.opcua.read_path import ReadFastPath
from plc_sim.servers.opcua.security import OpcUaServerSecurity, make_self_signed_certificate
from plc_sim.servers.opcua.server import OpcUaDeviceServer

DEVICE = "lights.d1_ctrl"
SIM_START = datetime(2025, 3, 1, 20, 0, tzinfo=UTC)
CLIENT_TIMEOUT_S = 2.0
USER, PASSWORD = "operator", "correct horse"
"""The one user the secured servers know."""


@dataclass
class DictModel:
    """A dict of values standing in for a physics model (the server logic is what is tested)."""

    values: dict[str, PointValue]

    def binding(self, spec: PointSpec) -> PointBinding:
        """The point bound to its entry of ``values``."""

        def read() -> PointValue:
            return self.values[spec.tag]

        def write(value: PointValue) -> None:
            self.values[spec.tag] = value

        return PointBinding(spec, read, write if spec.writable else None)

    def device(self, specs: Sequence[PointSpec]) -> SimDevice:
        """An OPC UA device serving ``specs`` from this model."""
        return SimDevice(DEVICE, "opcua", [self.binding(spec) for spec in specs])


@dataclass
class SimTime:
    """A hand-driven simulated clock for source timestamps."""

    now: datetime = SIM_START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Served:
    """A device served over OPC UA, with its model and its clock."""

    model: DictModel
    device: SimDevice
    server: OpcUaDeviceServer
    clock: SimTime

    @property
    def reads(self) -> ReadFastPath:
        """The server's Read fast path."""
        return self.server.read_path


@asynccontextmanager
async def serving(model: DictModel, specs: Sequence[PointSpec]) -> AsyncIterator[Served]:
    """Serve ``specs`` of ``model`` on a free port, stamped by a hand-driven clock."""
    device = model.device(specs)
    clock = SimTime()
    server = OpcUaDeviceServer(device, source_time=clock)
    await server.start()
    try:
        yield Served(model, device, server, clock)
    finally:
        await server.stop()


@dataclass
class Certificates:
    """A self-signed server and client certificate, with their keys."""

    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_uri: str

    def server_security(self) -> OpcUaServerSecurity:
        """The server's security: its certificate and the one user."""
        return OpcUaServerSecurity(
            certificate=self.server_cert, private_key=self.server_key, users={USER: PASSWORD}
        )


def make_certificates(directory: Path) -> Certificates:
    """Certificates of the device's server and of a test client, made in ``directory``."""
    server_cert, server_key = make_self_signed_certificate(
        directory, f"urn:smartcity:plc_sim:server:{DEVICE}"
    )
    client_uri = "urn:smartcity:controlcenter:test"
    client_cert, client_key = make_self_signed_certificate(
        directory, client_uri, name="client", client=True
    )
    return Certificates(server_cert, server_key, client_cert, client_key, client_uri)
