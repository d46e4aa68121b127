"""Rules: the running set's live state, stored versions and their differences, applying a new
version or rolling back (journaled, with a reason), and backtests as jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask_openapi3.openapi import OpenAPI
from pydantic import AwareDatetime, BaseModel, Field
from werkzeug.exceptions import BadRequest, Conflict, NotFound

from controlcenter.api.app import available
from controlcenter.api.auth import require
from controlcenter.api.problems import problems
from controlcenter.api.routes.common import MAX_TEXT, Query, blueprint, dump
from controlcenter.api.services import ApiServices
from controlcenter.automation import RuleSource
from controlcenter.permissions import Permission
from controlcenter.ports import (
    BacktestJob,
    RuleApplyOutcome,
    RuleOperations,
    RuleVersion,
    UnknownRuleVersionError,
)

MAX_FILES = 100
MAX_FILE_CHARS = 1_000_000

T = TypeVar("T")


class SourceFile(BaseModel):
    """The full text of one rule file."""

    name: str = Field(min_length=1, max_length=200)
    text: str = Field(max_length=MAX_FILE_CHARS)


class RuleStateInfo(BaseModel):
    """What one rule of the running set is doing now."""

    name: str
    enabled: bool
    owner: str
    held: str | None = Field(description="Why the rule holds, or null while it acts")
    last_fired: datetime | None
    last_action_at: datetime | None
    last_action: str


class RuleList(BaseModel):
    """The running version and each of its rules' live state."""

    running_version: int | None
    rules: list[RuleStateInfo]


class VersionInfo(BaseModel):
    """One stored version of the rule set (without its files)."""

    version: int
    created_at: datetime
    author: str
    reason: str
    status: str = Field(description="pending, active, superseded or refused")
    detail: str
    decided_at: datetime | None
    files: list[str]


class VersionDetail(VersionInfo):
    """One stored version with the text of its files."""

    sources: list[SourceFile]


class VersionList(BaseModel):
    """Every stored version, oldest first."""

    versions: list[VersionInfo]


class VersionPath(BaseModel):
    """One version by number."""

    version: int = Field(ge=1, le=2**31)


class DiffQuery(Query):
    """Two versions."""

    older: int = Field(ge=1, le=2**31)
    newer: int = Field(ge=1, le=2**31)


class DiffInfo(BaseModel):
    """The unified diff of two versions, file by file."""

    older: int
    newer: int
    diff: str


class ApplyBody(BaseModel):
    """The rule files to run, and why."""

    sources: list[SourceFile] = Field(min_length=1, max_length=MAX_FILES)
    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class RollbackBody(BaseModel):
    """The earlier version to run again, and why."""

    version: int = Field(ge=1, le=2**31)
    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class ApplyResult(BaseModel):
    """Refused before anything was stored (``version`` null, ``problems`` say why), or the
    stored version with the center's decision (active, refused, or pending without answer)."""

    version: VersionInfo | None
    problems: list[str]


class BacktestBody(BaseModel):
    """Replay [start, end] of history through these files (or a stored version's)."""

    sources: list[SourceFile] | None = Field(None, min_length=1, max_length=MAX_FILES)
    version: int | None = Field(None, ge=1, le=2**31)
    start: AwareDatetime
    end: AwareDatetime


class JobPath(BaseModel):
    """One backtest job."""

    job_id: str = Field(max_length=100)


class BacktestInfo(BaseModel):
    """A backtest job: running, done (with its report) or failed (with why)."""

    job_id: str
    user: str
    start: datetime
    end: datetime
    status: str
    progress: float
    report: str
    error: str


def _version(version: RuleVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "created_at": version.created_at,
        "author": version.author,
        "reason": version.reason,
        "status": version.status.value,
        "detail": version.detail,
        "decided_at": version.decided_at,
        "files": [source.name for source in version.sources],
    }


def _job(job: BacktestJob) -> dict[str, Any]:
    return dump(
        BacktestInfo(
            job_id=job.job_id,
            user=job.user,
            start=job.start,
            end=job.end,
            status=job.status.value,
            progress=job.progress,
            report=job.report,
            error=job.error,
        )
    )


def _outcome(outcome: RuleApplyOutcome) -> dict[str, Any]:
    version = VersionInfo(**_version(outcome.version)) if outcome.version is not None else None
    return dump(ApplyResult(version=version, problems=list(outcome.problems)))


def _call(call: Callable[[], T]) -> T:
    try:
        return call()
    except UnknownRuleVersionError as err:
        raise NotFound(str(err)) from err
    except KeyError as err:
        raise NotFound(f"no backtest {err}") from err
    except ValueError as err:
        raise Conflict(str(err)) from err


def _sources(files: list[SourceFile]) -> tuple[RuleSource, ...]:
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise BadRequest("a file is named twice")
    return tuple(RuleSource(f.name, f.text) for f in files)


def register(api: OpenAPI, services: ApiServices) -> None:
    """Add the rule endpoints."""
    bp = blueprint("rules", "Rule sets: live state, versions, diff, apply, rollback, backtest")
    missing = problems(e404="No such version or job")
    unusable = problems(e409="The files, the version or the window are unusable")

    def rules() -> RuleOperations:
        return available(services.rules, "rules")  # type: ignore[no-any-return]

    @bp.get("/rules", responses={200: RuleList})
    def live_state() -> dict[str, Any]:
        """The running version and what each of its rules is doing now."""
        require(Permission.VIEW)
        ops = rules()
        running = ops.running_version()
        return dump(
            RuleList(
                running_version=running.version if running is not None else None,
                rules=[
                    RuleStateInfo(
                        name=s.name,
                        enabled=s.enabled,
                        owner=s.owner,
                        held=s.held,
                        last_fired=s.last_fired,
                        last_action_at=s.last_action_at,
                        last_action=s.last_action,
                    )
                    for s in ops.live_states()
                ],
            )
        )

    @bp.get("/rules/versions", responses={200: VersionList})
    def versions() -> dict[str, Any]:
        """Every stored version, oldest first (who, why, what became of it)."""
        require(Permission.VIEW)
        return dump(VersionList(versions=[VersionInfo(**_version(v)) for v in rules().versions()]))

    @bp.get("/rules/versions/<int:version>", responses={200: VersionDetail, **missing})
    def one_version(path: VersionPath) -> dict[str, Any]:
        """One stored version with the text of its files."""
        require(Permission.VIEW)
        ops = rules()
        found = _call(lambda: ops.version(path.version))
        return dump(
            VersionDetail(
                **_version(found),
                sources=[SourceFile(name=s.name, text=s.text) for s in found.sources],
            )
        )

    @bp.get("/rules/diff", responses={200: DiffInfo, **missing})
    def diff(query: DiffQuery) -> dict[str, Any]:
        """The unified diff of two stored versions, file by file."""
        require(Permission.VIEW)
        ops = rules()
        text = _call(lambda: ops.diff(query.older, query.newer))
        return dump(DiffInfo(older=query.older, newer=query.newer, diff=text))

    @bp.post("/rules/apply", responses={200: ApplyResult, **unusable})
    def apply(body: ApplyBody) -> dict[str, Any]:
        """Validate, store as a new version, ask the center to run it and report its answer
        (200 whether it was refused, stored and refused, or activated: see the body)."""
        user = require(Permission.APPLY_RULES)
        ops = rules()
        files = _sources(body.sources)
        return _outcome(_call(lambda: ops.apply(user, files, body.reason)))

    @bp.post("/rules/rollback", responses={200: ApplyResult, **missing, **unusable})
    def rollback(body: RollbackBody) -> dict[str, Any]:
        """Run an earlier version's files again, stored as a new version."""
        user = require(Permission.APPLY_RULES)
        ops = rules()
        return _outcome(_call(lambda: ops.rollback(user, body.version, body.reason)))

    @bp.post(
        "/rules/backtests",
        responses={
            202: BacktestInfo,
            **missing,
            **problems(e409="The files or window are unusable"),
        },
    )
    def start_backtest(body: BacktestBody) -> tuple[dict[str, Any], int]:
        """Start replaying a window of history through rule files (given, or a stored
        version's); answers the job at once, to be followed at ``/rules/backtests/{job_id}``."""
        user = require(Permission.EDIT_RULES)
        ops = rules()
        if (body.sources is None) == (body.version is None):
            raise BadRequest("give either sources or version")
        if body.sources is not None:
            files = _sources(body.sources)
        else:
            number = body.version or 0
            files = _call(lambda: ops.version(number)).sources
        job = _call(lambda: ops.start_backtest(user, files, body.start, body.end))
        return _job(job), 202

    @bp.get("/rules/backtests/<job_id>", responses={200: BacktestInfo, **missing})
    def backtest(path: JobPath) -> dict[str, Any]:
        """A backtest job as it stands: progress, then its report or why it failed."""
        user = require(Permission.EDIT_RULES)
        ops = rules()
        return _job(_call(lambda: ops.backtest(user, path.job_id)))

    api.register_api(bp)
