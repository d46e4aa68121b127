"""What the alarm displays show and do, apart from drawing: state words, filters read from the
query string, rows, paging, and the operator's actions handed to the alarm service.

The alarm service (``context.alarms``) decides every action: who may, on which alarm, in which
state, for how long. This module only calls it and turns its answer, or its refusal, into one
line of text for the operator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from controlcenter.model import User, Value, utc_now
from controlcenter.ports import (
    AlarmDef,
    AlarmDisplayState,
    AlarmOperations,
    AlarmPriority,
    AlarmState,
    AlarmTransition,
)
from hmi.formatting import NO_VALUE, format_value

STATE_WORDS: dict[AlarmDisplayState, str] = {
    AlarmDisplayState.NORMAL: "Normal",
    AlarmDisplayState.UNACKNOWLEDGED: "Active, unacknowledged",
    AlarmDisplayState.ACKNOWLEDGED: "Active, acknowledged",
    AlarmDisplayState.RETURNED_UNACKNOWLEDGED: "Returned, unacknowledged",
    AlarmDisplayState.LATCHED: "Latched",
    AlarmDisplayState.SHELVED: "Shelved",
    AlarmDisplayState.SUPPRESSED: "Suppressed by design",
    AlarmDisplayState.OUT_OF_SERVICE: "Out of service",
}
"""The display states in the words of ISA-18.2 (figure 7) and OPC UA Part 9."""

UNACKNOWLEDGED_ANY = "unacknowledged_any"
"""State filter: unacknowledged, whether still active or returned to normal."""
UNACKNOWLEDGED_STATES = frozenset(
    {AlarmDisplayState.UNACKNOWLEDGED, AlarmDisplayState.RETURNED_UNACKNOWLEDGED}
)

ACTIVE_VIEW = "active"
HISTORY_VIEW = "history"
PAGE_SIZE = 25
"""Rows per page: a site has thousands of alarms; a page is what an operator reads at once
(EEMUA 191: an alarm summary an operator can take in on one screen). Each row is a dozen
components, and Dash's renderer slows down steeply past a few hundred on a page."""
HISTORY_LIMIT = 2000
"""The newest journal entries the history view searches (filters apply within them)."""
MAX_FILTER_CHARS = 200
"""Longer filter text is cut: nobody types more, and a forged URL must not cost more."""

SHELVE_PRESETS: tuple[tuple[str, str], ...] = (
    ("15 minutes", "900"),
    ("1 hour", "3600"),
    ("8 hours (a shift)", "28800"),
    ("24 hours", "86400"),
    ("Until it clears (one-shot)", "one-shot"),
)
"""Shelving durations offered (label, value); the service refuses what exceeds its maximum."""
ONE_SHOT = "one-shot"


def priority_word(priority: AlarmPriority) -> str:
    """``critical``, ``high``, ``medium`` or ``low``: the word shown beside the colour."""
    return priority.name.lower()


def state_word(display: AlarmDisplayState) -> str:
    """The words of a display state."""
    return STATE_WORDS[display]


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    """What the alarm list shows: its view and filters, each empty when not applied."""

    view: str = ACTIVE_VIEW
    area: str = ""
    priority: str = ""
    state: str = ""
    text: str = ""
    alarm: str = ""
    asset: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> AlarmFilter:
        """The filter a URL's query string asks for; unknown values are dropped, not refused
        (a link from an older display or a typed URL still opens the list)."""

        def text(key: str) -> str:
            return str(query.get(key, "")).strip()[:MAX_FILTER_CHARS]

        view = text("view")
        return cls(
            view=view if view in (ACTIVE_VIEW, HISTORY_VIEW) else ACTIVE_VIEW,
            area=text("area"),
            priority=valid_priority(text("priority")),
            state=valid_state(text("state")),
            text=text("text"),
            alarm=text("alarm"),
            asset=text("asset"),
        )

    def cleaned(self) -> AlarmFilter:
        """The same filter with every value checked as ``from_query`` checks it."""
        return AlarmFilter.from_query(
            {
                "view": self.view,
                "area": self.area,
                "priority": self.priority,
                "state": self.state,
                "text": self.text,
                "alarm": self.alarm,
                "asset": self.asset,
            }
        )

    def with_view(self, view: str) -> AlarmFilter:
        """The same filters in another view."""
        return replace(self, view=view).cleaned()


def valid_priority(value: str) -> str:
    """``value`` when it names a priority, else ''."""
    names = {priority_word(priority) for priority in AlarmPriority}
    return value.lower() if value.lower() in names else ""


def valid_state(value: str) -> str:
    """``value`` when it names a display state (or ``unacknowledged_any``), else ''."""
    names = {display.value for display in AlarmDisplayState} | {UNACKNOWLEDGED_ANY}
    return value.lower() if value.lower() in names else ""


def _matches_state(wanted: str, display: AlarmDisplayState) -> bool:
    if not wanted:
        return True
    if wanted == UNACKNOWLEDGED_ANY:
        return display in UNACKNOWLEDGED_STATES
    return display.value == wanted


def _of_asset(definition_asset: str, alarm: str, asset: str) -> bool:
    return definition_asset == asset or alarm.startswith(asset + ".")


def _contains(needle: str, *haystack: str) -> bool:
    folded = needle.casefold()
    return any(folded in item.casefold() for item in haystack)


def current_alarms(
    pairs: Sequence[tuple[AlarmDef, AlarmState]], wanted: AlarmFilter
) -> list[tuple[AlarmDef, AlarmState]]:
    """The alarms that are not normal (active, unacknowledged, latched, shelved, suppressed
    or out of service) and pass the filter, in the service's order (most urgent first)."""
    chosen = []
    for definition, state in pairs:
        display = state.display
        if display is AlarmDisplayState.NORMAL:
            continue
        if wanted.area and definition.area != wanted.area:
            continue
        if wanted.priority and priority_word(definition.priority) != wanted.priority:
            continue
        if not _matches_state(wanted.state, display):
            continue
        if wanted.alarm and definition.name != wanted.alarm:
            continue
        if wanted.asset and not _of_asset(definition.asset, definition.name, wanted.asset):
            continue
        if wanted.text and not _contains(
            wanted.text, definition.name, definition.message, state.message, definition.tag
        ):
            continue
        chosen.append((definition, state))
    return chosen


def history_entries(
    transitions: Sequence[AlarmTransition],
    wanted: AlarmFilter,
    definitions: Callable[[str], AlarmDef | None],
) -> list[AlarmTransition]:
    """The journaled transitions that pass the filter, newest first (``definitions`` gives
    an alarm's definition, None for one no longer engineered)."""
    chosen = []
    for transition in transitions:
        definition = definitions(transition.alarm)
        if wanted.area and transition.area != wanted.area:
            continue
        if wanted.priority and priority_word(transition.priority) != wanted.priority:
            continue
        if not _matches_state(wanted.state, transition.after):
            continue
        if wanted.alarm and transition.alarm != wanted.alarm:
            continue
        asset = definition.asset if definition is not None else ""
        if wanted.asset and not _of_asset(asset, transition.alarm, wanted.asset):
            continue
        message = definition.message if definition is not None else ""
        if wanted.text and not _contains(
            wanted.text, transition.alarm, message, transition.comment, transition.user
        ):
            continue
        chosen.append(transition)
    chosen.sort(key=lambda transition: transition.time, reverse=True)
    return chosen


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageSlice(Generic[T]):
    """One page of a list: its items, its number (from 0) and how many pages there are."""

    items: list[T]
    page: int
    pages: int
    total: int


def page_of(items: Sequence[T], page: int, size: int = PAGE_SIZE) -> PageSlice[T]:
    """Page ``page`` of ``items`` (clamped to the pages there are)."""
    pages = max(1, math.ceil(len(items) / size))
    page = max(0, min(page, pages - 1))
    return PageSlice(list(items[page * size : (page + 1) * size]), page, pages, len(items))


def value_text(value: Value | None) -> str:
    """An alarm's value as text ('—' for none)."""
    return NO_VALUE if value is None else format_value(value)


def alarm_time(state: AlarmState) -> datetime | None:
    """When an alarm last became active (or, never active, last changed)."""
    return state.activated_at or state.changed_at


def loud_count(pairs: Sequence[tuple[AlarmDef, AlarmState]]) -> int:
    """Unacknowledged alarms of high or critical priority (those that sound)."""
    return sum(
        1
        for definition, state in pairs
        if definition.priority <= AlarmPriority.HIGH and state.display in UNACKNOWLEDGED_STATES
    )


# --- actions ------------------------------------------------------------------------------------


def _refusal(error: Exception) -> str:
    # A plain KeyError's str() is the repr of its argument; the service's own say it well.
    if type(error).__str__ is KeyError.__str__ and error.args:
        return f"no alarm named {error.args[0]}"
    return str(error)


def _run(what: str, action: Callable[[], str]) -> str:
    """Run one action; its outcome or the service's refusal as text."""
    try:
        return action()
    except PermissionError as err:
        return f"Refused: {_refusal(err)}"
    except KeyError as err:
        return f"Refused: {_refusal(err)}"
    except Exception as err:
        # The service raises a refusal of its own type when the alarm's state does not allow
        # the action (a colleague was quicker, no reason given): its text is for the operator.
        return f"Could not {what}: {err}"


def acknowledge(alarms: AlarmOperations, user: User, names: Sequence[str], comment: str) -> str:
    """Acknowledge ``names`` with ``comment`` as ``user``; what happened, as text."""
    if not names:
        return "Select the alarms to acknowledge."

    def act() -> str:
        outcome = alarms.acknowledge(list(names), user, comment.strip())
        done = sorted({transition.alarm for transition in outcome.transitions})
        text = f"Acknowledged {len(done)}: {', '.join(done)}" if done else "Nothing acknowledged"
        if outcome.refused:
            text += "; not acknowledged: " + "; ".join(str(err) for err in outcome.refused)
        return text

    return _run("acknowledge", act)


def _each(names: Sequence[str], what: str, one: Callable[[str], object]) -> str:
    """Apply ``one`` to each of ``names``; one line saying what was done and what refused."""
    if not names:
        return f"Select the alarms to {what}."
    done: list[str] = []
    refused: list[str] = []
    for name in names:

        def act(name: str = name) -> str:
            one(name)
            return ""

        outcome = _run(what, act)
        if outcome:
            refused.append(outcome)
        else:
            done.append(name)
    text = f"{what.capitalize()}: {', '.join(done)}" if done else f"Nothing to {what}"
    if refused:
        text += ". " + " ".join(refused)
    return text


def shelve(
    alarms: AlarmOperations,
    user: User,
    names: Sequence[str],
    reason: str,
    duration: str,
    *,
    now: datetime | None = None,
) -> str:
    """Shelve ``names`` for ``duration`` (seconds as text, or ``one-shot``) with ``reason``."""
    one_shot = duration == ONE_SHOT
    until: datetime | None = None
    if not one_shot:
        try:
            seconds = float(duration)
        except (TypeError, ValueError):
            return "Choose how long to shelve."
        if not (math.isfinite(seconds) and seconds > 0):
            return "Choose how long to shelve."
        until = (now or utc_now()) + timedelta(seconds=seconds)
    return _each(
        names,
        "shelve",
        lambda name: alarms.shelve(name, user, reason.strip(), until=until, one_shot=one_shot),
    )


def unshelve(alarms: AlarmOperations, user: User, names: Sequence[str], reason: str) -> str:
    """Take ``names`` off their shelves."""
    return _each(names, "unshelve", lambda name: alarms.unshelve(name, user, reason.strip()))


def remove_from_service(
    alarms: AlarmOperations, user: User, names: Sequence[str], reason: str
) -> str:
    """Take ``names`` out of service (maintenance) with ``reason``."""
    return _each(
        names,
        "take out of service",
        lambda name: alarms.remove_from_service(name, user, reason.strip()),
    )


def return_to_service(
    alarms: AlarmOperations, user: User, names: Sequence[str], reason: str
) -> str:
    """Return ``names`` to service."""
    return _each(
        names,
        "return to service",
        lambda name: alarms.return_to_service(name, user, reason.strip()),
    )
