"""Values at given times: stored, held, interpolated, extrapolated, or Bad before the first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlcenter.model import Quality, Severity, Substatus
from historian import UnknownTagError, attime
from historian.attime import StoredPoint, value_at
from historian.queries import HistoryQueries
from historian.series import Interpolation
from tests.historian.historian_support import LEVEL, MODE, STARTS, at, sample
from tests.historian.query_support import BACKENDS, shared_store

UNCERTAIN = Quality.uncertain(Substatus.SENSOR_NOT_ACCURATE, "drifting")
BAD = Quality.bad(Substatus.COMM_FAILURE, "link down")


@pytest.fixture(scope="module", params=BACKENDS)
def queries(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HistoryQueries]:
    """Known data: a linear level, a stepped counter and a string mode."""
    with shared_store(request, tmp_path_factory) as store:
        store.write_samples(
            [
                sample(LEVEL, 1.0, at(0)),
                sample(LEVEL, 3.0, at(10)),
                sample(LEVEL, 5.0, at(20), UNCERTAIN),
                sample(LEVEL, None, at(30), BAD),
                sample(STARTS, 1, at(0)),
                sample(STARTS, 2, at(10)),
                sample(MODE, "auto", at(0)),
                sample(MODE, "manual", at(10)),
            ]
        )
        yield HistoryQueries(store)


def test_linear_tag_is_interpolated_with_the_worse_quality(queries: HistoryQueries) -> None:
    read = queries.read_at_times(LEVEL, [at(0), at(5), at(15), at(25)])

    assert [s.value for s in read] == [1.0, 2.0, 4.0, 5.0]
    assert [s.quality.severity for s in read] == [
        Severity.GOOD,  # stored exactly there
        Severity.GOOD,
        Severity.UNCERTAIN,  # between Good and Uncertain
        Severity.BAD,  # the next one has no value: held, and Bad as the worse neighbour
    ]
    assert [s.source_time for s in read] == [at(0), at(5), at(15), at(25)]


def test_before_the_first_sample_is_bad_no_data(queries: HistoryQueries) -> None:
    [before] = queries.read_at_times(LEVEL, [at(-1)])

    assert before.value is None
    assert before.quality.severity is Severity.BAD
    assert before.quality.reason == "no data"


def test_after_the_last_sample_the_value_is_extrapolated_as_uncertain(
    queries: HistoryQueries,
) -> None:
    [held] = queries.read_at_times(STARTS, [at(99)])
    [after_bad] = queries.read_at_times(LEVEL, [at(99)])

    assert held.value == 2
    assert held.quality.severity is Severity.UNCERTAIN
    assert held.quality.substatus is Substatus.LAST_USABLE
    assert after_bad.value is None and after_bad.quality == BAD


def test_step_tags_hold_the_previous_value(queries: HistoryQueries) -> None:
    counts = queries.read_at_times(STARTS, [at(5), at(9.999), at(10)])
    modes = queries.read_at_times(MODE, [at(5), at(10)])

    assert [s.value for s in counts] == [1, 1, 2]
    assert all(type(s.value) is int and s.quality.is_good for s in counts)
    assert [s.value for s in modes] == ["auto", "manual"]


@pytest.mark.parametrize("range_read_limit", [10_000, 0], ids=["range-read", "index-seeks"])
def test_answers_come_in_the_order_asked_even_for_many_times(
    queries: HistoryQueries, range_read_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(attime, "RANGE_READ_LIMIT", range_read_limit)
    times = [at(20 - i * 0.04) for i in range(450)]  # descending, more than one statement's worth

    read = queries.read_at_times(LEVEL, times)

    assert [s.source_time for s in read] == times
    for moment, got in zip(times, read, strict=True):
        seconds = (moment - at(0)).total_seconds()
        expected = 1.0 + seconds * 0.2 if seconds <= 10 else 3.0 + (seconds - 10) * 0.2
        assert got.value == pytest.approx(expected)


def test_unknown_tag_is_refused(queries: HistoryQueries) -> None:
    with pytest.raises(UnknownTagError):
        queries.read_at_times("water.nothing", [at(0)])


@settings(max_examples=50, deadline=None)
@given(
    start=st.floats(-1e6, 1e6),
    end=st.floats(-1e6, 1e6),
    offset=st.integers(1, 999_999),
)
def test_interpolated_values_lie_between_their_neighbours(
    start: float, end: float, offset: int
) -> None:
    before = StoredPoint(0, start, Quality.good())
    after = StoredPoint(1_000_000, end, Quality.good())

    value, quality = value_at(offset, before, after, Interpolation.LINEAR)

    assert isinstance(value, float)
    assert min(start, end) - 1e-6 <= value <= max(start, end) + 1e-6
    assert quality.is_good
    assert value_at(offset, before, after, Interpolation.STEP) == (start, Quality.good())
