"""Trends: at most N points, from raw data or rollups by range, with the extremes kept."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from historian import SqlHistorian
from historian.queries import HistoryQueries
from historian.retention import RetentionPolicy, apply_retention
from historian.rollups import RollupMaintainer
from historian.trend import TrendError, select_points
from tests.historian.historian_support import LEVEL, MODE, T0, at, sample

DAY = timedelta(days=1)


def test_a_short_range_is_drawn_from_raw_samples(store: SqlHistorian) -> None:
    store.write_samples([sample(LEVEL, float(i % 10), at(i)) for i in range(600)])
    queries = HistoryQueries(store)

    everything = queries.trend(LEVEL, at(0), at(600), 1000)
    reduced = queries.trend(LEVEL, at(0), at(600), 50)

    assert everything.source == "raw"
    assert list(everything.values) == [float(i % 10) for i in range(600)]
    assert len(reduced) <= 50 and reduced.source == "raw"
    assert min(v for v in reduced.values if v is not None) == 0.0
    assert max(v for v in reduced.values if v is not None) == 9.0
    assert [s.source_time for s in queries.read_trend(LEVEL, at(0), at(10), 100)] == [
        at(i) for i in range(10)
    ]


def test_thirty_days_are_drawn_from_rollups_not_raw_rows(store: SqlHistorian) -> None:
    # 30 days, one sample each 15 minutes, and a one-off spike: then the raw rows of all but
    # the last day are deleted. A trend over the 30 days can only come from the rollups.
    written = [sample(LEVEL, float(i % 12), T0 + timedelta(minutes=15 * i)) for i in range(30 * 96)]
    spike_at = T0 + timedelta(days=3, minutes=45)
    written[3 * 96 + 3] = sample(LEVEL, 999.0, spike_at)
    store.write_samples(written)
    maintainer = RollupMaintainer(store)
    maintainer.refresh_range(T0, T0 + 30 * DAY)
    end = T0 + 30 * DAY
    apply_retention(store, RetentionPolicy(raw=DAY), end)
    queries = HistoryQueries(store)
    assert queries.read_raw(LEVEL, T0, end - 2 * DAY) == []

    trend = queries.trend(LEVEL, T0, end, 500)

    assert trend.source == "rollup_1h"
    assert 100 < len(trend) <= 500  # 720 hours, a min and a max each, brought down to 500
    assert trend.times[0] < T0 + DAY and trend.times[-1] > end - DAY
    assert max(v for v in trend.values if v is not None) == 999.0
    assert trend.times[trend.values.index(999.0)] == spike_at
    assert min(v for v in trend.values if v is not None) == 0.0


def test_data_newer_than_the_rollups_is_read_raw(store: SqlHistorian) -> None:
    old = [sample(LEVEL, 1.0, T0 + timedelta(minutes=5 * i)) for i in range(3 * 288)]
    store.write_samples(old)
    RollupMaintainer(store).refresh_range(T0, T0 + 3 * DAY)
    fresh = [sample(LEVEL, 5.0, T0 + 3 * DAY + timedelta(minutes=i)) for i in range(30)]
    store.write_samples(fresh)

    # 894 raw samples are more than 25 per point asked for: the rollups are used.
    trend = HistoryQueries(store).trend(LEVEL, T0, T0 + 4 * DAY, 20)

    assert trend.source == "rollup_1h"
    assert trend.values[-1] == 5.0
    assert trend.times[-1] == fresh[-1].server_time


def test_bad_requests_are_refused(store: SqlHistorian) -> None:
    queries = HistoryQueries(store)
    with pytest.raises(TrendError, match="string tag"):
        queries.trend(MODE, at(0), at(10), 100)
    with pytest.raises(TrendError, match="at least"):
        queries.trend(LEVEL, at(0), at(10), 2)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=3000),
    max_points=st.integers(5, 400),
)
def test_downsampling_keeps_the_global_extremes(values: list[float], max_points: int) -> None:
    times = np.arange(len(values), dtype=np.int64) * 1_000_000
    array = np.array(values)

    picked = select_points(times, array, max_points)

    assert len(picked) <= max_points
    assert list(picked) == sorted(set(picked.tolist()))
    assert array[picked].max() == array.max()
    assert array[picked].min() == array.min()
