"""Per-tag compression: exception deviation and swinging door keep a subset within the bound."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlcenter.model import DataType, Quality, Sample, Substatus, TagDef, Value
from historian.compression import (
    CompressionConfigError,
    CompressionSettings,
    Compressor,
    ExceptionFilter,
    SampleFilter,
    SwingingDoorFilter,
    TagCompressor,
    compression_ratio,
    reconstruction_errors,
)
from tests.historian.historian_support import T0

TAG = "water.tank1.level"
GOOD = Quality.good()
QUALITIES = (
    GOOD,
    Quality.bad(Substatus.COMM_FAILURE, "link down"),
    Quality.uncertain(Substatus.LAST_USABLE, "stale"),
)


def sample(seconds: float, value: Value | None, quality: Quality = GOOD, tag: str = TAG) -> Sample:
    time = T0 + timedelta(seconds=seconds)
    return Sample(tag, value, quality, time, time)


def run(stage: SampleFilter | TagCompressor, samples: Sequence[Sample]) -> list[Sample]:
    out = [stored for s in samples for stored in stage.offer(s)]
    return out + stage.flush()


def positions(raw: Sequence[Sample], stored: Sequence[Sample]) -> list[int]:
    """Where each stored sample is in the raw series, by identity (fails if it is not there)."""
    index_of = {id(s): i for i, s in enumerate(raw)}
    return [index_of[id(s)] for s in stored]


# Signals: a random walk (so the door has something to follow) with repeats, steps, quality
# changes and, in the mixed series, non-numeric values; times strictly increasing, in ms.
_step = st.one_of(
    st.just(0.0),
    st.floats(-10.0, 10.0, allow_nan=False),
    st.floats(-500.0, 500.0, allow_nan=False),
)
_quality = st.sampled_from(QUALITIES).flatmap(
    lambda q: st.just(q) if q is not GOOD else st.sampled_from((GOOD,) * 8 + QUALITIES)
)


@st.composite
def numeric_series(draw: st.DrawFn) -> list[Sample]:
    count = draw(st.integers(1, 120))
    value = draw(st.floats(-1000.0, 1000.0, allow_nan=False))
    quality = GOOD
    seconds = 0.0
    out = []
    for _ in range(count):
        seconds += draw(st.integers(1, 5000)) / 1000.0
        value += draw(_step)
        if draw(st.integers(0, 19)) == 0:
            quality = draw(st.sampled_from(QUALITIES))
        number: Value = round(value) if draw(st.integers(0, 9)) == 0 else value
        out.append(sample(seconds, number, quality))
    return out


@st.composite
def mixed_series(draw: st.DrawFn) -> list[Sample]:
    series = draw(numeric_series())
    out = []
    for s in series:
        kind = draw(st.integers(0, 9))
        value: Value | None = s.value
        if kind == 0:
            value = draw(st.booleans())
        elif kind == 1:
            value = draw(st.sampled_from(["auto", "manual"]))
        elif kind == 2 and not s.quality.is_good:
            value = None
        elif kind == 3:
            value = draw(st.sampled_from([math.nan, math.inf]))
        out.append(Sample(s.tag, value, s.quality, s.source_time, s.server_time))
    return out


_settings = st.builds(
    CompressionSettings,
    mode=st.sampled_from(["raw", "deadband", "swinging_door"]),
    exception_deviation=st.sampled_from([0.0, 0.5]) | st.floats(0.0, 50.0),
    compression_deviation=st.sampled_from([0.0, 1.0]) | st.floats(0.0, 50.0),
    max_interval_s=st.sampled_from([math.inf, 1.0]) | st.floats(0.5, 30.0),
)


def within_bound(raw: Sequence[Sample], stored: Sequence[Sample], bound: float) -> None:
    # Float slack: the door's slopes and the interpolation each round a few times.
    numbers = [abs(s.value) for s in raw if is_number(s)]  # type: ignore[arg-type]
    scale = 1.0 + max(numbers, default=0.0) + bound
    for raw_sample, error in zip(raw, reconstruction_errors(raw, stored), strict=True):
        if is_number(raw_sample):
            assert error <= bound + 1e-9 * scale, (raw_sample, error, bound)
        else:
            assert error == 0.0, (raw_sample, error)


def is_number(s: Sample) -> bool:
    """Whether compression treats the value as a number (bool, NaN and inf are not)."""
    return (
        isinstance(s.value, int | float)
        and not isinstance(s.value, bool)
        and (math.isfinite(s.value))
    )


@settings(max_examples=100)
@given(mixed_series(), _settings)
def test_stored_samples_are_the_input_in_order_with_first_last_and_quality_changes(
    raw: list[Sample], compression: CompressionSettings
) -> None:
    stored = run(TagCompressor(compression), raw)
    where = positions(raw, stored)
    assert where == sorted(set(where))
    assert where[0] == 0
    assert where[-1] == len(raw) - 1
    kept = set(where)
    for i, (before, after) in enumerate(pairwise(raw)):
        if before.quality != after.quality:
            assert {i, i + 1} <= kept
        if not is_number(after):
            changed = type(before.value) is not type(after.value) or before.value != after.value
            if changed and not (before.value != before.value and after.value != after.value):
                assert {i, i + 1} <= kept
    if compression.mode == "raw":
        assert stored == raw


@settings(max_examples=100)
@given(mixed_series(), _settings)
def test_every_sample_is_reconstructed_within_the_bound(
    raw: list[Sample], compression: CompressionSettings
) -> None:
    stored = run(TagCompressor(compression), raw)
    within_bound(raw, stored, compression.error_bound)


@settings(max_examples=100)
@given(numeric_series(), st.floats(0.0, 50.0))
def test_swinging_door_alone_keeps_the_compression_deviation(
    raw: list[Sample], deviation: float
) -> None:
    stored = run(SwingingDoorFilter(deviation), raw)
    within_bound(raw, stored, deviation)


@settings(max_examples=100)
@given(numeric_series(), st.floats(0.0, 50.0))
def test_exception_alone_keeps_twice_the_exception_deviation(
    raw: list[Sample], deviation: float
) -> None:
    stored = run(ExceptionFilter(deviation), raw)
    within_bound(raw, stored, 2.0 * deviation)


@settings(max_examples=100)
@given(mixed_series(), _settings)
def test_stored_samples_are_never_further_apart_than_the_max_interval_over_input(
    raw: list[Sample], compression: CompressionSettings
) -> None:
    stored = run(TagCompressor(compression), raw)
    where = positions(raw, stored)
    for (i, a), (j, b) in pairwise(zip(where, stored, strict=True)):
        gap = (b.source_time - a.source_time).total_seconds()
        assert gap <= compression.max_interval_s or j == i + 1


@given(numeric_series(), numeric_series(), _settings)
def test_compressor_keeps_tags_apart(
    first: list[Sample], second: list[Sample], compression: CompressionSettings
) -> None:
    other = [Sample("other", s.value, s.quality, s.source_time, s.server_time) for s in second]
    interleaved = sorted([*first, *other], key=lambda s: s.source_time)
    compressor = Compressor({TAG: compression, "other": compression})
    stored = compressor.offer_batch(interleaved) + compressor.flush()
    assert [s for s in stored if s.tag == TAG] == run(TagCompressor(compression), first)
    assert [s for s in stored if s.tag == "other"] == run(TagCompressor(compression), other)


def test_a_straight_ramp_compresses_to_its_two_ends() -> None:
    ramp = [sample(t, 2.0 + 0.25 * t) for t in range(100)]
    stored = run(SwingingDoorFilter(0.01), ramp)
    assert stored == [ramp[0], ramp[-1]]
    assert compression_ratio(ramp, stored) == 50.0
    assert max(reconstruction_errors(ramp, stored)) <= 1e-9


def test_a_step_is_kept() -> None:
    step = [sample(t, 0.0 if t < 4 else 5.0) for t in range(7)]
    stored = run(SwingingDoorFilter(0.1), step)
    assert stored == [step[0], step[3], step[4], step[6]]
    assert max(reconstruction_errors(step, stored)) == 0.0


def test_the_door_stores_the_last_point_it_was_open_for() -> None:
    # Noise of ±0.3 around the line 0 → 10 until t=10; then the signal turns back down.
    points = [sample(t, float(t) + (0.3 if t % 2 else -0.3) * (0 < t < 10)) for t in range(11)]
    points += [sample(11, 5.0)]
    stored = run(SwingingDoorFilter(1.0), points)
    assert stored[:2] == [points[0], points[10]]
    assert max(reconstruction_errors(points, stored)) <= 1.0 + 1e-12


def test_the_heartbeat_stores_a_flat_line_every_max_interval() -> None:
    flat = [sample(t, 7.0) for t in range(101)]
    stored = run(
        TagCompressor(CompressionSettings("swinging_door", 0.1, False, 0.1, False, 10)), flat
    )
    assert [s.source_time for s in stored] == [T0 + timedelta(seconds=t) for t in range(0, 101, 10)]


def test_a_quality_change_stores_the_value_before_it_and_itself() -> None:
    bad = Quality.bad(Substatus.COMM_FAILURE, "link down")
    series = [sample(0, 1.0), sample(1, 1.0), sample(2, 1.0), sample(3, 1.0, bad), sample(4, 1.0)]
    stored = run(TagCompressor(CompressionSettings("swinging_door", 0.5, False, 0.5)), series)
    assert stored == [series[0], series[2], series[3], series[4]]


def test_exception_passes_the_previous_value_with_the_exception() -> None:
    series = [sample(0, 0.0), sample(1, 0.2), sample(2, 0.1), sample(3, 3.0), sample(4, 3.1)]
    stored = run(ExceptionFilter(0.5), series)
    assert stored == [series[0], series[2], series[3], series[4]]


def test_exception_alone_can_miss_by_almost_twice_its_deviation() -> None:
    # The passed "previous" value is one deviation above, a rejected one just before it one
    # below: the line between the stored values misses the rejected one by nearly 2 deviations.
    series = [sample(0, 0.0), sample(1.99, -1.0), sample(2, 1.0), sample(3, 10.0)]
    stored = run(ExceptionFilter(1.0), series)
    assert stored == [series[0], series[2], series[3]]
    error = reconstruction_errors(series, stored)[1]
    assert 1.9 < error <= 2.0


def test_non_numeric_values_are_stored_on_change_only() -> None:
    modes = ["auto", "auto", "manual", "manual", "manual", "auto"]
    series = [sample(t, mode) for t, mode in enumerate(modes)]
    stored = run(TagCompressor(CompressionSettings("swinging_door", 1.0, False, 1.0)), series)
    assert stored == [series[0], series[1], series[2], series[4], series[5]]
    running = [sample(0, True), sample(1, 1), sample(2, 1)]
    assert run(ExceptionFilter(5.0), running) == running


def test_an_out_of_order_sample_is_stored_and_restarts_the_filter() -> None:
    series = [sample(0, 0.0), sample(1, 0.0), sample(2, 0.0), sample(1.5, 0.0), sample(3, 0.0)]
    stored = run(SwingingDoorFilter(1.0), series)
    assert stored == [series[0], series[2], series[3], series[4]]


def test_raw_mode_and_unknown_tags_store_everything() -> None:
    series = [sample(t, 1.0) for t in range(5)]
    assert run(TagCompressor(CompressionSettings()), series) == series
    other = [sample(t, 1.0, tag="other") for t in range(5)]
    compressor = Compressor({TAG: CompressionSettings("deadband", 5.0)})
    assert compressor.offer_batch(other) == other
    assert compressor.offer_batch(series) == [series[0]]
    assert compressor.flush() == [series[-1]]


def test_percent_of_span_resolves_against_the_tag_range() -> None:
    tag = TagDef(TAG, "rtu1", "40001", DataType.FLOAT, unit="m", low=2.0, high=10.0)
    relative = CompressionSettings("swinging_door", 1.0, True, 0.5, True)
    resolved = relative.resolved_for(tag)
    assert resolved.exception_deviation == pytest.approx(0.08)
    assert resolved.compression_deviation == pytest.approx(0.04)
    assert resolved.is_absolute
    assert resolved.error_bound == pytest.approx(0.04 + 2 * 0.08)
    mixed = CompressionSettings("swinging_door", 0.3, False, 50.0, True).resolved_for(tag)
    assert (mixed.exception_deviation, mixed.compression_deviation) == (0.3, 4.0)
    compressor = Compressor.for_tags({TAG: relative}, [tag])
    assert compressor.offer_batch([sample(0, 1.0)]) == [sample(0, 1.0)]


def test_percent_of_span_needs_a_range() -> None:
    relative = CompressionSettings("deadband", 1.0, True)
    with pytest.raises(CompressionConfigError, match="tank1"):
        relative.resolved_for(TagDef(TAG, "rtu1", "40001", DataType.FLOAT))
    with pytest.raises(CompressionConfigError, match="low < high"):
        relative.resolve_span(5.0, 5.0)
    with pytest.raises(CompressionConfigError, match="not resolved"):
        Compressor({TAG: relative})
    with pytest.raises(CompressionConfigError, match="resolve"):
        TagCompressor(relative)
    with pytest.raises(CompressionConfigError, match="not defined"):
        Compressor.for_tags({"nowhere": relative}, [])


@pytest.mark.parametrize(
    "bad",
    [
        {"exception_deviation": -0.1},
        {"compression_deviation": math.nan},
        {"compression_deviation": math.inf},
        {"max_interval_s": 0.0},
        {"max_interval_s": math.nan},
        {"mode": "lossy"},
    ],
)
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(CompressionConfigError):
        CompressionSettings(**bad)  # type: ignore[arg-type]


def test_reconstruction_errors_need_increasing_times() -> None:
    with pytest.raises(ValueError, match="raw"):
        reconstruction_errors([sample(1, 0.0), sample(1, 0.0)], [])
    assert reconstruction_errors([sample(0, 1.0)], []) == [math.inf]
    assert reconstruction_errors([sample(0, 1.0)], [sample(0, 2.0)]) == [1.0]


def test_filters_refuse_a_negative_deviation() -> None:
    with pytest.raises(CompressionConfigError):
        SwingingDoorFilter(-1.0)
    with pytest.raises(CompressionConfigError):
        ExceptionFilter(math.nan)
