"""The backtest: a controlled history replayed through a rule set, every decision checked."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from controlcenter.automation import (
    CalculatedTagDef,
    CommandAction,
    CronTrigger,
    EventAction,
    Expression,
    HysteresisControl,
    RuleDef,
    RuleSetDef,
    SiteLocation,
    TagChangeTrigger,
)
from controlcenter.model import (
    CommandResult,
    DataType,
    Event,
    Quality,
    Sample,
    Substatus,
    TagDef,
    Value,
)
from historian.store import SqlHistorian
from rules.backtest import (
    BacktestError,
    replayed_tags,
    rule_shares,
    run_backtest,
    run_backtest_in_parallel,
)
from rules.ruleset import CompiledRuleSet, compile_rule_set

AMSTERDAM = SiteLocation(52.37, 4.90, "Europe/Amsterdam")
START = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)
END = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
STEP = timedelta(seconds=10)

TAGS = (
    TagDef("water.tank1.level", "rtu1", "ir:0", DataType.FLOAT, "m", 0.0, 8.0),
    TagDef("water.tank1.pump_cmd", "rtu1", "coil:0", DataType.BOOL, writable=True),
    TagDef("water.tank2.level", "rtu2", "ir:0", DataType.FLOAT, "m", 0.0, 8.0),
    TagDef("water.tank2.inlet_valve", "rtu2", "hr:0", DataType.FLOAT, "%", 0.0, 100.0, True),
)


def at(hours: int, minutes: int, seconds: int = 0) -> datetime:
    return START + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def rule_set() -> CompiledRuleSet:
    definition = RuleSetDef(
        rules=(
            RuleDef(
                name="water.tank1_fill",
                hysteresis=HysteresisControl("water.tank1.level", "water.tank1.pump_cmd", 1.5, 4.0),
            ),
            RuleDef(
                name="water.tank2_high",
                triggers=(TagChangeTrigger(("water.tank2.level",)),),
                condition=Expression("water.tank2.level > 5.0"),
                hold_for_s=300.0,
                actions=(EventAction("tank 2 high at {water.tank2.level} m", 600),),
            ),
            RuleDef(
                name="water.valve_check",
                triggers=(CronTrigger("30 * * * *"),),
                actions=(CommandAction("water.tank2.inlet_valve", Expression("50.0")),),
            ),
            RuleDef(
                name="water.night_report",
                # 02:00 in Amsterdam: 01:00 UTC in January.
                triggers=(CronTrigger("0 2 * * *"),),
                actions=(EventAction("night report: tank 2 at {water.tank2.level} m", 100),),
            ),
        ),
        identity="rules",
    )
    return compile_rule_set(definition, TAGS, AMSTERDAM)


def tank1_level(moment: datetime) -> float | None:
    """Below 1.5 from 00:30, in the gap from 01:00, above 4.0 from 01:30, Bad 02:00-02:10."""
    if moment < START:
        return 1.2 if moment >= START - timedelta(minutes=10) else 3.0  # acted on in warm-up
    steps = [(at(2, 10), 3.0), (at(2, 0), None), (at(1, 30), 4.2), (at(1, 0), 2.5)]
    steps += [(at(0, 30), 1.4)]
    for since, value in steps:
        if moment >= since:
            return value
    return 3.0


def pump_readback(moment: datetime) -> bool:
    """The pump follows the commands ten seconds later."""
    return at(0, 30, 10) <= moment < at(1, 30, 10)


def tank2_level(moment: datetime) -> float:
    """High for three minutes (too short), then for twenty minutes from 00:50."""
    if at(0, 40) <= moment < at(0, 43):
        return 5.5
    if at(0, 43) <= moment < at(0, 50):
        return 4.5
    if at(0, 50) <= moment < at(1, 10):
        return 5.6
    return 4.0


def history_samples() -> list[Sample]:
    samples: list[Sample] = []
    bad = Quality.bad(Substatus.COMM_FAILURE, "RTU 1 does not answer")
    moment = START - timedelta(hours=1)
    while moment <= END:
        level = tank1_level(moment)
        values: list[tuple[str, Value | None, Quality]] = [
            ("water.tank1.level", level, Quality.good() if level is not None else bad),
            ("water.tank1.pump_cmd", pump_readback(moment), Quality.good()),
            ("water.tank2.level", tank2_level(moment), Quality.good()),
            ("water.tank2.inlet_valve", 20.0, Quality.good()),  # never follows
        ]
        samples += [Sample(tag, value, q, moment, moment) for tag, value, q in values]
        moment += STEP
    return samples


@pytest.fixture
def history(tmp_path: Path) -> Iterator[SqlHistorian]:
    store = SqlHistorian(f"sqlite:///{tmp_path / 'history.db'}")
    store.ensure_tags(TAGS)
    store.write_samples(history_samples())
    yield store
    store.close()


def test_backtest_reports_exactly_what_the_rules_would_have_done(history: SqlHistorian) -> None:
    report = run_backtest(rule_set(), history, START, END, progress=None)
    commands = [(c.time, c.rule, c.tag, c.value) for c in report.commands]
    assert commands == [
        (at(0, 30), "water.tank1_fill", "water.tank1.pump_cmd", True),
        (at(0, 30), "water.valve_check", "water.tank2.inlet_valve", 50.0),
        (at(1, 30), "water.tank1_fill", "water.tank1.pump_cmd", False),
        (at(1, 30), "water.valve_check", "water.tank2.inlet_valve", 50.0),
        (at(2, 30), "water.valve_check", "water.tank2.inlet_valve", 50.0),
    ]
    assert "below 1.5" in report.commands[0].reason
    assert report.commands[0].priority == "automation"
    # The for: rule acts once, five minutes into the long stretch; the short one is ignored.
    events = [(e.time, e.rule, e.message) for e in report.events]
    assert events == [
        (at(0, 55), "water.tank2_high", "tank 2 high at 5.6 m"),
        (at(1, 0), "water.night_report", "night report: tank 2 at 5.6 m"),
    ]
    holds = [(h.time, h.rule, h.held) for h in report.holds]
    assert holds == [
        (at(2, 0), "water.tank1_fill", True),
        (at(2, 10), "water.tank1_fill", False),
    ]
    assert "comm_failure" in report.holds[0].message
    counts = {c.rule: (c.commands, c.events, c.holds, c.resumes) for c in report.rules}
    assert counts == {
        "water.tank1_fill": (2, 0, 1, 1),
        "water.tank2_high": (0, 1, 0, 0),
        "water.valve_check": (3, 0, 0, 0),
        "water.night_report": (0, 1, 0, 0),
    }
    figures = report.figures
    assert figures.tags_read == 4
    assert figures.samples_replayed == 4 * (3 * 360 + 1)
    assert figures.warm_up_samples == 4 * 90  # 15 minutes at 10 s
    assert figures.wall_seconds > 0


def test_chunk_boundaries_neither_lose_nor_repeat_samples(history: SqlHistorian) -> None:
    whole = run_backtest(rule_set(), history, START, END, progress=None)
    chunked = run_backtest(
        rule_set(), history, START, END, progress=None, chunk=timedelta(seconds=421)
    )
    assert chunked.figures.samples_replayed == whole.figures.samples_replayed
    assert [(c.time, c.rule, c.value) for c in chunked.commands] == [
        (c.time, c.rule, c.value) for c in whole.commands
    ]
    assert chunked.events == whole.events and chunked.holds == whole.holds


def test_progress_rises_to_one(history: SqlHistorian) -> None:
    seen: list[float] = []
    run_backtest(rule_set(), history, START, END, progress=seen.append, chunk=timedelta(minutes=30))
    assert seen == sorted(seen) and len(seen) == 6
    assert seen[0] == pytest.approx(1 / 6) and seen[-1] == 1.0


def test_report_is_json(history: SqlHistorian) -> None:
    document = json.loads(json.dumps(run_backtest(rule_set(), history, START, END).as_dict()))
    assert document["start"] == START.isoformat()
    assert document["commands"][0] == {
        "time": at(0, 30).isoformat(),
        "rule": "water.tank1_fill",
        "tag": "water.tank1.pump_cmd",
        "value": True,
        "reason": document["commands"][0]["reason"],
        "priority": "automation",
    }
    assert [hold["kind"] for hold in document["holds"]] == ["hold", "resume"]
    assert set(document["figures"]) >= {"samples_replayed", "wall_seconds", "tags_read"}


def test_the_replay_reads_inputs_and_command_targets() -> None:
    assert replayed_tags(rule_set()) == tuple(sorted(tag.name for tag in TAGS))


def test_a_tag_without_history_is_primed_from_its_last_stored_sample(tmp_path: Path) -> None:
    store = SqlHistorian(f"sqlite:///{tmp_path / 'sparse.db'}")
    try:
        store.ensure_tags(TAGS)
        # Tank 2 was last stored three hours before the window (compressed: it did not move).
        early = at(0, 55) - timedelta(hours=3)
        store.write_samples([Sample("water.tank2.level", 5.6, Quality.good(), early, early)])
        report = run_backtest(rule_set(), store, at(0, 55), at(1, 5))
    finally:
        store.close()
    # The report reads the primed value; the for: rule acted in the warm-up, unreported.
    assert [(e.time, e.rule, e.message) for e in report.events] == [
        (at(1, 0), "water.night_report", "night report: tank 2 at 5.6 m")
    ]
    assert report.figures.warm_up_samples == 1 and report.figures.samples_replayed == 0


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (END, START, "is not before"),
        (START, START, "is not before"),
        (START.replace(tzinfo=None), END, "time-zone aware"),
    ],
)
def test_bad_windows_are_refused(
    history: SqlHistorian, start: datetime, end: datetime, expected: str
) -> None:
    with pytest.raises(BacktestError, match=expected):
        run_backtest(rule_set(), history, start, end)


def test_without_warm_up_each_tag_is_primed_with_its_last_sample(history: SqlHistorian) -> None:
    report = run_backtest(rule_set(), history, START, END, warm_up=timedelta(0))
    assert report.figures.warm_up_samples == len(TAGS)
    assert len(report.commands) == 5
    with pytest.raises(BacktestError, match="must not be negative"):
        run_backtest(rule_set(), history, START, END, warm_up=timedelta(seconds=-1))


class BrokenHistory:
    """A historian whose database has gone away."""

    def read_raw(
        self, tag: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[Sample]:
        raise OSError("disk I/O error")

    def read_raw_many(self, names: Sequence[str], start: datetime, end: datetime) -> list[Sample]:
        raise OSError("disk I/O error")

    def read_commands(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[CommandResult]:
        return []

    def read_events(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[Event]:
        return []


def test_unreadable_history_is_a_backtest_error_with_its_cause() -> None:
    with pytest.raises(BacktestError, match="disk I/O error") as caught:
        run_backtest(rule_set(), BrokenHistory(), START, END)
    assert isinstance(caught.value.__cause__, OSError)


def _definition() -> RuleSetDef:
    return rule_set().definition


def test_the_rules_replayed_by_two_processes_give_the_single_process_report(
    history: SqlHistorian, tmp_path: Path
) -> None:
    single = run_backtest(rule_set(), history, START, END)
    fractions: list[float] = []
    parallel = run_backtest_in_parallel(
        _definition(),
        TAGS,
        AMSTERDAM,
        partial(SqlHistorian, f"sqlite:///{tmp_path / 'history.db'}"),
        START,
        END,
        workers=2,
        progress=fractions.append,
    )
    assert parallel.commands == single.commands
    assert parallel.events == single.events
    assert parallel.holds == single.holds
    assert parallel.rules == single.rules
    assert parallel.figures.tags_read == single.figures.tags_read
    assert fractions and fractions[-1] == pytest.approx(1.0)
    assert fractions == sorted(fractions)


def test_shares_split_the_rules_and_carry_the_calculated_tags_they_read() -> None:
    definition = RuleSetDef(
        rules=(
            *(
                RuleDef(
                    name=f"r{index}",
                    triggers=(TagChangeTrigger(("calc.total",)),),
                    condition=Expression(f"calc.total > {index}.0"),
                    actions=(EventAction("high", 100),),
                )
                for index in range(3)
            ),
            RuleDef(
                name="plain",
                triggers=(TagChangeTrigger(("water.tank1.level",)),),
                condition=Expression("water.tank1.level > 1.0"),
                actions=(EventAction("level", 100),),
            ),
        ),
        calculated=(
            CalculatedTagDef("calc.half", Expression("water.tank2.level / 2.0")),
            CalculatedTagDef("calc.total", Expression("calc.half + water.tank1.level")),
        ),
        identity="rules",
    )
    compiled = compile_rule_set(definition, TAGS, AMSTERDAM)
    shares = rule_shares(compiled, 2)
    assert sorted(rule.name for share in shares for rule in share.rules) == [
        "plain",
        "r0",
        "r1",
        "r2",
    ]
    for share in shares:
        names = {rule.name for rule in share.rules}
        calculated = [calc.name for calc in share.calculated]
        if names & {"r0", "r1", "r2"}:
            assert calculated == ["calc.half", "calc.total"]  # with what it reads, in order
        else:
            assert calculated == []
        compile_rule_set(share, TAGS, AMSTERDAM)  # every share compiles on its own
    assert len(rule_shares(compiled, 8)) == 4  # never more shares than rules
    assert len(rule_shares(compiled, 1)) == 1


def test_a_failing_worker_is_a_backtest_error() -> None:
    # Port 1 on loopback: nothing listens, the worker's historian cannot connect.
    unreachable = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"
    with pytest.raises(BacktestError, match="worker"):
        run_backtest_in_parallel(
            _definition(),
            TAGS,
            AMSTERDAM,
            partial(SqlHistorian, unreachable),
            START,
            END,
            workers=2,
        )
