"""Stage 4 as pure bookkeeping: the priority array of a tag (ASHRAE 135 19.2)."""

from __future__ import annotations

from datetime import timedelta

from controlcenter.commands.arbitration import Arbiter, Claim
from controlcenter.model import CommandPriority, Override
from tests.controlcenter.commands.support import PUMP, START, VALVE, command, rule_command


def claim(value: bool, priority: CommandPriority, until_s: float | None = None) -> Claim:
    until = None if until_s is None else START + timedelta(seconds=until_s)
    return Claim(command(PUMP, value, priority=priority), START, until)


def test_lower_number_wins_and_the_loser_is_remembered() -> None:
    arbiter = Arbiter()
    automation = claim(True, CommandPriority.AUTOMATION)
    assert arbiter.offer(automation).wins
    manual = claim(False, CommandPriority.MANUAL_OPERATOR)
    assert arbiter.offer(manual).wins
    later_rule = claim(True, CommandPriority.AUTOMATION)
    decision = arbiter.offer(later_rule)
    assert not decision.wins and decision.holder is manual
    assert arbiter.claims(PUMP) == [manual, later_rule]  # the rule's latest wish replaced its first
    assert arbiter.relinquish(PUMP, CommandPriority.MANUAL_OPERATOR) is manual
    assert arbiter.winner(PUMP) is later_rule


def test_schedule_yields_to_automation_and_safety_to_nobody_but_manual() -> None:
    arbiter = Arbiter()
    assert arbiter.offer(claim(True, CommandPriority.SAFETY)).wins
    assert not arbiter.offer(claim(False, CommandPriority.AUTOMATION)).wins
    assert not arbiter.offer(claim(False, CommandPriority.SCHEDULE)).wins
    assert arbiter.offer(claim(False, CommandPriority.MANUAL_OPERATOR)).wins
    priorities = [c.priority for c in arbiter.claims(PUMP)]
    assert priorities == sorted(priorities, key=int)


def test_the_same_priority_latest_writer_wins() -> None:
    arbiter = Arbiter()
    assert arbiter.offer(claim(True, CommandPriority.AUTOMATION)).wins
    second = claim(False, CommandPriority.AUTOMATION)
    assert arbiter.offer(second).wins
    assert arbiter.winner(PUMP) is second


def test_tags_are_arbitrated_apart() -> None:
    arbiter = Arbiter()
    arbiter.offer(claim(False, CommandPriority.MANUAL_OPERATOR))
    valve = Claim(rule_command(VALVE, 40.0), START)
    assert arbiter.offer(valve).wins
    assert arbiter.override(VALVE) is None


def test_overrides_and_their_expiry() -> None:
    arbiter = Arbiter()
    arbiter.offer(claim(False, CommandPriority.MANUAL_OPERATOR, until_s=60))
    assert arbiter.overrides() == [
        Override(PUMP, False, "olga", "test", START, START + timedelta(seconds=60))
    ]
    assert arbiter.expired_override_tags(START + timedelta(seconds=59)) == []
    assert arbiter.expired_override_tags(START + timedelta(seconds=60)) == [PUMP]
    assert arbiter.relinquish(VALVE, CommandPriority.MANUAL_OPERATOR) is None


def test_a_stored_override_round_trips_through_a_claim() -> None:
    stored = Override(VALVE, 12.5, "otto", "valve inspection", START, None)
    restored = Claim.from_override(stored)
    assert restored.priority is CommandPriority.MANUAL_OPERATOR
    assert restored.as_override() == stored
    assert not restored.expired(START + timedelta(days=365))
