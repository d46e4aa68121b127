"""RuleDeployment: the rule set a center starts with, live activation and refusal of requested
versions, on a real SQLite historian, with a stand-in compiler and a controlled poll."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlcenter.automation import RuleSource
from controlcenter.model import Event, EventKind
from controlcenter.ports import RuleVersion, RuleVersionStatus
from controlcenter.runtime.rule_deployment import (
    SITE_FILE_AUTHOR,
    RuleDeployment,
    RuleSetRefusedError,
    read_rule_sources,
    rule_source_name,
)
from historian.errors import StorageError
from historian.store import SqlHistorian

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
WATER = RuleSource("rules/water.yaml", "rules:\n  - name: water.fill\n")
LIGHTS = RuleSource("rules/lighting.yaml", "rules:\n  - name: lights.dusk_on\n")
BROKEN = RuleSource("rules/water.yaml", "rules:\n  - name: water.fill\n    condition: (\n")
BROKEN_PROBLEMS = (
    "rules/water.yaml:3:16: syntax error: unexpected end of expression",
    "rules/water.yaml:3:5: condition must be bool",
)


@dataclass(frozen=True)
class FakeCompiled:
    """What the stand-in compiler makes of a version: its files' names and texts."""

    sources: tuple[RuleSource, ...]


def fake_validate(sources: Sequence[RuleSource]) -> FakeCompiled:
    """Refuses any file whose text holds an unclosed parenthesis, naming two problems."""
    if any("(\n" in source.text for source in sources):
        raise RuleSetRefusedError(BROKEN_PROBLEMS)
    return FakeCompiled(tuple(sources))


@dataclass
class Harness:
    """A deployment on a real store, recording what it activates."""

    store: SqlHistorian
    activated: list[FakeCompiled] = field(default_factory=list)
    clock: list[datetime] = field(default_factory=lambda: [T0])

    def deployment(
        self,
        site_sources: Sequence[RuleSource] = (WATER,),
        *,
        activate: Callable[[FakeCompiled], None] | None = None,
    ) -> RuleDeployment[FakeCompiled]:
        """A deployment of ``site_sources`` journaling into the store."""
        return RuleDeployment(
            self.store,
            self,
            fake_validate,
            activate or self.activated.append,
            site_sources=site_sources,
            now=lambda: self.clock[0],
        )

    def record(self, event: Event) -> None:
        """The EventJournal port: into the store's event journal."""
        self.store.journal_event(event)

    def apply(self, sources: Sequence[RuleSource], author: str, reason: str) -> RuleVersion:
        """What ``controlcenter rules apply`` does to the store."""
        stored = self.store.add_rule_version(sources, author, reason, T0)
        self.store.request_rule_version(stored.version)
        return stored

    def statuses(self) -> dict[int, RuleVersionStatus]:
        """Each stored version's status."""
        return {version.version: version.status for version in self.store.rule_versions()}

    def rule_messages(self) -> list[str]:
        """The RULE events journaled so far."""
        return [event.message for event in self.store.read_events(kind=EventKind.RULE)]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A harness on an SQLite historian of its own."""
    store = SqlHistorian(f"sqlite:///{tmp_path / 'center.db'}")
    try:
        yield Harness(store)
    finally:
        store.close()


def test_a_first_start_stores_the_site_files_as_version_1_and_runs_them(harness: Harness) -> None:
    deployment = harness.deployment((WATER, LIGHTS))

    compiled = deployment.start()

    assert compiled == FakeCompiled((WATER, LIGHTS))
    (version,) = harness.store.rule_versions()
    assert (version.version, version.author, version.status) == (
        1,
        SITE_FILE_AUTHOR,
        RuleVersionStatus.ACTIVE,
    )
    assert version.sources == (WATER, LIGHTS)
    assert harness.store.requested_rule_version() == 1
    assert deployment.running_version == 1
    assert harness.rule_messages() == [
        "rule set v1 activated by site file: rule files of the site file"
    ]


def test_a_restart_runs_the_stored_version_and_warns_once_when_site_files_differ(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.deployment((WATER,)).start()
    harness.apply((WATER, LIGHTS), "ana", "lighting rules")

    with caplog.at_level(logging.WARNING, "controlcenter.runtime.rule_deployment"):
        compiled = harness.deployment((WATER,)).start()

    assert compiled == FakeCompiled((WATER, LIGHTS))  # the database's version, not the files
    assert harness.statuses() == {1: RuleVersionStatus.SUPERSEDED, 2: RuleVersionStatus.ACTIVE}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "differ from the running rule set v2" in warnings[0]
    assert "rules apply" in warnings[0]


def test_a_restart_with_unchanged_files_does_not_warn(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.deployment((WATER,)).start()
    with caplog.at_level(logging.WARNING, "controlcenter.runtime.rule_deployment"):
        harness.deployment((WATER,)).start()

    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert len(harness.store.rule_versions()) == 1  # not stored a second time


async def test_a_requested_version_is_activated_and_journaled_with_who_and_why(
    harness: Harness,
) -> None:
    deployment = harness.deployment()
    deployment.start()
    assert await deployment.check_once() is None  # nothing new
    harness.clock[0] = T0 + timedelta(minutes=5)

    harness.apply((WATER, LIGHTS), "ana", "dusk switching for district 1")
    outcome = await deployment.check_once()

    assert outcome is not None
    assert outcome.status is RuleVersionStatus.ACTIVE
    assert outcome.decided_at is not None
    assert harness.activated == [FakeCompiled((WATER, LIGHTS))]
    assert deployment.running_version == 2
    assert harness.statuses() == {1: RuleVersionStatus.SUPERSEDED, 2: RuleVersionStatus.ACTIVE}
    events = harness.store.read_events(kind=EventKind.RULE)
    assert events[-1].message == "rule set v2 activated by ana: dusk switching for district 1"
    assert events[-1].user == "ana"
    assert events[-1].time == T0 + timedelta(minutes=5)
    assert await deployment.check_once() is None  # handled once only
    assert len(harness.activated) == 1


async def test_a_refused_version_leaves_the_running_set_running(harness: Harness) -> None:
    deployment = harness.deployment()
    deployment.start()
    harness.apply((LIGHTS,), "ana", "lights")
    await deployment.check_once()

    harness.apply((BROKEN,), "bo", "tighter fill band")
    outcome = await deployment.check_once()

    assert outcome is not None
    assert outcome.status is RuleVersionStatus.REFUSED
    assert outcome.detail == "\n".join(BROKEN_PROBLEMS)  # every problem, in full
    assert harness.activated == [FakeCompiled((LIGHTS,))]  # the broken set never reached it
    assert deployment.running_version == 2
    assert harness.statuses() == {
        1: RuleVersionStatus.SUPERSEDED,
        2: RuleVersionStatus.ACTIVE,
        3: RuleVersionStatus.REFUSED,
    }
    refusal = harness.store.read_events(kind=EventKind.RULE)[-1]
    assert refusal.message.startswith("rule set v3 by bo refused (tighter fill band): 2 problems:")
    assert BROKEN_PROBLEMS[0] in refusal.message
    assert refusal.severity == 500
    assert await deployment.check_once() is None  # not retried every poll


async def test_an_engine_that_refuses_the_swap_marks_the_version_refused(
    harness: Harness,
) -> None:
    def failing_activate(compiled: FakeCompiled) -> None:
        if LIGHTS in compiled.sources:
            raise RuntimeError("engine stopped")
        harness.activated.append(compiled)

    deployment = harness.deployment(activate=failing_activate)
    harness.activated.append(deployment.start())
    harness.apply((LIGHTS,), "ana", "lights")

    outcome = await deployment.check_once()

    assert outcome is not None
    assert outcome.status is RuleVersionStatus.REFUSED
    assert "activation failed: RuntimeError('engine stopped')" in outcome.detail
    assert harness.statuses()[1] is RuleVersionStatus.ACTIVE
    assert deployment.running_version == 1


def test_a_requested_version_refused_at_start_falls_back_to_the_active_one(
    harness: Harness,
) -> None:
    harness.deployment((WATER,)).start()
    # Stored and requested while the center was stopped; broken against this site.
    harness.apply((BROKEN,), "bo", "offline edit")

    compiled = harness.deployment((WATER,)).start()

    assert compiled == FakeCompiled((WATER,))
    assert harness.statuses() == {1: RuleVersionStatus.ACTIVE, 2: RuleVersionStatus.REFUSED}
    assert any("v2 by bo refused" in message for message in harness.rule_messages())


def test_with_nothing_that_passes_the_center_starts_without_rules(harness: Harness) -> None:
    compiled = harness.deployment((BROKEN,)).start()

    assert compiled == FakeCompiled(())
    assert harness.statuses() == {1: RuleVersionStatus.REFUSED}
    assert harness.rule_messages()[-1] == (
        "no rule set passes the site's checks: running without rules"
    )


def test_a_site_without_rule_files_starts_without_rules_and_stores_nothing(
    harness: Harness,
) -> None:
    deployment = harness.deployment(())

    assert deployment.start() == FakeCompiled(())
    assert deployment.running_version is None
    assert harness.store.rule_versions() == []
    assert harness.store.requested_rule_version() is None


async def test_watch_polls_on_its_interval_and_deploys_what_is_requested(
    harness: Harness,
) -> None:
    ticks: asyncio.Queue[None] = asyncio.Queue()
    asleep: asyncio.Queue[float] = asyncio.Queue()
    activated = asyncio.Event()

    async def controlled_sleep(seconds: float) -> None:
        await asleep.put(seconds)
        await ticks.get()

    def activate(compiled: FakeCompiled) -> None:
        harness.activated.append(compiled)
        activated.set()

    deployment = RuleDeployment(
        harness.store,
        harness,
        fake_validate,
        activate,
        site_sources=(WATER,),
        now=lambda: T0,
        poll_interval_s=2.0,
        sleep=controlled_sleep,
    )
    deployment.start()
    watcher = asyncio.create_task(deployment.watch())
    try:
        assert await asyncio.wait_for(asleep.get(), timeout=5) == 2.0
        await ticks.put(None)  # a poll with nothing new
        assert await asyncio.wait_for(asleep.get(), timeout=5) == 2.0
        assert harness.activated == []
        harness.apply((LIGHTS,), "ana", "lights")
        await ticks.put(None)
        await asyncio.wait_for(activated.wait(), timeout=5)
        # The outcome is recorded in a worker thread after the swap: wait for it, bounded.
        deadline = asyncio.get_running_loop().time() + 5
        while harness.statuses()[2] is not RuleVersionStatus.ACTIVE:
            assert asyncio.get_running_loop().time() < deadline, harness.statuses()
            await asyncio.sleep(0.01)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

    assert harness.activated == [FakeCompiled((LIGHTS,))]
    assert harness.statuses()[2] is RuleVersionStatus.ACTIVE


class FlakyStore:
    """A store whose reads of the request fail while ``down`` is set (a database outage)."""

    def __init__(self, store: SqlHistorian) -> None:
        self.store = store
        self.down = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def requested_rule_version(self) -> int | None:
        if self.down:
            raise StorageError("could not read the requested rule-set version: database is locked")
        return self.store.requested_rule_version()


async def test_a_store_outage_is_logged_once_and_the_poll_recovers(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyStore(harness.store)
    deployment: RuleDeployment[FakeCompiled] = RuleDeployment(
        flaky,  # type: ignore[arg-type]  # a proxy: the port's methods through __getattr__
        harness,
        fake_validate,
        harness.activated.append,
        site_sources=(WATER,),
        now=lambda: T0,
    )
    deployment.start()
    harness.apply((LIGHTS,), "ana", "lights")
    flaky.down = True

    with caplog.at_level(logging.INFO, "controlcenter.runtime.rule_deployment"):
        assert await deployment.check_once() is None
        assert await deployment.check_once() is None
        flaky.down = False
        outcome = await deployment.check_once()

    failures = [r for r in caplog.records if "cannot read the requested" in r.getMessage()]
    assert len(failures) == 1
    assert any("readable again" in r.getMessage() for r in caplog.records)
    assert outcome is not None
    assert outcome.status is RuleVersionStatus.ACTIVE


def test_rule_files_are_named_relative_to_the_site_file(tmp_path: Path) -> None:
    site_directory = tmp_path / "site"
    (site_directory / "rules").mkdir(parents=True)
    inside = site_directory / "rules" / "water.yaml"
    inside.write_text("rules: []\n", encoding="utf-8")
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("calculated: []\n", encoding="utf-8")

    sources = read_rule_sources([inside, outside], site_directory)

    assert sources == (
        RuleSource("rules/water.yaml", "rules: []\n"),
        RuleSource(outside.resolve().as_posix(), "calculated: []\n"),
    )
    assert rule_source_name(
        site_directory / "rules" / ".." / "rules" / "water.yaml", site_directory
    ) == ("rules/water.yaml")


def test_unreadable_rule_files_are_all_named(tmp_path: Path) -> None:
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "latin1.yaml").write_bytes(b"rules: []\n# caf\xe9\n")

    with pytest.raises(RuleSetRefusedError) as refused:
        read_rule_sources(
            [tmp_path / "missing.yaml", tmp_path / "folder.yaml", tmp_path / "latin1.yaml"],
            tmp_path,
        )

    assert refused.value.problems == (
        "missing.yaml: cannot read: No such file or directory",
        "folder.yaml: not a regular file (a directory)",
        "latin1.yaml:2:1: not UTF-8: byte 0xE9",
    )
