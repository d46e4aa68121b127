"""``controlcenter bench``: benchmarks that print one JSON object each."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
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


@bench_app.command("hmi")
def bench_hmi(
    scale: Annotated[int, typer.Option(min=1, help="Scale of the simulated city.")] = 20,
    sessions: Annotated[
        int, typer.Option(min=1, help="Browser sessions, each logged in as an operator.")
    ] = 20,
    duration: Annotated[
        float, typer.Option(min=1.0, help="Measured window with every session open, seconds.")
    ] = 60.0,
    display: Annotated[
        str, typer.Option(help="Display every session shows (one with live values).")
    ] = "/asset/water.ps1",
    changes: Annotated[int, typer.Option(min=1, help="Field changes at least.")] = 30,
    idle: Annotated[
        float, typer.Option(min=1.0, help="Window measuring the center with no browser, s.")
    ] = 20.0,
    switch_rounds: Annotated[
        int, typer.Option(min=1, help="Rounds of the display-switch tour.")
    ] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city.")] = 1,
) -> None:
    """Measure the HMI in real browsers against the simulated city: field change to screen,
    display switches, bytes per browser and the center's CPU; print one JSON object."""
    import logging

    from controlcenter.bench.hmi import HmiBenchError, HmiBenchOptions, run_hmi_bench

    # Progress on stderr: a run at scale 20 with twenty browsers takes minutes.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("controlcenter.bench.hmi").setLevel(logging.INFO)
    try:
        options = HmiBenchOptions(
            scale=scale,
            sessions=sessions,
            duration_s=duration,
            display=display,
            min_changes=changes,
            idle_s=idle,
            switch_rounds=switch_rounds,
            seed=seed,
        )
        figures = asyncio.run(run_hmi_bench(options))
    except (HmiBenchError, ValueError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(figures))


class ApiBenchScale(StrEnum):
    """How much load the API bench sends."""

    FULL = "full"
    TINY = "tiny"


@bench_app.command("api")
def bench_api(
    size: Annotated[
        ApiBenchScale,
        typer.Option(help="full: the published figures (the options below); tiny: a smoke run."),
    ] = ApiBenchScale.FULL,
    scale: Annotated[int, typer.Option(min=1, help="Scale of the simulated city.")] = 1,
    tags: Annotated[int, typer.Option(min=1, help="Tags the live-value requests read.")] = 1000,
    batch: Annotated[int, typer.Option(min=1, help="Tag names per live-value request.")] = 25,
    rate: Annotated[float, typer.Option(min=0.1, help="Live-value requests a second.")] = 200.0,
    duration: Annotated[float, typer.Option(min=0.5, help="Live-value phase, seconds.")] = 30.0,
    hours: Annotated[
        float, typer.Option(min=0.01, help="Hours of 1 s history filled and read at once.")
    ] = 24.0,
    history_requests: Annotated[int, typer.Option(min=1, help="History reads.")] = 40,
    history_workers: Annotated[int, typer.Option(min=1, help="History clients side by side.")] = 1,
    streams: Annotated[int, typer.Option(min=1, help="Clients following the stream.")] = 10,
    changes: Annotated[int, typer.Option(min=1, help="Field changes timed to the stream.")] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city.")] = 1,
    postgres: Annotated[
        str | None,
        typer.Option(
            help="The center's historian in a new database beside this PostgreSQL one, "
            "dropped afterwards (default: SQLite).",
        ),
    ] = None,
) -> None:
    """Load the demo city's center over HTTP: live values, a day of raw history, the stream's
    change-to-client time; print one JSON object."""
    import logging

    from controlcenter.bench.api import TINY, ApiBenchError, ApiBenchOptions, run_api_bench
    from controlcenter.bench.scaleout import ScaleoutBenchError

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("controlcenter.bench.api").setLevel(logging.INFO)
    try:
        if size is ApiBenchScale.TINY:
            options = TINY
        else:
            options = ApiBenchOptions(
                scale=scale,
                seed=seed,
                tags=tags,
                batch=batch,
                rate=rate,
                duration_s=duration,
                hours=hours,
                history_requests=history_requests,
                history_workers=history_workers,
                streams=streams,
                changes=changes,
                postgres_url=postgres,
            )
        figures = asyncio.run(run_api_bench(options))
    except (ApiBenchError, ScaleoutBenchError, ValueError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(figures))


@bench_app.command("scaleout")
def bench_scaleout(
    scale: Annotated[int, typer.Option(min=1, help="Scale of the simulated city.")] = 35,
    edges: Annotated[int, typer.Option(min=1, help="Edge processes (domains dealt).")] = 3,
    duration: Annotated[float, typer.Option(min=1.0, help="Measured window, seconds.")] = 60.0,
    nats: Annotated[str, typer.Option(help="NATS server URL(s).")] = "nats://127.0.0.1:4222",
    cluster: Annotated[
        bool, typer.Option("--cluster", help="Start a three-node NATS cluster here instead.")
    ] = False,
    db: Annotated[
        str, typer.Option(help="PostgreSQL server; each run makes and drops its own database.")
    ] = "postgresql://postgres@127.0.0.1:5432/test",
    commands: Annotated[int, typer.Option(min=1, help="Command round trips measured.")] = 50,
    size: Annotated[
        str, typer.Option(help="full, or tiny for a smoke run (scale 1, seconds).")
    ] = "full",
    keep: Annotated[bool, typer.Option("--keep", help="Keep the run's database.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city.")] = 1,
    logs: Annotated[
        Path | None,
        typer.Option(help="Write each edge's and the center's whole stderr to this folder."),
    ] = None,
    pause: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Seconds the center is stopped after the window while the edges publish on; "
            "its catch-up rate is measured (0: skip; default 20, tiny 2).",
        ),
    ] = None,
) -> None:
    """Edges on NATS JetStream and a center on PostgreSQL, end to end; print one JSON object."""
    from dataclasses import replace

    from controlcenter.bench.scaleout import (
        ScaleoutBenchError,
        ScaleoutOptions,
        run_scaleout_bench,
    )

    if size not in ("full", "tiny"):
        typer.echo("--size is full or tiny", err=True)
        raise typer.Exit(2)
    full = ScaleoutOptions(scale=scale, duration_s=duration, commands=commands)
    base = ScaleoutOptions.tiny() if size == "tiny" else full
    options = replace(
        base,
        edges=edges,
        nats_url=nats,
        cluster=cluster,
        db_url=db,
        keep=keep,
        seed=seed,
        logs=logs,
        pause_s=base.pause_s if pause is None else pause,
    )
    try:
        figures = asyncio.run(run_scaleout_bench(options))
    except ScaleoutBenchError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(figures))


@bench_app.command("mqtt")
def bench_mqtt(
    broker: Annotated[str, typer.Option(help="The broker, mqtt://host:port.")] = (
        "mqtt://127.0.0.1:1883"
    ),
    containers: Annotated[
        int, typer.Option(min=0, help="Waste containers, one report per 10 minutes.")
    ] = 10_000,
    buses: Annotated[int, typer.Option(min=0, help="Buses, one report per 10 s.")] = 2_000,
    rate: Annotated[
        float,
        typer.Option(
            min=1,
            help="Messages per second published (time compressed); above the 20,000/s target.",
        ),
    ] = 24_000.0,
    duration: Annotated[float, typer.Option(min=0.5, help="Publishing window, seconds.")] = 20.0,
) -> None:
    """Sensors' JSON uplinks from the broker into the historian; print one JSON object."""
    from controlcenter.bench.mqtt import MqttBenchError, MqttBenchOptions, run_mqtt_bench

    if containers + buses == 0:
        typer.echo("give some containers or buses", err=True)
        raise typer.Exit(2)
    options = MqttBenchOptions(broker, containers, buses, rate, duration)
    try:
        figures = asyncio.run(run_mqtt_bench(options))
    except MqttBenchError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    typer.echo(json.dumps(figures))
