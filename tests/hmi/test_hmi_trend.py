"""Trend points, min/max decimation and the trend figure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlcenter.model import Quality, Sample, Substatus
from hmi.trend import Point, TrendSeries, decimate_min_max, trend_figure, trend_points

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def at(second: int) -> datetime:
    return T0 + timedelta(seconds=second)


def test_bad_samples_become_gaps_and_uncertain_ones_stay() -> None:
    samples = [
        Sample("t", 1.5, Quality.good(), at(0), at(0)),
        Sample("t", 2.0, Quality.bad(Substatus.COMM_FAILURE, "lost"), at(1), at(1)),
        Sample("t", 3, Quality.uncertain(Substatus.LAST_USABLE, "old"), at(2), at(2)),
        Sample("t", True, Quality.good(), at(3), at(3)),
        Sample("t", "text", Quality.good(), at(4), at(4)),
    ]

    assert trend_points(samples) == [
        (at(0), 1.5),
        (at(1), None),
        (at(2), 3.0),
        (at(3), 1.0),
        (at(4), None),
    ]


def test_short_series_are_not_decimated() -> None:
    points: list[Point] = [(at(i), float(i)) for i in range(10)]

    assert decimate_min_max(points, 10) == points


def test_decimation_keeps_peaks_and_gaps() -> None:
    points: list[Point] = [(at(i), 0.0) for i in range(10_000)]
    points[4_321] = (at(4_321), 99.0)
    points[7_000] = (at(7_000), -5.0)
    points[8_000] = (at(8_000), None)

    kept = decimate_min_max(points, 100)

    assert len(kept) <= 150
    assert (at(4_321), 99.0) in kept
    assert (at(7_000), -5.0) in kept
    assert (at(8_000), None) in kept


def test_decimation_needs_room_for_two_points() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        decimate_min_max([], 1)


@given(
    values=st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=0, max_size=3000),
    max_points=st.integers(2, 500),
)
def test_decimation_is_ordered_bounded_and_keeps_extremes(
    values: list[float | None], max_points: int
) -> None:
    points: list[Point] = [(at(i), v) for i, v in enumerate(values)]

    kept = decimate_min_max(points, max_points)

    assert [p[0] for p in kept] == sorted({p[0] for p in kept})
    assert set(kept) <= set(points)
    assert len(kept) <= max(len(points) if len(points) <= max_points else 0, 3 * (max_points // 2))
    numbers = [v for v in values if v is not None]
    kept_numbers = [p[1] for p in kept if p[1] is not None]
    if numbers:
        assert max(kept_numbers) == max(numbers)
        assert min(kept_numbers) == min(numbers)
    assert (None in values) == any(p[1] is None for p in kept)


def test_figure_spans_the_requested_window_with_one_trace_per_series() -> None:
    samples = [Sample("water.tank1.level", 2.5, Quality.good(), at(i), at(i)) for i in range(5)]
    figure = trend_figure(
        [TrendSeries("water.tank1.level", "m", samples), TrendSeries("other", "", [])],
        at(-60),
        at(4),
    )

    assert [trace.name for trace in figure.data] == ["water.tank1.level [m]", "other"]
    assert list(figure.data[0].y) == [2.5] * 5
    assert list(figure.layout.xaxis.range) == [at(-60), at(4)]
    assert figure.layout.yaxis.title.text == "m"


def test_figure_shows_a_message() -> None:
    figure = trend_figure([], at(0), at(60), message="History unavailable: disk full")

    assert [a.text for a in figure.layout.annotations] == ["History unavailable: disk full"]
