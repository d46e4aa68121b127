"""The rule operations service on a real SQLite historian with the real checks, deployment and
replay: roles refused and journaled, validation with file:line:column, a backtest as a job in
a worker thread, apply and rollback decided by a running deployment, live state and diff."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlcenter.automation import RuleSource, SiteLocation
from controlcenter.model import DataType, Event, EventKind, Quality, Role, Sample, TagDef, User
from controlcenter.permissions import PermissionDeniedError
from controlcenter.ports import (
    BacktestJob,
    BacktestJobStatus,
    RuleApplyOutcome,
    RuleVersion,
    RuleVersionStatus,
)
from controlcenter.runtime.rule_deployment import RuleDeployment, SiteRules, site_validator
from controlcenter.runtime.rule_operations import RuleOperationsService
from historian.audit import AuditAction
from historian.store import SqlHistorian
from rules.evaluator import RuleStatus
from rules.ruleset import CompiledRuleSet

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEVEL = TagDef("water.tank1.level", "rtu1", "hr:0:float32", DataType.FLOAT, unit="m")
PUMP = TagDef("water.tank1.pump_cmd", "rtu1", "co:0", DataType.BOOL, writable=True)
SITE = SiteRules((LEVEL, PUMP), SiteLocation(52.37, 4.90, "Europe/Amsterdam"), "automation")
ENGINEER = User("erik", Role.ENGINEER)


def fill(on_below: float) -> RuleSource:
    """The tank's fill rule with its switch-on threshold."""
    return RuleSource(
        "rules/water.yaml",
        "rules:\n"
        "  - name: water.tank1_fill\n"
        "    kind: hysteresis\n"
        "    input: water.tank1.level\n"
        "    output: water.tank1.pump_cmd\n"
        f"    on_below: {on_below}\n"
        "    off_above: 4.0\n",
    )


class Center:
    """A store, a deployment and the service, as a running center wires them."""

    def __init__(self, store: SqlHistorian) -> None:
        self.store = store
        self.events: list[Event] = []
        self.activated: list[CompiledRuleSet] = []
        self.deployment = RuleDeployment(
            store,
            self,
            site_validator(SITE),
            self.activated.append,
            site_sources=(fill(1.5),),
            now=lambda: T0,
        )
        self.deployment.start()
        self.service = RuleOperationsService(
            store,
            self,
            SITE,
            store,
            running=lambda: self.deployment.running_version,
            statuses=lambda: [RuleStatus("water.tank1_fill", "water.tank1.level is Bad", T0)],
            last_actions=lambda: {"water.tank1_fill": (T0, "water.tank1.pump_cmd := True")},
            audit=store.journal_audit,
            now=lambda: T0,
            decision_wait_s=5.0,
        )

    def record(self, event: Event) -> None:
        """The EventJournal port."""
        self.events.append(event)


@pytest.fixture
def center(tmp_path: Path) -> Iterator[Center]:
    store = SqlHistorian(f"sqlite:///{tmp_path / 'center.db'}")
    store.ensure_tags([LEVEL, PUMP])
    # One hour of a falling then rising level, one sample a minute.
    store.write_samples(
        [
            Sample(LEVEL.name, 3.0 - 2.5 * abs(30 - i) / 30 + 0.0, Quality.good(), moment, moment)
            for i in range(60)
            for moment in [T0 - timedelta(hours=1) + timedelta(minutes=i)]
        ]
    )
    yield Center(store)
    store.close()


async def decided(center: Center, call: asyncio.Future[RuleApplyOutcome]) -> RuleVersion:
    """Run the deployment's polls until ``call`` (waiting for the decision) returns."""
    deadline = time.monotonic() + 10
    while not call.done():
        assert time.monotonic() < deadline, "no decision"
        await center.deployment.check_once()
        await asyncio.wait({call}, timeout=0.05)
    version = call.result().version
    assert version is not None
    return version


def test_validation_names_file_line_and_column(center: Center) -> None:
    assert center.service.validate(ENGINEER, [fill(1.2)]) == ()
    broken = RuleSource("rules/water.yaml", "rules:\n  - name: x\n    condition: (\n")
    problems = center.service.validate(ENGINEER, [broken])
    assert problems and all(p.startswith("rules/water.yaml:") for p in problems)
    unknown = RuleSource("rules/water.yaml", fill(1.2).text.replace("tank1.level", "tank9.level"))
    assert any("water.tank9.level" in p for p in center.service.validate(ENGINEER, [unknown]))


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR, Role.MAINTENANCE])
def test_lower_roles_are_refused_and_journaled(center: Center, role: Role) -> None:
    user = User("olga", role)
    with pytest.raises(PermissionDeniedError):
        center.service.validate(user, [fill(1.2)])
    with pytest.raises(PermissionDeniedError):
        center.service.start_backtest(user, [fill(1.2)], T0 - timedelta(hours=1), T0)
    with pytest.raises(PermissionDeniedError):
        center.service.apply(user, [fill(1.2)], "lower threshold")
    with pytest.raises(PermissionDeniedError):
        center.service.rollback(user, 1, "back")
    assert [v.version for v in center.service.versions()] == [1]
    refusals = [e for e in center.events if e.message.startswith("refused: olga")]
    assert len(refusals) == 4 and all(e.kind is EventKind.RULE for e in refusals)
    audits = center.store.read_audit()
    assert len(audits) == 4 and not any(a.succeeded for a in audits)


async def test_apply_stores_a_version_by_the_engineer_and_the_center_activates_it(
    center: Center,
) -> None:
    call = asyncio.ensure_future(
        asyncio.to_thread(center.service.apply, ENGINEER, [fill(1.2)], "  earlier refill ")
    )
    version = await decided(center, call)
    assert version.version == 2 and version.status is RuleVersionStatus.ACTIVE
    assert version.author == "erik" and version.reason == "earlier refill"
    assert center.deployment.running_version == 2 and len(center.activated) == 1
    assert "on_below: 1.2" in center.service.running_version().sources[0].text  # type: ignore[union-attr]
    assert any(e.message == "rule set v2 applied by erik: earlier refill" for e in center.events)
    (audit,) = [a for a in center.store.read_audit() if a.action is AuditAction.RULE_CHANGE]
    assert audit.user == "erik" and audit.target == "v2"
    diff = center.service.diff(1, 2)
    assert "-    on_below: 1.5\n" in diff and "+    on_below: 1.2\n" in diff

    back = asyncio.ensure_future(
        asyncio.to_thread(center.service.rollback, ENGINEER, 1, "too early")
    )
    rolled = await decided(center, back)
    assert rolled.version == 3 and rolled.status is RuleVersionStatus.ACTIVE
    assert rolled.sources == (fill(1.5),) and rolled.reason == "rollback to v1: too early"


def test_invalid_files_or_no_reason_store_nothing(center: Center) -> None:
    broken = RuleSource("rules/water.yaml", "rules:\n  - name: x\n    condition: (\n")
    outcome = center.service.apply(ENGINEER, [broken], "try")
    assert outcome.version is None and outcome.problems[0].startswith("rules/water.yaml:")
    outcome = center.service.apply(ENGINEER, [fill(1.2)], "   ")
    assert outcome.version is None and outcome.problems == ("a reason is required",)
    with pytest.raises(KeyError):
        center.service.rollback(ENGINEER, 99, "nothing there")
    assert [v.version for v in center.service.versions()] == [1]


def test_a_version_nobody_takes_up_is_reported_pending(center: Center) -> None:
    center.service._decision_wait_s = 0.0
    outcome = center.service.apply(ENGINEER, [fill(1.2)], "no center")
    assert outcome.version is not None and outcome.version.status is RuleVersionStatus.PENDING


def test_a_backtest_runs_as_a_job_and_reports(center: Center) -> None:
    job = center.service.start_backtest(ENGINEER, [fill(1.2)], T0 - timedelta(hours=1), T0)
    assert job.user == "erik"
    deadline = time.monotonic() + 30
    current: BacktestJob = job
    while current.status is BacktestJobStatus.RUNNING:
        assert time.monotonic() < deadline, current
        time.sleep(0.02)
        current = center.service.backtest(ENGINEER, job.job_id)
    assert current.status is BacktestJobStatus.DONE, current.error
    assert current.progress == 1.0
    # The level dips to 0.5 m: below 1.2 m the rule switches the pump on (again and again in a
    # replay, which has no read-back); with a 0.3 m threshold it never would.
    assert not current.report.startswith("0 commands")
    assert "water.tank1.pump_cmd := True" in current.report
    low = center.service.start_backtest(ENGINEER, [fill(0.3)], T0 - timedelta(hours=1), T0)
    while (
        low := center.service.backtest(ENGINEER, low.job_id)
    ).status is BacktestJobStatus.RUNNING:
        assert time.monotonic() < deadline, low
        time.sleep(0.02)
    assert low.report.startswith("0 commands"), low
    with pytest.raises(KeyError):
        center.service.backtest(ENGINEER, "forged-id")
    with pytest.raises(ValueError, match=r"rules/water\.yaml"):
        center.service.start_backtest(
            ENGINEER, [RuleSource("rules/water.yaml", "rules: [")], T0 - timedelta(hours=1), T0
        )
    with pytest.raises(ValueError, match="window"):
        center.service.start_backtest(ENGINEER, [fill(1.2)], T0, T0 - timedelta(hours=1))


def test_live_states_join_the_running_rules_and_the_engine(center: Center) -> None:
    (state,) = center.service.live_states()
    assert state.name == "water.tank1_fill" and state.enabled
    assert state.held == "water.tank1.level is Bad" and state.last_fired == T0
    assert state.last_action == "water.tank1.pump_cmd := True"
