"""Aggregates per interval (OPC UA Part 13) against hand-computed values, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlcenter.model import DataType, Quality, Sample, Severity, Substatus
from historian.aggregates import Aggregate, AggregateError, IntervalGrid, compute_aggregates
from historian.queries import HistoryQueries
from historian.series import Interpolation, Series, TagInfo, micros
from tests.historian.historian_support import LEVEL, MODE, STARTS, T0, at, sample
from tests.historian.query_support import BACKENDS, shared_store

MINUTE = timedelta(minutes=1)
BAD = Quality.bad(Substatus.COMM_FAILURE, "link down")
ALL = [aggregate.value for aggregate in Aggregate]


@pytest.fixture(scope="module", params=BACKENDS)
def queries(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HistoryQueries]:
    """A linear level over three minutes, with a Bad sample in the second, and a step counter.

    level: 0 s 0.0, 30 s 6.0, 60 s 6.0, 90 s 2.0 (Bad), 120 s 4.0 (the last one)
    starts: 0 s 1, 20 s 4, 60 s 0
    """
    with shared_store(request, tmp_path_factory) as store:
        store.write_samples(
            [
                sample(LEVEL, 0.0, at(0)),
                sample(LEVEL, 6.0, at(30)),
                sample(LEVEL, 6.0, at(60)),
                sample(LEVEL, 2.0, at(90), BAD),
                sample(LEVEL, 4.0, at(120)),
                sample(STARTS, 1, at(0)),
                sample(STARTS, 4, at(20)),
                sample(STARTS, 0, at(60)),
                sample(MODE, "auto", at(0)),
            ]
        )
        yield HistoryQueries(store)


def _values(results: list[Sample]) -> list[object]:
    return [s.value for s in results]


def _severities(results: list[Sample]) -> list[Severity]:
    return [s.quality.severity for s in results]


def test_time_average_weighs_by_time_with_bounds_and_bad_gaps(queries: HistoryQueries) -> None:
    result = queries.read_processed(LEVEL, at(0), at(180), MINUTE, ["time_average"])
    twa = result["time_average"]

    # [0, 60): 0->6 over 30 s (mean 3) then 6 flat: (90 + 180) / 60 = 4.5, all Good.
    # [60, 120): 6 held for 30 s towards a Bad value, then 30 s Bad: 6.0 over half.
    # [120, 180): nothing after 4.0 at 120 s: extrapolated, Uncertain.
    assert _values(twa) == [pytest.approx(4.5), pytest.approx(6.0), pytest.approx(4.0)]
    assert _severities(twa) == [Severity.GOOD, Severity.UNCERTAIN, Severity.UNCERTAIN]
    assert [s.source_time for s in twa] == [at(0), at(60), at(120)]


def test_percent_good_counts_time_not_samples(queries: HistoryQueries) -> None:
    result = queries.read_processed(LEVEL, at(0), at(180), MINUTE, ["percent_good"])

    assert _values(result["percent_good"]) == [100.0, 50.0, 0.0]


def test_raw_value_aggregates_use_good_values_only(queries: HistoryQueries) -> None:
    names = ["minimum", "maximum", "count", "average"]
    result = queries.read_processed(LEVEL, at(0), at(180), MINUTE, names)

    assert _values(result["minimum"]) == [0.0, 6.0, 4.0]
    assert _values(result["maximum"]) == [6.0, 6.0, 4.0]
    assert _values(result["count"]) == [2, 1, 1]
    assert _values(result["average"]) == [3.0, 6.0, 4.0]
    assert _severities(result["minimum"]) == [Severity.GOOD, Severity.UNCERTAIN, Severity.GOOD]


def test_start_end_and_interpolative(queries: HistoryQueries) -> None:
    result = queries.read_processed(
        LEVEL, at(0), at(180), MINUTE, ["start", "end", "interpolative"]
    )

    assert _values(result["start"]) == [0.0, 6.0, 4.0]
    assert [s.source_time for s in result["start"]] == [at(0), at(60), at(120)]
    assert _values(result["end"]) == [6.0, 2.0, 4.0]
    assert [s.source_time for s in result["end"]] == [at(30), at(90), at(120)]
    assert result["end"][1].quality.status_code == BAD.status_code
    assert _values(result["interpolative"]) == [0.0, 6.0, 4.0]


def test_an_interval_before_any_data_is_bad_no_data(queries: HistoryQueries) -> None:
    result = queries.read_processed(LEVEL, at(-60), at(0), MINUTE, ALL)

    for name in ("time_average", "minimum", "maximum", "average", "interpolative", "start"):
        [only] = result[name]
        assert only.value is None and only.quality.severity is Severity.BAD, name
    assert _values(result["count"]) == [0]
    assert _values(result["percent_good"]) == [0.0]


def test_the_last_interval_may_be_shorter(queries: HistoryQueries) -> None:
    result = queries.read_processed(LEVEL, at(0), at(75), MINUTE, ["time_average", "count"])

    # [60, 75): 6.0 held towards the Bad sample at 90 s, all of it Good.
    assert _values(result["time_average"]) == [pytest.approx(4.5), pytest.approx(6.0)]
    assert _severities(result["time_average"]) == [Severity.GOOD, Severity.GOOD]
    assert _values(result["count"]) == [2, 1]


def test_step_tags_hold_each_value_until_the_next(queries: HistoryQueries) -> None:
    result = queries.read_processed(
        STARTS, at(0), at(60), MINUTE, ["time_average", "minimum", "maximum", "interpolative"]
    )

    # 1 for 20 s, then 4 for 40 s: 180 / 60.
    assert _values(result["time_average"]) == [pytest.approx(3.0)]
    assert _values(result["minimum"]) == [1]
    assert _values(result["maximum"]) == [4]
    assert _values(result["interpolative"]) == [1]


def test_bad_requests_are_refused(queries: HistoryQueries) -> None:
    with pytest.raises(AggregateError, match="unknown aggregate 'median'"):
        queries.read_processed(LEVEL, at(0), at(60), MINUTE, ["median"])
    with pytest.raises(AggregateError, match="string tag"):
        queries.read_processed(MODE, at(0), at(60), MINUTE, ["count"])
    with pytest.raises(AggregateError, match="exceed"):
        queries.read_processed(LEVEL, at(0), at(10**6), timedelta(seconds=1), ["count"])
    with pytest.raises(AggregateError, match="positive"):
        queries.read_processed(LEVEL, at(0), at(60), timedelta(0), ["count"])


_LEVEL_INFO = TagInfo(1, LEVEL, DataType.FLOAT, Interpolation.LINEAR)


@settings(max_examples=50, deadline=None)
@given(
    value=st.floats(-1e9, 1e9),
    offsets=st.lists(st.integers(0, 600_000_000), min_size=1, max_size=30, unique=True),
)
def test_time_average_of_a_constant_is_the_constant(value: float, offsets: list[int]) -> None:
    times = micros(T0) + np.array(sorted(offsets), np.int64)
    series = Series(times, np.full(times.size, value), np.zeros(times.size, np.int64))
    grid = IntervalGrid.of(T0, T0 + timedelta(minutes=10), MINUTE)

    result = compute_aggregates(_LEVEL_INFO, series, grid, [Aggregate.TIME_AVERAGE])

    averages = [twa.value for twa in result[Aggregate.TIME_AVERAGE] if twa.value is not None]
    # Every interval from the one holding the first sample on has a value (extrapolated after).
    assert len(averages) == 10 - min(offsets) // 60_000_000
    assert averages == [pytest.approx(value, rel=1e-9, abs=1e-6)] * len(averages)
