"""Storage codecs: times to microseconds and values to columns round-trip exactly."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlcenter.model import DataType
from historian.timetypes import from_epoch_us, to_epoch_us
from historian.values import (
    ValueMismatchError,
    decode_json_value,
    decode_sample_value,
    encode_json_value,
    encode_sample_value,
)

_aware_times = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9))]),
)


@given(_aware_times)
def test_times_survive_microsecond_encoding(moment: datetime) -> None:
    decoded = from_epoch_us(to_epoch_us(moment))
    assert decoded == moment
    assert decoded.tzinfo is UTC


def test_microsecond_encoding_is_exact_far_from_the_epoch() -> None:
    moment = datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert to_epoch_us(moment) == 7_258_118_399_999_999


def test_naive_times_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_epoch_us(datetime(2024, 1, 1))


@given(st.floats(allow_nan=False))
def test_floats_round_trip(value: float) -> None:
    columns = encode_sample_value(DataType.FLOAT, value)
    assert decode_sample_value(DataType.FLOAT, *columns) == value


@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_ints_within_the_exact_range_round_trip(value: int) -> None:
    decoded = decode_sample_value(DataType.INT, *encode_sample_value(DataType.INT, value))
    assert decoded == value
    assert type(decoded) is int


@given(st.booleans())
def test_bools_round_trip(value: bool) -> None:
    assert decode_sample_value(DataType.BOOL, *encode_sample_value(DataType.BOOL, value)) is value


@given(st.text(st.characters(codec="utf-8", exclude_characters="\x00")))
def test_strings_round_trip(value: str) -> None:
    columns = encode_sample_value(DataType.STRING, value)
    assert decode_sample_value(DataType.STRING, *columns) == value


@given(
    st.text(),
    st.sampled_from(["\x00", "\ud800", "\udfff"]),
    st.text(),
)
def test_text_with_a_nul_or_a_lone_surrogate_is_refused(
    before: str, unstorable: str, after: str
) -> None:
    # PostgreSQL text holds no NUL; a lone surrogate has no UTF-8 form on either backend.
    with pytest.raises(ValueMismatchError):
        encode_sample_value(DataType.STRING, before + unstorable + after)


@pytest.mark.parametrize("data_type", list(DataType))
def test_a_missing_value_stays_missing(data_type: DataType) -> None:
    assert decode_sample_value(data_type, *encode_sample_value(data_type, None)) is None


@pytest.mark.parametrize(
    ("data_type", "value"),
    [
        (DataType.FLOAT, math.nan),
        (DataType.FLOAT, 10**400),
        (DataType.INT, 2**53 + 1),
        (DataType.INT, 0.5),
        (DataType.BOOL, 0.5),
        (DataType.STRING, 3),
        (DataType.INT, "3"),
    ],
)
def test_values_that_would_come_back_different_are_refused(
    data_type: DataType, value: float | int | str
) -> None:
    with pytest.raises(ValueMismatchError):
        encode_sample_value(data_type, value)


@given(
    st.one_of(
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(),
    )
)
def test_journal_values_keep_their_type(value: bool | int | float | str) -> None:
    decoded = decode_json_value(encode_json_value(value))
    assert decoded == value
    assert type(decoded) is type(value)
