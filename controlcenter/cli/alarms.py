"""``controlcenter alarms``: list alarms, act on them (acknowledge, shelve, take out of service...)
and read their history, from a terminal.

Reading (``list``, ``history``) reads the historian database directly. Acting does not change an
alarm itself: it authenticates the user (users file; password from ``CC_PASSWORD`` or a prompt),
queues a request in the database and waits for the running center to apply it through its
alarm service, with the same roles, areas and journaling as the HMI, and prints the outcome.
With no center running, the request stays queued and is applied when a center takes it up
(within ``alarms.requests.MAX_REQUEST_AGE_S``; older requests are refused as stale).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from controlcenter.cli.alarms_kpi import kpi
from controlcenter.cli.signin import log_in_or_exit, open_store_or_exit, wait_for_decision
from controlcenter.cli.timeparse import TimeParseError, parse_time
from controlcenter.model import Event, EventKind, User, utc_now
from controlcenter.runtime.defaults import DEMO_DB_URL, DEMO_USERS_PATH

if TYPE_CHECKING:
    from alarms.requests import RequestAction
    from controlcenter.automation import AlarmDef, AlarmState, AlarmTransition

alarms_app = typer.Typer(
    help="Alarms: list, ack, shelve, unshelve, oos, return, comment, reset, history, kpi.",
    no_args_is_help=True,
)

JOURNAL_SOURCE = "alarms"
"""The source of the events this command journals itself (refused logins and roles)."""


class ListFormat(StrEnum):
    """Output formats of ``list`` and ``history``."""

    TABLE = "table"
    JSON = "json"


Db = Annotated[str, typer.Option(help="Historian database URL.")]
UserName = Annotated[str, typer.Option("--user", help="Your user name.")]
Users = Annotated[Path, typer.Option(help="Users file.")]
Wait = Annotated[
    float, typer.Option(help="Seconds to wait for the running center's answer.", min=0)
]
AlarmName = Annotated[str, typer.Argument(help="The alarm's name.")]
Format = Annotated[ListFormat, typer.Option("--format", help="Output format.")]


# --- reading --------------------------------------------------------------------------------


@alarms_app.command("list")
def list_alarms(
    area: Annotated[str | None, typer.Option(help="Only alarms of this area.")] = None,
    priority: Annotated[
        int | None,
        typer.Option(help="Only this priority or more urgent (1 critical .. 4 low).", min=1, max=4),
    ] = None,
    state: Annotated[
        list[str] | None,
        typer.Option(
            help="Only alarms in this display state (unacknowledged, acknowledged, "
            "returned_unacknowledged, latched, shelved, suppressed, out_of_service, normal); "
            "repeatable."
        ),
    ] = None,
    active: Annotated[
        bool, typer.Option("--active", help="Only alarms whose condition is active or latched.")
    ] = False,
    site: Annotated[
        Path | None,
        typer.Option(help="Site file: list every engineered alarm, with its priority and area."),
    ] = None,
    output_format: Format = ListFormat.TABLE,
    db: Db = DEMO_DB_URL,
) -> None:
    """List alarms as the center last saved them, the most urgent first."""
    from controlcenter.automation import AlarmDisplayState

    try:
        wanted = {AlarmDisplayState(name.strip().lower()) for name in state} if state else None
    except ValueError as err:
        choices = ", ".join(item.value for item in AlarmDisplayState)
        typer.echo(f"{err}: choose among {choices}", err=True)
        raise typer.Exit(2) from err
    with open_store_or_exit(db) as store:
        saved = {saved.name: saved for saved in store.load_alarm_states()}
        latest = store.latest_alarm_transitions()
    rows = _alarm_rows(saved, latest, _site_alarms(site) if site is not None else None)
    chosen = [
        row
        for row in rows
        if (area is None or row.area == area)
        and (priority is None or (row.priority is not None and row.priority <= priority))
        and (wanted is None or row.state.display in wanted)
        and (not active or row.state.active or row.state.latched)
    ]
    chosen.sort(key=lambda row: (row.priority or 5, -_stamp(row.state.activated_at), row.name))
    if output_format is ListFormat.JSON:
        typer.echo(json.dumps([row.as_dict() for row in chosen], indent=1))
        return
    _print_table(
        ("alarm", "prio", "area", "state", "since", "value", "message"),
        [row.cells() for row in chosen],
    )


@alarms_app.command("history")
def history(
    start: Annotated[
        str | None, typer.Option(help="ISO 8601 time, 'now' or relative (-1h). Default: all.")
    ] = None,
    end: Annotated[str | None, typer.Option(help="ISO 8601 time, 'now' or relative.")] = None,
    alarm: Annotated[str | None, typer.Option(help="Only this alarm.")] = None,
    area: Annotated[str | None, typer.Option(help="Only alarms of this area.")] = None,
    user: Annotated[str | None, typer.Option(help="Only what this user did.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the newest N.", min=0)] = None,
    output_format: Format = ListFormat.TABLE,
    db: Db = DEMO_DB_URL,
) -> None:
    """Print the alarm journal: every transition with who, why and the states around it."""
    now = utc_now()
    try:
        start_time = parse_time(start, now) if start is not None else None
        end_time = parse_time(end, now) if end is not None else None
    except TimeParseError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    with open_store_or_exit(db) as store:
        transitions = store.read_alarm_journal(
            start_time, end_time, alarm=alarm, area=area, user=user, limit=limit
        )
    if output_format is ListFormat.JSON:
        typer.echo(json.dumps([_transition_dict(t) for t in transitions], indent=1))
        return
    _print_table(
        ("time", "alarm", "action", "before -> after", "prio", "area", "user", "comment"),
        [
            (
                t.time.isoformat(timespec="seconds"),
                t.alarm,
                t.action.value,
                f"{t.before.value} -> {t.after.value}",
                str(int(t.priority)),
                t.area or "-",
                t.user or "-",
                _one_line(t.comment),
            )
            for t in transitions
        ],
    )


# EEMUA 191 performance figures over the alarm journal (controlcenter.cli.alarms_kpi).
alarms_app.command("kpi")(kpi)


# --- acting ---------------------------------------------------------------------------------


@alarms_app.command("ack")
def ack(
    names: Annotated[list[str], typer.Argument(help="The alarms to acknowledge.")],
    user: UserName,
    comment: Annotated[str, typer.Option(help="A comment, journaled.")] = "",
    db: Db = DEMO_DB_URL,
    users: Users = DEMO_USERS_PATH,
    wait: Wait = 10.0,
) -> None:
    """Acknowledge one or more alarms."""
    _request("acknowledge", names, user, comment, db=db, users=users, wait=wait)


@alarms_app.command("reset")
def reset(
    name: AlarmName,
    user: UserName,
    comment: Annotated[str, typer.Option(help="A comment, journaled.")] = "",
    db: Db = DEMO_DB_URL,
    users: Users = DEMO_USERS_PATH,
    wait: Wait = 10.0,
) -> None:
    """Reset a latched alarm whose condition has cleared."""
    _request("reset", [name], user, comment, db=db, users=users, wait=wait)


@alarms_app.command("shelve")
def shelve(
    name: AlarmName,
    user: UserName,
    reason: Annotated[str, typer.Option(help="Why: required, journaled.")],
    minutes: Annotated[
        float | None,
        typer.Option(help="For how long (the center refuses more than its longest shelf)."),
    ] = None,
    one_shot: Annotated[
        bool, typer.Option("--one-shot", help="Until the condition next clears.")
    ] = False,
    db: Db = DEMO_DB_URL,
    users: Users = DEMO_USERS_PATH,
    wait: Wait = 10.0,
) -> None:
    """Shelve an alarm for some minutes or until it next clears (one-shot)."""
    if (minutes is None) == (not one_shot):
        _usage("give either --minutes or --one-shot")
    if minutes is not None and not (0 < minutes < float("inf")):
        _usage(f"--minutes must be a positive number, not {minutes:g}")
    _require_text(reason, "--reason")
    duration = None if minutes is None else minutes * 60.0
    _request(
        "shelve",
        [name],
        user,
        reason,
        db=db,
        users=users,
        wait=wait,
        duration_s=duration,
        one_shot=one_shot,
    )


@alarms_app.command("unshelve")
def unshelve(
    name: AlarmName,
    user: UserName,
    reason: Annotated[str, typer.Option(help="Why, journaled.")] = "",
    db: Db = DEMO_DB_URL,
    users: Users = DEMO_USERS_PATH,
    wait: Wait = 10.0,
) -> None:
    """Take an alarm off its shelf."""
    _request("unshelve", [name], user, reason, db=db, users=users, wait=wait)


@alarms_app.command("oos")
def out_of_service(
    name: AlarmName,
    user: UserName,
    reason: Annotated[str, typer.Option(help="Why: required, journaled.")],
    db: Db = DEMO_DB_URL,
    users: Users = DEMO_USERS_PATH,
    wait: Wait = 10.0,
) -> None:
    """Take an alarm out of service (maintenance or above)."""
    _require_text(reason, "--reason")
    _request("remove_from_service", [name], user, reason, db=db, users=users, wait=wait)


@alarms_app.command("return")
def return_to_service(
    name: AlarmName,
    user: UserName,
    reason: Annotated[str, typer.Option(help="Why, journaled.")] = "",
    db: Db = DEMO_DB_URL,
    users: Users = DEMO_USERS_PATH,
    wait: Wait = 10.0,
) -> None:
    """Return an alarm to service (maintenance or above)."""
    _request("return_to_service", [name], user, reason, db=db, users=users, wait=wait)


@alarms_app.command("comment")
def comment(
    name: AlarmName,
    text: Annotated[str, typer.Argument(help="The comment.")],
    user: UserName,
    db: Db = DEMO_DB_URL,
    users: Users = DEMO_USERS_PATH,
    wait: Wait = 10.0,
) -> None:
    """Write a comment in an alarm's journal."""
    _require_text(text, "the comment")
    _request("comment", [name], user, text, db=db, users=users, wait=wait)


def _request(
    action: str,
    names: Sequence[str],
    user_name: str,
    text: str,
    *,
    db: str,
    users: Path,
    wait: float,
    duration_s: float | None = None,
    one_shot: bool = False,
) -> None:
    """Authenticate, queue the request, wait for the center's outcome and print it."""
    from alarms.requests import MAX_REQUEST_AGE_S, RequestAction
    from controlcenter.ports import AlarmRequestStatus

    if not names or any(not name.strip() for name in names):
        _usage("name the alarms (blank names are not alarms)")
    request_action = RequestAction(action)
    user = _authorised(user_name, users, db, request_action, names)
    with open_store_or_exit(db) as store:
        try:
            queued = store.add_alarm_request(
                request_action.value,
                list(dict.fromkeys(names)),
                user.name,
                text,
                utc_now(),
                duration_s=duration_s,
                one_shot=one_shot,
            )
        except ValueError as err:
            _usage(str(err))
        typer.echo(f"queued alarm request {queued.id}: {_describe(request_action, names)}")
        outcome = wait_for_decision(
            lambda: store.alarm_request(queued.id),
            lambda request: request.status is AlarmRequestStatus.PENDING,
            wait,
        )
    if outcome.status is AlarmRequestStatus.DONE:
        typer.echo(f"done: {outcome.detail}")
        return
    if outcome.status is AlarmRequestStatus.REFUSED:
        typer.echo(f"refused: {outcome.detail}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"no running center answered within {wait:g} s: request {outcome.id} stays queued and "
        f"is applied if a center takes it up within {MAX_REQUEST_AGE_S / 60:g} min"
    )


def _authorised(
    name: str, users_path: Path, db: str, action: RequestAction, alarms: Sequence[str]
) -> User:
    """The authenticated user if their role allows ``action``; else refuse (journaled).

    The role is checked here for a quick answer; the running center checks it again (and the
    user's areas) against its own users file before applying anything.
    """
    from alarms.service import ACTION_ROLES
    from controlcenter.automation import AlarmAction

    user = log_in_or_exit(name, users_path, db, JOURNAL_SOURCE, action.value)
    needed = ACTION_ROLES[AlarmAction(action.value)]
    if not user.role.includes(needed):
        message = (
            f"{user.name} ({user.role.value}) may not {action.value.replace('_', ' ')}: "
            f"that needs the {needed.value} role or above"
        )
        with open_store_or_exit(db) as store:
            now = utc_now()
            for alarm in alarms:
                store.journal_event(
                    Event(now, EventKind.ALARM, alarm, f"refused: {message}", user.name, 500)
                )
        typer.echo(f"refused: {message}", err=True)
        raise typer.Exit(1)
    return user


# --- helpers --------------------------------------------------------------------------------


class _AlarmRow:
    """One line of ``list``: an alarm's state with what is known of its definition."""

    def __init__(
        self,
        name: str,
        state: AlarmState,
        priority: int | None,
        area: str,
    ) -> None:
        self.name = name
        self.state = state
        self.priority = priority
        self.area = area

    def cells(self) -> tuple[str, ...]:
        state = self.state
        return (
            self.name,
            "-" if self.priority is None else str(self.priority),
            self.area or "-",
            state.display.value,
            state.activated_at.isoformat(timespec="seconds") if state.activated_at else "-",
            "-" if state.value is None else _value_text(state.value),
            _one_line(_note(state)),
        )

    def as_dict(self) -> dict[str, object]:
        state = self.state
        return {
            "alarm": self.name,
            "priority": self.priority,
            "area": self.area,
            "state": state.display.value,
            "active": state.active,
            "acknowledged": state.acknowledged,
            "latched": state.latched,
            "shelved_by": state.shelved_by,
            "shelve_reason": state.shelve_reason,
            "shelved_until": _iso(state.shelved_until),
            "one_shot": state.one_shot,
            "suppressed": state.suppressed,
            "suppressed_reason": state.suppressed_reason,
            "out_of_service_by": state.out_of_service_by,
            "out_of_service_reason": state.out_of_service_reason,
            "activated_at": _iso(state.activated_at),
            "changed_at": _iso(state.changed_at),
            "value": _json_value(state.value),
            "message": state.message,
        }


def _alarm_rows(
    saved: dict[str, AlarmState],
    latest: dict[str, AlarmTransition],
    defined: Sequence[AlarmDef] | None,
) -> list[_AlarmRow]:
    """Rows of every saved alarm (and, with the site's definitions, of every engineered one;
    saved states of alarms the site no longer has are left out)."""
    from controlcenter.automation import AlarmState

    if defined is not None:
        return [
            _AlarmRow(d.name, saved.get(d.name) or AlarmState(d.name), int(d.priority), d.area)
            for d in defined
        ]
    rows: list[_AlarmRow] = []
    for name, state in saved.items():
        last = latest.get(name)
        rows.append(
            _AlarmRow(
                name,
                state,
                None if last is None else int(last.priority),
                "" if last is None else last.area,
            )
        )
    return rows


def _site_alarms(path: Path) -> tuple[AlarmDef, ...]:
    from controlcenter.site.config import load_site
    from controlcenter.site.yamlsource import SourceFileError

    try:
        return load_site(path).alarm_defs()
    except SourceFileError as err:
        for problem in err.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from err


def _note(state: AlarmState) -> str:
    if state.out_of_service:
        return f"out of service by {state.out_of_service_by}: {state.out_of_service_reason}"
    if state.shelved:
        until = "until it clears" if state.one_shot else f"until {_iso(state.shelved_until) or '?'}"
        return f"shelved by {state.shelved_by} {until}: {state.shelve_reason}"
    if state.suppressed:
        return f"suppressed: {state.suppressed_reason}"
    return state.message


def _transition_dict(t: AlarmTransition) -> dict[str, object]:
    return {
        "time": t.time.isoformat(timespec="milliseconds"),
        "alarm": t.alarm,
        "action": t.action.value,
        "before": t.before.value,
        "after": t.after.value,
        "user": t.user,
        "comment": t.comment,
        "priority": int(t.priority),
        "area": t.area,
        "tag": t.tag,
        "device": t.device,
        "value": _json_value(t.value),
    }


def _describe(action: RequestAction, names: Sequence[str]) -> str:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{action.value.replace('_', ' ')} {shown}"


def _json_value(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def _value_text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def _stamp(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else float("-inf")


def _one_line(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _require_text(text: str, what: str) -> None:
    if not text.strip():
        _usage(f"{what} must not be blank")


def _usage(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if not rows:
        typer.echo("(none)")
        return
    widths = [max([len(header[i]), *(len(row[i]) for row in rows)]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        typer.echo("  ".join(cells).rstrip())
