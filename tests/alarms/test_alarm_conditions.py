"""The pure judgements of alarm conditions, and the compile step that refuses bad definitions."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from alarms.conditions import (
    AlarmDefinitionError,
    RateTracker,
    discrete_condition,
    finite_number,
    limit_condition,
    magnitude_condition,
    mismatch_condition,
    switch_state,
)
from alarms.engine import AlarmEngine
from controlcenter.automation import (
    AlarmDef,
    AlarmKind,
    Expression,
    SiteLocation,
    SourceSpot,
)
from controlcenter.model import DataType, TagDef

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
SITE = SiteLocation(52.37, 4.90, "Europe/Amsterdam")
FILE = "site/alarms.yaml"
TAGS = (
    TagDef("tank.level", "plc1", "x", DataType.FLOAT),
    TagDef("tank.sp", "plc1", "x", DataType.FLOAT),
    TagDef("pump.run", "plc1", "x", DataType.BOOL),
    TagDef("pump.cmd", "plc1", "x", DataType.BOOL, writable=True),
    TagDef("pump.mode", "plc1", "x", DataType.STRING),
)


def spot(line: int, column: int = 3) -> SourceSpot:
    return SourceSpot(FILE, line, column)


def test_finite_number_refuses_nan_inf_bool_and_text() -> None:
    assert finite_number(3) == 3.0
    assert finite_number(2.5) == 2.5
    for hostile in (math.nan, math.inf, -math.inf, True, "7", None):
        assert finite_number(hostile) is None


def test_switch_state_reads_bools_and_numbers_only() -> None:
    assert switch_state(True) is True
    assert switch_state(0.0) is False
    assert switch_state(2) is True
    assert switch_state(math.nan) is None
    assert switch_state("on") is None


def test_high_limit_clears_only_inside_the_deadband() -> None:
    assert limit_condition(AlarmKind.HIGH, 80.0, 2.0, 80.0, was_active=False) is False
    assert limit_condition(AlarmKind.HIGH, 80.0, 2.0, 80.1, was_active=False) is True
    assert limit_condition(AlarmKind.HIGH, 80.0, 2.0, 79.0, was_active=True) is True
    assert limit_condition(AlarmKind.HIGH, 80.0, 2.0, 78.0, was_active=True) is False


def test_low_limit_clears_only_inside_the_deadband() -> None:
    assert limit_condition(AlarmKind.LOW_LOW, 10.0, 1.0, 9.9, was_active=False) is True
    assert limit_condition(AlarmKind.LOW_LOW, 10.0, 1.0, 10.5, was_active=True) is True
    assert limit_condition(AlarmKind.LOW_LOW, 10.0, 1.0, 11.0, was_active=True) is False


def test_magnitude_condition_has_the_same_deadband() -> None:
    assert magnitude_condition(5.0, 1.0, 5.5, was_active=False) is True
    assert magnitude_condition(5.0, 1.0, 4.5, was_active=True) is True
    assert magnitude_condition(5.0, 1.0, 4.0, was_active=True) is False


def test_discrete_condition_matches_only_values_of_the_same_kind() -> None:
    assert discrete_condition(True, True) is True
    assert discrete_condition(True, False) is False
    assert discrete_condition(True, 1.0) is None  # a number is not a bool state
    assert discrete_condition("fault", "fault") is True
    assert discrete_condition("fault", 3.0) is None
    assert discrete_condition(3.0, 3) is True
    assert discrete_condition(3.0, math.nan) is None


def test_mismatch_condition_names_the_direction() -> None:
    assert mismatch_condition(True, False) == "failed to start"
    assert mismatch_condition(False, True) == "failed to stop"
    assert mismatch_condition(True, True) is None


def test_rate_tracker_measures_change_per_minute_over_source_time() -> None:
    tracker = RateTracker()
    assert tracker.add(T0, 10.0) is None
    assert tracker.add(T0 + timedelta(seconds=30), 13.0) == pytest.approx(6.0)
    # Older than the newest: ignored.
    assert tracker.add(T0 + timedelta(seconds=10), 99.0) is None
    # Past a minute, the reference is the value in force a minute earlier.
    rate = tracker.add(T0 + timedelta(seconds=90), 13.0)
    assert rate == pytest.approx(0.0)


def test_compile_lists_every_bad_definition_with_its_spot() -> None:
    definitions = [
        AlarmDef("a.unknown", AlarmKind.HIGH, tag="tank.nope", limit=1.0, spot=spot(1)),
        AlarmDef("a.text", AlarmKind.HIGH, tag="pump.mode", limit=1.0, spot=spot(2)),
        AlarmDef("a.nolimit", AlarmKind.LOW, tag="tank.level", spot=spot(3)),
        AlarmDef("a.inf", AlarmKind.LOW, tag="tank.level", limit=math.inf, spot=spot(4)),
        AlarmDef(
            "a.delay", AlarmKind.HIGH, tag="tank.level", limit=1.0, on_delay_s=-1, spot=spot(5)
        ),
        AlarmDef("a.dev", AlarmKind.DEVIATION, tag="tank.level", limit=1.0, spot=spot(6)),
        AlarmDef("a.disc", AlarmKind.DISCRETE, tag="pump.run", state="open", spot=spot(7)),
        AlarmDef("a.mis", AlarmKind.COMMAND_MISMATCH, tag="pump.run", spot=spot(8)),
        AlarmDef("a.frozen", AlarmKind.FROZEN, tag="tank.level", spot=spot(9)),
        AlarmDef("a.expr", AlarmKind.EXPRESSION, spot=spot(10)),
        AlarmDef("a.comm", AlarmKind.COMM_LOSS, device="ghost", spot=spot(11)),
        AlarmDef("ok", AlarmKind.HIGH, tag="tank.level", limit=1.0, spot=spot(12)),
        AlarmDef("ok", AlarmKind.HIGH, tag="tank.level", limit=2.0, spot=spot(13)),
    ]
    with pytest.raises(AlarmDefinitionError) as caught:
        AlarmEngine(definitions, TAGS, SITE)
    problems = {problem.alarm: problem for problem in caught.value.problems}
    assert set(problems) == {
        "a.unknown",
        "a.text",
        "a.nolimit",
        "a.inf",
        "a.delay",
        "a.dev",
        "a.disc",
        "a.mis",
        "a.frozen",
        "a.expr",
        "a.comm",
        "ok",
    }
    assert "unknown tag tank.nope" in problems["a.unknown"].reason
    assert "pump.mode is string" in problems["a.text"].reason
    assert "needs a limit" in problems["a.nolimit"].reason
    assert "setpoint_tag" in problems["a.dev"].reason
    assert "never be a value" in problems["a.disc"].reason
    assert "command_tag" in problems["a.mis"].reason
    assert "delay_s" in problems["a.frozen"].reason
    assert "device ghost has no tags" in problems["a.comm"].reason
    assert problems["ok"].spot == spot(13)
    assert str(problems["a.unknown"].spot) == f"{FILE}:1:3"
    assert f"{FILE}:1:3: alarm a.unknown" in str(caught.value)


def test_expression_problems_point_inside_the_expression() -> None:
    definitions = [
        AlarmDef(
            "bad.expr",
            AlarmKind.EXPRESSION,
            expression=Expression("tank.level > 2 && tank.levle < 9", SourceSpot(FILE, 4, 17)),
            spot=spot(3),
        ),
        AlarmDef(
            "bad.number",
            AlarmKind.EXPRESSION,
            expression=Expression("tank.level + 1", SourceSpot(FILE, 8, 17)),
            spot=spot(7),
        ),
        AlarmDef(
            "bad.suppress",
            AlarmKind.HIGH,
            tag="tank.level",
            limit=5.0,
            suppress_when=Expression("pump.run ==", SourceSpot(FILE, 12, 20)),
            spot=spot(11),
        ),
        AlarmDef(
            "bad.expect",
            AlarmKind.FROZEN,
            tag="tank.level",
            delay_s=60,
            expect_change_when=Expression("pump.mode", SourceSpot(FILE, 15, 25)),
            spot=spot(14),
        ),
    ]
    with pytest.raises(AlarmDefinitionError) as caught:
        AlarmEngine(definitions, TAGS, SITE)
    problems = {problem.alarm: problem for problem in caught.value.problems}
    assert problems["bad.expr"].spot == SourceSpot(FILE, 4, 17 + len("tank.level > 2 && "))
    assert "tank.levle" in problems["bad.expr"].reason
    assert "must give a bool" in problems["bad.number"].reason
    assert problems["bad.suppress"].spot.line == 12
    assert problems["bad.expect"].spot.line == 15


def test_a_good_definition_set_compiles() -> None:
    engine = AlarmEngine(
        [
            AlarmDef("hi", AlarmKind.HIGH, tag="tank.level", limit=5.0),
            AlarmDef("mode", AlarmKind.DISCRETE, tag="pump.mode", state="fault"),
            AlarmDef("comm", AlarmKind.COMM_LOSS, device="plc1"),
        ],
        TAGS,
        SITE,
    )
    assert engine.watched_tags == {t.name for t in TAGS}
    assert engine.next_due() is None
