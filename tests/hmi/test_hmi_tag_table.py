"""The overview's tag table: abnormal tags first, a bounded number of rows for a whole city."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controlcenter.model import DataType, Quality, Sample, Substatus, TagDef
from hmi.overview import table_rows

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def tag(name: str) -> TagDef:
    return TagDef(name, "rtu", "ir:0:float32", DataType.FLOAT, unit="m")


def good(name: str) -> Sample:
    return Sample(name, 1.0, Quality.good(), NOW, NOW)


def row_names(rows: list[Any]) -> list[str]:
    return [row.children[0].children for row in rows if "tag-row " in row.className]


def test_bad_then_uncertain_then_good_each_by_name() -> None:
    tags = [tag(n) for n in ("a.good", "b.bad", "c.uncertain", "d.never_read", "e.good")]
    snapshot = {
        "a.good": good("a.good"),
        "b.bad": Sample("b.bad", None, Quality.bad(Substatus.COMM_FAILURE, "gone"), NOW, NOW),
        "c.uncertain": Sample(
            "c.uncertain", 2.0, Quality.uncertain(Substatus.LAST_USABLE, "stale"), NOW, NOW
        ),
        "e.good": good("e.good"),
    }

    rows = table_rows(tags, snapshot)

    assert row_names(rows) == ["b.bad", "d.never_read", "c.uncertain", "a.good", "e.good"]
    assert [row.className for row in rows[:3]] == [
        "tag-row quality-bad",
        "tag-row quality-bad",
        "tag-row quality-uncertain",
    ]


def test_a_city_of_tags_is_cut_to_the_limit_and_says_how_many_more() -> None:
    names = [f"lights.d1.c{i:04d}.power" for i in range(1500)]
    snapshot = {name: good(name) for name in names}
    del snapshot[names[-1]]  # never read: Bad, so shown first whatever its name

    rows = table_rows([tag(n) for n in names], snapshot, limit=100)

    assert len(rows) == 101
    assert row_names(rows)[0] == names[-1]
    assert rows[-1].className == "tag-row-more"
    assert rows[-1].children.children == "1,400 more tags, all Good"


def test_hidden_abnormal_tags_are_counted() -> None:
    names = [f"t{i}" for i in range(5)]
    rows = table_rows([tag(n) for n in names], {}, limit=2)
    assert rows[-1].children.children == "3 more tags, 3 of them abnormal"
