"""Operations endpoints: Prometheus ``/metrics``, ``/healthz`` (alive) and ``/readyz`` (ready).

``/metrics`` is served by the official client library from a registry holding one custom
collector, which reads the running center at scrape time (scan engine diagnostics, historian
writer figures, alarm states, command and rule counters, open live streams), and the library's
process collector (CPU seconds, resident memory, open files).

Scan latency is a real Prometheus histogram: the scan engine counts every successful read into
fixed buckets (``SCAN_LATENCY_BUCKETS_S``) since start, so the buckets are monotonic counters
that can be summed over devices and rated over any window; the engine's own mean and p95 over its
last 1,000 reads are exported beside it as gauges, the figures the HMI shows.

``/metrics`` names the site's devices, alarms and figures, so it is behind a bearer API token
(RFC 6750) like the API: the token's user and scope must allow viewing diagnostics (a
maintenance role or higher with a read token: Prometheus's ``authorization.credentials_file``).
Refusals are answered 401 or 403 as RFC 9457 problems and journaled. ``/healthz`` and
``/readyz`` answer without a token, as load balancers and orchestrators probe them; they say
only whether the center is alive and ready, and why not.

``/readyz`` answers 200 when the center can do its job and 503 with the reasons when not: the
share of devices connected is at least a threshold, the database accepts a write (a probe in a
worker thread that must answer within a deadline: a locked or stopped database does not hang
the check), and the spool is below its warning level.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from flask import Flask, Response
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import Connection, text

from controlcenter.api.auth import (
    AuthenticationRequiredError,
    journal_refusal,
    refusal_user,
    resolve_caller,
)
from controlcenter.api.problems import problem_response
from controlcenter.model import SCAN_LATENCY_BUCKETS_S
from controlcenter.permissions import Permission, PermissionDeniedError
from controlcenter.permissions import require as require_permission
from controlcenter.ports import (
    AlarmAction,
    AlarmJournalReader,
    AlarmOperations,
    AlarmPriority,
    CommandCounts,
    DeviceHealthView,
    EventJournal,
    HistorianWriterView,
    OpenStreams,
    RuleEvaluationCount,
)
from controlcenter.security.tokens import TokenStore

METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
OPERATIONS_PATHS = (METRICS_PATH, HEALTH_PATH, READY_PATH)
"""Mount the operations app at each of these paths of the center's web server."""
NAMESPACE = "controlcenter"
ALARM_RATE_WINDOW = timedelta(minutes=10)
"""ISA-18.2 measures the alarm rate as annunciations per operator per 10 minutes."""


@dataclass(frozen=True, slots=True)
class CenterSources:
    """What the collector reads of the running center; None: this center does not run it."""

    devices: DeviceHealthView
    writer: HistorianWriterView | None = None
    alarms: AlarmOperations | None = None
    alarm_journal: AlarmJournalReader | None = None
    commands: CommandCounts | None = None
    rules: RuleEvaluationCount | None = None
    streams: OpenStreams | None = None
    now: Callable[[], datetime] | None = None
    """The center's clock, for the alarm rate's window (needed with ``alarm_journal``)."""


class CenterCollector(Collector):
    """A Prometheus collector reading the center at every scrape (nothing kept between them)."""

    def __init__(self, sources: CenterSources) -> None:
        self._sources = sources

    def describe(self) -> list[Metric]:
        """No fixed description: the registry then calls ``collect`` only when scraped."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every metric, read now."""
        yield from self._devices()
        yield from self._historian()
        yield from self._alarms()
        yield from self._commands_and_rules()

    def _devices(self) -> Iterator[Metric]:
        diagnostics = self._sources.devices.diagnostics()
        labels = ["device"]

        def counter(name: str, doc: str) -> CounterMetricFamily:
            return CounterMetricFamily(f"{NAMESPACE}_{name}", doc, labels=labels)

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{NAMESPACE}_{name}", doc, labels=labels)

        scans = counter("device_scans", "Scans (reads) started per device since start")
        on_time = counter("device_scans_on_time", "Scans started within one interval of due")
        missed = counter("device_scans_missed", "Scans skipped because the previous overran")
        failed = counter("device_scans_failed", "Failed scans per device since start")
        errors = CounterMetricFamily(
            f"{NAMESPACE}_device_errors",
            "Failed scans per device and quality sub-status since start",
            labels=["device", "kind"],
        )
        reconnects = counter("device_reconnects", "Connections re-established after a loss")
        outages = counter("device_outages", "Times a device went from healthy to failed")
        abandoned = counter("device_reads_abandoned", "Reads given up after their timeout")
        connected = gauge("device_connected", "1 when the device's driver is connected")
        healthy = gauge("device_healthy", "1 when the device's last scan succeeded")
        mean = gauge("device_scan_latency_mean_seconds", "Mean read latency, last 1,000 reads")
        p95 = gauge("device_scan_latency_p95_seconds", "95th percentile read latency, last 1,000")
        stale = gauge("device_stale_points", "Subscribed points Uncertain for lack of updates")
        histogram = HistogramMetricFamily(
            f"{NAMESPACE}_device_scan_latency_seconds",
            "Latency of successful reads per device since start",
            labels=labels,
        )
        for item in diagnostics:
            device = [item.device]
            scans.add_metric(device, item.scans)
            on_time.add_metric(device, item.scans_on_time)
            missed.add_metric(device, item.missed_scans)
            failed.add_metric(device, item.failed_scans)
            for kind, count in sorted(item.errors_by_kind.items()):
                errors.add_metric([item.device, kind], count)
            reconnects.add_metric(device, item.reconnects)
            outages.add_metric(device, item.outages)
            abandoned.add_metric(device, item.abandoned_reads)
            connected.add_metric(device, 1.0 if item.connected else 0.0)
            healthy.add_metric(device, 1.0 if item.healthy else 0.0)
            mean.add_metric(device, item.latency_mean_ms / 1000.0)
            p95.add_metric(device, item.latency_p95_ms / 1000.0)
            stale.add_metric(device, item.stale_points)
            if item.latency_buckets:
                histogram.add_metric(
                    device, _cumulative(item.latency_buckets), sum_value=item.latency_sum_s
                )
        yield from (scans, on_time, missed, failed, errors, reconnects, outages, abandoned)
        yield from (connected, healthy, mean, p95, stale, histogram)

    def _historian(self) -> Iterator[Metric]:
        writer = self._sources.writer
        if writer is None:
            return
        figures = writer.metrics()
        yield _gauge("historian_queue_depth", "Samples waiting to be written", figures.queue_depth)
        yield _gauge("historian_spool_depth", "Samples in the disk spool", figures.spool_depth)
        yield _gauge(
            "historian_spool_fill_ratio", "How full the spool is (0 to 1)", figures.spool_fill_ratio
        )
        yield _gauge(
            "historian_write_latency_seconds",
            "Duration of the last successful batch write",
            figures.last_batch_latency_s,
        )
        yield _gauge(
            "historian_write_latency_max_seconds",
            "Longest successful batch write since start",
            figures.max_batch_latency_s,
        )
        yield _gauge("historian_failing", "1 while writes fail", 1.0 if figures.failing else 0.0)
        rows = CounterMetricFamily(f"{NAMESPACE}_historian_rows_written", "Samples written")
        rows.add_metric([], figures.rows_written)
        yield rows
        failures = CounterMetricFamily(
            f"{NAMESPACE}_historian_write_failures", "Failed write attempts since start"
        )
        failures.add_metric([], figures.write_failures)
        yield failures

    def _alarms(self) -> Iterator[Metric]:
        alarms = self._sources.alarms
        if alarms is not None:
            active = GaugeMetricFamily(
                f"{NAMESPACE}_alarms_active",
                "Active alarms by priority (condition true, or latched, or unacknowledged)",
                labels=["priority"],
            )
            counts = dict.fromkeys(AlarmPriority, 0)
            for definition, _state in alarms.states(active_only=True):
                counts[definition.priority] += 1
            for priority, count in counts.items():
                active.add_metric([priority.name.lower()], count)
            yield active
        journal, now = self._sources.alarm_journal, self._sources.now
        if journal is not None and now is not None:
            end = now()
            activations = sum(
                1
                for transition in journal.read_alarm_journal(end - ALARM_RATE_WINDOW, end)
                if transition.action is AlarmAction.ACTIVATE
            )
            yield _gauge(
                "alarm_rate_per_10_minutes",
                "Alarm activations in the last 10 minutes of the center's clock (ISA-18.2)",
                activations,
            )

    def _commands_and_rules(self) -> Iterator[Metric]:
        if self._sources.commands is not None:
            commands = CounterMetricFamily(
                f"{NAMESPACE}_commands",
                "Commands finished since start, by status",
                labels=["status"],
            )
            for status, count in sorted(self._sources.commands.status_counts().items()):
                commands.add_metric([status.value], count)
            yield commands
        if self._sources.rules is not None:
            evaluations = CounterMetricFamily(
                f"{NAMESPACE}_rule_evaluations", "Rule evaluations since start"
            )
            evaluations.add_metric([], self._sources.rules.evaluations())
            yield evaluations
        if self._sources.streams is not None:
            yield _gauge(
                "hmi_streams",
                "Open live streams (an HMI display or an API stream each)",
                self._sources.streams.open_streams(),
            )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{NAMESPACE}_{name}", doc, value=value)


def _cumulative(buckets: Sequence[int]) -> list[tuple[str, float]]:
    """Per-bucket counts as Prometheus's cumulative ``le`` buckets (the last one is +Inf)."""
    bounds = [*(f"{bound:g}" for bound in SCAN_LATENCY_BUCKETS_S), "+Inf"]
    out, running = [], 0
    for bound, count in zip(bounds, buckets, strict=False):
        running += count
        out.append((bound, float(running)))
    return out


def metrics_registry(sources: CenterSources, *, process: bool = True) -> CollectorRegistry:
    """A registry of its own (not the library's global one) with the center's collector and,
    ``process``, the process collector (CPU, memory, open files)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(CenterCollector(sources))
    if process:
        ProcessCollector(registry=registry)
    return registry


# --- readiness ------------------------------------------------------------------------------


class WritableStore(Protocol):
    """A historian store that opens write transactions (``historian.store.SqlHistorian``)."""

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        ...

    def writing(self, action: str) -> AbstractContextManager[Connection]:
        """A write transaction; database failures raise an error saying what failed."""
        ...


class StoreWriteProbe:
    """Proves the database accepts writes without writing a row: SQLite's write transaction
    takes the database's write lock (BEGIN IMMEDIATE); on PostgreSQL the probe asks for a
    transaction id, which a read-only or recovering server refuses."""

    def __init__(self, store: WritableStore) -> None:
        self._store = store

    def __call__(self) -> None:
        """Raise when the database does not accept a write now."""
        with self._store.writing("probe the database for writes") as conn:
            if self._store.backend == "postgresql":
                conn.execute(text("SELECT pg_current_xact_id()"))
            else:
                conn.execute(text("SELECT 1"))


@dataclass(frozen=True, slots=True)
class ReadinessPolicy:
    """When the center counts as ready."""

    min_connected_share: float = 0.9
    """Share of devices whose driver is connected, 0 to 1."""
    spool_warn_fraction: float = 0.8
    """The spool's warning level (the site's ``spool_warn_percent`` / 100)."""
    probe_timeout_s: float = 2.0
    """A write probe not answered within this is a failure (a locked or unreachable database)."""
    probe_every_s: float = 5.0
    """A probe's success is trusted for this long, so frequent checks stay cheap."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_connected_share <= 1.0:
            raise ValueError("min_connected_share must be within 0 and 1")
        if not (self.probe_timeout_s > 0 and self.probe_every_s >= 0):
            raise ValueError("probe_timeout_s must be positive and probe_every_s not negative")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One readiness check: its name, whether it passes and what was seen."""

    name: str
    ok: bool
    detail: str


class Readiness:
    """Decides readiness from the devices, a database write probe and the writer's spool."""

    def __init__(
        self,
        devices: DeviceHealthView,
        probe: Callable[[], None],
        writer: HistorianWriterView | None = None,
        policy: ReadinessPolicy | None = None,
    ) -> None:
        """``probe``: raises when the database does not accept a write (``StoreWriteProbe``)."""
        self._devices = devices
        self._probe = probe
        self._writer = writer
        self._policy = policy if policy is not None else ReadinessPolicy()
        # One worker: a probe stuck on a locked database is never joined by a second one.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readyz-probe")
        self._lock = threading.Lock()
        self._pending: Future[None] | None = None
        self._pending_since = 0.0
        self._trusted_until = 0.0

    def close(self) -> None:
        """Stop the probe's worker (a probe in progress finishes on its own)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def checks(self) -> list[CheckResult]:
        """Every check, run now."""
        return [self._devices_check(), self._database_check(), self._spool_check()]

    def _devices_check(self) -> CheckResult:
        diagnostics = self._devices.diagnostics()
        total = len(diagnostics)
        connected = sum(1 for item in diagnostics if item.connected)
        share = connected / total if total else 1.0
        wanted = self._policy.min_connected_share
        return CheckResult(
            "devices",
            share >= wanted,
            f"{connected} of {total} devices connected ({share:.0%}; ready at {wanted:.0%})",
        )

    def _database_check(self) -> CheckResult:
        now = time.monotonic()
        with self._lock:
            if self._pending is None and now < self._trusted_until:
                return CheckResult("database", True, "accepts writes")
            if self._pending is None:
                self._pending = self._executor.submit(self._probe)
                self._pending_since = now
            pending, since = self._pending, self._pending_since
        waited = max(0.0, now - since)
        remaining = self._policy.probe_timeout_s - waited
        try:
            pending.exception(timeout=max(0.0, remaining))
        except TimeoutError:
            return CheckResult(
                "database",
                False,
                f"a write probe has not answered for {waited + max(0.0, remaining):.1f} s",
            )
        with self._lock:
            if self._pending is pending:
                self._pending = None
        error = pending.exception()
        if error is not None:
            return CheckResult("database", False, f"does not accept writes: {_one_line(error)}")
        with self._lock:
            self._trusted_until = time.monotonic() + self._policy.probe_every_s
        return CheckResult("database", True, "accepts writes")

    def _spool_check(self) -> CheckResult:
        if self._writer is None:
            return CheckResult("spool", True, "no historian writer")
        fill = self._writer.metrics().spool_fill_ratio
        warn = self._policy.spool_warn_fraction
        return CheckResult("spool", fill < warn, f"{fill:.0%} full (warning at {warn:.0%})")


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:300]


# --- the web face ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricsAccess:
    """Who may scrape ``/metrics``: the API's tokens, and the journal its refusals go to."""

    tokens: TokenStore
    journal: EventJournal


METRICS_PERMISSION = Permission.VIEW_DIAGNOSTICS
"""What a scraper's user and token must allow (device names, alarm counts, figures)."""


def create_operations(
    registry: CollectorRegistry, readiness: Readiness, access: MetricsAccess
) -> Flask:
    """The operations WSGI app answering ``/metrics`` (with a token), ``/healthz`` and
    ``/readyz``."""
    app = Flask(__name__)

    @app.get(METRICS_PATH)
    def metrics() -> ResponseReturnValue:
        try:
            caller = resolve_caller(access.tokens)
            require_permission(caller.user, METRICS_PERMISSION, caller.scope)
        except AuthenticationRequiredError as err:
            journal_refusal(access.journal, 401, str(err))
            refused = problem_response(401, str(err))
            refused.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return refused
        except PermissionDeniedError as err:
            journal_refusal(access.journal, 403, str(err), refusal_user(err))
            return problem_response(403, str(err))
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    @app.get(HEALTH_PATH)
    def healthz() -> ResponseReturnValue:
        # Alive: this process answers HTTP; whether it can work is /readyz's question.
        return Response(json.dumps({"status": "alive"}), mimetype="application/json")

    @app.get(READY_PATH)
    def readyz() -> ResponseReturnValue:
        checks = readiness.checks()
        ready = all(check.ok for check in checks)
        body = {
            "status": "ready" if ready else "not ready",
            "checks": [
                {"name": check.name, "ok": check.ok, "detail": check.detail} for check in checks
            ],
            "reasons": [f"{check.name}: {check.detail}" for check in checks if not check.ok],
        }
        return Response(json.dumps(body), status=200 if ready else 503, mimetype="application/json")

    @app.errorhandler(404)
    @app.errorhandler(405)
    def not_here(error: Exception) -> ResponseReturnValue:
        code = getattr(error, "code", 404)
        return problem_response(int(code or 404), str(getattr(error, "description", "")))

    return app
