"""The alarm engine on a controlled time base: every kind raising and clearing, delays,
deadband, communication loss, suppression and hostile input."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from alarms.conditions import ConditionChange
from alarms.engine import AlarmEngine
from controlcenter.automation import AlarmDef, AlarmKind, Expression, SiteLocation
from controlcenter.model import DataType, Quality, Sample, Substatus, TagDef, Value

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SITE = SiteLocation(52.37, 4.90, "Europe/Amsterdam")
GOOD = Quality.good()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sample(tag: str, value: Value | None, seconds: float, quality: Quality = GOOD) -> Sample:
    return Sample(tag, value, quality, at(seconds), at(seconds))


def comm_bad(tag: str, seconds: float) -> Sample:
    return sample(tag, None, seconds, Quality.bad(Substatus.COMM_FAILURE, "no answer"))


def activity(changes: Sequence[ConditionChange]) -> list[tuple[str, bool | None]]:
    return [(change.alarm, change.active) for change in changes]


TAGS = (
    TagDef("tank.level", "plc1", "x", DataType.FLOAT),
    TagDef("tank.sp", "plc1", "x", DataType.FLOAT),
    TagDef("pump.run", "plc1", "x", DataType.BOOL),
    TagDef("pump.cmd", "plc1", "x", DataType.BOOL, writable=True),
    TagDef("pump.mode", "plc1", "x", DataType.STRING),
    TagDef("pump.flow", "plc1", "x", DataType.FLOAT),
    TagDef("other.level", "plc2", "x", DataType.FLOAT),
)


def engine(*definitions: AlarmDef, tags: Sequence[TagDef] = TAGS) -> AlarmEngine:
    return AlarmEngine(definitions, tags, SITE)


def high(
    name: str = "hi",
    *,
    deadband: float = 0.0,
    on_delay_s: float = 0.0,
    off_delay_s: float = 0.0,
) -> AlarmDef:
    return AlarmDef(
        name,
        AlarmKind.HIGH,
        tag="tank.level",
        limit=80.0,
        deadband=deadband,
        on_delay_s=on_delay_s,
        off_delay_s=off_delay_s,
    )


# --- limits -----------------------------------------------------------------------------------


def test_high_limit_raises_above_and_clears_only_inside_the_deadband() -> None:
    alarms = engine(high(deadband=5.0))
    assert alarms.feed([sample("tank.level", 70.0, 0)], at(0)) == []
    raised = alarms.feed([sample("tank.level", 81.5, 1)], at(1))
    assert activity(raised) == [("hi", True)]
    assert raised[0].value == 81.5 and raised[0].time == at(1)
    assert "above high limit 80" in raised[0].reason
    assert alarms.feed([sample("tank.level", 78.0, 2)], at(2)) == []  # inside the deadband
    cleared = alarms.feed([sample("tank.level", 75.0, 3)], at(3))
    assert activity(cleared) == [("hi", False)]
    assert alarms.active() == frozenset()


def test_low_low_limit_raises_and_clears() -> None:
    alarms = engine(AlarmDef("ll", AlarmKind.LOW_LOW, tag="tank.level", limit=10.0, deadband=1.0))
    assert activity(alarms.feed([sample("tank.level", 9.0, 0)], at(0))) == [("ll", True)]
    assert alarms.feed([sample("tank.level", 10.5, 1)], at(1)) == []
    assert activity(alarms.feed([sample("tank.level", 11.0, 2)], at(2))) == [("ll", False)]


def test_a_blip_shorter_than_the_on_delay_raises_nothing() -> None:
    alarms = engine(high(on_delay_s=10.0))
    assert alarms.feed([sample("tank.level", 90.0, 0)], at(0)) == []
    assert alarms.next_due() == at(10)
    assert alarms.feed([sample("tank.level", 50.0, 5)], at(5)) == []
    assert alarms.advance(at(20)) == []
    assert alarms.next_due() is None


def test_on_delay_raises_when_it_expires_and_off_delay_holds_the_clear() -> None:
    alarms = engine(high(on_delay_s=10.0, off_delay_s=30.0))
    alarms.feed([sample("tank.level", 90.0, 0)], at(0))
    assert alarms.advance(at(9)) == []
    raised = alarms.advance(at(12))
    assert activity(raised) == [("hi", True)]
    assert raised[0].time == at(10) and "for 10 s" in raised[0].reason
    assert alarms.feed([sample("tank.level", 50.0, 20)], at(20)) == []
    assert alarms.next_due() == at(50)
    # Back above before the off-delay ends: the alarm never cleared.
    alarms.feed([sample("tank.level", 85.0, 40)], at(40))
    assert alarms.advance(at(60)) == []
    alarms.feed([sample("tank.level", 50.0, 70)], at(70))
    assert activity(alarms.advance(at(100))) == [("hi", False)]


def test_bad_input_holds_the_condition_and_voids_a_pending_delay() -> None:
    alarms = engine(high(), high("hi.delayed", on_delay_s=10.0))
    assert activity(alarms.feed([sample("tank.level", 90.0, 0)], at(0))) == [("hi", True)]
    failed = Quality.bad(Substatus.SENSOR_FAILURE, "open circuit")
    assert alarms.feed([sample("tank.level", None, 1, failed)], at(1)) == []
    assert alarms.active() == {"hi"}
    assert alarms.advance(at(30)) == []  # the delayed one never confirmed its condition
    assert alarms.held_samples == 1


# --- deviation, rate, discrete -------------------------------------------------------------------


def test_deviation_from_a_setpoint_tag() -> None:
    alarms = engine(
        AlarmDef(
            "dev",
            AlarmKind.DEVIATION,
            tag="tank.level",
            setpoint_tag="tank.sp",
            limit=5.0,
            deadband=1.0,
        )
    )
    assert alarms.feed([sample("tank.sp", 50.0, 0), sample("tank.level", 52.0, 0)], at(0)) == []
    raised = alarms.feed([sample("tank.sp", 60.0, 1)], at(1))
    assert activity(raised) == [("dev", True)]
    assert "deviates 8" in raised[0].reason
    assert alarms.feed([sample("tank.level", 55.5, 2)], at(2)) == []  # 4.5: inside the band
    assert activity(alarms.feed([sample("tank.level", 56.0, 3)], at(3))) == [("dev", False)]


def test_rate_of_change_per_minute_over_source_times() -> None:
    alarms = engine(AlarmDef("roc", AlarmKind.RATE, tag="tank.level", limit=10.0))
    assert alarms.feed([sample("tank.level", 50.0, 0)], at(0)) == []
    assert alarms.feed([sample("tank.level", 52.0, 30)], at(30)) == []  # 4/min
    # The engine receives late (now = 100) but the rate is over source times: 10 in 30 s.
    raised = alarms.feed([sample("tank.level", 62.0, 60)], at(100))
    assert activity(raised) == [("roc", True)]
    assert "+12/min" in raised[0].reason  # 50 -> 62 over the last minute
    cleared = alarms.feed([sample("tank.level", 62.0, 180)], at(180))
    assert activity(cleared) == [("roc", False)]


def test_discrete_state() -> None:
    alarms = engine(
        AlarmDef("fault", AlarmKind.DISCRETE, tag="pump.mode", state="fault"),
        AlarmDef("tripped", AlarmKind.DISCRETE, tag="pump.run", state=False),
    )
    raised = alarms.feed([sample("pump.mode", "fault", 0), sample("pump.run", False, 0)], at(0))
    assert sorted(activity(raised)) == [("fault", True), ("tripped", True)]
    cleared = alarms.feed([sample("pump.mode", "auto", 1), sample("pump.run", True, 1)], at(1))
    assert sorted(activity(cleared)) == [("fault", False), ("tripped", False)]


# --- command mismatch, frozen, expression -------------------------------------------------------


def mismatch() -> AlarmDef:
    return AlarmDef(
        "pump.fts",
        AlarmKind.COMMAND_MISMATCH,
        tag="pump.run",
        command_tag="pump.cmd",
        delay_s=15.0,
    )


def test_command_mismatch_failed_to_start_after_the_start_delay() -> None:
    alarms = engine(mismatch())
    assert alarms.feed([sample("pump.cmd", False, 0), sample("pump.run", False, 0)], at(0)) == []
    assert alarms.feed([sample("pump.cmd", True, 10)], at(10)) == []
    assert alarms.next_due() == at(25)
    raised = alarms.advance(at(25))
    assert activity(raised) == [("pump.fts", True)]
    assert raised[0].reason.startswith("failed to start")
    assert activity(alarms.feed([sample("pump.run", True, 30)], at(30))) == [("pump.fts", False)]


def test_command_mismatch_failed_to_stop_and_feedback_in_time() -> None:
    alarms = engine(mismatch())
    alarms.feed([sample("pump.cmd", False, 0), sample("pump.run", False, 0)], at(0))
    alarms.feed([sample("pump.cmd", True, 1)], at(1))
    assert alarms.feed([sample("pump.run", True, 10)], at(10)) == []  # started in time
    assert alarms.advance(at(60)) == []
    alarms.feed([sample("pump.cmd", False, 100)], at(100))
    stopped = alarms.advance(at(115))
    assert activity(stopped) == [("pump.fts", True)]
    assert stopped[0].reason.startswith("failed to stop")


def test_frozen_value_only_while_a_change_is_expected() -> None:
    alarms = engine(
        AlarmDef(
            "flow.frozen",
            AlarmKind.FROZEN,
            tag="pump.flow",
            delay_s=60.0,
            expect_change_when=Expression("pump.run"),
        )
    )
    alarms.feed([sample("pump.run", False, 0), sample("pump.flow", 12.0, 0)], at(0))
    assert alarms.advance(at(120)) == []  # still, but the pump is off: nothing expected
    raised = alarms.feed([sample("pump.run", True, 130)], at(130))
    assert activity(raised) == [("flow.frozen", True)]
    cleared = alarms.feed([sample("pump.flow", 12.5, 140)], at(140))
    assert activity(cleared) == [("flow.frozen", False)]
    # The same value repeated is no change: frozen again a minute after the last change.
    alarms.feed([sample("pump.flow", 12.5, 170)], at(170))
    assert activity(alarms.advance(at(200))) == [("flow.frozen", True)]


def test_frozen_without_a_condition_raises_after_the_delay() -> None:
    alarms = engine(AlarmDef("lvl.frozen", AlarmKind.FROZEN, tag="tank.level", delay_s=30.0))
    alarms.feed([sample("tank.level", 5.0, 0)], at(0))
    assert alarms.next_due() == at(30)
    assert activity(alarms.advance(at(31))) == [("lvl.frozen", True)]


def test_expression_alarm_raises_clears_and_holds_on_bad_input() -> None:
    alarms = engine(
        AlarmDef(
            "dry.run",
            AlarmKind.EXPRESSION,
            expression=Expression("pump.run && pump.flow < 1"),
        )
    )
    alarms.feed([sample("pump.run", True, 0), sample("pump.flow", 20.0, 0)], at(0))
    assert activity(alarms.feed([sample("pump.flow", 0.5, 1)], at(1))) == [("dry.run", True)]
    failed = Quality.bad(Substatus.SENSOR_FAILURE, "")
    assert alarms.feed([sample("pump.flow", None, 2, failed)], at(2)) == []
    assert alarms.active() == {"dry.run"}
    assert activity(alarms.feed([sample("pump.run", False, 3)], at(3))) == []  # flow still Bad
    assert activity(alarms.feed([sample("pump.flow", 0.0, 4)], at(4))) == [("dry.run", False)]


def test_expression_reading_the_clock_is_rechecked_without_samples() -> None:
    alarms = engine(
        AlarmDef(
            "stale",
            AlarmKind.EXPRESSION,
            expression=Expression("since_change(tank.level) > 25"),
        )
    )
    alarms.feed([sample("tank.level", 5.0, 0)], at(0))
    assert alarms.advance(at(20)) == []
    assert activity(alarms.advance(at(30))) == [("stale", True)]


# --- communication loss and suppression --------------------------------------------------------


def device_site(count: int) -> tuple[TagDef, ...]:
    device = [TagDef(f"rtu.t{i}", "rtu7", "x", DataType.FLOAT) for i in range(count)]
    return (*device, TagDef("elsewhere.level", "plc9", "x", DataType.FLOAT))


def test_thirty_tags_of_a_device_going_bad_give_one_alarm_and_suppress_the_rest() -> None:
    tags = device_site(30)
    definitions = [AlarmDef("rtu7.comm", AlarmKind.COMM_LOSS, device="rtu7")]
    definitions += [
        AlarmDef(f"t{i}.hi", AlarmKind.HIGH, tag=f"rtu.t{i}", limit=80.0) for i in range(30)
    ]
    definitions.append(AlarmDef("else.hi", AlarmKind.HIGH, tag="elsewhere.level", limit=80.0))
    alarms = engine(*definitions, tags=tags)
    readings = [sample(f"rtu.t{i}", 90.0 if i < 3 else 10.0, 0) for i in range(30)]
    readings.append(sample("elsewhere.level", 90.0, 0))
    assert len(alarms.feed(readings, at(0))) == 4  # t0..t2 and else.hi active

    down = alarms.feed([comm_bad(f"rtu.t{i}", 5) for i in range(30)], at(5))
    raised = [change for change in down if change.active is not None]
    assert activity(raised) == [("rtu7.comm", True)]
    suppressed = [change for change in down if change.active is None]
    assert sorted(change.alarm for change in suppressed) == ["t0.hi", "t1.hi", "t2.hi"]
    assert all(change.suppressed is True for change in suppressed)
    assert all("rtu7.comm" in change.reason for change in suppressed)
    assert alarms.active() == {"rtu7.comm", "t0.hi", "t1.hi", "t2.hi", "else.hi"}

    # Recovery: the first answer does not clear it while other tags are still unreachable
    # (t0's own high alarm clears on its value, still suppressed).
    first = alarms.feed([sample("rtu.t0", 50.0, 10)], at(10))
    assert [(c.alarm, c.active, c.suppressed) for c in first] == [("t0.hi", False, None)]
    back = alarms.feed([sample(f"rtu.t{i}", 50.0, 11) for i in range(1, 30)], at(11))
    assert ("rtu7.comm", False) in activity(back)
    unsuppressed = [c for c in back if c.active is None]
    assert sorted(c.alarm for c in unsuppressed) == ["t0.hi", "t1.hi", "t2.hi"]
    assert all(c.suppressed is False for c in unsuppressed)
    assert alarms.active() == {"else.hi"}


def test_partial_recovery_keeps_the_comm_alarm() -> None:
    alarms = engine(AlarmDef("rtu7.comm", AlarmKind.COMM_LOSS, device="rtu7"), tags=device_site(3))
    down = alarms.feed([comm_bad(f"rtu.t{i}", 1) for i in range(3)], at(1))
    assert activity(down) == [("rtu7.comm", True)]
    assert alarms.feed([sample("rtu.t0", 1.0, 2), sample("rtu.t1", 1.0, 2)], at(2)) == []
    assert activity(alarms.feed([sample("rtu.t2", 1.0, 3)], at(3))) == [("rtu7.comm", False)]


def test_an_alarm_activating_during_comm_loss_is_reported_suppressed() -> None:
    tags = (*device_site(2), TagDef("rtu.state", "rtu7", "x", DataType.STRING))
    alarms = engine(
        AlarmDef("rtu7.comm", AlarmKind.COMM_LOSS, device="rtu7"),
        AlarmDef(
            "rtu.quality",
            AlarmKind.EXPRESSION,
            device="rtu7",
            expression=Expression('quality(rtu.t1) != "good"'),
        ),
        tags=tags,
    )
    changes = alarms.feed([comm_bad("rtu.t0", 1), comm_bad("rtu.t1", 1)], at(1))
    by_alarm = {change.alarm: change for change in changes}
    assert by_alarm["rtu7.comm"].active is True
    assert by_alarm["rtu.quality"].active is True
    assert by_alarm["rtu.quality"].suppressed is True


def test_a_sensor_failure_is_not_a_communication_loss() -> None:
    alarms = engine(AlarmDef("plc1.comm", AlarmKind.COMM_LOSS, device="plc1"))
    failed = Quality.bad(Substatus.SENSOR_FAILURE, "open circuit")
    assert alarms.feed([sample("tank.level", None, 0, failed)], at(0)) == []


def test_suppress_when_suppresses_and_releases_by_design() -> None:
    alarms = engine(
        AlarmDef(
            "flow.low",
            AlarmKind.LOW,
            tag="pump.flow",
            limit=5.0,
            suppress_when=Expression("!pump.run"),
        )
    )
    first = alarms.feed([sample("pump.run", False, 0), sample("pump.flow", 0.0, 0)], at(0))
    assert [(c.alarm, c.active, c.suppressed) for c in first] == [
        ("flow.low", True, None),
        ("flow.low", None, True),
    ]
    assert "suppressed by design: !pump.run" in first[1].reason
    released = alarms.feed([sample("pump.run", True, 1)], at(1))
    assert [(c.active, c.suppressed) for c in released] == [(None, False)]


# --- hostile input -----------------------------------------------------------------------------


def test_nan_inf_and_text_on_a_numeric_tag_hold_the_alarm() -> None:
    alarms = engine(high(), AlarmDef("lo", AlarmKind.LOW, tag="tank.level", limit=10.0))
    assert activity(alarms.feed([sample("tank.level", 90.0, 0)], at(0))) == [("hi", True)]
    hostile: list[Value] = [math.nan, -math.inf, math.inf, "90", True]
    for offset, value in enumerate(hostile, start=1):
        assert alarms.feed([sample("tank.level", value, offset)], at(offset)) == []
    assert alarms.active() == {"hi"}
    assert alarms.held_samples == len(hostile)


def test_samples_out_of_order_are_ignored() -> None:
    alarms = engine(high())
    alarms.feed([sample("tank.level", 90.0, 10)], at(10))
    # An older sample arriving late cannot clear what a newer one raised.
    assert alarms.feed([sample("tank.level", 10.0, 5)], at(11)) == []
    assert alarms.active() == {"hi"}
    # Within one batch too.
    batch = [sample("tank.level", 10.0, 20), sample("tank.level", 95.0, 15)]
    assert activity(alarms.feed(batch, at(21))) == [("hi", False)]


def test_hostile_values_on_other_kinds_hold_them() -> None:
    alarms = engine(
        AlarmDef("fault", AlarmKind.DISCRETE, tag="pump.mode", state="fault"),
        mismatch(),
        AlarmDef("roc", AlarmKind.RATE, tag="tank.level", limit=1.0),
    )
    alarms.feed([sample("pump.mode", "fault", 0)], at(0))
    assert alarms.active() == {"fault"}
    assert alarms.feed([sample("pump.mode", 3.0, 1)], at(1)) == []  # a number on a text tag
    assert alarms.feed([sample("pump.cmd", math.nan, 1), sample("pump.run", "x", 1)], at(1)) == []
    assert alarms.feed([sample("tank.level", math.inf, 1), sample("tank.level", 1, 2)], at(2)) == []
    assert alarms.next_due() is None
    assert alarms.active() == {"fault"}


def test_samples_of_unwatched_tags_are_skipped() -> None:
    alarms = engine(high())
    assert alarms.watched_tags == {"tank.level"}
    assert alarms.feed([sample("other.level", math.nan, 0)], at(0)) == []
    assert alarms.held_samples == 0
