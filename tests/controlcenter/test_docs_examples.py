"""The examples in the documentation are valid: the driver guide's site file, the rules guide's
worked rule file."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from controlcenter.runtime.demo import demo_site_path
from controlcenter.runtime.rule_deployment import SiteRules, read_rule_sources, validate_rule_set
from controlcenter.site.config import load_site

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_driver_guide_example_site_is_valid(tmp_path: Path) -> None:
    text = (DOCS / "drivers.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    [example] = [block for block in blocks if block.startswith("site:")]
    site_file = tmp_path / "site.yaml"
    site_file.write_text(example, encoding="utf-8")
    site = load_site(site_file)
    assert {device.protocol for device in site.devices} == {"modbus", "opcua", "bacnet"}
    assert len(site.tags) == 5


EXAMPLE_ADDRESSES = {"mqtt": "json:waste/c1/up#/object/fill"}
"""A valid point address per protocol of the guide's device examples."""


def test_every_device_example_of_the_driver_guide_is_valid(tmp_path: Path) -> None:
    text = (DOCS / "drivers.md").read_text(encoding="utf-8")
    fragments = [
        block
        for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
        if not block.startswith("site:")
    ]
    assert fragments, "the guide shows device examples"
    for number, fragment in enumerate(fragments):
        [device] = yaml.safe_load(fragment)
        # One point of the device, so that the site is whole.
        address = EXAMPLE_ADDRESSES[device["protocol"]]
        site_file = tmp_path / f"fragment{number}.yaml"
        site_file.write_text(
            "site: {name: Example, latitude: 52.37, longitude: 4.9, timezone: UTC}\n"
            f"devices:\n{fragment}"
            f"tags:\n  - {{name: example.point, device: {device['name']}, "
            f'address: "{address}", data_type: float}}\n',
            encoding="utf-8",
        )
        assert [d.name for d in load_site(site_file).devices] == [device["name"]]


def test_the_worked_rule_examples_compile_against_the_demo_site(tmp_path: Path) -> None:
    text = (DOCS / "rules.md").read_text(encoding="utf-8")
    section = text.split("## Worked examples", 1)[1].split("\n## ", 1)[0]
    [example] = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    rule_file = tmp_path / "examples.yaml"
    rule_file.write_text(example, encoding="utf-8")
    site = load_site(demo_site_path())
    rule_set = validate_rule_set(
        read_rule_sources([rule_file], tmp_path),
        SiteRules(tuple(site.tag_defs()), site.location(), "rules"),
    )
    assert [rule.name for rule in rule_set.rules] == [
        "water.dma1.night_leak",
        "water.ps1.rotate_duty",
        "heat.plant.dp_trim",
    ]
    assert [calc.name for calc in rule_set.calculated] == ["water.dma1.flow_ratio"]
