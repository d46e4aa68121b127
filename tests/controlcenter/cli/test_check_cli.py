"""``controlcenter check``: a site file with its rule files and interlocks, compiled as the center
would run them; every problem with its file, line and column."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from controlcenter.cli.main import app
from controlcenter.runtime.demo import demo_site_path
from controlcenter.runtime.demo_site import write_demo_site


def _demo_copy(tmp_path: Path) -> Path:
    site = tmp_path / "site.yaml"
    write_demo_site(site, demo_site_path().read_text(encoding="utf-8"))
    return site


def test_the_demo_site_and_its_rules_are_valid(tmp_path: Path) -> None:
    site = _demo_copy(tmp_path)
    result = CliRunner().invoke(app, ["check", "--site", str(site)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout and "1 interlocks" in result.stdout
    assert " rules, " in result.stdout and "calculated tags" in result.stdout


def test_an_expression_naming_an_unknown_tag_is_refused_at_its_column(tmp_path: Path) -> None:
    site = _demo_copy(tmp_path)
    rules = tmp_path / "demo-rules" / "water.yaml"
    text = rules.read_text(encoding="utf-8")
    text += (
        "  - name: water.broken\n"
        "    triggers: [{every: 1m}]\n"
        "    condition: water.tank1.levle > 2.0\n"
        "    actions: [{event: broken}]\n"
    )
    rules.write_text(text, encoding="utf-8")
    line = len(text.splitlines()) - 1
    result = CliRunner().invoke(app, ["check", "--site", str(site)])
    assert result.exit_code == 1
    assert f"demo-rules/water.yaml:{line}:16:" in result.stderr
    assert "water.tank1.levle" in result.stderr and "water.tank1.level" in result.stderr


def test_an_interlock_that_does_not_compile_is_refused(tmp_path: Path) -> None:
    site = _demo_copy(tmp_path)
    text = site.read_text(encoding="utf-8")
    site.write_text(
        text.replace("block_when: water.tank1.level > 4.8", "block_when: water.tank1.level + 4.8"),
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["check", "--site", str(site)])
    assert result.exit_code == 1
    assert f"{site}:" in result.stderr and "bool" in result.stderr
