"""The simulator's sensor networks publish JSON uplinks to the machine's Mosquitto: every
sensor once at start (retained), then at its interval of simulated time and at once when its
model asks; a silent sensor says nothing, a malformed one sends no JSON, an offline network
server disconnects, and stopping clears the retained uplinks."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlparse

import aiomqtt
import pytest
import pytest_asyncio

from plc_sim.clock import SimClock
from plc_sim.device import FaultKind
from plc_sim.servers.mqtt.server import MqttDeviceServer
from plc_sim.waste.containers import WasteNetwork

BROKER = urlparse(os.environ.get("CC_TEST_MQTT_URL", "mqtt://127.0.0.1:1883"))
HOST, PORT = BROKER.hostname or "127.0.0.1", BROKER.port or 1883


class Listener:
    """Every uplink under a prefix, as it arrives."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages: list[tuple[str, bytes, bool]] = []

    async def run(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            self.messages.append((str(message.topic), payload, message.retain))

    def of(self, topic_end: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t.endswith(topic_end) and p]

    async def until(self, what: str, check: object, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)


@pytest_asyncio.fixture(loop_scope="session")
async def listener() -> AsyncIterator[tuple[Listener, str]]:
    prefix = f"test-sim-{uuid.uuid4().hex[:10]}"
    async with aiomqtt.Client(HOST, PORT, identifier=prefix + "-listener") as client:
        await client.subscribe(f"{prefix}/#", qos=0)
        watcher = Listener(client)
        task = asyncio.create_task(watcher.run())
        try:
            yield watcher, prefix
        finally:
            task.cancel()


async def _server(prefix: str, speed: float = 600.0) -> tuple[MqttDeviceServer, WasteNetwork]:
    clock = SimClock(speed=speed, start=datetime(2026, 6, 22, 8, 0, tzinfo=UTC))
    waste = WasteNetwork(seed=2)
    (device,) = waste.devices()
    server = MqttDeviceServer(
        device, waste.sensors(), clock.now, HOST, PORT, topic_prefix=prefix, seed=2
    )
    await server.start()
    return server, waste


@pytest.mark.timeout(60)
async def test_uplinks_carry_the_points_at_start_on_demand_and_on_schedule(
    listener: tuple[Listener, str],
) -> None:
    watcher, prefix = listener
    server, waste = await _server(prefix)
    try:
        count = len(waste.containers)
        await watcher.until("one uplink of every container", lambda: len(watcher.messages) >= count)
        first = json.loads(watcher.of("waste/c001/up")[0])
        container = waste.container("waste.c001")
        assert first["deviceId"] == "c001"
        assert first["object"]["fill"] == pytest.approx(container.fill_pct, abs=1e-3)
        assert datetime.fromisoformat(first["time"].replace("Z", "+00:00")).year == 2026
        assert server.addresses()["waste.c001.fill"] == "json:waste/c001/up#/object/fill"
        waste.fill("waste.c001", 91.0)
        await server.publish()
        await watcher.until("the alarm uplink", lambda: len(watcher.of("waste/c001/up")) >= 2)
        assert json.loads(watcher.of("waste/c001/up")[-1])["object"]["fill"] == 91.0
        # At 600x an hour of simulated time is six seconds: every sensor reports again.
        before = len(watcher.messages)
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline and len(watcher.messages) < before + count:
            await server.publish()
            await asyncio.sleep(0.1)
        assert len(watcher.messages) >= before + count
    finally:
        await server.stop()


@pytest.mark.timeout(60)
async def test_sensor_and_network_faults(listener: tuple[Listener, str]) -> None:
    watcher, prefix = listener
    server, waste = await _server(prefix)
    try:
        await watcher.until("the first uplinks", lambda: len(watcher.of("waste/c002/up")) >= 1)
        waste.stop_reporting("waste.c002")
        waste.fill("waste.c002", 95.0)
        sensor3 = next(s for s in waste.sensors() if s.id == "c003")
        sensor3.malformed = True
        sensor3.report_now = True
        await server.publish()
        await watcher.until("the malformed uplink", lambda: len(watcher.of("waste/c003/up")) >= 2)
        with pytest.raises(json.JSONDecodeError):
            json.loads(watcher.of("waste/c003/up")[-1])
        assert len(watcher.of("waste/c002/up")) == 1  # silent: nothing since the start
        server.device.set_fault(FaultKind.OFFLINE)
        await server.publish()
        assert not server.connected
        server.device.clear_fault()
        await server.publish()
        assert server.connected
    finally:
        await server.stop()
    # Stopping cleared the retained uplinks: a new subscriber finds none.
    async with aiomqtt.Client(HOST, PORT, identifier=prefix + "-late") as late:
        await late.subscribe(f"{prefix}/waste/#")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                async for message in late.messages:
                    if message.payload:
                        break


@pytest.mark.timeout(30)
async def test_an_unreachable_broker_fails_the_start_clearly() -> None:
    waste = WasteNetwork(seed=2)
    (device,) = waste.devices()
    clock = SimClock(speed=1.0)
    server = MqttDeviceServer(device, waste.sensors(), clock.now, "127.0.0.1", 1, topic_prefix="x")
    with pytest.raises(OSError, match="cannot reach the MQTT broker"):
        await server.start()
    await server.stop()
