"""The machine's NATS server for the transport's tests, a TCP relay that can cut a link, and
the checks the end-to-end transport tests share.

``CC_TEST_NATS_URL`` names the server (the Makefile and CI set it); a test fails, never skips,
when it is unreachable. Each test gets its own subject root, so its stream and subjects never
meet another run's, and the stream is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import nats
import nats.js.errors

from controlcenter.model import Sample
from controlcenter.runtime.app import ControlCenter
from controlcenter.transport.subjects import Subjects
from historian.store import SqlHistorian

_T = TypeVar("_T")


def nats_url() -> str:
    """The test server's URL (``CC_TEST_NATS_URL``)."""
    url = os.environ.get("CC_TEST_NATS_URL")
    if not url:
        raise RuntimeError("CC_TEST_NATS_URL is not set (make test sets it)")
    return url


def unique_root() -> str:
    """A subject root no other run uses."""
    return f"t{uuid.uuid4().hex[:12]}"


async def until(what: str, probe: Callable[[], _T | None], timeout_s: float = 30.0) -> _T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def stored_once(store: SqlHistorian, tags: Iterable[str], samples: Sequence[Sample]) -> list[str]:
    """What is wrong with the historian's copy of ``samples`` of raw ``tags``: rows missing
    or stored twice (empty when every sample is there exactly once)."""
    problems = []
    for tag in tags:
        sent = {s.server_time for s in samples if s.tag == tag}
        stored = [s.server_time for s in store.read_raw(tag)]
        if len(stored) != len(set(stored)):
            problems.append(f"{tag}: {len(stored) - len(set(stored))} row(s) stored twice")
        missing = sent - set(stored)
        if missing:
            problems.append(f"{tag}: {len(missing)} of {len(sent)} missing")
    return problems


class RunningCenter:
    """A center run as a task until ``stop``: ready once its NATS ingest takes the stream."""

    def __init__(self, center: ControlCenter) -> None:
        self.center = center
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> ControlCenter:
        """Run the center; return it once it and its ingest are ready."""
        self._task = asyncio.create_task(self.center.run(self._stop))
        await asyncio.wait_for(self.center.ready.wait(), 60)
        transport = self.center.transport
        assert transport is not None and transport.ingest is not None
        await asyncio.wait_for(transport.ingest.ready.wait(), 30)
        return self.center

    async def stop(self) -> None:
        """Stop the center cleanly."""
        assert self._task is not None
        self._stop.set()
        await asyncio.wait_for(self._task, 60)


async def delete_stream(subjects: Subjects) -> None:
    """Delete a test's stream (and its consumers) from the shared server."""
    client = await nats.connect(nats_url())
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jetstream().delete_stream(subjects.stream)
    finally:
        await client.close()


class Relay:
    """A TCP relay on a free loopback port in front of the NATS server, with two kinds of
    link failure for the client: ``cut`` drops every connection and refuses new ones (a peer
    that resets); ``stall`` forwards nothing either way while keeping every connection open,
    new ones included (a dead route: the client hears nothing and must time out). Both last
    until ``restore``; a stalled connection then carries on with what was held back."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 4222
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.port = 0
        self.up = True

    @property
    def url(self) -> str:
        """The relay's URL, for the client under test."""
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._flowing.is_set():
            # A dead route: the connection attempt hears nothing until the client gives up.
            # Closed on restore: the client has long moved on by then.
            await self._flowing.wait()
            writer.close()
            return
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, up_writer})
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                # Stalled: hold the bytes (and, by not reading on, everything behind them)
                # as a route that drops packets holds them in the senders' retransmissions.
                await self._flowing.wait()
                if sink.is_closing():
                    break
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(sink)
            sink.close()

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self.up = False
        self._flowing.set()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def stall(self) -> None:
        """Forward nothing and answer no new connection, keeping every connection open."""
        self._flowing.clear()

    def restore(self) -> None:
        """Accept connections again and forward what stalled connections held."""
        self.up = True
        self._flowing.set()

    async def close(self) -> None:
        """Stop listening and drop everything."""
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@asynccontextmanager
async def relay() -> AsyncIterator[Relay]:
    """A started relay to the test server, closed on exit."""
    started = Relay(nats_url())
    await started.start()
    try:
        yield started
    finally:
        await started.close()
