"""``controlcenter bench api``: a real HTTP load generator against the demo city's center.

The simulated city runs in one child process, the center (``controlcenter run`` with its web
server: HMI, REST API, stream) in another, and the load generator in this process (an asyncio
pool of httpx clients), so each one's CPU is its own and the center's figures are not hidden
by the generator's. Before the center starts, the bench fills its historian with a day of
one-second samples of one tag, as a day of acquisition would have left them.

Figures (one JSON object):

- ``live_values``: ``GET /api/v1/values?tags=…`` for ``--tags`` tags of the site (spread over
  every domain), ``--batch`` names a request, the batches in turn, opened at ``--rate``
  requests a second on a fixed schedule (open loop: a slow answer does not delay the next
  request). Latency from each request's scheduled time to its whole answer read, so falling
  behind counts. Every answer must hold a value for every name asked. Target p95 ≤ 50 ms.
  The requests are spread over several API tokens (one per client of the pool), as several
  integrators would send them: one token may send 50 requests a second.
- ``history_raw``: ``GET /api/v1/history/<tag>/raw/columns`` over the whole filled day (``--hours``
  of one value a second, one answer), ``--history-requests`` times by ``--history-workers``
  clients. Target p95 ≤ 200 ms.
- ``stream``: ``--streams`` clients follow ``GET /api/v1/stream?tags=<probe>``; the bench
  writes a new value of a writable setpoint into the simulated device over its own protocol
  connection (as a panel on site would) ``--changes`` times, and times each change to each
  client's ``value`` event carrying it (``field_change_to_client_ms``: includes the wait for
  the device's next scan, ``scan_interval_s``), and the center's own part: the sample's
  ``server_time`` (when the center took it) to the client's receipt
  (``sample_to_client_ms``).
- ``center_cpu_cores`` per phase: CPU seconds per wall second of the center process; the
  generator's own (``generator_cpu_cores``) for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import resource
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from controlcenter.api.services import API_TOKENS_FILE
from controlcenter.bench.hmi import CenterProcess, HmiBenchError, percentile
from controlcenter.bench.scaleout import fresh_database
from controlcenter.clock import WallClock
from controlcenter.model import DataType, Quality, Role, Sample, TagDef
from controlcenter.permissions import TokenScope
from controlcenter.runtime.app import build_driver
from controlcenter.runtime.city_process import CityProcess, CityProcessError, CityProcessOptions
from controlcenter.runtime.runner import QUIET_LIBRARIES
from controlcenter.security.tokens import TokenStore
from controlcenter.security.users import UserStore
from controlcenter.site.config import SiteConfig, load_site
from drivers.base import DriverError
from historian.store import SqlHistorian

log = logging.getLogger(__name__)

LIVE_TARGET_P95_MS = 50.0
HISTORY_TARGET_P95_MS = 200.0
TOKEN_RATE_SHARE = 25.0
"""Requests a second each client (token) sends at most: half of one token's rate limit."""
CITY_START_TIMEOUT_S = 600.0
CENTER_START_TIMEOUT_S = 300.0
READY_TIMEOUT_S = 120.0
"""How long the center may take to have a Good value for every measured tag."""
SEEN_TIMEOUT_S = 10.0
"""How long each stream client may take to receive one change before it counts as missed."""
REQUEST_TIMEOUT_S = 30.0
MAX_IN_FLIGHT = 400
"""Live-value requests open at once at most; beyond, the schedule waits (and latency shows it)."""
FILL_BATCH = 10_000
PASSWORD_BYTES = 18
HISTORY_TAG_PREFERRED = "water.tank1.level"


class ApiBenchError(Exception):
    """The API bench cannot run (the city or the center did not start, nothing to measure)."""


@dataclass(frozen=True, slots=True)
class ApiBenchOptions:
    """What city, what load, for how long."""

    scale: int = 1
    seed: int = 1
    domains: frozenset[str] | None = None
    """Only these domains of the city (None: all); the published figures use all."""
    tags: int = 1000
    """Tags the live-value requests read."""
    batch: int = 25
    """Tag names one live-value request carries."""
    rate: float = 200.0
    """Live-value requests a second."""
    duration_s: float = 30.0
    """The live-value phase."""
    hours: float = 24.0
    """History filled (one value a second) and read in one request."""
    history_requests: int = 40
    history_workers: int = 1
    """History clients side by side (the target is the time of one read on a running center)."""
    streams: int = 10
    changes: int = 30
    warm_up_s: float = 3.0
    """After every measured tag has a value, before the first phase (first scans settle)."""
    postgres_url: str | None = None
    """The center's historian in a new database beside this PostgreSQL one (None: SQLite)."""

    def __post_init__(self) -> None:
        counts = (self.scale, self.tags, self.batch, self.history_requests, self.history_workers)
        if min(counts) < 1 or self.streams < 1 or self.changes < 1:
            raise ValueError("scale, tags, batch, requests, workers, streams, changes: >= 1")
        if not (self.rate > 0 and self.duration_s > 0 and self.hours > 0):
            raise ValueError("rate, duration and hours must be positive")


TINY = ApiBenchOptions(
    domains=frozenset({"water"}),
    tags=60,
    batch=10,
    rate=20.0,
    duration_s=2.0,
    hours=1.0,
    history_requests=4,
    history_workers=1,
    streams=2,
    changes=3,
    warm_up_s=0.5,
)
"""A smoke run: the water domain, a few seconds a phase."""


# --- choosing what to measure ---------------------------------------------------------------------


def spread_tags(site: SiteConfig, count: int) -> list[str]:
    """``count`` tag names spread evenly over the site's tags (every domain), in site order."""
    names = [tag.name for tag in site.tag_defs()]
    if count >= len(names):
        return names
    step = len(names) / count
    return [names[int(i * step)] for i in range(count)]


def batches(names: Sequence[str], size: int) -> list[list[str]]:
    """``names`` cut into lists of ``size`` (the last one shorter)."""
    return [list(names[i : i + size]) for i in range(0, len(names), size)]


def history_tag(site: SiteConfig) -> TagDef:
    """The tag whose day of history is read: a tank level, else the first float tag."""
    floats = [t for t in site.tag_defs() if t.data_type is DataType.FLOAT]
    if not floats:
        raise ApiBenchError("the site has no float tag to fill with history")
    return next((t for t in floats if t.name == HISTORY_TAG_PREFERRED), floats[0])


def stream_probe(site: SiteConfig) -> TagDef:
    """The writable number changed in the field: a pump speed if there is one."""
    writable = [
        t
        for t in site.tag_defs()
        if t.writable and t.data_type is DataType.FLOAT and t.low is not None
    ]
    if not writable:
        raise ApiBenchError("the site has no writable number to change in the field")
    return next((t for t in writable if t.name.endswith(".speed")), writable[0])


def day_of_samples(tag: str, end: datetime, hours: float) -> list[Sample]:
    """One Good sample a second for ``hours`` before ``end``: a slow daily wave with noise."""
    rng = random.Random(tag)
    count = int(hours * 3600)
    start = end - timedelta(seconds=count)
    samples = []
    for second in range(count):
        at = start + timedelta(seconds=second)
        level = 2.5 + 1.5 * math.sin(2 * math.pi * second / 86_400) + rng.uniform(-0.02, 0.02)
        samples.append(Sample(tag, round(level, 4), Quality.good(), at, at))
    return samples


def fill_history(db_url: str, tag: TagDef, samples: Sequence[Sample]) -> None:
    """Write ``samples`` into the historian at ``db_url`` (before the center opens it)."""
    store = SqlHistorian(db_url)
    try:
        store.ensure_tags([tag])
        for start in range(0, len(samples), FILL_BATCH):
            store.write_samples(samples[start : start + FILL_BATCH])
    finally:
        store.close()


def latency_figures(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max in milliseconds (None without observations)."""
    return {
        "p50_ms": _ms(percentile(latencies_ms, 0.50)),
        "p95_ms": _ms(percentile(latencies_ms, 0.95)),
        "p99_ms": _ms(percentile(latencies_ms, 0.99)),
        "max_ms": _ms(max(latencies_ms)) if latencies_ms else None,
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _stamp(moment: datetime) -> str:
    # "Z", not "+00:00": a "+" in a query string decodes as a space.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CpuMeter:
    """CPU seconds per wall second of the center and of this process over one phase."""

    def __init__(self, center: CenterProcess) -> None:
        self._center = center
        self._start = (center.cpu_seconds(), _own_cpu(), time.monotonic())

    def figures(self) -> dict[str, float]:
        """The center's and the generator's cores since the meter started."""
        center0, own0, wall0 = self._start
        wall = max(1e-9, time.monotonic() - wall0)
        return {
            "center_cpu_cores": round((self._center.cpu_seconds() - center0) / wall, 3),
            "generator_cpu_cores": round((_own_cpu() - own0) / wall, 3),
        }


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the phases -----------------------------------------------------------------------------------


@dataclass(slots=True)
class LiveTally:
    """What the live-value phase saw."""

    latencies_ms: list[float] = field(default_factory=list)
    service_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        """Count one failed request of ``kind``."""
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def live_values_phase(
    clients: Sequence[httpx.AsyncClient], tag_batches: Sequence[Sequence[str]], rate: float,
    duration_s: float,
) -> dict[str, Any]:  # fmt: skip
    """Open-loop live-value requests at ``rate`` for ``duration_s``; the phase's figures."""
    tally = LiveTally()
    total = max(1, round(rate * duration_s))
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    tasks: list[asyncio.Task[None]] = []

    async def one(number: int, due: float) -> None:
        names = tag_batches[number % len(tag_batches)]
        client = clients[number % len(clients)]
        try:
            sent = loop.time()
            reply = await client.get("/api/v1/values", params={"tags": ",".join(names)})
            body = reply.content
            done = loop.time()
        except httpx.HTTPError as err:
            tally.error(type(err).__name__)
            return
        finally:
            in_flight.release()
        if reply.status_code != 200:
            tally.error(f"http_{reply.status_code}")
            return
        if len(json.loads(body).get("values", [])) != len(names):
            tally.error("incomplete")
            return
        tally.latencies_ms.append((done - due) * 1000.0)
        tally.service_ms.append((done - sent) * 1000.0)

    for number in range(total):
        due = start + number / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # the schedule: the next request's due time
        await in_flight.acquire()
        tasks.append(asyncio.create_task(one(number, due)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    ok = len(tally.latencies_ms)
    return {
        "requests": total,
        "ok": ok,
        "errors": tally.errors,
        "achieved_rate_per_s": round(ok / max(1e-9, elapsed), 1),
        "latency": latency_figures(tally.latencies_ms),
        "service_time": latency_figures(tally.service_ms),
    }


async def history_phase(
    clients: Sequence[httpx.AsyncClient], tag: str, start: datetime, end: datetime, requests: int
) -> dict[str, Any]:
    """``requests`` raw reads of the window by ``clients`` side by side; the phase's figures."""
    params = {"start": _stamp(start), "end": _stamp(end), "limit": "100000"}
    # The columns shape: the one the API offers for long windows (a day of one-second values).
    path = f"/api/v1/history/{tag}/raw/columns"
    latencies: list[float] = []
    sizes: list[int] = []
    counts: list[int] = []
    errors: dict[str, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(requests):
        queue.put_nowait(number)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            queue.get_nowait()
            began = time.perf_counter()
            try:
                reply = await client.get(path, params=params)
                body = reply.content
            except httpx.HTTPError as err:
                errors[type(err).__name__] = errors.get(type(err).__name__, 0) + 1
                continue
            elapsed = time.perf_counter() - began
            if reply.status_code != 200:
                errors[f"http_{reply.status_code}"] = errors.get(f"http_{reply.status_code}", 0) + 1
                continue
            latencies.append(elapsed * 1000.0)
            sizes.append(len(body))
            counts.append(len(json.loads(body)["value"]))

    await asyncio.gather(*(worker(client) for client in clients))
    return {
        "requests": requests,
        "ok": len(latencies),
        "errors": errors,
        "values_per_answer": min(counts) if counts else 0,
        "bytes_per_answer": round(sum(sizes) / len(sizes)) if sizes else 0,
        "latency": latency_figures(latencies),
    }


@dataclass(slots=True)
class StreamClient:
    """One client following the stream: the value events it received, stamped on receipt."""

    received: list[tuple[float, Any, float]] = field(default_factory=list)
    """(receipt ``time.time()``, value, sample server time as epoch seconds)."""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    open: asyncio.Event = field(default_factory=asyncio.Event)


async def follow_stream(client: httpx.AsyncClient, tag: str, into: StreamClient) -> None:
    """Read the stream's value events of ``tag`` into ``into`` until cancelled."""
    async with client.stream("GET", "/api/v1/stream", params={"tags": tag}) as reply:
        if reply.status_code != 200:
            raise ApiBenchError(f"the stream answered {reply.status_code}")
        event = ""
        async for line in reply.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "value":
                data = json.loads(line[6:])
                server = datetime.fromisoformat(data["server_time"]).timestamp()
                into.received.append((time.time(), data["value"], server))
                into.open.set()
                into.arrived.set()


async def seen(client: StreamClient, value: float, since: float, timeout_s: float) -> int | None:
    """Index into ``client.received`` of the first event after ``since`` carrying ``value``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    checked = 0
    while True:
        for index in range(checked, len(client.received)):
            at, got, _ = client.received[index]
            if at >= since and isinstance(got, int | float) and abs(got - value) < 0.051:
                return index
        checked = len(client.received)
        client.arrived.clear()
        left = deadline - loop.time()
        if left <= 0:
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.arrived.wait(), left)


async def stream_phase(
    clients: Sequence[httpx.AsyncClient],
    site: SiteConfig,
    probe: TagDef,
    changes: int,
    rng: random.Random,
) -> dict[str, Any]:
    """Field changes of ``probe`` timed to every stream client; the phase's figures."""
    followers = [StreamClient() for _ in clients]
    readers = [
        asyncio.create_task(follow_stream(client, probe.name, follower))
        for client, follower in zip(clients, followers, strict=True)
    ]
    device = build_driver(site.device(probe.device), WallClock())
    field_ms: list[float] = []
    sample_ms: list[float] = []
    missed = 0
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            for follower in followers:
                await follower.open.wait()  # its first event: the value as it is now
        await device.connect()
        low = probe.low if probe.low is not None else 0.0
        high = probe.high if probe.high is not None else low + 100.0
        previous: float | None = None
        for _ in range(changes):
            value = _next_value(low, high, previous, rng)
            previous = value
            changed = time.time()
            try:
                await device.write(probe, value)
            except DriverError as err:
                raise ApiBenchError(f"the field write of {probe.name} failed: {err}") from err
            found = await asyncio.gather(
                *(seen(f, value, changed, SEEN_TIMEOUT_S) for f in followers)
            )
            for follower, index in zip(followers, found, strict=True):
                if index is None:
                    missed += 1
                    continue
                at, _, server = follower.received[index]
                field_ms.append((at - changed) * 1000.0)
                sample_ms.append(max(0.0, at - server) * 1000.0)
            # A random pause: the changes fall at every phase of the scan cycle.
            await asyncio.sleep(rng.uniform(0.1, 0.9))
    finally:
        for reader in readers:
            reader.cancel()
        for reader in readers:
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError, ApiBenchError):
                await reader
        with contextlib.suppress(DriverError):
            await device.close()
    return {
        "clients": len(clients),
        "tag": probe.name,
        "scan_interval_s": site.device(probe.device).scan_interval,
        "changes": changes,
        "observations": len(field_ms),
        "missed": missed,
        "field_change_to_client": latency_figures(field_ms),
        "sample_to_client": latency_figures(sample_ms),
    }


def _next_value(low: float, high: float, previous: float | None, rng: random.Random) -> float:
    span = high - low
    while True:
        value = round(low + span * rng.uniform(0.5, 1.0), 1)
        if previous is None or abs(value - previous) >= span / 10:
            return value


# --- the run --------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_city(options: ApiBenchOptions, site_path: Path) -> AsyncIterator[CityProcess]:
    """The simulated city in a child process on free ports, its site file at ``site_path``."""
    city = await CityProcess.start(
        CityProcessOptions(
            ready_file=site_path, scale=options.scale, seed=options.seed, domains=options.domains
        )
    )
    try:
        try:
            await city.listening(CITY_START_TIMEOUT_S)
        except CityProcessError as err:
            raise ApiBenchError(str(err)) from err
        yield city
    finally:
        await city.stop()


@contextlib.asynccontextmanager
async def api_clients(url: str, tokens: Sequence[str]) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One client per token, each with its own connection pool."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=url,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=REQUEST_TIMEOUT_S,
                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
                )
            )
            for token in tokens
        ]
        yield clients


async def wait_until_good(client: httpx.AsyncClient, names: Sequence[str]) -> None:
    """Return once the center has a value of every tag in ``names`` (first scans done)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_S
    missing: set[str] = set(names)
    while True:
        for batch in batches(sorted(missing), 100):
            with contextlib.suppress(httpx.HTTPError):
                reply = await client.get("/api/v1/values", params={"tags": ",".join(batch)})
                if reply.status_code == 200:
                    for value in reply.json()["values"]:
                        if value["quality"]["severity"] != "bad":
                            missing.discard(value["tag"])
        if not missing:
            return
        if loop.time() > deadline:
            raise ApiBenchError(
                f"{len(missing)} tags without a value after {READY_TIMEOUT_S:g} s, e.g. "
                + ", ".join(sorted(missing)[:5])
            )
        await asyncio.sleep(0.5)  # polling the center until its first scans are done


def _issue_tokens(state_dir: Path, users: UserStore, user: str, count: int) -> list[str]:
    store = TokenStore(state_dir / API_TOKENS_FILE, users)
    try:
        return [
            store.create(user, TokenScope.READ, 86_400, created_by=user, label="bench").secret_text
            for _ in range(count)
        ]
    finally:
        store.close()


async def run_api_bench(options: ApiBenchOptions) -> dict[str, Any]:
    """Run the bench; return its figures."""
    for noisy in QUIET_LIBRARIES:  # the city's servers log every slow client
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    rng = random.Random(options.seed)
    async with contextlib.AsyncExitStack() as resources:
        scratch = resources.enter_context(tempfile.TemporaryDirectory(prefix="bench-api-"))
        postgres = (
            None
            if options.postgres_url is None
            else await resources.enter_async_context(
                fresh_database(options.postgres_url, keep=False, prefix="cc_bench_api")
            )
        )
        root = Path(scratch)
        site_path = root / "site" / "site.yaml"
        site_path.parent.mkdir(parents=True)
        started = time.monotonic()
        async with running_city(options, site_path):
            city_start_s = time.monotonic() - started
            site = await asyncio.to_thread(load_site, site_path)
            names = spread_tags(site, options.tags)
            filled = history_tag(site)
            probe = stream_probe(site)
            users_path = root / "state" / "users.json"
            users_path.parent.mkdir(parents=True)
            users = UserStore(users_path, hasher=PasswordHasher.from_parameters(CHEAPEST))
            users.add_user("bench-integrator", secrets.token_urlsafe(PASSWORD_BYTES), Role.VIEWER)
            live_clients = max(1, math.ceil(options.rate / TOKEN_RATE_SHARE))
            wanted = live_clients + options.history_workers + options.streams
            tokens = _issue_tokens(users_path.parent, users, "bench-integrator", wanted)
            db_url = postgres or f"sqlite:///{root / 'center.db'}"
            fill_end = datetime.now(UTC).replace(microsecond=0)
            samples = day_of_samples(filled.name, fill_end, options.hours)
            began = time.monotonic()
            await asyncio.to_thread(fill_history, db_url, filled, samples)
            fill_s = time.monotonic() - began
            started = time.monotonic()
            center = await CenterProcess.start(site_path, db_url, users_path)
            try:
                try:
                    url = (await center.hmi_url(CENTER_START_TIMEOUT_S)).rstrip("/")
                except HmiBenchError as err:
                    raise ApiBenchError(str(err)) from err
                center_start_s = time.monotonic() - started
                async with api_clients(url, tokens) as clients:
                    live = clients[:live_clients]
                    history = clients[live_clients : live_clients + options.history_workers]
                    streams = clients[live_clients + options.history_workers :]
                    await wait_until_good(live[0], names)
                    await asyncio.sleep(options.warm_up_s)  # a settling window, not a wait
                    log.info("center at %s ready; live values at %g/s", url, options.rate)
                    meter = CpuMeter(center)
                    live_figures = await live_values_phase(
                        live, batches(names, options.batch), options.rate, options.duration_s
                    )
                    live_figures.update(meter.figures())
                    log.info("history: %d reads of %s", options.history_requests, filled.name)
                    meter = CpuMeter(center)
                    history_figures = await history_phase(
                        history,
                        filled.name,
                        samples[0].server_time,
                        samples[-1].server_time,
                        options.history_requests,
                    )
                    history_figures.update(meter.figures())
                    log.info("stream: %d changes of %s", options.changes, probe.name)
                    meter = CpuMeter(center)
                    stream_figures = await stream_phase(streams, site, probe, options.changes, rng)
                    stream_figures.update(meter.figures())
            finally:
                await center.stop()
    live_p95 = live_figures["latency"]["p95_ms"]
    history_p95 = history_figures["latency"]["p95_ms"]
    return {
        "scale": options.scale,
        "devices": len(site.devices),
        "site_tags": len(site.tags),
        "city_start_s": round(city_start_s, 1),
        "center_start_s": round(center_start_s, 1),
        "database": "sqlite" if postgres is None else "postgresql",
        "live_values": {
            "tags": len(names),
            "tags_per_request": options.batch,
            "target_rate_per_s": options.rate,
            "duration_s": options.duration_s,
            "clients": live_clients,
            **live_figures,
            "target_p95_ms": LIVE_TARGET_P95_MS,
            "pass": live_p95 is not None
            and live_p95 <= LIVE_TARGET_P95_MS
            and not live_figures["errors"],
        },
        "history_raw": {
            "tag": filled.name,
            "hours": options.hours,
            "stored_values": len(samples),
            "fill_s": round(fill_s, 1),
            "workers": options.history_workers,
            **history_figures,
            "target_p95_ms": HISTORY_TARGET_P95_MS,
            "pass": history_p95 is not None
            and history_p95 <= HISTORY_TARGET_P95_MS
            and not history_figures["errors"],
        },
        "stream": stream_figures,
    }
