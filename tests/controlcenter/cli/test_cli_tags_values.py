"""``tags`` from a site file; ``value``, ``write`` and ``devices`` against a real API socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from typer.testing import CliRunner, Result
from werkzeug.serving import make_server

from controlcenter.api.app import create_api
from controlcenter.api.services import ApiServices
from controlcenter.cli.main import app
from controlcenter.model import Role
from controlcenter.permissions import TokenScope
from controlcenter.ports import HistoryQueryReader
from controlcenter.security.tokens import TokenStore
from controlcenter.security.users import UserStore
from tests.controlcenter.api.api_testkit import AREAS, USERS, FixedLive, ListJournal


class Center:
    """The API served on a free port, and tokens for it."""

    def __init__(self, url: str, tokens: TokenStore) -> None:
        self.url = url
        self.tokens = tokens

    def token(self, role: Role = Role.VIEWER) -> str:
        """A fresh read token of the user of ``role``."""
        return self.tokens.create(USERS[role], TokenScope.READ, 3600, created_by="ada").secret_text


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Center]:
    """The API over fixed values on a real socket (port 0)."""
    directory = tmp_path_factory.mktemp("api")
    users = UserStore(directory / "users.json", hasher=PasswordHasher.from_parameters(CHEAPEST))
    for role, name in USERS.items():
        users.add_user(name, "a long test passphrase 1", role)
    tokens = TokenStore(directory / "tokens.sqlite", users)
    services = ApiServices(
        live=FixedLive(),
        history=cast(HistoryQueryReader, None),
        journal=ListJournal(),
        tokens=tokens,
        site_name="Testville",
        areas=AREAS,
    )
    server = make_server("127.0.0.1", 0, create_api(services), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Center(f"http://127.0.0.1:{server.server_port}", tokens)
    finally:
        server.shutdown()
        thread.join(timeout=10)


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


def test_write_refused_for_a_read_token_without_holding_the_point(center: Center) -> None:
    # A read token may not command: the center refuses the selection (403, or 404 where the
    # center has no command endpoint), in one line.
    result = cli(
        "write", "water.tank1.pump_cmd", "true", "--reason", "commissioning test",
        "--url", center.url, "--token", center.token(Role.OPERATOR),
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith(("forbidden", "not found"))
    assert "Traceback" not in result.output
    assert cli("write", "a.b", "1", "--reason", " ", "--token", "x").exit_code == 2


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
