from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua

from controlcenter.clock import WallClock
from controlcenter.model import DataType, Sample, Severity, Substatus, TagDef
from drivers.base import AddressError, DeviceRejectedError, Driver, NotConnectedError
from drivers.opcua import OpcUaDeviceConfig, OpcUaDriver
from tests.drivers.opcua.opcua_test_server import BULK_VARIABLES, PlantServer, wait_until

DRIVER_LOGGER = "drivers.opcua.driver"


def tag(address: str, data_type: DataType = DataType.FLOAT, name: str = "") -> TagDef:
    return TagDef(name or address, "plant", address, data_type, writable=True)


def driver_for(plant: PlantServer, **settings: Any) -> OpcUaDriver:
    return OpcUaDriver("plant", OpcUaDeviceConfig(plant.url, **settings), WallClock())


def latest(samples: list[Sample], name: str) -> Sample | None:
    return next((sample for sample in reversed(samples) if sample.tag == name), None)


@pytest_asyncio.fixture(loop_scope="session")
async def driver(plant: PlantServer) -> AsyncIterator[OpcUaDriver]:
    connected = driver_for(plant)
    await connected.connect()
    yield connected
    await connected.close()


def test_satisfies_the_driver_protocol(plant: PlantServer) -> None:
    implementation: Driver = driver_for(plant)
    assert implementation.device == "plant"


async def test_reads_a_batch_in_one_call_in_the_tag_types(
    plant: PlantServer, driver: OpcUaDriver
) -> None:
    stamp = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    await plant.set("Count", 7, ua.VariantType.Int32, source_time=stamp)
    points = [
        tag(plant.node_id("Count"), DataType.INT),
        tag(plant.node_id("Running"), DataType.BOOL),
        tag(plant.node_id("Name"), DataType.STRING),
        tag(plant.node_id("ReadOnly"), DataType.FLOAT),
        tag(plant.node_id("Count"), DataType.FLOAT, name="count_as_float"),
    ]
    before = driver.diagnostics().requests

    samples = await driver.read(points)

    assert driver.diagnostics().requests - before == 1
    assert [sample.value for sample in samples] == [7, True, "north", 3.0, 7.0]
    assert all(sample.quality.is_good for sample in samples)
    assert type(samples[4].value) is float
    assert samples[0].source_time == stamp
    assert driver.diagnostics().connected


async def test_large_reads_are_chunked_to_the_read_limit(plant: PlantServer) -> None:
    chunked = driver_for(plant, max_nodes_per_read=100)
    try:
        await chunked.connect()
        before = chunked.diagnostics().requests
        points = [tag(plant.node_id(name)) for name in plant.shard_names]

        samples = await chunked.read(points)

        assert len(samples) == BULK_VARIABLES
        assert all(sample.quality.is_good for sample in samples)
        assert chunked.diagnostics().requests - before == BULK_VARIABLES // 100
    finally:
        await chunked.close()


async def test_status_codes_and_unusable_values_become_quality(
    plant: PlantServer, driver: OpcUaDriver
) -> None:
    points = [
        tag(plant.node_id("Faulty")),
        tag(plant.node_id("Stale")),
        tag("ns=2;s=Plant.DoesNotExist"),
        tag(plant.node_id("Vector")),
        tag(plant.node_id("Name"), DataType.FLOAT),
        tag("q=12"),
    ]

    faulty, stale, unknown, vector, mistyped, malformed = await driver.read(points)

    assert faulty.value is None
    assert (faulty.quality.severity, faulty.quality.substatus) == (
        Severity.BAD,
        Substatus.SENSOR_FAILURE,
    )
    assert stale.value == 4.0
    assert (stale.quality.severity, stale.quality.substatus) == (
        Severity.UNCERTAIN,
        Substatus.LAST_USABLE,
    )
    for sample in (unknown, vector, mistyped, malformed):
        assert sample.value is None
        assert sample.quality.label() == "bad:config_error", sample
    assert "BadNodeIdUnknown" in unknown.quality.reason
    assert "array" in vector.quality.reason
    assert "str" in mistyped.quality.reason


async def test_browse_paths_numeric_ids_and_namespace_uris_resolve(
    plant: PlantServer, driver: OpcUaDriver
) -> None:
    await plant.set("Level", 2.5, ua.VariantType.Double)
    points = [
        tag("/Objects/2:Plant/2:Level", name="by_path"),
        tag("nsu=urn:city:test-plant;s=Plant.Level", name="by_uri"),
        tag("ns=2;i=1234", DataType.INT, name="numeric"),
        tag("/Objects/2:Plant/2:Missing", name="missing_path"),
        tag("nsu=urn:nobody;s=Plant.Level", name="unknown_namespace"),
    ]
    before = driver.diagnostics().requests

    by_path, by_uri, numeric, missing_path, unknown_namespace = await driver.read(points)
    # The browse path is translated once per session: the second read is one Read call.
    middle = driver.diagnostics().requests
    again = await driver.read(points[:1])

    assert (by_path.value, by_uri.value, numeric.value) == (2.5, 2.5, 42)
    assert middle - before == 2  # TranslateBrowsePathsToNodeIds + Read
    assert driver.diagnostics().requests - middle == 1
    assert again[0].value == 2.5
    assert missing_path.quality.label() == "bad:config_error"
    assert "BadNoMatch" in missing_path.quality.reason
    assert unknown_namespace.quality.label() == "bad:config_error"
    assert "urn:nobody" in unknown_namespace.quality.reason


async def test_writes_use_the_variables_own_type_and_read_back(
    plant: PlantServer, driver: OpcUaDriver
) -> None:
    setpoint = tag(plant.node_id("Setpoint"))
    count = tag(plant.node_id("Count"), DataType.INT)
    running = tag(plant.node_id("Running"), DataType.BOOL)

    assert await driver.write(setpoint, 4.25) == 4.25
    assert await driver.write(setpoint, 3) == 3.0
    assert await driver.write(count, 9) == 9
    assert await driver.write(running, False) is False

    stored = await plant.variables["Setpoint"].read_data_value()
    assert stored.Value is not None
    assert stored.Value.VariantType is ua.VariantType.Float
    await driver.write(running, True)


async def test_a_refused_write_names_the_status_code(
    plant: PlantServer, driver: OpcUaDriver
) -> None:
    with pytest.raises(DeviceRejectedError, match="BadUserAccessDenied"):
        await driver.write(tag(plant.node_id("ReadOnly")), 1.0)
    with pytest.raises(AddressError, match="cannot take"):
        await driver.write(tag(plant.node_id("Level")), "high")
    with pytest.raises(AddressError, match="out of the Int32 range"):
        await driver.write(tag(plant.node_id("Count"), DataType.INT), 2**40)
    assert driver.diagnostics().errors_by_kind.get("device_failure", 0) >= 1


async def test_subscription_delivers_changes_with_source_times(
    plant: PlantServer, driver: OpcUaDriver
) -> None:
    received: list[Sample] = []
    count = tag(plant.node_id("Count"), DataType.INT, name="count")
    missing = tag("ns=2;s=Plant.DoesNotExist", name="missing")

    await driver.subscribe([count, missing], received.extend, interval_s=0.1)
    await wait_until(lambda: latest(received, "count") is not None, 10, "the initial value")
    stamp = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    await plant.set("Count", 1234, ua.VariantType.Int32, source_time=stamp)

    await wait_until(
        lambda: getattr(latest(received, "count"), "value", None) == 1234, 10, "the change"
    )
    changed = latest(received, "count")
    assert changed is not None
    assert changed.source_time == stamp
    refused = latest(received, "missing")
    assert refused is not None
    assert refused.quality.label() == "bad:config_error"
    assert "BadNodeIdUnknown" in refused.quality.reason
    diagnostics = driver.subscription_diagnostics()
    assert (diagnostics.subscriptions, diagnostics.monitored_items) == (1, 1)
    await plant.set("Count", 7, ua.VariantType.Int32)


async def test_large_sets_are_sharded_over_subscriptions_and_keep_up(
    plant: PlantServer,
) -> None:
    sharded = driver_for(plant, max_items_per_subscription=200, publishing_interval_s=0.1)
    arrivals: list[tuple[datetime, list[Sample]]] = []

    def on_samples(samples: list[Sample]) -> None:
        arrivals.append((datetime.now(UTC), samples))

    names = plant.shard_names
    points = [tag(plant.node_id(name), name=name) for name in names]
    try:
        await sharded.subscribe(points, on_samples, interval_s=0.1)
        seen: set[str] = set()

        def all_seen() -> bool:
            seen.update(sample.tag for _, batch in arrivals for sample in batch)
            return len(seen) == len(names)

        await wait_until(all_seen, 20, "the initial value of every item")
        diagnostics = sharded.subscription_diagnostics()
        assert (diagnostics.subscriptions, diagnostics.monitored_items) == (3, BULK_VARIABLES)

        # Every item changes together, five times: all changes arrive, and quickly.
        latencies: list[float] = []
        for round_number in range(1, 6):
            arrivals.clear()
            await plant.set_many(names, [float(round_number)] * len(names), ua.VariantType.Double)

            def round_complete(value: float = float(round_number)) -> bool:
                return sum(
                    1 for _, batch in arrivals for sample in batch if sample.value == value
                ) == len(names)

            await wait_until(round_complete, 10, f"round {round_number}")
            latencies.extend(
                (arrived - sample.source_time).total_seconds()
                for arrived, batch in arrivals
                for sample in batch
            )
        latencies.sort()
        p95 = latencies[int(len(latencies) * 0.95)]
        # Server, load generator and driver share one event loop here; the full-size figure
        # comes from tests/drivers/opcua/bench_opcua_subscriptions.py.
        assert p95 < 1.5, f"p95 latency {p95:.3f} s over {len(latencies)} notifications"
    finally:
        await sharded.close()


async def test_subscriptions_come_back_after_a_server_restart(
    own_plant: PlantServer, caplog: pytest.LogCaptureFixture
) -> None:
    restarting = driver_for(own_plant)
    received: list[Sample] = []
    points = [
        tag(own_plant.node_id("Level"), name="level"),
        tag(own_plant.node_id("Count"), DataType.INT, name="count"),
    ]
    caplog.set_level(logging.INFO, logger=DRIVER_LOGGER)
    try:
        await restarting.subscribe(points, received.extend, interval_s=0.1)
        await wait_until(lambda: latest(received, "level") is not None, 10, "the initial value")
        port = own_plant.port

        await own_plant.server.stop()
        await wait_until(
            lambda: all(
                getattr(latest(received, name), "quality", None) is not None
                and latest(received, name).quality.label() == "bad:not_connected"  # type: ignore[union-attr]
                for name in ("level", "count")
            ),
            10,
            "Bad not_connected samples for every subscribed point",
        )
        assert not restarting.connected
        await own_plant.set("Level", 7.5, ua.VariantType.Double)
        own_plant.server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/plant/")
        await own_plant.server.start()
        started = time.monotonic()

        await wait_until(
            lambda: getattr(latest(received, "level"), "value", None) == 7.5,
            10,
            "the subscription delivering again after the restart",
        )
        assert time.monotonic() - started < 10
        count = latest(received, "count")
        assert count is not None
        assert count.quality.is_good
        assert restarting.subscription_diagnostics().reconnects == 1
        assert restarting.connected
    finally:
        await restarting.close()
    records = [record for record in caplog.records if record.name == DRIVER_LOGGER]
    assert [record.levelno for record in records] == [logging.WARNING, logging.INFO], [
        record.getMessage() for record in records
    ]
    assert "reconnecting" in records[0].getMessage()
    assert "communication restored" in records[1].getMessage()
    assert all(record.exc_info is None for record in records)


async def test_a_dead_endpoint_fails_within_the_timeout(closed_port: int, silent_port: int) -> None:
    refused = OpcUaDriver(
        "dead", OpcUaDeviceConfig(f"opc.tcp://127.0.0.1:{closed_port}/", timeout_s=1.0), WallClock()
    )
    silent = OpcUaDriver(
        "mute", OpcUaDeviceConfig(f"opc.tcp://127.0.0.1:{silent_port}/", timeout_s=0.5), WallClock()
    )
    for dead, limit_s in ((refused, 1.0), (silent, 3 * 0.5)):
        started = time.monotonic()
        with pytest.raises(NotConnectedError, match="cannot connect"):
            await dead.connect()
        assert time.monotonic() - started < limit_s + 1.0
        with pytest.raises(NotConnectedError):
            await dead.read([tag("ns=2;s=Plant.Level")])
        assert not dead.diagnostics().connected
        assert dead.diagnostics().errors_by_kind["not_connected"] == 2


async def test_subscribing_to_a_dead_endpoint_delivers_bad_samples(closed_port: int) -> None:
    dead = OpcUaDriver(
        "dead", OpcUaDeviceConfig(f"opc.tcp://127.0.0.1:{closed_port}/", timeout_s=1.0), WallClock()
    )
    received: list[Sample] = []
    try:
        await dead.subscribe(
            [tag("ns=2;s=Plant.Level", name="level")], received.extend, interval_s=1
        )
        assert [sample.quality.label() for sample in received] == ["bad:not_connected"]
        assert "cannot connect" in received[0].quality.reason
    finally:
        await dead.close()
