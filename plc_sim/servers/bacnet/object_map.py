"""How a simulated device's points become BACnet objects (pure: no protocol library here).

Object types follow what each point is to the device (ASHRAE 135-2020, clause 12):

==========================  =====================  ============================================
point                       object type            notes
==========================  =====================  ============================================
float input, counter        analog-input           read-only (12.2)
float output                analog-output          commandable: priority array (12.3, 19.2)
float value, writable       analog-value           commandable (12.4)
float value, read-only      analog-value           not commandable
bool input                  binary-input           read-only (12.6)
bool output                 binary-output          commandable (12.7)
bool value                  binary-value           commandable when writable (12.8)
int                         multi-state-value      1-based states (12.20), commandable when
                                                   writable; model value 0 is state 1
==========================  =====================  ============================================

Instances are numbered per object type from 1 in the device's point order, so the map is
stable for a given point list and computable before any server starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from plc_sim.device import PointSpec

ObjectTypeName = Literal[
    "analog-input",
    "analog-output",
    "analog-value",
    "binary-input",
    "binary-output",
    "binary-value",
    "multi-state-value",
]

ENGINEERING_UNITS: dict[str, str] = {
    "m": "meters",
    "mm": "millimeters",
    "cm": "centimeters",
    "m3": "cubicMeters",
    "m3/h": "cubicMetersPerHour",
    "m3/s": "cubicMetersPerSecond",
    "L": "liters",
    "L/s": "litersPerSecond",
    "L/h": "litersPerHour",
    "bar": "bars",
    "mbar": "millibars",
    "Pa": "pascals",
    "kPa": "kilopascals",
    "%": "percent",
    "degC": "degreesCelsius",
    "K": "degreesKelvin",
    "W": "watts",
    "kW": "kilowatts",
    "MW": "megawatts",
    "kWh": "kilowattHours",
    "MWh": "megawattHours",
    "MJ": "megajoules",
    "lux": "luxes",
    "ppm": "partsPerMillion",
    "ppb": "partsPerBillion",
    "A": "amperes",
    "mA": "milliamperes",
    "V": "volts",
    "kV": "kilovolts",
    "Hz": "hertz",
    "rpm": "revolutionsPerMinute",
    "mg/L": "milligramsPerLiter",
    "NTU": "nephelometricTurbidityUnit",
    "m/s": "metersPerSecond",
    "W/m2": "wattsPerSquareMeter",
    "s": "seconds",
    "min": "minutes",
    "h": "hours",
    "d": "days",
    "kg": "kilograms",
    "dB": "decibels",
}
"""Point unit → BACnetEngineeringUnits name (ASHRAE 135-2020, clause 21); others: noUnits."""

NO_UNITS = "noUnits"


@dataclass(frozen=True, slots=True)
class ObjectPlan:
    """The BACnet object that serves one point."""

    tag: str
    object_type: ObjectTypeName
    instance: int
    commandable: bool

    @property
    def address(self) -> str:
        """The center's BACnet address of the object's present value, e.g. ``analog-input:3``."""
        return f"{self.object_type}:{self.instance}"


def object_type_for(spec: PointSpec) -> ObjectTypeName:
    """The object type that serves a point (see the module's table)."""
    if spec.kind in ("float", "counter"):
        if spec.kind == "counter" or spec.role == "input":
            return "analog-input"
        return "analog-output" if spec.role == "output" else "analog-value"
    if spec.kind == "bool":
        if spec.role == "input":
            return "binary-input"
        return "binary-output" if spec.role == "output" else "binary-value"
    return "multi-state-value"


def plan_objects(points: tuple[PointSpec, ...]) -> tuple[ObjectPlan, ...]:
    """One object per point, instances numbered per type from 1 in point order."""
    next_instance: dict[str, int] = {}
    plans: list[ObjectPlan] = []
    for spec in points:
        object_type = object_type_for(spec)
        instance = next_instance.get(object_type, 1)
        next_instance[object_type] = instance + 1
        # Outputs are always commandable (12.3, 12.7); values when clients may write them.
        commandable = spec.writable and object_type not in ("analog-input", "binary-input")
        plans.append(ObjectPlan(spec.tag, object_type, instance, commandable))
    return tuple(plans)


def engineering_units(unit: str) -> str:
    """The BACnetEngineeringUnits name of a point unit (``noUnits`` when unknown or empty)."""
    return ENGINEERING_UNITS.get(unit, NO_UNITS)


def state_count(spec: PointSpec) -> int:
    """Number of states of a multi-state object serving an ``int`` point."""
    if spec.states:
        return len(spec.states)
    if spec.high is not None and spec.high >= 0:
        return int(spec.high) + 1
    return 0xFFFF
