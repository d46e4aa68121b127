"""``controlcenter user add|set``: roles and the areas a user may command."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from controlcenter.cli.user import user_app
from controlcenter.model import Role, User
from controlcenter.security.users import UserStore

PASSWORD = "correct horse battery"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(user_app, list(args))
    return result.exit_code, result.output


def test_add_with_areas_then_set_them(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    code, output = run(
        "add", "wanda", "--role", "operator", "--area", "water", "--area", "heating",
        "--users", str(users), "--password", PASSWORD,
    )  # fmt: skip
    assert code == 0, output
    assert output.strip() == f"user wanda (operator; heating, water) saved in {users}"
    assert UserStore(users).get_user("wanda") == User("wanda", Role.OPERATOR, ("heating", "water"))

    code, output = run("set", "wanda", "--area", "lighting", "--users", str(users))
    assert code == 0, output
    assert UserStore(users).get_user("wanda").areas == ("lighting",)

    code, output = run("set", "wanda", "--all-areas", "--role", "engineer", "--users", str(users))
    assert code == 0, output
    assert output.strip() == f"user wanda (engineer; every area) saved in {users}"
    assert UserStore(users).get_user("wanda") == User("wanda", Role.ENGINEER)


def test_set_refuses_nonsense(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    assert run("add", "olga", "--users", str(users), "--password", PASSWORD)[0] == 0
    assert run("set", "olga", "--users", str(users))[0] == 2
    code, _ = run("set", "olga", "--area", "water", "--all-areas", "--users", str(users))
    assert code == 2
    code, output = run("set", "nobody", "--role", "admin", "--users", str(users))
    assert code == 1 and "unknown user 'nobody'" in output
    code, output = run("set", "olga", "--area", "water*", "--users", str(users))
    assert code == 1 and "area name 'water*'" in output
    assert UserStore(users).get_user("olga") == User("olga", Role.VIEWER)
