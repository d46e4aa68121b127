"""/metrics, /healthz and /readyz: figures from the center's parts, readiness from a real
database whose write lock another connection holds."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.serving import BaseWSGIServer, make_server

from controlcenter.api.operations import (
    CenterSources,
    MetricsAccess,
    Readiness,
    ReadinessPolicy,
    StoreWriteProbe,
    create_operations,
    metrics_registry,
)
from controlcenter.automation import AlarmDef, AlarmPriority, AlarmState
from controlcenter.model import SCAN_LATENCY_BUCKETS_S, CommandStatus, Role, ScanDiagnostics
from controlcenter.permissions import TokenScope
from controlcenter.security.tokens import TokenStore
from controlcenter.security.users import UserStore
from historian.store import SqlHistorian
from historian.writer import WriterMetrics
from tests.controlcenter.api.api_testkit import ListJournal

WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Devices:
    """A scan engine's diagnostics, as the test sets them."""

    items: list[ScanDiagnostics] = field(default_factory=list)

    def diagnostics(self) -> list[ScanDiagnostics]:
        return list(self.items)


@dataclass
class Writer:
    figures: WriterMetrics

    def metrics(self) -> WriterMetrics:
        return self.figures


class Counts:
    def status_counts(self) -> Mapping[CommandStatus, int]:
        return {CommandStatus.CONFIRMED: 7, CommandStatus.REJECTED: 2}


class Rules:
    def evaluations(self) -> int:
        return 41


class Streams:
    def open_streams(self) -> int:
        return 3


class Alarms:
    """Two active alarms: one critical, one low."""

    def states(self, **_: Any) -> list[tuple[AlarmDef, AlarmState]]:
        def alarm(name: str, priority: AlarmPriority) -> tuple[AlarmDef, AlarmState]:
            definition = AlarmDef.__new__(AlarmDef)
            object.__setattr__(definition, "priority", priority)
            return definition, AlarmState(name, active=True, acknowledged=False)

        return [alarm("a", AlarmPriority.CRITICAL), alarm("b", AlarmPriority.LOW)]


def diagnostics(device: str, *, connected: bool = True) -> ScanDiagnostics:
    buckets = [0] * (len(SCAN_LATENCY_BUCKETS_S) + 1)
    buckets[1], buckets[3], buckets[-1] = 5, 2, 1
    return ScanDiagnostics(
        device,
        connected,
        10,
        9,
        1,
        WHEN,
        "",
        12.0,
        40.0,
        connected=connected,
        errors_by_kind={"timeout": 1},
        reconnects=2,
        latency_buckets=tuple(buckets),
        latency_sum_s=11.5,
    )


def writer(fill: float = 0.1) -> Writer:
    return Writer(
        WriterMetrics(
            queue_depth=12,
            rows_written=500,
            batches_written=5,
            last_batch_latency_s=0.02,
            write_failures=1,
            rows_rejected=0,
            failing=False,
            spool_depth=4,
            spool_fill_ratio=fill,
            max_batch_latency_s=0.3,
        )
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlHistorian]:
    historian = SqlHistorian(f"sqlite:///{tmp_path / 'h.db'}", busy_timeout_s=0.2)
    yield historian
    historian.close()


@dataclass
class Scrapers:
    """Who may ask for /metrics: a maintenance and a viewer user with tokens, and the journal."""

    access: MetricsAccess
    journal: ListJournal

    def token(self, user: str, scope: TokenScope = TokenScope.READ) -> str:
        """A fresh token of ``user``."""
        return self.access.tokens.create(user, scope, 3600, created_by="ada").secret_text

    def client(self, devices: Devices, readiness: Readiness) -> FlaskClient:
        """A test client of the operations app over ``devices`` and ``readiness``."""
        registry = metrics_registry(CenterSources(devices))
        return create_operations(registry, readiness, self.access).test_client()


@pytest.fixture
def scrapers(tmp_path: Path) -> Iterator[Scrapers]:
    users = UserStore(tmp_path / "users.json", hasher=PasswordHasher.from_parameters(CHEAPEST))
    users.add_user("prometheus", "a long test passphrase 1", Role.MAINTENANCE)
    users.add_user("vera", "a long test passphrase 1", Role.VIEWER)
    users.add_user("ada", "a long test passphrase 1", Role.ADMIN)
    tokens = TokenStore(tmp_path / "tokens.sqlite", users)
    journal = ListJournal()
    yield Scrapers(MetricsAccess(tokens, journal), journal)
    tokens.close()


def serve(app: Any) -> tuple[BaseWSGIServer, str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def scrape(url: str, token: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = httpx.get(url + "/metrics", timeout=10, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_metrics_over_http_carry_every_part_of_the_center(
    store: SqlHistorian, scrapers: Scrapers
) -> None:
    devices = Devices([diagnostics("rtu1"), diagnostics("plc2", connected=False)])
    sources = CenterSources(
        devices=devices,
        writer=writer(),
        alarms=Alarms(),  # type: ignore[arg-type]
        commands=Counts(),
        rules=Rules(),
        streams=Streams(),
    )
    readiness = Readiness(devices, StoreWriteProbe(store))
    server, url = serve(create_operations(metrics_registry(sources), readiness, scrapers.access))
    try:
        found = scrape(url, scrapers.token("prometheus"))
    finally:
        server.shutdown()
        readiness.close()
    rtu = (("device", "rtu1"),)
    assert found["controlcenter_device_scans_total"][rtu] == 10
    assert found["controlcenter_device_scans_on_time_total"][rtu] == 9
    assert found["controlcenter_device_reconnects_total"][rtu] == 2
    assert (
        found["controlcenter_device_errors_total"][(("device", "rtu1"), ("kind", "timeout"))] == 1
    )
    assert found["controlcenter_device_connected"][(("device", "plc2"),)] == 0
    assert found["controlcenter_device_scan_latency_p95_seconds"][rtu] == pytest.approx(0.04)
    buckets = found["controlcenter_device_scan_latency_seconds_bucket"]
    bound = f"{SCAN_LATENCY_BUCKETS_S[1]:g}"
    assert buckets[(("device", "rtu1"), ("le", bound))] == 5  # cumulative
    assert buckets[(("device", "rtu1"), ("le", "+Inf"))] == 8
    assert found["controlcenter_device_scan_latency_seconds_count"][rtu] == 8
    assert found["controlcenter_device_scan_latency_seconds_sum"][rtu] == 11.5
    assert found["controlcenter_historian_queue_depth"][()] == 12
    assert found["controlcenter_historian_spool_depth"][()] == 4
    assert found["controlcenter_historian_write_latency_seconds"][()] == 0.02
    assert found["controlcenter_alarms_active"][(("priority", "critical"),)] == 1
    assert found["controlcenter_alarms_active"][(("priority", "high"),)] == 0
    assert found["controlcenter_commands_total"][(("status", "confirmed"),)] == 7
    assert found["controlcenter_rule_evaluations_total"][()] == 41
    assert found["controlcenter_hmi_streams"][()] == 3
    assert found["process_resident_memory_bytes"][()] > 0
    assert "process_cpu_seconds_total" in found


def test_healthz_is_alive_and_unknown_paths_are_problems(
    store: SqlHistorian, scrapers: Scrapers
) -> None:
    devices = Devices([diagnostics("rtu1")])
    readiness = Readiness(devices, StoreWriteProbe(store))
    client = scrapers.client(devices, readiness)
    assert client.get("/healthz").get_json() == {"status": "alive"}
    missing = client.get("/metrics/../etc/passwd")
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"
    assert client.post("/readyz").status_code == 405
    readiness.close()


def test_readyz_turns_unready_while_the_database_is_locked_and_ready_again(
    store: SqlHistorian, tmp_path: Path, scrapers: Scrapers
) -> None:
    devices = Devices([diagnostics("rtu1")])
    policy = ReadinessPolicy(probe_timeout_s=5.0, probe_every_s=0.0)
    readiness = Readiness(devices, StoreWriteProbe(store), writer(), policy)
    client = scrapers.client(devices, readiness)
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["status"] == "ready"
    # Another process takes the database's write lock: a real failure of the database.
    holder = sqlite3.connect(tmp_path / "h.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = client.get("/readyz")
        assert locked.status_code == 503
        body = locked.get_json()
        assert body["status"] == "not ready"
        assert any("database" in reason and "locked" in reason for reason in body["reasons"])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert client.get("/readyz").status_code == 200
    readiness.close()


def test_readyz_names_each_failing_check(store: SqlHistorian, scrapers: Scrapers) -> None:
    devices = Devices([diagnostics("a"), diagnostics("b", connected=False)])
    policy = ReadinessPolicy(min_connected_share=0.9, spool_warn_fraction=0.8)
    readiness = Readiness(devices, StoreWriteProbe(store), writer(fill=0.85), policy)
    client = scrapers.client(devices, readiness)
    answer = client.get("/readyz")
    assert answer.status_code == 503
    failing = {check["name"] for check in answer.get_json()["checks"] if not check["ok"]}
    assert failing == {"devices", "spool"}
    assert "1 of 2 devices connected" in " ".join(answer.get_json()["reasons"])
    readiness.close()


def test_a_probe_that_hangs_is_a_failure_within_its_deadline() -> None:
    release = threading.Event()
    devices = Devices([diagnostics("rtu1")])

    def stuck() -> None:
        release.wait(30)

    readiness = Readiness(devices, stuck, policy=ReadinessPolicy(probe_timeout_s=0.2))
    try:
        first = {check.name: check for check in readiness.checks()}["database"]
        assert not first.ok and "has not answered" in first.detail
        # The stuck probe is not joined by a second one: the next check answers at once.
        second = {check.name: check for check in readiness.checks()}["database"]
        assert not second.ok
    finally:
        release.set()
        readiness.close()


def test_metrics_need_a_token_allowed_to_view_diagnostics_and_refusals_are_journaled(
    store: SqlHistorian, scrapers: Scrapers
) -> None:
    devices = Devices([diagnostics("rtu1")])
    readiness = Readiness(devices, StoreWriteProbe(store))
    client = scrapers.client(devices, readiness)
    revoked = scrapers.access.tokens.create("prometheus", TokenScope.READ, 3600, created_by="ada")
    scrapers.access.tokens.revoke(revoked.token.token_id)
    cases = [
        ({}, 401, "token is required"),
        ({"Authorization": "Basic cHJvbWV0aGV1czp4"}, 401, "token is required"),
        ({"Authorization": "Bearer cc_forged"}, 401, "malformed token"),
        ({"Authorization": f"Bearer {revoked.secret_text}"}, 401, "revoked"),
        ({"Authorization": f"Bearer {scrapers.token('vera')}"}, 403, "view_diagnostics"),
    ]
    for headers, status, reason in cases:
        answer = client.get("/metrics", headers=headers)
        assert answer.status_code == status, (headers, answer.get_data(as_text=True))
        assert answer.mimetype == "application/problem+json"
        assert reason in answer.get_json()["detail"]
        assert "controlcenter_device" not in answer.get_data(as_text=True)
        if status == 401:
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    refusals = [event.message for event in scrapers.journal.events]
    assert len(refusals) == len(cases)
    assert all("/metrics" in message for message in refusals)
    assert "vera" in refusals[-1]
    allowed = client.get(
        "/metrics", headers={"Authorization": f"Bearer {scrapers.token('prometheus')}"}
    )
    assert allowed.status_code == 200 and "controlcenter_device_scans_total" in allowed.text
    # Probes stay open: an orchestrator has no token.
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    readiness.close()
