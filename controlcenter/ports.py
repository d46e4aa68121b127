"""The small interfaces through which the parts of the center reach each other.

Implementations live in their own packages; the composition root
(``controlcenter.runtime.app``) wires them together. Everything here is typed against
``controlcenter.model`` only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

# Re-exported (``as``): the historian stores rule versions but may import only the vocabulary of
# ``model`` and ``ports`` (import-linter), so it reaches the rule file's type through here.
# The alarm vocabulary, likewise, for the historian's alarm states and journal.
from controlcenter.automation import AlarmAction as AlarmAction  # noqa: PLC0414
from controlcenter.automation import AlarmDef as AlarmDef  # noqa: PLC0414
from controlcenter.automation import AlarmDisplayState as AlarmDisplayState  # noqa: PLC0414
from controlcenter.automation import AlarmKind as AlarmKind  # noqa: PLC0414
from controlcenter.automation import AlarmPriority as AlarmPriority  # noqa: PLC0414
from controlcenter.automation import AlarmState as AlarmState  # noqa: PLC0414
from controlcenter.automation import AlarmTransition as AlarmTransition  # noqa: PLC0414
from controlcenter.automation import RuleSource as RuleSource  # noqa: PLC0414
from controlcenter.model import (
    Command,
    CommandOrigin,
    CommandResult,
    CommandStatus,
    Event,
    EventKind,
    LoginGrant,
    Override,
    Role,
    Sample,
    SampleColumns,
    ScanDiagnostics,
    Selection,
    TagDef,
    User,
    Value,
)


class Clock(Protocol):
    """The time the center runs on: wall time, or simulated time running ``speed`` times faster."""

    @property
    def speed(self) -> float:
        """Simulated seconds per wall-clock second (1.0 for real time)."""
        ...

    def now(self) -> datetime:
        """Current time on this clock, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on this clock from an arbitrary origin; never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of this clock's time."""
        ...


SampleListener = Callable[[Sequence[Sample]], None]
"""Receives each published batch of samples; must not block (enqueue and return)."""


class SamplePublisher(Protocol):
    """Where acquisition hands its samples over to the rest of the center."""

    def publish(self, samples: Sequence[Sample]) -> None:
        """Deliver a batch of samples to every subscriber."""
        ...


class CommandSink(Protocol):
    """The one path for writes to the field, whoever sends them."""

    async def submit(self, command: Command) -> CommandResult:
        """Check, execute, read back and journal a command; always returns a result."""
        ...


class LiveView(Protocol):
    """A thread-safe snapshot of the latest sample of every tag."""

    def tags(self) -> Sequence[TagDef]:
        """Every configured tag."""
        ...

    def latest(self, tag: str) -> Sample:
        """The latest sample of ``tag``; raises KeyError for an unknown tag."""
        ...

    def snapshot(self) -> Mapping[str, Sample]:
        """A copy of the latest sample of every tag."""
        ...


class HistoryReader(Protocol):
    """Read access to the historian (safe to call from any thread)."""

    def read_raw(
        self, tag: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[Sample]:
        """Stored samples of ``tag`` with start <= server time <= end, oldest first."""
        ...

    def read_commands(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[CommandResult]:
        """Journaled commands with their results, oldest first."""
        ...

    def read_events(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[Event]:
        """Journaled events, oldest first."""
        ...


class HistoryQueryReader(HistoryReader, Protocol):
    """History queries beyond raw values (safe to call from any thread).

    Aggregate names (OPC UA Part 13): interpolative, average, time_average, minimum, maximum,
    start, end, count, percent_good.
    """

    def read_raw(
        self,
        tag: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Sample]:
        """Stored samples of ``tag`` with start <= server time <= end, oldest first (newest
        first with ``newest_first``), at most ``limit`` of them from that end."""
        ...

    def read_raw_columns(
        self,
        tag: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> SampleColumns:
        """``read_raw``'s rows as columns (times in epoch milliseconds): long windows."""
        ...

    def read_at_times(self, tag: str, times: Sequence[datetime]) -> list[Sample]:
        """One sample of ``tag`` per time: stored, held (step) or interpolated (linear)."""
        ...

    def read_processed(
        self,
        tag: str,
        start: datetime,
        end: datetime,
        interval: timedelta,
        aggregates: Sequence[str],
    ) -> dict[str, list[Sample]]:
        """Each named aggregate of ``tag`` per ``interval`` over [start, end)."""
        ...

    def read_trend(self, tag: str, start: datetime, end: datetime, max_points: int) -> list[Sample]:
        """At most ``max_points`` points of ``tag`` over [start, end), extremes kept."""
        ...

    def read_commands(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        tag: str | None = None,
        tags: Sequence[str] | None = None,
        origin: CommandOrigin | None = None,
        requested_by: str | None = None,
        limit: int | None = None,
    ) -> list[CommandResult]:
        """Journaled commands, optionally of one tag or several, origin or requester; oldest
        first."""
        ...

    def read_events(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        kind: EventKind | None = None,
        source: str | None = None,
        user: str | None = None,
        limit: int | None = None,
        tag: str | None = None,
        device: str | None = None,
        area: str | None = None,
    ) -> list[Event]:
        """Journaled events, optionally of one kind, source or user, or (alarm events) of one
        tag, device or area; with ``limit`` the newest ``limit``; oldest first."""
        ...


class BulkHistoryReader(HistoryReader, Protocol):
    """A historian that also reads many tags' samples in one query (replays, backtests)."""

    def read_raw_many(self, names: Sequence[str], start: datetime, end: datetime) -> list[Sample]:
        """Stored samples of every tag in ``names`` with start <= server time < end, in
        server-time order; unknown tags have none."""
        ...


class HistoryStore(HistoryReader, Protocol):
    """Write access to the historian; each call is one transaction."""

    def write_samples(self, samples: Sequence[Sample]) -> None:
        """Store a batch of samples in one transaction."""
        ...

    def journal_command(self, result: CommandResult) -> None:
        """Journal a command with its origin, reason and result."""
        ...

    def journal_event(self, event: Event) -> None:
        """Journal an event."""
        ...


class InterlockChecker(Protocol):
    """Says whether an interlock blocks a command (evaluated on the latest values)."""

    def blocking(self, tag: str, value: Value) -> str | None:
        """The name and message of the interlock blocking ``tag := value``, or None."""
        ...


class OverrideStore(Protocol):
    """Where active operator overrides are kept, so that they survive a restart of the center
    and can be listed by other processes; safe to call from any thread."""

    def save_override(self, override: Override) -> None:
        """Store ``override``, replacing any active override of its tag."""
        ...

    def clear_override(self, tag: str) -> None:
        """Forget the active override of ``tag`` (released or expired)."""
        ...

    def active_overrides(self) -> list[Override]:
        """Every stored override, ordered by tag."""
        ...


class RuleVersionStatus(StrEnum):
    """Where a stored rule-set version stands."""

    PENDING = "pending"
    """Stored, not yet taken up by a running center."""
    ACTIVE = "active"
    """The set the center runs (at most one version is active)."""
    SUPERSEDED = "superseded"
    """Was active; replaced by a later activation."""
    REFUSED = "refused"
    """Did not parse or compile against the site; ``detail`` says why, line by line."""


@dataclass(frozen=True, slots=True)
class RuleVersion:
    """One stored version of the whole rule set: the full text of every rule file, who stored
    it, why, and what became of it."""

    version: int
    created_at: datetime
    author: str
    reason: str
    sources: tuple[RuleSource, ...]
    status: RuleVersionStatus = RuleVersionStatus.PENDING
    detail: str = ""
    """For a refused version, every problem (``file:line:column: reason``), one per line."""
    decided_at: datetime | None = None
    """When the status last changed (None while pending)."""


class UnknownRuleVersionError(KeyError):
    """No rule-set version has that number."""

    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version

    def __str__(self) -> str:
        return f"no rule-set version {self.version}"


class RuleVersionStore(Protocol):
    """Where rule-set versions are kept, with the version the center is asked to run; shared by
    the running center and the command line (another process); safe to call from any thread."""

    def add_rule_version(
        self, sources: Sequence[RuleSource], author: str, reason: str, created_at: datetime
    ) -> RuleVersion:
        """Store a new pending version numbered one above the highest stored so far."""
        ...

    def rule_versions(self) -> list[RuleVersion]:
        """Every stored version, oldest first."""
        ...

    def rule_version(self, version: int) -> RuleVersion:
        """One stored version; raises UnknownRuleVersionError."""
        ...

    def requested_rule_version(self) -> int | None:
        """The version the center is asked to run, or None before any request."""
        ...

    def request_rule_version(self, version: int) -> None:
        """Ask the center to run ``version``; raises UnknownRuleVersionError."""
        ...

    def mark_rule_version(self, version: int, status: RuleVersionStatus, detail: str = "") -> None:
        """Record what became of ``version``; marking one active marks the previously active
        version superseded in the same transaction. Raises UnknownRuleVersionError."""
        ...


class EventJournal(Protocol):
    """Where parts record events (logins, rule changes); safe to call from any thread."""

    def record(self, event: Event) -> None:
        """Record an event in the journal."""
        ...


class AuthenticationError(Exception):
    """A login was refused: unknown user or wrong password (never says which)."""


class Authenticator(Protocol):
    """Checks credentials and looks users up; safe to call from any thread."""

    def authenticate(self, name: str, password: str) -> User:
        """Return the user for valid credentials; raise AuthenticationError otherwise."""
        ...

    def get_user(self, name: str) -> User:
        """Return a known user; raise KeyError for an unknown one."""
        ...


class LoginRefusedError(AuthenticationError):
    """A login was refused; ``lockouts`` describes the lockouts this refusal started."""

    def __init__(self, message: str, lockouts: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.lockouts = tuple(lockouts)


class LoginThrottledError(AuthenticationError):
    """Too many refused logins for this user or from this address: refused unchecked for now."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LoginSessions(Protocol):
    """Logins with throttling, and server-side sessions; safe to call from any thread."""

    def log_in(self, name: str, password: str, address: str) -> LoginGrant:
        """Open a session for valid credentials; raise LoginThrottledError or LoginRefusedError."""
        ...

    def resolve(self, token: str, *, activity: bool) -> User | None:
        """The user of a live session, or None (unknown, expired, revoked, user changed).

        ``activity``: the request comes from the person (not an automatic refresh), so it
        restarts the idle timeout.
        """
        ...

    def log_out(self, token: str) -> User | None:
        """Revoke a session on the server; return its user, or None if it was not live."""
        ...


# --- alarms -----------------------------------------------------------------------------------


class AlarmStore(Protocol):
    """Where alarm states and the alarm journal are kept (ISA-18.2: the alarm history); shared
    by the running center and the command line; safe to call from any thread."""

    def save_alarm_states(self, states: Sequence[AlarmState]) -> None:
        """Store ``states`` in one transaction, replacing the stored state of each alarm."""
        ...

    def load_alarm_states(self) -> list[AlarmState]:
        """Every stored alarm state, ordered by alarm name."""
        ...

    def journal_alarm_transitions(self, transitions: Sequence[AlarmTransition]) -> None:
        """Journal ``transitions`` in one transaction: in the alarm journal and, so that one
        journal tells everything that happened, as ALARM events (with their tag, device and
        area) in the event journal."""
        ...

    def read_alarm_journal(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        alarm: str | None = None,
        area: str | None = None,
        user: str | None = None,
        limit: int | None = None,
    ) -> list[AlarmTransition]:
        """Journaled transitions with start <= time <= end, optionally of one alarm, area or
        user; with ``limit`` the newest ``limit`` of them; oldest first."""
        ...


class AlarmListener(Protocol):
    """Told of every alarm transition (notifications, the HMI); must not block."""

    def on_transition(
        self, definition: AlarmDef, state: AlarmState, transition: AlarmTransition
    ) -> None:
        """Take note of ``transition`` of ``definition``, which left it in ``state``."""
        ...


class AlarmRequestStatus(StrEnum):
    """Where a queued alarm request stands."""

    PENDING = "pending"
    """Queued, not yet taken up by a running center."""
    DONE = "done"
    """Applied; ``detail`` says what changed."""
    REFUSED = "refused"
    """Not applied; ``detail`` says why."""


@dataclass(frozen=True, slots=True)
class AlarmRequest:
    """An operator's action on alarms queued by another process (the command line) for the
    running center, which applies it with the same roles and journaling as its own HMI."""

    id: int
    requested_at: datetime
    action: str
    """``alarms.requests.RequestAction`` as text: kept as stored, so that a row the center
    does not understand is refused with its name rather than lost."""
    alarms: tuple[str, ...]
    user: str
    text: str
    """The comment or the reason."""
    duration_s: float | None = None
    """Shelving: for how long, counted from when the center applies it (None: not timed)."""
    one_shot: bool = False
    status: AlarmRequestStatus = AlarmRequestStatus.PENDING
    detail: str = ""
    decided_at: datetime | None = None


class UnknownAlarmRequestError(KeyError):
    """No queued alarm request has that id."""

    def __init__(self, request_id: int) -> None:
        super().__init__(request_id)
        self.request_id = request_id

    def __str__(self) -> str:
        return f"no alarm request {self.request_id}"


class AlarmRequestStore(Protocol):
    """The queue of alarm requests between the command line and the running center; safe to
    call from any thread."""

    def add_alarm_request(
        self,
        action: str,
        alarms: Sequence[str],
        user: str,
        text: str,
        requested_at: datetime,
        *,
        duration_s: float | None = None,
        one_shot: bool = False,
    ) -> AlarmRequest:
        """Queue a pending request and return it with its id."""
        ...

    def pending_alarm_requests(self, limit: int = 100) -> list[AlarmRequest]:
        """The oldest ``limit`` pending requests, oldest first."""
        ...

    def alarm_request(self, request_id: int) -> AlarmRequest:
        """One request; raises UnknownAlarmRequestError."""
        ...

    def decide_alarm_request(
        self, request_id: int, status: AlarmRequestStatus, detail: str, decided_at: datetime
    ) -> None:
        """Record what became of a request; raises UnknownAlarmRequestError."""
        ...


# --- the services people act through, callable from any thread (HMI, API) ----------------------


class CommandOperations(Protocol):
    """Select-before-operate and manual overrides for people, through the one command
    pipeline; blocking and safe to call from any thread but the center's event loop."""

    def select(self, tag: str, user: User) -> Selection:
        """Reserve ``tag`` for ``user`` and show what an operate would act on; raises
        PermissionError (role, area) or a LookupError/ValueError naming why not."""
        ...

    def operate(
        self,
        selection_id: str,
        user: User,
        value: Value,
        reason: str,
        *,
        until: datetime | None = None,
    ) -> CommandResult:
        """Operate ``user``'s selection: the pipeline's result, journaled, always."""
        ...

    def cancel(self, selection_id: str, user: User) -> None:
        """Give up ``user``'s selection (raises LookupError for an unknown or foreign one)."""
        ...

    def release(self, tag: str, user: User, reason: str) -> CommandResult | None:
        """Release the manual override of ``tag``; the result of returning control to the
        next writer, or None when none remains (raises PermissionError, LookupError)."""
        ...

    def overrides(self) -> list[Override]:
        """Every active manual override, ordered by tag."""
        ...


class AcknowledgeOutcome(Protocol):
    """What an acknowledgement of several alarms did."""

    @property
    def transitions(self) -> tuple[AlarmTransition, ...]:
        """The transitions made."""
        ...

    @property
    def refused(self) -> tuple[Exception, ...]:
        """The alarms that had nothing to acknowledge, each with why."""
        ...


class AlarmOperations(Protocol):
    """Every alarm's state and the actions people take on them (the alarm service):
    blocking, thread-safe; refusals raise PermissionError (role, area), KeyError (unknown
    alarm) or an exception whose text says why the state does not allow the action."""

    def definition(self, name: str) -> AlarmDef:
        """The definition of alarm ``name``; raises KeyError."""
        ...

    def state(self, name: str) -> AlarmState:
        """The state of alarm ``name``; raises KeyError."""
        ...

    def states(
        self,
        *,
        area: str | None = None,
        priority: AlarmPriority | None = None,
        displays: Collection[AlarmDisplayState] | None = None,
        active_only: bool = False,
    ) -> list[tuple[AlarmDef, AlarmState]]:
        """Every alarm with its state, the most urgent first, filtered."""
        ...

    def acknowledge(
        self, names: Sequence[str], user: User, comment: str = ""
    ) -> AcknowledgeOutcome:
        """Acknowledge alarms as ``user``."""
        ...

    def reset(self, name: str, user: User, comment: str = "") -> list[AlarmTransition]:
        """Reset a latched alarm whose condition has cleared."""
        ...

    def shelve(
        self,
        name: str,
        user: User,
        reason: str,
        *,
        until: datetime | None = None,
        one_shot: bool = False,
    ) -> list[AlarmTransition]:
        """Shelve an alarm until ``until`` or, ``one_shot``, until it next clears."""
        ...

    def unshelve(self, name: str, user: User, reason: str = "") -> list[AlarmTransition]:
        """Take an alarm off its shelf."""
        ...

    def remove_from_service(self, name: str, user: User, reason: str) -> list[AlarmTransition]:
        """Take an alarm out of service (maintenance)."""
        ...

    def return_to_service(self, name: str, user: User, reason: str = "") -> list[AlarmTransition]:
        """Return an alarm to service (maintenance)."""
        ...

    def comment(self, name: str, user: User, comment: str) -> list[AlarmTransition]:
        """Write a comment in an alarm's journal."""
        ...


class AlarmJournalReader(Protocol):
    """The journal of alarm transitions (the historian)."""

    def read_alarm_journal(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        alarm: str | None = None,
        area: str | None = None,
        user: str | None = None,
        limit: int | None = None,
    ) -> list[AlarmTransition]:
        """Journaled transitions, oldest first (see ``AlarmStore.read_alarm_journal``)."""
        ...


class DeviceHealthView(Protocol):
    """Acquisition health of every device (the scan engine); safe from any thread."""

    def diagnostics(self) -> list[ScanDiagnostics]:
        """One entry per device."""
        ...


class SelectionRefusedError(LookupError):
    """A point cannot be selected or a selection used: unknown or read-only tag, held by
    another user, unknown, foreign or expired selection. The text says which."""


# --- administration: users (administrators) and rule sets (engineers) ---------------------------


@dataclass(frozen=True, slots=True)
class UserAccount:
    """A user as the administrators see them: who, with which role and areas, and whether the
    account is disabled (a disabled user cannot log in; their sessions have ended)."""

    user: User
    disabled: bool = False


class UserAdministrationError(ValueError):
    """A change to the users was refused: unknown or existing user, bad name, weak password,
    no reason given, or an administrator locking themselves out. The text says why."""


class UserAdministration(Protocol):
    """Adding, disabling, enabling, re-roling users and resetting passwords: every call checks
    the acting user's permission (raising PermissionError) and journals who did what to whom,
    and why; safe to call from any thread."""

    def accounts(self, actor: User) -> list[UserAccount]:
        """Every user, sorted by name."""
        ...

    def add_user(
        self,
        actor: User,
        name: str,
        role: Role,
        areas: Sequence[str],
        password: str,
        reason: str,
    ) -> UserAccount:
        """Create a user with an initial password (checked by the password policy)."""
        ...

    def disable_user(self, actor: User, name: str, reason: str) -> UserAccount:
        """Disable a user: no more logins, every open session ends."""
        ...

    def enable_user(self, actor: User, name: str, reason: str) -> UserAccount:
        """Let a disabled user log in again."""
        ...

    def set_role(self, actor: User, name: str, role: Role, reason: str) -> UserAccount:
        """Change a user's role (their sessions end)."""
        ...

    def reset_password(self, actor: User, name: str, password: str, reason: str) -> None:
        """Give a user a new password (their sessions end)."""
        ...


@dataclass(frozen=True, slots=True)
class RuleLiveState:
    """What one rule of the running set is doing now."""

    name: str
    enabled: bool
    owner: str = ""
    held: str | None = None
    """Why the rule holds (does not act on its inputs), or None while it acts normally."""
    last_fired: datetime | None = None
    """When a trigger of the rule last fired."""
    last_action_at: datetime | None = None
    last_action: str = ""
    """The last command or event the rule decided, in a few words."""


class BacktestJobStatus(StrEnum):
    """Where a backtest started from a display stands."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class BacktestJob:
    """A backtest running in a worker thread: its window, its progress and, once done, its
    report (or why it failed)."""

    job_id: str
    user: str
    start: datetime
    end: datetime
    status: BacktestJobStatus = BacktestJobStatus.RUNNING
    progress: float = 0.0
    """Share of the window replayed, 0 to 1."""
    report: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class RuleApplyOutcome:
    """What came of applying or rolling back: refused before anything was stored (``version``
    None, ``problems`` say why), or the stored version with the center's decision on it
    (active, refused with its detail, or still pending when the center did not answer)."""

    version: RuleVersion | None
    problems: tuple[str, ...] = ()


class RuleOperations(Protocol):
    """The rule set for engineers: live state, stored versions and their differences,
    validation, backtests and changes of the running set. Validating and backtesting need the
    edit permission, changing the running set the apply permission (PermissionError
    otherwise); changes and refusals are journaled with who and why. Blocking; safe to call
    from any thread but the center's event loop."""

    def running_version(self) -> RuleVersion | None:
        """The version the center runs (None: no stored version runs)."""
        ...

    def versions(self) -> list[RuleVersion]:
        """Every stored version, oldest first."""
        ...

    def version(self, number: int) -> RuleVersion:
        """One stored version; raises UnknownRuleVersionError."""
        ...

    def diff(self, older: int, newer: int) -> str:
        """The unified diff of two stored versions, file by file."""
        ...

    def live_states(self) -> list[RuleLiveState]:
        """Each rule of the running set with what it is doing now."""
        ...

    def validate(self, user: User, sources: Sequence[RuleSource]) -> tuple[str, ...]:
        """Every problem of ``sources`` as ``file:line:column: reason`` (empty: valid)."""
        ...

    def start_backtest(
        self, user: User, sources: Sequence[RuleSource], start: datetime, end: datetime
    ) -> BacktestJob:
        """Start replaying [start, end] of history through ``sources`` in a worker thread."""
        ...

    def backtest(self, user: User, job_id: str) -> BacktestJob:
        """A started backtest as it stands now; raises KeyError for an unknown one."""
        ...

    def apply(self, user: User, sources: Sequence[RuleSource], reason: str) -> RuleApplyOutcome:
        """Validate, store as a new version, ask the center to run it and report its answer."""
        ...

    def rollback(self, user: User, version: int, reason: str) -> RuleApplyOutcome:
        """Store an earlier version's files as a new version and ask the center to run it."""
        ...


# --- operations: what /metrics and /readyz read of the running center -------------------------


class HistorianWriterFigures(Protocol):
    """A snapshot of the historian writer's back-pressure (``historian.writer.WriterMetrics``)."""

    @property
    def queue_depth(self) -> int:
        """Samples waiting to be written (memory and spool)."""
        ...

    @property
    def spool_depth(self) -> int:
        """Samples in the disk spool."""
        ...

    @property
    def spool_fill_ratio(self) -> float:
        """How full the spool is, 0.0 to 1.0."""
        ...

    @property
    def last_batch_latency_s(self) -> float:
        """Duration of the last successful batch write."""
        ...

    @property
    def max_batch_latency_s(self) -> float:
        """Longest successful batch write since start."""
        ...

    @property
    def rows_written(self) -> int:
        """Samples written since start."""
        ...

    @property
    def write_failures(self) -> int:
        """Failed write attempts since start."""
        ...

    @property
    def failing(self) -> bool:
        """Whether writing is failing now."""
        ...


class HistorianWriterView(Protocol):
    """The historian writer, read-only (its figures are safe to read from any thread)."""

    def metrics(self) -> HistorianWriterFigures:
        """A snapshot of the writer's figures."""
        ...


class CommandCounts(Protocol):
    """Commands finished since start, by status (the command pipeline)."""

    def status_counts(self) -> Mapping[CommandStatus, int]:
        """Counts by status."""
        ...


class RuleEvaluationCount(Protocol):
    """How many rule evaluations the rules engine has made since start."""

    def evaluations(self) -> int:
        """Evaluations since start."""
        ...


class OpenStreams(Protocol):
    """How many live streams (HMI displays) are open (``controlcenter.live.LiveHub``)."""

    def open_streams(self) -> int:
        """Open streams now."""
        ...


@dataclass(frozen=True, slots=True)
class CollectionStop:
    """One waste container on a collection round, in the order a crew drives it."""

    order: int
    asset: str
    label: str
    fill_pct: float
    latitude: float
    longitude: float
    leg_m: float
    """Straight-line distance from the previous stop (the depot for the first)."""


class CollectionPlanner(Protocol):
    """The next waste collection round (``alarms.collection``)."""

    def next_collection(self) -> tuple[CollectionStop, ...]:
        """The containers due now, ordered as the crew would drive them."""
        ...
