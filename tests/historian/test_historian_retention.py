"""Retention: raw samples, minute and hour rollups each kept for their own period."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Table, func, select

from controlcenter.model import DataType, TagDef
from historian import SqlHistorian
from historian.retention import RetentionConfigError, RetentionPolicy, apply_retention
from historian.rollups import RollupMaintainer
from historian.schema import rollup_1h, rollup_1m
from tests.historian.historian_support import LEVEL, STARTS, T0, sample

DAY = timedelta(days=1)


def _count(store: SqlHistorian, table: Table) -> int:
    with store.reading("test") as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_each_kind_of_data_is_kept_for_its_own_period(store: SqlHistorian) -> None:
    # Ten days, one sample per tag every 2 hours; the center's clock stands at day 10.
    written = [
        sample(tag, i, T0 + timedelta(hours=2 * i)) for tag in (LEVEL, STARTS) for i in range(120)
    ]
    store.write_samples(written)
    RollupMaintainer(store).refresh_range(T0, T0 + 10 * DAY)
    now = T0 + 10 * DAY
    policy = RetentionPolicy(raw=3 * DAY, rollup_1m=6 * DAY, rollup_1h=30 * DAY, chunk_rows=7)

    report = apply_retention(store, policy, now)

    cutoff = now - 3 * DAY
    for tag in (LEVEL, STARTS):
        kept = store.read_raw(tag)
        assert kept and min(s.server_time for s in kept) >= cutoff
        assert len(kept) == sum(1 for s in written if s.tag == tag and s.server_time >= cutoff)
    if store.backend == "sqlite":
        assert report.raw_rows_deleted == len(written) - 2 * len(kept)
    else:
        # Whole days before the cutoff's day are dropped as partitions; that day's rows deleted.
        assert len(report.partitions_dropped) == 7
        assert report.raw_rows_deleted == 2 * 6  # 00:00 to 10:00 of the cutoff day
    # Minute buckets before day 4 go: one per 2 hours, the one at day 4 too (its bucket starts
    # at 12:00:00, before the cutoff at 12:00:00.123456).
    assert report.rollup_1m_rows_deleted == 2 * 49
    assert _count(store, rollup_1m) == 2 * 71
    assert report.rollup_1h_rows_deleted == 0
    assert _count(store, rollup_1h) == 2 * 120

    again = apply_retention(store, policy, now)
    assert (again.raw_rows_deleted, again.rollup_1m_rows_deleted) == (0, 0)


def test_a_pass_touches_only_the_tags_with_old_rows(
    store: SqlHistorian, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many tags, one of them with rows past the cutoff: only that tag's deletes write.
    many = [TagDef(f"water.meter{i}.flow", "rtu1", f"4{i:04d}", DataType.FLOAT) for i in range(300)]
    store.ensure_tags(many)
    store.write_samples([sample(tag.name, 1, T0 + 9 * DAY) for tag in many])
    # Old rows in the cutoff's own day (PostgreSQL drops whole days before it as partitions).
    store.write_samples([sample(LEVEL, i, T0 + 7 * DAY - timedelta(hours=5 - i)) for i in range(5)])
    writes: list[str] = []
    writing = store.writing

    def counted(purpose: str) -> Any:
        writes.append(purpose)
        return writing(purpose)

    monkeypatch.setattr(store, "writing", counted)
    report = apply_retention(store, RetentionPolicy(raw=3 * DAY), T0 + 10 * DAY)

    assert report.raw_rows_deleted == 5
    assert len(store.read_raw(LEVEL)) == 0 and len(store.read_raw(many[0].name)) == 1
    deletes = [purpose for purpose in writes if purpose.startswith("delete")]
    assert deletes == ["delete old rows of samples"]


def test_policies_that_make_no_sense_are_refused() -> None:
    with pytest.raises(RetentionConfigError, match="raw"):
        RetentionPolicy(raw=timedelta(0))
    with pytest.raises(RetentionConfigError, match="chunk_rows"):
        RetentionPolicy(chunk_rows=0)
    assert RetentionPolicy().raw == timedelta(days=30)
