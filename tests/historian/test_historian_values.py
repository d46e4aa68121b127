"""Storage codecs: times to microseconds and values to columns round-trip exactly."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from controlcenter.cli.main import app
from controlcenter.model import DataType, Quality, Sample, TagDef
from historian.timetypes import from_epoch_us, to_epoch_us
from historian.values import (
    ValueMismatchError,
    decode_json_value,
    decode_sample_value,
    encode_json_value,
    encode_sample_value,
)
from tests.historian.historian_support import Database, at

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


@given(_aware_times)
def test_datetimes_round_trip_as_the_same_instant(value: datetime) -> None:
    columns = encode_sample_value(DataType.DATETIME, value)
    assert columns[0] is None
    decoded = decode_sample_value(DataType.DATETIME, *columns)
    assert decoded == value
    assert isinstance(decoded, datetime)
    assert decoded.utcoffset() == timedelta(0)


def test_datetime_values_fit_datetime_tags_only() -> None:
    with pytest.raises(ValueMismatchError, match="no time zone"):
        encode_sample_value(DataType.DATETIME, datetime(2025, 1, 1))
    with pytest.raises(ValueMismatchError, match="for a datetime tag"):
        encode_sample_value(DataType.DATETIME, "2025-01-01T00:00:00+00:00")
    with pytest.raises(ValueMismatchError, match="for a float tag"):
        encode_sample_value(DataType.FLOAT, datetime(2025, 1, 1, tzinfo=UTC))


def test_datetime_values_round_trip_through_each_database(database: Database) -> None:
    tag = TagDef("plant.last_service", "plc3", "ns=2;s=LastService", DataType.DATETIME)
    store = database.open()
    try:
        store.ensure_tags([tag])
        values = [
            datetime(2025, 12, 24, 18, 30, 15, 123_456, tzinfo=UTC),
            datetime(1601, 1, 1, tzinfo=UTC),  # OPC UA's earliest DateTime (Part 6, 5.2.2.5)
            datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=9))),
        ]
        store.write_samples(
            [
                Sample(tag.name, value, Quality.good(), at(i), at(i))
                for i, value in enumerate(values)
            ]
        )
        stored = store.read_raw(tag.name, at(-1), at(10))
    finally:
        store.close()
    assert [point.value for point in stored] == values
    assert encode_json_value(values[0]) == '"2025-12-24T18:30:15.123456+00:00"'


def test_history_prints_datetime_values_as_iso_8601(sqlite_database: Database) -> None:
    tag = TagDef("plant.last_service", "plc3", "ns=2;s=LastService", DataType.DATETIME)
    moment = datetime(2025, 12, 24, 18, 30, 15, 123_456, tzinfo=UTC)
    store = sqlite_database.open()
    try:
        store.ensure_tags([tag])
        store.write_samples([Sample(tag.name, moment, Quality.good(), at(0), at(0))])
    finally:
        store.close()
    runner = CliRunner()
    for output_format in ("json", "csv"):
        result = runner.invoke(
            app, ["history", tag.name, "--db", sqlite_database.url, "--format", output_format]
        )
        assert result.exit_code == 0, result.output
        assert "2025-12-24T18:30:15.123456+00:00" in result.output
    rows = json.loads(
        runner.invoke(
            app, ["history", tag.name, "--db", sqlite_database.url, "--format", "json"]
        ).output
    )
    assert rows[0]["value"] == "2025-12-24T18:30:15.123456+00:00"
