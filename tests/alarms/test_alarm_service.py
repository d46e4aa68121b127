"""The alarm service on a real SQLite historian: roles, journaling, persistence and restore,
condition changes, shelf expiry on a controlled clock, and the request queue it applies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alarms.conditions import ConditionChange
from alarms.requests import AlarmRequestProcessor
from alarms.service import AlarmPermissionError, AlarmService, UnknownAlarmError
from alarms.states import AlarmActionError
from controlcenter.automation import (
    AlarmAction,
    AlarmDef,
    AlarmDisplayState,
    AlarmKind,
    AlarmPriority,
    AlarmState,
    AlarmTransition,
)
from controlcenter.model import Event, EventKind, Role, User
from controlcenter.ports import AlarmRequestStatus
from historian.store import SqlHistorian

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
HIGH = AlarmDef(
    "water.tank1.level_high",
    AlarmKind.HIGH,
    AlarmPriority.HIGH,
    tag="water.tank1.level",
    device="water.rtu1",
    limit=4.0,
    area="water",
)
PUMP = AlarmDef(
    "water.ps1.pump1_fail",
    AlarmKind.COMMAND_MISMATCH,
    AlarmPriority.CRITICAL,
    tag="water.ps1.pump1.run",
    device="water.rtu2",
    latching=True,
    area="water",
)
LAMP = AlarmDef("lights.d1.lamp", AlarmKind.DISCRETE, AlarmPriority.LOW, area="lighting")
DEFS = (HIGH, PUMP, LAMP)

VIEWER = User("vera", Role.VIEWER)
OPERATOR = User("otto", Role.OPERATOR)
WATER_OPERATOR = User("wanda", Role.OPERATOR, ("water",))
MAINTENANCE = User("mia", Role.MAINTENANCE)
ENGINEER = User("erin", Role.ENGINEER)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.current = start

    @property
    def speed(self) -> float:
        return 1.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return (self.current - T0).total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class StoreJournal:
    """The EventJournal port over the historian's event journal."""

    def __init__(self, store: SqlHistorian) -> None:
        self.store = store

    def record(self, event: Event) -> None:
        self.store.journal_event(event)


class Recorder:
    """An AlarmListener keeping what it was told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, AlarmDisplayState, AlarmAction]] = []

    def on_transition(
        self, definition: AlarmDef, state: AlarmState, transition: AlarmTransition
    ) -> None:
        self.seen.append((definition.name, state.display, transition.action))


class Exploding:
    """A listener that fails: the service must carry on."""

    def on_transition(
        self, definition: AlarmDef, state: AlarmState, transition: AlarmTransition
    ) -> None:
        raise RuntimeError("listener bug")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlHistorian]:
    opened = SqlHistorian(f"sqlite:///{tmp_path / 'alarms.db'}")
    yield opened
    opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_service(store: SqlHistorian, clock: FakeClock, *listeners: object) -> AlarmService:
    service = AlarmService(DEFS, store, StoreJournal(store), clock, listeners=listeners)  # type: ignore[arg-type]
    service.restore()
    return service


def change(alarm: str, active: bool | None, seconds: float = 0, **extra: object) -> ConditionChange:
    return ConditionChange(
        alarm=alarm,
        time=T0 + timedelta(seconds=seconds),
        active=active,
        suppressed=extra.get("suppressed"),  # type: ignore[arg-type]
        value=extra.get("value", 4.6),  # type: ignore[arg-type]
        message="level high",
        reason=str(extra.get("reason", "")),
    )


def display(service: AlarmService, name: str) -> AlarmDisplayState:
    return service.state(name).display


def refusals(store: SqlHistorian) -> list[Event]:
    return [e for e in store.read_events() if e.message.startswith("refused")]


def test_activation_is_saved_journaled_twice_and_told_to_listeners(
    store: SqlHistorian, clock: FakeClock
) -> None:
    recorder = Recorder()
    service = make_service(store, clock, Exploding(), recorder)
    transitions = service.apply_conditions([change(HIGH.name, True)])
    assert [t.action for t in transitions] == [AlarmAction.ACTIVATE]
    assert recorder.seen == [
        (HIGH.name, AlarmDisplayState.UNACKNOWLEDGED, AlarmAction.ACTIVATE)
    ]  # the exploding listener before it did not stop it
    assert store.load_alarm_states() == [service.state(HIGH.name)]
    (journaled,) = store.read_alarm_journal()
    assert (journaled.tag, journaled.device, journaled.area) == (
        "water.tank1.level",
        "water.rtu1",
        "water",
    )
    entries = store.read_event_entries(kind=EventKind.ALARM)
    assert [(e.event.source, e.tag, e.area) for e in entries] == [
        (HIGH.name, "water.tank1.level", "water")
    ]
    # Unknown alarms from the engine are skipped, not fatal.
    assert service.apply_conditions([change("nope", True)]) == []


def test_every_role_may_do_what_its_role_allows(store: SqlHistorian, clock: FakeClock) -> None:
    service = make_service(store, clock)
    service.apply_conditions([change(HIGH.name, True), change(LAMP.name, True)])
    with pytest.raises(AlarmPermissionError, match="needs the operator role"):
        service.acknowledge([HIGH.name], VIEWER)
    with pytest.raises(AlarmPermissionError):
        service.shelve(HIGH.name, VIEWER, "because")
    with pytest.raises(AlarmPermissionError, match="maintenance role"):
        service.remove_from_service(HIGH.name, OPERATOR, "sensor swap")
    assert display(service, HIGH.name) is AlarmDisplayState.UNACKNOWLEDGED
    service.acknowledge([HIGH.name], OPERATOR, "seen")
    assert display(service, HIGH.name) is AlarmDisplayState.ACKNOWLEDGED
    service.shelve(LAMP.name, OPERATOR, "lamp replaced tomorrow", until=T0 + timedelta(hours=2))
    assert display(service, LAMP.name) is AlarmDisplayState.SHELVED
    service.unshelve(LAMP.name, OPERATOR, "done early")
    assert display(service, LAMP.name) is AlarmDisplayState.UNACKNOWLEDGED  # re-annunciated
    service.remove_from_service(LAMP.name, MAINTENANCE, "circuit rebuilt")
    assert display(service, LAMP.name) is AlarmDisplayState.OUT_OF_SERVICE
    service.return_to_service(LAMP.name, ENGINEER, "rebuilt")
    service.comment(HIGH.name, MAINTENANCE, "float switch sticks")
    # An operator limited to the water area may not act on lighting.
    with pytest.raises(AlarmPermissionError, match="outside the areas"):
        service.acknowledge([LAMP.name], WATER_OPERATOR)
    actions = [(t.alarm, t.action, t.user) for t in store.read_alarm_journal() if t.user]
    assert actions == [
        (HIGH.name, AlarmAction.ACKNOWLEDGE, "otto"),
        (LAMP.name, AlarmAction.SHELVE, "otto"),
        (LAMP.name, AlarmAction.UNSHELVE, "otto"),
        (LAMP.name, AlarmAction.REMOVE_FROM_SERVICE, "mia"),
        (LAMP.name, AlarmAction.RETURN_TO_SERVICE, "erin"),
        (HIGH.name, AlarmAction.COMMENT, "mia"),
    ]
    refused = refusals(store)
    assert [(e.user, e.source) for e in refused] == [
        ("vera", HIGH.name),
        ("vera", HIGH.name),
        ("otto", HIGH.name),
        ("wanda", LAMP.name),
    ]
    assert all(e.kind is EventKind.ALARM for e in refused)


def test_refused_state_actions_and_unknown_names_are_journaled(
    store: SqlHistorian, clock: FakeClock
) -> None:
    service = make_service(store, clock)
    with pytest.raises(AlarmActionError, match="already acknowledged"):
        service.acknowledge([HIGH.name], OPERATOR)
    with pytest.raises(UnknownAlarmError, match=r"'no\.such\.alarm'"):
        service.acknowledge([HIGH.name, "no.such.alarm"], OPERATOR)
    with pytest.raises(AlarmActionError, match="reason is required"):
        service.shelve(HIGH.name, OPERATOR, "   ")
    with pytest.raises(AlarmActionError, match="at most 8 h"):
        service.shelve(HIGH.name, OPERATOR, "decade", until=T0 + timedelta(days=3650))
    with pytest.raises(AlarmActionError, match="not shelved"):
        service.unshelve(HIGH.name, OPERATOR)
    with pytest.raises(ValueError, match="at least one alarm"):
        service.acknowledge([], OPERATOR)
    assert display(service, HIGH.name) is AlarmDisplayState.NORMAL
    assert store.read_alarm_journal() == []  # nothing changed
    messages = [e.message for e in refusals(store)]
    assert len(messages) == 5
    assert "no alarm named 'no.such.alarm'" in messages[1]
    assert "at most 8 h" in messages[3]


def test_acknowledging_several_acknowledges_those_that_can_be(
    store: SqlHistorian, clock: FakeClock
) -> None:
    service = make_service(store, clock)
    service.apply_conditions([change(HIGH.name, True), change(PUMP.name, True)])
    service.acknowledge([PUMP.name], OPERATOR)
    result = service.acknowledge([HIGH.name, PUMP.name, HIGH.name], OPERATOR, "both")
    assert [t.alarm for t in result.transitions] == [HIGH.name]
    assert [err.alarm for err in result.refused] == [PUMP.name]
    assert display(service, HIGH.name) is AlarmDisplayState.ACKNOWLEDGED


def test_latching_alarm_needs_a_reset_after_it_clears(
    store: SqlHistorian, clock: FakeClock
) -> None:
    service = make_service(store, clock)
    service.apply_conditions([change(PUMP.name, True, value=False)])
    service.acknowledge([PUMP.name], OPERATOR)
    service.apply_conditions([change(PUMP.name, False, 30, value=True)])
    assert display(service, PUMP.name) is AlarmDisplayState.LATCHED
    with pytest.raises(AlarmPermissionError):
        service.reset(PUMP.name, VIEWER)
    service.reset(PUMP.name, OPERATOR, "pump restarted by hand")
    assert display(service, PUMP.name) is AlarmDisplayState.NORMAL


def test_a_restart_restores_every_kind_of_state(store: SqlHistorian, clock: FakeClock) -> None:
    service = make_service(store, clock)
    service.apply_conditions(
        [change(HIGH.name, True), change(PUMP.name, True), change(LAMP.name, True)]
    )
    service.acknowledge([HIGH.name], OPERATOR)
    shelf_end = T0 + timedelta(hours=1)
    service.shelve(PUMP.name, OPERATOR, "pump on manual", until=shelf_end)
    service.remove_from_service(LAMP.name, MAINTENANCE, "district dark for works")
    before = {name: service.state(name) for name in (HIGH.name, PUMP.name, LAMP.name)}
    # A new service on the same database file, as after a restart; one alarm dropped from the
    # site, one added.
    store.save_alarm_states([AlarmState("retired.alarm", active=True)])
    added = AlarmDef("water.new", AlarmKind.HIGH, area="water")
    reopened = AlarmService((*DEFS, added), store, StoreJournal(store), clock)
    restored = {state.name: state for state in reopened.restore()}
    assert {name: restored[name] for name in before} == before
    assert restored["water.new"] == AlarmState("water.new")
    assert "retired.alarm" not in restored
    assert reopened.state(PUMP.name).shelved_until == shelf_end
    assert display(reopened, HIGH.name) is AlarmDisplayState.ACKNOWLEDGED
    assert display(reopened, LAMP.name) is AlarmDisplayState.OUT_OF_SERVICE
    assert any("retired.alarm" in e.message for e in store.read_events(kind=EventKind.SYSTEM))
    # The shelf still expires on time after the restart.
    assert reopened.next_shelf_expiry() == shelf_end
    clock.advance(3599)
    assert reopened.expire_shelves() == []
    clock.advance(1)
    (expired,) = reopened.expire_shelves()
    assert expired.action is AlarmAction.SHELF_EXPIRED
    assert display(reopened, PUMP.name) is AlarmDisplayState.UNACKNOWLEDGED


def test_suppression_before_activation_keeps_it_silent_and_filters_work(
    store: SqlHistorian, clock: FakeClock
) -> None:
    recorder = Recorder()
    service = make_service(store, clock, recorder)
    service.apply_conditions(
        [change(HIGH.name, True, suppressed=True, reason="water.rtu1.comm active")]
    )
    assert display(service, HIGH.name) is AlarmDisplayState.SUPPRESSED
    assert [a for _, _, a in recorder.seen] == [AlarmAction.SUPPRESS, AlarmAction.ACTIVATE]
    service.apply_conditions([change(LAMP.name, True, 5)])
    assert [d.name for d, _ in service.states()] == [PUMP.name, HIGH.name, LAMP.name]
    assert [d.name for d, _ in service.states(area="lighting")] == [LAMP.name]
    assert [d.name for d, _ in service.states(priority=AlarmPriority.HIGH)] == [
        PUMP.name,
        HIGH.name,
    ]
    assert [d.name for d, _ in service.states(active_only=True)] == [HIGH.name, LAMP.name]
    unacked = service.states(displays={AlarmDisplayState.UNACKNOWLEDGED})
    assert [d.name for d, _ in unacked] == [LAMP.name]


def test_a_failing_database_keeps_alarms_running_and_writes_later(
    store: SqlHistorian, clock: FakeClock
) -> None:
    class Flaky:
        """An AlarmStore over the real one that fails until repaired."""

        def __init__(self) -> None:
            self.broken = True

        def __getattr__(self, name: str) -> object:
            if self.broken and name in {"save_alarm_states", "journal_alarm_transitions"}:
                raise AttributeError(name)
            return getattr(store, name)

    flaky = Flaky()
    service = AlarmService(DEFS, flaky, StoreJournal(store), clock)  # type: ignore[arg-type]
    service.restore()
    service.apply_conditions([change(HIGH.name, True)])
    assert display(service, HIGH.name) is AlarmDisplayState.UNACKNOWLEDGED
    assert store.read_alarm_journal() == []
    flaky.broken = False
    assert service.flush()
    assert [t.action for t in store.read_alarm_journal()] == [AlarmAction.ACTIVATE]
    assert store.load_alarm_states() == [service.state(HIGH.name)]


# --- the request queue -------------------------------------------------------------------------


def users(name: str) -> User:
    known = {u.name: u for u in (VIEWER, OPERATOR, MAINTENANCE, ENGINEER)}
    return known[name]


def test_queued_requests_are_applied_with_roles_and_decided(
    store: SqlHistorian, clock: FakeClock
) -> None:
    service = make_service(store, clock)
    service.apply_conditions([change(HIGH.name, True), change(LAMP.name, True)])
    processor = AlarmRequestProcessor(service, store, users, clock, wall_now=clock.now)
    ack = store.add_alarm_request("acknowledge", [HIGH.name], "otto", "seen", T0)
    viewer = store.add_alarm_request("acknowledge", [LAMP.name], "vera", "", T0)
    shelve = store.add_alarm_request("shelve", [LAMP.name], "otto", "works", T0, duration_s=600)
    decade = store.add_alarm_request(
        "shelve", [HIGH.name], "otto", "forever", T0, duration_s=3650 * 86400.0
    )
    forged = store.add_alarm_request("delete_everything", [HIGH.name], "erin", "", T0)
    stranger = store.add_alarm_request("comment", [HIGH.name], "mallory", "hi", T0)
    unknown = store.add_alarm_request("acknowledge", ["no.such"], "otto", "", T0)
    two = store.add_alarm_request("reset", [HIGH.name, LAMP.name], "otto", "", T0)
    decided = {r.id: r for r in processor.poll_requests_once()}
    assert decided[ack.id].status is AlarmRequestStatus.DONE
    assert "acknowledge (unacknowledged -> acknowledged)" in decided[ack.id].detail
    assert decided[viewer.id].status is AlarmRequestStatus.REFUSED
    assert "operator role" in decided[viewer.id].detail
    assert decided[shelve.id].status is AlarmRequestStatus.DONE
    assert service.state(LAMP.name).shelved_until == T0 + timedelta(minutes=10)
    assert "at most 8 h" in decided[decade.id].detail
    assert decided[forged.id].detail == "unknown action 'delete_everything'"
    assert decided[stranger.id].detail == "unknown user 'mallory'"
    assert "no alarm named 'no.such'" in decided[unknown.id].detail
    assert "exactly one alarm" in decided[two.id].detail
    assert store.pending_alarm_requests() == []
    assert processor.poll_requests_once() == []
    # The refusals the service saw are journaled like the HMI's.
    assert {e.user for e in refusals(store)} >= {"vera", "otto"}


def test_stale_requests_are_refused(store: SqlHistorian, clock: FakeClock) -> None:
    service = make_service(store, clock)
    service.apply_conditions([change(HIGH.name, True)])
    old = store.add_alarm_request("acknowledge", [HIGH.name], "otto", "", T0)
    clock.advance(3600)
    processor = AlarmRequestProcessor(service, store, users, clock, wall_now=clock.now)
    (decided,) = processor.poll_requests_once()
    assert decided.id == old.id and decided.detail.startswith("stale")
    assert display(service, HIGH.name) is AlarmDisplayState.UNACKNOWLEDGED
