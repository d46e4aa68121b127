"""The ``controlcenter`` console script, run as an operator would run it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from controlcenter.demo import demo_site_path

CLI = str(Path(sys.executable).with_name("controlcenter"))


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
    )


@pytest.mark.parametrize(
    "command", [[], ["demo"], ["run"], ["check"], ["sim"], ["history"], ["user", "add"]]
)
def test_every_command_has_help(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_check_accepts_the_demo_site() -> None:
    result = run_cli("check", "--site", str(demo_site_path()))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_check_refuses_a_misspelt_key_with_file_line_and_key(tmp_path: Path) -> None:
    text = demo_site_path().read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("scan_interval: 1.0", "scan_intervall: 1.0"), encoding="utf-8")
    line = 1 + text.splitlines().index(
        next(row for row in text.splitlines() if "scan_interval:" in row)
    )
    result = run_cli("check", "--site", str(bad))
    assert result.returncode == 1
    assert f"{bad}:{line}: devices[0].scan_intervall: unknown key 'scan_intervall'" in result.stderr


def test_check_refuses_a_wrong_type(tmp_path: Path) -> None:
    text = demo_site_path().read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("unit_id: 1", "unit_id: first"), encoding="utf-8")
    result = run_cli("check", "--site", str(bad))
    assert result.returncode == 1
    assert "devices[0].unit_id:" in result.stderr and "'first'" in result.stderr


@pytest.mark.e2e
@pytest.mark.timeout(90)
def test_demo_then_history_prints_the_rows_it_wrote(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    demo = run_cli("demo", "--no-hmi", "--duration", "5", "--speed", "60", "--db", db, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "Traceback" not in demo.stderr

    history = run_cli("history", "water.tank1.level", "--db", db, "--format", "csv")
    assert history.returncode == 0, history.stderr
    rows = list(csv.DictReader(io.StringIO(history.stdout)))
    assert history.stdout.startswith("time,tag,value,quality,reason\n")
    assert len(rows) >= 100  # 5 s at 60x with a 1 s scan: ~300 samples
    assert all(row["tag"] == "water.tank1.level" for row in rows)
    assert {row["quality"] for row in rows} == {"good"}
    assert all(0 <= float(row["value"]) <= 5 for row in rows)

    as_json = run_cli("history", "water.tank1.level", "--db", db, "--format", "json")
    assert len(json.loads(as_json.stdout)) == len(rows)
    window = run_cli("history", "water.tank1.level", "--db", db, "--start", "-1d", "--end", "+1d")
    assert len(list(csv.DictReader(io.StringIO(window.stdout)))) == len(rows)
    empty = run_cli("history", "water.tank1.level", "--db", db, "--end", "-1d")
    assert list(csv.DictReader(io.StringIO(empty.stdout))) == []


def test_history_refuses_a_bad_time_and_an_unknown_tag(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'empty.db'}"
    bad_time = run_cli("history", "water.tank1.level", "--db", db, "--start", "yesterday")
    assert bad_time.returncode == 2 and "not a time" in bad_time.stderr
    unknown = run_cli("history", "water.nothing", "--db", db)
    assert unknown.returncode == 1 and "unknown tag" in unknown.stderr


@pytest.mark.e2e
@pytest.mark.timeout(60)
async def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        CLI,
        "demo",
        "--no-hmi",
        "--speed",
        "10",
        "--db",
        f"sqlite:///{tmp_path / 'd.db'}",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert b"Demo running" in line
    process.send_signal(signal.SIGINT)
    stderr = await asyncio.wait_for(process.stderr.read(), 30)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert b"Traceback" not in stderr
    assert b"KeyboardInterrupt" not in stderr


def test_user_add_stores_an_argon2_hash_and_refuses_short_passwords(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    added = run_cli(
        "user",
        "add",
        "bob",
        "--role",
        "operator",
        "--users",
        str(users),
        "--password",
        "valve-room-3",
    )
    assert added.returncode == 0, added.stderr
    text = users.read_text(encoding="utf-8")
    assert "$argon2id$" in text and "valve-room-3" not in text
    changed = run_cli(
        "user",
        "add",
        "bob",
        "--role",
        "engineer",
        "--users",
        str(users),
        "--password",
        "valve-room-4",
    )
    assert changed.returncode == 0, changed.stderr
    assert '"engineer"' in users.read_text(encoding="utf-8")
    short = run_cli("user", "add", "eve", "--users", str(users), "--password", "short")
    assert short.returncode == 1 and "eve" not in users.read_text(encoding="utf-8")
