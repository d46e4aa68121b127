"""Values built directly for long answers are the very documents the pydantic model describes."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

from controlcenter.api.schemas import Value, value_documents
from controlcenter.model import Quality, Sample, Substatus

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
