"""Rule-set versions deployed into a running center: the set it starts with, and live changes.

The rule set the center runs is a version stored in the historian (``ports.RuleVersionStore``):
the full text of every rule file, who stored it and why. ``controlcenter rules apply`` and
``rules rollback`` store a new version and *request* it; the running center polls the request,
checks the version against its site (parse, site checks, compile: ``validate_rule_set``) and
swaps it into the rules engine whole, or refuses it with every problem and keeps the running set
running. Both outcomes are recorded on the version and journaled.

The first time a center starts on a database without a requested version, the site file's rule
files become version 1 (author ``site file``). Afterwards the database, not the files, says what
runs: a center started with edited files warns once that they differ and how to apply them, so
a restart never silently activates an untested change.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Generic, TypeVar

from controlcenter.automation import RuleSource, SiteLocation
from controlcenter.model import Event, EventKind, TagDef, utc_now
from controlcenter.ports import (
    EventJournal,
    RuleVersion,
    RuleVersionStatus,
    RuleVersionStore,
)
from controlcenter.site.rulefile import check_rule_set_against_site, parse_rule_sources
from controlcenter.site.yamlsource import SourceFileError, read_source_bytes
from historian.errors import StorageError
from rules.ruleset import CompiledRuleSet, RuleSetError, compile_rule_set

log = logging.getLogger(__name__)

SITE_FILE_AUTHOR = "site file"
"""The author of the version recorded from the site's rule files on a first start."""
POLL_INTERVAL_S = 2.0
"""Wall seconds between two looks at the requested version."""
JOURNAL_SOURCE = "rules"
"""The source of the deployment's journal events."""
MAX_JOURNALED_PROBLEMS = 20
"""Problems quoted in a refusal's journal event (the version's record keeps them all)."""

CompiledT = TypeVar("CompiledT")


class RuleSetRefusedError(Exception):
    """A rule set that cannot run; ``problems`` lists each as ``file:line:column: reason``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems) or ("the rule set was refused (no reason given)",)
        super().__init__("\n".join(self.problems))


RuleSetValidator = Callable[[Sequence[RuleSource]], CompiledT]
"""Checks the rule files of a version and compiles them; raises RuleSetRefusedError."""


@dataclass(frozen=True, slots=True)
class SiteRules:
    """What a rule set is checked against: the site's tags, location and rules' identity."""

    tags: tuple[TagDef, ...]
    location: SiteLocation
    identity: str
    """The user the rules' commands are requested by (the site's ``automation.identity``)."""


def validate_rule_set(sources: Sequence[RuleSource], site: SiteRules) -> CompiledRuleSet:
    """Parse, check against the site and compile rule files, or raise RuleSetRefusedError
    listing every problem found at the first stage that found any.

    The stages run in order (the files' syntax and schema, then their tags against the site,
    then the expressions), each listing all its problems: a later stage would report the same
    mistake again in its own words (an unknown tag is also an expression that does not compile).
    """
    try:
        definition = parse_rule_sources(sources)
    except SourceFileError as err:
        raise RuleSetRefusedError([str(problem) for problem in err.problems]) from err
    if site.identity:
        definition = replace(definition, identity=site.identity)
    site_problems = check_rule_set_against_site(definition, site.tags)
    if site_problems:
        raise RuleSetRefusedError([str(problem) for problem in site_problems])
    try:
        return compile_rule_set(definition, site.tags, site.location)
    except RuleSetError as err:
        raise RuleSetRefusedError([str(problem) for problem in err.problems]) from err


def site_validator(site: SiteRules) -> RuleSetValidator[CompiledRuleSet]:
    """``validate_rule_set`` bound to one site."""

    def validate(sources: Sequence[RuleSource]) -> CompiledRuleSet:
        return validate_rule_set(sources, site)

    return validate


def rule_source_name(path: Path, site_directory: Path) -> str:
    """The name a rule file is stored under: its path relative to the site file's directory
    when it lies inside it (as the site file lists it), else its absolute path; so the same
    file gets the same name from the center and from the command line in any directory."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(site_directory.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def read_rule_sources(paths: Sequence[Path], site_directory: Path) -> tuple[RuleSource, ...]:
    """The full text of each rule file (regular files within the site file size limit, UTF-8),
    named by ``rule_source_name``; raises RuleSetRefusedError naming every unreadable file."""
    sources: list[RuleSource] = []
    problems: list[str] = []
    for path in paths:
        name = rule_source_name(path, site_directory)
        try:
            data = read_source_bytes(path)
        except SourceFileError as err:
            problems.extend(f"{name}: {problem.message}" for problem in err.problems)
            continue
        try:
            sources.append(RuleSource(name, data.decode("utf-8")))
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            problems.append(f"{name}:{line}:1: not UTF-8: byte 0x{data[err.start]:02X}")
    if problems:
        raise RuleSetRefusedError(problems)
    return tuple(sources)


def same_sources(first: Sequence[RuleSource], second: Sequence[RuleSource]) -> bool:
    """Whether two lists of rule files are the same files with the same text, in order."""
    return tuple(first) == tuple(second)


def unified_diff(older: RuleVersion, newer: RuleVersion) -> list[str]:
    """The unified diff (difflib) of two versions, file by file in the newer one's order,
    then the files only the older one has; a file only one side has is diffed against
    nothing."""
    old_files = {source.name: source.text for source in older.sources}
    new_files = {source.name: source.text for source in newer.sources}
    names = [*new_files, *(name for name in old_files if name not in new_files)]
    lines: list[str] = []
    for name in names:
        before = old_files.get(name, "")
        after = new_files.get(name, "")
        for line in difflib.unified_diff(
            _lines(before),
            _lines(after),
            fromfile=f"v{older.version}/{name}" if name in old_files else "/dev/null",
            tofile=f"v{newer.version}/{name}" if name in new_files else "/dev/null",
        ):
            lines.append(line if line.endswith("\n") else line + "\n")
    return lines


def _lines(text: str) -> list[str]:
    # A last line without a newline still compares equal to one with it.
    return [line if line.endswith("\n") else line + "\n" for line in text.splitlines(True)]


class RuleDeployment(Generic[CompiledT]):
    """Starts the center on its requested rule-set version and swaps in newly requested ones.

    ``validate`` checks and compiles a version's files (``site_validator`` in the center);
    ``activate`` swaps a compiled set into the running engine and is called on the event loop.
    Store and journal calls run in worker threads: the event loop never waits for the database.
    """

    def __init__(
        self,
        store: RuleVersionStore,
        journal: EventJournal,
        validate: RuleSetValidator[CompiledT],
        activate: Callable[[CompiledT], None],
        *,
        site_sources: Sequence[RuleSource],
        now: Callable[[], datetime] = utc_now,
        poll_interval_s: float = POLL_INTERVAL_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._journal = journal
        self._validate = validate
        self._activate = activate
        self._site_sources = tuple(site_sources)
        self._now = now
        self._poll_interval_s = poll_interval_s
        self._sleep = sleep
        self._handled_request: int | None = None
        self._running: int | None = None
        self._store_failing = False

    @property
    def running_version(self) -> int | None:
        """The number of the version the engine runs (None: no stored version runs)."""
        return self._running

    def start(self) -> CompiledT:
        """The rule set to start the engine with (blocking: call it off the event loop).

        The requested version, or, on a database without one, the site's rule files stored as
        version 1 and requested. A requested version that no longer passes (the site's tags
        changed) is refused and the previously active one runs instead; failing that, no rules
        run (monitoring goes on; the refusals are logged and journaled).
        """
        requested = self._store.requested_rule_version()
        if requested is None:
            if not self._site_sources:
                log.info("no rule files and no stored rule set: running without rules")
                return self._validate(())
            stored = self._store.add_rule_version(
                self._site_sources, SITE_FILE_AUTHOR, "rule files of the site file", self._now()
            )
            self._store.request_rule_version(stored.version)
            requested = stored.version
        self._handled_request = requested
        version = self._store.rule_version(requested)
        compiled = self._try(version)
        if compiled is None:
            compiled = self._fallback(version)
        self._warn_if_site_files_differ()
        return compiled

    async def watch(self) -> None:
        """Poll the store for a newly requested version and deploy it, until cancelled."""
        while True:
            await self._sleep(self._poll_interval_s)
            await self.check_once()

    async def check_once(self) -> RuleVersion | None:
        """Deploy the requested version if it is new since the last look; return it with its
        outcome (active or refused), or None when there was nothing new or the store failed."""
        try:
            requested = await asyncio.to_thread(self._store.requested_rule_version)
            if requested is None or requested == self._handled_request:
                self._note_store_ok()
                return None
            version = await asyncio.to_thread(self._store.rule_version, requested)
        except StorageError as err:
            # Logged once per outage: the next poll tries again.
            if not self._store_failing:
                log.warning("cannot read the requested rule-set version: %s", err)
            self._store_failing = True
            return None
        self._note_store_ok()
        self._handled_request = requested
        try:
            compiled = await asyncio.to_thread(self._validate, version.sources)
        except RuleSetRefusedError as err:
            return await self._record_outcome(version, self._refuse, err.problems)
        try:
            self._activate(compiled)
        except Exception as err:  # the engine refused the swap: the old set still runs
            log.exception("rule set v%d could not be activated", version.version)
            return await self._record_outcome(
                version, self._refuse, [f"activation failed: {err!r}"]
            )
        return await self._record_outcome(version, lambda v, _: self._activated(v), ())

    async def _record_outcome(
        self,
        version: RuleVersion,
        record: Callable[[RuleVersion, Sequence[str]], None],
        problems: Sequence[str],
    ) -> RuleVersion | None:
        """Record a version's outcome on it and in the journal; return the updated version,
        or None when the store failed (the outcome stands: logged, not retried)."""
        try:
            await asyncio.to_thread(record, version, problems)
            return await asyncio.to_thread(self._store.rule_version, version.version)
        except StorageError as err:
            log.error("cannot record the outcome of rule set v%d: %s", version.version, err)
            return None

    # --- steps (blocking) -------------------------------------------------------------------

    def _try(self, version: RuleVersion) -> CompiledT | None:
        """Validate a version at start and record the outcome; None when refused."""
        try:
            compiled = self._validate(version.sources)
        except RuleSetRefusedError as err:
            self._refuse(version, err.problems)
            return None
        if version.status is not RuleVersionStatus.ACTIVE:
            self._activated(version)
        else:
            self._running = version.version
            self._record(
                f"rule set v{version.version} running at start "
                f"(by {version.author}: {version.reason})",
                version.author,
            )
        return compiled

    def _fallback(self, refused: RuleVersion) -> CompiledT:
        """After the requested version is refused at start: the last active one, or none."""
        active = [
            version
            for version in self._store.rule_versions()
            if version.status is RuleVersionStatus.ACTIVE and version.version != refused.version
        ]
        if active:
            compiled = self._try(active[-1])
            if compiled is not None:
                log.warning(
                    "requested rule set v%d refused; running v%d instead",
                    refused.version,
                    active[-1].version,
                )
                return compiled
        log.error("no stored rule set passes the site's checks: running without rules")
        self._record("no rule set passes the site's checks: running without rules", "", 700)
        return self._validate(())

    def _activated(self, version: RuleVersion) -> None:
        self._running = version.version  # it runs, whether or not the store records it
        self._store.mark_rule_version(version.version, RuleVersionStatus.ACTIVE)
        message = f"rule set v{version.version} activated by {version.author}: {version.reason}"
        log.info("%s", message)
        self._record(message, version.author)

    def _refuse(self, version: RuleVersion, problems: Sequence[str]) -> None:
        detail = "\n".join(problems)
        self._store.mark_rule_version(version.version, RuleVersionStatus.REFUSED, detail)
        quoted = "; ".join(problems[:MAX_JOURNALED_PROBLEMS])
        more = len(problems) - MAX_JOURNALED_PROBLEMS
        if more > 0:
            quoted += f"; and {more} more"
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        message = (
            f"rule set v{version.version} by {version.author} refused ({version.reason}): "
            f"{count}: {quoted}"
        )
        log.error("%s", message)
        self._record(message, version.author, 500)

    def _warn_if_site_files_differ(self) -> None:
        if self._running is None or not self._site_sources:
            return
        running = self._store.rule_version(self._running)
        if not same_sources(running.sources, self._site_sources):
            log.warning(
                "the site's rule files differ from the running rule set v%d; "
                "to run them, use `controlcenter rules apply FILES --reason ...`",
                self._running,
            )

    def _record(self, message: str, user: str, severity: int = 0) -> None:
        self._journal.record(
            Event(self._now(), EventKind.RULE, JOURNAL_SOURCE, message, user, severity)
        )

    def _note_store_ok(self) -> None:
        if self._store_failing:
            log.info("the requested rule-set version is readable again")
        self._store_failing = False
