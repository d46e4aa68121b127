"""A small center behind the API for its tests: fake live values, a real token store."""

from __future__ import annotations

import difflib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from flask.testing import FlaskClient

from alarms.conditions import ConditionChange
from alarms.service import AlarmService
from controlcenter.api.app import create_api
from controlcenter.api.services import ApiServices
from controlcenter.automation import (
    AlarmDef,
    AlarmGuidance,
    AlarmKind,
    AlarmPriority,
    AreaDef,
    RuleSource,
)
from controlcenter.clock import WallClock
from controlcenter.model import (
    Command,
    CommandLimits,
    CommandOrigin,
    CommandPriority,
    CommandResult,
    CommandStatus,
    DataType,
    Event,
    EventKind,
    Override,
    Quality,
    Role,
    Sample,
    ScanDiagnostics,
    Selection,
    Substatus,
    TagDef,
    User,
)
from controlcenter.model import Value as ModelValue
from controlcenter.permissions import Permission, TokenScope, require
from controlcenter.ports import (
    BacktestJob,
    BacktestJobStatus,
    HistoryQueryReader,
    RuleApplyOutcome,
    RuleLiveState,
    RuleVersion,
    RuleVersionStatus,
    SelectionRefusedError,
    UnknownRuleVersionError,
)
from controlcenter.security.administration import UserAdministrationService
from controlcenter.security.ratelimit import RatePolicy
from controlcenter.security.tokens import TokenStore
from controlcenter.security.users import UserStore
from historian.queries import HistoryQueries
from historian.store import SqlHistorian

WHEN = datetime(2030, 1, 1, 12, tzinfo=UTC)
TAGS = (
    TagDef("water.tank1.level", "rtu1", "ir:0", DataType.FLOAT, "m", 0.0, 5.0),
    TagDef("water.tank1.pump_cmd", "rtu1", "coil:0", DataType.BOOL, writable=True),
    TagDef("lights.d1.c1.power", "ctrl1", "ns=2;s=p", DataType.FLOAT, "kW"),
)
AREAS = (AreaDef("water", ("water.*",)), AreaDef("lighting", ("lights.*",)))
USERS = {Role.VIEWER: "vera", Role.OPERATOR: "olga", Role.ENGINEER: "erik", Role.ADMIN: "ada"}


class FixedLive:
    """A live view of fixed samples."""

    def __init__(self) -> None:
        self.samples = {
            "water.tank1.level": Sample("water.tank1.level", 3.2, Quality.good(), WHEN, WHEN),
            "water.tank1.pump_cmd": Sample(
                "water.tank1.pump_cmd", True, Quality.good(), WHEN, WHEN
            ),
            "lights.d1.c1.power": Sample(
                "lights.d1.c1.power",
                None,
                Quality.bad(Substatus.COMM_FAILURE, "controller 1 does not answer"),
                WHEN,
                WHEN,
            ),
        }

    def tags(self) -> Sequence[TagDef]:
        """Every tag."""
        return TAGS

    def latest(self, tag: str) -> Sample:
        """The sample of ``tag``."""
        return self.samples[tag]

    def snapshot(self) -> Mapping[str, Sample]:
        """Every sample."""
        return dict(self.samples)


@dataclass
class ListJournal:
    """Events in a list."""

    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, event: Event) -> None:
        """Append ``event``."""
        with self.lock:
            self.events.append(event)


@dataclass
class ApiKit:
    """The API app, its token store and its journal; ``token(role, scope)`` issues tokens."""

    client: FlaskClient
    tokens: TokenStore
    journal: ListJournal

    def token(self, role: Role, scope: TokenScope = TokenScope.READ) -> str:
        """A fresh token of the user of ``role``."""
        return self.tokens.create(USERS[role], scope, 3600, created_by="ada").secret_text

    def get(self, path: str, token: str = "", **kwargs: Any) -> Any:
        """GET with a bearer token."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.get(path, headers=headers, **kwargs)


def api_kit(tmp_path: Path, *, rate: RatePolicy | None = None, **more: Any) -> ApiKit:
    """The API over fixed values, with one user per role."""
    users = UserStore(tmp_path / "users.json", hasher=PasswordHasher.from_parameters(CHEAPEST))
    for role, name in USERS.items():
        users.add_user(name, "a long test passphrase 1", role)
    tokens = TokenStore(tmp_path / "tokens.sqlite", users)
    journal = ListJournal()
    services = ApiServices(
        live=FixedLive(),
        history=cast(HistoryQueryReader, None),
        journal=journal,
        tokens=tokens,
        site_name="Testville",
        areas=AREAS,
        rate=rate or RatePolicy(),
        **more,
    )
    return ApiKit(create_api(services).test_client(), tokens, journal)


# --- a fuller center: real SQLite historian, alarm service and user administration ---------------

PASSWORD = "a long test passphrase 1"
HIGH = AlarmDef(
    "water.tank1.level_high",
    AlarmKind.HIGH,
    AlarmPriority.HIGH,
    tag="water.tank1.level",
    device="rtu1",
    limit=4.0,
    area="water",
    guidance=AlarmGuidance("inflow above demand", "tank overflows", "stop pump 1"),
)
LAMP = AlarmDef("lights.d1.lamp", AlarmKind.DISCRETE, AlarmPriority.LOW, area="lighting")


class StoreJournal:
    """The journal in the historian."""

    def __init__(self, store: SqlHistorian) -> None:
        self.store = store

    def record(self, event: Event) -> None:
        """Journal ``event``."""
        self.store.journal_event(event)


class FakeCommands:
    """Select-before-operate with a pipeline's answers: read-only tags refused, values above
    the tag's high limit rejected (and journaled in the historian), the rest confirmed."""

    def __init__(self, store: SqlHistorian) -> None:
        self.store = store
        self.selections: dict[str, Selection] = {}
        self.held: list[Override] = []
        self.lock = threading.Lock()

    def select(self, tag: str, user: User) -> Selection:
        """Reserve a writable tag."""
        found = next((t for t in TAGS if t.name == tag), None)
        if found is None or not found.writable:
            raise SelectionRefusedError(f"{tag} is unknown or read-only")
        if user.areas and "water" not in user.areas and tag.startswith("water."):
            raise PermissionError(f"{user.name} may not command the water area")
        selection = Selection(
            f"sel-{len(self.selections) + 1}",
            tag,
            user.name,
            FixedLive().samples.get(tag),
            CommandLimits.of(found),
            None,
            WHEN,
            WHEN + timedelta(seconds=30),
        )
        with self.lock:
            self.selections[selection.selection_id] = selection
        return selection

    def operate(
        self,
        selection_id: str,
        user: User,
        value: ModelValue,
        reason: str,
        *,
        until: datetime | None = None,
    ) -> CommandResult:
        """Operate, with a rejection above 1 for a boolean pump command given as a number."""
        with self.lock:
            selection = self.selections.get(selection_id)
            if selection is None or selection.user != user.name:
                raise SelectionRefusedError(f"no selection {selection_id} of {user.name}")
            del self.selections[selection_id]
        command = Command(
            selection.tag,
            value,
            CommandOrigin.OPERATOR,
            user.name,
            reason,
            WHEN,
            CommandPriority.MANUAL_OPERATOR,
        )
        if not isinstance(value, bool):
            result = CommandResult(command, CommandStatus.REJECTED, "not a boolean", WHEN)
        else:
            result = CommandResult(command, CommandStatus.CONFIRMED, "read back", WHEN, value)
            self.held.append(Override(selection.tag, value, user.name, reason, WHEN, until))
        self.store.journal_command(result)
        return result

    def cancel(self, selection_id: str, user: User) -> None:
        """Give a selection up."""
        with self.lock:
            selection = self.selections.get(selection_id)
            if selection is None or selection.user != user.name:
                raise SelectionRefusedError(f"no selection {selection_id} of {user.name}")
            del self.selections[selection_id]

    def release(self, tag: str, user: User, reason: str) -> CommandResult | None:
        """Release an override."""
        if not any(o.tag == tag for o in self.held):
            raise LookupError(f"{tag} has no active override")
        self.held = [o for o in self.held if o.tag != tag]
        return None

    def overrides(self) -> list[Override]:
        """Active overrides."""
        return list(self.held)


class FakeRules:
    """Rule versions in a list; apply stores and activates at once."""

    def __init__(self) -> None:
        self.stored: list[RuleVersion] = [
            RuleVersion(
                1,
                WHEN,
                "erik",
                "first",
                (RuleSource("water.yaml", "rules: []\n"),),
                RuleVersionStatus.ACTIVE,
            )
        ]
        self.jobs: dict[str, BacktestJob] = {}

    def running_version(self) -> RuleVersion | None:
        """The active version."""
        return next((v for v in self.stored if v.status is RuleVersionStatus.ACTIVE), None)

    def versions(self) -> list[RuleVersion]:
        """Every version."""
        return list(self.stored)

    def version(self, number: int) -> RuleVersion:
        """One version."""
        for found in self.stored:
            if found.version == number:
                return found
        raise UnknownRuleVersionError(number)

    def diff(self, older: int, newer: int) -> str:
        """A diff of the two."""
        a, b = self.version(older), self.version(newer)
        return "".join(
            difflib.unified_diff(
                a.sources[0].text.splitlines(True), b.sources[0].text.splitlines(True)
            )
        )

    def live_states(self) -> list[RuleLiveState]:
        """One rule."""
        return [RuleLiveState("pump_night", True, "erik", None, WHEN, WHEN, "pump1 off")]

    def validate(self, user: User, sources: Sequence[RuleSource]) -> tuple[str, ...]:
        """Files that say ``bad`` are invalid."""
        require(user, Permission.EDIT_RULES)
        return tuple(f"{s.name}:1:1: bad rule" for s in sources if "bad" in s.text)

    def start_backtest(
        self, user: User, sources: Sequence[RuleSource], start: datetime, end: datetime
    ) -> BacktestJob:
        """A job done at once."""
        require(user, Permission.EDIT_RULES)
        if start >= end:
            raise ValueError("start must be before end")
        job = BacktestJob(
            f"job-{len(self.jobs) + 1}", user.name, start, end, BacktestJobStatus.DONE, 1.0, "ok"
        )
        self.jobs[job.job_id] = job
        return job

    def backtest(self, user: User, job_id: str) -> BacktestJob:
        """A started job."""
        require(user, Permission.EDIT_RULES)
        return self.jobs[job_id]

    def apply(self, user: User, sources: Sequence[RuleSource], reason: str) -> RuleApplyOutcome:
        """Store and activate valid files."""
        require(user, Permission.APPLY_RULES)
        problems = self.validate(user, sources)
        if problems:
            return RuleApplyOutcome(None, problems)
        self.stored = [
            replace(v, status=RuleVersionStatus.SUPERSEDED)
            if v.status is RuleVersionStatus.ACTIVE
            else v
            for v in self.stored
        ]
        added = RuleVersion(
            len(self.stored) + 1,
            WHEN,
            user.name,
            reason,
            tuple(sources),
            RuleVersionStatus.ACTIVE,
            decided_at=WHEN,
        )
        self.stored.append(added)
        return RuleApplyOutcome(added)

    def rollback(self, user: User, version: int, reason: str) -> RuleApplyOutcome:
        """Apply an earlier version's files again."""
        require(user, Permission.APPLY_RULES)
        return self.apply(user, self.version(version).sources, f"rollback: {reason}")


class FixedDevices:
    """Two devices, one failing."""

    def diagnostics(self) -> list[ScanDiagnostics]:
        """One entry per device."""
        return [
            ScanDiagnostics("rtu1", True, 100, 99, 0, WHEN, "", 3.0, 5.0, connected=True),
            ScanDiagnostics("ctrl1", False, 100, 50, 50, None, "timeout", 0.0, 0.0, reconnects=2),
        ]


@dataclass
class CenterKit(ApiKit):
    """The API over a real SQLite historian, alarm service and user administration."""

    store: SqlHistorian = field(default=cast(SqlHistorian, None))
    alarms: AlarmService = field(default=cast(AlarmService, None))
    commands: FakeCommands = field(default=cast(FakeCommands, None))
    rules: FakeRules = field(default_factory=FakeRules)
    app: Any = None

    def post(self, path: str, token: str, body: object) -> Any:
        """POST JSON with a bearer token."""
        return self.client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})

    def call(self, method: str, path: str, token: str, body: object | None = None) -> Any:
        """Any method with a bearer token."""
        return self.client.open(
            path, method=method, json=body, headers={"Authorization": f"Bearer {token}"}
        )


def center_kit(tmp_path: Path, **more: Any) -> CenterKit:
    """The API over a small center: tank level history for the last two hours (one value a
    minute, ramping), two active alarms, one user per role, fake commands, rules and devices."""
    users = UserStore(tmp_path / "users.json", hasher=PasswordHasher.from_parameters(CHEAPEST))
    for role, name in USERS.items():
        users.add_user(name, PASSWORD, role)
    users.add_user("mona", PASSWORD, Role.MAINTENANCE)
    tokens = TokenStore(tmp_path / "tokens.sqlite", users)
    store = SqlHistorian(f"sqlite:///{tmp_path / 'center.db'}")
    store.ensure_tags(TAGS)
    now = datetime.now(UTC).replace(microsecond=0)
    store.write_samples(
        [
            Sample(
                "water.tank1.level",
                1.0 + minute / 60,
                Quality.good(),
                now - timedelta(minutes=120 - minute),
                now - timedelta(minutes=120 - minute),
            )
            for minute in range(120)
        ]
    )
    journal = StoreJournal(store)
    alarms = AlarmService((HIGH, LAMP), store, journal, WallClock())
    alarms.restore()
    alarms.apply_conditions(
        [
            ConditionChange(HIGH.name, now, True, None, 4.6, "level high", "above 4"),
            ConditionChange(LAMP.name, now, True, None, True, "lamp failed", ""),
        ]
    )
    commands = FakeCommands(store)
    rules = FakeRules()
    services = ApiServices(
        live=FixedLive(),
        history=HistoryQueries(store),
        journal=journal,
        tokens=tokens,
        site_name="Testville",
        areas=AREAS,
        alarms=alarms,
        alarm_journal=store,
        commands=commands,
        devices=FixedDevices(),
        rules=rules,
        users=UserAdministrationService(users, journal),
        rate=RatePolicy(rate_per_s=1000, burst=1000),
        **more,
    )
    app = create_api(services)
    return CenterKit(
        app.test_client(),
        tokens,
        ListJournal(),
        store=store,
        alarms=alarms,
        commands=commands,
        rules=rules,
        app=app,
    )


def audit_messages(store: SqlHistorian) -> list[str]:
    """The API's journaled refusals."""
    return [e.message for e in store.read_events(kind=EventKind.AUDIT, source="api")]
