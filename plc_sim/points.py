"""The point list of the simulated city: every point of every device, where and how it is served.

The center's demo site file is generated from this list (``controlcenter.runtime.demo_site``),
so the center and the simulator never disagree. Addresses are in the center's driver formats:

- Modbus: ``<table>:<offset>[:<type>]`` (tables ``coil``, ``di``, ``ir``, ``hr``; zero-based
  protocol offsets; types ``uint16``, ``float32``, ``float64``…), see
  ``plc_sim.servers.modbus.register_map``;
- OPC UA: ``ns=2;s=<tag>`` (the device's own namespace is registered first, index 2);
- BACnet: ``<object-type>:<instance>`` (present-value), e.g. ``analog-input:3``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from plc_sim.device import PointSpec, ProtocolName

PointDataType = Literal["float", "int", "bool"]


@dataclass(frozen=True, slots=True)
class SimPoint:
    """One point a simulated device exposes, described as the center's site file needs it."""

    device: str
    protocol: ProtocolName
    tag: str
    address: str
    data_type: PointDataType
    unit: str = ""
    writable: bool = False
    low: float | None = None
    high: float | None = None
    description: str = ""


def sim_point(device: str, protocol: ProtocolName, spec: PointSpec, address: str) -> SimPoint:
    """The point-list entry of one served point."""
    data_type: PointDataType
    if spec.kind == "bool":
        data_type = "bool"
    elif spec.kind == "int":
        data_type = "int"
    else:
        data_type = "float"
    return SimPoint(
        device=device,
        protocol=protocol,
        tag=spec.tag,
        address=address,
        data_type=data_type,
        unit=spec.unit,
        writable=spec.writable,
        low=spec.low,
        high=spec.high,
        description=spec.description,
    )


TANK1_DEVICE = "water.tank1_rtu"
"""Device name of the first water tank's RTU (the walking skeleton's tank, names kept)."""
