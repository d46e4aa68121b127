"""The transport's parts against the machine's NATS server: the publisher through a link cut,
commands through an edge's responder, and a command to an edge that is not there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
import pytest_asyncio

from controlcenter.model import DataType, Event, EventKind, Quality, Sample, TagDef, Value
from controlcenter.transport.codec import (
    CommandRequest,
    decode_answer,
    decode_batch,
    decode_events,
    encode_command,
)
from controlcenter.transport.edge_commands import EdgeCommandResponder
from controlcenter.transport.link import NatsLink, StreamSettings, ensure_stream
from controlcenter.transport.publisher import BatchSpool, EdgePublisher
from controlcenter.transport.remote_driver import RemoteDriver
from controlcenter.transport.subjects import Subjects
from drivers.base import (
    DriverDiagnostics,
    NotConnectedError,
    SampleCallback,
    WriteRefusedError,
)
from tests.nats_kit import delete_stream, nats_url, relay, unique_root

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SPEED = TagDef("water.ps1.pump1.speed", "water.ps1", "hr:0", DataType.FLOAT, writable=True)
RUN = TagDef("water.ps1.pump1.run_cmd", "water.ps1", "co:0", DataType.BOOL, writable=True)
LEVEL = TagDef("water.tank1.level", "water.tank1", "hr:0", DataType.FLOAT)
RUNNING = TagDef("water.ps1.pump1.running", "water.ps1", "di:0", DataType.BOOL)


@pytest_asyncio.fixture(loop_scope="session")
async def subjects() -> AsyncIterator[Subjects]:
    """A site on a subject root of its own; its stream is deleted afterwards."""
    site = Subjects.for_site("Test City", unique_root())
    yield site
    await delete_stream(site)


async def _read_stream(subjects: Subjects, expected: int, deadline_s: float) -> list[bytes]:
    """Every sample message of the stream, in stream order (waits for ``expected``)."""
    client = await nats.connect(nats_url())
    try:
        js = client.jetstream()
        deadline = time.monotonic() + deadline_s
        while (await js.stream_info(subjects.stream)).state.messages < expected:
            assert time.monotonic() < deadline, "the stream did not get every message"
            await asyncio.sleep(0.05)
        sub = await js.pull_subscribe(subjects.all_samples, stream=subjects.stream)
        found: list[bytes] = []
        while len(found) < expected:
            found += [m.data for m in await sub.fetch(expected - len(found), timeout=5)]
        return found
    finally:
        await client.close()


@pytest.mark.timeout(60)
async def test_a_link_cut_loses_nothing_repeats_nothing_and_keeps_order(
    subjects: Subjects, tmp_path: Path
) -> None:
    async with relay() as link_relay:
        link = NatsLink(link_relay.url, "edge-test", reconnect_wait_s=0.1, max_backoff_s=0.5)
        spool = BatchSpool(tmp_path / "spool.sqlite")
        publisher = EdgePublisher(
            link,
            subjects,
            "district-1",
            {LEVEL.name: LEVEL.device},
            spool,
            publish_timeout_s=0.5,
            retry_s=0.1,
        )
        await link.start()
        await link.wait_connected(5)
        await ensure_stream(link.jetstream(), subjects, StreamSettings())
        sender = asyncio.create_task(publisher.run())
        try:

            def scan(index: int) -> None:
                when = T0 + timedelta(seconds=index)
                publisher.on_samples([Sample(LEVEL.name, float(index), Quality.good(), when, when)])

            for index in range(50):
                scan(index)
            await publisher.flush(10)
            link_relay.cut()
            # The edge keeps acquiring while the link is down: everything goes to the spool.
            for index in range(50, 150):
                scan(index)
                await asyncio.sleep(0.005)
            deadline = time.monotonic() + 10
            while len(spool) == 0:
                assert time.monotonic() < deadline, "nothing was spooled during the cut"
                await asyncio.sleep(0.05)
            assert not link.connected
            link_relay.restore()
            for index in range(150, 200):
                scan(index)
            await publisher.flush(20)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            await link.close()
            spool.close()
        metrics = publisher.metrics()
        assert metrics.spooled > 0
        assert metrics.dropped == 0
    messages = await _read_stream(subjects, 200, 10)
    values = [decode_batch(data).samples[0].value for data in messages]
    assert values == [float(i) for i in range(200)]


class FakeDriver:
    """A device that takes every write and reads back what it was given (or ``readback``)."""

    def __init__(self, device: str, readback: Value | None = None) -> None:
        self.written: list[tuple[str, Value]] = []
        self._device = device
        self._readback = readback

    @property
    def device(self) -> str:
        return self._device

    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        return []

    async def subscribe(
        self, points: Sequence[TagDef], callback: SampleCallback, *, interval_s: float
    ) -> None:
        pass

    async def write(self, point: TagDef, value: Value, *, priority: int | None = None) -> Value:
        self.written.append((point.name, value))
        return value if self._readback is None else self._readback

    def diagnostics(self) -> DriverDiagnostics:
        return DriverDiagnostics(self._device, True, 0, 0)


class SpeedInterlock:
    """Blocks starting the pump while ``blocked`` (as the edge's InterlockSet would)."""

    def __init__(self) -> None:
        self.blocked = False

    def blocking(self, tag: str, value: Value) -> str | None:
        if self.blocked and tag == RUN.name and value is True:
            return "pump1_dry_run: tank1 level below 0.5 m"
        return None


@pytest.mark.timeout(60)
async def test_commands_go_through_the_edge_with_readback_and_its_interlocks(
    subjects: Subjects,
) -> None:
    edge_link = NatsLink(nats_url(), "edge-test")
    center_link = NatsLink(nats_url(), "center-test")
    driver = FakeDriver("water.ps1")
    interlock = SpeedInterlock()
    reported: list[str] = []
    responder = EdgeCommandResponder(
        "district-1",
        edge_link,
        subjects,
        [SPEED, RUN, RUNNING, LEVEL],
        {"water.ps1": driver},
        interlock,
        now=lambda: T0,
        report=lambda events: reported.extend(e.message for e in events),
    )
    for link in (edge_link, center_link):
        await link.start()
        await link.wait_connected(5)
    await responder.start()
    remote = RemoteDriver("water.ps1", "district-1", center_link, subjects)
    try:
        deadline = time.monotonic() + 5
        while responder.answered == 0 and not reported:
            # The responder subscribes once connected: poll until a command is answered.
            try:
                assert await remote.write(SPEED, 41.5) == 41.5
                break
            except NotConnectedError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        assert await remote.write(RUN, True) is True
        assert driver.written == [(SPEED.name, 41.5), (RUN.name, True)]
        interlock.blocked = True
        with pytest.raises(WriteRefusedError, match="interlock at edge district-1: pump1_dry"):
            await remote.write(RUN, True)
        assert len(driver.written) == 2, "a refused command reached the device"
        # A tag of another edge, a wrong type, a read-only tag: refused at the edge.
        other = TagDef("lights.d1.c1.mode", "lights.d1", "co:0", DataType.BOOL, writable=True)
        with pytest.raises(WriteRefusedError, match="not a tag of edge"):
            await remote.write(other, True)
        with pytest.raises(WriteRefusedError, match="not a float value"):
            await remote.write(SPEED, "fast")
        with pytest.raises(WriteRefusedError, match="not writable"):
            await remote.write(RUNNING, True)
        assert len(driver.written) == 2
        assert any("confirmed, read back 41.5" in text for text in reported)
        # Forged requests: garbage, and a result sent anywhere but an inbox.
        client = center_link.client
        assert client is not None
        answer = await client.request(subjects.commands("district-1"), b"\x00garbage", timeout=2)
        assert decode_answer(answer.data, "?") is not None
        forged = CommandRequest("c9", SPEED.name, 1.0, 8, "mallory", "cc.other.subject")
        answer = await client.request(
            subjects.commands("district-1"), encode_command(forged), timeout=2
        )
        reply = decode_answer(answer.data, "c9")
        assert reply is not None and "inbox" in reply.reason
        assert len(driver.written) == 2
    finally:
        await responder.close()
        await edge_link.close()
        await center_link.close()


@pytest.mark.timeout(30)
async def test_a_command_to_an_edge_that_is_not_there_fails_fast(subjects: Subjects) -> None:
    link = NatsLink(nats_url(), "center-test")
    await link.start()
    await link.wait_connected(5)
    remote = RemoteDriver("water.ps1", "district-9", link, subjects)
    try:
        started = time.monotonic()
        with pytest.raises(NotConnectedError, match="edge district-9 unreachable"):
            await remote.write(SPEED, 10.0)
        assert time.monotonic() - started < 2.0
        assert remote.diagnostics().errors == 1
    finally:
        await link.close()
    # Without any link at all, the same refusal, at once.
    offline = RemoteDriver("water.ps1", "district-9", NatsLink(nats_url(), "x"), subjects)
    with pytest.raises(NotConnectedError, match="unreachable"):
        await offline.write(SPEED, 10.0)


async def test_events_reach_the_stream(subjects: Subjects, tmp_path: Path) -> None:
    link = NatsLink(nats_url(), "edge-test")
    await link.start()
    await link.wait_connected(5)
    await ensure_stream(link.jetstream(), subjects, StreamSettings())
    spool = BatchSpool(tmp_path / "spool.sqlite")
    publisher = EdgePublisher(link, subjects, "district-1", {}, spool)
    sender = asyncio.create_task(publisher.run())
    try:
        publisher.publish_events([Event(T0, EventKind.SYSTEM, "edge", "edge started")])
        await publisher.flush(10)
        client = link.client
        assert client is not None
        sub = await client.jetstream().pull_subscribe(subjects.all_events, stream=subjects.stream)
        (message,) = await sub.fetch(1, timeout=5)
        edge, events = decode_events(message.data)
        assert edge == "district-1" and events[0].message == "edge started"
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        await link.close()
        spool.close()
