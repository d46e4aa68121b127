"""The daily waste collection list: containers above 80 %, nearest-neighbour order from the
depot, stale levels left out; a container crossing 80 % appears on the next list."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from alarms.collection import CollectionPlanner, ContainerFill, collection_round, distance_m
from controlcenter.automation import AssetDef, GeoPoint
from controlcenter.model import DataType, Quality, Sample, Substatus, TagDef
from tests.alarms.notify_testkit import ListJournal

NOW = datetime(2030, 3, 4, 5, 0, tzinfo=UTC)
DEPOT = GeoPoint(52.0, 4.0)


def _at(east_km: float) -> GeoPoint:
    return GeoPoint(52.0, 4.0 + east_km / 68.5)


class Live:
    """Fixed live values."""

    def __init__(self, values: dict[str, Sample]) -> None:
        self.values = values

    def tags(self) -> list[TagDef]:
        return [TagDef(n, "lora", "x", DataType.FLOAT) for n in self.values]

    def latest(self, tag: str) -> Sample:
        return self.values[tag]

    def snapshot(self) -> dict[str, Sample]:
        return dict(self.values)


def _sample(tag: str, value: float, quality: Quality | None = None) -> Sample:
    return Sample(tag, value, quality or Quality.good(), NOW, NOW)


def test_the_round_is_nearest_neighbour_from_the_depot() -> None:
    """On a line east of the depot the crew drives outwards; 80 % exactly is not due."""
    fills = [
        ContainerFill("waste.c3", "C3", _at(3), 95.0),
        ContainerFill("waste.c1", "C1", _at(1), 81.0),
        ContainerFill("waste.c2", "C2", _at(2), 80.0),
        ContainerFill("waste.c5", "C5", _at(5), 99.0),
        ContainerFill("waste.c4", "C4", _at(-0.5), 90.0),
        ContainerFill("waste.nan", "bad", _at(1), float("nan")),
    ]
    stops = collection_round(fills, DEPOT)
    assert [s.asset for s in stops] == ["waste.c4", "waste.c1", "waste.c3", "waste.c5"]
    assert [s.order for s in stops] == [1, 2, 3, 4]
    assert abs(stops[0].leg_m - 500) < 5 and abs(stops[1].leg_m - 1500) < 10


def test_each_step_goes_to_the_nearest_remaining_container() -> None:
    """The greedy invariant on a scattered set."""
    points = [GeoPoint(52 + (i * 37 % 11) / 500, 4 + (i * 53 % 13) / 300) for i in range(12)]
    fills = [ContainerFill(f"waste.c{i:02d}", "", p, 85.0) for i, p in enumerate(points)]
    stops = collection_round(fills, DEPOT)
    assert sorted(s.asset for s in stops) == sorted(f.asset for f in fills)
    here = DEPOT
    left = {f.asset: f.position for f in fills}
    for stop in stops:
        best = min(distance_m(here, p) for p in left.values())
        assert abs(distance_m(here, left[stop.asset]) - best) < 1e-6
        here = left.pop(stop.asset)
    assert list(itertools.chain(left)) == []


def test_a_container_crossing_80_percent_is_on_the_next_list_and_journaled() -> None:
    """Live levels: a container rising past 80 % joins; a silent sensor is left out."""
    assets = [
        AssetDef("waste.c1", "waste_container", "waste", "Main St", _at(1)),
        AssetDef("waste.c2", "waste_container", "waste", "Mill Rd", _at(2)),
        AssetDef("waste.c3", "waste_container", "waste", "Quay", _at(3)),
        AssetDef("lights.d1.c1", "lighting_cabinet", "lighting", "", _at(1)),
    ]
    live = Live(
        {
            "waste.c1.fill": _sample("waste.c1.fill", 79.0),
            "waste.c2.fill": _sample("waste.c2.fill", 91.0),
            "waste.c3.fill": _sample(
                "waste.c3.fill", 99.0, Quality.bad(Substatus.COMM_FAILURE, "silent")
            ),
        }
    )
    planner = CollectionPlanner(assets, live, DEPOT)
    assert [s.asset for s in planner.next_collection()] == ["waste.c2"]
    assert planner.unknown == 1
    live.values["waste.c1.fill"] = _sample("waste.c1.fill", 82.5)
    assert [s.asset for s in planner.next_collection()] == ["waste.c1", "waste.c2"]
    journal = ListJournal()
    assert planner.record(journal, NOW, ZoneInfo("Europe/Amsterdam")) == 2
    [message] = journal.messages("collection list for 2030-03-04")
    assert "1. waste.c1 (82 %), 2. waste.c2 (91 %)" in message
    assert "1 without a current level" in message
