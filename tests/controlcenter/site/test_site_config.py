"""Site file validation: good files load, bad ones are refused with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

import controlcenter
from controlcenter.model import DataType
from controlcenter.site.config import ModbusDeviceConfig, load_site
from controlcenter.site.yamlsource import SourceFileError

DEMO_SITE = Path(controlcenter.__file__).parent / "sites" / "demo.yaml"

GOOD = """\
site:
  name: Test Town
  latitude: 52.0
  longitude: 5.0
  timezone: Europe/Amsterdam
devices:
  - name: water.rtu1
    protocol: modbus
    endpoint: 127.0.0.1:1502
    scan_interval: 0.5
tags:
  - name: water.tank1.level
    device: water.rtu1
    address: ir:0:float32
    unit: m
    range: [0, 5]
  - name: water.tank1.pump_cmd
    device: water.rtu1
    address: coil:0
    data_type: bool
    writable: true
hmi:
  featured: [water.tank1.level]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SourceFileError) as caught:
        load_site(write(tmp_path, text))
    return [str(problem) for problem in caught.value.problems]


def test_good_file_loads(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, GOOD))
    assert site.site.name == "Test Town"
    device = site.device("water.rtu1")
    assert isinstance(device, ModbusDeviceConfig)
    assert (device.host, device.port, device.scan_interval) == ("127.0.0.1", 1502, 0.5)
    level, pump = site.tag_defs()
    assert (level.low, level.high, level.data_type) == (0.0, 5.0, DataType.FLOAT)
    assert pump.writable and pump.data_type is DataType.BOOL
    assert site.hmi.featured == ["water.tank1.level"]


def test_demo_site_file_is_valid() -> None:
    site = load_site(DEMO_SITE)
    assert {tag.name for tag in site.tags} >= {"water.tank1.level", "water.tank1.pump_cmd"}


def test_misspelt_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    problems = refused(tmp_path, GOOD.replace("scan_interval: 0.5", "scan_intervall: 0.5"))
    assert problems == [
        f"{path}:10:5: devices[0].scan_intervall: unknown key 'scan_intervall' "
        "(did you mean 'scan_interval'?)"
    ]


def test_wrong_type_names_line_and_key(tmp_path: Path) -> None:
    problems = refused(tmp_path, GOOD.replace("scan_interval: 0.5", "scan_interval: fast"))
    assert len(problems) == 1
    assert ":10:5: devices[0].scan_interval:" in problems[0]
    assert "'fast'" in problems[0]


def test_missing_key_points_at_its_parent(tmp_path: Path) -> None:
    problems = refused(tmp_path, GOOD.replace("    endpoint: 127.0.0.1:1502\n", ""))
    assert len(problems) == 1
    assert ":7:5: devices[0].endpoint: missing required key 'endpoint'" in problems[0]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("latitude: 52.0", "latitude: 152.0").replace("unit: m", "units: m")
    problems = refused(tmp_path, text)
    assert any(":3:3: site.latitude:" in p for p in problems)
    assert any(":15:5: tags[0].units: unknown key 'units'" in p for p in problems)


def test_unknown_references_are_refused_with_their_line(tmp_path: Path) -> None:
    text = GOOD.replace(
        "device: water.rtu1\n    address: coil:0", "device: water.rtu9\n    address: coil:0"
    ).replace("featured: [water.tank1.level]", "featured: [water.tank1.level, nope]")
    problems = refused(tmp_path, text)
    assert any(":18:5: tags[1].device: unknown device 'water.rtu9'" in p for p in problems)
    assert any(":23:33: hmi.featured[1]: unknown tag 'nope'" in p for p in problems)


def test_bad_address_is_refused(tmp_path: Path) -> None:
    problems = refused(tmp_path, GOOD.replace("address: ir:0:float32", "address: ir:zero"))
    assert len(problems) == 1 and ":14:5: tags[0].address:" in problems[0]


def test_a_range_on_a_non_numeric_tag_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    data_type: bool\n    writable: true",
        "    data_type: bool\n    range: [0, 1]\n    writable: true",
        1,
    )
    assert text != GOOD
    problems = refused(tmp_path, text)
    assert any("tags[1]" in p and "only numeric tags can have a range" in p for p in problems)


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    problems = refused(tmp_path, GOOD.replace("    unit: m\n", "    unit: m\n    unit: cm\n"))
    assert any(":16:5: tags[0].unit: duplicate key 'unit'" in p for p in problems)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    problems = refused(tmp_path, GOOD.replace("  name: Test Town", "  name: [Test Town"))
    assert len(problems) == 1 and "invalid YAML" in problems[0]
    assert problems[0].startswith(f"{path}:3:11: invalid YAML"), problems


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceFileError, match="cannot read"):
        load_site(tmp_path / "absent.yaml")


def test_unknown_timezone(tmp_path: Path) -> None:
    problems = refused(tmp_path, GOOD.replace("Europe/Amsterdam", "Mars/Olympus"))
    assert any(":5:3: site.timezone:" in p and "unknown time zone" in p for p in problems)
