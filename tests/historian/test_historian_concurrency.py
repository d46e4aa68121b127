"""Several threads and processes on one historian: readers never block the writer."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from datetime import timedelta

from sqlalchemy import func, select

from historian import SqlHistorian
from historian.schema import samples
from tests.historian.historian_support import LEVEL, T0, TAGS, Database, level_samples

_BATCHES = 40
_BATCH = 50


def _write_batches(store: SqlHistorian) -> None:
    for batch in range(_BATCHES):
        start = T0 + timedelta(seconds=batch * _BATCH)
        store.write_samples(level_samples(_BATCH, start=start, step_ms=1000))


def test_a_writer_and_a_reader_store_on_one_file_work_concurrently(
    sqlite_database: Database,
) -> None:
    writer = sqlite_database.open()
    writer.ensure_tags(TAGS)
    reader = sqlite_database.open()
    errors: list[BaseException] = []
    counts: list[int] = []
    writing_done = threading.Event()

    def write() -> None:
        try:
            _write_batches(writer)
        except BaseException as err:
            errors.append(err)
        finally:
            writing_done.set()

    def read() -> None:
        try:
            while not writing_done.is_set():
                counts.append(len(reader.read_raw(LEVEL)))
            counts.append(len(reader.read_raw(LEVEL)))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    writer.close()
    reader.close()
    assert errors == []
    assert counts == sorted(counts)  # every read saw a committed prefix, never a rollback
    assert counts[-1] == _BATCHES * _BATCH


def test_a_long_read_transaction_does_not_block_the_writer(sqlite_database: Database) -> None:
    store = sqlite_database.open(busy_timeout_s=0.2)
    store.ensure_tags(TAGS)
    store.write_samples(level_samples(5))
    engine = sqlite_database.admin_engine()

    with engine.connect() as conn, conn.begin():
        # A reader in the middle of a transaction holds its snapshot open ...
        assert conn.execute(select(func.count()).select_from(samples)).scalar_one() == 5
        # ... while the writer commits (in rollback-journal mode this fails: database locked).
        store.write_samples(level_samples(5, start=T0 + timedelta(hours=1)))
        assert conn.execute(select(func.count()).select_from(samples)).scalar_one() == 5

    assert len(store.read_raw(LEVEL)) == 10
    engine.dispose()
    store.close()


def test_one_store_serves_many_threads(sqlite_database: Database) -> None:
    store = sqlite_database.open()
    store.ensure_tags(TAGS)
    errors: list[BaseException] = []

    def write(offset_hours: int) -> None:
        try:
            for batch in range(10):
                start = T0 + timedelta(hours=offset_hours, seconds=batch * 10)
                store.write_samples(level_samples(10, start=start, step_ms=1000))
                store.read_raw(LEVEL)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(store.read_raw(LEVEL)) == 4 * 10 * 10
    store.close()


_READER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from historian import SqlHistorian

    url, expected = sys.argv[1], int(sys.argv[2])
    deadline = time.monotonic() + 30
    with SqlHistorian(url) as store:
        seen = len(store.read_raw("water.tank1.level"))
        print("ready", seen, flush=True)
        while seen < expected and time.monotonic() < deadline:
            now = len(store.read_raw("water.tank1.level"))
            if now < seen:
                sys.exit(f"count went backwards: {seen} -> {now}")
            seen = now
    print("seen", seen, flush=True)
    sys.exit(0 if seen == expected else 1)
    """
)


def test_another_process_reads_while_this_one_writes(sqlite_database: Database) -> None:
    store = sqlite_database.open()
    store.ensure_tags(TAGS)
    expected = _BATCHES * _BATCH
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER_SCRIPT, sqlite_database.url, str(expected)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline().split() == ["ready", "0"]  # reader is up: write now
        _write_batches(store)
        out, err = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
        store.close()

    assert reader.returncode == 0, err
    assert out.split() == ["seen", str(expected)]
