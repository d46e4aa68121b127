"""A simulated field device: named points bound to a physics model, with injectable faults.

This is the seam between the physics (plain Python, no protocol imports) and the protocol
servers. A domain model (water network, lighting district, building…) exposes its state through
``PointBinding`` objects; a ``SimDevice`` groups the points one PLC/RTU/controller serves; a
protocol server (``plc_sim.servers.modbus.server``, ``plc_sim.servers.opcua.server``,
``plc_sim.servers.bacnet.server``) maps those points to protocol addresses and reads and writes
them only through the device.

Faults are injected per device at run time. Protocol-level faults (offline, refusing, slow,
error responses, restart) are carried out by the protocol server, which reads ``device.faults``;
value-level faults (stuck, noisy) are applied here, in ``SimDevice.read``, so every protocol
shows them the same way.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

PointKind = Literal["float", "bool", "int", "counter"]
"""``float``: an analog value; ``bool``: a binary value; ``int``: an enumeration or count
(e.g. a mode: 0 auto, 1 manual, 2 off); ``counter``: an ever-growing total (energy, volume)
that needs double precision."""

ProtocolName = Literal["modbus", "opcua", "bacnet", "gtfs_realtime", "gbfs", "mqtt"]

PointRole = Literal["input", "output", "value"]
"""What a point is to the device, as BACnet object types and Modbus tables distinguish it:
``input`` a measurement or feedback (read-only), ``output`` a physical output the device drives
(valve, damper, fan, lamp), ``value`` a software value such as a setpoint or a mode."""

PointValue = float | bool | int


class UnknownDeviceError(KeyError):
    """No simulated device has that name."""


class PointWriteError(ValueError):
    """A write to a point was refused (not writable, wrong type or out of range)."""


@dataclass(frozen=True, slots=True)
class PointSpec:
    """What a point is: its tag name, kind, unit, range and whether clients may write it."""

    tag: str
    kind: PointKind
    unit: str = ""
    writable: bool = False
    low: float | None = None
    high: float | None = None
    description: str = ""
    role: PointRole = "input"
    cov_increment: float | None = None
    """Smallest change worth a change-of-value notification (BACnet COV increment, OPC UA
    absolute deadband); None for binary and enumerated points."""
    states: tuple[str, ...] = ()
    """Names of the values 0, 1, 2… of an ``int`` point that is an enumeration."""

    def __post_init__(self) -> None:
        if not self.tag or " " in self.tag:
            raise ValueError(f"point tag {self.tag!r} must be a non-empty dotted name")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"point {self.tag}: low {self.low} above high {self.high}")
        if self.writable and self.role == "input":
            raise ValueError(f"point {self.tag}: an input cannot be writable")


@dataclass(frozen=True, slots=True)
class PointBinding:
    """A point and the functions that read it from and write it into its physics model."""

    spec: PointSpec
    read: Callable[[], PointValue]
    write: Callable[[PointValue], None] | None = None
    release: Callable[[], None] | None = None
    """Called when every client command is withdrawn (a BACnet priority array with all slots
    relinquished): the point returns to its automatic value (a default setpoint, the local
    control loop's output). None: the last written value simply stays."""

    def __post_init__(self) -> None:
        if self.spec.writable != (self.write is not None):
            raise ValueError(f"point {self.spec.tag}: writable points need a write function")
        if self.release is not None and self.write is None:
            raise ValueError(f"point {self.spec.tag}: only writable points can be released")


class FaultKind(StrEnum):
    """The faults a simulated device can be given at run time."""

    OFFLINE = "offline"
    """Keeps its socket but never answers, as a hung PLC or a broken link behind a switch."""
    REFUSING = "refusing"
    """Refuses connections (nothing listens on the port), as a device switched off."""
    SLOW = "slow"
    """Answers every request after ``delay_s``."""
    ERROR = "error"
    """Answers every request with a protocol error (Modbus exception, OPC UA Bad status,
    BACnet error)."""
    STUCK = "stuck"
    """Every value freezes at what it was when the fault was set."""
    NOISY = "noisy"
    """Analog values carry Gaussian noise of ``noise`` times the point's span (or absolute)."""


@dataclass(slots=True)
class DeviceFaults:
    """The faults currently active on one device (mutable: set and cleared at run time)."""

    active: set[FaultKind] = field(default_factory=set)
    delay_s: float = 2.0
    error_code: int | None = None
    """Protocol-specific error to answer with under ``ERROR`` (e.g. a Modbus exception code);
    None: each server's default (Modbus 4 server device failure, OPC UA BadInternalError,
    BACnet device/operational-problem)."""
    noise: float = 0.05
    stuck_values: dict[str, PointValue] = field(default_factory=dict)

    def has(self, kind: FaultKind) -> bool:
        """Whether ``kind`` is active."""
        return kind in self.active


class SimDevice:
    """One simulated PLC/RTU/controller: a name, a protocol and the points it serves."""

    def __init__(
        self,
        name: str,
        protocol: ProtocolName,
        points: Sequence[PointBinding],
        *,
        description: str = "",
        unit_id: int = 1,
        device_instance: int | None = None,
        seed: int = 1,
    ) -> None:
        tags = [binding.spec.tag for binding in points]
        if len(set(tags)) != len(tags):
            raise ValueError(f"device {name}: duplicate point tags")
        if not points:
            raise ValueError(f"device {name} has no points")
        self.name = name
        self.protocol: ProtocolName = protocol
        self.description = description
        self.unit_id = unit_id
        """Modbus unit identifier (Modbus devices only)."""
        self.device_instance = device_instance
        """BACnet device object instance (BACnet devices only)."""
        self.faults = DeviceFaults()
        self.before_write: Callable[[], None] | None = None
        """Run before a client's write reaches the model: the city integrates its physics up
        to the moment of the command, so delays count from the write, not the last step."""
        self.restart_handler: Callable[[], object] | None = None
        """Set by the device's protocol server: how to restart it (returns an awaitable)."""
        self._bindings = {binding.spec.tag: binding for binding in points}
        self._specs = tuple(binding.spec for binding in points)
        self._readers = tuple(binding.read for binding in points)
        # crc32, not hash(): str hashes are salted per process, and runs must repeat for a seed.
        self._noise = random.Random(seed ^ zlib.crc32(name.encode()))

    @property
    def points(self) -> tuple[PointSpec, ...]:
        """The device's points in their fixed order (protocol maps are allocated in it)."""
        return self._specs

    def spec(self, tag: str) -> PointSpec:
        """The spec of one point; KeyError names the device when it has no such point."""
        try:
            return self._bindings[tag].spec
        except KeyError as err:
            raise KeyError(f"device {self.name} has no point {tag}") from err

    def read(self, tag: str) -> PointValue:
        """The point's current value as a client would see it (stuck and noise applied)."""
        binding = self._bindings[tag]
        if self.faults.has(FaultKind.STUCK):
            stuck = self.faults.stuck_values
            if tag not in stuck:
                stuck[tag] = binding.read()
            return stuck[tag]
        value = binding.read()
        if self.faults.has(FaultKind.NOISY) and binding.spec.kind == "float":
            value = float(value) + self._noise.gauss(0.0, self._noise_sd(binding.spec))
        return value

    def read_all(self) -> list[PointValue]:
        """Every point's value in ``points`` order, as ``read`` gives each one.

        Servers publish every point ten times a second; taking them all at once checks the
        faults once per device instead of once per point.
        """
        active = self.faults.active
        if FaultKind.STUCK in active or FaultKind.NOISY in active:
            return [self.read(spec.tag) for spec in self._specs]
        return [reader() for reader in self._readers]

    def write(self, tag: str, value: PointValue) -> None:
        """Apply a client's write; PointWriteError if the point refuses it."""
        binding = self._bindings.get(tag)
        if binding is None:
            raise PointWriteError(f"device {self.name} has no point {tag}")
        spec = binding.spec
        if binding.write is None:
            raise PointWriteError(f"point {tag} is read-only")
        checked = _checked_value(spec, value)
        if self.before_write is not None:
            self.before_write()
        binding.write(checked)

    def release(self, tag: str) -> None:
        """Withdraw every client command of a point: it returns to its automatic value."""
        binding = self._bindings.get(tag)
        if binding is None or binding.write is None:
            raise PointWriteError(f"device {self.name} has no writable point {tag}")
        if binding.release is not None:
            if self.before_write is not None:
                self.before_write()
            binding.release()

    def set_fault(
        self,
        kind: FaultKind,
        *,
        delay_s: float | None = None,
        error_code: int | None = None,
        noise: float | None = None,
    ) -> None:
        """Activate a fault (RESTART is not a state: use the city's ``restart_device``)."""
        if delay_s is not None:
            if delay_s < 0:
                raise ValueError(f"fault delay must not be negative, got {delay_s}")
            self.faults.delay_s = delay_s
        if error_code is not None:
            self.faults.error_code = error_code
        if noise is not None:
            self.faults.noise = noise
        if kind is FaultKind.STUCK:
            self.faults.stuck_values.clear()
            for spec in self._specs:
                self.faults.stuck_values[spec.tag] = self._bindings[spec.tag].read()
        self.faults.active.add(kind)

    def clear_fault(self, kind: FaultKind | None = None) -> None:
        """Clear one fault, or every fault when ``kind`` is None."""
        if kind is None:
            self.faults.active.clear()
        else:
            self.faults.active.discard(kind)
        if not self.faults.has(FaultKind.STUCK):
            self.faults.stuck_values.clear()

    def _noise_sd(self, spec: PointSpec) -> float:
        if spec.low is not None and spec.high is not None and spec.high > spec.low:
            return self.faults.noise * (spec.high - spec.low)
        return self.faults.noise


def _checked_value(spec: PointSpec, value: PointValue) -> PointValue:
    """The value converted to the point's kind, or PointWriteError naming the reason."""
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        raise PointWriteError(f"point {spec.tag} takes true/false, got {value!r}")
    if isinstance(value, bool):
        raise PointWriteError(f"point {spec.tag} takes a number, got {value!r}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise PointWriteError(f"point {spec.tag} refuses {value!r}")
    if spec.low is not None and number < spec.low:
        raise PointWriteError(f"point {spec.tag}: {number:g} below {spec.low:g}")
    if spec.high is not None and number > spec.high:
        raise PointWriteError(f"point {spec.tag}: {number:g} above {spec.high:g}")
    if spec.kind == "int":
        if number != int(number):
            raise PointWriteError(f"point {spec.tag} takes a whole number, got {value!r}")
        return int(number)
    return number
