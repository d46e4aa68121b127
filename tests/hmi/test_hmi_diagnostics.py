"""Diagnostics display: the rows (a device down is one line with its reason, shares of points
per quality, abnormal first, domain filter), the table's words, and the refresh callback
refused on the server to a role without diagnostics."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

from controlcenter.automation import AssetDef
from controlcenter.model import (
    DataType,
    Event,
    Quality,
    Role,
    Sample,
    ScanDiagnostics,
    TagDef,
    User,
)
from controlcenter.ports import EventJournal, HistoryReader, LiveView, LoginSessions
from controlcenter.security.users import UserStore
from hmi.app import create_hmi
from hmi.page import PageRequest
from hmi.pages import diagnostics as diagnostics_page
from hmi.pages.diagnostics import PAGE, device_rows, render_table
from hmi.server import HmiServer
from tests.hmi.conftest import (
    OPERATOR_NAME,
    OPERATOR_PASSWORD,
    SECRET_KEY,
    SIM_EPOCH,
    hmi_context,
)
from tests.hmi.http_support import log_in, send

NOW = SIM_EPOCH + timedelta(hours=1)
MAINTENANCE, MAINTENANCE_PASSWORD = "mats", "maintenance passphrase 9"


def diagnostics(device: str, **changes: Any) -> ScanDiagnostics:
    values: dict[str, Any] = {
        "device": device,
        "healthy": True,
        "scans": 100,
        "scans_on_time": 99,
        "failed_scans": 0,
        "last_good_scan": NOW - timedelta(seconds=2),
        "last_error": "",
        "latency_mean_ms": 12.0,
        "latency_p95_ms": 30.0,
        "connected": True,
    }
    values.update(changes)
    return ScanDiagnostics(**values)


class Devices:
    """DeviceHealthView with fixed entries."""

    def __init__(self, entries: list[ScanDiagnostics]) -> None:
        self.entries = entries

    def diagnostics(self) -> list[ScanDiagnostics]:
        """The entries."""
        return self.entries


DOWN = diagnostics(
    "rtu2",
    healthy=False,
    connected=False,
    failed_scans=7,
    last_error="connection refused by 10.0.0.2:502",
    errors_by_kind={"not_connected": 6, "timeout": 1},
    reconnects=2,
    outages=3,
)
OK = diagnostics("rtu1")


def test_a_down_device_is_one_line_with_its_reason_and_comes_first(
    live_view: LiveView, history: HistoryReader, journal: EventJournal
) -> None:
    context = hmi_context(live_view, history, journal)
    rows = device_rows(context, [OK, DOWN], live_view.snapshot(), now=NOW)
    assert [row.device for row in rows] == ["rtu2", "rtu1"]
    down = rows[0]
    assert down.state == "Down" and down.abnormal
    assert down.reason == "connection refused by 10.0.0.2:502"
    assert down.errors == "not_connected 6, timeout 1" and down.reconnects == 2
    # rtu2 has one point (tank 2), Bad in the plant.
    assert (down.points, down.good, down.uncertain, down.bad) == (1, 0, 0, 1)
    ok = rows[1]
    # rtu1: level and pump Good, pressure Uncertain: abnormal, though the device is healthy.
    assert ok.state == "OK" and (ok.points, ok.good, ok.uncertain, ok.bad) == (3, 2, 1, 0)
    assert ok.abnormal and round(ok.share(ok.good)) == 67 and ok.age_s == 2.0
    html = json.dumps(render_table(context, rows).to_plotly_json(), default=str)
    assert "Down: connection refused by 10.0.0.2:502" in html
    assert "Good 67%" in html and "Uncertain 33%" in html and "Bad 100%" in html
    assert html.count("diagnostics-row") == 2


def test_a_healthy_device_with_good_points_is_not_abnormal_and_links_its_assets(
    history: HistoryReader, journal: EventJournal
) -> None:
    tags = (
        TagDef("water.ps1.pump1.running", "water.ps1", "c:1", DataType.BOOL),
        TagDef("lights.d1.c1.mode", "lights.d1.c1", "hr:1", DataType.INT),
    )

    class Live:
        def tags(self) -> tuple[TagDef, ...]:
            return tags

        def latest(self, tag: str) -> Sample:
            return self.snapshot()[tag]

        def snapshot(self) -> Mapping[str, Sample]:
            return {t.name: Sample(t.name, 1, Quality.good(), NOW, NOW) for t in tags}

    live = Live()
    context = hmi_context(
        live,
        history,
        journal,
        assets=(
            AssetDef("water.ps1", "booster_station", "water"),
            AssetDef("lights.d1.c1", "lighting_cabinet", "lights"),
        ),
    )
    entries = [diagnostics("water.ps1"), diagnostics("lights.d1.c1", stale_points=1)]
    rows = device_rows(context, entries, live.snapshot())
    by_device = {row.device: row for row in rows}
    assert not by_device["water.ps1"].abnormal and by_device["water.ps1"].assets == ("water.ps1",)
    assert by_device["lights.d1.c1"].state == "Stale points" and rows[0].device == "lights.d1.c1"
    filtered = device_rows(context, entries, live.snapshot(), domain="water")
    assert [row.device for row in filtered] == ["water.ps1"]
    assert device_rows(context, entries, live.snapshot(), domain="<script>") == []
    page = json.dumps(
        PAGE.render(
            hmi_context(live, history, journal, devices=Devices(entries), assets=context.assets),
            User("mats", Role.MAINTENANCE),
            PageRequest("/diagnostics", query={"domain": "water"}),
        ).to_plotly_json(),
        default=str,
    )
    assert "/asset/water.ps1" in page and "lights.d1.c1" not in page.split("diagnostics-table")[-1]


def test_a_device_never_scanned_says_never(
    live_view: LiveView, history: HistoryReader, journal: EventJournal
) -> None:
    context = hmi_context(live_view, history, journal)
    never = diagnostics("rtu1", last_good_scan=None, healthy=False, connected=True)
    (row, *_) = device_rows(context, [never], live_view.snapshot())
    assert row.state == "Failing" and row.age_s is None
    assert "never" in json.dumps(render_table(context, [row]).to_plotly_json(), default=str)


@pytest.fixture
def diagnostics_server(
    live_view: LiveView,
    history: HistoryReader,
    journal: EventJournal,
    login_sessions: LoginSessions,
    user_store: UserStore,
) -> Iterator[HmiServer]:
    user_store.add_user(MAINTENANCE, MAINTENANCE_PASSWORD, Role.MAINTENANCE)
    context = hmi_context(live_view, history, journal, devices=Devices([OK, DOWN]))
    server = HmiServer(create_hmi(context, login_sessions, secret_key=SECRET_KEY), port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def refresh(base_url: str, cookie: str, domain: object) -> tuple[int, str]:
    """Fire the table's refresh as the 5 s timer does."""
    payload = {
        "output": "..diagnostics-table.children...diagnostics-summary.children..",
        "outputs": [
            {"id": "diagnostics-table", "property": "children"},
            {"id": "diagnostics-summary", "property": "children"},
        ],
        "inputs": [
            {"id": "diagnostics-refresh", "property": "n_intervals", "value": 3},
            {"id": "diagnostics-domain", "property": "value", "value": domain},
        ],
        "changedPropIds": ["diagnostics-refresh.n_intervals"],
    }
    reply = send(
        base_url,
        "POST",
        "/_dash-update-component",
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        cookie=cookie,
    )
    return reply.status, reply.body.decode()


def test_the_refresh_is_refused_to_an_operator_and_served_to_maintenance(
    diagnostics_server: HmiServer, journal_events: list[Event]
) -> None:
    url = diagnostics_server.url
    operator = log_in(url, OPERATOR_NAME, OPERATOR_PASSWORD).cookie()
    status, body = refresh(url, operator, "")
    assert status == 403 and "view_diagnostics" in body
    assert any("refused /_dash-update-component" in e.message for e in journal_events)
    maintenance = log_in(url, MAINTENANCE, MAINTENANCE_PASSWORD).cookie()
    status, body = refresh(url, maintenance, "")
    assert status == 200 and "connection refused by 10.0.0.2:502" in body
    assert "2 devices, 2 abnormal, 1 down" in body
    # A forged domain is ignored (all devices), never an error.
    status, body = refresh(url, maintenance, {"$ne": 1})
    assert status == 200 and "rtu1" in body


def test_a_large_city_lists_a_hundred_devices_abnormal_first_and_counts_the_rest(
    live_view: LiveView, history: HistoryReader, journal: EventJournal
) -> None:
    many = [diagnostics(f"zz{number:03d}") for number in range(150)]
    down = diagnostics("zz149", healthy=False, connected=False, last_error="no route to host")
    context = hmi_context(live_view, history, journal, devices=Devices([*many[:149], down]))
    table, summary = diagnostics_page._table_and_summary(context, "")
    shown = json.dumps(table.to_plotly_json(), default=str)
    assert shown.count("diagnostics-row") == diagnostics_page.MAX_ROWS
    assert "Down: no route to host" in shown  # the last device by name, listed first
    assert "50 more devices (0 abnormal)" in shown
    assert summary == "150 devices, 1 abnormal, 1 down"
