"""The all-tags display: featured tiles, the filter, abnormal quality first, pages of 100 rows
carrying live elements, and links to each tag's trend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from controlcenter.model import DataType, Quality, Role, Sample, Substatus, TagDef, User
from controlcenter.ports import EventJournal, HistoryReader, LiveView
from hmi.page import PageRequest
from hmi.pages import tags
from tests.hmi.conftest import FEATURED, LEVEL, TANK2, hmi_context

NOW = datetime(2030, 1, 1, tzinfo=UTC)
VERA = User("vera", Role.VIEWER)


class CityLive:
    """A live view of ``count`` lamps, every seventh Bad and every eleventh Uncertain."""

    def __init__(self, count: int) -> None:
        self._tags = [
            TagDef(f"lights.d1.c{i:04d}.power", "ctl", "1", DataType.FLOAT, unit="kW")
            for i in range(count)
        ]

    def tags(self) -> Sequence[TagDef]:
        return self._tags

    def latest(self, tag: str) -> Sample:
        index = int(tag.split(".")[2][1:])
        if index % 7 == 3:
            return Sample(tag, None, Quality.bad(Substatus.COMM_FAILURE, "gone"), NOW, NOW)
        if index % 11 == 5:
            return Sample(tag, 1.0, Quality.uncertain(Substatus.LAST_USABLE, "old"), NOW, NOW)
        return Sample(tag, 1.0, Quality.good(), NOW, NOW)

    def snapshot(self) -> Mapping[str, Sample]:
        return {tag.name: self.latest(tag.name) for tag in self._tags}


def walk(component: Any) -> list[Any]:
    found = [component]
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found.extend(walk(child))
    return found


def streamed_tags(component: Any) -> set[str]:
    """The tags the browser's live stream would watch: every ``data-tag`` on the display."""
    return {
        value for one in walk(component) if (value := getattr(one, "data-tag", None)) is not None
    }


def row_names(rows: list[Any]) -> list[str]:
    return [row.children[0].children.children for row in rows]


def test_featured_tiles_show_quality_and_link_to_the_trend(
    live_view: LiveView, history: HistoryReader, journal: EventJournal
) -> None:
    context = hmi_context(live_view, history, journal)

    display = tags.render(context, VERA, PageRequest("/tags"))

    tiles = [one for one in walk(display) if str(getattr(one, "id", "")).startswith("tags-tile-")]
    assert [tile.id for tile in tiles] == [tags.tile_id(name) for name in FEATURED]
    bad = next(tile for tile in tiles if tile.id == tags.tile_id(TANK2))
    assert "q-bad" in bad.className
    assert "bad:comm_failure (RTU 2 does not answer)" in bad.title
    assert getattr(bad, "data-live") == "state"  # the stream keeps its frame current
    good = next(tile for tile in tiles if tile.id == tags.tile_id(LEVEL))
    assert "q-good" in good.className
    links = [one.href for one in walk(good) if getattr(one, "href", None)]
    assert links == ["/trends?tags=water.tank1.level"]


def test_a_city_is_shown_a_page_at_a_time_and_only_that_page_is_streamed(
    history: HistoryReader, journal: EventJournal
) -> None:
    context = replace(hmi_context(CityLive(1549), history, journal), featured=())

    display = tags.render(context, VERA, PageRequest("/tags"))

    assert len(streamed_tags(display)) == tags.PAGE_SIZE
    rows, pager, page = tags.render_table_page(context, "", False, 15)
    assert page == 15
    assert len(rows) == 49
    assert pager == "Tags 1,501 to 1,549 of 1,549 (page 16 of 16)"
    assert row_names(rows)[0] == "lights.d1.c1500.power"
    # Beyond the last page: the last page.
    assert tags.render_table_page(context, "", False, 99)[2] == 15
    assert tags.render_table_page(context, "", False, -5)[2] == 0


def test_abnormal_first_then_by_name_and_the_filter(
    history: HistoryReader, journal: EventJournal
) -> None:
    context = replace(hmi_context(CityLive(40), history, journal), featured=())

    rows, _, _ = tags.render_table_page(context, "", True, 0)
    names = row_names(rows)
    bad = [f"lights.d1.c{i:04d}.power" for i in range(40) if i % 7 == 3]
    uncertain = [f"lights.d1.c{i:04d}.power" for i in range(40) if i % 7 != 3 and i % 11 == 5]
    assert names[: len(bad)] == bad
    assert names[len(bad) : len(bad) + len(uncertain)] == uncertain

    filtered, pager, _ = tags.render_table_page(context, "C001", False, 0)
    assert row_names(filtered) == [f"lights.d1.c{i:04d}.power" for i in range(10, 20)]
    assert pager == "Tags 1 to 10 of 10 (page 1 of 1)"
    assert tags.render_table_page(context, "<script>" * 100, False, 0)[:2] == (
        [],
        "No tag matches.",
    )


def test_each_row_links_to_its_trend_and_carries_a_live_value(
    history: HistoryReader, journal: EventJournal
) -> None:
    context = replace(hmi_context(CityLive(3), history, journal), featured=())

    rows, _, _ = tags.render_table_page(context, "", False, 0)

    link = rows[0].children[0].children
    assert link.href == "/trends?tags=lights.d1.c0000.power"
    assert streamed_tags(rows[0]) == {"lights.d1.c0000.power"}
