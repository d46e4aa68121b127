"""The engineer's command line against the running city: a token from ``controlcenter token
create``, a setpoint written with ``controlcenter write`` (select, show, operate, read back)
and read back from the historian with ``controlcenter history``; a value beyond the tag's
limit rejected by the pipeline and journaled; ``controlcenter devices`` showing the city's
devices connected."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from controlcenter.cli.main import app
from controlcenter.model import CommandStatus, Role
from tests.e2e.hmi_city_kit import PASSWORD, USERS, HmiCity, hmi_city

SETPOINT = "water.ps1.pump1.speed"
WRITTEN = 47.5
DEADLINE_S = 30.0


async def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """The command line in a worker thread: the center runs on this thread's event loop and
    answers the API from its own threads, so the test's loop must stay free."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, list(args), env=env)


async def operator_token(kit: HmiCity, tmp_path: Path) -> str:
    """A command token of the operator, created by the administrator on the command line."""
    created = await invoke(
        "token", "create", USERS[Role.OPERATOR], "--as", USERS[Role.ADMIN],
        "--scope", "command", "--days", "1", "--label", "commissioning",
        "--users", str(tmp_path / "hmi" / "users.json"), "--db", db_url(tmp_path),
        env={"CC_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[0]
    assert secret.startswith("cc_"), created.stdout
    return secret


def db_url(tmp_path: Path) -> str:
    """The kit's historian."""
    return f"sqlite:///{tmp_path / 'center.db'}"


async def stored(kit: HmiCity, value: float) -> None:
    """Wait until the historian holds ``value`` for the setpoint."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    start = datetime(2000, 1, 1, tzinfo=UTC)
    while True:
        end = kit.clock.now()
        samples = await asyncio.to_thread(kit.center.store.read_raw, SETPOINT, start, end)
        if any(s.value == pytest.approx(value) for s in samples):
            return
        assert loop.time() < deadline, f"{value} not stored within {DEADLINE_S} s"
        await asyncio.sleep(0.2)


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_write_a_setpoint_from_the_command_line_and_read_it_back_from_history(
    tmp_path: Path,
) -> None:
    async with hmi_city(tmp_path, domains=frozenset({"water"}), speed=5.0) as kit:
        env = {"CC_API_TOKEN": await operator_token(kit, tmp_path)}

        # Select before operate: what is selected is shown, then the result with read-back.
        written = await invoke(
            "write", SETPOINT, str(WRITTEN), "--reason", "commissioning: pump 1 speed",
            "--url", kit.url, env=env,
        )  # fmt: skip
        assert written.exit_code == 0, written.output
        lines = written.stdout.splitlines()
        assert lines[0] == f"selected {SETPOINT}"
        assert lines[1].split()[0] == "current" and "(good)" in lines[1]
        assert lines[2].split()[:4] == ["limits", "0", "..", "100"]
        assert lines[3].split() == ["interlock", "none", "blocking"]
        assert lines[-1].startswith("confirmed: ")
        assert lines[-1].endswith(f"(read back {WRITTEN:g})")

        # The live value, then the historian: the written value is stored.
        await stored(kit, WRITTEN)
        history = await invoke("history", SETPOINT, "--format", "json", "--db", db_url(tmp_path))
        assert history.exit_code == 0, history.output
        rows = json.loads(history.stdout)
        assert any(row["value"] == pytest.approx(WRITTEN) for row in rows)
        journal = await invoke(
            "history", "--journal", "commands", "--tag", SETPOINT, "--format", "json",
            "--db", db_url(tmp_path),
        )  # fmt: skip
        assert journal.exit_code == 0, journal.output
        last = json.loads(journal.stdout)[-1]
        assert last["reason"] == "commissioning: pump 1 speed"
        assert last["status"] == CommandStatus.CONFIRMED.value

        # Beyond the engineering limit: the pipeline rejects it (exit 1), journals it, and
        # the point is not left selected (the next write selects it again at once).
        beyond = await invoke(
            "write", SETPOINT, "150", "--reason", "too fast", "--url", kit.url, env=env
        )
        assert beyond.exit_code == 1, beyond.output
        assert beyond.stdout.splitlines()[-1].startswith("rejected: ")
        outcomes = await asyncio.to_thread(kit.center.store.read_commands)
        assert outcomes[-1].status is CommandStatus.REJECTED
        assert outcomes[-1].command.reason == "too fast"
        again = await invoke(
            "write", SETPOINT, str(WRITTEN), "--reason", "same again", "--url", kit.url, env=env
        )
        assert again.exit_code == 0, again.output

        # A read-only point is refused at selection, in one line.
        refused = await invoke(
            "write", "water.tank2.level", "1", "--reason", "no", "--url", kit.url, env=env
        )
        assert refused.exit_code == 1
        assert refused.stderr.startswith("refused by the center"), refused.stderr

        # The diagnostics table: every device of the water domain, connected.
        # (An operator's token: diagnostics need the maintenance role, so 403 first.)
        denied = await invoke("devices", "--url", kit.url, env=env)
        assert denied.exit_code == 1 and denied.stderr.startswith("forbidden")
        maintenance = await invoke(
            "token", "create", USERS[Role.MAINTENANCE], "--as", USERS[Role.ADMIN],
            "--users", str(tmp_path / "hmi" / "users.json"), "--db", db_url(tmp_path),
            env={"CC_PASSWORD": PASSWORD},
        )  # fmt: skip
        assert maintenance.exit_code == 0, maintenance.output
        devices = await invoke(
            "devices", "--url", kit.url,
            env={"CC_API_TOKEN": maintenance.stdout.strip().splitlines()[0]},
        )  # fmt: skip
        assert devices.exit_code == 0, devices.output
        rows = [line.split() for line in devices.stdout.splitlines()[1:]]
        water = {device.name for device in kit.site.devices}
        assert {row[0] for row in rows} == water
        assert all(row[1] == "true" for row in rows), devices.stdout
