"""The API's documents (pydantic): what it returns and accepts, as the OpenAPI document shows."""

from __future__ import annotations

import math
from datetime import datetime

from pydantic import BaseModel, Field

from controlcenter.model import Sample, TagDef

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
