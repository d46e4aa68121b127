"""HistorianWriter: batching by size and time, flush and stop, and riding out a failing database."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime, timedelta

import pytest

from controlcenter.model import CommandResult, Event, Quality, Sample, Substatus
from historian import HistorianWriter, HistorianWriterError, SqlHistorian
from historian.compression import CompressionSettings, Compressor
from tests.historian.historian_support import (
    LEVEL,
    MODE,
    STARTS,
    T0,
    TAGS,
    Database,
    level_samples,
    sample,
    wait_until,
)


class RecordingStore:
    """A real store that remembers the size of every batch it was asked to write."""

    def __init__(self, inner: SqlHistorian) -> None:
        self.inner = inner
        self.batch_sizes: list[int] = []
        self.threads: set[int] = set()

    def write_samples(self, samples: Sequence[Sample]) -> None:
        self.threads.add(threading.get_ident())
        self.inner.write_samples(samples)
        self.batch_sizes.append(len(samples))

    def read_raw(
        self, tag: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[Sample]:
        return self.inner.read_raw(tag, start, end)

    def read_commands(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[CommandResult]:
        return self.inner.read_commands(start, end)

    def read_events(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[Event]:
        return self.inner.read_events(start, end)

    def journal_command(self, result: CommandResult) -> None:
        self.inner.journal_command(result)

    def journal_event(self, event: Event) -> None:
        self.inner.journal_event(event)


class GatedStore(RecordingStore):
    """Holds every write until the test opens the gate (a database that is slow to commit)."""

    def __init__(self, inner: SqlHistorian) -> None:
        super().__init__(inner)
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def write_samples(self, samples: Sequence[Sample]) -> None:
        self.waiting.set()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("gate never opened")
        super().write_samples(samples)


@pytest.fixture
def sqlite_store(sqlite_database: Database) -> Iterator[SqlHistorian]:
    store = sqlite_database.open()
    store.ensure_tags(TAGS)
    yield store
    store.close()


@pytest.fixture
def recording(sqlite_store: SqlHistorian) -> RecordingStore:
    return RecordingStore(sqlite_store)


@pytest.fixture
async def running_writers() -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run-tasks started by a test; cancelled at the end if the test left them running."""
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def start(writer: HistorianWriter, tasks: list[asyncio.Task[None]]) -> asyncio.Task[None]:
    task = asyncio.create_task(writer.run())
    tasks.append(task)
    return task


async def test_batches_are_cut_by_size(
    recording: RecordingStore, running_writers: list[asyncio.Task[None]]
) -> None:
    writer = HistorianWriter(recording, max_batch=100, max_delay_s=60)
    start(writer, running_writers)

    writer.enqueue(level_samples(250))
    await wait_until(lambda: writer.metrics().rows_written == 200, what="two full batches")

    assert recording.batch_sizes == [100, 100]
    assert writer.metrics().queue_depth == 50  # the rest waits for size or age
    await writer.stop()
    assert recording.batch_sizes == [100, 100, 50]
    assert len(recording.read_raw(LEVEL)) == 250


async def test_a_partial_batch_is_written_within_max_delay(
    recording: RecordingStore, running_writers: list[asyncio.Task[None]]
) -> None:
    writer = HistorianWriter(recording, max_batch=5000, max_delay_s=0.2)
    start(writer, running_writers)

    writer.enqueue(level_samples(3))
    assert writer.metrics().rows_written == 0
    waited = await wait_until(lambda: len(recording.read_raw(LEVEL)) == 3, what="the batch")

    assert 0.15 <= waited < 1.0
    assert recording.batch_sizes == [3]
    assert threading.get_ident() not in recording.threads  # written off the event loop
    await writer.stop()


async def test_stop_writes_everything_queued_then_ends_run(
    recording: RecordingStore, running_writers: list[asyncio.Task[None]]
) -> None:
    writer = HistorianWriter(recording, max_batch=7, max_delay_s=60)
    task = start(writer, running_writers)
    writer.enqueue(level_samples(10))
    writer.enqueue(level_samples(10, start=T0 + timedelta(hours=1)))

    await writer.stop()

    assert task.done()
    assert len(recording.read_raw(LEVEL)) == 20
    assert sum(recording.batch_sizes) == 20
    assert max(recording.batch_sizes) <= 7
    assert writer.metrics().queue_depth == 0
    with pytest.raises(HistorianWriterError, match="stopping"):
        writer.enqueue(level_samples(1))


async def test_stop_without_run_still_writes_the_queue(recording: RecordingStore) -> None:
    writer = HistorianWriter(recording, max_delay_s=60)
    writer.enqueue(level_samples(5))

    await writer.stop()

    assert len(recording.read_raw(LEVEL)) == 5


async def test_flush_returns_once_everything_enqueued_is_stored(
    recording: RecordingStore, running_writers: list[asyncio.Task[None]]
) -> None:
    writer = HistorianWriter(recording, max_batch=1000, max_delay_s=60)
    start(writer, running_writers)
    writer.enqueue(level_samples(30))

    await asyncio.wait_for(writer.flush(), timeout=10)

    assert len(recording.read_raw(LEVEL)) == 30
    metrics = writer.metrics()
    assert (metrics.rows_written, metrics.batches_written, metrics.queue_depth) == (30, 1, 0)
    assert metrics.last_batch_latency_s > 0
    await writer.flush()  # nothing pending: returns at once
    await writer.stop()


async def test_the_event_loop_keeps_running_while_a_batch_is_written(
    sqlite_store: SqlHistorian, running_writers: list[asyncio.Task[None]]
) -> None:
    gated = GatedStore(sqlite_store)
    writer = HistorianWriter(gated, max_batch=10, max_delay_s=60)
    start(writer, running_writers)

    writer.enqueue(level_samples(10))
    await wait_until(gated.waiting.is_set, what="the write to start")
    # The database is "busy": the loop still accepts samples and reports the growing queue.
    writer.enqueue(level_samples(5, start=T0 + timedelta(hours=1)))
    assert writer.metrics().queue_depth == 15
    gated.gate.set()

    await asyncio.wait_for(writer.stop(), timeout=10)
    assert len(sqlite_store.read_raw(LEVEL)) == 15


async def test_samples_the_store_refuses_are_dropped_and_the_rest_written(
    recording: RecordingStore,
    running_writers: list[asyncio.Task[None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = HistorianWriter(recording, max_batch=100, max_delay_s=60)
    start(writer, running_writers)
    good = level_samples(4)
    stranger = sample("no.such.tag", 1.0, T0)

    with caplog.at_level(logging.ERROR, logger="historian.writer"):
        writer.enqueue([*good[:2], stranger, *good[2:]])
        await asyncio.wait_for(writer.flush(), timeout=10)

    assert recording.read_raw(LEVEL) == good
    assert writer.metrics().rows_rejected == 1
    assert writer.metrics().rows_written == 4
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "no.such.tag" in caplog.records[0].getMessage()
    await writer.stop()


async def test_a_failing_database_keeps_the_batch_and_writes_it_once_after_recovery(
    database: Database,
    running_writers: list[asyncio.Task[None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = database.open()
    store.ensure_tags(TAGS)
    writer = HistorianWriter(
        store, max_batch=40, max_delay_s=0.05, retry_initial_s=0.01, retry_max_s=0.05
    )
    start(writer, running_writers)
    first, during = level_samples(100), level_samples(60, start=T0 + timedelta(hours=1))
    writer.enqueue(first[:50])
    await wait_until(lambda: writer.metrics().rows_written == 50, what="writes before the outage")

    with caplog.at_level(logging.INFO, logger="historian.writer"):
        database.break_samples_table()  # a real database failure: the samples table is gone
        writer.enqueue(first[50:])
        await wait_until(lambda: writer.metrics().write_failures >= 3, what="retries")
        writer.enqueue(during)
        assert writer.metrics().failing
        assert writer.metrics().queue_depth == 110
        database.repair_samples_table()
        await asyncio.wait_for(writer.flush(), timeout=10)

    stored = store.read_raw(LEVEL)
    assert [s.source_time for s in stored] == [s.source_time for s in [*first[50:], *during]]
    assert writer.metrics().rows_written == 50 + 110
    assert not writer.metrics().failing
    ours = [r for r in caplog.records if r.name == "historian.writer"]
    messages = [(r.levelno, r.getMessage()) for r in ours]
    assert len(messages) == 2, messages  # one line when it fails, one when it recovers
    assert messages[0][0] == logging.WARNING and "samples" in messages[0][1]
    assert messages[1][0] == logging.INFO and "recovered" in messages[1][1]
    assert all("\n" not in text for _, text in messages)
    assert all(r.exc_info is None for r in ours)
    await writer.stop()
    store.close()


async def test_stop_gives_up_after_its_timeout_and_says_what_was_not_written(
    sqlite_database: Database, running_writers: list[asyncio.Task[None]]
) -> None:
    store = sqlite_database.open()
    store.ensure_tags(TAGS)
    writer = HistorianWriter(store, max_delay_s=0.05, retry_initial_s=0.01, retry_max_s=0.05)
    task = start(writer, running_writers)
    sqlite_database.break_samples_table()
    writer.enqueue(level_samples(12))

    with pytest.raises(HistorianWriterError, match="12 sample"):
        await writer.stop(timeout_s=0.3)

    await asyncio.wait_for(task, timeout=5)  # run() ends once it notices
    assert writer.metrics().queue_depth == 12
    with pytest.raises(HistorianWriterError, match="stopped"):
        await writer.flush()
    store.close()


def test_writer_settings_are_checked(recording: RecordingStore) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        HistorianWriter(recording, max_batch=0)
    with pytest.raises(ValueError, match="max_delay_s"):
        HistorianWriter(recording, max_delay_s=0)
    with pytest.raises(ValueError, match="retry"):
        HistorianWriter(recording, retry_initial_s=2, retry_max_s=1)


async def test_compression_applies_per_tag_and_other_tags_stay_raw(
    recording: RecordingStore, running_writers: list[asyncio.Task[None]]
) -> None:
    # Exception deviation of 1 % of the 0..8 m span: 0.08 m. The counter has no settings: raw.
    settings = {LEVEL: CompressionSettings("exception", 1.0, True, max_interval_s=3600.0)}
    compressor = Compressor.for_tags(settings, TAGS)
    writer = HistorianWriter(recording, max_delay_s=60, compressor=compressor)
    start(writer, running_writers)
    flat = [sample(LEVEL, 2.0 + 0.01 * (i % 3), T0 + timedelta(seconds=i)) for i in range(100)]
    step = sample(LEVEL, 3.0, T0 + timedelta(seconds=100))
    bad = sample(
        LEVEL,
        3.0,
        T0 + timedelta(seconds=101),
        Quality.bad(Substatus.COMM_FAILURE, "rtu1 silent"),
    )
    counts = [sample(STARTS, 7, T0 + timedelta(seconds=i)) for i in range(100)]

    writer.enqueue([*flat, *counts])
    writer.enqueue([step, bad])
    await writer.stop()

    stored = recording.read_raw(LEVEL)
    # The first value, the last one held before the step, the step, and the quality change.
    assert [(s.source_time, s.value) for s in stored] == [
        (flat[0].source_time, flat[0].value),
        (flat[-1].source_time, flat[-1].value),
        (step.source_time, 3.0),
        (bad.source_time, 3.0),
    ]
    assert not stored[-1].quality.is_good
    assert len(recording.read_raw(STARTS)) == 100  # raw: every sample, even repeats
    metrics = writer.metrics()
    assert metrics.rows_received == 202
    assert metrics.rows_compressed_away == 202 - 104
    assert metrics.rows_written == 104


async def test_stop_stores_the_values_compression_still_holds(
    recording: RecordingStore,
) -> None:
    settings = {LEVEL: CompressionSettings("swinging_door", 0.1, False, 0.1, False)}
    writer = HistorianWriter(recording, compressor=Compressor.for_tags(settings, TAGS))
    ramp = [sample(LEVEL, 0.5 * i, T0 + timedelta(seconds=i)) for i in range(50)]

    writer.enqueue(ramp)
    await writer.stop()

    # A straight ramp: only its ends are needed, and the last end was held until stop().
    assert [s.value for s in recording.read_raw(LEVEL)] == [0.0, 24.5]


async def test_metrics_report_depth_latency_and_acknowledgement(
    recording: RecordingStore, running_writers: list[asyncio.Task[None]]
) -> None:
    written: list[int] = []
    writer = HistorianWriter(
        recording, max_batch=50, max_delay_s=60, on_written=lambda b: written.append(len(b))
    )
    writer.enqueue(level_samples(120))
    before = writer.metrics()
    start(writer, running_writers)
    await wait_until(lambda: writer.metrics().rows_written == 100, what="two batches")
    during = writer.metrics()
    await writer.stop()
    after = writer.metrics()

    assert (before.queue_depth, before.memory_depth, before.rows_acknowledged) == (120, 120, 0)
    assert before.oldest_queued_age_s >= 0.0
    assert (during.rows_acknowledged, during.memory_depth, during.spool_depth) == (100, 20, 0)
    assert (after.rows_acknowledged, after.queue_depth, after.batches_written) == (120, 0, 3)
    assert 0 < after.last_batch_latency_s <= after.max_batch_latency_s
    assert written == [50, 50, 20]  # the rollup hook saw each committed batch


@pytest.mark.parametrize("text", ["auto\x00", "\ud800auto"])
async def test_text_no_database_stores_is_rejected_alone_and_the_rest_written(
    store: SqlHistorian, running_writers: list[asyncio.Task[None]], text: str
) -> None:
    # On PostgreSQL a NUL used to fail the whole batch, retried for ever behind it.
    writer = HistorianWriter(store, max_batch=100, max_delay_s=60)
    start(writer, running_writers)
    good = level_samples(3)
    poison = sample(MODE, text, T0)

    writer.enqueue([good[0], poison, *good[1:]])
    await asyncio.wait_for(writer.flush(), timeout=10)

    assert len(store.read_raw(LEVEL)) == 3
    assert store.read_raw(MODE) == []
    metrics = writer.metrics()
    assert metrics.rows_rejected == 1
    assert metrics.write_failures == 0
