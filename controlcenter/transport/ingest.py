"""The center's side of the stream: samples from every edge onto the center's bus.

A durable pull consumer reads the site's samples. Every center process that names the same
consumer shares it: JetStream hands each message to one of them (a work queue), so several
processes can historize a stream that one cannot keep up with. A center that runs the rules,
alarms and HMI needs every sample and names a consumer of its own.

A message is acknowledged only once the historian writer holds its samples durably (committed
in the database or fsynced in its spool: ``DurabilityGauge``). A center that stops or crashes
before that leaves the message unacknowledged, and JetStream delivers it again after
``ack_wait`` (to this process after a restart, or to another sharing the consumer). Delivering
a batch twice is harmless: the historian ignores a (tag, time) it has. Messages waiting for the
writer are kept alive with in-progress acknowledgements, so a slow database does not make
JetStream deliver them again.

Anything on the stream is checked before it reaches the bus: a message that cannot be decoded
is terminated (never redelivered) with one log line, and samples of tags the batch's device
does not own, or of a device its edge does not own, are dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import nats.errors
import nats.js.api
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from controlcenter.model import Event, Sample, ScanDiagnostics
from controlcenter.ports import EventJournal
from controlcenter.transport.codec import (
    CodecError,
    decode_batch,
    decode_diagnostics,
    decode_events,
)
from controlcenter.transport.link import (
    NatsLink,
    StreamSettings,
    cancel_and_wait,
    ensure_stream,
)
from controlcenter.transport.subjects import Subjects

log = logging.getLogger(__name__)


class DurabilityGauge(Protocol):
    """How far the historian writer has made what it was given durable (``HistorianWriter``)."""

    @property
    def queued_total(self) -> int:
        """Samples ever queued; read after handing samples over: their mark."""
        ...

    @property
    def acknowledged_total(self) -> int:
        """Samples ever made durable, in queue order."""
        ...


@dataclass(frozen=True, slots=True)
class EdgeDevices:
    """Which edge owns which device and which device owns which tag (from the site file)."""

    edge_of: Mapping[str, str]
    """Device → edge, for the devices edges own."""
    device_of: Mapping[str, str]
    """Tag → device, for the tags of those devices."""


@dataclass(frozen=True, slots=True)
class IngestMetrics:
    """What the ingest has taken from the stream."""

    messages: int
    samples: int
    acknowledged: int
    pending: int
    """Messages on the bus whose samples the historian does not hold durably yet."""
    rejected_messages: int
    rejected_samples: int
    events: int


@dataclass(slots=True)
class _Pending:
    mark: int
    message: Msg
    since: float = field(default_factory=time.monotonic)


class CenterIngest:
    """Feeds the center's bus from the site's stream; acknowledges what the historian holds."""

    def __init__(
        self,
        link: NatsLink,
        subjects: Subjects,
        owners: EdgeDevices,
        publish: Callable[[Sequence[Sample]], None],
        durability: DurabilityGauge,
        *,
        journal: EventJournal | None = None,
        consumer: str | None = None,
        settings: StreamSettings | None = None,
        fetch_batch: int = 256,
        ack_wait_s: float = 30.0,
        max_ack_pending: int = 20_000,
        ack_every_s: float = 0.05,
    ) -> None:
        self._link = link
        self._subjects = subjects
        self._owners = owners
        self._publish = publish
        self._durability = durability
        self._journal = journal
        self._consumer = consumer or subjects.consumer("samples")
        self._settings = settings or StreamSettings()
        self._fetch_batch = fetch_batch
        self._ack_wait_s = ack_wait_s
        self._max_ack_pending = max_ack_pending
        self._ack_every_s = ack_every_s
        self._pending: deque[_Pending] = deque()
        self._diagnostics: dict[str, tuple[str, datetime, ScanDiagnostics]] = {}
        self._messages = 0
        self._samples = 0
        self._acknowledged = 0
        self._rejected_messages = 0
        self._rejected_samples = 0
        self._events = 0
        self.ready = asyncio.Event()
        """Set once the consumers exist and the first fetch is under way."""

    def metrics(self) -> IngestMetrics:
        """A snapshot of the ingest's figures."""
        return IngestMetrics(
            messages=self._messages,
            samples=self._samples,
            acknowledged=self._acknowledged,
            pending=len(self._pending),
            rejected_messages=self._rejected_messages,
            rejected_samples=self._rejected_samples,
            events=self._events,
        )

    def diagnostics(self) -> list[ScanDiagnostics]:
        """The latest diagnostics every edge sent of its devices (a ``DeviceHealthView``)."""
        return [entry[2] for _, entry in sorted(self._diagnostics.items())]

    async def run(self) -> None:
        """Consume until cancelled (waits for the link first)."""
        await self._link.start()
        while not self._link.connected:
            try:
                await self._link.wait_connected(1.0)
            except TimeoutError:
                continue
        js = self._link.jetstream()
        await ensure_stream(js, self._subjects, self._settings)
        config = nats.js.api.ConsumerConfig(
            ack_policy=nats.js.api.AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait_s,
            max_ack_pending=self._max_ack_pending,
            deliver_policy=nats.js.api.DeliverPolicy.ALL,
        )
        samples = await js.pull_subscribe(
            self._subjects.all_samples,
            durable=self._consumer,
            stream=self._subjects.stream,
            config=config,
        )
        events = await js.pull_subscribe(
            self._subjects.all_events,
            durable=f"{self._consumer}-events",
            stream=self._subjects.stream,
            config=config,
        )
        client = self._link.client
        assert client is not None
        diagnostics = await client.subscribe(
            self._subjects.all_diagnostics, cb=self._on_diagnostics
        )
        tasks = [
            asyncio.create_task(self._fetch_loop(samples), name="ingest samples"),
            asyncio.create_task(self._ack_loop(), name="ingest acknowledgements"),
            asyncio.create_task(self._event_loop(events), name="ingest events"),
        ]
        self.ready.set()
        try:
            # Not ``gather``: cancelled, it waits for children that may not stop at once
            # (see ``cancel_and_wait``); ``wait`` hands the cancellation straight on.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task.done():
                    task.result()  # a loop ends only by failing: its error is this one's
        finally:
            for task in tasks:
                await cancel_and_wait(task)
            # Stopping: what the historian may not hold yet goes back to the stream at once
            # (to another center sharing the consumer, or to this one after its restart)
            # rather than after ``ack_wait``. Redelivery of what it does hold is harmless.
            while self._pending:
                with contextlib.suppress(nats.errors.Error):
                    await self._pending.popleft().message.nak()
            with contextlib.suppress(nats.errors.Error):
                await diagnostics.unsubscribe()

    async def _fetch_loop(self, subscription: JetStreamContext.PullSubscription) -> None:
        failing = False
        while True:
            try:
                messages = await subscription.fetch(self._fetch_batch, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.Error as err:
                if not failing:
                    log.warning("fetching samples from %s failed: %r", self._subjects.stream, err)
                    failing = True
                await asyncio.sleep(0.5)
                continue
            failing = False
            for message in messages:
                self._take(message)

    def _take(self, message: Msg) -> None:
        self._messages += 1
        try:
            batch = decode_batch(message.data)
        except CodecError as err:
            self._reject(message, f"undecodable batch on {message.subject}: {err}")
            return
        if self._owners.edge_of.get(batch.device) != batch.edge or message.subject != (
            self._subjects.samples(batch.device)
        ):
            self._reject(
                message,
                f"batch of device {batch.device!r} from edge {batch.edge!r} on "
                f"{message.subject}: not a device of that edge",
            )
            return
        kept = [s for s in batch.samples if self._owners.device_of.get(s.tag) == batch.device]
        if len(kept) != len(batch.samples):
            self._rejected_samples += len(batch.samples) - len(kept)
            log.warning(
                "dropped %d sample(s) of tags device %s does not own",
                len(batch.samples) - len(kept),
                batch.device,
            )
        self._samples += len(kept)
        self._publish(kept)
        self._pending.append(_Pending(self._durability.queued_total, message))

    def _reject(self, message: Msg, reason: str) -> None:
        self._rejected_messages += 1
        log.error("%s; discarded", reason)
        asyncio.get_running_loop().create_task(_terminate(message))

    async def _ack_loop(self) -> None:
        keep_alive_after = self._ack_wait_s / 3
        while True:
            await asyncio.sleep(self._ack_every_s)
            durable = self._durability.acknowledged_total
            while self._pending and self._pending[0].mark <= durable:
                entry = self._pending.popleft()
                try:
                    await entry.message.ack()
                except nats.errors.Error as err:
                    # Redelivered later, and harmless: the historian has these rows.
                    log.debug("acknowledgement lost: %r", err)
                self._acknowledged += 1
            now = time.monotonic()
            for entry in self._pending:
                if now - entry.since < keep_alive_after:
                    break
                entry.since = now
                try:
                    await entry.message.in_progress()
                except nats.errors.Error:
                    break

    async def _event_loop(self, subscription: JetStreamContext.PullSubscription) -> None:
        while True:
            try:
                messages = await subscription.fetch(64, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.Error:
                await asyncio.sleep(0.5)
                continue
            for message in messages:
                try:
                    edge, events = decode_events(message.data)
                except CodecError as err:
                    self._reject(message, f"undecodable events on {message.subject}: {err}")
                    continue
                if message.subject != self._subjects.events(edge):
                    self._reject(message, f"events of edge {edge!r} on {message.subject}")
                    continue
                if self._journal is not None:
                    await asyncio.to_thread(self._record, edge, events)
                self._events += len(events)
                await message.ack()

    def _record(self, edge: str, events: Sequence[Event]) -> None:
        assert self._journal is not None
        for event in events:
            self._journal.record(event)

    async def _on_diagnostics(self, message: Msg) -> None:
        try:
            edge, at, devices = decode_diagnostics(message.data)
        except CodecError as err:
            log.debug("undecodable diagnostics on %s: %s", message.subject, err)
            return
        if message.subject != self._subjects.diagnostics(edge):
            return
        for device in devices:
            if self._owners.edge_of.get(device.device) == edge:
                self._diagnostics[device.device] = (edge, at, device)


async def _terminate(message: Msg) -> None:
    with contextlib.suppress(nats.errors.Error):
        await message.term()
