"""How values, qualities and tag names are shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from controlcenter.model import Quality, Substatus, Value
from hmi.formatting import element_id, format_time, format_value, quality_class, quality_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.14159, "3.14"),
        (2.0, "2.00"),
        (-0.005, "-0.01"),
        (True, "ON"),
        (False, "OFF"),
        (42, "42"),
        ("auto", "auto"),
        (
            datetime(2025, 12, 24, 19, 30, 15, tzinfo=timezone(timedelta(hours=1))),
            "2025-12-24 18:30:15Z",
        ),
        (None, "—"),
    ],
)
def test_values_are_formatted_for_operators(value: Value | None, text: str) -> None:
    assert format_value(value) == text


def test_element_ids_replace_dots() -> None:
    assert element_id("water.tank1.level") == "water-tank1-level"


def test_quality_classes_and_texts() -> None:
    bad = Quality.bad(Substatus.COMM_FAILURE, "RTU 2 does not answer")

    assert quality_class(Quality.good()) == "quality-good"
    assert quality_class(Quality.uncertain(Substatus.LAST_USABLE, "")) == "quality-uncertain"
    assert quality_class(bad) == "quality-bad"
    assert quality_text(bad) == "bad:comm_failure (RTU 2 does not answer)"
    assert quality_text(Quality.good()) == "good"


def test_times_are_shown_in_utc() -> None:
    cet = timezone(timedelta(hours=1))

    assert (
        format_time(datetime(2030, 1, 1, 13, 0, 5, 900_000, tzinfo=cet)) == "2030-01-01 12:00:05Z"
    )
    assert format_time(datetime(2030, 1, 1, tzinfo=UTC)) == "2030-01-01 00:00:00Z"
