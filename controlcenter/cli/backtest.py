"""``controlcenter rules backtest``: what rule files would have done over a stretch of history.

The rule files are validated (each problem printed as ``file:line:column: reason``, exit 1) and
compiled against the site's tags, then replayed through the same evaluator the running center
uses (``rules.backtest``) on the historian's stored samples. Nothing is sent to the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controlcenter.cli.timeparse import TimeParseError, parse_time
from controlcenter.model import utc_now
from controlcenter.runtime.defaults import DEMO_DB_URL, DEMO_SITE_PATH

if TYPE_CHECKING:
    from controlcenter.model import TagDef
    from rules.backtest import BacktestReport, HistoryOpener
    from rules.ruleset import CompiledRuleSet


class BacktestFormat(StrEnum):
    """Output formats of ``backtest``."""

    TEXT = "text"
    JSON = "json"


EXIT_INVALID = 1
"""The site or rule files were refused (problems printed with file:line:column)."""
EXIT_USAGE = 2
"""The options were wrong, or the history could not be read."""


def backtest(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Rule files (YAML) to replay. Default: the site's rule files."),
    ] = None,
    start: Annotated[
        str, typer.Option(help="ISO 8601 time, 'now' or relative (-1d): where to begin.")
    ] = "-1d",
    end: Annotated[str, typer.Option(help="ISO 8601 time, 'now' or relative.")] = "now",
    site: Annotated[
        Path, typer.Option(help="Site file whose tags and location the rules use.")
    ] = DEMO_SITE_PATH,
    db: Annotated[str, typer.Option(help="Historian database URL.")] = DEMO_DB_URL,
    output_format: Annotated[
        BacktestFormat, typer.Option("--format", help="text (a summary) or json (everything).")
    ] = BacktestFormat.TEXT,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes replaying shares of the rules (default: one per core, at most 4).",
        ),
    ] = None,
) -> None:
    """Replay stored history through rule files; print the commands, events and holds."""
    from functools import partial

    from historian.errors import StorageError
    from historian.store import SqlHistorian
    from rules.backtest import BacktestError, default_backtest_workers

    now = utc_now()
    try:
        start_time = parse_time(start, now)
        end_time = parse_time(end, now)
    except TimeParseError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(EXIT_USAGE) from err
    if not start_time < end_time:
        typer.echo(
            f"--start {start_time.isoformat()} is not before --end {end_time.isoformat()}",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    rule_set, tags = _compiled_or_exit(files or [], site)
    missing = _missing_sqlite_file(db)
    if missing is not None:
        typer.echo(f"no historian database at {missing}", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        SqlHistorian(db).close()  # reachable, and its schema current, before workers start
    except StorageError as err:
        typer.echo(f"cannot open the historian {db}: {err}", err=True)
        raise typer.Exit(EXIT_USAGE) from err
    replay = Replay(
        rule_set,
        tags,
        partial(SqlHistorian, db),
        start_time,
        end_time,
        workers or default_backtest_workers(),
    )
    try:
        if output_format is BacktestFormat.JSON:
            report = replay.run(progress=None)
        else:
            report = _with_progress_bar(replay)
    except BacktestError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(EXIT_USAGE) from err
    if output_format is BacktestFormat.JSON:
        typer.echo(json.dumps(report.as_dict()))
    else:
        typer.echo(render_text(report))


def _compiled_or_exit(
    files: list[Path], site_path: Path
) -> tuple[CompiledRuleSet, tuple[TagDef, ...]]:
    """The rule files (the site's own when none are given) compiled against the site's tags,
    and those tags; or exit 1 printing every problem as ``file:line:column: reason``."""
    from dataclasses import replace

    from controlcenter.site.config import load_site
    from controlcenter.site.rulefile import load_rule_files
    from controlcenter.site.yamlsource import SourceFileError
    from rules.ruleset import RuleSetError, compile_rule_set

    try:
        site = load_site(site_path)
        paths = files or list(site.rule_file_paths())
        if not paths:
            typer.echo(
                "no rule files: name them, or list them under automation.rule_files in "
                f"{site_path}",
                err=True,
            )
            raise typer.Exit(EXIT_USAGE)
        definition = load_rule_files(paths)
    except SourceFileError as err:
        for problem in err.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(EXIT_INVALID) from err
    # The commands are reported as the site's rule identity would send them.
    definition = replace(definition, identity=site.automation.identity.name)
    tags = tuple(site.tag_defs())
    try:
        return compile_rule_set(definition, tags, site.location()), tags
    except RuleSetError as err:
        for expression_problem in err.problems:
            typer.echo(str(expression_problem), err=True)
        raise typer.Exit(EXIT_INVALID) from err


def _missing_sqlite_file(db_url: str) -> str | None:
    """The path of a SQLite database that does not exist (opening it would create an empty
    one, and a backtest over nothing helps nobody), else None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db_url)
    except ArgumentError:
        return None  # the historian says what is wrong with it
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or Path(database).exists():
        return None
    return database


@dataclass(frozen=True, slots=True)
class Replay:
    """A backtest to run: the compiled set, the site's tags, the history and the window."""

    rule_set: CompiledRuleSet
    tags: tuple[TagDef, ...]
    open_history: HistoryOpener
    start: datetime
    end: datetime
    workers: int

    def run(self, progress: Callable[[float], None] | None) -> BacktestReport:
        """Replay the window over the workers."""
        from rules.backtest import run_backtest_in_parallel

        return run_backtest_in_parallel(
            self.rule_set.definition,
            self.tags,
            self.rule_set.site,
            self.open_history,
            self.start,
            self.end,
            workers=self.workers,
            progress=progress,
        )


def _with_progress_bar(replay: Replay) -> BacktestReport:
    """Run the backtest with a progress bar on stderr (gone once done)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    columns = (
        TextColumn("replaying history"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as bar:
        task = bar.add_task("backtest", total=1.0)

        def advance(fraction: float) -> None:
            bar.update(task, completed=fraction)

        return replay.run(progress=advance)


def render_text(report: BacktestReport) -> str:
    """A reader's summary: figures, then every command, event and hold in time order, then the
    counts of the rules that did something."""
    figures = report.figures
    lines = [
        f"Backtest {report.start.isoformat()} .. {report.end.isoformat()}: "
        f"{len(report.commands)} commands, {len(report.events)} events, "
        f"{sum(1 for hold in report.holds if hold.held)} holds "
        f"({figures.samples_replayed} samples of {figures.tags_read} tags replayed "
        f"in {figures.wall_seconds:.1f} s)",
    ]
    if report.commands:
        lines += ["", "Commands:"]
        lines += [
            f"  {c.time.isoformat()}  {c.rule}: {c.tag} := {c.value!r} ({c.priority}) {c.reason}"
            for c in report.commands
        ]
    if report.events:
        lines += ["", "Events:"]
        lines += [
            f"  {e.time.isoformat()}  {e.rule} [{e.severity}]: {e.message}" for e in report.events
        ]
    if report.holds:
        lines += ["", "Holds and resumes:"]
        lines += [
            f"  {h.time.isoformat()}  {h.rule} {'holds' if h.held else 'resumes'}: {h.message}"
            for h in report.holds
        ]
    active = [c for c in report.rules if c.commands or c.events or c.holds or c.resumes]
    if active:
        lines += ["", "Per rule (commands, events, holds, resumes):"]
        width = max(len(counts.rule) for counts in active)
        lines += [
            f"  {c.rule:<{width}}  {c.commands:>6} {c.events:>6} {c.holds:>6} {c.resumes:>6}"
            for c in active
        ]
    quiet = len(report.rules) - len(active)
    if quiet:
        lines += ["", f"{quiet} of {len(report.rules)} rules did nothing in the window."]
    return "\n".join(lines)
