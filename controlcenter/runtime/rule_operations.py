"""The rule set for engineers, as a service the HMI (and any other face) calls.

Built on what ``controlcenter rules`` uses: the stored versions (``RuleVersionStore``), the
checks a running center applies (``rule_deployment.validate_rule_set``), the version diff
(``rule_deployment.unified_diff``) and the replay of history (``rules.backtest.run_backtest``).
Applying stores a new version with its author and reason and *requests* it; the running
center's deployment takes it up and decides (active, or refused with every problem), exactly as
for the command line. The role is checked here, in the center, for every change: a display
that hides a button decides nothing.

Backtests run in a worker thread each, so that a display's request returns at once; the
display polls the job for its progress and report.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from controlcenter.automation import RuleSetDef, RuleSource
from controlcenter.model import Event, EventKind, User, utc_now
from controlcenter.permissions import Permission, PermissionDeniedError, require
from controlcenter.ports import (
    BacktestJob,
    BacktestJobStatus,
    BulkHistoryReader,
    EventJournal,
    RuleApplyOutcome,
    RuleLiveState,
    RuleVersion,
    RuleVersionStatus,
    RuleVersionStore,
)
from controlcenter.runtime.rule_deployment import (
    JOURNAL_SOURCE,
    RuleSetRefusedError,
    SiteRules,
    unified_diff,
    validate_rule_set,
)
from controlcenter.site.rulefile import parse_rule_sources
from controlcenter.site.yamlsource import SourceFileError
from historian.audit import AuditAction, AuditRecord
from rules.backtest import BacktestError, BacktestReport, run_backtest
from rules.evaluator import RuleStatus

log = logging.getLogger(__name__)

DECISION_WAIT_S = 10.0
"""Wall seconds an apply waits for the running center to activate or refuse the version."""
DECISION_POLL_S = 0.2
"""Wall seconds between two looks at the version's status while waiting."""
MAX_RUNNING_BACKTESTS = 2
"""Backtests running at once (each keeps a core busy)."""
KEPT_JOBS = 20
"""Finished backtests kept for their displays; older ones are forgotten."""
MAX_REASON_LENGTH = 500
REPORT_LINES = 40
"""Commands, events and holds quoted in a backtest's report (the counts cover all)."""
REFUSAL_SEVERITY = 500


class RuleOperationsService:
    """``ports.RuleOperations`` in the running center; safe to call from any thread but the
    center's event loop (apply waits for the deployment, which runs there)."""

    def __init__(
        self,
        store: RuleVersionStore,
        journal: EventJournal,
        site: SiteRules,
        history: BulkHistoryReader,
        *,
        running: Callable[[], int | None],
        statuses: Callable[[], Sequence[RuleStatus]] = list,
        last_actions: Callable[[], Mapping[str, tuple[datetime, str]]] = dict,
        audit: Callable[[AuditRecord], None] | None = None,
        now: Callable[[], datetime] = utc_now,
        decision_wait_s: float = DECISION_WAIT_S,
    ) -> None:
        """``running``: the version the engine runs; ``statuses`` and ``last_actions``: the
        engine's read-only view of its rules; ``audit``: where changes are audited besides
        the journal (the historian's audit records)."""
        self._store = store
        self._journal = journal
        self._site = site
        self._history = history
        self._running = running
        self._statuses = statuses
        self._last_actions = last_actions
        self._audit = audit
        self._now = now
        self._decision_wait_s = decision_wait_s
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, BacktestJob] = OrderedDict()
        self._parsed: tuple[int, RuleSetDef] | None = None

    # --- reading ------------------------------------------------------------------------

    def running_version(self) -> RuleVersion | None:
        """The version the center runs (None: no stored version runs)."""
        number = self._running()
        return None if number is None else self._store.rule_version(number)

    def versions(self) -> list[RuleVersion]:
        """Every stored version, oldest first."""
        return self._store.rule_versions()

    def version(self, number: int) -> RuleVersion:
        """One stored version; raises UnknownRuleVersionError."""
        return self._store.rule_version(number)

    def diff(self, older: int, newer: int) -> str:
        """The unified diff of two stored versions (as ``controlcenter rules diff``)."""
        return "".join(
            unified_diff(self._store.rule_version(older), self._store.rule_version(newer))
        )

    def live_states(self) -> list[RuleLiveState]:
        """Each rule of the running set (disabled ones too) with what it is doing now."""
        running = self.running_version()
        if running is None:
            return []
        definition = self._definition(running)
        if definition is None:
            return []
        statuses = {status.name: status for status in self._statuses()}
        actions = self._last_actions()
        states = []
        for rule in definition.rules:
            status = statuses.get(rule.name)
            action = actions.get(rule.name)
            states.append(
                RuleLiveState(
                    name=rule.name,
                    enabled=rule.enabled,
                    owner=rule.owner,
                    held=status.held if status is not None else None,
                    last_fired=status.last_fired if status is not None else None,
                    last_action_at=action[0] if action is not None else None,
                    last_action=action[1] if action is not None else "",
                )
            )
        return states

    # --- checking -----------------------------------------------------------------------

    def validate(self, user: User, sources: Sequence[RuleSource]) -> tuple[str, ...]:
        """Every problem of ``sources`` as ``file:line:column: reason`` (empty: valid)."""
        self._permitted(user, Permission.EDIT_RULES, "validate rule files")
        try:
            validate_rule_set(sources, self._site)
        except RuleSetRefusedError as err:
            return err.problems
        return ()

    def start_backtest(
        self, user: User, sources: Sequence[RuleSource], start: datetime, end: datetime
    ) -> BacktestJob:
        """Start replaying [start, end] of history through ``sources`` in a worker thread;
        raises ValueError for files that do not validate, a bad window or too many running
        backtests."""
        self._permitted(user, Permission.EDIT_RULES, "backtest rule files")
        if start.utcoffset() is None or end.utcoffset() is None or not start < end:
            raise ValueError("the backtest window must be time-zone aware, start before end")
        try:
            compiled = validate_rule_set(sources, self._site)
        except RuleSetRefusedError as err:
            raise ValueError("\n".join(err.problems)) from err
        with self._lock:
            running = sum(1 for j in self._jobs.values() if j.status is BacktestJobStatus.RUNNING)
            if running >= MAX_RUNNING_BACKTESTS:
                raise ValueError(
                    f"{running} backtests are running: wait for one to finish and start again"
                )
            job = BacktestJob(secrets.token_hex(8), user.name, start, end)
            self._jobs[job.job_id] = job
            while len(self._jobs) > KEPT_JOBS:
                self._jobs.popitem(last=False)

        def replay() -> None:
            try:
                report = run_backtest(
                    compiled,
                    self._history,
                    start,
                    end,
                    progress=lambda fraction: self._update(job.job_id, progress=fraction),
                )
            except BacktestError as err:
                self._update(job.job_id, status=BacktestJobStatus.FAILED, error=str(err))
            except Exception as err:  # a worker thread must report, never die silently
                log.exception("backtest %s failed", job.job_id)
                self._update(
                    job.job_id,
                    status=BacktestJobStatus.FAILED,
                    error=f"{type(err).__name__}: {err}",
                )
            else:
                self._update(
                    job.job_id,
                    status=BacktestJobStatus.DONE,
                    progress=1.0,
                    report=summarise(report),
                )

        threading.Thread(target=replay, name=f"backtest {job.job_id}", daemon=True).start()
        return job

    def backtest(self, user: User, job_id: str) -> BacktestJob:
        """A started backtest as it stands now; raises KeyError for an unknown one."""
        self._permitted(user, Permission.EDIT_RULES, "read a backtest")
        with self._lock:
            return self._jobs[job_id]

    # --- changing -----------------------------------------------------------------------

    def apply(self, user: User, sources: Sequence[RuleSource], reason: str) -> RuleApplyOutcome:
        """Validate, store as a new version by ``user``, ask the center to run it and wait
        for its answer (at most ``decision_wait_s``)."""
        return self._deploy(user, tuple(sources), reason, "applied", "apply rule files")

    def rollback(self, user: User, version: int, reason: str) -> RuleApplyOutcome:
        """Store version ``version``'s files as a new version and ask the center to run it;
        raises UnknownRuleVersionError."""
        self._permitted(user, Permission.APPLY_RULES, f"roll back to v{version}")
        earlier = self._store.rule_version(version)
        why = reason.strip()
        return self._deploy(
            user,
            earlier.sources,
            f"rollback to v{version}: {why}" if why else "",
            "rolled back",
            f"roll back to v{version}",
        )

    def _deploy(
        self,
        user: User,
        sources: tuple[RuleSource, ...],
        reason: str,
        action: str,
        attempt: str,
    ) -> RuleApplyOutcome:
        self._permitted(user, Permission.APPLY_RULES, attempt)
        why = " ".join(reason.split())[:MAX_REASON_LENGTH]
        if not why:
            return RuleApplyOutcome(None, ("a reason is required",))
        try:
            validate_rule_set(sources, self._site)
        except RuleSetRefusedError as err:
            return RuleApplyOutcome(None, err.problems)
        now = self._now()
        stored = self._store.add_rule_version(sources, user.name, why, now)
        self._store.request_rule_version(stored.version)
        message = f"rule set v{stored.version} {action} by {user.name}: {why}"
        self._journal.record(Event(now, EventKind.RULE, JOURNAL_SOURCE, message, user.name))
        if self._audit is not None:
            self._audit(
                AuditRecord(now, AuditAction.RULE_CHANGE, user.name, f"v{stored.version}", why)
            )
        return RuleApplyOutcome(self._decision(stored.version))

    def _decision(self, number: int) -> RuleVersion:
        """The version once the center decided on it, or as it stands at the deadline."""
        deadline = time.monotonic() + self._decision_wait_s
        while True:
            version = self._store.rule_version(number)
            if version.status is not RuleVersionStatus.PENDING or time.monotonic() >= deadline:
                return version
            time.sleep(DECISION_POLL_S)

    # --- steps --------------------------------------------------------------------------

    def _permitted(self, user: User, permission: Permission, action: str) -> None:
        """Return when ``user`` holds ``permission``; else journal the refusal and raise
        PermissionDeniedError."""
        try:
            require(user, permission)
        except PermissionDeniedError as err:
            message = f"refused: {user.name} ({user.role.value}) may not {action}: {err}"
            now = self._now()
            self._journal.record(
                Event(
                    now,
                    EventKind.RULE,
                    JOURNAL_SOURCE,
                    message[:MAX_REASON_LENGTH],
                    user.name,
                    REFUSAL_SEVERITY,
                )
            )
            if self._audit is not None:
                self._audit(
                    AuditRecord(now, AuditAction.RULE_CHANGE, user.name, "rules", message, False)
                )
            raise

    def _definition(self, version: RuleVersion) -> RuleSetDef | None:
        """The parsed rule files of ``version`` (kept for the last version asked)."""
        cached = self._parsed
        if cached is not None and cached[0] == version.version:
            return cached[1]
        try:
            definition = parse_rule_sources(version.sources)
        except SourceFileError:
            return None  # a version that runs has parsed; a stored one may not
        self._parsed = (version.version, definition)
        return definition

    def _update(self, job_id: str, **changes: object) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                self._jobs[job_id] = replace(job, **changes)  # type: ignore[arg-type]


def summarise(report: BacktestReport) -> str:
    """A backtest's report for a display: its figures, then the first commands, events and
    holds in time order."""
    figures = report.figures
    holds = sum(1 for hold in report.holds if hold.held)
    lines = [
        f"{len(report.commands)} commands, {len(report.events)} events, {holds} holds "
        f"({figures.samples_replayed} samples of {figures.tags_read} tags replayed in "
        f"{figures.wall_seconds:.1f} s)"
    ]
    items: list[tuple[datetime, str]] = [
        (c.time, f"{c.rule}: {c.tag} := {c.value!r} ({c.reason})") for c in report.commands
    ]
    items += [(e.time, f"{e.rule} [{e.severity}]: {e.message}") for e in report.events]
    items += [
        (h.time, f"{h.rule} {'holds' if h.held else 'resumes'}: {h.message}") for h in report.holds
    ]
    items.sort(key=lambda item: item[0])
    lines += [
        f"{moment.isoformat(timespec='seconds')}  {text}" for moment, text in items[:REPORT_LINES]
    ]
    if len(items) > REPORT_LINES:
        lines.append(f"... and {len(items) - REPORT_LINES} more")
    return "\n".join(lines)
