"""Rules display: live state and versions in words, the edited rule set built only from the
running version's files, outcomes of apply, and forged callbacks refused on the server."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from controlcenter.automation import RuleSource
from controlcenter.model import Event, Role, User
from controlcenter.ports import (
    BacktestJob,
    EventJournal,
    HistoryReader,
    LiveView,
    LoginSessions,
    RuleApplyOutcome,
    RuleLiveState,
    RuleVersion,
    RuleVersionStatus,
)
from controlcenter.security.users import UserStore
from hmi.page import PageRequest
from hmi.pages.rules import PAGE, edited_sources, render_outcome, render_states
from hmi.server import HmiServer
from tests.hmi.conftest import (
    OPERATOR_NAME,
    OPERATOR_PASSWORD,
    SIM_EPOCH,
    hmi_context,
    serving_context,
)
from tests.hmi.http_support import log_in, send

WATER = RuleSource("rules/water.yaml", "rules:\n  - name: water.fill\n")
LIGHTS = RuleSource("rules/lighting.yaml", "rules:\n  - name: lights.dusk\n")
ENGINEER, ENGINEER_PASSWORD = "erik", "engineer passphrase 5"
MAINTENANCE, MAINTENANCE_PASSWORD = "mats", "maintenance passphrase 9"


class FakeRules:
    """RuleOperations holding two versions; records what it is asked to change."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, tuple[RuleSource, ...], str]] = []
        self.stored = [
            RuleVersion(
                1, SIM_EPOCH, "site file", "first", (WATER, LIGHTS), RuleVersionStatus.ACTIVE
            )
        ]

    def running_version(self) -> RuleVersion | None:
        return self.stored[-1]

    def versions(self) -> list[RuleVersion]:
        return list(self.stored)

    def version(self, number: int) -> RuleVersion:
        return self.stored[number - 1]

    def diff(self, older: int, newer: int) -> str:
        return ""

    def live_states(self) -> list[RuleLiveState]:
        return [RuleLiveState("water.fill", True, held="water.tank1.level is Bad")]

    def validate(self, user: User, sources: Sequence[RuleSource]) -> tuple[str, ...]:
        return ()

    def start_backtest(
        self, user: User, sources: Sequence[RuleSource], start: datetime, end: datetime
    ) -> BacktestJob:
        return BacktestJob("job", user.name, start, end)

    def backtest(self, user: User, job_id: str) -> BacktestJob:
        raise KeyError(job_id)

    def apply(self, user: User, sources: Sequence[RuleSource], reason: str) -> RuleApplyOutcome:
        self.applied.append((user.name, tuple(sources), reason))
        version = RuleVersion(
            len(self.stored) + 1,
            SIM_EPOCH,
            user.name,
            reason,
            tuple(sources),
            RuleVersionStatus.ACTIVE,
        )
        self.stored.append(version)
        return RuleApplyOutcome(version)

    def rollback(self, user: User, version: int, reason: str) -> RuleApplyOutcome:
        return self.apply(user, self.version(version).sources, reason)


def text_of(component: Any) -> str:
    return json.dumps(component.to_plotly_json(), default=str)


def test_edited_sources_replace_one_file_of_the_running_version_only() -> None:
    rules = FakeRules()
    edited = edited_sources(rules, "rules/lighting.yaml", "rules: []\n")
    assert edited == (WATER, RuleSource("rules/lighting.yaml", "rules: []\n"))
    assert isinstance(edited_sources(rules, "/etc/passwd", "x"), str)
    assert isinstance(edited_sources(rules, ["rules/water.yaml"], "x"), str)
    assert isinstance(edited_sources(rules, "rules/water.yaml", {"text": 1}), str)
    assert isinstance(edited_sources(rules, "rules/water.yaml", "x" * 2_000_000), str)


def test_states_versions_and_outcomes_are_words(
    live_view: LiveView, history: HistoryReader, journal: EventJournal
) -> None:
    context = hmi_context(live_view, history, journal, rules=FakeRules())
    states = text_of(
        render_states(
            context,
            [
                RuleLiveState("water.fill", True, held="water.tank1.level is Bad"),
                RuleLiveState(
                    "lights.dusk",
                    True,
                    last_fired=SIM_EPOCH,
                    last_action_at=SIM_EPOCH + timedelta(seconds=1),
                    last_action="lights.d1.c1.mode := 1",
                ),
                RuleLiveState("heat.off", False),
            ],
        )
    )
    assert "Holding: water.tank1.level is Bad" in states and "acting" in states
    assert "disabled" in states and "2030-01-01 00:00:01 UTC: lights.d1.c1.mode := 1" in states
    page = text_of(PAGE.render(context, User(ENGINEER, Role.ENGINEER), PageRequest("/rules")))
    assert "v1 (running)" in page and "rules/water.yaml" in page and "name: water.fill" in page
    refused = RuleVersion(
        2, SIM_EPOCH, "erik", "x", (WATER,), RuleVersionStatus.REFUSED, "a:1:2: bad"
    )
    assert "the center refused rule set v2" in text_of(render_outcome(RuleApplyOutcome(refused)))
    assert "refused, nothing stored" in text_of(render_outcome(RuleApplyOutcome(None, ("p",))))
    active = RuleVersion(3, SIM_EPOCH, "erik", "x", (WATER,), RuleVersionStatus.ACTIVE)
    assert "rule set v3 applied" in text_of(render_outcome(RuleApplyOutcome(active)))


@pytest.fixture
def rules() -> FakeRules:
    return FakeRules()


@pytest.fixture
def rules_server(
    rules: FakeRules,
    live_view: LiveView,
    history: HistoryReader,
    journal: EventJournal,
    login_sessions: LoginSessions,
    user_store: UserStore,
) -> Iterator[HmiServer]:
    user_store.add_user(ENGINEER, ENGINEER_PASSWORD, Role.ENGINEER)
    user_store.add_user(MAINTENANCE, MAINTENANCE_PASSWORD, Role.MAINTENANCE)
    context = hmi_context(live_view, history, journal, rules=rules)
    with serving_context(context, login_sessions) as server:
        yield server


def apply_request(base_url: str, cookie: str, text: str) -> tuple[int, str]:
    """The apply button's callback, sent by hand."""
    payload = {
        "output": "..rules-outcome.children...rules-versions.children..",
        "outputs": [
            {"id": "rules-outcome", "property": "children"},
            {"id": "rules-versions", "property": "children"},
        ],
        "inputs": [
            {"id": "rules-apply", "property": "n_clicks", "value": 1},
            {"id": "rules-rollback", "property": "n_clicks", "value": None},
        ],
        "state": [
            {"id": "rules-file", "property": "value", "value": "rules/water.yaml"},
            {"id": "rules-editor", "property": "value", "value": text},
            {"id": "rules-reason", "property": "value", "value": "lower threshold"},
            {"id": "rules-rollback-to", "property": "value", "value": None},
        ],
        "changedPropIds": ["rules-apply.n_clicks"],
    }
    reply = send(
        base_url,
        "POST",
        "/_dash-update-component",
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        cookie=cookie,
    )
    return reply.status, reply.body.decode()


def test_a_forged_apply_by_an_operator_or_maintenance_is_refused(
    rules_server: HmiServer, rules: FakeRules, journal_events: list[Event]
) -> None:
    url = rules_server.url
    for name, password in ((OPERATOR_NAME, OPERATOR_PASSWORD), (MAINTENANCE, MAINTENANCE_PASSWORD)):
        cookie = log_in(url, name, password).cookie()
        status, body = apply_request(url, cookie, "rules: []\n")
        assert status == 403 and "apply_rules" in body
    assert rules.applied == []
    assert sum("refused /_dash-update-component" in e.message for e in journal_events) == 2
    engineer = log_in(url, ENGINEER, ENGINEER_PASSWORD).cookie()
    status, body = apply_request(url, engineer, "rules: []\n")
    assert status == 200 and "rule set v2 applied" in body
    ((author, sources, reason),) = rules.applied
    assert author == ENGINEER and reason == "lower threshold"
    assert sources == (RuleSource("rules/water.yaml", "rules: []\n"), LIGHTS)
