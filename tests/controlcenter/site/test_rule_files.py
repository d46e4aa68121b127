"""Rule files: every element of the format parses into the automation vocabulary with its spot,
and every bad file is refused with ``file:line:column`` for each of its problems."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from controlcenter.automation import (
    CommandAction,
    CronTrigger,
    EventAction,
    Expression,
    HysteresisControl,
    InputQualityPolicy,
    IntervalTrigger,
    RuleSource,
    SourceSpot,
    SunEvent,
    SunTrigger,
    TagChangeTrigger,
)
from controlcenter.model import CommandPriority, DataType, TagDef
from controlcenter.site import rulefile
from controlcenter.site.fields import parse_duration
from controlcenter.site.rulefile import (
    check_rule_set_against_site,
    load_rule_files,
    parse_rule_sources,
)
from controlcenter.site.yamlsource import MAX_FILE_BYTES, SourceFileError

EXAMPLE = """\
calculated:
  - name: lights.d1.power_total
    expression: lights.d1.c1.power + lights.d1.c2.power
    type: float
    unit: kW
    description: District 1 streetlight power
    range: [0, 500]
rules:
  - name: lights.d1.dusk_on
    description: Lamps on at civil dusk
    owner: lighting
    enabled: true
    triggers:
      - sun: civil_dusk
        offset: -10m
      - tag: lights.d1.c1.lux
        debounce: 30s
      - every: 5m
      - cron: "0 22 * * 1-5"
      - tags: [lights.d1.c1.lux, lights.d1.c2.lux]
    condition: lights.d1.c1.lux < 20.0
    for: 5m
    inputs: good_or_uncertain
    min_command_interval: 20s
    actions:
      - command: lights.d1.c1.mode
        value: "1"
        priority: safety
      - event: "District 1 lamps on at {lights.d1.c1.lux} lx"
        severity: 300
  - name: water.tank1_fill
    kind: hysteresis
    input: water.tank1.level
    output: water.tank1.pump_cmd
    on_below: 1.5
    off_above: 4.0
"""


def write(directory: Path, text: str | bytes, name: str = "rules.yaml") -> Path:
    path = directory / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def refused(*sources: tuple[str, str]) -> list[str]:
    with pytest.raises(SourceFileError) as caught:
        parse_rule_sources([RuleSource(name, text) for name, text in sources])
    return [str(problem) for problem in caught.value.problems]


def test_every_element_of_the_format_is_parsed_with_its_spot(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    rule_set = load_rule_files([path])
    file = str(path)
    (calculated,) = rule_set.calculated
    assert calculated.name == "lights.d1.power_total"
    assert calculated.expression == Expression(
        "lights.d1.c1.power + lights.d1.c2.power", SourceSpot(file, 3, 17)
    )
    assert (calculated.data_type, calculated.unit, calculated.low, calculated.high) == (
        DataType.FLOAT,
        "kW",
        0.0,
        500.0,
    )
    assert calculated.spot == SourceSpot(file, 2, 5)
    dusk, fill = rule_set.rules
    assert (dusk.name, dusk.owner, dusk.enabled, dusk.spot) == (
        "lights.d1.dusk_on",
        "lighting",
        True,
        SourceSpot(file, 9, 5),
    )
    assert dusk.triggers == (
        SunTrigger(SunEvent.CIVIL_DUSK, -600.0, SourceSpot(file, 14, 9)),
        TagChangeTrigger(("lights.d1.c1.lux",), 30.0, SourceSpot(file, 16, 9)),
        IntervalTrigger(300.0, SourceSpot(file, 18, 9)),
        CronTrigger("0 22 * * 1-5", SourceSpot(file, 19, 9)),
        TagChangeTrigger(("lights.d1.c1.lux", "lights.d1.c2.lux"), 0.0, SourceSpot(file, 20, 9)),
    )
    assert dusk.condition == Expression("lights.d1.c1.lux < 20.0", SourceSpot(file, 21, 16))
    assert (dusk.hold_for_s, dusk.inputs_quality, dusk.min_command_interval_s) == (
        300.0,
        InputQualityPolicy.GOOD_OR_UNCERTAIN,
        20.0,
    )
    assert dusk.actions == (
        CommandAction(
            "lights.d1.c1.mode",
            Expression("1", SourceSpot(file, 27, 17)),  # one column after the quote
            CommandPriority.SAFETY,
            SourceSpot(file, 26, 9),
        ),
        EventAction("District 1 lamps on at {lights.d1.c1.lux} lx", 300, SourceSpot(file, 29, 17)),
    )
    assert fill.hysteresis == HysteresisControl(
        "water.tank1.level", "water.tank1.pump_cmd", 1.5, 4.0, CommandPriority.AUTOMATION
    )
    assert (fill.triggers, fill.actions, fill.condition, fill.spot) == (
        (),
        (),
        None,
        SourceSpot(file, 31, 5),
    )
    assert rule_set.sources == (RuleSource(file, EXAMPLE),)


def test_defaults_of_an_ordinary_rule() -> None:
    text = "rules:\n  - name: a.b\n    triggers: [{every: 60}]\n    actions: [{event: hi}]\n"
    (rule,) = parse_rule_sources([RuleSource("r.yaml", text)]).rules
    assert (rule.enabled, rule.inputs_quality, rule.min_command_interval_s, rule.hold_for_s) == (
        True,
        InputQualityPolicy.GOOD,
        10.0,
        0.0,
    )
    assert rule.actions == (EventAction("hi", 500, SourceSpot("r.yaml", 4, 23)),)


@pytest.mark.parametrize(
    ("written", "text", "line", "column"),
    [
        ("value: a.b + 1", "a.b + 1", 6, 16),  # plain: where it starts
        ("value: 'a.b + 1'", "a.b + 1", 6, 17),  # quoted: a column after the quote
        ('value: "a.b + 1"', "a.b + 1", 6, 17),
        ("value: |\n          a.b +\n          1", "a.b +\n1\n", 7, 11),  # block: first line
        ("value: >-  # a comment\n          a.b +\n          1", "a.b + 1", 7, 11),
        ("value: |2\n            a.b", "  a.b\n", 7, 11),  # indentation indicator: 8 + 2
        ("value: 2", "2", 6, 16),  # a YAML number or bool is taken as its literal
        ("value: 2.5", "2.5", 6, 16),
        ("value: true", "true", 6, 16),
        ("value: no", "false", 6, 16),
    ],
)
def test_an_expression_is_located_at_its_first_character(
    written: str, text: str, line: int, column: int
) -> None:
    source = (
        "rules:\n  - name: a.b\n    triggers: [every: 1m]\n    actions:\n"
        f"      - command: a.b\n        {written}\n"
    )
    (rule,) = parse_rule_sources([RuleSource("r.yaml", source)]).rules
    action = rule.actions[0]
    assert isinstance(action, CommandAction)
    assert action.value == Expression(text, SourceSpot("r.yaml", line, column))


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
        ("-10m", -600.0),
        (" 45 s ", 45.0),
    ],
)
def test_durations(written: object, seconds: float) -> None:
    assert parse_duration(written) == seconds


@pytest.mark.parametrize("written", ["5 minutes", "10", "m", "1e3s", "--5m", "9" * 50 + "s"])
def test_bad_durations_are_refused(written: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(written)


RULE = """\
rules:
  - name: water.fill
    triggers:
      - every: 5m
    condition: water.level < 2
    actions:
      - command: water.pump
        value: true
"""


def one_change(old: str, new: str) -> list[str]:
    assert old in RULE, old
    return refused(("r.yaml", RULE.replace(old, new, 1)))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "      - every: 5m",
            "      - every: 5m\n        debounse: 30s",
            "r.yaml:5:9: rules[0].triggers[0].debounse: unknown key 'debounse' "
            "(did you mean 'debounce'?)",
        ),
        (
            "    condition:",
            "    conditon:",
            "r.yaml:5:5: rules[0].conditon: unknown key 'conditon' (did you mean 'condition'?)",
        ),
        (
            "every: 5m",
            "evry: 5m",
            "r.yaml:4:9: rules[0].triggers[0]: a trigger is a mapping with exactly one of sun, "
            "tag (or tags), every or cron",
        ),
        (
            "every: 5m",
            "{every: 5m, cron: '* * * * *'}",
            "r.yaml:4:9: rules[0].triggers[0]: a trigger is a mapping with exactly one of sun, "
            "tag (or tags), every or cron",
        ),
        ("every: 5m", "sun: noon", "r.yaml:4:9: rules[0].triggers[0].sun: Input should be"),
        ("every: 5m", "every: 5 minutes", "r.yaml:4:9: rules[0].triggers[0].every: '5 minutes' is"),
        ("every: 5m", "every: 0.5", "r.yaml:4:9: rules[0].triggers[0].every: Input should be"),
        ("every: 5m", "every: .nan", "r.yaml:4:9: rules[0].triggers[0].every:"),
        ("every: 5m", "every: true", "r.yaml:4:9: rules[0].triggers[0].every:"),
        ("every: 5m", "cron: '0 22 * *'", "r.yaml:4:9: rules[0].triggers[0].cron: a crontab has"),
        ("every: 5m", "cron: '60 * * * *'", "minute '60' is not 0-59"),
        ("every: 5m", "cron: '0 5-2 * * *'", "hour range '5-2' runs backwards"),
        ("every: 5m", "cron: '0 0 * * fri-mon'", "weekday range 'fri-mon' runs backwards"),
        ("every: 5m", "cron: '0 0 * foo *'", "month 'foo' is not 1-12 or jan..dec"),
        ("every: 5m", "cron: '*/0 * * * *'", "minute step must be 1 or more"),
        ("every: 5m", "cron: '@daily'", "a crontab has five fields"),
        ("every: 5m", "tag: x.y\n        tags: [x.z]", "either 'tag' or 'tags', not both"),
        ("every: 5m", "tag: X Y", "r.yaml:4:9: rules[0].triggers[0].tag: String should match"),
        ("every: 5m", "tags: []", "r.yaml:4:9: rules[0].triggers[0].tags: List should have"),
        ("every: 5m", "sun: sunset\n        offset: 13h", "triggers[0].offset: Input should be"),
        (
            "        value: true",
            "        value: true\n        priority: urgent",
            "r.yaml:9:9: rules[0].actions[0].priority: Input should be 'manual_operator', "
            "'safety', 'automation' or 'schedule' (got 'urgent')",
        ),
        ("        value: true", "        value: ''", "r.yaml:8:9: rules[0].actions[0].value: "),
        ("        value: true", "        value: [1]", "r.yaml:8:9: rules[0].actions[0].value: "),
        ("        value: true", "        value:", "r.yaml:8:9: rules[0].actions[0].value: "),
        (
            "        value: true",
            "        value: '" + "x" * 2001 + "'",
            "r.yaml:8:9: rules[0].actions[0].value: String should have at most 2000 characters",
        ),
        (
            "      - command: water.pump\n        value: true",
            "      - {}",
            "r.yaml:7:9: rules[0].actions[0]: an action is a mapping with exactly one of command",
        ),
        (
            "      - command: water.pump\n        value: true",
            "      - event: x\n        severity: 0",
            "r.yaml:8:9: rules[0].actions[0].severity: Input should be greater than or equal to 1",
        ),
        (
            "    actions:\n      - command: water.pump\n        value: true\n",
            "    actions: []\n",
            "r.yaml:6:5: rules[0].actions: List should have at least 1 item",
        ),
        (
            "  - name: water.fill",
            "  - name: water.fill\n    kind: hysteresys",
            "r.yaml:3:5: rules[0].kind: a rule is a mapping; its kind is 'hysteresis' or absent",
        ),
        (
            "  - name: water.fill",
            "  - name: Water Fill",
            "r.yaml:2:5: rules[0].name: String should",
        ),
        (
            "    condition: water.level < 2",
            "    for: 5m",
            "r.yaml:2:5: rules[0]: 'for' needs a condition to hold",
        ),
        (
            "    condition: water.level < 2",
            "    condition: water.level < 2\n    for: 8d",
            "r.yaml:6:5: rules[0].for: Input should be less than or equal to 604800",
        ),
        (
            "    condition: water.level < 2",
            "    condition: water.level < 2\n    inputs: some",
            "r.yaml:6:5: rules[0].inputs: Input should be 'good', 'good_or_uncertain' or 'any'",
        ),
        (
            "    condition: water.level < 2",
            "    condition: water.level < 2\n    enabled: 'yes'",
            "r.yaml:6:5: rules[0].enabled: Input should be a valid boolean (got 'yes')",
        ),
        ("rules:", "rulez:", "r.yaml:1:1: rulez: unknown key 'rulez' (did you mean 'rules'?)"),
    ],
)
def test_every_error_names_file_line_and_column(old: str, new: str, expected: str) -> None:
    problems = one_change(old, new)
    assert any(problem.startswith(expected) or expected in problem for problem in problems), (
        problems
    )
    assert all(problem.startswith("r.yaml:") for problem in problems), problems


HYSTERESIS = """\
rules:
  - name: water.fill
    kind: hysteresis
    input: water.level
    output: water.pump
    on_below: 4.0
    off_above: 1.0
    triggers: [every: 1m]
"""


def test_hysteresis_errors_are_located() -> None:
    assert refused(("h.yaml", HYSTERESIS)) == [
        "h.yaml:8:5: rules[0].triggers: unknown key 'triggers' (not a key of this kind of entry)"
    ]
    gap = HYSTERESIS.replace("    triggers: [every: 1m]\n", "")
    assert refused(("h.yaml", gap)) == [
        "h.yaml:2:5: rules[0]: on_below must be lower than off_above"
    ]


CALCULATED = """\
calculated:
  - name: heat.total
    expression: heat.a + heat.b
    type: bool
    range: [0, 1]
  - name: heat.other
    expression: heat.a
    type: datetime
"""


def test_calculated_tag_errors_are_located() -> None:
    problems = refused(("c.yaml", CALCULATED))
    assert "c.yaml:2:5: calculated[0]: only numeric tags can have a range, not bool" in problems
    assert any(p.startswith("c.yaml:8:5: calculated[1].type: Input should be") for p in problems)


def test_duplicate_names_across_files_name_the_first() -> None:
    first = "rules:\n  - {name: a.b, triggers: [every: 1m], actions: [event: x]}\n"
    calc = "calculated:\n  - {name: c.d, expression: '1'}\n"
    second = (
        "calculated:\n  - {name: c.d, expression: '2'}\n"
        "rules:\n  - {name: a.b, triggers: [every: 1m], actions: [event: y]}\n"
    )
    problems = refused(("one.yaml", first + calc), ("two.yaml", second))
    assert problems == [
        "two.yaml:2:6: calculated[0].name: duplicate calculated tag name 'c.d' "
        "(first at one.yaml:4:6)",
        "two.yaml:4:6: rules[0].name: duplicate rule name 'a.b' (first at one.yaml:2:6)",
    ]


def test_problems_of_every_file_are_reported_together(tmp_path: Path) -> None:
    bad_yaml = write(tmp_path, "rules: [\n", "a.yaml")
    bad_key = write(tmp_path, "rulez: []\n", "b.yaml")
    missing = tmp_path / "c.yaml"
    with pytest.raises(SourceFileError) as caught:
        load_rule_files([bad_yaml, bad_key, missing])
    report = [str(problem) for problem in caught.value.problems]
    assert report[0].startswith(f"{bad_yaml}:2:1: invalid YAML")
    assert report[1:] == [
        f"{bad_key}:1:1: rulez: unknown key 'rulez' (did you mean 'rules'?)",
        f"{missing}: cannot read: No such file or directory",
    ]


def test_an_empty_file_has_no_rules_and_a_list_is_refused() -> None:
    assert parse_rule_sources([RuleSource("e.yaml", "# nothing yet\n")]).rules == ()
    assert refused(("l.yaml", "- a\n")) == [
        "l.yaml:1:1: a rule file is a mapping with 'rules' and 'calculated' keys"
    ]


def test_the_same_file_named_twice_is_refused() -> None:
    assert refused(("a.yaml", "rules: []\n"), ("a.yaml", "rules: []\n")) == [
        "a.yaml: the rule file is named twice"
    ]


def test_the_set_size_limits_count_across_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rulefile, "MAX_RULES", 3)
    monkeypatch.setattr(rulefile, "MAX_CALCULATED", 1)
    rules = "".join(
        f"  - {{name: r.n{i}, triggers: [every: 1m], actions: [event: x]}}\n" for i in range(2)
    )
    one = "calculated:\n  - {name: c.a, expression: '1'}\nrules:\n" + rules
    two = "calculated:\n  - {name: c.b, expression: '1'}\nrules:\n" + rules.replace("r.n", "r.m")
    assert refused(("one.yaml", one), ("two.yaml", two)) == [
        "two.yaml:2:5: calculated[0]: the rule set has more than 1 calculated tags",
        "two.yaml:5:5: rules[1]: the rule set has more than 3 rules",
    ]


# --- hostile files -------------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as file:
        file.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(SourceFileError, match="larger than 16 MiB"):
        load_rule_files([path])


def test_a_stored_text_over_the_size_limit_is_refused() -> None:
    with pytest.raises(SourceFileError, match="larger than 16 MiB"):
        parse_rule_sources([RuleSource("big.yaml", "#" * (MAX_FILE_BYTES + 1))])


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "rules.yaml"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(SourceFileError) as caught:
        load_rule_files([fifo])
    assert [str(p) for p in caught.value.problems] == [f"{fifo}: not a regular file (a FIFO)"]
    assert time.monotonic() - started < 2.0


def test_bytes_that_are_not_utf8_are_refused_with_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.encode().replace(b"Lamps on", b"Lamps \xe9 on"))
    with pytest.raises(SourceFileError) as caught:
        load_rule_files([path])
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:10:24: not UTF-8: byte 0xE9 cannot be decoded"
    ]


def test_a_control_character_in_a_stored_text_is_refused_with_line_and_column() -> None:
    assert refused(("r.yaml", "rules: []\n# a\x07b\n")) == [
        "r.yaml:2:4: character U+0007 is not allowed "
        "(YAML allows printable characters, tab and line breaks only)"
    ]


def test_deep_nesting_and_alias_bombs_are_refused() -> None:
    deep = "rules: " + "[" * 200 + "]" * 200 + "\n"
    assert refused(("d.yaml", deep)) == ["d.yaml:1:71: nested deeper than 64 levels"]
    bomb = "x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"x{i}: &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 10)}]\n" for i in range(6)
    )
    problems = refused(("b.yaml", bomb))
    assert len(problems) == 1 and "alias expansion limit" in problems[0]
    assert problems[0].startswith("b.yaml:5:"), problems


def test_unknown_tags_and_python_objects_are_refused() -> None:
    problems = refused(("t.yaml", "rules: !!python/object:os.system x\n"))
    assert problems[0].startswith("t.yaml:1:8: rules: tag '!!python/object:os.system' is not")


# --- against the site ------------------------------------------------------------------------

SITE_TAGS = [
    TagDef("water.level", "rtu", "ir:0", DataType.FLOAT),
    TagDef("water.mode", "rtu", "hr:0", DataType.STRING, writable=True),
    TagDef("water.pump", "rtu", "coil:0", DataType.BOOL, writable=True),
    TagDef("water.running", "rtu", "di:0", DataType.BOOL),
]
AGAINST_SITE = """\
calculated:
  - {name: water.level, expression: '1'}
  - {name: water.volume, expression: water.level * 10}
rules:
  - name: a.one
    triggers:
      - tags: [water.level, water.volume, water.nothing]
    actions:
      - {command: water.running, value: 'true'}
      - {command: water.volume, value: '1'}
      - {command: water.absent, value: '1'}
      - {command: water.mode, value: "'auto'"}
  - {name: a.two, kind: hysteresis, input: water.mode, output: water.level, on_below: 1,
     off_above: 2}
  - {name: a.three, kind: hysteresis, input: water.volume, output: water.mode, on_below: 1,
     off_above: 2}
  - {name: a.four, kind: hysteresis, input: water.nope, output: water.pump, on_below: 1,
     off_above: 2}
"""


def test_what_the_rules_name_is_checked_against_the_site() -> None:
    rule_set = parse_rule_sources([RuleSource("s.yaml", AGAINST_SITE)])
    problems = [str(p) for p in check_rule_set_against_site(rule_set, SITE_TAGS)]
    assert problems == [
        "s.yaml:2:5: calculated tag 'water.level' has a site tag's name",
        "s.yaml:7:9: rule 'a.one': trigger tag 'water.nothing' is unknown",
        "s.yaml:9:9: rule 'a.one': command tag 'water.running' is not writable",
        "s.yaml:10:9: rule 'a.one': command tag 'water.volume' is a calculated tag (not writable)",
        "s.yaml:11:9: rule 'a.one': command tag 'water.absent' is unknown",
        "s.yaml:13:5: rule 'a.two': input tag 'water.mode' is not numeric",
        "s.yaml:13:5: rule 'a.two': output tag 'water.level' is not writable",
        "s.yaml:15:5: rule 'a.three': output tag 'water.mode' is not boolean",
        "s.yaml:17:5: rule 'a.four': input tag 'water.nope' is unknown",
    ]
