"""The import-linter contracts cover every module by where it stands, including modules added later.

Each test copies the project's packages into a temporary tree, adds one module that breaks the
layout, and runs ``lint-imports`` there: the contracts must refuse it without being edited.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
PACKAGES = ("controlcenter", "drivers", "historian", "rules", "hmi", "plc_sim", "alarms")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
LAYERS_CONTRACT = "The center's rooms in layers"


def _project_copy(root: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            PROJECT / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(PROJECT / "pyproject.toml", root / "pyproject.toml")
    return root


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", "pyproject.toml", "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's packages in a temporary tree whose contracts hold as they are."""
    root = _project_copy(tmp_path_factory.mktemp("layout"))
    result = _lint_imports(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def _with_module(project_copy: Path, tmp_path: Path, module: str, source: str) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(project_copy, root)
    path = root / (module.replace(".", "/") + ".py")
    path.write_text(f'"""A module that breaks the layout."""\n\n{source}\n', encoding="utf-8")
    return root


def _broken(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if re.search(r"\bBROKEN\b", line)]


def test_a_new_acquisition_module_importing_the_composition_root_breaks_the_layers(
    project_copy: Path, tmp_path: Path
) -> None:
    root = _with_module(
        project_copy,
        tmp_path,
        "controlcenter.acquisition.poller",
        "from controlcenter.runtime import defaults\n\nDB = defaults.DEMO_DB_URL",
    )
    result = _lint_imports(root)
    assert result.returncode == 1, result.stdout
    assert "controlcenter.acquisition.poller -> controlcenter.runtime.defaults" in result.stdout
    assert any(LAYERS_CONTRACT in line for line in result.stdout.splitlines()), result.stdout


def test_a_new_room_of_the_center_must_be_given_its_layer(
    project_copy: Path, tmp_path: Path
) -> None:
    root = _with_module(project_copy, tmp_path, "controlcenter.reports", "VERSION = 1")
    result = _lint_imports(root)
    assert result.returncode == 1, result.stdout
    assert "controlcenter.reports" in result.stdout + result.stderr


def test_a_new_historian_module_importing_the_scan_engine_breaks_a_contract(
    project_copy: Path, tmp_path: Path
) -> None:
    root = _with_module(
        project_copy,
        tmp_path,
        "historian.scan_feed",
        "from controlcenter.acquisition.scan import ScanEngine\n\nENGINE = ScanEngine",
    )
    result = _lint_imports(root)
    assert result.returncode == 1, result.stdout
    assert _broken(result), result.stdout


def test_a_new_simulated_domain_importing_a_protocol_library_breaks_a_contract(
    project_copy: Path, tmp_path: Path
) -> None:
    root = _with_module(
        project_copy, tmp_path, "plc_sim.water.telemetry", "import pymodbus\n\nLIB = pymodbus"
    )
    result = _lint_imports(root)
    assert result.returncode == 1, result.stdout
    assert "plc_sim.water.telemetry -> pymodbus" in result.stdout
