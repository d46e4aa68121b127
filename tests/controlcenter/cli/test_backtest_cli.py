"""``controlcenter rules backtest`` as a command: rule files, a site and a historian database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from controlcenter.cli.backtest import backtest
from controlcenter.model import Quality, Sample, Substatus
from controlcenter.site.config import load_site
from historian.store import SqlHistorian

SITE = """\
site:
  name: Test Town
  latitude: 52.37
  longitude: 4.90
  timezone: Europe/Amsterdam
devices:
  - name: water.rtu1
    protocol: modbus
    endpoint: 127.0.0.1:1502
    unit_id: 1
tags:
  - {name: water.tank1.level, device: water.rtu1, address: "ir:0:float32", unit: m, range: [0, 8]}
  - name: water.tank1.pump_cmd
    device: water.rtu1
    address: "coil:0"
    data_type: bool
    writable: true
automation:
  rule_files: [rules.yaml]
  identity: {name: rules, role: operator}
"""

RULES = """\
rules:
  - name: water.tank1_fill
    kind: hysteresis
    input: water.tank1.level
    output: water.tank1.pump_cmd
    on_below: 1.5
    off_above: 4.0
  - name: water.tank1_low
    triggers:
      - tag: water.tank1.level
    condition: water.tank1.level < 1.0
    for: 1m
    actions:
      - event: "tank 1 low: {water.tank1.level} m"
        severity: 700
"""

START = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    (tmp_path / "site.yaml").write_text(SITE)
    (tmp_path / "rules.yaml").write_text(RULES)
    store = SqlHistorian(f"sqlite:///{tmp_path / 'history.db'}")
    try:
        store.ensure_tags(load_site(tmp_path / "site.yaml", tmp_path).tag_defs())
        samples = []
        bad = Quality.bad(Substatus.COMM_FAILURE, "no answer")
        for second in range(0, 3600, 10):
            moment = START + timedelta(seconds=second)
            # Falls to 0.8 m at 00:20; the link fails 00:40-00:45.
            level = 3.0 if second < 1200 else 0.8
            if 2400 <= second < 2700:
                samples.append(Sample("water.tank1.level", None, bad, moment, moment))
            else:
                samples.append(Sample("water.tank1.level", level, Quality.good(), moment, moment))
            samples.append(Sample("water.tank1.pump_cmd", False, Quality.good(), moment, moment))
        store.write_samples(samples)
    finally:
        store.close()
    return tmp_path


def run(site_dir: Path, *args: str) -> typer.testing.Result:
    app = typer.Typer()
    app.command()(backtest)
    common = ["--site", str(site_dir / "site.yaml"), "--db", f"sqlite:///{site_dir / 'history.db'}"]
    return CliRunner().invoke(app, [*args, *common])


WINDOW = ["--start", "2026-01-10T00:00:00Z", "--end", "2026-01-10T00:59:59Z"]


def test_json_report_lists_commands_events_and_holds(site_dir: Path) -> None:
    result = run(site_dir, *WINDOW, "--format", "json", "--workers", "1")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # The pump never reads back on: the rule commands it when the level falls, and again when
    # the level is Good again after the link failure.
    assert [(c["time"], c["rule"], c["value"]) for c in report["commands"]] == [
        ("2026-01-10T00:20:00+00:00", "water.tank1_fill", True),
        ("2026-01-10T00:45:00+00:00", "water.tank1_fill", True),
    ]
    assert [(e["time"], e["rule"], e["message"]) for e in report["events"]] == [
        ("2026-01-10T00:21:00+00:00", "water.tank1_low", "tank 1 low: 0.8 m")
    ]
    assert [(h["time"], h["rule"], h["kind"]) for h in report["holds"]] == [
        ("2026-01-10T00:40:00+00:00", "water.tank1_fill", "hold"),
        ("2026-01-10T00:40:00+00:00", "water.tank1_low", "hold"),
        ("2026-01-10T00:45:00+00:00", "water.tank1_fill", "resume"),
        ("2026-01-10T00:45:00+00:00", "water.tank1_low", "resume"),
    ]
    assert report["figures"]["tags_read"] == 2
    assert report["figures"]["samples_replayed"] == 720
    # Two worker processes, one rule each: the same decisions.
    spread = run(site_dir, *WINDOW, "--format", "json", "--workers", "2")
    assert spread.exit_code == 0, spread.output
    parallel = json.loads(spread.stdout)
    for part in ("commands", "events", "holds", "rules"):
        assert parallel[part] == report[part]


def test_rule_files_default_to_the_sites_and_text_is_a_summary(site_dir: Path) -> None:
    result = run(site_dir, *WINDOW)
    assert result.exit_code == 0, result.output
    assert "2 commands, 1 events, 2 holds" in result.stdout
    assert "water.tank1_fill: water.tank1.pump_cmd := True (automation)" in result.stdout
    assert "water.tank1_low  " in result.stdout  # its row of counts


def test_a_bad_rule_is_refused_with_file_line_and_column(site_dir: Path) -> None:
    bad = site_dir / "bad.yaml"
    bad.write_text(
        "rules:\n"
        "  - name: broken\n"
        "    triggers: [{every: 1m}]\n"
        "    condition: water.tank1.level > 'high'\n"
        "    actions: [{event: x}]\n"
    )
    result = run(site_dir, str(bad), *WINDOW)
    assert result.exit_code == 1
    # Line 4; the condition starts at column 16 and its ">" is 18 characters in.
    assert f"{bad}:4:34: rule broken: condition:" in result.stderr


def test_an_unknown_key_is_refused_with_its_line(site_dir: Path) -> None:
    bad = site_dir / "typo.yaml"
    bad.write_text("rules:\n  - name: r\n    trigers: [{every: 1m}]\n")
    result = run(site_dir, str(bad), *WINDOW)
    assert result.exit_code == 1
    assert f"{bad}:3:" in result.stderr


def test_a_missing_rule_file_is_named(site_dir: Path) -> None:
    missing = site_dir / "gone.yaml"
    result = run(site_dir, str(missing), *WINDOW)
    assert result.exit_code == 1
    assert str(missing) in result.stderr and "cannot read" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--start", "yesterday"], "is not a time"),
        (["--start", "2026-01-10T01:00:00Z", "--end", "2026-01-10T00:00:00Z"], "is not before"),
    ],
)
def test_bad_times_are_refused(site_dir: Path, args: list[str], expected: str) -> None:
    result = run(site_dir, *args)
    assert result.exit_code == 2
    assert expected in result.stderr


def test_quiet_rules_are_counted_not_listed(site_dir: Path) -> None:
    result = run(site_dir, "--start", "2026-01-10T00:00:00Z", "--end", "2026-01-10T00:10:00Z")
    assert result.exit_code == 0, result.output
    assert "0 commands, 0 events, 0 holds" in result.stdout
    assert "2 of 2 rules did nothing in the window." in result.stdout
    assert "Per rule" not in result.stdout


def test_a_missing_database_is_not_created(site_dir: Path) -> None:
    app = typer.Typer()
    app.command()(backtest)
    missing = site_dir / "nope.db"
    result = CliRunner().invoke(
        app, [*WINDOW, "--site", str(site_dir / "site.yaml"), "--db", f"sqlite:///{missing}"]
    )
    assert result.exit_code == 2
    assert "no historian database" in result.stderr
    assert not missing.exists()
