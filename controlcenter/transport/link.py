"""``NatsLink``: one process's connection to NATS, kept up for as long as the process runs.

nats-py reconnects by itself once a first connection succeeded, restoring subscriptions; a
first connection that fails raises. The link retries that first connection with backoff in the
background, so an edge started while its uplink is down still polls, spools and connects when
the link comes. Disconnections and reconnections are logged once each.
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
    ) -> None:
        self.url = url
        self.name = name
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
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.close(), 5.0)

    async def _connect_forever(self) -> None:
        delay = self._reconnect_wait_s
        failing = False
        while not self._closing:
            try:
                client = await nats.connect(
                    servers=[self.url],
                    name=self.name,
                    connect_timeout=self._connect_timeout_s,
                    reconnect_time_wait=self._reconnect_wait_s,
                    max_reconnect_attempts=-1,
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
    """Create the site's stream with file storage, or bring an existing one to ``settings``."""
    config = nats.js.api.StreamConfig(
        name=subjects.stream,
        subjects=subjects.stream_subjects,
        storage=nats.js.api.StorageType.FILE,
        retention=nats.js.api.RetentionPolicy.LIMITS,
        discard=nats.js.api.DiscardPolicy.OLD,
        max_age=settings.max_age_s,
        max_bytes=settings.max_bytes,
        duplicate_window=settings.duplicate_window_s,
        num_replicas=settings.replicas,
    )
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError as err:
        # Already there with other settings (an older version, another process's options).
        try:
            await js.update_stream(config)
        except nats.js.errors.Error as update_err:
            raise TransportError(
                f"stream {subjects.stream} exists and cannot be updated: {update_err}"
            ) from err
    except (nats.errors.Error, TimeoutError) as err:
        raise TransportError(f"cannot create stream {subjects.stream}: {err!r}") from err
