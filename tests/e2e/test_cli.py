"""The ``controlcenter`` console script, run as an operator would run it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import shlex
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlcenter.model import (
    Command,
    CommandOrigin,
    CommandResult,
    CommandStatus,
    DataType,
    Event,
    EventKind,
    Quality,
    Sample,
    TagDef,
)
from controlcenter.runtime.demo import demo_site_path
from controlcenter.runtime.demo_site import write_demo_site
from historian import SqlHistorian

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
    write_demo_site(bad, text.replace("scan_interval: 1.0", "scan_intervall: 1.0"))
    row = next(row for row in text.splitlines() if "scan_interval:" in row)
    line = 1 + text.splitlines().index(row)
    column = 1 + row.index("scan_interval")
    result = run_cli("check", "--site", str(bad))
    assert result.returncode == 1
    expected = f"{bad}:{line}:{column}: devices[0].scan_intervall: unknown key 'scan_intervall'"
    assert expected in result.stderr


def test_check_refuses_a_wrong_type(tmp_path: Path) -> None:
    text = demo_site_path().read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    write_demo_site(bad, text.replace("unit_id: 1", "unit_id: first"))
    result = run_cli("check", "--site", str(bad))
    assert result.returncode == 1
    assert "devices[0].unit_id:" in result.stderr and "'first'" in result.stderr


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_demo_then_history_prints_the_rows_it_wrote(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    demo = run_cli(
        "demo",
        "--no-hmi",
        "--duration",
        "20",
        "--speed",
        "3",
        "--base-port",
        "0",
        "--control",
        "127.0.0.1:0",
        "--db",
        db,
        cwd=tmp_path,
        timeout=150,
    )
    assert demo.returncode == 0, demo.stderr
    assert "Traceback" not in demo.stderr
    # The whole simulated city is historized: every domain over its own protocol.
    for tag in (
        "lights.d1.c1.power",
        "heat.plant.supply_temp",
        "heat.ss1.heat_power",
        "bldg.office.z1.temp",
        "water.ps1.pump1.flow",
    ):
        rows_of_tag = run_cli("history", tag, "--db", db, "--format", "json")
        assert rows_of_tag.returncode == 0, rows_of_tag.stderr
        assert any(row["quality"] == "good" for row in json.loads(rows_of_tag.stdout)), tag

    history = run_cli("history", "water.tank1.level", "--db", db, "--format", "csv")
    assert history.returncode == 0, history.stderr
    rows = list(csv.DictReader(io.StringIO(history.stdout)))
    assert history.stdout.startswith("time,tag,value,quality,reason,source_time\n")
    # About 45 simulated seconds (the 20 s include the city's start) at 3x with a 1 s scan.
    assert len(rows) >= 30
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


def _known_history(tmp_path: Path) -> str:
    """A historian with one minute of a level (0..59 m, one a second), a command and an event."""
    db = f"sqlite:///{tmp_path / 'known.db'}"
    start = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    level = TagDef("water.tank1.level", "rtu1", "40001", DataType.FLOAT, unit="m")
    pump = TagDef("water.pump1.running", "rtu1", "1", DataType.BOOL, writable=True)
    with SqlHistorian(db) as store:
        store.ensure_tags([level, pump])
        store.write_samples(
            [
                Sample(level.name, float(i), Quality.good(), moment, moment)
                for i, moment in enumerate(start + timedelta(seconds=s) for s in range(120))
            ]
        )
        for who, origin in (("ann", CommandOrigin.OPERATOR), ("tank-rule", CommandOrigin.RULE)):
            command = Command(pump.name, True, origin, who, "test", start)
            store.journal_command(CommandResult(command, CommandStatus.CONFIRMED, "ok", start))
        store.journal_event(Event(start, EventKind.AUDIT, "hmi", "login", user="ann"))
    return db


def test_history_prints_aggregates_per_interval(tmp_path: Path) -> None:
    db = _known_history(tmp_path)
    result = run_cli(
        "history", "water.tank1.level", "--db", db, "--start", "2024-03-01T12:00:00Z",
        "--end", "2024-03-01T12:02:00Z", "--every", "1m", "--agg", "avg,min,max,count,pct_good",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert result.stdout.startswith("time,tag,aggregate,value,quality,reason\n")
    by_name = {(row["time"][11:19], row["aggregate"]): float(row["value"]) for row in rows}
    # A ramp of 1 m/s: minute one averages 30 m (0 to 60, its end bound, linearly).
    assert by_name[("12:00:00", "time_average")] == 30.0
    assert by_name[("12:00:00", "minimum")] == 0.0
    assert by_name[("12:01:00", "maximum")] == 119.0
    assert by_name[("12:00:00", "count")] == 60
    assert by_name[("12:00:00", "percent_good")] == 100.0


def test_history_prints_a_trend_and_journals(tmp_path: Path) -> None:
    db = _known_history(tmp_path)
    trend = run_cli(
        "history", "water.tank1.level", "--db", db, "--points", "10", "--format", "json"
    )
    assert trend.returncode == 0, trend.stderr
    points = json.loads(trend.stdout)
    assert len(points) <= 10
    assert {point["value"] for point in points} >= {0.0, 119.0}

    commands = run_cli("history", "--journal", "commands", "--db", db, "--origin", "rule")
    assert commands.returncode == 0, commands.stderr
    [command] = list(csv.DictReader(io.StringIO(commands.stdout)))
    assert (command["requested_by"], command["status"]) == ("tank-rule", "confirmed")
    events = run_cli("history", "--journal", "events", "--db", db, "--user", "ann")
    [event] = list(csv.DictReader(io.StringIO(events.stdout)))
    assert (event["kind"], event["message"]) == ("audit", "login")


def test_history_refuses_an_unknown_aggregate_and_a_bad_interval(tmp_path: Path) -> None:
    db = _known_history(tmp_path)
    agg = run_cli("history", "water.tank1.level", "--db", db, "--every", "1m", "--agg", "median")
    assert agg.returncode == 2 and "unknown aggregate 'median'" in agg.stderr
    every = run_cli("history", "water.tank1.level", "--db", db, "--every", "fortnightly")
    assert every.returncode == 2 and "not an interval" in every.stderr


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_ctrl_c_stops_the_demo_and_its_city_cleanly(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        CLI,
        "demo",
        "--no-hmi",
        "--speed",
        "2",
        "--base-port",
        "0",
        "--control",
        "127.0.0.1:0",
        "--db",
        f"sqlite:///{tmp_path / 'd.db'}",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        printed = await asyncio.wait_for(read_until(process.stdout, b"Demo running"), 60)
        control = re.search(rb"--control (\S+:\d+)", printed)
        assert control is not None, printed
        hint = re.search(rb"^Fault injection: (.+)$", printed, re.MULTILINE)
        assert hint is not None, printed
        # The demo's city takes faults from the command line, as in operator training: the
        # command the demo prints works exactly as printed, from the directory it ran in.
        faults = await asyncio.to_thread(
            subprocess.run,
            shlex.split(hint[1].decode()),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )
        assert faults.returncode == 0, faults.stderr
        assert "water.tank1_rtu" in faults.stdout
        process.send_signal(signal.SIGINT)
        stderr = await asyncio.wait_for(process.stderr.read(), 60)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert b"Traceback" not in stderr
    assert b"KeyboardInterrupt" not in stderr
    # The city's process ended with the demo: its control endpoint no longer answers.
    gone = await asyncio.to_thread(
        run_cli, "sim", "fault", "list", "--control", control[1].decode()
    )
    assert gone.returncode == 1 and "no simulator control endpoint" in gone.stderr


async def read_until(stream: asyncio.StreamReader, marker: bytes) -> bytes:
    """Lines from ``stream`` up to and including the first one holding ``marker``."""
    printed = b""
    while line := await stream.readline():
        printed += line
        if marker in line:
            return printed
    raise AssertionError(f"the output ended before {marker!r}: {printed!r}")


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
