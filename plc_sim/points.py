"""The point list of the simulated devices: what each one exposes, where, and in which unit.

The demo site file is generated from this list, so the center and the simulator never disagree.
Addresses are written in the Modbus driver's format ``<table>:<offset>[:<type>]`` (tables
``coil``, ``di``, ``ir``, ``hr``; zero-based protocol offsets; register types ``int16``,
``uint16``, ``int32``, ``uint32``, ``float32``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TANK_UNIT_ID = 1
"""Modbus unit identifier of a tank RTU."""
TANK_LEVEL_IR = 0
"""Input registers 0-1: level in m, float32, high word first."""
TANK_INFLOW_IR = 2
"""Input registers 2-3: inflow in m³/h, float32, high word first."""
TANK_OUTFLOW_IR = 4
"""Input registers 4-5: outflow in m³/h, float32, high word first."""
TANK_INPUT_REGISTER_COUNT = 6
"""Number of input registers a tank RTU defines (0-5)."""
TANK_PUMP_CMD_COIL = 0
"""Coil 0: pump run command (writable)."""
TANK_PUMP_RUNNING_DI = 0
"""Discrete input 0: pump running feedback."""

TANK1_DEVICE = "water.tank1_rtu"
"""Device name of the first water tank's RTU."""


@dataclass(frozen=True, slots=True)
class SimPoint:
    """One point a simulated device exposes, described as the center's site file needs it."""

    device: str
    protocol: Literal["modbus"]
    tag: str
    address: str
    data_type: Literal["float", "bool"]
    unit: str = ""
    writable: bool = False
    low: float | None = None
    high: float | None = None
    description: str = ""


def tank_points(device: str, tag_prefix: str, height_m: float) -> tuple[SimPoint, ...]:
    """The five points of a tank RTU, tags named ``<tag_prefix>.level`` and so on."""
    return (
        SimPoint(
            device=device,
            protocol="modbus",
            tag=f"{tag_prefix}.level",
            address=f"ir:{TANK_LEVEL_IR}:float32",
            data_type="float",
            unit="m",
            low=0.0,
            high=height_m,
            description="Tank water level",
        ),
        SimPoint(
            device=device,
            protocol="modbus",
            tag=f"{tag_prefix}.inflow",
            address=f"ir:{TANK_INFLOW_IR}:float32",
            data_type="float",
            unit="m3/h",
            low=0.0,
            high=200.0,
            description="Inflow from the feed pump",
        ),
        SimPoint(
            device=device,
            protocol="modbus",
            tag=f"{tag_prefix}.outflow",
            address=f"ir:{TANK_OUTFLOW_IR}:float32",
            data_type="float",
            unit="m3/h",
            low=0.0,
            high=200.0,
            description="Outflow to the distribution network",
        ),
        SimPoint(
            device=device,
            protocol="modbus",
            tag=f"{tag_prefix}.pump_cmd",
            address=f"coil:{TANK_PUMP_CMD_COIL}",
            data_type="bool",
            writable=True,
            description="Feed pump run command",
        ),
        SimPoint(
            device=device,
            protocol="modbus",
            tag=f"{tag_prefix}.pump_running",
            address=f"di:{TANK_PUMP_RUNNING_DI}",
            data_type="bool",
            description="Feed pump running feedback",
        ),
    )
