"""Alarms: the list, one alarm with its guidance, and what people do to them (acknowledge,
reset, shelve, unshelve, out of service and back, comment) through the alarm service.

The service decides and journals: its refusals answer 403 (role or area), 404 (unknown
alarm) or 409 (the alarm's state does not allow the action, or the text is unusable).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from flask_openapi3.openapi import OpenAPI
from pydantic import BaseModel, Field
from werkzeug.exceptions import Conflict, NotFound

from alarms.states import AlarmActionError
from controlcenter.api.app import available
from controlcenter.api.auth import require
from controlcenter.api.problems import problems
from controlcenter.api.routes.common import MAX_NAME, MAX_TEXT, Query, blueprint, dump
from controlcenter.api.services import ApiServices
from controlcenter.automation import (
    AlarmDef,
    AlarmDisplayState,
    AlarmPriority,
    AlarmState,
    AlarmTransition,
)
from controlcenter.permissions import Permission
from controlcenter.ports import AlarmOperations

MAX_ALARMS = 1000
"""Alarms one acknowledgement may name."""
MAX_SHELVE_S = 30 * 86400.0

T = TypeVar("T")

PRIORITY_NAMES = {p: p.name.lower() for p in AlarmPriority}


class PriorityName(StrEnum):
    """An alarm priority by name."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class AlarmQuery(Query):
    """Which alarms: an area, a priority, display states, only active ones."""

    area: str = Field("", max_length=MAX_NAME)
    priority: PriorityName | None = Field(None, description="That priority or more urgent")
    state: list[AlarmDisplayState] = Field(
        default_factory=list, max_length=8, description="Display states (repeat the parameter)"
    )
    active: bool = False


class AlarmPath(BaseModel):
    """One alarm by name."""

    name: str = Field(max_length=MAX_NAME)


class AlarmInfo(BaseModel):
    """One alarm and its state."""

    name: str
    priority: str
    state: str = Field(description="The display state (ISA-18.2)")
    active: bool
    acknowledged: bool
    tag: str
    device: str
    area: str
    asset: str
    message: str
    value: bool | int | float | str | None = None
    activated_at: datetime | None = None
    changed_at: datetime | None = None
    shelved_by: str = ""
    shelve_reason: str = ""
    shelved_until: datetime | None = None
    one_shot: bool = False
    out_of_service_by: str = ""
    out_of_service_reason: str = ""
    suppressed_reason: str = ""


class Guidance(BaseModel):
    """What the master alarm database tells the operator."""

    cause: str
    consequence: str
    action: str


class AlarmDetail(AlarmInfo):
    """One alarm with its guidance and limit."""

    guidance: Guidance
    limit: float | None = None
    kind: str


class AlarmList(BaseModel):
    """Alarms, the most urgent first."""

    alarms: list[AlarmInfo]


class TransitionInfo(BaseModel):
    """One change of an alarm: what, when, who and why, and the states around it."""

    time: datetime
    alarm: str
    action: str
    before: str
    after: str
    user: str = ""
    comment: str = ""
    priority: str
    area: str = ""
    tag: str = ""


class TransitionList(BaseModel):
    """The changes an action made."""

    transitions: list[TransitionInfo]


class AcknowledgeResult(TransitionList):
    """The changes an acknowledgement made, and the alarms that had nothing to acknowledge."""

    refused: list[str]


class AcknowledgeBody(BaseModel):
    """Alarms to acknowledge, with a comment."""

    alarms: list[str] = Field(min_length=1, max_length=MAX_ALARMS)
    comment: str = Field("", max_length=MAX_TEXT)


class CommentBody(BaseModel):
    """A comment."""

    comment: str = Field(min_length=1, max_length=MAX_TEXT)


class OptionalComment(BaseModel):
    """An optional comment."""

    comment: str = Field("", max_length=MAX_TEXT)


class ShelveBody(BaseModel):
    """Shelve for ``duration_s`` seconds, or ``one_shot`` until the alarm next clears."""

    reason: str = Field(min_length=1, max_length=MAX_TEXT)
    duration_s: float | None = Field(None, gt=0, le=MAX_SHELVE_S)
    one_shot: bool = False


class ReasonBody(BaseModel):
    """Why (journaled)."""

    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class OptionalReason(BaseModel):
    """Why (journaled), optional."""

    reason: str = Field("", max_length=MAX_TEXT)


def alarm_info(definition: AlarmDef, state: AlarmState) -> dict[str, Any]:
    """The fields of an alarm's document."""
    value = state.value
    if isinstance(value, datetime):
        value = value.isoformat()
    return {
        "name": definition.name,
        "priority": PRIORITY_NAMES[definition.priority],
        "state": state.display.value,
        "active": state.active,
        "acknowledged": state.acknowledged,
        "tag": definition.tag,
        "device": definition.device,
        "area": definition.area,
        "asset": definition.asset,
        "message": state.message or definition.message,
        "value": value,
        "activated_at": state.activated_at,
        "changed_at": state.changed_at,
        "shelved_by": state.shelved_by,
        "shelve_reason": state.shelve_reason,
        "shelved_until": state.shelved_until,
        "one_shot": state.one_shot,
        "out_of_service_by": state.out_of_service_by,
        "out_of_service_reason": state.out_of_service_reason,
        "suppressed_reason": state.suppressed_reason,
    }


def transition_info(transition: AlarmTransition) -> TransitionInfo:
    """The document of one transition."""
    return TransitionInfo(
        time=transition.time,
        alarm=transition.alarm,
        action=transition.action.value,
        before=transition.before.value,
        after=transition.after.value,
        user=transition.user,
        comment=transition.comment,
        priority=PRIORITY_NAMES[transition.priority],
        area=transition.area,
        tag=transition.tag,
    )


def serviced(call: Callable[[], T]) -> T:
    """Run an alarm service call, its refusals as HTTP errors (PermissionError passes on to
    the app's 403 handler)."""
    try:
        return call()
    except KeyError as err:
        raise NotFound(str(err)) from err
    except (AlarmActionError, ValueError) as err:
        raise Conflict(str(err)) from err


def register(api: OpenAPI, services: ApiServices) -> None:
    """Add the alarm endpoints."""
    bp = blueprint("alarms", "Alarms (ISA-18.2): list, guidance, acknowledge, shelve, service")
    acting = problems(
        e404="No such alarm", e409="The alarm's state does not allow this, or the text is unusable"
    )

    def service() -> AlarmOperations:
        return available(services.alarms, "alarms")  # type: ignore[no-any-return]

    @bp.get("/alarms", responses={200: AlarmList})
    def list_alarms(query: AlarmQuery) -> dict[str, Any]:
        """Alarms, the most urgent first, by area, priority, display state and activity."""
        require(Permission.VIEW)
        priority = AlarmPriority[query.priority.name] if query.priority is not None else None
        displays = set(query.state) or None
        rows = service().states(
            area=query.area or None,
            priority=priority,
            displays=displays,
            active_only=query.active,
        )
        return dump(AlarmList(alarms=[AlarmInfo(**alarm_info(d, s)) for d, s in rows]))

    @bp.get("/alarms/<name>", responses={200: AlarmDetail, **problems(e404="No such alarm")})
    def one_alarm(path: AlarmPath) -> dict[str, Any]:
        """One alarm with its state, limit and guidance (cause, consequence, action)."""
        require(Permission.VIEW)
        alarms = service()
        definition = serviced(lambda: alarms.definition(path.name))
        state = serviced(lambda: alarms.state(path.name))
        guidance = definition.guidance
        return dump(
            AlarmDetail(
                **alarm_info(definition, state),
                guidance=Guidance(
                    cause=guidance.cause, consequence=guidance.consequence, action=guidance.action
                ),
                limit=definition.limit,
                kind=definition.kind.value,
            )
        )

    @bp.post("/alarms/acknowledge", responses={200: AcknowledgeResult, **acting})
    def acknowledge(body: AcknowledgeBody) -> dict[str, Any]:
        """Acknowledge alarms with a comment; alarms with nothing to acknowledge are listed
        in ``refused`` (an unknown alarm refuses the whole request: 404)."""
        user = require(Permission.ACKNOWLEDGE_ALARMS)
        alarms = service()
        outcome = serviced(lambda: alarms.acknowledge(body.alarms, user, body.comment))
        return dump(
            AcknowledgeResult(
                transitions=[transition_info(t) for t in outcome.transitions],
                refused=[str(err) for err in outcome.refused],
            )
        )

    def transitions(made: list[AlarmTransition]) -> dict[str, Any]:
        return dump(TransitionList(transitions=[transition_info(t) for t in made]))

    @bp.post("/alarms/<name>/reset", responses={200: TransitionList, **acting})
    def reset(path: AlarmPath, body: OptionalComment) -> dict[str, Any]:
        """Reset a latched alarm whose condition has cleared."""
        user = require(Permission.ACKNOWLEDGE_ALARMS)
        alarms = service()
        return transitions(serviced(lambda: alarms.reset(path.name, user, body.comment)))

    @bp.post("/alarms/<name>/comment", responses={200: TransitionList, **acting})
    def comment(path: AlarmPath, body: CommentBody) -> dict[str, Any]:
        """Write a comment in an alarm's journal."""
        user = require(Permission.ACKNOWLEDGE_ALARMS)
        alarms = service()
        return transitions(serviced(lambda: alarms.comment(path.name, user, body.comment)))

    @bp.post("/alarms/<name>/shelve", responses={200: TransitionList, **acting})
    def shelve(path: AlarmPath, body: ShelveBody) -> dict[str, Any]:
        """Shelve an alarm for ``duration_s`` (counted on the center's clock) or one-shot
        until it next clears; the alarm philosophy caps the duration (409 beyond it)."""
        user = require(Permission.SHELVE_ALARMS)
        alarms = service()
        until = (
            services.now() + timedelta(seconds=body.duration_s)
            if body.duration_s is not None
            else None
        )
        return transitions(
            serviced(
                lambda: alarms.shelve(
                    path.name, user, body.reason, until=until, one_shot=body.one_shot
                )
            )
        )

    @bp.post("/alarms/<name>/unshelve", responses={200: TransitionList, **acting})
    def unshelve(path: AlarmPath, body: OptionalReason) -> dict[str, Any]:
        """Take an alarm off its shelf."""
        user = require(Permission.SHELVE_ALARMS)
        alarms = service()
        return transitions(serviced(lambda: alarms.unshelve(path.name, user, body.reason)))

    @bp.post("/alarms/<name>/out-of-service", responses={200: TransitionList, **acting})
    def remove_from_service(path: AlarmPath, body: ReasonBody) -> dict[str, Any]:
        """Take an alarm out of service for maintenance."""
        user = require(Permission.REMOVE_ALARMS_FROM_SERVICE)
        alarms = service()
        return transitions(
            serviced(lambda: alarms.remove_from_service(path.name, user, body.reason))
        )

    @bp.post("/alarms/<name>/return-to-service", responses={200: TransitionList, **acting})
    def return_to_service(path: AlarmPath, body: OptionalReason) -> dict[str, Any]:
        """Return an alarm to service after maintenance."""
        user = require(Permission.REMOVE_ALARMS_FROM_SERVICE)
        alarms = service()
        return transitions(serviced(lambda: alarms.return_to_service(path.name, user, body.reason)))

    api.register_api(bp)
