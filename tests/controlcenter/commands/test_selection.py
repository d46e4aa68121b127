"""Stage 5: select-before-operate: one holder per point, same user, before expiry."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from controlcenter.commands.authorisation import AuthorisationError
from controlcenter.commands.pipeline import UNKNOWN_SELECTION_TAG
from controlcenter.commands.selection import (
    ForeignSelectionError,
    PointReservedError,
    SelectionBook,
    SelectionError,
    SelectionExpiredError,
    UnknownSelectionError,
)
from controlcenter.model import (
    CommandLimits,
    CommandStatus,
    DataType,
    EventKind,
    Quality,
    Sample,
    Selection,
)
from historian.store import SqlHistorian
from plc_sim.city import SimulatedCity
from tests.controlcenter.commands.support import (
    LEVEL,
    PUMP,
    START,
    TAGS,
    USERS,
    VALVE,
    VALVE_TAG,
    FixedInterlocks,
    ManualClock,
    PipelineFactory,
    pump_command,
    valve_position,
)

OLGA, OTTO, VERA, LUKE = USERS["olga"], USERS["otto"], USERS["vera"], USERS["luke"]
LIMITS = CommandLimits(DataType.BOOL, None, None, "", None, 0.0)


def selection(tag: str, user: str, selection_id: str = "s1") -> Selection:
    return Selection(selection_id, tag, user, None, LIMITS, None, START, START)


def test_book_one_holder_per_point() -> None:
    book = SelectionBook()
    book.add(selection(PUMP, "olga"), deadline=30.0)
    with pytest.raises(PointReservedError) as raised:
        book.check_free(PUMP, "otto", now=29.9)
    assert raised.value.holder == "olga"
    assert str(raised.value) == f"{PUMP} is selected by olga until 2026-03-02T08:00:00+00:00"
    assert book.check_free(PUMP, "olga", now=10.0) is not None  # her own, to be replaced
    assert book.check_free(PUMP, "otto", now=30.0) is None  # lapsed
    assert book.check_free(VALVE, "otto", now=1.0) is None


def test_book_take_checks_owner_and_time() -> None:
    book = SelectionBook()
    book.add(selection(PUMP, "olga"), deadline=30.0)
    with pytest.raises(ForeignSelectionError):
        book.take("s1", "otto", now=1.0)
    assert book.take("s1", "olga", now=1.0).tag == PUMP  # the foreign attempt left it in place
    with pytest.raises(UnknownSelectionError):
        book.take("s1", "olga", now=2.0)  # used up
    book.add(selection(PUMP, "olga", "s2"), deadline=30.0)
    with pytest.raises(SelectionExpiredError):
        book.take("s2", "olga", now=30.0)
    assert book.peek("s2") is None


def test_book_replaces_and_expires() -> None:
    book = SelectionBook()
    book.add(selection(PUMP, "olga", "a"), deadline=30.0)
    book.add(selection(PUMP, "olga", "b"), deadline=40.0)
    assert book.peek("a") is None
    book.add(selection(VALVE, "otto", "c"), deadline=35.0)
    assert [s.selection_id for s in book.expire(now=35.0)] == ["c"]
    assert [s.selection_id for s in book.expire(now=40.0)] == ["b"]
    assert SelectionBook.new_id() != SelectionBook.new_id()
    assert len(SelectionBook.new_id()) >= 24


async def test_select_shows_value_limits_interlock_and_expiry(
    store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    level = Sample(VALVE, 42.0, Quality.good(), START, START)
    stepped = dataclasses.replace(VALVE_TAG, max_step=5.0)
    interlocks = FixedInterlocks({(PUMP, True): "ps1.reservoir_high: tank 2 high"})
    pipeline = make_pipeline(
        tags=(*TAGS[:2], stepped), latest={VALVE: level}.get, interlocks=interlocks
    )
    valve = await pipeline.select(VALVE, OLGA)
    assert valve.user == "olga" and valve.tag == VALVE
    assert valve.current == level
    assert valve.limits == CommandLimits(DataType.FLOAT, 0.0, 100.0, "%", 5.0, 0.0)
    assert valve.blocking_interlock is None
    assert valve.expires_at == START + timedelta(seconds=30)
    pump = await pipeline.select(PUMP, OLGA)
    assert pump.current is None
    assert pump.blocking_interlock == "ps1.reservoir_high: tank 2 high (blocks true)"
    assert [e.message for e in store.read_events(kind=EventKind.COMMAND)] == [
        f"{VALVE} selected by olga until 2026-03-02T08:00:30+00:00",
        f"{PUMP} selected by olga until 2026-03-02T08:00:30+00:00",
    ]


async def test_two_users_selecting_one_point(
    tank_city: SimulatedCity, store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    pipeline = make_pipeline()
    held = await pipeline.select(PUMP, OLGA)
    with pytest.raises(PointReservedError, match="selected by olga") as raised:
        await pipeline.select(PUMP, OTTO)
    assert raised.value.holder == "olga"
    # Otto forges an operate with Olga's selection id: rejected, journaled, nothing written.
    forged = await pipeline.operate(held.selection_id, OTTO, True, "mine now")
    assert forged.status is CommandStatus.REJECTED
    assert forged.reason == f"the selection of {PUMP} belongs to another user"
    assert pump_command(tank_city) is False
    # Olga's selection survived the forgery.
    result = await pipeline.operate(held.selection_id, OLGA, True, "fill for inspection")
    assert result.status is CommandStatus.CONFIRMED, result.reason
    assert pump_command(tank_city) is True
    journal = store.read_commands()
    assert [(r.command.requested_by, r.status) for r in journal] == [
        ("otto", CommandStatus.REJECTED),
        ("olga", CommandStatus.CONFIRMED),
    ]
    events = [e.message for e in store.read_events()]
    assert (
        f"selection of {PUMP} refused: {PUMP} is selected by olga until "
        "2026-03-02T08:00:30+00:00" in events
    )
    assert f"{PUMP} operated by olga := True: fill for inspection" in events
    # Used up: a second operate on the same selection is refused.
    again = await pipeline.operate(held.selection_id, OLGA, False, "again")
    assert again.status is CommandStatus.REJECTED
    assert again.command.tag == UNKNOWN_SELECTION_TAG
    assert again.reason == "unknown selection (never made, operated or cancelled)"


async def test_an_expired_selection_cannot_operate(
    tank_city: SimulatedCity,
    store: SqlHistorian,
    clock: ManualClock,
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = make_pipeline(selection_timeout_s=10.0)
    held = await pipeline.select(VALVE, OLGA)
    clock.advance(10.0)
    late = await pipeline.operate(held.selection_id, OLGA, 50.0, "too late")
    assert late.status is CommandStatus.REJECTED
    assert late.reason == f"the selection of {VALVE} expired at 2026-03-02T08:00:10+00:00"
    assert valve_position(tank_city) == pytest.approx(100.0)
    (journaled,) = store.read_commands()
    assert journaled.command.tag == VALVE and journaled.reason == late.reason
    assert f"selection of {VALVE} by olga expired" in [e.message for e in store.read_events()]
    # The point is free again for another operator.
    assert (await pipeline.select(VALVE, OTTO)).user == "otto"


async def test_a_lapsed_selection_frees_the_point_and_is_journaled(
    store: SqlHistorian, clock: ManualClock, make_pipeline: PipelineFactory
) -> None:
    pipeline = make_pipeline()
    await pipeline.select(PUMP, OLGA)
    clock.advance(29.0)
    assert await pipeline.expire_selections() == []
    clock.advance(1.0)
    assert await pipeline.expire_overrides() == []  # no override; it sweeps selections too
    assert await pipeline.expire_selections() == []  # already swept
    assert (await pipeline.select(PUMP, OTTO)).user == "otto"
    messages = [e.message for e in store.read_events()]
    assert messages.count(f"selection of {PUMP} by olga expired") == 1


async def test_cancel(store: SqlHistorian, make_pipeline: PipelineFactory) -> None:
    pipeline = make_pipeline()
    held = await pipeline.select(PUMP, OLGA)
    with pytest.raises(ForeignSelectionError):
        await pipeline.cancel(held.selection_id, OTTO)
    await pipeline.cancel(held.selection_id, OLGA)
    with pytest.raises(UnknownSelectionError):
        await pipeline.cancel(held.selection_id, OLGA)
    assert (await pipeline.select(PUMP, OTTO)).user == "otto"
    assert f"selection of {PUMP} cancelled by olga" in [e.message for e in store.read_events()]


async def test_select_refuses_viewers_foreign_areas_and_points_that_cannot_be_commanded(
    store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    pipeline = make_pipeline()
    with pytest.raises(AuthorisationError, match="role viewer"):
        await pipeline.select(PUMP, VERA)
    with pytest.raises(AuthorisationError, match="outside the areas of user 'luke'"):
        await pipeline.select(PUMP, LUKE)
    with pytest.raises(SelectionError, match="read-only"):
        await pipeline.select(LEVEL, OLGA)
    with pytest.raises(SelectionError, match="unknown tag"):
        await pipeline.select("water.nope", OLGA)
    assert len(store.read_events(kind=EventKind.AUDIT)) == 2


async def test_operate_with_a_forged_value_is_rejected(
    tank_city: SimulatedCity, store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    pipeline = make_pipeline()
    held = await pipeline.select(VALVE, OLGA)
    result = await pipeline.operate(held.selection_id, OLGA, float("nan"), "x")
    assert result.status is CommandStatus.REJECTED
    assert result.reason == "limits: nan is not a finite number"
    assert valve_position(tank_city) == pytest.approx(100.0)
    assert pipeline.overrides() == []
    (journaled,) = store.read_commands()
    assert journaled.reason == result.reason
