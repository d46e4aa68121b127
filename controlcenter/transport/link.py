"""``NatsLink``: one process's connection to NATS, kept up for as long as the process runs.

nats-py reconnects by itself once a first connection succeeded, restoring subscriptions; with
unlimited attempts (below) its first connection keeps trying by itself as well. The link makes
that first connection in the background (and starts it again, with backoff, should it raise,
e.g. on a malformed URL), so an edge started while its uplink is down still polls, spools and
connects when the link comes. Disconnections and reconnections are logged once each.

The URL may name several servers, comma-separated (the nodes of a cluster): the client picks
one and fails over to the others. Reconnect attempts never run out, however long an outage
lasts. A link that carries nothing at all (a dead route: no reset, no answer) is found out by
the client's pings, ``ping_interval_s`` apart: after ``max_outstanding_pings`` unanswered, the
connection is dropped and the reconnect attempts begin, so a dead link is known within
``ping_interval_s * (max_outstanding_pings + 1)`` (30 s by default) rather than the minutes
of nats-py's defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats
import nats.errors
import nats.js.api
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from controlcenter.transport.subjects import Subjects

log = logging.getLogger(__name__)

ConnectedHook = Callable[[Client], Awaitable[None]]


class TransportError(Exception):
    """NATS could not do what the transport asked (no connection, a JetStream refusal)."""


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How the site's JetStream stream keeps samples and events."""

    replicas: int = 1
    """Copies kept by a NATS cluster (3 on a three-node cluster)."""
    max_age_s: float = 7 * 86_400.0
    """How long the stream keeps messages the center has long taken (a week of backlog
    covers a center outage over a long weekend)."""
    max_bytes: int = -1
    """Size limit of the stream (-1: none but the server's)."""
    duplicate_window_s: float = 120.0
    """JetStream drops a message whose ``Nats-Msg-Id`` it saw within this window."""


async def cancel_and_wait(task: asyncio.Task[None], *, again_after_s: float = 0.5) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling it again while it runs on.

    On Python 3.11 a cancellation can be lost inside nats-py: ``asyncio.wait_for`` returns a
    message that arrived as the cancellation did (python/cpython#86296), and nats-py turns a
    cancellation into ``ConnectionClosedError`` when the connection is closed; a loop that
    goes on after either would never stop. The task's own outcome is not raised here.
    """
    task.cancel()
    await asyncio.wait([task], timeout=again_after_s)
    while not task.done():
        log.debug("%r ran on after its cancellation; cancelling it again", task)
        task.cancel()
        await asyncio.wait([task], timeout=again_after_s)
    if not task.cancelled():
        task.exception()  # retrieved: whoever stops the task decides what it means


def server_urls(url: str) -> tuple[str, ...]:
    """The servers of a ``--nats`` URL: one, or several comma-separated; raises ValueError."""
    servers = tuple(part.strip() for part in url.split(",") if part.strip())
    if not servers:
        raise ValueError(f"no NATS server in {url!r}")
    return servers


class NatsLink:
    """A NATS connection that keeps trying: ``client`` is None until the first one succeeds."""

    def __init__(
        self,
        url: str,
        name: str,
        *,
        connect_timeout_s: float = 2.0,
        reconnect_wait_s: float = 0.5,
        max_backoff_s: float = 5.0,
        ping_interval_s: int = 10,
        max_outstanding_pings: int = 2,
    ) -> None:
        self.url = url
        self.servers = server_urls(url)
        self.name = name
        self._ping_interval_s = ping_interval_s
        self._max_outstanding_pings = max_outstanding_pings
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_wait_s = reconnect_wait_s
        self._max_backoff_s = max_backoff_s
        self._client: Client | None = None
        self._hooks: list[ConnectedHook] = []
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False

    @property
    def client(self) -> Client | None:
        """The connection, or None before the first connection succeeded."""
        return self._client

    @property
    def connected(self) -> bool:
        """Whether the connection is up now."""
        return self._client is not None and self._client.is_connected

    def jetstream(self) -> JetStreamContext:
        """The JetStream context; raises TransportError before the first connection."""
        if self._client is None:
            raise TransportError(f"no connection to NATS at {self.url} yet")
        return self._client.jetstream()

    def on_connected(self, hook: ConnectedHook) -> None:
        """Run ``hook`` once the first connection is made (at once if it is made already)."""
        self._hooks.append(hook)
        if self._client is not None:
            asyncio.get_running_loop().create_task(self._run_hook(hook, self._client))

    async def start(self) -> None:
        """Start connecting in the background and return at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._connect_forever(), name=f"nats {self.name}")

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until the first connection is made; raises TimeoutError."""
        async with asyncio.timeout(timeout_s):
            await self._connected.wait()

    async def close(self) -> None:
        """Close the connection (pending publishes flushed where possible); never raises."""
        self._closing = True
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.close(), 5.0)

    async def _connect_forever(self) -> None:
        delay = self._reconnect_wait_s
        failing = False
        while not self._closing:
            try:
                client = await nats.connect(
                    servers=list(self.servers),
                    name=self.name,
                    connect_timeout=self._connect_timeout_s,
                    reconnect_time_wait=self._reconnect_wait_s,
                    # Never give up: nats-py's default (60 attempts) ends a link for good
                    # after a minute or two of outage, and an edge must outlast longer ones.
                    max_reconnect_attempts=-1,
                    ping_interval=self._ping_interval_s,
                    max_outstanding_pings=self._max_outstanding_pings,
                    allow_reconnect=True,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
            except (OSError, TimeoutError, nats.errors.Error) as err:
                if not failing:
                    log.warning("NATS at %s unreachable, retrying: %s", self.url, err or type(err))
                    failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)
                continue
            log.info("connected to NATS at %s as %s", self.url, self.name)
            self._client = client
            self._connected.set()
            for hook in self._hooks:
                await self._run_hook(hook, client)
            return

    async def _run_hook(self, hook: ConnectedHook, client: Client) -> None:
        try:
            await hook(client)
        except Exception:
            log.exception("NATS connection hook of %s failed", self.name)

    async def _on_error(self, err: Exception) -> None:
        log.debug("NATS %s: %r", self.name, err)

    async def _on_disconnected(self) -> None:
        if not self._closing:
            log.warning("NATS link of %s lost; reconnecting", self.name)

    async def _on_reconnected(self) -> None:
        log.info("NATS link of %s back", self.name)


async def ensure_stream(js: JetStreamContext, subjects: Subjects, settings: StreamSettings) -> None:
    """Create the site's stream with file storage, or bring an existing one to ``settings``.

    An existing stream keeps its replicas when it has more than ``settings`` asks: a process
    given one node of a cluster must not take the copies away that the others asked for.
    """
    config = _stream_config(subjects, settings.replicas, settings)
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError as err:
        # Already there with other settings (an older version, another process's options).
        try:
            current = await js.stream_info(subjects.stream)
            kept = max(settings.replicas, current.config.num_replicas or 1)
            await js.update_stream(_stream_config(subjects, kept, settings))
        except (nats.errors.Error, TimeoutError) as update_err:
            raise TransportError(
                f"stream {subjects.stream} exists and cannot be updated: {update_err}"
            ) from err
    except (nats.errors.Error, TimeoutError) as err:
        raise TransportError(f"cannot create stream {subjects.stream}: {err!r}") from err


def _stream_config(
    subjects: Subjects, replicas: int, settings: StreamSettings
) -> nats.js.api.StreamConfig:
    return nats.js.api.StreamConfig(
        name=subjects.stream,
        subjects=subjects.stream_subjects,
        storage=nats.js.api.StorageType.FILE,
        retention=nats.js.api.RetentionPolicy.LIMITS,
        discard=nats.js.api.DiscardPolicy.OLD,
        max_age=settings.max_age_s,
        max_bytes=settings.max_bytes,
        duplicate_window=settings.duplicate_window_s,
        num_replicas=replicas,
    )
