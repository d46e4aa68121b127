"""Operations and open data against the running city: /metrics over HTTP matches the scan
engine, /readyz turns unready while the center's database is locked, and the water districts'
inflow is published as hourly aggregates once an hour of simulated time has passed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.serving import BaseWSGIServer, make_server

from controlcenter.api.open_data import OpenDataService, create_open_data
from controlcenter.api.operations import (
    CenterSources,
    MetricsAccess,
    Readiness,
    ReadinessPolicy,
    StoreWriteProbe,
    create_operations,
    metrics_registry,
)
from controlcenter.model import Role
from controlcenter.permissions import TokenScope
from controlcenter.security.tokens import TokenStore
from historian.queries import HistoryQueries
from tests.e2e.hmi_city_kit import USERS, HmiCity, hmi_city

pytestmark = pytest.mark.e2e

SPEED = 360.0
"""A simulated hour passes in 10 wall seconds; scans stay at one a wall second."""


def serve(app: Any) -> tuple[BaseWSGIServer, str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


class Faces:
    """The city with the operations and open-data apps served over HTTP."""

    def __init__(self, kit: HmiCity, ops_url: str, open_url: str, scraper_token: str) -> None:
        self.kit, self.ops_url, self.open_url = kit, ops_url, open_url
        self.scraper_token = scraper_token


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def faces(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Faces]:
    tmp_path = tmp_path_factory.mktemp("operations")
    async with hmi_city(tmp_path, speed=SPEED, scan_interval_s=SPEED) as kit:
        center = kit.center
        sources = CenterSources(
            devices=center.scan_engine,
            writer=center.writer,
            alarms=center.alarms,
            alarm_journal=center.store,
            commands=center.commands,
            rules=center.rules,
            streams=center.live_hub,
            now=center.clock.now,
        )
        readiness = Readiness(
            center.scan_engine,
            StoreWriteProbe(center.store),
            center.writer,
            ReadinessPolicy(probe_timeout_s=1.0, probe_every_s=0.0),
        )
        service = OpenDataService(
            kit.site.open_datasets(),
            HistoryQueries(center.store),
            k=kit.site.open_data.k,
            timezone=ZoneInfo(kit.site.site.timezone),
            site_name=kit.site.site.name,
            now=center.clock.now,
        )
        tokens = TokenStore(tmp_path / "scrapers.sqlite", kit.users)
        scraper = tokens.create(USERS[Role.MAINTENANCE], TokenScope.READ, 3600, created_by="ada")
        access = MetricsAccess(tokens, center.journal)
        ops, ops_url = serve(create_operations(metrics_registry(sources), readiness, access))
        opendata, open_url = serve(create_open_data(service))
        try:
            yield Faces(kit, ops_url, open_url, scraper.secret_text)
        finally:
            tokens.close()
            ops.shutdown()
            opendata.shutdown()
            readiness.close()


async def get(url: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=15) as client:
        return await client.get(url, params=params)


def samples(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.mark.timeout(90)
async def test_scraped_figures_match_the_scan_engine(faces: Faces) -> None:
    engine = faces.kit.center.scan_engine
    deadline = time.monotonic() + 30
    while not all(item.scans >= 3 and item.connected for item in engine.diagnostics()):
        assert time.monotonic() < deadline, engine.diagnostics()
        await asyncio.sleep(0.2)  # polling the engine, with a deadline
    before = {item.device: item for item in engine.diagnostics()}
    async with httpx.AsyncClient(timeout=15) as client:
        answer = await client.get(
            faces.ops_url + "/metrics",
            headers={"Authorization": f"Bearer {faces.scraper_token}"},
        )
    after = {item.device: item for item in engine.diagnostics()}
    assert answer.status_code == 200
    found = samples(answer.text)
    assert before, "the water city has devices"
    for device, early in before.items():
        late = after[device]
        labels = (("device", device),)
        scans = found["controlcenter_device_scans_total"][labels]
        assert early.scans <= scans <= late.scans
        assert early.scans_on_time <= found["controlcenter_device_scans_on_time_total"][labels]
        assert found["controlcenter_device_connected"][labels] == 1.0
        reads = found["controlcenter_device_scan_latency_seconds_count"][labels]
        assert sum(early.latency_buckets) <= reads <= sum(late.latency_buckets)
        assert found["controlcenter_device_reconnects_total"][labels] == late.reconnects
    assert found["controlcenter_historian_queue_depth"][()] >= 0
    assert set(found["controlcenter_alarms_active"]) == {
        (("priority", name),) for name in ("critical", "high", "medium", "low")
    }
    assert found["controlcenter_rule_evaluations_total"][()] >= 0
    assert found["process_resident_memory_bytes"][()] > 0


@pytest.mark.timeout(90)
async def test_readyz_is_unready_while_the_database_is_locked(faces: Faces) -> None:
    deadline = time.monotonic() + 30
    while (answer := await get(faces.ops_url + "/readyz")).status_code != 200:
        assert time.monotonic() < deadline, answer.json()
        await asyncio.sleep(0.2)
    assert answer.json()["status"] == "ready"
    # Another process takes the center's database write lock: the center cannot write.
    holder = sqlite3.connect(
        faces.kit.site_path.parent.parent / "center.db",
        isolation_level=None,
        timeout=10,
        check_same_thread=False,
    )
    await asyncio.to_thread(holder.execute, "BEGIN EXCLUSIVE")
    try:
        locked = await get(faces.ops_url + "/readyz")
        assert locked.status_code == 503
        assert any(reason.startswith("database:") for reason in locked.json()["reasons"])
    finally:
        await asyncio.to_thread(holder.execute, "ROLLBACK")
        holder.close()
    deadline = time.monotonic() + 60
    while (answer := await get(faces.ops_url + "/readyz")).status_code != 200:
        assert time.monotonic() < deadline, answer.json()
        await asyncio.sleep(0.2)
    assert (await get(faces.ops_url + "/healthz")).json() == {"status": "alive"}


@pytest.mark.timeout(90)
async def test_district_inflow_is_published_as_hourly_aggregates(faces: Faces) -> None:
    catalogue = (await get(faces.open_url + "/open/v1/")).json()
    names = {dataset["name"] for dataset in catalogue["datasets"]}
    assert names == {"water-district-inflow"}, "the water city publishes its districts' inflow"
    url = faces.open_url + "/open/v1/datasets/water-district-inflow"
    deadline = time.monotonic() + 60
    while True:
        buckets = (await get(url)).json()["buckets"]
        published = [bucket for bucket in buckets if not bucket["withheld"]]
        if published:
            break
        assert time.monotonic() < deadline, buckets
        await asyncio.sleep(0.5)
    bucket = published[-1]
    assert bucket["count"] > 0 and bucket["min"] <= bucket["mean"] <= bucket["max"]
    fiware = (await get(url, format="fiware")).json()
    assert fiware[-1]["type"] == "WaterObserved"
    assert fiware[-1]["flow"] == pytest.approx(bucket["mean"])
    refused = await get(url, tags="water.dma1.inflow")
    assert refused.status_code == 403
