"""The alarm state machine of ISA-18.2 (figure 7) / IEC 62682, in the names of OPC UA Part 9.

``apply(definition, state, event, now)`` is pure: it takes one alarm's remembered state and one
event (a condition change from the engine, the clock, or a person's action) and returns the new
state with the transitions to journal, or raises ``AlarmActionError`` with a reason an operator
reads. A refused action changes nothing (states are immutable; nothing is returned).

The rules, after ISA-18.2 figure 7 (A normal, B unacknowledged, C acknowledged, D returned to
normal unacknowledged, E shelved, F suppressed by design, G out of service):

- The condition activating raises an unacknowledged alarm (A/C/D -> B). Clearing leaves it
  acknowledged-normal (C -> A) or returned-unacknowledged (B -> D); acknowledging a returned
  alarm returns it to normal (D -> A).
- A latching alarm whose condition clears stays *latched* until an operator resets it (the reset
  acknowledges it too); a latched alarm whose condition comes back is unacknowledged again.
- Shelving (timed, at most ``StatePolicy.max_shelve_s``, or one-shot: until the condition next
  clears), suppression by design and removal from service *hide* the alarm: its condition is
  still tracked and journaled, but it is never shown as unacknowledged and never notified.
  Hiding forgets the acknowledgement state; when the alarm is shown again it is re-annunciated
  as a new unacknowledged alarm if its condition is active, and is normal otherwise (figure 7:
  E/F/G -> A or B).
- A timed shelf ends at its expiry (``ShelfCheck`` or any later event), never before; a one-shot
  shelf ends when the condition clears.
- Every change, and every comment, is an ``AlarmTransition`` with the display states before and
  after, who and why; ``is_notifiable`` tells a notifier which of them annunciate an alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from controlcenter.automation import (
    AlarmAction,
    AlarmDef,
    AlarmDisplayState,
    AlarmState,
    AlarmTransition,
)
from controlcenter.model import Value

MAX_SHELVE_S: Final = 8 * 3600.0
"""The longest shelf by default: one shift (ISA-18.2 11.5: shelving is time-limited)."""

MAX_TEXT_CHARS: Final = 1000
"""The longest user name, reason or comment accepted by default."""

HIDDEN_STATES: Final = frozenset(
    {
        AlarmDisplayState.SHELVED,
        AlarmDisplayState.SUPPRESSED,
        AlarmDisplayState.OUT_OF_SERVICE,
    }
)
"""Display states in which an alarm is not annunciated (its condition is still tracked)."""


@dataclass(frozen=True, slots=True)
class StatePolicy:
    """Site limits of the state machine: the longest shelf and the longest text accepted."""

    max_shelve_s: float = MAX_SHELVE_S
    max_text_chars: int = MAX_TEXT_CHARS

    def __post_init__(self) -> None:
        """Refuse limits that would make every shelf or every comment impossible."""
        if not (math.isfinite(self.max_shelve_s) and self.max_shelve_s > 0):
            raise ValueError(f"max_shelve_s must be a positive number, not {self.max_shelve_s!r}")
        if self.max_text_chars < 1:
            raise ValueError(f"max_text_chars must be at least 1, not {self.max_text_chars!r}")


DEFAULT_POLICY: Final = StatePolicy()

_ALLOWED_WHITESPACE: Final = str.maketrans("\n\r\t", "   ")
"""Line breaks and tabs are allowed in comments; other control characters are refused."""


class AlarmActionError(Exception):
    """An action the alarm's state does not allow; ``reason`` is written for the operator."""

    def __init__(self, alarm: str, action: AlarmAction, reason: str) -> None:
        """Name the alarm, the refused action and why."""
        super().__init__(f"{alarm}: cannot {action.value.replace('_', ' ')}: {reason}")
        self.alarm = alarm
        self.action = action
        self.reason = reason


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConditionChanged:
    """The engine's verdict on the alarm's condition (after deadband and on/off delays)."""

    active: bool
    value: Value | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """An operator acknowledges the alarm (OPC UA Part 9 Acknowledge)."""

    user: str
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Reset:
    """An operator resets a latched alarm whose condition has cleared."""

    user: str
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Shelve:
    """An operator shelves the alarm until ``until`` or, ``one_shot``, until it next clears.

    Neither given: shelved for the policy's maximum (ISA-18.2: a shelf always ends)."""

    user: str
    reason: str
    until: datetime | None = None
    one_shot: bool = False


@dataclass(frozen=True, slots=True)
class Unshelve:
    """An operator takes the alarm off the shelf before it ends."""

    user: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ShelfCheck:
    """The clock: end a timed shelf whose time is up (nothing happens before)."""


@dataclass(frozen=True, slots=True)
class RemoveFromService:
    """Maintenance takes the alarm out of service (a reason is required)."""

    user: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReturnToService:
    """Maintenance returns the alarm to service."""

    user: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Suppression:
    """Suppression by design starts or ends (the alarm's or its area's expression, comm loss)."""

    suppressed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Comment:
    """Someone writes a comment in the alarm's journal; the state does not change."""

    user: str
    comment: str


AlarmEvent = (
    ConditionChanged
    | Acknowledge
    | Reset
    | Shelve
    | Unshelve
    | ShelfCheck
    | RemoveFromService
    | ReturnToService
    | Suppression
    | Comment
)
"""Everything that can happen to an alarm."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The alarm's state after an event, and the transitions to journal (oldest first)."""

    state: AlarmState
    transitions: tuple[AlarmTransition, ...]


# --- queries -----------------------------------------------------------------------------------


def is_hidden(display: AlarmDisplayState) -> bool:
    """Whether an alarm in this display state is kept from operators and notifiers."""
    return display in HIDDEN_STATES


def is_notifiable(transition: AlarmTransition) -> bool:
    """Whether the transition annunciates an alarm: it becomes unacknowledged and active.

    True for an activation seen by operators and for an active alarm shown again (shelf ended,
    suppression ended, returned to service); never for anything hidden (shelved, suppressed,
    out of service), for clears, acknowledgements or comments."""
    return (
        transition.after is AlarmDisplayState.UNACKNOWLEDGED
        and transition.before is not AlarmDisplayState.UNACKNOWLEDGED
    )


def shelf_expired(state: AlarmState, now: datetime) -> bool:
    """Whether a timed shelf is due to end at ``now``."""
    return state.shelved_until is not None and now >= state.shelved_until


# --- the machine -------------------------------------------------------------------------------


def apply(
    definition: AlarmDef,
    state: AlarmState,
    event: AlarmEvent,
    now: datetime,
    policy: StatePolicy = DEFAULT_POLICY,
) -> Outcome:
    """Apply one event to one alarm at ``now`` (time-zone aware); raise AlarmActionError if refused.

    A timed shelf whose time is up ends first (journaled at its expiry time), so no event ever
    sees a shelf past its end."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{definition.name}: the time of an alarm event must be time-zone aware")
    if state.name != definition.name:
        raise ValueError(
            f"alarm state {state.name!r} given with the definition of {definition.name!r}"
        )
    machine = _Machine(definition, state, policy)
    shelf_end = state.shelved_until
    if shelf_end is not None and now >= shelf_end:
        machine.end_shelf(shelf_end, "shelf expired")
    machine.handle(event, now)
    return Outcome(machine.state, tuple(machine.transitions))


class _Machine:
    """One application of events to one alarm, collecting the transitions."""

    def __init__(self, definition: AlarmDef, state: AlarmState, policy: StatePolicy) -> None:
        self.definition = definition
        self.state = state
        self.policy = policy
        self.transitions: list[AlarmTransition] = []

    # -- dispatch

    def handle(self, event: AlarmEvent, now: datetime) -> None:
        """Apply ``event`` (after any shelf expiry) to the state."""
        match event:
            case ConditionChanged():
                self.condition(event, now)
            case Acknowledge():
                self.acknowledge(event, now)
            case Reset():
                self.reset(event, now)
            case Shelve():
                self.shelve(event, now)
            case Unshelve():
                self.unshelve(event, now)
            case ShelfCheck():
                pass  # the expiry, if due, already happened in apply()
            case RemoveFromService():
                self.remove_from_service(event, now)
            case ReturnToService():
                self.return_to_service(event, now)
            case Suppression():
                self.suppression(event, now)
            case Comment():
                self.comment(event, now)

    # -- the bookkeeping every change shares

    def change(
        self,
        new: AlarmState,
        action: AlarmAction,
        time: datetime,
        *,
        user: str = "",
        comment: str = "",
        value: Value | None = None,
    ) -> None:
        """Move to ``new`` (normalised when it is hidden or shown again) and journal it."""
        before = self.state.display
        new = _normalise(self.state, new)
        if action is not AlarmAction.COMMENT:
            new = replace(new, changed_at=time)
        self.transitions.append(
            AlarmTransition(
                time=time,
                alarm=self.definition.name,
                action=action,
                before=before,
                after=new.display,
                user=user,
                comment=comment,
                priority=self.definition.priority,
                area=self.definition.area,
                tag=self.definition.tag,
                device=self.definition.device,
                value=value,
            )
        )
        self.state = new

    def refuse(self, action: AlarmAction, reason: str) -> AlarmActionError:
        """The error for a refused action (raised by the caller)."""
        return AlarmActionError(self.definition.name, action, reason)

    def text(self, action: AlarmAction, what: str, text: str, *, required: bool) -> str:
        """A user name, reason or comment, stripped; refused when missing or too long."""
        cleaned = text.strip()
        if required and not cleaned:
            raise self.refuse(action, f"a {what} is required")
        if len(cleaned) > self.policy.max_text_chars:
            raise self.refuse(
                action, f"the {what} is longer than {self.policy.max_text_chars} characters"
            )
        if not cleaned.translate(_ALLOWED_WHITESPACE).isprintable():
            raise self.refuse(action, f"the {what} contains control characters")
        return cleaned

    def user(self, action: AlarmAction, user: str) -> str:
        """The acting user's name (required for every person's action)."""
        name = self.text(action, "user name", user, required=True)
        if not name.isprintable():
            raise self.refuse(action, "the user name contains control characters")
        return name

    # -- the condition

    def condition(self, event: ConditionChanged, now: datetime) -> None:
        """Track the condition; annunciate or clear when the alarm is shown, silently when not."""
        state = self.state
        message = event.message.strip()
        if event.active == state.active:
            return  # the engine repeating itself (after a restart, say): nothing changes
        if event.active:
            visible = not is_hidden(state.display)
            new = replace(
                state,
                active=True,
                acknowledged=not visible,
                latched=False,
                activated_at=now,
                value=event.value,
                message=message or state.message,
            )
            self.change(new, AlarmAction.ACTIVATE, now, comment=message, value=event.value)
            return
        visible = not is_hidden(state.display)
        latch = visible and self.definition.latching
        self.change(
            replace(state, active=False, latched=latch),
            AlarmAction.CLEAR,
            now,
            comment=message,
            value=event.value,
        )
        if self.state.one_shot:
            # OPC UA Part 9 5.8.10: a one-shot shelf lasts until the alarm returns to normal.
            self.end_shelf(now, "one-shot shelf ended: the condition cleared")

    # -- operators' actions

    def acknowledge(self, event: Acknowledge, now: datetime) -> None:
        """Acknowledge an unacknowledged alarm (an active one, a returned one or a latched one)."""
        action = AlarmAction.ACKNOWLEDGE
        user = self.user(action, event.user)
        comment = self.text(action, "comment", event.comment, required=False)
        display = self.state.display
        if is_hidden(display):
            raise self.refuse(action, f"the alarm is {_words(display)}: nothing to acknowledge")
        if self.state.acknowledged:
            raise self.refuse(action, "the alarm is already acknowledged")
        self.change(replace(self.state, acknowledged=True), action, now, user=user, comment=comment)

    def reset(self, event: Reset, now: datetime) -> None:
        """Reset a latched alarm whose condition has cleared; the reset acknowledges it too."""
        action = AlarmAction.RESET
        user = self.user(action, event.user)
        comment = self.text(action, "comment", event.comment, required=False)
        display = self.state.display
        if is_hidden(display):
            raise self.refuse(action, f"the alarm is {_words(display)}: nothing to reset")
        if not self.state.latched:
            if self.state.active and self.definition.latching:
                raise self.refuse(action, "the condition is still active")
            raise self.refuse(action, "the alarm is not latched")
        new = replace(self.state, latched=False, acknowledged=True)
        self.change(new, action, now, user=user, comment=comment)

    def shelve(self, event: Shelve, now: datetime) -> None:
        """Shelve the alarm: timed (at most the policy's maximum) or one-shot."""
        action = AlarmAction.SHELVE
        user = self.user(action, event.user)
        reason = self.text(action, "reason", event.reason, required=True)
        if self.state.out_of_service:
            raise self.refuse(action, "the alarm is out of service")
        longest = timedelta(seconds=self.policy.max_shelve_s)
        until: datetime | None
        if event.one_shot:
            if event.until is not None:
                raise self.refuse(action, "a one-shot shelf has no end time")
            if not self.state.active:
                raise self.refuse(
                    action,
                    "a one-shot shelf ends when the condition clears, and it is not active: "
                    "shelve for a time instead",
                )
            until = None
        elif event.until is None:
            until = now + longest
        else:
            until = event.until
            if until.tzinfo is None or until.utcoffset() is None:
                raise self.refuse(action, "the end time has no time zone")
            if until <= now:
                raise self.refuse(action, "the end time is not in the future")
            if until - now > longest:
                raise self.refuse(
                    action, f"a shelf may last at most {_duration(self.policy.max_shelve_s)}"
                )
        # Shelving again replaces the shelf (a new end, or one-shot instead of timed).
        new = replace(
            self.state,
            shelved_by=user,
            shelve_reason=reason,
            shelved_until=until,
            one_shot=event.one_shot,
        )
        self.change(new, action, now, user=user, comment=reason)

    def unshelve(self, event: Unshelve, now: datetime) -> None:
        """Take the alarm off the shelf: an active one is annunciated again."""
        action = AlarmAction.UNSHELVE
        user = self.user(action, event.user)
        reason = self.text(action, "reason", event.reason, required=False)
        if not self.state.shelved:
            raise self.refuse(action, "the alarm is not shelved")
        self.change(_unshelved(self.state), action, now, user=user, comment=reason)

    def end_shelf(self, time: datetime, why: str) -> None:
        """End the shelf by itself (its time is up, or a one-shot shelf's condition cleared)."""
        self.change(_unshelved(self.state), AlarmAction.SHELF_EXPIRED, time, comment=why)

    def comment(self, event: Comment, now: datetime) -> None:
        """Journal a comment; the state is unchanged."""
        action = AlarmAction.COMMENT
        user = self.user(action, event.user)
        text = self.text(action, "comment", event.comment, required=True)
        self.change(self.state, action, now, user=user, comment=text)

    # -- maintenance and design

    def remove_from_service(self, event: RemoveFromService, now: datetime) -> None:
        """Take the alarm out of service: tracked silently until it returns."""
        action = AlarmAction.REMOVE_FROM_SERVICE
        user = self.user(action, event.user)
        reason = self.text(action, "reason", event.reason, required=True)
        if self.state.out_of_service:
            raise self.refuse(
                action, f"the alarm is already out of service (by {self.state.out_of_service_by})"
            )
        new = replace(self.state, out_of_service_by=user, out_of_service_reason=reason)
        self.change(new, action, now, user=user, comment=reason)

    def return_to_service(self, event: ReturnToService, now: datetime) -> None:
        """Return the alarm to service: an active one is annunciated again."""
        action = AlarmAction.RETURN_TO_SERVICE
        user = self.user(action, event.user)
        reason = self.text(action, "reason", event.reason, required=False)
        if not self.state.out_of_service:
            raise self.refuse(action, "the alarm is in service")
        new = replace(self.state, out_of_service_by="", out_of_service_reason="")
        self.change(new, action, now, user=user, comment=reason)

    def suppression(self, event: Suppression, now: datetime) -> None:
        """Suppression by design starts, ends, or changes its reason (a repeat changes nothing)."""
        reason = event.reason.strip()
        state = self.state
        if event.suppressed:
            if state.suppressed and state.suppressed_reason == reason:
                return
            new = replace(state, suppressed=True, suppressed_reason=reason)
            self.change(new, AlarmAction.SUPPRESS, now, comment=reason)
            return
        if not state.suppressed:
            return
        new = replace(state, suppressed=False, suppressed_reason="")
        self.change(new, AlarmAction.UNSUPPRESS, now, comment=reason)


def _unshelved(state: AlarmState) -> AlarmState:
    """The state with its shelf removed."""
    return replace(state, shelved_by="", shelve_reason="", shelved_until=None, one_shot=False)


def _normalise(old: AlarmState, new: AlarmState) -> AlarmState:
    """Apply figure 7's rules for hiding and showing an alarm.

    Hidden (shelved, suppressed, out of service), an alarm needs no acknowledgement and latches
    nothing; shown again, an active one is a new unacknowledged alarm, an inactive one normal."""
    if is_hidden(new.display):
        return replace(new, acknowledged=True, latched=False)
    if is_hidden(old.display):
        return replace(new, acknowledged=not new.active, latched=False)
    return new


def _words(display: AlarmDisplayState) -> str:
    """A display state as words."""
    return display.value.replace("_", " ")


def _duration(seconds: float) -> str:
    """A duration as hours and minutes for a message."""
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    if hours:
        return f"{hours} h"
    return f"{minutes} min" if minutes else f"{seconds:g} s"
