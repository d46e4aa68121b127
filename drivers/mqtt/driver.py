"""The MQTT driver: one broker connection, JSON uplinks and Sparkplug B nodes, quality by age.

The driver subscribes the topics its points live on (one filter per JSON topic, one per
Sparkplug B edge node) and keeps the last value of every point. Subscribers get each change
pushed as it arrives; ``read`` answers from the same values. A reader task owns the connection:
when the broker drops it (a lost socket, a broker-side kick because another client took the
client id) every subscribed point is Bad ``not_connected`` at once, the task reconnects with
exponential backoff (capped at ``reconnect_max_delay_s``), subscribes every filter again and
asks every Sparkplug B node for a rebirth.

Quality by age (JSON points): a sensor reports every ``report_interval_s`` seconds of the
center's clock. A point whose last report is older than one interval (plus a tenth of it for
jitter) is Uncertain ``last_usable``, older than three intervals Bad ``comm_failure``; an
ageing task pushes each change of that judgement. The report's age counts from the payload's
own time (``timestamp_pointer``) when it has one, else from its arrival; a retained message
without a payload time is of unknown age and stays Uncertain until a live report comes.
Sparkplug B reports by exception, so its points are judged by births and deaths instead:
NDEATH or DDEATH makes them Bad at once.

Writes publish a downlink (a JSON object on the point's ``set`` topic, or an NCMD/DCMD) and
wait for the uplink that shows the written value. Other values seen until the timeout mean the
device refused (DeviceRejectedError); none at all leave the write unconfirmed.

The connection is the driver's own lean MQTT 3.1.1 client (``drivers.mqtt.client``, which says
why it replaces aiomqtt): it hands over every message of a received chunk in one pass, a JSON
topic finds its points by one dict look-up, and the samples of a chunk reach each subscriber
as one batch once the chunk is handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from controlcenter.model import DataType, Quality, Sample, Substatus, TagDef, Value
from controlcenter.ports import Clock
from drivers.base import (
    AddressError,
    CommunicationTimeoutError,
    DeviceRejectedError,
    DriverDiagnostics,
    DriverError,
    NotConnectedError,
    SampleCallback,
    WriteUnconfirmedError,
)
from drivers.health import DriverHealth
from drivers.mqtt.address import (
    JsonAddress,
    MqttAddress,
    SparkplugAddress,
    parse_address,
    parse_pointer,
)
from drivers.mqtt.client import MqttClientError, MqttConnection
from drivers.mqtt.codec import (
    PayloadError,
    decode_json,
    downlink,
    parse_time,
    resolve,
    to_raw,
    to_value,
)
from drivers.mqtt.config import MqttDeviceConfig
from drivers.mqtt.sparkplug import (
    NAMESPACE,
    REBIRTH_METRIC,
    HostUpdate,
    MessageKind,
    SparkplugError,
    SparkplugHost,
    SpbMetric,
    SpbType,
    datatype_for,
    decode_payload,
    encode_payload,
    parse_topic,
    topic_of,
)

_log = logging.getLogger(__name__)
_SPARKPLUG_ROOT = NAMESPACE + "/"

FIRST_RETRY_S = 0.25
"""First reconnect delay (wall seconds); it doubles per failed attempt."""
REBIRTH_HOLDOFF_S = 2.0
"""At most one rebirth request per node in this many wall seconds: a node needs time to
answer, and a storm of requests helps no one."""
GRACE = 0.1
"""A report is missed only once its interval plus this share of it has passed (jitter)."""
MISSED_FOR_BAD = 3
"""Reports missed before a JSON point is Bad."""
MIN_AGE_STEP_S = 0.5
"""Shortest time between two sweeps of the points' ages (clock seconds)."""
FIRST_VALUES_WAIT_S = 0.5
"""A read of newly subscribed topics waits this long at most for retained values."""

Callback = SampleCallback


@dataclass(slots=True)
class _Point:
    """One tag on this broker and what the driver last knew of it."""

    tag: TagDef
    address: MqttAddress
    sample: Sample | None = None
    value: Value | None = None
    """The last value the device reported (kept through an Uncertain age)."""
    since: datetime | None = None
    """Where the report's age counts from: its payload time, else its arrival (clock time)."""
    age_known: bool = True
    level: int = 0
    """0: fresh, 1: one report missed (Uncertain), 2: three missed (Bad)."""
    callbacks: list[Callback] = field(default_factory=list)


@dataclass(slots=True)
class _PendingWrite:
    expected: Value
    future: asyncio.Future[Value]
    other: Value | None = None


@dataclass(frozen=True, slots=True)
class MqttDiagnostics:
    """Traffic and Sparkplug B figures of one driver."""

    messages: int
    dropped: int
    rebirth_requests: int
    reconnects: int
    subscribed_filters: int
    points: int


class MqttDriver:
    """One broker connection carrying many sensors, implementing ``drivers.base.Driver``."""

    def __init__(self, device: str, config: MqttDeviceConfig, clock: Clock) -> None:
        self._device = device
        self._config = config
        self._clock = clock
        self._health = DriverHealth(device, _log)
        self._time_pointer = (
            parse_pointer(config.timestamp_pointer) if config.timestamp_pointer is not None else ()
        )
        self._points: dict[str, _Point] = {}
        self._json_topics: dict[str, list[_Point]] = {}
        self._metrics: dict[tuple[str, str, str | None, str], list[_Point]] = {}
        self._nodes: dict[tuple[str, str], list[_Point]] = {}
        self._filters: set[str] = set()
        self._subscribed: set[str] = set()
        self._host = SparkplugHost()
        self._client: MqttConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ager: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()
        self._subscribe_lock = asyncio.Lock()
        self._closing = False
        self._pending: dict[str, list[_PendingWrite]] = {}
        self._rebirth_at: dict[tuple[str, str], float] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._arrived = asyncio.Event()
        self._messages = 0
        self._prefix = config.topic("")
        self._chunk: dict[int, tuple[Callback, list[Sample]]] | None = None
        """Samples of the received chunk being handled, delivered together once it is done."""
        self._chunk_now: datetime | None = None
        self._qualities: dict[str, Quality] = {}
        self._max_skew = timedelta(seconds=config.max_clock_skew_s)
        self._dropped = 0
        self._rebirths = 0
        self._reconnects = 0

    @property
    def device(self) -> str:
        """Name of the device (the broker connection) this driver talks to."""
        return self._device

    @property
    def config(self) -> MqttDeviceConfig:
        """The connection settings."""
        return self._config

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._client is not None

    # -- the Driver interface --------------------------------------------------------------

    async def connect(self) -> None:
        """Connect to the broker and subscribe what is wanted; raise NotConnectedError."""
        async with self._connect_lock:
            if self._client is not None:
                return
            self._closing = False
            self._client = await self._open()
            self._subscribed.clear()
        await self._sync_filters()
        self._ensure_tasks()
        self._health.mark_available(self._where)

    async def close(self) -> None:
        """Stop the reader and the ageing task and disconnect; never raises."""
        self._closing = True
        for task in (self._reader, self._ager, *self._background):
            if task is not None:
                task.cancel()
        for task in (self._reader, self._ager, *self._background):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._reader = self._ager = None
        self._background.clear()
        client, self._client = self._client, None
        if client is not None:
            await _disconnect(client)
        for pending in self._pending.values():
            for write in pending:
                if not write.future.done():
                    write.future.cancel()
        self._pending.clear()

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        """The last value of each point with its quality by age; one sample per point.

        Topics not yet subscribed are subscribed first (retained values arrive at once); a
        point that never reported is Bad ``waiting_for_initial_data``; a malformed address
        Bad ``config_error``. A broker that cannot be reached raises NotConnectedError."""
        self._health.count_request()
        bad_addresses = self._register(points)
        if self._client is None:
            if self._supervising:
                raise self._not_connected(f"read {len(points)} point(s): reconnecting")
            await self.connect()
        if await self._sync_filters():
            await self._first_values(points)
        now = self._clock.now()
        samples: list[Sample] = []
        for tag in points:
            if tag.name in bad_addresses:
                samples.append(_bad(tag, Substatus.CONFIG_ERROR, bad_addresses[tag.name], now))
                continue
            point = self._points[tag.name]
            samples.append(self._current(point, now))
        return samples

    async def subscribe(
        self, points: Sequence[TagDef], callback: SampleCallback, *, interval_s: float
    ) -> None:
        """Push every change of ``points`` to ``callback`` as the broker delivers it.

        ``interval_s`` does not change what the device sends (a sensor reports on its own
        schedule); the age rules use ``report_interval_s``. Kept until ``close``: while the
        broker is away the points are Bad, and everything is subscribed again after a
        reconnect."""
        bad_addresses = self._register(points)
        now = self._clock.now()
        initial: list[Sample] = []
        for tag in points:
            if tag.name in bad_addresses:
                initial.append(_bad(tag, Substatus.CONFIG_ERROR, bad_addresses[tag.name], now))
                continue
            point = self._points[tag.name]
            point.callbacks.append(callback)
            if point.sample is not None:
                initial.append(self._current(point, now))
        if self._client is None and not self._supervising:
            with contextlib.suppress(DriverError):
                await self.connect()
        if self._client is None:
            reason = self._health.last_error or f"{self._where}: not connected"
            initial = [_bad(tag, Substatus.NOT_CONNECTED, reason, now) for tag in points]
            self._ensure_tasks()
        else:
            await self._sync_filters()
        if initial:
            self._deliver(callback, initial)

    async def write(self, point: TagDef, value: Value, *, priority: int | None = None) -> Value:
        """Publish a downlink and return the value the next uplink shows (MQTT has no
        priorities; ``priority`` is arbitrated above the driver)."""
        where = f"{self._where}: write {point.name}"
        try:
            address = parse_address(point.address)
        except AddressError as err:
            raise self._count(err) from None
        self._register([point])
        if self._client is None:
            if self._supervising:
                raise self._not_connected(f"write {point.name}: reconnecting")
            await self.connect()
        await self._sync_filters()
        if isinstance(address, JsonAddress):
            topic, payload, expected = self._json_downlink(point, address, value, where)
        else:
            topic, payload, expected = self._sparkplug_downlink(point, address, value, where)
        pending = _PendingWrite(expected, asyncio.get_running_loop().create_future())
        self._pending.setdefault(point.name, []).append(pending)
        try:
            await self._publish(topic, payload, where)
            try:
                async with asyncio.timeout(self._config.write_timeout_s):
                    return await pending.future
            except TimeoutError:
                if pending.other is not None:
                    reason = (
                        f"{where}: the device still reports {pending.other!r}, not {expected!r}, "
                        f"{self._config.write_timeout_s:g} s after the downlink"
                    )
                    raise self._count(DeviceRejectedError(reason)) from None
                reason = (
                    f"{where}: no uplink confirmed {expected!r} within "
                    f"{self._config.write_timeout_s:g} s"
                )
                raise self._count(
                    WriteUnconfirmedError(reason, substatus=Substatus.TIMEOUT)
                ) from None
        finally:
            waiting = self._pending.get(point.name, [])
            if pending in waiting:
                waiting.remove(pending)
            if not waiting:
                self._pending.pop(point.name, None)

    def diagnostics(self) -> DriverDiagnostics:
        """Request and error counts, the last error and the connection state."""
        return self._health.snapshot(self.connected)

    def mqtt_diagnostics(self) -> MqttDiagnostics:
        """Messages received and dropped, rebirths asked for, reconnects, subscriptions."""
        return MqttDiagnostics(
            messages=self._messages,
            dropped=self._dropped,
            rebirth_requests=self._rebirths,
            reconnects=self._reconnects,
            subscribed_filters=len(self._subscribed),
            points=len(self._points),
        )

    # -- points and subscriptions ----------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self._device} (mqtt://{self._config.host}:{self._config.port})"

    @property
    def _supervising(self) -> bool:
        return self._reader is not None and not self._reader.done()

    def _register(self, tags: Iterable[TagDef]) -> dict[str, str]:
        """Know each point and the filter it needs; return the malformed ones' reasons."""
        problems: dict[str, str] = {}
        for tag in tags:
            known = self._points.get(tag.name)
            if known is not None and known.tag.address == tag.address:
                continue
            try:
                address = parse_address(tag.address)
            except AddressError as err:
                problems[tag.name] = str(err)
                continue
            point = _Point(tag, address)
            self._points[tag.name] = point
            if isinstance(address, JsonAddress):
                topic = self._config.topic(address.topic)
                self._json_topics.setdefault(topic, []).append(point)
                self._filters.add(topic)
            else:
                key = (address.group, address.node, address.device, address.metric)
                self._metrics.setdefault(key, []).append(point)
                self._nodes.setdefault((address.group, address.node), []).append(point)
                self._filters.add(
                    self._config.topic(f"{NAMESPACE}/{address.group}/+/{address.node}/#")
                )
        return problems

    async def _sync_filters(self) -> bool:
        """Subscribe every wanted filter not yet subscribed; True when any was new."""
        async with self._subscribe_lock:
            client = self._client
            missing = sorted(self._filters - self._subscribed)
            if client is None or not missing:
                return False
            where = f"{self._where}: subscribe {len(missing)} topic filter(s)"
            self._arrived.clear()
            try:
                async with asyncio.timeout(self._config.timeout_s):
                    for start in range(0, len(missing), 100):
                        batch = missing[start : start + 100]
                        self._health.count_request()
                        await client.subscribe([(topic, self._config.qos) for topic in batch])
            except (MqttClientError, TimeoutError) as err:
                raise self._not_connected(f"{where}: {err or 'timed out'}") from err
            self._subscribed.update(missing)
            for group, node in self._nodes_in(missing):
                self._request_rebirth(group, node, "subscribed", force=True)
            return True

    def _nodes_in(self, filters: Iterable[str]) -> list[tuple[str, str]]:
        wanted = set(filters)
        return [
            (group, node)
            for group, node in self._nodes
            if self._config.topic(f"{NAMESPACE}/{group}/+/{node}/#") in wanted
        ]

    async def _first_values(self, tags: Sequence[TagDef]) -> None:
        """Wait briefly for the retained values of newly subscribed topics."""
        deadline = time.monotonic() + min(FIRST_VALUES_WAIT_S, self._config.timeout_s)
        while any(
            self._points[tag.name].sample is None for tag in tags if tag.name in self._points
        ):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()

    # -- the connection --------------------------------------------------------------------

    async def _open(self) -> MqttConnection:
        config = self._config
        password = os.environ.get(config.password_env) if config.password_env else None
        if config.password_env and password is None:
            raise self._count(
                NotConnectedError(f"{self._where}: ${config.password_env} is not set")
            )
        self._health.count_request()
        try:
            client = await MqttConnection.connect(
                config.host,
                config.port,
                client_id=config.client_id or f"controlcenter-{self._device}",
                on_message=self._on_message,
                on_chunk=self._on_chunk,
                username=config.username,
                password=password,
                keepalive=config.keepalive_s,
                answer_within_s=config.timeout_s,
                tls_context=_tls_context(config) if config.tls else None,
            )
        except (MqttClientError, OSError, TimeoutError) as err:
            reason = str(err) or type(err).__name__
            raise self._health.failed(
                NotConnectedError(f"{self._where}: cannot connect: {reason}"), err
            ) from err
        return client

    def _ensure_tasks(self) -> None:
        if self._closing:
            return
        if not self._supervising:
            self._reader = asyncio.create_task(self._read_loop(), name=f"mqtt-{self._device}")
        if self._ager is None or self._ager.done():
            self._ager = asyncio.create_task(self._age_loop(), name=f"mqtt-age-{self._device}")

    async def _read_loop(self) -> None:
        """Deliver messages; on a lost connection mark everything Bad and reconnect."""
        delay = FIRST_RETRY_S
        while not self._closing:
            client = self._client
            if client is None:
                try:
                    async with self._connect_lock:
                        self._client = client = await self._open()
                        self._subscribed.clear()
                    await self._sync_filters()
                except DriverError:
                    self._client = None
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._config.reconnect_max_delay_s)
                    continue
                delay = FIRST_RETRY_S
                self._health.mark_available(
                    self._where, f"; {len(self._subscribed)} topic filter(s) subscribed again"
                )
            closed = await client.wait_closed()
            if closed.handler_error is not None:  # a bug, not a field fault: report it loudly
                _log.error(
                    "%s: message handling failed; reconnecting",
                    self._where,
                    exc_info=closed.handler_error,
                )
            self._lost(client, closed.reason or "connection lost")

    def _lost(self, client: MqttConnection, reason: str) -> None:
        """Forget the connection and tell every point at once."""
        self._chunk = None
        if self._closing:
            return
        if self._client is client:
            self._client = None
        self._reconnects += 1
        self._subscribed.clear()
        self._host.forget()
        task = asyncio.ensure_future(_disconnect(client))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        error = self._health.failed(NotConnectedError(f"{self._where}: {reason}; reconnecting"))
        now = self._clock.now()
        self._fail_points(self._points.values(), Substatus.NOT_CONNECTED, str(error), now)

    async def _publish(self, topic: str, payload: bytes, where: str) -> None:
        client = self._client
        if client is None:
            raise self._not_connected(f"{where}: not connected")
        self._health.count_request()
        try:
            async with asyncio.timeout(self._config.timeout_s):
                await client.publish(topic, payload, qos=self._config.qos)
        except TimeoutError as err:
            raise self._count(
                CommunicationTimeoutError(f"{where}: the broker did not take the downlink")
            ) from err
        except MqttClientError as err:
            raise self._not_connected(f"{where}: {err}") from err

    # -- uplinks ---------------------------------------------------------------------------

    def _on_message(self, topic: str, data: bytes, retained: bool) -> None:
        """One PUBLISH from the broker (the connection calls this for each)."""
        self._messages += 1
        self._health.requests += 1  # count_request(), inline: it runs for every message
        if self._chunk is None:  # the first message of a received chunk
            self._chunk = {}
            self._chunk_now = self._clock.now()
        prefix = self._prefix
        relative = topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic
        if relative.startswith(_SPARKPLUG_ROOT):
            self._on_sparkplug(relative, data)
            return
        # An exact topic finds its points by one dict look-up: JSON topics have no wildcards.
        points = self._json_topics.get(topic)
        if points:
            self._on_json(topic, points, data, retained=retained)

    def _on_chunk(self) -> None:
        """A received chunk is handled: deliver its samples, one batch per subscriber."""
        chunk, self._chunk = self._chunk, None
        if chunk is None:
            return
        for callback, samples in chunk.values():
            self._deliver(callback, samples)
        self._arrived.set()

    def _too_big(self, where: str, data: bytes) -> str:
        if len(data) <= self._config.max_payload_bytes:
            return ""
        self._dropped += 1
        reason = (
            f"{where}: payload of {len(data)} bytes is over the "
            f"{self._config.max_payload_bytes}-byte limit"
        )
        self._health.count_error("payload", reason)
        return reason

    def _on_json(self, topic: str, points: list[_Point], data: bytes, *, retained: bool) -> None:
        now = self._chunk_now or self._clock.now()
        problem = ""
        document: Any = None
        if len(data) > self._config.max_payload_bytes:
            problem = self._too_big(f"{self._device}: {topic}", data)
        else:
            try:
                document = decode_json(data)
            except PayloadError as err:
                problem = f"{self._device}: {topic}: {err}"
                self._dropped += 1
                self._health.count_error("payload", problem)
        if problem:
            self._fail_points(points, Substatus.DEVICE_FAILURE, problem, now)
            return
        since, age_known, time_problem = self._payload_time(document, now, retained)
        batches = self._chunk if self._chunk is not None else {}
        good = Quality.good()
        if time_problem:
            good = Quality.uncertain(
                Substatus.NON_SPECIFIC, f"{self._device}: {topic}: {time_problem}"
            )
        # One judgement of the report's age serves every point the message carries.
        level, judged = self._judge(since, age_known, now)
        for point in points:
            address = point.address
            assert isinstance(address, JsonAddress)
            try:
                value = to_value(resolve(document, address.pointer), point.tag)
            except PayloadError as err:
                reason = f"{self._device}: {topic}#{address.pointer_text}: {err}"
                self._health.count_error("value", reason)
                sample = _bad(point.tag, Substatus.DEVICE_FAILURE, reason, now)
                self._store(point, sample, batches)
                continue
            point.value = value
            point.since = since
            point.age_known = age_known
            point.level = level
            if level == 2:
                sample = Sample(point.tag.name, None, judged or good, now, now)
            else:
                sample = Sample(point.tag.name, value, judged or good, since, now)
            point.sample = sample  # what _store does, without a call per sample
            for callback in point.callbacks:
                entry = batches.get(id(callback))
                if entry is None:
                    batches[id(callback)] = (callback, [sample])
                else:
                    entry[1].append(sample)
            if self._pending:
                self._confirm(point, value)
        self._flush(batches)

    def _payload_time(
        self, document: Any, now: datetime, retained: bool
    ) -> tuple[datetime, bool, str]:
        """(where the age counts from, whether the age is known, why the time is doubtful)."""
        pointer_text = self._config.timestamp_pointer
        if pointer_text is not None:
            try:
                stamped: datetime | None = parse_time(resolve(document, self._time_pointer))
            except PayloadError:
                stamped = None
            if stamped is not None:
                if stamped - now > self._max_skew:
                    return now, not retained, f"payload time {stamped.isoformat()} is ahead"
                return stamped, True, ""
        if retained:
            return now, False, ""
        return now, True, ""

    def _aged(self, point: _Point, now: datetime) -> Sample | None:
        """The sample the point's age calls for, or None while it is fresh."""
        if point.value is None or point.since is None or not isinstance(point.address, JsonAddress):
            return None
        level, quality = self._judge(point.since, point.age_known, now)
        if quality is None:
            return None
        point.level = max(point.level, level) if not point.age_known else level
        if level == 2:
            return Sample(point.tag.name, None, quality, now, now)
        return Sample(point.tag.name, point.value, quality, point.since, now)

    def _judge(self, since: datetime, age_known: bool, now: datetime) -> tuple[int, Quality | None]:
        """The age level of a report made at ``since`` and its quality (None while fresh)."""
        interval = self._config.report_interval_s
        age = (now - since).total_seconds()
        if age > (MISSED_FOR_BAD + GRACE) * interval:
            reason = (
                f"no report for {age:.0f} s: {MISSED_FOR_BAD} reports missed "
                f"(expected every {interval:g} s)"
            )
            return 2, self._quality(Substatus.COMM_FAILURE, reason)
        if not age_known:
            reason = "retained message of unknown age: waiting for a live report"
            return 1, self._quality(Substatus.LAST_USABLE, reason)
        if age > (1 + GRACE) * interval:
            reason = f"no report for {age:.0f} s (expected every {interval:g} s)"
            return 1, self._quality(Substatus.LAST_USABLE, reason)
        return 0, None

    def _quality(self, substatus: Substatus, reason: str) -> Quality:
        """The quality of an age judgement, made once per reason: a center that lags behind a
        busy broker judges thousands of late reports a second alike."""
        quality = self._qualities.get(reason)
        if quality is None:
            if len(self._qualities) >= 1024:
                self._qualities.clear()
            if substatus is Substatus.COMM_FAILURE:
                quality = Quality.bad(substatus, reason)
            else:
                quality = Quality.uncertain(substatus, reason)
            self._qualities[reason] = quality
        return quality

    def _current(self, point: _Point, now: datetime) -> Sample:
        if point.sample is None:
            reason = f"{self._where}: nothing received for {point.tag.address} yet"
            return _bad(point.tag, Substatus.WAITING_FOR_INITIAL_DATA, reason, now)
        if point.sample.quality.is_good or point.level:
            aged = self._aged(point, now)
            if aged is not None:
                return aged
        return point.sample

    async def _age_loop(self) -> None:
        """Push Uncertain after a missed report and Bad after three, on the center's clock."""
        # A sweep visits every point: never more often than MIN_AGE_STEP_S of the clock.
        step = max(GRACE * self._config.report_interval_s, MIN_AGE_STEP_S)
        while not self._closing:
            await self._clock.sleep(step)
            now = self._clock.now()
            batches: dict[int, tuple[Callback, list[Sample]]] = {}
            for points in self._json_topics.values():
                for point in points:
                    if point.value is None or point.level >= 2:
                        continue
                    before = point.level
                    aged = self._aged(point, now)
                    if aged is not None and point.level > before:
                        self._store(point, aged, batches)
            self._flush(batches)

    # -- Sparkplug B -----------------------------------------------------------------------

    def _on_sparkplug(self, relative: str, data: bytes) -> None:
        topic = parse_topic(relative)
        if topic is None or (topic.group, topic.node) not in self._nodes:
            return
        where = f"{self._device}: {relative}"
        problem = self._too_big(where, data)
        if problem:
            self._request_rebirth(topic.group, topic.node, problem)
            return
        try:
            payload = decode_payload(data)
        except SparkplugError as err:
            self._dropped += 1
            self._health.count_error("payload", f"{where}: {err}")
            self._request_rebirth(topic.group, topic.node, str(err))
            return
        update = self._host.handle(topic, payload)
        self._apply(topic.group, topic.node, update, topic.kind, where)

    def _apply(
        self, group: str, node: str, update: HostUpdate, kind: MessageKind, where: str
    ) -> None:
        now = self._clock.now()
        for problem in update.problems:
            self._health.count_error("payload", f"{where}: {problem}")
        for device in update.died:
            gone = [
                point
                for point in self._nodes[(group, node)]
                if device is None
                or (isinstance(point.address, SparkplugAddress) and point.address.device == device)
            ]
            who = f"node {node}" if device is None else f"device {device} of node {node}"
            reason = f"{self._device}: {who} is offline ({kind.value})"
            self._fail_points(gone, Substatus.NOT_CONNECTED, reason, now)
        batches: dict[int, tuple[Callback, list[Sample]]] = {}
        for (device, name), metric in update.values:
            for point in self._metrics.get((group, node, device, name), ()):
                self._store(point, self._metric_sample(point, metric, now, where), batches)
        self._flush(batches)
        if update.rebirth:
            self._request_rebirth(group, node, update.rebirth)

    def _metric_sample(self, point: _Point, metric: SpbMetric, now: datetime, where: str) -> Sample:
        tag = point.tag
        source = metric.timestamp or now
        if metric.is_null:
            return _bad(tag, Substatus.SENSOR_FAILURE, f"{where}: {tag.address} is null", now)
        if metric.problem or metric.value is None:
            reason = f"{where}: {tag.address}: {metric.problem or 'no value'}"
            self._health.count_error("value", reason)
            return _bad(tag, Substatus.DEVICE_FAILURE, reason, now)
        try:
            value = to_value(metric.value, tag)
        except PayloadError as err:
            reason = f"{where}: {tag.address}: {err}"
            self._health.count_error("value", reason)
            return _bad(tag, Substatus.DEVICE_FAILURE, reason, now)
        point.value = value
        point.since = source
        self._confirm(point, value)
        return Sample(tag.name, value, Quality.good(), source, now)

    def _request_rebirth(self, group: str, node: str, reason: str, *, force: bool = False) -> None:
        """Ask a node to send its births again (NCMD Node Control/Rebirth), at most once per
        holdoff unless ``force``."""
        client = self._client
        if client is None or self._closing:
            return
        wall = time.monotonic()
        last = self._rebirth_at.get((group, node))
        if not force and last is not None and wall - last < REBIRTH_HOLDOFF_S:
            return
        if not force:  # a request on subscribing is no answer to a fault: it does not hold off
            self._rebirth_at[(group, node)] = wall
        self._rebirths += 1
        if not force:
            _log.info("%s: asking node %s/%s for a rebirth: %s", self._where, group, node, reason)
        payload = encode_payload(
            [(REBIRTH_METRIC, SpbType.BOOLEAN, True)], timestamp=self._clock.now()
        )
        topic = self._config.topic(topic_of(group, MessageKind.NCMD, node))
        task = asyncio.ensure_future(self._publish_quietly(topic, payload))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _publish_quietly(self, topic: str, payload: bytes) -> None:
        with contextlib.suppress(DriverError):
            await self._publish(topic, payload, f"{self._where}: rebirth request")

    # -- downlinks -------------------------------------------------------------------------

    def _json_downlink(
        self, tag: TagDef, address: JsonAddress, value: Value, where: str
    ) -> tuple[str, bytes, Value]:
        if address.set_topic is None:
            raise self._count(
                AddressError(f"{where}: {tag.address} names no downlink topic (';set=')")
            )
        raw = to_raw(value, tag)
        try:
            expected = to_value(raw, tag)
        except PayloadError as err:
            raise self._count(AddressError(f"{where}: {err}")) from err
        return self._config.topic(address.set_topic), downlink(address.pointer, raw), expected

    def _sparkplug_downlink(
        self, tag: TagDef, address: SparkplugAddress, value: Value, where: str
    ) -> tuple[str, bytes, Value]:
        if not self._host.online(address.group, address.node, address.device):
            raise self._not_connected(f"write {tag.name}: {address.node} is not online")
        key = (address.device, address.metric)
        datatype = self._host.datatype(address.group, address.node, key)
        kind = _known_type(datatype) or datatype_for(tag.data_type)
        raw: Value = value
        if isinstance(value, int | float) and not isinstance(value, bool):
            raw = (value - tag.offset) / tag.scale
            if tag.data_type is DataType.INT or kind in _INTEGER_TYPES:
                raw = round(raw)
        try:
            payload = encode_payload([(address.metric, kind, raw)], timestamp=self._clock.now())
            expected = to_value(raw, tag)
        except (SparkplugError, PayloadError) as err:
            raise self._count(AddressError(f"{where}: {err}")) from err
        message = MessageKind.NCMD if address.device is None else MessageKind.DCMD
        topic = topic_of(address.group, message, address.node, address.device)
        return self._config.topic(topic), payload, expected

    def _confirm(self, point: _Point, value: Value) -> None:
        for pending in self._pending.get(point.tag.name, ()):
            if pending.future.done():
                continue
            if _same(value, pending.expected):
                pending.future.set_result(value)
            else:
                pending.other = value

    # -- delivery --------------------------------------------------------------------------

    def _store(
        self, point: _Point, sample: Sample, batches: dict[int, tuple[Callback, list[Sample]]]
    ) -> None:
        point.sample = sample
        for callback in point.callbacks:
            entry = batches.get(id(callback))
            if entry is None:
                batches[id(callback)] = (callback, [sample])
            else:
                entry[1].append(sample)

    def _flush(self, batches: dict[int, tuple[Callback, list[Sample]]]) -> None:
        chunk = self._chunk
        if chunk is not None:  # inside a received chunk: delivered with it, in arrival order
            if batches is not chunk:
                for key, (callback, samples) in batches.items():
                    entry = chunk.get(key)
                    if entry is None:
                        chunk[key] = (callback, samples)
                    else:
                        entry[1].extend(samples)
            return
        for callback, samples in batches.values():
            self._deliver(callback, samples)

    def _fail_points(
        self, points: Iterable[_Point], substatus: Substatus, reason: str, now: datetime
    ) -> None:
        batches: dict[int, tuple[Callback, list[Sample]]] = {}
        for point in points:
            self._store(point, _bad(point.tag, substatus, reason, now), batches)
        self._flush(batches)

    def _deliver(self, callback: Callback, samples: list[Sample]) -> None:
        """Hand samples to a subscriber; its failure must not stop acquisition."""
        try:
            callback(samples)
        except Exception as err:  # a subscriber's bug, not a field fault: count, report once
            message = f"{self._device}: sample callback failed: {type(err).__name__}: {err}"
            if self._health.errors_by_kind.get("callback", 0) == 0:
                _log.error("%s", message)
            self._health.count_error("callback", message)

    def _count(self, error: DriverError) -> DriverError:
        self._health.count_error(error.substatus.value, str(error))
        return error

    def _not_connected(self, message: str) -> DriverError:
        return self._count(NotConnectedError(f"{self._where}: {message}"))


_INTEGER_TYPES = frozenset(
    {
        SpbType.INT8,
        SpbType.INT16,
        SpbType.INT32,
        SpbType.INT64,
        SpbType.UINT8,
        SpbType.UINT16,
        SpbType.UINT32,
        SpbType.UINT64,
    }
)


def _known_type(datatype: int | None) -> SpbType | None:
    try:
        return SpbType(datatype) if datatype is not None else None
    except ValueError:
        return None


def _same(seen: Value, expected: Value) -> bool:
    """Whether a read-back value shows the written one (Float metrics carry 24 bits)."""
    if isinstance(seen, float) or isinstance(expected, float):
        if isinstance(seen, bool) or isinstance(expected, bool):
            return seen == expected
        if isinstance(seen, int | float) and isinstance(expected, int | float):
            return math.isclose(seen, expected, rel_tol=1e-6, abs_tol=1e-9)
        return False
    return seen == expected


def _tls_context(config: MqttDeviceConfig) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)


async def _disconnect(client: MqttConnection) -> None:
    await client.disconnect()


def _bad(tag: TagDef, substatus: Substatus, reason: str, now: datetime) -> Sample:
    return Sample(tag.name, None, Quality.bad(substatus, reason), now, now)
