"""Values built directly for long answers are the very documents the pydantic model describes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

from flask import Flask

from controlcenter.api.encoding import OrjsonProvider
from controlcenter.api.schemas import Value, ValueColumns, value_columns, value_documents
from controlcenter.model import JsonArray, Quality, Sample, SampleColumns, Substatus

WHEN = datetime(2030, 1, 1, 12, tzinfo=UTC)
SAMPLES = [
    Sample("a", 1.5, Quality.good(), WHEN, WHEN),
    Sample("a", 3, Quality.good(), WHEN + timedelta(microseconds=123456), WHEN),
    Sample("a", True, Quality.good(), WHEN, WHEN + timedelta(seconds=1)),
    Sample("a", "open", Quality.uncertain(Substatus.LAST_USABLE, "stale"), WHEN, WHEN),
    Sample("a", None, Quality.bad(Substatus.COMM_FAILURE, "RTU 3 does not answer"), WHEN, WHEN),
    Sample("a", math.nan, Quality.good(), WHEN, WHEN),
    Sample("a", math.inf, Quality.good(), WHEN, WHEN),
    Sample("a", WHEN, Quality.good(), WHEN, WHEN),
    Sample("a", 2.0, Quality.good(), WHEN.astimezone(timezone(timedelta(hours=1))), WHEN),
]


def test_direct_documents_equal_the_models_documents() -> None:
    assert value_documents(SAMPLES) == [
        Value.of(sample).model_dump(mode="json") for sample in SAMPLES
    ]


def _never_parsed(text: str) -> object:
    raise AssertionError(f"parsed {text[:20]}")


def test_columns_read_as_json_text_are_sent_as_that_text_unparsed() -> None:
    # A day of one-second values is sent without parsing and encoding its numbers again; the
    # answer is the document of the same columns held as lists.
    values = "[0.10000000000000001,null,2.5]"
    columns = SampleColumns(
        "a",
        JsonArray("[1893499200000,1893499201000,1893499202000]", 3, _never_parsed),
        JsonArray("[1893499200000,1893499200500,1893499202000]", 3, _never_parsed),
        JsonArray(values, 3, _never_parsed),
        [0, 1, 0],
        [Quality.good(), Quality.bad(Substatus.COMM_FAILURE, "RTU 3 does not answer")],
    )
    provider = OrjsonProvider(Flask(__name__))

    text = provider.encode(value_columns(columns, truncated=False))

    assert b'"value":' + values.encode() in text
    as_lists = SampleColumns(
        "a",
        [1893499200000, 1893499201000, 1893499202000],
        [1893499200000, 1893499200500, 1893499202000],
        [0.1, None, 2.5],
        [0, 1, 0],
        columns.qualities,
    )
    assert json.loads(text) == json.loads(provider.encode(value_columns(as_lists, truncated=False)))
    assert ValueColumns.model_validate_json(text).value == [0.1, None, 2.5]
