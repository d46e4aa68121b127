"""Interlocks block commands while their condition holds, and fail safe on untrusted inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest

from controlcenter.automation import Expression, InterlockDef, SiteLocation, SourceSpot
from controlcenter.model import DataType, Quality, Sample, Substatus, TagDef, Value
from controlcenter.ports import InterlockChecker
from rules.expressions import ExpressionCompiler, ExpressionError, TagSignature
from rules.interlocks import InterlockSet

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SITE = SiteLocation(52.37, 4.89, "Europe/Amsterdam")
TAG_DEFS = (
    TagDef("water.tank2.level", "rtu1", "hr:0", DataType.FLOAT),
    TagDef("water.ps1.pump1.run_cmd", "rtu1", "coil:0", DataType.BOOL, writable=True),
    TagDef("water.ps1.pump2.run_cmd", "rtu1", "coil:1", DataType.BOOL, writable=True),
    TagDef("water.ps1.valve.position", "rtu1", "hr:2", DataType.FLOAT, writable=True),
    TagDef("lights.d1.c1.mode", "ctl1", "hr:0", DataType.INT, writable=True),
)


class FakeLiveView:
    """The latest samples, set by the test."""

    def __init__(self) -> None:
        self.samples: dict[str, Sample] = {}

    def set(self, tag: str, value: Value | None, quality: Quality | None = None) -> None:
        self.samples[tag] = Sample(tag, value, quality or Quality.good(), NOW, NOW)

    def tags(self) -> Sequence[TagDef]:
        return TAG_DEFS

    def latest(self, tag: str) -> Sample:
        return self.samples[tag]

    def snapshot(self) -> Mapping[str, Sample]:
        return dict(self.samples)


class FakeContext:
    def now(self) -> datetime:
        return NOW

    def quality(self, tag: str) -> Quality:
        return Quality.good()

    def since_change(self, tag: str) -> float:
        return 0.0

    def window(self, tag: str, seconds: float, statistic: str) -> float:
        raise LookupError("no window data yet")


def compiler() -> ExpressionCompiler:
    return ExpressionCompiler({t.name: TagSignature(t.name, t.data_type) for t in TAG_DEFS}, SITE)


def reservoir_high(**changes: object) -> InterlockDef:
    fields: dict[str, object] = {
        "name": "ps1.reservoir_high",
        "tags": ("water.ps1.pump*.run_cmd",),
        "block_when": Expression("water.tank2.level > 5.5", SourceSpot("site.yaml", 40, 17)),
        "message": "reservoir 2 is above its high level",
        "applies_to": "true",
        "spot": SourceSpot("site.yaml", 37, 5),
    }
    fields.update(changes)
    return InterlockDef(**fields)  # type: ignore[arg-type]


@pytest.fixture
def live() -> FakeLiveView:
    view = FakeLiveView()
    view.set("water.tank2.level", 4.0)
    return view


def test_blocks_while_the_condition_holds_and_allows_otherwise(live: FakeLiveView) -> None:
    interlocks = InterlockSet([reservoir_high()], compiler(), live, FakeContext())
    checker: InterlockChecker = interlocks
    assert checker.blocking("water.ps1.pump1.run_cmd", True) is None
    live.set("water.tank2.level", 5.6)
    assert checker.blocking("water.ps1.pump1.run_cmd", True) == (
        "ps1.reservoir_high: reservoir 2 is above its high level"
    )
    assert checker.blocking("water.ps1.pump2.run_cmd", True) is not None
    assert checker.blocking("water.ps1.valve.position", 50.0) is None  # not a guarded tag
    assert interlocks.covering("water.ps1.pump2.run_cmd") == ("ps1.reservoir_high",)


def test_applies_to_true_lets_stops_through(live: FakeLiveView) -> None:
    live.set("water.tank2.level", 6.0)
    interlocks = InterlockSet([reservoir_high()], compiler(), live, FakeContext())
    assert interlocks.blocking("water.ps1.pump1.run_cmd", False) is None
    assert interlocks.blocking("water.ps1.pump1.run_cmd", "off") is None
    assert interlocks.blocking("water.ps1.pump1.run_cmd", 1) is not None
    assert interlocks.blocking("water.ps1.pump1.run_cmd", "maybe") is not None  # unknown: blocks


def test_applies_to_false_and_any(live: FakeLiveView) -> None:
    live.set("water.tank2.level", 6.0)
    only_stops = reservoir_high(name="keep_running", applies_to="false", message="")
    interlocks = InterlockSet([only_stops], compiler(), live, FakeContext())
    assert interlocks.blocking("water.ps1.pump1.run_cmd", True) is None
    assert interlocks.blocking("water.ps1.pump1.run_cmd", False) == (
        "keep_running: blocked while water.tank2.level > 5.5"
    )
    every = reservoir_high(applies_to="any", tags=("water.ps1.valve.*",))
    interlocks = InterlockSet([every], compiler(), live, FakeContext())
    assert interlocks.blocking("water.ps1.valve.position", 0.0) is not None


def test_bad_input_blocks_fail_safe_and_says_so(live: FakeLiveView) -> None:
    live.set("water.tank2.level", None, Quality.bad(Substatus.COMM_FAILURE, "RTU silent"))
    interlocks = InterlockSet([reservoir_high()], compiler(), live, FakeContext())
    reason = interlocks.blocking("water.ps1.pump1.run_cmd", True)
    assert reason == (
        "ps1.reservoir_high: reservoir 2 is above its high level "
        "(fail-safe: input water.tank2.level is bad:comm_failure, RTU silent)"
    )
    live.set("water.tank2.level", 1.0, Quality.uncertain(Substatus.LAST_USABLE, "stale"))
    reason = interlocks.blocking("water.ps1.pump1.run_cmd", True)
    assert reason is not None
    assert "uncertain:last_usable" in reason


def test_unknown_input_and_failing_evaluation_block(live: FakeLiveView) -> None:
    del live.samples["water.tank2.level"]
    interlocks = InterlockSet([reservoir_high()], compiler(), live, FakeContext())
    reason = interlocks.blocking("water.ps1.pump1.run_cmd", True)
    assert reason is not None
    assert "input water.tank2.level is unknown" in reason
    live.set("water.tank2.level", 3.0)
    windowed = reservoir_high(
        block_when=Expression(
            "avg(water.tank2.level, '10m') > 5.5", SourceSpot("site.yaml", 40, 17)
        )
    )
    interlocks = InterlockSet([windowed], compiler(), live, FakeContext())
    reason = interlocks.blocking("water.ps1.pump1.run_cmd", True)
    assert reason is not None
    assert "cannot evaluate" in reason
    assert "no window data yet" in reason


def test_a_bad_interlock_is_refused_with_its_spot(live: FakeLiveView) -> None:
    bad_expression = reservoir_high(
        block_when=Expression("water.tank2.level + 1", SourceSpot("site.yaml", 40, 17))
    )
    with pytest.raises(ExpressionError, match=r"^site.yaml:40:17: must give a bool"):
        InterlockSet([bad_expression], compiler(), live, FakeContext())
    with pytest.raises(ExpressionError, match=r"^site.yaml:37:5: .*applies_to"):
        InterlockSet([reservoir_high(applies_to="yes")], compiler(), live, FakeContext())
    with pytest.raises(ExpressionError, match="matches no tag"):
        InterlockSet([reservoir_high(tags=("water.ps9.*",))], compiler(), live, FakeContext())
    with pytest.raises(ExpressionError, match="defined twice"):
        InterlockSet([reservoir_high(), reservoir_high()], compiler(), live, FakeContext())
