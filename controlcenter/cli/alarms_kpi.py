"""``controlcenter alarms kpi``: the alarm system's EEMUA 191 / ISA-18.2 performance figures.

Computed by the database over the alarm journal (``historian.alarm_kpi``); printed as a short
report for the alarm management review, or as one JSON object for tooling.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from controlcenter.cli.timeparse import TimeParseError, parse_time
from controlcenter.model import utc_now
from controlcenter.runtime.defaults import DEMO_DB_URL

if TYPE_CHECKING:
    from historian.alarm_kpi import AlarmKpi


class KpiFormat(StrEnum):
    """Output formats of ``alarms kpi``."""

    TEXT = "text"
    JSON = "json"


def kpi(
    start: Annotated[
        str, typer.Option(help="Start of the window: ISO 8601, 'now' or relative (-7d).")
    ] = "-1d",
    end: Annotated[
        str, typer.Option(help="End of the window (not included): ISO 8601, 'now' or -1h.")
    ] = "now",
    db: Annotated[str, typer.Option(help="Historian database URL.")] = DEMO_DB_URL,
    output: Annotated[
        KpiFormat, typer.Option("--format", help="text: a report; json: one JSON object.")
    ] = KpiFormat.TEXT,
) -> None:
    """Alarm rates, floods, chattering, stale alarms, bad actors, priorities and shelving."""
    from historian.alarm_kpi import AlarmKpiError, read_alarm_kpi
    from historian.errors import HistorianError
    from historian.store import SqlHistorian

    now = utc_now()
    try:
        window_start, window_end = parse_time(start, now), parse_time(end, now)
    except TimeParseError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    try:
        store = SqlHistorian(db)
    except HistorianError as err:
        typer.echo(f"cannot open {db}: {err}", err=True)
        raise typer.Exit(1) from err
    try:
        figures = read_alarm_kpi(store, window_start, window_end)
    except AlarmKpiError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    except HistorianError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from err
    finally:
        store.close()
    if output is KpiFormat.JSON:
        typer.echo(json.dumps(figures.as_dict()))
        return
    for line in report_lines(figures):
        typer.echo(line)


def report_lines(figures: AlarmKpi) -> list[str]:
    """The text report of ``alarms kpi``, with the reference figures next to the measured."""
    lines = [
        f"Alarm system performance {_stamp(figures.start)} .. {_stamp(figures.end)}",
        f"{figures.alarms} alarms shown to operators; {figures.hidden_activations} more "
        "activations hidden (shelved, suppressed or out of service)",
        f"Average rate: {figures.per_10min_average:.2f} per 10 min, "
        f"{figures.per_hour_average:.1f} per hour "
        "(EEMUA 191: about 1 per 10 min very likely acceptable, 2 manageable)",
        f"Busiest 10 min: {figures.peak_per_10min} alarms; 10-min intervals with more than "
        f"1: {_percent(figures.intervals_above_1)}, 2: {_percent(figures.intervals_above_2)}, "
        f"5: {_percent(figures.intervals_above_5)} (of {figures.intervals})",
        f"Alarm floods: {len(figures.floods)}, {_duration(figures.flood_seconds)} in all, "
        f"{_percent(figures.time_in_flood)} of the time (ISA-18.2: under 1 %)",
    ]
    lines += [
        f"  flood {_stamp(flood.start)} .. {_stamp(flood.end)}: {flood.alarms} alarms, "
        f"busiest 10 min {flood.peak_per_10min}"
        for flood in figures.floods
    ]
    lines.append(f"Chattering alarms (3+ activations within 60 s): {len(figures.chattering)}")
    lines += [
        f"  {item.alarm}: {item.activations} activations, {item.bursts} in bursts"
        for item in figures.chattering
    ]
    lines.append(f"Stale alarms (active over 24 h at the end): {len(figures.stale)}")
    lines += [
        f"  {item.alarm}: active since {_stamp(item.active_since)}, priority {item.priority}, "
        f"shown as {item.display}"
        for item in figures.stale
    ]
    lines.append(
        f"Top {len(figures.bad_actors)} bad actors: {_percent(figures.bad_actor_share)} "
        "of all alarms"
    )
    lines += [
        f"  {item.alarm}: {item.alarms} ({_percent(item.share)})" for item in figures.bad_actors
    ]
    lines.append(
        "Priorities: "
        + ", ".join(
            f"{item.name} {item.alarms} ({_percent(item.share)}"
            + (f", aim {_percent(item.target)})" if item.target is not None else ")")
            for item in figures.priorities
        )
    )
    lines.append(
        f"Shelved: {figures.shelved.times} times, {figures.shelved.alarms} alarms, "
        f"{_duration(figures.shelved.seconds)}; out of service: "
        f"{figures.out_of_service.times} times, {figures.out_of_service.alarms} alarms, "
        f"{_duration(figures.out_of_service.seconds)}"
    )
    return lines


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _percent(share: float) -> str:
    return f"{share * 100:.1f} %"


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
