"""The driver contract shared by every protocol, and the errors drivers raise.

Library exceptions never leave a driver package: each driver maps them into the ``DriverError``
tree here, chaining the cause with ``raise ... from err``. Each error names the quality sub-status
that the scan engine gives the affected samples.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from controlcenter.model import Sample, Severity, Substatus, TagDef, Value


class DriverError(Exception):
    """A driver could not do what it was asked."""

    substatus: Substatus = Substatus.COMM_FAILURE
    point_samples: tuple[Sample, ...] = ()
    """Set by a read that failed as a whole: one Bad sample per point, in order, each with its
    own reason (e.g. the request that point was in); empty when ``str(error)`` fits them all."""


class NotConnectedError(DriverError):
    """The device could not be reached or the connection was lost."""

    substatus = Substatus.NOT_CONNECTED


class CommunicationTimeoutError(DriverError):
    """The device did not answer in time."""

    substatus = Substatus.TIMEOUT


class DeviceRejectedError(DriverError):
    """The device answered with an error (e.g. a Modbus exception response)."""

    substatus = Substatus.DEVICE_FAILURE


class WriteRefusedError(DriverError):
    """A check on the way to the device refused the write (an edge's own interlock): nothing
    was sent to the device, so the command is rejected, not failed."""

    substatus = Substatus.CONFIG_ERROR


class WriteUnconfirmedError(DriverError):
    """The device accepted a write, but reading the value back failed: it is not confirmed.

    The write may well have taken effect in the field, so this is never a refusal
    (``DeviceRejectedError``). ``substatus`` is that of the readback's failure (e.g.
    ``timeout`` when the device fell silent after the write).
    """

    def __init__(self, message: str, *, substatus: Substatus = Substatus.COMM_FAILURE) -> None:
        super().__init__(message)
        self.substatus = substatus


class AddressError(DriverError):
    """A point address is malformed or not valid for its data type."""

    substatus = Substatus.CONFIG_ERROR


class SubscriptionUnsupportedError(DriverError):
    """The protocol or device cannot push changes; the scan engine polls instead."""

    substatus = Substatus.CONFIG_ERROR


async def confirm_write(where: str, readback: Awaitable[Sample]) -> Value:
    """Await the readback of a write the device accepted and return the value read back.

    A readback that raises a DriverError, or returns no Good value, raises
    WriteUnconfirmedError (chained to its cause): the device did accept the write, so its
    failure must not read as the device's refusal.
    """
    try:
        sample = await readback
    except WriteUnconfirmedError:
        raise
    except DriverError as err:
        message = f"{where}: readback failed: {err}"
        raise WriteUnconfirmedError(message, substatus=err.substatus) from err
    if not sample.quality.is_good or sample.value is None:
        quality = sample.quality
        # A Bad readback keeps its sub-status; an Uncertain one has no Bad sub-status to give.
        substatus = (
            quality.substatus if quality.severity is Severity.BAD else Substatus.NON_SPECIFIC
        )
        detail = f"{quality.label()}: {quality.reason}" if quality.reason else quality.label()
        message = f"{where}: readback not Good ({detail})"
        raise WriteUnconfirmedError(message, substatus=substatus)
    return sample.value


SampleCallback = Callable[[list[Sample]], None]
"""Receives pushed samples; called on the event loop, must not block. An empty list is a
keep-alive: the subscription is alive and every point that sent nothing is unchanged (the scan
engine calls a pushed point Uncertain after three intervals without either)."""


@dataclass(frozen=True, slots=True)
class DriverDiagnostics:
    """A snapshot of a driver's health for the HMI and metrics."""

    device: str
    connected: bool
    requests: int
    errors: int
    last_error: str = ""
    errors_by_kind: dict[str, int] = field(default_factory=dict)


class Driver(Protocol):
    """One connection to one field device."""

    @property
    def device(self) -> str:
        """Name of the device this driver talks to."""
        ...

    async def connect(self) -> None:
        """Open the connection; raise NotConnectedError if the device cannot be reached."""
        ...

    async def close(self) -> None:
        """Close the connection; never raises."""
        ...

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        """Read points, one sample each; raise DriverError when the device cannot be read at all."""
        ...

    async def subscribe(
        self, points: Sequence[TagDef], callback: SampleCallback, *, interval_s: float
    ) -> None:
        """Have the device push changes of ``points`` to ``callback`` (OPC UA monitored items,
        BACnet COV), sampled about every ``interval_s`` seconds of wall-clock time (a device
        samples in real time whatever clock stamps the samples); the driver restores the
        subscription after a reconnect and delivers Bad samples while it cannot. Raise
        SubscriptionUnsupportedError where the protocol cannot push (Modbus)."""
        ...

    async def write(self, point: TagDef, value: Value, *, priority: int | None = None) -> Value:
        """Write a value and return the value read back from the device; raise DriverError.

        A refused write raises DeviceRejectedError; an accepted write whose readback fails
        raises WriteUnconfirmedError (``confirm_write`` does that mapping).
        ``priority`` is the command's priority (1 highest … 16, as a BACnet priority array);
        protocols without priorities ignore it."""
        ...

    def diagnostics(self) -> DriverDiagnostics:
        """Current health figures."""
        ...
