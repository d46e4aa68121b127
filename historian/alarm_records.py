"""Alarm states, the alarm journal and the alarm request queue as rows (schema version 5).

``SqlHistorian`` calls these inside its own transactions; they convert between the frozen
values of the vocabulary and the rows of ``historian.schema``, and refuse what a database
cannot hold (naive times, NUL characters, NaN values) before anything is written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, select, update

from controlcenter.model import Event, EventKind, Value
from controlcenter.ports import (
    AlarmAction,
    AlarmDisplayState,
    AlarmPriority,
    AlarmRequest,
    AlarmRequestStatus,
    AlarmState,
    AlarmTransition,
    UnknownAlarmRequestError,
)
from historian.errors import StorageError
from historian.schema import alarm_journal, alarm_requests, event_journal
from historian.values import (
    ValueMismatchError,
    check_storable_text,
    decode_typed_value,
    encode_typed_value,
    storable_text,
)

ALARM_EVENT_SEVERITY = {1: 900, 2: 700, 3: 500, 4: 300}
"""Event severity (OPC UA Part 5: 1..1000) of an alarm event by alarm priority."""

MAX_ALARMS_PER_REQUEST = 1000
"""Alarm names one queued request may carry."""


class AlarmRecordError(ValueError):
    """An alarm state, transition or request the database could not hold as it is."""


# --- alarm states -----------------------------------------------------------------------------


def state_row(state: AlarmState) -> dict[str, Any]:
    """The ``alarm_states`` row of ``state``; raises AlarmRecordError."""
    for name, moment in (
        ("shelved_until", state.shelved_until),
        ("activated_at", state.activated_at),
        ("changed_at", state.changed_at),
    ):
        _require_aware(moment, f"alarm {state.name}: {name}")
    try:
        check_storable_text(state.name)
        value = None if state.value is None else encode_typed_value(state.value)
    except ValueMismatchError as err:
        raise AlarmRecordError(f"alarm {state.name!r}: {err}") from err
    return {
        "name": state.name,
        "active": state.active,
        "acknowledged": state.acknowledged,
        "latched": state.latched,
        "shelved_by": storable_text(state.shelved_by),
        "shelve_reason": storable_text(state.shelve_reason),
        "shelved_until": state.shelved_until,
        "one_shot": state.one_shot,
        "suppressed": state.suppressed,
        "suppressed_reason": storable_text(state.suppressed_reason),
        "out_of_service_by": storable_text(state.out_of_service_by),
        "out_of_service_reason": storable_text(state.out_of_service_reason),
        "activated_at": state.activated_at,
        "changed_at": state.changed_at,
        "value": value,
        "message": storable_text(state.message),
    }


def state_from_row(row: RowMapping) -> AlarmState:
    """The AlarmState stored in an ``alarm_states`` row; raises StorageError if damaged."""
    try:
        value = None if row["value"] is None else decode_typed_value(row["value"])
    except ValueError as err:
        raise StorageError(f"stored state of alarm {row['name']!r} is damaged: {err}") from err
    return AlarmState(
        name=row["name"],
        active=bool(row["active"]),
        acknowledged=bool(row["acknowledged"]),
        latched=bool(row["latched"]),
        shelved_by=row["shelved_by"],
        shelve_reason=row["shelve_reason"],
        shelved_until=row["shelved_until"],
        one_shot=bool(row["one_shot"]),
        suppressed=bool(row["suppressed"]),
        suppressed_reason=row["suppressed_reason"],
        out_of_service_by=row["out_of_service_by"],
        out_of_service_reason=row["out_of_service_reason"],
        activated_at=row["activated_at"],
        changed_at=row["changed_at"],
        value=value,
        message=row["message"],
    )


# --- the alarm journal --------------------------------------------------------------------------


def transition_row(transition: AlarmTransition) -> dict[str, Any]:
    """The ``alarm_journal`` row of ``transition``; raises AlarmRecordError."""
    _require_aware(transition.time, f"transition of alarm {transition.alarm}: time")
    try:
        check_storable_text(transition.alarm)
        value = None if transition.value is None else encode_typed_value(transition.value)
    except ValueMismatchError as err:
        raise AlarmRecordError(f"transition of alarm {transition.alarm!r}: {err}") from err
    return {
        "time": transition.time,
        "alarm": transition.alarm,
        "action": transition.action.value,
        "before": transition.before.value,
        "after": transition.after.value,
        "user_name": storable_text(transition.user),
        "comment": storable_text(transition.comment),
        "priority": int(transition.priority),
        "area": storable_text(transition.area),
        "tag": storable_text(transition.tag),
        "device": storable_text(transition.device),
        "value": value,
    }


def transition_event_row(transition: AlarmTransition) -> dict[str, Any]:
    """The ``event_journal`` row telling ``transition`` as an ALARM event, with its subject."""
    event = transition_event(transition)
    return {
        "time": event.time,
        "kind": event.kind.value,
        "source": event.source,
        "message": storable_text(event.message),
        "user_name": storable_text(event.user),
        "severity": event.severity,
        "tag": transition.tag or None,
        "device": transition.device or None,
        "area": transition.area or None,
    }


def transition_event(transition: AlarmTransition) -> Event:
    """An alarm transition as the event journal tells it: source the alarm, one line of text."""
    text = (
        f"{transition.action.value}: {transition.before.value} -> {transition.after.value}"
        f" (priority {int(transition.priority)})"
    )
    if transition.value is not None:
        text += f", value {_value_text(transition.value)}"
    if transition.user:
        text += f", by {transition.user}"
    if transition.comment:
        text += f": {transition.comment}"
    return Event(
        time=transition.time,
        kind=EventKind.ALARM,
        source=transition.alarm,
        message=text,
        user=transition.user,
        severity=ALARM_EVENT_SEVERITY.get(int(transition.priority), 500),
    )


def transition_from_row(row: RowMapping) -> AlarmTransition:
    """The AlarmTransition journaled in an ``alarm_journal`` row; raises StorageError if the
    row is damaged."""
    try:
        value = None if row["value"] is None else decode_typed_value(row["value"])
        return AlarmTransition(
            time=row["time"],
            alarm=row["alarm"],
            action=AlarmAction(row["action"]),
            before=AlarmDisplayState(row["before"]),
            after=AlarmDisplayState(row["after"]),
            user=row["user_name"],
            comment=row["comment"],
            priority=AlarmPriority(int(row["priority"])),
            area=row["area"],
            tag=row["tag"],
            device=row["device"],
            value=value,
        )
    except ValueError as err:
        raise StorageError(f"alarm journal row {row['id']} is damaged: {err}") from err


def journal_query(
    start: datetime | None,
    end: datetime | None,
    *,
    alarm: str | None,
    area: str | None,
    user: str | None,
) -> Select[Any]:
    """The alarm journal rows in [start, end], filtered (not yet ordered)."""
    _require_aware(start, "start")
    _require_aware(end, "end")
    query = select(alarm_journal)
    if start is not None:
        query = query.where(alarm_journal.c.time >= start)
    if end is not None:
        query = query.where(alarm_journal.c.time <= end)
    if alarm is not None:
        query = query.where(alarm_journal.c.alarm == alarm)
    if area is not None:
        query = query.where(alarm_journal.c.area == area)
    if user is not None:
        query = query.where(alarm_journal.c.user_name == user)
    return query


def write_transitions(conn: Connection, transitions: Sequence[AlarmTransition]) -> None:
    """Insert the journal and event rows of ``transitions`` (all converted before any insert)."""
    journal_rows = [transition_row(transition) for transition in transitions]
    event_rows = [transition_event_row(transition) for transition in transitions]
    if journal_rows:
        conn.execute(alarm_journal.insert(), journal_rows)
        conn.execute(event_journal.insert(), event_rows)


# --- the request queue ------------------------------------------------------------------------


def request_row(
    action: str,
    alarms: Sequence[str],
    user: str,
    text: str,
    requested_at: datetime,
    duration_s: float | None,
    one_shot: bool,
) -> dict[str, Any]:
    """The ``alarm_requests`` row of a new pending request; raises AlarmRecordError."""
    _require_aware(requested_at, "requested_at")
    if not alarms:
        raise AlarmRecordError("an alarm request names at least one alarm")
    if len(alarms) > MAX_ALARMS_PER_REQUEST:
        raise AlarmRecordError(
            f"an alarm request names at most {MAX_ALARMS_PER_REQUEST} alarms, not {len(alarms)}"
        )
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
        raise AlarmRecordError(f"a shelving duration must be positive, not {duration_s!r}")
    try:
        for item in (action, user, text, *alarms):
            check_storable_text(item)
    except ValueMismatchError as err:
        raise AlarmRecordError(str(err)) from err
    return {
        "requested_at": requested_at,
        "action": action,
        "alarms": json.dumps(list(alarms)),
        "user_name": user,
        "text": text,
        "duration_s": duration_s,
        "one_shot": one_shot,
        "status": AlarmRequestStatus.PENDING.value,
        "detail": "",
        "decided_at": None,
    }


def request_from_row(row: RowMapping) -> AlarmRequest:
    """The request of an ``alarm_requests`` row.

    A row written by something else than the command line (a forged or damaged one) still
    comes back as a request, with whatever names could be read, so that the center refuses it
    with a reason instead of failing on it at every poll.
    """
    try:
        decoded = json.loads(row["alarms"])
    except (TypeError, ValueError):
        decoded = None
    names = (
        tuple(decoded)
        if isinstance(decoded, list) and all(isinstance(name, str) for name in decoded)
        else ()
    )
    try:
        status = AlarmRequestStatus(row["status"])
    except ValueError:
        status = AlarmRequestStatus.REFUSED
    duration = row["duration_s"]
    return AlarmRequest(
        id=int(row["id"]),
        requested_at=row["requested_at"],
        action=str(row["action"]),
        alarms=names,
        user=str(row["user_name"]),
        text=str(row["text"]),
        duration_s=None if duration is None else float(duration),
        one_shot=bool(row["one_shot"]),
        status=status,
        detail=str(row["detail"]),
        decided_at=row["decided_at"],
    )


def select_request(conn: Connection, request_id: int) -> AlarmRequest:
    """One request; raises UnknownAlarmRequestError."""
    row = (
        conn.execute(select(alarm_requests).where(alarm_requests.c.id == request_id))
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise UnknownAlarmRequestError(request_id)
    return request_from_row(row)


def decide_request(
    conn: Connection,
    request_id: int,
    status: AlarmRequestStatus,
    detail: str,
    decided_at: datetime,
) -> None:
    """Record the outcome of a request; raises UnknownAlarmRequestError."""
    _require_aware(decided_at, "decided_at")
    result = conn.execute(
        update(alarm_requests)
        .where(alarm_requests.c.id == request_id)
        .values(status=status.value, detail=storable_text(detail), decided_at=decided_at)
    )
    if result.rowcount == 0:
        raise UnknownAlarmRequestError(request_id)


def _value_text(value: Value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _require_aware(moment: datetime | None, name: str) -> None:
    if moment is not None and moment.utcoffset() is None:
        raise AlarmRecordError(f"{name} must be timezone-aware, got {moment.isoformat()}")
