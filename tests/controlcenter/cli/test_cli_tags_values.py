"""``tags`` from a site file; ``value``, ``write`` and ``devices`` against a real API socket."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result
from werkzeug.serving import make_server

from controlcenter.cli.main import app
from controlcenter.cli.value import MAX_TAGS_PARAM, name_batches
from controlcenter.model import Role
from controlcenter.permissions import TokenScope
from controlcenter.security.tokens import TokenStore
from tests.controlcenter.api.api_testkit import USERS, CenterKit, center_kit


class Center:
    """The API served on a free port, and tokens for it."""

    def __init__(self, url: str, tokens: TokenStore, kit: CenterKit) -> None:
        self.url = url
        self.tokens = tokens
        self.kit = kit

    def token(self, role: Role = Role.VIEWER, scope: TokenScope = TokenScope.READ) -> str:
        """A fresh token of the user of ``role``."""
        name = "mona" if role is Role.MAINTENANCE else USERS[role]
        return self.tokens.create(name, scope, 3600, created_by="ada").secret_text


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Center]:
    """The API over fixed values, a fake command pipeline journaling into a real SQLite
    historian and fixed device diagnostics, on a real socket (port 0)."""
    kit = center_kit(tmp_path_factory.mktemp("api"))
    server = make_server("127.0.0.1", 0, kit.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Center(f"http://127.0.0.1:{server.server_port}", kit.tokens, kit)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        kit.store.close()


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """The command line, with CC_API_TOKEN unset unless given."""
    return CliRunner().invoke(app, list(args), env={"CC_API_TOKEN": "", **(env or {})})


def test_value_prints_value_and_quality(center: Center) -> None:
    result = cli(
        "value", "water.tank1.level", "lights.d1.c1.power",
        "--url", center.url, "--token", center.token(),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["tag", "value", "quality", "source_time"]
    assert lines[1].split()[:3] == ["water.tank1.level", "3.2", "good"]
    assert "bad (comm_failure: controller 1 does not answer)" in lines[2]


def test_value_token_from_the_environment_and_unknown_tags(center: Center) -> None:
    result = cli(
        "value", "water.tank1.level", "water.nope", "--url", center.url,
        env={"CC_API_TOKEN": center.token()},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "water.tank1.level" in result.stdout
    assert "unknown tags: water.nope" in result.stderr


@pytest.mark.parametrize(
    ("token", "expected", "code"),
    [
        ("", "no API token", 2),
        ("cc_0000_forged", "not authenticated", 1),
    ],
)
def test_refusals_are_one_line(center: Center, token: str, expected: str, code: int) -> None:
    result = cli("value", "water.tank1.level", "--url", center.url, "--token", token or "")
    assert result.exit_code == code
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_connection_refused_is_one_line(unused_port: int) -> None:
    result = cli("devices", "--url", f"http://127.0.0.1:{unused_port}", "--token", "cc_a_b")
    assert result.exit_code == 1
    assert "cannot reach the center" in result.stderr
    assert "Traceback" not in result.output


def test_value_of_many_tags_is_split_into_requests_the_api_accepts(center: Center) -> None:
    # 300 names of about 30 characters: more than one /values request may carry.
    names = [f"water.tank{n:03d}.nowhere_level" for n in range(300)]
    batches = name_batches(names)
    assert len(batches) > 1 and [n for b in batches for n in b] == names
    assert all(len(",".join(batch)) <= MAX_TAGS_PARAM for batch in batches)
    result = cli(
        "value", *names, "water.tank1.level", "--json", "--url", center.url,
        "--token", center.token(),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert [v["tag"] for v in json.loads(result.stdout)] == ["water.tank1.level"]
    assert "unknown tags: water.tank000.nowhere_level" in result.stderr


def test_write_selects_shows_operates_and_reads_back(center: Center) -> None:
    result = cli(
        "write", "water.tank1.pump_cmd", "on", "--reason", "commissioning test",
        "--url", center.url, "--token", center.token(Role.OPERATOR, TokenScope.COMMAND),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "selected water.tank1.pump_cmd"
    assert lines[1].split() == ["current", "true", "(good)"]
    assert lines[2].split() == ["limits", "none"]
    assert lines[3].split() == ["interlock", "none", "blocking"]
    assert lines[4].startswith("  expires   2030-01-01T12:00:30")
    assert lines[-1] == "confirmed: read back (read back true)"
    journaled = center.kit.store.read_commands()
    assert journaled[-1].command.reason == "commissioning test"
    assert journaled[-1].command.requested_by == "olga"
    assert not center.kit.commands.selections  # operated: nothing held


def test_write_rejected_by_the_pipeline_exits_1_with_its_reason(center: Center) -> None:
    result = cli(
        "write", "water.tank1.pump_cmd", "7", "--reason", "commissioning test", "--json",
        "--url", center.url, "--token", center.token(Role.OPERATOR, TokenScope.COMMAND),
    )  # fmt: skip
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert answer["selection"]["tag"] == "water.tank1.pump_cmd"
    assert answer["result"]["status"] == "rejected"
    assert answer["result"]["status_reason"] == "not a boolean"


@pytest.mark.parametrize(
    ("tag", "role", "scope", "expected"),
    [
        # A read token may not command, whatever its user's role: 403.
        ("water.tank1.pump_cmd", Role.OPERATOR, TokenScope.READ, "forbidden"),
        # A viewer may not command, whatever the token's scope: 403.
        ("water.tank1.pump_cmd", Role.VIEWER, TokenScope.COMMAND, "forbidden"),
        # Unknown and read-only points: the pipeline refuses the selection (409).
        ("water.tank1.level", Role.OPERATOR, TokenScope.COMMAND, "refused by the center"),
        ("no.such.tag", Role.OPERATOR, TokenScope.COMMAND, "refused by the center"),
    ],
)
def test_write_refusals_are_one_line_and_hold_nothing(
    center: Center, tag: str, role: Role, scope: TokenScope, expected: str
) -> None:
    result = cli(
        "write", tag, "true", "--reason", "commissioning test",
        "--url", center.url, "--token", center.token(role, scope),
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith(expected), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not center.kit.commands.selections


def test_write_needs_a_reason() -> None:
    assert cli("write", "a.b", "1", "--reason", " ", "--token", "x").exit_code == 2
    assert cli("write", "a.b", "1", "--reason", "x" * 501, "--token", "x").exit_code == 2


def test_devices_prints_the_diagnostics_table(center: Center) -> None:
    token = center.token(Role.MAINTENANCE)
    result = cli("devices", "--url", center.url, "--token", token)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "device", "connected", "healthy", "on_time_pct", "failed_scans", "latency_p95_ms",
        "reconnects", "last_error",
    ]  # fmt: skip
    assert lines[1].split() == ["rtu1", "true", "true", "99", "0", "5", "0", "-"]
    assert lines[2].split() == ["ctrl1", "false", "false", "50", "50", "0", "2", "timeout"]
    unhealthy = cli("devices", "--unhealthy", "--json", "--url", center.url, "--token", token)
    assert [d["device"] for d in json.loads(unhealthy.stdout)] == ["ctrl1"]
    # Diagnostics need the maintenance role: a viewer is refused in one line.
    refused = cli("devices", "--url", center.url, "--token", center.token(Role.VIEWER))
    assert refused.exit_code == 1 and refused.stderr.startswith("forbidden")


def test_tags_lists_and_filters_the_site_file(tmp_path: Path) -> None:
    result = cli("tags", "water.tank2.*", "--writable")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert rows and all(row[-1] == "yes" for row in rows)
    assert all(row[0].startswith("water.tank2.") for row in rows)
    level = cli("tags", "water.tank2.level")
    assert level.stdout.splitlines()[1].split()[:2] == ["water.tank2.level", "m"]
    by_device = cli("tags", "--device", "bldg.school_bms", "--read-only", "--json")
    assert '"bldg.school.z1.temp"' in by_device.stdout
    assert '"bldg.school.z1.setpoint"' not in by_device.stdout
    unknown = cli("tags", "--area", "nowhere")
    assert unknown.exit_code == 1 and "no area 'nowhere'" in unknown.stderr
    assert cli("tags", "no.such.*").exit_code == 1


@pytest.fixture
def unused_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
