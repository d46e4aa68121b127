"""The MQTT driver against the machine's Mosquitto: JSON uplinks, quality by age on a
controlled clock, hostile payloads, downlinks with read-back, lost connections and Sparkplug B
nodes (births, deaths, sequence gaps, rebirth requests, DCMD writes)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from controlcenter.clock import WallClock
from controlcenter.model import DataType, Sample, Severity, Substatus, TagDef
from drivers.base import AddressError, DeviceRejectedError, NotConnectedError, WriteUnconfirmedError
from drivers.mqtt.config import MqttDeviceConfig
from drivers.mqtt.driver import MqttDriver
from tests.controlled_clock import ControlledClock
from tests.drivers.mqtt.mqtt_support import (
    Publisher,
    Relay,
    broker,
    latest,
    read_spb_metrics,
    spb_metric,
    spb_payload,
    unique_prefix,
    wait_for,
)

START = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def _config(prefix: str, **settings: object) -> MqttDeviceConfig:
    host, port = broker()
    host = str(settings.pop("host", host))
    port = int(settings.pop("port", port))  # type: ignore[call-overload]
    values: dict[str, object] = {
        "client_id": f"cctest-{uuid.uuid4().hex[:10]}",
        "topic_prefix": prefix,
        "report_interval_s": 60.0,
        "timeout_s": 2.0,
        "write_timeout_s": 1.0,
        "reconnect_max_delay_s": 0.5,
    }
    values.update(settings)
    return MqttDeviceConfig(host, port, **values)  # type: ignore[arg-type]


def _tag(name: str, address: str, kind: DataType = DataType.FLOAT, **extra: object) -> TagDef:
    return TagDef(name, "waste.broker", address, kind, **extra)  # type: ignore[arg-type]


FILL = _tag("waste.c1.fill", "json:waste/c1/up#/object/fill")
TEMP = _tag("waste.c1.temp", "json:waste/c1/up#/object/temp_raw", scale=0.1, offset=-40.0)
DIM = _tag(
    "lights.c1.dim", "json:lights/c1/up#/dim;set=lights/c1/down", DataType.INT, writable=True
)


@pytest_asyncio.fixture(loop_scope="session")
async def prefix() -> str:
    """A topic prefix of this test only."""
    return unique_prefix("driver")


@pytest_asyncio.fixture(loop_scope="session")
async def publisher(prefix: str) -> AsyncIterator[Publisher]:
    """A client that plays the sensors."""
    async with Publisher(prefix) as client:
        yield client


async def _driver(config: MqttDeviceConfig, clock: object) -> MqttDriver:
    driver = MqttDriver("waste.broker", config, clock)  # type: ignore[arg-type]
    await driver.connect()
    return driver


async def test_json_uplinks_are_pushed_typed_scaled_and_stamped(
    prefix: str, publisher: Publisher
) -> None:
    clock = ControlledClock(START)
    driver = await _driver(_config(prefix, timestamp_pointer="/time"), clock)
    received: list[Sample] = []
    try:
        await driver.subscribe([FILL, TEMP], received.extend, interval_s=60)
        stamp = START - timedelta(seconds=5)
        await publisher.send(
            "waste/c1/up", {"time": stamp.isoformat(), "object": {"fill": 41.5, "temp_raw": 612}}
        )
        await wait_for(lambda: latest(received, TEMP.name) is not None, "a pushed sample")
        fill, temp = latest(received, FILL.name), latest(received, TEMP.name)
        assert fill is not None and temp is not None
        assert fill.value == 41.5 and fill.quality.is_good
        assert temp.value == pytest.approx(21.2)
        assert fill.source_time == stamp and fill.server_time == START
        samples = await driver.read([FILL, TEMP])
        assert [sample.value for sample in samples] == [41.5, pytest.approx(21.2)]
        assert driver.diagnostics().requests >= 2
    finally:
        await driver.close()


async def test_uncertain_after_one_missed_report_and_bad_after_three(
    prefix: str, publisher: Publisher
) -> None:
    clock = ControlledClock(START)
    driver = await _driver(_config(prefix, report_interval_s=60.0), clock)
    received: list[Sample] = []
    try:
        await driver.subscribe([FILL], received.extend, interval_s=60)
        await publisher.send("waste/c1/up", {"object": {"fill": 10.0}})
        await wait_for(lambda: latest(received, FILL.name) is not None, "the first report")
        clock.advance(50)  # within the interval: still Good
        await asyncio.sleep(0.05)
        last = latest(received, FILL.name)
        assert last is not None and last.quality.is_good
        for _ in range(3):
            clock.advance(6)  # to 68 s: one report missed (the grace is 6 s)
            await asyncio.sleep(0.02)
        await wait_for(
            lambda: (
                (s := latest(received, FILL.name)) is not None
                and s.quality.severity is Severity.UNCERTAIN
            ),
            "Uncertain after one missed report",
        )
        uncertain = latest(received, FILL.name)
        assert uncertain is not None and uncertain.value == 10.0
        assert uncertain.quality.substatus is Substatus.LAST_USABLE
        (read_back,) = await driver.read([FILL])
        assert read_back.quality.severity is Severity.UNCERTAIN
        for _ in range(20):
            clock.advance(6)  # to 188 s: three reports missed
            await asyncio.sleep(0.01)
        await wait_for(
            lambda: (
                (s := latest(received, FILL.name)) is not None
                and s.quality.severity is Severity.BAD
            ),
            "Bad after three missed reports",
        )
        bad = latest(received, FILL.name)
        assert bad is not None and bad.quality.substatus is Substatus.COMM_FAILURE
        assert "3 reports missed" in bad.quality.reason
        await publisher.send("waste/c1/up", {"object": {"fill": 11.0}})
        await wait_for(
            lambda: (s := latest(received, FILL.name)) is not None and s.quality.is_good,
            "Good again with the next report",
        )
    finally:
        await driver.close()


async def test_retained_messages_are_judged_by_their_age(prefix: str, publisher: Publisher) -> None:
    clock = ControlledClock(START)
    old = START - timedelta(hours=2)
    await publisher.send(
        "waste/c1/up", {"time": old.timestamp(), "object": {"fill": 70.0}}, retain=True
    )
    await publisher.send("waste/c2/up", {"object": {"fill": 20.0}}, retain=True)
    other = _tag("waste.c2.fill", "json:waste/c2/up#/object/fill")
    stamped = await _driver(_config(prefix, timestamp_pointer="/time"), clock)
    try:
        stale, unknown = await stamped.read([FILL, other])
        assert stale.quality.severity is Severity.BAD and "reports missed" in stale.quality.reason
        assert stale.value is None
        # No payload time: a retained message's age is unknown, so it is not Good.
        assert unknown.quality.severity is Severity.UNCERTAIN and unknown.value == 20.0
        assert "retained" in unknown.quality.reason
    finally:
        await stamped.close()
        await publisher.clear_retained("waste/c1/up")
        await publisher.clear_retained("waste/c2/up")


async def test_hostile_payloads_make_points_bad_and_the_driver_carries_on(
    prefix: str, publisher: Publisher
) -> None:
    clock = ControlledClock(START)
    driver = await _driver(
        _config(prefix, max_payload_bytes=1024, timestamp_pointer="/time"), clock
    )
    received: list[Sample] = []
    try:
        await driver.subscribe([FILL, TEMP], received.extend, interval_s=60)

        async def expect_bad(payload: bytes, reason: str, tag: TagDef = FILL) -> None:
            count = len(received)
            await publisher.send("waste/c1/up", payload)
            await wait_for(lambda: len(received) > count, f"a sample after {payload[:20]!r}")
            sample = latest(received, tag.name)
            assert sample is not None and sample.quality.severity is Severity.BAD, sample
            assert reason in sample.quality.reason

        await expect_bad(b'{"object": {"fill": ', "malformed JSON")
        await expect_bad(b"\xff\xfe\x00", "not UTF-8")
        await expect_bad(b'{"object": {"fill": "41"}}', "expected a number")
        await expect_bad(b'{"object": {}}', "no member at /object/fill")
        await expect_bad(b'{"pad": "' + b"x" * 5000 + b'"}', "over the 1024-byte limit")
        # A lying clock: a payload time far ahead is not believed (Uncertain, arrival time).
        ahead = (START + timedelta(days=3)).isoformat()
        await publisher.send(
            "waste/c1/up", {"time": ahead, "object": {"fill": 5.0, "temp_raw": 500}}
        )
        await wait_for(
            lambda: (s := latest(received, FILL.name)) is not None and s.value == 5.0, "value"
        )
        lying = latest(received, FILL.name)
        assert lying is not None and lying.quality.severity is Severity.UNCERTAIN
        assert lying.source_time == START and "ahead" in lying.quality.reason
        await publisher.send("waste/c1/up", {"object": {"fill": 6.0, "temp_raw": 500}})
        await wait_for(
            lambda: (s := latest(received, FILL.name)) is not None and s.quality.is_good,
            "Good after the faults",
        )
        assert driver.mqtt_diagnostics().dropped >= 3
        assert driver.diagnostics().errors_by_kind.get("payload", 0) >= 3
    finally:
        await driver.close()


async def _device_loop(publisher: Publisher, *, accept: bool) -> None:
    """A lighting controller: reports its dim level, applies downlinks when ``accept``."""
    await publisher.listen("lights/c1/down")
    dim = 30
    handled = 0
    await publisher.send("lights/c1/up", {"dim": dim})
    while True:
        await asyncio.sleep(0.01)
        for _topic, payload in publisher.received[handled:]:
            handled += 1
            command = json.loads(payload)
            if accept and 0 <= command["dim"] <= 100:
                dim = command["dim"]
            await publisher.send("lights/c1/up", {"dim": dim})


async def test_downlinks_are_confirmed_by_the_next_uplink_or_refused(
    prefix: str, publisher: Publisher
) -> None:
    driver = await _driver(_config(prefix), WallClock())
    device = asyncio.create_task(_device_loop(publisher, accept=True))
    received: list[Sample] = []
    try:
        await driver.subscribe([DIM], received.extend, interval_s=1)
        # The device listens for downlinks before its first report: once that is seen, a
        # downlink cannot pass it by.
        await wait_for(lambda: latest(received, DIM.name) is not None, "the first report")
        assert await driver.write(DIM, 75) == 75
        with pytest.raises(DeviceRejectedError, match="still reports 75"):
            await driver.write(DIM, 140)
        with pytest.raises(AddressError, match="no downlink"):
            await driver.write(FILL, 1.0)
    finally:
        device.cancel()
        await driver.close()


async def test_a_downlink_nobody_answers_is_unconfirmed(prefix: str) -> None:
    driver = await _driver(_config(prefix, write_timeout_s=0.3), WallClock())
    try:
        with pytest.raises(WriteUnconfirmedError, match="no uplink confirmed"):
            await driver.write(DIM, 10)
    finally:
        await driver.close()


async def test_a_cut_connection_makes_points_bad_at_once_and_recovers(
    prefix: str, publisher: Publisher
) -> None:
    relay = Relay()
    await relay.start()
    host, _ = broker()
    driver = await _driver(_config(prefix, port=relay.port, host="127.0.0.1"), WallClock())
    received: list[Sample] = []
    try:
        await driver.subscribe([FILL], received.extend, interval_s=1)
        await publisher.send("waste/c1/up", {"object": {"fill": 1.0}})
        await wait_for(
            lambda: (s := latest(received, FILL.name)) is not None and s.value == 1.0, "v"
        )
        relay.cut()
        await wait_for(
            lambda: (
                (s := latest(received, FILL.name)) is not None
                and s.quality.substatus is Substatus.NOT_CONNECTED
            ),
            "Bad not_connected after the cut",
        )
        await wait_for(lambda: driver.connected, "reconnected")
        await publisher.send("waste/c1/up", {"object": {"fill": 2.0}})
        await wait_for(
            lambda: (s := latest(received, FILL.name)) is not None and s.value == 2.0,
            "the subscription restored",
        )
        assert driver.mqtt_diagnostics().reconnects == 1
    finally:
        await driver.close()
        await relay.stop()
    assert host


async def test_a_broker_side_kick_by_a_duplicate_client_id(
    prefix: str, publisher: Publisher
) -> None:
    config = _config(prefix)
    driver = await _driver(config, WallClock())
    received: list[Sample] = []
    try:
        await driver.subscribe([FILL], received.extend, interval_s=1)
        host, port = broker()
        # Another connection takes the client id (a raw MQTT 3.1.1 CONNECT): the broker drops ours.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(_connect_packet(config.client_id))
        await writer.drain()
        assert (await reader.readexactly(4))[0] == 0x20  # CONNACK
        await wait_for(
            lambda: (
                (s := latest(received, FILL.name)) is not None
                and s.quality.substatus is Substatus.NOT_CONNECTED
            ),
            "Bad when the broker hands the client id to another connection",
        )
        writer.close()
        await wait_for(lambda: driver.connected, "reconnected", within=10)
        await publisher.send("waste/c1/up", {"object": {"fill": 3.0}})
        await wait_for(
            lambda: (s := latest(received, FILL.name)) is not None and s.value == 3.0, "v"
        )
    finally:
        await driver.close()


def _connect_packet(client_id: str) -> bytes:
    identifier = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(identifier).to_bytes(2, "big") + identifier
    return bytes([0x10, len(body)]) + body


async def test_a_dead_broker_fails_fast_and_typed(closed_port: int) -> None:
    driver = MqttDriver("dead", _config("x", host="127.0.0.1", port=closed_port), WallClock())
    with pytest.raises(NotConnectedError, match="cannot connect"):
        await driver.connect()
    with pytest.raises(NotConnectedError):
        await driver.read([FILL])
    await driver.close()
    assert not driver.diagnostics().connected


# -- Sparkplug B ------------------------------------------------------------------------------

LEVEL = _tag("water.gw1.level", "spb:water/gw1#Level")
SPEED = _tag("water.gw1.pump3.speed", "spb:water/gw1/pump3#Speed", writable=True)


class EdgeNode:
    """A Sparkplug B edge node with one device, from the independent encoder."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.seq = 0
        self.bd_seq = 0
        self.speed = 0.0

    def _next(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq

    async def birth(self) -> None:
        self.seq = 0
        node = spb_payload(
            [
                spb_metric("bdSeq", datatype=8, value=self.bd_seq),
                spb_metric("Level", alias=1, datatype=10, value=2.5),
            ],
            seq=0,
        )
        await self.publisher.send("spBv1.0/water/NBIRTH/gw1", node)
        device = spb_payload(
            [spb_metric("Speed", alias=2, datatype=9, value=self.speed)], seq=self._next()
        )
        await self.publisher.send("spBv1.0/water/DBIRTH/gw1/pump3", device)

    async def level(self, value: float, *, skip: int = 0) -> None:
        self.seq = (self.seq + skip) % 256
        data = spb_payload([spb_metric(alias=1, datatype=10, value=value)], seq=self._next())
        await self.publisher.send("spBv1.0/water/NDATA/gw1", data)

    async def report_speed(self) -> None:
        data = spb_payload([spb_metric(alias=2, datatype=9, value=self.speed)], seq=self._next())
        await self.publisher.send("spBv1.0/water/DDATA/gw1/pump3", data)

    async def death(self) -> None:
        data = spb_payload([spb_metric("bdSeq", datatype=8, value=self.bd_seq)], seq=None)
        await self.publisher.send("spBv1.0/water/NDEATH/gw1", data)


def _rebirths(publisher: Publisher) -> int:
    return sum(
        1
        for topic, data in publisher.received
        if topic.endswith("/NCMD/gw1")
        and any(m.get(1) == b"Node Control/Rebirth" for m in read_spb_metrics(data))
    )


async def test_sparkplug_births_data_deaths_and_rebirths(prefix: str, publisher: Publisher) -> None:
    await publisher.listen("spBv1.0/water/NCMD/gw1")
    node = EdgeNode(publisher)
    driver = await _driver(_config(prefix), WallClock())
    received: list[Sample] = []
    try:
        await driver.subscribe([LEVEL, SPEED], received.extend, interval_s=1)
        # A host that just subscribed asks every node for its births.
        await wait_for(lambda: _rebirths(publisher) >= 1, "a rebirth request on subscribe")
        await node.birth()
        await wait_for(
            lambda: (s := latest(received, LEVEL.name)) is not None and s.value == 2.5, "birth"
        )
        await node.level(3.5)
        await wait_for(
            lambda: (s := latest(received, LEVEL.name)) is not None and s.value == 3.5, "NDATA"
        )
        asked = _rebirths(publisher)
        await node.level(4.0, skip=3)  # three messages lost
        await wait_for(lambda: _rebirths(publisher) > asked, "a rebirth after a seq gap")
        await node.death()
        await wait_for(
            lambda: all(
                (s := latest(received, tag.name)) is not None
                and s.quality.substatus is Substatus.NOT_CONNECTED
                for tag in (LEVEL, SPEED)
            ),
            "node and device points Bad at NDEATH",
        )
        with pytest.raises(NotConnectedError, match="not online"):
            await driver.write(SPEED, 0.5)
    finally:
        await driver.close()


async def test_sparkplug_dcmd_write_confirmed_by_ddata(prefix: str, publisher: Publisher) -> None:
    await publisher.listen("spBv1.0/water/DCMD/gw1/pump3")
    node = EdgeNode(publisher)
    driver = await _driver(_config(prefix), WallClock())

    async def serve() -> None:
        handled = 0
        while True:
            await asyncio.sleep(0.01)
            for topic, data in publisher.received[handled:]:
                handled += 1
                if topic.endswith("/DCMD/gw1/pump3"):
                    (metric,) = read_spb_metrics(data)
                    assert metric[1] == b"Speed" and metric[4] == 9
                    node.speed = metric[12]
                    await node.report_speed()

    device = asyncio.create_task(serve())
    received: list[Sample] = []
    try:
        await driver.subscribe([SPEED], received.extend, interval_s=1)
        await node.birth()
        await wait_for(lambda: latest(received, SPEED.name) is not None, "the device's birth")
        assert await driver.write(SPEED, 0.75) == pytest.approx(0.75)
    finally:
        device.cancel()
        await driver.close()
