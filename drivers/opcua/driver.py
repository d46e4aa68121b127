"""The OPC UA driver: batched reads, subscriptions that survive reconnects, typed writes.

The driver owns its connection. asyncua's own reconnect stays off (it logs a traceback per
attempt); instead a supervisor task watches the session: on a lost transport, a failed
keep-alive probe, a Bad subscription status or a request that finds the session gone, it
delivers Bad ``not_connected`` samples for every subscribed point, logs one line, and
re-creates the client with exponential backoff (capped at ``reconnect_max_delay_s``). Once
connected again it restores every subscription by comparing the desired shards with the ones
that exist in the new session, and logs one line. A restarted server has forgotten the old
session (Part 4, 6.7), so nothing is transferred: everything is created anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from controlcenter.model import Quality, Sample, Substatus, TagDef, Value
from controlcenter.ports import Clock
from drivers.base import (
    AddressError,
    DeviceRejectedError,
    DriverDiagnostics,
    DriverError,
    NotConnectedError,
    SampleCallback,
    confirm_write,
)
from drivers.health import DriverHealth
from drivers.opcua.config import OpcUaDeviceConfig
from drivers.opcua.security import SecurityConfigurationError
from drivers.opcua.session import LIBRARY_ERRORS, OpcUaSession, driver_error, open_session
from drivers.opcua.subscriptions import (
    CreatedShard,
    SubscriptionSettings,
    create_shard,
    settings_for,
    shard,
)
from drivers.opcua.values import status_name, to_sample, to_variant

_log = logging.getLogger(__name__)

FIRST_RETRY_S = 0.25
"""First reconnect delay; it doubles per failed attempt up to ``reconnect_max_delay_s``."""
RECONCILE_INTERVAL_S = 2.0
"""How often the supervisor compares desired with existing subscriptions while connected."""
CLOSE_TIMEOUT_S = 2.0
"""How long closing a session may take before the socket is simply dropped."""


@dataclass(frozen=True, slots=True)
class SubscriptionDiagnostics:
    """Subscription health of one driver, for the HMI and metrics."""

    subscribed_points: int
    subscriptions: int
    monitored_items: int
    notifications: int
    reconnects: int


@dataclass(frozen=True, slots=True)
class _SubscribeRequest:
    """One subscribe call: what the caller wants, split into shards."""

    request_id: int
    points: tuple[TagDef, ...]
    callback: SampleCallback
    settings: SubscriptionSettings
    shards: tuple[tuple[TagDef, ...], ...]


@dataclass(slots=True)
class _ActiveShard:
    """A shard that exists in the current session."""

    session: OpcUaSession
    created: CreatedShard


@dataclass(slots=True)
class _Counters:
    reconnects: int = 0
    notifications_before: int = 0


class OpcUaDriver:
    """One OPC UA session to one server, implementing ``drivers.base.Driver``."""

    def __init__(self, device: str, config: OpcUaDeviceConfig, clock: Clock) -> None:
        self._device = device
        self._config = config
        self._clock = clock
        self._session: OpcUaSession | None = None
        self._stale_sessions: list[OpcUaSession] = []
        self._connect_lock = asyncio.Lock()
        self._reconcile_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._desired: list[_SubscribeRequest] = []
        self._active: dict[tuple[int, int], _ActiveShard] = {}
        self._request_ids = itertools.count(1)
        self._health = DriverHealth(device, _log)
        self._counters = _Counters()

    @property
    def device(self) -> str:
        """Name of the device this driver talks to."""
        return self._device

    @property
    def config(self) -> OpcUaDeviceConfig:
        """The connection settings."""
        return self._config

    @property
    def connected(self) -> bool:
        """Whether a session is open."""
        return self._session is not None

    async def connect(self) -> None:
        """Open and activate a session; raise NotConnectedError (or its subclass
        SecurityConfigurationError) naming why when the server cannot be used."""
        await self._open()
        self._health.mark_available(self._where)

    async def close(self) -> None:
        """Stop the supervisor, forget subscriptions and close the session; never raises."""
        self._closing = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        async with self._connect_lock:
            session, self._session = self._session, None
            self._desired.clear()
            self._active.clear()
            stale, self._stale_sessions = self._stale_sessions, []
            for old in [*stale, *([session] if session is not None else [])]:
                await old.close(CLOSE_TIMEOUT_S)
        self._closing = False

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        """Read points in batched Read calls (Part 4, 5.10.2); one sample per point, in order.

        A point whose address does not resolve gets a Bad config_error sample; the server's
        status code of each value becomes its quality. Losing the session raises."""
        where = f"{self._where}: read {len(points)} point(s)"
        session = await self._live_session(where)
        try:
            await session.resolve(point.address for point in points)
        except LIBRARY_ERRORS as err:
            raise self._call_failed(session, err, f"{where}: resolving addresses") from err
        now = self._clock.now()
        samples: list[Sample | None] = [None] * len(points)
        node_ids = []
        slots: list[int] = []
        for slot, point in enumerate(points):
            try:
                node_ids.append(session.node_id(point.address))
            except AddressError as err:
                samples[slot] = _bad(point, Substatus.CONFIG_ERROR, str(err), now)
                continue
            slots.append(slot)
        if node_ids:
            try:
                values = await session.read(node_ids)
            except LIBRARY_ERRORS as err:
                raise self._call_failed(session, err, where) from err
            now = self._clock.now()
            for slot, data_value in zip(slots, values, strict=True):
                samples[slot] = to_sample(points[slot], data_value, now)
        self._health.mark_available(self._where)
        return [sample for sample in samples if sample is not None]

    async def subscribe(
        self, points: Sequence[TagDef], callback: SampleCallback, *, interval_s: float
    ) -> None:
        """Monitor ``points`` (sampling every ``interval_s``, publishing about as often) and
        push their changes to ``callback`` in batches, one per publish response.

        Sets larger than ``max_items_per_subscription`` are sharded over several
        subscriptions. The subscription is kept until ``close``: while the server cannot be
        reached the callback gets Bad samples, and every shard is restored after a reconnect.
        Points that cannot be monitored (unknown node, refused item) get Bad samples."""
        settings = settings_for(self._config, interval_s)
        request = _SubscribeRequest(
            request_id=next(self._request_ids),
            points=tuple(points),
            callback=callback,
            settings=settings,
            shards=shard(points, self._config.max_items_per_subscription),
        )
        self._desired.append(request)
        if self._session is None and not self._supervising:
            with contextlib.suppress(DriverError):
                await self.connect()
        if self._session is None:
            reason = self._health.last_error or f"{self._where}: not connected"
            now = self._clock.now()
            self._deliver(
                request.callback,
                [_bad(point, Substatus.NOT_CONNECTED, reason, now) for point in request.points],
            )
        self._ensure_supervisor()
        await self._reconcile()

    async def write(self, point: TagDef, value: Value, *, priority: int | None = None) -> Value:
        """Write with the variable's own built-in type (Part 4, 5.10.4) and read back.

        OPC UA has no command priorities; ``priority`` is arbitrated above the driver. A Bad
        write status raises DeviceRejectedError naming the status code."""
        where = f"{self._where}: write {point.name} at {point.address}"
        session = await self._live_session(where)
        try:
            await session.resolve([point.address])
            node_id = session.node_id(point.address)
            variant = to_variant(value, await session.variant_type(node_id), where)
            code = await session.write(node_id, variant)
        except LIBRARY_ERRORS as err:
            raise self._call_failed(session, err, where) from err
        if code & 0x80000000:
            reason = f"{where}: refused with {status_name(code)} (0x{code:08X})"
            self._health.count_error(Substatus.DEVICE_FAILURE.value, reason)
            raise DeviceRejectedError(reason)
        # The device accepted the write: a failed readback leaves it unconfirmed, not refused.
        return await confirm_write(where, self._read_one(point))

    async def _read_one(self, point: TagDef) -> Sample:
        (readback,) = await self.read([point])
        return readback

    def diagnostics(self) -> DriverDiagnostics:
        """Request and error counts, the last error and the connection state."""
        return self._health.snapshot(self.connected)

    def subscription_diagnostics(self) -> SubscriptionDiagnostics:
        """Subscriptions and monitored items that exist now, and what was delivered."""
        active = list(self._active.values())
        return SubscriptionDiagnostics(
            subscribed_points=sum(len(request.points) for request in self._desired),
            subscriptions=len(active),
            monitored_items=sum(shard.created.monitored for shard in active),
            notifications=self._counters.notifications_before
            + sum(shard.created.router.notifications for shard in active),
            reconnects=self._counters.reconnects,
        )

    @property
    def _where(self) -> str:
        return f"{self._device} ({self._config.endpoint})"

    @property
    def _supervising(self) -> bool:
        return self._supervisor is not None and not self._supervisor.done()

    async def _open(self) -> OpcUaSession:
        """Open a session unless one is open; raise NotConnectedError when none can be."""
        async with self._connect_lock:
            if self._session is not None:
                return self._session
            opened: list[OpcUaSession] = []

            def lost(reason: str) -> None:
                self._session_lost(opened[0] if opened else None, reason)

            try:
                session = await open_session(
                    self._config, self._device, lost, self._health.count_request
                )
            except DriverError as err:
                self._health.failed(err, err.__cause__)
                raise
            opened.append(session)
            self._session = session
            self._active.clear()
        self._ensure_supervisor()
        return session

    async def _live_session(self, where: str) -> OpcUaSession:
        """The open session; connects once if the driver is idle, fails fast while the
        supervisor is reconnecting."""
        session = self._session
        if session is not None:
            return session
        if self._supervising:
            error = NotConnectedError(f"{where}: not connected (reconnecting)")
            self._health.count_error(error.substatus.value, str(error))
            raise error
        return await self._open()

    def _ensure_supervisor(self) -> None:
        if not self._supervising and not self._closing:
            self._supervisor = asyncio.create_task(
                self._supervise(), name=f"opcua-supervisor-{self._device}"
            )

    async def _supervise(self) -> None:
        """Run the supervision loop; an unexpected error is reported and the loop restarted."""
        while not self._closing:
            try:
                await self._supervise_session()
            except Exception:  # a bug, not a field fault: report it loudly, keep supervising
                _log.exception("%s: connection supervisor failed; restarting it", self._where)
                self._health.count_error("internal", f"{self._where}: connection supervisor failed")
                await asyncio.sleep(self._config.reconnect_max_delay_s)

    async def _supervise_session(self) -> None:
        """Reconnect with backoff when the session is lost; keep subscriptions as desired."""
        delay = FIRST_RETRY_S
        while not self._closing:
            await self._close_stale_sessions()
            if self._session is None:
                try:
                    await self._open()
                except DriverError:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._config.reconnect_max_delay_s)
                    continue
                delay = FIRST_RETRY_S
                shards = sum(len(request.shards) for request in self._desired)
                points = sum(len(request.points) for request in self._desired)
                self._health.mark_available(
                    self._where, f"; restoring {shards} subscription(s) of {points} point(s)"
                )
                await self._reconcile()
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECONCILE_INTERVAL_S):
                    await self._wake.wait()
            if self._session is not None:
                await self._reconcile()

    async def _close_stale_sessions(self) -> None:
        stale, self._stale_sessions = self._stale_sessions, []
        for session in stale:
            await session.close(CLOSE_TIMEOUT_S)

    async def _reconcile(self) -> None:
        """Create every desired shard missing from the current session."""
        async with self._reconcile_lock:
            for request in list(self._desired):
                for index, points in enumerate(request.shards):
                    session = self._session
                    if session is None:
                        return
                    key = (request.request_id, index)
                    if key not in self._active:
                        await self._create_shard(session, request, key, points)

    async def _create_shard(
        self,
        session: OpcUaSession,
        request: _SubscribeRequest,
        key: tuple[int, int],
        points: tuple[TagDef, ...],
    ) -> None:
        callback = request.callback

        def deliver(samples: list[Sample]) -> None:
            self._deliver(callback, samples)

        def on_status(code: int) -> None:
            self._shard_status(session, key, code)

        where = f"{self._where}: subscribe {len(points)} point(s)"
        try:
            created = await create_shard(
                session, points, request.settings, deliver, on_status, self._clock
            )
        except LIBRARY_ERRORS as err:
            error = self._call_failed(session, err, where)
            if self._session is session:  # still connected: tell the points why
                now = self._clock.now()
                deliver([_bad(point, error.substatus, str(error), now) for point in points])
            return
        if self._session is not session:
            return
        self._active[key] = _ActiveShard(session, created)
        if created.refused:
            deliver(list(created.refused))

    def _shard_status(self, session: OpcUaSession, key: tuple[int, int], code: int) -> None:
        """A subscription's status changed (Part 4, 7.25.4): a Bad one is gone on the server
        (e.g. BadTimeout when its lifetime expired), so the supervisor re-creates it."""
        if not code & 0x80000000 or self._session is not session:
            return
        shard_state = self._active.pop(key, None)
        if shard_state is not None:
            self._counters.notifications_before += shard_state.created.router.notifications
        self._health.count_error(
            Substatus.COMM_FAILURE.value, f"{self._where}: subscription {status_name(code)}"
        )
        self._wake.set()

    def _session_lost(self, session: OpcUaSession | None, reason: str) -> None:
        """Forget a lost session, tell every subscribed point, and wake the supervisor."""
        if session is None or session is not self._session or self._closing:
            return
        self._session = None
        self._stale_sessions.append(session)
        for shard_state in self._active.values():
            self._counters.notifications_before += shard_state.created.router.notifications
        self._active.clear()
        self._counters.reconnects += 1
        error = self._health.failed(NotConnectedError(f"{self._where}: {reason}; reconnecting"))
        now = self._clock.now()
        for request in list(self._desired):
            self._deliver(
                request.callback,
                [_bad(point, Substatus.NOT_CONNECTED, str(error), now) for point in request.points],
            )
        self._wake.set()

    def _call_failed(self, session: OpcUaSession, err: BaseException, where: str) -> DriverError:
        """Map a failed service call; a lost session is handed to the supervisor."""
        error = driver_error(err, where)
        if isinstance(error, NotConnectedError) and not isinstance(
            error, SecurityConfigurationError
        ):
            if session is self._session:
                self._session_lost(session, str(error).removeprefix(f"{self._where}: "))
            else:
                self._health.count_error(error.substatus.value, str(error))
            return error
        return self._health.failed(error, error.__cause__)

    def _deliver(self, callback: SampleCallback, samples: list[Sample]) -> None:
        """Hand samples to a subscriber; its failure must not stop acquisition."""
        try:
            callback(samples)
        except Exception as err:  # a subscriber's bug, not a field fault: count and report once
            message = f"{self._where}: sample callback failed: {type(err).__name__}: {err}"
            if self._health.errors_by_kind.get("callback", 0) == 0:
                _log.error("%s", message)
            self._health.count_error("callback", message)


def _bad(tag: TagDef, substatus: Substatus, reason: str, now: datetime) -> Sample:
    return Sample(tag.name, None, Quality.bad(substatus, reason), now, now)
