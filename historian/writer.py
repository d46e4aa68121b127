"""``HistorianWriter``: batches samples from the event loop into the store, off the loop.

The bus calls ``enqueue`` on the event loop; ``run`` gathers batches by size (``max_batch``) or
by age (the oldest queued sample waits at most ``max_delay_s`` of wall time) and writes each
batch in one transaction on a worker thread, so acquisition never waits for the database.

A batch that fails to write stays at the head of the queue and is retried with exponential
backoff: one log line when writing starts failing, one when it recovers. Samples the store
refuses for good (unknown tag, value of the wrong type) are dropped with one error line, since
retrying them can never succeed. Samples are only removed from the buffer once stored, so
replacing ``MemoryBuffer`` with a crash-safe disk spool (see ``historian.buffer``) makes the
writer loss-free across restarts as well.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from controlcenter.model import Sample
from controlcenter.ports import HistoryStore
from historian.buffer import MemoryBuffer, SampleBuffer
from historian.errors import HistorianWriterError, InvalidSamplesError, Rejection

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriterMetrics:
    """A snapshot of the writer's back-pressure and throughput figures."""

    queue_depth: int
    """Samples waiting to be written, including the batch being written."""
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


class _State(Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


@dataclass(slots=True)
class _Attempt:
    """A batch being written: the samples to write and how many buffer entries they stand for."""

    batch: list[Sample]
    consumed: int


class HistorianWriter:
    """Batches samples into a ``HistoryStore`` without ever blocking the event loop.

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
        buffer: SampleBuffer | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_delay_s <= 0:
            raise ValueError(f"max_delay_s must be positive, got {max_delay_s}")
        if not 0 < retry_initial_s <= retry_max_s:
            raise ValueError("retry delays must satisfy 0 < retry_initial_s <= retry_max_s")
        self._store = store
        self._max_batch = max_batch
        self._max_delay_s = max_delay_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._buffer: SampleBuffer = MemoryBuffer() if buffer is None else buffer
        # Samples ever enqueued and ever taken off the buffer (written or refused): flush() waits
        # for the second to reach the first's value at the time of the call. A spool may hold
        # samples from a previous run: they count as enqueued, so flush() waits for them too.
        self._enqueued = len(self._buffer)
        self._done = 0
        # (running total of enqueued samples at the end of a call, wall-clock monotonic time):
        # the head entry tells how long the oldest unwritten sample has been waiting.
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
        self._rows_written = 0
        self._batches_written = 0
        self._last_batch_latency_s = 0.0
        self._write_failures = 0
        self._rows_rejected = 0
        self._failing_since: float | None = None
        self._outage_failures = 0

    # --- producer side ----------------------------------------------------------------------

    def enqueue(self, samples: Sequence[Sample]) -> None:
        """Queue samples for writing and return at once (a ``SampleListener`` for the bus)."""
        if self._stop_requested:
            raise HistorianWriterError(
                f"the historian writer is stopping: {len(samples)} sample(s) refused"
            )
        if not samples:
            return
        self._buffer.append(samples)
        self._enqueued += len(samples)
        self._enqueue_times.append((self._enqueued, time.monotonic()))
        self._wake.set()

    def metrics(self) -> WriterMetrics:
        """A snapshot of the writer's figures."""
        return WriterMetrics(
            queue_depth=len(self._buffer),
            rows_written=self._rows_written,
            batches_written=self._batches_written,
            last_batch_latency_s=self._last_batch_latency_s,
            write_failures=self._write_failures,
            rows_rejected=self._rows_rejected,
            failing=self._failing_since is not None,
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

        Waits through a database outage; wrap it in a timeout to bound the wait.
        """
        target = self._enqueued
        while self._done < target:
            if self._state is _State.STOPPED:
                raise HistorianWriterError(
                    f"the historian writer has stopped with {len(self._buffer)} sample(s) unwritten"
                )
            self._flush_target = max(self._flush_target, target)
            self._wake.set()
            await self._progress.wait()

    async def stop(self, timeout_s: float | None = None) -> None:
        """Write everything queued, then end ``run()``; refuse further samples.

        If the queue cannot be written within ``timeout_s`` (the database is down), gives up
        and raises HistorianWriterError saying how many samples were not written.
        """
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
                f"{len(self._buffer)} sample(s) not written"
            ) from err
        if self._own_task is not None:
            await self._own_task
        if len(self._buffer):
            raise HistorianWriterError(
                f"the historian writer stopped with {len(self._buffer)} sample(s) not written"
            )

    # --- the loop ---------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        attempt: _Attempt | None = None
        retry_delay = self._retry_initial_s
        while not self._abandon:
            if attempt is None:
                if not await self._wait_for_batch():
                    return
                batch = self._buffer.peek(self._max_batch)
                attempt = _Attempt(batch, len(batch))
            if await self._try_write(attempt):
                attempt = None
                retry_delay = self._retry_initial_s
                continue
            # The store-and-forward spool takes over here later: while the database is away the
            # buffer (memory now, a disk spool then) holds everything, in order.
            await _wait_event(self._stop_wake, retry_delay)
            self._stop_wake.clear()
            retry_delay = min(retry_delay * 2, self._retry_max_s)

    async def _wait_for_batch(self) -> bool:
        """Wait until a batch is due; False when stopping with nothing left to write."""
        while not self._abandon:
            depth = len(self._buffer)
            timeout: float | None = None
            if depth == 0:
                if self._stop_requested:
                    return False
            elif depth >= self._max_batch or self._stop_requested:
                return True
            elif self._done < self._flush_target or not self._enqueue_times:
                # Flush requested, or samples the buffer held from before (a spool): write now.
                return True
            else:
                timeout = self._enqueue_times[0][1] + self._max_delay_s - time.monotonic()
                if timeout <= 0:
                    return True
            self._wake.clear()
            await _wait_event(self._wake, timeout)
        return False

    async def _try_write(self, attempt: _Attempt) -> bool:
        """Write one batch; True when it is done with (stored, or refused for good)."""
        while attempt.batch:
            started = time.monotonic()
            try:
                await asyncio.to_thread(self._store.write_samples, attempt.batch)
            except InvalidSamplesError as err:
                kept = _without(attempt.batch, err.rejected)
                if len(kept) == len(attempt.batch):
                    self._record_failure(err)
                    return False
                dropped = len(attempt.batch) - len(kept)
                self._rows_rejected += dropped
                _log.error("historian dropped %d sample(s) it cannot store: %s", dropped, err)
                attempt.batch = kept
                continue
            except Exception as err:  # any failure of the store: keep the batch and retry it
                self._record_failure(err)
                return False
            self._rows_written += len(attempt.batch)
            self._batches_written += 1
            self._last_batch_latency_s = time.monotonic() - started
            break
        self._complete(attempt)
        return True

    def _complete(self, attempt: _Attempt) -> None:
        self._buffer.drop(attempt.consumed)
        self._done += attempt.consumed
        while self._enqueue_times and self._enqueue_times[0][0] <= self._done:
            self._enqueue_times.popleft()
        if self._failing_since is not None:
            _log.info(
                "historian writes recovered after %d failed attempt(s) over %.1f s",
                self._outage_failures,
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
            self._outage_failures = 0
        self._notify_progress()

    def _record_failure(self, err: Exception) -> None:
        self._write_failures += 1
        self._outage_failures += 1
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            _log.warning(
                "historian write failed, keeping %d sample(s) queued and retrying: %s",
                len(self._buffer),
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


def _without(batch: list[Sample], rejected: tuple[Rejection, ...]) -> list[Sample]:
    refused = {id(rejection.sample) for rejection in rejected}
    return [sample for sample in batch if id(sample) not in refused]


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"
