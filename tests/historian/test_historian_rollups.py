"""Rollups: known buckets, incremental refresh (late data, idempotence), exact merges."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from controlcenter.model import Quality, Substatus
from historian import SqlHistorian
from historian.rollups import (
    HOUR_US,
    MINUTE_US,
    Buckets,
    RollupMaintainer,
    merge,
)
from historian.schema import rollup_1h, rollup_1m
from historian.series import micros
from tests.historian.historian_support import LEVEL, STARTS, T0, at, sample

BAD = Quality.bad(Substatus.COMM_FAILURE, "link down")
HOUR0 = T0.replace(minute=0, second=0, microsecond=0)


def _rows(store: SqlHistorian, table: Any) -> list[dict[str, Any]]:
    with store.reading("test") as conn:
        return [dict(row) for row in conn.execute(select(table)).mappings()]


def test_minute_buckets_hold_hand_computed_summaries(store: SqlHistorian) -> None:
    # Minute 12:00: 0 s 0.0, 30 s 6.0, 45 s 9.0 (Bad); minute 12:01: 60 s 3.0.
    start = HOUR0
    written = [
        sample(LEVEL, 0.0, start),
        sample(LEVEL, 6.0, start + timedelta(seconds=30)),
        sample(LEVEL, 9.0, start + timedelta(seconds=45), BAD),
        sample(LEVEL, 3.0, start + timedelta(seconds=60)),
    ]
    store.write_samples(written)
    maintainer = RollupMaintainer(store)
    maintainer.note_written(written)
    assert maintainer.pending == 2

    report = maintainer.refresh()

    assert report.minute_buckets == 2 and maintainer.pending == 0
    first, second = sorted(_rows(store, rollup_1m), key=lambda row: row["bucket"])
    assert first["bucket"] == start
    assert (first["count"], first["good_count"]) == (3, 2)
    assert (first["min"], first["min_time"]) == (0.0, start)
    assert (first["max"], first["max_time"]) == (6.0, start + timedelta(seconds=30))
    assert (first["first_value"], first["last_value"]) == (0.0, 9.0)
    assert first["last_quality"] == BAD.status_code
    # 0->6 over 30 s (90) then 6 held for 15 s towards the Bad sample (90); Bad afterwards.
    assert first["integral"] == pytest.approx(180.0)
    assert first["good_seconds"] == pytest.approx(45.0)
    assert first["twa"] == pytest.approx(4.0)
    assert (second["count"], second["good_seconds"], second["twa"]) == (1, 0.0, None)
    [hour] = _rows(store, rollup_1h)
    # The hour adds the joint from 45 s (Bad) to 60 s: not counted.
    assert (hour["count"], hour["good_count"], hour["min"], hour["max"]) == (4, 3, 0.0, 6.0)
    assert hour["integral"] == pytest.approx(180.0)
    assert hour["good_seconds"] == pytest.approx(45.0)


def test_late_data_recomputes_its_bucket_and_refresh_is_idempotent(store: SqlHistorian) -> None:
    maintainer = RollupMaintainer(store)
    written = [sample(STARTS, i, at(i * 10)) for i in range(12)]
    store.write_samples(written)
    maintainer.note_written(written)
    maintainer.refresh()
    before = _rows(store, rollup_1m)

    late = [sample(STARTS, 100, at(5))]
    store.write_samples(late)
    maintainer.note_written(late)
    maintainer.refresh()
    after = _rows(store, rollup_1m)

    assert sum(row["count"] for row in after) == sum(row["count"] for row in before) + 1
    assert max(row["max"] for row in after) == 100
    maintainer.note_written(late)  # a replayed batch
    maintainer.refresh()
    assert _rows(store, rollup_1m) == after
    maintainer.refresh_range(at(-3600), at(3600))
    assert sorted(_rows(store, rollup_1m), key=str) == sorted(after, key=str)


def test_refresh_keeps_up_with_ten_thousand_values_per_second(store: SqlHistorian) -> None:
    # One second of ingest at 10,000 values/s, at 100 Hz on one tag (two minute buckets).
    written = [sample(LEVEL, float(i % 50), at(i * 0.01)) for i in range(10_000)]
    store.write_samples(written)
    maintainer = RollupMaintainer(store)
    maintainer.note_written(written)

    report = maintainer.refresh()

    # Only the touched minutes are recomputed (how fast is the historian bench's business).
    assert report.minute_buckets == 2


def _reference(times: list[int], values: list[float], good: list[bool], linear: bool) -> float:
    """Integral of one hour's samples, segment by segment, the slow obvious way."""
    total = 0.0
    for i in range(len(times) - 1):
        if not good[i]:
            continue
        seconds = (times[i + 1] - times[i]) / 1e6
        end = values[i + 1] if (linear and good[i + 1]) else values[i]
        total += (values[i] + end) / 2 * seconds
    return total


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(
        st.tuples(
            st.integers(0, 2 * HOUR_US - 1),
            st.floats(-1e6, 1e6),
            st.booleans(),
        ),
        min_size=1,
        max_size=60,
        unique_by=lambda point: point[0],
    ),
    linear=st.booleans(),
)
def test_minutes_merged_into_hours_equal_hours_from_raw(
    points: list[tuple[int, float, bool]], linear: bool
) -> None:
    points.sort()
    base = micros(HOUR0)
    times = np.array([base + t for t, _, _ in points], np.int64)
    values = np.array([v for _, v, _ in points])
    codes = np.array([0 if good else BAD.status_code for _, _, good in points], np.int64)
    raw = Buckets.of_samples(np.ones(times.size, np.int64), times, values, codes)
    linear_tags = {1} if linear else set()

    via_minutes = merge(merge(raw, MINUTE_US, linear_tags), HOUR_US, linear_tags)
    direct = merge(raw, HOUR_US, linear_tags)

    for name in ("bucket", "count", "good_count", "first_time", "last_time", "min_time"):
        assert np.array_equal(getattr(via_minutes, name), getattr(direct, name)), name
    for name in ("min", "max", "first_value", "last_value", "good_seconds"):
        assert np.allclose(getattr(via_minutes, name), getattr(direct, name), equal_nan=True)
    assert np.allclose(via_minutes.integral, direct.integral, rtol=1e-9, atol=1e-3)
    for index, hour in enumerate(direct.bucket.tolist()):
        inside = [i for i, t in enumerate(times.tolist()) if hour <= t < hour + HOUR_US]
        expected = _reference(
            [int(times[i]) for i in inside],
            [float(values[i]) for i in inside],
            [codes[i] == 0 for i in inside],
            linear,
        )
        assert direct.integral[index] == pytest.approx(expected, rel=1e-9, abs=1e-3)
