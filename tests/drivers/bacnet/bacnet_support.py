"""A small BACnet building controller for the driver tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from controlcenter.model import DataType, TagDef
from plc_sim.device import PointBinding, PointSpec, PointValue, SimDevice
from plc_sim.servers.bacnet.server import BacnetDeviceServer

DEVICE = "test.bms"
DEVICE_INSTANCE = 2001
AUTOMATIC_SETPOINT = 21.0


@dataclass
class Model:
    """Values behind the test device, by tag."""

    values: dict[str, PointValue] = field(default_factory=dict)

    def reader(self, tag: str) -> Callable[[], PointValue]:
        return lambda: self.values[tag]

    def writer(self, tag: str) -> Callable[[PointValue], None]:
        return lambda value: self.values.__setitem__(tag, value)


def build_device(model: Model, analog_inputs: int = 3) -> SimDevice:
    """A building controller: analog inputs, a setpoint, a damper, a fan, a mode."""
    points: list[PointBinding] = []
    for number in range(1, analog_inputs + 1):
        tag = f"bldg.z{number}.temp"
        model.values[tag] = 20.0 + number / 10
        spec = PointSpec(tag, "float", "degC", cov_increment=0.2, low=-40, high=80)
        points.append(PointBinding(spec, model.reader(tag)))
    model.values.update(
        {
            "bldg.setpoint": AUTOMATIC_SETPOINT,
            "bldg.damper": 30.0,
            "bldg.fan": False,
            "bldg.alarm": False,
            "bldg.mode": 0,
        }
    )
    points += [
        PointBinding(
            PointSpec("bldg.setpoint", "float", "degC", True, 5, 35, role="value"),
            model.reader("bldg.setpoint"),
            model.writer("bldg.setpoint"),
            lambda: model.values.__setitem__("bldg.setpoint", AUTOMATIC_SETPOINT),
        ),
        PointBinding(
            PointSpec("bldg.damper", "float", "%", True, 0, 100, role="output"),
            model.reader("bldg.damper"),
            model.writer("bldg.damper"),
        ),
        PointBinding(
            PointSpec("bldg.fan", "bool", writable=True, role="output"),
            model.reader("bldg.fan"),
            model.writer("bldg.fan"),
        ),
        PointBinding(PointSpec("bldg.alarm", "bool", role="input"), model.reader("bldg.alarm")),
        PointBinding(
            PointSpec(
                "bldg.mode", "int", writable=True, role="value", states=("auto", "on", "off")
            ),
            model.reader("bldg.mode"),
            model.writer("bldg.mode"),
        ),
    ]
    return SimDevice(DEVICE, "bacnet", points, device_instance=DEVICE_INSTANCE)


def tags_of(server: BacnetDeviceServer) -> dict[str, TagDef]:
    """The device's points as the center's tag definitions, by tag name."""
    kinds = {"float": DataType.FLOAT, "counter": DataType.FLOAT, "bool": DataType.BOOL}
    addresses = server.addresses()
    return {
        spec.tag: TagDef(
            spec.tag,
            DEVICE,
            addresses[spec.tag],
            kinds.get(spec.kind, DataType.INT),
            writable=spec.writable,
        )
        for spec in server.device.points
    }
