"""The API's documents (pydantic): what it returns and accepts, as the OpenAPI document shows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import orjson
from pydantic import BaseModel, Field

from controlcenter.model import JsonArray, Quality, Sample, SampleColumns, TagDef

MAX_PATTERN = 200
MAX_NAMES = 1000
"""Tags one request may name."""


class TagInfo(BaseModel):
    """What a tag is."""

    name: str
    device: str
    data_type: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    writable: bool = False
    description: str = ""
    areas: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, tag: TagDef, areas: list[str]) -> TagInfo:
        """The document of ``tag``."""
        return cls(
            name=tag.name,
            device=tag.device,
            data_type=tag.data_type.value,
            unit=tag.unit,
            low=tag.low,
            high=tag.high,
            writable=tag.writable,
            description=tag.description,
            areas=areas,
        )


class TagList(BaseModel):
    """A page of tags."""

    total: int = Field(description="Tags matching, over every page")
    tags: list[TagInfo]


class QualityInfo(BaseModel):
    """A value's quality (OPC UA severity and sub-status)."""

    severity: str = Field(description="good, uncertain or bad")
    substatus: str = ""
    reason: str = ""


class Value(BaseModel):
    """One value of one tag with its quality and both timestamps (UTC, ISO 8601)."""

    tag: str
    value: bool | int | float | str | None = Field(
        description="null when there is none (Bad quality) or it is not a finite number"
    )
    quality: QualityInfo
    source_time: datetime
    server_time: datetime

    @classmethod
    def of(cls, sample: Sample) -> Value:
        """The document of ``sample``."""
        value = sample.value
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        if isinstance(value, datetime):
            value = value.isoformat()
        return cls(
            tag=sample.tag,
            value=value,
            quality=QualityInfo(
                severity=sample.quality.severity.name.lower(),
                substatus=sample.quality.substatus.value,
                reason=sample.quality.reason,
            ),
            source_time=sample.source_time,
            server_time=sample.server_time,
        )


class ValueList(BaseModel):
    """Live values."""

    values: list[Value]


def value_documents(samples: Sequence[Sample]) -> list[dict[str, object]]:
    """The ``Value`` documents of many samples, built directly: the same JSON as
    ``Value.of(sample).model_dump(mode="json")`` at a fraction of the cost, for answers of tens of
    thousands of values (a day of history)."""
    qualities: dict[Quality, dict[str, str]] = {}
    documents: list[dict[str, object]] = []
    append = documents.append
    for sample in samples:
        quality = qualities.get(sample.quality)
        if quality is None:
            quality = qualities[sample.quality] = {
                "severity": sample.quality.severity.name.lower(),
                "substatus": sample.quality.substatus.value,
                "reason": sample.quality.reason,
            }
        value = sample.value
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif isinstance(value, datetime):
            value = value.isoformat()
        append(
            {
                "tag": sample.tag,
                "value": value,
                "quality": quality,
                "source_time": _iso(sample.source_time),
                "server_time": _iso(sample.server_time),
            }
        )
    return documents


def _iso(moment: datetime) -> str:
    """ISO 8601 as pydantic writes it (UTC as ``Z``)."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class ValueColumns(BaseModel):
    """Many values of one tag as columns (one entry per value in each list): the compact shape
    for long windows. Times are milliseconds since 1970-01-01 UTC; ``quality`` indexes
    ``qualities``."""

    tag: str
    server_time_ms: list[int]
    source_time_ms: list[int]
    value: list[bool | int | float | str | None]
    quality: list[int]
    qualities: list[QualityInfo]
    truncated: bool = Field(description="More values lie in the window than were returned")


def value_columns(columns: SampleColumns, *, truncated: bool) -> dict[str, object]:
    """The ``ValueColumns`` document of a tag's stored columns, built directly (a day of
    one-second values is 86,400 rows)."""
    values: Sequence[object] | orjson.Fragment = _as_json(columns.values)
    if not isinstance(values, orjson.Fragment):  # a JsonArray's text is JSON already
        try:
            # The common case, every value a finite number, is checked at C speed.
            plain = all(map(math.isfinite, values))
        except TypeError:  # a None, a text or a time: value by value
            plain = False
        if not plain:
            values = [_json_scalar(value) for value in values]
    return {
        "tag": columns.tag,
        "server_time_ms": _as_json(columns.server_time_ms),
        "source_time_ms": _as_json(columns.source_time_ms),
        "value": values,
        "quality": columns.quality_index,
        "qualities": [
            {
                "severity": quality.severity.name.lower(),
                "substatus": quality.substatus.value,
                "reason": quality.reason,
            }
            for quality in columns.qualities
        ],
        "truncated": truncated,
    }


def _as_json(column: Sequence[object]) -> Sequence[object] | orjson.Fragment:
    """A column as the API's encoder (orjson) writes it: a ``JsonArray`` as its text, unparsed."""
    if isinstance(column, JsonArray):
        return orjson.Fragment(column.text)
    return column


def _json_scalar(value: object) -> object:
    """A stored value as JSON carries it: a time as ISO 8601 text, a non-finite number as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value
