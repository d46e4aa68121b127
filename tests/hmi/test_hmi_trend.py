"""Trend points, gaps, min/max decimation, pens, ranges from hostile text, the figure and the
CSV export (``hmi.trend``)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlcenter.automation import (
    AlarmAction,
    AlarmDisplayState,
    AlarmPriority,
    AlarmTransition,
)
from controlcenter.model import (
    Command,
    CommandOrigin,
    CommandResult,
    CommandStatus,
    DataType,
    Quality,
    Sample,
    Substatus,
    TagDef,
)
from hmi.trend import (
    CSV_HEADER,
    MAX_PENS,
    Point,
    TrendSeries,
    TrendView,
    alarm_markers,
    choose_pens,
    command_markers,
    decimate_min_max,
    export_csv,
    gap_threshold,
    pen_points,
    relayout_range,
    trend_figure,
    trend_points,
    view_from_data,
    view_from_query,
    with_gaps,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def at(second: int) -> datetime:
    return T0 + timedelta(seconds=second)


def test_bad_samples_become_gaps_and_uncertain_ones_stay() -> None:
    samples = [
        Sample("t", 1.5, Quality.good(), at(0), at(0)),
        Sample("t", 2.0, Quality.bad(Substatus.COMM_FAILURE, "lost"), at(1), at(1)),
        Sample("t", 3, Quality.uncertain(Substatus.LAST_USABLE, "old"), at(2), at(2)),
        Sample("t", True, Quality.good(), at(3), at(3)),
        Sample("t", "text", Quality.good(), at(4), at(4)),
    ]

    assert trend_points(samples) == [
        (at(0), 1.5),
        (at(1), None),
        (at(2), 3.0),
        (at(3), 1.0),
        (at(4), None),
    ]


def test_short_series_are_not_decimated() -> None:
    points: list[Point] = [(at(i), float(i)) for i in range(10)]

    assert decimate_min_max(points, 10) == points


def test_decimation_keeps_peaks_and_gaps() -> None:
    points: list[Point] = [(at(i), 0.0) for i in range(10_000)]
    points[4_321] = (at(4_321), 99.0)
    points[7_000] = (at(7_000), -5.0)
    points[8_000] = (at(8_000), None)

    kept = decimate_min_max(points, 100)

    assert len(kept) <= 150
    assert (at(4_321), 99.0) in kept
    assert (at(7_000), -5.0) in kept
    assert (at(8_000), None) in kept


def test_decimation_needs_room_for_two_points() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        decimate_min_max([], 1)


@given(
    values=st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=0, max_size=3000),
    max_points=st.integers(2, 500),
)
def test_decimation_is_ordered_bounded_and_keeps_extremes(
    values: list[float | None], max_points: int
) -> None:
    points: list[Point] = [(at(i), v) for i, v in enumerate(values)]

    kept = decimate_min_max(points, max_points)

    assert [p[0] for p in kept] == sorted({p[0] for p in kept})
    assert set(kept) <= set(points)
    assert len(kept) <= max(len(points) if len(points) <= max_points else 0, 3 * (max_points // 2))
    numbers = [v for v in values if v is not None]
    kept_numbers = [p[1] for p in kept if p[1] is not None]
    if numbers:
        assert max(kept_numbers) == max(numbers)
        assert min(kept_numbers) == min(numbers)
    assert (None in values) == any(p[1] is None for p in kept)


AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def float_tag(name: str, unit: str = "m") -> TagDef:
    return TagDef(name, "rtu", "1", DataType.FLOAT, unit=unit)


TAGS = {
    **{f"t{i}": float_tag(f"t{i}") for i in range(12)},
    "flow": float_tag("flow", "m3/h"),
    "pressure": float_tag("pressure", "bar"),
    "temp": float_tag("temp", "degC"),
    "run": TagDef("run", "rtu", "2", DataType.BOOL),
    "text": TagDef("text", "rtu", "3", DataType.STRING),
}


def good(second: float, value: float) -> Sample:
    moment = T0 + timedelta(seconds=second)
    return Sample("t", value, Quality.good(), moment, moment)


# --- gaps -----------------------------------------------------------------------------------------


def test_a_stop_of_the_center_breaks_the_line() -> None:
    # One sample a second, then nothing for a minute (the center stopped), then again.
    samples = [good(s, 1.0) for s in range(0, 30)] + [good(s, 2.0) for s in range(90, 120)]

    points = pen_points(samples, at(0), at(120))

    gaps = [p for p in points if p[1] is None]
    assert len(gaps) == 1
    assert at(29) < gaps[0][0] < at(90)
    assert len(points) == len(samples) + 1


def test_steady_data_has_no_gap_and_a_short_hiccup_none_either() -> None:
    samples = [good(s, 1.0) for s in range(60)] + [good(s, 1.0) for s in range(62, 100)]

    assert all(p[1] is not None for p in pen_points(samples, at(0), at(100)))


def test_bad_samples_break_the_line_where_they_are() -> None:
    bad = Sample("t", None, Quality.bad(Substatus.COMM_FAILURE, "gone"), at(5), at(5))
    samples = [good(s, 1.0) for s in range(5)] + [bad] + [good(s, 1.0) for s in range(6, 10)]

    assert pen_points(samples, at(0), at(10))[5] == (at(5), None)


def test_gap_threshold_follows_the_usual_step_and_the_range() -> None:
    times = [at(10 * i) for i in range(100)]
    assert gap_threshold(times, timedelta(hours=1)) == timedelta(seconds=50)
    # Over 30 days a break narrower than ~0.3 % of the range is not drawn.
    assert gap_threshold(times, timedelta(days=30)) == timedelta(days=30) * 0.003
    assert gap_threshold([], timedelta(hours=1)) == timedelta(hours=1) * 0.003


def test_with_gaps_keeps_existing_gaps_single() -> None:
    points: list[Point] = [(at(0), 1.0), (at(100), None), (at(200), 1.0)]

    assert with_gaps(points, timedelta(seconds=10)) == points


# --- pens -----------------------------------------------------------------------------------------


def test_a_ninth_pen_is_refused_with_a_message() -> None:
    pens, messages = choose_pens([f"t{i}" for i in range(9)], TAGS)

    assert pens == tuple(f"t{i}" for i in range(MAX_PENS))
    assert messages == (f"A trend shows at most {MAX_PENS} pens: t8 was not added.",)


def test_unknown_text_duplicate_and_fourth_unit_pens_are_refused() -> None:
    pens, messages = choose_pens(
        ["t0", "nope", "t0", "text", "flow", "pressure", "temp", "run", "  ", "t1"], TAGS
    )

    assert pens == ("t0", "flow", "pressure", "t1")
    assert "No tag named 'nope'." in messages
    assert any("text holds string values" in m for m in messages)
    assert any("temp in degC was not added" in m for m in messages)
    assert any("run in state was not added" in m for m in messages)


# --- ranges from the URL, the store and plotly ---------------------------------------------------


def test_a_url_range_in_local_time_or_utc() -> None:
    view = view_from_query(
        {"tags": "t0,flow", "start": "2026-11-23T10:00", "end": "2026-11-23T10:30:00Z"},
        TAGS,
        AMSTERDAM,
    )

    assert view.tags == ("t0", "flow")
    assert view.start == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 CET
    assert view.end == datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    assert not view.follow
    assert view.messages == ()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"period": "1y"}, "No period '1y'"),
        ({"period": "x" * 10_000}, "No period"),
        ({"start": "2026-11-23T10:00"}, "needs a start and an end"),
        ({"start": "yesterday", "end": "today"}, "needs a start and an end"),
        ({"start": "2026-11-23T10:00", "end": "2026-11-23T09:00"}, "ends before it starts"),
        ({"start": "2026-11-23T10:00:00", "end": "2026-11-23T10:00:01"}, "shortest range"),
        ({"start": "1900-01-01T00:00", "end": "9999-12-31T23:59"}, "longest range"),
        ({"start": "0001-01-01T00:00+14:00", "end": "0001-01-02T00:00"}, "needs a start"),
        ({"start": "2026-02-30T10:00", "end": "2026-03-01T10:00"}, "needs a start"),
        ({"start": "2026-11-23T10:00\x00", "end": "<script>"}, "needs a start"),
        ({"tags": "a" * 100_000}, "No tag named"),
    ],
)
def test_hostile_query_strings_give_the_default_view_and_say_why(
    query: dict[str, str], expected: str
) -> None:
    view = view_from_query(query, TAGS, AMSTERDAM)

    assert view.follow
    assert view.period in {"1h", *query.values()}
    assert any(expected in message for message in view.messages), view.messages
    assert len(" ".join(view.messages)) < 1000


@given(st.dictionaries(st.sampled_from(["tags", "period", "start", "end"]), st.text(max_size=60)))
def test_no_query_string_breaks_the_parser(query: dict[str, str]) -> None:
    view = view_from_query(query, TAGS, AMSTERDAM)

    assert len(view.tags) <= MAX_PENS
    assert view.follow or (
        view.start is not None and view.end is not None and view.start < view.end
    )


@pytest.mark.parametrize(
    "data",
    [None, 3, "x", [], {"tags": "t0"}, {"tags": [1, None, "t0"], "start": 5, "end": []}],
)
def test_a_forged_store_gives_a_valid_view(data: object) -> None:
    view = view_from_data(data, TAGS)

    assert set(view.tags) <= {"t0"}
    assert view.follow


def test_a_view_survives_its_store_and_its_url() -> None:
    view = TrendView(("t0", "flow"), "8h", at(0), at(600))

    assert view_from_data(view.to_data(), TAGS) == view
    assert view_from_query(view.query(), TAGS, AMSTERDAM) == view


def test_relayout_ranges_are_site_local() -> None:
    zoom = {"xaxis.range[0]": "2026-11-23 10:00:00.5", "xaxis.range[1]": "2026-11-23 10:05"}

    assert relayout_range(zoom, AMSTERDAM) == (
        datetime(2026, 11, 23, 9, 0, 0, 500000, tzinfo=UTC),
        datetime(2026, 11, 23, 9, 5, tzinfo=UTC),
    )
    assert relayout_range({"xaxis.range": ["2026-11-23 10:00", "2026-11-23 11:00"]}, AMSTERDAM)
    assert relayout_range({"xaxis.autorange": True}, AMSTERDAM) is None
    assert relayout_range({"autosize": True}, AMSTERDAM) is None
    assert relayout_range("xaxis.range[0]", AMSTERDAM) is None
    assert relayout_range({"xaxis.range[0]": 5, "xaxis.range[1]": 6}, AMSTERDAM) is None


# --- the figure -----------------------------------------------------------------------------------


def test_figure_in_site_time_one_axis_per_unit_and_markers() -> None:
    samples = [Sample("t0", 2.5, Quality.good(), at(i), at(i)) for i in range(5)]
    transition = AlarmTransition(
        at(2),
        "t0.high",
        AlarmAction.ACTIVATE,
        AlarmDisplayState.NORMAL,
        AlarmDisplayState.UNACKNOWLEDGED,
        priority=AlarmPriority.HIGH,
        tag="t0",
    )
    command = Command("flow", 3.0, CommandOrigin.OPERATOR, "olga", "test", at(3))
    result = CommandResult(command, CommandStatus.CONFIRMED, "", at(4), readback=3.0)

    figure = trend_figure(
        [
            TrendSeries("t0", "m", samples),
            TrendSeries("flow", "m3/h", []),
            TrendSeries("t1", "m", []),
        ],
        at(-60),
        at(4),
        timezone=AMSTERDAM,
        alarms=alarm_markers([transition], ["t0"]),
        commands=command_markers([result], ["flow"]),
    )

    names = [trace.name for trace in figure.data]
    assert names == ["t0 [m]", "flow [m3/h]", "t1 [m]", "Alarms", "Commands"]
    assert [trace.yaxis for trace in figure.data[:3]] == ["y", "y2", "y"]
    assert list(figure.data[0].y) == [2.5] * 5
    # 2030-01-01 00:00 UTC is 01:00 in Amsterdam: the axis shows site time.
    assert figure.data[0].x[0] == datetime(2030, 1, 1, 1, 0)
    assert list(figure.layout.xaxis.range) == [
        datetime(2030, 1, 1, 0, 59),
        datetime(2030, 1, 1, 1, 0, 4),
    ]
    assert figure.layout.yaxis.title.text == "m"
    assert figure.layout.yaxis2.title.text == "m3/h"
    assert "Alarm t0.high (high): activate" in figure.data[3].text[0]
    assert "Command flow = 3.0 by olga" in figure.data[4].text[0]
    assert "confirmed, read back 3.0" in figure.data[4].text[0]


def test_markers_of_other_tags_are_left_out() -> None:
    command = Command("other", 1, CommandOrigin.RULE, "rule-1", "", at(0))
    result = CommandResult(command, CommandStatus.REJECTED, "interlock", at(0))

    assert command_markers([result], ["t0"]) == []


def test_figure_shows_a_message() -> None:
    figure = trend_figure([], at(0), at(60), message="History unavailable: disk full")

    assert [a.text for a in figure.layout.annotations] == ["History unavailable: disk full"]


# --- CSV ------------------------------------------------------------------------------------------


def test_csv_has_local_and_utc_times_and_empty_bad_values() -> None:
    samples = [
        good(0, 1.25),
        Sample("t0", None, Quality.bad(Substatus.COMM_FAILURE, "gone"), at(1), at(1)),
        Sample(
            "t0", 3, Quality.uncertain(Substatus.LAST_USABLE, "=cmd|' /C calc'!A0"), at(2), at(2)
        ),
    ]

    text = export_csv([TrendSeries("t0", "m", samples), TrendSeries("flow", "m3/h", [])], AMSTERDAM)

    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_HEADER
    assert rows[1] == [
        "t0",
        "m",
        "2030-01-01T01:00:00.000+01:00",
        "2030-01-01T00:00:00.000Z",
        "1.25",
        "good",
    ]
    assert rows[2][4:] == ["", "bad:comm_failure"]
    assert rows[3][4:] == ["3.0", "uncertain:last_usable"]
    assert len(rows) == 4
    assert text.endswith("\r\n")


def test_csv_cells_cannot_become_formulas() -> None:
    samples = [good(0, -1.5)]

    rows = list(
        csv.reader(io.StringIO(export_csv([TrendSeries("t0", "=1+1", samples)], AMSTERDAM)))
    )

    assert rows[1][1] == "'=1+1"
    assert rows[1][4] == "-1.5"  # numbers stay numbers
