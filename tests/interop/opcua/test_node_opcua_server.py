"""The center's OPC UA driver against node-opcua, an independent server (OPC UA Part 4, 6).

node-opcua encodes every DataValue with SourcePicoseconds right after SourceTimestamp and the
ServerTimestamp after them (Part 6, 5.2.2.17): reads and subscriptions must decode both
timestamps, for values of every scalar type a tag takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import ModuleType
from unittest import mock

import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.ua.ua_binary import variant_from_binary

from controlcenter.clock import WallClock
from controlcenter.model import DataType, Sample, TagDef, Value
from drivers.opcua import OpcUaDeviceConfig, OpcUaDriver, publish_codec, read_codec
from tests.interop.opcua.node_process import NodeScript, start_script

pytestmark = pytest.mark.timeout(90)

SOURCE_TIME = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
"""The source timestamp server.js gives every value until it is changed."""

EXPECTED: dict[str, tuple[DataType, Value]] = {
    "Boolean": (DataType.BOOL, True),
    "SByte": (DataType.INT, -12),
    "Byte": (DataType.INT, 200),
    "Int16": (DataType.INT, -30000),
    "UInt16": (DataType.INT, 60000),
    "Int32": (DataType.INT, -2_000_000_000),
    "UInt32": (DataType.INT, 4_000_000_000),
    "Int64": (DataType.INT, -8_589_934_592),
    "UInt64": (DataType.INT, 8_589_934_599),
    "Float": (DataType.FLOAT, 21.5),
    "Double": (DataType.FLOAT, 1234.5678),
    "String": (DataType.STRING, "pump läuft"),
    "DateTime": (DataType.DATETIME, datetime(2025, 12, 24, 18, 30, 15, 125_000, tzinfo=UTC)),
    "LocalizedText": (DataType.STRING, "open"),
}
POINTS = [
    TagDef(f"plant.{name}", "plant", f"ns=1;s={name}", data_type)
    for name, (data_type, _) in EXPECTED.items()
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def node_server() -> AsyncIterator[NodeScript]:
    """One node-opcua server for the module (its start-up takes seconds)."""
    script = await start_script("server.js")
    yield script
    await script.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def driver(node_server: NodeScript) -> AsyncIterator[OpcUaDriver]:
    """The center's driver connected to the node-opcua server."""
    opened = OpcUaDriver("plant", OpcUaDeviceConfig(node_server.ready, timeout_s=5.0), WallClock())
    await opened.connect()
    yield opened
    await opened.close()


SOURCE_PICOSECONDS = 700
"""server.js's 7000 ps (7 ns), on the wire in units of 10 ps (Part 6, 5.2.2.17)."""


@contextmanager
def decoded_values(module: ModuleType) -> Iterator[list[ua.DataValue]]:
    """Every DataValue ``module`` decodes while the block runs (the driver's samples keep the
    source time only: the server's timestamp and the picoseconds are checked here)."""
    seen: list[ua.DataValue] = []
    decode = read_codec.decode_data_values

    def recording(body: bytes, pos: int, count: int) -> tuple[list[ua.DataValue], int]:
        values, end = decode(body, pos, count)
        seen.extend(values)
        return values, end

    with mock.patch.object(module, "decode_data_values", recording):
        yield seen


def assert_both_timestamps(value: ua.DataValue, started: datetime) -> None:
    """node-opcua's SourceTimestamp and picoseconds, and a ServerTimestamp of the read."""
    assert value.SourceTimestamp == SOURCE_TIME
    assert value.SourcePicoseconds == SOURCE_PICOSECONDS
    assert value.ServerTimestamp is not None
    assert started - timedelta(seconds=5) <= value.ServerTimestamp <= datetime.now(UTC)


def assert_fresh_server_time(sample: Sample, started: datetime) -> None:
    assert started - timedelta(seconds=5) <= sample.server_time <= datetime.now(UTC)


async def test_a_read_decodes_every_type_with_both_timestamps(driver: OpcUaDriver) -> None:
    started = datetime.now(UTC)
    with (
        mock.patch.object(
            read_codec, "variant_from_binary", wraps=variant_from_binary
        ) as generic_decoder,
        decoded_values(read_codec) as decoded,
    ):
        samples = await driver.read(POINTS)
    assert len(decoded) == len(POINTS)
    for data_value in decoded:
        assert_both_timestamps(data_value, started)
    for sample, (name, (_, expected)) in zip(samples, EXPECTED.items(), strict=True):
        assert (name, sample.quality.label(), sample.value) == (name, "good", expected)
        assert sample.source_time == SOURCE_TIME, name
        assert_fresh_server_time(sample, started)
    # Only the LocalizedText is no scalar the fast decoder knows.
    assert generic_decoder.call_count == 1


async def test_subscribed_values_carry_both_timestamps(
    driver: OpcUaDriver, node_server: NodeScript
) -> None:
    started = datetime.now(UTC)
    latest: dict[str, Sample] = {}
    changed = asyncio.Event()

    def collect(samples: list[Sample]) -> None:
        for sample in samples:
            latest[sample.tag] = sample
        if len(latest) == len(POINTS):
            changed.set()

    with decoded_values(publish_codec) as notified:
        await driver.subscribe(POINTS, collect, interval_s=0.2)
        async with asyncio.timeout(20):
            await changed.wait()
    assert len(notified) >= len(POINTS)
    for data_value in notified:
        assert_both_timestamps(data_value, started)
    for point in POINTS:
        sample = latest[point.name]
        _, expected = EXPECTED[point.name.removeprefix("plant.")]
        assert (point.name, sample.quality.label(), sample.value) == (point.name, "good", expected)
        assert sample.source_time == SOURCE_TIME, point.name
        assert_fresh_server_time(sample, started)

    assert await node_server.send("set Double 99.25") == "ok Double"
    async with asyncio.timeout(20):
        while latest["plant.Double"].value != 99.25:
            changed.clear()
            await changed.wait()
    sample = latest["plant.Double"]
    assert started - timedelta(seconds=5) <= sample.source_time <= datetime.now(UTC)
    assert_fresh_server_time(sample, started)
