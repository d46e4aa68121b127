"""The evaluator on a controlled time base: triggers, conditions, for:, actions, input quality
and calculated tags."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import dusk

from controlcenter.automation import (
    CalculatedTagDef,
    CronTrigger,
    HysteresisControl,
    InputQualityPolicy,
    IntervalTrigger,
    RuleDef,
    SunEvent,
    SunTrigger,
)
from controlcenter.model import (
    CommandOrigin,
    CommandPriority,
    DataType,
    EventKind,
    Quality,
    Severity,
    Substatus,
)
from rules.evaluator import NO_DECISIONS, RuleEvaluator
from tests.rules.rules_testkit import (
    AMSTERDAM,
    T0,
    calculated,
    command,
    compiled,
    event,
    expr,
    good,
    on_change,
    rule,
    sample,
    spot,
)

LUX = "lights.d1.c1.lux"
MODE = "lights.d1.c1.mode"
LEVEL = "water.tank1.level"
PUMP = "water.tank1.pump_cmd"
UNCERTAIN = Quality.uncertain(Substatus.LAST_USABLE, "stale")
BAD = Quality.bad(Substatus.COMM_FAILURE, "controller offline")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def dusk_rule(**kwargs: object) -> RuleDef:
    return rule(
        "lights.dusk_on",
        [on_change(LUX)],
        [
            command(MODE, "1", CommandPriority.SCHEDULE),
            event("lamps on at {lights.d1.c1.lux} lx", 300),
        ],
        "lights.d1.c1.lux < 20.0",
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_tag_change_fires_the_condition_and_the_actions() -> None:
    evaluator = RuleEvaluator(compiled([dusk_rule()]), T0)
    assert evaluator.feed([good(LUX, 50.0), good(MODE, 0)], at(0)).commands == ()
    decisions = evaluator.feed([good(LUX, 12.5)], at(1))
    (sent,) = decisions.commands
    assert (sent.tag, sent.value, sent.priority, sent.origin) == (
        MODE,
        1,
        CommandPriority.SCHEDULE,
        CommandOrigin.RULE,
    )
    assert type(sent.value) is int  # fitted to the int tag
    assert sent.requested_by == "rules-svc"
    assert sent.reason.startswith("lights.dusk_on: lights.d1.c1.lux changed")
    assert sent.issued_at == at(1)
    (message,) = decisions.events
    assert (message.kind, message.source, message.message, message.severity) == (
        EventKind.RULE,
        "lights.dusk_on",
        "lamps on at 12.5 lx",
        300,
    )


def test_no_command_when_the_readback_already_matches_or_one_is_in_flight() -> None:
    evaluator = RuleEvaluator(compiled([dusk_rule(min_command_interval_s=0)]), T0)
    evaluator.feed([good(MODE, 1)], at(0))
    assert evaluator.feed([good(LUX, 10.0)], at(1)).commands == ()  # already 1
    evaluator.feed([good(MODE, 0)], at(2))
    (first,) = evaluator.feed([good(LUX, 11.0)], at(3)).commands
    # Still in flight: the next trigger does not command again.
    assert evaluator.feed([good(LUX, 12.0)], at(4)).commands == ()
    evaluator.command_done(first.command_id)
    evaluator.command_done(first.command_id)  # a second report is harmless
    assert len(evaluator.feed([good(LUX, 13.0)], at(5)).commands) == 1


def test_min_command_interval_per_rule_and_tag() -> None:
    evaluator = RuleEvaluator(compiled([dusk_rule(min_command_interval_s=10)]), T0)
    evaluator.feed([good(MODE, 0)], at(0))
    (first,) = evaluator.feed([good(LUX, 10.0)], at(1)).commands
    evaluator.command_done(first.command_id)
    assert evaluator.feed([good(LUX, 11.0)], at(10.9)).commands == ()
    assert len(evaluator.feed([good(LUX, 12.0)], at(11)).commands) == 1


def test_samples_of_tags_nobody_reads_and_unchanged_samples_decide_nothing() -> None:
    evaluator = RuleEvaluator(compiled([dusk_rule()]), T0)
    assert evaluator.feed([good("heat.ss3.supply_temp", 70.0)], at(0)) is NO_DECISIONS
    evaluator.feed([good(MODE, 0), good(LUX, 50.0)], at(0))
    assert evaluator.feed([good(LUX, 50.0)], at(1)) is NO_DECISIONS


def test_a_rule_is_evaluated_once_per_batch() -> None:
    both = rule("r", [on_change(LUX, LEVEL)], [event("seen {water.tank1.level}")])
    evaluator = RuleEvaluator(compiled([both]), T0)
    decisions = evaluator.feed([good(LUX, 1.0), good(LEVEL, 2.0), good(LUX, 3.0)], at(0))
    assert [e.message for e in decisions.events] == ["seen 2"]


def test_debounce_fires_once_the_tag_has_been_still() -> None:
    debounced = rule("r", [on_change(LUX, debounce_s=30)], [event("lux {lights.d1.c1.lux}")])
    evaluator = RuleEvaluator(compiled([debounced]), T0)
    assert evaluator.feed([good(LUX, 5.0)], at(0)).events == ()
    assert evaluator.next_due() == at(30)
    evaluator.feed([good(LUX, 6.0)], at(20))  # restarts the debounce
    assert evaluator.next_due() == at(50)
    assert evaluator.advance(at(49)).events == ()
    (fired,) = evaluator.advance(at(50)).events
    assert fired.message == "lux 6"
    assert evaluator.next_due() is None


def test_interval_is_aligned_to_activation() -> None:
    ticking = rule("r", [IntervalTrigger(300, spot(2))], [event("tick {water.tank1.level}")])
    start = T0 + timedelta(seconds=7)
    evaluator = RuleEvaluator(compiled([ticking]), start)
    evaluator.feed([good(LEVEL, 1.0)], at(8))
    assert evaluator.next_due() == start + timedelta(minutes=5)
    assert len(evaluator.advance(start + timedelta(minutes=5)).events) == 1
    # A late wake-up fires once and realigns to the activation grid.
    assert len(evaluator.advance(start + timedelta(minutes=17)).events) == 1
    assert evaluator.next_due() == start + timedelta(minutes=20)


def test_cron_trigger_keeps_local_time_across_dst() -> None:
    nightly = rule("r", [CronTrigger("0 22 * * *", spot(2))], [event("night")])
    start = datetime(2026, 10, 24, 12, tzinfo=UTC)
    evaluator = RuleEvaluator(compiled([nightly]), start)
    fired: list[datetime] = []
    for _ in range(3):
        due = evaluator.next_due()
        assert due is not None
        assert len(evaluator.advance(due).events) == 1
        fired.append(due)
    zone = ZoneInfo("Europe/Amsterdam")
    assert [moment.astimezone(zone).hour for moment in fired] == [22, 22, 22]
    assert fired[0] == datetime(2026, 10, 24, 20, tzinfo=UTC)  # CEST
    assert fired[1] == datetime(2026, 10, 25, 21, tzinfo=UTC)  # CET


def test_sun_trigger_fires_at_civil_dusk_with_its_offset() -> None:
    lamps = rule(
        "r",
        [SunTrigger(SunEvent.CIVIL_DUSK, -600, spot(2))],
        [command(MODE, "1")],
    )
    start = datetime(2026, 3, 20, 6, tzinfo=UTC)
    evaluator = RuleEvaluator(compiled([lamps]), start)
    observer = Observer(latitude=AMSTERDAM.latitude, longitude=AMSTERDAM.longitude)
    expected = dusk(observer, date=date(2026, 3, 20), tzinfo=ZoneInfo("Europe/Amsterdam"))
    due = evaluator.next_due()
    assert due == expected.astimezone(UTC) - timedelta(minutes=10)
    evaluator.feed([good(MODE, 0)], start)
    assert evaluator.advance(due - timedelta(seconds=1)).commands == ()
    (sent,) = evaluator.advance(due).commands
    assert sent.reason.startswith("r: civil_dusk -600 s")


def for_rule() -> RuleDef:
    return rule(
        "water.low",
        [on_change(LEVEL)],
        [event("low for 5 min: {water.tank1.level} m")],
        "water.tank1.level < 1.0",
        hold_for_s=300,
    )


def test_for_acts_once_when_the_condition_has_held() -> None:
    evaluator = RuleEvaluator(compiled([for_rule()]), T0)
    assert evaluator.feed([good(LEVEL, 0.8)], at(0)).events == ()
    assert evaluator.next_due() == at(300)
    assert evaluator.feed([good(LEVEL, 0.7)], at(100)).events == ()  # still true: keeps counting
    (fired,) = evaluator.advance(at(300)).events
    assert fired.message == "low for 5 min: 0.7 m"
    # Acted once: further changes while it stays true do nothing.
    assert evaluator.feed([good(LEVEL, 0.6)], at(400)).events == ()
    assert evaluator.next_due() is None


def test_for_interrupted_does_not_act_and_rearms_after_false() -> None:
    evaluator = RuleEvaluator(compiled([for_rule()]), T0)
    evaluator.feed([good(LEVEL, 0.8)], at(0))
    evaluator.feed([good(LEVEL, 1.2)], at(200))  # false in between
    assert evaluator.advance(at(300)).events == ()
    evaluator.feed([good(LEVEL, 0.9)], at(310))
    assert evaluator.advance(at(609)).events == ()
    assert len(evaluator.advance(at(610)).events) == 1
    # Re-arms only after the condition was false.
    evaluator.feed([good(LEVEL, 1.5)], at(700))
    evaluator.feed([good(LEVEL, 0.5)], at(800))
    assert len(evaluator.advance(at(1100)).events) == 1


def test_quality_hold_and_resume_are_said_once_each() -> None:
    evaluator = RuleEvaluator(compiled([dusk_rule()]), T0)
    evaluator.feed([good(MODE, 0), good(LUX, 50.0)], at(0))
    held = evaluator.feed([sample(LUX, 5.0, BAD)], at(1))
    assert held.commands == ()
    (hold,) = held.holds
    assert hold in held.events and hold.severity == 500
    assert (
        hold.message
        == "rule lights.dusk_on holds: lights.d1.c1.lux is bad:comm_failure (controller offline)"
    )
    again = evaluator.feed([sample(LUX, 4.0, UNCERTAIN)], at(2))
    assert again.holds == () and again.commands == ()
    resumed = evaluator.feed([good(LUX, 4.0)], at(3))
    (resume,) = resumed.resumes
    assert resume.message == "rule lights.dusk_on resumes: its inputs are usable again"
    assert len(resumed.commands) == 1  # and it acts at once
    assert evaluator.feed([good(LUX, 3.0)], at(4)).resumes == ()


def test_quality_policies() -> None:
    tolerant = compiled([dusk_rule(inputs=InputQualityPolicy.GOOD_OR_UNCERTAIN)])
    evaluator = RuleEvaluator(tolerant, T0)
    evaluator.feed([good(MODE, 0)], at(0))
    assert len(evaluator.feed([sample(LUX, 5.0, UNCERTAIN)], at(1)).commands) == 1
    assert len(evaluator.feed([sample(LUX, 5.0, BAD)], at(2)).holds) == 1
    careless = rule(
        "c",
        [on_change(LUX)],
        [event("q={quality(lights.d1.c1.lux)}")],
        inputs=InputQualityPolicy.ANY,
    )
    evaluator = RuleEvaluator(compiled([careless]), T0)
    (seen,) = evaluator.feed([sample(LUX, 5.0, BAD)], at(1)).events
    assert seen.message == "q=bad"


def test_an_expression_that_fails_at_run_time_holds_the_rule_once() -> None:
    divide = rule(
        "d",
        [on_change(LEVEL)],
        [command("water.ps1.speed_sp", "10.0 / water.tank1.level")],
        min_command_interval_s=0,
    )
    evaluator = RuleEvaluator(compiled([divide]), T0)
    evaluator.feed([good("water.ps1.speed_sp", 0.0)], at(0))
    first = evaluator.feed([good(LEVEL, 0.0)], at(1))
    assert first.commands == () and len(first.holds) == 1
    assert "cannot evaluate" in first.holds[0].message
    assert evaluator.feed([good(LEVEL, -0.0)], at(2)).holds == ()
    recovered = evaluator.feed([good(LEVEL, 2.0)], at(3))
    assert [c.value for c in recovered.commands] == [5.0] and len(recovered.resumes) == 1


def test_calculated_tags_take_the_worst_quality_and_the_newest_source_time() -> None:
    total = calculated("lights.d1.power_total", "lights.d1.c1.power + lights.d1.c2.power")
    evaluator = RuleEvaluator(compiled(calculated_tags=[total]), T0)
    assert evaluator.feed([good("lights.d1.c1.power", 1.5, at(0))], at(0)).calculated == ()
    (first,) = evaluator.feed([good("lights.d1.c2.power", 2.0, at(5))], at(6)).calculated
    assert (first.tag, first.value, first.quality, first.source_time, first.server_time) == (
        "lights.d1.power_total",
        3.5,
        Quality.good(),
        at(5),
        at(6),
    )
    (uncertain,) = evaluator.feed(
        [sample("lights.d1.c1.power", 1.0, UNCERTAIN, at(7))], at(8)
    ).calculated
    assert uncertain.value == 3.0 and uncertain.quality.severity is Severity.UNCERTAIN
    assert uncertain.quality.reason == "input lights.d1.c1.power is uncertain:last_usable: stale"
    (bad,) = evaluator.feed([sample("lights.d1.c2.power", None, BAD, at(9))], at(9)).calculated
    assert bad.value is None and bad.quality.severity is Severity.BAD
    assert bad.quality.substatus is Substatus.COMM_FAILURE


def test_calculated_chains_feed_rules_and_ignore_their_own_echo() -> None:
    chain = [
        calculated("calc.sum", "water.tank1.level + water.tank2.level"),
        calculated("calc.low", "calc.sum < 2.0", DataType.BOOL),
    ]
    alarm = rule("r", [on_change("calc.low")], [event("sum {calc.sum} low={calc.low}")], "calc.low")
    evaluator = RuleEvaluator(compiled([alarm], chain), T0)
    decisions = evaluator.feed([good(LEVEL, 0.5), good("water.tank2.level", 1.0)], at(0))
    assert [(s.tag, s.value) for s in decisions.calculated] == [
        ("calc.sum", 1.5),
        ("calc.low", True),
    ]
    assert [e.message for e in decisions.events] == ["sum 1.5 low=true"]
    # The bus echoes the calculated samples back: they are not taken as new input.
    assert evaluator.feed(decisions.calculated, at(1)) is NO_DECISIONS
    latest = evaluator.latest("calc.sum")
    assert latest is not None and latest.value == 1.5


def test_hysteresis_kind_keeps_its_behaviour() -> None:
    fill = RuleDef(
        name="water.fill",
        hysteresis=HysteresisControl(LEVEL, PUMP, 1.5, 4.0),
        spot=spot(1),
    )
    evaluator = RuleEvaluator(compiled([fill]), T0)
    (on,) = evaluator.feed([good(LEVEL, 1.2), good(PUMP, False)], at(0)).commands
    assert (
        on.value is True and on.reason == "water.fill: water.tank1.level 1.200 below 1.5: switch on"
    )
    evaluator.command_done(on.command_id)
    assert evaluator.feed([good(LEVEL, 2.5), good(PUMP, True)], at(60)).commands == ()
    (off,) = evaluator.feed([good(LEVEL, 4.2)], at(120)).commands
    assert off.value is False


def test_replace_keeps_latest_values_and_unchanged_rules_state() -> None:
    evaluator = RuleEvaluator(compiled([for_rule()]), T0)
    evaluator.feed([good(LEVEL, 0.8), good(MODE, 0)], at(0))
    evaluator.replace(compiled([for_rule(), dusk_rule()]), at(100))
    assert evaluator.rule_set.rules[1].name == "lights.dusk_on"
    # The for: rule's watch kept running through the swap.
    assert len(evaluator.advance(at(300)).events) == 1
    # The new rule sees values received before the swap (the mode read-back).
    decisions = evaluator.feed([good(LUX, 3.0)], at(310))
    assert [c.value for c in decisions.commands] == [1]


def test_a_calculated_value_beyond_its_range_is_uncertain() -> None:
    ranged = CalculatedTagDef(
        "calc.ratio",
        expr("water.tank1.level / 5.0"),
        DataType.FLOAT,
        low=0.0,
        high=1.0,
        spot=spot(1),
    )
    evaluator = RuleEvaluator(compiled(calculated_tags=[ranged]), T0)
    (inside,) = evaluator.feed([good(LEVEL, 2.5)], at(0)).calculated
    assert inside.value == 0.5 and inside.quality.is_good
    (beyond,) = evaluator.feed([good(LEVEL, 6.0)], at(1)).calculated
    assert beyond.value == 1.2 and beyond.quality.substatus is Substatus.ENGINEERING_UNITS_EXCEEDED


def test_int_command_values_must_be_whole() -> None:
    halves = rule("h", [on_change(LEVEL)], [command(MODE, "water.tank1.level / 2.0")])
    evaluator = RuleEvaluator(compiled([halves]), T0)
    evaluator.feed([good(MODE, 0)], at(0))
    assert [c.value for c in evaluator.feed([good(LEVEL, 4.0)], at(1)).commands] == [2]
    refused = evaluator.feed([good(LEVEL, 3.0)], at(20))
    assert refused.commands == () and "not a whole number" in refused.holds[0].message
