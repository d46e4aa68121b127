"""``SqlHistorian``: samples, tags and journals in SQLite or PostgreSQL through SQLAlchemy Core."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from controlcenter.model import (
    Command,
    CommandOrigin,
    CommandPriority,
    CommandResult,
    CommandStatus,
    DataType,
    Event,
    EventKind,
    Quality,
    Sample,
    TagDef,
)
from historian.engine import WRITE_TRANSACTION, create_historian_engine
from historian.errors import (
    HistorianClosedError,
    InvalidSamplesError,
    Rejection,
    StorageError,
    UnknownTagError,
)
from historian.migrations import current_version, migrate
from historian.schema import command_journal, event_journal, samples, tags
from historian.values import (
    ValueMismatchError,
    decode_json_value,
    decode_sample_value,
    encode_json_value,
    encode_sample_value,
)

_NAME_CHUNK = 500
"""Tag names per IN (...) lookup, well under every backend's bound-parameter limit."""


@dataclass(frozen=True, slots=True)
class _TagRef:
    """What the hot path needs to know of a registered tag."""

    id: int
    data_type: DataType


class SqlHistorian:
    """The historian store on SQLite (default, one file) or PostgreSQL, behind ``HistoryStore``.

    Every write method is one transaction. All methods are safe to call from any thread: the
    engine gives each thread its own pooled connection. On SQLite the file is in WAL mode, so
    readers in other threads or processes never block the writer.

    Samples are keyed by (tag, source time): writing a sample whose tag already has a stored
    sample at that exact time is a no-op, which makes a retried or replayed batch harmless.
    Only the source time is stored; ``read_raw`` returns it as the server time too.
    """

    def __init__(
        self, url: str, *, schema: str | None = None, busy_timeout_s: float = 30.0
    ) -> None:
        """Open (creating or migrating as needed) the historian database at ``url``.

        ``url``: ``sqlite:///relative/or/absolute/file.db`` or ``postgresql://user@host/db``.
        ``schema``: PostgreSQL only, the schema to keep the tables in (default: the search path).
        ``busy_timeout_s``: SQLite only, how long a write waits for another process's lock.
        """
        self._engine: Engine | None = create_historian_engine(
            url, schema=schema, busy_timeout_s=busy_timeout_s
        )
        self._dialect = self._engine.dialect.name
        self._tag_refs: dict[str, _TagRef] = {}
        self._tag_lock = threading.Lock()
        try:
            with self._storage_errors("open the historian"), self._write() as conn:
                migrate(conn)
        except BaseException:
            self._engine.dispose()
            raise
        self._insert_samples = self._dialect_insert(samples).on_conflict_do_nothing(
            index_elements=[samples.c.tag_id, samples.c.time]
        )

    @classmethod
    def open(
        cls, url: str, *, schema: str | None = None, busy_timeout_s: float = 30.0
    ) -> SqlHistorian:
        """Open the historian database at ``url`` (same as the constructor)."""
        return cls(url, schema=schema, busy_timeout_s=busy_timeout_s)

    @property
    def backend(self) -> str:
        """The database backend: ``sqlite`` or ``postgresql``."""
        return self._dialect

    def close(self) -> None:
        """Close every pooled connection; the store cannot be used afterwards."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> SqlHistorian:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        with self._storage_errors("read the schema version"), self._read() as conn:
            return current_version(conn)

    # --- tags -------------------------------------------------------------------------------

    def ensure_tags(self, tag_defs: Sequence[TagDef]) -> None:
        """Register tags, or update the unit, description, type and range of known ones."""
        by_name = {tag.name: tag for tag in tag_defs}
        if not by_name:
            return
        rows = [
            {
                "name": tag.name,
                "unit": tag.unit,
                "description": tag.description,
                "data_type": tag.data_type.value,
                "low": tag.low,
                "high": tag.high,
            }
            for tag in by_name.values()
        ]
        insert = self._dialect_insert(tags)
        upsert = insert.on_conflict_do_update(
            index_elements=[tags.c.name],
            set_={
                name: insert.excluded[name]
                for name in ("unit", "description", "data_type", "low", "high")
            },
        )
        with self._storage_errors("register tags"), self._write() as conn:
            conn.execute(upsert, rows)
            refs = self._select_tag_refs(conn, by_name)
        with self._tag_lock:
            self._tag_refs.update(refs)

    def _resolve_tags(self, names: Iterable[str]) -> dict[str, _TagRef]:
        """Tag references by name, asking the database for names not cached (another process
        may have registered them); unknown names are absent from the result."""
        wanted = set(names)
        with self._tag_lock:
            found = {name: ref for name in wanted if (ref := self._tag_refs.get(name)) is not None}
        missing = wanted - found.keys()
        if missing:
            with self._storage_errors("look up tags"), self._read() as conn:
                loaded = self._select_tag_refs(conn, missing)
            with self._tag_lock:
                self._tag_refs.update(loaded)
            found.update(loaded)
        return found

    @staticmethod
    def _select_tag_refs(conn: Connection, names: Iterable[str]) -> dict[str, _TagRef]:
        wanted = sorted(names)
        refs: dict[str, _TagRef] = {}
        for first in range(0, len(wanted), _NAME_CHUNK):
            chunk = wanted[first : first + _NAME_CHUNK]
            query = select(tags.c.id, tags.c.name, tags.c.data_type).where(tags.c.name.in_(chunk))
            for tag_id, name, data_type in conn.execute(query):
                refs[name] = _TagRef(int(tag_id), DataType(data_type))
        return refs

    # --- samples ----------------------------------------------------------------------------

    def write_samples(self, samples: Sequence[Sample]) -> None:
        """Store a batch of samples in one transaction.

        Raises InvalidSamplesError, before writing anything, if a sample's tag is unknown or
        its value does not fit the tag's data type; StorageError if the database fails.
        """
        if not samples:
            return
        refs = self._resolve_tags(sample.tag for sample in samples)
        rows: list[dict[str, Any]] = []
        rejected: list[Rejection] = []
        for sample in samples:
            ref = refs.get(sample.tag)
            if ref is None:
                rejected.append(Rejection(sample, f"unknown tag {sample.tag!r}"))
                continue
            if sample.source_time.utcoffset() is None:
                rejected.append(Rejection(sample, "naive source time (UTC-aware required)"))
                continue
            try:
                value, text_value = encode_sample_value(ref.data_type, sample.value)
            except ValueMismatchError as err:
                rejected.append(Rejection(sample, str(err)))
                continue
            rows.append(
                {
                    "tag_id": ref.id,
                    "time": sample.source_time,
                    "value": value,
                    "text_value": text_value,
                    "quality": sample.quality.status_code,
                    "reason": sample.quality.reason or None,
                }
            )
        if rejected:
            raise InvalidSamplesError(tuple(rejected))
        with self._storage_errors("write samples"), self._write() as conn:
            conn.execute(self._insert_samples, rows)

    def read_raw(
        self, tag: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[Sample]:
        """Stored samples of ``tag`` with start <= source time <= end, oldest first.

        Values come back in the tag's data type; the server time equals the source time.
        Raises UnknownTagError (a KeyError) for a tag the historian does not know.
        """
        with self._storage_errors(f"read {tag}"), self._read() as conn:
            row = conn.execute(
                select(tags.c.id, tags.c.data_type).where(tags.c.name == tag)
            ).one_or_none()
            if row is None:
                raise UnknownTagError(tag)
            tag_id, data_type = int(row[0]), DataType(row[1])
            query = select(
                samples.c.time,
                samples.c.value,
                samples.c.text_value,
                samples.c.quality,
                samples.c.reason,
            ).where(samples.c.tag_id == tag_id, *_within(samples.c.time, start, end))
            result = conn.execute(query.order_by(samples.c.time)).all()
        # Qualities repeat (mostly Good): build each distinct one once; they are immutable.
        qualities: dict[tuple[int, str | None], Quality] = {}
        decoded: list[Sample] = []
        for time, value, text_value, code, reason in result:
            quality = qualities.get((code, reason))
            if quality is None:
                quality = Quality.from_status_code(int(code), reason or "")
                qualities[(code, reason)] = quality
            decoded.append(
                Sample(
                    tag=tag,
                    value=decode_sample_value(data_type, value, text_value),
                    quality=quality,
                    source_time=time,
                    server_time=time,
                )
            )
        return decoded

    # --- command journal --------------------------------------------------------------------

    def journal_command(self, result: CommandResult) -> None:
        """Journal a command with its origin, reason and result.

        Journaling the same command (same ``command_id``) again is a no-op, so a replay after
        an ambiguous failure cannot duplicate it.
        """
        command = result.command
        _require_aware(command.issued_at, "issued_at")
        _require_aware(result.completed_at, "completed_at")
        row = {
            "command_id": command.command_id,
            "tag": command.tag,
            "value": encode_json_value(command.value),
            "origin": command.origin.value,
            "requested_by": command.requested_by,
            "reason": command.reason,
            "priority": int(command.priority),
            "issued_at": command.issued_at,
            "status": result.status.value,
            "result_reason": result.reason,
            "readback": None if result.readback is None else encode_json_value(result.readback),
            "completed_at": result.completed_at,
        }
        insert = self._dialect_insert(command_journal).on_conflict_do_nothing(
            index_elements=[command_journal.c.command_id]
        )
        with self._storage_errors("journal a command"), self._write() as conn:
            conn.execute(insert, [row])

    def read_commands(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[CommandResult]:
        """Journaled commands issued in [start, end] with their results, oldest first."""
        query = select(command_journal).where(*_within(command_journal.c.issued_at, start, end))
        query = query.order_by(command_journal.c.issued_at, command_journal.c.id)
        with self._storage_errors("read the command journal"), self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            CommandResult(
                command=Command(
                    tag=row["tag"],
                    value=decode_json_value(row["value"]),
                    origin=CommandOrigin(row["origin"]),
                    requested_by=row["requested_by"],
                    reason=row["reason"],
                    issued_at=row["issued_at"],
                    priority=CommandPriority(row["priority"]),
                    command_id=row["command_id"],
                ),
                status=CommandStatus(row["status"]),
                reason=row["result_reason"],
                completed_at=row["completed_at"],
                readback=None if row["readback"] is None else decode_json_value(row["readback"]),
            )
            for row in rows
        ]

    # --- event journal ----------------------------------------------------------------------

    def journal_event(self, event: Event) -> None:
        """Journal an event."""
        _require_aware(event.time, "time")
        row = {
            "time": event.time,
            "kind": event.kind.value,
            "source": event.source,
            "message": event.message,
            "user_name": event.user,
            "severity": event.severity,
        }
        with self._storage_errors("journal an event"), self._write() as conn:
            conn.execute(event_journal.insert(), [row])

    def read_events(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        kind: EventKind | None = None,
    ) -> list[Event]:
        """Journaled events with start <= time <= end (and of ``kind`` if given), oldest first."""
        query = select(event_journal).where(*_within(event_journal.c.time, start, end))
        if kind is not None:
            query = query.where(event_journal.c.kind == kind.value)
        query = query.order_by(event_journal.c.time, event_journal.c.id)
        with self._storage_errors("read the event journal"), self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Event(
                time=row["time"],
                kind=EventKind(row["kind"]),
                source=row["source"],
                message=row["message"],
                user=row["user_name"],
                severity=int(row["severity"]),
            )
            for row in rows
        ]

    # --- plumbing ---------------------------------------------------------------------------

    def _live_engine(self) -> Engine:
        if self._engine is None:
            raise HistorianClosedError("the historian store is closed")
        return self._engine

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed on success, rolled back on error."""
        with self._live_engine().connect() as conn:
            conn.execution_options(**{WRITE_TRANSACTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection in a read transaction (one consistent snapshot)."""
        with self._live_engine().connect() as conn, conn.begin():
            yield conn

    @staticmethod
    @contextmanager
    def _storage_errors(action: str) -> Iterator[None]:
        """Turn the database library's errors into StorageError, cause chained."""
        try:
            yield
        except SQLAlchemyError as err:
            raise StorageError(f"could not {action}: {_describe(err)}") from err

    def _dialect_insert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        # INSERT ... ON CONFLICT has the same shape on both backends but lives in each dialect.
        if self._dialect == "sqlite":
            return sqlite.insert(table)
        return postgresql.insert(table)


def _within(
    column: ColumnElement[datetime], start: datetime | None, end: datetime | None
) -> list[ColumnElement[bool]]:
    """Conditions for start <= column <= end; open ends are left out."""
    _require_aware(start, "start")
    _require_aware(end, "end")
    conditions = []
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column <= end)
    return conditions


def _require_aware(moment: datetime | None, name: str) -> None:
    if moment is not None and moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment.isoformat()}")


def _describe(err: SQLAlchemyError) -> str:
    """One line naming the database's own error, without SQLAlchemy's SQL dump."""
    cause: BaseException = err
    if isinstance(err, DBAPIError) and err.orig is not None:
        cause = err.orig
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"
