"""The newcomer's path: `make run` installs only what the demo needs, and the demo runs on it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("pytest", "playwright", "hypothesis", "ruff", "mypy", "importlinter")
"""Development tools: none of them may be needed by the demo."""

# Imports every module the demo runs (center, drivers, historian, rules, HMI, simulated city)
# with the development tools made unimportable, as in a venv that `make run` set up.
_DEMO_IMPORTS = f"""
import importlib.abc, sys

class RefuseDevTools(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {DEV_ONLY!r}:
            raise ImportError(f"{{name}} is a development tool: the demo must not need it")
        return None

sys.meta_path.insert(0, RefuseDevTools())
import controlcenter.cli.main
import controlcenter.runtime.app
import controlcenter.runtime.demo
import controlcenter.runtime.city_process
import controlcenter.runtime.demo_site
import controlcenter.cli.sim
import hmi.app
import plc_sim.city
print("ok")
"""


def test_make_run_installs_the_project_without_its_development_extras() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "-B", "run"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    installs = [line for line in dry_run.splitlines() if "pip install" in line and "-e" in line]
    assert installs, dry_run
    assert all("[dev]" not in line for line in installs), installs


def test_the_development_tools_are_not_runtime_dependencies() -> None:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = " ".join(project["dependencies"]).lower()
    for tool in DEV_ONLY:
        assert tool not in runtime, tool
    dev = " ".join(project["optional-dependencies"]["dev"]).lower()
    assert "playwright" in dev and "pytest" in dev


def test_the_demo_imports_without_any_development_tool() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _DEMO_IMPORTS],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
