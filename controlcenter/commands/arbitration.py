"""Stage 4 of the command pipeline: priority arbitration, modelled on the BACnet priority array.

Each commanded tag has slots by priority (ASHRAE 135, 19.2): manual operator (8) over safety
(10) over automation (12) over schedule (14); the lowest occupied number wins. Each writer's
latest command stays in its slot, written or not, so that when a higher writer lets go, control
returns to the highest remaining writer and its remembered value is written again. An operator's
manual override is the claim in the manual-operator slot; it holds until it is released or its
``until`` passes. A writer at another priority keeps its slot until it relinquishes it (in
ASHRAE 135 19.2 a writer relinquishes by writing NULL at its priority).

This module is pure bookkeeping: the pipeline decides when to write, journal and persist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from controlcenter.model import Command, CommandOrigin, CommandPriority, Override


class NoOverrideError(LookupError):
    """A release named a tag that has no active override."""


@dataclass(frozen=True, slots=True)
class Claim:
    """One writer's latest command in one slot of a tag's priority array."""

    command: Command
    since: datetime
    """When the claim took its slot (the center's clock)."""
    until: datetime | None = None
    """When the claim lapses by itself (manual overrides only); None: until relinquished."""

    @property
    def priority(self) -> CommandPriority:
        """The slot the claim occupies."""
        return self.command.priority

    def expired(self, now: datetime) -> bool:
        """Whether the claim has lapsed at ``now``."""
        return self.until is not None and now >= self.until

    def as_override(self) -> Override:
        """The claim as an operator's override record."""
        command = self.command
        return Override(
            tag=command.tag,
            value=command.value,
            user=command.requested_by,
            reason=command.reason,
            since=self.since,
            until=self.until,
            priority=command.priority,
        )

    @classmethod
    def from_override(cls, override: Override) -> Claim:
        """The claim of a stored override (restored at start)."""
        command = Command(
            tag=override.tag,
            value=override.value,
            origin=CommandOrigin.OPERATOR,
            requested_by=override.user,
            reason=override.reason,
            issued_at=override.since,
            priority=override.priority,
        )
        return cls(command, override.since, override.until)


@dataclass(frozen=True, slots=True)
class Arbitration:
    """Whether a command won its tag, and if not, the claim that holds the tag above it."""

    wins: bool
    holder: Claim | None = None


class PriorityArray:
    """The slots of one tag; the lowest occupied priority number is in control."""

    def __init__(self) -> None:
        self._slots: dict[CommandPriority, Claim] = {}

    def place(self, claim: Claim) -> None:
        """Put ``claim`` in its slot, replacing the previous claim of that priority."""
        self._slots[claim.priority] = claim

    def claim_at(self, priority: CommandPriority) -> Claim | None:
        """The claim in the ``priority`` slot, or None."""
        return self._slots.get(priority)

    def relinquish(self, priority: CommandPriority) -> Claim | None:
        """Empty the ``priority`` slot; return the claim it held, or None."""
        return self._slots.pop(priority, None)

    def winner(self) -> Claim | None:
        """The claim in control (lowest priority number), or None when every slot is empty."""
        if not self._slots:
            return None
        return self._slots[min(self._slots, key=int)]

    def claims(self) -> list[Claim]:
        """Every claim, highest priority (lowest number) first."""
        return [self._slots[priority] for priority in sorted(self._slots, key=int)]


class Arbiter:
    """The priority arrays of every commanded tag."""

    def __init__(self) -> None:
        self._arrays: dict[str, PriorityArray] = {}

    def _array(self, tag: str) -> PriorityArray:
        return self._arrays.setdefault(tag, PriorityArray())

    def offer(self, claim: Claim) -> Arbitration:
        """Put ``claim`` in its slot; it wins unless a higher-priority claim holds the tag.

        A claim that loses is still remembered: it is written when the claims above it go.
        A claim of the same priority as the winner replaces it and wins (the latest writer at
        one priority is the one that counts).
        """
        array = self._array(claim.command.tag)
        array.place(claim)
        winner = array.winner()
        if winner is None or winner is claim:
            return Arbitration(wins=True)
        return Arbitration(wins=False, holder=winner)

    def winner(self, tag: str) -> Claim | None:
        """The claim in control of ``tag``, or None."""
        array = self._arrays.get(tag)
        return None if array is None else array.winner()

    def relinquish(self, tag: str, priority: CommandPriority) -> Claim | None:
        """Empty ``tag``'s ``priority`` slot; return the claim it held, or None."""
        array = self._arrays.get(tag)
        return None if array is None else array.relinquish(priority)

    def override(self, tag: str) -> Claim | None:
        """The manual override of ``tag`` (its manual-operator claim), or None."""
        array = self._arrays.get(tag)
        return None if array is None else array.claim_at(CommandPriority.MANUAL_OPERATOR)

    def overrides(self) -> list[Override]:
        """Every manual override, ordered by tag."""
        found = (self.override(tag) for tag in sorted(self._arrays))
        return [claim.as_override() for claim in found if claim is not None]

    def claims(self, tag: str) -> list[Claim]:
        """Every claim on ``tag``, highest priority first."""
        array = self._arrays.get(tag)
        return [] if array is None else array.claims()

    def expired_override_tags(self, now: datetime) -> list[str]:
        """The tags whose manual override has lapsed at ``now``, sorted."""
        return [
            tag
            for tag in sorted(self._arrays)
            if (claim := self.override(tag)) is not None and claim.expired(now)
        ]
