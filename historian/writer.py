"""``HistorianWriter``: compresses and batches samples from the event loop into the store.

The bus calls ``enqueue`` on the event loop. Each tag's samples first go through its compression
(``historian.compression``; raw by default), then into an in-memory queue. ``run`` gathers
batches by size (``max_batch``) or by age (the oldest queued sample waits at most
``max_delay_s`` of wall time) and writes each batch in one transaction on a worker thread, so
acquisition never waits for the database.

Store and forward. Given a ``DiskSpool``, the writer moves queued samples to it, one batch per
fsync, whenever the database fails (within ``max_delay_s`` of their arrival, for as long as it
fails) and whenever the memory queue holds more than ``memory_limit`` samples (the database is
slower than acquisition). Batches are then taken from the spool first: everything is written
in the order it arrived, and the store's idempotent insert makes a replayed batch harmless.

Acknowledged means safe from a crash of this process: a sample is acknowledged once it is
committed in the database or fsynced in the spool (``WriterMetrics.rows_acknowledged``). A
sample in the memory queue, or held by a tag's compression, is not.

A batch that fails to write is retried with exponential backoff: one log line when writing
starts failing, one when it recovers. Samples the store refuses for good (unknown tag, value of
the wrong type) are dropped with one error line, since retrying them can never succeed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from controlcenter.model import Sample
from controlcenter.ports import HistoryStore
from historian.buffer import MemoryBuffer
from historian.compression import Compressor
from historian.errors import HistorianWriterError, InvalidSamplesError, Rejection
from historian.spool import DiskSpool, SpoolError

_log = logging.getLogger(__name__)

DEFAULT_MEMORY_LIMIT = 100_000
"""Samples held in memory before the excess goes to the spool (about 10 s of a busy site)."""


@dataclass(frozen=True, slots=True)
class WriterMetrics:
    """A snapshot of the writer's back-pressure and throughput figures."""

    queue_depth: int
    """Samples waiting to be written (memory and spool), including the batch being written."""
    rows_written: int
    batches_written: int
    last_batch_latency_s: float
    """Duration of the last successful batch write (0.0 before the first)."""
    write_failures: int
    """Failed write attempts since start (each retry that fails counts)."""
    rows_rejected: int
    """Samples the store refused for good and that were dropped."""
    failing: bool
    """Whether writing is currently failing (the queue grows until it recovers)."""
    memory_depth: int = 0
    """Samples in the memory queue: not yet acknowledged."""
    spool_depth: int = 0
    """Samples in the disk spool: acknowledged, not yet in the database."""
    spool_fill_ratio: float = 0.0
    """How full the spool is, 0.0 to 1.0 (0.0 without a spool)."""
    rows_received: int = 0
    """Samples offered to ``enqueue`` (before compression)."""
    rows_compressed_away: int = 0
    """Samples compression decided not to store."""
    rows_acknowledged: int = 0
    """Samples of this run committed to the database or fsynced in the spool."""
    rows_spooled: int = 0
    """Samples moved to the spool since start."""
    max_batch_latency_s: float = 0.0
    """Longest successful batch write since start."""
    oldest_queued_age_s: float = 0.0
    """How long the oldest sample of the memory queue has waited (0.0 when it is empty)."""


class _State(Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class _Source(Enum):
    MEMORY = "memory"
    SPOOL = "spool"


@dataclass(slots=True)
class _Attempt:
    """A batch being written: its samples, where they are queued and how many entries they are."""

    batch: list[Sample]
    consumed: int
    source: _Source


class HistorianWriter:
    """Compresses and batches samples into a ``HistoryStore`` without blocking the event loop.

    Use from one event loop: start ``run()`` as a task, hand ``enqueue`` to the bus, and call
    ``stop()`` on shutdown. ``enqueue`` must be called on the loop's thread.
    """

    def __init__(
        self,
        store: HistoryStore,
        *,
        max_batch: int = 5000,
        max_delay_s: float = 1.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        spool: DiskSpool | None = None,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        compressor: Compressor | None = None,
        on_written: Callable[[Sequence[Sample]], None] | None = None,
    ) -> None:
        """Write to ``store``; with ``spool``, keep what the database cannot take on disk.

        ``memory_limit``: samples held in memory before the excess is spooled (with a spool).
        ``compressor``: per-tag compression applied on enqueue; None stores every sample.
        ``on_written``: called on the worker thread with each batch once it is committed (e.g.
        ``RollupMaintainer.note_written``); it must be quick and must not raise.
        """
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_delay_s <= 0:
            raise ValueError(f"max_delay_s must be positive, got {max_delay_s}")
        if not 0 < retry_initial_s <= retry_max_s:
            raise ValueError("retry delays must satisfy 0 < retry_initial_s <= retry_max_s")
        if memory_limit < 1:
            raise ValueError(f"memory_limit must be at least 1, got {memory_limit}")
        self._store = store
        self._max_batch = max_batch
        self._max_delay_s = max_delay_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._spool = spool
        self._memory_limit = memory_limit
        self._compressor = (
            None if compressor is None or compressor.stores_everything else compressor
        )
        self._on_written = on_written
        self._prefetched: asyncio.Future[list[Sample]] | None = None
        self._memory = MemoryBuffer()
        self._spooled = len(spool) if spool is not None else 0
        # Samples ever queued and ever taken off the queue (written or refused): flush() waits for
        # the second to reach the first's value at the time of the call. A spool may hold samples
        # from a previous run: they count as queued, so flush() waits for them too.
        self._enqueued = self._spooled
        self._done = 0
        # Samples that ever entered and left the memory queue (written from it, or spooled), and
        # (running total entered at the end of an enqueue, wall-clock monotonic time): the head
        # entry tells how long the oldest sample in memory has been waiting.
        self._memory_in = 0
        self._memory_out = 0
        self._enqueue_times: deque[tuple[int, float]] = deque()
        self._flush_target = 0
        self._state = _State.NEW
        self._stop_requested = False
        self._abandon = False
        self._wake = asyncio.Event()
        self._stop_wake = asyncio.Event()
        self._finished = asyncio.Event()
        self._progress = asyncio.Event()
        self._own_task: asyncio.Task[None] | None = None
        self._rows_received = 0
        self._rows_written = 0
        self._batches_written = 0
        self._last_batch_latency_s = 0.0
        self._max_batch_latency_s = 0.0
        self._write_failures = 0
        self._rows_rejected = 0
        self._rows_spooled = 0
        self._failing_since: float | None = None
        self._outage_failures = 0
        self._spool_failing = False

    # --- producer side ----------------------------------------------------------------------

    def enqueue(self, samples: Sequence[Sample]) -> None:
        """Queue samples for writing and return at once (a ``SampleListener`` for the bus)."""
        if self._stop_requested:
            raise HistorianWriterError(
                f"the historian writer is stopping: {len(samples)} sample(s) refused"
            )
        if not samples:
            return
        self._rows_received += len(samples)
        kept = samples if self._compressor is None else self._compressor.offer_batch(samples)
        self._queue(kept)

    def _queue(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        self._memory.append(samples)
        self._enqueued += len(samples)
        self._memory_in += len(samples)
        self._enqueue_times.append((self._memory_in, time.monotonic()))
        self._wake.set()

    @property
    def queued_total(self) -> int:
        """Samples ever queued for writing (after compression) since start: read just after an
        ``enqueue``, everything that call queued is acknowledged once ``acknowledged_total``
        reaches it (the queue is first in, first out)."""
        return self._memory_in

    @property
    def acknowledged_total(self) -> int:
        """Samples of this run committed to the database or fsynced in the spool (as
        ``WriterMetrics.rows_acknowledged``), read without touching the spool."""
        return self._memory_out

    def metrics(self) -> WriterMetrics:
        """A snapshot of the writer's figures."""
        memory_depth = len(self._memory)
        oldest_age = 0.0
        if memory_depth and self._enqueue_times:
            oldest_age = max(0.0, time.monotonic() - self._enqueue_times[0][1])
        return WriterMetrics(
            queue_depth=memory_depth + self._spooled,
            rows_written=self._rows_written,
            batches_written=self._batches_written,
            last_batch_latency_s=self._last_batch_latency_s,
            write_failures=self._write_failures,
            rows_rejected=self._rows_rejected,
            failing=self._failing_since is not None,
            memory_depth=memory_depth,
            spool_depth=self._spooled,
            spool_fill_ratio=0.0 if self._spool is None else self._spool.fill_ratio(),
            rows_received=self._rows_received,
            rows_compressed_away=self._rows_received - self._memory_in,
            rows_acknowledged=self._memory_out,
            rows_spooled=self._rows_spooled,
            max_batch_latency_s=self._max_batch_latency_s,
            oldest_queued_age_s=oldest_age,
        )

    # --- lifecycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Write batches until ``stop()``; run it once, typically as a task.

        Returns at once if ``stop()`` already ran (or is running) the loop itself, which it does
        when called before this task got to start.
        """
        if self._stop_requested and self._state is not _State.NEW:
            await self._finished.wait()
            return
        if self._state is not _State.NEW:
            raise HistorianWriterError("the historian writer was already started")
        self._state = _State.RUNNING
        try:
            await self._write_loop()
        finally:
            self._state = _State.STOPPED
            self._finished.set()
            self._notify_progress()

    async def flush(self) -> None:
        """Return once every sample enqueued before this call is stored (or refused for good).

        Samples held by compression are not flushed (they may still prove redundant); waits
        through a database outage: wrap it in a timeout to bound the wait.
        """
        target = self._enqueued
        while self._done < target:
            if self._state is _State.STOPPED:
                raise HistorianWriterError(
                    f"the historian writer has stopped with {self._depth()} sample(s) unwritten"
                )
            self._flush_target = max(self._flush_target, target)
            self._wake.set()
            await self._progress.wait()

    async def stop(self, timeout_s: float | None = None) -> None:
        """Write everything queued (and held by compression), then end ``run()``.

        Refuses further samples. If the queue cannot be written within ``timeout_s`` (the
        database is down), moves what it can to the spool, gives up and raises
        HistorianWriterError saying how many samples were not written.
        """
        if not self._stop_requested and self._compressor is not None:
            self._queue(self._compressor.flush())
        self._stop_requested = True
        self._wake.set()
        self._stop_wake.set()
        if self._state is _State.NEW:
            self._own_task = asyncio.create_task(self.run(), name="historian-writer")
        try:
            async with asyncio.timeout(timeout_s):
                await self._finished.wait()
        except TimeoutError as err:
            self._abandon = True
            self._wake.set()
            self._stop_wake.set()
            raise HistorianWriterError(
                f"the historian writer gave up after {timeout_s} s with "
                f"{self._depth()} sample(s) not written"
            ) from err
        if self._own_task is not None:
            await self._own_task
        if self._depth():
            raise HistorianWriterError(
                f"the historian writer stopped with {self._depth()} sample(s) not written"
            )

    def _depth(self) -> int:
        return len(self._memory) + self._spooled

    # --- the loop ---------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        attempt: _Attempt | None = None
        retry_delay = self._retry_initial_s
        try:
            while not self._abandon:
                if attempt is None:
                    if self._memory_over_limit():
                        await self._spill(keep=self._memory_limit // 2)
                    if not await self._wait_for_batch():
                        return
                    attempt = await self._next_attempt()
                if await self._try_write(attempt):
                    attempt = None
                    retry_delay = self._retry_initial_s
                    continue
                if self._spool is not None and attempt.source is _Source.MEMORY:
                    # The batch itself goes to the spool: the next attempt reads it from there.
                    attempt = None
                await self._wait_for_retry(retry_delay)
                retry_delay = min(retry_delay * 2, self._retry_max_s)
        finally:
            # Stopping (or abandoned) while the database is away: keep what memory holds.
            if self._spool is not None and self._memory and self._failing_since is not None:
                await self._spill(keep=0)

    def _memory_over_limit(self) -> bool:
        return self._spool is not None and len(self._memory) > self._memory_limit

    async def _wait_for_batch(self) -> bool:
        """Wait until a batch is due; False when stopping with nothing left to write."""
        while not self._abandon:
            depth = len(self._memory)
            timeout: float | None = None
            if self._spooled:
                return True
            if depth == 0:
                if self._stop_requested:
                    return False
            elif (
                depth >= self._max_batch
                or self._stop_requested
                or self._done < self._flush_target  # a flush() is waiting
            ):
                return True
            else:
                timeout = self._enqueue_times[0][1] + self._max_delay_s - time.monotonic()
                if timeout <= 0:
                    return True
            self._wake.clear()
            await _wait_event(self._wake, timeout)
        return False

    async def _next_attempt(self) -> _Attempt:
        if self._spool is not None and self._spooled:
            prefetched, self._prefetched = self._prefetched, None
            if prefetched is not None:
                batch = await prefetched
            else:
                batch = await asyncio.to_thread(self._spool.peek, self._max_batch)
            return _Attempt(batch, len(batch), _Source.SPOOL)
        batch = self._memory.peek(self._max_batch)
        return _Attempt(batch, len(batch), _Source.MEMORY)

    async def _wait_for_retry(self, delay_s: float) -> None:
        """Wait ``delay_s`` before the next attempt, spooling what arrives meanwhile.

        Samples go to the spool once a batch of them is full or the oldest has waited
        ``max_delay_s``, so none waits unacknowledged longer than that during an outage.
        """
        deadline = time.monotonic() + delay_s
        spooling = self._spool is not None
        while not self._abandon and not self._stop_requested:
            if spooling and self._memory:
                full = len(self._memory) >= self._max_batch
                aged = time.monotonic() - self._enqueue_times[0][1] >= self._max_delay_s
                if full or aged:
                    await self._spill(keep=0)
                    # A spool that refused (full, disk error) is tried again after the delay.
                    spooling = not self._memory
                    continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if spooling and self._memory:
                aged_at = self._enqueue_times[0][1] + self._max_delay_s - time.monotonic()
                remaining = min(remaining, max(aged_at, 0.0))
            self._wake.clear()
            await _wait_event(self._wake, remaining)
        if not self._abandon:
            # Stopping: try once more at once rather than after the full delay.
            await _wait_event(self._stop_wake, min(delay_s, self._retry_initial_s))
            self._stop_wake.clear()

    async def _spill(self, *, keep: int) -> None:
        """Move the oldest samples in memory to the spool, one fsync per batch, keeping ``keep``."""
        spool = self._spool
        assert spool is not None
        while len(self._memory) > keep:
            count = min(self._max_batch, len(self._memory) - keep)
            batch = self._memory.peek(count)
            try:
                await asyncio.to_thread(spool.append, batch)
            except SpoolError as err:
                if not self._spool_failing:
                    self._spool_failing = True
                    _log.error(
                        "historian spool refused %d sample(s); keeping %d in memory: %s",
                        count,
                        len(self._memory),
                        _one_line(err),
                    )
                return
            if self._spool_failing:
                self._spool_failing = False
                _log.info("historian spool accepts samples again")
            self._memory.drop(count)
            self._spooled += count
            self._rows_spooled += count
            self._left_memory(count)

    async def _try_write(self, attempt: _Attempt) -> bool:
        """Write one batch; True when it is done with (stored, or refused for good)."""
        if attempt.source is _Source.SPOOL and self._spooled > attempt.consumed:
            # Replay reads the next spooled batch while this one is written: reading and
            # decoding it is as slow as writing it, and they use different files.
            assert self._spool is not None
            self._prefetched = asyncio.ensure_future(
                asyncio.to_thread(self._spool.peek, self._max_batch, attempt.consumed)
            )
        while attempt.batch:
            started = time.monotonic()
            try:
                await asyncio.to_thread(self._write, attempt.batch)
                if attempt.source is _Source.SPOOL:
                    # Dropped once written: a crash in between replays the batch on restart,
                    # and the store ignores rows it has.
                    await self._drop_spooled(attempt.consumed)
            except InvalidSamplesError as err:
                kept = _without(attempt.batch, err.rejected)
                if len(kept) == len(attempt.batch):
                    self._discard_prefetch()
                    self._record_failure(err)
                    return False
                dropped = len(attempt.batch) - len(kept)
                self._rows_rejected += dropped
                _log.error("historian dropped %d sample(s) it cannot store: %s", dropped, err)
                attempt.batch = kept
                continue
            except Exception as err:  # any failure of the store: keep the batch and retry it
                self._discard_prefetch()
                self._record_failure(err)
                return False
            latency = time.monotonic() - started
            self._rows_written += len(attempt.batch)
            self._batches_written += 1
            self._last_batch_latency_s = latency
            self._max_batch_latency_s = max(self._max_batch_latency_s, latency)
            break
        if attempt.source is _Source.SPOOL and not attempt.batch:
            # Every sample of it was refused: it still leaves the spool.
            await self._drop_spooled(attempt.consumed)
        self._complete(attempt)
        return True

    def _discard_prefetch(self) -> None:
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None:
            # Read again on the next attempt; retrieve its outcome so that none is left unread.
            prefetched.add_done_callback(_ignore_outcome)

    async def _drop_spooled(self, count: int) -> None:
        """Drop the oldest ``count`` samples from the spool once the next batch has been read."""
        assert self._spool is not None
        prefetched = self._prefetched
        if prefetched is not None:
            # The next batch is read by skipping this one: dropping this one first would make
            # that read skip a batch never written, which the next drop would then lose.
            await asyncio.wait({prefetched})
        await asyncio.to_thread(self._spool.drop, count)

    def _write(self, batch: list[Sample]) -> None:
        self._store.write_samples(batch)
        if self._on_written is not None:
            try:
                self._on_written(batch)
            except Exception as err:
                # The batch is stored: a failing observer must not make the writer store it again.
                _log.error("historian on_written callback failed: %s", _one_line(err))

    def _complete(self, attempt: _Attempt) -> None:
        if attempt.source is _Source.SPOOL:
            self._spooled -= attempt.consumed
        else:
            self._memory.drop(attempt.consumed)
            self._left_memory(attempt.consumed)
        self._done += attempt.consumed
        if self._failing_since is not None:
            _log.info(
                "historian writes recovered after %d failed attempt(s) over %.1f s",
                self._outage_failures,
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
            self._outage_failures = 0
        self._notify_progress()

    def _left_memory(self, count: int) -> None:
        self._memory_out += count
        while self._enqueue_times and self._enqueue_times[0][0] <= self._memory_out:
            self._enqueue_times.popleft()

    def _record_failure(self, err: Exception) -> None:
        self._write_failures += 1
        self._outage_failures += 1
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            where = "spooling and retrying" if self._spool is not None else "retrying"
            _log.warning(
                "historian write failed, keeping %d sample(s) queued, %s: %s",
                self._depth(),
                where,
                _one_line(err),
            )

    def _notify_progress(self) -> None:
        # Wake every flush() waiting on the current event; later waiters get a fresh one.
        event, self._progress = self._progress, asyncio.Event()
        event.set()


async def _wait_event(event: asyncio.Event, seconds: float | None) -> None:
    """Wait until ``event`` is set or ``seconds`` pass (forever if None)."""
    if seconds is None:
        await event.wait()
        return
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass


def _ignore_outcome(future: asyncio.Future[list[Sample]]) -> None:
    if not future.cancelled():
        future.exception()


def _without(batch: list[Sample], rejected: tuple[Rejection, ...]) -> list[Sample]:
    refused = {id(rejection.sample) for rejection in rejected}
    return [sample for sample in batch if id(sample) not in refused]


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"
