"""``controlcenter rules``: apply, rollback, diff, history, list and show against a real SQLite
historian, a real users file and a real site file; a running center played by a real
RuleDeployment in a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner, Result

from controlcenter.cli.rules import rules_app
from controlcenter.model import Event, EventKind, Role
from controlcenter.ports import RuleVersionStatus
from controlcenter.runtime.rule_deployment import (
    RuleDeployment,
    SiteRules,
    read_rule_sources,
    site_validator,
)
from controlcenter.security.users import UserStore
from controlcenter.site.config import load_site
from historian.audit import AuditAction
from historian.store import SqlHistorian

SITE = """\
site: {name: Test Town, latitude: 52.37, longitude: 4.9, timezone: Europe/Amsterdam}
devices:
  - {name: water.rtu1, protocol: modbus, endpoint: "127.0.0.1:1502", unit_id: 1}
tags:
  - {name: water.tank1.level, device: water.rtu1, address: "hr:0:float32", unit: m}
  - {name: water.tank1.pump_cmd, device: water.rtu1, address: "coil:0", data_type: bool,
     writable: true}
  - {name: lights.d1.lux, device: water.rtu1, address: "hr:2:float32", unit: lx}
  - {name: lights.d1.mode, device: water.rtu1, address: "hr:4:int16", data_type: int,
     writable: true}
automation:
  rule_files: [rules/water.yaml]
  identity: {name: rules, role: operator}
"""

WATER = """\
rules:
  - name: water.tank1_fill
    kind: hysteresis
    input: water.tank1.level
    output: water.tank1.pump_cmd
    on_below: 1.5
    off_above: 4.0
"""

LIGHTS = """\
rules:
  - name: lights.d1.dark_on
    owner: lighting
    triggers:
      - tag: lights.d1.lux
        debounce: 30s
      - every: 5m
    condition: lights.d1.lux < 20.0
    actions:
      - command: lights.d1.mode
        value: 1
"""

BROKEN_LIGHTS = """\
rules:
  - name: lights.d1.dark_on
    triggers:
      - every: 5m
    condition: lights.d1.luxx < 20.0
    actions:
      - command: lights.d1.mode
        value: 1
"""

PASSWORD = "correct horse battery staple 42"
# Cheap hashes: the tests check who may do what, not Argon2's cost.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@dataclass
class Setup:
    """A site directory with rule files, a users file and a historian database."""

    directory: Path
    db: str
    users: Path

    @property
    def site(self) -> Path:
        """The site file."""
        return self.directory / "site.yaml"

    def write(self, name: str, text: str) -> Path:
        """Write a rule file under the site's directory."""
        path = self.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def invoke(self, *args: str, password: str | None = PASSWORD, prompt: str = "") -> Result:
        """Run ``controlcenter rules ARGS``; the password in CC_PASSWORD unless None."""
        env = {"CC_PASSWORD": password} if password is not None else {"CC_PASSWORD": None}
        return CliRunner().invoke(rules_app, list(args), env=env, input=prompt)

    def change(self, command: str, *args: str, user: str = "erin", wait: str = "0") -> list[str]:
        """The arguments of an ``apply`` or ``rollback`` by ``user``."""
        return [
            command,
            *args,
            "--site",
            str(self.site),
            "--db",
            self.db,
            "--users",
            str(self.users),
            "--user",
            user,
            "--wait",
            wait,
        ]

    def store(self) -> SqlHistorian:
        """The historian the commands write to."""
        return SqlHistorian(self.db)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    """Users erin (engineer) and otto (operator), a site with one rule file, an empty database."""
    directory = tmp_path / "site"
    directory.mkdir()
    users = tmp_path / "users.json"
    store = UserStore(users, hasher=FAST_HASHER)
    store.add_user("erin", PASSWORD, Role.ENGINEER)
    store.add_user("otto", PASSWORD, Role.OPERATOR)
    result = Setup(directory, f"sqlite:///{tmp_path / 'center.db'}", users)
    result.write("site.yaml", SITE)
    result.write("rules/water.yaml", WATER)
    return result


@dataclass
class RunningCenter:
    """A center's rule deployment polling the database in a thread, as a running center does."""

    deployment: RuleDeployment[object]
    activated: list[object]


@contextmanager
def running_center(
    setup: Setup, *, missing_tags: frozenset[str] = frozenset()
) -> Iterator[RunningCenter]:
    """Start a deployment on the site (storing its files as v1 on a new database) and keep it
    polling every 20 ms until the block ends; ``missing_tags``: tags its site lacks."""
    site = load_site(setup.site)
    tags = tuple(tag for tag in site.tag_defs() if tag.name not in missing_tags)
    site_rules = SiteRules(tags, site.location(), site.automation_identity().name)
    store = setup.store()
    journal = _StoreJournal(store)
    activated: list[object] = []
    deployment: RuleDeployment[object] = RuleDeployment(
        store,
        journal,
        site_validator(site_rules),
        activated.append,
        site_sources=read_rule_sources(site.rule_file_paths(), setup.directory),
        poll_interval_s=0.02,
    )
    deployment.start()
    loop = asyncio.new_event_loop()
    watcher = loop.create_task(deployment.watch())

    def serve() -> None:
        with suppress(asyncio.CancelledError):  # how the block's end stops it
            loop.run_until_complete(watcher)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield RunningCenter(deployment, activated)
    finally:
        loop.call_soon_threadsafe(watcher.cancel)
        thread.join(timeout=10)
        loop.close()
        store.close()


class _StoreJournal:
    """The EventJournal port over the historian's event journal."""

    def __init__(self, store: SqlHistorian) -> None:
        self._store = store

    def record(self, event: Event) -> None:
        """Record an event in the journal."""
        self._store.journal_event(event)


def test_apply_checks_stores_and_waits_for_the_running_center(setup: Setup) -> None:
    lights = setup.write("rules/lighting.yaml", LIGHTS)
    water = setup.directory / "rules" / "water.yaml"

    with running_center(setup) as center:
        result = setup.invoke(
            *setup.change("apply", str(water), str(lights), "--reason", "dark days", wait="10")
        )

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "stored rule set v2 and asked the center to activate it",
        "rule set v2 is active",
    ]
    assert len(center.activated) == 1
    with setup.store() as store:
        versions = store.rule_versions()
        assert [(v.version, v.author, v.status) for v in versions] == [
            (1, "site file", RuleVersionStatus.SUPERSEDED),
            (2, "erin", RuleVersionStatus.ACTIVE),
        ]
        assert [s.name for s in versions[1].sources] == ["rules/water.yaml", "rules/lighting.yaml"]
        assert versions[1].reason == "dark days"
        messages = [e.message for e in store.read_events(kind=EventKind.RULE)]
        assert "rule set v2 applied by erin: dark days" in messages
        assert "rule set v2 activated by erin: dark days" in messages
        (audit,) = store.read_audit(action=AuditAction.RULE_CHANGE)
        assert (audit.user, audit.target, audit.detail) == ("erin", "v2", "dark days")


def test_apply_without_a_running_center_says_when_it_will_run(setup: Setup) -> None:
    lights = setup.write("rules/lighting.yaml", LIGHTS)

    result = setup.invoke(*setup.change("apply", str(lights), "--reason", "lights"))

    assert result.exit_code == 0, result.output
    assert "it will be activated when the center starts" in result.stdout
    with setup.store() as store:
        assert store.requested_rule_version() == 1
        assert store.rule_version(1).status is RuleVersionStatus.PENDING


def test_apply_of_a_bad_file_prints_every_problem_and_stores_nothing(setup: Setup) -> None:
    broken = setup.write("rules/lighting.yaml", BROKEN_LIGHTS)

    result = setup.invoke(*setup.change("apply", str(broken), "--reason", "typo"))

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "rules/lighting.yaml:5:16: rule lights.d1.dark_on: condition: unknown tag "
        "'lights.d1.luxx' (did you mean lights.d1.lux?)",
        "refused: 1 problem(s); nothing stored",
    ]
    with setup.store() as store:
        assert store.rule_versions() == []
        assert store.requested_rule_version() is None


def test_apply_of_a_file_with_a_yaml_error_names_its_line(setup: Setup) -> None:
    broken = setup.write("rules/lighting.yaml", "rules:\n  - name: x\n    triggers: [\n")

    result = setup.invoke(*setup.change("apply", str(broken), "--reason", "typo"))

    assert result.exit_code == 1
    assert result.stderr.startswith("rules/lighting.yaml:")
    with setup.store() as store:
        assert store.rule_versions() == []


def test_an_operator_may_not_apply_and_the_attempt_is_journaled(setup: Setup) -> None:
    lights = setup.write("rules/lighting.yaml", LIGHTS)

    result = setup.invoke(*setup.change("apply", str(lights), "--reason", "try", user="otto"))

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "refused: otto (operator) may not apply rule files: that needs the engineer role or above"
    )
    with setup.store() as store:
        assert store.rule_versions() == []
        (event,) = store.read_events(kind=EventKind.RULE)
        assert event.user == "otto"
        assert event.message.startswith("refused: otto (operator) may not apply rule files")
        (audit,) = store.read_audit(action=AuditAction.RULE_CHANGE)
        assert not audit.succeeded


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(setup: Setup) -> None:
    lights = setup.write("rules/lighting.yaml", LIGHTS)

    wrong = setup.invoke(
        *setup.change("apply", str(lights), "--reason", "x"), password="not the password 99"
    )
    unknown = setup.invoke(
        *setup.change("apply", str(lights), "--reason", "x", user="mallory"), password=PASSWORD
    )

    for result in (wrong, unknown):
        assert result.exit_code == 1
        assert result.stderr.strip() == "refused: invalid user name or password"
    with setup.store() as store:
        assert store.rule_versions() == []
        failed = store.read_audit(action=AuditAction.LOGIN_FAILED)
        assert [(a.user, a.succeeded) for a in failed] == [("erin", False), ("mallory", False)]


def test_the_password_is_prompted_for_when_not_in_the_environment(setup: Setup) -> None:
    lights = setup.write("rules/lighting.yaml", LIGHTS)

    result = setup.invoke(
        *setup.change("apply", str(lights), "--reason", "x"), password=None, prompt=PASSWORD + "\n"
    )

    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input
    with setup.store() as store:
        assert [v.author for v in store.rule_versions()] == ["erin"]


def test_rollback_stores_an_earlier_text_as_a_new_version(setup: Setup) -> None:
    lights = setup.write("rules/lighting.yaml", LIGHTS)
    with running_center(setup):
        applied = setup.invoke(*setup.change("apply", str(lights), "--reason", "lights", wait="10"))
        assert applied.exit_code == 0, applied.output
        rolled = setup.invoke(
            *setup.change("rollback", "--to", "1", "--reason", "lamps flicker", wait="10")
        )

    assert rolled.exit_code == 0, rolled.output
    assert "rule set v3 is active" in rolled.stdout
    with setup.store() as store:
        first, _, third = store.rule_versions()
        assert third.sources == first.sources
        assert third.reason == "rollback to v1: lamps flicker"
        assert third.status is RuleVersionStatus.ACTIVE
        messages = [e.message for e in store.read_events(kind=EventKind.RULE)]
        assert "rule set v3 rolled back by erin: rollback to v1: lamps flicker" in messages


def test_rollback_to_an_unknown_version_is_refused(setup: Setup) -> None:
    result = setup.invoke(*setup.change("rollback", "--to", "9", "--reason", "x"))

    assert result.exit_code == 1
    assert "no rule-set version 9" in result.stderr


def test_a_version_the_center_refuses_is_reported_with_its_problems(setup: Setup) -> None:
    lights = setup.write("rules/lighting.yaml", LIGHTS)
    # Valid for the site file the engineer checked against, but the running center's site has
    # no lux tag: the center refuses it and keeps v1 running.
    with running_center(setup, missing_tags=frozenset({"lights.d1.lux"})) as center:
        result = setup.invoke(*setup.change("apply", str(lights), "--reason", "x", wait="10"))

    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "the center refused rule set v2:"
    assert "lights.d1.lux" in result.stderr
    assert center.deployment.running_version == 1


def test_history_diff_show_and_list(setup: Setup) -> None:
    lights = setup.write("rules/lighting.yaml", LIGHTS)
    water = setup.directory / "rules" / "water.yaml"
    with running_center(setup):
        applied = setup.invoke(
            *setup.change("apply", str(water), str(lights), "--reason", "lights", wait="10")
        )
        assert applied.exit_code == 0, applied.output

    history = setup.invoke("history", "--db", setup.db)
    diff = setup.invoke("diff", "1", "2", "--db", setup.db)
    show = setup.invoke("show", "--version", "1", "--db", setup.db)
    listing = setup.invoke("list", "--db", setup.db)

    rows = history.stdout.splitlines()
    assert rows[0].split() == ["version", "created", "author", "status", "reason"]
    first, second = rows[1].split(), rows[2].split()
    assert (first[0], first[2:]) == (
        "v1",
        ["site", "file", "superseded", "rule", "files", "of", "the", "site", "file"],
    )
    assert (second[0], second[1], second[3:]) == ("v2", "*", ["erin", "active", "lights"])
    assert rows[-1] == "(* requested)"
    assert diff.stdout.splitlines()[:3] == [
        "--- /dev/null",
        "+++ v2/rules/lighting.yaml",
        "@@ -0,0 +1,11 @@",
    ]
    assert "+    condition: lights.d1.lux < 20.0" in diff.stdout.splitlines()
    assert (
        show.stdout == "# rule set v1 (superseded) by site file\n# --- rules/water.yaml\n" + WATER
    )
    assert listing.stdout.splitlines()[0] == (
        "rule set v2 (active): 2 rules (2 enabled), 0 calculated tags"
    )
    assert any(
        line.split()[:3] == ["lights.d1.dark_on", "yes", "lighting"]
        and line.endswith("tag lights.d1.lux (debounce 30s); every 5m")
        for line in listing.stdout.splitlines()
    )


def test_diff_of_an_unknown_version_is_refused(setup: Setup) -> None:
    result = setup.invoke("diff", "1", "2", "--db", setup.db)

    assert result.exit_code == 1
    assert "no rule-set version 1" in result.stderr


def test_the_group_offers_every_command_including_backtest() -> None:
    result = CliRunner().invoke(rules_app, ["--help"])

    assert result.exit_code == 0
    for command in ("list", "show", "diff", "history", "apply", "rollback", "backtest"):
        assert f"│ {command} " in result.stdout
