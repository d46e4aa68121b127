"""``controlcenter bench scaleout``: edges on NATS JetStream, a center on PostgreSQL, end to end.

Everything runs on this machine as separate processes, as it would on separate hosts:

- the simulated city (``controlcenter sim``, ``controlcenter.runtime.city_process``) at
  ``--scale``; its site file is split between ``--edges`` edges by domain (the domains are
  dealt to the edges largest first, each to the edge with the fewest points so far), written
  with ``edge: eN`` on every device;
- one ``controlcenter edge --site FILE --edge eN --nats URL`` process per edge;
- one center, ``controlcenter run --site FILE --nats URL --db postgresql://…/<fresh database>``,
  with its HMI and API on a free port;
- NATS: the machine's server (``--nats``, default ``nats://127.0.0.1:4222``) or, with
  ``--cluster``, three ``nats-server`` processes started here
  (``controlcenter.bench.nats_cluster``).

Each run uses a database of its own (``cc_scaleout_<hex>``, dropped afterwards unless
``--keep``) and a subject root of its own, so runs never meet tests or each other.

Figures (one JSON object): ``values_per_s`` (rows added to ``samples`` per second in the window,
end to end: field → edge → JetStream → center → PostgreSQL); ``published`` / ``stored`` /
``lost`` (after the window the edges stop, everything in flight is drained, and the rows in
PostgreSQL are compared with what the edges say they published; ``lost`` is their difference,
negative for duplicates); ``latency_p95_ms`` (field to center: how old the newest stored value of
the tags stored most often on each edge is when looked at, every 0.5 s, by its edge time stamp;
this includes up to one scan interval of waiting for the next scan and any wait for a change, so
it is an upper bound); ``command_p95_ms``
(select and operate through the center's REST API, the command pipeline, NATS request/reply to
the owning edge, the edge's interlocks, the device write and its read back); ``catch_up``
(after the window the center is stopped for ``pause_s`` while the edges publish on, then
started again: how fast it works off what JetStream kept, ``values_per_s`` from its first write
until it is up to date, which is the ingest's capacity whatever the city's own rate of
change); CPU cores used by the city, the edges, the center and PostgreSQL's server processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil  # type: ignore[import-untyped]  # psutil ships no type hints
import psycopg
import yaml

from controlcenter.api.services import API_TOKENS_FILE
from controlcenter.bench.nats_cluster import NatsCluster, NatsClusterError, free_port
from controlcenter.model import Role
from controlcenter.permissions import TokenScope
from controlcenter.runtime.child_process import ChildProcess
from controlcenter.runtime.city_process import CityProcess, CityProcessError, CityProcessOptions
from controlcenter.security.tokens import TokenStore
from controlcenter.security.users import UserStore

log = logging.getLogger(__name__)

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_DB_URL = "postgresql://postgres@127.0.0.1:5432/test"
CITY_START_TIMEOUT_S = 900.0
SERVICE_START_TIMEOUT_S = 120.0
"""How long the edges and the center may take until every tag has a stored row."""
DRAIN_TIMEOUT_S = 120.0
"""How long the backlog may take to reach PostgreSQL once the edges stopped (the drain waits
for every sample the edges say they published; what is missing after this is ``lost``)."""
DRAIN_STABLE_S = 3.0
"""The row count must stay the same this long to count as drained."""
PROBE_PERIOD_S = 0.5
CAUGHT_UP_AGE_S = 3.0
CATCH_UP_TIMEOUT_S = 60.0
RATE_WINDOW_S = 5.0
"""The span over which the catch-up's rates are taken."""
CAUGHT_UP_RATE_RATIO = 1.25
"""A catch-up is over when rows come at no more than this times the window's steady rate."""
"""How long the catch-up is measured at most (``caught_up`` false after that)."""
"""A restarted center has caught up when the busiest tags' newest rows are this young."""
LATENCY_TAGS = 20
"""How many tags the latency probe looks at (spread over every edge)."""
BENCH_USER = "bench-operator"
BENCH_PASSWORD = "a long bench passphrase 1"
COMMAND_TIMEOUT_S = 10.0
PUBLISHED_LINE = "published "
"""An edge ends with a line ``published <n> samples`` on stdout (its own count)."""


class ScaleoutBenchError(Exception):
    """The scale-out benchmark cannot run (a process did not start, NATS or PostgreSQL away)."""


@dataclass(frozen=True, slots=True)
class ScaleoutOptions:
    """What city, how many edges, where NATS and PostgreSQL are, how long to measure."""

    scale: int = 35
    edges: int = 3
    duration_s: float = 60.0
    nats_url: str = DEFAULT_NATS_URL
    cluster: bool = False
    db_url: str = DEFAULT_DB_URL
    commands: int = 50
    seed: int = 1
    keep: bool = False
    logs: Path | None = None
    """A folder for each process's whole stderr (``<edge>.log``, ``center.log``)."""
    pause_s: float = 20.0
    """How long the center is stopped after the window while the edges publish on (0: not)."""

    @classmethod
    def tiny(cls, **overrides: Any) -> ScaleoutOptions:
        """A smoke run of seconds: scale 1, a short window, a few commands."""
        values: dict[str, Any] = {"scale": 1, "duration_s": 5.0, "commands": 3, "pause_s": 2.0}
        values.update(overrides)
        return cls(**values)


class _Service(ChildProcess):
    """An edge or the center: a ``controlcenter`` child whose stdout lines are kept."""

    def __init__(
        self, process: asyncio.subprocess.Process, name: str, logs: Path | None = None
    ) -> None:
        self.lines: list[str] = []
        super().__init__(process, name, self._keep, None if logs is None else logs / f"{name}.log")

    @classmethod
    async def start(cls, name: str, arguments: Sequence[str], logs: Path | None = None) -> _Service:
        """Start ``controlcenter <arguments>`` in a child process."""
        command = [sys.executable, "-m", "controlcenter.cli.main", *arguments]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process, name, logs)

    def _keep(self, line: bytes) -> None:
        self.lines.append(line.decode(errors="replace").rstrip())

    def published(self) -> int | None:
        """The edge's own count of samples published, from its last line (None: not said)."""
        for line in reversed(self.lines):
            if line.startswith(PUBLISHED_LINE):
                with contextlib.suppress(ValueError, IndexError):
                    return int(line.split()[1])
        return None


def split_site(site: dict[str, Any], edges: int) -> dict[str, list[str]]:
    """Give every device of ``site`` an ``edge``: domains dealt to the least-loaded edge.

    Returns each edge's device names. A domain is the first part of a device's name; the
    domains go largest first (by points) to the edge with the fewest points so far, so a
    utility or service stays on one edge, as it would in a real deployment.
    """
    if edges < 1:
        raise ValueError("at least one edge")
    points: dict[str, int] = {}
    for tag in site.get("tags", []):
        points[str(tag["device"])] = points.get(str(tag["device"]), 0) + 1
    by_domain: dict[str, list[dict[str, Any]]] = {}
    for device in site["devices"]:
        by_domain.setdefault(str(device["name"]).split(".")[0], []).append(device)
    load = {f"e{index}": 0 for index in range(1, edges + 1)}
    owned: dict[str, list[str]] = {name: [] for name in load}

    def weight(devices: list[dict[str, Any]]) -> int:
        return sum(points.get(str(device["name"]), 0) for device in devices)

    groups = sorted(by_domain.values(), key=weight, reverse=True)
    # Fewer domains than edges: deal the largest domains' devices one by one instead.
    if len(groups) < edges:
        groups = [[device] for group in groups for device in group]
        groups.sort(key=weight, reverse=True)
    for group in groups:
        edge = min(load, key=lambda name: load[name])
        load[edge] += weight(group)
        for device in group:
            device["edge"] = edge
            owned[edge].append(str(device["name"]))
    return owned


def fresh_database_url(base_url: str, name: str) -> str:
    """``base_url`` with its database replaced by ``name``."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _psycopg_url(url: str) -> str:
    # psycopg takes libpq URLs; SQLAlchemy's driver suffix is not one.
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextlib.asynccontextmanager
async def fresh_database(
    base_url: str, keep: bool, prefix: str = "cc_scaleout"
) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database beside ``base_url``'s (``<prefix>_<hex>``); dropped
    on exit unless kept."""
    name = f"{prefix}_{secrets.token_hex(4)}"

    def run(sql: str) -> None:
        with psycopg.connect(_psycopg_url(base_url), autocommit=True) as connection:
            connection.execute(sql)

    try:
        await asyncio.to_thread(run, f'CREATE DATABASE "{name}"')
    except psycopg.Error as err:
        raise ScaleoutBenchError(f"cannot create a database at {base_url}: {err}") from err
    try:
        yield fresh_database_url(base_url, name)
    finally:
        if not keep:
            with contextlib.suppress(psycopg.Error):
                await asyncio.to_thread(run, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Samples:
    """Row counts and the newest rows of the center's ``samples`` table."""

    def __init__(self, url: str) -> None:
        self._connection = psycopg.connect(_psycopg_url(url), autocommit=True)

    def count(self, tags: Sequence[str] | None = None) -> int:
        """Rows in ``samples`` (every partition), of ``tags`` only if given; 0 while the center
        has not made the table."""
        try:
            if tags is None:
                row = self._connection.execute("SELECT count(*) FROM samples").fetchone()
            else:
                row = self._connection.execute(
                    "SELECT count(*) FROM samples s JOIN tags t ON t.id = s.tag_id "
                    "WHERE t.name = ANY(%s)",
                    (list(tags),),
                ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
        return int(row[0]) if row is not None else 0

    def counts_by_tag(self) -> dict[str, int]:
        """Rows per tag name."""
        rows = self._connection.execute(
            "SELECT t.name, count(*) FROM samples s JOIN tags t ON t.id = s.tag_id GROUP BY t.name"
        ).fetchall()
        return {str(name): int(count) for name, count in rows}

    def newest(self, tags: Sequence[str]) -> dict[str, float]:
        """The newest server time (epoch seconds) stored of each of ``tags``."""
        rows = self._connection.execute(
            "SELECT t.name, extract(epoch FROM max(s.server_time)) FROM samples s "
            "JOIN tags t ON t.id = s.tag_id WHERE t.name = ANY(%s) GROUP BY t.name",
            (list(tags),),
        ).fetchall()
        return {str(name): float(epoch) for name, epoch in rows if epoch is not None}

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()


async def _catch_up(
    options: ScaleoutOptions,
    samples: _Samples,
    services: list[_Service],
    restart_center: Callable[[], Awaitable[None]],
    probe_tags: Sequence[str],
    steady_per_s: float,
) -> dict[str, float | bool]:
    """Stop the center for ``pause_s`` while the edges publish on, start it again and time how
    fast it works off the backlog JetStream kept: the ingest's capacity, field to PostgreSQL.

    From the restarted center's first write (taken one probe period before it was seen) until
    it has caught up: the busiest tags' newest rows are younger than ``CAUGHT_UP_AGE_S`` again,
    or the rows of the last ``RATE_WINDOW_S`` came at no more than ``CAUGHT_UP_RATE_RATIO``
    times the window's steady rate (the backlog is gone; some tags may be stale because their
    devices fail). ``peak_values_per_s`` is the fastest ``RATE_WINDOW_S`` on the way.
    """
    await services[-1].stop()
    # The outage itself: the edges go on publishing and the stream keeps what they send.
    await asyncio.sleep(options.pause_s)
    await restart_center()
    base = await asyncio.to_thread(samples.count)
    restarted = time.monotonic()
    seen: list[tuple[float, int]] = []
    deadline = restarted + SERVICE_START_TIMEOUT_S + CATCH_UP_TIMEOUT_S
    while True:
        await asyncio.sleep(PROBE_PERIOD_S)
        count = await asyncio.to_thread(samples.count)
        now = time.monotonic()
        if not seen and count > base:
            # The first write happened within the probe period before it was seen: counting
            # that whole period makes the rates lower bounds.
            seen.append((now - PROBE_PERIOD_S, base))
        if seen:
            seen.append((now, count))
            newest = await asyncio.to_thread(samples.newest, probe_tags)
            ages = [time.time() - stamp for stamp in newest.values()]
            fresh = bool(ages) and max(ages) < CAUGHT_UP_AGE_S
            recent = _rate_over(seen, RATE_WINDOW_S)
            drained = recent is not None and recent <= CAUGHT_UP_RATE_RATIO * max(steady_per_s, 1.0)
            if fresh or drained or now > deadline:
                # A center that never caught up (the field or the machine overloaded) still
                # says how fast it went.
                elapsed = now - seen[0][0]
                peaks = [
                    rate
                    for index in range(len(seen))
                    if (rate := _rate_over(seen[: index + 1], RATE_WINDOW_S)) is not None
                ]
                return {
                    "pause_s": options.pause_s,
                    "caught_up": fresh or drained,
                    "first_write_s": round(seen[0][0] - restarted, 1),
                    "catch_up_s": round(elapsed, 1),
                    "rows": count - base,
                    "values_per_s": round((count - base) / elapsed),
                    "peak_values_per_s": round(max(peaks, default=(count - base) / elapsed)),
                }
        if services[-1].process.returncode is not None:
            raise ScaleoutBenchError(
                f"the restarted center exited with {services[-1].process.returncode}:\n"
                f"{services[-1].stderr_tail()}"
            )
        if now > deadline:
            raise ScaleoutBenchError("the restarted center wrote nothing")


def _rate_over(seen: Sequence[tuple[float, int]], seconds: float) -> float | None:
    """Rows per second over the last ``seconds`` of ``seen`` (time, row count); None while
    ``seen`` spans less."""
    end_time, end_count = seen[-1]
    for at, count in reversed(seen):
        if end_time - at >= seconds:
            return (end_count - count) / (end_time - at)
    return None


def _p95(values: Sequence[float]) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def _postgres_cpu_seconds() -> float:
    """CPU seconds of every PostgreSQL server process on this machine (0 if none is visible)."""
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        name = process.info.get("name") or ""
        times = process.info.get("cpu_times")
        if name.startswith("postgres") and times is not None:
            total += float(times.user + times.system)
    return total


def _busiest_tags(
    counts: Mapping[str, int], site: dict[str, Any], owned: dict[str, list[str]]
) -> list[str]:
    """The latency probe's tags: on each edge, those stored most often so far.

    The historian stores a value only when it changed (exception and swinging-door compression;
    subscriptions and COV report changes only), so the newest row of a quiet tag is as old as
    its last change, not as its delivery. Tags that change at nearly every scan show delivery.
    """
    edge_of = {device: edge for edge, devices in owned.items() for device in devices}
    by_edge: dict[str, list[str]] = {edge: [] for edge in owned}
    for tag in site.get("tags", []):
        edge = edge_of.get(str(tag.get("device")))
        if edge is not None:
            by_edge[edge].append(str(tag["name"]))
    per_edge = max(1, LATENCY_TAGS // max(1, len(owned)))
    chosen: list[str] = []
    for names in by_edge.values():
        names.sort(key=lambda name: counts.get(name, 0), reverse=True)
        chosen.extend(names[:per_edge])
    return chosen


def _writable_tags(site: dict[str, Any], owned: dict[str, list[str]]) -> list[str]:
    """Writable analogue setpoints of the edges' devices, a few per edge, for the commands."""
    edge_of = {device: edge for edge, devices in owned.items() for device in devices}
    chosen: dict[str, list[str]] = {edge: [] for edge in owned}
    for tag in site.get("tags", []):
        edge = edge_of.get(str(tag.get("device")))
        # Analogue setpoints only: a mode or a switch takes whole numbers or true/false.
        if edge is None or not tag.get("writable") or tag.get("data_type", "float") != "float":
            continue
        if len(chosen[edge]) < 5:
            chosen[edge].append(str(tag["name"]))
    return [name for names in chosen.values() for name in names]


async def _command_round_trips(
    api: str, token: str, tags: Sequence[str], site: dict[str, Any], count: int
) -> tuple[list[float], dict[str, int]]:
    """Select and operate ``count`` times over ``tags`` through the REST API; times in ms."""
    ranges = {str(tag["name"]): tag.get("range") for tag in site.get("tags", [])}
    headers = {"Authorization": f"Bearer {token}"}
    times: list[float] = []
    outcomes: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=COMMAND_TIMEOUT_S) as http:
        for index in range(count):
            tag = tags[index % len(tags)]
            low, high = _range(ranges.get(tag))
            value = low + (high - low) * (0.4 if index % 2 else 0.6)
            started = time.perf_counter()
            try:
                selected = await http.post("/commands/selections", json={"tag": tag})
                selected.raise_for_status()
                selection = selected.json()["selection_id"]
                operated = await http.post(
                    f"/commands/selections/{selection}/operate",
                    json={"value": value, "reason": "scale-out benchmark"},
                )
                operated.raise_for_status()
                status = str(operated.json().get("status", "unknown"))
            except (httpx.HTTPError, KeyError, ValueError) as err:
                status = f"error: {type(err).__name__}"
            elapsed = (time.perf_counter() - started) * 1000.0
            outcomes[status] = outcomes.get(status, 0) + 1
            if status == "confirmed":
                times.append(elapsed)
    return times, outcomes


def _range(value: object) -> tuple[float, float]:
    if isinstance(value, list | tuple) and len(value) == 2:
        with contextlib.suppress(TypeError, ValueError):
            return float(value[0]), float(value[1])
    return 0.0, 100.0


async def _wait_for(predicate: Any, timeout_s: float, what: str, services: list[_Service]) -> None:
    """Poll ``predicate`` (a function returning a bool, run in a thread) until it holds."""
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(predicate):
        for service in services:
            if service.process.returncode is not None:
                raise ScaleoutBenchError(
                    f"{what}: a process exited with {service.process.returncode}:\n"
                    f"{service.stderr_tail()}"
                )
        if time.monotonic() > deadline:
            tails = "\n".join(service.stderr_tail() for service in services)
            raise ScaleoutBenchError(f"{what}: not within {timeout_s:g} s\n{tails}")
        await asyncio.sleep(PROBE_PERIOD_S)


async def run_scaleout_bench(options: ScaleoutOptions) -> dict[str, Any]:
    """Run the city, the edges and the center; return the figures."""
    with tempfile.TemporaryDirectory(prefix="cc-scaleout-") as temporary:
        work = Path(temporary)
        cluster: NatsCluster | None = None
        try:
            nats_url = options.nats_url
            if options.cluster:
                cluster = NatsCluster.plan(work / "nats", 3)
                await cluster.start()
                nats_url = cluster.url
            async with fresh_database(options.db_url, options.keep) as db_url:
                figures = await _run(options, work, nats_url, db_url)
        except (NatsClusterError, CityProcessError) as err:
            raise ScaleoutBenchError(str(err)) from err
        finally:
            if cluster is not None:
                await cluster.stop()
    figures["nats"] = "cluster of 3" if options.cluster else options.nats_url
    return figures


async def _run(options: ScaleoutOptions, work: Path, nats_url: str, db_url: str) -> dict[str, Any]:
    ready = work / "city-site.yaml"
    if options.logs is not None:
        await asyncio.to_thread(options.logs.mkdir, parents=True, exist_ok=True)
    city = await CityProcess.start(
        CityProcessOptions(ready_file=ready, scale=options.scale, seed=options.seed)
    )
    services: list[_Service] = []
    samples: _Samples | None = None
    try:
        started = time.monotonic()
        await city.listening(CITY_START_TIMEOUT_S)
        site = yaml.safe_load(await asyncio.to_thread(ready.read_text))
        owned = split_site(site, options.edges)
        site_path = work / "site.yaml"
        await asyncio.to_thread(site_path.write_text, yaml.safe_dump(site, sort_keys=False))
        root = f"bench{secrets.token_hex(3)}"
        users_path = work / "center" / "users.json"
        users_path.parent.mkdir(parents=True)
        token = await asyncio.to_thread(_bench_token, users_path)
        port = free_port()
        for edge in owned:
            services.append(
                await _Service.start(
                    edge,
                    [
                        "edge",
                        "--site",
                        str(site_path),
                        "--edge",
                        edge,
                        "--nats",
                        nats_url,
                        "--nats-root",
                        root,
                        # The run's own spool: nothing of an earlier run is sent again.
                        "--spool",
                        str(work / "edge-spool"),
                    ],
                    options.logs,
                )
            )
        center_arguments = [
            "run",
            "--site",
            str(site_path),
            "--nats",
            nats_url,
            "--nats-root",
            root,
            "--db",
            db_url,
            "--users",
            str(users_path),
            "--port",
            str(port),
        ]
        center = await _Service.start("center", center_arguments, options.logs)
        services.append(center)

        async def restart_center() -> None:
            services[-1] = await _Service.start("center", center_arguments, options.logs)

        samples = await asyncio.to_thread(_Samples, db_url)
        points = len(site.get("tags", []))
        store = samples

        def every_tag_stored() -> bool:
            return store.count() > 0 and len(store.counts_by_tag()) >= points

        await _wait_for(every_tag_stored, SERVICE_START_TIMEOUT_S, "every tag stored", services)
        start_s = time.monotonic() - started
        figures = await _measure(
            options, samples, services, site, owned, token, port, restart_center, city
        )
        figures.update(
            start_s=round(start_s, 1),
            devices=len(site["devices"]),
            points=points,
            edges={edge: len(devices) for edge, devices in owned.items()},
        )
        return figures
    finally:
        for service in services:
            await service.stop()
        if samples is not None:
            samples.close()
        await city.stop()


def _bench_token(users_path: Path) -> str:
    users = UserStore(users_path)
    users.add_user(BENCH_USER, BENCH_PASSWORD, Role.OPERATOR)
    tokens = TokenStore(users_path.parent / API_TOKENS_FILE, users)
    try:
        issued = tokens.create(BENCH_USER, TokenScope.COMMAND, 3600.0, created_by=BENCH_USER)
    finally:
        tokens.close()
    return issued.secret_text


async def _measure(
    options: ScaleoutOptions,
    samples: _Samples,
    services: list[_Service],
    site: dict[str, Any],
    owned: dict[str, list[str]],
    token: str,
    port: int,
    restart_center: Callable[[], Awaitable[None]],
    city: ChildProcess,
) -> dict[str, Any]:
    edges = [service for service in services if service is not services[-1]]
    probe_tags = _busiest_tags(await asyncio.to_thread(samples.counts_by_tag), site, owned)
    cpu_before = [service.cpu_seconds() for service in services]
    pg_before = _postgres_cpu_seconds()
    city_before = city.cpu_seconds()
    rows_before = await asyncio.to_thread(samples.count)
    window_start = time.monotonic()
    ages: list[float] = []
    while time.monotonic() - window_start < options.duration_s:
        newest = await asyncio.to_thread(samples.newest, probe_tags)
        now = time.time()
        ages.extend((now - stamp) * 1000.0 for stamp in newest.values())
        await asyncio.sleep(PROBE_PERIOD_S)
    rows_after = await asyncio.to_thread(samples.count)
    window_s = time.monotonic() - window_start
    cpu_after = [service.cpu_seconds() for service in services]
    pg_after = _postgres_cpu_seconds()
    city_after = city.cpu_seconds()

    steady_per_s = (rows_after - rows_before) / window_s
    catch_up = (
        await _catch_up(options, samples, services, restart_center, probe_tags, steady_per_s)
        if options.pause_s > 0
        else None
    )

    api = f"http://127.0.0.1:{port}/api/v1"
    command_ms, outcomes = await _command_round_trips(
        api, token, _writable_tags(site, owned), site, options.commands
    )

    # Nothing lost: stop the edges (they flush what they spooled and say what they published),
    # then wait until the center has written everything in flight.
    for edge in edges:
        await edge.stop()
    published_counts = [edge.published() for edge in edges]
    published = (
        sum(count for count in published_counts if count is not None)
        if all(count is not None for count in published_counts)
        else None
    )
    last = -1
    stable_since = time.monotonic()
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    # Only the field's tags: the center also stores its calculated tags, which no edge sent.
    field_tags = [str(tag["name"]) for tag in site.get("tags", [])]
    while time.monotonic() < deadline:
        count = await asyncio.to_thread(samples.count, field_tags)
        if published is not None and count >= published:
            last = count
            break  # everything the edges sent is stored
        if count != last:
            last, stable_since = count, time.monotonic()
        elif published is None and time.monotonic() - stable_since >= DRAIN_STABLE_S:
            break  # no count to wait for: a pause of the rows is taken as the end
        await asyncio.sleep(PROBE_PERIOD_S)
    p95_latency = _p95(ages)
    p95_command = _p95(command_ms)
    cores = [
        (after - before) / window_s for before, after in zip(cpu_before, cpu_after, strict=True)
    ]
    return {
        "window_s": round(window_s, 1),
        "values_per_s": round((rows_after - rows_before) / window_s),
        "published": published,
        "stored": last,
        "lost": None if published is None else published - last,
        "latency_p95_ms": None if p95_latency is None else round(p95_latency),
        "command_p95_ms": None if p95_command is None else round(p95_command, 1),
        "commands": outcomes,
        "catch_up": catch_up,
        "edge_cpu_cores_used": [round(core, 2) for core in cores[:-1]],
        "center_cpu_cores_used": round(cores[-1], 2),
        "postgres_cpu_cores_used": round((pg_after - pg_before) / window_s, 2),
        "city_cpu_cores_used": round((city_after - city_before) / window_s, 2),
    }
