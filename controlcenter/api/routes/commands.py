"""Commands through the one command pipeline: select-before-operate, cancel, manual overrides
and their release.

Two kinds of "no": a selection the pipeline refuses (unknown or read-only tag, held by someone
else, unknown, foreign or expired selection) is a 409 problem; an operate the pipeline takes and
then rejects (limits, interlock, rate) answers 200 with ``status: rejected`` and its reason,
journaled by the pipeline like every command.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import Response
from flask_openapi3.openapi import OpenAPI
from pydantic import AwareDatetime, BaseModel, Field
from werkzeug.exceptions import Conflict, ServiceUnavailable

from controlcenter.api.app import available
from controlcenter.api.auth import require
from controlcenter.api.problems import problems
from controlcenter.api.routes.common import MAX_NAME, MAX_TEXT, blueprint, dump
from controlcenter.api.routes.journal import CommandOutcome
from controlcenter.api.schemas import Value
from controlcenter.api.services import ApiServices
from controlcenter.model import Selection
from controlcenter.permissions import Permission
from controlcenter.ports import CommandOperations, SelectionRefusedError

T = TypeVar("T")


class SelectBody(BaseModel):
    """The point to select."""

    tag: str = Field(min_length=1, max_length=MAX_NAME)


class SelectionPath(BaseModel):
    """One selection by id."""

    selection_id: str = Field(max_length=100)


class TagPath(BaseModel):
    """One tag by name."""

    tag: str = Field(max_length=MAX_NAME)


class Limits(BaseModel):
    """What a command to the point must respect."""

    data_type: str
    low: float | None
    high: float | None
    unit: str
    max_step: float | None
    min_command_interval_s: float


class SelectionInfo(BaseModel):
    """A point reserved for the caller until ``expires_at``, and what an operate would act on."""

    selection_id: str
    tag: str
    user: str
    current: Value | None = Field(description="The latest value and quality, if any")
    limits: Limits
    blocking_interlock: str | None = Field(description="The interlock that would block now")
    selected_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, selection: Selection) -> SelectionInfo:
        """The document of ``selection``."""
        limits = selection.limits
        return cls(
            selection_id=selection.selection_id,
            tag=selection.tag,
            user=selection.user,
            current=Value.of(selection.current) if selection.current is not None else None,
            limits=Limits(
                data_type=limits.data_type.value,
                low=limits.low,
                high=limits.high,
                unit=limits.unit,
                max_step=limits.max_step,
                min_command_interval_s=limits.min_command_interval_s,
            ),
            blocking_interlock=selection.blocking_interlock,
            selected_at=selection.selected_at,
            expires_at=selection.expires_at,
        )


class OperateBody(BaseModel):
    """The value to write, why, and for a manual override until when (none: until released)."""

    value: bool | int | float | str
    reason: str = Field(min_length=1, max_length=MAX_TEXT)
    until: AwareDatetime | None = None


class ReleaseBody(BaseModel):
    """Why the override is released."""

    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class ReleaseResult(BaseModel):
    """What releasing did: the command that returned control to the next writer, if any."""

    tag: str
    result: CommandOutcome | None


class OverrideInfo(BaseModel):
    """An operator's manual override."""

    tag: str
    value: bool | int | float | str | None
    user: str
    reason: str
    since: datetime
    until: datetime | None
    priority: int


class OverrideList(BaseModel):
    """Every active manual override, ordered by tag."""

    overrides: list[OverrideInfo]


def _call(call: Callable[[], T]) -> T:
    """A pipeline call, its refusals as HTTP errors (PermissionError and SelectionRefusedError
    pass on to the app's 403 and 409 handlers)."""
    try:
        return call()
    except TimeoutError as err:
        raise ServiceUnavailable(str(err)) from err
    except (PermissionError, SelectionRefusedError):
        raise
    except (LookupError, ValueError) as err:
        raise Conflict(str(err).strip("'\"")) from err


def register(api: OpenAPI, services: ApiServices) -> None:
    """Add the command endpoints."""
    bp = blueprint("commands", "Select-before-operate and overrides, through the command pipeline")
    refused = problems(e409="The pipeline refuses the selection or the request")

    def pipeline() -> CommandOperations:
        return available(services.commands, "commands")  # type: ignore[no-any-return]

    @bp.post("/commands/selections", responses={201: SelectionInfo, **refused})
    def select(body: SelectBody) -> tuple[dict[str, Any], int]:
        """Select a point for the caller: current value, limits, the interlock that would
        block, and when the selection expires. 409 when the tag is unknown, read-only or held
        by someone else; 403 outside the caller's role or areas."""
        user = require(Permission.COMMAND)
        commands = pipeline()
        return dump(SelectionInfo.of(_call(lambda: commands.select(body.tag, user)))), 201

    @bp.post(
        "/commands/selections/<selection_id>/operate", responses={200: CommandOutcome, **refused}
    )
    def operate(path: SelectionPath, body: OperateBody) -> dict[str, Any]:
        """Operate the caller's selection. A command the pipeline rejects (limits,
        interlocks, rate) answers 200 with ``status: rejected`` and why, journaled; an
        unknown, foreign or expired selection is a 409 problem."""
        user = require(Permission.COMMAND)
        commands = pipeline()
        result = _call(
            lambda: commands.operate(
                path.selection_id, user, body.value, body.reason, until=body.until
            )
        )
        return dump(CommandOutcome.of(result))

    @bp.delete("/commands/selections/<selection_id>", responses={204: None, **refused})
    def cancel(path: SelectionPath) -> Response:
        """Give up the caller's selection (409 for an unknown or foreign one)."""
        user = require(Permission.COMMAND)
        commands = pipeline()
        _call(lambda: commands.cancel(path.selection_id, user))
        return Response(status=204)

    @bp.get("/commands/overrides", responses={200: OverrideList})
    def overrides() -> dict[str, Any]:
        """Every active manual override, ordered by tag."""
        require(Permission.VIEW)
        commands = pipeline()
        return dump(
            OverrideList(
                overrides=[
                    OverrideInfo(
                        tag=o.tag,
                        value=o.value if not isinstance(o.value, datetime) else o.value.isoformat(),
                        user=o.user,
                        reason=o.reason,
                        since=o.since,
                        until=o.until,
                        priority=int(o.priority),
                    )
                    for o in _call(commands.overrides)
                ]
            )
        )

    @bp.post("/commands/overrides/<tag>/release", responses={200: ReleaseResult, **refused})
    def release(path: TagPath, body: ReleaseBody) -> dict[str, Any]:
        """Release the manual override of a tag; the result of handing control back to the
        next writer, if one remains (409 when the tag has no override)."""
        user = require(Permission.COMMAND)
        commands = pipeline()
        result = _call(lambda: commands.release(path.tag, user, body.reason))
        return dump(
            ReleaseResult(
                tag=path.tag, result=CommandOutcome.of(result) if result is not None else None
            )
        )

    api.register_api(bp)
