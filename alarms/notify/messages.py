"""What a notification says: one alarm, or the summary of a flood; rendered as plain text (e-mail)
or JSON (webhooks).

Alarm messages, values and names come from configuration and from the field; both are treated as
untrusted text here: control characters never reach a mail header, and JSON is built by the
encoder, never by string pasting.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from controlcenter.automation import AlarmDisplayState, AlarmGuidance, AlarmPriority
from controlcenter.model import Value

SUMMARY_FIRST_ALARMS = 10
"""How many alarms a flood summary names one by one."""

_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_BODY_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029\x85]+")
_MAX_TEXT = 2000


def header_text(text: str, limit: int = 200) -> str:
    """``text`` fit for a mail header: every control character (CR and LF above all, which would
    start a new header) becomes a space, and the length is bounded."""
    cleaned = _HEADER_UNSAFE.sub(" ", text).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def body_text(text: str) -> str:
    """``text`` fit for one line of a plain-text body: control characters and line breaks become
    spaces (a value cannot forge extra lines), and the length is bounded."""
    cleaned = _BODY_UNSAFE.sub(" ", text).replace("\n", " ").strip()
    return cleaned if len(cleaned) <= _MAX_TEXT else cleaned[: _MAX_TEXT - 1] + "…"


def priority_name(priority: AlarmPriority) -> str:
    """The priority as operators say it: critical, high, medium, low."""
    return priority.name.lower()


@dataclass(frozen=True, slots=True)
class AlarmNotice:
    """One alarm as notified to one on-call group."""

    alarm: str
    priority: AlarmPriority
    area: str
    state: AlarmDisplayState
    time: datetime
    """When the alarm became active (aware)."""
    value: Value | None
    message: str
    guidance: AlarmGuidance
    tag: str = ""
    device: str = ""
    route: str = ""
    level: int = 0
    """0: the route's first group; n: the n-th escalation."""
    escalated_after_s: float = 0.0


@dataclass(frozen=True, slots=True)
class FloodSummary:
    """Many alarms for one group within the flood window, sent as one message."""

    since: datetime
    until: datetime
    count: int
    by_priority: tuple[tuple[AlarmPriority, int], ...]
    first: tuple[AlarmNotice, ...]


@dataclass(frozen=True, slots=True)
class Notification:
    """A message for one on-call group, with the id that names it in journals and receivers."""

    event_id: str
    group: str
    content: AlarmNotice | FloodSummary
    created: datetime


def _value_text(value: Value | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat()
    return body_text(str(value))


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def subject(notification: Notification) -> str:
    """The e-mail subject line (already header-safe)."""
    content = notification.content
    if isinstance(content, FloodSummary):
        return header_text(
            f"[FLOOD] {content.count} alarms for {notification.group} since "
            f"{content.since:%H:%M:%S} UTC"
        )
    escalation = " (escalated)" if content.level else ""
    area = f" ({content.area})" if content.area else ""
    text = content.message or content.alarm
    return header_text(
        f"[{priority_name(content.priority).upper()}] {content.alarm}: {text}{area}{escalation}"
    )


def plain_text(notification: Notification, zone: ZoneInfo) -> str:
    """The e-mail body: the alarm, its priority, area, value, time in the site's zone and the
    guidance of the master alarm database (ISA-18.2 rationalization: cause, consequence,
    corrective action)."""
    content = notification.content
    if isinstance(content, FloodSummary):
        return _summary_text(notification, content, zone)
    lines = [
        f"Alarm:       {body_text(content.alarm)}",
        f"State:       {content.state.value}",
        f"Priority:    {priority_name(content.priority)}",
        f"Area:        {body_text(content.area) or '-'}",
        f"Value:       {_value_text(content.value)}",
        f"Time:        {_local(content.time, zone)}",
        f"Message:     {body_text(content.message) or '-'}",
    ]
    if content.tag:
        lines.append(f"Tag:         {body_text(content.tag)}")
    if content.device:
        lines.append(f"Device:      {body_text(content.device)}")
    if content.level:
        lines.append(
            f"Escalation:  level {content.level}, unacknowledged for "
            f"{content.escalated_after_s:.0f} s (route {body_text(content.route)})"
        )
    guidance = content.guidance
    lines += [
        "",
        f"Cause:       {body_text(guidance.cause) or '-'}",
        f"Consequence: {body_text(guidance.consequence) or '-'}",
        f"Action:      {body_text(guidance.action) or '-'}",
        "",
        f"Group:       {body_text(notification.group)}",
        f"Event id:    {notification.event_id}",
    ]
    return "\n".join(lines) + "\n"


def _summary_text(notification: Notification, summary: FloodSummary, zone: ZoneInfo) -> str:
    counts = ", ".join(f"{priority_name(p)} {n}" for p, n in summary.by_priority)
    lines = [
        f"Alarm flood: {summary.count} new alarms for {body_text(notification.group)} between "
        f"{_local(summary.since, zone)} and {_local(summary.until, zone)}.",
        f"By priority: {counts}",
        "",
        f"The first {len(summary.first)}:",
    ]
    for notice in summary.first:
        lines.append(
            f"  {_local(notice.time, zone)}  {priority_name(notice.priority):<8}  "
            f"{body_text(notice.alarm)}  {body_text(notice.message)}  "
            f"value {_value_text(notice.value)}"
        )
    lines += ["", "See the alarm list for every alarm.", f"Event id: {notification.event_id}"]
    return "\n".join(lines) + "\n"


def _json_value(value: Value | None) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN or infinity; a broken sensor's value still reaches the receiver.
        return str(value)
    return value


def _notice_json(notice: AlarmNotice) -> dict[str, object]:
    return {
        "alarm": notice.alarm,
        "state": notice.state.value,
        "priority": priority_name(notice.priority),
        "priority_number": int(notice.priority),
        "area": notice.area,
        "value": _json_value(notice.value),
        "time": notice.time.isoformat(),
        "message": notice.message,
        "tag": notice.tag,
        "device": notice.device,
        "guidance": {
            "cause": notice.guidance.cause,
            "consequence": notice.guidance.consequence,
            "action": notice.guidance.action,
        },
    }


def json_payload(notification: Notification) -> Mapping[str, object]:
    """The webhook document: for an alarm its name, state, priority, area, value, time (ISO
    8601 with offset), guidance and the event id; for a flood the counts and first alarms."""
    content = notification.content
    common: dict[str, object] = {
        "event_id": notification.event_id,
        "group": notification.group,
        "sent_at": notification.created.isoformat(),
    }
    if isinstance(content, FloodSummary):
        return common | {
            "type": "flood_summary",
            "since": content.since.isoformat(),
            "until": content.until.isoformat(),
            "count": content.count,
            "by_priority": {priority_name(p): n for p, n in content.by_priority},
            "first": [_notice_json(notice) for notice in content.first],
        }
    return (
        common
        | {"type": "alarm"}
        | _notice_json(content)
        | {"route": content.route, "escalation_level": content.level}
    )


def json_body(notification: Notification) -> bytes:
    """The exact bytes posted (and signed): compact, key-sorted, ASCII-escaped JSON."""
    return json.dumps(
        json_payload(notification), separators=(",", ":"), sort_keys=True, allow_nan=False
    ).encode("ascii")
