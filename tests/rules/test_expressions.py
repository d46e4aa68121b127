"""The rule expression language: compile-time refusals with their spots, every function, and
hostile expressions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from astral import Observer
from astral.sun import elevation

from controlcenter.automation import Expression, SiteLocation, SourceSpot
from controlcenter.model import DataType, Quality, Substatus, Value
from rules.expressions import (
    MAX_NESTING,
    ExpressionCompiler,
    ExpressionError,
    ExpressionEvaluationError,
    TagSignature,
    ValueKind,
)

AMSTERDAM = SiteLocation(52.37, 4.89, "Europe/Amsterdam")
SPOT = SourceSpot("rules/water.yaml", 12, 16)

TAGS = {
    tag.name: tag
    for tag in (
        TagSignature("water.tank1.level", DataType.FLOAT),
        TagSignature("water.tank2.level", DataType.FLOAT),
        TagSignature("water.ps1.mode", DataType.INT, writable=True),
        TagSignature("water.ps1.pump1.run_cmd", DataType.BOOL, writable=True),
        TagSignature("water.ps1.name", DataType.STRING),
        TagSignature("water.ps1.last_start", DataType.DATETIME),
        # Parts that are CEL keywords: written as-is inside a dotted tag name.
        TagSignature("water.in.level", DataType.FLOAT),
        TagSignature("lights.null.true", DataType.BOOL),
    )
}
VALUES: dict[str, Value | None] = {
    "water.tank1.level": 2.5,
    "water.tank2.level": 6.0,
    "water.ps1.mode": 1,
    "water.ps1.pump1.run_cmd": True,
    "water.ps1.name": "north",
    "water.in.level": 7.0,
    "lights.null.true": False,
}


@dataclass
class FakeContext:
    """A controllable evaluation context."""

    time: datetime = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    qualities: dict[str, Quality] = field(default_factory=dict)
    changes: dict[str, float] = field(default_factory=dict)
    windows: dict[tuple[str, float, str], float] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.time

    def quality(self, tag: str) -> Quality:
        return self.qualities.get(tag, Quality.good())

    def since_change(self, tag: str) -> float:
        return self.changes[tag]

    def window(self, tag: str, seconds: float, statistic: str) -> float:
        return self.windows[(tag, seconds, statistic)]


@pytest.fixture
def compiler() -> ExpressionCompiler:
    return ExpressionCompiler(TAGS, AMSTERDAM)


def run(
    compiler: ExpressionCompiler,
    text: str,
    context: FakeContext | None = None,
    values: dict[str, Value | None] | None = None,
) -> Value:
    compiled = compiler.compile(Expression(text, SPOT))
    return compiled.evaluate(VALUES if values is None else values, context or FakeContext())


def refusal(compiler: ExpressionCompiler, text: str, expect: ValueKind = ValueKind.ANY) -> str:
    with pytest.raises(ExpressionError) as caught:
        compiler.compile(Expression(text, SPOT), expect=expect)
    return str(caught.value)


# --- refusals with file:line:column ---------------------------------------------------------


def test_an_error_column_is_offset_by_the_expression_spot(compiler: ExpressionCompiler) -> None:
    # The unknown name starts at column 5 of the expression: 16 + 5 - 1 = 20 in the file.
    with pytest.raises(ExpressionError) as caught:
        compiler.compile(Expression("1 < water.tank9.level", SPOT))
    assert caught.value.spot == SourceSpot("rules/water.yaml", 12, 20)
    assert "unknown tag 'water.tank9.level'" in caught.value.reason
    assert str(caught.value) == f"rules/water.yaml:12:20: {caught.value.reason}"


def test_syntax_error_on_a_later_line_counts_lines_and_columns(
    compiler: ExpressionCompiler,
) -> None:
    message = refusal(compiler, "water.tank1.level > 2 &&\n  (water.tank2.level < ")
    assert message == ("rules/water.yaml:13:24: the expression ends where a value is expected")


def test_unknown_tag_suggests_the_nearest_name(compiler: ExpressionCompiler) -> None:
    message = refusal(compiler, "water.tank1.levl > 2")
    assert message == (
        "rules/water.yaml:12:16: unknown tag 'water.tank1.levl' (did you mean water.tank1.level?)"
    )


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("water.tank1.level == 'high'", 34, "cannot compare a number with a string"),
        ("water.ps1.name > 2", 31, "cannot order a string and a number"),
        ("water.ps1.pump1.run_cmd + 1", 40, "cannot apply '+' to a bool and a number"),
        ("water.tank1.level && true", 16, "'&&' needs bools, this is a number"),
        ("water.ps1.pump1.run_cmd ? 1 : 'x'", 46, "the two results of '?:' differ"),
        ("!water.tank1.level", 16, "'!' does not apply to a number"),
        ("[1, 'a']", 20, "a list of number cannot hold a string"),
        ("'a' in [1, 2]", 20, "a string is never in a list of number"),
        ("abs('x')", 20, "abs() takes numbers, not a string"),
        ("min(1)", 21, "min() takes at least 2 arguments"),
        ("hour(1)", 21, "hour() takes 0 arguments"),
        ("water.tank1.level % 2", 34, "'%' is not available"),
        ("water.tank1.level.size()", 34, "size() applies to a string, list or map"),
        ("water.ps1.last_start > 0", 16, "datetime tag; its value cannot be used"),
    ],
)
def test_type_mismatches_are_refused_where_they_are(
    compiler: ExpressionCompiler, text: str, column: int, reason: str
) -> None:
    message = refusal(compiler, text)
    assert message.startswith(f"rules/water.yaml:12:{column}: "), message
    assert reason in message


def test_a_condition_must_be_bool(compiler: ExpressionCompiler) -> None:
    message = refusal(compiler, "water.tank1.level + 1", expect=ValueKind.BOOL)
    assert message == "rules/water.yaml:12:16: must give a bool, but gives a number"


def test_a_command_value_must_fit_its_tag(compiler: ExpressionCompiler) -> None:
    message = refusal(compiler, "'on'", expect=ValueKind.NUMBER)
    assert "must give a number, but gives a string" in message
    compiled = compiler.compile(Expression("2", SPOT), expect=ValueKind.NUMBER)
    assert compiled.result_kind is ValueKind.NUMBER


def test_a_list_result_is_refused(compiler: ExpressionCompiler) -> None:
    assert "must give a single value" in refusal(compiler, "[1, 2]")


def test_unknown_functions_and_macros_are_refused(compiler: ExpressionCompiler) -> None:
    assert "unknown function 'avgg' (did you mean avg?)" in refusal(compiler, "avgg(1)")
    assert "unknown function 'math.abs'" in refusal(compiler, "math.abs(1)")
    assert "map() macro is not available" in refusal(compiler, "[1, 2].map(x, x * 2).size() > 1")
    assert "unknown method 'lowerAscii'" in refusal(compiler, "water.ps1.name.lowerAscii()")
    assert "null is not supported" in refusal(compiler, "water.ps1.name == null")
    assert "unsigned literals" in refusal(compiler, "water.tank1.level > 1u")
    assert "bytes literals" in refusal(compiler, "b'abc' == b'abc'")
    assert "compare with '=='" in refusal(compiler, "water.tank1.level = 2")


def test_size_limit(compiler: ExpressionCompiler) -> None:
    text = "water.tank1.level > 1" + " + 0" * 600
    message = refusal(compiler, text)
    assert message == (
        f"rules/water.yaml:12:16: the expression is {len(text)} characters long; the limit is 2000"
    )
    small = ExpressionCompiler(TAGS, AMSTERDAM, max_length=10)
    with pytest.raises(ExpressionError, match="limit is 10"):
        small.compile(Expression("water.tank1.level > 1"))


def test_windows_are_checked_at_compile_time(compiler: ExpressionCompiler) -> None:
    assert "at most one day" in refusal(compiler, "avg(water.tank1.level, '25h') > 1")
    assert "like '30s'" in refusal(compiler, "avg(water.tank1.level, 'soon') > 1")
    assert "longer than zero" in refusal(compiler, "avg(water.tank1.level, '0s') > 1")
    assert "needs a numeric tag" in refusal(compiler, "max_over(water.ps1.name, '5m') == 1")
    assert "takes a tag name" in refusal(compiler, "quality(1 + 2) == 'good'")
    assert "takes a bare tag name" in refusal(compiler, "since_change(water.tank1.level + 1) > 2")


# --- what a compiled expression knows -------------------------------------------------------


def test_inputs_references_and_windows(compiler: ExpressionCompiler) -> None:
    compiled = compiler.compile(
        Expression(
            "water.tank1.level > avg(water.tank2.level, '15m') && "
            "max_over(water.tank2.level, '1h') < 9 && quality(water.ps1.name) == 'good' && "
            "since_change(water.ps1.pump1.run_cmd) > 60"
        ),
        expect=ValueKind.BOOL,
    )
    assert compiled.inputs == {"water.tank1.level"}
    assert compiled.referenced == {
        "water.tank1.level",
        "water.tank2.level",
        "water.ps1.name",
        "water.ps1.pump1.run_cmd",
    }
    assert compiled.windows == {"water.tank2.level": 3600.0}
    assert compiled.result_kind is ValueKind.BOOL


def test_every_number_is_a_double(compiler: ExpressionCompiler) -> None:
    assert run(compiler, "water.ps1.mode == 1") is True
    assert run(compiler, "water.tank1.level > 2") is True
    assert run(compiler, "water.ps1.mode + 0.5") == 1.5
    assert run(compiler, "0x10 + 1") == 17.0
    assert run(compiler, "[5, 6, 7][1]") == 6.0
    assert run(compiler, "size('abc') * 2") == 6.0


def test_tag_names_with_keyword_parts_bind(compiler: ExpressionCompiler) -> None:
    assert run(compiler, "water.in.level + 1") == 8.0
    assert run(compiler, "!lights.null.true") is True
    assert "reserved word" in refusal(compiler, "in > 2")


def test_strings_methods_macros_and_literals(compiler: ExpressionCompiler) -> None:
    assert run(compiler, "water.ps1.name.startsWith('no') && water.ps1.name.contains('rt')")
    assert run(compiler, "water.ps1.name + '-' + string(water.ps1.mode)") == "north-1"
    assert run(compiler, "[1, 2, 3].exists(x, x > water.tank1.level)") is True
    assert run(compiler, "[1, 2, 3].all(x, x > water.tank1.level)") is False
    assert run(compiler, "[1, 2, 3].filter(x, x > 1.5).size()") == 2.0
    assert run(compiler, "{'a': 1, 'b': 2}['b'] + {'c': 3}.c") == 5.0
    assert run(compiler, "'a.b' == \"a.b\" // a comment\n") is True
    assert run(compiler, "water.ps1.pump1.run_cmd ? 'on' : 'off'") == "on"


# --- every function -------------------------------------------------------------------------


def test_abs_min_max_clamp(compiler: ExpressionCompiler) -> None:
    assert run(compiler, "abs(-2.5)") == 2.5
    assert run(compiler, "min(3, water.tank1.level, 9)") == 2.5
    assert run(compiler, "max(3, water.tank1.level, 9, 4)") == 9.0
    assert run(compiler, "clamp(water.tank2.level, 0, 5)") == 5.0
    assert run(compiler, "clamp(water.tank1.level, 3, 5)") == 3.0
    assert run(compiler, "clamp(water.tank1.level, 0, 5)") == 2.5
    with pytest.raises(ExpressionEvaluationError, match="low 5 above high 0"):
        run(compiler, "clamp(1, 5, 0)")


def test_time_parts_in_the_site_zone_across_the_spring_dst_change(
    compiler: ExpressionCompiler,
) -> None:
    # Europe/Amsterdam: on 2026-03-29 01:00 UTC the clocks go from 02:00 (CET) to 03:00 (CEST).
    before = FakeContext(time=datetime(2026, 3, 29, 0, 59, tzinfo=UTC))
    after = FakeContext(time=datetime(2026, 3, 29, 1, 0, tzinfo=UTC))
    assert run(compiler, "hour()", before) == 1.0
    assert run(compiler, "minute()", before) == 59.0
    assert run(compiler, "hour()", after) == 3.0
    assert run(compiler, "minute()", after) == 0.0
    assert run(compiler, "weekday()", after) == 7.0  # a Sunday (ISO: Monday 1 .. Sunday 7)
    # At 23:30 UTC on Sunday it is already Monday 01:30 in Amsterdam.
    late = FakeContext(time=datetime(2026, 3, 29, 23, 30, tzinfo=UTC))
    assert run(compiler, "weekday()", late) == 1.0
    assert run(compiler, "hour()", late) == 1.0


def test_time_parts_across_the_autumn_dst_change(compiler: ExpressionCompiler) -> None:
    # On 2026-10-25 01:00 UTC the clocks go back from 03:00 (CEST) to 02:00 (CET).
    assert run(compiler, "hour()", FakeContext(time=datetime(2026, 10, 25, 0, 30, tzinfo=UTC))) == 2
    assert run(compiler, "hour()", FakeContext(time=datetime(2026, 10, 25, 1, 30, tzinfo=UTC))) == 2
    assert run(compiler, "hour()", FakeContext(time=datetime(2026, 10, 25, 2, 30, tzinfo=UTC))) == 3


def test_sun_elevation_matches_astral_and_the_noon_geometry(compiler: ExpressionCompiler) -> None:
    # Summer solstice near solar noon in Amsterdam (4.89 E: noon at about 11:40 UTC): the sun
    # stands at 90 - 52.37 + 23.44 = 61.07 degrees (plus a little refraction).
    noon = datetime(2026, 6, 21, 11, 40, tzinfo=UTC)
    value = run(compiler, "sun_elevation()", FakeContext(time=noon))
    assert isinstance(value, float)
    assert value == pytest.approx(61.07, abs=0.3)
    observer = Observer(latitude=AMSTERDAM.latitude, longitude=AMSTERDAM.longitude)
    for hour in (3, 8, 16, 21):
        time = datetime(2026, 6, 21, hour, tzinfo=UTC)
        expected = elevation(observer, time)
        assert run(compiler, "sun_elevation()", FakeContext(time=time)) == pytest.approx(expected)
    midnight = run(compiler, "sun_elevation() < -6", FakeContext(time=noon + timedelta(hours=12)))
    assert midnight is True


def test_quality_and_since_change(compiler: ExpressionCompiler) -> None:
    context = FakeContext(
        qualities={
            "water.tank2.level": Quality.bad(Substatus.COMM_FAILURE, "no answer"),
            "water.ps1.name": Quality.uncertain(Substatus.LAST_USABLE, "stale"),
        },
        changes={"water.ps1.pump1.run_cmd": 125.0},
    )
    assert run(compiler, "quality(water.tank1.level)", context) == "good"
    assert run(compiler, "quality(water.tank2.level)", context) == "bad"
    assert run(compiler, "quality(water.ps1.name)", context) == "uncertain"
    assert run(compiler, "since_change(water.ps1.pump1.run_cmd)", context) == 125.0
    with pytest.raises(ExpressionEvaluationError, match=r"water\.tank1\.level"):
        run(compiler, "since_change(water.tank1.level) > 1", context)


def test_window_functions_ask_the_context(compiler: ExpressionCompiler) -> None:
    context = FakeContext(
        windows={
            ("water.tank1.level", 900.0, "avg"): 2.0,
            ("water.tank1.level", 300.0, "min"): 1.0,
            ("water.tank1.level", 7200.0, "max"): 4.0,
        }
    )
    assert run(compiler, "avg(water.tank1.level, '15m')", context) == 2.0
    assert run(compiler, "min_over(water.tank1.level, '300s')", context) == 1.0
    assert run(compiler, 'max_over(water.tank1.level, "2h")', context) == 4.0
    assert run(compiler, "avg(water.tank1.level, 900)", context) == 2.0


# --- evaluation failures ---------------------------------------------------------------------


def test_missing_and_forged_input_values_fail_loudly(compiler: ExpressionCompiler) -> None:
    with pytest.raises(
        ExpressionEvaluationError, match=r"water.yaml:12:16: water.tank1.level has no"
    ):
        run(compiler, "water.tank1.level > 1", values={})
    with pytest.raises(ExpressionEvaluationError, match="not a number"):
        run(compiler, "water.tank1.level > 1", values={"water.tank1.level": "2.5"})
    with pytest.raises(ExpressionEvaluationError, match="has a int value"):
        run(compiler, "water.ps1.pump1.run_cmd", values={"water.ps1.pump1.run_cmd": 1})


def test_arithmetic_failures_fail_loudly(compiler: ExpressionCompiler) -> None:
    with pytest.raises(ExpressionEvaluationError, match="the result is inf"):
        run(compiler, "water.tank1.level / 0")
    with pytest.raises(ExpressionEvaluationError, match="Function 'double' error"):
        run(compiler, "double(water.ps1.name) > 1")


def test_a_failing_context_fails_the_evaluation(compiler: ExpressionCompiler) -> None:
    compiled = compiler.compile(Expression("avg(water.tank1.level, '1m') > 1"))
    with pytest.raises(ExpressionEvaluationError) as caught:
        compiled.evaluate(VALUES, FakeContext())
    assert isinstance(caught.value.__cause__, KeyError)
    # The next evaluation starts clean.
    ok = FakeContext(windows={("water.tank1.level", 60.0, "avg"): 2.0})
    assert compiled.evaluate(VALUES, ok) is True


# --- hostile expressions ----------------------------------------------------------------------


def test_deeply_nested_parentheses_are_refused_not_crashing(compiler: ExpressionCompiler) -> None:
    deep = "(" * 900 + "1" + ")" * 900
    message = refusal(compiler, deep)
    assert f"nested more than {MAX_NESTING} levels deep" in message
    assert run(compiler, "(" * 20 + "water.tank1.level" + ")" * 20) == 2.5
    # A run of unary operators is one level: CEL reads it as a repetition, not a nesting.
    assert run(compiler, "!" * 1900 + "true") is True
    assert "nested more than" in refusal(compiler, "true ? 1 : " * 100 + "2")


def test_long_sums_are_not_nesting(compiler: ExpressionCompiler) -> None:
    assert run(compiler, " + ".join(["water.tank1.level"] * 100)) == 250.0


def test_long_string_literals(compiler: ExpressionCompiler) -> None:
    assert "limit is 2000" in refusal(compiler, "'" + "x" * 5000 + "' == water.ps1.name")
    assert run(compiler, "'" + "x" * 1900 + "' == water.ps1.name") is False
    assert "not closed" in refusal(compiler, "water.ps1.name == 'open")


def test_macros_cannot_multiply_work(compiler: ExpressionCompiler) -> None:
    big = "[" + ", ".join(["1"] * 300) + "]"
    nested = f"{big}.exists(x, {big}.exists(y, x + y > water.tank1.level))"
    assert "inside another macro's body is not allowed" in refusal(compiler, nested)
    assert run(compiler, f"{big}.filter(x, x > 0).size() == 300") is True
    chained = f"{big}.filter(x, x > 0).filter(y, y > 0).size()"
    assert run(compiler, chained) == 300.0


def test_no_route_to_python(compiler: ExpressionCompiler) -> None:
    for text in ("__import__('os')", "water.tank1.level.__class__", "eval('1')", "[].__len__()"):
        with pytest.raises(ExpressionError):
            compiler.compile(Expression(text, SPOT))
