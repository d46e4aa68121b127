"""The alarm service: every alarm's state, the actions people take on them, and their history.

``AlarmService`` holds the state of every engineered alarm, applies condition changes from the
engine and people's actions through the state machine (``alarms.states``), and for every
transition, in this order: saves the changed states (one transaction per call), journals the
transitions (the alarm journal and the event journal, one transaction, by the ``AlarmStore``),
and hands them to the listeners (notifications, the HMI). A restart restores every alarm as it
was: active, acknowledged, shelved (with its expiry) or out of service.

Roles (ISA-18.2 11.4: who may shelve and who may take an alarm out of service is part of the
alarm philosophy): viewers only read; operators acknowledge, reset, shelve, unshelve and
comment; maintenance also takes alarms out of service and returns them; engineers and
administrators may do everything. A user limited to some areas acts only on the alarms of those
areas. Every refusal (role, area, unknown alarm, an action the state does not allow) is
journaled as an ALARM event with who and why, and raised.

The service is blocking (it writes to the database) and thread-safe: the center calls it from
worker threads (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from alarms.conditions import ConditionChange
from alarms.states import (
    DEFAULT_POLICY,
    Acknowledge,
    AlarmActionError,
    AlarmEvent,
    Comment,
    ConditionChanged,
    RemoveFromService,
    Reset,
    ReturnToService,
    ShelfCheck,
    Shelve,
    StatePolicy,
    Suppression,
    Unshelve,
    apply,
)
from controlcenter.automation import (
    AlarmAction,
    AlarmDef,
    AlarmDisplayState,
    AlarmPriority,
    AlarmState,
    AlarmTransition,
)
from controlcenter.model import Event, EventKind, Role, User
from controlcenter.permissions import PERMISSION_ROLES, Permission
from controlcenter.ports import AlarmListener, AlarmStore, Clock, EventJournal

log = logging.getLogger(__name__)

JOURNAL_SOURCE = "alarms"
"""The source of the service's own events (restore notes); refusals name their alarm."""
MAX_UNWRITTEN_TRANSITIONS = 100_000
"""Transitions kept in memory while the database fails (the oldest go first beyond it)."""
REFUSAL_SEVERITY = 500
"""Severity of a refused action's event."""

ACTION_PERMISSIONS: dict[AlarmAction, Permission] = {
    AlarmAction.ACKNOWLEDGE: Permission.ACKNOWLEDGE_ALARMS,
    AlarmAction.RESET: Permission.ACKNOWLEDGE_ALARMS,
    AlarmAction.COMMENT: Permission.ACKNOWLEDGE_ALARMS,
    AlarmAction.SHELVE: Permission.SHELVE_ALARMS,
    AlarmAction.UNSHELVE: Permission.SHELVE_ALARMS,
    AlarmAction.REMOVE_FROM_SERVICE: Permission.REMOVE_ALARMS_FROM_SERVICE,
    AlarmAction.RETURN_TO_SERVICE: Permission.REMOVE_ALARMS_FROM_SERVICE,
}
"""The permission each person's action needs (controlcenter/permissions.py decides who holds it)."""
ACTION_ROLES: dict[AlarmAction, Role] = {
    action: PERMISSION_ROLES[permission] for action, permission in ACTION_PERMISSIONS.items()
}
"""The least role that may take each person's action (each role includes the ones before it)."""


class AlarmPermissionError(PermissionError):
    """A user may not take an action on an alarm (role or area); ``reason`` says why."""

    def __init__(self, user: User, action: AlarmAction, alarm: str, reason: str) -> None:
        """Name who was refused what on which alarm, and why."""
        super().__init__(f"{user.name} may not {_verb(action)} {alarm}: {reason}")
        self.user = user
        self.action = action
        self.alarm = alarm
        self.reason = reason


class UnknownAlarmError(KeyError):
    """No engineered alarm has that name."""

    def __init__(self, names: Sequence[str]) -> None:
        """Name every unknown alarm."""
        super().__init__(tuple(names))
        self.names = tuple(names)

    def __str__(self) -> str:
        quoted = ", ".join(repr(name) for name in self.names)
        return f"no alarm named {quoted}"


@dataclass(frozen=True, slots=True)
class AcknowledgeResult:
    """What an acknowledgement of several alarms did: the transitions, and the alarms that had
    nothing to acknowledge with why (journaled as refusals)."""

    transitions: tuple[AlarmTransition, ...]
    refused: tuple[AlarmActionError, ...] = ()


class AlarmService:
    """Every alarm's state; condition changes and people's actions, saved, journaled and
    handed to the listeners. Thread-safe; blocking (call it off the event loop)."""

    def __init__(
        self,
        definitions: Sequence[AlarmDef],
        store: AlarmStore,
        journal: EventJournal,
        clock: Clock,
        *,
        listeners: Sequence[AlarmListener] = (),
        policy: StatePolicy | None = None,
    ) -> None:
        """Start with every alarm normal (``restore`` loads the saved states)."""
        counts = Counter(definition.name for definition in definitions)
        duplicates = sorted(name for name, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"alarm names defined twice: {', '.join(duplicates)}")
        self._definitions = {definition.name: definition for definition in definitions}
        self._store = store
        self._journal = journal
        self._clock = clock
        self._listeners = tuple(listeners)
        self._policy = policy if policy is not None else DEFAULT_POLICY
        self._states = {name: AlarmState(name) for name in self._definitions}
        self._shelf_ends: dict[str, datetime] = {}
        """The end of every timed shelf, kept with the states: the monitor asks for the next
        one on every batch, and a site has tens of thousands of alarms but few shelved."""
        self._lock = threading.RLock()
        self._unsaved: dict[str, AlarmState] = {}
        self._unjournaled: list[AlarmTransition] = []
        self._store_failing = False

    @property
    def policy(self) -> StatePolicy:
        """The limits of the state machine (longest shelf, longest text)."""
        return self._policy

    def definition(self, name: str) -> AlarmDef:
        """The definition of alarm ``name``; raises UnknownAlarmError."""
        found = self._definitions.get(name)
        if found is None:
            raise UnknownAlarmError([name])
        return found

    def state(self, name: str) -> AlarmState:
        """The current state of alarm ``name``; raises UnknownAlarmError."""
        with self._lock:
            found = self._states.get(name)
        if found is None:
            raise UnknownAlarmError([name])
        return found

    # --- start ------------------------------------------------------------------------------

    def restore(self) -> list[AlarmState]:
        """Load the saved states of the engineered alarms and return them.

        Saved states of alarms no longer engineered are left out (journaled once); alarms
        engineered since start normal. A shelf that expired while the center was down ends at
        the next ``expire_shelves``.
        """
        saved = self._store.load_alarm_states()
        dropped = sorted(state.name for state in saved if state.name not in self._definitions)
        with self._lock:
            for state in saved:
                if state.name in self._definitions:
                    self._set_state(state)
            restored = [self._states[name] for name in self._definitions]
        if dropped:
            shown = ", ".join(dropped[:20]) + (
                f" and {len(dropped) - 20} more" if len(dropped) > 20 else ""
            )
            log.warning("saved states of %d alarms no longer engineered ignored", len(dropped))
            self._journal.record(
                Event(
                    self._clock.now(),
                    EventKind.SYSTEM,
                    JOURNAL_SOURCE,
                    f"saved states of alarms no longer engineered ignored: {shown}",
                )
            )
        return restored

    # --- the engine --------------------------------------------------------------------------

    def apply_conditions(self, changes: Sequence[ConditionChange]) -> list[AlarmTransition]:
        """Apply the engine's condition and suppression changes; return the transitions.

        A change of an alarm not engineered here is logged and skipped. A suppression change
        applies before a condition change of the same alarm, so an alarm suppressed as it
        activates is never annunciated.
        """
        steps: list[tuple[str, AlarmEvent, datetime]] = []
        for change in changes:
            if change.alarm not in self._definitions:
                log.warning("condition change of unknown alarm %r ignored", change.alarm)
                continue
            if change.suppressed is not None:
                steps.append(
                    (change.alarm, Suppression(change.suppressed, change.reason), change.time)
                )
            if change.active is not None:
                event = ConditionChanged(change.active, change.value, change.message)
                steps.append((change.alarm, event, change.time))
        return self._apply_all(steps)

    def expire_shelves(self) -> list[AlarmTransition]:
        """End every timed shelf whose time is up (journaled at its expiry time)."""
        now = self._clock.now()
        with self._lock:
            due = [name for name, until in self._shelf_ends.items() if until <= now]
        return self._apply_all([(name, ShelfCheck(), now) for name in due])

    def next_shelf_expiry(self) -> datetime | None:
        """When the next timed shelf ends (None: no timed shelf)."""
        with self._lock:
            return min(self._shelf_ends.values(), default=None)

    def _set_state(self, state: AlarmState) -> None:
        """Keep ``state`` and its shelf's end (call with the lock held)."""
        self._states[state.name] = state
        if state.shelved_until is None:
            self._shelf_ends.pop(state.name, None)
        else:
            self._shelf_ends[state.name] = state.shelved_until

    # --- people ------------------------------------------------------------------------------

    def acknowledge(self, names: Sequence[str], user: User, comment: str = "") -> AcknowledgeResult:
        """Acknowledge alarms (OPC UA Part 9 Acknowledge) as ``user``.

        Raises UnknownAlarmError or AlarmPermissionError (nothing is acknowledged then); an
        alarm with nothing to acknowledge (a colleague was quicker) is refused on its own, the
        others are acknowledged. Raises its AlarmActionError when every named alarm is refused.
        """
        unique = list(dict.fromkeys(names))
        self._check(AlarmAction.ACKNOWLEDGE, unique, user)
        transitions: list[AlarmTransition] = []
        refused: list[AlarmActionError] = []
        with self._lock:
            now = self._clock.now()
            pending: list[tuple[AlarmDef, AlarmState, AlarmTransition]] = []
            for name in unique:
                try:
                    outcome = apply(
                        self._definitions[name],
                        self._states[name],
                        Acknowledge(user.name, comment),
                        now,
                        self._policy,
                    )
                except AlarmActionError as err:
                    refused.append(err)
                    continue
                self._set_state(outcome.state)
                pending.extend(
                    (self._definitions[name], outcome.state, t) for t in outcome.transitions
                )
                transitions.extend(outcome.transitions)
            self._persist(pending)
        for refusal in refused:
            self._journal_refusal(user, AlarmAction.ACKNOWLEDGE, refusal.alarm, refusal.reason)
        self._notify(pending)
        if refused and not transitions:
            raise refused[0]
        return AcknowledgeResult(tuple(transitions), tuple(refused))

    def reset(self, name: str, user: User, comment: str = "") -> list[AlarmTransition]:
        """Reset a latched alarm whose condition has cleared (it is acknowledged too)."""
        return self._act(AlarmAction.RESET, name, user, Reset(user.name, comment))

    def shelve(
        self,
        name: str,
        user: User,
        reason: str,
        *,
        until: datetime | None = None,
        one_shot: bool = False,
    ) -> list[AlarmTransition]:
        """Shelve an alarm until ``until`` (at most the policy's longest shelf; None: that
        longest) or, ``one_shot``, until its condition next clears. A reason is required."""
        event = Shelve(user.name, reason, until, one_shot)
        return self._act(AlarmAction.SHELVE, name, user, event)

    def unshelve(self, name: str, user: User, reason: str = "") -> list[AlarmTransition]:
        """Take an alarm off its shelf; an active one is annunciated again."""
        return self._act(AlarmAction.UNSHELVE, name, user, Unshelve(user.name, reason))

    def remove_from_service(self, name: str, user: User, reason: str) -> list[AlarmTransition]:
        """Take an alarm out of service (maintenance); its condition is tracked silently."""
        event = RemoveFromService(user.name, reason)
        return self._act(AlarmAction.REMOVE_FROM_SERVICE, name, user, event)

    def return_to_service(self, name: str, user: User, reason: str = "") -> list[AlarmTransition]:
        """Return an alarm to service (maintenance); an active one is annunciated again."""
        event = ReturnToService(user.name, reason)
        return self._act(AlarmAction.RETURN_TO_SERVICE, name, user, event)

    def comment(self, name: str, user: User, comment: str) -> list[AlarmTransition]:
        """Write a comment in an alarm's journal."""
        return self._act(AlarmAction.COMMENT, name, user, Comment(user.name, comment))

    # --- reading -----------------------------------------------------------------------------

    def states(
        self,
        *,
        area: str | None = None,
        priority: AlarmPriority | None = None,
        displays: Collection[AlarmDisplayState] | None = None,
        active_only: bool = False,
    ) -> list[tuple[AlarmDef, AlarmState]]:
        """Every alarm with its state, the most urgent first (priority, then the newest
        activation, then the name).

        Filters: ``area``; ``priority``: that priority or more urgent; ``displays``: only
        those display states; ``active_only``: only alarms whose condition is active or that
        are latched.
        """
        with self._lock:
            pairs = [(self._definitions[name], state) for name, state in self._states.items()]
        chosen = [
            (definition, state)
            for definition, state in pairs
            if (area is None or definition.area == area)
            and (priority is None or definition.priority <= priority)
            and (displays is None or state.display in displays)
            and (not active_only or state.active or state.latched)
        ]
        chosen.sort(
            key=lambda pair: (
                int(pair[0].priority),
                -(pair[1].activated_at.timestamp() if pair[1].activated_at else float("-inf")),
                pair[0].name,
            )
        )
        return chosen

    # --- plumbing ----------------------------------------------------------------------------

    def _act(
        self, action: AlarmAction, name: str, user: User, event: AlarmEvent
    ) -> list[AlarmTransition]:
        """Check, apply, save, journal and notify one person's action on one alarm."""
        self._check(action, [name], user)
        definition = self._definitions[name]
        try:
            with self._lock:
                now = self._clock.now()
                outcome = apply(definition, self._states[name], event, now, self._policy)
                self._set_state(outcome.state)
                pending = [(definition, outcome.state, t) for t in outcome.transitions]
                self._persist(pending)
        except AlarmActionError as err:
            self._journal_refusal(user, action, name, err.reason)
            raise
        self._notify(pending)
        return list(outcome.transitions)

    def _check(self, action: AlarmAction, names: Sequence[str], user: User) -> None:
        """Raise (journaled) UnknownAlarmError or AlarmPermissionError for this action."""
        if not names:
            raise ValueError(f"name at least one alarm to {_verb(action)}")
        unknown = [name for name in names if name not in self._definitions]
        if unknown:
            error = UnknownAlarmError(unknown)
            # Journaled under the service's name: an unknown name is no alarm's source.
            self._journal_refusal(user, action, JOURNAL_SOURCE, str(error))
            raise error
        needed = ACTION_ROLES[action]
        if not user.role.includes(needed):
            reason = f"that needs the {needed.value} role or above (has {user.role.value})"
            self._refuse_permission(user, action, names, reason)
        if user.areas:
            outside = [name for name in names if self._definitions[name].area not in user.areas]
            if outside:
                reason = f"outside the areas of {user.name} ({', '.join(user.areas)})"
                self._refuse_permission(user, action, outside, reason)

    def _refuse_permission(
        self, user: User, action: AlarmAction, names: Sequence[str], reason: str
    ) -> None:
        for name in names:
            self._journal_refusal(user, action, name, reason)
        raise AlarmPermissionError(user, action, ", ".join(names), reason)

    def _apply_all(
        self, steps: Iterable[tuple[str, AlarmEvent, datetime]]
    ) -> list[AlarmTransition]:
        """Apply events of the engine or the clock (never refused: a refusal is a bug, logged)."""
        pending: list[tuple[AlarmDef, AlarmState, AlarmTransition]] = []
        with self._lock:
            for name, event, when in steps:
                definition = self._definitions[name]
                try:
                    outcome = apply(definition, self._states[name], event, when, self._policy)
                except (AlarmActionError, ValueError):
                    log.exception("alarm %s: %s not applied", name, type(event).__name__)
                    continue
                self._set_state(outcome.state)
                pending.extend((definition, outcome.state, t) for t in outcome.transitions)
            self._persist(pending)
        self._notify(pending)
        return [transition for _, _, transition in pending]

    def _persist(self, pending: Sequence[tuple[AlarmDef, AlarmState, AlarmTransition]]) -> None:
        """Save the changed states (the last of each alarm), then journal the transitions.

        While the database fails, the alarms go on (states are held in memory): what could not
        be written is kept and written with the next change or ``flush``; the oldest unwritten
        transitions beyond ``MAX_UNWRITTEN_TRANSITIONS`` are dropped (logged).
        """
        for _, state, transition in pending:
            self._unsaved[state.name] = state
            self._unjournaled.append(transition)
        self._write_unwritten()

    def flush(self) -> bool:
        """Write states and transitions a failing database could not take; True when none
        remain unwritten."""
        with self._lock:
            return self._write_unwritten()

    def _write_unwritten(self) -> bool:
        excess = len(self._unjournaled) - MAX_UNWRITTEN_TRANSITIONS
        if excess > 0:
            log.error("%d alarm transitions dropped unjournaled: the database fails", excess)
            del self._unjournaled[:excess]
        try:
            if self._unsaved:
                self._store.save_alarm_states(list(self._unsaved.values()))
                self._unsaved.clear()
            if self._unjournaled:
                self._store.journal_alarm_transitions(list(self._unjournaled))
                self._unjournaled.clear()
        except Exception as err:
            if not self._store_failing:
                log.error("cannot save alarm states or journal transitions (kept): %s", err)
            self._store_failing = True
            return False
        if self._store_failing:
            log.info("alarm states and transitions are written again")
        self._store_failing = False
        return True

    def _notify(self, pending: Sequence[tuple[AlarmDef, AlarmState, AlarmTransition]]) -> None:
        """Hand each transition to every listener; a failing listener is logged, not fatal."""
        for definition, state, transition in pending:
            for listener in self._listeners:
                try:
                    listener.on_transition(definition, state, transition)
                except Exception:
                    log.exception("alarm listener %r failed on %s", listener, transition.alarm)

    def _journal_refusal(self, user: User, action: AlarmAction, alarm: str, reason: str) -> None:
        """Journal a refused action as an ALARM event naming the alarm, the user and why."""
        message = f"refused: {user.name} ({user.role.value}) may not {_verb(action)}: {reason}"
        try:
            self._journal.record(
                Event(
                    self._clock.now(),
                    EventKind.ALARM,
                    alarm,
                    message,
                    user.name,
                    REFUSAL_SEVERITY,
                )
            )
        except Exception:
            # The refusal itself stands; losing its journal line must not hide it from the user.
            log.exception("could not journal a refused alarm action: %s", message)


def _verb(action: AlarmAction) -> str:
    """An action as words (``remove_from_service`` -> ``remove from service``)."""
    return action.value.replace("_", " ")
