"""The machine's NATS server for the transport's tests, and a TCP relay that can cut a link.

``CC_TEST_NATS_URL`` names the server (the Makefile and CI set it); a test fails, never skips,
when it is unreachable. Each test gets its own subject root, so its stream and subjects never
meet another run's, and the stream is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import nats
import nats.js.errors

from controlcenter.transport.subjects import Subjects


def nats_url() -> str:
    """The test server's URL (``CC_TEST_NATS_URL``)."""
    url = os.environ.get("CC_TEST_NATS_URL")
    if not url:
        raise RuntimeError("CC_TEST_NATS_URL is not set (make test sets it)")
    return url


def unique_root() -> str:
    """A subject root no other run uses."""
    return f"t{uuid.uuid4().hex[:12]}"


async def delete_stream(subjects: Subjects) -> None:
    """Delete a test's stream (and its consumers) from the shared server."""
    client = await nats.connect(nats_url())
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jetstream().delete_stream(subjects.stream)
    finally:
        await client.close()


class Relay:
    """A TCP relay on a free loopback port in front of the NATS server; ``cut`` drops every
    connection and refuses new ones until ``restore``: a real link failure for the client."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 4222
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
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
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sink.close()

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self.up = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        """Accept connections again."""
        self.up = True

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
