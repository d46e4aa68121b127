"""``SqlHistorian``: samples, tags and journals in SQLite or PostgreSQL through SQLAlchemy Core."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from math import isnan
from types import TracebackType
from typing import Any

import psycopg
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.elements import KeyedColumnElement

from controlcenter.model import (
    Command,
    CommandOrigin,
    CommandPriority,
    CommandResult,
    CommandStatus,
    DataType,
    Event,
    EventKind,
    Override,
    Quality,
    Sample,
    TagDef,
    Value,
    utc_now,
)
from controlcenter.ports import (
    AlarmRequest,
    AlarmRequestStatus,
    AlarmState,
    AlarmTransition,
    RuleSource,
    RuleVersion,
    RuleVersionStatus,
    UnknownRuleVersionError,
)
from historian import alarm_records
from historian.alarm_records import AlarmRecordError
from historian.audit import AuditAction, AuditRecord
from historian.compression import (
    COMPRESSION_MODES,
    RAW,
    CompressionMode,
    CompressionSettings,
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
from historian.postgres import SampleCopier, SampleRow, samples_layout
from historian.schema import (
    TAG_COMPRESSION_COLUMNS,
    alarm_journal,
    alarm_requests,
    alarm_states,
    audit_journal,
    command_journal,
    command_overrides,
    event_journal,
    rule_deployment,
    rule_version_files,
    rule_versions,
    samples,
    tags,
)
from historian.timetypes import from_epoch_us, to_epoch_us
from historian.values import (
    ValueMismatchError,
    check_storable_text,
    decode_json_value,
    decode_sample_value,
    decode_typed_value,
    encode_json_value,
    encode_sample_value,
    encode_typed_value,
    storable_text,
)

_NAME_CHUNK = 500
"""Tag names per IN (...) lookup, well under every backend's bound-parameter limit."""

_RULE_VERSION_LOCK_KEY = 0x43_43_52_56  # "CCRV"
"""PostgreSQL advisory lock serialising the numbering of new rule-set versions."""

_SQLITE_INSERT_SAMPLES = (
    "INSERT INTO samples (tag_id, server_time, source_time, value, text_value, quality, reason) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tag_id, server_time) DO NOTHING"
)
"""The SQLite sample insert, run through DB-API executemany with plain tuples: SQLAlchemy's
per-row parameter processing would cost more than SQLite's own insert."""


@dataclass(frozen=True, slots=True)
class _TagRef:
    """What the hot path needs to know of a registered tag."""

    id: int
    data_type: DataType


@dataclass(frozen=True, slots=True)
class JournaledEvent:
    """An event as the event journal holds it: with the tag, device and area it concerns
    (stored for alarm transitions; empty for other events)."""

    event: Event
    tag: str = ""
    device: str = ""
    area: str = ""


class SqlHistorian:
    """The historian store on SQLite (default, one file) or PostgreSQL, behind ``HistoryStore``.

    Every write method is one transaction. All methods are safe to call from any thread: the
    engine gives each thread its own pooled connection. On SQLite the file is in WAL mode, so
    readers in other threads or processes never block the writer.

    Samples are ordered and keyed by (tag, server time), the time the center received or
    produced them, which only moves forward for a tag however old the device's own stamp is:
    writing a sample whose tag already has a stored sample at that exact server time is a no-op,
    which makes a retried or replayed batch harmless. The source time is stored alongside and
    returned by every raw read.
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
                # PostgreSQL writes go through COPY into day partitions (historian.postgres).
                self._copier = (
                    SampleCopier(samples_layout(conn)) if self._dialect == "postgresql" else None
                )
        except BaseException:
            self._engine.dispose()
            raise

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

    def ensure_tags(
        self,
        tag_defs: Sequence[TagDef],
        compression: Mapping[str, CompressionSettings] | None = None,
    ) -> None:
        """Register tags, or update the unit, description, type and range of known ones.

        With ``compression``, also record each tag's compression settings (raw for a tag not in
        it), which is what its samples go through from now on; without, keep what is recorded.
        """
        by_name = {tag.name: tag for tag in tag_defs}
        if not by_name:
            return
        described = ["unit", "description", "data_type", "low", "high"]
        rows: list[dict[str, Any]] = []
        for tag in by_name.values():
            row: dict[str, Any] = {
                "name": tag.name,
                "unit": tag.unit,
                "description": tag.description,
                "data_type": tag.data_type.value,
                "low": tag.low,
                "high": tag.high,
            }
            if compression is not None:
                row.update(_compression_columns(compression.get(tag.name, RAW)))
            rows.append(row)
        updated = described if compression is None else [*described, *TAG_COMPRESSION_COLUMNS]
        insert = self._dialect_insert(tags)
        upsert = insert.on_conflict_do_update(
            index_elements=[tags.c.name], set_={name: insert.excluded[name] for name in updated}
        )
        with self._storage_errors("register tags"), self._write() as conn:
            conn.execute(upsert, rows)
            refs = self._select_tag_refs(conn, by_name)
        with self._tag_lock:
            self._tag_refs.update(refs)

    def compression_settings(self) -> dict[str, CompressionSettings]:
        """The recorded compression settings of every registered tag, by tag name."""
        query = select(tags.c.name, *(tags.c[name] for name in TAG_COMPRESSION_COLUMNS))
        with self._storage_errors("read compression settings"), self._read() as conn:
            result = conn.execute(query).all()
        return {
            row[0]: CompressionSettings(
                mode=_compression_mode(row[1]),
                exception_deviation=float(row[2]),
                exception_is_percent_of_span=bool(row[3]),
                compression_deviation=float(row[4]),
                compression_is_percent_of_span=bool(row[5]),
                max_interval_s=float(row[6]),
            )
            for row in result
        }

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
        # The database first, then the rows: while it is unreachable or locked, a retry fails
        # before spending time converting a batch that cannot be written.
        try:
            with self._storage_errors("write samples"):
                if self._copier is None:
                    with self._write() as conn:
                        conn.exec_driver_sql(_SQLITE_INSERT_SAMPLES, self._sample_rows(samples))
                else:
                    self._copy_samples(self._copier, samples)
        except StorageError:
            if self._copier is not None:
                # The partitions may be what failed (dropped by retention, a restore...).
                self._copier.forget_partitions()
            raise

    def _copy_samples(self, copier: SampleCopier, samples: Sequence[Sample]) -> None:
        with self._live_engine().connect() as conn:
            rows = self._sample_rows(samples)
            # Partitions first, in their own short transaction: creating one locks the parent
            # table, which should not be held for the whole batch.
            with conn.begin():
                copier.prepare_partitions(conn, [row[1] for row in rows])
            conn.execution_options(**{WRITE_TRANSACTION: True})
            try:
                with conn.begin():
                    copier.copy_rows(conn, rows)
            except psycopg.Error as err:
                # COPY runs on the driver's own connection: its errors are not SQLAlchemy's.
                raise StorageError(f"could not write samples: {_describe(err)}") from err

    def _sample_rows(self, batch: Sequence[Sample]) -> list[SampleRow]:
        """The rows of ``samples`` for a batch, in column order (the hot path: no dicts).

        Times are microseconds since the Unix epoch on both backends; the source time is None
        when it equals the server time (the stored form of "the device sent no time").
        """
        refs_get = self._resolve_tags({sample.tag for sample in batch}).get
        rows: list[SampleRow] = []
        append = rows.append
        rejected: list[Rejection] = []
        # Times and qualities repeat (one time per scan of a device, one Good object), mostly
        # in runs: compare with the previous sample's object first, then convert each distinct
        # object once. Keyed by id(): every object of the batch stays alive while this runs, so
        # no id is reused (hashing a Quality would run its dataclass __hash__ in Python).
        time_columns: dict[int, int] = {}
        quality_columns: dict[int, tuple[int, str | None]] = {}
        last_moment: datetime | None = None
        last_source: datetime | None = None
        last_quality: Quality | None = None
        time_us = code = 0
        source_us: int | None = None
        reason: str | None = None
        float_type = DataType.FLOAT
        for sample in batch:
            ref = refs_get(sample.tag)
            if ref is None:
                rejected.append(Rejection(sample, f"unknown tag {sample.tag!r}"))
                continue
            moment = sample.server_time
            if moment is not last_moment:
                known = time_columns.get(id(moment))
                if known is None:
                    if moment.utcoffset() is None:
                        rejected.append(Rejection(sample, "naive server time (UTC-aware required)"))
                        continue
                    known = time_columns[id(moment)] = to_epoch_us(moment)
                time_us = known
                last_moment = moment
                last_source = None
            source = sample.source_time
            if source is not last_source:
                if source is moment:
                    source_us = None
                else:
                    known = time_columns.get(id(source))
                    if known is None:
                        if source.utcoffset() is None:
                            reason_text = "naive source time (UTC-aware required)"
                            rejected.append(Rejection(sample, reason_text))
                            continue
                        known = time_columns[id(source)] = to_epoch_us(source)
                    source_us = None if known == time_us else known
                last_source = source
            value = sample.value
            number: float | None
            text_value: str | None
            # The common case, decided without a Python call: a float (not NaN) of a float tag.
            if ref.data_type is float_type and type(value) is float and not isnan(value):
                number, text_value = value, None
            else:
                try:
                    number, text_value = encode_sample_value(ref.data_type, value)
                except ValueMismatchError as err:
                    rejected.append(Rejection(sample, str(err)))
                    continue
            quality = sample.quality
            if quality is not last_quality:
                columns = quality_columns.get(id(quality))
                if columns is None:
                    # A diagnostic text is kept readable rather than losing the sample.
                    stored_reason = storable_text(quality.reason) if quality.reason else None
                    columns = (quality.status_code, stored_reason)
                    quality_columns[id(quality)] = columns
                code, reason = columns
                last_quality = quality
            append((ref.id, time_us, source_us, number, text_value, code, reason))
        if rejected:
            raise InvalidSamplesError(tuple(rejected))
        return rows

    def read_raw(
        self, tag: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[Sample]:
        """Stored samples of ``tag`` with start <= server time <= end, in server-time order.

        Values come back in the tag's data type, with both timestamps as stored.
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
                samples.c.server_time,
                samples.c.source_time,
                samples.c.value,
                samples.c.text_value,
                samples.c.quality,
                samples.c.reason,
            ).where(samples.c.tag_id == tag_id, *_within(samples.c.server_time, start, end))
            result = conn.execute(query.order_by(samples.c.server_time)).all()
        # Qualities repeat (mostly Good): build each distinct one once; they are immutable.
        qualities: dict[tuple[int, str | None], Quality] = {}
        decoded: list[Sample] = []
        for server_time, source_time, value, text_value, code, reason in result:
            quality = qualities.get((code, reason))
            if quality is None:
                quality = Quality.from_status_code(int(code), reason or "")
                qualities[(code, reason)] = quality
            decoded.append(
                Sample(
                    tag=tag,
                    value=decode_sample_value(data_type, value, text_value),
                    quality=quality,
                    source_time=server_time if source_time is None else source_time,
                    server_time=server_time,
                )
            )
        return decoded

    def read_raw_many(self, names: Sequence[str], start: datetime, end: datetime) -> list[Sample]:
        """Stored samples of every tag in ``names`` with start <= server time < end, in
        server-time order, in one query: the bulk read of a replay. Tags the historian does
        not know have no samples."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return []
        with self._storage_errors("read samples"), self._read() as conn:
            known = conn.execute(
                select(tags.c.id, tags.c.name, tags.c.data_type).where(tags.c.name.in_(wanted))
            ).all()
            if not known:
                return []
            by_id = {int(row[0]): (str(row[1]), DataType(row[2])) for row in known}
            rows: Sequence[Sequence[Any]]
            if self._dialect == "sqlite":
                # Straight from the driver, times as stored (epoch microseconds): a replay
                # reads millions of rows, and one datetime per distinct time is built below
                # instead of one per row by the column type.
                ids = ", ".join(str(tag_id) for tag_id in by_id)
                cursor = conn.connection.cursor()
                try:
                    cursor.execute(
                        "SELECT tag_id, server_time, source_time, value, text_value, quality, "
                        f"reason FROM samples WHERE tag_id IN ({ids}) AND server_time >= ? "
                        "AND server_time < ? ORDER BY server_time, tag_id",
                        (to_epoch_us(start), to_epoch_us(end)),
                    )
                    rows = cursor.fetchall()
                finally:
                    cursor.close()
            else:
                rows = conn.execute(
                    select(
                        samples.c.tag_id,
                        samples.c.server_time,
                        samples.c.source_time,
                        samples.c.value,
                        samples.c.text_value,
                        samples.c.quality,
                        samples.c.reason,
                    )
                    .where(
                        samples.c.tag_id.in_(list(by_id)),
                        samples.c.server_time >= start,
                        samples.c.server_time < end,
                    )
                    .order_by(samples.c.server_time, samples.c.tag_id)
                ).all()
        times: dict[Any, datetime] = {}
        qualities: dict[tuple[int, str | None], Quality] = {}
        plain = {
            tag_id: name
            for tag_id, (name, data_type) in by_id.items()
            if data_type is DataType.FLOAT
        }
        decoded: list[Sample] = []
        append = decoded.append
        for tag_id, server_raw, source_raw, stored, text_value, code, reason in rows:
            server = times.get(server_raw)
            if server is None:
                server = times[server_raw] = _stored_time(server_raw)
            source = server
            if source_raw is not None and source_raw != server_raw:
                source = times.get(source_raw) or times.setdefault(
                    source_raw, _stored_time(source_raw)
                )
            quality = qualities.get((code, reason))
            if quality is None:
                quality = Quality.from_status_code(int(code), reason or "")
                qualities[(code, reason)] = quality
            name = plain.get(tag_id)
            value: Value | None = stored
            if name is None:  # not a float tag: decode by its type
                name, data_type = by_id[tag_id]
                value = decode_sample_value(data_type, stored, text_value)
            append(Sample(name, value, quality, source, server))
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
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        tag: str | None = None,
        tags: Sequence[str] | None = None,
        origin: CommandOrigin | None = None,
        requested_by: str | None = None,
        limit: int | None = None,
    ) -> list[CommandResult]:
        """Journaled commands issued in [start, end] with their results, oldest first.

        Optionally only those of ``tag`` or of any of ``tags`` (one query for an asset's
        setpoints), of ``origin`` or ``requested_by`` a user or rule; with ``limit``, the newest
        ``limit`` of them (still oldest first).
        """
        query = select(command_journal).where(*_within(command_journal.c.issued_at, start, end))
        if tag is not None:
            query = query.where(command_journal.c.tag == tag)
        if tags is not None:
            query = query.where(command_journal.c.tag.in_(list(tags)))
        if origin is not None:
            query = query.where(command_journal.c.origin == origin.value)
        if requested_by is not None:
            query = query.where(command_journal.c.requested_by == requested_by)
        query = _newest_last(query, limit, command_journal.c.issued_at, command_journal.c.id)
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
        source: str | None = None,
        user: str | None = None,
        limit: int | None = None,
        tag: str | None = None,
        device: str | None = None,
        area: str | None = None,
    ) -> list[Event]:
        """Journaled events with start <= time <= end, oldest first.

        Optionally only those of ``kind``, from ``source`` (a tag, a rule, a device...) or of
        ``user``, or (alarm events) concerning ``tag``, ``device`` or ``area``; with ``limit``,
        the newest ``limit`` of them (still oldest first).
        """
        entries = self.read_event_entries(
            start,
            end,
            kind=kind,
            source=source,
            user=user,
            limit=limit,
            tag=tag,
            device=device,
            area=area,
        )
        return [entry.event for entry in entries]

    def read_event_entries(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        kind: EventKind | None = None,
        source: str | None = None,
        user: str | None = None,
        limit: int | None = None,
        tag: str | None = None,
        device: str | None = None,
        area: str | None = None,
        about: str | None = None,
    ) -> list[JournaledEvent]:
        """As ``read_events``, each event with the tag, device and area it concerns (empty
        where the journal has none: events other than alarm transitions).

        ``about``: only events from that source or concerning that tag (a tag's own events
        and its alarms' events together).
        """
        query = select(event_journal).where(*_within(event_journal.c.time, start, end))
        if about is not None:
            query = query.where(or_(event_journal.c.source == about, event_journal.c.tag == about))
        if kind is not None:
            query = query.where(event_journal.c.kind == kind.value)
        if source is not None:
            query = query.where(event_journal.c.source == source)
        if user is not None:
            query = query.where(event_journal.c.user_name == user)
        if tag is not None:
            query = query.where(event_journal.c.tag == tag)
        if device is not None:
            query = query.where(event_journal.c.device == device)
        if area is not None:
            query = query.where(event_journal.c.area == area)
        query = _newest_last(query, limit, event_journal.c.time, event_journal.c.id)
        with self._storage_errors("read the event journal"), self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            JournaledEvent(
                event=Event(
                    time=row["time"],
                    kind=EventKind(row["kind"]),
                    source=row["source"],
                    message=row["message"],
                    user=row["user_name"],
                    severity=int(row["severity"]),
                ),
                tag=row["tag"] or "",
                device=row["device"] or "",
                area=row["area"] or "",
            )
            for row in rows
        ]

    # --- audit journal ----------------------------------------------------------------------

    def journal_audit(self, record: AuditRecord) -> None:
        """Journal an audited action (a login, a configuration or rule change...)."""
        _require_aware(record.time, "time")
        row = {
            "time": record.time,
            "action": record.action.value,
            "user_name": record.user,
            "target": record.target,
            "detail": record.detail,
            "succeeded": record.succeeded,
        }
        with self._storage_errors("journal an audit record"), self._write() as conn:
            conn.execute(audit_journal.insert(), [row])

    def read_audit(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        action: AuditAction | None = None,
    ) -> list[AuditRecord]:
        """Audit records with start <= time <= end (and of ``action`` if given), oldest first."""
        query = select(audit_journal).where(*_within(audit_journal.c.time, start, end))
        if action is not None:
            query = query.where(audit_journal.c.action == action.value)
        query = query.order_by(audit_journal.c.time, audit_journal.c.id)
        with self._storage_errors("read the audit journal"), self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            AuditRecord(
                time=row["time"],
                action=AuditAction(row["action"]),
                user=row["user_name"],
                target=row["target"],
                detail=row["detail"],
                succeeded=bool(row["succeeded"]),
            )
            for row in rows
        ]

    # --- rule-set versions (ports.RuleVersionStore) ------------------------------------------

    def add_rule_version(
        self, sources: Sequence[RuleSource], author: str, reason: str, created_at: datetime
    ) -> RuleVersion:
        """Store a new pending version numbered one above the highest stored so far.

        Raises ValueError, before writing, for a version without files, a naive time or text a
        database cannot hold (a NUL character, a lone surrogate).
        """
        if not sources:
            raise ValueError("a rule-set version needs at least one rule file")
        _require_aware(created_at, "created_at")
        for item in (
            author,
            reason,
            *(part for source in sources for part in (source.name, source.text)),
        ):
            try:
                check_storable_text(item)
            except ValueMismatchError as err:
                raise ValueError(str(err)) from err
        with self._storage_errors("store a rule-set version"), self._write() as conn:
            if self._dialect == "postgresql":
                # Two processes storing at once must not pick the same number (SQLite's BEGIN
                # IMMEDIATE already serialises writers).
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _RULE_VERSION_LOCK_KEY}
                )
            highest = conn.execute(select(func.max(rule_versions.c.version))).scalar_one()
            number = 1 if highest is None else int(highest) + 1
            conn.execute(
                rule_versions.insert(),
                [
                    {
                        "version": number,
                        "created_at": created_at,
                        "author": author,
                        "reason": reason,
                        "status": RuleVersionStatus.PENDING.value,
                        "detail": "",
                        "decided_at": None,
                    }
                ],
            )
            conn.execute(
                rule_version_files.insert(),
                [
                    {"version": number, "position": index, "name": source.name, "text": source.text}
                    for index, source in enumerate(sources)
                ],
            )
        return RuleVersion(
            version=number,
            created_at=created_at,
            author=author,
            reason=reason,
            sources=tuple(RuleSource(source.name, source.text) for source in sources),
        )

    def rule_versions(self) -> list[RuleVersion]:
        """Every stored version with its files, oldest first."""
        with self._storage_errors("read the rule-set versions"), self._read() as conn:
            return _select_rule_versions(conn, None)

    def rule_version(self, version: int) -> RuleVersion:
        """One stored version with its files; raises UnknownRuleVersionError."""
        with self._storage_errors(f"read rule-set version {version}"), self._read() as conn:
            found = _select_rule_versions(conn, version)
        if not found:
            raise UnknownRuleVersionError(version)
        return found[0]

    def requested_rule_version(self) -> int | None:
        """The version the center is asked to run, or None before any request."""
        query = select(rule_deployment.c.requested_version).where(rule_deployment.c.id == 1)
        with self._storage_errors("read the requested rule-set version"), self._read() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return None if found is None else int(found)

    def request_rule_version(self, version: int, *, requested_at: datetime | None = None) -> None:
        """Ask the center to run ``version``; raises UnknownRuleVersionError."""
        moment = requested_at if requested_at is not None else utc_now()
        _require_aware(moment, "requested_at")
        insert = self._dialect_insert(rule_deployment)
        upsert = insert.on_conflict_do_update(
            index_elements=[rule_deployment.c.id],
            set_={
                "requested_version": insert.excluded.requested_version,
                "requested_at": insert.excluded.requested_at,
            },
        )
        with self._storage_errors("request a rule-set version"), self._write() as conn:
            _require_rule_version(conn, version)
            conn.execute(upsert, [{"id": 1, "requested_version": version, "requested_at": moment}])

    def mark_rule_version(
        self,
        version: int,
        status: RuleVersionStatus,
        detail: str = "",
        *,
        decided_at: datetime | None = None,
    ) -> None:
        """Record what became of ``version``; marking one active marks the version active
        before it superseded, in the same transaction, so at most one is ever active.
        Raises UnknownRuleVersionError."""
        moment = decided_at if decided_at is not None else utc_now()
        _require_aware(moment, "decided_at")
        with self._storage_errors(f"mark rule-set version {version}"), self._write() as conn:
            _require_rule_version(conn, version)
            if status is RuleVersionStatus.ACTIVE:
                conn.execute(
                    update(rule_versions)
                    .where(
                        rule_versions.c.status == RuleVersionStatus.ACTIVE.value,
                        rule_versions.c.version != version,
                    )
                    .values(status=RuleVersionStatus.SUPERSEDED.value, decided_at=moment)
                )
            conn.execute(
                update(rule_versions)
                .where(rule_versions.c.version == version)
                .values(status=status.value, detail=storable_text(detail), decided_at=moment)
            )

    # --- operator overrides (ports.OverrideStore) ---------------------------------------------

    def save_override(self, override: Override) -> None:
        """Store ``override``, replacing any active override of its tag.

        Raises ValueError, before writing, for a value that would not come back as it was
        (NaN, an infinity, a naive datetime) or a naive time.
        """
        _require_aware(override.since, "since")
        _require_aware(override.until, "until")
        try:
            value = encode_typed_value(override.value)
        except ValueMismatchError as err:
            raise ValueError(f"override of {override.tag}: {err}") from err
        row = {
            "tag": override.tag,
            "value": value,
            "user_name": override.user,
            "reason": storable_text(override.reason),
            "since": override.since,
            "until": override.until,
            "priority": int(override.priority),
        }
        insert = self._dialect_insert(command_overrides)
        upsert = insert.on_conflict_do_update(
            index_elements=[command_overrides.c.tag],
            set_={name: insert.excluded[name] for name in row if name != "tag"},
        )
        with self._storage_errors(f"save the override of {override.tag}"), self._write() as conn:
            conn.execute(upsert, [row])

    def clear_override(self, tag: str) -> None:
        """Forget the active override of ``tag`` (released or expired); no-op if none."""
        delete = command_overrides.delete().where(command_overrides.c.tag == tag)
        with self._storage_errors(f"clear the override of {tag}"), self._write() as conn:
            conn.execute(delete)

    def active_overrides(self) -> list[Override]:
        """Every stored override, ordered by tag."""
        query = select(command_overrides).order_by(command_overrides.c.tag)
        with self._storage_errors("read the overrides"), self._read() as conn:
            rows = conn.execute(query).mappings().all()
        overrides: list[Override] = []
        for row in rows:
            try:
                value = decode_typed_value(row["value"])
                priority = CommandPriority(row["priority"])
            except ValueError as err:
                raise StorageError(f"override of {row['tag']} is damaged: {err}") from err
            overrides.append(
                Override(
                    tag=row["tag"],
                    value=value,
                    user=row["user_name"],
                    reason=row["reason"],
                    since=row["since"],
                    until=row["until"],
                    priority=priority,
                )
            )
        return overrides

    # --- alarms (ports.AlarmStore, ports.AlarmRequestStore) -----------------------------------

    def save_alarm_states(self, states: Sequence[AlarmState]) -> None:
        """Store ``states`` in one transaction, replacing the stored state of each alarm.

        Raises ValueError (AlarmRecordError), before writing, for a naive time or a value or
        text the database could not give back as it was.
        """
        rows = list({row["name"]: row for row in map(alarm_records.state_row, states)}.values())
        if not rows:
            return
        insert = self._dialect_insert(alarm_states)
        upsert = insert.on_conflict_do_update(
            index_elements=[alarm_states.c.name],
            set_={name: insert.excluded[name] for name in rows[0] if name != "name"},
        )
        with self._storage_errors("save alarm states"), self._write() as conn:
            conn.execute(upsert, rows)

    def load_alarm_states(self) -> list[AlarmState]:
        """Every stored alarm state, ordered by alarm name."""
        query = select(alarm_states).order_by(alarm_states.c.name)
        with self._storage_errors("read the alarm states"), self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [alarm_records.state_from_row(row) for row in rows]

    def journal_alarm_transitions(self, transitions: Sequence[AlarmTransition]) -> None:
        """Journal ``transitions`` in one transaction, in the alarm journal and as ALARM events
        (with tag, device and area) in the event journal.

        Raises ValueError (AlarmRecordError), before writing, for a naive time or a value the
        database could not give back as it was.
        """
        if not transitions:
            return
        with self._storage_errors("journal alarm transitions"), self._write() as conn:
            alarm_records.write_transitions(conn, transitions)

    def read_alarm_journal(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        alarm: str | None = None,
        area: str | None = None,
        user: str | None = None,
        limit: int | None = None,
    ) -> list[AlarmTransition]:
        """Journaled alarm transitions with start <= time <= end, oldest first; optionally of
        one alarm, area or user; with ``limit``, the newest ``limit`` of them."""
        try:
            query = alarm_records.journal_query(start, end, alarm=alarm, area=area, user=user)
        except AlarmRecordError as err:
            raise ValueError(str(err)) from err
        query = _newest_last(query, limit, alarm_journal.c.time, alarm_journal.c.id)
        with self._storage_errors("read the alarm journal"), self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [alarm_records.transition_from_row(row) for row in rows]

    def latest_alarm_transitions(self) -> dict[str, AlarmTransition]:
        """The newest journaled transition of every alarm that has one, by alarm name: what a
        reader without the site file knows of an alarm's priority, area, tag and device."""
        newest = select(func.max(alarm_journal.c.id)).group_by(alarm_journal.c.alarm)
        query = select(alarm_journal).where(alarm_journal.c.id.in_(newest.scalar_subquery()))
        with self._storage_errors("read the alarm journal"), self._read() as conn:
            rows = conn.execute(query).mappings().all()
        found = (alarm_records.transition_from_row(row) for row in rows)
        return {transition.alarm: transition for transition in found}

    def add_alarm_request(
        self,
        action: str,
        alarms: Sequence[str],
        user: str,
        text: str,
        requested_at: datetime,
        *,
        duration_s: float | None = None,
        one_shot: bool = False,
    ) -> AlarmRequest:
        """Queue a pending alarm request for the running center and return it with its id.

        Raises ValueError (AlarmRecordError), before writing, for no alarm names, too many, a
        non-positive duration, a naive time or text the database cannot hold.
        """
        row = alarm_records.request_row(
            action, alarms, user, text, requested_at, duration_s, one_shot
        )
        with self._storage_errors("queue an alarm request"), self._write() as conn:
            new_id = conn.execute(
                alarm_requests.insert().returning(alarm_requests.c.id), [row]
            ).scalar_one()
            return alarm_records.select_request(conn, int(new_id))

    def pending_alarm_requests(self, limit: int = 100) -> list[AlarmRequest]:
        """The oldest ``limit`` pending alarm requests, oldest first."""
        query = (
            select(alarm_requests)
            .where(alarm_requests.c.status == AlarmRequestStatus.PENDING.value)
            .order_by(alarm_requests.c.id)
            .limit(max(0, limit))
        )
        with self._storage_errors("read the pending alarm requests"), self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [alarm_records.request_from_row(row) for row in rows]

    def alarm_request(self, request_id: int) -> AlarmRequest:
        """One alarm request; raises UnknownAlarmRequestError."""
        with self._storage_errors(f"read alarm request {request_id}"), self._read() as conn:
            return alarm_records.select_request(conn, request_id)

    def decide_alarm_request(
        self, request_id: int, status: AlarmRequestStatus, detail: str, decided_at: datetime
    ) -> None:
        """Record what became of an alarm request; raises UnknownAlarmRequestError."""
        with self._storage_errors(f"decide alarm request {request_id}"), self._write() as conn:
            alarm_records.decide_request(conn, request_id, status, detail, decided_at)

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

    def raw_connection(self) -> PoolProxiedConnection:
        """A DB-API connection from the store's pool (configured as the store's own), for
        tools that measure the database itself; close it to give it back."""
        return self._live_engine().raw_connection()

    @contextmanager
    def reading(self, action: str) -> Iterator[Connection]:
        """A read transaction for the query modules; a database failure is a StorageError
        saying it could not ``action``."""
        with self._storage_errors(action), self._read() as conn:
            yield conn

    @contextmanager
    def writing(self, action: str) -> Iterator[Connection]:
        """A write transaction for rollups and retention; a database failure is a StorageError
        saying it could not ``action``."""
        with self._storage_errors(action), self._write() as conn:
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


def _select_rule_versions(conn: Connection, version: int | None) -> list[RuleVersion]:
    """Stored versions (all, or the one numbered ``version``) with their files, oldest first."""
    heads = select(rule_versions).order_by(rule_versions.c.version)
    files = select(rule_version_files).order_by(
        rule_version_files.c.version, rule_version_files.c.position
    )
    if version is not None:
        heads = heads.where(rule_versions.c.version == version)
        files = files.where(rule_version_files.c.version == version)
    sources: dict[int, list[RuleSource]] = {}
    for row in conn.execute(files).mappings():
        sources.setdefault(int(row["version"]), []).append(RuleSource(row["name"], row["text"]))
    found: list[RuleVersion] = []
    for row in conn.execute(heads).mappings():
        number = int(row["version"])
        try:
            status = RuleVersionStatus(row["status"])
        except ValueError as err:
            raise StorageError(
                f"rule-set version {number} has unknown status {row['status']!r}"
            ) from err
        found.append(
            RuleVersion(
                version=number,
                created_at=row["created_at"],
                author=row["author"],
                reason=row["reason"],
                sources=tuple(sources.get(number, ())),
                status=status,
                detail=row["detail"],
                decided_at=row["decided_at"],
            )
        )
    return found


def _require_rule_version(conn: Connection, version: int) -> None:
    """Raise UnknownRuleVersionError unless ``version`` is stored."""
    query = select(rule_versions.c.version).where(rule_versions.c.version == version)
    if conn.execute(query).scalar_one_or_none() is None:
        raise UnknownRuleVersionError(version)


def _compression_columns(settings: CompressionSettings) -> dict[str, Any]:
    return {
        "compression_mode": settings.mode,
        "exception_deviation": settings.exception_deviation,
        "exception_is_percent": settings.exception_is_percent_of_span,
        "compression_deviation": settings.compression_deviation,
        "compression_is_percent": settings.compression_is_percent_of_span,
        "max_interval_s": settings.max_interval_s,
    }


def _compression_mode(stored: str) -> CompressionMode:
    for mode in COMPRESSION_MODES:
        if mode == stored:
            return mode
    raise StorageError(f"unknown compression mode {stored!r} recorded in the tags table")


def _newest_last(
    query: Select[Any],
    limit: int | None,
    time: KeyedColumnElement[Any],
    row_id: KeyedColumnElement[Any],
) -> Select[Any]:
    """Order oldest first; with ``limit``, keep only the newest ``limit`` rows."""
    if limit is None:
        return query.order_by(time, row_id)
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    newest = query.order_by(time.desc(), row_id.desc()).limit(limit).subquery()
    return select(newest).order_by(newest.c[time.key], newest.c[row_id.key])


def _stored_time(raw: Any) -> datetime:
    """A stored server or source time as a UTC datetime (SQLite: epoch microseconds)."""
    if isinstance(raw, datetime):
        return raw.astimezone(UTC)
    return from_epoch_us(int(raw))


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


def _describe(err: SQLAlchemyError | psycopg.Error) -> str:
    """One line naming the database's own error, without SQLAlchemy's SQL dump."""
    cause: BaseException = err
    if isinstance(err, DBAPIError) and err.orig is not None:
        cause = err.orig
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"
