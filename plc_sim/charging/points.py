"""The point list of charge points, in the center's OCPP address format.

The OCPP points are not ``SimDevice`` points (no Modbus/OPC UA/BACnet server serves them: the
charge points are clients of the center), and the connector status is a string, so they have
their own entry type beside ``plc_sim.points.SimPoint``. Tags are
``charging.<charge point id>.c<connector>.<quantity>`` (``c0`` is the charge point itself);
addresses ``cp:<charge point id>:<connector>:<quantity>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from plc_sim.charging.model import ChargePointModel

ChargingDataType = Literal["float", "bool", "string"]


@dataclass(frozen=True, slots=True)
class ChargingPoint:
    """One point of a charge point, as the center's site file needs it."""

    device: str
    tag: str
    address: str
    data_type: ChargingDataType
    unit: str = ""
    writable: bool = False
    low: float | None = None
    high: float | None = None
    description: str = ""


def charging_points(model: ChargePointModel, device: str) -> list[ChargingPoint]:
    """Every point of ``model`` served by the central system named ``device``."""
    cp = model.id
    base = f"charging.{cp}"
    points = [
        ChargingPoint(
            device,
            f"{base}.c0.connected",
            f"cp:{cp}:0:connected",
            "bool",
            description="connected and heard within its heartbeat",
        ),
        ChargingPoint(
            device,
            f"{base}.c0.limit",
            f"cp:{cp}:0:limit_w",
            "float",
            "W",
            True,
            0.0,
            model.max_power_w,
            "charging limit of the whole point",
        ),
    ]
    for connector in model.connectors:
        prefix = f"{base}.c{connector.id}"
        address = f"cp:{cp}:{connector.id}"
        rating = connector.max_power_w
        points += [
            ChargingPoint(
                device,
                f"{prefix}.status",
                f"{address}:status",
                "string",
                description="connector status",
            ),
            ChargingPoint(
                device,
                f"{prefix}.energy",
                f"{address}:energy_wh",
                "float",
                "Wh",
                low=0.0,
                description="energy meter register",
            ),
            ChargingPoint(
                device,
                f"{prefix}.power",
                f"{address}:power_w",
                "float",
                "W",
                low=0.0,
                high=rating,
                description="active power",
            ),
            ChargingPoint(
                device,
                f"{prefix}.session_active",
                f"{address}:session_active",
                "bool",
                description="a charging session runs",
            ),
            ChargingPoint(
                device,
                f"{prefix}.session_energy",
                f"{address}:session_energy_wh",
                "float",
                "Wh",
                low=0.0,
                description="energy of the session",
            ),
            ChargingPoint(
                device,
                f"{prefix}.charge",
                f"{address}:charge",
                "bool",
                writable=True,
                description="remote start (true) / stop (false)",
            ),
            ChargingPoint(
                device,
                f"{prefix}.limit",
                f"{address}:limit_w",
                "float",
                "W",
                True,
                0.0,
                rating,
                "charging limit of the connector",
            ),
        ]
    return points
