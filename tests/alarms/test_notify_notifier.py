"""The notifier end to end against real receivers on a controlled clock: routing, escalation,
acknowledgement, quiet hours, floods, silenced alarms, configuration errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from alarms.notify import (
    SOURCE,
    EmailSettings,
    NotificationConfigError,
    Notifier,
    WebhookSettings,
)
from alarms.notify.notifier import FAILED_SEVERITY
from controlcenter.automation import (
    AlarmAction,
    AlarmDef,
    AlarmGuidance,
    AlarmKind,
    AlarmPriority,
    NotificationRouteDef,
    OnCallGroupDef,
)
from controlcenter.model import EventKind
from tests.alarms.notify_testkit import (
    SECRET,
    SECRET_ENV,
    FakeClock,
    ListJournal,
    SmtpReceiver,
    WebhookReceiver,
    activation,
    eventually,
    follow_up,
    smtp_receiver,
    webhook_receiver,
    within,
)

__all__ = ["smtp_receiver", "webhook_receiver"]  # fixtures used by name

# 10:00 UTC is 11:00 in Berlin: outside the night's quiet hours.
DAY = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
# 21:30 UTC is 22:30 in Berlin: inside 22:00-07:00, which ends at 06:00 UTC.
NIGHT = datetime(2026, 1, 15, 21, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The webhook secret, from the environment as in production."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    yield


def tank_alarm(
    name: str = "water.tank1.level.high",
    priority: AlarmPriority = AlarmPriority.HIGH,
    area: str = "water",
) -> AlarmDef:
    """A high-level alarm with guidance."""
    return AlarmDef(
        name,
        AlarmKind.HIGH,
        priority,
        tag="water.tank1.level",
        limit=4.6,
        area=area,
        message="Tank 1 level high",
        guidance=AlarmGuidance("inflow valve stuck", "overflow", "close V1 by hand"),
    )


@dataclass
class Running:
    """A running notifier with its clock, journal and receiver."""

    notifier: Notifier
    clock: FakeClock
    journal: ListJournal
    hooks: WebhookReceiver

    def groups_told(self) -> list[tuple[str, str]]:
        """(group, alarm or 'summary') for every webhook request received, in order."""
        told = []
        for body in self.hooks.bodies():
            told.append((body["group"], body.get("alarm", body["type"])))
        return told

    def events(self, prefix: str) -> list[str]:
        """Journaled notification messages starting with ``prefix``."""
        assert all(
            event.kind is EventKind.ALARM and event.source == SOURCE
            for event in self.journal.events
        )
        return self.journal.messages(prefix)

    async def settle(self) -> None:
        """Wait until everything due now is delivered."""
        await within(self.notifier.wait_idle())

    async def advance(self, seconds: float) -> None:
        """Let what is queued be taken first, then move the clock on and wait for what falls
        due."""
        await self.settle()
        self.clock.advance(seconds)
        await self.settle()


def _groups(hooks: WebhookReceiver) -> list[OnCallGroupDef]:
    return [
        OnCallGroupDef("water-oncall", webhooks=(hooks.url("/water"),)),
        OnCallGroupDef("duty-manager", webhooks=(hooks.url("/duty"),)),
        OnCallGroupDef("director", webhooks=(hooks.url("/director"),)),
    ]


@contextlib.asynccontextmanager
async def running_notifier(
    hooks: WebhookReceiver,
    routes: list[NotificationRouteDef],
    start: datetime = DAY,
    groups: list[OnCallGroupDef] | None = None,
    email: EmailSettings | None = None,
) -> AsyncIterator[Running]:
    clock = FakeClock(start)
    journal = ListJournal()
    notifier = Notifier(
        groups if groups is not None else _groups(hooks),
        routes,
        email,
        WebhookSettings(SECRET_ENV, timeout_s=2, attempts=2, backoff_s=1),
        journal,
        clock,
        "Europe/Berlin",
    )
    task = asyncio.create_task(notifier.run())
    try:
        yield Running(notifier, clock, journal, hooks)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


ESCALATING = NotificationRouteDef(
    "water",
    ("water-oncall", "duty-manager", "director"),
    ("water",),
    AlarmPriority.MEDIUM,
    escalate_after_s=900,
)


@pytest_asyncio.fixture
async def escalating(webhook_receiver: WebhookReceiver) -> AsyncIterator[Running]:
    """A notifier with one three-step water route."""
    async with running_notifier(webhook_receiver, [ESCALATING]) as running:
        yield running


async def test_activation_goes_to_the_first_group_then_escalates_on_the_clock(
    escalating: Running,
) -> None:
    escalating.notifier.on_transition(*activation(tank_alarm(), DAY))
    await escalating.settle()
    assert escalating.groups_told() == [("water-oncall", "water.tank1.level.high")]
    assert all(request.signature_valid() for request in escalating.hooks.requests)
    await escalating.advance(899)
    assert len(escalating.hooks.requests) == 1
    await escalating.advance(1)
    assert escalating.groups_told()[1:] == [("duty-manager", "water.tank1.level.high")]
    assert escalating.hooks.requests[1].path == "/duty"
    assert escalating.hooks.bodies()[1]["escalation_level"] == 1
    await escalating.advance(900)
    assert escalating.groups_told()[2:] == [("director", "water.tank1.level.high")]
    await escalating.advance(5000)
    assert len(escalating.hooks.requests) == 3  # no group beyond the last
    assert len(escalating.events("escalated: alarm water.tank1.level.high")) == 2
    assert len(escalating.events("sent: alarm water.tank1.level.high")) == 3


async def test_acknowledgement_ends_the_escalation(escalating: Running) -> None:
    definition, state, transition = activation(tank_alarm(), DAY)
    escalating.notifier.on_transition(definition, state, transition)
    await escalating.settle()
    await escalating.advance(600)
    escalating.notifier.on_transition(
        *follow_up(
            state, definition, AlarmAction.ACKNOWLEDGE, escalating.clock.now(), acknowledged=True
        )
    )
    await escalating.advance(3600)
    assert escalating.groups_told() == [("water-oncall", "water.tank1.level.high")]
    assert escalating.events("escalated") == []


async def test_cleared_but_unacknowledged_keeps_escalating_until_acknowledged(
    escalating: Running,
) -> None:
    definition, state, transition = activation(tank_alarm(), DAY)
    escalating.notifier.on_transition(definition, state, transition)
    cleared = follow_up(state, definition, AlarmAction.CLEAR, DAY, active=False)
    escalating.notifier.on_transition(*cleared)
    await escalating.advance(900)
    assert [group for group, _ in escalating.groups_told()] == ["water-oncall", "duty-manager"]
    escalating.notifier.on_transition(
        *follow_up(cleared[1], definition, AlarmAction.ACKNOWLEDGE, DAY, acknowledged=True)
    )
    await escalating.advance(900)
    assert len(escalating.hooks.requests) == 2


async def test_a_chattering_alarm_is_notified_once_until_acknowledged(
    escalating: Running,
) -> None:
    definition, state, _ = activation(tank_alarm(), DAY)
    for _ in range(5):
        escalating.notifier.on_transition(*activation(definition, DAY))
        escalating.notifier.on_transition(
            *follow_up(state, definition, AlarmAction.CLEAR, DAY, active=False)
        )
    await escalating.settle()
    assert len(escalating.hooks.requests) == 1
    escalating.notifier.on_transition(
        *follow_up(state, definition, AlarmAction.ACKNOWLEDGE, DAY, acknowledged=True)
    )
    escalating.notifier.on_transition(*activation(definition, DAY))
    await escalating.settle()
    assert len(escalating.hooks.requests) == 2


@pytest.mark.parametrize("silenced", ["shelved", "suppressed", "out_of_service"])
async def test_silenced_alarms_are_not_notified(escalating: Running, silenced: str) -> None:
    escalating.notifier.on_transition(*activation(tank_alarm(), DAY, **{silenced: True}))
    await escalating.advance(3600)
    assert escalating.hooks.requests == []
    assert escalating.journal.events == []


async def test_shelving_an_active_alarm_ends_its_escalation(escalating: Running) -> None:
    definition, state, transition = activation(tank_alarm(), DAY)
    escalating.notifier.on_transition(definition, state, transition)
    escalating.notifier.on_transition(
        *follow_up(state, definition, AlarmAction.SHELVE, DAY, shelved_by="olga")
    )
    await escalating.advance(3600)
    assert len(escalating.hooks.requests) == 1


async def test_routes_filter_by_area_and_priority(escalating: Running) -> None:
    escalating.notifier.on_transition(*activation(tank_alarm("heat.x", area="heating"), DAY))
    escalating.notifier.on_transition(
        *activation(tank_alarm("water.low", priority=AlarmPriority.LOW), DAY)
    )
    escalating.notifier.on_transition(
        *activation(tank_alarm("water.crit", priority=AlarmPriority.CRITICAL), DAY)
    )
    await escalating.settle()
    assert escalating.groups_told() == [("water-oncall", "water.crit")]


QUIET = NotificationRouteDef(
    "water-night",
    ("water-oncall", "duty-manager"),
    ("water",),
    AlarmPriority.LOW,
    escalate_after_s=900,
    quiet_hours="22:00-07:00",
    quiet_below=AlarmPriority.MEDIUM,
)


@pytest_asyncio.fixture
async def at_night(webhook_receiver: WebhookReceiver) -> AsyncIterator[Running]:
    """A notifier with a quiet-hours route, started at 22:30 site time."""
    async with running_notifier(webhook_receiver, [QUIET], start=NIGHT) as running:
        yield running


async def test_quiet_hours_hold_low_priorities_until_they_end(at_night: Running) -> None:
    low = tank_alarm("water.tank1.level.warn", priority=AlarmPriority.LOW)
    urgent = tank_alarm("water.tank1.level.high", priority=AlarmPriority.HIGH)
    at_night.notifier.on_transition(*activation(low, NIGHT))
    at_night.notifier.on_transition(*activation(urgent, NIGHT))
    await at_night.settle()
    assert at_night.groups_told() == [("water-oncall", "water.tank1.level.high")]
    (held,) = at_night.events("held for quiet hours")
    assert "water.tank1.level.warn" in held and "2026-01-16 07:00 CET" in held
    # 06:00 UTC is 07:00 in Berlin: the quiet hours end and the held alarm goes out.
    await at_night.advance((datetime(2026, 1, 16, 6, 0, tzinfo=UTC) - NIGHT).total_seconds() - 1)
    assert ("water-oncall", "water.tank1.level.warn") not in at_night.groups_told()
    await at_night.advance(1)
    assert ("water-oncall", "water.tank1.level.warn") in at_night.groups_told()
    # Its escalation starts from the end of the quiet hours.
    await at_night.advance(900)
    assert ("duty-manager", "water.tank1.level.warn") in at_night.groups_told()


async def test_a_held_alarm_that_clears_is_not_sent(at_night: Running) -> None:
    low = tank_alarm("water.tank1.level.warn", priority=AlarmPriority.LOW)
    definition, state, transition = activation(low, NIGHT)
    at_night.notifier.on_transition(definition, state, transition)
    at_night.notifier.on_transition(
        *follow_up(state, definition, AlarmAction.CLEAR, NIGHT, active=False)
    )
    await at_night.advance(9 * 3600)
    assert at_night.hooks.requests == []
    assert len(at_night.events("not sent after quiet hours: alarm water.tank1.level.warn")) == 1


async def test_a_flood_of_200_activations_sends_one_summary_per_group(
    webhook_receiver: WebhookReceiver, smtp_receiver: SmtpReceiver
) -> None:
    groups = [
        OnCallGroupDef("water-oncall", ("water@city.example",), (webhook_receiver.url("/w"),)),
        OnCallGroupDef("duty-manager", webhooks=(webhook_receiver.url("/d"),)),
    ]
    routes = [
        NotificationRouteDef("water", ("water-oncall",), ("water",)),
        NotificationRouteDef("all", ("duty-manager",)),
    ]
    email = EmailSettings("127.0.0.1", smtp_receiver.port, "scada@city.example")
    async with running_notifier(webhook_receiver, routes, groups=groups, email=email) as running:
        for index in range(200):
            priority = AlarmPriority.HIGH if index % 4 == 0 else AlarmPriority.LOW
            running.notifier.on_transition(
                *activation(tank_alarm(f"water.a{index:03}", priority=priority), DAY)
            )
        await running.settle()
        told = running.groups_told()
        assert len(told) == 20  # the first ten of each group, one by one
        assert told.count(("water-oncall", "summary")) == 0
        await running.advance(60)
        summaries = [body for body in webhook_receiver.bodies() if body["type"] == "flood_summary"]
        assert sorted(body["group"] for body in summaries) == ["duty-manager", "water-oncall"]
        for summary in summaries:
            assert summary["count"] == 190
            assert sum(summary["by_priority"].values()) == 190
            assert summary["by_priority"] == {"high": 47, "low": 143}
            assert [alarm["alarm"] for alarm in summary["first"]] == [
                f"water.a{index:03}" for index in range(10, 20)
            ]
        assert len(running.events("summarised: 190 alarms")) == 2
        mails = smtp_receiver.messages()
        assert len(mails) == 11
        assert mails[-1]["Subject"].startswith("[FLOOD] 190 alarms for water-oncall")
        assert "By priority: high 47, low 143" in mails[-1].get_content()
        await running.advance(600)
        assert len(running.hooks.requests) == 22  # nothing more once the flood is summarised


async def test_failed_deliveries_are_journaled_with_their_reason(
    webhook_receiver: WebhookReceiver,
) -> None:
    webhook_receiver.statuses = [400]
    route = NotificationRouteDef("water", ("water-oncall",), ("water",))
    async with running_notifier(webhook_receiver, [route]) as running:
        running.notifier.on_transition(*activation(tank_alarm(), DAY))
        await running.settle()
        (failed,) = running.events("failed:")
        assert "water.tank1.level.high" in failed and "HTTP 400 (not retried)" in failed
        assert f"127.0.0.1:{webhook_receiver.port}" in failed
        assert "/water" not in failed  # the URL's path (often a token) stays out of the journal
        assert running.journal.events[-1].severity == FAILED_SEVERITY
        assert len(webhook_receiver.requests) == 1


async def test_a_503_receiver_is_retried_on_the_clock(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.statuses = [503]
    route = NotificationRouteDef("water", ("water-oncall",), ("water",))
    async with running_notifier(webhook_receiver, [route]) as running:
        running.notifier.on_transition(*activation(tank_alarm(), DAY))
        # The delivery waits out its backoff on the center's clock, not in real time.
        clock = running.clock
        await eventually(lambda: clock.sleepers == 1)
        assert len(webhook_receiver.requests) == 1
        assert running.events("sent:") == []
        running.clock.advance(1)
        await running.settle()
        assert len(webhook_receiver.requests) == 2
        assert len(running.events("sent: alarm water.tank1.level.high")) == 1


def test_configuration_errors_are_found_at_construction() -> None:
    clock, journal = FakeClock(), ListJournal()
    mailing = [OnCallGroupDef("g", emails=("a@city.example",))]
    with pytest.raises(NotificationConfigError, match="no mail relay"):
        Notifier(mailing, [], None, None, journal, clock)
    with pytest.raises(NotificationConfigError, match="unknown time zone"):
        Notifier([], [], None, None, journal, clock, "Mars/Olympus")
    with pytest.raises(NotificationConfigError, match="unknown on-call group"):
        Notifier([], [NotificationRouteDef("r", ("nobody",))], None, None, journal, clock)


async def test_transitions_handed_over_from_another_thread_are_notified(
    escalating: Running,
) -> None:
    # The alarm service may call its listeners from a worker thread.
    await asyncio.to_thread(escalating.notifier.on_transition, *activation(tank_alarm(), DAY))
    await escalating.settle()
    assert escalating.groups_told() == [("water-oncall", "water.tank1.level.high")]
