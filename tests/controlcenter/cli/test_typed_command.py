"""The commands the demo prints are typed as the user can type them."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from controlcenter.cli.main import typed_command


def _script(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_command_run_from_the_venv_is_printed_with_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script(tmp_path / ".venv" / "bin" / "controlcenter")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(sys, "argv", [".venv/bin/controlcenter", "demo"])
    assert typed_command() == ".venv/bin/controlcenter"


def test_a_command_the_shell_finds_is_printed_by_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _script(tmp_path / "bin" / "controlcenter")
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}/usr/bin")
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])
    assert typed_command() == "controlcenter"


def test_a_path_with_spaces_is_quoted_for_the_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _script(tmp_path / "my city" / "bin" / "controlcenter")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])
    assert typed_command() == f"'{script}'"
