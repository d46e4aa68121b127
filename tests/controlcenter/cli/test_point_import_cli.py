"""``controlcenter import``: a CSV point list becomes a site file, hostile lists are refused."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from controlcenter.cli.main import app
from controlcenter.site.config import load_site

HEADER = """site: {name: Imported, latitude: 52.0, longitude: 5.0, timezone: Europe/Amsterdam}
areas:
  - {name: water, tags: ["water.*"]}
"""
TEMPLATES = """- name: "{asset}.level.high"
  kind: high
  tag: "{asset}.level"
  limit: 4.5
  priority: medium
  message: Level high
"""
COLUMNS = ["asset", "point", "address", "data_type", "unit", "low", "high", "writable",
           "device", "protocol", "endpoint", "unit_id"]  # fmt: skip


def point_list(count: int) -> str:
    """``count`` points: tanks of 5 points each, 10 tanks per Modbus RTU."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    points = [("level", "float32", "m", 0, 5), ("inflow", "float32", "m3/h", 0, 500),
              ("outflow", "float32", "m3/h", 0, 500), ("temp", "float32", "degC", -10, 40),
              ("chlorine", "float32", "mg/L", 0, 5)]  # fmt: skip
    for index in range(count):
        tank, which = divmod(index, len(points))
        name, kind, unit, low, high = points[which]
        rtu = tank // 10
        writer.writerow([f"water.t{tank}", name, f"ir:{(tank % 10) * 10 + which * 2}:{kind}",
                         "float", unit, low, high, "no", f"water.rtu{rtu}", "modbus",
                         f"10.0.{rtu // 250}.{rtu % 250 + 1}:502", 1])  # fmt: skip
    return out.getvalue()


def run(tmp_path: Path, csv_text: str | bytes, *more: str) -> Result:
    """``import`` of the list written to a file."""
    path = tmp_path / "points.csv"
    if isinstance(csv_text, str):
        path.write_text(csv_text, encoding="utf-8")
    else:
        path.write_bytes(csv_text)
    return CliRunner().invoke(app, ["import", str(path), *more])


@pytest.mark.timeout(120)
def test_a_thousand_points_become_a_valid_site_with_typed_assets(tmp_path: Path) -> None:
    header = tmp_path / "header.yaml"
    header.write_text(HEADER, encoding="utf-8")
    templates = tmp_path / "tank.yaml"
    templates.write_text(TEMPLATES, encoding="utf-8")
    site = tmp_path / "site.yaml"
    result = run(
        tmp_path, point_list(1000), "--template", f"tank={templates}",
        "--header", str(header), "-o", str(site),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "20 devices, 1000 tags, 200 assets (tank)" in result.stderr
    checked = CliRunner().invoke(app, ["check", "--site", str(site)])
    assert checked.exit_code == 0, checked.output
    loaded = load_site(site)
    assert len(loaded.tags) == 1000
    assert {asset.type for asset in loaded.assets} == {"tank"}
    # The template's alarm exists once per tank.
    alarms = {alarm.name for alarm in loaded.alarm_defs()}
    assert "water.t0.level.high" in alarms and "water.t199.level.high" in alarms
    lines = site.read_text(encoding="utf-8").splitlines()
    assert sum(line.startswith('  - {name: "water.t') for line in lines) == 1000 + 200


def test_a_fragment_without_header_is_printed(tmp_path: Path) -> None:
    result = run(tmp_path, point_list(5), "--template", "tank")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == "devices:"
    assert '{name: "water.t0.level", device: "water.rtu0", address: "ir:0:float32"' in result.stdout


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ('water.t9,level,"=cmd|\' /C calc\'!A0",float,m,0,5,no,water.rtu9,modbus,10.0.0.9:502,1',
         "spreadsheet formula"),
        ("water.t9,level,@SUM(A1),float,m,0,5,no,water.rtu9,modbus,10.0.0.9:502,1",
         "spreadsheet formula"),
        ("water.t9,level,ir:0:float32,float,m,-,5,no,water.rtu9,modbus,10.0.0.9:502,1",
         "spreadsheet formula"),
        ("water.t0,level,ir:90:float32,float,m,0,5,no,water.rtu0,modbus,10.0.0.1:502,1",
         "defined twice (first on line 2)"),
        ("water.t9,level,ir:0:float32,float,m,5,0,no,water.rtu9,modbus,10.0.0.9:502,1",
         "must be below"),
        ("Water T9,level,ir:0:float32,float,m,0,5,no,water.rtu9,modbus,10.0.0.9:502,1",
         "lower-case dotted"),
        ("water.t9,level,ir:0:float32,float,m,0,5,no,water.rtu0,opcua,opc.tcp://x:4840,1",
         "differs from its definition on line 2"),
        ("water.t9,level,ir:0:float32,float,m,0,5,no,water.rtu9,modbus,10.0.0.9:502,1,extra",
         "the header names 12"),
        ("water.t9,level,ir:0:float32,float,m,0,5,no,water.rtu9,modbus," + "x" * 5000 + ",1",
         "at most 500"),
    ],
)  # fmt: skip
def test_hostile_rows_are_refused_with_their_line(tmp_path: Path, row: str, reason: str) -> None:
    text = point_list(5) + row + "\n"
    result = run(tmp_path, text, "--template", "tank")
    assert result.exit_code == 1
    assert "points.csv:7: " in result.stderr
    assert reason in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_site_file_checks_report_the_csv_line(tmp_path: Path) -> None:
    # A bad address and an unknown protocol pass the CSV checks; the site checks name them.
    text = point_list(5)
    text += "water.t9,level,ir:zz:float32,float,m,0,5,no,water.rtu9,modbus,10.0.0.9:502,1\n"
    text += "water.t9,flow,x,float,m,0,5,no,water.rtu9,modbus,10.0.0.9:502,1\n"
    result = run(tmp_path, text, "--template", "tank")
    assert result.exit_code == 1
    assert "points.csv:7: " in result.stderr and "points.csv:8: " in result.stderr


def test_bad_encoding_and_empty_lists_are_refused(tmp_path: Path) -> None:
    text = point_list(3).encode() + "water.t9,level,ir:0:float32,float,m\xb3".encode("latin-1")
    result = run(tmp_path, text, "--template", "tank")
    assert result.exit_code == 1
    assert "points.csv:5: not UTF-8" in result.stderr
    assert run(tmp_path, "", "--template", "tank").exit_code == 1
    missing = run(tmp_path, "asset,point\nwater.a,b\n", "--template", "tank")
    assert "missing columns address" in missing.stderr
    assert run(tmp_path, point_list(2), "--template", "Bad Type").exit_code == 2
