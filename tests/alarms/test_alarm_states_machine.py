"""The alarm state machine against a reference model of ISA-18.2 figure 7, over every event and
every kind of input, on a controlled clock.

The model is written the way the standard draws it (a visible state A/B/C/D or latched, and
the hiding layers: shelf, suppression, out of service, with "shown again: A or B") rather than
the way ``alarms.states`` keeps its flags, so the two agreeing is evidence, not a tautology.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import Enum

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from alarms.states import (
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
    is_hidden,
    is_notifiable,
)
from controlcenter.automation import (
    AlarmAction,
    AlarmDef,
    AlarmDisplayState,
    AlarmKind,
    AlarmState,
    AlarmTransition,
)

D = AlarmDisplayState
A = AlarmAction
T0 = datetime(2026, 3, 2, tzinfo=UTC)
MAX_SHELVE_S = 3600
POLICY = StatePolicy(max_shelve_s=MAX_SHELVE_S, max_text_chars=40)
VISIBLE = frozenset(
    {D.NORMAL, D.UNACKNOWLEDGED, D.ACKNOWLEDGED, D.RETURNED_UNACKNOWLEDGED, D.LATCHED}
)
HIDDEN = frozenset({D.SHELVED, D.SUPPRESSED, D.OUT_OF_SERVICE})
SHOWN_AGAIN = frozenset({D.NORMAL, D.UNACKNOWLEDGED})


def _pairs(befores: frozenset[D], afters: frozenset[D]) -> frozenset[tuple[D, D]]:
    return frozenset((before, after) for before in befores for after in afters)


def _same(states: frozenset[D]) -> frozenset[tuple[D, D]]:
    return frozenset((state, state) for state in states)


ALLOWED: dict[AlarmAction, frozenset[tuple[D, D]]] = {
    # Figure 7 transitions, plus the silent ones of a hidden alarm (before == after).
    A.ACTIVATE: _pairs(
        frozenset({D.NORMAL, D.RETURNED_UNACKNOWLEDGED, D.LATCHED}), frozenset({D.UNACKNOWLEDGED})
    )
    | _same(HIDDEN),
    A.CLEAR: frozenset(
        {
            (D.UNACKNOWLEDGED, D.RETURNED_UNACKNOWLEDGED),
            (D.ACKNOWLEDGED, D.NORMAL),
            (D.UNACKNOWLEDGED, D.LATCHED),
            (D.ACKNOWLEDGED, D.LATCHED),
        }
    )
    | _same(HIDDEN),
    A.ACKNOWLEDGE: frozenset(
        {
            (D.UNACKNOWLEDGED, D.ACKNOWLEDGED),
            (D.RETURNED_UNACKNOWLEDGED, D.NORMAL),
            (D.LATCHED, D.LATCHED),
        }
    ),
    A.RESET: frozenset({(D.LATCHED, D.NORMAL)}),
    A.SHELVE: _pairs(VISIBLE | {D.SUPPRESSED, D.SHELVED}, frozenset({D.SHELVED})),
    # A shelf may end underneath out of service (the alarm stays hidden).
    A.UNSHELVE: _pairs(frozenset({D.SHELVED}), SHOWN_AGAIN | {D.SUPPRESSED})
    | {(D.OUT_OF_SERVICE, D.OUT_OF_SERVICE)},
    A.SHELF_EXPIRED: _pairs(frozenset({D.SHELVED}), SHOWN_AGAIN | {D.SUPPRESSED})
    | {(D.OUT_OF_SERVICE, D.OUT_OF_SERVICE)},
    A.REMOVE_FROM_SERVICE: _pairs(
        VISIBLE | {D.SUPPRESSED, D.SHELVED}, frozenset({D.OUT_OF_SERVICE})
    ),
    A.RETURN_TO_SERVICE: _pairs(
        frozenset({D.OUT_OF_SERVICE}), SHOWN_AGAIN | {D.SUPPRESSED, D.SHELVED}
    ),
    A.SUPPRESS: _pairs(VISIBLE, frozenset({D.SUPPRESSED})) | _same(HIDDEN),
    A.UNSUPPRESS: _pairs(frozenset({D.SUPPRESSED}), SHOWN_AGAIN)
    | _same(frozenset({D.SHELVED, D.OUT_OF_SERVICE})),
    A.COMMENT: _same(VISIBLE | HIDDEN),
}


class Seen(Enum):
    """Figure 7's visible states (latched split by acknowledgement)."""

    NORMAL = "A"
    UNACKNOWLEDGED = "B"
    ACKNOWLEDGED = "C"
    RETURNED_UNACKNOWLEDGED = "D"
    LATCHED_UNACKNOWLEDGED = "L"
    LATCHED_ACKNOWLEDGED = "LA"


@dataclass(frozen=True)
class Model:
    """The reference: what the standard says the alarm is."""

    latching: bool
    process_active: bool = False
    seen: Seen = Seen.NORMAL
    shelf_until: datetime | None = None
    one_shot: bool = False
    suppressed: bool = False
    suppressed_reason: str = ""
    out_of_service: bool = False

    @property
    def shelved(self) -> bool:
        return self.one_shot or self.shelf_until is not None

    @property
    def hidden(self) -> bool:
        return self.out_of_service or self.shelved or self.suppressed

    @property
    def display(self) -> D:
        if self.out_of_service:
            return D.OUT_OF_SERVICE
        if self.shelved:
            return D.SHELVED
        if self.suppressed:
            return D.SUPPRESSED
        return {
            Seen.NORMAL: D.NORMAL,
            Seen.UNACKNOWLEDGED: D.UNACKNOWLEDGED,
            Seen.ACKNOWLEDGED: D.ACKNOWLEDGED,
            Seen.RETURNED_UNACKNOWLEDGED: D.RETURNED_UNACKNOWLEDGED,
            Seen.LATCHED_UNACKNOWLEDGED: D.LATCHED,
            Seen.LATCHED_ACKNOWLEDGED: D.LATCHED,
        }[self.seen]

    def shown_again(self) -> Model:
        """Figure 7: leaving E, F or G goes to A, or to B when the process is abnormal."""
        if self.hidden:
            return self
        return replace(self, seen=Seen.UNACKNOWLEDGED if self.process_active else Seen.NORMAL)


class Refused(Exception):
    """The model refuses the event."""


def blank(text: str) -> bool:
    return not text.strip()


def model_step(
    model: Model, event: AlarmEvent, now: datetime
) -> tuple[Model, list[tuple[AlarmAction, D, D]]]:
    """The model's next state and its transitions, or Refused."""
    steps: list[tuple[AlarmAction, D, D]] = []

    def go(new: Model, action: AlarmAction) -> Model:
        steps.append((action, model_now.display, new.display))
        return new

    model_now = model
    if model.shelf_until is not None and now >= model.shelf_until:
        model_now = go(replace(model, shelf_until=None).shown_again(), A.SHELF_EXPIRED)
    m = model_now
    match event:
        case ConditionChanged(active=active):
            if active == m.process_active:
                return m, steps
            if active:
                new = replace(m, process_active=True)
                if not m.hidden:
                    new = replace(new, seen=Seen.UNACKNOWLEDGED)
                model_now = go(new, A.ACTIVATE)
            else:
                new = replace(m, process_active=False)
                if not m.hidden:
                    if m.latching:
                        latched = m.seen is Seen.ACKNOWLEDGED
                        seen = Seen.LATCHED_ACKNOWLEDGED if latched else Seen.LATCHED_UNACKNOWLEDGED
                    else:
                        acked = m.seen is Seen.ACKNOWLEDGED
                        seen = Seen.NORMAL if acked else Seen.RETURNED_UNACKNOWLEDGED
                    new = replace(new, seen=seen)
                model_now = go(new, A.CLEAR)
                if model_now.one_shot:
                    model_now = go(
                        replace(model_now, one_shot=False).shown_again(), A.SHELF_EXPIRED
                    )
        case Acknowledge(user=user):
            after = {
                Seen.UNACKNOWLEDGED: Seen.ACKNOWLEDGED,
                Seen.RETURNED_UNACKNOWLEDGED: Seen.NORMAL,
                Seen.LATCHED_UNACKNOWLEDGED: Seen.LATCHED_ACKNOWLEDGED,
            }
            if blank(user) or m.hidden or m.seen not in after:
                raise Refused
            model_now = go(replace(m, seen=after[m.seen]), A.ACKNOWLEDGE)
        case Reset(user=user):
            latched_states = {Seen.LATCHED_UNACKNOWLEDGED, Seen.LATCHED_ACKNOWLEDGED}
            if blank(user) or m.hidden or m.seen not in latched_states:
                raise Refused
            model_now = go(replace(m, seen=Seen.NORMAL), A.RESET)
        case Shelve(user=user, reason=reason, until=until, one_shot=one_shot):
            if blank(user) or blank(reason) or m.out_of_service:
                raise Refused
            if one_shot:
                if until is not None or not m.process_active:
                    raise Refused
                model_now = go(replace(m, one_shot=True, shelf_until=None), A.SHELVE)
            else:
                end = until if until is not None else now + timedelta(seconds=MAX_SHELVE_S)
                if end <= now or end - now > timedelta(seconds=MAX_SHELVE_S):
                    raise Refused
                model_now = go(replace(m, one_shot=False, shelf_until=end), A.SHELVE)
        case Unshelve(user=user):
            if blank(user) or not m.shelved:
                raise Refused
            new = replace(m, one_shot=False, shelf_until=None).shown_again()
            model_now = go(new, A.UNSHELVE)
        case ShelfCheck():
            pass
        case RemoveFromService(user=user, reason=reason):
            if blank(user) or blank(reason) or m.out_of_service:
                raise Refused
            model_now = go(replace(m, out_of_service=True), A.REMOVE_FROM_SERVICE)
        case ReturnToService(user=user):
            if blank(user) or not m.out_of_service:
                raise Refused
            model_now = go(replace(m, out_of_service=False).shown_again(), A.RETURN_TO_SERVICE)
        case Suppression(suppressed=suppressed, reason=reason):
            if suppressed:
                if not (m.suppressed and m.suppressed_reason == reason.strip()):
                    new = replace(m, suppressed=True, suppressed_reason=reason.strip())
                    model_now = go(new, A.SUPPRESS)
            elif m.suppressed:
                new = replace(m, suppressed=False, suppressed_reason="").shown_again()
                model_now = go(new, A.UNSUPPRESS)
        case Comment(user=user, comment=comment):
            if blank(user) or blank(comment):
                raise Refused
            model_now = go(m, A.COMMENT)
    return model_now, steps


# Valid inputs are drawn most of the time, so that long sequences of accepted actions happen.
USERS = st.sampled_from(["olga", "piet", "", "  ", "x" * 41]) | st.just("olga")
TEXTS = st.sampled_from(["", " ", "line\nbreak", "esc\x1b", "x" * 41]) | st.sampled_from(
    ["chattering", "work order 4711"]
)
REASONS = st.sampled_from(["", "pump stopped", "comm lost", " pump stopped "])


def bad_text(text: str) -> bool:
    """Text the machine refuses beyond the model's blank check (too long, control characters)."""
    stripped = text.strip()
    return len(stripped) > 40 or "\x1b" in stripped


class AlarmStateMachine(RuleBasedStateMachine):
    """Random sequences of every event against the model, with the journal kept."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.definition = AlarmDef(name="a", kind=AlarmKind.HIGH, tag="t", limit=1.0)
        self.state = AlarmState("a")
        self.model = Model(latching=False)
        self.journal: list[AlarmTransition] = []

    @initialize(latching=st.booleans())
    def choose_definition(self, latching: bool) -> None:
        self.definition = replace(self.definition, latching=latching)
        self.model = Model(latching=latching)

    def step(self, event: AlarmEvent, *texts: str) -> None:
        """Apply ``event`` to both; they must agree on refusal, transitions and display."""
        try:
            expected_model, expected = model_step(self.model, event, self.now)
            if any(bad_text(text) for text in texts):
                raise Refused
        except Refused:
            before = self.state
            try:
                apply(self.definition, self.state, event, self.now, POLICY)
            except AlarmActionError as error:
                assert error.reason and error.alarm == "a"
            else:
                raise AssertionError(f"{event} should have been refused in {before}")
            return
        outcome = apply(self.definition, self.state, event, self.now, POLICY)
        got = [(t.action, t.before, t.after) for t in outcome.transitions]
        assert got == expected, (event, self.state, got, expected)
        for transition in outcome.transitions:
            assert (transition.before, transition.after) in ALLOWED[transition.action], transition
            assert transition.time <= self.now
        if outcome.state != self.state:
            assert outcome.transitions, "a state change without a transition"
        self.journal.extend(outcome.transitions)
        self.state = outcome.state
        self.model = expected_model

    # -- the clock

    @rule(seconds=st.integers(min_value=0, max_value=2 * MAX_SHELVE_S))
    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @precondition(lambda self: self.state.shelved_until is not None)
    @rule(offset=st.sampled_from([-1, 0, 1]))
    def advance_to_the_shelf_end(self, offset: int) -> None:
        assert self.state.shelved_until is not None
        target = self.state.shelved_until + timedelta(microseconds=offset)
        self.now = max(self.now, target)

    @rule()
    def shelf_check(self) -> None:
        shelf_end = self.state.shelved_until
        self.step(ShelfCheck())
        if shelf_end is not None and self.now < shelf_end:
            assert self.state.shelved_until == shelf_end, "a timed shelf ended before its expiry"
        if shelf_end is not None and self.now >= shelf_end:
            assert self.state.shelved_until is None

    # -- the condition and design

    @rule(active=st.booleans(), value=st.floats(allow_nan=False) | st.none(), message=TEXTS)
    def condition(self, active: bool, value: float | None, message: str) -> None:
        was_one_shot = self.state.one_shot
        self.step(ConditionChanged(active, value, message))
        if was_one_shot and not active:
            assert not self.state.shelved, "a one-shot shelf outlived the condition"

    @rule(suppressed=st.booleans(), reason=REASONS)
    def suppression(self, suppressed: bool, reason: str) -> None:
        self.step(Suppression(suppressed, reason))

    # -- people

    @rule(user=USERS, comment=TEXTS)
    def acknowledge(self, user: str, comment: str) -> None:
        self.step(Acknowledge(user, comment), user, comment)

    @rule(user=USERS, comment=TEXTS)
    def reset(self, user: str, comment: str) -> None:
        self.step(Reset(user, comment), user, comment)

    @rule(
        user=USERS,
        reason=TEXTS,
        seconds=st.sampled_from([-60, 0, 1, 600, MAX_SHELVE_S, MAX_SHELVE_S + 1])
        | st.integers(min_value=-10, max_value=MAX_SHELVE_S + 10)
        | st.none(),
    )
    def shelve_for_a_time(self, user: str, reason: str, seconds: int | None) -> None:
        until = None if seconds is None else self.now + timedelta(seconds=seconds)
        self.step(Shelve(user, reason, until), user, reason)

    @rule(user=USERS, reason=TEXTS, with_an_end=st.booleans())
    def shelve_one_shot(self, user: str, reason: str, with_an_end: bool) -> None:
        until = self.now + timedelta(seconds=60) if with_an_end else None
        self.step(Shelve(user, reason, until, one_shot=True), user, reason)

    @rule(user=USERS, reason=TEXTS)
    def unshelve(self, user: str, reason: str) -> None:
        self.step(Unshelve(user, reason), user, reason)

    @rule(user=USERS, reason=TEXTS)
    def remove_from_service(self, user: str, reason: str) -> None:
        self.step(RemoveFromService(user, reason), user, reason)

    @rule(user=USERS, reason=TEXTS)
    def return_to_service(self, user: str, reason: str) -> None:
        self.step(ReturnToService(user, reason), user, reason)

    @rule(user=USERS, comment=TEXTS)
    def comment(self, user: str, comment: str) -> None:
        self.step(Comment(user, comment), user, comment)

    # -- invariants

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert self.state.display is self.model.display
        assert self.state.active is self.model.process_active
        assert self.state.one_shot is self.model.one_shot
        assert self.state.out_of_service is self.model.out_of_service
        assert self.state.suppressed is self.model.suppressed

    @invariant()
    def the_journal_chains_to_the_state(self) -> None:
        display = D.NORMAL
        for transition in self.journal:
            assert transition.before is display
            display = transition.after
        assert display is self.state.display
        changes = [t for t in self.journal if t.action is not A.COMMENT]
        assert self.state.changed_at == (changes[-1].time if changes else None)

    @invariant()
    def hidden_alarms_are_never_unacknowledged_nor_notified(self) -> None:
        if is_hidden(self.state.display):
            assert self.state.acknowledged and not self.state.latched
        for transition in self.journal:
            if is_notifiable(transition):
                assert transition.after is D.UNACKNOWLEDGED
                assert transition.action in {
                    A.ACTIVATE,
                    A.UNSHELVE,
                    A.SHELF_EXPIRED,
                    A.RETURN_TO_SERVICE,
                    A.UNSUPPRESS,
                }
            if is_hidden(transition.after):
                # Out of service, shelved, suppressed: tracked and journaled, never notified.
                assert not is_notifiable(transition)

    @invariant()
    def shelves_and_latches_are_consistent(self) -> None:
        state = self.state
        if state.one_shot:
            assert state.active and state.shelved and state.shelved_until is None
        if state.shelved_until is not None:
            assert state.shelved
            assert state.shelved_until - (state.changed_at or T0) <= timedelta(seconds=MAX_SHELVE_S)
        if state.latched:
            assert self.definition.latching and not state.active and not is_hidden(state.display)


AlarmStateMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAlarmStateMachine = AlarmStateMachine.TestCase
