"""The journal: events (logins, rule changes, refusals, alarm events), commands with their
results, and alarm transitions, searchable by what, who, where and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_openapi3.openapi import OpenAPI
from pydantic import AwareDatetime, BaseModel, Field

from controlcenter.api.app import available
from controlcenter.api.auth import require
from controlcenter.api.routes.alarms import TransitionInfo, transition_info
from controlcenter.api.routes.common import MAX_NAME, Query, blueprint, dump, optional_window
from controlcenter.api.services import ApiServices
from controlcenter.model import CommandOrigin, CommandResult, EventKind
from controlcenter.permissions import Permission
from controlcenter.ports import AlarmJournalReader

MAX_ROWS = 10_000


class EventQuery(Query):
    """Which events: kind, source, user, and for alarm events tag, device and area; the
    newest ``limit`` of a window, oldest first."""

    kind: EventKind | None = None
    source: str = Field("", max_length=MAX_NAME)
    user: str = Field("", max_length=MAX_NAME)
    tag: str = Field("", max_length=MAX_NAME)
    device: str = Field("", max_length=MAX_NAME)
    area: str = Field("", max_length=MAX_NAME)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    limit: int = Field(500, ge=1, le=MAX_ROWS)


class CommandQuery(Query):
    """Which commands: tag, origin, requester; the newest ``limit`` of a window."""

    tag: str = Field("", max_length=MAX_NAME)
    origin: CommandOrigin | None = None
    user: str = Field("", max_length=MAX_NAME, description="who requested the command")
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    limit: int = Field(500, ge=1, le=MAX_ROWS)


class TransitionQuery(Query):
    """Which alarm transitions: alarm, area, user; the newest ``limit`` of a window."""

    alarm: str = Field("", max_length=MAX_NAME)
    area: str = Field("", max_length=MAX_NAME)
    user: str = Field("", max_length=MAX_NAME)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    limit: int = Field(500, ge=1, le=MAX_ROWS)


class EventInfo(BaseModel):
    """One journaled event."""

    time: datetime
    kind: str
    source: str
    message: str
    user: str
    severity: int


class EventList(BaseModel):
    """Events, oldest first."""

    events: list[EventInfo]


class CommandOutcome(BaseModel):
    """A command and what became of it (confirmed, rejected, timed_out, failed, overridden)."""

    command_id: str
    tag: str
    value: bool | int | float | str | None
    origin: str
    requested_by: str
    reason: str
    priority: int
    issued_at: datetime
    status: str
    status_reason: str
    completed_at: datetime
    readback: bool | int | float | str | None = None

    @classmethod
    def of(cls, result: CommandResult) -> CommandOutcome:
        """The document of ``result``."""
        command = result.command
        return cls(
            command_id=command.command_id,
            tag=command.tag,
            value=_plain(command.value),
            origin=command.origin.value,
            requested_by=command.requested_by,
            reason=command.reason,
            priority=int(command.priority),
            issued_at=command.issued_at,
            status=result.status.value,
            status_reason=result.reason,
            completed_at=result.completed_at,
            readback=_plain(result.readback),
        )


class CommandList(BaseModel):
    """Commands, oldest first."""

    commands: list[CommandOutcome]


class TransitionPage(BaseModel):
    """Alarm transitions, oldest first."""

    transitions: list[TransitionInfo]


def _plain(value: object) -> bool | int | float | str | None:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def register(api: OpenAPI, services: ApiServices) -> None:
    """Add the journal endpoints."""
    bp = blueprint("journal", "The journal: events, commands and alarm transitions")

    @bp.get("/journal/events", responses={200: EventList})
    def events(query: EventQuery) -> dict[str, Any]:
        """Journaled events of a window (default: all), the newest ``limit``, oldest first."""
        require(Permission.VIEW_JOURNAL)
        optional_window(query.start, query.end)
        rows = services.history.read_events(
            query.start,
            query.end,
            kind=query.kind,
            source=query.source or None,
            user=query.user or None,
            limit=query.limit,
            tag=query.tag or None,
            device=query.device or None,
            area=query.area or None,
        )
        return dump(
            EventList(
                events=[
                    EventInfo(
                        time=e.time,
                        kind=e.kind.value,
                        source=e.source,
                        message=e.message,
                        user=e.user,
                        severity=e.severity,
                    )
                    for e in rows
                ]
            )
        )

    @bp.get("/journal/commands", responses={200: CommandList})
    def commands(query: CommandQuery) -> dict[str, Any]:
        """Journaled commands with their results, the newest ``limit``, oldest first."""
        require(Permission.VIEW_JOURNAL)
        optional_window(query.start, query.end)
        rows = services.history.read_commands(
            query.start,
            query.end,
            tag=query.tag or None,
            origin=query.origin,
            requested_by=query.user or None,
            limit=query.limit,
        )
        return dump(CommandList(commands=[CommandOutcome.of(r) for r in rows]))

    @bp.get("/journal/alarms", responses={200: TransitionPage})
    def alarm_transitions(query: TransitionQuery) -> dict[str, Any]:
        """Journaled alarm transitions (who did what, why), the newest ``limit``."""
        require(Permission.VIEW_JOURNAL)
        optional_window(query.start, query.end)
        reader: AlarmJournalReader = available(services.alarm_journal, "an alarm journal")
        rows = reader.read_alarm_journal(
            query.start,
            query.end,
            alarm=query.alarm or None,
            area=query.area or None,
            user=query.user or None,
            limit=query.limit,
        )
        return dump(TransitionPage(transitions=[transition_info(t) for t in rows]))

    api.register_api(bp)
