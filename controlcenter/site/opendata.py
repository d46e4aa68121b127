"""The site file's ``open_data:`` section: which tags the city publishes, and only how.

Tags become public only through datasets. A dataset names its members with tag patterns, fixed
here and never chosen by a caller, and publishes one figure per hour and per day for the whole
group: the sum or the mean over its members of each member's mean, minimum and maximum, and the
count of values. Data about individual buildings or meters (``individuals: true``, the default)
is published only over at least ``k`` members (default 5); two such datasets that share members
must differ by none or by at least ``k`` members, so that subtracting one from the other cannot
isolate a building. A site whose section breaks these rules is refused with file and line, like
every other mistake in a site file.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from controlcenter.model import DataType, TagDef
from controlcenter.site.fields import Integer, Name, Text
from controlcenter.site.yamlsource import Location

DEFAULT_K = 5
"""Members a dataset about individuals aggregates at least (the site may raise or lower it)."""
MAX_DATASETS = 200
MAX_DATASET_PATTERNS = 1_000
DATASET_NAME = r"^[a-z][a-z0-9-]{0,62}$"
"""Dataset names are URL path segments: lower-case letters, digits and hyphens."""

Aggregation = Literal["sum", "mean"]
UpdateFrequency = Literal["hourly", "daily"]
FiwareModel = Literal["WaterObserved", "StreetlightGroup"]
"""FIWARE Smart Data Models a dataset may also be served as (``?format=fiware``)."""

_NUMERIC = frozenset({DataType.FLOAT, DataType.INT})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Strict):
    """One published dataset: a fixed group of tags and how the group is summarised."""

    name: Name = Field(pattern=DATASET_NAME)
    title: Text = Field(min_length=1)
    description: Text = ""
    tags: list[Annotated[Name, Field(min_length=1)]] = Field(
        min_length=1, max_length=MAX_DATASET_PATTERNS
    )
    aggregation: Aggregation
    unit: Name = ""
    licence: Name = "CC-BY-4.0"
    update_frequency: UpdateFrequency = "hourly"
    individuals: bool = True
    """The members are individual buildings or meters: published over at least k of them.
    False for the city's own infrastructure (district metered areas, lighting cabinets)."""
    fiware: FiwareModel | None = None


class OpenDataConfig(_Strict):
    """``open_data:`` the datasets published without login at ``/open/v1/``."""

    k: Integer = Field(default=DEFAULT_K, ge=2, le=10_000)
    datasets: list[DatasetConfig] = Field(default_factory=list, max_length=MAX_DATASETS)


@dataclass(frozen=True, slots=True)
class OpenDataset:
    """A dataset with its member tags resolved (the fixed group it publishes)."""

    name: str
    title: str
    description: str
    members: tuple[str, ...]
    aggregation: Aggregation
    unit: str
    licence: str
    update_frequency: UpdateFrequency
    individuals: bool
    fiware: FiwareModel | None


def _matcher(patterns: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns))


def members_of(patterns: Sequence[str], tags: Sequence[TagDef]) -> tuple[str, ...]:
    """The numeric tags any of ``patterns`` names, in site order (case-sensitive)."""
    match = _matcher(patterns).match
    return tuple(
        tag.name for tag in tags if tag.data_type in _NUMERIC and match(tag.name) is not None
    )


def resolve_datasets(config: OpenDataConfig, tags: Sequence[TagDef]) -> tuple[OpenDataset, ...]:
    """Every dataset of ``config`` with its members among ``tags``."""
    return tuple(
        OpenDataset(
            name=dataset.name,
            title=dataset.title,
            description=dataset.description,
            members=members_of(dataset.tags, tags),
            aggregation=dataset.aggregation,
            unit=dataset.unit,
            licence=dataset.licence,
            update_frequency=dataset.update_frequency,
            individuals=dataset.individuals,
            fiware=dataset.fiware,
        )
        for dataset in config.datasets
    )


def open_data_problems(
    config: OpenDataConfig, tags: Sequence[TagDef]
) -> Iterator[tuple[Location, str]]:
    """Each way ``config`` would publish more than aggregates, with its place in the file."""
    seen: set[str] = set()
    by_name = {tag.name: tag for tag in tags}
    names = list(by_name)
    resolved: list[tuple[int, DatasetConfig, frozenset[str]]] = []
    for index, dataset in enumerate(config.datasets):
        where: Location = ("open_data", "datasets", index)
        if dataset.name in seen:
            yield (*where, "name"), f"duplicate dataset name '{dataset.name}'"
        seen.add(dataset.name)
        for position, pattern in enumerate(dataset.tags):
            match = _matcher([pattern]).match
            named = [name for name in names if match(name) is not None]
            if not named:
                yield (*where, "tags", position), f"'{pattern}' matches no tag"
            elif not any(by_name[name].data_type in _NUMERIC for name in named):
                yield (*where, "tags", position), f"'{pattern}' matches no numeric tag"
        members = frozenset(members_of(dataset.tags, tags))
        if dataset.individuals and len(members) < config.k:
            yield (
                (*where, "tags"),
                f"dataset '{dataset.name}' is about individuals but has {len(members)} "
                f"member(s): it needs at least k = {config.k}",
            )
        if dataset.fiware == "StreetlightGroup" and (
            dataset.aggregation != "mean" or dataset.unit != "%"
        ):
            yield (
                (*where, "fiware"),
                "StreetlightGroup publishes an illuminance level: it needs aggregation: mean "
                "over tags in '%'",
            )
        resolved.append((index, dataset, members))
    yield from _differencing_problems(resolved, config.k)


def _differencing_problems(
    resolved: Sequence[tuple[int, DatasetConfig, frozenset[str]]], k: int
) -> Iterator[tuple[Location, str]]:
    """Two datasets, one of them about individuals, whose difference would publish fewer than
    k members."""
    for later, (index, dataset, members) in enumerate(resolved):
        for _, other, other_members in resolved[:later]:
            if not (dataset.individuals or other.individuals) or not members & other_members:
                continue
            only_here, only_there = len(members - other_members), len(other_members - members)
            if 0 < only_here < k or 0 < only_there < k:
                yield (
                    ("open_data", "datasets", index, "tags"),
                    f"datasets '{other.name}' and '{dataset.name}' share members but differ "
                    f"by {only_here or only_there} (fewer than k = {k}): subtracting one from "
                    "the other would publish those members alone",
                )
