"""Field faults through the whole acquisition path: simulator fault → driver → scan engine.

For every protocol and every fault kind the simulator can inject (offline, refusing, slow beyond
the timeout, error responses, restart): the faulty device's point turns Bad with a reason within
a few scan periods, comes back Good soon after the fault clears, and a healthy device of the same
protocol scanned beside it keeps its scan rate throughout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
import pytest_asyncio

from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.clock import WallClock
from controlcenter.model import DataType, Sample, Substatus, TagDef
from drivers.bacnet.config import BacnetDeviceConfig
from drivers.bacnet.driver import BacnetDriver
from drivers.base import Driver
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.driver import ModbusDriver
from drivers.opcua.config import OpcUaDeviceConfig
from drivers.opcua.driver import OpcUaDriver
from plc_sim.device import FaultKind, PointBinding, PointSpec, SimDevice
from plc_sim.domain import DeviceServer
from plc_sim.servers.bacnet.server import BacnetDeviceServer
from plc_sim.servers.modbus.server import ModbusDeviceServer
from plc_sim.servers.opcua.server import OpcUaDeviceServer

INTERVAL_S = 0.25
TIMEOUT_S = 0.75
SLOW_DELAY_S = 2.0
FAULT_SEEN_WITHIN_S = 6.0
RECOVERY_WITHIN_S = 10.0

FAILURE_SUBSTATUS = {
    FaultKind.OFFLINE: {Substatus.TIMEOUT, Substatus.COMM_FAILURE, Substatus.NOT_CONNECTED},
    FaultKind.REFUSING: {Substatus.NOT_CONNECTED, Substatus.COMM_FAILURE, Substatus.TIMEOUT},
    FaultKind.SLOW: {Substatus.TIMEOUT, Substatus.COMM_FAILURE},
    FaultKind.ERROR: {Substatus.DEVICE_FAILURE, Substatus.SENSOR_FAILURE, Substatus.COMM_FAILURE},
}


class Recorder:
    """Keeps every published sample with the wall time it arrived."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, Sample]] = []

    def publish(self, samples: Sequence[Sample]) -> None:
        """Record a batch."""
        now = time.monotonic()
        self.samples.extend((now, sample) for sample in samples)

    def latest(self, tag: str) -> Sample | None:
        """The last sample of ``tag``."""
        found = self.latest_with_time(tag)
        return None if found is None else found[1]

    def latest_with_time(self, tag: str) -> tuple[float, Sample] | None:
        """The last sample of ``tag`` and when it arrived."""
        for arrived, sample in reversed(self.samples):
            if sample.tag == tag:
                return arrived, sample
        return None


@dataclass
class Plc:
    """One simulated device, its server and a driver for it."""

    device: SimDevice
    server: DeviceServer
    tag: TagDef
    driver: Driver


@dataclass
class Scanned:
    """A faulty and a healthy device of one protocol, scanned side by side."""

    protocol: str
    faulty: Plc
    healthy: Plc
    engine: ScanEngine
    recorder: Recorder


def _build_driver(protocol: str, plc_name: str, instance: int, port: int) -> Driver:
    clock = WallClock()
    if protocol == "modbus":
        return ModbusDriver(
            plc_name,
            ModbusDeviceConfig("127.0.0.1", port, timeout_s=TIMEOUT_S, reconnect_delay_max_s=0.5),
            clock,
        )
    if protocol == "opcua":
        config = OpcUaDeviceConfig(
            f"opc.tcp://127.0.0.1:{port}", timeout_s=TIMEOUT_S, reconnect_max_delay_s=1.0
        )
        return OpcUaDriver(plc_name, config, clock)
    config_bacnet = BacnetDeviceConfig(
        host="127.0.0.1",
        port=port,
        device_instance=instance,
        local_host="127.0.0.1",
        apdu_timeout_s=TIMEOUT_S,
        retries=0,
    )
    return BacnetDriver(plc_name, config_bacnet, clock)


async def _start_plc(protocol: str, name: str, instance: int) -> Plc:
    spec = PointSpec(f"{name}.level", "float", unit="m", low=0.0, high=10.0, cov_increment=0.1)
    device = SimDevice(
        f"{name}_plc",
        protocol,  # type: ignore[arg-type]
        [PointBinding(spec, lambda: 4.0)],
        device_instance=instance,
    )
    server: DeviceServer
    if protocol == "modbus":
        server = ModbusDeviceServer(device)
    elif protocol == "opcua":
        server = OpcUaDeviceServer(device)
    else:
        server = BacnetDeviceServer(device)
    await server.start()
    tag = TagDef(spec.tag, device.name, server.addresses()[spec.tag], DataType.FLOAT, unit="m")
    return Plc(device, server, tag, _build_driver(protocol, device.name, instance, server.port))


@pytest_asyncio.fixture(loop_scope="session", params=("modbus", "opcua", "bacnet"))
async def scanned(request: pytest.FixtureRequest) -> AsyncIterator[Scanned]:
    """Two devices of one protocol, polled every 250 ms by one scan engine."""
    protocol = str(request.param)
    faulty = await _start_plc(protocol, "faulty", 5001)
    healthy = await _start_plc(protocol, "healthy", 5002)
    recorder = Recorder()
    engine = ScanEngine(
        [
            DeviceScan(plc.driver, (plc.tag,), INTERVAL_S, TIMEOUT_S + 0.5, poll=True)
            for plc in (faulty, healthy)
        ],
        recorder,
        WallClock(),
    )
    task = asyncio.create_task(engine.run())
    try:
        await _until_good(recorder, faulty.tag.name, 10.0)
        await _until_good(recorder, healthy.tag.name, 10.0)
        yield Scanned(protocol, faulty, healthy, engine, recorder)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for plc in (faulty, healthy):
            await plc.driver.close()
            await plc.server.stop()


async def _until_good(recorder: Recorder, tag: str, timeout_s: float) -> float:
    started = time.monotonic()
    while True:
        sample = recorder.latest(tag)
        if sample is not None and sample.quality.is_good:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout_s, f"{tag} not Good within {timeout_s} s"
        await asyncio.sleep(0.02)


async def _until_bad(recorder: Recorder, tag: str, timeout_s: float) -> Sample:
    started = time.monotonic()
    while True:
        sample = recorder.latest(tag)
        if sample is not None and not sample.quality.is_good:
            return sample
        assert time.monotonic() - started < timeout_s, f"{tag} still Good after {timeout_s} s"
        await asyncio.sleep(0.02)


def _healthy_scans(scanned: Scanned) -> tuple[int, int]:
    for diagnostics in scanned.engine.diagnostics():
        if diagnostics.device == scanned.healthy.device.name:
            return diagnostics.scans, diagnostics.scans_on_time
    raise AssertionError("healthy device not in the diagnostics")


@pytest.mark.parametrize(
    "kind", [FaultKind.OFFLINE, FaultKind.REFUSING, FaultKind.SLOW, FaultKind.ERROR]
)
async def test_a_fault_turns_the_point_bad_and_clearing_it_recovers(
    scanned: Scanned, kind: FaultKind
) -> None:
    faulty, recorder = scanned.faulty, scanned.recorder
    scans_before, on_time_before = _healthy_scans(scanned)
    fault_set_at = time.monotonic()
    faulty.device.set_fault(kind, delay_s=SLOW_DELAY_S)
    await faulty.server.publish()  # servers reconcile listening faults when they publish
    bad = await _until_bad(recorder, faulty.tag.name, FAULT_SEEN_WITHIN_S)
    assert bad.quality.substatus in FAILURE_SUBSTATUS[kind], bad.quality
    assert bad.quality.reason
    faulty.device.clear_fault()
    await faulty.server.publish()
    recovery_s = await _until_good(recorder, faulty.tag.name, RECOVERY_WITHIN_S)
    assert recovery_s < RECOVERY_WITHIN_S
    scans_after, on_time_after = _healthy_scans(scanned)
    scans, on_time = scans_after - scans_before, on_time_after - on_time_before
    # The healthy neighbour kept its rate: a scan every interval, (almost) all on time.
    expected = (time.monotonic() - fault_set_at) / INTERVAL_S
    assert scans >= 0.7 * expected - 1, (scans, expected)
    assert on_time >= 0.9 * scans, (on_time, scans)


async def test_a_restarted_device_is_read_again(scanned: Scanned) -> None:
    faulty, recorder = scanned.faulty, scanned.recorder
    await faulty.server.restart()
    restarted_at = time.monotonic()
    # After the restart the point must be Good again, read through a new connection/session.
    while True:
        found = recorder.latest_with_time(faulty.tag.name)
        if found is not None and found[1].quality.is_good and found[0] > restarted_at + 1.0:
            break
        assert time.monotonic() - restarted_at < RECOVERY_WITHIN_S, "not read again after restart"
        await asyncio.sleep(0.02)
    scans, on_time = _healthy_scans(scanned)
    assert on_time >= 0.9 * scans
