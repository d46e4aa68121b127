"""DiskSpool: exact round trips, order across reopen, SIGKILL safety, size limit, and replay."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from controlcenter.model import Quality, Sample, Severity, Substatus
from historian import (
    DiskSpool,
    HistorianClosedError,
    HistorianWriter,
    HistorianWriterError,
    SpoolError,
    SpoolFullError,
)
from tests.historian.historian_support import (
    LEVEL,
    MODE,
    RUNNING,
    STARTS,
    T0,
    TAGS,
    Database,
    level_samples,
    sample,
    wait_until,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "samples.spool"


def _every_kind_of_sample() -> list[Sample]:
    bad = Quality.bad(Substatus.COMM_FAILURE, "rtu1 not answering")
    uncertain = Quality.uncertain(Substatus.LAST_USABLE, "held value é✓")
    plus_two = timezone(timedelta(hours=2))
    values: list[float | int | bool | str | None] = [
        True,
        False,
        0,
        -(2**63),
        2**63 - 1,
        2**80,
        -(2**70),
        0.1,
        -0.0,
        math.inf,
        -math.inf,
        5e-324,
        "",
        "auto",
        "42",
        " 1e5",
        "x" * 10_000,
    ]
    result = [
        sample(LEVEL, value, T0 + timedelta(microseconds=i)) for i, value in enumerate(values)
    ]
    result += [
        Sample(LEVEL, None, bad, T0, T0 + timedelta(microseconds=999_999)),
        Sample(STARTS, 7, uncertain, T0, T0),
        Sample(MODE, "manual", Quality(Severity.GOOD, Substatus.LOCAL_OVERRIDE, "hand"), T0, T0),
        Sample(RUNNING, True, Quality.good(), T0.astimezone(plus_two), T0.astimezone(plus_two)),
        Sample(LEVEL, 1.5, Quality.good(), datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC), T0),
    ]
    return result


def _same(a: Sample, b: Sample) -> bool:
    """Equal, and the value of the same Python type (1 == 1.0 == True otherwise)."""
    return a == b and type(a.value) is type(b.value)


def test_every_value_and_quality_round_trips_exactly(spool_path: Path) -> None:
    original = _every_kind_of_sample()
    with DiskSpool(spool_path) as spool:
        spool.append(original)
        back = spool.peek(len(original) + 5)
    assert len(back) == len(original)
    for ours, theirs in zip(original, back, strict=True):
        assert _same(ours, theirs), (ours, theirs)
        assert theirs.source_time.utcoffset() == timedelta(0)
    nan = sample(LEVEL, math.nan, T0, Quality.bad(Substatus.SENSOR_FAILURE, "nan"))
    with DiskSpool(spool_path) as spool:
        spool.drop(len(original))
        spool.append([nan])
        value = spool.peek(1)[0].value
    assert isinstance(value, float) and math.isnan(value)


def test_a_naive_time_comes_back_naive_for_the_store_to_refuse(spool_path: Path) -> None:
    naive = datetime(2024, 3, 1, 12, 0, 0, 654321)
    with DiskSpool(spool_path) as spool:
        spool.append([Sample(LEVEL, 1.0, Quality.good(), naive, naive)])
        back = spool.peek(1)[0]
    assert back.source_time == naive and back.source_time.tzinfo is None


def test_order_and_drops_survive_reopening(spool_path: Path) -> None:
    samples = level_samples(300)
    with DiskSpool(spool_path) as spool:
        for start in range(0, 300, 7):
            spool.append(samples[start : start + 7])
        spool.drop(120)
        assert spool.peek(3) == samples[120:123]
    with DiskSpool(spool_path) as spool:
        assert len(spool) == 180
        assert spool.peek(1000) == samples[120:]
        spool.drop(180)
        assert len(spool) == 0 and spool.peek(10) == []
        spool.append(samples[:2])  # keys restart after the spool emptied: order still holds
        spool.append(samples[2:4])
        assert spool.peek(10) == samples[:4]


def test_drop_refuses_more_than_it_holds(spool_path: Path) -> None:
    with DiskSpool(spool_path) as spool:
        spool.append(level_samples(3))
        with pytest.raises(ValueError, match="cannot drop 4 of 3"):
            spool.drop(4)
        assert len(spool) == 3


def test_a_closed_spool_says_so(spool_path: Path) -> None:
    spool = DiskSpool(spool_path)
    spool.close()
    spool.close()
    with pytest.raises(HistorianClosedError):
        spool.append(level_samples(1))
    with pytest.raises(HistorianClosedError):
        spool.peek(1)


def test_a_file_that_is_not_a_spool_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE samples (x)")
    conn.close()
    with pytest.raises(SpoolError, match="not a sample spool"):
        DiskSpool(other)
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(SpoolError, match="format 99"):
        DiskSpool(newer)


def test_the_file_is_fully_synchronous_in_wal_mode(spool_path: Path) -> None:
    with DiskSpool(spool_path) as spool:
        spool.append(level_samples(1))
    conn = sqlite3.connect(spool_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


_CHILD = textwrap.dedent(
    """
    import sys
    from historian import DiskSpool
    from tests.historian.historian_support import level_samples

    samples = level_samples(int(sys.argv[2]))
    spool = DiskSpool(sys.argv[1])
    done = 0
    while done < len(samples):
        batch = samples[done : done + 1 + done % 5]
        spool.append(batch)
        done += len(batch)
        print(done, flush=True)
    """
)


def test_every_acknowledged_sample_survives_sigkill_exactly_once_in_order(
    spool_path: Path,
) -> None:
    total, kill_after = 20_000, 150
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(spool_path), str(total)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged = 0
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 30
        while acknowledged < kill_after:
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"the child ended early: {child.stderr and child.stderr.read()}")
            acknowledged = int(line)
            assert time.monotonic() < deadline, "the child appends too slowly"
        os.kill(child.pid, signal.SIGKILL)
        # Lines already printed were acknowledged too: read them up to the end of the pipe.
        rest = child.stdout.read()
        acknowledged = max([acknowledged, *(int(n) for n in rest.split())])
    finally:
        child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert acknowledged < total, "the child finished before it was killed"

    with DiskSpool(spool_path) as spool:
        held = spool.peek(total)
        assert len(spool) == len(held)
    assert len(held) >= acknowledged
    # Nothing lost, nothing twice, nothing reordered: the spool holds a prefix of the sequence
    # (possibly including a batch whose acknowledgement the kill cut off).
    assert held == level_samples(len(held))


def test_a_warning_well_before_full_then_a_typed_refusal(
    spool_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    samples = level_samples(100)
    with (
        caplog.at_level(logging.WARNING, logger="historian.spool"),
        DiskSpool(spool_path, max_rows=50, warn_fraction=0.8) as spool,
    ):
        spool.append(samples[:39])
        assert not caplog.records
        spool.append(samples[39:40])
        spool.append(samples[40:45])
        assert len(caplog.records) == 1, "one warning when crossing 80 %, not per append"
        assert "80%" in caplog.records[0].getMessage()
        spool.append(samples[45:50])
        with pytest.raises(SpoolFullError, match="full"):
            spool.append(samples[50:51])
        assert len(spool) == 50 and spool.peek(100) == samples[:50]
        assert spool.metrics().fill_ratio == 1.0

        spool.drop(30)  # drained well below the threshold: the warning re-arms
        spool.append(samples[50:70])
        assert len(caplog.records) == 2


def test_the_byte_limit_refuses_a_whole_append_and_keeps_what_was_there(
    spool_path: Path,
) -> None:
    with DiskSpool(spool_path, max_bytes=64 * 1024) as spool:
        stored = 0
        batches = [level_samples(100, start=T0 + timedelta(hours=i)) for i in range(100)]
        with pytest.raises(SpoolFullError, match="bytes"):
            for batch in batches:
                spool.append(batch)
                stored += 1
        assert 0 < stored < len(batches)
        metrics = spool.metrics()
        assert metrics.depth == stored * 100 == len(spool)
        assert 0 < metrics.size_bytes <= 64 * 1024
        assert spool.peek(metrics.depth) == [s for b in batches[:stored] for s in b]
        spool.drop(len(spool))
        assert spool.metrics().size_bytes < metrics.size_bytes


def test_settings_are_checked(spool_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        DiskSpool(spool_path, max_bytes=0)
    with pytest.raises(ValueError, match="max_rows"):
        DiskSpool(spool_path, max_rows=0)
    with pytest.raises(ValueError, match="warn_fraction"):
        DiskSpool(spool_path, warn_fraction=1.0)


# --- with the writer and a real database --------------------------------------------------------


async def test_the_writer_spools_through_an_outage_and_a_restart_storing_each_sample_once(
    database: Database, spool_path: Path
) -> None:
    store = database.open()
    store.ensure_tags(TAGS)
    before, during, after = (
        level_samples(50),
        level_samples(70, start=T0 + timedelta(hours=1)),
        level_samples(30, start=T0 + timedelta(hours=2)),
    )

    def new_writer(spool: DiskSpool) -> HistorianWriter:
        return HistorianWriter(
            store,
            spool=spool,
            max_batch=40,
            max_delay_s=0.05,
            retry_initial_s=0.01,
            retry_max_s=0.05,
        )

    spool = DiskSpool(spool_path)
    writer = new_writer(spool)
    task = asyncio.create_task(writer.run())
    writer.enqueue(before)
    await asyncio.wait_for(writer.flush(), timeout=10)
    database.break_samples_table()
    writer.enqueue(during)
    # The process stops while the database is away: the samples stay in the spool.
    with pytest.raises(HistorianWriterError, match="70 sample"):
        await writer.stop(timeout_s=0.2)
    await asyncio.wait_for(task, timeout=5)
    spool.close()

    database.repair_samples_table()
    spool = DiskSpool(spool_path)
    assert len(spool) == 70
    # The previous run committed a batch but died before dropping it from the spool: the
    # replay must not store it twice (the store ignores a (tag, time) it already has).
    store.write_samples(during[:40])
    writer = new_writer(spool)
    task = asyncio.create_task(writer.run())
    writer.enqueue(after)
    await asyncio.wait_for(writer.flush(), timeout=10)
    await writer.stop()
    await task
    assert len(spool) == 0
    spool.close()

    stored = store.read_raw(LEVEL)
    assert [(s.source_time, s.value) for s in stored] == [
        (s.source_time, s.value) for s in [*during, *after]
    ]
    store.close()


class SlowReadAheadSpool(DiskSpool):
    """A spool whose read of the next batch (past the one being written) is the slower job."""

    def peek(self, limit: int, skip: int = 0) -> list[Sample]:
        if skip:
            time.sleep(0.1)
        return super().peek(limit, skip)


async def test_a_replay_that_reads_ahead_slowly_stores_every_batch_once(
    sqlite_database: Database, spool_path: Path
) -> None:
    store = sqlite_database.open()
    store.ensure_tags(TAGS)
    expected = level_samples(2000)
    spool = SlowReadAheadSpool(spool_path)
    for first in range(0, len(expected), 500):
        spool.append(expected[first : first + 500])

    # Each batch is written and could be dropped before the next one is read past it.
    writer = HistorianWriter(store, spool=spool, max_batch=500)
    task = asyncio.create_task(writer.run())
    await asyncio.wait_for(writer.flush(), timeout=30)
    await writer.stop()
    await task

    assert len(spool) == 0
    assert writer.metrics().rows_written == len(expected)
    stored = store.read_raw(LEVEL)
    assert [s.source_time for s in stored] == [s.source_time for s in expected]
    spool.close()
    store.close()


async def test_a_full_spool_keeps_samples_in_memory_with_one_error_line(
    sqlite_database: Database, spool_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = sqlite_database.open()
    store.ensure_tags(TAGS)
    with DiskSpool(spool_path, max_rows=10) as spool:
        writer = HistorianWriter(
            store,
            spool=spool,
            max_batch=10,
            max_delay_s=0.02,
            retry_initial_s=0.01,
            retry_max_s=0.05,
        )
        task = asyncio.create_task(writer.run())
        sqlite_database.break_samples_table()
        with caplog.at_level(logging.ERROR, logger="historian.writer"):
            writer.enqueue(level_samples(10))
            await wait_until(lambda: writer.metrics().spool_depth == 10, what="a full spool")
            writer.enqueue(level_samples(25, start=T0 + timedelta(hours=1)))
            await wait_until(lambda: bool(caplog.records), what="the spool's refusal")
        assert writer.metrics().memory_depth == 25  # not lost: held, unacknowledged
        assert caplog.records[0].getMessage().startswith("historian spool refused")
        sqlite_database.repair_samples_table()
        await asyncio.wait_for(writer.flush(), timeout=10)
        await writer.stop(timeout_s=10)
        await task
    assert len(store.read_raw(LEVEL)) == 35
    store.close()
