"""Pure logic of notification routing: which routes an alarm takes, quiet hours, flood detection.

Nothing here does input or output; the notifier asks these questions and acts on the answers.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from controlcenter.automation import AlarmDef, AlarmPriority, NotificationRouteDef, OnCallGroupDef


class NotificationConfigError(ValueError):
    """The notification configuration cannot work (bad quiet hours, a route naming no group)."""


_QUIET_HOURS = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily stretch of local time, such as 22:00-07:00 (it may run past midnight)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """Read ``HH:MM-HH:MM``; raises NotificationConfigError for anything else."""
        match = _QUIET_HOURS.match(text)
        if match is None:
            raise NotificationConfigError(f"quiet hours {text!r}: expected HH:MM-HH:MM")
        start = time(int(match[1]), int(match[2]))
        end = time(int(match[3]), int(match[4]))
        if start == end:
            # Equal ends would mean either never or always: refuse the ambiguity.
            raise NotificationConfigError(f"quiet hours {text!r}: start and end are equal")
        return cls(start, end)

    def contains(self, moment: datetime, zone: ZoneInfo) -> bool:
        """Whether ``moment`` (aware) falls inside the quiet hours in ``zone``."""
        local = moment.astimezone(zone).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def end_after(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """The first end of the quiet hours after ``moment``, as an aware time in UTC terms of
        ``moment``'s zone (wall time in ``zone``, so daylight-saving changes are respected)."""
        local = moment.astimezone(zone)
        candidate = datetime.combine(local.date(), self.end, tzinfo=zone)
        if candidate <= local:
            candidate = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=zone)
        return candidate.astimezone(moment.tzinfo)


@dataclass(frozen=True, slots=True)
class Route:
    """A notification route with its groups resolved and its quiet hours parsed."""

    definition: NotificationRouteDef
    groups: tuple[OnCallGroupDef, ...]
    quiet_hours: QuietHours | None

    @property
    def name(self) -> str:
        """The route's name."""
        return self.definition.name

    def matches(self, alarm: AlarmDef) -> bool:
        """Whether alarms like ``alarm`` take this route: its area, and urgent enough."""
        areas = self.definition.areas
        if areas and alarm.area not in areas:
            return False
        # Priority 1 is the most urgent: "at max_priority or more urgent" is a smaller number.
        return alarm.priority <= self.definition.max_priority

    def holds(self, priority: AlarmPriority, moment: datetime, zone: ZoneInfo) -> bool:
        """Whether an alarm of ``priority`` waits for the quiet hours to end at ``moment``."""
        if self.quiet_hours is None or priority < self.definition.quiet_below:
            return False
        return self.quiet_hours.contains(moment, zone)


def resolve_routes(
    groups: Sequence[OnCallGroupDef], routes: Sequence[NotificationRouteDef]
) -> tuple[Route, ...]:
    """Check the routes against the groups; raises NotificationConfigError naming the fault."""
    by_name: dict[str, OnCallGroupDef] = {}
    for group in groups:
        if group.name in by_name:
            raise NotificationConfigError(f"on-call group {group.name!r} is defined twice")
        by_name[group.name] = group
    resolved: list[Route] = []
    for route in routes:
        if not route.groups:
            raise NotificationConfigError(f"route {route.name!r} names no group")
        missing = [name for name in route.groups if name not in by_name]
        if missing:
            raise NotificationConfigError(
                f"route {route.name!r} names unknown on-call group(s): {', '.join(missing)}"
            )
        if route.escalate_after_s <= 0:
            raise NotificationConfigError(
                f"route {route.name!r}: escalate_after must be positive, "
                f"not {route.escalate_after_s}"
            )
        quiet = QuietHours.parse(route.quiet_hours) if route.quiet_hours.strip() else None
        resolved.append(Route(route, tuple(by_name[name] for name in route.groups), quiet))
    return tuple(resolved)


class FloodGate:
    """Counts new notifications per group over a sliding window: past ``threshold`` of them
    within ``window_s`` the group is in a flood, and further alarms go into one summary
    (EEMUA 191 counts a flood from 10 alarms in 10 minutes per operator; a person on call
    reading a phone is flooded sooner, hence a shorter default window)."""

    def __init__(self, threshold: int, window_s: float) -> None:
        if threshold < 1:
            raise NotificationConfigError(f"flood threshold must be at least 1, not {threshold}")
        if window_s <= 0:
            raise NotificationConfigError(f"flood window must be positive, not {window_s}")
        self._threshold = threshold
        self._window = timedelta(seconds=window_s)
        self._recent: dict[str, deque[datetime]] = {}

    @property
    def window(self) -> timedelta:
        """The sliding window."""
        return self._window

    def admit(self, group: str, now: datetime) -> bool:
        """Count one new notification for ``group``: True while it may go out on its own,
        False once more than ``threshold`` arrived within the window (a flood)."""
        recent = self._recent.setdefault(group, deque())
        horizon = now - self._window
        while recent and recent[0] <= horizon:
            recent.popleft()
        recent.append(now)
        return len(recent) <= self._threshold
