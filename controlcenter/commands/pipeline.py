"""The command pipeline: the one path by which anything is written to the field.

Every command, from an operator, an API client or a rule, passes the same stages in order:

1. authorisation (``authorisation``): the requester is a known user of role operator or above,
   and the tag lies in their areas;
2. limits (``limits``): known writable tag, a reason, type and engineering range, max step from
   the current value, minimum interval between commands to the tag;
3. interlocks (``interlocks``): no interlock blocks the value now;
4. priority arbitration (``arbitration``): the command's priority slot is in control of the tag
   (a BACnet priority array, ASHRAE 135 19.2); an operator's manual override holds until it is
   released or expires, and control then returns to the highest remaining writer;
5. select-before-operate (``selection``) for operators: ``select`` reserves a point for one
   user, ``operate`` sends the command through stages 1-4 and 6;
6. driver write with a timeout, readback, journal.

A command stopped at any stage is journaled with status rejected (or overridden) and a reason
naming the stage's finding. A write the device accepted but whose readback failed is reported
as exactly that (failed, or timed_out when the readback timed out), never as a refusal.
Overrides, releases, expiries and selections are journaled as events; overrides are kept in an
``OverrideStore`` so that they survive a restart (``restore_overrides``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from controlcenter.automation import AreaDef
from controlcenter.commands.arbitration import Arbiter, Claim, NoOverrideError
from controlcenter.commands.authorisation import (
    AuthorisationError,
    Authoriser,
    UserDirectory,
)
from controlcenter.commands.interlocks import blocking_interlock, interlock_refusal
from controlcenter.commands.limits import (
    IntervalGuard,
    LatestValue,
    reason_problem,
    step_problem,
    tag_problem,
    value_problem,
)
from controlcenter.commands.selection import (
    ForeignSelectionError,
    SelectionBook,
    SelectionError,
    SelectionExpiredError,
    UnknownSelectionError,
)
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
    Sample,
    Selection,
    Substatus,
    TagDef,
    User,
    Value,
)
from controlcenter.ports import Clock, EventJournal, HistoryStore, InterlockChecker, OverrideStore
from drivers.base import Driver, DriverError, WriteRefusedError, WriteUnconfirmedError

__all__ = ["CommandPipeline", "NoOverrideError"]

log = logging.getLogger(__name__)

UNKNOWN_SELECTION_TAG = "<unknown selection>"
"""The tag journaled for an operate whose selection id names no selection (no tag is known)."""

_NOT_WRITTEN = frozenset({CommandStatus.REJECTED, CommandStatus.OVERRIDDEN})
_SEVERITY_OVERRIDE = 500
_SEVERITY_SELECTION = 100


class _StoreEvents:
    """The history store's event journal as an ``EventJournal``."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    def record(self, event: Event) -> None:
        """Record an event in the store's event journal."""
        self._store.journal_event(event)


class CommandPipeline:
    """Authorises, limits, interlocks, arbitrates, executes, confirms and journals commands
    (a ``ports.CommandSink``), with select-before-operate and overrides for operators."""

    def __init__(
        self,
        tags: Sequence[TagDef],
        drivers: Mapping[str, Driver],
        journal: HistoryStore,
        clock: Clock,
        *,
        timeout_s: float = 5.0,
        users: UserDirectory | None = None,
        areas: Sequence[AreaDef] = (),
        latest: LatestValue | None = None,
        interlocks: InterlockChecker | None = None,
        overrides: OverrideStore | None = None,
        events: EventJournal | None = None,
        selection_timeout_s: float = 30.0,
    ) -> None:
        """``users`` resolves requesters (None: every command is refused); ``latest`` gives
        the current value for max-step checks; ``events`` defaults to ``journal``'s events."""
        if not (selection_timeout_s > 0 and math.isfinite(selection_timeout_s)):
            raise ValueError(
                f"selection timeout must be a positive time, not {selection_timeout_s}"
            )
        self._tags = {tag.name: tag for tag in tags}
        self._drivers = dict(drivers)
        self._journal = journal
        self._clock = clock
        self._timeout_s = timeout_s
        self._authoriser = Authoriser(users, areas)
        self._users = users
        self._latest = latest
        self._interlocks = interlocks
        self._override_store = overrides
        self._events: EventJournal = events if events is not None else _StoreEvents(journal)
        self._selection_timeout_s = selection_timeout_s
        self._intervals = IntervalGuard()
        self._arbiter = Arbiter()
        self._selections = SelectionBook()
        self._readbacks: dict[str, Sample] = {}
        # Writes to one tag are serialised so a readback always belongs to its own write and
        # limits and arbitration see the state the previous command left.
        self._tag_locks: dict[str, asyncio.Lock] = {}
        self._status_counts: dict[CommandStatus, int] = {}

    def status_counts(self) -> dict[CommandStatus, int]:
        """Commands finished since start, by status (any thread: a copy)."""
        return dict(self._status_counts)

    # --- the command sink -------------------------------------------------------------------

    async def submit(self, command: Command) -> CommandResult:
        """Run a command through every stage and journal it; always returns a result."""
        return await self._command(command, until=None)

    # --- select-before-operate --------------------------------------------------------------

    async def select(self, tag: str, user: User) -> Selection:
        """Reserve ``tag`` for ``user`` for the selection timeout and show what an operate
        would act on. Raises AuthorisationError, SelectionError for a tag that cannot be
        commanded, or PointReservedError naming the user who holds the point."""
        resolved = await self._authorised(user.name, tag, "select")
        definition = self._tags.get(tag)
        problem = tag_problem(
            tag, definition, definition is not None and definition.device in self._drivers
        )
        if problem is not None or definition is None:
            raise SelectionError(problem or f"unknown tag '{tag}'")
        await self.expire_selections()
        now = self._clock.monotonic()
        try:
            self._selections.check_free(tag, resolved.name, now)
        except SelectionError as err:
            await self._event(tag, f"selection of {tag} refused: {err}", resolved.name)
            raise
        current = self._current(tag)
        selected_at = self._clock.now()
        selection = Selection(
            selection_id=SelectionBook.new_id(),
            tag=tag,
            user=resolved.name,
            current=current,
            limits=CommandLimits.of(definition),
            blocking_interlock=self._interlock_now(definition, current),
            selected_at=selected_at,
            expires_at=selected_at + timedelta(seconds=self._selection_timeout_s),
        )
        # No await between the check above and this reservation: two operators selecting at
        # once cannot both get the point.
        self._selections.add(selection, now + self._selection_timeout_s)
        await self._event(
            tag,
            f"{tag} selected by {resolved.name} until "
            f"{selection.expires_at.isoformat(timespec='seconds')}",
            resolved.name,
        )
        return selection

    async def operate(
        self,
        selection_id: str,
        user: User,
        value: Value,
        reason: str,
        *,
        until: datetime | None = None,
    ) -> CommandResult:
        """Command the selected point to ``value`` as a manual override (until released, or
        until ``until``). The selection must be ``user``'s and live; it is used up. A foreign,
        unknown or expired selection gives a rejected, journaled result."""
        known = self._selections.peek(selection_id)
        tag = known.tag if known is not None else UNKNOWN_SELECTION_TAG
        command = Command(
            tag=tag,
            value=value,
            origin=CommandOrigin.OPERATOR,
            requested_by=user.name,
            reason=reason,
            issued_at=self._clock.now(),
            priority=CommandPriority.MANUAL_OPERATOR,
        )
        try:
            self._selections.take(selection_id, user.name, self._clock.monotonic())
        except SelectionExpiredError as err:
            await self._event(tag, f"selection of {tag} by {user.name} expired", user.name)
            return await self._finish(self._result(command, CommandStatus.REJECTED, f"{err}"))
        except (UnknownSelectionError, ForeignSelectionError) as err:
            return await self._finish(self._result(command, CommandStatus.REJECTED, f"{err}"))
        await self._event(tag, f"{tag} operated by {user.name} := {value!r}: {reason}", user.name)
        return await self._command(command, until=until)

    async def cancel(self, selection_id: str, user: User) -> None:
        """Give up ``user``'s selection ``selection_id``. Raises UnknownSelectionError or
        ForeignSelectionError; an already expired selection is journaled as expired."""
        known = self._selections.peek(selection_id)
        try:
            selection = self._selections.take(selection_id, user.name, self._clock.monotonic())
        except SelectionExpiredError:
            tag = known.tag if known is not None else UNKNOWN_SELECTION_TAG
            await self._event(tag, f"selection of {tag} by {user.name} expired", user.name)
            return
        await self._event(
            selection.tag, f"selection of {selection.tag} cancelled by {user.name}", user.name
        )

    async def expire_selections(self) -> list[Selection]:
        """Drop and journal every selection whose reservation has lapsed."""
        lapsed = self._selections.expire(self._clock.monotonic())
        for selection in lapsed:
            await self._event(
                selection.tag,
                f"selection of {selection.tag} by {selection.user} expired",
                selection.user,
            )
        return lapsed

    # --- overrides --------------------------------------------------------------------------

    def overrides(self) -> list[Override]:
        """Every active manual override, ordered by tag."""
        return self._arbiter.overrides()

    async def release(self, tag: str, user: User, reason: str) -> CommandResult | None:
        """Release the manual override of ``tag``; control returns to the highest remaining
        writer, whose remembered value is written (its result is returned; None when no writer
        remains and the tag keeps its value). Raises AuthorisationError, ValueError for a
        blank reason, NoOverrideError when the tag has no override."""
        resolved = await self._authorised(user.name, tag, "release")
        if reason_problem(reason) is not None:
            raise ValueError("a release needs a reason")
        async with self._lock(tag):
            claim = self._arbiter.override(tag)
            if claim is None:
                raise NoOverrideError(f"{tag} has no active override")
            if claim.expired(self._clock.now()):
                await self._lapse_if_expired(tag)
                return await self._return_control(
                    tag, f"expiry of {claim.command.requested_by}'s override"
                )
            self._arbiter.relinquish(tag, CommandPriority.MANUAL_OPERATOR)
            await self._forget_override(tag)
            await self._event(
                tag,
                f"override of {tag} := {claim.command.value!r} by {claim.command.requested_by} "
                f"released by {resolved.name}: {reason}",
                resolved.name,
                _SEVERITY_OVERRIDE,
            )
            return await self._return_control(
                tag, f"release of {claim.command.requested_by}'s override by {resolved.name}"
            )

    async def relinquish(
        self, tag: str, priority: CommandPriority, requested_by: str
    ) -> CommandResult | None:
        """Empty ``requested_by``'s slot ``priority`` of ``tag`` (a writer letting go, as a
        BACnet NULL write); when it was in control, control returns to the next writer (its
        result is returned). Raises AuthorisationError."""
        await self._authorised(requested_by, tag, "relinquish")
        async with self._lock(tag):
            in_control = self._arbiter.winner(tag)
            claim = self._arbiter.relinquish(tag, priority)
            if claim is None:
                return None
            if priority is CommandPriority.MANUAL_OPERATOR:
                await self._forget_override(tag)
            await self._event(
                tag,
                f"priority {priority.name.lower()} of {tag} relinquished by {requested_by}",
                requested_by,
            )
            if in_control is not claim:
                return None
            return await self._return_control(
                tag, f"{requested_by} relinquished {priority.name.lower()}"
            )

    async def expire_overrides(self) -> list[CommandResult]:
        """Lapse every override whose ``until`` has passed (and every lapsed selection);
        return the results of the writes that returned control to the remaining writers."""
        await self.expire_selections()
        results: list[CommandResult] = []
        for tag in self._arbiter.expired_override_tags(self._clock.now()):
            async with self._lock(tag):
                lapsed = await self._lapse_if_expired(tag)
                if lapsed is None:
                    continue
                result = await self._return_control(
                    tag, f"expiry of {lapsed.command.requested_by}'s override"
                )
                if result is not None:
                    results.append(result)
        return results

    async def restore_overrides(self) -> list[Override]:
        """Take back the overrides kept in the override store (at start); overrides that
        lapsed meanwhile or name a tag no longer commandable are dropped and journaled."""
        if self._override_store is None:
            return []
        stored = await asyncio.to_thread(self._override_store.active_overrides)
        now = self._clock.now()
        restored: list[Override] = []
        for override in stored:
            tag = self._tags.get(override.tag)
            claim = Claim.from_override(override)
            if tag is None or not tag.writable:
                await self._forget_override(override.tag)
                await self._event(
                    override.tag,
                    f"stored override of {override.tag} by {override.user} dropped: the tag is "
                    "no longer commandable",
                    override.user,
                    _SEVERITY_OVERRIDE,
                )
            elif claim.expired(now):
                await self._forget_override(override.tag)
                await self._event(
                    override.tag,
                    f"override of {override.tag} by {override.user} expired while the center "
                    "was stopped",
                    override.user,
                    _SEVERITY_OVERRIDE,
                )
            else:
                self._arbiter.offer(claim)
                await self._event(
                    override.tag,
                    f"override of {override.tag} := {override.value!r} by {override.user} "
                    f"restored{_until_text(override.until)}: {override.reason}",
                    override.user,
                    _SEVERITY_OVERRIDE,
                )
                restored.append(override)
        return restored

    # --- the stages -------------------------------------------------------------------------

    async def _command(self, command: Command, *, until: datetime | None) -> CommandResult:
        authorisation = self._authoriser.authorise(command.requested_by, command.tag)
        if authorisation.refusal is not None:
            return await self._reject(command, f"not authorised: {authorisation.refusal}")
        tag = self._tags.get(command.tag)
        has_driver = tag is not None and tag.device in self._drivers
        problem = (
            tag_problem(command.tag, tag, has_driver)
            or reason_problem(command.reason)
            or self._until_problem(until)
        )
        if problem is not None or tag is None:
            return await self._reject(command, problem or f"unknown tag '{command.tag}'")
        async with self._lock(tag.name):
            # Expiry is checked as commands arrive, not only when the runtime sweeps.
            lapsed = await self._lapse_if_expired(tag.name)
            result = await self._checked(command, tag, until=until, arbitrate=True)
            if lapsed is not None and result.status in _NOT_WRITTEN:
                # The arriving command did not take the tag: it returns to the writer that
                # now holds it, as after any expiry.
                await self._return_control(
                    tag.name, f"expiry of {lapsed.command.requested_by}'s override"
                )
            return result

    async def _checked(
        self, command: Command, tag: TagDef, *, until: datetime | None, arbitrate: bool
    ) -> CommandResult:
        """Stages 2, 3, (4) and 6 for a command to ``tag``; the tag's lock is held."""
        problem = (
            value_problem(tag, command.value)
            or step_problem(tag, command.value, self._current(tag.name))
            or self._intervals.problem(tag, self._clock.monotonic())
        )
        if problem is not None:
            return await self._reject(command, f"limits: {problem}")
        finding = blocking_interlock(self._interlocks, tag.name, command.value)
        if finding is not None:
            return await self._reject(command, interlock_refusal(finding))
        if arbitrate:
            claim = Claim(command, self._clock.now(), until)
            decision = self._arbiter.offer(claim)
            if not decision.wins and decision.holder is not None:
                return await self._finish(
                    self._result(command, CommandStatus.OVERRIDDEN, _overridden(decision.holder))
                )
            if command.priority is CommandPriority.MANUAL_OPERATOR:
                await self._keep_override(claim)
        self._intervals.note_write(tag.name, self._clock.monotonic())
        result = await self._execute(command, tag)
        if result.confirmed and result.readback is not None:
            now = self._clock.now()
            self._readbacks[tag.name] = Sample(tag.name, result.readback, Quality.good(), now, now)
        return await self._finish(result)

    async def _return_control(self, tag_name: str, why: str) -> CommandResult | None:
        """Write the value of the writer now in control of ``tag_name`` (lock held)."""
        holder = self._arbiter.winner(tag_name)
        if holder is None:
            await self._event(
                tag_name,
                f"{tag_name}: no writer remains after {why}; the point keeps its value",
                "",
            )
            return None
        original = holder.command
        command = Command(
            tag=original.tag,
            value=original.value,
            origin=original.origin,
            requested_by=original.requested_by,
            reason=(
                f"control returns to {original.requested_by} at priority "
                f"{original.priority.name.lower()} after {why}: {original.reason}"
            ),
            issued_at=self._clock.now(),
            priority=original.priority,
        )
        return await self._checked(command, self._tags[tag_name], until=None, arbitrate=False)

    async def _lapse_if_expired(self, tag: str) -> Claim | None:
        """Drop ``tag``'s override if it has lapsed (lock held); return it, or None."""
        claim = self._arbiter.override(tag)
        if claim is None or not claim.expired(self._clock.now()):
            return None
        self._arbiter.relinquish(tag, CommandPriority.MANUAL_OPERATOR)
        await self._forget_override(tag)
        await self._event(
            tag,
            f"override of {tag} := {claim.command.value!r} by {claim.command.requested_by} "
            f"expired{_until_text(claim.until, 'at')}",
            claim.command.requested_by,
            _SEVERITY_OVERRIDE,
        )
        return claim

    async def _execute(self, command: Command, tag: TagDef) -> CommandResult:
        driver = self._drivers[tag.device]
        try:
            # The priority reaches protocols that arbitrate (a BACnet priority array slot).
            write = driver.write(tag, command.value, priority=int(command.priority))
            readback = await asyncio.wait_for(write, self._timeout_s)
        except TimeoutError:
            return self._result(
                command,
                CommandStatus.TIMED_OUT,
                f"no confirmation within {self._timeout_s:g} s",
            )
        except WriteUnconfirmedError as err:
            # The device took the write; only its confirmation is missing. Not a refusal: the
            # field may already hold the new value, and the operator must know that.
            status = (
                CommandStatus.TIMED_OUT
                if err.substatus is Substatus.TIMEOUT
                else CommandStatus.FAILED
            )
            reason = f"write accepted by the device but not confirmed: {err}"
            return self._result(command, status, reason)
        except WriteRefusedError as err:
            # Refused by a check before anything reached the device (the edge's interlocks
            # are this pipeline's interlock stage, run where the device is).
            return self._result(command, CommandStatus.REJECTED, str(err))
        except DriverError as err:
            return self._result(command, CommandStatus.FAILED, str(err))
        if not _same_value(tag, command.value, readback):
            return self._result(
                command,
                CommandStatus.FAILED,
                f"readback {readback!r} differs from commanded {command.value!r}",
                readback,
            )
        return self._result(command, CommandStatus.CONFIRMED, "readback matches", readback)

    # --- helpers ----------------------------------------------------------------------------

    def _lock(self, tag: str) -> asyncio.Lock:
        return self._tag_locks.setdefault(tag, asyncio.Lock())

    async def _authorised(self, user_name: str, tag: str, action: str) -> User:
        """The user ``user_name`` if they may command ``tag``; else journal and raise."""
        authorisation = self._authoriser.authorise(user_name, tag)
        if authorisation.refusal is None and authorisation.user is not None:
            return authorisation.user
        refusal = authorisation.refusal or f"unknown user '{user_name}'"
        await self._event(
            tag, f"{action} of {tag} refused: {refusal}", user_name, kind=EventKind.AUDIT
        )
        raise AuthorisationError(refusal)

    def _current(self, tag: str) -> Sample | None:
        """The newest known value of ``tag``: the live view's, or the pipeline's own last
        confirmed readback when that is newer (the live view lags a write by a scan)."""
        live: Sample | None = None
        if self._latest is not None:
            try:
                live = self._latest(tag)
            except KeyError:
                live = None
        own = self._readbacks.get(tag)
        if live is None:
            return own
        # At equal times the readback wins: the live sample may have been read before the write.
        if own is None or live.server_time > own.server_time:
            return live
        return own

    def _interlock_now(self, tag: TagDef, current: Sample | None) -> str | None:
        """The interlock that would block a command to ``tag`` now (both values of a bool)."""
        if tag.data_type is DataType.BOOL:
            findings = [
                (value, blocking_interlock(self._interlocks, tag.name, value))
                for value in (True, False)
            ]
            blocked = [(value, finding) for value, finding in findings if finding is not None]
            if len(blocked) == 2 and blocked[0][1] == blocked[1][1]:
                return blocked[0][1]
            parts = [f"{finding} (blocks {str(value).lower()})" for value, finding in blocked]
            return "; ".join(parts) or None
        probe: Value
        if current is not None and current.value is not None:
            probe = current.value
        elif tag.data_type is DataType.STRING:
            probe = ""
        else:
            probe = tag.low if tag.low is not None else 0.0
        return blocking_interlock(self._interlocks, tag.name, probe)

    def _until_problem(self, until: datetime | None) -> str | None:
        if until is None:
            return None
        if until.utcoffset() is None:
            return "an override's end time needs a time zone"
        if until <= self._clock.now():
            return f"the override would end in the past ({until.isoformat(timespec='seconds')})"
        return None

    async def _keep_override(self, claim: Claim) -> None:
        override = claim.as_override()
        if self._override_store is not None:
            try:
                await asyncio.to_thread(self._override_store.save_override, override)
            except Exception as err:  # the override holds in memory regardless
                log.error("override of %s could not be stored: %s", override.tag, err, exc_info=err)
        await self._event(
            override.tag,
            f"manual override of {override.tag} := {override.value!r} by {override.user}"
            f"{_until_text(override.until)}: {override.reason}",
            override.user,
            _SEVERITY_OVERRIDE,
        )

    async def _forget_override(self, tag: str) -> None:
        if self._override_store is None:
            return
        try:
            await asyncio.to_thread(self._override_store.clear_override, tag)
        except Exception as err:  # the release holds in memory regardless
            log.error(
                "override of %s could not be cleared from the store: %s", tag, err, exc_info=err
            )

    async def _event(
        self,
        source: str,
        message: str,
        user: str,
        severity: int = _SEVERITY_SELECTION,
        *,
        kind: EventKind = EventKind.COMMAND,
    ) -> None:
        event = Event(self._clock.now(), kind, source, message, user, severity)
        log.info("%s", message)
        await asyncio.to_thread(self._events.record, event)

    def _result(
        self, command: Command, status: CommandStatus, reason: str, readback: Value | None = None
    ) -> CommandResult:
        return CommandResult(command, status, reason, self._clock.now(), readback)

    async def _reject(self, command: Command, reason: str) -> CommandResult:
        return await self._finish(self._result(command, CommandStatus.REJECTED, reason))

    async def _finish(self, result: CommandResult) -> CommandResult:
        command = result.command
        self._status_counts[result.status] = self._status_counts.get(result.status, 0) + 1
        level = logging.INFO if result.confirmed else logging.WARNING
        log.log(
            level,
            "command %s := %r by %s %s (%s): %s, %s",
            command.tag,
            command.value,
            command.origin.value,
            command.requested_by,
            command.reason,
            result.status.value,
            result.reason,
        )
        await asyncio.to_thread(self._journal.journal_command, _journalable(result))
        return result


def _journalable(result: CommandResult) -> CommandResult:
    """``result`` as the journal can keep it: a forged value that is no tag value at all
    (None, a list, an object from a hostile client) is journaled as its text."""
    value: object = result.command.value
    if isinstance(value, bool | int | float | str | datetime):
        return result
    text = f"<not a value: {type(value).__name__} {value!r:.80}>"
    return dataclasses.replace(result, command=dataclasses.replace(result.command, value=text))


def _overridden(holder: Claim) -> str:
    command = holder.command
    return (
        f"overridden: {command.requested_by} holds the point at priority "
        f"{command.priority.name.lower()} ({command.value!r}{_until_text(holder.until)}: "
        f"{command.reason}); the command is remembered and applies when that is released"
    )


def _until_text(until: datetime | None, word: str = "until") -> str:
    return "" if until is None else f" {word} {until.isoformat(timespec='seconds')}"


def _same_value(tag: TagDef, commanded: Value, readback: Value) -> bool:
    if (
        tag.data_type is DataType.FLOAT
        and isinstance(readback, int | float)
        and isinstance(commanded, int | float)
    ):
        # float32 registers round the commanded value; compare at float32 precision.
        return math.isclose(float(commanded), float(readback), rel_tol=1e-6, abs_tol=1e-6)
    return commanded == readback
