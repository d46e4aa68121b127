"""What the leak detector has learnt, kept in the historian (schema version 6).

One row per night-flow alarm in ``leak_baselines``: the alarm's part of
``alarms.leaks.NightFlowDetector.state()`` as JSON text. The store neither parses nor checks
the document (the detector does, alarm by alarm, so one damaged row costs one alarm its
baseline and nothing else); it only writes it as one upsert per save and reads it back.

Why the historian: the learnt nights belong with the alarm states (``alarm_states``) they make
sense with, in the same database and backups, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from historian.schema import leak_baselines
from historian.store import SqlHistorian
from historian.values import ValueMismatchError, check_storable_text


class LeakBaselineError(ValueError):
    """A baseline document the database could not hold as it is (NUL characters, naive time)."""


class LeakBaselineStore:
    """Saves and loads the night-flow detector's documents, one row per alarm."""

    def __init__(self, store: SqlHistorian) -> None:
        self._store = store

    def save_leak_baselines(self, documents: Mapping[str, str], saved_at: datetime) -> None:
        """Replace the stored document of each alarm in ``documents`` in one transaction;
        raises LeakBaselineError before writing anything the database cannot hold."""
        if saved_at.utcoffset() is None:
            raise LeakBaselineError("saved_at must carry a time zone")
        rows = []
        for alarm, document in documents.items():
            try:
                check_storable_text(alarm)
                check_storable_text(document)
            except ValueMismatchError as err:
                raise LeakBaselineError(f"leak baseline of {alarm!r}: {err}") from err
            rows.append({"alarm": alarm, "document": document, "saved_at": saved_at})
        if not rows:
            return
        with self._store.writing("save the leak baselines") as conn:
            dialect = conn.dialect.name
            insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(leak_baselines)
            upsert = insert.on_conflict_do_update(
                index_elements=[leak_baselines.c.alarm],
                set_={
                    "document": insert.excluded.document,
                    "saved_at": insert.excluded.saved_at,
                },
            )
            conn.execute(upsert, rows)

    def load_leak_baselines(self) -> dict[str, str]:
        """Every stored document by alarm name."""
        query = select(leak_baselines.c.alarm, leak_baselines.c.document)
        with self._store.reading("read the leak baselines") as conn:
            return {str(alarm): str(document) for alarm, document in conn.execute(query)}
