"""Stage 5 of the command pipeline: select-before-operate for operator commands.

An operator first selects a point: the center reserves it for that operator for a short time
(30 s by default) and shows what the operate would act on (current value and quality, limits,
an interlock that blocks now). Only the same operator may operate the selection before it
expires; a second operator selecting the held point is refused with the name of the holder.
This is the select-before-operate control model of IEC 61850-7-2 and of DNP3's
select/operate, which keeps a mistyped or stale screen from writing to the field.

This module keeps the reservations; the pipeline journals them and runs the operate.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from controlcenter.model import Selection


class SelectionError(Exception):
    """A selection cannot be used (unknown, of another user, expired) or a point not selected."""


class PointReservedError(SelectionError):
    """The point is selected by another user; ``holder`` names them."""

    def __init__(self, tag: str, holder: str, expires_at: datetime) -> None:
        super().__init__(
            f"{tag} is selected by {holder} until {expires_at.isoformat(timespec='seconds')}"
        )
        self.tag = tag
        self.holder = holder
        self.expires_at = expires_at


class UnknownSelectionError(SelectionError):
    """No selection has that id (never made, already operated or cancelled)."""


class ForeignSelectionError(SelectionError):
    """The selection belongs to another user."""


class SelectionExpiredError(SelectionError):
    """The selection's reservation has lapsed."""


@dataclass(frozen=True, slots=True)
class _Reservation:
    selection: Selection
    deadline: float
    """Monotonic time on the pipeline's clock at which the reservation lapses."""


class SelectionBook:
    """The live selections, at most one per point; time is the caller's monotonic clock."""

    def __init__(self) -> None:
        self._by_id: dict[str, _Reservation] = {}
        self._by_tag: dict[str, str] = {}

    @staticmethod
    def new_id() -> str:
        """A fresh, unguessable selection id."""
        return secrets.token_urlsafe(18)

    def check_free(self, tag: str, user: str, now: float) -> Selection | None:
        """Raise PointReservedError if another user holds ``tag`` at ``now``; return the
        user's own live selection of it (which a new selection replaces), or None."""
        selection_id = self._by_tag.get(tag)
        if selection_id is None:
            return None
        reservation = self._by_id[selection_id]
        if reservation.deadline <= now:
            return None
        if reservation.selection.user != user:
            held = reservation.selection
            raise PointReservedError(tag, held.user, held.expires_at)
        return reservation.selection

    def add(self, selection: Selection, deadline: float) -> None:
        """Reserve ``selection.tag`` for its user until ``deadline``, replacing any earlier
        selection of the tag (check_free first)."""
        previous = self._by_tag.get(selection.tag)
        if previous is not None:
            del self._by_id[previous]
        self._by_id[selection.selection_id] = _Reservation(selection, deadline)
        self._by_tag[selection.tag] = selection.selection_id

    def take(self, selection_id: str, user: str, now: float) -> Selection:
        """Consume the live selection ``selection_id`` of ``user``.

        Raises UnknownSelectionError, ForeignSelectionError (the selection stays with its
        holder) or SelectionExpiredError (the lapsed selection is dropped).
        """
        reservation = self._by_id.get(selection_id)
        if reservation is None:
            raise UnknownSelectionError("unknown selection (never made, operated or cancelled)")
        selection = reservation.selection
        if selection.user != user:
            raise ForeignSelectionError(f"the selection of {selection.tag} belongs to another user")
        self._drop(selection)
        if reservation.deadline <= now:
            raise SelectionExpiredError(
                f"the selection of {selection.tag} expired at "
                f"{selection.expires_at.isoformat(timespec='seconds')}"
            )
        return selection

    def peek(self, selection_id: str) -> Selection | None:
        """The selection ``selection_id`` whether live or lapsed, or None."""
        reservation = self._by_id.get(selection_id)
        return None if reservation is None else reservation.selection

    def expire(self, now: float) -> list[Selection]:
        """Drop and return every selection that has lapsed at ``now``."""
        lapsed = [r.selection for r in self._by_id.values() if r.deadline <= now]
        for selection in lapsed:
            self._drop(selection)
        return lapsed

    def _drop(self, selection: Selection) -> None:
        self._by_id.pop(selection.selection_id, None)
        if self._by_tag.get(selection.tag) == selection.selection_id:
            del self._by_tag[selection.tag]
