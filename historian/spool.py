"""``DiskSpool``: a crash-safe ``SampleBuffer`` on local disk, for store-and-forward.

While the database is away (or just slow) the writer keeps every sample here; once the
database takes them again they are replayed oldest first and dropped from the spool.

Why an SQLite file rather than a hand-written segment log with a CRC per record:

- SQLite in WAL mode with ``synchronous=FULL`` fsyncs the write-ahead log on every commit, so
  an ``append`` that returned survives a process kill *and* a power loss (SQLite docs, "PRAGMA
  synchronous" and "Write-Ahead Logging"). Each WAL frame carries a checksum; a frame torn by
  a crash fails it and is discarded on recovery, which is exactly what a per-record CRC and
  tail truncation of a segment log would do, but tested for decades rather than written here.
- Peek and drop are range operations on the integer primary key (the append order); space of
  dropped rows is reused through SQLite's free list instead of segment files being rotated.
- ``sqlite3`` is in the standard library: no new dependency, and the file can be inspected with
  the ``sqlite3`` shell during an incident.

No duplicates after a crash: a crash between "the batch is committed in the historian" and
"the batch is dropped from the spool" replays that batch on restart. The historian's sample
insert is ``INSERT ... ON CONFLICT (tag_id, time) DO NOTHING`` (``historian.store``, on the
``samples`` primary key), so the replayed rows are ignored and every sample is stored once.

Every sample round-trips exactly: the value keeps its Python type (bool, int, float, str or
None; floats as their IEEE 754 bytes so NaN, infinities and -0.0 survive), the quality its
severity, sub-status and reason, and both times their microseconds and time zone handling
(aware times come back in UTC, the same instant; naive ones come back naive so the store can
refuse them as it would have without the spool).

A size limit (bytes of the file's used pages, and optionally a row count) bounds the spool:
one warning is logged when it crosses ``warn_fraction`` of the limit, and an append that would
exceed it raises ``SpoolFullError`` without storing anything: samples are never dropped
silently.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from controlcenter.model import Quality, Sample, Severity, Substatus, Value
from historian.errors import HistorianClosedError, HistorianError

_log = logging.getLogger(__name__)

SPOOL_FORMAT_VERSION = 1
"""Stored in the file's ``user_version``; a spool of another version is refused, not guessed at."""

DEFAULT_MAX_BYTES = 1 << 30
"""Default size limit: 1 GiB, days of a busy site at the historian's row size."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_DOUBLE = struct.Struct("<d")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY,
    tag TEXT NOT NULL,
    kind INTEGER NOT NULL,
    value,  -- no declared type: no affinity, so '42' stays text and 2**80's digits too
    severity INTEGER NOT NULL,
    substatus TEXT NOT NULL,
    reason TEXT NOT NULL,
    source_us INTEGER NOT NULL,
    server_us INTEGER NOT NULL,
    naive INTEGER NOT NULL
)
"""
_INSERT = (
    "INSERT INTO spool (tag, kind, value, severity, substatus, reason, source_us, server_us, "
    "naive) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT = (
    "SELECT tag, kind, value, severity, substatus, reason, source_us, server_us, naive "
    "FROM spool ORDER BY seq LIMIT ? OFFSET ?"
)


class SpoolError(HistorianError):
    """The spool file cannot be used (I/O failure, another format, a record that cannot be read)."""


class SpoolFullError(SpoolError):
    """An append would exceed the spool's size limit; nothing of it was stored."""


@dataclass(frozen=True, slots=True)
class SpoolMetrics:
    """A snapshot of how full the spool is."""

    depth: int
    """Samples held."""
    size_bytes: int
    """Bytes of the file's pages in use (pages freed by drops are reused, not counted)."""
    fill_ratio: float
    """Use of the tighter of the limits, 0.0 (empty) to 1.0 (full)."""


class _Kind(IntEnum):
    """The Python type of a spooled value, so it comes back as the same type."""

    NONE = 0
    BOOL = 1
    INT = 2
    BIG_INT = 3
    FLOAT = 4
    STR = 5


class DiskSpool:
    """A ``SampleBuffer`` in an SQLite file: every append is durable once it returns.

    Use from one thread at a time (the writer uses it on its event loop; a lock guards the
    connection anyway). Close it on shutdown; reopening the same path carries on where the
    last process stopped, however it stopped.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_rows: int | None = None,
        warn_fraction: float = 0.8,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if max_rows is not None and max_rows < 1:
            raise ValueError(f"max_rows must be positive, got {max_rows}")
        if not 0 < warn_fraction < 1:
            raise ValueError(f"warn_fraction must be between 0 and 1, got {warn_fraction}")
        self._path = Path(path)
        self._max_bytes = max_bytes
        self._max_rows = max_rows
        self._warn_fraction = warn_fraction
        # Re-arm the warning only well below the threshold, so a spool hovering at it does not
        # log a line per append.
        self._rearm_fraction = warn_fraction * 0.75
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are begun and ended explicitly below.
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as err:
            raise SpoolError(f"cannot open the spool {self._path}: {err}") from err
        try:
            self._page_size = self._prepare(conn)
            self._depth = int(conn.execute("SELECT count(*) FROM spool").fetchone()[0])
        except sqlite3.Error as err:
            conn.close()
            raise SpoolError(f"cannot open the spool {self._path}: {err}") from err
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._last_fill = min(1.0, self._fill_ratio(self._depth, self._used_bytes()))
        self._warned = self._last_fill >= warn_fraction
        if self._warned:
            self._log_warning(self._depth, self._used_bytes())

    def _prepare(self, conn: sqlite3.Connection) -> int:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise SpoolError(f"the spool {self._path} cannot use WAL (journal mode {mode})")
        # FULL: the WAL is fsynced at every commit, so an acknowledged append survives power
        # loss; NORMAL (the historian's setting) may lose the last commits (SQLite docs).
        conn.execute("PRAGMA synchronous=FULL")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version == 0:
            tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            if tables:
                raise SpoolError(f"{self._path} is not a sample spool (it holds other tables)")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SPOOL_FORMAT_VERSION}")
            conn.execute("COMMIT")
        elif version != SPOOL_FORMAT_VERSION:
            raise SpoolError(
                f"the spool {self._path} has format {version}; this software reads "
                f"format {SPOOL_FORMAT_VERSION}"
            )
        return int(conn.execute("PRAGMA page_size").fetchone()[0])

    # --- SampleBuffer -----------------------------------------------------------------------

    def append(self, samples: Sequence[Sample]) -> None:
        """Add samples at the end, durably: they survive a crash once this returns.

        Raises SpoolFullError, storing none of them, if they would exceed the size limit.
        """
        if not samples:
            return
        rows = _encode_all(samples)
        with self._connection("append to") as conn:
            depth = self._depth + len(rows)
            if self._max_rows is not None and depth > self._max_rows:
                raise SpoolFullError(
                    f"the spool {self._path} is full: {self._depth} of {self._max_rows} "
                    f"samples held, {len(rows)} more refused"
                )
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_INSERT, rows)
                used = self._used_bytes()
                if used > self._max_bytes:
                    raise SpoolFullError(
                        f"the spool {self._path} is full: {len(rows)} more sample(s) would "
                        f"take it to {used} of {self._max_bytes} bytes; refused"
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._depth = depth
            self._check_fill(depth, used)

    def peek(self, limit: int, skip: int = 0) -> list[Sample]:
        """The oldest ``limit`` samples after the first ``skip`` (fewer if fewer are held),
        without removing them."""
        if limit <= 0:
            return []
        with self._connection("read") as conn:
            rows = conn.execute(_SELECT, (limit, skip)).fetchall()
        return _Decoder().decode(rows)

    def drop(self, count: int) -> None:
        """Remove the oldest ``count`` samples, once they are stored (or refused for good)."""
        if count < 0 or count > self._depth:
            raise ValueError(f"cannot drop {count} of {self._depth} samples")
        if count == 0:
            return
        with self._connection("drop from") as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "DELETE FROM spool WHERE seq <= "
                    "(SELECT seq FROM spool ORDER BY seq LIMIT 1 OFFSET ?)",
                    (count - 1,),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._depth -= count
            self._check_fill(self._depth, self._used_bytes())

    def __len__(self) -> int:
        return self._depth

    # --- the rest ---------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The spool file."""
        return self._path

    def metrics(self) -> SpoolMetrics:
        """A snapshot of the spool's depth and size."""
        with self._connection("measure"):
            used = self._used_bytes()
        return SpoolMetrics(self._depth, used, min(1.0, self._fill_ratio(self._depth, used)))

    def close(self) -> None:
        """Close the file; what it holds stays for the next process. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> DiskSpool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _connection(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise HistorianClosedError(f"the spool {self._path} is closed")
            try:
                yield self._conn
            except sqlite3.Error as err:
                raise SpoolError(f"cannot {action} the spool {self._path}: {err}") from err

    def _used_bytes(self) -> int:
        # Inside a write transaction these pragmas see the pages it has added.
        assert self._conn is not None
        pages = int(self._conn.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._conn.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _fill_ratio(self, depth: int, used: int) -> float:
        ratio = used / self._max_bytes
        if self._max_rows is not None:
            ratio = max(ratio, depth / self._max_rows)
        return ratio

    def fill_ratio(self) -> float:
        """How full the spool was after its last change, 0.0 to 1.0 (no I/O: safe on a loop)."""
        return self._last_fill

    def _check_fill(self, depth: int, used: int) -> None:
        ratio = self._fill_ratio(depth, used)
        self._last_fill = min(1.0, ratio)
        if not self._warned and ratio >= self._warn_fraction:
            self._warned = True
            self._log_warning(depth, used)
        elif self._warned and ratio < self._rearm_fraction:
            self._warned = False

    def _log_warning(self, depth: int, used: int) -> None:
        rows = f" of {self._max_rows}" if self._max_rows is not None else ""
        _log.warning(
            "historian spool %s is %.0f%% full (%d%s samples, %d of %d bytes); "
            "samples will be refused when it is full",
            self._path,
            100 * self._fill_ratio(depth, used),
            depth,
            rows,
            used,
            self._max_bytes,
        )


def _encode_all(samples: Sequence[Sample]) -> list[tuple[Any, ...]]:
    """The spool rows of ``samples``, converting each distinct time and quality once.

    Keyed by id(): every object of ``samples`` stays alive while this runs, so no id is reused.
    """
    times: dict[int, tuple[int, bool]] = {}
    qualities: dict[int, tuple[int, str, str]] = {}
    float_kind = int(_Kind.FLOAT)
    pack = _DOUBLE.pack
    rows: list[tuple[Any, ...]] = []
    for sample in samples:
        source, server = sample.source_time, sample.server_time
        source_us, naive = times.get(id(source)) or _time_columns(times, source)
        server_us, server_naive = times.get(id(server)) or _time_columns(times, server)
        if server_naive is not naive:
            # One flag covers both times; a sample mixing them is not something a driver makes.
            raise ValueError(f"sample of {sample.tag} mixes a naive and an aware time")
        quality = sample.quality
        quality_columns = qualities.get(id(quality))
        if quality_columns is None:
            quality_columns = (quality.severity.value, quality.substatus.value, quality.reason)
            qualities[id(quality)] = quality_columns
        value = sample.value
        stored: object
        if type(value) is float:
            kind, stored = float_kind, pack(value)
        else:
            value_kind, stored = _encode_value(value)
            kind = int(value_kind)
        rows.append((sample.tag, kind, stored, *quality_columns, source_us, server_us, int(naive)))
    return rows


def _time_columns(cache: dict[int, tuple[int, bool]], moment: datetime) -> tuple[int, bool]:
    naive = moment.utcoffset() is None
    columns = cache[id(moment)] = (_to_us(moment, naive), naive)
    return columns


def _encode_value(value: Value | None) -> tuple[_Kind, object]:
    # bool before int: bool is a subclass of int.
    if value is None:
        return _Kind.NONE, None
    if isinstance(value, bool):
        return _Kind.BOOL, int(value)
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return _Kind.INT, value
        return _Kind.BIG_INT, str(value)
    if isinstance(value, float):
        # SQLite stores NaN as NULL; the IEEE 754 bytes keep every float exactly.
        return _Kind.FLOAT, _DOUBLE.pack(value)
    if isinstance(value, str):
        return _Kind.STR, value
    raise TypeError(f"cannot spool a value of type {type(value).__name__}")


class _Decoder:
    """Turns spool rows back into samples, building each distinct quality and time once.

    Qualities repeat (mostly Good) and so do times (one per scan of a device); both are
    immutable, so the samples of a peek share them. Replay speed is the spool's decode speed.
    """

    def __init__(self) -> None:
        self._qualities: dict[tuple[int, str, str], Quality] = {}
        self._times: dict[tuple[int, int], datetime] = {}

    def decode(self, rows: list[tuple[Any, ...]]) -> list[Sample]:
        """The samples of ``rows``, in order."""
        qualities, times = self._qualities, self._times
        float_kind = int(_Kind.FLOAT)
        unpack = _DOUBLE.unpack
        out: list[Sample] = []
        for row in rows:
            tag, kind, value, severity, substatus, reason, source_us, server_us, naive = row
            try:
                quality = qualities.get((severity, substatus, reason))
                if quality is None:
                    quality = Quality(Severity(severity), Substatus(substatus), reason)
                    qualities[(severity, substatus, reason)] = quality
                source = times.get((source_us, naive))
                if source is None:
                    source = times[(source_us, naive)] = _from_us(source_us, bool(naive))
                server = times.get((server_us, naive))
                if server is None:
                    server = times[(server_us, naive)] = _from_us(server_us, bool(naive))
                decoded = (
                    unpack(value)[0] if kind == float_kind else _decode_value(_Kind(kind), value)
                )
                out.append(Sample(tag, decoded, quality, source, server))
            except (ValueError, TypeError, struct.error) as err:
                raise SpoolError(f"unreadable spooled sample of {tag!r}: {err}") from err
        return out


def _decode_value(kind: _Kind, value: Any) -> Value | None:
    if kind is _Kind.NONE:
        return None
    if kind is _Kind.BOOL:
        return bool(value)
    if kind is _Kind.INT:
        return int(value)
    if kind is _Kind.BIG_INT:
        return int(str(value))
    if kind is _Kind.FLOAT:
        decoded: float = _DOUBLE.unpack(value)[0]
        return decoded
    return str(value)


def _to_us(moment: datetime, naive: bool) -> int:
    # Integer arithmetic on timedeltas: exact to the microsecond, no float rounding.
    return (moment - (_NAIVE_EPOCH if naive else _EPOCH)) // _MICROSECOND


def _from_us(micros: int, naive: bool) -> datetime:
    return (_NAIVE_EPOCH if naive else _EPOCH) + timedelta(microseconds=micros)
