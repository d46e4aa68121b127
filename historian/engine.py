"""Database URLs and engines: SQLite (a file, in WAL mode) or PostgreSQL through psycopg 3."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from historian.errors import UnsupportedDatabaseError

WRITE_TRANSACTION = "historian_write"
"""Execution option marking a connection whose next transaction writes (see ``_begin``)."""

_POSTGRES_DRIVERS = {"postgres", "postgresql", "postgresql+psycopg"}
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL and pin the driver: pysqlite for SQLite, psycopg 3 for PostgreSQL.

    Relative SQLite paths are made absolute (relative to the current directory) so that the
    store does not depend on the directory it runs in later. In-memory SQLite is refused: each
    connection of the pool would see its own empty database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise UnsupportedDatabaseError(f"not a database URL: {url!r}") from err
    driver = parsed.drivername
    if driver in _POSTGRES_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    if driver in _SQLITE_DRIVERS:
        database = parsed.database or ""
        if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
            raise UnsupportedDatabaseError(
                "the historian needs an SQLite file (sqlite:///path/to/file.db), not memory"
            )
        return parsed.set(drivername="sqlite+pysqlite", database=str(Path(database).resolve()))
    raise UnsupportedDatabaseError(
        f"unsupported database {driver!r}: use sqlite:///FILE or postgresql://USER@HOST/DB"
    )


def create_historian_engine(
    url: str | URL, *, schema: str | None = None, busy_timeout_s: float = 30.0
) -> Engine:
    """Create the engine of a store; ``schema`` (PostgreSQL only) selects a schema to work in."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        if schema is not None:
            raise UnsupportedDatabaseError("a schema can only be chosen on PostgreSQL")
        Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_engine(parsed, busy_timeout_s)
    return _postgres_engine(parsed, schema)


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    # pysqlite's `timeout` installs SQLite's busy handler: a writer waits that long for another
    # process's write lock instead of failing at once with "database is locked".
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


SQLITE_CACHE_KIB = 65_536
"""The page cache of each SQLite connection of the historian, KiB (``PRAGMA cache_size``)."""


def _configure_sqlite(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        raise TypeError(f"unexpected SQLite connection {type(dbapi_connection).__name__}")
    # Let SQLAlchemy's "begin" event emit BEGIN itself: pysqlite's own implicit BEGIN is
    # deferred and issued lazily, which defeats the busy handler when a read turns into a write.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers (the HMI, the CLI in another process) never block the writer, nor it them.
        mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise UnsupportedDatabaseError(
                f"SQLite refused WAL journal mode (got {mode!r}): is the file on a network share?"
            )
        # NORMAL is durable across application crashes in WAL mode; only a power loss may drop
        # the last transactions (SQLite docs, "PRAGMA synchronous").
        cursor.execute("PRAGMA synchronous=NORMAL")
        # A batch of samples touches the index pages of thousands of tags: with SQLite's default
        # 2 MiB page cache most of them are read again from the OS for every batch. 64 MiB
        # keeps them; SQLite allocates the cache as pages are used, not up front.
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    finally:
        cursor.close()


def _begin_sqlite(conn: Connection) -> None:
    # A write transaction takes the write lock up front (BEGIN IMMEDIATE) so that it waits on the
    # busy handler; a deferred one that reads first could fail with SQLITE_BUSY on its first write.
    if conn.get_execution_options().get(WRITE_TRANSACTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _postgres_engine(url: URL, schema: str | None) -> Engine:
    connect_args: dict[str, Any] = {"connect_timeout": 10}
    if schema is not None:
        if not _IDENTIFIER.fullmatch(schema):
            raise UnsupportedDatabaseError(f"invalid PostgreSQL schema name {schema!r}")
        # search_path rather than schema-qualified tables: it also covers raw SQL such as COPY.
        connect_args["options"] = f"-c search_path={schema}"
    # pre_ping: after a server restart the pool's connections are dead; test them on checkout.
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)
