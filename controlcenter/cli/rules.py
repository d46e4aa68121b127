"""``controlcenter rules``: the stored rule-set versions; apply, roll back, compare and list them.

Every version is kept whole in the historian database. ``apply`` and ``rollback`` check the files
completely against the site before anything is stored (every problem as
``file:line:column: reason``, exit 1, nothing stored), store a new version, ask the running
center to activate it and wait for its answer. Only engineers and administrators may change the
rule set; every change and every refused attempt is journaled with who and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controlcenter.cli.backtest import backtest
from controlcenter.cli.signin import log_in_or_exit, open_store_or_exit, wait_for_decision
from controlcenter.model import Event, EventKind, Role, User, utc_now
from controlcenter.runtime.defaults import DEMO_DB_URL, DEMO_USERS_PATH

if TYPE_CHECKING:
    from controlcenter.automation import RuleDef, RuleSetDef, RuleSource, Trigger
    from controlcenter.ports import RuleVersion
    from controlcenter.runtime.rule_deployment import SiteRules
    from historian.store import SqlHistorian

rules_app = typer.Typer(
    help="Rule sets: list, show, diff, history, apply, rollback, backtest.", no_args_is_help=True
)

CHANGE_ROLE = Role.ENGINEER
"""The least role that may change the rule set."""
JOURNAL_SOURCE = "rules"
"""The source of the rule-set events this command journals."""

Db = Annotated[str, typer.Option(help="Historian database URL.")]
Site = Annotated[Path, typer.Option(help="Site file (YAML) the rules are checked against.")]
UserName = Annotated[str, typer.Option("--user", help="Your user name (engineer or admin).")]
Users = Annotated[Path, typer.Option(help="Users file.")]
Reason = Annotated[str, typer.Option(help="Why: journaled with the version.")]
Wait = Annotated[
    float,
    typer.Option(help="Seconds to wait for the running center to activate or refuse it.", min=0),
]


# --- reading ------------------------------------------------------------------------------


@rules_app.command("list")
def list_rules(
    version: Annotated[
        int | None, typer.Option(help="Version to list (default: the active one).")
    ] = None,
    db: Db = DEMO_DB_URL,
) -> None:
    """List the rules of the active set: name, enabled, owner and triggers."""
    from controlcenter.site.rulefile import parse_rule_sources
    from controlcenter.site.yamlsource import SourceFileError

    with open_store_or_exit(db) as store:
        chosen = _chosen_version(store, version)
    try:
        definition = parse_rule_sources(chosen.sources)
    except SourceFileError as err:
        for problem in err.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from err
    typer.echo(f"rule set v{chosen.version} ({chosen.status.value}): {_count(definition)}")
    rows = [
        (rule.name, "yes" if rule.enabled else "no", rule.owner or "-", _triggers(rule))
        for rule in definition.rules
    ]
    _print_table(("rule", "enabled", "owner", "triggers"), rows)
    if definition.calculated:
        typer.echo("")
        _print_table(
            ("calculated tag", "type", "expression"),
            [
                (calc.name, calc.data_type.value, calc.expression.text)
                for calc in definition.calculated
            ],
        )


@rules_app.command("show")
def show(
    version: Annotated[
        int | None, typer.Option(help="Version to show (default: the active one).")
    ] = None,
    db: Db = DEMO_DB_URL,
) -> None:
    """Print the full text of every rule file of a version."""
    with open_store_or_exit(db) as store:
        chosen = _chosen_version(store, version)
    typer.echo(f"# rule set v{chosen.version} ({chosen.status.value}) by {chosen.author}")
    for source in chosen.sources:
        typer.echo(f"# --- {source.name}")
        typer.echo(source.text, nl=not source.text.endswith("\n"))


@rules_app.command("diff")
def diff(
    first: Annotated[int, typer.Argument(help="The older version.")],
    second: Annotated[int, typer.Argument(help="The newer version.")],
    db: Db = DEMO_DB_URL,
) -> None:
    """Show what changed between two versions as a unified diff, file by file."""
    with open_store_or_exit(db) as store:
        older = _stored_version(store, first)
        newer = _stored_version(store, second)
    typer.echo("".join(unified_diff(older, newer)), nl=False)


@rules_app.command("history")
def history(db: Db = DEMO_DB_URL) -> None:
    """List every stored version: number, time, author, reason and status."""
    with open_store_or_exit(db) as store:
        versions = store.rule_versions()
        requested = store.requested_rule_version()
    rows = [
        (
            f"v{version.version}{' *' if version.version == requested else ''}",
            version.created_at.isoformat(timespec="seconds"),
            version.author,
            version.status.value,
            version.reason,
        )
        for version in versions
    ]
    _print_table(("version", "created", "author", "status", "reason"), rows)
    if requested is not None:
        typer.echo("(* requested)")


# --- changing ------------------------------------------------------------------------------


@rules_app.command("apply")
def apply(
    files: Annotated[list[Path], typer.Argument(help="The rule files of the new set, in order.")],
    reason: Reason,
    site: Site,
    user: UserName,
    db: Db = DEMO_DB_URL,
    users: Users = DEMO_USERS_PATH,
    wait: Wait = 15.0,
) -> None:
    """Check rule files against the site, store them as a new version and activate it."""
    from controlcenter.runtime.rule_deployment import RuleSetRefusedError, read_rule_sources

    engineer = _authorised(user, users, db, "apply rule files")
    site_rules, site_directory = _site_rules(site)
    try:
        sources = read_rule_sources(files, site_directory)
    except RuleSetRefusedError as err:
        _print_problems(err.problems)
        raise typer.Exit(1) from err
    _deploy(sources, engineer, reason, site_rules, db, wait, action="applied")


@rules_app.command("rollback")
def rollback(
    to: Annotated[int, typer.Option("--to", help="The version whose files to run again.")],
    reason: Reason,
    site: Site,
    user: UserName,
    db: Db = DEMO_DB_URL,
    users: Users = DEMO_USERS_PATH,
    wait: Wait = 15.0,
) -> None:
    """Store an earlier version's files as a new version and activate it."""
    engineer = _authorised(user, users, db, f"roll back to v{to}")
    site_rules, _ = _site_rules(site)
    with open_store_or_exit(db) as store:
        earlier = _stored_version(store, to)
    _deploy(
        earlier.sources,
        engineer,
        f"rollback to v{to}: {reason}",
        site_rules,
        db,
        wait,
        action="rolled back",
    )


def _deploy(
    sources: Sequence[RuleSource],
    engineer: User,
    reason: str,
    site_rules: SiteRules,
    db: str,
    wait: float,
    *,
    action: str,
) -> None:
    """Validate, store, request, journal, and wait for the center's answer."""
    from controlcenter.ports import RuleVersionStatus
    from controlcenter.runtime.rule_deployment import RuleSetRefusedError, validate_rule_set
    from historian.audit import AuditAction, AuditRecord

    try:
        validate_rule_set(sources, site_rules)
    except RuleSetRefusedError as err:
        _print_problems(err.problems)
        typer.echo(f"refused: {len(err.problems)} problem(s); nothing stored", err=True)
        raise typer.Exit(1) from err
    with open_store_or_exit(db) as store:
        now = utc_now()
        stored = store.add_rule_version(sources, engineer.name, reason, now)
        store.request_rule_version(stored.version, requested_at=now)
        message = f"rule set v{stored.version} {action} by {engineer.name}: {reason}"
        store.journal_event(Event(now, EventKind.RULE, JOURNAL_SOURCE, message, engineer.name))
        store.journal_audit(
            AuditRecord(now, AuditAction.RULE_CHANGE, engineer.name, f"v{stored.version}", reason)
        )
        typer.echo(f"stored rule set v{stored.version} and asked the center to activate it")
        outcome = wait_for_decision(
            lambda: store.rule_version(stored.version),
            lambda version: version.status is RuleVersionStatus.PENDING,
            wait,
        )
    if outcome.status is RuleVersionStatus.ACTIVE:
        typer.echo(f"rule set v{outcome.version} is active")
        return
    if outcome.status is RuleVersionStatus.REFUSED:
        typer.echo(f"the center refused rule set v{outcome.version}:", err=True)
        _print_problems(outcome.detail.splitlines())
        raise typer.Exit(1)
    typer.echo(
        f"no running center took up v{outcome.version} within {wait:g} s: "
        "it will be activated when the center starts"
    )


def _authorised(name: str, users_path: Path, db: str, action: str) -> User:
    """The authenticated user, if an engineer or above; else refuse (journaled) with exit 1."""
    from historian.audit import AuditAction, AuditRecord

    user = log_in_or_exit(name, users_path, db, "rules", action)
    if not user.role.includes(CHANGE_ROLE):
        message = (
            f"{user.name} ({user.role.value}) may not {action}: "
            f"that needs the {CHANGE_ROLE.value} role or above"
        )
        with open_store_or_exit(db) as store:
            now = utc_now()
            store.journal_event(
                Event(now, EventKind.RULE, JOURNAL_SOURCE, f"refused: {message}", user.name, 500)
            )
            store.journal_audit(
                AuditRecord(now, AuditAction.RULE_CHANGE, user.name, "rules", message, False)
            )
        typer.echo(f"refused: {message}", err=True)
        raise typer.Exit(1)
    return user


def _site_rules(site_path: Path) -> tuple[SiteRules, Path]:
    """What rules are checked against, from the site file, and the site file's directory."""
    from controlcenter.runtime.rule_deployment import SiteRules
    from controlcenter.site.config import load_site
    from controlcenter.site.yamlsource import SourceFileError

    try:
        site = load_site(site_path)
    except SourceFileError as err:
        _print_problems([str(problem) for problem in err.problems])
        raise typer.Exit(1) from err
    rules = SiteRules(
        tags=tuple(site.tag_defs()),
        location=site.location(),
        identity=site.automation_identity().name,
    )
    return rules, site_path.resolve().parent


# What rule files would have done over stored history (controlcenter.cli.backtest).
rules_app.command("backtest")(backtest)


# --- helpers -------------------------------------------------------------------------------


def unified_diff(older: RuleVersion, newer: RuleVersion) -> list[str]:
    """The unified diff of two versions (``rule_deployment.unified_diff``, imported late so
    that the command line starts fast)."""
    from controlcenter.runtime.rule_deployment import unified_diff as diff_versions

    return diff_versions(older, newer)


def describe_trigger(trigger: Trigger) -> str:
    """A trigger in a few words, as a rule file writes it."""
    from controlcenter.automation import CronTrigger, IntervalTrigger, SunTrigger

    if isinstance(trigger, IntervalTrigger):
        return f"every {_duration(trigger.every_s)}"
    if isinstance(trigger, CronTrigger):
        return f"cron '{trigger.schedule}'"
    if isinstance(trigger, SunTrigger):
        offset = f" {'+' if trigger.offset_s > 0 else '-'}{_duration(abs(trigger.offset_s))}"
        return f"{trigger.event.value}{offset if trigger.offset_s else ''}"
    debounce = f" (debounce {_duration(trigger.debounce_s)})" if trigger.debounce_s else ""
    return f"tag {', '.join(trigger.tags)}{debounce}"


def _triggers(rule: RuleDef) -> str:
    if rule.hysteresis is not None:
        control = rule.hysteresis
        return (
            f"hysteresis {control.input_tag} < {control.on_below:g} on, "
            f"> {control.off_above:g} off -> {control.output_tag}"
        )
    return "; ".join(describe_trigger(trigger) for trigger in rule.triggers) or "-"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _count(definition: RuleSetDef) -> str:
    enabled = sum(1 for rule in definition.rules if rule.enabled)
    return (
        f"{len(definition.rules)} rules ({enabled} enabled), "
        f"{len(definition.calculated)} calculated tags"
    )


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(header[i]), *(len(row[i]) for row in rows)]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        typer.echo("  ".join(cells).rstrip())


def _print_problems(problems: Sequence[str]) -> None:
    for problem in problems:
        typer.echo(problem, err=True)


def _chosen_version(store: SqlHistorian, version: int | None) -> RuleVersion:
    """The numbered version, else the active one, else the requested one."""
    from controlcenter.ports import RuleVersionStatus

    if version is not None:
        return _stored_version(store, version)
    versions = store.rule_versions()
    active = [v for v in versions if v.status is RuleVersionStatus.ACTIVE]
    if active:
        return active[-1]
    requested = store.requested_rule_version()
    if requested is not None:
        return _stored_version(store, requested)
    typer.echo("no rule set is stored yet (the center stores the site's at its first start)")
    raise typer.Exit(1)


def _stored_version(store: SqlHistorian, version: int) -> RuleVersion:
    from controlcenter.ports import UnknownRuleVersionError

    try:
        return store.rule_version(version)
    except UnknownRuleVersionError as err:
        typer.echo(f"{err}", err=True)
        raise typer.Exit(1) from err
