"""Compiling a rule set: every problem reported at once with file:line:column."""

from __future__ import annotations

import pytest

from controlcenter.automation import (
    CronTrigger,
    HysteresisControl,
    IntervalTrigger,
    RuleDef,
    RuleSetDef,
    SunEvent,
    SunTrigger,
)
from controlcenter.model import DataType
from rules.ruleset import (
    CALCULATED_DEVICE,
    CompiledCommandAction,
    CompiledEventAction,
    RuleSetError,
    compile_rule_set,
    split_message,
)
from rules.schedule import CronSchedule, SunSchedule
from tests.rules.rules_testkit import (
    AMSTERDAM,
    FILE,
    SITE_TAGS,
    calculated,
    command,
    compiled,
    event,
    expr,
    on_change,
    rule,
    spot,
)


def problems_of(error: pytest.ExceptionInfo[RuleSetError]) -> list[str]:
    return [str(problem) for problem in error.value.problems]


def test_a_good_rule_set_compiles_with_its_parts_resolved() -> None:
    rules = compiled(
        [
            rule(
                "lights.dusk_on",
                [
                    on_change("lights.d1.c1.lux", debounce_s=30),
                    SunTrigger(SunEvent.CIVIL_DUSK, -600, spot(3)),
                    IntervalTrigger(300, spot(4)),
                    CronTrigger("0 22 * * 1-5", spot(5)),
                ],
                [command("lights.d1.c1.mode", "1"), event("lux {lights.d1.c1.lux} lx")],
                "lights.d1.c1.lux < 20.0",
            )
        ],
        [calculated("lights.d1.power_total", "lights.d1.c1.power + lights.d1.c2.power")],
    )
    (only,) = rules.rules
    assert only.name == "lights.dusk_on"
    assert [type(t) for t in only.timed_triggers] == [SunSchedule, IntervalTrigger, CronSchedule]
    assert only.inputs == {"lights.d1.c1.lux"}
    assert only.targets == {"lights.d1.c1.mode"}
    assert {"lights.d1.c1.lux", "lights.d1.c1.mode"} <= only.watched
    action, message = only.actions
    assert isinstance(action, CompiledCommandAction) and action.data_type is DataType.INT
    assert isinstance(message, CompiledEventAction) and message.parts[0] == "lux "
    assert rules.identity == "rules-svc"
    (calc_def,) = rules.calculated_tag_defs()
    assert (calc_def.name, calc_def.device, calc_def.writable) == (
        "lights.d1.power_total",
        CALCULATED_DEVICE,
        False,
    )
    assert rules.data_types["lights.d1.power_total"] is DataType.FLOAT


def test_every_problem_is_listed_with_its_spot() -> None:
    definition = RuleSetDef(
        rules=(
            rule(
                "a", [on_change("no.such.tag")], [command("water.tank1.pump_cmd", "true")], line=10
            ),
            rule(
                "b",
                [on_change("water.tank1.level")],
                [command("water.tank1.level", "1.0")],
                line=20,
            ),
            rule("c", [on_change("water.tank1.level")], [], "water.tank1.level + 1.0", line=30),
            rule(
                "d",
                [on_change("water.tank1.level")],
                [command("lights.d1.c1.on", "2.0", line=40)],
                line=39,
            ),
            rule("a", [IntervalTrigger(60, spot(50))], [], line=50),
            rule("e", [CronTrigger("61 * * * *", spot(61, 7))], [], line=60),
            rule("f", [], [event("level {water.tank1.level")], line=70),
        ),
    )
    with pytest.raises(RuleSetError) as raised:
        compile_rule_set(definition, SITE_TAGS, AMSTERDAM)
    found = problems_of(raised)
    assert f"{FILE}:1:1: rule a: unknown tag no.such.tag" in found
    assert f"{FILE}:1:1: rule b: cannot command water.tank1.level: read-only" in found
    assert f"{FILE}:31:16: rule c: condition: must give a bool, but gives a number" in found
    assert (
        f"{FILE}:40:10: rule d: value for lights.d1.c1.on: must give a bool, but gives a number"
        in found
    )
    assert f"{FILE}:50:1: rule a is defined twice" in found
    assert any(p.startswith(f"{FILE}:61:7: rule e: invalid crontab") for p in found), found
    assert f"{FILE}:70:1: rule f has no trigger" in found
    assert any(p.startswith(f"{FILE}:1:5: rule f: event message: unmatched '{{'") for p in found)
    assert len(found) == 8
    assert str(raised.value).startswith("8 problems in the rule set:")
    # Sorted in file order.
    spots = [(p.spot.line, p.spot.column, p.reason) for p in raised.value.problems]
    assert spots == sorted(spots)


def test_unknown_tag_inside_an_expression_points_into_it() -> None:
    with pytest.raises(RuleSetError) as raised:
        compiled(
            [rule("r", [on_change("water.tank1.level")], [], "water.tank9.level > 2", line=11)]
        )
    (problem,) = raised.value.problems
    assert (problem.spot.line, problem.spot.column) == (12, 16)
    assert "water.tank9.level" in problem.reason


def test_event_parts_are_compiled_with_their_column() -> None:
    with pytest.raises(RuleSetError) as raised:
        compiled(
            [rule("r", [on_change("water.tank1.level")], [event("at {nope.tag} now", line=7)])]
        )
    (problem,) = raised.value.problems
    # The action's spot is column 5; the part starts at message offset 4.
    assert (problem.spot.line, problem.spot.column) == (7, 9)


def test_calculated_tags_clash_duplicates_and_commands_to_them() -> None:
    definition = RuleSetDef(
        rules=(rule("r", [on_change("water.tank1.level")], [command("calc.x", "1.0")], line=30),),
        calculated=(
            calculated("water.tank1.level", "water.tank2.level", line=3),
            calculated("calc.x", "water.tank2.level * 2.0", line=5),
            calculated("calc.x", "1.0", line=7),
            calculated("calc.text", "water.tank2.level", DataType.STRING, line=9),
        ),
    )
    with pytest.raises(RuleSetError) as raised:
        compile_rule_set(definition, SITE_TAGS, AMSTERDAM)
    found = problems_of(raised)
    assert f"{FILE}:3:1: calculated tag water.tank1.level clashes with a site tag" in found
    assert f"{FILE}:7:1: calculated tag calc.x is defined twice" in found
    assert f"{FILE}:1:1: rule r: cannot command calc.x: a calculated tag" in found
    assert any(p.startswith(f"{FILE}:9:17: ") and "string" in p for p in found), found


def test_a_cycle_among_calculated_tags_is_refused_and_named() -> None:
    with pytest.raises(RuleSetError) as raised:
        compiled(
            calculated_tags=[
                calculated("calc.a", "calc.b + 1.0", line=2),
                calculated("calc.b", "calc.c * 2.0", line=4),
                calculated("calc.c", "calc.a - water.tank1.level", line=6),
                calculated("calc.ok", "water.tank1.level", line=8),
                calculated("calc.self", "calc.self + 1.0", line=10),
            ]
        )
    found = problems_of(raised)
    assert (
        f"{FILE}:2:17: calculated tags form a cycle: calc.a -> calc.b -> calc.c -> calc.a" in found
    )
    assert (
        f"{FILE}:10:17: calculated tag calc.self reads itself (cycle calc.self -> calc.self)"
        in found
    )
    assert len(found) == 2


def test_calculated_tags_are_ordered_inputs_first() -> None:
    rule_set = compiled(
        calculated_tags=[
            calculated("calc.top", "calc.mid + calc.low"),
            calculated("calc.mid", "calc.low * 2.0"),
            calculated("calc.low", "water.tank1.level + water.tank2.level"),
        ]
    )
    assert [calc.name for calc in rule_set.calculated] == ["calc.low", "calc.mid", "calc.top"]
    assert rule_set.calculated[2].inputs == {"calc.mid", "calc.low"}


def test_hysteresis_rule_checks() -> None:
    def hysteresis(name: str, input_tag: str, output: str, low: float, high: float) -> RuleDef:
        return RuleDef(
            name=name,
            hysteresis=HysteresisControl(input_tag, output, low, high),
            spot=spot(len(name)),
        )

    with pytest.raises(RuleSetError) as raised:
        compile_rule_set(
            RuleSetDef(
                rules=(
                    hysteresis("h", "heat.ss3.label", "water.tank1.pump_cmd", 1, 2),
                    hysteresis("hh", "water.tank1.level", "water.ps1.speed_sp", 1, 2),
                    hysteresis("hhh", "water.tank1.level", "water.tank1.pump_cmd", 4, 2),
                    hysteresis("fine", "water.tank1.level", "water.tank1.pump_cmd", 1.5, 4),
                )
            ),
            SITE_TAGS,
            AMSTERDAM,
        )
    assert problems_of(raised) == [
        f"{FILE}:1:1: rule h: hysteresis input heat.ss3.label is not numeric",
        f"{FILE}:2:1: rule hh: hysteresis output water.ps1.speed_sp is not bool",
        f"{FILE}:3:1: rule hhh: on_below must be lower than off_above",
    ]


def test_expression_tricks_in_command_values_are_type_checked() -> None:
    # A string command value for a numeric tag, and a non-bool condition: both refused.
    with pytest.raises(RuleSetError) as raised:
        compiled(
            [
                rule(
                    "r",
                    [on_change("water.tank1.level")],
                    [command("water.ps1.speed_sp", '"fast"', line=5)],
                    "1.0",
                    line=3,
                )
            ]
        )
    assert [(p.spot.line, p.spot.column) for p in raised.value.problems] == [(4, 16), (5, 10)]


@pytest.mark.parametrize(
    ("message", "pieces"),
    [
        ("plain", [("plain", 0, False)]),
        ("a {x} b", [("a ", 0, False), ("x", 3, True), (" b", 5, False)]),
        ("{{literal}} {y}", [("{literal} ", 0, False), ("y", 13, True)]),
        ("{x}{y}", [("x", 1, True), ("y", 4, True)]),
    ],
)
def test_split_message(message: str, pieces: list[tuple[str, int, bool]]) -> None:
    assert split_message(message) == pieces


@pytest.mark.parametrize("message", ["a {b", "a } b", "{}", "{  }"])
def test_split_message_refuses_unbalanced_braces(message: str) -> None:
    with pytest.raises(ValueError):
        split_message(message)


def test_expression_spot_uses_the_expression_itself() -> None:
    # The compile error of a condition is reported at the condition's own spot, not the rule's.
    bad = RuleDef(
        name="r",
        triggers=(on_change("water.tank1.level"),),
        condition=expr("water.tank1.level >", 44, 20),
        spot=spot(40),
    )
    with pytest.raises(RuleSetError) as raised:
        compile_rule_set(RuleSetDef(rules=(bad,)), SITE_TAGS, AMSTERDAM)
    (problem,) = raised.value.problems
    assert problem.spot.line == 44 and problem.spot.column >= 20
