"""The site file's automation sections: rule files, the rules' identity, areas, interlocks and
per-tag command limits, each refused with ``file:line:column`` when wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import controlcenter
from controlcenter.automation import AreaDef, Expression, InterlockDef, SiteLocation, SourceSpot
from controlcenter.model import Role, User
from controlcenter.runtime.demo_site import DEMO_RULES_DIRECTORY, write_demo_site
from controlcenter.site.config import load_site
from controlcenter.site.rulefile import check_site_and_rules, load_rule_files
from controlcenter.site.yamlsource import SourceFileError
from tests.controlcenter.site.site_samples import MODBUS_SITE

SITES = Path(controlcenter.__file__).parent / "sites"

RULES = """\
rules:
  - name: water.fill
    kind: hysteresis
    input: water.tank1.level
    output: water.tank1.pump_cmd
    on_below: 1.0
    off_above: 4.0
"""


def site_with(tmp_path: Path, automation: str, text: str = MODBUS_SITE) -> Path:
    """The Modbus sample with its automation section replaced."""
    head, _, tail = text.partition(
        "automation:\n  identity: {name: rules, role: operator, areas: [water]}\n"
    )
    assert tail, "the sample has the automation section"
    path = tmp_path / "site.yaml"
    path.write_text(head + automation + tail, encoding="utf-8")
    return path


def refused(path: Path) -> list[str]:
    with pytest.raises(SourceFileError) as caught:
        load_site(path)
    return [str(problem) for problem in caught.value.problems]


def line_of(path: Path, fragment: str) -> int:
    text = path.read_text(encoding="utf-8")
    return text[: text.index(fragment)].count("\n") + 1


def test_the_accessors_give_the_automation_vocabulary(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "water.yaml").write_text(RULES, encoding="utf-8")
    path = site_with(
        tmp_path,
        "automation:\n  rule_files: [rules/water.yaml]\n"
        "  identity: {name: svc.rules, role: maintenance, areas: [water]}\n",
    )
    site = load_site(path)
    assert site.rule_file_paths() == (tmp_path / "rules" / "water.yaml",)
    assert site.automation_identity() == User("svc.rules", Role.MAINTENANCE, ("water",))
    assert site.location() == SiteLocation(52.0, 5.0, "Europe/Amsterdam")
    assert site.area_defs() == (AreaDef("water", ("water.*",)),)
    line = line_of(path, "  - name: water.tank1_high")
    assert site.interlock_defs() == (
        InterlockDef(
            name="water.tank1_high",
            tags=("water.tank1.pump_cmd",),
            block_when=Expression("water.tank1.level > 4.5", SourceSpot(str(path), line + 2, 17)),
            message="tank 1 is nearly full",
            applies_to="true",
            spot=SourceSpot(str(path), line, 5),
        ),
    )
    level = site.tag_defs()[0]
    assert (level.max_step, level.min_command_interval_s) == (0.5, 5.0)
    assert (site.tag_defs()[1].max_step, site.tag_defs()[1].min_command_interval_s) == (None, 0.0)
    (rule,) = load_rule_files(site.rule_file_paths()).rules
    assert rule.name == "water.fill"


def test_without_an_automation_section_the_rules_act_as_an_operator(tmp_path: Path) -> None:
    site = load_site(site_with(tmp_path, ""))
    assert site.automation_identity() == User("rules", Role.OPERATOR, ())
    assert site.rule_file_paths() == ()


def test_the_old_rules_section_is_refused_with_a_pointer(tmp_path: Path) -> None:
    path = site_with(tmp_path, "rules:\n  - name: water.fill\n    kind: hysteresis\n")
    line = line_of(path, "rules:")
    assert refused(path) == [
        f"{path}:{line}:1: rules: rules now live in rule files: list them under "
        "automation.rule_files"
    ]


def test_a_missing_rule_file_is_refused_at_its_reference(tmp_path: Path) -> None:
    path = site_with(
        tmp_path, "automation:\n  rule_files:\n    - rules/absent.yaml\n    - rules/absent.yaml\n"
    )
    line = line_of(path, "    - rules/absent.yaml")
    absent = tmp_path / "rules" / "absent.yaml"
    assert refused(path) == [
        f"{path}:{line}:7: automation.rule_files[0]: rule file '{absent}' does not exist",
        f"{path}:{line + 1}:7: automation.rule_files[1]: rule file '{absent}' is named twice",
    ]


def test_a_rule_file_that_is_a_fifo_or_outside_the_site_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.yaml")
    path = site_with(tmp_path, "automation:\n  rule_files: [fifo.yaml, /etc/passwd]\n")
    line = line_of(path, "  rule_files:")
    problems = refused(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:{line}:")
    assert "automation.rule_files[1]" in problems[0] and "outside" in problems[0]
    path = site_with(tmp_path, "automation:\n  rule_files: [fifo.yaml]\n")
    assert refused(path) == [
        f"{path}:{line}:16: automation.rule_files[0]: rule file '{tmp_path / 'fifo.yaml'}' "
        "is not a regular file"
    ]


@pytest.mark.parametrize(
    ("old", "new", "fragment", "column"),
    [
        (
            'tags: ["water.*"]',
            'tags: ["sewer.*"]',
            "areas[0].tags[0]: 'sewer.*' matches no tag",
            26,
        ),
        (
            "tags: [water.tank1.pump_cmd]",
            "tags: [water.tank9.pump_cmd]",
            "interlocks[0].tags[0]: 'water.tank9.pump_cmd' matches no tag",
            12,
        ),
        (
            "areas: [water]}",
            "areas: [sewer]}",
            "automation.identity.areas[0]: unknown area 'sewer'",
            51,
        ),
        (
            "role: operator",
            "role: viewer",
            "automation.identity.role: the rules' identity must be able to command, not a viewer",
            27,
        ),
        ("role: operator", "role: boss", "automation.identity.role: Input should be", 27),
        ("{name: rules,", "{name: 'ru les',", "automation.identity.name: String should match", 14),
        (
            '    applies_to: "true"',
            "    applies_to: maybe",
            "interlocks[0].applies_to: Input should be 'any', 'true' or 'false'",
            5,
        ),
        (
            "    block_when: water.tank1.level > 4.5",
            "    block_when: ''",
            "interlocks[0].block_when: an expression must not be empty",
            5,
        ),
        (
            "    block_when: water.tank1.level > 4.5",
            "    block_wen: x",
            "interlocks[0].block_wen: unknown key 'block_wen' (did you mean 'block_when'?)",
            5,
        ),
        ("max_step: 0.5", "max_step: 0", "tags[0].max_step: Input should be greater than 0", 5),
        (
            "min_command_interval: 5",
            "min_command_interval: -1",
            "tags[0].min_command_interval: Input should be greater than or equal to 0",
            5,
        ),
        (
            "    writable: true",
            "    writable: true\n    max_step: 1",
            "tags[1]: only numeric tags can have a max_step, not bool",
            5,
        ),
        (
            "  - {name: water, tags",
            "  - {name: water, tags: [water.tank1.level]}\n  - {name: water, tags",
            "areas[1].name: duplicate area name 'water'",
            6,
        ),
    ],
)
def test_automation_errors_name_file_line_and_column(
    tmp_path: Path, old: str, new: str, fragment: str, column: int
) -> None:
    assert old in MODBUS_SITE, old
    path = tmp_path / "site.yaml"
    path.write_text(MODBUS_SITE.replace(old, new, 1), encoding="utf-8")
    # The problem's line: the changed line, the tag's first line, or the second area.
    line = line_of(path, new.split("\n", maxsplit=1)[0])
    if "max_step: 1" in new:
        line = line_of(path, "  - name: water.tank1.pump_cmd")
    elif "duplicate" in fragment:
        line += 1
    problems = refused(path)
    assert any(problem.startswith(f"{path}:{line}:{column}: {fragment}") for problem in problems), (
        line,
        problems,
    )


def test_applies_to_takes_a_yaml_bool(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(MODBUS_SITE.replace('applies_to: "true"', "applies_to: false"), "utf-8")
    assert load_site(path).interlock_defs()[0].applies_to == "false"


def test_check_site_and_rules_reports_site_and_rule_problems(tmp_path: Path) -> None:
    (tmp_path / "water.yaml").write_text(
        RULES.replace("output: water.tank1.pump_cmd", "output: water.tank1.level"), "utf-8"
    )
    path = site_with(tmp_path, "automation:\n  rule_files: [water.yaml]\n")
    assert check_site_and_rules(path) == [
        f"{tmp_path / 'water.yaml'}:2:5: rule 'water.fill': output tag 'water.tank1.level' "
        "is not writable"
    ]
    (tmp_path / "water.yaml").write_text(RULES.replace("on_below: 1.0", "on_below: x"), "utf-8")
    assert check_site_and_rules(path) == [
        f"{tmp_path / 'water.yaml'}:6:5: rules[0].on_below: Input should be a valid number "
        "(got 'x')"
    ]
    (tmp_path / "water.yaml").write_text(RULES, "utf-8")
    assert check_site_and_rules(path) == []
    (tmp_path / "water.yaml").unlink()
    line = line_of(path, "  rule_files:")
    assert check_site_and_rules(path) == [
        f"{path}:{line}:16: automation.rule_files[0]: rule file '{tmp_path / 'water.yaml'}' "
        "does not exist"
    ]


def test_the_demo_site_and_its_rule_files_load() -> None:
    assert check_site_and_rules(SITES / "demo.yaml") == []
    site = load_site(SITES / "demo.yaml")
    assert site.automation_identity() == User("rules", Role.OPERATOR, ())
    assert [path.name for path in site.rule_file_paths()] == [
        "water.yaml",
        "lighting.yaml",
        "heating.yaml",
        "buildings.yaml",
    ]
    rule_set = load_rule_files(site.rule_file_paths())
    assert "water.tank1_fill" in {rule.name for rule in rule_set.rules}


def test_the_overlay_is_the_demo_site_header() -> None:
    overlay = (SITES / "demo-overlay.yaml").read_text(encoding="utf-8").rstrip()
    assert (SITES / "demo.yaml").read_text(encoding="utf-8").startswith(overlay + "\n\n")


def test_a_generated_demo_site_finds_its_rule_files(tmp_path: Path) -> None:
    path = tmp_path / "var" / "demo-site.yaml"
    path.parent.mkdir()
    write_demo_site(path, (SITES / "demo.yaml").read_text(encoding="utf-8"))
    copied = sorted(entry.name for entry in (path.parent / DEMO_RULES_DIRECTORY).iterdir())
    packaged = sorted(entry.name for entry in (SITES / DEMO_RULES_DIRECTORY).glob("*.yaml"))
    assert copied == packaged and "water.yaml" in copied
    assert not list(path.parent.rglob("*.partial"))
    site = load_site(path)
    assert site.rule_file_paths()[0] == path.parent / DEMO_RULES_DIRECTORY / "water.yaml"
