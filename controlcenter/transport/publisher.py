"""The edge's side of the stream: batches of samples (and events) published to JetStream,
with store-and-forward while the link is down.

Every outgoing message gets its ``Nats-Msg-Id`` when it is made, ``<edge>:<boot id>:<seq>``,
and keeps it through the spool, so a message published twice (its acknowledgement was lost
with the link, then it was sent again) is dropped by JetStream's de-duplication window; the
historian's idempotent insert on (tag, time) covers anything older than that window.

Order. Messages are sent strictly one after the other, oldest first: while anything is in the
spool, it goes before what is in memory, and what is in memory goes to the spool's end. So
whatever the link does, each device's batches reach the stream in the order they were made.

While the link is down, the memory queue is moved to the spool (one transaction, one fsync)
every ``retry_s``: a crash of the edge then loses at most that much acquisition. The spool is
an SQLite file (WAL, ``synchronous=FULL``) of encoded messages, separate from the historian's
sample spool because it keeps what the wire needs: subject, message id and payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nats.errors
import nats.js.errors

from controlcenter.model import Event, Sample
from controlcenter.transport.codec import (
    CodecError,
    SampleBatch,
    decode_batch,
    encode_batch,
    encode_events,
)
from controlcenter.transport.link import NatsLink
from controlcenter.transport.subjects import Subjects

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message ready for the wire."""

    subject: str
    msg_id: str
    payload: bytes


class SpoolError(Exception):
    """The spool file cannot be used."""


class BatchSpool:
    """Outgoing messages on disk, oldest first, until the stream has them; thread-safe."""

    def __init__(self, path: Path, *, max_bytes: int = 1 << 30) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS outgoing (seq INTEGER PRIMARY KEY, subject TEXT NOT "
                "NULL, msg_id TEXT NOT NULL, payload BLOB NOT NULL, size INTEGER NOT NULL)"
            )
            row = self._conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM outgoing")
            self._count, self._bytes = (int(v) for v in row.fetchone())
        except sqlite3.Error as err:
            raise SpoolError(f"cannot open the edge spool {path}: {err}") from err

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        """Payload bytes held."""
        return self._bytes

    def append(self, messages: Sequence[Outgoing]) -> None:
        """Add messages at the end in one transaction; raises SpoolError (nothing stored)."""
        size = sum(len(m.payload) for m in messages)
        with self._lock:
            if self._bytes + size > self._max_bytes:
                raise SpoolError(f"the edge spool is full ({self._bytes} of {self._max_bytes} B)")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    "INSERT INTO outgoing (subject, msg_id, payload, size) VALUES (?, ?, ?, ?)",
                    [(m.subject, m.msg_id, m.payload, len(m.payload)) for m in messages],
                )
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                self._conn.execute("ROLLBACK")
                raise SpoolError(f"cannot write the edge spool: {err}") from err
            self._count += len(messages)
            self._bytes += size

    def peek(self, limit: int) -> list[tuple[int, Outgoing]]:
        """The oldest ``limit`` messages with their spool sequence numbers."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, subject, msg_id, payload FROM outgoing ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [
            (int(seq), Outgoing(subject, msg_id, bytes(payload)))
            for seq, subject, msg_id, payload in rows
        ]

    def drop_through(self, seq: int) -> None:
        """Remove every message up to and including spool sequence ``seq``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM outgoing WHERE seq <= ?", (seq,)
            ).fetchone()
            self._conn.execute("DELETE FROM outgoing WHERE seq <= ?", (seq,))
            self._count -= int(row[0])
            self._bytes -= int(row[1])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()


@dataclass(frozen=True, slots=True)
class PublisherMetrics:
    """What the publisher has done and holds."""

    published: int
    """Messages the stream acknowledged (duplicates included)."""
    duplicates: int
    """Of those, messages JetStream had already (a resend after a lost acknowledgement)."""
    memory_depth: int
    spool_depth: int
    spooled: int
    """Messages ever moved to the spool."""
    dropped: int
    """Messages lost: the spool refused them (full, disk error) or they could not be encoded."""
    link_up: bool
    samples_published: int = 0
    """Samples in the sample batches the stream acknowledged as new (not duplicates)."""


class EdgePublisher:
    """Publishes an edge's samples and events to the site's stream, in order, at least once.

    ``on_samples`` is a bus listener (call it on the event loop); ``run`` is the sending task.
    """

    def __init__(
        self,
        link: NatsLink,
        subjects: Subjects,
        edge: str,
        device_of: Mapping[str, str],
        spool: BatchSpool,
        *,
        publish_timeout_s: float = 2.0,
        retry_s: float = 0.5,
        memory_limit: int = 10_000,
        boot_id: str | None = None,
    ) -> None:
        self._link = link
        self._subjects = subjects
        self._edge = edge
        self._device_of = device_of
        self._spool = spool
        self._publish_timeout_s = publish_timeout_s
        self._retry_s = retry_s
        self._memory_limit = memory_limit
        self.boot_id = boot_id or uuid.uuid4().hex[:12]
        self._seq = 0
        self._memory: deque[Outgoing] = deque()
        self._wake = asyncio.Event()
        self._published = 0
        self._samples_published = 0
        self._duplicates = 0
        self._spooled = 0
        self._dropped = 0
        self._failing = False
        self._drained = asyncio.Event()

    # --- producer side ----------------------------------------------------------------------

    def on_samples(self, samples: Sequence[Sample]) -> None:
        """Queue a scan's samples, one message per device (a ``SampleListener``)."""
        by_device: dict[str, list[Sample]] = {}
        for sample in samples:
            device = self._device_of.get(sample.tag)
            if device is not None:
                by_device.setdefault(device, []).append(sample)
        for device, batch in by_device.items():
            try:
                payload = encode_batch(SampleBatch(self._edge, device, tuple(batch)))
            except CodecError as err:
                self._dropped += 1
                log.error("batch of %s not sent: %s", device, err)
                continue
            self._queue(self._subjects.samples(device), payload)

    def publish_events(self, events: Sequence[Event]) -> None:
        """Queue events for the center's journal."""
        if events:
            self._queue(self._subjects.events(self._edge), encode_events(self._edge, events))

    def _queue(self, subject: str, payload: bytes) -> None:
        self._seq += 1
        self._memory.append(Outgoing(subject, f"{self._edge}:{self.boot_id}:{self._seq}", payload))
        self._drained.clear()
        self._wake.set()

    def metrics(self) -> PublisherMetrics:
        """A snapshot of the publisher's figures."""
        return PublisherMetrics(
            published=self._published,
            samples_published=self._samples_published,
            duplicates=self._duplicates,
            memory_depth=len(self._memory),
            spool_depth=len(self._spool),
            spooled=self._spooled,
            dropped=self._dropped,
            link_up=self._link.connected,
        )

    # --- the sending task -------------------------------------------------------------------

    async def run(self) -> None:
        """Send until cancelled: the spool first, then memory; spool memory while failing."""
        while True:
            if len(self._spool):
                if await self._send_spooled():
                    continue
            elif self._memory:
                if await self._send(self._memory[0]):
                    self._memory.popleft()
                    continue
            else:
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            # The link is down or the stream refused: keep memory safe, then try again.
            await self._spill()
            await asyncio.sleep(self._retry_s)

    async def flush(self, timeout_s: float) -> None:
        """Wait until memory and spool are both empty; raises TimeoutError."""
        async with asyncio.timeout(timeout_s):
            await self._drained.wait()

    async def spill_for_shutdown(self) -> None:
        """Move what memory still holds to the spool (call once ``run`` has ended)."""
        await self._spill()

    async def _send_spooled(self) -> bool:
        """Send the spool's oldest messages in order; False at the first failure."""
        entries = await asyncio.to_thread(self._spool.peek, 100)
        sent_through: int | None = None
        ok = True
        for seq, message in entries:
            if not await self._send(message):
                ok = False
                break
            sent_through = seq
        if sent_through is not None:
            await asyncio.to_thread(self._spool.drop_through, sent_through)
        return ok

    async def _send(self, message: Outgoing) -> bool:
        if not self._link.connected:
            self._note_failure("no connection to NATS")
            return False
        try:
            ack = await self._link.jetstream().publish(
                message.subject,
                message.payload,
                timeout=self._publish_timeout_s,
                stream=self._subjects.stream,
                headers={MSG_ID_HEADER: message.msg_id},
            )
        except (nats.errors.Error, TimeoutError, OSError) as err:
            self._note_failure(f"{type(err).__name__}: {err}")
            return False
        self._published += 1
        if ack.duplicate:
            self._duplicates += 1
        elif self._subjects.is_samples(message.subject):
            # Counted from the payload: a batch replayed from the spool carries its own count.
            with contextlib.suppress(CodecError):
                self._samples_published += len(decode_batch(message.payload).samples)
        if self._failing:
            self._failing = False
            log.info(
                "publishing to %s again (%d message(s) spooled)",
                self._subjects.stream,
                len(self._spool),
            )
        return True

    def _note_failure(self, reason: str) -> None:
        if not self._failing:
            self._failing = True
            log.warning("cannot publish to %s, spooling: %s", self._subjects.stream, reason)

    async def _spill(self) -> None:
        """Move every message in memory to the end of the spool (one transaction)."""
        if not self._memory:
            return
        messages = list(self._memory)
        try:
            await asyncio.to_thread(self._spool.append, messages)
        except SpoolError as err:
            # Kept in memory up to its limit; beyond, the oldest are lost, and said so.
            log.error("edge spool refused %d message(s): %s", len(messages), err)
            while len(self._memory) > self._memory_limit:
                self._memory.popleft()
                self._dropped += 1
            return
        for _ in messages:
            self._memory.popleft()
        self._spooled += len(messages)
