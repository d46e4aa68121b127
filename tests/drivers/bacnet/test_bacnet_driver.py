from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime

import pytest

from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.clock import WallClock
from controlcenter.model import DataType, Sample, Severity, Substatus, TagDef
from drivers.bacnet import BacnetDeviceConfig, BacnetDriver, DeviceIdentityError
from drivers.base import (
    CommunicationTimeoutError,
    DeviceRejectedError,
    Driver,
    NotConnectedError,
)
from plc_sim.device import FaultKind
from plc_sim.servers.bacnet.server import BacnetDeviceQuirks, BacnetDeviceServer
from tests.drivers.bacnet.bacnet_support import (
    AUTOMATIC_SETPOINT,
    DEVICE,
    DEVICE_INSTANCE,
    Model,
    build_device,
    tags_of,
)

APDU_TIMEOUT_S = 0.3
POINTS = 150


class FixedClock:
    def now(self) -> datetime:
        return datetime(2025, 1, 1, tzinfo=UTC)


def make_driver(port: int, **overrides: object) -> BacnetDriver:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "device_instance": DEVICE_INSTANCE,
        "local_host": "127.0.0.1",
        "apdu_timeout_s": APDU_TIMEOUT_S,
        "retries": 1,
    }
    settings.update(overrides)
    return BacnetDriver(DEVICE, BacnetDeviceConfig(**settings), FixedClock())  # type: ignore[arg-type]


@pytest.fixture
async def driver(server: BacnetDeviceServer) -> AsyncIterator[BacnetDriver]:
    connected = make_driver(server.port)
    await connected.connect()
    yield connected
    await connected.close()


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until it holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_driver_satisfies_the_contract(server: BacnetDeviceServer) -> None:
    driver: Driver = make_driver(server.port)
    assert driver.device == DEVICE


async def test_reads_a_batch_of_mixed_objects(
    driver: BacnetDriver, tags: dict[str, TagDef]
) -> None:
    samples = await driver.read(list(tags.values()))
    values = {sample.tag: sample.value for sample in samples}
    assert values == {
        "bldg.z1.temp": 20.1,
        "bldg.z2.temp": 20.2,
        "bldg.z3.temp": 20.3,
        "bldg.setpoint": AUTOMATIC_SETPOINT,
        "bldg.damper": 30.0,
        "bldg.fan": False,
        "bldg.alarm": False,
        "bldg.mode": 0,
    }
    assert all(sample.quality.is_good for sample in samples)
    assert driver.max_apdu == 1476
    # One ReadPropertyMultiple for everything, after the connect's two ReadProperty (the
    # device's identity and its max APDU).
    assert driver.diagnostics().requests == 3


async def test_other_properties_and_bad_addresses(
    driver: BacnetDriver, tags: dict[str, TagDef]
) -> None:
    units = TagDef("z1.units", DEVICE, "analog-input:1/units", DataType.INT)
    name = TagDef("z1.name", DEVICE, "analog-input:1/object-name", DataType.STRING)
    missing = TagDef("ghost", DEVICE, "analog-input:77", DataType.FLOAT)
    malformed = TagDef("typo", DEVICE, "analog-inptu:1", DataType.FLOAT)
    samples = await driver.read([units, tags["bldg.z1.temp"], name, missing, malformed])
    assert samples[0].value == 62  # degreesCelsius
    assert samples[1].value == 20.1
    assert samples[2].value == "bldg.z1.temp"
    assert samples[3].quality.substatus is Substatus.CONFIG_ERROR
    assert "unknown-object" in samples[3].quality.reason
    assert samples[4].quality.substatus is Substatus.CONFIG_ERROR


async def test_many_points_are_split_to_fit_the_apdu(model: Model) -> None:
    server = BacnetDeviceServer(build_device(model, analog_inputs=POINTS))
    await server.start()
    driver = make_driver(server.port)
    try:
        await driver.connect()
        points = [tag for tag in tags_of(server).values() if tag.address.startswith("analog-in")]
        before = driver.diagnostics().requests
        samples = await driver.read(points)
        requests = driver.diagnostics().requests - before
    finally:
        await driver.close()
        await server.stop()
    assert len(samples) == POINTS
    assert all(sample.quality.is_good for sample in samples)
    assert samples[-1].value == pytest.approx(20.0 + POINTS / 10)
    # 150 objects x (present-value + status-flags) do not fit one 1476-byte APDU.
    assert 3 <= requests <= 5
    assert driver.diagnostics().errors == 0


async def test_write_priority_readback_and_relinquish(
    driver: BacnetDriver, tags: dict[str, TagDef], model: Model, server: BacnetDeviceServer
) -> None:
    setpoint = tags["bldg.setpoint"]
    assert await driver.write(setpoint, 23.5) == 23.5
    assert server.priority_array("bldg.setpoint")[7] == 23.5  # default priority 8
    assert await driver.write(setpoint, 26.0, priority=5) == 26.0
    # The priority-5 command holds: a new priority-8 write lands but reads back 26.
    assert await driver.write(setpoint, 22.0) == 26.0
    assert await driver.relinquish(setpoint, 5) == 22.0
    assert await driver.relinquish(setpoint, 8) == AUTOMATIC_SETPOINT
    assert model.values["bldg.setpoint"] == AUTOMATIC_SETPOINT
    assert await driver.write(tags["bldg.fan"], True) is True
    assert await driver.write(tags["bldg.mode"], 2, priority=12) == 2
    assert model.values["bldg.mode"] == 2
    assert server.priority_array("bldg.mode")[11] == 2


async def test_refused_writes_name_the_bacnet_error(
    driver: BacnetDriver, tags: dict[str, TagDef]
) -> None:
    with pytest.raises(DeviceRejectedError, match="write-access-denied"):
        await driver.write(tags["bldg.z1.temp"], 5.0)
    with pytest.raises(DeviceRejectedError, match="value-out-of-range"):
        await driver.write(tags["bldg.setpoint"], 99.0)
    assert driver.diagnostics().errors_by_kind == {"device_failure": 2}


async def test_status_flags_set_the_quality(
    driver: BacnetDriver, tags: dict[str, TagDef], server: BacnetDeviceServer
) -> None:
    server.set_point_status("bldg.z1.temp", fault=True)
    server.set_point_status("bldg.z2.temp", out_of_service=True)
    server.set_point_status("bldg.z3.temp", overridden=True)
    z1, z2, z3 = await driver.read([tags[f"bldg.z{n}.temp"] for n in (1, 2, 3)])
    assert (z1.quality.severity, z1.quality.substatus) == (Severity.BAD, Substatus.DEVICE_FAILURE)
    assert (z2.quality.severity, z2.quality.substatus) == (Severity.BAD, Substatus.OUT_OF_SERVICE)
    assert (z3.quality.severity, z3.quality.substatus) == (Severity.GOOD, Substatus.LOCAL_OVERRIDE)
    assert z3.value == 20.3


async def test_error_fault_gives_bad_samples_and_timeouts_raise(
    driver: BacnetDriver, tags: dict[str, TagDef], server: BacnetDeviceServer
) -> None:
    server.device.set_fault(FaultKind.ERROR)
    samples = await driver.read([tags["bldg.z1.temp"], tags["bldg.fan"]])
    assert {s.quality.substatus for s in samples} == {Substatus.DEVICE_FAILURE}
    assert "operational-problem" in samples[0].quality.reason
    server.device.clear_fault()
    server.device.set_fault(FaultKind.OFFLINE)
    await server.publish()
    started = time.monotonic()
    with pytest.raises(CommunicationTimeoutError):
        await driver.read([tags["bldg.z1.temp"]])
    assert time.monotonic() - started < 2 * APDU_TIMEOUT_S + 0.5
    assert not driver.diagnostics().connected
    server.device.clear_fault()
    await server.publish()
    assert (await driver.read([tags["bldg.z1.temp"]]))[0].value == 20.1
    assert driver.diagnostics().connected


async def test_dead_device_fails_within_the_timeout(closed_port: int) -> None:
    driver = make_driver(closed_port)
    started = time.monotonic()
    with pytest.raises(NotConnectedError):
        await driver.connect()
    assert time.monotonic() - started < 2 * APDU_TIMEOUT_S + 0.5
    await driver.close()


async def test_cov_delivers_changes_within_a_second(
    driver: BacnetDriver, tags: dict[str, TagDef], model: Model, server: BacnetDeviceServer
) -> None:
    received: list[Sample] = []
    points = [tags["bldg.z1.temp"], tags["bldg.fan"], tags["bldg.mode"]]
    await driver.subscribe(points, received.extend, interval_s=0.5)
    await wait_for(lambda: {s.tag for s in received} == {p.name for p in points}, 1, "first")
    received.clear()
    model.values["bldg.z1.temp"] = 25.0
    model.values["bldg.fan"] = True
    changed_at = time.monotonic()
    await server.publish()
    await wait_for(
        lambda: (
            {(s.tag, s.value) for s in received} >= {("bldg.z1.temp", 25.0), ("bldg.fan", True)}
        ),
        1,
        "changes",
    )
    assert time.monotonic() - changed_at < 1


async def test_cov_subscriptions_are_renewed_before_they_lapse(model: Model) -> None:
    server = BacnetDeviceServer(build_device(model))
    await server.start()
    driver = make_driver(server.port, cov_lifetime_s=2)
    received: list[Sample] = []
    tag = tags_of(server)["bldg.z1.temp"]
    try:
        await driver.subscribe([tag], received.extend, interval_s=0.2)
        for step in range(1, 8):  # 7 changes spread over 3.5 lifetimes of 2 s
            expected = 20.0 + step
            model.values["bldg.z1.temp"] = expected
            await server.publish()
            await wait_for(lambda: received[-1].value == expected, 1.5, f"change {step}")  # noqa: B023
            # Pacing, not synchronisation: the subscription must outlive its lifetime.
            await asyncio.sleep(0.9)
    finally:
        await driver.close()
        await server.stop()


async def test_subscriptions_come_back_after_a_device_restart(
    driver: BacnetDriver, tags: dict[str, TagDef], model: Model, server: BacnetDeviceServer
) -> None:
    received: list[Sample] = []
    await driver.subscribe([tags["bldg.z2.temp"]], received.extend, interval_s=0.2)
    await wait_for(lambda: bool(received), 1, "first notification")
    await server.restart()
    model.values["bldg.z2.temp"] = 30.0
    await server.publish()
    await wait_for(lambda: any(s.value == 30.0 for s in received), 2, "value after restart")


async def test_outage_is_reported_once_and_recovers(
    driver: BacnetDriver, tags: dict[str, TagDef], model: Model, server: BacnetDeviceServer
) -> None:
    received: list[Sample] = []
    await driver.subscribe([tags["bldg.z3.temp"]], received.extend, interval_s=0.2)
    await wait_for(lambda: bool(received), 1, "first notification")
    server.device.set_fault(FaultKind.OFFLINE)
    await server.publish()
    await wait_for(lambda: not received[-1].quality.is_good, 3, "bad sample")
    assert received[-1].quality.substatus is Substatus.TIMEOUT
    model.values["bldg.z3.temp"] = 31.0
    server.device.clear_fault()
    await server.publish()
    await wait_for(lambda: received[-1].value == 31.0, 3, "recovery")
    assert sum(1 for s in received if not s.quality.is_good) == 1


# -- the device's identity ---------------------------------------------------------------------


async def test_a_wrong_device_instance_is_a_configuration_error(
    server: BacnetDeviceServer, tags: dict[str, TagDef]
) -> None:
    driver = make_driver(server.port, device_instance=9999)
    try:
        with pytest.raises(DeviceIdentityError) as connecting:
            await driver.connect()
        assert "9999" in str(connecting.value)
        assert f"device instance {DEVICE_INSTANCE}" in str(connecting.value)
        assert connecting.value.substatus is Substatus.CONFIG_ERROR
        before = driver.diagnostics().requests
        with pytest.raises(DeviceIdentityError):
            await driver.read(list(tags.values()))
        with pytest.raises(DeviceIdentityError):
            await driver.subscribe([tags["bldg.z1.temp"]], lambda _: None, interval_s=0.2)
        with pytest.raises(DeviceIdentityError):
            await driver.write(tags["bldg.setpoint"], 23.0)
        # Only the identity was asked for: nothing of the other device was read or written.
        assert driver.diagnostics().requests - before == 3
        assert server.priority_array("bldg.setpoint").count(None) == 16
    finally:
        await driver.close()


async def test_the_identity_is_checked_again_after_a_silence(
    server: BacnetDeviceServer, tags: dict[str, TagDef]
) -> None:
    # Another device answering at the same address after an outage is caught too.
    driver = make_driver(server.port)
    replacement = build_device(Model())
    replacement.device_instance = DEVICE_INSTANCE + 1
    other: BacnetDeviceServer | None = None
    try:
        await driver.connect()
        assert (await driver.read([tags["bldg.z1.temp"]]))[0].quality.is_good
        server.device.set_fault(FaultKind.OFFLINE)
        await server.publish()
        with pytest.raises(CommunicationTimeoutError):
            await driver.read([tags["bldg.z1.temp"]])
        port = server.port
        await server.stop()
        other = BacnetDeviceServer(replacement, port=port)
        await other.start()
        with pytest.raises(DeviceIdentityError, match=f"device instance {DEVICE_INSTANCE + 1}"):
            await driver.read([tags["bldg.z1.temp"]])
    finally:
        await driver.close()
        if other is not None:
            await other.stop()
        server.device.clear_fault()


# -- COV values never stay Good when the device no longer reports them --------------------------

SUPERVISION_INTERVAL_S = 0.4


async def _changed_value_arrives(
    server: BacnetDeviceServer,
    model: Model,
    received: list[Sample],
    lose_subscriptions: Callable[[], Awaitable[None]],
) -> float:
    """Lose the subscriptions, change the value; seconds until the driver stops calling the
    old value Good (a Good new value, or a non-Good sample)."""
    tag = "bldg.z1.temp"
    await wait_for(lambda: any(s.tag == tag for s in received), 1, "first notification")
    await lose_subscriptions()
    received.clear()
    model.values[tag] = 27.5
    await server.publish()
    changed_at = time.monotonic()
    await wait_for(
        lambda: any(s.tag == tag and (s.value == 27.5 or not s.quality.is_good) for s in received),
        10 * SUPERVISION_INTERVAL_S + 2,
        "the change or a non-Good sample",
    )
    noticed_after = time.monotonic() - changed_at
    await wait_for(
        lambda: bool(received) and received[-1].value == 27.5 and received[-1].quality.is_good,
        10 * SUPERVISION_INTERVAL_S + 2,
        "the new value, Good",
    )
    return noticed_after


async def _subscribed_driver(
    server: BacnetDeviceServer, tags: dict[str, TagDef], received: list[Sample]
) -> BacnetDriver:
    driver = make_driver(server.port)
    await driver.subscribe(
        [tags["bldg.z1.temp"]], received.extend, interval_s=SUPERVISION_INTERVAL_S
    )
    return driver


@pytest.mark.parametrize("lists_cov_subscriptions", [True, False])
async def test_a_quick_restart_without_time_of_device_restart_is_noticed(
    model: Model, lists_cov_subscriptions: bool
) -> None:
    # Like bacnet-stack's demo server: no time-of-device-restart, subscriptions lost on restart.
    quirks = BacnetDeviceQuirks(
        time_of_device_restart=False, lists_cov_subscriptions=lists_cov_subscriptions
    )
    server = BacnetDeviceServer(build_device(model), quirks=quirks)
    await server.start()
    received: list[Sample] = []
    driver = await _subscribed_driver(server, tags_of(server), received)
    try:
        noticed_after = await _changed_value_arrives(server, model, received, server.restart)
    finally:
        await driver.close()
        await server.stop()
    assert noticed_after < 3 * SUPERVISION_INTERVAL_S


async def test_subscriptions_lost_without_a_restart_are_made_again(
    driver: BacnetDriver, tags: dict[str, TagDef], model: Model, server: BacnetDeviceServer
) -> None:
    received: list[Sample] = []
    await driver.subscribe(
        [tags["bldg.z1.temp"]], received.extend, interval_s=SUPERVISION_INTERVAL_S
    )

    async def drop() -> None:
        server.drop_cov_subscriptions()

    noticed_after = await _changed_value_arrives(server, model, received, drop)
    assert noticed_after < 3 * SUPERVISION_INTERVAL_S
    # Between the loss and the new subscription, the last value was Uncertain, not Good.
    kept = [s for s in received if s.value == 20.1]
    assert kept
    assert all(s.quality.severity is Severity.UNCERTAIN for s in kept)
    assert {s.quality.substatus for s in kept} == {Substatus.LAST_USABLE}


async def test_supervision_costs_one_request_per_interval(
    driver: BacnetDriver, tags: dict[str, TagDef]
) -> None:
    batches: list[list[Sample]] = []
    points = [tags[f"bldg.z{n}.temp"] for n in (1, 2, 3)] + [tags["bldg.fan"]]
    await driver.subscribe(points, batches.append, interval_s=SUPERVISION_INTERVAL_S)
    # An empty batch is the keep-alive of one confirmed supervision round.
    await wait_for(lambda: [] in batches, 10 * SUPERVISION_INTERVAL_S, "a supervision round")
    rounds, requests = batches.count([]), driver.diagnostics().requests
    await wait_for(
        lambda: batches.count([]) >= rounds + 4, 20 * SUPERVISION_INTERVAL_S, "4 more rounds"
    )
    assert driver.diagnostics().requests - requests == batches.count([]) - rounds


class _Collected:
    """A sample publisher that keeps everything."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def publish(self, samples: Sequence[Sample]) -> None:
        self.samples.extend(samples)


@pytest.mark.parametrize("poll", [True, False])
async def test_a_wrong_device_instance_makes_every_point_bad_in_the_scan(
    server: BacnetDeviceServer, tags: dict[str, TagDef], poll: bool
) -> None:
    driver = BacnetDriver(
        DEVICE,
        BacnetDeviceConfig(
            host="127.0.0.1",
            port=server.port,
            device_instance=9999,
            local_host="127.0.0.1",
            apdu_timeout_s=APDU_TIMEOUT_S,
        ),
        WallClock(),
    )
    points = tuple(tags.values())
    collected = _Collected()
    scan = DeviceScan(driver, points, interval_s=0.2, timeout_s=2.0, poll=poll)
    engine = ScanEngine([scan], collected, WallClock())
    task = asyncio.create_task(engine.run())
    try:
        await wait_for(
            lambda: {s.tag for s in collected.samples} == {p.name for p in points},
            5,
            "a sample of every point",
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await driver.close()
    for sample in collected.samples:
        assert sample.value is None
        assert sample.quality.substatus is Substatus.CONFIG_ERROR
        assert "9999" in sample.quality.reason
        assert f"device instance {DEVICE_INSTANCE}" in sample.quality.reason
