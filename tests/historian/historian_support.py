"""Helpers shared by the historian tests: test tags, sample builders, a deadline poll."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Engine,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    select,
)

from controlcenter.model import DataType, Quality, Sample, TagDef
from historian import SqlHistorian
from historian.engine import create_historian_engine, normalise_url
from historian.migrations import create_missing_tables
from historian.schema import samples as samples_table
from historian.timetypes import UtcDateTime

T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
"""A fixed UTC time with microseconds, so precision loss shows."""

LEVEL = "water.tank1.level"
STARTS = "water.pump1.starts"
RUNNING = "water.pump1.running"
MODE = "heat.ss3.mode"

TAGS = (
    TagDef(LEVEL, "rtu1", "40001", DataType.FLOAT, unit="m", low=0.0, high=8.0),
    TagDef(STARTS, "rtu1", "40003", DataType.INT, description="start counter"),
    TagDef(RUNNING, "rtu1", "10001", DataType.BOOL),
    TagDef(MODE, "plc3", "ns=2;s=Mode", DataType.STRING),
)


@dataclass(frozen=True)
class Database:
    """Where one test's historian lives."""

    backend: str
    url: str
    schema: str | None

    def open(self, *, busy_timeout_s: float = 30.0) -> SqlHistorian:
        """Open a historian store on this database."""
        return SqlHistorian(self.url, schema=self.schema, busy_timeout_s=busy_timeout_s)

    def admin_engine(self) -> Engine:
        """An engine on the same database and schema, for a test to inspect or break it."""
        return create_historian_engine(self.url, schema=self.schema)

    def break_samples_table(self) -> None:
        """Make every sample write fail (as a database outage does) by dropping the table."""
        engine = self.admin_engine()
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {samples_table.name}")
        engine.dispose()

    def repair_samples_table(self) -> None:
        """End the outage begun by ``break_samples_table``."""
        engine = self.admin_engine()
        with engine.begin() as conn:
            # On PostgreSQL: the partitioned table, its default partition and today's partitions.
            create_missing_tables(conn)
        engine.dispose()


def at(seconds: float) -> datetime:
    """``T0`` plus some seconds."""
    return T0 + timedelta(seconds=seconds)


def sample(
    tag: str,
    value: float | int | bool | str | None,
    when: datetime,
    quality: Quality | None = None,
) -> Sample:
    """A sample the center received at ``when``, stamped by its device a little before."""
    return Sample(tag, value, quality or Quality.good(), when - timedelta(milliseconds=3), when)


def level_samples(count: int, start: datetime = T0, step_ms: int = 100) -> list[Sample]:
    """``count`` Good samples of the tank level, ``step_ms`` apart."""
    return [
        sample(LEVEL, i * 0.5, start + timedelta(milliseconds=i * step_ms)) for i in range(count)
    ]


async def wait_until(
    condition: Callable[[], bool], *, timeout_s: float = 10.0, what: str = "condition"
) -> float:
    """Poll ``condition`` until true; return the seconds it took; fail after ``timeout_s``."""
    started = time.monotonic()
    deadline = started + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


def create_version_1_database(database: Database, level_values: list[float]) -> None:
    """A database as schema version 1 left it, with the test tags and some tank levels.

    The tables are those of version 1 (no compression columns, no audit journal; on PostgreSQL
    a plain, unpartitioned samples table), so that the migration to the current version runs
    on real data.
    """
    v1 = MetaData()
    Table(
        "schema_version",
        v1,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("version", Integer, nullable=False),
        Column("applied_at", UtcDateTime, nullable=False),
    )
    v1_tags = Table(
        "tags",
        v1,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", Text, nullable=False, unique=True),
        Column("unit", Text, nullable=False),
        Column("description", Text, nullable=False),
        Column("data_type", Text, nullable=False),
        Column("low", Double),
        Column("high", Double),
    )
    v1_samples = Table(
        "samples",
        v1,
        Column("tag_id", Integer, nullable=False),
        Column("time", UtcDateTime, nullable=False),
        Column("value", Double),
        Column("text_value", Text),
        Column("quality", BigInteger, nullable=False),
        Column("reason", Text),
        PrimaryKeyConstraint("tag_id", "time", name="samples_pkey"),
        sqlite_with_rowid=False,
    )
    for journal in ("command_journal", "event_journal"):
        Table(journal, v1, Column("id", Integer, primary_key=True))
    engine = database.admin_engine()
    with engine.begin() as conn:
        v1.create_all(conn)
        conn.exec_driver_sql(
            "INSERT INTO schema_version (id, version, applied_at) VALUES (1, 1, "
            + ("0)" if database.backend == "sqlite" else "now())")
        )
        for tag in TAGS:
            conn.execute(
                v1_tags.insert().values(
                    name=tag.name,
                    unit=tag.unit,
                    description=tag.description,
                    data_type=tag.data_type.value,
                    low=tag.low,
                    high=tag.high,
                )
            )
        level_id = conn.execute(select(v1_tags.c.id).where(v1_tags.c.name == LEVEL)).scalar_one()
        conn.execute(
            v1_samples.insert(),
            [
                {"tag_id": level_id, "time": at(i * 3600.0), "value": value, "quality": 0}
                for i, value in enumerate(level_values)
            ],
        )
    engine.dispose()


def create_version_2_database(database: Database, level_values: list[float]) -> None:
    """A database as schema version 2 left it: samples keyed by one ``time`` column.

    Made by the current software, then taken back: ``server_time`` renamed to ``time`` and
    ``source_time`` dropped (version 2's only differences), so that the next migration runs on
    real data in the real layout (day partitions on PostgreSQL).
    """
    with database.open() as store:
        store.ensure_tags(TAGS)
        store.write_samples(
            [
                Sample(LEVEL, value, Quality.good(), at(i * 3600.0), at(i * 3600.0))
                for i, value in enumerate(level_values)
            ]
        )
    engine = database.admin_engine()
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE samples DROP COLUMN source_time")
        conn.exec_driver_sql("ALTER TABLE samples RENAME COLUMN server_time TO time")
        conn.exec_driver_sql("UPDATE schema_version SET version = 2")
    engine.dispose()


class TcpProxy:
    """A TCP relay on a free loopback port, to cut a client off from its server and restore it.

    While cut, every relayed connection is closed and new ones are accepted and closed at once,
    as a server that went away or a broken network does to the client.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Drop every connection and refuse new ones until ``restore``."""
        with self._lock:
            self._cut = True
            doomed, self._open = self._open, set()
        for sock in doomed:
            _close(sock)

    def restore(self) -> None:
        """Relay new connections again."""
        with self._lock:
            self._cut = False

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._closed = True
        self.cut()
        _close(self._listener)
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refused = self._cut
            if refused:
                _close(client)
                continue
            try:
                server = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._open |= {client, server}
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {source, target}
            _close(source)
            _close(target)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@contextlib.contextmanager
def sqlite_write_lock(url: str) -> Iterator[None]:
    """Hold the write lock of an SQLite historian: every other writer fails while it is held.

    The tests run as root, for whom file modes do not stop writes; a write lock held by another
    connection makes the file unwritable to the store in the same way, with a real SQLite error.
    """
    conn = sqlite3.connect(normalise_url(url).database or "", isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()
