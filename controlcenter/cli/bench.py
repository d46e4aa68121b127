"""``controlcenter bench``: benchmarks that print one JSON object each."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from typing import Annotated

import typer

bench_app = typer.Typer(help="Benchmarks that print one JSON object.", no_args_is_help=True)


@bench_app.command("poll")
def bench_poll(
    protocol: Annotated[str, typer.Option(help="Protocol: modbus, opcua or bacnet.")],
    tags: Annotated[int, typer.Option(min=1, help="Points in all, over realistic RTUs.")],
    scan: Annotated[float, typer.Option(min=0.01, help="Scan interval, seconds.")] = 1.0,
    duration: Annotated[float, typer.Option(min=0.5, help="Scan phase, seconds.")] = 10.0,
    per_device: Annotated[
        int | None,
        typer.Option(
            min=1, help="Points per device (default: Modbus 400, OPC UA 2500, BACnet 160)."
        ),
    ] = None,
    capacity: Annotated[
        float, typer.Option(min=0.5, help="Capacity and naive phases, seconds each.")
    ] = 3.0,
) -> None:
    """Poll simulated devices with the real drivers and scan engine; print one JSON object."""
    from controlcenter.bench.poll import BenchError, PollBenchOptions, run_poll_bench

    options = PollBenchOptions(protocol, tags, scan, duration, per_device, capacity)
    try:
        figures = asyncio.run(run_poll_bench(options))
    except BenchError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(figures))


@bench_app.command("city")
def bench_city(
    scale: Annotated[int, typer.Option(min=1, help="Scale of the simulated city.")] = 1,
    duration: Annotated[float, typer.Option(min=0.5, help="Polling window, seconds.")] = 10.0,
    scan: Annotated[float, typer.Option(min=0.1, help="Scan interval of every device.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city.")] = 1,
) -> None:
    """Run the simulated city in a child process, poll every point; print one JSON object."""
    from controlcenter.bench.city import CityBenchError, CityBenchOptions, run_city_bench

    options = CityBenchOptions(scale=scale, duration_s=duration, scan_interval_s=scan, seed=seed)
    try:
        figures = asyncio.run(run_city_bench(options))
    except CityBenchError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(figures))


class HistorianBackend(StrEnum):
    """Databases the historian bench runs on."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class HistorianBenchSize(StrEnum):
    """How much data the historian bench uses."""

    FULL = "full"
    TINY = "tiny"


@bench_app.command("historian")
def bench_historian(
    backend: Annotated[
        HistorianBackend, typer.Option(help="Database to measure.")
    ] = HistorianBackend.SQLITE,
    db: Annotated[
        str | None,
        typer.Option(
            help="Database URL (PostgreSQL default: the local server's database 'test', in a "
            "fresh schema dropped afterwards; SQLite default: a temporary file)."
        ),
    ] = None,
    size: Annotated[
        HistorianBenchSize, typer.Option(help="full: the published figures; tiny: a smoke run.")
    ] = HistorianBenchSize.FULL,
) -> None:
    """Measure the historian's ingest, compression, queries and spool replay; print one JSON."""
    from controlcenter.bench import historian as historian_bench

    chosen = historian_bench.TINY if size is HistorianBenchSize.TINY else None
    try:
        result = historian_bench.run_historian_bench(backend.value, db, chosen)
    except historian_bench.BenchError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(historian_bench.result_json(result))


@bench_app.command("commands")
def bench_commands(
    commands: Annotated[
        int, typer.Option(min=1, help="Commands per protocol (Modbus, OPC UA, BACnet).")
    ] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city.")] = 1,
) -> None:
    """Command setpoints of the simulated city through the pipeline; print one JSON object."""
    from controlcenter.bench.commands import (
        CommandsBenchError,
        CommandsBenchOptions,
        run_commands_bench,
    )

    try:
        figures = asyncio.run(run_commands_bench(CommandsBenchOptions(commands, seed)))
    except CommandsBenchError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(figures))


class RulesBenchScale(StrEnum):
    """How much work the rules bench does."""

    FULL = "full"
    TINY = "tiny"


@bench_app.command("rules")
def bench_rules(
    size: Annotated[
        RulesBenchScale, typer.Option(help="full: the published figures; tiny: a smoke run.")
    ] = RulesBenchScale.FULL,
    engine_seconds: Annotated[
        int | None, typer.Option(min=1, help="Seconds of samples fed to the live engine.")
    ] = None,
    backtest_hours: Annotated[
        float | None, typer.Option(min=0.01, help="Hours of 1 s history the backtest replays.")
    ] = None,
    backtest_workers: Annotated[
        int | None,
        typer.Option(min=1, help="Processes the backtest uses (default: one per core, at most 4)."),
    ] = None,
) -> None:
    """Measure expression evaluations, the live engine's CPU share and the backtest's speed."""
    from dataclasses import replace

    from controlcenter.bench.rules import TINY, RulesBenchError, RulesBenchSize, run_rules_bench

    chosen = TINY if size is RulesBenchScale.TINY else RulesBenchSize()
    if engine_seconds is not None:
        chosen = replace(chosen, engine_seconds=engine_seconds)
    if backtest_hours is not None:
        chosen = replace(chosen, backtest_hours=backtest_hours)
    if backtest_workers is not None:
        chosen = replace(chosen, backtest_workers=backtest_workers)
    try:
        figures = run_rules_bench(chosen)
    except RulesBenchError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(figures))


@bench_app.command("outcomes")
def bench_outcomes(
    days: Annotated[float, typer.Option(min=0.01, help="Simulated days of the demo city.")] = 2.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city.")] = 1,
) -> None:
    """Run the demo city with its rules and with the baseline; print the outcomes as JSON."""
    from controlcenter.bench.outcomes import OutcomesBenchError, run_outcomes_bench

    try:
        figures = run_outcomes_bench(days, seed)
    except OutcomesBenchError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(figures))


class AlarmsBenchScale(StrEnum):
    """How much work the alarms bench does."""

    FULL = "full"
    TINY = "tiny"


@bench_app.command("alarms")
def bench_alarms(
    size: Annotated[
        AlarmsBenchScale, typer.Option(help="full: the published figures; tiny: a smoke run.")
    ] = AlarmsBenchScale.FULL,
) -> None:
    """Measure the alarm engine's CPU share, sample-to-alarm latency, a flood and the KPIs."""
    from controlcenter.bench.alarms import TINY, AlarmsBenchError, AlarmsBenchSize, run_alarms_bench

    chosen = TINY if size is AlarmsBenchScale.TINY else AlarmsBenchSize()
    try:
        figures = run_alarms_bench(chosen)
    except AlarmsBenchError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(figures))


@bench_app.command("leaks")
def bench_leaks(
    days: Annotated[
        float, typer.Option(min=1.0, help="Simulated days of each run (the leak-free one too).")
    ] = 7.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated water network.")] = 1,
    trials: Annotated[int, typer.Option(min=1, help="Leaks of each size, at random times.")] = 3,
) -> None:
    """Run the water network with leaks of 2, 5, 10 and 20 % and without; print detection
    times and false alarms of the night-flow leak detector as one JSON object."""
    from controlcenter.bench.leaks import LeaksBenchError, run_leaks_bench

    try:
        figures = run_leaks_bench(days, seed, trials=trials)
    except LeaksBenchError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(figures))
